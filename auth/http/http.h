/*
 * auth/http/http.h — the identity service of SPEC §6 (统一身份认证) as the gateway serves it: the
 * /oauth2 and /.well-known endpoint families on top of auth's token layer (auth/auth.h) and the
 * gateway's interface (gateway/gateway.h). This folder is the only part of auth/ that knows the
 * gateway; main.c registers its families. What its files share privately is in internal.h.
 *
 *   oauth.c      the /oauth2 family: its endpoint table, and the helpers its files share
 *   authorize.c  /oauth2/authorize: sign-in, sessions (cookie hegate_sid), consent, codes
 *   token.c      /oauth2/token: the grants, and the minting of access tokens
 *   introspect.c /oauth2/revoke (RFC 7009) and /oauth2/introspect (RFC 7662)
 *   session.c    /oauth2/userinfo, /oauth2/logout, /oauth2/logout-all, /oauth2/end_session
 *   oidc.c       OpenID Connect: the subjects clients see, ID tokens, prompt / max_age / nonce
 *   backchannel.c back-channel logout: logout tokens delivered to clients when a session ends
 *   client.c     client authentication of token, revoke and introspect; checks off the loop (KDF);
 *                the family's per-thread state
 *   scripts.c    the Lua scripts (every state change in Redis is one of them)
 *   wellknown.c  the /.well-known family: discovery and JWKS
 *   form.c       strict application/x-www-form-urlencoded and query parsing, HTTP Basic, cookies
 *   pages.c      the HTML sign-in, consent and error pages (every value escaped)
 *   usercode.c   the device grant's user codes: made, and read back from what a resident typed
 *   users.c      `hegate user add`, `hegate client hash-secret`, masking of names and phone numbers
 *
 * The Redis key layout (every key under one hash tag, so that the Lua scripts stay on one cluster
 * slot; identity traffic is small next to rate limiting) is written down in internal.h. Nothing here
 * logs or answers with a password, a token, a phone number, an ID or card number.
 */
#ifndef hegate_auth_http_h
#define hegate_auth_http_h

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"
#include "auth/kdf.h"

/* ---- oauth.c, wellknown.c: the endpoint families (main.c registers them, before gw_server_run) ---- */

void auth_oauth_register(void);
void auth_wellknown_register(void);

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
/* REQ's query, parsed as above (none: an empty form). 0 or -1. */
int auth_form_of_query(h2o_req_t *req, auth_form_t *out);
/* REQ's parameters: the query of a GET, the body of a POST (application/x-www-form-urlencoded, at most
 * AUTH_FORM_MAX_BYTES). 0; -1 malformed or too large; -2 a POST of another content type. */
int auth_form_of_request(h2o_req_t *req, auth_form_t *out);
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
    const char *nonce; /* OpenID Connect: copied into the ID token as sent */
    const char *user_code; /* the device page's sign-in (SPEC §6.1): then the form goes to /oauth2/device */
} auth_authz_params_t;

/* Full HTML documents (allocated from POOL). ERROR may be NULL. */
h2o_iovec_t auth_page_signin(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *error,
                             const char *client_label);
h2o_iovec_t auth_page_consent(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *client_label);
/* The device pages (SPEC §6.1): a form to type a user code (ERROR may be NULL), and what a pending code asks —
 * the device's NAME, DESCRIPTION (NULL: none), the scopes, the minutes left — with Approve / Deny (CSRF). */
h2o_iovec_t auth_page_device_code(h2o_mem_pool_t *pool, const char *error);
h2o_iovec_t auth_page_device_approve(h2o_mem_pool_t *pool, const char *user_code, const char *csrf, const char *name,
                                     const char *description, const char *scope, long minutes_left);
/* "Sign out of this browser?" with a confirming form (POST /oauth2/end_session, action=logout, CSRF). */
h2o_iovec_t auth_page_end_session(h2o_mem_pool_t *pool, const char *csrf);
h2o_iovec_t auth_page_error(h2o_mem_pool_t *pool, const char *title, const char *message);
/* Sends an HTML page with the headers every page gets (no-store, CSP, frame-ancestors 'none'...). */
void auth_page_send(gw_req_t *greq, int status, h2o_iovec_t body);

/* ---- oidc.c ------------------------------------------------------------------------------------- */

#define AUTH_NONCE_MAX 512 /* bytes of an authorization request's nonce */

/* What OpenID Connect adds to an authorization request (SPEC §6.2; OIDC Core §3.1.2.1). */
typedef struct {
    int prompt_none, prompt_login;
    int64_t max_age; /* seconds; -1: not given */
} auth_oidc_request_t;
/* Reads nonce (its length), prompt (none | login, space-separated; none alone) and max_age (decimal
 * seconds) of the parsed request F into OUT: NULL, or why the request is invalid (a fixed text). */
const char *auth_oidc_request_read(const auth_form_t *f, auth_oidc_request_t *out);

/* ---- usercode.c --------------------------------------------------------------------------------- */

#define AUTH_USER_CODE_ALPHABET "BCDFGHJKLMNPQRSTVWXZ"
#define AUTH_USER_CODE_LEN 9 /* "XXXX-XXXX" */

/* A new user code "XXXX-XXXX", each letter uniform over the alphabet. 0, or -1 (no randomness). */
int auth_user_code_new(char out[AUTH_USER_CODE_LEN + 1]);
/* Typed input IN[0..LEN) → the canonical "XXXX-XXXX": letters of the alphabet in either case, dashes
 * and spaces anywhere ignored, exactly 8 letters. 0, or -1 (not a user code). */
int auth_user_code_normalize(const char *in, size_t len, char out[AUTH_USER_CODE_LEN + 1]);

/* ---- device.c ----------------------------------------------------------------------------------- */

/* The body of POST /oauth2/device/approve, {"user_code": ..., "decision": "approve" | "deny"} (≤ 4 KiB, one
 * JSON object): 0 with the canonical USER_CODE and DECISION (a static string), or -1. */
int auth_device_decision_parse(const char *body, size_t len, char user_code[AUTH_USER_CODE_LEN + 1], const char **decision);

/* ---- authorize.c -------------------------------------------------------------------------------- */

/* GET/POST /oauth2/authorize (called by oauth.c's dispatch). */
void auth_authorize_handle(gw_req_t *greq);
/* GET/POST /oauth2/device: the browser's side of the device grant (the same sign-in, then the device's page) */
void auth_device_page_handle(gw_req_t *greq);

#endif
