/* Memtable: last-writer-wins in any delivery order, tombstones, batch encoding round trip and
 * rejection of corrupt batches; the base hash map and hybrid logical clock it stands on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/hlc.h"
#include "base/map.h"
#include "kvs/kvs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_map_many(void **state) {
    (void)state;
    map m;
    map_init(&m);
    enum { N = 20000 };
    static char keys[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        assert_null(map_put(&m, keys[i], strlen(keys[i]), (void *)(intptr_t)(i + 1)));
    }
    assert_int_equal(m.n, N);
    for (int i = 0; i < N; i += 2)
        assert_int_equal((intptr_t)map_del(&m, keys[i], strlen(keys[i])), i + 1);
    for (int i = 0; i < N; i++) {
        void *v = map_get(&m, keys[i], strlen(keys[i]));
        if (i % 2)
            assert_int_equal((intptr_t)v, i + 1);
        else
            assert_null(v);
    }
    size_t it = 0, seen = 0;
    while (map_next(&m, &it))
        seen++;
    assert_int_equal(seen, N / 2);
    map_fini(&m);
}

static void test_hlc_monotonic(void **state) {
    (void)state;
    hlc c;
    hlc_init(&c);
    uint64_t a = hlc_now(&c, 1000), b = hlc_now(&c, 1000), d = hlc_now(&c, 999);
    assert_true(b > a);
    assert_true(d > b); /* the wall clock went back: still monotonic */
    hlc_observe(&c, (uint64_t)5000 << 16);
    assert_true(hlc_now(&c, 1000) > ((uint64_t)5000 << 16));
}

static int get_str(kvs *k, const char *key, char *buf, size_t cap) {
    size_t n;
    int rc = kvs_get(k, key, strlen(key), buf, cap - 1, &n, NULL);
    if (rc == 0)
        buf[n < cap - 1 ? n : cap - 1] = 0;
    return rc;
}

/* kvs_own_hlc follows this writer's versions, local or merged back; kvs_get_obs notes the
 * greatest of them a read returned, a delete's included, and nothing for other writers' versions
 * or absent keys. */
static void test_own_hlc(void **state) {
    (void)state;
    kvs *k = kvs_new(1);
    assert_int_equal(kvs_own_hlc(k), 0);
    assert_int_equal(kvs_put(k, "a", 1, "x", 1), 0);
    kvs_version va;
    size_t vl;
    assert_int_equal(kvs_get(k, "a", 1, NULL, 0, &vl, &va), 0);
    assert_int_equal(kvs_own_hlc(k), va.hlc);
    kvs_obs o = {0};
    assert_int_equal(kvs_get_obs(k, "a", 1, NULL, 0, &vl, &o), 0);
    assert_int_equal(o.read_own_hlc, va.hlc);
    assert_false(o.wrote);
    /* Another writer's newer version: not ours, neither in own_hlc nor in what a read notes. */
    kvs_version vp = {.hlc = va.hlc + 100, .writer = 9};
    assert_int_equal(kvs_merge(k, "p", 1, "y", 1, false, vp), 1);
    assert_int_equal(kvs_own_hlc(k), va.hlc);
    kvs_obs o2 = {0};
    assert_int_equal(kvs_get_obs(k, "p", 1, NULL, 0, &vl, &o2), 0);
    assert_int_equal(o2.read_own_hlc, 0);
    assert_int_equal(kvs_get_obs(k, "absent", 6, NULL, 0, &vl, &o2), ERR_NOTFOUND);
    assert_int_equal(o2.read_own_hlc, 0);
    /* A local write after observing vp gets a greater HLC than both. */
    assert_int_equal(kvs_delete(k, "a", 1), 0);
    uint64_t del = kvs_own_hlc(k);
    assert_true(del > vp.hlc);
    assert_int_equal(kvs_get_obs(k, "a", 1, NULL, 0, &vl, &o2), ERR_NOTFOUND);
    assert_int_equal(o2.read_own_hlc, del); /* the delete decided the answer */
    kvs_version vd;
    assert_int_equal(kvs_get(k, "a", 1, NULL, 0, &vl, &vd), ERR_NOTFOUND);
    assert_int_equal(vd.hlc, del);
    assert_int_equal(vd.writer, 1);
    /* Our own write merged back (recovery): counted. */
    kvs_version vr = {.hlc = del + 50, .writer = 1};
    assert_int_equal(kvs_merge(k, "r", 1, "z", 1, false, vr), 1);
    assert_int_equal(kvs_own_hlc(k), del + 50);
    kvs_free(k);
}

static void test_put_get_delete(void **state) {
    (void)state;
    kvs *k = kvs_new(1);
    char buf[64];
    assert_int_equal(get_str(k, "a", buf, sizeof buf), ERR_NOTFOUND);
    assert_int_equal(kvs_put(k, "a", 1, "one", 3), 0);
    assert_int_equal(get_str(k, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "one");
    kvs_version v1, v2;
    size_t vl;
    assert_int_equal(kvs_get(k, "a", 1, NULL, 0, &vl, &v1), 0);
    assert_int_equal(kvs_put(k, "a", 1, "uno", 3), 0); /* same size: overwritten in place */
    assert_int_equal(get_str(k, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "uno");
    assert_int_equal(kvs_get(k, "a", 1, NULL, 0, &vl, &v2), 0);
    assert_int_equal(kvs_version_cmp(v2, v1), 1);
    /* an older write of the same size loses, a newer one wins, in place too */
    assert_int_equal(kvs_merge(k, "a", 1, "old", 3, false, v1), 0);
    assert_int_equal(get_str(k, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "uno");
    kvs_version v3 = {.hlc = v2.hlc + 1, .writer = 9};
    assert_int_equal(kvs_merge(k, "a", 1, "new", 3, false, v3), 1);
    assert_int_equal(get_str(k, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "new");
    assert_int_equal(kvs_get(k, "a", 1, NULL, 0, &vl, &v2), 0);
    assert_int_equal(kvs_version_cmp(v2, v3), 0);
    assert_int_equal(kvs_put(k, "a", 1, "uno", 3), 0);
    /* A short buffer still reports the full length. */
    size_t n;
    assert_int_equal(kvs_get(k, "a", 1, buf, 1, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(kvs_delete(k, "a", 1), 0);
    assert_int_equal(get_str(k, "a", buf, sizeof buf), ERR_NOTFOUND);
    assert_int_equal(kvs_pending(k), 4);
    kvs_stats st;
    kvs_get_stats(k, &st);
    assert_int_equal(st.keys, 0);
    char big[1];
    assert_int_equal(kvs_put(k, big, KVS_MAX_KEY + 1, "x", 1), ERR_LIMIT);
    kvs_free(k);
}

typedef struct dump {
    char text[4096];
} dump;

static int dump_entry(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      kvs_version ver) {
    (void)ver;
    dump *d = ud;
    size_t n = strlen(d->text);
    snprintf(d->text + n, sizeof d->text - n, "%.*s=%.*s;", (int)klen, key, (int)vlen, val);
    return 0;
}

/* Canonical text of a memtable: sorted "k=v;" pairs. */
static void canon(kvs *k, char *out, size_t cap) {
    dump d = {{0}};
    kvs_foreach(k, dump_entry, &d);
    char *items[256];
    int n = 0;
    for (char *s = strtok(d.text, ";"); s && n < 256; s = strtok(NULL, ";"))
        items[n++] = s;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(items[i], items[j]) > 0) {
                char *t = items[i];
                items[i] = items[j];
                items[j] = t;
            }
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(out, items[i], cap - strlen(out) - 2);
        strcat(out, ";");
    }
}

static void test_convergence_any_order(void **state) {
    (void)state;
    /* Two writers write overlapping keys; their batches applied in either order, and twice,
     * give the same state everywhere. */
    kvs *w1 = kvs_new(1), *w2 = kvs_new(2);
    for (int i = 0; i < 50; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%d", i % 7);
        snprintf(val, sizeof val, "w1-%d", i);
        assert_int_equal(kvs_put(w1, key, strlen(key), val, strlen(val)), 0);
        snprintf(val, sizeof val, "w2-%d", i);
        assert_int_equal(kvs_put(w2, key, strlen(key), val, strlen(val)), 0);
        if (i % 11 == 0)
            assert_int_equal(kvs_delete(w2, key, strlen(key)), 0);
    }
    uint8_t *b1, *b2;
    size_t l1, l2;
    uint32_t n1, n2;
    kvs_take_batch(w1, 0, &b1, &l1, &n1);
    kvs_take_batch(w2, 0, &b2, &l2, &n2);
    assert_int_equal(n1, 7); /* the last write of each of the 7 keys: the others are superseded */
    assert_int_equal(kvs_pending(w1), 0);
    kvs *r1 = kvs_new(3), *r2 = kvs_new(4);
    assert_true(kvs_apply_batch(r1, b1, l1) >= 0);
    assert_true(kvs_apply_batch(r1, b2, l2) >= 0);
    assert_true(kvs_apply_batch(r2, b2, l2) >= 0);
    assert_true(kvs_apply_batch(r2, b1, l1) >= 0);
    assert_int_equal(kvs_apply_batch(r2, b1, l1), 0); /* a replay changes nothing */
    assert_true(kvs_apply_batch(w1, b2, l2) >= 0);
    assert_true(kvs_apply_batch(w2, b1, l1) >= 0);
    char c1[4096], c2[4096], c3[4096], c4[4096];
    canon(r1, c1, sizeof c1);
    canon(r2, c2, sizeof c2);
    canon(w1, c3, sizeof c3);
    canon(w2, c4, sizeof c4);
    assert_string_equal(c1, c2);
    assert_string_equal(c1, c3);
    assert_string_equal(c1, c4);
    assert_true(strlen(c1) > 0);
    free(b1);
    free(b2);
    kvs_free(w1);
    kvs_free(w2);
    kvs_free(r1);
    kvs_free(r2);
}

static void test_bounded_batches(void **state) {
    (void)state;
    kvs *w = kvs_new(1), *r = kvs_new(2);
    char val[300];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(kvs_put(w, key, strlen(key), val, sizeof val), 0);
    }
    uint32_t total = 0, batches = 0;
    for (;;) {
        uint8_t *b;
        size_t len;
        uint32_t n;
        kvs_take_batch(w, 4096, &b, &len, &n);
        if (!b)
            break;
        assert_true(len <= 4096 + 16);
        assert_true(n >= 1);
        assert_int_equal(kvs_apply_batch(r, b, len), (int)n);
        total += n;
        batches++;
        free(b);
    }
    assert_int_equal(total, 100);
    assert_true(batches > 5);
    kvs_stats st;
    kvs_get_stats(r, &st);
    assert_int_equal(st.keys, 100);
    /* 1000 updates of 700 keys taken whole (the buffer is handed over, header in front): the 300
     * superseded puts are left out, the later put of each key arrives, and the writer starts
     * afresh. */
    for (int i = 0; i < 1000; i++) {
        char key[16], v[16];
        snprintf(key, sizeof key, "big%d", i % 700);
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(kvs_put(w, key, strlen(key), v, strlen(v)), 0);
    }
    uint8_t *b;
    size_t len;
    uint32_t n;
    kvs_take_batch(w, 0, &b, &len, &n);
    assert_non_null(b);
    assert_int_equal(n, 700);
    assert_int_equal(kvs_pending(w), 0);
    assert_int_equal(kvs_apply_batch(r, b, len), 700);
    free(b);
    char got[16];
    size_t glen;
    assert_int_equal(kvs_get(r, "big5", 4, got, sizeof got, &glen, NULL), 0);
    assert_int_equal(glen, 4);
    assert_memory_equal(got, "v705", 4);
    kvs_get_stats(r, &st);
    assert_int_equal(st.keys, 800);
    assert_int_equal(kvs_put(w, "after", 5, "x", 1), 0);
    kvs_take_batch(w, 0, &b, &len, &n);
    assert_int_equal(n, 1);
    assert_int_equal(kvs_apply_batch(r, b, len), 1);
    free(b);
    kvs_free(w);
    kvs_free(r);
}

/* Coalescing: within one batch only the last write of a key travels (puts and deletes alike, in
 * the order of their last writes); across batches nothing is dropped; a replica that applies the
 * coalesced batches ends in the writer's state. */
static void test_coalesce(void **state) {
    (void)state;
    kvs *w = kvs_new(1), *r = kvs_new(2), *probe = kvs_new(0);
    /* Written first, by a lower writer id: older than the delete of a below. */
    assert_int_equal(kvs_put(probe, "a", 1, "old", 3), 0);
    assert_int_equal(kvs_put(w, "a", 1, "a1", 2), 0);
    assert_int_equal(kvs_put(w, "b", 1, "b1", 2), 0);
    assert_int_equal(kvs_delete(w, "a", 1), 0); /* supersedes a1 */
    assert_int_equal(kvs_put(w, "c", 1, "c1", 2), 0);
    assert_int_equal(kvs_put(w, "b", 1, "b2", 2), 0); /* supersedes b1 */
    assert_int_equal(kvs_delete(w, "c", 1), 0);
    assert_int_equal(kvs_put(w, "c", 1, "c3", 2), 0); /* supersedes c1 and the delete */
    uint8_t *b;
    size_t len;
    uint32_t n;
    kvs_take_batch(w, 0, &b, &len, &n);
    assert_int_equal(n, 3);
    /* Decoded in order: delete a, put b=b2, put c=c3. */
    assert_int_equal(kvs_apply_batch(probe, b, len), 3);
    char got[8];
    size_t glen;
    assert_int_equal(kvs_get(probe, "a", 1, got, sizeof got, &glen, NULL), ERR_NOTFOUND);
    assert_int_equal(kvs_get(probe, "b", 1, got, sizeof got, &glen, NULL), 0);
    assert_memory_equal(got, "b2", 2);
    assert_int_equal(kvs_get(probe, "c", 1, got, sizeof got, &glen, NULL), 0);
    assert_memory_equal(got, "c3", 2);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[6], 2); /* first update: the delete of a */
    assert_int_equal(kvs_apply_batch(r, b, len), 3);
    free(b);
    kvs_stats st;
    kvs_get_stats(w, &st);
    assert_int_equal(st.coalesced, 4);
    assert_int_equal(st.puts, 5);
    /* Across batches: a key written in two batches travels in both. */
    assert_int_equal(kvs_put(w, "b", 1, "b4", 2), 0);
    kvs_take_batch(w, 0, &b, &len, &n);
    assert_int_equal(n, 1);
    assert_int_equal(kvs_apply_batch(r, b, len), 1);
    free(b);
    /* Bounded batches coalesce within each cut only. */
    char val[200];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 60; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i % 5);
        val[0] = (char)('A' + i % 26);
        assert_int_equal(kvs_put(w, key, strlen(key), val, sizeof val), 0);
    }
    uint32_t total = 0, batches = 0;
    for (;;) {
        kvs_take_batch(w, 2048, &b, &len, &n);
        if (!b)
            break;
        assert_true(n >= 1 && n <= 5);
        assert_int_equal(kvs_apply_batch(r, b, len), (int)n);
        total += n;
        batches++;
        free(b);
    }
    assert_true(batches >= 6);
    assert_true(total < 60 && total >= batches); /* coalesced within each cut, not across */
    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(kvs_get(r, key, strlen(key), got, sizeof got, &glen, NULL), 0);
        assert_int_equal(got[0], 'A' + (55 + i) % 26); /* the last of the 60 writes of it */
    }
    char c1[4096], c2[4096];
    canon(w, c1, sizeof c1);
    canon(r, c2, sizeof c2);
    assert_string_equal(c1, c2);
    kvs_free(probe);
    kvs_free(w);
    kvs_free(r);
}

/* A snapshot in parts: each part a batch within the bound, together the whole state; a bound on
 * the number of parts is enforced. */
static void test_snapshot_parts(void **state) {
    (void)state;
    kvs *w = kvs_new(1), *r = kvs_new(2);
    char key[16], val[200];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "k%d", i);
        memset(val, 'a' + i % 26, sizeof val);
        assert_int_equal(kvs_put(w, key, strlen(key), val, sizeof val), 0);
    }
    assert_int_equal(kvs_delete(w, "k7", 2), 0);
    size_t est = kvs_snapshot_bytes(w);
    assert_true(est > 500 * 200);
    kvs_part *p;
    size_t np, total = 0;
    uint32_t n;
    assert_int_equal(kvs_snapshot_parts(w, 10000, 0, &p, &np, &n), 0);
    assert_int_equal(n, 500);
    assert_true(np >= 11);
    int applied = 0;
    for (size_t i = 0; i < np; i++) {
        assert_true(p[i].len <= 10000);
        total += p[i].len;
        int a = kvs_apply_batch(r, p[i].data, p[i].len);
        assert_true(a > 0);
        applied += a;
    }
    assert_int_equal(applied, 500);
    assert_true(total <= est);
    kvs_parts_free(p, np);
    char buf[256];
    size_t vlen;
    assert_int_equal(kvs_get(r, "k499", 4, buf, sizeof buf, &vlen, NULL), 0);
    assert_int_equal(vlen, 200);
    assert_int_equal(buf[0], 'a' + 499 % 26);
    assert_int_equal(kvs_get(r, "k7", 2, buf, sizeof buf, &vlen, NULL), ERR_NOTFOUND);
    /* Too few parts allowed: refused, nothing returned. */
    assert_int_equal(kvs_snapshot_parts(w, 10000, 3, &p, &np, &n), ERR_LIMIT);
    assert_null(p);
    assert_int_equal(np, 0);
    /* An empty store gives one part of no entries. */
    kvs *e = kvs_new(3);
    assert_int_equal(kvs_snapshot_parts(e, 10000, 0, &p, &np, &n), 0);
    assert_int_equal(np, 1);
    assert_int_equal(n, 0);
    assert_int_equal(kvs_apply_batch(r, p[0].data, p[0].len), 0);
    kvs_parts_free(p, np);
    kvs_free(e);
    kvs_free(w);
    kvs_free(r);
}

static void test_snapshot(void **state) {
    (void)state;
    kvs *w = kvs_new(1), *r = kvs_new(2);
    assert_int_equal(kvs_put(w, "a", 1, "old", 3), 0);
    uint8_t *early;
    size_t elen;
    uint32_t en;
    kvs_take_batch(w, 0, &early, &elen, &en); /* the put of a, delivered late below */
    assert_int_equal(kvs_put(w, "b", 1, "bee", 3), 0);
    assert_int_equal(kvs_delete(w, "a", 1), 0);
    kvs_part *snap;
    size_t np;
    uint32_t n;
    assert_int_equal(kvs_snapshot_parts(w, 0, 1, &snap, &np, &n), 0);
    assert_int_equal(n, 2); /* b and the tombstone of a */
    assert_int_equal(np, 1);
    kvs_parts_free(snap, np);
    assert_int_equal(kvs_snapshot_parts(w, 8, 1, &snap, &np, &n), ERR_LIMIT);
    assert_int_equal(kvs_snapshot_parts(w, 0, 1, &snap, &np, &n), 0);
    assert_int_equal(kvs_apply_batch(r, snap[0].data, snap[0].len), 2);
    char buf[8];
    size_t vlen;
    assert_int_equal(kvs_get(r, "b", 1, buf, sizeof buf, &vlen, NULL), 0);
    assert_int_equal(kvs_get(r, "a", 1, buf, sizeof buf, &vlen, NULL), ERR_NOTFOUND);
    /* The tombstone keeps its version: the older put arriving late does not bring a back. */
    assert_int_equal(kvs_apply_batch(r, early, elen), 0);
    assert_int_equal(kvs_get(r, "a", 1, buf, sizeof buf, &vlen, NULL), ERR_NOTFOUND);
    kvs_parts_free(snap, np);
    free(early);
    kvs_free(w);
    kvs_free(r);
}

static void test_corrupt_batch(void **state) {
    (void)state;
    kvs *w = kvs_new(1);
    assert_int_equal(kvs_put(w, "key", 3, "value", 5), 0);
    assert_int_equal(kvs_put(w, "k2", 2, "v2", 2), 0);
    uint8_t *b;
    size_t len;
    uint32_t n;
    kvs_take_batch(w, 0, &b, &len, &n);
    kvs *r = kvs_new(2);
    /* Every truncation is rejected and leaves the memtable empty. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(kvs_apply_batch(r, b, cut), ERR_CORRUPT);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    assert_int_equal(kvs_apply_batch(r, longer, len + 1), ERR_CORRUPT);
    b[0] = 9; /* unknown format */
    assert_int_equal(kvs_apply_batch(r, b, len), ERR_CORRUPT);
    kvs_stats st;
    kvs_get_stats(r, &st);
    assert_int_equal(st.keys, 0);
    free(longer);
    free(b);
    kvs_free(w);
    kvs_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_many),        cmocka_unit_test(test_hlc_monotonic),
        cmocka_unit_test(test_put_get_delete),  cmocka_unit_test(test_convergence_any_order),
        cmocka_unit_test(test_own_hlc),
        cmocka_unit_test(test_bounded_batches), cmocka_unit_test(test_coalesce),
        cmocka_unit_test(test_snapshot),        cmocka_unit_test(test_snapshot_parts),
        cmocka_unit_test(test_corrupt_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
