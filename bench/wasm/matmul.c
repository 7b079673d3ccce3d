/* Benchmark kernel: dense double-precision matrix multiply C = A * B (i-k-j loop order), repeated
 * REPS times with C fed back into A, then a checksum of C. Usage: matmul [N] [REPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345u;

static double rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (double)(rng_state % 2001u) / 1000.0 - 1.0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 256;
    int reps = argc > 2 ? atoi(argv[2]) : 64;
    if (n < 1 || n > 2048 || reps < 1)
        return 2;
    size_t nn = (size_t)n * (size_t)n;
    double *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c)
        return 1;
    for (size_t i = 0; i < nn; i++)
        a[i] = rnd();
    for (size_t i = 0; i < nn; i++)
        b[i] = rnd();
    for (int r = 0; r < reps; r++) {
        memset(c, 0, nn * sizeof *c);
        for (int i = 0; i < n; i++) {
            double *ci = c + (size_t)i * (size_t)n;
            for (int k = 0; k < n; k++) {
                double aik = a[(size_t)i * (size_t)n + (size_t)k];
                const double *bk = b + (size_t)k * (size_t)n;
                for (int j = 0; j < n; j++)
                    ci[j] += aik * bk[j];
            }
        }
        /* Normalise so values stay bounded, then feed C back as A. */
        double maxabs = 0;
        for (size_t i = 0; i < nn; i++) {
            double v = c[i] < 0 ? -c[i] : c[i];
            if (v > maxabs)
                maxabs = v;
        }
        for (size_t i = 0; i < nn; i++)
            a[i] = c[i] / maxabs;
    }
    double sum = 0, wsum = 0;
    for (size_t i = 0; i < nn; i++) {
        sum += c[i];
        wsum += c[i] * (double)(i % 7 + 1);
    }
    printf("matmul n=%d reps=%d: sum=%.6e wsum=%.6e c[0]=%.9e\n", n, reps, sum, wsum, c[0]);
    free(a);
    free(b);
    free(c);
    return 0;
}
