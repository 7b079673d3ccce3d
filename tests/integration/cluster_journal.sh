#!/bin/sh
# Workers whose capsule journal is bound to the enclave's monotonic counter (PSL_JOURNAL_COUNTER=1,
# psl worker --journal-counter): a restart with the journal intact resumes and keeps the state;
# a host that puts back an older copy of the journal, or deletes it, makes that worker refuse to
# resume (it would otherwise risk signing different records at seqnos a replica may hold), and
# psl up says which worker stopped.
# usage: cluster_journal.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
. "$(dirname "$0")/cluster_lib.sh"
cluster_tmp journal
export PSL_JOURNAL_COUNTER=1
ctr() { od -An -t u8 -N 8 "$D/counters/capsule-journal-$1" 2>/dev/null | tr -d ' '; }

"$PSL" up --workers 2 --dir "$D" >"$T/up.out" 2>&1 || { cat "$T/up.out"; bad "psl up"; exit 1; }
"$PSL" deploy scounter "$EX/counter.wasm" --durability sync --dir "$D" >/dev/null ||
    { bad "deploy"; exit 1; }
# One key per invocation: the gateway alternates the workers, and a read-modify-write of one key
# on the other worker may run before our write reaches it by multicast (eventual consistency:
# two of twelve increments were lost this way under load).
for i in 1 2 3 4 5 6; do inv scounter "j$i 1" >/dev/null; done
c1=$(ctr 1) c2=$(ctr 2)
if [ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" -ge 1 ] && [ "$c2" -ge 1 ]; then
    ok "each worker's journal counter moved with its batches (worker-1 at $c1, worker-2 at $c2)"
else
    bad "journal counters: worker-1 '$c1', worker-2 '$c2' (files: $(ls "$D/counters" | tr '\n' ' '))"
fi

# 1. A clean restart resumes every capsule with its journal and counter.
"$PSL" down --dir "$D" >/dev/null 2>&1
cp "$D/worker-1/capsule.journal" "$T/journal.old"
"$PSL" up --workers 2 --dir "$D" >"$T/up2.out" 2>&1 || { cat "$T/up2.out"; bad "psl up again"; exit 1; }
for i in 7 8 9 10 11 12; do inv scounter "j$i 1" >/dev/null; done
# The key-value admin path reads one worker's replica: wait for the last writes to reach it.
k=0
while :; do
    v=0
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do [ "$(kvget counter/j$i)" = 1 ] && v=$((v + 1)); done
    [ "$v" = 12 ] || [ $k -ge 20 ] && break
    k=$((k + 1))
    sleep 0.2
done
if [ "$v" = "12" ]; then
    ok "after a restart the workers resume their journals and the state (12 of 12 counters)"
else
    bad "after a restart $v of 12 counters (counter/j1..j12) read 1: $(tail -n 3 "$D"/logs/worker-*.log | tr '\n' ' ')"
fi
c1b=$(ctr 1)
if [ -n "$c1b" ] && [ "$c1b" -gt "$c1" ]; then
    ok "worker-1's counter went on from $c1 to $c1b"
else
    bad "worker-1's counter after the restart: '$c1b' (before: $c1)"
fi

# 2. The host puts back the older journal of worker-1: that worker refuses to resume.
"$PSL" down --dir "$D" >/dev/null 2>&1
cp "$T/journal.old" "$D/worker-1/capsule.journal"
: >"$D/logs/worker-1.log"
if "$PSL" up --workers 2 --dir "$D" >"$T/up3.out" 2>&1; then
    bad "psl up succeeded with worker-1's journal rolled back"
elif grep -q "worker-1 .*exited during start-up" "$T/up3.out" &&
    grep -q "journal is older than its TEE counter" "$D/logs/worker-1.log" &&
    grep -q "cannot start replication" "$D/logs/worker-1.log"; then
    ok "an older journal is refused: $(grep -h "older than" "$D/logs/worker-1.log" | head -1)"
else
    bad "older journal not refused: $(cat "$T/up3.out" | tr '\n' ' ')"
fi

# 3. ... or deletes it.
"$PSL" down --dir "$D" >/dev/null 2>&1
rm -f "$D/worker-1/capsule.journal"
: >"$D/logs/worker-1.log"
if "$PSL" up --workers 2 --dir "$D" >"$T/up4.out" 2>&1; then
    bad "psl up succeeded with worker-1's journal deleted"
elif grep -q "worker-1 .*exited during start-up" "$T/up4.out" &&
    grep -q "cannot start replication" "$D/logs/worker-1.log"; then
    ok "a deleted journal is refused: $(grep -h "older than" "$D/logs/worker-1.log" | head -1)"
else
    bad "deleted journal not refused: $(cat "$T/up4.out" | tr '\n' ' ')"
fi
finish
