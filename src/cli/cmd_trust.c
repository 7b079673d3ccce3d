/* Trust-layer subcommands: attest, verify, policy, deployment (create, fetch) and keymgr.
 * Every command that opens the enclave says loudly when the backend is sim (tee_open). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "coord/keymgr.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "tee/tee.h"

typedef struct topts {
    const char *home, *backend, *config, *policy, *nonce, *out, *listen, *coordinator, *worker,
        *identity, *client_key;
    const char *code[16];
    int ncode;
    bool production;
    const char *pos[4];
    int npos;
} topts;

/* Parse the options shared by the trust commands. Returns 0 or EXIT_USAGE. */
static int parse(int argc, char **argv, topts *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--production") == 0) {
            o->production = true;
            continue;
        }
        if (strcmp(a, "--home") == 0)
            slot = &o->home;
        else if (strcmp(a, "--backend") == 0)
            slot = &o->backend;
        else if (strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--policy") == 0)
            slot = &o->policy;
        else if (strcmp(a, "--nonce") == 0)
            slot = &o->nonce;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0)
            slot = &o->out;
        else if (strcmp(a, "--listen") == 0)
            slot = &o->listen;
        else if (strcmp(a, "--coordinator") == 0)
            slot = &o->coordinator;
        else if (strcmp(a, "--worker") == 0)
            slot = &o->worker;
        else if (strcmp(a, "--identity") == 0)
            slot = &o->identity;
        else if (strcmp(a, "--client-key") == 0)
            slot = &o->client_key;
        else if (strcmp(a, "--code") == 0) {
            if (i + 1 >= argc || o->ncode == 16) {
                cli_err("--code needs a file (at most 16)");
                return EXIT_USAGE;
            }
            o->code[o->ncode++] = argv[++i];
            continue;
        } else if (a[0] == '-' && a[1]) {
            cli_err("%s: unknown option %s", argv[0], a);
            return EXIT_USAGE;
        } else {
            if (o->npos == 4) {
                cli_err("%s: too many arguments", argv[0]);
                return EXIT_USAGE;
            }
            o->pos[o->npos++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            cli_err("%s: %s needs a value", argv[0], a);
            return EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    return 0;
}

/* Open this node's enclave and measure its configuration and code. */
static int open_node(const topts *o, tee_enclave **t) {
    tee_opts to = {.backend = o->backend, .home = o->home};
    int rc = tee_open(&to, t);
    if (rc) {
        cli_err("cannot open the enclave (backend %s, home %s): %s",
                o->backend ? o->backend : "sim", tee_default_home(o->home), err_str(rc));
        return EXIT_IO;
    }
    const char *files[17];
    const char *labels[17];
    int n = 0;
    if (o->config) {
        files[n] = o->config;
        labels[n++] = "config";
    }
    for (int i = 0; i < o->ncode; i++) {
        files[n] = o->code[i];
        labels[n++] = "code";
    }
    for (int i = 0; i < n; i++) {
        uint8_t *d;
        size_t len;
        rc = plat_read_file(files[i], &d, &len);
        if (rc) {
            cli_err("cannot read %s: %s", files[i], err_str(rc));
            tee_close(*t);
            *t = NULL;
            return EXIT_IO;
        }
        tee_measure_extend(*t, labels[i], d, len);
        free(d);
    }
    return 0;
}

static int load_policy(const char *path, tee_policy *p) {
    char why[300];
    if (!path) {
        cli_err("--policy FILE is required");
        return EXIT_USAGE;
    }
    if (tee_policy_load(path, p, why, sizeof why) != 0) {
        cli_err("policy %s: %s", path, why);
        return EXIT_USAGE;
    }
    return 0;
}

static int write_text(const char *path, const char *text) {
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        cli_err("cannot write %s: %s", path, strerror(errno));
        return EXIT_IO;
    }
    fputs(text, f);
    if (path && fclose(f) != 0)
        return EXIT_IO;
    return 0;
}

/* ---- psl attest ---------------------------------------------------------------------------- */

void cmd_attest_help(FILE *out) {
    fprintf(out,
            "usage: psl attest [--home DIR] [--config FILE] [--code FILE]... [--nonce HEX32]\n"
            "                  [-o REPORT]\n"
            "Print this node's measurement (the psl binary, extended with --config and each\n"
            "--code file) and a fresh attestation report binding a new X25519 public key and the\n"
            "nonce (random when not given). With -o the report goes to a file.\n"
            "HOME (--home, else $PSL_HOME, else ./psl-data) holds the sim platform key.\n");
}

int cmd_attest(int argc, char **argv) {
    topts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (cr_init() != 0)
        return EXIT_IO;
    uint8_t nonce[32], pk[32], sk[32];
    if (o.nonce) {
        if (cr_unhex(nonce, 32, o.nonce, strlen(o.nonce)) != 0) {
            cli_err("--nonce must be 64 hex digits");
            return EXIT_USAGE;
        }
    } else {
        cr_random(nonce, 32);
    }
    tee_enclave *t;
    if ((rc = open_node(&o, &t)) != 0)
        return rc;
    cr_kx_keypair(pk, sk);
    cr_memzero(sk, sizeof sk);
    tee_report r;
    if (tee_report_create(t, pk, nonce, &r) != 0) {
        tee_close(t);
        cli_err("cannot create a report");
        return EXIT_IO;
    }
    char mh[65];
    cr_hex(mh, r.measurement, 32);
    char *txt = tee_report_to_text(&r);
    if (o.out) {
        printf("measurement: %s\n", mh);
        printf("backend: %s\n", r.backend);
    }
    rc = write_text(o.out, txt);
    free(txt);
    tee_close(t);
    return rc;
}

/* ---- psl verify ---------------------------------------------------------------------------- */

void cmd_verify_help(FILE *out) {
    fprintf(out, "usage: psl verify REPORT --policy FILE [--nonce HEX32]\n"
                 "Check an attestation report (the text `psl attest` prints) against a policy:\n"
                 "signature, backend (sim only with 'allow_sim: yes'), platform key, measurement,\n"
                 "age, and the nonce when given. Exit 0 when accepted, 1 when rejected.\n");
}

int cmd_verify(int argc, char **argv) {
    topts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (o.npos != 1) {
        cmd_verify_help(stderr);
        return EXIT_USAGE;
    }
    if (cr_init() != 0)
        return EXIT_IO;
    uint8_t nonce[32];
    if (o.nonce && cr_unhex(nonce, 32, o.nonce, strlen(o.nonce)) != 0) {
        cli_err("--nonce must be 64 hex digits");
        return EXIT_USAGE;
    }
    tee_policy p;
    if ((rc = load_policy(o.policy, &p)) != 0)
        return rc;
    uint8_t *d;
    size_t len;
    if (plat_read_file(o.pos[0], &d, &len) != 0) {
        cli_err("cannot read report %s", o.pos[0]);
        tee_policy_fini(&p);
        return EXIT_IO;
    }
    char *text = xmalloc(len + 1), why[300];
    memcpy(text, d, len);
    text[len] = 0;
    free(d);
    tee_report r;
    rc = tee_report_from_text(text, &r, why, sizeof why);
    free(text);
    if (rc) {
        printf("REJECTED: malformed report: %s\n", why);
        tee_policy_fini(&p);
        return EXIT_FAILED;
    }
    rc = tee_verify(&r, &p, NULL, o.nonce ? nonce : NULL, plat_realtime_ns(), why, sizeof why);
    tee_policy_fini(&p);
    if (rc) {
        printf("REJECTED: %s\n", why);
        return EXIT_FAILED;
    }
    char mh[65];
    cr_hex(mh, r.measurement, 32);
    printf("OK: report accepted (backend %s, measurement %s)\n", r.backend, mh);
    if (strcmp(r.backend, "sim") == 0)
        printf("note: backend sim gives no protection against root on the attested host\n");
    return EXIT_OK;
}

/* ---- psl policy ---------------------------------------------------------------------------- */

void cmd_policy_help(FILE *out) {
    fprintf(out, "usage: psl policy [--production] [--home DIR] [--config FILE] [--code FILE]...\n"
                 "                  [--client-key HEX32] [-o FILE]\n"
                 "Print a policy accepting this node's measurement and platform key. Development\n"
                 "policies say 'allow_sim: yes'; --production says 'allow_sim: no'.\n");
}

int cmd_policy(int argc, char **argv) {
    topts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    tee_enclave *t;
    if ((rc = open_node(&o, &t)) != 0)
        return rc;
    tee_policy p;
    tee_policy_for(t, o.production, &p);
    if (o.client_key) {
        uint8_t k[32];
        if (cr_unhex(k, 32, o.client_key, strlen(o.client_key)) != 0) {
            cli_err("--client-key must be 64 hex digits");
            tee_policy_fini(&p);
            tee_close(t);
            return EXIT_USAGE;
        }
        tee_policy_add_client(&p, k);
    }
    char *txt = tee_policy_to_text(&p);
    rc = write_text(o.out, txt);
    free(txt);
    tee_policy_fini(&p);
    tee_close(t);
    return rc;
}

/* ---- psl identity -------------------------------------------------------------------------- */

void cmd_identity_help(FILE *out) {
    fprintf(out, "usage: psl identity FILE\n"
                 "Create FILE (a new random Ed25519 seed, mode 0600) unless it exists, and print\n"
                 "its public key as a line 'client_key: HEX'. Workers started with --client-keys\n"
                 "LIST (psl up, psl worker), LIST a file of such lines, serve only the clients\n"
                 "listed; a client connects with --identity FILE (psl invoke --secure, psl bench\n"
                 "ycsb).\n");
}

int cmd_identity(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        cmd_identity_help(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[1];
    if (cr_init() != 0) {
        cli_err("identity: the crypto library failed to start");
        return EXIT_IO;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        uint8_t seed[CR_SIGN_SEED];
        cr_random(seed, sizeof seed);
        bool ok = write(fd, seed, sizeof seed) == (ssize_t)sizeof seed && fsync(fd) == 0;
        cr_memzero(seed, sizeof seed);
        if (close(fd) != 0 || !ok) {
            cli_err("identity: cannot write %s: %s", path, strerror(errno));
            unlink(path);
            return EXIT_IO;
        }
        fprintf(stderr, "psl identity: created %s (keep it secret)\n", path);
    } else if (errno != EEXIST) {
        cli_err("identity: cannot create %s: %s", path, strerror(errno));
        return EXIT_IO;
    }
    uint8_t *sk = cr_secure_alloc(CR_SIGN_SK), pk[CR_SIGN_PK];
    int rc = cli_identity_load(path, sk, pk);
    cr_secure_free(sk);
    if (rc)
        return rc;
    char hex[2 * CR_SIGN_PK + 1];
    cr_hex(hex, pk, CR_SIGN_PK);
    printf("client_key: %s\n", hex);
    return EXIT_OK;
}

/* ---- psl deployment ------------------------------------------------------------------------ */

void cmd_deployment_help(FILE *out) {
    fprintf(
        out,
        "usage: psl deployment create NAME --policy WORKER_POLICY [--home DIR] [--config F]\n"
        "       psl deployment fetch NAME --coordinator ENDPOINT --policy COORD_POLICY\n"
        "                            [--worker ID] [--home DIR] [--config F] [--identity SEED]\n"
        "create: make the deployment's secrets (capsule key, worker signing root) inside this\n"
        "  node's enclave and seal them, with the worker policy, under HOME/deployments.\n"
        "  Run it with the coordinator's home and configuration: only an enclave with the\n"
        "  same measurement on the same platform can unseal them.\n"
        "fetch: act as a worker: connect over the attested channel (the coordinator must pass\n"
        "  COORD_POLICY) and ask for the keys; prints their fingerprints, never the keys.\n"
        "  --identity SEED authenticates with an Ed25519 identity instead of a report.\n");
}

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

static int deployment_fetch(const topts *o) {
    tee_policy cp;
    int rc = load_policy(o->policy, &cp);
    if (rc)
        return rc;
    if (!o->coordinator) {
        cli_err("--coordinator ENDPOINT is required");
        tee_policy_fini(&cp);
        return EXIT_USAGE;
    }
    tee_enclave *t = NULL;
    uint8_t *idsk = NULL;
    net_auth a = {.peer = &cp, .name = "deployment"};
    if (o->identity) {
        idsk = cr_secure_alloc(CR_SIGN_SK);
        if (cli_identity_load(o->identity, idsk, NULL) != 0) {
            cr_secure_free(idsk);
            tee_policy_fini(&cp);
            return EXIT_USAGE;
        }
        a.id_sk = idsk;
    } else {
        if ((rc = open_node(o, &t)) != 0) {
            tee_policy_fini(&cp);
            return rc;
        }
        a.tee = t;
    }
    char why[400];
    net_chan *c = NULL;
    km_secrets *s = NULL;
    rc = net_chan_connect(NULL, o->coordinator, &a, &c, why, sizeof why);
    if (rc) {
        printf("REFUSED: channel: %s\n", why);
        rc = EXIT_FAILED;
        goto out;
    }
    rc = km_fetch(c, o->pos[1], o->worker ? o->worker : "worker-0", &s, why, sizeof why);
    if (rc) {
        printf("REFUSED: %s\n", why);
        rc = EXIT_FAILED;
        goto out;
    }
    uint8_t fp[16];
    char h[65];
    cr_hash_ex(fp, 16, NULL, 0, s->capsule_key, 32);
    cr_hex(h, fp, 16);
    printf("OK: deployment '%s' keys received (version %llu)\n", o->pos[1],
           (unsigned long long)s->version);
    printf("capsule_key_fingerprint: %s\n", h);
    cr_hex(h, s->sign_pk, 32);
    printf("worker_sign_pk: %s\n", h);
    rc = EXIT_OK;
out:
    km_secrets_free(s);
    net_chan_close(c);
    cr_secure_free(idsk);
    tee_close(t);
    tee_policy_fini(&cp);
    return rc;
}

int cmd_deployment(int argc, char **argv) {
    topts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (o.npos != 2) {
        cmd_deployment_help(stderr);
        return EXIT_USAGE;
    }
    if (cr_init() != 0)
        return EXIT_IO;
    if (strcmp(o.pos[0], "fetch") == 0)
        return deployment_fetch(&o);
    if (strcmp(o.pos[0], "create") != 0) {
        cmd_deployment_help(stderr);
        return EXIT_USAGE;
    }
    tee_policy wp;
    if ((rc = load_policy(o.policy, &wp)) != 0)
        return rc;
    tee_enclave *t;
    if ((rc = open_node(&o, &t)) != 0) {
        tee_policy_fini(&wp);
        return rc;
    }
    km *k = km_new(t);
    char why[400];
    rc = km_deployment_create(k, o.pos[1], &wp, why, sizeof why);
    if (rc) {
        cli_err("deployment create: %s", why);
        rc = rc == ERR_USAGE ? EXIT_USAGE : EXIT_FAILED;
    } else {
        printf("created deployment '%s' (sealed in %s/deployments/%s.sealed)\n", o.pos[1],
               tee_home(t), o.pos[1]);
    }
    km_free(k);
    tee_close(t);
    tee_policy_fini(&wp);
    return rc;
}

/* ---- psl keymgr ---------------------------------------------------------------------------- */

void cmd_keymgr_help(FILE *out) {
    fprintf(out,
            "usage: psl keymgr --listen ENDPOINT [--home DIR] [--config FILE]\n"
            "Serve deployment keys over the attested channel (the coordinator's key manager).\n"
            "Any peer may open a channel; keys go only to attested workers whose report passes\n"
            "the deployment's sealed policy, and every refusal names its reason.\n");
}

int cmd_keymgr(int argc, char **argv) {
    topts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (!o.listen) {
        cmd_keymgr_help(stderr);
        return EXIT_USAGE;
    }
    if (tee_harden_process() != 0)
        cli_err("warning: process hardening (prctl) failed");
    tee_enclave *t;
    if ((rc = open_node(&o, &t)) != 0)
        return rc;
    /* The channel admits everyone; the per-deployment policy decides (with a named reason). */
    tee_policy open_pol = {.allow_sim = true, .any_measurement = true, .any_client_key = true};
    net_auth a = {.tee = t, .peer = &open_pol, .name = "keymgr"};
    net_server *s;
    if (net_server_open(NULL, o.listen, &a, &s) != 0) {
        tee_close(t);
        return EXIT_IO;
    }
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    km *k = km_new(t);
    fprintf(stderr, "psl keymgr: listening on %s\n", net_server_endpoint(s));
    while (!g_stop) {
        uint64_t peer;
        uint8_t *m;
        size_t n;
        rc = net_server_recv(s, 200, &peer, &m, &n);
        if (rc == -ETIMEDOUT || rc == -EINTR)
            continue;
        if (rc) {
            cli_err("keymgr: %s", err_str(rc));
            break;
        }
        (void)km_handle(k, s, peer, m, n);
        free(m);
    }
    km_free(k);
    net_server_close(s);
    tee_close(t);
    return EXIT_OK;
}
