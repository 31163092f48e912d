/*
 * tests/unit/qr/test_base45.c — Base45 (RFC 9285 vectors and refusals) and strict base64url.
 */
#include "tests/unit/unit.h"
#include "qr/qr.h"

static void assert_b45(const char *plain, const char *encoded)
{
    char out[128];
    uint8_t back[128];
    size_t n;
    assert_int_equal(qr_base45_encode((const uint8_t *)plain, strlen(plain), out, sizeof(out), &n), 0);
    assert_string_equal(out, encoded);
    assert_int_equal(n, strlen(encoded));
    assert_int_equal(QR_BASE45_ENCODED_LEN(strlen(plain)), n);
    assert_int_equal(qr_base45_decode(encoded, strlen(encoded), back, sizeof(back), &n), 0);
    assert_int_equal(n, strlen(plain));
    assert_memory_equal(back, plain, n);
}

static void test_rfc9285_vectors(void **state)
{
    (void)state;
    assert_b45("AB", "BB8");
    assert_b45("Hello!!", "%69 VD92EX0");
    assert_b45("base-45", "UJCLQE7W581");
    assert_b45("ietf!", "QED8WEX0");
    assert_b45("", "");
}

static int b45_decodes(const char *s)
{
    uint8_t out[64];
    size_t n;
    return qr_base45_decode(s, strlen(s), out, sizeof(out), &n) == 0;
}

static void test_base45_refusals(void **state)
{
    (void)state;
    assert_true(b45_decodes("QED8WEX0"));
    assert_false(b45_decodes("qED8WEX0")); /* lower case is not in the alphabet */
    assert_false(b45_decodes("QED8WEX"));  /* length ≡ 1 (mod 3) */
    assert_false(b45_decodes("Q"));
    assert_false(b45_decodes("GGW")); /* 16 + 16·45 + 32·2025 = 65536 > 65535 */
    assert_true(b45_decodes("FGW"));  /* 15 + 16·45 + 32·2025 = 65535 */
    assert_false(b45_decodes(":::"));
    assert_false(b45_decodes("QEDW6")); /* final pair W,6: 32 + 6·45 = 302 > 255 */
    assert_true(b45_decodes("QEDU5"));  /* U,5: 30 + 5·45 = 255 */
    assert_false(b45_decodes("QEDV5")); /* V,5: 31 + 5·45 = 256 */
    assert_false(b45_decodes("QE\n"));
    assert_false(b45_decodes("QE#"));
    {
        uint8_t out[8];
        assert_int_equal(qr_base45_decode("QE\0", 3, out, sizeof(out), NULL), -1); /* NUL is not a digit */
        assert_int_equal(qr_base45_decode("QED8WEX0", 8, out, 4, NULL), -1);       /* needs 5 bytes */
        assert_int_equal(qr_base45_decode("QED8WEX0", 8, out, 5, NULL), 0);
    }
}

static void test_base45_every_byte(void **state)
{
    (void)state;
    uint8_t in[256], back[256];
    char enc[QR_BASE45_ENCODED_LEN(256) + 1];
    size_t n;
    for (int i = 0; i != 256; ++i)
        in[i] = (uint8_t)(255 - i);
    for (size_t len = 0; len <= 256; len += 1) {
        assert_int_equal(qr_base45_encode(in, len, enc, sizeof(enc), &n), 0);
        assert_int_equal(n, QR_BASE45_ENCODED_LEN(len));
        assert_int_equal(qr_base45_decode(enc, n, back, sizeof(back), &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, in, len);
    }
    assert_int_equal(qr_base45_encode(in, 4, enc, 6, &n), -1); /* 6 characters need 7 bytes with the NUL */
    assert_int_equal(qr_base45_encode(in, 4, enc, 7, &n), 0);
}

static void test_b64url(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    char out[32];
    uint8_t back[32];
    long n;
    for (size_t i = 0; i != sizeof(v) / sizeof(v[0]); ++i) {
        assert_int_equal(crypto_b64url_encode(out, v[i].plain, strlen(v[i].plain)), strlen(v[i].enc));
        assert_string_equal(out, v[i].enc);
        assert_true((n = crypto_b64url_decode(back, sizeof(back), v[i].enc, strlen(v[i].enc))) >= 0);
        assert_int_equal(n, strlen(v[i].plain));
        assert_memory_equal(back, v[i].plain, (size_t)n);
    }
    {
        const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
        assert_int_equal(crypto_b64url_encode(out, bytes, 3), 4);
        assert_string_equal(out, "-_-_"); /* the URL-safe alphabet */
    }
}

static int b64_decodes(const char *s)
{
    uint8_t out[64];
    return crypto_b64url_decode(out, sizeof(out), s, strlen(s)) >= 0;
}

static void test_b64url_strict(void **state)
{
    (void)state;
    assert_true(b64_decodes("Zm9vYg"));
    assert_false(b64_decodes("Zm9vYg==")); /* no padding */
    assert_false(b64_decodes("Zm9vYg="));
    assert_false(b64_decodes("Zm9vY"));   /* length ≡ 1 (mod 4) */
    assert_false(b64_decodes("Zm9vYh"));  /* unused bits set: a second spelling of "foob" */
    assert_false(b64_decodes("Zm9vYmF")); /* ... of "fooba" */
    assert_true(b64_decodes("Zm9vYmE"));
    assert_false(b64_decodes("Zm9v+g")); /* standard alphabet */
    assert_false(b64_decodes("Zm9v/g"));
    assert_false(b64_decodes("Zm9 vYg"));
    assert_false(b64_decodes("Zm9vYg\n"));
    assert_false(b64_decodes("Zm9vYg."));
    {
        uint8_t out[4];
        assert_int_equal(crypto_b64url_decode(out, 4, "Zm9vYmFy", 8), -1); /* 6 bytes do not fit */
        assert_int_equal(crypto_b64url_decode(out, 4, "Zm9v\0A", 6), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc9285_vectors), cmocka_unit_test(test_base45_refusals), cmocka_unit_test(test_base45_every_byte),
        cmocka_unit_test(test_b64url),          cmocka_unit_test(test_b64url_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
