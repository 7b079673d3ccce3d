/* The HTTP gateway (libmicrohttpd, one thread per connection), with OpenFaaS's conventions:
 *   POST /function/NAME                 invoke (body in, body out)
 *   POST /system/functions/NAME?limits  deploy (body = module); PUT works too
 *   GET  /system/functions              list (JSON)
 *   GET  /system/function/NAME          describe (JSON)
 *   DELETE /system/functions/NAME       remove
 *   GET  /system/logs?name=NAME         the function's recent log lines (text)
 *   GET|PUT|DELETE /system/kv/KEY       owner's key-value admin path
 *   GET  /system/workers                membership (JSON)
 *   GET  /endpoints                     workers' client channels and measurements (JSON)
 *   GET  /healthz, GET /metrics         readiness (JSON), Prometheus text
 * Errors are JSON {"code":"WORD","message":"..."}; docs/gateway.md lists every status. Requests
 * that need the workers go to the I/O thread through co_submit; the rest read the shared state
 * under c->mu. Request bodies are bounded before they are buffered (413). */
#include "coord/coord_int.h"

#include "crypto/crypto.h"
#include "platform/platform.h"
#include "wasm/wasm.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <microhttpd.h>

#include "coord/mhd_lazy.h"
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double co_lat_bounds[CO_LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

/* Invoke bodies and kv values travel in one channel message to a worker, whose default limit is
 * NET_MAX_MSG_DEFAULT: larger ones are refused here (413) instead of closing its channel. */
#define CHAN_MAX_BODY (NET_MAX_MSG_DEFAULT - 4096u)
#define KV_MAX_BODY CHAN_MAX_BODY

static size_t invoke_limit(const co_fn *f) {
    return f->lim.max_request < CHAN_MAX_BODY ? f->lim.max_request : CHAN_MAX_BODY;
}
#define SMALL_BODY (64u << 10)

typedef struct conn {
    uint8_t *buf;
    size_t len, cap, limit;
    bool too_large;
    uint64_t start_ns;
} conn;

static enum MHD_Result reply(struct MHD_Connection *mc, unsigned status, const char *ctype,
                             void *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *mc, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    size_t n = strlen(s);
    char *b = xmalloc(n + 2);
    memcpy(b, s, n);
    b[n] = '\n';
    cJSON_free(s);
    return reply(mc, status, "application/json", b, n + 1);
}

static enum MHD_Result reply_err(struct MHD_Connection *mc, unsigned status, const char *code,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result reply_err(struct MHD_Connection *mc, unsigned status, const char *code,
                                 const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "message", msg);
    return reply_json(mc, status, j);
}

static void add_limits(cJSON *j, const co_limits *l) {
    cJSON_AddNumberToObject(j, "timeout_ms", l->timeout_ms);
    cJSON_AddNumberToObject(j, "max_memory_mb", l->max_memory_mb);
    cJSON_AddNumberToObject(j, "max_request", l->max_request);
    cJSON_AddNumberToObject(j, "max_response", l->max_response);
    cJSON_AddStringToObject(j, "durability", l->sync ? "sync" : "async");
}

static cJSON *fn_json(const co_fn *f) {
    char hex[65];
    cr_hex(hex, f->hash, 32);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", f->name);
    cJSON_AddStringToObject(j, "hash", hex);
    cJSON_AddNumberToObject(j, "size", (double)f->len);
    cJSON_AddNumberToObject(j, "version", (double)f->version);
    cJSON_AddNumberToObject(j, "deployed_unix", (double)(f->deployed_ns / 1000000000ull));
    cJSON_AddNumberToObject(j, "invocationCount", (double)f->invocations);
    cJSON_AddNumberToObject(j, "errors", (double)f->errors);
    add_limits(j, &f->lim);
    return j;
}

/* ---- read-only endpoints ----------------------------------------------------------------------
 */

static enum MHD_Result do_list(coord *c, struct MHD_Connection *mc) {
    cJSON *a = cJSON_CreateArray();
    pthread_mutex_lock(&c->mu);
    for (co_fn *f = c->fns; f; f = f->next)
        cJSON_AddItemToArray(a, fn_json(f));
    pthread_mutex_unlock(&c->mu);
    return reply_json(mc, 200, a);
}

static enum MHD_Result do_describe(coord *c, struct MHD_Connection *mc, const char *name) {
    pthread_mutex_lock(&c->mu);
    co_fn *f = co_fn_find(c->fns, name);
    cJSON *j = f ? fn_json(f) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!j)
        return reply_err(mc, 404, "NOTFOUND", "function '%s' is not deployed", name);
    return reply_json(mc, 200, j);
}

static enum MHD_Result do_logs(coord *c, struct MHD_Connection *mc, const char *name) {
    pthread_mutex_lock(&c->mu);
    co_fn *f = co_fn_find(c->fns, name);
    if (!f) {
        pthread_mutex_unlock(&c->mu);
        return reply_err(mc, 404, "NOTFOUND", "function '%s' is not deployed", name);
    }
    size_t cap = 256, n = 0;
    char *b = xmalloc(cap);
    for (uint32_t i = 0; i < f->log_n; i++) {
        const char *l = f->log[(f->log_head + i) % f->log_cap];
        size_t ll = strlen(l);
        while (n + ll + 2 > cap)
            b = xrealloc(b, cap *= 2);
        memcpy(b + n, l, ll);
        n += ll;
        b[n++] = '\n';
    }
    pthread_mutex_unlock(&c->mu);
    return reply(mc, 200, "text/plain; charset=utf-8", b, n);
}

static enum MHD_Result do_workers(coord *c, struct MHD_Connection *mc) {
    cJSON *a = cJSON_CreateArray();
    uint64_t now = plat_now_ns();
    pthread_mutex_lock(&c->mu);
    for (co_worker *w = c->workers; w; w = w->next) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "id", (double)w->id);
        cJSON_AddStringToObject(j, "name", w->name);
        cJSON_AddBoolToObject(j, "alive", w->alive);
        cJSON_AddNumberToObject(j, "threads", w->threads);
        cJSON_AddNumberToObject(j, "inflight", w->inflight);
        cJSON_AddNumberToObject(j, "scheduled", (double)w->sent);
        cJSON_AddNumberToObject(j, "invocations", (double)w->hb_invocations);
        cJSON_AddNumberToObject(j, "errors", (double)w->hb_errors);
        cJSON_AddNumberToObject(j, "applied_seqno", (double)w->hb_seqno);
        cJSON_AddNumberToObject(j, "last_seen_ms", (double)((now - w->last_ns) / 1000000u));
        cJSON_AddItemToArray(a, j);
    }
    pthread_mutex_unlock(&c->mu);
    return reply_json(mc, 200, a);
}

/* Where clients invoke over the attested channel: each live worker's client endpoint with the
 * measurement, backend and platform key its report proved to us (docs/gateway.md). Open like
 * /function/: it says no more than the invoke path lets anyone learn. */
static enum MHD_Result do_endpoints(coord *c, struct MHD_Connection *mc) {
    cJSON *a = cJSON_CreateArray();
    char hex[65];
    pthread_mutex_lock(&c->mu);
    for (co_worker *w = c->workers; w; w = w->next) {
        if (!w->alive || !w->client_ep[0] || !w->attested)
            continue;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "id", (double)w->id);
        cJSON_AddStringToObject(j, "name", w->name);
        cJSON_AddStringToObject(j, "endpoint", w->client_ep);
        cr_hex(hex, w->measurement, 32);
        cJSON_AddStringToObject(j, "measurement", hex);
        cJSON_AddStringToObject(j, "backend", w->backend);
        cr_hex(hex, w->platform_key, 32);
        cJSON_AddStringToObject(j, "platform_key", hex);
        cJSON_AddItemToArray(a, j);
    }
    pthread_mutex_unlock(&c->mu);
    return reply_json(mc, 200, a);
}

static enum MHD_Result do_healthz(coord *c, struct MHD_Connection *mc) {
    pthread_mutex_lock(&c->mu);
    uint32_t live = co_live_workers(c);
    size_t nf = 0;
    for (co_fn *f = c->fns; f; f = f->next)
        nf++;
    pthread_mutex_unlock(&c->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", live ? "ready" : "no-workers");
    cJSON_AddNumberToObject(j, "workers", live);
    cJSON_AddNumberToObject(j, "functions", (double)nf);
    return reply_json(mc, live ? 200 : 503, j);
}

typedef struct sbuf {
    char *b;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->b + s->n, s->cap - s->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < s->cap - s->n) {
            s->n += (size_t)k;
            return;
        }
        s->cap = s->cap * 2 + (size_t)(k > 0 ? k : 0);
        s->b = xrealloc(s->b, s->cap);
    }
}

static enum MHD_Result do_metrics(coord *c, struct MHD_Connection *mc) {
    sbuf s = {.b = xmalloc(4096), .cap = 4096};
    pthread_mutex_lock(&c->mu);
    uint64_t inv = 0, err = 0, kr = 0, kw = 0, ap = 0, kc = 0;
    for (co_worker *w = c->workers; w; w = w->next) {
        inv += w->hb_invocations;
        err += w->hb_errors;
        kr += w->hb_kv_reads;
        kw += w->hb_kv_writes;
        kc += w->hb_kv_coalesced;
        ap += w->hb_appends;
    }
    sb_printf(&s, "# HELP psl_gateway_invocations_total Invocations answered by the gateway.\n"
                  "# TYPE psl_gateway_invocations_total counter\n");
    for (co_fn *f = c->fns; f; f = f->next)
        sb_printf(&s, "psl_gateway_invocations_total{function=\"%s\"} %" PRIu64 "\n", f->name,
                  f->invocations);
    sb_printf(&s, "# HELP psl_gateway_invocation_errors_total Invocations answered with an error.\n"
                  "# TYPE psl_gateway_invocation_errors_total counter\n");
    for (co_fn *f = c->fns; f; f = f->next)
        sb_printf(&s, "psl_gateway_invocation_errors_total{function=\"%s\"} %" PRIu64 "\n", f->name,
                  f->errors);
    sb_printf(&s, "# HELP psl_gateway_invocation_seconds Invocation latency through the gateway.\n"
                  "# TYPE psl_gateway_invocation_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < CO_LAT_BUCKETS; i++) {
        cum += c->lat_bucket[i];
        sb_printf(&s, "psl_gateway_invocation_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                  co_lat_bounds[i], cum);
    }
    cum += c->lat_bucket[CO_LAT_BUCKETS];
    sb_printf(&s,
              "psl_gateway_invocation_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
              "psl_gateway_invocation_seconds_sum %.6f\n"
              "psl_gateway_invocation_seconds_count %" PRIu64 "\n",
              cum, c->lat_sum, cum);
    sb_printf(&s,
              "# HELP psl_worker_invocations_total Invocations completed by workers (heartbeats).\n"
              "# TYPE psl_worker_invocations_total counter\n"
              "psl_worker_invocations_total %" PRIu64 "\n"
              "# TYPE psl_worker_errors_total counter\n"
              "psl_worker_errors_total %" PRIu64 "\n"
              "# HELP psl_kv_reads_total Key-value reads by guests (heartbeats).\n"
              "# TYPE psl_kv_reads_total counter\n"
              "psl_kv_reads_total %" PRIu64 "\n"
              "# TYPE psl_kv_writes_total counter\n"
              "psl_kv_writes_total %" PRIu64 "\n"
              "# HELP psl_kv_coalesced_total Writes left out of a capsule batch that a later write "
              "of the same key in it superseded.\n"
              "# TYPE psl_kv_coalesced_total counter\n"
              "psl_kv_coalesced_total %" PRIu64 "\n"
              "# HELP psl_capsule_appends_total Records appended to the workers' capsules.\n"
              "# TYPE psl_capsule_appends_total counter\n"
              "psl_capsule_appends_total %" PRIu64 "\n",
              inv, err, kr, kw, kc, ap);
    sb_printf(&s, "# TYPE psl_workers_live gauge\npsl_workers_live %u\n", co_live_workers(c));
    for (co_worker *w = c->workers; w; w = w->next)
        sb_printf(&s, "psl_worker_inflight{worker=\"%" PRIu64 "\"} %u\n", w->id,
                  w->alive ? w->inflight : 0);
    sb_printf(&s,
              "# TYPE psl_worker_deaths_total counter\npsl_worker_deaths_total %" PRIu64 "\n"
              "# TYPE psl_lock_grants_total counter\npsl_lock_grants_total %" PRIu64 "\n"
              "# TYPE psl_lock_forced_releases_total counter\n"
              "psl_lock_forced_releases_total %" PRIu64 "\n",
              c->workers_died, c->lock_grants, c->lock_forced);
    pthread_mutex_unlock(&c->mu);
    return reply(mc, 200, "text/plain; version=0.0.4", s.b, s.n);
}

/* ---- requests through the I/O thread -------------------------------------------------------- */

static enum MHD_Result reply_req(struct MHD_Connection *mc, co_req *r) {
    enum MHD_Result ret;
    if (r->http < 400) {
        uint8_t *out = r->out;
        r->out = NULL;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(r->outlen, out ? (void *)out : (void *)"",
                                            out ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(out);
            return MHD_NO;
        }
        if (r->worker) {
            char wid[24];
            snprintf(wid, sizeof wid, "%" PRIu64, r->worker);
            MHD_add_response_header(resp, "X-Psl-Worker", wid);
        }
        ret = MHD_queue_response(mc, (unsigned)r->http, resp);
        MHD_destroy_response(resp);
    } else {
        ret = reply_err(mc, (unsigned)r->http, r->code ? r->code : "FAILED", "%s",
                        r->msg ? r->msg : "failed");
    }
    return ret;
}

static enum MHD_Result do_invoke(coord *c, struct MHD_Connection *mc, const char *name, conn *cn) {
    co_req r;
    memset(&r, 0, sizeof r);
    r.kind = CO_INVOKE;
    snprintf(r.name, sizeof r.name, "%s", name);
    r.body = cn->buf;
    r.blen = cn->len;
    co_submit(c, &r);
    double secs = (double)(plat_now_ns() - cn->start_ns) / 1e9;
    pthread_mutex_lock(&c->mu);
    c->invocations++;
    if (r.http >= 400)
        c->inv_errors++;
    int b = 0;
    while (b < CO_LAT_BUCKETS && secs > co_lat_bounds[b])
        b++;
    c->lat_bucket[b]++;
    c->lat_sum += secs;
    co_fn *f = co_fn_find(c->fns, name);
    if (f) {
        f->invocations++;
        if (r.http >= 400)
            f->errors++;
    }
    pthread_mutex_unlock(&c->mu);
    enum MHD_Result ret = reply_req(mc, &r);
    co_req_fini(&r);
    return ret;
}

static bool arg_u32(struct MHD_Connection *mc, const char *key, uint32_t *out, char *bad,
                    size_t blen) {
    const char *v = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        return true;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || x > UINT32_MAX) {
        snprintf(bad, blen, "query parameter %s=%s is not a number", key, v);
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static enum MHD_Result do_deploy(coord *c, struct MHD_Connection *mc, const char *name, conn *cn) {
    if (!co_name_ok(name))
        return reply_err(mc, 400, "BADNAME",
                         "function name '%s' is not valid ([A-Za-z0-9._-], 1 to 64 characters, "
                         "not starting with '.')",
                         name);
    co_limits lim;
    co_limits_default(&lim);
    char bad[200];
    if (!arg_u32(mc, "timeout_ms", &lim.timeout_ms, bad, sizeof bad) ||
        !arg_u32(mc, "max_memory_mb", &lim.max_memory_mb, bad, sizeof bad) ||
        !arg_u32(mc, "max_request", &lim.max_request, bad, sizeof bad) ||
        !arg_u32(mc, "max_response", &lim.max_response, bad, sizeof bad))
        return reply_err(mc, 400, "BADLIMIT", "%s", bad);
    const char *d = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "durability");
    if (d && strcmp(d, "sync") != 0 && strcmp(d, "async") != 0)
        return reply_err(mc, 400, "BADLIMIT", "durability must be sync or async, not '%s'", d);
    lim.sync = d && strcmp(d, "sync") == 0;
    if (lim.max_memory_mb == 0 || lim.max_memory_mb > 4096)
        return reply_err(mc, 400, "BADLIMIT", "max_memory_mb must be 1..4096");
    if (cn->len == 0)
        return reply_err(mc, 400, "INVALID", "empty body: the request body must be the module");
    /* A native function (an ELF shared object, sdk/c/psl_native.h) is trusted code: only the
     * owner can deploy it (this path needs the owner token), and the workers load and check it
     * (a refusal rolls the deploy back). WebAssembly is validated here first. */
    bool native = cn->len >= 4 && memcmp(cn->buf,
                                         "\x7f"
                                         "ELF",
                                         4) == 0;
    wasm_module *m = NULL;
    wasm_error we;
    memset(&we, 0, sizeof we);
    int rc = native ? 0 : wasm_module_load(cn->buf, cn->len, &m, &we);
    if (rc) {
        if (we.offset != SIZE_MAX)
            return reply_err(mc, 400, "INVALID", "invalid module: %s: at byte %zu: %s", err_str(rc),
                             we.offset, we.msg);
        return reply_err(mc, 400, "INVALID", "invalid module: %s: %s", err_str(rc), we.msg);
    }
    wasm_module_free(m);
    co_req r;
    memset(&r, 0, sizeof r);
    r.kind = CO_DEPLOY;
    snprintf(r.name, sizeof r.name, "%s", name);
    r.body = cn->buf;
    r.blen = cn->len;
    r.lim = lim;
    co_submit(c, &r);
    enum MHD_Result ret;
    if (r.http < 400) {
        pthread_mutex_lock(&c->mu);
        co_fn *f = co_fn_find(c->fns, name);
        cJSON *j = f ? fn_json(f) : cJSON_CreateObject();
        pthread_mutex_unlock(&c->mu);
        ret = reply_json(mc, (unsigned)r.http, j);
    } else {
        ret = reply_req(mc, &r);
    }
    co_req_fini(&r);
    return ret;
}

static enum MHD_Result do_remove(coord *c, struct MHD_Connection *mc, const char *name) {
    co_req r;
    memset(&r, 0, sizeof r);
    r.kind = CO_REMOVE;
    snprintf(r.name, sizeof r.name, "%s", name);
    co_submit(c, &r);
    enum MHD_Result ret;
    if (r.http < 400) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "removed", name);
        ret = reply_json(mc, 200, j);
    } else {
        ret = reply_req(mc, &r);
    }
    co_req_fini(&r);
    return ret;
}

static enum MHD_Result do_kv(coord *c, struct MHD_Connection *mc, const char *method,
                             const char *key, conn *cn) {
    co_req r;
    memset(&r, 0, sizeof r);
    r.kind = CO_KV;
    if (strcmp(method, "GET") == 0)
        r.kv_op = 0;
    else if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0)
        r.kv_op = 1;
    else if (strcmp(method, "DELETE") == 0)
        r.kv_op = 2;
    else
        return reply_err(mc, 405, "METHOD", "use GET, PUT or DELETE on /system/kv/KEY");
    if (!key[0])
        return reply_err(mc, 400, "BADKEY", "empty key");
    r.key = (const uint8_t *)key;
    r.klen = strlen(key);
    r.body = cn->buf;
    r.blen = cn->len;
    co_submit(c, &r);
    enum MHD_Result ret = reply_req(mc, &r);
    co_req_fini(&r);
    return ret;
}

/* ---- routing -------------------------------------------------------------------------------- */

static size_t body_limit(coord *c, const char *url) {
    if (strncmp(url, "/function/", 10) == 0) {
        pthread_mutex_lock(&c->mu);
        co_fn *f = co_fn_find(c->fns, url + 10);
        size_t lim = f ? invoke_limit(f) : SMALL_BODY;
        pthread_mutex_unlock(&c->mu);
        return lim;
    }
    if (strncmp(url, "/system/functions/", 18) == 0 || strncmp(url, "/system/function/", 17) == 0)
        return CO_MAX_MODULE;
    if (strncmp(url, "/system/kv/", 11) == 0)
        return KV_MAX_BODY;
    return SMALL_BODY;
}

/* The owner's token, as "Authorization: Bearer TOKEN" (compared in constant time). */
static bool authorized(coord *c, struct MHD_Connection *mc) {
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(c->token);
    return strlen(h) == n && cr_equal(h, c->token, n);
}

static enum MHD_Result reply_unauthorized(struct MHD_Connection *mc) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", "UNAUTHORIZED");
    cJSON_AddStringToObject(j, "message",
                            "/system/* needs the owner's token: Authorization: Bearer TOKEN");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
    cJSON_free(s);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(mc, 401, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result route(coord *c, struct MHD_Connection *mc, const char *url,
                             const char *method, conn *cn) {
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
         put = strcmp(method, "PUT") == 0, del = strcmp(method, "DELETE") == 0;
    if (strncmp(url, "/function/", 10) == 0) {
        const char *name = url + 10;
        if (!post && !get && !put)
            return reply_err(mc, 405, "METHOD", "invoke with POST /function/NAME");
        if (cn->too_large) {
            pthread_mutex_lock(&c->mu);
            co_fn *f = co_fn_find(c->fns, name);
            size_t lim = f ? invoke_limit(f) : 0;
            pthread_mutex_unlock(&c->mu);
            if (!f)
                return reply_err(mc, 404, "NOTFOUND", "function '%s' is not deployed", name);
            return reply_err(mc, 413, "TOOLARGE",
                             "request body larger than %zu bytes (the function's max_request, at "
                             "most %u)",
                             lim, CHAN_MAX_BODY);
        }
        return do_invoke(c, mc, name, cn);
    }
    if (strncmp(url, "/system/", 8) == 0 && c->token && !authorized(c, mc))
        return reply_unauthorized(mc);
    if (cn->too_large)
        return reply_err(mc, 413, "TOOLARGE", "request body larger than %zu bytes", cn->limit);
    if (strcmp(url, "/healthz") == 0)
        return do_healthz(c, mc);
    if (strcmp(url, "/endpoints") == 0)
        return do_endpoints(c, mc);
    if (strcmp(url, "/metrics") == 0)
        return do_metrics(c, mc);
    if (strcmp(url, "/system/functions") == 0 || strcmp(url, "/system/functions/") == 0) {
        if (get)
            return do_list(c, mc);
        return reply_err(mc, 405, "METHOD", "deploy with POST /system/functions/NAME");
    }
    if (strncmp(url, "/system/functions/", 18) == 0 || strncmp(url, "/system/function/", 17) == 0) {
        const char *name = strchr(url + 8, '/') + 1;
        if (post || put)
            return do_deploy(c, mc, name, cn);
        if (del)
            return do_remove(c, mc, name);
        if (get)
            return do_describe(c, mc, name);
        return reply_err(mc, 405, "METHOD", "unsupported method %s", method);
    }
    if (strcmp(url, "/system/logs") == 0 || strncmp(url, "/system/logs/", 13) == 0) {
        const char *name = url[12] == '/'
                               ? url + 13
                               : MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "name");
        if (!name)
            return reply_err(mc, 400, "USAGE", "GET /system/logs?name=NAME");
        return do_logs(c, mc, name);
    }
    if (strncmp(url, "/system/kv/", 11) == 0)
        return do_kv(c, mc, method, url + 11, cn);
    if (strcmp(url, "/system/workers") == 0)
        return do_workers(c, mc);
    return reply_err(mc, 404, "NOROUTE", "no such endpoint: %s %s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    coord *c = cls;
    conn *cn = *con_cls;
    if (!cn) {
        cn = xcalloc(1, sizeof *cn);
        cn->start_ns = plat_now_ns();
        cn->limit = body_limit(c, url);
        *con_cls = cn;
        const char *cl =
            MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > cn->limit)
            cn->too_large = true; /* answered at once; the body is never read */
        else
            return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_large || cn->len + n > cn->limit) {
            cn->too_large = true;
            return MHD_YES;
        }
        if (cn->len + n > cn->cap) {
            cn->cap = (cn->len + n) * 2;
            if (cn->cap > cn->limit)
                cn->cap = cn->limit;
            cn->buf = xrealloc(cn->buf, cn->cap);
        }
        memcpy(cn->buf + cn->len, upload_data, n);
        cn->len += n;
        return MHD_YES;
    }
    return route(c, mc, url, method, cn);
}

static void on_done(void *cls, struct MHD_Connection *mc, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)mc, (void)toe;
    conn *cn = *con_cls;
    if (cn) {
        free(cn->buf);
        free(cn);
        *con_cls = NULL;
    }
}

int co_gateway_start(coord *c) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->o.http_port);
    const char *addr = c->o.http_addr ? c->o.http_addr : "127.0.0.1";
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "psl coordinator: --http-addr %s is not an IPv4 address\n", addr);
        return ERR_USAGE;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)c->o.http_port, NULL, NULL, on_request, c, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, c, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
        MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "psl coordinator: cannot start the HTTP gateway on %s:%u\n", addr,
                c->o.http_port);
        return ERR_IO;
    }
    c->mhd = d;
    return 0;
}

void co_gateway_stop(coord *c) {
    if (c->mhd)
        MHD_stop_daemon(c->mhd);
    c->mhd = NULL;
}
