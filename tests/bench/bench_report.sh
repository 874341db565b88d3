#!/usr/bin/env bash
# make bench, reports: a province store holding 800,000 generated children
# (about Sichuan's count) under two cities; the time of `lianxin report`
# for the current quarter in each format (JSON, and the CSV and XLSX
# exports and HTML), and for the quarter before it (which ended before any
# of the data existed, so every record is passed over), process start
# included, median of three runs. Beside the wall time, the CPU time of
# the same runs (user + system, every thread): the report's walk runs in
# two threads, so on a machine that is busy with other work the wall time
# moves towards the CPU time.
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
read -r Q PREVQ <<<"$(python3 -c '
import time
t = time.gmtime(time.time() + 8 * 3600)
y, q = t.tm_year, (t.tm_mon - 1) // 3 + 1
py, pq = (y, q - 1) if q > 1 else (y - 1, 4)
print("%dQ%d %dQ%d" % (y, q, py, pq))')"

python3 - "$LX" "$DIR" "$Q" "$PREVQ" "$N" <<'PY'
import json, os, statistics, subprocess, sys, time
lx, d, q, prevq, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def run(quarter, fmt):
    wall, cpu = [], []
    for _ in range(3):
        c0, t0 = os.times(), time.perf_counter()
        subprocess.run([lx, "report", "--data", d + "/prov", "--quarter", quarter, "--format", fmt,
                        "--out", "%s/r.%s.%s" % (d, quarter, fmt)], check=True)
        t1, c1 = time.perf_counter(), os.times()
        wall.append(t1 - t0)
        cpu.append(c1.children_user + c1.children_system - c0.children_user - c0.children_system)
    return statistics.median(wall), statistics.median(cpu)
rows = [("lianxin report --format " + f, run(q, f)) for f in ("json", "csv", "xlsx", "html")]
rows.append(("lianxin report --format json, quarter before", run(prevq, "json")))
total = json.load(open("%s/r.%s.json" % (d, q)))["total"]["values"]["total"]
assert total == n, (total, n)
before = json.load(open("%s/r.%s.json" % (d, prevq)))["total"]["values"]["total"]
assert before == 0, before
print()
print("%-48s %10s %10s" % ("report, province store of %d children" % n, "seconds", "CPU s"))
for label, (wall, cpu) in rows:
    print("%-48s %10.2f %10.2f" % (label, wall, cpu))
print("\ntarget: report <= 1 s")
PY
