/* Unit tests of the coordinator's lock state machine (src/coord/locks.c) and of the function
 * registry at rest (src/coord/registry.c): FIFO grants, vector merging, late releases, revocation,
 * dropped waiters; save/load round trip, tampered code refused, name rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord/coord_int.h"
#include "crypto/crypto.h"

static const co_vec *find_vec(const co_lock *l, uint64_t writer) {
    for (size_t i = 0; i < l->nvec; i++)
        if (l->vec[i].writer == writer)
            return &l->vec[i];
    return NULL;
}

static void test_lock_fifo_and_vectors(void **state) {
    (void)state;
    co_lock *list = NULL;
    co_lock *l = co_lock_get(&list, "L");
    assert_ptr_equal(co_lock_get(&list, "L"), l);
    co_grant g;
    assert_true(co_lock_acquire(l, 1, 10, 0, &g));
    assert_int_equal(g.peer, 1);
    assert_int_equal(g.lock_req, 10);
    assert_false(co_lock_acquire(l, 2, 20, 0, &g));
    assert_false(co_lock_acquire(l, 3, 30, 0, &g));
    assert_false(co_lock_acquire(l, 2, 21, 0, &g));

    co_vec v1[] = {{1, 5}, {7, 3}};
    assert_int_equal(co_lock_release(l, 1, v1, 2, 0, &g), 1);
    assert_int_equal(g.peer, 2);
    assert_int_equal(g.lock_req, 20);
    assert_int_equal(l->nvec, 2);

    /* A release by a non-holder is refused but its vector merged; seqnos never go back. */
    co_vec late[] = {{1, 2}, {9, 4}};
    assert_int_equal(co_lock_release(l, 1, late, 2, 0, &g), -1);
    assert_int_equal(find_vec(l, 1)->seqno, 5);
    assert_int_equal(find_vec(l, 9)->seqno, 4);
    assert_true(l->held);
    assert_int_equal(l->holder.peer, 2);

    co_vec v2[] = {{2, 9}, {1, 6}};
    assert_int_equal(co_lock_release(l, 2, v2, 2, 0, &g), 1);
    assert_int_equal(g.peer, 3);
    assert_int_equal(find_vec(l, 1)->seqno, 6);
    assert_int_equal(find_vec(l, 2)->seqno, 9);
    assert_int_equal(find_vec(l, 7)->seqno, 3);

    /* Holder 3 is revoked (dead); the next waiter is peer 2's second request. */
    assert_int_equal(co_lock_revoke(l, 0, &g), 1);
    assert_int_equal(g.peer, 2);
    assert_int_equal(g.lock_req, 21);
    assert_int_equal(l->forced, 1);
    assert_int_equal(co_lock_release(l, 2, NULL, 0, 0, &g), 0);
    assert_false(l->held);
    assert_int_equal(co_lock_revoke(l, 0, &g), -1);
    co_locks_free(list);
}

static void test_lock_drop_waiters(void **state) {
    (void)state;
    co_lock *list = NULL;
    co_lock *l = co_lock_get(&list, "M");
    co_grant g;
    assert_true(co_lock_acquire(l, 1, 1, 0, &g));
    assert_false(co_lock_acquire(l, 2, 2, 0, &g));
    assert_false(co_lock_acquire(l, 3, 3, 0, &g));
    assert_false(co_lock_acquire(l, 2, 4, 0, &g));
    assert_false(co_lock_acquire(l, 4, 5, 0, &g));
    assert_int_equal(co_lock_drop_waiters(l, 2), 2);
    assert_int_equal(co_lock_drop_waiters(l, 4),
                     1); /* the tail: a later acquire must still queue */
    assert_false(co_lock_acquire(l, 5, 6, 0, &g));
    assert_int_equal(co_lock_release(l, 1, NULL, 0, 0, &g), 1);
    assert_int_equal(g.peer, 3);
    assert_int_equal(co_lock_release(l, 3, NULL, 0, 0, &g), 1);
    assert_int_equal(g.peer, 5);
    assert_int_equal(co_lock_release(l, 5, NULL, 0, 0, &g), 0);
    co_locks_free(list);
}

static void test_names(void **state) {
    (void)state;
    assert_true(co_name_ok("counter"));
    assert_true(co_name_ok("a.b_c-9"));
    assert_false(co_name_ok(""));
    assert_false(co_name_ok(".hidden"));
    assert_false(co_name_ok("a/b"));
    assert_false(co_name_ok("a b"));
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = 0;
    assert_false(co_name_ok(longname));
    longname[64] = 0;
    assert_true(co_name_ok(longname));
}

static void test_registry_roundtrip_and_tamper(void **state) {
    (void)state;
    char dir[] = "/tmp/psl-test-coord.XXXXXX";
    assert_non_null(mkdtemp(dir));
    co_limits lim;
    co_limits_default(&lim);
    lim.timeout_ms = 1234;
    lim.sync = true;
    const uint8_t code_a[] = "module a bytes", code_b[] = "module b bytes";
    co_fn *a = co_fn_new("alpha", code_a, sizeof code_a, &lim, 4);
    a->version = 3;
    co_fn *b = co_fn_new("beta", code_b, sizeof code_b, &lim, 4);
    assert_int_equal(co_registry_save(dir, a), 0);
    assert_int_equal(co_registry_save(dir, b), 0);

    co_fn *list = NULL;
    assert_int_equal(co_registry_load(dir, &list, 4), 0);
    co_fn *la = co_fn_find(list, "alpha");
    assert_non_null(la);
    assert_non_null(co_fn_find(list, "beta"));
    assert_int_equal(la->len, sizeof code_a);
    assert_memory_equal(la->code, code_a, sizeof code_a);
    assert_memory_equal(la->hash, a->hash, 32);
    assert_int_equal(la->version, 3);
    assert_int_equal(la->lim.timeout_ms, 1234);
    assert_true(la->lim.sync);
    while (list) {
        co_fn *nx = list->next;
        co_fn_free(list);
        list = nx;
    }

    /* Change beta's code behind the registry's back: it must not load. */
    char path[512];
    snprintf(path, sizeof path, "%s/functions/beta.wasm", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("evil", f);
    fclose(f);
    assert_int_equal(co_registry_load(dir, &list, 4), 0);
    assert_non_null(co_fn_find(list, "alpha"));
    assert_null(co_fn_find(list, "beta"));
    while (list) {
        co_fn *nx = list->next;
        co_fn_free(list);
        list = nx;
    }

    assert_int_equal(co_registry_delete(dir, "alpha"), 0);
    assert_int_equal(co_registry_delete(dir, "beta"), 0);
    assert_int_equal(co_registry_load(dir, &list, 4), 0);
    assert_null(list);

    /* The log ring keeps the newest lines. */
    for (int i = 0; i < 6; i++) {
        char line[16];
        snprintf(line, sizeof line, "line %d", i);
        co_fn_log(a, line);
    }
    assert_int_equal(a->log_n, 4);
    assert_string_equal(a->log[a->log_head], "line 2");
    assert_string_equal(a->log[(a->log_head + 3) % a->log_cap], "line 5");
    co_fn_free(a);
    co_fn_free(b);
    snprintf(path, sizeof path, "%s/functions", dir);
    rmdir(path);
    rmdir(dir);
}

static void test_lock_vectors_at_rest(void **state) {
    (void)state;
    char dir[] = "/tmp/psl-test-locks.XXXXXX";
    assert_non_null(mkdtemp(dir));
    co_lock *list = NULL, *back = NULL;
    co_grant g;
    co_lock *l = co_lock_get(&list, "bank");
    assert_true(co_lock_acquire(l, 1, 1, 0, &g));
    co_vec v[] = {{1, 5}, {UINT64_C(0xfffffffffffffff1), UINT64_C(0x123456789abcdef0)}};
    assert_int_equal(co_lock_release(l, 1, v, 2, 0, &g), 0);
    (void)co_lock_get(&list, "empty");
    assert_int_equal(co_locks_save(dir, list), 0);
    assert_int_equal(co_locks_load(dir, &back), 0);
    co_lock *b = co_lock_get(&back, "bank");
    assert_int_equal(b->nvec, 2);
    assert_int_equal(find_vec(b, 1)->seqno, 5);
    assert_non_null(find_vec(b, UINT64_C(0xfffffffffffffff1)));
    assert_true(find_vec(b, UINT64_C(0xfffffffffffffff1))->seqno == UINT64_C(0x123456789abcdef0));
    assert_false(b->held);
    /* Loading merges: a later, smaller vector never lowers what was loaded. */
    co_vec older[] = {{1, 3}};
    assert_int_equal(co_lock_release(b, 9, older, 1, 0, &g), -1);
    assert_int_equal(find_vec(b, 1)->seqno, 5);
    co_locks_free(list);
    co_locks_free(back);
    char path[512];
    snprintf(path, sizeof path, "%s/locks.json", dir);
    /* A damaged file is reported, not half-applied silently. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{not json", f);
    fclose(f);
    back = NULL;
    assert_int_equal(co_locks_load(dir, &back), ERR_CORRUPT);
    co_locks_free(back);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    if (cr_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_fifo_and_vectors),
        cmocka_unit_test(test_lock_drop_waiters),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_registry_roundtrip_and_tamper),
        cmocka_unit_test(test_lock_vectors_at_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
