/* The invocation executor; see exec.h. Invariant: a pooled instance in a function's idle list is
 * always in its instantiation state (reset), and belongs to that function's current module.
 * A native function (an ELF shared object, sdk/c/psl_native.h) has no module and no pool: its
 * handler is called directly, with a psl_native_api whose functions mirror src/host. */
#include "worker/exec.h"

#include "base/base.h"
#include "base/err.h"
#include "base/map.h"
#include "crypto/crypto.h"
#include "platform/platform.h"
#include "abi/psl_abi.h"
#include "sdk/c/psl_native.h"
#include "wasm/wasi.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EX_MAX_DEPTH 8
#define EX_MAX_ASYNC 64

typedef struct fn fn;
typedef struct pinst pinst;

struct fn {
    char *name;
    wasm_module *mod;          /* NULL for a native function */
    void *so;                  /* dlopen handle of a native function */
    psl_native_main_fn native; /* its entry point */
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
static int nested_invoke(executor *ex, uint32_t depth, const char *name, size_t nlen,
                         const uint8_t *in, size_t inlen, bool async, uint8_t **out,
                         size_t *outlen);

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

static int pi_publish(void *ud) {
    const host_services *svc = &((pinst *)ud)->f->ex->svc;
    return svc->publish(svc->ud);
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
    p->host.svc.publish = f->ex->svc.publish ? pi_publish : NULL;

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
    if (f->so)
        dlclose(f->so);
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

/* Publish f under its name, replacing (and unreferencing) an older function of that name. */
static int fn_register(executor *ex, fn *f) {
    pthread_rwlock_wrlock(&ex->reg_lock);
    fn *old = map_put(&ex->reg, f->name, strlen(f->name), f);
    pthread_rwlock_unlock(&ex->reg_lock);
    if (old)
        fn_unref(old);
    return 0;
}

/* Load a native function: the bytes go to a fresh file in a private (0700) directory, which is
 * dlopen()ed with RTLD_LOCAL (its symbols never serve other objects) and removed at once; the
 * mapping keeps the code. Every deploy gets its own file, so a redeploy loads a new copy. */
static int native_load(fn *f, const uint8_t *so, size_t len, char *msg, size_t msglen) {
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/psl-native-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        msgf(msg, msglen, "native function: cannot create a private directory in %s: %s",
             tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
        return ERR_IO;
    }
    snprintf(path, sizeof path, "%s/%s.so", dir, f->name);
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500);
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, so + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (fd < 0 || off < len || close(fd) != 0) {
        msgf(msg, msglen, "native function: cannot write %s: %s", path, strerror(errno));
        rc = ERR_IO;
        if (fd >= 0 && off < len)
            close(fd);
        goto done;
    }
    f->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!f->so) {
        const char *e = dlerror();
        msgf(msg, msglen, "native function: not a loadable shared object: %s", e ? e : "dlopen");
        rc = ERR_INVALID;
        goto done;
    }
    /* POSIX leaves object-to-function pointer conversion to the platform; dlsym relies on it. */
    void *sym = dlsym(f->so, PSL_NATIVE_ENTRY);
    if (!sym) {
        msgf(msg, msglen, "native function: the shared object exports no %s (sdk/c/psl_native.h)",
             PSL_NATIVE_ENTRY);
        rc = ERR_UNLINKABLE;
        goto done;
    }
    memcpy(&f->native, &sym, sizeof f->native);
done:
    unlink(path);
    rmdir(dir);
    return rc;
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
    static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};
    if (len >= sizeof elf_magic && memcmp(wasm, elf_magic, sizeof elf_magic) == 0) {
        int nrc = native_load(f, wasm, len, msg, msglen);
        if (nrc) {
            fn_unref(f);
            return nrc;
        }
        return fn_register(ex, f);
    }
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
    return fn_register(ex, f);
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

/* ---- native functions ---- */

typedef struct ncall {
    fn *f;
    uint32_t depth;
    uint8_t *out, *err;
    size_t outlen, outcap, errlen;
    bool overflow; /* the handler wrote past max_response */
    kvs_obs obs;   /* its reads and writes (ex_result.kv) */
} ncall;

#define NATIVE_MAX_STDERR (64 * 1024)

static int n_get(void *ctx, const void *key, size_t klen, void *buf, size_t cap) {
    ncall *c = ctx;
    kvs *kv = c->f->ex->kv;
    if (klen > PSL_MAX_KEY)
        return PSL_ETOOBIG;
    if (!key || (!buf && cap))
        return PSL_EFAULT;
    if (!kv)
        return PSL_EUNAVAIL;
    size_t vlen;
    if (kvs_get_obs(kv, key, klen, buf, cap, &vlen, &c->obs) == ERR_NOTFOUND)
        return PSL_ENOTFOUND;
    return (int)vlen; /* values are at most PSL_MAX_VALUE bytes */
}

static int n_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    kvs *kv = ((ncall *)ctx)->f->ex->kv;
    if (klen > PSL_MAX_KEY || vlen > PSL_MAX_VALUE)
        return PSL_ETOOBIG;
    if (!key || (!val && vlen))
        return PSL_EFAULT;
    if (!kv)
        return PSL_EUNAVAIL;
    ((ncall *)ctx)->obs.wrote = true;
    return kvs_put(kv, key, klen, val, vlen) == 0 ? PSL_OK : PSL_ETOOBIG;
}

static int n_del(void *ctx, const void *key, size_t klen) {
    kvs *kv = ((ncall *)ctx)->f->ex->kv;
    if (klen > PSL_MAX_KEY)
        return PSL_ETOOBIG;
    if (!key)
        return PSL_EFAULT;
    if (!kv)
        return PSL_EUNAVAIL;
    ((ncall *)ctx)->obs.wrote = true;
    return kvs_delete(kv, key, klen) == 0 ? PSL_OK : PSL_ETOOBIG;
}

static int n_lock_common(void *ctx, const char *name, size_t nlen, bool acquire) {
    const host_services *svc = &((ncall *)ctx)->f->ex->svc;
    if (!name)
        return PSL_EFAULT;
    if (nlen == 0 || nlen > PSL_MAX_LOCK_NAME)
        return PSL_ETOOBIG;
    int (*lk)(void *, const char *, size_t) = acquire ? svc->lock : svc->unlock;
    return lk ? lk(svc->ud, name, nlen) : PSL_EUNAVAIL;
}

static int n_lock(void *ctx, const char *name, size_t nlen) {
    return n_lock_common(ctx, name, nlen, true);
}

static int n_unlock(void *ctx, const char *name, size_t nlen) {
    return n_lock_common(ctx, name, nlen, false);
}

static int n_publish(void *ctx) {
    const host_services *svc = &((ncall *)ctx)->f->ex->svc;
    return svc->publish ? svc->publish(svc->ud) : PSL_EUNAVAIL;
}

static int n_invoke(void *ctx, const char *fname, size_t fnlen, const void *in, size_t inlen,
                    void *out, size_t cap) {
    ncall *c = ctx;
    if (!fname || (!in && inlen) || (!out && cap))
        return PSL_EFAULT;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    c->obs.wrote = true; /* whatever the callee wrote, our reply now depends on */
    int rc = nested_invoke(c->f->ex, c->depth, fname, fnlen, in, inlen, false, &resp, &rlen);
    if (rc == 0) {
        if (rlen)
            memcpy(out, resp, rlen < cap ? rlen : cap);
        rc = rlen > 0x7fffffff ? PSL_ETOOBIG : (int)rlen;
    }
    free(resp);
    return rc;
}

static int n_invoke_async(void *ctx, const char *fname, size_t fnlen, const void *in,
                          size_t inlen) {
    ncall *c = ctx;
    if (!fname || (!in && inlen))
        return PSL_EFAULT;
    c->obs.wrote = true;
    return nested_invoke(c->f->ex, c->depth, fname, fnlen, in, inlen, true, NULL, NULL);
}

static void n_log(void *ctx, const char *msg, size_t len) {
    const host_services *svc = &((ncall *)ctx)->f->ex->svc;
    if (msg && svc->log)
        svc->log(svc->ud, msg, len > 4096 ? 4096 : len); /* truncated, never refused */
}

static int n_write_output(void *ctx, const void *data, size_t len) {
    ncall *c = ctx;
    if (!data && len)
        return PSL_EFAULT;
    if (c->overflow || len > c->f->lim.max_response - c->outlen) {
        c->overflow = true;
        return PSL_ETOOBIG;
    }
    if (c->outlen + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + len)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->outcap = cap;
    }
    if (len)
        memcpy(c->out + c->outlen, data, len);
    c->outlen += len;
    return 0;
}

static int n_write_error(void *ctx, const void *data, size_t len) {
    ncall *c = ctx;
    if (!data || c->errlen >= NATIVE_MAX_STDERR)
        return 0;
    if (len > NATIVE_MAX_STDERR - c->errlen)
        len = NATIVE_MAX_STDERR - c->errlen;
    if (!c->err)
        c->err = xmalloc(NATIVE_MAX_STDERR);
    memcpy(c->err + c->errlen, data, len);
    c->errlen += len;
    return 0;
}

/* Native code runs on the calling thread and cannot be preempted: the timeout is checked when
 * the handler returns and reported as -ETIMEDOUT (its writes stand, as a wasm guest's writes made
 * before a timeout do). Memory is not capped. */
static void run_native(fn *f, const uint8_t *in, size_t inlen, uint32_t depth, ex_result *res) {
    ncall c = {.f = f, .depth = depth};
    psl_native_api api = {
        .abi_version = PSL_ABI_VERSION,
        .size = sizeof api,
        .ctx = &c,
        .get = n_get,
        .put = n_put,
        .del = n_del,
        .lock = n_lock,
        .unlock = n_unlock,
        .invoke = n_invoke,
        .invoke_async = n_invoke_async,
        .log = n_log,
        .write_output = n_write_output,
        .write_error = n_write_error,
        .publish = n_publish,
    };
    static const uint8_t empty[1];
    uint64_t t0 = plat_now_ns();
    int status = f->native(&api, inlen ? in : empty, inlen);
    res->ns = plat_now_ns() - t0;
    res->kv = c.obs;
    if (c.overflow) {
        res->status = ERR_LIMIT;
        msgf(res->msg, sizeof res->msg, "response exceeds the limit of %u bytes",
             f->lim.max_response);
    } else if (f->lim.timeout_ms && res->ns > (uint64_t)f->lim.timeout_ms * 1000000u) {
        res->status = -ETIMEDOUT;
        msgf(res->msg, sizeof res->msg,
             "native function ran %" PRIu64 " ms, past its timeout of %u ms (native code is not "
             "interrupted; the timeout is only reported)",
             res->ns / 1000000u, f->lim.timeout_ms);
    } else {
        res->exit_code = status;
        res->out = c.out ? c.out : xmalloc(1);
        res->outlen = c.outlen;
        c.out = NULL;
        if (status)
            msgf(res->msg, sizeof res->msg, "exit status %d%s%.*s", status, c.errlen ? ": " : "",
                 (int)(c.errlen > 200 ? 200 : c.errlen), c.err ? (const char *)c.err : "");
    }
    free(c.out);
    free(c.err);
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
    if (f->native) {
        run_native(f, in, inlen, depth, res);
        return;
    }
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
    p->host.obs = (kvs_obs){0};
    int rc = wasm_call(p->s, p->start, NULL, NULL);
    res->ns = plat_now_ns() - t0;
    res->kv = p->host.obs;
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
    return nested_invoke(p->f->ex, p->depth, name, nlen, in, inlen, async, out, outlen);
}

/* A call made by a guest running at nesting level depth (wasm or native). */
static int nested_invoke(executor *ex, uint32_t depth, const char *name, size_t nlen,
                         const uint8_t *in, size_t inlen, bool async, uint8_t **out,
                         size_t *outlen) {
    if (depth + 1 >= EX_MAX_DEPTH)
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
        a->depth = depth + 1;
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
    ex_invoke(ex, fname, in, inlen, depth + 1, &r);
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
