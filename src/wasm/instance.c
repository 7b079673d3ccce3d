/* Stores, runtime objects (functions, tables, memories, globals), instantiation and calls.
 * Every object is allocated in a store and freed with it, so objects linked between instances
 * never dangle. Memories reserve their whole possible size up front (capped by the store's
 * config), so memory->data never moves: host code and later the JIT may keep the base. */
#include "platform/platform.h"
#include "wasm/wasm_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const trap_msgs[WASM_TRAP_COUNT] = {
    [WASM_TRAP_NONE] = "no trap",
    [WASM_TRAP_UNREACHABLE] = "unreachable",
    [WASM_TRAP_MEM_OOB] = "out of bounds memory access",
    [WASM_TRAP_TABLE_OOB] = "out of bounds table access",
    [WASM_TRAP_DIV_ZERO] = "integer divide by zero",
    [WASM_TRAP_INT_OVERFLOW] = "integer overflow",
    [WASM_TRAP_CONVERSION] = "invalid conversion to integer",
    [WASM_TRAP_UNINIT_ELEM] = "uninitialized element",
    [WASM_TRAP_INDIRECT_TYPE] = "indirect call type mismatch",
    [WASM_TRAP_UNDEF_ELEM] = "undefined element",
    [WASM_TRAP_STACK] = "call stack exhausted",
    [WASM_TRAP_TIMEOUT] = "execution time budget exceeded",
    [WASM_TRAP_INTERRUPTED] = "interrupted",
    [WASM_TRAP_HOST] = "host function failed",
    [WASM_TRAP_EXIT] = "exit",
};

const char *wasm_trap_str(wasm_trap t) {
    if ((unsigned)t >= WASM_TRAP_COUNT)
        return "unknown trap";
    return trap_msgs[t];
}

uint64_t wasm__now_ns(void) {
    return plat_now_ns();
}

void wasm_config_default(wasm_config *c) {
    c->max_call_depth = 10000;
    c->stack_slots = 1u << 20;
    c->max_memory_bytes = (uint64_t)WASM_MAX_PAGES * WASM_PAGE;
    c->timeout_ns = 0;
}

/* ---- store ---- */

wasm_store *wasm_store_new(const wasm_config *cfg) {
    wasm_store *s = xcalloc(1, sizeof *s);
    if (cfg)
        s->cfg = *cfg;
    else
        wasm_config_default(&s->cfg);
    if (s->cfg.max_call_depth == 0)
        s->cfg.max_call_depth = 10000;
    if (s->cfg.stack_slots < 1024)
        s->cfg.stack_slots = 1024;
    if (s->cfg.max_memory_bytes == 0 ||
        s->cfg.max_memory_bytes > (uint64_t)WASM_MAX_PAGES * WASM_PAGE)
        s->cfg.max_memory_bytes = (uint64_t)WASM_MAX_PAGES * WASM_PAGE;
    s->stack = xmalloc((size_t)s->cfg.stack_slots * sizeof *s->stack);
    s->stack_end = s->stack + s->cfg.stack_slots;
    s->sp = s->stack;
    s->frames = xmalloc(((size_t)s->cfg.max_call_depth + 2) * sizeof *s->frames);
    atomic_init(&s->interrupt, 0);
    s->trap_func = -1;
    return s;
}

void wasm_store_free(wasm_store *s) {
    if (!s)
        return;
    wasm_obj *o = s->objs;
    while (o) {
        wasm_obj *next = o->next;
        if (o->fini)
            o->fini(o + 1);
        free(o);
        o = next;
    }
    for (uint32_t i = 0; i < s->nftypes; i++)
        free(s->ftypes[i]);
    free(s->ftypes);
    free(s->stack);
    free(s->frames);
    free(s);
}

void *wasm__store_alloc(wasm_store *s, size_t n, void (*fini)(void *)) {
    wasm_obj *o = xcalloc(1, sizeof *o + n);
    o->fini = fini;
    o->next = s->objs;
    s->objs = o;
    return o + 1;
}

void wasm_store_interrupt(wasm_store *s) {
    atomic_store(&s->interrupt, 1);
}

wasm_trap wasm_store_trap(const wasm_store *s) {
    return s->trap;
}

const char *wasm_store_trap_msg(const wasm_store *s) {
    return s->trap_msg[0] ? s->trap_msg : wasm_trap_str(s->trap);
}

int wasm_store_exit_code(const wasm_store *s) {
    return s->exit_code;
}

void wasm_store_set_userdata(wasm_store *s, void *ud) {
    s->userdata = ud;
}

void *wasm_store_userdata(const wasm_store *s) {
    return s->userdata;
}

void wasm_store_set_trap_msg(wasm_store *s, const char *msg) {
    snprintf(s->trap_msg, sizeof s->trap_msg, "%s", msg ? msg : "");
}

void wasm_store_set_exit(wasm_store *s, int code) {
    s->exit_code = code;
}

static bool ftype_eq(const wasm_ftype *a, const wasm_ftype *b) {
    return a->nparams == b->nparams && a->nresults == b->nresults &&
           memcmp(a->types, b->types, a->nparams + a->nresults) == 0;
}

uint32_t wasm__store_type_id(wasm_store *s, const wasm_ftype *t) {
    for (uint32_t i = 0; i < s->nftypes; i++)
        if (ftype_eq(s->ftypes[i], t))
            return i;
    if (s->nftypes == s->cap_ftypes) {
        s->cap_ftypes = s->cap_ftypes ? s->cap_ftypes * 2 : 16;
        s->ftypes = xrealloc(s->ftypes, s->cap_ftypes * sizeof *s->ftypes);
    }
    size_t n = t->nparams + t->nresults;
    wasm_ftype *c = xmalloc(sizeof *c + n);
    c->nparams = t->nparams;
    c->nresults = t->nresults;
    c->types = (uint8_t *)(c + 1);
    memcpy(c->types, t->types, n);
    s->ftypes[s->nftypes] = c;
    return s->nftypes++;
}

/* ---- functions ---- */

wasm_func *wasm_func_new_host(wasm_store *s, wasm_functype type, wasm_host_fn fn, void *ud) {
    size_t n = type.nparams + type.nresults;
    wasm_func *f = wasm__store_alloc(s, sizeof *f + sizeof(wasm_ftype) + n, NULL);
    wasm_ftype *t = (wasm_ftype *)(f + 1);
    t->nparams = type.nparams;
    t->nresults = type.nresults;
    t->types = (uint8_t *)(t + 1);
    if (n)
        memcpy(t->types, type.types, n);
    f->type = t;
    f->host = fn;
    f->host_ud = ud;
    f->type_id = wasm__store_type_id(s, t);
    return f;
}

wasm_functype wasm_func_type(const wasm_func *f) {
    wasm_functype t = {f->type->nparams, f->type->nresults, f->type->types};
    return t;
}

static wasm_val mask_val(wasm_val v, uint8_t t) {
    return (t == WASM_I32 || t == WASM_F32) ? (uint32_t)v : v;
}

static int set_trap(wasm_store *s, int trap) {
    s->trap = (wasm_trap)trap;
    if (trap != WASM_TRAP_HOST || !s->trap_msg[0])
        snprintf(s->trap_msg, sizeof s->trap_msg, "%s", wasm_trap_str((wasm_trap)trap));
    if (s->trap_func >= 0 && trap != WASM_TRAP_EXIT) {
        size_t n = strlen(s->trap_msg);
        snprintf(s->trap_msg + n, sizeof s->trap_msg - n, " (in function %lld)",
                 (long long)s->trap_func);
    }
    return trap == WASM_TRAP_EXIT ? ERR_EXIT : ERR_TRAP;
}

int wasm_call(wasm_store *s, wasm_func *f, const wasm_val *args, wasm_val *results) {
    const wasm_ftype *t = f->type;
    bool outer = s->depth == 0;
    if (outer) {
        s->deadline_ns = s->cfg.timeout_ns ? wasm__now_ns() + s->cfg.timeout_ns : 0;
        s->trap = WASM_TRAP_NONE;
        s->trap_func = -1;
        s->trap_msg[0] = 0;
    }
    wasm_val *sp = s->sp;
    uint32_t span = t->nparams > t->nresults ? t->nparams : t->nresults;
    if (sp + span + 1 > s->stack_end)
        return set_trap(s, WASM_TRAP_STACK);
    for (uint32_t i = 0; i < t->nparams; i++)
        sp[i] = mask_val(args[i], t->types[i]);
    int rc = wasm__interp_call(s, f, sp);
    if (rc)
        return set_trap(s, rc);
    for (uint32_t i = 0; i < t->nresults; i++)
        results[i] = sp[i];
    return 0;
}

/* ---- tables ---- */

static void table_fini(void *p) {
    wasm_table *t = p;
    free(t->elems);
}

wasm_table *wasm_table_new(wasm_store *s, uint8_t elemtype, wasm_limits lim) {
    if (lim.min > WASM_MAX_TABLE ||
        lim.min * sizeof(wasm_val) > s->cfg.max_memory_bytes - s->table_bytes)
        return NULL;
    wasm_table *t = wasm__store_alloc(s, sizeof *t, table_fini);
    t->elemtype = elemtype;
    t->lim = lim;
    t->elems = xcalloc(lim.min ? lim.min : 1, sizeof *t->elems);
    t->store = s;
    s->table_bytes += lim.min * sizeof(wasm_val);
    return t;
}

uint8_t wasm_table_elemtype(const wasm_table *t) {
    return t->elemtype;
}

uint32_t wasm_table_size(const wasm_table *t) {
    return (uint32_t)t->lim.min;
}

int64_t wasm__table_grow(wasm_table *t, uint32_t delta, wasm_val init) {
    uint64_t old = t->lim.min, n = old + delta;
    wasm_store *s = t->store;
    if (n > t->lim.max || n > WASM_MAX_TABLE ||
        (uint64_t)delta * sizeof(wasm_val) > s->cfg.max_memory_bytes - s->table_bytes)
        return -1;
    s->table_bytes += (uint64_t)delta * sizeof(wasm_val);
    if (delta) {
        t->elems = xrealloc(t->elems, n * sizeof *t->elems);
        for (uint64_t i = old; i < n; i++)
            t->elems[i] = init;
    }
    t->lim.min = n;
    return (int64_t)old;
}

/* ---- memories ---- */

static void memory_fini(void *p) {
    wasm_memory *m = p;
    plat_vm_release(m->data, m->reserved);
}

/* The most bytes a memory made now may hold: the store's cap, and the registered tier's. */
static uint64_t memory_cap(const wasm_store *s) {
    uint64_t cap = s->cfg.max_memory_bytes;
    if (wasm__tier && wasm__tier->mem_max && wasm__tier->mem_max < cap)
        cap = wasm__tier->mem_max;
    return cap;
}

wasm_memory *wasm_memory_new(wasm_store *s, wasm_limits lim) {
    uint64_t cap = memory_cap(s) / WASM_PAGE;
    if (lim.max < cap)
        cap = lim.max;
    if (lim.min > cap)
        return NULL;
    size_t reserve = (size_t)(cap ? cap : 1) * WASM_PAGE;
    if (wasm__tier && wasm__tier->mem_reserve > reserve)
        reserve = (size_t)wasm__tier->mem_reserve;
    uint8_t *data = plat_vm_reserve(reserve);
    if (!data)
        return NULL;
    if (plat_vm_commit(data, (size_t)lim.min * WASM_PAGE) != 0) {
        plat_vm_release(data, reserve);
        return NULL;
    }
    wasm_memory *m = wasm__store_alloc(s, sizeof *m, memory_fini);
    m->data = data;
    m->reserved = reserve;
    m->max_bytes = cap * WASM_PAGE;
    /* Only a cost if it fails: the pages are copied on write after a fork, as before. */
    m->no_fork = wasm__tier && wasm__tier->mem_no_fork && plat_vm_no_fork(data, reserve) == 0;
    m->lim = lim;
    m->size = lim.min * WASM_PAGE;
    return m;
}

uint8_t *wasm_memory_data(const wasm_memory *m) {
    return m->data;
}

uint64_t wasm_memory_size(const wasm_memory *m) {
    return m->size;
}

int64_t wasm__memory_grow(wasm_store *s, wasm_memory *m, uint32_t delta) {
    (void)s;
    uint64_t old = m->lim.min, n = old + delta;
    if (n > m->lim.max || n > WASM_MAX_PAGES || n * WASM_PAGE > m->max_bytes)
        return -1;
    if (delta && plat_vm_commit(m->data + m->size, (size_t)delta * WASM_PAGE) != 0)
        return -1;
    m->lim.min = n;
    m->size = n * WASM_PAGE;
    return (int64_t)old;
}

/* ---- globals ---- */

wasm_global *wasm_global_new(wasm_store *s, uint8_t type, bool mutable_, wasm_val v) {
    wasm_global *g = wasm__store_alloc(s, sizeof *g, NULL);
    g->type = type;
    g->mut = mutable_;
    g->val = mask_val(v, type);
    return g;
}

wasm_val wasm_global_get(const wasm_global *g) {
    return g->val;
}

uint8_t wasm_global_type(const wasm_global *g) {
    return g->type;
}

/* ---- instances ---- */

bool wasm__limits_match(wasm_limits have, wasm_limits want) {
    if (have.min < want.min)
        return false;
    if (want.max != UINT64_MAX && (have.max == UINT64_MAX || have.max > want.max))
        return false;
    return true;
}

static void instance_fini(void *p) {
    wasm_instance *inst = p;
    if (inst->elem_vals)
        for (uint32_t i = 0; i < inst->mod->nelems; i++)
            free(inst->elem_vals[i]);
    free(inst->elem_vals);
    free(inst->elem_len);
    free(inst->data_dropped);
    free(inst->funcs);
    free(inst->tables);
    free(inst->globals);
    free(inst->type_ids);
}

static wasm_val eval_const(const wasm_instance *inst, const wasm_constexpr *e) {
    switch (e->op) {
    case 0xd2: return (wasm_val)(uintptr_t)inst->funcs[e->value];
    case 0x23: return inst->globals[e->value]->val;
    case 0xd0: return 0;
    default: return mask_val(e->value, e->type);
    }
}

static const char *kind_name(uint8_t k) {
    switch (k) {
    case WASM_EXTERN_FUNC: return "function";
    case WASM_EXTERN_TABLE: return "table";
    case WASM_EXTERN_MEMORY: return "memory";
    default: return "global";
    }
}

static int link_imports(wasm_store *s, wasm_instance *inst, const wasm_extern *imports,
                        wasm_error *err) {
    const wasm_module *m = inst->mod;
    uint32_t nf = 0, nt = 0, ng = 0;
    for (uint32_t i = 0; i < m->nimports; i++) {
        const wasm_import *im = &m->imports[i];
        const wasm_extern *ex = &imports[i];
        if (ex->kind != im->kind || !ex->u.func)
            return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX,
                              "incompatible import type: %s.%s must be a %s", im->module, im->name,
                              kind_name(im->kind));
        switch (im->kind) {
        case WASM_EXTERN_FUNC:
            if (!ftype_eq(ex->u.func->type, &m->types[im->u.typeidx]))
                return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX,
                                  "incompatible import type: function %s.%s has another signature",
                                  im->module, im->name);
            inst->funcs[nf++] = ex->u.func;
            break;
        case WASM_EXTERN_TABLE:
            if (ex->u.table->elemtype != im->u.table.elemtype ||
                !wasm__limits_match(ex->u.table->lim, im->u.table.lim))
                return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX,
                                  "incompatible import type: table %s.%s", im->module, im->name);
            inst->tables[nt++] = ex->u.table;
            break;
        case WASM_EXTERN_MEMORY:
            if (!wasm__limits_match(ex->u.memory->lim, im->u.mem))
                return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX,
                                  "incompatible import type: memory %s.%s", im->module, im->name);
            inst->mem = ex->u.memory;
            break;
        case WASM_EXTERN_GLOBAL:
            if (ex->u.global->type != im->u.global.type || ex->u.global->mut != im->u.global.mut)
                return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX,
                                  "incompatible import type: global %s.%s", im->module, im->name);
            inst->globals[ng++] = ex->u.global;
            break;
        }
    }
    (void)s;
    return 0;
}

/* The part of instantiation that sets state: global values, element segment values, dropped
 * flags, then the active segments in order (a failing one traps and leaves earlier ones applied).
 * Shared by wasm_instance_new and wasm_instance_reset. */
static int init_state(wasm_store *s, wasm_instance *inst, wasm_error *err) {
    const wasm_module *m = inst->mod;
    for (uint32_t i = m->nimported_globals; i < m->nglobals; i++)
        inst->globals[i]->val = eval_const(inst, &m->global_init[i - m->nimported_globals]);
    for (uint32_t i = 0; i < m->nelems; i++) {
        const wasm_elemseg *e = &m->elems[i];
        if (!inst->elem_vals[i])
            inst->elem_vals[i] = xcalloc(e->n ? e->n : 1, sizeof(wasm_val));
        for (uint32_t k = 0; k < e->n; k++)
            inst->elem_vals[i][k] = eval_const(inst, &e->init[k]);
        inst->elem_len[i] = e->mode == WASM_SEG_PASSIVE ? e->n : 0;
    }
    for (uint32_t i = 0; i < m->ndatas; i++)
        inst->data_dropped[i] = false;
    s->trap_func = -1;
    for (uint32_t i = 0; i < m->nelems; i++) {
        const wasm_elemseg *e = &m->elems[i];
        if (e->mode != WASM_SEG_ACTIVE)
            continue;
        wasm_table *t = inst->tables[e->table];
        uint64_t off = (uint32_t)eval_const(inst, &e->offset);
        if (off + e->n > t->lim.min) {
            wasm__fail(err, ERR_TRAP, SIZE_MAX, "out of bounds table access (element segment %u)",
                       i);
            return set_trap(s, WASM_TRAP_TABLE_OOB);
        }
        memcpy(t->elems + off, inst->elem_vals[i], e->n * sizeof(wasm_val));
    }
    for (uint32_t i = 0; i < m->ndatas; i++) {
        const wasm_dataseg *d = &m->datas[i];
        if (d->mode != WASM_SEG_ACTIVE)
            continue;
        uint64_t off = (uint32_t)eval_const(inst, &d->offset);
        uint64_t size = inst->mem ? inst->mem->size : 0;
        if (off + d->len > size) {
            wasm__fail(err, ERR_TRAP, SIZE_MAX, "out of bounds memory access (data segment %u)", i);
            return set_trap(s, WASM_TRAP_MEM_OOB);
        }
        if (d->len)
            memcpy(inst->mem->data + off, d->bytes, d->len);
        inst->data_dropped[i] = true;
    }
    return 0;
}

#define RESET_ZERO_MAX (1u << 20) /* initial memories up to this size are zeroed in place */

int wasm_instance_reset(wasm_instance *inst, wasm_error *err) {
    const wasm_module *m = inst->mod;
    wasm_store *s = inst->store;
    if (m->nmems > m->nimported_mems) {
        wasm_memory *mem = inst->mem;
        size_t init = (size_t)m->mems[0].min * WASM_PAGE;
        if (init <= RESET_ZERO_MAX && init <= mem->size) {
            /* Small initial memory (a typical function's: data, stack, a little heap): zero it in
             * place, which is far cheaper than replacing the mapping and taking a page fault per
             * page touched on the next run; what the run grew beyond it is dropped. */
            memset(mem->data, 0, init);
            if (mem->size > init && plat_vm_decommit(mem->data + init, mem->size - init) != 0)
                return wasm__fail(err, ERR_NOMEM, SIZE_MAX, "cannot reset linear memory");
            if (mem->no_fork && mem->size > init)
                (void)plat_vm_no_fork(mem->data + init, mem->size - init);
        } else if (plat_vm_decommit(mem->data, mem->size) != 0 ||
                   plat_vm_commit(mem->data, init) != 0) {
            /* Drop every page (fresh zero pages on next touch), then recommit the initial size. */
            return wasm__fail(err, ERR_NOMEM, SIZE_MAX, "cannot reset linear memory");
        } else if (mem->no_fork) {
            (void)plat_vm_no_fork(mem->data, mem->size);
        }
        mem->size = init;
        mem->lim.min = m->mems[0].min;
    }
    for (uint32_t i = m->nimported_tables; i < m->ntables; i++) {
        wasm_table *t = inst->tables[i];
        t->lim.min = m->tables[i].lim.min;
        memset(t->elems, 0, (t->lim.min ? t->lim.min : 1) * sizeof *t->elems);
    }
    s->depth = 0;
    s->sp = s->stack;
    return init_state(s, inst, err);
}

int wasm_instance_new(wasm_store *s, const wasm_module *m, const wasm_extern *imports,
                      uint32_t nimports, wasm_instance **out, wasm_error *err) {
    *out = NULL;
    if (err) {
        err->msg[0] = 0;
        err->offset = SIZE_MAX;
    }
    if (nimports != m->nimports)
        return wasm__fail(err, ERR_UNLINKABLE, SIZE_MAX, "module needs %u imports, %u given",
                          m->nimports, nimports);
    wasm_instance *inst = wasm__store_alloc(s, sizeof *inst, instance_fini);
    inst->mod = m;
    inst->store = s;
    inst->funcs = xcalloc(m->nfuncs, sizeof *inst->funcs);
    inst->tables = xcalloc(m->ntables, sizeof *inst->tables);
    inst->globals = xcalloc(m->nglobals, sizeof *inst->globals);
    inst->type_ids = xcalloc(m->ntypes, sizeof *inst->type_ids);
    inst->elem_vals = xcalloc(m->nelems, sizeof *inst->elem_vals);
    inst->elem_len = xcalloc(m->nelems, sizeof *inst->elem_len);
    inst->data_dropped = xcalloc(m->ndatas, sizeof *inst->data_dropped);
    for (uint32_t i = 0; i < m->ntypes; i++)
        inst->type_ids[i] = wasm__store_type_id(s, &m->types[i]);

    int rc = link_imports(s, inst, imports, err);
    if (rc)
        return rc;

    for (uint32_t i = m->nimported_funcs; i < m->nfuncs; i++) {
        wasm_func *f = wasm__store_alloc(s, sizeof *f, NULL);
        f->type = &m->types[m->func_types[i]];
        f->inst = inst;
        f->code = &m->codes[i - m->nimported_funcs];
        f->type_id = inst->type_ids[m->func_types[i]];
        inst->funcs[i] = f;
    }
    for (uint32_t i = m->nimported_tables; i < m->ntables; i++) {
        inst->tables[i] = wasm_table_new(s, m->tables[i].elemtype, m->tables[i].lim);
        if (!inst->tables[i])
            return wasm__fail(err, ERR_LIMIT, SIZE_MAX, "table %u is too large", i);
    }
    if (m->nmems > m->nimported_mems) {
        inst->mem = wasm_memory_new(s, m->mems[0]);
        if (!inst->mem)
            return wasm__fail(
                err, ERR_LIMIT, SIZE_MAX, "memory of %llu pages exceeds the limit of %llu bytes",
                (unsigned long long)m->mems[0].min, (unsigned long long)memory_cap(s));
    }
    for (uint32_t i = m->nimported_globals; i < m->nglobals; i++)
        inst->globals[i] = wasm_global_new(s, m->globals[i].type, m->globals[i].mut, 0);
    *out = inst;
    rc = init_state(s, inst, err);
    if (rc)
        return rc;
    if (m->start >= 0) {
        rc = wasm_call(s, inst->funcs[m->start], NULL, NULL);
        if (rc) {
            wasm__fail(err, rc, SIZE_MAX, "start function: %s", wasm_store_trap_msg(s));
            return rc;
        }
    }
    return 0;
}

int wasm_instance_export(const wasm_instance *inst, const char *name, wasm_extern *out) {
    return wasm_instance_export_n(inst, name, strlen(name), out);
}

int wasm_instance_export_n(const wasm_instance *inst, const char *name, size_t len,
                           wasm_extern *out) {
    const wasm_module *m = inst->mod;
    for (uint32_t i = 0; i < m->nexports; i++) {
        const wasm_export *e = &m->exports[i];
        if (e->name_len != len || memcmp(e->name, name, len) != 0)
            continue;
        out->kind = e->kind;
        switch (e->kind) {
        case WASM_EXTERN_FUNC: out->u.func = inst->funcs[e->index]; break;
        case WASM_EXTERN_TABLE: out->u.table = inst->tables[e->index]; break;
        case WASM_EXTERN_MEMORY: out->u.memory = inst->mem; break;
        default: out->u.global = inst->globals[e->index]; break;
        }
        return 0;
    }
    return ERR_NOTFOUND;
}

wasm_memory *wasm_instance_memory(const wasm_instance *inst) {
    return inst->mem;
}
