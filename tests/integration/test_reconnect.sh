#!/usr/bin/env bash
# A village whose parent stays away looks for it every 50-100 ms for
# reconnect_fast_ms, then every reconnect_slow_ms (a metered mobile link
# must not carry ten connection attempts a second all day); a parent back
# is found within the slow interval; once that link drops, the search is
# quick again. Connection attempts are counted by a listener on the
# parent's port that accepts and closes (as a server whose node is down
# but whose host answers would refuse them).
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE_PORT=${RECONNECT_BASE_PORT:-$(port 23600)}
TOWN=510121106000
VIL=510121106218
TREE=$TMP/tree

"$ROOT/scripts/gen-topology" --counties 510121 --townships 1 --villages 1 \
    --base-port "$BASE_PORT" >"$TMP/topo.ini" || fail "gen-topology"
lx topology render --topology "$TMP/topo.ini" --out "$TREE" >/dev/null || fail "topology render"
VC=$TREE/$VIL/node.ini
PORT=$(sed -n 's/^bind = tcp:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$TREE/$TOWN/node.ini")
[ -n "$PORT" ] || fail "no township port in $TREE/$TOWN/node.ini"
# Short intervals for the test: quick for 1.5 s, then every 3 to 6 s.
sed -i 's/^\[node\]$/[node]\nreconnect_fast_ms = 1500\nreconnect_slow_ms = 3000/' "$VC"
grep -q "^reconnect_slow_ms = 3000" "$VC" || fail "could not set the intervals in $VC"

# count_attempts SECONDS OUT: accepts and closes connections on the
# township's port for SECONDS, writing each one's time (s since start).
count_attempts() {
    python3 - "$PORT" "$1" "$2" <<'EOF'
import socket, sys, time
port, secs, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
s.settimeout(0.05)
t0 = time.time()
with open(out, "w") as f:
    while time.time() - t0 < secs:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        f.write("%.3f\n" % (time.time() - t0))
        f.flush()
        c.close()
s.close()
EOF
}
# between FILE FROM TO: attempts counted in [FROM, TO) seconds.
between() { awk -v a="$2" -v b="$3" '$1 >= a && $1 < b' "$1" | wc -l; }

# The listener first, so the village's first attempts are counted.
count_attempts 9 "$TMP/away.txt" &
LISTENER=$!
PIDS+=("$LISTENER")
sleep 0.3
"$LIANXIN" node --config "$VC" >"$TMP/village.log" 2>&1 &
PIDS+=("$!")
wait "$LISTENER" || fail "the listener failed"
fast=$(between "$TMP/away.txt" 0 1.5)
slow=$(between "$TMP/away.txt" 2.5 9)
[ "$fast" -ge 6 ] || fail "only $fast attempts in the first 1.5 s (quick search expected): $(cat "$TMP/away.txt" | tr '\n' ' ')"
[ "$slow" -ge 1 ] && [ "$slow" -le 3 ] ||
    fail "$slow attempts from 2.5 s to 9 s, expected 1 to 3 (one every 3 to 6 s): $(cat "$TMP/away.txt" | tr '\n' ' ')"
assert_contains "$(cat "$TMP/village.log")" "parent $TOWN not reached for 1 s: looking for it every 3 to 6 s" \
    "the village's log"

# The parent comes back: found within the slow interval.
start_node "$TOWN"
NODES=("$TOWN")
up() { grep -q "link to parent $TOWN: up" "$TMP/village.log"; }
wait_until 8 up || { dump_logs; fail "the village did not find its parent again"; }

# The link drops: the search is quick again at once.
stop_node "$TOWN"
count_attempts 1.2 "$TMP/again.txt"
again=$(between "$TMP/again.txt" 0 1.2)
[ "$again" -ge 5 ] || fail "only $again attempts in 1.2 s after the link dropped (quick search expected)"
echo "ok: $fast attempts in the first 1.5 s, $slow from 2.5 s to 9 s, $again in 1.2 s after a drop"
