/* Backend-independent parts of the enclave layer: measurement chaining, the report encoding
 * (binary and text), policies and verification, sealing and monotonic counters on top of the
 * backend's keys. Invariant: tee_verify checks the signature before it looks at any field. */
#include "tee/tee_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "platform/platform.h"

static void say(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t n, const char *fmt, ...) {
    if (!why || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

const char *tee_default_home(const char *explicit_home) {
    if (explicit_home && *explicit_home)
        return explicit_home;
    const char *e = getenv("PSL_HOME");
    if (e && *e)
        return e;
    return "./psl-data";
}

/* ---- open / measurement -------------------------------------------------------------------- */

static int measure_file(const char *path, uint8_t out[CR_HASH_BYTES]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    cr_hash_state st;
    cr_hash_init(&st, CR_HASH_BYTES);
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        cr_hash_update(&st, buf, (size_t)r);
    }
    close(fd);
    uint8_t h[CR_HASH_BYTES];
    cr_hash_final(&st, h);
    /* m0 = H("psl-measure-v1" || H(binary)) */
    cr_hash_init(&st, CR_HASH_BYTES);
    cr_hash_update(&st, "psl-measure-v1", 14);
    cr_hash_update(&st, h, sizeof h);
    cr_hash_final(&st, out);
    return 0;
}

int tee_open(const tee_opts *o, tee_enclave **out) {
    tee_opts d = {0};
    if (!o)
        o = &d;
    *out = NULL;
    int rc = cr_init();
    if (rc)
        return rc;
    const char *bname = o->backend ? o->backend : "sim";
    const tee_backend_ops *ops = NULL;
    if (strcmp(bname, "sim") == 0)
        ops = &tee__sim_ops;
    if (!ops) {
        fprintf(stderr, "psl: unknown TEE backend '%s' (available: sim)\n", bname);
        return ERR_USAGE;
    }
    tee_enclave *t = xcalloc(1, sizeof *t);
    t->ops = ops;
    t->home = xstrdup(tee_default_home(o->home));
    const char *bin = o->binary ? o->binary : "/proc/self/exe";
    rc = measure_file(bin, t->meas);
    if (rc) {
        fprintf(stderr, "psl: cannot measure %s: %s\n", bin, err_str(rc));
        goto fail;
    }
    rc = ops->open(t);
    if (rc)
        goto fail;
    if (strcmp(bname, "sim") == 0 && !o->quiet)
        fprintf(stderr,
                "psl: WARNING: TEE backend 'sim' is a hardened process, not an enclave: it does "
                "NOT protect against root on this host (root can read its memory and its "
                "platform key). Reports say 'backend: sim'.\n");
    *out = t;
    return 0;
fail:
    tee_close(t);
    return rc;
}

void tee_close(tee_enclave *t) {
    if (!t)
        return;
    if (t->backend)
        t->ops->close(t);
    free(t->home);
    free(t);
}

const char *tee_backend(const tee_enclave *t) {
    return t->ops->name;
}

void tee_platform_key(const tee_enclave *t, uint8_t out[TEE_KEY_BYTES]) {
    t->ops->platform_key(t, out);
}

const char *tee_home(const tee_enclave *t) {
    return t->home;
}

void tee_measure_extend(tee_enclave *t, const char *label, const void *data, size_t len) {
    uint8_t h[CR_HASH_BYTES];
    cr_hash(h, data, len);
    size_t ll = strlen(label);
    uint8_t l8[2] = {(uint8_t)(ll >> 8), (uint8_t)ll};
    ASSERT(ll < 65536);
    cr_hash_state st;
    cr_hash_init(&st, CR_HASH_BYTES);
    cr_hash_update(&st, "psl-extend-v1", 13);
    cr_hash_update(&st, t->meas, TEE_MEAS_BYTES);
    cr_hash_update(&st, l8, 2);
    cr_hash_update(&st, label, ll);
    cr_hash_update(&st, h, sizeof h);
    cr_hash_final(&st, t->meas);
}

void tee_measurement(const tee_enclave *t, uint8_t out[TEE_MEAS_BYTES]) {
    memcpy(out, t->meas, TEE_MEAS_BYTES);
}

/* ---- reports ------------------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Layout: "PSLR" version backend[16] measurement pubkey nonce time platform_key | sig */
void tee_report_encode(const tee_report *r, uint8_t out[TEE_REPORT_BYTES]) {
    uint8_t *p = out;
    memcpy(p, "PSLR", 4);
    p += 4;
    put32(p, r->version);
    p += 4;
    memcpy(p, r->backend, TEE_BACKEND_MAX);
    p += TEE_BACKEND_MAX;
    memcpy(p, r->measurement, 32);
    p += 32;
    memcpy(p, r->pubkey, 32);
    p += 32;
    memcpy(p, r->nonce, 32);
    p += 32;
    put64(p, r->time_ns);
    p += 8;
    memcpy(p, r->platform_key, 32);
    p += 32;
    ASSERT(p - out == TEE_REPORT_SIGNED_BYTES);
    memcpy(p, r->sig, 64);
}

int tee_report_decode(const uint8_t *in, size_t len, tee_report *r) {
    if (len != TEE_REPORT_BYTES || memcmp(in, "PSLR", 4) != 0)
        return ERR_MALFORMED;
    const uint8_t *p = in + 4;
    memset(r, 0, sizeof *r);
    r->version = get32(p);
    p += 4;
    memcpy(r->backend, p, TEE_BACKEND_MAX);
    p += TEE_BACKEND_MAX;
    memcpy(r->measurement, p, 32);
    p += 32;
    memcpy(r->pubkey, p, 32);
    p += 32;
    memcpy(r->nonce, p, 32);
    p += 32;
    r->time_ns = get64(p);
    p += 8;
    memcpy(r->platform_key, p, 32);
    p += 32;
    memcpy(r->sig, p, 64);
    if (r->version != TEE_REPORT_VERSION)
        return ERR_MALFORMED;
    /* backend: printable name, then NUL padding only */
    size_t n = strnlen(r->backend, TEE_BACKEND_MAX);
    if (n == 0 || n == TEE_BACKEND_MAX)
        return ERR_MALFORMED;
    for (size_t i = 0; i < n; i++)
        if (r->backend[i] < 'a' || r->backend[i] > 'z')
            if (r->backend[i] < '0' || r->backend[i] > '9')
                if (r->backend[i] != '-')
                    return ERR_MALFORMED;
    for (size_t i = n; i < TEE_BACKEND_MAX; i++)
        if (r->backend[i])
            return ERR_MALFORMED;
    return 0;
}

int tee_report_create(tee_enclave *t, const uint8_t pubkey[TEE_KEY_BYTES],
                      const uint8_t nonce[TEE_NONCE_BYTES], tee_report *out) {
    memset(out, 0, sizeof *out);
    out->version = TEE_REPORT_VERSION;
    snprintf(out->backend, TEE_BACKEND_MAX, "%s", t->ops->name);
    memcpy(out->measurement, t->meas, TEE_MEAS_BYTES);
    memcpy(out->pubkey, pubkey, TEE_KEY_BYTES);
    memcpy(out->nonce, nonce, TEE_NONCE_BYTES);
    out->time_ns = plat_realtime_ns();
    return t->ops->sign(t, out);
}

static void hexf(FILE *f, const char *key, const uint8_t *b, size_t n) {
    char h[129];
    cr_hex(h, b, n);
    fprintf(f, "%s: %s\n", key, h);
}

char *tee_report_to_text(const tee_report *r) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    fprintf(f, "# psl attestation report\n");
    if (strcmp(r->backend, "sim") == 0)
        fprintf(f, "# backend sim: a hardened process, NOT protected against root on its host\n");
    fprintf(f, "version: %" PRIu32 "\n", r->version);
    fprintf(f, "backend: %s\n", r->backend);
    hexf(f, "measurement", r->measurement, 32);
    hexf(f, "pubkey", r->pubkey, 32);
    hexf(f, "nonce", r->nonce, 32);
    fprintf(f, "time: %" PRIu64 "\n", r->time_ns);
    hexf(f, "platform_key", r->platform_key, 32);
    hexf(f, "signature", r->sig, 64);
    fclose(f);
    return buf;
}

/* Iterate "key: value" lines; returns 1 with key/value (NUL terminated in a copy), 0 at end. */
typedef struct kv_iter {
    const char *p;
    int line;
    char key[32];
    char val[256];
} kv_iter;

static int kv_next(kv_iter *it, char *why, size_t n) {
    while (*it->p) {
        const char *e = strchr(it->p, '\n');
        size_t ll = e ? (size_t)(e - it->p) : strlen(it->p);
        const char *l = it->p;
        it->p = e ? e + 1 : l + ll;
        it->line++;
        while (ll && (l[ll - 1] == '\r' || l[ll - 1] == ' ' || l[ll - 1] == '\t'))
            ll--;
        while (ll && (*l == ' ' || *l == '\t'))
            l++, ll--;
        if (ll == 0 || *l == '#')
            continue;
        const char *c = memchr(l, ':', ll);
        if (!c || (size_t)(c - l) >= sizeof it->key) {
            say(why, n, "line %d: expected 'key: value'", it->line);
            return -1;
        }
        size_t kl = (size_t)(c - l);
        memcpy(it->key, l, kl);
        it->key[kl] = 0;
        const char *v = c + 1;
        size_t vl = ll - kl - 1;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        if (vl >= sizeof it->val) {
            say(why, n, "line %d: value too long", it->line);
            return -1;
        }
        memcpy(it->val, v, vl);
        it->val[vl] = 0;
        return 1;
    }
    return 0;
}

int tee_report_from_text(const char *text, tee_report *out, char *why, size_t whylen) {
    kv_iter it = {.p = text};
    unsigned seen = 0;
    int r;
    memset(out, 0, sizeof *out);
    while ((r = kv_next(&it, why, whylen)) == 1) {
        static const char *const keys[] = {"version", "backend", "measurement",  "pubkey",
                                           "nonce",   "time",    "platform_key", "signature"};
        unsigned k = 0;
        while (k < ARRAY_LEN(keys) && strcmp(keys[k], it.key) != 0)
            k++;
        if (k == ARRAY_LEN(keys)) {
            say(why, whylen, "line %d: unknown field '%s'", it.line, it.key);
            return ERR_MALFORMED;
        }
        if (seen & (1u << k)) {
            say(why, whylen, "line %d: field '%s' given twice", it.line, it.key);
            return ERR_MALFORMED;
        }
        seen |= 1u << k;
        size_t vl = strlen(it.val);
        int bad = 0;
        char *end = NULL;
        switch (k) {
        case 0:
            out->version = (uint32_t)strtoul(it.val, &end, 10);
            bad = !vl || *end;
            break;
        case 1:
            bad = vl == 0 || vl >= TEE_BACKEND_MAX;
            if (!bad)
                memcpy(out->backend, it.val, vl);
            break;
        case 2: bad = cr_unhex(out->measurement, 32, it.val, vl) != 0; break;
        case 3: bad = cr_unhex(out->pubkey, 32, it.val, vl) != 0; break;
        case 4: bad = cr_unhex(out->nonce, 32, it.val, vl) != 0; break;
        case 5:
            out->time_ns = strtoull(it.val, &end, 10);
            bad = !vl || *end;
            break;
        case 6: bad = cr_unhex(out->platform_key, 32, it.val, vl) != 0; break;
        case 7: bad = cr_unhex(out->sig, 64, it.val, vl) != 0; break;
        }
        if (bad) {
            say(why, whylen, "line %d: bad value for '%s'", it.line, it.key);
            return ERR_MALFORMED;
        }
    }
    if (r < 0)
        return ERR_MALFORMED;
    if (seen != 0xffu) {
        say(why, whylen,
            "incomplete report: some of version, backend, measurement, pubkey, "
            "nonce, time, platform_key, signature are missing");
        return ERR_MALFORMED;
    }
    if (out->version != TEE_REPORT_VERSION) {
        say(why, whylen, "unsupported report version %" PRIu32, out->version);
        return ERR_MALFORMED;
    }
    return 0;
}

/* ---- policy -------------------------------------------------------------------------------- */

static void add_key(uint8_t (**arr)[32], size_t *n, const uint8_t k[32]) {
    *arr = xrealloc(*arr, (*n + 1) * 32);
    memcpy((*arr)[*n], k, 32);
    (*n)++;
}

void tee_policy_fini(tee_policy *p) {
    free(p->meas);
    free(p->platform);
    free(p->client);
    memset(p, 0, sizeof *p);
}

int tee_policy_parse(const char *text, tee_policy *out, char *why, size_t whylen) {
    kv_iter it = {.p = text};
    bool sim_said = false;
    int r;
    memset(out, 0, sizeof *out);
    out->max_age_s = 300;
    while ((r = kv_next(&it, why, whylen)) == 1) {
        uint8_t k[32];
        size_t vl = strlen(it.val);
        if (strcmp(it.key, "allow_sim") == 0) {
            if (strcmp(it.val, "yes") == 0)
                out->allow_sim = true;
            else if (strcmp(it.val, "no") == 0)
                out->allow_sim = false;
            else
                goto bad;
            sim_said = true;
        } else if (strcmp(it.key, "measurement") == 0) {
            if (strcmp(it.val, "any") == 0)
                out->any_measurement = true;
            else if (cr_unhex(k, 32, it.val, vl) == 0)
                add_key(&out->meas, &out->n_meas, k);
            else
                goto bad;
        } else if (strcmp(it.key, "platform_key") == 0) {
            if (cr_unhex(k, 32, it.val, vl) != 0)
                goto bad;
            add_key(&out->platform, &out->n_platform, k);
        } else if (strcmp(it.key, "client_key") == 0) {
            if (strcmp(it.val, "any") == 0)
                out->any_client_key = true;
            else if (cr_unhex(k, 32, it.val, vl) == 0)
                add_key(&out->client, &out->n_client, k);
            else
                goto bad;
        } else if (strcmp(it.key, "max_age") == 0) {
            char *end;
            out->max_age_s = strtoull(it.val, &end, 10);
            if (!vl || *end)
                goto bad;
        } else {
            say(why, whylen, "line %d: unknown policy field '%s'", it.line, it.key);
            goto fail;
        }
    }
    if (r < 0)
        goto fail;
    if (!sim_said) {
        say(why, whylen, "policy must say 'allow_sim: yes' or 'allow_sim: no'");
        goto fail;
    }
    if (!out->any_measurement && out->n_meas == 0) {
        say(why, whylen, "policy lists no measurement (use 'measurement: any' for development)");
        goto fail;
    }
    return 0;
bad:
    say(why, whylen, "line %d: bad value '%s' for '%s'", it.line, it.val, it.key);
fail:
    tee_policy_fini(out);
    return ERR_MALFORMED;
}

int tee_client_list_parse(const char *text, tee_policy *out, char *why, size_t whylen) {
    kv_iter it = {.p = text};
    int r;
    memset(out, 0, sizeof *out);
    out->max_age_s = 300;
    while ((r = kv_next(&it, why, whylen)) == 1) {
        uint8_t k[32];
        if (strcmp(it.key, "client_key") != 0) {
            say(why, whylen, "line %d: a client list holds only 'client_key: HEX' lines, not '%s'",
                it.line, it.key);
            goto fail;
        }
        if (cr_unhex(k, 32, it.val, strlen(it.val)) != 0) {
            say(why, whylen, "line %d: bad value '%s' for 'client_key' (64 hex digits)", it.line,
                it.val);
            goto fail;
        }
        add_key(&out->client, &out->n_client, k);
    }
    if (r < 0)
        goto fail;
    if (out->n_client == 0) {
        say(why, whylen, "the client list names no client_key");
        goto fail;
    }
    return 0;
fail:
    tee_policy_fini(out);
    return ERR_MALFORMED;
}

/* Read a policy or client list file and parse it with @p parse. */
static int load_with(const char *path, int (*parse)(const char *, tee_policy *, char *, size_t),
                     tee_policy *out, char *why, size_t whylen) {
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = plat_read_file(path, &data, &len);
    if (rc) {
        say(why, whylen, "cannot read %s: %s", path, err_str(rc));
        return ERR_IO;
    }
    char *text = xmalloc(len + 1);
    memcpy(text, data, len);
    text[len] = 0;
    free(data);
    if (strlen(text) != len) {
        free(text);
        say(why, whylen, "%s contains a NUL byte", path);
        return ERR_MALFORMED;
    }
    rc = parse(text, out, why, whylen);
    free(text);
    return rc;
}

int tee_policy_load(const char *path, tee_policy *out, char *why, size_t whylen) {
    return load_with(path, tee_policy_parse, out, why, whylen);
}

int tee_client_list_load(const char *path, tee_policy *out, char *why, size_t whylen) {
    return load_with(path, tee_client_list_parse, out, why, whylen);
}

void tee_policy_for(tee_enclave *t, bool production, tee_policy *out) {
    memset(out, 0, sizeof *out);
    out->allow_sim = !production;
    out->max_age_s = 300;
    add_key(&out->meas, &out->n_meas, t->meas);
    uint8_t pk[32];
    tee_platform_key(t, pk);
    add_key(&out->platform, &out->n_platform, pk);
}

void tee_policy_add_client(tee_policy *p, const uint8_t key[TEE_KEY_BYTES]) {
    add_key(&p->client, &p->n_client, key);
}

char *tee_policy_to_text(const tee_policy *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    fprintf(f, "# psl attestation policy\n");
    fprintf(f, "allow_sim: %s\n", p->allow_sim ? "yes" : "no");
    if (p->any_measurement)
        fprintf(f, "measurement: any\n");
    for (size_t i = 0; i < p->n_meas; i++)
        hexf(f, "measurement", p->meas[i], 32);
    for (size_t i = 0; i < p->n_platform; i++)
        hexf(f, "platform_key", p->platform[i], 32);
    if (p->any_client_key)
        fprintf(f, "client_key: any\n");
    for (size_t i = 0; i < p->n_client; i++)
        hexf(f, "client_key", p->client[i], 32);
    fprintf(f, "max_age: %" PRIu64 "\n", p->max_age_s);
    fclose(f);
    return buf;
}

static bool in_list(uint8_t (*arr)[32], size_t n, const uint8_t *k) {
    for (size_t i = 0; i < n; i++)
        if (cr_equal(arr[i], k, 32))
            return true;
    return false;
}

bool tee_policy_accepts_client(const tee_policy *p, const uint8_t key[TEE_KEY_BYTES]) {
    return p->any_client_key || in_list(p->client, p->n_client, key);
}

int tee_verify(const tee_report *r, const tee_policy *p, const uint8_t *pubkey,
               const uint8_t *nonce, uint64_t now_ns, char *why, size_t whylen) {
    char h[65];
    if (r->version != TEE_REPORT_VERSION) {
        say(why, whylen, "report version %" PRIu32 " not supported", r->version);
        return ERR_AUTH;
    }
    /* Every backend here signs with Ed25519 over the canonical encoding; hardware backends
     * would check their vendor chain at this point instead. */
    if (strcmp(r->backend, "sim") != 0) {
        say(why, whylen, "backend '%.16s' is not supported by this verifier", r->backend);
        return ERR_AUTH;
    }
    uint8_t enc[TEE_REPORT_BYTES];
    tee_report_encode(r, enc);
    if (cr_sign_verify(r->sig, enc, TEE_REPORT_SIGNED_BYTES, r->platform_key) != 0) {
        say(why, whylen, "bad report signature");
        return ERR_AUTH;
    }
    if (!p->allow_sim) {
        say(why, whylen,
            "backend 'sim' not accepted by policy (allow_sim: no): a sim report "
            "gives no protection against root on its host");
        return ERR_AUTH;
    }
    if (p->n_platform && !in_list(p->platform, p->n_platform, r->platform_key)) {
        cr_hex(h, r->platform_key, 32);
        say(why, whylen, "platform key %s not accepted by policy", h);
        return ERR_AUTH;
    }
    if (!p->any_measurement && !in_list(p->meas, p->n_meas, r->measurement)) {
        cr_hex(h, r->measurement, 32);
        say(why, whylen, "measurement %s not accepted by policy", h);
        return ERR_AUTH;
    }
    if (pubkey && !cr_equal(pubkey, r->pubkey, 32)) {
        say(why, whylen, "report does not bind the expected public key");
        return ERR_AUTH;
    }
    if (nonce && !cr_equal(nonce, r->nonce, 32)) {
        say(why, whylen, "report does not bind the expected nonce (stale or replayed report)");
        return ERR_AUTH;
    }
    if (p->max_age_s) {
        uint64_t lim = p->max_age_s * 1000000000ull;
        if (r->time_ns + lim < now_ns) {
            say(why, whylen, "report is too old (%" PRIu64 " s > max_age %" PRIu64 " s)",
                (uint64_t)((now_ns - r->time_ns) / 1000000000ull), p->max_age_s);
            return ERR_AUTH;
        }
        if (r->time_ns > now_ns + 60000000000ull) {
            say(why, whylen, "report time is in the future");
            return ERR_AUTH;
        }
    }
    return 0;
}

/* ---- sealing ------------------------------------------------------------------------------- */

static uint8_t *seal_ad(tee_enclave *t, const char *label, size_t *adlen) {
    size_t ll = strlen(label);
    uint8_t *ad = xmalloc(12 + TEE_MEAS_BYTES + ll);
    memcpy(ad, "psl-seal-v1:", 12);
    memcpy(ad + 12, t->meas, TEE_MEAS_BYTES);
    memcpy(ad + 12 + TEE_MEAS_BYTES, label, ll);
    *adlen = 12 + TEE_MEAS_BYTES + ll;
    return ad;
}

int tee_seal(tee_enclave *t, const char *label, const void *pt, size_t len, uint8_t **out,
             size_t *outlen) {
    uint8_t key[32];
    size_t adlen;
    uint8_t *ad = seal_ad(t, label, &adlen);
    t->ops->seal_key(t, t->meas, key);
    uint8_t *o = xmalloc(len + TEE_SEAL_OVERHEAD);
    memcpy(o, "PSLS", 4);
    cr_box_seal(o + 4, key, ad, adlen, pt, len);
    cr_memzero(key, sizeof key);
    free(ad);
    *out = o;
    *outlen = len + TEE_SEAL_OVERHEAD;
    return 0;
}

int tee_unseal(tee_enclave *t, const char *label, const uint8_t *in, size_t inlen, uint8_t **out,
               size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    if (inlen < TEE_SEAL_OVERHEAD || memcmp(in, "PSLS", 4) != 0)
        return ERR_MALFORMED;
    uint8_t key[32];
    size_t adlen, n = inlen - TEE_SEAL_OVERHEAD;
    uint8_t *ad = seal_ad(t, label, &adlen);
    t->ops->seal_key(t, t->meas, key);
    uint8_t *o = cr_secure_alloc(n);
    int rc = cr_box_open(o, key, ad, adlen, in + 4, inlen - 4);
    cr_memzero(key, sizeof key);
    free(ad);
    if (rc) {
        cr_secure_free(o);
        return ERR_AUTH;
    }
    *out = o;
    *outlen = n;
    return 0;
}

/* ---- monotonic counters -------------------------------------------------------------------- */
/* File HOME/counters/NAME: value (8 bytes LE) || MAC (32) = keyed BLAKE2b(counter key,
 * name || value). The MAC stops edits by anyone without the platform secret; rolling the file
 * back to an older copy is stopped only by a hardware counter (docs/tee.md). */

static int counter_path(tee_enclave *t, const char *name, char *path, size_t n) {
    size_t l = strlen(name);
    if (l == 0 || l > TEE_COUNTER_NAME_MAX)
        return ERR_USAGE;
    for (size_t i = 0; i < l; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return ERR_USAGE;
    }
    if (name[0] == '.')
        return ERR_USAGE;
    snprintf(path, n, "%s/counters/%s", t->home, name);
    return 0;
}

static void counter_mac(tee_enclave *t, const char *name, const uint8_t v[8], uint8_t mac[32]) {
    uint8_t key[32];
    t->ops->counter_key(t, key);
    size_t l = strlen(name);
    uint8_t *m = xmalloc(l + 8);
    memcpy(m, name, l);
    memcpy(m + l, v, 8);
    cr_hash_ex(mac, 32, key, 32, m, l + 8);
    free(m);
    cr_memzero(key, sizeof key);
}

int tee_counter_read(tee_enclave *t, const char *name, uint64_t *value) {
    char path[4096];
    int rc = counter_path(t, name, path, sizeof path);
    if (rc)
        return rc;
    uint8_t *data = NULL;
    size_t len = 0;
    rc = plat_read_file(path, &data, &len);
    if (rc == -ENOENT) {
        *value = 0;
        return 0;
    }
    if (rc)
        return ERR_IO;
    uint8_t mac[32];
    if (len != 40) {
        free(data);
        return ERR_CORRUPT;
    }
    counter_mac(t, name, data, mac);
    if (!cr_equal(mac, data + 8, 32)) {
        free(data);
        return ERR_CORRUPT;
    }
    *value = get64(data);
    free(data);
    return 0;
}

int tee_counter_increment(tee_enclave *t, const char *name, uint64_t *value) {
    uint64_t v;
    int rc = tee_counter_read(t, name, &v);
    if (rc)
        return rc;
    if (v == UINT64_MAX)
        return ERR_LIMIT;
    v++;
    char dir[4096], path[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s/counters", t->home);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ERR_IO;
    rc = counter_path(t, name, path, sizeof path);
    if (rc)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    uint8_t buf[40];
    put64(buf, v);
    counter_mac(t, name, buf, buf + 8);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR_IO;
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return ERR_IO;
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return ERR_IO;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *value = v;
    return 0;
}
