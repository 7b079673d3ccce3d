/* client: invoke functions over the attested secure channel, straight at a worker.
 *
 * A worker serves clients on its own net_server (worker.h, "Clients"; docs/client.md): it
 * proves itself with an attestation report, the client with an Ed25519 identity
 * (any identity is accepted, as the gateway's /function/ path accepts anyone). The coordinator
 * publishes each live worker's client endpoint with the measurement, backend and platform key
 * its report proved at the coordinator's own handshake (GET /endpoints on the gateway); a client
 * builds the policy it demands from that list and from the deployment's policy, connects, and
 * sends ClientInvoke {function, body}; the worker answers ClientResult {status, body}.
 *
 * Trust. The endpoint list travels over plain HTTP: it tells the client where to go, not whom
 * to trust. What the client demands of the worker is cl_policy_make(base, measurement): the
 * backend and platform-key rules of a policy the client holds (the deployment's worker policy,
 * e.g. DIR/policy.txt of `psl up`), and exactly one measurement (given by the user, else the
 * one published). A worker whose report fails that policy is refused during the handshake,
 * before any request is sent, and the reason says which check failed.
 *
 * A cl_conn is single-threaded and keeps one request in flight (like a YCSB client's
 * connection); open one per thread. Errors: 0 or negative codes from base/err.h. */
#ifndef PSL_CLIENT_CLIENT_H
#define PSL_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "tee/tee.h"

typedef struct cl_endpoint {
    uint64_t id; /* worker id */
    char name[64];
    char endpoint[256]; /* its client channel: stream://HOST:PORT, or a ZeroMQ endpoint */
    char backend[16];
    uint8_t measurement[32]; /* what its report proved to the coordinator */
    uint8_t platform_key[32];
} cl_endpoint;

/** Parse the gateway's GET /endpoints answer (a JSON array).
 * @param[out] out malloc'd array of *n entries (the caller frees it; NULL when *n is 0).
 * @return 0 or ERR_MALFORMED (why says what). */
int cl_endpoints_parse(const char *json, size_t len, cl_endpoint **out, size_t *n, char *why,
                       size_t whylen) WARN_UNUSED;

/** The policy to demand of a worker: @p base's backend rule (allow_sim), platform keys and
 * max_age, and the measurement @p meas only. @p base must accept @p meas (it lists it, or says
 * "measurement: any"). @param[out] out free with tee_policy_fini.
 * @return 0 or ERR_AUTH (why: base does not accept meas). */
int cl_policy_make(const tee_policy *base, const uint8_t meas[32], tee_policy *out, char *why,
                   size_t whylen) WARN_UNUSED;

typedef struct cl_conn cl_conn;

/** Connect to a worker's client endpoint and run the handshake.
 * @param zctx ZeroMQ context shared by the caller's connections, or NULL for a private one.
 * @param pol what the worker's report must pass (copied).
 * @param id_sk the client's Ed25519 identity (CR_SIGN_SK bytes, borrowed during the call), or
 *        NULL for a fresh one.
 * @return 0, ERR_AUTH (the worker failed @p pol, or refused us: why says which check),
 *         -ETIMEDOUT, ERR_IO, ERR_MALFORMED. */
int cl_connect(void *zctx, const char *endpoint, const tee_policy *pol, const uint8_t *id_sk,
               cl_conn **out, char *why, size_t whylen) WARN_UNUSED;

/** An invocation's outcome. body and msg are borrowed from the connection: valid until the next
 * cl_invoke or cl_close. */
typedef struct cl_result {
    int status;          /* 0, or ERR_NOTFOUND (no such function), ERR_TRAP, ERR_LIMIT, -ETIMEDOUT
                          * (the function's time budget), ERR_IO (sync: not durable)... */
    int exit_code;       /* the function's exit status when status == 0 */
    const uint8_t *body; /* its stdout */
    size_t len;
    const char *msg; /* why, when status or exit_code is not 0 ("" otherwise) */
    uint64_t ns;     /* run time inside the worker */
} cl_result;

/** Invoke @p fn with @p body and wait for its answer (at most @p timeout_ms; < 0: forever).
 * An answer to an earlier request that timed out is recognised by its id and skipped.
 * @return 0 (the invocation's own outcome is in @p res), -ETIMEDOUT, ERR_LIMIT (body too large
 *         for the channel), or the channel's failure (ERR_AUTH, ERR_MALFORMED, ERR_IO: the
 *         connection is then closed for good and cl_error says why). */
int cl_invoke(cl_conn *c, const char *fn, const void *body, size_t len, int timeout_ms,
              cl_result *res) WARN_UNUSED;

/** Why the connection failed ("" while healthy). Borrowed. */
const char *cl_error(const cl_conn *c);
/** What the worker's report proved (measurement, backend, platform key). Borrowed. */
const tee_report *cl_peer_report(const cl_conn *c);
void cl_close(cl_conn *c);

#endif
