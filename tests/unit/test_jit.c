/* Unit tests of src/jit: the same module and inputs under the interpreter and the JIT give
 * identical results and traps (differential), the execution budget stops a compiled infinite
 * loop, deep recursion traps cleanly, no mapping is ever writable and executable (W^X), the
 * code cache hits on a second load and rejects a tampered entry, a cache hit runs without LLVM
 * through the ELF loader, and the loader declines what it does not handle (LLJIT or a compile
 * takes over) and survives corrupted objects. Guest: test_jit.wat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "jit/jit_int.h"
#include "platform/platform.h"
#include "wasm/wasm.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/IRReader.h>

#include <elf.h>

#include "test_jit_module.h"
#include "test_jit_reenter_module.h"

typedef struct run {
    wasm_module *m;
    wasm_store *s;
    wasm_instance *inst;
} run;

/* The backend the next jit_init gets; no_backend stands for a psl whose psljit.so is missing. */
static const jit_backend *(*g_backend_fn)(void) = jit_backend_llvm;
static int g_no_backend_calls;
static const jit_backend *no_backend(void) {
    g_no_backend_calls++;
    return NULL;
}

static void open_run_b(run *r, jit_tier tier, const char *cache, const wasm_config *cfg,
                       jit_bounds bounds) {
    jit_config jc = {.tier = tier,
                     .cache_dir = cache,
                     .verify = true,
                     .bounds = bounds,
                     .backend = g_backend_fn};
    assert_int_equal(jit_init(&jc), 0);
    wasm_error err;
    assert_int_equal(wasm_module_load(k_jit_module, sizeof k_jit_module, &r->m, &err), 0);
    r->s = wasm_store_new(cfg);
    assert_int_equal(wasm_instance_new(r->s, r->m, NULL, 0, &r->inst, &err), 0);
}

static void open_run(run *r, jit_tier tier, const char *cache, const wasm_config *cfg) {
    open_run_b(r, tier, cache, cfg, JIT_BOUNDS_DEFAULT);
}

static void close_run(run *r) {
    wasm_store_free(r->s);
    wasm_module_free(r->m);
    jit_shutdown();
}

/* Call export name; returns 0 or the trap kind (-1 on other errors). */
static int call(run *r, const char *name, const wasm_val *args, wasm_val *res) {
    wasm_extern ex;
    assert_int_equal(wasm_instance_export(r->inst, name, &ex), 0);
    int rc = wasm_call(r->s, ex.u.func, args, res);
    if (rc == 0)
        return 0;
    return rc == ERR_TRAP ? (int)wasm_store_trap(r->s) : -1;
}

static uint64_t dbl(double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    return v;
}
static uint64_t flt(float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return v;
}

typedef struct vec {
    const char *fn;
    wasm_val args[2];
} vec;

static const vec *vectors(size_t *n) {
    static vec v[80];
    size_t k = 0;
    for (uint32_t i = 0; i < 20; i++)
        v[k++] = (vec){"fib", {i}};
    v[k++] = (vec){"sum", {100000}};
    v[k++] = (vec){"sum", {0}};
    for (uint32_t i = 0; i < 5; i++)
        v[k++] = (vec){"ind", {i, 9}}; /* 0: fib, 1: sq, 2: rf (another type), 3: null, 4: out */
    v[k++] = (vec){"div", {7, 2}};
    v[k++] = (vec){"div", {7, 0}};
    v[k++] = (vec){"div", {0x80000000u, 0xffffffffu}};
    v[k++] = (vec){"div", {0xfffffff9u, 2}};
    v[k++] = (vec){"load", {8}};
    v[k++] = (vec){"load", {65532}};
    v[k++] = (vec){"load", {65533}};
    v[k++] = (vec){"load", {0xffffffffu}};
    v[k++] = (vec){"grow", {1}};
    v[k++] = (vec){"load", {65536 + 100}}; /* valid only after the grow above */
    v[k++] = (vec){"grow", {70000}};
    v[k++] = (vec){"fmin", {dbl(-0.0), dbl(0.0)}};
    v[k++] = (vec){"fmin", {dbl(1.0), 0x7ff4000000000000ull}};
    v[k++] = (vec){"fmin", {dbl(3.5), dbl(-2.0)}};
    v[k++] = (vec){"trunc", {flt(-3.9f)}};
    v[k++] = (vec){"trunc", {flt(2147483648.0f)}};
    v[k++] = (vec){"trunc", {0x7fc00000u}};
    /* The memory has 2 pages now (131072 bytes). */
    v[k++] = (vec){"dropload", {131068}};
    v[k++] = (vec){"dropload", {131069}};
    v[k++] = (vec){"dropload", {0xfffffffcu}};
    v[k++] = (vec){"sumto", {131072}};
    v[k++] = (vec){"sumto", {131073}};
    v[k++] = (vec){"store2", {131060, 5}};
    v[k++] = (vec){"store2", {131061, 6}}; /* traps: 16 keeps 6, the i64 is not written */
    v[k++] = (vec){"load", {131064}};
    v[k++] = (vec){"store2", {0xfffffff0u, 7}};
    v[k++] = (vec){"load", {16}};
    v[k++] = (vec){"walk", {0, 1000}};
    v[k++] = (vec){"walk", {130000, 100}};
    v[k++] = (vec){"walk", {131040, 100}}; /* traps at the end of memory */
    v[k++] = (vec){"walk", {0xfffffff0u, 3}};
    v[k++] = (vec){"walkdown", {1000, 100}};
    v[k++] = (vec){"walkdown", {20, 10}}; /* wraps below 0: traps */
    v[k++] = (vec){"scan", {0, 1000}};
    v[k++] = (vec){"scan", {131000, 100}};     /* traps at the end of memory */
    v[k++] = (vec){"scan", {0xfffffff0u, 32}}; /* traps at once */
    v[k++] = (vec){"scan4", {0, 1000}};
    v[k++] = (vec){"scan4", {130000, 4000}}; /* traps at the end of memory */
    v[k++] = (vec){"scan4", {0xfffffff0u, 8}};
    for (uint32_t d = 9996; d <= 10000; d++) /* around the depth limit (10000 calls) */
        v[k++] = (vec){"deep", {d}};
    v[k++] = (vec){"unreach", {0}};
    v[k++] = (vec){"rec", {1}};
    *n = k;
    return v;
}

/* Every vector, in order, on one instance per tier: results and trap kinds must agree. The JIT
 * run uses the code cache in cache (NULL: none). */
static void differential_cache(jit_bounds bounds, const char *cache) {
    size_t n;
    const vec *v = vectors(&n);
    wasm_val res_i[80][2], res_j[80][2];
    int rc_i[80], rc_j[80];
    for (int tier = 0; tier < 2; tier++) {
        run r;
        open_run_b(&r, tier ? JIT_TIER_JIT : JIT_TIER_INTERP, tier ? cache : NULL, NULL, bounds);
        if (tier)
            assert_int_equal(jit_bounds_mode(), bounds);
        for (size_t k = 0; k < n; k++) {
            wasm_val *res = tier ? res_j[k] : res_i[k];
            res[0] = res[1] = 0;
            int rc = call(&r, v[k].fn, v[k].args, res);
            (tier ? rc_j : rc_i)[k] = rc;
        }
        close_run(&r);
    }
    jit_stats st;
    jit_get_stats(&st);
    assert_true(st.functions > 0);
    for (size_t k = 0; k < n; k++) {
        if (rc_i[k] != rc_j[k] || (rc_i[k] == 0 && res_i[k][0] != res_j[k][0]))
            fail_msg("%s(%llu, %llu): interp rc %d res %llx, jit rc %d res %llx", v[k].fn,
                     (unsigned long long)v[k].args[0], (unsigned long long)v[k].args[1], rc_i[k],
                     (unsigned long long)res_i[k][0], rc_j[k], (unsigned long long)res_j[k][0]);
    }
    /* Spot checks that the vectors exercise what they claim. */
    assert_int_equal(res_j[10][0], 55);
    assert_int_equal(rc_j[n - 1], WASM_TRAP_STACK);
    assert_int_equal(rc_j[n - 2], WASM_TRAP_UNREACHABLE);
    /* deep(9996..10000): the first ones return, the last ones trap, the switch where the call
     * of the leaf $sq is one too many (a leaf checks the limit although it counts nothing). */
    assert_int_equal(rc_j[n - 7], 0);
    assert_int_equal(res_j[n - 7][0], 9996 + 9);
    assert_int_equal(rc_j[n - 3], WASM_TRAP_STACK);
    for (size_t k = 0; k < n; k++) {
        if (strcmp(v[k].fn, "dropload") == 0 && v[k].args[0] != 131068)
            assert_int_equal(rc_j[k], WASM_TRAP_MEM_OOB);
        if (strcmp(v[k].fn, "scan4") == 0)
            assert_int_equal(rc_j[k], v[k].args[0] ? WASM_TRAP_MEM_OOB : 0);
        if (strcmp(v[k].fn, "scan") == 0)
            assert_int_equal(rc_j[k], v[k].args[0] ? WASM_TRAP_MEM_OOB : 0);
        if (strncmp(v[k].fn, "walk", 4) == 0)
            assert_int_equal(rc_j[k], v[k].args[0] == 131040 || v[k].args[0] == 0xfffffff0u ||
                                              (v[k].args[0] == 20 && v[k].args[1] == 10)
                                          ? WASM_TRAP_MEM_OOB
                                          : 0);
    }
}

static void differential(jit_bounds bounds) {
    differential_cache(bounds, NULL);
}

static void test_differential_checks(void **state) {
    (void)state;
    differential(JIT_BOUNDS_CHECKS);
}

/* Guard region: no compare on loads and stores, a fault in compiled code becomes the trap. */
static void test_differential_guard(void **state) {
    (void)state;
    differential(JIT_BOUNDS_GUARD);
}

/* Re-entry: "down" recurses through a host import that calls "down" again with wasm_call, so
 * compiled frames, helper calls and host frames alternate. The first n whose call traps, and
 * its trap, must be the interpreter's (compiled code passes the call depth in a register and
 * hands it to the store only when it calls through a helper). */
typedef struct reenter {
    wasm_func *down;
} reenter;

static int h_reenter(wasm_store *s, wasm_instance *caller, void *ud, const wasm_val *args,
                     wasm_val *results) {
    (void)caller;
    const reenter *re = ud;
    int rc = wasm_call(s, re->down, args, results);
    return rc == 0 ? 0 : (int)wasm_store_trap(s);
}

static void reenter_boundary(jit_tier tier, uint32_t *first_trap, int *trap) {
    jit_config jc = {.tier = tier, .verify = true, .backend = g_backend_fn};
    assert_int_equal(jit_init(&jc), 0);
    wasm_module *m;
    wasm_error err;
    assert_int_equal(wasm_module_load(k_jit_reenter_module, sizeof k_jit_reenter_module, &m, &err),
                     0);
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.max_call_depth = 300;
    wasm_store *s = wasm_store_new(&cfg);
    reenter re = {0};
    const uint8_t ii[2] = {WASM_I32, WASM_I32};
    wasm_extern imp = {.kind = WASM_EXTERN_FUNC,
                       .u.func = wasm_func_new_host(s, (wasm_functype){1, 1, ii}, h_reenter, &re)};
    wasm_instance *inst;
    assert_int_equal(wasm_instance_new(s, m, &imp, 1, &inst, &err), 0);
    wasm_extern ex;
    assert_int_equal(wasm_instance_export(inst, "down", &ex), 0);
    re.down = ex.u.func;
    *first_trap = 0;
    for (uint32_t n = 1; n < 1000 && !*first_trap; n++) {
        wasm_val a[1] = {n}, r[1] = {0};
        if (wasm_call(s, re.down, a, r) != 0) {
            *first_trap = n;
            *trap = (int)wasm_store_trap(s);
        } else {
            assert_int_equal(r[0], n);
        }
    }
    wasm_store_free(s);
    wasm_module_free(m);
    jit_shutdown();
}

static void test_reenter_depth(void **state) {
    (void)state;
    uint32_t first_i, first_j;
    int trap_i = 0, trap_j = 0;
    reenter_boundary(JIT_TIER_INTERP, &first_i, &trap_i);
    jit_stats s0, s1;
    jit_get_stats(&s0);
    reenter_boundary(JIT_TIER_JIT, &first_j, &trap_j);
    jit_get_stats(&s1);
    assert_true(s1.functions > s0.functions); /* "down" ran compiled */
    assert_true(first_i > 100 && first_i < 1000);
    assert_int_equal(trap_i, WASM_TRAP_STACK);
    assert_int_equal(first_j, first_i);
    assert_int_equal(trap_j, trap_i);
}

/* With the guard-mode fault handler installed, a fault outside compiled code still kills the
 * process with SIGSEGV (the handler passes it on). */
static void test_guard_passes_other_faults(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* cmocka's handler would report and carry on */
        run r;
        open_run_b(&r, JIT_TIER_JIT, NULL, NULL, JIT_BOUNDS_GUARD);
        wasm_val a[1] = {0xfffffff0u}, res[1];
        if (call(&r, "load", a, res) != WASM_TRAP_MEM_OOB)
            _exit(3);
        /* An address in the memory's guard region, but a write from C, not compiled code. */
        wasm_extern ex;
        if (wasm_instance_export(r.inst, "mem", &ex) != 0)
            _exit(4);
        *(volatile uint8_t *)(wasm_memory_data(ex.u.memory) + (5ull << 30)) = 1;
        _exit(5);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
}

/* Status of a forked child that reads byte p of the parent's address space: exit 0 when it
 * reads 0x5a, killed by SIGSEGV when p is not mapped in the child. */
static int child_reads(const uint8_t *p) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        _exit(*(const volatile uint8_t *)p == 0x5a ? 0 : 3);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static bool killed_by_segv(int st) {
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

/* Linear memories made while the tier is registered are left out of forked children (the auto
 * tier's compiler process is forked from the interpreter's process, which would otherwise copy
 * every page it writes afterwards), also the pages wasm_instance_reset replaced; without the
 * tier a child sees the memory. */
static void test_memory_not_forked(void **state) {
    (void)state;
    run r;
    open_run(&r, JIT_TIER_JIT, NULL, NULL);
    wasm_extern ex;
    assert_int_equal(wasm_instance_export(r.inst, "mem", &ex), 0);
    uint8_t *mem = wasm_memory_data(ex.u.memory);
    mem[0] = 0x5a;
    assert_true(killed_by_segv(child_reads(mem)));
    wasm_val a[1] = {20}, res[1];
    assert_int_equal(call(&r, "grow", a, res), 0);
    assert_int_equal(res[0], 21);
    mem[10 * 65536] = 0x5a;
    assert_true(killed_by_segv(child_reads(mem + 10 * 65536)));
    wasm_error err;
    assert_int_equal(wasm_instance_reset(r.inst, &err), 0); /* drops pages 1..20 */
    assert_int_equal(call(&r, "grow", a, res), 0);
    mem[0] = 0x5a;
    mem[10 * 65536] = 0x5a;
    assert_true(killed_by_segv(child_reads(mem)));
    assert_true(killed_by_segv(child_reads(mem + 10 * 65536)));
    close_run(&r);

    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(wasm_instance_export(r.inst, "mem", &ex), 0);
    mem = wasm_memory_data(ex.u.memory);
    mem[0] = 0x5a;
    int st = child_reads(mem);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close_run(&r);
}

/* While the JIT is registered a memory holds at most JIT_MEM_MAX bytes (its code relies on
 * that): growing to 65536 pages fails, to 65535 works, and a module asking for 65536 pages at
 * the start is refused with the limit in the message. Without the tier 65536 pages work. */
static void test_memory_cap(void **state) {
    (void)state;
    for (int tier = 0; tier < 2; tier++) {
        run r;
        open_run(&r, tier ? JIT_TIER_JIT : JIT_TIER_INTERP, NULL, NULL);
        wasm_val a[1] = {65535}, res[1];
        assert_int_equal(call(&r, "grow", a, res), 0);
        assert_int_equal(res[0], tier ? 1 : 65536);
        wasm_module *big = NULL; /* outlives the store (wasm_instance_new) */
        if (tier) {
            a[0] = 65534;
            assert_int_equal(call(&r, "grow", a, res), 0);
            assert_int_equal(res[0], 65535);
            assert_int_equal(res[0] * 65536, JIT_MEM_MAX);
            /* (memory 65536) */
            static const uint8_t bytes[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
                                            0x05, 0x05, 0x01, 0x00, 0x80, 0x80, 0x04};
            wasm_instance *inst;
            wasm_error err;
            assert_int_equal(wasm_module_load(bytes, sizeof bytes, &big, &err), 0);
            assert_int_not_equal(wasm_instance_new(r.s, big, NULL, 0, &inst, &err), 0);
            assert_non_null(strstr(err.msg, "4294901760 bytes"));
        }
        wasm_store_free(r.s);
        if (big)
            wasm_module_free(big); /* before jit_shutdown: the tier frees its state for it */
        r.s = NULL;
        close_run(&r);
    }
}

/* jit__loops_near, which decides how an OSR entry is compiled first: an
 * activation leaves OSR code for newer code only at back edges of loops around the entry's head,
 * or of the head's own loop when none encloses it (mid-level code), and of the top-level loops
 * after its nest, so an entry at a top-level loop with a long loop after it is compiled at the
 * default level at once. Here: a loop after which none encloses it, an inner loop and the outer
 * loop around it, the last loop. */
static void test_loop_around(void **state) {
    (void)state;
    /* (func (param i32) (local i32)
     *   (loop $a (br_if $a (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
     *   (loop $o (local.set 1 (i32.add (local.get 1) (local.get 0)))
     *     (loop $i (br_if $i (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
     *     (br_if $o (local.get 1)))) */
    static const uint8_t bytes[] = {
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x01,
        0x7f, 0x00, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x2c, 0x01, 0x2a, 0x01, 0x01, 0x7f,
        0x03, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b, 0x03,
        0x40, 0x20, 0x01, 0x20, 0x00, 0x6a, 0x21, 0x01, 0x03, 0x40, 0x20, 0x00, 0x41,
        0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b, 0x20, 0x01, 0x0d, 0x00, 0x0b, 0x0b};
    wasm_module *m = NULL;
    wasm_error err;
    assert_int_equal(wasm_module_load(bytes, sizeof bytes, &m, &err), 0);
    /* the loop heads: targets of backward branches */
    const wasm_code *c = &m->codes[0];
    bool hd[64] = {0};
    uint32_t he[64] = {0}, heads[8], nh = 0;
    assert_true(c->ncode < 64);
    jit__loop_heads(c, hd, he);
    for (uint32_t i = 0; i < c->ncode; i++)
        if (hd[i] && nh < 8)
            heads[nh++] = i;
    assert_int_equal(nh, 3); /* $a, $o, $i, in code order */
    uint32_t a = heads[0], out = heads[1], in = heads[2];
    assert_true(he[a] <= out && out < in && he[in] <= he[out]);
    /* where an activation entered at $i may leave: at $o's back edge; no loop after the nest */
    uint8_t mark[64] = {0};
    bool ar;
    uint32_t end = jit__osr_nest(hd, he, in, mark, &ar);
    assert_true(ar);
    assert_int_equal(end, he[out]);
    assert_true(mark[out] == 1 && mark[a] == 0 && mark[in] == 0);
    assert_int_equal(jit__loops_after(hd, he, c->ncode, end, mark), 0);
    /* entered at $a: no loop around it; $o follows (its inner $i is not a top-level loop) */
    memset(mark, 0, sizeof mark);
    end = jit__osr_nest(hd, he, a, mark, &ar);
    assert_false(ar);
    assert_int_equal(end, he[a]);
    assert_int_equal(jit__loops_after(hd, he, c->ncode, end, mark), he[out] - out);
    assert_true(mark[out] == 2 && mark[in] == 0 && mark[a] == 0);
    bool around;
    uint32_t after;
    jit__loops_near(m, 0, a, &around, &after);
    assert_false(around);
    assert_int_equal(after, he[out] - out); /* $o's cells */
    jit__loops_near(m, 0, in, &around, &after);
    assert_true(around);
    jit__loops_near(m, 0, out, &around, &after);
    assert_false(around);
    assert_int_equal(after, 0);
    wasm_module_free(m);
}

/* Fills the 64 KiB memory "mem" of r's instance with the doubles 0, 0.5, 1, ...; returns it. */
static uint8_t *fill_halves(run *r) {
    wasm_extern ex;
    assert_int_equal(wasm_instance_export(r->inst, "mem", &ex), 0);
    uint8_t *mem = wasm_memory_data(ex.u.memory);
    for (uint32_t i = 0; i < 65536 / 8; i++) {
        double d = i * 0.5;
        memcpy(mem + 8 * i, &d, 8);
    }
    return mem;
}

/* Run export fn(x, y, n) under tier and bounds mode on a memory whose 64 KiB hold the doubles
 * 0, 0.5, 1, ...; copy the memory after the call (or its trap) to out. cache: a code cache
 * folder or NULL (the tests' JIT runs share one: a compile per level and mode, not per case). */
static int vec_run(jit_tier tier, jit_bounds bounds, const char *fn, const uint32_t xyn[3],
                   uint8_t *out, wasm_val *res, const char *cache) {
    run r;
    open_run_b(&r, tier, cache, NULL, bounds);
    uint8_t *mem = fill_halves(&r);
    wasm_val a[3] = {xyn[0], xyn[1], xyn[2]};
    int rc = call(&r, fn, a, res);
    memcpy(out, mem, 65536);
    close_run(&r);
    return rc;
}

/* Removes folder dir and what it holds (a test's code cache). */
static void rm_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The IR files PSL_JIT_DUMP wrote into dir (the process's first dump is m.ll, later ones
 * m.ll.N) in the order written, each after a line "; next", concatenated; removes them and dir. */
static char *read_dumps(const char *dir) {
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    unsigned nums[64], nn = 0;
    struct dirent *de;
    while ((de = readdir(dp)))
        if (strncmp(de->d_name, "m.ll", 4) == 0 && nn < 64)
            nums[nn++] = de->d_name[4] ? (unsigned)atoi(de->d_name + 5) : 0;
    closedir(dp);
    for (unsigned i = 1; i < nn; i++) /* insertion sort: a few files */
        for (unsigned j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
            unsigned t = nums[j];
            nums[j] = nums[j - 1];
            nums[j - 1] = t;
        }
    char *all = calloc(1, 1);
    size_t n = 0;
    for (unsigned i = 0; i < nn; i++) {
        char path[128];
        if (nums[i])
            snprintf(path, sizeof path, "%s/m.ll.%u", dir, nums[i]);
        else
            snprintf(path, sizeof path, "%s/m.ll", dir);
        uint8_t *ir;
        size_t len;
        assert_int_equal(plat_read_file(path, &ir, &len), 0);
        unlink(path);
        all = realloc(all, n + len + 16);
        n += (size_t)sprintf(all + n, "; next\n");
        memcpy(all + n, ir, len);
        n += len;
        all[n] = 0;
        free(ir);
    }
    assert_int_equal(rmdir(dir), 0);
    return all;
}

/* How many function definitions of IR text ir contain text what. */
static int defines_with(const char *ir, const char *what) {
    int n = 0;
    for (const char *d = strstr(ir, "\ndefine "); d; d = strstr(d + 1, "\ndefine ")) {
        const char *end = strstr(d + 1, "\n}");
        const char *w = strstr(d, what);
        n += w && (!end || w < end);
    }
    return n;
}

/* Runs export fn with the nargs (at most 4) arguments args under tier and bounds mode on a fresh
 * instance whose memory holds the bytes i * 7 + 1; the memory after the call into out (64 KiB),
 * the result into res (when not NULL); returns call's result. cache as vec_run's. */
static int pattern_run(jit_tier tier, jit_bounds bounds, const char *fn, const uint32_t *args,
                       unsigned nargs, uint8_t *out, wasm_val *res, const char *cache) {
    run r;
    open_run_b(&r, tier, cache, NULL, bounds);
    wasm_extern ex;
    assert_int_equal(wasm_instance_export(r.inst, "mem", &ex), 0);
    uint8_t *mem = wasm_memory_data(ex.u.memory);
    for (uint32_t i = 0; i < 65536; i++)
        mem[i] = (uint8_t)(i * 7 + 1);
    wasm_val a[4], r0[1];
    for (unsigned i = 0; i < nargs && i < 4; i++)
        a[i] = args[i];
    int rc = call(&r, fn, a, res ? res : r0);
    memcpy(out, mem, 65536);
    close_run(&r);
    return rc;
}

/* mark(args[0..3]) as pattern_run. */
static int mark_run(jit_tier tier, jit_bounds bounds, const uint32_t *args, uint8_t *out,
                    wasm_val *res, const char *cache) {
    return pattern_run(tier, bounds, "mark", args, 4, out, res, cache);
}

/* One case of an export: runs it with arguments args under tier and bounds mode on a fresh
 * instance; the memory after the call (or its trap) into out (64 KiB), the result into res;
 * returns call's result. cache as vec_run's. */
typedef int (*case_run)(jit_tier tier, jit_bounds bounds, const uint32_t *args, uint8_t *out,
                        wasm_val *res, const char *cache);

/* Each of the n cases (width arguments each) under the interpreter and under --tier jit with
 * code cache `cache`, in both bounds modes: the same result or trap and the same memory. */
static void diff_cases(case_run run1, const uint32_t *cases, size_t n, size_t width,
                       const char *cache) {
    static uint8_t mi[65536], mj[65536];
    for (unsigned b = 0; b < 2; b++)
        for (size_t c = 0; c < n; c++) {
            wasm_val ri[1] = {0}, rj[1] = {0};
            jit_bounds bm = b ? JIT_BOUNDS_CHECKS : JIT_BOUNDS_GUARD;
            int want = run1(JIT_TIER_INTERP, bm, cases + c * width, mi, ri, NULL);
            int got = run1(JIT_TIER_JIT, bm, cases + c * width, mj, rj, cache);
            assert_int_equal(got, want);
            if (want == 0)
                assert_int_equal(rj[0], ri[0]);
            assert_memory_equal(mj, mi, sizeof mi);
        }
}

/* The optimised IR (PSL_JIT_DUMP) of the module compiled when case args runs under --tier jit
 * with code cache `cache` (which must hold no object of it yet); the caller frees it. */
static char *dump_case(case_run run1, const uint32_t *args, const char *cache) {
    static uint8_t mem[65536];
    char dir[] = "/tmp/psl-ir-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.ll", dir);
    setenv("PSL_JIT_DUMP", path, 1);
    wasm_val r0[1];
    assert_int_equal(run1(JIT_TIER_JIT, JIT_BOUNDS_GUARD, args, mem, r0, cache), 0);
    unsetenv("PSL_JIT_DUMP");
    return read_dumps(dir);
}

/* Counted loops over pointers (axpy, axpy2) run in a checked copy with plain loads when every
 * access of the run is inside the memory and the stored range overlaps no other; results,
 * traps and the memory left behind are the interpreter's in every case: apart, off the end of
 * the memory (a trap after the stores before it), overlapping either way, a bound the counter
 * passes (ne: it wraps around, the run goes off the end), one iteration. */
static void test_vec_loops(void **state) {
    (void)state;
    static const struct {
        const char *fn;
        uint32_t xyn[3];
    } cases[] = {
        {"axpy", {0, 32768, 1000}},
        {"axpy", {0, 65536 - 800, 200}},
        {"axpy", {8000, 8008, 500}},
        {"axpy", {8008, 8000, 500}},
        {"axpy", {65536 - 8, 0, 1}},
        {"axpy", {0, 32768, 0}},
        {"axpy2", {0, 32768, 1000}},
        {"axpy2", {0, 65536 - 816, 400}},
        {"axpy2", {100, 104, 300}},
        {"axpy2", {0, 32768, 0}},
        {"axpy2", {0, 32760, 8191}},
        {"axpy3", {0, 32768, 1000}},
        {"axpy3", {0, 32768, 0xfffffffbu}},
        {"axpy3", {16, 65536 - 80, 20}},
        {"axpy3", {8, 0, 1000}},
    };
    static uint8_t mi[65536], mj[65536];
    char cache[] = "/tmp/psl-vecc-XXXXXX";
    assert_non_null(mkdtemp(cache));
    /* At the default level, then at the mid level (PSL_JIT_QUICK=mid; the auto tier compiles
     * OSR entries and called functions so first, JIT_PIPELINE_MID_VEC). */
    for (int lv = 0; lv < 2; lv++) {
        if (lv)
            setenv("PSL_JIT_QUICK", "mid", 1);
        /* The module's IR (PSL_JIT_DUMP, written after the optimiser): the loops got a
         * checked copy (alias scopes psl.vec.N.*, one domain each), and LLVM vectorised each:
         * four functions (axpy, axpy2, axpy3, axpy_rep) use vectors of doubles; axpy2's and
         * axpy3's only because their `<u` (`<s`) counter's add is emitted nuw (nsw) in the
         * copy, so LLVM can count their trips. (pairs has a checked copy too, not vectorised:
         * test_countdown_loops.)
         * Fails when the analysis takes no loop or a copy is not vectorised. */
        char dir[] = "/tmp/psl-vec-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/m.ll", dir);
        setenv("PSL_JIT_DUMP", path, 1);
        wasm_val r0[1];
        assert_int_equal(
            vec_run(JIT_TIER_JIT, JIT_BOUNDS_GUARD, "axpy", cases[0].xyn, mj, r0, cache), 0);
        unsetenv("PSL_JIT_DUMP");
        char *ir = read_dumps(dir);
        assert_non_null(strstr(ir, "!\"psl.vec.0\"}"));
        assert_non_null(strstr(ir, "!\"psl.vec.1\"}"));
        assert_non_null(strstr(ir, "llvm.loop.isvectorized"));
        assert_int_equal(defines_with(ir, "x double>"), 4);
        free(ir);
        for (unsigned b = 0; b < 2; b++)
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                wasm_val ri[1] = {0}, rj[1] = {0};
                jit_bounds bm = b ? JIT_BOUNDS_CHECKS : JIT_BOUNDS_GUARD;
                int want = vec_run(JIT_TIER_INTERP, bm, cases[c].fn, cases[c].xyn, mi, ri, NULL);
                int got = vec_run(JIT_TIER_JIT, bm, cases[c].fn, cases[c].xyn, mj, rj, cache);
                assert_int_equal(got, want);
                if (want == 0)
                    assert_int_equal(rj[0], ri[0]);
                assert_memory_equal(mj, mi, sizeof mi);
            }
    }
    unsetenv("PSL_JIT_QUICK");
    rm_dir(cache);
}

/* Address adds that cannot wrap in a checked copy (mark, a sieve's marking loop): the copy
 * computes mem + bits + index in 64 bits. Results, traps and memory are the interpreter's when
 * the check holds, when bits is so high that bits + index wraps around to the memory's start
 * (the ordinary copy must run: in 64 bits the access would land in the guard region and trap),
 * and when the loop runs off the end of the memory. */
static void test_split_adds(void **state) {
    (void)state;
    static const uint32_t cases[][4] = {
        {1024, 3, 100000, 7},           /* apart, many words */
        {0xffffff00u, 0x800, 40000, 5}, /* bits + index wraps to 0.. (in the memory) */
        {65536 - 64, 0, 100000, 3},     /* off the end: a trap after the stores before it */
        {0, 50, 40, 1},                 /* guarded: no iteration */
        {4096, 5, 6, 100},              /* one iteration */
    };
    static uint8_t mj[65536];
    char cache[] = "/tmp/psl-split-XXXXXX";
    assert_non_null(mkdtemp(cache));
    diff_cases(mark_run, cases[0], sizeof cases / sizeof cases[0], 4, cache);
    /* the wrapping case does not trap */
    assert_int_equal(mark_run(JIT_TIER_JIT, JIT_BOUNDS_GUARD, cases[1], mj, NULL, cache), 0);
    rm_dir(cache);
}

/* The definition of IR text ir that contains text what: [*start, *end); false when none does. */
static bool def_with(const char *ir, const char *what, const char **start, const char **end) {
    const char *d = strstr(ir, what);
    if (!d)
        return false;
    *start = d;
    while (*start > ir && strncmp(*start, "\ndefine ", 8) != 0)
        (*start)--;
    *end = strstr(d, "\n}");
    if (!*end)
        *end = d + strlen(d);
    return true;
}

/* In the definition of IR text ir that contains text what: the adds whose two operands are
 * both loads ("%a = load ...", "%c = add i32 %a, %b"); -1 when no definition contains it. */
static int adds_of_loads(const char *ir, const char *what) {
    const char *start, *end;
    if (!def_with(ir, what, &start, &end))
        return -1;
    int n = 0;
    for (const char *l = start; l && l < end; l = strchr(l + 1, '\n')) {
        char a[32], b[32];
        if (sscanf(l, " %%%*[^ ] = add i32 %%%31[^,], %%%31[^ \n]", a, b) != 2)
            continue;
        int loads = 0;
        for (int k = 0; k < 2; k++) {
            char def[48];
            snprintf(def, sizeof def, "\n  %%%s = load ", k ? b : a);
            const char *at = strstr(start, def);
            loads += at && at < end;
        }
        n += loads == 2;
    }
    return n;
}

/* mix(args[0..2]) as pattern_run. */
static int mix_run(jit_tier tier, jit_bounds bounds, const uint32_t *args, uint8_t *out,
                   wasm_val *res, const char *cache) {
    return pattern_run(tier, bounds, "mix", args, 3, out, res, cache);
}

/* Add chains in latency order (jit_order.c): in mix's round the two loaded terms are added to
 * each other first (with PSL_JIT_ORDER=0 each is added to the running sum: the test fails);
 * results, traps and memory are the interpreter's in both bounds modes, including a run off the
 * end of the memory and one whose addresses wrap around. */
static void test_add_order(void **state) {
    (void)state;
    static const uint32_t cases[][3] = {
        {0, 4096, 4096},       /* apart */
        {100, 100, 8000},      /* the same words */
        {60000, 0, 8192},      /* k off the end: a trap */
        {0xfffffff0u, 16, 64}, /* k + i wraps: out of bounds */
        {8, 12, 0},            /* one round (the loop runs once) */
    };
    char cache[] = "/tmp/psl-order-XXXXXX";
    assert_non_null(mkdtemp(cache));
    char *ir = dump_case(mix_run, cases[0], cache);
    assert_int_equal(adds_of_loads(ir, "1779033703"), 1); /* mix's e starts at 0x6a09e667 */
    free(ir);
    diff_cases(mix_run, cases[0], sizeof cases / sizeof cases[0], 3, cache);
    rm_dir(cache);
}

/* Frame addresses recomputed where they are used (jit_remat.c), on a module in IR text: the
 * prologue (the entry and the block its check leads to; the other way traps) computes
 * `sp - 880`, `+ 68`, `| 8` and a zero extension; the blocks that use them get copies computed at
 * their start, a phi's incoming value in the incoming block, the prologue keeps what it uses
 * itself (the store of the new stack pointer) and loses the rest; the module still verifies. A
 * value that is not a constant offset (a multiply) stays where it is. */
static void test_remat_frame(void **state) {
    (void)state;
    static const char ir[] = "define i64 @f(i32 %sp, i32 %n, ptr %g) {\n"
                             "entry:\n"
                             "  %c0 = icmp ult i32 %sp, 4096\n"
                             "  br i1 %c0, label %trap, label %ok\n"
                             "trap:\n"
                             "  unreachable\n"
                             "ok:\n"
                             "  %base = sub i32 %sp, 880\n"
                             "  store i32 %base, ptr %g\n"
                             "  %a = add i32 %base, 68\n"
                             "  %b = or i32 %a, 8\n"
                             "  %z = zext i32 %b to i64\n"
                             "  %m = mul i32 %sp, 3\n"
                             "  %c = icmp eq i32 %n, 0\n"
                             "  br i1 %c, label %then, label %else\n"
                             "then:\n"
                             "  %r1 = add i32 %b, %n\n"
                             "  br label %join\n"
                             "else:\n"
                             "  %r2 = add i32 %a, %m\n"
                             "  br label %join\n"
                             "join:\n"
                             "  %p = phi i32 [ %r1, %then ], [ %r2, %else ]\n"
                             "  %q = phi i64 [ %z, %then ], [ 7, %else ]\n"
                             "  %pz = zext i32 %p to i64\n"
                             "  %s = add i64 %pz, %q\n"
                             "  ret i64 %s\n"
                             "}\n";
    jit__llvm_init();
    LLVMContextRef cx = LLVMContextCreate();
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, sizeof ir - 1, "t");
    LLVMModuleRef mod = NULL;
    char *msg = NULL;
    assert_int_equal(LLVMParseIRInContext(cx, buf, &mod, &msg), 0);
    jit__remat_frame_addrs(mod);
    assert_int_equal(LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg), 0);
    LLVMDisposeMessage(msg);
    LLVMValueRef fn = LLVMGetNamedFunction(mod, "f");
    /* per block: the instructions with a constant operand of 880, 68 or 8, and the zexts */
    char want[][16] = {"entry", "trap", "ok", "then", "else", "join"};
    int k880[6] = {0}, k68[6] = {0}, k8[6] = {0}, zext[6] = {0}, mul[6] = {0};
    int bi = 0;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb;
         bb = LLVMGetNextBasicBlock(bb), bi++) {
        assert_true(bi < 6);
        assert_string_equal(LLVMGetBasicBlockName(bb), want[bi]);
        for (LLVMValueRef i = LLVMGetFirstInstruction(bb); i; i = LLVMGetNextInstruction(i)) {
            zext[bi] += LLVMGetInstructionOpcode(i) == LLVMZExt;
            mul[bi] += LLVMGetInstructionOpcode(i) == LLVMMul;
            for (int o = 0; o < LLVMGetNumOperands(i); o++) {
                LLVMValueRef v = LLVMGetOperand(i, o);
                if (!LLVMIsAConstantInt(v) || LLVMIsAPHINode(i))
                    continue;
                long long c = LLVMConstIntGetSExtValue(v);
                k880[bi] += c == 880;
                k68[bi] += c == 68;
                k8[bi] += c == 8;
            }
        }
    }
    assert_int_equal(bi, 6);
    /* per block from ok on: constants 880, 68, 8, zexts, multiplies (-1: not checked). ok keeps
     * sp - 880 (stored there) and the multiply, no + 68, | 8 or zext; then has sp - 880, + 68,
     * | 8 for %b and the zext the phi takes from it; else sp - 880 and + 68 for %a only; join
     * its own zext of the phi only */
    static const int want_counts[4][5] = {
        {1, 0, 0, 0, 1}, {1, 1, 1, 1, -1}, {1, 1, 0, -1, 0}, {0, 0, 0, 1, -1}};
    for (int b = 0; b < 4; b++) {
        const int got[5] = {k880[b + 2], k68[b + 2], k8[b + 2], zext[b + 2], mul[b + 2]};
        for (int c = 0; c < 5; c++)
            if (want_counts[b][c] >= 0)
                assert_int_equal(got[c], want_counts[b][c]);
    }
    LLVMDisposeModule(mod);
    LLVMContextDispose(cx);
}

/* Runs pairs(a, p, n) under tier on a fresh instance whose memory holds doubles i / 2
 * (fill_halves); the memory after the call into out (64 KiB), the result into res; returns call's
 * result. */
static int pairs_run(jit_tier tier, jit_bounds bounds, const uint32_t args[3], uint8_t *out,
                     wasm_val *res, const char *cache) {
    run r;
    open_run_b(&r, tier, cache, NULL, bounds);
    uint8_t *mem = fill_halves(&r);
    wasm_val a[3] = {args[0], args[1], args[2]};
    int rc = call(&r, "pairs", a, res);
    memcpy(out, mem, 65536);
    close_run(&r);
    return rc;
}

/* A count-down loop whose pointer steps through a temporary (pairs, nbody's inner loop as clang
 * writes it) runs in a checked copy with plain loads and alias scopes (with its accesses in
 * the ordinary copy only, the test fails), not vectorised (its pointer steps over six doubles
 * and it accesses one at a time); results, traps and memory are the interpreter's:
 * apart, a inside p's range (the check fails: the ordinary copy runs), off the end of the
 * memory (a trap after the stores before it), n = 0 (2^32 iterations: off the end), one
 * iteration. A count-down loop with no fixed store (copydown) gets no checked copy. */
static void test_countdown_loops(void **state) {
    (void)state;
    static const uint32_t cases[][3] = {
        {0, 64, 100}, {800, 64, 100}, {0, 65536 - 480, 100}, {0, 64, 0}, {8, 4096, 1},
    };
    char cache[] = "/tmp/psl-cdown-XXXXXX";
    assert_non_null(mkdtemp(cache));
    char *ir = dump_case(pairs_run, cases[0], cache);
    const char *start = NULL, *end = NULL;
    assert_true(def_with(ir, "2.500000e+00", &start, &end)); /* pairs' constant */
    const char *sc = strstr(start, "!alias.scope"), *vd = strstr(start, "x double>");
    assert_true(sc && sc < end);
    /* its pointer steps by six doubles, its accesses one: not asked to vectorise */
    assert_true(!vd || vd > end);
    /* copydown, a count-down loop without a fixed store: no checked copy */
    assert_true(def_with(ir, "123457", &start, &end));
    sc = strstr(start, "!alias.scope");
    assert_true(!sc || sc > end);
    free(ir);
    diff_cases(pairs_run, cases[0], sizeof cases / sizeof cases[0], 3, cache);
    rm_dir(cache);
}

/* A float sum in a counted loop (fsum) is the interpreter's to the bit under --tier jit: the
 * loop runs in a checked copy, which is not vectorised (LLVM would reorder the adds, and this
 * sum rounds differently in another order: it did before the fix). */
static void test_vec_float_sum(void **state) {
    (void)state;
    wasm_val res[2][1];
    char cache[] = "/tmp/psl-fsum-XXXXXX";
    assert_non_null(mkdtemp(cache));
    for (int t = 0; t < 2; t++) {
        run r;
        open_run(&r, t ? JIT_TIER_JIT : JIT_TIER_INTERP, t ? cache : NULL, NULL);
        wasm_extern ex;
        assert_int_equal(wasm_instance_export(r.inst, "mem", &ex), 0);
        uint8_t *mem = wasm_memory_data(ex.u.memory);
        for (uint32_t i = 0; i < 4096; i++) {
            float v = (float)(i * 7919u) / 3.7f;
            memcpy(mem + 4 * i, &v, 4);
        }
        wasm_val a[2] = {0, 4096};
        assert_int_equal(call(&r, "fsum", a, res[t]), 0);
        close_run(&r);
    }
    assert_int_equal(res[1][0], res[0][0]);
    rm_dir(cache);
}

/* auto: a long counted loop (axpy_rep) gets its OSR entry at the mid level first
 * (JIT_PIPELINE_MID_VEC), its checked copy vectorised there; the result and the memory are the
 * interpreter's (computed here: an interpreted run takes seconds under the sanitizers). */
static void test_vec_loops_auto(void **state) {
    (void)state;
    const uint32_t n = 2048, reps = 20000;
    char dir[] = "/tmp/psl-vec-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.ll", dir);
    setenv("PSL_JIT_DUMP", path, 1);
    run r;
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    uint8_t *mem = fill_halves(&r);
    wasm_val a[4] = {0, 32768, n, reps}, res[1];
    jit_stats before, after;
    jit_get_stats(&before);
    assert_int_equal(call(&r, "axpy_rep", a, res), 0);
    jit_get_stats(&after);
    unsetenv("PSL_JIT_DUMP");
    assert_int_equal(res[0], n * reps);
    /* y[i] = (4096 + i) / 2 plus reps times 3 * x[i] = 3i / 2: every partial sum is a multiple
     * of 0.5 below 2^27, exact in any order (so the interpreter's, without running it) */
    for (uint32_t i = 0; i < 65536 / 8; i++) {
        uint64_t halves = i < 4096 || i >= 4096 + n ? i : i + 3ull * reps * (i - 4096);
        double want = (double)halves * 0.5, got;
        memcpy(&got, mem + 8 * i, 8);
        if (got != want)
            fail_msg("double %u: %g, want %g", i, got, want);
    }
    close_run(&r);
    char *ir = read_dumps(dir);
    assert_true(after.osr_entries > before.osr_entries);
    /* the first object: the OSR entry (o...), at the mid level, vectorised */
    const char *first = strstr(ir, "; next\n");
    assert_non_null(first);
    const char *end = strstr(first + 1, "\n; next\n");
    char *one = strndup(first, end ? (size_t)(end - first) : strlen(first));
    assert_non_null(strstr(one, " @o"));
    assert_non_null(strstr(one, "llvm.loop.isvectorized"));
    assert_non_null(strstr(one, "x double>"));
    free(one);
    free(ir);
}

/* The order the hot thread compiles waiting batches again in (jit__later_pick): mid level first,
 * the smallest of those (the oldest of equals; the oldest with fifo), then called functions at
 * the default level, then OSR entries. */
static void test_later_pick(void **state) {
    (void)state;
    const jit_later q[] = {
        {JIT_LEVEL_DEFAULT, true, 100}, {JIT_LEVEL_MID, false, 6528},
        {JIT_LEVEL_DEFAULT, false, 50}, {JIT_LEVEL_MID, false, 939},
        {JIT_LEVEL_MID, false, 939},
    };
    assert_int_equal(jit__later_pick(q, 5, false), 3);
    assert_int_equal(jit__later_pick(q, 5, true), 1);
    assert_int_equal(jit__later_pick(q, 3, false), 1);
    assert_int_equal(jit__later_pick(q, 1, false), 0); /* only OSR entries */
    const jit_later d[] = {{JIT_LEVEL_DEFAULT, true, 10},
                           {JIT_LEVEL_DEFAULT, false, 900},
                           {JIT_LEVEL_DEFAULT, false, 20}};
    assert_int_equal(jit__later_pick(d, 3, false), 1); /* the oldest called, not the smallest */
}

/* What the hot thread does with a function that turned hot (jit__hot_choice). */
static void test_hot_choice(void **state) {
    (void)state;
    /* not seen called, sampled at a loop head without an entry: an OSR entry there */
    assert_int_equal(jit__hot_choice(false, true, true, false), JIT_HOT_OSR);
    /* with an entry there: its activation came back from leaving its OSR code, nothing */
    assert_int_equal(jit__hot_choice(false, true, true, true), JIT_HOT_COLD);
    assert_int_equal(jit__hot_choice(false, true, false, true), JIT_HOT_COLD);
    /* out of entries, called, or never sampled in a loop: the ordinary copy */
    assert_int_equal(jit__hot_choice(false, true, false, false), JIT_HOT_COPY);
    assert_int_equal(jit__hot_choice(true, true, true, false), JIT_HOT_COPY);
    assert_int_equal(jit__hot_choice(true, true, true, true), JIT_HOT_COPY);
    assert_int_equal(jit__hot_choice(false, false, true, false), JIT_HOT_COPY);
}

static void test_timeout_stops_loop(void **state) {
    (void)state;
    wasm_config cfg;
    wasm_config_default(&cfg);
    cfg.timeout_ns = 100 * 1000 * 1000;
    run r;
    open_run(&r, JIT_TIER_JIT, NULL, &cfg);
    assert_int_equal(call(&r, "spin", NULL, NULL), WASM_TRAP_TIMEOUT);
    /* The store stays usable after the trap. */
    wasm_val a[1] = {10}, res[1];
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 55);
    close_run(&r);
}

static void test_wx(void **state) {
    (void)state;
    run r;
    open_run(&r, JIT_TIER_JIT, NULL, NULL);
    wasm_val a[1] = {5}, res[1];
    assert_int_equal(call(&r, "fib", a, res), 0);
    FILE *fp = fopen("/proc/self/maps", "r");
    assert_non_null(fp);
    char line[512];
    int exec_maps = 0;
    while (fgets(line, sizeof line, fp)) {
        char perms[8] = {0};
        if (sscanf(line, "%*s %7s", perms) != 1)
            continue;
        if (perms[2] == 'x')
            exec_maps++;
        if (perms[1] == 'w' && perms[2] == 'x')
            fail_msg("writable and executable mapping: %s", line);
    }
    fclose(fp);
    assert_true(exec_maps > 0);
    close_run(&r);
}

/* $PSL_JIT_PERFMAP=1: each linked image's functions are listed in /tmp/perf-PID.map for perf. */
static void test_perf_map(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%ld.map", (long)getpid());
    unlink(path);
    setenv("PSL_JIT_PERFMAP", "1", 1);
    run r;
    open_run(&r, JIT_TIER_JIT, NULL, NULL);
    unsetenv("PSL_JIT_PERFMAP");
    wasm_val a[1] = {10}, res[1];
    assert_int_equal(call(&r, "fib", a, res), 0);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[256], name[64];
    unsigned long long addr, size;
    int fns = 0;
    while (fgets(line, sizeof line, fp)) {
        assert_int_equal(sscanf(line, "%llx %llx %63s", &addr, &size, name), 3);
        assert_true(addr != 0 && size != 0);
        /* "fK/N": defined function K of the N-th image linked */
        fns += name[0] == 'f' && strchr(name, '/') && atoi(strchr(name, '/') + 1) > 0;
    }
    fclose(fp);
    unlink(path);
    assert_true(fns > 0);
    close_run(&r);
}

static void test_cache(void **state) {
    (void)state;
    char dir[] = "/tmp/psl-jit-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    jit_stats s0, s1, s2, s3;
    run r;
    wasm_val a[1] = {15}, res[1];

    jit_get_stats(&s0);
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 610);
    close_run(&r);
    jit_get_stats(&s1);
    assert_int_equal(s1.modules_compiled, s0.modules_compiled + 1);
    assert_int_equal(s1.cache_hits, s0.cache_hits);

    open_run(&r, JIT_TIER_JIT, dir, NULL);
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 610);
    close_run(&r);
    jit_get_stats(&s2);
    assert_int_equal(s2.cache_hits, s1.cache_hits + 1);
    assert_int_equal(s2.modules_compiled, s1.modules_compiled);

    /* Flip one byte of the object: the MAC must reject it and LLVM compile again. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[512] = {0};
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".obj"))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    assert_true(path[0]);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 200, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 200, SEEK_SET);
    fputc(c ^ 0x40, fp);
    fclose(fp);
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 610);
    close_run(&r);
    jit_get_stats(&s3);
    assert_int_equal(s3.cache_rejected, s2.cache_rejected + 1);
    assert_int_equal(s3.modules_compiled, s2.modules_compiled + 1);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The path of the single cache entry in dir. */
static void entry_path(const char *dir, char *path, size_t n) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    path[0] = 0;
    int found = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".obj") && !strstr(e->d_name, ".tmp")) {
            snprintf(path, n, "%s/%s", dir, e->d_name);
            found++;
        }
    closedir(d);
    assert_int_equal(found, 1);
}

static uint8_t *read_whole(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    assert_true(n > 0);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void write_whole(const char *path, const uint8_t *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    fclose(fp);
}

/* Entry layout (jit.c): "PSLJIT01" | key (32) | length (8) | object | MAC (32). */
enum { ENTRY_HDR = 48, ENTRY_MAC = 32 };

/* A warm cache needs no LLVM: with no backend at all, every vector still runs compiled code
 * linked by the ELF loader (bounds through the guard region and explicit checks, call_indirect,
 * stack exhaustion) with the interpreter's results, and the time budget stops a compiled
 * infinite loop. */
static void test_cache_without_llvm(void **state) {
    (void)state;
    jit_bounds modes[2] = {JIT_BOUNDS_GUARD, JIT_BOUNDS_CHECKS};
    for (int b = 0; b < 2; b++) {
        char dir[] = "/tmp/psl-jit-nollvm-XXXXXX";
        assert_non_null(mkdtemp(dir));
        jit_stats s0, s1, s2;
        jit_get_stats(&s0);
        differential_cache(modes[b], dir); /* compiles and stores */
        jit_get_stats(&s1);
        assert_int_equal(s1.modules_compiled, s0.modules_compiled + 1);
        assert_int_equal(s1.objects_elf, s0.objects_elf + 1);

        g_backend_fn = no_backend;
        g_no_backend_calls = 0;
        differential_cache(modes[b], dir);
        jit_get_stats(&s2);
        assert_int_equal(s2.cache_hits, s1.cache_hits + 1);
        assert_int_equal(s2.modules_compiled, s1.modules_compiled);
        assert_int_equal(s2.objects_elf, s1.objects_elf + 1);
        assert_int_equal(s2.objects_lljit, s1.objects_lljit);

        wasm_config cfg;
        wasm_config_default(&cfg);
        cfg.timeout_ns = 100 * 1000 * 1000;
        run r;
        open_run_b(&r, JIT_TIER_JIT, dir, &cfg, modes[b]);
        assert_int_equal(call(&r, "spin", NULL, NULL), WASM_TRAP_TIMEOUT);
        wasm_val a[1] = {12}, res[1];
        assert_int_equal(call(&r, "fib", a, res), 0);
        assert_int_equal(res[0], 144);
        close_run(&r);
        g_backend_fn = jit_backend_llvm;
        assert_int_equal(g_no_backend_calls, 0);
        rm_dir(dir);
    }
}

/* Offsets of the first section of type type (and, if name is set, that name) in an ELF object. */
static Elf64_Shdr *find_section(uint8_t *obj, uint32_t type, const char *name) {
    Elf64_Ehdr *eh = (Elf64_Ehdr *)(void *)obj;
    Elf64_Shdr *sh = (Elf64_Shdr *)(void *)(obj + eh->e_shoff);
    const char *names = (const char *)obj + sh[eh->e_shstrndx].sh_offset;
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == type && (!name || strcmp(names + sh[i].sh_name, name) == 0))
            return &sh[i];
    return NULL;
}

/* Rewrite the entry at path with its object changed by edit, under a valid MAC (as if the
 * compiler had emitted it), so that only the loader can object. */
static void reseal_entry(const char *dir, const char *path, void (*edit)(uint8_t *obj)) {
    size_t len, klen;
    uint8_t *e = read_whole(path, &len);
    char kp[512];
    snprintf(kp, sizeof kp, "%s/mac.key", dir);
    uint8_t *key = read_whole(kp, &klen);
    assert_int_equal(klen, 32);
    edit(e + ENTRY_HDR);
    cr_hash_ex(e + len - ENTRY_MAC, ENTRY_MAC, key, klen, e, len - ENTRY_MAC);
    write_whole(path, e, len);
    free(e);
    free(key);
}

static void bad_reloc_type(uint8_t *obj) {
    Elf64_Shdr *rs = find_section(obj, SHT_RELA, ".rela.text");
    assert_non_null(rs);
    Elf64_Rela *r = (Elf64_Rela *)(void *)(obj + rs->sh_offset);
    r[0].r_info = ELF64_R_INFO(ELF64_R_SYM(r[0].r_info), 0x7f); /* no such x86-64 type */
}

static void note_section(uint8_t *obj) {
    Elf64_Shdr *s = find_section(obj, SHT_PROGBITS, ".note.GNU-stack");
    assert_non_null(s);
    s->sh_type = SHT_NOTE; /* an allocated note: harmless, but not a kind the loader places */
    s->sh_flags |= SHF_ALLOC;
}

/* A cache entry with a valid MAC whose object the ELF loader declines: an unknown relocation
 * type (LLJIT refuses it too: the entry is rejected and the module compiled again) and an
 * allocated section of a type it does not place (LLJIT links it). Results never change. */
static void test_cache_declined(void **state) {
    (void)state;
    char dir[] = "/tmp/psl-jit-declined-XXXXXX", path[512];
    assert_non_null(mkdtemp(dir));
    wasm_val a[1] = {15}, res[1];
    jit_stats s0, s1, s2;
    run r;
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    close_run(&r);
    entry_path(dir, path, sizeof path);

    reseal_entry(dir, path, bad_reloc_type);
    jit_get_stats(&s0);
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 610);
    close_run(&r);
    jit_get_stats(&s1);
    assert_int_equal(s1.cache_hits, s0.cache_hits);
    assert_int_equal(s1.cache_rejected, s0.cache_rejected + 1);
    assert_int_equal(s1.modules_compiled, s0.modules_compiled + 1);
    assert_int_equal(s1.objects_elf, s0.objects_elf + 1); /* the fresh object */

    reseal_entry(dir, path, note_section); /* the entry was rewritten by the compile */
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    assert_int_equal(call(&r, "fib", a, res), 0);
    assert_int_equal(res[0], 610);
    wasm_val ia[2] = {1, 9};
    assert_int_equal(call(&r, "ind", ia, res), 0);
    assert_int_equal(res[0], 81);
    close_run(&r);
    jit_get_stats(&s2);
    assert_int_equal(s2.cache_hits, s1.cache_hits + 1);
    assert_int_equal(s2.modules_compiled, s1.modules_compiled);
    assert_int_equal(s2.objects_lljit, s1.objects_lljit + 1);
    assert_int_equal(s2.objects_elf, s1.objects_elf);
    rm_dir(dir);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static int elf_link(const uint8_t *obj, size_t len) {
    jit_image *im = NULL;
    char err[256];
    int rc = jit__elf_link(obj, len, jit__helpers, jit__nhelpers, &im, err, sizeof err);
    if (rc == 0) {
        assert_non_null(im);
        jit__elf_free(im);
    } else {
        assert_null(im);
        assert_true(rc == ERR_MALFORMED || rc == ERR_INVALID);
    }
    return rc;
}

/* The loader parses defensively: malformed headers and offsets are refused with
 * ERR_MALFORMED, and thousands of randomly corrupted or truncated objects either link or are
 * refused, never read or write out of bounds (AddressSanitizer build). */
static void test_elf_corrupt(void **state) {
    (void)state;
    char dir[] = "/tmp/psl-jit-elf-XXXXXX", path[512];
    assert_non_null(mkdtemp(dir));
    run r;
    open_run(&r, JIT_TIER_JIT, dir, NULL);
    close_run(&r);
    entry_path(dir, path, sizeof path);
    size_t elen;
    uint8_t *entry = read_whole(path, &elen);
    const uint8_t *obj = entry + ENTRY_HDR;
    size_t len = elen - ENTRY_HDR - ENTRY_MAC;
    uint8_t *m = malloc(len);
    assert_non_null(m);

    jit_image *im = NULL;
    char err[256];
    assert_int_equal(jit__elf_link(obj, len, jit__helpers, jit__nhelpers, &im, err, sizeof err), 0);
    assert_non_null(jit__elf_sym(im, JIT_SYM_FNS));
    assert_non_null(jit__elf_sym(im, JIT_SYM_ENTRIES));
    jit__elf_free(im);

    /* Targeted: truncated, section table beyond the end, a relocation beyond its section, a
     * relocation against a symbol that does not exist, an unknown relocation type. */
    assert_int_equal(elf_link(obj, 40), ERR_MALFORMED);
    assert_int_equal(elf_link(obj, len / 2), ERR_MALFORMED);
    memcpy(m, obj, len);
    ((Elf64_Ehdr *)(void *)m)->e_shoff = len - 8;
    assert_int_equal(elf_link(m, len), ERR_MALFORMED);
    memcpy(m, obj, len);
    Elf64_Shdr *rs = find_section(m, SHT_RELA, ".rela.text");
    assert_non_null(rs);
    Elf64_Rela *rel = (Elf64_Rela *)(void *)(m + rs->sh_offset);
    rel[1].r_offset = 1ull << 40;
    assert_int_equal(elf_link(m, len), ERR_MALFORMED);
    memcpy(m, obj, len);
    rel[2].r_info = ELF64_R_INFO(0xffffffu, ELF64_R_TYPE(rel[2].r_info));
    assert_int_equal(elf_link(m, len), ERR_MALFORMED);
    memcpy(m, obj, len);
    bad_reloc_type(m);
    assert_int_equal(elf_link(m, len), ERR_INVALID);

    /* Random: 1-4 bytes flipped anywhere, or in the headers and tables, or truncated. */
    int linked = 0, refused = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(m, obj, len);
        size_t n = len;
        unsigned flips = 1 + (unsigned)(rnd() % 4);
        for (unsigned f = 0; f < flips; f++) {
            size_t at = i % 2 ? (size_t)(rnd() % len) : (size_t)(rnd() % 64);
            if (i % 3 == 0) /* the section headers and the tables after the code */
                at = len - 1 - (size_t)(rnd() % (len / 3));
            m[at] ^= (uint8_t)(1u << (rnd() % 8));
        }
        if (i % 17 == 0)
            n = (size_t)(rnd() % len);
        if (elf_link(m, n) == 0)
            linked++;
        else
            refused++;
    }
    assert_true(linked > 0);
    assert_true(refused > 0);
    free(m);
    free(entry);
    rm_dir(dir);
}

static void test_auto_tier(void **state) {
    (void)state;
    run r;
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    /* Calls work at once (interpreted or compiled, whichever is ready) and agree. */
    wasm_val a[1] = {20}, res[1];
    for (int i = 0; i < 50; i++) {
        assert_int_equal(call(&r, "fib", a, res), 0);
        assert_int_equal(res[0], 6765);
    }
    close_run(&r);
}

/* auto: a long loop in a function called once is sampled, compiled in the background and
 * finished in compiled code (on-stack replacement at a back edge), with the same result. */
static void test_auto_osr(void **state) {
    (void)state;
    run r;
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats before, after;
    jit_get_stats(&before);
    wasm_val a[1] = {30000000}, res[1];
    assert_int_equal(call(&r, "sum", a, res), 0);
    assert_int_equal(res[0], 7 + 30000000ull * 30000001ull / 2);
    jit_get_stats(&after);
    assert_true(after.modules_compiled > before.modules_compiled);
    assert_int_equal(after.osr_entries, before.osr_entries + 1);
    /* The store stays usable: traps and calls work after the OSR activation. */
    wasm_val b[1] = {131069};
    for (int i = 0; i < 3; i++)
        assert_int_equal(call(&r, "dropload", b, res), WASM_TRAP_MEM_OOB);
    close_run(&r);
}

/* The interpreter's results of export name with args, into want. */
static void interp_call(const char *name, const wasm_val *args, wasm_val *want) {
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, name, args, want), 0);
    close_run(&r);
}

/* Runs export name under the interpreter, then under auto (the JIT loaded at once): the same
 * result, and the activation went into OSR code and left it for newer code. */
static void osr_entered_and_left(const char *name, const wasm_val *args) {
    wasm_val want[1], res[1];
    run r;
    interp_call(name, args, want);
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats before, after;
    jit_get_stats(&before);
    assert_int_equal(call(&r, name, args, res), 0);
    jit_get_stats(&after);
    assert_int_equal(res[0], want[0]);
    assert_true(after.osr_entries > before.osr_entries);
    assert_true(after.osr_left > before.osr_left);
    close_run(&r);
}

/* auto: on-stack replacement inside a loop nest (the OSR copy holds the sampled loop's nest
 * and the whole function, with a branch from the inner loop back to the middle loop's head)
 * gives the interpreter's result. The entry is compiled at the mid level first and again at the
 * default level; the one long activation leaves the mid-level code at a back edge of a loop
 * around its head (every live slot written to the interpreter's frame), the interpreter goes
 * on from that head and enters the newer entry: at least one such leave (fails when the
 * compiled code never checks for newer code; a leaving frame that missed a live slot would
 * give another result). */
static void test_auto_osr_nest(void **state) {
    (void)state;
    wasm_val a[1] = {60000};
    osr_entered_and_left("nest", a);
}

/* auto: an OSR entry at a loop that no other loop encloses, and that none follows, is compiled
 * at the mid level with a check of the function's OSR count at the loop's own back edge: when its
 * default-level entry is linked, the activation leaves the mid-level code there and goes on in the
 * new entry, with the interpreter's result. (Fails when the check is not emitted: the activation
 * then runs the mid-level code to its end.) */
static void test_auto_osr_leave_head(void **state) {
    (void)state;
    wasm_val a[2] = {300000000, 7};
    osr_entered_and_left("span", a);
}

/* auto: an OSR entry at the inner loop of a nest is compiled at the mid level; with no
 * default-level copy of it ($PSL_JIT_OSR_AGAIN=0) the activation runs the nest to its end in it
 * and reaches the top-level loop after the nest in the same code, whose first back edge asks for
 * an entry there (psl_jit_osr_ready); once that is linked the activation leaves for it, with the
 * interpreter's result. (Fails with $PSL_JIT_OSR_ASK=0, the code after the entry's nest without
 * such a check: the activation then runs the second loop in the first entry's code.) */
static void test_auto_osr_asks_after(void **state) {
    (void)state;
    wasm_val a[2] = {10000000, 300000000}, want[1], res[1];
    run r;
    interp_call("seq", a, want);
    setenv("PSL_JIT_OSR_AGAIN", "0", 1);
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats before, after;
    jit_get_stats(&before);
    assert_int_equal(call(&r, "seq", a, res), 0);
    jit_get_stats(&after);
    unsetenv("PSL_JIT_OSR_AGAIN");
    assert_int_equal(res[0], want[0]);
    assert_true(after.osr_asked > before.osr_asked);
    assert_true(after.osr_left > before.osr_left);
    close_run(&r);
}

/* auto: an OSR entry is specialised to the frame it was sampled with (the loop's bound and
 * step, which the loop never writes, become constants). A second activation with another step
 * reaches it at the same loop head: the entry declines (counted as stale), a new one is
 * compiled for the new frame and taken, and both calls give the interpreter's results. */
static void test_auto_osr_specialised(void **state) {
    (void)state;
    const uint32_t n = 30000000;
    wasm_val a1[2] = {n, 3}, a2[2] = {n, 5}, want1[1], want2[1], res[1];
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, "span", a1, want1), 0);
    assert_int_equal(call(&r, "span", a2, want2), 0);
    close_run(&r);
    assert_true(want1[0] != want2[0]);
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats s0, s1, s2;
    jit_get_stats(&s0);
    assert_int_equal(call(&r, "span", a1, res), 0);
    assert_int_equal(res[0], want1[0]);
    jit_get_stats(&s1);
    assert_int_equal(s1.osr_entries, s0.osr_entries + 1);
    assert_int_equal(s1.osr_stale, s0.osr_stale);
    assert_int_equal(call(&r, "span", a2, res), 0);
    assert_int_equal(res[0], want2[0]);
    jit_get_stats(&s2);
    assert_true(s2.osr_stale > s1.osr_stale);
    assert_int_equal(s2.osr_entries, s1.osr_entries + 1);
    close_run(&r);
}

/* auto: a function compiled later calls functions linked earlier in another object through
 * their native copies (a direct call with two results, an indirect call, a trap inside the
 * callee), with the interpreter's results and trap. */
static void test_auto_cross_object(void **state) {
    (void)state;
    const uint32_t n = 300000;
    wasm_val a[2] = {n, UINT32_MAX}, late[2] = {n, n - 100}, warm[2] = {22, 99}, want[1],
             want_rf[1], res[1];
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, "xcall", a, want), 0);
    assert_int_equal(call(&r, "rf", warm, want_rf), 0);
    assert_int_equal(call(&r, "xcall", late, res), WASM_TRAP_UNREACHABLE);
    close_run(&r);

    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats s0, s1, s2;
    jit_get_stats(&s0);
    /* rf turns hot and is compiled in the background: call it until it is linked. */
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(call(&r, "rf", warm, res), 0);
        assert_int_equal(res[0], want_rf[0]);
        jit_get_stats(&s1);
        if (s1.functions > s0.functions)
            break;
    }
    assert_true(s1.functions > s0.functions);
    /* xcall loops long enough to be compiled (with an OSR entry) while it runs; on a loaded
     * machine the compile may end after it, and a later call takes the entry. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(call(&r, "xcall", a, res), 0);
        assert_int_equal(res[0], want[0]);
        jit_get_stats(&s2);
        if (s2.osr_entries > s1.osr_entries)
            break;
    }
    assert_true(s2.modules_compiled > s1.modules_compiled);
    assert_true(s2.osr_entries > s1.osr_entries);
    assert_int_equal(call(&r, "xcall", late, res), WASM_TRAP_UNREACHABLE);
    assert_int_equal(call(&r, "rf", warm, res), 0);
    assert_int_equal(res[0], want_rf[0]);
    close_run(&r);
}

/* Children of this process named @p comm (/proc/PID/stat: "pid (comm) state ppid ..."). */
static int children_named(const char *comm) {
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], buf[512], name[64];
        int ppid = 0;
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        if (sscanf(buf, "%*d (%63[^)]) %*c %d", name, &ppid) == 2 && ppid == (int)getpid() &&
            strcmp(name, comm) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* auto with the compiler process (jit_compiler_start, as psl's lazy start uses it): batches are
 * compiled in the spawned process, linked here, and give the interpreter's results, through an
 * OSR entry and ordinary calls; the process is named psl-jitc; a module freed while a batch may
 * be compiling stops it. */
static void test_auto_compiler_process(void **state) {
    (void)state;
    wasm_val warm[2] = {22, 99}, want[1], res[1], a[1] = {30000000};
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, "rf", warm, want), 0);
    close_run(&r);
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_config jc = {.tier = JIT_TIER_AUTO};
    assert_int_equal(jit_compiler_start(&jc, &r.m, 1), 0);
    assert_int_equal(jit_compiler_start(&jc, &r.m, 1), ERR_INVALID); /* one per process */
    jit_stats s0, s1, s2;
    jit_get_stats(&s0);
    assert_int_equal(call(&r, "sum", a, res), 0);
    assert_int_equal(res[0], 7 + 30000000ull * 30000001ull / 2);
    jit_get_stats(&s1);
    assert_true(s1.remote_compiles > s0.remote_compiles);
    assert_int_equal(children_named("psl-jitc"), 1); /* named apart from the interpreter */
    assert_int_equal(s1.osr_entries, s0.osr_entries + 1);
    for (int i = 0; i < 4000; i++) {
        assert_int_equal(call(&r, "rf", warm, res), 0);
        assert_int_equal(res[0], want[0]);
        jit_get_stats(&s2);
        if (s2.remote_compiles > s1.remote_compiles)
            break;
    }
    assert_true(s2.remote_compiles > s1.remote_compiles);
    /* remote_compiles counts an object when it arrives, modules_compiled once it is linked: the
     * hot thread may be between the two (this failed about once in ten runs). */
    for (int i = 0; i < 5000 && s2.modules_compiled - s0.modules_compiled <
                                    s2.remote_compiles - s0.remote_compiles;
         i++) {
        usleep(1000);
        jit_get_stats(&s2);
    }
    assert_int_equal(s2.modules_compiled - s0.modules_compiled,
                     s2.remote_compiles - s0.remote_compiles);
    wasm_val bad[2] = {22, 3};
    assert_int_equal(call(&r, "rf", bad, res), WASM_TRAP_UNREACHABLE);
    close_run(&r); /* forgets the module, stops a compile in flight */
}

/* auto, three levels: rf is linked as quick code first, then replaced by mid-level and then by
 * default-level code while it keeps being called; results stay the interpreter's throughout. */
static void test_auto_levels(void **state) {
    (void)state;
    wasm_val warm[2] = {22, 99}, want[1], res[1];
    run r;
    interp_call("rf", warm, want);
    setenv("PSL_JIT_QUICK_CELLS", "1", 1); /* every batch of called functions: quick first */
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats s0, s1;
    jit_get_stats(&s0);
    for (int i = 0; i < 400000; i++) {
        assert_int_equal(call(&r, "rf", warm, res), 0);
        assert_int_equal(res[0], want[0]);
        jit_get_stats(&s1);
        if (s1.modules_compiled >= s0.modules_compiled + 3)
            break;
    }
    /* quick object and its two replacements */
    assert_true(s1.modules_compiled >= s0.modules_compiled + 3);
    wasm_val bad[2] = {22, 3};
    assert_int_equal(call(&r, "rf", bad, res), WASM_TRAP_UNREACHABLE);
    assert_int_equal(call(&r, "rf", warm, res), 0);
    assert_int_equal(res[0], want[0]);
    close_run(&r);
    unsetenv("PSL_JIT_QUICK_CELLS");
}

/* auto: a quick batch at least $PSL_JIT_DEFAULT_MAX_CELLS big keeps its mid-level copy: rf,
 * called over and over, is linked as quick and then as mid-level code, and no third object
 * follows while it keeps being called for another 300 ms (fails when the default-level compile
 * is queued regardless of the batch's size: it arrives within ~50 ms here). */
static void test_auto_big_batch_stays_mid(void **state) {
    (void)state;
    wasm_val warm[2] = {22, 99}, want[1], res[1];
    interp_call("rf", warm, want);
    setenv("PSL_JIT_QUICK_CELLS", "1", 1);
    setenv("PSL_JIT_DEFAULT_MAX_CELLS", "1", 1);
    run r;
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats s0, s1;
    jit_get_stats(&s0);
    /* at most 60 s for the two compiles (the sanitizer build is slow), then 300 ms more */
    uint64_t t0 = plat_now_ns(), t_mid = 0;
    for (;;) {
        assert_int_equal(call(&r, "rf", warm, res), 0);
        assert_int_equal(res[0], want[0]);
        jit_get_stats(&s1);
        uint64_t now = plat_now_ns();
        if (!t_mid && s1.modules_compiled >= s0.modules_compiled + 2)
            t_mid = now;
        if (t_mid ? now - t_mid > 300000000ull : now - t0 > 60000000000ull)
            break;
    }
    assert_true(t_mid != 0);
    assert_int_equal(s1.modules_compiled, s0.modules_compiled + 2);
    close_run(&r);
    unsetenv("PSL_JIT_DEFAULT_MAX_CELLS");
    unsetenv("PSL_JIT_QUICK_CELLS");
}

int main(int argc, char **argv) {
    /* jit_compiler_start runs this executable again as the compiler process. */
    if (argc == 2 && strcmp(argv[1], JIT_COMPILER_ARG) == 0)
        jit_compiler_main(jit_backend_llvm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_checks),
        cmocka_unit_test(test_differential_guard),
        cmocka_unit_test(test_reenter_depth),
        cmocka_unit_test(test_guard_passes_other_faults),
        cmocka_unit_test(test_memory_not_forked),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_loop_around),
        cmocka_unit_test(test_hot_choice),
        cmocka_unit_test(test_vec_loops),
        cmocka_unit_test(test_vec_loops_auto),
        cmocka_unit_test(test_split_adds),
        cmocka_unit_test(test_add_order),
        cmocka_unit_test(test_remat_frame),
        cmocka_unit_test(test_later_pick),
        cmocka_unit_test(test_countdown_loops),
        cmocka_unit_test(test_vec_float_sum),
        cmocka_unit_test(test_timeout_stops_loop),
        cmocka_unit_test(test_wx),
        cmocka_unit_test(test_perf_map),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_without_llvm),
        cmocka_unit_test(test_cache_declined),
        cmocka_unit_test(test_elf_corrupt),
        cmocka_unit_test(test_auto_tier),
        cmocka_unit_test(test_auto_osr),
        cmocka_unit_test(test_auto_osr_nest),
        cmocka_unit_test(test_auto_osr_leave_head),
        cmocka_unit_test(test_auto_osr_asks_after),
        cmocka_unit_test(test_auto_osr_specialised),
        cmocka_unit_test(test_auto_cross_object),
        cmocka_unit_test(test_auto_levels),
        cmocka_unit_test(test_auto_big_batch_stays_mid),
        cmocka_unit_test(test_auto_compiler_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
