#!/usr/bin/env bash
# Audit chains over running links (ports from 24500, 127.0.0.1 only), a
# village -> township -> county chain: entries appended at the village
# (tests/lxaudit, standing in for the API) reach the county through the
# township, also those appended while the township was down; the county's
# `audit verify` passes and shows the village's and the township's chains,
# and `audit list` filters them; after a byte of the county's copy of the
# village's chain is flipped (county stopped), verify fails naming the
# village's code and the entry's seq; an entry altered at the village
# before it went up is refused once at the township; and a chain outside
# the child or a rewrite of held history (lxpeer) is refused. Bounded waits.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP   # so that lib.sh's EXIT trap stops the nodes
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LXAUDIT=${LXAUDIT:-$ROOT/${BUILD:-build}/tests/lxaudit}
BASE_PORT=${AUDIT_BASE_PORT:-$(port 24500)}
X=510104000000 T=510104001000 V=510104001001
NODES=($X $T $V)
cat > "$TMP/tree.ini" <<EOF
[tree]
name = audit
base_port = $BASE_PORT
[node $X]
name = 锦江区
[node $T]
name = 督院街街道
[node $V]
name = 一村
EOF
lx topology render --topology "$TMP/tree.ini" --out "$TMP/t" >/dev/null || fail "render"

fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
# count AT NODE: how many entries of NODE's chain AT holds.
count() {
    lx audit list --data "$(D $1)" --node "$2" --json | python3 -c '
import json, sys
node = sys.argv[1]
print(sum(1 for e in json.load(sys.stdin) if e["node"] == node))' "$2"
}
has() { [ "$(count "$1" "$2")" = "$3" ]; }

for c in "${NODES[@]}"; do start_node $c; done

# 1. Entries appended at the village reach the county.
"$LXAUDIT" append --data "$(D $V)" --count 5 --principal jintang-education --record rec-a \
    --purpose "home visit" || fail "lxaudit append at the village"
wait_until 20 has $X $V 5
"$LXAUDIT" append --data "$(D $V)" --count 2 --principal jintang-police --record rec-b \
    --action patch || fail "lxaudit append at the village"
"$LXAUDIT" append --data "$(D $T)" --count 1 --principal township-civil --record rec-a \
    || fail "lxaudit append at the township"
wait_until 20 has $X $V 7
wait_until 20 has $X $T 1

# 2. While the township is down the village's chain grows; it arrives after.
stop_node $T
"$LXAUDIT" append --data "$(D $V)" --count 3 --principal jintang-education --record rec-c \
    || fail "lxaudit append at the village"
sleep 1
assert_eq "$(count $X $V)" 7 "the county while the township is down"
start_node $T
wait_until 30 has $X $V 10
wait_until 20 has $T $V 10

# 3. The county verifies the chains of its subtree, and lists them.
out=$(lx audit verify --data "$(D $X)") || fail "audit verify at the county: $out"
assert_contains "$out" "$V  10 entries  ok" "the village's chain at the county"
assert_contains "$out" "$T  1 entries  ok" "the township's chain at the county"
lx audit verify --data "$(D $V)" >/dev/null || fail "audit verify at the village"
json=$(lx audit verify --data "$(D $X)" --json) || fail "audit verify --json"
printf '%s' "$json" | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["ok"] is True, v
assert [c["node"] for c in v["chains"]] == [sys.argv[1], sys.argv[2]], v' "$T" "$V" \
    || fail "audit verify --json: $json"
# The same chain, hash for hash, at the village and the county.
[ "$(lx audit list --data "$(D $V)" --json)" = "$(lx audit list --data "$(D $X)" --node $V --json)" ] \
    || fail "the county's copy of the village's chain differs from the village's"
n=$(lx audit list --data "$(D $X)" --principal jintang-police --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n" 2 "list --principal"
n=$(lx audit list --data "$(D $X)" --record rec-a --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n" 6 "list --record (the village's five and the township's one)"
n=$(lx audit list --data "$(D $X)" --since 2000-01-01 --until 2000-12-31 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n" 0 "list --since/--until in 2000"
n=$(lx audit list --data "$(D $X)" --since "$(date +%Y-%m-%d)" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n" 11 "list --since today"
# Only the fields of an entry, never a personal value.
lx audit list --data "$(D $X)" --json | python3 -c '
import json, sys
want = {"node", "seq", "time", "time_ms", "principal", "role", "action", "ids", "purpose",
        "result", "hash"}
for e in json.load(sys.stdin):
    assert set(e) == want, sorted(e)' || fail "audit list --json: unexpected fields"
must_fail 2 lx audit list --data "$(D $X)" --since yesterday >/dev/null

# 4. A child cannot send a chain outside itself, nor rewrite what its
# parent holds: lxpeer takes the village's place and tries both.
refusals() {
    lx status --data "$(D "$1")" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["refused"])'
}
PEER=${LXPEER:-$ROOT/${BUILD:-build}/tests/lxpeer}
stop_node $V
before=$(refusals $T)
timeout 30 "$PEER" --config "$TREE/$V/node.ini" audit-up >"$TMP/peer.out" 2>&1 \
    || fail "lxpeer audit-up: $(cat "$TMP/peer.out")"
assert_contains "$(cat "$TMP/peer.out")" "the first held to 10" "the township's answer for our chain"
refused_two() { [ "$(refusals $T)" -ge $((before + 2)) ]; }
wait_until 10 refused_two
grep -q "lies outside the sender" "$TREE/$T/node.log" || fail "the township's log names the foreign chain"
grep -q "differs from the one held" "$TREE/$T/node.log" || fail "the township's log names the rewrite"
assert_eq "$(count $T $V)" 10 "the township's copy after the refusals"
lx audit verify --data "$(D $T)" >/dev/null || fail "the township's chains after the refusals"

# 5. Tampering at the county's copy is found at that entry.
stop_node $X
"$LXAUDIT" flip --data "$(D $X)" --node $V --seq 4 --offset 30 || fail "lxaudit flip"
err=$(must_fail 1 lx audit verify --data "$(D $X)")
assert_contains "$err" "audit chain $V broken at entry 4" "verify after tampering"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "verify's message is not one line: $err"
out=$(lx audit verify --data "$(D $X)" 2>/dev/null)
assert_contains "$out" "$T  1 entries  ok" "the township's chain still verifies"
json=$(lx audit verify --data "$(D $X)" --json 2>/dev/null)
printf '%s' "$json" | python3 -c '
import json, sys
v = json.load(sys.stdin)
c = {c["node"]: c for c in v["chains"]}
assert v["ok"] is False and c[sys.argv[1]]["ok"] and c[sys.argv[2]]["broken_at"] == 4, v' "$T" "$V" \
    || fail "audit verify --json after tampering: $json"

# 6. An entry altered at the village before it went up: the township takes
# the chain up to it and refuses it, once; the village offers the chain
# again only after a while (no storm of refusals).
start_node $V
stop_node $T
"$LXAUDIT" append --data "$(D $V)" --count 3 --principal jintang-education \
    || fail "lxaudit append at the village"
"$LXAUDIT" flip --data "$(D $V)" --node $V --seq 12 --offset 30 || fail "lxaudit flip at the village"
start_node $T
wait_until 20 has $T $V 11
wait_until 10 grep -q "entry 12 does not continue the chain held here" "$TREE/$T/node.log"
sleep 1
before=$(refusals $T)
[ "$before" -ge 1 ] || fail "the township's status counts no refusal"
sleep 3
assert_eq "$(refusals $T)" "$before" "refusals at the township 3 s later"
assert_eq "$(grep -c "entry 12 does not continue" "$TREE/$T/node.log")" 1 "refusals logged"
assert_eq "$(count $T $V)" 11 "the township's copy stops before the altered entry"
grep -q "audit chain $V: the parent holds it to 11" "$TREE/$V/node.log" \
    || fail "the village's log does not say its chain was refused"

# The village's store is lost and rebuilt from the township: it gets its
# chain back as the township holds it (the 11 good entries), goes on from
# there, and its next entries are taken above, not refused.
stop_node $V
mv "$(D $V)" "$TMP/old-village-data"
timeout 60 "$LIANXIN" restore --config "$TREE/$V/node.ini" >>"$TREE/$V/node.log" 2>&1 || fail "restore"
assert_eq "$(count $V $V)" 11 "the restored village's own chain"
lx audit verify --data "$(D $V)" >/dev/null || fail "the restored chain verifies"
start_node $V
"$LXAUDIT" append --data "$(D $V)" --count 2 --principal jintang-education \
    || fail "lxaudit append after the restore"
wait_until 20 has $T $V 13
lx audit verify --data "$(D $T)" >/dev/null || fail "the township's chains after the restore"
echo "ok"
