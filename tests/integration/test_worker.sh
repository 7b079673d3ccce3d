#!/bin/sh
# A real `psl worker` process driven over the attested channel by worker_driver (playing the
# coordinator): deploy, stateful invocations, locks, kv admin; then SIGTERM stops it cleanly.
# usage: test_worker.sh PSL DRIVER EXAMPLES_DIR
set -u
PSL=${1:?} DRIVER=${2:?} EX=${3:?}
T=$(mktemp -d /tmp/psl-worker-test.XXXXXX)
# Below the ephemeral range (32768+), so a connecting client can never self-connect to it.
PORT=$((20000 + ($$ * 13) % 12000))
EP="tcp://127.0.0.1:$PORT"
WPID=""
cleanup() { [ -n "$WPID" ] && kill "$WPID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
mkdir -p "$T/home" && chmod 700 "$T/home"
# Each side's policy accepts the other's binary (the measurement covers the executable).
"$PSL" policy --home "$T/home" -o "$T/policy" 2>/dev/null || { echo "FAIL: psl policy"; exit 1; }
"$DRIVER" policy --home "$T/home" > "$T/driver.policy" || { echo "FAIL: driver policy"; exit 1; }
"$DRIVER" --listen "$EP" --home "$T/home" --policy "$T/policy" --examples "$EX" &
DPID=$!
"$PSL" worker --coordinator "$EP" --id 7 --policy "$T/driver.policy" --home "$T/home" \
    --dir "$T/w7" --threads 2 2>"$T/worker.log" &
WPID=$!
wait "$DPID"
rc=$?
kill -TERM "$WPID"
i=0
while kill -0 "$WPID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$WPID" 2>/dev/null; then
    echo "FAIL: worker did not stop on SIGTERM"; rc=1
else
    wait "$WPID"; wrc=$?
    [ "$wrc" -eq 0 ] && echo "ok:   worker stopped cleanly on SIGTERM" || { echo "FAIL: worker exit $wrc"; rc=1; }
fi
WPID=""
[ $rc -ne 0 ] && { echo "--- worker log"; cat "$T/worker.log"; }
exit $rc
