#!/usr/bin/env bash
# The operator's commands on one store: init, child add/get/update/list,
# import (all-or-nothing and --skip-bad), export, digest, status, keygen.
. "$(dirname "$0")/lib.sh"

idnum() { # idnum AREA6 YYYYMMDD SEQ3 -> 18 characters with the check digit
    python3 - "$1$2$3" <<'PY'
import sys
s = sys.argv[1]
w = [7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
print(s + "10X98765432"[sum(int(c)*k for c, k in zip(s, w)) % 11])
PY
}

D=$TMP/t
lx init --data "$D" --code 510104017000 >/dev/null || fail "init"
must_fail 1 lx init --data "$D" --code 510104017000 | grep -q "already holds a store" || fail "second init refused"
must_fail 1 lx init --data "$TMP/x" --code 51010401700 | grep -q "not a 12-digit" || fail "short code refused"
must_fail 2 lx init --data "$TMP/x" >/dev/null
for c in keygen init child import export digest backup status conflicts gen; do
    lx $c --help | grep -q "usage" || fail "$c --help"
done
# topology render refuses a file it could only render into configurations
# that fail later, naming the line and key, and writes nothing.
topo_bad() {
    printf '[tree]\nname = k\nbase_port = %s\n[node 510121106000]\nname = 五凤镇\n%s\n[node 510121106218]\nname = 金箱村\n' \
        "$(port 45900)" "$1" > $TMP/bad.ini
    err=$(must_fail 1 lx topology render --topology $TMP/bad.ini --out $TMP/badtree)
    assert_contains "$err" "$2" "topology with '$1'"
    [ ! -e $TMP/badtree ] || fail "a refused topology wrote $TMP/badtree"
}
topo_bad "http = nonsense" "bad.ini line 6: [node 510121106000] http: expected HOST:PORT"
topo_bad "http = 127.0.0.1:0" "http: expected HOST:PORT"
topo_bad "zmq = tcp://nohost" "zmq: expected tcp://HOST:PORT"
topo_bad "zmq = 127.0.0.1:4000" "zmq: expected tcp://HOST:PORT"
topo_bad "colour = red" "colour: unknown key"
topo_bad "[node 510122000000]" "bad.ini line 6: [node 510122000000]: a section with no keys"
topo_bad "[node 510122000000]
name = 简阳" "2 nodes have no ancestor in the file (one root expected): [node 510121106000], [node 510122000000]"
topo_bad "[node 510121106000]
name = 又一个" "bad.ini line 6: [node 510121106000]: the section follows itself"

# A topology saved with a UTF-8 BOM (as Notepad saves Chinese text) renders.
printf '\xEF\xBB\xBF[tree]\nname = k\nbase_port = %s\n[node 510121106000]\nname = 五凤镇\n[node 510121106218]\nname = 金箱村\n' \
    "$(port 45900)" > $TMP/bom.ini
lx topology render --topology $TMP/bom.ini --out $TMP/bomtree >/dev/null || fail "a topology with a BOM"
[ -f $TMP/bomtree/510121106218/node.ini ] || fail "the BOM topology's village was not rendered"

# A command with subcommands, given none: exit 2, and stderr says why and
# how (CONTRACT: a one-line message on stderr); stdout stays empty.
for c in child bundle topology policy token audit; do
    err=$(must_fail 2 lx $c)
    assert_contains "$err" "lianxin $c: " "$c without a subcommand"
    assert_contains "$err" "usage: lianxin $c" "$c without a subcommand"
    [ -z "$(lx $c 2>/dev/null)" ] || fail "$c without a subcommand wrote to stdout"
done

# child add / get / update / list
ID1=$(idnum 510104 20150301 123)
id=$(lx child add --data "$D" --json "{\"village_code\":\"510104017001\",\"name\":\"王小明\",\"gender\":\"male\",\"birth_date\":\"2015-03-01\",\"id_number\":\"$ID1\",\"categories\":[\"left_behind\"],\"guardian_type\":\"grandparent\",\"guardian_capable\":true}" | tail -1)
[ -n "$id" ] || fail "child add printed no id"
got=$(lx child get --data "$D" "$id" --json)
assert_contains "$got" '"name": "王小明"' "child get"
assert_contains "$got" '"guardian_capable": true' "child get bool"
assert_contains "$got" '"left_behind"' "child get list"
out=$(lx child update --data "$D" "$id" --set school_status=boarding --set risk_level=high)
assert_contains "$out" "2 fields changed" "update"
out=$(lx child update --data "$D" "$id" --set risk_level=high)
assert_contains "$out" "0 fields changed" "update that changes nothing"
err=$(must_fail 1 lx child update --data "$D" "$id" --set risk_level=extreme)
assert_contains "$err" "risk_level" "bad enum named"
err=$(must_fail 1 lx child update --data "$D" "$id" --set shoe_size=3)
assert_contains "$err" "shoe_size" "unknown field named"
err=$(must_fail 1 lx child update --data "$D" "$id" --set village_code=510105001001)
assert_contains "$err" "village_code" "move outside the node refused"
err=$(must_fail 1 lx child update --data "$D" nosuchid --set risk_level=low)
assert_contains "$err" "nosuchid" "missing record"
err=$(must_fail 1 lx child add --data "$D" --json '{"village_code":"510104017001","name":"李","gender":"male"}')
assert_contains "$err" "birth_date" "required field named"
err=$(must_fail 1 lx child add --data "$D" --json '{"village_code":"510104017001",')
assert_contains "$err" "JSON" "bad JSON named"
err=$(must_fail 1 lx child add --data "$D" --json "{\"village_code\":\"510104017001\",\"name\":\"李\",\"gender\":\"female\",\"birth_date\":\"2015-03-01\",\"id_number\":\"$ID1\"}")
assert_contains "$err" "id_number" "ID number inconsistent with gender"
lx child get --data "$D" "$id" | grep -q "在校\|寄宿\|boarding" || fail "child get text"
assert_eq "$(lx child list --data "$D" | wc -l)" "1" "list"
assert_eq "$(lx child list --data "$D" --village 510104017002 | wc -l)" "0" "list by village"
# A second record with the same ID number is kept and flagged.
id2=$(lx child add --data "$D" --json "{\"village_code\":\"510104017002\",\"name\":\"王明\",\"gender\":\"male\",\"birth_date\":\"2015-03-01\",\"id_number\":\"$ID1\"}" 2>"$TMP/warn" | tail -1)
assert_contains "$(cat "$TMP/warn")" "$id" "duplicate warning names the other record"
dups=$(lx conflicts --data "$D" --json | python3 -c 'import json,sys; print(len([d for d in json.load(sys.stdin) if d["kind"] == "duplicate"]))')
assert_eq "$dups" "2" "both duplicates flagged"
lx conflicts --data "$D" | grep -q "$ID1" && fail "conflicts printed a full ID number"

# Import: a good file, then bad files.
G=$TMP/good.csv
lx gen --subtree 510104017000 --count 300 --seed 3 --today 20261123 --out "$G" || fail "gen"
out=$(lx import --data "$D" --csv "$G")
assert_contains "$out" "imported 300 rows" "good import"
assert_eq "$(records "$D")" "302" "records after import"
before=$(lx digest --data "$D")

B=$TMP/bad.csv
ID2=$(idnum 510104 20160510 224)
BADCHK=${ID2:0:17}$(( (${ID2:17:1} + 1) % 10 ))
[ "${ID2:17:1}" = "X" ] && BADCHK=${ID2:0:17}0
{
    echo "name,gender,birth_date,id_number,village_code,risk_level"
    echo "张一,female,2016-05-10,$ID2,510104017001,low"          # line 2 good
    echo "张二,female,2016-05-10,$BADCHK,510104017001,low"       # 3 bad check digit
    echo "张三,female,2016-05-10,,510104017001,extreme"          # 4 bad enum
    echo "张四,female,2016-05-10,,510105001001,low"              # 5 village outside
    printf '张\xff五,female,2016-05-10,,510104017001,low\n'      # 6 broken UTF-8
    echo "张六,female,2016-05-10,510104017001,low"               # 7 wrong column count
    echo "张七,female,2016-05-10,,510104017002,medium"           # 8 good
} > "$B"
err=$(must_fail 1 lx import --data "$D" --csv "$B")
for want in "line 3: field id_number" "line 4: field risk_level" "line 5: field village_code" "line 6" "line 7: 5 cells" "5 bad rows, nothing imported"; do
    assert_contains "$err" "$want" "bad CSV report"
done
echo "$err" | grep -q "line 2\|line 8" && fail "good rows reported as bad"
assert_eq "$(lx digest --data "$D")" "$before" "all-or-nothing import stored nothing"
U=$TMP/unknown.csv
printf 'name,gender,shoe_size\n' > "$U"
err=$(must_fail 1 lx import --data "$D" --csv "$U")
assert_contains "$err" "unknown field 'shoe_size'" "unknown column named"
out=$(lx import --data "$D" --csv "$B" --skip-bad 2>"$TMP/skip.err")
assert_contains "$out" "imported 2 rows" "skip-bad imports the good rows"
assert_contains "$out" "skipped 5 bad rows" "skip-bad counts the bad rows"
assert_eq "$(grep -c 'line' "$TMP/skip.err")" "5" "skip-bad reports each bad row"
assert_eq "$(records "$D")" "304" "records after skip-bad"
grep -q "$BADCHK" "$TMP/skip.err" && fail "an ID number was printed in an error"

# Export: CSV and JSON hold every live record; a CSV export imports into
# a fresh store as the same records (same ids, same values).
lx export --data "$D" --format csv --out "$TMP/e.csv" || fail "export csv"
assert_eq "$(head -c 3 "$TMP/e.csv" | od -An -c | tr -d ' ')" "id," "export header"
assert_eq "$(( $(wc -l < "$TMP/e.csv") - 1 ))" "304" "export csv rows"
lx export --data "$D" --format json > "$TMP/e.json"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$TMP/e.json")
assert_eq "$n" "304" "export json rows"
E=$TMP/e
lx init --data "$E" --code 510104017000 >/dev/null
lx import --data "$E" --csv "$TMP/e.csv" >/dev/null || fail "re-import of an export"
lx export --data "$E" --format csv --out "$TMP/e2.csv"
cmp -s "$TMP/e.csv" "$TMP/e2.csv" || fail "export -> import -> export differs"
# Importing the same file twice leaves the values as they were.
lx import --data "$E" --csv "$TMP/e.csv" >/dev/null
lx export --data "$E" --format csv --out "$TMP/e3.csv"
cmp -s "$TMP/e.csv" "$TMP/e3.csv" || fail "second import changed values"

# digest: per subtree, and equal for equal state.
d1=$(lx digest --data "$D" --subtree 510104017001)
[ ${#d1} -eq 64 ] || fail "digest is 64 hex characters"
[ "$d1" != "$(lx digest --data "$D" --subtree 510104017002)" ] || fail "different villages, same digest"

# status --json
st=$(lx status --data "$D" --json)
python3 - "$st" <<'PY' || fail "status json"
import json, sys
s = json.loads(sys.argv[1])
assert s["code"] == "510104017000" and s["level"] == "township", s
assert s["records"] == 304 and s["parent"] is None and s["children"] == [], s
PY

# keygen: secrets 0600, no overwrite.
lx keygen --out "$TMP/k" >/dev/null || fail "keygen"
assert_eq "$(stat -c %a "$TMP/k/curve.key")" "600" "curve.key mode"
assert_eq "$(stat -c %a "$TMP/k/sign.key")" "600" "sign.key mode"
assert_eq "$(wc -c < "$TMP/k/curve.pub")" "41" "curve.pub is Z85"
must_fail 1 lx keygen --out "$TMP/k" >/dev/null

# A writer and readers on the same store at once.
lx gen --subtree 510104017000 --count 20000 --seed 9 --out "$TMP/big.csv"
lx import --data "$D" --csv "$TMP/big.csv" >/dev/null &
w=$!
PIDS+=("$w")
reads=0
while kill -0 "$w" 2>/dev/null; do
    lx status --data "$D" --json >/dev/null || fail "read during a write"
    reads=$((reads + 1))
done
wait "$w" || fail "import during reads"
assert_eq "$(records "$D")" "20304" "records after concurrent import"
echo "ok ($reads reads during the import)"
