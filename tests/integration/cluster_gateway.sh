#!/bin/sh
# The HTTP gateway end to end on a local cluster (`psl up`, real workers): every error kind gets
# its status and JSON code, a guest that traps or loops does not disturb the others, and the CLI
# client commands work. Skipped (77) when this psl has no `worker` command.
# usage: cluster_gateway.sh PSL EXAMPLES_DIR WAT_DIR
set -u
PSL=$1
EX=$2
WAT=$3
"$PSL" help worker >/dev/null 2>&1 || { echo "psl worker is not built: skipped"; exit 77; }
T=$(mktemp -d /tmp/psl-gw.XXXXXX)
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
for w in trap loop exit3 logger; do wat2wasm "$WAT/$w.wat" -o "$T/$w.wasm" || fail "wat2wasm $w"; done
printf '\0asm\1\0\0\0\1\5' > "$T/bad.wasm"
printf 'this is not wasm' > "$T/junk.wasm"

GW=$("$PSL" up --workers 2) || fail "psl up"
echo "gateway $GW"

# req METHOD PATH [curl args...] -> "STATUS BODY" in $T/r; the owner's token goes with it
req() {
    m=$1; p=$2; shift 2
    code=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" \
        -H "Authorization: Bearer $(cat "$PSL_DIR/admin.token")" "$@" "$GW$p")
    # A server may answer 413 before it has read a large upload and close the connection; curl
    # then reports 000 although it received the answer. Count that answer as what it says.
    if [ "$code" = 000 ] && grep -q '"code":"TOOLARGE"' "$T/body"; then code=413; fi
    echo "$code $(cat "$T/body")" > "$T/r"
}
# noauth METHOD PATH [curl args...]: the same without the token
noauth() {
    m=$1; p=$2; shift 2
    code=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$@" "$GW$p")
    echo "$code $(cat "$T/body")" > "$T/r"
}
expect() { # expect STATUS CODEWORD what
    grep -q "^$1 " "$T/r" || fail "$3: expected HTTP $1, got $(cat "$T/r")"
    [ -z "$2" ] || grep -q "\"code\":\"$2\"" "$T/r" || fail "$3: expected code $2, got $(cat "$T/r")"
    echo "ok: $3 -> $(head -1 "$T/r" | cut -c1-110)"
}

noauth POST /system/functions/counter --data-binary "@$EX/counter.wasm"
expect 401 UNAUTHORIZED "deploy without the owner's token"
noauth GET /system/functions -H "Authorization: Bearer 00000000000000000000"
expect 401 UNAUTHORIZED "list with a wrong token"
noauth GET /system/kv/x; expect 401 UNAUTHORIZED "kv without the token"
req GET /healthz; expect 200 "" "healthz"
grep -q '"workers":2' "$T/r" || fail "healthz does not count 2 workers"
req POST /system/functions/counter --data-binary "@$EX/counter.wasm"; expect 201 "" "deploy counter"
req POST /system/functions/counter --data-binary "@$EX/counter.wasm"; expect 200 "" "redeploy counter"
grep -q '"version":2' "$T/r" || fail "redeploy did not bump the version"
req POST /system/functions/trap --data-binary "@$T/trap.wasm"; expect 201 "" "deploy trap"
req POST "/system/functions/loop?timeout_ms=200" --data-binary "@$T/loop.wasm"
expect 201 "" "deploy loop (timeout 200 ms)"
req POST "/system/functions/exit3?max_request=16" --data-binary "@$T/exit3.wasm"
expect 201 "" "deploy exit3 (max_request 16)"
req POST /system/functions/bad --data-binary "@$T/bad.wasm"; expect 400 INVALID "truncated module"
grep -q "at byte" "$T/r" || fail "the validator's position is missing"
req POST /system/functions/junk --data-binary "@$T/junk.wasm"; expect 400 INVALID "not a module"
req POST "/system/functions/x?timeout_ms=abc" --data-binary "@$EX/counter.wasm"
expect 400 BADLIMIT "bad limit"
req POST "/system/functions/..bad" --data-binary "@$EX/counter.wasm"; expect 400 BADNAME "bad name"
req GET /system/functions; expect 200 "" "list"
grep -q '"name":"counter"' "$T/r" || fail "list lacks counter"
req GET /system/function/counter; expect 200 "" "describe"

req POST /function/counter -d "hits 5"; expect 200 "" "invoke counter"
grep -q "hits=5" "$T/r" || fail "counter answered $(cat "$T/r")"
req POST /function/nosuch -d x; expect 404 NOTFOUND "unknown function"
req POST /function/trap -d x; expect 500 TRAP "guest trap"
grep -q "unreachable" "$T/r" || fail "the trap message is missing"
req POST /function/loop -d x; expect 500 TIMEOUT "guest loops past its timeout"
req POST /function/exit3 -d x; expect 500 EXIT "non-zero exit"
grep -q "status 3" "$T/r" && grep -q "bad input: no account" "$T/r" ||
    fail "exit status or stderr excerpt missing"
req POST /function/exit3 -d 0123456789abcdefXYZ; expect 413 TOOLARGE "body over max_request"
head -c 1048576 /dev/zero > "$T/big"
req POST /function/counter --data-binary "@$T/big"; expect 413 TOOLARGE "invoke body over the channel limit"
req POST /system/functions/big --data-binary "@$T/big"; expect 413 TOOLARGE "module over the 1 MiB limit"
req GET /nowhere; expect 404 NOROUTE "unknown path"
noauth POST /function/counter -d "open"; expect 200 "" "invoke needs no token"

# Workers stay up: trap/loop interleaved with good invocations all answer correctly.
i=0
while [ $i -lt 6 ]; do
    req POST /function/loop -d x; expect 500 TIMEOUT "loop $i" >/dev/null
    req POST /function/counter -d "k" ; grep -q "^200 k=" "$T/r" || fail "counter after a loop"
    i=$((i + 1))
done
echo "ok: 6 looping and 6 good invocations interleaved, workers still up"
"$PSL" status | grep -q "2 live worker(s)" || fail "a worker went down"

# CLI clients.
"$PSL" list | grep -q "^counter " || fail "psl list"
out=$("$PSL" invoke counter --data "cli 2") || fail "psl invoke"
echo "$out" | grep -q "cli=2" || fail "psl invoke printed $out"
echo "cli 3" | "$PSL" invoke counter | grep -q "cli=" || fail "psl invoke < stdin"
"$PSL" invoke trap --data x 2>/dev/null; [ $? -eq 125 ] || fail "psl invoke trap: exit status"
"$PSL" invoke nosuch 2>/dev/null; [ $? -eq 127 ] || fail "psl invoke nosuch: exit status"
"$PSL" kv put cfg/colour blue || fail "psl kv put"
[ "$("$PSL" kv get cfg/colour)" = blue ] || fail "psl kv get"
"$PSL" kv del cfg/colour || fail "psl kv del"
"$PSL" kv get cfg/colour 2>/dev/null; [ $? -eq 127 ] || fail "psl kv get after del"
"$PSL" remove trap >/dev/null || fail "psl remove"
req POST /function/trap -d x; expect 404 NOTFOUND "invoke after remove"
req DELETE /system/functions/trap; expect 404 NOTFOUND "remove twice"
"$PSL" deploy logger "$T/logger.wasm" >/dev/null || fail "deploy logger"
"$PSL" invoke logger >/dev/null || fail "invoke logger"
"$PSL" invoke logger >/dev/null || fail "invoke logger"
[ "$("$PSL" logs logger | grep -c 'worker-[0-9] logger ran$')" -eq 2 ] || fail "psl logs logger"
echo "ok: psl_log lines reach psl logs"
req GET /metrics; expect 200 "" "metrics"
for m in psl_gateway_invocations_total psl_gateway_invocation_seconds_bucket \
         psl_kv_reads_total psl_kv_coalesced_total psl_capsule_appends_total psl_workers_live; do
    grep -q "$m" "$T/body" || fail "metrics lack $m"
done

# Registry survives a restart of the whole cluster.
"$PSL" down >/dev/null || fail "psl down"
GW=$("$PSL" up --workers 1) || fail "psl up again"
req GET /system/function/counter; expect 200 "" "counter is still deployed after a restart"
req POST /function/counter -d "again"; expect 200 "" "invoke after restart"
"$PSL" down >/dev/null || fail "psl down"
[ ! -f "$PSL_DIR/cluster.json" ] || fail "cluster.json left behind"
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$PSL_DIR"/logs/*.log >/dev/null 2>&1; then
    fail "sanitizer report in $(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$PSL_DIR"/logs/*.log)"
fi
echo "all gateway checks passed"
