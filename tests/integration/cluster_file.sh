#!/bin/sh
# A cluster described by a cluster file and started host by host (`psl up --cluster FILE --host
# NAME`), here two "hosts" on loopback with separate data folders: h1 runs the coordinator (with
# an owner token), the forwarder and 3 storage replicas, h2 runs 2 workers. The functions deployed
# through h1's gateway run on h2's workers; each host stops with its own `psl down`.
# usage: cluster_file.sh PSL EXAMPLES_DIR
set -u
PSL=$1
EX=$2
"$PSL" help worker >/dev/null 2>&1 || { echo "psl worker is not built: skipped"; exit 77; }
# port (a free port, at most once per run) from cluster_lib.sh; the cleanup and fail below
# replace its own
. "$(dirname "$0")/cluster_lib.sh"
T=$(mktemp -d /tmp/psl-cf.XXXXXX)
cleanup() {
    "$PSL" down --dir "$T/h2" >/dev/null 2>&1
    "$PSL" down --dir "$T/h1" >/dev/null 2>&1
    "$PSL" down --dir "$T/s" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$T"/h*/logs/*.log; do echo "--- $f"; tail -15 "$f"; done
    exit 1
}
ep() { echo "tcp://127.0.0.1:$(port)"; }

printf 'allow_sim: yes\nmeasurement: any\n' > "$T/workers.policy"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/admin.token"
HP=$(port)
cat > "$T/cluster.json" <<JSON
{
  "policy": "$T/workers.policy",
  "coordinator": {"host": "h1", "endpoint": "$(ep)", "http": $HP, "http_addr": "127.0.0.1",
                  "token_file": "$T/admin.token"},
  "forwarder": {"host": "h1", "xsub": "$(ep)", "xpub": "$(ep)"},
  "storage": [{"host": "h1", "endpoint": "$(ep)"}, {"host": "h1", "endpoint": "$(ep)"},
              {"host": "h1", "endpoint": "$(ep)"}],
  "workers": [{"host": "h2", "id": 1, "threads": 2}, {"host": "h2", "id": 2}]
}
JSON
GW=$("$PSL" up --cluster "$T/cluster.json" --host h1 --dir "$T/h1") || fail "psl up h1"
[ "$GW" = "http://127.0.0.1:$HP" ] || fail "h1 printed '$GW'"
"$PSL" up --cluster "$T/cluster.json" --host h2 --dir "$T/h2" > "$T/h2.out" || fail "psl up h2"
[ -s "$T/h2.out" ] && fail "h2 (no coordinator) printed a gateway URL"
"$PSL" up --cluster "$T/cluster.json" --host h3 --dir "$T/h3" 2>/dev/null && fail "h3 has no role"
i=0
until curl -s "$GW/healthz" | grep -q '"workers":2'; do
    i=$((i + 1)); [ $i -gt 200 ] && fail "the workers of h2 did not join"; sleep 0.1
done
echo "ok: h1 (coordinator, forwarder, 3 storage) and h2 (2 workers) joined"
export PSL_TOKEN
PSL_TOKEN=$(cat "$T/admin.token")
"$PSL" deploy counter "$EX/counter.wasm" --gateway "$GW" >/dev/null || fail "deploy"
out=$("$PSL" invoke counter --data "c 7" --gateway "$GW") || fail "invoke"
echo "$out" | grep -q "c=7" || fail "invoke printed $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/system/functions")
[ "$code" = 401 ] || fail "the cluster file's token_file is not enforced ($code)"
echo "ok: deploy and invoke through h1's gateway on h2's workers; token enforced"
"$PSL" status --dir "$T/h2" | grep -q "worker-2 .* running" || fail "psl status h2"
"$PSL" down --dir "$T/h2" >/dev/null || fail "psl down h2"
i=0
until curl -s "$GW/healthz" | grep -q '"workers":0'; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "the workers of h2 are still live"; sleep 0.1
done
"$PSL" down --dir "$T/h1" >/dev/null || fail "psl down h1"
curl -s "$GW/healthz" >/dev/null && fail "the gateway still answers after psl down h1"
# A cluster file with a single storage replica: it starts with no anti-entropy peers.
SE=$(ep)
cat > "$T/one.json" <<JSON
{"policy": "$T/workers.policy", "coordinator": {"host": "c", "endpoint": "$(ep)", "http": $(port)},
 "storage": [{"host": "s", "endpoint": "$SE"}], "workers": [{"host": "w", "id": 1}]}
JSON
"$PSL" up --cluster "$T/one.json" --host s --dir "$T/s" >/dev/null 2>&1 || fail "psl up (one replica)"
"$PSL" status --dir "$T/s" | grep -q "storage-0 .* running" || fail "the only replica is not running"
"$PSL" capsule keygen --keys "$T/keys" >/dev/null || fail "capsule keygen"
"$PSL" capsule create --replicas "$SE" --quorum 1 --keys "$T/keys" --name one \
    --journal "$T/journal" >/dev/null || fail "a capsule on the only replica"
"$PSL" down --dir "$T/s" >/dev/null || fail "psl down (one replica)"
echo "ok: a cluster file with one storage replica"
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/h*/logs/*.log >/dev/null 2>&1; then
    fail "sanitizer report in $(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/h*/logs/*.log)"
fi
echo "all cluster file checks passed"
