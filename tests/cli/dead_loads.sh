#!/bin/sh
# Loads whose value is used only where LLVM can fold it away (ctest cli_dead_loads): every export
# of dead_loads.wasm, at an address in bounds, at the last byte and out of bounds, under --tier
# jit with the guard region and with explicit checks, must print and exit exactly as the
# interpreter does (out of bounds: the trap). Usage: dead_loads.sh PSL WASM
set -u
psl=$1
wasm=$2
[ -f "$wasm" ] || { echo "dead_loads: missing $wasm" >&2; exit 1; }
tmp=$(mktemp -d /tmp/psl-dead-loads-XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
failed=0
for f in sub xor addsub and0 mul0 or1 shr sel eq ltu0 byte256 eqz1 brnext store_sub sum2 copy; do
    for a in 16 65535 70000; do
        "$psl" run --tier interp --invoke "$f" "$wasm" "$a" >"$tmp/want" 2>&1
        echo "exit $?" >>"$tmp/want"
        for b in guard checks; do
            PSL_JIT_BOUNDS=$b PSL_CACHE_DIR=$tmp/cache "$psl" run --tier jit --invoke "$f" "$wasm" \
                "$a" >"$tmp/got" 2>&1
            echo "exit $?" >>"$tmp/got"
            if cmp -s "$tmp/want" "$tmp/got"; then
                pass=$((pass + 1))
            else
                failed=$((failed + 1))
                echo "dead_loads: $f($a) with $b bounds: interpreter: $(tr '\n' ' ' <"$tmp/want")," \
                    "jit: $(tr '\n' ' ' <"$tmp/got")" >&2
            fi
        done
    done
done
echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
