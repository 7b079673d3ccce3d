/* Benchmark kernel: fannkuch-redux. For every permutation of 1..N (in the order the counting
 * method generates them) count the prefix reversals until 1 comes first; print the checksum
 * (alternating sum of flip counts) and the maximum; REPS repeats the whole run.
 * Usage: fannkuch [N] [REPS] */
#include <stdio.h>
#include <stdlib.h>

static void fannkuch(int n, int *checksum_out, int *maxflips_out) {
    int perm[16], perm1[16], count[16];
    for (int i = 0; i < n; i++)
        perm1[i] = i;
    int checksum = 0, maxflips = 0, r = n;
    long index = 0;
    for (;;) {
        for (; r != 1; r--)
            count[r - 1] = r;
        for (int i = 0; i < n; i++)
            perm[i] = perm1[i];
        int flips = 0;
        for (int k = perm[0]; k != 0; k = perm[0]) {
            for (int i = 0, j = k; i < j; i++, j--) {
                int t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            flips++;
        }
        if (flips > maxflips)
            maxflips = flips;
        checksum += (index & 1) ? -flips : flips;
        index++;
        /* Next permutation: rotate the first r+1 elements until a counter is not exhausted. */
        for (;;) {
            if (r == n) {
                *checksum_out = checksum;
                *maxflips_out = maxflips;
                return;
            }
            int p0 = perm1[0];
            for (int i = 0; i < r; i++)
                perm1[i] = perm1[i + 1];
            perm1[r] = p0;
            if (--count[r] > 0)
                break;
            r++;
        }
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 3 || n > 12 || reps < 1)
        return 2;
    int checksum = 0, maxflips = 0;
    for (int r = 0; r < reps; r++)
        fannkuch(n, &checksum, &maxflips);
    printf("fannkuch n=%d: checksum %d, max flips %d\n", n, checksum, maxflips);
    return 0;
}
