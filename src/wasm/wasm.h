/* psl's WebAssembly engine: decoder, validator, lowering, interpreter and instances.
 *
 * Design. A module is decoded and validated once (wasm_module_load); validation of each function
 * body lowers it in the same pass into the interpreter's internal code (operands resolved to frame
 * slots, branch targets resolved). A module is immutable after loading and may be instantiated
 * many times. Every runtime object (instances, function, table, memory and global instances) lives
 * in a wasm_store and is freed with it; objects of one store may be linked together freely (the
 * spec's "register"), never across stores. A store runs on one thread at a time; only
 * wasm_store_interrupt() may be called from another thread.
 *
 * Values cross the API as 64-bit cells (wasm_val): i32 in the low 32 bits, f32/f64 as their bit
 * patterns, funcref as a wasm_func pointer, externref as an opaque host value; 0 is the null
 * reference for both reference types.
 *
 * Errors. Loading returns ERR_MALFORMED (cannot be decoded) or ERR_INVALID (breaks a validation
 * rule), instantiation ERR_UNLINKABLE or ERR_TRAP (a segment out of bounds, a trapping start
 * function) or ERR_LIMIT; the wasm_error then holds a message and the byte offset. Calls return 0,
 * ERR_TRAP (wasm_store_trap() says which) or ERR_EXIT (WASI proc_exit; wasm_store_exit_code()). A
 * trap never leaves the store unusable: later calls may run. */
#ifndef PSL_WASM_WASM_H
#define PSL_WASM_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value types, numbered as in the binary format. */
enum {
    WASM_I32 = 0x7f,
    WASM_I64 = 0x7e,
    WASM_F32 = 0x7d,
    WASM_F64 = 0x7c,
    WASM_V128 = 0x7b,
    WASM_FUNCREF = 0x70,
    WASM_EXTERNREF = 0x6f,
};

/* External kinds, numbered as in the binary format. */
enum { WASM_EXTERN_FUNC = 0, WASM_EXTERN_TABLE = 1, WASM_EXTERN_MEMORY = 2, WASM_EXTERN_GLOBAL = 3 };

/* Trap kinds; wasm_trap_str() gives the spec's message for each. */
typedef enum {
    WASM_TRAP_NONE = 0,
    WASM_TRAP_UNREACHABLE,
    WASM_TRAP_MEM_OOB,        /* out of bounds memory access */
    WASM_TRAP_TABLE_OOB,      /* out of bounds table access */
    WASM_TRAP_DIV_ZERO,       /* integer divide by zero */
    WASM_TRAP_INT_OVERFLOW,   /* integer overflow */
    WASM_TRAP_CONVERSION,     /* invalid conversion to integer */
    WASM_TRAP_UNINIT_ELEM,    /* uninitialized element (call_indirect on null) */
    WASM_TRAP_INDIRECT_TYPE,  /* indirect call type mismatch */
    WASM_TRAP_UNDEF_ELEM,     /* undefined element (call_indirect index out of table) */
    WASM_TRAP_STACK,          /* call stack exhausted */
    WASM_TRAP_TIMEOUT,        /* execution time budget exceeded */
    WASM_TRAP_INTERRUPTED,    /* wasm_store_interrupt() was called */
    WASM_TRAP_HOST,           /* a host function failed; message in wasm_store_trap_msg() */
    WASM_TRAP_EXIT,           /* WASI proc_exit (not an error for commands) */
    WASM_TRAP_COUNT
} wasm_trap;

const char *wasm_trap_str(wasm_trap t);

typedef uint64_t wasm_val;

typedef struct wasm_module wasm_module;
typedef struct wasm_store wasm_store;
typedef struct wasm_instance wasm_instance;
typedef struct wasm_func wasm_func;
typedef struct wasm_table wasm_table;
typedef struct wasm_memory wasm_memory;
typedef struct wasm_global wasm_global;

/* A function signature. types[0..nparams) are the parameters, then nresults result types. */
typedef struct wasm_functype {
    uint32_t nparams, nresults;
    const uint8_t *types;
} wasm_functype;

typedef struct wasm_limits {
    uint64_t min, max; /* max == UINT64_MAX: no maximum */
} wasm_limits;

typedef struct wasm_extern {
    uint8_t kind; /* WASM_EXTERN_* */
    union {
        wasm_func *func;
        wasm_table *table;
        wasm_memory *memory;
        wasm_global *global;
    } u;
} wasm_extern;

/* Where loading or instantiation failed. offset is the byte offset in the module binary
 * (SIZE_MAX when it does not apply). */
typedef struct wasm_error {
    size_t offset;
    char msg[200];
} wasm_error;

/* ---- modules ---- */

/** Decode, validate and lower a module.
 * @param[in] bytes  copied; the caller may free it after return.
 * @param[out] out   on success a new module, freed with wasm_module_free().
 * @return 0, ERR_MALFORMED, ERR_INVALID or ERR_LIMIT (err says where and why). */
int wasm_module_load(const uint8_t *bytes, size_t len, wasm_module **out, wasm_error *err);
void wasm_module_free(wasm_module *m);

/* Imports, in module order. Returned strings point into the module; valid until it is freed.
 * Use wasm_module_import_functype() for the signature of a function import. */
uint32_t wasm_module_num_imports(const wasm_module *m);
void wasm_module_import(const wasm_module *m, uint32_t i, const char **module, const char **name,
                        uint8_t *kind);
/* The type of import i when it is a function. */
wasm_functype wasm_module_import_functype(const wasm_module *m, uint32_t i);
uint32_t wasm_module_num_exports(const wasm_module *m);
void wasm_module_export(const wasm_module *m, uint32_t i, const char **name, uint8_t *kind);

/* ---- stores and limits ---- */

typedef struct wasm_config {
    uint32_t max_call_depth;   /* nested wasm calls before "call stack exhausted" (default 10000) */
    uint32_t stack_slots;      /* value stack size in 8-byte slots (default 1 Mi = 8 MiB) */
    uint64_t max_memory_bytes; /* cap on each linear memory (default 4 GiB, the wasm32 maximum;
                                  while the JIT tier is registered at most 4 GiB - 64 KiB),
                                  and on all tables of the store together (8 bytes an entry) */
    uint64_t timeout_ns;       /* wall-time budget per top-level wasm_call; 0 = none */
} wasm_config;

void wasm_config_default(wasm_config *c);

/** Create a store. @param[in] cfg copied; NULL means wasm_config_default. Never NULL. */
wasm_store *wasm_store_new(const wasm_config *cfg);
/* Frees every object created in the store. */
void wasm_store_free(wasm_store *s);
/* Thread-safe: makes the running (or next) call trap with WASM_TRAP_INTERRUPTED. */
void wasm_store_interrupt(wasm_store *s);
/* After a call returned ERR_TRAP or ERR_EXIT. */
wasm_trap wasm_store_trap(const wasm_store *s);
const char *wasm_store_trap_msg(const wasm_store *s); /* never NULL; the spec message or detail */
int wasm_store_exit_code(const wasm_store *s);
/* Opaque pointer for embedders (WASI state, the psl host); not touched by the engine. */
void wasm_store_set_userdata(wasm_store *s, void *ud);
void *wasm_store_userdata(const wasm_store *s);

/* ---- instances ---- */

/** Instantiate @p m in @p s. imports[i] must match import i of the module, in order.
 * Active segments are applied in order; a failing segment leaves earlier ones applied (Wasm 2.0)
 * and returns ERR_TRAP. The start function runs last.
 * @param[out] out  the instance, owned by the store; set even when the start function traps
 *                  (NULL on ERR_UNLINKABLE / ERR_LIMIT).
 * @return 0, ERR_UNLINKABLE, ERR_TRAP, ERR_EXIT or ERR_LIMIT (err says why). The module must
 * outlive the store. */
int wasm_instance_new(wasm_store *s, const wasm_module *m, const wasm_extern *imports,
                      uint32_t nimports, wasm_instance **out, wasm_error *err);
/** Return an instance to the state instantiation left it in, before its start function: its own
 * memory shrinks to the initial size and reads as zeros, its own tables and globals take their
 * initial values, segments are re-applied. Imported objects are not touched (they are shared).
 * Lets a pool reuse instances with no state leaking between runs. The start function is not run.
 * @return 0, ERR_TRAP (a segment no longer fits an imported table or memory) or ERR_NOMEM. */
int wasm_instance_reset(wasm_instance *inst, wasm_error *err);
/** Look up an export by its NUL-terminated name. @return 0 or ERR_NOTFOUND. */
int wasm_instance_export(const wasm_instance *inst, const char *name, wasm_extern *out);
/** The same for a name of @p len bytes that may contain NUL bytes. */
int wasm_instance_export_n(const wasm_instance *inst, const char *name, size_t len,
                           wasm_extern *out);
/* The instance's memory 0, or NULL. */
wasm_memory *wasm_instance_memory(const wasm_instance *inst);

/* ---- functions ---- */

/* A host function. args has nparams cells, results room for nresults. Return 0, or a wasm_trap
 * code (with wasm_store_set_trap_msg for WASM_TRAP_HOST, wasm_store_set_exit for WASM_TRAP_EXIT).
 * caller is the instance whose code made the call (NULL when called from the embedder). */
typedef int (*wasm_host_fn)(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                            wasm_val *results);

/** A host function in @p s; @p type is copied. */
wasm_func *wasm_func_new_host(wasm_store *s, wasm_functype type, wasm_host_fn fn, void *ud);
wasm_functype wasm_func_type(const wasm_func *f);
/** Call @p f. args: nparams cells; results: room for nresults.
 * @return 0, ERR_TRAP or ERR_EXIT. */
int wasm_call(wasm_store *s, wasm_func *f, const wasm_val *args, wasm_val *results);
void wasm_store_set_trap_msg(wasm_store *s, const char *msg);
void wasm_store_set_exit(wasm_store *s, int code);

/* ---- tables, memories, globals (host-created ones serve imports such as spectest's) ---- */

/** Returns NULL when lim.min entries exceed the implementation limit or the store's table budget
 * (wasm_config.max_memory_bytes for all its tables). */
wasm_table *wasm_table_new(wasm_store *s, uint8_t elemtype, wasm_limits lim);
uint8_t wasm_table_elemtype(const wasm_table *t);
uint32_t wasm_table_size(const wasm_table *t);

/** Returns NULL when lim.min pages exceed the store's memory cap. */
wasm_memory *wasm_memory_new(wasm_store *s, wasm_limits lim);
uint8_t *wasm_memory_data(const wasm_memory *m);    /* valid until the memory grows */
uint64_t wasm_memory_size(const wasm_memory *m);    /* bytes */

wasm_global *wasm_global_new(wasm_store *s, uint8_t type, bool mutable_, wasm_val v);
wasm_val wasm_global_get(const wasm_global *g);
uint8_t wasm_global_type(const wasm_global *g);

#endif
