#!/usr/bin/env bash
# make bench, the API: GET of one child over TLS with keep-alive, measured
# with wrk (requests/s and p99), next to /healthz on the same server as the
# baseline. The GET is a real department read: token, purpose, masks, and
# its audit entry. One node on 127.0.0.1 holding 10,000 children; stopped
# at the end. Prints `key value unit` lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
LX=$PWD/$BUILD/lianxin
DUR=${BENCH_API_SECONDS:-5}
PORT=$(( ${BENCH_API_PORT:-26400} + ${LX_PORT_OFFSET:-0} ))
export LIANXIN_DIVISIONS=$PWD/data/divisions
command -v wrk >/dev/null || { echo "bench_api: wrk is not installed (scripts/install-deps)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/lx-bench-api-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
printf '[tree]\nname = api\nbase_port = %s\n[node 510121106000]\nname = 五凤镇\n' "$PORT" > "$DIR/t.ini"
"$LX" topology render --topology "$DIR/t.ini" --out "$DIR/t" >/dev/null
N=$DIR/t/510121106000
"$LX" gen --subtree 510121106000 --count 10000 --seed 5 --out "$DIR/c.csv"
"$LX" import --data "$N/data" --csv "$DIR/c.csv" --quiet >/dev/null
TOKEN=$("$LX" token add --config "$N/node.ini" --name bench-edu --role education)
ID=$("$LX" child list --data "$N/data" | awk 'NR == 1 {print $1}')
"$LX" node --config "$N/node.ini" >"$DIR/node.log" 2>&1 &
PID=$!
URL=https://$(sed -n 's/^http = //p' "$N/node.ini")
for _ in $(seq 1 50); do
    curl -sf --cacert "$N/keys/http.crt" "$URL/healthz" >/dev/null && break
    sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$N/keys/http.crt" \
    -H "Authorization: Bearer $TOKEN" -H "X-Purpose: bench" "$URL/api/v1/children/$ID")
[ "$code" = 200 ] || { echo "bench_api: GET of a child answered $code" >&2; exit 1; }

# wrk: 2 threads, 16 keep-alive connections; rate and p99 from its report.
run() { # run KEY PATH HEADERS...
    local key=$1 path=$2; shift 2
    wrk -t2 -c16 -d"${DUR}s" --latency "$@" "$URL$path" > "$DIR/wrk.$key" 2>&1
    python3 - "$DIR/wrk.$key" "$key" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if bad:
    sys.exit("bench_api: %s non-2xx answers to %s" % (bad.group(1), sys.argv[2]))
print("%s_rps %.0f req/s" % (sys.argv[2], rate))
print("%s_p99 %.3f ms" % (sys.argv[2], p99))
PY
}
run healthz /healthz
run get_child "/api/v1/children/$ID" -H "Authorization: Bearer $TOKEN" -H "X-Purpose: bench"
# Every GET above left an audit entry; they are all there and verify.
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
entries=$("$LX" audit list --data "$N/data" --principal bench-edu | wc -l)
"$LX" audit verify --data "$N/data" >/dev/null
echo "audit_entries $entries entries"
