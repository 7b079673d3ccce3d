/* The coordinator's I/O thread and life cycle: membership, scheduling, registry updates, the
 * lock server and the key manager, all driven by messages on the one net_server. See coord.h for
 * the threading model; the invariant is that only this thread touches c->srv and c->km, and that
 * every change to the shared state happens with c->mu held. */
#include "coord/coord_int.h"

#include "crypto/crypto.h"
#include "platform/platform.h"
#include "proto/cluster.pb-c.h"
#include "wasm/wasm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MS UINT64_C(1000000)

static void clog_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void clog_(const char *fmt, ...) {
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "psl coordinator %s: ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- sending ----------------------------------------------------------------------------------
 */

static int send_msg(coord *c, uint64_t peer, const Psl__ClusterMsg *m) {
    size_t n = psl__cluster_msg__get_packed_size(m);
    uint8_t *b = xmalloc(n ? n : 1);
    psl__cluster_msg__pack(m, b);
    int rc = net_server_send(c->srv, peer, b, n);
    free(b);
    return rc;
}

static void fill_limits(Psl__FnLimits *pl, const co_limits *l) {
    pl->timeout_ms = l->timeout_ms;
    pl->max_memory_mb = l->max_memory_mb;
    pl->max_request = l->max_request;
    pl->max_response = l->max_response;
    pl->sync = l->sync;
}

static int send_deploy(coord *c, uint64_t peer, const co_fn *f, uint64_t req_id) {
    Psl__FnLimits pl = PSL__FN_LIMITS__INIT;
    fill_limits(&pl, &f->lim);
    Psl__Deploy d = PSL__DEPLOY__INIT;
    d.req_id = req_id;
    d.name = (char *)f->name;
    d.code.data = f->code;
    d.code.len = f->len;
    d.limits = &pl;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_DEPLOY;
    m.deploy = &d;
    return send_msg(c, peer, &m);
}

static void send_remove(coord *c, uint64_t peer, const char *name) {
    Psl__Remove r = PSL__REMOVE__INIT;
    r.name = (char *)name;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_REMOVE;
    m.remove = &r;
    (void)send_msg(c, peer, &m);
}

static void send_grant(coord *c, const co_grant *g) {
    const co_lock *l = g->lock;
    Psl__VecEntry *ents = xcalloc(l->nvec ? l->nvec : 1, sizeof *ents);
    Psl__VecEntry **ptrs = xcalloc(l->nvec ? l->nvec : 1, sizeof *ptrs);
    for (size_t i = 0; i < l->nvec; i++) {
        psl__vec_entry__init(&ents[i]);
        ents[i].writer = l->vec[i].writer;
        ents[i].seqno = l->vec[i].seqno;
        ptrs[i] = &ents[i];
    }
    Psl__LockGranted lg = PSL__LOCK_GRANTED__INIT;
    lg.lock_req = g->lock_req;
    lg.status = 0;
    lg.n_vector = l->nvec;
    lg.vector = ptrs;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_LOCK_GRANTED;
    m.lock_granted = &lg;
    if (send_msg(c, g->peer, &m) != 0)
        clog_("lock '%s': could not send the grant to session %" PRIu64, l->name, g->peer);
    free(ptrs);
    free(ents);
}

/* ---- requests -----------------------------------------------------------------------------------
 */

static void req_done(co_req *r, int http, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void req_done(co_req *r, int http, const char *code, const char *fmt, ...) {
    r->http = http;
    r->code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        char buf[1024];
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        free(r->msg);
        r->msg = xstrdup(buf);
    }
    r->done = true;
    pthread_cond_signal(&r->cv);
}

static void pending_add(coord *c, co_req *r) {
    r->prev = NULL;
    r->next = c->pending;
    if (c->pending)
        c->pending->prev = r;
    c->pending = r;
}

static void pending_del(coord *c, co_req *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        c->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static co_req *pending_find(coord *c, uint64_t req_id) {
    for (co_req *r = c->pending; r; r = r->next)
        if (r->req_id == req_id)
            return r;
    return NULL;
}

void co_req_fini(co_req *r) {
    free(r->msg);
    free(r->out);
    free(r->wait_peers);
    free(r->deploy_err);
    r->deploy_err = NULL;
    r->msg = NULL;
    r->out = NULL;
    r->wait_peers = NULL;
}

/* ---- workers ------------------------------------------------------------------------------------
 */

static co_worker *worker_by_peer(coord *c, uint64_t peer) {
    for (co_worker *w = c->workers; w; w = w->next)
        if (w->alive && w->peer == peer)
            return w;
    return NULL;
}

static co_worker *worker_by_id(coord *c, uint64_t id) {
    for (co_worker *w = c->workers; w; w = w->next)
        if (w->alive && w->id == id)
            return w;
    return NULL;
}

uint32_t co_live_workers(coord *c) {
    uint32_t n = 0;
    for (co_worker *w = c->workers; w; w = w->next)
        n += w->alive;
    return n;
}

/* Least loaded live worker: fewest requests in flight as counted here, then fewest reported by
 * its last heartbeat, then the one that was sent the fewest in total (spreads idle load). */
static co_worker *pick_worker(coord *c) {
    co_worker *best = NULL;
    for (co_worker *w = c->workers; w; w = w->next) {
        if (!w->alive)
            continue;
        if (!best || w->inflight < best->inflight ||
            (w->inflight == best->inflight &&
             (w->hb_inflight < best->hb_inflight ||
              (w->hb_inflight == best->hb_inflight && w->sent < best->sent))))
            best = w;
    }
    return best;
}

static void deploy_finish(coord *c, co_req *r);

/* Drop @p peer from a pending deploy's list of answers to wait for. */
static void deploy_unwait(coord *c, co_req *r, uint64_t peer) {
    for (uint32_t i = 0; i < r->nwait; i++) {
        if (r->wait_peers[i] == peer) {
            r->wait_peers[i] = r->wait_peers[--r->nwait];
            break;
        }
    }
    if (r->nwait == 0)
        deploy_finish(c, r);
}

static void lock_handoff(coord *c, co_lock *l, int rc, const co_grant *g) {
    if (rc == 1) {
        c->lock_grants++;
        send_grant(c, g);
    }
    (void)l;
}

static void worker_dead(coord *c, co_worker *w, const char *why) {
    if (!w->alive)
        return;
    w->alive = false;
    c->workers_died++;
    clog_("worker %" PRIu64 " (%s) is dead: %s; %u request(s) in flight fail", w->id, w->name, why,
          w->inflight);
    uint64_t now = plat_now_ns();
    for (co_req *r = c->pending, *nx; r; r = nx) {
        nx = r->next;
        if (r->kind == CO_DEPLOY) {
            for (uint32_t i = 0; i < r->nwait; i++) {
                if (r->wait_peers[i] == w->peer) {
                    deploy_unwait(c, r, w->peer);
                    break;
                }
            }
            continue;
        }
        if (r->peer != w->peer)
            continue;
        pending_del(c, r);
        req_done(r, 502, "WORKERLOST",
                 "worker %" PRIu64 " (%s) died with the request in flight (%s); the request may "
                 "or may not have run",
                 w->id, w->name, why);
    }
    w->inflight = 0;
    for (co_lock *l = c->locks; l; l = l->next) {
        size_t dropped = co_lock_drop_waiters(l, w->peer);
        if (dropped)
            clog_("lock '%s': dropped %zu waiter(s) of dead worker %" PRIu64, l->name, dropped,
                  w->id);
        if (l->held && l->holder.peer == w->peer) {
            co_grant g;
            int rc = co_lock_revoke(l, now, &g);
            c->lock_forced++;
            clog_("lock '%s': holder worker %" PRIu64 " is dead: lock released%s", l->name, w->id,
                  rc == 1 ? ", granted to the next waiter" : "");
            lock_handoff(c, l, rc, &g);
        }
    }
    net_server_drop(c->srv, w->peer, why);
}

static void welcome(coord *c, uint64_t peer) {
    size_t n = 0;
    for (co_fn *f = c->fns; f; f = f->next)
        n++;
    Psl__Deploy *ds = xcalloc(n ? n : 1, sizeof *ds);
    Psl__Deploy **dp = xcalloc(n ? n : 1, sizeof *dp);
    Psl__FnLimits *ls = xcalloc(n ? n : 1, sizeof *ls);
    size_t i = 0;
    for (co_fn *f = c->fns; f; f = f->next, i++) {
        psl__deploy__init(&ds[i]);
        psl__fn_limits__init(&ls[i]);
        fill_limits(&ls[i], &f->lim);
        ds[i].name = f->name;
        ds[i].code.data = f->code;
        ds[i].code.len = f->len;
        ds[i].limits = &ls[i];
        dp[i] = &ds[i];
    }
    Psl__Welcome wm = PSL__WELCOME__INIT;
    wm.n_functions = n;
    wm.functions = dp;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_WELCOME;
    m.welcome = &wm;
    /* A worker may accept only NET_MAX_MSG_DEFAULT per message: when everything does not fit in
     * one Welcome, send an empty Welcome and then one Deploy per function. */
    bool split = psl__cluster_msg__get_packed_size(&m) + NET_FRAME_OVERHEAD > NET_MAX_MSG_DEFAULT;
    if (split)
        wm.n_functions = 0;
    int rc = send_msg(c, peer, &m);
    if (rc)
        clog_("welcome to session %" PRIu64 " failed: %s", peer, err_str(rc));
    for (co_fn *f = c->fns; split && !rc && f; f = f->next)
        if ((rc = send_deploy(c, peer, f, 0)) != 0)
            clog_("deploy of '%s' to session %" PRIu64 " failed: %s", f->name, peer, err_str(rc));
    free(ds);
    free(dp);
    free(ls);
}

static void on_hello(coord *c, uint64_t peer, const Psl__Hello *h) {
    co_worker *old = worker_by_id(c, h->worker_id);
    if (old)
        worker_dead(c, old, "replaced by a new session of the same worker id");
    /* Forget dead entries of this id: status shows each worker once. */
    for (co_worker **pp = &c->workers; *pp;) {
        co_worker *w = *pp;
        if (!w->alive && w->id == h->worker_id) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    co_worker *w = xcalloc(1, sizeof *w);
    w->peer = peer;
    w->id = h->worker_id;
    snprintf(w->name, sizeof w->name, "%s", h->name && h->name[0] ? h->name : "worker");
    w->threads = h->threads;
    snprintf(w->client_ep, sizeof w->client_ep, "%s", h->client_endpoint ? h->client_endpoint : "");
    const net_peer_info *pi = net_server_peer(c->srv, peer);
    if (pi && pi->attested) {
        w->attested = true;
        snprintf(w->backend, sizeof w->backend, "%.*s", (int)sizeof pi->report.backend,
                 pi->report.backend);
        memcpy(w->measurement, pi->report.measurement, 32);
        memcpy(w->platform_key, pi->report.platform_key, 32);
    }
    w->alive = true;
    w->joined_ns = w->last_ns = plat_now_ns();
    w->next = c->workers;
    c->workers = w;
    clog_("worker %" PRIu64 " (%s, %u threads) joined", w->id, w->name, w->threads);
    welcome(c, peer);
}

/* A malloc'd copy (never NULL; protobuf gives NULL data for empty bytes). */
static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
    uint8_t *b = xmalloc(n ? n : 1);
    if (n)
        memcpy(b, p, n);
    return b;
}

static void on_invoke_result(coord *c, co_worker *w, const Psl__InvokeResult *m) {
    co_req *r = pending_find(c, m->req_id);
    if (!r || r->kind != CO_INVOKE || r->peer != w->peer)
        return; /* late answer to a request that already timed out */
    pending_del(c, r);
    if (w->inflight)
        w->inflight--;
    r->worker = w->id;
    const char *msg = m->msg ? m->msg : "";
    if (m->status == 0 && m->exit_code == 0) {
        r->out = dup_bytes(m->body.data, m->body.len);
        r->outlen = m->body.len;
        req_done(r, 200, NULL, NULL);
    } else if (m->status == 0) {
        /* Non-zero exit: the body carries what the function wrote; msg its stderr excerpt. */
        r->out = dup_bytes(m->body.data, m->body.len);
        r->outlen = m->body.len;
        /* The worker's message may repeat the status ("exit status N: stderr..."). */
        char pre[48];
        snprintf(pre, sizeof pre, "exit status %d: ", m->exit_code);
        if (strncmp(msg, pre, strlen(pre)) == 0)
            msg += strlen(pre);
        req_done(r, 500, "EXIT", "function '%s' exited with status %d%s%s", r->name, m->exit_code,
                 msg[0] ? "; stderr: " : "", msg);
    } else if (m->status == ERR_TRAP || m->status == ERR_LIMIT || m->status == -ETIMEDOUT) {
        /* The engine reports a spent time budget as a trap; clients see it as a timeout. */
        bool timeout = m->status == -ETIMEDOUT || strstr(msg, "time budget") ||
                       strstr(msg, "timeout") || strstr(msg, "timed out");
        const char *code = timeout ? "TIMEOUT" : m->status == ERR_TRAP ? "TRAP" : "LIMIT";
        req_done(r, 500, code, "%s", msg[0] ? msg : err_str(m->status));
    } else if (m->status == ERR_NOTFOUND) {
        req_done(r, 404, "NOTFOUND", "function '%s' is not deployed on worker %" PRIu64 "%s%s",
                 r->name, w->id, msg[0] ? ": " : "", msg);
    } else {
        req_done(r, 500, "FAILED", "%s%s%s", err_str(m->status), msg[0] ? ": " : "", msg);
    }
}

static void deploy_finish(coord *c, co_req *r) {
    pending_del(c, r);
    co_fn *nf = r->fn_new, *old = r->fn_old;
    r->fn_new = r->fn_old = NULL;
    if (!nf) {
        /* A later deploy (or a remove) of the same name took this version over. */
        co_fn_free(old);
        if (r->deploy_err)
            req_done(r, 400, "INVALID", "%s", r->deploy_err);
        else
            req_done(r, r->fn_replaced ? 200 : 201, NULL, NULL);
        return;
    }
    if (!r->deploy_err) {
        co_fn_free(old);
        req_done(r, r->fn_replaced ? 200 : 201, NULL, NULL);
        return;
    }
    /* A worker refused the module: take the new version back everywhere. */
    for (co_fn **pp = &c->fns; *pp; pp = &(*pp)->next) {
        if (*pp == nf) {
            *pp = nf->next;
            break;
        }
    }
    if (old) {
        old->next = c->fns;
        c->fns = old;
        if (co_registry_save(c->o.dir, old) != 0)
            clog_("function '%s': could not restore the previous version on disk", old->name);
        for (co_worker *w = c->workers; w; w = w->next)
            if (w->alive)
                (void)send_deploy(c, w->peer, old, 0);
    } else {
        (void)co_registry_delete(c->o.dir, nf->name);
        for (co_worker *w = c->workers; w; w = w->next)
            if (w->alive)
                send_remove(c, w->peer, nf->name);
    }
    co_fn_free(nf);
    req_done(r, 400, "INVALID", "%s", r->deploy_err);
}

static void on_deploy_result(coord *c, co_worker *w, const Psl__DeployResult *m) {
    co_req *r = pending_find(c, m->req_id);
    if (!r || r->kind != CO_DEPLOY)
        return;
    if (m->status != 0 && !r->deploy_err) {
        char buf[600];
        snprintf(buf, sizeof buf, "worker %" PRIu64 " refused the module: %s%s%s", w->id,
                 err_str(m->status), m->msg && m->msg[0] ? ": " : "", m->msg ? m->msg : "");
        r->deploy_err = xstrdup(buf);
    }
    deploy_unwait(c, r, w->peer);
}

static void on_kv_result(coord *c, co_worker *w, const Psl__KvResult *m) {
    co_req *r = pending_find(c, m->req_id);
    if (!r || r->kind != CO_KV || r->peer != w->peer)
        return;
    pending_del(c, r);
    if (w->inflight)
        w->inflight--;
    r->worker = w->id;
    if (m->status == 0) {
        r->out = dup_bytes(m->value.data, m->value.len);
        r->outlen = m->value.len;
        req_done(r, 200, NULL, NULL);
    } else if (m->status == ERR_NOTFOUND) {
        req_done(r, 404, "NOTFOUND", "key not found");
    } else {
        req_done(r, 500, "FAILED", "key-value operation failed on worker %" PRIu64 ": %s", w->id,
                 err_str(m->status));
    }
}

static void on_lock_acquire(coord *c, co_worker *w, const Psl__LockAcquire *m) {
    co_lock *l = co_lock_get(&c->locks, m->name ? m->name : "");
    co_grant g;
    if (co_lock_acquire(l, w->peer, m->lock_req, plat_now_ns(), &g)) {
        c->lock_grants++;
        send_grant(c, &g);
    }
}

static void on_lock_release(coord *c, co_worker *w, const Psl__LockRelease *m) {
    co_lock *l = co_lock_get(&c->locks, m->name ? m->name : "");
    co_vec *v = xcalloc(m->n_vector ? m->n_vector : 1, sizeof *v);
    for (size_t i = 0; i < m->n_vector; i++) {
        v[i].writer = m->vector[i]->writer;
        v[i].seqno = m->vector[i]->seqno;
    }
    co_grant g;
    int rc = co_lock_release(l, w->peer, v, m->n_vector, plat_now_ns(), &g);
    free(v);
    if (m->n_vector)
        c->locks_dirty = true;
    if (rc < 0)
        clog_("lock '%s': release from worker %" PRIu64 " which does not hold it (its lease "
              "expired?); its vector was merged",
              l->name, w->id);
    lock_handoff(c, l, rc, &g);
}

static void on_log(coord *c, co_worker *w, const Psl__LogLine *m) {
    co_fn *f = co_fn_find(c->fns, m->function ? m->function : "");
    if (!f)
        return;
    char ts[32], line[1200];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(line, sizeof line, "%s worker-%" PRIu64 " %s", ts, w->id, m->line ? m->line : "");
    co_fn_log(f, line);
}

static void on_message(coord *c, uint64_t peer, const uint8_t *msg, size_t len) {
    if (len == 0)
        return; /* the doorbell: the queue is drained at the top of the loop */
    co_worker *w = worker_by_peer(c, peer);
    Psl__ClusterMsg *m = psl__cluster_msg__unpack(NULL, len, msg);
    if (getenv("PSL_COORD_TRACE"))
        clog_("msg from %" PRIu64 " (%s): %zu bytes, case %d", peer, w ? w->name : "?", len,
              m ? (int)m->m_case : -1);
    bool cluster = m && m->m_case >= PSL__CLUSTER_MSG__M_HELLO &&
                   m->m_case <= PSL__CLUSTER_MSG__M_KV_RESULT &&
                   (w || m->m_case == PSL__CLUSTER_MSG__M_HELLO);
    if (!cluster) {
        /* Not a worker message: a key request (workers ask for their deployment's secrets
         * before or after Hello; keymgr.h). km_handle always answers. */
        if (m)
            psl__cluster_msg__free_unpacked(m, NULL);
        (void)km_handle(c->km, c->srv, peer, msg, len);
        return;
    }
    if (w)
        w->last_ns = plat_now_ns();
    switch (m->m_case) {
    case PSL__CLUSTER_MSG__M_HELLO: on_hello(c, peer, m->hello); break;
    case PSL__CLUSTER_MSG__M_HEARTBEAT: {
        const Psl__Heartbeat *h = m->heartbeat;
        w->hb_inflight = h->inflight;
        w->hb_invocations = h->invocations;
        w->hb_errors = h->errors;
        w->hb_kv_reads = h->kv_reads;
        w->hb_kv_writes = h->kv_writes;
        w->hb_kv_coalesced = h->kv_coalesced;
        w->hb_appends = h->capsule_appends;
        w->hb_seqno = h->applied_seqno;
        break;
    }
    case PSL__CLUSTER_MSG__M_INVOKE_RESULT: on_invoke_result(c, w, m->invoke_result); break;
    case PSL__CLUSTER_MSG__M_DEPLOY_RESULT: on_deploy_result(c, w, m->deploy_result); break;
    case PSL__CLUSTER_MSG__M_LOCK_ACQUIRE: on_lock_acquire(c, w, m->lock_acquire); break;
    case PSL__CLUSTER_MSG__M_LOCK_RELEASE: on_lock_release(c, w, m->lock_release); break;
    case PSL__CLUSTER_MSG__M_LOG: on_log(c, w, m->log); break;
    case PSL__CLUSTER_MSG__M_KV_RESULT: on_kv_result(c, w, m->kv_result); break;
    default: break;
    }
    psl__cluster_msg__free_unpacked(m, NULL);
}

/* ---- requests from the gateway ------------------------------------------------------------------
 */

static void start_invoke(coord *c, co_req *r) {
    co_fn *f = co_fn_find(c->fns, r->name);
    if (!f) {
        req_done(r, 404, "NOTFOUND", "function '%s' is not deployed", r->name);
        return;
    }
    for (;;) {
        co_worker *w = pick_worker(c);
        if (!w) {
            req_done(r, 503, "NOWORKER", "no live worker to run '%s'", r->name);
            return;
        }
        r->req_id = ++c->next_req;
        r->peer = w->peer;
        uint64_t budget = f->lim.timeout_ms ? f->lim.timeout_ms : 60000;
        r->deadline_ns = plat_now_ns() + (budget + 5000) * MS;
        Psl__Invoke iv = PSL__INVOKE__INIT;
        iv.req_id = r->req_id;
        iv.function = r->name;
        iv.body.data = (uint8_t *)r->body;
        iv.body.len = r->blen;
        Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
        m.m_case = PSL__CLUSTER_MSG__M_INVOKE;
        m.invoke = &iv;
        int rc = send_msg(c, w->peer, &m);
        if (rc == ERR_LIMIT) {
            req_done(r, 413, "TOOLARGE", "request body too large for the worker channel");
            return;
        }
        if (rc) {
            worker_dead(c, w, "its session is gone");
            continue; /* nothing was sent: another worker may take it */
        }
        w->inflight++;
        w->sent++;
        pending_add(c, r);
        return;
    }
}

static void start_kv(coord *c, co_req *r) {
    co_worker *w = pick_worker(c);
    if (!w) {
        req_done(r, 503, "NOWORKER", "no live worker for the key-value operation");
        return;
    }
    r->req_id = ++c->next_req;
    r->peer = w->peer;
    r->deadline_ns = plat_now_ns() + 10000 * MS;
    Psl__KvOp op = PSL__KV_OP__INIT;
    op.req_id = r->req_id;
    op.op = r->kv_op;
    op.key.data = (uint8_t *)r->key;
    op.key.len = r->klen;
    op.value.data = (uint8_t *)r->body;
    op.value.len = r->blen;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_KV_OP;
    m.kv_op = &op;
    if (send_msg(c, w->peer, &m) != 0) {
        worker_dead(c, w, "its session is gone");
        req_done(r, 503, "NOWORKER", "the chosen worker's session is gone");
        return;
    }
    w->inflight++;
    pending_add(c, r);
}

static void start_deploy(coord *c, co_req *r) {
    co_fn *old = co_fn_find(c->fns, r->name);
    co_fn *nf = co_fn_new(r->name, r->body, r->blen, &r->lim, c->o.log_lines);
    nf->version = old ? old->version + 1 : 1;
    if (co_registry_save(c->o.dir, nf) != 0) {
        co_fn_free(nf);
        req_done(r, 500, "IO", "could not store the function under %s/functions", c->o.dir);
        return;
    }
    /* A deploy of this name still waiting for workers hands its version over to this one. */
    for (co_req *p = c->pending; old && p; p = p->next)
        if (p->kind == CO_DEPLOY && p->fn_new == old)
            p->fn_new = NULL;
    if (old) {
        for (co_fn **pp = &c->fns; *pp; pp = &(*pp)->next) {
            if (*pp == old) {
                *pp = old->next;
                break;
            }
        }
        /* Keep the log across versions. */
        char **tl = nf->log;
        uint32_t tc = nf->log_cap;
        nf->log = old->log, nf->log_cap = old->log_cap, nf->log_head = old->log_head,
        nf->log_n = old->log_n;
        old->log = tl, old->log_cap = tc, old->log_head = 0, old->log_n = 0;
        nf->invocations = old->invocations;
        nf->errors = old->errors;
        old->next = NULL;
    }
    nf->next = c->fns;
    c->fns = nf;
    r->fn_new = nf;
    r->fn_old = old;
    r->fn_replaced = old != NULL;
    r->req_id = ++c->next_req;
    r->deadline_ns = plat_now_ns() + 15000 * MS;
    uint32_t n = co_live_workers(c);
    r->wait_peers = xcalloc(n ? n : 1, sizeof *r->wait_peers);
    r->nwait = 0;
    for (co_worker *w = c->workers; w; w = w->next) {
        if (!w->alive)
            continue;
        if (send_deploy(c, w->peer, nf, r->req_id) == 0)
            r->wait_peers[r->nwait++] = w->peer;
    }
    clog_("function '%s' deployed (version %" PRIu64 ", %zu bytes), pushed to %u worker(s)",
          nf->name, nf->version, nf->len, r->nwait);
    pending_add(c, r);
    if (r->nwait == 0)
        deploy_finish(c, r);
}

static void start_remove(coord *c, co_req *r) {
    co_fn *f = NULL;
    for (co_fn **pp = &c->fns; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, r->name) == 0) {
            f = *pp;
            *pp = f->next;
            break;
        }
    }
    if (!f) {
        req_done(r, 404, "NOTFOUND", "function '%s' is not deployed", r->name);
        return;
    }
    /* A deploy of the same name still waiting for workers keeps pointers to it. */
    for (co_req *p = c->pending; p; p = p->next) {
        if (p->kind == CO_DEPLOY && p->fn_new == f)
            p->fn_new = NULL;
    }
    if (co_registry_delete(c->o.dir, f->name) != 0)
        clog_("function '%s': could not delete its files", f->name);
    for (co_worker *w = c->workers; w; w = w->next)
        if (w->alive)
            send_remove(c, w->peer, f->name);
    clog_("function '%s' removed", f->name);
    bool referenced = false;
    for (co_req *p = c->pending; p; p = p->next)
        if (p->kind == CO_DEPLOY && p->fn_old == f)
            referenced = true;
    if (!referenced)
        co_fn_free(f);
    req_done(r, 200, NULL, NULL);
}

static void start(coord *c, co_req *r) {
    switch (r->kind) {
    case CO_INVOKE: start_invoke(c, r); break;
    case CO_DEPLOY: start_deploy(c, r); break;
    case CO_REMOVE: start_remove(c, r); break;
    case CO_KV: start_kv(c, r); break;
    default: req_done(r, 500, "FAILED", "unknown request"); break;
    }
}

static void tick(coord *c) {
    uint64_t now = plat_now_ns();
    for (co_worker *w = c->workers; w; w = w->next) {
        if (w->alive && now - w->last_ns > (uint64_t)c->o.dead_ms * MS) {
            char why[96];
            snprintf(why, sizeof why, "silent for %" PRIu64 " ms", (now - w->last_ns) / MS);
            worker_dead(c, w, why);
        }
    }
    for (co_lock *l = c->locks; l; l = l->next) {
        if (l->held && now - l->granted_ns > (uint64_t)c->o.lease_ms * MS) {
            co_worker *w = worker_by_peer(c, l->holder.peer);
            uint64_t id = w ? w->id : 0;
            co_grant g;
            int rc = co_lock_revoke(l, now, &g);
            c->lock_forced++;
            clog_("lock '%s': worker %" PRIu64 " held it past its lease (%u ms): lock released%s",
                  l->name, id, c->o.lease_ms, rc == 1 ? ", granted to the next waiter" : "");
            lock_handoff(c, l, rc, &g);
        }
    }
    if (c->locks_dirty) {
        /* At most one write per tick (50 ms): a restart loses at most that much of the vectors. */
        if (co_locks_save(c->o.dir, c->locks) != 0)
            clog_("could not write %s/locks.json", c->o.dir);
        c->locks_dirty = false;
    }
    for (co_req *r = c->pending, *nx; r; r = nx) {
        nx = r->next;
        if (now < r->deadline_ns)
            continue;
        if (r->kind == CO_DEPLOY) {
            clog_("deploy of '%s': %u worker(s) did not answer in time", r->name, r->nwait);
            r->nwait = 0;
            deploy_finish(c, r);
            continue;
        }
        co_worker *w = worker_by_peer(c, r->peer);
        if (w && w->inflight)
            w->inflight--;
        pending_del(c, r);
        req_done(r, 504, "TIMEOUT", "worker %" PRIu64 " did not answer in time",
                 w ? w->id : (uint64_t)0);
    }
}

static void *io_main(void *arg) {
    plat_thread_name("coord-io");
    coord *c = arg;
    uint64_t last_tick = 0;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        co_req *q = c->qhead;
        c->qhead = c->qtail = NULL;
        bool stopping = c->stopping;
        while (q) {
            co_req *nx = q->next;
            q->next = NULL;
            if (stopping)
                req_done(q, 503, "STOPPING", "the coordinator is stopping");
            else
                start(c, q);
            q = nx;
        }
        if (stopping) {
            if (c->locks_dirty && co_locks_save(c->o.dir, c->locks) != 0)
                clog_("could not write %s/locks.json", c->o.dir);
            while (c->pending) {
                co_req *r = c->pending;
                pending_del(c, r);
                req_done(r, 503, "STOPPING", "the coordinator is stopping");
            }
            pthread_mutex_unlock(&c->mu);
            break;
        }
        uint64_t now = plat_now_ns();
        if (now - last_tick >= 50 * MS) {
            tick(c);
            last_tick = now;
        }
        pthread_mutex_unlock(&c->mu);

        uint64_t peer = 0;
        uint8_t *msg = NULL;
        size_t len = 0;
        int rc = net_server_recv(c->srv, 50, &peer, &msg, &len);
        if (rc == 0) {
            pthread_mutex_lock(&c->mu);
            on_message(c, peer, msg, len);
            pthread_mutex_unlock(&c->mu);
            free(msg);
        }
    }
    return NULL;
}

static void ring(coord *c) {
    pthread_mutex_lock(&c->bell_mu);
    if (c->bell && net_chan_send(c->bell, "", 0) != 0)
        clog_("doorbell: %s", net_chan_error(c->bell));
    pthread_mutex_unlock(&c->bell_mu);
}

void co_submit(coord *c, co_req *r) {
    pthread_cond_init(&r->cv, NULL);
    r->done = false;
    r->next = r->prev = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        req_done(r, 503, "STOPPING", "the coordinator is stopping");
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&r->cv);
        return;
    }
    bool was_empty = c->qhead == NULL;
    if (c->qtail)
        c->qtail->next = r;
    else
        c->qhead = r;
    c->qtail = r;
    pthread_mutex_unlock(&c->mu);
    if (was_empty)
        ring(c);
    pthread_mutex_lock(&c->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&r->cv);
}

/* ---- life cycle ---------------------------------------------------------------------------------
 */

static void coord_free(coord *c) {
    if (c->bell)
        net_chan_close(c->bell);
    if (c->km)
        km_free(c->km);
    if (c->srv)
        net_server_close(c->srv);
    while (c->fns) {
        co_fn *f = c->fns;
        c->fns = f->next;
        co_fn_free(f);
    }
    while (c->workers) {
        co_worker *w = c->workers;
        c->workers = w->next;
        free(w);
    }
    co_locks_free(c->locks);
    tee_policy_fini(&c->wpol);
    tee_policy_fini(&c->self_pol);
    if (c->tee)
        tee_close(c->tee);
    cr_memzero(c->bell_sk, sizeof c->bell_sk);
    if (c->token) {
        cr_memzero(c->token, strlen(c->token));
        free(c->token);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->bell_mu);
}

int co_run(const co_opts *o, volatile sig_atomic_t *stop) {
    coord c;
    memset(&c, 0, sizeof c);
    c.o = *o;
    if (!c.o.dead_ms)
        c.o.dead_ms = 2000;
    if (!c.o.lease_ms)
        c.o.lease_ms = 10000;
    if (!c.o.log_lines)
        c.o.log_lines = 512;
    if (!c.o.deployment)
        c.o.deployment = "default";
    pthread_mutex_init(&c.mu, NULL);
    pthread_mutex_init(&c.bell_mu, NULL);
    int rc = ERR_USAGE;
    if (!o->listen || !o->dir || !o->policy) {
        fprintf(stderr, "psl coordinator: --listen, --dir and --policy are required\n");
        goto fail;
    }
    rc = ERR_IO;
    if (cr_init() != 0)
        goto fail;
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "psl coordinator: cannot create %s: %s\n", o->dir, strerror(errno));
        goto fail;
    }
    char why[300];
    rc = tee_policy_load(o->policy, &c.wpol, why, sizeof why);
    if (rc) {
        fprintf(stderr, "psl coordinator: policy %s: %s\n", o->policy, why);
        goto fail;
    }
    const char *home = o->home;
    if (!home)
        home = getenv("PSL_HOME") && *getenv("PSL_HOME") ? getenv("PSL_HOME") : o->dir;
    tee_opts to = {.home = home, .quiet = true};
    rc = tee_open(&to, &c.tee);
    if (rc)
        goto fail;
    /* The measurement covers what decides whom the coordinator trusts (the worker policy), not
     * where it listens: sealed key-manager state must survive a restart on another port. */
    {
        uint8_t *pt = NULL;
        size_t pn = 0;
        if (plat_read_file(o->policy, &pt, &pn) == 0)
            tee_measure_extend(c.tee, "config:worker-policy", pt, pn);
        free(pt);
    }
    tee_policy_for(c.tee, false, &c.self_pol);
    cr_sign_keypair(c.bell_pk, c.bell_sk);
    /* The deployment's sealed worker policy is the file's, without the doorbell identity. */
    c.km = km_new(c.tee);
    rc = km_deployment_create(c.km, c.o.deployment, &c.wpol, why, sizeof why);
    if (rc && rc != ERR_INVALID) {
        fprintf(stderr, "psl coordinator: deployment '%s': %s\n", c.o.deployment, why);
        goto fail;
    }
    tee_policy_add_client(&c.wpol, c.bell_pk);
    net_auth sa = {.tee = c.tee, .peer = &c.wpol, .max_msg = CO_MAX_MSG, .name = "coordinator"};
    rc = net_server_open(NULL, o->listen, &sa, &c.srv);
    if (rc) {
        fprintf(stderr, "psl coordinator: cannot listen on %s: %s\n", o->listen, err_str(rc));
        goto fail;
    }
    if (o->token_file) {
        uint8_t *tk = NULL;
        size_t tn = 0;
        if (plat_read_file(o->token_file, &tk, &tn) != 0) {
            fprintf(stderr, "psl coordinator: cannot read the token file %s\n", o->token_file);
            rc = ERR_IO;
            goto fail;
        }
        while (tn && (tk[tn - 1] == '\n' || tk[tn - 1] == '\r' || tk[tn - 1] == ' '))
            tn--;
        c.token = xmalloc(tn + 1);
        memcpy(c.token, tk, tn);
        c.token[tn] = 0;
        cr_memzero(tk, tn);
        free(tk);
        if (tn < 16) {
            fprintf(stderr, "psl coordinator: the token in %s is shorter than 16 characters\n",
                    o->token_file);
            rc = ERR_USAGE;
            goto fail;
        }
    }
    rc = co_registry_load(o->dir, &c.fns, c.o.log_lines);
    if (rc)
        goto fail;
    rc = co_locks_load(o->dir, &c.locks);
    if (rc) {
        fprintf(stderr, "psl coordinator: %s/locks.json: %s\n", o->dir, err_str(rc));
        goto fail;
    }
    size_t nf = 0;
    for (co_fn *f = c.fns; f; f = f->next)
        nf++;
    if (pthread_create(&c.io, NULL, io_main, &c) != 0) {
        rc = ERR_IO;
        goto fail;
    }
    c.io_started = true;
    net_auth ba = {.id_sk = c.bell_sk, .peer = &c.self_pol, .name = "doorbell"};
    net_chan *bell = NULL;
    rc = net_chan_connect(NULL, net_server_endpoint(c.srv), &ba, &bell, why, sizeof why);
    if (rc) {
        fprintf(stderr, "psl coordinator: internal channel: %s\n", why);
        goto fail;
    }
    pthread_mutex_lock(&c.bell_mu);
    c.bell = bell;
    pthread_mutex_unlock(&c.bell_mu);
    if (o->http_port) {
        rc = co_gateway_start(&c);
        if (rc)
            goto fail;
    }
    clog_("ready: workers at %s, gateway http://%s:%u, %zu function(s) loaded from %s",
          net_server_endpoint(c.srv), o->http_addr ? o->http_addr : "127.0.0.1", o->http_port, nf,
          o->dir);
    while (!*stop)
        usleep(50000);
    clog_("stopping");
    rc = 0;
fail:
    if (c.io_started) {
        pthread_mutex_lock(&c.mu);
        c.stopping = true;
        pthread_mutex_unlock(&c.mu);
        ring(&c);
        pthread_join(c.io, NULL);
    }
    co_gateway_stop(&c);
    coord_free(&c);
    return rc;
}
