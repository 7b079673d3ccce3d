/* Translation of a module's lowered code (wasm_ops.h) into LLVM IR, optimisation and object
 * emission. Each frame slot is an i64 alloca holding the interpreter's slot bits (i32 and f32 in
 * the low half, upper half zero); mem2reg/SROA turn them into SSA values. Invariant: every
 * operator does exactly what its handler in interp.c does, trap kinds included. */
#include "jit/jit_int.h"
#include "platform/platform.h"
#include "wasm/wasm_ops.h"

#include <errno.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char *g_cpu, *g_features, *g_triple;

static void init_once(void) {
    jit__ops_init();
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    g_triple = LLVMGetDefaultTargetTriple();
    g_cpu = LLVMGetHostCPUName();
    g_features = LLVMGetHostCPUFeatures();
    /* LLVM's own command line: X86DomainReassignment off (it moves integer work into AVX-512
     * mask registers on hosts that have them; on the benchmark modules it took 5-12 % of the
     * code generator's time, see docs/jit.md), then $PSL_JIT_LLVM_OPTS (space-separated,
     * experiments). */
    static char buf[1024];
    const char *argv[32] = {"psl", "-disable-x86-domain-reassignment"};
    int argc = 2;
    const char *opts = getenv("PSL_JIT_LLVM_OPTS");
    snprintf(buf, sizeof buf, "%s", opts ? opts : "");
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 32;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    LLVMParseCommandLineOptions(argc, argv, "psl");
}

void jit__llvm_init(void) {
    pthread_once(&g_once, init_once);
}

void jit__host_cpu(const char **name, const char **features) {
    jit__llvm_init();
    *name = g_cpu;
    *features = g_features;
}

#define op_of jit__op_of
#define op_len jit__op_len

/* ---- module-level generator state ---- */

typedef struct gen {
    const wasm_module *m;
    LLVMContextRef cx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i1, i8, i16, i32, i64, f32, f64, ptr, vd;
    bool guard;                      /* no bounds checks on loads and stores */
    const uint8_t *sel;              /* jit_gen_opts.sel */
    const uint32_t *osr_cell;        /* jit_gen_opts.osr_cell */
    const uint64_t *const *osr_vals; /* jit_gen_opts.osr_vals */
    bool fuel;                       /* jit_gen_opts.fuel */
    uint8_t level;                   /* jit_gen_opts.level */
    LLVMValueRef *fns;               /* native function per code */
    LLVMTypeRef *fntys;
    unsigned prof_kind, invariant_kind;
    LLVMValueRef unlikely_md;
    unsigned nvec; /* checked loop copies made so far (their alias scopes' names) */
    /* helpers */
    LLVMTypeRef t_osr_ready;
    LLVMTypeRef t_trap, t_budget, t_call, t_calli, t_mgrow, t_minit, t_seg, t_tget, t_tset, t_tsize,
        t_tgrow, t_tfill, t_tcopy, t_tinit;
    LLVMValueRef h_osr_ready;
    LLVMValueRef h_trap, h_budget, h_call, h_calli, h_mgrow, h_minit, h_ddrop, h_tget, h_tset,
        h_tsize, h_tgrow, h_tfill, h_tcopy, h_tinit, h_edrop;
} gen;

/* ---- per-function state ---- */

enum { VEC_GROUPS = 8, VEC_SPLITS = 8 }; /* bases, split adds of a checked loop copy (vec_plan) */

typedef struct fgen {
    gen *g;
    const wasm_code *code;
    const wasm_ftype *ft;
    LLVMValueRef fn, ctx;
    LLVMValueRef *slots;
    LLVMValueRef memsize, lfuel, mem, inst, depthp, depth0, callbuf;
    LLVMValueRef codes; /* inst->mod->codes (for calls to functions of other objects) */
    uint32_t callbuf_n;
    LLVMBasicBlockRef *bbs; /* per cell: the block starting there, or NULL */
    const uint8_t *jt;      /* per cell: a branch goes there (JT_FWD, JT_BACK) */
    const bool *iv_nuw;     /* per cell: an i32.add proven not to wrap (iv_adds), or NULL */
    bool osr;               /* the OSR variant: (ctx, fp, cell), results to fp */
    bool leaf;              /* calls nothing (no call, call_import, call_indirect) */
    LLVMValueRef fpv;       /* its fp */
    /* OSR variant: per cell, a loop head where the activation may leave for newer code (see
     * gen_func); its function's OSR count, and that count at entry. */
    uint8_t *nest_head; /* 1: leave when the count changed; 2: ask psl_jit_osr_ready */
    LLVMValueRef epochp, epoch0;
    LLVMValueRef epoch_seen;   /* the count at the last psl_jit_osr_ready (an i32 alloca) */
    uint32_t k;                /* the function's index among the defined ones */
    LLVMBasicBlockRef *leaves; /* the blocks that leave (osr_leave_check), in order made */
    uint32_t *leave_at;        /* the loop head each of them leaves at */
    uint32_t nleaves;
    LLVMBasicBlockRef traps[WASM_TRAP_COUNT];
    LLVMBasicBlockRef entry;
    /* Slots known to hold a constant in the current block (kgen[slot] == gen). */
    uint32_t *kgen, cur_gen;
    uint64_t *kval;
    /* Slots s known to satisfy s + xk[s] <= JIT_MEM_MAX in the current block (xgen[s] == gen):
     * see note_access. */
    uint32_t *xgen;
    int64_t *xk;
    /* Counted loops run in a checked copy (vec_plan, vec_emit): per cell, the plan of the loop
     * whose head it is (NULL: none); while such a copy is emitted, its access groups' scopes. */
    struct vec_plan **vec;
    const struct vec_plan *vec_on;
    bool vec_plain; /* that copy's accesses cannot trap (its plan has access groups) */
    LLVMValueRef vec_scope[VEC_GROUPS], vec_noalias[VEC_GROUPS];
    /* In such a copy, slots s holding an address b + a whose add does not wrap (a split of the
     * plan; sgen[s] == cur_gen): b and a, as i32 values, for mem_addr. */
    uint32_t *sgen;
    LLVMValueRef *sb, *sa;
} fgen;

#define B (f->g->b)
#define G (f->g)

static LLVMValueRef c32(gen *g, uint64_t v) {
    return LLVMConstInt(g->i32, v, 0);
}
static LLVMValueRef c64(gen *g, uint64_t v) {
    return LLVMConstInt(g->i64, v, 0);
}

static LLVMValueRef ctx_field(fgen *f, size_t off, LLVMTypeRef ty, const char *name) {
    LLVMValueRef idx = c64(G, off);
    LLVMValueRef p = LLVMBuildGEP2(B, G->i8, f->ctx, &idx, 1, "");
    return LLVMBuildLoad2(B, ty, p, name);
}

/* A context field that no code changes while compiled code runs (the instance's shortcuts):
 * marked invariant, so LLVM may reuse one load across calls and hoist it out of loops. */
static LLVMValueRef ctx_fixed(fgen *f, size_t off, LLVMTypeRef ty, const char *name) {
    LLVMValueRef v = ctx_field(f, off, ty, name);
    LLVMSetMetadata(v, G->invariant_kind,
                    LLVMMetadataAsValue(G->cx, LLVMMDNodeInContext2(G->cx, NULL, 0)));
    return v;
}

static LLVMValueRef field_ptr(fgen *f, LLVMValueRef base, size_t off) {
    LLVMValueRef idx = c64(G, off);
    return LLVMBuildGEP2(B, G->i8, base, &idx, 1, "");
}

static LLVMValueRef intrinsic(gen *g, const char *name, LLVMTypeRef *tys, unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    ASSERT(id != 0);
    return LLVMGetIntrinsicDeclaration(g->mod, id, tys, n);
}

static LLVMValueRef call_intr(fgen *f, const char *name, LLVMTypeRef ty, LLVMValueRef *args,
                              unsigned nargs) {
    LLVMTypeRef tys[1] = {ty};
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(G->mod, id, tys, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(G->cx, id, tys, 1);
    return LLVMBuildCall2(B, fty, fn, args, nargs, "");
}

/* Slot access in the slot representation. */
static LLVMValueRef ld(fgen *f, uint32_t slot) {
    ASSERT(slot < f->code->nslots);
    return LLVMBuildLoad2(B, G->i64, f->slots[slot], "");
}
static void st(fgen *f, uint32_t slot, LLVMValueRef v) {
    ASSERT(slot < f->code->nslots);
    LLVMBuildStore(B, v, f->slots[slot]);
    f->kgen[slot] = 0;
    f->xgen[slot] = 0;
    if (f->sgen)
        f->sgen[slot] = 0;
}

/* Additions that cannot wrap. The tier caps every memory at JIT_MEM_MAX = 2^32 - 2^16 bytes
 * (jit.h), so once an access of n bytes at zext(s) + o has run in the current block (a trap
 * would have left it), s + o + n <= JIT_MEM_MAX and s + c < 2^32 for every c < o + n + 2^16.
 * Such an i32.add is emitted nuw: LLVM then keeps the address in 64 bits without masking it
 * after the add, so a loop's pointer steps become one 64-bit induction variable and p + 8 beside
 * p becomes a displacement of the same base register. Per slot, xk[s] = k records the fact
 * s + k <= JIT_MEM_MAX (k < 0 after additions); writing the slot (st) or a new block forgets it. */
static void note_access(fgen *f, uint32_t s, uint64_t end) {
    if (f->xgen[s] != f->cur_gen || f->xk[s] < (int64_t)end) {
        f->xgen[s] = f->cur_gen;
        f->xk[s] = (int64_t)end;
    }
}

/* Does s + c (32-bit) provably not wrap? */
static bool add_nuw(const fgen *f, uint32_t s, uint32_t c) {
    return f->xgen[s] == f->cur_gen && (int64_t)c - f->xk[s] < (1 << 16);
}

/* Is slot a constant whose use as an operand lets LLVM fold x+-0, x*+-1, x/+-1 or -0-x into x or
 * -x? Such folds would skip the quieting of a signalling NaN that the hardware (and wasm)
 * performs. */
static bool nan_fold_bits(uint64_t v, bool d) {
    if (d) {
        v &= 0x7fffffffffffffffull;
        return v == 0 || v == 0x3ff0000000000000ull;
    }
    v &= 0x7fffffffu;
    return v == 0 || v == 0x3f800000u;
}

static bool nan_fold_const(fgen *f, uint32_t slot, bool d) {
    return f->kgen[slot] == f->cur_gen && nan_fold_bits(f->kval[slot], d);
}

/* Conversions between slot bits (i64) and typed values. */
static LLVMValueRef as_i32(fgen *f, LLVMValueRef v) {
    return LLVMBuildTrunc(B, v, G->i32, "");
}
static LLVMValueRef as_f32(fgen *f, LLVMValueRef v) {
    return LLVMBuildBitCast(B, as_i32(f, v), G->f32, "");
}
static LLVMValueRef as_f64(fgen *f, LLVMValueRef v) {
    return LLVMBuildBitCast(B, v, G->f64, "");
}
static LLVMValueRef from_i32(fgen *f, LLVMValueRef v) {
    return LLVMBuildZExt(B, v, G->i64, "");
}
static LLVMValueRef from_i1(fgen *f, LLVMValueRef v) {
    return LLVMBuildZExt(B, v, G->i64, "");
}
static LLVMValueRef from_f32(fgen *f, LLVMValueRef v) {
    return from_i32(f, LLVMBuildBitCast(B, v, G->i32, ""));
}
static LLVMValueRef from_f64(fgen *f, LLVMValueRef v) {
    return LLVMBuildBitCast(B, v, G->i64, "");
}

static LLVMBasicBlockRef new_bb(fgen *f, const char *name) {
    return LLVMAppendBasicBlockInContext(G->cx, f->fn, name);
}

static bool terminated(fgen *f) {
    LLVMBasicBlockRef bb = LLVMGetInsertBlock(B);
    return LLVMGetBasicBlockTerminator(bb) != NULL;
}

static LLVMBasicBlockRef trap_bb(fgen *f, int kind) {
    if (f->traps[kind])
        return f->traps[kind];
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(B);
    LLVMBasicBlockRef bb = new_bb(f, "trap");
    LLVMPositionBuilderAtEnd(B, bb);
    LLVMValueRef args[2] = {f->ctx, c32(G, (uint64_t)kind)};
    LLVMBuildCall2(B, G->t_trap, G->h_trap, args, 2, "");
    LLVMBuildUnreachable(B);
    LLVMPositionBuilderAtEnd(B, cur);
    f->traps[kind] = bb;
    return bb;
}

/* if (cond) trap(kind); continues in a fresh block. */
static void trap_if(fgen *f, LLVMValueRef cond, int kind) {
    LLVMBasicBlockRef ok = new_bb(f, "ok");
    LLVMValueRef br = LLVMBuildCondBr(B, cond, trap_bb(f, kind), ok);
    LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
    LLVMPositionBuilderAtEnd(B, ok);
}

/* st of a value of wasm type @p type that arrives as 64 bits LLVM knows nothing about (a call's
 * result, a global): an i32 or f32 one is stored as the zero extension of its low half, which
 * costs nothing (the upper half is zero already) and lets narrow_slots see it fits. */
static void st_typed(fgen *f, uint32_t slot, LLVMValueRef v, uint8_t type) {
    if (type == WASM_I32 || type == WASM_F32)
        v = LLVMBuildZExt(B, LLVMBuildTrunc(B, v, G->i32, ""), G->i64, "");
    st(f, slot, v);
}

static void reload_memsize(fgen *f) {
    LLVMValueRef p = ctx_field(f, offsetof(jit_ctx, memsize), G->ptr, "msp");
    LLVMBuildStore(B, LLVMBuildLoad2(B, G->i64, p, "msz"), f->memsize);
}

/* After a call to a compiled function: its results @p r (one i64, or a struct of them) into the
 * slots from @p base, and the memory size again (the callee may have grown the memory). */
static void store_results(fgen *f, uint32_t base, const wasm_ftype *t, LLVMValueRef r) {
    if (t->nresults == 1)
        st_typed(f, base, r, t->types[t->nparams]);
    else
        for (uint32_t i = 0; i < t->nresults; i++)
            st_typed(f, base + i, LLVMBuildExtractValue(B, r, i, ""), t->types[t->nparams + i]);
    reload_memsize(f);
}

/* Charge @p cost cells of work; poll the budget when this activation's fuel runs out. */
static void loop_fuel(fgen *f, uint32_t cost) {
    if (!G->fuel)
        return;
    LLVMValueRef v = LLVMBuildLoad2(B, G->i32, f->lfuel, "");
    LLVMValueRef n = LLVMBuildSub(B, v, c32(G, cost ? cost : 1), "");
    LLVMBuildStore(B, n, f->lfuel);
    LLVMBasicBlockRef poll = new_bb(f, "poll"), ok = new_bb(f, "go");
    LLVMValueRef br = LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, n, c32(G, 0), ""), poll, ok);
    LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
    LLVMPositionBuilderAtEnd(B, poll);
    LLVMBuildStore(B, c32(G, JIT_FUEL_PERIOD), f->lfuel);
    LLVMBuildCall2(B, G->t_budget, G->h_budget, &f->ctx, 1, "");
    LLVMBuildBr(B, ok);
    LLVMPositionBuilderAtEnd(B, ok);
}

/* OSR variant, at a back edge to loop head t: when newer code for this function was linked
 * since the activation entered (its OSR count changed), write the slots to the interpreter's
 * frame (the state at t, a block start; osr_prune_leaves later keeps the stores of those live
 * at t) and return JIT_OSR_LEFT + t. At the loops around the entry's loop head (nest_head 1):
 * one load per run of an inner loop, and inner loops keep one exit. At a top-level loop after
 * the entry's nest (nest_head 2, code below the default level: it would run that loop to its
 * end), at its first back edge and whenever the count changed since: psl_jit_osr_ready leaves
 * when the function has an entry at t, else asks for one and the code goes on. */
static void osr_leave_check(fgen *f, uint32_t t) {
    LLVMValueRef now = LLVMBuildLoad2(B, G->i32, f->epochp, "epoch");
    LLVMSetVolatile(now, 1);
    LLVMBasicBlockRef leave = new_bb(f, "osr_leave"), go = new_bb(f, "");
    f->leaves = xrealloc(f->leaves, (f->nleaves + 1) * sizeof *f->leaves);
    f->leave_at = xrealloc(f->leave_at, (f->nleaves + 1) * sizeof *f->leave_at);
    f->leave_at[f->nleaves] = t;
    f->leaves[f->nleaves++] = leave;
    if (f->nest_head[t] == 2) {
        LLVMBasicBlockRef ask = new_bb(f, "osr_ask");
        LLVMValueRef seen = LLVMBuildLoad2(B, G->i32, f->epoch_seen, "");
        LLVMValueRef br = LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, now, seen, ""), ask, go);
        LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
        LLVMPositionBuilderAtEnd(B, ask);
        LLVMValueRef args[3] = {f->ctx, c32(G, f->k), c32(G, t)};
        LLVMValueRef r = LLVMBuildCall2(B, G->t_osr_ready, G->h_osr_ready, args, 3, "");
        LLVMBuildStore(B, now, f->epoch_seen);
        LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, r, c32(G, 0), ""), leave, go);
    } else {
        LLVMValueRef br =
            LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, now, f->epoch0, ""), leave, go);
        LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
    }
    LLVMPositionBuilderAtEnd(B, leave);
    for (uint32_t i = 0; i < f->code->nslots; i++) {
        LLVMValueRef idx = c64(G, i);
        LLVMBuildStore(B, ld(f, i), LLVMBuildGEP2(B, G->i64, f->fpv, &idx, 1, ""));
    }
    LLVMBuildRet(B, c32(G, JIT_OSR_LEFT + (uint64_t)t));
    LLVMPositionBuilderAtEnd(B, go);
}

/* A backward jump from @p from costs the loop body's length in cells. */
static void jump(fgen *f, const wasm_cell *from, const wasm_cell *target, bool back) {
    uint32_t t = (uint32_t)(target - f->code->code);
    if (back && f->nest_head && f->nest_head[t])
        osr_leave_check(f, t);
    if (back)
        loop_fuel(f, (uint32_t)(from - target));
    LLVMBuildBr(B, f->bbs[t]);
}

/* Effective address of a memory access of n bytes: zext(addr) + offset, bounds checked unless
 * @p guarded (then ea < 8 GiB + 8 lies inside the memory's reservation and a fault traps). */
static LLVMValueRef mem_addr(fgen *f, uint32_t addr_slot, uint32_t offset, uint32_t n,
                             bool guarded) {
    LLVMValueRef a = from_i32(f, as_i32(f, ld(f, addr_slot)));
    LLVMValueRef ea = LLVMBuildNUWAdd(B, a, c64(G, offset), "ea");
    if (!guarded) {
        LLVMValueRef end = LLVMBuildAdd(B, ea, c64(G, n), "");
        LLVMValueRef msz = LLVMBuildLoad2(B, G->i64, f->memsize, "");
        trap_if(f, LLVMBuildICmp(B, LLVMIntUGT, end, msz, ""), WASM_TRAP_MEM_OOB);
    }
    if (f->sgen && f->sgen[addr_slot] == f->cur_gen) {
        /* b + a does not wrap (a split, checked at the copy's entry): mem + b, invariant in
         * the loop, then + a + offset, which x86 addresses as base + index + displacement
         * instead of computing b + a in 32 bits first */
        LLVMValueRef zb = LLVMBuildZExt(B, f->sb[addr_slot], G->i64, "");
        LLVMValueRef za =
            LLVMBuildNUWAdd(B, LLVMBuildZExt(B, f->sa[addr_slot], G->i64, ""), c64(G, offset), "");
        LLVMValueRef pb = LLVMBuildGEP2(B, G->i8, f->mem, &zb, 1, "");
        return LLVMBuildGEP2(B, G->i8, pb, &za, 1, "");
    }
    return LLVMBuildGEP2(B, G->i8, f->mem, &ea, 1, "");
}

static LLVMValueRef fsel_nan(fgen *f, LLVMValueRef x, LLVMValueRef r) {
    /* Rounding functions quiet a NaN input (x + x), as the interpreter does. */
    LLVMValueRef uno = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
    return LLVMBuildSelect(B, uno, LLVMBuildFAdd(B, x, x, ""), r, "");
}

/* NaN-propagating min/max with -0 < +0: on equality combine the bit patterns (or: min, and: max).
 */
static LLVMValueRef fminmax(fgen *f, LLVMValueRef x, LLVMValueRef y, bool is_min, bool d) {
    LLVMTypeRef ft = d ? G->f64 : G->f32, it = d ? G->i64 : G->i32;
    LLVMValueRef uno = LLVMBuildFCmp(B, LLVMRealUNO, x, y, "");
    LLVMValueRef eq = LLVMBuildFCmp(B, LLVMRealOEQ, x, y, "");
    LLVMValueRef xb = LLVMBuildBitCast(B, x, it, ""), yb = LLVMBuildBitCast(B, y, it, "");
    LLVMValueRef comb = is_min ? LLVMBuildOr(B, xb, yb, "") : LLVMBuildAnd(B, xb, yb, "");
    LLVMValueRef combf = LLVMBuildBitCast(B, comb, ft, "");
    LLVMValueRef lt = LLVMBuildFCmp(B, is_min ? LLVMRealOLT : LLVMRealOGT, x, y, "");
    LLVMValueRef r = LLVMBuildSelect(B, lt, x, y, "");
    r = LLVMBuildSelect(B, eq, combf, r, "");
    return LLVMBuildSelect(B, uno, LLVMBuildFAdd(B, x, y, ""), r, "");
}

/* An identity LLVM cannot see through (an empty inline asm that keeps the value in a vector
 * register): applied to constants that would let LLVM fold away the quieting of a signalling NaN
 * (x*1 -> x), and to the input of demote (demote(promote(x)) -> x). Costs no instruction. */
static LLVMValueRef opaque_f(fgen *f, LLVMValueRef v, bool d) {
    const char *cons = strncmp(g_triple, "x86_64", 6) == 0    ? "=x,0"
                       : strncmp(g_triple, "aarch64", 7) == 0 ? "=w,0"
                                                              : NULL;
    if (!cons)
        return v;
    LLVMTypeRef t = d ? G->f64 : G->f32;
    LLVMTypeRef fty = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef asmv =
        LLVMGetInlineAsm(fty, "", 0, cons, strlen(cons), 0, 0, LLVMInlineAsmDialectATT, 0);
    return LLVMBuildCall2(B, fty, asmv, &v, 1, "");
}

static LLVMValueRef opaque_bits(fgen *f, LLVMValueRef bits, bool d) {
    if (d)
        return from_f64(f, opaque_f(f, as_f64(f, bits), true));
    return from_f32(f, opaque_f(f, as_f32(f, bits), false));
}

/* Binary operator on slot bits x, y; returns the result's slot bits. */
static LLVMValueRef emit_bin(fgen *f, int op, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef a, c;
    switch (op) {
#define I32OP(o, EXPR)                                                                             \
    case OP_##o:                                                                                   \
        a = as_i32(f, x);                                                                          \
        c = as_i32(f, y);                                                                          \
        return from_i32(f, EXPR);
#define I32CMP(o, P)                                                                               \
    case OP_##o: return from_i1(f, LLVMBuildICmp(B, P, as_i32(f, x), as_i32(f, y), ""));
#define I64CMP(o, P)                                                                               \
    case OP_##o: return from_i1(f, LLVMBuildICmp(B, P, x, y, ""));
#define F32CMP(o, P)                                                                               \
    case OP_##o: return from_i1(f, LLVMBuildFCmp(B, P, as_f32(f, x), as_f32(f, y), ""));
#define F64CMP(o, P)                                                                               \
    case OP_##o: return from_i1(f, LLVMBuildFCmp(B, P, as_f64(f, x), as_f64(f, y), ""));
#define F32OP(o, FN)                                                                               \
    case OP_##o: return from_f32(f, FN(B, as_f32(f, x), as_f32(f, y), ""));
#define F64OP(o, FN)                                                                               \
    case OP_##o: return from_f64(f, FN(B, as_f64(f, x), as_f64(f, y), ""));
        I32OP(i32_add, LLVMBuildAdd(B, a, c, ""))
        I32OP(i32_sub, LLVMBuildSub(B, a, c, ""))
        I32OP(i32_mul, LLVMBuildMul(B, a, c, ""))
        I32OP(i32_and, LLVMBuildAnd(B, a, c, ""))
        I32OP(i32_or, LLVMBuildOr(B, a, c, ""))
        I32OP(i32_xor, LLVMBuildXor(B, a, c, ""))
        I32OP(i32_shl, LLVMBuildShl(B, a, LLVMBuildAnd(B, c, c32(G, 31), ""), ""))
        I32OP(i32_shr_s, LLVMBuildAShr(B, a, LLVMBuildAnd(B, c, c32(G, 31), ""), ""))
        I32OP(i32_shr_u, LLVMBuildLShr(B, a, LLVMBuildAnd(B, c, c32(G, 31), ""), ""))
        I32CMP(i32_eq, LLVMIntEQ)
        I32CMP(i32_ne, LLVMIntNE)
        I32CMP(i32_lt_s, LLVMIntSLT)
        I32CMP(i32_lt_u, LLVMIntULT)
        I32CMP(i32_gt_s, LLVMIntSGT)
        I32CMP(i32_gt_u, LLVMIntUGT)
        I32CMP(i32_le_s, LLVMIntSLE)
        I32CMP(i32_le_u, LLVMIntULE)
        I32CMP(i32_ge_s, LLVMIntSGE)
        I32CMP(i32_ge_u, LLVMIntUGE)
    case OP_i64_add: return LLVMBuildAdd(B, x, y, "");
    case OP_i64_sub: return LLVMBuildSub(B, x, y, "");
    case OP_i64_mul: return LLVMBuildMul(B, x, y, "");
    case OP_i64_and: return LLVMBuildAnd(B, x, y, "");
    case OP_i64_or: return LLVMBuildOr(B, x, y, "");
    case OP_i64_xor: return LLVMBuildXor(B, x, y, "");
    case OP_i64_shl: return LLVMBuildShl(B, x, LLVMBuildAnd(B, y, c64(G, 63), ""), "");
    case OP_i64_shr_s: return LLVMBuildAShr(B, x, LLVMBuildAnd(B, y, c64(G, 63), ""), "");
    case OP_i64_shr_u:
        return LLVMBuildLShr(B, x, LLVMBuildAnd(B, y, c64(G, 63), ""), "");
        I64CMP(i64_eq, LLVMIntEQ)
        I64CMP(i64_ne, LLVMIntNE)
        I64CMP(i64_lt_s, LLVMIntSLT)
        I64CMP(i64_lt_u, LLVMIntULT)
        I64CMP(i64_gt_s, LLVMIntSGT)
        I64CMP(i64_gt_u, LLVMIntUGT)
        I64CMP(i64_le_s, LLVMIntSLE)
        I64CMP(i64_le_u, LLVMIntULE)
        I64CMP(i64_ge_s, LLVMIntSGE)
        I64CMP(i64_ge_u, LLVMIntUGE)
        F32CMP(f32_eq, LLVMRealOEQ)
        F32CMP(f32_ne, LLVMRealUNE)
        F32CMP(f32_lt, LLVMRealOLT)
        F32CMP(f32_gt, LLVMRealOGT)
        F32CMP(f32_le, LLVMRealOLE)
        F32CMP(f32_ge, LLVMRealOGE)
        F64CMP(f64_eq, LLVMRealOEQ)
        F64CMP(f64_ne, LLVMRealUNE)
        F64CMP(f64_lt, LLVMRealOLT)
        F64CMP(f64_gt, LLVMRealOGT)
        F64CMP(f64_le, LLVMRealOLE)
        F64CMP(f64_ge, LLVMRealOGE)
        F32OP(f32_add, LLVMBuildFAdd)
        F32OP(f32_sub, LLVMBuildFSub)
        F32OP(f32_mul, LLVMBuildFMul)
        F32OP(f32_div, LLVMBuildFDiv)
        F64OP(f64_add, LLVMBuildFAdd)
        F64OP(f64_sub, LLVMBuildFSub)
        F64OP(f64_mul, LLVMBuildFMul)
        F64OP(f64_div, LLVMBuildFDiv)
#undef I32OP
#undef I32CMP
#undef I64CMP
#undef F32CMP
#undef F64CMP
#undef F32OP
#undef F64OP
    case OP_f32_min:
    case OP_f32_max:
        return from_f32(f, fminmax(f, as_f32(f, x), as_f32(f, y), op == OP_f32_min, false));
    case OP_f64_min:
    case OP_f64_max:
        return from_f64(f, fminmax(f, as_f64(f, x), as_f64(f, y), op == OP_f64_min, true));
    case OP_f32_copysign:
        return LLVMBuildOr(B, LLVMBuildAnd(B, x, c64(G, 0x7fffffffu), ""),
                           LLVMBuildAnd(B, y, c64(G, 0x80000000u), ""), "");
    case OP_f64_copysign:
        return LLVMBuildOr(B, LLVMBuildAnd(B, x, c64(G, 0x7fffffffffffffffull), ""),
                           LLVMBuildAnd(B, y, c64(G, 0x8000000000000000ull), ""), "");
    case OP_i32_rotl:
    case OP_i32_rotr: {
        LLVMValueRef args[3] = {as_i32(f, x), as_i32(f, x), as_i32(f, y)};
        return from_i32(
            f, call_intr(f, op == OP_i32_rotl ? "llvm.fshl" : "llvm.fshr", G->i32, args, 3));
    }
    case OP_i64_rotl:
    case OP_i64_rotr: {
        LLVMValueRef args[3] = {x, x, y};
        return call_intr(f, op == OP_i64_rotl ? "llvm.fshl" : "llvm.fshr", G->i64, args, 3);
    }
    case OP_i32_div_s:
    case OP_i32_div_u:
    case OP_i32_rem_s:
    case OP_i32_rem_u:
    case OP_i64_div_s:
    case OP_i64_div_u:
    case OP_i64_rem_s:
    case OP_i64_rem_u: {
        bool w = op >= OP_i64_add;
        LLVMTypeRef t = w ? G->i64 : G->i32;
        a = w ? x : as_i32(f, x);
        c = w ? y : as_i32(f, y);
        LLVMValueRef zero = LLVMConstInt(t, 0, 0), m1 = LLVMConstAllOnes(t);
        LLVMValueRef minv = LLVMConstInt(t, w ? 0x8000000000000000ull : 0x80000000u, 0);
        trap_if(f, LLVMBuildICmp(B, LLVMIntEQ, c, zero, ""), WASM_TRAP_DIV_ZERO);
        LLVMValueRef r;
        switch (op) {
        case OP_i32_div_s:
        case OP_i64_div_s:
            trap_if(f,
                    LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntEQ, a, minv, ""),
                                 LLVMBuildICmp(B, LLVMIntEQ, c, m1, ""), ""),
                    WASM_TRAP_INT_OVERFLOW);
            r = LLVMBuildSDiv(B, a, c, "");
            break;
        case OP_i32_rem_s:
        case OP_i64_rem_s: {
            /* x % -1 is 0; srem would overflow for INT_MIN. */
            LLVMValueRef ism1 = LLVMBuildICmp(B, LLVMIntEQ, c, m1, "");
            LLVMValueRef safe = LLVMBuildSelect(B, ism1, LLVMConstInt(t, 1, 0), c, "");
            r = LLVMBuildSelect(B, ism1, zero, LLVMBuildSRem(B, a, safe, ""), "");
            break;
        }
        case OP_i32_div_u:
        case OP_i64_div_u: r = LLVMBuildUDiv(B, a, c, ""); break;
        default: r = LLVMBuildURem(B, a, c, ""); break;
        }
        return w ? r : from_i32(f, r);
    }
    default: break;
    }
    ASSERT(!"unhandled binary operator");
    return NULL;
}

/* Trapping float-to-int conversion: NaN -> conversion trap; outside (lo, hi) -> overflow. */
static LLVMValueRef emit_trunc(fgen *f, LLVMValueRef x, bool src64, bool dst64, bool sign,
                               double lo, double hi) {
    LLVMValueRef v = src64 ? as_f64(f, x) : as_f32(f, x);
    LLVMValueRef d = src64 ? v : LLVMBuildFPExt(B, v, G->f64, "");
    trap_if(f, LLVMBuildFCmp(B, LLVMRealUNO, d, d, ""), WASM_TRAP_CONVERSION);
    LLVMValueRef inr =
        LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealOGT, d, LLVMConstReal(G->f64, lo), ""),
                     LLVMBuildFCmp(B, LLVMRealOLT, d, LLVMConstReal(G->f64, hi), ""), "");
    trap_if(f, LLVMBuildNot(B, inr, ""), WASM_TRAP_INT_OVERFLOW);
    LLVMTypeRef t = dst64 ? G->i64 : G->i32;
    LLVMValueRef r = sign ? LLVMBuildFPToSI(B, v, t, "") : LLVMBuildFPToUI(B, v, t, "");
    return dst64 ? r : from_i32(f, r);
}

static LLVMValueRef emit_sat(fgen *f, LLVMValueRef x, bool src64, bool dst64, bool sign) {
    LLVMValueRef v = src64 ? as_f64(f, x) : as_f32(f, x);
    LLVMTypeRef tys[2] = {dst64 ? G->i64 : G->i32, src64 ? G->f64 : G->f32};
    const char *name = sign ? "llvm.fptosi.sat" : "llvm.fptoui.sat";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(G->mod, id, tys, 2);
    LLVMValueRef r = LLVMBuildCall2(B, LLVMIntrinsicGetType(G->cx, id, tys, 2), fn, &v, 1, "");
    return dst64 ? r : from_i32(f, r);
}

static LLVMValueRef emit_un(fgen *f, int op, LLVMValueRef x) {
    LLVMValueRef fls = LLVMConstInt(G->i1, 0, 0);
    switch (op) {
    case OP_i32_eqz: return from_i1(f, LLVMBuildICmp(B, LLVMIntEQ, as_i32(f, x), c32(G, 0), ""));
    case OP_i64_eqz: return from_i1(f, LLVMBuildICmp(B, LLVMIntEQ, x, c64(G, 0), ""));
    case OP_ref_is_null: return from_i1(f, LLVMBuildICmp(B, LLVMIntEQ, x, c64(G, 0), ""));
    case OP_i32_clz:
    case OP_i32_ctz: {
        LLVMValueRef args[2] = {as_i32(f, x), fls};
        return from_i32(
            f, call_intr(f, op == OP_i32_clz ? "llvm.ctlz" : "llvm.cttz", G->i32, args, 2));
    }
    case OP_i32_popcnt: {
        LLVMValueRef a = as_i32(f, x);
        return from_i32(f, call_intr(f, "llvm.ctpop", G->i32, &a, 1));
    }
    case OP_i64_clz:
    case OP_i64_ctz: {
        LLVMValueRef args[2] = {x, fls};
        return call_intr(f, op == OP_i64_clz ? "llvm.ctlz" : "llvm.cttz", G->i64, args, 2);
    }
    case OP_i64_popcnt: return call_intr(f, "llvm.ctpop", G->i64, &x, 1);
    case OP_f32_abs: return LLVMBuildAnd(B, x, c64(G, 0x7fffffffu), "");
    case OP_f32_neg: return LLVMBuildXor(B, x, c64(G, 0x80000000u), "");
    case OP_f64_abs: return LLVMBuildAnd(B, x, c64(G, 0x7fffffffffffffffull), "");
    case OP_f64_neg: return LLVMBuildXor(B, x, c64(G, 0x8000000000000000ull), "");
    case OP_f32_ceil:
    case OP_f32_floor:
    case OP_f32_trunc:
    case OP_f32_nearest:
    case OP_f64_ceil:
    case OP_f64_floor:
    case OP_f64_trunc:
    case OP_f64_nearest: {
        bool d = op >= OP_f64_abs;
        LLVMValueRef v = d ? as_f64(f, x) : as_f32(f, x);
        const char *n = (op == OP_f32_ceil || op == OP_f64_ceil)     ? "llvm.ceil"
                        : (op == OP_f32_floor || op == OP_f64_floor) ? "llvm.floor"
                        : (op == OP_f32_trunc || op == OP_f64_trunc) ? "llvm.trunc"
                                                                     : "llvm.roundeven";
        LLVMValueRef r = fsel_nan(f, v, call_intr(f, n, d ? G->f64 : G->f32, &v, 1));
        return d ? from_f64(f, r) : from_f32(f, r);
    }
    case OP_f32_sqrt: {
        LLVMValueRef v = as_f32(f, x);
        return from_f32(f, call_intr(f, "llvm.sqrt", G->f32, &v, 1));
    }
    case OP_f64_sqrt: {
        LLVMValueRef v = as_f64(f, x);
        return from_f64(f, call_intr(f, "llvm.sqrt", G->f64, &v, 1));
    }
    case OP_i32_wrap_i64: return from_i32(f, as_i32(f, x));
    case OP_i32_trunc_f32_s:
        return emit_trunc(f, x, false, false, true, -2147483904.0, 2147483648.0);
    case OP_i32_trunc_f32_u: return emit_trunc(f, x, false, false, false, -1.0, 4294967296.0);
    case OP_i32_trunc_f64_s:
        return emit_trunc(f, x, true, false, true, -2147483649.0, 2147483648.0);
    case OP_i32_trunc_f64_u: return emit_trunc(f, x, true, false, false, -1.0, 4294967296.0);
    case OP_i64_extend_i32_s: return LLVMBuildSExt(B, as_i32(f, x), G->i64, "");
    case OP_i64_trunc_f32_s:
        return emit_trunc(f, x, false, true, true, -9223373136366403584.0, 9223372036854775808.0);
    case OP_i64_trunc_f32_u:
        return emit_trunc(f, x, false, true, false, -1.0, 18446744073709551616.0);
    case OP_i64_trunc_f64_s:
        return emit_trunc(f, x, true, true, true, -9223372036854777856.0, 9223372036854775808.0);
    case OP_i64_trunc_f64_u:
        return emit_trunc(f, x, true, true, false, -1.0, 18446744073709551616.0);
    case OP_f32_convert_i32_s: return from_f32(f, LLVMBuildSIToFP(B, as_i32(f, x), G->f32, ""));
    case OP_f32_convert_i32_u: return from_f32(f, LLVMBuildUIToFP(B, as_i32(f, x), G->f32, ""));
    case OP_f32_convert_i64_s: return from_f32(f, LLVMBuildSIToFP(B, x, G->f32, ""));
    case OP_f32_convert_i64_u: return from_f32(f, LLVMBuildUIToFP(B, x, G->f32, ""));
    case OP_f32_demote_f64:
        return from_f32(f, LLVMBuildFPTrunc(B, opaque_f(f, as_f64(f, x), true), G->f32, ""));
    case OP_f64_convert_i32_s: return from_f64(f, LLVMBuildSIToFP(B, as_i32(f, x), G->f64, ""));
    case OP_f64_convert_i32_u: return from_f64(f, LLVMBuildUIToFP(B, as_i32(f, x), G->f64, ""));
    case OP_f64_convert_i64_s: return from_f64(f, LLVMBuildSIToFP(B, x, G->f64, ""));
    case OP_f64_convert_i64_u: return from_f64(f, LLVMBuildUIToFP(B, x, G->f64, ""));
    case OP_f64_promote_f32: return from_f64(f, LLVMBuildFPExt(B, as_f32(f, x), G->f64, ""));
    case OP_i32_extend8_s:
        return from_i32(f, LLVMBuildSExt(B, LLVMBuildTrunc(B, x, G->i8, ""), G->i32, ""));
    case OP_i32_extend16_s:
        return from_i32(f, LLVMBuildSExt(B, LLVMBuildTrunc(B, x, G->i16, ""), G->i32, ""));
    case OP_i64_extend8_s: return LLVMBuildSExt(B, LLVMBuildTrunc(B, x, G->i8, ""), G->i64, "");
    case OP_i64_extend16_s: return LLVMBuildSExt(B, LLVMBuildTrunc(B, x, G->i16, ""), G->i64, "");
    case OP_i64_extend32_s: return LLVMBuildSExt(B, LLVMBuildTrunc(B, x, G->i32, ""), G->i64, "");
    case OP_i32_trunc_sat_f32_s: return emit_sat(f, x, false, false, true);
    case OP_i32_trunc_sat_f32_u: return emit_sat(f, x, false, false, false);
    case OP_i32_trunc_sat_f64_s: return emit_sat(f, x, true, false, true);
    case OP_i32_trunc_sat_f64_u: return emit_sat(f, x, true, false, false);
    case OP_i64_trunc_sat_f32_s: return emit_sat(f, x, false, true, true);
    case OP_i64_trunc_sat_f32_u: return emit_sat(f, x, false, true, false);
    case OP_i64_trunc_sat_f64_s: return emit_sat(f, x, true, true, true);
    case OP_i64_trunc_sat_f64_u: return emit_sat(f, x, true, true, false);
    default: break;
    }
    ASSERT(!"unhandled unary operator");
    return NULL;
}

/* Guard mode: a load relies on the guard region for its bounds and is volatile. LLVM treats a
 * load as free of side effects and deletes one whose value is unused or whose use folds away
 * (x - x, x & 0, a compare whose outcome it can prove, a branch whose successors it merges, a
 * store of a value back to where it was loaded, a result an inlined caller ignores), and sinks
 * one past a division's or a conversion's trap check into the successor that uses it: the
 * fault would then be lost or another trap reported first. A volatile load is never deleted,
 * merged or moved across another side effect, so it faults exactly where the interpreter traps.
 * Until session 13 only loads whose value a scan saw reach an effect in the same block skipped
 * an explicit check; the scan could not foresee LLVM's folds (docs/jit.md, "Guard region"). */
static void vec_scope(fgen *f, LLVMValueRef inst, const wasm_cell *ip);

static void emit_load(fgen *f, int op, const wasm_cell *ip) {
    uint32_t n;
    LLVMTypeRef t;
    switch (op) {
    case OP_load32: n = 4, t = G->i32; break;
    case OP_load64: n = 8, t = G->i64; break;
    case OP_load8_s32:
    case OP_load8_u:
    case OP_load8_s64: n = 1, t = G->i8; break;
    case OP_load16_s32:
    case OP_load16_u:
    case OP_load16_s64: n = 2, t = G->i16; break;
    default: n = 4, t = G->i32; break; /* load32_s64 */
    }
    LLVMValueRef p = mem_addr(f, ip[1].s.b, ip[1].w.hi, n, G->guard || f->vec_plain);
    LLVMValueRef v = LLVMBuildLoad2(B, t, p, "");
    if (f->vec_plain)
        vec_scope(f, v, ip);
    else if (G->guard)
        LLVMSetVolatile(v, 1);
    LLVMSetAlignment(v, 1);
    note_access(f, ip[1].s.b, (uint64_t)ip[1].w.hi + n);
    LLVMValueRef r;
    switch (op) {
    case OP_load64: r = v; break;
    case OP_load8_s32:
    case OP_load16_s32: r = from_i32(f, LLVMBuildSExt(B, v, G->i32, "")); break;
    case OP_load8_s64:
    case OP_load16_s64:
    case OP_load32_s64: r = LLVMBuildSExt(B, v, G->i64, ""); break;
    default: r = LLVMBuildZExt(B, v, G->i64, ""); break;
    }
    st(f, ip[1].s.a, r);
}

static void emit_store(fgen *f, int op, const wasm_cell *ip) {
    uint32_t n;
    LLVMTypeRef t;
    switch (op) {
    case OP_store8: n = 1, t = G->i8; break;
    case OP_store16: n = 2, t = G->i16; break;
    case OP_store32: n = 4, t = G->i32; break;
    default: n = 8, t = G->i64; break;
    }
    /* A store is never deleted (only merged with a later store to the same address, which
     * faults the same way): the guard region covers it. */
    LLVMValueRef p = mem_addr(f, ip[1].s.a, ip[1].w.hi, n, G->guard || f->vec_plain);
    LLVMValueRef v = ld(f, ip[1].s.b);
    if (t != G->i64)
        v = LLVMBuildTrunc(B, v, t, "");
    LLVMValueRef s = LLVMBuildStore(B, v, p);
    if (f->vec_plain)
        vec_scope(f, s, ip);
    LLVMSetAlignment(s, 1);
    note_access(f, ip[1].s.a, (uint64_t)ip[1].w.hi + n);
}

static const wasm_ftype *code_type(const wasm_module *m, uint32_t k) {
    return &m->types[m->func_types[m->nimported_funcs + k]];
}

static LLVMTypeRef ret_type(gen *g, const wasm_ftype *t) {
    if (t->nresults == 0)
        return g->vd;
    if (t->nresults == 1)
        return g->i64;
    LLVMTypeRef *els = xmalloc(t->nresults * sizeof *els);
    for (uint32_t i = 0; i < t->nresults; i++)
        els[i] = g->i64;
    LLVMTypeRef st = LLVMStructTypeInContext(g->cx, els, t->nresults, 0);
    free(els);
    return st;
}

/* The call depth of this function's callees: depth0 + 1, as if this function had counted itself
 * at its entry (an OSR copy passes depth0 on: the interpreter counted its activation). A
 * compiled callee receives it as its second argument; a call through a helper stores it in the
 * context first (depth_store), where the helper (call_func) or an entry wrapper reads it. */
static LLVMValueRef callee_depth(fgen *f) {
    return f->osr ? f->depth0 : LLVMBuildAdd(B, f->depth0, c32(G, 1), "");
}

/* Before a call through a helper: the counter in the context is read only there and by entry
 * wrappers, and every such call is preceded by this store, so nothing puts it back after the
 * call. enter_native restores the store's counter when the activation ends. */
static void depth_store(fgen *f) {
    LLVMBuildStore(B, callee_depth(f), f->depthp);
}

/* The parameter types of a compiled function of type t: (ctx, call depth, params...). The
 * caller frees them. */
static LLVMTypeRef *native_params(gen *g, const wasm_ftype *t) {
    LLVMTypeRef *ps = xmalloc((t->nparams + 2) * sizeof *ps);
    ps[0] = g->ptr;
    ps[1] = g->i32; /* callee_depth */
    for (uint32_t i = 0; i < t->nparams; i++)
        ps[i + 2] = g->i64;
    return ps;
}

/* Call compiled function fn (of type fty, wasm type t) with args from slots base..; returns its
 * result value (see store_results). */
static LLVMValueRef call_native(fgen *f, LLVMTypeRef fty, LLVMValueRef fn, const wasm_ftype *t,
                                uint32_t base) {
    LLVMValueRef *args = xmalloc((t->nparams + 2) * sizeof *args);
    args[0] = f->ctx;
    args[1] = callee_depth(f);
    for (uint32_t i = 0; i < t->nparams; i++)
        args[i + 2] = ld(f, base + i);
    LLVMValueRef r = LLVMBuildCall2(B, fty, fn, args, t->nparams + 2, "");
    free(args);
    return r;
}

/* Call through the helper buffer: args from slots base.., results back into them. */
static void call_via_buf(fgen *f, uint32_t base, const wasm_ftype *t, LLVMTypeRef fty,
                         LLVMValueRef fn, LLVMValueRef *args, unsigned nargs) {
    depth_store(f);
    for (uint32_t i = 0; i < t->nparams; i++) {
        LLVMValueRef idx = c64(G, i);
        LLVMBuildStore(B, ld(f, base + i), LLVMBuildGEP2(B, G->i64, f->callbuf, &idx, 1, ""));
    }
    LLVMBuildCall2(B, fty, fn, args, nargs, "");
    for (uint32_t i = 0; i < t->nresults; i++) {
        LLVMValueRef idx = c64(G, i);
        st_typed(f, base + i,
                 LLVMBuildLoad2(B, G->i64, LLVMBuildGEP2(B, G->i64, f->callbuf, &idx, 1, ""), ""),
                 t->types[t->nparams + i]);
    }
    reload_memsize(f);
}

/* A call to the wasm_code at code (a function of this instance compiled in another object, or
 * not yet compiled): when its tier_entry is published, call its native copy (tier_fn) directly
 * with args from slots base.., results into them; otherwise branch to slow, which the caller
 * fills. Returns the block both paths join at (the builder is left in no particular block). */
static LLVMBasicBlockRef call_linked_or(fgen *f, LLVMValueRef code, uint32_t base,
                                        const wasm_ftype *t, LLVMBasicBlockRef slow) {
    LLVMValueRef e =
        LLVMBuildLoad2(B, G->ptr, field_ptr(f, code, offsetof(wasm_code, tier_entry)), "");
    LLVMSetOrdering(e, LLVMAtomicOrderingAcquire);
    LLVMSetAlignment(e, 8);
    LLVMBasicBlockRef fast = new_bb(f, "linked"), join = new_bb(f, "called");
    LLVMBuildCondBr(B, LLVMBuildIsNotNull(B, e, ""), fast, slow);
    LLVMPositionBuilderAtEnd(B, fast);
    LLVMValueRef fn =
        LLVMBuildLoad2(B, G->ptr, field_ptr(f, code, offsetof(wasm_code, tier_fn)), "");
    LLVMTypeRef *ps = native_params(G, t);
    LLVMTypeRef fty = LLVMFunctionType(ret_type(G, t), ps, t->nparams + 2, 0);
    free(ps);
    store_results(f, base, t, call_native(f, fty, fn, t, base));
    LLVMBuildBr(B, join);
    return join;
}

/* call_linked_or with the helper call (fn, args: see call_via_buf) as the slow path. */
static void call_linked(fgen *f, LLVMValueRef code, uint32_t base, const wasm_ftype *t,
                        LLVMTypeRef fty, LLVMValueRef fn, LLVMValueRef *args, unsigned nargs) {
    LLVMBasicBlockRef slow = new_bb(f, "helper");
    LLVMBasicBlockRef join = call_linked_or(f, code, base, t, slow);
    LLVMPositionBuilderAtEnd(B, slow);
    call_via_buf(f, base, t, fty, fn, args, nargs);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
}

static void emit_ret(fgen *f) {
    uint32_t nr = f->ft->nresults;
    if (f->osr) {
        for (uint32_t i = 0; i < nr; i++) {
            LLVMValueRef idx = c64(G, i);
            LLVMBuildStore(B, ld(f, i), LLVMBuildGEP2(B, G->i64, f->fpv, &idx, 1, ""));
        }
        LLVMBuildRet(B, c32(G, 0));
        return;
    }
    if (nr == 0) {
        LLVMBuildRetVoid(B);
    } else if (nr == 1) {
        LLVMBuildRet(B, ld(f, 0));
    } else {
        LLVMValueRef *vals = xmalloc(nr * sizeof *vals);
        for (uint32_t i = 0; i < nr; i++)
            vals[i] = ld(f, i);
        LLVMBuildAggregateRet(B, vals, nr);
        free(vals);
    }
}

static LLVMValueRef globals_ptr(fgen *f, uint64_t idx) {
    if (idx < JIT_CTX_GLOBALS)
        return ctx_fixed(f, offsetof(jit_ctx, gval) + idx * sizeof(uint64_t *), G->ptr, "gval");
    LLVMValueRef arr =
        LLVMBuildLoad2(B, G->ptr, field_ptr(f, f->inst, offsetof(wasm_instance, globals)), "");
    LLVMValueRef i = c64(G, idx);
    LLVMValueRef g = LLVMBuildLoad2(B, G->ptr, LLVMBuildGEP2(B, G->ptr, arr, &i, 1, ""), "");
    return field_ptr(f, g, offsetof(wasm_global, val));
}

static int emit_misc(fgen *f, int op, const wasm_cell *ip) {
    const wasm_module *m = G->m;
    /* unreachable, nop and ret are one cell long: do not read past the end of the code. */
    wasm_cell ops = {0};
    if (op != OP_unreachable && op != OP_nop && op != OP_ret)
        ops = ip[1];
    uint16_t A = ops.s.a, Bs = ops.s.b, C = ops.s.c, D = ops.s.d;
    switch (op) {
    case OP_unreachable: LLVMBuildBr(B, trap_bb(f, WASM_TRAP_UNREACHABLE)); break;
    case OP_nop: break;
    case OP_copy: {
        bool known = f->xgen[Bs] == f->cur_gen;
        int64_t k = f->xk[Bs];
        /* C: a 32-bit value (see lower.c's copy_w32), stored so narrow_slots sees it fits */
        st(f, A, C ? from_i32(f, as_i32(f, ld(f, Bs))) : ld(f, Bs));
        if (known)
            f->xgen[A] = f->cur_gen, f->xk[A] = k;
        break;
    }
    case OP_copy2:
        st(f, A, ld(f, Bs));
        st(f, C, ld(f, D));
        break;
    case OP_const:
        st(f, A, c64(G, ip[2].u64));
        f->kgen[A] = f->cur_gen;
        f->kval[A] = ip[2].u64;
        break;
    case OP_select: {
        LLVMValueRef cond = LLVMBuildICmp(B, LLVMIntNE, as_i32(f, ld(f, D)), c32(G, 0), "");
        st(f, A, LLVMBuildSelect(B, cond, ld(f, Bs), ld(f, C), ""));
        break;
    }
    case OP_br:
    case OP_br_back: jump(f, ip, ip[1].target, ip[1].target <= ip); break;
    case OP_br_if:
    case OP_br_if_back:
    case OP_br_unless:
    case OP_brif_eqz: {
        /* Every branch to an earlier cell may close a loop: it polls fuel. */
        bool on_zero = op == OP_br_unless || op == OP_brif_eqz;
        bool back = ip[2].target <= ip;
        LLVMValueRef cond =
            LLVMBuildICmp(B, on_zero ? LLVMIntEQ : LLVMIntNE, as_i32(f, ld(f, A)), c32(G, 0), "");
        LLVMBasicBlockRef next = f->bbs[ip + 3 - f->code->code];
        LLVMBasicBlockRef tgt = f->bbs[ip[2].target - f->code->code];
        if (back) {
            LLVMBasicBlockRef taken = new_bb(f, "back");
            LLVMBuildCondBr(B, cond, taken, next);
            LLVMPositionBuilderAtEnd(B, taken);
            jump(f, ip, ip[2].target, true);
        } else {
            LLVMBuildCondBr(B, cond, tgt, next);
        }
        break;
    }
    case OP_br_table: {
        uint64_t n = ip[2].u64;
        LLVMValueRef idx = as_i32(f, ld(f, A));
        uint32_t cost = 1; /* the longest backward target, as a bound */
        for (uint64_t i = 0; i <= n; i++)
            if (ip[3 + i].target <= ip && (uint32_t)(ip - ip[3 + i].target) > cost)
                cost = (uint32_t)(ip - ip[3 + i].target);
        loop_fuel(f, cost);
        LLVMValueRef sw =
            LLVMBuildSwitch(B, idx, f->bbs[ip[3 + n].target - f->code->code], (unsigned)n);
        for (uint64_t i = 0; i < n; i++)
            LLVMAddCase(sw, c32(G, i), f->bbs[ip[3 + i].target - f->code->code]);
        break;
    }
    case OP_ret: emit_ret(f); break;
    case OP_call: {
        uint32_t k = (uint32_t)((const wasm_code *)ip[2].h - m->codes);
        const wasm_ftype *t = code_type(m, k);
        if (!G->fns[k]) { /* not in this object: its native copy if linked, else the helper */
            LLVMValueRef code = LLVMBuildGEP2(
                B, G->i8, f->codes, (LLVMValueRef[]){c64(G, k * sizeof(wasm_code))}, 1, "");
            LLVMValueRef args[3] = {f->ctx, c32(G, m->nimported_funcs + k), f->callbuf};
            call_linked(f, code, A, t, G->t_call, G->h_call, args, 3);
            break;
        }
        store_results(f, A, t, call_native(f, G->fntys[k], G->fns[k], t, A));
        break;
    }
    case OP_call_import: {
        uint32_t fi = (uint32_t)ip[2].u64;
        const wasm_ftype *t = &m->types[m->func_types[fi]];
        LLVMValueRef args[3] = {f->ctx, c32(G, fi), f->callbuf};
        call_via_buf(f, A, t, G->t_call, G->h_call, args, 3);
        break;
    }
    case OP_call_indirect: {
        const wasm_ftype *t = &m->types[ip[2].u64];
        LLVMValueRef elem = as_i32(f, ld(f, Bs));
        LLVMValueRef args[5] = {f->ctx, c32(G, C), c32(G, ip[2].u64), elem, f->callbuf};
        /* Fast path: an element in range whose function is wasm code of this instance with the
         * expected type; anything else (and every trap) through the helper. */
        LLVMValueRef tab;
        if (C == 0) {
            tab = ctx_fixed(f, offsetof(jit_ctx, tab0), G->ptr, "tab0");
        } else {
            LLVMValueRef tabs = LLVMBuildLoad2(
                B, G->ptr, field_ptr(f, f->inst, offsetof(wasm_instance, tables)), "");
            tab = LLVMBuildLoad2(
                B, G->ptr, LLVMBuildGEP2(B, G->ptr, tabs, (LLVMValueRef[]){c64(G, C)}, 1, ""), "");
        }
        LLVMValueRef size = LLVMBuildLoad2(
            B, G->i64, field_ptr(f, tab, offsetof(wasm_table, lim) + offsetof(wasm_limits, min)),
            "");
        LLVMValueRef ei = LLVMBuildZExt(B, elem, G->i64, "");
        LLVMBasicBlockRef b_in = new_bb(f, "ci_in"), b_fn = new_bb(f, "ci_fn"),
                          b_code = new_bb(f, "ci_code"), b_slow = new_bb(f, "ci_slow");
        LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, ei, size, ""), b_in, b_slow);
        LLVMPositionBuilderAtEnd(B, b_in);
        LLVMValueRef elems =
            LLVMBuildLoad2(B, G->ptr, field_ptr(f, tab, offsetof(wasm_table, elems)), "");
        LLVMValueRef fobj = LLVMBuildIntToPtr(
            B, LLVMBuildLoad2(B, G->i64, LLVMBuildGEP2(B, G->i64, elems, &ei, 1, ""), ""), G->ptr,
            "");
        LLVMBuildCondBr(B, LLVMBuildIsNotNull(B, fobj, ""), b_fn, b_slow);
        LLVMPositionBuilderAtEnd(B, b_fn);
        LLVMValueRef tids =
            LLVMBuildLoad2(B, G->ptr, field_ptr(f, f->inst, offsetof(wasm_instance, type_ids)), "");
        LLVMValueRef want = LLVMBuildLoad2(
            B, G->i32, LLVMBuildGEP2(B, G->i32, tids, (LLVMValueRef[]){c64(G, ip[2].u64)}, 1, ""),
            "");
        LLVMValueRef have =
            LLVMBuildLoad2(B, G->i32, field_ptr(f, fobj, offsetof(wasm_func, type_id)), "");
        LLVMValueRef finst =
            LLVMBuildLoad2(B, G->ptr, field_ptr(f, fobj, offsetof(wasm_func, inst)), "");
        LLVMValueRef ok = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntEQ, want, have, ""),
                                       LLVMBuildICmp(B, LLVMIntEQ, finst, f->inst, ""), "");
        LLVMBuildCondBr(B, ok, b_code, b_slow);
        LLVMPositionBuilderAtEnd(B, b_code);
        LLVMValueRef code =
            LLVMBuildLoad2(B, G->ptr, field_ptr(f, fobj, offsetof(wasm_func, code)), "");
        LLVMBasicBlockRef b_join = call_linked_or(f, code, A, t, b_slow);
        LLVMPositionBuilderAtEnd(B, b_slow);
        call_via_buf(f, A, t, G->t_calli, G->h_calli, args, 5);
        LLVMBuildBr(B, b_join);
        LLVMPositionBuilderAtEnd(B, b_join);
        break;
    }
    case OP_ref_func: {
        LLVMValueRef arr =
            LLVMBuildLoad2(B, G->ptr, field_ptr(f, f->inst, offsetof(wasm_instance, funcs)), "");
        LLVMValueRef i = c64(G, ip[2].u64);
        LLVMValueRef fp = LLVMBuildLoad2(B, G->ptr, LLVMBuildGEP2(B, G->ptr, arr, &i, 1, ""), "");
        st(f, A, LLVMBuildPtrToInt(B, fp, G->i64, ""));
        break;
    }
    case OP_global_get:
        st_typed(f, A, LLVMBuildLoad2(B, G->i64, globals_ptr(f, ip[2].u64), ""),
                 m->globals[ip[2].u64].type);
        break;
    case OP_global_set: LLVMBuildStore(B, ld(f, A), globals_ptr(f, ip[2].u64)); break;
    case OP_memory_size: {
        LLVMValueRef msz = LLVMBuildLoad2(B, G->i64, f->memsize, "");
        st_typed(f, A, LLVMBuildLShr(B, msz, c64(G, 16), ""), WASM_I32);
        break;
    }
    case OP_memory_grow: {
        LLVMValueRef args[2] = {f->ctx, as_i32(f, ld(f, Bs))};
        st(f, A, from_i32(f, LLVMBuildCall2(B, G->t_mgrow, G->h_mgrow, args, 2, "")));
        reload_memsize(f);
        break;
    }
    case OP_memory_fill:
    case OP_memory_copy: {
        LLVMValueRef d = from_i32(f, as_i32(f, ld(f, A))), n = from_i32(f, as_i32(f, ld(f, C)));
        LLVMValueRef msz = LLVMBuildLoad2(B, G->i64, f->memsize, "");
        LLVMValueRef oob = LLVMBuildICmp(B, LLVMIntUGT, LLVMBuildAdd(B, d, n, ""), msz, "");
        LLVMValueRef s = NULL;
        if (op == OP_memory_copy) {
            s = from_i32(f, as_i32(f, ld(f, Bs)));
            oob = LLVMBuildOr(B, oob,
                              LLVMBuildICmp(B, LLVMIntUGT, LLVMBuildAdd(B, s, n, ""), msz, ""), "");
        }
        {
            /* 1 MiB or more: poll the time budget first, as the interpreter does. */
            LLVMBasicBlockRef poll = new_bb(f, "bulkpoll"), go = new_bb(f, "bulk");
            LLVMValueRef big = LLVMBuildICmp(B, LLVMIntUGE, n, c64(G, 1u << 20), "");
            LLVMValueRef br = LLVMBuildCondBr(B, big, poll, go);
            LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
            LLVMPositionBuilderAtEnd(B, poll);
            LLVMBuildCall2(B, G->t_budget, G->h_budget, &f->ctx, 1, "");
            LLVMBuildBr(B, go);
            LLVMPositionBuilderAtEnd(B, go);
        }
        trap_if(f, oob, WASM_TRAP_MEM_OOB);
        LLVMValueRef dp = LLVMBuildGEP2(B, G->i8, f->mem, &d, 1, "");
        if (op == OP_memory_copy)
            LLVMBuildMemMove(B, dp, 1, LLVMBuildGEP2(B, G->i8, f->mem, &s, 1, ""), 1, n);
        else
            LLVMBuildMemSet(B, dp, LLVMBuildTrunc(B, ld(f, Bs), G->i8, ""), n, 1);
        break;
    }
    case OP_memory_init: {
        LLVMValueRef args[5] = {f->ctx, as_i32(f, ld(f, A)), as_i32(f, ld(f, Bs)),
                                as_i32(f, ld(f, C)), c32(G, ip[2].u64)};
        LLVMBuildCall2(B, G->t_minit, G->h_minit, args, 5, "");
        break;
    }
    case OP_data_drop:
    case OP_elem_drop: {
        LLVMValueRef args[2] = {f->ctx, c32(G, ip[1].u64)};
        LLVMBuildCall2(B, G->t_seg, op == OP_data_drop ? G->h_ddrop : G->h_edrop, args, 2, "");
        break;
    }
    case OP_table_get: {
        LLVMValueRef args[3] = {f->ctx, c32(G, C), as_i32(f, ld(f, Bs))};
        st(f, A, LLVMBuildCall2(B, G->t_tget, G->h_tget, args, 3, ""));
        break;
    }
    case OP_table_set: {
        LLVMValueRef args[4] = {f->ctx, c32(G, C), as_i32(f, ld(f, A)), ld(f, Bs)};
        LLVMBuildCall2(B, G->t_tset, G->h_tset, args, 4, "");
        break;
    }
    case OP_table_size: {
        LLVMValueRef args[2] = {f->ctx, c32(G, Bs)};
        st(f, A, from_i32(f, LLVMBuildCall2(B, G->t_tsize, G->h_tsize, args, 2, "")));
        break;
    }
    case OP_table_grow: {
        LLVMValueRef args[4] = {f->ctx, c32(G, D), ld(f, Bs), as_i32(f, ld(f, C))};
        st(f, A, from_i32(f, LLVMBuildCall2(B, G->t_tgrow, G->h_tgrow, args, 4, "")));
        break;
    }
    case OP_table_fill: {
        LLVMValueRef args[5] = {f->ctx, c32(G, D), as_i32(f, ld(f, A)), ld(f, Bs),
                                as_i32(f, ld(f, C))};
        LLVMBuildCall2(B, G->t_tfill, G->h_tfill, args, 5, "");
        break;
    }
    case OP_table_copy: {
        LLVMValueRef args[6] = {f->ctx,
                                c32(G, ip[2].w.lo),
                                c32(G, ip[2].w.hi),
                                as_i32(f, ld(f, A)),
                                as_i32(f, ld(f, Bs)),
                                as_i32(f, ld(f, C))};
        LLVMBuildCall2(B, G->t_tcopy, G->h_tcopy, args, 6, "");
        break;
    }
    case OP_table_init: {
        LLVMValueRef args[6] = {f->ctx,
                                c32(G, D),
                                c32(G, ip[2].u64),
                                as_i32(f, ld(f, A)),
                                as_i32(f, ld(f, Bs)),
                                as_i32(f, ld(f, C))};
        LLVMBuildCall2(B, G->t_tinit, G->h_tinit, args, 6, "");
        break;
    }
    default: return -1;
    }
    return 0;
}

/* Fused i32 compare-and-branch: [h][_, lhs, rhs][target] or [h][_, lhs][imm][target]. */
static void emit_brcmp(fgen *f, int op, const wasm_cell *ip, uint32_t at) {
    static const LLVMIntPredicate preds[10] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntSLT, LLVMIntULT,
                                               LLVMIntSGT, LLVMIntUGT, LLVMIntSLE, LLVMIntULE,
                                               LLVMIntSGE, LLVMIntUGE};
    bool ri = jit__op_kind(op) == K_BRCMP_RI;
    unsigned k = (unsigned)(op - OP_brif_i32_eq) / 2;
    LLVMValueRef x = as_i32(f, ld(f, ip[1].s.b));
    LLVMValueRef y = ri ? c32(G, (uint32_t)ip[2].u64) : as_i32(f, ld(f, ip[1].s.c));
    const wasm_cell *target = ip[ri ? 3 : 2].target;
    uint32_t len = ri ? 4 : 3;
    LLVMValueRef cond = LLVMBuildICmp(B, preds[k], x, y, "");
    LLVMBasicBlockRef next = f->bbs[at + len];
    if (target - f->code->code <= at) {
        LLVMBasicBlockRef taken = new_bb(f, "back");
        LLVMBuildCondBr(B, cond, taken, next);
        LLVMPositionBuilderAtEnd(B, taken);
        jump(f, f->code->code + at, target, true);
    } else {
        LLVMBuildCondBr(B, cond, f->bbs[target - f->code->code], next);
    }
}

static bool is_terminator(int op) {
    return op == OP_br || op == OP_br_back || op == OP_br_table || op == OP_ret ||
           op == OP_unreachable;
}

/* Per cell: a forward branch goes there, a back edge does (its loop head). */
enum { JT_FWD = 1, JT_BACK = 2 };

/* ---- counted loops in a checked copy ----
 *
 * A guard-mode load is volatile (see emit_load), which keeps LLVM from vectorising a loop, and
 * LLVM cannot tell two accesses off different pointers into the one linear memory apart
 * without a check of its own at run time. For an innermost loop whose trip count and address
 * ranges can be computed before it runs, one check at its entry settles both: every access of
 * every iteration lies inside the memory (none can trap, so plain loads are exact), and the
 * ranges of accesses off different bases, one of them a store, do not overlap (each base gets
 * an alias scope of its own). When it holds, a copy of the loop with plain loads and those
 * scopes runs; otherwise the ordinary copy. The loop: a straight run of arithmetic, loads and
 * stores (no call, no branch in or out but its own back edge), ending in a branch back to its
 * head on a counter against a bound the loop does not write: c' <u N or c' <s N (and the
 * swapped forms) for a counter written once, by `c = c + k` (0 < k < 2^16); c' != N, or
 * `br_if c'` (c' != 0), for a counter that steps by k or -k in the run, through copies too
 * (clang's count-down loops: `c = c - 1; br_if c`; those only when they store to a fixed
 * address, see vec_analyse). Every address holds, at its access, a base plus a constant: the
 * base a slot that holds the same value at the head of every iteration or a pointer that
 * steps by 0 < s < 2^16 per iteration, the constant the sum of adds of constants below 2^16,
 * followed through copies and slots reused as temporaries (sym_cell: nbody's inner loop steps
 * its pointer as `t = p + 56; ...; p = p + 96; ...; p = t`); the memory cannot grow inside
 * it. The check bounds each base's range by the memory's size (below 2^32), so no 32-bit
 * address computation of the loop wraps.
 *
 * A straight-run loop may also have split adds, with or without the above: `t = b + a` used as
 * an address, b not written in the loop, a bounded (`x & max`, `x >> k`). With b <= 2^32 - 1 -
 * max checked at entry, b + a cannot wrap, and the copy addresses mem + b (loop-invariant) plus
 * a, as x86 addresses base + index * scale, instead of computing b + a in 32 bits first. A copy
 * made only for its splits keeps the ordinary copy's loads (volatile, bounds-checked). */
enum { VEC_NE, VEC_LTU, VEC_LTS };

typedef struct vec_plan {
    uint32_t L, E;            /* cells [L, E): head L, the back edge ends at E */
    uint32_t ctr, bound;      /* counter slot; bound slot, UINT32_MAX for bound_imm */
    uint32_t bound_imm, step; /* step: 2^32 - k for a `!=` counter stepping down by k */
    uint32_t ctr_at;          /* the cell of the counter's add (`<u`, `<s`; else UINT32_MAX) */
    uint8_t cmp;              /* VEC_*: the loop goes on while (c + step) cmp bound */
    bool vectorise;           /* the copy's back edge asks LLVM to vectorise (see vec_emit) */
    uint32_t ngrp;
    struct {
        uint32_t base, stride; /* base slot; its step per iteration (0: not written) */
        uint64_t lo, hi;       /* bytes [base + lo, base + hi) in the first iteration */
        bool store;
    } grp[VEC_GROUPS];
    uint8_t *cell_grp; /* per cell of [L, E): 1 + the group of the access there, 0: none */
    /* Address adds t = b + a of the loop (cell at) whose b it does not write and whose a is
     * bounded by max (a = x & max, or x >> k): b <= 2^32 - 1 - max at entry means no wrap. */
    uint32_t nsplit;
    struct {
        uint32_t at, b, max;
    } split[VEC_SPLITS];
} vec_plan;

static int vec_emit(fgen *f, uint32_t k, const vec_plan *v, char *err, size_t errlen);

/* Positions the builder where code falling through into block head runs: the current block
 * when it is open; when it ended in a branch that may go on to head (a conditional branch over
 * the loop, as compilers guard a loop that may run no iteration), a new block that edge now
 * goes to. false: nothing falls through into head. */
static bool fall_into(fgen *f, LLVMBasicBlockRef head) {
    LLVMValueRef term = LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(B));
    if (!term)
        return true;
    LLVMBasicBlockRef in = NULL;
    for (unsigned i = 0; i < LLVMGetNumSuccessors(term); i++)
        if (LLVMGetSuccessor(term, i) == head) {
            if (!in)
                in = new_bb(f, "vin");
            LLVMSetSuccessor(term, i, in);
        }
    if (!in)
        return false;
    LLVMPositionBuilderAtEnd(B, in);
    return true;
}

/* In a checked copy, the add at cell i when it is a split of the copy's plan: emits it and
 * records its operands for mem_addr (the check proved it does not wrap). false: not one. */
static bool split_add(fgen *f, uint32_t i, const wasm_cell *ip) {
    const vec_plan *v = f->vec_on;
    for (uint32_t q = 0; v && f->sgen && q < v->nsplit; q++) {
        if (v->split[q].at != i)
            continue;
        uint32_t bs = v->split[q].b, as = ip[1].s.b == bs ? ip[1].s.c : ip[1].s.b;
        LLVMValueRef b = as_i32(f, ld(f, bs)), a = as_i32(f, ld(f, as));
        st(f, ip[1].s.a, from_i32(f, LLVMBuildNUWAdd(B, b, a, "")));
        f->sgen[ip[1].s.a] = f->cur_gen;
        f->sb[ip[1].s.a] = b;
        f->sa[ip[1].s.a] = a;
        return true;
    }
    return false;
}

/* Emit the lowered code of cells [lo, hi) of function k at the builder's position, with branch
 * targets from f->bbs. */
static int emit_range(fgen *f, uint32_t k, uint32_t lo, uint32_t hi, char *err, size_t errlen) {
    gen *g = f->g;
    const wasm_code *code = f->code;
    for (uint32_t i = lo; i < hi;) {
        const wasm_cell *ip = &code->code[i];
        if (f->bbs[i] && f->vec && f->vec[i] && !f->vec_on && fall_into(f, f->bbs[i])) {
            int rc = vec_emit(f, k, f->vec[i], err, errlen);
            if (rc)
                return rc;
        }
        if (f->bbs[i]) {
            /* Facts about slots hold on into a block reached only by falling through (after a
             * conditional branch); one that a branch enters starts afresh. */
            if (f->jt[i])
                f->cur_gen++;
            if (!terminated(f))
                LLVMBuildBr(B, f->bbs[i]);
            LLVMPositionBuilderAtEnd(B, f->bbs[i]);
        }
        int op = op_of(ip->h);
        uint32_t len = op_len(op, ip);
        switch (jit__op_kind(op)) {
        case K_BIN:
        case K_BIN_RI: {
            if (op == OP_i32_add && split_add(f, i, ip))
                break;
            int bop = jit__op_kind(op) == K_BIN ? op : op - 1;
            bool d = bop >= OP_f64_add && bop <= OP_f64_div;
            bool fl = d || (bop >= OP_f32_add && bop <= OP_f32_div);
            LLVMValueRef x = ld(f, ip[1].s.b), y;
            if (fl && nan_fold_const(f, ip[1].s.b, d))
                x = opaque_bits(f, x, d);
            if (jit__op_kind(op) == K_BIN) {
                y = ld(f, ip[1].s.c);
                if (fl && nan_fold_const(f, ip[1].s.c, d))
                    y = opaque_bits(f, y, d);
            } else {
                y = c64(g, ip[2].u64);
                if (fl && nan_fold_bits(ip[2].u64, d))
                    y = opaque_bits(f, y, d);
            }
            /* i32.add of an address known to have been accessed and a small constant */
            uint32_t s = ip[1].s.b, kc = 0;
            bool have_c = jit__op_kind(op) == K_BIN_RI;
            if (have_c)
                kc = (uint32_t)ip[2].u64;
            else if (bop == OP_i32_add && f->kgen[ip[1].s.c] == f->cur_gen)
                have_c = true, kc = (uint32_t)f->kval[ip[1].s.c];
            else if (bop == OP_i32_add && f->kgen[s] == f->cur_gen)
                have_c = true, kc = (uint32_t)f->kval[s], s = ip[1].s.c;
            if (f->vec_plain && i == f->vec_on->ctr_at && f->vec_on->cmp != VEC_NE) {
                /* The checked copy's `<u` (`<s`) counter: its check proved that the counter
                 * stays at most 2^32 - 1 (2^31 - 1) minus its step, so the add does not wrap
                 * unsigned (signed), which lets LLVM count the loop's trips. */
                LLVMValueRef a = as_i32(f, x), kk = c32(g, kc);
                st(f, ip[1].s.a,
                   from_i32(f, f->vec_on->cmp == VEC_LTU ? LLVMBuildNUWAdd(B, a, kk, "")
                                                         : LLVMBuildNSWAdd(B, a, kk, "")));
                break;
            }
            if (bop == OP_i32_add && jit__op_kind(op) == K_BIN_RI && f->iv_nuw && f->iv_nuw[i]) {
                st(f, ip[1].s.a, from_i32(f, LLVMBuildNUWAdd(B, as_i32(f, x), c32(g, kc), "")));
                break;
            }
            if (bop == OP_i32_add && !have_c && f->iv_nuw && f->iv_nuw[i]) {
                st(f, ip[1].s.a,
                   from_i32(f, LLVMBuildNUWAdd(B, as_i32(f, x), as_i32(f, ld(f, ip[1].s.c)), "")));
                break;
            }
            if (bop == OP_i32_add && have_c && add_nuw(f, s, kc)) {
                int64_t xk = f->xk[s] - kc;
                LLVMValueRef a = as_i32(f, ld(f, s));
                st(f, ip[1].s.a, from_i32(f, LLVMBuildNUWAdd(B, a, c32(g, kc), "")));
                f->xgen[ip[1].s.a] = f->cur_gen;
                f->xk[ip[1].s.a] = xk;
                break;
            }
            st(f, ip[1].s.a, emit_bin(f, bop, x, y));
            break;
        }
        case K_BRCMP:
        case K_BRCMP_RI: emit_brcmp(f, op, ip, i); break;
        case K_UN: st(f, ip[1].s.a, emit_un(f, op, ld(f, ip[1].s.b))); break;
        case K_LOAD: emit_load(f, op, ip); break;
        case K_STORE: emit_store(f, op, ip); break;
        default:
            if (emit_misc(f, op, ip) != 0) {
                snprintf(err, errlen, "function %u: unsupported operator %d", k, op);
                return ERR_INVALID;
            }
        }
        i += len;
    }
    return 0;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

typedef struct slot_ref {
    LLVMValueRef a;
    uint32_t i;
} slot_ref;

static int cmp_slot_ref(const void *x, const void *y) {
    uintptr_t a = (uintptr_t)((const slot_ref *)x)->a, b = (uintptr_t)((const slot_ref *)y)->a;
    return a < b ? -1 : a > b;
}

/* The blocks of fn sorted by address (for bb_index), their count in *nb; the caller frees. */
static LLVMBasicBlockRef *sorted_blocks(LLVMValueRef fn, uint32_t *nb) {
    *nb = LLVMCountBasicBlocks(fn);
    LLVMBasicBlockRef *bbs = xmalloc((*nb ? *nb : 1) * sizeof *bbs);
    LLVMGetBasicBlocks(fn, bbs);
    qsort(bbs, *nb, sizeof *bbs, cmp_ptr);
    return bbs;
}

/* The index of block b in bbs (nb blocks sorted by address). */
static uint32_t bb_index(LLVMBasicBlockRef *bbs, uint32_t nb, LLVMBasicBlockRef b) {
    return (uint32_t)((LLVMBasicBlockRef *)bsearch(&b, bbs, nb, sizeof *bbs, cmp_ptr) - bbs);
}

/* The slot whose alloca p is, or UINT32_MAX. */
static uint32_t slot_of(const slot_ref *refs, uint32_t n, LLVMValueRef p) {
    slot_ref key = {p, 0};
    const slot_ref *r = bsearch(&key, refs, n, sizeof *refs, cmp_slot_ref);
    return r ? r->i : UINT32_MAX;
}

/* Keep, in the blocks where an OSR activation leaves (osr_leave_check), only the copies of the
 * slots the interpreter may read at the loop head it goes on from before it writes them: each
 * copied value is kept alive through the loops around that head, and dead ones (operand slots,
 * values of a finished loop) only take registers there. Liveness at the head's block by the
 * usual backward dataflow over the IR's blocks, on the slots' allocas (the leave blocks' own
 * loads not counted). */
static void osr_prune_leaves(fgen *f) {
    uint32_t ns = f->code->nslots, nb;
    if (!f->nleaves || !ns)
        return;
    uint32_t w = (ns + 63) / 64;
    slot_ref *refs = xmalloc(ns * sizeof *refs);
    for (uint32_t i = 0; i < ns; i++)
        refs[i] = (slot_ref){f->slots[i], i};
    qsort(refs, ns, sizeof *refs, cmp_slot_ref);
    LLVMBasicBlockRef *bbs = sorted_blocks(f->fn, &nb);
    uint64_t *use = xcalloc((size_t)nb * w, 8), *kill = xcalloc((size_t)nb * w, 8);
    uint64_t *in = xcalloc((size_t)nb * w, 8);
    bool *leaving = xcalloc(nb, 1);
    for (uint32_t j = 0; j < f->nleaves; j++)
        leaving[bb_index(bbs, nb, f->leaves[j])] = true;
    for (uint32_t b = 0; b < nb; b++) {
        if (leaving[b])
            continue;
        uint64_t *g = use + (size_t)b * w, *kl = kill + (size_t)b * w;
        for (LLVMValueRef ins = LLVMGetFirstInstruction(bbs[b]); ins;
             ins = LLVMGetNextInstruction(ins)) {
            LLVMOpcode op = LLVMGetInstructionOpcode(ins);
            uint32_t i = op == LLVMLoad    ? slot_of(refs, ns, LLVMGetOperand(ins, 0))
                         : op == LLVMStore ? slot_of(refs, ns, LLVMGetOperand(ins, 1))
                                           : UINT32_MAX;
            if (i == UINT32_MAX)
                continue;
            uint64_t bit = 1ull << (i % 64);
            if (op == LLVMLoad && !(kl[i / 64] & bit))
                g[i / 64] |= bit;
            else if (op == LLVMStore)
                kl[i / 64] |= bit;
        }
    }
    /* in = use | (out & ~kill), out = the union of the successors' in, to a fixpoint. */
    uint64_t *out = xmalloc(w * sizeof *out);
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t b = nb; b-- > 0;) {
            LLVMValueRef t = LLVMGetBasicBlockTerminator(bbs[b]);
            memset(out, 0, w * sizeof *out);
            for (unsigned j = 0, n = t ? LLVMGetNumSuccessors(t) : 0; j < n; j++) {
                const uint64_t *is = in + (size_t)bb_index(bbs, nb, LLVMGetSuccessor(t, j)) * w;
                for (uint32_t x = 0; x < w; x++)
                    out[x] |= is[x];
            }
            uint64_t *ib = in + (size_t)b * w;
            for (uint32_t x = 0; x < w; x++) {
                uint64_t v = use[(size_t)b * w + x] | (out[x] & ~kill[(size_t)b * w + x]);
                changed |= v != ib[x];
                ib[x] = v;
            }
        }
    }
    free(out);
    for (uint32_t j = 0; j < f->nleaves; j++) {
        const uint64_t *live = in + (size_t)bb_index(bbs, nb, f->bbs[f->leave_at[j]]) * w;
        for (LLVMValueRef ins = LLVMGetFirstInstruction(f->leaves[j]), next; ins; ins = next) {
            next = LLVMGetNextInstruction(ins);
            if (LLVMGetInstructionOpcode(ins) != LLVMStore)
                continue;
            LLVMValueRef v = LLVMGetOperand(ins, 0);
            uint32_t i = LLVMGetInstructionOpcode(v) == LLVMLoad
                             ? slot_of(refs, ns, LLVMGetOperand(v, 0))
                             : UINT32_MAX;
            if (i == UINT32_MAX || (live[i / 64] >> (i % 64)) & 1)
                continue;
            LLVMValueRef gep = LLVMGetOperand(ins, 1);
            LLVMInstructionEraseFromParent(ins);
            if (!LLVMGetFirstUse(gep))
                LLVMInstructionEraseFromParent(gep);
            if (!LLVMGetFirstUse(v)) /* made before the store: next is not it */
                LLVMInstructionEraseFromParent(v);
        }
    }
    free(leaving);
    free(in);
    free(kill);
    free(use);
    free(bbs);
    free(refs);
}

/* OSR specialisation. The interpreter's frame was sampled at the loop head L this entry
 * resumes at. A slot that no loop around L writes (neither L's own nest, copy A, nor the loops
 * of B that contain L) keeps, while the activation stays in those loops, the value it had then:
 * a loop bound, a pointer, the length of an array computed before the loop. The entry makes
 * those slots' initial values constants, which lets LLVM compute trip counts, unroll and fold
 * address arithmetic as it does in the ordinary copy, where these values are computed in view.
 * That is correct whatever the rest of the function does (a later write defines a new value as
 * usual), because the entry compares each such slot of the frame with its constant and declines
 * (returns 2) on a difference: the frame then belongs to another activation, or the sample came
 * from another run (a cached object); the tier then compiles a new entry. Written is read off
 * the finished IR: any use of a slot's alloca in those loops other than a load counts, so no
 * operator of the lowered code needs modelling here. Not specialised: slots no reachable code
 * reads, and values whose use as a float constant LLVM could fold (x*1, x+-0: see
 * nan_fold_bits), which would skip the quieting of a signalling NaN. @p a_blocks: the blocks of
 * copy A; @p l_b: L's block in B. */
static void osr_specialize(fgen *f, const uint64_t *vals, LLVMValueRef *init_st,
                           LLVMValueRef osr_br, LLVMBasicBlockRef *a_blocks, uint32_t na,
                           LLVMBasicBlockRef l_b) {
    uint32_t nb;
    LLVMBasicBlockRef *bbs = sorted_blocks(f->fn, &nb);
    /* Edges (CSR, forward and reverse). */
    uint32_t ne = 0;
    for (uint32_t i = 0; i < nb; i++) {
        LLVMValueRef t = LLVMGetBasicBlockTerminator(bbs[i]);
        ne += t ? LLVMGetNumSuccessors(t) : 0;
    }
    uint32_t *fo = xcalloc(nb + 1, sizeof *fo), *ro = xcalloc(nb + 1, sizeof *ro);
    uint32_t *fe = xmalloc((ne ? ne : 1) * sizeof *fe), *re = xmalloc((ne ? ne : 1) * sizeof *re);
    uint32_t *src = xmalloc((ne ? ne : 1) * sizeof *src),
             *dst = xmalloc((ne ? ne : 1) * sizeof *dst);
    ne = 0;
    for (uint32_t i = 0; i < nb; i++) {
        LLVMValueRef t = LLVMGetBasicBlockTerminator(bbs[i]);
        for (unsigned j = 0, ns = t ? LLVMGetNumSuccessors(t) : 0; j < ns; j++) {
            LLVMBasicBlockRef sb = LLVMGetSuccessor(t, j);
            src[ne] = i, dst[ne] = bb_index(bbs, nb, sb), ne++;
        }
    }
    for (uint32_t e = 0; e < ne; e++)
        fo[src[e] + 1]++, ro[dst[e] + 1]++;
    for (uint32_t i = 0; i < nb; i++)
        fo[i + 1] += fo[i], ro[i + 1] += ro[i];
    {
        uint32_t *fc = xmalloc((nb + 1) * sizeof *fc), *rc = xmalloc((nb + 1) * sizeof *rc);
        memcpy(fc, fo, (nb + 1) * sizeof *fc);
        memcpy(rc, ro, (nb + 1) * sizeof *rc);
        for (uint32_t e = 0; e < ne; e++)
            fe[fc[src[e]]++] = dst[e], re[rc[dst[e]]++] = src[e];
        free(fc);
        free(rc);
    }
    /* bit 1: reachable from A's entry; 2: reachable from L in B; 4: reaches L in B. */
    uint8_t *mark = xcalloc(nb ? nb : 1, 1);
    uint32_t *stack = xmalloc((nb ? nb : 1) * sizeof *stack);
    LLVMBasicBlockRef roots[3] = {LLVMGetSuccessor(osr_br, 0), l_b, l_b};
    for (unsigned pass = 0; pass < 3; pass++) {
        uint8_t bit = (uint8_t)(1u << pass);
        const uint32_t *off = pass == 2 ? ro : fo, *edge = pass == 2 ? re : fe;
        uint32_t sp = 0, r = bb_index(bbs, nb, roots[pass]);
        mark[r] |= bit;
        stack[sp++] = r;
        while (sp) {
            uint32_t b = stack[--sp];
            for (uint32_t e = off[b]; e < off[b + 1]; e++)
                if (!(mark[edge[e]] & bit)) {
                    mark[edge[e]] |= bit;
                    stack[sp++] = edge[e];
                }
        }
    }
    LLVMPositionBuilderBefore(B, osr_br);
    LLVMValueRef differs = NULL;
    for (uint32_t i = 0; i < f->code->nslots; i++) {
        uint64_t v = vals[i];
        if (!init_st[i] || nan_fold_bits(v, true) || nan_fold_bits(v & 0xffffffffu, false))
            continue;
        bool written = false, read = false;
        for (LLVMUseRef u = LLVMGetFirstUse(f->slots[i]); u && !written; u = LLVMGetNextUse(u)) {
            LLVMValueRef user = LLVMGetUser(u);
            if (user == init_st[i])
                continue;
            LLVMBasicBlockRef ub = LLVMGetInstructionParent(user);
            LLVMBasicBlockRef *p = ub ? bsearch(&ub, bbs, nb, sizeof *bbs, cmp_ptr) : NULL;
            uint8_t m = p ? mark[p - bbs] : 7;
            if (!(m & 1))
                continue; /* unreachable code */
            bool in_loops = (m & 6) == 6 || bsearch(&ub, a_blocks, na, sizeof *a_blocks, cmp_ptr);
            if (LLVMGetInstructionOpcode(user) == LLVMLoad) {
                /* Not the copies to the frame where the activation leaves: a slot only they
                 * read is dead here, and the interpreter's frame may hold anything in it
                 * (callees' frames overlap a caller's operand slots). */
                bool leaving = false;
                for (uint32_t j = 0; j < f->nleaves && !leaving; j++)
                    leaving = f->leaves[j] == ub;
                read |= !leaving;
            } else if (LLVMGetInstructionOpcode(user) != LLVMStore ||
                       LLVMGetOperand(user, 1) != f->slots[i] || in_loops)
                written = true;
        }
        if (written || !read)
            continue;
        LLVMValueRef c = c64(G, v);
        LLVMValueRef d = LLVMBuildICmp(B, LLVMIntNE, LLVMGetOperand(init_st[i], 0), c, "");
        differs = differs ? LLVMBuildOr(B, differs, d, "") : d;
        LLVMSetOperand(init_st[i], 0, c);
    }
    if (differs) {
        LLVMBasicBlockRef a = LLVMGetSuccessor(osr_br, 0);
        LLVMBasicBlockRef no = new_bb(f, "stale");
        LLVMValueRef br = LLVMBuildCondBr(B, differs, no, a);
        LLVMSetMetadata(br, G->prof_kind, G->unlikely_md);
        LLVMInstructionEraseFromParent(osr_br);
        LLVMPositionBuilderAtEnd(B, no);
        LLVMBuildRet(B, c32(G, 2));
    }
    free(stack);
    free(mark);
    free(fo), free(ro), free(fe), free(re), free(src), free(dst);
    free(bbs);
}

/* Does v (i64) fit in 32 bits: a zero extension of a narrower value, a constant below 2^32, a
 * load of a slot still in @p cand (see narrow_slots), or a select of such values? */
static bool fits32(LLVMValueRef v, const slot_ref *refs, uint32_t ns, const bool *cand, int depth) {
    if (LLVMIsAConstantInt(v))
        return LLVMConstIntGetZExtValue(v) <= UINT32_MAX;
    if (!LLVMIsAInstruction(v) || depth > 4)
        return false;
    switch (LLVMGetInstructionOpcode(v)) {
    case LLVMZExt: return LLVMGetIntTypeWidth(LLVMTypeOf(LLVMGetOperand(v, 0))) <= 32;
    case LLVMSelect:
        return fits32(LLVMGetOperand(v, 1), refs, ns, cand, depth + 1) &&
               fits32(LLVMGetOperand(v, 2), refs, ns, cand, depth + 1);
    case LLVMLoad: {
        uint32_t from = slot_of(refs, ns, LLVMGetOperand(v, 0));
        return from != UINT32_MAX && cand[from];
    }
    default: return false;
    }
}

/* Slots that only ever hold 32-bit values (i32 and f32 ones: the lowered code keeps their upper
 * half zero) get an i32 alloca, read through a zero extension. Their values then reach SSA form
 * as i32 phis instead of i64 phis of zero-extended values, whose upper half LLVM cannot prove
 * zero around a loop: it masked every address computed from a loop's pointer with 0xffffffff,
 * so no address could share a base register with another or become a 64-bit induction
 * variable. Decided on the finished IR, as a greatest fixpoint (copies between slots go around
 * loops): a slot qualifies while its alloca is only loaded and stored, and every store stores a
 * value that fits32 (loads of qualifying slots included) or @p init (an OSR variant's copy of
 * the interpreter's frame, which keeps the same invariant). */
static void narrow_slots(fgen *f, LLVMValueRef *init) {
    uint32_t ns = f->code->nslots;
    if (!ns)
        return;
    slot_ref *refs = xmalloc(ns * sizeof *refs);
    for (uint32_t i = 0; i < ns; i++)
        refs[i] = (slot_ref){f->slots[i], i};
    qsort(refs, ns, sizeof *refs, cmp_slot_ref);
    bool *cand = xmalloc(ns * sizeof *cand);
    for (uint32_t i = 0; i < ns; i++)
        cand[i] = LLVMGetFirstUse(f->slots[i]) != NULL;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t i = 0; i < ns; i++) {
            LLVMValueRef a = f->slots[i];
            for (LLVMUseRef u = LLVMGetFirstUse(a); u && cand[i]; u = LLVMGetNextUse(u)) {
                LLVMValueRef user = LLVMGetUser(u);
                LLVMOpcode op = LLVMGetInstructionOpcode(user);
                bool ok = op == LLVMLoad;
                if (op == LLVMStore && LLVMGetOperand(user, 1) == a)
                    ok = (init && user == init[i]) ||
                         fits32(LLVMGetOperand(user, 0), refs, ns, cand, 0);
                if (!ok)
                    cand[i] = false, changed = true;
            }
        }
    }
    /* Loads first (each becomes zext(load i32)), then the stores, whose values may be those. */
    LLVMValueRef *na = xmalloc(ns * sizeof *na);
    for (uint32_t i = 0; i < ns; i++) {
        if (!cand[i])
            continue;
        LLVMPositionBuilderBefore(B, f->slots[i]);
        na[i] = LLVMBuildAlloca(B, G->i32, "");
        for (LLVMUseRef u = LLVMGetFirstUse(f->slots[i]), next; u; u = next) {
            next = LLVMGetNextUse(u);
            LLVMValueRef user = LLVMGetUser(u);
            if (LLVMGetInstructionOpcode(user) != LLVMLoad)
                continue;
            LLVMPositionBuilderBefore(B, user);
            LLVMValueRef z = LLVMBuildZExt(B, LLVMBuildLoad2(B, G->i32, na[i], ""), G->i64, "");
            LLVMReplaceAllUsesWith(user, z);
            LLVMInstructionEraseFromParent(user);
        }
    }
    for (uint32_t i = 0; i < ns; i++) {
        if (!cand[i])
            continue;
        for (LLVMUseRef u = LLVMGetFirstUse(f->slots[i]), next; u; u = next) {
            next = LLVMGetNextUse(u);
            LLVMValueRef user = LLVMGetUser(u), v = LLVMGetOperand(user, 0);
            LLVMPositionBuilderBefore(B, user);
            bool zx = LLVMIsAInstruction(v) && LLVMGetInstructionOpcode(v) == LLVMZExt &&
                      LLVMTypeOf(LLVMGetOperand(v, 0)) == G->i32;
            LLVMValueRef st32 = LLVMBuildStore(
                B, zx ? LLVMGetOperand(v, 0) : LLVMBuildTrunc(B, v, G->i32, ""), na[i]);
            if (init && user == init[i])
                init[i] = st32;
            LLVMInstructionEraseFromParent(user);
        }
        LLVMInstructionEraseFromParent(f->slots[i]);
        f->slots[i] = na[i];
    }
    free(na);
    free(cand);
    free(refs);
}

/* The slots cell p (operator op) writes into w[0..*nw) (at most 2, or a call's results from
 * *call_base, *call_n of them); false for an operator this does not model. */
static bool cell_writes(const wasm_module *m, int op, const wasm_cell *p, uint32_t *w, uint32_t *nw,
                        uint32_t *call_base, uint32_t *call_n) {
    *nw = 0, *call_n = 0;
    switch (jit__op_kind(op)) {
    case K_BIN:
    case K_BIN_RI:
    case K_UN:
    case K_LOAD: w[(*nw)++] = p[1].s.a; return true;
    case K_STORE:
    case K_BRCMP:
    case K_BRCMP_RI: return true;
    default: break;
    }
    switch (op) {
    case OP_nop:
    case OP_br:
    case OP_br_back:
    case OP_br_if:
    case OP_br_if_back:
    case OP_br_unless:
    case OP_brif_eqz:
    case OP_br_table:
    case OP_global_set:
    case OP_memory_fill:
    case OP_memory_copy:
    case OP_unreachable:
    case OP_ret: return true;
    case OP_copy2: w[(*nw)++] = p[1].s.c; /* fall through */
    case OP_copy:
    case OP_const:
    case OP_select:
    case OP_global_get:
    case OP_memory_size:
    case OP_memory_grow: w[(*nw)++] = p[1].s.a; return true;
    case OP_call:
    case OP_call_import:
    case OP_call_indirect: {
        const wasm_ftype *t = op == OP_call
                                  ? code_type(m, (uint32_t)((const wasm_code *)p[2].h - m->codes))
                              : op == OP_call_import ? &m->types[m->func_types[p[2].u64]]
                                                     : &m->types[p[2].u64];
        *call_base = p[1].s.a;
        *call_n = t->nresults;
        return true;
    }
    default: return false;
    }
}

/* Does cell p (operator op) write slot s? *known is cleared for an operator cell_writes does not
 * model (then the answer is true). */
static bool writes_slot(const wasm_module *m, int op, const wasm_cell *p, uint32_t s, bool *known) {
    uint32_t w[2], nw, cb, cn;
    if (!cell_writes(m, op, p, w, &nw, &cb, &cn)) {
        *known = false;
        return true;
    }
    for (uint32_t j = 0; j < nw; j++)
        if (w[j] == s)
            return true;
    return cn && s >= cb && s < cb + cn;
}

/* Bytes a load or store operator accesses. */
static uint32_t access_size(int op) {
    switch (op) {
    case OP_load8_s32:
    case OP_load8_u:
    case OP_load8_s64:
    case OP_store8: return 1;
    case OP_load16_s32:
    case OP_load16_u:
    case OP_load16_s64:
    case OP_store16: return 2;
    case OP_load64:
    case OP_store64: return 8;
    default: return 4;
    }
}

/* In cells [from, L): is slot p accessed (as an address) and not written after that? */
static bool accessed_before(const wasm_module *m, const wasm_code *code, uint32_t from, uint32_t L,
                            uint32_t p) {
    bool ok = false;
    for (uint32_t x = from; x < L;) {
        const wasm_cell *q = &code->code[x];
        int op = op_of(q->h);
        int kind = jit__op_kind(op);
        if ((kind == K_LOAD && q[1].s.b == p) || (kind == K_STORE && q[1].s.a == p))
            ok = true;
        bool known = true;
        if (writes_slot(m, op, q, p, &known))
            ok = false;
        if (!known)
            return false;
        x += op_len(op, q);
    }
    return ok;
}

/* Loop induction, the other source of nuw adds (see note_access). In a loop L entered only by
 * falling through, with slot l set to 0 just before it and written in the loop only by one
 * `l = l + c` (0 < c < 2^16), and slot p not written in the loop: if every run of that
 * increment follows, in the same straight stretch of code (no branch target between), an access
 * at t = p + l computed there, then p + l never wraps in the loop. It does not for l = 0, and
 * whenever l grows by c, the access just made proves p + l + 1 <= JIT_MEM_MAX, so
 * p + l + c < 2^32. Every i32.add of p and l in the loop is then marked (lz's match loop
 * `src[cand + l] == src[i + l]`). When p was accessed in the stretch before the loop (so
 * p <= JIT_MEM_MAX), the access may also be at t + d (d < 2^16, an add_ri of t in the stretch)
 * provided c <= d + its offset + its size: then p + l <= JIT_MEM_MAX holds throughout (t + d
 * cannot wrap, and its access bounds the next t), and the adds of small constants to t in the
 * stretch are marked too (sha256's `w[i - 15]`, `w[i - 2]`... off one base). Loops around an OSR
 * variant's entry (@p osr_at) are left out: they are entered with the interpreter's values.
 * Returns NULL when nothing was marked. */
static bool *iv_adds(fgen *f, const bool *heads, const uint32_t *head_end, const uint8_t *jt,
                     uint32_t osr_at) {
    enum { DERIVED_MAX = 8 };
    const wasm_code *code = f->code;
    const wasm_module *m = f->g->m;
    uint32_t n = code->ncode, ns = code->nslots;
    bool *out = NULL;
    uint32_t *nwr = NULL, *wrc = NULL;
    for (uint32_t L = 0; L < n; L++) {
        uint32_t E = head_end[L];
        if (!heads[L] || (jt[L] & JT_FWD) || (L <= osr_at && osr_at < E) || E > n)
            continue;
        if (!nwr) {
            nwr = xmalloc(ns * sizeof *nwr);
            wrc = xmalloc(ns * sizeof *wrc);
        }
        memset(nwr, 0, ns * sizeof *nwr);
        bool ok = true;
        for (uint32_t i = L; i < E && ok;) {
            const wasm_cell *p = &code->code[i];
            int op = op_of(p->h);
            uint32_t w[2], nw, cb, cn;
            ok = cell_writes(m, op, p, w, &nw, &cb, &cn);
            for (uint32_t j = 0; ok && j < nw; j++)
                if (w[j] < ns)
                    nwr[w[j]]++, wrc[w[j]] = i;
            for (uint32_t j = 0; ok && j < cn; j++)
                if (cb + j < ns)
                    nwr[cb + j] += 2; /* never an induction variable */
            i += op_len(op, p);
        }
        if (!ok)
            continue;
        /* The stretch before L: its last write of each candidate must be `const 0`. */
        uint32_t P = 0;
        for (uint32_t i = 0; i < L;) {
            if (jt[i])
                P = i;
            i += op_len(op_of(code->code[i].h), &code->code[i]);
        }
        for (uint32_t i = L; i < E;) {
            const wasm_cell *p = &code->code[i];
            int op = op_of(p->h);
            uint32_t len = op_len(op, p);
            uint32_t t = p[1].s.a, b = p[1].s.b, c = p[1].s.c;
            if (op != OP_i32_add || b >= ns || c >= ns || t >= ns) {
                i += len;
                continue;
            }
            for (int side = 0; side < 2; side++) {
                uint32_t l = side ? b : c, base = side ? c : b;
                uint32_t inc = wrc[l];
                const wasm_cell *ip = &code->code[inc];
                if (nwr[l] != 1 || nwr[base] != 0 || l == base || t == l || t == base || inc <= i ||
                    op_of(ip->h) != OP_i32_add_ri || ip[1].s.a != l || ip[1].s.b != l ||
                    (uint32_t)ip[2].u64 == 0 || (uint32_t)ip[2].u64 >= (1u << 16))
                    continue;
                uint32_t step = (uint32_t)ip[2].u64;
                bool base_ok = accessed_before(m, code, P, L, base);
                /* From the add to the increment: slots holding t + d (d = 0: t itself), an
                 * access at one of them, no branch target, t not written before that access. */
                uint32_t dslot[DERIVED_MAX], dd[DERIVED_MAX], nd = 1;
                dslot[0] = t, dd[0] = 0;
                bool proven = false, strong = false, clean = true;
                for (uint32_t x = i + len; x < inc && clean;) {
                    const wasm_cell *q = &code->code[x];
                    int qop = op_of(q->h);
                    if (jt[x]) {
                        clean = false;
                        break;
                    }
                    int kind = jit__op_kind(qop);
                    /* UINT32_MAX for no access: killed derived slots read ns */
                    uint32_t a = kind == K_LOAD    ? q[1].s.b
                                 : kind == K_STORE ? q[1].s.a
                                                   : UINT32_MAX;
                    /* weak: at t itself (p + l does not wrap); strong: p <= JIT_MEM_MAX on entry
                     * and the access bounds the next t (p + l <= JIT_MEM_MAX throughout) */
                    for (uint32_t j = 0; j < nd && !strong; j++)
                        if (a == dslot[j]) {
                            proven |= dd[j] == 0;
                            if (base_ok && step <= (uint64_t)dd[j] + q[1].w.hi + access_size(qop))
                                proven = strong = true;
                        }
                    uint32_t w[2], nw, cb, cn;
                    if (!cell_writes(m, qop, q, w, &nw, &cb, &cn))
                        clean = false;
                    /* a write kills the derived slots it overwrites (t itself: stop) */
                    for (uint32_t j = 0; j < nw; j++)
                        for (uint32_t e = 0; e < nd; e++)
                            if (dslot[e] == w[j])
                                dslot[e] = ns;
                    for (uint32_t e = 0; e < nd; e++)
                        if (cn && dslot[e] >= cb && dslot[e] < cb + cn)
                            dslot[e] = ns;
                    if (dslot[0] != t && !proven)
                        clean = false; /* t rewritten before an access proved anything */
                    if (qop == OP_i32_add_ri && q[1].s.b == t && dslot[0] == t &&
                        (uint32_t)q[2].u64 < (1u << 16) && nd < DERIVED_MAX)
                        dslot[nd] = q[1].s.a, dd[nd++] = (uint32_t)q[2].u64;
                    x += op_len(qop, q);
                }
                if (!proven || !clean || jt[inc])
                    continue;
                /* l's value on entry */
                bool zero = false, known = true;
                for (uint32_t x = P; x < L && known;) {
                    const wasm_cell *q = &code->code[x];
                    int qop = op_of(q->h);
                    if (writes_slot(m, qop, q, l, &known))
                        zero = known && qop == OP_const && q[1].s.a == l && q[2].u64 == 0;
                    x += op_len(qop, q);
                }
                if (!zero)
                    continue;
                /* Proven for (base, l): mark every add of the two in the loop, and when strong
                 * the adds of small constants to their results in the same stretch. */
                if (!out)
                    out = xcalloc(n + 1, 1);
                for (uint32_t y = L; y < E;) {
                    const wasm_cell *q = &code->code[y];
                    int qop = op_of(q->h);
                    uint32_t ylen = op_len(qop, q);
                    if (qop == OP_i32_add && ((q[1].s.b == base && q[1].s.c == l) ||
                                              (q[1].s.b == l && q[1].s.c == base))) {
                        out[y] = true;
                        uint32_t r = q[1].s.a;
                        bool modelled = true;
                        for (uint32_t x = y + ylen; strong && r != base && r != l && x < E;) {
                            const wasm_cell *z = &code->code[x];
                            int zop = op_of(z->h);
                            if (jt[x])
                                break;
                            if (zop == OP_i32_add_ri && z[1].s.b == r &&
                                (uint32_t)z[2].u64 < (1u << 16))
                                out[x] = true;
                            if (writes_slot(m, zop, z, r, &modelled))
                                break;
                            x += op_len(zop, z);
                        }
                    }
                    y += ylen;
                }
            }
            i += len;
        }
    }
    free(nwr);
    free(wrc);
    return out;
}

/* LLVM's diagnostics: remarks and warnings (a loop that asked for vectorisation and could not
 * have it) are not for the user; an error ends the process, as LLVM's own handler does. */
static void quiet_diagnostics(LLVMDiagnosticInfoRef d, void *ctx) {
    (void)ctx;
    if (LLVMGetDiagInfoSeverity(d) != LLVMDSError)
        return;
    char *msg = LLVMGetDiagInfoDescription(d);
    fprintf(stderr, "psl: jit: LLVM error: %s\n", msg ? msg : "?");
    LLVMDisposeMessage(msg);
    exit(1);
}

static void vec_plan_free(vec_plan *v) {
    if (v)
        free(v->cell_grp);
    free(v);
}

/* vec_analyse's symbolic slot values in a straight run: slot s holds base[s] + off[s] (32-bit
 * sum), base[s] a slot's value at the head of the iteration, UINT32_MAX when unknown; small[s]:
 * reached from it by adds of constants below 2^16 summing to less than 2^20. */
typedef struct sym_state {
    uint32_t *base, *off;
    bool *small;
    uint32_t ns;
} sym_state;

static sym_state sym_new(uint32_t ns) {
    sym_state s = {xmalloc((ns ? ns : 1) * sizeof(uint32_t)),
                   xmalloc((ns ? ns : 1) * sizeof(uint32_t)), xmalloc(ns ? ns : 1), ns};
    for (uint32_t i = 0; i < ns; i++)
        s.base[i] = i, s.off[i] = 0, s.small[i] = true;
    return s;
}

static void sym_free(sym_state *s) {
    free(s->base);
    free(s->off);
    free(s->small);
}

static void sym_copy(sym_state *s, uint32_t t, uint32_t b) {
    if (t >= s->ns)
        return;
    if (b >= s->ns) {
        s->base[t] = UINT32_MAX;
        return;
    }
    s->base[t] = s->base[b], s->off[t] = s->off[b], s->small[t] = s->small[b];
}

/* The effect of cell p (operator op, one cell_writes models) on the values. */
static void sym_cell(const wasm_module *m, int op, const wasm_cell *p, sym_state *s) {
    uint32_t ns = s->ns;
    if (op == OP_i32_add_ri && p[1].s.a < ns) {
        uint32_t t = p[1].s.a, b = p[1].s.b, k = (uint32_t)p[2].u64;
        if (b >= ns || s->base[b] == UINT32_MAX) {
            s->base[t] = UINT32_MAX;
            return;
        }
        uint64_t sum = (uint64_t)s->off[b] + k;
        s->small[t] = s->small[b] && k < (1u << 16) && sum < (1u << 20);
        s->base[t] = s->base[b];
        s->off[t] = (uint32_t)sum;
        return;
    }
    if (op == OP_copy) {
        sym_copy(s, p[1].s.a, p[1].s.b);
        return;
    }
    if (op == OP_copy2) { /* in order, as the interpreter does */
        sym_copy(s, p[1].s.a, p[1].s.b);
        sym_copy(s, p[1].s.c, p[1].s.d);
        return;
    }
    uint32_t w[2], nw = 0, cb = 0, cn = 0;
    if (!cell_writes(m, op, p, w, &nw, &cb, &cn)) {
        for (uint32_t i = 0; i < ns; i++) /* not modelled: nothing is known */
            s->base[i] = UINT32_MAX;
        return;
    }
    for (uint32_t j = 0; j < nw; j++)
        if (w[j] < ns)
            s->base[w[j]] = UINT32_MAX;
    for (uint32_t j = 0; j < cn; j++)
        if (cb + j < ns)
            s->base[cb + j] = UINT32_MAX;
}

/* Does operator op (of a loop vec_analyse accepts) compute a floating-point value? */
static bool float_result(int op) {
    int kind = jit__op_kind(op);
    int bop = kind == K_BIN_RI ? op - 1 : op;
    if (kind == K_BIN || kind == K_BIN_RI)
        return bop >= OP_f32_add && bop <= OP_f64_copysign;
    return kind == K_UN && ((op >= OP_f32_abs && op <= OP_f64_sqrt) ||
                            (op >= OP_f32_convert_i32_s && op <= OP_f64_promote_f32));
}

/* The slots cell p (operator op, of a loop vec_analyse accepts) reads, into r; their number. */
static uint32_t cell_reads(int op, const wasm_cell *p, uint32_t r[3]) {
    switch (jit__op_kind(op)) {
    case K_BIN:
    case K_BRCMP: r[0] = p[1].s.b, r[1] = p[1].s.c; return 2;
    case K_BIN_RI:
    case K_BRCMP_RI:
    case K_UN:
    case K_LOAD: r[0] = p[1].s.b; return 1;
    case K_STORE: r[0] = p[1].s.a, r[1] = p[1].s.b; return 2;
    default: break;
    }
    switch (op) {
    case OP_copy: r[0] = p[1].s.b; return 1;
    case OP_copy2: r[0] = p[1].s.b, r[1] = p[1].s.d; return 2;
    case OP_select: r[0] = p[1].s.b, r[1] = p[1].s.c, r[2] = p[1].s.d; return 3;
    case OP_br_if:
    case OP_br_if_back: r[0] = p[1].s.a; return 1;
    default: return 0;
    }
}

/* Does the straight-run loop [L, E) carry a floating-point value from one iteration to the next:
 * a slot read before its first write in the run and written with a float computed in the loop,
 * directly or through copies and selects (`s = s + x[i]`)? Forced vectorisation lets LLVM
 * reorder such a reduction's adds, which changes its rounding: such loops are not asked to. */
static bool vec_fp_carried(const wasm_module *m, const wasm_code *code, uint32_t L, uint32_t E) {
    uint32_t ns = code->nslots;
    bool *flt = xcalloc(ns ? ns : 1, 1), *seen = xcalloc(ns ? ns : 1, 1);
    bool *carried = xcalloc(ns ? ns : 1, 1);
    for (bool more = true; more;) { /* flt: written with a float, to a fixed point */
        more = false;
        for (uint32_t i = L; i < E;) {
            const wasm_cell *p = &code->code[i];
            int op = op_of(p->h);
            uint32_t r[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX}, w[2], nw, cb, cn;
            cell_reads(op, p, r);
            cell_writes(m, op, p, w, &nw, &cb, &cn);
            for (uint32_t j = 0; j < nw; j++) {
                bool f = float_result(op);
                if (op == OP_copy || op == OP_copy2) { /* each copy its own source */
                    uint32_t src = w[j] == p[1].s.a ? p[1].s.b : p[1].s.d;
                    f = src < ns && flt[src];
                }
                if (op == OP_select) /* either value; the condition is an integer */
                    f = (r[0] < ns && flt[r[0]]) || (r[1] < ns && flt[r[1]]);
                if (f && w[j] < ns && !flt[w[j]])
                    flt[w[j]] = more = true;
            }
            i += op_len(op, p);
        }
    }
    for (uint32_t i = L; i < E;) {
        const wasm_cell *p = &code->code[i];
        int op = op_of(p->h);
        uint32_t r[3], nr = cell_reads(op, p, r), w[2], nw, cb, cn;
        for (uint32_t j = 0; j < nr; j++)
            if (r[j] < ns && !seen[r[j]])
                carried[r[j]] = true;
        cell_writes(m, op, p, w, &nw, &cb, &cn);
        for (uint32_t j = 0; j < nw; j++)
            if (w[j] < ns)
                seen[w[j]] = true;
        i += op_len(op, p);
    }
    bool out = false;
    for (uint32_t sl = 0; sl < ns; sl++)
        out |= carried[sl] && flt[sl];
    free(flt);
    free(seen);
    free(carried);
    return out;
}

/* The plan for the loop [L, E), or NULL when it is not such a loop. */
static vec_plan *vec_analyse(fgen *f, uint32_t L, uint32_t E) {
    const wasm_code *code = f->code;
    const wasm_module *m = f->g->m;
    uint32_t ns = code->nslots;
    if (E <= L || E > code->ncode)
        return NULL;
    uint8_t *nwr = xcalloc(ns ? ns : 1, 1);
    uint32_t *wr_at = xcalloc(ns ? ns : 1, sizeof *wr_at);
    uint32_t *ivs = NULL; /* per slot: its step when it is a pointer or counter, else 0 */
    vec_plan *v = NULL;
    const wasm_cell *last = NULL;
    bool ok = true;
    for (uint32_t i = L; i < E && ok;) {
        const wasm_cell *p = &code->code[i];
        int op = op_of(p->h);
        uint32_t len = op_len(op, p);
        if (i > L && f->jt[i])
            ok = false; /* a branch lands inside */
        int kind = jit__op_kind(op);
        if (kind == K_BRCMP || kind == K_BRCMP_RI) {
            const wasm_cell *tg;
            jit__branch_targets(op, p, len, &tg);
            ok = ok && i + len == E && tg[0].target == code->code + L;
            last = p;
        } else if (op == OP_br_if || op == OP_br_if_back) {
            ok = ok && i + len == E && p[2].target == code->code + L;
            last = p;
        } else if (!(kind == K_BIN || kind == K_BIN_RI || kind == K_UN || kind == K_LOAD ||
                     kind == K_STORE || op == OP_copy || op == OP_copy2 || op == OP_const ||
                     op == OP_select || op == OP_nop || op == OP_global_get)) {
            ok = false;
        }
        uint32_t w[2], nw, cb, cn;
        if (ok && !cell_writes(m, op, p, w, &nw, &cb, &cn))
            ok = false;
        for (uint32_t j = 0; ok && j < nw; j++)
            if (w[j] < ns && nwr[w[j]] < 2)
                nwr[w[j]]++, wr_at[w[j]] = i;
        i += len;
    }
    if (!ok || !last)
        goto out;
    /* Split adds: t = b + a used as an address, b not written in the loop, a last written
     * before it in the run (each iteration runs the cells in order) by a = x & max or
     * a = x >> k (max = 2^(32-k) - 1), max < 2^31. */
    v = xcalloc(1, sizeof *v);
    v->L = L, v->E = E;
    v->cell_grp = xcalloc(E - L, 1);
    uint32_t *lw = xmalloc((ns ? ns : 1) * sizeof *lw); /* per slot: its last write so far */
    for (uint32_t sl = 0; sl < ns; sl++)
        lw[sl] = UINT32_MAX;
    for (uint32_t i = L; i < E && v->nsplit < VEC_SPLITS;) {
        const wasm_cell *p = &code->code[i];
        int op = op_of(p->h);
        uint32_t len = op_len(op, p);
        for (int o = 0; op == OP_i32_add && o < 2; o++) {
            uint32_t b = o ? p[1].s.c : p[1].s.b, a = o ? p[1].s.b : p[1].s.c, t = p[1].s.a;
            if (b >= ns || a >= ns || t >= ns || nwr[b] != 0 || lw[a] == UINT32_MAX)
                continue;
            const wasm_cell *d = &code->code[lw[a]];
            int dop = op_of(d->h);
            uint32_t mx = UINT32_MAX;
            if (dop == OP_i32_and_ri && d[1].s.a == a)
                mx = (uint32_t)d[2].u64;
            else if (dop == OP_i32_shr_u_ri && d[1].s.a == a)
                mx = UINT32_MAX >> ((uint32_t)d[2].u64 & 31);
            bool used = false; /* as an address before t is written again */
            for (uint32_t j = i + len; mx < 0x80000000u && j < E && !used;) {
                const wasm_cell *u = &code->code[j];
                int uop = op_of(u->h), uk = jit__op_kind(uop);
                used = (uk == K_LOAD && u[1].s.b == t) || (uk == K_STORE && u[1].s.a == t);
                uint32_t w[2], nw, cb, cn;
                cell_writes(m, uop, u, w, &nw, &cb, &cn);
                bool rewritten = false;
                for (uint32_t q = 0; q < nw; q++)
                    rewritten |= w[q] == t;
                if (rewritten && !used)
                    break;
                j += op_len(uop, u);
            }
            if (!used)
                continue;
            v->split[v->nsplit].at = i, v->split[v->nsplit].b = b, v->split[v->nsplit].max = mx;
            v->nsplit++;
            break;
        }
        uint32_t w[2], nw, cb, cn;
        cell_writes(m, op, p, w, &nw, &cb, &cn);
        for (uint32_t q = 0; q < nw; q++)
            if (w[q] < ns)
                lw[w[q]] = i;
        i += len;
    }
    free(lw);
    /* What each slot holds as the run goes, relative to the slots' values at the head of the
     * iteration: `sym_base + sym_off` (sym_base UINT32_MAX: anything else), followed through
     * `t = b + k` and copies (clang reuses locals as temporaries: nbody's inner loop advances
     * its pointer as `t = p + 56; ...; p = p + 96; ...; p = t`). sym_small: every add on the
     * way was of a constant below 2^16 and the sum stays below 2^20, so with the entry's check
     * (the base's range lies in the memory, below 2^32) no 32-bit add of the run wraps. A slot
     * holding `s + step` at the end of the run, step in (0, 2^16), small, is a pointer (or
     * counter) of that step; one holding itself is invariant. */
    ivs = xcalloc(ns ? ns : 1, sizeof *ivs);
    sym_state sy = sym_new(ns), sy_end = sym_new(ns);
    for (uint32_t i = L; i < E;) {
        const wasm_cell *p = &code->code[i];
        int op = op_of(p->h);
        sym_cell(m, op, p, &sy_end);
        i += op_len(op, p);
    }
    for (uint32_t sl = 0; sl < ns; sl++)
        if (sy_end.base[sl] == sl && sy_end.small[sl] && sy_end.off[sl] > 0 &&
            sy_end.off[sl] < (1u << 16))
            ivs[sl] = sy_end.off[sl];
    /* The counter and the bound: a compare-and-branch of the counter after its step against a
     * slot the loop does not write or a constant, or a branch while the counter is not zero
     * (clang's count-down loops: `c = c - 1; br_if c`). A `<u` / `<s` counter is one written
     * once, by `c = c + step` (its add is emitted nuw / nsw in the copy); a `!=` one may step
     * down by less than 2^16 too and be stepped through copies. */
    {
        int op = op_of(last->h);
        bool brif = op == OP_br_if || op == OP_br_if_back;
        bool ri = brif || jit__op_kind(op) == K_BRCMP_RI;
        unsigned cmp = brif ? 1 : (unsigned)(op - OP_brif_i32_eq) / 2; /* eq ne lt_s lt_u ... */
        uint32_t x = brif ? last[1].s.a : last[1].s.b, y = ri ? UINT32_MAX : last[1].s.c;
        int kind = -1;
        /* the counter compared first, else second (the bound then first); sy_end is the state
         * at the branch, the run's last cell */
        for (int sw = 0; sw < (ri ? 1 : 2) && kind < 0; sw++) {
            uint32_t cs = sw ? y : x, other = sw ? x : y;
            if (cs >= ns || sy_end.base[cs] >= ns || !(ri || (other < ns && nwr[other] == 0)))
                continue;
            uint32_t c = sy_end.base[cs], step = sy_end.off[cs];
            if (step == 0 || sy_end.base[c] != c || sy_end.off[c] != step)
                continue; /* not the value the counter steps to */
            if (cmp == 1 && (step < (1u << 16) || -step < (1u << 16))) {
                kind = VEC_NE;
            } else if ((sw ? cmp == 5 || cmp == 4 : cmp == 3 || cmp == 2) && cs == c && ivs[c] &&
                       nwr[c] == 1 && op_of(code->code[wr_at[c]].h) == OP_i32_add_ri &&
                       code->code[wr_at[c] + 1].s.a == c && code->code[wr_at[c] + 1].s.b == c) {
                kind = (sw ? cmp == 5 : cmp == 3) ? VEC_LTU : VEC_LTS;
            }
            if (kind >= 0) {
                v->ctr = c, v->bound = other;
                v->bound_imm = ri && !brif ? (uint32_t)last[2].u64 : 0;
                v->step = step, v->cmp = (uint8_t)kind;
                v->ctr_at = kind == VEC_NE ? UINT32_MAX : wr_at[c];
            }
        }
        if (kind < 0)
            ok = false; /* no access groups: only the splits, if any */
    }
    /* The accesses, by base: an address holding `base + rel` (small), base invariant or a
     * pointer. sparse: a pointer steps by more than 4 times an access's size (fields of larger
     * elements). */
    bool sparse = false;
    for (uint32_t i = L; i < E && ok;) {
        const wasm_cell *p = &code->code[i];
        int op = op_of(p->h);
        uint32_t len = op_len(op, p);
        int kind = jit__op_kind(op);
        if (kind == K_LOAD || kind == K_STORE) {
            uint32_t a = kind == K_LOAD ? p[1].s.b : p[1].s.a;
            uint32_t base = a < ns ? sy.base[a] : UINT32_MAX;
            ok = base < ns && sy.small[a] &&
                 (ivs[base] || (sy_end.base[base] == base && sy_end.off[base] == 0));
            uint64_t rel = ok ? (uint64_t)sy.off[a] + p[1].w.hi : 0;
            uint32_t gi = 0;
            while (ok && gi < v->ngrp && v->grp[gi].base != base)
                gi++;
            if (ok && gi == v->ngrp) {
                if (gi == VEC_GROUPS) {
                    ok = false;
                } else {
                    v->ngrp++;
                    v->grp[gi].base = base;
                    v->grp[gi].stride = ivs[base];
                    v->grp[gi].lo = UINT64_MAX;
                    v->grp[gi].hi = 0;
                }
            }
            if (ok) {
                uint64_t hi = rel + access_size(op);
                if (rel < v->grp[gi].lo)
                    v->grp[gi].lo = rel;
                if (hi > v->grp[gi].hi)
                    v->grp[gi].hi = hi;
                v->grp[gi].store |= kind == K_STORE;
                sparse |= v->grp[gi].stride > 4 * access_size(op);
                v->cell_grp[i - L] = (uint8_t)(gi + 1);
            }
        }
        sym_cell(m, op, p, &sy);
        i += len;
    }
    sym_free(&sy);
    sym_free(&sy_end);
    /* A count-down loop only when it stores to a fixed address, which the copy's plain loads
     * and scopes let LICM keep in a register across the loop (nbody's body fields): the
     * count-down loops of musl's memcpy and memmove, a few iterations per call, ran slower
     * behind the check (warm fannkuch 444 -> 468 ms). */
    bool fixed_store = false;
    for (uint32_t gi = 0; gi < v->ngrp; gi++)
        fixed_store |= v->grp[gi].stride == 0 && v->grp[gi].store;
    if (ok && v->step >= 0x80000000u && !fixed_store)
        ok = false;
    /* Asked to vectorise unless it carries a float (vec_fp_carried) or a pointer steps by more
     * than 4 times its accesses' size (vec_emit says why). */
    v->vectorise = ok && !sparse && !vec_fp_carried(m, code, L, E);
    if (!ok || v->ngrp == 0) {
        /* not vectorisable: a copy only for the splits, or none */
        v->ngrp = 0;
        memset(v->cell_grp, 0, E - L);
        if (v->nsplit == 0) {
            vec_plan_free(v);
            v = NULL;
        }
    }
out:
    free(nwr);
    free(wr_at);
    free(ivs);
    return v;
}

/* Give a memory access of the checked copy being emitted the scopes of its base. */
static void vec_scope(fgen *f, LLVMValueRef inst, const wasm_cell *ip) {
    const vec_plan *v = f->vec_on;
    uint32_t at = (uint32_t)(ip - f->code->code);
    unsigned g = at >= v->L && at < v->E ? v->cell_grp[at - v->L] : 0;
    if (!g)
        return;
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(G->cx, "alias.scope", 11), f->vec_scope[g - 1]);
    if (f->vec_noalias[g - 1])
        LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(G->cx, "noalias", 7), f->vec_noalias[g - 1]);
}

/* The check of a vectorisable plan (v->ngrp > 0) at the fall-through into its loop: the trip
 * count from the counter (no wrap), each base's range inside the memory, the ranges of bases one
 * of which is stored to apart; sets f's alias scopes for the copy (domain psl.vec.id). */
static LLVMValueRef vec_check(fgen *f, const vec_plan *v, unsigned id) {
    gen *g = f->g;
    LLVMValueRef ok;
    LLVMValueRef K = c64(g, v->step), M32 = c64(g, 0xffffffffu);
    LLVMValueRef c0 = from_i32(f, as_i32(f, ld(f, v->ctr)));
    LLVMValueRef N =
        v->bound == UINT32_MAX ? c64(g, v->bound_imm) : from_i32(f, as_i32(f, ld(f, v->bound)));
    LLVMValueRef T;
    if (v->cmp == VEC_NE) {
        /* the distance to the bound in the counter's direction (a step of 2^32 - k counts down
         * by k), a multiple of the step: T iterations */
        bool down = v->step >= 0x80000000u;
        LLVMValueRef Ka = down ? c64(g, (uint32_t)-v->step) : K;
        LLVMValueRef D = LLVMBuildAnd(
            B, down ? LLVMBuildSub(B, c0, N, "") : LLVMBuildSub(B, N, c0, ""), M32, "");
        ok = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntNE, D, c64(g, 0), ""),
                          LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildURem(B, D, Ka, ""), c64(g, 0), ""),
                          "");
        T = LLVMBuildUDiv(B, D, Ka, "");
    } else {
        bool sg = v->cmp == VEC_LTS;
        LLVMValueRef a = c0, n = N;
        if (sg) {
            a = LLVMBuildSExt(B, as_i32(f, c0), g->i64, "");
            n = LLVMBuildSExt(B, as_i32(f, N), g->i64, "");
        }
        LLVMValueRef lim = c64(g, (sg ? 0x7fffffffu : 0xffffffffu) - v->step);
        LLVMValueRef a1 = LLVMBuildAdd(B, a, K, "");
        /* no wrap of the counter before the loop ends */
        ok = LLVMBuildAnd(B, LLVMBuildICmp(B, sg ? LLVMIntSLE : LLVMIntULE, a, lim, ""),
                          LLVMBuildICmp(B, sg ? LLVMIntSLE : LLVMIntULE, n, lim, ""), "");
        LLVMValueRef more = LLVMBuildICmp(B, sg ? LLVMIntSLT : LLVMIntULT, a1, n, "");
        LLVMValueRef t = LLVMBuildUDiv(
            B, LLVMBuildAdd(B, LLVMBuildSub(B, n, a, ""), c64(g, v->step - 1), ""), K, "");
        T = LLVMBuildSelect(B, more, t, c64(g, 1), "");
    }
    LLVMValueRef msz = LLVMBuildLoad2(B, g->i64, f->memsize, "");
    LLVMValueRef lo[VEC_GROUPS], hi[VEC_GROUPS];
    LLVMValueRef tm1 = LLVMBuildSub(B, T, c64(g, 1), "");
    for (uint32_t i = 0; i < v->ngrp; i++) {
        LLVMValueRef b0 = from_i32(f, as_i32(f, ld(f, v->grp[i].base)));
        lo[i] = LLVMBuildAdd(B, b0, c64(g, v->grp[i].lo), "");
        LLVMValueRef span = LLVMBuildMul(B, tm1, c64(g, v->grp[i].stride), "");
        hi[i] = LLVMBuildAdd(B, LLVMBuildAdd(B, b0, span, ""), c64(g, v->grp[i].hi), "");
        ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntULE, hi[i], msz, ""), "");
    }
    for (uint32_t i = 0; i < v->ngrp; i++)
        for (uint32_t j = i + 1; j < v->ngrp; j++) {
            if (!v->grp[i].store && !v->grp[j].store)
                continue;
            LLVMValueRef apart = LLVMBuildOr(B, LLVMBuildICmp(B, LLVMIntULE, hi[i], lo[j], ""),
                                             LLVMBuildICmp(B, LLVMIntULE, hi[j], lo[i], ""), "");
            ok = LLVMBuildAnd(B, ok, apart, "");
        }
    /* one alias scope per base */
    char name[64];
    snprintf(name, sizeof name, "psl.vec.%u", id);
    LLVMMetadataRef dom_name = LLVMMDStringInContext2(g->cx, name, strlen(name));
    LLVMMetadataRef dom = LLVMMDNodeInContext2(g->cx, &dom_name, 1);
    LLVMMetadataRef sc[VEC_GROUPS];
    for (uint32_t i = 0; i < v->ngrp; i++) {
        snprintf(name, sizeof name, "psl.vec.%u.%u", id, i);
        LLVMMetadataRef ops[2] = {LLVMMDStringInContext2(g->cx, name, strlen(name)), dom};
        sc[i] = LLVMMDNodeInContext2(g->cx, ops, 2);
    }
    for (uint32_t i = 0; i < v->ngrp; i++) {
        f->vec_scope[i] = LLVMMetadataAsValue(g->cx, LLVMMDNodeInContext2(g->cx, &sc[i], 1));
        LLVMMetadataRef others[VEC_GROUPS];
        uint32_t no = 0;
        for (uint32_t j = 0; j < v->ngrp; j++)
            if (j != i)
                others[no++] = sc[j];
        f->vec_noalias[i] =
            no ? LLVMMetadataAsValue(g->cx, LLVMMDNodeInContext2(g->cx, others, no)) : NULL;
    }
    return ok;
}

/* At the fall-through into loop v->L: the check, then the checked copy (the builder is left at
 * its end; the caller goes on with the ordinary copy at v->L). */
static int vec_emit(fgen *f, uint32_t k, const vec_plan *v, char *err, size_t errlen) {
    gen *g = f->g;
    bool plain = v->ngrp > 0; /* vectorisable: plain loads, scopes; else only the splits */
    LLVMValueRef ok = plain ? vec_check(f, v, g->nvec++) : LLVMConstInt(g->i1, 1, 0);
    /* the split adds do not wrap: b <= 2^32 - 1 - max (b is not written in the loop) */
    for (uint32_t q = 0; q < v->nsplit; q++) {
        LLVMValueRef b = from_i32(f, as_i32(f, ld(f, v->split[q].b)));
        LLVMValueRef lim = c64(g, 0xffffffffu - v->split[q].max);
        ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntULE, b, lim, ""), "");
    }
    if (v->nsplit && !f->sgen) {
        uint32_t ns = f->code->nslots ? f->code->nslots : 1;
        f->sgen = xcalloc(ns, sizeof *f->sgen);
        f->sb = xcalloc(ns, sizeof *f->sb);
        f->sa = xcalloc(ns, sizeof *f->sa);
    }
    uint32_t n = f->code->ncode;
    LLVMBasicBlockRef *bbs = f->bbs, *bv = xmalloc((n + 1) * sizeof *bv);
    memcpy(bv, bbs, (n + 1) * sizeof *bv);
    for (uint32_t i = v->L; i < v->E; i++)
        if (bbs[i])
            bv[i] = new_bb(f, "vec");
    LLVMBuildCondBr(B, ok, bv[v->L], bbs[v->L]);
    f->bbs = bv;
    f->vec_on = v;
    f->vec_plain = plain;
    int rc = emit_range(f, k, v->L, v->E, err, errlen);
    /* The back edge (the loop's latch) asks for vectorisation: the default level's pipeline (O1)
     * vectorises only loops that ask, and those whatever its cost model says. So only when
     * no pointer steps by more than 4 of its accesses (matmul's loop, unrolled twice in the
     * wasm, steps by 2): over fields of larger elements (nbody's inner loop, 7 doubles per
     * body, 1-4 trips) the vector loop's shuffles and run-time checks cost more than they save
     * (warm nbody 0.73 -> 0.89 s vectorised; 0.65 s scalar, where the plain loads still let
     * LICM keep the fixed body's fields in registers). The loop ID refers to itself, as LLVM
     * requires. */
    LLVMValueRef latch = rc ? NULL : LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(B));
    if (plain && v->vectorise && latch && LLVMGetNumSuccessors(latch) == 1 &&
        LLVMGetSuccessor(latch, 0) == bv[v->L]) {
        LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->cx, NULL, 0);
        LLVMMetadataRef en[2] = {
            LLVMMDStringInContext2(g->cx, "llvm.loop.vectorize.enable", 26),
            LLVMValueAsMetadata(LLVMConstInt(g->i1, 1, 0)),
        };
        LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(g->cx, en, 2)};
        LLVMMetadataRef lid = LLVMMDNodeInContext2(g->cx, ops, 2);
        LLVMMetadataReplaceAllUsesWith(tmp, lid);
        LLVMSetMetadata(latch, LLVMGetMDKindIDInContext(g->cx, "llvm.loop", 9),
                        LLVMMetadataAsValue(g->cx, lid));
    }
    if (!rc && !terminated(f))
        LLVMBuildBr(B, bv[v->E]);
    f->vec_on = NULL;
    f->vec_plain = false;
    f->bbs = bbs;
    free(bv);
    return rc;
}

/* Generate function k into fn: the native function, or with osr its OSR variant. */
static int gen_func(gen *g, uint32_t k, LLVMValueRef fn, bool osr, char *err, size_t errlen) {
    const wasm_module *m = g->m;
    fgen fs, *f = &fs;
    memset(f, 0, sizeof *f);
    f->g = g;
    f->code = &m->codes[k];
    f->ft = code_type(m, k);
    f->fn = fn;
    f->osr = osr;
    f->k = k;
    f->leaf = true; /* until pass 1 finds a call */
    f->ctx = LLVMGetParam(f->fn, 0);
    if (osr)
        f->fpv = LLVMGetParam(f->fn, 1);
    const wasm_code *code = f->code;
    uint32_t n = code->ncode;
    int rc = 0;

    /* Pass 1: block starts (branch targets, fall-through after terminators), which cells
     * branches reach forward or back, and the call buffer; then the loop heads (the OSR entry
     * points, jit__loop_heads). */
    bool *starts = xcalloc(n + 1, 1);
    bool *heads = xcalloc(n + 1, 1);
    uint32_t *head_end = xcalloc(n + 1, sizeof *head_end);
    uint8_t *jt = xcalloc(n + 1, 1); /* per cell: JT_FWD / JT_BACK, a branch goes there */
    LLVMBasicBlockRef *bbs_a = NULL;
    LLVMValueRef *init_st = NULL, osr_br = NULL; /* OSR: the slots' first stores, the jump to A */
    f->jt = jt;
    f->bbs = xcalloc(n + 1, sizeof *f->bbs);
    for (uint32_t i = 0; i < n;) {
        const wasm_cell *ip = &code->code[i];
        int op = op_of(ip->h);
        if (op < 0) {
            snprintf(err, errlen, "function %u: unknown handler at cell %u", k, i);
            rc = ERR_INVALID;
            goto done;
        }
        uint32_t len = op_len(op, ip);
        /* a branch: its targets start blocks, and so does the cell after it */
        const wasm_cell *tg;
        uint32_t nt = jit__branch_targets(op, ip, len, &tg);
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t c = (uint32_t)(tg[t].target - code->code);
            starts[c] = true;
            jt[c] |= tg[t].target <= ip ? JT_BACK : JT_FWD;
        }
        if (nt)
            starts[i + len] = true;
        switch (op) {
        case OP_call:
        case OP_call_import:
        case OP_call_indirect: {
            f->leaf = false;
            if (op == OP_call && g->fns[(const wasm_code *)ip[2].h - m->codes])
                break; /* a direct native call */
            const wasm_ftype *t =
                op == OP_call ? code_type(m, (uint32_t)((const wasm_code *)ip[2].h - m->codes))
                : op == OP_call_import ? &m->types[m->func_types[ip[2].u64]]
                                       : &m->types[ip[2].u64];
            uint32_t span = t->nparams > t->nresults ? t->nparams : t->nresults;
            if (span == 0)
                span = 1; /* the helper still takes a buffer */
            if (span > f->callbuf_n)
                f->callbuf_n = span;
            break;
        }
        default: break;
        }
        if (is_terminator(op))
            starts[i + len] = true;
        i += len;
    }

    jit__loop_heads(code, heads, head_end);

    /* Where an OSR activation may leave for newer code: the back edges of the loops around its
     * loop head L, once per run of L's loop. Not at L's own back edge: a check there would run
     * every iteration, give the loop a second exit, and keep every slot the frame needs live
     * through it (hashmap's main, whose L holds the whole run, ran 10-16 % slower) - except in
     * mid-level code when no loop encloses L: that code is replaced by a default-level entry
     * soon, and without the check an activation would run it to its end (the hot thread
     * compiles such an entry at the default level at once when loops follow L's). */
    uint32_t l = osr && g->osr_cell ? g->osr_cell[k] : UINT32_MAX;
    if (l < n && heads[l]) {
        f->nest_head = xcalloc(n + 1, 1);
        bool around;
        uint32_t nest_end = jit__osr_nest(heads, head_end, l, f->nest_head, &around);
        if (!around && g->level == JIT_LEVEL_MID)
            f->nest_head[l] = 1;
        /* Code below the default level, once l's nest is done, would run every loop after it
         * to the end of the activation: the top-level loops after that nest may leave too,
         * for entries of their own (see osr_leave_check). */
        if (g->level != JIT_LEVEL_DEFAULT && jit__osr_ask())
            jit__loops_after(heads, head_end, n, nest_end, f->nest_head);
    }

    /* Counted innermost loops that run in a checked copy when their check holds: at the default
     * level, and in the mid level's OSR entries (a long loop running now, which the auto tier
     * compiles at the mid level first), whose pipelines vectorise them (JIT_PIPELINE,
     * JIT_PIPELINE_MID_VEC). Not in the mid level's called functions: their default-level code
     * follows unless the batch is big, whose compile the vectoriser's pipeline would slow
     * (expr's printf batch: ~190 -> ~290 ms, for a loop it did not vectorise). With every
     * object at the mid level ($PSL_JIT_QUICK=mid: tests, comparisons) no default-level code
     * follows: all of them. Not in quick code. $PSL_JIT_VEC=0 turns this off (comparisons). */
    int forced = jit__forced_level();
    if ((forced < 0 ? g->level == JIT_LEVEL_DEFAULT || (g->level == JIT_LEVEL_MID && osr)
                    : forced != JIT_LEVEL_QUICK) &&
        jit__vec())
        for (uint32_t L = 0; L < n; L++) {
            if (!heads[L] || (jt[L] & JT_FWD) || (f->nest_head && f->nest_head[L]))
                continue;
            vec_plan *v = vec_analyse(f, L, head_end[L]);
            if (!v)
                continue;
            if (!f->vec)
                f->vec = xcalloc(n + 1, sizeof *f->vec);
            f->vec[L] = v;
        }

    /* Entry: slots, prologue (stack and depth checks, fuel), parameters. */
    f->entry = new_bb(f, "entry");
    LLVMPositionBuilderAtEnd(g->b, f->entry);
    f->slots = xmalloc(code->nslots * sizeof *f->slots);

    f->kgen = xcalloc(code->nslots, sizeof *f->kgen);
    f->kval = xcalloc(code->nslots, sizeof *f->kval);
    f->xgen = xcalloc(code->nslots, sizeof *f->xgen);
    f->xk = xcalloc(code->nslots, sizeof *f->xk);
    f->cur_gen = 1;
    for (uint32_t i = 0; i < code->nslots; i++)
        f->slots[i] = LLVMBuildAlloca(B, g->i64, "");
    f->memsize = LLVMBuildAlloca(B, g->i64, "memsize");
    if (osr)
        f->epoch_seen = LLVMBuildAlloca(B, g->i32, "epoch_seen");
    f->lfuel = LLVMBuildAlloca(B, g->i32, "lfuel");
    if (f->callbuf_n)
        f->callbuf = LLVMBuildArrayAlloca(B, g->i64, c32(g, f->callbuf_n), "callbuf");
    /* An OSR variant resumes at one loop head only (the one the interpreter was sampled at):
     * with a single entry into the body, every loop around that head keeps a single entry
     * (the code before it is unreachable), so LLVM still sees natural loops it can optimise.
     * Asked for another cell, it returns 1 at once (declined: the interpreter goes on). */
    uint32_t osr_at = UINT32_MAX;
    if (osr) {
        osr_at = g->osr_cell ? g->osr_cell[k] : UINT32_MAX;
        if (osr_at >= n || !heads[osr_at]) {
            snprintf(err, errlen, "function %u: OSR entry at cell %u is no loop head", k, osr_at);
            rc = ERR_INVALID;
            goto done;
        }
        LLVMBasicBlockRef go = new_bb(f, "osr"), no = new_bb(f, "decline");
        LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntEQ, LLVMGetParam(fn, 2), c32(g, osr_at), ""), go,
                        no);
        LLVMPositionBuilderAtEnd(B, no);
        LLVMBuildRet(B, c32(g, 1));
        LLVMPositionBuilderAtEnd(B, go);
        LLVMValueRef ep = ctx_field(f, offsetof(jit_ctx, osr_epoch), g->ptr, "epochs");
        LLVMValueRef ki = c64(g, k);
        f->epochp = LLVMBuildGEP2(B, g->i32, ep, &ki, 1, "");
        f->epoch0 = LLVMBuildLoad2(B, g->i32, f->epochp, "epoch0");
        LLVMSetVolatile(f->epoch0, 1);
        /* never the count: the first back edge of a top-level loop after the entry's nest asks
         * (osr_leave_check) */
        LLVMBuildStore(B, LLVMBuildSub(B, f->epoch0, c32(g, 1), ""), f->epoch_seen);
    }
    f->inst = ctx_field(f, offsetof(jit_ctx, inst), g->ptr, "inst");
    f->codes = LLVMBuildLoad2(
        B, g->ptr,
        field_ptr(
            f, LLVMBuildLoad2(B, g->ptr, field_ptr(f, f->inst, offsetof(wasm_instance, mod)), ""),
            offsetof(wasm_module, codes)),
        "codes");
    f->mem = ctx_field(f, offsetof(jit_ctx, mem), g->ptr, "mem");
    f->depthp = field_ptr(f, f->ctx, offsetof(jit_ctx, depth));

    LLVMValueRef zero32 = c32(g, 0);
    /* The stack pointer (not the frame address, which would make every path set up a frame:
     * with the stack pointer, a path that calls nothing can skip the register saves). */
    LLVMValueRef sp = LLVMBuildCall2(
        B, LLVMIntrinsicGetType(g->cx, LLVMLookupIntrinsicID("llvm.stacksave", 14), &g->ptr, 1),
        intrinsic(g, "llvm.stacksave", &g->ptr, 1), NULL, 0, "");
    LLVMValueRef lim = ctx_field(f, offsetof(jit_ctx, stack_limit), g->i64, "");
    trap_if(f, LLVMBuildICmp(B, LLVMIntULT, LLVMBuildPtrToInt(B, sp, g->i64, ""), lim, ""),
            WASM_TRAP_STACK);
    if (!osr)
        f->depth0 = LLVMGetParam(f->fn, 1);
    else if (!f->leaf)
        f->depth0 = LLVMBuildLoad2(B, g->i32, f->depthp, "depth");
    if (!osr) { /* an OSR activation is already counted (and fuelled) by the interpreter */
        LLVMValueRef maxd = ctx_field(f, offsetof(jit_ctx, max_depth), g->i32, "");
        trap_if(f, LLVMBuildICmp(B, LLVMIntUGE, f->depth0, maxd, ""), WASM_TRAP_STACK);
        /* Its callees get depth0 + 1 (callee_depth); nothing is stored here. */
    }
    if (!osr && g->fuel) {
        LLVMValueRef idx = c64(g, offsetof(jit_ctx, fuel));
        LLVMValueRef fp = LLVMBuildGEP2(B, g->i8, f->ctx, &idx, 1, "");
        /* A call costs the callee's length, as in the interpreter. */
        LLVMValueRef v = LLVMBuildSub(B, LLVMBuildLoad2(B, g->i32, fp, ""),
                                      c32(g, code->ncode ? code->ncode : 1), "");
        LLVMBuildStore(B, v, fp);
        LLVMBasicBlockRef poll = new_bb(f, "poll"), ok = new_bb(f, "body");
        LLVMValueRef br = LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, v, zero32, ""), poll, ok);
        LLVMSetMetadata(br, g->prof_kind, g->unlikely_md);
        LLVMPositionBuilderAtEnd(B, poll);
        LLVMBuildCall2(B, g->t_budget, g->h_budget, &f->ctx, 1, "");
        LLVMBuildBr(B, ok);
        LLVMPositionBuilderAtEnd(B, ok);
    }
    LLVMBuildStore(B, c32(g, JIT_FUEL_PERIOD), f->lfuel);
    reload_memsize(f);
    /* Parameters, then zeroed locals; operand slots are always written before being read. An
     * OSR variant takes every slot from the interpreter's frame. */
    if (osr) {
        init_st = xcalloc(code->nslots ? code->nslots : 1, sizeof *init_st);
        for (uint32_t i = 0; i < code->nslots; i++) {
            LLVMValueRef idx = c64(g, i);
            st(f, i, LLVMBuildLoad2(B, g->i64, LLVMBuildGEP2(B, g->i64, f->fpv, &idx, 1, ""), ""));
            init_st[i] = LLVMGetLastInstruction(LLVMGetInsertBlock(B));
        }
        starts[0] = true;
    } else {
        for (uint32_t i = 0; i < f->ft->nparams + code->nlocals && i < code->nslots; i++)
            if (i < f->ft->nparams)
                st_typed(f, i, LLVMGetParam(f->fn, i + 2), f->ft->types[i]);
            else
                st(f, i, c64(g, 0));
    }

    for (uint32_t i = 0; i <= n; i++)
        if (starts[i] || i == n)
            f->bbs[i] = new_bb(f, "");
    /* An OSR variant resumes at loop head L = osr_at. Branching into the body at L would leave
     * L the only entry of every loop around it: LLVM would see one rotated loop with header L
     * (the inner loops of L's nest included in it as plain paths), which it can neither unroll
     * nor vectorise (nbody's OSR copy ran 2-3x slower than its ordinary copy). So the OSR
     * variant holds two copies of the code: A, only L's own loop nest (cells [L, end of its
     * last back edge)), entered at L, whose exits go to B, the whole function (its start is
     * unreachable). A is a proper loop nest; in B only the loops around L are rotated, and the
     * nests inside them, L's loop among them, stay proper, so when A's loop finishes, its next
     * runs are compiled like the ordinary copy's. */
    uint32_t end_a = 0;
    if (osr) {
        end_a = head_end[osr_at];
        if (end_a <= osr_at || end_a > n || !f->bbs[end_a]) {
            snprintf(err, errlen, "function %u: no loop body at cell %u", k, osr_at);
            rc = ERR_INVALID;
            goto done;
        }
        jt[end_a] |= JT_FWD; /* copy A's fall-through exit enters B there */
        bbs_a = xmalloc((n + 1) * sizeof *bbs_a);
        memcpy(bbs_a, f->bbs, (n + 1) * sizeof *bbs_a);
        for (uint32_t i = osr_at; i < end_a; i++)
            if (f->bbs[i])
                bbs_a[i] = new_bb(f, "osr_a");
        osr_br = LLVMBuildBr(B, bbs_a[osr_at]);
    }
    /* The lowered code never falls off its end (the last instruction is ret or a branch); the
     * block at n exists only as a fall-through target and is unreachable. */

    f->iv_nuw = iv_adds(f, heads, head_end, jt, osr ? osr_at : UINT32_MAX);
    rc = emit_range(f, k, 0, n, err, errlen);
    if (rc)
        goto done;
    if (!terminated(f))
        LLVMBuildBr(B, f->bbs[n]);
    LLVMPositionBuilderAtEnd(B, f->bbs[n]);
    LLVMBuildUnreachable(B);
    if (osr) { /* copy A: L's loop nest, branches out of it into B */
        LLVMBasicBlockRef *bbs_b = f->bbs, before_a = LLVMGetLastBasicBlock(f->fn);
        f->bbs = bbs_a;
        rc = emit_range(f, k, osr_at, end_a, err, errlen);
        if (!rc && !terminated(f))
            LLVMBuildBr(B, bbs_a[end_a]);
        f->bbs = bbs_b;
        if (rc)
            goto done;
        osr_prune_leaves(f);
        const uint64_t *vals = g->osr_vals ? g->osr_vals[k] : NULL;
        if (vals) {
            /* A's blocks: its loop heads' copies, made before B, and those made with it. */
            uint32_t na = 0, cap = LLVMCountBasicBlocks(f->fn);
            LLVMBasicBlockRef *ab = xmalloc((cap ? cap : 1) * sizeof *ab);
            for (uint32_t i = osr_at; i < end_a; i++)
                if (bbs_a[i] && bbs_a[i] != bbs_b[i])
                    ab[na++] = bbs_a[i];
            for (LLVMBasicBlockRef b = LLVMGetNextBasicBlock(before_a); b && na < cap;
                 b = LLVMGetNextBasicBlock(b))
                ab[na++] = b;
            qsort(ab, na, sizeof *ab, cmp_ptr);
            osr_specialize(f, vals, init_st, osr_br, ab, na, bbs_b[osr_at]);
            free(ab);
        }
    }
    narrow_slots(f, init_st);
done:
    free(init_st);
    free(starts);
    free(heads);
    free(jt);
    free((void *)f->iv_nuw);
    free(f->nest_head);
    for (uint32_t i = 0; f->vec && i <= n; i++)
        vec_plan_free(f->vec[i]);
    free(f->vec);
    free(f->leaves);
    free(f->leave_at);
    free(head_end);
    free(bbs_a);
    free(f->bbs);
    free(f->slots);
    free(f->kgen);
    free(f->kval);
    free(f->xgen);
    free(f->xk);
    free(f->sgen);
    free(f->sb);
    free(f->sa);
    return rc;
}

/* The interpreter-convention entry of function k: void e(ctx, fp). */
static void gen_entry(gen *g, uint32_t k, LLVMValueRef e) {
    const wasm_ftype *t = code_type(g->m, k);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(g->cx, e, "");
    LLVMPositionBuilderAtEnd(g->b, bb);
    LLVMValueRef ctx = LLVMGetParam(e, 0), fp = LLVMGetParam(e, 1);
    LLVMValueRef *args = xmalloc((t->nparams + 2) * sizeof *args);
    args[0] = ctx;
    LLVMValueRef didx = c64(g, offsetof(jit_ctx, depth));
    args[1] = LLVMBuildLoad2(g->b, g->i32, LLVMBuildGEP2(g->b, g->i8, ctx, &didx, 1, ""), "depth");
    for (uint32_t i = 0; i < t->nparams; i++) {
        LLVMValueRef idx = c64(g, i);
        args[i + 2] =
            LLVMBuildLoad2(g->b, g->i64, LLVMBuildGEP2(g->b, g->i64, fp, &idx, 1, ""), "");
    }
    LLVMValueRef r = LLVMBuildCall2(g->b, g->fntys[k], g->fns[k], args, t->nparams + 2, "");
    free(args);
    for (uint32_t i = 0; i < t->nresults; i++) {
        LLVMValueRef idx = c64(g, i);
        LLVMValueRef v = t->nresults == 1 ? r : LLVMBuildExtractValue(g->b, r, i, "");
        LLVMBuildStore(g->b, v, LLVMBuildGEP2(g->b, g->i64, fp, &idx, 1, ""));
    }
    LLVMBuildRetVoid(g->b);
}

static LLVMValueRef declare(gen *g, const char *name, LLVMTypeRef *ty, LLVMTypeRef ret,
                            LLVMTypeRef *params, unsigned n) {
    *ty = LLVMFunctionType(ret, params, n, 0);
    LLVMValueRef fn = LLVMAddFunction(g->mod, name, *ty);
    unsigned nu = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->cx, nu, 0));
    return fn;
}

static void add_attr(gen *g, LLVMValueRef fn, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(g->cx, kind, 0));
}

static void declare_helpers(gen *g) {
    LLVMTypeRef P = g->ptr, I = g->i32, L = g->i64;
    LLVMTypeRef p_trap[] = {P, I};
    g->h_trap = declare(g, "psl_jit_trap", &g->t_trap, g->vd, p_trap, 2);
    add_attr(g, g->h_trap, "noreturn");
    add_attr(g, g->h_trap, "cold");
    g->h_budget = declare(g, "psl_jit_budget", &g->t_budget, g->vd, &P, 1);
    add_attr(g, g->h_budget, "cold");
    LLVMTypeRef p_call[] = {P, I, P};
    g->h_call = declare(g, "psl_jit_call", &g->t_call, g->vd, p_call, 3);
    LLVMTypeRef p_ready[] = {P, I, I};
    g->h_osr_ready = declare(g, "psl_jit_osr_ready", &g->t_osr_ready, I, p_ready, 3);
    add_attr(g, g->h_osr_ready, "cold");
    LLVMTypeRef p_calli[] = {P, I, I, I, P};
    g->h_calli = declare(g, "psl_jit_call_indirect", &g->t_calli, g->vd, p_calli, 5);
    LLVMTypeRef p_mgrow[] = {P, I};
    g->h_mgrow = declare(g, "psl_jit_memory_grow", &g->t_mgrow, I, p_mgrow, 2);
    LLVMTypeRef p_minit[] = {P, I, I, I, I};
    g->h_minit = declare(g, "psl_jit_memory_init", &g->t_minit, g->vd, p_minit, 5);
    LLVMTypeRef p_seg[] = {P, I};
    g->h_ddrop = declare(g, "psl_jit_data_drop", &g->t_seg, g->vd, p_seg, 2);
    g->h_edrop = declare(g, "psl_jit_elem_drop", &g->t_seg, g->vd, p_seg, 2);
    LLVMTypeRef p_tget[] = {P, I, I};
    g->h_tget = declare(g, "psl_jit_table_get", &g->t_tget, L, p_tget, 3);
    LLVMTypeRef p_tset[] = {P, I, I, L};
    g->h_tset = declare(g, "psl_jit_table_set", &g->t_tset, g->vd, p_tset, 4);
    LLVMTypeRef p_tsize[] = {P, I};
    g->h_tsize = declare(g, "psl_jit_table_size", &g->t_tsize, I, p_tsize, 2);
    LLVMTypeRef p_tgrow[] = {P, I, L, I};
    g->h_tgrow = declare(g, "psl_jit_table_grow", &g->t_tgrow, I, p_tgrow, 4);
    LLVMTypeRef p_tfill[] = {P, I, I, L, I};
    g->h_tfill = declare(g, "psl_jit_table_fill", &g->t_tfill, g->vd, p_tfill, 5);
    LLVMTypeRef p_tcopy[] = {P, I, I, I, I, I};
    g->h_tcopy = declare(g, "psl_jit_table_copy", &g->t_tcopy, g->vd, p_tcopy, 6);
    LLVMTypeRef p_tinit[] = {P, I, I, I, I, I};
    g->h_tinit = declare(g, "psl_jit_table_init", &g->t_tinit, g->vd, p_tinit, 6);
}

static LLVMValueRef fn_table(gen *g, const char *name, LLVMValueRef *fns, uint32_t n) {
    LLVMTypeRef at = LLVMArrayType2(g->ptr, n);
    LLVMValueRef gv = LLVMAddGlobal(g->mod, at, name);
    LLVMSetInitializer(gv, LLVMConstArray2(g->ptr, fns, n));
    LLVMSetGlobalConstant(gv, 1);
    return gv;
}

int jit__compile_object(const wasm_module *m, const jit_gen_opts *o, uint8_t **obj, size_t *len,
                        char *err, size_t errlen) {
    jit__llvm_init();
    uint64_t t_start = plat_now_ns();
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    *obj = NULL;
    *len = 0;
    int rc = 0;
    uint32_t nc = m->nfuncs - m->nimported_funcs;
    gen gs, *g = &gs;
    memset(g, 0, sizeof *g);
    g->m = m;
    g->guard = o->guard;
    g->sel = o->sel;
    g->osr_cell = o->osr_cell;
    g->osr_vals = o->osr_vals;
    g->level = o->level;
    g->fuel = o->fuel;
    g->cx = LLVMContextCreate();
    LLVMContextSetDiagnosticHandler(g->cx, quiet_diagnostics, NULL);
    g->mod = LLVMModuleCreateWithNameInContext("wasm", g->cx);
    g->b = LLVMCreateBuilderInContext(g->cx);
    g->i1 = LLVMInt1TypeInContext(g->cx);
    g->i8 = LLVMInt8TypeInContext(g->cx);
    g->i16 = LLVMInt16TypeInContext(g->cx);
    g->i32 = LLVMInt32TypeInContext(g->cx);
    g->i64 = LLVMInt64TypeInContext(g->cx);
    g->f32 = LLVMFloatTypeInContext(g->cx);
    g->f64 = LLVMDoubleTypeInContext(g->cx);
    g->ptr = LLVMPointerTypeInContext(g->cx, 0);
    g->vd = LLVMVoidTypeInContext(g->cx);
    g->prof_kind = LLVMGetMDKindIDInContext(g->cx, "prof", 4);
    g->invariant_kind = LLVMGetMDKindIDInContext(g->cx, "invariant.load", 14);
    {
        LLVMMetadataRef md[3] = {
            LLVMMDStringInContext2(g->cx, "branch_weights", 14),
            LLVMValueAsMetadata(LLVMConstInt(g->i32, 1, 0)),
            LLVMValueAsMetadata(LLVMConstInt(g->i32, 1u << 20, 0)),
        };
        g->unlikely_md = LLVMMetadataAsValue(g->cx, LLVMMDNodeInContext2(g->cx, md, 3));
    }

    LLVMTargetRef target;
    char *msg = NULL;
    LLVMTargetMachineRef tm = NULL;
    LLVMPassBuilderOptionsRef pbo = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (LLVMGetTargetFromTriple(g_triple, &target, &msg)) {
        snprintf(err, errlen, "no LLVM target for %s: %s", g_triple ? g_triple : "?",
                 msg ? msg : "?");
        rc = ERR_INVALID;
        goto fail;
    }
    const char *cge = jit__codegen(o->level); /* none, less, fastisel, default */
    bool fast_isel = strcmp(cge, "fastisel") == 0;
    LLVMCodeGenOptLevel cgl = strcmp(cge, "none") == 0                ? LLVMCodeGenLevelNone
                              : fast_isel || strcmp(cge, "less") == 0 ? LLVMCodeGenLevelLess
                                                                      : LLVMCodeGenLevelDefault;
    tm = LLVMCreateTargetMachine(target, g_triple, g_cpu, g_features, cgl, LLVMRelocPIC,
                                 LLVMCodeModelSmall);
    if (fast_isel)
        LLVMSetTargetMachineFastISel(tm, 1);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(g->mod, td);
    LLVMDisposeTargetData(td);
    LLVMSetTarget(g->mod, g_triple);

    declare_helpers(g);
    g->fns = xcalloc(nc ? nc : 1, sizeof *g->fns);
    g->fntys = xcalloc(nc ? nc : 1, sizeof *g->fntys);
    LLVMValueRef *entries = xcalloc(nc ? nc : 1, sizeof *entries);
    LLVMValueRef *osrs = xcalloc(nc ? nc : 1, sizeof *osrs);
    LLVMTypeRef ety, oty;
    {
        LLVMTypeRef ep[2] = {g->ptr, g->ptr};
        ety = LLVMFunctionType(g->vd, ep, 2, 0);
        oty = NULL;
    }
    for (uint32_t k = 0; k < nc; k++) {
        if (o->sel && !o->sel[k])
            continue;
        if (o->sel && (o->sel[k] & JIT_SEL_OSR)) {
            char name[32];
            snprintf(name, sizeof name, "o%u", k);
            osrs[k] = declare(g, name, &oty, g->i32, (LLVMTypeRef[]){g->ptr, g->ptr, g->i32}, 3);
            LLVMSetLinkage(osrs[k], LLVMInternalLinkage);
        }
        if (o->sel && !(o->sel[k] & JIT_SEL_FN))
            continue; /* only the OSR entry */
        const wasm_ftype *t = code_type(m, k);
        LLVMTypeRef *ps = native_params(g, t);
        char name[32];
        snprintf(name, sizeof name, "f%u", k);
        g->fns[k] = declare(g, name, &g->fntys[k], ret_type(g, t), ps, t->nparams + 2);
        LLVMSetLinkage(g->fns[k], LLVMInternalLinkage);
        free(ps);
        snprintf(name, sizeof name, "e%u", k);
        entries[k] = LLVMAddFunction(g->mod, name, ety);
        LLVMSetLinkage(entries[k], LLVMInternalLinkage);
    }
    for (uint32_t k = 0; k < nc && !rc; k++) {
        if (g->fns[k])
            rc = gen_func(g, k, g->fns[k], false, err, errlen);
        if (!rc && g->fns[k])
            gen_entry(g, k, entries[k]);
        if (!rc && osrs[k])
            rc = gen_func(g, k, osrs[k], true, err, errlen);
    }
    uint32_t nsel = 0;
    for (uint32_t k = 0; k < nc && !rc; k++) {
        if (!g->fns[k] && !osrs[k])
            continue;
        /* compact the tables to the selected functions, in index order (NULL where a function
         * has only its OSR entry, or none) */
        g->fns[nsel] = g->fns[k] ? g->fns[k] : LLVMConstNull(g->ptr);
        entries[nsel] = entries[k] ? entries[k] : LLVMConstNull(g->ptr);
        osrs[nsel] = osrs[k] ? osrs[k] : LLVMConstNull(g->ptr);
        nsel++;
    }
    if (rc)
        goto fail_tables;
    fn_table(g, JIT_SYM_FNS, g->fns, nsel);
    fn_table(g, JIT_SYM_ENTRIES, entries, nsel);
    if (o->sel)
        fn_table(g, JIT_SYM_OSR, osrs, nsel);

    if (o->verify && LLVMVerifyModule(g->mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "IR verification failed: %.150s", msg);
        rc = ERR_INVALID;
        goto fail_tables;
    }
    if (msg) {
        LLVMDisposeMessage(msg);
        msg = NULL;
    }
    pbo = LLVMCreatePassBuilderOptions();
    const char *pipeline = jit__pipeline(o->level, g->nvec > 0);
    uint64_t t_opt = plat_now_ns();
    LLVMErrorRef e = LLVMRunPasses(g->mod, pipeline, tm, pbo);
    if (e) {
        char *em = LLVMGetErrorMessage(e);
        snprintf(err, errlen, "optimisation failed: %s", em);
        LLVMDisposeErrorMessage(em);
        rc = ERR_INVALID;
        goto fail_tables;
    }
    if (o->level != JIT_LEVEL_QUICK && jit__forced_level() != JIT_LEVEL_QUICK) {
        if (jit__order())
            jit__order_adds(g->mod);
        if (jit__remat())
            jit__remat_frame_addrs(g->mod);
    }
    const char *dump = getenv("PSL_JIT_DUMP");
    if (dump) {
        /* Each module to a new file: the named one, or when it exists "file.1", "file.2", ...
         * (the auto tier's batches), so that none overwrites another. A name is claimed by
         * creating the file (O_EXCL): the compiler processes that write them are forks, each
         * with its own count. */
        static _Atomic unsigned dumped;
        char path[4096];
        for (unsigned tries = 0; tries < 100000; tries++) {
            unsigned n = dumped++;
            if (n)
                snprintf(path, sizeof path, "%s.%u", dump, n);
            else
                snprintf(path, sizeof path, "%s", dump);
            FILE *df = fopen(path, "wx");
            if (df) {
                fclose(df);
                LLVMPrintModuleToFile(g->mod, path, NULL);
                break;
            }
            if (errno != EEXIST)
                break;
        }
    }
    uint64_t t_cg = plat_now_ns();
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, g->mod, LLVMObjectFile, &msg, &buf)) {
        snprintf(err, errlen, "code generation failed: %s", msg);
        rc = ERR_INVALID;
        goto fail_tables;
    }
    if (getenv("PSL_JIT_STATS"))
        fprintf(stderr, "psl: jit:   translate %.1f ms, optimise %.1f ms, codegen %.1f ms\n",
                (double)(t_opt - t_start) / 1e6, (double)(t_cg - t_opt) / 1e6,
                (double)(plat_now_ns() - t_cg) / 1e6);
    *len = LLVMGetBufferSize(buf);
    *obj = xmalloc(*len ? *len : 1);
    memcpy(*obj, LLVMGetBufferStart(buf), *len);
    LLVMDisposeMemoryBuffer(buf);
fail_tables:
    free(entries);
    free(osrs);
fail:
    if (msg)
        LLVMDisposeMessage(msg);
    if (pbo)
        LLVMDisposePassBuilderOptions(pbo);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    free(g->fns);
    free(g->fntys);
    LLVMDisposeBuilder(g->b);
    LLVMDisposeModule(g->mod);
    LLVMContextDispose(g->cx);
    return rc;
}
