/* tee: the enclave abstraction every trusted psl process stands on.
 *
 * One interface, several backends. A backend provides
 *   - a measurement: BLAKE2b-256 over the running binary, extended (like a TPM PCR) with the
 *     process's configuration and the function code it is given;
 *   - attestation reports {measurement, public key, nonce, backend, time} signed by the backend's
 *     root of trust, and their verification against a policy (tee_verify, backend independent);
 *   - sealing: authenticated encryption under a key bound to (measurement, platform);
 *   - monotonic counters, so that sealed state can carry a version and rollback is detected;
 *   - process hardening (no core dumps, not ptrace-attachable) and a seccomp allow-list that the
 *     worker installs after start-up.
 *
 * Backend `sim` (the only one here) is a hardened Linux process. Its platform key is an Ed25519
 * key created on first use in HOME/platform.key (directory 0700, file 0600, owned by the user who
 * runs psl; see docs/tee.md for the root-only deployment). It protects against other unprivileged
 * users and against the network, NOT against root on the host, who can read its memory and its key
 * file: tee_open() says so on stderr, and every sim report says `backend: sim`. A policy accepts
 * sim reports only when it says `allow_sim: yes`.
 *
 * SGX2, SEV-SNP and TDX map onto the same struct tee_report (docs/tee.md): their quote or report
 * is what tee_report_create signs; the verifier's only backend-specific step is the signature
 * check against the vendor's chain instead of a pinned platform key.
 *
 * Errors: 0 or a negative code from base/err.h. ERR_AUTH means a report, signature or sealed
 * blob was rejected; the functions that take @p why write a one-line human reason there. */
#ifndef PSL_TEE_TEE_H
#define PSL_TEE_TEE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define TEE_MEAS_BYTES 32u
#define TEE_KEY_BYTES 32u /* report public key (Ed25519 or X25519, by context) */
#define TEE_NONCE_BYTES 32u
#define TEE_SIG_BYTES 64u
#define TEE_BACKEND_MAX 16u /* backend name, NUL padded */
#define TEE_REPORT_VERSION 1u
#define TEE_REPORT_BYTES 224u        /* canonical binary encoding (tee_report_encode) */
#define TEE_REPORT_SIGNED_BYTES 160u /* prefix of the encoding that the signature covers */

typedef struct tee_enclave tee_enclave;

typedef struct tee_opts {
    const char *backend; /* "sim" (NULL = "sim") */
    const char *home; /* state directory: platform key, counters (NULL = $PSL_HOME or ./psl-data) */
    const char *binary; /* file measured as "the binary" (NULL = /proc/self/exe) */
    bool quiet;         /* suppress the sim warning (tests only; reports still say backend: sim) */
} tee_opts;

/** Open the backend: create/load the platform key, measure the binary.
 * @param[out] out owned by the caller, free with tee_close().
 * @return 0, ERR_USAGE (unknown backend), ERR_IO (home not usable, key file unreadable or too
 *         permissive; a reason is printed), ERR_CORRUPT (key file damaged). */
int tee_open(const tee_opts *o, tee_enclave **out) WARN_UNUSED;
void tee_close(tee_enclave *t);
const char *tee_backend(const tee_enclave *t);
/** The home directory in use (borrowed; valid until tee_close). */
const char *tee_home(const tee_enclave *t);
/** Resolve a home directory: @p explicit_home, else $PSL_HOME, else "./psl-data". Borrowed. */
const char *tee_default_home(const char *explicit_home);

/** Extend the measurement: m = H("psl-extend-v1" || m || label || H(data)). Reports created
 * afterwards carry the new value. @p label names what is measured ("config", "code:NAME"). */
void tee_measure_extend(tee_enclave *t, const char *label, const void *data, size_t len);
void tee_measurement(const tee_enclave *t, uint8_t out[TEE_MEAS_BYTES]);
/** The public half of the platform key that signs this machine's reports. */
void tee_platform_key(const tee_enclave *t, uint8_t out[TEE_KEY_BYTES]);

/* ---- reports ------------------------------------------------------------------------------- */
typedef struct tee_report {
    uint32_t version;
    char backend[TEE_BACKEND_MAX]; /* NUL padded */
    uint8_t measurement[TEE_MEAS_BYTES];
    uint8_t pubkey[TEE_KEY_BYTES];       /* the key this enclave proves it holds */
    uint8_t nonce[TEE_NONCE_BYTES];      /* freshness / handshake transcript binding */
    uint64_t time_ns;                    /* wall clock at creation (informative for sim) */
    uint8_t platform_key[TEE_KEY_BYTES]; /* signer (sim: the machine's Ed25519 key) */
    uint8_t sig[TEE_SIG_BYTES];
} tee_report;

/** A fresh report binding @p pubkey and @p nonce to this enclave's measurement. */
int tee_report_create(tee_enclave *t, const uint8_t pubkey[TEE_KEY_BYTES],
                      const uint8_t nonce[TEE_NONCE_BYTES], tee_report *out) WARN_UNUSED;
void tee_report_encode(const tee_report *r, uint8_t out[TEE_REPORT_BYTES]);
/** @return 0 or ERR_MALFORMED (wrong length, magic or version, backend name not NUL padded). */
int tee_report_decode(const uint8_t *in, size_t len, tee_report *out) WARN_UNUSED;
/** Human-readable text form (what `psl attest` prints). @return malloc'd string, caller frees. */
char *tee_report_to_text(const tee_report *r);
/** Parse the text form. @return 0 or ERR_MALFORMED with a reason in @p why. */
int tee_report_from_text(const char *text, tee_report *out, char *why, size_t whylen) WARN_UNUSED;

/* ---- policy -------------------------------------------------------------------------------- */
typedef struct tee_policy {
    bool allow_sim;       /* accept backend sim (must be said explicitly) */
    bool any_measurement; /* "measurement: any" (development only) */
    bool any_client_key;  /* "client_key: any" */
    size_t n_meas, n_platform, n_client;
    uint8_t (*meas)[TEE_MEAS_BYTES];
    uint8_t (*platform)[TEE_KEY_BYTES]; /* empty = any platform key */
    uint8_t (*client)[TEE_KEY_BYTES];   /* Ed25519 identities accepted instead of a report */
    uint64_t max_age_s;                 /* 0 = no age limit */
} tee_policy;

/** Parse a policy file's text:
 *     allow_sim: yes|no            (required)
 *     measurement: HEX | any       (repeatable; at least one)
 *     platform_key: HEX            (repeatable; none = any platform key)
 *     client_key: HEX | any        (repeatable; Ed25519 identities of clients / owners)
 *     max_age: SECONDS             (default 300; 0 = unlimited)
 * '#' starts a comment. @param[out] out free with tee_policy_fini.
 * @return 0 or ERR_MALFORMED with a reason (line number included) in @p why. */
int tee_policy_parse(const char *text, tee_policy *out, char *why, size_t whylen) WARN_UNUSED;
/** Read and parse a policy file. ERR_IO when unreadable. */
int tee_policy_load(const char *path, tee_policy *out, char *why, size_t whylen) WARN_UNUSED;
/** Parse a client list: one or more 'client_key: HEX' lines ('#' comments), the only Ed25519
 * identities to accept. The result is a policy that accepts those identities and no attestation
 * report (no measurement). @return 0 or ERR_MALFORMED with a reason in @p why. */
int tee_client_list_parse(const char *text, tee_policy *out, char *why, size_t whylen) WARN_UNUSED;
/** Read and parse a client list file. ERR_IO when unreadable. */
int tee_client_list_load(const char *path, tee_policy *out, char *why, size_t whylen) WARN_UNUSED;
/** A policy accepting exactly this enclave's measurement and platform key; allow_sim = !production.
 */
void tee_policy_for(tee_enclave *t, bool production, tee_policy *out);
void tee_policy_add_client(tee_policy *p, const uint8_t key[TEE_KEY_BYTES]);
/** Text form, parseable by tee_policy_parse. malloc'd. */
char *tee_policy_to_text(const tee_policy *p);
void tee_policy_fini(tee_policy *p);

/** Check @p r: signature, backend, platform key, measurement against @p p, and (when not NULL)
 * that it binds @p pubkey and @p nonce; its age against max_age using @p now_ns (wall clock).
 * @return 0 or ERR_AUTH with the first failed check in @p why. */
int tee_verify(const tee_report *r, const tee_policy *p, const uint8_t *pubkey,
               const uint8_t *nonce, uint64_t now_ns, char *why, size_t whylen) WARN_UNUSED;
/** Is this Ed25519 client identity accepted by @p p? */
bool tee_policy_accepts_client(const tee_policy *p, const uint8_t key[TEE_KEY_BYTES]);

/* ---- sealing and counters ------------------------------------------------------------------ */
#define TEE_SEAL_OVERHEAD 44u
/** Encrypt @p len bytes for this (measurement, platform) only; @p label is bound as associated
 * data (unseal must give the same). @param[out] out malloc'd, *outlen = len + TEE_SEAL_OVERHEAD. */
int tee_seal(tee_enclave *t, const char *label, const void *pt, size_t len, uint8_t **out,
             size_t *outlen) WARN_UNUSED;
/** @param[out] out guarded memory from cr_secure_alloc (free with cr_secure_free).
 * @return 0, ERR_MALFORMED (not a sealed blob), ERR_AUTH (sealed by another measurement or
 *         platform, under another label, or altered). */
int tee_unseal(tee_enclave *t, const char *label, const uint8_t *in, size_t inlen, uint8_t **out,
               size_t *outlen) WARN_UNUSED;

#define TEE_COUNTER_NAME_MAX 64u /* bytes of a counter name */

/** Monotonic counter @p name ([A-Za-z0-9._-], up to TEE_COUNTER_NAME_MAX chars, not starting
 * with '.'). Missing counters read as 0.
 * @return 0, ERR_USAGE (bad name), ERR_CORRUPT (counter file altered), ERR_IO. */
int tee_counter_read(tee_enclave *t, const char *name, uint64_t *value) WARN_UNUSED;
/** Increment durably (fsync + rename) and return the new value. */
int tee_counter_increment(tee_enclave *t, const char *name, uint64_t *value) WARN_UNUSED;

/* ---- process hardening --------------------------------------------------------------------- */
/** No core dumps, not dumpable (so not ptrace-attachable by the same uid), no new privileges.
 * Call at start-up in every trusted role. 0 or -errno. */
int tee_harden_process(void) WARN_UNUSED;

#define TEE_SB_NET 1u     /* sockets: ZeroMQ over TCP/IPC */
#define TEE_SB_FILES 2u   /* open/create/rename/fsync files */
#define TEE_SB_THREADS 4u /* create threads (clone with CLONE_THREAD) */
#define TEE_SB_ERRNO 8u   /* forbidden syscalls fail with EPERM instead of killing the process */
/** Install the seccomp-bpf allow-list for this process (all threads created afterwards inherit
 * it; existing threads are synchronised with SECCOMP_FILTER_FLAG_TSYNC). Irreversible. Anything
 * outside the list (execve, ptrace, fork, mount, ...) kills the process with SIGSYS, or fails with
 * EPERM under TEE_SB_ERRNO. @return 0 or a negative errno from libseccomp. */
int tee_sandbox_install(unsigned flags) WARN_UNUSED;

#endif
