/* --tier / --no-cache for psl run and psl spectest: registers the JIT tier when it is built in.
 * The tier's run time (src/jit without LLVM) is part of psl; its LLVM half, psljit.so, is loaded
 * only when a module must be compiled. --tier jit registers the tier at once: a module whose
 * object is in the code cache is linked by the tier's own ELF loader, so a warm start never
 * loads LLVM. --tier auto registers a small stand-in tier instead, which records the modules
 * loaded and counts the interpreter's samples; only when code turns out hot does a background
 * thread start the tier, fork its compiler process (which loads the JIT module, so this process
 * never does), hand it the modules and register it. So a short run (a hello world, most
 * serverless calls) never pays LLVM's start-up. */
#include "cli/tier.h"

#include "cli/cli.h"

#include "platform/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_jit_module_path(char *path, size_t len) {
    const char *env = getenv("PSL_JIT_MODULE");
    if (env && *env)
        return snprintf(path, len, "%s", env) < (int)len ? 0 : -1;
    if (len < 16 || plat_exe_dir(path, len - 16) != 0)
        return -1;
    strcat(path, "/psljit.so");
    return 0;
}

bool cli_jit_available(void) {
#ifdef PSL_HAVE_JIT
    char path[4096];
    return cli_jit_module_path(path, sizeof path) == 0 && access(path, R_OK) == 0;
#else
    return false;
#endif
}

#ifdef PSL_HAVE_JIT
#include "jit/jit.h"

#include "wasm/wasm_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* The LLVM half of the JIT lives in psljit.so beside the psl executable (or $PSL_JIT_MODULE)
 * and is loaded only here, once, on the first cache miss (or at setup for psl worker). */
static pthread_mutex_t g_backend_mu = PTHREAD_MUTEX_INITIALIZER;
static const jit_backend *g_backend_llvm;
static bool g_backend_tried;

static const jit_backend *load_backend(void) {
    pthread_mutex_lock(&g_backend_mu);
    if (!g_backend_tried) {
        g_backend_tried = true;
        char path[4096], why[512];
        void *h = NULL;
        if (cli_jit_module_path(path, sizeof path) != 0)
            cli_err("cannot find the folder of the psl executable for the JIT module");
        else if (!(h = plat_module_open(path, why, sizeof why)))
            cli_err("cannot load the JIT module %s: %s", path, why);
        const jit_backend *(*get)(void) = NULL;
        if (h)
            *(void **)&get = plat_module_sym(h, "jit_backend_llvm");
        if (h && !get)
            cli_err("%s is not a psl JIT module", path);
        if (get)
            g_backend_llvm = get();
    }
    const jit_backend *b = g_backend_llvm;
    pthread_mutex_unlock(&g_backend_mu);
    return b;
}

/* ---- auto: the stand-in tier ---- */

/* Milliseconds of interpretation (from the first sample: fuel polls come about every
 * millisecond) before the JIT tier starts; $PSL_JIT_LAZY_MS overrides. The compiler process is
 * spawned at the first sample and loads LLVM meanwhile on the other core; starting the tier
 * itself (its thread, the hand-over, the samples' frame copies, the first requests) costs the
 * interpreter's process a little, which a run that ends soon after pays and gains nothing from:
 * measured +3 % on runs of 11 ms at 10 ms, +9 % at 5 ms (docs/jit.md). Runs shorter than this
 * never start the tier; a run that ends while the loader waits or works leaves through
 * cli_tier_finish without waiting for it. Longer runs start compiling this much later. */
#define LAZY_MS 10

typedef struct lazy_mod {
    wasm_module *m;
    struct lazy_mod *next;
} lazy_mod;

static pthread_mutex_t g_lazy_mu = PTHREAD_MUTEX_INITIALIZER;
static lazy_mod *g_lazy_mods;            /* loaded while the stand-in is registered */
static const wasm_tier_ops *g_lazy_real; /* the JIT's tier once registered */
static _Atomic uint64_t g_lazy_first;    /* time of the first sample, 0 before */
static uint64_t g_lazy_ns;               /* LAZY_MS or $PSL_JIT_LAZY_MS */
static jit_config g_lazy_cfg;
static char g_lazy_cache[4096];
static char g_lazy_marker; /* tier_data of recorded modules */
static pthread_t g_lazy_thread;
static _Atomic bool g_lazy_started; /* the loader thread runs or ran and was not joined */
static _Atomic bool g_lazy_done;    /* the loader thread has returned (or is about to) */
static _Atomic bool g_lazy_tried;   /* the loader was started (or could not be) */
static bool g_lazy_abort;           /* (under g_lazy_mu) a waiting loader stops */
static pthread_cond_t g_lazy_cv = PTHREAD_COND_INITIALIZER; /* wakes a waiting loader */

static void *lazy_load(void *arg);

static void lazy_loaded(wasm_module *m) {
    pthread_mutex_lock(&g_lazy_mu);
    const wasm_tier_ops *real = g_lazy_real;
    if (!real) {
        lazy_mod *e = xmalloc(sizeof *e);
        e->m = m;
        e->next = g_lazy_mods;
        g_lazy_mods = e;
        m->tier_data = &g_lazy_marker; /* so that wasm_module_free tells us */
    }
    pthread_mutex_unlock(&g_lazy_mu);
    if (real) {
        real->module_loaded(m);
        return;
    }
    /* A module whose whole object a `--tier jit` run cached: load the JIT now, in this thread,
     * before the module runs (a link from the cache costs about a millisecond; loaded at the
     * lazy point, an activation that started interpreted would need an OSR entry compiled for
     * it).
     * Nothing to compile: no compiler process (another module missing the cache is compiled
     * in this process). */
    if (g_lazy_cfg.cache_dir && !atomic_load(&g_lazy_tried) &&
        jit_cache_has_module(&g_lazy_cfg, m) && !atomic_exchange(&g_lazy_tried, true))
        lazy_load(NULL);
}

/* Wait for the loader thread if it runs or ran. */
static void lazy_join(void) {
    if (!atomic_exchange(&g_lazy_started, false))
        return;
    pthread_mutex_lock(&g_lazy_mu);
    g_lazy_abort = true;
    pthread_cond_broadcast(&g_lazy_cv);
    pthread_mutex_unlock(&g_lazy_mu);
    pthread_join(g_lazy_thread, NULL);
}

/* A module freed while the loader runs is only dropped from the list: the loader hands over,
 * under g_lazy_mu, the modules still listed when the JIT is ready, so it never sees this one. */
static void lazy_freed(wasm_module *m) {
    pthread_mutex_lock(&g_lazy_mu);
    const wasm_tier_ops *real = g_lazy_real;
    if (!real) {
        for (lazy_mod **p = &g_lazy_mods; *p; p = &(*p)->next)
            if ((*p)->m == m) {
                lazy_mod *e = *p;
                *p = e->next;
                free(e);
                break;
            }
        m->tier_data = NULL;
        jit_compiler_forget(m); /* the last one stops the compiler process */
    }
    pthread_mutex_unlock(&g_lazy_mu);
    if (real && m->tier_data) /* handed over: the JIT's own state */
        real->module_freed(m);
}

static int lazy_enter(wasm_store *s, wasm_instance *inst, const wasm_code *code, wasm_val *fp) {
    (void)s, (void)inst, (void)code, (void)fp;
    return -1; /* never reached: nothing is compiled before the JIT is registered */
}

/* Start the compiler process with the modules recorded so far (under g_lazy_mu). It loads the
 * LLVM half and warms it up on the other core while this process goes on interpreting. */
static void lazy_spawn(void) {
    if (getenv("PSL_JIT_NO_COMPILER_PROCESS"))
        return;
    uint32_t nm = 0;
    for (lazy_mod *e = g_lazy_mods; e; e = e->next)
        nm++;
    if (!nm)
        return;
    wasm_module **mods = xmalloc(nm * sizeof *mods);
    nm = 0;
    for (lazy_mod *e = g_lazy_mods; e; e = e->next)
        mods[nm++] = e->m;
    (void)jit_compiler_start(&g_lazy_cfg, mods, nm);
    free(mods);
}

/* Wait (under g_lazy_mu) until LAZY_MS after the first sample. false: stop (the run ends). */
static bool lazy_wait(void) {
    uint64_t due = atomic_load(&g_lazy_first) + g_lazy_ns;
    for (;;) {
        uint64_t now = plat_now_ns();
        if (g_lazy_abort)
            return false;
        if (now >= due)
            return true;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&g_lazy_cv, &g_lazy_mu, &ts);
    }
}

/* Background (arg non-NULL: started at the first sample): start the compiler process, which
 * loads the LLVM half so that this process never does unless that process cannot be started;
 * LAZY_MS later start the JIT tier, hand it the recorded modules and register it. With a NULL
 * arg (a module the code cache holds whole), only the latter, at once. */
static void *lazy_load(void *arg) {
    if (arg) {
        pthread_mutex_lock(&g_lazy_mu);
        lazy_spawn();
        bool go = lazy_wait();
        pthread_mutex_unlock(&g_lazy_mu);
        if (!go) {
            atomic_store(&g_lazy_done, true);
            return NULL;
        }
    }
    if (jit_init(&g_lazy_cfg) != 0) {
        cli_err("the JIT tier cannot run on this host; staying interpreted");
        atomic_store(&g_lazy_done, true);
        return NULL;
    }
    const wasm_tier_ops *real = jit_tier_ops();
    pthread_mutex_lock(&g_lazy_mu);
    /* A recorded module keeps the marker until the JIT's own state replaces it: a module freed
     * meanwhile (wasm_module_free reads tier_data without a lock) must still reach lazy_freed,
     * which waits for this lock, and not be cleared under module_loaded (seen under ASan: a
     * heap-use-after-free in module_loaded's sort when the marker was dropped first). */
    for (lazy_mod *e = g_lazy_mods, *next; e; e = next) {
        next = e->next;
        real->module_loaded(e->m);
        if (e->m->tier_data == &g_lazy_marker) /* a module the JIT does not track */
            e->m->tier_data = NULL;
        free(e);
    }
    g_lazy_mods = NULL;
    g_lazy_real = real;
    wasm__tier_set(real);
    pthread_mutex_unlock(&g_lazy_mu);
    atomic_store(&g_lazy_done, true);
    return NULL;
}

static int lazy_sample(wasm_store *s, wasm_instance *inst, const wasm_cell *at, bool back,
                       wasm_val *fp, const wasm_cell **resume) {
    (void)s, (void)inst, (void)at, (void)back, (void)fp, (void)resume;
    if (atomic_load_explicit(&g_lazy_tried, memory_order_relaxed) ||
        atomic_exchange(&g_lazy_tried, true))
        return 0;
    atomic_store(&g_lazy_first, plat_now_ns());
    if (pthread_create(&g_lazy_thread, NULL, lazy_load, &g_lazy_first) == 0)
        atomic_store(&g_lazy_started, true);
    else
        cli_err("cannot start the JIT loader thread; staying interpreted");
    return 0;
}

/* At exit() from a path that did not go through cli_tier_finish: wait for the loader. This is
 * a fallback only: the destructors of whatever part of LLVM was already constructed were
 * registered after this handler and run before it. */
static void lazy_atexit(void) {
    lazy_join();
}

static wasm_tier_ops g_lazy_ops = {
    .module_loaded = lazy_loaded,
    .module_freed = lazy_freed,
    .enter = lazy_enter,
    .mem_max = JIT_MEM_MAX, /* as the JIT's own ops: its code relies on it */
    .mem_no_fork = true,    /* the JIT may fork per batch (modules its process does not hold) */
    .sample = lazy_sample,
};

/* The bounds mode the JIT will pick (jit_init): memories made now must already have the guard
 * region it relies on. */
static uint64_t lazy_reserve(jit_bounds b) {
    return jit_bounds_resolve(b) == JIT_BOUNDS_GUARD ? JIT_GUARD_BYTES : 0;
}
#endif

void cli_tier_compiler_main(int argc, char **argv) {
#ifdef PSL_HAVE_JIT
    if (argc == 2 && strcmp(argv[1], JIT_COMPILER_ARG) == 0)
        jit_compiler_main(load_backend);
#else
    (void)argc, (void)argv;
#endif
}

int cli_tier_finish(int status) {
#ifdef PSL_HAVE_JIT
    if (atomic_load(&g_lazy_started) && !atomic_load(&g_lazy_done)) {
        /* The loader thread is inside dlopen or LLVM's start-up. exit() would run the
         * destructors of the half-constructed libraries under it (that crashed), and waiting
         * costs a short run ~20 ms. Leave without running any: only stdio holds data. */
        fflush(stdout);
        fflush(stderr);
        _exit(status);
    }
    lazy_join();
#endif
    return status;
}

int cli_tier_setup(const char *cmd, const char *tier, bool cache) {
    if (!tier || !*tier)
        tier = getenv("PSL_TIER");
    if (!tier || !*tier)
        tier = "interp";
#ifdef PSL_HAVE_JIT
    if (strcmp(tier, "interp") == 0)
        return 0; /* the interpreter needs no module */
    if (strcmp(tier, "jit") != 0 && strcmp(tier, "auto") != 0) {
        cli_err("%s: --tier wants interp, jit or auto, got '%s'", cmd, tier);
        return -1;
    }
    /* A worker daemon loads the JIT at start: it lives long, and its seccomp sandbox (applied
     * after setup) would not let a thread dlopen LLVM and fork compilers later. */
    if (strcmp(tier, "auto") == 0 && strcmp(cmd, "worker") != 0 && !getenv("PSL_JIT_EAGER")) {
        memset(&g_lazy_cfg, 0, sizeof g_lazy_cfg);
        g_lazy_cfg.tier = JIT_TIER_AUTO;
        g_lazy_cfg.no_register = true;
        g_lazy_cfg.backend = load_backend;
        const char *dir = cache ? jit_default_cache_dir() : NULL;
        if (dir &&
            snprintf(g_lazy_cache, sizeof g_lazy_cache, "%s", dir) < (int)sizeof g_lazy_cache)
            g_lazy_cfg.cache_dir = g_lazy_cache;
        g_lazy_ops.mem_reserve = lazy_reserve(g_lazy_cfg.bounds);
        const char *ms = getenv("PSL_JIT_LAZY_MS");
        g_lazy_ns = (uint64_t)((ms && *ms ? atof(ms) : LAZY_MS) * 1e6);
        atexit(lazy_atexit);
        wasm__tier_set(&g_lazy_ops);
        return 0;
    }
    jit_config cfg = {.tier = JIT_TIER_INTERP, .backend = load_backend};
    if (jit_tier_parse(tier, &cfg.tier) != 0) {
        cli_err("%s: --tier wants interp, jit or auto, got '%s'", cmd, tier);
        return -1;
    }
    /* Only --tier jit with a code cache loads LLVM when a module misses. Without a cache every
     * module is compiled, so it is loaded now (a missing module is reported here, before
     * anything runs); so is it for auto loaded eagerly and for a worker, whose sandbox would not
     * allow it later. */
    if ((!cache || cfg.tier == JIT_TIER_AUTO || strcmp(cmd, "worker") == 0) && !load_backend())
        return -1;
    cfg.cache_dir = cache ? jit_default_cache_dir() : NULL;
    if (jit_init(&cfg) != 0) {
        cli_err("%s: the JIT tier cannot run on this host", cmd);
        return -1;
    }
    return 0;
#else
    (void)cache;
    if (strcmp(tier, "interp") != 0) {
        cli_err("%s: --tier %s is not available: psl was built without the JIT (-DPSL_JIT=OFF)",
                cmd, tier);
        return -1;
    }
    return 0;
#endif
}
