/* storage: an untrusted DataCapsule replica on LMDB (`psl storage --listen ADDR --data DIR`).
 *
 * The server holds no key. It stores encoded records by (capsule id, seqno) and the writer's
 * signed heads, and it can check everything a keyless party can: record 0 certifies the capsule
 * id and names the writer's public key; every appended record must link to the one before it
 * (capsule id, seqno, prev hash, increasing clock); every append ends with a head that the writer
 * signed. So a forger cannot poison a replica, and a replica cannot forge: clients verify anyway.
 *
 * LMDB layout (one environment in DIR): "recs" (id || seqno big endian -> record), "sigs" (same
 * key -> the 64-byte head signature at each batch end), "heads" (id -> latest signed head, 136
 * bytes). A reply to an append is sent only after the LMDB transaction holding it has committed
 * with a sync (durable). Requests that arrive together are committed in one transaction (group
 * commit), each inside its own nested transaction, so a bad request changes nothing.
 *
 * Anti-entropy (a second thread): every interval it asks each peer for its capsules and heads,
 * and pulls the records it misses, which it checks exactly like an append (not while its own head
 * is advancing: then a writer is feeding it, and pulling the same records would double the work).
 * A scrub walks a capsule's stored chain back from its signed head; a record whose hash does not
 * match (bit rot, a tampered file) is replaced by a copy from a peer whose hash does. When a
 * client sends a scrub hint (a reader found a bad copy here), a full pass runs at once. Otherwise
 * scrubbing is a background pass that resumes where it stopped, hashing at most
 * scrub_bytes_per_s; a capsule's next pass starts STG_SCRUB_PAUSE_NS after its last one ended.
 * (A full pass over every capsule at each interval would cost O(stored bytes) of hashing twice a
 * second and starve the appends.) The first pass starts with the server.
 *
 * Errors: replies carry 0 or a negative code (base/err.h, capsule.h) and a one-line reason; bad
 * input never stops the server. */
#ifndef PSL_STORAGE_STORAGE_H
#define PSL_STORAGE_STORAGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define STG_MAP_DEFAULT ((size_t)256 << 30) /* LMDB map: address space, not disk */
#define STG_SCRUB_RATE (4u << 20) /* bytes of stored records hashed per second by the scrub */
#define STG_SCRUB_PAUSE_NS (60ull * 1000000000u) /* between two background passes of a capsule */

typedef struct stg_opts {
    const char *listen;       /* ZeroMQ endpoint, e.g. tcp://127.0.0.1:7101 */
    const char *data;         /* directory for the LMDB environment (created 0700) */
    const char *const *peers; /* other replicas of the same capsules (anti-entropy) */
    size_t npeers;
    int ae_interval_ms;       /* 0 = 500; < 0 disables periodic anti-entropy (hints still work) */
    size_t map_size;          /* LMDB map size (most the replica holds), 0 = STG_MAP_DEFAULT */
    size_t scrub_bytes_per_s; /* background scrub rate, 0 = STG_SCRUB_RATE */
    bool nosync;              /* benchmarks of the raw limit only: commits are not durable */
    bool verbose;
} stg_opts;

/** Serve until *@p stop becomes non-zero (signal handler) . @return 0, ERR_IO (cannot bind or open
 * the environment; a reason was printed). */
int stg_serve(const stg_opts *o, volatile sig_atomic_t *stop) WARN_UNUSED;

/** Raw limit for benchmarks: put @p n records of @p size bytes in LMDB at @p dir, @p batch per
 * durable transaction. @param[out] secs elapsed wall time. */
int stg_bench_lmdb(const char *dir, size_t n, size_t size, size_t batch, double *secs) WARN_UNUSED;

/* ---- one request at a time, without ZeroMQ (tests and fuzzing) ------------------------------- */
typedef struct stg_db stg_db;
/** Open (create) the LMDB environment of a replica at @p dir, as stg_serve does. @p map_size 0 =
 * 16 GiB. @return 0, ERR_IO or a negative errno. */
int stg_db_open(const char *dir, size_t map_size, bool nosync, stg_db **out) WARN_UNUSED;
/** NULL is fine. */
void stg_db_close(stg_db *d);
/** Delete every capsule. @return 0 or ERR_IO. */
int stg_db_clear(stg_db *d) WARN_UNUSED;
/** Serve one packed CapRequest exactly as a request of stg_serve (decode, check, store in its own
 * committed transaction) and return the packed CapReply. Scrub hints are queued and never run.
 * @param[out] reply malloc'd. @return 0, or ERR_IO when the transaction cannot commit. */
/** Records stored for capsule @p id (record 0 included): what a trim has dropped is not counted.
 * Runs one pass of the background deletion of trimmed records first, when @p drop. */
size_t stg_db_records(stg_db *d, const uint8_t *id, bool drop);
int stg_db_request(stg_db *d, const uint8_t *req, size_t len, uint8_t **reply,
                   size_t *rlen) WARN_UNUSED;

#endif
