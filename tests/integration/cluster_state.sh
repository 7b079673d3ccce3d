#!/bin/sh
# Shared state across a real local cluster (psl up: 2 workers, 3 storage replicas, forwarder,
# coordinator): concurrent writers converge, transfers under locks preserve the total on every
# observation, the workers trim their capsules behind their checkpoints, state survives a full
# restart, and nothing acknowledged with sync durability is lost when a worker is killed with
# SIGKILL mid-stream.
# usage: cluster_state.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
. "$(dirname "$0")/cluster_lib.sh"
cluster_tmp state
# Workers write a checkpoint every 5 records of their capsule, so the restarts below recover from
# checkpoints (a snapshot, then only the records after it).
export PSL_CHECKPOINT_EVERY=5

"$PSL" up --workers 2 --dir "$D" >"$T/up.out" 2>&1 || { cat "$T/up.out"; bad "psl up"; exit 1; }
"$PSL" deploy counter "$EX/counter.wasm" --dir "$D" >/dev/null &&
"$PSL" deploy bank "$EX/bank.wasm" --dir "$D" >/dev/null &&
"$PSL" deploy scounter "$EX/counter.wasm" --durability sync --dir "$D" >/dev/null ||
    { bad "deploy"; exit 1; }

# 1. Concurrent writers on both workers, then quiescence: every read agrees (sequential requests
#    alternate between the two workers).
inv bank "open a 100" >/dev/null; inv bank "open b 100" >/dev/null
for c in 1 2 3 4; do
    ( for i in 1 2 3 4 5 6 7 8 9 10; do inv counter "shared 1" >/dev/null; done ) &
done
for c in 1 2 3; do
    ( for i in 1 2 3 4 5 6 7 8; do inv bank "move a b 3" >/dev/null; inv bank "move b a 2" >/dev/null;
        inv bank "total a b" >>"$T/totals"; done ) &
done
wait
sleep 1
v1=$(kvget counter/shared) v2=$(kvget counter/shared) v3=$(kvget counter/shared) v4=$(kvget counter/shared)
if [ -n "$v1" ] && [ "$v1" = "$v2" ] && [ "$v2" = "$v3" ] && [ "$v3" = "$v4" ]; then
    ok "concurrent increments from both workers converge (counter/shared=$v1 on every read)"
else
    bad "replicas disagree after quiescence: $v1 $v2 $v3 $v4"
fi
nt=$(wc -l < "$T/totals")
if [ "$nt" -eq 24 ] && ! grep -v '^total 200$' "$T/totals" >/dev/null; then
    ok "24 totals observed under the lock during concurrent transfers: all 200"
else
    bad "totals under the lock: $(sort "$T/totals" | uniq -c | tr '\n' ' ')"
fi
a1=$(kvget bank/a) a2=$(kvget bank/a) b1=$(kvget bank/b) b2=$(kvget bank/b)
if [ "$a1" = "$a2" ] && [ "$b1" = "$b2" ] && [ $((a1 + b1)) -eq 200 ]; then
    ok "balances agree on both workers: a=$a1 b=$b1"
else
    bad "balances: a=$a1/$a2 b=$b1/$b2"
fi

# 1b. Behind their checkpoints the workers trim their capsules: the replicas drop the records
#     before the previous checkpoint run, and a verifier starts at the trim point (2. then
#     recovers the state from the trimmed capsules).
sleep 2.5
EPS=$(tr -d '\n\t ' < "$D/cluster.json" | sed 's/.*"storage":"\([^"]*\)".*/\1/')
for w in 1 2; do
    out=$("$PSL" capsule verify --replicas "$EPS" --capsule "$(cat "$D/worker-$w/capsule.id")" 2>&1)
    if echo "$out" | grep -q '^verified ok' && echo "$out" | grep -q '^first [0-9]* (records 1 to'; then
        ok "worker-$w's capsule is trimmed and verifies: $(echo "$out" | grep '^first' | cut -d' ' -f1-2), $(echo "$out" | grep '^head' | cut -d' ' -f1-2)"
    else
        bad "worker-$w's capsule: $(echo "$out" | tr '\n' ' ')"
    fi
done

# 1c. A storage replica loses its disk: restarted empty, it gets every capsule back from its peers
#     (psl up makes the replicas each other's anti-entropy peers): record 0, the trim statement
#     and the records after it, and then verifies on its own.
S2=$(tr -d '\n\t ' < "$D/cluster.json" | sed 's/.*"role":"storage-2","pid":\([0-9]*\).*/\1/')
S2EP=$(echo "$EPS" | cut -d, -f3)
S2PEERS=$(echo "$EPS" | cut -d, -f1-2)
kill -9 "$S2" && rm -rf "$D/storage-2"
"$PSL" storage --listen "$S2EP" --data "$D/storage-2" --peers "$S2PEERS" >>"$D/logs/storage-2.log" 2>&1 &
S2NEW=$!
caught=0
for i in $(seq 1 60); do
    o1=$("$PSL" capsule verify --quorum 1 --replicas "$S2EP" --capsule "$(cat "$D/worker-1/capsule.id")" 2>/dev/null)
    o2=$("$PSL" capsule verify --quorum 1 --replicas "$S2EP" --capsule "$(cat "$D/worker-2/capsule.id")" 2>/dev/null)
    if echo "$o1" | grep -q '^verified ok' && echo "$o2" | grep -q '^verified ok'; then
        caught=1
        break
    fi
    sleep 0.25
done
if [ "$caught" -eq 1 ]; then
    ok "an emptied replica caught up from its peers: $(echo "$o1" | grep -E '^(first|head)' | cut -d' ' -f1-2 | tr '\n' ' ')"
else
    bad "the emptied replica did not catch up: $(echo "$o1" | tr '\n' ' ') $(tail -n 3 "$D/logs/storage-2.log" | tr '\n' ' ')"
fi
kill "$S2NEW" 2>/dev/null
wait "$S2NEW" 2>/dev/null

# 2. A full restart recovers the same state from the capsules.
"$PSL" down --dir "$D" >/dev/null 2>&1
"$PSL" up --workers 2 --dir "$D" >"$T/up2.out" 2>&1 || { cat "$T/up2.out"; bad "psl up again"; exit 1; }
r1=$(kvget counter/shared) r2=$(kvget counter/shared) ra=$(kvget bank/a) rb=$(kvget bank/b)
if [ "$r1" = "$v1" ] && [ "$r2" = "$v1" ] && [ "$ra" = "$a1" ] && [ "$rb" = "$b1" ]; then
    ok "after psl down / psl up both workers hold the same state (shared=$r1 a=$ra b=$rb)"
else
    bad "after restart: shared=$r1/$r2 (was $v1) a=$ra (was $a1) b=$rb (was $b1)"
fi

if grep -h "state recovered" "$D"/logs/worker-*.log | grep -q "([1-9][0-9]* capsules replayed from a checkpoint)"; then
    ok "recovery started from checkpoints: $(grep -h "state recovered" "$D"/logs/worker-1.log | tail -1 | sed 's/^[^:]*: //')"
else
    bad "no capsule was recovered from a checkpoint: $(grep -h "state recovered" "$D"/logs/worker-*.log | tr '\n' ' ')"
fi

# 3. sync durability: acknowledged writes survive SIGKILL of a worker mid-stream.
W1=$(tr -d '\n\t ' < "$D/cluster.json" | sed 's/.*"role":"worker-1","pid":\([0-9]*\).*/\1/')
( for i in $(seq 1 60); do
      out=$(inv scounter "u$i 1") && echo "u$i" >>"$T/acked"
  done ) &
LOOP=$!
sleep 0.7
kill -9 "$W1" 2>/dev/null && echo "      (killed worker-1, pid $W1, mid-stream)"
wait "$LOOP"
sleep 1
"$PSL" down --dir "$D" >/dev/null 2>&1
"$PSL" up --workers 2 --dir "$D" >"$T/up3.out" 2>&1 || { cat "$T/up3.out"; bad "psl up after kill"; exit 1; }
lost=0 nack=0
for k in $(cat "$T/acked" 2>/dev/null); do
    nack=$((nack + 1))
    [ "$(kvget "counter/$k")" = "1" ] || { lost=$((lost + 1)); echo "      lost: $k"; }
done
if [ "$nack" -gt 20 ] && [ "$lost" -eq 0 ]; then
    ok "all $nack acknowledged sync invocations are durable after a worker was killed"
else
    bad "$lost of $nack acknowledged sync writes lost"
fi
# 4. The forwarder is untrusted: with it killed, writes still reach the other worker (from
#    storage), and locks still give every holder the previous holders' writes.
FW=$(tr -d '\n\t ' < "$D/cluster.json" | sed 's/.*"role":"forwarder","pid":\([0-9]*\).*/\1/')
kill -9 "$FW" 2>/dev/null && echo "      (killed the forwarder, pid $FW)"
rm -f "$T/totals"
for c in 1 2; do
    ( for i in 1 2 3 4 5; do inv bank "move a b 4" >/dev/null; inv bank "total a b" >>"$T/totals";
        inv counter "nofwd 1" >/dev/null; done ) &
done
wait
if [ "$(wc -l < "$T/totals")" -eq 10 ] && ! grep -v '^total 200$' "$T/totals" >/dev/null; then
    ok "without the forwarder, totals under the lock stay 200 (vectors pulled from storage)"
else
    bad "without the forwarder: $(sort "$T/totals" | uniq -c | tr '\n' ' ')"
fi
sleep 2.5
n1=$(kvget counter/nofwd) n2=$(kvget counter/nofwd) n3=$(kvget counter/nofwd)
if [ -n "$n1" ] && [ "$n1" = "$n2" ] && [ "$n2" = "$n3" ]; then
    ok "without the forwarder, replicas converge through storage (counter/nofwd=$n1)"
else
    bad "without the forwarder, replicas disagree: $n1 $n2 $n3"
fi
finish
