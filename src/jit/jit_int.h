/* Private to src/jit: the run-time context compiled code receives, the C helpers it calls, and
 * the translator's interface. Invariant: field offsets of jit_ctx are read by generated code
 * through offsetof() at translation time, so this struct is the single source of its layout. */
#ifndef PSL_JIT_JIT_INT_H
#define PSL_JIT_JIT_INT_H

#include "jit/jit.h"
#include "wasm/wasm_int.h"

#include <setjmp.h>

/* Fuel is counted in cells of lowered code, as in the interpreter: a backward branch costs its
 * loop body's length, a call its callee's length. */
#define JIT_FUEL_PERIOD (1 << 18)
/* Bytes of native stack kept free below compiled code for helpers, host functions and libc. */
#define JIT_STACK_RESERVE (256u * 1024u)

/* Globals whose value pointers the context keeps (jit_ctx.gval). */
#define JIT_CTX_GLOBALS 4

/* One activation of compiled code entered from the interpreter (or wasm_call). Lives on the C
 * stack of enter_native (jit.c); every compiled function of the same instance receives a pointer
 * to it. */
typedef struct jit_ctx {
    wasm_instance *inst;
    wasm_store *store;
    uint8_t *mem;            /* memory 0 base (never moves), NULL without memory */
    const uint64_t *memsize; /* &memory->size (re-read after calls and memory.grow) */
    /* The call depth an entry wrapper passes to its function (compiled functions pass it to
     * each other as their second argument): enter_native sets it from store->depth; compiled
     * code stores its callee's depth here before a call through a helper, and call_func copies
     * it to store->depth before the interpreter or a host function runs; enter_native restores
     * store->depth when the activation ends. */
    uint32_t depth;
    uint32_t max_depth;
    int32_t fuel;          /* function entries until the next budget poll */
    uintptr_t stack_limit; /* native stack pointer must stay above */
    wasm_val *scratch;     /* free value-stack cells for calls into the interpreter or host */
    sigjmp_buf *jb;        /* where traps unwind to; siglongjmp value = wasm_trap */
    /* Shortcuts into the instance, fixed for its life, so that compiled code reaches them in
     * one load from the context instead of a chain through the instance: the value of each of
     * the first JIT_CTX_GLOBALS globals (clang's __stack_pointer is global 0: every function
     * with a frame in linear memory reads and writes it), and table 0 (call_indirect). */
    uint64_t *gval[JIT_CTX_GLOBALS]; /* &inst->globals[i]->val, NULL past nglobals */
    wasm_table *tab0;                /* inst->tables[0], NULL without tables */
    /* Per defined function: bumped when an OSR entry of it replaces one at the same loop head.
     * An OSR activation reads its function's count at entry and leaves (JIT_OSR_LEFT) at a back
     * edge of a loop around its head when it changed, so that the interpreter enters the newer
     * code (docs/jit.md). */
    const uint32_t *osr_epoch;
} jit_ctx;

/* An OSR entry's results: 0 the activation ran to its end (results at fp), 1 called at another
 * loop head, 2 specialised to another frame, JIT_OSR_LEFT + cell: left at a loop nest's back
 * edge, the slots live at that cell (a loop head) written to fp, for the interpreter to go on
 * there. */
#define JIT_OSR_LEFT 3

/* Helpers called by generated code (resolved by name when the object is linked). All that can
 * trap do so by siglongjmp to ctx->jb. */
_Noreturn void psl_jit_trap(jit_ctx *c, int32_t trap);
void psl_jit_budget(jit_ctx *c);
void psl_jit_call(jit_ctx *c, uint32_t funcidx, wasm_val *buf);
/* OSR code of defined function k below the default level, at the back edge of a top-level loop
 * at cell after its entry's nest, once the function's OSR count changed: 1 when k has an OSR
 * entry at cell (the code leaves for it), else 0 after asking for one. */
uint32_t psl_jit_osr_ready(jit_ctx *c, uint32_t k, uint32_t cell);
void psl_jit_call_indirect(jit_ctx *c, uint32_t table, uint32_t typeidx, uint32_t elem,
                           wasm_val *buf);
uint32_t psl_jit_memory_grow(jit_ctx *c, uint32_t delta);
void psl_jit_memory_init(jit_ctx *c, uint32_t d, uint32_t s, uint32_t n, uint32_t seg);
void psl_jit_data_drop(jit_ctx *c, uint32_t seg);
uint64_t psl_jit_table_get(jit_ctx *c, uint32_t t, uint32_t i);
void psl_jit_table_set(jit_ctx *c, uint32_t t, uint32_t i, uint64_t v);
uint32_t psl_jit_table_size(jit_ctx *c, uint32_t t);
uint32_t psl_jit_table_grow(jit_ctx *c, uint32_t t, uint64_t init, uint32_t n);
void psl_jit_table_fill(jit_ctx *c, uint32_t t, uint32_t i, uint64_t v, uint32_t n);
void psl_jit_table_copy(jit_ctx *c, uint32_t td, uint32_t ts, uint32_t d, uint32_t s, uint32_t n);
void psl_jit_table_init(jit_ctx *c, uint32_t t, uint32_t seg, uint32_t d, uint32_t s, uint32_t n);
void psl_jit_elem_drop(jit_ctx *c, uint32_t seg);

typedef struct jit_helper {
    const char *name;
    void *addr;
} jit_helper;
extern const jit_helper jit__helpers[];
extern const unsigned jit__nhelpers;

/* Names of the two tables the object exports: native functions and interpreter-convention
 * entries, one per defined function, in code order. */
#define JIT_SYM_FNS "psl_jit_fns"
#define JIT_SYM_ENTRIES "psl_jit_entries"

/* Entry convention: params at fp[0..), results written to fp[0..). */
typedef void (*jit_entry_fn)(jit_ctx *c, wasm_val *fp);

/* The optimisation pipeline (LLVMRunPasses); $PSL_JIT_PASSES replaces it. O1 rather than O2:
 * on the benchmark kernels it compiles 25-50 % faster and its code was as fast or faster
 * (matmul 0.51 s against 0.58 s); see docs/jit.md. */
#define JIT_PIPELINE "default<O1>"
/* The quick pipeline of the auto tier's first compile of called functions: SROA and early CSE,
 * then fast instruction selection (CodeGenOptLevel None). On the benchmark modules it compiles
 * about 10x faster than JIT_PIPELINE (expr's whole module 70 ms against 820 ms) and its code runs
 * 2-3.4x slower (still 2-5x faster than the interpreter); see docs/jit.md. */
#define JIT_PIPELINE_QUICK "function(sroa,early-cse)"
/* The mid level's pipeline for a module with checked loop copies (jit_gen.c, vec_emit): the
 * quick one, then induction variable simplification (the copies' trip counts) and the loop
 * vectoriser for the loops that ask for it (the copies' back edges), nothing else. matmul's
 * mid-level OSR entry runs 0.27 s against 0.38 s (whole module, warm), and the auto tier's
 * first compile of its batch takes ~55 ms against ~40 (docs/jit.md, session 17). */
#define JIT_PIPELINE_MID_VEC                                                                       \
    "function(sroa,early-cse,loop(indvars),"                                                       \
    "loop-vectorize<no-interleave-forced-only;vectorize-forced-only>)"
/* Compile levels: the default pipeline and code generator; quick (JIT_PIPELINE_QUICK, fast
 * instruction selection at CodeGenOptLevel None); mid (JIT_PIPELINE_QUICK or, with checked loop
 * copies, JIT_PIPELINE_MID_VEC; the SelectionDAG and greedy register allocation at
 * CodeGenOptLevel Less). */
typedef enum { JIT_LEVEL_DEFAULT, JIT_LEVEL_QUICK, JIT_LEVEL_MID } jit_level;
/* The pipeline of an object: $PSL_JIT_PASSES, else the quick, mid (vec: the module has checked
 * loop copies) or default one. The cache key names the one without vec: whether a module has
 * such copies follows from its code and the key's "vec" part. */
const char *jit__pipeline(int level, bool vec);
/* The code generator of an object: "none" (CodeGenOptLevel None, fast instruction selection)
 * for quick objects, "less" for mid ones; else $PSL_JIT_CODEGEN (experiments: none, less: that
 * level; fastisel: fast instruction selection at level Less) or "default". */
const char *jit__codegen(int level);
/* The level every object is compiled at, or -1: $PSL_JIT_QUICK=1 quick, =mid mid (tests run
 * the spec suite on both). */
int jit__forced_level(void);

/* What to generate. */
typedef struct jit_gen_opts {
    bool verify; /* run LLVM's verifier on the IR */
    bool guard;  /* loads and stores without bounds checks (the memory has a guard region) */
    bool fuel;   /* count fuel at function entries and loop back edges (else the time budget is
                  * enforced by signals: see jit.c, "interrupts") */
    /* NULL: every function. Else one byte per defined function: 0 not compiled (calls to it go
     * through psl_jit_call), JIT_SEL_FN compiled, JIT_SEL_OSR an on-stack-replacement entry
     * (either or both). The tables then list the selected functions in index order, with NULL
     * in the function and entry tables of one that has only an OSR entry. */
    const uint8_t *sel;
    /* Per defined function with JIT_SEL_OSR: the loop head (cell index, the target of a back
     * edge) its OSR entry resumes at. */
    const uint32_t *osr_cell;
    /* Per defined function with JIT_SEL_OSR: NULL, or the interpreter's frame (nslots values)
     * sampled at its OSR loop head; the entry takes the slots that no loop around that head
     * writes as constants, and returns 2 when the frame differs in them (jit_gen.c,
     * osr_specialize). */
    const uint64_t *const *osr_vals;
    uint8_t level; /* jit_level */
} jit_gen_opts;
#define JIT_SEL_FN 1
#define JIT_SEL_OSR 2

/* Name of the third table: per selected function its OSR entry or NULL. An OSR entry runs the
 * rest of an interpreted activation: slots loaded from fp, execution resumes at loop head
 * `cell` (the target of a back edge), results stored to fp[0..); s->depth is left as found.
 * It returns 0, or without doing anything 1 when cell is not the loop head it was compiled for
 * (jit_gen_opts.osr_cell) and 2 when the frame differs from the one it was specialised to
 * (jit_gen_opts.osr_vals). */
#define JIT_SYM_OSR "psl_jit_osr"
typedef int32_t (*jit_osr_fn)(jit_ctx *c, wasm_val *fp, uint32_t cell);

/** Translate and compile m to an ELF object for the host (jit_gen.c).
 * @param[out] obj, len  malloc'd object bytes, freed by the caller.
 * @return 0 or ERR_LIMIT / ERR_INVALID with a message in err (err may be NULL). */
int jit__compile_object(const wasm_module *m, const jit_gen_opts *o, uint8_t **obj, size_t *len,
                        char *err, size_t errlen);
/* ---- the operator table (jit_ops.c, no LLVM) ---- */

/* Operand formats of the lowered operators. */
enum { K_BIN, K_BIN_RI, K_BRCMP, K_BRCMP_RI, K_UN, K_LOAD, K_STORE, K_MISC };
/* Build the table (once; every function below needs it built). */
void jit__ops_init(void);
/* The operator whose handler is h, or -1. */
int jit__op_of(const void *h);
/* Cells taken by the instruction at ip (op already decoded). */
uint32_t jit__op_len(int op, const wasm_cell *ip);
/* The branch targets of the instruction at ip (op decoded, len cells): their number (0 for an
 * instruction that does not branch) and in *first the first of that many consecutive cells whose
 * .target is one. */
uint32_t jit__branch_targets(int op, const wasm_cell *ip, uint32_t len, const wasm_cell **first);
/* Loop structure, shared by the translator (where an OSR activation may leave its code) and the
 * hot thread (the level of a new OSR entry). A loop head is the target of a back edge (a branch
 * to a cell at or before itself); a loop's body extends to its last back edge. */
/* Marks heads[h] for every loop head h of c and sets head_end[h] to the cell after its last
 * back edge (both arrays of c->ncode + 1 entries, zeroed by the caller). */
void jit__loop_heads(const wasm_code *c, bool *heads, uint32_t *head_end);
/* The nest of loop head l: *around, another loop encloses l; returns the end of the outermost
 * loop around l (l's own when none). mark (NULL or ncode + 1 entries) gets 1 at the head of
 * every loop around l: where an OSR activation entered at l may leave for newer code. */
uint32_t jit__osr_nest(const bool *heads, const uint32_t *head_end, uint32_t l, uint8_t *mark,
                       bool *around);
/* The top-level loops (ones no other loop encloses) that start at or after nest_end: the loops
 * an activation leaving an OSR entry's nest runs next. Returns the cells of the longest (0:
 * none); mark (NULL or n + 1 entries) gets 2 at the head of each. */
uint32_t jit__loops_after(const bool *heads, const uint32_t *head_end, uint32_t n,
                          uint32_t nest_end, uint8_t *mark);
/* The loops near the loop head at cell of defined function k (the two above on one scan of its
 * branches): *around, it lies inside another loop; *after, the cells of the longest top-level
 * loop after its nest (0: none). An OSR activation leaves default-level code only at back edges
 * of loops around its head (mid-level code also at the head's own when none encloses it, and at
 * the top-level loops after its nest). */
void jit__loops_near(const wasm_module *m, uint32_t k, uint32_t cell, bool *around,
                     uint32_t *after);
/* What the hot thread does with a function that turned hot: an OSR entry at the loop head it
 * was last sampled at, its ordinary copy, or nothing (cold again). */
typedef enum { JIT_HOT_OSR, JIT_HOT_COPY, JIT_HOT_COLD } jit_hot;
/* called: seen being called (its activations start in the interpreter); sampled: sampled at a
 * loop head; room: it may have another OSR entry (JIT_MAX_OSR); entry_there: it has one at that
 * head. A function not seen called gets an entry where it loops. With one there already, its
 * activation was sampled interpreted on its way back in after leaving its OSR code for a newer
 * entry (fannkuch's main): nothing to compile, an ordinary copy would serve no one. A called
 * function, one never sampled in a loop, or one out of entries gets its ordinary copy. */
jit_hot jit__hot_choice(bool called, bool sampled, bool room, bool entry_there);
/* A batch waiting in the hot thread's queue to be compiled again: the level it waits for, whether
 * it holds OSR entries, its size in cells. */
typedef struct jit_later {
    uint8_t level;
    bool osr;
    uint32_t cells;
} jit_later;
/* Which of the n (> 0) waiting batches w (oldest first) the hot thread compiles next: the
 * smallest waiting for its mid level (the oldest of equals; with fifo the oldest), so that every
 * batch gets its mid-level code before any its default-level code and a big batch's long compile
 * (expr's printf batch, ~190 ms) does not hold back the small ones queued after it; else the
 * oldest of called functions; else the oldest OSR entries compiled again (what they gain only
 * counts while their activation runs on, and a compile cannot be interrupted by newly hot
 * functions). */
uint32_t jit__later_pick(const jit_later *w, uint32_t n, bool fifo);
/* False with $PSL_JIT_VEC=0 (comparisons): no checked copies of counted loops (jit_gen.c,
 * vec_analyse). Part of the cache key. */
bool jit__vec(void);
/* False with $PSL_JIT_ORDER=0 (comparisons): add chains keep LLVM's order (jit_order.c). Part
 * of the cache key. */
bool jit__order(void);
/* jit_order.c: rewrites each tree of integer adds with three terms or more in mod's blocks as
 * a chain adding its terms in the order they become available (loaded and loop-invariant terms
 * first, those computed from the block's phis last). Run after the pipeline, before code
 * generation, on objects above the quick level. */
struct LLVMOpaqueModule;
void jit__order_adds(struct LLVMOpaqueModule *mod);
/* jit_remat.c: gives each block that uses a prologue value computed from another by adding
 * (subtracting, or-ing, xor-ing, and-ing) a constant, or a zero extension of one (clang's frame
 * addresses), its own copy, so that such values are not all kept live through the function.
 * After the pipeline, before code generation, on objects above the quick level. */
void jit__remat_frame_addrs(struct LLVMOpaqueModule *mod);
/* False with $PSL_JIT_REMAT=0 (comparisons): jit__remat_frame_addrs is not run. */
bool jit__remat(void);
/* $PSL_JIT_OSR_AFTER=mid (comparisons): an OSR entry whose head lies in no other loop but has a
 * long loop after it is compiled at the mid level first, like every other entry (by default it
 * is compiled at the default level at once: see hot_thread, JIT_AFTER_CELLS). */
bool jit__osr_after_mid(void);
/* False with $PSL_JIT_OSR_ASK=0 (comparisons): OSR code below the default level then has no
 * checks at the top-level loops after its entry's nest (osr_leave_check). */
bool jit__osr_ask(void);
/* op's operand format (K_*). */
int jit__op_kind(int op);
/* The defined functions k calls directly (indices, in code order, repeats possible): writes at
 * most max to out and returns how many there are. */
uint32_t jit__callees(const wasm_module *m, uint32_t k, uint32_t *out, uint32_t max);
/* Host CPU name and features LLVM targets (static strings owned by jit_gen.c). */
void jit__host_cpu(const char **name, const char **features);
void jit__llvm_init(void);

/* The tables a linked object exports (JIT_SYM_FNS, JIT_SYM_ENTRIES, JIT_SYM_OSR or NULL). */
typedef struct jit_tables {
    void *const *fns;
    void *const *entries;
    void *const *osrs;
} jit_tables;

/* The LLVM half of the tier (jit_llvm.c + jit_gen.c; psljit.so in psl), reached only through
 * this table so that the rest of src/jit links no LLVM (jit_backend_llvm() returns it). */
struct jit_backend {
    /* jit__compile_object */
    int (*compile)(const wasm_module *m, const jit_gen_opts *o, uint8_t **obj, size_t *len,
                   char *err, size_t errlen);
    /** Link obj with ORC LLJIT (helpers by name, then the process's symbols) and look its tables
     * up (osrs only with osr). @param[out] handle for unlink. @return 0 or ERR_INVALID. */
    int (*link)(const uint8_t *obj, size_t len, const jit_helper *helpers, unsigned nhelpers,
                bool osr, void **handle, jit_tables *out, char *err, size_t errlen);
    void (*unlink)(void *handle);
};

/* ---- the ELF loader (jit_elf.c, no LLVM) ---- */

/* A relocatable x86-64 ELF object placed in memory: code read+execute, constants read-only,
 * data read-write, never writable and executable at once. */
typedef struct jit_image jit_image;

/** Link obj without LLVM: place its allocated sections, resolve undefined symbols (helpers by
 * name, then the process's symbols, as LLJIT does), apply its relocations (R_X86_64_64, PC32,
 * PLT32 through a stub of its own, PC64, 32, 32S, GOTPCREL[X], REX_GOTPCRELX through a GOT of its
 * own), then protect. Every offset in obj is bounds-checked; obj is not kept.
 * @param[out] out the image, freed with jit__elf_free.
 * @return 0; ERR_MALFORMED (not a well-formed object) or ERR_INVALID (a section, symbol or
 * relocation this loader does not handle: link with LLJIT instead), nothing mapped; ERR_NOMEM. */
int jit__elf_link(const uint8_t *obj, size_t len, const jit_helper *helpers, unsigned nhelpers,
                  jit_image **out, char *err, size_t errlen);
/* The address of a defined global symbol of the image, or NULL. */
void *jit__elf_sym(const jit_image *im, const char *name);
/* The address range of the image's code sections. */
void jit__elf_code(const jit_image *im, uintptr_t *lo, uintptr_t *hi);
/* Unmap the image (NULL is ignored). No code of it may be running. */
void jit__elf_free(jit_image *im);

#endif
