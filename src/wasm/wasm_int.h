/* Private to src/wasm: the decoded module, runtime object layouts and the internal code format.
 * Invariant: everything reachable from a wasm_module is immutable after wasm_module_load. */
#ifndef PSL_WASM_WASM_INT_H
#define PSL_WASM_WASM_INT_H

#include "base/base.h"
#include "base/err.h"
#include "wasm/wasm.h"

#include <stdatomic.h>
#include <stdio.h>

#define WASM_PAGE 65536u
#define WASM_MAX_PAGES 65536u
/* Implementation limits (the spec allows them); hitting one is ERR_LIMIT, not a crash. */
#define WASM_MAX_FUNCS 1000000u
#define WASM_MAX_LOCALS 50000u
#define WASM_MAX_TABLE 10000000u
#define WASM_MAX_PARAMS 1000u

/* ---- decoded module ---- */

typedef struct wasm_ftype {
    uint32_t nparams, nresults;
    uint8_t *types; /* nparams + nresults entries */
} wasm_ftype;

/* A constant expression (Wasm 2.0: exactly one instruction, then end). */
typedef struct wasm_constexpr {
    uint8_t op;     /* 0x41 i32.const, 0x42 i64.const, 0x43 f32.const, 0x44 f64.const,
                       0xd0 ref.null, 0xd2 ref.func, 0x23 global.get */
    uint8_t type;   /* value type it produces */
    uint64_t value; /* constant bits, function index or global index */
} wasm_constexpr;

typedef struct wasm_tabletype {
    uint8_t elemtype;
    wasm_limits lim;
} wasm_tabletype;

typedef struct wasm_globaltype {
    uint8_t type;
    bool mut;
} wasm_globaltype;

typedef struct wasm_import {
    char *module, *name; /* NUL-terminated copies; names may hold any valid UTF-8 */
    uint8_t kind;
    uint32_t index; /* index in the kind's index space (imports come first) */
    union {
        uint32_t typeidx; /* function */
        wasm_tabletype table;
        wasm_limits mem;
        wasm_globaltype global;
    } u;
} wasm_import;

typedef struct wasm_export {
    char *name;
    uint32_t name_len; /* names may contain NUL bytes */
    uint8_t kind;
    uint32_t index;
} wasm_export;

enum { WASM_SEG_ACTIVE = 0, WASM_SEG_PASSIVE = 1, WASM_SEG_DECLARATIVE = 2 };

typedef struct wasm_elemseg {
    uint8_t mode, elemtype;
    uint32_t table;
    wasm_constexpr offset;
    uint32_t n;
    wasm_constexpr *init; /* n expressions: ref.func, ref.null or global.get */
} wasm_elemseg;

typedef struct wasm_dataseg {
    uint8_t mode;
    uint32_t mem;
    wasm_constexpr offset;
    uint32_t len;
    const uint8_t *bytes; /* points into module->bytes */
} wasm_dataseg;

/* One lowered instruction stream cell. The first cell of each instruction is its handler
 * address (direct threading); operand cells follow. */
typedef union wasm_cell {
    const void *h;
    uint64_t u64;
    int64_t i64;
    const union wasm_cell *target;
    struct {
        uint16_t a, b, c, d;
    } s; /* frame slot operands */
    struct {
        uint32_t lo, hi;
    } w;
} wasm_cell;

typedef struct wasm_code {
    uint32_t body_off, body_len; /* function body in module->bytes (after the size) */
    uint32_t nlocals;            /* declared locals, excluding parameters */
    uint32_t nparams;            /* set by lowering */
    uint8_t *local_types;        /* nlocals entries */
    /* Filled by lowering: */
    wasm_cell *code;
    uint32_t ncode;
    uint32_t nslots; /* frame size in slots: params + locals + max operand depth + scratch */
    /* Set by a compiling tier (src/jit) once this function's machine code is ready; read at every
     * call. Opaque here: the interpreter hands it to wasm__tier->enter. */
    _Atomic(void *) tier_entry;
    void *tier_fn; /* the tier's native entry (used by compiled callers only) */
} wasm_code;

struct wasm_module {
    uint8_t *bytes; /* owned copy of the binary */
    size_t len;

    uint32_t ntypes;
    wasm_ftype *types;

    uint32_t nimports;
    wasm_import *imports;

    uint32_t nfuncs, nimported_funcs; /* nfuncs counts imports */
    uint32_t *func_types;             /* nfuncs type indices */
    wasm_code *codes;                 /* nfuncs - nimported_funcs */

    uint32_t ntables, nimported_tables;
    wasm_tabletype *tables; /* ntables, imports first */

    uint32_t nmems, nimported_mems; /* at most 1 in Wasm 2.0 */
    wasm_limits *mems;

    uint32_t nglobals, nimported_globals;
    wasm_globaltype *globals;    /* nglobals, imports first */
    wasm_constexpr *global_init; /* nglobals - nimported_globals */

    uint32_t nexports;
    wasm_export *exports;

    int64_t start; /* function index or -1 */

    uint32_t nelems;
    wasm_elemseg *elems;

    uint32_t ndatas;
    wasm_dataseg *datas;
    bool has_datacount;
    uint32_t datacount;

    uint8_t *declared_funcs; /* nfuncs flags: may be used by ref.func (C.refs) */
    void *tier_data;         /* owned by the compiling tier; released through module_freed */
};

/* Decoder: fills *m (zeroed by the caller) from bytes; does not validate function bodies (the
 * lowering pass does) but checks everything else. 0, ERR_MALFORMED, ERR_INVALID or ERR_LIMIT. */
int wasm__decode(wasm_module *m, wasm_error *err);
/* Validate and lower every function body. 0, ERR_MALFORMED, ERR_INVALID or ERR_LIMIT. */
int wasm__lower_all(wasm_module *m, wasm_error *err);
void wasm__module_clear(wasm_module *m);

/* printf-style message into err; returns code. */
int wasm__fail(wasm_error *err, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* LEB128 / byte reader shared by the decoder and the lowering pass. Reads past end set
 * r->bad; callers check once at a convenient point. */
typedef struct wasm_reader {
    const uint8_t *base, *p, *end;
    const char *bad; /* first failure reason, NULL while fine */
} wasm_reader;

uint8_t wasm__rd_u8(wasm_reader *r);
uint32_t wasm__rd_u32(wasm_reader *r);
int32_t wasm__rd_s32(wasm_reader *r);
int64_t wasm__rd_s64(wasm_reader *r);
/* ---- runtime objects ---- */

struct wasm_func {
    wasm_ftype *type;      /* canonical copy owned by the store or the module */
    wasm_instance *inst;   /* NULL for host functions */
    const wasm_code *code; /* NULL for host functions */
    wasm_host_fn host;
    void *host_ud;
    uint32_t type_id; /* store-wide id for structural type equality (call_indirect) */
};

struct wasm_table {
    uint8_t elemtype;
    wasm_limits lim; /* lim.min is the current size */
    wasm_val *elems;
    wasm_store *store; /* charged for the elements (store->table_bytes) */
};

struct wasm_memory {
    uint8_t *data;
    uint64_t size;      /* bytes */
    wasm_limits lim;    /* pages; lim.min is the current page count */
    size_t reserved;    /* bytes of address space reserved at data (>= max_bytes) */
    uint64_t max_bytes; /* growth cap: lim.max and the store's max_memory_bytes */
    bool no_fork;       /* left out of forked children (wasm_tier_ops.mem_no_fork) */
};

struct wasm_global {
    uint8_t type;
    bool mut;
    wasm_val val;
};

struct wasm_instance {
    const wasm_module *mod;
    wasm_store *store;
    wasm_func **funcs;     /* nfuncs */
    wasm_table **tables;   /* ntables */
    wasm_memory *mem;      /* memory 0 or NULL */
    wasm_global **globals; /* nglobals */
    wasm_val **elem_vals;  /* nelems evaluated element segments */
    uint32_t *elem_len;    /* nelems; 0 once dropped */
    bool *data_dropped;    /* ndatas */
    uint32_t *type_ids;    /* ntypes: store-wide ids of the module's types */
};

/* Every store allocation is linked for wasm_store_free. */
typedef struct wasm_obj {
    struct wasm_obj *next;
    void (*fini)(void *);
} wasm_obj;

typedef struct wasm_frame {
    const wasm_cell *ret_ip; /* NULL: return to the host */
    wasm_val *fp;
    wasm_instance *inst;
} wasm_frame;

struct wasm_store {
    wasm_config cfg;
    wasm_obj *objs;
    wasm_val *stack, *stack_end; /* value stack */
    wasm_frame *frames;          /* call stack, cfg.max_call_depth + 1 entries */
    uint32_t depth;              /* frames in use */
    wasm_val *sp;                /* first free slot for a (re-entrant) wasm_call */
    atomic_int interrupt;
    uint64_t deadline_ns; /* 0: none */
    wasm_trap trap;
    int64_t trap_func; /* function index where the last trap happened, -1 if unknown */
    char trap_msg[200];
    int exit_code;
    void *userdata;
    /* Structural function type registry for type ids. */
    wasm_ftype **ftypes;
    uint32_t nftypes, cap_ftypes;
    /* Element bytes of all tables of the store; never above cfg.max_memory_bytes, so tables
     * cannot bypass the memory cap (a table entry costs 8 bytes of host memory). */
    uint64_t table_bytes;
};

void *wasm__store_alloc(wasm_store *s, size_t n, void (*fini)(void *));
uint32_t wasm__store_type_id(wasm_store *s, const wasm_ftype *t);
bool wasm__limits_match(wasm_limits have, wasm_limits want);

/* The interpreter. Runs f with args at sp (already in place as f's first slots); results are
 * written over them. Returns 0 or a wasm_trap. */
int wasm__interp_call(wasm_store *s, const wasm_func *f, wasm_val *sp);
/* Handler addresses indexed by wasm_op, for the lowering pass. */
const void *const *wasm__interp_handlers(void);
/* Grow memory by delta pages; returns the old page count or -1. */
int64_t wasm__memory_grow(wasm_store *s, wasm_memory *m, uint32_t delta);
int64_t wasm__table_grow(wasm_table *t, uint32_t delta, wasm_val init);
uint64_t wasm__now_ns(void);
/* Call f (host or wasm, any instance) from compiled code of instance caller: args at sp, results
 * written over them, depth checked like an interpreted call. Returns 0 or a wasm_trap. */
int wasm__call_func(wasm_store *s, wasm_instance *caller, const wasm_func *f, wasm_val *sp);

/* Hooks of an optional compiling tier. src/wasm never links one: src/jit fills this table and
 * registers it (wasm__tier_set) before modules are loaded; NULL means interpreter only. */
typedef struct wasm_tier_ops {
    /* After wasm_module_load validated and lowered m; may compile now or in the background. */
    void (*module_loaded)(wasm_module *m);
    /* Before m's memory is released; must wait for any background work on m. */
    void (*module_freed)(wasm_module *m);
    /* Run code (whose tier_entry is set) in inst with the interpreter's frame convention: params
     * at fp[0..), results written to fp[0..). Returns 0 or a wasm_trap; on a trap s->depth is
     * restored to its value at entry. A negative return declines (nothing ran): the interpreter
     * runs code itself. */
    int (*enter)(wasm_store *s, wasm_instance *inst, const wasm_code *code, wasm_val *fp);
    /* Bytes of address space every linear memory created while this tier is registered reserves
     * (no access beyond its size), so compiled code may rely on a guard region instead of
     * explicit bounds checks. 0: only what the memory can grow to. */
    uint64_t mem_reserve;
    /* Largest size in bytes a linear memory created while this tier is registered may reach
     * (below the store's cap and the memory's declared maximum); 0: no cap of the tier's. */
    uint64_t mem_max;
    /* Linear memories created while this tier is registered are not inherited by forked
     * children (plat_vm_no_fork): the tier forks compiler processes, which read only modules.
     * Without it every page the interpreter writes after such a fork is copied once (a page
     * fault each: +374 of them in a 43 ms interpreted run of primes.wasm 1500000). */
    bool mem_no_fork;
    /* Optional. Called by the interpreter every time its fuel runs out (about every 2^18 cells
     * of work) with the cell about to run in inst: a loop head after a back edge (back), the
     * target of a forward branch, or a callee's first cell. Returns 0 to go on interpreting, a
     * wasm_trap, or a negative value when the tier ran the rest of the activation itself (on-stack
     * replacement at a back edge): results at fp[0..), s->depth unchanged. Returning 0 after it
     * ran part of the activation, it sets *resume (otherwise left alone) to the loop head where
     * the interpreter goes on, with every slot it reads from there on written to fp. */
    int (*sample)(wasm_store *s, wasm_instance *inst, const wasm_cell *at, bool back, wasm_val *fp,
                  const wasm_cell **resume);
} wasm_tier_ops;
extern const wasm_tier_ops *wasm__tier;
void wasm__tier_set(const wasm_tier_ops *ops);

#endif
