#!/usr/bin/env bash
# Compute-kernel benchmark of the psl WebAssembly engine against native code and V8.
#
# Builds every kernel in this folder natively (gcc -O2, against glibc; and, when musl-gcc is
# installed, gcc -O2 against musl, the C library wasi-libc is derived from) and to wasm32-wasi
# (clang-19 -O2), runs each one BENCH_RUNS times per column (in rounds of one run of every
# column, the columns side by side), and prints a Markdown table of median wall-clock seconds,
# the ratio of each column to native, the geometric mean of the ratios (and, with a native-musl
# column, a second geometric mean against it), and whether every column printed the same
# checksum line as native. Exit status: 0 when every run succeeded and every
# output agreed, 1 otherwise.
#
# Usage: bench/wasm/run.sh [--quick] [--list] [KERNEL_REGEX...]
#   --quick          small inputs, 1 run, columns native+psl: a correctness check (used by ctest)
#   --osr            inputs that run 25-200 ms under the auto tier, 1 run, columns native+psl-auto,
#                    no code cache, the JIT loaded at once (PSL_JIT_LAZY_MS=0): every kernel's long
#                    loop reaches compiled code through an OSR entry, specialised to its frame
#                    (used by ctest: the outputs must agree)
#   --list           print the kernel names and exit
#   KERNEL_REGEX     only kernels whose name matches one of these (also: BENCH_FILTER=regex)
# Environment:
#   BENCH_RUNS=N       runs per cell (default 5; the median is reported)
#   BENCH_COLUMNS="…"  columns to run (default: native [native-musl] [wasm2c] psl [psl-TIER for
#                      each PSL_TIERS] node). native-musl: the kernel built by musl-gcc -O2 (static);
#                      printf, memcpy and malloc are then musl's, as in the wasm build, where
#                      native runs glibc's (expr spends half its time in snprintf).
#                      wasm2c: the kernel's .wasm translated to C by wabt's wasm2c and compiled by
#                      gcc -O2 beforehand (host: wasm2c/host.c): the wasm build run as native
#                      code compiled ahead of time, no engine and no compile time counted
#   PSL_TIERS="a b"    adds a column psl-a running `psl run --tier a` (and so on)
#   BENCH_JIT_CACHE=0  the psl-TIER columns run with --no-cache: every run compiles (the JIT's
#                      compile time is then part of each measured wall time)
#   BENCH_TIMEOUT=S    kill a run after S seconds (default 600)
#   BUILD=dir          CMake build folder with psl and examples (default build)
#   PSL, NODE, CC_NATIVE, CC_MUSL, CC_WASM, BENCH_OUT   tools and the output folder
#   BENCH_SNAPSHOT=0   time $PSL in place instead of a copy taken at the start
#   BENCH_DETAILS=0    skip the second table: one more (untimed) run per cell that reports peak
#                      resident memory (/usr/bin/time) and, for psl-TIER columns, the JIT's
#                      compile time (PSL_JIT_STATS=1: the sum of its compilations, their count,
#                      and when the last one was linked)
#
# Adding a column: add a case to column_cmd below (and a name to BENCH_COLUMNS).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PSL=${PSL:-$BUILD/psl}
BENCH_OUT=${BENCH_OUT:-$BUILD/bench/wasm}
NODE=${NODE:-$(command -v node || true)}
CC_NATIVE=${CC_NATIVE:-gcc}
CC_MUSL=${CC_MUSL:-$(command -v musl-gcc || true)}
CC_WASM=${CC_WASM:-clang-19}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}
QUICK=0
OSR=0
FILTERS=()

# Kernels: name, then the arguments of a --quick run (the defaults are the timed sizes).
declare -A QUICK_ARGS=(
    [expr]="300"
    [fannkuch]="7 1"
    [hashmap]="100000"
    [lz]="100000 1"
    [mandelbrot]="120 64"
    [matmul]="40 2"
    [nbody]="20000"
    [sha256]="2"
    [sieve]="200000 1"
    [sort]="20000 1"
)
# --osr: each run long enough under --tier auto for an OSR entry of its main loop (checked with
# PSL_JIT_STATS=1 on the lead's machine: one entry per kernel).
declare -A OSR_ARGS=(
    [expr]="3000"
    [fannkuch]="9 1"
    [hashmap]="400000"
    [lz]="600000 2"
    [mandelbrot]="300 64"
    [matmul]="128 4"
    [nbody]="100000"
    [sha256]="10"
    [sieve]="4000000 2"
    [sort]="100000 1"
)
KERNELS=()
for src in "$HERE"/*.c; do
    KERNELS+=("$(basename "$src" .c)")
done

for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    --osr)
        QUICK=1
        OSR=1
        ;;
    --list)
        printf '%s\n' "${KERNELS[@]}"
        exit 0
        ;;
    -h | --help)
        sed -n '2,/^# Adding a column/p' "$0"
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $arg" >&2
        exit 2
        ;;
    *) FILTERS+=("$arg") ;;
    esac
done
if [ -n "${BENCH_FILTER:-}" ]; then FILTERS+=("$BENCH_FILTER"); fi

if [ "$OSR" = 1 ]; then
    RUNS=${BENCH_RUNS:-1}
    COLUMNS=${BENCH_COLUMNS:-native psl-auto}
    BENCH_JIT_CACHE=0
    export PSL_JIT_LAZY_MS=0
elif [ "$QUICK" = 1 ]; then
    RUNS=${BENCH_RUNS:-1}
    COLUMNS=${BENCH_COLUMNS:-native psl}
else
    RUNS=${BENCH_RUNS:-5}
    if [ -z "${BENCH_COLUMNS:-}" ]; then
        COLUMNS="native"
        if [ -n "$CC_MUSL" ]; then COLUMNS="$COLUMNS native-musl"; fi
        if command -v wasm2c >/dev/null; then COLUMNS="$COLUMNS wasm2c"; fi
        COLUMNS="$COLUMNS psl"
        for t in ${PSL_TIERS:-}; do COLUMNS="$COLUMNS psl-$t"; done
        if [ -n "$NODE" ]; then COLUMNS="$COLUMNS node"; fi
    else
        COLUMNS=$BENCH_COLUMNS
    fi
fi
read -r -a COLS <<<"$COLUMNS"

selected() {
    [ ${#FILTERS[@]} -eq 0 ] && return 0
    local f
    for f in "${FILTERS[@]}"; do
        [[ $1 =~ $f ]] && return 0
    done
    return 1
}

# column_cmd COLUMN KERNEL: prints nothing, sets CMD (an array) to the command to run.
column_cmd() {
    local col=$1 k=$2
    case "$col" in
    native) CMD=("$BENCH_OUT/$k") ;;
    native-musl) CMD=("$BENCH_OUT/$k.musl") ;;
    wasm2c) CMD=("$BENCH_OUT/$k.w2c") ;;
    psl) CMD=("$PSL" run "$BENCH_OUT/$k.wasm") ;;
    psl-*)
        CMD=("$PSL" run --tier "${col#psl-}")
        [ "${BENCH_JIT_CACHE:-1}" = 0 ] && CMD+=(--no-cache)
        CMD+=("$BENCH_OUT/$k.wasm")
        ;;
    node) CMD=("$NODE" --no-warnings "$HERE/node_wasi.mjs" "$BENCH_OUT/$k.wasm") ;;
    *)
        echo "run.sh: unknown column $col" >&2
        exit 2
        ;;
    esac
}

# ---- build the kernels (only what is out of date) ----
mkdir -p "$BENCH_OUT"
build_failed=0
for k in "${KERNELS[@]}"; do
    selected "$k" || continue
    src=$HERE/$k.c
    if [ ! -x "$BENCH_OUT/$k" ] || [ "$src" -nt "$BENCH_OUT/$k" ]; then
        "$CC_NATIVE" -O2 -std=c17 -Wall -Wextra -o "$BENCH_OUT/$k" "$src" -lm || build_failed=1
    fi
    if [[ " ${COLS[*]} " == *" native-musl "* ]] &&
        { [ ! -x "$BENCH_OUT/$k.musl" ] || [ "$src" -nt "$BENCH_OUT/$k.musl" ]; }; then
        if [ -z "$CC_MUSL" ]; then
            echo "run.sh: column native-musl needs musl-gcc (Debian package musl-tools) or CC_MUSL" >&2
            exit 2
        fi
        "$CC_MUSL" -O2 -std=c17 -Wall -Wextra -static -o "$BENCH_OUT/$k.musl" "$src" -lm ||
            build_failed=1
    fi
    if [ ! -f "$BENCH_OUT/$k.wasm" ] || [ "$src" -nt "$BENCH_OUT/$k.wasm" ]; then
        "$CC_WASM" --target=wasm32-wasi -O2 -std=c17 -Wall -Wextra -o "$BENCH_OUT/$k.wasm" "$src" ||
            build_failed=1
    fi
    if [[ " ${COLS[*]} " == *" wasm2c "* ]] &&
        { [ ! -x "$BENCH_OUT/$k.w2c" ] || [ "$BENCH_OUT/$k.wasm" -nt "$BENCH_OUT/$k.w2c" ] ||
            [ "$HERE/wasm2c/host.c" -nt "$BENCH_OUT/$k.w2c" ]; }; then
        w2c=$BENCH_OUT/w2c/$k
        mkdir -p "$w2c"
        { wasm2c -n kernel "$BENCH_OUT/$k.wasm" -o "$w2c/kernel.c" &&
            "$CC_NATIVE" -O2 -I"$w2c" -o "$BENCH_OUT/$k.w2c" "$w2c/kernel.c" "$HERE/wasm2c/host.c" \
                -lwasm-rt-impl -lm; } || build_failed=1
    fi
done
if [ "$build_failed" = 1 ]; then
    echo "run.sh: building the kernels failed" >&2
    exit 1
fi

# Time a private copy of psl: other people rebuilding build/ during a long run would otherwise
# swap the binary under the benchmark (or make it briefly unexecutable). BENCH_SNAPSHOT=0 skips it.
if [ "$QUICK" = 0 ] && [ "${BENCH_SNAPSHOT:-1}" != 0 ] && [ -x "$PSL" ]; then
    cp "$PSL" "$BENCH_OUT/psl.snapshot.$$" && mv -f "$BENCH_OUT/psl.snapshot.$$" "$BENCH_OUT/psl"
    # The JIT tiers load psljit.so from beside the executable: copy it along.
    if [ -f "$(dirname "$PSL")/psljit.so" ]; then
        cp "$(dirname "$PSL")/psljit.so" "$BENCH_OUT/psljit.so.$$" &&
            mv -f "$BENCH_OUT/psljit.so.$$" "$BENCH_OUT/psljit.so"
    fi
    echo "(timing a copy of $PSL taken at $(date -u +%Y-%m-%dT%H:%M:%SZ): $BENCH_OUT/psl)"
    PSL=$BENCH_OUT/psl
fi

# ---- run ----
now_us() {
    local t=${EPOCHREALTIME/./}
    echo "$t"
}

# median of the numbers on stdin
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run_kernel KERNEL ARGS...: runs every column RUNS times, one run of each column per round
# (alternating the order from round to round), so that a slow phase of a shared host touches the
# columns alike; then CELL_TIMES[col] holds the median seconds or "fail" (CELL_ERRS[col] why),
# and $tmp/out.COLUMN the first run's stdout.
declare -A CELL_TIMES CELL_ERRS
run_kernel() {
    local k=$1
    shift
    local -A times=()
    local i c t0 t1 rc order
    CELL_TIMES=()
    CELL_ERRS=()
    for ((i = 0; i < RUNS; i++)); do
        if ((i % 2)); then
            order=()
            for ((c = ${#COLS[@]} - 1; c >= 0; c--)); do order+=("${COLS[c]}"); done
        else
            order=("${COLS[@]}")
        fi
        for c in "${order[@]}"; do
            [ "${CELL_TIMES[$c]:-}" = fail ] && continue
            column_cmd "$c" "$k"
            local out=$tmp/out.$c
            [ "$i" -gt 0 ] && out=$tmp/out.rerun
            t0=$(now_us)
            timeout "$BENCH_TIMEOUT" "${CMD[@]}" "$@" >"$out" 2>"$tmp/err" </dev/null
            rc=$?
            t1=$(now_us)
            if [ "$rc" -ne 0 ]; then
                CELL_TIMES[$c]=fail
                CELL_ERRS[$c]="exit status $rc: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
                continue
            fi
            times[$c]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e6 }') "
        done
    done
    for c in "${COLS[@]}"; do
        [ "${CELL_TIMES[$c]:-}" = fail ] && continue
        CELL_TIMES[$c]=$(printf '%s\n' ${times[$c]} | median)
    done
}

declare -A RATIO_LOG_SUM RATIO_COUNT MUSL_LOG_SUM
header="| kernel |"
rule="|---|"
for c in "${COLS[@]}"; do
    header="$header $c s |"
    rule="$rule---:|"
    if [ "$c" != native ]; then
        header="$header $c/native |"
        rule="$rule---:|"
    fi
    RATIO_LOG_SUM[$c]=0
    RATIO_COUNT[$c]=0
    MUSL_LOG_SUM[$c]=0
done
HAVE_MUSL=0
[[ " ${COLS[*]} " == *" native-musl "* ]] && [[ " ${COLS[*]} " == *" native "* ]] && HAVE_MUSL=1
header="$header output |"
rule="$rule---|"

mode="median of $RUNS run(s)"
[ "$QUICK" = 1 ] && mode="quick check, small inputs"
[ "$OSR" = 1 ] && mode="OSR check: --tier auto, JIT loaded at once, no cache"
echo "psl wasm kernels: wall-clock seconds, $mode; ratio = column / native"
echo
echo "$header"
echo "$rule"

status=0
mismatches=()
failures=()
for k in "${KERNELS[@]}"; do
    selected "$k" || continue
    args=()
    if [ "$OSR" = 1 ]; then
        read -r -a args <<<"${OSR_ARGS[$k]:-}"
    elif [ "$QUICK" = 1 ]; then
        read -r -a args <<<"${QUICK_ARGS[$k]:-}"
    fi
    row="| $k |"
    native_time=""
    musl_time=""
    reference=""
    agree=yes
    run_kernel "$k" "${args[@]}"
    for c in "${COLS[@]}"; do
        CELL_TIME=${CELL_TIMES[$c]}
        if [ "$CELL_TIME" = fail ]; then
            status=1
            failures+=("$k/$c: ${CELL_ERRS[$c]}")
            row="$row fail |"
            [ "$c" != native ] && row="$row - |"
            agree=no
            continue
        fi
        out=$(cat "$tmp/out.$c")
        if [ -z "$reference" ]; then
            reference=$out
        elif [ "$out" != "$reference" ]; then
            agree=no
            status=1
            mismatches+=("$k/$c printed: $out" "$k expected: $reference")
        fi
        row="$row $(printf '%.3f' "$CELL_TIME") |"
        if [ "$c" = native-musl ]; then musl_time=$CELL_TIME; fi
        if [ -n "$musl_time" ] && [ "$c" != native ]; then
            MUSL_LOG_SUM[$c]=$(awk -v s="${MUSL_LOG_SUM[$c]}" -v a="$CELL_TIME" -v b="$musl_time" \
                'BEGIN { printf "%.9f", s + log(a / b) }')
        fi
        if [ "$c" = native ]; then
            native_time=$CELL_TIME
        elif [ -n "$native_time" ]; then
            ratio=$(awk -v a="$CELL_TIME" -v b="$native_time" 'BEGIN { printf "%.2f", a / b }')
            row="$row ${ratio}x |"
            RATIO_LOG_SUM[$c]=$(awk -v s="${RATIO_LOG_SUM[$c]}" -v a="$CELL_TIME" -v b="$native_time" \
                'BEGIN { printf "%.9f", s + log(a / b) }')
            RATIO_COUNT[$c]=$((RATIO_COUNT[$c] + 1))
        else
            row="$row - |"
        fi
    done
    if [ "$agree" = yes ]; then row="$row ok |"; else row="$row MISMATCH |"; fi
    echo "$row"
done

# geomean_row LABEL SUMS MARK BASE: a row of exp(mean of the logs in the associative array SUMS)
# per column, MARK around each figure; the columns native and BASE get none.
geomean_row() {
    local -n sums=$2
    local row="| $1 |" c gm
    for c in "${COLS[@]}"; do
        row="$row |"
        [ "$c" = native ] && continue
        if [ "$c" != "$4" ] && [ "${RATIO_COUNT[$c]}" -gt 0 ]; then
            gm=$(awk -v s="${sums[$c]}" -v n="${RATIO_COUNT[$c]}" 'BEGIN { printf "%.2f", exp(s / n) }')
            row="$row $3${gm}x$3 |"
        else
            row="$row - |"
        fi
    done
    echo "$row |"
}
geomean_row "geometric mean" RATIO_LOG_SUM "**" native
if [ "$HAVE_MUSL" = 1 ]; then
    geomean_row "geometric mean / native-musl" MUSL_LOG_SUM "" native-musl
fi
echo

# Cold start: a hello-world run, which is what a serverless invocation pays first.
hello=$BUILD/examples/hello.wasm
if [ "$QUICK" = 0 ] && [ -f "$hello" ]; then
    line="cold start, hello world (median of 20):"
    for c in "${COLS[@]}"; do
        [[ $c == native* || $c == wasm2c ]] && continue
        column_cmd "$c" hello
        CMD[${#CMD[@]} - 1]=$hello
        times=()
        ok=1
        for ((i = 0; i < 20; i++)); do
            t0=$(now_us)
            "${CMD[@]}" >/dev/null 2>&1 </dev/null || ok=0
            t1=$(now_us)
            times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e3 }')")
        done
        if [ "$ok" = 1 ]; then
            line="$line $c $(printf "%.2f" "$(printf "%s\n" "${times[@]}" | median)") ms;"
        else
            line="$line $c fail;"
        fi
    done
    echo "${line%;}"
    echo
fi

# Compile time and peak memory: one more run per cell (untimed, so that neither /usr/bin/time
# nor the statistics touch the wall times above).
if [ "$QUICK" = 0 ] && [ "${BENCH_DETAILS:-1}" != 0 ]; then
    if [ ! -x /usr/bin/time ]; then
        echo "(no /usr/bin/time, Debian package time: no peak-memory table; scripts/deps.sh installs it)"
    else
        echo "peak resident memory (MiB) and JIT compile time (ms: sum of compilations (count), linked at ms after start; - = none, e.g. a warm cache), one more run per cell:"
        echo
        header="| kernel |"
        rule="|---|"
        for c in "${COLS[@]}"; do
            header="$header $c MiB |"
            rule="$rule---:|"
        done
        for c in "${COLS[@]}"; do
            [[ $c == psl-* ]] || continue
            header="$header $c compile |"
            rule="$rule---:|"
        done
        echo "$header"
        echo "$rule"
        for k in "${KERNELS[@]}"; do
            selected "$k" || continue
            row="| $k |"
            comp=""
            for c in "${COLS[@]}"; do
                column_cmd "$c" "$k"
                if PSL_JIT_STATS=1 /usr/bin/time -f "%M" -o "$tmp/rss" timeout "$BENCH_TIMEOUT" \
                    "${CMD[@]}" >/dev/null 2>"$tmp/stats" </dev/null; then
                    row="$row $(awk '{ v = $1 } END { printf "%.1f", v / 1024 }' "$tmp/rss") |"
                else
                    row="$row fail |"
                fi
                [[ $c == psl-* ]] || continue
                comp="$comp $(awk '/psl: jit: compiled / {
                        for (i = 1; i < NF; i++) {
                            if ($i == "in") { t += $(i + 1); n++ }
                            if ($i == "linked") at = $(i + 1)
                        }
                    }
                    END { if (n) printf "%.0f (%d), at %.0f", t, n, at; else printf "-" }' "$tmp/stats") |"
            done
            echo "$row$comp"
        done
        echo
    fi
fi

for f in "${failures[@]}"; do echo "FAILED: $f"; done
for m in "${mismatches[@]}"; do echo "MISMATCH: $m"; done
if [ "$status" = 0 ]; then
    echo "all outputs agree (${COLS[*]})"
else
    echo "some runs failed or disagreed"
fi
exit "$status"
