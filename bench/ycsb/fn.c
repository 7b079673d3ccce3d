/* The YCSB function: a psl guest (wasm32-wasi) that performs YCSB operations against the
 * deployment's key-value store through the psl host API. One module serves both ways of driving
 * psl from `psl bench ycsb`:
 *
 *   in-function mode (the PSL paper's setting): the request is one line
 *     run w=a d=zipfian records=N thread=T seed=S warmup_ms=W duration_ms=D [ops=MAX]
 *         [inserted=I zetan=Z]
 *   and the function runs the workload's generator in a loop for D ms after W ms of warm-up (or
 *   until MAX measured operations), timing every operation with the WASI monotonic clock. It
 *   answers with its counts and latency histograms (format below). inserted/zetan continue the
 *   insert sequence of an earlier run of the same thread (workload D across invocations).
 *     load from=A to=B seed=S
 *   writes records A .. B-1 (the load phase) and answers "loaded N errors E".
 *     count from=A to=B
 *   answers "present N": how many of records A .. B-1 this worker holds (after a load, the
 *   driver waits until every worker holds them all: replication is eventually consistent).
 *
 *   client mode (one operation per invocation, as a YCSB client's request):
 *     "r KEY"            answers the record, or nothing when the key is absent;
 *     "w KEY\nRECORD"    stores RECORD under KEY and answers nothing.
 *
 * Run answer, one item per line: "elapsed_ns E notfound N stale S bad B inserted I zetan Z", then
 * for each operation type with operations "op I OPS ERRORS N SUM_NS MAX_NS" and a line "b" followed
 * by "BUCKET COUNT" pairs. A non-zero exit status means the request itself was malformed. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */
#include <psl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ycsb.h"

static ycsb_stats st;
static uint8_t rec[YCSB_VALUE_LEN];
static uint8_t rbuf[YCSB_VALUE_LEN + 16];
static char req[1 << 16];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The value of "NAME=" in the request line, or dflt. */
static unsigned long long arg(const char *line, const char *name, unsigned long long dflt) {
    size_t n = strlen(name);
    for (const char *p = line; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == line || p[-1] == ' ') && p[n] == '=')
            return strtoull(p + n + 1, NULL, 10);
    }
    return dflt;
}

static const char *sarg(const char *line, const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    for (const char *p = line; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == line || p[-1] == ' ') && p[n] == '=') {
            size_t i = 0;
            for (p += n + 1; *p && *p != ' ' && *p != '\n' && i + 1 < cap; p++)
                out[i++] = *p;
            out[i] = 0;
            return out;
        }
    }
    return NULL;
}

static uint64_t g_records;

static int do_read(uint64_t k) {
    char key[YCSB_KEY_MAX];
    size_t kl = ycsb_key_name(k, key);
    int n = psl_get(key, kl, rbuf, sizeof rbuf);
    if (n == PSL_ENOTFOUND) {
        if (k < g_records)
            st.notfound++;
        else
            st.stale++;
        return 0;
    }
    if (n < 0)
        return n;
    if (!ycsb_value_check(rbuf, (size_t)n, k))
        st.bad++;
    return 0;
}

static int do_write(uint64_t k, uint32_t version) {
    char key[YCSB_KEY_MAX];
    size_t kl = ycsb_key_name(k, key);
    ycsb_value_stamp(rec, k, version);
    return psl_put(key, kl, rec, YCSB_VALUE_LEN);
}

static int run(const char *line) {
    char wname[8], dname[16];
    ycsb_workload w;
    if (!sarg(line, "w", wname, sizeof wname) || ycsb_workload_get(wname[0], &w) != 0) {
        fprintf(stderr, "run: w=a|b|c|d|f needed\n");
        return 2;
    }
    if (sarg(line, "d", dname, sizeof dname) && ycsb_dist_parse(dname, &w.dist) != 0) {
        fprintf(stderr, "run: unknown distribution %s\n", dname);
        return 2;
    }
    uint64_t records = arg(line, "records", 100000);
    g_records = records;
    uint32_t thread = (uint32_t)arg(line, "thread", 0);
    uint64_t seed = arg(line, "seed", 1);
    uint64_t warm = arg(line, "warmup_ms", 0) * 1000000ull;
    uint64_t dur = arg(line, "duration_ms", 1000) * 1000000ull;
    uint64_t maxops = arg(line, "ops", 0);
    /* A run may continue an earlier one of the same thread (the driver splits long runs into
     * invocations): its inserts so far, and zeta over them for "latest" (O(items) to compute). */
    char zs[40];
    double zetan = sarg(line, "zetan", zs, sizeof zs) ? strtod(zs, NULL) : -1;
    if (zetan <= 0)
        zetan = -1;
    ycsb_gen g;
    ycsb_gen_init(&g, &w, records, thread, seed, arg(line, "inserted", 0), zetan);
    ycsb_rng vr;
    ycsb_rng_seed(&vr, seed + thread + 1);
    ycsb_value_init(rec, &vr);

    uint64_t t0 = now_ns(), start = t0 + warm, end = start + dur, t = t0, measured = 0;
    bool measuring = warm == 0;
    uint32_t version = (uint32_t)seed;
    for (;;) {
        if (!measuring && t >= start) {
            memset(&st, 0, sizeof st);
            measuring = true;
            start = t;
            end = start + dur;
        }
        if (measuring && (t >= end || (maxops && measured >= maxops)))
            break;
        ycsb_op op = ycsb_gen_op(&g);
        uint64_t k = op == YCSB_INSERT ? ycsb_gen_insert_key(&g) : ycsb_gen_key(&g);
        int rc = 0;
        uint64_t b = now_ns(); /* only the store's operation is timed, as YCSB does */
        switch (op) {
        case YCSB_READ: rc = do_read(k); break;
        case YCSB_UPDATE:
        case YCSB_INSERT: rc = do_write(k, ++version); break;
        case YCSB_RMW:
            rc = do_read(k);
            if (rc == 0)
                rc = do_write(k, ++version);
            break;
        default: break;
        }
        t = now_ns();
        st.ops[op]++;
        if (rc != 0)
            st.errors[op]++;
        ycsb_hist_add(&st.hist[op], t - b);
        if (measuring)
            measured++;
    }
    printf("elapsed_ns %llu notfound %llu stale %llu bad %llu inserted %llu zetan %.17g\n",
           (unsigned long long)(t - start), (unsigned long long)st.notfound,
           (unsigned long long)st.stale, (unsigned long long)st.bad, (unsigned long long)g.inserted,
           w.dist == YCSB_LATEST ? g.zipf.zetan : 0.0);
    for (int op = 0; op < YCSB_NOPS; op++) {
        const ycsb_hist *h = &st.hist[op];
        if (!st.ops[op])
            continue;
        printf("op %d %llu %llu %llu %llu %llu\nb", op, (unsigned long long)st.ops[op],
               (unsigned long long)st.errors[op], (unsigned long long)h->n,
               (unsigned long long)h->sum_ns, (unsigned long long)h->max_ns);
        for (uint32_t i = 0; i < YCSB_HIST_BUCKETS; i++)
            if (h->b[i])
                printf(" %u %u", i, h->b[i]);
        printf("\n");
    }
    return 0;
}

static int load(const char *line) {
    uint64_t from = arg(line, "from", 0), to = arg(line, "to", 0), errors = 0;
    ycsb_rng vr;
    ycsb_rng_seed(&vr, arg(line, "seed", 1) + from);
    ycsb_value_init(rec, &vr);
    for (uint64_t k = from; k < to; k++)
        if (do_write(k, 0) != 0)
            errors++;
    printf("loaded %llu errors %llu\n", (unsigned long long)(to - from - errors),
           (unsigned long long)errors);
    return 0;
}

/* How many of records A .. B-1 this worker holds, complete and of the right key. */
static int count(const char *line) {
    uint64_t from = arg(line, "from", 0), to = arg(line, "to", 0), present = 0;
    for (uint64_t k = from; k < to; k++) {
        char key[YCSB_KEY_MAX];
        size_t kl = ycsb_key_name(k, key);
        int n = psl_get(key, kl, rbuf, sizeof rbuf);
        if (n >= 0 && ycsb_value_check(rbuf, (size_t)n, k))
            present++;
    }
    printf("present %llu\n", (unsigned long long)present);
    return 0;
}

int main(void) {
    size_t n = fread(req, 1, sizeof req - 1, stdin);
    req[n] = 0;
    if (n >= 2 && req[1] == ' ' && (req[0] == 'r' || req[0] == 'w')) {
        const char *key = req + 2;
        const char *nl = memchr(key, '\n', n - 2);
        size_t kl = nl ? (size_t)(nl - key) : n - 2;
        if (req[0] == 'r') {
            int len = psl_get(key, kl, rbuf, sizeof rbuf);
            if (len == PSL_ENOTFOUND)
                return 0;
            if (len < 0 || (size_t)len > sizeof rbuf) {
                fprintf(stderr, "get failed: %d\n", len);
                return 3;
            }
            fwrite(rbuf, 1, (size_t)len, stdout);
            return 0;
        }
        if (!nl) {
            fprintf(stderr, "w: no record after the key\n");
            return 2;
        }
        int rc = psl_put(key, kl, nl + 1, n - 2 - kl - 1);
        if (rc != 0) {
            fprintf(stderr, "put failed: %d\n", rc);
            return 3;
        }
        return 0;
    }
    if (strncmp(req, "run ", 4) == 0)
        return run(req);
    if (strncmp(req, "load ", 5) == 0)
        return load(req);
    if (strncmp(req, "count ", 6) == 0)
        return count(req);
    fprintf(stderr, "unknown request (run ..., load ..., r KEY, w KEY\\nRECORD)\n");
    return 2;
}
