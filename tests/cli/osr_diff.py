#!/usr/bin/env python3
"""Differential test of on-stack replacement (ctest cli_osr_diff). Generates MODULES modules
from SEED, each exporting run(n) -> i64: one activation going through a sequence of phases,
each a top-level loop or a loop nest (an outer loop of 2-3 runs around an inner loop, with an
early branch back to the outer head), of n iterations per inner loop, joined by straight code;
the loops compute over i32 and i64 locals, some live from one phase into the next, some dead.
Each module runs under the interpreter and under --tier auto without the code cache, twice:
as configured, and with $PSL_JIT_OSR_AGAIN=0, which keeps the first (mid-level) entry's code,
so that the activation reaches later loops in it and leaves there for entries it asks for
(psl_jit_osr_ready). Results must be identical. With $PSL_JIT_STATS=1 the entries taken, the
leaves and the asks are counted and printed (coverage, not a condition: they depend on
timing).

Usage: osr_diff.py PSL WAT2WASM [SEED] [MODULES] [N]
Ends with 'N passed, N failed'."""
import os, random, re, subprocess, sys, tempfile

NI = 4  # i32 locals $x0..$x3 after the parameter $n; $i, $j, $o loop counters; $acc i64
I32OPS = ['add', 'sub', 'mul', 'xor', 'and', 'or', 'shl', 'shr_u', 'rotl']


def i32expr(r, depth=0):
    if depth > 1 or r.random() < 0.35:
        return r.choice([f'(local.get $x{r.randrange(NI)})', '(local.get $i)',
                         f'(i32.const {r.choice([1, 3, 7, 255, 65535, -1, 1000003])})'])
    return f'(i32.{r.choice(I32OPS)} {i32expr(r, depth + 1)} {i32expr(r, depth + 1)})'


def body(r):
    """Statements of a loop body: updates of the locals and of the accumulator."""
    out = []
    for _ in range(r.randrange(1, 4)):
        x = r.randrange(NI)
        out.append(f'(local.set $x{x} {i32expr(r)})')
    if r.random() < 0.4:
        out.append(f'(if (i32.and (local.get $i) (i32.const {r.choice([1, 3, 7])})) '
                   f'(then (local.set $x{r.randrange(NI)} {i32expr(r)})))')
    out.append('(local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) '
               f'(i64.extend_i32_u {i32expr(r)})))')
    return ' '.join(out)


def loop(r, label, counter):
    return (f'(local.set ${counter} (i32.const 0)) (loop ${label} {body(r)} '
            f'(local.set ${counter} (i32.add (local.get ${counter}) (i32.const 1))) '
            f'(br_if ${label} (i32.lt_u (local.get ${counter}) (local.get $n))))')


def phase(r, k):
    if r.random() < 0.5:
        return loop(r, f'top{k}', 'i')
    runs = r.choice([2, 3])
    inner = (f'(local.set $i (i32.const 0)) (loop $in{k} {body(r)} '
             f'(local.set $i (i32.add (local.get $i) (i32.const 1))) '
             f'(br_if $out{k} (i32.eq (local.get $i) (i32.shr_u (local.get $n) (i32.const 1)))) '
             f'(br_if $in{k} (i32.lt_u (local.get $i) (local.get $n))))')
    # the early branch to the outer head leaves half of this run's inner loop out
    return (f'(local.set $o (i32.const 0)) (loop $out{k} '
            f'(local.set $o (i32.add (local.get $o) (i32.const 1))) '
            f'(if (i32.le_u (local.get $o) (i32.const {runs})) (then {inner}))'
            f'(br_if $out{k} (i32.le_u (local.get $o) (i32.const {runs}))))')


def module(r):
    phases = []
    for k in range(r.randrange(2, 5)):
        phases.append(phase(r, k))
        if r.random() < 0.5:  # straight code between phases
            phases.append(f'(local.set $x{r.randrange(NI)} {i32expr(r)})')
    locs = ' '.join(f'(local $x{k} i32)' for k in range(NI))
    res = ' '.join(f'(i64.extend_i32_u (local.get $x{k})) (i64.xor)' for k in range(NI))
    return (f'(module (memory 1) (func (export "run") (param $n i32) (result i64) {locs} '
            f'(local $i i32) (local $o i32) (local $acc i64) '
            f'(local.set $x0 (i32.const 12345)) {" ".join(phases)} '
            f'(local.get $acc) {res}))')


def run(psl, wasm, tier, n, env_extra):
    env = dict(os.environ, PSL_JIT_STATS='1', **env_extra)
    p = subprocess.run([psl, 'run', '--tier', tier, '--no-cache', '--invoke', 'run', wasm, str(n)],
                       capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 120
    psl, wat2wasm = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    nmod = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 1500000
    r = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix='osr_diff.')
    passed = failed = 0
    seen = {'enters': 0, 'left': 0, 'asks': 0}
    for m in range(nmod):
        wat = os.path.join(tmp, f'm{m}.wat')
        wasm = os.path.join(tmp, f'm{m}.wasm')
        with open(wat, 'w') as f:
            f.write(module(r))
        c = subprocess.run([wat2wasm, wat, '-o', wasm], capture_output=True, text=True)
        if c.returncode != 0:
            print(f'module {m}: wat2wasm failed: {c.stderr.strip()}')
            failed += 1
            continue
        want = run(psl, wasm, 'interp', n, {})
        for extra in ({}, {'PSL_JIT_OSR_AGAIN': '0'}):
            got = run(psl, wasm, 'auto', n, extra)
            seen['enters'] += len(re.findall(r'enters its OSR entry', got[2]))
            seen['left'] += len(re.findall(r'left its OSR code', got[2]))
            seen['asks'] += len(re.findall(r"OSR code at the loop at cell \d+ .*: has none", got[2]))
            if got[:2] == want[:2]:
                passed += 1
            else:
                failed += 1
                print(f'module {m} ({wat}) {extra}: interpreter {want[:2]!r}, auto {got[:2]!r}')
    print(f'OSR entries taken {seen["enters"]}, leaves {seen["left"]}, '
          f'checks after a nest without an entry {seen["asks"]}')
    print(f'{passed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
