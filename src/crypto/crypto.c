/* libsodium and libgcrypt wrappers. This is the only file in psl that includes sodium.h, and the
 * only one that includes gcrypt.h. libgcrypt runs the channel's AES-256-GCM streams (VAES/VPCLMUL
 * and AES-NI code paths with a small per-message cost: 240 ns per KiB where libsodium 1.0.18 takes
 * 520-610 and OpenSSL 3.0's EVP 400, measured for docs/BENCHMARKS.md; standard GCM, identical
 * bytes), the ChaCha20-Poly1305 under cr_box and the XChaCha streams, and SHA-256 (SHA-NI).
 * Invariant: a cr_stream never encrypts two messages under one counter value; the counter is
 * private to the stream and only moves forward. */
#include "crypto/crypto.h"

#include <gcrypt.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

#include "base/err.h"

_Static_assert(sizeof(((cr_hash_state *)0)->opaque) >= sizeof(crypto_generichash_state),
               "cr_hash_state too small for libsodium's BLAKE2b state");
_Static_assert(CR_SIGN_PK == crypto_sign_PUBLICKEYBYTES, "ed25519 pk");
_Static_assert(CR_SIGN_SK == crypto_sign_SECRETKEYBYTES, "ed25519 sk");
_Static_assert(CR_SIG == crypto_sign_BYTES, "ed25519 sig");
_Static_assert(CR_KX_PK == crypto_scalarmult_BYTES, "x25519");
_Static_assert(CR_BOX_NONCE == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "xchacha nonce");
_Static_assert(CR_BOX_TAG == crypto_aead_xchacha20poly1305_ietf_ABYTES, "xchacha tag");
_Static_assert(CR_STREAM_TAG == crypto_aead_aes256gcm_ABYTES, "gcm tag");

static atomic_int g_ready;   /* 1 once cr_init succeeded */
static unsigned g_supported; /* CR_AEAD_* mask, written once before g_ready */

static pthread_once_t g_gcry_once = PTHREAD_ONCE_INIT;
static bool g_gcry_ok;

/* libgcrypt wants one initialisation before use; psl uses it for cipher contexts only, so its
 * secure-memory pool stays off (keys live in the contexts, wiped by gcry_cipher_close). */
static void gcry_setup(void) {
    if (!gcry_check_version("1.8.0"))
        return;
    if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
        gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
        gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    g_gcry_ok = true;
}

int cr_init(void) {
    if (atomic_load(&g_ready))
        return 0;
    if (sodium_init() < 0)
        return ERR_IO;
    pthread_once(&g_gcry_once, gcry_setup);
    if (!g_gcry_ok)
        return ERR_IO;
    unsigned mask = CR_AEAD_XCHACHA;
    if (crypto_aead_aes256gcm_is_available())
        mask |= CR_AEAD_AESGCM;
    g_supported = mask;
    atomic_store(&g_ready, 1);
    return 0;
}

static void need_init(void) {
    ASSERT(atomic_load(&g_ready) && "cr_init() was not called");
}

/* ---- hashing ------------------------------------------------------------------------------- */

void cr_hash_ex(uint8_t *out, size_t outlen, const void *key, size_t keylen, const void *in,
                size_t inlen) {
    ASSERT(outlen >= crypto_generichash_BYTES_MIN && outlen <= crypto_generichash_BYTES_MAX);
    ASSERT(keylen <= crypto_generichash_KEYBYTES_MAX && (key || keylen == 0));
    crypto_generichash(out, outlen, in, inlen, key, keylen);
}

void cr_hash(uint8_t out[CR_HASH_BYTES], const void *in, size_t inlen) {
    crypto_generichash(out, CR_HASH_BYTES, in, inlen, NULL, 0);
}

void cr_sha256(uint8_t out[CR_SHA256_BYTES], const void *in, size_t inlen) {
    need_init();
    ASSERT(in || inlen == 0);
    gcry_md_hash_buffer(GCRY_MD_SHA256, out, in, inlen);
}

bool cr_sha256_fast(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)); /* CPUID.7.0:EBX.SHA */
#else
    return false;
#endif
}

void cr_hash_init(cr_hash_state *st, size_t outlen) {
    ASSERT(outlen >= crypto_generichash_BYTES_MIN && outlen <= crypto_generichash_BYTES_MAX);
    st->outlen = outlen;
    crypto_generichash_init((crypto_generichash_state *)(void *)st->opaque, NULL, 0, outlen);
}

void cr_hash_update(cr_hash_state *st, const void *in, size_t len) {
    crypto_generichash_update((crypto_generichash_state *)(void *)st->opaque, in, len);
}

void cr_hash_final(cr_hash_state *st, uint8_t *out) {
    crypto_generichash_final((crypto_generichash_state *)(void *)st->opaque, out, st->outlen);
    sodium_memzero(st, sizeof *st);
}

/* ---- signatures ---------------------------------------------------------------------------- */

void cr_sign_keypair(uint8_t pk[CR_SIGN_PK], uint8_t sk[CR_SIGN_SK]) {
    need_init();
    crypto_sign_keypair(pk, sk);
}

void cr_sign_seed_keypair(uint8_t pk[CR_SIGN_PK], uint8_t sk[CR_SIGN_SK],
                          const uint8_t seed[CR_SIGN_SEED]) {
    crypto_sign_seed_keypair(pk, sk, seed);
}

void cr_sign(uint8_t sig[CR_SIG], const void *msg, size_t len, const uint8_t sk[CR_SIGN_SK]) {
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

int cr_sign_verify(const uint8_t sig[CR_SIG], const void *msg, size_t len,
                   const uint8_t pk[CR_SIGN_PK]) {
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : ERR_AUTH;
}

/* ---- key exchange -------------------------------------------------------------------------- */

void cr_kx_keypair(uint8_t pk[CR_KX_PK], uint8_t sk[CR_KX_SK]) {
    need_init();
    randombytes_buf(sk, CR_KX_SK);
    crypto_scalarmult_base(pk, sk);
}

void cr_kx_public(uint8_t pk[CR_KX_PK], const uint8_t sk[CR_KX_SK]) {
    crypto_scalarmult_base(pk, sk);
}

int cr_kx_shared(uint8_t out[CR_KX_SHARED], const uint8_t sk[CR_KX_SK],
                 const uint8_t peer_pk[CR_KX_PK]) {
    /* libsodium refuses (returns -1) when the result is all zero: a low-order peer key. */
    if (crypto_scalarmult(out, sk, peer_pk) != 0) {
        sodium_memzero(out, CR_KX_SHARED);
        return ERR_AUTH;
    }
    return 0;
}

/* ---- key derivation ------------------------------------------------------------------------ */

void cr_kdf(uint8_t *out, size_t outlen, const uint8_t key[CR_KEY], const char *label,
            const void *ctx, size_t ctxlen) {
    ASSERT(key && label && outlen >= 16 && outlen <= 64);
    size_t ll = strlen(label);
    ASSERT(ll < 256);
    crypto_generichash_state st;
    uint8_t l8 = (uint8_t)ll;
    crypto_generichash_init(&st, key, CR_KEY, outlen);
    crypto_generichash_update(&st, &l8, 1);
    crypto_generichash_update(&st, (const uint8_t *)label, ll);
    if (ctxlen)
        crypto_generichash_update(&st, ctx, ctxlen);
    crypto_generichash_final(&st, out, outlen);
    sodium_memzero(&st, sizeof st);
}

/* ---- random-nonce AEAD --------------------------------------------------------------------- */

/* XChaCha20-Poly1305-IETF is HChaCha20(key, nonce[0..16]) as the key of ChaCha20-Poly1305-IETF
 * (RFC 8439) with the 12-byte nonce 0^4 || nonce[16..24]. libgcrypt's ChaCha20-Poly1305 has
 * AVX2 code paths: 3.2 GB/s on 1 MiB where libsodium 1.0.18's XChaCha20 takes 1.3 GB/s
 * (docs/BENCHMARKS.md), and capsule records are sealed, multicast and opened by the megabyte;
 * streams without AES-NI use it too.
 * The bytes are libsodium's (test_crypto checks the draft's vector). Decryption authenticates
 * as it goes; box_run's caller wipes @p out on a bad tag. Seals when @p tag_out is given,
 * opens against @p tag_in otherwise.
 * @return 1 on success (for open: the tag matched), 0 otherwise. */
static int box_run(const uint8_t key[CR_KEY], const uint8_t nonce[CR_BOX_NONCE], const void *ad,
                   size_t adlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag_out,
                   const uint8_t *tag_in) {
    bool enc = tag_out != NULL;
    uint8_t sub[CR_KEY], iv[12] = {0};
    crypto_core_hchacha20(sub, nonce, key, NULL);
    memcpy(iv + 4, nonce + 16, 8);
    gcry_cipher_hd_t h;
    if (gcry_cipher_open(&h, GCRY_CIPHER_CHACHA20, GCRY_CIPHER_MODE_POLY1305, 0) != 0)
        base_panic(__FILE__, __LINE__, "libgcrypt cannot set up ChaCha20-Poly1305");
    int ok = gcry_cipher_setkey(h, sub, CR_KEY) == 0 && gcry_cipher_setiv(h, iv, 12) == 0 &&
             (!adlen || gcry_cipher_authenticate(h, ad, adlen) == 0);
    sodium_memzero(sub, sizeof sub);
    if (ok && len)
        ok = (enc ? gcry_cipher_encrypt(h, out, len, in, len)
                  : gcry_cipher_decrypt(h, out, len, in, len)) == 0;
    if (ok)
        ok = (enc ? gcry_cipher_gettag(h, tag_out, CR_BOX_TAG)
                  : gcry_cipher_checktag(h, tag_in, CR_BOX_TAG)) == 0;
    gcry_cipher_close(h);
    return ok;
}

void cr_box_seal(uint8_t *out, const uint8_t key[CR_KEY], const void *ad, size_t adlen,
                 const void *pt, size_t len) {
    need_init();
    ASSERT(out && key && (ad || adlen == 0) && (pt || len == 0));
    randombytes_buf(out, CR_BOX_NONCE);
    if (!box_run(key, out, ad, adlen, pt, len, out + CR_BOX_NONCE, out + CR_BOX_NONCE + len, NULL))
        base_panic(__FILE__, __LINE__, "libgcrypt cannot seal a box");
}

int cr_box_open(uint8_t *out, const uint8_t key[CR_KEY], const void *ad, size_t adlen,
                const uint8_t *in, size_t inlen) {
    need_init();
    ASSERT(key && (ad || adlen == 0));
    if (inlen < CR_BOX_OVERHEAD)
        return ERR_MALFORMED;
    size_t len = inlen - CR_BOX_OVERHEAD;
    ASSERT(out || len == 0);
    if (!box_run(key, in, ad, adlen, in + CR_BOX_NONCE, len, out, NULL, in + CR_BOX_NONCE + len)) {
        if (len)
            sodium_memzero(out, len);
        return ERR_AUTH;
    }
    return 0;
}

/* ---- counter-nonce streams ----------------------------------------------------------------- */

struct cr_stream {
    gcry_cipher_hd_t gcm; /* alg == CR_AEAD_AESGCM: the key schedule, set once at creation */
    uint8_t key[CR_KEY];  /* alg == CR_AEAD_XCHACHA */
    uint64_t seq;
    unsigned alg;
};

unsigned cr_aead_supported(void) {
    need_init();
    return g_supported;
}

unsigned cr_aead_pick(unsigned peer_mask) {
    unsigned both = peer_mask & cr_aead_supported();
    if (both & CR_AEAD_AESGCM)
        return CR_AEAD_AESGCM;
    if (both & CR_AEAD_XCHACHA)
        return CR_AEAD_XCHACHA;
    return 0;
}

const char *cr_aead_name(unsigned alg) {
    switch (alg) {
    case CR_AEAD_XCHACHA: return "xchacha20-poly1305";
    case CR_AEAD_AESGCM: return "aes-256-gcm";
    default: return "none";
    }
}

cr_stream *cr_stream_new(unsigned alg, const uint8_t key[CR_KEY]) {
    need_init();
    ASSERT(alg & g_supported);
    ASSERT(alg == CR_AEAD_XCHACHA || alg == CR_AEAD_AESGCM);
    cr_stream *s = cr_secure_alloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->alg = alg;
    if (alg == CR_AEAD_AESGCM) {
        /* libgcrypt keeps the expanded key in its own heap memory (wiped by gcry_cipher_close),
         * not in guarded pages; the raw key is not kept here at all. */
        if (gcry_cipher_open(&s->gcm, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, 0) != 0 ||
            gcry_cipher_setkey(s->gcm, key, CR_KEY) != 0)
            base_panic(__FILE__, __LINE__, "libgcrypt cannot set up AES-256-GCM");
    } else {
        memcpy(s->key, key, CR_KEY);
    }
    return s;
}

void cr_stream_free(cr_stream *s) {
    if (!s)
        return;
    if (s->gcm)
        gcry_cipher_close(s->gcm);
    cr_secure_free(s);
}

/* AES-256-GCM through libgcrypt; the 12-byte IV is the first 12 bytes of the counter nonce (what
 * libsodium's crypto_aead_aes256gcm uses, so both produce the same bytes). Open decrypts as it
 * authenticates: on a bad tag the caller wipes @p out.
 * @return 1 on success (for open: the tag matched), 0 otherwise. */
static int gcm_run(gcry_cipher_hd_t h, int enc, const uint8_t nonce[12], const void *ad,
                   size_t adlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag) {
    if (gcry_cipher_setiv(h, nonce, 12) != 0)
        return 0;
    if (adlen && gcry_cipher_authenticate(h, ad, adlen) != 0)
        return 0;
    gcry_cipher_final(h);
    if (len && (enc ? gcry_cipher_encrypt(h, out, len, in, len)
                    : gcry_cipher_decrypt(h, out, len, in, len)) != 0)
        return 0;
    return (enc ? gcry_cipher_gettag(h, tag, CR_STREAM_TAG)
                : gcry_cipher_checktag(h, tag, CR_STREAM_TAG)) == 0;
}

uint64_t cr_stream_seq(const cr_stream *s) {
    return s->seq;
}

/* The nonce is the little-endian counter, zero padded: unique per key by construction. */
static void stream_nonce(uint8_t nonce[24], uint64_t seq) {
    memset(nonce, 0, 24);
    for (int i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(seq >> (8 * i));
}

int cr_stream_seal(cr_stream *s, const void *ad, size_t adlen, const void *pt, size_t len,
                   uint8_t *out, uint64_t *seq) {
    if (s->seq == UINT64_MAX)
        return ERR_LIMIT;
    uint8_t nonce[24];
    stream_nonce(nonce, s->seq);
    if (s->alg == CR_AEAD_AESGCM) {
        if (!gcm_run(s->gcm, 1, nonce, ad, adlen, pt, len, out, out + len))
            base_panic(__FILE__, __LINE__, "libgcrypt AES-256-GCM encryption failed");
    } else if (!box_run(s->key, nonce, ad, adlen, pt, len, out, out + len, NULL)) {
        base_panic(__FILE__, __LINE__, "libgcrypt ChaCha20-Poly1305 encryption failed");
    }
    if (seq)
        *seq = s->seq;
    s->seq++;
    return 0;
}

int cr_stream_open(cr_stream *s, uint64_t seq, const void *ad, size_t adlen, const uint8_t *ct,
                   size_t ctlen, uint8_t *out) {
    if (seq != s->seq)
        return ERR_INVALID;
    if (ctlen < CR_STREAM_TAG)
        return ERR_MALFORMED;
    uint8_t nonce[24];
    stream_nonce(nonce, seq);
    int rc;
    if (s->alg == CR_AEAD_AESGCM) {
        uint8_t tag[CR_STREAM_TAG];
        memcpy(tag, ct + ctlen - CR_STREAM_TAG, CR_STREAM_TAG);
        rc = gcm_run(s->gcm, 0, nonce, ad, adlen, ct, ctlen - CR_STREAM_TAG, out, tag) ? 0 : -1;
    } else {
        rc = box_run(s->key, nonce, ad, adlen, ct, ctlen - CR_STREAM_TAG, out, NULL,
                     ct + ctlen - CR_STREAM_TAG)
                 ? 0
                 : -1;
    }
    if (rc) /* both decrypt as they authenticate: take back what was written */
        sodium_memzero(out, ctlen - CR_STREAM_TAG);
    if (rc != 0)
        return ERR_AUTH;
    s->seq++;
    return 0;
}

/* ---- memory and helpers -------------------------------------------------------------------- */

void *cr_secure_alloc(size_t n) {
    need_init();
    void *p = sodium_malloc(n ? n : 1);
    if (!p)
        base_panic(__FILE__, __LINE__, "sodium_malloc failed (out of memory or mlock limit)");
    return p;
}

void cr_secure_free(void *p) {
    if (p)
        sodium_free(p); /* wipes before unmapping */
}

void cr_memzero(void *p, size_t n) {
    sodium_memzero(p, n);
}

bool cr_equal(const void *a, const void *b, size_t n) {
    return sodium_memcmp(a, b, n) == 0;
}

void cr_random(void *buf, size_t n) {
    need_init();
    randombytes_buf(buf, n);
}

void cr_hex(char *out, const void *in, size_t len) {
    sodium_bin2hex(out, 2 * len + 1, in, len);
}

int cr_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen) {
    size_t got = 0;
    const char *end = NULL;
    if (hexlen != 2 * len)
        return ERR_MALFORMED;
    if (sodium_hex2bin(out, len, hex, hexlen, NULL, &got, &end) != 0 || got != len ||
        end != hex + hexlen)
        return ERR_MALFORMED;
    return 0;
}
