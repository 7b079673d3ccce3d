;; A WASI command that sleeps 30 s in poll_oneoff (the --timeout must cut it short).
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))             ;; tag: clock
    (i32.store (i32.const 16) (i32.const 1))             ;; monotonic
    (i64.store (i32.const 24) (i64.const 30000000000))   ;; 30 s, relative
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))
