/* Frame addresses recomputed where they are used: a pass over the optimised IR, before code
 * generation (part of psljit.so, beside jit_gen.c and jit_order.c).
 *
 * clang's wasm code computes the addresses of a function's stack-frame objects once, at its
 * entry, as locals (`sp - 880`, then `+ 68`, `+ 80`, `| 8`, ...), and uses them all through the
 * function. Native code addresses its frame from the stack pointer at each use; here every such
 * value is a 32-bit virtual register live across the whole function, and in a big function
 * (musl's printf_core: twenty of them) the register allocator computes them all in the
 * prologue and spills them, on every call, whether the call uses them or not.
 *
 * The pass gives each block that uses such a value its own copy, computed at the block's start
 * from the one value they derive from. It copies the prologue's instructions (the entry block
 * and the blocks after it that the entry checks lead to, each entered only from the one before:
 * together they dominate the rest) that add, subtract, or, xor or and a constant to an argument
 * or another prologue instruction, and zero extensions of those, where they are used outside the
 * prologue. The original is erased when nothing uses it any more. Code generation then leaves
 * the copies where they are when registers are short, and its loop-invariant code motion hoists
 * them out of loops again where registers are free, so a small function's loop does not compute
 * them per iteration (sha256's round loop is the same instructions with and without the pass).
 * On expr, 3.4 % fewer instructions run (callgrind, warm, expr 6000: 1313.5 M -> 1268.7 M). */
#include "jit/jit_int.h"

#include "base/base.h"
#include "base/map.h"

#include <llvm-c/Core.h>

#include <stdint.h>
#include <stdlib.h>

/* A copy of prologue instruction orig in block bb; {orig, bb} is its key in the map. */
typedef struct copy {
    LLVMValueRef orig;
    LLVMBasicBlockRef bb;
    LLVMValueRef val;
} copy;

/* Where a block's copies go: before its first non-phi instruction as it was before the pass. */
typedef struct anchor {
    LLVMBasicBlockRef bb;
    LLVMValueRef at;
} anchor;

enum { PROLOGUE_MAX = 8 };

typedef struct remat {
    LLVMBasicBlockRef pro[PROLOGUE_MAX]; /* the prologue: entry, then blocks each entered only
                                          * from the one before (the frame checks' paths) */
    unsigned npro;
    map copies;   /* {orig, bb} -> copy */
    map anchors;  /* bb -> anchor */
    void **owned; /* every copy and anchor, freed at the end */
    size_t nowned, capowned;
    LLVMBuilderRef b;
} remat;

static bool in_prologue(const remat *r, LLVMBasicBlockRef bb) {
    for (unsigned i = 0; i < r->npro; i++)
        if (r->pro[i] == bb)
            return true;
    return false;
}

static void *own(remat *r, size_t size) {
    if (r->nowned == r->capowned) {
        r->capowned = r->capowned ? 2 * r->capowned : 64;
        r->owned = xrealloc(r->owned, r->capowned * sizeof *r->owned);
    }
    return r->owned[r->nowned++] = xmalloc(size);
}

/* Whether v is an instruction the pass copies: in the prologue, a binary operator with a
 * constant operand whose other operand is an argument or a prologue instruction, or a zero
 * extension of such an operator. */
static bool candidate(const remat *r, LLVMValueRef v) {
    if (!LLVMIsAInstruction(v) || !in_prologue(r, LLVMGetInstructionParent(v)))
        return false;
    switch (LLVMGetInstructionOpcode(v)) {
    case LLVMAdd:
    case LLVMSub:
    case LLVMOr:
    case LLVMXor:
    case LLVMAnd: {
        LLVMValueRef a = LLVMGetOperand(v, 0), c = LLVMGetOperand(v, 1);
        if (LLVMIsAConstantInt(a)) {
            LLVMValueRef t = a;
            a = c;
            c = t;
        }
        return LLVMIsAConstantInt(c) && !LLVMIsAConstantInt(a) &&
               (LLVMIsAArgument(a) ||
                (LLVMIsAInstruction(a) && in_prologue(r, LLVMGetInstructionParent(a))));
    }
    case LLVMZExt: return candidate(r, LLVMGetOperand(v, 0));
    default: return false;
    }
}

/* Fills r->pro: the entry block, then while the last block's terminator leads to one block
 * (the other successor of a conditional branch, if any, ending in unreachable: a trap) that
 * has no other predecessor, that block. Each dominates every block after it. */
static void prologue(remat *r, LLVMValueRef fn) {
    LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn);
    r->npro = 0;
    while (bb && r->npro < PROLOGUE_MAX) {
        r->pro[r->npro++] = bb;
        LLVMValueRef t = LLVMGetBasicBlockTerminator(bb);
        if (!t)
            return;
        unsigned ns = LLVMGetNumSuccessors(t);
        LLVMBasicBlockRef next = NULL;
        for (unsigned i = 0; i < ns; i++) {
            LLVMBasicBlockRef s = LLVMGetSuccessor(t, i);
            LLVMValueRef st = LLVMGetBasicBlockTerminator(s);
            if (st && LLVMGetInstructionOpcode(st) == LLVMUnreachable)
                continue;
            if (next)
                return; /* two ways on */
            next = s;
        }
        if (!next || in_prologue(r, next))
            return;
        /* entered only from bb: every use of the block's value is a branch of bb */
        unsigned preds = 0;
        for (LLVMUseRef u = LLVMGetFirstUse(LLVMBasicBlockAsValue(next)); u; u = LLVMGetNextUse(u))
            preds++;
        if (preds != 1)
            return;
        bb = next;
    }
}

static LLVMValueRef anchor_of(remat *r, LLVMBasicBlockRef bb) {
    anchor *a = map_get(&r->anchors, &bb, sizeof bb);
    if (a)
        return a->at;
    a = own(r, sizeof *a);
    a->bb = bb;
    a->at = LLVMGetFirstInstruction(bb);
    while (a->at && LLVMIsAPHINode(a->at))
        a->at = LLVMGetNextInstruction(a->at);
    map_put(&r->anchors, &a->bb, sizeof a->bb, a);
    return a->at;
}

/* The copy of candidate v in block bb (made, with copies of the candidates it uses, on first
 * request). */
static LLVMValueRef copy_in(remat *r, LLVMValueRef v, LLVMBasicBlockRef bb) {
    copy key = {.orig = v, .bb = bb};
    copy *c = map_get(&r->copies, &key, 2 * sizeof(void *));
    if (c)
        return c->val;
    LLVMValueRef ops[2] = {NULL, NULL};
    unsigned nops = (unsigned)LLVMGetNumOperands(v);
    for (unsigned i = 0; i < nops && i < 2; i++) {
        LLVMValueRef o = LLVMGetOperand(v, i);
        ops[i] = candidate(r, o) ? copy_in(r, o, bb) : o;
    }
    /* (a block ends in a terminator, so it has a first non-phi instruction) */
    LLVMPositionBuilderBefore(r->b, anchor_of(r, bb));
    LLVMValueRef n = LLVMInstructionClone(v);
    LLVMInsertIntoBuilder(r->b, n);
    for (unsigned i = 0; i < nops && i < 2; i++)
        if (ops[i] != LLVMGetOperand(v, i))
            LLVMSetOperand(n, i, ops[i]);
    c = own(r, sizeof *c);
    *c = (copy){.orig = v, .bb = bb, .val = n};
    map_put(&r->copies, &c->orig, 2 * sizeof(void *), c);
    return n;
}

/* A use of v outside the prologue: the user, the operand's index, the block the value must
 * be available in (a phi's incoming block). */
typedef struct use_at {
    LLVMValueRef user;
    unsigned op;
    LLVMBasicBlockRef bb;
} use_at;

static void remat_fn(LLVMValueRef fn, LLVMBuilderRef b) {
    remat r = {.b = b};
    prologue(&r, fn);
    if (!r.npro)
        return;
    map_init(&r.copies);
    map_init(&r.anchors);
    use_at *uses = NULL;
    size_t cap = 0;
    for (unsigned p = 0; p < r.npro; p++)
        for (LLVMValueRef v = LLVMGetFirstInstruction(r.pro[p]); v; v = LLVMGetNextInstruction(v)) {
            if (!candidate(&r, v))
                continue;
            size_t n = 0;
            for (LLVMUseRef u = LLVMGetFirstUse(v); u; u = LLVMGetNextUse(u)) {
                LLVMValueRef user = LLVMGetUser(u);
                unsigned nops = (unsigned)LLVMGetNumOperands(user);
                for (unsigned i = 0; i < nops; i++) {
                    if (LLVMGetOperand(user, i) != v)
                        continue;
                    LLVMBasicBlockRef at = LLVMIsAPHINode(user) ? LLVMGetIncomingBlock(user, i)
                                                                : LLVMGetInstructionParent(user);
                    if (in_prologue(&r, at))
                        continue;
                    if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        uses = xrealloc(uses, cap * sizeof *uses);
                    }
                    uses[n++] = (use_at){user, i, at};
                }
            }
            for (size_t i = 0; i < n; i++)
                LLVMSetOperand(uses[i].user, uses[i].op, copy_in(&r, v, uses[i].bb));
        }
    /* erase the originals nothing uses now, last first (a chain's later links use earlier ones) */
    for (unsigned p = r.npro; p-- > 0;)
        for (LLVMValueRef v = LLVMGetLastInstruction(r.pro[p]); v;) {
            LLVMValueRef prev = LLVMGetPreviousInstruction(v);
            if (candidate(&r, v) && !LLVMGetFirstUse(v))
                LLVMInstructionEraseFromParent(v);
            v = prev;
        }
    for (size_t i = 0; i < r.nowned; i++)
        free(r.owned[i]);
    free(r.owned);
    free(uses);
    map_fini(&r.copies);
    map_fini(&r.anchors);
}

void jit__remat_frame_addrs(LLVMModuleRef mod) {
    LLVMBuilderRef b = LLVMCreateBuilderInContext(LLVMGetModuleContext(mod));
    for (LLVMValueRef fn = LLVMGetFirstFunction(mod); fn; fn = LLVMGetNextFunction(fn))
        remat_fn(fn, b);
    LLVMDisposeBuilder(b);
}
