#!/usr/bin/env bash
# Faults: a 17-node tree under continuous random edits at every level, with
# random kill -9 and restarts and links cut (a node stopped with SIGSTOP,
# so its peers see silence) and restored. After quiescing, every node's
# digest of every village under it equals the village's own, and every
# write that a node acknowledged (a command that returned success) is at
# the province, at that version or a later one.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export LIANXIN=$LIANXIN
SECONDS_RUN=${FAULT_SECONDS:-40}
RANDOM=${FAULT_SEED:-7}

T=$TMP/tree
"$ROOT/scripts/gen-topology" --counties 510121,510321 --townships 2 --villages 2 --base-port $(port 23700) > $TMP/t.ini
lx topology render --topology $TMP/t.ini --out $T >/dev/null || fail "render"
mapfile -t CODES < <(awk '{print $1}' $T/nodes.txt)
mapfile -t VILLAGES < <(awk '$2 == "village" {print $1}' $T/nodes.txt)
PROV=${CODES[0]}
declare -A PID
start() { "$LIANXIN" node --config $T/$1/node.ini >>$T/$1/node.log 2>&1 & PID[$1]=$!; PIDS+=($!); }
for c in "${CODES[@]}"; do start $c; done
on_fail() { for c in "${CODES[@]}"; do echo "--- $c"; tail -5 $T/$c/node.log; done; }
trap 'rc=$?; [ $rc -ne 0 ] && on_fail; cleanup' EXIT

seed=1
for v in "${VILLAGES[@]}"; do
    lx gen --subtree $v --count 40 --seed $seed --out $T/$v.csv
    lx import --data $T/$v/data --csv $T/$v.csv >/dev/null || fail "seed import at $v"
    seed=$((seed + 1))
done

# The acknowledged writes: "id field hlc" per line; added children: ids.
ACK=$TMP/acked
ADDED=$TMP/added
: > $ACK
: > $ADDED
stopped=()
killed=()
# A stopped node may hold its store's write lock (LMDB's writer mutex):
# a command writing there would wait until the node runs again, and the
# loop that resumes it would wait on the command. Writes go elsewhere.
is_stopped() { local s; for s in "${stopped[@]:-}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
edit() {
    local c=$1 id f v
    is_stopped $c && return 0
    id=$(lx child list --data $T/$c/data --limit 60 2>/dev/null | awk 'NR % 7 == 3 {print $1}' | shuf -n 1 --random-source=<(yes $RANDOM))
    [ -n "$id" ] || return 0
    case $((RANDOM % 3)) in
        0) f=risk_level; v=$(shuf -n1 -e low medium high) ;;
        1) f=school_status; v=$(shuf -n1 -e enrolled boarding preschool) ;;
        2) f=guardian_relation; v=$(shuf -n1 -e 祖父 祖母 外祖父 外祖母) ;;
    esac
    if lx child update --data $T/$c/data "$id" --set $f=$v --author "$c/test/fault" >/dev/null 2>&1; then
        lx child get --data $T/$c/data "$id" --json --versions | python3 -c '
import json, sys
r = json.load(sys.stdin); f = sys.argv[1]
print(r["id"], f, r["_versions"][f]["hlc"])' $f >> $ACK
    fi
}
add() {
    local v=$1 n=$((RANDOM % 9000 + 1000)) id
    is_stopped $v && return 0
    id=$(lx child add --data $T/$v/data --json "{\"village_code\":\"$v\",\"name\":\"故障测试$n\",\"gender\":\"female\",\"birth_date\":\"2015-06-0$((RANDOM % 9 + 1))\",\"categories\":[\"left_behind\"]}" 2>/dev/null | tail -1)
    [ -n "$id" ] && echo "$id" >> $ADDED
}

end=$((SECONDS + SECONDS_RUN))
actions=0
nkill=0
nstop=0
while [ $SECONDS -lt $end ]; do
    actions=$((actions + 1))
    c=${CODES[$((RANDOM % ${#CODES[@]}))]}
    case $((RANDOM % 10)) in
        0|1|2|3) edit $c ;;
        4|5) add ${VILLAGES[$((RANDOM % ${#VILLAGES[@]}))]} ;;
        6) # kill -9 a node (never the province), restart it soon after
           if [ $c != $PROV ] && kill -0 ${PID[$c]} 2>/dev/null; then
               kill -9 ${PID[$c]}; wait ${PID[$c]} 2>/dev/null; killed+=($c); nkill=$((nkill + 1))
           fi ;;
        7) # cut a node's links: stop it
           if kill -0 ${PID[$c]} 2>/dev/null; then kill -STOP ${PID[$c]}; stopped+=($c); nstop=$((nstop + 1)); fi ;;
        8) # restore links and restart killed nodes
           for s in "${stopped[@]}"; do kill -CONT ${PID[$s]} 2>/dev/null || true; done; stopped=()
           for k in "${killed[@]}"; do kill -0 ${PID[$k]} 2>/dev/null || start $k; done; killed=() ;;
        9) edit $PROV ;;
    esac
    sleep 0.$((RANDOM % 3 + 1))
done
for s in "${stopped[@]}"; do kill -CONT ${PID[$s]} 2>/dev/null || true; done
for c in "${CODES[@]}"; do kill -0 ${PID[$c]} 2>/dev/null || start $c; done
echo "$actions actions: $nkill kill -9, $nstop links cut, $(wc -l < $ACK) acknowledged updates, $(wc -l < $ADDED) added children"
[ $nkill -gt 0 ] && [ $nstop -gt 0 ] || fail "the run made no faults"

# Quiesce and converge.
t0=$SECONDS
until "$ROOT/scripts/converged" $T --quiet; do
    [ $((SECONDS - t0)) -lt 120 ] || { "$ROOT/scripts/converged" $T; fail "no convergence in 120 s"; }
    sleep 1
done
echo "converged $((SECONDS - t0)) s after the faults stopped"

# Every acknowledged write is at the province, at its version or later.
lx export --data $T/$PROV/data --format json > $TMP/prov.json
PROV_DATA=$T/$PROV/data LIANXIN=$LIANXIN python3 - $ACK $ADDED $TMP/prov.json <<'PY' || fail "acknowledged writes missing at the province"
import json, subprocess, sys, os
acked = [l.split() for l in open(sys.argv[1]) if l.strip()]
added = [l.strip() for l in open(sys.argv[2]) if l.strip()]
ids = {r["id"] for r in json.load(open(sys.argv[3]))}
missing = [i for i in added if i not in ids]
assert not missing, "added children missing at the province: %s" % missing[:5]
lx, prov = os.environ["LIANXIN"], os.environ["PROV_DATA"]
bad = []
for rid, field, hlc in acked:
    r = json.loads(subprocess.run([lx, "child", "get", "--data", prov, rid, "--json", "--versions"],
                                  capture_output=True, text=True, check=True).stdout)
    if r["_versions"].get(field, {}).get("hlc", 0) < int(hlc):
        bad.append((rid, field))
assert not bad, "updates older at the province than acknowledged: %s" % bad[:5]
print("all %d updates and %d added children are at the province" % (len(acked), len(added)))
PY
echo ok
