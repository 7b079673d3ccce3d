#!/bin/sh
# Integration test of the attested secure channel with real processes on loopback: an echo
# server (chan_peer serve), a man in the middle (chan_mitm) and clients (chan_peer connect).
# Every rejection case of issue 4 is run; each must produce a clear reason on the detecting side,
# close the connection, and leave the server running (no crash).
# Usage: test_channel.sh BINDIR   (BINDIR holds chan_peer and chan_mitm)
set -u
BIN=${1:?usage: test_channel.sh BINDIR}
T=$(mktemp -d /tmp/psl-chan-test.XXXXXX)
# Private copies: the measurement covers the binary, and others may relink build/ mid-run.
cp "$BIN/chan_peer" "$BIN/chan_mitm" "$T/" || { echo "cannot copy the test binaries"; exit 1; }
PEER="$T/chan_peer"
MITM="$T/chan_mitm"
BASE=$((20000 + $$ % 12000)) # below 32768: never a client's ephemeral port
FAILS=0
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok:   $*"; }
next_port() { BASE=$((BASE + 1)); }

H="$T/home"
"$PEER" policy --home "$H" > "$T/dev.pol" || { echo "cannot make policy"; exit 1; }
"$PEER" policy --home "$H" --production > "$T/prod.pol"
echo "other = 1" > "$T/other.conf"
head -c 32 /dev/urandom > "$T/owner.seed"
head -c 32 /dev/urandom > "$T/stranger.seed"
"$PEER" policy --home "$H" --client-key-of "$T/owner.seed" > "$T/owner.pol"

next_port; SP=$BASE
"$PEER" serve --listen "tcp://127.0.0.1:$SP" --home "$H" --policy "$T/owner.pol" \
    > "$T/server.out" 2> "$T/server.err" &
SERVER=$!
PIDS="$PIDS $SERVER"
sleep 0.3

# run_case NAME MODE DIR AT SIDE TEXT [client args...]
#   SIDE = server: TEXT must appear in the server's log (and the client must fail)
#   SIDE = client: TEXT must appear in the client's output (and the client must fail)
#   SIDE = serverlog: TEXT must appear in the server's log (the client may have finished first)
#   SIDE = none:   the client must succeed
run_case() {
    name=$1 mode=$2 dir=$3 at=$4 side=$5 text=$6
    shift 6
    tries=0
    while :; do # a port taken by someone else: the mitm exits; take the next one
        next_port; mp=$BASE
        "$MITM" --listen "tcp://127.0.0.1:$mp" --connect "tcp://127.0.0.1:$SP" --mode "$mode" \
            --dir "$dir" --at "$at" --size 1600000 2> "$T/mitm.$name" &
        mpid=$!
        i=0
        while [ $i -lt 100 ] && kill -0 "$mpid" 2>/dev/null && ! grep -q " mode " "$T/mitm.$name"; do
            sleep 0.05; i=$((i + 1))
        done
        if kill -0 "$mpid" 2>/dev/null || [ $tries -ge 5 ]; then break; fi
        tries=$((tries + 1))
    done
    PIDS="$PIDS $mpid"
    before=$(wc -l < "$T/server.err")
    out=$(timeout 20 "$PEER" connect --connect "tcp://127.0.0.1:$mp" --home "$H" \
        --policy "$T/dev.pol" --count 4 "$@" 2>&1)
    rc=$?
    if [ "$mode" = oldsession ]; then # the second connection gets the old frame
        out=$(timeout 20 "$PEER" connect --connect "tcp://127.0.0.1:$mp" --home "$H" \
            --policy "$T/dev.pol" --count 4 "$@" 2>&1)
        rc=$?
    fi
    sleep 0.2
    newlog=$(tail -n +"$((before + 1))" "$T/server.err")
    kill "$mpid" 2>/dev/null
    wait "$mpid" 2>/dev/null
    if ! kill -0 "$SERVER" 2>/dev/null; then
        fail "$name: the server died"
        return
    fi
    case $side in
    none)
        if [ $rc -eq 0 ]; then pass "$name: $out"; else fail "$name: client failed: $out"; fi ;;
    server)
        if [ $rc -ne 0 ] && printf '%s' "$newlog" | grep -q -- "$text"; then
            pass "$name: server says: $(printf '%s' "$newlog" | grep -- "$text" | head -1)"
            pass "$name: client says: $out"
        else
            fail "$name: rc=$rc server log: $newlog client: $out"
        fi ;;
    serverlog)
        if printf '%s' "$newlog" | grep -q -- "$text"; then
            pass "$name: server says: $(printf '%s' "$newlog" | grep -- "$text" | head -1)"
        else
            fail "$name: server log: $newlog client: $out"
        fi ;;
    client)
        if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q -- "$text"; then
            pass "$name: client says: $(printf '%s' "$out" | head -1)"
        else
            fail "$name: rc=$rc client: $out"
        fi ;;
    esac
}

run_case pass          pass       c2s 1 none   ""
run_case tamper_c2s    tamper     c2s 1 server "tampered message"
run_case tamper_s2c    tamper     s2c 1 client "tampered message"
run_case truncate_c2s  truncate   c2s 1 server "truncated message"
run_case truncate_s2c  truncate   s2c 2 client "truncated message"
run_case cut_c2s       cut        c2s 2 server "truncated message"
run_case garbage_c2s   garbage    c2s 1 server "malformed or truncated message"
run_case garbage_s2c   garbage    s2c 1 client "malformed or truncated message"
run_case reflect_s2c   reflect    s2c 1 serverlog "message for the other direction"
run_case replay_c2s    replay     c2s 1 server "replayed message"
run_case replay_s2c    replay     s2c 1 client "replayed message"
run_case reorder_c2s   reorder    c2s 1 server "reordered or missing message"
run_case reorder_s2c   reorder    s2c 1 client "reordered or missing message"
run_case oversize_c2s  oversize   c2s 1 server "oversized frame"
run_case oversize_s2c  oversize   s2c 1 client "oversized frame"
run_case old_session   oldsession c2s 1 server "message from an old or unknown session"
run_case badsig_s2c    badsig     s2c 0 client "bad report signature"
run_case badsig_c2s    badsig     c2s 0 server "bad report signature"
# policy: the client runs with another configuration, so its measurement is not in the policy
run_case policy_measurement pass c2s 1 server "measurement .* not accepted by policy" \
    --config "$T/other.conf"
# policy: the client only accepts servers whose report is not from sim
run_case policy_backend_client pass c2s 1 client "backend 'sim' not accepted" \
    --policy "$T/prod.pol"
# identities: the owner's key is in the server's policy, a stranger's is not
run_case identity_owner    pass c2s 1 none   "" --identity "$T/owner.seed"
run_case identity_stranger pass c2s 1 server "unattested peer: identity key" \
    --identity "$T/stranger.seed"

# A server whose policy refuses sim (production) rejects an attested sim client by backend.
next_port; PP=$BASE
"$PEER" serve --listen "tcp://127.0.0.1:$PP" --home "$H" --policy "$T/prod.pol" \
    > "$T/prod.out" 2> "$T/prod.err" &
PS=$!
PIDS="$PIDS $PS"
sleep 0.3
out=$(timeout 20 "$PEER" connect --connect "tcp://127.0.0.1:$PP" --home "$H" \
    --policy "$T/dev.pol" 2>&1)
rc=$?
sleep 0.2
if [ $rc -ne 0 ] && grep -q "backend 'sim' not accepted" "$T/prod.err"; then
    pass "policy_backend_server: server says: $(grep "not accepted" "$T/prod.err" | head -1)"
else
    fail "policy_backend_server: rc=$rc $(cat "$T/prod.err") client: $out"
fi
kill "$PS"

# A server measured with another configuration is rejected by the client's policy.
next_port; OP=$BASE
"$PEER" serve --listen "tcp://127.0.0.1:$OP" --home "$H" --policy "$T/dev.pol" \
    --config "$T/other.conf" > "$T/other.out" 2> "$T/other.err" &
OS=$!
PIDS="$PIDS $OS"
sleep 0.3
out=$(timeout 20 "$PEER" connect --connect "tcp://127.0.0.1:$OP" --home "$H" \
    --policy "$T/dev.pol" 2>&1)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "server rejected: attestation report rejected: measurement"; then
    pass "policy_measurement_client: client says: $(printf '%s' "$out" | head -1)"
else
    fail "policy_measurement_client: rc=$rc client: $out"
fi
kill "$OS"

# After all that, the main server still serves honest clients, then exits cleanly.
run_case still_serving pass c2s 1 none ""
kill -TERM "$SERVER"
wait "$SERVER"
src=$?
if [ $src -eq 0 ]; then pass "server exited cleanly: $(tail -1 "$T/server.out")"; else fail "server exit status $src"; fi

if [ $FAILS -ne 0 ]; then
    echo "$FAILS case(s) failed"
    exit 1
fi
echo "all channel cases passed"
