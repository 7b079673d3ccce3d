/* Unit tests of src/base: the error space (err_str) and the aborting allocation wrappers.
 * The panic paths (ASSERT, out-of-memory) abort the process, so they run in a forked child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "base/err.h"

static void test_err_str_ok(void **state) {
    (void)state;
    assert_string_equal(err_str(0), "ok");
}

/* Every project code has its own non-empty message, different from the others and from the
 * fallback for unknown codes. */
static void test_err_str_project_codes(void **state) {
    (void)state;
    static const int codes[] = {ERR_NOTFOUND,  ERR_CORRUPT, ERR_AUTH,       ERR_TRAP,
                                ERR_MALFORMED, ERR_INVALID, ERR_LIMIT,      ERR_NOMEM,
                                ERR_IO,        ERR_USAGE,   ERR_UNLINKABLE, ERR_EXIT};
    const char *unknown = err_str(ERR_BASE - 9999);
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        const char *s = err_str(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, err_str(codes[j]));
    }
}

static void test_err_str_errno_passthrough(void **state) {
    (void)state;
    assert_string_equal(err_str(-ENOENT), strerror(ENOENT));
    assert_string_equal(err_str(-EINVAL), strerror(EINVAL));
    assert_string_equal(err_str(-ENOMEM), strerror(ENOMEM));
}

/* Codes outside every known range still give a string, never NULL. */
static void test_err_str_unknown(void **state) {
    (void)state;
    assert_non_null(err_str(ERR_BASE));
    assert_non_null(err_str(ERR_BASE - 12345));
    assert_non_null(err_str(42));
    assert_non_null(err_str(INT32_MIN));
}

static void test_project_codes_below_errno(void **state) {
    (void)state;
    /* The project codes must not collide with any negative errno (Linux errno < 4096). */
    assert_true(ERR_NOTFOUND < -4096);
    assert_true(ERR_EXIT < -4096);
    assert_true(ERR_BASE < -4096);
}

static void test_xmalloc(void **state) {
    (void)state;
    uint8_t *p = xmalloc(1000);
    assert_non_null(p);
    memset(p, 0xab, 1000);
    free(p);
    /* Zero-size requests still return a pointer that can be freed. */
    p = xmalloc(0);
    assert_non_null(p);
    free(p);
}

static void test_xcalloc_zeroes(void **state) {
    (void)state;
    uint32_t *p = xcalloc(4096, sizeof *p);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(p[i], 0);
    free(p);
    p = xcalloc(0, 0);
    assert_non_null(p);
    free(p);
}

static void test_xrealloc_keeps_contents(void **state) {
    (void)state;
    uint8_t *p = xmalloc(16);
    for (int i = 0; i < 16; i++)
        p[i] = (uint8_t)i;
    p = xrealloc(p, 1 << 20);
    for (int i = 0; i < 16; i++)
        assert_int_equal(p[i], i);
    p[(1 << 20) - 1] = 7;
    p = xrealloc(p, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(p[i], i);
    free(p);
    /* realloc of NULL behaves as malloc */
    p = xrealloc(NULL, 32);
    assert_non_null(p);
    free(p);
}

static void test_xstrdup(void **state) {
    (void)state;
    const char *s = "psl: a secure stateful serverless platform";
    char *d = xstrdup(s);
    assert_ptr_not_equal(d, s);
    assert_string_equal(d, s);
    free(d);
    d = xstrdup("");
    assert_string_equal(d, "");
    free(d);
}

/* Runs fn in a child process and returns its wait status; the child's stderr goes to /dev/null. */
static int run_in_child(void (*fn)(void)) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        /* A sanitizer run must not turn the abort into its own exit code or a report. */
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static volatile int g_truth = 1;

static void child_assert_fails(void) {
    ASSERT(g_truth == 0);
}

static void child_assert_holds(void) {
    ASSERT(g_truth == 1);
}

static void test_assert_aborts(void **state) {
    (void)state;
    int st = run_in_child(child_assert_fails);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    st = run_in_child(child_assert_holds);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_str_ok),
        cmocka_unit_test(test_err_str_project_codes),
        cmocka_unit_test(test_err_str_errno_passthrough),
        cmocka_unit_test(test_err_str_unknown),
        cmocka_unit_test(test_project_codes_below_errno),
        cmocka_unit_test(test_xmalloc),
        cmocka_unit_test(test_xcalloc_zeroes),
        cmocka_unit_test(test_xrealloc_keeps_contents),
        cmocka_unit_test(test_xstrdup),
        cmocka_unit_test(test_assert_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
