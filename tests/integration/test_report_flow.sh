#!/usr/bin/env bash
# The report workflow over running links (ports from 24300, 127.0.0.1
# only), three levels: a village submits its quarterly report; the
# township's inbox shows it with no differences from its own copy of the
# village's data; the township returns it with a reason, which the
# village's state shows; the village edits and resubmits (revision 2,
# naming the changed cells); the township approves; and the county's
# `report state` shows the village approved. Bounded waits.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP   # so that lib.sh's EXIT trap stops the nodes
BASE_PORT=${REPORT_FLOW_BASE_PORT:-$(port 24300)}
X=510104000000 T=510104001000 V1=510104001001 V2=510104001002
NODES=($X $T $V1 $V2)
cat > "$TMP/tree.ini" <<EOF
[tree]
name = report-flow
base_port = $BASE_PORT
[node $X]
name = 锦江区
[node $T]
name = 督院街街道
[node $V1]
name = 一村
[node $V2]
name = 二村
EOF
lx topology render --topology "$TMP/tree.ini" --out "$TMP/t" >/dev/null || fail "render"

fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
same_digest() { [ "$(lx digest --data "$(D $1)" --subtree $V1)" = "$(lx digest --data "$(D $2)" --subtree $V1)" ]; }
# inbox_has AT CHILD REV STATE: AT's inbox shows CHILD's last revision REV
# of the quarter in STATE, with no differences from AT's own data.
inbox_has() {
    lx report inbox --data "$(D $1)" --quarter "$Q" --json | python3 -c '
import json, sys
child, rev, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for e in json.load(sys.stdin):
    if e["child"] == child and e["revision"] == rev and e["state"] == state:
        sys.exit(0 if e["differences"] == [] else "differences: %s" % e["differences"])
sys.exit(1)' "$2" "$3" "$4"
}
# state_is AT NODE REV STATE [REASON]: AT's state table shows NODE so.
state_is() {
    lx report state --data "$(D $1)" --json | python3 -c '
import json, sys
q, node, rev, state = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reason = sys.argv[5] if len(sys.argv) > 5 else None
for e in json.load(sys.stdin):
    if e["node"] == node and e["quarter"] == q and e["revision"] == rev and e["state"] == state:
        sys.exit(0 if reason is None or e.get("reason") == reason else 1)
sys.exit(1)' "$Q" "${@:2}"
}

# The current quarter in China Standard Time: what is entered now counts.
Q=$(python3 -c 'import time; t = time.gmtime(time.time() + 8 * 3600); print("%dQ%d" % (t.tm_year, (t.tm_mon - 1) // 3 + 1))')

for c in "${NODES[@]}"; do start_node $c; done
add() {
    lx child add --data "$(D $V1)" --json \
        '{"village_code":"'$V1'","name":"'"$1"'","gender":"'"$2"'","birth_date":"'"$3"'"}' >/dev/null \
        || fail "child add at the village"
}
add 王小明 male 2015-03-02
add 李小红 female 2012-06-20
wait_until 20 same_digest $V1 $T

# 1. The village submits; the township's inbox shows it, no differences.
out=$(lx report submit --data "$(D $V1)" --quarter "$Q") || fail "report submit at the village"
assert_contains "$out" "revision 1 frozen" "the first submission"
out=$(lx report submit --data "$(D $V1)" --quarter "$Q") || fail "submit again"
assert_contains "$out" "nothing new" "the same figures make no new revision"
wait_until 20 inbox_has $T $V1 1 submitted
wait_until 20 state_is $X $V1 1 submitted
txt=$(lx report inbox --data "$(D $T)" --quarter "$Q")
assert_contains "$txt" "no differences" "the inbox's text form"
# Only the township can answer the village.
must_fail 1 lx report approve --data "$(D $X)" --child $V1 --quarter "$Q" >/dev/null
must_fail 1 lx report approve --data "$(D $T)" --child $V2 --quarter "$Q" >/dev/null

# 2. The township returns it with a reason; the village sees both.
REASON="走访记录不全，请补录"
lx report return --data "$(D $T)" --child $V1 --quarter "$Q" --reason "$REASON" >/dev/null \
    || fail "report return at the township"
wait_until 20 state_is $V1 $V1 1 returned "$REASON"
wait_until 20 state_is $X $V1 1 returned "$REASON"
lx report state --data "$(D $V1)" | grep -q "returned.*reason: $REASON" \
    || fail "the village's state text does not show the reason"

# 3. The village edits and resubmits: revision 2, naming what changed.
add 张小刚 male 2019-01-15
out=$(lx report submit --data "$(D $V1)" --quarter "$Q" --json) || fail "resubmit"
python3 -c '
import json, sys
j = json.loads(sys.argv[1])
assert j["revision"] == 2 and j["created"], j
c = [x for x in j["changes"] if x["column"] == "total" and x["total"]]
assert c and c[0]["old"] == 2 and c[0]["new"] == 3, j["changes"]' "$out" || fail "revision 2: $out"
wait_until 20 same_digest $V1 $T
wait_until 20 inbox_has $T $V1 2 submitted

# 4. The township approves; the village and the county see it.
lx report approve --data "$(D $T)" --child $V1 --quarter "$Q" >/dev/null || fail "approve"
wait_until 20 state_is $V1 $V1 2 approved
wait_until 20 state_is $X $V1 2 approved
inbox_has $T $V1 2 approved || fail "the township's inbox does not show the approval"

# 5. The township's own report goes up too, and the county sees it.
lx report submit --data "$(D $T)" --quarter "$Q" >/dev/null || fail "submit at the township"
wait_until 20 inbox_has $X $T 1 submitted
lx report state --data "$(D $X)" --json | python3 -c '
import json, sys
nodes = {e["node"] for e in json.load(sys.stdin)}
sys.exit(0 if {"'$T'", "'$V1'"} <= nodes else "nodes: %s" % nodes)' || fail "county state table"

# 6. A hostile or broken child: a report that does not decode and another
# node's report are refused (counted in status), acknowledged, and kept out
# of the inbox; the township serves on.
PEER=${LXPEER:-$(dirname "$LIANXIN")/tests/lxpeer}
refusals() {
    lx status --data "$(D $1)" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["refused"])'
}
more_refusals() { [ "$(refusals "$1")" -ge "$2" ]; }
kill -TERM "${PIDS[3]}" 2>/dev/null; wait "${PIDS[3]}" 2>/dev/null   # V2 stops; lxpeer takes its place
before=$(refusals $T)
timeout 30 "$PEER" --config "$TMP/t/$V2/node.ini" report-up "$Q" >"$TMP/peer.out" 2>&1 \
    || fail "lxpeer report-up: $(cat "$TMP/peer.out")"
wait_until 10 more_refusals $T $((before + 2))
lx report inbox --data "$(D $T)" --quarter "$Q" | grep -q "^$V2" && fail "a refused report is in the inbox"
grep -q "not of the child $V2" "$TMP/t/$T/node.log" || fail "the township's log does not name the refusal"
grep -qE "王小明|李小红|张小刚|走访记录" "$TMP"/t/*/node.log && fail "a node logged a name or a reason"
echo "report flow: ok"
