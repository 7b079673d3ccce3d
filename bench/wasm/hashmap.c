/* Benchmark kernel: an open-addressing hash map (linear probing, backward-shift deletion) from
 * 64-bit keys to 32-bit values, with a workload of inserts, lookups (hits and misses), updates and
 * deletes driven by a pseudo-random sequence; prints counts and a checksum.
 * Usage: hashmap [OPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    uint64_t *keys; /* 0 = empty slot; key 0 is never used */
    uint32_t *vals;
    uint32_t mask, count;
} map;

static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static int map_init(map *m, uint32_t cap_pow2) {
    m->mask = cap_pow2 - 1;
    m->count = 0;
    m->keys = calloc(cap_pow2, sizeof *m->keys);
    m->vals = calloc(cap_pow2, sizeof *m->vals);
    return m->keys && m->vals ? 0 : -1;
}

static int map_grow(map *m) {
    map n;
    if (map_init(&n, (m->mask + 1) * 2))
        return -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->keys[i])
            continue;
        uint32_t j = (uint32_t)mix(m->keys[i]) & n.mask;
        while (n.keys[j])
            j = (j + 1) & n.mask;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.count++;
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

static int map_put(map *m, uint64_t k, uint32_t v) {
    if ((m->count + 1) * 4 > (m->mask + 1) * 3 && map_grow(m))
        return -1;
    uint32_t i = (uint32_t)mix(k) & m->mask;
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & m->mask;
    if (!m->keys[i]) {
        m->keys[i] = k;
        m->count++;
    }
    m->vals[i] = v;
    return 0;
}

static uint32_t *map_get(map *m, uint64_t k) {
    uint32_t i = (uint32_t)mix(k) & m->mask;
    while (m->keys[i]) {
        if (m->keys[i] == k)
            return &m->vals[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

static int map_del(map *m, uint64_t k) {
    uint32_t i = (uint32_t)mix(k) & m->mask;
    while (m->keys[i] != k) {
        if (!m->keys[i])
            return 0;
        i = (i + 1) & m->mask;
    }
    /* Backward-shift: move later entries of the same cluster into the hole when allowed. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & m->mask; m->keys[j]; j = (j + 1) & m->mask) {
        uint32_t home = (uint32_t)mix(m->keys[j]) & m->mask;
        /* j's entry may move to hole if home is not in (hole, j] cyclically */
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->count--;
    return 1;
}

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 20000000;
    map m;
    if (map_init(&m, 1024))
        return 1;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint32_t hits = 0, misses = 0, dels = 0, check = 0;
    for (long i = 0; i < ops; i++) {
        x ^= x << 7;
        x ^= x >> 9;
        /* keys from a bounded universe so that lookups hit about half the time */
        uint64_t k = (x % 1500000) + 1;
        switch ((x >> 40) % 8) {
        case 0:
        case 1:
        case 2:
            if (map_put(&m, k, (uint32_t)i))
                return 1;
            break;
        case 3: dels += (uint32_t)map_del(&m, k); break;
        default: {
            uint32_t *v = map_get(&m, k);
            if (v) {
                hits++;
                check = check * 31u + *v;
                *v += 1;
            } else {
                misses++;
            }
        }
        }
    }
    printf("hashmap ops=%ld: size %u, hits %u, misses %u, deletes %u, checksum %08x\n", ops,
           m.count, hits, misses, dels, check);
    free(m.keys);
    free(m.vals);
    return 0;
}
