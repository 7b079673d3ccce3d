#!/bin/sh
# A failing lambda aborts a synchronous training run (docs/dnn.md): 2 workers, 2 lambdas in sync
# mode; once both lambdas run (one per worker), worker 2 is killed with SIGKILL. Its lambda fails
# (WORKERLOST); the driver publishes "abort", and the lambda on worker 1, waiting for it at the
# barrier, must stop with "run aborted" within 60 s (it used to wait until its 2-hour time limit).
# Exits 77 (skip) when the dataset package is not installed.
# usage: dnn_abort.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
DATA=/usr/share/datasets/fashion-mnist
if [ ! -r "$DATA/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: Debian package dataset-fashion-mnist is not installed (scripts/deps.sh)"
    exit 77
fi
T=$(mktemp -d /tmp/psl-dnn-abort.XXXXXX)
cleanup() {
    [ -z "${BENCH:-}" ] || kill "$BENCH" 2>/dev/null
    "$PSL" down --dir "$T/c" >/dev/null 2>&1
    pkill -9 -f -- "$T/c/" 2>/dev/null # whatever psl down could not stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
    echo "FAIL: $*"
    cat "$T/out" 2>/dev/null
    exit 1
}
"$PSL" up --workers 2 --dir "$T/c" >/dev/null 2>&1 || fail "psl up"
# 60,000 images: an epoch of several minutes, far longer than the test waits.
"$PSL" bench dnn --dir "$T/c" --lambdas 2 --mode sync --epochs 1 --train 60000 --test 200 \
    --fn "$EX/dnn.wasm" >"$T/out" 2>&1 &
BENCH=$!
busy=0
for i in $(seq 1 600); do
    if grep -q "loaded .* images into the store" "$T/out" &&
        [ "$("$PSL" status --dir "$T/c" 2>/dev/null | grep -c 'in flight 1')" = 2 ]; then
        busy=1
        break
    fi
    kill -0 $BENCH 2>/dev/null || fail "bench dnn ended before the lambdas ran"
    sleep 0.1
done
[ $busy = 1 ] || fail "the two lambdas never ran one per worker"
sleep 1
W2=$("$PSL" status --dir "$T/c" 2>/dev/null | awk '$1 == "worker-2" { print $3 }')
[ -n "$W2" ] || fail "no pid for worker-2"
kill -9 "$W2"
t0=$(date +%s)
for i in $(seq 1 600); do
    kill -0 $BENCH 2>/dev/null || break
    sleep 0.1
done
if kill -0 $BENCH 2>/dev/null; then
    kill $BENCH
    fail "the run was still going 60 s after a lambda's worker died"
fi
wait $BENCH
rc=$?
dt=$(($(date +%s) - t0))
[ $rc -ne 0 ] || fail "bench dnn exited 0 although a lambda failed"
grep -q "WORKERLOST" "$T/out" || fail "the lost lambda's error is not reported"
grep -q "run aborted: lambda [01] failed in epoch 1" "$T/out" ||
    fail "the surviving lambda did not stop with 'run aborted'"
echo "ok: the run stopped ${dt}s after worker 2 died; the surviving lambda left the barrier:"
grep -o "run aborted: lambda [01] failed in epoch 1" "$T/out" | head -1
