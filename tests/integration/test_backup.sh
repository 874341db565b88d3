#!/usr/bin/env bash
# `lianxin backup` while the node runs (a whole store, mode 0600, refused
# over another), and a village restored from that old backup converges:
# the handshake moves its sequence numbers past what its parent saw, and
# anti-entropy (unit digests compared after catching up) brings back the
# records written after the backup, which the parent's log would never
# echo back to their origin.
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
# The backup, taken while the village runs.
umask 022
out=$(lx backup --data $T/$V/data --out $TMP/backup) || fail "backup"
assert_contains "$out" "(50 records)" "backup reports the records"
assert_eq "$(stat -c %a $TMP/backup)" 700 "backup directory mode"
assert_eq "$(stat -c %a $TMP/backup/data.mdb)" 600 "backup file mode"
assert_eq "$(lx digest --data $TMP/backup)" "$(lx digest --data $T/$V/data)" "the backup's digest"
err=$(must_fail 1 lx backup --data $T/$V/data --out $TMP/backup)
assert_contains "$err" "already holds a store" "a second backup over the first"
err=$(must_fail 1 lx backup --data $TMP/nothing --out $TMP/b3)
[ -e $TMP/b3 ] && fail "a backup of no store made its directory"
# A copy that fails once its directory is made (a file size limit, as a
# full disk would): refused, and neither the directory nor a part left.
err=$( (trap '' XFSZ; ulimit -f 8; "$LIANXIN" backup --data $T/$V/data --out $TMP/b4) 2>&1) \
    && fail "a backup past the file size limit succeeded"
assert_contains "$err" "$TMP/b4" "the failed backup names its directory"
[ -e $TMP/b4 ] && fail "a failed backup left its directory"
# Another backup's part file in the way: refused, the file left alone.
mkdir $TMP/b5 && echo x > $TMP/b5/data.mdb.part
err=$(must_fail 1 lx backup --data $T/$V/data --out $TMP/b5)
assert_contains "$err" "data.mdb.part: exists" "a part file in the way"
assert_eq "$(cat $TMP/b5/data.mdb.part)" x "the part file in the way is untouched"
lx gen --subtree $V --count 30 --seed 9 --out $TMP/b.csv
# Another, taken while an import writes: a whole store, before or after.
lx import --data $T/$V/data --csv $TMP/b.csv >/dev/null &
imp=$!
lx backup --data $T/$V/data --out $TMP/during >/dev/null || fail "backup during an import"
wait $imp || fail "import"
n=$(records $TMP/during)
[ "$n" = 50 ] || [ "$n" = 80 ] || fail "a backup during an import holds $n records"
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
