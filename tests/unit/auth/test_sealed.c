/*
 * tests/unit/auth/test_sealed.c — auth/sealed.c: AES-256-GCM sealing of personal data (round trip;
 * a wrong AAD or key, any changed character and any truncation refused, the output wiped on
 * refusal; size limits), subkeys and HMAC/SHA-256 hex against published vectors (RFC 4231, FIPS
 * 180-2) and values computed with Python's hmac, the constant-time string comparison, random
 * base64url tokens, and loading/creating keys.dir/data.key.
 */
#include "tests/unit/unit.h"
#include <ftw.h>
#include <sys/stat.h>
#include "auth/auth.h"
#include "crypto/crypto.h"

static const uint8_t key1[AUTH_DATA_KEY_LEN] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static void test_seal_round_trip(void **state)
{
    const char *pt = "张三 / ID 110101199003071234";
    char *s = auth_seal(key1, "user:u1:name", pt, strlen(pt));
    assert_non_null(s);
    assert_memory_equal(s, "v1.", 3);
    assert_int_equal(strlen(s), 3 + CRYPTO_B64URL_LEN(12 + strlen(pt) + 16)); /* nonce ‖ ciphertext ‖ tag */
    assert_null(strstr(s, "110101"));
    char out[256];
    assert_int_equal(auth_unseal(key1, "user:u1:name", s, out, sizeof(out)), (long)strlen(pt));
    assert_string_equal(out, pt);
    /* a fresh nonce each time: the same plaintext never seals to the same text */
    char *s2 = auth_seal(key1, "user:u1:name", pt, strlen(pt));
    assert_string_not_equal(s, s2);
    assert_int_equal(auth_unseal(key1, "user:u1:name", s2, out, sizeof(out)), (long)strlen(pt));
    free(s);
    free(s2);
}

static void test_seal_binary_and_empty_plaintexts(void **state)
{
    const uint8_t bin[5] = {0, 0xff, 0, 'a', 0};
    char *s = auth_seal(key1, "aad", bin, sizeof(bin));
    char out[16];
    assert_int_equal(auth_unseal(key1, "aad", s, out, sizeof(out)), 5);
    assert_memory_equal(out, bin, 5);
    assert_int_equal(out[5], '\0');
    free(s);
    s = auth_seal(key1, "", "", 0);
    assert_non_null(s);
    out[0] = 'x';
    assert_int_equal(auth_unseal(key1, "", s, out, 1), 0);
    assert_int_equal(out[0], '\0');
    free(s);
}

static void assert_refused_and_wiped(const uint8_t *key, const char *aad, const char *sealed)
{
    char out[64];
    memset(out, 'X', sizeof(out));
    assert_int_equal(auth_unseal(key, aad, sealed, out, sizeof(out)), -1);
    for (size_t i = 0; i != sizeof(out); ++i)
        if (out[i] != 0 && out[i] != 'X')
            fail_msg("refused unseal left plaintext bytes in OUT");
}

static void test_unseal_refuses_wrong_aad_and_key(void **state)
{
    char *s = auth_seal(key1, "user:u1:name", "secret name", 11);
    assert_refused_and_wiped(key1, "user:u2:name", s);
    assert_refused_and_wiped(key1, "user:u1:id_number", s);
    assert_refused_and_wiped(key1, "", s);
    assert_refused_and_wiped(key1, "user:u1:name ", s);
    uint8_t key2[AUTH_DATA_KEY_LEN];
    memcpy(key2, key1, sizeof(key2));
    key2[31] ^= 1;
    assert_refused_and_wiped(key2, "user:u1:name", s);
    free(s);
}

static void test_unseal_refuses_every_changed_character(void **state)
{
    char *s = auth_seal(key1, "a", "0123456789", 10);
    size_t len = strlen(s);
    char *t = strdup(s);
    for (size_t i = 0; i != len; ++i) {
        strcpy(t, s);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_refused_and_wiped(key1, "a", t);
    }
    free(t);
    free(s);
}

static void test_unseal_refuses_truncation_and_extension(void **state)
{
    char *s = auth_seal(key1, "a", "0123456789", 10);
    size_t len = strlen(s);
    char *t = calloc(1, len + 8);
    for (size_t cut = 0; cut != len; ++cut) {
        memcpy(t, s, cut);
        t[cut] = '\0';
        assert_refused_and_wiped(key1, "a", t);
    }
    snprintf(t, len + 8, "%sAAAA", s);
    assert_refused_and_wiped(key1, "a", t);
    /* another version prefix */
    strcpy(t, s);
    t[1] = '2';
    assert_refused_and_wiped(key1, "a", t);
    free(t);
    free(s);
}

static void test_unseal_needs_room_for_the_nul(void **state)
{
    char *s = auth_seal(key1, "a", "12345", 5);
    char out[6];
    assert_int_equal(auth_unseal(key1, "a", s, out, 5), -1);
    assert_int_equal(auth_unseal(key1, "a", s, out, 6), 5);
    assert_string_equal(out, "12345");
    free(s);
}

static void test_seal_size_limit(void **state)
{
    char *big = calloc(1, 4097), *out = malloc(4097);
    char *s = auth_seal(key1, "a", big, 4096);
    assert_non_null(s);
    assert_int_equal(auth_unseal(key1, "a", s, out, 4097), 4096);
    assert_null(auth_seal(key1, "a", big, 4097));
    free(s);
    free(big);
    free(out);
}

static void hex32(const uint8_t b[32], char out[65])
{
    for (int i = 0; i != 32; ++i)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_subkeys_differ_by_label_and_match_hmac(void **state)
{
    uint8_t a[32], b[32], c[32];
    char hex[65];
    auth_subkey(key1, "csrf", a);
    auth_subkey(key1, "phone-index", b);
    auth_subkey(key1, "csrf", c);
    assert_memory_not_equal(a, b, 32);
    assert_memory_equal(a, c, 32);
    /* HMAC-SHA256(key1, label), computed with Python's hmac module */
    hex32(a, hex);
    assert_string_equal(hex, "b415f1a025d491666644530fc34968cd2e477862892ed0371246ddc6e316a2e7");
    hex32(b, hex);
    assert_string_equal(hex, "9a8af3a6d8d67a1cb481211d880ea115e5522f8ea24bb10f31916137b3eef591");
    uint8_t key2[AUTH_DATA_KEY_LEN];
    memcpy(key2, key1, sizeof(key2));
    key2[0] ^= 0x80;
    auth_subkey(key2, "csrf", c);
    assert_memory_not_equal(a, c, 32);
}

static void test_hmac_hex_rfc4231(void **state)
{
    /* RFC 4231 test cases 1 and 2; a key shorter than the block is zero-padded by HMAC itself, so
     * the 32-byte zero-padded key gives the published value */
    uint8_t k[32] = {0};
    char out[66];
    memset(k, 0x0b, 20);
    memset(out, '#', sizeof(out));
    auth_hmac_hex(k, "Hi There", 8, out);
    assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_int_equal(out[65], '#');
    memset(k, 0, sizeof(k));
    memcpy(k, "Jefe", 4);
    const char *msg = "what do ya want for nothing?";
    auth_hmac_hex(k, msg, strlen(msg), out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_sha256_hex_fips180(void **state)
{
    char out[65];
    auth_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    auth_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    auth_sha256_hex(m, strlen(m), out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    auth_sha256_hex("abcd", 3, out); /* LEN, not strlen */
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_str_equal_ct(void **state)
{
    assert_int_equal(auth_str_equal_ct("abc", "abc"), 1);
    assert_int_equal(auth_str_equal_ct("", ""), 1);
    assert_int_equal(auth_str_equal_ct("abc", "abd"), 0);
    assert_int_equal(auth_str_equal_ct("abc", "xbc"), 0);
    assert_int_equal(auth_str_equal_ct("abc", "abcd"), 0);
    assert_int_equal(auth_str_equal_ct("abcd", "abc"), 0);
    assert_int_equal(auth_str_equal_ct("", "a"), 0);
    assert_int_equal(auth_str_equal_ct("ABC", "abc"), 0);
}

static void test_random_b64url_length_alphabet_and_freshness(void **state)
{
    static const size_t sizes[] = {0, 1, 2, 3, 16, 24, 32, 64};
    for (size_t k = 0; k != sizeof(sizes) / sizeof(sizes[0]); ++k) {
        size_t n = sizes[k];
        char a[CRYPTO_B64URL_LEN(64) + 2], b[CRYPTO_B64URL_LEN(64) + 2];
        memset(a, '#', sizeof(a));
        assert_int_equal(auth_random_b64url(a, n), 0);
        assert_int_equal(strlen(a), CRYPTO_B64URL_LEN(n));
        assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), strlen(a));
        uint8_t raw[64];
        assert_int_equal(crypto_b64url_decode(raw, sizeof(raw), a, strlen(a)), (long)n); /* canonical */
        if (n >= 16) {
            assert_int_equal(auth_random_b64url(b, n), 0);
            assert_string_not_equal(a, b);
        }
    }
    char big[200];
    assert_int_equal(auth_random_b64url(big, 65), -1);
}

/* ---- keys.dir/data.key ---- */

static char dir[64];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup_dir(void **state)
{
    strcpy(dir, "/tmp/hegate-test-sealed.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    return nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
}

static void test_data_key_create_then_load_the_same(void **state)
{
    uint8_t a[AUTH_DATA_KEY_LEN], b[AUTH_DATA_KEY_LEN];
    char err[256] = "", path[128];
    snprintf(path, sizeof(path), "%s/keys", dir);
    assert_int_equal(auth_data_key_load(path, 0, a, err, sizeof(err)), -1); /* absent, not created */
    assert_int_equal(auth_data_key_load(path, 1, a, err, sizeof(err)), 0);
    assert_int_equal(auth_data_key_load(path, 0, b, err, sizeof(err)), 0);
    assert_memory_equal(a, b, sizeof(a));
    struct stat st;
    snprintf(path, sizeof(path), "%s/keys/data.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65); /* 64 hex digits and a newline */
}

static void test_data_key_reads_hex_and_refuses_bad_files(void **state)
{
    uint8_t k[AUTH_DATA_KEY_LEN];
    char err[256];
    write_file("data.key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 0600);
    assert_int_equal(auth_data_key_load(dir, 0, k, err, sizeof(err)), 0);
    assert_memory_equal(k, key1, sizeof(k));
    write_file("data.key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 0640);
    assert_int_equal(auth_data_key_load(dir, 1, k, err, sizeof(err)), -1); /* group-readable: refused, not replaced */
    assert_non_null(strstr(err, "chmod 600"));
    static const char *const bad[] = {
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n",     /* 31 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n", /* 33 bytes */
        "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        write_file("data.key", bad[i], 0600);
        assert_int_equal(auth_data_key_load(dir, 1, k, err, sizeof(err)), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_binary_and_empty_plaintexts),
        cmocka_unit_test(test_unseal_refuses_wrong_aad_and_key),
        cmocka_unit_test(test_unseal_refuses_every_changed_character),
        cmocka_unit_test(test_unseal_refuses_truncation_and_extension),
        cmocka_unit_test(test_unseal_needs_room_for_the_nul),
        cmocka_unit_test(test_seal_size_limit),
        cmocka_unit_test(test_subkeys_differ_by_label_and_match_hmac),
        cmocka_unit_test(test_hmac_hex_rfc4231),
        cmocka_unit_test(test_sha256_hex_fips180),
        cmocka_unit_test(test_str_equal_ct),
        cmocka_unit_test(test_random_b64url_length_alphabet_and_freshness),
        cmocka_unit_test_setup_teardown(test_data_key_create_then_load_the_same, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_data_key_reads_hex_and_refuses_bad_files, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
