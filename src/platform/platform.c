/* Linux implementation of the platform interface. */
#include "platform/platform.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

uint64_t plat_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t plat_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t plat_page_size(void) {
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

void *plat_vm_reserve(size_t len) {
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int plat_vm_commit(void *p, size_t len) {
    if (len == 0)
        return 0;
    return mprotect(p, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

int plat_vm_protect_exec(void *p, size_t len) {
    return mprotect(p, len, PROT_READ | PROT_EXEC) ? -errno : 0;
}

int plat_vm_protect_read(void *p, size_t len) {
    return mprotect(p, len, PROT_READ) ? -errno : 0;
}

int plat_vm_decommit(void *p, size_t len) {
    if (len == 0)
        return 0;
    void *q =
        mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return q == MAP_FAILED ? -errno : 0;
}

int plat_vm_no_fork(void *p, size_t len) {
    if (len == 0)
        return 0;
    return madvise(p, len, MADV_DONTFORK) ? -errno : 0;
}

void plat_vm_release(void *p, size_t len) {
    if (p)
        munmap(p, len);
}

int plat_read_fd(int fd, size_t max, uint8_t **data, size_t *len) {
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            return -EFBIG;
        }
    }
    *data = buf;
    *len = n;
    return 0;
}

int plat_read_file(const char *path, uint8_t **data, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = plat_read_fd(fd, (size_t)1 << 31, data, len);
    close(fd);
    return rc;
}

int plat_random(void *buf, size_t len) {
    uint8_t *p = buf;
    while (len) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int plat_sanitizer_build(void) {
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#else
    return 0;
#endif
}

int plat_exe_dir(char *buf, size_t len) {
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n < 0)
        return -errno;
    if ((size_t)n >= len - 1)
        return -ENAMETOOLONG;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = 0;
    return 0;
}

void *plat_module_open(const char *path, char *why, size_t whylen) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && why && whylen) {
        const char *e = dlerror();
        snprintf(why, whylen, "%s", e ? e : "unknown loader error");
    }
    return h;
}

void *plat_module_sym(void *module, const char *name) {
    return dlsym(module, name);
}

void *plat_process_sym(const char *name) {
    return dlsym(RTLD_DEFAULT, name);
}

#if defined(__x86_64__)
#include <cpuid.h>

static size_t cpuid_put(uint32_t *w, size_t n, size_t max, uint32_t leaf, uint32_t sub) {
    uint32_t r[4] = {0, 0, 0, 0};
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    if (leaf == 1)
        r[1] &= 0x00ffffffu; /* the initial APIC id differs per core */
    for (int i = 0; i < 4 && n < max; i++)
        w[n++] = r[i];
    return n;
}

size_t plat_cpu_identity(uint32_t *words, size_t max) {
    /* The leaves a code generator reads to name the CPU and its features (LLVM's
     * sys::getHostCPUName and getHostCPUFeatures). */
    static const uint32_t leaves[][2] = {
        {0, 0},    {1, 0},    {7, 0},           {7, 1},           {0xd, 1},        {0x14, 0},
        {0x19, 0}, {0x24, 0}, {0x80000000u, 0}, {0x80000001u, 0}, {0x80000008u, 0}};
    uint32_t a, b, c, d;
    size_t n = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    uint32_t maxleaf = a;
    __cpuid(0x80000000u, a, b, c, d);
    uint32_t maxext = a;
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        uint32_t l = leaves[i][0];
        if ((l < 0x80000000u && l > maxleaf) || (l >= 0x80000000u && l > maxext)) {
            for (int j = 0; j < 4 && n < max; j++)
                words[n++] = 0;
            continue;
        }
        n = cpuid_put(words, n, max, l, leaves[i][1]);
    }
    __cpuid(1, a, b, c, d);
    if ((c & (1u << 27)) && n + 2 <= max) { /* OSXSAVE: the OS's enabled state components */
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        words[n++] = lo;
        words[n++] = hi;
    }
    return n;
}
#else
size_t plat_cpu_identity(uint32_t *words, size_t max) {
    (void)words, (void)max;
    return 0;
}
#endif

/* ---- memory faults ---- */

static plat_fault_fn g_fault_fn;
static struct sigaction g_prev_segv, g_prev_bus;
static pthread_mutex_t g_fault_mu = PTHREAD_MUTEX_INITIALIZER;

static uintptr_t fault_pc(const void *ucv) {
    const ucontext_t *uc = ucv;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
    plat_fault_fn fn = g_fault_fn;
    if (fn && fn(si->si_addr, fault_pc(uc)))
        return;
    const struct sigaction *prev = sig == SIGBUS ? &g_prev_bus : &g_prev_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, uc);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: returning re-executes the faulting instruction, which faults again with
     * the default disposition and ends the process with this signal (and a core dump). */
    signal(sig, SIG_DFL);
}

int plat_fault_handler_install(plat_fault_fn fn) {
    int rc = 0;
    pthread_mutex_lock(&g_fault_mu);
    if (g_fault_fn && g_fault_fn != fn) {
        rc = -EBUSY;
        goto out;
    }
    if (g_fault_fn) {
        /* Installed before: nothing to do unless someone replaced the handler since (a test
         * harness installs its own around each test); then chain to theirs. */
        struct sigaction cs, cb;
        if (sigaction(SIGSEGV, NULL, &cs) == 0 && sigaction(SIGBUS, NULL, &cb) == 0 &&
            (cs.sa_flags & SA_SIGINFO) && cs.sa_sigaction == on_fault &&
            (cb.sa_flags & SA_SIGINFO) && cb.sa_sigaction == on_fault)
            goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    g_fault_fn = fn;
    if (sigaction(SIGSEGV, &sa, &g_prev_segv) != 0 || sigaction(SIGBUS, &sa, &g_prev_bus) != 0) {
        rc = -errno;
        g_fault_fn = NULL;
    }
out:
    pthread_mutex_unlock(&g_fault_mu);
    return rc;
}

/* 64 KiB: room for the handler and, under a sanitizer, for its report. */
#define ALTSTACK_BYTES (64u * 1024u)

static pthread_key_t g_alt_key;
static pthread_once_t g_alt_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_alt_done;

static void altstack_free(void *p) {
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(p, ALTSTACK_BYTES);
}

static void alt_key_init(void) {
    pthread_key_create(&g_alt_key, altstack_free);
}

int plat_fault_altstack(void) {
    if (t_alt_done)
        return 0;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0)
        return -errno;
    if (!(cur.ss_flags & SS_DISABLE)) {
        t_alt_done = 1; /* the thread has one already (a sanitizer's, or the embedder's) */
        return 0;
    }
    pthread_once(&g_alt_once, alt_key_init);
    void *p =
        mmap(NULL, ALTSTACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    stack_t ss = {.ss_sp = p, .ss_size = ALTSTACK_BYTES, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = -errno;
        munmap(p, ALTSTACK_BYTES);
        return e;
    }
    pthread_setspecific(g_alt_key, p);
    t_alt_done = 1;
    return 0;
}

/* ---- interrupts ---- */

static plat_interrupt_fn g_intr_fn;

static void on_interrupt(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    int saved = errno;
    plat_interrupt_fn fn = g_intr_fn;
    if (fn)
        fn(fault_pc(uc));
    errno = saved;
}

int plat_interrupt_install(plat_interrupt_fn fn) {
    int rc = 0;
    pthread_mutex_lock(&g_fault_mu);
    if (g_intr_fn) {
        rc = g_intr_fn == fn ? 0 : -EBUSY;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_interrupt;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    g_intr_fn = fn;
    if (sigaction(SIGURG, &sa, NULL) != 0) {
        rc = -errno;
        g_intr_fn = NULL;
    }
out:
    pthread_mutex_unlock(&g_fault_mu);
    return rc;
}

uintptr_t plat_thread_self(void) {
    return (uintptr_t)pthread_self();
}

int plat_interrupt_send(uintptr_t t) {
    return -pthread_kill((pthread_t)t, SIGURG);
}

void plat_thread_name(const char *name) {
    (void)pthread_setname_np(pthread_self(), name);
}

void plat_memory_trim(void) {
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

void plat_memory_keep_large(void) {
#ifdef __GLIBC__
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}
