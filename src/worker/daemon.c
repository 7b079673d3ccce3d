/* The worker daemon; see worker.h. The I/O thread owns the secure channel and a PULL socket
 * (the outbox); invocation threads each own a PUSH socket into the outbox. Invariant: only the
 * I/O thread touches the channel. */
#include "worker/worker.h"

#include "abi/psl_abi.h"
#include "base/base.h"
#include "base/err.h"
#include "coord/keymgr.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "proto/cluster.pb-c.h"
#include "tee/tee.h"
#include "worker/exec.h"
#include "worker/repl.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define HEARTBEAT_MS 200
#define TRIM_EVERY 50 /* heartbeats (10 s) between two returns of freed memory to the system */
#define LOCK_WAIT_MS 30000
#define MAX_WAITERS 256
#define OUTBOX "inproc://psl-worker-outbox"

typedef struct job {
    struct job *next;
    uint64_t req_id;
    char *fn;
    uint8_t *body;
    size_t len;
    bool client; /* from the client-facing channel: the reply goes to client_peer there */
    uint64_t client_peer;
} job;

/* A finished client invocation, waiting for the client server's thread to send it. */
typedef struct cdone {
    struct cdone *next;
    uint64_t peer, req_id;
    ex_result r;
    char *fn; /* set when it ran on the invocation threads: its run time feeds the estimate */
} cdone;

/* Recent mean run time of a function, as seen by the client server's thread (inline or not). */
typedef struct fstat {
    char name[72];
    uint64_t mean_ns;
} fstat;

#define FSTAT_MAX 512

/* The client-facing channel (see worker.h). srv and the fstat table belong to its thread; the
 * queues are under mu; bell under bell_mu. */
typedef struct front {
    net_server *srv;
    tee_policy pol;      /* accepted clients: any identity */
    tee_policy self_pol; /* the doorbell checks that it reached this enclave */
    pthread_t th, dth;
    bool th_started, dth_started;
    atomic_bool stopping;
    pthread_mutex_t mu;
    pthread_cond_t dcv;     /* dur_h got work, or stopping */
    cdone *done_h, *done_t; /* ready to send */
    cdone *dur_h, *dur_t;   /* sync inline runs waiting until their writes are durable */
    bool append_req;        /* async inline writes wait in the memtable for an append */
    atomic_uint ndone;
    atomic_ullong durable_seq; /* our capsule is durable up to here (durability thread) */
    pthread_mutex_t bell_mu;
    net_chan *bell;
    uint8_t bell_pk[32], bell_sk[64];
    fstat stats[FSTAT_MAX];
    size_t nstats;
} front;

#define MAX_VEC 64

typedef struct waiter {
    bool used, done;
    uint64_t lock_req;
    int status;
    uint32_t nvec;
    uint64_t vec_writer[MAX_VEC], vec_seq[MAX_VEC];
} waiter;

typedef struct wk {
    const worker_opts *o;
    char name[64];
    void *zctx;
    kvs *kv;
    executor *ex;
    /* job queue */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    job *head, *tail;
    bool stopping;
    atomic_uint inflight;
    atomic_ullong invocations, errors;
    /* lock waiters */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    waiter waiters[MAX_WAITERS];
    atomic_ullong next_lock_req;
    repl *rp; /* NULL without storage */
    /* Deploys run on their own thread (a JIT compile takes seconds; heartbeats must go on). */
    pthread_mutex_t dlock;
    pthread_cond_t dcond; /* a deploy was queued, or one finished */
    struct djob *dhead, *dtail;
    char **pending; /* names queued or being deployed */
    size_t npending;
    front fr; /* the client-facing channel (fr.srv NULL when off) */
} wk;

typedef struct djob {
    struct djob *next;
    Psl__ClusterMsg *msg; /* owns the unpacked message holding the Deploy */
    const Psl__Deploy *d;
    bool reply;
} djob;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void wlog(const wk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(const wk *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", w->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- outgoing messages ---- */

/* Each invocation thread owns one PUSH socket into the outbox. */
static _Thread_local void *t_push;
static _Thread_local const char *t_function; /* function running on this thread (for logs) */
/* Locks the running invocation holds; released for it if it ends (or traps) still holding them. */
#define MAX_HELD 16
static _Thread_local char t_held[MAX_HELD][PSL_MAX_LOCK_NAME + 1];
static _Thread_local int t_nheld;

/* A PUSH socket into the outbox, for the calling thread only. */
static void *open_push(wk *w) {
    void *sock = zmq_socket(w->zctx, ZMQ_PUSH);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(sock, OUTBOX);
    return sock;
}

static void send_msg_on(void *sock, const Psl__ClusterMsg *m) {
    size_t n = psl__cluster_msg__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    psl__cluster_msg__pack(m, buf);
    zmq_send(sock, buf, n, 0);
    free(buf);
}

/* ---- locks (host services; run on invocation threads) ---- */

static int svc_lock(void *ud, const char *name, size_t len) {
    wk *w = ud;
    if (!t_push)
        return PSL_EUNAVAIL;
    uint64_t req = atomic_fetch_add(&w->next_lock_req, 1) + 1;
    pthread_mutex_lock(&w->wlock);
    waiter *slot = NULL;
    for (int i = 0; i < MAX_WAITERS && !slot; i++)
        if (!w->waiters[i].used)
            slot = &w->waiters[i];
    if (!slot) {
        pthread_mutex_unlock(&w->wlock);
        return PSL_EUNAVAIL;
    }
    *slot = (waiter){.used = true, .lock_req = req};
    pthread_mutex_unlock(&w->wlock);

    char nm[PSL_MAX_LOCK_NAME + 1];
    memcpy(nm, name, len);
    nm[len] = 0;
    Psl__LockAcquire la = PSL__LOCK_ACQUIRE__INIT;
    la.lock_req = req;
    la.name = nm;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_LOCK_ACQUIRE;
    m.lock_acquire = &la;
    send_msg_on(t_push, &m);

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LOCK_WAIT_MS / 1000;
    pthread_mutex_lock(&w->wlock);
    int rc = 0;
    while (!slot->done && rc != ETIMEDOUT && !w->stopping)
        rc = pthread_cond_timedwait(&w->wcond, &w->wlock, &until);
    int status = slot->done ? slot->status : PSL_EUNAVAIL;
    waiter got = *slot;
    slot->used = false;
    pthread_mutex_unlock(&w->wlock);
    if (status != 0)
        return status < 0 && status > -100 ? status : PSL_ELOCK;
    /* Release consistency: see every write published by earlier holders before going on. */
    for (uint32_t i = 0; w->rp && i < got.nvec; i++) {
        int wr = repl_wait_for(w->rp, got.vec_writer[i], got.vec_seq[i], 10000);
        if (wr != 0) {
            wlog(w, "lock %s: cannot apply writer %llu up to %llu (%s): lock given back", nm,
                 (unsigned long long)got.vec_writer[i], (unsigned long long)got.vec_seq[i],
                 wr == -ETIMEDOUT ? "timeout" : err_str(wr));
            Psl__LockRelease lr = PSL__LOCK_RELEASE__INIT;
            lr.name = nm;
            Psl__ClusterMsg rm = PSL__CLUSTER_MSG__INIT;
            rm.m_case = PSL__CLUSTER_MSG__M_LOCK_RELEASE;
            rm.lock_release = &lr;
            send_msg_on(t_push, &rm);
            return PSL_EUNAVAIL;
        }
    }
    if (t_nheld < MAX_HELD)
        snprintf(t_held[t_nheld++], sizeof t_held[0], "%s", nm);
    return 0;
}

/* psl_publish: append everything written so far to the capsule now (it is multicast to the
 * other workers once durable) and return without waiting: eventual consistency for a long
 * invocation, where otherwise its writes leave when it ends or releases a lock. */
static int svc_publish(void *ud) {
    wk *w = ud;
    if (!w->rp)
        return 0; /* no storage configured: nothing to replicate to */
    int rc = repl_flush(w->rp, false, NULL);
    if (rc) {
        wlog(w, "publish: writes not appended to the capsule: %s", err_str(rc));
        return PSL_EUNAVAIL;
    }
    return 0;
}

static int svc_unlock(void *ud, const char *name, size_t len) {
    wk *w = ud;
    if (!t_push)
        return PSL_EUNAVAIL;
    char nm[PSL_MAX_LOCK_NAME + 1];
    memcpy(nm, name, len);
    nm[len] = 0;
    int held = -1;
    for (int i = 0; i < t_nheld && held < 0; i++)
        if (!strcmp(t_held[i], nm))
            held = i;
    if (held < 0)
        return PSL_ELOCK; /* not held by this invocation */
    memmove(t_held[held], t_held[held + 1], (size_t)(t_nheld - held - 1) * sizeof t_held[0]);
    t_nheld--;
    /* Our writes are durable and published before anyone else may take the lock. */
    Psl__VecEntry ve = PSL__VEC_ENTRY__INIT, *vp = &ve;
    int rc = 0;
    if (w->rp) {
        uint64_t seq = 0;
        rc = repl_flush(w->rp, true, &seq);
        if (rc)
            wlog(w, "lock %s released, but the holder's writes are not durable: %s", nm,
                 err_str(rc));
        ve.writer = w->o->id;
        ve.seqno = seq;
    }
    Psl__LockRelease lr = PSL__LOCK_RELEASE__INIT;
    lr.name = nm;
    if (w->rp && !rc) {
        lr.n_vector = 1;
        lr.vector = &vp;
    }
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_LOCK_RELEASE;
    m.lock_release = &lr;
    send_msg_on(t_push, &m);
    return rc ? PSL_EUNAVAIL : 0;
}

static void svc_log(void *ud, const char *msg, size_t len) {
    (void)ud;
    if (!t_push)
        return;
    char *line = xmalloc(len + 1);
    memcpy(line, msg, len);
    line[len] = 0;
    Psl__LogLine ll = PSL__LOG_LINE__INIT;
    ll.function = (char *)(t_function ? t_function : "");
    ll.line = line;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_LOG;
    m.log = &ll;
    send_msg_on(t_push, &m);
    free(line);
}

static void lock_granted(wk *w, const Psl__LockGranted *g) {
    pthread_mutex_lock(&w->wlock);
    for (int i = 0; i < MAX_WAITERS; i++)
        if (w->waiters[i].used && w->waiters[i].lock_req == g->lock_req) {
            waiter *wt = &w->waiters[i];
            wt->done = true;
            wt->status = g->status;
            wt->nvec = 0;
            for (size_t k = 0; k < g->n_vector && wt->nvec < MAX_VEC; k++) {
                wt->vec_writer[wt->nvec] = g->vector[k]->writer;
                wt->vec_seq[wt->nvec++] = g->vector[k]->seqno;
            }
        }
    pthread_cond_broadcast(&w->wcond);
    pthread_mutex_unlock(&w->wlock);
}

/* ---- invocation threads ---- */

static void wait_deployed(wk *w, const char *name);
static void front_complete(wk *w, cdone *first, cdone *last);

/* A sync invocation may be answered without waiting for durability when it wrote nothing (nor
 * invoked anything that might have) and every version of ours it read is durable: versions of
 * other workers reach us only once durable, and its answer depends on nothing else. */
static bool durable_already(wk *w, const ex_result *r) {
    return !r->kv.wrote && r->kv.read_own_hlc <= repl_durable_hlc(w->rp);
}

static void *invoker(void *arg) {
    plat_thread_name("invoker");
    wk *w = arg;
    t_push = open_push(w);
    for (;;) {
        pthread_mutex_lock(&w->qlock);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->qcond, &w->qlock);
        if (!w->head) {
            pthread_mutex_unlock(&w->qlock);
            break;
        }
        job *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->qlock);

        ex_result r;
        t_function = j->fn;
        t_nheld = 0;
        wait_deployed(w, j->fn); /* its deploy may still be compiling */
        ex_invoke(w->ex, j->fn, j->body, j->len, 0, &r);
        while (t_nheld > 0) {
            wlog(w, "%s ended holding lock '%s': released for it", j->fn, t_held[t_nheld - 1]);
            svc_unlock(w, t_held[t_nheld - 1], strlen(t_held[t_nheld - 1]));
        }
        t_function = NULL;
        if (w->rp) {
            /* Every invocation's writes go to the capsule now; sync functions wait for f+1,
             * unless they wrote nothing and read only durable data. */
            bool wait = r.sync && !durable_already(w, &r);
            int fr = repl_flush(w->rp, wait, NULL);
            if (fr && wait && r.status == 0) {
                r.status = ERR_IO;
                snprintf(r.msg, sizeof r.msg, "writes not durable: %s", err_str(fr));
            }
        }
        atomic_fetch_add(&w->invocations, 1);
        if (r.status || r.exit_code)
            atomic_fetch_add(&w->errors, 1);
        if (j->client) { /* the reply goes back on the client-facing channel */
            cdone *d = xcalloc(1, sizeof *d);
            d->peer = j->client_peer;
            d->req_id = j->req_id;
            d->r = r;
            d->fn = j->fn;
            front_complete(w, d, d);
            atomic_fetch_sub(&w->inflight, 1);
            free(j->body);
            free(j);
            continue;
        }
        Psl__InvokeResult ir = PSL__INVOKE_RESULT__INIT;
        ir.req_id = j->req_id;
        ir.status = r.status;
        ir.exit_code = r.exit_code;
        ir.body.data = r.out;
        ir.body.len = r.outlen;
        ir.msg = r.msg;
        ir.ns = r.ns;
        Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
        m.m_case = PSL__CLUSTER_MSG__M_INVOKE_RESULT;
        m.invoke_result = &ir;
        send_msg_on(t_push, &m);
        atomic_fetch_sub(&w->inflight, 1);
        free(r.out);
        free(j->fn);
        free(j->body);
        free(j);
    }
    zmq_close(t_push);
    t_push = NULL;
    return NULL;
}

static void enqueue_job(wk *w, job *j);

static void enqueue(wk *w, const Psl__Invoke *iv) {
    job *j = xcalloc(1, sizeof *j);
    j->req_id = iv->req_id;
    j->fn = xstrdup(iv->function ? iv->function : "");
    j->len = iv->body.len;
    j->body = xmalloc(j->len ? j->len : 1);
    if (j->len)
        memcpy(j->body, iv->body.data, j->len);
    enqueue_job(w, j);
}

static void enqueue_job(wk *w, job *j) {
    atomic_fetch_add(&w->inflight, 1);
    pthread_mutex_lock(&w->qlock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->qcond);
    pthread_mutex_unlock(&w->qlock);
}

/* ---- the I/O thread ---- */

static int chan_send_msg(net_chan *c, const Psl__ClusterMsg *m) {
    size_t n = psl__cluster_msg__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    psl__cluster_msg__pack(m, buf);
    int rc = net_chan_send(c, buf, n);
    free(buf);
    return rc;
}

static void deploy(wk *w, const Psl__Deploy *d, bool reply) {
    ex_limits lim;
    ex_limits_default(&lim);
    if (d->limits) {
        if (d->limits->timeout_ms)
            lim.timeout_ms = d->limits->timeout_ms;
        if (d->limits->max_memory_mb)
            lim.max_memory_mb = d->limits->max_memory_mb;
        if (d->limits->max_request)
            lim.max_request = d->limits->max_request;
        if (d->limits->max_response)
            lim.max_response = d->limits->max_response;
        lim.sync = d->limits->sync;
    }
    char msg[256] = {0};
    int rc =
        ex_deploy(w->ex, d->name ? d->name : "", d->code.data, d->code.len, &lim, msg, sizeof msg);
    if (rc)
        wlog(w, "deploy %s failed: %s", d->name, msg);
    if (!reply || !d->req_id)
        return;
    Psl__DeployResult dr = PSL__DEPLOY_RESULT__INIT;
    dr.req_id = d->req_id;
    dr.status = rc;
    dr.msg = msg;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_DEPLOY_RESULT;
    m.deploy_result = &dr;
    send_msg_on(t_push, &m);
}

static bool is_pending(wk *w, const char *name) {
    for (size_t i = 0; i < w->npending; i++)
        if (!strcmp(w->pending[i], name))
            return true;
    return false;
}

/* Queue a deploy; the message is owned by the job from now on. */
static void queue_deploy(wk *w, Psl__ClusterMsg *msg, const Psl__Deploy *d, bool reply) {
    djob *j = xcalloc(1, sizeof *j);
    j->msg = msg;
    j->d = d;
    j->reply = reply;
    pthread_mutex_lock(&w->dlock);
    w->pending = xrealloc(w->pending, (w->npending + 1) * sizeof *w->pending);
    w->pending[w->npending++] = xstrdup(d->name ? d->name : "");
    if (w->dtail)
        w->dtail->next = j;
    else
        w->dhead = j;
    w->dtail = j;
    pthread_cond_broadcast(&w->dcond);
    pthread_mutex_unlock(&w->dlock);
}

/* Wait until no deploy of @p name is queued or running (bounded). */
static void wait_deployed(wk *w, const char *name) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 120;
    pthread_mutex_lock(&w->dlock);
    int rc = 0;
    while (is_pending(w, name) && rc != ETIMEDOUT && !w->stopping)
        rc = pthread_cond_timedwait(&w->dcond, &w->dlock, &until);
    pthread_mutex_unlock(&w->dlock);
}

static void *deployer(void *arg) {
    plat_thread_name("deployer");
    wk *w = arg;
    t_push = open_push(w);
    for (;;) {
        pthread_mutex_lock(&w->dlock);
        while (!w->dhead && !w->stopping)
            pthread_cond_wait(&w->dcond, &w->dlock);
        djob *j = w->dhead;
        if (j) {
            w->dhead = j->next;
            if (!w->dhead)
                w->dtail = NULL;
        }
        pthread_mutex_unlock(&w->dlock);
        if (!j)
            break;
        deploy(w, j->d, j->reply);
        pthread_mutex_lock(&w->dlock);
        for (size_t i = 0; i < w->npending; i++)
            if (!strcmp(w->pending[i], j->d->name ? j->d->name : "")) {
                free(w->pending[i]);
                w->pending[i] = w->pending[--w->npending];
                break;
            }
        pthread_cond_broadcast(&w->dcond);
        pthread_mutex_unlock(&w->dlock);
        /* The message may hold several deploys (Welcome): free it with its last job. */
        if (j->msg)
            psl__cluster_msg__free_unpacked(j->msg, NULL);
        free(j);
    }
    zmq_close(t_push);
    t_push = NULL;
    return NULL;
}

static void kv_op(wk *w, net_chan *c, const Psl__KvOp *op) {
    Psl__KvResult kr = PSL__KV_RESULT__INIT;
    kr.req_id = op->req_id;
    uint8_t *val = NULL;
    if (op->op == 0) {
        size_t vlen = 0;
        kr.status = kvs_get(w->kv, op->key.data, op->key.len, NULL, 0, &vlen, NULL);
        if (kr.status == 0) {
            val = xmalloc(vlen ? vlen : 1);
            size_t again;
            kr.status = kvs_get(w->kv, op->key.data, op->key.len, val, vlen, &again, NULL);
            kr.value.data = val;
            kr.value.len = again < vlen ? again : vlen;
        }
    } else if (op->op == 1) {
        kr.status = kvs_put(w->kv, op->key.data, op->key.len, op->value.data, op->value.len);
    } else if (op->op == 2) {
        kr.status = kvs_delete(w->kv, op->key.data, op->key.len);
    } else {
        kr.status = ERR_USAGE;
    }
    if ((op->op == 1 || op->op == 2) && kr.status == 0 && w->rp)
        kr.status = repl_flush(w->rp, true, NULL);
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_KV_RESULT;
    m.kv_result = &kr;
    if (chan_send_msg(c, &m) != 0)
        wlog(w, "cannot send a kv result: %s", net_chan_error(c));
    free(val);
}

static void dispatch(wk *w, net_chan *c, const uint8_t *data, size_t len) {
    Psl__ClusterMsg *m = psl__cluster_msg__unpack(NULL, len, data);
    if (!m) {
        wlog(w, "undecodable message from the coordinator (%zu bytes) ignored", len);
        return;
    }
    switch (m->m_case) {
    case PSL__CLUSTER_MSG__M_WELCOME: {
        size_t n = m->welcome->n_functions;
        wlog(w, "welcomed by the coordinator: %zu functions", n);
        for (size_t i = 0; i < n; i++) /* the last job frees the message */
            queue_deploy(w, i + 1 == n ? m : NULL, m->welcome->functions[i], false);
        if (n)
            return;
        break;
    }
    case PSL__CLUSTER_MSG__M_DEPLOY: queue_deploy(w, m, m->deploy, true); return;
    case PSL__CLUSTER_MSG__M_REMOVE:
        ex_remove(w->ex, m->remove->name ? m->remove->name : "");
        break;
    case PSL__CLUSTER_MSG__M_INVOKE: enqueue(w, m->invoke); break;
    case PSL__CLUSTER_MSG__M_LOCK_GRANTED: lock_granted(w, m->lock_granted); break;
    case PSL__CLUSTER_MSG__M_KV_OP: kv_op(w, c, m->kv_op); break;
    default:
        wlog(w, "unexpected message kind %d from the coordinator ignored", (int)m->m_case);
        break;
    }
    psl__cluster_msg__free_unpacked(m, NULL);
}

static int send_hello(wk *w, net_chan *c) {
    Psl__Hello h = PSL__HELLO__INIT;
    h.worker_id = w->o->id;
    h.threads = w->o->threads ? w->o->threads : 2;
    h.name = w->name;
    h.client_endpoint = w->fr.srv ? (char *)net_server_endpoint(w->fr.srv) : "";
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_HELLO;
    m.hello = &h;
    return chan_send_msg(c, &m);
}

static int send_heartbeat(wk *w, net_chan *c) {
    kvs_stats st;
    kvs_get_stats(w->kv, &st);
    Psl__Heartbeat hb = PSL__HEARTBEAT__INIT;
    hb.inflight = atomic_load(&w->inflight);
    hb.invocations = atomic_load(&w->invocations);
    hb.errors = atomic_load(&w->errors);
    hb.kv_reads = st.gets;
    hb.kv_writes = st.puts + st.deletes;
    hb.kv_coalesced = st.coalesced;
    if (w->rp) {
        repl_stats rs;
        repl_get_stats(w->rp, &rs);
        hb.capsule_appends = rs.appends;
        hb.applied_seqno = rs.own_seq;
    }
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_HEARTBEAT;
    m.heartbeat = &hb;
    return chan_send_msg(c, &m);
}

/* ---- the client-facing channel (see worker.h; docs/client.md) ---- */

#define INLINE_MAX_NS 200000u    /* run inline while the function's recent mean run is below this */
#define FRONT_FLUSH_EVERY 256u   /* inline requests between two capsule appends under load */
#define FRONT_FLUSH_MS 2         /* async writes wait at most this long for their capsule append */
#define FRONT_PENDING_MAX 65536u /* pending writes past which the server thread appends itself */

/* What the server thread keeps between requests. */
typedef struct fstate {
    bool dirty;             /* inline runs wrote since the last capsule append */
    uint64_t dirty_ns;      /* since when */
    unsigned since;         /* requests since then */
    cdone *sync_h, *sync_t; /* sync replies of this group, waiting for the append */
    uint8_t *obuf;          /* packing buffer for replies */
    size_t ocap;
} fstate;

static void front_ring(wk *w) {
    front *f = &w->fr;
    pthread_mutex_lock(&f->bell_mu);
    if (f->bell && net_chan_send(f->bell, "", 0) != 0)
        wlog(w, "client doorbell: %s", net_chan_error(f->bell));
    pthread_mutex_unlock(&f->bell_mu);
}

/* Hand the finished client invocations first..last (linked, last->next NULL) to the server
 * thread. Any thread. Rings only when the queue was empty: a ring is pending otherwise. */
static void front_complete(wk *w, cdone *first, cdone *last) {
    front *f = &w->fr;
    pthread_mutex_lock(&f->mu);
    bool was_empty = f->done_h == NULL;
    if (f->done_t)
        f->done_t->next = first;
    else
        f->done_h = first;
    f->done_t = last;
    atomic_store(&f->ndone, 1);
    pthread_mutex_unlock(&f->mu);
    if (was_empty)
        front_ring(w);
}

static fstat *fstat_find(front *f, const char *name, bool add) {
    for (size_t i = 0; i < f->nstats; i++)
        if (strcmp(f->stats[i].name, name) == 0)
            return &f->stats[i];
    if (!add || f->nstats == FSTAT_MAX || strlen(name) >= sizeof f->stats[0].name)
        return NULL;
    fstat *s = &f->stats[f->nstats++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->mean_ns = UINT64_MAX;
    return s;
}

static void fstat_add(fstat *s, uint64_t ns) {
    s->mean_ns = s->mean_ns == UINT64_MAX ? ns : s->mean_ns - s->mean_ns / 8 + ns / 8;
}

static void front_send(wk *w, fstate *st, uint64_t peer, uint64_t req_id, ex_result *r) {
    Psl__ClientResult cr = PSL__CLIENT_RESULT__INIT;
    cr.req_id = req_id;
    cr.status = r->status;
    cr.exit_code = r->exit_code;
    cr.body.data = r->out;
    cr.body.len = r->out ? r->outlen : 0;
    cr.msg = r->msg;
    cr.ns = r->ns;
    size_t n = psl__client_result__get_packed_size(&cr);
    if (n > WORKER_CLIENT_MAX_MSG) {
        cr.status = ERR_LIMIT;
        cr.body.len = 0;
        snprintf(r->msg, sizeof r->msg, "response of %zu bytes exceeds the channel's limit",
                 r->outlen);
        n = psl__client_result__get_packed_size(&cr);
    }
    if (n > st->ocap) {
        st->ocap = n < 4096 ? 4096 : n;
        st->obuf = xrealloc(st->obuf, st->ocap);
    }
    psl__client_result__pack(&cr, st->obuf);
    int rc = net_server_send(w->fr.srv, peer, st->obuf, n);
    if (rc && rc != ERR_NOTFOUND) /* ERR_NOTFOUND: the client has gone */
        wlog(w, "cannot answer client %llu: %s", (unsigned long long)peer, err_str(rc));
}

/* Run @p fn on this thread, as an invocation thread would (locks left held are released). */
static void front_run(wk *w, const char *fn, const uint8_t *in, size_t len, ex_result *r) {
    t_function = fn;
    t_nheld = 0;
    ex_invoke(w->ex, fn, in, len, 0, r);
    while (t_nheld > 0) {
        wlog(w, "%s ended holding lock '%s': released for it", fn, t_held[t_nheld - 1]);
        svc_unlock(w, t_held[t_nheld - 1], strlen(t_held[t_nheld - 1]));
    }
    t_function = NULL;
    atomic_fetch_add(&w->invocations, 1);
    if (r->status || r->exit_code)
        atomic_fetch_add(&w->errors, 1);
}

/* Append the group's writes to the capsule; its sync replies go to the durability thread, or
 * out at once when every record appended so far is durable already (a group that wrote
 * nothing). */
static void front_flush(wk *w, fstate *st) {
    front *f = &w->fr;
    uint64_t seq = 0;
    int rc = 0;
    bool dirty = st->dirty;
    st->dirty = false;
    st->since = 0;
    if (!w->rp)
        return;
    if (!st->sync_h) {
        /* Async: the durability thread appends, so that encoding and sealing the record never
         * holds up the requests behind it; unless writes pile up faster than the capsule takes
         * them: then this thread appends too, waiting for room (cap_append_submit), so that the
         * clients wait instead of the worker's memory growing. */
        if (dirty && kvs_pending(w->kv) > FRONT_PENDING_MAX) {
            rc = repl_flush(w->rp, false, NULL);
            if (rc)
                wlog(w, "client writes not appended to the capsule: %s", err_str(rc));
            return;
        }
        if (dirty) {
            pthread_mutex_lock(&f->mu);
            f->append_req = true;
            pthread_cond_signal(&f->dcv);
            pthread_mutex_unlock(&f->mu);
        }
        return;
    }
    rc = repl_flush(w->rp, false, &seq);
    if (rc == 0 && seq <= atomic_load(&f->durable_seq)) {
        for (cdone *d = st->sync_h, *nx; d; d = nx) {
            nx = d->next;
            front_send(w, st, d->peer, d->req_id, &d->r);
            free(d->r.out);
            free(d);
        }
        st->sync_h = st->sync_t = NULL;
        return;
    }
    pthread_mutex_lock(&f->mu);
    if (f->dur_t)
        f->dur_t->next = st->sync_h;
    else
        f->dur_h = st->sync_h;
    f->dur_t = st->sync_t;
    pthread_cond_signal(&f->dcv);
    pthread_mutex_unlock(&f->mu);
    st->sync_h = st->sync_t = NULL;
}

/* Send what other threads finished. */
static void front_drain(wk *w, fstate *st) {
    front *f = &w->fr;
    if (!atomic_load(&f->ndone))
        return;
    pthread_mutex_lock(&f->mu);
    cdone *l = f->done_h;
    f->done_h = f->done_t = NULL;
    atomic_store(&f->ndone, 0);
    pthread_mutex_unlock(&f->mu);
    while (l) {
        cdone *nx = l->next;
        if (l->fn) {
            fstat *s = fstat_find(f, l->fn, l->r.status != ERR_NOTFOUND);
            if (s)
                fstat_add(s, l->r.ns);
            free(l->fn);
        }
        front_send(w, st, l->peer, l->req_id, &l->r);
        free(l->r.out);
        free(l);
        l = nx;
    }
}

static bool deploy_pending(wk *w, const char *fn) {
    pthread_mutex_lock(&w->dlock);
    bool p = w->npending && is_pending(w, fn);
    pthread_mutex_unlock(&w->dlock);
    return p;
}

static void front_request(wk *w, fstate *st, uint64_t peer, const uint8_t *msg, size_t len) {
    front *f = &w->fr;
    Psl__ClientInvoke *ci = psl__client_invoke__unpack(NULL, len, msg);
    if (!ci) {
        net_server_drop(f->srv, peer, "undecodable request (not a ClientInvoke)");
        return;
    }
    const char *fn = ci->function ? ci->function : "";
    fstat *s = fstat_find(f, fn, false);
    if (!s || s->mean_ns >= INLINE_MAX_NS || deploy_pending(w, fn)) {
        /* Unknown, long or still deploying: the invocation threads run it, so it cannot hold
         * up the other clients; the result comes back through front_complete. */
        job *j = xcalloc(1, sizeof *j);
        j->req_id = ci->req_id;
        j->fn = xstrdup(fn);
        j->len = ci->body.len;
        j->body = xmalloc(j->len ? j->len : 1);
        if (j->len)
            memcpy(j->body, ci->body.data, j->len);
        j->client = true;
        j->client_peer = peer;
        enqueue_job(w, j);
        psl__client_invoke__free_unpacked(ci, NULL);
        return;
    }
    ex_result r;
    front_run(w, fn, ci->body.data, ci->body.len, &r);
    fstat_add(s, r.ns);
    if (w->rp) {
        if (r.kv.wrote) {
            if (!st->dirty)
                st->dirty_ns = plat_now_ns();
            st->dirty = true;
        }
        /* Group commit: answered once the group's record is durable; at once when it wrote
         * nothing and read only durable data. */
        if (r.sync && !durable_already(w, &r)) {
            cdone *d = xcalloc(1, sizeof *d);
            d->peer = peer;
            d->req_id = ci->req_id;
            d->r = r;
            if (st->sync_t)
                st->sync_t->next = d;
            else
                st->sync_h = d;
            st->sync_t = d;
            psl__client_invoke__free_unpacked(ci, NULL);
            return;
        }
    }
    front_send(w, st, peer, ci->req_id, &r);
    free(r.out);
    psl__client_invoke__free_unpacked(ci, NULL);
}

static void *front_main(void *arg) {
    plat_thread_name("client-front");
    wk *w = arg;
    front *f = &w->fr;
    t_push = open_push(w);
    fstate st;
    memset(&st, 0, sizeof st);
    const uint64_t window = (uint64_t)FRONT_FLUSH_MS * 1000000u;
    while (!atomic_load(&f->stopping)) {
        front_drain(w, &st);
        /* A sync group goes as soon as no request is waiting (its clients wait for it); async
         * writes are appended in groups of up to FRONT_FLUSH_MS or FRONT_FLUSH_EVERY requests,
         * so that one capsule record carries many of them. */
        int wait = 200;
        uint64_t now = plat_now_ns();
        if (st.sync_h)
            wait = 0;
        else if (st.dirty)
            wait = now >= st.dirty_ns + window
                       ? 0
                       : (int)((st.dirty_ns + window - now + 999999u) / 1000000u);
        uint64_t peer = 0;
        uint8_t *msg = NULL;
        size_t len = 0;
        int rc = net_server_recv(f->srv, wait, &peer, &msg, &len);
        if (rc != 0) {
            if (st.sync_h || (st.dirty && plat_now_ns() >= st.dirty_ns + window))
                front_flush(w, &st);
            else if (rc != -ETIMEDOUT && rc != -EINTR)
                nanosleep(&(struct timespec){0, 10000000L}, NULL);
            continue;
        }
        if (len) /* empty: the doorbell (or a client's no-op) */
            front_request(w, &st, peer, msg, len);
        free(msg);
        if ((st.dirty || st.sync_h) && (++st.since >= FRONT_FLUSH_EVERY ||
                                        (st.dirty && plat_now_ns() >= st.dirty_ns + window)))
            front_flush(w, &st);
    }
    front_flush(w, &st); /* the durability thread answers what is left */
    front_drain(w, &st);
    free(st.obuf);
    zmq_close(t_push);
    t_push = NULL;
    return NULL;
}

/* Sync inline runs: wait until their group is durable, then hand the replies back. */
static void *front_durable(void *arg) {
    plat_thread_name("client-durable");
    wk *w = arg;
    front *f = &w->fr;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (!f->dur_h && !f->append_req && !atomic_load(&f->stopping))
            pthread_cond_wait(&f->dcv, &f->mu);
        cdone *l = f->dur_h, *t = f->dur_t;
        bool append = f->append_req;
        f->dur_h = f->dur_t = NULL;
        f->append_req = false;
        pthread_mutex_unlock(&f->mu);
        if (!l && append) {
            int rc = repl_flush(w->rp, false, NULL);
            if (rc)
                wlog(w, "client writes not appended to the capsule: %s", err_str(rc));
            continue;
        }
        if (!l)
            break;
        uint64_t seq = 0;
        int rc = repl_flush(w->rp, true, &seq);
        if (rc == 0 && seq > atomic_load(&f->durable_seq))
            atomic_store(&f->durable_seq, seq);
        for (cdone *d = l; rc && d; d = d->next)
            if (d->r.status == 0) {
                d->r.status = ERR_IO;
                snprintf(d->r.msg, sizeof d->r.msg, "writes not durable: %s", err_str(rc));
            }
        front_complete(w, l, t);
    }
    return NULL;
}

/* Open the client-facing server and its threads (after replication is up, so that every
 * write a client causes is replicated). @return 0 (also when disabled) or ERR_IO. */
static int front_open(wk *w, tee_enclave *t) {
    front *f = &w->fr;
    const char *ep = w->o->client_listen ? w->o->client_listen : "stream://127.0.0.1:0";
    if (strcmp(ep, "none") == 0)
        return 0;
    char why[300];
    if (w->o->client_keys) {
        if (tee_client_list_load(w->o->client_keys, &f->pol, why, sizeof why) != 0) {
            wlog(w, "client keys %s: %s", w->o->client_keys, why);
            return ERR_USAGE;
        }
    } else {
        f->pol = (tee_policy){.any_client_key = true};
    }
    tee_policy_for(t, false, &f->self_pol);
    /* The doorbell's own identity must pass the client policy too. */
    cr_sign_keypair(f->bell_pk, f->bell_sk);
    tee_policy_add_client(&f->pol, f->bell_pk);
    net_auth a = {.tee = t, .peer = &f->pol, .max_msg = WORKER_CLIENT_MAX_MSG, .name = w->name};
    int rc = net_server_open(w->zctx, ep, &a, &f->srv);
    if (rc) {
        wlog(w, "cannot serve clients on %s: %s", ep, err_str(rc));
        return ERR_IO;
    }
    if (pthread_create(&f->th, NULL, front_main, w) != 0)
        return ERR_IO;
    f->th_started = true;
    if (w->rp) {
        if (pthread_create(&f->dth, NULL, front_durable, w) != 0)
            return ERR_IO;
        f->dth_started = true;
    }
    /* The doorbell: other threads wake the server thread with an empty message. */
    net_auth ba = {.id_sk = f->bell_sk, .peer = &f->self_pol, .name = "client doorbell"};
    net_chan *bell = NULL;
    rc = net_chan_connect(w->zctx, net_server_endpoint(f->srv), &ba, &bell, why, sizeof why);
    if (rc) {
        wlog(w, "client doorbell: %s", why);
        return ERR_IO;
    }
    pthread_mutex_lock(&f->bell_mu);
    f->bell = bell;
    pthread_mutex_unlock(&f->bell_mu);
    wlog(w, "serving clients on %s (%s)", net_server_endpoint(f->srv),
         w->o->client_keys ? "only the identities listed in --client-keys" : "any client identity");
    return 0;
}

/* Stop accepting requests (the invocation threads may still complete some). */
static void front_stop(wk *w) {
    front *f = &w->fr;
    atomic_store(&f->stopping, true);
    if (f->th_started) {
        front_ring(w);
        pthread_join(f->th, NULL);
        f->th_started = false;
    }
}

/* After the invocation threads have ended: the durability thread, then everything else. */
static void front_close(wk *w) {
    front *f = &w->fr;
    front_stop(w);
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->dcv);
    pthread_mutex_unlock(&f->mu);
    if (f->dth_started)
        pthread_join(f->dth, NULL);
    pthread_mutex_lock(&f->bell_mu);
    net_chan_close(f->bell);
    f->bell = NULL;
    pthread_mutex_unlock(&f->bell_mu);
    net_server_close(f->srv);
    f->srv = NULL;
    for (cdone *l = f->done_h, *nx; l; l = nx) { /* clients that will not get an answer */
        nx = l->next;
        free(l->fn);
        free(l->r.out);
        free(l);
    }
    f->done_h = f->done_t = NULL;
    tee_policy_fini(&f->self_pol);
    tee_policy_fini(&f->pol);
    cr_memzero(f->bell_sk, sizeof f->bell_sk);
}

/* Serve one connection until it breaks or a stop is requested. */
static void serve(wk *w, net_chan *c, void *pull) {
    uint64_t next_hb = 0;
    unsigned beats = 0;
    while (!g_stop) {
        uint64_t now = plat_now_ns();
        if (now >= next_hb) {
            if (send_heartbeat(w, c) != 0)
                return;
            next_hb = now + (uint64_t)HEARTBEAT_MS * 1000000u;
            /* Batches of megabytes pass through many threads: glibc keeps what they free in
             * per-thread arenas (300 MB of a 680 MB worker after in-function YCSB A). */
            if (++beats % TRIM_EVERY == 0)
                plat_memory_trim();
        }
        zmq_pollitem_t items[2] = {{net_chan_socket(c), 0, ZMQ_POLLIN, 0},
                                   {pull, 0, ZMQ_POLLIN, 0}};
        long wait_ms = (long)((next_hb - now) / 1000000u) + 1;
        if (zmq_poll(items, 2, wait_ms) < 0 && errno != EINTR)
            return;
        if (items[1].revents & ZMQ_POLLIN) {
            for (;;) {
                zmq_msg_t zm;
                zmq_msg_init(&zm);
                if (zmq_msg_recv(&zm, pull, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&zm);
                    break;
                }
                int rc = net_chan_send(c, zmq_msg_data(&zm), zmq_msg_size(&zm));
                zmq_msg_close(&zm);
                if (rc != 0) {
                    wlog(w, "channel to the coordinator failed: %s", net_chan_error(c));
                    return;
                }
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (;;) {
                uint8_t *msg;
                size_t len;
                int rc = net_chan_recv(c, 0, &msg, &len);
                if (rc == -ETIMEDOUT)
                    break;
                if (rc != 0) {
                    wlog(w, "channel to the coordinator failed: %s", net_chan_error(c));
                    return;
                }
                dispatch(w, c, msg, len);
                free(msg);
            }
        }
    }
}

int worker_run(const worker_opts *o) {
    wk w;
    memset(&w, 0, sizeof w);
    w.o = o;
    if (o->name)
        snprintf(w.name, sizeof w.name, "%s", o->name);
    else
        snprintf(w.name, sizeof w.name, "worker-%llu", (unsigned long long)o->id);
    if (!o->coordinator || !o->policy || o->id == 0) {
        wlog(&w, "needs --coordinator, --policy and a non-zero --id");
        return ERR_USAGE;
    }
    tee_opts to = {.home = o->home};
    tee_enclave *t = NULL;
    int rc = tee_open(&to, &t);
    if (rc) {
        wlog(&w, "cannot open the enclave: %s", err_str(rc));
        return rc;
    }
    tee_policy pol;
    char why[256];
    if (tee_policy_load(o->policy, &pol, why, sizeof why) != 0) {
        wlog(&w, "bad policy %s: %s", o->policy, why);
        tee_close(t);
        return ERR_USAGE;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (tee_harden_process() != 0)
        wlog(&w, "warning: process hardening failed");

    w.zctx = zmq_ctx_new();
    w.kv = kvs_new(o->id);
    host_services svc = {
        .ud = &w, .lock = svc_lock, .unlock = svc_unlock, .log = svc_log, .publish = svc_publish};
    w.ex = ex_new(w.kv, &svc);
    pthread_mutex_init(&w.qlock, NULL);
    pthread_cond_init(&w.qcond, NULL);
    pthread_mutex_init(&w.wlock, NULL);
    pthread_cond_init(&w.wcond, NULL);
    pthread_mutex_init(&w.dlock, NULL);
    pthread_cond_init(&w.dcond, NULL);
    pthread_mutex_init(&w.fr.mu, NULL);
    pthread_cond_init(&w.fr.dcv, NULL);
    pthread_mutex_init(&w.fr.bell_mu, NULL);
    void *pull = zmq_socket(w.zctx, ZMQ_PULL);
    zmq_bind(pull, OUTBOX);
    unsigned nthreads = o->threads ? o->threads : 2;
    pthread_t *threads = xcalloc(nthreads, sizeof *threads);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_create(&threads[i], NULL, invoker, &w);
    pthread_t dthread;
    pthread_create(&dthread, NULL, deployer, &w);

    /* From here on the worker needs only sockets, its files and threads: anything else (exec,
     * fork, ptrace, mount...) kills it. */
    if (!o->no_sandbox && plat_sanitizer_build()) {
        wlog(&w, "sanitizer build: the seccomp sandbox stays off (the leak checker forks)");
    } else if (!o->no_sandbox) {
        rc = tee_sandbox_install(TEE_SB_NET | TEE_SB_FILES | TEE_SB_THREADS);
        if (rc)
            wlog(&w, "warning: cannot install the seccomp sandbox: %s", err_str(rc));
    }
    net_auth a = {.tee = t, .peer = &pol, .name = w.name};
    unsigned backoff_ms = 50, failures = 0;
    while (!g_stop) {
        net_chan *c = NULL;
        rc = net_chan_connect(w.zctx, o->coordinator, &a, &c, why, sizeof why);
        if (rc != 0) {
            /* Say why on the first failure and then every 30th, not on every retry. */
            if (failures++ % 30 == 0)
                wlog(&w, "cannot connect to the coordinator at %s: %s", o->coordinator,
                     rc == ERR_AUTH ? why : err_str(rc));
            struct timespec ts = {0, (long)backoff_ms * 1000000L};
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms < 1000 ? backoff_ms * 2 : 1000;
            continue;
        }
        backoff_ms = 50;
        failures = 0;
        if (o->storage && !w.rp) {
            /* The deployment's keys come from the key manager, to this attested worker only. */
            km_secrets *sec = NULL;
            const char *dep = o->deployment ? o->deployment : "default";
            rc = km_fetch(c, dep, w.name, &sec, why, sizeof why);
            if (rc) {
                wlog(&w, "key manager refused deployment '%s': %s", dep,
                     rc == ERR_AUTH ? why : err_str(rc));
                net_chan_close(c);
                rc = ERR_AUTH;
                break;
            }
            repl_opts ro = {.writer = o->id,
                            .dir = o->dir,
                            .storage = o->storage,
                            .fwd_pub = o->fwd_pub,
                            .fwd_sub = o->fwd_sub,
                            .data_root = sec->capsule_key,
                            .sign_seed = sec->sign_seed,
                            .zctx = w.zctx,
                            .kv = w.kv,
                            .name = w.name,
                            .tee = o->journal_counter ? t : NULL,
                            .checkpoint_every = o->checkpoint_every,
                            .big_checkpoint_ms = o->big_checkpoint_ms,
                            .big_checkpoint_log = o->big_checkpoint_log};
            rc = repl_open(&ro, &w.rp, why, sizeof why);
            km_secrets_free(sec);
            if (rc) {
                wlog(&w, "cannot start replication: %s", why);
                net_chan_close(c);
                break;
            }
            kvs_stats ks;
            kvs_get_stats(w.kv, &ks);
            repl_stats rs;
            repl_get_stats(w.rp, &rs);
            wlog(&w,
                 "state recovered from storage: %llu keys (%llu capsules replayed from a "
                 "checkpoint)",
                 (unsigned long long)ks.keys, (unsigned long long)rs.from_checkpoint);
        }
        if (!w.fr.srv && !w.fr.th_started && front_open(&w, t) != 0) {
            net_chan_close(c);
            rc = ERR_IO;
            break;
        }
        if (send_hello(&w, c) == 0) {
            wlog(&w, "connected to %s", o->coordinator);
            serve(&w, c, pull);
        }
        net_chan_close(c);
    }

    front_stop(&w); /* no new client requests; the invocation threads finish theirs */
    pthread_mutex_lock(&w.qlock);
    w.stopping = true;
    pthread_cond_broadcast(&w.qcond);
    pthread_mutex_unlock(&w.qlock);
    pthread_mutex_lock(&w.wlock);
    pthread_cond_broadcast(&w.wcond);
    pthread_mutex_unlock(&w.wlock);
    pthread_mutex_lock(&w.dlock);
    pthread_cond_broadcast(&w.dcond);
    pthread_mutex_unlock(&w.dlock);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    pthread_join(dthread, NULL);
    front_close(&w);
    for (djob *j = w.dhead, *nx; j; j = nx) {
        nx = j->next;
        if (j->msg)
            psl__cluster_msg__free_unpacked(j->msg, NULL);
        free(j);
    }
    for (size_t i = 0; i < w.npending; i++)
        free(w.pending[i]);
    free(w.pending);
    free(threads);
    repl_close(w.rp);
    zmq_close(pull);
    ex_free(w.ex);
    kvs_free(w.kv);
    zmq_ctx_term(w.zctx);
    tee_policy_fini(&pol);
    tee_close(t);
    wlog(&w, "stopped");
    return rc == ERR_AUTH || (rc && !g_stop) ? rc : 0;
}

int forwarder_run(const char *xsub, const char *xpub) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    void *ctx = zmq_ctx_new();
    void *in = zmq_socket(ctx, ZMQ_XSUB), *out = zmq_socket(ctx, ZMQ_XPUB);
    if (zmq_bind(in, xsub) != 0 || zmq_bind(out, xpub) != 0) {
        fprintf(stderr, "psl: forwarder: cannot bind %s / %s: %s\n", xsub, xpub,
                zmq_strerror(errno));
        zmq_close(in);
        zmq_close(out);
        zmq_ctx_term(ctx);
        return ERR_IO;
    }
    fprintf(stderr, "forwarder: XSUB %s -> XPUB %s (untrusted relay of encrypted records)\n", xsub,
            xpub);
    /* A steerable proxy would need a control socket; polling both sides ourselves lets a signal
     * end the loop. */
    while (!g_stop) {
        zmq_pollitem_t items[2] = {{in, 0, ZMQ_POLLIN, 0}, {out, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 200) < 0)
            continue;
        for (int k = 0; k < 2; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            void *from = k ? out : in, *to = k ? in : out;
            for (;;) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, from, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                int more = zmq_msg_more(&m);
                zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0);
            }
        }
    }
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    return 0;
}
