/* WASI preview1 (wasi_snapshot_preview1) for guests: the subset a clang --target=wasm32-wasi C
 * program needs, with no file system and no network.
 *
 * Design. A wasi_ctx holds what the guest may see: its arguments, its environment, three standard
 * streams and a clock deadline. It is bound to a store by wasi_resolve(), which creates one host
 * function per "wasi_snapshot_preview1" import of a module, with the signature the module declares.
 * Implemented: args_*, environ_*, fd_read (stdin), fd_write (stdout, stderr), fd_fdstat_get,
 * fd_filestat_get (std streams), fd_prestat_get / fd_prestat_dir_name (always EBADF: nothing is
 * preopened), fd_close, fd_seek / fd_tell (ESPIPE on std streams), clock_time_get, clock_res_get,
 * random_get, proc_exit, sched_yield and poll_oneoff (clock subscriptions; std stream
 * subscriptions are reported ready at once). Any other preview1 function resolves to a stub that
 * answers EBADF (fd_* and path_*: no descriptor beyond the std streams exists) or ENOSYS.
 *
 * Safety. Every guest pointer and length is checked against the calling instance's memory 0 before
 * use; a bad one answers EFAULT and never touches host memory. A sleep in poll_oneoff never runs
 * past the deadline set with wasi_set_deadline(): it traps with WASM_TRAP_TIMEOUT there instead.
 *
 * Streams. Each standard stream is a host file descriptor, an in-memory buffer (stdin: a borrowed
 * byte range; stdout/stderr: an owned capture buffer with a byte cap), a callback, or nothing
 * (stdin reads EOF, output is discarded).
 *
 * Threads. A ctx is used by one store at a time, like the store itself. */
#ifndef PSL_WASM_WASI_H
#define PSL_WASM_WASI_H

#include "wasm/wasm.h"

#include <stddef.h>
#include <stdint.h>

/* WASI errno values used by the host functions (subset of preview1's). */
enum {
    WASI_ESUCCESS = 0,
    WASI_E2BIG = 1,
    WASI_EAGAIN = 6,
    WASI_EBADF = 8,
    WASI_EFAULT = 21,
    WASI_EINTR = 27,
    WASI_EINVAL = 28,
    WASI_EIO = 29,
    WASI_ENOSPC = 51,
    WASI_ENOSYS = 52,
    WASI_ENOTSUP = 58,
    WASI_EPIPE = 64,
    WASI_ESPIPE = 70,
};

typedef enum {
    WASI_IO_NULL = 0, /* stdin: EOF at once; stdout/stderr: bytes are accepted and dropped */
    WASI_IO_FD,       /* a host file descriptor (not closed by the ctx) */
    WASI_IO_BUFFER, /* stdin: read from data[0..len); stdout/stderr: captured, at most cap bytes */
    WASI_IO_CALLBACK, /* fn(ud, buf, len): reads into / writes from buf */
} wasi_io_kind;

/* Reads up to len bytes into buf (stdin; 0 = end of input) or writes len bytes from buf
 * (stdout/stderr). Returns the number of bytes moved, or a negative errno. */
typedef long (*wasi_io_fn)(void *ud, uint8_t *buf, size_t len);

typedef struct wasi_io {
    wasi_io_kind kind;
    int fd;              /* WASI_IO_FD */
    const uint8_t *data; /* WASI_IO_BUFFER, stdin: borrowed; must outlive the ctx */
    size_t len;          /* WASI_IO_BUFFER: stdin length */
    size_t cap;          /* WASI_IO_BUFFER, stdout/stderr: capture cap; writes past it get ENOSPC */
    wasi_io_fn fn;       /* WASI_IO_CALLBACK */
    void *ud;
} wasi_io;

typedef struct wasi_config {
    int argc;
    const char *const *argv; /* argc strings; copied. argv[0] is the program name by convention */
    int envc;
    const char *const *envp; /* envc "NAME=VALUE" strings; copied */
    wasi_io in, out, err;    /* fd 0, 1, 2 */
} wasi_config;

typedef struct wasi_ctx wasi_ctx;

/** Create a ctx. @param[in] cfg copied (strings too; stdin buffer data is borrowed). Never NULL. */
wasi_ctx *wasi_new(const wasi_config *cfg);
void wasi_free(wasi_ctx *ctx);

/** Prepare a ctx for another run of a (reset) instance: stdin, when it is a buffer, now reads
 * @p in (borrowed; must outlive the run), captured output is discarded, closed streams reopen,
 * and the deadline is cleared. */
void wasi_reset(wasi_ctx *ctx, const uint8_t *in, size_t inlen);
/** Absolute monotonic deadline (plat_now_ns() clock) for sleeps in poll_oneoff; 0 = none. */
void wasi_set_deadline(wasi_ctx *ctx, uint64_t deadline_ns);

/** The bytes captured so far on fd 1 or 2 (WASI_IO_BUFFER). @return a pointer owned by the ctx,
 * valid until the next guest call or wasi_free(); NULL with *len = 0 when nothing was captured. */
const uint8_t *wasi_captured(const wasi_ctx *ctx, int fd, size_t *len);

/** Resolve import @p i of @p m if it belongs to "wasi_snapshot_preview1".
 * @param[out] out  a host function created in @p s (owned by the store; @p ctx must outlive it).
 * @return 0, ERR_NOTFOUND when the import is from another module, or ERR_UNLINKABLE (a non-function
 *         import, a known function with a wrong signature, or an unknown function that does not
 *         return a single i32 errno); err says which. */
int wasi_resolve_import(wasi_ctx *ctx, wasm_store *s, const wasm_module *m, uint32_t i,
                        wasm_extern *out, wasm_error *err);

/** Resolve every import of @p m; imports_out has room for wasm_module_num_imports(m) entries.
 * @return 0, or ERR_UNLINKABLE when an import is not WASI or cannot be resolved (err says which).
 */
int wasi_resolve(wasi_ctx *ctx, wasm_store *s, const wasm_module *m, wasm_extern *imports_out,
                 wasm_error *err);

#endif
