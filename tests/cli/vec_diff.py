#!/usr/bin/env python3
"""Differential test of the JIT's checked loop copies (ctest cli_vec_diff). Generates MODULES
modules from SEED, each exporting run(p, q, n) -> i64: one straight-run loop over two
pointers p and q (stepped by 4-56 bytes, directly or through a temporary as clang's wasm does),
counted up (`i < n`, `i != n`, steps 1-3) or down (`n = n - 1; br_if n`), whose body loads and
stores i32 and f64 values at small offsets off both pointers, may read-modify-write a fixed
word (at q + 4096) and sums an i64 and an f32 (converted from loaded i32s, so no NaN: the f32
sum rounds differently in another order). After the loop, run folds the sums and a checksum of
the whole memory into its result. Each module runs under the interpreter and under --tier jit
(no code cache; bounds through the guard region and with explicit checks) for argument sets
that keep the ranges apart, make them overlap, run off the end of the memory, wrap around, or
run once; results, traps and exit statuses must be identical (the trap message's "(in
function N)" is left out, see docs/jit.md).

Usage: vec_diff.py PSL WAT2WASM [SEED] [MODULES]
Ends with 'N passed, N failed'."""
import os, random, re, subprocess, sys, tempfile


def gen(r):
    sp = r.choice([4, 8, 8, 16, 24, 56])
    sq = r.choice([4, 8, 8, 16, 32])
    via_tmp = r.random() < 0.4
    down = r.random() < 0.5
    step = r.choice([1, 1, 2, 3])
    cmp = r.choice(['lt_u', 'ne'])
    fixed = r.random() < 0.5
    stmts = []
    for _ in range(r.randrange(1, 5)):
        k = r.randrange(5)
        op, oq = r.randrange(0, sp, 4), r.randrange(0, sq, 4)
        if k == 0:
            stmts.append(f'(i32.store offset={op} (local.get $p) (i32.add (i32.load offset={oq} '
                         f'(local.get $q)) (i32.const {r.randrange(1, 1000)})))')
        elif k == 1 and sq >= 8 and oq % 8 == 0 and oq + 8 <= sq:
            stmts.append(f'(f64.store offset={oq} (local.get $q) (f64.add (f64.convert_i32_s '
                         f'(i32.load offset={op} (local.get $p))) (f64.const 0.1)))')
        elif k == 2:
            stmts.append(f'(local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) '
                         f'(i64.extend_i32_u (i32.load offset={op} (local.get $p)))))')
        elif k == 3:
            stmts.append(f'(local.set $fs (f32.add (local.get $fs) (f32.convert_i32_s '
                         f'(i32.load offset={oq} (local.get $q)))))')
        else:
            stmts.append(f'(i32.store offset={oq} (local.get $q) (i32.xor (i32.load offset={oq} '
                         f'(local.get $q)) (i32.load offset={op} (local.get $p))))')
    if fixed:
        stmts.append('(i32.store offset=4096 (local.get $f) (i32.add (i32.load offset=4096 '
                     '(local.get $f)) (i32.load (local.get $p))))')
    r.shuffle(stmts)
    adv = []
    if via_tmp:
        adv.append(f'(local.set $t (i32.add (local.get $p) (i32.const {sp})))')
        adv.append(f'(local.set $p (i32.add (local.get $p) (i32.const 4)))')
    else:
        adv.append(f'(local.set $p (i32.add (local.get $p) (i32.const {sp})))')
    adv.append(f'(local.set $q (i32.add (local.get $q) (i32.const {sq})))')
    body = stmts[:len(stmts) // 2] + adv[:1] + stmts[len(stmts) // 2:] + adv[1:]
    if via_tmp:
        body.append('(local.set $p (local.get $t))')
    if down:
        body.append('(br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1))))')
    else:
        body.append(f'(br_if $l (i32.{cmp} (local.tee $i (i32.add (local.get $i) '
                    f'(i32.const {step}))) (local.get $n)))')
    data = bytes(r.randrange(256) for _ in range(8192))
    hexs = ''.join(f'\\{b:02x}' for b in data)
    return step, f'''(module
  (memory (export "mem") 1)
  (data (i32.const 0) "{hexs}")
  (func (export "run") (param $p i32) (param $q i32) (param $n i32) (result i64)
        (local $i i32) (local $t i32) (local $f i32) (local $acc i64) (local $fs f32) (local $c i32)
    (local.set $f (local.get $q))
    (loop $l
      {' '.join(body)})
    (loop $s
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 1000003))
                               (i64.load (local.get $c))))
      (br_if $s (i32.ne (local.tee $c (i32.add (local.get $c) (i32.const 8)))
                        (i32.const 65536))))
    (i64.xor (local.get $acc) (i64.extend_i32_u (i32.reinterpret_f32 (local.get $fs))))))
'''


def args_for(r, step):
    """Argument sets: n a multiple of the counter's step (an up-counter compared with != runs
    off the end otherwise: one set does that on purpose)."""
    def n():
        return step * r.choice([1, 2, 7, 64, 300])
    return [(0, 8192, n()), (8192, 0, n()), (100, 104, n()), (4096, 4000, n()),
            (65536 - 512, 0, n()), (0, 65536 - 64, n()), (0xfffffff0, 64, 3 * step),
            (16, 20000, step), (512, 30000, 0), (64, 9000, step * 5 + 1)]


def run(psl, wasm, tier, a, bounds='guard'):
    cmd = [psl, 'run', '--tier', tier, '--no-cache', '--invoke', 'run', wasm] + [str(x) for x in a]
    env = dict(os.environ, PSL_JIT_BOUNDS=bounds)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    err = re.sub(r' \(in function \d+\)', '', p.stderr)
    return p.returncode, p.stdout, err


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    psl, wat2wasm = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 18
    modules = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    passed = failed = 0
    with tempfile.TemporaryDirectory() as d:
        for mi in range(modules):
            r = random.Random(seed * 1000 + mi)
            wat, wasm = os.path.join(d, f'm{mi}.wat'), os.path.join(d, f'm{mi}.wasm')
            step, text = gen(r)
            with open(wat, 'w') as f:
                f.write(text)
            subprocess.run([wat2wasm, wat, '-o', wasm], check=True)
            for a in args_for(r, step):
                want = run(psl, wasm, 'interp', a)
                for bounds in ('guard', 'checks'):
                    got = run(psl, wasm, 'jit', a, bounds)
                    if got == want:
                        passed += 1
                    else:
                        failed += 1
                        print(f'module {mi} (seed {seed}) args {a} bounds {bounds}: '
                              f'interp {want} jit {got}')
                        print(open(wat).read().split('(func', 1)[1][:1500])
    print(f'{passed} passed, {failed} failed')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
