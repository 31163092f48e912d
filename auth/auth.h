/*
 * auth/auth.h — keys, JWKS and the strict access-token verifier (SPEC §1 `hegate keys`, §6): the
 * contract of the auth/ folder's token layer.
 *
 * The files below are a library on top of crypto/ (base64url, P-256 keys, the ES256 core): they
 * need OpenSSL 3 and jansson, never h2o, hiredis or libjwt (libjwt 1.10.2 is not used at all: it
 * verifies HS256 tokens MAC'd with a public key, ignores exp, crashes on 2 MB tokens and re-parses
 * the PEM on every call). They never include gateway/ headers;
 * the gateway calls them, and revocation is asked of the caller through a callback. auth/'s HTTP
 * endpoints (which do use the gateway) sit on top, in their own files and headers. Sections are
 * named after the file that implements them:
 *
 *   json.c      the bounded JSON parser
 *   keys.c      ES256 keys, key sets (a key folder or a JWKS file), JWKS output
 *   keys_cli.c  `hegate keys ...`
 *   jwt.c       signing access tokens; the low-level JWS check; the strict verifier
 *   tokcache.c  a per-thread cache of verified tokens
 *
 * Conventions: all times are unix seconds (int64_t). Functions return 0 / -1, a pointer / NULL, or
 * an auth_reason_t — never a bare bool for a verdict. What allocates says so, and says how to free.
 * Keys, key sets and verifiers are immutable once built and may be shared read-only by any number
 * of threads; a token cache belongs to one thread. Nothing here logs; error texts written to the
 * caller's `err` buffers name files and kids, never tokens, claims or key material.
 */
#ifndef hegate_auth_auth_h
#define hegate_auth_auth_h

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

/* ---- json.c ----------------------------------------------------------------------------------- */

/* Parses LEN bytes as one JSON object: duplicate keys rejected, nesting at most MAX_DEPTH levels
 * (checked before jansson sees the text), no trailing bytes, valid UTF-8, no NUL. Returns a new
 * reference (json_decref it) or NULL. */
json_t *auth_json_parse_object(const char *text, size_t len, unsigned max_depth);

/* ---- keys.c ----------------------------------------------------------------------------------- */

/*
 * Key folder layout (SPEC §2 `keys.dir`): DIR/token/ signs access tokens, DIR/code/ signs city codes
 * (a key serves one purpose only). Each key is one unencrypted PKCS#8 PEM file named
 * "<unix-time>-<kid>.pem", the time being the key's creation; files are 0600, folders 0700.
 * Loading refuses a .pem file with another name, a kid that does not match its name, a file that
 * others may read or that the group may write, anything but a P-256 key, and duplicates. Hidden
 * files and files not ending in ".pem" are ignored; symbolic links are followed (secret mounts).
 *
 * Which key does what: the newest (largest time; ties broken by kid) signs. Every other key is
 * "superseded" at the creation time of the next newer key and keeps verifying for GRACE seconds
 * after that (the gateway passes access_ttl + leeway for token keys, so every token a key signed
 * stays verifiable until it expires; credential_ttl + skew for code keys). GRACE <= 0 keeps every
 * key until its file is deleted — deleting the file (then SIGHUP) is how a key is retired early.
 * A key past its retirement is not loaded, is not published in the JWKS and verifies nothing.
 */
typedef enum { AUTH_KEY_TOKEN = 0, AUTH_KEY_CODE = 1 } auth_key_purpose_t;

#define AUTH_KID_MAX 128    /* longest kid accepted from a JWKS or a token header */
#define AUTH_OWN_KID_LEN 11 /* our kids: base64url of 8 bytes */

typedef struct auth_key auth_key_t;
/* the kinds of JWT a token key signs, told apart by their header's typ */
typedef enum { AUTH_JWT_ACCESS, AUTH_JWT_ID, AUTH_JWT_LOGOUT, AUTH_JWT_TYPES } auth_jwt_type_t;
typedef struct auth_keyset auth_keyset_t;

/* A fresh P-256 private key (in memory; nothing written). NULL on failure. Free with auth_key_free. */
auth_key_t *auth_key_generate(void);
/* A P-256 private key from PEM (PKCS#8 or SEC1; never prompts for a passphrase: encrypted keys fail). */
auth_key_t *auth_key_from_pem(const char *pem, size_t len, char *err, size_t errsz);
/* A public key from one JWK: kty "EC", crv "P-256", x and y of 32 bytes in strict base64url, a point
 * on the curve; "use" if present must be "sig", "key_ops" if present must contain "verify", "alg" if
 * present must be "ES256". Its kid is the JWK's "kid" if any (≤ AUTH_KID_MAX), else none. */
auth_key_t *auth_key_from_jwk(const char *json, size_t len, char *err, size_t errsz);
/* Writes KEY's private key as a PEM file at PATH, mode 0600, refusing to replace an existing file.
 * The file appears complete or not at all (written aside, then linked). 0 or -1 (errno kept). */
int auth_key_write_pem(const auth_key_t *key, const char *path);
/* Frees a key made by one of the four functions above (never one owned by a key set). NULL is fine. */
void auth_key_free(auth_key_t *key);

const char *auth_key_kid(const auth_key_t *key); /* "" if a JWK had none */
/* SHA-256 over the DER SubjectPublicKeyInfo: the token kid is base64url of bytes 0–7, the city-code
 * issuer key id is bytes 0–3 (qr/'s business). */
const uint8_t *auth_key_spki_sha256(const auth_key_t *key);
void auth_key_public_xy(const auth_key_t *key, uint8_t x[32], uint8_t y[32]);
int auth_key_has_private(const auth_key_t *key);
int64_t auth_key_created(const auth_key_t *key);   /* from the file name (or auth_keyset_add); else 0 */
int64_t auth_key_retire_at(const auth_key_t *key); /* verifies while now < this; INT64_MAX = no end */
/* The cached OpenSSL key (never re-parsed), e.g. for qr/ to sign with a code key. Owned by KEY. */
struct evp_pkey_st *auth_key_pkey(const auth_key_t *key);

/* Loads every key of PURPOSE under KEYS_DIR/<purpose>/ (see the rules above) as of NOW. Fails
 * (NULL, reason in ERR) on any bad file or when no key is left. Free with auth_keyset_free. */
auth_keyset_t *auth_keyset_load(const char *keys_dir, auth_key_purpose_t purpose, int64_t now, int64_t grace, char *err,
                                size_t errsz);
/* A trusted issuer's public keys from a JWKS document {"keys":[...]} (≤ 1 MiB). Keys that are not
 * ES256 signing keys (RSA, other curves, use "enc", ...) are skipped; keys without a kid are skipped;
 * a malformed ES256 key, a duplicate kid, or no usable key at all is an error. */
auth_keyset_t *auth_keyset_from_jwks(const char *json, size_t len, char *err, size_t errsz);
auth_keyset_t *auth_keyset_load_jwks(const char *path, char *err, size_t errsz);
/* An empty set to fill by hand (tests, fuzzing, benchmarks); KEY's ownership passes to the set
 * (even on failure), RETIRE_AT as above. Keep "newest first" by adding the newest first. */
auth_keyset_t *auth_keyset_new(void);
int auth_keyset_add(auth_keyset_t *set, auth_key_t *key, int64_t created, int64_t retire_at);
void auth_keyset_free(auth_keyset_t *set);

size_t auth_keyset_count(const auth_keyset_t *set);
const auth_key_t *auth_keyset_get(const auth_keyset_t *set, size_t i); /* 0 = newest */
/* The newest key with a private half (the one that signs), or NULL. */
const auth_key_t *auth_keyset_signer(const auth_keyset_t *set);
/* The key whose kid is KID[0..LEN), if it still verifies at NOW; else NULL. */
const auth_key_t *auth_keyset_find(const auth_keyset_t *set, const char *kid, size_t len, int64_t now);
/* {"keys":[{"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256","use":"sig"}, ...]} with every key
 * that verifies at NOW, newest first. malloc'd NUL-terminated text (free()), or NULL. */
char *auth_keyset_jwks(const auth_keyset_t *set, int64_t now);

/* ---- keys_cli.c ------------------------------------------------------------------------------- */

/* `hegate keys ...`. ARGV[0] is "keys" (the sub-command's own name), then:
 *   generate --dir DIR                      make DIR/token and DIR/code with one key each (a purpose that
 *                                           already has a key is left alone and reported), and the data
 *                                           key DIR/data.key (0600) if there is none (an existing one is
 *                                           kept, never overwritten; one that is unreadable, malformed or
 *                                           open to group/others is an error)
 *   rotate   --dir DIR --purpose token|code add a new key (it signs from the next load/SIGHUP on)
 *   list     --dir DIR                      purpose, kid, creation time and file of every key
 *   jwks     --dir DIR                      print the token keys as a JWKS (e.g. for another deployment)
 * Options also take the "--dir=DIR" form. Prints kids and paths, never key material.
 * Returns the exit status: 0 done, 1 failed (reason on stderr), 2 usage error. */
int auth_keys_cli_main(int argc, char **argv);

/* ---- sealed.c: the data key ----- */

#define AUTH_DATA_KEY_LEN 32
/* Loads KEYS_DIR/data.key (64 hex digits, mode 0600, not readable by group/others); with CREATE,
 * makes it first if absent (atomically: a concurrent creator's key wins and is read). 0 or -1. */
int auth_data_key_load(const char *keys_dir, int create, uint8_t key[AUTH_DATA_KEY_LEN], char *err, size_t errsz);

/* ---- sealed.c: personal data at rest ----------------------------------------------------------------------------------- */

/* AES-256-GCM of PT under a subkey of KEY, bound to AAD: "v1." + base64url(nonce ‖ ciphertext ‖
 * tag). malloc'd (free()) or NULL. */
char *auth_seal(const uint8_t key[AUTH_DATA_KEY_LEN], const char *aad, const void *pt, size_t len);
/* The inverse; returns the plaintext length written to OUT (and a NUL after it), or -1. */
long auth_unseal(const uint8_t key[AUTH_DATA_KEY_LEN], const char *aad, const char *sealed, char *out, size_t outsz);
/* A 32-byte subkey for one purpose ("phone-index", "csrf", ...): HMAC-SHA256(KEY, LABEL). */
void auth_subkey(const uint8_t key[AUTH_DATA_KEY_LEN], const char *label, uint8_t out[32]);
/* Lower-case hex of HMAC-SHA256(SUBKEY, MSG): 64 digits and a NUL. */
void auth_hmac_hex(const uint8_t subkey[32], const void *msg, size_t len, char out[65]);
/* Lower-case hex of SHA-256(MSG). */
void auth_sha256_hex(const void *msg, size_t len, char out[65]);
/* N random bytes as base64url into OUT (room for CRYPTO_B64URL_LEN(N) + 1). 0/-1. */
int auth_random_b64url(char *out, size_t n);
/* 1 when A and B (NUL-terminated) are equal, in time independent of where they differ. */
int auth_str_equal_ct(const char *a, const char *b);

/* The process-wide data key of KEYS_DIR (loaded once, created if absent), or NULL with a reason in ERR. */
const uint8_t *auth_data_key(const char *keys_dir, char *err, size_t errsz);

/* ---- the identity store's Redis layout (auth/http/ writes it; qr/http/ reads residents' cards) ----
 * Every key under one hash tag {id}: every script touches one cluster slot. The full list is in
 * auth/http/internal.h. */
#define AUTH_RK "hegate:{id}:"
#define AUTH_RK_USER AUTH_RK "user:"

/* ---- jwt.c ------------------------------------------------------------------------------------ */

typedef enum {
    AUTH_OK = 0,
    AUTH_TOO_LONG,        /* longer than the configured cap (checked before anything else) */
    AUTH_MALFORMED,       /* not 3 parts of strict base64url; header or payload not one JSON object */
    AUTH_BAD_HEADER,      /* header: alg or kid missing / not a string, "crit" or "cty" present */
    AUTH_ALG_NOT_ALLOWED, /* alg is not exactly "ES256", or not the alg pinned to the key */
    AUTH_UNKNOWN_KID,     /* no verifying key with that kid (or a retired one) */
    AUTH_BAD_SIGNATURE,   /* not 64 bytes of r‖s, r or s out of range, or does not verify */
    AUTH_BAD_TYP,         /* typ missing, or not "at+jwt" / "application/at+jwt" */
    AUTH_BAD_ISS,         /* iss is not the issuer that owns the key */
    AUTH_BAD_AUD,         /* aud (string or array of strings) does not hold our audience */
    AUTH_EXPIRED,         /* exp <= now - leeway */
    AUTH_NOT_YET_VALID,   /* iat or nbf > now + leeway */
    AUTH_MISSING_CLAIM,   /* iss, aud, exp, iat, sub, client_id or jti absent */
    AUTH_BAD_CLAIM,       /* a claim of the wrong type, too long, or holding control characters */
    AUTH_REVOKED,         /* the revocation callback says the sid or the jti is revoked */
    AUTH_UNAVAILABLE,     /* the revocation callback could not tell (store down): not the token's fault */
    AUTH_INTERNAL,        /* out of memory, OpenSSL failure */
} auth_reason_t;

/* "ok", "too_long", "malformed", ... — for metrics and logs (a reason never contains token bytes). */
const char *auth_reason_name(auth_reason_t r);

#define AUTH_LEEWAY 30 /* seconds, for exp, iat and nbf */
#define AUTH_TOKEN_BYTES_DEFAULT 8192
#define AUTH_HEADER_MAX 2048 /* decoded header bytes */
#define AUTH_JSON_DEPTH 16   /* nesting allowed in the claims (8 in the header) */

/* The verified claims, copied into fixed buffers owned by the caller. A claim that does not fit is
 * AUTH_BAD_CLAIM, never truncated; sub, client_id and jti are non-empty; absent optional claims
 * (scope, sid, acr) are "". Every string is valid UTF-8 without control characters (so it can go
 * into an upstream header as is). */
typedef struct {
    char iss[256];
    char sub[128];
    char client_id[128];
    char scope[512]; /* space-separated */
    char sid[128];
    char jti[128];
    char acr[64];
    char kid[AUTH_KID_MAX + 1];
    int64_t exp, iat;
    int64_t nbf;         /* 0 if absent */
    size_t issuer_index; /* which of the verifier's issuers (0 = the first given) */
    int64_t valid_until; /* the verdict holds while now < valid_until: min(exp + leeway, key retirement) */
} auth_claims_t;

/* One issuer whose tokens are accepted: the gateway itself (keys from keys.dir/token) and each
 * trusted_issuers entry (keys from its JWKS). */
typedef struct {
    const char *issuer;        /* the exact "iss" */
    const char *audience;      /* must appear in "aud" */
    const auth_keyset_t *keys; /* borrowed: must outlive the verifier */
} auth_issuer_t;

typedef struct auth_verifier auth_verifier_t;

/* Builds an immutable verifier (strings copied, key sets borrowed). MAX_TOKEN_BYTES 0 means
 * AUTH_TOKEN_BYTES_DEFAULT. Fails if a kid appears under two issuers (a kid must name one key).
 * Free with auth_verifier_free (before the key sets). */
auth_verifier_t *auth_verifier_new(const auth_issuer_t *issuers, size_t n, size_t max_token_bytes, char *err, size_t errsz);
void auth_verifier_free(auth_verifier_t *v);

/* The strict check of SPEC §6, everything except revocation (whose answer may change at any time):
 * length cap; 3 parts of canonical base64url; header an object with alg exactly "ES256", no "crit"
 * or "cty", typ "at+jwt" or "application/at+jwt" (case-insensitive), a kid; the kid's key (alg
 * pinned ES256) verifies the 64-byte raw r‖s signature (high-S accepted, as JOSE allows; see
 * jwt.c); then the claims: iss equals the key's issuer, aud holds its audience, exp > now − 30 s,
 * iat and nbf ≤ now + 30 s, sub, client_id, jti present. OUT is meaningful only on AUTH_OK (it may be
 * partly written otherwise). Never blocks. Allocates only the decoded payload and jansson's nodes
 * (plus, once per thread and key, a verification context kept for the thread's life). */
auth_reason_t auth_verify_token(const auth_verifier_t *v, const char *token, size_t len, int64_t now, auth_claims_t *out);

/* The revocation question: return 1 if the session SID (NULL when the token has none) or the token
 * JTI is revoked, 0 if neither is, -1 if it cannot be told now. Called on every request, never cached. */
typedef int (*auth_revoked_cb)(void *data, const char *sid, const char *jti);

/* AUTH_OK, AUTH_REVOKED or AUTH_UNAVAILABLE for claims that auth_verify_token accepted. */
auth_reason_t auth_check_revoked(const auth_claims_t *claims, auth_revoked_cb cb, void *data);

typedef struct auth_tokcache auth_tokcache_t;

/* What a revocation check may remember about one cached token between requests (kept in the token's
 * cache entry, per thread): e.g. the digests of its sid and jti, and the version of the deny set it was
 * last found absent from. Zeroed when the token enters the cache. Opaque to auth/. */
typedef struct {
    uint64_t version;
    uint8_t keys[32];
    uint8_t have_keys;
} auth_revocation_memo_t;
/* Like auth_revoked_cb, with the token's MEMO. */
typedef int (*auth_revoked_memo_cb)(void *data, const char *sid, const char *jti, auth_revocation_memo_t *memo);

/* The hot path of a gateway: auth_verify_bearer without copying the claims. *OUT points at the
 * verified claims: inside CACHE (valid until the next call on CACHE, i.e. copy what must outlive the
 * caller's synchronous work) or in SCRATCH (cache miss that could not be cached, or CACHE NULL).
 * CB gets the memo kept with the cached token (a zeroed one of the call's own otherwise). *OUT is
 * set on AUTH_OK, AUTH_REVOKED and AUTH_UNAVAILABLE. */
auth_reason_t auth_verify_bearer_ref(const auth_verifier_t *v, auth_tokcache_t *cache, const char *token, size_t len, int64_t now,
                                     auth_revoked_memo_cb cb, void *data, auth_claims_t *scratch, const auth_claims_t **out);

/* Everything for one bearer token: auth_verify_token through CACHE (NULL for none), then revocation
 * through CB (required). OUT as for auth_verify_token (also filled on AUTH_REVOKED / AUTH_UNAVAILABLE). */
auth_reason_t auth_verify_bearer(const auth_verifier_t *v, auth_tokcache_t *cache, const char *token, size_t len, int64_t now,
                                 auth_revoked_cb cb, void *data, auth_claims_t *out);

/* The low-level JWS check, alg pinned to ES256 (what the full verifier uses; the Wycheproof JWS
 * vectors run through it): length cap (0 = default), 3 parts of canonical base64url, header object
 * with alg exactly "ES256" and no "crit", a kid if present equal to KEY's kid (when KEY has one),
 * then the signature. typ and the payload's content are not looked at. On AUTH_OK the payload's
 * base64url text is *PAYLOAD / *PAYLOAD_LEN (pointing into JWS; either may be NULL). */
auth_reason_t auth_jws_verify_es256(const char *jws, size_t len, const auth_key_t *key, size_t max_len, const char **payload,
                                    size_t *payload_len);

/* Signs CLAIMS (a JSON object; serialised compactly as is) with KEY (which must hold a private key)
 * into a compact token with header {"alg":"ES256","typ":"at+jwt","kid":<KEY's kid>}. Signatures
 * are raw r‖s with low S. Returns a malloc'd NUL-terminated token (free()) or NULL. */
char *auth_jwt_sign(const auth_key_t *key, const json_t *claims);
/* The same with the header typ of TYPE: "JWT" for an OpenID Connect ID token (OIDC Core §2),
 * "logout+jwt" for a logout token (OpenID Connect Back-Channel Logout 1.0 §2.4). */
char *auth_jwt_sign_as(const auth_key_t *key, auth_jwt_type_t type, const json_t *claims);
/* The same for claims already serialised: CLAIMS must be one JSON object (checked); signed byte for byte. */
char *auth_jwt_sign_text(const auth_key_t *key, const char *claims, size_t len);

/* What an id_token_hint names (OpenID Connect RP-Initiated Logout 1.0 §2). */
typedef struct {
    char aud[128]; /* the client it was issued to */
    char sub[128]; /* as that client knows the resident */
    char sid[128]; /* the sign-in session; "" if none */
} auth_hint_t;

/* An ID token of this gateway's as a logout hint: the JWS checked as strictly as an access token (ES256,
 * typ exactly "JWT", a kid of KEYS that still verifies at NOW, the signature), iss = ISSUER, aud one
 * string; expiry is not checked (an RP may hint with an expired ID token). AUTH_OK fills OUT. */
auth_reason_t auth_verify_id_token_hint(const auth_keyset_t *keys, const char *issuer, const char *token, size_t len, int64_t now,
                                       auth_hint_t *out);

/* ---- tokcache.c ------------------------------------------------------------------------------- */

/*
 * Verified tokens, keyed by their exact bytes (seeded hash, then a full comparison), for one thread
 * (no locks: the gateway keeps one per event-loop thread). Fixed capacity, CLOCK eviction; an entry
 * dies at its claims' valid_until (exp + leeway, or the key's retirement, whichever is first), and
 * only answers for the verifier that stored it (after a reload the new verifier starts cold; the
 * old entries are recycled). Only AUTH_OK verdicts are stored; revocation is never cached. Tokens
 * longer than the verifier's cap never get here. Memory: about capacity × (sizeof(auth_claims_t)
 * + the token's length), i.e. ~8 MB for 4096 entries of 600-byte tokens.
 */
#define AUTH_TOKCACHE_DEFAULT 4096

typedef struct {
    uint64_t hits, misses, insertions, evictions, expirations;
} auth_tokcache_stats_t;

auth_tokcache_t *auth_tokcache_new(size_t capacity); /* 0 = AUTH_TOKCACHE_DEFAULT; NULL on failure */
void auth_tokcache_free(auth_tokcache_t *c);
/* 1 and OUT filled if TOKEN holds a verdict of V still good at NOW, else 0. */
int auth_tokcache_get(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now, auth_claims_t *out);
/* Remembers that V accepted TOKEN with CLAIMS (a copy is kept). Silently does nothing when out of memory. */
void auth_tokcache_put(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                       const auth_claims_t *claims);
void auth_tokcache_clear(auth_tokcache_t *c);
size_t auth_tokcache_size(const auth_tokcache_t *c);
size_t auth_tokcache_capacity(const auth_tokcache_t *c);
auth_tokcache_stats_t auth_tokcache_stats(const auth_tokcache_t *c);

#endif
