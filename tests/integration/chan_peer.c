/* Test peer for the secure channel: an echo server and a client, each a real process with its
 * own `sim` enclave, so the integration tests can put a man in the middle (chan_mitm) and
 * check what each side detects.
 *   chan_peer policy  --home DIR [--config FILE] [--production]   print a policy for this peer
 *   chan_peer serve   --listen EP --home DIR --policy FILE [--config FILE]
 *   chan_peer connect --connect EP --home DIR --policy FILE [--config FILE] [--identity]
 *                     [--count N] [--size BYTES]
 * The client sends N messages pipelined, then checks the N echoes; it prints "ok N" and exits 0,
 * or prints the reason and exits 1. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "tee/tee.h"

static volatile sig_atomic_t g_stop;
static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

/* The last occurrence wins, so a test can override an earlier option. */
static const char *arg(int argc, char **argv, const char *name) {
    const char *v = NULL;
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            v = argv[i + 1];
    return v;
}
static int flag(int argc, char **argv, const char *name) {
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

static tee_enclave *open_tee(int argc, char **argv) {
    tee_opts o = {.home = arg(argc, argv, "--home"), .quiet = true};
    tee_enclave *t = NULL;
    if (tee_open(&o, &t) != 0)
        exit(2);
    const char *cfg = arg(argc, argv, "--config");
    if (cfg) {
        uint8_t *d;
        size_t n;
        if (plat_read_file(cfg, &d, &n) != 0) {
            fprintf(stderr, "cannot read %s\n", cfg);
            exit(2);
        }
        tee_measure_extend(t, "config", d, n);
        free(d);
    }
    return t;
}

static void load_policy(int argc, char **argv, tee_policy *p) {
    char why[256];
    const char *path = arg(argc, argv, "--policy");
    if (!path || tee_policy_load(path, p, why, sizeof why) != 0) {
        fprintf(stderr, "chan_peer: policy: %s\n", path ? why : "--policy is required");
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || cr_init() != 0)
        return 2;
    const char *cmd = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(cmd, "policy") == 0) {
        tee_enclave *t = open_tee(argc, argv);
        tee_policy p;
        tee_policy_for(t, flag(argc, argv, "--production"), &p);
        const char *id = arg(argc, argv, "--client-key-of");
        if (id) { /* accept the identity derived from this seed file too */
            uint8_t *d;
            size_t n;
            uint8_t pk[32], sk[64];
            if (plat_read_file(id, &d, &n) != 0 || n != 32)
                return 2;
            cr_sign_seed_keypair(pk, sk, d);
            free(d);
            tee_policy_add_client(&p, pk);
        }
        char *txt = tee_policy_to_text(&p);
        fputs(txt, stdout);
        free(txt);
        tee_policy_fini(&p);
        tee_close(t);
        return 0;
    }
    tee_policy pol;
    load_policy(argc, argv, &pol);
    tee_enclave *t = open_tee(argc, argv);
    net_auth a = {.tee = t, .peer = &pol, .name = cmd};
    const char *sz = arg(argc, argv, "--max");
    if (sz)
        a.max_msg = strtoul(sz, NULL, 10);
    uint8_t idsk[64];
    const char *idf = arg(argc, argv, "--identity");
    if (idf) { /* authenticate with an Ed25519 identity (32-byte seed file) instead */
        uint8_t *d, pk[32];
        size_t n;
        if (plat_read_file(idf, &d, &n) != 0 || n != 32)
            return 2;
        cr_sign_seed_keypair(pk, idsk, d);
        free(d);
        a.tee = NULL;
        a.id_sk = idsk;
    }
    if (strcmp(cmd, "serve") == 0) {
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        net_server *s;
        const char *ep = arg(argc, argv, "--listen");
        if (!ep || net_server_open(NULL, ep, &a, &s) != 0)
            return 2;
        printf("listening on %s\n", net_server_endpoint(s));
        while (!g_stop) {
            uint64_t peer;
            uint8_t *m;
            size_t n;
            int rc = net_server_recv(s, 200, &peer, &m, &n);
            if (rc == -ETIMEDOUT || rc == -EINTR)
                continue;
            if (rc) {
                fprintf(stderr, "serve: %s\n", err_str(rc));
                break;
            }
            if (net_server_send(s, peer, m, n) != 0)
                fprintf(stderr, "serve: reply to %llu failed\n", (unsigned long long)peer);
            free(m);
        }
        printf("rejections: %llu\n", (unsigned long long)net_server_rejections(s));
        net_server_close(s);
    } else if (strcmp(cmd, "connect") == 0) {
        const char *ep = arg(argc, argv, "--connect");
        const char *cs = arg(argc, argv, "--count"), *ss = arg(argc, argv, "--size");
        int count = cs ? atoi(cs) : 4;
        size_t size = ss ? strtoul(ss, NULL, 10) : 100;
        char why[400];
        net_chan *c;
        int rc = net_chan_connect(NULL, ep, &a, &c, why, sizeof why);
        if (rc) {
            printf("connect failed: %s\n", why);
            tee_policy_fini(&pol);
            tee_close(t);
            return 1;
        }
        uint8_t *buf = xmalloc(size);
        int status = 0;
        for (int i = 0; i < count && !status; i++) {
            memset(buf, 'a' + i % 26, size);
            if (net_chan_send(c, buf, size) != 0) {
                printf("send failed: %s\n", net_chan_error(c));
                status = 1;
            }
        }
        for (int i = 0; i < count && !status; i++) {
            uint8_t *m;
            size_t n;
            rc = net_chan_recv(c, 5000, &m, &n);
            if (rc) {
                printf("receive failed: %s\n",
                       rc == -ETIMEDOUT ? "timed out" : net_chan_error(c));
                status = 1;
                break;
            }
            memset(buf, 'a' + i % 26, size);
            if (n != size || memcmp(m, buf, size) != 0) {
                printf("echo %d differs\n", i);
                status = 1;
            }
            free(m);
        }
        if (!status)
            printf("ok %d (%s, peer %s)\n", count, cr_aead_name(net_chan_peer(c)->aead),
                   net_chan_peer(c)->attested ? "attested" : "identity");
        free(buf);
        net_chan_close(c);
        tee_policy_fini(&pol);
        tee_close(t);
        return status;
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    tee_policy_fini(&pol);
    tee_close(t);
    return 0;
}
