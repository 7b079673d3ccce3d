/* The psl host functions (abi/psl_abi.h). Each one validates guest pointers first, then calls the
 * memtable or a worker service, and answers with a PSL_* code: a guest can never crash the host
 * through this interface, only get an error code back. */
#include "host/host.h"

#include "abi/psl_abi.h"
#include "base/base.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gmem {
    uint8_t *base;
    uint64_t size;
} gmem;

static gmem mem_of(wasm_instance *caller) {
    gmem g = {NULL, 0};
    wasm_memory *m = caller ? wasm_instance_memory(caller) : NULL;
    if (m) {
        g.base = wasm_memory_data(m);
        g.size = wasm_memory_size(m);
    }
    return g;
}

static uint8_t *range(const gmem *g, wasm_val ptr, wasm_val len) {
    uint64_t p = (uint32_t)ptr, n = (uint32_t)len;
    if (!g->base || p + n > g->size)
        return NULL;
    return g->base + p;
}

#define RET(v)                                                                                     \
    do {                                                                                           \
        res[0] = (uint32_t)(int32_t)(v);                                                           \
        return 0;                                                                                  \
    } while (0)

static int h_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a, wasm_val *res) {
    (void)s;
    host_ctx *c = ud;
    gmem g = mem_of(caller);
    uint8_t *key = range(&g, a[0], a[1]), *buf = range(&g, a[2], a[3]);
    if (!key || !buf)
        RET(PSL_EFAULT);
    if ((uint32_t)a[1] > PSL_MAX_KEY)
        RET(PSL_ETOOBIG);
    if (!c->kv)
        RET(PSL_EUNAVAIL);
    size_t vlen;
    c->kv_reads++;
    int rc = kvs_get_obs(c->kv, key, (uint32_t)a[1], buf, (uint32_t)a[3], &vlen, &c->obs);
    if (rc == ERR_NOTFOUND)
        RET(PSL_ENOTFOUND);
    RET(vlen);
}

static int h_put(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a, wasm_val *res) {
    (void)s;
    host_ctx *c = ud;
    gmem g = mem_of(caller);
    uint8_t *key = range(&g, a[0], a[1]), *val = range(&g, a[2], a[3]);
    if (!key || !val)
        RET(PSL_EFAULT);
    if ((uint32_t)a[1] > PSL_MAX_KEY || (uint32_t)a[3] > PSL_MAX_VALUE)
        RET(PSL_ETOOBIG);
    if (!c->kv)
        RET(PSL_EUNAVAIL);
    c->kv_writes++;
    c->obs.wrote = true;
    int rc = kvs_put(c->kv, key, (uint32_t)a[1], val, (uint32_t)a[3]);
    RET(rc == 0 ? PSL_OK : PSL_ETOOBIG);
}

static int h_delete(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a,
                    wasm_val *res) {
    (void)s;
    host_ctx *c = ud;
    gmem g = mem_of(caller);
    uint8_t *key = range(&g, a[0], a[1]);
    if (!key)
        RET(PSL_EFAULT);
    if ((uint32_t)a[1] > PSL_MAX_KEY)
        RET(PSL_ETOOBIG);
    if (!c->kv)
        RET(PSL_EUNAVAIL);
    c->kv_writes++;
    c->obs.wrote = true;
    int rc = kvs_delete(c->kv, key, (uint32_t)a[1]);
    RET(rc == 0 ? PSL_OK : PSL_ETOOBIG);
}

static int lock_common(wasm_instance *caller, host_ctx *c, const wasm_val *a, wasm_val *res,
                       bool acquire) {
    gmem g = mem_of(caller);
    uint8_t *name = range(&g, a[0], a[1]);
    if (!name)
        RET(PSL_EFAULT);
    if ((uint32_t)a[1] == 0 || (uint32_t)a[1] > PSL_MAX_LOCK_NAME)
        RET(PSL_ETOOBIG);
    int (*fn)(void *, const char *, size_t) = acquire ? c->svc.lock : c->svc.unlock;
    if (!fn)
        RET(PSL_EUNAVAIL);
    RET(fn(c->svc.ud, (const char *)name, (uint32_t)a[1]));
}

static int h_lock(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a, wasm_val *res) {
    (void)s;
    return lock_common(caller, ud, a, res, true);
}

static int h_unlock(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a,
                    wasm_val *res) {
    (void)s;
    return lock_common(caller, ud, a, res, false);
}

static int invoke_common(wasm_instance *caller, host_ctx *c, const wasm_val *a, wasm_val *res,
                         bool async) {
    gmem g = mem_of(caller);
    uint8_t *fn = range(&g, a[0], a[1]), *in = range(&g, a[2], a[3]);
    uint8_t *out = async ? NULL : range(&g, a[4], a[5]);
    if (!fn || !in || (!async && !out))
        RET(PSL_EFAULT);
    if (!c->svc.invoke)
        RET(PSL_EUNAVAIL);
    c->obs.wrote = true; /* whatever the callee wrote, our reply now depends on */
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int rc = c->svc.invoke(c->svc.ud, (const char *)fn, (uint32_t)a[1], in, (uint32_t)a[3], async,
                           &resp, &rlen);
    if (rc == 0 && !async) {
        /* The callee ran in its own instance; our memory did not move (it never does). */
        uint32_t cap = (uint32_t)a[5];
        memcpy(out, resp, rlen < cap ? rlen : cap);
        rc = rlen > 0x7fffffff ? PSL_ETOOBIG : (int)rlen;
    }
    free(resp);
    RET(rc);
}

static int h_invoke(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a,
                    wasm_val *res) {
    (void)s;
    return invoke_common(caller, ud, a, res, false);
}

static int h_invoke_async(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a,
                          wasm_val *res) {
    (void)s;
    return invoke_common(caller, ud, a, res, true);
}

static int h_log(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a, wasm_val *res) {
    (void)s, (void)res;
    host_ctx *c = ud;
    gmem g = mem_of(caller);
    uint32_t len = (uint32_t)a[1];
    if (len > 4096)
        len = 4096; /* a log line is truncated, never refused */
    uint8_t *msg = range(&g, a[0], len);
    if (msg && c->svc.log)
        c->svc.log(c->svc.ud, (const char *)msg, len);
    return 0;
}

static int h_publish(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *a,
                     wasm_val *res) {
    (void)s;
    (void)caller;
    (void)a;
    host_ctx *c = ud;
    if (!c->svc.publish)
        RET(PSL_EUNAVAIL);
    RET(c->svc.publish(c->svc.ud));
}

static const uint8_t T4[] = {WASM_I32, WASM_I32, WASM_I32, WASM_I32, WASM_I32};
static const uint8_t T2[] = {WASM_I32, WASM_I32, WASM_I32};
static const uint8_t T0[] = {WASM_I32};
static const uint8_t T6[] = {WASM_I32, WASM_I32, WASM_I32, WASM_I32, WASM_I32, WASM_I32, WASM_I32};

static const struct {
    const char *name;
    wasm_host_fn fn;
    uint32_t np, nr;
    const uint8_t *types;
} fns[] = {
    {"get", h_get, 4, 1, T4},
    {"put", h_put, 4, 1, T4},
    {"delete", h_delete, 2, 1, T2},
    {"lock", h_lock, 2, 1, T2},
    {"unlock", h_unlock, 2, 1, T2},
    {"invoke", h_invoke, 6, 1, T6},
    {"invoke_async", h_invoke_async, 4, 1, T4},
    {"log", h_log, 2, 0, T2},
    {"publish", h_publish, 0, 1, T0},
};

int host_resolve_import(host_ctx *ctx, wasm_store *s, const wasm_module *m, uint32_t i,
                        wasm_extern *out, wasm_error *err) {
    const char *mod, *name;
    uint8_t kind;
    wasm_module_import(m, i, &mod, &name, &kind);
    if (strcmp(mod, "psl") != 0)
        return ERR_NOTFOUND;
    for (size_t k = 0; k < ARRAY_LEN(fns); k++) {
        if (strcmp(fns[k].name, name) != 0)
            continue;
        wasm_functype want = {fns[k].np, fns[k].nr, fns[k].types};
        wasm_functype have = kind == WASM_EXTERN_FUNC ? wasm_module_import_functype(m, i)
                                                      : (wasm_functype){0, 0, NULL};
        if (kind != WASM_EXTERN_FUNC || have.nparams != want.nparams ||
            have.nresults != want.nresults ||
            memcmp(have.types, want.types, want.nparams + want.nresults) != 0) {
            if (err)
                snprintf(err->msg, sizeof err->msg,
                         "import psl.%s has the wrong signature (see abi/psl_abi.h)", name);
            return ERR_UNLINKABLE;
        }
        out->kind = WASM_EXTERN_FUNC;
        out->u.func = wasm_func_new_host(s, want, fns[k].fn, ctx);
        return 0;
    }
    if (err)
        snprintf(err->msg, sizeof err->msg, "unknown import psl.%s (ABI version %d)", name,
                 PSL_ABI_VERSION);
    return ERR_UNLINKABLE;
}
