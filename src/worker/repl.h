/* Replication of a worker's key-value state (DESIGN.md, "State and consistency").
 *
 * Each worker is the single writer of its own DataCapsule (named "psl-worker-ID"). Its local
 * writes are taken from the memtable as encoded batches (kvs_take_batch) and appended to that
 * capsule; when a batch of records is durable on f+1 storage replicas, the very same record bytes
 * and the signed head covering them are multicast to the other workers through the untrusted
 * forwarder. A peer verifies before applying: the chain link of every record, the head's hash and
 * its Ed25519 signature against the capsule's metadata, then the AEAD of each payload. A gap (lost
 * multicast) or an unknown capsule is repaired from storage with a verifying capsule reader, and
 * once a second every capsule's head is checked on storage (anti-entropy), so replicas converge
 * even when the untrusted forwarder drops everything.
 *
 * Recovery: at start every capsule on the storage replicas is read and verified from its newest
 * checkpoint (ours included), so a new or restarted worker rebuilds the whole key space with a
 * bounded replay. A checkpoint is a snapshot of its writer's whole memtable (every key, tombstones
 * too, with versions) written every checkpoint_every records; since merging is idempotent and
 * order-free, each capsule's newest snapshot plus the records after it cover every write of that
 * writer. Capsules it cannot decrypt (another deployment's) are skipped with a warning.
 *
 * Release consistency: repl_flush(wait) makes everything written so far durable and published
 * and returns this worker's last seqno, which the worker sends with a lock release;
 * repl_wait_for(writer, seqno) blocks until that writer's capsule is applied up to seqno, pulling
 * from storage when multicast is late.
 *
 * Thread-safe. Errors are 0 or negative codes (base/err.h, capsule.h). */
#ifndef PSL_WORKER_REPL_H
#define PSL_WORKER_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "kvs/kvs.h"
#include "tee/tee.h"

typedef struct repl_opts {
    uint64_t writer;          /* this worker's id */
    const char *dir;          /* holds capsule.id and capsule.journal */
    const char *storage;      /* comma-separated replica endpoints (2f+1) */
    const char *fwd_pub;      /* forwarder's XSUB endpoint (we publish there); NULL: no multicast */
    const char *fwd_sub;      /* forwarder's XPUB endpoint (we subscribe there) */
    const uint8_t *data_root; /* 32 bytes: the deployment's capsule key (from the key manager) */
    const uint8_t *sign_seed; /* 32 bytes: this worker's record-signing seed */
    void *zctx;
    kvs *kv;
    const char *name;           /* for log lines */
    tee_enclave *tee;           /* binds the capsule journal to the TEE monotonic counter
                                 * "capsule-journal-WRITER" (docs/capsule.md); NULL: unbound */
    uint64_t checkpoint_every;  /* write a checkpoint every N own records; 0 = never */
    uint64_t big_checkpoint_ms; /* a checkpoint larger than one record (written as several) at
                                 * most this often, and only once the records appended since the
                                 * last one hold at least half its size; 0 = 1800000 */
    uint64_t big_checkpoint_log; /* ... or sooner, once they hold this many bytes and twice the
                                  * state's size, so the log the replicas keep stays bounded
                                  * whatever the write rate; 0 = 4 GiB */
} repl_opts;

typedef struct repl repl;

/** Open (create or resume) this worker's capsule, recover the key space from every capsule, and
 * start receiving peers' multicast. @return 0 or an error (why says what). */
int repl_open(const repl_opts *o, repl **out, char *why, size_t whylen);
void repl_close(repl *r);

/** Append the memtable's pending writes (if any) to the capsule. With @p wait, also wait until
 * every batch appended so far is durable (and therefore multicast).
 * @param[out] seq this worker's last appended seqno (may be NULL). @return 0 or the writer's
 * sticky error. */
int repl_flush(repl *r, bool wait, uint64_t *seq);

/** Wait until @p writer's capsule is applied here up to @p seqno (our own writer: at once).
 * @return 0, -ETIMEDOUT, or a verification error from storage. */
int repl_wait_for(repl *r, uint64_t writer, uint64_t seqno, int timeout_ms);

typedef struct repl_stats {
    uint64_t appends, own_seq, applied_batches, multicast_in, repaired, rejected;
    uint64_t checkpoints;     /* checkpoints we wrote */
    uint64_t from_checkpoint; /* capsules whose recovery started at a checkpoint */
} repl_stats;
void repl_get_stats(repl *r, repl_stats *s);

/** Every write of ours (this worker's memtable writer) with an HLC up to this value is durable:
 * a sync invocation that wrote nothing and read only versions of ours up to it (ex_result.kv,
 * kvs_own_hlc) read durable data and may be answered without waiting for a group commit. */
uint64_t repl_durable_hlc(repl *r);

#endif
