;; Exports for `psl run --invoke` tests: arithmetic, floats, traps, an endless loop, recursion.
(module
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "mul64") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul)
  (func (export "half") (param f32) (result f32) local.get 0 f32.const 0.5 f32.mul)
  (func (export "sqrt") (param f64) (result f64) local.get 0 f64.sqrt)
  (func (export "pair") (result i32 i64) i32.const -1 i64.const 42)
  (func (export "spin") (loop $l br $l))
  (func $down (export "down") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 0 else local.get 0 i32.const 1 i32.sub call $down end)
  (func (export "oob") (result i32) i32.const 70000 i32.load)
  (memory 1))
