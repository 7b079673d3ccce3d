/* WASI preview1 host functions (see wasi.h). Every guest pointer goes through guest_range(), which
 * checks [ptr, ptr+len) against the caller's memory 0 in 64-bit arithmetic; nothing here writes
 * guest memory through an unchecked pointer. Guest memory is little-endian: ld/st helpers spell
 * the byte order out. */
#include "wasm/wasi.h"

#include "base/base.h"
#include "base/err.h"
#include "platform/platform.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#define WASI_MODULE "wasi_snapshot_preview1"

/* Preview1 constants. */
enum { FT_UNKNOWN = 0, FT_CHARACTER_DEVICE = 2 };
enum { CLOCK_REALTIME_ID = 0, CLOCK_MONOTONIC_ID = 1, CLOCK_PROCESS_ID = 2, CLOCK_THREAD_ID = 3 };
enum { EV_CLOCK = 0, EV_FD_READ = 1, EV_FD_WRITE = 2 };
#define RIGHT_FD_READ (1ull << 1)
#define RIGHT_FD_WRITE (1ull << 6)
#define RIGHT_POLL_FD_READWRITE (1ull << 27)
#define SUBCLOCK_ABSTIME 1u
#define MAX_IOVS 64

struct wasi_ctx {
    int argc, envc;
    char **argv, **envp;
    size_t argv_bytes, envp_bytes; /* sum of strlen + 1 */
    wasi_io io[3];
    bool closed[3];
    size_t in_pos;       /* stdin WASI_IO_BUFFER read position */
    uint8_t *capture[3]; /* stdout/stderr WASI_IO_BUFFER */
    size_t capture_len[3];
    uint64_t deadline_ns;
};

/* ---- guest memory ---- */

typedef struct guest_mem {
    uint8_t *base;
    uint64_t size;
} guest_mem;

static guest_mem guest_mem_of(wasm_instance *caller) {
    guest_mem g = {NULL, 0};
    wasm_memory *m = caller ? wasm_instance_memory(caller) : NULL;
    if (m) {
        g.base = wasm_memory_data(m);
        g.size = wasm_memory_size(m);
    }
    return g;
}

/* The host address of guest range [ptr, ptr+len), or NULL when it is not inside the memory. */
static uint8_t *guest_range(const guest_mem *g, uint64_t ptr, uint64_t len) {
    if (!g->base || ptr > g->size || len > g->size - ptr)
        return NULL;
    return g->base + ptr;
}

static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) {
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}
static uint16_t ld16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static void st16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void st32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void st64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Store a u32 / u64 result at a guest pointer; false when the pointer is bad. */
static bool put32(const guest_mem *g, uint32_t ptr, uint32_t v) {
    uint8_t *p = guest_range(g, ptr, 4);
    if (p)
        st32(p, v);
    return p != NULL;
}
static bool put64(const guest_mem *g, uint32_t ptr, uint64_t v) {
    uint8_t *p = guest_range(g, ptr, 8);
    if (p)
        st64(p, v);
    return p != NULL;
}

#define ARG32(i) ((uint32_t)args[i])
#define RET(e)                                                                                     \
    do {                                                                                           \
        results[0] = (uint32_t)(e);                                                                \
        return 0;                                                                                  \
    } while (0)

static int errno_to_wasi(int e) {
    switch (e) {
    case EAGAIN: return WASI_EAGAIN;
    case EBADF: return WASI_EBADF;
    case EFAULT: return WASI_EFAULT;
    case EINTR: return WASI_EINTR;
    case EINVAL: return WASI_EINVAL;
    case ENOSPC: return WASI_ENOSPC;
    case EPIPE: return WASI_EPIPE;
    case ESPIPE: return WASI_ESPIPE;
    default: return WASI_EIO;
    }
}

static bool std_open(const wasi_ctx *c, uint32_t fd) {
    return fd <= 2 && !c->closed[fd];
}

/* ---- args and environment ---- */

static int sizes_get(const guest_mem *g, int n, size_t bytes, uint32_t count_ptr,
                     uint32_t size_ptr) {
    if (!put32(g, count_ptr, (uint32_t)n) || !put32(g, size_ptr, (uint32_t)bytes))
        return WASI_EFAULT;
    return WASI_ESUCCESS;
}

static int strings_get(const guest_mem *g, int n, char *const *strs, size_t bytes, uint32_t vec_ptr,
                       uint32_t buf_ptr) {
    uint8_t *vec = guest_range(g, vec_ptr, (uint64_t)n * 4);
    uint8_t *buf = guest_range(g, buf_ptr, bytes);
    if (!vec || !buf)
        return WASI_EFAULT;
    uint32_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(strs[i]) + 1;
        st32(vec + 4 * (size_t)i, buf_ptr + off);
        memcpy(buf + off, strs[i], len);
        off += (uint32_t)len;
    }
    return WASI_ESUCCESS;
}

static int h_args_sizes_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                            wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    guest_mem g = guest_mem_of(caller);
    RET(sizes_get(&g, c->argc, c->argv_bytes, ARG32(0), ARG32(1)));
}

static int h_args_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                      wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    guest_mem g = guest_mem_of(caller);
    RET(strings_get(&g, c->argc, c->argv, c->argv_bytes, ARG32(0), ARG32(1)));
}

static int h_environ_sizes_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                               wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    guest_mem g = guest_mem_of(caller);
    RET(sizes_get(&g, c->envc, c->envp_bytes, ARG32(0), ARG32(1)));
}

static int h_environ_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                         wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    guest_mem g = guest_mem_of(caller);
    RET(strings_get(&g, c->envc, c->envp, c->envp_bytes, ARG32(0), ARG32(1)));
}

/* ---- streams ---- */

/* Write len bytes to output stream fd (1 or 2). Returns bytes taken (may be short) or -WASI errno.
 */
static long stream_write(wasi_ctx *c, int fd, const uint8_t *buf, size_t len) {
    wasi_io *io = &c->io[fd];
    switch (io->kind) {
    case WASI_IO_NULL: return (long)len;
    case WASI_IO_FD: {
        size_t done = 0;
        while (done < len) {
            ssize_t r = write(io->fd, buf + done, len - done);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                if (done)
                    break;
                return -errno_to_wasi(errno);
            }
            done += (size_t)r;
        }
        return (long)done;
    }
    case WASI_IO_BUFFER: {
        size_t room = io->cap - c->capture_len[fd];
        if (room == 0 && len > 0)
            return -WASI_ENOSPC;
        size_t n = len < room ? len : room;
        if (n) {
            c->capture[fd] = xrealloc(c->capture[fd], c->capture_len[fd] + n);
            memcpy(c->capture[fd] + c->capture_len[fd], buf, n);
            c->capture_len[fd] += n;
        }
        return (long)n;
    }
    case WASI_IO_CALLBACK: {
        size_t done = 0;
        while (done < len) {
            long r = io->fn(io->ud, (uint8_t *)(uintptr_t)(buf + done), len - done);
            if (r < 0) {
                if (done)
                    break;
                return -errno_to_wasi((int)-r);
            }
            if (r == 0)
                break;
            done += (size_t)r;
        }
        return (long)done;
    }
    }
    return -WASI_EBADF;
}

static int h_fd_write(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                      wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    uint32_t fd = ARG32(0), iovs = ARG32(1), niovs = ARG32(2), nwritten_ptr = ARG32(3);
    guest_mem g = guest_mem_of(caller);
    if (fd == 0 || !std_open(c, fd))
        RET(WASI_EBADF);
    const uint8_t *vec = guest_range(&g, iovs, (uint64_t)niovs * 8);
    if (!vec || !guest_range(&g, nwritten_ptr, 4))
        RET(WASI_EFAULT);
    /* Check every buffer before writing any, so a bad iovec has no partial effect. */
    uint64_t total = 0;
    for (uint32_t i = 0; i < niovs; i++) {
        uint32_t len = ld32(vec + 8 * (size_t)i + 4);
        if (!guest_range(&g, ld32(vec + 8 * (size_t)i), len))
            RET(WASI_EFAULT);
        total += len;
    }
    if (total > UINT32_MAX)
        RET(WASI_EINVAL);
    size_t done = 0;
    for (uint32_t i = 0; i < niovs; i++) {
        uint32_t len = ld32(vec + 8 * (size_t)i + 4);
        if (!len)
            continue;
        long r = stream_write(c, (int)fd, guest_range(&g, ld32(vec + 8 * (size_t)i), len), len);
        if (r < 0) {
            if (done)
                break;
            RET(-r);
        }
        done += (size_t)r;
        if ((size_t)r < len)
            break;
    }
    put32(&g, nwritten_ptr, (uint32_t)done);
    RET(WASI_ESUCCESS);
}

static int h_fd_read(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                     wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    uint32_t fd = ARG32(0), iovs = ARG32(1), niovs = ARG32(2), nread_ptr = ARG32(3);
    guest_mem g = guest_mem_of(caller);
    if (fd != 0 || !std_open(c, fd))
        RET(WASI_EBADF);
    const uint8_t *vec = guest_range(&g, iovs, (uint64_t)niovs * 8);
    if (!vec || !guest_range(&g, nread_ptr, 4))
        RET(WASI_EFAULT);
    struct iovec host[MAX_IOVS];
    int nhost = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < niovs; i++) {
        uint32_t len = ld32(vec + 8 * (size_t)i + 4);
        uint8_t *p = guest_range(&g, ld32(vec + 8 * (size_t)i), len);
        if (!p)
            RET(WASI_EFAULT);
        if (!len || nhost == MAX_IOVS || total + len > INT32_MAX)
            continue; /* a short read is always allowed; later buffers wait for the next call */
        host[nhost].iov_base = p;
        host[nhost].iov_len = len;
        nhost++;
        total += len;
    }
    size_t done = 0;
    wasi_io *io = &c->io[0];
    switch (io->kind) {
    case WASI_IO_NULL: break;
    case WASI_IO_FD:
        if (nhost) {
            ssize_t r;
            do
                r = readv(io->fd, host, nhost);
            while (r < 0 && errno == EINTR);
            if (r < 0)
                RET(errno_to_wasi(errno));
            done = (size_t)r;
        }
        break;
    case WASI_IO_BUFFER:
        for (int i = 0; i < nhost && c->in_pos < io->len; i++) {
            size_t n = io->len - c->in_pos;
            if (n > host[i].iov_len)
                n = host[i].iov_len;
            memcpy(host[i].iov_base, io->data + c->in_pos, n);
            c->in_pos += n;
            done += n;
        }
        break;
    case WASI_IO_CALLBACK:
        /* One callback per call: a second one could block although data was already read. */
        if (nhost) {
            long r = io->fn(io->ud, host[0].iov_base, host[0].iov_len);
            if (r < 0)
                RET(errno_to_wasi((int)-r));
            done = (size_t)r <= host[0].iov_len ? (size_t)r : host[0].iov_len;
        }
        break;
    }
    put32(&g, nread_ptr, (uint32_t)done);
    RET(WASI_ESUCCESS);
}

static bool stream_is_tty(const wasi_ctx *c, uint32_t fd) {
    return c->io[fd].kind == WASI_IO_FD && isatty(c->io[fd].fd) == 1;
}

static int h_fd_fdstat_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                           wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    uint32_t fd = ARG32(0);
    guest_mem g = guest_mem_of(caller);
    if (!std_open(c, fd))
        RET(WASI_EBADF);
    uint8_t *p = guest_range(&g, ARG32(1), 24);
    if (!p)
        RET(WASI_EFAULT);
    memset(p, 0, 24);
    p[0] = stream_is_tty(c, fd) ? FT_CHARACTER_DEVICE : FT_UNKNOWN;
    st64(p + 8, (fd == 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE) | RIGHT_POLL_FD_READWRITE);
    RET(WASI_ESUCCESS);
}

static int h_fd_filestat_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                             wasm_val *results) {
    (void)s;
    wasi_ctx *c = ud;
    uint32_t fd = ARG32(0);
    guest_mem g = guest_mem_of(caller);
    if (!std_open(c, fd))
        RET(WASI_EBADF);
    uint8_t *p = guest_range(&g, ARG32(1), 64);
    if (!p)
        RET(WASI_EFAULT);
    memset(p, 0, 64);
    p[16] = stream_is_tty(c, fd) ? FT_CHARACTER_DEVICE : FT_UNKNOWN;
    st64(p + 24, 1); /* nlink */
    RET(WASI_ESUCCESS);
}

/* Nothing is preopened: the guest's scan for directories ends at once. */
static int h_fd_prestat_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                            wasm_val *results) {
    (void)s, (void)caller, (void)ud, (void)args;
    RET(WASI_EBADF);
}

static int h_fd_close(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                      wasm_val *results) {
    (void)s, (void)caller;
    wasi_ctx *c = ud;
    uint32_t fd = ARG32(0);
    if (!std_open(c, fd))
        RET(WASI_EBADF);
    c->closed[fd] = true; /* the host descriptor stays open: it belongs to the embedder */
    RET(WASI_ESUCCESS);
}

/* fd_seek and fd_tell: the std streams are not seekable. */
static int h_fd_noseek(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                       wasm_val *results) {
    (void)s, (void)caller;
    RET(std_open(ud, ARG32(0)) ? WASI_ESPIPE : WASI_EBADF);
}

/* ---- clocks, randomness, scheduling ---- */

static int clock_now(uint32_t id, uint64_t *ns) {
    switch (id) {
    case CLOCK_REALTIME_ID: *ns = plat_realtime_ns(); return 0;
    case CLOCK_MONOTONIC_ID: *ns = plat_now_ns(); return 0;
    case CLOCK_PROCESS_ID:
    case CLOCK_THREAD_ID: {
        /* ISO C clock(): processor time of the process (also answers for the thread). */
        clock_t t = clock();
        if (t == (clock_t)-1)
            return WASI_EIO;
        *ns = (uint64_t)t * (1000000000u / CLOCKS_PER_SEC);
        return 0;
    }
    default: return WASI_EINVAL;
    }
}

static int h_clock_time_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                            wasm_val *results) {
    (void)s, (void)ud;
    guest_mem g = guest_mem_of(caller);
    uint64_t ns;
    int e = clock_now(ARG32(0), &ns);
    if (e)
        RET(e);
    RET(put64(&g, ARG32(2), ns) ? WASI_ESUCCESS : WASI_EFAULT);
}

static int h_clock_res_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                           wasm_val *results) {
    (void)s, (void)ud;
    guest_mem g = guest_mem_of(caller);
    uint32_t id = ARG32(0);
    uint64_t res;
    if (id == CLOCK_REALTIME_ID || id == CLOCK_MONOTONIC_ID)
        res = 1;
    else if (id == CLOCK_PROCESS_ID || id == CLOCK_THREAD_ID)
        res = 1000000000u / CLOCKS_PER_SEC;
    else
        RET(WASI_EINVAL);
    RET(put64(&g, ARG32(1), res) ? WASI_ESUCCESS : WASI_EFAULT);
}

static int h_random_get(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                        wasm_val *results) {
    (void)s, (void)ud;
    guest_mem g = guest_mem_of(caller);
    uint8_t *p = guest_range(&g, ARG32(0), ARG32(1));
    if (!p)
        RET(WASI_EFAULT);
    RET(plat_random(p, ARG32(1)) == 0 ? WASI_ESUCCESS : WASI_EIO);
}

static int h_sched_yield(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                         wasm_val *results) {
    (void)s, (void)caller, (void)ud, (void)args;
    thrd_yield();
    RET(WASI_ESUCCESS);
}

static int h_proc_exit(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                       wasm_val *results) {
    (void)caller, (void)ud, (void)results;
    wasm_store_set_exit(s, (int)ARG32(0));
    return WASM_TRAP_EXIT;
}

/* Sleep until monotonic time @p until; false when interrupted by the ctx deadline first. */
static bool sleep_until(const wasi_ctx *c, uint64_t until) {
    bool cut = c->deadline_ns && until > c->deadline_ns;
    if (cut)
        until = c->deadline_ns;
    for (;;) {
        uint64_t now = plat_now_ns();
        if (now >= until)
            break;
        uint64_t d = until - now;
        struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
        thrd_sleep(&ts, NULL);
    }
    return !cut;
}

/* poll_oneoff(in, out, nsubscriptions, nevents_ptr). Subscriptions are 48 bytes: userdata u64,
 * tag u8 at 8, then at 16 either clock {id u32, timeout u64 at 24, precision u64 at 32, flags u16
 * at 40} or fd u32. Events are 32 bytes: userdata u64, error u16 at 8, type u8 at 10,
 * nbytes u64 at 16, flags u16 at 24. */
static int h_poll_oneoff(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                         wasm_val *results) {
    wasi_ctx *c = ud;
    uint32_t n = ARG32(2);
    guest_mem g = guest_mem_of(caller);
    if (n == 0)
        RET(WASI_EINVAL);
    const uint8_t *in = guest_range(&g, ARG32(0), (uint64_t)n * 48);
    uint8_t *out = guest_range(&g, ARG32(1), (uint64_t)n * 32);
    if (!in || !out || !guest_range(&g, ARG32(3), 4))
        RET(WASI_EFAULT);
    /* Decode into host memory first: in and out may overlap in the guest. */
    uint64_t *wake = xcalloc(n, sizeof *wake); /* monotonic wake time per clock; 0 = not a clock */
    uint64_t *udata = xcalloc(n, sizeof *udata);
    uint8_t *tag = xcalloc(n, 1);
    uint16_t *err = xcalloc(n, sizeof *err);
    uint32_t *fds = xcalloc(n, sizeof *fds);
    uint64_t now = plat_now_ns(), earliest = UINT64_MAX;
    bool ready = false;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *sub = in + 48 * (size_t)i;
        udata[i] = ld64(sub);
        tag[i] = sub[8];
        if (tag[i] == EV_CLOCK) {
            uint32_t id = ld32(sub + 16);
            uint64_t timeout = ld64(sub + 24), t;
            if (id != CLOCK_REALTIME_ID && id != CLOCK_MONOTONIC_ID) {
                err[i] = WASI_ENOTSUP;
                ready = true;
                continue;
            }
            if (ld16(sub + 40) & SUBCLOCK_ABSTIME) {
                uint64_t base = id == CLOCK_REALTIME_ID ? plat_realtime_ns() : now;
                t = timeout > base ? now + (timeout - base) : now;
            } else {
                t = timeout > UINT64_MAX - now ? UINT64_MAX : now + timeout;
            }
            wake[i] = t ? t : 1;
            if (wake[i] < earliest)
                earliest = wake[i];
        } else if (tag[i] == EV_FD_READ || tag[i] == EV_FD_WRITE) {
            fds[i] = ld32(sub + 16);
            bool ok = std_open(c, fds[i]) && (tag[i] == EV_FD_READ) == (fds[i] == 0);
            err[i] = ok ? WASI_ESUCCESS : WASI_EBADF;
            ready = true; /* std streams are reported ready; a read or write may still block */
        } else {
            err[i] = WASI_EINVAL;
            ready = true;
        }
    }
    int rc = 0;
    if (!ready && earliest != UINT64_MAX && !sleep_until(c, earliest)) {
        wasm_store_set_trap_msg(s, "execution time budget exceeded (in poll_oneoff)");
        rc = WASM_TRAP_TIMEOUT;
        goto done;
    }
    now = plat_now_ns();
    uint32_t nev = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool fire = tag[i] == EV_CLOCK ? (wake[i] && wake[i] <= now) || err[i] : true;
        if (!fire)
            continue;
        uint8_t *ev = out + 32 * (size_t)nev++;
        memset(ev, 0, 32);
        st64(ev, udata[i]);
        st16(ev + 8, err[i]);
        ev[10] = tag[i] <= EV_FD_WRITE ? tag[i] : EV_CLOCK;
        if (tag[i] != EV_CLOCK && !err[i])
            st64(ev + 16, tag[i] == EV_FD_READ && c->io[0].kind == WASI_IO_BUFFER
                              ? c->io[0].len - c->in_pos
                              : 1);
    }
    put32(&g, ARG32(3), nev);
    results[0] = WASI_ESUCCESS;
done:
    free(wake);
    free(udata);
    free(tag);
    free(err);
    free(fds);
    return rc;
}

/* ---- stubs for everything else ---- */

static int h_enosys(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                    wasm_val *results) {
    (void)s, (void)caller, (void)ud, (void)args;
    RET(WASI_ENOSYS);
}

static int h_ebadf(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                   wasm_val *results) {
    (void)s, (void)caller, (void)ud, (void)args;
    RET(WASI_EBADF);
}

/* An fd operation we do not implement: EBADF unless the fd is an open std stream. */
static int h_fd_other(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                      wasm_val *results) {
    (void)s, (void)caller;
    RET(std_open(ud, ARG32(0)) ? WASI_ENOSYS : WASI_EBADF);
}

/* ---- resolution ---- */

typedef struct wasi_fn_desc {
    const char *name;
    const char *sig; /* params ':' results; i = i32, I = i64 */
    wasm_host_fn fn;
} wasi_fn_desc;

static const wasi_fn_desc wasi_fns[] = {
    {"args_get", "ii:i", h_args_get},
    {"args_sizes_get", "ii:i", h_args_sizes_get},
    {"environ_get", "ii:i", h_environ_get},
    {"environ_sizes_get", "ii:i", h_environ_sizes_get},
    {"fd_read", "iiii:i", h_fd_read},
    {"fd_write", "iiii:i", h_fd_write},
    {"fd_fdstat_get", "ii:i", h_fd_fdstat_get},
    {"fd_filestat_get", "ii:i", h_fd_filestat_get},
    {"fd_prestat_get", "ii:i", h_fd_prestat_get},
    {"fd_prestat_dir_name", "iii:i", h_fd_prestat_get},
    {"fd_close", "i:i", h_fd_close},
    {"fd_seek", "iIii:i", h_fd_noseek},
    {"fd_tell", "ii:i", h_fd_noseek},
    {"clock_time_get", "iIi:i", h_clock_time_get},
    {"clock_res_get", "ii:i", h_clock_res_get},
    {"random_get", "ii:i", h_random_get},
    {"sched_yield", ":i", h_sched_yield},
    {"poll_oneoff", "iiii:i", h_poll_oneoff},
    {"proc_exit", "i:", h_proc_exit},
};

static bool sig_matches(const char *sig, wasm_functype t) {
    uint32_t np = 0, nr = 0;
    const char *colon = strchr(sig, ':');
    for (const char *p = sig; *p; p++) {
        if (*p == ':')
            continue;
        bool param = p < colon;
        uint32_t k = param ? np : t.nparams + nr;
        if ((param ? np >= t.nparams : nr >= t.nresults) ||
            t.types[k] != (*p == 'I' ? WASM_I64 : WASM_I32))
            return false;
        if (param)
            np++;
        else
            nr++;
    }
    return np == t.nparams && nr == t.nresults;
}

/* err = "<what> <mod>.<name><why>". */
static int fail(wasm_error *err, int code, const char *what, const char *mod, const char *name,
                const char *why) {
    if (err) {
        err->offset = SIZE_MAX;
        snprintf(err->msg, sizeof err->msg, "%s %s.%s%s", what, mod, name, why);
    }
    return code;
}

int wasi_resolve_import(wasi_ctx *ctx, wasm_store *s, const wasm_module *m, uint32_t i,
                        wasm_extern *out, wasm_error *err) {
    const char *mod, *name;
    uint8_t kind;
    wasm_module_import(m, i, &mod, &name, &kind);
    if (strcmp(mod, WASI_MODULE) != 0)
        return ERR_NOTFOUND;
    if (kind != WASM_EXTERN_FUNC)
        return fail(err, ERR_UNLINKABLE, "unknown import", mod, name,
                    ": WASI exports only functions");
    wasm_functype t = wasm_module_import_functype(m, i);
    wasm_host_fn fn = NULL;
    for (size_t k = 0; k < ARRAY_LEN(wasi_fns); k++) {
        if (strcmp(wasi_fns[k].name, name) != 0)
            continue;
        if (!sig_matches(wasi_fns[k].sig, t))
            return fail(err, ERR_UNLINKABLE, "incompatible import type for", mod, name, "");
        fn = wasi_fns[k].fn;
        break;
    }
    if (!fn) {
        /* Every preview1 function returns an errno; anything else is not preview1. */
        if (t.nresults != 1 || t.types[t.nparams] != WASM_I32)
            return fail(err, ERR_UNLINKABLE, "unknown import", mod, name, "");
        bool fd_first = t.nparams >= 1 && t.types[0] == WASM_I32;
        if (strncmp(name, "path_", 5) == 0)
            fn = h_ebadf; /* no directory descriptor exists */
        else if (strncmp(name, "fd_", 3) == 0 && fd_first)
            fn = h_fd_other;
        else
            fn = h_enosys;
    }
    out->kind = WASM_EXTERN_FUNC;
    out->u.func = wasm_func_new_host(s, t, fn, ctx);
    return 0;
}

int wasi_resolve(wasi_ctx *ctx, wasm_store *s, const wasm_module *m, wasm_extern *imports_out,
                 wasm_error *err) {
    uint32_t n = wasm_module_num_imports(m);
    for (uint32_t i = 0; i < n; i++) {
        int rc = wasi_resolve_import(ctx, s, m, i, &imports_out[i], err);
        if (rc == ERR_NOTFOUND) {
            const char *mod, *name;
            uint8_t kind;
            wasm_module_import(m, i, &mod, &name, &kind);
            return fail(err, ERR_UNLINKABLE, "unknown import", mod, name, "");
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- ctx ---- */

static char **copy_strings(int n, const char *const *src, size_t *bytes) {
    char **v = xcalloc((size_t)(n > 0 ? n : 1), sizeof *v);
    *bytes = 0;
    for (int i = 0; i < n; i++) {
        v[i] = xstrdup(src[i]);
        *bytes += strlen(src[i]) + 1;
    }
    return v;
}

wasi_ctx *wasi_new(const wasi_config *cfg) {
    wasi_ctx *c = xcalloc(1, sizeof *c);
    c->argc = cfg->argc > 0 ? cfg->argc : 0;
    c->envc = cfg->envc > 0 ? cfg->envc : 0;
    c->argv = copy_strings(c->argc, cfg->argv, &c->argv_bytes);
    c->envp = copy_strings(c->envc, cfg->envp, &c->envp_bytes);
    c->io[0] = cfg->in;
    c->io[1] = cfg->out;
    c->io[2] = cfg->err;
    return c;
}

void wasi_free(wasi_ctx *c) {
    if (!c)
        return;
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    for (int i = 0; i < c->envc; i++)
        free(c->envp[i]);
    free(c->argv);
    free(c->envp);
    free(c->capture[1]);
    free(c->capture[2]);
    free(c);
}

void wasi_set_deadline(wasi_ctx *c, uint64_t deadline_ns) {
    c->deadline_ns = deadline_ns;
}

const uint8_t *wasi_captured(const wasi_ctx *c, int fd, size_t *len) {
    if (fd < 1 || fd > 2 || !c->capture[fd]) {
        *len = 0;
        return NULL;
    }
    *len = c->capture_len[fd];
    return c->capture[fd];
}

void wasi_reset(wasi_ctx *c, const uint8_t *in, size_t inlen) {
    if (c->io[0].kind == WASI_IO_BUFFER) {
        c->io[0].data = in;
        c->io[0].len = inlen;
    }
    c->in_pos = 0;
    for (int fd = 0; fd < 3; fd++) {
        c->closed[fd] = false;
        c->capture_len[fd] = 0;
    }
    c->deadline_ns = 0;
}
