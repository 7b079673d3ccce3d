/* coord internals shared by coord.c (I/O thread), registry.c, locks.c and gateway.c.
 * Invariant: every field of struct coord below `mu` is read or written only with mu held; only
 * the I/O thread touches the net_server and the key manager. */
#ifndef PSL_COORD_COORD_INT_H
#define PSL_COORD_COORD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/coord.h"
#include "coord/keymgr.h"
#include "net/net.h"
#include "tee/tee.h"

#define CO_NAME_MAX 64
/* Largest module accepted by deploy: one Deploy message must fit in what a worker's channel
 * accepts by default (NET_MAX_MSG_DEFAULT); a larger one would close the worker's channel. */
#define CO_MAX_MODULE (NET_MAX_MSG_DEFAULT - 4096u)
#define CO_MAX_MSG (64u << 20) /* largest channel message (Welcome carries every module) */

typedef struct co_limits {
    uint32_t timeout_ms, max_memory_mb, max_request, max_response;
    bool sync;
} co_limits;

void co_limits_default(co_limits *l);

/* ---- registry (registry.c) ---- */
typedef struct co_fn {
    char name[CO_NAME_MAX + 1];
    uint8_t hash[32];
    co_limits lim;
    uint8_t *code;
    size_t len;
    uint64_t version;     /* deploy counter of this name */
    uint64_t deployed_ns; /* wall clock */
    /* gateway statistics */
    uint64_t invocations, errors;
    /* log ring */
    char **log;
    uint32_t log_cap, log_head, log_n;
    struct co_fn *next;
} co_fn;

bool co_name_ok(const char *name);
co_fn *co_fn_find(co_fn *list, const char *name);
/** Write @p f's code and metadata under dir/functions (fsync + rename). */
int co_registry_save(const char *dir, const co_fn *f) WARN_UNUSED;
int co_registry_delete(const char *dir, const char *name);
/** Load every function saved under dir/functions; prepends them to *list. */
int co_registry_load(const char *dir, co_fn **list, uint32_t log_lines) WARN_UNUSED;
co_fn *co_fn_new(const char *name, const uint8_t *code, size_t len, const co_limits *lim,
                 uint32_t log_lines);
void co_fn_free(co_fn *f);
void co_fn_log(co_fn *f, const char *line);

/* ---- locks (locks.c) ---- */
typedef struct co_vec {
    uint64_t writer, seqno;
} co_vec;

typedef struct co_waiter {
    uint64_t peer;     /* the worker's session */
    uint64_t lock_req; /* the worker's request id */
    struct co_waiter *next;
} co_waiter;

typedef struct co_lock {
    char *name;
    bool held;
    co_waiter holder;
    uint64_t granted_ns;
    co_waiter *head, *tail; /* FIFO of waiters */
    co_vec *vec;
    size_t nvec;
    uint64_t grants, forced; /* statistics */
    struct co_lock *next;
} co_lock;

/* A grant the caller must send (LockGranted to peer). */
typedef struct co_grant {
    uint64_t peer, lock_req;
    const co_lock *lock;
} co_grant;

co_lock *co_lock_get(co_lock **list, const char *name);
/** Queue (peer, lock_req) on @p l. @return true when it was granted at once (*g filled). */
bool co_lock_acquire(co_lock *l, uint64_t peer, uint64_t lock_req, uint64_t now, co_grant *g);
/** Release by @p peer, merging @p v. @return 1 released and granted to the next (*g),
 * 0 released with nobody waiting, -1 @p peer did not hold it (late release; v still merged). */
int co_lock_release(co_lock *l, uint64_t peer, const co_vec *v, size_t n, uint64_t now,
                    co_grant *g);
/** Force the holder out (lease expiry or dead worker). Same return values as release. */
int co_lock_revoke(co_lock *l, uint64_t now, co_grant *g);
/** Drop @p peer's waiters from @p l. @return how many. */
size_t co_lock_drop_waiters(co_lock *l, uint64_t peer);
void co_locks_free(co_lock *list);
/** Lock vectors at rest (dir/locks.json, written atomically): after a coordinator restart an
 * acquirer still learns what earlier holders published. */
int co_locks_save(const char *dir, const co_lock *list) WARN_UNUSED;
/** @return 0 (also when there is no file), ERR_IO, ERR_CORRUPT. */
int co_locks_load(const char *dir, co_lock **list) WARN_UNUSED;

/* ---- workers and requests (coord.c) ---- */
typedef struct co_worker {
    uint64_t peer;
    uint64_t id;
    char name[64];
    uint32_t threads;
    bool alive;
    uint64_t joined_ns, last_ns;
    uint32_t inflight;    /* requests the coordinator has outstanding on it */
    uint64_t sent;        /* invocations scheduled to it */
    uint32_t hb_inflight; /* from its last heartbeat */
    uint64_t hb_invocations, hb_errors, hb_kv_reads, hb_kv_writes, hb_appends, hb_seqno;
    uint64_t hb_kv_coalesced;
    /* Its client-facing channel (Hello) and what its report proved at our handshake: what a
     * client should demand of it (GET /endpoints). */
    char client_ep[256];
    char backend[16];
    uint8_t measurement[32], platform_key[32];
    bool attested;
    struct co_worker *next;
} co_worker;

enum co_kind { CO_INVOKE, CO_DEPLOY, CO_REMOVE, CO_KV, CO_STOP };

typedef struct co_req {
    enum co_kind kind;
    /* input (owned by the submitting thread until done) */
    char name[CO_NAME_MAX + 1];
    const uint8_t *body;
    size_t blen;
    co_limits lim;
    int kv_op;
    const uint8_t *key;
    size_t klen;
    /* output: set by the I/O thread before done */
    int http;         /* HTTP status */
    const char *code; /* error code word (static), NULL on success */
    char *msg;        /* malloc'd message (errors) */
    uint8_t *out;     /* malloc'd response body */
    size_t outlen;
    uint64_t worker; /* worker id that ran it */
    bool done;
    pthread_cond_t cv;
    /* I/O thread bookkeeping */
    uint64_t req_id, peer, deadline_ns;
    uint64_t *wait_peers; /* deploy: workers whose DeployResult is still expected */
    uint32_t nwait;
    co_fn *fn_new, *fn_old; /* deploy: the new version, and the one it replaces */
    bool fn_replaced;
    char *deploy_err; /* deploy: first refusal by a worker */
    struct co_req *next, *prev;
} co_req;

#define CO_LAT_BUCKETS 14

typedef struct coord {
    co_opts o;
    tee_enclave *tee;
    tee_policy wpol;     /* worker policy + the doorbell identity */
    tee_policy self_pol; /* accepts this coordinator (the doorbell checks its server) */
    net_server *srv;
    km *km;
    uint8_t bell_pk[32], bell_sk[64];
    net_chan *bell;
    pthread_mutex_t bell_mu;
    pthread_t io;
    bool io_started;
    void *mhd;
    char *token; /* owner token required on the /system/ paths (NULL: none); wiped at exit */

    pthread_mutex_t mu;
    bool stopping;
    co_fn *fns;
    co_worker *workers;
    co_lock *locks;
    co_req *qhead, *qtail; /* submitted, not yet taken by the I/O thread */
    co_req *pending;       /* sent to workers, waiting for their answer */
    uint64_t next_req;
    /* gateway metrics */
    uint64_t http_requests, invocations, inv_errors;
    uint64_t lat_bucket[CO_LAT_BUCKETS + 1];
    double lat_sum;
    uint64_t lock_grants, lock_forced, workers_died;
    bool locks_dirty; /* a vector changed since locks.json was written */
} coord;

extern const double co_lat_bounds[CO_LAT_BUCKETS];

/** Hand @p r to the I/O thread and wait until it is done. */
void co_submit(coord *c, co_req *r);
void co_req_fini(co_req *r);
uint32_t co_live_workers(coord *c); /* mu held */

/* ---- gateway (gateway.c) ---- */
int co_gateway_start(coord *c) WARN_UNUSED;
void co_gateway_stop(coord *c);

#endif
