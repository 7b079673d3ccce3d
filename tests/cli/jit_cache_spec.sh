#!/bin/sh
# The spec suite under --tier jit twice with one code cache (ctest spectest_core_jit_cached).
# The first run compiles every module and stores it; the second must link every module from the
# cache with the tier's ELF loader, without LLVM (psljit.so is pointed at a path that does not
# exist, so a single cache miss or an object the loader declines would show), and pass exactly
# the same assertions. Usage: jit_cache_spec.sh PSL SPEC_DIR
set -u
psl=$1
spec=$2
tmp=$(mktemp -d /tmp/psl-jit-spec-XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
    echo "jit_cache_spec: $*" >&2
    exit 1
}

PSL_CACHE_DIR=$tmp/cache PSL_JIT_STATS=1 "$psl" spectest --tier jit "$spec" >"$tmp/1.out" 2>"$tmp/1.err" ||
    { tail -5 "$tmp/1.out" "$tmp/1.err"; fail "first run failed"; }
PSL_CACHE_DIR=$tmp/cache PSL_JIT_STATS=1 PSL_JIT_MODULE=$tmp/no-such-psljit.so \
    "$psl" spectest --tier jit "$spec" >"$tmp/2.out" 2>"$tmp/2.err" ||
    { tail -5 "$tmp/2.out" "$tmp/2.err"; fail "second run failed"; }

sum1=$(tail -1 "$tmp/1.out")
sum2=$(tail -1 "$tmp/2.out")
echo "first:  $sum1"
echo "second: $sum2"
[ "$sum1" = "$sum2" ] || fail "the two runs differ"
case $sum2 in *" 0 failed"*) ;; *) fail "assertions failed" ;; esac
cmp -s "$tmp/1.out" "$tmp/2.out" || fail "per-file results differ"

compiled1=$(grep -c "jit: compiled" "$tmp/1.err")
linked1=$(grep -c "without LLVM" "$tmp/1.err")
compiled2=$(grep -c "jit: compiled" "$tmp/2.err")
linked2=$(grep -c "without LLVM" "$tmp/2.err")
echo "first run: $compiled1 compiled, $linked1 linked by the ELF loader"
echo "second run: $compiled2 compiled, $linked2 linked by the ELF loader"
[ "$compiled1" -gt 0 ] && [ "$linked1" -gt 0 ] || fail "the first run compiled or linked nothing"
[ "$compiled2" -eq 0 ] || fail "the second run compiled $compiled2 modules"
[ "$linked2" -eq "$linked1" ] || fail "the second run linked $linked2 objects, the first $linked1"
if grep -q "cannot load the JIT module\|LLJIT\|stays interpreted" "$tmp/2.err"; then
    grep -m3 "cannot load the JIT module\|LLJIT\|stays interpreted" "$tmp/2.err" >&2
    fail "the second run needed LLVM"
fi
exit 0
