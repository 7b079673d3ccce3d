/* libFuzzer target over the whole engine: decode + validate + lower, instantiate with every
 * import satisfied by a host stub of the right type, then call every exported function with zero
 * arguments under small limits. Imports from wasi_snapshot_preview1 are bound to the real WASI
 * host (wasi.c, with in-memory streams), so its checks of guest pointers are fuzzed too. Whatever the input, the engine must return an error code or a
 * trap: never crash, leak, hang or read out of bounds (ASan + UBSan check the last part).
 *
 * Built two ways: with -fsanitize=fuzzer (PSL_FUZZ, `make fuzz`) and, without libFuzzer, linked
 * with fuzz_replay.c into a driver that CTest runs over tests/regress and the seed corpus. The
 * import types of tables, memories and globals are not in wasm.h, so this white-box harness reads
 * them from the decoded module (wasm_int.h). */
#include "base/err.h"
#include "wasm/wasi.h"
#include "wasm/wasm.h"
#include "wasm/wasm_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits keep one input cheap: 16 MiB of memory, 500 frames, 64 Ki slots, 20 ms a call. */
#define FUZZ_MAX_MEMORY (16u << 20)
#define FUZZ_MAX_DEPTH 500u
#define FUZZ_STACK_SLOTS (64u << 10)
#define FUZZ_TIMEOUT_NS (20u * 1000 * 1000)
/* At most this many export calls per input, so an input of many looping exports cannot make one
 * execution take seconds (each call is bounded by the timeout). */
#define FUZZ_MAX_CALLS 16u
/* A call may overshoot its 20 ms budget by one poll period; one that runs this long means the
 * engine let the guest bypass the budget, which is a bug like a crash. */
#define FUZZ_CALL_LIMIT_NS (1000u * 1000 * 1000)

/* Host stub: every result is zero (a valid value of every type, the null reference included).
 * ud carries the number of results. */
static int stub_fn(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                   wasm_val *results) {
    (void)s;
    (void)caller;
    (void)args;
    size_t n = (size_t)(uintptr_t)ud;
    for (size_t i = 0; i < n; i++)
        results[i] = 0;
    return 0;
}

/* Build a fresh extern matching import i; false when it cannot be satisfied under the limits.
 * A WASI function the WASI host does not accept (a wrong signature) gets a stub instead. */
static bool make_import(wasm_store *s, wasi_ctx *w, const wasm_module *m, uint32_t i,
                        wasm_extern *ex) {
    const wasm_import *im = &m->imports[i];
    wasm_error err;
    if (wasi_resolve_import(w, s, m, i, ex, &err) == 0)
        return true;
    ex->kind = im->kind;
    switch (im->kind) {
    case WASM_EXTERN_FUNC: {
        wasm_functype t = wasm_module_import_functype(m, i);
        ex->u.func = wasm_func_new_host(s, t, stub_fn, (void *)(uintptr_t)t.nresults);
        return ex->u.func != NULL;
    }
    case WASM_EXTERN_TABLE:
        /* A table of millions of entries is legal but only slows the fuzzer down. */
        if (im->u.table.lim.min > (1u << 16))
            return false;
        ex->u.table = wasm_table_new(s, im->u.table.elemtype, im->u.table.lim);
        return ex->u.table != NULL;
    case WASM_EXTERN_MEMORY:
        ex->u.memory = wasm_memory_new(s, im->u.mem);
        return ex->u.memory != NULL;
    case WASM_EXTERN_GLOBAL:
        ex->u.global = wasm_global_new(s, im->u.global.type, im->u.global.mut, 0);
        return ex->u.global != NULL;
    default:
        return false;
    }
}

/* Call export i (a function) with zero arguments; the outcome does not matter, only that the
 * engine reports it properly and the store stays usable. The function is taken from the
 * instance directly: wasm_instance_export() looks names up as C strings, and a wasm name may
 * contain U+0000, so "f\0x" cannot be found by name (an API limit, not a memory-safety one). */
static void call_export(wasm_store *s, wasm_instance *inst, const wasm_module *m, uint32_t i) {
    wasm_func *f = inst->funcs[m->exports[i].index];
    wasm_extern ex;
    if (wasm_instance_export(inst, m->exports[i].name, &ex) == 0 && ex.kind == WASM_EXTERN_FUNC &&
        !ex.u.func)
        abort();
    wasm_functype t = wasm_func_type(f);
    size_t n = t.nparams > t.nresults ? t.nparams : t.nresults;
    wasm_val *cells = calloc(n ? n : 1, sizeof *cells);
    if (!cells)
        abort();
    uint64_t t0 = wasm__now_ns();
    int rc = wasm_call(s, f, cells, cells);
    uint64_t dt = wasm__now_ns() - t0;
    if (dt > FUZZ_CALL_LIMIT_NS) {
        fprintf(stderr, "fuzz_wasm: export %u ran %.3f s on a %.3f s budget\n", i,
                (double)dt / 1e9, (double)FUZZ_TIMEOUT_NS / 1e9);
        abort();
    }
    if (rc != 0 && rc != ERR_TRAP && rc != ERR_EXIT)
        abort();
    if (rc == ERR_TRAP && wasm_store_trap(s) == WASM_TRAP_NONE)
        abort(); /* a trap must say which */
    free(cells);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wasm_module *m = NULL;
    wasm_error err;
    int rc = wasm_module_load(data, size, &m, &err);
    if (rc != 0) {
        if (rc != ERR_MALFORMED && rc != ERR_INVALID && rc != ERR_LIMIT)
            abort();
        if (m != NULL)
            abort();
        return 0;
    }

    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_memory_bytes = FUZZ_MAX_MEMORY;
    cfg.max_call_depth = FUZZ_MAX_DEPTH;
    cfg.stack_slots = FUZZ_STACK_SLOTS;
    cfg.timeout_ns = FUZZ_TIMEOUT_NS;
    wasm_store *s = wasm_store_new(&cfg);
    static const char *const argv[] = {"fuzz", "--flag", ""};
    static const char *const envp[] = {"HOME=/nowhere", "EMPTY="};
    static const uint8_t stdin_bytes[] = "line one\nline two\n";
    wasi_config wc = {
        .argc = 3,
        .argv = argv,
        .envc = 2,
        .envp = envp,
        .in = {.kind = WASI_IO_BUFFER, .data = stdin_bytes, .len = sizeof stdin_bytes - 1},
        .out = {.kind = WASI_IO_BUFFER, .cap = 4096},
        .err = {.kind = WASI_IO_BUFFER, .cap = 4096},
    };
    wasi_ctx *w = wasi_new(&wc);
    /* Sleeps in poll_oneoff end at the deadline; it is refreshed before each call below. */
    wasi_set_deadline(w, wasm__now_ns() + FUZZ_TIMEOUT_NS);

    uint32_t nimports = wasm_module_num_imports(m);
    wasm_extern *imports = calloc(nimports ? nimports : 1, sizeof *imports);
    if (!imports)
        abort();
    for (uint32_t i = 0; i < nimports; i++)
        if (!make_import(s, w, m, i, &imports[i]))
            goto done;

    wasm_instance *inst = NULL;
    uint64_t t0 = wasm__now_ns();
    rc = wasm_instance_new(s, m, imports, nimports, &inst, &err);
    if (wasm__now_ns() - t0 > FUZZ_CALL_LIMIT_NS) {
        fprintf(stderr, "fuzz_wasm: instantiation (start function) ran past its budget\n");
        abort();
    }
    if (rc != 0 && rc != ERR_TRAP && rc != ERR_EXIT && rc != ERR_LIMIT && rc != ERR_UNLINKABLE)
        abort();
    if ((rc == 0) != (inst != NULL) && rc != ERR_TRAP && rc != ERR_EXIT)
        abort();
    if (!inst)
        goto done;

    /* Run the exports even after a trapping start function: the instance is live (Wasm 2.0
     * keeps the effects of applied segments) and its functions must behave. */
    uint32_t calls = 0;
    for (uint32_t i = 0; i < wasm_module_num_exports(m) && calls < FUZZ_MAX_CALLS; i++) {
        const char *name;
        uint8_t kind;
        wasm_module_export(m, i, &name, &kind);
        if (kind != WASM_EXTERN_FUNC)
            continue;
        wasi_set_deadline(w, wasm__now_ns() + FUZZ_TIMEOUT_NS);
        call_export(s, inst, m, i);
        calls++;
    }

done:
    free(imports);
    wasm_store_free(s);
    wasi_free(w);
    wasm_module_free(m);
    return 0;
}
