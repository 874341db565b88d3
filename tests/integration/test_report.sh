#!/usr/bin/env bash
# lianxin report on a county store of random generated children with random
# edits (exits, risk changes, cleared fields, home visits): an
# oracle in Python (report_oracle.py) recomputes every cell and digest from
# the export and must agree; the quarter before, which ended before any of
# the data existed, is all zeros; CSV starts with a BOM and matches the
# JSON; the XLSX unpacks to the expected sheets with Chinese headers and a
# frozen header row; the HTML holds every figure of the total row; bad
# options are usage errors naming the option.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SEED=${REPORT_SEED:-$(( $(date +%s) % 100000 ))}
echo "seed $SEED (REPORT_SEED=$SEED to repeat)"
D=$TMP/county
lx init --data "$D" --code 510104000000 >/dev/null || fail "init"
lx gen --subtree 510104000000 --count 400 --seed "$SEED" --out "$TMP/g.csv" || fail "gen"
lx import --data "$D" --csv "$TMP/g.csv" --quiet >/dev/null || fail "import"

# The current quarter in China Standard Time, and the one before.
read -r Q PREVQ FIRST LAST PREVDAY <<<"$(python3 -c '
import calendar, time, datetime
t = time.gmtime(time.time() + 8 * 3600)
y, q = t.tm_year, (t.tm_mon - 1) // 3 + 1
first = datetime.date(y, 3 * (q - 1) + 1, 1)
last = datetime.date(y, 3 * q, calendar.monthrange(y, 3 * q)[1])
py, pq = (y, q - 1) if q > 1 else (y - 1, 4)
print("%dQ%d %dQ%d %s %s %s" % (y, q, py, pq, first, last, first - datetime.timedelta(days=1)))')"
TODAY=$(python3 -c 'import time; print(time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600)))')

# Random edits, deterministic by seed: one `child update` per line.
lx export --data "$D" --format json --out "$TMP/before.json" || fail "export"
python3 - "$TMP/before.json" "$SEED" "$FIRST" "$LAST" "$PREVDAY" "$TODAY" >"$TMP/edits" <<'PY'
import json, random, sys
recs, seed, first, last, prevday, today = json.load(open(sys.argv[1])), int(sys.argv[2]), *sys.argv[3:7]
rnd = random.Random(seed)
reasons = ["parents_returned", "reached_age_limit", "moved_away", "category_changed", "death", "other"]
for i, r in enumerate(rnd.sample(recs, 120)):
    sets = []
    # The first seven edits take each kind once, so that every column
    # checked below is reached whatever the seed.
    k = i if i < 7 else rnd.randrange(7)
    if k == 0:
        # The schema wants a reason with an exit; a date is optional.
        sets = ["status=exited", "exit_reason=" + rnd.choice(reasons)]
        date = today if i < 7 else rnd.choice([first, last, today, prevday, ""])
        if date:
            sets.append("exit_date=" + date)
    elif k == 1:
        sets = ["risk_level=" + rnd.choice(["low", "medium", "high"])]
    elif k == 2:
        sets = ["guardian_capable=" + rnd.choice(["true", "false"]),
                "guardian_type=" + rnd.choice(["grandparent", "relative", "institution", "parent", "none"])]
    elif k == 3:
        sets = ["school_status=" if i < 7 else
                rnd.choice(["school_status=", "health_status=", "guardian_type=", "categories="])]
    elif k == 4:
        sets = ["help_pairing=" + rnd.choice(["", "张老师"]), "proxy_parent=" + rnd.choice(["", "李阿姨"])]
    elif k == 5:
        sets = ["health_status=" + rnd.choice(["健康", "一般", "较差", "轻度近视"])]
    else:
        sets = ["last_visit_date=" + (today if i < 7 else rnd.choice([first, last, today, prevday]))]
    print(r["id"], " ".join("--set " + s for s in sets))
PY
while read -r id args; do
    # shellcheck disable=SC2086
    lx child update --data "$D" "$id" $args >/dev/null || fail "child update $id $args"
done <"$TMP/edits"

lx export --data "$D" --format json --out "$TMP/export.json" || fail "export"
lx report --data "$D" --quarter "$Q" --format json --out "$TMP/report.json" || fail "report json"
python3 "$HERE/report_oracle.py" "$LIANXIN" "$D" "$Q" "$TMP/export.json" "$TMP/report.json" \
    || fail "the oracle disagrees with the report (seed $SEED)"

# Every township of the county is a row, named from the division tables.
python3 - "$TMP/report.json" <<'PY' || fail "rows"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["node"] == "510104000000" and r["level"] == "county", r["node"]
assert r["node_name"] == "锦江区", r["node_name"]
assert len(r["rows"]) >= 10, len(r["rows"])
assert all(row["code"].startswith("510104") and row["code"].endswith("000") for row in r["rows"])
assert any(row["name"].endswith("街道") for row in r["rows"]), [row["name"] for row in r["rows"]]
assert r["total"]["name"] == "合计"
t = r["total"]["values"]
# The random edits reach the flow and help columns, so the oracle's
# agreement on them means something.
for k in ("total", "visited", "exits", "case_closed", "entries", "school_unset", "health_other"):
    assert t[k] > 0, k
PY

# The quarter before ended before any of this data was written.
lx report --data "$D" --quarter "$PREVQ" --format json --out "$TMP/prev.json" || fail "report prev"
python3 - "$TMP/prev.json" <<'PY' || fail "the quarter before is not empty"
import json, sys
r = json.load(open(sys.argv[1]))
bad = {k: v for k, v in r["total"]["values"].items() if v}
assert not bad, bad
PY

# CSV: BOM, Chinese header, the same figures as the JSON; English with --lang en.
lx report --data "$D" --quarter "$Q" --format csv --out "$TMP/r.csv" || fail "report csv"
lx report --data "$D" --quarter "$Q" --format csv --lang en >"$TMP/r-en.csv" || fail "report csv en"
python3 - "$TMP/r.csv" "$TMP/r-en.csv" "$TMP/report.json" <<'PY' || fail "csv"
import csv, io, json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"\xef\xbb\xbf"), raw[:8]
rep = json.load(open(sys.argv[3]))
rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"))))
assert rows[0] == ["代码", "单位"] + [c["zh"] for c in rep["columns"]], rows[0][:6]
body = {row[0]: row for row in rows[1:]}
for jr in rep["rows"] + [rep["total"]]:
    assert body[jr["code"]][1] == jr["name"], jr["code"]
    assert [int(x) for x in body[jr["code"]][2:]] == [jr["values"][c["key"]] for c in rep["columns"]], jr["code"]
assert rows[-1][1] == "合计"
en = open(sys.argv[2], "rb").read()
assert en.startswith(b"\xef\xbb\xbfCode,Unit,Children in the registry,"), en[:60]
assert b"\r\n510104000000,Total," in en
PY

# XLSX: a valid zip with one sheet per breakdown, Chinese headers, a frozen
# header row, and the total row.
must_fail 2 lx report --data "$D" --quarter "$Q" --format xlsx | grep -q -- "--out" \
    || fail "xlsx without --out is not refused naming --out"
lx report --data "$D" --quarter "$Q" --format xlsx --out "$TMP/r.xlsx" || fail "report xlsx"
python3 - "$TMP/r.xlsx" "$TMP/report.json" <<'PY' || fail "xlsx"
import json, re, sys, zipfile
import xml.etree.ElementTree as ET
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
rep = json.load(open(sys.argv[2]))
ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
wb = ET.fromstring(z.read("xl/workbook.xml"))
names = [s.get("name") for s in wb.find("m:sheets", ns)]
assert names == ["总表", "类别", "监护", "就学", "健康", "帮扶与走访", "进出", "说明"], names
shared = [si.findtext(".//m:t", namespaces=ns) or "".join(t.text or "" for t in si.iter("{%s}t" % ns["m"]))
          for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns)]
for i, group in enumerate(rep["groups"]):
    sheet = ET.fromstring(z.read("xl/worksheets/sheet%d.xml" % (i + 1)))
    pane = sheet.find(".//m:pane", ns)
    assert pane is not None and pane.get("ySplit") == "1" and pane.get("state") == "frozen", group
    rows = sheet.findall(".//m:sheetData/m:row", ns)
    def text(c):
        v = c.findtext("m:v", namespaces=ns)
        return shared[int(v)] if c.get("t") == "s" else v
    header = [text(c) for c in rows[0]]
    want = ["代码", "单位"] + [c["zh"] for c in rep["columns"] if c["group"] == group["key"]]
    assert header == want, (group["key"], header, want)
    last = [text(c) for c in rows[-1]]
    assert last[:2] == ["510104000000", "合计"], last[:2]
    totals = [rep["total"]["values"][c["key"]] for c in rep["columns"] if c["group"] == group["key"]]
    assert [int(float(x)) for x in last[2:]] == totals, (group["key"], last, totals)
    assert len(rows) == len(rep["rows"]) + 2
PY

# HTML: one self-contained zh-CN page; every figure of the total row is in
# the total rows of its tables, in column order; nothing is fetched.
lx report --data "$D" --quarter "$Q" --format html --out "$TMP/r.html" || fail "report html"
python3 - "$TMP/r.html" "$TMP/report.json" <<'PY' || fail "html"
import json, re, sys
h = open(sys.argv[1], encoding="utf-8").read()
rep = json.load(open(sys.argv[2]))
assert '<html lang="zh-CN">' in h
assert h.count("<svg") == len(rep["groups"]), h.count("<svg")
assert not re.search(r'(src|href)=|<link|<script|url\(', h), "external resource"
got = []
for tr in re.findall(r'<tr class="total">(.*?)</tr>', h):
    got += [int(x) for x in re.findall(r"<td>(\d+)</td>", tr)[1:]]
want = []
for g in rep["groups"]:
    want += [rep["total"]["values"][c["key"]] for c in rep["columns"] if c["group"] == g["key"]]
assert got == want, (got[:10], want[:10])
PY
lx report --data "$D" --quarter "$Q" --format html --lang en | grep -q '<html lang="en">' || fail "html en"

# Usage errors name the option; a missing store is a failure (1).
err=$(must_fail 2 lx report --data "$D" --quarter 2026Q5 --format json)
assert_contains "$err" "--quarter" "bad quarter"
assert_contains "$err" "2026Q5" "bad quarter"
err=$(must_fail 2 lx report --data "$D" --quarter "$Q" --format pdf)
assert_contains "$err" "--format" "bad format"
err=$(must_fail 2 lx report --data "$D" --quarter "$Q" --format csv --lang fr)
assert_contains "$err" "--lang" "bad lang"
err=$(must_fail 2 lx report --data "$D" --format csv)
assert_contains "$err" "--quarter" "missing quarter"
must_fail 1 lx report --data "$TMP/nowhere" --quarter "$Q" --format json >/dev/null
err=$(must_fail 1 lx report --data "$D" --quarter "$Q" --format json --unit 510105000000)
assert_contains "$err" "510105000000" "unit outside"
lx report --help | grep -q "usage: lianxin report" || fail "--help"
echo "ok"
