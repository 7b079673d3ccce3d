#!/bin/sh
# Invoking over the workers' attested client channel (psl invoke --secure, src/client) on a local
# cluster of real processes (psl up, two workers, loopback): the gateway publishes each worker's
# client endpoint and measurement; an invocation returns the function's body; a state change over
# the channel is seen by the HTTP path; a sync function answers after its writes are durable; a
# client that demands another measurement, or a policy the workers do not pass, is refused before
# sending anything, with the reason; a function that runs long goes to the invocation threads and
# does not hold up other clients; the workers keep serving after all of that. Then a cluster
# whose workers serve only listed client identities (psl up --client-keys, psl identity): a
# listed client is served, an unlisted or fresh identity is refused with the reason, a bad list
# is refused by psl up. Skipped (77) when this psl has no `worker` command.
# usage: client_channel.sh PSL EXAMPLES_DIR WAT_DIR
set -u
PSL=$1
EX=$2
WAT=$3
"$PSL" help worker >/dev/null 2>&1 || { echo "psl worker is not built: skipped"; exit 77; }
T=$(mktemp -d /tmp/psl-cc.XXXXXX)
# A private copy: the daemons run it while build/ may be relinked.
cp "$PSL" "$T/psl" || exit 1
PSL=$T/psl
export PSL_DIR="$T/data"
cleanup() {
    "$PSL" down >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$PSL_DIR"/logs/*.log; do echo "--- $f"; tail -20 "$f"; done
    exit 1
}
ok() { echo "ok: $*"; }
wat2wasm "$WAT/loop.wat" -o "$T/loop.wasm" || fail "wat2wasm loop"

# 4 invocation threads per worker: a function a worker has not run yet goes to them, so an echo
# must find a free one even when both loops below land on its worker.
GW=$("$PSL" up --workers 2 --threads 4) || fail "psl up"
"$PSL" deploy echo "$EX/echo.wasm" >/dev/null || fail "deploy echo"
"$PSL" deploy counter "$EX/counter.wasm" --durability sync >/dev/null || fail "deploy counter"
"$PSL" deploy loop "$T/loop.wasm" --timeout-ms 4000 >/dev/null || fail "deploy loop"

# The endpoint list: both workers, each with a 64-digit measurement.
curl -s "$GW/endpoints" > "$T/eps" || fail "GET /endpoints"
n=$(grep -o '"endpoint":"stream://127.0.0.1:[0-9]*"' "$T/eps" | wc -l)
[ "$n" -eq 2 ] || fail "GET /endpoints lists $n workers with a client endpoint: $(cat "$T/eps")"
MEAS=$(grep -o '"measurement":"[0-9a-f]\{64\}"' "$T/eps" | head -1 | cut -d'"' -f4)
[ -n "$MEAS" ] || fail "no measurement in $(cat "$T/eps")"
ok "GET /endpoints: 2 workers, measurement $MEAS"

# Invocations return the function's body (the worker is picked at random: try several times).
for i in 1 2 3 4 5 6; do
    out=$("$PSL" invoke --secure echo --data "hello $i") || fail "invoke --secure echo ($i)"
    [ "$out" = "hello $i" ] || fail "invoke --secure echo answered '$out'"
done
out=$(printf 'from stdin' | "$PSL" invoke --secure echo --measurement "$MEAS") ||
    fail "invoke --secure with the published measurement given explicitly"
[ "$out" = "from stdin" ] || fail "stdin body: '$out'"
ok "invoke --secure echo returns the body (6 runs, and stdin with --measurement)"

# State: a sync counter over the channel, then read through the HTTP gateway.
# The counter prints "NAME=VALUE (instance run 1)".
for i in 1 2 3; do
    out=$("$PSL" invoke --secure counter --data "cc") || fail "invoke --secure counter"
done
case "$out" in cc=[0-9]*) ;; *) fail "counter answered '$out'" ;; esac
got=""
for i in 1 2 3 4 5 6 7 8 9 10; do # replication between the workers is eventually consistent
    out=$("$PSL" invoke counter --data "cc 0") || fail "invoke counter over HTTP"
    case "$out" in cc=3\ *) got=1; break ;; esac
    sleep 0.3
done
[ -n "$got" ] || fail "after 3 sync increments over the channel, HTTP reads '$out'"
ok "sync counter over the channel: the HTTP path reads '$out'"

# A missing function: not found (exit 127), with the reason.
"$PSL" invoke --secure nosuch --data x 2>"$T/err"
rc=$?
[ "$rc" -eq 127 ] && grep -q "not deployed" "$T/err" || fail "missing function: exit $rc, $(cat "$T/err")"
ok "missing function -> exit 127: $(tail -1 "$T/err")"

# A client that demands another measurement is refused during the handshake, with the reason.
BAD=0000000000000000000000000000000000000000000000000000000000000001
"$PSL" invoke --secure echo --data x --measurement "$BAD" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] || fail "wrong measurement: exit $rc (want 1)"
[ ! -s "$T/out" ] || fail "wrong measurement: the function ran: $(cat "$T/out")"
grep -q "refused: server rejected: attestation report rejected: measurement $MEAS not accepted" \
    "$T/err" || fail "wrong measurement: reason: $(cat "$T/err")"
ok "another measurement demanded -> refused: $(tail -1 "$T/err" | cut -c1-150)"

# A client policy the measurement is not in: refused before connecting.
sed 's/^measurement:.*/measurement: '"$BAD"'/' "$PSL_DIR/policy.txt" > "$T/pol-meas"
"$PSL" invoke --secure echo --data x --policy "$T/pol-meas" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "is not accepted by the client's policy" "$T/err" ||
    fail "policy without the measurement: exit $rc, $(cat "$T/err")"
ok "policy without the published measurement -> refused: $(tail -1 "$T/err" | cut -c1-120)"
# A client policy that does not accept sim enclaves: the worker's report is refused.
sed 's/^allow_sim:.*/allow_sim: no/' "$PSL_DIR/policy.txt" > "$T/pol-nosim"
"$PSL" invoke --secure echo --data x --policy "$T/pol-nosim" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "refused: server rejected: attestation report rejected" "$T/err" ||
    fail "policy without sim: exit $rc, $(cat "$T/err")"
ok "policy refusing sim -> refused: $(tail -1 "$T/err" | cut -c1-140)"

# A long function (it loops until its 4 s budget) runs on the invocation threads: clients of the
# same worker are served meanwhile, so the 6 echo invocations end while both loops still run
# (held up behind them, they would take 4 s). Two loops so that each worker is likely to have one.
"$PSL" invoke --secure loop --data x >/dev/null 2>"$T/loop1.err" &
L1=$!
"$PSL" invoke --secure loop --data x >/dev/null 2>"$T/loop2.err" &
L2=$!
sleep 0.3
t0=$(date +%s%N)
for i in 1 2 3 4 5 6; do
    out=$("$PSL" invoke --secure echo --data "during $i") || fail "echo while loop runs ($i)"
    [ "$out" = "during $i" ] || fail "echo while loop runs answered '$out'"
done
t1=$(date +%s%N)
kill -0 $L1 2>/dev/null && kill -0 $L2 2>/dev/null
running=$?
wait $L1
r1=$?
wait $L2
r2=$?
[ "$r1" -eq 124 ] && [ "$r2" -eq 124 ] || fail "loop: exit $r1 / $r2 (want 124: timeout)"
grep -q "time budget" "$T/loop1.err" || fail "loop: reason: $(cat "$T/loop1.err")"
ms=$(( (t1 - t0) / 1000000 ))
[ "$running" -eq 0 ] && [ "$ms" -lt 3500 ] ||
    fail "6 echo invocations took $ms ms and ended after a loop (held up)"
ok "loop times out (exit 124) while 6 echo invocations are answered in $ms ms"

# The workers still serve after the refusals and the timeouts; neither logged a crash.
for i in 1 2 3 4; do
    out=$("$PSL" invoke --secure echo --data "after $i") || fail "invoke after the bad clients"
    [ "$out" = "after $i" ] || fail "after the bad clients: '$out'"
done
n=$(curl -s "$GW/healthz" | grep -o '"workers":[0-9]*' | cut -d: -f2)
[ "$n" = 2 ] || fail "healthz counts $n live workers"
grep -l "closed the channel: attestation report rejected" "$PSL_DIR"/logs/worker-*.log >/dev/null ||
    fail "no worker logged the refused client"
ok "both workers live and serving after the refused clients"

# Only listed clients: a second cluster started with --client-keys.
"$PSL" down >/dev/null 2>&1
export PSL_DIR="$T/data2"
"$PSL" identity "$T/alice" > "$T/keys.txt" 2>/dev/null || fail "psl identity alice"
grep -q "^client_key: [0-9a-f]\{64\}$" "$T/keys.txt" || fail "psl identity printed: $(cat "$T/keys.txt")"
"$PSL" identity "$T/bob" >/dev/null 2>&1 || fail "psl identity bob"
k1=$(cat "$T/keys.txt")
k2=$("$PSL" identity "$T/alice" 2>/dev/null)
[ "$k1" = "$k2" ] || fail "psl identity on an existing file printed another key: $k2"
echo "measurement: any" > "$T/badkeys.txt"
"$PSL" up --workers 1 --client-keys "$T/badkeys.txt" 2>"$T/bad.err" && fail "psl up took a bad client list"
grep -q "holds only 'client_key: HEX' lines" "$T/bad.err" || fail "bad list: $(cat "$T/bad.err")"
"$PSL" up --workers 1 --client-keys "$T/keys.txt" >/dev/null || fail "psl up --client-keys"
"$PSL" deploy echo "$EX/echo.wasm" >/dev/null || fail "deploy echo (listed clients)"
out=$("$PSL" invoke --secure --identity "$T/alice" echo --data listed) || fail "listed client refused"
[ "$out" = listed ] || fail "listed client got '$out'"
"$PSL" invoke --secure --identity "$T/bob" echo --data unlisted >/dev/null 2>"$T/bob.err" &&
    fail "an unlisted identity was served"
grep -q "is not a client_key of the policy" "$T/bob.err" || fail "unlisted: $(cat "$T/bob.err")"
"$PSL" invoke --secure echo --data fresh >/dev/null 2>"$T/fresh.err" &&
    fail "a fresh identity was served"
grep -q "is not a client_key of the policy" "$T/fresh.err" || fail "fresh: $(cat "$T/fresh.err")"
ok "client list: the listed identity is served, an unlisted and a fresh one are refused"
echo "PASS"
