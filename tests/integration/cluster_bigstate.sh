#!/bin/sh
# A state larger than one capsule record (4 MiB) is checkpointed in several records and a restart
# recovers from that checkpoint: a local cluster (psl up, one worker) loads 6000 YCSB records of
# 1000 bytes (about 6 MB) with the YCSB function, then 10 more; the worker logs a checkpoint in
# several records; after psl down / psl up it reports its capsule replayed from a checkpoint and
# holds all 6010 records.
# Then, on a fresh cluster with a single storage replica (psl up --replicas 1, which once started
# it with its arguments cut short) whose multi-record checkpoints may come only once an hour, one is
# still taken once the log since the last checkpoint holds --big-checkpoint-log bytes and twice
# the state: none after loading the 6000 records, one after writing them all twice more.
# usage: cluster_bigstate.sh PSL YCSB_WASM
set -u
PSL=${1:?} FN=${2:?}
[ -f "$FN" ] || { echo "no $FN (the YCSB function is built with the wasm toolchain): skipped"; exit 77; }
T=$(mktemp -d /tmp/psl-bigstate.XXXXXX)
D="$T/cluster"
cleanup() {
    "$PSL" down --dir "$D" >/dev/null 2>&1
    "$PSL" down --dir "$T/cluster2" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$D"/logs/worker-*.log; do echo "--- $f"; tail -15 "$f"; done
    exit 1
}
ok() { echo "ok: $*"; }
# A checkpoint every 2 records of the capsule, and a multi-record one as soon as it is due.
export PSL_CHECKPOINT_EVERY=2 PSL_BIG_CHECKPOINT_MS=1
inv() { "$PSL" invoke ycsb --data "$1" --dir "$D"; }

"$PSL" up --workers 1 --dir "$D" >"$T/up.out" 2>&1 || { cat "$T/up.out"; fail "psl up"; }
"$PSL" deploy ycsb "$FN" --timeout-ms 60000 --dir "$D" >/dev/null || fail "deploy ycsb"
for a in 0 1000 2000 3000 4000 5000; do
    out=$(inv "load from=$a to=$((a + 1000)) seed=1") || fail "load from=$a: $out"
    [ "$out" = "loaded 1000 errors 0" ] || fail "load from=$a answered '$out'"
done
out=$(inv "load from=6000 to=6010 seed=1") || fail "load 6000..6009"
sleep 1 # the multi-record checkpoint is not waited for inside the flush
line=$(grep -h "checkpoint of" "$D"/logs/worker-1.log | tail -1)
n=$(echo "$line" | sed -n 's/.*keys in \([0-9]*\) records.*/\1/p')
[ -n "$n" ] && [ "$n" -ge 2 ] || fail "no checkpoint in several records: '$line'"
ok "checkpoint in $n records: ${line#*: }"

"$PSL" down --dir "$D" >/dev/null 2>&1
"$PSL" up --workers 1 --dir "$D" >"$T/up2.out" 2>&1 || { cat "$T/up2.out"; fail "psl up again"; }
rec=$(grep -h "state recovered" "$D"/logs/worker-1.log | tail -1)
echo "$rec" | grep -q "(1 capsules replayed from a checkpoint)" ||
    fail "the restart did not start from the checkpoint: '$rec'"
out=$(inv "count from=0 to=6010") || fail "count"
[ "$out" = "present 6010" ] || fail "after the restart: '$out' (want present 6010)"
ok "restart: ${rec#*: }; all 6010 records present"
"$PSL" down --dir "$D" >/dev/null 2>&1

# ---- the log bound: the interval is an hour, the log makes one due -----------------------------
D="$T/cluster2"
export PSL_BIG_CHECKPOINT_MS=3600000 PSL_BIG_CHECKPOINT_LOG=1K
"$PSL" up --workers 1 --replicas 1 --dir "$D" >"$T/up3.out" 2>&1 ||
    { cat "$T/up3.out"; fail "psl up --replicas 1"; }
"$PSL" deploy ycsb "$FN" --timeout-ms 60000 --dir "$D" >/dev/null || fail "deploy ycsb (2)"
load_all() {
    for a in 0 1000 2000 3000 4000 5000; do
        out=$(inv "load from=$a to=$((a + 1000)) seed=$1") || fail "load from=$a: $out"
        [ "$out" = "loaded 1000 errors 0" ] || fail "load from=$a answered '$out'"
    done
}
load_all 1
sleep 1
! grep -q "checkpoint of" "$D"/logs/worker-1.log ||
    fail "a multi-record checkpoint before the log held twice the state: $(grep -h "checkpoint of" "$D"/logs/worker-1.log)"
ok "6 MB loaded, an hour's interval: no multi-record checkpoint yet"
load_all 2
load_all 3
sleep 1
line=$(grep -h "checkpoint of" "$D"/logs/worker-1.log | tail -1)
[ -n "$line" ] || fail "no multi-record checkpoint after 12 MB more of log"
ok "after twice the state in log: ${line#*: }"
echo "PASS"
