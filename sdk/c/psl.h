/* psl guest API for C and C++ functions compiled with clang --target=wasm32-wasi.
 *
 * A psl function is a WASI command: the request body is stdin, the response is stdout, exit
 * status 0 is success. State lives in the deployment's key-value store, shared by every instance
 * on every worker (eventually consistent; use psl_lock/psl_unlock for critical sections: a lock
 * acquire sees every write made before the matching release, on any worker).
 *
 * Error codes (negative) are the PSL_E* constants of psl_abi.h. */
#ifndef PSL_SDK_PSL_H
#define PSL_SDK_PSL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "psl_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PSL_IMPORT(name) __attribute__((import_module("psl"), import_name(name)))

PSL_IMPORT("get") int32_t __psl_get(const void *key, size_t klen, void *buf, size_t cap);
PSL_IMPORT("put") int32_t __psl_put(const void *key, size_t klen, const void *val, size_t vlen);
PSL_IMPORT("delete") int32_t __psl_delete(const void *key, size_t klen);
PSL_IMPORT("lock") int32_t __psl_lock(const char *name, size_t nlen);
PSL_IMPORT("unlock") int32_t __psl_unlock(const char *name, size_t nlen);
PSL_IMPORT("invoke")
int32_t __psl_invoke(const char *fn, size_t fnlen, const void *in, size_t inlen, void *out,
                     size_t cap);
PSL_IMPORT("invoke_async")
int32_t __psl_invoke_async(const char *fn, size_t fnlen, const void *in, size_t inlen);
PSL_IMPORT("log") void __psl_log(const char *msg, size_t len);
PSL_IMPORT("publish") int32_t __psl_publish(void);

/* The value's full length (at most cap bytes copied into buf), or -1 (PSL_ENOTFOUND). */
static inline int psl_get(const void *key, size_t klen, void *buf, size_t cap) {
    return __psl_get(key, klen, buf, cap);
}
/* 0 or a negative error. */
static inline int psl_put(const void *key, size_t klen, const void *val, size_t vlen) {
    return __psl_put(key, klen, val, vlen);
}
static inline int psl_delete(const void *key, size_t klen) {
    return __psl_delete(key, klen);
}
/* Acquire / release the lock called name. 0 or a negative error. */
static inline int psl_lock(const char *name) {
    return __psl_lock(name, strlen(name));
}
static inline int psl_unlock(const char *name) {
    return __psl_unlock(name, strlen(name));
}
/* Call another function with in as its request; copies at most cap bytes of its response into
 * out. Returns the response's full length or a negative error. */
static inline int psl_invoke(const char *function, const void *in, size_t inlen, void *out,
                             size_t cap) {
    return __psl_invoke(function, strlen(function), in, inlen, out, cap);
}
/* Queue a call and do not wait for it. 0 or a negative error. */
static inline int psl_invoke_async(const char *function, const void *in, size_t inlen) {
    return __psl_invoke_async(function, strlen(function), in, inlen);
}
static inline void psl_log(const char *msg) {
    __psl_log(msg, strlen(msg));
}
/* Send this invocation's writes so far on their way to the other workers now (appended to the
 * worker's capsule and multicast once durable) instead of when the invocation ends, and return
 * at once: eventual consistency for a long-running function, with no lock and no wait. 0 or a
 * negative error. */
static inline int psl_publish(void) {
    return __psl_publish();
}

#ifdef __cplusplus
}
#endif

#endif
