#!/bin/sh
# Alternate several builds of `psl bench channel` (e.g. before and after a change) ROUNDS times in
# one session, so all see the same machine load, and print the median of each column.
# Usage: bench/channel/compare.sh [-r ROUNDS] NAME=PSL [NAME=PSL ...] [-- bench options]
#   PSL is a psl binary (anything that runs `PSL bench channel ...`). Default: 5 rounds.
# Each round runs every build once, in order (plain and secure side by side inside each run).
# Columns: plain/secure round trip (us), throughput (msg/s), process CPU per message (us, all
# threads), handshake (us), secure/plain throughput and plain/secure CPU per message (%).
set -eu
ROUNDS=5
if [ "${1:-}" = "-r" ]; then ROUNDS=$2; shift 2; fi
BUILDS=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BUILDS="$BUILDS $1"; shift; done
[ $# -gt 0 ] && shift
[ -n "$BUILDS" ] || { sed -n '2,9p' "$0"; exit 2; }
T=$(mktemp -d /tmp/psl-chan-cmp.XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "load before: $(uptime)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for b in $BUILDS; do
        name=${b%%=*} bin=${b#*=}
        "$bin" bench channel "$@" 2>/dev/null | awk -v r="$r" '
            /^plain zeromq/ { prtt=$3; ptput=$4; pcpu=$5 }
            /^secure channel/ { srtt=$3; stput=$4; scpu=$5; hs=$6 }
            END { if (ptput == "" || stput == "") exit 1
                  printf "%d %s %s %s %s %s %s %s %.1f %.1f\n", r, prtt, ptput, pcpu, srtt, stput,
                         scpu, hs, 100 * stput / ptput, 100 * pcpu / scpu }' >> "$T/$name" ||
            { echo "round $r of $name failed"; exit 1; }
    done
    r=$((r + 1))
done
echo "load after:  $(uptime)"
med() { # column, file
    awk -v c="$1" '{ print $c }' "$2" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt='%-10s %8s %10s %7s %8s %10s %7s %8s %7s %7s %9s\n'
printf "$fmt" "median" "p rtt" "p msg/s" "p cpu" "s rtt" "s msg/s" "s cpu" "hs us" "tput %" \
    "cpu %" "min s cpu"
for b in $BUILDS; do
    name=${b%%=*}
    f=$T/$name
    printf "$fmt" "$name" "$(med 2 "$f")" "$(med 3 "$f")" "$(med 4 "$f")" "$(med 5 "$f")" \
        "$(med 6 "$f")" "$(med 7 "$f")" "$(med 8 "$f")" "$(med 9 "$f")" "$(med 10 "$f")" \
        "$(sort -k7 -g "$f" | head -1 | awk '{ print $7 }')"
done
echo "($ROUNDS rounds; each column is its own median over the rounds)"
