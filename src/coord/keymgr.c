/* Key manager: sealed deployment secrets, released only to attested workers that pass the
 * deployment's policy. Invariant: plaintext secrets exist only in guarded memory and inside
 * frames of an attested channel; the sealed file is re-verified (tag and rollback counter) on
 * every request. */
#include "coord/keymgr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "platform/platform.h"
#include "proto/keymgr.pb-c.h"

struct km {
    tee_enclave *tee;
};

/* Sealed plaintext: version (8, LE) || capsule key (32) || signing root (32) || policy text. */
#define HDR_BYTES 72u

km *km_new(tee_enclave *t) {
    km *k = xcalloc(1, sizeof *k);
    k->tee = t;
    return k;
}

void km_free(km *k) {
    free(k);
}

static bool name_ok(const char *n) {
    size_t l = strlen(n);
    if (l == 0 || l > KM_NAME_MAX || n[0] == '.')
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void paths(km *k, const char *name, char *dir, size_t dn, char *file, size_t fn,
                  char *label, size_t ln, char *ctr, size_t cn) {
    snprintf(dir, dn, "%s/deployments", tee_home(k->tee));
    snprintf(file, fn, "%s/deployments/%s.sealed", tee_home(k->tee), name);
    snprintf(label, ln, "psl-deployment:%s", name);
    snprintf(ctr, cn, "deploy.%s", name);
}

int km_deployment_create(km *k, const char *name, const tee_policy *worker_policy, char *why,
                         size_t whylen) {
    char dir[4096], file[4200], label[128], ctr[128], tmp[4300];
    if (!name_ok(name)) {
        snprintf(why, whylen, "bad deployment name '%s' (use [A-Za-z0-9._-], up to %d chars)",
                 name, KM_NAME_MAX);
        return ERR_USAGE;
    }
    paths(k, name, dir, sizeof dir, file, sizeof file, label, sizeof label, ctr, sizeof ctr);
    if (access(file, F_OK) == 0) {
        snprintf(why, whylen, "deployment '%s' exists already (%s)", name, file);
        return ERR_INVALID;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    uint64_t version;
    int rc = tee_counter_increment(k->tee, ctr, &version);
    if (rc) {
        snprintf(why, whylen, "monotonic counter %s: %s", ctr, err_str(rc));
        return rc;
    }
    char *ptxt = tee_policy_to_text(worker_policy);
    size_t pl = strlen(ptxt), n = HDR_BYTES + pl;
    uint8_t *pt = cr_secure_alloc(n);
    for (int i = 0; i < 8; i++)
        pt[i] = (uint8_t)(version >> (8 * i));
    cr_random(pt + 8, 64); /* capsule key, signing root */
    memcpy(pt + HDR_BYTES, ptxt, pl);
    free(ptxt);
    uint8_t *blob = NULL;
    size_t bl = 0;
    rc = tee_seal(k->tee, label, pt, n, &blob, &bl);
    cr_secure_free(pt);
    if (rc) {
        snprintf(why, whylen, "sealing failed: %s", err_str(rc));
        return rc;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    rc = 0;
    if (fd < 0 || write(fd, blob, bl) != (ssize_t)bl || fsync(fd) != 0)
        rc = ERR_IO;
    if (fd >= 0)
        close(fd);
    if (!rc && rename(tmp, file) != 0)
        rc = ERR_IO;
    free(blob);
    if (rc)
        snprintf(why, whylen, "cannot write %s: %s", file, strerror(errno));
    return rc;
}

/* Load and check a deployment. @param[out] pt guarded memory: free with cr_secure_free. */
static int load(km *k, const char *name, uint8_t **pt, size_t *n, tee_policy *pol, char *why,
                size_t whylen) {
    char dir[4096], file[4200], label[128], ctr[128], pwhy[200];
    paths(k, name, dir, sizeof dir, file, sizeof file, label, sizeof label, ctr, sizeof ctr);
    uint8_t *blob;
    size_t bl;
    if (!name_ok(name) || plat_read_file(file, &blob, &bl) != 0) {
        snprintf(why, whylen, "no deployment named '%s'", name);
        return ERR_NOTFOUND;
    }
    int rc = tee_unseal(k->tee, label, blob, bl, pt, n);
    free(blob);
    if (rc || *n < HDR_BYTES) {
        if (!rc)
            cr_secure_free(*pt);
        *pt = NULL;
        *pt = NULL;
        snprintf(why, whylen,
                 "sealed state of deployment '%s' is damaged or was sealed by another enclave",
                 name);
        return ERR_CORRUPT;
    }
    uint64_t v = 0, cur = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | (*pt)[i];
    rc = tee_counter_read(k->tee, ctr, &cur);
    if (rc || v != cur) {
        cr_secure_free(*pt);
        *pt = NULL;
        snprintf(why, whylen,
                 "rollback of deployment '%s' detected (sealed version %" PRIu64
                 ", counter %" PRIu64 ")",
                 name, v, cur);
        return ERR_CORRUPT;
    }
    char *ptxt = xmalloc(*n - HDR_BYTES + 1);
    memcpy(ptxt, *pt + HDR_BYTES, *n - HDR_BYTES);
    ptxt[*n - HDR_BYTES] = 0;
    rc = tee_policy_parse(ptxt, pol, pwhy, sizeof pwhy);
    free(ptxt);
    if (rc) {
        cr_secure_free(*pt);
        *pt = NULL;
        snprintf(why, whylen, "deployment '%s' policy unreadable: %s", name, pwhy);
        return ERR_CORRUPT;
    }
    return 0;
}

static void reply(net_server *s, uint64_t peer, Psl__KeyReply *r) {
    size_t n = psl__key_reply__get_packed_size(r);
    uint8_t *b = cr_secure_alloc(n);
    psl__key_reply__pack(r, b);
    if (net_server_send(s, peer, b, n) != 0)
        fprintf(stderr, "psl keymgr: reply to peer %" PRIu64 " failed\n", peer);
    cr_secure_free(b);
}

int km_handle(km *k, net_server *s, uint64_t peer, const uint8_t *req, size_t len) {
    Psl__KeyReply r = PSL__KEY_REPLY__INIT;
    char why[400], pwhy[300];
    int rc = ERR_AUTH;
    uint8_t *pt = NULL;
    size_t n = 0;
    tee_policy pol = {0};
    bool have_pol = false;
    Psl__KeyRequest *q = psl__key_request__unpack(NULL, len, req);
    const net_peer_info *pi = net_server_peer(s, peer);
    if (!q || !pi) {
        snprintf(why, sizeof why, "malformed key request");
        rc = ERR_MALFORMED;
        goto refuse;
    }
    if (!pi->attested) {
        char h[65];
        cr_hex(h, pi->identity, 32);
        snprintf(why, sizeof why,
                 "peer is not an attested enclave (identity %s): deployment keys go only to "
                 "attested workers",
                 h);
        goto refuse;
    }
    rc = load(k, q->deployment, &pt, &n, &pol, why, sizeof why);
    if (rc)
        goto refuse;
    have_pol = true;
    if (tee_verify(&pi->report, &pol, NULL, NULL, plat_realtime_ns(), pwhy, sizeof pwhy) != 0) {
        snprintf(why, sizeof why, "worker report rejected by the policy of deployment '%s': %s",
                 q->deployment, pwhy);
        rc = ERR_AUTH;
        goto refuse;
    }
    if (!q->worker || !*q->worker || strlen(q->worker) > KM_NAME_MAX) {
        snprintf(why, sizeof why, "bad worker id");
        rc = ERR_USAGE;
        goto refuse;
    }
    {
        uint8_t *seed = cr_secure_alloc(32), *sk = cr_secure_alloc(64), pk[32];
        cr_kdf(seed, 32, pt + 40, "psl-worker-sign-v1", q->worker, strlen(q->worker));
        cr_sign_seed_keypair(pk, sk, seed);
        r.ok = true;
        r.capsule_key.data = pt + 8;
        r.capsule_key.len = 32;
        r.sign_seed.data = seed;
        r.sign_seed.len = 32;
        r.sign_pk.data = pk;
        r.sign_pk.len = 32;
        for (int i = 7; i >= 0; i--)
            r.version = (r.version << 8) | pt[i];
        reply(s, peer, &r);
        char mh[65];
        cr_hex(mh, pi->report.measurement, 32);
        fprintf(stderr, "psl keymgr: released deployment '%s' keys to worker '%s' (measurement %s)\n",
                q->deployment, q->worker, mh);
        cr_secure_free(seed);
        cr_secure_free(sk);
    }
    cr_secure_free(pt);
    tee_policy_fini(&pol);
    psl__key_request__free_unpacked(q, NULL);
    return 0;
refuse:
    fprintf(stderr, "psl keymgr: refused peer %" PRIu64 ": %s\n", peer, why);
    r.ok = false;
    r.reason = why;
    reply(s, peer, &r);
    if (pt)
        cr_secure_free(pt);
    if (have_pol)
        tee_policy_fini(&pol);
    if (q)
        psl__key_request__free_unpacked(q, NULL);
    return rc;
}

int km_fetch(net_chan *c, const char *name, const char *worker, km_secrets **out, char *why,
             size_t whylen) {
    *out = NULL;
    Psl__KeyRequest q = PSL__KEY_REQUEST__INIT;
    q.deployment = (char *)name;
    q.worker = (char *)worker;
    size_t n = psl__key_request__get_packed_size(&q);
    uint8_t *b = xmalloc(n);
    psl__key_request__pack(&q, b);
    int rc = net_chan_send(c, b, n);
    free(b);
    if (rc) {
        snprintf(why, whylen, "send failed: %s", net_chan_error(c));
        return rc;
    }
    uint8_t *m;
    size_t ml;
    rc = net_chan_recv(c, 10000, &m, &ml);
    if (rc) {
        snprintf(why, whylen, "no reply: %s", rc == -ETIMEDOUT ? "timed out" : net_chan_error(c));
        return rc;
    }
    Psl__KeyReply *r = psl__key_reply__unpack(NULL, ml, m);
    cr_memzero(m, ml);
    free(m);
    if (!r) {
        snprintf(why, whylen, "malformed reply");
        return ERR_MALFORMED;
    }
    if (!r->ok) {
        snprintf(why, whylen, "refused: %s", r->reason ? r->reason : "(no reason)");
        psl__key_reply__free_unpacked(r, NULL);
        return ERR_AUTH;
    }
    if (r->capsule_key.len != 32 || r->sign_seed.len != 32 || r->sign_pk.len != 32) {
        psl__key_reply__free_unpacked(r, NULL);
        snprintf(why, whylen, "malformed reply (key sizes)");
        return ERR_MALFORMED;
    }
    km_secrets *s = cr_secure_alloc(sizeof *s);
    memcpy(s->capsule_key, r->capsule_key.data, 32);
    memcpy(s->sign_seed, r->sign_seed.data, 32);
    memcpy(s->sign_pk, r->sign_pk.data, 32);
    s->version = r->version;
    cr_memzero(r->capsule_key.data, 32);
    cr_memzero(r->sign_seed.data, 32);
    psl__key_reply__free_unpacked(r, NULL);
    /* The seed must match the public key the coordinator stated. */
    uint8_t pk[32], sk[64];
    cr_sign_seed_keypair(pk, sk, s->sign_seed);
    cr_memzero(sk, sizeof sk);
    if (!cr_equal(pk, s->sign_pk, 32)) {
        km_secrets_free(s);
        snprintf(why, whylen, "inconsistent reply (signing seed does not match its public key)");
        return ERR_CORRUPT;
    }
    *out = s;
    return 0;
}

void km_secrets_free(km_secrets *s) {
    cr_secure_free(s);
}
