/* The `psl` host module: the functions guests import from module "psl" (abi/psl_abi.h), joining
 * the WebAssembly engine to the key-value store. Reads and writes go straight to the memtable;
 * locks, nested invocations and logs go to services the worker provides.
 *
 * A host_ctx is bound to one store (one pooled instance) and must outlive it. The worker may
 * change ctx->svc and ctx->kv between invocations, never during one. Every guest pointer is
 * bounds-checked against the caller's memory; a bad one answers PSL_EFAULT. */
#ifndef PSL_HOST_HOST_H
#define PSL_HOST_HOST_H

#include "kvs/kvs.h"
#include "wasm/wasm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct host_services {
    void *ud;
    /* Each returns 0 or a PSL_E* code. A NULL service answers PSL_EUNAVAIL. */
    int (*lock)(void *ud, const char *name, size_t len);
    int (*unlock)(void *ud, const char *name, size_t len);
    /* Synchronous (async false): *out is malloc'd, the caller frees it. Async: out unused. */
    int (*invoke)(void *ud, const char *fn, size_t fnlen, const uint8_t *in, size_t inlen,
                  bool async, uint8_t **out, size_t *outlen);
    void (*log)(void *ud, const char *msg, size_t len);
    /* Start replicating the writes made so far without waiting for them (psl_publish). */
    int (*publish)(void *ud);
} host_services;

typedef struct host_ctx {
    kvs *kv; /* NULL: get/put/delete answer PSL_EUNAVAIL */
    host_services svc;
    uint64_t kv_reads, kv_writes; /* counters for metrics */
    kvs_obs obs; /* the running invocation's reads and writes (the executor zeroes it per run) */
} host_ctx;

/** Resolve import @p i of @p m if it belongs to module "psl".
 * @param[out] out  a host function created in @p s, bound to @p ctx.
 * @return 0, ERR_NOTFOUND (another module), or ERR_UNLINKABLE (unknown name or wrong signature;
 * err says which). */
int host_resolve_import(host_ctx *ctx, wasm_store *s, const wasm_module *m, uint32_t i,
                        wasm_extern *out, wasm_error *err);

#endif
