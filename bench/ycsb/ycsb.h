/* YCSB core workloads: generators, workload mix, record format and latency histograms, shared by
 * the native driver (`psl bench ycsb`, src/cli/cmd_ycsb.c) and the in-function driver that runs
 * as a WebAssembly guest inside psl workers (bench/ycsb/fn.c). Plain C17 with libm only, so the
 * same code compiles for the host and for wasm32-wasi: both sides draw the same key sequences for
 * the same seed.
 *
 * Generators follow the YCSB definitions: the zipfian generator of Gray et al. ("Quickly
 * generating billion-record synthetic databases", SIGMOD 1994) with theta 0.99; the scrambled
 * zipfian draws from a zipfian over 10^10 items (with its precomputed zeta) and hashes the result
 * with FNV-1a 64 onto the record range, so popular keys are spread over the key space; "latest"
 * is a zipfian over the items inserted so far, counted back from the newest.
 *
 * Threads and inserts (workload D): every client thread T inserts into its own key range, so a
 * "latest" read only draws keys that its thread has already inserted (YCSB achieves the same with
 * an acknowledged-insert counter shared by its threads; here the threads may be separate
 * invocations in separate processes, with nothing shared). Logical item i < records is key i;
 * the n-th insert of thread T is key records + T * YCSB_INSERT_STRIDE + n.
 *
 * Records: YCSB's 10 fields of 100 bytes, stored as one value of 1000 bytes. Updates write the
 * whole record (YCSB's writeallfields=true), so a read always finds a complete record. The value
 * starts with a tag naming its key number ("k" + 16 hex digits + " v" + 8 hex digits + " "), which
 * lets a reader check it got the record of the key it asked for. Nothing here allocates. */
#ifndef PSL_BENCH_YCSB_H
#define PSL_BENCH_YCSB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YCSB_FIELDS 10
#define YCSB_FIELD_LEN 100
#define YCSB_VALUE_LEN (YCSB_FIELDS * YCSB_FIELD_LEN)
#define YCSB_TAG_LEN 28 /* "k%016x v%08x " */
#define YCSB_KEY_MAX 32
#define YCSB_INSERT_STRIDE 1000000000ull
#define YCSB_THETA 0.99

/* Operation types, in report order. RMW is a read followed by an update of the same record,
 * counted as one operation (as YCSB does). */
typedef enum ycsb_op { YCSB_READ, YCSB_UPDATE, YCSB_INSERT, YCSB_RMW, YCSB_NOPS } ycsb_op;
typedef enum ycsb_dist { YCSB_ZIPFIAN, YCSB_UNIFORM, YCSB_LATEST } ycsb_dist;

const char *ycsb_op_name(ycsb_op op);               /* "READ", "UPDATE", "INSERT", "RMW" */
const char *ycsb_dist_name(ycsb_dist d);            /* "zipfian", "uniform", "latest" */
int ycsb_dist_parse(const char *s, ycsb_dist *out); /* 0 or -1 */

/* The mix of a core workload. */
typedef struct ycsb_workload {
    char name;           /* 'a', 'b', 'c', 'd', 'f' */
    double p[YCSB_NOPS]; /* proportion of each operation; they add up to 1 */
    ycsb_dist dist;      /* request distribution */
} ycsb_workload;

/** Fill @p w with core workload @p name (a, b, c, d or f, either case) and its default
 * distribution. @return 0, or -1 for an unknown name. */
int ycsb_workload_get(char name, ycsb_workload *w);

/* xoshiro-style 64-bit generator (splitmix64 seeding). Not cryptographic. */
typedef struct ycsb_rng {
    uint64_t s[4];
} ycsb_rng;
void ycsb_rng_seed(ycsb_rng *r, uint64_t seed);
uint64_t ycsb_rng_next(ycsb_rng *r);
double ycsb_rng_double(ycsb_rng *r); /* uniform in [0, 1) */

uint64_t ycsb_fnv64(uint64_t v); /* FNV-1a 64 over the 8 bytes of v, least significant first */

/* Zipfian over [0, items): item 0 is the most popular. Items may grow (ycsb_zipf_grow), which
 * extends zeta incrementally as YCSB does for its "latest" generator. */
typedef struct ycsb_zipf {
    uint64_t items;
    double theta, alpha, zeta2, zetan, eta, half_pow_theta;
} ycsb_zipf;
/** @p zetan < 0: compute zeta(items, theta) (O(items)); else use it as given. */
void ycsb_zipf_init(ycsb_zipf *z, uint64_t items, double theta, double zetan);
void ycsb_zipf_grow(ycsb_zipf *z, uint64_t items);
uint64_t ycsb_zipf_next(ycsb_zipf *z, ycsb_rng *r);

/* One client thread's generator: operation choice and key choice for a workload. */
typedef struct ycsb_gen {
    ycsb_workload w;
    uint64_t records;  /* loaded records (keys 0 .. records-1) */
    uint32_t thread;   /* this thread's index: its insert range */
    uint64_t inserted; /* inserts made by this thread so far */
    ycsb_rng rng;
    ycsb_zipf zipf; /* scrambled (over 10^10 items) or latest (over records + inserted) */
} ycsb_gen;

/** @p inserted: inserts this thread made in earlier runs (a run continued in a new invocation);
 * @p zetan: zeta(records + inserted) for "latest" when known, else < 0 (then O(items) to compute
 * here). */
void ycsb_gen_init(ycsb_gen *g, const ycsb_workload *w, uint64_t records, uint32_t thread,
                   uint64_t seed, uint64_t inserted, double zetan);
/** zeta(n, theta) = sum over i = 1..n of 1 / i^theta. */
double ycsb_zeta(uint64_t n, double theta);
ycsb_op ycsb_gen_op(ycsb_gen *g);
/** The key number of an existing record to read or update. */
uint64_t ycsb_gen_key(ycsb_gen *g);
/** The key number for the next insert of this thread (and counts it as inserted: call after the
 * insert succeeded would race with nothing, since only this thread reads its range). */
uint64_t ycsb_gen_insert_key(ycsb_gen *g);

/** Write the key name of key number @p k ("user" + decimal FNV hash, as YCSB's hashed keys) into
 * @p out (at least YCSB_KEY_MAX bytes). @return its length (no terminating NUL counted; one is
 * written). */
size_t ycsb_key_name(uint64_t k, char *out);
/** Prepare a record buffer of YCSB_VALUE_LEN bytes: random printable field data from @p r. */
void ycsb_value_init(uint8_t *buf, ycsb_rng *r);
/** Stamp the tag of key @p k, version @p v into a prepared record. */
void ycsb_value_stamp(uint8_t *buf, uint64_t k, uint32_t v);
/** True when @p buf (@p len bytes) is a complete record whose tag names key @p k. */
bool ycsb_value_check(const uint8_t *buf, size_t len, uint64_t k);

/* Latency histogram in nanoseconds: exact below 128 ns, then 64 buckets per power of two
 * (relative error under 1.6 %), up to 2^40 ns; larger values land in the last bucket. */
#define YCSB_HIST_SUB 64
#define YCSB_HIST_BUCKETS (2 * YCSB_HIST_SUB + (40 - 7) * YCSB_HIST_SUB)
typedef struct ycsb_hist {
    uint64_t n, sum_ns, max_ns;
    uint32_t b[YCSB_HIST_BUCKETS];
} ycsb_hist;
void ycsb_hist_add(ycsb_hist *h, uint64_t ns);
void ycsb_hist_merge(ycsb_hist *dst, const ycsb_hist *src);
/** The value at quantile @p q (0..1), in ns: the midpoint of the bucket holding that rank. */
uint64_t ycsb_hist_quantile(const ycsb_hist *h, double q);
uint32_t ycsb_hist_bucket(uint64_t ns);
uint64_t ycsb_hist_bucket_mid(uint32_t b);

/* Counts of one run of one thread (or of all threads, merged). */
typedef struct ycsb_stats {
    uint64_t ops[YCSB_NOPS];    /* completed operations (including failed ones) */
    uint64_t errors[YCSB_NOPS]; /* the store answered an error */
    uint64_t notfound;          /* reads of a loaded record that found nothing */
    uint64_t stale;             /* reads of a record this thread inserted that found nothing
                                 * (not yet replicated to the worker that served the read) */
    uint64_t bad;               /* reads that returned another key's record or a short one */
    ycsb_hist hist[YCSB_NOPS];
} ycsb_stats;
void ycsb_stats_merge(ycsb_stats *dst, const ycsb_stats *src);

#endif
