#!/usr/bin/env python3
"""An independent oracle for `lianxin report`: recomputes every cell (and
every row's digest) of the quarter's report from `lianxin export --format
json` and each record's field versions (`lianxin child get --versions`), by
the rules README (Reports) states, and compares with `report --format json`.

usage: report_oracle.py LIANXIN DATA QUARTER EXPORT.json REPORT.json
Exits 1 naming the first cell that differs."""
import calendar
import hashlib
import json
import subprocess
import sys

lianxin, data, quarter, export_path, report_path = sys.argv[1:6]
records = json.load(open(export_path))
report = json.load(open(report_path))

# The quarter, its days, and its cut: the first millisecond after it in
# China Standard Time (UTC+8), as an HLC (48 bits of ms, 16 logical).
year, q = int(quarter[:4]), int(quarter[5])
m0 = 3 * (q - 1) + 1
first = "%04d-%02d-01" % (year, m0)
last = "%04d-%02d-%02d" % (year, m0 + 2, calendar.monthrange(year, m0 + 2)[1])


def cst_ms(y, m):
    return (calendar.timegm((y, m, 1, 0, 0, 0)) - 8 * 3600) * 1000


start = cst_ms(year, m0) << 16
cut = (cst_ms(year + 1, 1) if q == 4 else cst_ms(year, m0 + 3)) << 16
assert report["cut"]["hlc"] == cut, "cut %s, expected %d" % (report["cut"], cut)
assert report["period"] == {"from": first, "to": last}, report["period"]

keys = [c["key"] for c in report["columns"]]
READ = ["birth_date", "categories", "exit_date", "exit_reason", "gender",
        "guardian_capable", "guardian_type", "health_status", "help_pairing",
        "last_visit_date", "left_behind_type", "proxy_parent", "risk_level",
        "school_status", "status", "village_code"]


def versions(rid):
    out = subprocess.run([lianxin, "child", "get", "--data", data, "--json", "--versions", rid],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["_versions"]


def age(birth, on):
    by, bm, bd = map(int, birth.split("-"))
    y, m, d = map(int, on.split("-"))
    return y - by - (1 if (m, d) < (bm, bd) else 0)


def band(a):
    if 0 <= a <= 5:
        return "age_0_5"
    if 6 <= a <= 13:
        return "age_6_13"
    if 14 <= a <= 16:
        return "age_14_16"
    if a == 17:
        return "age_17"
    return "age_other"


def assessment(r):
    gt, able = r.get("guardian_type"), r.get("guardian_capable") is True
    if able and gt in ("parent", "grandparent"):
        return "ga_good"
    if able and gt in ("relative", "institution"):
        return "ga_average"
    return "ga_poor"


def in_q(h):
    return start < h <= cut


def date_in_q(d):
    return isinstance(d, str) and len(d) == 10 and first <= d <= last


def count(v, r, ver, created):
    if r.get("status") != "exited":
        v["total"] += 1
        sex = {"male": "male", "female": "female"}.get(r.get("gender"))
        b = band(age(r["birth_date"], last))
        v[b] += 1
        if sex:
            v[sex] += 1
            v[b + "_" + sex] += 1
        for c in r.get("categories") or []:
            v["cat_" + c] += 1
        if r.get("left_behind_type"):
            v["lbt_" + r["left_behind_type"]] += 1
        v["gt_" + (r.get("guardian_type") or "unset")] += 1
        v[assessment(r)] += 1
        v["school_" + (r.get("school_status") or "unset")] += 1
        h = r.get("health_status")
        v[{"健康": "health_good", "一般": "health_fair", "较差": "health_poor"}.get(
            h, "health_other" if h else "health_unset")] += 1
        v["help_pairing"] += 1 if r.get("help_pairing") else 0
        v["proxy_parent"] += 1 if r.get("proxy_parent") else 0
        v["visited"] += 1 if date_in_q(r.get("last_visit_date")) else 0
        if r.get("risk_level") == "high":
            v["risk_high"] += 1
            v["case_opened"] += 1 if in_q(ver["risk_level"]["hlc"]) else 0
    if in_q(created):
        v["entries"] += 1
    if r.get("status") == "exited" and date_in_q(r.get("exit_date")):
        v["exits"] += 1
        v["exit_" + (r.get("exit_reason") or "unset")] += 1
    risk = r.get("risk_level")
    if risk and risk != "high" and ver["risk_level"]["base"] and in_q(ver["risk_level"]["hlc"]):
        v["case_closed"] += 1


def digest(r, ver):
    """BLAKE2b-256 of the id and (index, hlc, origin) of each read field."""
    b = r["id"].encode()[:64] + b"\0"
    for i, name in enumerate(READ):
        if name in ver:
            b += bytes([i]) + ver[name]["hlc"].to_bytes(8, "big") + \
                int(ver[name]["origin"]).to_bytes(8, "big")
    return int.from_bytes(hashlib.blake2b(b, digest_size=32).digest(), "little")


node = report["node"]
units, digests = {}, {}
for r in records:
    ver = versions(r["id"])
    created = min(v["hlc"] for v in ver.values())
    if created > cut or not r["village_code"].startswith(node[:6]):
        continue
    unit = r["village_code"][:9] + "000"   # a county's units are townships
    v = units.setdefault(unit, {k: 0 for k in keys})
    count(v, r, ver, created)
    digests[unit] = (digests.get(unit, 0) + digest(r, ver)) % (1 << 256)

zero = {k: 0 for k in keys}
seen = set()
cells = 0
for row in report["rows"]:
    want = units.get(row["code"], zero)
    for k in keys:
        if row["values"][k] != want[k]:
            sys.exit("row %s (%s), column %s: report %d, oracle %d"
                     % (row["code"], row["name"], k, row["values"][k], want[k]))
        cells += 1
    want_dig = digests.get(row["code"], 0).to_bytes(32, "little").hex()
    if row["digest"] != want_dig:
        sys.exit("row %s: digest %s, oracle %s" % (row["code"], row["digest"], want_dig))
    seen.add(row["code"])
missing = set(units) - seen
if missing:
    sys.exit("units missing from the report: %s" % sorted(missing))
for k in keys:
    want = sum(u[k] for u in units.values())
    if report["total"]["values"][k] != want:
        sys.exit("total, column %s: report %d, oracle %d" % (k, report["total"]["values"][k], want))
    cells += 1
print("oracle agrees on %d cells of %d rows (%d children in the registry)"
      % (cells, len(report["rows"]) + 1, report["total"]["values"]["total"]))
