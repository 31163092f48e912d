/*
 * tests/unit/crypto/test_crypto.c — crypto/ alone: strict base64url (RFC 4648 vectors, one spelling per
 * value), SHA-256 (FIPS 180-2 "abc"), P-256 keys (points, PEM, SPKI hash, save) and ES256 (sign →
 * verify, tampering, r/s ranges, high S, RFC 7515 A.3). The callers' policies on top (HMT1 low-S,
 * JOSE) are tested with their folders: test_qr_ecdsa.c, test_auth_wycheproof.c.
 */
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "tests/unit/unit.h"
#include "crypto/crypto.h"

static const uint8_t n_be[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};

/* S := n − S, computed independently of the library: the high-S twin of a low-S signature */
static void n_minus(uint8_t s[32])
{
    int borrow = 0;
    for (int i = 31; i >= 0; --i) {
        int d = n_be[i] - s[i] - borrow;
        borrow = d < 0;
        s[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static int decodes(const char *s)
{
    uint8_t out[64];
    return crypto_b64url_decode(out, sizeof(out), s, strlen(s)) >= 0;
}

/* ---- base64url -------------------------------------------------------------------------------- */

static void test_b64url_rfc4648(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}}; /* RFC 4648 §10, no padding */
    char out[32];
    uint8_t back[32];
    for (size_t i = 0; i != sizeof(v) / sizeof(v[0]); ++i) {
        size_t len = strlen(v[i].plain);
        assert_int_equal(crypto_b64url_encode(out, v[i].plain, len), strlen(v[i].enc));
        assert_int_equal(CRYPTO_B64URL_LEN(len), strlen(v[i].enc));
        assert_string_equal(out, v[i].enc);
        assert_int_equal(crypto_b64url_decode(back, sizeof(back), v[i].enc, strlen(v[i].enc)), (long)len);
        assert_memory_equal(back, v[i].plain, len);
    }
    /* the URL-safe alphabet: 62 is '-', 63 is '_' */
    assert_int_equal(crypto_b64url_encode(out, "\xfb\xff\xbf", 3), 4);
    assert_string_equal(out, "-_-_");
    assert_int_equal(crypto_b64url_encode(out, "\xfb\xff", 2), 3);
    assert_string_equal(out, "-_8");
}

static void test_b64url_round_trips(void **state)
{
    (void)state;
    uint8_t in[256], back[256];
    char enc[CRYPTO_B64URL_LEN(256) + 1];
    for (size_t i = 0; i != sizeof(in); ++i)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); ++len) {
        size_t n = crypto_b64url_encode(enc, in, len);
        assert_int_equal(n, CRYPTO_B64URL_LEN(len));
        assert_int_equal(strlen(enc), n);
        assert_int_equal(crypto_b64url_decode(back, len, enc, n), (long)len); /* exactly LEN bytes of room is enough */
        assert_memory_equal(back, in, len);
        if (len != 0)
            assert_int_equal(crypto_b64url_decode(back, len - 1, enc, n), -1); /* one byte less is not */
    }
}

static void test_b64url_strict(void **state)
{
    (void)state;
    assert_true(decodes("Zm9vYg"));
    assert_false(decodes("Zm9vYg==")); /* padding */
    assert_false(decodes("Zm9vYg="));
    assert_false(decodes("Zm9vYmE="));
    assert_false(decodes("===="));
    assert_false(decodes("Zm9v+g")); /* the standard alphabet's 62 ... */
    assert_false(decodes("Zm9v/g")); /* ... and 63 */
    assert_false(decodes("+/8"));
    assert_false(decodes("Z")); /* length ≡ 1 (mod 4) */
    assert_false(decodes("Zm9vY"));
    assert_false(decodes("Zm9vYmFyZ"));
    assert_false(decodes("Zm9vYh"));  /* non-zero unused bits: a second spelling of "foob" */
    assert_false(decodes("Zm9vYmF")); /* ... of "fooba" */
    assert_false(decodes("QR"));      /* "A" is "QQ" */
    assert_false(decodes("QUJ"));     /* "AB" is "QUI" */
    assert_true(decodes("QQ"));
    assert_true(decodes("QUI"));
    assert_false(decodes("Zm9 vYg")); /* white space anywhere */
    assert_false(decodes("Zm9vYg\n"));
    assert_false(decodes("Zm9vYg."));
    uint8_t out[8];
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "Zm9v\0A", 6), -1); /* NUL */
    assert_int_equal(crypto_b64url_decode(out, 4, "Zm9vYmFy", 8), -1);          /* 6 bytes do not fit in 4 */
    assert_int_equal(crypto_b64url_decode(out, 0, "", 0), 0);
}

/* ---- SHA-256 ---------------------------------------------------------------------------------- */

static void test_sha256(void **state)
{
    (void)state;
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                                      0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                                      0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    uint8_t d[CRYPTO_SHA256_LEN];
    assert_int_equal(crypto_sha256("abc", 3, d), 0);
    assert_memory_equal(d, abc, 32);
    assert_int_equal(crypto_sha256("", 0, d), 0);
    assert_memory_equal(d, empty, 32);
}

/* ---- ES256 ------------------------------------------------------------------------------------ */

static void test_es256_round_trip(void **state)
{
    (void)state;
    crypto_key_t *key = crypto_key_generate(), *pub;
    uint8_t sig[CRYPTO_ES256_SIG_LEN], bad[CRYPTO_ES256_SIG_LEN], point[CRYPTO_P256_POINT_LEN], x[32], y[32];
    static const char msg[] = "header.payload";
    assert_non_null(key);
    assert_true(crypto_key_has_private(key));
    crypto_key_point(key, point);
    crypto_key_xy(key, x, y);
    assert_non_null(pub = crypto_key_from_xy(x, y));
    assert_false(crypto_key_has_private(pub));
    for (int i = 0; i != 50; ++i) {
        assert_int_equal(crypto_es256_sign(key, msg, strlen(msg), sig), 0);
        assert_true(crypto_es256_is_low_s(sig)); /* we only ever write low S */
        assert_int_equal(crypto_es256_verify(key, msg, strlen(msg), sig, sizeof(sig)), 0);
        assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), sig, sizeof(sig)), 0);
        assert_int_equal(crypto_es256_verify_point(point, sizeof(point), msg, strlen(msg), sig, sizeof(sig)), 0);
    }
    /* tampering: the message, either half of the signature, the length */
    assert_int_equal(crypto_es256_verify(pub, "header.payloaD", 14, sig, sizeof(sig)), -1);
    for (size_t i = 0; i < sizeof(sig); i += 9) {
        memcpy(bad, sig, sizeof(sig));
        bad[i] ^= 0x01;
        assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), -1);
        assert_int_equal(crypto_es256_verify_point(point, sizeof(point), msg, strlen(msg), bad, sizeof(bad)), -1);
    }
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), sig, 63), -1);
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), sig, 65), -1);
    /* the high-S twin is the same ECDSA signature: plain ES256 accepts it (the policy is the caller's) */
    memcpy(bad, sig, sizeof(sig));
    n_minus(bad + 32);
    assert_false(crypto_es256_is_low_s(bad));
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), 0);
    /* r, s outside [1, n − 1] never reach OpenSSL */
    memcpy(bad, sig, sizeof(sig));
    memset(bad, 0, 32);
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), -1);
    memcpy(bad, sig, sizeof(sig));
    memset(bad + 32, 0, 32);
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), -1);
    memcpy(bad, n_be, 32);
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), -1);
    memcpy(bad, sig, 32);
    memcpy(bad + 32, n_be, 32);
    assert_int_equal(crypto_es256_verify(pub, msg, strlen(msg), bad, sizeof(bad)), -1);
    /* a public key cannot sign; another key does not verify */
    assert_int_equal(crypto_es256_sign(pub, msg, strlen(msg), bad), -1);
    crypto_key_t *other = crypto_key_generate();
    assert_int_equal(crypto_es256_verify(other, msg, strlen(msg), sig, sizeof(sig)), -1);
    crypto_key_free(other);
    crypto_key_free(pub);
    crypto_key_free(key);
}

/* RFC 7515 A.3: an ES256 JWS made elsewhere verifies with the JWK's x and y */
static void test_es256_rfc7515(void **state)
{
    (void)state;
    static const char jws[] =
        "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    uint8_t x[32], y[32], sig[CRYPTO_ES256_SIG_LEN];
    const char *dot = strrchr(jws, '.');
    assert_int_equal(crypto_b64url_decode(x, 32, "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", 43), 32);
    assert_int_equal(crypto_b64url_decode(y, 32, "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", 43), 32);
    assert_int_equal(crypto_b64url_decode(sig, sizeof(sig), dot + 1, strlen(dot + 1)), 64);
    crypto_key_t *key = crypto_key_from_xy(x, y);
    assert_non_null(key);
    assert_int_equal(crypto_es256_verify(key, jws, (size_t)(dot - jws), sig, sizeof(sig)), 0);
    assert_int_equal(crypto_es256_verify(key, jws, (size_t)(dot - jws) - 1, sig, sizeof(sig)), -1);
    crypto_key_free(key);
}

/* ---- keys ------------------------------------------------------------------------------------- */

static void test_points(void **state)
{
    (void)state;
    crypto_key_t *key = crypto_key_generate(), *a, *b;
    uint8_t c[CRYPTO_P256_POINT_LEN], full[CRYPTO_P256_POINT_FULL_LEN], x[32], y[32];
    crypto_key_point(key, c);
    crypto_key_xy(key, x, y);
    full[0] = 0x04;
    memcpy(full + 1, x, 32);
    memcpy(full + 33, y, 32);
    assert_non_null(a = crypto_key_from_point(c, sizeof(c)));
    assert_non_null(b = crypto_key_from_point(full, sizeof(full)));
    /* one SPKI hash whatever form the key came in */
    assert_memory_equal(crypto_key_spki_sha256(a), crypto_key_spki_sha256(key), 32);
    assert_memory_equal(crypto_key_spki_sha256(b), crypto_key_spki_sha256(key), 32);
    crypto_key_free(a);
    crypto_key_free(b);
    assert_null(crypto_key_from_point(c, 32));
    assert_null(crypto_key_from_point(full, 33)); /* 0x04 with a compressed length */
    full[64] ^= 1;                                /* off the curve */
    assert_null(crypto_key_from_point(full, sizeof(full)));
    assert_null(crypto_key_from_xy(x, x)); /* (x, x) is not a point, but with probability 2^-256 */
    memset(c + 1, 0xFF, 32);               /* x ≥ p */
    assert_null(crypto_key_from_point(c, sizeof(c)));
    crypto_key_free(key);
}

static char *pem_of(EVP_PKEY *pkey, int pub)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy;
    if (pub)
        PEM_write_bio_PUBKEY(bio, pkey);
    else
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    long n = BIO_get_mem_data(bio, &data);
    copy = strndup(data, (size_t)n);
    BIO_free(bio);
    return copy;
}

static void test_pem_and_spki(void **state)
{
    (void)state;
    crypto_key_t *key = crypto_key_generate(), *k;
    char *priv = pem_of(crypto_key_pkey(key), 0), *pub = pem_of(crypto_key_pkey(key), 1), err[128];
    uint8_t *der = NULL, digest[32];
    int dlen = i2d_PUBKEY(crypto_key_pkey(key), &der);
    EVP_Digest(der, (size_t)dlen, digest, NULL, EVP_sha256(), NULL);
    assert_memory_equal(crypto_key_spki_sha256(key), digest, 32); /* OpenSSL's own DER SPKI */
    OPENSSL_free(der);

    assert_non_null(k = crypto_key_from_pem(priv, strlen(priv), err, sizeof(err)));
    assert_true(crypto_key_has_private(k));
    assert_memory_equal(crypto_key_spki_sha256(k), digest, 32);
    crypto_key_free(k);
    assert_non_null(k = crypto_key_from_pem(pub, strlen(pub), err, sizeof(err)));
    assert_false(crypto_key_has_private(k));
    crypto_key_free(k);
    assert_non_null(k = crypto_key_from_private_pem(priv, strlen(priv), err, sizeof(err)));
    crypto_key_free(k);
    assert_null(crypto_key_from_private_pem(pub, strlen(pub), err, sizeof(err)));
    assert_string_equal(err, "not an unencrypted PEM private key");
    assert_null(crypto_key_from_pem("garbage", 7, err, sizeof(err)));
    assert_null(crypto_key_from_pem("garbage", 7, NULL, 0));

    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    char *other = pem_of(p384, 0);
    assert_null(crypto_key_from_pem(other, strlen(other), err, sizeof(err)));
    assert_string_equal(err, "not an EC P-256 key");
    free(other);
    EVP_PKEY_free(p384);
    free(priv);
    free(pub);
    crypto_key_free(key);
}

static void test_save(void **state)
{
    (void)state;
    char dir[] = "/tmp/hegate-crypto-XXXXXX", path[64], pem[1024];
    crypto_key_t *key = crypto_key_generate(), *pub, *back;
    uint8_t x[32], y[32], sig[CRYPTO_ES256_SIG_LEN];
    size_t len;
    struct stat st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    assert_int_equal(crypto_key_save_private_pem(key, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(crypto_key_save_private_pem(key, path), -1); /* never replaces a file */
    crypto_key_xy(key, x, y);
    pub = crypto_key_from_xy(x, y);
    assert_int_equal(crypto_key_save_private_pem(pub, path), -1);
    assert_int_equal(crypto_key_private_pem(pub, pem, sizeof(pem), &len), -1);
    assert_int_equal(crypto_key_private_pem(key, pem, 16, &len), -1); /* too small */
    assert_int_equal(crypto_key_private_pem(key, pem, sizeof(pem), &len), 0);
    assert_int_equal(strlen(pem), len);
    assert_non_null(back = crypto_key_from_private_pem(pem, len, NULL, 0));
    assert_int_equal(crypto_es256_sign(back, "m", 1, sig), 0);
    assert_int_equal(crypto_es256_verify(pub, "m", 1, sig, sizeof(sig)), 0);
    unlink(path);
    rmdir(dir);
    crypto_key_free(back);
    crypto_key_free(pub);
    crypto_key_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648), cmocka_unit_test(test_b64url_round_trips), cmocka_unit_test(test_b64url_strict),
        cmocka_unit_test(test_sha256),         cmocka_unit_test(test_es256_round_trip),   cmocka_unit_test(test_es256_rfc7515),
        cmocka_unit_test(test_points),         cmocka_unit_test(test_pem_and_spki),       cmocka_unit_test(test_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
