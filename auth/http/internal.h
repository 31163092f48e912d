/*
 * auth/http/internal.h — what the files of auth/http/ share and nobody else may use:
 * the Redis key layout, the Lua scripts, client authentication and its per-request state, token
 * issuance, the endpoint handlers of the /oauth2 table, and answer helpers. Sections are named after
 * the file that implements them.
 *
 * Redis keys (one hash tag {id}: every script touches one cluster slot):
 *   hegate:{id}:user:<sub>        hash: sub, pw (scrypt), phone_idx, name_masked, phone_masked,
 *                                  name / id_number / card:<kind> (AES-256-GCM sealed), cards, created
 *   hegate:{id}:phone:<hmac>      → sub (HMAC-SHA256 of the phone number under a data-key subkey)
 *   hegate:{id}:fail:<hmac>       failed sign-ins of one phone (TTL 15 min; ≥ 5 → 429 until it expires)
 *   hegate:{id}:sess:<sid>        hash: sub, ck (SHA-256 of the cookie secret), acr, at, exp, and c:<client_id>
 *                                  for each client with a backchannel_logout_uri issued tokens in it; TTL session_ttl
 *   hegate:{id}:usess:<sub>       set of the user's sids (logout-all)
 *   hegate:{id}:consent:<sub>     hash: client_id → granted scopes
 *   hegate:{id}:code:<sha256>     hash: cid, ru, cc, sub, sid, scope, acr, used, fam, jti, exp; TTL 60 s
 *                                  (kept 10 min once used, to recognise a replay)
 *   hegate:{id}:rt:<sha256>       refresh token: fam, sub, sid, cid, scope, acr, used, exp; TTL refresh_ttl
 *                                  (exp: unix seconds on the issuing gateway's clock, checked against the
 *                                  calling gateway's clock beside the TTL: see LUA_EXPIRED in scripts.c)
 *   hegate:{id}:famrev:<fam>      a revoked refresh-token family
 *   hegate:{id}:bcl:<sid> <cid>   a back-channel logout job: sub, n (attempts), t0 (ms); TTL AUTH_BCL_JOB_TTL_S
 *   hegate:{id}:bclq              sorted set of those jobs by due time (ms); see scripts.c, backchannel.c
 *   hegate:{id}:dev:<sha256>      a device authorization (SPEC §6.1): cid, scope, uc, st (pending | approved |
 *                                  denied), exp, iv (interval s), last (ms of the last poll), sub, at; TTL device_ttl + 60 s
 *   hegate:{id}:uc:<user code>    → the sha256 of its device code; TTL device_ttl (deleted when denied or exchanged)
 *   hegate:{id}:dguess:ip:<addr>, dguess:sub:<sub>   user-code lookups that found nothing (a fixed window)
 *   hegate:{id}:revocations       sorted set "sid:<sid>" / "jti:<jti>" → expiry (+ PUBLISH, see
 *                                  gateway/revocations.h)
 */
#ifndef hegate_auth_http_internal_h
#define hegate_auth_http_internal_h

#include "auth/http/http.h"
#include "gateway/revocations.h"

#define AUTH_RK_PHONE AUTH_RK "phone:"
#define AUTH_RK_FAIL AUTH_RK "fail:"
#define AUTH_RK_SESS AUTH_RK "sess:"
#define AUTH_RK_USESS AUTH_RK "usess:"
#define AUTH_RK_CONSENT AUTH_RK "consent:"
#define AUTH_RK_CODE AUTH_RK "code:"
#define AUTH_RK_RT AUTH_RK "rt:"
#define AUTH_RK_BCLQ AUTH_RK "bclq"
#define AUTH_RK_DEV AUTH_RK "dev:"
#define AUTH_RK_UC AUTH_RK "uc:"
#define AUTH_RK_DGUESS AUTH_RK "dguess:"
#define AUTH_DEVICE_INTERVAL 5 /* seconds between polls (RFC 8628 §3.2) */
#define AUTH_DEVICE_GRANT_TYPE "urn:ietf:params:oauth:grant-type:device_code"
#define AUTH_BCL_JOB_TTL_S "900" /* a job outlives its 10 minutes of retries and a lease */

#define AUTH_CODE_TTL 60
#define AUTH_LOCK_FAILURES 5
#define AUTH_LOCK_SECONDS 900
#define AUTH_CONSENT_TTL (365 * 86400)
#define AUTH_COOKIE_SESSION "hegate_sid"
#define AUTH_COOKIE_PRE "hegate_pre"

/* ---- scripts.c ---------------------------------------------------------------------------------- */

typedef struct {
    gw_store_script_t login_lookup, login_fail, session_create, code_create, code_redeem, rt_rotate, rt_revoke, revoke, logout,
        logout_all, consent_save, rt_info, bcl_claim, bcl_report, device_create, device_lookup, device_poll;
} auth_scripts_t;
/* the scripts, hashed at the first call (any thread) */
const auth_scripts_t *auth_scripts(void);

/* ---- client.c ----------------------------------------------------------------------------------- */

/* The /oauth2 family's per-thread state (the KDF port, the cache of client secrets that passed);
 * oauth.c's family table names it, gw_family_thread_data() hands it back. */
void *auth_oauth_thread_init(gw_thread_t *thread);

/* Queues a KDF check for the task's request (its result comes back on the request's thread: CB with
 * the auth_kdf_verify result); 0, or -1 when the pool is full (nothing will be called). */
int auth_task_kdf(gw_task_t *t, const char *hash, const char *pw, size_t len, gw_task_job_cb cb);
/* a session ended through GREQ: deliver its back-channel logouts now (backchannel.c) */
void auth_backchannel_kick(gw_req_t *greq);

typedef struct auth_cauth auth_cauth_t;
typedef void (*auth_cauth_cb)(gw_task_t *o, const gw_client_conf_t *client);

/* A request of an authenticated client (the task's ctx once auth_client_authenticate has run). */
struct auth_cauth {
    auth_form_t form;
    const gw_client_conf_t *client;
    auth_cauth_cb next;
    uint8_t digest[32];
    /* endpoint state */
    char jti[32], fam[32], rt[64], rt_hash[65], new_rt_hash[65];
    const char *grant;
};

/* Parses the form and authenticates the client (Basic for confidential clients, client_id in the body
 * for public ones unless CONFIDENTIAL_ONLY), then calls NEXT. Answers errors itself. */
void auth_client_authenticate(gw_task_t *o, int confidential_only, auth_cauth_cb next);

/* ---- oidc.c ------------------------------------------------------------------------------------- */

#define AUTH_SUB_MAX 128

/* The sub CLIENT sees for the city-wide pseudonym SUB: SUB itself for public-subject clients, a
 * pairwise identifier otherwise (SPEC §6.2). 0, or -1 (no data key; SUB too long). */
int auth_subject_for(const gw_conf_t *conf, const gw_client_conf_t *client, const char *sub, char out[AUTH_SUB_MAX]);

/* What an ID token says of one sign-in, beside what the configuration and the client give. */
typedef struct {
    const char *sub;          /* the city-wide pseudonym (auth_subject_for maps it) */
    const char *sid, *acr;    /* the sign-in session, its level */
    const char *nonce;        /* from the authorization request; NULL or "": none */
    const char *name;         /* the masked name (scope profile); NULL or "": none */
    int64_t auth_time;        /* when the resident signed in (unix seconds); 0: unknown */
    const char *access_token; /* issued with it: at_hash */
} auth_id_token_t;

/* An ID token for CLIENT on GEN's newest token key (typ JWT). malloc'd, or NULL. */
char *auth_issue_id_token(const gw_gen_t *gen, const gw_client_conf_t *client, const auth_id_token_t *t);

/* ---- backchannel.c ------------------------------------------------------------------------------ */

/* One thread's deliverer of back-channel logouts (thread 0 of a node also polls the queue). */
typedef struct auth_backchannel auth_backchannel_t;
auth_backchannel_t *auth_backchannel_new(gw_thread_t *thread);
/* The TLS client context of CONF's https back-channel URIs (system trust store, peer verified), or NULL
 * when there are none; NULL with ERR set when it cannot be made. Main thread (it reads files). */
SSL_CTX *auth_backchannel_tls_new(const gw_conf_t *conf, char *err, size_t errsz);
/* takes the due jobs now (after a session ended on this thread); B may be NULL */
void auth_backchannel_kick_thread(auth_backchannel_t *b);

/* ---- device.c ----------------------------------------------------------------------------------- */

/* POST /oauth2/device_authorization; GET /oauth2/device/info and POST /oauth2/device/approve (the app path) */
void auth_device_authorization_handle(gw_req_t *greq);
void auth_device_info_handle(gw_req_t *greq);
void auth_device_approve_handle(gw_req_t *greq);
/* GET /oauth2/device/qr.png, qr.svg ?user_code= (public: what the kiosk shows) */
void auth_device_qr_png_handle(gw_req_t *greq);
void auth_device_qr_svg_handle(gw_req_t *greq);
/* Looks the canonical user code UC up (the device_lookup script; its guessing limits count for the address and,
 * when SUB is not NULL, for that resident), deciding it when DECISION is "approve" or "deny"; CB gets the
 * script's reply: {'limited', ms} | {'unknown'} | {'decided'} | {'ok', client_id, scope, expires_at}. */
void auth_device_lookup(gw_task_t *o, const char *uc, const char *decision, const char *sub, gw_task_store_cb cb);
/* counts hegate_device_codes_total{result}: issued, approved, denied, exchanged, expired, unknown, limited */
void auth_device_count(gw_thread_t *thread, const char *result);

/* ---- token.c ------------------------------------------------------------------------------------ */

/* POST /oauth2/token */
void auth_token_handle(gw_req_t *greq);

/* Issues an access token for the given claims on GEN's newest token key. malloc'd, or NULL. JTI_OUT
 * (≥ 32 bytes) receives the jti. */
char *auth_issue_access_token(const gw_gen_t *gen, const char *sub, const char *client_id, const char *scope, const char *sid,
                              const char *acr, int64_t ttl_s, char *jti_out, int64_t *exp_out);
/* counts one issued token (hegate_tokens_issued_total{grant}) */
void auth_count_issued(gw_thread_t *thread, const char *grant);

/* ---- introspect.c ------------------------------------------------------------------------------- */

/* POST /oauth2/revoke (RFC 7009) and POST /oauth2/introspect (RFC 7662) */
void auth_revoke_handle(gw_req_t *greq);
void auth_introspect_handle(gw_req_t *greq);

/* ---- session.c ---------------------------------------------------------------------------------- */

/* /oauth2/userinfo, /oauth2/logout, /oauth2/logout-all (the pipeline has checked the bearer token) */
void auth_userinfo_handle(gw_req_t *greq);
void auth_logout_handle(gw_req_t *greq);
void auth_logout_all_handle(gw_req_t *greq);
/* GET|POST /oauth2/end_session (OpenID Connect RP-Initiated Logout) */
void auth_end_session_handle(gw_req_t *greq);

/* ---- authorize.c -------------------------------------------------------------------------------- */

/* "<sid>.<secret>" of the hegate_sid cookie, split and checked for shape; 0 or -1 */
int auth_session_cookie_split(h2o_mem_pool_t *pool, const char *cookie, const char **sid, const char **secret);
/* The CSRF token a form of this browser carries (HMAC of its pre-auth cookie, which is set first when
 * missing); NULL without a data key. session.c's end_session page uses it too. */
const char *auth_csrf_token(gw_req_t *greq);
/* whether CSRF is that token for this browser */
int auth_csrf_ok(gw_req_t *greq, const char *csrf);

/* ---- oauth.c: small shared helpers -------------------------------------------------------------- */

/* what the /oauth2 family builds with each generation (main thread) */
typedef struct {
    SSL_CTX *backchannel_tls; /* NULL when no client has an https backchannel_logout_uri */
} auth_oauth_gen_t;
const auth_oauth_gen_t *auth_oauth_gen(const gw_gen_t *gen);

/* the process-wide data key of CONF's keys.dir (created if absent); NULL if it cannot be had */
const uint8_t *auth_service_data_key(const gw_conf_t *conf); /* auth_data_key of CONF's keys.dir; logs a failure */

int auth_strlist_has(const gw_strlist_t *l, const char *s);
/* 1 if every word of the space-separated SCOPE is in ALLOWED (and SCOPE is well-formed) */
int auth_scope_subset(const char *scope, const gw_strlist_t *allowed);
int auth_scope_subset_str(const char *scope, const char *allowed);
/* every scope of CLIENT, space-separated (in POOL): what a request without `scope` asks for */
const char *auth_scope_all(h2o_mem_pool_t *pool, const gw_client_conf_t *client);

/* answers (beside gateway.h's JSON and error answers) */
void auth_send_no_content(gw_req_t *greq);
/* sends DOC as compact JSON with STATUS (or a 500 server_error if it cannot be printed); takes DOC */
void auth_send_json_doc(gw_req_t *greq, int status, json_t *doc);
/* the answer of authorization_code issuance (authorize.c) is a redirect: */
void auth_redirect(gw_req_t *greq, const char *location);

/* a store callback for fire-and-forget commands */
void auth_ignore_reply(void *data, const redisReply *reply, const char *err);

/* Revokes MEMBERS ("sid:x" / "jti:x") until EXPS: locally at once, then in Redis + PUBLISH (fire and
 * forget on the caller's thread store). */
void auth_revoke_members(gw_thread_t *thread, const char *const *members, const int64_t *exps, size_t n);

#endif
