#!/bin/sh
# `psl run` on hostile and failing modules: the documented exit status (src/cli/cli.h) and one
# line on stderr for a malformed file, a trap, a timeout and the call-depth limit, and for every
# regression input and seed-corpus module an exit status that is documented, never a signal.
# Usage: run_cli_hostile.sh PSL GUEST_WASM DIR...   (GUEST_WASM: cli_guest.wat, assembled)
set -u
psl=$1 guest=$2
shift 2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0

# expect NAME STATUS STDERR_PATTERN -- psl arguments...
expect() {
    name=$1 want=$2 werr=$3
    shift 4
    n=$((n + 1))
    "$psl" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    st=$?
    bad=""
    [ "$st" -eq "$want" ] || bad="status $st, want $want"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || bad="$bad; stderr has $(wc -l <"$tmp/err") lines, want 1"
    grep -Eq "$werr" "$tmp/err" || bad="$bad; stderr '$(cat "$tmp/err")' !~ /$werr/"
    if [ -n "$bad" ]; then
        echo "FAIL $name: $bad"
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

printf '\000asm\001\000\000\000\012\005\001\003\000\255\013' >"$tmp/underflow.wasm"
expect malformed 122 "^psl: malformed module: " -- run "$tmp/underflow.wasm"
printf '\000asm\002\000\000\000' >"$tmp/version.wasm"
expect bad_version 122 "unknown binary version" -- run "$tmp/version.wasm"
expect trap 125 "^psl: trap: unreachable" -- run --invoke unreachable "$guest"
expect trap_oob 125 "^psl: trap: out of bounds memory access" -- run --invoke load_oob "$guest" 65536
expect trap_indirect 125 "^psl: trap: indirect call type mismatch" -- run --invoke call_ind "$guest" 0
expect trap_uninit 125 "^psl: trap: uninitialized element" -- run --invoke call_ind "$guest" 1
expect timeout 124 "^psl: timeout: " -- run --timeout 0.2 --invoke spin "$guest"
expect timeout_calls 124 "^psl: timeout: " -- run --timeout 0.2 --invoke spin_calls "$guest"
expect stack 126 "^psl: limit: call stack exhausted" -- run --max-stack 100 --invoke rec "$guest" 0

# Every hostile input: a documented status (cli.h: 0-127 are the guest's or psl's own; 130 is
# SIGINT), never death by a signal (128 + n).
for dir in "$@"; do
    for f in "$dir"/*.wasm; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        "$psl" run --timeout 1 --max-memory 16 --max-stack 500 "$f" </dev/null >/dev/null 2>"$tmp/err"
        st=$?
        if [ "$st" -gt 127 ] && [ "$st" -ne 130 ]; then
            echo "FAIL $f: exit status $st ($(head -c 200 "$tmp/err"))"
            fails=$((fails + 1))
        fi
    done
done

echo "$((n - fails)) of $n hostile-input checks passed"
[ "$fails" -eq 0 ]
