/* Hybrid logical clock (Kulkarni et al.): 48 bits of physical milliseconds, 16 bits of logical
 * counter, packed in a uint64_t so that timestamps compare as integers. Invariant: every value
 * returned by hlc_now() is greater than every value previously returned or observed.
 * Thread-safe (lock-free CAS). */
#ifndef PSL_BASE_HLC_H
#define PSL_BASE_HLC_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct hlc {
    _Atomic uint64_t last;
} hlc;

#define HLC_PHYS(t) ((t) >> 16)
#define HLC_LOGICAL(t) ((t)&0xffffu)

void hlc_init(hlc *c);
/* A timestamp for a local event (a write). wall_ms: the physical clock in milliseconds. */
uint64_t hlc_now(hlc *c, uint64_t wall_ms);
/* Merge a timestamp received from a peer, so later local events order after it. */
void hlc_observe(hlc *c, uint64_t remote);

#endif
