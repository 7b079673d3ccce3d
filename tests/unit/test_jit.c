/* Unit tests of src/jit: the same module and inputs under the interpreter and the JIT give
 * identical results and traps (differential), the execution budget stops a compiled infinite
 * loop, deep recursion traps cleanly, no mapping is ever writable and executable (W^X), and the
 * code cache hits on a second load and rejects a tampered entry. Guest: test_jit.wat. */
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
#include "jit/jit.h"
#include "wasm/wasm.h"

#include "test_jit_module.h"

typedef struct run {
    wasm_module *m;
    wasm_store *s;
    wasm_instance *inst;
} run;

static void open_run_b(run *r, jit_tier tier, const char *cache, const wasm_config *cfg,
                       jit_bounds bounds) {
    jit_config jc = {.tier = tier,
                     .cache_dir = cache,
                     .verify = true,
                     .bounds = bounds,
                     .backend = jit_backend_llvm};
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
    static vec v[64];
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
    v[k++] = (vec){"unreach", {0}};
    v[k++] = (vec){"rec", {1}};
    *n = k;
    return v;
}

/* Every vector, in order, on one instance per tier: results and trap kinds must agree. */
static void differential(jit_bounds bounds) {
    size_t n;
    const vec *v = vectors(&n);
    wasm_val res_i[64][2], res_j[64][2];
    int rc_i[64], rc_j[64];
    for (int tier = 0; tier < 2; tier++) {
        run r;
        open_run_b(&r, tier ? JIT_TIER_JIT : JIT_TIER_INTERP, NULL, NULL, bounds);
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
    for (size_t k = 0; k < n; k++)
        if (strcmp(v[k].fn, "dropload") == 0 && v[k].args[0] != 131068)
            assert_int_equal(rc_j[k], WASM_TRAP_MEM_OOB);
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

/* auto: on-stack replacement inside a loop nest (the OSR copy holds the sampled loop's nest
 * and the whole function, with a branch from the inner loop back to the middle loop's head)
 * gives the interpreter's result. */
static void test_auto_osr_nest(void **state) {
    (void)state;
    wasm_val a[1] = {20000}, want[1], res[1];
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, "nest", a, want), 0);
    close_run(&r);
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats before, after;
    jit_get_stats(&before);
    assert_int_equal(call(&r, "nest", a, res), 0);
    jit_get_stats(&after);
    assert_int_equal(res[0], want[0]);
    assert_true(after.osr_entries > before.osr_entries);
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

/* auto, two levels: rf is linked as quick code first, then replaced by default-level code
 * while it keeps being called; results stay the interpreter's throughout. */
static void test_auto_two_levels(void **state) {
    (void)state;
    wasm_val warm[2] = {22, 99}, want[1], res[1];
    run r;
    open_run(&r, JIT_TIER_INTERP, NULL, NULL);
    assert_int_equal(call(&r, "rf", warm, want), 0);
    close_run(&r);
    setenv("PSL_JIT_QUICK_CELLS", "1", 1); /* every batch of called functions: quick first */
    open_run(&r, JIT_TIER_AUTO, NULL, NULL);
    jit_stats s0, s1;
    jit_get_stats(&s0);
    for (int i = 0; i < 4000; i++) {
        assert_int_equal(call(&r, "rf", warm, res), 0);
        assert_int_equal(res[0], want[0]);
        jit_get_stats(&s1);
        if (s1.modules_compiled >= s0.modules_compiled + 2)
            break;
    }
    /* quick object and its replacement */
    assert_true(s1.modules_compiled >= s0.modules_compiled + 2);
    wasm_val bad[2] = {22, 3};
    assert_int_equal(call(&r, "rf", bad, res), WASM_TRAP_UNREACHABLE);
    assert_int_equal(call(&r, "rf", warm, res), 0);
    assert_int_equal(res[0], want[0]);
    close_run(&r);
    unsetenv("PSL_JIT_QUICK_CELLS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_checks),
        cmocka_unit_test(test_differential_guard),
        cmocka_unit_test(test_guard_passes_other_faults),
        cmocka_unit_test(test_timeout_stops_loop),
        cmocka_unit_test(test_wx),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_auto_tier),
        cmocka_unit_test(test_auto_osr),
        cmocka_unit_test(test_auto_osr_nest),
        cmocka_unit_test(test_auto_cross_object),
        cmocka_unit_test(test_auto_two_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
