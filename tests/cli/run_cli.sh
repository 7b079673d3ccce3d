#!/bin/sh
# End-to-end checks of `psl run`: exit statuses, --invoke output, and that every failure prints
# exactly one line on stderr; also the cluster commands without a cluster, and psl identity. Usage: run_cli.sh PSL WASM_DIR (WASM_DIR holds the built *.wat).
set -u
psl=$1 dir=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0

# check NAME WANT_STATUS WANT_STDOUT STDERR_PATTERN -- psl arguments...
# WANT_STDOUT is compared exactly ('' = empty); STDERR_PATTERN is a grep -E pattern for the
# single stderr line ('' = stderr must be empty).
check() {
    name=$1 want=$2 wout=$3 werr=$4
    shift 5
    n=$((n + 1))
    "$psl" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    st=$?
    out=$(cat "$tmp/out")
    lines=$(wc -l <"$tmp/err")
    bad=""
    [ "$st" -eq "$want" ] || bad="status $st, want $want"
    [ "$out" = "$wout" ] || bad="$bad; stdout '$out', want '$wout'"
    if [ -z "$werr" ]; then
        [ -s "$tmp/err" ] && bad="$bad; unexpected stderr: $(cat "$tmp/err")"
    else
        [ "$lines" -eq 1 ] || bad="$bad; $lines stderr lines, want 1"
        grep -Eq "$werr" "$tmp/err" || bad="$bad; stderr '$(cat "$tmp/err")' !~ /$werr/"
    fi
    if [ -n "$bad" ]; then
        echo "FAIL $name: $bad"
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

nl='
'
check add 0 "5" "" -- run --invoke add "$dir/invoke.wasm" 2 3
check add_neg 0 "-7" "" -- run --invoke add "$dir/invoke.wasm" -10 3
check add_hex 0 "-1" "" -- run --invoke add "$dir/invoke.wasm" 0xffffffff 0
check mul64 0 "-8000000000" "" -- run --invoke mul64 "$dir/invoke.wasm" 4000000000 -2
check half 0 "1.25 (0x3fa00000)" "" -- run --invoke half "$dir/invoke.wasm" 2.5
check sqrt 0 "1.4142135623730951 (0x3ff6a09e667f3bcd)" "" -- run --invoke sqrt "$dir/invoke.wasm" 2
check pair 0 "-1${nl}42" "" -- run --invoke pair "$dir/invoke.wasm"
check recursion 0 "0" "" -- run --invoke down "$dir/invoke.wasm" 1000
check div_zero 125 "" "^psl: trap: integer divide by zero" -- run --invoke div "$dir/invoke.wasm" 1 0
check div_overflow 125 "" "^psl: trap: integer overflow" -- run --invoke div "$dir/invoke.wasm" -2147483648 -1
check oob 125 "" "^psl: trap: out of bounds memory access" -- run --invoke oob "$dir/invoke.wasm"
check timeout 124 "" "^psl: timeout: " -- run --timeout 0.2 --invoke spin "$dir/invoke.wasm"
check stack 126 "" "^psl: limit: call stack exhausted" -- run --max-stack 100 --invoke down "$dir/invoke.wasm" 1000
check bad_arg 120 "" "^psl: argument 1 of 'add': 'x' is not a valid i32" -- run --invoke add "$dir/invoke.wasm" x 1
check arg_count 120 "" "^psl: 'add' takes 2 arguments \(i32 i32\), got 1" -- run --invoke add "$dir/invoke.wasm" 1
check no_export 120 "" "has no exported function 'nope'" -- run --invoke nope "$dir/invoke.wasm"
check no_start 120 "" "has no _start function" -- run "$dir/invoke.wasm"
check exit3 3 "" "" -- run "$dir/exit3.wasm"
check trap_start 125 "" "^psl: trap: unreachable" -- run "$dir/trap_start.wasm"
check sleep_timeout 124 "" "^psl: timeout: " -- run --timeout 0.3 "$dir/sleep.wasm"
check max_memory 126 "" "^psl: limit: " -- run --max-memory 16 "$dir/bigmem.wasm"
check unlinkable 123 "" "^psl: unlinkable module: .*env\.missing" -- run "$dir/needs_env.wasm"
printf '\000asm\001\000\000\000\001\005' >"$tmp/trunc.wasm"
check malformed 122 "" "^psl: malformed module: .* at offset 0x" -- run "$tmp/trunc.wasm"
printf 'not wasm at all' >"$tmp/junk.wasm"
check junk 122 "" "^psl: malformed module: " -- run "$tmp/junk.wasm"
check not_found 127 "" "^psl: cannot read .*No such file" -- run "$tmp/missing.wasm"
check usage_nofile 120 "" "^psl: run: no module file" -- run
check usage_badopt 120 "" "^psl: run: unknown option --bogus" -- run --bogus 1 x.wasm
check usage_timeout 120 "" "^psl: run: --timeout" -- run --timeout -1 x.wasm
check unknown_cmd 120 "" "^psl: unknown command 'frobnicate'" -- frobnicate
# Numbers given to the daemons and benchmarks are checked, not read as 0.
check worker_badid 120 "" "^psl: worker: bad value for --id: 'x'" -- worker --coordinator \
    tcp://127.0.0.1:1 --policy p --id x
check worker_badthreads 120 "" "^psl: worker: bad value for --threads: '0'" -- worker \
    --coordinator tcp://127.0.0.1:1 --policy p --id 1 --threads 0
check worker_badlog 120 "" "^psl: worker: bad size '4X'" -- worker --coordinator \
    tcp://127.0.0.1:1 --policy p --id 1 --big-checkpoint-log 4X
check storage_badae 120 "" "^psl: storage: bad value for --anti-entropy-ms: '1s'" -- storage \
    --listen tcp://127.0.0.1:1 --data "$tmp/st" --anti-entropy-ms 1s
check channel_badwin 120 "" "^psl: bench channel: bad value for --window: '0'" -- bench channel \
    --window 0
check capsule_badwriters 120 "" "^psl: bench capsule: bad value for --writers: '-2'" -- bench \
    capsule --writers -2

# A wasi-libc program: args, environment, clocks, sleep, random, no file system, stdin, status.
n=$((n + 1))
printf 'request body' | "$psl" run --env GREETING=hi --env EMPTY= "$dir/wasi_probe.wasm" "two words" 7 \
    >"$tmp/out" 2>"$tmp/err"
st=$?
cat >"$tmp/want" <<'WANT'
arg 1: two words
arg 2: 7
env: GREETING=hi
env: EMPTY=
slept 20 ms: yes
wall clock after 2020: yes
random: yes
open /etc/passwd: refused
lseek stdin: ESPIPE
stdin: 12 bytes: request body
WANT
if [ "$st" -eq 7 ] && cmp -s "$tmp/out" "$tmp/want" && [ "$(cat "$tmp/err")" = "stderr works" ]; then
    echo "ok   wasi_probe"
else
    echo "FAIL wasi_probe: status $st (want 7); stdout/stderr differ:"
    diff "$tmp/want" "$tmp/out"
    cat "$tmp/err"
    fails=$((fails + 1))
fi

# Cluster commands with no cluster to talk to: one line naming the problem, exit 127, no crash.
nc="^psl: no cluster found"
check deploy_no_cluster 127 "" "$nc" -- deploy f "$dir/exit3.wasm" --dir "$tmp/none"
check list_no_cluster 127 "" "$nc" -- list --dir "$tmp/none"
check remove_no_cluster 127 "" "$nc" -- remove f --dir "$tmp/none"
check logs_no_cluster 127 "" "$nc" -- logs f --dir "$tmp/none"
check kv_no_cluster 127 "" "$nc" -- kv get k --dir "$tmp/none"
check invoke_no_cluster 127 "" "$nc" -- invoke f --data x --dir "$tmp/none"
# psl identity: a 32-byte seed file, the same key printed each time, a damaged file refused.
n=$((n + 1))
k1=$("$psl" identity "$tmp/id" 2>/dev/null)
k2=$("$psl" identity "$tmp/id" 2>/dev/null)
if echo "$k1" | grep -Eq '^client_key: [0-9a-f]{64}$' && [ "$k1" = "$k2" ] &&
    [ "$(wc -c <"$tmp/id")" -eq 32 ]; then
    echo "ok   identity"
else
    echo "FAIL identity: '$k1' then '$k2', $(wc -c <"$tmp/id") bytes"
    fails=$((fails + 1))
fi
printf 'short' >"$tmp/badid"
check identity_bad 120 "" "expected a 32-byte seed file" -- identity "$tmp/badid"

# SIGINT stops a spinning guest cleanly with status 130.
n=$((n + 1))
"$psl" run --invoke spin "$dir/invoke.wasm" 2>"$tmp/err" &
pid=$!
sleep 0.3
kill -INT "$pid"
wait "$pid"
st=$?
if [ "$st" -eq 130 ] && grep -q '^psl: interrupted' "$tmp/err"; then
    echo "ok   sigint"
else
    echo "FAIL sigint: status $st, stderr: $(cat "$tmp/err")"
    fails=$((fails + 1))
fi

# psl COMMAND --help prints that command's usage on stdout and exits 0, for every command (the
# cluster commands' option parser used to take --help for an option missing its value).
for c in $("$psl" --help | sed -n '/^commands:/,$p' | awk '/^  [a-z]/ {print $1}'); do
    n=$((n + 1))
    if "$psl" "$c" --help >"$tmp/out" 2>"$tmp/err" && grep -q "usage: psl $c" "$tmp/out" &&
        [ ! -s "$tmp/err" ]; then
        :
    else
        echo "FAIL $c --help: status or output: $(head -c 200 "$tmp/out" "$tmp/err")"
        fails=$((fails + 1))
    fi
done
echo "ok   COMMAND --help for every command"

echo "$((n - fails)) of $n psl run checks passed"
[ "$fails" -eq 0 ]
