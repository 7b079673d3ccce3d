/* net: the attested secure channel, used by every message between psl processes, over ZeroMQ
 * ("tcp://..." and other ZeroMQ endpoints) or over plain TCP ("stream://HOST:PORT", stream.c).
 *
 * Handshake (docs/protocols.md has the byte-level description):
 *   C -> S  ClientHello {X25519 eph_c, nonce_c, AEAD mask}
 *   S -> C  ServerHello {eph_s, nonce_s, AEAD choice, auth_s}
 *           auth_s = report(pubkey = eph_s, nonce = th1) or identity signature over th1,
 *           th1 = H("psl-hs1" || ClientHello || eph_s || nonce_s || aead)
 *   C -> S  ClientAuth {auth_c}: report(pubkey = eph_c, nonce = th2) or identity signature,
 *           th2 = H("psl-hs2" || ClientHello || ServerHello)
 *   S -> C  Frame seq 0 (empty): key confirmation; the channel is open.
 * Keys: c2s, s2c and the 16-byte session id come from cr_kdf(X25519(eph_c, eph_s), label, th2).
 * Each report or signature binds the sender's ephemeral key and the whole transcript so far, so a
 * report cannot be replayed into another handshake and the AEAD choice cannot be downgraded.
 *
 * Frames (protocol version 3): a fixed 30-byte binary header {kind, direction, session id, seq,
 * len} and the ciphertext, sealed into and opened from the ZeroMQ message itself (no protobuf,
 * no intermediate copy); the header is the AEAD's associated data. Kind 0xD2 holds one message,
 * 0xD3 a batch of several (each length-prefixed), which *_send_more queue and a flush seals
 * under one tag: per message, a pipelining sender then pays neither a ZeroMQ message nor an AEAD
 * call of its own. AEAD with one key per
 * direction; the nonce is a per-direction counter carried in the frame and checked before
 * decryption. The receiving side rejects, with a one-line reason, and
 * closes the session (sticky failure): an oversized frame (checked before parsing), a message it
 * cannot decode (truncated or garbage), a frame from another (old) session, a replayed or
 * reordered frame (seq below / above the expected one), a reflected frame (wrong direction), a
 * truncated ciphertext, a bad tag (tampered). The detecting side logs the reason on stderr and
 * sends an unauthenticated Close with the reason, so the other side can say why the channel closed.
 * Nothing aborts the process.
 *
 * Sockets: on ZeroMQ a client is one DEALER and a server one ROUTER holding a session per peer;
 * on the stream transport a client is one blocking TCP connection and a server one epoll loop
 * holding a session per connection (the zctx arguments are then unused, and net_chan_socket
 * returns NULL).
 * Objects are single-threaded: use each from one thread at a time.
 * Errors: 0 or negative codes from base/err.h; -ETIMEDOUT when a wait ends without a message. */
#ifndef PSL_NET_NET_H
#define PSL_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "tee/tee.h"

#define NET_MAX_MSG_DEFAULT (1u << 20) /* largest application message by default (1 MiB) */
#define NET_FRAME_OVERHEAD 64u         /* frame header (30) + tag (16), upper bound */

/** How this side authenticates, and what it accepts from the peer. Borrowed for the lifetime of
 * the channel or server. */
typedef struct net_auth {
    tee_enclave *tee;         /* prove with a fresh report from this enclave, or else */
    const uint8_t *id_sk;     /* an Ed25519 identity (CR_SIGN_SK bytes): clients, owners */
    const tee_policy *peer;   /* required: the peer's report or identity must pass it */
    size_t max_msg;           /* largest application message; 0 = NET_MAX_MSG_DEFAULT */
    int handshake_timeout_ms; /* 0 = 5000 */
    const char *name;         /* log prefix (e.g. "keymgr"); NULL = "net" */
} net_auth;

/** What the handshake proved about the peer. */
typedef struct net_peer_info {
    bool attested; /* true: report below was verified; false: identity below */
    tee_report report;
    uint8_t identity[32];
    unsigned aead; /* CR_AEAD_* in use */
} net_peer_info;

/* ---- client side --------------------------------------------------------------------------- */
typedef struct net_chan net_chan;

/** Connect to @p endpoint (e.g. "tcp://127.0.0.1:7000") and run the handshake.
 * @param zctx a ZeroMQ context, or NULL for a private one.
 * @return 0, ERR_AUTH (the server's proof failed our policy, or the server refused ours: @p why
 *         says which and why), ERR_MALFORMED / ERR_LIMIT (bad reply), -ETIMEDOUT, ERR_IO. */
int net_chan_connect(void *zctx, const char *endpoint, const net_auth *a, net_chan **out, char *why,
                     size_t whylen) WARN_UNUSED;
/** Send one message (<= max_msg bytes). ERR_LIMIT when larger; the channel's sticky error when
 * it has failed. */
int net_chan_send(net_chan *c, const void *msg, size_t len) WARN_UNUSED;
/** Queue a message to go out with the next ones in one batch frame (at most 128 KiB or max_msg
 * of queued bytes; a full batch is sent at once). Queued messages leave, in order, at the next
 * net_chan_send (which sends its own message in the same frame), net_chan_flush, or
 * net_chan_recv that has to wait for input: a client that queues requests and then waits for a
 * reply never deadlocks. Errors as net_chan_send. */
int net_chan_send_more(net_chan *c, const void *msg, size_t len) WARN_UNUSED;
/** Send whatever net_chan_send_more queued. */
int net_chan_flush(net_chan *c) WARN_UNUSED;
/** Receive one message (the next of a received batch first). @param[out] msg malloc'd, caller
 * frees.
 * @return 0, -ETIMEDOUT, or a rejection (ERR_AUTH, ERR_MALFORMED, ERR_LIMIT, ERR_CORRUPT) after
 *         which the channel is closed and net_chan_error() says why. */
int net_chan_recv(net_chan *c, int timeout_ms, uint8_t **msg, size_t *len) WARN_UNUSED;
/** The reason the channel failed ("" while it is healthy). Borrowed. */
const char *net_chan_error(const net_chan *c);
const net_peer_info *net_chan_peer(const net_chan *c);
void net_chan_close(net_chan *c);

/* Test and benchmark hooks: the raw DEALER socket (to inject bytes as an attacker would) and
 * the session id. Never used by production code. */
void *net_chan_socket(net_chan *c);

/* ---- server side --------------------------------------------------------------------------- */
typedef struct net_server net_server;

/** Bind a ROUTER socket at @p endpoint ("tcp://127.0.0.1:0" picks a free port; see
 * net_server_endpoint). */
int net_server_open(void *zctx, const char *endpoint, const net_auth *a,
                    net_server **out) WARN_UNUSED;
/** The endpoint actually bound (borrowed). */
const char *net_server_endpoint(const net_server *s);
/** Run handshakes and return the next application message from an established peer.
 * Rejected peers are logged on stderr and dropped; this call keeps serving the others.
 * @param[out] peer the session handle to answer with net_server_send.
 * @param[out] msg malloc'd, caller frees. @return 0 or -ETIMEDOUT. */
int net_server_recv(net_server *s, int timeout_ms, uint64_t *peer, uint8_t **msg,
                    size_t *len) WARN_UNUSED;
/** @return 0, ERR_NOTFOUND (no such live session), ERR_LIMIT (too large). */
int net_server_send(net_server *s, uint64_t peer, const void *msg, size_t len) WARN_UNUSED;
/** Queue a message for @p peer to go out in one batch frame with the next ones (as
 * net_chan_send_more). Queued messages leave at the next net_server_send to that peer,
 * net_server_flush, net_server_drop, or when net_server_recv finds no input waiting (an echo
 * loop that answers with send_more batches its replies exactly as its requests arrived).
 * Errors as net_server_send. */
int net_server_send_more(net_server *s, uint64_t peer, const void *msg, size_t len) WARN_UNUSED;
/** Send every peer's queued messages. */
void net_server_flush(net_server *s);
/** Drop a session (e.g. after an application-level refusal); the peer gets Close(@p reason). */
void net_server_drop(net_server *s, uint64_t peer, const char *reason);
/** Verified facts about a live session's peer, or NULL. Borrowed until the session ends. */
const net_peer_info *net_server_peer(const net_server *s, uint64_t peer);
/** Number of sessions rejected so far (handshake or frame failures). */
uint64_t net_server_rejections(const net_server *s);
void net_server_close(net_server *s);

#endif
