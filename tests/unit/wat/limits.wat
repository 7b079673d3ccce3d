;; Guest for tests/unit/test_wasm_limits.c: one export per limit or trap kind. Imports are host
;; functions the test provides: "host.fail" traps with a message, "host.exit" exits like WASI
;; proc_exit, "host.reenter" calls back into the guest's "spin" export.
(module
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (import "host" "fail" (func $fail))
  (import "host" "exit" (func $exit (param i32)))
  (import "host" "count" (func $count (param i32) (result i32)))
  (memory 1 1024)
  (table 4 funcref)
  (elem (i32.const 0) $const7 $id)          ;; slot 0: [] -> i32, slot 1: i32 -> i32, 2-3 null
  (global $calls (mut i32) (i32.const 0))

  (func $const7 (type $v_i) i32.const 7)
  (func $id (type $i_i) local.get 0)

  ;; Endless loops: a plain back edge, and one whose body calls a function each round.
  (func (export "spin") (loop $l br $l))
  (func (export "spin_calls") (loop $l call $const7 drop br $l))
  ;; Unbounded recursion; $calls counts the frames that were entered.
  (func $rec (export "rec") (param i32) (result i32)
    global.get $calls i32.const 1 i32.add global.set $calls
    local.get 0 i32.const 1 i32.add call $rec)
  (func (export "calls") (result i32) global.get $calls)
  (func (export "reset") i32.const 0 global.set $calls)
  ;; Recursion of a given depth: returns the depth reached.
  (func $down (export "down") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 0
    else local.get 0 i32.const 1 i32.sub call $down i32.const 1 i32.add end)

  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "size") (result i32) memory.size)
;; Straight-line bulk work with no back edge: 40 fills of the whole memory.
  (func (export "fill_many") (local $n i32)
    memory.size i32.const 65536 i32.mul local.set $n
    (memory.fill (i32.const 0) (i32.const 1) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 2) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 3) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 4) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 5) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 6) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 8) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 9) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 10) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 11) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 12) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 13) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 14) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 15) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 16) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 17) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 18) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 19) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 20) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 21) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 22) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 23) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 24) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 25) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 26) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 27) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 28) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 29) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 30) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 31) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 32) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 33) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 34) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 35) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 36) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 37) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 38) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 39) (local.get $n))
    (memory.fill (i32.const 0) (i32.const 40) (local.get $n)))
  (func (export "tgrow") (param i32) (result i32) ref.null func local.get 0 table.grow 0)

  ;; One export per trap kind.
  (func (export "unreachable") unreachable)
  (func (export "load_oob") (param i32) (result i32) local.get 0 i32.load)
  (func (export "store_oob") (param i32) local.get 0 i64.const 1 i64.store offset=4)
  (func (export "load_edge") (result i32)        ;; the last 4 bytes of the memory: in bounds
    memory.size i32.const 65536 i32.mul i32.const 4 i32.sub i32.load)
  (func (export "fill_oob") memory.size i32.const 65536 i32.mul i32.const 0 i32.const 1 memory.fill)
  (func (export "table_oob") (result funcref) i32.const 4 table.get 0)
  (func (export "div0") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_u)
  (func (export "rem0") (param i64 i64) (result i64) local.get 0 local.get 1 i64.rem_s)
  (func (export "div_ovf") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s)
  (func (export "trunc_u64") (param f32) (result i64) local.get 0 i64.trunc_f32_u)
  (func (export "call_ind") (param i32) (result i32) local.get 0 call_indirect (type $v_i))
  (func (export "call_ind_arg") (param i32 i32) (result i32)
    local.get 1 local.get 0 call_indirect (type $i_i))

  ;; Host interaction.
  (func (export "host_fail") (result i32) call $fail i32.const 1)
  (func (export "host_exit") (param i32) (result i32) local.get 0 call $exit i32.const 1)
  (func (export "host_count") (param i32) (result i32) local.get 0 call $count)
)
