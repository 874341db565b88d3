#!/usr/bin/env bash
# An edit that crosses a move (ports from 24200, 127.0.0.1 only): a village
# offline edits a child while its county moves the child to a village of
# another township. When the village comes back, its edit must still
# reach the child's new village and the county (the township between now
# holds only a stub), refused nowhere. (A child's write to a record it
# never held stays refused: test_bad_input.) Bounded waits.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP   # so that lib.sh's EXIT trap stops the nodes
BASE_PORT=${RACE_BASE_PORT:-$(port 24200)}
X=510121000000 T1=510121106000 T2=510121107000 V1=510121106201 V2=510121107201
NODES=($X $T1 $T2 $V1 $V2)
cat > "$TMP/tree.ini" <<EOF
[tree]
name = move-race
base_port = $BASE_PORT
[node $X]
name = 金堂县
[node $T1]
name = 五凤镇
[node $T2]
name = 又新镇
[node $V1]
name = 一村
[node $V2]
name = 二村
EOF
lx topology render --topology "$TMP/tree.ini" --out "$TMP/t" >/dev/null || fail "render"
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
field_is() { # field_is NODE ID FIELD VALUE
    local got
    got=$(lx child get --data "$(D "$1")" "$2" --json 2>/dev/null) || return 1
    [ "$(printf '%s' "$got" | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$3")" = "$4" ]
}
refused() { lx status --data "$(D "$1")" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["refused"])'; }

for c in "${NODES[@]}"; do start_node $c; done
id=$(lx child add --data "$(D $V1)" --json \
     '{"village_code":"'$V1'","name":"李小雨","gender":"female","birth_date":"2016-05-01","guardian_type":"grandparent","risk_level":"low"}' | tail -n 1) \
    || fail "child add at the village"
wait_until 20 field_is $X "$id" risk_level low

# The village goes offline; the county moves the child to the other
# township's village; the offline village edits the child meanwhile.
stop_node $V1
lx child update --data "$(D $X)" "$id" --set village_code=$V2 >/dev/null || fail "move at the county"
wait_until 20 field_is $V2 "$id" village_code $V2
wait_until 20 field_is $T1 "$id" village_code $V2       # a stub now
lx child update --data "$(D $V1)" "$id" --set risk_level=high --set health_status=需复查 >/dev/null \
    || fail "edit at the offline village"
r1=$(refused $T1) rx=$(refused $X)
start_node $V1

# The edit reaches the county and the child's new village.
wait_until 30 field_is $X "$id" risk_level high
wait_until 30 field_is $V2 "$id" risk_level high
field_is $V2 "$id" health_status 需复查 || fail "the second field of the crossed edit did not reach the new village"
field_is $V2 "$id" village_code $V2 || fail "the crossed edit moved the child back"
sleep 1
[ "$(refused $T1)" = "$r1" ] || fail "the township refused the crossed edit"
[ "$(refused $X)" = "$rx" ] || fail "the county refused the crossed edit"
# The township keeps a stub: nothing personal.
lx child get --data "$(D $T1)" "$id" --json | grep -q '李小雨' && fail "the township's stub holds the name"

echo "move race: ok"
