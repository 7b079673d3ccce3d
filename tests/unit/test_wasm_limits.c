/* Traps and limits of the wasm engine through its public API (issue 2, "Traps and limits"): the
 * time budget and wasm_store_interrupt() stop endless loops, call depth and value-stack
 * exhaustion trap at the configured bound, the memory cap holds for memory.grow, table.grow and
 * instantiation, every trap kind is reported with the spec's message, host functions can trap
 * and exit, and a store stays usable after each of these. The guest is tests/unit/wat/limits.wat,
 * assembled by wat2wasm at build time (LIMITS_WASM is its path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "platform/platform.h"
#include "wasm/wasm.h"

#ifndef LIMITS_WASM
#error "LIMITS_WASM must name the assembled tests/unit/wat/limits.wasm"
#endif

static uint8_t *g_bytes;
static size_t g_len;

typedef struct fixture {
    wasm_module *m;
    wasm_store *s;
    wasm_instance *inst;
    int host_calls;
} fixture;

/* ---- host imports of limits.wat ---- */

static int h_fail(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                  wasm_val *results) {
    (void)caller, (void)args, (void)results;
    ((fixture *)ud)->host_calls++;
    wasm_store_set_trap_msg(s, "host says no");
    return WASM_TRAP_HOST;
}

static int h_exit(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                  wasm_val *results) {
    (void)caller, (void)results;
    ((fixture *)ud)->host_calls++;
    wasm_store_set_exit(s, (int)(uint32_t)args[0]);
    return WASM_TRAP_EXIT;
}

static int h_count(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                   wasm_val *results) {
    (void)s;
    ((fixture *)ud)->host_calls++;
    if (caller == NULL) /* the guest made this call */
        return WASM_TRAP_HOST;
    results[0] = (uint32_t)args[0] + 1;
    return 0;
}

static const uint8_t t_i32[] = {WASM_I32};

/* Instantiate limits.wasm in a store configured by cfg (NULL: defaults). */
static fixture *fixture_new(const wasm_config *cfg) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    wasm_error err;
    assert_int_equal(wasm_module_load(g_bytes, g_len, &f->m, &err), 0);
    f->s = wasm_store_new(cfg);
    wasm_extern imps[3] = {
        {.kind = WASM_EXTERN_FUNC,
         .u.func = wasm_func_new_host(f->s, (wasm_functype){0, 0, NULL}, h_fail, f)},
        {.kind = WASM_EXTERN_FUNC,
         .u.func = wasm_func_new_host(f->s, (wasm_functype){1, 0, t_i32}, h_exit, f)},
        {.kind = WASM_EXTERN_FUNC,
         .u.func = wasm_func_new_host(f->s, (wasm_functype){1, 1, (const uint8_t[]){WASM_I32,
                                                                                    WASM_I32}},
                                      h_count, f)},
    };
    assert_int_equal(wasm_module_num_imports(f->m), 3);
    int rc = wasm_instance_new(f->s, f->m, imps, 3, &f->inst, &err);
    if (rc)
        fail_msg("instantiate: %s", err.msg);
    return f;
}

static void fixture_free(fixture *f) {
    wasm_store_free(f->s);
    wasm_module_free(f->m);
    free(f);
}

static wasm_func *fn(fixture *f, const char *name) {
    wasm_extern e;
    if (wasm_instance_export(f->inst, name, &e) != 0 || e.kind != WASM_EXTERN_FUNC)
        fail_msg("no exported function %s", name);
    return e.u.func;
}

/* Call export name with up to 2 arguments; the first result goes to *res (may be NULL). */
static int call2(fixture *f, const char *name, wasm_val a, wasm_val b, wasm_val *res) {
    wasm_val args[2] = {a, b}, out[2] = {0, 0};
    int rc = wasm_call(f->s, fn(f, name), args, out);
    if (res)
        *res = out[0];
    return rc;
}

/* The trap message starts with want (the engine may add where it happened). */
static void expect_msg(fixture *f, const char *want) {
    const char *msg = wasm_store_trap_msg(f->s);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("trap message '%s' does not start with '%s'", msg, want);
}

/* Expect the call to trap with kind k and the kind's spec message. */
static void expect_trap(fixture *f, const char *name, wasm_val a, wasm_val b, wasm_trap k) {
    int rc = call2(f, name, a, b, NULL);
    if (rc != ERR_TRAP)
        fail_msg("%s: rc %d (%s), want a trap '%s'", name, rc, err_str(rc), wasm_trap_str(k));
    if (wasm_store_trap(f->s) != k)
        fail_msg("%s: trap '%s', want '%s'", name, wasm_trap_str(wasm_store_trap(f->s)),
                 wasm_trap_str(k));
    expect_msg(f, wasm_trap_str(k));
}

/* After any trap the store must still run code: a recursion of depth n returns n. */
static void expect_usable(fixture *f) {
    wasm_val r = 0;
    assert_int_equal(call2(f, "down", 50, 0, &r), 0);
    assert_int_equal((uint32_t)r, 50);
    assert_int_equal(wasm_store_trap(f->s), WASM_TRAP_NONE);
}

static uint64_t f64_bits(double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    return v;
}

static uint64_t f32_bits(float x) {
    uint32_t v;
    memcpy(&v, &x, 4);
    return v;
}

/* ---- time budget and interruption ---- */

static void test_timeout_stops_loop(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.timeout_ns = 50u * 1000 * 1000;
    fixture *f = fixture_new(&cfg);
    const char *loops[] = {"spin", "spin_calls"};
    for (int i = 0; i < 2; i++) {
        uint64_t t0 = plat_now_ns();
        expect_trap(f, loops[i], 0, 0, WASM_TRAP_TIMEOUT);
        uint64_t dt = plat_now_ns() - t0;
        assert_true(dt >= cfg.timeout_ns);
        assert_true(dt < 2000u * 1000 * 1000); /* well before a hang would be noticed */
        /* The budget is per top-level call: the next call gets a fresh one. */
        expect_usable(f);
    }
    fixture_free(f);
}

/* Bulk instructions have no back edge; a straight run of big ones must still stop in time. */
static void test_timeout_stops_bulk(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_memory_bytes = 64u << 20;
    cfg.timeout_ns = 20u * 1000 * 1000;
    fixture *f = fixture_new(&cfg);
    wasm_val r = 0;
    assert_int_equal(call2(f, "grow", 1023, 0, &r), 0); /* 64 MiB: 40 fills write 2.5 GiB */
    assert_int_equal((uint32_t)r, 1);
    uint64_t t0 = plat_now_ns();
    expect_trap(f, "fill_many", 0, 0, WASM_TRAP_TIMEOUT);
    uint64_t dt = plat_now_ns() - t0;
    /* One fill of 64 MiB at most runs past the budget (a few ms); all 40 take far longer. */
    assert_true(dt < 1000u * 1000 * 1000);
    expect_usable(f);
    fixture_free(f);
}

/* ---- a module with big function bodies, built in memory ---- */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u8(bytes *b, uint8_t v) {
    put(b, &v, 1);
}

static void put_leb(bytes *b, uint32_t v) {
    do {
        uint8_t x = v & 0x7f;
        v >>= 7;
        put_u8(b, (uint8_t)(x | (v ? 0x80 : 0)));
    } while (v);
}

/* Append section id with the contents of s (freed). */
static void put_section(bytes *b, uint8_t id, bytes *s) {
    put_u8(b, id);
    put_leb(b, (uint32_t)s->n);
    put(b, s->p, s->n);
    free(s->p);
    *s = (bytes){0};
}

/* (func (export "big_loop") (local i32) (loop $l [n x: local.get 0 i32.const 1 i32.add
 *   local.set 0] br $l))
 * (func $big (local i32) [n x the same])
 * (func (export "call_loop") (loop $l call $big br $l)) */
static bytes big_body_module(uint32_t n) {
    static const uint8_t inc[] = {0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00};
    bytes m = {0}, s = {0}, f = {0};
    put(&m, "\0asm\1\0\0\0", 8);
    put(&s, (const uint8_t[]){0x01, 0x60, 0x00, 0x00}, 4);
    put_section(&m, 1, &s);
    put(&s, (const uint8_t[]){0x03, 0x00, 0x00, 0x00}, 4);
    put_section(&m, 3, &s);
    put_u8(&s, 2);
    put(&s, "\x08" "big_loop" "\x00\x00", 11);
    put(&s, "\x09" "call_loop" "\x00\x02", 12);
    put_section(&m, 7, &s);
    put_u8(&s, 3);
    for (int k = 0; k < 2; k++) {
        put(&f, (const uint8_t[]){0x01, 0x01, 0x7f}, 3);
        if (k == 0)
            put(&f, (const uint8_t[]){0x03, 0x40}, 2);
        for (uint32_t i = 0; i < n; i++)
            put(&f, inc, sizeof inc);
        if (k == 0)
            put(&f, (const uint8_t[]){0x0c, 0x00, 0x0b}, 3);
        put_u8(&f, 0x0b);
        put_leb(&s, (uint32_t)f.n);
        put(&s, f.p, f.n);
        f.n = 0;
    }
    free(f.p);
    static const uint8_t call_loop[] = {0x09, 0x00, 0x03, 0x40, 0x10, 0x01, 0x0c, 0x00, 0x0b, 0x0b};
    put(&s, call_loop, sizeof call_loop);
    put_section(&m, 10, &s);
    return m;
}

/* The budget is polled by work done, not by branches taken: a loop with a huge body, or a loop
 * calling a huge function, stops close to its budget too. */
static void test_timeout_big_bodies(void **state) {
    (void)state;
    bytes b = big_body_module(60000); /* 420 KB; 16384 iterations were 1G additions */
    wasm_module *m = NULL;
    wasm_error err;
    if (wasm_module_load(b.p, b.n, &m, &err) != 0)
        fail_msg("load: %s", err.msg);
    free(b.p);
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.timeout_ns = 20u * 1000 * 1000;
    wasm_store *s = wasm_store_new(&cfg);
    wasm_instance *inst = NULL;
    assert_int_equal(wasm_instance_new(s, m, NULL, 0, &inst, &err), 0);
    const char *names[] = {"big_loop", "call_loop"};
    for (int i = 0; i < 2; i++) {
        wasm_extern e;
        assert_int_equal(wasm_instance_export(inst, names[i], &e), 0);
        uint64_t t0 = plat_now_ns();
        assert_int_equal(wasm_call(s, e.u.func, NULL, NULL), ERR_TRAP);
        uint64_t dt = plat_now_ns() - t0;
        assert_int_equal(wasm_store_trap(s), WASM_TRAP_TIMEOUT);
        if (dt > 500u * 1000 * 1000)
            fail_msg("%s ran %.3f s on a 0.02 s budget", names[i], (double)dt / 1e9);
    }
    wasm_store_free(s);
    wasm_module_free(m);
}

typedef struct interrupter {
    wasm_store *s;
    unsigned delay_ms;
} interrupter;

static void *interrupt_later(void *p) {
    interrupter *it = p;
    struct timespec ts = {0, (long)it->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    wasm_store_interrupt(it->s);
    return NULL;
}

static void test_interrupt_from_thread(void **state) {
    (void)state;
    fixture *f = fixture_new(NULL); /* no time budget: only the interrupt can stop the loop */
    const char *loops[] = {"spin", "spin_calls"};
    for (int i = 0; i < 2; i++) {
        interrupter it = {f->s, 30};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, interrupt_later, &it), 0);
        expect_trap(f, loops[i], 0, 0, WASM_TRAP_INTERRUPTED);
        assert_int_equal(pthread_join(th, NULL), 0);
        /* The interrupt was consumed: the next call runs normally. */
        expect_usable(f);
    }
    /* An interrupt that arrives between calls stops the next call. */
    wasm_store_interrupt(f->s);
    expect_trap(f, "spin", 0, 0, WASM_TRAP_INTERRUPTED);
    expect_usable(f);
    fixture_free(f);
}

/* ---- call depth and value stack ---- */

static void test_recursion_depth(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_call_depth = 200;
    fixture *f = fixture_new(&cfg);
    wasm_val r = 0;
    expect_trap(f, "rec", 0, 0, WASM_TRAP_STACK);
    /* Exactly max_call_depth frames of $rec were entered before the trap. */
    assert_int_equal(call2(f, "calls", 0, 0, &r), 0);
    assert_int_equal((uint32_t)r, 200);
    /* The bound is exact: down(n) needs n + 1 frames. */
    assert_int_equal(call2(f, "down", 199, 0, &r), 0);
    assert_int_equal((uint32_t)r, 199);
    expect_trap(f, "down", 200, 0, WASM_TRAP_STACK);
    expect_usable(f);
    /* Many exhaustions in a row leave nothing behind. */
    for (int i = 0; i < 100; i++)
        expect_trap(f, "rec", 0, 0, WASM_TRAP_STACK);
    expect_usable(f);
    fixture_free(f);
}

static void test_value_stack_exhaustion(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_call_depth = 1000000; /* the value stack runs out first */
    cfg.stack_slots = 1024;
    fixture *f = fixture_new(&cfg);
    wasm_val r = 0;
    assert_int_equal(call2(f, "reset", 0, 0, NULL), 0);
    expect_trap(f, "rec", 0, 0, WASM_TRAP_STACK);
    assert_int_equal(call2(f, "calls", 0, 0, &r), 0);
    assert_true((uint32_t)r > 10 && (uint32_t)r < 1024);
    expect_usable(f);
    fixture_free(f);
}

/* ---- memory cap ---- */

static void test_memory_grow_cap(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_memory_bytes = 4u << 20; /* 64 pages; the module allows up to 1024 */
    fixture *f = fixture_new(&cfg);
    wasm_val r = 0;
    assert_int_equal(call2(f, "grow", 63, 0, &r), 0);
    assert_int_equal((uint32_t)r, 1);
    assert_int_equal(call2(f, "grow", 1, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0xffffffffu); /* -1: over the cap, memory unchanged */
    assert_int_equal(call2(f, "grow", 0x10000, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0xffffffffu);
    assert_int_equal(call2(f, "grow", 0xffffffff, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0xffffffffu);
    assert_int_equal(call2(f, "size", 0, 0, &r), 0);
    assert_int_equal((uint32_t)r, 64);
    assert_int_equal(wasm_memory_size(wasm_instance_memory(f->inst)), 4u << 20);
    /* The grown memory is usable up to its last byte, and not one byte further. */
    assert_int_equal(call2(f, "load_edge", 0, 0, &r), 0);
    expect_trap(f, "load_oob", (4u << 20) - 3, 0, WASM_TRAP_MEM_OOB);
    fixture_free(f);
}

/* Tables cost host memory too: all tables of a store share the max_memory_bytes budget. */
static void test_table_budget(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_memory_bytes = 4u << 20; /* 512 Ki entries for all tables; the module's has 4 */
    fixture *f = fixture_new(&cfg);
    wasm_val r = 0;
    assert_int_equal(call2(f, "tgrow", (4u << 20) / 8 - 4, 0, &r), 0);
    assert_int_equal((uint32_t)r, 4);
    assert_int_equal(call2(f, "tgrow", 1, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0xffffffffu);
    assert_int_equal(call2(f, "tgrow", 0, 0, &r), 0);
    assert_int_equal((uint32_t)r, (4u << 20) / 8);
    /* Nothing is left for a host-created table either, but an empty one is fine. */
    assert_null(wasm_table_new(f->s, WASM_FUNCREF, (wasm_limits){1, UINT64_MAX}));
    assert_non_null(wasm_table_new(f->s, WASM_FUNCREF, (wasm_limits){0, UINT64_MAX}));
    expect_usable(f);
    fixture_free(f);

    /* (module (table 1000000 funcref)) needs 8 MB: over a 4 MiB budget it does not instantiate. */
    static const uint8_t big[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x04,
                                  0x06, 0x01, 0x70, 0x00, 0xc0, 0x84, 0x3d};
    wasm_module *m = NULL;
    wasm_error err;
    assert_int_equal(wasm_module_load(big, sizeof big, &m, &err), 0);
    wasm_store *s = wasm_store_new(&cfg);
    wasm_instance *inst = NULL;
    assert_int_equal(wasm_instance_new(s, m, NULL, 0, &inst, &err), ERR_LIMIT);
    wasm_store_free(s);
    cfg.max_memory_bytes = 8u << 20;
    s = wasm_store_new(&cfg);
    assert_int_equal(wasm_instance_new(s, m, NULL, 0, &inst, &err), 0);
    wasm_store_free(s);
    wasm_module_free(m);
}

static void test_instantiate_over_cap(void **state) {
    (void)state;
    /* (module (memory 128)): 8 MiB minimum. */
    static const uint8_t big[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
                                  0x05, 0x04, 0x01, 0x00, 0x80, 0x01};
    wasm_module *m = NULL;
    wasm_error err;
    assert_int_equal(wasm_module_load(big, sizeof big, &m, &err), 0);
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_memory_bytes = 4u << 20;
    wasm_store *s = wasm_store_new(&cfg);
    wasm_instance *inst = (wasm_instance *)&inst;
    assert_int_equal(wasm_instance_new(s, m, NULL, 0, &inst, &err), ERR_LIMIT);
    assert_null(inst);
    assert_non_null(strstr(err.msg, "limit"));
    /* A host-created memory obeys the same cap. */
    assert_null(wasm_memory_new(s, (wasm_limits){128, UINT64_MAX}));
    assert_non_null(wasm_memory_new(s, (wasm_limits){64, UINT64_MAX}));
    wasm_store_free(s);
    /* With a cap of 8 MiB the same module instantiates. */
    cfg.max_memory_bytes = 8u << 20;
    s = wasm_store_new(&cfg);
    assert_int_equal(wasm_instance_new(s, m, NULL, 0, &inst, &err), 0);
    assert_int_equal(wasm_memory_size(wasm_instance_memory(inst)), 8u << 20);
    wasm_store_free(s);
    wasm_module_free(m);
}

/* ---- every trap kind ---- */

static void test_trap_kinds(void **state) {
    (void)state;
    fixture *f = fixture_new(NULL);
    wasm_val r = 0;
    expect_trap(f, "unreachable", 0, 0, WASM_TRAP_UNREACHABLE);
    expect_usable(f);
    /* Memory: past the end, straddling the end, address + offset beyond 4 GiB. */
    assert_int_equal(call2(f, "load_oob", 65532, 0, &r), 0);
    expect_trap(f, "load_oob", 65536, 0, WASM_TRAP_MEM_OOB);
    expect_trap(f, "load_oob", 65533, 0, WASM_TRAP_MEM_OOB);
    expect_trap(f, "load_oob", 0xffffffff, 0, WASM_TRAP_MEM_OOB);
    expect_trap(f, "store_oob", 65528, 0, WASM_TRAP_MEM_OOB);
    expect_trap(f, "store_oob", 0xfffffffc, 0, WASM_TRAP_MEM_OOB);
    expect_trap(f, "fill_oob", 0, 0, WASM_TRAP_MEM_OOB);
    expect_usable(f);
    expect_trap(f, "table_oob", 0, 0, WASM_TRAP_TABLE_OOB);
    /* Integer arithmetic. */
    expect_trap(f, "div0", 1, 0, WASM_TRAP_DIV_ZERO);
    expect_trap(f, "rem0", 1, 0, WASM_TRAP_DIV_ZERO);
    expect_trap(f, "div_ovf", 0x80000000u, 0xffffffffu, WASM_TRAP_INT_OVERFLOW);
    assert_int_equal(call2(f, "div_ovf", 0x80000000u, 1, &r), 0);
    /* Float to integer: NaN is invalid, out of range overflows. */
    expect_trap(f, "trunc", f64_bits(NAN), 0, WASM_TRAP_CONVERSION);
    expect_trap(f, "trunc", f64_bits(3e9), 0, WASM_TRAP_INT_OVERFLOW);
    expect_trap(f, "trunc", f64_bits(-INFINITY), 0, WASM_TRAP_INT_OVERFLOW);
    assert_int_equal(call2(f, "trunc", f64_bits(-2147483648.9), 0, &r), 0);
    assert_int_equal((uint32_t)r, 0x80000000u);
    expect_trap(f, "trunc_u64", f32_bits(-1.0f), 0, WASM_TRAP_INT_OVERFLOW);
    expect_usable(f);
    /* Indirect calls: table slot 0 is [] -> i32, slot 1 is i32 -> i32, 2 and 3 are null. */
    assert_int_equal(call2(f, "call_ind", 0, 0, &r), 0);
    assert_int_equal((uint32_t)r, 7);
    assert_int_equal(call2(f, "call_ind_arg", 1, 42, &r), 0);
    assert_int_equal((uint32_t)r, 42);
    expect_trap(f, "call_ind", 2, 0, WASM_TRAP_UNINIT_ELEM);
    expect_trap(f, "call_ind", 1, 0, WASM_TRAP_INDIRECT_TYPE);
    expect_trap(f, "call_ind_arg", 0, 5, WASM_TRAP_INDIRECT_TYPE);
    expect_trap(f, "call_ind", 4, 0, WASM_TRAP_UNDEF_ELEM);
    expect_trap(f, "call_ind", 0xffffffff, 0, WASM_TRAP_UNDEF_ELEM);
    expect_usable(f);
    fixture_free(f);
}

/* ---- host functions ---- */

static void test_host_trap(void **state) {
    (void)state;
    fixture *f = fixture_new(NULL);
    wasm_val r = 0;
    assert_int_equal(call2(f, "host_count", 41, 0, &r), 0);
    assert_int_equal((uint32_t)r, 42);
    assert_int_equal(call2(f, "host_fail", 0, 0, NULL), ERR_TRAP);
    assert_int_equal(wasm_store_trap(f->s), WASM_TRAP_HOST);
    expect_msg(f, "host says no");
    expect_usable(f);
    /* The message does not stick to later traps. */
    expect_trap(f, "unreachable", 0, 0, WASM_TRAP_UNREACHABLE);
    /* A host function called directly by the embedder sees no caller instance. */
    wasm_functype t = {1, 1, (const uint8_t[]){WASM_I32, WASM_I32}};
    wasm_func *direct = wasm_func_new_host(f->s, t, h_count, f);
    wasm_val arg = 1, res = 0;
    assert_int_equal(wasm_call(f->s, direct, &arg, &res), ERR_TRAP);
    assert_int_equal(wasm_store_trap(f->s), WASM_TRAP_HOST);
    assert_int_equal(f->host_calls, 3);
    fixture_free(f);
}

static void test_host_exit(void **state) {
    (void)state;
    fixture *f = fixture_new(NULL);
    wasm_val r = 0;
    assert_int_equal(call2(f, "host_exit", 3, 0, &r), ERR_EXIT);
    assert_int_equal(wasm_store_trap(f->s), WASM_TRAP_EXIT);
    assert_int_equal(wasm_store_exit_code(f->s), 3);
    assert_int_equal(r, 0); /* no result was produced */
    assert_int_equal(call2(f, "host_exit", 0, 0, NULL), ERR_EXIT);
    assert_int_equal(wasm_store_exit_code(f->s), 0);
    expect_usable(f);
    fixture_free(f);
}

/* wasm_instance_reset (pooled instances): the initial memory is zeroed in place, what a run
 * grew is dropped and comes back as zero pages, globals return to their initial values. */
static void test_instance_reset(void **state) {
    (void)state;
    fixture *f = fixture_new(NULL);
    wasm_val r;
    assert_int_equal(call2(f, "store_oob", 100, 0, NULL), 0); /* bytes 104..111 */
    assert_int_equal(call2(f, "load_oob", 104, 0, &r), 0);
    assert_int_equal((uint32_t)r, 1);
    assert_int_equal(call2(f, "grow", 3, 0, &r), 0);
    assert_int_equal((uint32_t)r, 1);
    assert_int_equal(call2(f, "store_oob", 2 * 65536, 0, NULL), 0);
    wasm_error err;
    assert_int_equal(wasm_instance_reset(f->inst, &err), 0);
    assert_int_equal(call2(f, "size", 0, 0, &r), 0);
    assert_int_equal((uint32_t)r, 1);
    assert_int_equal(call2(f, "load_oob", 104, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0);
    expect_trap(f, "load_oob", 2 * 65536 + 4, 0, WASM_TRAP_MEM_OOB);
    assert_int_equal(call2(f, "grow", 3, 0, &r), 0);
    assert_int_equal(call2(f, "load_oob", 2 * 65536 + 4, 0, &r), 0);
    assert_int_equal((uint32_t)r, 0);
    fixture_free(f);
}

int main(void) {
    int rc = plat_read_file(LIMITS_WASM, &g_bytes, &g_len);
    if (rc != 0) {
        fprintf(stderr, "cannot read %s: %s\n", LIMITS_WASM, err_str(rc));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_reset),
        cmocka_unit_test(test_timeout_stops_loop),
        cmocka_unit_test(test_timeout_stops_bulk),
        cmocka_unit_test(test_timeout_big_bodies),
        cmocka_unit_test(test_interrupt_from_thread),
        cmocka_unit_test(test_recursion_depth),
        cmocka_unit_test(test_value_stack_exhaustion),
        cmocka_unit_test(test_memory_grow_cap),
        cmocka_unit_test(test_instantiate_over_cap),
        cmocka_unit_test(test_table_budget),
        cmocka_unit_test(test_trap_kinds),
        cmocka_unit_test(test_host_trap),
        cmocka_unit_test(test_host_exit),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_bytes);
    return rc;
}
