/* Unit tests of src/crypto: known-answer vectors from the RFCs and drafts (BLAKE2b RFC 7693,
 * Ed25519 RFC 8032, X25519 RFC 7748, XChaCha20-Poly1305 draft-irtf-cfrg-xchacha A.3.1,
 * AES-256-GCM from the GCM specification's test case 14), then the misuse-resistance
 * properties: streams reject replays, reordering and tampering without advancing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/err.h"
#include "crypto/crypto.h"

static void unhex(uint8_t *out, size_t len, const char *hex) {
    assert_int_equal(cr_unhex(out, len, hex, strlen(hex)), 0);
}

static void assert_hex(const uint8_t *got, size_t len, const char *hex) {
    char *s = malloc(2 * len + 1);
    cr_hex(s, got, len);
    assert_string_equal(s, hex);
    free(s);
}

static void test_blake2b_rfc7693(void **state) {
    (void)state;
    uint8_t out[64];
    cr_hash_ex(out, 64, NULL, 0, "abc", 3);
    assert_hex(out, 64,
               "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
               "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
    /* incremental == one shot */
    cr_hash_state st;
    uint8_t a[32], b[32];
    cr_hash_init(&st, 32);
    cr_hash_update(&st, "a", 1);
    cr_hash_update(&st, "bc", 2);
    cr_hash_final(&st, a);
    cr_hash(b, "abc", 3);
    assert_memory_equal(a, b, 32);
}

static void test_ed25519_rfc8032(void **state) {
    (void)state;
    static const struct {
        const char *seed, *pk, *msg, *sig;
    } v[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
         "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
         "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        uint8_t seed[32], pk[32], sk[64], sig[64], msg[8];
        size_t ml = strlen(v[i].msg) / 2;
        unhex(seed, 32, v[i].seed);
        if (ml)
            unhex(msg, ml, v[i].msg);
        cr_sign_seed_keypair(pk, sk, seed);
        assert_hex(pk, 32, v[i].pk);
        cr_sign(sig, msg, ml, sk);
        assert_hex(sig, 64, v[i].sig);
        assert_int_equal(cr_sign_verify(sig, msg, ml, pk), 0);
        sig[5] ^= 1;
        assert_int_equal(cr_sign_verify(sig, msg, ml, pk), ERR_AUTH);
    }
}

static void test_x25519_rfc7748(void **state) {
    (void)state;
    uint8_t a[32], b[32], apk[32], bpk[32], s1[32], s2[32];
    unhex(a, 32, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    unhex(b, 32, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    cr_kx_public(apk, a);
    cr_kx_public(bpk, b);
    assert_hex(apk, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_hex(bpk, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_int_equal(cr_kx_shared(s1, a, bpk), 0);
    assert_int_equal(cr_kx_shared(s2, b, apk), 0);
    assert_hex(s1, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_memory_equal(s1, s2, 32);
    /* a low-order point (zero) is refused */
    uint8_t zero[32] = {0};
    assert_int_equal(cr_kx_shared(s1, a, zero), ERR_AUTH);
}

static void test_xchacha_draft_vector(void **state) {
    (void)state;
    /* cr_box layout is nonce || ciphertext || tag: feed the draft's vector through cr_box_open. */
    static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
                             "one tip for the future, sunscreen would be it.";
    static const char ct_hex[] =
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f"
        "4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f"
        "76b2383565d3fff921f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780acf49";
    uint8_t key[32], ad[12], in[24 + 130], out[130];
    size_t ptl = strlen(pt), ctl = strlen(ct_hex) / 2;
    assert_int_equal(ctl, ptl + 16);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x80 + i);
    for (int i = 0; i < 24; i++)
        in[i] = (uint8_t)(0x40 + i);
    unhex(ad, 12, "50515253c0c1c2c3c4c5c6c7");
    unhex(in + 24, ctl, ct_hex);
    assert_int_equal(cr_box_open(out, key, ad, 12, in, 24 + ctl), 0);
    assert_memory_equal(out, pt, ptl);
    in[30] ^= 0x40;
    assert_int_equal(cr_box_open(out, key, ad, 12, in, 24 + ctl), ERR_AUTH);
    assert_int_equal(cr_box_open(out, key, ad, 12, in, 10), ERR_MALFORMED);
}

static void test_box_roundtrip_random_nonce(void **state) {
    (void)state;
    uint8_t key[32], a[64], b[64], out[24];
    cr_random(key, 32);
    cr_box_seal(a, key, "ad", 2, "secret data 123!!!!!!!!", 24);
    cr_box_seal(b, key, "ad", 2, "secret data 123!!!!!!!!", 24);
    assert_memory_not_equal(a, b, 24 + 24 + 16); /* fresh nonce each time */
    assert_int_equal(cr_box_open(out, key, "ad", 2, a, 64), 0);
    assert_memory_equal(out, "secret data 123!!!!!!!!", 24);
    assert_int_equal(cr_box_open(out, key, "AD", 2, a, 64), ERR_AUTH); /* AD is bound */
}

/* cr_box computes XChaCha20-Poly1305 through libgcrypt; libsodium's own implementation must
 * accept its boxes and the other way round, at sizes around libgcrypt's block and AVX2 strides.
 * A failed open leaves zeros, never unauthenticated plaintext. */
static void test_box_matches_libsodium(void **state) {
    (void)state;
    static const size_t sizes[] = {0,  1,   15,  16,   17,   63,    64,
                                   65, 255, 256, 1000, 4103, 65536, 1048579};
    uint8_t key[32], ad[7] = {1, 2, 3, 4, 5, 6, 7};
    cr_random(key, sizeof key);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *pt = malloc(n + 1), *box = malloc(n + CR_BOX_OVERHEAD), *out = malloc(n + 1);
        assert_non_null(pt);
        assert_non_null(box);
        assert_non_null(out);
        cr_random(pt, n + 1);
        cr_box_seal(box, key, ad, sizeof ad, pt, n);
        unsigned long long ol = 0;
        assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                             out, &ol, NULL, box + 24, n + 16, ad, sizeof ad, box, key),
                         0);
        assert_int_equal(ol, n);
        assert_memory_equal(out, pt, n);
        randombytes_buf(box, 24);
        crypto_aead_xchacha20poly1305_ietf_encrypt(box + 24, NULL, pt, n, ad, sizeof ad, NULL, box,
                                                   key);
        memset(out, 0xaa, n + 1);
        assert_int_equal(cr_box_open(out, key, ad, sizeof ad, box, n + CR_BOX_OVERHEAD), 0);
        assert_memory_equal(out, pt, n);
        box[24 + n / 2] ^= 1; /* the tag when n is 0, else the ciphertext */
        memset(out, 0xaa, n + 1);
        assert_int_equal(cr_box_open(out, key, ad, sizeof ad, box, n + CR_BOX_OVERHEAD), ERR_AUTH);
        for (size_t j = 0; j < n; j++)
            assert_int_equal(out[j], 0);
        assert_int_equal(out[n], 0xaa); /* nothing past the plaintext's length */
        free(pt);
        free(box);
        free(out);
    }
}

static void test_aesgcm_stream_kat(void **state) {
    (void)state;
    if (!(cr_aead_supported() & CR_AEAD_AESGCM)) {
        skip(); /* no AES-NI on this CPU: XChaCha20 is used instead, tested below */
        return;
    }
    uint8_t key[32] = {0}, pt[16] = {0}, ct[32];
    uint64_t seq = 99;
    cr_stream *s = cr_stream_new(CR_AEAD_AESGCM, key);
    assert_int_equal(cr_stream_seal(s, NULL, 0, pt, 16, ct, &seq), 0);
    assert_int_equal(seq, 0); /* counter 0 -> all-zero 96-bit IV: the GCM spec's test case 14 */
    assert_hex(ct, 32, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    cr_stream_free(s);
}

static void stream_props(unsigned alg) {
    uint8_t key[32], ct[3][32], out[16];
    cr_random(key, 32);
    cr_stream *tx = cr_stream_new(alg, key), *rx = cr_stream_new(alg, key);
    uint64_t seq[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(cr_stream_seal(tx, "h", 1, "0123456789abcde", 16, ct[i], &seq[i]), 0);
    assert_int_equal(seq[2], 2);
    assert_memory_not_equal(ct[0], ct[1], 32); /* same plaintext, different nonce */
    /* reordered: message 1 before 0 is refused, stream unchanged */
    assert_int_equal(cr_stream_open(rx, 1, "h", 1, ct[1], 32, out), ERR_INVALID);
    assert_int_equal(cr_stream_seq(rx), 0);
    /* tampered: refused, stream unchanged */
    ct[0][3] ^= 1;
    memset(out, 0x77, sizeof out);
    assert_int_equal(cr_stream_open(rx, 0, "h", 1, ct[0], 32, out), ERR_AUTH);
    for (size_t i = 0; i < sizeof out; i++) /* no plaintext left behind, whatever the AEAD */
        assert_true(out[i] == 0x77 || out[i] == 0);
    assert_memory_not_equal(out, "0123456789abcde", 16);
    ct[0][3] ^= 1;
    assert_int_equal(cr_stream_open(rx, 0, "x", 1, ct[0], 32, out), ERR_AUTH); /* AD bound */
    assert_memory_not_equal(out, "0123456789abcde", 16);
    assert_int_equal(cr_stream_open(rx, 0, "h", 1, ct[0], 32, out), 0);
    assert_memory_equal(out, "0123456789abcde", 16);
    /* replayed: refused */
    assert_int_equal(cr_stream_open(rx, 0, "h", 1, ct[0], 32, out), ERR_INVALID);
    /* a message sealed for number 1 cannot pass as number 2 (nonce bound) */
    assert_int_equal(cr_stream_open(rx, 1, "h", 1, ct[1], 32, out), 0);
    assert_int_equal(cr_stream_open(rx, 2, "h", 1, ct[1], 32, out), ERR_AUTH);
    assert_int_equal(cr_stream_open(rx, 2, "h", 1, ct[2], 32, out), 0);
    cr_stream_free(tx);
    cr_stream_free(rx);
}

static void test_stream_xchacha(void **state) {
    (void)state;
    stream_props(CR_AEAD_XCHACHA);
    /* the bytes are libsodium's XChaCha20-Poly1305 under the counter nonce (LE, zero padded) */
    uint8_t key[32], out[300 + 16], want[300 + 16], pt[300], nonce[24] = {0};
    cr_random(key, sizeof key);
    cr_random(pt, sizeof pt);
    cr_stream *st = cr_stream_new(CR_AEAD_XCHACHA, key);
    for (uint8_t seq = 0; seq < 3; seq++) {
        uint64_t got;
        assert_int_equal(cr_stream_seal(st, "ad", 2, pt, sizeof pt, out, &got), 0);
        assert_int_equal(got, seq);
        nonce[0] = seq;
        crypto_aead_xchacha20poly1305_ietf_encrypt(want, NULL, pt, sizeof pt, (const uint8_t *)"ad",
                                                   2, NULL, nonce, key);
        assert_memory_equal(out, want, sizeof out);
    }
    cr_stream_free(st);
}

static void test_stream_best(void **state) {
    (void)state;
    unsigned alg = cr_aead_pick(CR_AEAD_XCHACHA | CR_AEAD_AESGCM);
    assert_true(alg == CR_AEAD_XCHACHA || alg == CR_AEAD_AESGCM);
    assert_int_equal(cr_aead_pick(CR_AEAD_XCHACHA), CR_AEAD_XCHACHA);
    assert_int_equal(cr_aead_pick(0), 0);
    stream_props(alg);
}

static void test_kdf_and_helpers(void **state) {
    (void)state;
    uint8_t root[32] = {1}, a[32], b[32], c[32];
    cr_kdf(a, 32, root, "psl-a", "ctx", 3);
    cr_kdf(b, 32, root, "psl-b", "ctx", 3);
    cr_kdf(c, 32, root, "psl-a", "ctx", 3);
    assert_memory_not_equal(a, b, 32);
    assert_memory_equal(a, c, 32);
    /* label/context boundary is unambiguous: ("ab","c") != ("a","bc") */
    cr_kdf(a, 32, root, "ab", "c", 1);
    cr_kdf(b, 32, root, "a", "bc", 2);
    assert_memory_not_equal(a, b, 32);
    assert_true(cr_equal("abc", "abc", 3));
    assert_false(cr_equal("abc", "abd", 3));
    uint8_t x[2];
    assert_int_equal(cr_unhex(x, 2, "zz00", 4), ERR_MALFORMED);
    assert_int_equal(cr_unhex(x, 2, "0a0", 3), ERR_MALFORMED);
    assert_int_equal(cr_unhex(x, 2, "0aff", 4), 0);
    assert_int_equal(x[1], 0xff);
    uint8_t *sec = cr_secure_alloc(100);
    memset(sec, 7, 100);
    cr_secure_free(sec);
    cr_memzero(root, 32);
    assert_int_equal(root[0], 0);
}

int main(void) {
    if (cr_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blake2b_rfc7693),
        cmocka_unit_test(test_ed25519_rfc8032),
        cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_xchacha_draft_vector),
        cmocka_unit_test(test_box_roundtrip_random_nonce),
        cmocka_unit_test(test_box_matches_libsodium),
        cmocka_unit_test(test_aesgcm_stream_kat),
        cmocka_unit_test(test_stream_xchacha),
        cmocka_unit_test(test_stream_best),
        cmocka_unit_test(test_kdf_and_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
