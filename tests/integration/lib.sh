# Shared by the integration tests: a private temporary directory removed on
# exit, the program under test, and assertions that say what failed.
set -u
LIANXIN=${LIANXIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/lianxin}
export LIANXIN_DIVISIONS=${LIANXIN_DIVISIONS:-$(cd "$(dirname "$0")/../.." && pwd)/data/divisions}
TMP=$(mktemp -d /tmp/lx-it-XXXXXX)
PIDS=()
cleanup() {
    # Every process the test started: asked to stop, then killed.
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -CONT "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 30); do
        local left=0
        for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && left=1; done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
lx() { "$LIANXIN" "$@"; }
# A test's port moved by LX_PORT_OFFSET, so two checkouts can run their
# suites at once without taking each other's ports.
port() { echo $(( $1 + ${LX_PORT_OFFSET:-0} )); }
fail() { echo "FAIL: $*" >&2; exit 1; }
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
assert_contains() { printf '%s' "$1" | grep -qF -- "$2" || fail "$3: '$2' not in: $1"; }
# Runs a command that must fail with the given exit code; prints its stderr.
must_fail() {
    local want=$1; shift
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $err"
    printf '%s' "$err"
}
records() { lx status --data "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])'; }

# Nodes of a tree rendered under $TREE (default $TMP/t), for the tests that
# run one: started in the background (their PIDs kept for cleanup), stopped
# with SIGTERM and a bounded wait; NODES lists them for dump_logs.
TREE=${TREE:-$TMP/t}
declare -A PID
NODES=()
D() { printf '%s' "$TREE/$1/data"; }
start_node() {
    "$LIANXIN" node --config "$TREE/$1/node.ini" >>"$TREE/$1/node.log" 2>&1 &
    PID[$1]=$!
    PIDS+=("$!")
}
stop_node() {
    kill -TERM "${PID[$1]}" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "${PID[$1]}" 2>/dev/null || break; sleep 0.1; done
    wait "${PID[$1]}" 2>/dev/null
}
dump_logs() {
    local c
    for c in "${NODES[@]}"; do
        echo "--- $c node.log, last lines:" >&2
        tail -n 6 "$TREE/$c/node.log" >&2 2>/dev/null
    done
}
# wait_until SECONDS CMD...: CMD every 0.2 s until it succeeds, or fail.
wait_until() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for: $*"
        sleep 0.2
    done
}
