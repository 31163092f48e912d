/*
 * tests/unit/qr/test_ecdsa.c — P-256 keys and ECDSA: every Wycheproof P1363 vector, low-S policy,
 * SEC1 points, PEM files, key ids (checked against OpenSSL's own DER SubjectPublicKeyInfo).
 *
 * Vectors come from tests/testdata/wycheproof/ (a copy of the public Wycheproof files), or from
 * $HEGATE_TESTDATA/wycheproof/ when that is set. A missing file fails the test; it never skips.
 */
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "tests/unit/unit.h"
#include "qr/qr.h"

static const uint8_t n_be[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};

static json_t *load_vectors(const char *name)
{
    const char *env = getenv("HEGATE_TESTDATA");
    const char *dirs[] = {"tests/testdata", "../shared/testdata"};
    char path[1024];
    json_error_t err;
    json_t *j;
    if (env != NULL) {
        snprintf(path, sizeof(path), "%s/wycheproof/%s", env, name);
        return json_load_file(path, 0, &err);
    }
    for (size_t i = 0; i != 2; ++i) {
        snprintf(path, sizeof(path), "%s/wycheproof/%s", dirs[i], name);
        if ((j = json_load_file(path, 0, &err)) != NULL)
            return j;
    }
    return NULL;
}

static size_t unhex(const char *hex, uint8_t *out, size_t outsz)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= outsz);
    for (size_t i = 0; i != n; ++i) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* s > (n − 1) / 2, computed independently of the library: 2s > n − 1, i.e. 2s ≥ n. */
static int is_high_s(const uint8_t s[32])
{
    uint8_t twice[33];
    int carry = 0;
    for (int i = 31; i >= 0; --i) {
        int v = s[i] * 2 + carry;
        twice[i + 1] = (uint8_t)v;
        carry = v >> 8;
    }
    twice[0] = (uint8_t)carry;
    return twice[0] != 0 || memcmp(twice + 1, n_be, 32) >= 0;
}

static void n_minus(uint8_t s[32])
{
    int borrow = 0;
    for (int i = 31; i >= 0; --i) {
        int d = n_be[i] - s[i] - borrow;
        borrow = d < 0;
        s[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

typedef struct {
    size_t total, invalid_rejected, valid_accepted, valid_high_s_rejected, mismatches;
} counts_t;

/* One Wycheproof case: INVALID must be refused by both verifiers; VALID low-S accepted by both;
 * VALID high-S refused by qr_ecdsa_verify (our policy), accepted by crypto_es256_verify, and accepted
 * by qr_ecdsa_verify once normalized to (r, n − s). */
static void run_ecdsa_case(const qr_key_t *key, json_t *t, counts_t *c)
{
    uint8_t msg[4096], sig[256];
    size_t mlen = unhex(json_string_value(json_object_get(t, "msg")), msg, sizeof(msg));
    size_t slen = unhex(json_string_value(json_object_get(t, "sig")), sig, sizeof(sig));
    const char *result = json_string_value(json_object_get(t, "result"));
    int ours = qr_ecdsa_verify(key, msg, mlen, sig, slen) == 0, es256 = crypto_es256_verify(key, msg, mlen, sig, slen) == 0;
    int ok;
    ++c->total;
    if (strcmp(result, "invalid") == 0) {
        ok = !ours && !es256;
        c->invalid_rejected += ok;
    } else if (strcmp(result, "valid") == 0 && slen == 64 && is_high_s(sig + 32)) {
        n_minus(sig + 32);
        ok = !ours && es256 && qr_ecdsa_verify(key, msg, mlen, sig, slen) == 0;
        c->valid_high_s_rejected += ok;
    } else if (strcmp(result, "valid") == 0) {
        ok = ours && es256;
        c->valid_accepted += ok;
    } else {
        ok = 0; /* "acceptable" does not occur in this file; if it ever does, decide it here */
    }
    if (!ok) {
        ++c->mismatches;
        fprintf(stderr, "wycheproof tcId %lld (%s): ours=%d es256=%d\n", json_integer_value(json_object_get(t, "tcId")), result,
                ours, es256);
    }
}

/* The group's key, and its HMT1 key id checked against SHA-256 of the vector's own DER SPKI. */
static qr_key_t *group_key(json_t *g)
{
    uint8_t point[65], der[256], digest[32], kid[4];
    const char *hex = json_string_value(json_object_get(json_object_get(g, "publicKey"), "uncompressed"));
    size_t plen = unhex(hex, point, sizeof(point)),
           dlen = unhex(json_string_value(json_object_get(g, "publicKeyDer")), der, sizeof(der));
    qr_key_t *key = crypto_key_from_point(point, plen);
    assert_non_null(key);
    EVP_Digest(der, dlen, digest, NULL, EVP_sha256(), NULL);
    qr_key_id(key, kid);
    assert_memory_equal(kid, digest, 4);
    return key;
}

static void test_wycheproof_p1363(void **state)
{
    (void)state;
    json_t *root = load_vectors("ecdsa_secp256r1_sha256_p1363_test.json"), *g, *t;
    counts_t c = {0};
    size_t gi, ti;
    if (root == NULL)
        fail_msg("Wycheproof vectors not found (tests/testdata/wycheproof or $HEGATE_TESTDATA/wycheproof)");
    json_array_foreach(json_object_get(root, "testGroups"), gi, g)
    {
        qr_key_t *key = group_key(g);
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            run_ecdsa_case(key, t, &c);
        }
        crypto_key_free(key);
    }
    printf("wycheproof ecdsa_secp256r1_sha256_p1363: %zu cases: %zu invalid rejected, %zu valid low-S accepted, "
           "%zu valid high-S rejected by policy (accepted as ES256 and once normalized), %zu mismatches\n",
           c.total, c.invalid_rejected, c.valid_accepted, c.valid_high_s_rejected, c.mismatches);
    assert_int_equal(c.total, json_integer_value(json_object_get(root, "numberOfTests")));
    assert_int_equal(c.mismatches, 0);
    assert_int_equal(c.invalid_rejected + c.valid_accepted + c.valid_high_s_rejected, c.total);
    assert_true(c.valid_high_s_rejected > 0 && c.valid_accepted > 0 && c.invalid_rejected > 0);
    json_decref(root);
}

static void test_sign_is_low_s(void **state)
{
    (void)state;
    qr_key_t *key = crypto_key_generate();
    uint8_t sig[64], point[33];
    char msg[32];
    int high = 0;
    assert_non_null(key);
    crypto_key_point(key, point);
    for (int i = 0; i != 300; ++i) {
        snprintf(msg, sizeof(msg), "message %d", i);
        assert_int_equal(crypto_es256_sign(key, msg, strlen(msg), sig), 0);
        high |= is_high_s(sig + 32);
        assert_int_equal(qr_ecdsa_verify(key, msg, strlen(msg), sig, 64), 0);
        assert_int_equal(qr_ecdsa_verify_point(point, 33, msg, strlen(msg), sig, 64), 0);
        n_minus(sig + 32); /* the high-S twin: same signature to OpenSSL, refused by us */
        assert_int_equal(qr_ecdsa_verify(key, msg, strlen(msg), sig, 64), -1);
        assert_int_equal(crypto_es256_verify(key, msg, strlen(msg), sig, 64), 0);
    }
    assert_false(high);
    crypto_key_free(key);
}

static void test_signature_ranges(void **state)
{
    (void)state;
    qr_key_t *key = crypto_key_generate();
    uint8_t sig[64], bad[64];
    assert_int_equal(crypto_es256_sign(key, "m", 1, sig), 0);
    memcpy(bad, sig, 64);
    memset(bad, 0, 32); /* r = 0 */
    assert_int_equal(qr_ecdsa_verify(key, "m", 1, bad, 64), -1);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0, 32); /* s = 0 */
    assert_int_equal(qr_ecdsa_verify(key, "m", 1, bad, 64), -1);
    assert_int_equal(crypto_es256_verify(key, "m", 1, bad, 64), -1);
    memcpy(bad, n_be, 32); /* r = n */
    memcpy(bad + 32, sig + 32, 32);
    assert_int_equal(crypto_es256_verify(key, "m", 1, bad, 64), -1);
    memcpy(bad, sig, 32);
    memcpy(bad + 32, n_be, 32); /* s = n */
    assert_int_equal(crypto_es256_verify(key, "m", 1, bad, 64), -1);
    assert_int_equal(qr_ecdsa_verify(key, "m", 1, sig, 63), -1);
    assert_int_equal(qr_ecdsa_verify(key, "m", 1, sig, 65), -1);
    assert_int_equal(qr_ecdsa_verify(key, "n", 1, sig, 64), -1);
    assert_int_equal(qr_ecdsa_verify(key, "m", 1, sig, 64), 0);
    crypto_key_free(key);
}

static void test_points(void **state)
{
    (void)state;
    qr_key_t *key = crypto_key_generate(), *a, *b;
    uint8_t c[33], full[65], x[32], y[32], kid_a[4], kid_b[4];
    crypto_key_point(key, c);
    crypto_key_xy(key, x, y);
    full[0] = 4;
    memcpy(full + 1, x, 32);
    memcpy(full + 33, y, 32);
    assert_non_null(a = crypto_key_from_point(c, 33));
    assert_non_null(b = crypto_key_from_point(full, 65));
    assert_false(crypto_key_has_private(a));
    qr_key_id(a, kid_a);
    qr_key_id(b, kid_b);
    assert_memory_equal(kid_a, kid_b, 4);
    crypto_key_free(a);
    crypto_key_free(b);
    assert_null(crypto_key_from_point(c, 32));
    assert_null(crypto_key_from_point(full, 64));
    assert_null(crypto_key_from_point(full, 33)); /* 0x04 with a compressed length */
    c[0] = 0x05;
    assert_null(crypto_key_from_point(c, 33));
    full[64] ^= 1; /* off the curve */
    assert_null(crypto_key_from_point(full, 65));
    memset(full + 1, 0, 64);
    assert_null(crypto_key_from_point(full, 65));
    {
        uint8_t inf = 0;
        assert_null(crypto_key_from_point(&inf, 1));
    }
    /* about half of all x have no point: find one and check it is refused */
    c[0] = 0x02;
    int refused = 0;
    for (int i = 0; i != 64 && !refused; ++i) {
        c[32] = (uint8_t)i;
        qr_key_t *k = crypto_key_from_point(c, 33);
        refused = k == NULL;
        crypto_key_free(k);
    }
    assert_true(refused);
    memset(c + 1, 0xFF, 32); /* x ≥ p */
    assert_null(crypto_key_from_point(c, 33));
    crypto_key_free(key);
}

static char *pem_of(EVP_PKEY *pkey, int which) /* 0 PKCS#8, 1 SEC1 "EC PRIVATE KEY", 2 SPKI, 3 encrypted PKCS#8 */
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy;
    long n;
    if (which == 0)
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    else if (which == 1)
        PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
    else if (which == 2)
        PEM_write_bio_PUBKEY(bio, pkey);
    else
        PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"passphrase");
    n = BIO_get_mem_data(bio, &data);
    copy = strndup(data, (size_t)n);
    BIO_free(bio);
    return copy;
}

static void test_pem_and_key_ids(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    uint8_t *der = NULL, digest[32], kid[4];
    char jwk_kid[12], expect_kid[12];
    int dlen = i2d_PUBKEY(pkey, &der);
    EVP_Digest(der, (size_t)dlen, digest, NULL, EVP_sha256(), NULL);
    crypto_b64url_encode(expect_kid, digest, 8);
    for (int which = 0; which != 3; ++which) {
        char *pem = pem_of(pkey, which);
        qr_key_t *k = crypto_key_from_pem(pem, strlen(pem), NULL, 0);
        assert_non_null(k);
        assert_int_equal(crypto_key_has_private(k), which != 2);
        qr_key_id(k, kid);
        assert_memory_equal(kid, digest, 4); /* SPEC §7.1: SHA-256(DER SPKI)[0..4] */
        qr_key_jwk_kid(k, jwk_kid);
        assert_string_equal(jwk_kid, expect_kid); /* SPEC §6 */
        crypto_key_free(k);
        free(pem);
    }
    {
        char *pem = pem_of(pkey, 3); /* encrypted: refused, and never a passphrase prompt */
        assert_null(crypto_key_from_pem(pem, strlen(pem), NULL, 0));
        free(pem);
    }
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    pkey = EVP_EC_gen("P-384");
    {
        char *pem = pem_of(pkey, 0);
        assert_null(crypto_key_from_pem(pem, strlen(pem), NULL, 0)); /* another curve */
        free(pem);
    }
    EVP_PKEY_free(pkey);
    assert_null(crypto_key_from_pem("garbage", 7, NULL, 0));
    assert_null(qr_key_load_pem_file("/nonexistent/key.pem"));
}

static void test_save_and_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/hegate-qr-ecdsa-XXXXXX", path[64];
    qr_key_t *key = crypto_key_generate(), *back;
    uint8_t a[33], b[33], sig[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/device.pem", dir);
    assert_int_equal(crypto_key_save_private_pem(key, path), 0);
    assert_int_equal(crypto_key_save_private_pem(key, path), -1); /* never overwrites */
    assert_non_null(back = qr_key_load_pem_file(path));
    assert_true(crypto_key_has_private(back));
    crypto_key_point(key, a);
    crypto_key_point(back, b);
    assert_memory_equal(a, b, 33);
    assert_int_equal(crypto_es256_sign(back, "x", 1, sig), 0);
    assert_int_equal(qr_ecdsa_verify(key, "x", 1, sig, 64), 0);
    {
        qr_key_t *pub = crypto_key_from_point(a, 33);
        assert_int_equal(crypto_es256_sign(pub, "x", 1, sig), -1); /* no private half */
        assert_int_equal(crypto_key_save_private_pem(pub, path), -1);
        crypto_key_free(pub);
    }
    unlink(path);
    rmdir(dir);
    crypto_key_free(key);
    crypto_key_free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wycheproof_p1363), cmocka_unit_test(test_sign_is_low_s),   cmocka_unit_test(test_signature_ranges),
        cmocka_unit_test(test_points),           cmocka_unit_test(test_pem_and_key_ids), cmocka_unit_test(test_save_and_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
