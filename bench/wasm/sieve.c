/* Benchmark kernel: bit-packed sieve of Eratosthenes over odd numbers below N, run REPS times;
 * prints the number of primes and a checksum of their positions. Usage: sieve [N] [REPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000000u;
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 3 || reps < 1)
        return 2;
    /* bit i stands for the odd number 2i+1 */
    uint32_t nbits = n / 2, nwords = (nbits + 31) / 32;
    uint32_t *bits = malloc((size_t)nwords * 4);
    if (!bits)
        return 1;
    uint32_t count = 0, check = 0;
    for (int r = 0; r < reps; r++) {
        memset(bits, 0, (size_t)nwords * 4);
        for (uint32_t i = 1; (2 * i + 1) <= n / (2 * i + 1); i++) {
            if (bits[i >> 5] & (1u << (i & 31)))
                continue;
            uint32_t p = 2 * i + 1;
            for (uint32_t j = (p * p) / 2; j < nbits; j += p)
                bits[j >> 5] |= 1u << (j & 31);
        }
        count = 1; /* the prime 2 */
        check = 2;
        for (uint32_t i = 1; i < nbits; i++) {
            if (!(bits[i >> 5] & (1u << (i & 31)))) {
                count++;
                check = check * 2654435761u + i;
            }
        }
    }
    printf("sieve n=%u: %u primes, checksum %08x\n", n, count, check);
    free(bits);
    return 0;
}
