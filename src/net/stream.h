/* net stream transport (internal to src/net): length-prefixed messages over plain TCP, the
 * alternative to ZeroMQ under the secure channel for endpoints written "stream://HOST:PORT"
 * (an IPv6 address in brackets: "stream://[::1]:7000").
 *
 * Why it exists: with one message in flight per connection (a YCSB client, a function
 * invocation), ZeroMQ's cost is its I/O threads, two thread hand-offs per side per round trip.
 * Here the calling thread does the socket system calls itself: a client writes and then blocks in
 * read(); a server waits in epoll and reads and writes from its own thread. The channel's framing
 * and checks (chan.c) are the same on both transports; this file only moves opaque messages.
 *
 * Wire: each message is a 4-byte little-endian length and that many bytes. A length above the
 * receiver's limit ends the connection (the byte stream cannot be resynchronised) and is never
 * buffered. A server holds at most 4096 connections (more are closed as they are accepted) and
 * keeps at most one limit-sized message plus one read per connection.
 *
 * Received messages are handed out as zmq_msg_t (initialised here, closed by the caller), the
 * container chan.c already uses; no ZeroMQ socket is involved.
 *
 * Objects are single-threaded. Errors: 0 or negative codes (-errno, ERR_* from base/err.h),
 * -ETIMEDOUT when a wait ends without a message. */
#ifndef PSL_NET_STREAM_H
#define PSL_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ST_PREFIX "stream://"

/** Whether @p ep names the stream transport. */
bool st_is_endpoint(const char *ep);

/* ---- client side: one connection, blocking ---- */
typedef struct st_conn st_conn;

/** Connect to "stream://HOST:PORT" within @p timeout_ms. @p max_len: the largest message
 * accepted from the peer. @return 0, ERR_USAGE (bad endpoint), -ETIMEDOUT, -errno; @p why says
 * what failed. */
int st_connect(const char *ep, int timeout_ms, size_t max_len, st_conn **out, char *why,
               size_t whylen);
/** Send one message (blocks until the kernel took all of it). @return 0 or -errno. */
int st_send(st_conn *c, const void *b, size_t n);
/** Receive the next message (@p timeout_ms < 0: wait forever; 0: only what is already here).
 * @param[out] m initialised with the message on success. @return 0, -ETIMEDOUT, ERR_LIMIT (the
 * peer announced an oversized message), -ECONNRESET (the peer closed), -errno. After anything
 * but 0 and -ETIMEDOUT the connection is unusable. */
int st_recv(st_conn *c, int timeout_ms, zmq_msg_t *m);
void st_close(st_conn *c);

/* ---- server side: many connections, one thread, epoll ---- */
typedef struct st_server st_server;

/** Called when a connection ends (peer closed, error, oversized message), with its id and, when
 * the end is the peer's fault, why (NULL otherwise). The connection is still open during the
 * call: the owner may send it a last message. */
typedef void (*st_closed_fn)(void *arg, uint64_t conn, const char *why);

/** Listen on "stream://HOST:PORT" (port 0 picks one; HOST "*" means every IPv4 address, "[::]"
 * every IPv6 one). @param[out] bound the actual endpoint, "stream://ADDR:PORT" ("[ADDR]" for
 * IPv6). @return 0, ERR_USAGE, -errno. */
int st_listen(const char *ep, size_t max_len, st_closed_fn closed, void *arg, st_server **out,
              char *bound, size_t boundlen, char *why, size_t whylen);
/** Accept connections, read, and return the next complete message, connections served in
 * turn. @param[out] conn its connection id (never 0). @return 0, -ETIMEDOUT, -EINTR, -errno. */
int st_server_recv(st_server *s, int timeout_ms, uint64_t *conn, zmq_msg_t *m);
/** Send one message to @p conn without blocking: what the kernel does not take at once is kept
 * and written as the peer reads (at most 64 MiB per connection; beyond that the connection is
 * dropped). @return 0, ERR_NOTFOUND (no such connection), -errno. */
int st_server_send(st_server *s, uint64_t conn, const void *b, size_t n);
void st_server_close(st_server *s);

#endif
