/* libFuzzer target over the DataCapsule parsers and the storage replica (tests/fuzz/README.md).
 * The first input byte picks one of two parts:
 *  - even: the record parser and friends on the rest of the input, as any reader or replica sees
 *    untrusted bytes: cap_record_parse, cap_meta_parse, cap_head_decode, cap_record_check_link,
 *    cap_record_open, and the protobuf decoders of both protocol directions. Checked: only the
 *    documented error codes, and a parsed header agrees with the length it was parsed from.
 *  - odd: a sequence of requests to a real replica (src/storage through stg_db_request, LMDB in a
 *    temporary directory, cleared for every input). Requests are raw protocol bytes, or appends
 *    the harness builds so that they get past the cheap checks: records of one fixed capsule whose
 *    writer key the harness holds, chained on what it sent before, heads signed, with input bits
 *    that break one thing at a time (the link, the clock, the id, the signature, the head's seqno)
 *    or start at another seqno (gaps, overlaps, a second history signed by the real key). After
 *    the sequence the replica's whole store must still satisfy its invariant (storage.h): the head
 *    verifies with the writer key of record 0, and every record from 0 to the head links to the one
 *    before it. Any violation aborts.
 * Records here are never encrypted: a replica does not hold the key and never opens a body. */
#include "capsule/capsule_int.h"
#include "crypto/crypto.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_capsule: check failed at line %d: %s\n", __LINE__, #c);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAXC 512 /* longest chain the harness tracks */

static stg_db *g_db;
static char g_dir[64];
static uint8_t g_pk[32], g_sk[64], g_bad_sk[64];
static uint8_t g_id[CAP_ID_BYTES];
static uint8_t g_meta[CAP_HDR_BYTES + CAP_META_FIXED + 2];
static const uint8_t g_dkey[32] = {7};
static bool g_trace; /* FUZZ_CAPSULE_TRACE=1: print every reply (to write seeds and regressions) */

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void cleanup(void) {
    stg_db_close(g_db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) {
    }
}

/* A fixed writer key and record 0 built byte by byte from docs/capsule.md (created 0, zero salt),
 * so that every run and every replayed input sees the same capsule id. */
static void init_once(void) {
    if (g_db)
        return;
    CHECK(cr_init() == 0);
    g_trace = getenv("FUZZ_CAPSULE_TRACE") != NULL;
    uint8_t seed[32];
    memset(seed, 0x42, sizeof seed);
    cr_sign_seed_keypair(g_pk, g_sk, seed);
    uint8_t pk2[32];
    memset(seed, 0x43, sizeof seed);
    cr_sign_seed_keypair(pk2, g_bad_sk, seed);
    uint8_t *h = g_meta, *b = g_meta + CAP_HDR_BYTES;
    size_t bl = CAP_META_FIXED + 2;
    memset(g_meta, 0, sizeof g_meta);
    b[0] = 1; /* metadata version */
    b[1] = 1; /* f */
    b[2] = 2; /* name length */
    memcpy(b + 8, g_pk, 32);
    memcpy(b + CAP_META_FIXED, "fz", 2);
    static const char label[] = "psl-capsule-id-v1";
    cr_hash_state st;
    cr_hash_init(&st, CAP_ID_BYTES);
    cr_hash_update(&st, label, sizeof label - 1);
    cr_hash_update(&st, b, bl);
    cr_hash_final(&st, g_id);
    h[0] = CAP_V_BLAKE2B;
    h[1] = CAP_KIND_META;
    h[4] = (uint8_t)bl;
    memcpy(h + 8, g_id, CAP_ID_BYTES);
    put64(h + 80, (uint64_t)1 << 16);
    cap_meta m;
    uint8_t id[CAP_ID_BYTES];
    CHECK(cap_meta_parse(g_meta, sizeof g_meta, &m, id) == 0 && memcmp(id, g_id, 32) == 0);

    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/psl-fuzz-capsule-XXXXXX", base);
    CHECK(mkdtemp(g_dir) != NULL);
    CHECK(stg_db_open(g_dir, (size_t)256 << 20, true, &g_db) == 0);
    atexit(cleanup);
}

/* ---- part 1: parsers ------------------------------------------------------------------------ */
static void fuzz_parsers(const uint8_t *d, size_t n) {
    cap_hdr h;
    const uint8_t *body;
    size_t bl;
    int rc = cap_record_parse(d, n, &h, &body, &bl);
    CHECK(rc == 0 || rc == ERR_MALFORMED);
    if (rc == 0) {
        CHECK(n >= CAP_HDR_BYTES && body == d + CAP_HDR_BYTES && bl == n - CAP_HDR_BYTES);
        CHECK((h.version == CAP_V_BLAKE2B || h.version == CAP_V_SHA256) &&
              h.kind <= CAP_KIND_CKPT_PART);
        CHECK(h.payload_len <= CAP_PAYLOAD_MAX);
        CHECK(bl == (h.kind == CAP_KIND_META ? h.payload_len
                                             : (size_t)h.payload_len + CAP_AEAD_OVERHEAD));
        CHECK((h.seqno == 0) == (h.kind == CAP_KIND_META));
        if (h.kind != CAP_KIND_META) {
            uint8_t *out = malloc(h.payload_len + 1u);
            CHECK(out);
            rc = cap_record_open(g_dkey, d, n, out);
            CHECK(rc == ERR_AUTH); /* nobody without the key makes a valid tag */
            free(out);
        }
        static const uint8_t zero[CAP_HASH_BYTES];
        rc = cap_record_check_link(d, n, h.capsule, h.version, h.seqno, zero, 0);
        CHECK(rc == 0 || rc == ERR_INVALID);
        CHECK(rc != 0 || (memcmp(h.prev, zero, sizeof zero) == 0 && h.hlc > 0));
    }
    cap_meta m;
    uint8_t id[CAP_ID_BYTES];
    rc = cap_meta_parse(d, n, &m, id);
    CHECK(rc == 0 || rc == ERR_MALFORMED || rc == ERR_AUTH);
    if (rc == 0)
        CHECK(strlen(m.name) <= CAP_NAME_MAX && memcmp(id, d + 8, CAP_ID_BYTES) == 0);
    cap_head hd;
    rc = cap_head_decode(d, n, &hd);
    CHECK(rc == 0 || rc == ERR_MALFORMED);
    if (rc == 0) {
        uint8_t back[CAP_HEAD_BYTES];
        cap_head_encode(&hd, back);
        CHECK(memcmp(back, d, CAP_HEAD_BYTES) == 0);
        CHECK(cap_head_verify(&hd, g_pk) == ERR_AUTH);
    }
    Psl__CapRequest *rq = psl__cap_request__unpack(NULL, n, d);
    if (rq)
        psl__cap_request__free_unpacked(rq, NULL);
    Psl__CapReply *rp = psl__cap_reply__unpack(NULL, n, d);
    if (rp)
        psl__cap_reply__free_unpacked(rp, NULL);
}

/* ---- part 2: a replica ---------------------------------------------------------------------- */
typedef struct in {
    const uint8_t *p;
    size_t n;
} in;

static uint8_t take(in *x) {
    if (!x->n)
        return 0;
    x->n--;
    return *x->p++;
}

/* Serve one request; the reply must decode and carry 0 or a negative status. Returns it (caller
 * frees) or NULL when the replica could not commit. */
static Psl__CapReply *serve(const uint8_t *req, size_t len) {
    uint8_t *out = NULL;
    size_t outlen = 0;
    if (stg_db_request(g_db, req, len, &out, &outlen) != 0)
        return NULL;
    Psl__CapReply *rep = psl__cap_reply__unpack(NULL, outlen, out);
    free(out);
    CHECK(rep != NULL);
    CHECK(rep->status <= 0);
    if (g_trace)
        fprintf(stderr, "reply: status %d have %llu %s\n", rep->status,
                (unsigned long long)rep->have, rep->error);
    return rep;
}

static Psl__CapReply *serve_msg(Psl__CapRequest *req) {
    size_t n = psl__cap_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    CHECK(buf);
    psl__cap_request__pack(req, buf);
    Psl__CapReply *rep = serve(buf, n);
    free(buf);
    return rep;
}

typedef struct chain {
    uint8_t hash[MAXC][CAP_HASH_BYTES]; /* of the records the harness last sent at each seqno */
    uint64_t hlc[MAXC];
    uint64_t n; /* seqnos 0..n-1 known */
} chain;

/* Build and send one append from the input (see the file comment). */
static void op_append(in *x, chain *c) {
    uint64_t first = take(x) % (c->n + 2);
    if (first >= MAXC - 16)
        first = c->n ? c->n - 1 : 0;
    size_t nrec = 1 + take(x) % 8;
    uint8_t flags = take(x), which = take(x) % nrec;
    uint8_t *recs[8] = {0};
    size_t lens[8];
    uint8_t prev[CAP_HASH_BYTES], hash[CAP_HASH_BYTES];
    uint64_t phlc = 0;
    memset(prev, 0xee, sizeof prev);
    if (first > 0 && first - 1 < c->n) {
        memcpy(prev, c->hash[first - 1], CAP_HASH_BYTES);
        phlc = c->hlc[first - 1];
    }
    for (size_t k = 0; k < nrec; k++) {
        uint64_t seq = first + k;
        if (seq == 0) {
            lens[k] = sizeof g_meta;
            recs[k] = malloc(lens[k]);
            CHECK(recs[k]);
            memcpy(recs[k], g_meta, lens[k]);
            if ((flags & 1) && k == which)
                recs[k][CAP_HDR_BYTES + 8 + take(x) % 32] ^= 1; /* another writer key */
            phlc = (uint64_t)1 << 16;                           /* record 0's clock */
        } else {
            uint32_t pl = take(x) % 48;
            uint8_t kind = (take(x) & 1) ? CAP_KIND_CHECKPOINT : CAP_KIND_DATA;
            lens[k] = CAP_HDR_BYTES + pl + CAP_AEAD_OVERHEAD;
            uint8_t *r = recs[k] = calloc(1, lens[k]);
            CHECK(r);
            r[0] = CAP_V_BLAKE2B;
            r[1] = kind;
            r[4] = (uint8_t)pl;
            memcpy(r + 8, g_id, CAP_ID_BYTES);
            put64(r + 40, seq);
            memcpy(r + 48, prev, CAP_HASH_BYTES);
            uint64_t hlc = phlc + 1 + take(x) % 3;
            put64(r + 80, hlc);
            for (size_t i = CAP_HDR_BYTES; i < lens[k]; i++)
                r[i] = take(x);
            if (k == which) {
                if (flags & 2)
                    r[48 + take(x) % 32] ^= 0x80; /* broken link */
                if (flags & 4)
                    put64(r + 80, phlc); /* clock does not advance */
                if (flags & 8)
                    r[8 + take(x) % 32] ^= 1; /* another capsule's id */
                if (flags & 64)
                    r[take(x) % CAP_HDR_BYTES] ^= (uint8_t)(1 + take(x)); /* any header byte */
            }
            phlc = hlc;
        }
        cap_record_hash(recs[k], lens[k], hash);
        memcpy(prev, hash, CAP_HASH_BYTES);
    }
    cap_head hd = {.seqno = first + nrec - 1};
    memcpy(hd.capsule, g_id, CAP_ID_BYTES);
    memcpy(hd.hash, hash, CAP_HASH_BYTES);
    if (flags & 32)
        hd.seqno += take(x) % 3 + 1; /* names another record */
    cap_head_sign(&hd, (flags & 16) ? g_bad_sk : g_sk);
    uint8_t hb[CAP_HEAD_BYTES];
    cap_head_encode(&hd, hb);
    if ((flags & 128) && (take(x) & 1))
        hb[take(x) % CAP_HEAD_BYTES] ^= 1;

    Psl__CapAppend a = PSL__CAP_APPEND__INIT;
    ProtobufCBinaryData rv[8];
    for (size_t k = 0; k < nrec; k++)
        rv[k] = (ProtobufCBinaryData){.data = recs[k], .len = lens[k]};
    a.capsule = (ProtobufCBinaryData){.data = g_id, .len = CAP_ID_BYTES};
    a.first = first;
    a.n_records = nrec;
    a.records = rv;
    a.head = (ProtobufCBinaryData){.data = hb, .len = CAP_HEAD_BYTES};
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.id = 1;
    req.body_case = PSL__CAP_REQUEST__BODY_APPEND;
    req.append = &a;
    Psl__CapReply *rep = serve_msg(&req);
    if (rep && rep->status == 0) {
        /* Accepted: the harness's chain follows what the replica now holds. */
        CHECK(!(flags & (16 | 32)) && rep->has_head);
        uint8_t p2[CAP_HASH_BYTES];
        for (size_t k = 0; k < nrec; k++) {
            uint64_t seq = first + k;
            cap_record_hash(recs[k], lens[k], p2);
            memcpy(c->hash[seq], p2, CAP_HASH_BYTES);
            cap_hdr h;
            CHECK(cap_record_parse(recs[k], lens[k], &h, NULL, NULL) == 0);
            c->hlc[seq] = h.hlc;
        }
        if (first + nrec > c->n)
            c->n = first + nrec;
    }
    if (rep)
        psl__cap_reply__free_unpacked(rep, NULL);
    for (size_t k = 0; k < nrec; k++)
        free(recs[k]);
}

static void op_query(in *x) {
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    Psl__CapRead r = PSL__CAP_READ__INIT;
    Psl__CapGetHead g = PSL__CAP_GET_HEAD__INIT;
    Psl__CapList l = PSL__CAP_LIST__INIT;
    uint8_t id[40] = {0}; /* room for the longer ids below */
    memcpy(id, g_id, CAP_ID_BYTES);
    uint8_t sel = take(x);
    if (sel & 8)
        id[0] ^= 1;
    ProtobufCBinaryData idb = {.data = id,
                               .len = (sel & 16) ? take(x) % (sizeof id + 1) : CAP_ID_BYTES};
    req.id = 2;
    switch (sel % 3) {
    case 0:
        r.capsule = idb;
        r.first = take(x);
        r.count = take(x) % 4 == 0 ? 0 : take(x);
        r.max_bytes = (take(x) & 1) ? take(x) * 16u : 0;
        req.body_case = PSL__CAP_REQUEST__BODY_READ;
        req.read = &r;
        break;
    case 1:
        g.capsule = idb;
        g.seqno = take(x);
        g.at = take(x) & 1;
        req.body_case = PSL__CAP_REQUEST__BODY_HEAD;
        req.head = &g;
        break;
    default: req.body_case = PSL__CAP_REQUEST__BODY_LIST; req.list = &l;
    }
    Psl__CapReply *rep = serve_msg(&req);
    if (!rep)
        return;
    if (rep->status == 0 && rep->records_head.len) {
        /* A read that ends at a stored signature: that head must verify (peers store it as is). */
        cap_head h;
        CHECK(cap_head_decode(rep->records_head.data, rep->records_head.len, &h) == 0);
        CHECK(cap_head_verify(&h, g_pk) == 0);
    }
    psl__cap_reply__free_unpacked(rep, NULL);
}

/* The replica's invariant, through its own read interface. */
static void check_store(void) {
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    Psl__CapGetHead g = PSL__CAP_GET_HEAD__INIT;
    g.capsule = (ProtobufCBinaryData){.data = g_id, .len = CAP_ID_BYTES};
    req.body_case = PSL__CAP_REQUEST__BODY_HEAD;
    req.head = &g;
    Psl__CapReply *rep = serve_msg(&req);
    CHECK(rep);
    if (rep->status == ERR_NOTFOUND) {
        psl__cap_reply__free_unpacked(rep, NULL);
        return;
    }
    CHECK(rep->status == 0);
    cap_head h;
    CHECK(cap_head_decode(rep->head.data, rep->head.len, &h) == 0);
    CHECK(memcmp(h.capsule, g_id, CAP_ID_BYTES) == 0);
    CHECK(cap_head_verify(&h, g_pk) == 0);
    psl__cap_reply__free_unpacked(rep, NULL);

    uint8_t prev[CAP_HASH_BYTES] = {0}, hh[CAP_HASH_BYTES] = {0};
    uint64_t phlc = 0, seq = 0;
    while (seq <= h.seqno) {
        Psl__CapRead r = PSL__CAP_READ__INIT;
        r.capsule = (ProtobufCBinaryData){.data = g_id, .len = CAP_ID_BYTES};
        r.first = seq;
        Psl__CapRequest rq = PSL__CAP_REQUEST__INIT;
        rq.body_case = PSL__CAP_REQUEST__BODY_READ;
        rq.read = &r;
        rep = serve_msg(&rq);
        CHECK(rep && rep->status == 0 && rep->n_records > 0);
        for (size_t k = 0; k < rep->n_records; k++, seq++) {
            const uint8_t *d = rep->records[k].data;
            size_t n = rep->records[k].len;
            cap_hdr hd;
            CHECK(cap_record_parse(d, n, &hd, NULL, NULL) == 0);
            if (seq == 0) {
                cap_meta m;
                uint8_t id[CAP_ID_BYTES];
                CHECK(cap_meta_parse(d, n, &m, id) == 0 && memcmp(id, g_id, CAP_ID_BYTES) == 0);
            } else {
                CHECK(cap_record_check_link(d, n, g_id, CAP_V_BLAKE2B, seq, prev, phlc) == 0);
            }
            cap_record_hash(d, n, hh);
            memcpy(prev, hh, CAP_HASH_BYTES);
            phlc = hd.hlc;
        }
        psl__cap_reply__free_unpacked(rep, NULL);
    }
    CHECK(memcmp(hh, h.hash, CAP_HASH_BYTES) == 0);
}

static void fuzz_replica(const uint8_t *d, size_t n) {
    static chain c;
    memset(&c, 0, sizeof c);
    CHECK(stg_db_clear(g_db) == 0);
    in x = {d, n};
    for (int ops = 0; x.n > 0 && ops < 64; ops++) {
        switch (take(&x) % 4) {
        case 0: { /* raw request bytes */
            size_t len = take(&x);
            len |= (size_t)take(&x) << 8;
            if (len > x.n)
                len = x.n;
            Psl__CapReply *rep = serve(x.p, len);
            if (rep)
                psl__cap_reply__free_unpacked(rep, NULL);
            x.p += len;
            x.n -= len;
            break;
        }
        case 1:
        case 2: op_append(&x, &c); break;
        default: op_query(&x);
        }
    }
    check_store();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_replica(data + 1, size - 1);
    else
        fuzz_parsers(data + 1, size - 1);
    return 0;
}
