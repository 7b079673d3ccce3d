/* A compute kernel: counts the primes below N (default 1000000) with a sieve of Eratosthenes and
 * prints the count, the largest prime and a checksum over all of them.
 * Usage: psl run primes.wasm [N]   (2 <= N <= 100000000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    if (n < 2 || n > 100000000) {
        fprintf(stderr, "primes: N must be in [2, 100000000]\n");
        return 2;
    }
    uint8_t *composite = calloc((size_t)n, 1);
    if (!composite) {
        fprintf(stderr, "primes: out of memory\n");
        return 1;
    }
    long count = 0, largest = 0;
    uint32_t sum = 0;
    for (long i = 2; i < n; i++) {
        if (composite[i])
            continue;
        count++;
        largest = i;
        sum = sum * 31u + (uint32_t)i;
        if (i > (n - 1) / i)
            continue; /* i * i >= n; also keeps i * i from overflowing a 32-bit long */
        for (long j = i * i; j < n; j += i)
            composite[j] = 1;
    }
    free(composite);
    printf("primes below %ld: %ld (largest %ld, checksum %08x)\n", n, count, largest, sum);
    return 0;
}
