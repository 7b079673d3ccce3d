/* The invocation executor: stateful functions through the psl host API, pooled instances that
 * never leak state between runs, limits, traps, nested invocations and concurrent callers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "abi/psl_abi.h"
#include "base/err.h"
#include "platform/platform.h"
#include "worker/exec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *load(const char *path, size_t *len) {
    uint8_t *data;
    int rc = plat_read_file(path, &data, len);
    if (rc) {
        fprintf(stderr, "cannot read %s (build the examples first)\n", path);
        fail();
    }
    return data;
}

/* A minimal lock service: one process-wide mutex per name would do; one global is enough here. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_svc_tag;
static int t_lock(void *ud, const char *name, size_t len) {
    (void)name, (void)len;
    assert_ptr_equal(ud, &g_svc_tag); /* services get the ud they were registered with */
    pthread_mutex_lock(&g_lock);
    return 0;
}
static int t_unlock(void *ud, const char *name, size_t len) {
    (void)name, (void)len;
    assert_ptr_equal(ud, &g_svc_tag);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

static void invoke_str(executor *ex, const char *fn, const char *in, ex_result *r) {
    ex_invoke(ex, fn, (const uint8_t *)in, strlen(in), 0, r);
}

static void test_counter_state(void **state) {
    (void)state;
    kvs *kv = kvs_new(1);
    executor *ex = ex_new(kv, NULL);
    size_t len;
    uint8_t *wasm = load(EXAMPLES_DIR "/counter.wasm", &len);
    char msg[256];
    assert_int_equal(ex_deploy(ex, "counter", wasm, len, NULL, msg, sizeof msg), 0);
    for (int i = 1; i <= 5; i++) {
        ex_result r;
        invoke_str(ex, "counter", "visits", &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.exit_code, 0);
        char want[64];
        /* The guest's own global always reads 1: no state survives between invocations except
         * through the key-value store. */
        snprintf(want, sizeof want, "visits=%d (instance run 1)\n", i);
        assert_int_equal(r.outlen, strlen(want));
        assert_memory_equal(r.out, want, r.outlen);
        free(r.out);
    }
    char val[16] = {0};
    size_t vlen;
    assert_int_equal(kvs_get(kv, "counter/visits", 14, val, sizeof val - 1, &vlen, NULL), 0);
    assert_string_equal(val, "5");
    free(wasm);
    ex_free(ex);
    kvs_free(kv);
}

static void test_errors(void **state) {
    (void)state;
    kvs *kv = kvs_new(1);
    executor *ex = ex_new(kv, NULL);
    char msg[256] = {0};
    const uint8_t junk[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 0xff};
    assert_int_equal(ex_deploy(ex, "junk", junk, sizeof junk, NULL, msg, sizeof msg),
                     ERR_MALFORMED);
    assert_true(strlen(msg) > 0);
    assert_int_equal(ex_deploy(ex, "bad name!", junk, sizeof junk, NULL, msg, sizeof msg),
                     ERR_USAGE);
    ex_result r;
    invoke_str(ex, "nothing", "", &r);
    assert_int_equal(r.status, ERR_NOTFOUND);

    size_t len;
    uint8_t *wasm = load(EXAMPLES_DIR "/counter.wasm", &len);
    ex_limits lim;
    ex_limits_default(&lim);
    lim.max_request = 4;
    assert_int_equal(ex_deploy(ex, "small", wasm, len, &lim, msg, sizeof msg), 0);
    invoke_str(ex, "small", "far too long", &r);
    assert_int_equal(r.status, ERR_LIMIT);
    invoke_str(ex, "small", "ok", &r);
    assert_int_equal(r.status, 0);
    free(r.out);
    assert_int_equal(ex_remove(ex, "small"), 0);
    assert_int_equal(ex_remove(ex, "small"), ERR_NOTFOUND);
    invoke_str(ex, "small", "ok", &r);
    assert_int_equal(r.status, ERR_NOTFOUND);
    /* Without a lock service, psl_lock answers an error and bank exits non-zero. */
    uint8_t *bank = load(EXAMPLES_DIR "/bank.wasm", &len);
    assert_int_equal(ex_deploy(ex, "bank", bank, len, NULL, msg, sizeof msg), 0);
    invoke_str(ex, "bank", "open a 10", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.exit_code, 2);
    free(r.out);
    free(bank);
    free(wasm);
    ex_free(ex);
    kvs_free(kv);
}

typedef struct worker_arg {
    executor *ex;
    int n;
} worker_arg;

static void *mover(void *arg) {
    worker_arg *w = arg;
    for (int i = 0; i < w->n; i++) {
        ex_result r;
        invoke_str(w->ex, "bank", i % 2 ? "move a b 3" : "move b a 2", &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.exit_code, 0);
        free(r.out);
    }
    return NULL;
}

/* An executor on @p kv with the test lock service and bank.wasm deployed as "bank". */
static executor *bank_executor(kvs *kv) {
    static const host_services svc = {.ud = &g_svc_tag, .lock = t_lock, .unlock = t_unlock};
    executor *ex = ex_new(kv, &svc);
    size_t len;
    uint8_t *wasm = load(EXAMPLES_DIR "/bank.wasm", &len);
    char msg[256];
    assert_int_equal(ex_deploy(ex, "bank", wasm, len, NULL, msg, sizeof msg), 0);
    free(wasm);
    return ex;
}

/* ex_result.kv: what an invocation wrote and the newest version of ours it read (the worker's
 * sync durability answers at once the runs that wrote nothing and read only durable versions). */
static void test_kv_obs(void **state) {
    (void)state;
    kvs *kv = kvs_new(1);
    executor *ex = bank_executor(kv);
    ex_result r;
    invoke_str(ex, "bank", "total alice", &r); /* absent */
    assert_int_equal(r.status, 0);
    assert_false(r.kv.wrote);
    assert_int_equal(r.kv.read_own_hlc, 0);
    free(r.out);
    invoke_str(ex, "bank", "open alice 100", &r);
    assert_true(r.kv.wrote);
    free(r.out);
    uint64_t mine = kvs_own_hlc(kv);
    assert_true(mine > 0);
    kvs_version peer = {.hlc = mine + 1000, .writer = 7};
    assert_int_equal(kvs_merge(kv, "bank/bob", 8, "5", 1, false, peer), 1);
    invoke_str(ex, "bank", "total bob", &r); /* another writer's version only */
    assert_false(r.kv.wrote);
    assert_int_equal(r.kv.read_own_hlc, 0);
    assert_int_equal(r.outlen, strlen("total 5\n"));
    free(r.out);
    invoke_str(ex, "bank", "total alice bob", &r);
    assert_false(r.kv.wrote);
    assert_int_equal(r.kv.read_own_hlc, mine);
    free(r.out);
    ex_free(ex);
    kvs_free(kv);
}

static void test_bank_concurrent(void **state) {
    (void)state;
    kvs *kv = kvs_new(1);
    executor *ex = bank_executor(kv);
    ex_result r;
    invoke_str(ex, "bank", "open a 100", &r);
    free(r.out);
    invoke_str(ex, "bank", "open b 100", &r);
    free(r.out);
    pthread_t t[4];
    worker_arg w = {ex, 40};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, mover, &w);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    invoke_str(ex, "bank", "total a b", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.outlen, strlen("total 200\n"));
    assert_memory_equal(r.out, "total 200\n", r.outlen);
    free(r.out);
    ex_free(ex);
    kvs_free(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_state),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bank_concurrent),
        cmocka_unit_test(test_kv_obs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
