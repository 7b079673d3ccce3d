#!/bin/sh
# Rebuild the seed corpus of fuzz_wasm (tests/fuzz/corpus) from the WebAssembly core spec test
# data (Apache-2.0, github.com/WebAssembly/testsuite, converted by wabt; see
# ../shared/wasm-spectest/README.md) and the example functions of build/examples.
# Usage: tests/fuzz/make_corpus.sh [SPECTEST_CORE_DIR] [EXAMPLES_DIR]
# From every spec file it keeps up to PER_FILE modules of at most MAX_BYTES, spread over the
# file's module numbers, so each feature the suite covers seeds the fuzzer without the corpus
# growing past ~2 MB. The choice is deterministic: rerunning gives the same files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
core=${1:-$here/../../../shared/wasm-spectest/core}
examples=${2:-$here/../../build/examples}
out=$here/corpus
PER_FILE=${PER_FILE:-4}
MAX_BYTES=${MAX_BYTES:-8192}

mkdir -p "$out"
rm -f "$out"/spec-*.wasm "$out"/example-*.wasm
for dir in "$core"/*/; do
    name=$(basename "$dir")
    # Module numbers of this file whose binary is small enough, in numeric order.
    list=$(find "$dir" -maxdepth 1 -name "$name.*.wasm" -size -"$((MAX_BYTES + 1))"c \
        | sed "s|.*/$name\.\([0-9]*\)\.wasm|\1|" | sort -n)
    n=$(printf '%s\n' "$list" | grep -c . || true)
    [ "$n" -gt 0 ] || continue
    # Pick indices 0, n/k, 2n/k, ... so early (valid) and late (often invalid) modules both appear.
    k=$PER_FILE
    [ "$n" -lt "$k" ] && k=$n
    i=0
    while [ "$i" -lt "$k" ]; do
        pos=$((i * n / k + 1))
        num=$(printf '%s\n' "$list" | sed -n "${pos}p")
        cp "$dir/$name.$num.wasm" "$out/spec-$name.$num.wasm"
        i=$((i + 1))
    done
done
# The examples are WASI commands built by clang-19: larger, realistic code with a data section.
for f in "$examples"/*.wasm; do
    [ -f "$f" ] && cp "$f" "$out/example-$(basename "$f")"
done
echo "$(ls "$out" | wc -l) files, $(du -sk "$out" | cut -f1) KiB in $out"
