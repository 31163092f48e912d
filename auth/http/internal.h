/*
 * auth/http/internal.h — what the files of auth/http/ share and nobody else may use:
 * the Redis key layout, the Lua scripts, the per-request async state, and answer helpers.
 *
 * Redis keys (one hash tag {id}: every script touches one cluster slot):
 *   hegate:{id}:user:<sub>        hash: sub, pw (scrypt), phone_idx, name_masked, phone_masked,
 *                                  name / id_number / card:<kind> (AES-256-GCM sealed), cards, created
 *   hegate:{id}:phone:<hmac>      → sub (HMAC-SHA256 of the phone number under a data-key subkey)
 *   hegate:{id}:fail:<hmac>       failed sign-ins of one phone (TTL 15 min; ≥ 5 → 429 until it expires)
 *   hegate:{id}:sess:<sid>        hash: sub, ck (SHA-256 of the cookie secret), acr, at, exp; TTL session_ttl
 *   hegate:{id}:usess:<sub>       set of the user's sids (logout-all)
 *   hegate:{id}:consent:<sub>     hash: client_id → granted scopes
 *   hegate:{id}:code:<sha256>     hash: cid, ru, cc, sub, sid, scope, acr, used, fam, jti, exp; TTL 60 s
 *                                  (kept 10 min once used, to recognise a replay)
 *   hegate:{id}:rt:<sha256>       refresh token: fam, sub, sid, cid, scope, acr, used, exp; TTL refresh_ttl
 *                                  (exp: unix seconds on the issuing gateway's clock, checked against the
 *                                  calling gateway's clock beside the TTL: see LUA_EXPIRED in oauth.c)
 *   hegate:{id}:famrev:<fam>      a revoked refresh-token family
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

#define AUTH_CODE_TTL 60
#define AUTH_LOCK_FAILURES 5
#define AUTH_LOCK_SECONDS 900
#define AUTH_CONSENT_TTL (365 * 86400)
#define AUTH_COOKIE_SESSION "hegate_sid"
#define AUTH_COOKIE_PRE "hegate_pre"

/* Queues a KDF check for the task's request (its result comes back on the request's thread: CB with
 * the auth_kdf_verify result); 0, or -1 when the pool is full (nothing will be called). */
int auth_task_kdf(gw_task_t *t, const char *hash, const char *pw, size_t len, gw_task_job_cb cb);

typedef struct {
    gw_store_script_t login_lookup, login_fail, session_create, code_create, code_redeem, rt_rotate, rt_revoke, revoke, logout,
        logout_all, consent_save;
} auth_scripts_t;
const auth_scripts_t *auth_scripts(void);

/* the process-wide data key of CONF's keys.dir (created if absent); NULL if it cannot be had */
const uint8_t *auth_service_data_key(const gw_conf_t *conf); /* auth_data_key of CONF's keys.dir; logs a failure */

int auth_strlist_has(const gw_strlist_t *l, const char *s);
/* 1 if every word of the space-separated SCOPE is in ALLOWED (and SCOPE is well-formed) */
int auth_scope_subset(const char *scope, const gw_strlist_t *allowed);
int auth_scope_subset_str(const char *scope, const char *allowed);

/* answers (beside gateway.h's JSON and error answers) */
void auth_send_no_content(gw_req_t *greq);

/* Revokes MEMBERS ("sid:x" / "jti:x") until EXPS: locally at once, then in Redis + PUBLISH (fire and
 * forget on the caller's thread store). */
void auth_revoke_members(gw_thread_t *thread, const char *const *members, const int64_t *exps, size_t n);

/* Issues an access token for the given claims on GEN's newest token key. malloc'd, or NULL. JTI_OUT
 * (≥ 32 bytes) receives the jti. */
char *auth_issue_access_token(const gw_gen_t *gen, const char *sub, const char *client_id, const char *scope, const char *sid,
                              const char *acr, char *jti_out, int64_t *exp_out);
/* counts one issued token (hegate_tokens_issued_total{grant}) */
void auth_count_issued(gw_thread_t *thread, const char *grant);

/* the answer of authorization_code issuance (authorize.c) is a redirect: */
void auth_redirect(gw_req_t *greq, const char *location);

#endif
