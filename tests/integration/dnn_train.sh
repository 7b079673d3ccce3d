#!/bin/sh
# Distributed training end to end on a real local cluster (psl bench dnn, docs/dnn.md): 2 lambdas
# on 2000 Fashion-MNIST training images for 2 epochs, in the synchronous (lock barrier) and the
# asynchronous (Hogwild) mode. Checks that every run completes, the training loss decreases from
# epoch to epoch, and the test accuracy on 1000 test images clearly beats chance (> 60%; chance
# is 10%). Not timed. Exits 77 (skip) when the dataset package is not installed.
# usage: dnn_train.sh PSL EXAMPLES_DIR
set -u
PSL=${1:?} EX=${2:?}
DATA=/usr/share/datasets/fashion-mnist
if [ ! -r "$DATA/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: Debian package dataset-fashion-mnist is not installed (scripts/deps.sh)"
    exit 77
fi
T=$(mktemp -d /tmp/psl-dnn-test.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT INT TERM
FAILS=0
"$PSL" bench dnn --lambdas 2 --mode sync,async --epochs 2 --train 2000 --test 1000 --batch 32 \
    --fn "$EX/dnn.wasm" --csv "$T/dnn.csv" --min-accuracy 0.6 --verbose >"$T/out" 2>&1
rc=$?
cat "$T/out"
if [ $rc -ne 0 ]; then
    echo "FAIL: psl bench dnn exited with $rc"
    exit 1
fi
for mode in sync async; do
    rows=$(grep -c "^$mode,2," "$T/dnn.csv")
    l1=$(awk -F, -v m=$mode '$1 == m && $3 == 1 { print $6 }' "$T/dnn.csv")
    l2=$(awk -F, -v m=$mode '$1 == m && $3 == 2 { print $6 }' "$T/dnn.csv")
    a2=$(awk -F, -v m=$mode '$1 == m && $3 == 2 { print $4 }' "$T/dnn.csv")
    if [ "$rows" -eq 2 ] && awk -v a="$l1" -v b="$l2" 'BEGIN { exit !(b < a) }' &&
        awk -v a="$a2" 'BEGIN { exit !(a > 0.6) }'; then
        echo "ok:   $mode: training loss $l1 -> $l2, test accuracy $a2"
    else
        echo "FAIL: $mode: $rows epochs, training loss $l1 -> $l2, test accuracy $a2"
        FAILS=$((FAILS + 1))
    fi
done
[ $FAILS -eq 0 ]
