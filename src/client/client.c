/* The client side of the workers' client-facing channel (client.h). One net_chan per cl_conn;
 * the last ClientResult stays unpacked in the connection so that a result's body is handed out
 * without a copy. */
#include "client/client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "proto/cluster.pb-c.h"
#include "worker/worker.h"

struct cl_conn {
    net_chan *ch;
    tee_policy pol; /* our copy: the channel borrows it for its lifetime */
    uint64_t next_id;
    uint8_t *buf; /* packing buffer */
    size_t cap;
    Psl__ClientResult *last; /* owns the body and msg handed out by the last cl_invoke */
    char err[320];
};

static int hex32(const char *s, uint8_t out[32]) {
    if (!s || strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int cl_endpoints_parse(const char *json, size_t len, cl_endpoint **out, size_t *n, char *why,
                       size_t whylen) {
    *out = NULL;
    *n = 0;
    cJSON *a = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(a)) {
        snprintf(why, whylen, "the endpoint list is not a JSON array");
        cJSON_Delete(a);
        return ERR_MALFORMED;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(a), k = 0;
    cl_endpoint *eps = xcalloc(cnt ? cnt : 1, sizeof *eps);
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *ep = cJSON_GetObjectItemCaseSensitive(it, "endpoint");
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(it, "measurement");
        const cJSON *be = cJSON_GetObjectItemCaseSensitive(it, "backend");
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(it, "platform_key");
        cl_endpoint *e = &eps[k];
        if (!cJSON_IsNumber(id) || !cJSON_IsString(ep) || !cJSON_IsString(ms) ||
            hex32(ms->valuestring, e->measurement) != 0 ||
            strlen(ep->valuestring) >= sizeof e->endpoint) {
            snprintf(why, whylen,
                     "endpoint entry %zu lacks id, endpoint or a 64-digit "
                     "measurement",
                     k);
            free(eps);
            cJSON_Delete(a);
            return ERR_MALFORMED;
        }
        e->id = (uint64_t)id->valuedouble;
        snprintf(e->name, sizeof e->name, "%s", cJSON_IsString(nm) ? nm->valuestring : "");
        snprintf(e->endpoint, sizeof e->endpoint, "%s", ep->valuestring);
        snprintf(e->backend, sizeof e->backend, "%s", cJSON_IsString(be) ? be->valuestring : "");
        if (!cJSON_IsString(pk) || hex32(pk->valuestring, e->platform_key) != 0)
            memset(e->platform_key, 0, sizeof e->platform_key);
        k++;
    }
    cJSON_Delete(a);
    if (!k) {
        free(eps);
        eps = NULL;
    }
    *out = eps;
    *n = k;
    return 0;
}

int cl_policy_make(const tee_policy *base, const uint8_t meas[32], tee_policy *out, char *why,
                   size_t whylen) {
    memset(out, 0, sizeof *out);
    bool ok = base->any_measurement;
    for (size_t i = 0; i < base->n_meas && !ok; i++)
        ok = memcmp(base->meas[i], meas, 32) == 0;
    if (!ok) {
        char h[65];
        cr_hex(h, meas, 32);
        snprintf(why, whylen, "measurement %s is not accepted by the client's policy", h);
        return ERR_AUTH;
    }
    out->allow_sim = base->allow_sim;
    out->max_age_s = base->max_age_s;
    out->n_meas = 1;
    out->meas = xmalloc(32);
    memcpy(out->meas[0], meas, 32);
    if (base->n_platform) {
        out->n_platform = base->n_platform;
        out->platform = xmalloc(base->n_platform * 32);
        memcpy(out->platform, base->platform, base->n_platform * 32);
    }
    return 0;
}

static uint8_t (*dup_keys(const uint8_t (*k)[32], size_t n))[32] {
    if (!n)
        return NULL;
    uint8_t(*d)[32] = xmalloc(n * 32);
    memcpy(d, k, n * 32);
    return d;
}

int cl_connect(void *zctx, const char *endpoint, const tee_policy *pol, const uint8_t *id_sk,
               cl_conn **out, char *why, size_t whylen) {
    *out = NULL;
    uint8_t *sk = NULL;
    if (cr_init() != 0) {
        snprintf(why, whylen, "cannot initialise the crypto library");
        return ERR_IO;
    }
    if (!id_sk) { /* any identity is accepted: a fresh one per connection */
        uint8_t pk[CR_SIGN_PK];
        sk = cr_secure_alloc(CR_SIGN_SK);
        cr_sign_keypair(pk, sk);
        id_sk = sk;
    }
    cl_conn *c = xcalloc(1, sizeof *c);
    c->pol = *pol;
    c->pol.meas = dup_keys(pol->meas, pol->n_meas);
    c->pol.platform = dup_keys(pol->platform, pol->n_platform);
    c->pol.client = dup_keys(pol->client, pol->n_client);
    net_auth a = {
        .id_sk = id_sk, .peer = &c->pol, .max_msg = WORKER_CLIENT_MAX_MSG, .name = "client"};
    int rc = net_chan_connect(zctx, endpoint, &a, &c->ch, why, whylen);
    if (sk)
        cr_secure_free(sk);
    if (rc) {
        tee_policy_fini(&c->pol);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cl_invoke(cl_conn *c, const char *fn, const void *body, size_t len, int timeout_ms,
              cl_result *res) {
    memset(res, 0, sizeof *res);
    res->msg = "";
    if (c->last) {
        psl__client_result__free_unpacked(c->last, NULL);
        c->last = NULL;
    }
    Psl__ClientInvoke ci = PSL__CLIENT_INVOKE__INIT;
    ci.req_id = ++c->next_id;
    ci.function = (char *)fn;
    ci.body.data = (uint8_t *)body;
    ci.body.len = body ? len : 0;
    size_t n = psl__client_invoke__get_packed_size(&ci);
    if (n > WORKER_CLIENT_MAX_MSG)
        return ERR_LIMIT;
    if (n > c->cap) {
        c->cap = n < 4096 ? 4096 : n;
        c->buf = xrealloc(c->buf, c->cap);
    }
    psl__client_invoke__pack(&ci, c->buf);
    int rc = net_chan_send(c->ch, c->buf, n);
    if (rc) {
        snprintf(c->err, sizeof c->err, "%s",
                 net_chan_error(c->ch)[0] ? net_chan_error(c->ch) : err_str(rc));
        return rc;
    }
    uint64_t deadline = timeout_ms < 0 ? 0 : plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int wait = -1;
        if (timeout_ms >= 0) {
            uint64_t now = plat_now_ns();
            if (now >= deadline)
                return -ETIMEDOUT;
            wait = (int)((deadline - now + 999999u) / 1000000u);
        }
        uint8_t *msg = NULL;
        size_t mlen = 0;
        rc = net_chan_recv(c->ch, wait, &msg, &mlen);
        if (rc == -ETIMEDOUT)
            return rc;
        if (rc) {
            snprintf(c->err, sizeof c->err, "%s",
                     net_chan_error(c->ch)[0] ? net_chan_error(c->ch) : err_str(rc));
            return rc;
        }
        Psl__ClientResult *cr = psl__client_result__unpack(NULL, mlen, msg);
        free(msg);
        if (!cr) {
            snprintf(c->err, sizeof c->err, "undecodable answer from the worker");
            return ERR_MALFORMED;
        }
        if (cr->req_id != ci.req_id) { /* the late answer to a request that timed out */
            psl__client_result__free_unpacked(cr, NULL);
            continue;
        }
        c->last = cr;
        res->status = cr->status;
        res->exit_code = cr->exit_code;
        res->body = cr->body.data;
        res->len = cr->body.len;
        res->msg = cr->msg ? cr->msg : "";
        res->ns = cr->ns;
        return 0;
    }
}

const char *cl_error(const cl_conn *c) {
    return c->err;
}

const tee_report *cl_peer_report(const cl_conn *c) {
    return &net_chan_peer(c->ch)->report;
}

void cl_close(cl_conn *c) {
    if (!c)
        return;
    if (c->last)
        psl__client_result__free_unpacked(c->last, NULL);
    net_chan_close(c->ch);
    tee_policy_fini(&c->pol);
    free(c->buf);
    free(c);
}
