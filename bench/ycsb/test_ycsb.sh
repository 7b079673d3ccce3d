#!/bin/sh
# A short YCSB run (not timed) against Redis and psl, in-function and client modes, async and
# sync: psl bench ycsb --check fails unless every operation succeeded, every read returned the
# record of the key it asked for (the load wrote it, or an update after it), and the counts add
# up (threads x --ops operations, one histogram entry each). Skips when redis-server is absent.
# usage: test_ycsb.sh PSL YCSB_WASM
set -u
PSL=${1:?} FN=${2:?}
if ! command -v redis-server >/dev/null 2>&1; then
    echo "SKIP: redis-server not installed (Debian package redis-server; scripts/deps.sh)"
    exit 0
fi
st=0
for w in a d f; do
    "$PSL" bench ycsb --quiet --check --fn "$FN" --records 2000 --workload "$w" --threads 3 \
        --ops 300 --warmup 0.2 --duration 30 --workers 2 \
        --target redis,psl-fn,psl-fn:sync,psl-client,psl-client:sync || st=1
done
# Uniform keys on workload c: every record read at least once is likely; no writes.
"$PSL" bench ycsb --quiet --check --fn "$FN" --records 500 --workload c --distribution uniform \
    --threads 2 --ops 1000 --warmup 0 --duration 30 --target redis,psl-client || st=1
[ $st -eq 0 ] && echo "ok: ycsb short runs against redis and psl: counts add up, reads return the records written"
exit $st
