#!/bin/sh
# The standard YCSB comparison (make bench-ycsb): psl (in-function and client mode, async and
# sync durability) against Redis without persistence and a no-op TCP echo (tcp: the loopback's
# ceiling), workloads C and A, 1, 4 and 16 connections, 100,000 records of 1000 bytes, the
# median of YCSB_RUNS runs per point, all measured side by side in one run. Times a private copy
# of psl and of the YCSB function (others may rebuild build/ meanwhile). Writes the table to
# stdout and $OUT/ycsb.{txt,csv,png}.
# Environment: BUILD (build), OUT ($BUILD/bench/ycsb-results), YCSB_RUNS (3), YCSB_DURATION (10),
# YCSB_WARMUP (2), YCSB_THREADS (1,4,16), YCSB_WORKLOADS (c,a), YCSB_RECORDS (100000),
# YCSB_TARGETS (redis,tcp,psl-fn,psl-fn:sync,psl-client,psl-client:sync,psl-http), YCSB_ARGS (more
# options).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-$BUILD/bench/ycsb-results}
mkdir -p "$OUT"
SNAP=$(mktemp -d /tmp/psl-ycsb-bin.XXXXXX)
trap 'rm -rf "$SNAP"' EXIT INT TERM
mkdir -p "$SNAP/bench"
cp "$BUILD/psl" "$SNAP/psl"
cp "$BUILD/bench/ycsb.wasm" "$BUILD/bench/ycsb_op.so" "$BUILD/bench/ycsb_op.wasm" "$SNAP/bench/"
"$SNAP/psl" bench ycsb --help >/dev/null || { echo "run.sh: $BUILD/psl does not run" >&2; exit 1; }
set -- --target "${YCSB_TARGETS:-redis,tcp,psl-fn,psl-fn:sync,psl-client,psl-client:sync,psl-http}" \
    --workload "${YCSB_WORKLOADS:-c,a}" --threads "${YCSB_THREADS:-1,4,16}" \
    --records "${YCSB_RECORDS:-100000}" --warmup "${YCSB_WARMUP:-2}" \
    --duration "${YCSB_DURATION:-10}" --runs "${YCSB_RUNS:-3}" ${YCSB_ARGS:-}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# psl bench ycsb $*"
"$SNAP/psl" bench ycsb "$@" --csv "$OUT/ycsb.csv" --plot "$OUT/ycsb.png" | tee "$OUT/ycsb.txt"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
