/*
 * tests/fuzz/fuzz_jwt.c — libFuzzer target for auth/'s token layer: whatever bytes arrive after
 * "Bearer " (or sit in a trusted issuer's JWKS file), the verifier answers with a reason — never a
 * crash, a hang, a leak or undefined behaviour. The first byte picks what the rest feeds:
 *
 *   0  a token, through auth_verify_token, auth_verify_bearer (with a token cache), the
 *      low-level auth_jws_verify_es256 and, as a logout hint, auth_verify_id_token_hint
 *   1  "<header JSON>\0<payload JSON>", signed here with the fuzzer's own key so that arbitrary
 *      headers and claims get past the signature and reach every header and claim check (twice:
 *      the second time from the cache); the first "KID" in the header becomes the key's kid
 *   2  a JWKS document (auth_keyset_from_jwks, then a verifier over it and its JWKS re-export)
 *   3  one JWK (auth_key_from_jwk)
 *   4  base64url text and JSON text for the strict decoders
 *
 * The key is generated once, at the first input; the time is fixed, so runs replay exactly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "auth/internal.h"

#define NOW ((int64_t)1700000000)

static auth_keyset_t *ks;
static const auth_key_t *key;
static auth_verifier_t *verifier;
static auth_tokcache_t *cache;

static int revoked(void *data, const char *sid, const char *jti)
{
    (void)data;
    /* exercise all three answers, deterministically */
    if (jti[0] == 'r' || (sid != NULL && sid[0] == 'r'))
        return 1;
    if (jti[0] == 'u')
        return -1;
    return 0;
}

static void init(void)
{
    ks = auth_keyset_new();
    if (ks == NULL || auth_keyset_add(ks, auth_key_generate(), NOW - 100, INT64_MAX) != 0)
        abort();
    key = auth_keyset_signer(ks);
    auth_issuer_t is = {"https://hegate.example", "hegate", ks};
    char err[128];
    verifier = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    cache = auth_tokcache_new(64);
    if (key == NULL || verifier == NULL || cache == NULL)
        abort();
}

static void check_token(const char *tok, size_t len)
{
    auth_claims_t c;
    auth_reason_t r = auth_verify_token(verifier, tok, len, NOW, &c);
    if (r == AUTH_OK && (c.sub[0] == '\0' || c.client_id[0] == '\0' || c.jti[0] == '\0' || c.exp <= NOW - AUTH_LEEWAY))
        abort(); /* an accepted token always has these */
    auth_reason_t r2 = auth_verify_bearer(verifier, cache, tok, len, NOW, revoked, NULL, &c);
    if ((r == AUTH_OK) != (r2 == AUTH_OK || r2 == AUTH_REVOKED || r2 == AUTH_UNAVAILABLE))
        abort(); /* the cached path must agree with the uncached one */
    auth_reason_t r3 = auth_verify_bearer(verifier, cache, tok, len, NOW, revoked, NULL, &c);
    if (r3 != r2)
        abort();
    const char *payload;
    size_t plen;
    auth_jws_verify_es256(tok, len, key, 0, &payload, &plen);
    auth_hint_t hint; /* the same bytes as an id_token_hint (/oauth2/end_session) */
    if (auth_verify_id_token_hint(ks, "https://hegate.example", tok, len, NOW, &hint) == AUTH_OK &&
        (strlen(hint.aud) >= sizeof(hint.aud) || strlen(hint.sid) >= sizeof(hint.sid)))
        abort();
    (void)auth_reason_name(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (verifier == NULL)
        init();
    if (size == 0)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        check_token(in, n);
        break;
    case 1: {
        const char *nul = memchr(in, '\0', n);
        if (nul == NULL)
            break;
        size_t hlen = (size_t)(nul - in), klen = strlen(auth_key_kid(key));
        /* the header text, with the first "KID" replaced by the real kid (seeds cannot know it) */
        char *text = malloc(hlen + klen + 1), *hdr = malloc(CRYPTO_B64URL_LEN(hlen + klen) + 1);
        if (text == NULL || hdr == NULL) {
            free(text);
            free(hdr);
            break;
        }
        memcpy(text, in, hlen);
        size_t tlen = hlen;
        char *at = hlen >= 5 ? memmem(text, hlen, "\"KID\"", 5) : NULL;
        if (at != NULL) {
            size_t off = (size_t)(at - text) + 1;
            memmove(text + off + klen, text + off + 3, hlen - off - 3);
            memcpy(text + off, auth_key_kid(key), klen);
            tlen = hlen - 3 + klen;
        }
        size_t hb = crypto_b64url_encode(hdr, text, tlen);
        free(text);
        char *tok = auth_jws_sign_raw(key, hdr, hb, nul + 1, n - hlen - 1);
        free(hdr);
        if (tok != NULL) {
            check_token(tok, strlen(tok));
            free(tok);
        }
        break;
    }
    case 2: {
        char err[256];
        auth_keyset_t *ext = auth_keyset_from_jwks(in, n, err, sizeof(err));
        if (ext != NULL) {
            auth_issuer_t is[2] = {{"https://hegate.example", "hegate", ks}, {"https://ext.example", "hegate", ext}};
            auth_verifier_t *v = auth_verifier_new(is, 2, 0, err, sizeof(err));
            auth_verifier_free(v);
            free(auth_keyset_jwks(ext, NOW));
            for (size_t i = 0; i != auth_keyset_count(ext); ++i) {
                const char *kid = auth_key_kid(auth_keyset_get(ext, i));
                if (auth_keyset_find(ext, kid, strlen(kid), NOW) != auth_keyset_get(ext, i))
                    abort();
            }
            auth_keyset_free(ext);
        }
        break;
    }
    case 3: {
        char err[256];
        auth_key_free(auth_key_from_jwk(in, n, err, sizeof(err)));
        break;
    }
    case 4: {
        uint8_t *out = malloc(n + 1);
        if (out == NULL)
            break;
        long m = crypto_b64url_decode(out, n + 1, in, n);
        if (m >= 0) { /* canonical: encoding the bytes gives the same text back */
            char *again = malloc(CRYPTO_B64URL_LEN((size_t)m) + 1);
            if (again != NULL && (crypto_b64url_encode(again, out, (size_t)m) != n || memcmp(again, in, n) != 0))
                abort();
            free(again);
        }
        free(out);
        json_decref(auth_json_parse_object(in, n, AUTH_JSON_DEPTH));
        break;
    }
    }
    return 0;
}
