#!/bin/sh
# Invocation latency and throughput of a trivial function (examples/echo.wasm) through the HTTP
# gateway and through the CLI, on a local cluster (`psl up --workers 2`). Prints a markdown table
# (docs/BENCHMARKS.md, "Invocations through the gateway").
# usage: bench/gateway/run.sh [BUILD_DIR]      (env: N requests per client, default 5000)
set -eu
BUILD=${1:-build}
PSL=$BUILD/psl
EX=$BUILD/examples
N=${N:-5000}
export PSL_DIR
PSL_DIR=$(mktemp -d /tmp/psl-bench-gw.XXXXXX)
trap '"$PSL" down >/dev/null 2>&1; rm -rf "$PSL_DIR"' EXIT
GW=$("$PSL" up --workers 2 2>/dev/null)
"$PSL" deploy echo "$EX/echo.wasm" >/dev/null
echo "| path | clients | p50 | p90 | p99 | invocations/s |"
echo "|---|---|---|---|---|---|"
python3 - "$GW" "$N" <<'PY'
import http.client, sys, threading, time
host, port = sys.argv[1].split("//")[1].split(":")
n = int(sys.argv[2])
def client(count, out):
    c = http.client.HTTPConnection(host, int(port))
    lat = []
    for i in range(count):
        body = b"req-%d" % i
        t = time.perf_counter()
        c.request("POST", "/function/echo", body=body)
        r = c.getresponse()
        got = r.read()
        lat.append(time.perf_counter() - t)
        if r.status != 200 or got != body:
            raise SystemExit("bad answer %d %r" % (r.status, got[:80]))
    out.append(lat)
client(500, [])  # warm-up: instances pooled, connections open
for conc in (1, 4, 16):
    out = []
    per = max(n // conc, 200)
    ts = [threading.Thread(target=client, args=(per, out)) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    el = time.perf_counter() - t0
    lat = sorted(x for l in out for x in l)
    k = len(lat)
    ms = lambda q: "%.2f ms" % (lat[min(k - 1, int(k * q))] * 1e3)
    print("| HTTP gateway (keep-alive) | %d | %s | %s | %s | %.0f |"
          % (conc, ms(0.5), ms(0.9), ms(0.99), k / el))
PY
# The CLI path: a new process and connection per invocation.
python3 - "$PSL" <<'PY'
import subprocess, sys, time
psl = sys.argv[1]
lat = []
for i in range(220):
    t = time.perf_counter()
    subprocess.run([psl, "invoke", "echo", "--data", "ping"], check=True, stdout=subprocess.DEVNULL)
    lat.append(time.perf_counter() - t)
lat = sorted(lat[20:])
k = len(lat)
ms = lambda q: "%.1f ms" % (lat[min(k - 1, int(k * q))] * 1e3)
print("| `psl invoke` (CLI) | 1 | %s | %s | %s | %.0f |" % (ms(0.5), ms(0.9), ms(0.99), k / sum(lat)))
PY
