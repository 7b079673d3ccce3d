#!/usr/bin/env python3
"""bench_ab.py RUNS ENGINE_DIR... : per kernel, runs native and `E/psl run --tier auto --no-cache
K.wasm` for each engine (a folder holding a psl and its psljit.so), alternated run by run with
ab.py's wait for an idle machine, and prints medians and ratios to native with the geometric
mean, and the same of the minimums (a host that slows whole runs by up to 50 % at times only
ever adds time: the minimum is the steadier estimate when such phases come and go). An engine
may carry environment settings after an @: `build@PSL_JIT_LAZY_MS=1,X=2` runs that engine with
them (through env). Env: BENCH_OUT (the built kernels, default build-jit/bench/wasm), KERNELS (names), and
ab.py's IDLE and WAIT."""
import subprocess, sys, os, math, re
runs = sys.argv[1]
engs = sys.argv[2:]
HERE = os.path.dirname(os.path.abspath(__file__))
W = os.environ.get('BENCH_OUT', os.path.join(HERE, '..', '..', 'build-jit', 'bench', 'wasm'))
ks = os.environ.get('KERNELS', 'expr fannkuch hashmap lz mandelbrot matmul nbody sha256 sieve sort').split()
def run_cmd(e, k):
    d, _, env = e.partition('@')
    pre = 'env ' + ' '.join(env.split(',')) + ' ' if env else ''
    return f'{pre}{d}/psl run --tier auto --no-cache {W}/{k}.wasm'
def name(e):
    d, at, env = e.partition('@')
    return os.path.basename(d) + at + env
logs = {e: 0.0 for e in engs}
mlogs = {e: 0.0 for e in engs}
rows = []
for k in ks:
    cmds = [f'{W}/{k}'] + [run_cmd(e, k) for e in engs]
    out = subprocess.run([os.path.join(HERE, 'ab.py'), runs, '0'] + cmds, capture_output=True, text=True).stdout
    med = [float(l.split()[0]) for l in out.splitlines() if ' ms ' in l]
    mins = [float(re.search(r'min ([0-9.]+)', l).group(1)) for l in out.splitlines() if ' ms ' in l]
    load = [l for l in out.splitlines() if l.startswith('load')][0]
    r = [m / med[0] for m in med[1:]]
    for e, x, mn in zip(engs, r, mins[1:]):
        logs[e] += math.log(x)
        mlogs[e] += math.log(mn / mins[0])
    line = f'{k:10s} native {med[0]:8.1f} ' + ' '.join(f'{name(e)} {m:8.1f} ({x:.2f}x)' for e, m, x in zip(engs, med[1:], r)) + '  min ' + ' '.join(f'{mn:.0f}' for mn in mins) + '  ' + load
    print(line, flush=True)
print('geomean ' + ' '.join(f'{name(e)} {math.exp(logs[e]/len(ks)):.3f}x' for e in engs), flush=True)
print('geomean of minimums ' + ' '.join(f'{name(e)} {math.exp(mlogs[e]/len(ks)):.3f}x' for e in engs), flush=True)
