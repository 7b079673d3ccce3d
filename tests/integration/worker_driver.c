/* Drives a real `psl worker` process as its coordinator would, over the attested channel:
 * deploy, invocations (state kept in the worker's key-value store, instances reset between
 * runs), a lock acquire/release round trip, key-value admin, errors for unknown functions and a
 * trapping guest. Prints one line per check and "N passed, N failed".
 * usage: worker_driver --listen EP --home DIR --policy FILE --examples DIR
 *        worker_driver policy --home DIR      (print a policy accepting this driver) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "proto/cluster.pb-c.h"
#include "tee/tee.h"

static int passed, failed;
static net_server *g_srv;
static uint64_t g_peer;
static char g_released[64]; /* name of the last lock released while waiting for something else */

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok:  " : "FAIL:", what);
    if (ok)
        passed++;
    else
        failed++;
}

static const char *arg(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static void send_msg(const Psl__ClusterMsg *m) {
    size_t n = psl__cluster_msg__get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    psl__cluster_msg__pack(m, buf);
    if (net_server_send(g_srv, g_peer, buf, n) != 0)
        fprintf(stderr, "driver: send failed\n");
    free(buf);
}

/* Next message of the wanted kind (answering lock requests on the way); NULL on timeout. */
static Psl__ClusterMsg *expect(int kind, int timeout_ms) {
    uint64_t end = plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (plat_now_ns() < end) {
        uint64_t peer;
        uint8_t *msg;
        size_t len;
        int rc = net_server_recv(g_srv, 100, &peer, &msg, &len);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc)
            return NULL;
        Psl__ClusterMsg *m = psl__cluster_msg__unpack(NULL, len, msg);
        free(msg);
        if (!m)
            continue;
        if (m->m_case == PSL__CLUSTER_MSG__M_HELLO)
            g_peer = peer;
        if ((int)m->m_case == kind)
            return m;
        if (m->m_case == PSL__CLUSTER_MSG__M_LOCK_RELEASE)
            snprintf(g_released, sizeof g_released, "%s", m->lock_release->name);
        if (m->m_case == PSL__CLUSTER_MSG__M_LOCK_ACQUIRE) {
            printf("      (lock %s requested: granted)\n", m->lock_acquire->name);
            Psl__LockGranted g = PSL__LOCK_GRANTED__INIT;
            g.lock_req = m->lock_acquire->lock_req;
            Psl__ClusterMsg r = PSL__CLUSTER_MSG__INIT;
            r.m_case = PSL__CLUSTER_MSG__M_LOCK_GRANTED;
            r.lock_granted = &g;
            send_msg(&r);
        }
        psl__cluster_msg__free_unpacked(m, NULL);
    }
    return NULL;
}

static void deploy(const char *name, const char *path, uint64_t req) {
    uint8_t *code;
    size_t len;
    if (plat_read_file(path, &code, &len) != 0) {
        check(0, path);
        return;
    }
    Psl__Deploy d = PSL__DEPLOY__INIT;
    d.req_id = req;
    d.name = (char *)name;
    d.code.data = code;
    d.code.len = len;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_DEPLOY;
    m.deploy = &d;
    send_msg(&m);
    free(code);
}

static Psl__InvokeResult *invoke(const char *fn, const char *body, uint64_t req,
                                 Psl__ClusterMsg **hold) {
    Psl__Invoke iv = PSL__INVOKE__INIT;
    iv.req_id = req;
    iv.function = (char *)fn;
    iv.body.data = (uint8_t *)body;
    iv.body.len = strlen(body);
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_INVOKE;
    m.invoke = &iv;
    send_msg(&m);
    *hold = expect(PSL__CLUSTER_MSG__M_INVOKE_RESULT, 10000);
    return *hold ? (*hold)->invoke_result : NULL;
}

static int body_is(const Psl__InvokeResult *r, const char *want) {
    return r && r->status == 0 && r->body.len == strlen(want) &&
           memcmp(r->body.data, want, r->body.len) == 0;
}

int main(int argc, char **argv) {
    const char *listen = arg(argc, argv, "--listen"), *home = arg(argc, argv, "--home"),
               *policy = arg(argc, argv, "--policy"), *ex = arg(argc, argv, "--examples");
    if (argc > 1 && !strcmp(argv[1], "policy"))
        listen = policy = ex = "-";
    if (!listen || !home || !policy || !ex || cr_init() != 0) {
        fprintf(stderr, "usage: worker_driver --listen EP --home DIR --policy FILE --examples D\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    tee_opts to = {.home = home, .quiet = true};
    if (!strcmp(argv[1], "policy")) { /* the policy a worker needs to accept this driver */
        tee_enclave *t;
        if (tee_open(&to, &t) != 0)
            return 2;
        tee_policy p;
        tee_policy_for(t, false, &p);
        char *txt = tee_policy_to_text(&p);
        fputs(txt, stdout);
        free(txt);
        tee_policy_fini(&p);
        tee_close(t);
        return 0;
    }
    tee_enclave *t;
    tee_policy pol;
    char why[256];
    if (tee_open(&to, &t) != 0 || tee_policy_load(policy, &pol, why, sizeof why) != 0) {
        fprintf(stderr, "driver: enclave or policy: %s\n", why);
        return 2;
    }
    net_auth a = {.tee = t, .peer = &pol, .name = "driver"};
    if (net_server_open(NULL, listen, &a, &g_srv) != 0) {
        fprintf(stderr, "driver: cannot listen on %s\n", listen);
        return 2;
    }
    Psl__ClusterMsg *m = expect(PSL__CLUSTER_MSG__M_HELLO, 20000);
    check(m && m->hello->worker_id == 7, "worker attested and said hello with its id");
    if (!m)
        goto done;
    psl__cluster_msg__free_unpacked(m, NULL);
    m = expect(PSL__CLUSTER_MSG__M_HEARTBEAT, 3000);
    check(m != NULL, "heartbeat arrives");
    if (m)
        psl__cluster_msg__free_unpacked(m, NULL);

    char path[1024];
    snprintf(path, sizeof path, "%s/counter.wasm", ex);
    deploy("counter", path, 1);
    m = expect(PSL__CLUSTER_MSG__M_DEPLOY_RESULT, 10000);
    check(m && m->deploy_result->req_id == 1 && m->deploy_result->status == 0, "deploy counter");
    if (m)
        psl__cluster_msg__free_unpacked(m, NULL);
    const uint8_t junk[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 9};
    Psl__Deploy d = PSL__DEPLOY__INIT;
    d.req_id = 2;
    d.name = "junk";
    d.code.data = (uint8_t *)junk;
    d.code.len = sizeof junk;
    Psl__ClusterMsg dm = PSL__CLUSTER_MSG__INIT;
    dm.m_case = PSL__CLUSTER_MSG__M_DEPLOY;
    dm.deploy = &d;
    send_msg(&dm);
    m = expect(PSL__CLUSTER_MSG__M_DEPLOY_RESULT, 10000);
    check(m && m->deploy_result->status == ERR_MALFORMED && strlen(m->deploy_result->msg) > 0,
          "a malformed module is refused with a reason");
    if (m) {
        printf("      (%s)\n", m->deploy_result->msg);
        psl__cluster_msg__free_unpacked(m, NULL);
    }

    for (int i = 1; i <= 3; i++) {
        char want[64], name[64];
        snprintf(want, sizeof want, "hits=%d (instance run 1)\n", i);
        Psl__ClusterMsg *h;
        Psl__InvokeResult *r = invoke("counter", "hits", 100 + (uint64_t)i, &h);
        snprintf(name, sizeof name, "invocation %d keeps state, fresh instance", i);
        check(body_is(r, want) && r->req_id == 100 + (uint64_t)i, name);
        if (h)
            psl__cluster_msg__free_unpacked(h, NULL);
    }
    Psl__ClusterMsg *h;
    Psl__InvokeResult *r = invoke("nope", "", 200, &h);
    check(r && r->status == ERR_NOTFOUND, "unknown function: not found");
    if (h)
        psl__cluster_msg__free_unpacked(h, NULL);

    snprintf(path, sizeof path, "%s/bank.wasm", ex);
    deploy("bank", path, 3);
    m = expect(PSL__CLUSTER_MSG__M_DEPLOY_RESULT, 10000);
    if (m)
        psl__cluster_msg__free_unpacked(m, NULL);
    r = invoke("bank", "open alice 10", 300, &h);
    check(body_is(r, "opened alice\n"), "a function taking a lock through the coordinator");
    if (h)
        psl__cluster_msg__free_unpacked(h, NULL);
    /* The release comes before the result (the guest unlocks, then exits). */
    check(!strcmp(g_released, "bank"), "the lock was released");

    Psl__KvOp op = PSL__KV_OP__INIT;
    op.req_id = 400;
    op.op = 0;
    op.key.data = (uint8_t *)"counter/hits";
    op.key.len = 12;
    Psl__ClusterMsg km = PSL__CLUSTER_MSG__INIT;
    km.m_case = PSL__CLUSTER_MSG__M_KV_OP;
    km.kv_op = &op;
    send_msg(&km);
    m = expect(PSL__CLUSTER_MSG__M_KV_RESULT, 5000);
    check(m && m->kv_result->status == 0 && m->kv_result->value.len == 1 &&
              m->kv_result->value.data[0] == '3',
          "kv admin get reads the function's state");
    if (m)
        psl__cluster_msg__free_unpacked(m, NULL);
done:
    net_server_close(g_srv);
    tee_policy_fini(&pol);
    tee_close(t);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
