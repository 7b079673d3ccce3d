/* Open-addressing byte-key hash map; see map.h. */
#include "base/map.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t map_hash(uint64_t seed, const void *key, size_t len) {
    const uint8_t *p = key;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w) * 0x9e3779b97f4a7c15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = mix(h ^ w ^ ((uint64_t)len << 56));
    return h ? h : 1;
}

void map_init(map *m) {
    memset(m, 0, sizeof *m);
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)m << 7) ^
                  __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
}

void map_fini(map *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static map_slot *find(const map *m, uint64_t h, const void *key, size_t klen) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        map_slot *s = &m->slots[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

static void grow(map *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    map_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = xcalloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].hash)
            *find(m, old[i].hash, old[i].key, old[i].klen) = old[i];
    free(old);
}

void *map_get(const map *m, const void *key, size_t klen) {
    if (!m->n)
        return NULL;
    map_slot *s = find(m, map_hash(m->seed, key, klen), key, klen);
    return s->hash ? s->val : NULL;
}

void *map_put(map *m, const void *key, size_t klen, void *val) {
    if ((m->n + 1) * 4 > m->cap * 3)
        grow(m);
    uint64_t h = map_hash(m->seed, key, klen);
    map_slot *s = find(m, h, key, klen);
    void *prev = s->hash ? s->val : NULL;
    if (!s->hash)
        m->n++;
    s->hash = h;
    s->key = key;
    s->klen = klen;
    s->val = val;
    return prev;
}

void *map_del(map *m, const void *key, size_t klen) {
    if (!m->n)
        return NULL;
    map_slot *s = find(m, map_hash(m->seed, key, klen), key, klen);
    if (!s->hash)
        return NULL;
    void *val = s->val;
    size_t mask = m->cap - 1, i = (size_t)(s - m->slots);
    /* Backward-shift: pull later entries of the probe run into the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t want = m->slots[j].hash & mask;
        if (((j - want) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].hash = 0;
    m->n--;
    return val;
}

void *map_next(const map *m, size_t *it) {
    while (*it < m->cap) {
        map_slot *s = &m->slots[(*it)++];
        if (s->hash)
            return s->val;
    }
    return NULL;
}
