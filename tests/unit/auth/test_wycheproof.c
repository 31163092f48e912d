/*
 * tests/unit/auth/test_wycheproof.c — Project Wycheproof's JSON Web Signature vectors
 * (tests/testdata/wycheproof/json_web_signature_test.json, Apache 2.0) against auth/'s low-level
 * JWS check, alg pinned to ES256 (auth_jws_verify_es256, which the full verifier also uses).
 *
 * Every group whose public JWK is an EC P-256 key (es256, SpecialCaseEs256, and the "key for
 * encryption" groups, whose keys must be refused for signatures) runs case by case: a JWK that
 * auth_key_from_jwk refuses counts as "invalid". Any verdict that differs from the file fails the
 * test. Then every compact JWS of every other group (HS256, RSA, PS, P-521...) is checked
 * against the es256 group's key: under an ES256 pin none may verify. Counts are printed.
 * HEGATE_TESTDATA=/dir reads /dir/wycheproof/ instead of tests/testdata/wycheproof/.
 */
#include "tests/unit/unit.h"
#include "auth/auth.h"

static json_t *load_vectors(void)
{
    const char *base = getenv("HEGATE_TESTDATA");
    char path[512];
    snprintf(path, sizeof(path), "%s/wycheproof/json_web_signature_test.json", base != NULL ? base : "tests/testdata");
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL)
        fail_msg("%s: %s (run the tests from the repository root)", path, err.text);
    return doc;
}

static int is_p256_group(json_t *g)
{
    json_t *pub = json_object_get(g, "public");
    return json_is_object(pub) && json_is_string(json_object_get(pub, "kty")) &&
           strcmp(json_string_value(json_object_get(pub, "kty")), "EC") == 0 && json_is_string(json_object_get(pub, "crv")) &&
           strcmp(json_string_value(json_object_get(pub, "crv")), "P-256") == 0;
}

static void test_es256_groups(void **state)
{
    (void)state;
    json_t *doc = load_vectors();
    json_t *groups = json_object_get(doc, "testGroups");
    assert_true(json_array_size(groups) > 0);
    size_t ngroups = 0, ncases = 0, nvalid = 0, ninvalid = 0, nkey_refused = 0, mismatches = 0;
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        if (!is_p256_group(g))
            continue;
        ++ngroups;
        char *jwk = json_dumps(json_object_get(g, "public"), JSON_COMPACT);
        char err[256] = "";
        auth_key_t *key = auth_key_from_jwk(jwk, strlen(jwk), err, sizeof(err));
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            json_t *jws = json_object_get(t, "jws");
            const char *expected = json_string_value(json_object_get(t, "result"));
            assert_non_null(expected);
            assert_true(json_is_string(jws)); /* these groups hold compact JWS only */
            auth_reason_t r = AUTH_INTERNAL;
            const char *got;
            if (key == NULL) {
                got = "invalid";
                ++nkey_refused;
            } else {
                r = auth_jws_verify_es256(json_string_value(jws), json_string_length(jws), key, 0, NULL, NULL);
                got = r == AUTH_OK ? "valid" : "invalid";
            }
            ++ncases;
            if (strcmp(expected, "valid") == 0)
                ++nvalid;
            else
                ++ninvalid;
            /* "acceptable" would let either verdict pass; this file has none in these groups */
            if (strcmp(expected, got) != 0) {
                ++mismatches;
                print_error("MISMATCH tcId %lld (%s): expected %s, got %s (%s%s%s)\n",
                            (long long)json_integer_value(json_object_get(t, "tcId")),
                            json_string_value(json_object_get(t, "comment")), expected, got,
                            key != NULL ? auth_reason_name(r) : "key refused: ", key != NULL ? "" : err, "");
            }
        }
        auth_key_free(key);
        free(jwk);
    }
    print_message("wycheproof JWS, EC P-256 groups: %zu groups, %zu cases (%zu valid, %zu invalid; %zu refused at the key), "
                  "%zu mismatches\n",
                  ngroups, ncases, nvalid, ninvalid, nkey_refused, mismatches);
    json_decref(doc);
    assert_int_equal(mismatches, 0);
    assert_true(ngroups >= 4); /* es256, SpecialCaseEs256, 2 × ec_key_for_encryption in v0.3 */
    assert_true(ncases >= 41); /* a silently shrinking file must not pass */
    assert_true(nvalid >= 2);
}

static void test_other_groups_never_verify_under_es256(void **state)
{
    (void)state;
    json_t *doc = load_vectors();
    json_t *groups = json_object_get(doc, "testGroups"), *es256_jwk = NULL;
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        json_t *c = json_object_get(g, "comment");
        if (json_is_string(c) && strcmp(json_string_value(c), "es256") == 0 && is_p256_group(g))
            es256_jwk = json_object_get(g, "public");
    }
    assert_non_null(es256_jwk);
    char *jwk = json_dumps(es256_jwk, JSON_COMPACT);
    auth_key_t *key = auth_key_from_jwk(jwk, strlen(jwk), NULL, 0);
    assert_non_null(key);
    size_t checked = 0, accepted = 0, json_serialized = 0, alg_refused = 0;
    json_array_foreach(groups, gi, g)
    {
        if (is_p256_group(g))
            continue;
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            json_t *jws = json_object_get(t, "jws");
            if (!json_is_string(jws)) {
                ++json_serialized; /* JWS JSON serialization: not a compact token at all */
                continue;
            }
            auth_reason_t r = auth_jws_verify_es256(json_string_value(jws), json_string_length(jws), key, 0, NULL, NULL);
            ++checked;
            if (r == AUTH_OK) {
                ++accepted;
                print_error("ACCEPTED tcId %lld of group %zu under the ES256 pin\n",
                            (long long)json_integer_value(json_object_get(t, "tcId")), gi);
            }
            if (r == AUTH_ALG_NOT_ALLOWED)
                ++alg_refused;
        }
    }
    print_message("wycheproof JWS, other groups under the ES256 pin: %zu compact JWS checked, %zu accepted "
                  "(%zu refused for their alg), %zu JSON-serialized skipped\n",
                  checked, accepted, alg_refused, json_serialized);
    auth_key_free(key);
    free(jwk);
    json_decref(doc);
    assert_int_equal(accepted, 0);
    assert_true(checked >= 300);
}

/* the one alg-confusion case inside the es256 group gets the specific reason, not just "invalid" */
static void test_symmetric_confusion_reason(void **state)
{
    (void)state;
    json_t *doc = load_vectors();
    size_t gi, found = 0;
    json_t *g;
    json_array_foreach(json_object_get(doc, "testGroups"), gi, g)
    {
        if (!is_p256_group(g))
            continue;
        char *jwk = json_dumps(json_object_get(g, "public"), JSON_COMPACT);
        auth_key_t *key = auth_key_from_jwk(jwk, strlen(jwk), NULL, 0);
        free(jwk);
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *comment = json_string_value(json_object_get(t, "comment"));
            if (key == NULL || comment == NULL || strstr(comment, "SymmetryConfusion") == NULL)
                continue;
            json_t *jws = json_object_get(t, "jws");
            assert_int_equal(auth_jws_verify_es256(json_string_value(jws), json_string_length(jws), key, 0, NULL, NULL),
                             AUTH_ALG_NOT_ALLOWED);
            ++found;
        }
        auth_key_free(key);
    }
    json_decref(doc);
    assert_true(found >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_es256_groups),
        cmocka_unit_test(test_other_groups_never_verify_under_es256),
        cmocka_unit_test(test_symmetric_confusion_reason),
    };
    return cmocka_run_group_tests_name("auth_wycheproof", tests, NULL, NULL);
}
