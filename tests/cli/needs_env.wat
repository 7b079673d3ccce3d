;; Imports a function no host provides.
(module (import "env" "missing" (func)) (func (export "_start")))
