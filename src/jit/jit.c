/* The JIT tier's run time: registration with src/wasm, entries from the interpreter, the helpers
 * compiled code calls, linking objects (the ELF loader, else LLJIT), the authenticated code cache
 * and the background compiler of the auto tier. No LLVM here: compiling goes through the backend
 * (jit_llvm.c, psljit.so), loaded only on a cache miss. Invariant: a function's tier_entry is
 * published (release) only after its module's object is linked and finalised read+execute. */
#include "crypto/crypto.h"
#include "jit/jit_int.h"
#include "jit/jit_version.h"
#include "platform/platform.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bumped whenever generated code or the helpers' contract changes; part of the cache key. The
 * build adds a hash of src/jit and src/wasm and the LLVM version (jit_version.h, generated), so
 * an engine built from other sources never trusts another's objects. */
#define JIT_ENGINE_VERSION "psl-jit-2 " JIT_SOURCE_HASH

static jit_config g_cfg;
static char *g_cache_dir;
static bool g_inited;
static uint64_t g_t0; /* jit_init time, for PSL_JIT_STATS */
static pthread_mutex_t g_stats_mu = PTHREAD_MUTEX_INITIALIZER;
static jit_stats g_stats;
static uint8_t g_cache_key[32];
static bool g_cache_ok;
static bool g_guard; /* bounds by guard region (JIT_BOUNDS_GUARD) */
static bool g_fuel;  /* time budget by fuel in compiled code, else by interrupt signals */
static bool g_lljit; /* $PSL_JIT_LINKER=lljit: link every object with LLJIT (comparisons) */
/* The LLVM backend, loaded on first need (backend()). */
static pthread_mutex_t g_backend_mu = PTHREAD_MUTEX_INITIALIZER;
static const jit_backend *g_backend;
static bool g_backend_tried;

/* Hot-function compilation (auto tier): the interpreter's fuel polls sample the running
 * function; JIT_HOT_SAMPLES samples make it hot. */
#define JIT_HOT_SAMPLES 2
/* Callees of a hot function compiled along with it (inlinable helpers) when at most this many
 * cells long ($PSL_JIT_SMALL overrides); larger ones are compiled when they turn hot
 * themselves. 60 rather than 600: 5-10 % less wall time on expr and hashmap under auto. */
#define JIT_SMALL_CELLS 60
/* Cap on the cells of one batch (the hot functions are always taken). */
#define JIT_BATCH_CELLS 60000
/* OSR entries compiled per function at most (each resumes at one loop head; a function found
 * looping at another head asks for another). */
#define JIT_MAX_OSR 8
/* A batch whose called functions (not OSR entries) have at least this many cells is linked as
 * quick code first (JIT_PIPELINE_QUICK), then again at the mid and the default level. Smaller
 * ones compile at the default level in ~25 ms or less: not worth more compiles.
 * $PSL_JIT_QUICK_CELLS overrides (tests). */
#define JIT_QUICK_CELLS 400
/* A quick batch of at least this many cells keeps its mid-level copy: no default-level compile
 * (expr's printf batch, ~7400 cells: 355-450 ms of LLVM on the other vCPU, which slows the run
 * on this kind of host, for code no faster than the mid level's). $PSL_JIT_DEFAULT_MAX_CELLS
 * overrides. */
#define JIT_DEFAULT_MAX_CELLS 4000
/* An OSR entry at a loop no other encloses, with a top-level loop of at least this many cells
 * after its nest, is compiled at the default level at once (hot_thread). lz's main: 719 cells
 * after its first loop; sha256's: 218; nbody's: 120. $PSL_JIT_AFTER_CELLS overrides (1: every
 * such entry, session 14's rule). */
#define JIT_AFTER_CELLS 400

/* Per function: interpreted; hot, waiting for the thread; in a batch being compiled (stays so
 * if the batch fails: interpreted for good); linked. */
enum { ST_COLD = 0, ST_QUEUED = 1, ST_TAKEN = 2, ST_DONE = 3 };

typedef struct jit_obj {
    jit_image *im;         /* linked by the ELF loader, or */
    void *lljit;           /* by the backend (LLJIT) */
    const jit_backend *be; /* that backend */
    int range;             /* slot in g_ranges of its code, -1 for none */
} jit_obj;

typedef struct jit_mod {
    wasm_module *m;
    uint32_t nc;   /* defined functions */
    jit_obj *objs; /* linked objects (one for a whole module, one per batch in auto) */
    uint32_t nobjs;
    pthread_t thread;
    bool has_thread;
    bool thread_started; /* the hot thread runs (under mu): deferred for a module linked whole
                          * from the cache until something turns hot (hot_wake) */
    /* auto tier: the compiler runs in a forked child so that freeing the module (the end of a
     * short run) can stop it at once instead of waiting for LLVM. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pid_t child;
    int child_fd; /* the compiler process's socket while this module's compile is in flight
                   * there (child is then that process), else -1 */
    bool cancel;
    _Atomic uint32_t *samples; /* per function */
    _Atomic uint32_t *callw;   /* per function: cells of its code times its interpreted calls
                                * from compiled code (see call_sample) */
    uint8_t *state;            /* per function, ST_* (under mu) */
    uint8_t *quick;            /* per function: its linked copy is quick code (under mu) */
    uint32_t nqueued;          /* functions in ST_QUEUED (under mu) */
    uint64_t wait_since;       /* when work was queued that the hot thread has not taken (mu) */
    /* per function, JIT_MAX_OSR slots: OSR entries (jit_osr_fn) or NULL, filled in order, and
     * the loop head each resumes at (stored before the entry is published) */
    _Atomic(void *) *osr;
    uint32_t *osr_at;
    uint8_t *osr_level;          /* per slot: the level of the entry's code (JIT_LEVEL_*) */
    _Atomic uint8_t *entered;    /* per function: sampled at its entry (it is called, not only
                                  * looping in one long activation) */
    _Atomic uint32_t *late;      /* per function: samples in interpreted code after it was linked */
    uint8_t *osr_req;            /* per function: 1 an OSR entry is wanted, 2 taken (under mu) */
    uint8_t *nosr;               /* per function: OSR entries asked for (under mu) */
    _Atomic uint32_t *back_at;   /* per function: loop head of its last back-edge sample, or
                                  * UINT32_MAX */
    _Atomic uint32_t *osr_epoch; /* per function: OSR entries replaced (jit_ctx.osr_epoch) */
    uint32_t *osr_cell;          /* per function: the loop head of the batch's OSR entry (set
                                  * under mu by the thread that builds the batch) */
    uint32_t *osr_want;          /* per function: the loop head an OSR request is for (under mu) */
    /* OSR specialisation (jit_gen_opts.osr_vals): per function the interpreter's frame at its
     * last back-edge sample and that loop head (under mu); the frame a batch's OSR entry is
     * specialised to (set with osr_cell, NULL: none); an OSR entry declined because the frame
     * differed from it, so that a new one may be compiled at the same loop head (under mu). */
    uint64_t **snap;
    uint32_t *snap_at;
    uint64_t **osr_vals;
    uint8_t *osr_stale;
    uint8_t *nospec;   /* per function: an entry of it was stale, specialise no more (under mu) */
    uint32_t *by_addr; /* function indices sorted by code address (sample lookup) */
} jit_mod;

/* ---- code ranges and memory faults (guard mode) ----
 * The fault handler claims a fault only when the faulting instruction lies in code this module
 * linked and the address lies in the reservation of the memory the innermost compiled activation
 * of the thread uses; everything else goes to the previous handler. The ranges are read in the
 * signal handler, so they live in a fixed array of atomics (lo == 0: free slot). */
#define JIT_MAX_RANGES 4096
static _Atomic uintptr_t g_range_lo[JIT_MAX_RANGES], g_range_hi[JIT_MAX_RANGES];
static _Thread_local jit_ctx *t_ctx; /* innermost compiled activation of this thread */

static int range_add(uintptr_t lo, uintptr_t hi) {
    for (int i = 0; i < JIT_MAX_RANGES; i++) {
        uintptr_t z = 0;
        if (atomic_compare_exchange_strong(&g_range_lo[i], &z, lo)) {
            atomic_store(&g_range_hi[i], hi);
            return i;
        }
    }
    return -1;
}

static void range_del(int i) {
    if (i < 0)
        return;
    atomic_store(&g_range_hi[i], 0);
    atomic_store(&g_range_lo[i], 0);
}

static bool pc_in_code(uintptr_t pc) {
    for (int i = 0; i < JIT_MAX_RANGES; i++) {
        uintptr_t lo = atomic_load_explicit(&g_range_lo[i], memory_order_relaxed);
        if (lo && pc >= lo && pc < atomic_load_explicit(&g_range_hi[i], memory_order_relaxed))
            return true;
    }
    return false;
}

static int on_fault(void *addr, uintptr_t pc) {
    jit_ctx *c = t_ctx;
    if (!c || !c->mem || (uintptr_t)addr - (uintptr_t)c->mem >= JIT_GUARD_BYTES || !pc_in_code(pc))
        return 0;
    siglongjmp(*c->jb, WASM_TRAP_MEM_OOB);
}

/* ---- interrupts (the time budget without fuel in compiled code) ----
 * Compiled code carries no fuel counter: a loop's back edge costs nothing and LLVM can
 * vectorise it. Instead every thread that runs compiled code has a slot naming the store of its
 * outermost compiled activation; a watchdog thread checks those stores' interrupt flags and
 * deadlines every millisecond and signals the thread (plat_interrupt_send) when one is due. The
 * handler traps (siglongjmp, as for a fault) only when the signal interrupted compiled code:
 * in a helper, host function or libc the thread may hold locks, so the watchdog signals again a
 * millisecond later and the trap happens once control is back in compiled code. */
#define JIT_MAX_THREADS 1024
#define JIT_WATCH_NS 1000000u

typedef struct jit_thread_slot {
    _Atomic int used;
    uintptr_t thread;
    _Atomic(wasm_store *) store; /* outermost compiled activation's store, NULL when none */
} jit_thread_slot;

static jit_thread_slot g_threads[JIT_MAX_THREADS];
static _Thread_local int t_slot = -1;
static pthread_key_t g_slot_key;
static pthread_once_t g_watch_once = PTHREAD_ONCE_INIT;
static bool g_watch_ok;

static void slot_release(void *p) {
    jit_thread_slot *ts = p;
    atomic_store(&ts->store, NULL);
    atomic_store(&ts->used, 0);
}

static void *watchdog(void *arg) {
    (void)arg;
    bool active = true;
    for (;;) {
        /* Idle (no thread in compiled code at the last look): look ten times less often. */
        struct timespec ts = {0, active ? JIT_WATCH_NS : 10 * JIT_WATCH_NS};
        nanosleep(&ts, NULL);
        uint64_t now = 0;
        active = false;
        for (int i = 0; i < JIT_MAX_THREADS; i++) {
            if (!atomic_load_explicit(&g_threads[i].used, memory_order_acquire))
                continue;
            wasm_store *s = atomic_load_explicit(&g_threads[i].store, memory_order_acquire);
            if (!s)
                continue;
            active = true;
            bool due = atomic_load_explicit(&s->interrupt, memory_order_relaxed) != 0;
            if (!due && s->deadline_ns) {
                if (!now)
                    now = wasm__now_ns();
                due = now >= s->deadline_ns;
            }
            if (due)
                plat_interrupt_send(g_threads[i].thread);
        }
    }
    return NULL;
}

static void on_interrupt(uintptr_t pc) {
    jit_ctx *c = t_ctx;
    if (!c || !pc_in_code(pc))
        return; /* not in compiled code: the watchdog tries again */
    wasm_store *s = c->store;
    if (atomic_load_explicit(&s->interrupt, memory_order_relaxed)) {
        atomic_store(&s->interrupt, 0);
        siglongjmp(*c->jb, WASM_TRAP_INTERRUPTED);
    }
    if (s->deadline_ns && wasm__now_ns() >= s->deadline_ns)
        siglongjmp(*c->jb, WASM_TRAP_TIMEOUT);
}

static void watch_start(void) {
    pthread_t t;
    pthread_attr_t a;
    if (pthread_key_create(&g_slot_key, slot_release) != 0 ||
        plat_interrupt_install(on_interrupt) != 0)
        return;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    g_watch_ok = pthread_create(&t, &a, watchdog, NULL) == 0;
    pthread_attr_destroy(&a);
}

/* This thread's slot, taken on its first compiled activation. NULL when none is free. */
static jit_thread_slot *thread_slot(void) {
    if (t_slot >= 0)
        return &g_threads[t_slot];
    pthread_once(&g_watch_once, watch_start);
    if (!g_watch_ok)
        return NULL;
    for (int i = 0; i < JIT_MAX_THREADS; i++) {
        int z = 0;
        if (atomic_compare_exchange_strong(&g_threads[i].used, &z, 1)) {
            g_threads[i].thread = plat_thread_self();
            atomic_store(&g_threads[i].store, NULL);
            pthread_setspecific(g_slot_key, &g_threads[i]);
            t_slot = i;
            return &g_threads[i];
        }
    }
    return NULL;
}

/* Bytes of executable sections in an ELF object (each padded to its alignment): with the lowest
 * function address this bounds the code JITLink placed in one segment. 0 if obj is not ELF64. */
static size_t exec_bytes(const uint8_t *obj, size_t len) {
    Elf64_Ehdr eh;
    if (len < sizeof eh)
        return 0;
    memcpy(&eh, obj, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
        (len - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum)
        return 0;
    size_t total = 0;
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, obj + eh.e_shoff + i * sizeof sh, sizeof sh);
        if ((sh.sh_flags & SHF_ALLOC) && (sh.sh_flags & SHF_EXECINSTR))
            total += sh.sh_size + sh.sh_addralign;
    }
    return total;
}

/* ---- helpers called by compiled code ---- */

_Noreturn void psl_jit_trap(jit_ctx *c, int32_t trap) {
    siglongjmp(*c->jb, trap);
}

void psl_jit_budget(jit_ctx *c) {
    wasm_store *s = c->store;
    c->fuel = JIT_FUEL_PERIOD;
    if (atomic_load_explicit(&s->interrupt, memory_order_relaxed)) {
        atomic_store(&s->interrupt, 0);
        psl_jit_trap(c, WASM_TRAP_INTERRUPTED);
    }
    if (s->deadline_ns && wasm__now_ns() >= s->deadline_ns)
        psl_jit_trap(c, WASM_TRAP_TIMEOUT);
}

static void call_sample(const wasm_module *m, uint32_t k);

/* Call f with the interpreter's convention on free value-stack cells above the compiled
 * activation; buf holds the arguments and receives the results. */
static void call_func(jit_ctx *c, const wasm_func *f, wasm_val *buf) {
    /* A compiled function of the same instance (another batch's, or through a table): call its
     * entry directly on this activation, no interpreter frame and no new jump buffer. */
    if (f->inst == c->inst && f->code) {
        jit_entry_fn e =
            (jit_entry_fn)atomic_load_explicit(&f->code->tier_entry, memory_order_acquire);
        if (e) {
            e(c, buf);
            return;
        }
    }
    if (f->inst == c->inst && f->code)
        call_sample(c->inst->mod, (uint32_t)(f->code - c->inst->mod->codes));
    wasm_store *s = c->store;
    const wasm_ftype *t = f->type;
    uint32_t span = t->nparams > t->nresults ? t->nparams : t->nresults;
    wasm_val *sp = c->scratch;
    if (sp + span + 1 > s->stack_end)
        psl_jit_trap(c, WASM_TRAP_STACK);
    memcpy(sp, buf, t->nparams * sizeof *sp);
    s->depth = c->depth; /* the interpreter counts on from the compiled caller's depth */
    int rc = wasm__call_func(s, c->inst, f, sp);
    if (rc)
        psl_jit_trap(c, rc);
    memcpy(buf, sp, t->nresults * sizeof *sp);
}

void psl_jit_call(jit_ctx *c, uint32_t funcidx, wasm_val *buf) {
    call_func(c, c->inst->funcs[funcidx], buf);
}

void psl_jit_call_indirect(jit_ctx *c, uint32_t table, uint32_t typeidx, uint32_t elem,
                           wasm_val *buf) {
    const wasm_table *t = c->inst->tables[table];
    if (elem >= t->lim.min)
        psl_jit_trap(c, WASM_TRAP_UNDEF_ELEM);
    const wasm_func *f = (const wasm_func *)(uintptr_t)t->elems[elem];
    if (!f)
        psl_jit_trap(c, WASM_TRAP_UNINIT_ELEM);
    if (f->type_id != c->inst->type_ids[typeidx])
        psl_jit_trap(c, WASM_TRAP_INDIRECT_TYPE);
    call_func(c, f, buf);
}

uint32_t psl_jit_memory_grow(jit_ctx *c, uint32_t delta) {
    return (uint32_t)wasm__memory_grow(c->store, c->inst->mem, delta);
}

/* Bulk operations of 1 MiB or more poll the time budget first, as the interpreter does. */
#define JIT_BULK_BYTES (1u << 20)

void psl_jit_memory_init(jit_ctx *c, uint32_t d, uint32_t s, uint32_t n, uint32_t seg) {
    if (n >= JIT_BULK_BYTES)
        psl_jit_budget(c);
    wasm_instance *inst = c->inst;
    const wasm_dataseg *ds = &inst->mod->datas[seg];
    uint64_t len = inst->data_dropped[seg] ? 0 : ds->len;
    uint64_t memsz = *c->memsize;
    if ((uint64_t)s + n > len || (uint64_t)d + n > memsz)
        psl_jit_trap(c, WASM_TRAP_MEM_OOB);
    if (n)
        memcpy(c->mem + d, ds->bytes + s, n);
}

void psl_jit_data_drop(jit_ctx *c, uint32_t seg) {
    c->inst->data_dropped[seg] = true;
}

void psl_jit_elem_drop(jit_ctx *c, uint32_t seg) {
    c->inst->elem_len[seg] = 0;
}

uint64_t psl_jit_table_get(jit_ctx *c, uint32_t t, uint32_t i) {
    const wasm_table *tb = c->inst->tables[t];
    if (i >= tb->lim.min)
        psl_jit_trap(c, WASM_TRAP_TABLE_OOB);
    return tb->elems[i];
}

void psl_jit_table_set(jit_ctx *c, uint32_t t, uint32_t i, uint64_t v) {
    wasm_table *tb = c->inst->tables[t];
    if (i >= tb->lim.min)
        psl_jit_trap(c, WASM_TRAP_TABLE_OOB);
    tb->elems[i] = v;
}

uint32_t psl_jit_table_size(jit_ctx *c, uint32_t t) {
    return (uint32_t)c->inst->tables[t]->lim.min;
}

uint32_t psl_jit_table_grow(jit_ctx *c, uint32_t t, uint64_t init, uint32_t n) {
    return (uint32_t)wasm__table_grow(c->inst->tables[t], n, init);
}

void psl_jit_table_fill(jit_ctx *c, uint32_t t, uint32_t i, uint64_t v, uint32_t n) {
    if ((uint64_t)n * sizeof(wasm_val) >= JIT_BULK_BYTES)
        psl_jit_budget(c);
    wasm_table *tb = c->inst->tables[t];
    if ((uint64_t)i + n > tb->lim.min)
        psl_jit_trap(c, WASM_TRAP_TABLE_OOB);
    for (uint64_t k = 0; k < n; k++)
        tb->elems[i + k] = v;
}

void psl_jit_table_copy(jit_ctx *c, uint32_t td, uint32_t ts, uint32_t d, uint32_t s, uint32_t n) {
    if ((uint64_t)n * sizeof(wasm_val) >= JIT_BULK_BYTES)
        psl_jit_budget(c);
    wasm_table *a = c->inst->tables[td], *b = c->inst->tables[ts];
    if ((uint64_t)d + n > a->lim.min || (uint64_t)s + n > b->lim.min)
        psl_jit_trap(c, WASM_TRAP_TABLE_OOB);
    memmove(a->elems + d, b->elems + s, (size_t)n * sizeof(wasm_val));
}

void psl_jit_table_init(jit_ctx *c, uint32_t t, uint32_t seg, uint32_t d, uint32_t s, uint32_t n) {
    if ((uint64_t)n * sizeof(wasm_val) >= JIT_BULK_BYTES)
        psl_jit_budget(c);
    wasm_instance *inst = c->inst;
    wasm_table *tb = inst->tables[t];
    if ((uint64_t)s + n > inst->elem_len[seg] || (uint64_t)d + n > tb->lim.min)
        psl_jit_trap(c, WASM_TRAP_TABLE_OOB);
    if (n)
        memcpy(tb->elems + d, inst->elem_vals[seg] + s, (size_t)n * sizeof(wasm_val));
}

#define H(n) {#n, (void *)n}
const jit_helper jit__helpers[] = {
    H(psl_jit_trap),        H(psl_jit_budget),      H(psl_jit_call),       H(psl_jit_call_indirect),
    H(psl_jit_memory_grow), H(psl_jit_memory_init), H(psl_jit_data_drop),  H(psl_jit_elem_drop),
    H(psl_jit_table_get),   H(psl_jit_table_set),   H(psl_jit_table_size), H(psl_jit_table_grow),
    H(psl_jit_table_fill),  H(psl_jit_table_copy),  H(psl_jit_table_init), H(psl_jit_osr_ready),
};
#undef H
const unsigned jit__nhelpers = sizeof jit__helpers / sizeof jit__helpers[0];

/* ---- entering compiled code ---- */

static _Thread_local uintptr_t t_stack_limit;

/* glibc: the top of the main thread's stack (exported by ld.so). */
extern void *__libc_stack_end;

static uintptr_t stack_limit(void) {
    if (t_stack_limit)
        return t_stack_limit;
    /* The main thread's stack grows down from __libc_stack_end to its RLIMIT_STACK (the kernel
     * keeps that range free of other mappings). pthread_getattr_np finds the same bounds by
     * reading /proc/self/maps, about half a millisecond of a warm-cache hello world. */
    struct rlimit rl;
    if (getpid() == gettid() && getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur > 4 * JIT_STACK_RESERVE) {
        uintptr_t top = ((uintptr_t)__libc_stack_end + 4095) & ~(uintptr_t)4095;
        if (top > rl.rlim_cur)
            return t_stack_limit = top - rl.rlim_cur + JIT_STACK_RESERVE;
    }
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    uintptr_t lim = 1;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        if (pthread_attr_getstack(&a, &addr, &size) == 0 && addr)
            lim = (uintptr_t)addr + (size > 2 * JIT_STACK_RESERVE ? JIT_STACK_RESERVE : size / 4);
        pthread_attr_destroy(&a);
    }
    t_stack_limit = lim;
    return lim;
}

static const uint64_t g_zero_size = 0;

/* Run compiled code of inst: fn(ctx, fp) or, with osr, the OSR entry fn(ctx, fp, cell).
 * Returns 0, a wasm_trap, or -1 when the instance cannot run compiled code (declined); -2 when
 * an OSR entry declined because the frame differs from the one it was specialised to. */
static int enter_native(wasm_store *s, wasm_instance *inst, const wasm_code *code, wasm_val *fp,
                        void *fn, bool osr, uint32_t cell) {
    /* Guard-mode code needs the full reservation; a memory made before the tier was registered
     * lacks it, so such an instance runs interpreted. */
    if (g_guard && inst->mem && inst->mem->reserved < JIT_GUARD_BYTES)
        return -1;
    if (inst->mem && inst->mem->max_bytes > JIT_MEM_MAX)
        return -1;
    if ((g_guard || !g_fuel) && plat_fault_altstack() != 0)
        return -1;
    jit_thread_slot *slot = NULL;
    if (!g_fuel && !(slot = thread_slot()))
        return -1; /* no watchdog for this thread: nothing would stop a compiled loop */
    sigjmp_buf jb;
    jit_ctx c;
    c.inst = inst;
    c.store = s;
    c.mem = inst->mem ? inst->mem->data : NULL;
    c.memsize = inst->mem ? &inst->mem->size : &g_zero_size;
    c.depth = s->depth;
    c.max_depth = s->cfg.max_call_depth;
    c.fuel = JIT_FUEL_PERIOD;
    c.stack_limit = stack_limit();
    c.scratch = fp + code->nslots;
    c.jb = &jb;
    for (uint32_t i = 0; i < JIT_CTX_GLOBALS; i++)
        c.gval[i] = i < inst->mod->nglobals ? (uint64_t *)&inst->globals[i]->val : NULL;
    c.tab0 = inst->mod->ntables ? inst->tables[0] : NULL;
    const jit_mod *jm = inst->mod->tier_data;
    c.osr_epoch = jm ? (const uint32_t *)jm->osr_epoch : NULL;
    const uint32_t depth0 = s->depth;
    jit_ctx *volatile outer = t_ctx;
    int rc = sigsetjmp(jb, 0);
    if (rc) {
        t_ctx = outer;
        if (slot && !outer)
            atomic_store_explicit(&slot->store, NULL, memory_order_release);
        s->depth = depth0;
        return rc;
    }
    if (slot && !outer)
        atomic_store_explicit(&slot->store, s, memory_order_release);
    t_ctx = &c;
    int declined = 0;
    if (osr)
        declined = ((jit_osr_fn)fn)(&c, fp, cell);
    else
        ((jit_entry_fn)fn)(&c, fp);
    t_ctx = outer;
    s->depth = depth0; /* a call into the interpreter left its caller's depth there */
    if (slot && !outer)
        atomic_store_explicit(&slot->store, NULL, memory_order_release);
    if (declined >= JIT_OSR_LEFT)
        return -declined; /* left at cell declined - JIT_OSR_LEFT */
    return declined == 2 ? -2 : declined ? -1 : 0;
}

static int tier_enter(wasm_store *s, wasm_instance *inst, const wasm_code *code, wasm_val *fp) {
    void *fn = atomic_load_explicit(&code->tier_entry, memory_order_acquire);
    return enter_native(s, inst, code, fp, fn, false, 0);
}

/* ---- linking objects ---- */

static void stat_add(uint64_t *field, uint64_t v) {
    pthread_mutex_lock(&g_stats_mu);
    *field += v;
    pthread_mutex_unlock(&g_stats_mu);
}

void jit_get_stats(jit_stats *out) {
    pthread_mutex_lock(&g_stats_mu);
    *out = g_stats;
    pthread_mutex_unlock(&g_stats_mu);
}

/* The backend, loaded on first call; NULL when there is none (the module stays interpreted). */
static const jit_backend *backend(void) {
    pthread_mutex_lock(&g_backend_mu);
    if (!g_backend && !g_backend_tried) {
        g_backend_tried = true;
        g_backend = g_cfg.backend ? g_cfg.backend() : NULL;
    }
    const jit_backend *b = g_backend;
    pthread_mutex_unlock(&g_backend_mu);
    return b;
}

/* Link obj (the ELF loader first, LLJIT when it declines) and publish its functions' entries:
 * sel lists the functions of its tables (NULL: all of the module, no OSR table). */
static int load_object(jit_mod *jm, const uint8_t *obj, size_t len, const uint8_t *sel, int level,
                       char *err, size_t errlen) {
    wasm_module *m = jm->m;
    uint32_t nc = 0;
    uint32_t *ks = xmalloc((jm->nc ? jm->nc : 1) * sizeof *ks);
    for (uint32_t k = 0; k < jm->nc; k++)
        if (!sel || sel[k])
            ks[nc++] = k;
    int range = -1;
    jit_image *im = NULL;
    void *lj = NULL;
    const jit_backend *be = NULL;
    jit_tables tb = {0};
    uintptr_t code_lo = 0, code_hi = 0;
    int rc = g_lljit ? ERR_INVALID
                     : jit__elf_link(obj, len, jit__helpers, jit__nhelpers, &im, err, errlen);
    if (rc == 0) {
        tb.fns = jit__elf_sym(im, JIT_SYM_FNS);
        tb.entries = jit__elf_sym(im, JIT_SYM_ENTRIES);
        tb.osrs = sel ? jit__elf_sym(im, JIT_SYM_OSR) : NULL;
        if (!tb.fns || !tb.entries || (sel && !tb.osrs)) {
            snprintf(err, errlen, "object lacks its function tables");
            goto fail;
        }
        jit__elf_code(im, &code_lo, &code_hi);
        if (getenv("PSL_JIT_STATS"))
            fprintf(stderr, "psl: jit: linked %zu bytes of object without LLVM\n", len);
    } else {
        /* Declined (or $PSL_JIT_LINKER=lljit): LLJIT links anything LLVM emits. */
        if (rc != ERR_INVALID && rc != ERR_MALFORMED) {
            free(ks);
            return rc;
        }
        if (!g_lljit && getenv("PSL_JIT_STATS"))
            fprintf(stderr, "psl: jit: ELF loader declined the object (%s); linking with LLJIT\n",
                    err);
        be = backend();
        if (!be) {
            snprintf(err, errlen, "the ELF loader declined the object and there is no LLVM");
            free(ks);
            return ERR_INVALID;
        }
        rc = be->link(obj, len, jit__helpers, jit__nhelpers, sel != NULL, &lj, &tb, err, errlen);
        if (rc) {
            free(ks);
            return rc;
        }
    }
    void *const *fns = tb.fns;
    void *const *entries = tb.entries;
    void *const *osrs = tb.osrs;
    /* The code range tells the fault handler (guard mode) and the interrupt handler (time
     * budget by signals) that a signal hit compiled code. */
    bool need_range = g_guard || !g_fuel;
    if (need_range && im) {
        range = range_add(code_lo, code_hi);
        if (range < 0) {
            snprintf(err, errlen, "cannot register the code range for fault handling");
            goto fail;
        }
    } else if (need_range) {
        uintptr_t lo = UINTPTR_MAX;
        for (uint32_t k = 0; k < nc; k++) {
            if (fns[k] && (uintptr_t)fns[k] < lo)
                lo = (uintptr_t)fns[k];
            if (entries[k] && (uintptr_t)entries[k] < lo)
                lo = (uintptr_t)entries[k];
            if (osrs && osrs[k] && (uintptr_t)osrs[k] < lo)
                lo = (uintptr_t)osrs[k];
        }
        size_t nb = exec_bytes(obj, len);
        range = nb ? range_add(lo, lo + nb) : -1;
        if (range < 0) {
            snprintf(err, errlen, "cannot register the code range for fault handling");
            goto fail;
        }
    }
    pthread_mutex_lock(&jm->mu);
    jm->objs = xrealloc(jm->objs, (jm->nobjs + 1) * sizeof *jm->objs);
    jm->objs[jm->nobjs++] = (jit_obj){im, lj, be, range};
    for (uint32_t i = 0; i < nc; i++) {
        uint32_t k = ks[i];
        if (osrs && osrs[i]) {
            /* In place of an entry at the same loop head (a stale one, or the mid-level code
             * this one replaces: the function's running OSR activations then leave at their
             * next back edge of a loop around their head), else in the first free place. */
            unsigned q = 0, free_q = JIT_MAX_OSR;
            for (; q < JIT_MAX_OSR; q++) {
                if (!atomic_load_explicit(&jm->osr[k * JIT_MAX_OSR + q], memory_order_relaxed)) {
                    free_q = free_q < q ? free_q : q;
                    continue;
                }
                if (jm->osr_at[k * JIT_MAX_OSR + q] == jm->osr_cell[k])
                    break;
            }
            bool replaces = q < JIT_MAX_OSR;
            if (!replaces)
                q = free_q;
            if (q < JIT_MAX_OSR) {
                jm->osr_at[k * JIT_MAX_OSR + q] = jm->osr_cell[k];
                jm->osr_level[k * JIT_MAX_OSR + q] = (uint8_t)level;
                atomic_store_explicit(&jm->osr[k * JIT_MAX_OSR + q], osrs[i], memory_order_release);
                atomic_store(&jm->late[k], 0); /* samples before it count no more */
                /* Running OSR code leaves at its next check: the entry it runs was
                 * replaced, or it runs a loop this entry is for (osr_leave_check). */
                atomic_fetch_add_explicit(&jm->osr_epoch[k], 1, memory_order_release);
            }
        }
        if (!entries[i]) {
            /* Only an OSR entry: the function may turn hot again by being called. */
            if (jm->state[k] != ST_DONE) {
                jm->state[k] = ST_COLD;
                atomic_store(&jm->samples[k], 0);
            }
            continue;
        }
        jm->state[k] = ST_DONE;
        jm->quick[k] = level == JIT_LEVEL_QUICK;
        m->codes[k].tier_fn = fns[i];
        atomic_store_explicit(&m->codes[k].tier_entry, entries[i], memory_order_release);
    }
    pthread_mutex_unlock(&jm->mu);
    free(ks);
    stat_add(im ? &g_stats.objects_elf : &g_stats.objects_lljit, 1);
    stat_add(&g_stats.functions, nc);
    stat_add(&g_stats.code_bytes, len);
    return 0;
fail:
    free(ks);
    jit__elf_free(im);
    if (lj)
        be->unlink(lj);
    return ERR_INVALID;
}

/* ---- code cache ---- */

#define CACHE_MAGIC "PSLJIT01"
enum { HDR = 8 + 32 + 8, MAC = 32 };

/* sel: the functions of a batch (NULL: the whole module); osr_cell: their OSR loop heads;
 * osr_vals: which of those entries are specialised to a frame. Not the frame itself: an entry
 * specialised to another run's frame declines at once and is replaced by an unspecialised one,
 * which has a key of its own, while the same program with the same arguments hits the first. */
static void cache_key_modes(const wasm_module *m, const uint8_t *sel, const uint32_t *osr_cell,
                            uint64_t *const *osr_vals, uint32_t nc, int level, bool guard,
                            bool fuel, uint8_t out[32]) {
    /* The CPU as LLVM sees it (its host CPU name and features derive from these identification
     * words), read without LLVM so that a cache hit needs none. */
    uint32_t cpu[PLAT_CPU_ID_WORDS];
    size_t ncpu = plat_cpu_identity(cpu, PLAT_CPU_ID_WORDS);
    cr_hash_state st;
    cr_hash_init(&st, 32);
    const char *parts[] = {JIT_ENGINE_VERSION,
                           jit__pipeline(level, false),
                           jit__codegen(level),
                           guard ? "guard" : "checks",
                           fuel ? "fuel" : "signals",
                           jit__vec() ? "vec" : "novec",
                           jit__order() ? "order" : "noorder",
                           jit__remat() ? "remat" : "noremat"};
    for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cr_hash_update(&st, parts[i], strlen(parts[i]) + 1);
    cr_hash_update(&st, cpu, ncpu * sizeof cpu[0]);
    cr_hash_update(&st, m->bytes, m->len);
    if (sel) {
        cr_hash_update(&st, sel, nc);
        for (uint32_t k = 0; k < nc; k++)
            if (sel[k] & JIT_SEL_OSR) {
                uint8_t spec = osr_vals && osr_vals[k];
                cr_hash_update(&st, &osr_cell[k], sizeof osr_cell[k]);
                cr_hash_update(&st, &spec, 1);
            }
    }
    cr_hash_final(&st, out);
}

/* The key of an object under this process's bounds and budget modes. */
static void cache_key(const wasm_module *m, const uint8_t *sel, const uint32_t *osr_cell,
                      uint64_t *const *osr_vals, uint32_t nc, int level, uint8_t out[32]) {
    cache_key_modes(m, sel, osr_cell, osr_vals, nc, level, g_guard, g_fuel, out);
}

static void cache_path_in(const char *dir, const uint8_t key[32], char *path, size_t n) {
    char hex[65];
    cr_hex(hex, key, 32);
    snprintf(path, n, "%s/%s.obj", dir, hex);
}

static void cache_path(const uint8_t key[32], char *path, size_t n) {
    cache_path_in(g_cache_dir, key, path, n);
}

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return ERR_IO;
            *p = '/';
        }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return ERR_IO;
    return 0;
}

/* Write all of @p; on a socket with send(MSG_NOSIGNAL), so a peer that died is ERR_IO, not
 * SIGPIPE. */
static int put_all(int fd, const void *p, size_t n, bool sock) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = sock ? send(fd, b, n, MSG_NOSIGNAL) : write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ERR_IO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_all(int fd, const void *p, size_t n) {
    return put_all(fd, p, n, false);
}

/* The MAC key lives in the cache directory (0600); created on first use. */
static int cache_open(void) {
    if (mkdir_p(g_cache_dir) != 0)
        return ERR_IO;
    char path[4200];
    snprintf(path, sizeof path, "%s/mac.key", g_cache_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, g_cache_key, sizeof g_cache_key);
        close(fd);
        return r == (ssize_t)sizeof g_cache_key ? 0 : ERR_CORRUPT;
    }
    uint8_t k[32];
    cr_random(k, sizeof k);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR_IO;
    int rc = write_all(fd, k, sizeof k);
    close(fd);
    /* link() fails if another process created the key first: then use theirs. */
    if (rc == 0 && link(tmp, path) != 0 && errno != EEXIST)
        rc = ERR_IO;
    unlink(tmp);
    cr_memzero(k, sizeof k);
    if (rc)
        return rc;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ERR_IO;
    ssize_t r = read(fd, g_cache_key, sizeof g_cache_key);
    close(fd);
    return r == (ssize_t)sizeof g_cache_key ? 0 : ERR_CORRUPT;
}

/* Returns the object inside a verified entry (pointer into *file), or NULL. */
static const uint8_t *cache_read(const uint8_t key[32], uint8_t **file, size_t *objlen) {
    char path[4200];
    cache_path(key, path, sizeof path);
    size_t len;
    *file = NULL;
    if (plat_read_file(path, file, &len) != 0)
        return NULL;
    uint8_t mac[MAC];
    uint64_t n = 0;
    if (len < HDR + MAC || memcmp(*file, CACHE_MAGIC, 8) != 0)
        goto bad;
    memcpy(&n, *file + 40, 8);
    if (n != len - HDR - MAC || memcmp(*file + 8, key, 32) != 0)
        goto bad;
    cr_hash_ex(mac, MAC, g_cache_key, sizeof g_cache_key, *file, HDR + n);
    if (!cr_equal(mac, *file + HDR + n, MAC))
        goto bad;
    *objlen = n;
    return *file + HDR;
bad:
    stat_add(&g_stats.cache_rejected, 1);
    free(*file);
    *file = NULL;
    return NULL;
}

static void cache_write(const uint8_t key[32], const uint8_t *obj, size_t len) {
    uint8_t *buf = xmalloc(HDR + len + MAC);
    memcpy(buf, CACHE_MAGIC, 8);
    memcpy(buf + 8, key, 32);
    uint64_t n = len;
    memcpy(buf + 40, &n, 8);
    memcpy(buf + HDR, obj, len);
    cr_hash_ex(buf + HDR + len, MAC, g_cache_key, sizeof g_cache_key, buf, HDR + len);
    char path[4200], tmp[4300];
    cache_path(key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        int rc = write_all(fd, buf, HDR + len + MAC);
        close(fd);
        if (rc != 0 || rename(tmp, path) != 0)
            unlink(tmp);
    }
    free(buf);
}

/* ---- compiling a module ---- */

static int read_all(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ERR_IO;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Run jit__compile_object in a child process; the object comes back through a pipe. */
static int compile_in_child(jit_mod *jm, const jit_backend *be, const uint8_t *sel, int level,
                            uint8_t **obj, size_t *len, char *err, size_t errlen) {
    int fds[2];
    *obj = NULL;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return ERR_IO;
    }
    pthread_mutex_lock(&jm->mu);
    pid_t pid = jm->cancel ? -1 : fork();
    if (pid == 0) {
        close(fds[0]);
        uint8_t *o = NULL;
        size_t n = 0;
        char e[256];
        jit_gen_opts go = {.verify = g_cfg.verify,
                           .guard = g_guard,
                           .fuel = g_fuel,
                           .sel = sel,
                           .osr_cell = jm->osr_cell,
                           .osr_vals = (const uint64_t *const *)jm->osr_vals,
                           .level = (uint8_t)level};
        int rc = be->compile(jm->m, &go, &o, &n, e, sizeof e);
        uint64_t hdr = rc ? UINT64_MAX : n;
        if (write_all(fds[1], &hdr, 8) == 0)
            (void)(rc ? write_all(fds[1], e, sizeof e) : write_all(fds[1], o, n));
        _exit(rc ? 1 : 0);
    }
    jm->child = pid > 0 ? pid : 0;
    pthread_mutex_unlock(&jm->mu);
    close(fds[1]);
    int rc = ERR_IO;
    uint64_t n = 0;
    if (pid < 0) {
        snprintf(err, errlen, "%s", jm->cancel ? "cancelled" : "fork failed");
    } else if (read_all(fds[0], &n, 8) != 0) {
        snprintf(err, errlen, "compiler process ended early");
    } else if (n == UINT64_MAX) {
        char e[256];
        if (read_all(fds[0], e, sizeof e) == 0)
            snprintf(err, errlen, "%.200s", e);
        rc = ERR_INVALID;
    } else {
        *obj = xmalloc(n ? n : 1);
        rc = read_all(fds[0], *obj, n);
        if (rc == 0)
            *len = n;
        else
            snprintf(err, errlen, "compiler process ended early");
    }
    close(fds[0]);
    if (pid > 0) {
        pthread_mutex_lock(&jm->mu);
        jm->child = 0;
        pthread_mutex_unlock(&jm->mu);
        struct rusage ru;
        memset(&ru, 0, sizeof ru);
        while (wait4(pid, NULL, 0, &ru) < 0 && errno == EINTR) {
        }
        if (getenv("PSL_JIT_STATS"))
            fprintf(stderr, "psl: jit:   compiler process CPU %.1f ms\n",
                    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                        (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
    }
    if (rc) {
        free(*obj);
        *obj = NULL;
    }
    return rc;
}

/* ---- the compiler process (jit_compiler_start) ----
 * The running executable (/proc/self/exe) started again with argv[1] JIT_COMPILER_ARG, by
 * posix_spawn (vfork and exec: neither the page tables of this process are copied nor any page
 * it writes afterwards, as a fork would), before LLVM is loaded into this one. It gets the
 * modules' bytes in a memfd (SRV_MODS_FD), loads them itself (decoding and lowering are
 * deterministic, so its lowered code is the code this process would compile), loads the backend,
 * warms LLVM up with one compile of its own, and then compiles batches on request over a socket
 * pair (SRV_SOCK_FD): request {module id, nc, has_sel, level, flags} [sel[nc], osr_cell[nc],
 * frames], reply {length or UINT64_MAX} then the object or a 256-byte message. A module's id is
 * its address in this process. */
typedef struct srv_req {
    uint64_t m;
    uint32_t nc;
    uint8_t has_sel, level, flags, pad;
} srv_req;

enum { SRV_GUARD = 1, SRV_FUEL = 2, SRV_VERIFY = 4 };
enum { SRV_SOCK_FD = 3, SRV_MODS_FD = 4 };
#define SRV_MAGIC "PSLJITM1"

static pthread_mutex_t g_srv_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t g_srv_pid;                /* 0: none, or it was stopped */
static int g_srv_fd = -1;              /* this side of the socket pair */
static const wasm_module **g_srv_mods; /* the modules the process holds */
static uint32_t g_srv_nmods;

static int send_all(int fd, const void *p, size_t n) {
    return put_all(fd, p, n, true);
}

static bool resolve_fuel(void);

static uint8_t srv_flags(bool guard, bool fuel, bool verify) {
    return (uint8_t)((guard ? SRV_GUARD : 0) | (fuel ? SRV_FUEL : 0) | (verify ? SRV_VERIFY : 0));
}

/* The process's modules, read from the memfd: nonzero on a malformed one (the process then
 * ends, and the tier compiles in its own process). */
typedef struct srv_mods {
    uint64_t *id;
    wasm_module **m;
    uint32_t n;
    uint8_t flags;
} srv_mods;

static int srv_read_mods(int fd, srv_mods *sm) {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 16)
        return ERR_IO;
    size_t len = (size_t)st.st_size;
    const uint8_t *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return ERR_IO;
    int rc = memcmp(p, SRV_MAGIC, 8) == 0 ? 0 : ERR_INVALID;
    uint32_t n = 0;
    size_t at = 16;
    if (!rc) {
        memcpy(&n, p + 8, 4);
        sm->flags = p[12];
        sm->id = xcalloc(n ? n : 1, sizeof *sm->id);
        sm->m = xcalloc(n ? n : 1, sizeof *sm->m);
    }
    for (uint32_t i = 0; !rc && i < n; i++) {
        uint64_t hdr[2];
        if (len - at < sizeof hdr) {
            rc = ERR_INVALID;
            break;
        }
        memcpy(hdr, p + at, sizeof hdr);
        at += sizeof hdr;
        if (len - at < hdr[1]) {
            rc = ERR_INVALID;
            break;
        }
        wasm_error we = {.offset = SIZE_MAX};
        rc = wasm_module_load(p + at, (size_t)hdr[1], &sm->m[i], &we);
        at += (size_t)hdr[1];
        sm->id[i] = hdr[0];
        sm->n = i + 1;
    }
    munmap((void *)p, len);
    return rc;
}

/* Unless a request is waiting on fd, compile one small function of the first module at the mid
 * level and throw the object away: LLVM's first compile in a process runs ~3-4 ms slower than
 * the next (its code paged in, its tables set up), and this one happens while the requester
 * still interprets. */
static void srv_warm_up(const jit_backend *be, const wasm_module *m, uint8_t flags, int fd) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
        return;
    uint32_t nc = m->nfuncs - m->nimported_funcs, best = UINT32_MAX;
    for (uint32_t k = 0; k < nc; k++) {
        uint32_t c = m->codes[k].ncode;
        if (c <= 120 && (best == UINT32_MAX || c > m->codes[best].ncode))
            best = k;
    }
    if (best == UINT32_MAX)
        return;
    uint8_t *sel = xcalloc(nc, 1);
    sel[best] = JIT_SEL_FN;
    jit_gen_opts go = {
        .guard = flags & SRV_GUARD, .fuel = flags & SRV_FUEL, .sel = sel, .level = JIT_LEVEL_MID};
    uint8_t *o = NULL;
    size_t n = 0;
    char e[256];
    if (be->compile(m, &go, &o, &n, e, sizeof e) == 0)
        free(o);
    free(sel);
}

_Noreturn void jit_compiler_main(const jit_backend *(*load)(void)) {
    /* Named apart from the interpreter's process for ps, top and perf (`perf report --sort
     * comm` then splits the compiler's samples from the interpreter's). */
    (void)prctl(PR_SET_NAME, "psl-jitc");
    uint64_t t0 = plat_now_ns();
    srv_mods sm = {0};
    int fd = SRV_SOCK_FD;
    if (srv_read_mods(SRV_MODS_FD, &sm) != 0) {
        fprintf(stderr, "psl: jit: the compiler process got no valid modules\n");
        _exit(1);
    }
    close(SRV_MODS_FD);
    uint64_t t1 = plat_now_ns();
    const jit_backend *be = load ? load() : NULL;
    uint64_t t2 = plat_now_ns();
    if (be && sm.n)
        srv_warm_up(be, sm.m[0], sm.flags, fd);
    if (getenv("PSL_JIT_STATS"))
        fprintf(stderr,
                "psl: jit: compiler process ready %.1f ms after its start (modules %.1f ms, "
                "backend %.1f, warm-up %.1f)\n",
                (double)(plat_now_ns() - t0) / 1e6, (double)(t1 - t0) / 1e6,
                (double)(t2 - t1) / 1e6, (double)(plat_now_ns() - t2) / 1e6);
    for (;;) {
        srv_req rq;
        if (read_all(fd, &rq, sizeof rq) != 0)
            _exit(0); /* the parent closed its side or exited */
        const wasm_module *m = NULL;
        for (uint32_t i = 0; i < sm.n && !m; i++)
            if (sm.id[i] == rq.m)
                m = sm.m[i];
        uint8_t *sel = NULL;
        uint32_t *osr = NULL;
        uint64_t **vals = NULL;
        if (m && rq.nc != m->nfuncs - m->nimported_funcs)
            m = NULL;
        if (rq.has_sel) {
            sel = xmalloc(rq.nc ? rq.nc : 1);
            osr = xmalloc((rq.nc ? rq.nc : 1) * sizeof *osr);
            vals = xcalloc(rq.nc ? rq.nc : 1, sizeof *vals);
            if (read_all(fd, sel, rq.nc) != 0 || read_all(fd, osr, rq.nc * sizeof *osr) != 0)
                _exit(0);
            for (uint32_t k = 0; k < rq.nc; k++) {
                uint8_t has = 0;
                if (!(sel[k] & JIT_SEL_OSR))
                    continue;
                if (read_all(fd, &has, 1) != 0)
                    _exit(0);
                if (!has)
                    continue;
                uint64_t ns = 0;
                if (read_all(fd, &ns, 8) != 0 || ns > UINT32_MAX)
                    _exit(0);
                vals[k] = xmalloc((ns ? ns : 1) * sizeof *vals[k]);
                if (read_all(fd, vals[k], ns * sizeof *vals[k]) != 0)
                    _exit(0);
                if (m && ns != m->codes[k].nslots) {
                    free(vals[k]);
                    vals[k] = NULL;
                    m = NULL;
                }
            }
        }
        jit_gen_opts go = {.verify = rq.flags & SRV_VERIFY,
                           .guard = rq.flags & SRV_GUARD,
                           .fuel = rq.flags & SRV_FUEL,
                           .sel = sel,
                           .osr_cell = osr,
                           .osr_vals = (const uint64_t *const *)vals,
                           .level = rq.level};
        uint8_t *o = NULL;
        size_t n = 0;
        char e[256] = "no compiler (the JIT module could not be loaded)";
        int rc = ERR_INVALID;
        if (!m)
            snprintf(e, sizeof e, "the compiler process does not hold that module");
        else if (be)
            rc = be->compile(m, &go, &o, &n, e, sizeof e);
        uint64_t hdr = rc ? UINT64_MAX : n;
        if (send_all(fd, &hdr, 8) != 0 ||
            (rc ? send_all(fd, e, sizeof e) : send_all(fd, o, n)) != 0)
            _exit(0);
        free(o);
        free(sel);
        free(osr);
        for (uint32_t k = 0; vals && k < rq.nc; k++)
            free(vals[k]);
        free(vals);
    }
}

/* fd moved to a descriptor >= 10 (close-on-exec), so that the spawn's dup2 onto 3 and 4 never
 * meets its own source. -1 on failure (fd closed). */
static int fd_high(int fd) {
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return h;
}

int jit_compiler_start(const jit_config *cfg, wasm_module *const *mods, uint32_t n) {
    extern char **environ;
    if (n == 0)
        return ERR_INVALID;
    pthread_mutex_lock(&g_srv_mu);
    if (g_srv_pid > 0) {
        pthread_mutex_unlock(&g_srv_mu);
        return ERR_INVALID;
    }
    int sv[2] = {-1, -1}, mfd = memfd_create("psl-jit-modules", MFD_CLOEXEC), rc = ERR_IO;
    if (mfd >= 0)
        mfd = fd_high(mfd);
    if (mfd >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        sv[1] = fd_high(sv[1]);
        uint8_t hdr[16] = SRV_MAGIC;
        memcpy(hdr + 8, &n, 4);
        hdr[12] =
            srv_flags(jit_bounds_resolve(cfg->bounds) == JIT_BOUNDS_GUARD, resolve_fuel(), false);
        rc = sv[1] >= 0 && put_all(mfd, hdr, sizeof hdr, false) == 0 ? 0 : ERR_IO;
        for (uint32_t i = 0; !rc && i < n; i++) {
            uint64_t mh[2] = {(uint64_t)(uintptr_t)mods[i], mods[i]->len};
            rc = put_all(mfd, mh, sizeof mh, false) == 0 &&
                         put_all(mfd, mods[i]->bytes, mods[i]->len, false) == 0
                     ? 0
                     : ERR_IO;
        }
    }
    pid_t pid = -1;
    if (!rc) {
        posix_spawn_file_actions_t fa;
        char a0[] = "psl-jitc", a1[] = JIT_COMPILER_ARG;
        char *argv[] = {a0, a1, NULL};
        rc = ERR_IO;
        if (posix_spawn_file_actions_init(&fa) == 0) {
            if (posix_spawn_file_actions_adddup2(&fa, sv[1], SRV_SOCK_FD) == 0 &&
                posix_spawn_file_actions_adddup2(&fa, mfd, SRV_MODS_FD) == 0 &&
                posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) == 0 &&
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) == 0 &&
                posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) == 0)
                rc = 0;
            posix_spawn_file_actions_destroy(&fa);
        }
    }
    if (mfd >= 0)
        close(mfd);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc) {
        if (sv[0] >= 0)
            close(sv[0]);
        pthread_mutex_unlock(&g_srv_mu);
        return rc;
    }
    g_srv_pid = pid;
    g_srv_fd = sv[0];
    free(g_srv_mods);
    g_srv_mods = xmalloc(n * sizeof *g_srv_mods);
    memcpy(g_srv_mods, mods, n * sizeof *g_srv_mods);
    g_srv_nmods = n;
    pthread_mutex_unlock(&g_srv_mu);
    return 0;
}

static void srv_stop(void);

void jit_compiler_forget(const wasm_module *m) {
    pthread_mutex_lock(&g_srv_mu);
    bool had = false;
    for (uint32_t i = 0; i < g_srv_nmods; i++)
        if (g_srv_mods[i] == m) {
            g_srv_mods[i] = g_srv_mods[--g_srv_nmods];
            had = true;
        }
    /* The last of its modules: the process has nothing left to do (the end of a run). */
    if (had && g_srv_nmods == 0)
        srv_stop();
    pthread_mutex_unlock(&g_srv_mu);
}

/* Stop the compiler process (under g_srv_mu): after a failed exchange, or killed by a module's
 * cancellation. It is not waited for: tearing down its copy of this process takes milliseconds,
 * which the end of a short run would pay; waitpid(WNOHANG) reaps it later (a zombie until then). */
static pid_t g_srv_dead;

static void srv_stop(void) {
    if (g_srv_dead > 0 && waitpid(g_srv_dead, NULL, WNOHANG) != 0)
        g_srv_dead = 0;
    if (g_srv_pid <= 0)
        return;
    kill(g_srv_pid, SIGKILL);
    if (waitpid(g_srv_pid, NULL, WNOHANG) == 0)
        g_srv_dead = g_srv_pid;
    close(g_srv_fd);
    g_srv_fd = -1;
    g_srv_pid = 0;
    g_srv_nmods = 0;
}

/* Per OSR entry of the batch: a byte (has a frame), then the frame's nslots and values. */
static int send_osr_vals(jit_mod *jm, const uint8_t *sel) {
    for (uint32_t k = 0; k < jm->nc; k++) {
        if (!(sel[k] & JIT_SEL_OSR))
            continue;
        const uint64_t *v = jm->osr_vals ? jm->osr_vals[k] : NULL;
        uint8_t has = v != NULL;
        uint64_t ns = jm->m->codes[k].nslots;
        if (send_all(g_srv_fd, &has, 1) != 0 ||
            (v && (send_all(g_srv_fd, &ns, 8) != 0 || send_all(g_srv_fd, v, ns * sizeof *v) != 0)))
            return ERR_IO;
    }
    return 0;
}

/* Compile through the compiler process when it holds jm's module. Returns ERR_NOTFOUND when it
 * does not (or there is none): compile in this process then. Freeing the module meanwhile kills
 * the process (jm->child), as it kills a forked compiler. */
static int srv_compile(jit_mod *jm, const uint8_t *sel, int level, uint8_t **obj, size_t *len,
                       char *err, size_t errlen) {
    pthread_mutex_lock(&g_srv_mu);
    bool has = false;
    for (uint32_t i = 0; i < g_srv_nmods && !has; i++)
        has = g_srv_mods[i] == jm->m;
    if (g_srv_pid <= 0 || !has) {
        pthread_mutex_unlock(&g_srv_mu);
        return ERR_NOTFOUND;
    }
    pthread_mutex_lock(&jm->mu);
    bool cancel = jm->cancel;
    if (!cancel) {
        jm->child = g_srv_pid;
        jm->child_fd = g_srv_fd;
    }
    pthread_mutex_unlock(&jm->mu);
    int rc = ERR_IO;
    uint64_t n = 0;
    *obj = NULL;
    srv_req rq = {.m = (uint64_t)(uintptr_t)jm->m,
                  .nc = jm->nc,
                  .has_sel = sel != NULL,
                  .level = (uint8_t)level,
                  .flags = srv_flags(g_guard, g_fuel, g_cfg.verify)};
    if (cancel) {
        snprintf(err, errlen, "cancelled");
    } else if (send_all(g_srv_fd, &rq, sizeof rq) != 0 ||
               (sel && (send_all(g_srv_fd, sel, jm->nc) != 0 ||
                        send_all(g_srv_fd, jm->osr_cell, jm->nc * sizeof *jm->osr_cell) != 0 ||
                        send_osr_vals(jm, sel) != 0)) ||
               read_all(g_srv_fd, &n, 8) != 0) {
        snprintf(err, errlen, "compiler process ended early");
        srv_stop();
    } else if (n == UINT64_MAX) {
        char e[256];
        rc = read_all(g_srv_fd, e, sizeof e) == 0 ? ERR_INVALID : ERR_IO;
        snprintf(err, errlen, "%.200s", rc == ERR_INVALID ? e : "compiler process ended early");
        if (rc == ERR_IO)
            srv_stop();
    } else {
        *obj = xmalloc(n ? n : 1);
        rc = read_all(g_srv_fd, *obj, n);
        if (rc == 0) {
            *len = n;
            stat_add(&g_stats.remote_compiles, 1);
        } else {
            snprintf(err, errlen, "compiler process ended early");
            srv_stop();
        }
    }
    pthread_mutex_lock(&jm->mu);
    jm->child = 0;
    jm->child_fd = -1;
    pthread_mutex_unlock(&jm->mu);
    pthread_mutex_unlock(&g_srv_mu);
    if (rc) {
        free(*obj);
        *obj = NULL;
    }
    return rc;
}

/* Load an object (whole module, or the batch sel) from the code cache. 0 on a hit. */
static int cache_load(jit_mod *jm, const uint8_t key[32], const uint8_t *sel, int level, char *err,
                      size_t errlen) {
    uint64_t t0 = plat_now_ns();
    uint8_t *file;
    size_t n;
    const uint8_t *obj = cache_read(key, &file, &n);
    if (!obj)
        return ERR_NOTFOUND;
    int rc = load_object(jm, obj, n, sel, level, err, errlen);
    free(file);
    if (rc == 0) {
        stat_add(&g_stats.cache_hits, 1);
        stat_add(&g_stats.compile_ns, plat_now_ns() - t0);
        return 0;
    }
    stat_add(&g_stats.cache_rejected, 1);
    return rc;
}

/* Compile and link the whole module (sel NULL) or a batch: from the cache when it holds the
 * object, else with LLVM (in a child process on the auto tier's thread). */
static int compile_objects(jit_mod *jm, const uint8_t *sel, int level, char *err, size_t errlen) {
    wasm_module *m = jm->m;
    uint64_t t0 = plat_now_ns();
    uint8_t key[32];
    int rc;
    if (g_cache_ok) {
        cache_key(m, sel, jm->osr_cell, jm->osr_vals, jm->nc, level, key);
        if (cache_load(jm, key, sel, level, err, errlen) == 0)
            return 0;
    }
    uint8_t *obj = NULL;
    size_t n = 0;
    rc = jm->has_thread ? srv_compile(jm, sel, level, &obj, &n, err, errlen) : ERR_NOTFOUND;
    const jit_backend *be = rc == ERR_NOTFOUND ? backend() : NULL;
    if (rc == ERR_NOTFOUND && !be) {
        snprintf(err, errlen, "no compiler (the JIT module could not be loaded)");
        return ERR_INVALID;
    }
    if (rc != ERR_NOTFOUND) {
        /* compiled by the compiler process, or failed there */
    } else if (jm->has_thread && !plat_sanitizer_build()) {
        /* Under AddressSanitizer the compile stays in this thread (freeing the module then waits
         * for it): its allocator is not fork-safe (gcc 12's libasan), and a child forked while
         * the interpreter allocates could inherit a held lock or a half-updated heap. */
        rc = compile_in_child(jm, be, sel, level, &obj, &n, err, errlen);
    } else {
        jit_gen_opts go = {.verify = g_cfg.verify,
                           .guard = g_guard,
                           .fuel = g_fuel,
                           .sel = sel,
                           .osr_cell = jm->osr_cell,
                           .osr_vals = (const uint64_t *const *)jm->osr_vals,
                           .level = (uint8_t)level};
        rc = be->compile(m, &go, &obj, &n, err, errlen);
    }
    if (rc)
        return rc;
    pthread_mutex_lock(&jm->mu);
    bool cancelled = jm->cancel;
    pthread_mutex_unlock(&jm->mu);
    if (cancelled) {
        free(obj);
        return ERR_IO;
    }
    rc = load_object(jm, obj, n, sel, level, err, errlen);
    if (rc == 0 && g_cache_ok)
        cache_write(key, obj, n);
    free(obj);
    if (rc == 0) {
        uint64_t dt = plat_now_ns() - t0;
        stat_add(&g_stats.modules_compiled, 1);
        stat_add(&g_stats.compile_ns, dt);
        if (getenv("PSL_JIT_STATS")) {
            uint32_t nf = 0, cells = 0;
            for (uint32_t k = 0; k < jm->nc; k++)
                if (!sel || sel[k]) {
                    nf++;
                    cells += m->codes[k].ncode;
                }
            fprintf(stderr,
                    "psl: jit: compiled %u of %u functions%s (%u cells; %zu bytes of wasm, %zu of "
                    "object) in %.1f ms, linked %.1f ms after start\n",
                    nf, jm->nc,
                    level == JIT_LEVEL_QUICK ? " quick"
                    : level == JIT_LEVEL_MID ? " mid"
                                             : "",
                    cells, m->len, n, (double)dt / 1e6, (double)(plat_now_ns() - g_t0) / 1e6);
            for (uint32_t k = 0; sel && atoi(getenv("PSL_JIT_STATS")) > 1 && k < jm->nc; k++) {
                if (!sel[k])
                    continue;
                if (sel[k] & JIT_SEL_OSR)
                    fprintf(stderr,
                            "psl: jit:   function %u: %u cells, with an OSR entry at cell %u\n",
                            m->nimported_funcs + k, m->codes[k].ncode, jm->osr_cell[k]);
                else
                    fprintf(stderr, "psl: jit:   function %u: %u cells\n", m->nimported_funcs + k,
                            m->codes[k].ncode);
            }
        }
    }
    return rc;
}

static void report(const char *msg) {
    fprintf(stderr, "psl: jit: %s (the module stays interpreted)\n", msg);
}

/* ---- auto tier: sampling and batches of hot functions ---- */

/* The defined function whose code holds cell at, or UINT32_MAX. */
static uint32_t code_at(const jit_mod *jm, const wasm_cell *at) {
    const wasm_module *m = jm->m;
    uint32_t lo = 0, hi = jm->nc;
    while (lo < hi) { /* last function starting at or before at */
        uint32_t mid = (lo + hi) / 2;
        if (m->codes[jm->by_addr[mid]].code <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return UINT32_MAX;
    uint32_t k = jm->by_addr[lo - 1];
    return at < m->codes[k].code + m->codes[k].ncode ? k : UINT32_MAX;
}

static void *hot_thread(void *arg);

/* Start the hot thread (once). False when it cannot be started. */
static bool hot_start(jit_mod *jm) {
    if (!jm->thread_started && pthread_create(&jm->thread, NULL, hot_thread, jm) == 0)
        jm->thread_started = true;
    return jm->thread_started;
}

/* Under mu: wake the hot thread for new work, starting it first if it was deferred. If it cannot
 * be started the work stays queued and the functions interpreted. */
static void hot_wake(jit_mod *jm) {
    if (!jm->wait_since)
        jm->wait_since = plat_now_ns();
    if (hot_start(jm))
        pthread_cond_signal(&jm->cv);
}

/* Queue function k for the hot thread unless it is queued, compiling or compiled already. */
static void queue_cold(jit_mod *jm, uint32_t k) {
    pthread_mutex_lock(&jm->mu);
    if (jm->state[k] == ST_COLD) {
        jm->state[k] = ST_QUEUED;
        jm->nqueued++;
        hot_wake(jm);
    }
    pthread_mutex_unlock(&jm->mu);
}

/* One more sample of function k: queue it for the hot thread when it turns hot. */
static void count_sample(jit_mod *jm, uint32_t k) {
    if (atomic_fetch_add(&jm->samples[k], 1) + 1 == JIT_HOT_SAMPLES)
        queue_cold(jm, k);
}

/* An interpreted function called from compiled code runs in a fresh interpreter activation,
 * whose fuel starts full: a short callee never runs out of it and is never sampled, so hot code
 * under a native caller stayed interpreted for good (expr: musl's printf_core, called from a
 * main that had gone native through OSR before printf_core was sampled twice, 5.9 s instead of
 * ~1.2 s). Such calls count as samples at the callee's entry instead: one per JIT_FUEL_PERIOD
 * cells of callee code called. */
static void call_sample(const wasm_module *m, uint32_t k) {
    jit_mod *jm = m->tier_data;
    if (!jm || !jm->by_addr)
        return;
    uint32_t w = m->codes[k].ncode + 16;
    uint32_t old = atomic_fetch_add_explicit(&jm->callw[k], w, memory_order_relaxed);
    if ((old + w) / JIT_FUEL_PERIOD != old / JIT_FUEL_PERIOD) {
        atomic_store_explicit(&jm->entered[k], 1, memory_order_relaxed);
        count_sample(jm, k);
    }
}

/* The newest OSR entry of function k at loop head cell, or NULL. */
static void *osr_entry_at(jit_mod *jm, uint32_t k, uint32_t cell, void **any) {
    void *o = NULL;
    for (unsigned j = 0; j < JIT_MAX_OSR; j++) {
        void *e = atomic_load_explicit(&jm->osr[k * JIT_MAX_OSR + j], memory_order_acquire);
        if (!e)
            break;
        if (any)
            *any = e;
        if (jm->osr_at[k * JIT_MAX_OSR + j] == cell)
            o = e;
    }
    return o;
}

static int sample(wasm_store *s, wasm_instance *inst, const wasm_cell *at, bool back, wasm_val *fp,
                  const wasm_cell **resume) {
    jit_mod *jm = inst->mod->tier_data;
    if (!jm || !jm->by_addr)
        return 0;
    uint32_t k = code_at(jm, at);
    if (k == UINT32_MAX)
        return 0;
    if (!back && at == inst->mod->codes[k].code) /* a call (forward branches are not back) */
        atomic_store_explicit(&jm->entered[k], 1, memory_order_relaxed);
    count_sample(jm, k);
    if (!back)
        return 0;
    const wasm_code *code = &inst->mod->codes[k];
    uint32_t cell = (uint32_t)(at - code->code);
    atomic_store_explicit(&jm->back_at[k], cell, memory_order_relaxed);
    if (jm->snap) {
        pthread_mutex_lock(&jm->mu);
        if (!jm->snap[k])
            jm->snap[k] = xmalloc((code->nslots ? code->nslots : 1) * sizeof *jm->snap[k]);
        memcpy(jm->snap[k], fp, code->nslots * sizeof *jm->snap[k]);
        jm->snap_at[k] = cell;
        pthread_mutex_unlock(&jm->mu);
    }
    void *any = NULL, *o = osr_entry_at(jm, k, cell, &any);
    if (o && getenv("PSL_JIT_STATS"))
        fprintf(stderr, "psl: jit: function %u enters its OSR entry at cell %u after %.1f ms\n",
                inst->mod->nimported_funcs + k, cell, (double)(plat_now_ns() - g_t0) / 1e6);
    int rc = o ? enter_native(s, inst, code, fp, o, true, cell) : -1;
    /* Left for newer code (JIT_OSR_LEFT): the frame is at loop head -rc - JIT_OSR_LEFT. Enter
     * the newest entry there if there is one, else the interpreter goes on from that head. */
    while (rc <= -JIT_OSR_LEFT) {
        cell = (uint32_t)(-(rc + JIT_OSR_LEFT));
        *resume = code->code + cell;
        stat_add(&g_stats.osr_left, 1);
        o = osr_entry_at(jm, k, cell, NULL);
        if (getenv("PSL_JIT_STATS"))
            fprintf(stderr, "psl: jit: function %u left its OSR code at cell %u after %.1f ms%s\n",
                    inst->mod->nimported_funcs + k, cell, (double)(plat_now_ns() - g_t0) / 1e6,
                    o ? ", enters the newer entry there" : "");
        rc = o ? enter_native(s, inst, code, fp, o, true, cell) : -1;
    }
    if (rc == -2) {
        /* Specialised to another frame: this is another activation (see osr_specialize), so
         * the function is called after all: compile its ordinary copy too. */
        if (getenv("PSL_JIT_STATS"))
            fprintf(stderr, "psl: jit: function %u declined its OSR entry (another frame)\n",
                    inst->mod->nimported_funcs + k);
        atomic_store(&jm->entered[k], 1);
        if (!atomic_load_explicit(&code->tier_entry, memory_order_relaxed))
            queue_cold(jm, k);
    }
    if (rc < 0) {
        /* Linked without an OSR entry (it looked called often), or with one for another loop
         * head, yet still sampled interpreted: an activation that started before is looping
         * here. Ask for an OSR entry at this loop head. */
        if ((any || atomic_load_explicit(&code->tier_entry, memory_order_relaxed)) &&
            atomic_fetch_add(&jm->late[k], 1) + 1 >= JIT_HOT_SAMPLES) {
            atomic_store(&jm->late[k], 0);
            pthread_mutex_lock(&jm->mu);
            if (rc == -2) {
                jm->osr_stale[k] = 1;
                jm->nospec[k] = 1;
                stat_add(&g_stats.osr_stale, 1);
            }
            if (jm->osr_req[k] != 1 && jm->nosr[k] < JIT_MAX_OSR) {
                jm->osr_req[k] = 1;
                jm->osr_want[k] = cell;
                jm->nqueued++;
                hot_wake(jm);
            }
            pthread_mutex_unlock(&jm->mu);
        }
        return 0;
    }
    stat_add(&g_stats.osr_entries, 1);
    if (!atomic_load_explicit(&code->tier_entry, memory_order_relaxed) &&
        atomic_exchange(&jm->entered[k], 1) == 1) {
        /* A second activation reached its OSR entry: it is called after all, so compile its
         * ordinary copy too. */
        queue_cold(jm, k);
    }
    if (getenv("PSL_JIT_STATS"))
        fprintf(stderr, "psl: jit: function %u left by OSR after %.1f ms (%s)\n",
                inst->mod->nimported_funcs + k, (double)(plat_now_ns() - g_t0) / 1e6,
                rc ? "trap" : "returned");
    return rc == 0 ? -1 : rc;
}

uint32_t psl_jit_osr_ready(jit_ctx *c, uint32_t k, uint32_t cell) {
    jit_mod *jm = c->inst->mod->tier_data;
    if (!jm || k >= jm->nc)
        return 0;
    bool ready = osr_entry_at(jm, k, cell, NULL) != NULL;
    if (getenv("PSL_JIT_STATS"))
        fprintf(stderr,
                "psl: jit: function %u's OSR code at the loop at cell %u after %.1f ms: %s\n",
                jm->m->nimported_funcs + k, cell, (double)(plat_now_ns() - g_t0) / 1e6,
                ready ? "leaves for its entry" : "has none");
    /* Not for a function seen being called: its activations are short and new ones start in
     * its ordinary copy (as for osr_again); checked before the lock, which such a function's
     * OSR code (sort's quicksort) would otherwise take at every change of its OSR count. */
    if (ready || atomic_load_explicit(&jm->entered[k], memory_order_relaxed))
        return ready;
    pthread_mutex_lock(&jm->mu);
    if (jm->osr_req[k] != 1 && jm->nosr[k] < JIT_MAX_OSR) {
        stat_add(&g_stats.osr_asked, 1);
        jm->osr_req[k] = 1;
        jm->osr_want[k] = cell;
        /* No interpreter frame to specialise the entry to: a snapshot at cell is another
         * activation's. */
        if (jm->snap && jm->snap_at[k] == cell)
            jm->snap_at[k] = UINT32_MAX;
        jm->nqueued++;
        hot_wake(jm);
    }
    pthread_mutex_unlock(&jm->mu);
    return 0;
}

static uint32_t small_cells(void) {
    const char *e = getenv("PSL_JIT_SMALL");
    return e ? (uint32_t)atoi(e) : JIT_SMALL_CELLS;
}

/* Add the callees of function k that are small and still cold to the batch, recursively. */
static void add_callees(jit_mod *jm, uint32_t k, uint8_t *sel, uint32_t *cells) {
    const wasm_module *m = jm->m;
    uint32_t n = jit__callees(m, k, NULL, 0);
    uint32_t *cs = xmalloc((n ? n : 1) * sizeof *cs);
    n = jit__callees(m, k, cs, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = cs[i];
        const wasm_code *t = &m->codes[j];
        /* A callee linked as quick code is compiled again, to be inlined. */
        bool quick_done = jm->state[j] == ST_DONE && jm->quick[j];
        if (sel[j] || (jm->state[j] != ST_COLD && !quick_done) || t->ncode > small_cells() ||
            *cells + t->ncode > JIT_BATCH_CELLS)
            continue;
        sel[j] = JIT_SEL_FN;
        if (!quick_done)
            jm->state[j] = ST_TAKEN;
        *cells += t->ncode;
        add_callees(jm, j, sel, cells);
    }
    free(cs);
}

/* The level (JIT_LEVEL_*) of function k's OSR entry at loop head cell, or -1 when it has none
 * there. (Under mu, or from the hot thread, which alone links.) */
static int osr_level_at(const jit_mod *jm, uint32_t k, uint32_t cell) {
    for (unsigned q = 0; q < JIT_MAX_OSR; q++)
        if (atomic_load(&jm->osr[k * JIT_MAX_OSR + q]) && jm->osr_at[k * JIT_MAX_OSR + q] == cell)
            return jm->osr_level[k * JIT_MAX_OSR + q];
    return -1;
}

/* Levels ($PSL_JIT_QUICK unset): called functions are compiled quick first, then at the mid and
 * the default level when the thread has nothing newer to do. 0: default level only; 1: quick
 * only; mid: mid only (jit__forced_level). */
static bool two_levels(void) {
    const char *q = getenv("PSL_JIT_QUICK");
    return !q || !*q;
}

/* The levels a quick batch is compiled at again: mid, then default ($PSL_JIT_REPLACE: "mid"
 * only the first, "default" only the second; experiments). */
static void replace_levels(int *first, int *then_default) {
    const char *e = getenv("PSL_JIT_REPLACE");
    *first = e && strcmp(e, "default") == 0 ? JIT_LEVEL_DEFAULT : JIT_LEVEL_MID;
    *then_default = *first == JIT_LEVEL_MID && !(e && strcmp(e, "mid") == 0);
}

/* New batches (OSR entries, small functions) compiled at the mid level first, then their called
 * functions at the default level ($PSL_JIT_FIRST=default: at the default level at once). */
static bool mid_first(void) {
    const char *e = getenv("PSL_JIT_FIRST");
    return two_levels() && !(e && strcmp(e, "default") == 0);
}

static uint32_t quick_cells(void) {
    const char *e = getenv("PSL_JIT_QUICK_CELLS");
    return e && *e ? (uint32_t)atoi(e) : JIT_QUICK_CELLS;
}

static uint32_t default_max_cells(void) {
    const char *e = getenv("PSL_JIT_DEFAULT_MAX_CELLS");
    return e && *e ? (uint32_t)atoi(e) : JIT_DEFAULT_MAX_CELLS;
}

static uint32_t after_cells(void) {
    const char *e = getenv("PSL_JIT_AFTER_CELLS");
    return e && *e ? (uint32_t)atoi(e) : JIT_AFTER_CELLS;
}

/* The cells of batch sel's functions. */
static uint32_t sel_cells(const jit_mod *jm, const uint8_t *sel) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < jm->nc; k++)
        if (sel[k])
            n += jm->m->codes[k].ncode;
    return n;
}

/* Batches waiting (newest last) to be compiled again at a higher level when the hot thread has
 * nothing newer to do: quick batches (mid, then default; replace_levels), and the called
 * functions and the OSR entries of batches compiled at the mid level (default). Only the hot thread
 * uses it (no lock); it frees what is left when it ends. */
typedef struct later_q {
    uint8_t **sel;
    uint8_t *level;
    uint32_t n;
} later_q;

static void later_push(later_q *q, uint8_t *sel, int level) {
    q->sel = xrealloc(q->sel, (q->n + 1) * sizeof *q->sel);
    q->level = xrealloc(q->level, q->n + 1);
    q->sel[q->n] = sel;
    q->level[q->n++] = (uint8_t)level;
}

static bool has_osr_sel(const uint8_t *sel, uint32_t nc) {
    for (uint32_t k = 0; k < nc; k++)
        if (sel[k] & JIT_SEL_OSR)
            return true;
    return false;
}

/* The next batch to compile again (jit__later_pick) taken off the queue. */
static uint8_t *later_pop(const jit_mod *jm, later_q *q, int *level) {
    jit_later *w = xmalloc(q->n * sizeof *w);
    for (uint32_t j = 0; j < q->n; j++)
        w[j] = (jit_later){.level = q->level[j],
                           .osr = has_osr_sel(q->sel[j], jm->nc),
                           .cells = sel_cells(jm, q->sel[j])};
    const char *order = getenv("PSL_JIT_LATER");
    uint32_t i = jit__later_pick(w, q->n, order && strcmp(order, "fifo") == 0);
    free(w);
    uint8_t *b = q->sel[i];
    *level = q->level[i];
    q->n--;
    memmove(q->sel + i, q->sel + i + 1, (q->n - i) * sizeof *q->sel);
    memmove(q->level + i, q->level + i + 1, q->n - i);
    return b;
}

/* The called functions (not OSR entries) of batch sel, as a new batch; NULL when there are none. */
static uint8_t *called_of(const jit_mod *jm, const uint8_t *sel) {
    uint8_t *d = xmalloc(jm->nc);
    bool any = false;
    for (uint32_t k = 0; k < jm->nc; k++) {
        d[k] = sel[k] & JIT_SEL_FN;
        any |= d[k] != 0;
    }
    if (!any) {
        free(d);
        return NULL;
    }
    return d;
}

/* The OSR entries of batch sel whose functions were not seen being called, with the small
 * functions of sel (inlined there), as a new batch; NULL when there are none (or with
 * $PSL_JIT_OSR_AGAIN=0, for comparisons: OSR entries keep their mid-level code). */
static uint8_t *osr_again(const jit_mod *jm, const uint8_t *sel) {
    const char *e = getenv("PSL_JIT_OSR_AGAIN");
    if (e && strcmp(e, "0") == 0)
        return NULL;
    uint8_t *o = xcalloc(jm->nc, 1);
    bool any = false;
    /* (Each batch asks again for its functions' entries at their latest head, osr_cell: three
     * mid-level batches of sha256's main made three default-level compiles of one entry.) */
    for (uint32_t k = 0; k < jm->nc; k++)
        if ((sel[k] & JIT_SEL_OSR) && !atomic_load(&jm->entered[k]) &&
            osr_level_at(jm, k, jm->osr_cell[k]) != JIT_LEVEL_DEFAULT) {
            o[k] = sel[k];
            any = true;
        } else if ((sel[k] & JIT_SEL_FN) && jm->m->codes[k].ncode <= small_cells()) {
            o[k] = JIT_SEL_FN;
        }
    if (!any) {
        free(o);
        return NULL;
    }
    return o;
}

static void *hot_thread(void *arg) {
    jit_mod *jm = arg;
    uint8_t *sel = xmalloc(jm->nc);
    later_q later = {0};
    int first_level, then_default;
    replace_levels(&first_level, &then_default);
    char err[256];
    for (;;) {
        pthread_mutex_lock(&jm->mu);
        while (!jm->cancel && jm->nqueued == 0 && later.n == 0)
            pthread_cond_wait(&jm->cv, &jm->mu);
        if (jm->cancel) {
            pthread_mutex_unlock(&jm->mu);
            break;
        }
        if (jm->nqueued == 0) {
            /* Nothing newly hot: compile a waiting batch again (the interpreter and compiled
             * callers in other objects switch at their next call). */
            int level;
            uint8_t *b = later_pop(jm, &later, &level);
            pthread_mutex_unlock(&jm->mu);
            if (has_osr_sel(b, jm->nc)) { /* OSR entries again: still of uncalled functions? */
                uint8_t *o = osr_again(jm, b);
                free(b);
                if (!o)
                    continue;
                b = o;
            }
            int rc = compile_objects(jm, b, level, err, sizeof err);
            if (rc != 0 && !jm->cancel)
                report(err);
            /* then at the default level, unless it is big (JIT_DEFAULT_MAX_CELLS) */
            if (rc == 0 && level == JIT_LEVEL_MID && then_default &&
                sel_cells(jm, b) < default_max_cells())
                later_push(&later, b, JIT_LEVEL_DEFAULT);
            else
                free(b);
            continue;
        }
        /* The sampled functions (with OSR entries: they may be running a long loop right now)
         * and their small callees, so that calls between them are native and inlinable. */
        memset(sel, 0, jm->nc);
        uint32_t cells = 0;
        bool hot_fn = false; /* a called function turned hot (not only small callees below) */
        for (uint32_t k = 0; k < jm->nc; k++) {
            uint32_t at = atomic_load_explicit(&jm->back_at[k], memory_order_relaxed);
            if (jm->state[k] == ST_QUEUED) {
                /* A function not seen being called (a long activation looping, such as a
                 * benchmark's main) gets only an OSR entry at the loop head it was sampled
                 * at: its ordinary copy would be compiled for nothing. If it is called later
                 * and turns hot again, it is compiled then. */
                jm->state[k] = ST_TAKEN;
                jit_hot c = jit__hot_choice(atomic_load(&jm->entered[k]), at != UINT32_MAX,
                                            jm->nosr[k] < JIT_MAX_OSR,
                                            at != UINT32_MAX && osr_level_at(jm, k, at) >= 0);
                if (c == JIT_HOT_OSR) {
                    jm->osr_req[k] = 1;
                    jm->osr_want[k] = at;
                } else if (c == JIT_HOT_COLD) {
                    jm->state[k] = ST_COLD;
                    atomic_store(&jm->samples[k], 0);
                } else {
                    /* Called (its new activations start interpreted), never sampled in a loop,
                     * or out of OSR entries: its ordinary copy (jit__hot_choice). */
                    sel[k] = JIT_SEL_FN;
                    hot_fn = true;
                }
            }
            if (jm->osr_req[k] == 1) {
                jm->osr_req[k] = 2;
                /* The request may be older than the entry it asks for (unless that one declined
                 * a frame it was not specialised to). */
                if (osr_level_at(jm, k, jm->osr_want[k]) < 0 || jm->osr_stale[k]) {
                    jm->osr_stale[k] = 0;
                    jm->nosr[k]++;
                    jm->osr_cell[k] = jm->osr_want[k];
                    sel[k] |= JIT_SEL_OSR;
                }
            }
            if ((sel[k] & JIT_SEL_OSR) && jm->snap) {
                uint32_t ns = jm->m->codes[k].nslots;
                /* Not after a stale entry: the function runs as many activations with other
                 * frames (sha256's compress, called per block), where an unspecialised entry
                 * serves them all. */
                if (jm->snap[k] && jm->snap_at[k] == jm->osr_cell[k] && !jm->nospec[k]) {
                    if (!jm->osr_vals[k])
                        jm->osr_vals[k] = xmalloc((ns ? ns : 1) * sizeof *jm->osr_vals[k]);
                    memcpy(jm->osr_vals[k], jm->snap[k], ns * sizeof *jm->osr_vals[k]);
                } else {
                    free(jm->osr_vals[k]);
                    jm->osr_vals[k] = NULL;
                }
            }
            if (sel[k])
                cells += jm->m->codes[k].ncode;
        }
        uint32_t nsel = 0;
        for (uint32_t k = 0; k < jm->nc; k++)
            if (sel[k]) {
                nsel++;
                add_callees(jm, k, sel, &cells);
            }
        jm->nqueued = 0;
        if (getenv("PSL_JIT_STATS") && jm->wait_since)
            fprintf(stderr, "psl: jit: new work waited %.1f ms for the hot thread\n",
                    (double)(plat_now_ns() - jm->wait_since) / 1e6);
        jm->wait_since = 0;
        pthread_mutex_unlock(&jm->mu);
        if (nsel == 0)
            continue;
        /* Functions whose batch fails stay ST_TAKEN, that is interpreted for good. */
        uint32_t fn_cells = 0;
        bool quick_queued = false;
        bool has_osr = false;
        for (uint32_t k = 0; k < jm->nc; k++) {
            if (sel[k] & JIT_SEL_FN)
                fn_cells += jm->m->codes[k].ncode;
            has_osr |= (sel[k] & JIT_SEL_OSR) != 0;
        }
        if (fn_cells >= quick_cells() && fn_cells > 0 && two_levels()) {
            /* Called functions run quick code at once (a tenth of the compile time); their
             * mid- and default-level compiles follow when nothing newer waits. OSR entries are
             * compiled at the mid level at once (with the small functions, which they inline,
             * below): a long loop waits for them, and quick code would keep it until a newer
             * entry is linked. */
            uint8_t *q = called_of(jm, sel); /* not NULL: fn_cells > 0 */
            int rc = compile_objects(jm, q, JIT_LEVEL_QUICK, err, sizeof err);
            if (rc != 0) {
                if (!jm->cancel)
                    report(err);
                free(q);
                continue;
            }
            later_push(&later, q, first_level);
            quick_queued = true;
            if (!has_osr)
                continue;
            for (uint32_t k = 0; k < jm->nc; k++)
                if (!(sel[k] & JIT_SEL_OSR) && jm->m->codes[k].ncode > small_cells())
                    sel[k] = 0;
        }
        /* The batch (OSR entries, small functions) at the mid level first: a third of the
         * default level's compile time, so a long loop leaves the interpreter sooner. Its
         * called functions, and its OSR entries, are compiled again at the default level
         * later (below). */
        int level = mid_first() ? JIT_LEVEL_MID : JIT_LEVEL_DEFAULT;
        /* Unless an OSR entry's activation could not leave mid-level code soon for the
         * default-level entry compiled later: it leaves at back edges of the loops around the
         * entry's head, or, when none encloses it, of the head's own loop, and, once that loop
         * is done, of the top-level loops after it (jit_gen.c), once per iteration of those. An
         * iteration of a long one takes long: where one of JIT_AFTER_CELLS or more follows (lz's
         * main, entered in its first top-level loop, ran a whole repetition of its compressor
         * and decompressor as mid-level code), the batch is compiled at the default level at
         * once. (Session 14 did so for every loop after; sha256's main, entered in the loop
         * that fills its buffer, then held its compress's batch back ~25 ms.) */
        for (uint32_t k = 0; k < jm->nc && level == JIT_LEVEL_MID && has_osr; k++) {
            bool around;
            uint32_t after;
            if (!(sel[k] & JIT_SEL_OSR))
                continue;
            jit__loops_near(jm->m, k, jm->osr_cell[k], &around, &after);
            if (!around && after >= after_cells() && !jit__osr_after_mid())
                level = JIT_LEVEL_DEFAULT;
        }
        int rc = compile_objects(jm, sel, level, err, sizeof err);
        if (rc != 0 && !jm->cancel)
            report(err);
        /* (After a quick batch its called functions, the small ones left here among them,
         * are queued already.) Not when the batch calls no function that turned hot, only the
         * small callees its OSR entries inline: their default-level copies would be compiled
         * for nothing (sha256's main: malloc, free and three others, ~18 ms of LLVM, ahead of
         * compress's default-level copy). */
        uint8_t *d = rc == 0 && level == JIT_LEVEL_MID && !quick_queued && hot_fn
                         ? called_of(jm, sel)
                         : NULL;
        if (d)
            later_push(&later, d, JIT_LEVEL_DEFAULT);
        /* Its OSR entries again at the default level, last of all, with the small functions
         * they inline: the activations running their mid-level code then leave for it at the
         * next back edge of a loop around their head (jit_ctx.osr_epoch). Only for functions
         * not seen being called: a called one's new activations run its ordinary copy. */
        uint8_t *o = rc == 0 && level == JIT_LEVEL_MID && has_osr ? osr_again(jm, sel) : NULL;
        if (o)
            later_push(&later, o, JIT_LEVEL_DEFAULT);
    }
    for (uint32_t i = 0; i < later.n; i++)
        free(later.sel[i]);
    free(later.sel);
    free(later.level);
    free(sel);
    return NULL;
}

static int cmp_code_addr(const void *a, const void *b, void *ctx) {
    const wasm_module *m = ctx;
    const wasm_cell *x = m->codes[*(const uint32_t *)a].code,
                    *y = m->codes[*(const uint32_t *)b].code;
    return x < y ? -1 : x > y;
}

static void module_loaded(wasm_module *m) {
    if (m->nfuncs == m->nimported_funcs)
        return;
    jit_mod *jm = xcalloc(1, sizeof *jm);
    jm->m = m;
    jm->nc = m->nfuncs - m->nimported_funcs;
    jm->child_fd = -1;
    jm->state = xcalloc(jm->nc, 1);
    jm->quick = xcalloc(jm->nc, 1);
    jm->osr = xcalloc((size_t)jm->nc * JIT_MAX_OSR, sizeof *jm->osr);
    jm->osr_at = xcalloc((size_t)jm->nc * JIT_MAX_OSR, sizeof *jm->osr_at);
    jm->osr_level = xcalloc((size_t)jm->nc * JIT_MAX_OSR, 1);
    jm->entered = xcalloc(jm->nc, sizeof *jm->entered);
    jm->late = xcalloc(jm->nc, sizeof *jm->late);
    jm->osr_req = xcalloc(jm->nc, 1);
    jm->nosr = xcalloc(jm->nc, 1);
    jm->osr_cell = xcalloc(jm->nc, sizeof *jm->osr_cell);
    jm->osr_want = xcalloc(jm->nc, sizeof *jm->osr_want);
    const char *spec = getenv("PSL_JIT_OSR_SPECIALIZE");
    if (g_cfg.tier == JIT_TIER_AUTO && !(spec && strcmp(spec, "0") == 0)) {
        jm->snap = xcalloc(jm->nc, sizeof *jm->snap);
        jm->snap_at = xcalloc(jm->nc, sizeof *jm->snap_at);
        jm->osr_vals = xcalloc(jm->nc, sizeof *jm->osr_vals);
    }
    jm->osr_stale = xcalloc(jm->nc, 1);
    jm->nospec = xcalloc(jm->nc, 1);
    jm->back_at = xmalloc(jm->nc * sizeof *jm->back_at);
    jm->osr_epoch = xcalloc(jm->nc, sizeof *jm->osr_epoch);
    for (uint32_t k = 0; k < jm->nc; k++)
        atomic_init(&jm->back_at[k], UINT32_MAX);
    pthread_mutex_init(&jm->mu, NULL);
    pthread_cond_init(&jm->cv, NULL);
    m->tier_data = jm;
    char err[256];
    if (g_cfg.tier == JIT_TIER_AUTO) {
        /* A cached whole-module object costs a link (milliseconds): take it now. Sample and
         * compile hot functions in the background either way: with the JIT loaded lazily
         * (src/cli/tier.c) the module may already be running, and an activation that started
         * interpreted reaches compiled code only through an OSR entry compiled for it. */
        uint8_t key[32];
        bool whole = false;
        if (g_cache_ok) {
            cache_key(m, NULL, NULL, NULL, jm->nc, JIT_LEVEL_DEFAULT, key);
            whole = cache_load(jm, key, NULL, JIT_LEVEL_DEFAULT, err, sizeof err) == 0;
        }
        jm->samples = xcalloc(jm->nc, sizeof *jm->samples);
        jm->callw = xcalloc(jm->nc, sizeof *jm->callw);
        uint32_t *by = xmalloc(jm->nc * sizeof *by);
        for (uint32_t k = 0; k < jm->nc; k++)
            by[k] = k;
        qsort_r(by, jm->nc, sizeof *by, cmp_code_addr, m);
        /* has_thread is set before the thread starts: compile_objects reads it. With the whole
         * module linked nothing may ever turn hot (nothing runs interpreted when the module
         * was linked before it ran): the thread starts with the first work (hot_wake), and a
         * short run does not pay for its start and its join. */
        jm->has_thread = true;
        if (whole || hot_start(jm)) {
            jm->by_addr = by; /* sampling starts: the thread is (or will be) there to compile */
            return;
        }
        jm->has_thread = false;
        free(by);
    }
    if (compile_objects(jm, NULL, JIT_LEVEL_DEFAULT, err, sizeof err) != 0)
        report(err);
}

static void module_freed(wasm_module *m) {
    jit_mod *jm = m->tier_data;
    if (!jm)
        return;
    if (jm->has_thread) {
        pthread_mutex_lock(&jm->mu);
        jm->cancel = true;
        if (jm->child > 0)
            kill(jm->child, SIGKILL);
        /* The socket closes only once the killed process's memory is torn down (LLVM's: a
         * few milliseconds, which the end of a short run waited for in the join below): end
         * the hot thread's read now. */
        if (jm->child_fd >= 0)
            shutdown(jm->child_fd, SHUT_RDWR);
        pthread_cond_signal(&jm->cv);
        bool started = jm->thread_started;
        pthread_mutex_unlock(&jm->mu);
        if (started)
            pthread_join(jm->thread, NULL);
    }
    jit_compiler_forget(m); /* after the join: a compile in flight holds the process */
    pthread_cond_destroy(&jm->cv);
    pthread_mutex_destroy(&jm->mu);
    for (uint32_t k = 0; k < jm->nc; k++) {
        atomic_store(&m->codes[k].tier_entry, NULL);
        m->codes[k].tier_fn = NULL;
    }
    for (uint32_t i = 0; i < jm->nobjs; i++) {
        jit__elf_free(jm->objs[i].im);
        if (jm->objs[i].lljit)
            jm->objs[i].be->unlink(jm->objs[i].lljit);
        range_del(jm->objs[i].range);
    }
    free(jm->objs);
    free(jm->samples);
    free(jm->osr_epoch);
    free((void *)jm->callw);
    free(jm->state);
    free(jm->quick);
    free((void *)jm->osr);
    free(jm->osr_at);
    free(jm->osr_level);
    free(jm->entered);
    free(jm->late);
    free(jm->osr_req);
    free(jm->nosr);
    free(jm->osr_cell);
    free(jm->osr_want);
    for (uint32_t k = 0; jm->snap && k < jm->nc; k++) {
        free(jm->snap[k]);
        free(jm->osr_vals[k]);
    }
    free(jm->snap);
    free(jm->snap_at);
    free(jm->osr_vals);
    free(jm->osr_stale);
    free(jm->nospec);
    free((void *)jm->back_at);
    free(jm->by_addr);
    free(jm);
    m->tier_data = NULL;
}

static const wasm_tier_ops g_ops = {
    .module_loaded = module_loaded,
    .module_freed = module_freed,
    .enter = tier_enter,
    .mem_max = JIT_MEM_MAX,
    .mem_no_fork = true,
    .sample = sample,
};
static const wasm_tier_ops g_ops_guard = {
    .module_loaded = module_loaded,
    .module_freed = module_freed,
    .enter = tier_enter,
    .mem_reserve = JIT_GUARD_BYTES,
    .mem_max = JIT_MEM_MAX,
    .mem_no_fork = true,
    .sample = sample,
};

jit_bounds jit_bounds_mode(void) {
    return g_guard ? JIT_BOUNDS_GUARD : JIT_BOUNDS_CHECKS;
}

const void *jit_tier_ops(void) {
    return g_guard ? &g_ops_guard : &g_ops;
}

/* ---- public API ---- */

int jit__forced_level(void) {
    const char *q = getenv("PSL_JIT_QUICK");
    if (q && strcmp(q, "1") == 0)
        return JIT_LEVEL_QUICK;
    if (q && strcmp(q, "mid") == 0)
        return JIT_LEVEL_MID;
    return -1;
}

const char *jit__pipeline(int level, bool vec) {
    const char *p = getenv("PSL_JIT_PASSES");
    if (p && *p)
        return p;
    if (jit__forced_level() >= 0)
        level = jit__forced_level();
    if (level == JIT_LEVEL_MID && vec)
        return JIT_PIPELINE_MID_VEC;
    return level != JIT_LEVEL_DEFAULT ? JIT_PIPELINE_QUICK : JIT_PIPELINE;
}

const char *jit__codegen(int level) {
    if (jit__forced_level() >= 0)
        level = jit__forced_level();
    if (level == JIT_LEVEL_QUICK)
        return "none";
    if (level == JIT_LEVEL_MID)
        return "less";
    const char *c = getenv("PSL_JIT_CODEGEN");
    if (c && (strcmp(c, "none") == 0 || strcmp(c, "less") == 0 || strcmp(c, "fastisel") == 0))
        return c;
    return "default";
}

int jit_tier_parse(const char *s, jit_tier *out) {
    if (strcmp(s, "interp") == 0)
        *out = JIT_TIER_INTERP;
    else if (strcmp(s, "jit") == 0)
        *out = JIT_TIER_JIT;
    else if (strcmp(s, "auto") == 0)
        *out = JIT_TIER_AUTO;
    else
        return ERR_INVALID;
    return 0;
}

const char *jit_default_cache_dir(void) {
    static char buf[4096];
    const char *d = getenv("PSL_CACHE_DIR");
    if (d && *d)
        return d;
    d = getenv("XDG_CACHE_HOME");
    if (d && *d) {
        snprintf(buf, sizeof buf, "%s/psl/jit", d);
        return buf;
    }
    d = getenv("HOME");
    if (d && *d) {
        snprintf(buf, sizeof buf, "%s/.cache/psl/jit", d);
        return buf;
    }
    return NULL;
}

jit_bounds jit_bounds_resolve(jit_bounds b) {
    const char *env = getenv("PSL_JIT_BOUNDS");
    if (env && strcmp(env, "checks") == 0)
        b = JIT_BOUNDS_CHECKS;
    else if (env && strcmp(env, "guard") == 0)
        b = JIT_BOUNDS_GUARD;
    if (b == JIT_BOUNDS_DEFAULT)
        b = JIT_BOUNDS_GUARD;
    return b == JIT_BOUNDS_GUARD && sizeof(void *) >= 8 ? JIT_BOUNDS_GUARD : JIT_BOUNDS_CHECKS;
}

/* The budget mode: fuel counters ($PSL_JIT_INTERRUPT=fuel) or the watchdog's signals. */
static bool resolve_fuel(void) {
    const char *env = getenv("PSL_JIT_INTERRUPT");
    return env && strcmp(env, "fuel") == 0;
}

bool jit_cache_has_module(const jit_config *cfg, const wasm_module *m) {
    if (!cfg->cache_dir || m->nfuncs == m->nimported_funcs || cr_init() != 0)
        return false;
    uint8_t key[32];
    cache_key_modes(m, NULL, NULL, NULL, m->nfuncs - m->nimported_funcs, JIT_LEVEL_DEFAULT,
                    jit_bounds_resolve(cfg->bounds) == JIT_BOUNDS_GUARD, resolve_fuel(), key);
    char path[4200];
    cache_path_in(cfg->cache_dir, key, path, sizeof path);
    return access(path, R_OK) == 0;
}

int jit_init(const jit_config *cfg) {
    g_cfg = *cfg;
    g_cfg.cache_dir = NULL;
    if (getenv("PSL_JIT_VERIFY"))
        g_cfg.verify = true;
    g_t0 = plat_now_ns();
    if (cfg->tier == JIT_TIER_INTERP) {
        wasm__tier_set(NULL);
        return 0;
    }
    pthread_mutex_lock(&g_backend_mu); /* this configuration's backend, loaded when needed */
    g_backend = NULL;
    g_backend_tried = false;
    pthread_mutex_unlock(&g_backend_mu);
    const char *lk = getenv("PSL_JIT_LINKER");
    g_lljit = lk && strcmp(lk, "lljit") == 0;
    free(g_cache_dir);
    g_cache_dir = NULL;
    g_cache_ok = false;
    if (cfg->cache_dir && cr_init() == 0) {
        g_cache_dir = strdup(cfg->cache_dir);
        g_cache_ok = g_cache_dir && cache_open() == 0;
        if (!g_cache_ok)
            fprintf(stderr, "psl: jit: code cache at %s unusable; compiling every time\n",
                    cfg->cache_dir);
    }
    g_guard = jit_bounds_resolve(cfg->bounds) == JIT_BOUNDS_GUARD;
    if (g_guard && plat_fault_handler_install(on_fault) != 0) {
        fprintf(stderr, "psl: jit: no fault handler; using explicit bounds checks\n");
        g_guard = false;
    }
    g_fuel = resolve_fuel();
    g_inited = true;
    if (!cfg->no_register)
        wasm__tier_set(g_guard ? &g_ops_guard : &g_ops);
    return 0;
}

void jit_shutdown(void) {
    if (!g_inited)
        return;
    wasm__tier_set(NULL);
    pthread_mutex_lock(&g_srv_mu);
    srv_stop();
    free(g_srv_mods);
    g_srv_mods = NULL;
    pthread_mutex_unlock(&g_srv_mu);
    free(g_cache_dir);
    g_cache_dir = NULL;
    g_cache_ok = false;
    cr_memzero(g_cache_key, sizeof g_cache_key);
    g_inited = false;
}
