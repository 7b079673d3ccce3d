/* Hybrid logical clock; see hlc.h. */
#include "base/hlc.h"

void hlc_init(hlc *c) {
    atomic_init(&c->last, 0);
}

uint64_t hlc_now(hlc *c, uint64_t wall_ms) {
    uint64_t phys = wall_ms << 16;
    uint64_t old = atomic_load(&c->last), next;
    do {
        /* Physical time moved on: restart the logical counter. Otherwise tick it. */
        next = phys > old ? phys : old + 1;
    } while (!atomic_compare_exchange_weak(&c->last, &old, next));
    return next;
}

void hlc_observe(hlc *c, uint64_t remote) {
    uint64_t old = atomic_load(&c->last);
    while (remote > old && !atomic_compare_exchange_weak(&c->last, &old, remote))
        ;
}
