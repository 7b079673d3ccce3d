/* Data-parallel training of a multilayer perceptron (784 -> 128 ReLU -> 10 softmax, cross-entropy,
 * mini-batch SGD) inside psl functions; the driver is `psl bench dnn` (src/cli/cmd_dnn.c) and the
 * design is in docs/dnn.md. The function has no file system: training and test images reach it
 * through the key-value store, and lambdas exchange gradients (synchronous mode) or parameter
 * deltas (asynchronous mode) through it, as float chunks of 64 KiB (DNN_CHUNK floats per key).
 *
 * Requests (first line; "put" carries a binary body after the newline):
 *   put KEY\n<bytes>                     store the body under KEY (the data loader)
 *   init RUN SEED                         write initial parameters dnn/RUN/p/C
 *   train RUN MODE K k EPOCH N B LR [P]   one epoch of lambda k of K on its shard of the first N
 *                                         training images, per-lambda batch B, MODE sync|async
 *   eval RUN MODE K N                     accuracy and loss on the first N test images
 * Every answer is one line "ok key=value ..." or "error ...". */
#define _POSIX_C_SOURCE 200809L
#include <psl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NIN 784
#define NHID 128
#define NOUT 10
#define REC (1 + NIN)   /* a stored image: label byte, then 784 pixel bytes */
#define PER_KEY 1024    /* images per data key (803,840 bytes < PSL_MAX_VALUE) */
#define DNN_CHUNK 16384 /* floats per parameter key: 64 KiB */
#define OFF_W1 0
#define OFF_B1 (OFF_W1 + NHID * NIN)
#define OFF_W2 (OFF_B1 + NHID)
#define OFF_B2 (OFF_W2 + NOUT * NHID)
#define NPARAM (OFF_B2 + NOUT) /* 101,770 floats */
#define NCHUNK ((NPARAM + DNN_CHUNK - 1) / DNN_CHUNK)

static unsigned long long g_get, g_put; /* bytes through the KVS by this invocation */
static unsigned g_locks;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int kv_get(const char *key, void *buf, size_t cap) {
    int n = psl_get(key, strlen(key), buf, cap);
    if (n > 0)
        g_get += (unsigned long long)(n < (int)cap ? n : (int)cap);
    return n;
}

static int kv_put(const char *key, const void *buf, size_t len) {
    g_put += len;
    return psl_put(key, strlen(key), buf, len);
}

static int lock(const char *name) {
    g_locks++;
    return psl_lock(name);
}

/* Acquire and release a lock: publishes this invocation's writes (a release makes them durable
 * and multicast) and, on acquire, waits for every write released earlier under that name. */
static int sync_point(const char *name) {
    int rc = lock(name);
    if (rc == 0)
        rc = psl_unlock(name);
    return rc;
}

/* The loader releases this lock after each put; readers of the data acquire it first. */
#define DATA_LOCK "dnn/data"

static size_t chunk_len(int c) {
    size_t n = NPARAM - (size_t)c * DNN_CHUNK;
    return n < DNN_CHUNK ? n : DNN_CHUNK;
}

/* Read the parameter vector stored under PREFIX/C; absent chunks read as zeros when zero_ok. */
static int get_vec(const char *prefix, float *v, int zero_ok) {
    char key[256];
    for (int c = 0; c < NCHUNK; c++) {
        size_t n = chunk_len(c) * sizeof(float);
        snprintf(key, sizeof key, "%s/%d", prefix, c);
        int got = kv_get(key, v + (size_t)c * DNN_CHUNK, n);
        if (got < 0 && zero_ok) {
            memset(v + (size_t)c * DNN_CHUNK, 0, n);
            continue;
        }
        if (got != (int)n) {
            fprintf(stderr, "error %s: %d bytes, want %zu\n", key, got, n);
            return -1;
        }
    }
    return 0;
}

static int put_vec(const char *prefix, const float *v) {
    char key[256];
    for (int c = 0; c < NCHUNK; c++) {
        snprintf(key, sizeof key, "%s/%d", prefix, c);
        if (kv_put(key, v + (size_t)c * DNN_CHUNK, chunk_len(c) * sizeof(float)) != 0) {
            fprintf(stderr, "error put %s\n", key);
            return -1;
        }
    }
    return 0;
}

/* Images [first, first+n) of set "tx" (training) or "ex" (test), REC bytes each. */
static uint8_t *load_images(const char *set, long first, long n) {
    if (sync_point(DATA_LOCK) != 0) { /* see every image the loader released */
        fprintf(stderr, "error: lock dnn/data\n");
        return NULL;
    }
    uint8_t *out = malloc((size_t)n * REC);
    uint8_t *chunk = malloc((size_t)PER_KEY * REC);
    if (!out || !chunk)
        goto fail;
    for (long i = first; i < first + n;) {
        long j = i / PER_KEY, off = i % PER_KEY;
        long take = PER_KEY - off;
        if (take > first + n - i)
            take = first + n - i;
        char key[64];
        snprintf(key, sizeof key, "dnn/data/%s/%ld", set, j);
        int got = kv_get(key, chunk, (size_t)PER_KEY * REC);
        if (got < (off + take) * REC) {
            fprintf(stderr, "error %s: %d bytes (load the data first)\n", key, got);
            goto fail;
        }
        memcpy(out + (size_t)(i - first) * REC, chunk + (size_t)off * REC, (size_t)take * REC);
        i += take;
    }
    free(chunk);
    return out;
fail:
    free(out);
    free(chunk);
    return NULL;
}

static uint64_t g_rng;
static uint32_t rnd(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}

/* Forward pass of one image: hidden activations h, softmax p. @return the cross-entropy loss. */
static float forward(const float *w, const float *x, int label, float *h, float *p) {
    const float *w1 = w + OFF_W1, *b1 = w + OFF_B1, *w2 = w + OFF_W2, *b2 = w + OFF_B2;
    for (int j = 0; j < NHID; j++) {
        const float *r = w1 + (size_t)j * NIN;
        float s = b1[j];
        for (int i = 0; i < NIN; i++)
            s += r[i] * x[i];
        h[j] = s > 0 ? s : 0;
    }
    float mx = -1e30f;
    for (int o = 0; o < NOUT; o++) {
        const float *r = w2 + o * NHID;
        float s = b2[o];
        for (int j = 0; j < NHID; j++)
            s += r[j] * h[j];
        p[o] = s;
        if (s > mx)
            mx = s;
    }
    float z = 0;
    for (int o = 0; o < NOUT; o++) {
        p[o] = expf(p[o] - mx);
        z += p[o];
    }
    for (int o = 0; o < NOUT; o++)
        p[o] /= z;
    return -logf(p[label] > 1e-12f ? p[label] : 1e-12f);
}

static void to_floats(const uint8_t *rec, float *x) {
    for (int i = 0; i < NIN; i++)
        x[i] = (float)rec[1 + i] * (1.0f / 255.0f);
}

/* Add the gradient of one image's loss to g. */
static void backward(const float *w, const float *x, int label, const float *h, const float *p,
                     float *g) {
    const float *w2 = w + OFF_W2;
    float *g1 = g + OFF_W1, *gb1 = g + OFF_B1, *g2 = g + OFF_W2, *gb2 = g + OFF_B2;
    float d[NOUT], dh[NHID];
    for (int o = 0; o < NOUT; o++)
        d[o] = p[o] - (o == label ? 1.0f : 0.0f);
    for (int j = 0; j < NHID; j++)
        dh[j] = 0;
    for (int o = 0; o < NOUT; o++) {
        gb2[o] += d[o];
        for (int j = 0; j < NHID; j++) {
            g2[o * NHID + j] += d[o] * h[j];
            dh[j] += d[o] * w2[o * NHID + j];
        }
    }
    for (int j = 0; j < NHID; j++) {
        if (h[j] <= 0)
            continue;
        float dj = dh[j];
        gb1[j] += dj;
        float *r = g1 + (size_t)j * NIN;
        for (int i = 0; i < NIN; i++)
            r[i] += dj * x[i];
    }
}

static int cmd_put(const char *key, const uint8_t *body, size_t len) {
    /* Released under DATA_LOCK: a lambda on another worker acquires it before reading the data,
     * so release consistency hands it this write (eventual consistency alone could be late). */
    if (kv_put(key, body, len) != 0 || sync_point(DATA_LOCK) != 0) {
        fprintf(stderr, "error put %s (%zu bytes)\n", key, len);
        return 1;
    }
    printf("ok put=%zu\n", len);
    return 0;
}

static int cmd_init(const char *run, unsigned seed) {
    float *w = calloc(NPARAM, sizeof(float));
    if (!w)
        return 1;
    g_rng = seed;
    float a1 = sqrtf(6.0f / (NIN + NHID)), a2 = sqrtf(6.0f / (NHID + NOUT));
    for (int i = 0; i < NHID * NIN; i++)
        w[OFF_W1 + i] = ((float)rnd() / 2147483648.0f * 2 - 1) * a1;
    for (int i = 0; i < NOUT * NHID; i++)
        w[OFF_W2 + i] = ((float)rnd() / 2147483648.0f * 2 - 1) * a2;
    char pre[128], lk[128];
    snprintf(pre, sizeof pre, "dnn/%s/p", run);
    snprintf(lk, sizeof lk, "dnn/%s/ep", run);
    int rc = put_vec(pre, w) || sync_point(lk);
    free(w);
    if (rc)
        return 1;
    printf("ok params=%d chunks=%d put=%llu\n", NPARAM, NCHUNK, g_put);
    return 0;
}

/* Abort a run: dnn/RUN/abort holds the reason; publishing it under the barrier's lock hands it
 * to every lambda waiting at the barrier at its next look (release consistency), so the others
 * stop within milliseconds instead of waiting for a lambda that will never arrive. The driver
 * sends "abort RUN REASON" when a lambda fails (trap, timeout, lost worker); a lambda that fails
 * on its own writes it too. */
static int g_aborted; /* this invocation saw the run aborted */

static int abort_run(const char *run, const char *reason) {
    char key[128], lk[128];
    snprintf(key, sizeof key, "dnn/%s/abort", run);
    snprintf(lk, sizeof lk, "dnn/%s/bar", run);
    return kv_put(key, reason, strlen(reason)) != 0 || sync_point(lk) != 0;
}

static int cmd_abort(const char *run, const char *reason) {
    if (abort_run(run, reason) != 0) {
        fprintf(stderr, "error cannot publish the abort of run %s\n", run);
        return 1;
    }
    printf("ok aborted %s\n", run);
    return 0;
}

/* Whether the run was aborted (the reason goes to stderr, the function's error answer). */
static int aborted(const char *run) {
    char key[128], why[256];
    snprintf(key, sizeof key, "dnn/%s/abort", run);
    int n = kv_get(key, why, sizeof why - 1);
    if (n <= 0)
        return 0;
    why[n < (int)sizeof why - 1 ? n : (int)sizeof why - 1] = 0;
    fprintf(stderr, "error run aborted: %s\n", why);
    g_aborted = 1;
    return 1;
}

/* Synchronous barrier: the arrival counter dnn/RUN/bar counts every lambda's arrivals of every
 * step; step t is complete when it reaches K*(t+1). Each arrival happens under the lock, and the
 * lambda's gradient writes precede its release, so whoever then sees the count complete under
 * the lock has applied every gradient of step t (release consistency). A run aborted while we
 * wait ends the wait with an error. */
static int barrier(const char *run, int K, long t) {
    char lk[128], key[128], v[32];
    snprintf(lk, sizeof lk, "dnn/%s/bar", run);
    snprintf(key, sizeof key, "dnn/%s/bar", run);
    long want = (long)K * (t + 1), have;
    if (lock(lk) != 0)
        return -1;
    int n = kv_get(key, v, sizeof v - 1);
    have = n > 0 ? (v[n] = 0, strtol(v, NULL, 10)) : 0;
    have++;
    snprintf(v, sizeof v, "%ld", have);
    kv_put(key, v, strlen(v));
    if (psl_unlock(lk) != 0)
        return -1;
    for (unsigned spin = 0; have < want; spin++) {
        struct timespec ts = {0, spin < 20 ? 200000 : 1000000};
        nanosleep(&ts, NULL);
        if (lock(lk) != 0)
            return -1;
        n = kv_get(key, v, sizeof v - 1);
        have = n > 0 ? (v[n] = 0, strtol(v, NULL, 10)) : 0;
        int stop = have < want && aborted(run);
        if (psl_unlock(lk) != 0 || stop)
            return -1;
    }
    return 0;
}

static int cmd_train(const char *run, int sync, int K, int k, int epoch, long N, int B, float lr,
                     int every) {
    long per = N / K, steps = per / B;
    float *w = malloc(NPARAM * sizeof(float)), *g = malloc(NPARAM * sizeof(float));
    float *own = NULL, *tmp = malloc(NPARAM * sizeof(float)), *base = NULL;
    float *rest = NULL, *others = NULL; /* async: the other lambdas' deltas and their sum */
    long *seen = NULL;                  /* async: the version of each delta in `others` */
    long *order = malloc((size_t)(per > 0 ? per : 1) * sizeof(long));
    uint8_t *data = NULL;
    char pre[128], ep[128];
    double loss = 0;
    int rc = 1;
    if (!w || !g || !tmp || !order || steps < 1) {
        fprintf(stderr, "error shard of %ld images, batch %d: no step (or out of memory)\n", per,
                B);
        goto done;
    }
    snprintf(ep, sizeof ep, "dnn/%s/ep", run);
    /* Start of the epoch: see every write published at the end of the previous one. */
    if (sync_point(ep) != 0 || !(data = load_images("tx", (long)k * per, per)))
        goto done;
    snprintf(pre, sizeof pre, "dnn/%s/p", run);
    if (sync) {
        if (get_vec(pre, w, 0) != 0)
            goto done;
    } else {
        own = malloc(NPARAM * sizeof(float));
        base = malloc(NPARAM * sizeof(float));
        rest = calloc(NPARAM, sizeof(float));
        others = malloc((size_t)K * NPARAM * sizeof(float));
        seen = malloc((size_t)K * sizeof(long));
        if (!rest || !others || !seen)
            goto done;
        for (int j = 0; j < K; j++)
            seen[j] = -1; /* read every delta at the first step */
        if (!own || !base || get_vec(pre, base, 0) != 0)
            goto done;
        snprintf(pre, sizeof pre, "dnn/%s/d/%d", run, k);
        if (get_vec(pre, own, 1) != 0)
            goto done;
    }
    g_rng = ((uint64_t)epoch << 32) ^ (uint64_t)(k * 7919 + 1);
    for (long i = 0; i < per; i++)
        order[i] = i;
    for (long i = per - 1; i > 0; i--) {
        long j = (long)(rnd() % (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    float x[NIN], h[NHID], p[NOUT];
    double t_start = now_s(), t_comp = 0, t_wait = 0;
    for (long s = 0; s < steps; s++) {
        if (!sync) {
            /* Hogwild: current parameters = initial + every lambda's published delta, as far
             * as they have reached this worker (eventual consistency). A lambda's delta is read
             * again only when its version key dnn/RUN/dv/j (put with each publish, after the
             * delta) has changed: the others' sum is kept in `rest`. */
            int changed = 0;
            for (int j = 0; j < K; j++) {
                if (j == k)
                    continue;
                char vk[128], v[32];
                snprintf(vk, sizeof vk, "dnn/%s/dv/%d", run, j);
                int n = kv_get(vk, v, sizeof v - 1);
                long ver = n > 0 ? (v[n] = 0, strtol(v, NULL, 10)) : 0;
                if (ver == seen[j])
                    continue;
                snprintf(pre, sizeof pre, "dnn/%s/d/%d", run, j);
                if (get_vec(pre, others + (size_t)j * NPARAM, 1) != 0)
                    goto done;
                seen[j] = ver;
                changed = 1;
            }
            if (changed) {
                memset(rest, 0, NPARAM * sizeof(float));
                for (int j = 0; j < K; j++)
                    if (j != k)
                        for (int i = 0; i < NPARAM; i++)
                            rest[i] += others[(size_t)j * NPARAM + i];
            }
            for (int i = 0; i < NPARAM; i++)
                w[i] = base[i] + rest[i] + own[i];
        }
        double t0 = now_s();
        memset(g, 0, NPARAM * sizeof(float));
        for (int b = 0; b < B; b++) {
            const uint8_t *rec = data + (size_t)order[s * B + b] * REC;
            to_floats(rec, x);
            loss += forward(w, x, rec[0], h, p);
            backward(w, x, rec[0], h, p, g);
        }
        float scale = lr / (float)B;
        t_comp += now_s() - t0;
        if (sync) {
            snprintf(pre, sizeof pre, "dnn/%s/g/%ld/%d", run, s & 1, k);
            if (put_vec(pre, g) != 0)
                goto done;
            t0 = now_s();
            if (barrier(run, K, (long)epoch * steps + s) != 0)
                goto done;
            t_wait += now_s() - t0;
            /* Every lambda sums the same K gradients in the same order: identical parameters. */
            for (int j = 0; j < K; j++) {
                const float *gj = g;
                if (j != k) {
                    snprintf(pre, sizeof pre, "dnn/%s/g/%ld/%d", run, s & 1, j);
                    if (get_vec(pre, tmp, 0) != 0)
                        goto done;
                    gj = tmp;
                }
                if (j == 0)
                    memcpy(own ? own : (own = malloc(NPARAM * sizeof(float))), gj,
                           NPARAM * sizeof(float));
                else
                    for (int i = 0; i < NPARAM; i++)
                        own[i] += gj[i];
            }
            float sc = scale / (float)K;
            for (int i = 0; i < NPARAM; i++)
                w[i] -= sc * own[i];
        } else {
            for (int i = 0; i < NPARAM; i++)
                own[i] -= scale * g[i];
            snprintf(pre, sizeof pre, "dnn/%s/d/%d", run, k);
            /* Publish every `every` steps (and at the last): fewer flushes, staler reads. No lock
             * and no wait: psl_publish sends the delta on its way to the other workers (eventual
             * consistency) and training goes on. */
            if ((s + 1) % every != 0 && s + 1 != steps)
                continue;
            if (put_vec(pre, own) != 0)
                goto done;
            char vk[128], v[32];
            snprintf(vk, sizeof vk, "dnn/%s/dv/%d", run, k);
            snprintf(v, sizeof v, "%ld", (long)epoch * steps + s + 1);
            if (kv_put(vk, v, strlen(v)) != 0)
                goto done;
            t0 = now_s();
            if (psl_publish() != 0)
                goto done;
            t_wait += now_s() - t0;
        }
    }
    if (sync && k == 0) {
        snprintf(pre, sizeof pre, "dnn/%s/p", run);
        if (put_vec(pre, w) != 0)
            goto done;
    }
    if (sync_point(ep) != 0)
        goto done;
    printf("ok steps=%ld images=%ld loss=%.6f get=%llu put=%llu locks=%u compute_s=%.3f "
           "wait_s=%.3f steps_s=%.3f\n",
           steps, steps * B, loss / (double)(steps * B), g_get, g_put, g_locks, t_comp, t_wait,
           now_s() - t_start);
    rc = 0;
done:
    if (rc && sync && !g_aborted) { /* tell the others before they wait for us at the barrier */
        char why[64];
        snprintf(why, sizeof why, "lambda %d failed in epoch %d", k, epoch + 1);
        (void)abort_run(run, why);
    }
    free(w);
    free(g);
    free(own);
    free(tmp);
    free(base);
    free(rest);
    free(others);
    free(seen);
    free(order);
    free(data);
    return rc;
}

static int cmd_eval(const char *run, int sync, int K, long N) {
    float *w = malloc(NPARAM * sizeof(float)), *tmp = malloc(NPARAM * sizeof(float));
    uint8_t *data = NULL;
    char pre[128], ep[128];
    int rc = 1;
    if (!w || !tmp)
        goto done;
    snprintf(ep, sizeof ep, "dnn/%s/ep", run);
    snprintf(pre, sizeof pre, "dnn/%s/p", run);
    if (sync_point(ep) != 0 || get_vec(pre, w, 0) != 0 || !(data = load_images("ex", 0, N)))
        goto done;
    for (int j = 0; !sync && j < K; j++) {
        snprintf(pre, sizeof pre, "dnn/%s/d/%d", run, j);
        if (get_vec(pre, tmp, 1) != 0)
            goto done;
        for (int i = 0; i < NPARAM; i++)
            w[i] += tmp[i];
    }
    float x[NIN], h[NHID], p[NOUT];
    double loss = 0;
    long right = 0;
    for (long i = 0; i < N; i++) {
        const uint8_t *rec = data + (size_t)i * REC;
        to_floats(rec, x);
        loss += forward(w, x, rec[0], h, p);
        int best = 0;
        for (int o = 1; o < NOUT; o++)
            if (p[o] > p[best])
                best = o;
        right += best == rec[0];
    }
    printf("ok accuracy=%.4f loss=%.6f n=%ld get=%llu\n", (double)right / (double)N,
           loss / (double)N, N, g_get);
    rc = 0;
done:
    free(w);
    free(tmp);
    free(data);
    return rc;
}

int main(void) {
    size_t cap = 1 << 16, len = 0;
    uint8_t *req = malloc(cap + 1);
    for (size_t n; req && (n = fread(req + len, 1, cap - len, stdin)) > 0;) {
        len += n;
        if (len == cap) {
            uint8_t *r = realloc(req, cap * 2 + 1);
            if (!r)
                break;
            req = r;
            cap *= 2;
        }
    }
    if (!req)
        return 1;
    req[len] = 0;
    uint8_t *nl = memchr(req, '\n', len);
    size_t hlen = nl ? (size_t)(nl - req) : len;
    char line[512];
    if (hlen >= sizeof line) {
        fprintf(stderr, "error request line too long\n");
        return 64;
    }
    memcpy(line, req, hlen);
    line[hlen] = 0;
    char a[10][128];
    int n = sscanf(line, "%127s %127s %127s %127s %127s %127s %127s %127s %127s %127s", a[0], a[1],
                   a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
    int rc = 64;
    if (n == 2 && !strcmp(a[0], "put") && nl)
        rc = cmd_put(a[1], nl + 1, len - hlen - 1);
    else if (n == 3 && !strcmp(a[0], "init"))
        rc = cmd_init(a[1], (unsigned)strtoul(a[2], NULL, 10));
    else if ((n == 9 || n == 10) && !strcmp(a[0], "train")) {
        int K = atoi(a[3]), k = atoi(a[4]), B = atoi(a[7]);
        float lr = strtof(a[8], NULL);
        int every = n == 10 ? atoi(a[9]) : 1;
        if (K >= 1 && k >= 0 && k < K && B >= 1 && lr > 0 && every >= 1)
            rc = cmd_train(a[1], !strcmp(a[2], "sync"), K, k, atoi(a[5]), atol(a[6]), B, lr, every);
    } else if (n >= 2 && !strcmp(a[0], "abort")) {
        const char *why = strstr(line, a[1]) + strlen(a[1]);
        while (*why == ' ')
            why++;
        rc = cmd_abort(a[1], *why ? why : "aborted by the driver");
    } else if (n == 5 && !strcmp(a[0], "eval") && atoi(a[3]) >= 1)
        rc = cmd_eval(a[1], !strcmp(a[2], "sync"), atoi(a[3]), atol(a[4]));
    if (rc == 64)
        fprintf(stderr,
                "error usage: put KEY | init RUN SEED | train RUN MODE K k EPOCH N B LR [P] | "
                "eval RUN MODE K N | abort RUN [REASON]\n");
    free(req);
    return rc;
}
