/* YCSB generators, workloads, records and histograms (see ycsb.h). Written for psl from the
 * published definitions (Gray et al. 1994 for the zipfian; the YCSB core workload properties);
 * compiles for the host and for wasm32-wasi. */
#include "ycsb.h"

#include <math.h>
#include <string.h>

/* zeta(10^10, 0.99): YCSB's scrambled zipfian draws over this many items so that the popular
 * set does not depend on the record count; the sum is too long to compute per run. */
#define SCRAMBLED_ITEMS 10000000000ull
#define SCRAMBLED_ZETAN 26.46902820178302

const char *ycsb_op_name(ycsb_op op) {
    static const char *const names[YCSB_NOPS] = {"READ", "UPDATE", "INSERT", "RMW"};
    return (unsigned)op < YCSB_NOPS ? names[op] : "?";
}

const char *ycsb_dist_name(ycsb_dist d) {
    switch (d) {
    case YCSB_ZIPFIAN: return "zipfian";
    case YCSB_UNIFORM: return "uniform";
    case YCSB_LATEST: return "latest";
    }
    return "?";
}

int ycsb_dist_parse(const char *s, ycsb_dist *out) {
    if (strcmp(s, "zipfian") == 0)
        *out = YCSB_ZIPFIAN;
    else if (strcmp(s, "uniform") == 0)
        *out = YCSB_UNIFORM;
    else if (strcmp(s, "latest") == 0)
        *out = YCSB_LATEST;
    else
        return -1;
    return 0;
}

int ycsb_workload_get(char name, ycsb_workload *w) {
    memset(w, 0, sizeof *w);
    if (name >= 'A' && name <= 'Z')
        name = (char)(name - 'A' + 'a');
    w->name = name;
    w->dist = YCSB_ZIPFIAN;
    switch (name) {
    case 'a': w->p[YCSB_READ] = 0.5, w->p[YCSB_UPDATE] = 0.5; break;
    case 'b': w->p[YCSB_READ] = 0.95, w->p[YCSB_UPDATE] = 0.05; break;
    case 'c': w->p[YCSB_READ] = 1.0; break;
    case 'd':
        w->p[YCSB_READ] = 0.95, w->p[YCSB_INSERT] = 0.05;
        w->dist = YCSB_LATEST;
        break;
    case 'f': w->p[YCSB_READ] = 0.5, w->p[YCSB_RMW] = 0.5; break;
    default: return -1;
    }
    return 0;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ycsb_rng_seed(ycsb_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
uint64_t ycsb_rng_next(ycsb_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double ycsb_rng_double(ycsb_rng *r) {
    return (double)(ycsb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t ycsb_fnv64(uint64_t v) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 0x100000001b3ull;
        v >>= 8;
    }
    return h;
}

static double zeta_range(uint64_t from, uint64_t to, double theta) {
    double s = 0;
    for (uint64_t i = from; i < to; i++)
        s += 1.0 / pow((double)(i + 1), theta);
    return s;
}

static void zipf_derive(ycsb_zipf *z) {
    z->eta = (1.0 - pow(2.0 / (double)z->items, 1.0 - z->theta)) / (1.0 - z->zeta2 / z->zetan);
}

void ycsb_zipf_init(ycsb_zipf *z, uint64_t items, double theta, double zetan) {
    z->items = items ? items : 1;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zeta2 = zeta_range(0, 2, theta);
    z->zetan = zetan >= 0 ? zetan : zeta_range(0, z->items, theta);
    z->half_pow_theta = 1.0 + pow(0.5, theta);
    zipf_derive(z);
}

void ycsb_zipf_grow(ycsb_zipf *z, uint64_t items) {
    if (items <= z->items)
        return;
    z->zetan += zeta_range(z->items, items, z->theta);
    z->items = items;
    zipf_derive(z);
}

uint64_t ycsb_zipf_next(ycsb_zipf *z, ycsb_rng *r) {
    double u = ycsb_rng_double(r);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < z->half_pow_theta)
        return z->items > 1 ? 1 : 0;
    uint64_t v = (uint64_t)((double)z->items * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return v < z->items ? v : z->items - 1;
}

void ycsb_gen_init(ycsb_gen *g, const ycsb_workload *w, uint64_t records, uint32_t thread,
                   uint64_t seed, uint64_t inserted, double zetan) {
    memset(g, 0, sizeof *g);
    g->w = *w;
    g->records = records ? records : 1;
    g->thread = thread;
    g->inserted = inserted;
    ycsb_rng_seed(&g->rng, seed ^ ((uint64_t)thread * 0x9e3779b97f4a7c15ull));
    if (w->dist == YCSB_ZIPFIAN)
        ycsb_zipf_init(&g->zipf, SCRAMBLED_ITEMS, YCSB_THETA, SCRAMBLED_ZETAN);
    else if (w->dist == YCSB_LATEST)
        ycsb_zipf_init(&g->zipf, g->records + inserted, YCSB_THETA, zetan);
}

double ycsb_zeta(uint64_t n, double theta) {
    return zeta_range(0, n, theta);
}

ycsb_op ycsb_gen_op(ycsb_gen *g) {
    double u = ycsb_rng_double(&g->rng), acc = 0;
    for (int op = 0; op < YCSB_NOPS; op++) {
        acc += g->w.p[op];
        if (u < acc && g->w.p[op] > 0)
            return (ycsb_op)op;
    }
    for (int op = YCSB_NOPS - 1; op >= 0; op--) /* rounding: the last operation in the mix */
        if (g->w.p[op] > 0)
            return (ycsb_op)op;
    return YCSB_READ;
}

/* Logical item (0 .. records + inserted - 1) to key number. */
static uint64_t item_key(const ycsb_gen *g, uint64_t item) {
    if (item < g->records)
        return item;
    return g->records + (uint64_t)g->thread * YCSB_INSERT_STRIDE + (item - g->records);
}

uint64_t ycsb_gen_key(ycsb_gen *g) {
    switch (g->w.dist) {
    case YCSB_ZIPFIAN: return ycsb_fnv64(ycsb_zipf_next(&g->zipf, &g->rng)) % g->records;
    case YCSB_UNIFORM: return ycsb_rng_next(&g->rng) % g->records;
    case YCSB_LATEST: {
        uint64_t items = g->records + g->inserted;
        ycsb_zipf_grow(&g->zipf, items);
        return item_key(g, items - 1 - ycsb_zipf_next(&g->zipf, &g->rng));
    }
    }
    return 0;
}

uint64_t ycsb_gen_insert_key(ycsb_gen *g) {
    uint64_t k = item_key(g, g->records + g->inserted);
    g->inserted++;
    return k;
}

size_t ycsb_key_name(uint64_t k, char *out) {
    char digits[24];
    size_t n = 0;
    uint64_t h = ycsb_fnv64(k);
    do {
        digits[n++] = (char)('0' + h % 10);
        h /= 10;
    } while (h);
    memcpy(out, "user", 4);
    for (size_t i = 0; i < n; i++)
        out[4 + i] = digits[n - 1 - i];
    out[4 + n] = 0;
    return 4 + n;
}

void ycsb_value_init(uint8_t *buf, ycsb_rng *r) {
    /* Printable field data, as YCSB's random byte iterator produces (' ' .. '~'). */
    for (size_t i = 0; i < YCSB_VALUE_LEN; i += 8) {
        uint64_t x = ycsb_rng_next(r);
        for (size_t j = 0; j < 8 && i + j < YCSB_VALUE_LEN; j++, x >>= 8)
            buf[i + j] = (uint8_t)(' ' + (x & 0xff) % 95);
    }
}

static void put_hex(uint8_t *p, uint64_t v, int digits) {
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        p[i] = (uint8_t)hex[v & 15];
}

void ycsb_value_stamp(uint8_t *buf, uint64_t k, uint32_t v) {
    buf[0] = 'k';
    put_hex(buf + 1, k, 16);
    buf[17] = ' ';
    buf[18] = 'v';
    put_hex(buf + 19, v, 8);
    buf[27] = ' ';
}

bool ycsb_value_check(const uint8_t *buf, size_t len, uint64_t k) {
    if (len != YCSB_VALUE_LEN)
        return false;
    uint8_t tag[17];
    tag[0] = 'k';
    put_hex(tag + 1, k, 16);
    return memcmp(buf, tag, sizeof tag) == 0 && buf[17] == ' ' && buf[18] == 'v';
}

uint32_t ycsb_hist_bucket(uint64_t ns) {
    if (ns < 2 * YCSB_HIST_SUB)
        return (uint32_t)ns;
    int m = 63 - __builtin_clzll(ns); /* m >= 7 */
    if (m > 39)
        return YCSB_HIST_BUCKETS - 1;
    return (uint32_t)(2 * YCSB_HIST_SUB + (m - 7) * YCSB_HIST_SUB +
                      (int)((ns >> (m - 6)) & (YCSB_HIST_SUB - 1)));
}

uint64_t ycsb_hist_bucket_mid(uint32_t b) {
    if (b < 2 * YCSB_HIST_SUB)
        return b;
    uint32_t m = 7 + (b - 2 * YCSB_HIST_SUB) / YCSB_HIST_SUB;
    uint64_t sub = (b - 2 * YCSB_HIST_SUB) % YCSB_HIST_SUB;
    uint64_t width = 1ull << (m - 6);
    return ((YCSB_HIST_SUB + sub) << (m - 6)) + width / 2;
}

void ycsb_hist_add(ycsb_hist *h, uint64_t ns) {
    h->b[ycsb_hist_bucket(ns)]++;
    h->n++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void ycsb_hist_merge(ycsb_hist *dst, const ycsb_hist *src) {
    for (uint32_t i = 0; i < YCSB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    dst->sum_ns += src->sum_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t ycsb_hist_quantile(const ycsb_hist *h, double q) {
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (rank < 1)
        rank = 1;
    for (uint32_t i = 0; i < YCSB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t mid = ycsb_hist_bucket_mid(i);
            return mid < h->max_ns ? mid : h->max_ns;
        }
    }
    return h->max_ns;
}

void ycsb_stats_merge(ycsb_stats *dst, const ycsb_stats *src) {
    for (int op = 0; op < YCSB_NOPS; op++) {
        dst->ops[op] += src->ops[op];
        dst->errors[op] += src->errors[op];
        ycsb_hist_merge(&dst->hist[op], &src->hist[op]);
    }
    dst->notfound += src->notfound;
    dst->stale += src->stale;
    dst->bad += src->bad;
}
