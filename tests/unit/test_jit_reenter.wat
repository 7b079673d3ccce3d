;; test_jit's re-entry module: $down recurses through the host import $h, which calls the export
;; "down" again through wasm_call, so compiled frames, a helper call and interpreted host frames
;; alternate; the depth at which it traps must be the interpreter's.
(module
  (import "t" "h" (func $h (param i32) (result i32)))
  (func $down (export "down") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (call $h (i32.sub (local.get 0) (i32.const 1))) (i32.const 1))))))
