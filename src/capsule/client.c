/* capsule client: one ZeroMQ DEALER per storage replica, protobuf-c requests with ids.
 * Replies are matched by id, so a reply that arrives after its request timed out is dropped. */
#include "capsule/capsule_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "platform/platform.h"

int cap_client_open(const char *const *endpoints, size_t n, int timeout_ms, cap_client **out) {
    if (n == 0)
        return ERR_USAGE;
    cap_client *c = xcalloc(1, sizeof *c);
    c->zctx = zmq_ctx_new();
    c->n = n;
    c->socks = xcalloc(n, sizeof *c->socks);
    c->eps = xcalloc(n, sizeof *c->eps);
    c->next_id = 1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    int rc = 0;
    if (!c->zctx) {
        rc = ERR_IO;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        c->eps[i] = xstrdup(endpoints[i]);
        c->socks[i] = zmq_socket(c->zctx, ZMQ_DEALER);
        int zero = 0, hwm = 100000;
        int64_t maxmsg = CAP_MAX_MSG;
        if (!c->socks[i] || zmq_setsockopt(c->socks[i], ZMQ_LINGER, &zero, sizeof zero) ||
            zmq_setsockopt(c->socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm) ||
            zmq_setsockopt(c->socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm) ||
            zmq_setsockopt(c->socks[i], ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
            zmq_connect(c->socks[i], endpoints[i]) != 0) {
            rc = ERR_USAGE; /* a bad endpoint string */
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    cap_client_close(c);
    return rc;
}

void cap_client_close(cap_client *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        if (c->socks[i])
            zmq_close(c->socks[i]);
        free(c->eps[i]);
    }
    free(c->socks);
    free(c->eps);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    free(c);
}

size_t cap_client_count(const cap_client *c) {
    return c->n;
}
const char *cap_client_endpoint(const cap_client *c, size_t i) {
    return i < c->n ? c->eps[i] : "?";
}

int cap__send(cap_client *c, size_t i, Psl__CapRequest *req, uint64_t *id) {
    req->id = __atomic_fetch_add(&c->next_id, 1, __ATOMIC_RELAXED);
    size_t n = psl__cap_request__get_packed_size(req);
    uint8_t *buf = xmalloc(n ? n : 1);
    psl__cap_request__pack(req, buf);
    int r = zmq_send(c->socks[i], buf, n, ZMQ_DONTWAIT);
    free(buf);
    if (r < 0)
        return ERR_IO;
    if (id)
        *id = req->id;
    return 0;
}

int cap__recv(cap_client *c, size_t i, int timeout_ms, Psl__CapReply **rep) {
    zmq_pollitem_t it = {.socket = c->socks[i], .events = ZMQ_POLLIN};
    int r = zmq_poll(&it, 1, timeout_ms);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->socks[i], ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return -ETIMEDOUT;
    }
    *rep = psl__cap_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    return *rep ? 0 : ERR_MALFORMED;
}

int cap__call(cap_client *c, size_t i, Psl__CapRequest *req, Psl__CapReply **rep) {
    uint64_t id;
    int rc = cap__send(c, i, req, &id);
    if (rc)
        return rc;
    uint64_t deadline = plat_now_ns() + (uint64_t)c->timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = plat_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        rc = cap__recv(c, i, (int)((deadline - now) / 1000000u) + 1, rep);
        if (rc == ERR_MALFORMED)
            continue; /* garbage from an untrusted replica: keep waiting for the real reply */
        if (rc)
            return rc;
        if ((*rep)->id == id)
            return 0;
        psl__cap_reply__free_unpacked(*rep, NULL);
        *rep = NULL;
    }
}

int cap__get_head(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], cap_head *h) {
    Psl__CapGetHead g = PSL__CAP_GET_HEAD__INIT;
    g.capsule.data = (uint8_t *)id;
    g.capsule.len = CAP_ID_BYTES;
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_HEAD;
    req.head = &g;
    Psl__CapReply *rep = NULL;
    int rc = cap__call(c, i, &req, &rep);
    if (rc)
        return rc;
    rc = rep->status;
    if (rc == 0 && cap_head_decode(rep->head.data, rep->head.len, h) != 0)
        rc = ERR_MALFORMED;
    if (rc == 0 && memcmp(h->capsule, id, CAP_ID_BYTES) != 0)
        rc = ERR_INVALID;
    if (rc > 0)
        rc = ERR_MALFORMED;
    psl__cap_reply__free_unpacked(rep, NULL);
    return rc;
}

int cap__read(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], uint64_t first,
              uint64_t count, Psl__CapReply **rep) {
    int rc = cap__read_reply(c, i, id, first, count, rep);
    if (rc)
        return rc;
    if ((*rep)->status != 0) {
        rc = (*rep)->status < 0 ? (*rep)->status : ERR_MALFORMED;
        psl__cap_reply__free_unpacked(*rep, NULL);
        *rep = NULL;
    }
    return rc;
}

int cap_client_trim(cap_client *c, size_t replica, const cap_trim *t, char *why, size_t whylen) {
    uint8_t enc[CAP_TRIM_BYTES];
    cap_trim_encode(t, enc);
    Psl__CapTrim tr = PSL__CAP_TRIM__INIT;
    tr.trim.data = enc;
    tr.trim.len = sizeof enc;
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_TRIM;
    req.trim = &tr;
    Psl__CapReply *rep = NULL;
    int rc = cap__call(c, replica, &req, &rep);
    if (rc)
        return rc;
    rc = rep->status;
    if (why && whylen)
        snprintf(why, whylen, "%s", rep->error && rep->error[0] ? rep->error : cap_strerror(rc));
    psl__cap_reply__free_unpacked(rep, NULL);
    return rc;
}

int cap__read_reply(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES], uint64_t first,
                    uint64_t count, Psl__CapReply **rep) {
    Psl__CapRead r = PSL__CAP_READ__INIT;
    r.capsule.data = (uint8_t *)id;
    r.capsule.len = CAP_ID_BYTES;
    r.first = first;
    r.count = count;
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_READ;
    req.read = &r;
    return cap__call(c, i, &req, rep);
}

void cap__scrub_hint(cap_client *c, size_t i, const uint8_t id[CAP_ID_BYTES]) {
    Psl__CapScrub s = PSL__CAP_SCRUB__INIT;
    s.capsule.data = (uint8_t *)id;
    s.capsule.len = CAP_ID_BYTES;
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_SCRUB;
    req.scrub = &s;
    CAP_IGNORE(cap__send(c, i, &req, NULL)); /* the reply is dropped as stale later */
}

int cap__fetch_meta(cap_client *c, const uint8_t id[CAP_ID_BYTES], cap_meta *m, uint8_t **rec,
                    size_t *len) {
    int last = CAP_ERR_QUORUM;
    for (size_t i = 0; i < c->n; i++) {
        Psl__CapReply *rep = NULL;
        int rc = cap__read(c, i, id, 0, 1, &rep);
        if (rc) {
            if (rc == ERR_NOTFOUND)
                last = rc;
            continue;
        }
        uint8_t got[CAP_ID_BYTES];
        if (rep->n_records >= 1 &&
            cap_meta_parse(rep->records[0].data, rep->records[0].len, m, got) == 0 &&
            memcmp(got, id, CAP_ID_BYTES) == 0) {
            if (rec) {
                *len = rep->records[0].len;
                *rec = xmalloc(*len);
                memcpy(*rec, rep->records[0].data, *len);
            }
            psl__cap_reply__free_unpacked(rep, NULL);
            return 0;
        }
        last = CAP_ERR_TAMPER;
        psl__cap_reply__free_unpacked(rep, NULL);
    }
    return last;
}

int cap_client_list(cap_client *c, size_t replica, uint8_t **ids, size_t *n) {
    Psl__CapList l = PSL__CAP_LIST__INIT;
    Psl__CapRequest req = PSL__CAP_REQUEST__INIT;
    req.body_case = PSL__CAP_REQUEST__BODY_LIST;
    req.list = &l;
    Psl__CapReply *rep = NULL;
    int rc = cap__call(c, replica, &req, &rep);
    if (rc)
        return rc;
    *n = 0;
    *ids = xmalloc(rep->n_capsules * CAP_ID_BYTES + 1);
    for (size_t k = 0; k < rep->n_capsules; k++)
        if (rep->capsules[k].len == CAP_ID_BYTES)
            memcpy(*ids + CAP_ID_BYTES * (*n)++, rep->capsules[k].data, CAP_ID_BYTES);
    psl__cap_reply__free_unpacked(rep, NULL);
    return 0;
}
