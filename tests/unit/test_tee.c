/* Unit tests of src/tee with backend sim: platform key file handling, reports and their
 * verification against policies (every rejection reason), the text forms, sealing, monotonic
 * counters, and process hardening. Seccomp filters are installed only in forked children,
 * never in the test runner itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "platform/platform.h"
#include "tee/tee.h"

static char g_home[256];

static tee_enclave *open_in(const char *home) {
    tee_opts o = {.home = home, .quiet = true};
    tee_enclave *t = NULL;
    assert_int_equal(tee_open(&o, &t), 0);
    return t;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_home, sizeof g_home, "/tmp/psl-test-tee-XXXXXX");
    if (!mkdtemp(g_home))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_home);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_platform_key_file(void **state) {
    (void)state;
    char home[300], path[400];
    snprintf(home, sizeof home, "%s/h1", g_home);
    tee_enclave *t = open_in(home);
    uint8_t pk1[32], pk2[32];
    tee_platform_key(t, pk1);
    assert_string_equal(tee_backend(t), "sim");
    tee_close(t);
    struct stat st;
    assert_int_equal(stat(home, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/platform.key", home);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* reopening loads the same key */
    t = open_in(home);
    tee_platform_key(t, pk2);
    assert_memory_equal(pk1, pk2, 32);
    tee_close(t);
    /* a key file readable by others is refused */
    assert_int_equal(chmod(path, 0644), 0);
    tee_opts o = {.home = home, .quiet = true};
    assert_int_equal(tee_open(&o, &t), ERR_IO);
    assert_int_equal(chmod(path, 0600), 0);
    /* a damaged key file is refused */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "PSLK", 4), 4);
    close(fd);
    assert_int_equal(tee_open(&o, &t), ERR_CORRUPT);
}

static void test_report_verify(void **state) {
    (void)state;
    tee_enclave *t = open_in(g_home);
    uint8_t pk[32], nonce[32];
    cr_random(pk, 32);
    cr_random(nonce, 32);
    tee_report r, d;
    assert_int_equal(tee_report_create(t, pk, nonce, &r), 0);
    assert_string_equal(r.backend, "sim");
    uint8_t enc[TEE_REPORT_BYTES];
    tee_report_encode(&r, enc);
    assert_int_equal(tee_report_decode(enc, sizeof enc, &d), 0);
    assert_memory_equal(&r, &d, sizeof r);
    assert_int_equal(tee_report_decode(enc, sizeof enc - 1, &d), ERR_MALFORMED);

    tee_policy dev, prod;
    tee_policy_for(t, false, &dev);
    tee_policy_for(t, true, &prod);
    char why[256];
    uint64_t now = plat_realtime_ns();
    assert_int_equal(tee_verify(&r, &dev, pk, nonce, now, why, sizeof why), 0);
    /* production policy: sim refused by name */
    assert_int_equal(tee_verify(&r, &prod, pk, nonce, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "allow_sim: no"));
    /* bad signature */
    d = r;
    d.sig[0] ^= 1;
    assert_int_equal(tee_verify(&d, &dev, pk, nonce, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "bad report signature"));
    /* tampered field (measurement) breaks the signature too */
    d = r;
    d.measurement[3] ^= 1;
    assert_int_equal(tee_verify(&d, &dev, NULL, NULL, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "signature"));
    /* wrong binding */
    uint8_t other[32];
    cr_random(other, 32);
    assert_int_equal(tee_verify(&r, &dev, other, nonce, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "public key"));
    assert_int_equal(tee_verify(&r, &dev, pk, other, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "nonce"));
    /* too old */
    assert_int_equal(tee_verify(&r, &dev, pk, nonce, now + 400ull * 1000000000ull, why, sizeof why),
                     ERR_AUTH);
    assert_non_null(strstr(why, "too old"));
    /* the measurement changes with configuration: the old policy rejects new reports */
    tee_measure_extend(t, "config", "x=1", 3);
    assert_int_equal(tee_report_create(t, pk, nonce, &d), 0);
    assert_int_equal(tee_verify(&d, &dev, pk, nonce, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "measurement"));
    /* another platform key is rejected when the policy pins one */
    char home2[300];
    snprintf(home2, sizeof home2, "%s/other", g_home);
    tee_enclave *t2 = open_in(home2);
    assert_int_equal(tee_report_create(t2, pk, nonce, &d), 0);
    assert_int_equal(tee_verify(&d, &dev, pk, nonce, now, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "platform key"));
    tee_close(t2);
    tee_policy_fini(&dev);
    tee_policy_fini(&prod);
    tee_close(t);
}

static void test_text_forms(void **state) {
    (void)state;
    tee_enclave *t = open_in(g_home);
    uint8_t pk[32] = {1}, nonce[32] = {2};
    tee_report r, d;
    assert_int_equal(tee_report_create(t, pk, nonce, &r), 0);
    char *txt = tee_report_to_text(&r);
    assert_non_null(strstr(txt, "\nbackend: sim\n"));
    char why[256];
    assert_int_equal(tee_report_from_text(txt, &d, why, sizeof why), 0);
    assert_memory_equal(&r, &d, sizeof r);
    /* truncated text is refused with a reason */
    char *cut = strstr(txt, "\nplatform_key:");
    assert_non_null(cut);
    cut[1] = 0; /* truncated at a line boundary */
    assert_int_equal(tee_report_from_text(txt, &d, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "incomplete"));
    cut = strstr(txt, "\nmeasurement: ");
    cut[20] = 0; /* truncated inside a value */
    assert_int_equal(tee_report_from_text(txt, &d, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "bad value for 'measurement'"));
    free(txt);
    assert_int_equal(tee_report_from_text("version: 1\nbogus: 2\n", &d, why, sizeof why),
                     ERR_MALFORMED);
    assert_non_null(strstr(why, "unknown field"));

    tee_policy p, q;
    tee_policy_for(t, false, &p);
    tee_policy_add_client(&p, pk);
    char *ptxt = tee_policy_to_text(&p);
    assert_int_equal(tee_policy_parse(ptxt, &q, why, sizeof why), 0);
    assert_true(q.allow_sim);
    assert_int_equal(q.n_meas, 1);
    assert_int_equal(q.n_platform, 1);
    assert_true(tee_policy_accepts_client(&q, pk));
    assert_false(tee_policy_accepts_client(&q, nonce));
    free(ptxt);
    tee_policy_fini(&q);
    tee_policy_fini(&p);
    assert_int_equal(tee_policy_parse("measurement: any\n", &q, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "allow_sim"));
    assert_int_equal(tee_policy_parse("allow_sim: yes\n", &q, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "no measurement"));
    assert_int_equal(tee_policy_parse("allow_sim: maybe\nmeasurement: any\n", &q, why, sizeof why),
                     ERR_MALFORMED);
    assert_int_equal(tee_policy_parse("allow_sim: no\nmeasurement: any\n", &q, why, sizeof why), 0);
    assert_false(q.allow_sim);
    tee_policy_fini(&q);
    tee_close(t);
}

/* A client list: only 'client_key: HEX' lines; it accepts the listed identities and no report. */
static void test_client_list(void **state) {
    (void)state;
    uint8_t a[32], b[32];
    cr_random(a, 32);
    cr_random(b, 32);
    char ha[65], text[256], why[256];
    cr_hex(ha, a, 32);
    snprintf(text, sizeof text, "# clients\nclient_key: %s\n", ha);
    tee_policy q;
    assert_int_equal(tee_client_list_parse(text, &q, why, sizeof why), 0);
    assert_true(tee_policy_accepts_client(&q, a));
    assert_false(tee_policy_accepts_client(&q, b));
    assert_false(q.any_client_key);
    /* No report passes it: no measurement, and sim is not allowed. */
    tee_enclave *t = open_in(g_home);
    uint8_t pk[32], nonce[32];
    cr_random(pk, 32);
    cr_random(nonce, 32);
    tee_report r;
    assert_int_equal(tee_report_create(t, pk, nonce, &r), 0);
    assert_int_equal(tee_verify(&r, &q, pk, nonce, plat_realtime_ns(), why, sizeof why), ERR_AUTH);
    tee_close(t);
    tee_policy_fini(&q);
    /* Anything else is refused, with the line. */
    assert_int_equal(tee_client_list_parse("# nothing\n", &q, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "names no client_key"));
    assert_int_equal(tee_client_list_parse("client_key: any\n", &q, why, sizeof why),
                     ERR_MALFORMED);
    assert_non_null(strstr(why, "line 1: bad value 'any'"));
    snprintf(text, sizeof text, "client_key: %s\nmeasurement: any\n", ha);
    assert_int_equal(tee_client_list_parse(text, &q, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "line 2: a client list holds only"));
    assert_int_equal(tee_client_list_load("/nonexistent/keys", &q, why, sizeof why), ERR_IO);
}

static void test_seal(void **state) {
    (void)state;
    tee_enclave *t = open_in(g_home);
    uint8_t *blob, *pt;
    size_t bl, pl;
    assert_int_equal(tee_seal(t, "deploy:a", "top secret", 10, &blob, &bl), 0);
    assert_int_equal(bl, 10 + TEE_SEAL_OVERHEAD);
    assert_int_equal(tee_unseal(t, "deploy:a", blob, bl, &pt, &pl), 0);
    assert_int_equal(pl, 10);
    assert_memory_equal(pt, "top secret", 10);
    cr_secure_free(pt);
    assert_int_equal(tee_unseal(t, "deploy:b", blob, bl, &pt, &pl), ERR_AUTH);
    blob[bl - 1] ^= 1;
    assert_int_equal(tee_unseal(t, "deploy:a", blob, bl, &pt, &pl), ERR_AUTH);
    blob[bl - 1] ^= 1;
    assert_int_equal(tee_unseal(t, "deploy:a", blob, 10, &pt, &pl), ERR_MALFORMED);
    /* another platform cannot unseal */
    char home2[300];
    snprintf(home2, sizeof home2, "%s/other", g_home);
    tee_enclave *t2 = open_in(home2);
    assert_int_equal(tee_unseal(t2, "deploy:a", blob, bl, &pt, &pl), ERR_AUTH);
    tee_close(t2);
    /* another measurement cannot unseal */
    tee_measure_extend(t, "code", "evil", 4);
    assert_int_equal(tee_unseal(t, "deploy:a", blob, bl, &pt, &pl), ERR_AUTH);
    free(blob);
    tee_close(t);
}

static void test_counter(void **state) {
    (void)state;
    tee_enclave *t = open_in(g_home);
    uint64_t v = 99;
    assert_int_equal(tee_counter_read(t, "km.state", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tee_counter_increment(t, "km.state", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tee_counter_increment(t, "km.state", &v), 0);
    assert_int_equal(v, 2);
    tee_close(t);
    t = open_in(g_home);
    assert_int_equal(tee_counter_read(t, "km.state", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(tee_counter_read(t, "../x", &v), ERR_USAGE);
    /* an edited counter file is detected */
    char path[400];
    snprintf(path, sizeof path, "%s/counters/km.state", g_home);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x01", 1), 1);
    close(fd);
    assert_int_equal(tee_counter_read(t, "km.state", &v), ERR_CORRUPT);
    tee_close(t);
}

static void test_harden(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (tee_harden_process() != 0)
            _exit(2);
        _exit(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : 3);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Child: install the filter, show that allowed calls work (write to the pipe), then try a
 * forbidden one. */
static int sandbox_child(unsigned flags, int wfd, int what) {
    if (tee_sandbox_install(flags) != 0)
        _exit(10);
    if (write(wfd, "ok", 2) != 2)
        _exit(11);
    if (what == 0) {
        char *argv[] = {"/bin/true", NULL};
        execv("/bin/true", argv);
        _exit(errno == EPERM ? 20 : 21);
    }
    if (what == 1) { /* creating a file needs TEE_SB_FILES */
        int fd = open("/tmp/psl-sandbox-should-not-exist", O_WRONLY | O_CREAT, 0600);
        _exit(fd < 0 && errno == EPERM ? 20 : 21);
    }
    return 0;
}

static void run_sandbox(unsigned flags, int what, int *status, char *got) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        sandbox_child(flags, p[1], what);
        _exit(0);
    }
    close(p[1]);
    memset(got, 0, 3);
    ssize_t n = read(p[0], got, 2);
    (void)n;
    close(p[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
}

static void test_sandbox_kills_forbidden(void **state) {
    (void)state;
    int st;
    char got[3];
    run_sandbox(0, 0, &st, got);
    assert_string_equal(got, "ok"); /* allowed calls worked */
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS); /* execve killed the child */
}

static void test_sandbox_errno_mode(void **state) {
    (void)state;
    int st;
    char got[3];
    run_sandbox(TEE_SB_ERRNO, 0, &st, got);
    assert_string_equal(got, "ok");
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 20); /* execve failed with EPERM, the child lived on */
    run_sandbox(TEE_SB_ERRNO | TEE_SB_NET, 1, &st, got);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 20); /* no file creation without TEE_SB_FILES */
}

static void *thr(void *arg) {
    return arg;
}

static void test_sandbox_threads_not_fork(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (tee_sandbox_install(TEE_SB_THREADS) != 0)
            _exit(10);
        pthread_t th;
        if (pthread_create(&th, NULL, thr, NULL) != 0 || pthread_join(th, NULL) != 0)
            _exit(11);
        pid_t c = fork(); /* forbidden: the process is killed here */
        if (c == 0)
            _exit(0);
        _exit(12);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

int main(void) {
    if (cr_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platform_key_file),
        cmocka_unit_test(test_report_verify),
        cmocka_unit_test(test_text_forms),
        cmocka_unit_test(test_client_list),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_harden),
        cmocka_unit_test(test_sandbox_kills_forbidden),
        cmocka_unit_test(test_sandbox_errno_mode),
        cmocka_unit_test(test_sandbox_threads_not_fork),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
