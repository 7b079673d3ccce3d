#!/bin/sh
# psl_publish on a real two-worker cluster (docs/guests.md): a long invocation of
# examples/progress.wasm stores its progress after every step. With publish, the other worker
# sees the progress while the job still runs; in "quiet" mode (no publish) it sees nothing until
# the invocation ends, and then the final value. The reads go through `psl kv get`, which the
# coordinator sends to the least-loaded worker: the one not running the job.
# usage: cluster_publish.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
T=$(mktemp -d /tmp/psl-publish.XXXXXX)
cleanup() {
    "$PSL" down --dir "$T/c" >/dev/null 2>&1
    pkill -9 -f -- "$T/c/" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$T"/*.out; do echo "--- $f"; cat "$f"; done
    exit 1
}
"$PSL" up --workers 2 --dir "$T/c" >/dev/null 2>&1 || fail "psl up"
"$PSL" deploy progress "$EX/progress.wasm" --dir "$T/c" >"$T/deploy.out" 2>&1 || fail "deploy"

# job JOB MODE: 40 steps of 150 ms (6 s); polls the other worker while it runs.
job() {
    "$PSL" invoke progress --data "$1 40 150 $2" --dir "$T/c" >"$T/$1.out" 2>&1 &
    JOB=$!
    seen=""
    i=0
    while kill -0 $JOB 2>/dev/null && [ $i -lt 50 ]; do
        v=$("$PSL" kv get "progress/$1" --dir "$T/c" 2>/dev/null)
        if [ -n "$v" ] && [ "$v" != "40/40" ] && kill -0 $JOB 2>/dev/null; then
            seen=$v
            break
        fi
        i=$((i + 1))
        sleep 0.1
    done
    wait $JOB || fail "invoke $1 failed"
    grep -q "$1 done 40" "$T/$1.out" || fail "$1: unexpected answer"
}

job pub publish
[ -n "$seen" ] || fail "published progress was not seen on the other worker while the job ran"
echo "ok: while the job ran, the other worker saw progress $seen"

job still quiet
[ -z "$seen" ] || fail "without publish the other worker saw progress $seen before the job ended"
final=""
for i in $(seq 1 50); do
    final=$("$PSL" kv get progress/still --dir "$T/c" 2>/dev/null)
    [ "$final" = "40/40" ] && break
    sleep 0.1
done
[ "$final" = "40/40" ] || fail "quiet job: final progress '$final' never arrived"
echo "ok: without publish nothing left the worker before the end; then 40/40 arrived"
