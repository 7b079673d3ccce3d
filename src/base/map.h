/* A hash map from byte-string keys to pointers: open addressing, linear probing, backward-shift
 * deletion (no tombstones), seeded hash so untrusted keys cannot be chosen to collide cheaply.
 * The map does not own keys or values: a key must stay valid and unchanged while it is in the map
 * (usually it lives inside the value). Not thread-safe; callers lock. */
#ifndef PSL_BASE_MAP_H
#define PSL_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map_slot {
    uint64_t hash; /* 0 = empty */
    const void *key;
    size_t klen;
    void *val;
} map_slot;

typedef struct map {
    map_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
    uint64_t seed;
} map;

void map_init(map *m);
void map_fini(map *m); /* frees the table only */
void *map_get(const map *m, const void *key, size_t klen);
/* Insert or replace. Returns the previous value for the key, or NULL. */
void *map_put(map *m, const void *key, size_t klen, void *val);
/* Remove. Returns the removed value, or NULL. */
void *map_del(map *m, const void *key, size_t klen);
/* Iterate: start with *it = 0; returns the next value or NULL at the end. The map must not change
 * during iteration. */
void *map_next(const map *m, size_t *it);
uint64_t map_hash(uint64_t seed, const void *key, size_t len);

#endif
