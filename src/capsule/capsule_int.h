/* capsule internals shared by client.c, writer.c and reader.c (not part of the API). */
#ifndef PSL_CAPSULE_CAPSULE_INT_H
#define PSL_CAPSULE_CAPSULE_INT_H

#include "capsule/capsule.h"
#include "proto/capsule.pb-c.h"

/* Deliberately ignore a result (gcc does not accept a (void) cast for warn_unused_result). */
#define CAP_IGNORE(x)                                                                              \
    do {                                                                                           \
        if (x) {                                                                                   \
        }                                                                                          \
    } while (0)

#define CAP_MAX_MSG (64u << 20) /* largest protocol message either side accepts */

struct cap_client {
    void *zctx;
    size_t n;
    void **socks;
    char **eps;
    uint64_t next_id;
    int timeout_ms;
};

/** Send @p req to replica @p i (id assigned and returned). 0 or ERR_IO (queue full). */
int cap__send(cap_client *c, size_t i, Psl__CapRequest *req, uint64_t *id) WARN_UNUSED;
/** Receive one reply from replica @p i within @p timeout_ms. -ETIMEDOUT, ERR_MALFORMED. */
int cap__recv(cap_client *c, size_t i, int timeout_ms, Psl__CapReply **rep) WARN_UNUSED;
/** Send and wait for the reply with the same id (stale replies are dropped). */
int cap__call(cap_client *c, size_t i, Psl__CapRequest *req, Psl__CapReply **rep) WARN_UNUSED;
/** Ask replica @p i for its head of @p id: 0 (head set), ERR_NOTFOUND, or an error. */
int cap__get_head(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], cap_head *h) WARN_UNUSED;
/** Read records [first, first+count) from replica @p i. */
int cap__read(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], uint64_t first,
              uint64_t count, Psl__CapReply **rep) WARN_UNUSED;
/** The same, but the reply is returned whatever its status (0 = a reply arrived). */
int cap__read_reply(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], uint64_t first,
                    uint64_t count, Psl__CapReply **rep) WARN_UNUSED;
/** Send a scrub hint (no reply awaited beyond the timeout). */
void cap__scrub_hint(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES]);
/** Fetch and check record 0 from any replica. */
int cap__fetch_meta(cap_client *c, const uint8_t id[CAP_ID_BYTES], cap_meta *m, uint8_t **rec,
                    size_t *len) WARN_UNUSED;

#endif
