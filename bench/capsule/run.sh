#!/bin/sh
# DataCapsule append benchmark, median of several runs (docs/BENCHMARKS.md, "DataCapsules").
# usage: bench/capsule/run.sh [PSL ...]   (default build/psl)
#   ROUNDS=5 SECONDS_PER_ROW=3 ROWS="1 2" ...: each round runs `psl bench capsule --only ROW` once
#   per binary, binaries interleaved, so that two builds (before/after) see the same machine load.
# Prints the load (uptime) before and after, and per binary and row the medians of records/s,
# p50/p99 latency (us), CPU us per record (writer + 3 replicas) and disk KB written per record.
set -u
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_ROW:-3}
ROWS=${ROWS:-"1 2 3"}
[ $# -eq 0 ] && set -- build/psl
OUT=$(mktemp -d /tmp/psl-bench-capsule-run-XXXXXX)
trap 'rm -rf "$OUT"' EXIT INT TERM
# Private copies: others may rebuild build/ while this runs.
n=0
for p in "$@"; do
    n=$((n + 1))
    cp "$p" "$OUT/psl$n" || exit 1
done
echo "load before: $(uptime)"
port=27600
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    for row in $ROWS; do
        i=0
        for p in "$@"; do
            i=$((i + 1))
            port=$((port + 10))
            "$OUT/psl$i" bench capsule --seconds "$SECS" --port $port --only "$row" 2>/dev/null |
                awk -v b="$i" -v row="$row" 'NR > 3 && /^[0-9]/ { n = split($0, f, /  +/);
                    print b, row, $0; exit }' >>"$OUT/rows"
        done
    done
done
echo "load after:  $(uptime)"
echo "rounds: $ROUNDS, $SECS s per row; medians"
printf "%-44s %-30s %10s %8s %8s %7s %7s\n" binary workload records/s "p50 us" "p99 us" "cpu us" "disk KB"
i=0
for p in "$@"; do
    i=$((i + 1))
    for row in $ROWS; do
        grep "^$i $row " "$OUT/rows" | sed "s/^$i $row //" >"$OUT/sel"
        [ -s "$OUT/sel" ] || continue
        label=$(head -1 "$OUT/sel" | sed 's/  .*//')
        # fields from the right: ... records/s MB/s p50 p99 rec/batch cpu disk
        med() { awk "{print \$(NF-$1)}" "$OUT/sel" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
        printf "%-44s %-30s %10s %8s %8s %7s %7s\n" "$p" "$label" "$(med 6)" "$(med 4)" "$(med 3)" \
            "$(med 1)" "$(med 0)"
    done
done
