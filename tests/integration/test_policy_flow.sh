#!/usr/bin/env bash
# Policies over running links (ports from 24100, 127.0.0.1 only): a schema
# policy issued at the province reaches a village four levels down and
# governs its writes there; every level's acknowledgement reaches the
# province, including a village that was offline while the policy was
# issued; a newer version replaces the older everywhere; a policy a
# village issued stays in the village, and one sent up by a child is
# refused (counted in status) while the parent serves on. Bounded waits.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP   # so that lib.sh's EXIT trap stops the nodes
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEER=${LXPEER:-$ROOT/${BUILD:-build}/tests/lxpeer}
BASE_PORT=${POLICY_BASE_PORT:-$(port 24100)}
P=510000000000 C=510100000000 X=510104000000 T=510104001000
V1=510104001001 V2=510104001002
NODES=($P $C $X $T $V1 $V2)
cat > "$TMP/tree.ini" <<EOF
[tree]
name = policy-flow
base_port = $BASE_PORT
[node $P]
name = 四川省
[node $C]
name = 成都市
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
# holds NODE ISSUER KIND VERSION: the node holds exactly that version.
holds() {
    lx policy list --data "$(D "$1")" --json | python3 -c '
import json, sys
want = (sys.argv[1], sys.argv[2], int(sys.argv[3]))
sys.exit(0 if any((p["issuer"], p["kind"], p["version"]) == want for p in json.load(sys.stdin)) else 1)' "$2" "$3" "$4"
}
# acked AT NODE VERSION: AT's acknowledgement table shows NODE applying the
# province's schema policy at VERSION.
acked() {
    lx policy status --data "$(D "$1")" --json | python3 -c '
import json, sys
node, want, p = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for n in json.load(sys.stdin)["nodes"]:
    if n["code"] == node and any((v["issuer"], v["kind"], v["version"]) == (p, "schema", want)
                                 for v in n["versions"]):
        sys.exit(0)
sys.exit(1)' "$2" "$3" "$P"
}
refusals() {
    lx status --data "$(D "$1")" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["refused"])'
}
more_refusals() { [ "$(refusals "$1")" -gt "$2" ]; }

for c in $P $C $X $T $V1; do start_node $c; done   # V2 is offline

# 1. The province's schema policy (guardian_type required) reaches the
# village four levels down, and governs its writes there.
lx policy issue --data "$(D $P)" --file "$ROOT/config/policies/schema.json" >/dev/null \
    || fail "policy issue at the province"
for c in $C $X $T $V1; do wait_until 20 holds $c $P schema 1; done
err=$(lx child add --data "$(D $V1)" --json \
      '{"village_code":"'$V1'","name":"王小明","gender":"male","birth_date":"2015-03-02"}' 2>&1 >/dev/null) \
    && fail "a write lacking a field the province made required was stored"
assert_contains "$err" "guardian_type" "the refusal names the required field"
id=$(lx child add --data "$(D $V1)" --json \
     '{"village_code":"'$V1'","name":"王小明","gender":"male","birth_date":"2015-03-02","guardian_type":"grandparent","x_hukou_type":"rural"}' | tail -n 1) \
    || fail "a write that satisfies the schema policy was refused"
# The local field travels up like any other.
wait_until 20 bash -c "'$LIANXIN' child get --data '$(D $P)' '$id' --json | grep -q '\"x_hukou_type\": \"rural\"'"

# 2. Every node's acknowledgement reaches the province.
for c in $C $X $T $V1; do wait_until 20 acked $P $c 1; done
acked $P $V2 1 && fail "the province shows an acknowledgement from a node that never ran"

# 3. The village that was offline gets the policy when it comes up, and the
# province sees it.
start_node $V2
wait_until 20 holds $V2 $P schema 1
wait_until 20 acked $P $V2 1

# 4. A newer version replaces the older at every level; the province sees
# every node on it.
sed 's/"version": 1/"version": 2/' "$ROOT/config/policies/schema.json" > "$TMP/schema2.json"
lx policy issue --data "$(D $P)" --file "$TMP/schema2.json" >/dev/null || fail "issue version 2"
for c in $C $X $T $V1 $V2; do wait_until 20 holds $c $P schema 2; done
for c in $C $X $T $V1 $V2; do wait_until 20 acked $P $c 2; done
holds $V1 $P schema 1 && fail "version 1 still held beside version 2"
lx policy status --data "$(D $P)" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
lag = [n["code"] for n in j["nodes"] if not n["up_to_date"]]
sys.exit("lagging: %s" % lag if lag else 0)' || fail "the province shows nodes lagging"

# 5. A village's own policy stays there; sent up by a child it is refused,
# counted, and the parent serves on.
python3 - "$ROOT/config/policies/alerts.json" "$V1" > "$TMP/village.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["issuer"] = sys.argv[2]; d["version"] = 1
print(json.dumps(d, ensure_ascii=False))
PY
lx policy issue --data "$(D $V1)" --file "$TMP/village.json" --out "$TMP/village.env" >/dev/null \
    || fail "issue at the village"
sleep 1
holds $T $V1 alerts 1 && fail "a village's policy went up to its township"
stop_node $V1
before=$(refusals $T)
"$PEER" --config "$TMP/t/$V1/node.ini" policy-up "$TMP/village.env" >"$TMP/peer.out" 2>&1 \
    || { cat "$TMP/peer.out" >&2; fail "the township did not serve on after a policy from a child"; }
wait_until 10 more_refusals $T "$before"   # the link state is saved within 0.5 s
grep -q "policy.*from a child" "$TMP/t/$T/node.log" || fail "the township's log does not name the refusal"
holds $T $V1 alerts 1 && fail "the township took a policy from a child"
echo "policy flow: ok"
