;; Guest for run_cli_hostile.sh: no imports, so `psl run --invoke` can reach every trap.
(module
  (type $v_i (func (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $id)
  (func $id (param i32) (result i32) local.get 0)
  (func (export "unreachable") unreachable)
  (func (export "load_oob") (param i32) (result i32) local.get 0 i32.load)
  (func (export "call_ind") (param i32) (result i32) local.get 0 call_indirect (type $v_i))
  (func (export "spin") (loop $l br $l))
  (func (export "spin_calls") (loop $l i32.const 1 call $id drop br $l))
  (func $rec (export "rec") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $rec))
