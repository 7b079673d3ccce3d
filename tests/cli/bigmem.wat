;; Declares 64 MiB of memory: more than --max-memory 16.
(module (memory 1024) (func (export "_start")))
