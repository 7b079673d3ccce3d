/* capsule: DataCapsules, append-only logs written by one enclave and stored on 2f+1 untrusted
 * storage replicas (docs/capsule.md holds the byte-exact format, version 1).
 *
 * Invariants.
 * - Record n = header {version, kind, payload length, capsule id, seqno n, prev = hash(n-1), hlc}
 *   followed by a body: for data and checkpoint records AEAD(payload) with the header as associated
 *   data, for record 0 (metadata) the plaintext creation parameters. hash(n) = BLAKE2b-256(header
 * || body). The capsule id is BLAKE2b-256 over the metadata body, which holds the writer's Ed25519
 *   public key, so record 0 certifies itself and names the only key whose heads count.
 * - A head is the writer's signature over (capsule id, seqno, hash); through the prev links one
 * head covers every earlier record, so a batch of records costs one signature.
 * - Replicas hold no key. They check chain links and head signatures before storing, so a forger
 *   cannot poison them, but they are never trusted: the reader verifies the chain from a signed
 * head, the signature, and the AEAD tag before it releases any plaintext.
 *
 * Writer (cap_writer): single writer per capsule. Appends from any number of threads are grouped
 * into batches (group commit): one thread encrypts, chains and signs a batch, journals it (so a
 * crash mid-batch can neither lose an acknowledged record nor fork the chain on restart), sends it
 * to every replica and reports it durable once f+1 replicas acknowledged a durable LMDB commit.
 * Replicas that missed batches are caught up from an in-memory window of recent batches (older gaps
 * are left to the replicas' own anti-entropy).
 *
 * Reader (cap_reader): asks every replica for its signed head, needs f+1 answers, verifies the
 * signatures, picks the newest head and verifies every record back to what it already verified.
 * Distinct errors, each with evidence (cap_evidence): CAP_ERR_TAMPER (no replica holds a record
 * matching the signed chain), CAP_ERR_TRUNCATED (a signed head whose records nobody can serve),
 * CAP_ERR_ROLLBACK (the newest head served is older than one already seen), CAP_ERR_FORK (two
 * validly signed, different records or heads at one seqno). A bad copy on one replica that others
 * can replace is not an error: it is logged as evidence, the read is served from the others and the
 * bad replica is told to scrub (it repairs itself from its peers).
 *
 * Threads: cap_append* may be called from any number of threads. A cap_reader is used by one
 * thread at a time. Errors are 0 or negative codes from base/err.h plus the CAP_ERR_* below. */
#ifndef PSL_CAPSULE_CAPSULE_H
#define PSL_CAPSULE_CAPSULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "tee/tee.h"

#define CAP_ERR_TAMPER (ERR_BASE - 200)    /* a record does not match the signed chain anywhere */
#define CAP_ERR_TRUNCATED (ERR_BASE - 201) /* records covered by a signed head are missing */
#define CAP_ERR_ROLLBACK (ERR_BASE - 202)  /* newest head served is older than one already seen */
#define CAP_ERR_FORK (ERR_BASE - 203)      /* two valid signed histories disagree */
#define CAP_ERR_QUORUM (ERR_BASE - 204)    /* fewer than f+1 replicas answered in time */
#define CAP_ERR_GAP (ERR_BASE - 205)       /* replica: the append does not follow its head */
#define CAP_ERR_CONFLICT (ERR_BASE - 206)  /* replica: a different record is stored at a seqno */
#define CAP_ERR_TRIMMED (ERR_BASE - 207)   /* the writer had records before this one dropped */

/** err_str() extended with the CAP_ERR_* codes. Never NULL. */
const char *cap_strerror(int err);

/* ---- format (docs/capsule.md) ------------------------------------------------------------- */
/* Record format versions; they differ only in the record hash H: BLAKE2b-256 in v1, SHA-256 in
 * v2. Every record of a capsule carries record 0's version. cap_default_version() picks v2 where
 * the CPU has the SHA extensions (SHA-256 then hashes ~1.8x faster, and every stored byte is
 * hashed by the writer, each replica and each reader), v1 elsewhere; $PSL_CAPSULE_HASH
 * (blake2b | sha256) overrides. */
#define CAP_V_BLAKE2B 1u
#define CAP_V_SHA256 2u
#define CAP_ID_BYTES 32u
#define CAP_HASH_BYTES 32u
#define CAP_HDR_BYTES 88u
#define CAP_AEAD_OVERHEAD 40u /* 24-byte nonce + 16-byte tag (XChaCha20-Poly1305) */
#define CAP_HEAD_BYTES 136u   /* id 32 || seqno 8 || hash 32 || sig 64 */
#define CAP_TRIM_BYTES 104u   /* id 32 || below 8 || sig 64 */
#define CAP_META_FIXED 72u
#define CAP_NAME_MAX 128u
#define CAP_PAYLOAD_MAX (4u << 20) /* largest payload of one record */
#define CAP_RECORD_MAX (CAP_HDR_BYTES + CAP_AEAD_OVERHEAD + CAP_PAYLOAD_MAX)

/* A checkpoint too large for one record is written as CKPT_PART records followed, with nothing
 * in between, by one CHECKPOINT record: replay starts at the first part of the newest complete
 * run (parts not followed by their CHECKPOINT, after a crash, are replayed as data). */
enum { CAP_KIND_META = 0, CAP_KIND_DATA = 1, CAP_KIND_CHECKPOINT = 2, CAP_KIND_CKPT_PART = 3 };

typedef struct cap_hdr {
    uint8_t version, kind;
    uint32_t payload_len; /* plaintext bytes (meta: the metadata body) */
    uint8_t capsule[CAP_ID_BYTES];
    uint64_t seqno;
    uint8_t prev[CAP_HASH_BYTES];
    uint64_t hlc; /* hybrid logical clock: (wall ms << 16) | logical; strictly increasing */
} cap_hdr;

typedef struct cap_head {
    uint8_t capsule[CAP_ID_BYTES];
    uint64_t seqno;
    uint8_t hash[CAP_HASH_BYTES];
    uint8_t sig[64];
} cap_head;

typedef struct cap_meta {
    uint8_t writer_pk[32];
    uint64_t created_ns;
    uint8_t salt[16];
    uint8_t f;       /* tolerated replica failures: 2f+1 replicas, f+1 acks */
    uint8_t version; /* record 0's format version, which every record of the capsule carries */
    char name[CAP_NAME_MAX + 1];
} cap_meta;

/** Parse and check a record's header and its length. Does not check the chain or the AEAD.
 * @param[out] body points into @p rec. @return 0 or ERR_MALFORMED. */
int cap_record_parse(const uint8_t *rec, size_t len, cap_hdr *h, const uint8_t **body,
                     size_t *bodylen) WARN_UNUSED;
/** H(header || body) of an encoded record, H chosen by its version byte (CAP_V_*). */
void cap_record_hash(const uint8_t *rec, size_t len, uint8_t out[CAP_HASH_BYTES]);
/** Encode a head (signature included) into 136 bytes / decode it (ERR_MALFORMED on bad length). */
void cap_head_encode(const cap_head *h, uint8_t out[CAP_HEAD_BYTES]);
int cap_head_decode(const uint8_t *in, size_t len, cap_head *h) WARN_UNUSED;
/** Check the head's signature with the writer key. @return 0 or ERR_AUTH. */
int cap_head_verify(const cap_head *h, const uint8_t writer_pk[32]) WARN_UNUSED;
/* A trim statement: the writer's signature over ("psl-capsule-trim-v1", capsule id, below),
 * permission for replicas to drop records 1 .. below-1 (record 0 stays). Records from below on
 * are still authenticated by the signed heads after them; a reader that finds the records it
 * asks for dropped is shown the statement and starts verifying at below (docs/capsule.md). */
typedef struct cap_trim {
    uint8_t capsule[CAP_ID_BYTES];
    uint64_t below;
    uint8_t sig[64];
} cap_trim;

void cap_trim_sign(cap_trim *t, const uint8_t sign_sk[64]);
/** @return 0 or ERR_AUTH (bad signature, or below < 2: a trim that drops nothing). */
int cap_trim_verify(const cap_trim *t, const uint8_t writer_pk[32]) WARN_UNUSED;
void cap_trim_encode(const cap_trim *t, uint8_t out[CAP_TRIM_BYTES]);
/** @return 0 or ERR_MALFORMED (bad length). */
int cap_trim_decode(const uint8_t *in, size_t len, cap_trim *t) WARN_UNUSED;
/** Parse record 0: checks the header (seqno 0, zero prev, kind META) and that the capsule id is
 * the hash of the metadata body. @return 0, ERR_MALFORMED or ERR_AUTH (id mismatch). */
int cap_meta_parse(const uint8_t *rec, size_t len, cap_meta *m,
                   uint8_t id[CAP_ID_BYTES]) WARN_UNUSED;
/** Check that @p rec may follow a record with hash @p prev_hash, seqno @p seqno - 1 and clock
 * @p prev_hlc in capsule @p id, whose records carry format @p version (cap_meta.version).
 * @return 0, ERR_MALFORMED or ERR_INVALID (wrong link or version). */
int cap_record_check_link(const uint8_t *rec, size_t len, const uint8_t id[CAP_ID_BYTES],
                          unsigned version, uint64_t seqno, const uint8_t prev_hash[CAP_HASH_BYTES],
                          uint64_t prev_hlc) WARN_UNUSED;

/* ---- keys ---------------------------------------------------------------------------------- */
/** A writer's secrets: the Ed25519 signing key and the 32-byte data root key. The data key of a
 * capsule is cr_kdf(root, "psl-capsule-data-v1", capsule id). Readers need only root + the id. */
typedef struct cap_keys {
    uint8_t sign_sk[64];
    uint8_t sign_pk[32];
    uint8_t data_root[32];
} cap_keys;

void cap_keys_generate(cap_keys *k);
/** Key file: 128 bytes of hex lines ("sign-seed", "data-root"); mode 0600. 0, ERR_IO,
 * ERR_MALFORMED. */
int cap_keys_save(const cap_keys *k, const char *path) WARN_UNUSED;
int cap_keys_load(cap_keys *k, const char *path) WARN_UNUSED;

/** The format version for new capsules (see CAP_V_*): $PSL_CAPSULE_HASH when it is "blake2b" or
 * "sha256", else v2 where cr_sha256_fast(), else v1. ERR_USAGE (with the message on stderr) for
 * any other value of the variable. */
int cap_default_version(void) WARN_UNUSED;
/** Build record 0 for a new capsule of format @p version (in memory; the writer sends it).
 * @param[out] rec malloc'd. @return 0 or ERR_USAGE (bad name, f or version). */
int cap_meta_build(const cap_keys *k, const char *name, unsigned f, unsigned version, uint8_t **rec,
                   size_t *len, uint8_t id[CAP_ID_BYTES]) WARN_UNUSED;
/** Encrypt @p payload into a record. @param[out] rec malloc'd, hash written. */
int cap_record_build(const uint8_t data_key[32], const cap_hdr *h, const void *payload,
                     uint8_t **rec, size_t *len, uint8_t hash[CAP_HASH_BYTES]) WARN_UNUSED;
/** Decrypt a data/checkpoint record (header = AD). @p out holds hdr.payload_len bytes.
 * @return 0, ERR_MALFORMED or ERR_AUTH. */
int cap_record_open(const uint8_t data_key[32], const uint8_t *rec, size_t len,
                    uint8_t *out) WARN_UNUSED;
void cap_data_key(const uint8_t root[32], const uint8_t id[CAP_ID_BYTES], uint8_t out[32]);
void cap_head_sign(cap_head *h, const uint8_t sign_sk[64]);

/* ---- evidence ------------------------------------------------------------------------------ */
enum { CAP_EV_TAMPER = 1, CAP_EV_TRUNCATION, CAP_EV_ROLLBACK, CAP_EV_FORK, CAP_EV_BADSIG };

typedef struct cap_evidence {
    int kind;    /* CAP_EV_* */
    int replica; /* index into the replica list, -1 if not one replica's doing */
    uint64_t seqno;
    uint8_t expected[CAP_HASH_BYTES]; /* hash the signed chain requires (tamper) */
    uint8_t got[CAP_HASH_BYTES];      /* hash of what was served */
    cap_head a, b; /* fork: two valid heads; rollback: a = seen before, b = served now */
    char what[200];
} cap_evidence;

/** One line (no newline) describing @p e, with hex hashes. @p out holds at least 512 bytes. */
void cap_evidence_format(const cap_evidence *e, char *out, size_t cap);

/* ---- replica client (one DEALER per replica) ----------------------------------------------- */
typedef struct cap_client cap_client;
/** Connect (lazily; ZeroMQ reconnects by itself) to @p n replica endpoints ("tcp://host:port").
 * Strings are copied. @p timeout_ms bounds each wait for replies (0 = 2000). */
int cap_client_open(const char *const *endpoints, size_t n, int timeout_ms,
                    cap_client **out) WARN_UNUSED;
void cap_client_close(cap_client *c);
size_t cap_client_count(const cap_client *c);
const char *cap_client_endpoint(const cap_client *c, size_t i);
/** List the capsule ids one replica holds. @param[out] ids malloc'd n*32 bytes. */
int cap_client_list(cap_client *c, size_t replica, uint8_t **ids, size_t *n) WARN_UNUSED;
/** Send trim statement @p t (cap_writer_trim_statement) to one replica, which stores it and drops
 * records 1 .. t->below-1 in the background. @return 0; ERR_AUTH (does not verify with the
 * writer key), CAP_ERR_GAP (past the replica's head: it keeps everything for now), ERR_NOTFOUND,
 * or a transport error; @p why (may be NULL) gets the replica's reason. */
int cap_client_trim(cap_client *c, size_t replica, const cap_trim *t, char *why,
                    size_t whylen) WARN_UNUSED;

/* ---- writer -------------------------------------------------------------------------------- */
typedef struct cap_writer cap_writer;

typedef struct cap_writer_opts {
    const char *const *replicas; /* 2f+1 endpoints */
    size_t nreplicas;
    unsigned f;               /* 0 = (nreplicas - 1) / 2 */
    const char *name;         /* create only */
    const char *journal;      /* file for the in-flight batch; NULL = resume needs all replicas */
    size_t max_batch_records; /* 0 = 4096 */
    size_t max_batch_bytes;   /* 0 = 4 MiB */
    int timeout_ms;           /* a replica silent for this long is retried (0 = 1000) */
    /* Called on the writer's thread each time a batch becomes durable, with its records exactly
     * as the replicas store them and the signed head covering them (CAP_HEAD_BYTES), e.g. to
     * multicast the same bytes to peers. Must not block for long; may be NULL. */
    void (*on_durable)(void *ud, const uint8_t *const *recs, const size_t *lens, size_t n,
                       const uint8_t *head);
    void *on_durable_ud;
    /* Optional: bind the journal to TEE monotonic counter @p journal_counter (a name for
     * tee_counter_*, one per journal; needs @p journal). The counter is incremented after each
     * batch is journaled and every journal entry carries its value under a tag keyed from the
     * data root, so a host that deletes the journal or puts back an older copy is detected when
     * the writer resumes (CAP_ERR_ROLLBACK) instead of letting it sign different records at
     * seqnos a replica may already hold (a fork). Costs one counter increment per batch. The
     * name is copied: it need not outlive cap_writer_open. */
    tee_enclave *tee;
    const char *journal_counter;
} cap_writer_opts;

/** Create a new capsule (record 0 durable on f+1 replicas) or resume one (@p id non-NULL): the
 * writer reads the newest durable head, replays its journal, and continues the chain.
 * @p keys are copied. @param[out] id_out the capsule id (create). @return 0, CAP_ERR_QUORUM,
 * ERR_AUTH (the capsule belongs to another key), CAP_ERR_FORK, CAP_ERR_ROLLBACK (the journal is
 * older than its TEE counter), ERR_IO ... */
int cap_writer_open(const cap_keys *keys, const cap_writer_opts *o, const uint8_t *id,
                    cap_writer **out, uint8_t id_out[CAP_ID_BYTES]) WARN_UNUSED;
/** Queue one record (copied) and return with its seqno: at once, unless the records queued and
 * not yet sent hold CAP_QUEUE_MAX bytes already; then it waits until the writer has taken enough
 * of them (backpressure: writers faster than the replicas cannot pile up memory). Thread safe.
 * @return 0, ERR_LIMIT (len > CAP_PAYLOAD_MAX), or the writer's sticky failure. */
int cap_append_submit(cap_writer *w, const void *payload, size_t len, uint64_t *seq) WARN_UNUSED;
#define CAP_QUEUE_MAX (32u << 20)
/** Wait until every record up to @p seq is durable on f+1 replicas. Thread safe. */
int cap_wait_durable(cap_writer *w, uint64_t seq) WARN_UNUSED;
/** cap_append_submit + cap_wait_durable. */
int cap_append(cap_writer *w, const void *payload, size_t len, uint64_t *seq) WARN_UNUSED;
/** Append a checkpoint record (an encrypted summary that replay can start from) as the end of a
 * batch, so that it carries its own signed head; waits until durable. */
int cap_checkpoint(cap_writer *w, const void *summary, size_t len, uint64_t *seq) WARN_UNUSED;
/** A checkpoint in @p n records (each at most CAP_PAYLOAD_MAX): parts 0..n-2 as CKPT_PART, the
 * last as CHECKPOINT, queued together so that no other record of this writer comes between
 * them as long as the caller does not append from another thread meanwhile; with @p wait, waits
 * until durable. @param[out] seq the seqno of the CHECKPOINT record. */
int cap_checkpoint_parts(cap_writer *w, const void *const *parts, const size_t *lens, size_t n,
                         bool wait, uint64_t *seq) WARN_UNUSED;
/** Latest durable head (signed). */
void cap_writer_head(cap_writer *w, cap_head *h);
/** Sign a trim statement letting the replicas drop records 1 .. @p below - 1 (send it with
 * cap_client_trim). Call it only when every reader can start at or after @p below: typically
 * @p below is the first record of a checkpoint run (readers that replay from a checkpoint never
 * look further back), and readers that had not caught up to it must sync again from there.
 * @return 0, or ERR_USAGE when @p below is under 2 or past the durable head. */
int cap_writer_trim_statement(cap_writer *w, uint64_t below, cap_trim *t) WARN_UNUSED;
typedef struct cap_writer_stats {
    uint64_t batches, records, bytes, resends;
} cap_writer_stats;
void cap_writer_stats_get(cap_writer *w, cap_writer_stats *s);
/** Flush queued records (waits until durable) and close. NULL is fine. */
int cap_writer_close(cap_writer *w);

/* ---- reader -------------------------------------------------------------------------------- */
typedef struct cap_reader cap_reader;

/** Open a reader of capsule @p id on @p c (borrowed; must outlive the reader). @p data_root may be
 * NULL for verify-only readers (cap_read then returns ERR_USAGE). */
int cap_reader_open(cap_client *c, const uint8_t id[CAP_ID_BYTES], const uint8_t *data_root,
                    cap_reader **out) WARN_UNUSED;
void cap_reader_close(cap_reader *r);
/** Set the newest head the caller has seen before (e.g. kept in sealed state): a replica quorum
 * serving an older one is a rollback. When @p known carries a signature (non-zero), a different
 * hash at the same seqno is a fork. */
void cap_reader_set_known(cap_reader *r, const cap_head *known);
/** Number of replicas that must answer a sync (default f+1 from the metadata). Lowering it is for
 * diagnosis only (e.g. checking one replica's copy): a rollback can then go unnoticed. */
void cap_reader_set_quorum(cap_reader *r, size_t q);
/** Fetch the newest signed head from f+1 replicas and verify every record up to it.
 * @return 0 or CAP_ERR_{TAMPER,TRUNCATED,ROLLBACK,FORK,QUORUM}, ERR_* (the evidence says why). */
int cap_reader_sync(cap_reader *r) WARN_UNUSED;
/** Like cap_reader_sync, but the first sync of a reader verifies only the chain from the newest
 * checkpoint record to the newest signed head (walking back from the head until it meets a
 * checkpoint, then over the parts just before it), not from record 1: replay starts at the
 * checkpoint's first part. Records before it stay
 * unverified and cap_read refuses them (ERR_NOTFOUND). Later syncs extend the verified range
 * forward as cap_reader_sync does. @param[out] checkpoint the checkpoint's seqno, 0 when the
 * capsule has none after record 0 (then everything was verified); may be NULL. Same errors. */
int cap_reader_sync_from_checkpoint(cap_reader *r, uint64_t *checkpoint) WARN_UNUSED;
/** Extend the verified chain with records that came another way (a multicast of the writer's
 * durable batch) instead of fetching them: @p recs[0..n) are consecutive records ending at the
 * signed @p head. Records the reader verified already must hash as verified; the first one past
 * the verified range must link to it (seqno, hash, increasing clock), each following one to its
 * predecessor; the head must name the last record's hash and verify with the writer key. A sync
 * or cap_read then starts after them. Nothing changes unless everything checks.
 * @return 0; CAP_ERR_GAP when the first record lies past the verified range (records are
 * missing: sync); ERR_INVALID when a record does not link or differs from the verified chain;
 * ERR_AUTH when the head does not match or verify; ERR_MALFORMED; ERR_USAGE before a first
 * sync. */
int cap_reader_extend(cap_reader *r, const uint8_t *const *recs, const size_t *lens, size_t n,
                      const cap_head *head) WARN_UNUSED;
/** Forget the verified hashes of records before @p below - 1 (a reader keeps 32 bytes per
 * verified record, which a long-lived reader following a busy capsule would otherwise keep
 * forever). Those records can no longer be read (cap_read: ERR_NOTFOUND); syncs and
 * cap_reader_extend go on from the newest verified record as before. Cheap to call after every
 * batch: it only acts once a few thousand hashes can go. */
void cap_reader_trim(cap_reader *r, uint64_t below);
/** First seqno cap_read serves: 1, the checkpoint of cap_reader_sync_from_checkpoint, or the first
 * one cap_reader_trim kept. */
uint64_t cap_reader_first(const cap_reader *r);
/** Head verified by the last sync. */
void cap_reader_head(const cap_reader *r, cap_head *h);
const cap_meta *cap_reader_meta(const cap_reader *r);
/** Read verified record @p seq (1..head): fetch, check its hash against the verified chain (other
 * replicas are tried when one serves a bad copy), decrypt. @param[out] out malloc'd.
 * @param[out] kind CAP_KIND_*, may be NULL. */
int cap_read(cap_reader *r, uint64_t seq, uint8_t **out, size_t *len, int *kind) WARN_UNUSED;
/** Callback form for ranges: calls @p fn(arg, seq, kind, payload, len) for seq in [first, last],
 * fetching in large chunks; stops on the first non-zero return of fn (returned as is). */
int cap_read_range(cap_reader *r, uint64_t first, uint64_t last,
                   int (*fn)(void *arg, uint64_t seq, int kind, const uint8_t *p, size_t len),
                   void *arg) WARN_UNUSED;
/** Evidence gathered so far (borrowed, valid until the next call on @p r). */
const cap_evidence *cap_reader_evidence(const cap_reader *r, size_t *n);

#endif
