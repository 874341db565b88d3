#!/usr/bin/env bash
# Policies from the command line on a rendered five-level chain (no nodes
# run): every example in config/policies is issued at the province; the
# signed envelopes are carried to the township and the village; a
# township refinement allowed and one not; the effective policy names who
# set each rule; bad files are refused naming the field; writes at the
# village obey the province's schema; alerts appear and clear; x_ fields
# survive get, export and import; the daily pass is idempotent.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
P=510000000000; T=510104001000; V=510104001001
cat > "$TMP/tree.ini" <<EOF
[tree]
name = policy-test
base_port = $(port 23650)
[node 510000000000]
name = 四川省
[node 510100000000]
name = 成都市
[node 510104000000]
name = 锦江区
[node 510104001000]
name = 督院街街道
[node 510104001001]
name = 测试村
EOF
lx topology render --topology "$TMP/tree.ini" --out "$TMP/t" >/dev/null || fail "render"
D() { echo "$TMP/t/$1/data"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

lx policy --help | grep -q "usage" || fail "policy --help"
lx alerts --help | grep -q "usage" || fail "alerts --help"
for s in issue accept list show status apply; do
    lx policy $s --help | grep -q "usage" || fail "policy $s --help"
done
must_fail 2 lx policy list >/dev/null
must_fail 2 lx policy frobnicate --data "$(D $P)" >/dev/null

# Every example of the README, issued at the province.
for k in schema classification alerts reporting access retention; do
    out=$(lx policy issue --data "$(D $P)" --file "$ROOT/config/policies/$k.json" --out "$TMP/$k.env") \
        || fail "issue config/policies/$k.json"
    assert_eq "$out" "$P/$k v1 stored" "issue $k"
done
out=$(lx policy issue --data "$(D $P)" --file "$ROOT/config/policies/schema.json")
assert_contains "$out" "already held" "the same policy issued twice"
assert_eq "$(lx policy list --data "$(D $P)" --json | json 'len(d)')" "6" "list"
assert_eq "$(lx policy list --data "$(D $P)" | grep -c 'in force')" "6" "list text"
lx policy show --data "$(D $P)" --json | json 'd[0]["body"]["roles"]["education"]["write"][0]' \
    | grep -q school_name || fail "show prints the bodies"

# Bad files, each refused naming the file and the field.
sed 's/"type": "str"/"type": "colour"/' "$ROOT/config/policies/schema.json" > "$TMP/bad.json"
err=$(must_fail 1 lx policy issue --data "$(D $P)" --file "$TMP/bad.json")
assert_contains "$err" "bad.json: body.fields[1].type: unknown type \"colour\"" "bad type named"
sed 's/"version": 1/"version": 0/' "$ROOT/config/policies/alerts.json" > "$TMP/bad.json"
err=$(must_fail 1 lx policy issue --data "$(D $P)" --file "$TMP/bad.json")
assert_contains "$err" "bad.json: version" "bad version named"
sed 's/"refine"/"refinement"/' "$ROOT/config/policies/retention.json" > "$TMP/bad.json"
err=$(must_fail 1 lx policy issue --data "$(D $P)" --file "$TMP/bad.json")
assert_contains "$err" "bad.json: body.refinement: unknown key" "unknown key named"
err=$(must_fail 1 lx policy issue --data "$(D $V)" --file "$ROOT/config/policies/schema.json")
assert_contains "$err" "issuer: $P is not this node" "issued at the wrong node"

# Carried down: the township and the village accept the province's envelopes.
for n in $T $V; do
    for k in schema classification alerts reporting; do
        lx policy accept --data "$(D $n)" "$TMP/$k.env" >/dev/null || fail "accept $k at $n"
    done
done
assert_contains "$(lx policy accept --data "$(D $V)" "$TMP/schema.env")" "already held" "resend"
# A tampered envelope: one byte of the JSON changed.
python3 - "$TMP/alerts.env" "$TMP/forged.env" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.index(b'"version": 1')
b[i + 11] = ord('2')
open(sys.argv[2], "wb").write(b)
PY
err=$(must_fail 1 lx policy accept --data "$(D $V)" "$TMP/forged.env")
assert_contains "$err" "bad signature" "forged envelope"

# The township refines: a value added (allowed), a field made required and
# a later deadline (not allowed), an earlier deadline for villages (allowed).
cat > "$TMP/town.json" <<EOF
{"issuer": "$T", "kind": "schema", "version": 1, "effective": "2026-01-01",
 "body": {"fields": [
   {"name": "x_hukou_type", "type": "enum", "label_zh": "户口性质", "label_en": "Hukou",
    "enum": [{"value": "permit", "zh": "居住证", "en": "Residence permit"}]},
   {"name": "x_visit_note", "type": "str", "label_zh": "走访备注", "label_en": "Visit note",
    "required": true}]}}
EOF
lx policy issue --data "$(D $T)" --file "$TMP/town.json" --out "$TMP/town.env" >/dev/null || fail "township issue"
lx policy accept --data "$(D $V)" "$TMP/town.env" >/dev/null || fail "village accepts its township's policy"
# Sent up: the township's policy is not the city's to take.
err=$(must_fail 1 lx policy accept --data "$TMP/t/510100000000/data" "$TMP/town.env")
assert_contains "$err" "neither this node" "a descendant's policy refused"
eff=$(lx policy show --data "$(D $V)" --effective --json)
python3 - "$eff" <<'PY' || fail "effective policy at the village"
import json, sys
e = json.loads(sys.argv[1])
f = {x["name"]: x for x in e["schema"]["fields"]}
assert f["x_hukou_type"]["set_by"] == "510000000000", f
assert f["x_hukou_type"]["refined_by"] == ["510104001000"], f
assert f["x_hukou_type"]["enum"] == ["rural", "urban", "permit"], f
assert f["x_visit_note"]["required"] is False, f
assert f["guardian_type"]["required"] is True and f["guardian_type"]["set_by"] == "default", f
o = [x for x in e["overridden"] if x["rule"] == "x_visit_note"]
assert o and o[0]["by"] == "510000000000" and o[0]["issuer"] == "510104001000", e["overridden"]
assert all(r["set_by"] == "510000000000" for r in e["classification"]["rules"]), e
assert e["reporting"]["levels"]["village"] == 5, e["reporting"]
PY
txt=$(lx policy show --data "$(D $V)" --effective)
assert_contains "$txt" "x_hukou_type" "effective text"
assert_contains "$txt" "set by 510000000000, refined by 510104001000" "provenance in text"
assert_contains "$txt" "overridden" "overridden in text"

# Writes at the village obey the province's schema two levels down.
err=$(must_fail 1 lx child add --data "$(D $V)" --json '{"village_code":"510104001001","name":"王小明","gender":"male","birth_date":"2015-03-01"}')
assert_contains "$err" "guardian_type" "required field named"
err=$(must_fail 1 lx child add --data "$(D $V)" --json '{"village_code":"510104001001","name":"王小明","gender":"male","birth_date":"2015-03-01","guardian_type":"grandparent","x_hukou_type":"city"}')
assert_contains "$err" "x_hukou_type" "bad local value named"
err=$(must_fail 1 lx child add --data "$(D $V)" --json '{"village_code":"510104001001","name":"王小明","gender":"male","birth_date":"2015-03-01","guardian_type":"grandparent","x_shoe":"1"}')
assert_contains "$err" "x_shoe" "undefined local field named"
id=$(lx child add --data "$(D $V)" --json '{"village_code":"510104001001","name":"王小明","gender":"male","birth_date":"2015-03-01","guardian_type":"grandparent","father_status":"migrant_worker","mother_status":"migrant_worker","risk_level":"high","x_hukou_type":"permit"}' | tail -1)
[ -n "$id" ] || fail "child add with a local field"
got=$(lx child get --data "$(D $V)" "$id" --json)
assert_contains "$got" '"x_hukou_type": "permit"' "x_ field in child get --json"
assert_contains "$got" '"left_behind"' "classification derived on add"
assert_contains "$got" '"left_behind_type": "both_parents_away"' "left_behind_type derived"
assert_contains "$(lx child get --data "$(D $V)" "$id")" "户口性质" "local field labelled"
lx child update --data "$(D $V)" "$id" --set x_hukou_type=非农业户口 >/dev/null || fail "update a local field by its label"
assert_contains "$(lx child get --data "$(D $V)" "$id" --json)" '"x_hukou_type": "urban"' "update of a local field"

# Alerts: by id, village and rule; never the name.
al=$(lx alerts --data "$(D $V)")
assert_contains "$al" "$id" "alert lists the child"
assert_contains "$al" "high_risk_no_visit_30d" "alert names the rule"
echo "$al" | grep -q "王小明" && fail "alerts printed a name"
assert_eq "$(lx alerts --data "$(D $V)" --json | json 'd[0]["village_code"]')" "$V" "alerts json"
lx child update --data "$(D $V)" "$id" --set last_visit_date="$(date +%F)" >/dev/null
assert_eq "$(lx alerts --data "$(D $V)" --json | json 'len(d)')" "0" "the alert clears after a visit"
assert_eq "$(lx alerts --data "$(D $V)" --today 2099-01-01 --json | json 'len(d)')" "1" "and comes back"

# Local fields survive export and import.
lx export --data "$(D $V)" --format csv --out "$TMP/e.csv" || fail "export"
head -1 "$TMP/e.csv" | grep -q ",x_hukou_type" || fail "export has the local column"
grep -q ",urban" "$TMP/e.csv" || fail "export has the local value"
assert_contains "$(lx export --data "$(D $V)" --format json)" '"x_hukou_type":"urban"' "json export"
out=$(lx import --data "$(D $V)" --csv "$TMP/e.csv")
assert_contains "$out" "imported 1 rows (0 changed records)" "re-import changes nothing"
lx export --data "$(D $V)" --format csv --out "$TMP/e2.csv"
cmp -s "$TMP/e.csv" "$TMP/e2.csv" || fail "export -> import -> export differs"
# The county does not know the village's field but holds it.
lx init --data "$TMP/county" --code 510104000000 >/dev/null
lx import --data "$TMP/county" --csv "$TMP/e.csv" >/dev/null 2>&1 \
    && fail "a county imported a column its schema does not define"

# The daily pass: exits at 16, once.
out=$(lx policy apply --data "$(D $V)" --today 2031-03-01 --json)
assert_eq "$(echo "$out" | json 'd["exited"]')" "1" "exit at 16"
assert_eq "$(lx policy apply --data "$(D $V)" --today 2031-03-01 --json | json 'd["changed"]')" "0" "daily twice"
got=$(lx child get --data "$(D $V)" "$id" --json)
assert_contains "$got" '"exit_reason": "reached_age_limit"' "exit reason"
assert_contains "$got" '"exit_date": "2031-03-01"' "exit date: the 16th birthday"

# Status: the province's own versions; its child has not reported yet.
st=$(lx policy status --data "$(D $P)" --json)
assert_eq "$(echo "$st" | json 'len(d["held"])')" "6" "status held"
assert_eq "$(echo "$st" | json 'd["nodes"][0]["reported"]')" "False" "the city never reported"
assert_contains "$(lx policy status --data "$(D $P)")" "never reported" "status text"
echo ok
