#!/usr/bin/env bash
# Offline bundles: a village without a link carries its changes on a file;
# the parent verifies the signature and the scope and applies them through
# the same path as the network; importing twice changes nothing; a damaged
# or foreign bundle is refused; once linked, nothing is sent twice and new
# changes flow as usual.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$TMP/tree
printf '[tree]\nname = b\nbase_port = '"$(port 23900)"'\n[node 510121106000]\nname = 五凤镇\n[node 510121106218]\nname = 金箱村\n[node 510121106219]\nname = 白岩村\n' > $TMP/t.ini
lx topology render --topology $TMP/t.ini --out $T >/dev/null || fail "render"
V=510121106218; W=510121106219; P=510121106000

lx gen --subtree $V --count 120 --seed 4 --out $TMP/v.csv
lx import --data $T/$V/data --csv $TMP/v.csv >/dev/null
lx bundle export --data $T/$V/data --out $TMP/v.lxb > $TMP/out || fail "export"
assert_contains "$(cat $TMP/out)" "120 changes" "export counts the changes"
out=$(lx bundle import --data $T/$P/data $TMP/v.lxb) || fail "import: $out"
assert_contains "$out" "120 changes applied (120 changed records)" "first import"
assert_eq "$(lx digest --data $T/$P/data --subtree $V)" "$(lx digest --data $T/$V/data)" "parent holds the village's state"
out=$(lx bundle import --data $T/$P/data $TMP/v.lxb)
assert_contains "$out" "(0 changed records)" "second import changes nothing"
seq_before=$(lx status --data $T/$P/data --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])')

# A flipped byte anywhere in the payload breaks the signature.
cp $TMP/v.lxb $TMP/bad.lxb
printf '\x01' | dd of=$TMP/bad.lxb bs=1 seek=200 conv=notrunc 2>/dev/null
err=$(must_fail 1 lx bundle import --data $T/$P/data $TMP/bad.lxb)
assert_contains "$err" "bad signature" "tampered bundle"
# A bundle signed with the right format but another village's key.
cp $T/$W/keys/sign.key $TMP/wkey
mkdir -p $TMP/wkeys && cp $T/$W/keys/* $TMP/wkeys/
lx bundle export --data $T/$V/data --out $TMP/forged.lxb --keys $TMP/wkeys >/dev/null
err=$(must_fail 1 lx bundle import --data $T/$P/data $TMP/forged.lxb)
assert_contains "$err" "bad signature" "bundle signed by another node's key"
# A truncated file.
head -c 50 $TMP/v.lxb > $TMP/short.lxb
err=$(must_fail 1 lx bundle import --data $T/$P/data $TMP/short.lxb)
assert_contains "$err" "short.lxb" "truncated bundle names the file"
seq_after=$(lx status --data $T/$P/data --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])')
assert_eq "$seq_after" "$seq_before" "refused bundles wrote nothing"

# Now linked: the village's changes are not sent again, new ones flow.
for c in $P $V $W; do "$LIANXIN" node --config $T/$c/node.ini >>$T/$c/node.log 2>&1 & PIDS+=($!); done
wait_for() { local i; for i in $(seq 1 100); do "$@" && return 0; sleep 0.2; done; return 1; }
connected() { lx status --data $T/$V/data --json | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["parent"]["connected"] and s["parent"]["unacked"] == 0 else 1)'; }
wait_for connected || fail "village did not connect: $(tail -5 $T/$V/node.log; tail -5 $T/$P/node.log; lx status --data $T/$V/data --json)"
id=$(lx child add --data $T/$V/data --json '{"village_code":"510121106218","name":"离线后新增","gender":"male","birth_date":"2014-02-02"}' | tail -1)
wait_for lx child get --data $T/$P/data "$id" >/dev/null 2>&1 || fail "a new change did not reach the parent"
received=$(lx status --data $T/$P/data --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print([c for c in s["children"] if c["code"]=="510121106218"][0]["received"])')
[ "$received" -le 2 ] || fail "the parent received $received changes over the link after the bundle (expected only the new one)"
# One node per store: a second one (here a restore) is refused while the
# node runs. And restore is for a lost store: one with records is refused.
before=$(lx digest --data $T/$V/data)
err=$(must_fail 1 lx restore --config $T/$V/node.ini)
assert_contains "$err" "another node runs on this store" "restore while the node runs"
for p in "${PIDS[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null; done
assert_eq "$(lx status --data $T/$V/data --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["running"])')" "False" "status sees the node stopped"
err=$(must_fail 1 lx restore --config $T/$V/node.ini)
assert_contains "$err" "restore needs an empty store" "restore over a store with records"
assert_eq "$(lx digest --data $T/$V/data)" "$before" "the refused restore changed nothing"

# A change from a PC whose clock runs an hour ahead is refused at import,
# and the refusal counts in the parent's status as the network's would.
SHIFT=$(dirname "$LIANXIN")/tests/clockshift.so
[ -f "$SHIFT" ] || fail "$SHIFT: not built (make test builds it)"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD=$SHIFT LX_CLOCK_SHIFT_MS=3600000 \
    lx child add --data $T/$W/data --json '{"village_code":"510121106219","name":"钟快","gender":"male","birth_date":"2012-01-01"}' >/dev/null \
    || fail "child add with the clock ahead"
lx bundle export --data $T/$W/data --out $TMP/skew.lxb >/dev/null || fail "export (clock ahead)"
out=$(lx bundle import --data $T/$P/data $TMP/skew.lxb 2>$TMP/skew.err) || fail "import (clock ahead)"
assert_contains "$out" "0 changes applied (0 changed records), 1 refused" "a change from an hour ahead"
assert_contains "$(cat $TMP/skew.err)" "ahead of the local clock" "the refusal says why"
# The same bundle again (an offline village's next bundle carries all it
# carried before): refused again, counted once.
lx bundle import --data $T/$P/data $TMP/skew.lxb >/dev/null 2>&1 || fail "import (clock ahead), again"
lx status --data $T/$P/data --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
w = [c for c in s["children"] if c["code"] == "510121106219"][0]
assert s["refusals"]["clock_skew"] == 1, s
assert s["refused"] == 1 and w["refused"] == 1, s
assert "ahead of the local clock" in w["last_refusal"], w' || fail "bundle refusals in status: $(lx status --data $T/$P/data --json)"
# The root of this tree has no parent: export says so (running it would
# not record one).
err=$(must_fail 1 lx bundle export --data $T/$P/data --out $TMP/p.lxb)
assert_contains "$err" "this node has no parent to carry changes to" "export at the root"

# A store made by `init` (set up by hand, not rendered) has no links on
# record until its node runs: export says so. The node records them as it
# starts, so status calls it running, with its parent (which does not
# answer here), and export then knows where the bundle goes.
mv $T/$W/data $TMP/w-rendered
lx init --data $T/$W/data --code $W >/dev/null || fail "init"
lx child add --data $T/$W/data --json '{"village_code":"510121106219","name":"手工建库","gender":"female","birth_date":"2013-03-03"}' >/dev/null || fail "child add"
err=$(must_fail 1 lx bundle export --data $T/$W/data --out $TMP/w.lxb)
assert_contains "$err" "no parent on record" "export before the node ever ran"
"$LIANXIN" node --config $T/$W/node.ini >>$T/$W/node.log 2>&1 & WPID=$!; PIDS+=($WPID)
alone() { lx status --data $T/$W/data --json | python3 -c 'import json,sys; s=json.load(sys.stdin); p=s["parent"]; sys.exit(0 if s["running"] and p and p["code"]=="510121106000" and not p["connected"] and p["unacked"]==1 else 1)'; }
wait_for alone || fail "a node whose parent never answered: $(lx status --data $T/$W/data --json)"
out=$(lx bundle export --data $T/$W/data --out $TMP/w.lxb) || fail "export from a store made by init"
assert_contains "$out" "1 changes" "export once the node ran"
kill -TERM $WPID; wait $WPID 2>/dev/null
echo ok
