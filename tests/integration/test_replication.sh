#!/usr/bin/env bash
# Replication on a real five-level tree of 17 nodes (real codes, ports from
# 23100, 127.0.0.1 only): chain and fan-in up to the province, concurrent
# edits of one field at a village and at its county, a move across
# counties, a village restored from its parent, and a township killed with
# SIGKILL in the middle of an import. Every wait is bounded.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP   # so that lib.sh's EXIT trap stops the nodes
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE_PORT=${REPL_BASE_PORT:-$(port 23100)}
TREE=$TMP/tree
declare -A PID LEVEL VCOUNT
NODES=() VILLAGES=() SOFT=()
WHY=""

# ---- helpers ---------------------------------------------------------------

dump_logs() {
    for c in "${NODES[@]}"; do
        [ -f "$TREE/$c/node.log" ] || continue
        echo "--- $c (${LEVEL[$c]}) node.log, last lines:" >&2
        tail -n 8 "$TREE/$c/node.log" >&2
    done
}
fail() {
    echo "FAIL: $*" >&2
    dump_logs
    exit 1
}
# A failed check that does not spoil the state later tests use: reported,
# the remaining tests still run, and the script fails at the end.
soft_fail() {
    echo "FAIL: $*" >&2
    SOFT+=("$*")
}
# wait_until TIMEOUT_S CMD...: runs CMD every 0.2 s until it succeeds; on
# timeout fails naming CMD and the last reason it gave in WHY.
wait_until() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
    WHY=""
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] \
            || fail "timed out after ${timeout}s waiting for: $*${WHY:+ ($WHY)}"
        sleep 0.2
    done
}
# Like wait_until, but returns 1 on timeout instead of failing.
poll_until() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
    WHY=""
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
# jexpr EXPR: evaluates a Python expression over the JSON on stdin (as j).
jexpr() {
    python3 -c 'import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
print(json.dumps(r, ensure_ascii=False, sort_keys=True) if isinstance(r, (dict, list)) else r)' "$@"
}
data() { printf '%s' "$TREE/$1/data"; }
prefix() { # the code's prefix that its subtree shares
    case ${LEVEL[$1]} in
    province) printf '%s' "${1:0:2}" ;; city) printf '%s' "${1:0:4}" ;;
    county) printf '%s' "${1:0:6}" ;; township) printf '%s' "${1:0:9}" ;;
    *) printf '%s' "$1" ;;
    esac
}
under() { [[ $2 == "$(prefix "$1")"* ]]; }       # under NODE CODE
ancestors() { # every node whose subtree holds CODE (the node itself too)
    local c
    for c in "${NODES[@]}"; do under "$c" "$1" && printf '%s\n' "$c"; done
}
expected() { # records NODE should hold: the sum over its villages
    local v n=0
    for v in "${VILLAGES[@]}"; do under "$1" "$v" && n=$((n + ${VCOUNT[$v]})); done
    printf '%s' "$n"
}
start_node() {
    "$LIANXIN" node --config "$TREE/$1/node.ini" >>"$TREE/$1/node.log" 2>&1 &
    PID[$1]=$!
    PIDS+=("$!")
}
stop_node() { # SIGTERM, then wait (bounded) for the process to exit
    local p=${PID[$1]}
    kill -TERM "$p" 2>/dev/null
    wait_until 15 dead "$p"
    wait "$p" 2>/dev/null
}
dead() { ! kill -0 "$1" 2>/dev/null; }
status_json() { lx status --data "$(data "$1")" --json; }
# links_ok any|quiet NODE...: does every link of each NODE show connected
# (and, with "quiet", unacked 0)? One Python for all the nodes.
links_ok() {
    WHY=$(python3 - "$LIANXIN" "$TREE" "$@" <<'PY'
import json, subprocess, sys
lx, tree, mode = sys.argv[1:4]
for code in sys.argv[4:]:
    j = json.loads(subprocess.run([lx, "status", "--data", f"{tree}/{code}/data", "--json"],
                                  capture_output=True, text=True, check=True).stdout)
    links = ([j["parent"]] if j["parent"] else []) + j["children"]
    bad = [l for l in links if not l["connected"] or (mode == "quiet" and l["unacked"] != 0)]
    if bad:
        print(f"{code}: links not ready: {json.dumps(bad)}")
        break
PY
    ) || { WHY="status failed"; return 1; }
    [ -z "$WHY" ]
}
all_links() { links_ok "$1" "${NODES[@]}"; }
# The node's record count, read without Python.
fast_records() { lx status --data "$1" --json | sed -n 's/^  "records": \([0-9]*\),*$/\1/p'; }
# Every node holds the sum of its villages' records, and every node's digest
# of each village below it equals the village's own.
tree_converged() {
    local c v n want d dv
    for c in "${NODES[@]}"; do
        n=$(fast_records "$(data "$c")")
        want=$(expected "$c")
        [ "$n" = "$want" ] || { WHY="$c (${LEVEL[$c]}) holds $n records, expected $want"; return 1; }
    done
    for v in "${VILLAGES[@]}"; do
        dv=$(lx digest --data "$(data "$v")") || { WHY="$v: digest failed"; return 1; }
        for c in $(ancestors "$v"); do
            [ "$c" = "$v" ] && continue
            d=$(lx digest --data "$(data "$c")" --subtree "$v")
            [ "$d" = "$dv" ] || { WHY="$c's digest of village $v differs from the village's"; return 1; }
        done
    done
}
field_of() { # field_of NODE ID FIELD: the field's value at NODE ("" if none)
    local got
    got=$(lx child get --data "$(data "$1")" "$2" --json 2>/dev/null) && [ -n "$got" ] || return 0
    printf '%s' "$got" | jexpr 'j.get(sys.argv[2], "")' "$3"
}
field_is() { # field_is NODE ID FIELD VALUE
    local got
    got=$(field_of "$1" "$2" "$3")
    [ "$got" = "$4" ] || { WHY="$1 has $3='$got' for $2, expected '$4'"; return 1; }
}
has_conflict() { # has_conflict NODE ID FIELD: prints the entry, if there is one
    local out
    out=$(lx conflicts --data "$(data "$1")" --json | jexpr '[c for c in j if c["kind"] == "conflict"
        if c["id"] == sys.argv[2] and c["field"] == sys.argv[3]]' "$2" "$3")
    [ "$out" != "[]" ] || { WHY="$1 lists no conflict for $2 $3"; return 1; }
    printf '%s' "$out"
}
own_id() { # own_id NODE [K]: the id of the K-th record NODE created itself
    lx child list --data "$(data "$1")" --json \
        | jexpr '[r["id"] for r in j if r["id"].startswith(sys.argv[2] + "-")][int(sys.argv[3])]' "$1" "${2:-0}"
}

# ---- the tree --------------------------------------------------------------

"$ROOT/scripts/gen-topology" --counties 510121,510321 --townships 2 --villages 2 \
    --name repl --base-port "$BASE_PORT" >"$TMP/topology.ini" || fail "gen-topology"
lx topology render --topology "$TMP/topology.ini" --out "$TREE" >/dev/null || fail "topology render"
while read -r code level zmq; do
    case $zmq in tcp://127.0.0.1:*) ;; *) fail "node $code not on 127.0.0.1: $zmq" ;; esac
    NODES+=("$code"); LEVEL[$code]=$level
    [ "$level" = village ] && VILLAGES+=("$code") && VCOUNT[$code]=0
done <"$TREE/nodes.txt"
assert_eq "${#NODES[@]}" 17 "nodes in the tree"
assert_eq "${#VILLAGES[@]}" 8 "villages in the tree"
for c in "${NODES[@]}"; do start_node "$c"; done
wait_until 20 all_links any
echo "tree of ${#NODES[@]} nodes up (${SECONDS}s)"

PROV=510000000000
CITY_A=510100000000 COUNTY_A=510121000000 TOWN_A=510121106000 VIL_A=510121106218
VIL_A2=510121106219 TOWN_A2=510121109000 VIL_A3=510121109219
CITY_B=510300000000 COUNTY_B=510321000000 TOWN_B=510321100000 VIL_B=510321100203
for c in $PROV $CITY_A $COUNTY_A $TOWN_A $VIL_A $VIL_A2 $TOWN_A2 $VIL_A3 $CITY_B $COUNTY_B $TOWN_B $VIL_B; do
    [ -n "${LEVEL[$c]:-}" ] || fail "the generated tree lacks $c"
done

# ---- 1. chain and fan-in ---------------------------------------------------

i=0
for v in "${VILLAGES[@]}"; do
    n=$((50 + 20 * i)); i=$((i + 1))   # 50 .. 190
    lx gen --subtree "$v" --count "$n" --seed "$i" --out "$TMP/$v.csv" || fail "gen $v"
    lx import --data "$(data "$v")" --csv "$TMP/$v.csv" >/dev/null || fail "import at $v"
    VCOUNT[$v]=$n
done
add_at() { # add_at NODE VILLAGE NAME: a child added at NODE for VILLAGE; prints its id
    lx child add --data "$(data "$1")" --json "{\"village_code\":\"$2\",\"name\":\"$3\",
        \"gender\":\"female\",\"birth_date\":\"2015-06-01\",\"categories\":[\"left_behind\"],
        \"guardian_type\":\"grandparent\",\"risk_level\":\"medium\"}" | tail -1
}
for k in 1 2; do
    id=$(add_at $TOWN_A $VIL_A2 "张小$k") && [ -n "$id" ] || fail "child add at township"
    VCOUNT[$VIL_A2]=$((VCOUNT[$VIL_A2] + 1))
    id=$(add_at $COUNTY_B $VIL_B "李小$k") && [ -n "$id" ] || fail "child add at county"
    VCOUNT[$VIL_B]=$((VCOUNT[$VIL_B] + 1))
done
TOWN_CHILD=$(add_at $TOWN_A $VIL_A "王小一") || fail "child add at township"
VCOUNT[$VIL_A]=$((VCOUNT[$VIL_A] + 1))
TOTAL=$(expected $PROV)
wait_until 30 tree_converged
assert_eq "$(records "$(data $PROV)")" "$TOTAL" "province records = all children"
field_is $VIL_A "$TOWN_CHILD" name "王小一" || fail "$WHY (a township's child reaches its village)"
field_is $PROV "$TOWN_CHILD" name "王小一" || fail "$WHY (a township's child reaches the province)"
wait_until 20 all_links quiet
for c in "${NODES[@]}"; do
    r=$(status_json "$c" | sed -n 's/^  "refused": \([0-9]*\),*$/\1/p')
    assert_eq "$r" 0 "refusals at $c after a clean fan-in"
done
echo "1. chain and fan-in: $TOTAL children at the province, every digest agrees (${SECONDS}s)"

# ---- 2. concurrent edits of one field at a village and at its county --------

CID=$(own_id $VIL_A)
[ -n "$CID" ] || fail "no record at $VIL_A"
lx child update --data "$(data $VIL_A)" "$CID" --set risk_level=medium >/dev/null || fail "baseline update"
for c in $(ancestors $VIL_A); do wait_until 10 field_is "$c" "$CID" risk_level medium; done
kill -STOP "${PID[$TOWN_A]}"
lx child update --data "$(data $VIL_A)" "$CID" --set risk_level=high >/dev/null \
    || { kill -CONT "${PID[$TOWN_A]}"; fail "update at the village"; }
sleep 0.2   # the county's write is the later one: last writer wins
lx child update --data "$(data $COUNTY_A)" "$CID" --set risk_level=low >/dev/null \
    || { kill -CONT "${PID[$TOWN_A]}"; fail "update at the county"; }
sleep 1
kill -CONT "${PID[$TOWN_A]}"
for c in $(ancestors $VIL_A); do wait_until 15 field_is "$c" "$CID" risk_level low; done
wait_until 15 tree_converged
wait_until 10 has_conflict $VIL_A "$CID" risk_level >/dev/null
got=$(has_conflict $VIL_A "$CID" risk_level)
assert_contains "$got" '"kept": {"author": "'$COUNTY_A'/' "the village's conflict keeps the county's write"
assert_contains "$got" '"lost": {"author": "'$VIL_A'/' "the village's conflict names its own write as lost"
# The two writes met first at the township, which logs the pair; conflict
# entries travel up, so the county (whose write won) and every level above
# list it too, once.
for c in $TOWN_A $COUNTY_A $PROV; do
    wait_until 10 has_conflict $c "$CID" risk_level >/dev/null
    got=$(has_conflict $c "$CID" risk_level)
    assert_contains "$got" '"value": "high"' "the conflict at $c names the village's value"
    assert_contains "$got" '"value": "low"' "the conflict at $c names the county's value"
done
n=$(lx conflicts --data "$(data $PROV)" --json | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c["kind"] == "conflict" and c["id"] == sys.argv[1]))' "$CID")
assert_eq "$n" 1 "the province lists the pair once"
echo "2. concurrent edits: every node holds risk_level=low; the conflict is listed at the village and at every level above (${SECONDS}s)"

# ---- 3. a move across counties, made at the province ------------------------

MID=$(own_id $VIL_A 1)
[ -n "$MID" ] && [ "$MID" != "$CID" ] || fail "no second record at $VIL_A"
MNAME=$(field_of $VIL_A "$MID" name)
[ -n "$MNAME" ] || fail "record $MID has no name at $VIL_A"
# The record as the losing village holds it, with the new village: what
# every node of the gaining side must hold.
lx child get --data "$(data $VIL_A)" "$MID" --json \
    | jexpr 'dict(j, village_code=sys.argv[2])' $VIL_B >"$TMP/moved.json" || fail "child get $MID"
full_record() { # full_record NODE ID: NODE holds the whole moved record
    local got
    got=$(lx child get --data "$(data "$1")" "$2" --json | jexpr 'j')
    [ "$got" = "$(cat "$TMP/moved.json")" ] || { WHY="$1 holds $got"; return 1; }
}
lx child update --data "$(data $PROV)" "$MID" --set village_code=$VIL_B >/dev/null || fail "move at the province"
VCOUNT[$VIL_A]=$((VCOUNT[$VIL_A] - 1)); VCOUNT[$VIL_B]=$((VCOUNT[$VIL_B] + 1))
wait_until 15 field_is $VIL_B "$MID" village_code $VIL_B
wait_until 15 tree_converged
is_stub() { # is_stub NODE ID: the record there is its id and village_code alone
    local got
    got=$(lx child get --data "$(data "$1")" "$2" --json | jexpr 'j')
    [ "$got" = "{\"id\": \"$2\", \"village_code\": \"$VIL_B\"}" ] \
        || { WHY="$1 holds $got, expected a stub"; return 1; }
}
for c in $VIL_B $TOWN_B $COUNTY_B $CITY_B $PROV; do
    full_record "$c" "$MID" || fail "$WHY (the gaining side gets the full record)"
done
field_is $VIL_B "$MID" name "$MNAME" || fail "$WHY"
for c in $VIL_A $TOWN_A $COUNTY_A $CITY_A; do
    wait_until 10 is_stub "$c" "$MID"
    assert_eq "$(lx digest --data "$(data "$c")")" "$(lx digest --data "$(data $PROV)" --subtree "$c")" \
        "$c's digest of its subtree equals the province's after the move"
done
for c in $VIL_B $TOWN_B $COUNTY_B $CITY_B; do
    assert_eq "$(lx digest --data "$(data "$c")")" "$(lx digest --data "$(data $PROV)" --subtree "$c")" \
        "$c's digest of its subtree equals the province's after the move"
done
lx child update --data "$(data $VIL_B)" "$MID" --set school_status=dropped_out --set risk_level=high \
    >/dev/null || fail "edit at the gaining village"
for c in $TOWN_B $COUNTY_B $CITY_B $PROV; do
    wait_until 10 field_is "$c" "$MID" school_status dropped_out
done
wait_until 10 tree_converged
for c in $VIL_A $TOWN_A $COUNTY_A $CITY_A; do is_stub "$c" "$MID" || fail "$WHY (after an edit on the gaining side)"; done
# An edit at the village the child left says where the child went, and
# leaves the stub as it was.
err=$(must_fail 1 lx child update --data "$(data $VIL_A)" "$MID" --set risk_level=low)
assert_contains "$err" "moved to village $VIL_B, outside this node" "an edit of a stub"
is_stub $VIL_A "$MID" || fail "$WHY (after a refused edit of the stub)"
echo "3. move across counties: full record on the gaining side, stubs on the losing side (${SECONDS}s)"

# ---- 4. a village restored from its parent ---------------------------------

RV=$VIL_A RP=$TOWN_A
before=$(lx digest --data "$(data $RV)")
stop_node $RV
rm -rf "$(data $RV)"
timeout 60 "$LIANXIN" restore --config "$TREE/$RV/node.ini" >>"$TREE/$RV/node.log" 2>&1 \
    || fail "restore of $RV exited $?"
assert_eq "$(lx digest --data "$(data $RV)")" "$(lx digest --data "$(data $RP)" --subtree $RV)" \
    "restored digest equals the parent's digest of the village"
assert_eq "$(lx digest --data "$(data $RV)")" "$before" "restored digest equals the digest before"
assert_eq "$(records "$(data $RV)")" "${VCOUNT[$RV]}" "records after restore"
# The child who moved away in 3. is a stub here again, as before the loss.
is_stub $RV "$MID" || fail "$WHY (the restored village's stub of the child who moved away)"
grep -q "and 1 moved-out stubs" "$TREE/$RP/node.log" || fail "the parent's log does not count the stub it sent"
start_node $RV
wait_until 15 links_ok any $RV
for k in 1 2; do
    RID=$(add_at $RV $RV "赵小$k") && [ -n "$RID" ] || fail "child add at the restored village"
    VCOUNT[$RV]=$((VCOUNT[$RV] + 1))
    wait_until 10 field_is $PROV "$RID" name "赵小$k"
done
UID_=$(own_id $RV 2)
lx child update --data "$(data $RV)" "$UID_" --set risk_level=high --set help_pairing=结对帮扶 \
    >/dev/null || fail "update at the restored village"
wait_until 10 field_is $PROV "$UID_" help_pairing 结对帮扶
wait_until 15 tree_converged
echo "4. restore: $RV rebuilt from $RP; its new children reach the province (${SECONDS}s)"

# ---- 5. a township killed with SIGKILL in the middle of an import ----------

KV=$VIL_A3 KT=$TOWN_A2
lx gen --subtree $KV --count 5000 --seed 99 --out "$TMP/big.csv" || fail "gen 5000"
had=$(fast_records "$(data $KT)")
[ "$had" = "$(expected $KT)" ] || fail "fast_records read $had at $KT, expected $(expected $KT)"
timeout 60 "$LIANXIN" import --data "$(data $KV)" --csv "$TMP/big.csv" >"$TMP/import.out" 2>&1 &
imp=$!
# Kill the township once the first batches reach it (at most ~0.3 s after
# the import began), while the rest are still on their way.
for _ in $(seq 1 30); do
    [ "$(fast_records "$(data $KT)")" -gt "$had" ] 2>/dev/null && break
    sleep 0.01
done
disown "${PID[$KT]}"   # no "Killed" notice from the shell
kill -9 "${PID[$KT]}"
wait_until 10 dead "${PID[$KT]}"
held=$(( $(records "$(data $KT)") - had ))
sleep 1
start_node $KT
wait $imp || fail "import of 5000 at $KV: $(cat "$TMP/import.out")"
VCOUNT[$KV]=$((VCOUNT[$KV] + 5000))
TOTAL=$(expected $PROV)
wait_until 60 tree_converged
assert_eq "$(records "$(data $PROV)")" "$TOTAL" "province records after the township's SIGKILL"
wait_until 20 all_links quiet
echo "5. kill -9 and restart (the township held $held of the import's children when killed): the province holds all $TOTAL children (${SECONDS}s)"

# SIGTERM stops every node cleanly.
all_dead() { local c; for c in "${NODES[@]}"; do dead "${PID[$c]}" || { WHY="$c still runs"; return 1; }; done; }
for c in "${NODES[@]}"; do kill -TERM "${PID[$c]}"; done
wait_until 15 all_dead
for c in "${NODES[@]}"; do
    wait "${PID[$c]}"; rc=$?
    [ $rc = 0 ] || [ $rc = 127 ] || soft_fail "node $c exited $rc on SIGTERM"
done

if [ ${#SOFT[@]} -gt 0 ]; then
    dump_logs
    printf 'FAILED: %s\n' "${SOFT[@]}" >&2
    exit 1
fi
echo ok
