/*
 * auth/jwt.c — ES256 access tokens: signing (for the token endpoint) and the strict verifier of
 * SPEC §6 (for every authenticated request), on jansson and crypto/; libjwt is not used.
 *
 * The gateway calls auth_verify_bearer (or auth_verify_token + its own revocation check) with the
 * exact bytes after "Bearer ". Checks run cheapest first and each failure has its own reason: the
 * length cap before anything else, then the form, the header, the key, the signature — and only
 * then is the payload decoded and parsed. Signature malleability: JOSE (RFC 7518 §3.4) does not
 * forbid high-S signatures and other ES256 signers (PyJWT, OpenSSL) emit them half the time, so
 * high S is accepted; our own signatures are low-S. One token can therefore have two valid
 * spellings: revocation is by jti and sid, never by token hash. Never logs a token or a claim.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "auth/internal.h"

/* ---- ES256, pinned ------------------------------------------------------------------------------ */

int auth_es256_verify(const auth_key_t *key, const void *msg, size_t len, const uint8_t sig[CRYPTO_ES256_SIG_LEN])
{
    if (key->alg != AUTH_ALG_ES256)
        return -1;
    return crypto_es256_verify(key->key, msg, len, sig, CRYPTO_ES256_SIG_LEN);
}

int auth_es256_sign(const auth_key_t *key, const void *msg, size_t len, uint8_t sig[CRYPTO_ES256_SIG_LEN])
{
    if (key->alg != AUTH_ALG_ES256)
        return -1;
    return crypto_es256_sign(key->key, msg, len, sig);
}

/* ---- the compact form -------------------------------------------------------------------------- */

const char *auth_reason_name(auth_reason_t r)
{
    static const char *const names[] = {
        "ok",      "too_long",    "malformed", "bad_header", "alg_not_allowed", "unknown_kid",   "bad_signature",
        "bad_typ", "bad_iss",     "bad_aud",   "expired",    "not_yet_valid",   "missing_claim", "bad_claim",
        "revoked", "unavailable", "internal",
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

typedef struct {
    const char *hdr, *payload, *sig;
    size_t hdr_len, payload_len, sig_len;
} jws_parts_t;

/* 1 if S is canonical unpadded base64url (what crypto_b64url_decode accepts) */
static int b64url_canonical(const char *s, size_t len)
{
    uint8_t tmp[48];
    size_t rem = len % 4, i = 0;
    if (rem == 1)
        return 0;
    for (; i + 64 <= len; i += 64) /* whole quads, 48 bytes at a time */
        if (crypto_b64url_decode(tmp, sizeof(tmp), s + i, 64) < 0)
            return 0;
    return crypto_b64url_decode(tmp, sizeof(tmp), s + i, len - i) >= 0;
}

/* exactly three dot-separated parts, each canonical base64url; header and payload non-empty (an
 * empty signature is left for the signature check to refuse, after alg: "none" has had its say) */
static auth_reason_t jws_split(const char *t, size_t len, jws_parts_t *p)
{
    const char *d1 = memchr(t, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - t)) != NULL)
        return AUTH_MALFORMED;
    p->hdr = t;
    p->hdr_len = (size_t)(d1 - t);
    p->payload = d1 + 1;
    p->payload_len = (size_t)(d2 - p->payload);
    p->sig = d2 + 1;
    p->sig_len = len - (size_t)(p->sig - t);
    if (p->hdr_len == 0 || p->payload_len == 0 || !b64url_canonical(p->hdr, p->hdr_len) ||
        !b64url_canonical(p->payload, p->payload_len) || !b64url_canonical(p->sig, p->sig_len))
        return AUTH_MALFORMED;
    return AUTH_OK;
}

/* Decodes and parses the header; checks the rules every ES256 JWS must meet: alg exactly "ES256"
 * (a missing or non-string alg is a bad header; "none", "HS256", "es256"... are not allowed) and no
 * "crit" (we understand no extension, so any critical one must fail). *HDR is a new reference. */
static auth_reason_t jws_header(const jws_parts_t *p, json_t **hdr)
{
    uint8_t buf[AUTH_HEADER_MAX];
    if (p->hdr_len > CRYPTO_B64URL_LEN(AUTH_HEADER_MAX))
        return AUTH_BAD_HEADER;
    long n = crypto_b64url_decode(buf, sizeof(buf), p->hdr, p->hdr_len);
    if (n < 0)
        return AUTH_MALFORMED;
    json_t *h = auth_json_parse_object((const char *)buf, (size_t)n, 8);
    if (h == NULL)
        return AUTH_MALFORMED;
    json_t *alg = json_object_get(h, "alg");
    auth_reason_t r = AUTH_OK;
    if (!json_is_string(alg))
        r = AUTH_BAD_HEADER;
    else if (json_string_length(alg) != 5 || memcmp(json_string_value(alg), "ES256", 5) != 0)
        r = AUTH_ALG_NOT_ALLOWED;
    else if (json_object_get(h, "crit") != NULL)
        r = AUTH_BAD_HEADER;
    if (r != AUTH_OK) {
        json_decref(h);
        return r;
    }
    *hdr = h;
    return AUTH_OK;
}

/* the signature part must be 64 bytes of r‖s that KEY verifies over "header.payload" */
static auth_reason_t jws_signature(const jws_parts_t *p, const auth_key_t *key)
{
    uint8_t sig[CRYPTO_ES256_SIG_LEN];
    if (p->sig_len != CRYPTO_B64URL_LEN(CRYPTO_ES256_SIG_LEN) ||
        crypto_b64url_decode(sig, sizeof(sig), p->sig, p->sig_len) != CRYPTO_ES256_SIG_LEN)
        return AUTH_BAD_SIGNATURE;
    size_t signed_len = p->hdr_len + 1 + p->payload_len;
    return auth_es256_verify(key, p->hdr, signed_len, sig) == 0 ? AUTH_OK : AUTH_BAD_SIGNATURE;
}

auth_reason_t auth_jws_verify_es256(const char *jws, size_t len, const auth_key_t *key, size_t max_len, const char **payload,
                                    size_t *payload_len)
{
    if (len > (max_len != 0 ? max_len : AUTH_TOKEN_BYTES_DEFAULT))
        return AUTH_TOO_LONG;
    jws_parts_t p;
    json_t *h = NULL;
    auth_reason_t r = jws_split(jws, len, &p);
    if (r == AUTH_OK)
        r = jws_header(&p, &h);
    if (r == AUTH_OK) {
        json_t *kid = json_object_get(h, "kid");
        if (kid != NULL && !json_is_string(kid))
            r = AUTH_BAD_HEADER;
        else if (kid != NULL && key->kid_len != 0 &&
                 (json_string_length(kid) != key->kid_len || memcmp(json_string_value(kid), key->kid, key->kid_len) != 0))
            r = AUTH_UNKNOWN_KID;
        else if (key->alg != AUTH_ALG_ES256)
            r = AUTH_ALG_NOT_ALLOWED;
        else
            r = jws_signature(&p, key);
    }
    json_decref(h);
    if (r == AUTH_OK) {
        if (payload != NULL)
            *payload = p.payload;
        if (payload_len != NULL)
            *payload_len = p.payload_len;
    }
    return r;
}

/* ---- signing ------------------------------------------------------------------------------------ */

char *auth_jws_sign_raw(const auth_key_t *key, const char *hdr_b64, size_t hdr_len, const void *payload, size_t len)
{
    if (!crypto_key_has_private(key->key) || len > ((size_t)1 << 30))
        return NULL;
    size_t signed_len = hdr_len + 1 + CRYPTO_B64URL_LEN(len);
    char *tok = malloc(signed_len + 1 + CRYPTO_B64URL_LEN(CRYPTO_ES256_SIG_LEN) + 1);
    if (tok == NULL)
        return NULL;
    memcpy(tok, hdr_b64, hdr_len);
    tok[hdr_len] = '.';
    crypto_b64url_encode(tok + hdr_len + 1, payload, len);
    uint8_t sig[CRYPTO_ES256_SIG_LEN];
    if (auth_es256_sign(key, tok, signed_len, sig) != 0) {
        free(tok);
        return NULL;
    }
    tok[signed_len] = '.';
    crypto_b64url_encode(tok + signed_len + 1, sig, sizeof(sig));
    return tok;
}

static char *sign_claims(const auth_key_t *key, const char *hdr_b64, size_t hdr_len, const json_t *claims)
{
    if (!json_is_object(claims) || hdr_b64 == NULL)
        return NULL;
    char *text = json_dumps(claims, JSON_COMPACT);
    if (text == NULL)
        return NULL;
    char *tok = auth_jws_sign_raw(key, hdr_b64, hdr_len, text, strlen(text));
    free(text);
    return tok;
}

char *auth_jwt_sign(const auth_key_t *key, const json_t *claims)
{
    return auth_jwt_sign_as(key, AUTH_JWT_ACCESS, claims);
}

char *auth_jwt_sign_as(const auth_key_t *key, auth_jwt_type_t type, const json_t *claims)
{
    return (unsigned)type < AUTH_JWT_TYPES ? sign_claims(key, key->hdr_b64[type], key->hdr_b64_len[type], claims) : NULL;
}

char *auth_jwt_sign_text(const auth_key_t *key, const char *claims, size_t len)
{
    if (key->hdr_b64[AUTH_JWT_ACCESS] == NULL)
        return NULL;
    json_t *o = auth_json_parse_object(claims, len, AUTH_JSON_DEPTH);
    if (o == NULL)
        return NULL;
    json_decref(o);
    return auth_jws_sign_raw(key, key->hdr_b64[AUTH_JWT_ACCESS], key->hdr_b64_len[AUTH_JWT_ACCESS], claims, len);
}

/* ---- the verifier ------------------------------------------------------------------------------- */

auth_verifier_t *auth_verifier_new(const auth_issuer_t *issuers, size_t n, size_t max_token_bytes, char *err, size_t errsz)
{
    static uint64_t generations;
    for (size_t i = 0; i != n; ++i) {
        if (issuers[i].issuer == NULL || issuers[i].audience == NULL || issuers[i].keys == NULL) {
            snprintf(err, errsz, "issuer %zu: issuer, audience and keys are required", i);
            return NULL;
        }
        for (size_t j = 0; j != i; ++j) {
            const auth_keyset_t *a = issuers[i].keys, *b = issuers[j].keys;
            for (size_t ka = 0; ka != a->n; ++ka)
                for (size_t kb = 0; kb != b->n; ++kb)
                    if (a->keys[ka]->kid_len == b->keys[kb]->kid_len &&
                        memcmp(a->keys[ka]->kid, b->keys[kb]->kid, a->keys[ka]->kid_len) == 0) {
                        snprintf(err, errsz, "kid %s is used by both %s and %s", a->keys[ka]->kid, issuers[j].issuer,
                                 issuers[i].issuer);
                        return NULL;
                    }
        }
    }
    auth_verifier_t *v = calloc(1, sizeof(*v));
    if (v == NULL || (n != 0 && (v->issuers = calloc(n, sizeof(*v->issuers))) == NULL)) {
        free(v);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    v->num_issuers = n;
    v->max_token_bytes = max_token_bytes != 0 ? max_token_bytes : AUTH_TOKEN_BYTES_DEFAULT;
    v->generation = __atomic_add_fetch(&generations, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i != n; ++i) {
        v->issuers[i].issuer = strdup(issuers[i].issuer);
        v->issuers[i].audience = strdup(issuers[i].audience);
        v->issuers[i].keys = issuers[i].keys;
        if (v->issuers[i].issuer == NULL || v->issuers[i].audience == NULL) {
            auth_verifier_free(v);
            snprintf(err, errsz, "out of memory");
            return NULL;
        }
    }
    return v;
}

void auth_verifier_free(auth_verifier_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i != v->num_issuers; ++i) {
        free(v->issuers[i].issuer);
        free(v->issuers[i].audience);
    }
    free(v->issuers);
    free(v);
}

/* typ is a media type: compared case-insensitively (RFC 7515 §4.1.9), "application/" optional */
static int typ_ok(json_t *typ)
{
    if (!json_is_string(typ))
        return 0;
    const char *s = json_string_value(typ);
    size_t n = json_string_length(typ);
    return (n == 6 && strncasecmp(s, "at+jwt", 6) == 0) || (n == 18 && strncasecmp(s, "application/at+jwt", 18) == 0);
}

/* a NumericDate: an integer, or a finite number (fraction dropped) */
static int numeric_date(json_t *j, int64_t *out)
{
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return 0;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!isfinite(d) || d < -4.0e18 || d > 4.0e18)
            return -1;
        *out = (int64_t)d;
        return 0;
    }
    return -1;
}

/* copies the string claim J into DST: it must fit whole and hold no control character */
static int copy_claim(char *dst, size_t dstsz, json_t *j)
{
    if (!json_is_string(j))
        return -1;
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n >= dstsz)
        return -1;
    for (size_t i = 0; i != n; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int aud_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return 0;
    int found = 0;
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (!json_is_string(a))
            return 0; /* an array of anything but strings is not an audience */
        if (strcmp(json_string_value(a), want) == 0)
            found = 1;
    }
    return found;
}

static auth_reason_t check_claims(json_t *c, const struct auth_verifier_issuer *is, const auth_key_t *key, int64_t now,
                                  auth_claims_t *out)
{
    json_t *iss = json_object_get(c, "iss"), *aud = json_object_get(c, "aud"), *exp = json_object_get(c, "exp"),
           *iat = json_object_get(c, "iat"), *nbf = json_object_get(c, "nbf");
    if (iss == NULL || aud == NULL || exp == NULL || iat == NULL)
        return AUTH_MISSING_CLAIM;
    if (!json_is_string(iss) || strcmp(json_string_value(iss), is->issuer) != 0)
        return AUTH_BAD_ISS;
    if (!aud_has(aud, is->audience))
        return AUTH_BAD_AUD;
    if (numeric_date(exp, &out->exp) != 0 || numeric_date(iat, &out->iat) != 0)
        return AUTH_BAD_CLAIM;
    out->nbf = 0;
    if (nbf != NULL && numeric_date(nbf, &out->nbf) != 0)
        return AUTH_BAD_CLAIM;
    if (out->exp <= now - AUTH_LEEWAY)
        return AUTH_EXPIRED;
    if (out->iat > now + AUTH_LEEWAY || (nbf != NULL && out->nbf > now + AUTH_LEEWAY))
        return AUTH_NOT_YET_VALID;

    json_t *sub = json_object_get(c, "sub"), *client_id = json_object_get(c, "client_id"), *jti = json_object_get(c, "jti");
    if (sub == NULL || client_id == NULL || jti == NULL)
        return AUTH_MISSING_CLAIM;
    json_t *scope = json_object_get(c, "scope"), *sid = json_object_get(c, "sid"), *acr = json_object_get(c, "acr");
    out->scope[0] = out->sid[0] = out->acr[0] = '\0';
    if (copy_claim(out->iss, sizeof(out->iss), iss) != 0 || copy_claim(out->sub, sizeof(out->sub), sub) != 0 ||
        copy_claim(out->client_id, sizeof(out->client_id), client_id) != 0 || copy_claim(out->jti, sizeof(out->jti), jti) != 0 ||
        out->sub[0] == '\0' || out->client_id[0] == '\0' || out->jti[0] == '\0' ||
        (scope != NULL && copy_claim(out->scope, sizeof(out->scope), scope) != 0) ||
        (sid != NULL && copy_claim(out->sid, sizeof(out->sid), sid) != 0) ||
        (acr != NULL && copy_claim(out->acr, sizeof(out->acr), acr) != 0))
        return AUTH_BAD_CLAIM;
    memcpy(out->kid, key->kid, key->kid_len + 1);
    int64_t until = out->exp > INT64_MAX - AUTH_LEEWAY ? INT64_MAX : out->exp + AUTH_LEEWAY;
    out->valid_until = until < key->retire_at ? until : key->retire_at;
    return AUTH_OK;
}

/* Finds the key of KID for a token being verified (NULL: unknown); DATA is the caller's. */
typedef const auth_key_t *(*key_find_cb)(void *data, const char *kid, size_t kid_len, int64_t now);

/* The verification every token we read shares, up to its claims: TOKEN split strictly, its header
 * (no cty — a nested JWT is none of ours —, a kid, a typ TYP_OK accepts), the kid's key (FIND), the
 * key's one algorithm (ES256, which the header named), the signature; then — only then — the payload
 * parsed as one JSON object into *CLAIMS (the caller's to json_decref) and the key into *KEY. */
static auth_reason_t jws_verified_claims(const char *token, size_t len, int (*typ_ok_cb)(json_t *typ), key_find_cb find,
                                         void *data, int64_t now, const auth_key_t **key, json_t **claims)
{
    jws_parts_t p;
    json_t *h = NULL;
    auth_reason_t r = jws_split(token, len, &p);
    if (r == AUTH_OK)
        r = jws_header(&p, &h);
    if (r != AUTH_OK)
        return r;
    json_t *kid = json_object_get(h, "kid");
    *key = NULL;
    if (json_object_get(h, "cty") != NULL || !json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > AUTH_KID_MAX)
        r = AUTH_BAD_HEADER;
    else if (!typ_ok_cb(json_object_get(h, "typ")))
        r = AUTH_BAD_TYP;
    else if ((*key = find(data, json_string_value(kid), json_string_length(kid), now)) == NULL)
        r = AUTH_UNKNOWN_KID;
    else if ((*key)->alg != AUTH_ALG_ES256)
        r = AUTH_ALG_NOT_ALLOWED;
    else
        r = jws_signature(&p, *key);
    json_decref(h);
    if (r != AUTH_OK)
        return r;
    size_t max = p.payload_len / 4 * 3 + 3;
    char *buf = malloc(max);
    if (buf == NULL)
        return AUTH_INTERNAL;
    long n = crypto_b64url_decode(buf, max, p.payload, p.payload_len);
    *claims = n > 0 ? auth_json_parse_object(buf, (size_t)n, AUTH_JSON_DEPTH) : NULL;
    free(buf);
    return *claims != NULL ? AUTH_OK : AUTH_MALFORMED;
}

typedef struct {
    const auth_verifier_t *v;
    size_t issuer; /* whose key it was */
} issuer_find_t;

static const auth_key_t *find_issuer_key(void *data, const char *kid, size_t kid_len, int64_t now)
{
    issuer_find_t *f = data;
    const auth_key_t *key = NULL;
    for (size_t i = 0; i != f->v->num_issuers && key == NULL; ++i)
        if ((key = auth_keyset_find(f->v->issuers[i].keys, kid, kid_len, now)) != NULL)
            f->issuer = i;
    return key;
}

auth_reason_t auth_verify_token(const auth_verifier_t *v, const char *token, size_t len, int64_t now, auth_claims_t *out)
{
    if (len > v->max_token_bytes)
        return AUTH_TOO_LONG;
    issuer_find_t f = {v, 0};
    const auth_key_t *key;
    json_t *claims;
    auth_reason_t r = jws_verified_claims(token, len, typ_ok, find_issuer_key, &f, now, &key, &claims);
    if (r != AUTH_OK)
        return r;
    r = check_claims(claims, &v->issuers[f.issuer], key, now, out);
    json_decref(claims);
    if (r == AUTH_OK)
        out->issuer_index = f.issuer;
    return r;
}

static int id_typ_ok(json_t *typ)
{
    return json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0; /* ours say exactly this */
}

static const auth_key_t *find_keyset_key(void *data, const char *kid, size_t kid_len, int64_t now)
{
    return auth_keyset_find(data, kid, kid_len, now);
}

auth_reason_t auth_verify_id_token_hint(const auth_keyset_t *keys, const char *issuer, const char *token, size_t len, int64_t now,
                                       auth_hint_t *out)
{
    if (len > AUTH_TOKEN_BYTES_DEFAULT)
        return AUTH_TOO_LONG;
    const auth_key_t *key;
    json_t *c;
    auth_reason_t r = jws_verified_claims(token, len, id_typ_ok, find_keyset_key, (void *)keys, now, &key, &c);
    if (r != AUTH_OK)
        return r;
    json_t *iss = json_object_get(c, "iss"), *aud = json_object_get(c, "aud"), *sub = json_object_get(c, "sub"),
           *sid = json_object_get(c, "sid");
    out->sid[0] = '\0';
    if (iss == NULL || aud == NULL || sub == NULL)
        r = AUTH_MISSING_CLAIM;
    else if (!json_is_string(iss) || strcmp(json_string_value(iss), issuer) != 0)
        r = AUTH_BAD_ISS;
    else if (copy_claim(out->aud, sizeof(out->aud), aud) != 0 || copy_claim(out->sub, sizeof(out->sub), sub) != 0 ||
             (sid != NULL && copy_claim(out->sid, sizeof(out->sid), sid) != 0))
        r = AUTH_BAD_CLAIM; /* (our ID tokens have one audience, a string) */
    json_decref(c);
    return r;
}

/* a revocation callback's answer: 0 not revoked, 1 revoked, anything else unknown */
static auth_reason_t revocation_reason(int answer)
{
    return answer == 0 ? AUTH_OK : answer == 1 ? AUTH_REVOKED : AUTH_UNAVAILABLE;
}

auth_reason_t auth_check_revoked(const auth_claims_t *claims, auth_revoked_cb cb, void *data)
{
    if (cb == NULL)
        return AUTH_INTERNAL;
    return revocation_reason(cb(data, claims->sid[0] != '\0' ? claims->sid : NULL, claims->jti));
}

auth_reason_t auth_verify_bearer_ref(const auth_verifier_t *v, auth_tokcache_t *cache, const char *token, size_t len, int64_t now,
                                     auth_revoked_memo_cb cb, void *data, auth_claims_t *scratch, const auth_claims_t **out)
{
    auth_revocation_memo_t own = {0}, *memo = NULL;
    const auth_claims_t *claims = NULL;
    if (cb == NULL)
        return AUTH_INTERNAL;
    if (len > v->max_token_bytes)
        return AUTH_TOO_LONG;
    if (cache != NULL)
        claims = auth_tokcache_ref(cache, v, token, len, now, &memo);
    if (claims == NULL) {
        auth_reason_t r = auth_verify_token(v, token, len, now, scratch);
        if (r != AUTH_OK)
            return r;
        if (cache != NULL)
            claims = auth_tokcache_put_ref(cache, v, token, len, now, scratch, &memo);
        if (claims == NULL) {
            claims = scratch;
            memo = &own;
        }
    }
    *out = claims;
    return revocation_reason(cb(data, claims->sid[0] != '\0' ? claims->sid : NULL, claims->jti, memo));
}

auth_reason_t auth_verify_bearer(const auth_verifier_t *v, auth_tokcache_t *cache, const char *token, size_t len, int64_t now,
                                 auth_revoked_cb cb, void *data, auth_claims_t *out)
{
    if (cb == NULL)
        return AUTH_INTERNAL;
    if (len > v->max_token_bytes)
        return AUTH_TOO_LONG;
    if (cache == NULL || !auth_tokcache_get(cache, v, token, len, now, out)) {
        auth_reason_t r = auth_verify_token(v, token, len, now, out);
        if (r != AUTH_OK)
            return r;
        if (cache != NULL)
            auth_tokcache_put(cache, v, token, len, now, out);
    }
    return auth_check_revoked(out, cb, data);
}
