/*
 * auth/oauth.h — the OAuth 2.0 / sign-in service of SPEC §6 (统一身份认证) on top of the token layer
 * of auth/auth.h: what the gateway calls, and what the files of the service share.
 *
 *   kdf.c        scrypt password/secret hashes and the worker pool that runs them off the event loop
 *   sealed.c     the data key (keys.dir/data.key), AES-256-GCM for personal data at rest, HMAC indexes
 *   form.c       strict application/x-www-form-urlencoded and query parsing, HTTP Basic, cookies
 *   users.c      `hegate user add`, `hegate client hash-secret`, masking of names and phone numbers
 *   pages.c      the HTML sign-in, consent and error pages (every value escaped)
 *   oauth.c      /oauth2/... dispatch, token, revoke, introspect, userinfo, logout, logout-all
 *   authorize.c  /oauth2/authorize: sign-in, sessions (cookie hegate_sid), consent, codes
 *
 * The Redis key layout (every key under one hash tag, so that the Lua scripts stay on one cluster
 * slot; identity traffic is small next to rate limiting) is written down in oauth.c. Nothing here
 * logs or answers with a password, a token, a phone number, an ID or card number.
 */
#ifndef hegate_auth_oauth_h
#define hegate_auth_oauth_h

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

/* ---- oauth.c ------------------------------------------------------------------------------------ */

/* Answers /oauth2/... requests. Returns 0 when it answered (or will answer), -1 when PATH is not
 * one of its own (the pipeline goes on with route matching). */
int auth_oauth_handle(gw_req_t *greq);
/* Per-thread state (the KDF result port, a cache of verified client secrets): called once on each
 * event-loop thread before it serves. */
void auth_oauth_thread_init(gw_thread_t *thread);

/* ---- kdf.c -------------------------------------------------------------------------------------- */

#define AUTH_KDF_HASH_MAX 160     /* "$scrypt$15$8$1$<salt>$<hash>" and a NUL */
#define AUTH_KDF_SECRET_MAX 1024  /* longest password or client secret accepted anywhere */

/* Hashes PW into OUT ("$scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>", N=2^15 r=8 p=1,
 * 16-byte random salt, 32-byte output). Blocking (≈ 50–100 ms): CLI and worker threads only. 0/-1. */
int auth_kdf_hash(const char *pw, size_t len, char out[AUTH_KDF_HASH_MAX]);
/* 1 if PW matches HASH, 0 if not or HASH is malformed, -1 on an internal error. Constant-time
 * comparison. Blocking. */
int auth_kdf_verify(const char *hash, const char *pw, size_t len);

/* The worker pool. A port receives the results on one event loop (one per loop thread). */
typedef struct {
    h2o_multithread_receiver_t receiver;
} auth_kdf_port_t;
typedef struct auth_kdf_job auth_kdf_job_t;
/* RESULT as auth_kdf_verify. Runs on the port's loop, never from inside auth_kdf_verify_async. */
typedef void (*auth_kdf_cb)(void *data, int result);

void auth_kdf_port_init(auth_kdf_port_t *port, h2o_multithread_queue_t *queue);
/* Queues a verification of PW against HASH (both copied; HASH NULL = an unknown user: a dummy hash
 * of the same cost is checked, and the result is 0 — same time, same answer). Returns NULL when the
 * queue is full (the caller answers 503). The handle is valid until CB runs or auth_kdf_cancel. */
auth_kdf_job_t *auth_kdf_verify_async(auth_kdf_port_t *port, const char *hash, const char *pw, size_t len, auth_kdf_cb cb,
                                      void *data);
/* CB will not be called (the work may still run to its end). Loop thread only. */
void auth_kdf_cancel(auth_kdf_job_t *job);
/* Stops the worker pool: each worker ends after the hash it is computing, queued work is dropped.
 * Call once the event loops have ended, before the process exits (a worker still inside OpenSSL
 * while exit() tears OpenSSL down would crash). */
void auth_kdf_pool_stop(void);

/* ---- sealed.c ----------------------------------------------------------------------------------- */

/* AUTH_DATA_KEY_LEN and auth_data_key_load (keys.dir/data.key): auth/auth.h, for `hegate keys generate` */
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

/* ---- form.c ------------------------------------------------------------------------------------- */

#define AUTH_FORM_MAX_BYTES 16384
#define AUTH_FORM_MAX_PARAMS 32

typedef struct {
    size_t n;
    struct {
        const char *name, *value; /* decoded, NUL-terminated, in the pool */
        size_t value_len;
    } p[AUTH_FORM_MAX_PARAMS];
} auth_form_t;

/* Parses TEXT as application/x-www-form-urlencoded, strictly: at most AUTH_FORM_MAX_BYTES bytes and
 * AUTH_FORM_MAX_PARAMS pairs, every pair "name=value" (empty pieces between '&' refused), valid %XX
 * escapes only, '+' is a space, decoded text valid UTF-8 without control characters (tab, CR and
 * LF allowed in values), no parameter twice. 0 or -1. */
int auth_form_parse(h2o_mem_pool_t *pool, const char *text, size_t len, auth_form_t *out);
/* The value of NAME, or NULL. */
const char *auth_form_get(const auth_form_t *form, const char *name);
/* 1 if the request's content-type is application/x-www-form-urlencoded (charset utf-8 allowed). */
int auth_form_content_type_ok(h2o_req_t *req);
/* "Authorization: Basic ..." → client id and secret (each form-urldecoded, RFC 6749 §2.3.1).
 * 1 found and well-formed, 0 absent (or another scheme), -1 malformed. */
int auth_basic_parse(h2o_req_t *req, const char **id, const char **secret, size_t *secret_len);
/* The value of cookie NAME (copied into the pool), or NULL. */
const char *auth_cookie_get(h2o_req_t *req, const char *name);
/* Appends S to BUF (percent-encoding everything but unreserved characters); NULL-safe sizes. */
size_t auth_urlencode(char *buf, size_t bufsz, const char *s);

/* ---- users.c ------------------------------------------------------------------------------------ */

/* `hegate user add -c FILE --phone P --name N --id-number ID [--card KIND:NUMBER]... --password-stdin`
 * (ARGV[0] is "user"). Exit status: 0 done (prints the new sub), 1 failed, 2 usage. */
int auth_user_cli_main(int argc, char **argv);
/* `hegate client hash-secret` (ARGV[0] is "client"): secret on stdin → the hash on stdout. */
int auth_client_cli_main(int argc, char **argv);
/* "张三" → "张*" (first character kept, one '*' per further character). OUT ≥ 3 × strlen + 1. */
void auth_mask_name(const char *name, char *out, size_t outsz);
/* "13800000000" → "138****0000" (first 3 and last 4 digits kept; short numbers keep the last 2). */
void auth_mask_phone(const char *phone, char *out, size_t outsz);
/* Normalises a phone number typed by a person (spaces and dashes dropped): 0 and OUT = "+"? digits
 * (5–20 of them), or -1. */
int auth_phone_normalize(const char *in, char *out, size_t outsz);

/* ---- pages.c ------------------------------------------------------------------------------------ */

/* The parameters of one authorization request, carried through the forms as hidden fields. */
typedef struct {
    const char *client_id, *redirect_uri, *scope, *state, *code_challenge, *code_challenge_method, *response_type;
} auth_authz_params_t;

/* Full HTML documents (allocated from POOL). ERROR may be NULL. */
h2o_iovec_t auth_page_signin(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *error,
                             const char *client_label);
h2o_iovec_t auth_page_consent(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *client_label);
h2o_iovec_t auth_page_error(h2o_mem_pool_t *pool, const char *title, const char *message);
/* Sends an HTML page with the headers every page gets (no-store, CSP, frame-ancestors 'none'...). */
void auth_page_send(gw_req_t *greq, int status, h2o_iovec_t body);

/* ---- authorize.c -------------------------------------------------------------------------------- */

/* GET/POST /oauth2/authorize (called by oauth.c's dispatch). */
void auth_authorize_handle(gw_req_t *greq);

#endif
