/* Benchmark kernel: sorts N pseudo-random 32-bit keys with an introspective quicksort
 * (median-of-three, insertion sort for small ranges) and a copy with heapsort; checks both are
 * sorted and equal, and prints a checksum. Usage: sort [N] [REPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void insertion(uint32_t *a, long lo, long hi) {
    for (long i = lo + 1; i <= hi; i++) {
        uint32_t v = a[i];
        long j = i - 1;
        while (j >= lo && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void swap(uint32_t *a, long i, long j) {
    uint32_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static void sift_down(uint32_t *a, long start, long end) {
    long root = start;
    while (2 * root + 1 <= end) {
        long child = 2 * root + 1;
        if (child + 1 <= end && a[child] < a[child + 1])
            child++;
        if (a[root] >= a[child])
            return;
        swap(a, root, child);
        root = child;
    }
}

static void heapsort_range(uint32_t *a, long lo, long hi) {
    uint32_t *b = a + lo;
    long n = hi - lo + 1;
    for (long s = (n - 2) / 2; s >= 0; s--)
        sift_down(b, s, n - 1);
    for (long end = n - 1; end > 0; end--) {
        swap(b, 0, end);
        sift_down(b, 0, end - 1);
    }
}

static void quicksort(uint32_t *a, long lo, long hi, int depth) {
    while (hi - lo > 16) {
        if (depth-- == 0) {
            heapsort_range(a, lo, hi);
            return;
        }
        long mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo])
            swap(a, mid, lo);
        if (a[hi] < a[lo])
            swap(a, hi, lo);
        if (a[hi] < a[mid])
            swap(a, hi, mid);
        uint32_t pivot = a[mid];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j)
                swap(a, i++, j--);
        }
        /* Recurse into the smaller side, loop on the larger: stack depth stays O(log n). */
        if (j - lo < hi - i) {
            quicksort(a, lo, j, depth);
            lo = i;
        } else {
            quicksort(a, i, hi, depth);
            hi = j;
        }
    }
    insertion(a, lo, hi);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 2 || reps < 1)
        return 2;
    uint32_t *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    if (!a || !b)
        return 1;
    uint32_t x = 88172645u, check = 0;
    for (int r = 0; r < reps; r++) {
        for (long i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            /* some duplicates and runs, as real keys have */
            a[i] = (i % 64 == 0) ? a[i / 2] : (x % 4 == 0 ? x >> 8 : x);
        }
        memcpy(b, a, (size_t)n * 4);
        quicksort(a, 0, n - 1, 64);
        heapsort_range(b, 0, n - 1);
        for (long i = 0; i < n; i++) {
            if ((i > 0 && a[i - 1] > a[i]) || a[i] != b[i]) {
                printf("sort: wrong order at %ld\n", i);
                return 1;
            }
            check = check * 31u + a[i] * (uint32_t)(i | 1);
        }
    }
    printf("sort n=%ld: min %u, max %u, checksum %08x\n", n, a[0], a[n - 1], check);
    free(a);
    free(b);
    return 0;
}
