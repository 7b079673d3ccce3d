/* Validation and lowering of function bodies, in one pass.
 *
 * The validator follows the spec's algorithm (operand stack of types, control frames, polymorphic
 * stack after unconditional branches). The same walk lowers the body into the interpreter's
 * register-style code: every operand-stack depth d has a fixed frame slot home(d) = nparams +
 * nlocals + d, so stack traffic becomes slot numbers resolved here, once. local.get and constants
 * are deferred on a virtual stack and folded into the consuming instruction's operands; an
 * instruction followed by local.set writes the local directly. Invariant: at every control-flow
 * merge point (block, loop, if, else, end, branch targets) each value lives in its home slot. */
#include "wasm/wasm_int.h"
#include "wasm/wasm_ops.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { V_STACK = 0, V_LOCAL = 1, V_CONST = 2 };
#define T_UNKNOWN 0

typedef struct vent {
    uint8_t type, kind;
    uint16_t local;
    uint64_t k;
} vent;

enum { F_FUNC, F_BLOCK, F_LOOP, F_IF, F_ELSE };

typedef struct cframe {
    uint8_t kind;
    bool unreachable; /* validation: stack is polymorphic */
    bool dead;        /* emission: code here can never run */
    bool dead_entry;  /* the frame was opened in dead code */
    bool branched;    /* some emitted branch targets the end label */
    uint32_t nparams, nresults;
    const uint8_t *params, *results;
    uint32_t height;
    uint32_t loop_pos;
    int64_t pending;   /* head of the chain of cells waiting for the end label, -1 if none */
    int64_t else_site; /* cell of the if's br_unless target, -1 if none */
} cframe;

typedef struct lower {
    const wasm_module *m;
    wasm_error *err;
    wasm_reader r;
    const void *const *h;
    /* function being lowered */
    const wasm_ftype *ft;
    const wasm_code *code;
    uint32_t nlocals_all; /* params + locals */
    uint32_t base;        /* first operand slot */
    /* virtual stack */
    vent *vs;
    uint32_t nvs, cap_vs, max_vs;
    /* control stack */
    cframe *cs;
    uint32_t ncs, cap_cs;
    /* output */
    wasm_cell *out;
    uint32_t nout, cap_out;
    uint32_t *relocs;
    uint32_t nrelocs, cap_relocs;
    /* peephole: the last emitted instruction wrote its result to home(last_depth) through the
     * a-field of cell last_dst, and nothing was emitted since (nout == last_end). */
    uint32_t last_dst, last_end, last_depth;
    int fail; /* first error code */
} lower;

static const uint8_t ty_i32[] = {WASM_I32}, ty_i64[] = {WASM_I64}, ty_f32[] = {WASM_F32},
                     ty_f64[] = {WASM_F64}, ty_fref[] = {WASM_FUNCREF}, ty_eref[] = {WASM_EXTERNREF};

static const uint8_t *single_type(uint8_t t) {
    switch (t) {
    case WASM_I32: return ty_i32;
    case WASM_I64: return ty_i64;
    case WASM_F32: return ty_f32;
    case WASM_F64: return ty_f64;
    case WASM_FUNCREF: return ty_fref;
    case WASM_EXTERNREF: return ty_eref;
    default: return NULL;
    }
}

static size_t pos(const lower *c) {
    return (size_t)(c->r.p - c->m->bytes);
}

/* Record the first error; later ones are ignored. Returns the code. */
__attribute__((format(printf, 3, 4))) static int lfail(lower *c, int code, const char *fmt, ...) {
    if (c->fail)
        return c->fail;
    c->fail = code;
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
        va_end(ap);
        c->err->offset = pos(c);
    }
    return code;
}

#define INVALID(...) lfail(c, ERR_INVALID, __VA_ARGS__)
#define MALFORMED(...) lfail(c, ERR_MALFORMED, __VA_ARGS__)

/* ---- emission ---- */

static cframe *top_frame(lower *c) {
    return &c->cs[c->ncs - 1];
}

static bool dead(lower *c) {
    return c->cs[c->ncs - 1].dead;
}

static uint32_t emit_cell(lower *c, wasm_cell v) {
    if (c->nout == c->cap_out) {
        c->cap_out = c->cap_out ? c->cap_out * 2 : 256;
        c->out = xrealloc(c->out, c->cap_out * sizeof *c->out);
    }
    c->out[c->nout] = v;
    return c->nout++;
}

static uint32_t emit_op(lower *c, wasm_op op) {
    wasm_cell v = {.h = c->h[op]};
    return emit_cell(c, v);
}

static uint32_t emit_slots(lower *c, uint32_t a, uint32_t b, uint32_t cc, uint32_t d) {
    wasm_cell v;
    v.s.a = (uint16_t)a;
    v.s.b = (uint16_t)b;
    v.s.c = (uint16_t)cc;
    v.s.d = (uint16_t)d;
    return emit_cell(c, v);
}

/* OP_copy's third operand: 1 when the copied value is an i32 or f32 (its slot's upper half is
 * zero), else 0. The interpreter ignores it; the JIT keeps 32-bit values in 32-bit variables. */
static uint32_t copy_w32(uint8_t type) {
    return type == WASM_I32 || type == WASM_F32;
}

static uint32_t emit_u64(lower *c, uint64_t x) {
    wasm_cell v = {.u64 = x};
    return emit_cell(c, v);
}

/* A cell that will hold a code address: stored as an index now, turned into a pointer at the end. */
static uint32_t emit_target(lower *c, uint64_t index) {
    uint32_t at = emit_u64(c, index);
    if (c->nrelocs == c->cap_relocs) {
        c->cap_relocs = c->cap_relocs ? c->cap_relocs * 2 : 64;
        c->relocs = xrealloc(c->relocs, c->cap_relocs * sizeof *c->relocs);
    }
    c->relocs[c->nrelocs++] = at;
    return at;
}

static void note_dst(lower *c, uint32_t slots_cell) {
    c->last_dst = slots_cell;
    c->last_end = c->nout;
    c->last_depth = c->nvs - 1;
}

static uint32_t home(const lower *c, uint32_t depth) {
    return c->base + depth;
}

/* ---- virtual stack ---- */

static void vpush(lower *c, uint8_t type, uint8_t kind, uint16_t local, uint64_t k) {
    if (c->nvs == c->cap_vs) {
        c->cap_vs = c->cap_vs ? c->cap_vs * 2 : 64;
        c->vs = xrealloc(c->vs, c->cap_vs * sizeof *c->vs);
    }
    c->vs[c->nvs++] = (vent){type, kind, local, k};
    if (c->nvs > c->max_vs)
        c->max_vs = c->nvs;
}

static void push(lower *c, uint8_t type) {
    vpush(c, type, V_STACK, 0, 0);
}

/* Put the entry at depth d into its home slot. */
static void materialize(lower *c, uint32_t d) {
    vent *e = &c->vs[d];
    if (e->kind == V_STACK)
        return;
    if (!dead(c)) {
        if (e->kind == V_LOCAL) {
            emit_op(c, OP_copy);
            emit_slots(c, home(c, d), e->local, copy_w32(e->type), 0);
        } else {
            emit_op(c, OP_const);
            emit_slots(c, home(c, d), 0, 0, 0);
            emit_u64(c, e->k);
        }
    }
    e->kind = V_STACK;
}

static void materialize_all(lower *c) {
    for (uint32_t d = 0; d < c->nvs; d++)
        materialize(c, d);
}

/* The slot holding the entry at depth d (materializing constants). */
static uint32_t use(lower *c, uint32_t d) {
    vent *e = &c->vs[d];
    if (e->kind == V_LOCAL)
        return e->local;
    materialize(c, d);
    return home(c, d);
}

static bool is_num(uint8_t t) {
    return t == WASM_I32 || t == WASM_I64 || t == WASM_F32 || t == WASM_F64 || t == T_UNKNOWN;
}

static bool is_ref(uint8_t t) {
    return t == WASM_FUNCREF || t == WASM_EXTERNREF || t == T_UNKNOWN;
}

/* Pop one operand (the spec's pop_val). Returns its type, T_UNKNOWN when polymorphic. */
static uint8_t pop_any(lower *c) {
    cframe *f = top_frame(c);
    if (c->nvs == f->height) {
        if (f->unreachable)
            return T_UNKNOWN;
        INVALID("type mismatch: operand stack underflow");
        return T_UNKNOWN;
    }
    return c->vs[--c->nvs].type;
}

static uint8_t pop_expect(lower *c, uint8_t want) {
    uint8_t t = pop_any(c);
    if (t != want && t != T_UNKNOWN && want != T_UNKNOWN)
        INVALID("type mismatch: expected %#x, found %#x", want, t);
    return t == T_UNKNOWN ? want : t;
}

/* Check that the top n entries have the given types, without popping. When the stack is
 * polymorphic below, missing entries are conjured as unknown (they can only occur in dead code). */
static void check_top(lower *c, const uint8_t *types, uint32_t n) {
    cframe *f = top_frame(c);
    uint32_t avail = c->nvs - f->height;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t want = types[n - 1 - i];
        if (i >= avail) {
            if (!f->unreachable)
                INVALID("type mismatch: operand stack underflow");
            return;
        }
        uint8_t t = c->vs[c->nvs - 1 - i].type;
        if (t != want && t != T_UNKNOWN)
            INVALID("type mismatch");
    }
}

/* Ensure the top n entries exist (conjuring unknowns in dead code) so that moves can be computed. */
static void fill_top(lower *c, const uint8_t *types, uint32_t n) {
    cframe *f = top_frame(c);
    uint32_t avail = c->nvs - f->height;
    if (avail >= n)
        return;
    /* Only reachable when the frame is unreachable: shift conjured entries under existing ones. */
    uint32_t missing = n - avail;
    for (uint32_t i = 0; i < missing; i++)
        vpush(c, T_UNKNOWN, V_STACK, 0, 0);
    memmove(&c->vs[f->height + missing], &c->vs[f->height], avail * sizeof *c->vs);
    for (uint32_t i = 0; i < missing; i++)
        c->vs[f->height + i] = (vent){types[i], V_STACK, 0, 0};
}

/* ---- labels and branches ---- */

static const uint8_t *label_types(const cframe *f, uint32_t *n) {
    if (f->kind == F_LOOP) {
        *n = f->nparams;
        return f->params;
    }
    *n = f->nresults;
    return f->results;
}

/* Compare-and-branch fusion. If the last instruction was an i32 compare (or eqz) whose result is
 * the condition at depth d and nothing was emitted since, remove it and describe it in *fc so the
 * branch can test the operands itself. */
typedef struct fused {
    int cmp; /* 0..9 index into the i32 compares (eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u),
                10 = eqz, -1 = nothing to fuse */
    bool ri;
    wasm_cell slots;
    uint64_t imm;
} fused;

static fused take_compare(lower *c, uint32_t d) {
    fused fc = {.cmp = -1};
    if (c->last_end != c->nout || c->last_depth != d || c->vs[d].kind != V_STACK)
        return fc;
    const void *h = c->out[c->last_dst - 1].h;
    int found = -1;
    if (h == c->h[OP_i32_eqz])
        found = 20;
    for (int j = 0; j < 20 && found < 0; j++)
        if (h == c->h[OP_i32_eq + j])
            found = j;
    if (found < 0)
        return fc;
    fc.cmp = found / 2;
    fc.ri = found < 20 && (found & 1);
    fc.slots = c->out[c->last_dst];
    if (fc.ri)
        fc.imm = c->out[c->last_dst + 1].u64;
    c->nout = c->last_dst - 1;
    c->last_end = UINT32_MAX;
    return fc;
}

/* Emit "branch to label when fc holds (or, with negate, when it does not)". */
static void emit_fused_branch(lower *c, const fused *fc, bool negate) {
    static const int inverse[10] = {1, 0, 8, 9, 6, 7, 4, 5, 2, 3};
    if (fc->cmp == 10) {
        /* eqz: taken when the operand is zero; negated, when it is not. */
        emit_op(c, negate ? OP_br_if : OP_brif_eqz);
        emit_slots(c, fc->slots.s.b, 0, 0, 0);
        return;
    }
    int k = negate ? inverse[fc->cmp] : fc->cmp;
    emit_op(c, (wasm_op)(OP_brif_i32_eq + 2 * k + (fc->ri ? 1 : 0)));
    emit_slots(c, 0, fc->slots.s.b, fc->slots.s.c, 0);
    if (fc->ri)
        emit_u64(c, fc->imm);
}

/* Emit the moves that put the top n values into label frame f's slots. */
static void emit_label_moves(lower *c, const cframe *f, uint32_t n) {
    uint32_t src0 = c->nvs - n;
    for (uint32_t i = 0; i < n; i++) {
        vent *e = &c->vs[src0 + i];
        uint32_t dst = home(c, f->height + i);
        if (e->kind == V_STACK) {
            if (src0 + i != f->height + i) {
                emit_op(c, OP_copy);
                emit_slots(c, dst, home(c, src0 + i), copy_w32(e->type), 0);
            }
        } else if (e->kind == V_LOCAL) {
            emit_op(c, OP_copy);
            emit_slots(c, dst, e->local, copy_w32(e->type), 0);
        } else {
            emit_op(c, OP_const);
            emit_slots(c, dst, 0, 0, 0);
            emit_u64(c, e->k);
        }
    }
}

static bool label_needs_moves(lower *c, const cframe *f, uint32_t n) {
    uint32_t src0 = c->nvs - n;
    for (uint32_t i = 0; i < n; i++) {
        vent *e = &c->vs[src0 + i];
        if (e->kind != V_STACK || src0 + i != f->height + i)
            return true;
    }
    return false;
}

/* Emit a target cell for a jump to label frame f (forward chains are patched at its end). */
static void emit_label_ref(lower *c, cframe *f) {
    if (f->kind == F_LOOP) {
        emit_target(c, f->loop_pos);
    } else {
        uint32_t at = emit_target(c, (uint64_t)f->pending);
        f->pending = at;
        f->branched = true;
    }
}

static void patch_chain(lower *c, int64_t head, uint32_t target) {
    while (head >= 0) {
        int64_t next = (int64_t)c->out[head].u64;
        c->out[head].u64 = target;
        head = next;
    }
}

/* Emit moves + return for the function's results (top nresults values). */
static void emit_return(lower *c) {
    const cframe *f = &c->cs[0];
    uint32_t n = f->nresults;
    uint32_t src0 = c->nvs - n;
    /* A result read from a local that an earlier move overwrites would be wrong: stage it. */
    if (n > 1)
        for (uint32_t i = 0; i < n; i++)
            if (c->vs[src0 + i].kind == V_LOCAL && c->vs[src0 + i].local < n)
                materialize(c, src0 + i);
    for (uint32_t i = 0; i < n; i++) {
        vent *e = &c->vs[src0 + i];
        if (e->kind == V_CONST) {
            emit_op(c, OP_const);
            emit_slots(c, i, 0, 0, 0);
            emit_u64(c, e->k);
        } else {
            uint32_t s = e->kind == V_LOCAL ? e->local : home(c, src0 + i);
            if (s != i) {
                emit_op(c, OP_copy);
                emit_slots(c, i, s, copy_w32(e->type), 0);
            }
        }
    }
    emit_op(c, OP_ret);
}

static void set_unreachable(lower *c) {
    cframe *f = top_frame(c);
    c->nvs = f->height;
    f->unreachable = true;
    f->dead = true;
}

static int push_frame(lower *c, uint8_t kind, uint32_t np, const uint8_t *pt, uint32_t nr,
                      const uint8_t *rt) {
    if (c->ncs == c->cap_cs) {
        c->cap_cs = c->cap_cs ? c->cap_cs * 2 : 16;
        c->cs = xrealloc(c->cs, c->cap_cs * sizeof *c->cs);
    }
    bool was_dead = c->ncs ? dead(c) : false;
    cframe *f = &c->cs[c->ncs++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->nparams = np;
    f->params = pt;
    f->nresults = nr;
    f->results = rt;
    f->height = c->nvs - np;
    f->dead = f->dead_entry = was_dead;
    f->pending = -1;
    f->else_site = -1;
    f->loop_pos = c->nout;
    return 0;
}

/* Read a block type: 0x40, a value type or a type index. */
static void read_blocktype(lower *c, uint32_t *np, const uint8_t **pt, uint32_t *nr,
                           const uint8_t **rt) {
    uint8_t b = c->r.p < c->r.end ? *c->r.p : 0;
    *np = *nr = 0;
    *pt = *rt = NULL;
    if (b == 0x40) {
        c->r.p++;
        return;
    }
    const uint8_t *st = single_type(b);
    if (st) {
        c->r.p++;
        *nr = 1;
        *rt = st;
        return;
    }
    int64_t idx = wasm__rd_s64(&c->r);
    if (c->r.bad)
        return;
    if ((b & 0x40) && idx < 0) {
        MALFORMED("malformed value type");
        return;
    }
    if (idx < 0 || idx >= (int64_t)c->m->ntypes || idx > 0xffffffffll) {
        INVALID("unknown type %lld", (long long)idx);
        return;
    }
    const wasm_ftype *t = &c->m->types[idx];
    *np = t->nparams;
    *pt = t->types;
    *nr = t->nresults;
    *rt = t->types + t->nparams;
}

static uint8_t local_type(lower *c, uint32_t idx) {
    if (idx < c->ft->nparams)
        return c->ft->types[idx];
    return c->code->local_types[idx - c->ft->nparams];
}

/* Pop the block's params after checking them, then push the frame and re-push the params. */
static void enter_block(lower *c, uint8_t kind, uint32_t np, const uint8_t *pt, uint32_t nr,
                        const uint8_t *rt) {
    for (uint32_t i = np; i-- > 0;)
        pop_expect(c, pt[i]);
    uint32_t h = c->nvs;
    push_frame(c, kind, 0, pt, nr, rt);
    cframe *f = top_frame(c);
    f->nparams = np;
    f->height = h;
    for (uint32_t i = 0; i < np; i++)
        push(c, pt[i]);
}

/* ---- numeric opcode table ---- */

enum { K_NONE, K_UN, K_BIN, K_NOP };
typedef struct numop {
    uint8_t kind, tin, tout;
    uint16_t op;
} numop;

#define NB(o, ti, to) {K_BIN, ti, to, OP_##o}
#define NU(o, ti, to) {K_UN, ti, to, OP_##o}
#define NN(ti, to) {K_NOP, ti, to, 0}
#define I32 WASM_I32
#define I64 WASM_I64
#define F32 WASM_F32
#define F64 WASM_F64

/* clang-format off */
static const numop numops[0xc5 - 0x45] = {
    NU(i32_eqz, I32, I32), NB(i32_eq, I32, I32), NB(i32_ne, I32, I32), NB(i32_lt_s, I32, I32),
    NB(i32_lt_u, I32, I32), NB(i32_gt_s, I32, I32), NB(i32_gt_u, I32, I32), NB(i32_le_s, I32, I32),
    NB(i32_le_u, I32, I32), NB(i32_ge_s, I32, I32), NB(i32_ge_u, I32, I32),
    NU(i64_eqz, I64, I32), NB(i64_eq, I64, I32), NB(i64_ne, I64, I32), NB(i64_lt_s, I64, I32),
    NB(i64_lt_u, I64, I32), NB(i64_gt_s, I64, I32), NB(i64_gt_u, I64, I32), NB(i64_le_s, I64, I32),
    NB(i64_le_u, I64, I32), NB(i64_ge_s, I64, I32), NB(i64_ge_u, I64, I32),
    NB(f32_eq, F32, I32), NB(f32_ne, F32, I32), NB(f32_lt, F32, I32), NB(f32_gt, F32, I32),
    NB(f32_le, F32, I32), NB(f32_ge, F32, I32),
    NB(f64_eq, F64, I32), NB(f64_ne, F64, I32), NB(f64_lt, F64, I32), NB(f64_gt, F64, I32),
    NB(f64_le, F64, I32), NB(f64_ge, F64, I32),
    NU(i32_clz, I32, I32), NU(i32_ctz, I32, I32), NU(i32_popcnt, I32, I32),
    NB(i32_add, I32, I32), NB(i32_sub, I32, I32), NB(i32_mul, I32, I32), NB(i32_div_s, I32, I32),
    NB(i32_div_u, I32, I32), NB(i32_rem_s, I32, I32), NB(i32_rem_u, I32, I32),
    NB(i32_and, I32, I32), NB(i32_or, I32, I32), NB(i32_xor, I32, I32), NB(i32_shl, I32, I32),
    NB(i32_shr_s, I32, I32), NB(i32_shr_u, I32, I32), NB(i32_rotl, I32, I32),
    NB(i32_rotr, I32, I32),
    NU(i64_clz, I64, I64), NU(i64_ctz, I64, I64), NU(i64_popcnt, I64, I64),
    NB(i64_add, I64, I64), NB(i64_sub, I64, I64), NB(i64_mul, I64, I64), NB(i64_div_s, I64, I64),
    NB(i64_div_u, I64, I64), NB(i64_rem_s, I64, I64), NB(i64_rem_u, I64, I64),
    NB(i64_and, I64, I64), NB(i64_or, I64, I64), NB(i64_xor, I64, I64), NB(i64_shl, I64, I64),
    NB(i64_shr_s, I64, I64), NB(i64_shr_u, I64, I64), NB(i64_rotl, I64, I64),
    NB(i64_rotr, I64, I64),
    NU(f32_abs, F32, F32), NU(f32_neg, F32, F32), NU(f32_ceil, F32, F32), NU(f32_floor, F32, F32),
    NU(f32_trunc, F32, F32), NU(f32_nearest, F32, F32), NU(f32_sqrt, F32, F32),
    NB(f32_add, F32, F32), NB(f32_sub, F32, F32), NB(f32_mul, F32, F32), NB(f32_div, F32, F32),
    NB(f32_min, F32, F32), NB(f32_max, F32, F32), NB(f32_copysign, F32, F32),
    NU(f64_abs, F64, F64), NU(f64_neg, F64, F64), NU(f64_ceil, F64, F64), NU(f64_floor, F64, F64),
    NU(f64_trunc, F64, F64), NU(f64_nearest, F64, F64), NU(f64_sqrt, F64, F64),
    NB(f64_add, F64, F64), NB(f64_sub, F64, F64), NB(f64_mul, F64, F64), NB(f64_div, F64, F64),
    NB(f64_min, F64, F64), NB(f64_max, F64, F64), NB(f64_copysign, F64, F64),
    NU(i32_wrap_i64, I64, I32), NU(i32_trunc_f32_s, F32, I32), NU(i32_trunc_f32_u, F32, I32),
    NU(i32_trunc_f64_s, F64, I32), NU(i32_trunc_f64_u, F64, I32),
    NU(i64_extend_i32_s, I32, I64), NN(I32, I64),
    NU(i64_trunc_f32_s, F32, I64), NU(i64_trunc_f32_u, F32, I64), NU(i64_trunc_f64_s, F64, I64),
    NU(i64_trunc_f64_u, F64, I64),
    NU(f32_convert_i32_s, I32, F32), NU(f32_convert_i32_u, I32, F32),
    NU(f32_convert_i64_s, I64, F32), NU(f32_convert_i64_u, I64, F32), NU(f32_demote_f64, F64, F32),
    NU(f64_convert_i32_s, I32, F64), NU(f64_convert_i32_u, I32, F64),
    NU(f64_convert_i64_s, I64, F64), NU(f64_convert_i64_u, I64, F64), NU(f64_promote_f32, F32, F64),
    NN(F32, I32), NN(F64, I64), NN(I32, F32), NN(I64, F64),
    NU(i32_extend8_s, I32, I32), NU(i32_extend16_s, I32, I32), NU(i64_extend8_s, I64, I64),
    NU(i64_extend16_s, I64, I64), NU(i64_extend32_s, I64, I64),
};
static const numop satops[8] = {
    NU(i32_trunc_sat_f32_s, F32, I32), NU(i32_trunc_sat_f32_u, F32, I32),
    NU(i32_trunc_sat_f64_s, F64, I32), NU(i32_trunc_sat_f64_u, F64, I32),
    NU(i64_trunc_sat_f32_s, F32, I64), NU(i64_trunc_sat_f32_u, F32, I64),
    NU(i64_trunc_sat_f64_s, F64, I64), NU(i64_trunc_sat_f64_u, F64, I64),
};
/* clang-format on */

static void lower_numop(lower *c, const numop *n) {
    if (n->kind == K_NOP) {
        /* reinterpret and i64.extend_i32_u: the slot's bits are already right (i32 and f32 slots
         * keep their upper 32 bits zero). */
        pop_expect(c, n->tin);
        cframe *f = top_frame(c);
        /* Nothing was popped on an underflow (c->fail) or a polymorphic stack: push afresh. */
        if (c->fail || (c->nvs == f->height && f->unreachable)) {
            push(c, n->tout);
            return;
        }
        /* The entry was popped; re-push it with the new type, keeping its location. */
        c->nvs++;
        c->vs[c->nvs - 1].type = n->tout;
        return;
    }
    if (n->kind == K_UN) {
        pop_expect(c, n->tin);
        uint32_t d = c->nvs;
        if (dead(c) || c->fail) {
            push(c, n->tout);
            return;
        }
        c->nvs++; /* keep the operand visible to use() */
        uint32_t src = use(c, d);
        c->nvs--;
        emit_op(c, (wasm_op)n->op);
        uint32_t sc = emit_slots(c, home(c, d), src, 0, 0);
        push(c, n->tout);
        note_dst(c, sc);
        return;
    }
    /* binary */
    pop_expect(c, n->tin);
    pop_expect(c, n->tin);
    uint32_t d = c->nvs;
    if (dead(c) || c->fail) {
        push(c, n->tout);
        return;
    }
    c->nvs += 2;
    vent *rhs = &c->vs[d + 1];
    uint32_t a = use(c, d);
    uint32_t sc;
    if (rhs->kind == V_CONST) {
        uint64_t k = rhs->k;
        c->nvs -= 2;
        emit_op(c, (wasm_op)(n->op + 1));
        sc = emit_slots(c, home(c, d), a, 0, 0);
        emit_u64(c, k);
    } else {
        uint32_t b = use(c, d + 1);
        c->nvs -= 2;
        emit_op(c, (wasm_op)n->op);
        sc = emit_slots(c, home(c, d), a, b, 0);
    }
    push(c, n->tout);
    note_dst(c, sc);
}

/* ---- memory ---- */

typedef struct memop {
    uint8_t op, natural, tval, store;
} memop;
static const memop memops[0x3f - 0x28] = {
    {OP_load32, 2, I32, 0},      {OP_load64, 3, I64, 0},     {OP_load32, 2, F32, 0},
    {OP_load64, 3, F64, 0},      {OP_load8_s32, 0, I32, 0},  {OP_load8_u, 0, I32, 0},
    {OP_load16_s32, 1, I32, 0},  {OP_load16_u, 1, I32, 0},   {OP_load8_s64, 0, I64, 0},
    {OP_load8_u, 0, I64, 0},     {OP_load16_s64, 1, I64, 0}, {OP_load16_u, 1, I64, 0},
    {OP_load32_s64, 2, I64, 0},  {OP_load32, 2, I64, 0},     {OP_store32, 2, I32, 1},
    {OP_store64, 3, I64, 1},     {OP_store32, 2, F32, 1},    {OP_store64, 3, F64, 1},
    {OP_store8, 0, I32, 1},      {OP_store16, 1, I32, 1},    {OP_store8, 0, I64, 1},
    {OP_store16, 1, I64, 1},     {OP_store32, 2, I64, 1},
};

static bool need_memory(lower *c) {
    if (c->m->nmems == 0) {
        INVALID("unknown memory 0");
        return false;
    }
    return true;
}

static void lower_memop(lower *c, uint8_t opc) {
    uint32_t align = wasm__rd_u32(&c->r);
    uint32_t offset = wasm__rd_u32(&c->r);
    if (c->r.bad)
        return;
    if (!need_memory(c))
        return;
    const memop *mo = &memops[opc - 0x28];
    if (align >= 32 || align > mo->natural) {
        INVALID("alignment must not be larger than natural");
        return;
    }
    if (mo->store) {
        pop_expect(c, mo->tval);
        pop_expect(c, I32);
        uint32_t d = c->nvs;
        if (dead(c) || c->fail)
            return;
        c->nvs += 2;
        uint32_t a = use(c, d), v = use(c, d + 1);
        c->nvs -= 2;
        emit_op(c, (wasm_op)mo->op);
        wasm_cell cell;
        cell.s.a = (uint16_t)a;
        cell.s.b = (uint16_t)v;
        cell.w.hi = offset;
        emit_cell(c, cell);
        return;
    }
    pop_expect(c, I32);
    uint32_t d = c->nvs;
    if (dead(c) || c->fail) {
        push(c, mo->tval);
        return;
    }
    c->nvs++;
    uint32_t a = use(c, d);
    c->nvs--;
    emit_op(c, (wasm_op)mo->op);
    wasm_cell cell;
    cell.s.a = (uint16_t)home(c, d);
    cell.s.b = (uint16_t)a;
    cell.w.hi = offset;
    uint32_t sc = emit_cell(c, cell);
    push(c, mo->tval);
    note_dst(c, sc);
}

/* ---- instructions with generic operand handling ---- */

/* Pop n operands of the given types (last is top), leave them visible in c->vs[d..d+n) and
 * return their slots (materialized). d = depth of the first. */
static uint32_t pop_operands(lower *c, const uint8_t *types, uint32_t n, uint32_t *slots) {
    for (uint32_t i = n; i-- > 0;)
        pop_expect(c, types[i]);
    uint32_t d = c->nvs;
    if (dead(c) || c->fail)
        return d;
    c->nvs += n;
    for (uint32_t i = 0; i < n; i++)
        slots[i] = use(c, d + i);
    c->nvs -= n;
    return d;
}

/* Pop three i32 operands and emit @p op with their slots (and @p d as the fourth slot field).
 * Returns false in dead code or after an error (nothing emitted); the caller then adds its
 * immediate cells only when it returns true. */
static bool emit_three_i32(lower *c, wasm_op op, uint32_t d) {
    static const uint8_t ts[3] = {WASM_I32, WASM_I32, WASM_I32};
    uint32_t sl[3];
    pop_operands(c, ts, 3, sl);
    if (dead(c) || c->fail)
        return false;
    emit_op(c, op);
    emit_slots(c, sl[0], sl[1], sl[2], d);
    return true;
}

static void check_table(lower *c, uint32_t t) {
    if (t >= c->m->ntables)
        INVALID("unknown table %u", t);
}

/* Read a table index immediate and check it. False when the read or the check failed. */
static bool read_table(lower *c, uint32_t *t) {
    *t = wasm__rd_u32(&c->r);
    if (c->r.bad)
        return false;
    check_table(c, *t);
    return !c->fail;
}

static void check_elem(lower *c, uint32_t e) {
    if (e >= c->m->nelems)
        INVALID("unknown elem segment %u", e);
}

static void check_data(lower *c, uint32_t x) {
    uint32_t n = c->m->has_datacount ? c->m->datacount : c->m->ndatas;
    if (x >= n)
        INVALID("unknown data segment %u", x);
    else if (!c->m->has_datacount)
        MALFORMED("data count section required");
}

static void lower_call(lower *c, uint32_t fidx, const wasm_ftype *t, bool indirect,
                       uint32_t tidx, uint32_t typeidx) {
    uint32_t idx_slot = 0;
    if (indirect) {
        pop_expect(c, I32);
        uint32_t d = c->nvs;
        if (!dead(c) && !c->fail) {
            c->nvs++;
            idx_slot = use(c, d);
            c->nvs--;
        }
    }
    for (uint32_t i = t->nparams; i-- > 0;)
        pop_expect(c, t->types[i]);
    uint32_t d = c->nvs;
    if (!dead(c) && !c->fail) {
        c->nvs += t->nparams;
        for (uint32_t i = 0; i < t->nparams; i++)
            materialize(c, d + i);
        c->nvs -= t->nparams;
        /* The callee's frame starts at home(d); it must stay in the 16-bit slot range. */
        if (indirect) {
            emit_op(c, OP_call_indirect);
            emit_slots(c, home(c, d), idx_slot, tidx, 0);
            emit_u64(c, typeidx);
        } else if (fidx < c->m->nimported_funcs) {
            emit_op(c, OP_call_import);
            emit_slots(c, home(c, d), 0, 0, 0);
            emit_u64(c, fidx);
        } else {
            emit_op(c, OP_call);
            emit_slots(c, home(c, d), 0, 0, 0);
            wasm_cell v = {.h = &c->m->codes[fidx - c->m->nimported_funcs]};
            emit_cell(c, v);
        }
    }
    for (uint32_t i = 0; i < t->nresults; i++)
        push(c, t->types[t->nparams + i]);
}

static void lower_local_set(lower *c, uint32_t x, bool tee) {
    if (x >= c->nlocals_all) {
        INVALID("unknown local %u", x);
        return;
    }
    uint8_t lt = local_type(c, x);
    pop_expect(c, lt);
    if (dead(c) || c->fail) {
        if (tee)
            push(c, lt);
        return;
    }
    uint32_t d = c->nvs;
    vent e = c->vs[d];
    /* Values deferred as "local x" must be read before x changes. */
    bool others = false;
    for (uint32_t i = 0; i < d; i++)
        if (c->vs[i].kind == V_LOCAL && c->vs[i].local == x)
            others = true;
    if (e.kind == V_STACK && !others && c->last_end == c->nout && c->last_depth == d) {
        c->out[c->last_dst].s.a = (uint16_t)x; /* the producer writes the local directly */
    } else {
        if (others)
            for (uint32_t i = 0; i < d; i++)
                if (c->vs[i].kind == V_LOCAL && c->vs[i].local == x)
                    materialize(c, i);
        if (e.kind == V_CONST) {
            emit_op(c, OP_const);
            emit_slots(c, x, 0, 0, 0);
            emit_u64(c, e.k);
        } else {
            uint32_t src = e.kind == V_LOCAL ? e.local : home(c, d);
            if (src != x) {
                emit_op(c, OP_copy);
                emit_slots(c, x, src, copy_w32(e.type), 0);
            }
        }
    }
    c->last_end = UINT32_MAX;
    if (tee)
        vpush(c, lt, V_LOCAL, (uint16_t)x, 0);
}

/* ---- the body walk ---- */

static int lower_body(lower *c) {
    wasm_reader *r = &c->r;
    const wasm_module *m = c->m;

    push_frame(c, F_FUNC, 0, NULL, c->ft->nresults, c->ft->types + c->ft->nparams);

    while (!c->fail) {
        if (r->bad)
            return MALFORMED("%s", r->bad);
        if (r->p >= r->end)
            return MALFORMED("unexpected end of section or function");
        uint8_t op = *r->p++;
        cframe *f = top_frame(c);
        switch (op) {
        case 0x00: /* unreachable */
            if (!dead(c))
                emit_op(c, OP_unreachable);
            set_unreachable(c);
            break;
        case 0x01: /* nop */
            break;
        case 0x02:   /* block */
        case 0x03: { /* loop */
            uint32_t np, nr;
            const uint8_t *pt, *rt;
            read_blocktype(c, &np, &pt, &nr, &rt);
            if (c->fail || r->bad)
                break;
            if (!dead(c))
                materialize_all(c);
            enter_block(c, op == 0x02 ? F_BLOCK : F_LOOP, np, pt, nr, rt);
            top_frame(c)->loop_pos = c->nout;
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x04: { /* if */
            uint32_t np, nr;
            const uint8_t *pt, *rt;
            read_blocktype(c, &np, &pt, &nr, &rt);
            if (c->fail || r->bad)
                break;
            pop_expect(c, I32);
            if (c->fail)
                break;
            uint32_t cond = 0;
            bool was_dead = dead(c);
            fused fc = {.cmp = -1};
            if (!was_dead) {
                fc = take_compare(c, c->nvs);
                materialize_all(c);
                c->nvs++;
                if (fc.cmp < 0)
                    cond = use(c, c->nvs - 1);
                c->nvs--;
            }
            enter_block(c, F_IF, np, pt, nr, rt);
            cframe *nf = top_frame(c);
            if (!was_dead) {
                if (fc.cmp >= 0) {
                    emit_fused_branch(c, &fc, true);
                } else {
                    emit_op(c, OP_br_unless);
                    emit_slots(c, cond, 0, 0, 0);
                }
                nf->else_site = emit_target(c, 0);
            }
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x05: { /* else */
            if (f->kind != F_IF)
                return MALFORMED("else without if");
            check_top(c, f->results, f->nresults);
            if (c->nvs - f->height != f->nresults && !f->unreachable)
                return INVALID("type mismatch: wrong number of values at end of block");
            if (c->nvs - f->height > f->nresults)
                return INVALID("type mismatch: wrong number of values at end of block");
            if (!f->dead) {
                fill_top(c, f->results, f->nresults);
                materialize_all(c);
                emit_op(c, OP_br);
                emit_label_ref(c, f);
            }
            if (f->else_site >= 0) {
                c->out[f->else_site].u64 = c->nout;
                f->else_site = -1;
            }
            f->kind = F_ELSE;
            c->nvs = f->height;
            for (uint32_t i = 0; i < f->nparams; i++)
                push(c, f->params[i]);
            f->unreachable = false;
            f->dead = f->dead_entry;
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x0b: { /* end */
            check_top(c, f->results, f->nresults);
            if (c->nvs - f->height > f->nresults ||
                (c->nvs - f->height < f->nresults && !f->unreachable))
                return INVALID("type mismatch: wrong number of values at end of block");
            if (f->kind == F_IF && f->nparams != f->nresults)
                return INVALID("type mismatch: if without else must not change the stack");
            if (f->kind == F_IF)
                for (uint32_t i = 0; i < f->nparams; i++)
                    if (f->params[i] != f->results[i])
                        return INVALID("type mismatch: if without else");
            if (f->kind == F_FUNC) {
                bool live = !f->dead || f->branched;
                if (!f->dead) {
                    fill_top(c, f->results, f->nresults);
                    materialize_all(c);
                }
                patch_chain(c, f->pending, c->nout);
                c->nvs = f->height;
                for (uint32_t i = 0; i < f->nresults; i++)
                    push(c, f->results[i]);
                if (live)
                    emit_return(c);
                c->ncs--;
                if (r->p != r->end)
                    return MALFORMED("section size mismatch: operators after the function's end");
                return c->fail;
            }
            bool fallthrough = !f->dead;
            if (fallthrough) {
                fill_top(c, f->results, f->nresults);
                materialize_all(c);
            }
            bool live = fallthrough || f->branched || (f->else_site >= 0);
            if (f->else_site >= 0)
                c->out[f->else_site].u64 = c->nout;
            patch_chain(c, f->pending, c->nout);
            uint32_t h = f->height, nr = f->nresults;
            const uint8_t *rt = f->results;
            bool dead_entry = f->dead_entry;
            c->ncs--;
            c->nvs = h;
            for (uint32_t i = 0; i < nr; i++)
                push(c, rt[i]);
            /* After a block nobody reaches, the parent's following code is dead for emission
             * (but validates as reachable, as the spec says). */
            top_frame(c)->dead = dead_entry || !live;
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x0c:   /* br */
        case 0x0d: { /* br_if */
            uint32_t l = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (l >= c->ncs)
                return INVALID("unknown label %u", l);
            cframe *lf = &c->cs[c->ncs - 1 - l];
            uint32_t n;
            const uint8_t *lt = label_types(lf, &n);
            if (op == 0x0c) {
                check_top(c, lt, n);
                if (!dead(c) && !c->fail) {
                    fill_top(c, lt, n);
                    if (lf->kind == F_FUNC) {
                        emit_return(c);
                    } else {
                        emit_label_moves(c, lf, n);
                        emit_op(c, lf->kind == F_LOOP ? OP_br_back : OP_br);
                        emit_label_ref(c, lf);
                    }
                }
                set_unreachable(c);
                break;
            }
            pop_expect(c, I32);
            uint32_t d = c->nvs;
            check_top(c, lt, n);
            if (c->fail)
                break;
            if (!dead(c)) {
                c->nvs++;
                uint32_t cond = use(c, d);
                c->nvs--;
                if (c->nvs - f->height < n) {
                    /* unreachable stack: nothing to emit */
                } else if (!label_needs_moves(c, lf, n)) {
                    fused fc = take_compare(c, d);
                    if (fc.cmp >= 0) {
                        emit_fused_branch(c, &fc, false);
                    } else {
                        emit_op(c, lf->kind == F_LOOP ? OP_br_if_back : OP_br_if);
                        emit_slots(c, cond, 0, 0, 0);
                    }
                    emit_label_ref(c, lf);
                } else {
                    emit_op(c, OP_br_unless);
                    emit_slots(c, cond, 0, 0, 0);
                    uint32_t skip = emit_target(c, 0);
                    emit_label_moves(c, lf, n);
                    emit_op(c, lf->kind == F_LOOP ? OP_br_back : OP_br);
                    emit_label_ref(c, lf);
                    c->out[skip].u64 = c->nout;
                }
            }
            /* br_if pops and re-pushes the label types (the operands keep their places). */
            fill_top(c, lt, n);
            for (uint32_t i = 0; i < n; i++)
                c->vs[c->nvs - n + i].type = lt[i];
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x0e: { /* br_table */
            uint32_t cnt = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (cnt > (uint32_t)(r->end - r->p))
                return MALFORMED("unexpected end: br_table too long");
            uint32_t *labels = xmalloc(((size_t)cnt + 1) * sizeof *labels);
            for (uint32_t i = 0; i <= cnt && !r->bad; i++)
                labels[i] = wasm__rd_u32(r);
            if (r->bad) {
                free(labels);
                break;
            }
            pop_expect(c, I32);
            uint32_t d = c->nvs;
            uint32_t arity = 0;
            for (uint32_t i = 0; i <= cnt && !c->fail; i++) {
                if (labels[i] >= c->ncs) {
                    INVALID("unknown label %u", labels[i]);
                    break;
                }
                uint32_t n;
                const uint8_t *lt = label_types(&c->cs[c->ncs - 1 - labels[i]], &n);
                if (i == 0)
                    arity = n;
                else if (n != arity)
                    INVALID("type mismatch: br_table labels have different arities");
                check_top(c, lt, n);
            }
            if (!c->fail && !dead(c)) {
                c->nvs++;
                uint32_t idx = use(c, d);
                c->nvs--;
                uint32_t n0;
                const uint8_t *lt0 = label_types(&c->cs[c->ncs - 1 - labels[cnt]], &n0);
                fill_top(c, lt0, n0);
                emit_op(c, OP_br_table);
                emit_slots(c, idx, 0, 0, 0);
                emit_u64(c, cnt);
                uint32_t first = c->nout;
                for (uint32_t i = 0; i <= cnt; i++)
                    emit_target(c, 0);
                for (uint32_t i = 0; i <= cnt; i++) {
                    cframe *lf = &c->cs[c->ncs - 1 - labels[i]];
                    uint32_t n;
                    label_types(lf, &n);
                    if (!label_needs_moves(c, lf, n)) {
                        /* Jump straight to the label: reuse the cell as a chain link. */
                        if (lf->kind == F_LOOP) {
                            c->out[first + i].u64 = lf->loop_pos;
                        } else {
                            c->out[first + i].u64 = (uint64_t)lf->pending;
                            lf->pending = first + i;
                            lf->branched = true;
                        }
                    } else {
                        c->out[first + i].u64 = c->nout;
                        emit_label_moves(c, lf, n);
                        emit_op(c, OP_br);
                        emit_label_ref(c, lf);
                    }
                }
            }
            free(labels);
            set_unreachable(c);
            break;
        }
        case 0x0f: /* return */
            check_top(c, c->cs[0].results, c->cs[0].nresults);
            if (!dead(c) && !c->fail) {
                fill_top(c, c->cs[0].results, c->cs[0].nresults);
                emit_return(c);
            }
            set_unreachable(c);
            break;
        case 0x10: { /* call */
            uint32_t fi = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (fi >= m->nfuncs)
                return INVALID("unknown function %u", fi);
            lower_call(c, fi, &m->types[m->func_types[fi]], false, 0, 0);
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x11: { /* call_indirect */
            uint32_t ti = wasm__rd_u32(r);
            uint32_t tab = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (tab >= m->ntables)
                return INVALID("unknown table %u", tab);
            if (ti >= m->ntypes)
                return INVALID("unknown type %u", ti);
            if (m->tables[tab].elemtype != WASM_FUNCREF)
                return INVALID("type mismatch: call_indirect on a table of externref");
            lower_call(c, 0, &m->types[ti], true, tab, ti);
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x1a: /* drop */
            pop_any(c);
            break;
        case 0x1b:   /* select */
        case 0x1c: { /* select t */
            uint8_t t = T_UNKNOWN;
            if (op == 0x1c) {
                uint32_t n = wasm__rd_u32(r);
                if (r->bad)
                    break;
                if (n != 1)
                    return INVALID("invalid result arity for select");
                t = wasm__rd_u8(r);
                if (r->bad)
                    break;
                if (!single_type(t))
                    return MALFORMED("malformed value type %#x", t);
            }
            pop_expect(c, I32);
            uint8_t t2 = pop_any(c);
            uint8_t t1 = pop_any(c);
            if (op == 0x1b) {
                if (!is_num(t1) || !is_num(t2))
                    return INVALID("type mismatch: select needs numeric operands");
                if (t1 != t2 && t1 != T_UNKNOWN && t2 != T_UNKNOWN)
                    return INVALID("type mismatch: select operands differ");
                t = t1 == T_UNKNOWN ? t2 : t1;
            } else {
                if ((t1 != t && t1 != T_UNKNOWN) || (t2 != t && t2 != T_UNKNOWN))
                    return INVALID("type mismatch in select");
            }
            uint32_t d = c->nvs;
            if (!dead(c) && !c->fail) {
                c->nvs += 3;
                uint32_t a = use(c, d), b = use(c, d + 1), cc = use(c, d + 2);
                c->nvs -= 3;
                emit_op(c, OP_select);
                uint32_t sc = emit_slots(c, home(c, d), a, b, cc);
                push(c, t);
                note_dst(c, sc);
            } else {
                push(c, t);
            }
            break;
        }
        case 0x20: { /* local.get */
            uint32_t x = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (x >= c->nlocals_all)
                return INVALID("unknown local %u", x);
            vpush(c, local_type(c, x), V_LOCAL, (uint16_t)x, 0);
            break;
        }
        case 0x21:
        case 0x22: {
            uint32_t x = wasm__rd_u32(r);
            if (r->bad)
                break;
            lower_local_set(c, x, op == 0x22);
            break;
        }
        case 0x23: { /* global.get */
            uint32_t g = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (g >= m->nglobals)
                return INVALID("unknown global %u", g);
            if (!dead(c)) {
                emit_op(c, OP_global_get);
                uint32_t sc = emit_slots(c, home(c, c->nvs), 0, 0, 0);
                emit_u64(c, g);
                push(c, m->globals[g].type);
                note_dst(c, sc);
            } else {
                push(c, m->globals[g].type);
            }
            break;
        }
        case 0x24: { /* global.set */
            uint32_t g = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (g >= m->nglobals)
                return INVALID("unknown global %u", g);
            if (!m->globals[g].mut)
                return INVALID("global is immutable");
            uint32_t s;
            pop_operands(c, &m->globals[g].type, 1, &s);
            if (!dead(c) && !c->fail) {
                emit_op(c, OP_global_set);
                emit_slots(c, s, 0, 0, 0);
                emit_u64(c, g);
            }
            break;
        }
        case 0x25: /* table.get */
        case 0x26: { /* table.set */
            uint32_t t;
            if (!read_table(c, &t))
                break;
            uint8_t et = m->tables[t].elemtype;
            if (op == 0x25) {
                uint32_t s;
                uint32_t d = pop_operands(c, ty_i32, 1, &s);
                if (!dead(c) && !c->fail) {
                    emit_op(c, OP_table_get);
                    emit_slots(c, home(c, d), s, t, 0);
                }
                push(c, et);
            } else {
                uint8_t ts[2] = {WASM_I32, et};
                uint32_t s[2];
                pop_operands(c, ts, 2, s);
                if (!dead(c) && !c->fail) {
                    emit_op(c, OP_table_set);
                    emit_slots(c, s[0], s[1], t, 0);
                }
            }
            c->last_end = UINT32_MAX;
            break;
        }
        case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e: case 0x2f:
        case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x36: case 0x37:
        case 0x38: case 0x39: case 0x3a: case 0x3b: case 0x3c: case 0x3d: case 0x3e:
            lower_memop(c, op);
            break;
        case 0x3f:   /* memory.size */
        case 0x40: { /* memory.grow */
            uint8_t z = wasm__rd_u8(r);
            if (r->bad)
                break;
            if (z != 0)
                return MALFORMED("zero byte expected");
            if (!need_memory(c))
                break;
            if (op == 0x3f) {
                if (!dead(c)) {
                    emit_op(c, OP_memory_size);
                    uint32_t sc = emit_slots(c, home(c, c->nvs), 0, 0, 0);
                    push(c, I32);
                    note_dst(c, sc);
                } else {
                    push(c, I32);
                }
            } else {
                uint32_t s;
                uint32_t d = pop_operands(c, ty_i32, 1, &s);
                if (!dead(c) && !c->fail) {
                    emit_op(c, OP_memory_grow);
                    uint32_t sc = emit_slots(c, home(c, d), s, 0, 0);
                    push(c, I32);
                    note_dst(c, sc);
                } else {
                    push(c, I32);
                }
            }
            break;
        }
        case 0x41: { /* i32.const */
            int32_t v = wasm__rd_s32(r);
            vpush(c, I32, V_CONST, 0, (uint32_t)v);
            break;
        }
        case 0x42: {
            int64_t v = wasm__rd_s64(r);
            vpush(c, I64, V_CONST, 0, (uint64_t)v);
            break;
        }
        case 0x43: {
            if (r->end - r->p < 4)
                return MALFORMED("unexpected end");
            uint32_t v;
            memcpy(&v, r->p, 4);
            r->p += 4;
            vpush(c, F32, V_CONST, 0, v);
            break;
        }
        case 0x44: {
            if (r->end - r->p < 8)
                return MALFORMED("unexpected end");
            uint64_t v;
            memcpy(&v, r->p, 8);
            r->p += 8;
            vpush(c, F64, V_CONST, 0, v);
            break;
        }
        case 0xd0: { /* ref.null t */
            uint8_t t = wasm__rd_u8(r);
            if (r->bad)
                break;
            if (t != WASM_FUNCREF && t != WASM_EXTERNREF)
                return MALFORMED("malformed reference type %#x", t);
            vpush(c, t, V_CONST, 0, 0);
            break;
        }
        case 0xd1: { /* ref.is_null */
            uint8_t t = pop_any(c);
            if (!is_ref(t))
                return INVALID("type mismatch: ref.is_null needs a reference");
            uint32_t d = c->nvs;
            if (!dead(c) && !c->fail) {
                c->nvs++;
                uint32_t s = use(c, d);
                c->nvs--;
                emit_op(c, OP_ref_is_null);
                uint32_t sc = emit_slots(c, home(c, d), s, 0, 0);
                push(c, I32);
                note_dst(c, sc);
            } else {
                push(c, I32);
            }
            break;
        }
        case 0xd2: { /* ref.func */
            uint32_t fi = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (fi >= m->nfuncs)
                return INVALID("unknown function %u", fi);
            if (!m->declared_funcs || !m->declared_funcs[fi])
                return INVALID("undeclared function reference %u", fi);
            if (!dead(c)) {
                emit_op(c, OP_ref_func);
                uint32_t sc = emit_slots(c, home(c, c->nvs), 0, 0, 0);
                emit_u64(c, fi);
                push(c, WASM_FUNCREF);
                note_dst(c, sc);
            } else {
                push(c, WASM_FUNCREF);
            }
            break;
        }
        case 0xfc: {
            uint32_t sub = wasm__rd_u32(r);
            if (r->bad)
                break;
            if (sub < 8) {
                lower_numop(c, &satops[sub]);
                break;
            }
            switch (sub) {
            case 8: { /* memory.init x 0 */
                uint32_t x = wasm__rd_u32(r);
                uint8_t z = wasm__rd_u8(r);
                if (r->bad)
                    break;
                if (z != 0)
                    return MALFORMED("zero byte expected");
                if (!need_memory(c))
                    break;
                check_data(c, x);
                if (emit_three_i32(c, OP_memory_init, 0))
                    emit_u64(c, x);
                break;
            }
            case 9: { /* data.drop */
                uint32_t x = wasm__rd_u32(r);
                if (r->bad)
                    break;
                check_data(c, x);
                if (!dead(c) && !c->fail) {
                    emit_op(c, OP_data_drop);
                    emit_u64(c, x);
                }
                break;
            }
            case 10: /* memory.copy 0 0 */
            case 11: { /* memory.fill 0 */
                uint8_t z = wasm__rd_u8(r);
                if (sub == 10 && !r->bad && z == 0)
                    z = wasm__rd_u8(r);
                if (r->bad)
                    break;
                if (z != 0)
                    return MALFORMED("zero byte expected");
                if (!need_memory(c))
                    break;
                emit_three_i32(c, sub == 10 ? OP_memory_copy : OP_memory_fill, 0);
                break;
            }
            case 12: { /* table.init elem table */
                uint32_t e = wasm__rd_u32(r);
                uint32_t t = wasm__rd_u32(r);
                if (r->bad)
                    break;
                check_table(c, t);
                check_elem(c, e);
                if (c->fail)
                    break;
                if (m->elems[e].elemtype != m->tables[t].elemtype)
                    return INVALID("type mismatch: table.init element type");
                if (emit_three_i32(c, OP_table_init, t))
                    emit_u64(c, e);
                break;
            }
            case 13: { /* elem.drop */
                uint32_t e = wasm__rd_u32(r);
                if (r->bad)
                    break;
                check_elem(c, e);
                if (!dead(c) && !c->fail) {
                    emit_op(c, OP_elem_drop);
                    emit_u64(c, e);
                }
                break;
            }
            case 14: { /* table.copy dst src */
                uint32_t td = wasm__rd_u32(r);
                uint32_t ts_ = wasm__rd_u32(r);
                if (r->bad)
                    break;
                check_table(c, td);
                check_table(c, ts_);
                if (c->fail)
                    break;
                if (m->tables[td].elemtype != m->tables[ts_].elemtype)
                    return INVALID("type mismatch: table.copy element types");
                if (emit_three_i32(c, OP_table_copy, 0)) {
                    wasm_cell v;
                    v.w.lo = td;
                    v.w.hi = ts_;
                    emit_cell(c, v);
                }
                break;
            }
            case 15: /* table.grow */
            case 17: { /* table.fill */
                uint32_t t;
                if (!read_table(c, &t))
                    break;
                uint8_t et = m->tables[t].elemtype;
                if (sub == 15) {
                    uint8_t ts[2] = {et, I32};
                    uint32_t s[2];
                    uint32_t d = pop_operands(c, ts, 2, s);
                    if (!dead(c) && !c->fail) {
                        emit_op(c, OP_table_grow);
                        uint32_t sc = emit_slots(c, home(c, d), s[0], s[1], t);
                        push(c, I32);
                        note_dst(c, sc);
                    } else {
                        push(c, I32);
                    }
                } else {
                    uint8_t ts[3] = {I32, et, I32};
                    uint32_t s[3];
                    pop_operands(c, ts, 3, s);
                    if (!dead(c) && !c->fail) {
                        emit_op(c, OP_table_fill);
                        emit_slots(c, s[0], s[1], s[2], t);
                    }
                }
                break;
            }
            case 16: { /* table.size */
                uint32_t t;
                if (!read_table(c, &t))
                    break;
                if (!dead(c)) {
                    emit_op(c, OP_table_size);
                    uint32_t sc = emit_slots(c, home(c, c->nvs), t, 0, 0);
                    push(c, I32);
                    note_dst(c, sc);
                } else {
                    push(c, I32);
                }
                break;
            }
            default:
                return MALFORMED("illegal opcode 0xfc %u", sub);
            }
            break;
        }
        default:
            if (op >= 0x45 && op <= 0xc4) {
                lower_numop(c, &numops[op - 0x45]);
                break;
            }
            return MALFORMED("illegal opcode %#x", op);
        }
    }
    return c->fail;
}

static int lower_func(lower *c, uint32_t fidx) {
    const wasm_module *m = c->m;
    wasm_code *code = &((wasm_module *)m)->codes[fidx - m->nimported_funcs];
    c->ft = &m->types[m->func_types[fidx]];
    c->code = code;
    c->nlocals_all = c->ft->nparams + code->nlocals;
    code->nparams = c->ft->nparams;
    c->base = c->nlocals_all;
    c->nvs = c->max_vs = 0;
    c->ncs = 0;
    c->nout = 0;
    c->nrelocs = 0;
    c->last_end = UINT32_MAX;
    c->r.base = m->bytes;
    c->r.p = m->bytes + code->body_off;
    c->r.end = m->bytes + code->body_off + code->body_len;
    c->r.bad = NULL;
    int rc = lower_body(c);
    if (rc)
        return rc;
    if (c->r.bad)
        return MALFORMED("%s", c->r.bad);
    /* Scratch: calls may write up to max(nparams, nresults) slots above an operand. */
    uint64_t nslots = (uint64_t)c->base + c->max_vs + 2;
    if (nslots > 0xffff)
        return lfail(c, ERR_LIMIT, "function %u needs %llu frame slots; the interpreter allows 65535",
                     fidx, (unsigned long long)nslots);
    code->nslots = (uint32_t)nslots;
    code->code = xmalloc(c->nout * sizeof *code->code);
    memcpy(code->code, c->out, c->nout * sizeof *code->code);
    code->ncode = c->nout;
    for (uint32_t i = 0; i < c->nrelocs; i++)
        code->code[c->relocs[i]].target = code->code + code->code[c->relocs[i]].u64;
    return 0;
}

int wasm__lower_all(wasm_module *m, wasm_error *err) {
    lower c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.err = err;
    c.h = wasm__interp_handlers();
    int rc = 0;
    for (uint32_t i = m->nimported_funcs; i < m->nfuncs && !rc; i++)
        rc = lower_func(&c, i);
    free(c.vs);
    free(c.cs);
    free(c.out);
    free(c.relocs);
    return rc;
}

int wasm_module_load(const uint8_t *bytes, size_t len, wasm_module **out, wasm_error *err) {
    wasm_module *m = xcalloc(1, sizeof *m);
    if (err) {
        err->msg[0] = 0;
        err->offset = SIZE_MAX;
    }
    m->bytes = xmalloc(len ? len : 1);
    memcpy(m->bytes, bytes, len);
    m->len = len;
    m->start = -1;
    int rc = wasm__decode(m, err);
    if (!rc)
        rc = wasm__lower_all(m, err);
    if (rc) {
        wasm_module_free(m);
        *out = NULL;
        return rc;
    }
    if (wasm__tier && wasm__tier->module_loaded)
        wasm__tier->module_loaded(m);
    *out = m;
    return 0;
}

void wasm_module_free(wasm_module *m) {
    if (!m)
        return;
    if (m->tier_data && wasm__tier && wasm__tier->module_freed)
        wasm__tier->module_freed(m);
    wasm__module_clear(m);
    free(m);
}
