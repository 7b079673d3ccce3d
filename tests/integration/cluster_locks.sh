#!/bin/sh
# Lock server of a real coordinator, driven by stand-in workers (cluster_lockclient):
#   1. FIFO order and release vectors: A holds L; B then C queue; A releases {1:5} -> B gets
#      {1:5}; B releases {2:9} -> C gets {1:5,2:9}.
#   2. A holder that is killed (SIGKILL): after ~2 s of silence the coordinator declares it dead,
#      releases its lock (logged) and grants the next waiter.
#   3. A holder that keeps its lock past the lease (--lease-ms 1000) loses it (logged).
# usage: cluster_locks.sh PSL LOCKCLIENT
set -u
PSL=$1
LC=$2
# port (a free port, at most once per run) from cluster_lib.sh; the cleanup and fail below
# replace its own
. "$(dirname "$0")/cluster_lib.sh"
T=$(mktemp -d /tmp/psl-locks.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$T"/coord*.log; do echo "--- $f"; cat "$f"; done
    for f in "$T"/*.out; do echo "--- $f"; cat "$f"; done
    exit 1
}

printf 'allow_sim: yes\nmeasurement: any\n' > "$T/policy"
start_coord() { # start_coord LOG EXTRA-OPTIONS...
    log=$1; shift
    n0=$(grep -c ': ready' "$T/$log" 2>/dev/null) || n0=0
    EP="tcp://127.0.0.1:$(port)"
    "$PSL" coordinator --listen "$EP" --http "$(port)" --dir "$T/coord-$log" \
        --policy "$T/policy" "$@" >> "$T/$log" 2>&1 &
    COORD=$!
    PIDS="$PIDS $!"
    i=0
    until [ "$(grep -c ': ready' "$T/$log" 2>/dev/null)" -gt "$n0" ]; do
        i=$((i + 1)); [ $i -gt 100 ] && fail "coordinator did not start"; sleep 0.1
    done
}
start_coord coord.log

lc() { # lc NAME ID STEPS...
    n=$1; id=$2; shift 2
    "$LC" "$EP" "$id" "$T/home-$n" "$T/policy" "$@" > "$T/$n.out" 2>&1 &
    eval "PID_$n=$!"
    PIDS="$PIDS $!"
}

# ---- 1. FIFO + vectors: A holds L for 1.5 s, so B and then C queue behind it.
lc A 1 acquire:L:11 wait:11 sleep:1500 release:L:1=5 sleep:300
until grep -q "granted 11" "$T/A.out" 2>/dev/null; do sleep 0.05; done
lc B 2 acquire:L:22 wait:22 sleep:300 release:L:2=9 sleep:300
until grep -q "acquire L 22" "$T/B.out" 2>/dev/null; do sleep 0.05; done
sleep 0.1
lc C 3 acquire:L:33 wait:33 release:L sleep:100
wait $PID_A $PID_B $PID_C || fail "a lock client failed"
grep -q "granted 11 *$" "$T/A.out" || fail "A was not granted L with an empty vector"
grep -q "granted 22 1:5$" "$T/B.out" || fail "B did not get A's vector 1:5"
grep -q "granted 33 1:5,2:9$" "$T/C.out" || fail "C did not get the merged vector 1:5,2:9"
ta=$(awk '/release L/{print $1}' "$T/A.out")
tb=$(awk '/granted 22/{print $1}' "$T/B.out")
tbr=$(awk '/release L/{print $1}' "$T/B.out")
tc=$(awk '/granted 33/{print $1}' "$T/C.out")
# Wall-clock milliseconds of one machine: every grant follows the previous holder's release.
[ "$tb" -ge "$ta" ] || fail "B was granted L before A released it"
[ "$tc" -ge "$tbr" ] || fail "C was granted L before B released it"
echo "ok: FIFO order A -> B -> C with vectors {} -> {1:5} -> {1:5,2:9}"

# ---- 2. killed holder: D holds M and dies; E queued behind it gets M after the dead timeout.
lc D 4 acquire:M:1 wait:1 sleep:60000
until grep -q "granted 1" "$T/D.out" 2>/dev/null; do sleep 0.05; done
lc E 5 acquire:M:2 wait:2 release:M sleep:100
until grep -q "acquire M 2" "$T/E.out" 2>/dev/null; do sleep 0.05; done
sleep 0.3 # E's request reaches the coordinator and queues behind D
kill -9 $PID_D
killed=$(date +%s%3N)
wait $PID_E || fail "E never got lock M after its holder was killed"
# Wall-clock milliseconds on one machine: from the kill to E's grant.
el=$(( $(awk '/granted 2/{print $1}' "$T/E.out") - killed ))
grep -q "lock 'M': holder worker 4 is dead: lock released" "$T/coord.log" ||
    fail "the coordinator did not log the release of M"
[ $el -ge 1500 ] && [ $el -le 6000 ] || fail "M was released after $el ms (dead timeout 2000 ms)"
echo "ok: lock of a killed worker released after ${el} ms and granted to the next waiter"

# ---- 2b. the vectors survive a restart of the coordinator (same state directory).
kill $COORD
wait $COORD 2>/dev/null
start_coord coord.log
lc H 8 acquire:L:44 wait:44 release:L sleep:100
wait $PID_H || fail "H never got lock L after the restart"
grep -q "granted 44 1:5,2:9$" "$T/H.out" || fail "L's vector was lost in the restart"
echo "ok: after a coordinator restart, L is granted with its vector 1:5,2:9"

# ---- 3. lease: a second coordinator with a 1 s lease. F keeps N (heartbeating) for 4 s;
# G, queued behind it, gets N about 1 s after F got it.
kill $COORD
start_coord coord2.log --lease-ms 1000
lc F 6 acquire:N:1 wait:1 sleep:4000
until grep -q "granted 1" "$T/F.out" 2>/dev/null; do sleep 0.05; done
lc G 7 acquire:N:2 wait:2 release:N sleep:100
wait $PID_G || fail "G never got lock N"
# From F's grant to G's grant (wall-clock milliseconds of both clients).
el=$(( $(awk '/granted 2/{print $1}' "$T/G.out") - $(awk '/granted 1/{print $1}' "$T/F.out") ))
grep -q "lock 'N': worker 6 held it past its lease (1000 ms): lock released" "$T/coord2.log" ||
    fail "the coordinator did not log the lease expiry of N"
[ $el -ge 950 ] && [ $el -le 3000 ] || fail "N was released after $el ms (lease 1000 ms)"
echo "ok: lease expiry released N after ${el} ms (lease 1000 ms) and granted it to G"
wait $PID_F
for p in $PIDS; do kill "$p" 2>/dev/null; done
wait
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/coord*.log "$T"/*.out >/dev/null 2>&1; then
    fail "sanitizer report in $(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/coord*.log "$T"/*.out)"
fi
echo "all lock server checks passed"
