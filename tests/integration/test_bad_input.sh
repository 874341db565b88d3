#!/usr/bin/env bash
# Bad input on a replication link: a township node faces a test peer
# (build/tests/lxpeer) that impersonates one of its villages with the
# village's own node.ini and keys. After every scenario the node must still
# run and answer a hello, `status --json` must show the refusal counted with
# its reason, a refused change must not be stored while a valid one sent the
# same way is, and the node's log must never hold a child's name.
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LXPEER=${LXPEER:-$(dirname "$LIANXIN")/tests/lxpeer}
[ -x "$LXPEER" ] || fail "$LXPEER is not built (make unit)"
BASE_PORT=${BAD_INPUT_BASE_PORT:-$(port 23400)}

TOWN=510121106000
V1=510121106218     # the village lxpeer impersonates
V2=510121106219     # its sibling: a village V1 may not write
OWN_NAME=本村王小花
FOREIGN_NAME=测试姓名
FUTURE_NAME=未来李小草
BAD_NAME=错值赵小树

"$ROOT/scripts/gen-topology" --counties 510121 --townships 1 --villages 2 \
    --base-port "$BASE_PORT" >"$TMP/topo.ini" || fail "gen-topology"
lx topology render --topology "$TMP/topo.ini" --out "$TMP/tree" >/dev/null || fail "topology render"
PC=$TMP/tree/$TOWN/node.ini
PD=$TMP/tree/$TOWN/data
VC=$TMP/tree/$V1/node.ini
for f in "$PC" "$VC" "$TMP/tree/$V2/node.ini"; do [ -f "$f" ] || fail "render wrote no $f"; done
grep -q "^bind = tcp://127.0.0.1:" "$PC" || fail "the township does not bind to 127.0.0.1: $(grep bind "$PC")"
grep -A1 "^\[parent\]" "$VC" | grep -q "^code = $TOWN" || fail "$VC: the parent is not $TOWN"
PORT=$(sed -n 's/^bind = tcp:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$PC")

# Only the township runs; its county parent is absent (it keeps saying hello).
LOG=$TMP/node.log
env -u GLIBC_TUNABLES "$LIANXIN" node --config "$PC" >"$LOG" 2>&1 &
NODE=$!
PIDS+=("$NODE")
for _ in $(seq 100); do
    grep -q "children connect to" "$LOG" && break
    kill -0 "$NODE" 2>/dev/null || fail "the node exited at start (port $PORT in use?): $(cat "$LOG")"
    sleep 0.1
done
grep -q "children connect to" "$LOG" || fail "the node did not start within 10 s: $(cat "$LOG")"

# The node ran itself again, same process, with its heap in huge pages
# (common/heap.c): the tunable is in the environment of the PID the
# shell started.
# (glibc cuts the variable at each ':' in place, in the memory /proc
# shows: the tunables after the first show as entries of their own.)
tunables() { tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^GLIBC_TUNABLES=//p'; }
tunable_entries() { tr '\0' '\n' <"/proc/$1/environ" | grep -c 'glibc\.malloc\.hugetlb'; }
assert_eq "$(tunables "$NODE")" "glibc.malloc.hugetlb=1" "GLIBC_TUNABLES of the running node"

# status_check PYTHON-CONDITION: s is the status object, c the entry of V1 in
# s["children"]. Polls (the node saves its link state within a second).
status_check() {
    lx status --data "$PD" --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = [x for x in s["children"] if x["code"] == sys.argv[2]][0]
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" "$V1"
}
expect_status() { # CONDITION WHAT
    for _ in $(seq 50); do
        status_check "$1" && return 0
        sleep 0.1
    done
    fail "$2: status does not satisfy [$1]: $(lx status --data "$PD" --json)"
}

# Runs lxpeer (bounded); it must exit 0. Its output is in $TMP/peer.out.
peer() {
    timeout 30 "$LXPEER" --config "$VC" "$@" >"$TMP/peer.out" 2>&1 \
        || fail "lxpeer $*: $(cat "$TMP/peer.out")"
}
peer_id() { sed -n 's/^id //p' "$TMP/peer.out"; }

# The node survived and still answers its child.
alive() { # WHAT
    kill -0 "$NODE" 2>/dev/null || fail "the node died after $1: $(tail -20 "$LOG")"
    timeout 30 "$LXPEER" --config "$VC" hello >"$TMP/hello.out" 2>&1 \
        || fail "no welcome after $1: $(cat "$TMP/hello.out")"
}

not_stored() { # ID NAME WHAT
    must_fail 1 lx child get --data "$PD" "$1" >/dev/null
    lx child list --data "$PD" | grep -qF "$2" && fail "$3: the record is in the parent's store"
    return 0
}

# Expected totals, checked exactly after every scenario.
REF=0; SKEW=0; MAL=0
totals() { echo "c[\"refused\"] == $REF and s[\"refused\"] == $REF and s[\"refusals\"][\"clock_skew\"] == $SKEW and s[\"refusals\"][\"malformed\"] == $MAL"; }

peer hello
assert_contains "$(cat "$TMP/peer.out")" "received welcome" "hello"
expect_status "s[\"running\"] and $(totals) and s[\"refusals\"][\"denied_connections\"] == 0" "a clean start"
assert_eq "$(records "$PD")" "0" "records at start"

# A valid change sent the same way is stored.
peer own-record --name "$OWN_NAME"
OWN=$(peer_id)
[ -n "$OWN" ] || fail "own-record printed no id: $(cat "$TMP/peer.out")"
assert_contains "$(cat "$TMP/peer.out")" "received ack" "own-record acknowledged"
got=$(lx child get --data "$PD" "$OWN" --json) || fail "own-record: not stored"
assert_contains "$got" "\"name\": \"$OWN_NAME\"" "own-record stored"
assert_contains "$got" "\"village_code\": \"$V1\"" "own-record stored"
assert_eq "$(records "$PD")" "1" "records after own-record"
alive own-record
expect_status "$(totals)" "own-record refuses nothing"

# A change to a record of another village: acknowledged, refused, not stored.
peer foreign-record --village "$V2" --name "$FOREIGN_NAME"
FID=$(peer_id)
[ -n "$FID" ] || fail "foreign-record printed no id: $(cat "$TMP/peer.out")"
alive foreign-record
REF=$((REF + 1))
expect_status "$(totals) and \"outside\" in c[\"last_refusal\"] and \"$V2\" in c[\"last_refusal\"]" \
    "foreign-record refusal"
not_stored "$FID" "$FOREIGN_NAME" "foreign-record"
assert_eq "$(lx child list --data "$PD" --village "$V2" | wc -l)" "0" "nothing in $V2"
assert_eq "$(records "$PD")" "1" "records after foreign-record"
grep -q "refused from child .*: a change to record $FID" "$LOG" || fail "the refusal of $FID is not logged"

# A change one hour ahead of the clock: acknowledged, refused, not stored.
peer future-hlc --name "$FUTURE_NAME"
XID=$(peer_id)
[ -n "$XID" ] || fail "future-hlc printed no id: $(cat "$TMP/peer.out")"
alive future-hlc
REF=$((REF + 1)); SKEW=$((SKEW + 1))
expect_status "$(totals) and \"ahead\" in c[\"last_refusal\"]" "future-hlc refusal"
not_stored "$XID" "$FUTURE_NAME" "future-hlc"
assert_eq "$(records "$PD")" "1" "records after future-hlc"

# Bytes that are not msgpack, then an unknown message type.
peer malformed
alive malformed
REF=$((REF + 1)); MAL=$((MAL + 1))
expect_status "$(totals) and \"malformed\" in c[\"last_refusal\"]" "malformed refusal"

peer unknown-type
alive unknown-type
REF=$((REF + 1)); MAL=$((MAL + 1))
expect_status "$(totals) and \"99\" in c[\"last_refusal\"]" "unknown-type refusal"

# A frame over the size limit: libzmq drops the connection before the node
# sees it (nothing to count); a fresh connection is still answered.
peer oversized
assert_contains "$(cat "$TMP/peer.out")" "dropped the connection" "oversized frame"
alive oversized
expect_status "$(totals)" "after oversized"

# An unlisted key: no welcome, the connection denied and counted.
lx keygen --out "$TMP/stranger" >/dev/null || fail "keygen"
peer --keys "$TMP/stranger" --wait 3000 no-connect
assert_contains "$(cat "$TMP/peer.out")" "no welcome" "no-connect"
alive no-connect
expect_status "$(totals) and s[\"refusals\"][\"denied_connections\"] >= 1" "no-connect denied"
grep -q "not on the allowlist" "$LOG" || fail "the denied connection is not logged"

# The valid record is still there, the refused ones are not.
assert_eq "$(records "$PD")" "1" "records at the end"
assert_eq "$(lx child list --data "$PD" | cut -f1)" "$OWN" "the only record"

# The log names records by id, never a child's name.
check_log() {
    grep -qF "测试姓名" "$LOG" && fail "the node's log holds a child's name: $(grep -F 测试姓名 "$LOG")"
    for n in "$@"; do
        grep -qF "$n" "$LOG" && fail "the node's log holds the name $n"
    done
    return 0
}
check_log "$OWN_NAME" "$FOREIGN_NAME" "$FUTURE_NAME"

# The checks below are collected and fail the test at its end, so that one
# failing does not hide the others.
BUGS=()
bug() { echo "FAIL: $*" >&2; BUGS+=("$*"); }
status_wait() { for _ in $(seq 50); do status_check "$1" && return 0; sleep 0.1; done; return 1; }
child_refused() {
    lx status --data "$PD" --json | python3 -c '
import json, sys
print([x for x in json.load(sys.stdin)["children"] if x["code"] == sys.argv[1]][0]["refused"])' "$V1"
}

# A change whose value the schema refuses (gender "alien"): acknowledged,
# refused like any other bad change, not stored.
peer bad-value --name "$BAD_NAME"
BID=$(peer_id)
[ -n "$BID" ] || fail "bad-value printed no id: $(cat "$TMP/peer.out")"
alive bad-value
if ! status_wait "c[\"refused\"] == $((REF + 1)) and s[\"refused\"] == $((REF + 1)) and \"gender\" in c[\"last_refusal\"]"; then
    bug "bad-value: a change with gender=alien from child $V1 was not refused (children[].refused $(child_refused), expected $((REF + 1)))"
fi
if lx child get --data "$PD" "$BID" >/dev/null 2>&1; then
    bug "bad-value: record $BID with gender=alien is in the parent's store"
fi

# A HELLO with another protocol version: REFUSE naming it, reported and
# counted like every other refusal of a frame from the child.
before=$(child_refused)
peer hello-version 7
assert_contains "$(cat "$TMP/peer.out")" "protocol version 7" "hello-version refuse"
alive hello-version
expect_status "\"protocol version 7\" in c[\"last_refusal\"]" "hello-version reason"
if ! status_wait "c[\"refused\"] == $((before + 1))"; then
    bug "hello-version: the refused HELLO is not counted (children[].refused stays $(child_refused), expected $((before + 1)))"
fi

check_log "$OWN_NAME" "$FOREIGN_NAME" "$FUTURE_NAME" "$BAD_NAME"

# SIGTERM stops the node cleanly.
kill -TERM "$NODE"
for _ in $(seq 100); do kill -0 "$NODE" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NODE" 2>/dev/null && fail "the node did not stop within 10 s of SIGTERM"
wait "$NODE"; rc=$?
assert_eq "$rc" "0" "node exit status after SIGTERM"

# An operator's own heap setting is kept as set.
GLIBC_TUNABLES=glibc.malloc.hugetlb=0 "$LIANXIN" node --config "$PC" >"$LOG" 2>&1 &
NODE=$!
PIDS+=("$NODE")
for _ in $(seq 100); do grep -q "children connect to" "$LOG" && break; sleep 0.1; done
grep -q "children connect to" "$LOG" || fail "the node did not start again within 10 s: $(cat "$LOG")"
assert_eq "$(tunables "$NODE")" "glibc.malloc.hugetlb=0" "GLIBC_TUNABLES of a node started with the operator's own"
assert_eq "$(tunable_entries "$NODE")" "1" "hugetlb settings in the environment of a node started with the operator's own"
kill -TERM "$NODE"
wait "$NODE" || fail "the node restarted with the operator's tunables did not stop cleanly"
[ ${#BUGS[@]} -eq 0 ] || fail "${#BUGS[@]} check(s) failed: $(printf '%s; ' "${BUGS[@]}")"
echo "ok"
