/* crypto: psl's only door to libsodium. Thin wrappers that are hard to misuse.
 *
 * Design rules (libsodium's own, applied one level up):
 * - Callers never choose nonces. cr_box_* draws a random 192-bit nonce (XChaCha20-Poly1305) and
 *   stores it in front of the ciphertext; cr_stream_* numbers its messages itself and derives the
 *   nonce from that counter, so a (key, nonce) pair can never repeat inside one stream.
 * - The stream AEAD is AES-256-GCM where the CPU has AES-NI + PCLMUL and XChaCha20-Poly1305
 *   otherwise; the choice is made once in cr_init() and both ends of a channel agree on one
 *   (cr_aead_supported() gives the mask to negotiate with). Streams run AES-256-GCM through
 *   libgcrypt (about 2x faster per KiB than libsodium 1.0.18's; standard GCM, identical bytes);
 *   on a bad tag the partly written @p out is wiped before cr_stream_open returns.
 * - No unauthenticated plaintext reaches a caller: open functions decrypt as they authenticate
 *   and wipe @p out (to zeros) before they return ERR_AUTH.
 * - Programming errors (NULL keys, lengths out of range, using the library before cr_init())
 *   abort through ASSERT; data errors return ERR_AUTH / ERR_MALFORMED / ERR_LIMIT.
 * - Long-lived secrets live in cr_secure_alloc() memory: mlock'ed, guard pages on both sides,
 *   wiped on free. Short-lived secrets on the stack are wiped with cr_memzero().
 * Thread safety: every function is thread safe after cr_init(); a cr_stream is owned by one
 * thread at a time. */
#ifndef PSL_CRYPTO_CRYPTO_H
#define PSL_CRYPTO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/** Initialise libsodium and pick the stream AEAD. Idempotent and thread safe.
 * @return 0, or ERR_IO when libsodium cannot initialise (no entropy source). */
int cr_init(void) WARN_UNUSED;

/* ---- hashing: BLAKE2b ---------------------------------------------------------------------- */
#define CR_HASH_BYTES 32u /* BLAKE2b-256, the project's default digest */
#define CR_HASH_MAX 64u

/** BLAKE2b with @p outlen in [16, 64] bytes, optionally keyed (@p key may be NULL when
 * @p keylen is 0; keylen <= 64). */
void cr_hash_ex(uint8_t *out, size_t outlen, const void *key, size_t keylen, const void *in,
                size_t inlen);
/** BLAKE2b-256 of @p in. */
void cr_hash(uint8_t out[CR_HASH_BYTES], const void *in, size_t inlen);

/* ---- hashing: SHA-256 (for bulk data on CPUs with the SHA extensions) ----------------------- */
#define CR_SHA256_BYTES 32u
/** SHA-256 of @p in, through libgcrypt (its SHA-NI code where the CPU has it). */
void cr_sha256(uint8_t out[CR_SHA256_BYTES], const void *in, size_t inlen);
/** True when this CPU has the x86 SHA extensions: SHA-256 then runs at ~1.6 GB/s on this
 * project's machine, where BLAKE2b runs at ~0.9 GB/s; without them SHA-256 is the slower one. */
bool cr_sha256_fast(void);

/* Incremental BLAKE2b. The state is opaque; its size is checked against libsodium at build time. */
typedef struct cr_hash_state {
    _Alignas(64) uint8_t opaque[384];
    size_t outlen;
} cr_hash_state;
void cr_hash_init(cr_hash_state *st, size_t outlen);
void cr_hash_update(cr_hash_state *st, const void *in, size_t len);
/** Writes st->outlen bytes to @p out and wipes the state. */
void cr_hash_final(cr_hash_state *st, uint8_t *out);

/* ---- signatures: Ed25519 ------------------------------------------------------------------- */
#define CR_SIGN_PK 32u
#define CR_SIGN_SK 64u /* seed || public key, libsodium's layout */
#define CR_SIGN_SEED 32u
#define CR_SIG 64u

void cr_sign_keypair(uint8_t pk[CR_SIGN_PK], uint8_t sk[CR_SIGN_SK]);
void cr_sign_seed_keypair(uint8_t pk[CR_SIGN_PK], uint8_t sk[CR_SIGN_SK],
                          const uint8_t seed[CR_SIGN_SEED]);
void cr_sign(uint8_t sig[CR_SIG], const void *msg, size_t len, const uint8_t sk[CR_SIGN_SK]);
/** @return 0 when @p sig is a valid signature of @p msg by @p pk, ERR_AUTH otherwise. */
int cr_sign_verify(const uint8_t sig[CR_SIG], const void *msg, size_t len,
                   const uint8_t pk[CR_SIGN_PK]) WARN_UNUSED;

/* ---- key exchange: X25519 ------------------------------------------------------------------ */
#define CR_KX_PK 32u
#define CR_KX_SK 32u
#define CR_KX_SHARED 32u

void cr_kx_keypair(uint8_t pk[CR_KX_PK], uint8_t sk[CR_KX_SK]);
/** Public key of a secret scalar (used by known-answer tests and key reloads). */
void cr_kx_public(uint8_t pk[CR_KX_PK], const uint8_t sk[CR_KX_SK]);
/** Raw X25519 shared secret. Never use it as a key directly: feed it to cr_kdf() with the
 * handshake transcript.
 * @return 0, or ERR_AUTH when @p peer_pk is a low-order point (the result would be all zero). */
int cr_kx_shared(uint8_t out[CR_KX_SHARED], const uint8_t sk[CR_KX_SK],
                 const uint8_t peer_pk[CR_KX_PK]) WARN_UNUSED;

/* ---- key derivation ------------------------------------------------------------------------ */
#define CR_KEY 32u
/** Derive @p outlen (16..64) bytes from a 32-byte root key, a label naming the purpose
 * (domain separation; e.g. "psl-seal-v1") and an optional context (e.g. a transcript hash):
 * out = BLAKE2b-keyed(key, len(label) || label || context). */
void cr_kdf(uint8_t *out, size_t outlen, const uint8_t key[CR_KEY], const char *label,
            const void *ctx, size_t ctxlen);

/* ---- one-shot AEAD with random nonces (sealing, files) -------------------------------------- */
#define CR_BOX_NONCE 24u
#define CR_BOX_TAG 16u
#define CR_BOX_OVERHEAD (CR_BOX_NONCE + CR_BOX_TAG)
/** XChaCha20-Poly1305 with a fresh random nonce (libsodium's bytes; computed through libgcrypt's
 * ChaCha20-Poly1305, about 2.5x faster on large inputs). @p out must hold len + CR_BOX_OVERHEAD
 * bytes (nonce || ciphertext || tag). @p ad may be NULL when adlen is 0. */
void cr_box_seal(uint8_t *out, const uint8_t key[CR_KEY], const void *ad, size_t adlen,
                 const void *pt, size_t len);
/** Reverse of cr_box_seal. @p out must hold inlen - CR_BOX_OVERHEAD bytes.
 * @return 0, ERR_MALFORMED when inlen < CR_BOX_OVERHEAD (nothing written), ERR_AUTH when the tag
 * is wrong (then @p out's inlen - CR_BOX_OVERHEAD bytes are zeros). */
int cr_box_open(uint8_t *out, const uint8_t key[CR_KEY], const void *ad, size_t adlen,
                const uint8_t *in, size_t inlen) WARN_UNUSED;

/* ---- counter-nonce AEAD streams (secure channel) ------------------------------------------- */
#define CR_AEAD_XCHACHA 1u /* XChaCha20-Poly1305-IETF: always available */
#define CR_AEAD_AESGCM 2u  /* AES-256-GCM: only with hardware AES */
#define CR_STREAM_TAG 16u

/** Bit mask of the stream AEADs this CPU supports (always includes CR_AEAD_XCHACHA). */
unsigned cr_aead_supported(void);
/** The best algorithm in (@p peer_mask & cr_aead_supported()), or 0 if none. */
unsigned cr_aead_pick(unsigned peer_mask);
const char *cr_aead_name(unsigned alg);

typedef struct cr_stream cr_stream;
/** A one-direction stream: the key is copied into guarded memory. Free with cr_stream_free(). */
cr_stream *cr_stream_new(unsigned alg, const uint8_t key[CR_KEY]);
void cr_stream_free(cr_stream *s);
/** Sequence number the next seal will use / the next open expects. */
uint64_t cr_stream_seq(const cr_stream *s);
/** Encrypt the next message: nonce = the stream's own counter, which then advances.
 * @p out must hold len + CR_STREAM_TAG bytes. @param[out] seq the number given to it.
 * @return 0 or ERR_LIMIT when the counter is exhausted (2^64 - 1 messages). */
int cr_stream_seal(cr_stream *s, const void *ad, size_t adlen, const void *pt, size_t len,
                   uint8_t *out, uint64_t *seq) WARN_UNUSED;
/** Decrypt the message numbered @p seq, which must be exactly cr_stream_seq(s): anything else
 * is a replay or a reordering and returns ERR_INVALID without touching the stream. A wrong tag
 * returns ERR_AUTH. The counter advances only on success. @p out holds ctlen - CR_STREAM_TAG. */
int cr_stream_open(cr_stream *s, uint64_t seq, const void *ad, size_t adlen, const uint8_t *ct,
                   size_t ctlen, uint8_t *out) WARN_UNUSED;

/* ---- memory and small helpers -------------------------------------------------------------- */
/** Guarded, locked allocation for long-lived secrets (never NULL: aborts on failure). */
void *cr_secure_alloc(size_t n);
/** Wipes and frees memory from cr_secure_alloc. NULL is fine. */
void cr_secure_free(void *p);
void cr_memzero(void *p, size_t n);
/** Constant-time comparison: true when equal. */
bool cr_equal(const void *a, const void *b, size_t n);
void cr_random(void *buf, size_t n);
/** Lower-case hex of @p len bytes into @p out (2*len+1 bytes, NUL terminated). */
void cr_hex(char *out, const void *in, size_t len);
/** Parse exactly @p len bytes of hex (whitespace not allowed). 0 or ERR_MALFORMED. */
int cr_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen) WARN_UNUSED;

#endif
