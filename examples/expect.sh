#!/bin/sh
# Runs one example through `psl run` and checks its exit status and exact stdout.
# Usage: expect.sh PSL WASM EXPECTED_STDOUT_FILE STDIN_FILE|- [ARGS...]
set -u
psl=$1 wasm=$2 expected=$3 input=$4
shift 4
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
if [ "$input" = "-" ]; then input=/dev/null; fi
"$psl" run "$wasm" "$@" <"$input" >"$out"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "FAIL: psl run $wasm $* exited with status $rc" >&2
    exit 1
fi
if ! cmp -s "$out" "$expected"; then
    echo "FAIL: psl run $wasm $* printed something else; diff expected actual:" >&2
    diff "$expected" "$out" | head -20 >&2
    exit 1
fi
echo "ok: psl run $(basename "$wasm") $*"
