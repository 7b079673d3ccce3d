/* capsule format (versions 1 and 2): record header, metadata record, heads, keys and evidence
 * (docs/capsule.md). Everything here is pure computation on bytes: the storage server uses the
 * parse and verify functions, which never need a secret. Integers are little endian. */
#include "capsule/capsule.h"

#include "crypto/crypto.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char HEAD_LABEL[] = "psl-capsule-head-v1";
static const char ID_LABEL[] = "psl-capsule-id-v1";
static const char TRIM_LABEL[] = "psl-capsule-trim-v1";

const char *cap_strerror(int err) {
    switch (err) {
    case CAP_ERR_TAMPER: return "tampered record (does not match the signed chain)";
    case CAP_ERR_TRUNCATED: return "truncated capsule (signed records missing)";
    case CAP_ERR_ROLLBACK: return "rollback (head older than one already seen)";
    case CAP_ERR_FORK: return "fork (two different signed records at one seqno)";
    case CAP_ERR_QUORUM: return "not enough replicas answered";
    case CAP_ERR_GAP: return "append does not follow the replica's head";
    case CAP_ERR_CONFLICT: return "a different record is stored at this seqno";
    case CAP_ERR_TRIMMED: return "records dropped by the writer's trim";
    default: return err_str(err);
    }
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void hdr_encode(const cap_hdr *h, uint8_t out[CAP_HDR_BYTES]) {
    out[0] = h->version;
    out[1] = h->kind;
    out[2] = out[3] = 0; /* flags */
    put32(out + 4, h->payload_len);
    memcpy(out + 8, h->capsule, CAP_ID_BYTES);
    put64(out + 40, h->seqno);
    memcpy(out + 48, h->prev, CAP_HASH_BYTES);
    put64(out + 80, h->hlc);
}

static size_t body_len(const cap_hdr *h) {
    return h->kind == CAP_KIND_META ? h->payload_len : (size_t)h->payload_len + CAP_AEAD_OVERHEAD;
}

int cap_record_parse(const uint8_t *rec, size_t len, cap_hdr *h, const uint8_t **body,
                     size_t *bodylen) {
    if (len < CAP_HDR_BYTES || rec[0] < CAP_V_BLAKE2B || rec[0] > CAP_V_SHA256 ||
        rec[1] > CAP_KIND_CKPT_PART || rec[2] != 0 || rec[3] != 0)
        return ERR_MALFORMED;
    h->version = rec[0];
    h->kind = rec[1];
    h->payload_len = get32(rec + 4);
    memcpy(h->capsule, rec + 8, CAP_ID_BYTES);
    h->seqno = get64(rec + 40);
    memcpy(h->prev, rec + 48, CAP_HASH_BYTES);
    h->hlc = get64(rec + 80);
    if (h->payload_len > CAP_PAYLOAD_MAX || CAP_HDR_BYTES + body_len(h) != len)
        return ERR_MALFORMED;
    /* Record 0 and only record 0 is the metadata record. */
    if ((h->seqno == 0) != (h->kind == CAP_KIND_META))
        return ERR_MALFORMED;
    if (body)
        *body = rec + CAP_HDR_BYTES;
    if (bodylen)
        *bodylen = len - CAP_HDR_BYTES;
    return 0;
}

void cap_record_hash(const uint8_t *rec, size_t len, uint8_t out[CAP_HASH_BYTES]) {
    _Static_assert(CAP_HASH_BYTES == CR_HASH_BYTES && CAP_HASH_BYTES == CR_SHA256_BYTES, "H");
    if (len && rec[0] == CAP_V_SHA256)
        cr_sha256(out, rec, len);
    else
        cr_hash(out, rec, len);
}

int cap_default_version(void) {
    const char *e = getenv("PSL_CAPSULE_HASH");
    if (!e || !*e)
        return cr_sha256_fast() ? CAP_V_SHA256 : CAP_V_BLAKE2B;
    if (strcmp(e, "blake2b") == 0)
        return CAP_V_BLAKE2B;
    if (strcmp(e, "sha256") == 0)
        return CAP_V_SHA256;
    fprintf(stderr, "psl: PSL_CAPSULE_HASH=%s: expected blake2b or sha256\n", e);
    return ERR_USAGE;
}

int cap_record_check_link(const uint8_t *rec, size_t len, const uint8_t id[CAP_ID_BYTES],
                          unsigned version, uint64_t seqno, const uint8_t prev_hash[CAP_HASH_BYTES],
                          uint64_t prev_hlc) {
    cap_hdr h;
    int rc = cap_record_parse(rec, len, &h, NULL, NULL);
    if (rc)
        return rc;
    if (h.version != version || h.seqno != seqno || memcmp(h.capsule, id, CAP_ID_BYTES) != 0 ||
        memcmp(h.prev, prev_hash, CAP_HASH_BYTES) != 0 || h.hlc <= prev_hlc)
        return ERR_INVALID;
    return 0;
}

void cap_head_encode(const cap_head *h, uint8_t out[CAP_HEAD_BYTES]) {
    memcpy(out, h->capsule, 32);
    put64(out + 32, h->seqno);
    memcpy(out + 40, h->hash, 32);
    memcpy(out + 72, h->sig, 64);
}

int cap_head_decode(const uint8_t *in, size_t len, cap_head *h) {
    if (len != CAP_HEAD_BYTES)
        return ERR_MALFORMED;
    memcpy(h->capsule, in, 32);
    h->seqno = get64(in + 32);
    memcpy(h->hash, in + 40, 32);
    memcpy(h->sig, in + 72, 64);
    return 0;
}

static void head_msg(const cap_head *h, uint8_t msg[sizeof HEAD_LABEL - 1 + 72]) {
    memcpy(msg, HEAD_LABEL, sizeof HEAD_LABEL - 1);
    memcpy(msg + sizeof HEAD_LABEL - 1, h->capsule, 32);
    put64(msg + sizeof HEAD_LABEL - 1 + 32, h->seqno);
    memcpy(msg + sizeof HEAD_LABEL - 1 + 40, h->hash, 32);
}

int cap_head_verify(const cap_head *h, const uint8_t writer_pk[32]) {
    uint8_t msg[sizeof HEAD_LABEL - 1 + 72];
    head_msg(h, msg);
    return cr_sign_verify(h->sig, msg, sizeof msg, writer_pk);
}

void cap_head_sign(cap_head *h, const uint8_t sign_sk[64]) {
    uint8_t msg[sizeof HEAD_LABEL - 1 + 72];
    head_msg(h, msg);
    cr_sign(h->sig, msg, sizeof msg, sign_sk);
}

static void trim_msg(const cap_trim *t, uint8_t *msg) {
    memcpy(msg, TRIM_LABEL, sizeof TRIM_LABEL - 1);
    memcpy(msg + sizeof TRIM_LABEL - 1, t->capsule, CAP_ID_BYTES);
    put64(msg + sizeof TRIM_LABEL - 1 + CAP_ID_BYTES, t->below);
}

void cap_trim_sign(cap_trim *t, const uint8_t sign_sk[64]) {
    uint8_t msg[sizeof TRIM_LABEL - 1 + CAP_ID_BYTES + 8];
    trim_msg(t, msg);
    cr_sign(t->sig, msg, sizeof msg, sign_sk);
}

int cap_trim_verify(const cap_trim *t, const uint8_t writer_pk[32]) {
    if (t->below < 2)
        return ERR_AUTH;
    uint8_t msg[sizeof TRIM_LABEL - 1 + CAP_ID_BYTES + 8];
    trim_msg(t, msg);
    return cr_sign_verify(t->sig, msg, sizeof msg, writer_pk);
}

void cap_trim_encode(const cap_trim *t, uint8_t out[CAP_TRIM_BYTES]) {
    memcpy(out, t->capsule, CAP_ID_BYTES);
    put64(out + CAP_ID_BYTES, t->below);
    memcpy(out + CAP_ID_BYTES + 8, t->sig, 64);
}

int cap_trim_decode(const uint8_t *in, size_t len, cap_trim *t) {
    if (len != CAP_TRIM_BYTES)
        return ERR_MALFORMED;
    memcpy(t->capsule, in, CAP_ID_BYTES);
    t->below = get64(in + CAP_ID_BYTES);
    memcpy(t->sig, in + CAP_ID_BYTES + 8, 64);
    return 0;
}

static void capsule_id(const uint8_t *body, size_t len, uint8_t id[CAP_ID_BYTES]) {
    cr_hash_state st;
    cr_hash_init(&st, CAP_ID_BYTES);
    cr_hash_update(&st, ID_LABEL, sizeof ID_LABEL - 1);
    cr_hash_update(&st, body, len);
    cr_hash_final(&st, id);
}

int cap_meta_parse(const uint8_t *rec, size_t len, cap_meta *m, uint8_t id[CAP_ID_BYTES]) {
    cap_hdr h;
    const uint8_t *b;
    size_t bl;
    static const uint8_t zero[CAP_HASH_BYTES];
    if (cap_record_parse(rec, len, &h, &b, &bl) || h.kind != CAP_KIND_META || h.seqno != 0 ||
        memcmp(h.prev, zero, sizeof zero) != 0 || bl < CAP_META_FIXED || b[0] != 1)
        return ERR_MALFORMED;
    size_t nl = (size_t)b[2] | (size_t)b[3] << 8;
    if (nl > CAP_NAME_MAX || CAP_META_FIXED + nl != bl || get32(b + 4) != 0 || get64(b + 64) != 0)
        return ERR_MALFORMED;
    uint8_t want[CAP_ID_BYTES];
    capsule_id(b, bl, want);
    if (memcmp(want, h.capsule, CAP_ID_BYTES) != 0)
        return ERR_AUTH;
    memset(m, 0, sizeof *m);
    m->f = b[1];
    m->version = h.version;
    memcpy(m->writer_pk, b + 8, 32);
    m->created_ns = get64(b + 40);
    memcpy(m->salt, b + 48, 16);
    memcpy(m->name, b + CAP_META_FIXED, nl);
    if (memchr(m->name, 0, nl))
        return ERR_MALFORMED;
    memcpy(id, want, CAP_ID_BYTES);
    return 0;
}

int cap_meta_build(const cap_keys *k, const char *name, unsigned f, unsigned version, uint8_t **rec,
                   size_t *len, uint8_t id[CAP_ID_BYTES]) {
    size_t nl = name ? strlen(name) : 0;
    if (nl > CAP_NAME_MAX || f > 255 || version < CAP_V_BLAKE2B || version > CAP_V_SHA256)
        return ERR_USAGE;
    size_t bl = CAP_META_FIXED + nl;
    uint8_t *r = xcalloc(1, CAP_HDR_BYTES + bl);
    uint8_t *b = r + CAP_HDR_BYTES;
    b[0] = 1;
    b[1] = (uint8_t)f;
    b[2] = (uint8_t)nl;
    b[3] = (uint8_t)(nl >> 8);
    memcpy(b + 8, k->sign_pk, 32);
    uint64_t now = plat_realtime_ns();
    put64(b + 40, now);
    cr_random(b + 48, 16);
    if (nl)
        memcpy(b + CAP_META_FIXED, name, nl);
    cap_hdr h = {.version = (uint8_t)version,
                 .kind = CAP_KIND_META,
                 .payload_len = (uint32_t)bl,
                 .seqno = 0,
                 .hlc = (now / 1000000u) << 16};
    capsule_id(b, bl, h.capsule);
    hdr_encode(&h, r);
    memcpy(id, h.capsule, CAP_ID_BYTES);
    *rec = r;
    *len = CAP_HDR_BYTES + bl;
    return 0;
}

void cap_data_key(const uint8_t root[32], const uint8_t id[CAP_ID_BYTES], uint8_t out[32]) {
    cr_kdf(out, 32, root, "psl-capsule-data-v1", id, CAP_ID_BYTES);
}

int cap_record_build(const uint8_t data_key[32], const cap_hdr *h, const void *payload,
                     uint8_t **rec, size_t *len, uint8_t hash[CAP_HASH_BYTES]) {
    if (h->payload_len > CAP_PAYLOAD_MAX || h->kind == CAP_KIND_META)
        return ERR_USAGE;
    size_t n = CAP_HDR_BYTES + body_len(h);
    uint8_t *r = xmalloc(n);
    hdr_encode(h, r);
    cr_box_seal(r + CAP_HDR_BYTES, data_key, r, CAP_HDR_BYTES, payload, h->payload_len);
    cap_record_hash(r, n, hash);
    *rec = r;
    *len = n;
    return 0;
}

int cap_record_open(const uint8_t data_key[32], const uint8_t *rec, size_t len, uint8_t *out) {
    cap_hdr h;
    const uint8_t *b;
    size_t bl;
    int rc = cap_record_parse(rec, len, &h, &b, &bl);
    if (rc)
        return rc;
    if (h.kind == CAP_KIND_META)
        return ERR_MALFORMED;
    return cr_box_open(out, data_key, rec, CAP_HDR_BYTES, b, bl);
}

/* ---- keys ---------------------------------------------------------------------------------- */
void cap_keys_generate(cap_keys *k) {
    cr_sign_keypair(k->sign_pk, k->sign_sk);
    cr_random(k->data_root, sizeof k->data_root);
}

int cap_keys_save(const cap_keys *k, const char *path) {
    char a[65], b[65], buf[200];
    cr_hex(a, k->sign_sk, 32); /* the seed: libsodium's sk = seed || pk */
    cr_hex(b, k->data_root, 32);
    int n = snprintf(buf, sizeof buf, "sign-seed %s\ndata-root %s\n", a, b);
    cr_memzero(a, sizeof a);
    cr_memzero(b, sizeof b);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0)
        rc = ERR_IO;
    close(fd);
out:
    cr_memzero(buf, sizeof buf);
    return rc;
}

int cap_keys_load(cap_keys *k, const char *path) {
    uint8_t *d = NULL;
    size_t n = 0;
    int rc = plat_read_file(path, &d, &n);
    if (rc)
        return rc;
    uint8_t seed[32];
    if (n < 2 * (10 + 64) + 1 || memcmp(d, "sign-seed ", 10) != 0 || d[74] != '\n' ||
        memcmp(d + 75, "data-root ", 10) != 0 ||
        cr_unhex(seed, 32, (const char *)d + 10, 64) != 0 ||
        cr_unhex(k->data_root, 32, (const char *)d + 85, 64) != 0) {
        rc = ERR_MALFORMED;
        goto out;
    }
    cr_sign_seed_keypair(k->sign_pk, k->sign_sk, seed);
out:
    cr_memzero(seed, sizeof seed);
    cr_memzero(d, n);
    free(d);
    return rc;
}

/* ---- evidence ------------------------------------------------------------------------------ */
void cap_evidence_format(const cap_evidence *e, char *out, size_t cap) {
    static const char *kinds[] = {"?", "tamper", "truncation", "rollback", "fork", "bad-signature"};
    char x[65], y[65];
    const char *k = (e->kind >= 1 && e->kind <= CAP_EV_BADSIG) ? kinds[e->kind] : kinds[0];
    switch (e->kind) {
    case CAP_EV_FORK:
    case CAP_EV_ROLLBACK:
        cr_hex(x, e->a.hash, 32);
        cr_hex(y, e->b.hash, 32);
        snprintf(out, cap, "%s: replica %d: %s; head A seq %llu hash %s, head B seq %llu hash %s",
                 k, e->replica, e->what, (unsigned long long)e->a.seqno, x,
                 (unsigned long long)e->b.seqno, y);
        break;
    default:
        cr_hex(x, e->expected, 32);
        cr_hex(y, e->got, 32);
        snprintf(out, cap, "%s: replica %d seq %llu: %s; expected %s got %s", k, e->replica,
                 (unsigned long long)e->seqno, e->what, x, y);
    }
}
