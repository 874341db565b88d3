#!/usr/bin/env bash
# A village restored from an old backup converges: the handshake moves its
# sequence numbers past what its parent saw, and anti-entropy (unit
# digests compared after catching up) brings back the records written after
# the backup, which the parent's log would never echo back to their origin.
. "$(dirname "$0")/lib.sh"
T=$TMP/tree
printf '[tree]\nname = k\nbase_port = '"$(port 23950)"'\n[node 510121106000]\nname = 五凤镇\n[node 510121106218]\nname = 金箱村\n[node 510121106219]\nname = 白岩村\n' > $TMP/t.ini
lx topology render --topology $TMP/t.ini --out $T >/dev/null || fail "render"
V=510121106218; P=510121106000; W=510121106219
declare -A PID
start() { "$LIANXIN" node --config $T/$1/node.ini >>$T/$1/node.log 2>&1 & PID[$1]=$!; PIDS+=($!); }
stop() { kill -TERM ${PID[$1]}; wait ${PID[$1]} 2>/dev/null; }
wait_for() { local i; for i in $(seq 1 150); do "$@" && return 0; sleep 0.2; done; return 1; }
same() { [ "$(lx digest --data $T/$P/data --subtree $V)" = "$(lx digest --data $T/$V/data)" ]; }
for c in $P $V $W; do start $c; done

lx gen --subtree $V --count 50 --seed 8 --out $TMP/a.csv
lx import --data $T/$V/data --csv $TMP/a.csv >/dev/null
wait_for same || fail "first sync"
stop $V
cp -a $T/$V/data $TMP/backup
start $V
lx gen --subtree $V --count 30 --seed 9 --out $TMP/b.csv
lx import --data $T/$V/data --csv $TMP/b.csv >/dev/null
id=$(lx child list --data $T/$V/data --limit 1 | cut -f1)
lx child update --data $T/$V/data "$id" --set risk_level=high >/dev/null
wait_for same || fail "second sync"
assert_eq "$(records $T/$P/data)" 80 "parent has all 80"

# Disaster: the village comes back from the old backup (50 records).
stop $V
rm -rf $T/$V/data
cp -a $TMP/backup $T/$V/data
assert_eq "$(records $T/$V/data)" 50 "the backup holds 50"
start $V
wait_for same || fail "the restored village did not converge: $(tail -5 $T/$V/node.log; tail -5 $T/$P/node.log)"
assert_eq "$(records $T/$V/data)" 80 "anti-entropy brought back the 30 written after the backup"
lx child get --data $T/$V/data "$id" --json | grep -q '"risk_level": "high"' || fail "the later update is back"
# New writes continue with fresh sequence numbers and reach the parent.
nid=$(lx child add --data $T/$V/data --json '{"village_code":"510121106218","name":"恢复后","gender":"female","birth_date":"2013-03-03"}' | tail -1)
wait_for lx child get --data $T/$P/data "$nid" >/dev/null 2>&1 || fail "a write after the restore did not reach the parent"
echo ok
