#!/usr/bin/env bash
# make bench, reports: a province store holding 800,000 generated children
# (about Sichuan's count) under two cities; the time of `lianxin report`
# in each format, process start included, median of three runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
N=${BENCH_REPORT_N:-800000}
LX=$PWD/$BUILD/lianxin
export LIANXIN_DIVISIONS=$PWD/data/divisions
DIR=$(mktemp -d /tmp/lx-bench-report-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

"$LX" init --data "$DIR/prov" --code 510000000000 >/dev/null
"$LX" gen --subtree 510100000000 --count $((N * 3 / 4)) --seed 11 --out "$DIR/a.csv"
"$LX" gen --subtree 510700000000 --count $((N - N * 3 / 4)) --seed 12 --out "$DIR/b.csv"
"$LX" import --data "$DIR/prov" --csv "$DIR/a.csv" --quiet >/dev/null
"$LX" import --data "$DIR/prov" --csv "$DIR/b.csv" --quiet >/dev/null
rm -f "$DIR/a.csv" "$DIR/b.csv"
Q=$(python3 -c 'import time; t = time.gmtime(time.time() + 8 * 3600); print("%dQ%d" % (t.tm_year, (t.tm_mon - 1) // 3 + 1))')

python3 - "$LX" "$DIR" "$Q" "$N" <<'PY'
import json, statistics, subprocess, sys, time
lx, d, q, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(fmt):
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([lx, "report", "--data", d + "/prov", "--quarter", q, "--format", fmt,
                        "--out", "%s/r.%s" % (d, fmt)], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
rows = [(f, run(f)) for f in ("json", "csv", "xlsx", "html")]
total = json.load(open(d + "/r.json"))["total"]["values"]["total"]
assert total == n, (total, n)
print()
print("%-48s %10s" % ("report, province store of %d children" % n, "seconds"))
for f, t in rows:
    print("%-48s %10.2f" % ("lianxin report --format " + f, t))
print("\ntarget: report <= 1 s")
PY
