/*
 * tests/unit/crypto/test_sm2.c — crypto/sm2.c against what nobody here wrote: the SM3 examples of
 * GB/T 32905-2016 (Appendix A: "abc", and "abcd" × 16), OpenSSL's own published SM2 verification vectors
 * (test/recipes/30-test_evp_data/evppkey_sm2.txt: key SM2_key1, two SM3 Verify cases), and round trips
 * with the GM/T 0009 default signer ID; tampered messages, another ID, r or s out of range, points off the
 * curve and keys of another curve are refused.
 */
#include "tests/unit/unit.h"
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include "crypto/crypto.h"

static void hex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        sscanf(h + 2 * i, "%2hhx", &out[i]);
}

static void test_sm3_gbt32905_examples(void **state)
{
    uint8_t md[CRYPTO_SM3_LEN], want[CRYPTO_SM3_LEN];
    assert_int_equal(crypto_sm3("abc", 3, md), 0);
    hex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0", want, 32);
    assert_memory_equal(md, want, 32);
    char m[65] = "";
    for (int i = 0; i != 16; ++i)
        strcat(m, "abcd");
    assert_int_equal(crypto_sm3(m, 64, md), 0);
    hex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732", want, 32);
    assert_memory_equal(md, want, 32);
}

/* OpenSSL's SM2_key1 and its SM3 Verify vectors (DER signatures over a given digest e) */
static const char key1_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQg0JFWczAXva2An9m7\n"
                               "2MaT9gIwWTFptvlKrxyO4TjMmbWhRANCAAQ5OirZ4n5DrKqrhaGdO4VZHhRAYVcX\n"
                               "Wt3Te/d/8Mr57Tf886i09VwDhSMmH8pmNq/mp6+ioUgqYG9cs6GLLioe\n"
                               "-----END PRIVATE KEY-----\n";
static const struct {
    const char *e, *der;
} openssl_vectors[] = {
    {"D7AD397F6FFA5D4F7F11E7217F241607DC30618C236D2C09C1B9EA8FDADEE2E8",
     "3046022100AB1DB64DE7C40EDBDE6651C9B8EBDB804673DB836E5D5C7FE15DCF9ED2725037022100EBA714451FF69B0BB930B379E192E7CD5FA6E3C41C7FB"
     "D8303B799AB54A54621"},
    {"B1139602C6ECC9E15E2F3F9C635A1AFE737058BC15387479C1EA0D0B3D90E9E5",
     "3045022100E6E0414EBD3A656C35602AF14AB20287DBF30D57AF75C49A188ED4B42391F22402202F54F277C606F4605E1CE9514947FFDDF94C67A539804A4"
     "ED17F852288BDBE2E"},
};

static void der_to_raw(const char *derhex, uint8_t raw[64])
{
    uint8_t der[80];
    size_t n = strlen(derhex) / 2;
    hex(derhex, der, n);
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(s);
    BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
    ECDSA_SIG_free(s);
}

static void test_openssl_sm2_vectors_verify(void **state)
{
    crypto_sm2_key_t *k = crypto_sm2_key_from_pem(key1_pem, strlen(key1_pem));
    assert_non_null(k);
    assert_true(crypto_sm2_key_has_private(k));
    for (size_t i = 0; i != sizeof(openssl_vectors) / sizeof(openssl_vectors[0]); ++i) {
        uint8_t e[32], sig[64];
        hex(openssl_vectors[i].e, e, 32);
        der_to_raw(openssl_vectors[i].der, sig);
        assert_int_equal(crypto_sm2_verify_digest(k, e, sig), 0);
        e[31] ^= 1; /* another digest */
        assert_int_equal(crypto_sm2_verify_digest(k, e, sig), -1);
        e[31] ^= 1;
        sig[63] ^= 1; /* another s */
        assert_int_equal(crypto_sm2_verify_digest(k, e, sig), -1);
    }
    /* the vectors' public half, as a point, verifies them too */
    uint8_t pt[CRYPTO_SM2_POINT_LEN];
    assert_int_equal(crypto_sm2_key_point(k, pt), 0);
    crypto_sm2_key_t *pub = crypto_sm2_key_from_point(pt, sizeof(pt));
    assert_non_null(pub);
    assert_false(crypto_sm2_key_has_private(pub));
    uint8_t e[32], sig[64];
    hex(openssl_vectors[0].e, e, 32);
    der_to_raw(openssl_vectors[0].der, sig);
    assert_int_equal(crypto_sm2_verify_digest(pub, e, sig), 0);
    crypto_sm2_key_free(pub);
    crypto_sm2_key_free(k);
}

static void test_sign_verify_with_the_default_id(void **state)
{
    crypto_sm2_key_t *k = crypto_sm2_key_generate();
    assert_non_null(k);
    static const char msg[] = "HMT1 suite 0x02: the signed bytes of a city code";
    const char *id = CRYPTO_SM2_DEFAULT_ID;
    uint8_t sig[64], sig2[64];
    assert_int_equal(crypto_sm2_sign(k, id, strlen(id), msg, sizeof(msg), sig), 0);
    assert_int_equal(crypto_sm2_verify(k, id, strlen(id), msg, sizeof(msg), sig), 0);
    assert_int_equal(crypto_sm2_sign(k, id, strlen(id), msg, sizeof(msg), sig2), 0);
    assert_memory_not_equal(sig, sig2, 64); /* randomised k */
    assert_int_equal(crypto_sm2_verify(k, id, strlen(id), msg, sizeof(msg) - 1, sig), -1);  /* another message */
    assert_int_equal(crypto_sm2_verify(k, "1234567812345679", 16, msg, sizeof(msg), sig), -1); /* another ID: another Z */
    /* through the public point, compressed and uncompressed */
    uint8_t pt[CRYPTO_SM2_POINT_LEN];
    assert_int_equal(crypto_sm2_key_point(k, pt), 0);
    assert_true(pt[0] == 0x02 || pt[0] == 0x03);
    crypto_sm2_key_t *pub = crypto_sm2_key_from_point(pt, sizeof(pt));
    assert_non_null(pub);
    assert_int_equal(crypto_sm2_verify(pub, id, strlen(id), msg, sizeof(msg), sig), 0);
    assert_int_equal(crypto_sm2_sign(pub, id, strlen(id), msg, sizeof(msg), sig2), -1); /* no private key */
    /* r or s zero, or all ones (≥ n): refused */
    uint8_t bad[64];
    memcpy(bad, sig, 64);
    memset(bad, 0, 32);
    assert_int_equal(crypto_sm2_verify(pub, id, strlen(id), msg, sizeof(msg), bad), -1);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0xff, 32);
    assert_int_equal(crypto_sm2_verify(pub, id, strlen(id), msg, sizeof(msg), bad), -1);
    memset(bad, 0, 64);
    assert_int_equal(crypto_sm2_verify(pub, id, strlen(id), msg, sizeof(msg), bad), -1);
    /* the private key survives PEM */
    char pem[1024];
    size_t len;
    assert_int_equal(crypto_sm2_key_private_pem(k, pem, sizeof(pem), &len), 0);
    crypto_sm2_key_t *again = crypto_sm2_key_from_pem(pem, len);
    assert_non_null(again);
    assert_int_equal(crypto_sm2_sign(again, id, strlen(id), msg, sizeof(msg), sig2), 0);
    assert_int_equal(crypto_sm2_verify(pub, id, strlen(id), msg, sizeof(msg), sig2), 0);
    crypto_sm2_key_free(again);
    crypto_sm2_key_free(pub);
    crypto_sm2_key_free(k);
}

static void test_points_and_keys_that_are_not_sm2(void **state)
{
    uint8_t pt[CRYPTO_SM2_POINT_LEN];
    memset(pt, 0, sizeof(pt));
    pt[0] = 0x02;
    pt[32] = 5; /* x = 5: no point of the SM2 curve has it (checked by decompression) */
    assert_null(crypto_sm2_key_from_point(pt, sizeof(pt)));
    pt[0] = 0x05;
    assert_null(crypto_sm2_key_from_point(pt, sizeof(pt)));
    assert_null(crypto_sm2_key_from_point(pt, 32));
    /* a P-256 key is not an SM2 key */
    crypto_key_t *p256 = crypto_key_generate();
    char pem[1024];
    size_t len;
    assert_int_equal(crypto_key_private_pem(p256, pem, sizeof(pem), &len), 0);
    assert_null(crypto_sm2_key_from_pem(pem, len));
    crypto_key_free(p256);
    assert_null(crypto_sm2_key_from_pem("garbage", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sm3_gbt32905_examples),
        cmocka_unit_test(test_openssl_sm2_vectors_verify),
        cmocka_unit_test(test_sign_verify_with_the_default_id),
        cmocka_unit_test(test_points_and_keys_that_are_not_sm2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
