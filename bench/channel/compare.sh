#!/bin/sh
# Alternate two builds of `psl bench channel` (e.g. before and after a change) ROUNDS times in
# one session, so both see the same machine load, and print the median of each column.
# Usage: bench/channel/compare.sh NAME_A PSL_A NAME_B PSL_B [ROUNDS] [-- bench options]
#   PSL_x is a psl binary (or anything that runs `X bench channel ...`).
# Each round runs A then B once (plain and secure side by side inside each run). Columns:
#   plain/secure round trip (us), throughput (msg/s), process CPU per message (us, all threads),
#   secure/plain throughput and plain/secure CPU per message (%), handshake (us).
set -eu
[ $# -ge 4 ] || { sed -n '2,8p' "$0"; exit 2; }
NA=$1 A=$2 NB=$3 B=$4
shift 4
ROUNDS=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
T=$(mktemp -d /tmp/psl-chan-cmp.XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "load before: $(uptime)"
r=1
while [ $r -le "$ROUNDS" ]; do
    for side in A B; do
        if [ $side = A ]; then bin=$A; else bin=$B; fi
        "$bin" bench channel "$@" 2>/dev/null | awk -v r=$r '
            /^plain zeromq/ { prtt=$3; ptput=$4; pcpu=$5 }
            /^secure channel/ { srtt=$3; stput=$4; scpu=$5; hs=$6 }
            END { if (ptput == "" || stput == "") exit 1
                  printf "%d %s %s %s %s %s %s %s %.1f %.1f\n", r, prtt, ptput, pcpu, srtt, stput,
                         scpu, hs, 100 * stput / ptput, 100 * pcpu / scpu }' >> "$T/$side" ||
            { echo "run $r of $side failed"; exit 1; }
    done
    r=$((r + 1))
done
echo "load after:  $(uptime)"
med() { # column number, file
    awk -v c="$1" '{ print $c }' "$2" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
printf '%-10s %8s %10s %8s %8s %10s %8s %9s %7s %7s\n' "medians" "p rtt" "p msg/s" "p cpu" \
    "s rtt" "s msg/s" "s cpu" "hs us" "tput %" "cpu %"
for side in A B; do
    if [ $side = A ]; then n=$NA; else n=$NB; fi
    printf '%-10s %8s %10s %8s %8s %10s %8s %9s %7s %7s\n' "$n" "$(med 2 "$T/$side")" \
        "$(med 3 "$T/$side")" "$(med 4 "$T/$side")" "$(med 5 "$T/$side")" \
        "$(med 6 "$T/$side")" "$(med 7 "$T/$side")" "$(med 8 "$T/$side")" \
        "$(med 9 "$T/$side")" "$(med 10 "$T/$side")"
done
echo "($ROUNDS rounds; each column is its own median; min secure CPU/msg: $NA $(sort -k7 -g "$T/A" | head -1 | awk '{print $7}'), $NB $(sort -k7 -g "$T/B" | head -1 | awk '{print $7}'))"
