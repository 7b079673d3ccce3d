#!/bin/sh
# Scheduling around dead workers on a local cluster (`psl up`, real workers):
#   1. idle invocations are spread over both workers;
#   2. worker 1 is killed (SIGKILL): within the dead timeout (~2 s) the coordinator stops
#      scheduling to it and every later invocation runs on worker 2;
#   3. worker 2 is killed with an invocation in flight: that request fails with 502 WORKERLOST;
#   4. with no live worker, invocations get 503 NOWORKER and /healthz says so.
# Skipped (77) when this psl has no `worker` command.
# usage: cluster_failover.sh PSL EXAMPLES_DIR WAT_DIR
set -u
PSL=$1
EX=$2
WAT=$3
"$PSL" help worker >/dev/null 2>&1 || { echo "psl worker is not built: skipped"; exit 77; }
T=$(mktemp -d /tmp/psl-fo.XXXXXX)
export PSL_DIR="$T/data"
cleanup() {
    "$PSL" down >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$PSL_DIR"/logs/coordinator.log "$PSL_DIR"/logs/worker-*.log; do
        echo "--- $f"; tail -20 "$f"
    done
    exit 1
}
pid_of() {
    python3 -c "import json,sys; print([p['pid'] for p in json.load(open('$PSL_DIR/cluster.json'))['processes'] if p['role']=='$1'][0])"
}
wat2wasm "$WAT/loop.wat" -o "$T/loop.wasm" || fail "wat2wasm"
GW=$("$PSL" up --workers 2) || fail "psl up"
"$PSL" deploy echo "$EX/echo.wasm" >/dev/null || fail "deploy echo"
"$PSL" deploy loop "$T/loop.wasm" --timeout-ms 8000 >/dev/null || fail "deploy loop"

inv() { # inv -> "STATUS WORKER"
    curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X POST -d ping "$GW/function/echo" > "$T/code"
    w=$(tr -d '\r' < "$T/hdr" | awk -F': ' 'tolower($1)=="x-psl-worker"{print $2}')
    echo "$(cat "$T/code") ${w:-none}"
}

# ---- 1. spread
: > "$T/seen"
for i in 1 2 3 4 5 6; do inv >> "$T/seen"; done
grep -q "^200 1$" "$T/seen" && grep -q "^200 2$" "$T/seen" ||
    fail "invocations were not spread over both workers: $(tr '\n' ' ' < "$T/seen")"
echo "ok: idle invocations spread over workers 1 and 2"

# ---- 2. kill worker 1; after the dead timeout everything runs on worker 2
kill -9 "$(pid_of worker-1)"
start=$(date +%s%N)
i=0
until curl -s "$GW/healthz" | grep -q '"workers":1'; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "worker 1 was not declared dead"; sleep 0.05
done
el=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "worker 1 (worker-1) is dead: silent for" "$PSL_DIR/logs/coordinator.log" ||
    fail "the death of worker 1 is not logged"
: > "$T/seen"
for i in 1 2 3 4 5 6 7 8 9 10; do inv >> "$T/seen"; done
[ "$(grep -c '^200 2$' "$T/seen")" -eq 10 ] ||
    fail "invocations after the death of worker 1: $(tr '\n' ' ' < "$T/seen")"
echo "ok: worker 1 declared dead after ${el} ms; 10 of 10 later invocations ran on worker 2"

# ---- 3. kill worker 2 with a request in flight
curl -s -o "$T/inflight" -w '%{http_code}' -X POST -d x "$GW/function/loop" > "$T/inflight.code" &
cpid=$!
sleep 0.5
kill -9 "$(pid_of worker-2)"
start=$(date +%s%N)
wait $cpid
el=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$(cat "$T/inflight.code")" = 502 ] && grep -q '"code":"WORKERLOST"' "$T/inflight" ||
    fail "in-flight request: $(cat "$T/inflight.code") $(cat "$T/inflight")"
echo "ok: in-flight request failed after ${el} ms: 502 $(cut -c1-100 "$T/inflight")"

# ---- 4. no live worker
code=$(curl -s -o "$T/b" -w '%{http_code}' -X POST -d x "$GW/function/echo")
[ "$code" = 503 ] && grep -q '"code":"NOWORKER"' "$T/b" || fail "no worker: $code $(cat "$T/b")"
code=$(curl -s -o "$T/b" -w '%{http_code}' "$GW/healthz")
[ "$code" = 503 ] || fail "healthz with no worker: $code"
echo "ok: no live worker -> 503 NOWORKER; /healthz 503"
"$PSL" down >/dev/null || fail "psl down"
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$PSL_DIR"/logs/*.log >/dev/null 2>&1; then
    fail "sanitizer report in $(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$PSL_DIR"/logs/*.log)"
fi
echo "all failover checks passed"
