#!/usr/bin/env bash
# A relay sends what a group of batches logged on to its parent before it
# commits the group (the next level works while this one flushes). When
# that commit then fails, the parent holds entries of ours that our log
# lost: the next entries must not reuse their numbers, or the parent would
# take them for ones it has and never apply them.
#
# Township T under county C, villages A and B under T. T's first group
# commit fails (LIANXIN_FAULT, a test-only hook); it holds A's children,
# which C has already applied. Then B's children arrive at T: with the
# numbering moved past what was sent, C gets them; without, C would skip
# them. Anti-entropy is set to once in ten minutes so that it cannot mend
# the loss within this test; everything must be at C within seconds.
#
# Then: a clean stop of T folds the ID-number changes it holds pending,
# and a child entered twice is still flagged at T; the villages notice
# the stop at once and T's return as soon as it is back. Last, T dies
# between sending a group on and committing it, and a command writes at T
# before it is back: nothing is lost on the way to C. And T's idle fold
# waits while an operator edits at T.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP
TREE=$TMP/t
C=510121000000 T=510121106000 A=510121106218 B=510121106219
NODES=($C $T $A $B)
printf '[tree]\nname = cf\nbase_port = %s\n[node %s]\nname = 双流区\n[node %s]\nname = 五凤镇\n[node %s]\nname = 金箱村\n[node %s]\nname = 白岩村\n' \
    "$(port 24550)" $C $T $A $B > $TMP/t.ini
lx topology render --topology $TMP/t.ini --out $TREE >/dev/null || fail "render"
for c in $C $T; do sed -i 's/^\[node\]$/[node]\nantientropy_ms = 600000/' $TREE/$c/node.ini; done
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }

start_node $C
start_node $A
start_node $B
LIANXIN_FAULT=group_commit:1 start_node $T
connected() {
    lx status --data "$(D $1)" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
links = ([j["parent"]] if j["parent"] else []) + j["children"]
sys.exit(0 if links and all(l["connected"] for l in links) else 1)'
}
wait_until 20 connected $T
# T compares digests with C once a second after the link comes up, then
# every ten minutes: past that first comparison, only the fix can help.
sleep 2

# A's 40 children: T's first group, sent on to C, then not committed.
lx gen --subtree $A --count 40 --seed 5 --out $TMP/a.csv
lx import --data "$(D $A)" --csv $TMP/a.csv --quiet >/dev/null || fail "import at A"
at_least() { [ "$(records "$(D $1)")" -ge "$2" ]; }
# Within 4 s: before A would send them again (its 5 s timeout), so C has
# them from T's early send.
wait_until 4 at_least $C 40
grep -q "applying 1 batches failed" $TREE/$T/node.log || fail "the injected failure did not happen"
# B's 30 children come next, before A's batch is sent again.
lx gen --subtree $B --count 30 --seed 6 --out $TMP/b.csv
lx import --data "$(D $B)" --csv $TMP/b.csv --quiet >/dev/null || fail "import at B"

# Every child at T and at C, and C's copy of each village equal to its own.
wait_until 30 at_least $T 70
wait_until 15 at_least $C 70
same() { [ "$(lx digest --data "$(D $C)" --subtree $1)" = "$(lx digest --data "$(D $1)")" ]; }
wait_until 15 same $A
wait_until 15 same $B
assert_eq "$(records "$(D $C)")" 70 "the county holds every child once"

# A clean stop leaves T's ID-number index whole. T again, with its idle
# fold held off (a test hook; an idle node folds after a quiet second):
# ten more children from A are pending at T, the stop folds them, and the
# store holds none pending after.
pending() { lx status --data "$(D $1)" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_numbers_pending"])'; }
stop_node $T
LIANXIN_FAULT='idle_fold:*' start_node $T
wait_until 20 connected $T
lx gen --subtree $A --count 10 --seed 7 --out $TMP/c.csv
lx import --data "$(D $A)" --csv $TMP/c.csv --quiet >/dev/null || fail "import at A"
wait_until 20 at_least $T 80
sleep 1.5
assert_eq "$(pending $T)" 10 "ID-number changes pending at T"
stop_node $T
grep -q "folded 10 pending ID-number changes" $TREE/$T/node.log \
    || fail "a clean stop did not fold the pending ID numbers: $(tail -3 $TREE/$T/node.log)"
assert_eq "$(pending $T)" 0 "ID-number changes pending after a clean stop"
# The same child (number, birth date, sex) entered again at village A,
# at T: both records are flagged (the CLI masks the numbers, so by id).
lx export --data "$(D $B)" --format json | python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
print(r.pop("id"))
r["village_code"] = sys.argv[1]
json.dump(r, open(sys.argv[2], "w"), ensure_ascii=False)' $A $TMP/again.json > $TMP/first || fail "export at B"
nid=$(lx child add --data "$(D $T)" --json @$TMP/again.json 2>/dev/null | tail -1) || fail "child add at T"
lx conflicts --data "$(D $T)" --json | python3 -c '
import json, sys
ids = {d["id"] for d in json.load(sys.stdin) if d["kind"] == "duplicate"}
sys.exit(0 if {sys.argv[1], sys.argv[2]} <= ids else 1)' "$(cat $TMP/first)" "$nid" \
    || fail "the child entered twice is not listed as a duplicate at T"

# The villages saw the connection to T drop as it stopped (not a timeout
# later), and when T is back they say hello as soon as the new connection
# is made: what A enters then reaches T.
for v in $A $B; do
    grep -q "link to parent $T: down (connection lost)" $TREE/$v/node.log \
        || fail "village $v did not see its parent's connection drop: $(tail -3 $TREE/$v/node.log)"
done
start_node $T
lx gen --subtree $A --count 5 --seed 8 --out $TMP/d.csv
lx import --data "$(D $A)" --csv $TMP/d.csv --quiet >/dev/null || fail "import at A"
wait_until 20 at_least $T 86
wait_until 20 at_least $C 86

# A crash at the worst moment: T sends a group on and dies before it
# commits (a test hook). C holds those entries, T's log does not. A
# command then writes at T while it is down: it must number past what T
# had reserved for early sending, or C, ahead in T's log, would never get
# that child until anti-entropy compared the villages' digests.
stop_node $T
LIANXIN_FAULT=crash_before_commit:1 start_node $T
wait_until 20 connected $T
lx gen --subtree $A --count 20 --seed 9 --out $TMP/e.csv
lx import --data "$(D $A)" --csv $TMP/e.csv --quiet >/dev/null || fail "import at A"
wait_until 4 at_least $C 106
gone() { ! kill -0 "${PID[$T]}" 2>/dev/null; }
wait_until 10 gone
lx gen --subtree $A --count 1 --seed 10 --out $TMP/f.csv
lx import --data "$(D $T)" --csv $TMP/f.csv --quiet >/dev/null || fail "import at the crashed T"
# The command numbered past the reservation (T reserves 2^20 numbers at
# a time), not right after T's last committed entry, which C is past.
seq=$(lx status --data "$(D $T)" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])')
[ "$seq" -gt 1048576 ] || fail "a command writing at the crashed T took log number $seq, inside what T reserved"
start_node $T
wait_until 20 at_least $T 107
wait_until 20 at_least $C 107
wait_until 15 same $A

# An operator writing at T is activity, as batches are: T folds its
# pending ID-number changes (128 a tick, each step with its flush, once
# the count has stood still a second) after the edits pause, not in
# between them, where a step would hold the next edit up. The same with
# every link down (a village working offline).
id=$(lx child list --data "$(D $T)" --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
( while :; do
      lx child update --data "$(D $T)" "$id" --set risk_level=high >/dev/null 2>>$TMP/edits.err
      lx child update --data "$(D $T)" "$id" --set risk_level=low >/dev/null 2>>$TMP/edits.err
  done ) & EDITS=$!
PIDS+=("$EDITS")
lx gen --subtree $A --count 400 --seed 11 --out $TMP/g.csv
lx import --data "$(D $A)" --csv $TMP/g.csv --quiet >/dev/null || fail "import at A"
wait_until 20 at_least $T 507
sleep 2.5
p=$(pending $T)
# One step may slip into a pause of a loaded machine; with the edits not
# counted, every step does (0 left).
[ "$p" -ge 200 ] || fail "T folded its pending ID numbers while an operator wrote: $p of the 400 left"
stop_node $C
stop_node $A
stop_node $B
offline() {
    lx status --data "$(D $T)" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
sys.exit(0 if not any(l["connected"] for l in [j["parent"]] + j["children"]) else 1)'
}
wait_until 30 offline
sleep 2.5
p=$(pending $T)
[ "$p" -ge 200 ] || fail "T, offline, folded its pending ID numbers while an operator wrote: $p of the 400 left"
kill $EDITS; wait $EDITS 2>/dev/null
[ ! -s $TMP/edits.err ] || fail "an edit at T failed: $(head -3 $TMP/edits.err)"
no_pending() { [ "$(pending $1)" -eq 0 ]; }
wait_until 15 no_pending $T
echo ok
