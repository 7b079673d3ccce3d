#!/bin/sh
# A short YCSB run (not timed) against Redis and psl, in-function and client modes (over the
# attested channel, native and wasm operation function, and through the HTTP gateway), async and
# sync: psl bench ycsb --check fails unless every operation succeeded, every read returned the
# record of the key it asked for (the load wrote it, or an update after it), and the counts add
# up (threads x --ops operations, one histogram entry each); every target must print its row.
# Skips when redis-server is absent.
# usage: test_ycsb.sh PSL YCSB_WASM
set -u
PSL=${1:?} FN=${2:?}
if ! command -v redis-server >/dev/null 2>&1; then
    echo "SKIP: redis-server not installed (Debian package redis-server; scripts/deps.sh)"
    exit 0
fi
T=$(mktemp -d /tmp/psl-ycsb-test.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
# A private copy: the cluster's daemons run this binary, and build/ may be relinked meanwhile.
# The client-mode operation function (bench/ycsb/op.c) is found next to the YCSB function.
D=$(dirname "$FN")
cp "$PSL" "$T/psl" && cp "$FN" "$T/ycsb.wasm" && cp "$D/ycsb_op.so" "$D/ycsb_op.wasm" "$T/" ||
    { echo "FAIL: cannot copy $PSL, $FN and $D/ycsb_op.{so,wasm}"; exit 1; }
# With the JIT module beside it, the cluster's workers default to --tier jit; workload f below runs
# --tier interp, so both tiers are checked.
JIT=
if [ -f "$(dirname "$PSL")/psljit.so" ]; then
    cp "$(dirname "$PSL")/psljit.so" "$T/" || { echo "FAIL: cannot copy psljit.so"; exit 1; }
    JIT=1
fi
PSL=$T/psl FN=$T/ycsb.wasm
"$PSL" bench ycsb --help | grep -q '^usage: psl bench ycsb' ||
    { echo "FAIL: $PSL does not run (being relinked?)"; exit 1; }
st=0
judge() { # NAME: after a run whose status is in $rc
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: $1"
        st=1
    fi
}
rows() { # FILE WORKLOAD TARGET...: each target printed its result row
    f=$1 w=$2
    shift 2
    for t in "$@"; do
        grep -q "^$t  *$w " "$f" || { echo "FAIL: no result row for $t on workload $w"; st=1; }
    done
}
for w in a d f; do
    tier=
    [ "$w" = f ] && tier="--tier interp"
    # shellcheck disable=SC2086
    "$PSL" bench ycsb --quiet --check --fn "$FN" --records 2000 --workload "$w" --threads 3 \
        --ops 300 --warmup 0.2 --duration 30 --workers 2 $tier \
        --target redis,psl-fn,psl-fn:sync,psl-client,psl-client:sync,psl-client-wasm,psl-http \
        >"$T/out" 2>"$T/err"
    rc=$?
    cat "$T/out" "$T/err"
    judge "workload $w"
    rows "$T/out" "$w" redis psl-fn:async psl-fn:sync psl-client:async psl-client:sync \
        psl-client-wasm:async psl-http:async
done
# Uniform keys on workload c with few records: most records are read at least once.
"$PSL" bench ycsb --quiet --check --fn "$FN" --records 500 --workload c --distribution uniform \
    --threads 2 --ops 1000 --warmup 0 --duration 30 --target redis,psl-client \
    --csv "$T/c.csv" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err"
judge "workload c"
if [ "$rc" -eq 0 ]; then
    rows "$T/out" c redis psl-client:async
    # CSV: a header and READ plus ALL rows for both targets, 2000 reads each.
    n=$(grep -c ',2000,0,' "$T/c.csv" 2>/dev/null || echo 0)
    [ "$n" -eq 4 ] || { echo "FAIL: CSV has $n rows of 2000 reads (want 4)"; cat "$T/c.csv"; st=1; }
fi
# The transport-only targets (echo processes): every operation answered, with the right size.
"$PSL" bench ycsb --quiet --records 500 --workload a --threads 2 --ops 1000 --warmup 0 \
    --duration 30 --target zmq,tcp --csv "$T/echo.csv" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err"
judge "zmq and tcp echo"
if [ "$rc" -eq 0 ]; then
    rows "$T/out" a zmq tcp
    n=$(grep -cE '^(zmq|tcp),a,.*,ALL,2000,0,' "$T/echo.csv" 2>/dev/null || echo 0)
    [ "$n" -eq 2 ] || { echo "FAIL: want an ALL row of 2000 operations, no error, for zmq and tcp"; st=1; }
fi
# CPU per operation, measured over the run's window: this process (client) and the server side
# (redis-server; psl's workers, with its storage replicas apart), under each row and in the CSV.
"$PSL" bench ycsb --quiet --fn "$FN" --records 500 --workload a --threads 2 --warmup 0.2 \
    --duration 1.5 --target redis,psl-client --csv "$T/cpu.csv" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out"
judge "cpu accounting run"
n=$(grep -c 'cpu us/op: client [0-9.]* server [0-9.]*' "$T/out")
grep -q 'cpu us/op: client [0-9.]* server [0-9.]* replicas [0-9.]*' "$T/out" && [ "$n" -eq 2 ] ||
    { echo "FAIL: want a cpu us/op line with client and server for both targets (replicas for psl)"; st=1; }
bad=$(awk -F, 'NR > 1 && $7 == "ALL" && !($19 > 0 && $20 > 0)' "$T/cpu.csv")
[ -z "$bad" ] && [ "$(grep -c ',ALL,' "$T/cpu.csv")" -eq 2 ] ||
    { echo "FAIL: CSV rows without client and server CPU:"; cat "$T/cpu.csv"; st=1; }
# The tier reaches the workers: a jit cluster compiles the deployed functions (the workers log it).
if [ -n "$JIT" ]; then
    "$PSL" bench ycsb --check --fn "$FN" --records 200 --workload c --threads 1 --ops 100 \
        --warmup 0 --duration 30 --target psl-fn >"$T/out" 2>"$T/err"
    rc=$?
    judge "workload c under the default tier"
    grep -q -- "--tier jit" "$T/err" || { echo "FAIL: the JIT is here but the cluster's tier is not jit"; cat "$T/err"; st=1; }
fi
[ $st -ne 0 ] && exit 1
echo "ok: ycsb short runs against redis and psl (workers on ${JIT:+jit and }interp): counts add up, reads return the records written"
exit 0
