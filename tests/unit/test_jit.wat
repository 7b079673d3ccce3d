(module
  (type $ii (func (param i32) (result i32)))
  (type $iii (func (param i32 i32) (result i32)))
  (memory (export "mem") 1)
  (table 4 funcref)
  (elem (i32.const 0) $fib $sq $rf)
  (global $g (mut i64) (i64.const 7))
  (func $fib (export "fib") (type $ii)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $sq (type $ii) (i32.mul (local.get 0) (local.get 0)))
  (func (export "sum") (param i32) (result i64) (local i64)
    (block (loop
      (br_if 1 (i32.eqz (local.get 0)))
      (local.set 1 (i64.add (local.get 1) (i64.extend_i32_u (local.get 0))))
      (i32.store (i32.const 8) (local.get 0))
      (local.set 0 (i32.sub (i32.load (i32.const 8)) (i32.const 1)))
      (br 0)))
    (global.set $g (i64.add (global.get $g) (local.get 1)))
    (global.get $g))
  (func (export "ind") (param i32 i32) (result i32) (call_indirect (type $ii) (local.get 1) (local.get 0)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (drop (memory.grow (local.get 0))) (memory.size))
  (func (export "fmin") (param f64 f64) (result f64) (f64.min (local.get 0) (local.get 1)))
  (func (export "trunc") (param f32) (result i32) (i32.trunc_f32_s (local.get 0)))
  (func $rec (export "rec") (param i32) (result i32) (i32.add (call $rec (local.get 0)) (i32.const 1)))
  ;; n calls deep, then a call of the leaf $sq: at the depth limit the leaf's call traps
  (func $deep (export "deep") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (call $sq (i32.const 3)))
      (else (i32.add (call $deep (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
  (func (export "spin") (loop (br 0)))
  (func (export "unreach") (unreachable))
  ;; Addresses stepped by small constants after an access (the JIT emits such adds nuw, which
  ;; holds because memories stay below 4 GiB - 64 KiB): up to the end of memory, where it traps,
  ;; and down by a negative step (an add of a large constant), which wraps below 0 and traps.
  (func (export "walk") (param $p i32) (param $n i32) (result i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.load (local.get $p))))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (i32.add (local.get $p) (i32.const 4)))))
      (local.set $p (i32.add (local.get $p) (i32.const 5)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $s))
  ;; p + l with l counted from 0 (the JIT proves it by induction over the loop: iv_adds)
  (func (export "scan") (param $p i32) (param $n i32) (result i32) (local $l i32) (local $s i32)
    (local.set $l (i32.const 0))
    (loop $top
      (local.set $s (i32.add (local.get $s) (i32.load8_u (i32.add (local.get $p) (local.get $l)))))
      (local.set $l (i32.add (local.get $l) (i32.const 1)))
      (br_if $top (i32.lt_u (local.get $l) (local.get $n))))
    (local.get $s))
  ;; the same off a base accessed before the loop, the access at p + l + 4 (iv_adds, strong form)
  (func (export "scan4") (param $p i32) (param $n i32) (result i32) (local $l i32) (local $s i32) (local $t i32)
    (local.set $s (i32.load (local.get $p)))
    (local.set $l (i32.const 0))
    (loop $top
      (local.set $t (i32.add (local.get $p) (local.get $l)))
      (local.set $s (i32.add (local.get $s) (i32.load (i32.add (local.get $t) (i32.const 4)))))
      (local.set $l (i32.add (local.get $l) (i32.const 4)))
      (br_if $top (i32.lt_u (local.get $l) (local.get $n))))
    (local.get $s))
  (func (export "walkdown") (param $p i32) (param $n i32) (result i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.load (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const -5)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $s))
  ;; Guard-mode bounds: a dropped load must still trap; a reduction over memory (its loads feed
  ;; a loop-carried sum); a store that faults must leave memory unchanged before it.
;; A loop nest for on-stack replacement: the sampled loop head is likely the innermost, whose
  ;; body also branches back to the middle loop's head (an early continue).
  (func (export "nest") (param $n i32) (result i64) (local $i i32) (local $j i32) (local $k i32) (local $acc i64)
    (loop $li
      (local.set $j (i32.const 0))
      (loop $lj
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (local.set $k (i32.const 0))
        (loop $lk
          (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31))
            (i64.extend_i32_u (i32.xor (local.get $i) (i32.mul (local.get $j) (local.get $k))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $lj (i32.and (i32.eq (i32.and (i32.wrap_i64 (local.get $acc)) (i32.const 255)) (i32.const 7))
                              (i32.lt_u (local.get $j) (i32.const 64))))
          (br_if $lk (i32.lt_u (local.get $k) (i32.const 100))))
        (br_if $lj (i32.lt_u (local.get $j) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $li (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
;; A loop nest, then a top-level loop, in one activation: an OSR entry at the nest's inner loop
  ;; (compiled at the mid level) runs the second loop in its own code, asks for an entry there
  ;; and leaves for it.
  (func (export "seq") (param $n i32) (param $m i32) (result i64) (local $i i32) (local $o i32) (local $acc i64)
    (loop $outer
      (local.set $i (i32.const 0))
      (loop $a
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3)) (i64.extend_i32_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $a (i32.lt_u (local.get $i) (local.get $n))))
      (local.set $o (i32.add (local.get $o) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $o) (i32.const 2))))
    (local.set $i (i32.const 0))
    (loop $b
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 5))
                               (i64.extend_i32_u (i32.xor (local.get $i) (i32.const 7)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $b (i32.lt_u (local.get $i) (local.get $m))))
    (local.get $acc))
;; A counted loop over two pointers (y[i] += 3 * x[i], clang's shape): the JIT runs it in a
  ;; checked copy with plain loads, which LLVM vectorises, when every access of the run lies in
  ;; the memory and x's range does not overlap y's; otherwise in the ordinary copy.
  (func (export "axpy") (param $x i32) (param $y i32) (param $n i32) (result i32) (local $i i32)
    (loop $l
      (f64.store (local.get $y)
                 (f64.add (f64.load (local.get $y)) (f64.mul (f64.const 3) (f64.load (local.get $x)))))
      (local.set $x (i32.add (local.get $x) (i32.const 8)))
      (local.set $y (i32.add (local.get $y) (i32.const 8)))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $i))
  ;; The same with an unsigned bound and the store at y + 8 (off the pointer by an offset).
  (func (export "axpy2") (param $x i32) (param $y i32) (param $n i32) (result i32) (local $i i32)
    (loop $l
      (f64.store offset=8 (local.get $y)
                 (f64.add (f64.load offset=8 (local.get $y)) (f64.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 8)))
      (local.set $y (i32.add (local.get $y) (i32.const 8)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n))))
    (local.get $i))
  ;; axpy's with a signed bound and a counter that steps by 3 (a negative bound ends the loop
  ;; after one iteration).
  (func (export "axpy3") (param $x i32) (param $y i32) (param $n i32) (result i32) (local $i i32)
    (loop $l
      (f64.store (local.get $y)
                 (f64.sub (f64.load (local.get $y)) (f64.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 8)))
      (local.set $y (i32.add (local.get $y) (i32.const 8)))
      (br_if $l (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 3))) (local.get $n))))
    (local.get $i))
  ;; A sieve's marking loop: mem[bits + ((j >> 3) & ~3)] |= 1 << (j & 31) for j = j0, j0 + p, ...
  ;; below n, guarded by a branch over it (as clang emits). bits + ((j >> 3) & ~3) is computed
  ;; in 64 bits off mem + bits in the checked copy, when bits leaves room for the largest index;
  ;; otherwise (the add may wrap) the ordinary copy runs. Returns the last j.
  (func (export "mark") (param $bits i32) (param $j i32) (param $n i32) (param $p i32) (result i32)
        (local $t i32)
    (if (i32.lt_u (local.get $j) (local.get $n))
      (then
        (loop $l
          (local.set $t (i32.add (local.get $bits)
                                 (i32.and (i32.shr_u (local.get $j) (i32.const 3))
                                          (i32.const 0x1ffffffc))))
          (i32.store (local.get $t)
                     (i32.or (i32.load (local.get $t))
                             (i32.shl (i32.const 1) (local.get $j))))
          (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (local.get $p)))
                              (local.get $n))))))
    (local.get $j))
  ;; A sha256-shaped round over n / 4 rounds: t = h + (rotr(e, 6) ^ rotr(e, 11)) + (e & f)
  ;; + k[i] + w[i], then h = f, f = e, e = t; returns e ^ h. jit_order.c adds the two loaded
  ;; terms first, off the path from e to the next round's e.
  (func (export "mix") (param $k i32) (param $w i32) (param $n i32) (result i32)
        (local $e i32) (local $f i32) (local $h i32) (local $i i32) (local $t i32)
    (local.set $e (i32.const 0x6a09e667))
    (local.set $f (i32.const 0x510e527f))
    (local.set $h (i32.const 0x1f83d9ab))
    (loop $l
      (local.set $t
        (i32.add
          (i32.add
            (i32.add
              (i32.add (local.get $h)
                       (i32.xor (i32.rotr (local.get $e) (i32.const 6))
                                (i32.rotr (local.get $e) (i32.const 11))))
              (i32.and (local.get $e) (local.get $f)))
            (i32.load (i32.add (local.get $k) (local.get $i))))
          (i32.load (i32.add (local.get $w) (local.get $i)))))
      (local.set $h (local.get $f))
      (local.set $f (local.get $e))
      (local.set $e (local.get $t))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $n))))
    (i32.xor (local.get $e) (local.get $h)))
  ;; A count-down loop as clang writes nbody's inner one: n iterations (n = 0: 2^32) of
  ;; a[0] -= p[0] * 2.5, p[1] += a[1], p += 6 doubles, the pointer advanced through a
  ;; temporary (t = p + 48; ...; p = p + 8; ...; p = t) and the counter by `n = n - 1; br_if n`;
  ;; returns a[0].
  (func (export "pairs") (param $a i32) (param $p i32) (param $n i32) (result f64)
        (local $t i32)
    (loop $l
      (local.set $t (i32.add (local.get $p) (i32.const 48)))
      (f64.store (local.get $a)
                 (f64.sub (f64.load (local.get $a))
                          (f64.mul (f64.load (local.get $p)) (f64.const 2.5))))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (f64.store (local.get $p)
                 (f64.add (f64.load (local.get $p)) (f64.load offset=8 (local.get $a))))
      (local.set $p (local.get $t))
      (br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1)))))
    (f64.load (local.get $a)))
  ;; The sum of n floats from x, in order (a counted loop with a float carried from one
  ;; iteration to the next: its checked copy must not be vectorised, which would reorder the
  ;; adds and round differently).
  (func (export "fsum") (param $x i32) (param $n i32) (result f32) (local $s f32) (local $i i32)
    (loop $l
      (local.set $s (f32.add (local.get $s) (f32.load (local.get $x))))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $s))
  ;; A count-down loop that stores to no fixed address (a copy loop, like musl's memcpy's):
  ;; d[i] = s[i] + 123457 for n words; no checked copy (only count-down loops with a fixed
  ;; store get one). Returns the last word written.
  (func (export "copydown") (param $d i32) (param $s i32) (param $n i32) (result i32)
    (loop $l
      (i32.store (local.get $d) (i32.add (i32.load (local.get $s)) (i32.const 123457)))
      (local.set $d (i32.add (local.get $d) (i32.const 4)))
      (local.set $s (i32.add (local.get $s) (i32.const 4)))
      (br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1)))))
    (i32.load offset=65532 (i32.const 0)))
  ;; axpy's loop run $reps times over the same arrays (a long activation: the auto tier's OSR
  ;; entry at one of its heads, compiled at the mid level first); returns the iterations run.
  (func (export "axpy_rep") (param $x i32) (param $y i32) (param $n i32) (param $reps i32)
        (result i32) (local $i i32) (local $p i32) (local $q i32) (local $t i32)
    (loop $r
      (local.set $p (local.get $x))
      (local.set $q (local.get $y))
      (local.set $i (i32.const 0))
      (loop $l
        (f64.store (local.get $q)
                   (f64.add (f64.load (local.get $q)) (f64.mul (f64.const 3) (f64.load (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (local.set $q (i32.add (local.get $q) (i32.const 8)))
        (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
      (local.set $t (i32.add (local.get $t) (local.get $i)))
      (br_if $r (local.tee $reps (i32.sub (local.get $reps) (i32.const 1)))))
    (local.get $t))
  ;; OSR specialisation: $n and $step are never written, so an OSR entry of the loop takes them
  ;; as constants; a call with another $step must not run that entry.
  (func (export "span") (param $n i32) (param $step i32) (result i64) (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3))
                               (i64.extend_i32_u (i32.mul (local.get $i) (local.get $step)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "dropload") (param i32) (result i32) (drop (i32.load (local.get 0))) (i32.const 1))
  (func (export "sumto") (param i32) (result i32) (local i32 i32)
    (block (loop
      (br_if 1 (i32.ge_u (local.get 1) (local.get 0)))
      (local.set 2 (i32.add (local.get 2) (i32.load8_u (local.get 1))))
      (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br 0)))
    (local.get 2))
  (func (export "store2") (param i32 i32) (result i32)
    (i32.store (i32.const 16) (local.get 1))
    (i64.store offset=4 (local.get 0) (i64.extend_i32_u (local.get 1)))
    (i32.load (i32.const 16)))
;; Calls between objects of the auto tier: $rf (and its small callee $pair, two results) are
  ;; compiled first; "xcall" loops calling them directly and through the table, so its OSR
  ;; copy, compiled later, calls their native copies in the other object. $rf traps when n = t.
  (func $pair (param i32) (result i32 i32)
    (i32.add (local.get 0) (i32.const 1)) (i32.mul (local.get 0) (i32.const 3)))
  (func $rf (export "rf") (type $iii)
    (if (i32.eq (local.get 0) (local.get 1)) (then unreachable))
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (call $pair (local.get 0)) (i32.sub))
      (else (i32.add (call $rf (i32.sub (local.get 0) (i32.const 1)) (local.get 1))
                     (call $rf (i32.sub (local.get 0) (i32.const 2)) (local.get 1))))))
  (func (export "xcall") (param $n i32) (param $t i32) (result i32) (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
        (call $rf (select (i32.const 5) (i32.and (local.get $i) (i32.const 3))
                          (i32.eq (local.get $i) (local.get $t)))
                  (i32.const 5))))
      (local.set $acc (i32.xor (local.get $acc)
        (call_indirect (type $iii) (i32.and (local.get $i) (i32.const 3)) (i32.const 9)
                       (i32.const 2))))
      (local.get $acc) (call $pair (local.get $i)) (i32.sub) (i32.add) (local.set $acc)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
)
