/* coord: the coordinator daemon (`psl coordinator`): function registry, worker membership,
 * scheduling, the lock server, logs, metrics, the key manager and the HTTP gateway.
 *
 * Threads. One I/O thread owns the net_server (the attested channel to the workers) and is the
 * only thread that sends or receives on it. The HTTP gateway (libmicrohttpd, one thread per
 * connection) hands each request that needs the workers (invoke, deploy, remove, kv) to the I/O
 * thread through a mutex-protected queue and waits on the request's condition variable. Because
 * the I/O thread sleeps inside net_server_recv, a queued request rings a doorbell: an empty
 * message sent over an in-process secure channel to the coordinator's own server (authenticated
 * with an ephemeral Ed25519 identity that only this process knows). Read-only requests (list,
 * describe, logs, metrics, healthz) read the shared state under the same mutex.
 *
 * Membership. A worker's first message is Hello; it then sends Heartbeat every ~200 ms. A worker
 * silent for dead_ms (default 2000) is dead: nothing more is scheduled to it, its requests in
 * flight fail with 502, its locks are released and its place in lock queues is dropped.
 *
 * Scheduling. Each invocation goes to the live worker with the fewest requests in flight (counted
 * by the coordinator; ties go to the worker that reported fewer in its last heartbeat). Requests
 * are never retried on another worker: an invocation may have side effects.
 *
 * Locks. FIFO per lock name. LockGranted carries the lock's vector: for each writer the highest
 * seqno published by earlier holders at release. LockRelease merges the holder's vector (max per
 * writer). A holder whose worker dies, or who holds the lock longer than lease_ms (default
 * 10000), loses it; that is logged on stderr and the next waiter is granted the lock.
 *
 * Registry at rest: DIR/functions/NAME.wasm and NAME.json (limits, BLAKE2b-256 code hash,
 * version); written to a temporary file, fsynced and renamed. A restart reloads every function
 * whose code still matches its hash (others are reported and skipped).
 *
 * Errors: 0 or negative codes from base/err.h. */
#ifndef PSL_COORD_COORD_H
#define PSL_COORD_COORD_H

#include <signal.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"

typedef struct co_opts {
    const char *listen;     /* ZeroMQ endpoint for workers, e.g. tcp://127.0.0.1:7700 */
    const char *http_addr;  /* address the gateway binds (NULL = 127.0.0.1) */
    unsigned http_port;     /* gateway port (0 = do not start the gateway) */
    const char *dir;        /* state directory (registry) */
    const char *home;       /* enclave home: platform key, counters, sealed key manager state
                             * (NULL = $PSL_HOME when set, else dir) */
    const char *policy;     /* worker attestation policy file */
    uint32_t dead_ms;       /* silence after which a worker is dead (0 = 2000) */
    uint32_t lease_ms;      /* lock lease (0 = 10000) */
    uint32_t log_lines;     /* log lines kept per function (0 = 512) */
    const char *deployment; /* key manager deployment created at start (NULL = "default") */
    const char *token_file; /* owner token for the /system/ paths (NULL = none) */
} co_opts;

/** Run the coordinator until *stop becomes non-zero (set it from a signal handler).
 * Prints "psl coordinator: ready ..." on stderr once it serves.
 * @return 0 after a clean stop, ERR_USAGE (bad options), ERR_IO (cannot bind, state directory
 *         unusable), ERR_AUTH / ERR_MALFORMED (policy file rejected). */
int co_run(const co_opts *o, volatile sig_atomic_t *stop) WARN_UNUSED;

#endif
