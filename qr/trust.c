/*
 * qr/trust.c — the trust list of SPEC §7.3: which issuer keys a verifier trusts for which scenes,
 * and which serials are revoked; carried as a compact JWS (ES256) checked against a JWKS or one key.
 *
 * Called by the gateway (build and sign the list it serves at GET /qr/v1/trust; its own verifier),
 * by cli.c (`hegate qr verify --trust`) and by gates. Parsing is strict — alg exactly ES256 (never
 * none or HS*), known kid, canonical base64url, typed JSON, kids that match their keys — and every
 * input is size-capped. A qr_trust_t is immutable once built, so threads share it without locks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "qr/internal.h"

typedef struct {
    uint8_t kid[HMT1_KID_LEN];
    uint32_t scenes;
    int64_t not_before, not_after;
    qr_key_t *key; /* public half only */
} trust_key_t;

struct qr_trust {
    trust_key_t *keys;
    size_t num_keys;
    uint32_t *deny; /* sorted, unique */
    size_t num_deny;
    int64_t issued_at;
};

typedef struct {
    char *kid;
    qr_key_t *key;
} jwk_t;

struct qr_jwks {
    jwk_t *keys;
    size_t num_keys;
};

#define JWKS_MAX_LEN (1u << 20)
#define JWS_HEADER_MAX 4096

static void set_err(char *err, size_t errsz, const char *msg)
{
    if (err != NULL && errsz != 0)
        snprintf(err, errsz, "%s", msg);
}

/* ---- the trust list in memory ----------------------------------------------------------------- */

qr_trust_t *qr_trust_new(int64_t issued_at)
{
    qr_trust_t *t = calloc(1, sizeof(*t));
    if (t != NULL)
        t->issued_at = issued_at;
    return t;
}

void qr_trust_free(qr_trust_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i != t->num_keys; ++i)
        crypto_key_free(t->keys[i].key);
    free(t->keys);
    free(t->deny);
    free(t);
}

static const trust_key_t *trust_key_by_kid(const qr_trust_t *t, const uint8_t kid[HMT1_KID_LEN])
{
    for (size_t i = 0; i != t->num_keys; ++i)
        if (memcmp(t->keys[i].kid, kid, HMT1_KID_LEN) == 0)
            return &t->keys[i];
    return NULL;
}

int qr_trust_add_key(qr_trust_t *t, const qr_key_t *key, uint32_t scenes, int64_t not_before, int64_t not_after)
{
    uint8_t x[32], y[32], kid[HMT1_KID_LEN];
    trust_key_t *keys;
    qr_key_t *pub;
    qr_key_id(key, kid);
    if ((scenes & QR_SCENES_ALL) == 0 || (scenes & ~QR_SCENES_ALL) != 0 || not_before > not_after ||
        trust_key_by_kid(t, kid) != NULL)
        return -1;
    if ((keys = realloc(t->keys, (t->num_keys + 1) * sizeof(*keys))) == NULL)
        return -1;
    t->keys = keys;
    crypto_key_xy(key, x, y);
    if ((pub = crypto_key_from_xy(x, y)) == NULL)
        return -1;
    keys[t->num_keys++] = (trust_key_t){.scenes = scenes, .not_before = not_before, .not_after = not_after, .key = pub};
    memcpy(keys[t->num_keys - 1].kid, kid, HMT1_KID_LEN);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int qr_trust_set_deny(qr_trust_t *t, const uint32_t *serials, size_t n)
{
    uint32_t *d = NULL;
    size_t m = 0;
    if (n != 0) {
        if (n > SIZE_MAX / sizeof(*d) || (d = malloc(n * sizeof(*d))) == NULL)
            return -1;
        memcpy(d, serials, n * sizeof(*d));
        qsort(d, n, sizeof(*d), cmp_u32);
        for (size_t i = 0; i != n; ++i) /* drop repeats */
            if (m == 0 || d[m - 1] != d[i])
                d[m++] = d[i];
    }
    free(t->deny);
    t->deny = d;
    t->num_deny = m;
    return 0;
}

int64_t qr_trust_issued_at(const qr_trust_t *t)
{
    return t->issued_at;
}

size_t qr_trust_num_keys(const qr_trust_t *t)
{
    return t->num_keys;
}

const qr_key_t *qr_trust_find(const qr_trust_t *t, const uint8_t kid[HMT1_KID_LEN], unsigned scene, int64_t now)
{
    const trust_key_t *k = trust_key_by_kid(t, kid);
    if (k == NULL || scene < 1 || scene > QR_SCENE_MAX || (k->scenes & QR_SCENE_BIT(scene)) == 0)
        return NULL;
    return now >= k->not_before && now <= k->not_after ? k->key : NULL;
}

int qr_trust_is_denied(const qr_trust_t *t, uint32_t serial)
{
    return t->num_deny != 0 && bsearch(&serial, t->deny, t->num_deny, sizeof(serial), cmp_u32) != NULL;
}

/* ---- JSON helpers ----------------------------------------------------------------------------- */

static json_t *json_parse(const void *buf, size_t len)
{
    json_error_t jerr;
    return json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
}

static const char *json_str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name)); /* NULL if absent or not a string */
}

/* A JSON integer member within [MIN, MAX]. */
static int json_int(const json_t *obj, const char *name, int64_t min, int64_t max, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* A base64url member that decodes to exactly LEN bytes. */
static int json_b64_exact(const json_t *obj, const char *name, uint8_t *out, size_t len)
{
    const json_t *v = json_object_get(obj, name);
    uint8_t buf[64];
    if (!json_is_string(v) || len > sizeof(buf) || json_string_length(v) != CRYPTO_B64URL_LEN(len) ||
        crypto_b64url_decode(buf, sizeof(buf), json_string_value(v), json_string_length(v)) != (long)len)
        return -1;
    memcpy(out, buf, len);
    return 0;
}

/* A P-256 public key from a JSON object's "x" and "y". */
static qr_key_t *json_xy_key(const json_t *obj)
{
    uint8_t x[32], y[32];
    if (json_b64_exact(obj, "x", x, 32) != 0 || json_b64_exact(obj, "y", y, 32) != 0)
        return NULL;
    return crypto_key_from_xy(x, y);
}

/* ---- JWKS ------------------------------------------------------------------------------------- */

void qr_jwks_free(qr_jwks_t *jwks)
{
    if (jwks == NULL)
        return;
    for (size_t i = 0; i != jwks->num_keys; ++i) {
        free(jwks->keys[i].kid);
        crypto_key_free(jwks->keys[i].key);
    }
    free(jwks->keys);
    free(jwks);
}

size_t qr_jwks_num_keys(const qr_jwks_t *jwks)
{
    return jwks->num_keys;
}

static const qr_key_t *jwks_find(const qr_jwks_t *jwks, const char *kid)
{
    for (size_t i = 0; i != jwks->num_keys; ++i)
        if (strcmp(jwks->keys[i].kid, kid) == 0)
            return jwks->keys[i].key;
    return NULL;
}

static int key_ops_allow_verify(const json_t *ops)
{
    size_t i;
    const json_t *op;
    if (ops == NULL)
        return 1;
    json_array_foreach(ops, i, op)
    {
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
            return 1;
    }
    return 0;
}

/* 1: an ES256 signature key to keep; 0: another kind of key to skip. */
static int jwk_is_es256_sig(const json_t *k)
{
    const char *kty = json_str(k, "kty"), *crv = json_str(k, "crv"), *use = json_str(k, "use"), *alg = json_str(k, "alg");
    if (kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL || strcmp(crv, "P-256") != 0)
        return 0;
    if ((json_object_get(k, "use") != NULL && (use == NULL || strcmp(use, "sig") != 0)) ||
        (json_object_get(k, "alg") != NULL && (alg == NULL || strcmp(alg, "ES256") != 0)))
        return 0;
    return key_ops_allow_verify(json_object_get(k, "key_ops")) && json_str(k, "kid") != NULL;
}

static int jwks_add(qr_jwks_t *jwks, const json_t *k)
{
    const char *kid = json_str(k, "kid");
    jwk_t *keys;
    qr_key_t *key;
    if (jwks_find(jwks, kid) != NULL || (key = json_xy_key(k)) == NULL)
        return -1;
    if ((keys = realloc(jwks->keys, (jwks->num_keys + 1) * sizeof(*keys))) == NULL) {
        crypto_key_free(key);
        return -1;
    }
    jwks->keys = keys;
    if ((keys[jwks->num_keys].kid = strdup(kid)) == NULL) {
        crypto_key_free(key);
        return -1;
    }
    keys[jwks->num_keys++].key = key;
    return 0;
}

qr_jwks_t *qr_jwks_parse(const char *json, size_t len)
{
    json_t *root, *keys, *k;
    qr_jwks_t *jwks;
    size_t i;
    int ok = 1;
    if (len > JWKS_MAX_LEN || (root = json_parse(json, len)) == NULL)
        return NULL;
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || (jwks = calloc(1, sizeof(*jwks))) == NULL) {
        json_decref(root);
        return NULL;
    }
    json_array_foreach(keys, i, k)
    {
        if (!json_is_object(k) || (jwk_is_es256_sig(k) && jwks_add(jwks, k) != 0)) {
            ok = 0;
            break;
        }
    }
    json_decref(root);
    if (!ok) {
        qr_jwks_free(jwks);
        return NULL;
    }
    return jwks;
}

qr_jwks_t *qr_jwks_load_file(const char *path)
{
    size_t len;
    char *buf = qr_read_file(path, JWKS_MAX_LEN, &len);
    qr_jwks_t *jwks = buf != NULL ? qr_jwks_parse(buf, len) : NULL;
    free(buf);
    return jwks;
}

/* ---- compact JWS ------------------------------------------------------------------------------ */

typedef struct {
    const char *part[3]; /* header, payload, signature: base64url */
    size_t len[3];
} jws_parts_t;

static int jws_split(const char *jws, size_t len, jws_parts_t *p)
{
    const char *d1 = memchr(jws, '.', len), *d2, *end = jws + len;
    if (d1 == NULL || (d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return -1;
    *p = (jws_parts_t){{jws, d1 + 1, d2 + 1}, {(size_t)(d1 - jws), (size_t)(d2 - d1 - 1), (size_t)(end - d2 - 1)}};
    return p->len[0] != 0 && p->len[1] != 0 && p->len[2] != 0 ? 0 : -1;
}

/* Strict base64url of one part into a malloc'd, NUL-terminated buffer. */
static uint8_t *b64_part(const char *s, size_t len, size_t *outlen)
{
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = malloc(cap + 1);
    long n = buf != NULL ? crypto_b64url_decode(buf, cap, s, len) : -1;
    if (n >= 0) {
        buf[n] = '\0';
        *outlen = (size_t)n;
        return buf;
    }
    free(buf);
    return NULL;
}

/* Checks the protected header; returns it (for "kid") or NULL. */
static json_t *jws_header(const jws_parts_t *p, const char *typ)
{
    uint8_t *raw;
    size_t n;
    json_t *h;
    const char *alg, *htyp;
    if (p->len[0] > JWS_HEADER_MAX || (raw = b64_part(p->part[0], p->len[0], &n)) == NULL)
        return NULL;
    h = json_parse(raw, n);
    free(raw);
    if (!json_is_object(h) || (alg = json_str(h, "alg")) == NULL || strcmp(alg, "ES256") != 0 ||
        json_object_get(h, "crit") != NULL) /* we understand no extension, so "crit" is always refused */
        goto fail;
    if (typ != NULL && ((htyp = json_str(h, "typ")) == NULL || strcmp(htyp, typ) != 0))
        goto fail;
    return h;
fail:
    json_decref(h);
    return NULL;
}

/* The verification key: JWKS's key named by the header's kid, or the pinned KEY. */
static const qr_key_t *jws_key(const json_t *header, const qr_jwks_t *jwks, const qr_key_t *key)
{
    const char *kid;
    if (jwks == NULL)
        return key;
    kid = json_str(header, "kid");
    return kid != NULL ? jwks_find(jwks, kid) : NULL;
}

/* Opens a compact JWS; CHECK_SIG = 0 only for qr_trust_from_jws_unverified. */
static int jws_open(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, const char *typ, int check_sig,
                    uint8_t **payload, size_t *payload_len)
{
    jws_parts_t p;
    json_t *header;
    uint8_t sig[HMT1_SIG_LEN + 3];
    long siglen;
    int ok;
    if (len > QR_TRUST_MAX_LEN || jws_split(jws, len, &p) != 0 || (header = jws_header(&p, typ)) == NULL)
        return -1;
    ok = p.len[2] == CRYPTO_B64URL_LEN(HMT1_SIG_LEN) &&
         (siglen = crypto_b64url_decode(sig, sizeof(sig), p.part[2], p.len[2])) == HMT1_SIG_LEN;
    if (ok && check_sig) {
        const qr_key_t *k = jws_key(header, jwks, key);
        ok = k != NULL && crypto_es256_verify(k, jws, (size_t)(p.part[2] - 1 - jws), sig, (size_t)siglen) == 0;
    }
    json_decref(header);
    if (!ok || (*payload = b64_part(p.part[1], p.len[1], payload_len)) == NULL)
        return -1;
    return 0;
}

int qr_jws_verify(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, const char *typ, uint8_t **payload,
                  size_t *payload_len)
{
    if (jwks == NULL && key == NULL) /* never "no key, so no check" */
        return -1;
    return jws_open(jws, len, jwks, key, typ, 1, payload, payload_len);
}

/* Appends base64url of LEN bytes at OUT + *POS. */
static void put_b64(char *out, size_t *pos, const void *in, size_t len)
{
    *pos += crypto_b64url_encode(out + *pos, in, len);
}

int qr_jws_sign(const qr_key_t *signer, const char *kid, const char *typ, const uint8_t *payload, size_t len, char **out,
                size_t *outlen)
{
    char defkid[12], *hdr, *buf;
    uint8_t sig[HMT1_SIG_LEN];
    size_t hlen, cap, pos = 0;
    json_t *h;
    if (kid == NULL)
        qr_key_jwk_kid(signer, defkid);
    h = typ != NULL ? json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", kid != NULL ? kid : defkid, "typ", typ)
                    : json_pack("{s:s, s:s}", "alg", "ES256", "kid", kid != NULL ? kid : defkid);
    hdr = h != NULL ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    if (hdr == NULL || len > QR_TRUST_MAX_LEN)
        goto fail;
    hlen = strlen(hdr);
    cap = CRYPTO_B64URL_LEN(hlen) + CRYPTO_B64URL_LEN(len) + CRYPTO_B64URL_LEN(HMT1_SIG_LEN) + 3;
    if ((buf = malloc(cap)) == NULL)
        goto fail;
    put_b64(buf, &pos, hdr, hlen);
    buf[pos++] = '.';
    put_b64(buf, &pos, payload, len);
    if (crypto_es256_sign(signer, buf, pos, sig) != 0) {
        free(buf);
        goto fail;
    }
    buf[pos++] = '.';
    put_b64(buf, &pos, sig, sizeof(sig));
    free(hdr);
    *out = buf;
    if (outlen != NULL)
        *outlen = pos;
    return 0;
fail:
    free(hdr);
    return -1;
}

/* ---- the trust list as JSON ------------------------------------------------------------------- */

static int parse_kid_hex(const char *s, uint8_t kid[HMT1_KID_LEN])
{
    if (s == NULL || strlen(s) != 2 * HMT1_KID_LEN)
        return -1;
    for (size_t i = 0; i != 2 * HMT1_KID_LEN; ++i) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -1;
        kid[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : kid[i / 2] | v);
    }
    return 0;
}

static int parse_scenes(const json_t *arr, uint32_t *scenes)
{
    size_t i;
    const json_t *v;
    unsigned s;
    *scenes = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return -1;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || (s = qr_scene_from_name(json_string_value(v))) == 0)
            return -1;
        *scenes |= QR_SCENE_BIT(s);
    }
    return 0;
}

/* One entry of "keys": every member present and well-typed, and kid = the key's HMT1 key id. */
static const char *parse_trust_key(qr_trust_t *t, const json_t *k)
{
    uint8_t kid[HMT1_KID_LEN], real[HMT1_KID_LEN];
    const char *alg = json_str(k, "alg");
    uint32_t scenes;
    int64_t nb, na;
    qr_key_t *key;
    int ret;
    if (!json_is_object(k) || parse_kid_hex(json_str(k, "kid"), kid) != 0)
        return "key: kid must be 8 hex digits";
    if (alg == NULL || strcmp(alg, "ES256") != 0)
        return "key: alg must be ES256";
    if (parse_scenes(json_object_get(k, "scenes"), &scenes) != 0)
        return "key: scenes must be a non-empty list of scene names";
    if (json_int(k, "not_before", INT64_MIN, INT64_MAX, &nb) != 0 || json_int(k, "not_after", INT64_MIN, INT64_MAX, &na) != 0)
        return "key: not_before and not_after must be integers";
    if ((key = json_xy_key(k)) == NULL)
        return "key: x and y must be base64url of a P-256 point";
    qr_key_id(key, real);
    if (memcmp(kid, real, HMT1_KID_LEN) != 0) {
        crypto_key_free(key);
        return "key: kid does not match the key";
    }
    ret = qr_trust_add_key(t, key, scenes, nb, na);
    crypto_key_free(key);
    return ret == 0 ? NULL : "key: repeated kid or not_before > not_after";
}

static const char *parse_deny(qr_trust_t *t, const json_t *arr)
{
    size_t i, n = json_array_size(arr);
    const json_t *v;
    uint32_t *serials;
    int ret;
    if (!json_is_array(arr))
        return "deny must be a list";
    if ((serials = malloc((n != 0 ? n : 1) * sizeof(*serials))) == NULL)
        return "out of memory";
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX) {
            free(serials);
            return "deny: serials must be integers 0..4294967295";
        }
        serials[i] = (uint32_t)json_integer_value(v);
    }
    ret = qr_trust_set_deny(t, serials, n);
    free(serials);
    return ret == 0 ? NULL : "out of memory";
}

static const char *parse_trust_payload(qr_trust_t *t, const json_t *root)
{
    const json_t *keys = json_object_get(root, "keys"), *k;
    const char *msg;
    size_t i;
    if (!json_is_object(root))
        return "payload is not a JSON object";
    if (json_int(root, "issued_at", INT64_MIN, INT64_MAX, &t->issued_at) != 0)
        return "issued_at must be an integer";
    if (!json_is_array(keys))
        return "keys must be a list";
    json_array_foreach(keys, i, k)
    {
        if ((msg = parse_trust_key(t, k)) != NULL)
            return msg;
    }
    return parse_deny(t, json_object_get(root, "deny"));
}

static qr_trust_t *trust_open(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, int check_sig, char *err,
                              size_t errsz)
{
    uint8_t *payload;
    size_t plen;
    json_t *root;
    qr_trust_t *t;
    const char *msg;
    if (jws_open(jws, len, jwks, key, QR_TRUST_TYP, check_sig, &payload, &plen) != 0) {
        set_err(err, errsz,
                check_sig ? "not a compact ES256 JWS of type " QR_TRUST_TYP " signed by a trusted key"
                          : "not a compact ES256 JWS of type " QR_TRUST_TYP);
        return NULL;
    }
    root = json_parse(payload, plen);
    free(payload);
    if ((t = qr_trust_new(0)) == NULL)
        msg = "out of memory";
    else
        msg = root == NULL ? "payload is not JSON" : parse_trust_payload(t, root);
    json_decref(root);
    if (msg != NULL) {
        set_err(err, errsz, msg);
        qr_trust_free(t);
        return NULL;
    }
    return t;
}

qr_trust_t *qr_trust_from_jws(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, char *err, size_t errsz)
{
    if (jwks == NULL && key == NULL) {
        set_err(err, errsz, "no JWKS and no key to check the trust list with");
        return NULL;
    }
    return trust_open(jws, len, jwks, key, 1, err, errsz);
}

qr_trust_t *qr_trust_from_jws_unverified(const char *jws, size_t len, char *err, size_t errsz)
{
    return trust_open(jws, len, NULL, NULL, 0, err, errsz);
}

static json_t *trust_key_json(const trust_key_t *k)
{
    char kid[2 * HMT1_KID_LEN + 1], x64[44], y64[44];
    uint8_t x[32], y[32];
    json_t *scenes = json_array();
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s)
        if ((k->scenes & QR_SCENE_BIT(s)) && json_array_append_new(scenes, json_string(qr_scene_name(s))) != 0) {
            json_decref(scenes);
            return NULL;
        }
    snprintf(kid, sizeof(kid), "%02x%02x%02x%02x", k->kid[0], k->kid[1], k->kid[2], k->kid[3]);
    crypto_key_xy(k->key, x, y);
    crypto_b64url_encode(x64, x, 32);
    crypto_b64url_encode(y64, y, 32);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I}", "kid", kid, "alg", "ES256", "x", x64, "y", y64, "scenes", scenes,
                     "not_before", (json_int_t)k->not_before, "not_after", (json_int_t)k->not_after);
}

/* The payload as compact JSON (malloc'd), or NULL: a list missing a key or a serial is never signed. */
static char *trust_payload_json(const qr_trust_t *t)
{
    json_t *keys = json_array(), *deny = json_array(), *root;
    char *s = NULL;
    int ok = keys != NULL && deny != NULL;
    for (size_t i = 0; ok && i != t->num_keys; ++i)
        ok = json_array_append_new(keys, trust_key_json(&t->keys[i])) == 0;
    for (size_t i = 0; ok && i != t->num_deny; ++i)
        ok = json_array_append_new(deny, json_integer(t->deny[i])) == 0;
    if (!ok) {
        json_decref(keys);
        json_decref(deny);
        return NULL;
    }
    root = json_pack("{s:o, s:o, s:I}", "keys", keys, "deny", deny, "issued_at", (json_int_t)t->issued_at);
    if (root != NULL)
        s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

int qr_trust_to_jws(const qr_trust_t *t, const qr_key_t *signer, const char *kid, char **out, size_t *outlen)
{
    char *payload = trust_payload_json(t);
    int ret;
    if (payload == NULL)
        return -1;
    ret = qr_jws_sign(signer, kid, QR_TRUST_TYP, (const uint8_t *)payload, strlen(payload), out, outlen);
    free(payload);
    return ret;
}
