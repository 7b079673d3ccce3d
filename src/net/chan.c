/* The attested secure channel: handshake, frame protection and the client/server sockets.
 * Invariant: no application byte is returned before its frame passed, in this order, the size
 * limit, decoding, the session id, the exact expected sequence number, the length and the AEAD
 * tag; any failure closes the session for good (sticky), with the reason logged. */
#include "net/net.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/stream.h"
#include "platform/platform.h"
#include "proto/chan.pb-c.h"

#define CHAN_VERSION 3u /* 2: binary data frames; 3: batch frames (docs/protocols.md) */
#define SID_BYTES 16u

/* One side of an established (or half-open, server side) session. */
typedef struct sess {
    uint64_t handle;
    struct sess *next;
    uint8_t rid[256]; /* server: ZeroMQ routing id of the peer */
    size_t rid_len;
    bool open; /* server: ClientAuth verified (keys confirmed) */
    uint8_t id[SID_BYTES];
    uint8_t th2[CR_HASH_BYTES];
    uint8_t peer_eph[CR_KX_PK];
    char tx_dir, rx_dir; /* 'c' for client->server frames, 's' for server->client */
    cr_stream *tx, *rx;
    net_peer_info peer;
    /* Batching (version 3): messages queued by *_send_more, sent together as one batch frame. */
    uint8_t *txq;
    size_t txq_len, txq_cap;
    uint32_t txq_n;
    /* The plaintext of a received batch frame (already authenticated and parsed) and how much of
     * it has been handed out. */
    uint8_t *rxb;
    size_t rxb_len, rxb_off;
} sess;

struct net_chan {
    void *ctx, *sock; /* ZeroMQ transport, or */
    st_conn *st;      /* the stream transport (a "stream://" endpoint) */
    bool own_ctx, failed;
    net_auth auth;
    char endpoint[256];
    char err[320];
    sess s;
};

struct net_server {
    void *ctx, *sock; /* ZeroMQ transport, or */
    st_server *st;    /* the stream transport; a session's rid is then its connection id */
    bool own_ctx;
    net_auth auth;
    char endpoint[256];
    sess *sessions;
    sess *rx_ready; /* the session whose batch frame still holds messages */
    bool tx_queued; /* some session may hold queued messages (send_more) */
    uint64_t next_handle, rejections;
};

static void fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t n, const char *f, ...) {
    if (!buf || !n)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, n, f, ap);
    va_end(ap);
}

static size_t max_msg(const net_auth *a) {
    return a->max_msg ? a->max_msg : NET_MAX_MSG_DEFAULT;
}
static size_t max_frame(const net_auth *a) {
    return max_msg(a) + NET_FRAME_OVERHEAD;
}
static const char *who(const net_auth *a) {
    return a->name ? a->name : "net";
}

/* ---- transports ---------------------------------------------------------------------------- */

/* Where a message goes: a ZeroMQ DEALER (rid NULL) or ROUTER (rid: the peer's routing id), a
 * stream client connection, or a stream server's connection (its id, 8 bytes LE, in rid). */
typedef struct dest {
    void *sock;
    const uint8_t *rid;
    size_t rn;
    st_conn *conn;
    st_server *srv;
} dest;

#define RID_STREAM 8u

static uint64_t rid_conn(const uint8_t *rid) {
    uint64_t v = 0;
    for (int i = RID_STREAM - 1; i >= 0; i--)
        v = (v << 8) | rid[i];
    return v;
}

static void conn_rid(uint64_t id, uint8_t *rid) {
    for (unsigned i = 0; i < RID_STREAM; i++)
        rid[i] = (uint8_t)(id >> (8 * i));
}

static dest chan_dest(const net_chan *c) {
    return (dest){.sock = c->sock, .conn = c->st};
}

static dest srv_dest(const net_server *s, const uint8_t *rid, size_t rn) {
    return (dest){.sock = s->sock, .rid = rid, .rn = rn, .srv = s->st};
}

/* ---- envelope helpers ---------------------------------------------------------------------- */

static uint8_t *pack_env(const Psl__Envelope *e, size_t *len) {
    *len = psl__envelope__get_packed_size(e);
    uint8_t *b = xmalloc(*len);
    psl__envelope__pack(e, b);
    return b;
}

static int zsend(void *sock, const void *rid, size_t rid_len, const void *b, size_t n) {
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE) < 0)
        return -errno;
    if (zmq_send(sock, b, n, 0) < 0)
        return -errno;
    return 0;
}

/* Send (and consume) @p m, after the routing id on a ROUTER. @return 0 or -errno. */
static int zsend_msg(void *sock, const void *rid, size_t rid_len, zmq_msg_t *m) {
    if ((rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE) < 0) || zmq_msg_send(m, sock, 0) < 0) {
        int e = -zmq_errno();
        zmq_msg_close(m);
        return e;
    }
    return 0;
}

static int dest_send(const dest *d, const void *b, size_t n);
static void send_close(const dest *d, const char *reason) {
    Psl__Close c = PSL__CLOSE__INIT;
    Psl__Envelope e = PSL__ENVELOPE__INIT;
    c.reason = (char *)reason;
    e.body_case = PSL__ENVELOPE__BODY_CLOSE;
    e.close = &c;
    size_t n;
    uint8_t *b = pack_env(&e, &n);
    (void)dest_send(d, b, n);
    free(b);
}

/* Receive one message (and, on a ROUTER, its routing id). Extra parts are drained.
 * @return 0, -ETIMEDOUT, -errno. */
static int zrecv(void *sock, int timeout_ms, bool router, uint8_t *rid, size_t *rid_len,
                 zmq_msg_t *msg) {
    /* Try without waiting first: under load a message is usually queued, and skipping
     * zmq_poll saves a system call per message. */
    zmq_msg_t idm;
    zmq_msg_init(&idm);
    zmq_msg_t *first = router ? &idm : msg;
    if (!router)
        zmq_msg_init(msg);
    if (zmq_msg_recv(first, sock, ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() != EAGAIN) {
            int e = -zmq_errno();
            zmq_msg_close(&idm);
            if (!router)
                zmq_msg_close(msg);
            return e;
        }
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        int r = zmq_poll(&it, 1, timeout_ms);
        if (r <= 0 || zmq_msg_recv(first, sock, 0) < 0) {
            int e = r < 0 ? -zmq_errno() : r == 0 ? -ETIMEDOUT : -zmq_errno();
            zmq_msg_close(&idm);
            if (!router)
                zmq_msg_close(msg);
            return e;
        }
    }
    if (!router)
        zmq_msg_close(&idm);
    if (router) {
        size_t n = zmq_msg_size(&idm);
        if (n > 256)
            n = 256;
        memcpy(rid, zmq_msg_data(&idm), n);
        *rid_len = n;
        zmq_msg_close(&idm);
        zmq_msg_init(msg);
        if (zmq_msg_recv(msg, sock, 0) < 0) {
            int e = -errno;
            zmq_msg_close(msg);
            return e;
        }
    }
    /* The protocol uses single-part messages: keep the first part, drain the rest. */
    for (bool more = zmq_msg_more(msg); more;) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        more = zmq_msg_recv(&extra, sock, 0) >= 0 && zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    return 0;
}

/* Send @p n bytes to @p d. @return 0 or a negative code. */
static int dest_send(const dest *d, const void *b, size_t n) {
    if (d->conn)
        return st_send(d->conn, b, n);
    if (d->srv)
        return st_server_send(d->srv, rid_conn(d->rid), b, n);
    return zsend(d->sock, d->rid, d->rn, b, n);
}

/* Send (and consume) @p m. @return 0 or a negative code. */
static int dest_send_msg(const dest *d, zmq_msg_t *m) {
    if (!d->conn && !d->srv)
        return zsend_msg(d->sock, d->rid, d->rn, m);
    int rc = dest_send(d, zmq_msg_data(m), zmq_msg_size(m));
    zmq_msg_close(m);
    return rc;
}

/* The client's next message, from either transport. @return 0, -ETIMEDOUT, -errno, ERR_LIMIT. */
static int chan_rx(net_chan *c, int timeout_ms, zmq_msg_t *m) {
    if (c->st)
        return st_recv(c->st, timeout_ms, m);
    return zrecv(c->sock, timeout_ms, false, NULL, NULL, m);
}

/* The server's next message and its sender's routing id. @return 0, -ETIMEDOUT, -EINTR, -errno. */
static int srv_rx(net_server *s, int timeout_ms, uint8_t *rid, size_t *rn, zmq_msg_t *m) {
    if (!s->st)
        return zrecv(s->sock, timeout_ms, true, rid, rn, m);
    uint64_t id;
    int rc = st_server_recv(s->st, timeout_ms, &id, m);
    if (rc == 0) {
        conn_rid(id, rid);
        *rn = RID_STREAM;
    }
    return rc;
}

/* ---- handshake pieces ---------------------------------------------------------------------- */

static void th1_of(uint8_t out[32], const uint8_t *ch, size_t chlen, const uint8_t eph_s[32],
                   const uint8_t nonce_s[32], uint32_t aead) {
    cr_hash_state st;
    uint8_t a[4] = {(uint8_t)aead, (uint8_t)(aead >> 8), (uint8_t)(aead >> 16),
                    (uint8_t)(aead >> 24)};
    cr_hash_init(&st, 32);
    cr_hash_update(&st, "psl-hs1", 7);
    cr_hash_update(&st, ch, chlen);
    cr_hash_update(&st, eph_s, 32);
    cr_hash_update(&st, nonce_s, 32);
    cr_hash_update(&st, a, 4);
    cr_hash_final(&st, out);
}

static void th2_of(uint8_t out[32], const uint8_t *ch, size_t chlen, const uint8_t *sh,
                   size_t shlen) {
    cr_hash_state st;
    cr_hash_init(&st, 32);
    cr_hash_update(&st, "psl-hs2", 7);
    cr_hash_update(&st, ch, chlen);
    cr_hash_update(&st, sh, shlen);
    cr_hash_final(&st, out);
}

/* What a report nonce / identity signature covers: role-separated transcript hash. */
static void bind_of(uint8_t out[32], char role, const uint8_t th[32]) {
    uint8_t m[15 + 1 + 32];
    memcpy(m, "psl-chan-bind-1", 15);
    m[15] = (uint8_t)role;
    memcpy(m + 16, th, 32);
    cr_hash(out, m, sizeof m);
}

typedef struct auth_buf {
    uint8_t report[TEE_REPORT_BYTES];
    uint8_t pk[CR_SIGN_PK];
    uint8_t sig[CR_SIG];
    Psl__Auth msg;
} auth_buf;

static int make_auth(const net_auth *a, char role, const uint8_t eph_pk[32], const uint8_t th[32],
                     auth_buf *b) {
    uint8_t bind[32];
    bind_of(bind, role, th);
    psl__auth__init(&b->msg);
    if (a->tee) {
        tee_report r;
        int rc = tee_report_create(a->tee, eph_pk, bind, &r);
        if (rc)
            return rc;
        tee_report_encode(&r, b->report);
        b->msg.report.data = b->report;
        b->msg.report.len = TEE_REPORT_BYTES;
        return 0;
    }
    ASSERT(a->id_sk && "net_auth needs a tee or an identity key");
    memcpy(b->pk, a->id_sk + 32, 32); /* libsodium sk = seed || pk */
    uint8_t m[14 + 32 + 32];
    memcpy(m, "psl-chan-id-v1", 14);
    memcpy(m + 14, bind, 32);
    memcpy(m + 46, eph_pk, 32);
    cr_sign(b->sig, m, sizeof m, a->id_sk);
    b->msg.identity_pk.data = b->pk;
    b->msg.identity_pk.len = 32;
    b->msg.identity_sig.data = b->sig;
    b->msg.identity_sig.len = 64;
    return 0;
}

static int check_auth(const net_auth *a, char role, const uint8_t eph_pk[32], const uint8_t th[32],
                      const Psl__Auth *m, net_peer_info *out, char *why, size_t whylen) {
    uint8_t bind[32];
    char r_why[256];
    bind_of(bind, role, th);
    memset(out, 0, sizeof *out);
    if (!m) {
        fmt(why, whylen, "no authentication in the handshake message");
        return ERR_AUTH;
    }
    if (m->report.len) {
        if (tee_report_decode(m->report.data, m->report.len, &out->report) != 0) {
            fmt(why, whylen, "malformed attestation report (%zu bytes)", m->report.len);
            return ERR_AUTH;
        }
        if (tee_verify(&out->report, a->peer, eph_pk, bind, plat_realtime_ns(), r_why,
                       sizeof r_why) != 0) {
            fmt(why, whylen, "attestation report rejected: %s", r_why);
            return ERR_AUTH;
        }
        out->attested = true;
        return 0;
    }
    if (m->identity_pk.len == 32 && m->identity_sig.len == 64) {
        char h[65];
        uint8_t msg[14 + 32 + 32];
        memcpy(msg, "psl-chan-id-v1", 14);
        memcpy(msg + 14, bind, 32);
        memcpy(msg + 46, eph_pk, 32);
        if (cr_sign_verify(m->identity_sig.data, msg, sizeof msg, m->identity_pk.data) != 0) {
            fmt(why, whylen, "bad identity signature");
            return ERR_AUTH;
        }
        if (!tee_policy_accepts_client(a->peer, m->identity_pk.data)) {
            cr_hex(h, m->identity_pk.data, 32);
            fmt(why, whylen, "unattested peer: identity key %s is not a client_key of the policy",
                h);
            return ERR_AUTH;
        }
        memcpy(out->identity, m->identity_pk.data, 32);
        return 0;
    }
    fmt(why, whylen, "peer sent neither an attestation report nor an identity");
    return ERR_AUTH;
}

/* Derive the session from the X25519 secret and th2. */
static int derive(sess *s, unsigned aead, const uint8_t eph_sk[32], const uint8_t peer_pk[32],
                  bool client) {
    uint8_t shared[32], k1[32], k2[32];
    if (cr_kx_shared(shared, eph_sk, peer_pk) != 0)
        return ERR_AUTH;
    cr_kdf(k1, 32, shared, "psl-chan-c2s-v1", s->th2, 32);
    cr_kdf(k2, 32, shared, "psl-chan-s2c-v1", s->th2, 32);
    cr_kdf(s->id, SID_BYTES, shared, "psl-chan-sid-v1", s->th2, 32);
    s->tx = cr_stream_new(aead, client ? k1 : k2);
    s->rx = cr_stream_new(aead, client ? k2 : k1);
    s->tx_dir = client ? 'c' : 's';
    s->rx_dir = client ? 's' : 'c';
    s->peer.aead = aead;
    cr_memzero(shared, 32);
    cr_memzero(k1, 32);
    cr_memzero(k2, 32);
    return 0;
}

static void sess_clear(sess *s) {
    cr_stream_free(s->tx);
    cr_stream_free(s->rx);
    s->tx = s->rx = NULL;
    free(s->txq);
    free(s->rxb);
    s->txq = s->rxb = NULL;
    s->txq_len = s->txq_cap = s->rxb_len = s->rxb_off = 0;
    s->txq_n = 0;
}

/* ---- frames -------------------------------------------------------------------------------- */

/* Wire format (docs/protocols.md): a data frame is a fixed binary header followed by the
 * ciphertext, in one ZeroMQ message part, sealed straight into the zmq_msg that is sent and
 * opened straight from the one received (no envelope, no intermediate copies). The header is
 * the AEAD's associated data, so every header byte (the kind included) is authenticated.
 * Kind 0xD2 carries one application message; kind 0xD3 (version 3) carries a batch of two or
 * more, each as a 4-byte little-endian length and its bytes, filling the plaintext exactly. */
#define FRAME_KIND 0xD2u /* never the first byte of a protobuf Envelope (field keys 0x0a..0x2a) */
#define FRAME_BATCH 0xD3u
#define FRAME_HDR (1u + 1u + SID_BYTES + 8u + 4u)
#define BATCH_REC 4u             /* length prefix of a message in a batch */
#define BATCH_MAX (128u * 1024u) /* a batch is sent once it would grow past this (or max_msg) */

static void frame_hdr(uint8_t h[FRAME_HDR], uint8_t kind, char dir, const uint8_t id[SID_BYTES],
                      uint64_t seq, uint32_t len) {
    h[0] = kind;
    h[1] = (uint8_t)dir;
    memcpy(h + 2, id, SID_BYTES);
    for (int i = 0; i < 8; i++)
        h[2 + SID_BYTES + i] = (uint8_t)(seq >> (8 * i));
    for (int i = 0; i < 4; i++)
        h[10 + SID_BYTES + i] = (uint8_t)(len >> (8 * i));
}

static bool is_frame(const zmq_msg_t *m) {
    if (zmq_msg_size((zmq_msg_t *)m) == 0)
        return false;
    uint8_t k = ((const uint8_t *)zmq_msg_data((zmq_msg_t *)m))[0];
    return k == FRAME_KIND || k == FRAME_BATCH;
}

/* Seal @p len bytes as the session's next frame of @p kind into @p out (initialised here; the
 * caller sends or closes it). */
static int frame_seal(sess *s, uint8_t kind, const void *pt, size_t len, zmq_msg_t *out) {
    if (zmq_msg_init_size(out, FRAME_HDR + len + CR_STREAM_TAG) != 0)
        return -ENOMEM;
    uint8_t *b = zmq_msg_data(out);
    uint64_t seq = cr_stream_seq(s->tx);
    frame_hdr(b, kind, s->tx_dir, s->id, seq, (uint32_t)len);
    int rc = cr_stream_seal(s->tx, b, FRAME_HDR, pt, len, b + FRAME_HDR, NULL);
    if (rc)
        zmq_msg_close(out);
    return rc;
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Check a batch plaintext completely before any of it is handed out: at least two records, each
 * no larger than @p maxm, filling @p n bytes exactly. */
static int batch_check(const uint8_t *pt, size_t n, size_t maxm, char *why, size_t whylen) {
    size_t off = 0, count = 0;
    while (off < n) {
        if (n - off < BATCH_REC) {
            fmt(why, whylen, "malformed batch frame (%zu stray bytes after message %zu)", n - off,
                count);
            return ERR_MALFORMED;
        }
        uint64_t l = get_le(pt + off, BATCH_REC);
        off += BATCH_REC;
        if (l > maxm || l > n - off) {
            fmt(why, whylen,
                "malformed batch frame (message %zu says %" PRIu64 " bytes, %zu left,"
                " limit %zu)",
                count, l, n - off, maxm);
            return ERR_MALFORMED;
        }
        off += (size_t)l;
        count++;
    }
    if (count < 2) {
        fmt(why, whylen, "malformed batch frame (%zu messages; a batch holds at least 2)", count);
        return ERR_MALFORMED;
    }
    return 0;
}

/* Check and decrypt one frame (@p n wire bytes at @p b, already size-checked) for session @p s.
 * A single-message frame yields its message in @p msg / @p len (NULL @p msg: the caller wants
 * none). A batch frame is parsed into s->rxb and yields its first message; sess_pop() the rest. */
static bool sess_pop(sess *s, uint8_t **msg, size_t *len);
static int frame_open(sess *s, const uint8_t *b, size_t n, size_t maxm, uint8_t **msg, size_t *len,
                      char *why, size_t whylen) {
    if (n < FRAME_HDR) {
        fmt(why, whylen, "truncated message (%zu bytes, shorter than the %u-byte frame header)", n,
            FRAME_HDR);
        return ERR_MALFORMED;
    }
    uint64_t want = cr_stream_seq(s->rx);
    uint64_t seq = get_le(b + 2 + SID_BYTES, 8);
    uint32_t flen = (uint32_t)get_le(b + 10 + SID_BYTES, 4);
    bool batch = b[0] == FRAME_BATCH;
    if (b[1] != (uint8_t)s->rx_dir) {
        fmt(why, whylen, "message for the other direction (reflected frame)");
        return ERR_AUTH;
    }
    if (!cr_equal(b + 2, s->id, SID_BYTES)) {
        fmt(why, whylen, "message from an old or unknown session (session id mismatch)");
        return ERR_AUTH;
    }
    if (seq < want) {
        fmt(why, whylen,
            "replayed message (seq %" PRIu64 " already received; expecting %" PRIu64 ")", seq,
            want);
        return ERR_AUTH;
    }
    if (seq > want) {
        fmt(why, whylen,
            "reordered or missing message (got seq %" PRIu64 ", expecting %" PRIu64 ")", seq, want);
        return ERR_AUTH;
    }
    if (flen > maxm) {
        fmt(why, whylen, "oversized message (%" PRIu32 " bytes > limit %zu)", flen, maxm);
        return ERR_LIMIT;
    }
    if (n - FRAME_HDR != (size_t)flen + CR_STREAM_TAG) {
        fmt(why, whylen, "truncated message (ciphertext %zu bytes, header says %" PRIu32 " + tag)",
            n - FRAME_HDR, flen);
        return ERR_MALFORMED;
    }
    if (batch && (!msg || s->rxb)) {
        fmt(why, whylen, "unexpected batch frame");
        return ERR_MALFORMED;
    }
    uint8_t *pt = xmalloc(flen ? flen : 1);
    if (cr_stream_open(s->rx, seq, b, FRAME_HDR, b + FRAME_HDR, n - FRAME_HDR, pt) != 0) {
        free(pt);
        fmt(why, whylen, "tampered message (authentication failed at seq %" PRIu64 ")", seq);
        return ERR_AUTH;
    }
    if (batch) {
        int rc = batch_check(pt, flen, maxm, why, whylen);
        if (rc) {
            free(pt);
            return rc;
        }
        s->rxb = pt;
        s->rxb_len = flen;
        s->rxb_off = 0;
        (void)sess_pop(s, msg, len);
        return 0;
    }
    if (msg)
        *msg = pt;
    else
        free(pt);
    if (len)
        *len = flen;
    return 0;
}

/* The next message of a received batch (malloc'd), if any is left. */
static bool sess_pop(sess *s, uint8_t **msg, size_t *len) {
    if (!s->rxb)
        return false;
    size_t l = (size_t)get_le(s->rxb + s->rxb_off, BATCH_REC); /* checked by batch_check */
    uint8_t *m = xmalloc(l ? l : 1);
    memcpy(m, s->rxb + s->rxb_off + BATCH_REC, l);
    s->rxb_off += BATCH_REC + l;
    if (s->rxb_off >= s->rxb_len) {
        free(s->rxb);
        s->rxb = NULL;
        s->rxb_len = s->rxb_off = 0;
    }
    *msg = m;
    *len = l;
    return true;
}

/* Send what the session has queued: one message as an ordinary frame, more as a batch frame. */
static int sess_flush(sess *s, const dest *d) {
    if (!s->txq_n)
        return 0;
    zmq_msg_t m;
    int rc = s->txq_n == 1
                 ? frame_seal(s, FRAME_KIND, s->txq + BATCH_REC, s->txq_len - BATCH_REC, &m)
                 : frame_seal(s, FRAME_BATCH, s->txq, s->txq_len, &m);
    s->txq_n = 0;
    s->txq_len = 0;
    if (rc)
        return rc;
    return dest_send_msg(d, &m) ? ERR_IO : 0;
}

/* Send @p msg now (@p more false: after anything queued, in the same frame) or queue it for a
 * later batch frame (@p more true). */
static int sess_push(sess *s, const dest *d, const void *msg, size_t len, size_t maxm, bool more) {
    size_t cap = maxm < BATCH_MAX ? maxm : BATCH_MAX;
    int rc;
    if (s->txq_n && s->txq_len + BATCH_REC + len > cap && (rc = sess_flush(s, d)))
        return rc;
    if (!s->txq_n && (!more || BATCH_REC + len > cap)) { /* alone in its frame: no copy */
        zmq_msg_t m;
        if ((rc = frame_seal(s, FRAME_KIND, msg, len, &m)))
            return rc;
        return dest_send_msg(d, &m) ? ERR_IO : 0;
    }
    if (s->txq_len + BATCH_REC + len > s->txq_cap) {
        s->txq_cap = s->txq_len + BATCH_REC + len > 2 * s->txq_cap ? s->txq_len + BATCH_REC + len
                                                                   : 2 * s->txq_cap;
        s->txq = xrealloc(s->txq, s->txq_cap);
    }
    for (unsigned i = 0; i < BATCH_REC; i++)
        s->txq[s->txq_len + i] = (uint8_t)((uint64_t)len >> (8 * i));
    if (len)
        memcpy(s->txq + s->txq_len + BATCH_REC, msg, len);
    s->txq_len += BATCH_REC + len;
    s->txq_n++;
    return more ? 0 : sess_flush(s, d);
}

/* The size check every received message passes first, before any parsing. */
static int size_ok(const net_auth *a, const zmq_msg_t *m, char *why, size_t whylen) {
    size_t n = zmq_msg_size((zmq_msg_t *)m);
    if (n > max_frame(a)) {
        fmt(why, whylen, "oversized frame (%zu bytes > limit %zu)", n, max_frame(a));
        return ERR_LIMIT;
    }
    return 0;
}

/* Decode a handshake or Close message (protobuf Envelope) after the size check. */
static Psl__Envelope *decode(const net_auth *a, zmq_msg_t *m, char *why, size_t whylen, int *rc) {
    size_t n = zmq_msg_size(m);
    if ((*rc = size_ok(a, m, why, whylen)) != 0)
        return NULL;
    Psl__Envelope *e = psl__envelope__unpack(NULL, n, zmq_msg_data(m));
    if (!e || e->body_case == PSL__ENVELOPE__BODY__NOT_SET) {
        if (e)
            psl__envelope__free_unpacked(e, NULL);
        fmt(why, whylen, "malformed or truncated message (%zu bytes do not decode)", n);
        *rc = ERR_MALFORMED;
        return NULL;
    }
    *rc = 0;
    return e;
}

static void *open_socket(void **ctx, bool *own, void *zctx, int type, const net_auth *a) {
    if (zctx) {
        *ctx = zctx;
        *own = false;
    } else {
        *ctx = zmq_ctx_new();
        *own = true;
    }
    if (!*ctx)
        return NULL;
    void *s = zmq_socket(*ctx, type);
    if (!s)
        return NULL;
    int linger = 200;
    /* ZeroMQ's own limit is twice ours: it disconnects silently, so our check (with a reason)
     * must be the one that normally fires. */
    int64_t zmax = (int64_t)(2 * max_frame(a));
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &zmax, sizeof zmax);
    return s;
}

/* ---- client -------------------------------------------------------------------------------- */

static int chan_fail(net_chan *c, int rc, const char *reason, bool tell_peer) {
    if (!c->failed) {
        c->failed = true;
        snprintf(c->err, sizeof c->err, "%s", reason);
        fprintf(stderr, "psl %s: channel to %s: %s; channel closed\n", who(&c->auth), c->endpoint,
                reason);
        if (tell_peer) {
            dest d = chan_dest(c);
            send_close(&d, reason);
        }
    }
    return rc;
}

static int remaining_ms(uint64_t deadline) {
    uint64_t now = plat_now_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

int net_chan_connect(void *zctx, const char *endpoint, const net_auth *a, net_chan **out, char *why,
                     size_t whylen) {
    *out = NULL;
    ASSERT(a && a->peer && (a->tee || a->id_sk));
    int rc = cr_init();
    if (rc)
        return rc;
    net_chan *c = xcalloc(1, sizeof *c);
    c->auth = *a;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    uint8_t *ch = NULL;
    size_t chlen = 0;
    Psl__Envelope *e = NULL;
    zmq_msg_t m;
    bool have_m = false;
    uint8_t *eph_sk = cr_secure_alloc(CR_KX_SK);
    uint8_t eph_pk[32], nonce[32];
    int to = a->handshake_timeout_ms ? a->handshake_timeout_ms : 5000;
    uint64_t deadline = plat_now_ns() + (uint64_t)to * 1000000u;
    char r[300];

    if (st_is_endpoint(endpoint)) {
        rc = st_connect(endpoint, to, 2 * max_frame(a), &c->st, r, sizeof r);
        if (rc) {
            fmt(why, whylen, "%s", r);
            rc = rc == ERR_USAGE ? rc : rc == -ETIMEDOUT ? rc : ERR_IO;
            goto fail;
        }
    } else {
        c->sock = open_socket(&c->ctx, &c->own_ctx, zctx, ZMQ_DEALER, a);
        if (!c->sock || zmq_connect(c->sock, endpoint) != 0) {
            fmt(why, whylen, "cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
            rc = ERR_IO;
            goto fail;
        }
    }
    dest cd = chan_dest(c);
    /* 1. ClientHello */
    cr_kx_keypair(eph_pk, eph_sk);
    cr_random(nonce, 32);
    {
        Psl__ClientHello h = PSL__CLIENT_HELLO__INIT;
        Psl__Envelope env = PSL__ENVELOPE__INIT;
        h.version = CHAN_VERSION;
        h.eph_pk.data = eph_pk;
        h.eph_pk.len = 32;
        h.nonce.data = nonce;
        h.nonce.len = 32;
        h.aead_mask = cr_aead_supported();
        env.body_case = PSL__ENVELOPE__BODY_CLIENT_HELLO;
        env.client_hello = &h;
        ch = pack_env(&env, &chlen);
    }
    if (dest_send(&cd, ch, chlen) != 0) {
        fmt(why, whylen, "cannot send to %s", endpoint);
        rc = ERR_IO;
        goto fail;
    }
    /* 2. ServerHello */
    rc = chan_rx(c, remaining_ms(deadline), &m);
    if (rc == -ETIMEDOUT) {
        fmt(why, whylen, "handshake timed out: no reply from %s", endpoint);
        goto fail;
    }
    if (rc) {
        fmt(why, whylen, "receive failed: %s", zmq_strerror(-rc));
        rc = ERR_IO;
        goto fail;
    }
    have_m = true;
    e = decode(a, &m, r, sizeof r, &rc);
    if (!e) {
        fmt(why, whylen, "bad handshake reply: %s", r);
        goto fail_tell;
    }
    if (e->body_case == PSL__ENVELOPE__BODY_CLOSE) {
        fmt(why, whylen, "server refused the channel: %s", e->close->reason);
        rc = ERR_AUTH;
        goto fail;
    }
    if (e->body_case != PSL__ENVELOPE__BODY_SERVER_HELLO ||
        e->server_hello->version != CHAN_VERSION || e->server_hello->eph_pk.len != 32 ||
        e->server_hello->nonce.len != 32) {
        fmt(why, whylen, "bad handshake reply: not a version %u ServerHello", CHAN_VERSION);
        snprintf(r, sizeof r, "%s", why);
        rc = ERR_MALFORMED;
        goto fail_tell;
    }
    Psl__ServerHello *sh_m = e->server_hello;
    unsigned aead = sh_m->aead;
    if (!(aead & cr_aead_supported()) || (aead != CR_AEAD_XCHACHA && aead != CR_AEAD_AESGCM)) {
        fmt(why, whylen, "server chose an AEAD we did not offer (%u)", aead);
        snprintf(r, sizeof r, "%s", why);
        rc = ERR_AUTH;
        goto fail_tell;
    }
    uint8_t th1[32];
    th1_of(th1, ch, chlen, sh_m->eph_pk.data, sh_m->nonce.data, aead);
    rc = check_auth(a, 's', sh_m->eph_pk.data, th1, sh_m->auth, &c->s.peer, r, sizeof r);
    if (rc) {
        fmt(why, whylen, "server rejected: %s", r);
        goto fail_tell;
    }
    memcpy(c->s.peer_eph, sh_m->eph_pk.data, 32);
    th2_of(c->s.th2, ch, chlen, zmq_msg_data(&m), zmq_msg_size(&m));
    psl__envelope__free_unpacked(e, NULL);
    e = NULL;
    zmq_msg_close(&m);
    have_m = false;
    rc = derive(&c->s, aead, eph_sk, c->s.peer_eph, true);
    if (rc) {
        fmt(why, whylen, "server sent a low-order X25519 key");
        snprintf(r, sizeof r, "%s", why);
        goto fail_tell;
    }
    /* 3. ClientAuth */
    {
        auth_buf ab;
        rc = make_auth(a, 'c', eph_pk, c->s.th2, &ab);
        if (rc) {
            fmt(why, whylen, "cannot create our attestation report: %s", err_str(rc));
            goto fail;
        }
        Psl__ClientAuth ca = PSL__CLIENT_AUTH__INIT;
        Psl__Envelope env = PSL__ENVELOPE__INIT;
        ca.auth = &ab.msg;
        env.body_case = PSL__ENVELOPE__BODY_CLIENT_AUTH;
        env.client_auth = &ca;
        size_t n;
        uint8_t *b = pack_env(&env, &n);
        rc = dest_send(&cd, b, n);
        free(b);
        if (rc) {
            rc = ERR_IO;
            fmt(why, whylen, "cannot send to %s", endpoint);
            goto fail;
        }
    }
    /* 4. key confirmation: the server's frame 0, empty */
    rc = chan_rx(c, remaining_ms(deadline), &m);
    if (rc == -ETIMEDOUT) {
        fmt(why, whylen, "handshake timed out waiting for the server's confirmation");
        goto fail;
    }
    if (rc) {
        rc = ERR_IO;
        goto fail;
    }
    have_m = true;
    if (is_frame(&m)) {
        rc = size_ok(a, &m, r, sizeof r);
        if (!rc)
            rc = frame_open(&c->s, zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL, NULL, r, sizeof r);
        if (rc) {
            fmt(why, whylen, "bad confirmation: %s", r);
            goto fail_tell;
        }
    } else {
        e = decode(a, &m, r, sizeof r, &rc);
        if (!e) {
            fmt(why, whylen, "bad confirmation: %s", r);
            goto fail_tell;
        }
        if (e->body_case == PSL__ENVELOPE__BODY_CLOSE) {
            fmt(why, whylen, "server refused us: %s", e->close->reason);
            rc = ERR_AUTH;
            goto fail;
        }
        fmt(why, whylen, "bad confirmation: not a frame");
        snprintf(r, sizeof r, "%s", why);
        rc = ERR_MALFORMED;
        goto fail_tell;
    }
    zmq_msg_close(&m);
    cr_secure_free(eph_sk);
    free(ch);
    c->s.open = true;
    *out = c;
    return 0;
fail_tell:
    send_close(&cd, r);
fail:
    fprintf(stderr, "psl %s: channel to %s: %s\n", who(a), endpoint, why ? why : err_str(rc));
    if (e)
        psl__envelope__free_unpacked(e, NULL);
    if (have_m)
        zmq_msg_close(&m);
    cr_secure_free(eph_sk);
    free(ch);
    net_chan_close(c);
    return rc ? rc : ERR_IO;
}

static int chan_push(net_chan *c, const void *msg, size_t len, bool more) {
    if (c->failed)
        return ERR_AUTH;
    if (len > max_msg(&c->auth))
        return ERR_LIMIT;
    dest d = chan_dest(c);
    int rc = sess_push(&c->s, &d, msg, len, max_msg(&c->auth), more);
    return rc ? chan_fail(c, ERR_IO, "cannot send on the channel's socket", false) : 0;
}

int net_chan_send(net_chan *c, const void *msg, size_t len) {
    return chan_push(c, msg, len, false);
}

int net_chan_send_more(net_chan *c, const void *msg, size_t len) {
    return chan_push(c, msg, len, true);
}

int net_chan_flush(net_chan *c) {
    if (c->failed)
        return ERR_AUTH;
    dest d = chan_dest(c);
    return sess_flush(&c->s, &d)
               ? chan_fail(c, ERR_IO, "cannot send on the channel's socket", false)
               : 0;
}

int net_chan_recv(net_chan *c, int timeout_ms, uint8_t **msg, size_t *len) {
    *msg = NULL;
    *len = 0;
    if (c->failed)
        return ERR_AUTH;
    if (sess_pop(&c->s, msg, len))
        return 0;
    int rc = net_chan_flush(c); /* the peer may be waiting for what we queued */
    if (rc)
        return rc;
    zmq_msg_t m;
    rc = chan_rx(c, timeout_ms, &m);
    if (rc == -ETIMEDOUT)
        return rc;
    if (rc == ERR_LIMIT)
        return chan_fail(c, rc, "oversized frame (the stream announces more than the limit)", true);
    if (rc == -ECONNRESET)
        return chan_fail(c, ERR_IO, "the server closed the connection", false);
    if (rc)
        return ERR_IO;
    char r[300];
    rc = size_ok(&c->auth, &m, r, sizeof r);
    if (!rc && is_frame(&m)) {
        rc = frame_open(&c->s, zmq_msg_data(&m), zmq_msg_size(&m), max_msg(&c->auth), msg, len, r,
                        sizeof r);
        zmq_msg_close(&m);
        return rc ? chan_fail(c, rc, r, true) : 0;
    }
    Psl__Envelope *e = rc ? NULL : decode(&c->auth, &m, r, sizeof r, &rc);
    zmq_msg_close(&m);
    if (!e)
        return chan_fail(c, rc, r, true);
    if (e->body_case == PSL__ENVELOPE__BODY_CLOSE) {
        snprintf(r, sizeof r, "server closed the channel: %s", e->close->reason);
        psl__envelope__free_unpacked(e, NULL);
        return chan_fail(c, ERR_AUTH, r, false);
    }
    psl__envelope__free_unpacked(e, NULL);
    return chan_fail(c, ERR_MALFORMED, "unexpected handshake message on an open channel", true);
}

const char *net_chan_error(const net_chan *c) {
    return c->err;
}

const net_peer_info *net_chan_peer(const net_chan *c) {
    return &c->s.peer;
}

void *net_chan_socket(net_chan *c) {
    return c->sock;
}

void net_chan_close(net_chan *c) {
    if (!c)
        return;
    dest d = chan_dest(c);
    if (!c->failed && c->s.tx)
        (void)sess_flush(&c->s, &d);
    sess_clear(&c->s);
    st_close(c->st);
    if (c->sock)
        zmq_close(c->sock);
    if (c->own_ctx && c->ctx)
        zmq_ctx_term(c->ctx);
    free(c);
}

/* ---- server -------------------------------------------------------------------------------- */

static sess *find_rid(net_server *s, const uint8_t *rid, size_t n) {
    for (sess *x = s->sessions; x; x = x->next)
        if (x->rid_len == n && memcmp(x->rid, rid, n) == 0)
            return x;
    return NULL;
}

static void unlink_sess(net_server *s, sess *t) {
    if (s->rx_ready == t)
        s->rx_ready = NULL;
    for (sess **p = &s->sessions; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    sess_clear(t);
    free(t);
}

/* Reject a peer: log, tell it, forget its session. */
static void reject(net_server *s, const uint8_t *rid, size_t n, sess *t, const char *reason) {
    s->rejections++;
    fprintf(stderr, "psl %s: peer %" PRIu64 ": %s; session closed\n", who(&s->auth),
            t ? t->handle : 0, reason);
    dest d = srv_dest(s, rid, n);
    send_close(&d, reason);
    if (t)
        unlink_sess(s, t);
}

/* A stream connection ended: its session ends with it (after a rejection, when @p why says the
 * peer broke the protocol). */
static void stream_closed(void *arg, uint64_t conn, const char *why) {
    net_server *s = arg;
    uint8_t rid[RID_STREAM];
    conn_rid(conn, rid);
    sess *t = find_rid(s, rid, RID_STREAM);
    if (why)
        reject(s, rid, RID_STREAM, t, why);
    else if (t)
        unlink_sess(s, t);
}

int net_server_open(void *zctx, const char *endpoint, const net_auth *a, net_server **out) {
    *out = NULL;
    ASSERT(a && a->peer && (a->tee || a->id_sk));
    int rc = cr_init();
    if (rc)
        return rc;
    net_server *s = xcalloc(1, sizeof *s);
    s->auth = *a;
    s->next_handle = 1;
    if (st_is_endpoint(endpoint)) {
        char why[300];
        rc = st_listen(endpoint, 2 * max_frame(a), stream_closed, s, &s->st, s->endpoint,
                       sizeof s->endpoint, why, sizeof why);
        if (rc) {
            fprintf(stderr, "psl %s: %s\n", who(a), why);
            net_server_close(s);
            return rc == ERR_USAGE ? rc : ERR_IO;
        }
        *out = s;
        return 0;
    }
    s->sock = open_socket(&s->ctx, &s->own_ctx, zctx, ZMQ_ROUTER, a);
    if (!s->sock || zmq_bind(s->sock, endpoint) != 0) {
        fprintf(stderr, "psl %s: cannot bind %s: %s\n", who(a), endpoint,
                zmq_strerror(zmq_errno()));
        net_server_close(s);
        return ERR_IO;
    }
    size_t n = sizeof s->endpoint;
    zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &n);
    *out = s;
    return 0;
}

const char *net_server_endpoint(const net_server *s) {
    return s->endpoint;
}

static void on_hello(net_server *s, const uint8_t *rid, size_t rn, zmq_msg_t *m,
                     const Psl__ClientHello *h) {
    char r[300];
    sess *old = find_rid(s, rid, rn);
    if (old) /* a re-handshake replaces the old session; its frames are now "old session" */
        unlink_sess(s, old);
    if (h->version != CHAN_VERSION || h->eph_pk.len != 32 || h->nonce.len != 32) {
        reject(s, rid, rn, NULL, "bad ClientHello (version or key sizes)");
        return;
    }
    unsigned aead = cr_aead_pick(h->aead_mask);
    if (!aead) {
        reject(s, rid, rn, NULL, "no AEAD in common");
        return;
    }
    sess *t = xcalloc(1, sizeof *t);
    t->handle = s->next_handle++;
    memcpy(t->rid, rid, rn);
    t->rid_len = rn;
    memcpy(t->peer_eph, h->eph_pk.data, 32);
    uint8_t *eph_sk = cr_secure_alloc(CR_KX_SK);
    uint8_t eph_pk[32], nonce[32], th1[32];
    cr_kx_keypair(eph_pk, eph_sk);
    cr_random(nonce, 32);
    th1_of(th1, zmq_msg_data(m), zmq_msg_size(m), eph_pk, nonce, aead);
    auth_buf ab;
    int rc = make_auth(&s->auth, 's', eph_pk, th1, &ab);
    if (rc) {
        fprintf(stderr, "psl %s: cannot create attestation report: %s\n", who(&s->auth),
                err_str(rc));
        cr_secure_free(eph_sk);
        free(t);
        dest d = srv_dest(s, rid, rn);
        send_close(&d, "server cannot attest");
        return;
    }
    Psl__ServerHello sh = PSL__SERVER_HELLO__INIT;
    Psl__Envelope env = PSL__ENVELOPE__INIT;
    sh.version = CHAN_VERSION;
    sh.eph_pk.data = eph_pk;
    sh.eph_pk.len = 32;
    sh.nonce.data = nonce;
    sh.nonce.len = 32;
    sh.aead = aead;
    sh.auth = &ab.msg;
    env.body_case = PSL__ENVELOPE__BODY_SERVER_HELLO;
    env.server_hello = &sh;
    size_t shlen;
    uint8_t *shb = pack_env(&env, &shlen);
    th2_of(t->th2, zmq_msg_data(m), zmq_msg_size(m), shb, shlen);
    rc = derive(t, aead, eph_sk, t->peer_eph, false);
    cr_secure_free(eph_sk);
    if (rc) {
        free(shb);
        sess_clear(t);
        free(t);
        snprintf(r, sizeof r, "client sent a low-order X25519 key");
        reject(s, rid, rn, NULL, r);
        return;
    }
    t->next = s->sessions;
    s->sessions = t;
    dest d = srv_dest(s, rid, rn);
    (void)dest_send(&d, shb, shlen);
    free(shb);
}

static void on_auth(net_server *s, const uint8_t *rid, size_t rn, const Psl__ClientAuth *ca) {
    char r[300], r2[340];
    sess *t = find_rid(s, rid, rn);
    if (!t || t->open) {
        reject(s, rid, rn, t, "unexpected ClientAuth (no handshake in progress)");
        return;
    }
    unsigned aead = t->peer.aead; /* set by derive(); check_auth() clears the whole record */
    if (check_auth(&s->auth, 'c', t->peer_eph, t->th2, ca->auth, &t->peer, r, sizeof r) != 0) {
        snprintf(r2, sizeof r2, "client rejected: %s", r);
        reject(s, rid, rn, t, r2);
        return;
    }
    t->peer.aead = aead;
    t->open = true;
    zmq_msg_t m;
    dest d = srv_dest(s, rid, rn);
    if (frame_seal(t, FRAME_KIND, NULL, 0, &m) == 0) /* key confirmation */
        (void)dest_send_msg(&d, &m);
}

/* Send every session's queued messages (called before the server waits for input). */
static void flush_all(net_server *s) {
    if (!s->tx_queued)
        return;
    s->tx_queued = false;
    for (sess *t = s->sessions; t; t = t->next) {
        dest d = srv_dest(s, t->rid, t->rid_len);
        if (t->txq_n && sess_flush(t, &d) != 0)
            fprintf(stderr, "psl %s: peer %" PRIu64 ": cannot send queued messages\n",
                    who(&s->auth), t->handle);
    }
}

int net_server_recv(net_server *s, int timeout_ms, uint64_t *peer, uint8_t **msg, size_t *len) {
    uint64_t deadline = plat_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    *msg = NULL;
    *len = 0;
    for (;;) {
        sess *ready = s->rx_ready;
        if (ready && sess_pop(ready, msg, len)) {
            if (!ready->rxb)
                s->rx_ready = NULL;
            *peer = ready->handle;
            return 0;
        }
        s->rx_ready = NULL;
        int wait = timeout_ms < 0 ? -1 : remaining_ms(deadline);
        uint8_t rid[256];
        size_t rn = 0;
        zmq_msg_t m;
        flush_all(s); /* replies to the frames handled so far leave before the next is read */
        int rc = srv_rx(s, wait, rid, &rn, &m);
        if (rc == -ETIMEDOUT)
            return rc;
        if (rc == -EINTR)
            return rc;
        if (rc)
            return ERR_IO;
        char r[300];
        sess *t = find_rid(s, rid, rn);
        rc = size_ok(&s->auth, &m, r, sizeof r);
        if (!rc && is_frame(&m)) {
            if (!t || !t->open) {
                zmq_msg_close(&m);
                reject(s, rid, rn, t,
                       "message from an old or unknown session (no open session for this peer)");
                continue;
            }
            rc = frame_open(t, zmq_msg_data(&m), zmq_msg_size(&m), max_msg(&s->auth), msg, len, r,
                            sizeof r);
            zmq_msg_close(&m);
            if (rc) {
                reject(s, rid, rn, t, r);
                continue;
            }
            if (t->rxb)
                s->rx_ready = t;
            *peer = t->handle;
            return 0;
        }
        Psl__Envelope *e = rc ? NULL : decode(&s->auth, &m, r, sizeof r, &rc);
        if (!e) {
            zmq_msg_close(&m);
            reject(s, rid, rn, t, r);
            continue;
        }
        switch (e->body_case) {
        case PSL__ENVELOPE__BODY_CLIENT_HELLO: on_hello(s, rid, rn, &m, e->client_hello); break;
        case PSL__ENVELOPE__BODY_CLIENT_AUTH: on_auth(s, rid, rn, e->client_auth); break;
        case PSL__ENVELOPE__BODY_CLOSE:
            fprintf(stderr, "psl %s: peer %" PRIu64 " closed the channel: %s\n", who(&s->auth),
                    t ? t->handle : 0, e->close->reason);
            if (t)
                unlink_sess(s, t);
            break;
        default: reject(s, rid, rn, t, "unexpected message type from a client"); break;
        }
        psl__envelope__free_unpacked(e, NULL);
        zmq_msg_close(&m);
    }
}

static sess *find_handle(const net_server *s, uint64_t h) {
    for (sess *x = s->sessions; x; x = x->next)
        if (x->handle == h)
            return x;
    return NULL;
}

static int server_push(net_server *s, uint64_t peer, const void *msg, size_t len, bool more) {
    sess *t = find_handle(s, peer);
    if (!t || !t->open)
        return ERR_NOTFOUND;
    if (len > max_msg(&s->auth))
        return ERR_LIMIT;
    dest d = srv_dest(s, t->rid, t->rid_len);
    int rc = sess_push(t, &d, msg, len, max_msg(&s->auth), more);
    if (t->txq_n)
        s->tx_queued = true;
    return rc;
}

int net_server_send(net_server *s, uint64_t peer, const void *msg, size_t len) {
    return server_push(s, peer, msg, len, false);
}

int net_server_send_more(net_server *s, uint64_t peer, const void *msg, size_t len) {
    return server_push(s, peer, msg, len, true);
}

void net_server_flush(net_server *s) {
    flush_all(s);
}

void net_server_drop(net_server *s, uint64_t peer, const char *reason) {
    sess *t = find_handle(s, peer);
    if (!t)
        return;
    dest d = srv_dest(s, t->rid, t->rid_len);
    (void)sess_flush(t, &d); /* what it was sent before the refusal */
    send_close(&d, reason);
    unlink_sess(s, t);
}

const net_peer_info *net_server_peer(const net_server *s, uint64_t peer) {
    sess *t = find_handle(s, peer);
    return t ? &t->peer : NULL;
}

uint64_t net_server_rejections(const net_server *s) {
    return s->rejections;
}

void net_server_close(net_server *s) {
    if (!s)
        return;
    flush_all(s);
    while (s->sessions)
        unlink_sess(s, s->sessions);
    st_server_close(s->st);
    if (s->sock)
        zmq_close(s->sock);
    if (s->own_ctx && s->ctx)
        zmq_ctx_term(s->ctx);
    free(s);
}
