/* psl native functions: trusted shared objects loaded into the worker, for code that must run as
 * compiled machine code ("statically compiled binaries"). See docs/guests.md for the trust model:
 * a native function runs inside the worker enclave with the worker's full authority and is not
 * sandboxed; only the deployment owner should deploy one.
 *
 * The handler ABI. A native function is an ELF shared object that exports
 *
 *     int psl_native_main(const psl_native_api *api, const uint8_t *in, size_t inlen);
 *
 * The worker calls it once per invocation, on one of its threads, with the request body in
 * [in, in + inlen) (borrowed for the call). The return value is the exit status (0 = success).
 * The response is what the function passes to api->write_output; api->write_error plays the role
 * of stderr (shown in the error message when the status is not 0). The functions of api have the
 * semantics and error codes of the WebAssembly host API (abi/psl_abi.h): get returns the value's
 * full length or PSL_ENOTFOUND, and so on. Every one takes api->ctx as its first argument. api
 * and ctx are valid only during the call; the same object may be invoked concurrently from
 * several threads, so it must keep no unsynchronised global state.
 *
 * The adapter. Code written against the C guest API (psl.h: psl_get, psl_put, ...) builds for both
 * targets unchanged when it includes this header instead and defines its handler with
 * PSL_HANDLER:
 *
 *     #include <psl_native.h>
 *     static int handle(const uint8_t *in, size_t inlen) {
 *         ... psl_get(...), psl_put(...), psl_write(buf, n) ...
 *         return 0;
 *     }
 *     PSL_HANDLER(handle)
 *
 * For wasm32 (clang --target=wasm32-wasi) this includes psl.h and PSL_HANDLER defines main(),
 * which reads the request from stdin and passes it to the handler; psl_write goes to stdout.
 * Natively (cc -shared -fPIC) PSL_HANDLER defines psl_native_main and the psl_* functions call
 * through the api of the running invocation. */
#ifndef PSL_SDK_PSL_NATIVE_H
#define PSL_SDK_PSL_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Guests build with -I abi; the worker includes this file as "sdk/c/psl_native.h" from the root. */
#if defined(__has_include) && !__has_include("psl_abi.h")
#include "abi/psl_abi.h"
#else
#include "psl_abi.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The name of the exported entry point. */
#define PSL_NATIVE_ENTRY "psl_native_main"

typedef struct psl_native_api {
    uint32_t abi_version; /* PSL_ABI_VERSION of the worker */
    uint32_t size;        /* sizeof(psl_native_api) of the worker: fields may only be appended */
    void *ctx;
    int (*get)(void *ctx, const void *key, size_t klen, void *buf, size_t cap);
    int (*put)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
    int (*del)(void *ctx, const void *key, size_t klen);
    int (*lock)(void *ctx, const char *name, size_t nlen);
    int (*unlock)(void *ctx, const char *name, size_t nlen);
    /* Response length (at most cap bytes copied into out) or a negative error. */
    int (*invoke)(void *ctx, const char *fn, size_t fnlen, const void *in, size_t inlen, void *out,
                  size_t cap);
    int (*invoke_async)(void *ctx, const char *fn, size_t fnlen, const void *in, size_t inlen);
    void (*log)(void *ctx, const char *msg, size_t len);
    /* Append to the response: 0, or PSL_ETOOBIG once the function's response limit is passed
     * (the invocation then fails with a limit error whatever the handler returns). */
    int (*write_output)(void *ctx, const void *data, size_t len);
    /* Append to the error text (like stderr; the first 64 KiB are kept). Always 0. */
    int (*write_error)(void *ctx, const void *data, size_t len);
    /* Appended after write_error: NULL on older workers (check size). */
    int (*publish)(void *ctx);
} psl_native_api;

typedef int (*psl_native_main_fn)(const psl_native_api *api, const uint8_t *in, size_t inlen);

#ifdef __wasm__

#include "psl.h"

#include <stdio.h>
#include <stdlib.h>

static inline int psl_write(const void *data, size_t len) {
    return fwrite(data, 1, len, stdout) == len ? 0 : PSL_ETOOBIG;
}
static inline int psl_write_error(const void *data, size_t len) {
    fwrite(data, 1, len, stderr);
    return 0;
}

/* main() for the wasm build: the whole of stdin is the request. */
#define PSL_HANDLER(handler)                                                                       \
    int main(void) {                                                                               \
        size_t cap = 4096, n = 0, r;                                                               \
        uint8_t *in = (uint8_t *)malloc(cap);                                                      \
        while (in && (r = fread(in + n, 1, cap - n, stdin)) > 0) {                                 \
            n += r;                                                                                \
            if (n == cap) {                                                                        \
                uint8_t *grown = (uint8_t *)realloc(in, cap *= 2);                                 \
                if (!grown)                                                                        \
                    free(in);                                                                      \
                in = grown;                                                                        \
            }                                                                                      \
        }                                                                                          \
        if (!in)                                                                                   \
            return 70;                                                                             \
        int status = handler(in, n);                                                               \
        free(in);                                                                                  \
        return fflush(stdout) == 0 ? status : 70;                                                  \
    }

#else /* native */

#ifdef __cplusplus
#define PSL__TLS thread_local
#else
#define PSL__TLS _Thread_local
#endif

/* The api of the invocation running on this thread (set by PSL_HANDLER's psl_native_main). */
extern PSL__TLS const psl_native_api *psl__api __attribute__((visibility("hidden")));

static inline int psl_get(const void *key, size_t klen, void *buf, size_t cap) {
    return psl__api->get(psl__api->ctx, key, klen, buf, cap);
}
static inline int psl_put(const void *key, size_t klen, const void *val, size_t vlen) {
    return psl__api->put(psl__api->ctx, key, klen, val, vlen);
}
static inline int psl_delete(const void *key, size_t klen) {
    return psl__api->del(psl__api->ctx, key, klen);
}
static inline int psl_lock(const char *name) {
    return psl__api->lock(psl__api->ctx, name, strlen(name));
}
static inline int psl_unlock(const char *name) {
    return psl__api->unlock(psl__api->ctx, name, strlen(name));
}
static inline int psl_invoke(const char *function, const void *in, size_t inlen, void *out,
                             size_t cap) {
    return psl__api->invoke(psl__api->ctx, function, strlen(function), in, inlen, out, cap);
}
static inline int psl_invoke_async(const char *function, const void *in, size_t inlen) {
    return psl__api->invoke_async(psl__api->ctx, function, strlen(function), in, inlen);
}
static inline void psl_log(const char *msg) {
    psl__api->log(psl__api->ctx, msg, strlen(msg));
}
static inline int psl_publish(void) {
    return psl__api->publish ? psl__api->publish(psl__api->ctx) : PSL_EUNAVAIL;
}
static inline int psl_write(const void *data, size_t len) {
    return psl__api->write_output(psl__api->ctx, data, len);
}
static inline int psl_write_error(const void *data, size_t len) {
    return psl__api->write_error(psl__api->ctx, data, len);
}

/* The exported entry point of the shared object. */
__attribute__((visibility("default"))) int psl_native_main(const psl_native_api *api,
                                                           const uint8_t *in, size_t inlen);

#define PSL_HANDLER(handler)                                                                       \
    PSL__TLS const psl_native_api *psl__api;                                                       \
    int psl_native_main(const psl_native_api *api, const uint8_t *in, size_t inlen) {              \
        if (api->abi_version != PSL_ABI_VERSION || api->size < sizeof(psl_native_api))             \
            return 70;                                                                             \
        const psl_native_api *saved = psl__api; /* nested calls on this thread */                  \
        psl__api = api;                                                                            \
        int status = handler(in, inlen);                                                           \
        psl__api = saved;                                                                          \
        return status;                                                                             \
    }

#endif

#ifdef __cplusplus
}
#endif

#endif
