#!/bin/sh
# Sync durability answers an invocation that wrote nothing at once when every version it read is
# durable, and only then. On a one-worker cluster (psl up) with the storage replicas stopped
# (SIGSTOP), a write of a sync function cannot become durable: reads of a durable key and of an
# absent one are answered at once, over the gateway (invocation threads) and over the attested
# client channel (the worker's server thread), while reads of the key the pending write changed
# wait; once the replicas run again (SIGCONT) the write and those reads complete with its value.
# usage: cluster_syncread.sh PSL YCSB_OP_WASM
set -u
PSL=${1:?} FN=${2:?}
[ -f "$FN" ] || { echo "no $FN (built with the wasm toolchain): skipped"; exit 77; }
. "$(dirname "$0")/cluster_lib.sh"
cluster_tmp syncread
STOPPED=""
resume() { [ -n "$STOPPED" ] && kill -CONT $STOPPED 2>/dev/null; STOPPED=""; }
trap 'resume; cleanup' EXIT INT TERM
kv() { "$PSL" invoke kv --data "$(printf "$1")" --dir "$D" 2>>"$T/client.err"; }
kvs() { "$PSL" invoke --secure kv --data "$(printf "$1")" --dir "$D" 2>>"$T/client.err"; }

"$PSL" up --workers 1 --dir "$D" >"$T/up.out" 2>&1 || { cat "$T/up.out"; bad "psl up"; exit 1; }
"$PSL" deploy kv "$FN" --durability sync --timeout-ms 60000 --dir "$D" >/dev/null || { bad "deploy"; finish; exit 1; }
[ "$(kv 'w dave\n50')" = "" ] && [ "$(kv 'w alice\n100')" = "" ] || bad "the first writes"
# Warm up the client path: known short functions run on the worker's server thread.
for i in 1 2 3 4 5; do [ "$(kvs 'r dave')" = 50 ] || bad "read over the channel ($i)"; done

STOPPED=$("$PSL" status --dir "$D" | awk '/^storage-/ {print $3}' | tr '\n' ' ')
[ -n "$STOPPED" ] || { bad "no storage replica pids"; finish; exit 1; }
kill -STOP $STOPPED
(kv 'w alice\n70' >"$T/write.out"; echo $? >"$T/write.rc") &
sleep 1
[ -f "$T/write.rc" ] && bad "a sync write returned while every replica was stopped"
t0=$(date +%s)
out=$(timeout 5 "$PSL" invoke kv --data "r dave" --dir "$D") && [ "$out" = 50 ] &&
    ok "gateway: a durable key is read at once while a write waits ($out)" ||
    bad "gateway: the read of a durable key did not answer 50 within 5 s ('$out')"
out=$(timeout 5 "$PSL" invoke --secure kv --data "r dave" --dir "$D") && [ "$out" = 50 ] &&
    ok "channel: a durable key is read at once while a write waits ($out)" ||
    bad "channel: the read of a durable key did not answer 50 within 5 s ('$out')"
out=$(timeout 5 "$PSL" invoke --secure kv --data "r carol" --dir "$D") && [ "$out" = "" ] &&
    ok "channel: an absent key is read at once" || bad "channel: absent key: '$out'"
# The key the pending write changed: its reads wait for the write's durability.
timeout 3 "$PSL" invoke --secure kv --data "r alice" --dir "$D" >"$T/ra.out" 2>/dev/null
[ $? -eq 124 ] && ok "channel: a read of the pending write's key waits" ||
    bad "channel: a read of the pending write's key answered '$(cat "$T/ra.out")' before it was durable"
timeout 3 "$PSL" invoke kv --data "r alice" --dir "$D" >"$T/rg.out" 2>/dev/null
[ $? -eq 124 ] && ok "gateway: a read of the pending write's key waits" ||
    bad "gateway: a read of the pending write's key answered '$(cat "$T/rg.out")' before it was durable"
[ -f "$T/write.rc" ] && bad "the sync write returned while every replica was stopped"
echo "  ($(($(date +%s) - t0)) s with the replicas stopped)"
resume
i=0
while [ ! -f "$T/write.rc" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(cat "$T/write.rc" 2>/dev/null)" = 0 ] && ok "the write completed once the replicas ran again" ||
    bad "the write did not complete after SIGCONT"
[ "$(kv 'r alice')" = 70 ] && [ "$(kvs 'r alice')" = 70 ] && ok "its value is read back (70)" ||
    bad "after the write: alice is not 70"
finish
