/* The invocation executor; see exec.h. Invariant: a pooled instance in a function's idle list is
 * always in its instantiation state (reset), and belongs to that function's current module. */
#include "worker/exec.h"

#include "base/base.h"
#include "base/err.h"
#include "base/map.h"
#include "crypto/crypto.h"
#include "platform/platform.h"
#include "abi/psl_abi.h"
#include "wasm/wasi.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_MAX_DEPTH 8
#define EX_MAX_ASYNC 64

typedef struct fn fn;
typedef struct pinst pinst;

struct fn {
    char *name;
    wasm_module *mod;
    ex_limits lim;
    uint8_t hash[32];
    atomic_int refs; /* the registry's, plus one per running invocation */
    pthread_mutex_t lock;
    pinst **idle;
    uint32_t nidle;
    executor *ex;
};

struct pinst {
    fn *f;
    wasm_store *s;
    wasm_instance *inst;
    wasm_func *start;
    wasi_ctx *wasi;
    host_ctx host;
    uint32_t depth; /* nesting level of the running invocation */
};

struct executor {
    kvs *kv;
    host_services svc;
    pthread_rwlock_t reg_lock;
    map reg; /* name -> fn */
    pthread_mutex_t async_lock;
    pthread_cond_t async_done;
    int async_running;
};

void ex_limits_default(ex_limits *l) {
    l->timeout_ms = 10000;
    l->max_memory_mb = 256;
    l->max_request = 8u << 20;
    l->max_response = 8u << 20;
    l->max_pool = 16;
    l->sync = false;
}

static void msgf(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *msg, size_t len, const char *fmt, ...) {
    if (!msg || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

/* ---- instances ---- */

static void pinst_free(pinst *p) {
    if (!p)
        return;
    wasm_store_free(p->s);
    wasi_free(p->wasi);
    free(p);
}

static int host_invoke(void *ud, const char *name, size_t nlen, const uint8_t *in, size_t inlen,
                       bool async, uint8_t **out, size_t *outlen);

static int pi_lock(void *ud, const char *name, size_t len) {
    const host_services *svc = &((pinst *)ud)->f->ex->svc;
    return svc->lock(svc->ud, name, len);
}

static int pi_unlock(void *ud, const char *name, size_t len) {
    const host_services *svc = &((pinst *)ud)->f->ex->svc;
    return svc->unlock(svc->ud, name, len);
}

static void pi_log(void *ud, const char *msg, size_t len) {
    const host_services *svc = &((pinst *)ud)->f->ex->svc;
    svc->log(svc->ud, msg, len);
}

static int pinst_new(fn *f, pinst **out, char *msg, size_t msglen) {
    *out = NULL;
    pinst *p = xcalloc(1, sizeof *p);
    p->f = f;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.timeout_ns = (uint64_t)f->lim.timeout_ms * 1000000u;
    cfg.max_memory_bytes = (uint64_t)f->lim.max_memory_mb << 20;
    p->s = wasm_store_new(&cfg);
    const char *argv[] = {f->name};
    wasi_config wc = {
        .argc = 1,
        .argv = argv,
        .in = {.kind = WASI_IO_BUFFER},
        .out = {.kind = WASI_IO_BUFFER, .cap = (size_t)f->lim.max_response + 1},
        .err = {.kind = WASI_IO_BUFFER, .cap = 64 * 1024},
    };
    p->wasi = wasi_new(&wc);
    /* The services get this instance as ud; the trampolines pass the worker's own ud on. */
    p->host.kv = f->ex->kv;
    p->host.svc.ud = p;
    p->host.svc.invoke = host_invoke;
    p->host.svc.lock = f->ex->svc.lock ? pi_lock : NULL;
    p->host.svc.unlock = f->ex->svc.unlock ? pi_unlock : NULL;
    p->host.svc.log = f->ex->svc.log ? pi_log : NULL;

    uint32_t n = wasm_module_num_imports(f->mod);
    wasm_extern *imps = xcalloc(n ? n : 1, sizeof *imps);
    wasm_error err = {.offset = SIZE_MAX};
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        rc = wasi_resolve_import(p->wasi, p->s, f->mod, i, &imps[i], &err);
        if (rc == ERR_NOTFOUND)
            rc = host_resolve_import(&p->host, p->s, f->mod, i, &imps[i], &err);
        if (rc == ERR_NOTFOUND) {
            const char *mod, *name;
            wasm_module_import(f->mod, i, &mod, &name, NULL);
            snprintf(err.msg, sizeof err.msg,
                     "unknown import %s.%s (functions may import wasi_snapshot_preview1 and psl)",
                     mod, name);
            rc = ERR_UNLINKABLE;
        }
    }
    if (!rc)
        rc = wasm_instance_new(p->s, f->mod, imps, n, &p->inst, &err);
    free(imps);
    if (rc) {
        msgf(msg, msglen, "%s", err.msg);
        pinst_free(p);
        return rc == ERR_EXIT ? ERR_TRAP : rc;
    }
    wasm_extern e;
    if (wasm_instance_export(p->inst, "_start", &e) != 0 || e.kind != WASM_EXTERN_FUNC ||
        wasm_func_type(e.u.func).nparams != 0 || wasm_func_type(e.u.func).nresults != 0) {
        msgf(msg, msglen, "the module exports no _start function: build it as a WASI command");
        pinst_free(p);
        return ERR_INVALID;
    }
    p->start = e.u.func;
    *out = p;
    return 0;
}

/* ---- registry ---- */

static void fn_unref(fn *f) {
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < f->nidle; i++)
        pinst_free(f->idle[i]);
    free(f->idle);
    pthread_mutex_destroy(&f->lock);
    wasm_module_free(f->mod);
    free(f->name);
    free(f);
}

static fn *fn_get(executor *ex, const char *name) {
    pthread_rwlock_rdlock(&ex->reg_lock);
    fn *f = map_get(&ex->reg, name, strlen(name));
    if (f)
        atomic_fetch_add(&f->refs, 1);
    pthread_rwlock_unlock(&ex->reg_lock);
    return f;
}

executor *ex_new(kvs *kv, const host_services *svc) {
    executor *ex = xcalloc(1, sizeof *ex);
    ex->kv = kv;
    if (svc)
        ex->svc = *svc;
    pthread_rwlock_init(&ex->reg_lock, NULL);
    map_init(&ex->reg);
    pthread_mutex_init(&ex->async_lock, NULL);
    pthread_cond_init(&ex->async_done, NULL);
    return ex;
}

void ex_free(executor *ex) {
    if (!ex)
        return;
    pthread_mutex_lock(&ex->async_lock);
    while (ex->async_running)
        pthread_cond_wait(&ex->async_done, &ex->async_lock);
    pthread_mutex_unlock(&ex->async_lock);
    size_t it = 0;
    fn *f;
    while ((f = map_next(&ex->reg, &it)) != NULL)
        fn_unref(f);
    map_fini(&ex->reg);
    pthread_rwlock_destroy(&ex->reg_lock);
    pthread_mutex_destroy(&ex->async_lock);
    pthread_cond_destroy(&ex->async_done);
    free(ex);
}

static bool valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int ex_deploy(executor *ex, const char *name, const uint8_t *wasm, size_t len,
              const ex_limits *lim, char *msg, size_t msglen) {
    if (!valid_name(name)) {
        msgf(msg, msglen, "bad function name '%s': use 1-64 of [A-Za-z0-9._-]", name);
        return ERR_USAGE;
    }
    fn *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->ex = ex;
    if (lim)
        f->lim = *lim;
    else
        ex_limits_default(&f->lim);
    atomic_init(&f->refs, 1);
    pthread_mutex_init(&f->lock, NULL);
    cr_hash(f->hash, wasm, len);
    wasm_error err = {.offset = SIZE_MAX};
    int rc = wasm_module_load(wasm, len, &f->mod, &err);
    if (rc) {
        if (err.offset != SIZE_MAX)
            msgf(msg, msglen, "%s module: %s at offset %#zx",
                 rc == ERR_MALFORMED ? "malformed" : "invalid", err.msg, err.offset);
        else
            msgf(msg, msglen, "%s", err.msg);
        fn_unref(f);
        return rc;
    }
    /* Instantiate once now: unlinkable or trapping modules are refused at deploy time. */
    pinst *p;
    rc = pinst_new(f, &p, msg, msglen);
    if (rc) {
        fn_unref(f);
        return rc;
    }
    f->idle = xcalloc(f->lim.max_pool ? f->lim.max_pool : 1, sizeof *f->idle);
    f->idle[f->nidle++] = p;
    pthread_rwlock_wrlock(&ex->reg_lock);
    fn *old = map_put(&ex->reg, f->name, strlen(f->name), f);
    pthread_rwlock_unlock(&ex->reg_lock);
    if (old)
        fn_unref(old);
    return 0;
}

int ex_remove(executor *ex, const char *name) {
    pthread_rwlock_wrlock(&ex->reg_lock);
    fn *f = map_del(&ex->reg, name, strlen(name));
    pthread_rwlock_unlock(&ex->reg_lock);
    if (!f)
        return ERR_NOTFOUND;
    fn_unref(f);
    return 0;
}

void ex_list(executor *ex,
             void (*cb)(void *ud, const char *name, const uint8_t hash[32], const ex_limits *lim),
             void *ud) {
    pthread_rwlock_rdlock(&ex->reg_lock);
    size_t it = 0;
    fn *f;
    while ((f = map_next(&ex->reg, &it)) != NULL)
        cb(ud, f->name, f->hash, &f->lim);
    pthread_rwlock_unlock(&ex->reg_lock);
}

/* ---- invocation ---- */

static void run(executor *ex, fn *f, const uint8_t *in, size_t inlen, uint32_t depth,
                ex_result *res) {
    (void)ex;
    if (inlen > f->lim.max_request) {
        res->status = ERR_LIMIT;
        msgf(res->msg, sizeof res->msg, "request of %zu bytes exceeds the limit of %u", inlen,
             f->lim.max_request);
        return;
    }
    res->sync = f->lim.sync;
    pinst *p = NULL;
    pthread_mutex_lock(&f->lock);
    if (f->nidle)
        p = f->idle[--f->nidle];
    pthread_mutex_unlock(&f->lock);
    if (!p) {
        int rc = pinst_new(f, &p, res->msg, sizeof res->msg);
        if (rc) {
            res->status = rc;
            return;
        }
    }
    uint64_t t0 = plat_now_ns();
    wasi_reset(p->wasi, in, inlen);
    if (f->lim.timeout_ms)
        wasi_set_deadline(p->wasi, t0 + (uint64_t)f->lim.timeout_ms * 1000000u);
    p->depth = depth;
    int rc = wasm_call(p->s, p->start, NULL, NULL);
    res->ns = plat_now_ns() - t0;
    size_t olen;
    const uint8_t *o = wasi_captured(p->wasi, 1, &olen);
    if (rc == 0 || rc == ERR_EXIT) {
        res->exit_code = rc == ERR_EXIT ? wasm_store_exit_code(p->s) : 0;
        if (olen > f->lim.max_response) {
            res->status = ERR_LIMIT;
            msgf(res->msg, sizeof res->msg, "response exceeds the limit of %u bytes",
                 f->lim.max_response);
        } else {
            res->out = xmalloc(olen ? olen : 1);
            if (olen)
                memcpy(res->out, o, olen);
            res->outlen = olen;
            if (res->exit_code) {
                size_t elen;
                const uint8_t *e = wasi_captured(p->wasi, 2, &elen);
                msgf(res->msg, sizeof res->msg, "exit status %d%s%.*s", res->exit_code,
                     elen ? ": " : "", (int)(elen > 200 ? 200 : elen), e ? (const char *)e : "");
            }
        }
    } else {
        res->status = ERR_TRAP;
        msgf(res->msg, sizeof res->msg, "%s", wasm_store_trap_msg(p->s));
    }
    /* Back to the pool in instantiation state, or dropped. */
    wasm_error err;
    if (wasm_instance_reset(p->inst, &err) != 0) {
        pinst_free(p);
        return;
    }
    pthread_mutex_lock(&f->lock);
    if (f->nidle < f->lim.max_pool) {
        f->idle[f->nidle++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&f->lock);
    pinst_free(p);
}

void ex_invoke(executor *ex, const char *name, const uint8_t *in, size_t inlen, uint32_t depth,
               ex_result *res) {
    memset(res, 0, sizeof *res);
    fn *f = fn_get(ex, name);
    if (!f) {
        res->status = ERR_NOTFOUND;
        msgf(res->msg, sizeof res->msg, "function '%s' is not deployed", name);
        return;
    }
    run(ex, f, in, inlen, depth, res);
    fn_unref(f);
}

/* ---- nested invocations (the psl.invoke host service) ---- */

typedef struct async_call {
    executor *ex;
    char *name;
    uint8_t *in;
    size_t inlen;
    uint32_t depth;
} async_call;

static void *async_main(void *arg) {
    async_call *a = arg;
    ex_result r;
    ex_invoke(a->ex, a->name, a->in, a->inlen, a->depth, &r);
    free(r.out);
    executor *ex = a->ex;
    free(a->name);
    free(a->in);
    free(a);
    pthread_mutex_lock(&ex->async_lock);
    ex->async_running--;
    pthread_cond_broadcast(&ex->async_done);
    pthread_mutex_unlock(&ex->async_lock);
    return NULL;
}

static int host_invoke(void *ud, const char *name, size_t nlen, const uint8_t *in, size_t inlen,
                       bool async, uint8_t **out, size_t *outlen) {
    pinst *p = ud;
    executor *ex = p->f->ex;
    if (p->depth + 1 >= EX_MAX_DEPTH)
        return PSL_EDEPTH;
    if (nlen == 0 || nlen > 64)
        return PSL_ENOFUNC;
    char fname[65];
    memcpy(fname, name, nlen);
    fname[nlen] = 0;
    if (async) {
        fn *f = fn_get(ex, fname);
        if (!f)
            return PSL_ENOFUNC;
        fn_unref(f);
        pthread_mutex_lock(&ex->async_lock);
        if (ex->async_running >= EX_MAX_ASYNC) {
            pthread_mutex_unlock(&ex->async_lock);
            return PSL_EUNAVAIL;
        }
        ex->async_running++;
        pthread_mutex_unlock(&ex->async_lock);
        async_call *a = xcalloc(1, sizeof *a);
        a->ex = ex;
        a->name = xstrdup(fname);
        a->in = xmalloc(inlen ? inlen : 1);
        memcpy(a->in, in, inlen);
        a->inlen = inlen;
        a->depth = p->depth + 1;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, async_main, a);
        pthread_attr_destroy(&attr);
        if (rc) {
            free(a->name);
            free(a->in);
            free(a);
            pthread_mutex_lock(&ex->async_lock);
            ex->async_running--;
            pthread_mutex_unlock(&ex->async_lock);
            return PSL_EUNAVAIL;
        }
        return 0;
    }
    ex_result r;
    ex_invoke(ex, fname, in, inlen, p->depth + 1, &r);
    if (r.status == ERR_NOTFOUND)
        return PSL_ENOFUNC;
    if (r.status || r.exit_code) {
        free(r.out);
        return PSL_EFAILED;
    }
    *out = r.out;
    *outlen = r.outlen;
    return 0;
}
