#!/bin/sh
# Guests in other languages on a real local cluster (psl up: 2 workers): the C++, Rust and
# AssemblyScript examples are deployed through the gateway and invoked alternately on both
# workers; their state is read back with `psl kv get`. The AssemblyScript part is skipped (and
# said so) when askv.wasm was not built. A native shared object is refused by the gateway, which
# accepts only WebAssembly from clients (docs/guests.md).
# usage: cluster_guests.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
. "$(dirname "$0")/cluster_lib.sh"
cluster_tmp guests
# check NAME REQUEST EXPECTED: the response, exactly
check() {
    got=$(inv "$1" "$2")
    if [ "$got" = "$3" ]; then ok "$1 '$2'"; else bad "$1 '$2': got '$got', want '$3'"; fi
}
# check_eventually NAME REQUEST EXPECTED: for reads taken without a lock, which may run on the
# other worker before the last write has reached it (eventual consistency): retry for up to 5 s.
check_eventually() {
    i=0
    while :; do
        got=$(inv "$1" "$2")
        [ "$got" = "$3" ] && { ok "$1 '$2' (after $i retries)"; return; }
        i=$((i + 1))
        [ $i -ge 50 ] && { bad "$1 '$2': got '$got', want '$3' (for 5 s)"; return; }
        sleep 0.1
    done
}
nl='
'

"$PSL" up --workers 2 --dir "$D" >"$T/up.out" 2>&1 || { cat "$T/up.out"; bad "psl up"; exit 1; }
"$PSL" deploy todo "$EX/todo.wasm" --dir "$D" >/dev/null &&
"$PSL" deploy wordcount "$EX/wordcount.wasm" --dir "$D" >/dev/null || { bad "deploy"; exit 1; }

# C++: successive requests land on both workers; every add holds the lock "todo", so ids are
# never reused (release consistency carries todo/next from one worker to the other).
for i in 1 2 3 4 5 6; do inv todo "add task $i" >/dev/null; done
check todo list "1 task 1${nl}2 task 2${nl}3 task 3${nl}4 task 4${nl}5 task 5${nl}6 task 6${nl}6 open"
check todo "done 4" "done 4"
check todo list "1 task 1${nl}2 task 2${nl}3 task 3${nl}5 task 5${nl}6 task 6${nl}5 open"
v=$(kvget todo/next)
[ "$v" = "7" ] && ok "todo/next=7" || bad "todo/next is '$v', want 7"

# Rust: concurrent counting from several clients under the lock "wc": no increment is lost.
for c in 1 2 3 4; do
    ( for i in 1 2 3 4 5; do inv wordcount "alpha beta alpha" >/dev/null; done ) &
done
wait
check wordcount "? alpha beta" "alpha 40${nl}beta 20"
v=$(kvget "wc/#")
[ "$v" = "60" ] && ok "wc/#=60" || bad "wc/# is '$v', want 60"

# AssemblyScript.
if [ -f "$EX/askv.wasm" ]; then
    "$PSL" deploy askv "$EX/askv.wasm" --dir "$D" >/dev/null || bad "deploy askv"
    check askv "set colour blue" "ok"
    check_eventually askv "get colour" "blue"
    for c in 1 2 3; do ( for i in 1 2 3 4; do inv askv "incr n" >/dev/null; done ) & done
    wait
    check_eventually askv "get n" "12"
    check askv "call todo list" "1 task 1${nl}2 task 2${nl}3 task 3${nl}5 task 5${nl}6 task 6${nl}5 open"
else
    echo "SKIP: AssemblyScript (askv.wasm not built: node/npm missing)"
fi

# Native code is trusted code: the owner (holding the admin token) deploys a shared object through
# the gateway like a module, and the workers (sandboxed) load and run it; without the token the
# deploy is refused.
if [ -f "$EX/stats.so" ]; then
    if "$PSL" deploy stats "$EX/stats.so" --dir "$D" >"$T/native.out" 2>&1; then
        check stats "add s 1 2 3" "s n=3 sum=6 min=1 max=3"
        check stats "add s 10" "s n=4 sum=16 min=1 max=10"
        check_eventually stats "show s" "s n=4 sum=16 min=1 max=10"
    else
        bad "the owner could not deploy a native shared object: $(cat "$T/native.out")"
    fi
    GW=$(tr -d '\n\t ' < "$D/cluster.json" | sed 's/.*"gateway":"\([^"]*\)".*/\1/')
    code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$EX/stats.so" \
        "$GW/system/functions/stats2")
    if [ "$code" = "401" ]; then
        ok "a native deploy without the owner token is refused (401)"
    else
        bad "a native deploy without the owner token answered $code"
    fi
fi

finish
