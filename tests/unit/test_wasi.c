/* Unit tests of src/wasm/wasi.c through the engine's public API: import resolution (signatures,
 * unknown functions, foreign modules), every implemented preview1 call, stub answers, and that
 * bad guest pointers answer EFAULT instead of touching host memory. The guest is test_wasi.wat:
 * one exported wrapper per import, so the test chooses raw arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "platform/platform.h"
#include "wasm/wasi.h"
#include "wasm/wasm.h"

#include "test_wasi_modules.h"

typedef struct fixture {
    wasm_module *m;
    wasm_store *s;
    wasi_ctx *w;
    wasm_instance *inst;
    uint8_t *mem;
} fixture;

static const char stdin_text[] = "hello from stdin";

static int setup_with(void **state, size_t out_cap) {
    fixture *f = calloc(1, sizeof *f);
    wasm_error err;
    assert_int_equal(wasm_module_load(mod_wasi_t, sizeof mod_wasi_t, &f->m, &err), 0);
    static const char *const argv[] = {"prog", "a b", ""};
    static const char *const envp[] = {"HOME=/nowhere", "X="};
    wasi_config cfg = {
        .argc = 3,
        .argv = argv,
        .envc = 2,
        .envp = envp,
        .in = {.kind = WASI_IO_BUFFER,
               .data = (const uint8_t *)stdin_text,
               .len = sizeof stdin_text - 1},
        .out = {.kind = WASI_IO_BUFFER, .cap = out_cap},
        .err = {.kind = WASI_IO_NULL},
    };
    f->w = wasi_new(&cfg);
    f->s = wasm_store_new(NULL);
    uint32_t n = wasm_module_num_imports(f->m);
    wasm_extern *imps = calloc(n, sizeof *imps);
    assert_int_equal(wasi_resolve(f->w, f->s, f->m, imps, &err), 0);
    assert_int_equal(wasm_instance_new(f->s, f->m, imps, n, &f->inst, &err), 0);
    free(imps);
    f->mem = wasm_memory_data(wasm_instance_memory(f->inst));
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_with(state, 1 << 20);
}
static int setup_small(void **state) {
    return setup_with(state, 5);
}

static int teardown(void **state) {
    fixture *f = *state;
    wasm_store_free(f->s);
    wasm_module_free(f->m);
    wasi_free(f->w);
    free(f);
    return 0;
}

/* Call export name with up to 9 arguments; returns the call's status, result in *res. */
static int call(fixture *f, const char *name, const wasm_val *args, wasm_val *res) {
    wasm_extern e;
    assert_int_equal(wasm_instance_export(f->inst, name, &e), 0);
    assert_int_equal(e.kind, WASM_EXTERN_FUNC);
    wasm_val dummy[2];
    return wasm_call(f->s, e.u.func, args, res ? res : dummy);
}

/* Call and expect a normal return; gives the WASI errno. */
static uint32_t errno_of(fixture *f, const char *name, const wasm_val *args) {
    wasm_val r = 0xdead;
    assert_int_equal(call(f, name, args, &r), 0);
    return (uint32_t)r;
}

static uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void st32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void st64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

static void test_args_environ(void **state) {
    fixture *f = *state;
    wasm_val a[2] = {100, 104};
    assert_int_equal(errno_of(f, "args_sizes_get", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 100), 3);
    assert_int_equal(ld32(f->mem + 104), 5 + 4 + 1);
    wasm_val b[2] = {200, 300};
    assert_int_equal(errno_of(f, "args_get", b), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 200), 300);
    assert_string_equal((char *)f->mem + ld32(f->mem + 200), "prog");
    assert_string_equal((char *)f->mem + ld32(f->mem + 204), "a b");
    assert_string_equal((char *)f->mem + ld32(f->mem + 208), "");
    assert_int_equal(errno_of(f, "environ_sizes_get", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 100), 2);
    assert_int_equal(ld32(f->mem + 104), 14 + 3);
    assert_int_equal(errno_of(f, "environ_get", b), WASI_ESUCCESS);
    assert_string_equal((char *)f->mem + ld32(f->mem + 204), "X=");
    /* The string buffer would end past the memory: EFAULT, and nothing is written. */
    wasm_val bad[2] = {200, 65536 - 4};
    assert_int_equal(errno_of(f, "args_get", bad), WASI_EFAULT);
    wasm_val bad2[2] = {0xfffffffc, 300};
    assert_int_equal(errno_of(f, "args_sizes_get", bad2), WASI_EFAULT);
}

static void test_fd_write_capture(void **state) {
    fixture *f = *state;
    memcpy(f->mem + 1000, "hello, ", 7);
    memcpy(f->mem + 2000, "world\n", 6);
    st32(f->mem + 16, 1000);
    st32(f->mem + 20, 7);
    st32(f->mem + 24, 2000);
    st32(f->mem + 28, 6);
    wasm_val a[4] = {1, 16, 2, 40};
    assert_int_equal(errno_of(f, "fd_write", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 40), 13);
    size_t len;
    const uint8_t *out = wasi_captured(f->w, 1, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(out, "hello, world\n", 13);
    /* stderr is WASI_IO_NULL: accepted and dropped. */
    a[0] = 2;
    assert_int_equal(errno_of(f, "fd_write", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 40), 13);
    /* stdin and unknown descriptors are not writable. */
    a[0] = 0;
    assert_int_equal(errno_of(f, "fd_write", a), WASI_EBADF);
    a[0] = 7;
    assert_int_equal(errno_of(f, "fd_write", a), WASI_EBADF);
    /* A buffer running past the memory: EFAULT and no partial write. */
    st32(f->mem + 28, 70000);
    a[0] = 1;
    assert_int_equal(errno_of(f, "fd_write", a), WASI_EFAULT);
    out = wasi_captured(f->w, 1, &len);
    assert_int_equal(len, 13);
    /* The iovec array itself out of bounds, and a huge count. */
    wasm_val b[4] = {1, 65535, 1, 40};
    assert_int_equal(errno_of(f, "fd_write", b), WASI_EFAULT);
    wasm_val c[4] = {1, 16, 0x20000000, 40};
    assert_int_equal(errno_of(f, "fd_write", c), WASI_EFAULT);
    wasm_val d[4] = {1, 16, 0, 0xffffffff};
    assert_int_equal(errno_of(f, "fd_write", d), WASI_EFAULT);
}

static void test_fd_write_cap(void **state) {
    fixture *f = *state; /* capture cap of 5 bytes */
    memcpy(f->mem + 1000, "abcdefgh", 8);
    st32(f->mem + 16, 1000);
    st32(f->mem + 20, 8);
    wasm_val a[4] = {1, 16, 1, 40};
    assert_int_equal(errno_of(f, "fd_write", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 40), 5);
    assert_int_equal(errno_of(f, "fd_write", a), WASI_ENOSPC);
    size_t len;
    const uint8_t *out = wasi_captured(f->w, 1, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "abcde", 5);
}

static void test_fd_read_buffer(void **state) {
    fixture *f = *state;
    st32(f->mem + 16, 1000);
    st32(f->mem + 20, 5);
    st32(f->mem + 24, 2000);
    st32(f->mem + 28, 100);
    wasm_val a[4] = {0, 16, 2, 40};
    assert_int_equal(errno_of(f, "fd_read", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 40), sizeof stdin_text - 1);
    assert_memory_equal(f->mem + 1000, "hello", 5);
    assert_memory_equal(f->mem + 2000, " from stdin", 11);
    /* End of input. */
    assert_int_equal(errno_of(f, "fd_read", a), WASI_ESUCCESS);
    assert_int_equal(ld32(f->mem + 40), 0);
    a[0] = 1;
    assert_int_equal(errno_of(f, "fd_read", a), WASI_EBADF);
    /* Destination past the end of memory. */
    st32(f->mem + 16, 65530);
    st32(f->mem + 20, 7);
    wasm_val b[4] = {0, 16, 1, 40};
    assert_int_equal(errno_of(f, "fd_read", b), WASI_EFAULT);
}

static void test_fd_misc(void **state) {
    fixture *f = *state;
    wasm_val a[2] = {1, 64};
    assert_int_equal(errno_of(f, "fd_fdstat_get", a), WASI_ESUCCESS);
    assert_true(ld64(f->mem + 64 + 8) & (1ull << 6)); /* FD_WRITE right */
    a[1] = 65536 - 8;
    assert_int_equal(errno_of(f, "fd_fdstat_get", a), WASI_EFAULT);
    wasm_val p[2] = {3, 64};
    assert_int_equal(errno_of(f, "fd_prestat_get", p), WASI_EBADF);
    wasm_val sk[4] = {1, 0, 0, 64};
    assert_int_equal(errno_of(f, "fd_seek", sk), WASI_ESPIPE);
    sk[0] = 9;
    assert_int_equal(errno_of(f, "fd_seek", sk), WASI_EBADF);
    wasm_val pw[1] = {1};
    assert_int_equal(errno_of(f, "fd_pwrite", pw), WASI_ENOSYS);
    pw[0] = 5;
    assert_int_equal(errno_of(f, "fd_pwrite", pw), WASI_EBADF);
    assert_int_equal(errno_of(f, "path_open", NULL), WASI_EBADF);
    assert_int_equal(errno_of(f, "sock_accept", NULL), WASI_ENOSYS);
    assert_int_equal(errno_of(f, "sched_yield", NULL), WASI_ESUCCESS);
    /* Closing stdout makes later writes fail with EBADF. */
    wasm_val c[1] = {1};
    assert_int_equal(errno_of(f, "fd_close", c), WASI_ESUCCESS);
    assert_int_equal(errno_of(f, "fd_close", c), WASI_EBADF);
    wasm_val w[4] = {1, 16, 0, 40};
    assert_int_equal(errno_of(f, "fd_write", w), WASI_EBADF);
}

static void test_clocks_random(void **state) {
    fixture *f = *state;
    wasm_val a[3] = {1, 0, 64};
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_ESUCCESS);
    uint64_t t1 = ld64(f->mem + 64);
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_ESUCCESS);
    assert_true(ld64(f->mem + 64) >= t1 && t1 > 0);
    a[0] = 0;
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_ESUCCESS);
    assert_true(ld64(f->mem + 64) > 1577836800ull * 1000000000ull);
    a[0] = 2;
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_ESUCCESS);
    a[0] = 99;
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_EINVAL);
    a[0] = 1;
    a[2] = 65536 - 7;
    assert_int_equal(errno_of(f, "clock_time_get", a), WASI_EFAULT);
    wasm_val r[2] = {1, 64};
    assert_int_equal(errno_of(f, "clock_res_get", r), WASI_ESUCCESS);
    assert_true(ld64(f->mem + 64) >= 1);
    memset(f->mem + 4096, 0, 256);
    wasm_val g[2] = {4096, 256};
    assert_int_equal(errno_of(f, "random_get", g), WASI_ESUCCESS);
    int nonzero = 0;
    for (int i = 0; i < 256; i++)
        nonzero += f->mem[4096 + i] != 0;
    assert_true(nonzero > 200);
    wasm_val bad[2] = {65000, 1000};
    assert_int_equal(errno_of(f, "random_get", bad), WASI_EFAULT);
}

/* One relative monotonic clock subscription of @p ns at mem+0, events at mem+256. */
static void put_clock_sub(fixture *f, uint64_t ud, uint64_t ns) {
    memset(f->mem, 0, 48);
    st64(f->mem, ud);
    f->mem[8] = 0;         /* clock */
    st32(f->mem + 16, 1);  /* monotonic */
    st64(f->mem + 24, ns); /* timeout */
}

static void test_poll_sleep(void **state) {
    fixture *f = *state;
    put_clock_sub(f, 0x1234, 3000000);
    wasm_val a[4] = {0, 256, 1, 512};
    uint64_t t0 = plat_now_ns();
    assert_int_equal(errno_of(f, "poll_oneoff", a), WASI_ESUCCESS);
    assert_true(plat_now_ns() - t0 >= 3000000);
    assert_int_equal(ld32(f->mem + 512), 1);
    assert_int_equal(ld64(f->mem + 256), 0x1234);
    assert_int_equal(f->mem[256 + 10], 0); /* clock event */
    /* No subscriptions, or buffers out of bounds. */
    wasm_val z[4] = {0, 256, 0, 512};
    assert_int_equal(errno_of(f, "poll_oneoff", z), WASI_EINVAL);
    wasm_val b[4] = {65500, 256, 1, 512};
    assert_int_equal(errno_of(f, "poll_oneoff", b), WASI_EFAULT);
    /* A sleep past the ctx deadline traps with a timeout at the deadline. */
    put_clock_sub(f, 1, 10ull * 1000000000ull);
    wasi_set_deadline(f->w, plat_now_ns() + 20000000);
    t0 = plat_now_ns();
    wasm_val r;
    assert_int_equal(call(f, "poll_oneoff", a, &r), ERR_TRAP);
    assert_int_equal(wasm_store_trap(f->s), WASM_TRAP_TIMEOUT);
    assert_true(plat_now_ns() - t0 < 2000000000ull);
}

static void test_proc_exit(void **state) {
    fixture *f = *state;
    wasm_val a[1] = {7};
    assert_int_equal(call(f, "proc_exit", a, NULL), ERR_EXIT);
    assert_int_equal(wasm_store_exit_code(f->s), 7);
    /* The store stays usable. */
    assert_int_equal(errno_of(f, "sched_yield", NULL), WASI_ESUCCESS);
}

static int resolve_bytes(const unsigned char *bytes, size_t len, wasm_error *err) {
    wasm_module *m;
    assert_int_equal(wasm_module_load(bytes, len, &m, err), 0);
    wasi_config cfg = {0};
    wasi_ctx *w = wasi_new(&cfg);
    wasm_store *s = wasm_store_new(NULL);
    wasm_extern imps[4];
    int rc = wasi_resolve(w, s, m, imps, err);
    wasm_store_free(s);
    wasm_module_free(m);
    wasi_free(w);
    return rc;
}

static void test_resolve_errors(void **state) {
    (void)state;
    wasm_error err;
    assert_int_equal(resolve_bytes(mod_badsig, sizeof mod_badsig, &err), ERR_UNLINKABLE);
    assert_non_null(strstr(err.msg, "fd_write"));
    assert_int_equal(resolve_bytes(mod_othermod, sizeof mod_othermod, &err), ERR_UNLINKABLE);
    assert_non_null(strstr(err.msg, "env.f"));
    assert_int_equal(resolve_bytes(mod_unknown_noret, sizeof mod_unknown_noret, &err),
                     ERR_UNLINKABLE);
    assert_non_null(strstr(err.msg, "no_such_fn"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_args_environ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_write_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_write_cap, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_fd_read_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_misc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clocks_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_exit, setup, teardown),
        cmocka_unit_test(test_resolve_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
