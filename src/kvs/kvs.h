/* The key-value store's in-enclave memtable for one deployment's key space.
 *
 * Keys and values are byte strings. Every write carries a version (hybrid logical clock, writer
 * id); the memtable keeps, per key, the write with the greatest version (last-writer-wins, ties
 * broken by writer id, so every replica that has seen the same writes holds the same state in any
 * delivery order). A delete is a write of a tombstone, so it orders against concurrent puts like
 * any other write.
 *
 * Local writes are also appended to a pending batch; the worker takes the batch (kvs_take_batch),
 * stores it as one capsule record and multicasts the same bytes to peers, which apply it with
 * kvs_apply_batch. The batch encoding is in docs/kvs.md.
 *
 * Thread-safe: readers share a lock, writers exclude each other. The kvs never sees WebAssembly
 * (src/host joins the two). */
#ifndef PSL_KVS_KVS_H
#define PSL_KVS_KVS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVS_MAX_KEY 4096u
#define KVS_MAX_VALUE (1u << 20) /* so that one write always fits one capsule record */

typedef struct kvs_version {
    uint64_t hlc;
    uint64_t writer;
} kvs_version;

typedef struct kvs kvs;

typedef struct kvs_stats {
    uint64_t gets, puts, deletes, applied, stale; /* stale: remote writes older than ours */
    uint64_t coalesced; /* local writes dropped from a batch for a later write of the key in it */
    uint64_t keys;      /* live keys (tombstones excluded) */
} kvs_stats;

/* -1, 0, 1 as a is older than, equal to, newer than b. */
int kvs_version_cmp(kvs_version a, kvs_version b);

/** A memtable whose local writes carry @p writer as writer id. Never NULL. */
kvs *kvs_new(uint64_t writer);
void kvs_free(kvs *k);

/** Read @p key. Copies at most @p cap bytes of the value into @p buf.
 * @param[out] vlen  the value's full length.  @param[out] ver  its version (may be NULL); when
 *             the key is deleted, the delete's version (and ERR_NOTFOUND); untouched when absent.
 * @return 0 or ERR_NOTFOUND (absent or deleted). */
int kvs_get(kvs *k, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen,
            kvs_version *ver);

/* What one invocation's calls tell about its durability: whether it wrote (or did something
 * that may write, such as invoking another function), and the greatest HLC of this memtable's own
 * writes that it read (0: none; compare with kvs_own_hlc). The caller zeroes it per invocation. */
typedef struct kvs_obs {
    bool wrote;
    uint64_t read_own_hlc;
} kvs_obs;

/** kvs_get, noting into @p obs (may be NULL) the version it answered from, a delete's included. */
int kvs_get_obs(kvs *k, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen,
                kvs_obs *obs);

/** Local writes. @return 0, or ERR_LIMIT when the key or value exceeds KVS_MAX_KEY/VALUE. */
int kvs_put(kvs *k, const void *key, size_t klen, const void *val, size_t vlen);
int kvs_delete(kvs *k, const void *key, size_t klen);

/** Merge one write (local or remote). @p val NULL means tombstone.
 * @return 1 when it became the key's current version, 0 when an equal or newer one was there. */
int kvs_merge(kvs *k, const void *key, size_t klen, const void *val, size_t vlen, bool tomb,
              kvs_version ver);

/** Take pending local writes, oldest first, as one encoded batch of at most about @p max bytes
 * (at least one write when any is pending; 0 = no bound). The rest stays pending. A write that a
 * later write of the same key in the same batch supersedes is left out (counted in
 * kvs_stats.coalesced): the batch's effect under last-writer-wins is the same.
 * @param[out] data malloc'd, caller frees; NULL with *len 0 when nothing is pending.
 * @param[out] nupdates number of writes in it. */
void kvs_take_batch(kvs *k, size_t max, uint8_t **data, size_t *len, uint32_t *nupdates);
/* Number of local writes waiting in the pending batch. */
uint32_t kvs_pending(kvs *k);
/** The greatest HLC among versions of this writer the memtable has held: its local writes, and
 * its own writes merged back (recovery from its capsule). Every local write made after a call
 * gets a greater HLC; so once the writes taken by kvs_take_batch up to the call are durable, a
 * read that returns a version of this writer with an HLC at most this value returned durable
 * data (the worker's sync durability answers such reads at once). */
uint64_t kvs_own_hlc(kvs *k);

/** One part of a snapshot: a batch (the format of kvs_take_batch) holding some of the entries. */
typedef struct kvs_part {
    uint8_t *data;
    size_t len;
} kvs_part;
/** Encode every entry, tombstones included, as consecutive batches of at most @p part_max bytes
 * each (0: one part of any size), together a snapshot: merging them all with kvs_apply_batch
 * gives the state at the time of the call. Taken under the read lock (writers wait meanwhile).
 * @param[out] parts malloc'd array of *nparts parts (free with kvs_parts_free); an empty store
 * gives one part of no entries. @return 0, or ERR_LIMIT (nothing returned) when it needs more than
 * @p max_parts parts (0 = no bound). */
int kvs_snapshot_parts(kvs *k, size_t part_max, size_t max_parts, kvs_part **parts, size_t *nparts,
                       uint32_t *nentries);
void kvs_parts_free(kvs_part *parts, size_t n);
/** Upper bound of a snapshot's encoded size, without a scan (kept as entries change). */
size_t kvs_snapshot_bytes(kvs *k);

/** Apply an encoded batch (from a peer or a capsule). Verifies the encoding first: a malformed
 * batch changes nothing. @return number of writes that took effect, or ERR_CORRUPT. */
int kvs_apply_batch(kvs *k, const uint8_t *data, size_t len);

/* Iterate the live entries (tombstones skipped), in unspecified order, under the read lock.
 * fn returns non-zero to stop. */
typedef int (*kvs_visit_fn)(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen, kvs_version ver);
int kvs_foreach(kvs *k, kvs_visit_fn fn, void *ud);

void kvs_get_stats(kvs *k, kvs_stats *out);
/* The newest version this memtable has seen (local or merged). */
uint64_t kvs_clock(kvs *k);

#endif
