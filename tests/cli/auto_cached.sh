#!/bin/sh
# --tier auto with a code cache that holds the whole module (stored by a --tier jit run) links it
# before the module runs (ctest cli_auto_cached): the run compiles nothing, needs no LLVM
# (psljit.so is pointed at a path that does not exist), enters no OSR entry, and prints what the
# interpreter prints. A cache without that entry keeps the lazy load. Usage:
# auto_cached.sh PSL EXAMPLES_DIR
set -u
psl=$1
ex=$2
tmp=$(mktemp -d /tmp/psl-auto-cached-XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
    echo "auto_cached: $*" >&2
    exit 1
}
prog=$ex/primes.wasm
arg=3000000
[ -f "$prog" ] || fail "missing $prog (build the examples)"

"$psl" run --tier interp "$prog" $arg >"$tmp/want" 2>&1 || fail "interpreted run failed"
PSL_CACHE_DIR=$tmp/cache "$psl" run --tier jit "$prog" $arg >"$tmp/jit" 2>&1 ||
    fail "--tier jit run failed"
cmp -s "$tmp/want" "$tmp/jit" || fail "--tier jit printed something else"

PSL_CACHE_DIR=$tmp/cache PSL_JIT_STATS=1 PSL_JIT_MODULE=$tmp/no-such-psljit.so \
    "$psl" run --tier auto "$prog" $arg >"$tmp/auto" 2>"$tmp/auto.err" ||
    { cat "$tmp/auto.err" >&2; fail "--tier auto run with the cache failed"; }
cmp -s "$tmp/want" "$tmp/auto" || fail "--tier auto printed something else"
grep -q "linked .* without LLVM" "$tmp/auto.err" || {
    cat "$tmp/auto.err" >&2
    fail "the cached module was not linked"
}
if grep -q "jit: compiled\|OSR\|cannot load\|stays interpreted" "$tmp/auto.err"; then
    cat "$tmp/auto.err" >&2
    fail "the run compiled, entered an OSR entry or needed LLVM"
fi

# An empty cache: the module starts interpreted and the JIT is loaded later, as without one. The
# run must outlast the compiler's start and first batch: primes below 3000000 takes 50 ms
# interpreted on a fast machine, about what the compiler process needs to be ready (a CI run
# ended before anything was compiled), so this run sieves ten times as far (0.5 s interpreted
# there, 0.17 s under auto).
long=30000000
"$psl" run --tier interp "$prog" $long >"$tmp/want2" 2>&1 || fail "interpreted run ($long) failed"
PSL_CACHE_DIR=$tmp/empty PSL_JIT_STATS=1 PSL_JIT_LAZY_MS=0 "$psl" run --tier auto "$prog" $long \
    >"$tmp/auto2" 2>"$tmp/auto2.err" ||
    { cat "$tmp/auto2.err" >&2; fail "--tier auto run without the entry failed"; }
cmp -s "$tmp/want2" "$tmp/auto2" || fail "--tier auto without the entry printed something else"
grep -q "jit: compiled" "$tmp/auto2.err" || {
    cat "$tmp/auto2.err" >&2
    fail "without the entry nothing was compiled (is the run long enough?)"
}
echo "auto_cached: linked from the cache before running, nothing compiled; without it compiled"
exit 0
