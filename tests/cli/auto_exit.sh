#!/bin/sh
# `psl run --tier auto` must print everything and exit with the guest's status however its end
# falls against the background load of the JIT module: before the load starts, while libLLVM is
# being loaded (the run then leaves with _exit, cli_tier_finish), or after the JIT took over.
# The interpreter's output of the same run is the reference. Not timed: each case runs with
# several load delays ($PSL_JIT_LAZY_MS) and run lengths, so that every phase is hit, and both
# without a code cache (the lazy thread loads psljit.so) and with one shared by all runs (the
# tier loads it from its hot thread at a miss; later runs find batches in the cache).
# Usage: auto_exit.sh PSL EXAMPLES_DIR CLI_WASM_DIR
set -u
psl=$1 ex=$2 dir=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
export PSL_CACHE_DIR="$tmp/cache"
fails=0 n=0

# case NAME -- psl run arguments (after run)
case_() {
    name=$1
    shift 2
    PSL_TIER=interp "$psl" run "$@" </dev/null >"$tmp/want" 2>"$tmp/want_err"
    want=$?
    for cache in --no-cache --cache; do
        opt=$cache
        [ "$cache" = --cache ] && opt=
        for lazy in 0 2 5 1000; do
            for rep in 1 2 3; do
                n=$((n + 1))
                PSL_JIT_LAZY_MS=$lazy "$psl" run --tier auto $opt "$@" </dev/null \
                    >"$tmp/out" 2>"$tmp/err"
                st=$?
                bad=""
                [ "$st" -eq "$want" ] || bad="status $st, want $want"
                cmp -s "$tmp/out" "$tmp/want" ||
                    bad="$bad; stdout differs: $(head -c 200 "$tmp/out")"
                cmp -s "$tmp/err" "$tmp/want_err" ||
                    bad="$bad; stderr: $(head -c 6000 "$tmp/err")"
                if [ -n "$bad" ]; then
                    echo "FAIL $name ($cache, PSL_JIT_LAZY_MS=$lazy, run $rep): $bad"
                    fails=$((fails + 1))
                fi
            done
        done
    done
    echo "ok   $name"
}

case_ hello -- "$ex/hello.wasm" a b
for N in 30000 100000 300000 1000000 3000000; do
    case_ "primes_$N" -- "$ex/primes.wasm" "$N"
done
for N in 300000 1000000 3000000 10000000; do
    case_ "invoke_count_$N" -- --invoke count "$dir/count.wasm" "$N"
done
case_ exit3 -- "$dir/exit3.wasm"

if [ "$fails" -ne 0 ]; then
    echo "$fails of $n runs failed"
    exit 1
fi
echo "all $n runs agree with the interpreter"
