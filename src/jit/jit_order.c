/* Add chains ordered for latency: a pass over the optimised IR, before code generation (part of
 * psljit.so, beside jit_gen.c).
 *
 * LLVM's pipelines leave a sum of several terms as a chain in which the terms computed from the
 * loop's running values come first and loaded ones last (Reassociate ranks loads after the
 * arithmetic on phis; O1 does not even run it). x86 code generation then folds each load into
 * its add, so every loaded term adds a step to the chain after the running values are known:
 * sha256's `t1 = h + S1(e) + ch(e, f, g) + K[i] + w[i]` became `((ch + h) + S1) + K[i]) + w[i]`,
 * two load-adds on the path from e to the next round's e. Adding the loaded terms first, off
 * that path, made clang's native code of the kernel run as fast as gcc's (which does so);
 * see docs/jit.md, "Changes of session 18".
 *
 * The pass rewrites each maximal tree of integer adds in one block (inner adds used once, by
 * their parent, none with wrap flags) with at least three terms as a chain that adds the terms
 * in the order they become available: terms independent of the block's phis first (loads, values
 * from other blocks, arithmetic on those), by their depth in the block; then the terms computed
 * from phis, by their distance from them; constants last (the code generator folds them into
 * an address or an immediate). The number of adds stays the same. */
#include "jit/jit_int.h"

#include "base/base.h"
#include "base/map.h"

#include <llvm-c/Core.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { TERMS_MAX = 16 };

/* Per instruction of the block being rewritten: depth from the block's start (phis, loads and
 * values defined elsewhere at 0) and distance from its phis (-1: independent of them). */
typedef struct depth {
    LLVMValueRef v;
    int32_t d, p;
} depth;

/* The block's depths: entries in ent (room for the block's instructions and as many new adds),
 * found by instruction through m (key: the entry's v). */
typedef struct depth_map {
    map m;
    depth *ent;
    uint32_t n;
} depth_map;

static const depth *map_find(const depth_map *dm, LLVMValueRef v) {
    return map_get(&dm->m, &v, sizeof v);
}

/* Records d (of instruction d.v), replacing what was recorded for it. */
static void map_record(depth_map *dm, depth d) {
    depth *e = map_get(&dm->m, &d.v, sizeof d.v);
    if (e) {
        *e = d;
        return;
    }
    e = &dm->ent[dm->n++];
    *e = d; /* the key is hashed as it is put */
    map_put(&dm->m, &e->v, sizeof e->v, e);
}

/* Depth and phi distance of an operand as seen from the block: 0 / -1 for anything not
 * recorded (constants, arguments, values of other blocks). */
static depth operand_depth(const depth_map *m, LLVMValueRef v) {
    const depth *e = LLVMIsAInstruction(v) ? map_find(m, v) : NULL;
    return e ? *e : (depth){v, 0, -1};
}

static depth compute_depth(const depth_map *m, LLVMValueRef inst) {
    LLVMOpcode op = LLVMGetInstructionOpcode(inst);
    if (op == LLVMPHI)
        return (depth){inst, 0, 0};
    if (op == LLVMLoad)
        return (depth){inst, 0, -1}; /* addresses are ready early: loads issue ahead */
    depth r = {inst, 0, -1};
    int n = LLVMGetNumOperands(inst);
    for (int i = 0; i < n; i++) {
        depth o = operand_depth(m, LLVMGetOperand(inst, (unsigned)i));
        if (o.d > r.d)
            r.d = o.d;
        if (o.p > r.p)
            r.p = o.p;
    }
    r.d++;
    if (r.p >= 0)
        r.p++;
    return r;
}

/* An add that may be folded into the tree of its user: integer, no wrap flags. */
static bool plain_add(LLVMValueRef v) {
    if (!LLVMIsAInstruction(v) || LLVMGetInstructionOpcode(v) != LLVMAdd)
        return false;
    LLVMTypeRef t = LLVMTypeOf(v);
    return LLVMGetTypeKind(t) == LLVMIntegerTypeKind && !LLVMGetNUW(v) && !LLVMGetNSW(v);
}

static bool single_use(LLVMValueRef v) {
    LLVMUseRef u = LLVMGetFirstUse(v);
    return u && !LLVMGetNextUse(u);
}

/* Is add v an inner node of its user's tree (in block bb)? */
static bool inner(LLVMValueRef v, LLVMBasicBlockRef bb) {
    if (!plain_add(v) || LLVMGetInstructionParent(v) != bb || !single_use(v))
        return false;
    LLVMValueRef user = LLVMGetUser(LLVMGetFirstUse(v));
    return plain_add(user) && LLVMGetInstructionParent(user) == bb &&
           LLVMTypeOf(user) == LLVMTypeOf(v);
}

typedef struct tree {
    LLVMValueRef term[TERMS_MAX];
    LLVMValueRef node[TERMS_MAX]; /* the inner adds, parents before children */
    unsigned nterm, nnode;
    bool full;
} tree;

static void collect(tree *t, LLVMValueRef v, LLVMBasicBlockRef bb) {
    if (inner(v, bb)) {
        if (t->nnode == TERMS_MAX) {
            t->full = true;
            return;
        }
        t->node[t->nnode++] = v;
        collect(t, LLVMGetOperand(v, 0), bb);
        collect(t, LLVMGetOperand(v, 1), bb);
        return;
    }
    if (t->nterm == TERMS_MAX) {
        t->full = true;
        return;
    }
    t->term[t->nterm++] = v;
}

/* Sort key of a term: constants last; terms independent of the phis before dependent ones. */
static int64_t term_key(const depth_map *m, LLVMValueRef v) {
    if (LLVMIsAConstant(v))
        return INT64_MAX;
    depth d = operand_depth(m, v);
    if (d.p < 0)
        return d.d;
    return ((int64_t)1 << 32) + ((int64_t)d.p << 16) + d.d;
}

/* Rewrites the tree rooted at add `root` when it has three terms or more; returns the value
 * that replaced it (or root). New adds are recorded in the map. */
static LLVMValueRef rewrite(depth_map *m, LLVMBuilderRef b, LLVMValueRef root) {
    LLVMBasicBlockRef bb = LLVMGetInstructionParent(root);
    tree t = {.nnode = 0};
    collect(&t, LLVMGetOperand(root, 0), bb);
    collect(&t, LLVMGetOperand(root, 1), bb);
    if (t.full || t.nterm < 3)
        return root;
    int64_t key[TERMS_MAX];
    for (unsigned i = 0; i < t.nterm; i++)
        key[i] = term_key(m, t.term[i]);
    for (unsigned i = 1; i < t.nterm; i++) /* stable insertion sort */
        for (unsigned j = i; j > 0 && key[j - 1] > key[j]; j--) {
            int64_t k = key[j];
            key[j] = key[j - 1];
            key[j - 1] = k;
            LLVMValueRef v = t.term[j];
            t.term[j] = t.term[j - 1];
            t.term[j - 1] = v;
        }
    LLVMPositionBuilderBefore(b, root);
    LLVMValueRef acc = t.term[0];
    for (unsigned i = 1; i < t.nterm; i++) {
        acc = LLVMBuildAdd(b, acc, t.term[i], "");
        if (LLVMIsAInstruction(acc)) /* not folded to a constant */
            map_record(m, compute_depth(m, acc));
    }
    LLVMReplaceAllUsesWith(root, acc);
    LLVMInstructionEraseFromParent(root);             /* root was not recorded yet */
    for (unsigned i = 0; i < t.nnode; i++) {          /* parents first: each is unused by then */
        map_del(&m->m, &t.node[i], sizeof t.node[i]); /* its address may come back */
        LLVMInstructionEraseFromParent(t.node[i]);
    }
    return acc;
}

static void order_block(LLVMBasicBlockRef bb, LLVMBuilderRef b) {
    uint32_t n = 0;
    for (LLVMValueRef i = LLVMGetFirstInstruction(bb); i; i = LLVMGetNextInstruction(i))
        n++;
    /* each rewrite adds as many adds as it erases (terms - 1) */
    depth_map m = {.ent = xmalloc((2 * (size_t)n + TERMS_MAX) * sizeof(depth))};
    map_init(&m.m);
    for (LLVMValueRef i = LLVMGetFirstInstruction(bb); i;) {
        LLVMValueRef next = LLVMGetNextInstruction(i);
        if (plain_add(i) && !inner(i, bb))
            i = rewrite(&m, b, i);
        if (LLVMIsAInstruction(i))
            map_record(&m, compute_depth(&m, i));
        i = next;
    }
    map_fini(&m.m);
    free(m.ent);
}

void jit__order_adds(LLVMModuleRef mod) {
    LLVMBuilderRef b = LLVMCreateBuilderInContext(LLVMGetModuleContext(mod));
    for (LLVMValueRef fn = LLVMGetFirstFunction(mod); fn; fn = LLVMGetNextFunction(fn))
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
            order_block(bb, b);
    LLVMDisposeBuilder(b);
}
