;; A WASI command whose _start traps.
(module (memory (export "memory") 1) (func (export "_start") unreachable))
