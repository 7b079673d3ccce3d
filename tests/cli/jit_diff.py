#!/usr/bin/env python3
"""Differential test of the JIT against the interpreter on generated functions (ctest
cli_jit_diff). Generates MODULES modules of FUNCS exported functions each from SEED: random i32
code over a one-page memory (that may grow to three) mixing loads of every width at addresses in
bounds, at the edge and out of bounds, arithmetic with edge constants, compares, select,
division, stores, drops, if/else, br_if, short loops, calls and locals: the shapes that make LLVM
fold a load's use away; and direct and indirect calls (through a table with a function of
another type, null slots and an end), memory.grow and memory.size, whose traps and changed
bounds both tiers must agree on; and f64/f32 arithmetic over signed zeros, infinities and NaN,
brought back to i32 by the trapping and saturating conversions (copysign(1, x) shows a zero's
sign).
Every function runs with several arguments under the interpreter and under --tier jit with
the guard region and with explicit checks; output and exit status must be identical.

Usage: jit_diff.py PSL WAT2WASM [SEED] [MODULES] [FUNCS]
       jit_diff.py PSL WAT2WASM --module FILE.wat ARG...  (every export of FILE, one i32
       argument each time: ctest cli_dead_loads runs tests/cli/dead_loads.wat so)
Prints the failing cases (module text kept in the temporary directory given) and ends with
'N passed, N failed'."""
import os
import random
import re
import subprocess
import sys
import tempfile

EDGE = [0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 255, 256, 0xFF00, 0xFFFF, 65532, 65535, 65536,
        0x7FFFFFFF, -0x80000000, -1, -4, 100, 1000]
FCONST = ['0', '-0', '0.5', '-0.5', '1.5', '-2.5', '3e9', '-3e9', '1e300', 'inf', '-inf', 'nan']
ADDRS = [0, 16, 100, 65528, 65532, 65534, 65535, 65536, 70000, -4, -1]
BINOPS = ['add', 'sub', 'mul', 'and', 'or', 'xor', 'shl', 'shr_u', 'shr_s', 'rotl', 'rotr',
          'eq', 'ne', 'lt_u', 'lt_s', 'gt_u', 'gt_s', 'le_u', 'le_s', 'ge_u', 'ge_s',
          'div_u', 'div_s', 'rem_u', 'rem_s']
LOADS = ['i32.load', 'i32.load8_u', 'i32.load8_s', 'i32.load16_u', 'i32.load16_s']
STORES = ['i32.store', 'i32.store8', 'i32.store16']
NLOCALS = 3  # i32 locals after the two parameters
LEAVES = 3  # the first functions of a module call nothing; the others may call them


class Gen:
    def __init__(self, rnd):
        self.r = rnd

    def const(self):
        return f'(i32.const {self.r.choice(EDGE)})'

    def addr(self):
        r = self.r.random()
        if r < 0.45:
            return '(local.get 0)'
        if r < 0.7:
            return f'(i32.add (local.get 0) (i32.const {self.r.choice([0, 1, 4, 8, -4])}))'
        if r < 0.85:
            return f'(i32.const {self.r.choice(ADDRS)})'
        return f'(local.get {2 + self.r.randrange(NLOCALS)})'

    def load(self):
        op = self.r.choice(LOADS)
        off = self.r.choice([0, 0, 0, 4, 65535])
        return f'({op} offset={off} {self.addr()})' if off else f'({op} {self.addr()})'

    def expr(self, d):
        r = self.r.random()
        if d <= 0 or r < 0.2:
            k = self.r.random()
            if k < 0.45:
                return self.load()
            if k < 0.7:
                return self.const()
            return f'(local.get {self.r.randrange(2 + NLOCALS)})'
        if r < 0.65:
            op = self.r.choice(BINOPS)
            a = self.expr(d - 1)
            b = a if self.r.random() < 0.15 else self.expr(d - 1)  # x op x
            return f'(i32.{op} {a} {b})'
        if r < 0.72:
            return f'(i32.eqz {self.expr(d - 1)})'
        if r < 0.8:
            a = self.expr(d - 1)
            b = a if self.r.random() < 0.3 else self.expr(d - 1)
            return f'(select {a} {b} {self.expr(d - 1)})'
        if r < 0.83:
            return f'(i32.wrap_i64 (i64.extend_i32_{self.r.choice("su")} {self.expr(d - 1)}))'
        if r < 0.87:  # i64 and float code over loads of their width
            k = self.r.random()
            if k < 0.5:
                op = self.r.choice(['add', 'sub', 'mul', 'and', 'xor', 'shr_u', 'rem_u', 'div_s'])
                ld = self.r.choice(['i64.load', 'i64.load32_u', 'i64.load8_s'])
                return (f'(i32.wrap_i64 (i64.{op} ({ld} {self.addr()}) '
                        f'(i64.extend_i32_s {self.expr(d - 1)})))')
            conv = self.r.choice(['i32.trunc_sat_f64_s', 'i32.trunc_f64_u', 'i32.trunc_f64_s'])
            if self.r.random() < 0.5:
                return (f'({conv} (f64.{self.r.choice(["add", "mul", "sub"])} (f64.load '
                        f'{self.addr()}) (f64.convert_i32_s {self.expr(d - 1)})))')
            # the sign of a zero made visible: copysign(1, x)
            return f'({conv} (f64.copysign (f64.const 1) {self.fexpr(2, d - 1)}))'
        if r < 0.91:
            return (f'(if (result i32) {self.expr(d - 1)} (then {self.expr(d - 1)}) '
                    f'(else {self.expr(d - 1)}))')
        if r < 0.93 and self.leaves:  # a call of a leaf function (which LLVM may inline)
            if self.r.random() < 0.5:
                return (f'(call $f{self.r.randrange(self.leaves)} {self.expr(d - 1)} '
                        f'{self.expr(d - 1)})')
            # through the table: slots 0-2 the leaves, 3 a function of another type, 4-5 null,
            # 6 and up past its end
            k = self.r.random()
            i = (f'(i32.const {self.r.choice([0, 1, 2, 3, 4, 6, -1])})' if k < 0.5 else
                 f'(i32.rem_u {self.expr(d - 1)} (i32.const 7))')
            return f'(call_indirect (type $t) {self.expr(d - 1)} {self.expr(d - 1)} {i})'
        if r < 0.94:
            if self.r.random() < 0.5:
                return '(memory.size)'
            return f'(memory.grow (i32.and {self.expr(d - 1)} (i32.const 3)))'

        return f'(local.tee {2 + self.r.randrange(NLOCALS)} {self.expr(d - 1)})'

    def fexpr(self, fd, d):
        """An f64 expression: loads, conversions, edge constants (signed zeros, infinities,
        NaN), arithmetic, min/max, copysign, the unary operators and f32 round trips."""
        r = self.r.random()
        if fd <= 0 or r < 0.3:
            k = self.r.random()
            if k < 0.3:
                return f'(f64.load {self.addr()})'
            if k < 0.6:
                return f'(f64.convert_i32_{self.r.choice("su")} {self.expr(d)})'
            return f'(f64.const {self.r.choice(FCONST)})'
        if r < 0.6:
            op = self.r.choice(['add', 'sub', 'mul', 'div', 'min', 'max', 'copysign'])
            return f'(f64.{op} {self.fexpr(fd - 1, d)} {self.fexpr(fd - 1, d)})'
        if r < 0.8:
            op = self.r.choice(['neg', 'abs', 'sqrt', 'ceil', 'floor', 'trunc', 'nearest'])
            return f'(f64.{op} {self.fexpr(fd - 1, d)})'
        op = self.r.choice(['add', 'mul', 'min', 'max', 'div'])
        return (f'(f64.promote_f32 (f32.{op} (f32.demote_f64 {self.fexpr(fd - 1, d)}) '
                f'(f32.demote_f64 {self.fexpr(fd - 1, d)})))')

    def stmt(self, d):
        r = self.r.random()
        if r < 0.3:
            return f'(local.set {2 + self.r.randrange(NLOCALS)} {self.expr(2)})'
        if r < 0.5:
            return f'(drop {self.expr(2)})'
        if r < 0.65:
            op = self.r.choice(STORES)
            return f'({op} {self.addr()} {self.expr(2)})'
        if r < 0.8 and d > 0:
            body = ' '.join(self.stmt(d - 1) for _ in range(self.r.randrange(0, 3)))
            other = ' '.join(self.stmt(d - 1) for _ in range(self.r.randrange(0, 2)))
            return f'(if {self.expr(2)} (then {body}) (else {other}))'
        if r < 0.85:
            body = ' '.join(self.stmt(d - 1) for _ in range(self.r.randrange(0, 2))) if d else ''
            return f'(block (br_if 0 {self.expr(2)}) {body})'
        if r < 0.9 and d > 0:
            # a loop of at most 4 iterations on a counter of its depth's own (no other code, and
            # no nested loop, writes it)
            n, cnt = self.r.randrange(1, 5), 2 + NLOCALS + d
            body = ' '.join(self.stmt(d - 1) for _ in range(self.r.randrange(1, 3)))
            return (f'(local.set {cnt} (i32.const {n})) (block (loop {body} '
                    f'(br_if 1 {self.expr(1)}) (local.set {cnt} (i32.sub (local.get {cnt}) '
                    f'(i32.const 1))) (br_if 0 (local.get {cnt}))))')
        return f'(global.set 0 {self.expr(2)})'

    def func(self, i):
        self.leaves = 0 if i < LEAVES else LEAVES
        body = ' '.join(self.stmt(2) for _ in range(self.r.randrange(1, 5)))
        return (f'  (func $f{i} (export "f{i}") (param i32 i32) (result i32)'
                f' (local {"i32 " * (NLOCALS + 3)}) {body} {self.expr(3)})\n')


def module(rnd, nfuncs):
    g = Gen(rnd)
    data = ''.join(f'\\{rnd.randrange(256):02x}' for _ in range(64))
    return ('(module\n  (type $t (func (param i32 i32) (result i32)))\n  (memory 1 3)\n'
            '  (global (mut i32) (i32.const 0))\n  (table 6 funcref)\n'
            f'  (elem (i32.const 0) $f0 $f1 $f2 $other)\n'
            '  (func $other (param i32) (result i32) (local.get 0))\n'
            f'  (data (i32.const 0) "{data}")\n  (data (i32.const 65472) "{data}")\n'
            + ''.join(g.func(i) for i in range(nfuncs)) + ')\n')


IN_FUNCTION = re.compile(r' \(in function \d+\)')


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    # A trap's "(in function N)" names, under the JIT, the function where native code was
    # entered, not the callee that trapped (docs/jit.md, "Semantics kept from the interpreter"):
    # compared are the trap's kind, the output and the status.
    return IN_FUNCTION.sub('', p.stdout + p.stderr) + f'exit {p.returncode}'


def compare(psl, tmp, wat, wasm, name, args):
    """Runs export name with args under the interpreter and under the JIT in both bounds
    modes; returns (passed, failed) and prints each difference."""
    passed = failed = 0
    inv = ['--invoke', name, wasm] + args
    want = run([psl, 'run', '--tier', 'interp'] + inv, os.environ)
    for b in ('guard', 'checks'):
        env = dict(os.environ, PSL_JIT_BOUNDS=b, PSL_CACHE_DIR=os.path.join(tmp, 'c'))
        got = run([psl, 'run', '--tier', 'jit'] + inv, env)
        if got == want:
            passed += 1
        else:
            failed += 1
            print(f'jit_diff: {wat} {name}({" ".join(args)}) {b}: interpreter {want!r}, '
                  f'jit {got!r}')
    return passed, failed


def main():
    psl, wat2wasm = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix='psl-jit-diff-')
    passed = failed = 0
    if len(sys.argv) > 3 and sys.argv[3] == '--module':
        # a given module: every export, with each argument
        wat = sys.argv[4]
        wasm = os.path.join(tmp, os.path.basename(wat)[:-4] + '.wasm')
        subprocess.run([wat2wasm, wat, '-o', wasm], check=True)
        with open(wat) as f:
            names = re.findall(r'\(export "([^"]+)"\)', f.read())
        for name in names:
            for a in sys.argv[5:]:
                p, f_ = compare(psl, tmp, wat, wasm, name, [a])
                passed, failed = passed + p, failed + f_
    else:
        seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        nmod = int(sys.argv[4]) if len(sys.argv) > 4 else 10
        nfn = max(LEAVES, int(sys.argv[5]) if len(sys.argv) > 5 else 8)  # the table's leaves
        for mi in range(nmod):
            rnd = random.Random(seed * 1000003 + mi)
            wat = os.path.join(tmp, f'm{seed}-{mi}.wat')
            wasm = wat[:-4] + '.wasm'
            with open(wat, 'w') as f:
                f.write(module(rnd, nfn))
            subprocess.run([wat2wasm, wat, '-o', wasm], check=True)
            for fi in range(nfn):
                for args in ([str(rnd.choice(ADDRS)), str(rnd.choice(EDGE))] for _ in range(2)):
                    p, f_ = compare(psl, tmp, wat, wasm, f'f{fi}', args)
                    passed, failed = passed + p, failed + f_
    print(f'{passed} passed, {failed} failed')
    if not failed:
        subprocess.run(['rm', '-rf', tmp])
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
