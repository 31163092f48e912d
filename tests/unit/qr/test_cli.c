/*
 * tests/unit/qr/test_cli.c — `hegate qr keygen-device|make|verify` end to end, in process:
 * qr_cli_main is called with the argv gateway/main.c passes ({"qr", "verify", ...}), stdout is
 * captured, and the files are the ones an operator would have (trust JWS, JWKS, PEM keys).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <fcntl.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include "tests/unit/unit.h"
#include "qr/qr.h"

#define NOW 1750000000
#define NOW_S "1750000000"

static char dir[] = "/tmp/hegate-qr-cli-XXXXXX";
static char out[8192];
static char path_trust[64], path_jwks[64], path_signer_pub[64], path_dev[64], path_cred[64], path_cred_json[64], path_seen[64],
    path_other_jwks[64];

static char *in_dir(char *buf, const char *name)
{
    snprintf(buf, 64, "%s/%s", dir, name);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void redirect(int fd, int to)
{
    assert_true(fd >= 0);
    dup2(fd, to);
    close(fd);
}

/* Runs qr_cli_main(ARGV) with stdout in OUT (stderr discarded, stdin from STDIN_PATH if not NULL). */
static int run(const char *stdin_path, char **argv)
{
    int argc = 0, saved_out = dup(1), saved_err = dup(2), saved_in = dup(0), fd, rc;
    char cap[64];
    ssize_t n;
    while (argv[argc] != NULL)
        ++argc;
    fflush(stdout);
    fd = open(in_dir(cap, "stdout"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    redirect(open("/dev/null", O_WRONLY), 2);
    if (stdin_path != NULL) {
        redirect(open(stdin_path, O_RDONLY), 0);
        clearerr(stdin);
    }
    rc = qr_cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    dup2(saved_in, 0);
    close(saved_out);
    close(saved_err);
    close(saved_in);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    return rc;
}

#define RUN(...) run(NULL, (char *[]){"qr", __VA_ARGS__, NULL})

static char *b64(const void *in, size_t len)
{
    char *s = malloc(CRYPTO_B64URL_LEN(len) + 1);
    crypto_b64url_encode(s, in, len);
    return s;
}

/* The gateway's side, done with the library: a token key signs the trust list, an issuer key the credential. */
static void write_trust_files(qr_key_t *signer, EVP_PKEY *signer_pkey, qr_key_t *issuer)
{
    qr_trust_t *t = qr_trust_new(NOW);
    uint32_t deny[] = {666};
    char *jws, kid[12], *doc, *xs, *ys;
    uint8_t x[32], y[32];
    size_t len;
    FILE *fp;
    assert_int_equal(qr_trust_add_key(t, issuer, qr_role_scenes("tourism"), NOW - 86400, NOW + 86400 * 30), 0);
    assert_int_equal(qr_trust_set_deny(t, deny, 1), 0);
    assert_int_equal(qr_trust_to_jws(t, signer, NULL, &jws, &len), 0);
    write_text(path_trust, jws);
    qr_key_jwk_kid(signer, kid);
    crypto_key_xy(signer, x, y);
    xs = b64(x, 32);
    ys = b64(y, 32);
    assert_true(asprintf(&doc,
                         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"sig\",\"alg\":\"ES256\",\"kid\":\"%s\",\"x\":\"%"
                         "s\",\"y\":\"%s\"}]}",
                         kid, xs, ys) > 0);
    write_text(path_jwks, doc);
    free(doc);
    free(xs);
    free(ys);
    crypto_key_xy(issuer, x, y);
    xs = b64(x, 32);
    ys = b64(y, 32);
    assert_true(asprintf(&doc, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}]}", kid, xs,
                         ys) > 0);
    write_text(path_other_jwks, doc); /* the signer's kid, but another key */
    free(doc);
    fp = fopen(path_signer_pub, "w");
    PEM_write_PUBKEY(fp, signer_pkey);
    fclose(fp);
    free(xs);
    free(ys);
    free(jws);
    qr_trust_free(t);
}

static void write_credential(qr_key_t *issuer, const char *device_pub_b64)
{
    qr_credential_t c = {.scene = QR_SCENE_TRANSIT, .serial = 1001, .expires = NOW + 3600};
    qr_transit_t tr = {.fare_class = 3, .concessions = 0x11, .operator_id = 7, .offline_cap_fen = 1200};
    uint8_t cred[HMT1_CRED_LEN];
    char *s, *json;
    assert_int_equal(crypto_b64url_decode(c.device_key, sizeof(c.device_key), device_pub_b64, strlen(device_pub_b64)), 33);
    memcpy(c.pseudonym, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
    qr_transit_encode(&tr, c.entitlements);
    assert_int_equal(qr_credential_issue(&c, issuer, cred), 0);
    s = b64(cred, sizeof(cred));
    assert_true(asprintf(&json, "{\"credential\": \"%s\", \"scene\": \"transit\", \"expires_at\": %d}\n", s, NOW + 3600) > 0);
    write_text(path_cred, s);
    write_text(path_cred_json, json);
    free(s);
    free(json);
}

static int setup(void **state)
{
    (void)state;
    EVP_PKEY *signer_pkey = EVP_EC_gen("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long len;
    qr_key_t *signer, *issuer = crypto_key_generate();
    json_t *j;
    json_error_t err;
    if (mkdtemp(dir) == NULL)
        return -1;
    in_dir(path_trust, "trust.jws");
    in_dir(path_jwks, "jwks.json");
    in_dir(path_other_jwks, "other-jwks.json");
    in_dir(path_signer_pub, "signer.pub.pem");
    in_dir(path_dev, "device.pem");
    in_dir(path_cred, "credential.txt");
    in_dir(path_cred_json, "credential.json");
    in_dir(path_seen, "seen.txt");
    PEM_write_bio_PrivateKey(bio, signer_pkey, NULL, NULL, 0, NULL, NULL);
    len = BIO_get_mem_data(bio, &pem);
    signer = crypto_key_from_pem(pem, (size_t)len, NULL, 0);
    if (signer == NULL || issuer == NULL)
        return -1;
    write_trust_files(signer, signer_pkey, issuer);
    /* the phone's side: a device key from the CLI */
    if (RUN("keygen-device", "--out", path_dev) != 0 || (j = json_loads(out, 0, &err)) == NULL)
        return -1;
    write_credential(issuer, json_string_value(json_object_get(j, "device_public_key")));
    json_decref(j);
    crypto_key_free(signer);
    crypto_key_free(issuer);
    EVP_PKEY_free(signer_pkey);
    BIO_free(bio);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

/* `make` with COUNTER: the code text (311 characters) in CODE. */
static void make(char code[HMT1_TEXT_LEN + 1], const char *counter)
{
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--counter", (char *)counter, "--now", NOW_S),
                     0);
    assert_int_equal(strlen(out), HMT1_TEXT_LEN + 1);
    assert_int_equal(out[HMT1_TEXT_LEN], '\n');
    memcpy(code, out, HMT1_TEXT_LEN);
    code[HMT1_TEXT_LEN] = '\0';
}

static json_t *out_json(void)
{
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    assert_non_null(j);
    return j;
}

static void assert_invalid(int rc, const char *reason)
{
    json_t *j;
    assert_int_equal(rc, 1);
    j = out_json();
    assert_true(json_is_false(json_object_get(j, "valid")));
    assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
    json_decref(j);
}

static void test_make_and_verify(void **state)
{
    (void)state;
    char code[HMT1_TEXT_LEN + 1];
    json_t *j, *claims;
    make(code, "5");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--jwks", path_jwks, "--now", NOW_S, code), 0);
    j = out_json();
    assert_true(json_is_true(json_object_get(j, "valid")));
    assert_string_equal(json_string_value(json_object_get(j, "scene")), "transit");
    assert_int_equal(json_integer_value(json_object_get(j, "serial")), 1001);
    claims = json_object_get(j, "claims");
    assert_string_equal(json_string_value(json_object_get(claims, "pseudonym")), "0123456789abcdef");
    assert_int_equal(json_integer_value(json_object_get(claims, "fare_class")), 3);
    assert_int_equal(json_integer_value(json_object_get(claims, "concessions")), 0x11);
    assert_int_equal(json_integer_value(json_object_get(claims, "operator")), 7);
    assert_int_equal(json_integer_value(json_object_get(claims, "offline_cap_fen")), 1200);
    json_decref(j);
    assert_memory_equal(out, "{\"valid\":true,\"scene\":\"transit\",\"serial\":1001,\"claims\":{", 56);
    /* the same with the key pinned, with the JSON credential file, and unverified (a warning only) */
    assert_int_equal(RUN("verify", "--trust", path_trust, "--trust-key", path_signer_pub, "--now", NOW_S, code), 0);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--now", NOW_S, code), 0);
    assert_int_equal(RUN("make", "--credential", path_cred_json, "--device-key", path_dev, "--counter=6", "--now=" NOW_S), 0);
    out[HMT1_TEXT_LEN] = '\0';
    memcpy(code, out, HMT1_TEXT_LEN + 1);
    assert_int_equal(RUN("verify",
                         "--trust="
                         "/dev/null",
                         "--now", NOW_S, code),
                     2); /* an empty trust list file */
    assert_int_equal(RUN("verify", "--trust", path_trust, "--jwks", path_jwks, "--now", NOW_S, code), 0);
}

static void test_verdicts(void **state)
{
    (void)state;
    char code[HMT1_TEXT_LEN + 1];
    json_t *j;
    make(code, "7");
    assert_invalid(RUN("verify", "--trust", path_trust, "--role", "merchant", "--now", NOW_S, code), "wrong_scene");
    assert_invalid(RUN("verify", "--trust", path_trust, "--scenes", "medical,payment", "--now", NOW_S, code), "wrong_scene");
    assert_invalid(RUN("verify", "--trust", path_trust, "--now", "1750001000", code), "expired");
    assert_invalid(RUN("verify", "--trust", path_trust, "--now", "1749990000", code), "not_yet_valid");
    assert_invalid(RUN("verify", "--trust", path_trust, "--now", "1749999975", "--skew", "10", code), "not_yet_valid");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--now", "1749999975", "--skew", "30", code), 0);
    assert_invalid(RUN("verify", "--trust", path_trust, "--now", NOW_S, "HMT1:notbase45"), "malformed");
    code[HMT1_TEXT_LEN - 3] = code[HMT1_TEXT_LEN - 3] == '0' ? '1' : '0'; /* the device signature */
    assert_invalid(RUN("verify", "--trust", path_trust, "--now", NOW_S, code), "bad_device_signature");
    /* a tourism scanner learns the pseudonym and the raw entitlements */
    make(code, "8");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--role", "tourism", "--now", NOW_S, code), 0);
    j = out_json();
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "claims"), "entitlements")), "03110007000004b0");
    assert_null(json_object_get(json_object_get(j, "claims"), "fare_class"));
    json_decref(j);
}

static void test_seen_file(void **state)
{
    (void)state;
    char code[HMT1_TEXT_LEN + 1];
    make(code, "9");
    assert_invalid(RUN("verify", "--trust", path_trust, "--role", "medical", "--seen", path_seen, "--now", NOW_S, code),
                   "wrong_scene");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--role", "transit", "--seen", path_seen, "--now", NOW_S, code), 0);
    assert_invalid(RUN("verify", "--trust", path_trust, "--seen", path_seen, "--now", "1750000010", code), "replayed");
    make(code, "10");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--seen", path_seen, "--now", NOW_S, code), 0);
    {
        FILE *fp = fopen(path_seen, "r");
        char line[128];
        int lines = 0;
        while (fgets(line, sizeof(line), fp) != NULL)
            ++lines;
        fclose(fp);
        assert_int_equal(lines, 2);
    }
    write_text(path_seen, "garbage\n");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--seen", path_seen, "--now", NOW_S, code), 2); /* fail closed */
    unlink(path_seen);
}

static void test_code_from_stdin(void **state)
{
    (void)state;
    char code[HMT1_TEXT_LEN + 1], path[64], line[HMT1_TEXT_LEN + 3];
    make(code, "11");
    snprintf(line, sizeof(line), "%s\r\n", code);
    write_text(in_dir(path, "code.txt"), line);
    assert_int_equal(run(path, (char *[]){"qr", "verify", "--trust", path_trust, "--now", NOW_S, "-", NULL}), 0);
}

static void test_make_options(void **state)
{
    (void)state;
    uint8_t bytes[HMT1_LEN], t[4];
    qr_code_t c;
    char other[64];
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--counter", "12", "--now", NOW_S, "--ttl",
                         "30", "--terminal", "gate-17", "--scene", "transit"),
                     0);
    assert_int_equal(qr_code_from_text(out, HMT1_TEXT_LEN, bytes), 0);
    assert_int_equal(qr_code_parse(bytes, HMT1_LEN, &c), 0);
    assert_int_equal(c.counter, 12);
    assert_int_equal(c.gen, NOW);
    assert_int_equal(c.ttl, 30);
    qr_terminal_binding("gate-17", 7, t);
    assert_memory_equal(c.terminal, t, 4);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev), 0); /* clock counter and time */
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--scene", "medical"), 2);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--counter", "16777216"), 2);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--ttl", "256"), 2);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_dev, "--counter", "1x"), 2);
    assert_int_equal(RUN("keygen-device", "--out", in_dir(other, "other.pem")), 0);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", other), 2); /* not the credential's key */
    assert_int_equal(RUN("make", "--credential", path_jwks, "--device-key", path_dev), 2);
    assert_int_equal(RUN("make", "--credential", path_cred, "--device-key", path_jwks), 2);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char code[HMT1_TEXT_LEN + 1];
    make(code, "13");
    assert_int_equal(RUN("verify", "--trust", path_trust, "--jwks", path_other_jwks, "--now", NOW_S, code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--role", "admin", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--role", "transit", "--scenes", "transit", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--scenes", "transit,subway", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--now", "soon", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--bogus", "1", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, code, code), 2);
    assert_int_equal(RUN("verify", code), 2);
    assert_int_equal(RUN("verify", "--trust", path_trust, "--now"), 2);
    assert_int_equal(RUN("verify", "--trust", "/nonexistent", code), 2);
    assert_int_equal(RUN("keygen-device", "--out", path_dev), 2); /* never overwrites a key */
    assert_int_equal(RUN("keygen-device"), 2);
    assert_int_equal(RUN("frobnicate"), 2);
    assert_int_equal(run(NULL, (char *[]){"qr", NULL}), 2);
    assert_int_equal(RUN("help"), 0);
    assert_non_null(strstr(out, "hegate qr verify --trust FILE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_and_verify), cmocka_unit_test(test_verdicts),     cmocka_unit_test(test_seen_file),
        cmocka_unit_test(test_code_from_stdin), cmocka_unit_test(test_make_options), cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
