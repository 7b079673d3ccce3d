/* Host for a benchmark kernel translated ahead of time by wabt's wasm2c and compiled by gcc -O2
 * (bench/wasm/run.sh, column wasm2c): the same wasm32-wasi module the psl columns run, as native
 * code compiled beforehand, so that its time shows what the WebAssembly build itself costs
 * (32-bit addressing, clang's wasm code generation, wasi-libc) apart from any engine.
 *
 * The kernel is translated with `wasm2c -n kernel`; it imports seven WASI functions, provided
 * here over the linear memory. Nothing traps in a correct run; a trap aborts (wasm-rt's default).
 * Build: gcc -O2 -I<dir of kernel.h> kernel.c host.c -lwasm-rt-impl -lm */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel.h"

struct Z_wasi_snapshot_preview1_instance_t {
    wasm_rt_memory_t *mem;
    int argc;
    char **argv;
};

enum { WASI_OK = 0, WASI_EBADF = 8, WASI_EFAULT = 21, WASI_EIO = 29, WASI_ESPIPE = 70 };

/* A pointer to n bytes at guest address a, or NULL when they are not all inside the memory. */
static uint8_t *at(struct Z_wasi_snapshot_preview1_instance_t *w, uint32_t a, uint64_t n) {
    if ((uint64_t)a + n > w->mem->size)
        return NULL;
    return w->mem->data + a;
}

static void put32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

u32 Z_wasi_snapshot_preview1Z_args_sizes_get(struct Z_wasi_snapshot_preview1_instance_t *w,
                                             u32 argc_at, u32 size_at) {
    uint32_t size = 0;
    for (int i = 0; i < w->argc; i++)
        size += (uint32_t)strlen(w->argv[i]) + 1;
    uint8_t *c = at(w, argc_at, 4), *s = at(w, size_at, 4);
    if (!c || !s)
        return WASI_EFAULT;
    put32(c, (uint32_t)w->argc);
    put32(s, size);
    return WASI_OK;
}

u32 Z_wasi_snapshot_preview1Z_args_get(struct Z_wasi_snapshot_preview1_instance_t *w, u32 argv_at,
                                       u32 buf_at) {
    for (int i = 0; i < w->argc; i++) {
        size_t n = strlen(w->argv[i]) + 1;
        uint8_t *slot = at(w, argv_at + 4u * (uint32_t)i, 4), *dst = at(w, buf_at, n);
        if (!slot || !dst)
            return WASI_EFAULT;
        put32(slot, buf_at);
        memcpy(dst, w->argv[i], n);
        buf_at += (uint32_t)n;
    }
    return WASI_OK;
}

u32 Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd) {
    (void)w;
    return fd <= 2 ? WASI_OK : WASI_EBADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                            u32 stat_at) {
    uint8_t *st = at(w, stat_at, 24);
    if (!st)
        return WASI_EFAULT;
    if (fd > 2)
        return WASI_EBADF;
    memset(st, 0, 24);
    st[0] = isatty((int)fd) ? 2 : 4; /* character device (a terminal) or regular file */
    uint64_t rights = ~(uint64_t)0;
    memcpy(st + 8, &rights, 8);
    memcpy(st + 16, &rights, 8);
    return WASI_OK;
}

u32 Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                      u64 off, u32 whence, u32 pos_at) {
    (void)w, (void)fd, (void)off, (void)whence, (void)pos_at;
    return WASI_ESPIPE; /* only stdio is open */
}

u32 Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                       u32 iovs, u32 niovs, u32 written_at) {
    if (fd != 1 && fd != 2)
        return WASI_EBADF;
    uint8_t *vec = at(w, iovs, 8ull * niovs), *out = at(w, written_at, 4);
    if (!vec || !out)
        return WASI_EFAULT;
    uint32_t total = 0;
    for (uint32_t i = 0; i < niovs; i++) {
        uint32_t buf = get32(vec + 8 * i), len = get32(vec + 8 * i + 4);
        uint8_t *p = at(w, buf, len);
        if (!p)
            return WASI_EFAULT;
        while (len > 0) {
            ssize_t n = write((int)fd, p, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return WASI_EIO;
            p += n;
            len -= (uint32_t)n;
            total += (uint32_t)n;
        }
    }
    put32(out, total);
    return WASI_OK;
}

void Z_wasi_snapshot_preview1Z_proc_exit(struct Z_wasi_snapshot_preview1_instance_t *w, u32 code) {
    (void)w;
    _exit((int)code);
}

int main(int argc, char **argv) {
    static Z_kernel_instance_t inst;
    struct Z_wasi_snapshot_preview1_instance_t wasi = {.argc = argc, .argv = argv};
    wasm_rt_init();
    Z_kernel_init_module();
    Z_kernel_instantiate(&inst, &wasi);
    wasi.mem = Z_kernelZ_memory(&inst);
    Z_kernelZ__start(&inst);
    Z_kernel_free(&inst);
    wasm_rt_free();
    return 0;
}
