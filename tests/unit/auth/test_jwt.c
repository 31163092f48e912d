/*
 * tests/unit/auth/test_jwt.c — the strict token verifier (auth/jwt.c) and its building blocks:
 * strict base64url, the bounded JSON parser, signing, and one test per way a token can be wrong,
 * each asserting the exact reason (SPEC §6): alg none / HS256 key confusion / unknown kid / bad
 * time claims at the leeway's edges / iss / aud / typ / form / length / foreign key / high-S /
 * DER signatures / crit / claims / revocation / trusted issuers, plus the RFC 7515 A.3 example.
 */
#include "tests/unit/unit.h"
#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include "auth/internal.h"

#define NOW ((int64_t)1700000000)
static const char *const ISS = "https://hegate.example";
static const char *const EXT_ISS = "https://id.province.example";

static auth_key_t *k_own, *k_other, *k_ext;
static auth_keyset_t *ks_own, *ks_ext;
static auth_verifier_t *verifier;

/* ---- helpers ------------------------------------------------------------------------------------ */

static char *b64(const void *data, size_t len)
{
    char *s = malloc(CRYPTO_B64URL_LEN(len) + 1);
    crypto_b64url_encode(s, data, len);
    return s;
}

/* header.payload signed with KEY, both given as exact JSON text */
static char *token_with(const auth_key_t *key, const char *hdr, const char *payload)
{
    char *h = b64(hdr, strlen(hdr));
    char *t = auth_jws_sign_raw(key, h, strlen(h), payload, strlen(payload));
    free(h);
    assert_non_null(t);
    return t;
}

static json_t *base_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "iss", ISS, "sub", "u-7f3a9c", "aud", "hegate",
                     "client_id", "hecheng-app", "scope", "openid appointment", "iat", (json_int_t)NOW, "exp",
                     (json_int_t)NOW + 900, "jti", "j-0001", "sid", "s-42", "acr", "pwd");
}

static char *dumps(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static char *own_header(const auth_key_t *key, const char *alg, const char *typ)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"%s\",\"kid\":\"%s\"}", alg, typ, auth_key_kid(key));
    return buf;
}

/* a token of our key with the claims C (consumed) and the standard header */
static char *token_claims(json_t *c)
{
    char *p = dumps(c);
    char *t = token_with(k_own, own_header(k_own, "ES256", "at+jwt"), p);
    free(p);
    return t;
}

static auth_reason_t verify(const char *tok)
{
    auth_claims_t c;
    return auth_verify_token(verifier, tok, strlen(tok), NOW, &c);
}

#define assert_reason(tok, want)                                                                                                   \
    do {                                                                                                                           \
        char *t_ = (tok);                                                                                                          \
        auth_reason_t got_ = verify(t_);                                                                                           \
        if (got_ != (want))                                                                                                        \
            fail_msg("%s:%d: got %s, want %s", __FILE__, __LINE__, auth_reason_name(got_), auth_reason_name(want));                \
        free(t_);                                                                                                                  \
    } while (0)

static char *replace_sig(const char *tok, const uint8_t *sig, size_t len)
{
    const char *dot = strrchr(tok, '.');
    char *s = b64(sig, len);
    size_t head = (size_t)(dot + 1 - tok);
    char *t = malloc(head + strlen(s) + 1);
    memcpy(t, tok, head);
    strcpy(t + head, s);
    free(s);
    return t;
}

static void get_sig(const char *tok, uint8_t sig[64])
{
    const char *dot = strrchr(tok, '.');
    assert_int_equal(crypto_b64url_decode(sig, 64, dot + 1, strlen(dot + 1)), 64);
}

static const uint8_t P256_N[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};

static void negate_s(uint8_t sig[64]) /* s := n - s */
{
    unsigned borrow = 0;
    for (int i = 31; i >= 0; --i) {
        unsigned d = (unsigned)P256_N[i] - sig[32 + i] - borrow;
        sig[32 + i] = (uint8_t)d;
        borrow = (d >> 8) & 1;
    }
}

static char *hs256_token(const char *hdr, const char *payload, const void *secret, size_t secret_len)
{
    char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload));
    size_t n = strlen(h) + 1 + strlen(p);
    char *signing = malloc(n + 1);
    snprintf(signing, n + 1, "%s.%s", h, p);
    uint8_t mac[32];
    unsigned maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)signing, n, mac, &maclen));
    char *m = b64(mac, maclen);
    char *t = malloc(n + 1 + strlen(m) + 1);
    sprintf(t, "%s.%s", signing, m);
    free(h), free(p), free(signing), free(m);
    return t;
}

/* ---- fixture ------------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    k_own = auth_key_generate();
    k_other = auth_key_generate();
    k_ext = auth_key_generate();
    ks_own = auth_keyset_new();
    ks_ext = auth_keyset_new();
    /* the set takes its own key objects: re-create them from PEM so k_own / k_ext stay ours to sign with */
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    PEM_write_bio_PrivateKey(bio, auth_key_pkey(k_own), NULL, NULL, 0, NULL, NULL);
    long n = BIO_get_mem_data(bio, &pem);
    assert_int_equal(auth_keyset_add(ks_own, auth_key_from_pem(pem, (size_t)n, NULL, 0), NOW - 1000, INT64_MAX), 0);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, auth_key_pkey(k_ext), NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &pem);
    assert_int_equal(auth_keyset_add(ks_ext, auth_key_from_pem(pem, (size_t)n, NULL, 0), 0, INT64_MAX), 0);
    BIO_free(bio);
    auth_issuer_t issuers[2] = {{ISS, "hegate", ks_own}, {EXT_ISS, "hegate-ext", ks_ext}};
    char err[256];
    verifier = auth_verifier_new(issuers, 2, 8192, err, sizeof(err));
    assert_non_null(verifier);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    auth_verifier_free(verifier);
    auth_keyset_free(ks_own);
    auth_keyset_free(ks_ext);
    auth_key_free(k_own);
    auth_key_free(k_other);
    auth_key_free(k_ext);
    return 0;
}

/* ---- building blocks ---------------------------------------------------------------------------- */

static void test_b64url_strict(void **state)
{
    (void)state;
    uint8_t in[100], out[100];
    char enc[CRYPTO_B64URL_LEN(100) + 1];
    for (size_t len = 0; len <= sizeof(in); ++len) {
        for (size_t i = 0; i != len; ++i)
            in[i] = (uint8_t)(i * 37 + len);
        size_t n = crypto_b64url_encode(enc, in, len);
        assert_int_equal(n, CRYPTO_B64URL_LEN(len));
        assert_null(strchr(enc, '='));
        assert_int_equal(crypto_b64url_decode(out, sizeof(out), enc, n), (long)len);
        assert_memory_equal(in, out, len);
    }
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QQ", 2), 1);  /* "A" */
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QR", 2), -1); /* same byte, unused bits set */
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUI", 3), 2); /* "AB" */
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUJ", 3), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QQ==", 4), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "Q", 1), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUJD+A", 6), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUJD/A", 6), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUJ D", 5), -1);
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "QUJD\0A", 6), -1);
    assert_int_equal(crypto_b64url_decode(out, 2, "QUJD", 4), -1); /* does not fit */
    assert_int_equal(crypto_b64url_decode(out, sizeof(out), "", 0), 0);
}

static void test_json_parser_limits(void **state)
{
    (void)state;
    json_t *j = auth_json_parse_object("{\"a\":1}", 7, 4);
    assert_non_null(j);
    json_decref(j);
    assert_null(auth_json_parse_object("{\"a\":1,\"a\":2}", 13, 4)); /* duplicate key */
    assert_null(auth_json_parse_object("[1]", 3, 4));                /* not an object */
    assert_null(auth_json_parse_object("{\"a\":1} x", 9, 4));        /* trailing bytes */
    assert_null(auth_json_parse_object("{\"a\":1}{}", 9, 4));
    assert_null(auth_json_parse_object("{\"a\":\"\\u0000\"}", 14, 4)); /* NUL in a string */
    assert_null(auth_json_parse_object("{\"a\":\"\xff\"}", 8, 4));     /* not UTF-8 */
    assert_null(auth_json_parse_object("{\"a\":[[[[1]]]]}", 15, 4));   /* 5 levels */
    j = auth_json_parse_object("{\"a\":[[[1]]]}", 13, 4);              /* 4 levels */
    assert_non_null(j);
    json_decref(j);
    j = auth_json_parse_object("{\"a\":\"[[[[[[\\\"{{{{{{\"}", 22, 2); /* brackets inside strings do not count */
    assert_non_null(j);
    json_decref(j);
    /* a million open brackets: refused by the pre-scan, before jansson recurses */
    size_t big = 1000000;
    char *deep = malloc(big);
    memset(deep, '[', big);
    deep[0] = '{';
    assert_null(auth_json_parse_object(deep, big, 16));
    free(deep);
}

/* ---- signing and the happy path ----------------------------------------------------------------- */

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    json_t *c = base_claims();
    char *tok = auth_jwt_sign(k_own, c);
    json_decref(c);
    assert_non_null(tok);

    /* the header is exactly what SPEC §6 says */
    const char *dot = strchr(tok, '.');
    char hdr[256];
    long n = crypto_b64url_decode(hdr, sizeof(hdr) - 1, tok, (size_t)(dot - tok));
    assert_true(n > 0);
    hdr[n] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_string_equal(hdr, want);
    assert_int_equal(strlen(auth_key_kid(k_own)), AUTH_OWN_KID_LEN);

    auth_claims_t cl;
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW, &cl), AUTH_OK);
    assert_string_equal(cl.iss, ISS);
    assert_string_equal(cl.sub, "u-7f3a9c");
    assert_string_equal(cl.client_id, "hecheng-app");
    assert_string_equal(cl.scope, "openid appointment");
    assert_string_equal(cl.sid, "s-42");
    assert_string_equal(cl.jti, "j-0001");
    assert_string_equal(cl.acr, "pwd");
    assert_string_equal(cl.kid, auth_key_kid(k_own));
    assert_int_equal(cl.exp, NOW + 900);
    assert_int_equal(cl.iat, NOW);
    assert_int_equal(cl.nbf, 0);
    assert_int_equal(cl.issuer_index, 0);
    assert_int_equal(cl.valid_until, NOW + 900 + AUTH_LEEWAY);
    free(tok);

    /* the text form signs byte for byte, and refuses what is not one JSON object */
    const char *text = "{\"iss\":\"https://hegate.example\",\"sub\":\"a\",\"aud\":[\"x\",\"hegate\"],\"client_id\":\"c\","
                       "\"iat\":1700000000,\"exp\":1700000100,\"jti\":\"j\"}";
    tok = auth_jwt_sign_text(k_own, text, strlen(text));
    assert_non_null(tok);
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW, &cl), AUTH_OK);
    assert_string_equal(cl.sid, "");
    assert_string_equal(cl.scope, "");
    free(tok);
    assert_null(auth_jwt_sign_text(k_own, "[1]", 3));
    assert_null(auth_jwt_sign_text(k_own, "{\"a\":1,\"a\":1}", 13));
    /* claims must be an object; a key without its private half cannot sign */
    json_t *arr = json_array();
    assert_null(auth_jwt_sign(k_own, arr));
    json_decref(arr);
    char *jwks = auth_keyset_jwks(ks_own, NOW);
    json_t *doc = json_loads(jwks, 0, NULL);
    char *jwk = json_dumps(json_array_get(json_object_get(doc, "keys"), 0), JSON_COMPACT);
    auth_key_t *pub = auth_key_from_jwk(jwk, strlen(jwk), NULL, 0);
    assert_non_null(pub);
    assert_false(auth_key_has_private(pub));
    c = base_claims();
    assert_null(auth_jwt_sign(pub, c));
    assert_null(auth_jwt_sign_text(pub, "{}", 2));
    json_decref(c);
    auth_key_free(pub);
    free(jwk);
    json_decref(doc);
    free(jwks);
}

static void test_own_signatures_are_low_s(void **state)
{
    (void)state;
    static const uint8_t half_n[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF,
                                       0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B,
                                       0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};
    for (int i = 0; i < 64; ++i) {
        json_t *c = base_claims();
        json_object_set_new(c, "jti", json_sprintf("j-%d", i));
        char *tok = auth_jwt_sign(k_own, c);
        json_decref(c);
        uint8_t sig[64];
        get_sig(tok, sig);
        assert_true(memcmp(sig + 32, half_n, 32) <= 0);
        assert_int_equal(verify(tok), AUTH_OK);
        free(tok);
    }
}

/* ---- attacks: algorithms ------------------------------------------------------------------------ */

static void test_alg_none_rejected(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    char *h = b64(own_header(k_own, "none", "at+jwt"), strlen(own_header(k_own, "none", "at+jwt")));
    char *pp = b64(p, strlen(p));
    char tok[2048];
    snprintf(tok, sizeof(tok), "%s.%s.", h, pp);
    assert_reason(strdup(tok), AUTH_ALG_NOT_ALLOWED);
    free(h);
    /* "NoNe", "NONE", "", with or without a signature, and lower-case es256 */
    const char *algs[] = {"NoNe", "NONE", "", "es256", "ES256 ", "ES384", "ES512", "RS256", "PS256", "EdDSA", "HS256"};
    for (size_t i = 0; i != sizeof(algs) / sizeof(algs[0]); ++i) {
        const char *hdr = own_header(k_own, algs[i], "at+jwt");
        h = b64(hdr, strlen(hdr));
        snprintf(tok, sizeof(tok), "%s.%s.", h, pp);
        assert_reason(strdup(tok), AUTH_ALG_NOT_ALLOWED);
        assert_reason(token_with(k_own, hdr, p), AUTH_ALG_NOT_ALLOWED); /* even validly ES256-signed */
        free(h);
    }
    /* alg missing or not a string: a bad header */
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "{\"typ\":\"at+jwt\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    snprintf(hdr, sizeof(hdr), "{\"alg\":[\"ES256\"],\"typ\":\"at+jwt\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    snprintf(hdr, sizeof(hdr), "{\"alg\":null,\"typ\":\"at+jwt\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    /* two alg members (the second might win in another parser): the header is not one JSON object */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_MALFORMED);
    free(pp);
    free(p);
}

static void test_hs256_key_confusion_rejected(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    const char *hdr = own_header(k_own, "HS256", "at+jwt");
    /* secret = the public key PEM, as libjwt 1.10.2 would accept */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, auth_key_pkey(k_own));
    char *pem;
    long pemlen = BIO_get_mem_data(bio, &pem);
    assert_reason(hs256_token(hdr, p, pem, (size_t)pemlen), AUTH_ALG_NOT_ALLOWED);
    BIO_free(bio);
    /* secret = our published JWK / JWKS text */
    char *jwks = auth_keyset_jwks(ks_own, NOW);
    assert_reason(hs256_token(hdr, p, jwks, strlen(jwks)), AUTH_ALG_NOT_ALLOWED);
    json_t *doc = json_loads(jwks, 0, NULL);
    char *jwk = json_dumps(json_array_get(json_object_get(doc, "keys"), 0), JSON_COMPACT);
    assert_reason(hs256_token(hdr, p, jwk, strlen(jwk)), AUTH_ALG_NOT_ALLOWED);
    /* and HS384/HS512 spellings */
    assert_reason(hs256_token(own_header(k_own, "HS384", "at+jwt"), p, jwk, strlen(jwk)), AUTH_ALG_NOT_ALLOWED);
    assert_reason(hs256_token(own_header(k_own, "hs256", "at+jwt"), p, jwk, strlen(jwk)), AUTH_ALG_NOT_ALLOWED);
    free(jwk);
    json_decref(doc);
    free(jwks);
    free(p);
}

/* ---- attacks: keys and signatures --------------------------------------------------------------- */

static void test_unknown_and_missing_kid(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    assert_reason(token_with(k_own, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"AAAAAAAAAAA\"}", p), AUTH_UNKNOWN_KID);
    assert_reason(token_with(k_own, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", p), AUTH_BAD_HEADER);
    assert_reason(token_with(k_own, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"\"}", p), AUTH_BAD_HEADER);
    assert_reason(token_with(k_own, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":42}", p), AUTH_BAD_HEADER);
    /* a kid with a NUL in the middle must not match a prefix */
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\\u0000x\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_MALFORMED);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%sx\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_UNKNOWN_KID);
    free(p);
}

static void test_foreign_key_claiming_known_kid(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    /* k_other is in no set but names k_own's kid */
    assert_reason(token_with(k_other, own_header(k_own, "ES256", "at+jwt"), p), AUTH_BAD_SIGNATURE);
    /* the external issuer's key names our kid: signature fails too */
    assert_reason(token_with(k_ext, own_header(k_own, "ES256", "at+jwt"), p), AUTH_BAD_SIGNATURE);
    free(p);
}

static void test_signature_encodings(void **state)
{
    (void)state;
    char *tok = token_claims(base_claims());
    uint8_t sig[64];
    get_sig(tok, sig);

    /* high S (the same signature's twin) verifies: JOSE allows it and other signers produce it */
    uint8_t twin[64];
    memcpy(twin, sig, 64);
    negate_s(twin);
    assert_reason(replace_sig(tok, twin, 64), AUTH_OK);

    /* DER-encoded ECDSA-Sig-Value instead of raw r‖s */
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    uint8_t *der = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    assert_true(derlen > 64);
    assert_reason(replace_sig(tok, der, (size_t)derlen), AUTH_BAD_SIGNATURE);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);

    /* wrong lengths, zero and out-of-range scalars, a flipped bit */
    assert_reason(replace_sig(tok, sig, 63), AUTH_BAD_SIGNATURE);
    uint8_t longer[66] = {0};
    memcpy(longer, sig, 64);
    assert_reason(replace_sig(tok, longer, 66), AUTH_BAD_SIGNATURE);
    assert_reason(replace_sig(tok, sig, 0), AUTH_BAD_SIGNATURE);
    uint8_t bad[64];
    memset(bad, 0, 64);
    assert_reason(replace_sig(tok, bad, 64), AUTH_BAD_SIGNATURE);
    memcpy(bad, P256_N, 32);
    memcpy(bad + 32, sig + 32, 32);
    assert_reason(replace_sig(tok, bad, 64), AUTH_BAD_SIGNATURE); /* r = n */
    memcpy(bad, sig, 32);
    memcpy(bad + 32, P256_N, 32);
    assert_reason(replace_sig(tok, bad, 64), AUTH_BAD_SIGNATURE); /* s = n */
    memcpy(bad, sig, 64);
    bad[10] ^= 1;
    assert_reason(replace_sig(tok, bad, 64), AUTH_BAD_SIGNATURE);

    /* a modified payload under the old signature */
    char *t2 = strdup(tok);
    char *pay = strchr(t2, '.') + 1;
    pay[5] = pay[5] == 'A' ? 'B' : 'A';
    assert_reason(t2, AUTH_BAD_SIGNATURE);
    free(tok);
}

/* ---- attacks: the compact form and the length cap ----------------------------------------------- */

static char *cat(const char *a, const char *b)
{
    char *s = malloc(strlen(a) + strlen(b) + 1);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

static void test_form_rejected(void **state)
{
    (void)state;
    char *tok = token_claims(base_claims());
    assert_reason(strdup(tok), AUTH_OK);
    /* trailing garbage */
    assert_reason(cat(tok, "."), AUTH_MALFORMED);
    assert_reason(cat(tok, ".x"), AUTH_MALFORMED);
    assert_reason(cat(tok, " "), AUTH_MALFORMED);
    assert_reason(cat(tok, "\n"), AUTH_MALFORMED);
    assert_reason(cat(tok, "x"), AUTH_MALFORMED);        /* 87 chars: non-canonical last character */
    assert_reason(cat(tok, "AAAA"), AUTH_BAD_SIGNATURE); /* canonical, but 67 bytes */
    assert_reason(cat(" ", tok), AUTH_MALFORMED);
    /* padding anywhere */
    assert_reason(cat(tok, "=="), AUTH_MALFORMED);
    {
        char *t = strdup(tok);
        const char *dot = strchr(t, '.');
        size_t hl = (size_t)(dot - t);
        char *padded = malloc(strlen(t) + 4);
        memcpy(padded, t, hl);
        strcpy(padded + hl, "==");
        strcat(padded, t + hl);
        assert_reason(padded, AUTH_MALFORMED);
        free(t);
    }
    /* standard-alphabet characters, and a non-canonical last signature character */
    {
        char *t = strdup(tok);
        char *s = strrchr(t, '.') + 1;
        size_t sl = strlen(s); /* 86: the last character carries 4 unused bits */
        assert_int_equal(sl, 86);
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(alpha, s[sl - 1]) - alpha);
        s[sl - 1] = alpha[v | 1];
        assert_reason(t, AUTH_MALFORMED);
        t = strdup(tok);
        s = strrchr(t, '.') + 1;
        s[3] = '+';
        assert_reason(t, AUTH_MALFORMED);
        t = strdup(tok);
        s = strrchr(t, '.') + 1;
        s[3] = '/';
        assert_reason(t, AUTH_MALFORMED);
    }
    /* parts missing or extra */
    assert_reason(strdup(""), AUTH_MALFORMED);
    assert_reason(strdup("."), AUTH_MALFORMED);
    assert_reason(strdup(".."), AUTH_MALFORMED);
    assert_reason(strdup("..."), AUTH_MALFORMED);
    {
        char *t = strdup(tok);
        *strrchr(t, '.') = '\0';
        assert_reason(t, AUTH_MALFORMED); /* two parts */
        t = strdup(tok);
        char *p = strchr(t, '.');
        memmove(p + 1, strchr(p + 1, '.'), strlen(strchr(p + 1, '.')) + 1);
        assert_reason(t, AUTH_MALFORMED); /* empty payload */
        t = strdup(strchr(tok, '.'));
        assert_reason(t, AUTH_MALFORMED); /* empty header */
    }
    /* header or payload that is not one JSON object */
    assert_reason(token_with(k_own, "[\"ES256\"]", "{}"), AUTH_MALFORMED);
    assert_reason(token_with(k_own, "not json", "{}"), AUTH_MALFORMED);
    {
        const char *h = own_header(k_own, "ES256", "at+jwt");
        assert_reason(token_with(k_own, h, "not json"), AUTH_MALFORMED);
        assert_reason(token_with(k_own, h, "[]"), AUTH_MALFORMED);
        assert_reason(token_with(k_own, h, "{} "), AUTH_MISSING_CLAIM); /* an object (whitespace is JSON), but empty */
    }
    /* the compact form only: a JWS JSON serialization is not a token */
    assert_reason(strdup("{\"payload\":\"e30\",\"signatures\":[]}"), AUTH_MALFORMED);
    free(tok);
}

static int must_not_be_called(void *data, const char *sid, const char *jti)
{
    (void)data, (void)sid, (void)jti;
    fail_msg("revocation asked for a token that is not valid");
    return 1;
}

static void test_length_cap_first(void **state)
{
    (void)state;
    /* 2 MB: refused as too long, before any parsing (libjwt 1.10.2 crashes on this) */
    size_t big = 2 * 1024 * 1024;
    char *t = malloc(big + 1);
    memset(t, 'A', big);
    t[big] = '\0';
    t[100] = '.';
    t[200] = '.';
    auth_claims_t c;
    assert_int_equal(auth_verify_token(verifier, t, big, NOW, &c), AUTH_TOO_LONG);
    assert_int_equal(auth_verify_bearer(verifier, NULL, t, big, NOW, must_not_be_called, NULL, &c), AUTH_TOO_LONG);
    assert_int_equal(auth_jws_verify_es256(t, big, k_own, 0, NULL, NULL), AUTH_TOO_LONG);
    assert_int_equal(auth_jws_verify_es256(t, 8193, k_own, 0, NULL, NULL), AUTH_TOO_LONG); /* default cap 8192 */
    free(t);

    /* a valid token of about 8 KiB: at the cap it is judged on its merits, one byte under the cap it is too long */
    json_t *cl = base_claims();
    char pad[5700];
    memset(pad, 'x', sizeof(pad));
    json_object_set_new(cl, "pad", json_stringn(pad, sizeof(pad)));
    char *tok = token_claims(cl);
    size_t len = strlen(tok);
    assert_true(len > 8000 && len <= 8192);
    auth_issuer_t is = {ISS, "hegate", ks_own};
    char err[256];
    auth_verifier_t *at = auth_verifier_new(&is, 1, len, err, sizeof(err));
    auth_verifier_t *under = auth_verifier_new(&is, 1, len - 1, err, sizeof(err));
    assert_int_equal(auth_verify_token(at, tok, len, NOW, &c), AUTH_OK);
    assert_int_equal(auth_verify_token(under, tok, len, NOW, &c), AUTH_TOO_LONG);
    assert_int_equal(auth_verify_token(verifier, tok, len, NOW, &c), AUTH_OK);
    auth_verifier_free(at);
    auth_verifier_free(under);
    free(tok);
}

/* ---- header rules ------------------------------------------------------------------------------- */

static void test_typ_rules(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    const char *ok[] = {"at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"};
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i)
        assert_reason(token_with(k_own, own_header(k_own, "ES256", ok[i]), p), AUTH_OK);
    const char *bad[] = {"JWT",         "jwt", "", "at+jwt ", "application/jwt", "at+jwt; charset=utf-8", "xapplication/at+jwt",
                         "secevent+jwt"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        assert_reason(token_with(k_own, own_header(k_own, "ES256", bad[i]), p), AUTH_BAD_TYP);
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_TYP);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":1,\"kid\":\"%s\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_TYP);
    free(p);
}

static void test_crit_and_cty_rejected(void **state)
{
    (void)state;
    char *p = dumps(base_claims());
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"crit\":[\"exp\"],\"exp\":1}",
             auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"crit\":[]}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"b64\":false,\"crit\":[\"b64\"]}",
             auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"cty\":\"JWT\"}", auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_BAD_HEADER);
    /* header members we never use (jku, x5u, an embedded jwk) change nothing: the kid decides */
    snprintf(hdr, sizeof(hdr),
             "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"jku\":\"https://evil.example/jwks\",\"jwk\":{\"kty\":\"EC\"}}",
             auth_key_kid(k_own));
    assert_reason(token_with(k_own, hdr, p), AUTH_OK);
    assert_reason(token_with(k_other, hdr, p), AUTH_BAD_SIGNATURE);
    /* an oversized header */
    char *huge = malloc(3000);
    int n = snprintf(huge, 3000, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"x\":\"", auth_key_kid(k_own));
    memset(huge + n, 'a', 2500);
    strcpy(huge + n + 2500, "\"}");
    assert_reason(token_with(k_own, huge, p), AUTH_BAD_HEADER);
    free(huge);
    free(p);
}

/* ---- claims ------------------------------------------------------------------------------------- */

static char *claims_set(const char *name, json_t *value)
{
    json_t *c = base_claims();
    if (value == NULL)
        json_object_del(c, name);
    else
        json_object_set_new(c, name, value);
    return token_claims(c);
}

static void test_time_claims_at_the_leeway_edges(void **state)
{
    (void)state;
    /* exp must be > now - 30 */
    assert_reason(claims_set("exp", json_integer(NOW - 29)), AUTH_OK);
    assert_reason(claims_set("exp", json_integer(NOW - 30)), AUTH_EXPIRED);
    assert_reason(claims_set("exp", json_integer(NOW - 31)), AUTH_EXPIRED);
    assert_reason(claims_set("exp", json_integer(0)), AUTH_EXPIRED);
    assert_reason(claims_set("exp", json_integer(INT64_MIN)), AUTH_EXPIRED);
    assert_reason(claims_set("exp", json_integer(INT64_MAX)), AUTH_OK);
    assert_reason(claims_set("exp", json_real((double)NOW + 100.5)), AUTH_OK);
    assert_reason(claims_set("exp", json_real((double)NOW - 31.5)), AUTH_EXPIRED);
    /* iat and nbf must be <= now + 30 */
    assert_reason(claims_set("iat", json_integer(NOW + 30)), AUTH_OK);
    assert_reason(claims_set("iat", json_integer(NOW + 31)), AUTH_NOT_YET_VALID);
    assert_reason(claims_set("iat", json_integer(INT64_MAX)), AUTH_NOT_YET_VALID);
    assert_reason(claims_set("nbf", json_integer(NOW + 30)), AUTH_OK);
    assert_reason(claims_set("nbf", json_integer(NOW + 31)), AUTH_NOT_YET_VALID);
    assert_reason(claims_set("nbf", json_integer(NOW - 1000)), AUTH_OK);
    /* wrong types */
    assert_reason(claims_set("exp", json_string("1700000900")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("exp", json_true()), AUTH_BAD_CLAIM);
    assert_reason(claims_set("nbf", json_string("0")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("iat", json_null()), AUTH_BAD_CLAIM);
    assert_reason(claims_set("exp", json_real(1e300)), AUTH_BAD_CLAIM);
    /* the same token, judged at different times */
    char *tok = claims_set("exp", json_integer(NOW + 60));
    auth_claims_t c;
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW + 89, &c), AUTH_OK);
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW + 90, &c), AUTH_EXPIRED);
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW - 30, &c), AUTH_OK);
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW - 31, &c), AUTH_NOT_YET_VALID); /* iat = NOW */
    free(tok);
}

static void test_iss_and_aud(void **state)
{
    (void)state;
    assert_reason(claims_set("iss", json_string("https://evil.example")), AUTH_BAD_ISS);
    assert_reason(claims_set("iss", json_string("https://hegate.example/")), AUTH_BAD_ISS);
    assert_reason(claims_set("iss", json_string(EXT_ISS)), AUTH_BAD_ISS); /* another trusted issuer, but our key */
    assert_reason(claims_set("iss", json_integer(1)), AUTH_BAD_ISS);
    assert_reason(claims_set("iss", NULL), AUTH_MISSING_CLAIM);
    assert_reason(claims_set("aud", json_string("hegate2")), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", json_string("HEGATE")), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", json_pack("[s,s]", "other", "hegate")), AUTH_OK);
    assert_reason(claims_set("aud", json_pack("[s]", "other")), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", json_array()), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", json_pack("[s,i]", "hegate", 1)), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", json_pack("{s:s}", "aud", "hegate")), AUTH_BAD_AUD);
    assert_reason(claims_set("aud", NULL), AUTH_MISSING_CLAIM);
}

static void test_required_and_bad_claims(void **state)
{
    (void)state;
    const char *required[] = {"iss", "aud", "exp", "iat", "sub", "client_id", "jti"};
    for (size_t i = 0; i != sizeof(required) / sizeof(required[0]); ++i)
        assert_reason(claims_set(required[i], NULL), AUTH_MISSING_CLAIM);
    const char *optional[] = {"scope", "sid", "acr", "nbf"};
    for (size_t i = 0; i != sizeof(optional) / sizeof(optional[0]); ++i)
        assert_reason(claims_set(optional[i], NULL), AUTH_OK);
    assert_reason(claims_set("sub", json_string("")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("sub", json_string("a\r\nx-hegate-sub: admin")), AUTH_BAD_CLAIM); /* header injection */
    assert_reason(claims_set("client_id", json_string("a\tb")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("scope", json_string("openid\x7f")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("scope", json_pack("[s]", "openid")), AUTH_BAD_CLAIM);
    assert_reason(claims_set("sid", json_integer(42)), AUTH_BAD_CLAIM);
    assert_reason(claims_set("jti", json_null()), AUTH_BAD_CLAIM);
    assert_reason(claims_set("sub", json_string("张三的假名-7f3a")), AUTH_OK); /* UTF-8 is fine */
    char longs[600];
    memset(longs, 's', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    longs[127] = '\0';
    assert_reason(claims_set("sub", json_string(longs)), AUTH_OK); /* 127 bytes fit */
    longs[127] = 's';
    longs[128] = '\0';
    assert_reason(claims_set("sub", json_string(longs)), AUTH_BAD_CLAIM); /* 128 do not: refused, never cut */
    longs[128] = 's';
    assert_reason(claims_set("scope", json_string(longs)), AUTH_BAD_CLAIM);
    /* nesting in the claims: 16 levels pass, 17 do not */
    json_t *deep = json_array();
    for (int i = 0; i < 14; ++i)
        deep = json_pack("[o]", deep);
    assert_reason(claims_set("x", deep), AUTH_OK); /* 15 arrays inside the object: 16 levels */
    deep = json_array();
    for (int i = 0; i < 15; ++i)
        deep = json_pack("[o]", deep);
    assert_reason(claims_set("x", deep), AUTH_MALFORMED);
    /* duplicate claims */
    char *p = dumps(base_claims());
    char *dup = malloc(strlen(p) + 32);
    sprintf(dup, "{\"sub\":\"admin\",%s", p + 1);
    assert_reason(token_with(k_own, own_header(k_own, "ES256", "at+jwt"), dup), AUTH_MALFORMED);
    free(dup);
    free(p);
}

/* ---- revocation --------------------------------------------------------------------------------- */

struct revocation {
    const char *sid, *jti;
    int answer_unknown;
    int calls;
    int saw_null_sid;
};

static int revoked_cb(void *data, const char *sid, const char *jti)
{
    struct revocation *r = data;
    ++r->calls;
    if (sid == NULL)
        r->saw_null_sid = 1;
    if (r->answer_unknown)
        return -1;
    if (sid != NULL && r->sid != NULL && strcmp(sid, r->sid) == 0)
        return 1;
    if (r->jti != NULL && strcmp(jti, r->jti) == 0)
        return 1;
    return 0;
}

static void test_revocation(void **state)
{
    (void)state;
    char *tok = token_claims(base_claims());
    auth_claims_t c;
    struct revocation r = {NULL, NULL, 0, 0, 0};
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, revoked_cb, &r, &c), AUTH_OK);
    r.sid = "s-42";
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, revoked_cb, &r, &c), AUTH_REVOKED);
    r.sid = NULL;
    r.jti = "j-0001";
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, revoked_cb, &r, &c), AUTH_REVOKED);
    r.jti = NULL;
    r.answer_unknown = 1;
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, revoked_cb, &r, &c), AUTH_UNAVAILABLE);
    assert_int_equal(r.calls, 4);
    assert_int_equal(r.saw_null_sid, 0);
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, NULL, NULL, &c), AUTH_INTERNAL);
    free(tok);
    /* a token without sid (client_credentials) asks with sid NULL */
    tok = claims_set("sid", NULL);
    r = (struct revocation){NULL, NULL, 0, 0, 0};
    assert_int_equal(auth_verify_bearer(verifier, NULL, tok, strlen(tok), NOW, revoked_cb, &r, &c), AUTH_OK);
    assert_int_equal(r.saw_null_sid, 1);
    /* an invalid token never reaches the callback */
    char *bad = cat(tok, "x");
    r.calls = 0;
    assert_int_not_equal(auth_verify_bearer(verifier, NULL, bad, strlen(bad), NOW, revoked_cb, &r, &c), AUTH_OK);
    assert_int_equal(r.calls, 0);
    free(bad);
    free(tok);
}

/* ---- trusted issuers and key retirement --------------------------------------------------------- */

static void test_trusted_issuer(void **state)
{
    (void)state;
    json_t *c = base_claims();
    json_object_set_new(c, "iss", json_string(EXT_ISS));
    json_object_set_new(c, "aud", json_string("hegate-ext"));
    char *p = dumps(c);
    char *tok = token_with(k_ext, own_header(k_ext, "ES256", "application/at+jwt"), p);
    auth_claims_t cl;
    assert_int_equal(auth_verify_token(verifier, tok, strlen(tok), NOW, &cl), AUTH_OK);
    assert_int_equal(cl.issuer_index, 1);
    assert_string_equal(cl.iss, EXT_ISS);
    free(tok);
    free(p);
    /* the external issuer's key with our iss: the iss must be the key's issuer */
    p = dumps(base_claims());
    assert_reason(token_with(k_ext, own_header(k_ext, "ES256", "at+jwt"), p), AUTH_BAD_ISS);
    free(p);
    /* its audience, not ours */
    c = base_claims();
    json_object_set_new(c, "iss", json_string(EXT_ISS));
    p = dumps(c);
    assert_reason(token_with(k_ext, own_header(k_ext, "ES256", "at+jwt"), p), AUTH_BAD_AUD);
    free(p);

    /* a kid under two issuers is refused when the verifier is built */
    auth_issuer_t twice[2] = {{ISS, "hegate", ks_own}, {EXT_ISS, "hegate", ks_own}};
    char err[256] = "";
    assert_null(auth_verifier_new(twice, 2, 0, err, sizeof(err)));
    assert_non_null(strstr(err, auth_key_kid(k_own)));
}

static void test_retired_key(void **state)
{
    (void)state;
    auth_keyset_t *ks = auth_keyset_new();
    auth_key_t *fresh = auth_key_generate(), *old = auth_key_generate();
    char old_kid[AUTH_KID_MAX + 1];
    strcpy(old_kid, auth_key_kid(old));
    /* sign with the old key before handing it to the set */
    char *p = dumps(base_claims());
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", old_kid);
    char *tok = token_with(old, hdr, p);
    assert_int_equal(auth_keyset_add(ks, fresh, NOW, INT64_MAX), 0);
    assert_int_equal(auth_keyset_add(ks, old, NOW - 100, NOW + 60), 0);
    auth_issuer_t is = {ISS, "hegate", ks};
    char err[256];
    auth_verifier_t *v = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    auth_claims_t c;
    assert_int_equal(auth_verify_token(v, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_int_equal(c.valid_until, NOW + 60); /* the key retires before the token expires */
    assert_int_equal(auth_verify_token(v, tok, strlen(tok), NOW + 60, &c), AUTH_UNKNOWN_KID);
    assert_ptr_equal(auth_keyset_signer(ks), fresh);
    auth_verifier_free(v);
    auth_keyset_free(ks);
    free(tok);
    free(p);
}

/* ---- the RFC 7515 A.3 example, checked through the low-level JWS function ----------------------- */

static void test_rfc7515_a3(void **state)
{
    (void)state;
    const char *jwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                      "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
    const char *jws =
        "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    char err[128];
    auth_key_t *k = auth_key_from_jwk(jwk, strlen(jwk), err, sizeof(err));
    assert_non_null(k);
    const char *payload = NULL;
    size_t plen = 0;
    assert_int_equal(auth_jws_verify_es256(jws, strlen(jws), k, 0, &payload, &plen), AUTH_OK);
    char buf[256];
    long n = crypto_b64url_decode(buf, sizeof(buf) - 1, payload, plen);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"iss\":\"joe\""));
    /* one flipped signature bit, and the same JWS under a wrong key */
    char *t = strdup(jws);
    t[strlen(t) - 3] ^= 1;
    assert_int_not_equal(auth_jws_verify_es256(t, strlen(t), k, 0, NULL, NULL), AUTH_OK);
    free(t);
    assert_int_equal(auth_jws_verify_es256(jws, strlen(jws), k_own, 0, NULL, NULL), AUTH_BAD_SIGNATURE);
    auth_key_free(k);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(auth_reason_name(AUTH_OK), "ok");
    assert_string_equal(auth_reason_name(AUTH_TOO_LONG), "too_long");
    assert_string_equal(auth_reason_name(AUTH_ALG_NOT_ALLOWED), "alg_not_allowed");
    assert_string_equal(auth_reason_name(AUTH_NOT_YET_VALID), "not_yet_valid");
    assert_string_equal(auth_reason_name(AUTH_INTERNAL), "internal");
    assert_string_equal(auth_reason_name((auth_reason_t)999), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_strict),
        cmocka_unit_test(test_json_parser_limits),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_own_signatures_are_low_s),
        cmocka_unit_test(test_alg_none_rejected),
        cmocka_unit_test(test_hs256_key_confusion_rejected),
        cmocka_unit_test(test_unknown_and_missing_kid),
        cmocka_unit_test(test_foreign_key_claiming_known_kid),
        cmocka_unit_test(test_signature_encodings),
        cmocka_unit_test(test_form_rejected),
        cmocka_unit_test(test_length_cap_first),
        cmocka_unit_test(test_typ_rules),
        cmocka_unit_test(test_crit_and_cty_rejected),
        cmocka_unit_test(test_time_claims_at_the_leeway_edges),
        cmocka_unit_test(test_iss_and_aud),
        cmocka_unit_test(test_required_and_bad_claims),
        cmocka_unit_test(test_revocation),
        cmocka_unit_test(test_trusted_issuer),
        cmocka_unit_test(test_retired_key),
        cmocka_unit_test(test_rfc7515_a3),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests_name("auth_jwt", tests, setup, teardown);
}
