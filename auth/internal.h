/*
 * auth/internal.h — what the files of auth/'s token layer share and nobody else should use:
 * the layout of a key and of a key set, the key folder scan (the library's and the CLI's), the
 * ES256 primitives pinned to a key's alg, and the verifier's insides that the token cache needs.
 * Include auth/auth.h for the public contract.
 */
#ifndef hegate_auth_internal_h
#define hegate_auth_internal_h

#include "auth/auth.h"
#include "crypto/crypto.h"

typedef enum { AUTH_ALG_ES256 = 1 } auth_alg_t;

struct auth_key {
    crypto_key_t *key; /* the P-256 key, parsed once (crypto/ keeps per-thread contexts for it) */
    auth_alg_t alg;    /* the one algorithm this key is pinned to */
    char kid[AUTH_KID_MAX + 1];
    size_t kid_len;
    int64_t created, retire_at;
    /* base64url of {"alg":"ES256","typ":<auth_jwt_type_t's typ>,"kid":"..."}: the fixed first part of
     * the tokens of each type this key signs (NULL for a public key) */
    char *hdr_b64[AUTH_JWT_TYPES];
    size_t hdr_b64_len[AUTH_JWT_TYPES];
};

struct auth_keyset {
    auth_key_t **keys; /* newest first */
    size_t n, cap;
};

struct auth_verifier {
    uint64_t generation; /* unique per verifier ever built: a token cache forgets other generations */
    size_t max_token_bytes;
    size_t num_issuers;
    struct auth_verifier_issuer {
        char *issuer, *audience;
        const auth_keyset_t *keys;
    } * issuers;
};

/* keys.c: every key file of DIR (one purpose's folder), sorted newest first, retire_at not yet set;
 * *OUT is malloc'd (free with auth_keys_free). 0, or -1 with the reason in ERR. */
int auth_keydir_scan(const char *dir, auth_key_t ***out, size_t *count, char *err, size_t errsz);
void auth_keys_free(auth_key_t **keys, size_t n);

/* keys.c: the folder name of a purpose under keys.dir ("token", "code"). */
const char *auth_key_purpose_dir(auth_key_purpose_t purpose);

/* keys.c: snprintf that reports truncation: 0 if the whole text fit, else -1 (errno ENAMETOOLONG). */
int auth_path_fmt(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* jwt.c: ES256 (crypto_es256_sign / crypto_es256_verify, raw r‖s, signing low-S) with KEY only if
 * KEY is pinned to ES256 — the JOSE rule that a key is used with its one algorithm. */
int auth_es256_sign(const auth_key_t *key, const void *msg, size_t len, uint8_t sig[CRYPTO_ES256_SIG_LEN]);
int auth_es256_verify(const auth_key_t *key, const void *msg, size_t len, const uint8_t sig[CRYPTO_ES256_SIG_LEN]);

/* jwt.c: a compact JWS over HDR_B64 (already base64url) and the raw PAYLOAD bytes, signed with KEY.
 * malloc'd NUL-terminated text or NULL. The fuzz target uses it to reach the claim checks. */
char *auth_jws_sign_raw(const auth_key_t *key, const char *hdr_b64, size_t hdr_len, const void *payload, size_t len);

/* tokcache.c: the entry of TOKEN if cached and still good (as auth_tokcache_get, counting a hit or a
 * miss), its claims and memo by reference; NULL otherwise. */
const auth_claims_t *auth_tokcache_ref(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                                       auth_revocation_memo_t **memo);
/* tokcache.c: auth_tokcache_put, returning the entry's claims and memo (NULL if not cached). */
const auth_claims_t *auth_tokcache_put_ref(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                                           const auth_claims_t *claims, auth_revocation_memo_t **memo);

/* json.c: 1 if TEXT nests objects/arrays at most MAX_DEPTH deep (strings skipped), else 0. */
int auth_json_depth_ok(const char *text, size_t len, unsigned max_depth);

#endif
