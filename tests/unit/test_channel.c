/* In-process tests of the attested secure channel (src/net): an echo server thread, clients in
 * the test thread, and, for the attacks, a man-in-the-middle proxy thread that alters one data
 * frame on its way, all on 127.0.0.1. Covered: the attested and identity handshakes, policy
 * refusals on both sides, round trips of many sizes, messages up to the limit and over it, and
 * every frame rejection (tamper, truncation, garbage, replay, reorder, reflection, old session,
 * oversized frame), each with its reason on the side that detects it, the session closed and the
 * server still serving other clients. Every test that does not reach into ZeroMQ itself runs on
 * both transports: ZeroMQ ("tcp://") and the stream transport ("stream://", length-prefixed
 * messages on plain TCP), whose man in the middle is a TCP proxy. The process-level versions are
 * in tests/integration/test_channel.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "tee/tee.h"

/* Version 2 data frame layout (docs/protocols.md), as an attacker on the wire sees it. */
#define FRAME_KIND 0xD2u  /* one message */
#define FRAME_BATCH 0xD3u /* several (protocol version 3) */
#define FRAME_HDR 30u

static char g_home[256];
static void *g_ctx;
static tee_enclave *g_tee_srv, *g_tee_cli;
static tee_policy g_pol_dev, g_pol_prod, g_pol_owner;
static uint8_t g_owner_sk[CR_SIGN_SK], g_stranger_sk[CR_SIGN_SK];
/* Servers and proxies running. A failed assertion leaves its test's threads and sockets behind;
 * then teardown must not wait in zmq_ctx_term for them. */
static atomic_int g_running;
static const char *g_listen = "tcp://127.0.0.1:0"; /* where test servers listen: the transport */

/* ---- echo server thread -------------------------------------------------------------------- */

typedef struct server {
    net_auth auth;
    net_server *s;
    pthread_t th;
    atomic_int stop;
    bool batched;            /* echo with net_server_send_more (replies share frames) */
    atomic_int served;       /* messages echoed */
    uint64_t rejections;     /* read after the thread ended */
    net_peer_info last_peer; /* the peer of the last message echoed (read after the end) */
} server;

static void *server_main(void *arg) {
    server *sv = arg;
    while (!atomic_load(&sv->stop)) {
        uint64_t peer;
        uint8_t *m;
        size_t n;
        if (net_server_recv(sv->s, 20, &peer, &m, &n) != 0)
            continue;
        const net_peer_info *pi = net_server_peer(sv->s, peer);
        if (pi)
            sv->last_peer = *pi;
        if (n == 7 && memcmp(m, "goodbye", 7) == 0) {
            net_server_drop(sv->s, peer, "the application refused this peer");
        } else if (n > 4 && n < 16 && memcmp(m, "big:", 4) == 0) { /* answer N bytes */
            char num[16] = {0};
            memcpy(num, m + 4, n - 4);
            size_t want = strtoul(num, NULL, 10);
            uint8_t *b = calloc(1, want);
            if (b && net_server_send(sv->s, peer, b, want) == 0)
                atomic_fetch_add(&sv->served, 1);
            free(b);
        } else if ((sv->batched ? net_server_send_more(sv->s, peer, m, n)
                                : net_server_send(sv->s, peer, m, n)) == 0)
            atomic_fetch_add(&sv->served, 1);
        free(m);
    }
    sv->rejections = net_server_rejections(sv->s);
    return NULL;
}

static bool g_batched; /* servers started from now on echo with net_server_send_more */

static server *server_start(const tee_policy *peer, size_t max_msg) {
    server *sv = calloc(1, sizeof *sv);
    assert_non_null(sv);
    sv->batched = g_batched;
    sv->auth = (net_auth){.tee = g_tee_srv, .peer = peer, .max_msg = max_msg, .name = "test-srv"};
    assert_int_equal(net_server_open(g_ctx, g_listen, &sv->auth, &sv->s), 0);
    assert_int_equal(pthread_create(&sv->th, NULL, server_main, sv), 0);
    atomic_fetch_add(&g_running, 1);
    return sv;
}

/* Stop the server; @p rejections and @p last (both optional) say what it saw. */
static void server_stop(server *sv, uint64_t *rejections, net_peer_info *last) {
    atomic_store(&sv->stop, 1);
    pthread_join(sv->th, NULL);
    if (rejections)
        *rejections = sv->rejections;
    if (last)
        *last = sv->last_peer;
    net_server_close(sv->s);
    free(sv);
    atomic_fetch_sub(&g_running, 1);
}

/* ---- clients ------------------------------------------------------------------------------- */

typedef enum { AS_ENCLAVE, AS_OWNER, AS_STRANGER } client_kind;

static int connect_as(const char *ep, client_kind k, const tee_policy *pol, size_t max_msg,
                      net_chan **c, char *why, size_t whylen) {
    net_auth a = {
        .peer = pol, .max_msg = max_msg, .name = "test-cli", .handshake_timeout_ms = 3000};
    if (k == AS_ENCLAVE)
        a.tee = g_tee_cli;
    else
        a.id_sk = k == AS_OWNER ? g_owner_sk : g_stranger_sk;
    return net_chan_connect(g_ctx, ep, &a, c, why, whylen);
}

static net_chan *connect_ok(const char *ep) {
    net_chan *c = NULL;
    char why[320] = "";
    int rc = connect_as(ep, AS_ENCLAVE, &g_pol_dev, 0, &c, why, sizeof why);
    if (rc)
        fail_msg("connect %s: %s (%s)", ep, err_str(rc), why);
    return c;
}

/* Send @p len bytes of a pattern and expect them back. */
static void round_trip(net_chan *c, size_t len, uint8_t seed) {
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed + i * 31u);
    assert_int_equal(net_chan_send(c, b, len), 0);
    uint8_t *r = NULL;
    size_t n = 0;
    int rc = net_chan_recv(c, 5000, &r, &n);
    if (rc)
        fail_msg("round trip of %zu bytes: %s (%s)", len, err_str(rc), net_chan_error(c));
    assert_int_equal(n, len);
    if (len)
        assert_memory_equal(r, b, len);
    free(r);
    free(b);
}

/* After an attack, the client's next receive fails and its error names @p text. */
static void expect_failure(net_chan *c, const char *text) {
    uint8_t *r = NULL;
    size_t n = 0;
    int rc = 0;
    for (int i = 0; i < 8 && rc == 0; i++) { /* messages echoed before the attack still arrive */
        rc = net_chan_recv(c, 3000, &r, &n);
        free(r);
        r = NULL;
    }
    if (rc == 0 || rc == -ETIMEDOUT || !strstr(net_chan_error(c), text))
        fail_msg("expected a failure naming '%s'; got %s, error '%s'", text, err_str(rc),
                 net_chan_error(c));
    /* The failure is sticky. */
    assert_int_equal(net_chan_send(c, "x", 1), ERR_AUTH);
    assert_int_equal(net_chan_recv(c, 10, &r, &n), ERR_AUTH);
}

/* ---- the man in the middle ----------------------------------------------------------------- */

typedef enum {
    M_PASS,
    M_TAMPER,
    M_TRUNCATE,
    M_CUT,
    M_GARBAGE,
    M_REPLAY,
    M_REORDER,
    M_REFLECT,
    M_OLDSESSION,
    M_BADSIG
} mitm_mode;

typedef struct mitm {
    mitm_mode mode;
    bool s2c;           /* act on server-to-client frames (else client-to-server) */
    uint64_t at;        /* the data frame (seq) acted on */
    char endpoint[256]; /* where clients connect */
    const char *target;
    void *front;   /* ROUTER facing clients */
    void *back[4]; /* one DEALER per client towards the server */
    bool stream;   /* the stream transport: TCP sockets instead */
    int lfd, cfd[4], sfd[4];
    uint8_t rid[4][64];
    size_t rid_len[4];
    int nconn;
    uint8_t *held; /* reorder: the frame held back */
    size_t held_len;
    uint8_t *old; /* oldsession: the first frame of the first connection */
    size_t old_len;
    int old_from;
    atomic_int stop, acted;
    pthread_t th;
} mitm;

/* Blocking whole writes and reads on a TCP socket (the proxy's peers are quick). */
static bool write_all(int fd, const void *b, size_t n) {
    for (size_t d = 0; d < n;) {
        ssize_t k = send(fd, (const uint8_t *)b + d, n - d, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        d += (size_t)k;
    }
    return true;
}

static bool read_all(int fd, void *b, size_t n) {
    return n == 0 || recv(fd, b, n, MSG_WAITALL) == (ssize_t)n;
}

static bool stream_write(int fd, const void *b, size_t n) {
    uint8_t h[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    return write_all(fd, h, 4) && write_all(fd, b, n);
}

/* Read one length-prefixed message (malloc'd) from a stream socket; NULL at the end. */
static uint8_t *stream_read(int fd, size_t *n) {
    uint8_t h[4];
    if (!read_all(fd, h, 4))
        return NULL;
    *n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
    uint8_t *b = malloc(*n ? *n : 1);
    if (b && !read_all(fd, b, *n)) {
        free(b);
        return NULL;
    }
    return b;
}

static int tcp_connect(const char *ep) { /* "stream://127.0.0.1:PORT" */
    const char *colon = strrchr(ep, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* A listening socket on 127.0.0.1 (backlog @p backlog); its endpoint in @p ep. */
static int tcp_listen(int backlog, char *ep, size_t eplen) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(ep, eplen, "stream://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

static void mitm_fwd(mitm *x, int conn, bool s2c, const void *b, size_t n) {
    if (x->stream) {
        (void)stream_write(s2c ? x->cfd[conn] : x->sfd[conn], b, n);
        return;
    }
    if (s2c) {
        zmq_send(x->front, x->rid[conn], x->rid_len[conn], ZMQ_SNDMORE);
        zmq_send(x->front, b, n, 0);
    } else {
        zmq_send(x->back[conn], b, n, 0);
    }
}

static uint64_t frame_seq(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[18 + i];
    return v;
}

static void mitm_handle(mitm *x, int conn, bool s2c, uint8_t *b, size_t n) {
    bool frame = n >= FRAME_HDR && (b[0] == FRAME_KIND || b[0] == FRAME_BATCH);
    if (s2c != x->s2c) {
        mitm_fwd(x, conn, s2c, b, n);
        return;
    }
    if (x->mode == M_BADSIG) {
        /* ServerHello (s2c) or ClientAuth (c2s): the report's signature is its last 64 bytes;
         * the report is the last field of the message, so flip the message's last byte. */
        bool hs = !frame && n > 224 && b[0] == (s2c ? 0x12 : 0x1a);
        if (hs && !atomic_load(&x->acted)) {
            b[n - 1] ^= 0x01;
            atomic_store(&x->acted, 1);
        }
        mitm_fwd(x, conn, s2c, b, n);
        return;
    }
    if (!frame) {
        mitm_fwd(x, conn, s2c, b, n);
        return;
    }
    uint64_t seq = frame_seq(b);
    if (x->mode == M_OLDSESSION) {
        if (!x->old) {
            x->old = malloc(n);
            memcpy(x->old, b, n);
            x->old_len = n;
            x->old_from = conn;
        } else if (conn != x->old_from && seq == x->at) {
            mitm_fwd(x, conn, s2c, x->old, x->old_len);
            atomic_store(&x->acted, 1);
        }
        mitm_fwd(x, conn, s2c, b, n);
        return;
    }
    if (x->held) { /* reorder: the held frame goes after this one */
        mitm_fwd(x, conn, s2c, b, n);
        mitm_fwd(x, conn, s2c, x->held, x->held_len);
        free(x->held);
        x->held = NULL;
        atomic_store(&x->acted, 1);
        return;
    }
    if (seq != x->at || x->mode == M_PASS || atomic_load(&x->acted)) {
        mitm_fwd(x, conn, s2c, b, n);
        return;
    }
    switch (x->mode) {
    case M_TAMPER:
        b[FRAME_HDR + (n - FRAME_HDR) / 2] ^= 0x04;
        mitm_fwd(x, conn, s2c, b, n);
        break;
    case M_TRUNCATE: mitm_fwd(x, conn, s2c, b, n - 5); break;
    case M_CUT: mitm_fwd(x, conn, s2c, b, 20); break;
    case M_GARBAGE: {
        uint8_t junk[64];
        memset(junk, 0xff, sizeof junk);
        mitm_fwd(x, conn, s2c, junk, sizeof junk);
        break;
    }
    case M_REPLAY:
        mitm_fwd(x, conn, s2c, b, n);
        mitm_fwd(x, conn, s2c, b, n);
        break;
    case M_REORDER:
        x->held = malloc(n);
        memcpy(x->held, b, n);
        x->held_len = n;
        return; /* acted is set when it is released */
    case M_REFLECT:
        mitm_fwd(x, conn, s2c, b, n);
        mitm_fwd(x, conn, !s2c, b, n);
        break;
    default: mitm_fwd(x, conn, s2c, b, n); break;
    }
    atomic_store(&x->acted, 1);
}

static void mitm_stream_main(mitm *x) {
    while (!atomic_load(&x->stop)) {
        struct pollfd p[9];
        int polled = x->nconn;
        p[0] = (struct pollfd){.fd = x->lfd, .events = POLLIN};
        for (int i = 0; i < polled; i++) {
            p[1 + 2 * i] = (struct pollfd){.fd = x->cfd[i], .events = POLLIN};
            p[2 + 2 * i] = (struct pollfd){.fd = x->sfd[i], .events = POLLIN};
        }
        if (poll(p, (nfds_t)(1 + 2 * polled), 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && x->nconn < 4) {
            int c = accept(x->lfd, NULL, NULL);
            if (c >= 0) {
                x->cfd[x->nconn] = c;
                x->sfd[x->nconn] = tcp_connect(x->target);
                x->nconn++;
            }
        }
        for (int i = 0; i < polled; i++)
            for (int dir = 0; dir < 2; dir++) { /* 0: from the client, 1: from the server */
                struct pollfd *q = &p[1 + 2 * i + dir];
                if (q->fd < 0 || !(q->revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                size_t n = 0;
                uint8_t *b = stream_read(q->fd, &n);
                if (!b) { /* one side ended: end the other too */
                    shutdown(x->cfd[i], SHUT_RDWR);
                    shutdown(x->sfd[i], SHUT_RDWR);
                    p[1 + 2 * i].fd = p[2 + 2 * i].fd = -1;
                    continue;
                }
                mitm_handle(x, i, dir == 1, b, n);
                free(b);
            }
    }
}

static void *mitm_main(void *arg) {
    mitm *x = arg;
    if (x->stream) {
        mitm_stream_main(x);
        return NULL;
    }
    while (!atomic_load(&x->stop)) {
        zmq_pollitem_t it[5];
        it[0] = (zmq_pollitem_t){.socket = x->front, .events = ZMQ_POLLIN};
        int polled = x->nconn; /* a connection added below is polled from the next round */
        for (int i = 0; i < polled; i++)
            it[i + 1] = (zmq_pollitem_t){.socket = x->back[i], .events = ZMQ_POLLIN};
        if (zmq_poll(it, polled + 1, 20) <= 0)
            continue;
        if (it[0].revents & ZMQ_POLLIN) {
            uint8_t rid[64];
            int rl = zmq_recv(x->front, rid, sizeof rid, 0);
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, x->front, 0);
            int conn = -1;
            for (int i = 0; i < x->nconn; i++)
                if (x->rid_len[i] == (size_t)rl && memcmp(x->rid[i], rid, (size_t)rl) == 0)
                    conn = i;
            if (conn < 0 && x->nconn < 4 && rl > 0) {
                conn = x->nconn++;
                memcpy(x->rid[conn], rid, (size_t)rl);
                x->rid_len[conn] = (size_t)rl;
                x->back[conn] = zmq_socket(g_ctx, ZMQ_DEALER);
                int linger = 0;
                zmq_setsockopt(x->back[conn], ZMQ_LINGER, &linger, sizeof linger);
                zmq_connect(x->back[conn], x->target);
            }
            if (conn >= 0)
                mitm_handle(x, conn, false, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
        for (int i = 0; i < polled; i++) {
            if (!(it[i + 1].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, x->back[i], 0);
            mitm_handle(x, i, true, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
    }
    return NULL;
}

static mitm *mitm_start(const char *target, mitm_mode mode, bool s2c, uint64_t at) {
    mitm *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->mode = mode;
    x->s2c = s2c;
    x->at = at;
    x->target = target;
    x->stream = strncmp(target, "stream://", 9) == 0;
    if (x->stream) {
        x->lfd = tcp_listen(8, x->endpoint, sizeof x->endpoint);
        assert_int_equal(pthread_create(&x->th, NULL, mitm_main, x), 0);
        atomic_fetch_add(&g_running, 1);
        return x;
    }
    x->front = zmq_socket(g_ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(x->front, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(x->front, "tcp://127.0.0.1:0"), 0);
    size_t n = sizeof x->endpoint;
    zmq_getsockopt(x->front, ZMQ_LAST_ENDPOINT, x->endpoint, &n);
    assert_int_equal(pthread_create(&x->th, NULL, mitm_main, x), 0);
    atomic_fetch_add(&g_running, 1);
    return x;
}

static void mitm_stop(mitm *x) {
    atomic_store(&x->stop, 1);
    pthread_join(x->th, NULL);
    for (int i = 0; i < x->nconn; i++) {
        if (x->stream) {
            close(x->cfd[i]);
            close(x->sfd[i]);
        } else {
            zmq_close(x->back[i]);
        }
    }
    if (x->stream)
        close(x->lfd);
    else
        zmq_close(x->front);
    free(x->held);
    free(x->old);
    free(x);
    atomic_fetch_sub(&g_running, 1);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    if (cr_init() != 0)
        return -1;
    snprintf(g_home, sizeof g_home, "/tmp/psl-test-chan-XXXXXX");
    if (!mkdtemp(g_home))
        return -1;
    tee_opts o = {.home = g_home, .quiet = true};
    if (tee_open(&o, &g_tee_srv) != 0 || tee_open(&o, &g_tee_cli) != 0)
        return -1;
    tee_policy_for(g_tee_srv, false, &g_pol_dev);
    tee_policy_for(g_tee_srv, true, &g_pol_prod);
    tee_policy_for(g_tee_srv, false, &g_pol_owner);
    uint8_t pk[CR_SIGN_PK], seed[CR_SIGN_SEED];
    cr_random(seed, sizeof seed);
    cr_sign_seed_keypair(pk, g_owner_sk, seed);
    tee_policy_add_client(&g_pol_owner, pk);
    cr_sign_keypair(pk, g_stranger_sk);
    g_ctx = zmq_ctx_new();
    return g_ctx ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (atomic_load(&g_running) == 0)
        zmq_ctx_term(g_ctx);
    else /* a failed test left threads behind: unblock them, and exit without waiting */
        zmq_ctx_shutdown(g_ctx);
    tee_policy_fini(&g_pol_dev);
    tee_policy_fini(&g_pol_prod);
    tee_policy_fini(&g_pol_owner);
    tee_close(g_tee_srv);
    tee_close(g_tee_cli);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_home);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_handshake_attested(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    net_chan *c = connect_ok(net_server_endpoint(sv->s));
    const net_peer_info *pi = net_chan_peer(c);
    assert_true(pi->attested);
    assert_string_equal(pi->report.backend, "sim");
    assert_true(pi->aead == CR_AEAD_AESGCM || pi->aead == CR_AEAD_XCHACHA);
    assert_int_equal(pi->aead, cr_aead_pick(cr_aead_supported()));
    assert_string_equal(net_chan_error(c), "");
    unsigned aead = pi->aead;
    round_trip(c, 5, 1);
    net_chan_close(c);
    net_peer_info last;
    server_stop(sv, NULL, &last);
    assert_true(last.attested);
    assert_int_equal(last.aead, aead);
}

static void test_handshake_identity(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_owner, 0);
    const char *ep = net_server_endpoint(sv->s);
    net_chan *c = NULL;
    char why[320] = "";
    assert_int_equal(connect_as(ep, AS_OWNER, &g_pol_dev, 0, &c, why, sizeof why), 0);
    round_trip(c, 100, 2);
    net_chan_close(c);
    /* A stranger's identity is refused by the server, and the client is told why. */
    c = NULL;
    assert_int_equal(connect_as(ep, AS_STRANGER, &g_pol_dev, 0, &c, why, sizeof why), ERR_AUTH);
    assert_null(c);
    assert_non_null(strstr(why, "is not a client_key of the policy"));
    uint64_t rej = 0;
    net_peer_info last;
    server_stop(sv, &rej, &last);
    assert_int_equal(rej, 1);
    /* The server knew the owner by its identity key, not by a report. */
    assert_false(last.attested);
    assert_memory_equal(last.identity, g_owner_sk + 32, 32);
}

static void test_handshake_policy_refusals(void **state) {
    (void)state;
    char why[320] = "";
    net_chan *c = NULL;
    /* The client requires a non-sim backend: it rejects the server's report. */
    server *sv = server_start(&g_pol_dev, 0);
    assert_int_equal(
        connect_as(net_server_endpoint(sv->s), AS_ENCLAVE, &g_pol_prod, 0, &c, why, sizeof why),
        ERR_AUTH);
    assert_non_null(strstr(why, "backend 'sim' not accepted"));
    server_stop(sv, NULL, NULL);
    /* The server requires a non-sim backend: it refuses the client, which learns why. */
    sv = server_start(&g_pol_prod, 0);
    why[0] = 0;
    assert_int_equal(
        connect_as(net_server_endpoint(sv->s), AS_ENCLAVE, &g_pol_dev, 0, &c, why, sizeof why),
        ERR_AUTH);
    assert_non_null(strstr(why, "backend 'sim' not accepted"));
    /* An unattested client (identity) with no client keys in the policy: refused. */
    why[0] = 0;
    assert_int_equal(
        connect_as(net_server_endpoint(sv->s), AS_OWNER, &g_pol_dev, 0, &c, why, sizeof why),
        ERR_AUTH);
    assert_non_null(strstr(why, "unattested peer"));
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 2);
}

static void test_handshake_timeout(void **state) {
    (void)state;
    /* A ROUTER that never answers. */
    atomic_fetch_add(&g_running, 1);
    void *r = zmq_socket(g_ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(r, "tcp://127.0.0.1:0"), 0);
    char ep[256];
    size_t n = sizeof ep;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &n);
    net_auth a = {
        .tee = g_tee_cli, .peer = &g_pol_dev, .handshake_timeout_ms = 200, .name = "test-cli"};
    net_chan *c = NULL;
    char why[320] = "";
    assert_int_equal(net_chan_connect(g_ctx, ep, &a, &c, why, sizeof why), -ETIMEDOUT);
    assert_non_null(strstr(why, "timed out"));
    zmq_close(r);
    atomic_fetch_sub(&g_running, 1);
}

/* Expect the echoes of the 4-byte counters 0..@p count-1, in order. */
static void expect_counted(net_chan *c, uint32_t count) {
    for (uint32_t v = 0; v < count; v++) {
        uint8_t *r;
        size_t n;
        assert_int_equal(net_chan_recv(c, 5000, &r, &n), 0);
        assert_int_equal(n, sizeof v);
        assert_memory_equal(r, &v, sizeof v);
        free(r);
    }
}

static void test_round_trips(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    net_chan *c = connect_ok(net_server_endpoint(sv->s));
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1024, 4095, 65536, 100003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(c, sizes[i], (uint8_t)i);
    /* Pipelined: many in flight, answers in order. */
    uint32_t v;
    for (v = 0; v < 200; v++)
        assert_int_equal(net_chan_send(c, &v, sizeof v), 0);
    expect_counted(c, 200);
    /* Two clients at once keep separate sessions. */
    net_chan *d = connect_ok(net_server_endpoint(sv->s));
    round_trip(d, 10, 7);
    round_trip(c, 10, 8);
    net_chan_close(d);
    net_chan_close(c);
    server_stop(sv, NULL, NULL);
}

/* A pattern of @p len bytes for message @p i. */
static uint8_t *pattern(size_t len, unsigned i) {
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    for (size_t k = 0; k < len; k++)
        b[k] = (uint8_t)(i * 7u + k * 13u);
    return b;
}

/* Expect messages @p from..@p to-1 of @p sizes back, in order. */
static void expect_echoes(net_chan *c, const size_t *sizes, unsigned from, unsigned to) {
    for (unsigned i = from; i < to; i++) {
        uint8_t *r = NULL, *b = pattern(sizes[i], i);
        size_t n = 0;
        int rc = net_chan_recv(c, 5000, &r, &n);
        if (rc)
            fail_msg("echo %u: %s (%s)", i, err_str(rc), net_chan_error(c));
        assert_int_equal(n, sizes[i]);
        if (n)
            assert_memory_equal(r, b, n);
        free(r);
        free(b);
    }
}

static void test_batches(void **state) {
    (void)state;
    /* max_msg 64 KiB: batches are cut at 64 KiB, so the 40 KB messages force early sends, and a
     * message of exactly the limit travels alone. */
    g_batched = true;
    server *sv = server_start(&g_pol_dev, 65536);
    g_batched = false;
    net_chan *c = NULL;
    char why[320] = "";
    assert_int_equal(
        connect_as(net_server_endpoint(sv->s), AS_ENCLAVE, &g_pol_dev, 65536, &c, why, sizeof why),
        0);
    static const size_t sizes[] = {0, 1, 1024, 40000, 40000, 65536, 7, 0, 65531, 3, 1024, 2};
    enum { N = sizeof sizes / sizeof sizes[0] };
    /* Queued, then sent by net_chan_send together with its own message. */
    for (unsigned i = 0; i < N - 1; i++) {
        uint8_t *b = pattern(sizes[i], i);
        assert_int_equal(net_chan_send_more(c, b, sizes[i]), 0);
        free(b);
    }
    uint8_t *b = pattern(sizes[N - 1], N - 1);
    assert_int_equal(net_chan_send(c, b, sizes[N - 1]), 0);
    free(b);
    expect_echoes(c, sizes, 0, N);
    /* Queued only: waiting in net_chan_recv sends the queue (no deadlock). */
    for (unsigned i = 0; i < 5; i++) {
        b = pattern(sizes[i], i);
        assert_int_equal(net_chan_send_more(c, b, sizes[i]), 0);
        free(b);
    }
    expect_echoes(c, sizes, 0, 5);
    /* Over the limit is refused, and the channel stays usable. */
    b = pattern(65537, 0);
    assert_int_equal(net_chan_send_more(c, b, 65537), ERR_LIMIT);
    free(b);
    round_trip(c, 100, 3);
    /* Pipelined batches: 2000 small messages, flushed every 50, all echoed in order. */
    for (uint32_t v = 0; v < 2000; v++)
        assert_int_equal(
            v % 50 == 49 ? net_chan_send(c, &v, sizeof v) : net_chan_send_more(c, &v, sizeof v), 0);
    expect_counted(c, 2000);
    /* Closing sends what is still queued. */
    net_chan *d = connect_ok(net_server_endpoint(sv->s));
    assert_int_equal(net_chan_send_more(d, "last", 4), 0);
    int before = atomic_load(&sv->served);
    net_chan_close(d);
    for (int i = 0; i < 300 && atomic_load(&sv->served) == before; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&sv->served), before + 1);
    net_chan_close(c);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 0);
}

static void test_large_messages(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    net_chan *c = connect_ok(net_server_endpoint(sv->s));
    /* Exactly the limit goes through; one byte more is refused locally, channel unharmed. */
    round_trip(c, NET_MAX_MSG_DEFAULT, 3);
    uint8_t *big = calloc(1, 2 * NET_MAX_MSG_DEFAULT); /* also sent as 1.5 MiB below */
    assert_non_null(big);
    assert_int_equal(net_chan_send(c, big, NET_MAX_MSG_DEFAULT + 1), ERR_LIMIT);
    round_trip(c, 10, 4);
    net_chan_close(c);
    /* A client allowed 2 MiB sends 1.5 MiB to a server limited to 1 MiB: the server rejects
     * the oversized frame before parsing it, and tells the client. */
    char why[320] = "";
    assert_int_equal(connect_as(net_server_endpoint(sv->s), AS_ENCLAVE, &g_pol_dev, 2u << 20, &c,
                                why, sizeof why),
                     0);
    assert_int_equal(net_chan_send(c, big, NET_MAX_MSG_DEFAULT / 2 * 3), 0);
    expect_failure(c, "oversized frame");
    net_chan_close(c);
    /* The other way round: a server allowed 2 MiB answers clients limited to 64 KiB. */
    server *sv2 = server_start(&g_pol_dev, 2u << 20);
    const char *ep2 = net_server_endpoint(sv2->s);
    assert_int_equal(connect_as(ep2, AS_ENCLAVE, &g_pol_dev, 2u << 20, &c, why, sizeof why), 0);
    round_trip(c, (2u << 20) - 1, 5);
    net_chan_close(c);
    const size_t lim = 64u << 10;
    char req[16];
    assert_int_equal(connect_as(ep2, AS_ENCLAVE, &g_pol_dev, lim, &c, why, sizeof why), 0);
    round_trip(c, lim, 6);
    snprintf(req, sizeof req, "big:%zu", lim); /* exactly the limit: fine */
    assert_int_equal(net_chan_send(c, req, strlen(req)), 0);
    uint8_t *r = NULL;
    size_t n = 0;
    assert_int_equal(net_chan_recv(c, 5000, &r, &n), 0);
    assert_int_equal(n, lim);
    free(r);
    /* 10 bytes over: the frame fits the wire slack, the header's length does not. */
    snprintf(req, sizeof req, "big:%zu", lim + 10);
    assert_int_equal(net_chan_send(c, req, strlen(req)), 0);
    expect_failure(c, "oversized message");
    net_chan_close(c);
    /* Far over: refused by size before any parsing. */
    assert_int_equal(connect_as(ep2, AS_ENCLAVE, &g_pol_dev, lim, &c, why, sizeof why), 0);
    snprintf(req, sizeof req, "big:%d", 100000);
    assert_int_equal(net_chan_send(c, req, strlen(req)), 0);
    expect_failure(c, "oversized frame");
    net_chan_close(c);
    free(big);
    server_stop(sv2, NULL, NULL);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 1);
}

/* Raw bytes injected on the client's own socket reach the server as that peer's messages. */
static void test_injected_junk(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    const char *ep = net_server_endpoint(sv->s);
    struct {
        size_t len;
        uint8_t first;
        const char *reason;
    } cases[] = {
        {64, 0xff, "malformed or truncated message"},
        {12, FRAME_KIND, "truncated message"},
        {NET_MAX_MSG_DEFAULT + NET_FRAME_OVERHEAD + 1, 0x00, "oversized frame"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        net_chan *c = connect_ok(ep);
        round_trip(c, 32, 9);
        uint8_t *junk = malloc(cases[i].len);
        memset(junk, 0x5a, cases[i].len);
        junk[0] = cases[i].first;
        assert_int_equal(zmq_send(net_chan_socket(c), junk, cases[i].len, 0), (int)cases[i].len);
        free(junk);
        expect_failure(c, cases[i].reason);
        net_chan_close(c);
    }
    /* An application-level refusal also closes the session with the reason. */
    net_chan *c = connect_ok(ep);
    assert_int_equal(net_chan_send(c, "goodbye", 7), 0);
    expect_failure(c, "the application refused this peer");
    net_chan_close(c);
    /* The server still serves. */
    c = connect_ok(ep);
    round_trip(c, 64, 10);
    net_chan_close(c);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 3); /* the application's refusal is not a channel rejection */
}

/* Run one attack through the proxy; @p text must name the reason on the detecting side, and the
 * server must count at least @p server_rejects rejections (1 when it is the detecting side; the
 * client's frames already in flight then count too), or none when it is not. */
static void attack(mitm_mode mode, bool s2c, uint64_t at, const char *text,
                   uint64_t server_rejects) {
    server *sv = server_start(&g_pol_dev, 0);
    mitm *x = mitm_start(net_server_endpoint(sv->s), mode, s2c, at);
    net_chan *c = NULL;
    char why[320] = "";
    if (mode == M_OLDSESSION) { /* a first session whose first frame the attacker keeps */
        c = connect_ok(x->endpoint);
        round_trip(c, 200, 11);
        net_chan_close(c);
    }
    int rc = connect_as(x->endpoint, AS_ENCLAVE, &g_pol_dev, 0, &c, why, sizeof why);
    if (mode == M_BADSIG) {
        assert_int_equal(rc, ERR_AUTH);
        if (!strstr(why, text))
            fail_msg("expected '%s' in '%s'", text, why);
    } else {
        assert_int_equal(rc, 0);
        /* Frames 1..3 in each direction (the server's seq 0 is the key confirmation). */
        uint8_t msg[200];
        memset(msg, 0x33, sizeof msg);
        for (int i = 0; i < 3; i++) /* batched: one frame (seq 1) holding all three */
            if ((g_batched ? net_chan_send_more(c, msg, sizeof msg)
                           : net_chan_send(c, msg, sizeof msg)) != 0)
                break;
        if (g_batched && net_chan_flush(c) != 0)
            fail_msg("flush: %s", net_chan_error(c));
        expect_failure(c, text);
        net_chan_close(c);
    }
    /* The proxy marks its action after forwarding: the client may have seen it first. */
    for (int i = 0; i < 300 && !atomic_load(&x->acted); i++)
        usleep(10000);
    assert_true(atomic_load(&x->acted));
    mitm_stop(x);
    /* The server survived and serves a direct client. */
    c = connect_ok(net_server_endpoint(sv->s));
    round_trip(c, 50, 12);
    net_chan_close(c);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    if (server_rejects) /* frames the client sent after the rejection are rejected too */
        assert_true(rej >= server_rejects);
    else
        assert_int_equal(rej, 0);
}

static void test_attack_tamper(void **state) {
    (void)state;
    attack(M_TAMPER, false, 1, "tampered message", 1);
    attack(M_TAMPER, true, 1, "tampered message", 0);
}

static void test_attack_truncate(void **state) {
    (void)state;
    attack(M_TRUNCATE, false, 1, "truncated message", 1);
    attack(M_TRUNCATE, true, 2, "truncated message", 0);
    attack(M_CUT, false, 1, "shorter than the 30-byte frame header", 1);
    attack(M_GARBAGE, true, 1, "malformed or truncated message", 0);
}

static void test_attack_replay_reorder(void **state) {
    (void)state;
    attack(M_REPLAY, false, 1, "replayed message", 1);
    attack(M_REPLAY, true, 1, "replayed message", 0);
    attack(M_REORDER, false, 1, "reordered or missing message", 1);
    attack(M_REORDER, true, 1, "reordered or missing message", 0);
}

static void test_attack_reflect_and_old_session(void **state) {
    (void)state;
    attack(M_REFLECT, false, 1, "message for the other direction", 0);
    attack(M_OLDSESSION, false, 1, "message from an old or unknown session", 1);
}

/* The same attacks on batch frames (client and server both batch): the client's three messages
 * travel as its frame 0, their echoes as the server's frame 1. */
static void test_attack_batches(void **state) {
    (void)state;
    g_batched = true;
    attack(M_TAMPER, false, 0, "tampered message", 1);
    attack(M_TAMPER, true, 1, "tampered message", 0);
    attack(M_TRUNCATE, false, 0, "truncated message", 1);
    attack(M_REPLAY, false, 0, "replayed message", 1);
    attack(M_REPLAY, true, 1, "replayed message", 0);
    g_batched = false;
}

static void test_attack_bad_report_signature(void **state) {
    (void)state;
    attack(M_BADSIG, true, 0, "bad report signature", 0);
    attack(M_BADSIG, false, 0, "bad report signature", 1);
}

/* ---- the stream transport's own cases ----------------------------------------------------- */

/* A peer that is not a psl channel speaks raw TCP to a stream server: junk gets a Close naming
 * the reason; a length over the limit gets one too and ends the connection (the byte stream
 * cannot be resynchronised); the server serves the others throughout. */
static void test_stream_raw_peers(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    const char *ep = net_server_endpoint(sv->s);
    assert_true(strncmp(ep, "stream://127.0.0.1:", 19) == 0);
    net_chan *good = connect_ok(ep);
    int fd = tcp_connect(ep);
    uint8_t junk[64];
    memset(junk, 0xff, sizeof junk);
    assert_true(stream_write(fd, junk, sizeof junk));
    size_t n = 0;
    uint8_t *r = stream_read(fd, &n); /* the Close, a protobuf holding the reason */
    assert_non_null(r);
    assert_non_null(memmem(r, n, "malformed or truncated message", 30));
    free(r);
    round_trip(good, 100, 1);
    /* An announced length beyond twice the frame limit. */
    uint8_t h[4] = {0xff, 0xff, 0xff, 0x7f};
    assert_true(write_all(fd, h, 4));
    r = stream_read(fd, &n);
    assert_non_null(r);
    assert_non_null(memmem(r, n, "oversized frame", 15));
    free(r);
    assert_null(stream_read(fd, &n)); /* and then the end of the connection */
    close(fd);
    round_trip(good, 100, 2);
    /* A peer that disconnects mid-message costs the server nothing. */
    fd = tcp_connect(ep);
    assert_true(write_all(fd, h, 3));
    close(fd);
    round_trip(good, 1000, 3);
    net_chan_close(good);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 2);
}

/* Connecting: a refused port fails at once with the reason, a server that never answers times
 * out, a bad endpoint is a usage error. */
static void test_stream_connect_failures(void **state) {
    (void)state;
    char ep[64], why[320] = "";
    net_auth a = {
        .tee = g_tee_cli, .peer = &g_pol_dev, .handshake_timeout_ms = 300, .name = "test-cli"};
    net_chan *c = NULL;
    int l = tcp_listen(1, ep, sizeof ep); /* accepted by the kernel, never answered */
    assert_int_equal(net_chan_connect(NULL, ep, &a, &c, why, sizeof why), -ETIMEDOUT);
    assert_non_null(strstr(why, "timed out"));
    close(l); /* now the port refuses */
    why[0] = 0;
    assert_int_equal(net_chan_connect(NULL, ep, &a, &c, why, sizeof why), ERR_IO);
    assert_non_null(strstr(why, "cannot connect"));
    why[0] = 0;
    assert_int_equal(net_chan_connect(NULL, "stream://127.0.0.1", &a, &c, why, sizeof why),
                     ERR_USAGE);
    assert_non_null(strstr(why, "expected stream://HOST:PORT"));
    assert_null(c);
    net_server *s = NULL;
    net_auth sa = {.tee = g_tee_srv, .peer = &g_pol_dev, .name = "test-srv"};
    assert_int_equal(net_server_open(NULL, "stream://127.0.0.1:port", &sa, &s), ERR_USAGE);
    assert_null(s);
}

/* IPv6: a server on [::1] publishes a bracketed endpoint that clients reach; malformed brackets
 * are usage errors. Skipped where the host has no IPv6 loopback. */
static void test_stream_ipv6(void **state) {
    (void)state;
    net_server *bad = NULL;
    net_auth sa = {.tee = g_tee_srv, .peer = &g_pol_dev, .name = "test-srv"};
    assert_int_equal(net_server_open(NULL, "stream://[::1:0", &sa, &bad), ERR_USAGE);
    assert_int_equal(net_server_open(NULL, "stream://[]:0", &sa, &bad), ERR_USAGE);
    assert_int_equal(net_server_open(NULL, "stream://[::1]x:0", &sa, &bad), ERR_USAGE);
    assert_null(bad);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have6 = fd >= 0 && bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (fd >= 0)
        close(fd);
    if (!have6) {
        print_message("no IPv6 loopback here: the [::1] round trip is skipped\n");
        skip();
    }
    const char *saved = g_listen;
    g_listen = "stream://[::1]:0";
    server *sv = server_start(&g_pol_dev, 0);
    g_listen = saved;
    const char *ep = net_server_endpoint(sv->s);
    assert_true(strncmp(ep, "stream://[::1]:", 15) == 0);
    net_chan *c = connect_ok(ep);
    round_trip(c, 100, 6);
    net_chan_close(c);
    server_stop(sv, NULL, NULL);
}

/* Many clients at once, each with one request in flight, interleaved: every answer reaches its
 * own client; then one client pipelines thousands. */
static void test_stream_many_clients(void **state) {
    (void)state;
    server *sv = server_start(&g_pol_dev, 0);
    enum { K = 24 };
    net_chan *c[K];
    for (int i = 0; i < K; i++)
        c[i] = connect_ok(net_server_endpoint(sv->s));
    for (uint32_t round = 0; round < 50; round++) {
        for (int i = 0; i < K; i++) {
            uint32_t v = round * K + (uint32_t)i;
            assert_int_equal(net_chan_send(c[i], &v, sizeof v), 0);
        }
        for (int i = 0; i < K; i++) {
            uint8_t *r;
            size_t n;
            uint32_t v = round * K + (uint32_t)i;
            assert_int_equal(net_chan_recv(c[i], 5000, &r, &n), 0);
            assert_int_equal(n, sizeof v);
            assert_memory_equal(r, &v, sizeof v);
            free(r);
        }
    }
    /* One client pipelines 3000 frames without reading: the server holds many complete
     * messages in its buffer while more arrive (a read then must not size its buffer from a
     * message it already has whole). */
    for (uint32_t v = 0; v < 3000; v++)
        assert_int_equal(net_chan_send(c[0], &v, sizeof v), 0);
    expect_counted(c[0], 3000);
    for (int i = 0; i < K; i++)
        net_chan_close(c[i]);
    uint64_t rej = 0;
    server_stop(sv, &rej, NULL);
    assert_int_equal(rej, 0);
}

static int setup_stream(void **state) {
    g_listen = "stream://127.0.0.1:0";
    return setup(state);
}

/* The cases that run on both transports. */
#define BOTH_TRANSPORTS                                                                            \
    cmocka_unit_test(test_handshake_attested), cmocka_unit_test(test_handshake_identity),          \
        cmocka_unit_test(test_handshake_policy_refusals), cmocka_unit_test(test_round_trips),      \
        cmocka_unit_test(test_batches), cmocka_unit_test(test_large_messages),                     \
        cmocka_unit_test(test_attack_tamper), cmocka_unit_test(test_attack_truncate),              \
        cmocka_unit_test(test_attack_replay_reorder),                                              \
        cmocka_unit_test(test_attack_reflect_and_old_session),                                     \
        cmocka_unit_test(test_attack_batches), cmocka_unit_test(test_attack_bad_report_signature)

int main(void) {
    /* ZeroMQ, plus the cases that reach into ZeroMQ's own sockets. */
    const struct CMUnitTest tests[] = {
        BOTH_TRANSPORTS,
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_injected_junk),
    };
    /* The stream transport, plus its own cases. */
    const struct CMUnitTest stream_tests[] = {
        BOTH_TRANSPORTS,
        cmocka_unit_test(test_stream_connect_failures),
        cmocka_unit_test(test_stream_raw_peers),
        cmocka_unit_test(test_stream_many_clients),
        cmocka_unit_test(test_stream_ipv6),
    };
    int failed = cmocka_run_group_tests_name("zeromq", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("stream", stream_tests, setup_stream, teardown);
    return failed;
}
