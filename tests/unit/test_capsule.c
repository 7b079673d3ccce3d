/* capsule unit tests: format v1 (records, metadata, heads, keys) with tampering and truncation,
 * and the reader's rollback and fork detection against real storage servers run in threads on
 * loopback (a forked chain is built with the writer's key and pushed to a fourth replica). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capsule/capsule_int.h"
#include "crypto/crypto.h"
#include "storage/storage.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <unistd.h>

static cap_keys K;

static void t_meta(void **st) {
    (void)st;
    uint8_t *rec, id[32], id2[32];
    size_t len;
    assert_int_equal(cap_meta_build(&K, "unit", 1, 3, &rec, &len, id), ERR_USAGE); /* version */
    assert_int_equal(cap_meta_build(&K, "unit", 1, CAP_V_SHA256, &rec, &len, id), 0);
    cap_meta m;
    assert_int_equal(cap_meta_parse(rec, len, &m, id2), 0);
    assert_memory_equal(id, id2, 32);
    assert_int_equal(m.version, CAP_V_SHA256);
    assert_memory_equal(m.writer_pk, K.sign_pk, 32);
    assert_string_equal(m.name, "unit");
    assert_int_equal(m.f, 1);
    rec[CAP_HDR_BYTES + 9] ^= 1; /* another writer key: the id no longer matches */
    assert_int_equal(cap_meta_parse(rec, len, &m, id2), ERR_AUTH);
    rec[CAP_HDR_BYTES + 9] ^= 1;
    assert_int_equal(cap_meta_parse(rec, len - 1, &m, id2), ERR_MALFORMED); /* truncated */
    rec[2] = 1;                                                             /* flags must be zero */
    assert_int_equal(cap_meta_parse(rec, len, &m, id2), ERR_MALFORMED);
    free(rec);
}

/* One record of format @p version: hash, AEAD, chain links, tampering. */
static void record_checks(unsigned version) {
    uint8_t key[32], id[32], prev[32], hash[32], hash2[32], out[64];
    cr_random(key, 32);
    cr_random(id, 32);
    cr_random(prev, 32);
    cap_hdr h = {.version = (uint8_t)version,
                 .kind = CAP_KIND_DATA,
                 .payload_len = 5,
                 .seqno = 7,
                 .hlc = 100};
    memcpy(h.capsule, id, 32);
    memcpy(h.prev, prev, 32);
    uint8_t *rec;
    size_t len;
    assert_int_equal(cap_record_build(key, &h, "hello", &rec, &len, hash), 0);
    assert_int_equal(len, CAP_HDR_BYTES + 5 + CAP_AEAD_OVERHEAD);
    cap_record_hash(rec, len, hash2);
    assert_memory_equal(hash, hash2, 32);
    if (version == CAP_V_SHA256) /* the hash is the version's: SHA-256 in v2, BLAKE2b in v1 */
        cr_sha256(hash2, rec, len);
    else
        cr_hash(hash2, rec, len);
    assert_memory_equal(hash, hash2, 32);
    assert_int_equal(cap_record_open(key, rec, len, out), 0);
    assert_memory_equal(out, "hello", 5);
    /* chain links */
    assert_int_equal(cap_record_check_link(rec, len, id, version, 7, prev, 99), 0);
    assert_int_equal(cap_record_check_link(rec, len, id, version, 8, prev, 99), ERR_INVALID);
    assert_int_equal(cap_record_check_link(rec, len, id, version, 7, hash, 99), ERR_INVALID);
    assert_int_equal(cap_record_check_link(rec, len, id, version, 7, prev, 100),
                     ERR_INVALID); /* clock */
    /* a record of the other format does not belong in this capsule */
    assert_int_equal(
        cap_record_check_link(rec, len, id, CAP_V_BLAKE2B + CAP_V_SHA256 - version, 7, prev, 99),
        ERR_INVALID);
    assert_int_equal(cap_record_check_link(rec, len - 1, id, version, 7, prev, 99), ERR_MALFORMED);
    /* tampering: every byte of the ciphertext and of the header changes the hash; the tag
     * rejects any change to the body or to the header (associated data). */
    for (size_t i = 0; i < len; i++) {
        rec[i] ^= 0x40;
        cap_record_hash(rec, len, hash2);
        assert_memory_not_equal(hash, hash2, 32);
        cap_hdr x;
        if (cap_record_parse(rec, len, &x, NULL, NULL) == 0 && x.kind != CAP_KIND_META)
            assert_int_not_equal(cap_record_open(key, rec, len, out), 0);
        rec[i] ^= 0x40;
    }
    free(rec);
}

static void t_record(void **st) {
    (void)st;
    record_checks(CAP_V_BLAKE2B);
    record_checks(CAP_V_SHA256);
    /* SHA-256("abc"), FIPS 180-2 */
    uint8_t d[32], want[32];
    cr_sha256(d, "abc", 3);
    for (int i = 0; i < 32; i++)
        sscanf(&"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"[2 * i], "%2hhx",
               &want[i]);
    assert_memory_equal(d, want, 32);
}

static void t_head(void **st) {
    (void)st;
    cap_head h = {.seqno = 42};
    cr_random(h.capsule, 32);
    cr_random(h.hash, 32);
    cap_head_sign(&h, K.sign_sk);
    assert_int_equal(cap_head_verify(&h, K.sign_pk), 0);
    uint8_t enc[CAP_HEAD_BYTES];
    cap_head_encode(&h, enc);
    cap_head d;
    assert_int_equal(cap_head_decode(enc, sizeof enc, &d), 0);
    assert_int_equal(cap_head_verify(&d, K.sign_pk), 0);
    assert_int_equal(cap_head_decode(enc, sizeof enc - 1, &d), ERR_MALFORMED);
    d.seqno = 41; /* a rolled-back seqno under the old signature */
    assert_int_equal(cap_head_verify(&d, K.sign_pk), ERR_AUTH);
    cap_keys other;
    cap_keys_generate(&other);
    assert_int_equal(cap_head_verify(&h, other.sign_pk), ERR_AUTH);
}

static void t_keys(void **st) {
    (void)st;
    char path[] = "/tmp/psl-capkeys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(cap_keys_save(&K, path), 0);
    cap_keys k2;
    assert_int_equal(cap_keys_load(&k2, path), 0);
    assert_memory_equal(&k2, &K, sizeof K);
    assert_int_not_equal(cap_keys_save(&K, path), 0); /* never overwrites */
    unlink(path);
}

/* ---- against real replicas ---------------------------------------------------------------- */
typedef struct srv {
    stg_opts o;
    char ep[64], dir[64];
    volatile sig_atomic_t stop;
    pthread_t th;
} srv;

static void *srv_main(void *a) {
    srv *s = a;
    if (stg_serve(&s->o, &s->stop)) {
    }
    return NULL;
}

/* The first of @p n consecutive loopback ports that are free now, below the kernel's ephemeral
 * range (32768+) so that other tests' outgoing connections and port-0 listeners do not take them
 * while the replicas start (fixed bases collided: "Address already in use", then a replica the
 * writer waited for until the test timed out). */
static int free_ports(int n) {
    for (int attempt = 0; attempt < 200; attempt++) {
        int base = 20000 + (int)((getpid() * 7919u + (unsigned)attempt * 104729u) % 12000u);
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)(base + i))};
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok)
            return base;
    }
    fail_msg("no %d free loopback ports", n);
    return 0;
}

static void srv_start(srv *s, int port) {
    memset(s, 0, sizeof *s);
    snprintf(s->ep, sizeof s->ep, "tcp://127.0.0.1:%d", port);
    snprintf(s->dir, sizeof s->dir, "/tmp/psl-captest-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->o.listen = s->ep;
    s->o.data = s->dir;
    s->o.ae_interval_ms = -1;
    pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(srv *s) {
    s->stop = 1;
    pthread_join(s->th, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
}

/* Push records [first..] + a head with raw appends. */
static int push(cap_client *c, size_t i, const uint8_t *id, uint64_t first, uint8_t **recs,
                size_t *lens, size_t n, const cap_head *h) {
    Psl__CapAppend a = PSL__CAP_APPEND__INIT;
    ProtobufCBinaryData rv[64];
    for (size_t k = 0; k < n; k++)
        rv[k] = (ProtobufCBinaryData){.data = recs[k], .len = lens[k]};
    uint8_t hb[CAP_HEAD_BYTES];
    cap_head_encode(h, hb);
    a.capsule = (ProtobufCBinaryData){.data = (uint8_t *)id, .len = 32};
    a.first = first;
    a.n_records = n;
    a.records = rv;
    a.head = (ProtobufCBinaryData){.data = hb, .len = sizeof hb};
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_APPEND;
    req.append = &a;
    Psl__CapReply *rep;
    int rc = cap__call(c, i, &req, &rep);
    if (rc)
        return rc;
    rc = rep->status;
    if (getenv("CAPTEST_DEBUG"))
        fprintf(stderr, "push: status %d have %llu: %s\n", rc, (unsigned long long)rep->have,
                rep->error);
    psl__cap_reply__free_unpacked(rep, NULL);
    return rc;
}

static void t_replicas(void **st) {
    (void)st;
    int base = free_ports(4);
    srv s[4];
    for (int i = 0; i < 4; i++)
        srv_start(&s[i], base + i);
    const char *eps3[3] = {s[0].ep, s[1].ep, s[2].ep};
    cap_writer_opts wo = {.replicas = eps3, .nreplicas = 3, .name = "t"};
    cap_writer *w;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    for (int i = 0; i < 10; i++) {
        char b[16];
        uint64_t seq;
        int l = snprintf(b, sizeof b, "r%d", i);
        assert_int_equal(cap_append(w, b, (size_t)l, &seq), 0);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    uint64_t cseq;
    assert_int_equal(cap_checkpoint(w, "summary", 7, &cseq), 0);
    assert_int_equal(cap_writer_close(w), 0);

    cap_client *c;
    assert_int_equal(cap_client_open(eps3, 3, 10000, &c), 0);
    cap_reader *r;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), 0);
    cap_head h;
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 11);
    uint8_t *p;
    size_t len;
    int kind;
    assert_int_equal(cap_read(r, 3, &p, &len, &kind), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(p, "r2", 2);
    free(p);
    assert_int_equal(cap_read(r, 11, &p, &len, &kind), 0);
    assert_int_equal(kind, CAP_KIND_CHECKPOINT);
    free(p);
    /* Rollback: a head newer than any replica serves was seen before. */
    cap_head known = h;
    known.seqno = 20;
    cap_reader_set_known(r, &known);
    assert_int_equal(cap_reader_sync(r), CAP_ERR_ROLLBACK);
    size_t nev;
    const cap_evidence *ev = cap_reader_evidence(r, &nev);
    assert_true(nev >= 1);
    assert_int_equal(ev[nev - 1].kind, CAP_EV_ROLLBACK);
    cap_reader_close(r);

    /* A forger without the key cannot poison a replica: wrong signature, broken link. */
    const char *eps4[3] = {s[0].ep, s[1].ep, s[3].ep};
    cap_client *c4;
    assert_int_equal(cap_client_open(eps4, 3, 10000, &c4), 0);
    uint8_t *m0 = NULL;
    size_t m0len;
    cap_meta meta;
    assert_int_equal(cap__fetch_meta(c4, id, &meta, &m0, &m0len), 0);
    uint8_t dkey[32], prev[32];
    cap_data_key(K.data_root, id, dkey);
    uint8_t *recs[12];
    size_t lens[12];
    recs[0] = m0;
    lens[0] = m0len;
    cap_record_hash(m0, m0len, prev);
    cap_hdr mh;
    assert_int_equal(cap_record_parse(m0, m0len, &mh, NULL, NULL), 0);
    for (int i = 1; i <= 11; i++) {
        cap_hdr hd = {.version = mh.version,
                      .kind = CAP_KIND_DATA,
                      .payload_len = 4,
                      .seqno = (uint64_t)i,
                      .hlc = mh.hlc + (uint64_t)i};
        memcpy(hd.capsule, id, 32);
        memcpy(hd.prev, prev, 32);
        assert_int_equal(cap_record_build(dkey, &hd, "FORK", &recs[i], &lens[i], prev), 0);
    }
    cap_head fh = {.seqno = 11};
    memcpy(fh.capsule, id, 32);
    memcpy(fh.hash, prev, 32);
    cap_keys forger;
    cap_keys_generate(&forger);
    cap_head_sign(&fh, forger.sign_sk);
    assert_int_equal(push(c4, 2, id, 0, recs, lens, 12, &fh), ERR_AUTH);
    cap_head_sign(&fh, K.sign_sk);
    assert_int_equal(push(c4, 2, id, 1, recs + 1, lens + 1, 11, &fh), ERR_NOTFOUND);
    /* The real writer's key signing a second history is a fork: replica 4 accepts it (it has
     * nothing else), a replica with the first history refuses it with evidence, and a reader that
     * sees both reports a fork. */
    assert_int_equal(push(c4, 2, id, 0, recs, lens, 12, &fh), 0);
    assert_int_equal(push(c4, 0, id, 1, recs + 1, lens + 1, 11, &fh), CAP_ERR_CONFLICT);
    assert_int_equal(cap_reader_open(c4, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), CAP_ERR_FORK);
    ev = cap_reader_evidence(r, &nev);
    assert_true(nev >= 1);
    assert_int_equal(ev[nev - 1].kind, CAP_EV_FORK);
    assert_int_equal(cap_head_verify(&ev[nev - 1].a, K.sign_pk), 0);
    assert_int_equal(cap_head_verify(&ev[nev - 1].b, K.sign_pk), 0);
    cap_reader_close(r);
    for (int i = 1; i <= 11; i++)
        free(recs[i]);
    free(m0);
    cap_client_close(c4);
    cap_client_close(c);
    for (int i = 0; i < 4; i++)
        srv_stop(&s[i]);
}

/* Readers that start at the newest checkpoint; a pipelined writer with many small batches. */
static void t_checkpoint(void **st) {
    (void)st;
    int base = free_ports(3);
    srv s[3];
    for (int i = 0; i < 3; i++)
        srv_start(&s[i], base + i);
    const char *eps[3] = {s[0].ep, s[1].ep, s[2].ep};
    char jpath[128];
    snprintf(jpath, sizeof jpath, "%s/journal", s[0].dir);
    cap_writer_opts wo = {
        .replicas = eps, .nreplicas = 3, .name = "ck", .journal = jpath, .max_batch_records = 3};
    cap_writer *w;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    /* 200 records submitted at once: batches of at most 3, several in flight. */
    uint64_t seq = 0;
    for (int i = 0; i < 200; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "a%d", i);
        assert_int_equal(cap_append_submit(w, b, (size_t)l, &seq), 0);
    }
    assert_int_equal(cap_wait_durable(w, seq), 0);
    assert_int_equal(seq, 200);
    cap_client *c;
    assert_int_equal(cap_client_open(eps, 3, 10000, &c), 0);
    /* No checkpoint yet: the checkpoint reader verifies everything. */
    cap_reader *r;
    uint64_t ck = 99;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync_from_checkpoint(r, &ck), 0);
    assert_int_equal(ck, 0);
    assert_int_equal(cap_reader_first(r), 1);
    uint8_t *p;
    size_t len;
    int kind;
    assert_int_equal(cap_read(r, 1, &p, &len, &kind), 0);
    assert_memory_equal(p, "a0", 2);
    free(p);
    cap_reader_close(r);

    uint64_t c1, c2;
    assert_int_equal(cap_checkpoint(w, "sum1", 4, &c1), 0);
    assert_int_equal(cap_append(w, "x", 1, &seq), 0);
    assert_int_equal(cap_checkpoint(w, "sum2", 4, &c2), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cap_append(w, "y", 1, &seq), 0);
    cap_head wh;
    cap_writer_head(w, &wh);
    assert_int_equal(cap_writer_close(w), 0);

    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync_from_checkpoint(r, &ck), 0);
    assert_int_equal(ck, c2);
    assert_int_equal(cap_reader_first(r), c2);
    cap_head h;
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, wh.seqno);
    assert_int_equal(cap_read(r, c2, &p, &len, &kind), 0);
    assert_int_equal(kind, CAP_KIND_CHECKPOINT);
    assert_memory_equal(p, "sum2", 4);
    free(p);
    assert_int_equal(cap_read(r, c2 + 1, &p, &len, &kind), 0);
    assert_memory_equal(p, "y", 1);
    free(p);
    assert_int_equal(cap_read(r, c1, &p, &len, &kind), ERR_NOTFOUND); /* before the checkpoint */
    /* A later sync extends forward; the rollback check still holds. */
    assert_int_equal(cap_reader_sync(r), 0);
    cap_head known = h;
    known.seqno = h.seqno + 5;
    cap_reader_set_known(r, &known);
    assert_int_equal(cap_reader_sync(r), CAP_ERR_ROLLBACK);
    cap_reader_close(r);

    /* The writer resumes (journal with several entries) and the chain stays one chain. */
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), 0);
    assert_int_equal(cap_append(w, "z", 1, &seq), 0);
    assert_int_equal(seq, wh.seqno + 1);
    assert_int_equal(cap_writer_close(w), 0);
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), 0);
    assert_int_equal(cap_read(r, seq, &p, &len, &kind), 0);
    assert_memory_equal(p, "z", 1);
    free(p);
    cap_reader_close(r);

    /* A checkpoint in three records: replay starts at its first part, and a data record before
     * the parts is not part of it. */
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), 0);
    const void *parts[3] = {"p0", "p1", "p2"};
    size_t plens[3] = {2, 2, 2};
    uint64_t c3;
    assert_int_equal(cap_checkpoint_parts(w, parts, plens, 3, true, &c3), 0);
    assert_int_equal(c3, seq + 3);
    assert_int_equal(cap_append(w, "after", 5, &seq), 0);
    assert_int_equal(cap_writer_close(w), 0);
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync_from_checkpoint(r, &ck), 0);
    assert_int_equal(ck, c3 - 2);
    assert_int_equal(cap_reader_first(r), c3 - 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cap_read(r, c3 - 2 + (uint64_t)i, &p, &len, &kind), 0);
        assert_int_equal(kind, i < 2 ? CAP_KIND_CKPT_PART : CAP_KIND_CHECKPOINT);
        assert_memory_equal(p, parts[i], 2);
        free(p);
    }
    assert_int_equal(cap_read(r, c3 - 3, &p, &len, &kind), ERR_NOTFOUND); /* "z": before it */
    assert_int_equal(cap_read(r, seq, &p, &len, &kind), 0);
    assert_memory_equal(p, "after", 5);
    free(p);
    cap_reader_close(r);
    cap_client_close(c);
    for (int i = 0; i < 3; i++)
        srv_stop(&s[i]);
}

/* Batches as the writer's on_durable callback hands them out (what a worker multicasts). */
typedef struct caught {
    size_t n;
    struct {
        uint8_t **recs;
        size_t *lens, nrec;
        uint8_t head[CAP_HEAD_BYTES];
    } b[64];
} caught;

static void catch_batch(void *ud, const uint8_t *const *recs, const size_t *lens, size_t n,
                        const uint8_t *head) {
    caught *c = ud;
    if (c->n == 64)
        return;
    c->b[c->n].recs = calloc(n, sizeof(uint8_t *));
    c->b[c->n].lens = calloc(n, sizeof(size_t));
    c->b[c->n].nrec = n;
    for (size_t i = 0; i < n; i++) {
        c->b[c->n].recs[i] = malloc(lens[i]);
        memcpy(c->b[c->n].recs[i], recs[i], lens[i]);
        c->b[c->n].lens[i] = lens[i];
    }
    memcpy(c->b[c->n].head, head, CAP_HEAD_BYTES);
    c->n++;
}

static int extend_with(cap_reader *r, caught *c, size_t i) {
    cap_head h;
    assert_int_equal(cap_head_decode(c->b[i].head, CAP_HEAD_BYTES, &h), 0);
    return cap_reader_extend(r, (const uint8_t *const *)c->b[i].recs, c->b[i].lens, c->b[i].nrec,
                             &h);
}

static void caught_free(caught *c) {
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->b[i].nrec; k++)
            free(c->b[i].recs[k]);
        free(c->b[i].recs);
        free(c->b[i].lens);
    }
    c->n = 0;
}

/* Three replicas on free ports; @p eps their endpoints. */
static void start3(srv s[3], const char *eps[3]) {
    int base = free_ports(3);
    for (int i = 0; i < 3; i++) {
        srv_start(&s[i], base + i);
        eps[i] = s[i].ep;
    }
}

static void stop3(srv s[3]) {
    for (int i = 0; i < 3; i++)
        srv_stop(&s[i]);
}

/* A reader extended with the writer's durable batches (as multicast brings them) reads them
 * without a sync, and refuses gaps, altered records and foreign heads without changing. */
static void t_extend(void **st) {
    (void)st;
    srv s[3];
    const char *eps[3];
    start3(s, eps);
    static caught cb;
    memset(&cb, 0, sizeof cb);
    cap_writer_opts wo = {.replicas = eps,
                          .nreplicas = 3,
                          .name = "ext",
                          .max_batch_records = 2,
                          .on_durable = catch_batch,
                          .on_durable_ud = &cb};
    cap_writer *w;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    uint64_t seq;
    assert_int_equal(cap_append(w, "first", 5, &seq), 0);
    cap_client *c;
    assert_int_equal(cap_client_open(eps, 3, 10000, &c), 0);
    cap_reader *r;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    cap_head h;
    assert_int_equal(cap_reader_extend(r, NULL, NULL, 0, &h), ERR_USAGE); /* before a sync */
    assert_int_equal(cap_reader_sync(r), 0);
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 1);
    size_t skip = cb.n; /* batches the sync covered */
    for (int i = 0; i < 9; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "m%d", i);
        assert_int_equal(cap_append_submit(w, b, (size_t)l, &seq), 0);
    }
    assert_int_equal(cap_wait_durable(w, seq), 0);
    assert_int_equal(cap_writer_close(w), 0);
    assert_int_equal(seq, 10);
    assert_true(cb.n >= skip + 5); /* at most 2 records a batch */
    /* A batch past the verified range is a gap; nothing changes. */
    assert_int_equal(extend_with(r, &cb, skip + 1), CAP_ERR_GAP);
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 1);
    /* An altered record (its ciphertext) or a head that is not the writer's: refused. The first
     * record altered breaks the next one's link; the last one, the head's hash. */
    size_t nb = cb.b[skip].nrec;
    uint8_t *rec = cb.b[skip].recs[nb - 1];
    size_t rl = cb.b[skip].lens[nb - 1];
    rec[rl - 1] ^= 1;
    assert_int_equal(extend_with(r, &cb, skip), ERR_AUTH);
    rec[rl - 1] ^= 1;
    if (nb > 1) {
        cb.b[skip].recs[0][cb.b[skip].lens[0] - 1] ^= 1;
        assert_int_equal(extend_with(r, &cb, skip), ERR_INVALID);
        cb.b[skip].recs[0][cb.b[skip].lens[0] - 1] ^= 1;
    }
    cap_head fh;
    assert_int_equal(cap_head_decode(cb.b[skip].head, CAP_HEAD_BYTES, &fh), 0);
    cap_keys forger;
    cap_keys_generate(&forger);
    cap_head_sign(&fh, forger.sign_sk);
    assert_int_equal(cap_reader_extend(r, (const uint8_t *const *)cb.b[skip].recs, cb.b[skip].lens,
                                       cb.b[skip].nrec, &fh),
                     ERR_AUTH);
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 1);
    /* In order: each extends the chain to its head; a replay changes nothing. */
    for (size_t i = skip; i < cb.n; i++)
        assert_int_equal(extend_with(r, &cb, i), 0);
    assert_int_equal(extend_with(r, &cb, skip), 0);
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 10);
    /* Reads are checked against the extended chain. */
    uint8_t *p;
    size_t len;
    int kind;
    assert_int_equal(cap_read(r, 7, &p, &len, &kind), 0);
    assert_memory_equal(p, "m5", 2);
    free(p);
    /* A record that differs from an already verified one is refused even inside a replay. */
    rec[rl - 1] ^= 1;
    assert_int_equal(extend_with(r, &cb, skip), ERR_INVALID);
    rec[rl - 1] ^= 1;
    /* A later sync starts after the extended range and agrees with it. */
    assert_int_equal(cap_reader_sync(r), 0);
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 10);
    cap_reader_close(r);
    caught_free(&cb);
    cap_client_close(c);
    stop3(s);
}

/* Trimming a reader: hashes before the kept record are forgotten (those reads refused), reads
 * after it, later syncs and extensions go on. */
static void t_trim(void **st) {
    (void)st;
    srv s[3];
    const char *eps[3];
    start3(s, eps);
    static caught cb;
    memset(&cb, 0, sizeof cb);
    cap_writer_opts wo = {.replicas = eps,
                          .nreplicas = 3,
                          .name = "trim",
                          .on_durable = catch_batch,
                          .on_durable_ud = &cb};
    cap_writer *w;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    uint64_t seq = 0;
    for (int i = 0; i < 5000; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "t%d", i);
        assert_int_equal(cap_append_submit(w, b, (size_t)l, &seq), 0);
    }
    assert_int_equal(cap_wait_durable(w, seq), 0);
    cap_client *c;
    assert_int_equal(cap_client_open(eps, 3, 10000, &c), 0);
    cap_reader *r;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), 0);
    cap_reader_trim(r, 100); /* too few to bother: nothing changes */
    assert_int_equal(cap_reader_first(r), 1);
    cap_reader_trim(r, 4500);
    assert_int_equal(cap_reader_first(r), 4499);
    uint8_t *p;
    size_t len;
    int kind;
    assert_int_equal(cap_read(r, 4000, &p, &len, &kind), ERR_NOTFOUND);
    assert_int_equal(cap_read(r, 4499, &p, &len, &kind), 0);
    assert_memory_equal(p, "t4498", 5);
    free(p);
    assert_int_equal(cap_read(r, 5000, &p, &len, &kind), 0);
    assert_memory_equal(p, "t4999", 5);
    free(p);
    /* New records: by extension, then by sync. */
    size_t before = cb.n;
    assert_int_equal(cap_append(w, "e1", 2, &seq), 0);
    assert_int_equal(cap_append(w, "e2", 2, &seq), 0);
    assert_int_equal(cap_writer_close(w), 0);
    assert_true(cb.n >= before + 1);
    assert_int_equal(extend_with(r, &cb, before), 0);
    assert_int_equal(cap_read(r, 5001, &p, &len, &kind), 0);
    assert_memory_equal(p, "e1", 2);
    free(p);
    assert_int_equal(cap_reader_sync(r), 0);
    cap_head h;
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, 5002);
    assert_int_equal(cap_read(r, 5002, &p, &len, &kind), 0);
    assert_memory_equal(p, "e2", 2);
    free(p);
    cap_reader_close(r);
    caught_free(&cb);
    cap_client_close(c);
    stop3(s);
}

/* Both record formats end to end: a writer told by $PSL_CAPSULE_HASH which hash to chain with,
 * replicas that check the chain, a reader that verifies it, and a writer that resumes the
 * capsule (it must keep the capsule's format, whatever the variable says then). */
static void t_versions(void **st) {
    (void)st;
    srv s[3];
    const char *eps[3];
    start3(s, eps);
    static const struct {
        const char *env, *resume_env;
        unsigned version;
    } cases[] = {{"blake2b", "sha256", CAP_V_BLAKE2B}, {"sha256", "blake2b", CAP_V_SHA256}};
    for (size_t k = 0; k < 2; k++) {
        setenv("PSL_CAPSULE_HASH", cases[k].env, 1);
        cap_writer_opts wo = {.replicas = eps, .nreplicas = 3, .name = cases[k].env};
        cap_writer *w;
        uint8_t id[32];
        assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
        uint64_t seq = 0;
        for (int i = 0; i < 50; i++)
            assert_int_equal(cap_append_submit(w, "v-record", 8, &seq), 0);
        assert_int_equal(cap_writer_close(w), 0);
        setenv("PSL_CAPSULE_HASH", cases[k].resume_env, 1);
        assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), 0);
        assert_int_equal(cap_append(w, "resumed", 7, &seq), 0);
        assert_int_equal(seq, 51);
        assert_int_equal(cap_writer_close(w), 0);
        cap_client *c;
        assert_int_equal(cap_client_open(eps, 3, 10000, &c), 0);
        cap_reader *r;
        assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
        assert_int_equal(cap_reader_sync(r), 0);
        assert_int_equal(cap_reader_meta(r)->version, cases[k].version);
        uint8_t *p;
        size_t len;
        int kind;
        assert_int_equal(cap_read(r, 51, &p, &len, &kind), 0);
        assert_memory_equal(p, "resumed", 7);
        free(p);
        /* every stored record carries record 0's version */
        Psl__CapReply *rep;
        assert_int_equal(cap__read(c, 0, id, 0, 52, &rep), 0);
        assert_int_equal(rep->n_records, 52);
        for (size_t i = 0; i < rep->n_records; i++)
            assert_int_equal(rep->records[i].data[0], cases[k].version);
        psl__cap_reply__free_unpacked(rep, NULL);
        cap_reader_close(r);
        cap_client_close(c);
    }
    setenv("PSL_CAPSULE_HASH", "md5", 1);
    cap_writer_opts wo = {.replicas = eps, .nreplicas = 3, .name = "bad"};
    cap_writer *w = NULL;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), ERR_USAGE);
    unsetenv("PSL_CAPSULE_HASH");
    stop3(s);
}

/* Backpressure: with two of three replicas down nothing becomes durable, so a writer that keeps
 * submitting must stop once CAP_QUEUE_MAX bytes (plus the batches in flight) wait; when the
 * replicas come back everything is stored and the submitter finishes. */
typedef struct sub_arg {
    cap_writer *w;
    const uint8_t *buf;
    size_t len;
    int n;
    _Atomic int done;
    int rc;
} sub_arg;

static void *submit_many(void *a) {
    sub_arg *sa = a;
    for (int i = 0; i < sa->n; i++) {
        uint64_t seq;
        sa->rc = cap_append_submit(sa->w, sa->buf, sa->len, &seq);
        if (sa->rc)
            break;
        atomic_store(&sa->done, i + 1);
    }
    return NULL;
}

static void t_backpressure(void **st) {
    (void)st;
    srv s[3];
    const char *eps[3];
    start3(s, eps);
    cap_writer_opts wo = {.replicas = eps, .nreplicas = 3, .name = "bp", .timeout_ms = 200};
    cap_writer *w;
    uint8_t id[32];
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    for (int i = 1; i < 3; i++) { /* down, keeping their data */
        s[i].stop = 1;
        pthread_join(s[i].th, NULL);
    }
    size_t len = 1u << 20;
    uint8_t *buf = xcalloc(1, len);
    sub_arg sa = {.w = w, .buf = buf, .len = len, .n = 96};
    pthread_t th;
    pthread_create(&th, NULL, submit_many, &sa);
    /* Wait until it has queued the bound's worth and then stopped moving for 0.3 s. */
    int last = -1, still = 0;
    for (int i = 0; i < 150 && still < 3; i++) {
        usleep(100000);
        int d = atomic_load(&sa.done);
        still = d == last && d >= (int)(CAP_QUEUE_MAX >> 20) - 1 ? still + 1 : 0;
        last = d;
    }
    int blocked_at = atomic_load(&sa.done);
    assert_true(blocked_at >= (int)(CAP_QUEUE_MAX >> 20) - 1);
    assert_true(blocked_at < sa.n); /* 96 MiB never queued */
    for (int i = 1; i < 3; i++) {   /* back, same data */
        s[i].stop = 0;
        pthread_create(&s[i].th, NULL, srv_main, &s[i]);
    }
    pthread_join(th, NULL);
    assert_int_equal(sa.rc, 0);
    assert_int_equal(atomic_load(&sa.done), sa.n);
    assert_int_equal(cap_writer_close(w), 0);
    free(buf);
    cap_client *c;
    assert_int_equal(cap_client_open(eps, 3, 10000, &c), 0);
    cap_reader *r;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), 0);
    cap_head h;
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, (uint64_t)sa.n);
    cap_reader_close(r);
    cap_client_close(c);
    stop3(s);
}

static void copy_file(const char *from, const char *to) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

/* A journal bound to a TEE counter: resuming from an older copy of it, or without it, is refused
 * (it could fork); the current journal resumes. */
static void t_journal_counter(void **st) {
    (void)st;
    int base = free_ports(3);
    srv s[3];
    for (int i = 0; i < 3; i++)
        srv_start(&s[i], base + i);
    const char *eps[3] = {s[0].ep, s[1].ep, s[2].ep};
    char jpath[128], old[128];
    snprintf(jpath, sizeof jpath, "%s/journal", s[0].dir);
    snprintf(old, sizeof old, "%s/journal.old", s[0].dir);
    tee_opts to = {.home = s[1].dir, .quiet = true};
    tee_enclave *tee;
    assert_int_equal(tee_open(&to, &tee), 0);
    char cname[TEE_COUNTER_NAME_MAX + 1] = "capsule-journal";
    cap_writer_opts wo = {.replicas = eps,
                          .nreplicas = 3,
                          .name = "jc",
                          .journal = jpath,
                          .tee = tee,
                          .journal_counter = cname};
    cap_writer *w;
    uint8_t id[32];
    uint64_t seq;
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    memset(cname, 'x', sizeof cname - 1); /* the writer keeps its own copy of the name */
    assert_int_equal(cap_append(w, "a", 1, &seq), 0);
    assert_int_equal(cap_writer_close(w), 0);
    snprintf(cname, sizeof cname, "capsule-journal");
    uint64_t v1;
    assert_int_equal(tee_counter_read(tee, "capsule-journal", &v1), 0);
    assert_int_equal(v1, 2); /* record 0, then one batch */
    copy_file(jpath, old);
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), 0);
    assert_int_equal(cap_append(w, "b", 1, &seq), 0);
    assert_int_equal(cap_writer_close(w), 0);
    /* The host puts back the older journal: refused. */
    copy_file(old, jpath);
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), CAP_ERR_ROLLBACK);
    /* ... or deletes it: refused. */
    assert_int_equal(unlink(jpath), 0);
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), CAP_ERR_ROLLBACK);
    /* An older entry with the counter value edited in fails its tag (the entry is ignored). */
    copy_file(old, jpath);
    FILE *f = fopen(jpath, "r+b");
    assert_non_null(f);
    uint64_t cur;
    assert_int_equal(tee_counter_read(tee, "capsule-journal", &cur), 0);
    assert_int_equal(fseek(f, 12, SEEK_SET), 0);
    assert_int_equal(fwrite(&cur, 8, 1, f), 1);
    fclose(f);
    assert_int_equal(cap_writer_open(&K, &wo, id, &w, NULL), CAP_ERR_ROLLBACK);
    tee_close(tee);
    for (int i = 0; i < 3; i++)
        srv_stop(&s[i]);
}

/* A replica with anti-entropy against @p npeers peers (every 100 ms), keeping its folder. */
static void srv_start_ae(srv *s, int port, const char **peers, size_t npeers, const char *dir) {
    memset(s, 0, sizeof *s);
    snprintf(s->ep, sizeof s->ep, "tcp://127.0.0.1:%d", port);
    if (dir)
        snprintf(s->dir, sizeof s->dir, "%s", dir);
    else {
        snprintf(s->dir, sizeof s->dir, "/tmp/psl-captest-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
    }
    s->o.listen = s->ep;
    s->o.data = s->dir;
    s->o.peers = peers;
    s->o.npeers = npeers;
    s->o.ae_interval_ms = 100;
    pthread_create(&s->th, NULL, srv_main, s);
}

static void append_n(cap_writer *w, const char *prefix, int n, uint64_t *seq) {
    for (int i = 0; i < n; i++) {
        char b[32];
        int l = snprintf(b, sizeof b, "%s%d", prefix, i);
        assert_int_equal(cap_append_submit(w, b, (size_t)l, seq), 0);
    }
    assert_int_equal(cap_wait_durable(w, *seq), 0);
}

/* Trim: the writer signs a permission to drop its records before a checkpoint run; replicas
 * check and store it, serve it instead of those records, drop them in the background, keep
 * accepting appends, and a replica that joins afterwards catches up across it from its peers.
 * Readers verify from the trim point (a full sync) or from the checkpoint; one that had not read
 * up to the trim point gets CAP_ERR_TRIMMED. */
static void t_drop(void **st) {
    (void)st;
    int base = free_ports(3);
    char eps_s[3][64];
    for (int i = 0; i < 3; i++)
        snprintf(eps_s[i], sizeof eps_s[i], "tcp://127.0.0.1:%d", base + i);
    const char *eps[3] = {eps_s[0], eps_s[1], eps_s[2]};
    const char *peers[3][2] = {{eps[1], eps[2]}, {eps[0], eps[2]}, {eps[0], eps[1]}};
    srv s[3];
    for (int i = 0; i < 2; i++) /* the third replica joins after the trim */
        srv_start_ae(&s[i], base + i, peers[i], 2, NULL);
    char jpath[128];
    snprintf(jpath, sizeof jpath, "%s/journal", s[0].dir);
    cap_writer_opts wo = {.replicas = eps,
                          .nreplicas = 3,
                          .name = "drop",
                          .journal = jpath,
                          .max_batch_records = 3,
                          .timeout_ms = 200};
    cap_writer *w;
    uint8_t id[32];
    uint64_t seq = 0, c1, c2;
    assert_int_equal(cap_writer_open(&K, &wo, NULL, &w, id), 0);
    append_n(w, "a", 50, &seq);
    cap_client *c;
    assert_int_equal(cap_client_open(eps, 3, 2000, &c), 0);
    cap_reader *stale; /* verified up to 50, then left behind */
    assert_int_equal(cap_reader_open(c, id, K.data_root, &stale), 0);
    assert_int_equal(cap_reader_sync(stale), 0);
    assert_int_equal(cap_checkpoint(w, "sum1", 4, &c1), 0);
    append_n(w, "b", 20, &seq);
    assert_int_equal(cap_checkpoint(w, "sum2", 4, &c2), 0);
    append_n(w, "c", 10, &seq);

    /* Signed by the writer, below its durable head; c2 is a checkpoint (a run of one record). */
    cap_trim t, bad;
    assert_int_equal(cap_writer_trim_statement(w, 1, &t), ERR_USAGE);
    assert_int_equal(cap_writer_trim_statement(w, seq + 1, &t), ERR_USAGE);
    assert_int_equal(cap_writer_trim_statement(w, c2, &t), 0);
    bad = t;
    bad.below = c1; /* the signature covers below */
    char why[200];
    assert_int_equal(cap_client_trim(c, 0, &bad, why, sizeof why), ERR_AUTH);
    cap_keys other;
    cap_keys_generate(&other);
    bad = t;
    cap_trim_sign(&bad, other.sign_sk);
    assert_int_equal(cap_client_trim(c, 0, &bad, why, sizeof why), ERR_AUTH);
    bad = t;
    bad.below = seq + 5;
    cap_trim_sign(&bad, K.sign_sk);
    assert_int_equal(cap_client_trim(c, 0, &bad, why, sizeof why), CAP_ERR_GAP);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cap_client_trim(c, (size_t)i, &t, why, sizeof why), 0);

    /* What was dropped is answered by the statement and record 0. */
    Psl__CapReply *rep = NULL;
    assert_int_equal(cap__read_reply(c, 0, id, 1, 5, &rep), 0);
    assert_int_equal(rep->status, CAP_ERR_TRIMMED);
    assert_int_equal(rep->trim.len, CAP_TRIM_BYTES);
    assert_int_equal(rep->n_records, 1);
    cap_trim got;
    assert_int_equal(cap_trim_decode(rep->trim.data, rep->trim.len, &got), 0);
    assert_int_equal(got.below, c2);
    assert_int_equal(cap_trim_verify(&got, K.sign_pk), 0);
    psl__cap_reply__free_unpacked(rep, NULL);

    /* Appends go on past the trim. */
    append_n(w, "d", 7, &seq);
    cap_head wh;
    cap_writer_head(w, &wh);
    assert_int_equal(wh.seqno, seq);

    /* A full sync verifies from the trim point; records before it are not served. */
    cap_reader *r;
    uint8_t *p;
    size_t len;
    int kind;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync(r), 0);
    assert_int_equal(cap_reader_first(r), c2);
    cap_head h;
    cap_reader_head(r, &h);
    assert_int_equal(h.seqno, seq);
    assert_int_equal(cap_read(r, c2, &p, &len, &kind), 0);
    assert_int_equal(kind, CAP_KIND_CHECKPOINT);
    assert_memory_equal(p, "sum2", 4);
    free(p);
    assert_int_equal(cap_read(r, seq, &p, &len, &kind), 0);
    assert_memory_equal(p, "d6", 2);
    free(p);
    assert_int_equal(cap_read(r, c1, &p, &len, &kind), ERR_NOTFOUND);
    cap_reader_close(r);
    /* From the newest checkpoint, as before. */
    uint64_t ck = 0;
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    assert_int_equal(cap_reader_sync_from_checkpoint(r, &ck), 0);
    assert_int_equal(ck, c2);
    cap_reader_close(r);
    /* A reader that stopped at record 50 cannot go on: it must start again from a checkpoint
     * (its next records, 51 .. c2-1, are gone). */
    assert_int_equal(cap_reader_sync(stale), CAP_ERR_TRIMMED);
    cap_reader_close(stale);

    /* A third replica joins: it takes record 0, the trim and what follows from its peers. */
    srv_start_ae(&s[2], base + 2, peers[2], 2, NULL);
    cap_head h2 = {0};
    for (int i = 0; i < 100; i++) {
        if (cap__get_head(c, 2, id, &h2) == 0 && h2.seqno == seq)
            break;
        usleep(100000);
    }
    assert_int_equal(h2.seqno, seq);
    assert_int_equal(cap__read_reply(c, 2, id, 2, 1, &rep), 0);
    assert_int_equal(rep->status, CAP_ERR_TRIMMED);
    psl__cap_reply__free_unpacked(rep, NULL);
    assert_int_equal(cap__read(c, 2, id, c2, 1, &rep), 0);
    assert_int_equal(rep->n_records, 1);
    psl__cap_reply__free_unpacked(rep, NULL);
    /* ... and its copy alone verifies. */
    assert_int_equal(cap_reader_open(c, id, K.data_root, &r), 0);
    cap_reader_set_quorum(r, 1);
    assert_int_equal(cap_reader_sync(r), 0);
    assert_int_equal(cap_reader_first(r), c2);
    cap_reader_close(r);

    assert_int_equal(cap_writer_close(w), 0);
    cap_client_close(c);
    /* The records are gone from the disks: record 0 and c2..seq stay. */
    for (int i = 0; i < 3; i++) {
        s[i].stop = 1;
        pthread_join(s[i].th, NULL);
        stg_db *d;
        assert_int_equal(stg_db_open(s[i].dir, 0, true, &d), 0);
        assert_int_equal(stg_db_records(d, id, true), 1 + seq - c2 + 1);
        stg_db_close(d);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s[i].dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void) {
    if (cr_init() != 0)
        return 1;
    cap_keys_generate(&K);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_meta),         cmocka_unit_test(t_record),
        cmocka_unit_test(t_head),         cmocka_unit_test(t_keys),
        cmocka_unit_test(t_replicas),     cmocka_unit_test(t_checkpoint),
        cmocka_unit_test(t_extend),       cmocka_unit_test(t_trim),
        cmocka_unit_test(t_backpressure), cmocka_unit_test(t_journal_counter),
        cmocka_unit_test(t_drop),         cmocka_unit_test(t_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
