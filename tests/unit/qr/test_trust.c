/*
 * tests/unit/qr/test_trust.c — the trust list's compact JWS (SPEC §7.3), JWKS, and JWS strictness:
 * build → sign → parse round trips, every refusal on purpose, RFC 7515 A.3, and every Wycheproof
 * JSON Web Signature vector (tests/testdata/wycheproof or $HEGATE_TESTDATA/wycheproof).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <jansson.h>
#include "tests/unit/unit.h"
#include "qr/qr.h"

#define NOW 1750000000

static qr_key_t *signer, *issuer_a, *issuer_b;

static int setup(void **state)
{
    (void)state;
    signer = crypto_key_generate();
    issuer_a = crypto_key_generate();
    issuer_b = crypto_key_generate();
    return signer != NULL && issuer_a != NULL && issuer_b != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    crypto_key_free(signer);
    crypto_key_free(issuer_a);
    crypto_key_free(issuer_b);
    return 0;
}

static char *b64(const void *in, size_t len)
{
    char *out = malloc(CRYPTO_B64URL_LEN(len) + 1);
    assert_int_equal(crypto_b64url_encode(out, in, len), CRYPTO_B64URL_LEN(len));
    return out;
}

/* A JWKS document holding KEY under KID (plus an RSA key and an encryption key to be skipped). */
static char *jwks_json(const qr_key_t *key, const char *kid)
{
    uint8_t x[32], y[32];
    char *xs, *ys, *out;
    crypto_key_xy(key, x, y);
    xs = b64(x, 32);
    ys = b64(y, 32);
    assert_true(
        asprintf(&out,
                 "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"kid\":\"e1\",\"x\":\"%s\",\"y\":\"%s\"},"
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"use\":\"sig\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}]}",
                 xs, ys, kid, xs, ys) > 0);
    free(xs);
    free(ys);
    return out;
}

static qr_trust_t *sample_trust(void)
{
    qr_trust_t *t = qr_trust_new(NOW);
    uint32_t deny[] = {42, 7, 4294967295u, 7, 0};
    assert_int_equal(
        qr_trust_add_key(t, issuer_a, QR_SCENE_BIT(QR_SCENE_TRANSIT) | QR_SCENE_BIT(QR_SCENE_TOURISM), NOW - 10, NOW + 10), 0);
    assert_int_equal(qr_trust_add_key(t, issuer_b, QR_SCENES_ALL, 0, INT64_MAX), 0);
    assert_int_equal(qr_trust_set_deny(t, deny, 5), 0);
    return t;
}

static void assert_sample(const qr_trust_t *t)
{
    uint8_t a[4], b[4];
    qr_key_id(issuer_a, a);
    qr_key_id(issuer_b, b);
    assert_int_equal(qr_trust_issued_at(t), NOW);
    assert_int_equal(qr_trust_num_keys(t), 2);
    assert_non_null(qr_trust_find(t, a, QR_SCENE_TRANSIT, NOW));
    assert_non_null(qr_trust_find(t, a, QR_SCENE_TOURISM, NOW + 10));
    assert_null(qr_trust_find(t, a, QR_SCENE_MEDICAL, NOW));
    assert_null(qr_trust_find(t, a, QR_SCENE_TRANSIT, NOW + 11));
    assert_null(qr_trust_find(t, a, QR_SCENE_TRANSIT, NOW - 11));
    assert_null(qr_trust_find(t, a, 0, NOW));
    assert_null(qr_trust_find(t, a, 9, NOW));
    assert_non_null(qr_trust_find(t, b, QR_SCENE_GOVERNMENT, NOW));
    assert_true(qr_trust_is_denied(t, 42));
    assert_true(qr_trust_is_denied(t, 7));
    assert_true(qr_trust_is_denied(t, 0));
    assert_true(qr_trust_is_denied(t, 4294967295u));
    assert_false(qr_trust_is_denied(t, 43));
    {
        uint8_t msg[3] = {1, 2, 3}, sig[64]; /* a found key verifies what its private half signs */
        assert_int_equal(crypto_es256_sign(issuer_a, msg, 3, sig), 0);
        assert_int_equal(qr_ecdsa_verify(qr_trust_find(t, a, QR_SCENE_TRANSIT, NOW), msg, 3, sig, 64), 0);
    }
}

static void test_build_and_parse(void **state)
{
    (void)state;
    qr_trust_t *t = sample_trust(), *back;
    char *jws, kid[12], *jwks_doc, err[128];
    size_t len;
    qr_jwks_t *jwks;
    assert_sample(t);
    assert_int_equal(qr_trust_to_jws(t, signer, NULL, &jws, &len), 0);
    assert_int_equal(strlen(jws), len);
    /* with the signer's public key pinned */
    uint8_t point[33];
    crypto_key_point(signer, point);
    qr_key_t *pub = crypto_key_from_point(point, 33);
    assert_non_null(back = qr_trust_from_jws(jws, len, NULL, pub, err, sizeof(err)));
    assert_sample(back);
    qr_trust_free(back);
    /* with a JWKS, the header's kid being the SPEC §6 kid by default */
    qr_key_jwk_kid(signer, kid);
    jwks_doc = jwks_json(signer, kid);
    assert_non_null(jwks = qr_jwks_parse(jwks_doc, strlen(jwks_doc)));
    assert_int_equal(qr_jwks_num_keys(jwks), 1); /* RSA and "use":"enc" skipped */
    assert_non_null(back = qr_trust_from_jws(jws, len, jwks, NULL, err, sizeof(err)));
    assert_sample(back);
    qr_trust_free(back);
    /* the wrong key, or none */
    assert_null(qr_trust_from_jws(jws, len, NULL, issuer_a, err, sizeof(err)));
    assert_null(qr_trust_from_jws(jws, len, NULL, NULL, err, sizeof(err)));
    /* unverified still parses */
    assert_non_null(back = qr_trust_from_jws_unverified(jws, len, err, sizeof(err)));
    assert_sample(back);
    qr_trust_free(back);
    /* an explicit kid */
    free(jws);
    assert_int_equal(qr_trust_to_jws(t, signer, "other-kid", &jws, &len), 0);
    assert_null(qr_trust_from_jws(jws, len, jwks, NULL, err, sizeof(err))); /* kid not in the JWKS */
    assert_string_equal(err, "not a compact ES256 JWS of type hmt1-trust signed by a trusted key");
    assert_non_null(back = qr_trust_from_jws(jws, len, NULL, pub, err, sizeof(err)));
    qr_trust_free(back);
    qr_jwks_free(jwks);
    crypto_key_free(pub);
    free(jwks_doc);
    free(jws);
    qr_trust_free(t);
}

static void test_builder_refusals(void **state)
{
    (void)state;
    qr_trust_t *t = qr_trust_new(NOW);
    assert_int_equal(qr_trust_add_key(t, issuer_a, 0, 0, 1), -1);
    assert_int_equal(qr_trust_add_key(t, issuer_a, 1u << 7, 0, 1), -1);
    assert_int_equal(qr_trust_add_key(t, issuer_a, QR_SCENES_ALL, 2, 1), -1);
    assert_int_equal(qr_trust_add_key(t, issuer_a, QR_SCENES_ALL, 0, 1), 0);
    assert_int_equal(qr_trust_add_key(t, issuer_a, QR_SCENES_ALL, 0, 1), -1); /* same kid */
    assert_int_equal(qr_trust_set_deny(t, NULL, 0), 0);
    assert_false(qr_trust_is_denied(t, 0));
    qr_trust_free(t);
}

/* ---- hand-made tokens -------------------------------------------------------------------------- */

/* header.payload.signature from raw JSON texts, signed by KEY (or with SIG if KEY is NULL). */
static char *token(const char *header, const char *payload, const qr_key_t *key)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *s, *out;
    uint8_t sig[64];
    size_t hp;
    assert_true(asprintf(&out, "%s.%s", h, p) > 0);
    hp = strlen(out);
    memset(sig, 0, sizeof(sig));
    if (key != NULL)
        assert_int_equal(crypto_es256_sign(key, out, hp, sig), 0);
    s = b64(sig, 64);
    free(out);
    assert_true(asprintf(&out, "%s.%s.%s", h, p, s) > 0);
    free(h);
    free(p);
    free(s);
    return out;
}

static int accepted(const char *jws, const qr_key_t *key)
{
    char err[128];
    qr_trust_t *t = qr_trust_from_jws(jws, strlen(jws), NULL, key, err, sizeof(err));
    qr_trust_free(t);
    return t != NULL;
}

static char *payload_with_key(const char *kid_override, const char *scenes, const char *extra)
{
    uint8_t x[32], y[32], kid[4];
    char *xs, *ys, *out, kidhex[9];
    crypto_key_xy(issuer_a, x, y);
    qr_key_id(issuer_a, kid);
    snprintf(kidhex, sizeof(kidhex), "%02x%02x%02x%02x", kid[0], kid[1], kid[2], kid[3]);
    xs = b64(x, 32);
    ys = b64(y, 32);
    assert_true(asprintf(&out,
                         "{\"keys\":[{\"kid\":\"%s\",\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\",\"scenes\":%s,"
                         "\"not_before\":0,\"not_after\":2000000000}],\"deny\":[1,2],\"issued_at\":%d%s}",
                         kid_override != NULL ? kid_override : kidhex, xs, ys, scenes, NOW, extra) > 0);
    free(xs);
    free(ys);
    return out;
}

#define HDR "{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"hmt1-trust\"}"

static void check_payload(const char *payload, int want)
{
    char *jws = token(HDR, payload, signer);
    if (accepted(jws, signer) != want)
        fail_msg("payload %s: expected %s", payload, want ? "accepted" : "refused");
    free(jws);
}

static void test_payload_strictness(void **state)
{
    (void)state;
    char *p;
    uint8_t kid[4];
    char upper[9];
    check_payload(p = payload_with_key(NULL, "[\"transit\"]", ""), 1);
    free(p);
    check_payload(p = payload_with_key(NULL, "[\"transit\"]", ",\"future\":1"), 1); /* unknown members are ignored */
    free(p);
    qr_key_id(issuer_a, kid);
    snprintf(upper, sizeof(upper), "%02X%02X%02X%02X", kid[0], kid[1], kid[2], kid[3]);
    check_payload(p = payload_with_key(upper, "[\"transit\"]", ""), 1);
    free(p);
    check_payload(p = payload_with_key("00000000", "[\"transit\"]", ""), 0); /* kid is not the key's */
    free(p);
    check_payload(p = payload_with_key("0000000", "[\"transit\"]", ""), 0);
    free(p);
    check_payload(p = payload_with_key("0000000g", "[\"transit\"]", ""), 0);
    free(p);
    check_payload(p = payload_with_key(NULL, "[\"subway\"]", ""), 0);
    free(p);
    check_payload(p = payload_with_key(NULL, "[]", ""), 0);
    free(p);
    check_payload(p = payload_with_key(NULL, "[1]", ""), 0);
    free(p);
    check_payload(p = payload_with_key(NULL, "[\"transit\"]", ",\"issued_at\":5"), 0); /* duplicate member */
    free(p);
    check_payload("{\"keys\":[],\"deny\":[],\"issued_at\":1}", 1);
    check_payload("{\"keys\":[],\"deny\":[],\"issued_at\":1.5}", 0);
    check_payload("{\"keys\":[],\"deny\":[]}", 0);
    check_payload("{\"keys\":[],\"issued_at\":1}", 0);
    check_payload("{\"deny\":[],\"issued_at\":1}", 0);
    check_payload("{\"keys\":[],\"deny\":[-1],\"issued_at\":1}", 0);
    check_payload("{\"keys\":[],\"deny\":[4294967296],\"issued_at\":1}", 0);
    check_payload("{\"keys\":[],\"deny\":[4294967295],\"issued_at\":1}", 1);
    check_payload("{\"keys\":[],\"deny\":[\"5\"],\"issued_at\":1}", 0);
    check_payload("{\"keys\":[{}],\"deny\":[],\"issued_at\":1}", 0);
    check_payload("[]", 0);
    check_payload("{\"keys\":[],\"deny\":[],\"issued_at\":1", 0);
}

static void test_header_strictness(void **state)
{
    (void)state;
    const char *payload = "{\"keys\":[],\"deny\":[],\"issued_at\":1}";
    static const struct {
        const char *header;
        int want;
    } cases[] = {
        {HDR, 1},
        {"{\"alg\":\"none\",\"kid\":\"k\",\"typ\":\"hmt1-trust\"}", 0},
        {"{\"alg\":\"HS256\",\"kid\":\"k\",\"typ\":\"hmt1-trust\"}", 0},
        {"{\"alg\":\"es256\",\"kid\":\"k\",\"typ\":\"hmt1-trust\"}", 0},
        {"{\"alg\":\"ES384\",\"kid\":\"k\",\"typ\":\"hmt1-trust\"}", 0},
        {"{\"kid\":\"k\",\"typ\":\"hmt1-trust\"}", 0},
        {"{\"alg\":\"ES256\",\"kid\":\"k\"}", 0},                                       /* typ required */
        {"{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"JWT\"}", 0},                       /* an access token is not a trust list */
        {"{\"alg\":\"ES256\",\"typ\":\"hmt1-trust\",\"crit\":[\"exp\"],\"exp\":1}", 0}, /* unknown crit */
        {"{\"alg\":\"ES256\",\"alg\":\"ES256\",\"typ\":\"hmt1-trust\"}", 0},            /* duplicate member */
        {"[\"ES256\"]", 0},
        {"not json", 0},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *jws = token(cases[i].header, payload, signer);
        if (accepted(jws, signer) != cases[i].want)
            fail_msg("header %s: expected %s", cases[i].header, cases[i].want ? "accepted" : "refused");
        free(jws);
    }
    {
        char *jws = token("{\"alg\":\"none\",\"typ\":\"hmt1-trust\"}", payload, NULL); /* unsigned */
        char *dot = strrchr(jws, '.');
        dot[1] = '\0';
        assert_false(accepted(jws, signer));
        free(jws);
    }
}

static void test_compact_strictness(void **state)
{
    (void)state;
    char *jws = token(HDR, "{\"keys\":[],\"deny\":[],\"issued_at\":1}", signer), buf[1024];
    size_t len = strlen(jws);
    assert_true(accepted(jws, signer));
    snprintf(buf, sizeof(buf), "%s=", jws); /* padding */
    assert_false(accepted(buf, signer));
    snprintf(buf, sizeof(buf), "%sA", jws); /* trailing junk */
    assert_false(accepted(buf, signer));
    snprintf(buf, sizeof(buf), "%s.", jws); /* a fourth part */
    assert_false(accepted(buf, signer));
    snprintf(buf, sizeof(buf), " %s", jws);
    assert_false(accepted(buf, signer));
    snprintf(buf, sizeof(buf), "%s", jws);
    buf[len - 1] = buf[len - 1] == 'A' ? 'B' : 'A'; /* last character: a non-canonical spelling or another value */
    assert_false(accepted(buf, signer));
    {
        char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
        snprintf(buf, sizeof(buf), "%.*s..%s", (int)(d1 - jws), jws, d2 + 1); /* empty payload */
        assert_false(accepted(buf, signer));
        snprintf(buf, sizeof(buf), "%.*s", (int)(d2 - jws), jws); /* no signature */
        assert_false(accepted(buf, signer));
        snprintf(buf, sizeof(buf), "%.*s.", (int)(d2 - jws), jws);
        assert_false(accepted(buf, signer));
    }
    {
        uint8_t *p;
        size_t plen;
        assert_int_equal(qr_jws_verify(jws, len, NULL, NULL, NULL, &p, &plen), -1); /* never "no key, no check" */
        assert_int_equal(qr_jws_verify(jws, len, NULL, signer, NULL, &p, &plen), 0);
        assert_int_equal(plen, strlen("{\"keys\":[],\"deny\":[],\"issued_at\":1}"));
        assert_int_equal(p[plen], '\0');
        free(p);
    }
    free(jws);
}

static void test_jwks(void **state)
{
    (void)state;
    char kid[12], *doc;
    qr_jwks_t *j;
    qr_key_jwk_kid(signer, kid);
    doc = jwks_json(signer, kid);
    assert_non_null(j = qr_jwks_parse(doc, strlen(doc)));
    qr_jwks_free(j);
    free(doc);
    static const char *const bad[] = {
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"AA\",\"y\":\"AA\"}]}", /* not a point */
        "{\"keys\":{}}",
        "{}",
        "[]",
        "{\"keys\":[1]}",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        assert_null(qr_jwks_parse(bad[i], strlen(bad[i])));
    /* a repeated kid */
    {
        uint8_t x[32], y[32];
        char *xs, *ys, *dup;
        crypto_key_xy(signer, x, y);
        xs = b64(x, 32);
        ys = b64(y, 32);
        assert_true(asprintf(&dup,
                             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"%s\",\"y\":\"%s\"},"
                             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"%s\",\"y\":\"%s\"}]}",
                             xs, ys, xs, ys) > 0);
        assert_null(qr_jwks_parse(dup, strlen(dup)));
        free(dup);
        free(xs);
        free(ys);
    }
    assert_non_null(j = qr_jwks_parse("{\"keys\":[]}", 11));
    assert_int_equal(qr_jwks_num_keys(j), 0);
    qr_jwks_free(j);
}

/* RFC 7515 A.3: an ES256 JWS (with a high-S signature, which ES256 allows) */
static void test_rfc7515_a3(void **state)
{
    (void)state;
    static const char jws[] =
        "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    uint8_t x[32], y[32], *p;
    size_t plen;
    qr_key_t *key;
    assert_int_equal(crypto_b64url_decode(x, 32, "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", 43), 32);
    assert_int_equal(crypto_b64url_decode(y, 32, "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", 43), 32);
    assert_non_null(key = crypto_key_from_xy(x, y));
    assert_int_equal(qr_jws_verify(jws, strlen(jws), NULL, key, NULL, &p, &plen), 0);
    assert_memory_equal(p, "{\"iss\":\"joe\",\r\n \"exp\":1300819380", 32);
    free(p);
    assert_int_equal(qr_jws_verify(jws, strlen(jws), NULL, key, "JWT", &p, &plen), -1); /* no typ in the header */
    crypto_key_free(key);
}

/* ---- Wycheproof -------------------------------------------------------------------------------- */

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

/* The group's verification keys as a JWKS (its public key, if any; other key types are skipped by the parser). */
static qr_jwks_t *group_jwks(json_t *g)
{
    json_t *doc = json_object(), *keys = json_array(), *k = json_object_get(g, "public");
    char *s;
    qr_jwks_t *jwks;
    if (k != NULL)
        json_array_append(keys, k);
    json_object_set_new(doc, "keys", keys);
    s = json_dumps(doc, JSON_COMPACT);
    jwks = qr_jwks_parse(s, strlen(s));
    free(s);
    json_decref(doc);
    return jwks;
}

static int group_is_es256(json_t *g)
{
    json_t *k = json_object_get(g, "public");
    const char *kty = json_string_value(json_object_get(k, "kty")), *crv = json_string_value(json_object_get(k, "crv"));
    return kty != NULL && strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0;
}

static void test_wycheproof_jws(void **state)
{
    (void)state;
    json_t *root = load_vectors("json_web_signature_test.json"), *g, *t;
    size_t gi, ti, total = 0, invalid_rejected = 0, es256_accepted = 0, other_alg_rejected = 0, mismatches = 0;
    if (root == NULL)
        fail_msg("Wycheproof vectors not found (tests/testdata/wycheproof or $HEGATE_TESTDATA/wycheproof)");
    json_array_foreach(json_object_get(root, "testGroups"), gi, g)
    {
        qr_jwks_t *jwks = group_jwks(g);
        assert_non_null(jwks);
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *jws = json_string_value(json_object_get(t, "jws"));
            int valid = strcmp(json_string_value(json_object_get(t, "result")), "valid") == 0, ok;
            uint8_t *p = NULL;
            size_t plen;
            int got = jws != NULL && qr_jws_verify(jws, strlen(jws), jwks, NULL, NULL, &p, &plen) == 0;
            free(p);
            ++total;
            if (!valid)
                invalid_rejected += ok = !got;
            else if (group_is_es256(g))
                es256_accepted += ok = got;
            else
                other_alg_rejected += ok = !got; /* RS*, PS*, HS*, ES512: not ES256, refused by policy */
            if (!ok) {
                ++mismatches;
                fprintf(stderr, "wycheproof jws tcId %lld: got %d\n", json_integer_value(json_object_get(t, "tcId")), got);
            }
        }
        qr_jwks_free(jwks);
    }
    printf("wycheproof json_web_signature: %zu cases: %zu invalid rejected, %zu valid ES256 accepted, "
           "%zu valid with another alg rejected by policy, %zu mismatches\n",
           total, invalid_rejected, es256_accepted, other_alg_rejected, mismatches);
    assert_int_equal(total, json_integer_value(json_object_get(root, "numberOfTests")));
    assert_int_equal(mismatches, 0);
    assert_true(es256_accepted >= 2);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_parse),    cmocka_unit_test(test_builder_refusals),
        cmocka_unit_test(test_payload_strictness), cmocka_unit_test(test_header_strictness),
        cmocka_unit_test(test_compact_strictness), cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_rfc7515_a3),         cmocka_unit_test(test_wycheproof_jws),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
