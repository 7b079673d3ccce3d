/* A network attacker for the channel tests: a ZeroMQ proxy between chan_peer processes that
 * forwards every message but can alter one on its way, as the trust model allows.
 *   chan_mitm --listen EP --connect EP --mode MODE [--dir c2s|s2c] [--at SEQ] [--size BYTES]
 * MODE acts on the data frame numbered SEQ (default 1) in direction --dir (default c2s):
 *   pass       forward unchanged
 *   tamper     flip one ciphertext bit
 *   truncate   drop the last 5 ciphertext bytes (header unchanged)
 *   cut        keep only the first 20 bytes (inside the 30-byte frame header)
 *   garbage    replace it with 64 bytes that are neither a frame nor a protobuf message
 *   reflect    (s2c) forward it, and also send it back to the server as if the client sent it
 *   replay     forward it twice
 *   reorder    hold it and forward it after the next frame
 *   oversize   replace it with --size bytes of junk
 *   oldsession remember the first frame of the first connection; inject it into a later
 *              connection just before frame SEQ
 *   badsig     flip a bit in the attestation report signature of the handshake
 *              (ServerHello for s2c, ClientAuth for c2s)
 * It prints one line per action on stderr. Data frames are binary (protocol version 2,
 * docs/protocols.md): 0xD2, direction, session (16), seq (u64 LE), len (u32 LE), ct || tag;
 * handshake and Close messages are protobuf Envelopes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "proto/chan.pb-c.h"

#define MAXC 16
#define FRAME_KIND 0xD2  /* one message */
#define FRAME_BATCH 0xD3 /* several (protocol version 3) */
#define FRAME_HDR 30u

typedef struct conn {
    uint8_t rid[256];
    size_t rid_len;
    void *back;
    uint8_t *held;
    size_t held_len;
} conn;

static const char *g_mode = "pass";
static int g_s2c;
static uint64_t g_at = 1;
static size_t g_size = 2u << 20;
static uint8_t *g_old;
static size_t g_old_len;
static conn *g_old_from;

static const char *arg(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* Send to the destination of direction (c2s: to the server via c->back; s2c: to the client). */
static void fwd(void *front, conn *c, int s2c, const void *b, size_t n) {
    if (s2c) {
        zmq_send(front, c->rid, c->rid_len, ZMQ_SNDMORE);
        zmq_send(front, b, n, 0);
    } else {
        zmq_send(c->back, b, n, 0);
    }
}

static void repack(void *front, conn *c, int s2c, Psl__Envelope *e) {
    size_t n = psl__envelope__get_packed_size(e);
    uint8_t *b = malloc(n);
    psl__envelope__pack(e, b);
    fwd(front, c, s2c, b, n);
    free(b);
}

static uint64_t frame_seq(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[18 + i];
    return v;
}

/* Decide what to do with one message in one direction. */
static void handle(void *front, conn *c, int s2c, uint8_t *b, size_t n) {
    int ours = s2c == g_s2c;
    int frame = n >= FRAME_HDR && (b[0] == FRAME_KIND || b[0] == FRAME_BATCH);
    Psl__Envelope *e = frame ? NULL : psl__envelope__unpack(NULL, n, b);
    if (!ours || (!e && !frame)) {
        fwd(front, c, s2c, b, n);
        goto out;
    }
    if (strcmp(g_mode, "badsig") == 0) {
        if (!e) {
            fwd(front, c, s2c, b, n);
            goto out;
        }
        Psl__Auth *a = NULL;
        if (e->body_case == PSL__ENVELOPE__BODY_SERVER_HELLO)
            a = e->server_hello->auth;
        if (e->body_case == PSL__ENVELOPE__BODY_CLIENT_AUTH)
            a = e->client_auth->auth;
        if (a && a->report.len > 0) {
            a->report.data[a->report.len - 1] ^= 0x01;
            fprintf(stderr, "mitm: flipped a report signature bit\n");
            repack(front, c, s2c, e);
            goto out;
        }
        fwd(front, c, s2c, b, n);
        goto out;
    }
    if (!frame) {
        fwd(front, c, s2c, b, n);
        goto out;
    }
    uint64_t seq = frame_seq(b);
    size_t ctlen = n - FRAME_HDR;
    if (strcmp(g_mode, "oldsession") == 0) {
        if (!g_old) {
            g_old = malloc(n);
            memcpy(g_old, b, n);
            g_old_len = n;
            g_old_from = c;
        } else if (c != g_old_from && seq == g_at) {
            fprintf(stderr, "mitm: injected a frame from an earlier session\n");
            fwd(front, c, s2c, g_old, g_old_len);
        }
        fwd(front, c, s2c, b, n);
        goto out;
    }
    if (c->held) { /* reorder: release the held frame after this one */
        fwd(front, c, s2c, b, n);
        fwd(front, c, s2c, c->held, c->held_len);
        fprintf(stderr, "mitm: reordered frames %llu and %llu\n", (unsigned long long)seq - 1,
                (unsigned long long)seq);
        free(c->held);
        c->held = NULL;
        goto out;
    }
    if (seq != g_at || strcmp(g_mode, "pass") == 0) {
        fwd(front, c, s2c, b, n);
        goto out;
    }
    if (strcmp(g_mode, "tamper") == 0) {
        b[FRAME_HDR + ctlen / 2] ^= 0x04;
        fprintf(stderr, "mitm: tampered with frame %llu\n", (unsigned long long)seq);
        fwd(front, c, s2c, b, n);
    } else if (strcmp(g_mode, "truncate") == 0) {
        fprintf(stderr, "mitm: truncated frame %llu\n", (unsigned long long)seq);
        fwd(front, c, s2c, b, ctlen > 5 ? n - 5 : FRAME_HDR);
    } else if (strcmp(g_mode, "cut") == 0) {
        fprintf(stderr, "mitm: cut frame %llu inside its header\n", (unsigned long long)seq);
        fwd(front, c, s2c, b, 20);
    } else if (strcmp(g_mode, "garbage") == 0) {
        uint8_t junk[64];
        memset(junk, 0xff, sizeof junk);
        fprintf(stderr, "mitm: replaced frame %llu with garbage\n", (unsigned long long)seq);
        fwd(front, c, s2c, junk, sizeof junk);
    } else if (strcmp(g_mode, "reflect") == 0) {
        fwd(front, c, s2c, b, n);
        fwd(front, c, !s2c, b, n);
        fprintf(stderr, "mitm: reflected frame %llu\n", (unsigned long long)seq);
    } else if (strcmp(g_mode, "replay") == 0) {
        fwd(front, c, s2c, b, n);
        fwd(front, c, s2c, b, n);
        fprintf(stderr, "mitm: replayed frame %llu\n", (unsigned long long)seq);
    } else if (strcmp(g_mode, "reorder") == 0) {
        c->held = malloc(n);
        memcpy(c->held, b, n);
        c->held_len = n;
    } else if (strcmp(g_mode, "oversize") == 0) {
        uint8_t *junk = malloc(g_size);
        memset(junk, 0x5a, g_size);
        fwd(front, c, s2c, junk, g_size);
        free(junk);
        fprintf(stderr, "mitm: sent an oversized frame of %zu bytes\n", g_size);
    } else {
        fwd(front, c, s2c, b, n);
    }
out:
    if (e)
        psl__envelope__free_unpacked(e, NULL);
}

int main(int argc, char **argv) {
    const char *listen = arg(argc, argv, "--listen"), *connect = arg(argc, argv, "--connect");
    if (!listen || !connect) {
        fprintf(stderr, "usage: chan_mitm --listen EP --connect EP --mode MODE ...\n");
        return 2;
    }
    if (arg(argc, argv, "--mode"))
        g_mode = arg(argc, argv, "--mode");
    if (arg(argc, argv, "--dir"))
        g_s2c = strcmp(arg(argc, argv, "--dir"), "s2c") == 0;
    if (arg(argc, argv, "--at"))
        g_at = strtoull(arg(argc, argv, "--at"), NULL, 10);
    if (arg(argc, argv, "--size"))
        g_size = strtoul(arg(argc, argv, "--size"), NULL, 10);
    void *ctx = zmq_ctx_new();
    void *front = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 100;
    zmq_setsockopt(front, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(front, listen) != 0) {
        fprintf(stderr, "mitm: cannot bind %s\n", listen);
        return 2;
    }
    fprintf(stderr, "mitm: %s -> %s mode %s %s at %llu\n", listen, connect, g_mode,
            g_s2c ? "s2c" : "c2s", (unsigned long long)g_at);
    conn conns[MAXC];
    int n = 0;
    for (;;) {
        zmq_pollitem_t it[MAXC + 1];
        it[0] = (zmq_pollitem_t){.socket = front, .events = ZMQ_POLLIN};
        for (int i = 0; i < n; i++)
            it[i + 1] = (zmq_pollitem_t){.socket = conns[i].back, .events = ZMQ_POLLIN};
        if (zmq_poll(it, n + 1, -1) < 0)
            break;
        if (it[0].revents & ZMQ_POLLIN) {
            uint8_t rid[256];
            int rl = zmq_recv(front, rid, sizeof rid, 0);
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, front, 0);
            conn *c = NULL;
            for (int i = 0; i < n; i++)
                if (conns[i].rid_len == (size_t)rl && memcmp(conns[i].rid, rid, (size_t)rl) == 0)
                    c = &conns[i];
            if (!c && n < MAXC) {
                c = &conns[n++];
                memset(c, 0, sizeof *c);
                memcpy(c->rid, rid, (size_t)rl);
                c->rid_len = (size_t)rl;
                c->back = zmq_socket(ctx, ZMQ_DEALER);
                zmq_setsockopt(c->back, ZMQ_LINGER, &linger, sizeof linger);
                zmq_connect(c->back, connect);
            }
            if (c)
                handle(front, c, 0, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
        for (int i = 0; i < n; i++) {
            if (!(it[i + 1].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, conns[i].back, 0);
            handle(front, &conns[i], 1, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
    }
    return 0;
}
