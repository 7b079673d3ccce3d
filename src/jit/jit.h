/* psl's JIT tier: WebAssembly functions compiled to machine code with LLVM 19 (ORC LLJIT).
 *
 * Design. The JIT translates the interpreter's lowered code (src/wasm's slot-based internal code,
 * produced once by validation) rather than re-reading the binary: every frame slot becomes an
 * LLVM alloca that mem2reg promotes to SSA, so both tiers execute the very same operator list and
 * agree by construction on operand order, results and trap kinds. Each wasm function becomes a
 * native function (context, i64 params...) -> results; calls inside a module are native calls;
 * calls to imports, other instances and host functions go through C helpers that use the
 * interpreter's calling convention. A module is compiled whole: one LLVM module, optimised with
 * the new pass manager's default<O1> pipeline, emitted to an ELF object in memory by a
 * TargetMachine for the host CPU, then linked into the process by the tier's own ELF loader
 * (jit_elf.c; LLJIT when it declines an object). Code is written into read-write pages, relocated,
 * and only then made read+execute: pages are never writable and executable at once (W^X; see
 * docs/jit.md for SGX2/EDMM). Only compiling needs LLVM: it lives in a backend (jit_backend,
 * psljit.so in psl) loaded on the first cache miss, so a warm start never loads LLVM.
 *
 * Semantics. Same instance, memory, table and global objects as the interpreter; memory bounds by
 * a guard region (8 GiB reserved per memory, a fault in compiled code becomes the trap) or
 * explicit checks (jit_bounds), table bounds explicit; traps unwind with siglongjmp to the
 * innermost entry from the interpreter (only compiled wasm frames are crossed) and come back as
 * the same wasm_trap codes; the call depth counter is the store's (s->depth), plus a native stack
 * bound; a watchdog thread signals a thread whose store is interrupted or past its deadline, so
 * the execution time budget stops compiled infinite loops ($PSL_JIT_INTERRUPT=fuel: counters on
 * function entries and back edges instead).
 *
 * Tiers. jit_init() registers the tier with src/wasm (wasm__tier_set). JIT_TIER_JIT compiles each
 * module when it is loaded (wasm_module_load returns after compilation); JIT_TIER_AUTO returns at
 * once, samples the interpreter (at its fuel polls) and compiles hot functions with their small
 * callees on a background thread; a function switches to compiled code at its next entry, or at
 * a loop back edge through an OSR entry. Big batches of called functions are compiled three
 * times: quick code first (SROA, early CSE, fast instruction selection: a tenth of the compile
 * time), then mid-level code (the same passes, the optimising code generator at level Less) and
 * default-level code, each replacing the previous at the functions' next call once nothing newer
 * waits; OSR entries and small batches at the mid level, their called functions then again at
 * the default level. Under auto, a module whose whole object is in
 * the code cache is linked when it is loaded. JIT_TIER_INTERP registers nothing.
 *
 * Code cache. With a cache directory, the object bytes of a module are stored on disk keyed by
 * BLAKE2b(module bytes, engine version, CPU identification, options) and authenticated with a
 * keyed BLAKE2b MAC under a key kept in the cache directory (mode 0600); a tampered or truncated
 * entry fails the MAC, is ignored and recompiled. */
#ifndef PSL_JIT_JIT_H
#define PSL_JIT_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JIT_TIER_INTERP = 0, JIT_TIER_JIT = 1, JIT_TIER_AUTO = 2 } jit_tier;

/* How compiled code checks linear-memory bounds. GUARD: every memory reserves JIT_GUARD_BYTES of
 * address space (8 GiB and a page), no access beyond its size, so a 32-bit address plus a 32-bit
 * offset never leaves it; loads and stores carry no check and a fault there (SIGSEGV) becomes
 * the "out of bounds memory access" trap. CHECKS: an explicit compare per access. DEFAULT: GUARD
 * (AddressSanitizer builds included: faults that are not ours go on to its handler);
 * $PSL_JIT_BOUNDS=checks|guard overrides the configuration. */
typedef enum { JIT_BOUNDS_DEFAULT = 0, JIT_BOUNDS_CHECKS = 1, JIT_BOUNDS_GUARD = 2 } jit_bounds;

/* Address space each linear memory reserves in guard mode: any 32-bit address plus 32-bit
 * offset plus an 8-byte access stays inside. */
#define JIT_GUARD_BYTES ((8ull << 30) + (64u << 10))

/* Largest linear memory while the JIT tier is registered: 4 GiB less one page. Compiled code
 * relies on it: after an access of n bytes at address a + offset o succeeds, a + o + n is at
 * most JIT_MEM_MAX, so a + c cannot wrap around 2^32 for any c < o + n + 64 KiB (jit_gen.c
 * marks such additions nuw). Memories made before the tier was registered may be larger; the
 * instances using them run interpreted. */
#define JIT_MEM_MAX ((4ull << 30) - (64u << 10))

/* The LLVM half of the tier: the compiler, and the linker of last resort (ORC LLJIT). A code
 * cache hit needs neither: the ELF loader built into the tier links cached objects. */
typedef struct jit_backend jit_backend;

/** The LLVM backend (defined in psljit.so, and in the psljit library tests link). Initialises
 * LLVM's native target on first call. Never NULL. */
const jit_backend *jit_backend_llvm(void);

typedef struct jit_config {
    jit_tier tier;
    /* Called at most once per jit_init, the first time a module must be compiled (a cache miss)
     * or an object is one the ELF loader declines; NULL return or NULL field: no compiler, such
     * modules stay interpreted. psl passes a function that loads psljit.so (src/cli/tier.c),
     * tests jit_backend_llvm. Loading it before the first module costs nothing later. */
    const jit_backend *(*backend)(void);
    const char *cache_dir; /* NULL: no code cache. Copied by jit_init. */
    bool verify;           /* run LLVM's IR verifier before optimising (tests) */
    jit_bounds bounds;
    /* Do not register with src/wasm: the caller takes jit_tier_ops() and registers it after
     * handing over the modules loaded so far (a tier loaded lazily, see src/cli/tier.c). */
    bool no_register;
} jit_config;

/** Parse "interp", "jit" or "auto". @return 0 or ERR_INVALID. */
int jit_tier_parse(const char *s, jit_tier *out);

/** Set the process-wide tier. Call once, before any module is loaded and before threads use
 * src/wasm. @param[in] cfg copied. @return 0 (LLVM is not touched here: the backend is loaded when
 * first needed).
 */
int jit_init(const jit_config *cfg);

/** Stop background compilation and release LLVM state. Modules compiled earlier must already be
 * freed. Safe to call when jit_init was not called. */
void jit_shutdown(void);

/** Start the compiler process of the auto tier: the running executable (/proc/self/exe) started
 * again with argv[1] JIT_COMPILER_ARG (posix_spawn, so nothing of this process is copied), before
 * LLVM is loaded into this one. It loads the backend and its own copy of @p mods (modules already
 * loaded; their bytes go along in a memfd; borrowed, each must stay loaded or be passed to
 * jit_compiler_forget before it is freed, which the tier's module_freed does), compiles a warm-up
 * function, then the batches of those modules on request, and sends their objects back for the
 * ELF loader. LLVM's loading and each compile then happen outside this process, whose
 * interpreter they slowed (docs/jit.md). Other modules are compiled as before. May be called
 * before jit_init (the tier adopts the process when it is registered); @p cfg gives the bounds
 * mode of the warm-up (requests carry their own). One per process.
 * @return 0, ERR_INVALID (started already, no modules) or ERR_IO (memfd, socket, spawn). */
struct wasm_module;
int jit_compiler_start(const jit_config *cfg, struct wasm_module *const *mods, uint32_t n);
/** argv[1] of the compiler process. An executable that calls jit_compiler_start must, when it sees
 * it, call jit_compiler_main at once. */
#define JIT_COMPILER_ARG "--jit-compiler-process"
/** The compiler process's main: @p load gives the backend (NULL or failing: every request is
 * answered with an error). Ends when the other side of its socket closes. */
_Noreturn void jit_compiler_main(const jit_backend *(*load)(void));
/** The compiler process no longer holds m (it is being freed). */
void jit_compiler_forget(const struct wasm_module *m);

/** Whether the code cache in cfg->cache_dir holds an object of the whole module m (what a
 * `--tier jit` run stores) under the bounds and budget modes jit_init(cfg) would choose: computed
 * without LLVM and without initialising anything (the entry's MAC is checked when it is
 * linked). The auto tier's lazy loader then loads the JIT before m runs (src/cli/tier.c). */
bool jit_cache_has_module(const jit_config *cfg, const struct wasm_module *m);

/* The default cache directory: $PSL_CACHE_DIR, else $XDG_CACHE_HOME/psl/jit, else
 * $HOME/.cache/psl/jit. Returns a static buffer, NULL when none can be determined. */
const char *jit_default_cache_dir(void);

/* The bounds-check mode jit_init would choose for a configuration's @p requested mode
 * ($PSL_JIT_BOUNDS overrides; DEFAULT is the guard region, AddressSanitizer builds too: its fault
 * handler is chained; CHECKS where pointers are 32-bit). jit_init falls back to CHECKS if it
 * cannot install the fault handler. */
jit_bounds jit_bounds_resolve(jit_bounds requested);

/* The bounds-check mode jit_init chose (CHECKS or GUARD). */
jit_bounds jit_bounds_mode(void);

/* The wasm_tier_ops (src/wasm/wasm_int.h) jit_init prepared: what it registers, or, with
 * no_register, what the caller registers after calling its module_loaded for each module that
 * is already loaded. */
const void *jit_tier_ops(void);

/* Counters for benchmarks and tests (process-wide, since jit_init). */
typedef struct jit_stats {
    uint64_t modules_compiled; /* LLVM ran */
    uint64_t cache_hits;       /* loaded from the cache, LLVM codegen skipped */
    uint64_t cache_rejected;   /* entries that failed the MAC or did not load */
    uint64_t functions;        /* functions made native */
    uint64_t compile_ns;       /* wall time in translation, optimisation, codegen and linking */
    uint64_t code_bytes;       /* object bytes produced or loaded */
    uint64_t osr_entries;      /* interpreted activations finished in compiled code (auto) */
    uint64_t osr_stale;        /* OSR entries declined: the frame differed from the one they
                                * were specialised to (a new entry is compiled) */
    uint64_t osr_left;         /* OSR activations that left their code for a newer entry */
    uint64_t osr_asked;        /* OSR entries asked for by OSR code at a top-level loop after
                                * its entry's nest (psl_jit_osr_ready) */
    uint64_t objects_elf;      /* objects linked by the ELF loader (no LLVM) */
    uint64_t objects_lljit;    /* objects the ELF loader declined, linked by LLJIT */
    uint64_t remote_compiles;  /* objects compiled by the compiler process (jit_compiler_start) */
} jit_stats;
void jit_get_stats(jit_stats *out);

#endif
