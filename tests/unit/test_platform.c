/* Unit tests of src/platform: clocks, reserved/committed virtual memory (including that W^X
 * pages really refuse writes), whole-file and whole-fd reads, and the random source.
 * Checks that must observe a fault run in a forked child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "platform/platform.h"

static void test_clocks(void **state) {
    (void)state;
    uint64_t a = plat_now_ns();
    uint64_t b = plat_now_ns();
    assert_true(b >= a);
    usleep(2000);
    uint64_t c = plat_now_ns();
    assert_true(c - a >= 2000000u);
    /* The wall clock is past 2020-01-01 and within a sane range of the monotonic one's pace. */
    assert_true(plat_realtime_ns() > 1577836800ull * 1000000000ull);
}

static void test_page_size(void **state) {
    (void)state;
    size_t ps = plat_page_size();
    assert_true(ps >= 4096);
    assert_int_equal(ps & (ps - 1), 0);
    assert_int_equal(plat_page_size(), ps);
}

#define FAULT_EXIT 77

static void on_fault(int sig) {
    (void)sig;
    _exit(FAULT_EXIT);
}

/* Runs fn(arg) in a child and returns its wait status. The child turns a memory fault into exit
 * status FAULT_EXIT itself, so that neither cmocka's nor a sanitizer's handler reports it. */
static int run_in_child(void (*fn)(void *), void *arg) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fault;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void child_write(void *p) {
    *(volatile uint8_t *)p = 1;
}

static void child_read(void *p) {
    volatile uint8_t v = *(volatile uint8_t *)p;
    (void)v;
}

static int faults(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status) == FAULT_EXIT;
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

static void test_vm_reserve_commit_decommit(void **state) {
    (void)state;
    size_t ps = plat_page_size();
    size_t len = 64 * ps;
    uint8_t *p = plat_vm_reserve(len);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % ps, 0);

    /* Reserved memory has no access. */
    assert_true(faults(run_in_child(child_read, p)));

    /* Committed pages read as zero and are writable; the pages after them are still reserved. */
    assert_int_equal(plat_vm_commit(p, 4 * ps), 0);
    for (size_t i = 0; i < 4 * ps; i++)
        assert_int_equal(p[i], 0);
    memset(p, 0x5a, 4 * ps);
    assert_int_equal(p[4 * ps - 1], 0x5a);
    assert_true(faults(run_in_child(child_write, p + 4 * ps)));

    /* Growing the committed range keeps the contents. */
    assert_int_equal(plat_vm_commit(p, 8 * ps), 0);
    assert_int_equal(p[0], 0x5a);
    assert_int_equal(p[8 * ps - 1], 0);

    /* Decommit drops contents and access; committing again gives zero pages. */
    assert_int_equal(plat_vm_decommit(p, 8 * ps), 0);
    assert_true(faults(run_in_child(child_read, p)));
    assert_int_equal(plat_vm_commit(p, ps), 0);
    assert_int_equal(p[0], 0);

    /* Zero-length operations are no-ops. */
    assert_int_equal(plat_vm_commit(p, 0), 0);
    assert_int_equal(plat_vm_decommit(p, 0), 0);
    plat_vm_release(p, len);
    plat_vm_release(NULL, len);
}

/* A large reservation (the size a wasm32 memory with guard pages uses) must not need RAM. */
static void test_vm_reserve_large(void **state) {
    (void)state;
    size_t len = (size_t)8 << 30;
    uint8_t *p = plat_vm_reserve(len);
    assert_non_null(p);
    assert_int_equal(plat_vm_commit(p + ((size_t)4 << 30), plat_page_size()), 0);
    p[(size_t)4 << 30] = 1;
    plat_vm_release(p, len);
}

static void test_vm_protect_exec_is_not_writable(void **state) {
    (void)state;
    size_t ps = plat_page_size();
    uint8_t *p = plat_vm_reserve(ps);
    assert_non_null(p);
    assert_int_equal(plat_vm_commit(p, ps), 0);
    p[0] = 0xc3; /* x86 `ret`; only the permission bits are tested, nothing is run */
    assert_int_equal(plat_vm_protect_exec(p, ps), 0);
    assert_int_equal(p[0], 0xc3); /* still readable */
    assert_true(faults(run_in_child(child_write, p)));
    plat_vm_release(p, ps);
}

static char g_tmpdir[64];

static int setup_tmpdir(void **state) {
    (void)state;
    strcpy(g_tmpdir, "/tmp/psl-test-platform-XXXXXX");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_read_file(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/small", g_tmpdir);
    write_file(path, "hello\0world", 11);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(path, &data, &len), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "hello\0world", 11);
    free(data);

    /* Larger than the first read buffer: the buffer must grow. */
    size_t big = 300000;
    uint8_t *src = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        src[i] = (uint8_t)(i * 131 + (i >> 9));
    snprintf(path, sizeof path, "%s/big", g_tmpdir);
    write_file(path, src, big);
    assert_int_equal(plat_read_file(path, &data, &len), 0);
    assert_int_equal(len, big);
    assert_memory_equal(data, src, big);
    free(data);
    free(src);

    /* Empty file */
    snprintf(path, sizeof path, "%s/empty", g_tmpdir);
    write_file(path, "", 0);
    assert_int_equal(plat_read_file(path, &data, &len), 0);
    assert_int_equal(len, 0);
    free(data);
}

static void test_read_file_errors(void **state) {
    (void)state;
    char path[128];
    uint8_t *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/does-not-exist", g_tmpdir);
    assert_int_equal(plat_read_file(path, &data, &len), -ENOENT);
    assert_int_equal(plat_read_file(g_tmpdir, &data, &len), -EISDIR);
}

static void test_read_fd_limit(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    static uint8_t buf[100000];
    memset(buf, 'x', sizeof buf);
    /* The pipe buffer (64 KiB by default) is enough for one write below 65536 bytes. */
    assert_int_equal(write(fds[1], buf, 1000), 1000);
    close(fds[1]);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_fd(fds[0], 1000, &data, &len), 0);
    assert_int_equal(len, 1000);
    free(data);
    close(fds[0]);

    /* One byte over the limit is refused. */
    char path[128];
    snprintf(path, sizeof path, "%s/over", g_tmpdir);
    write_file(path, buf, sizeof buf);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(plat_read_fd(fileno(f), sizeof buf - 1, &data, &len), -EFBIG);
    fclose(f);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(plat_read_fd(fileno(f), sizeof buf, &data, &len), 0);
    assert_int_equal(len, sizeof buf);
    free(data);
    fclose(f);
}

/* Resident set size of this process in bytes (from /proc/self/statm). */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * plat_page_size();
}

enum { TRIM_BLOCKS = 24000, TRIM_BLOCK = 4000 };

/* Allocate ~96 MB in small blocks on a thread of its own (its own arena), touch them, free all
 * but the last (so that the arena's top stays in use and nothing is trimmed on the way). */
static void *fill_and_free(void *arg) {
    void **blocks = arg;
    for (int i = 0; i < TRIM_BLOCKS; i++) {
        blocks[i] = xmalloc(TRIM_BLOCK);
        memset(blocks[i], 1, TRIM_BLOCK);
    }
    for (int i = 0; i < TRIM_BLOCKS - 1; i++)
        free(blocks[i]);
    return NULL;
}

static void test_memory_trim(void **state) {
    (void)state;
    if (plat_sanitizer_build()) {
        plat_memory_trim(); /* callable; the sanitizer's allocator keeps its own books */
        skip();
    }
    void **blocks = xcalloc(TRIM_BLOCKS, sizeof *blocks);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fill_and_free, blocks), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    size_t before = rss_bytes();
    plat_memory_trim();
    size_t after = rss_bytes();
    free(blocks[TRIM_BLOCKS - 1]);
    free(blocks);
    assert_true(before > after + (48u << 20)); /* most of the 96 MB freed went back */
}

static void test_random(void **state) {
    (void)state;
    uint8_t a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_int_equal(plat_random(a, sizeof a), 0);
    assert_int_equal(plat_random(b, sizeof b), 0);
    /* 2^-512 chance of a false failure. */
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(plat_random(a, 0), 0);

    /* A large request is filled completely: count the bits set, expect about half. */
    size_t n = 1 << 20;
    uint8_t *big = xcalloc(n, 1);
    assert_int_equal(plat_random(big, n), 0);
    uint64_t ones = 0;
    for (size_t i = 0; i < n; i++)
        ones += (uint64_t)__builtin_popcount(big[i]);
    uint64_t bits = (uint64_t)n * 8;
    assert_true(ones > bits / 2 - bits / 100 && ones < bits / 2 + bits / 100);
    /* The last bytes were written too (all-zero 16 bytes: 2^-128). */
    uint8_t zero[16] = {0};
    assert_memory_not_equal(big + n - 16, zero, 16);
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_page_size),
        cmocka_unit_test(test_vm_reserve_commit_decommit),
        cmocka_unit_test(test_vm_reserve_large),
        cmocka_unit_test(test_vm_protect_exec_is_not_writable),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_read_file_errors),
        cmocka_unit_test(test_read_fd_limit),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_memory_trim),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
