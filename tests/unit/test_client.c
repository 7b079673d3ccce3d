/* Unit tests of src/client: the gateway's endpoint list (cl_endpoints_parse), the policy a client
 * demands of a worker (cl_policy_make), and cl_invoke against an in-process attested server
 * (sim enclave in a temporary home) that answers a stale result first: it must be skipped by its
 * request id, and a report with another measurement must be refused during the handshake. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "client/client.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "proto/cluster.pb-c.h"

#define M1 "0101010101010101010101010101010101010101010101010101010101010101"
#define PK "0202020202020202020202020202020202020202020202020202020202020202"

static void test_endpoints_parse(void **state) {
    (void)state;
    const char *j = "[{\"id\":1,\"name\":\"worker-1\",\"endpoint\":\"tcp://127.0.0.1:7001\","
                    "\"measurement\":\"" M1 "\",\"backend\":\"sim\",\"platform_key\":\"" PK "\"},"
                    "{\"id\":2,\"endpoint\":\"tcp://127.0.0.1:7002\",\"measurement\":\"" M1 "\"}]";
    cl_endpoint *e = NULL;
    size_t n = 0;
    char why[200];
    assert_int_equal(cl_endpoints_parse(j, strlen(j), &e, &n, why, sizeof why), 0);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].id, 1);
    assert_string_equal(e[0].name, "worker-1");
    assert_string_equal(e[0].endpoint, "tcp://127.0.0.1:7001");
    assert_string_equal(e[0].backend, "sim");
    assert_int_equal(e[0].measurement[31], 1);
    assert_int_equal(e[0].platform_key[0], 2);
    assert_int_equal(e[1].id, 2);
    assert_string_equal(e[1].name, "");
    free(e);

    assert_int_equal(cl_endpoints_parse("[]", 2, &e, &n, why, sizeof why), 0);
    assert_int_equal(n, 0);
    assert_null(e);
    assert_int_equal(cl_endpoints_parse("{}", 2, &e, &n, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "not a JSON array"));
    const char *bad = "[{\"id\":1,\"endpoint\":\"tcp://x:1\",\"measurement\":\"0102\"}]";
    assert_int_equal(cl_endpoints_parse(bad, strlen(bad), &e, &n, why, sizeof why), ERR_MALFORMED);
    assert_non_null(strstr(why, "measurement"));
    const char *noep = "[{\"id\":1,\"measurement\":\"" M1 "\"}]";
    assert_int_equal(cl_endpoints_parse(noep, strlen(noep), &e, &n, why, sizeof why),
                     ERR_MALFORMED);
}

static void test_policy_make(void **state) {
    (void)state;
    uint8_t m1[32], m2[32], pk[32];
    memset(m1, 1, 32);
    memset(m2, 2, 32);
    memset(pk, 3, 32);
    char why[200];
    tee_policy any = {.allow_sim = true, .any_measurement = true, .max_age_s = 60};
    any.n_platform = 1;
    any.platform = (uint8_t(*)[32])pk;
    tee_policy out;
    assert_int_equal(cl_policy_make(&any, m2, &out, why, sizeof why), 0);
    assert_true(out.allow_sim);
    assert_false(out.any_measurement);
    assert_int_equal(out.n_meas, 1);
    assert_memory_equal(out.meas[0], m2, 32);
    assert_int_equal(out.n_platform, 1);
    assert_memory_equal(out.platform[0], pk, 32);
    assert_int_equal(out.max_age_s, 60);
    tee_policy_fini(&out);

    tee_policy list = {.allow_sim = false, .n_meas = 1, .meas = (uint8_t(*)[32])m1};
    assert_int_equal(cl_policy_make(&list, m1, &out, why, sizeof why), 0);
    assert_false(out.allow_sim);
    tee_policy_fini(&out);
    assert_int_equal(cl_policy_make(&list, m2, &out, why, sizeof why), ERR_AUTH);
    assert_non_null(strstr(why, "not accepted by the client's policy"));
}

/* ---- cl_invoke against an in-process server ---- */

typedef struct srv {
    net_server *s;
    volatile int stop;
} srv;

static void answer(net_server *s, uint64_t peer, uint64_t req_id, const char *body) {
    Psl__ClientResult r = PSL__CLIENT_RESULT__INIT;
    r.req_id = req_id;
    r.body.data = (uint8_t *)body;
    r.body.len = strlen(body);
    size_t n = psl__client_result__get_packed_size(&r);
    uint8_t *b = malloc(n ? n : 1);
    psl__client_result__pack(&r, b);
    assert_int_equal(net_server_send(s, peer, b, n), 0);
    free(b);
}

static void *serve(void *arg) {
    srv *v = arg;
    while (!v->stop) {
        uint64_t peer;
        uint8_t *msg;
        size_t len;
        if (net_server_recv(v->s, 50, &peer, &msg, &len) != 0)
            continue;
        Psl__ClientInvoke *ci = psl__client_invoke__unpack(NULL, len, msg);
        free(msg);
        if (!ci)
            continue;
        char body[128];
        snprintf(body, sizeof body, "%s:%.*s", ci->function, (int)ci->body.len,
                 (const char *)ci->body.data);
        answer(v->s, peer, ci->req_id - 1, "stale"); /* a late answer to an earlier request */
        answer(v->s, peer, ci->req_id, body);
        psl__client_invoke__free_unpacked(ci, NULL);
    }
    return NULL;
}

static void test_invoke(void **state) {
    (void)state;
    char home[] = "/tmp/psl-test-client.XXXXXX";
    assert_non_null(mkdtemp(home));
    tee_opts to = {.home = home, .quiet = true};
    tee_enclave *t = NULL;
    assert_int_equal(tee_open(&to, &t), 0);
    tee_policy clients = {.any_client_key = true};
    net_auth a = {.tee = t, .peer = &clients, .name = "test-worker"};
    srv v = {0};
    assert_int_equal(net_server_open(NULL, "tcp://127.0.0.1:0", &a, &v.s), 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, &v);

    tee_policy self;
    tee_policy_for(t, false, &self);
    char why[400];
    cl_conn *c = NULL;
    assert_int_equal(cl_connect(NULL, net_server_endpoint(v.s), &self, NULL, &c, why, sizeof why),
                     0);
    uint8_t meas[32];
    tee_measurement(t, meas);
    assert_memory_equal(cl_peer_report(c)->measurement, meas, 32);
    for (int i = 0; i < 3; i++) {
        cl_result r;
        char in[16], want[32];
        snprintf(in, sizeof in, "x%d", i);
        snprintf(want, sizeof want, "fn:x%d", i);
        assert_int_equal(cl_invoke(c, "fn", in, strlen(in), 5000, &r), 0);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, strlen(want));
        assert_memory_equal(r.body, want, r.len);
        assert_string_equal(r.msg, "");
    }
    cl_close(c);

    /* Another measurement: refused during the handshake, with the reason. */
    tee_policy other;
    uint8_t m2[32];
    memset(m2, 0x5a, 32);
    tee_policy base = {.allow_sim = true, .any_measurement = true};
    assert_int_equal(cl_policy_make(&base, m2, &other, why, sizeof why), 0);
    c = NULL;
    assert_int_equal(cl_connect(NULL, net_server_endpoint(v.s), &other, NULL, &c, why, sizeof why),
                     ERR_AUTH);
    assert_null(c);
    assert_non_null(strstr(why, "not accepted by policy"));
    tee_policy_fini(&other);

    v.stop = 1;
    pthread_join(th, NULL);
    net_server_close(v.s);
    tee_policy_fini(&self);
    tee_close(t);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", home);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints_parse),
        cmocka_unit_test(test_policy_make),
        cmocka_unit_test(test_invoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
