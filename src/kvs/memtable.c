/* The memtable: a hash map of versioned entries with last-writer-wins merge, plus the pending
 * batch of local writes. Invariant: an entry is immutable once in the map; a newer write replaces
 * the whole entry, so readers copy out under the read lock without torn values. */
#include "kvs/kvs.h"

#include "base/base.h"
#include "base/err.h"
#include "base/hlc.h"
#include "base/map.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct entry {
    kvs_version ver;
    uint32_t klen, vlen;
    bool tomb;
    uint8_t data[]; /* key, then value */
} entry;

struct kvs {
    pthread_rwlock_t lock;
    map m;
    hlc clock;
    uint64_t writer;
    uint64_t own_hlc; /* greatest HLC of a version of ours held (kvs_own_hlc) */
    /* pending batch of local writes: encoded updates without the header */
    uint8_t *pend;
    size_t npend, cappend;
    uint32_t pend_count;
    size_t snap_bytes; /* what a snapshot would encode at most: refusals and estimates without a
                          scan */
    kvs_stats st;
};

/* Upper bound of one entry's encoding in a snapshot (kvs_snapshot_parts uses the same sum). */
static size_t snap_size(const entry *e) {
    return 1 + 16 + 10 + e->klen + (e->tomb ? 0 : 10 + e->vlen);
}

int kvs_version_cmp(kvs_version a, kvs_version b) {
    if (a.hlc != b.hlc)
        return a.hlc < b.hlc ? -1 : 1;
    if (a.writer != b.writer)
        return a.writer < b.writer ? -1 : 1;
    return 0;
}

kvs *kvs_new(uint64_t writer) {
    kvs *k = xcalloc(1, sizeof *k);
    pthread_rwlock_init(&k->lock, NULL);
    map_init(&k->m);
    hlc_init(&k->clock);
    k->writer = writer;
    return k;
}

void kvs_free(kvs *k) {
    if (!k)
        return;
    size_t it = 0;
    entry *e;
    while ((e = map_next(&k->m, &it)) != NULL)
        free(e);
    map_fini(&k->m);
    pthread_rwlock_destroy(&k->lock);
    free(k->pend);
    free(k);
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kvs_get(kvs *k, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen,
            kvs_version *ver) {
    pthread_rwlock_rdlock(&k->lock);
    entry *e = map_get(&k->m, key, klen);
    __atomic_add_fetch(&k->st.gets, 1, __ATOMIC_RELAXED);
    if (!e || e->tomb) {
        if (e && ver) /* a delete decided the answer: its version tells whose */
            *ver = e->ver;
        pthread_rwlock_unlock(&k->lock);
        return ERR_NOTFOUND;
    }
    *vlen = e->vlen;
    if (ver)
        *ver = e->ver;
    if (cap && buf)
        memcpy(buf, e->data + e->klen, cap < e->vlen ? cap : e->vlen);
    pthread_rwlock_unlock(&k->lock);
    return 0;
}

int kvs_get_obs(kvs *k, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen,
                kvs_obs *obs) {
    kvs_version ver = {0, 0};
    int rc = kvs_get(k, key, klen, buf, cap, vlen, obs ? &ver : NULL);
    if (obs && ver.writer == k->writer && ver.hlc > obs->read_own_hlc)
        obs->read_own_hlc = ver.hlc;
    return rc;
}

/* Requires the write lock. */
static int merge_locked(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
                        bool tomb, kvs_version ver) {
    entry *old = map_get(&k->m, key, klen);
    hlc_observe(&k->clock, ver.hlc);
    if (ver.writer == k->writer && ver.hlc > k->own_hlc)
        k->own_hlc = ver.hlc;
    if (old && kvs_version_cmp(ver, old->ver) <= 0) {
        k->st.stale++;
        return 0;
    }
    if (old && !old->tomb && !tomb && old->vlen == vlen) {
        /* Same size (every YCSB update): overwrite in place, no allocation under the lock.
         * Safe because every reader copies out under the read lock. */
        old->ver = ver;
        if (vlen)
            memcpy(old->data + klen, val, vlen);
        return 1;
    }
    entry *e = xmalloc(sizeof *e + klen + (tomb ? 0 : vlen));
    e->ver = ver;
    e->klen = (uint32_t)klen;
    e->vlen = tomb ? 0 : (uint32_t)vlen;
    e->tomb = tomb;
    memcpy(e->data, key, klen);
    if (!tomb && vlen)
        memcpy(e->data + klen, val, vlen);
    map_put(&k->m, e->data, klen, e);
    k->snap_bytes += snap_size(e);
    if (old) {
        if (!old->tomb)
            k->st.keys--;
        k->snap_bytes -= snap_size(old);
        free(old);
    }
    if (!tomb)
        k->st.keys++;
    return 1;
}

int kvs_merge(kvs *k, const void *key, size_t klen, const void *val, size_t vlen, bool tomb,
              kvs_version ver) {
    if (klen > KVS_MAX_KEY || vlen > KVS_MAX_VALUE)
        return ERR_LIMIT;
    pthread_rwlock_wrlock(&k->lock);
    int r = merge_locked(k, key, klen, val, vlen, tomb, ver);
    if (r)
        k->st.applied++;
    pthread_rwlock_unlock(&k->lock);
    return r;
}

/* ---- batch encoding (docs/kvs.md) ---- */

enum { BATCH_FORMAT = 1, U_PUT = 1, U_DEL = 2 };

/* Every batch this file makes (taken pending writes, snapshot parts) starts with a BATCH_HDR-byte
 * header: the format byte and the update count as a varint padded to 5 bytes, so that the count
 * can be written after the updates. The pending buffer keeps those bytes free in front of its
 * updates: when the whole pending batch is taken at once, the header is written there and the
 * buffer itself is handed out, so kvs_take_batch copies nothing while it holds the write lock. */
#define BATCH_HDR 6u

static void put_batch_header(uint8_t *out, uint32_t count) {
    out[0] = BATCH_FORMAT;
    for (int i = 0; i < 5; i++) /* count < 2^32 */
        out[1 + i] = (uint8_t)(((uint64_t)count >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0);
}

static void pend_reserve(kvs *k, size_t n) {
    if (BATCH_HDR + k->npend + n <= k->cappend)
        return;
    size_t cap = k->cappend ? k->cappend : 256;
    while (cap < BATCH_HDR + k->npend + n)
        cap *= 2;
    k->pend = xrealloc(k->pend, cap);
    k->cappend = cap;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Requires the write lock. */
static void pend_append(kvs *k, uint8_t kind, kvs_version ver, const void *key, size_t klen,
                        const void *val, size_t vlen) {
    pend_reserve(k, 1 + 16 + 10 + klen + 10 + vlen);
    uint8_t *p = k->pend + BATCH_HDR + k->npend;
    size_t n = 0;
    p[n++] = kind;
    put_u64(p + n, ver.hlc);
    put_u64(p + n + 8, ver.writer);
    n += 16;
    n += put_varint(p + n, klen);
    memcpy(p + n, key, klen);
    n += klen;
    if (kind == U_PUT) {
        n += put_varint(p + n, vlen);
        if (vlen)
            memcpy(p + n, val, vlen);
        n += vlen;
    }
    k->npend += n;
    k->pend_count++;
}

static int local_write(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
                       bool tomb) {
    if (klen > KVS_MAX_KEY || vlen > KVS_MAX_VALUE)
        return ERR_LIMIT;
    pthread_rwlock_wrlock(&k->lock);
    kvs_version ver = {hlc_now(&k->clock, wall_ms()), k->writer};
    merge_locked(k, key, klen, val, vlen, tomb, ver);
    pend_append(k, tomb ? U_DEL : U_PUT, ver, key, klen, val, vlen);
    if (tomb)
        k->st.deletes++;
    else
        k->st.puts++;
    pthread_rwlock_unlock(&k->lock);
    return 0;
}

int kvs_put(kvs *k, const void *key, size_t klen, const void *val, size_t vlen) {
    return local_write(k, key, klen, val, vlen, false);
}

int kvs_delete(kvs *k, const void *key, size_t klen) {
    return local_write(k, key, klen, NULL, 0, true);
}

uint64_t kvs_own_hlc(kvs *k) {
    pthread_rwlock_rdlock(&k->lock);
    uint64_t h = k->own_hlc;
    pthread_rwlock_unlock(&k->lock);
    return h;
}

uint32_t kvs_pending(kvs *k) {
    pthread_rwlock_rdlock(&k->lock);
    uint32_t n = k->pend_count;
    pthread_rwlock_unlock(&k->lock);
    return n;
}

static size_t skip_update(const uint8_t *p, const uint8_t *end);
static size_t coalesce(uint8_t *u, size_t len, uint32_t *n);

void kvs_take_batch(kvs *k, size_t max, uint8_t **data, size_t *len, uint32_t *nupdates) {
    pthread_rwlock_wrlock(&k->lock);
    if (!k->pend_count) {
        pthread_rwlock_unlock(&k->lock);
        *data = NULL;
        *len = 0;
        *nupdates = 0;
        return;
    }
    uint8_t *out;
    size_t body;
    uint32_t n;
    if (!max || BATCH_HDR + k->npend <= max) {
        /* All of it: hand the buffer over; the header goes in its reserved front bytes. */
        out = k->pend;
        body = k->npend;
        n = k->pend_count;
        k->pend = xmalloc(k->cappend); /* same size again: pages are touched as writes come */
        k->npend = 0;
        k->pend_count = 0;
    } else {
        /* Cut after whole updates, at least one, within max bytes when possible. */
        uint8_t *pu = k->pend + BATCH_HDR;
        body = 0;
        n = 0;
        while (n < k->pend_count) {
            size_t u = skip_update(pu + body, pu + k->npend);
            if (max && n > 0 && BATCH_HDR + body + u > max)
                break;
            body += u;
            n++;
        }
        out = xmalloc(BATCH_HDR + body);
        memcpy(out + BATCH_HDR, pu, body);
        memmove(pu, pu + body, k->npend - body);
        k->npend -= body;
        k->pend_count -= n;
    }
    pthread_rwlock_unlock(&k->lock);
    /* Outside the lock: the batch is ours now. */
    uint32_t before = n;
    body = coalesce(out + BATCH_HDR, body, &n);
    if (n < before)
        __atomic_fetch_add(&k->st.coalesced, before - n, __ATOMIC_RELAXED);
    put_batch_header(out, n);
    *data = out;
    *len = BATCH_HDR + body;
    *nupdates = n;
}

typedef struct rd {
    const uint8_t *p, *end;
    bool bad;
} rd;

static uint64_t rd_varint(rd *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

/* Decode one update; on success the pointers point into the batch. */
typedef struct upd {
    uint8_t kind;
    kvs_version ver;
    const uint8_t *key, *val;
    size_t klen, vlen;
} upd;

static bool rd_update(rd *r, upd *u) {
    if (r->end - r->p < 17) {
        r->bad = true;
        return false;
    }
    u->kind = *r->p++;
    if (u->kind != U_PUT && u->kind != U_DEL) {
        r->bad = true;
        return false;
    }
    u->ver.hlc = get_u64(r->p);
    u->ver.writer = get_u64(r->p + 8);
    r->p += 16;
    u->klen = rd_varint(r);
    if (r->bad || u->klen > KVS_MAX_KEY || u->klen > (size_t)(r->end - r->p)) {
        r->bad = true;
        return false;
    }
    u->key = r->p;
    r->p += u->klen;
    u->val = NULL;
    u->vlen = 0;
    if (u->kind == U_PUT) {
        u->vlen = rd_varint(r);
        if (r->bad || u->vlen > KVS_MAX_VALUE || u->vlen > (size_t)(r->end - r->p)) {
            r->bad = true;
            return false;
        }
        u->val = r->p;
        r->p += u->vlen;
    }
    return true;
}

/* Length of one well-formed pending update (we encoded it ourselves). */
static size_t skip_update(const uint8_t *p, const uint8_t *end) {
    rd r = {p, end, false};
    upd u;
    bool ok = rd_update(&r, &u);
    ASSERT(ok);
    return (size_t)(r.p - p);
}

/* Drop from the encoded updates u[0..len) every update that a later update of the same key in
 * the same run supersedes: under last-writer-wins the later one (a newer version of this writer)
 * decides the key's state wherever the batch is applied, and since both travel in one capsule
 * record neither can be durable or visible without the other. Zipfian workloads write the same hot
 * keys many times per batch; what is dropped is never encrypted, stored on the replicas or
 * multicast. Updates keep their order. Returns the new length; *n becomes the new count. */
static size_t coalesce(uint8_t *u, size_t len, uint32_t *n) {
    uint32_t cnt = *n;
    if (cnt < 2)
        return len;
    struct {
        size_t off, len;
        const uint8_t *key;
        size_t klen;
        bool keep;
    } *ud = xmalloc(cnt * sizeof *ud);
    map m;
    map_init(&m);
    rd r = {u, u + len, false};
    for (uint32_t i = 0; i < cnt; i++) {
        upd x;
        ud[i].off = (size_t)(r.p - u);
        bool ok = rd_update(&r, &x);
        ASSERT(ok);
        ud[i].len = (size_t)(r.p - u) - ud[i].off;
        ud[i].key = x.key;
        ud[i].klen = x.klen;
        map_put(&m, x.key, x.klen, (void *)(uintptr_t)(i + 1)); /* ends as the last one */
    }
    bool dup = m.n < cnt;
    /* Decided for all before any move: the map's keys point into the updates. */
    for (uint32_t i = 0; dup && i < cnt; i++)
        ud[i].keep = (uintptr_t)map_get(&m, ud[i].key, ud[i].klen) == i + 1;
    map_fini(&m);
    size_t w = 0;
    uint32_t kept = 0;
    for (uint32_t i = 0; dup && i < cnt; i++) {
        if (!ud[i].keep)
            continue;
        if (w != ud[i].off)
            memmove(u + w, u + ud[i].off, ud[i].len);
        w += ud[i].len;
        kept++;
    }
    free(ud);
    if (!dup)
        return len;
    *n = kept;
    return w;
}

int kvs_apply_batch(kvs *k, const uint8_t *data, size_t len) {
    rd r = {data, data + len, false};
    if (len < 2 || *r.p++ != BATCH_FORMAT)
        return ERR_CORRUPT;
    uint64_t n = rd_varint(&r);
    if (r.bad)
        return ERR_CORRUPT;
    /* Validate the whole batch before applying any of it. */
    const uint8_t *start = r.p;
    upd u;
    for (uint64_t i = 0; i < n; i++)
        if (!rd_update(&r, &u))
            return ERR_CORRUPT;
    if (r.p != r.end)
        return ERR_CORRUPT;
    r.p = start;
    int applied = 0;
    /* In slices of APPLY_SLICE updates: a batch of thousands (a peer's whole invocation) would
     * otherwise hold the write lock for milliseconds, and every local get and put of this worker
     * would wait that long. Each key is merged last-writer-wins on its own, so a reader seeing
     * part of a batch sees a state the batch's order allows; callers that need the whole batch
     * (release consistency) wait for its seqno, which advances after this call returns. */
    enum { APPLY_SLICE = 64 };
    for (uint64_t i = 0; i < n;) {
        pthread_rwlock_wrlock(&k->lock);
        for (uint64_t end = i + APPLY_SLICE < n ? i + APPLY_SLICE : n; i < end; i++) {
            rd_update(&r, &u);
            int a = merge_locked(k, u.key, u.klen, u.val, u.vlen, u.kind == U_DEL, u.ver);
            applied += a;
            k->st.applied += (uint64_t)a;
        }
        pthread_rwlock_unlock(&k->lock);
    }
    return applied;
}

/* One entry in the batch encoding; @return bytes written (at most snap_size(e)). */
static size_t encode_entry(uint8_t *p, const entry *e) {
    uint8_t *s = p;
    *p++ = e->tomb ? U_DEL : U_PUT;
    put_u64(p, e->ver.hlc);
    put_u64(p + 8, e->ver.writer);
    p += 16;
    p += put_varint(p, e->klen);
    memcpy(p, e->data, e->klen);
    p += e->klen;
    if (!e->tomb) {
        p += put_varint(p, e->vlen);
        memcpy(p, e->data + e->klen, e->vlen);
        p += e->vlen;
    }
    return (size_t)(p - s);
}

size_t kvs_snapshot_bytes(kvs *k) {
    pthread_rwlock_rdlock(&k->lock);
    size_t n = BATCH_HDR + k->snap_bytes;
    pthread_rwlock_unlock(&k->lock);
    return n;
}

int kvs_snapshot_parts(kvs *k, size_t part_max, size_t max_parts, kvs_part **parts, size_t *nparts,
                       uint32_t *nentries) {
    *parts = NULL;
    *nparts = 0;
    if (!part_max)
        part_max = SIZE_MAX;
    pthread_rwlock_rdlock(&k->lock);
    size_t left = k->snap_bytes; /* upper bound of what is still to encode */
    uint32_t n = (uint32_t)k->m.n;
    *nentries = n;
    /* Refused before any scan (under the lock every writer needs) when even full parts could
     * not hold it; a state that passes may still not pack into max_parts, found while encoding. */
    if (part_max <= BATCH_HDR ||
        (max_parts && left / max_parts + (left % max_parts != 0) > part_max - BATCH_HDR)) {
        pthread_rwlock_unlock(&k->lock);
        return ERR_LIMIT;
    }
    kvs_part *v = NULL;
    size_t nv = 0, cap = 0, it = 0;
    uint8_t *cur = NULL;
    size_t used = 0, room = 0;
    uint32_t count = 0;
    entry *e;
    int rc = 0;
    for (;;) {
        e = map_next(&k->m, &it);
        size_t need = e ? snap_size(e) : 0;
        if (!e && !cur && nv == 0) { /* an empty store: one part of no entries */
            cur = xmalloc(BATCH_HDR);
            used = BATCH_HDR;
            count = 0;
        }
        if (cur && (!e || used + need > room)) { /* close the part */
            put_batch_header(cur, count);
            if (nv == cap) {
                cap = cap ? 2 * cap : 8;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[nv++] = (kvs_part){.data = cur, .len = used};
            cur = NULL;
        }
        if (!e)
            break;
        if (!cur) {
            if ((max_parts && nv == max_parts) || BATCH_HDR + need > part_max) {
                rc = ERR_LIMIT;
                break;
            }
            room = BATCH_HDR + left < part_max ? BATCH_HDR + left : part_max;
            cur = xmalloc(room);
            used = BATCH_HDR;
            count = 0;
        }
        used += encode_entry(cur + used, e);
        left -= need;
        count++;
    }
    pthread_rwlock_unlock(&k->lock);
    if (rc) {
        free(cur);
        kvs_parts_free(v, nv);
        return rc;
    }
    *parts = v;
    *nparts = nv;
    return 0;
}

void kvs_parts_free(kvs_part *parts, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(parts[i].data);
    free(parts);
}

int kvs_foreach(kvs *k, kvs_visit_fn fn, void *ud) {
    pthread_rwlock_rdlock(&k->lock);
    size_t it = 0;
    entry *e;
    int rc = 0;
    while (!rc && (e = map_next(&k->m, &it)) != NULL)
        if (!e->tomb)
            rc = fn(ud, e->data, e->klen, e->data + e->klen, e->vlen, e->ver);
    pthread_rwlock_unlock(&k->lock);
    return rc;
}

void kvs_get_stats(kvs *k, kvs_stats *out) {
    pthread_rwlock_rdlock(&k->lock);
    *out = k->st;
    out->gets = __atomic_load_n(&k->st.gets, __ATOMIC_RELAXED);
    out->coalesced = __atomic_load_n(&k->st.coalesced, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&k->lock);
}

uint64_t kvs_clock(kvs *k) {
    return atomic_load(&k->clock.last);
}
