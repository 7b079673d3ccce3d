/* The lowered code's operator table, shared by the translator (jit_gen.c) and the run time
 * (jit.c: the callees of a hot function): handler address -> operator, and each operator's
 * operand format. No LLVM here. Invariant: built once from wasm__interp_handlers(), in the order
 * of wasm_ops.h's operator lists. */
#include "jit/jit_int.h"
#include "wasm/wasm_ops.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct hmap {
    const void *h;
    uint16_t op;
} hmap;

static hmap g_hmap[OP__COUNT];
static uint8_t g_kind[OP__COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int hmap_cmp(const void *a, const void *b) {
    const hmap *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

static void init_once(void) {
    const void *const *h = wasm__interp_handlers();
    for (unsigned i = 0; i < OP__COUNT; i++) {
        g_hmap[i].h = h[i];
        g_hmap[i].op = (uint16_t)i;
    }
    qsort(g_hmap, OP__COUNT, sizeof *g_hmap, hmap_cmp);
    unsigned i = 0;
#define KB(n) g_kind[i++] = K_BIN, g_kind[i++] = K_BIN_RI;
#define KC(n) g_kind[i++] = K_BRCMP, g_kind[i++] = K_BRCMP_RI;
#define KU(n) g_kind[i++] = K_UN;
#define KL(n) g_kind[i++] = K_LOAD;
#define KS(n) g_kind[i++] = K_STORE;
#define KM(n) g_kind[i++] = K_MISC;
    WASM_BINOPS(KB)
    WASM_BRCMPOPS(KC)
    WASM_UNOPS(KU)
    WASM_LOADOPS(KL)
    WASM_STOREOPS(KS)
    WASM_MISCOPS(KM)
#undef KB
#undef KU
#undef KC
#undef KL
#undef KS
#undef KM
    ASSERT(i == OP__COUNT);
}

void jit__ops_init(void) {
    pthread_once(&g_once, init_once);
}

int jit__op_of(const void *h) {
    size_t lo = 0, hi = OP__COUNT;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g_hmap[mid].h == h)
            return g_hmap[mid].op;
        if ((uintptr_t)g_hmap[mid].h < (uintptr_t)h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint32_t jit__op_len(int op, const wasm_cell *ip) {
    switch (g_kind[op]) {
    case K_BIN_RI:
    case K_BRCMP: return 3;
    case K_BRCMP_RI: return 4;
    case K_MISC: break;
    default: return 2;
    }
    switch (op) {
    case OP_unreachable:
    case OP_ret:
    case OP_nop: return 1;
    case OP_const:
    case OP_br_if:
    case OP_br_if_back:
    case OP_br_unless:
    case OP_brif_eqz:
    case OP_call:
    case OP_call_import:
    case OP_call_indirect:
    case OP_ref_func:
    case OP_global_get:
    case OP_global_set:
    case OP_memory_init:
    case OP_table_copy:
    case OP_table_init: return 3;
    case OP_br_table: return (uint32_t)(3 + ip[2].u64 + 1);
    default: return 2;
    }
}

int jit__op_kind(int op) {
    return g_kind[op];
}

uint32_t jit__callees(const wasm_module *m, uint32_t k, uint32_t *out, uint32_t max) {
    jit__ops_init();
    const wasm_code *c = &m->codes[k];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->ncode;) {
        int op = jit__op_of(c->code[i].h);
        if (op < 0)
            break;
        if (op == OP_call) {
            if (n < max)
                out[n] = (uint32_t)((const wasm_code *)c->code[i + 2].h - m->codes);
            n++;
        }
        i += jit__op_len(op, &c->code[i]);
    }
    return n;
}

uint32_t jit__branch_targets(int op, const wasm_cell *ip, uint32_t len, const wasm_cell **first) {
    switch (op) {
    case OP_br:
    case OP_br_back: *first = &ip[1]; return 1;
    case OP_br_if:
    case OP_br_if_back:
    case OP_br_unless:
    case OP_brif_eqz: *first = &ip[2]; return 1;
    case OP_br_table: *first = &ip[3]; return (uint32_t)ip[2].u64 + 1;
    default:
        if (jit__op_kind(op) != K_BRCMP && jit__op_kind(op) != K_BRCMP_RI)
            return 0;
        *first = &ip[len - 1];
        return 1;
    }
}

void jit__loop_heads(const wasm_code *c, bool *heads, uint32_t *head_end) {
    jit__ops_init();
    for (uint32_t i = 0; i < c->ncode;) {
        int op = jit__op_of(c->code[i].h);
        if (op < 0)
            break;
        uint32_t len = jit__op_len(op, &c->code[i]);
        const wasm_cell *tg;
        uint32_t nt = jit__branch_targets(op, &c->code[i], len, &tg);
        for (uint32_t t = 0; t < nt; t++) {
            if (tg[t].target > c->code + i)
                continue;
            uint32_t h = (uint32_t)(tg[t].target - c->code);
            heads[h] = true;
            if (i + len > head_end[h])
                head_end[h] = i + len;
        }
        i += len;
    }
}

uint32_t jit__osr_nest(const bool *heads, const uint32_t *head_end, uint32_t l, uint8_t *mark,
                       bool *around) {
    uint32_t end = head_end[l] > l ? head_end[l] : l;
    *around = false;
    for (uint32_t h = 0; h < l; h++)
        if (heads[h] && l < head_end[h]) {
            *around = true;
            if (mark)
                mark[h] = 1;
            end = head_end[h] > end ? head_end[h] : end;
        }
    return end;
}

uint32_t jit__loops_after(const bool *heads, const uint32_t *head_end, uint32_t n,
                          uint32_t nest_end, uint8_t *mark) {
    uint32_t longest = 0;
    uint32_t cover = 0; /* the end of the loops seen so far */
    for (uint32_t h = 0; h < n; h++) {
        if (!heads[h])
            continue;
        if (h >= cover && h >= nest_end) {
            if (head_end[h] - h > longest)
                longest = head_end[h] - h;
            if (mark)
                mark[h] = 2;
        }
        cover = head_end[h] > cover ? head_end[h] : cover;
    }
    return longest;
}

void jit__loops_near(const wasm_module *m, uint32_t k, uint32_t cell, bool *around,
                     uint32_t *after) {
    const wasm_code *c = &m->codes[k];
    bool *heads = xcalloc(c->ncode + 1, sizeof *heads);
    uint32_t *head_end = xcalloc(c->ncode + 1, sizeof *head_end);
    jit__loop_heads(c, heads, head_end);
    uint32_t end = jit__osr_nest(heads, head_end, cell < c->ncode ? cell : c->ncode, NULL, around);
    *after = jit__loops_after(heads, head_end, c->ncode, end, NULL);
    free(heads);
    free(head_end);
}

jit_hot jit__hot_choice(bool called, bool sampled, bool room, bool entry_there) {
    if (called || !sampled)
        return JIT_HOT_COPY;
    if (!entry_there)
        return room ? JIT_HOT_OSR : JIT_HOT_COPY;
    return JIT_HOT_COLD;
}

uint32_t jit__later_pick(const jit_later *w, uint32_t n, bool fifo) {
    uint32_t i = n;
    for (uint32_t j = 0; j < n; j++)
        if (w[j].level == JIT_LEVEL_MID && (i == n || (!fifo && w[j].cells < w[i].cells)))
            i = j;
    for (uint32_t j = 0; j < n && i == n; j++)
        if (!w[j].osr)
            i = j;
    return i == n ? 0 : i;
}

bool jit__vec(void) {
    const char *e = getenv("PSL_JIT_VEC");
    return !(e && strcmp(e, "0") == 0);
}

bool jit__order(void) {
    const char *e = getenv("PSL_JIT_ORDER");
    return !(e && strcmp(e, "0") == 0);
}

bool jit__remat(void) {
    const char *e = getenv("PSL_JIT_REMAT");
    return !(e && strcmp(e, "0") == 0);
}

bool jit__osr_after_mid(void) {
    const char *e = getenv("PSL_JIT_OSR_AFTER");
    return e && strcmp(e, "mid") == 0;
}

bool jit__osr_ask(void) {
    const char *e = getenv("PSL_JIT_OSR_ASK");
    return !(e && strcmp(e, "0") == 0);
}
