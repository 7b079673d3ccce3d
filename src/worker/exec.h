/* The invocation executor: deployed functions, their pools of pre-instantiated instances, and
 * the run of one invocation (request body on stdin, response from stdout, exit status 0 = success).
 *
 * Each function keeps a pool of idle instances, each in its own store with its own WASI and psl
 * host contexts. An invocation takes an idle instance (or instantiates a new one), runs `_start`,
 * and returns the instance to the pool after wasm_instance_reset(): memory, tables and globals go
 * back to their instantiation state, so nothing leaks from one request to the next except through
 * the key-value store. An instance whose run trapped is reset the same way (a trap never leaves
 * state behind); one that cannot be reset is dropped.
 *
 * Thread-safe: any number of threads may call ex_invoke concurrently (each call holds its own
 * instance). Deploy/remove may run concurrently with invocations; an invocation holds a reference
 * to the function it runs, so removing a function never frees it under a running call. */
#ifndef PSL_WORKER_EXEC_H
#define PSL_WORKER_EXEC_H

#include "host/host.h"
#include "kvs/kvs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ex_limits {
    uint32_t timeout_ms;    /* per invocation; 0 = none */
    uint32_t max_memory_mb; /* linear memory cap */
    uint32_t max_request;   /* bytes */
    uint32_t max_response;  /* bytes */
    uint32_t max_pool;      /* idle instances kept */
    bool sync;              /* durability: reply after the writes are durable (worker decides) */
} ex_limits;

void ex_limits_default(ex_limits *l);

typedef struct ex_result {
    int status;     /* 0 ok; ERR_TRAP, ERR_LIMIT, ERR_NOTFOUND, ERR_INVALID... */
    int exit_code;  /* guest exit status when status == 0 */
    uint8_t *out;   /* malloc'd response (stdout), caller frees */
    size_t outlen;
    char msg[256];  /* why, when status != 0 or exit_code != 0 */
    uint64_t ns;    /* wall time of the run */
    bool sync;      /* the function's durability is sync: reply after its writes are durable */
    kvs_obs kv;     /* what it wrote and read: with sync durability, a run that wrote nothing
                     * and read only durable versions may be answered at once */
} ex_result;

typedef struct executor executor;

/** @param kv  the deployment's memtable (borrowed; must outlive the executor).
 * @param svc services for locks, nested invocations and logs (copied; ud borrowed). */
executor *ex_new(kvs *kv, const host_services *svc);
void ex_free(executor *ex);

/** Deploy (or replace) function @p name from a WebAssembly binary. The module is validated and
 * one instance is created at once so a broken module is refused at deploy time.
 * Bytes that start with the ELF magic are a native function instead (sdk/c/psl_native.h): trusted
 * code, written to a private file, dlopen()ed (RTLD_LOCAL) and run on the invoking thread with the
 * same request/response limits; its timeout can only be reported after it returns (status
 * -ETIMEDOUT), and memory is not capped. docs/guests.md explains the trust difference.
 * @return 0, ERR_MALFORMED / ERR_INVALID / ERR_UNLINKABLE / ERR_LIMIT (msg says why),
 * ERR_IO (native: the private file could not be written) or ERR_USAGE (bad name). */
int ex_deploy(executor *ex, const char *name, const uint8_t *wasm, size_t len,
              const ex_limits *lim, char *msg, size_t msglen);
/** @return 0 or ERR_NOTFOUND. */
int ex_remove(executor *ex, const char *name);
/** Names and code hashes of deployed functions: fn is called for each, under the registry lock. */
void ex_list(executor *ex, void (*fn)(void *ud, const char *name, const uint8_t hash[32],
                                       const ex_limits *lim),
             void *ud);

/** Run one invocation. @param depth nesting level (0 for a client request). res->out is always
 * set (possibly empty) on status 0. */
void ex_invoke(executor *ex, const char *name, const uint8_t *in, size_t inlen, uint32_t depth,
               ex_result *res);

#endif
