/*
 * auth/http/token.c — POST /oauth2/token (SPEC §6, RFC 6749 §3.2): authorization_code with PKCE
 * S256 (a reused code revokes what it issued and ends its session), refresh_token with rotation and reuse
 * detection (a reused token revokes its family and its session), client_credentials, and the device grant
 * of RFC 8628 (SPEC §6.1: the kiosk's polls); ID tokens for openid (oidc.c); the minting of access tokens
 * (auth_issue_access_token, auth_count_issued).
 *
 * Called by oauth.c's family table (auth_token_handle), after client.c has authenticated the client.
 * Every state change is one Lua script of scripts.c. It never logs and never answers with anything
 * but the tokens it issues or a fixed OAuth error text.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "auth/http/internal.h"
#include "crypto/crypto.h"

/* ---- token issuance (also authorize.c's) ------------------------------------------------------------- */

char *auth_issue_access_token(const gw_gen_t *gen, const char *sub, const char *client_id, const char *scope, const char *sid,
                              const char *acr, int64_t ttl_s, char *jti, int64_t *exp_out)
{
    const gw_conf_t *conf = gen->conf;
    const auth_key_t *key = gen->token_keys != NULL ? auth_keyset_signer(gen->token_keys) : NULL;
    if (key == NULL)
        return NULL;
    int64_t now = (int64_t)time(NULL), exp = now + (ttl_s > 0 ? ttl_s : (int64_t)(conf->tokens.access_ttl_ms / 1000));
    if (jti[0] == '\0')
        auth_random_b64url(jti, 16);
    json_t *c = json_object();
    json_object_set_new(c, "iss", json_string(conf->issuer));
    json_object_set_new(c, "sub", json_string(sub));
    json_object_set_new(c, "aud", json_string(conf->tokens.audience));
    json_object_set_new(c, "client_id", json_string(client_id));
    json_object_set_new(c, "scope", json_string(scope));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(exp));
    json_object_set_new(c, "jti", json_string(jti));
    if (sid != NULL && sid[0] != '\0')
        json_object_set_new(c, "sid", json_string(sid));
    json_object_set_new(c, "acr", json_string(acr));
    char *tok = auth_jwt_sign(key, c);
    json_decref(c);
    *exp_out = exp;
    return tok;
}

static unsigned grant_slots[4];
static pthread_once_t grant_slots_once = PTHREAD_ONCE_INIT;
static void grant_slots_init(void)
{
    grant_slots[0] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "authorization_code");
    grant_slots[1] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "refresh_token");
    grant_slots[2] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "client_credentials");
    grant_slots[3] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "device_code");
}

void auth_count_issued(gw_thread_t *thread, const char *grant)
{
    pthread_once(&grant_slots_once, grant_slots_init);
    unsigned i = strcmp(grant, "authorization_code") == 0 ? 0
                 : strcmp(grant, "refresh_token") == 0    ? 1
                 : strcmp(grant, "device_code") == 0      ? 3
                                                          : 2;
    gw_metrics_count(thread->metrics, GW_MF_TOKENS_ISSUED, grant_slots[i]);
}

/* ---- /oauth2/token -------------------------------------------------------------------------------------- */

/* what a grant issues tokens for; a resident's grant (RESIDENT) with openid gets an ID token too */
typedef struct {
    const char *sub, *sid, *scope, *acr, *nonce;
    const char *name; /* masked, when the scope holds profile; else "" */
    int64_t auth_time;
    int64_t ttl_s; /* of the access token; 0: tokens.access_ttl */
    int resident;
} grant_t;

/* a redeemed code's or a rotated refresh token's script reply: {"ok", sub, sid, scope, acr, nonce, auth_time, name} */
static grant_t grant_of_reply(const redisReply *reply)
{
    return (grant_t){.sub = gw_reply_str(reply, 1), .sid = gw_reply_str(reply, 2), .scope = gw_reply_str(reply, 3),
                     .acr = gw_reply_str(reply, 4), .nonce = gw_reply_str(reply, 5),
                     .auth_time = strtoll(gw_reply_str(reply, 6), NULL, 10), .name = gw_reply_str(reply, 7), .resident = 1};
}

static void send_tokens(gw_task_t *o, const char *grant, const grant_t *g, const char *refresh)
{
    auth_cauth_t *c = o->ctx;
    const char *scope = g->scope;
    int64_t exp;
    char *at = auth_issue_access_token(o->greq->gen, g->sub, c->client->id, scope, g->sid, g->acr, g->ttl_s, c->jti, &exp);
    char *idt = NULL;
    if (at != NULL && g->resident && auth_scope_subset_str("openid", scope)) {
        auth_id_token_t t = {.sub = g->sub, .sid = g->sid, .acr = g->acr, .nonce = g->nonce, .auth_time = g->auth_time,
                             .name = g->name, .access_token = at};
        if ((idt = auth_issue_id_token(o->greq->gen, c->client, &t)) == NULL) {
            OPENSSL_cleanse(at, strlen(at));
            free(at);
            at = NULL;
        }
    }
    if (at == NULL) {
        gw_oauth_error(o->greq, 503, "temporarily_unavailable", "no signing key is loaded");
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "access_token", json_string(at));
    json_object_set_new(doc, "token_type", json_string("Bearer"));
    json_object_set_new(doc, "expires_in",
                        json_integer((json_int_t)(g->ttl_s > 0 ? g->ttl_s : (int64_t)(o->greq->gen->conf->tokens.access_ttl_ms / 1000))));
    json_object_set_new(doc, "scope", json_string(scope));
    if (refresh != NULL)
        json_object_set_new(doc, "refresh_token", json_string(refresh));
    if (idt != NULL) {
        json_object_set_new(doc, "id_token", json_string(idt));
        free(idt);
    }
    OPENSSL_cleanse(at, strlen(at));
    free(at);
    auth_count_issued(o->greq->thread, grant);
    auth_send_json_doc(o->greq, 200, doc);
}

/* a script ended session SID ("" none) in Redis: revoke it on this node at once, deliver its logouts */
static void session_ended(gw_req_t *greq, const char *sid)
{
    if (sid[0] == '\0' || strlen(sid) > 140)
        return;
    char m[160];
    snprintf(m, sizeof(m), "sid:%s", sid);
    gw_revocations_add(m, strlen(m), (int64_t)time(NULL) + (int64_t)(greq->gen->conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    auth_backchannel_kick(greq);
}

static void on_code_redeemed(gw_task_t *o, const redisReply *reply, const char *err)
{
    auth_cauth_t *c = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "ok") == 0) {
        grant_t g = grant_of_reply(reply);
        send_tokens(o, "authorization_code", &g, c->rt[0] != '\0' ? c->rt : NULL);
        return;
    }
    if (strcmp(status, "used") == 0) {
        /* a replayed code: what it issued dies (its refresh family and its access token), and the script
         * ended the session it was issued in (in Redis, published, back-channel logouts queued) */
        const gw_conf_t *conf = o->greq->gen->conf;
        int64_t now = (int64_t)time(NULL);
        char fam_key[128], ttl[24], jti_m[160];
        session_ended(o->greq, gw_reply_str(reply, 3));
        if (gw_reply_str(reply, 1)[0] != '\0' && o->greq->thread->store != NULL) {
            snprintf(fam_key, sizeof(fam_key), AUTH_RK "famrev:%s", gw_reply_str(reply, 1));
            snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000 + 1));
            const char *argv[] = {"SET", fam_key, "1", "EX", ttl};
            gw_store_command(o->greq->thread->store, auth_ignore_reply, NULL, 1, 5, argv, NULL);
        }
        if (gw_reply_str(reply, 2)[0] != '\0') {
            snprintf(jti_m, sizeof(jti_m), "jti:%s", gw_reply_str(reply, 2));
            const char *m[] = {jti_m};
            int64_t e[] = {now + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY};
            auth_revoke_members(o->greq->thread, m, e, 1);
        }
        gw_oauth_error(o->greq, 400, "invalid_grant", "the authorization code was used already");
        return;
    }
    if (strcmp(status, "pkce") == 0) {
        gw_oauth_error(o->greq, 400, "invalid_grant", "PKCE verification failed");
        return;
    }
    gw_oauth_error(o->greq, 400, "invalid_grant", "the authorization code is invalid, expired or not yours");
}

static int is_unreserved(const char *s, size_t min, size_t max)
{
    size_t l = strlen(s);
    if (l < min || l > max)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
              *s == '_' || *s == '~'))
            return 0;
    return 1;
}

static void grant_authorization_code(gw_task_t *o)
{
    auth_cauth_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    const char *code = auth_form_get(&c->form, "code"), *ru = auth_form_get(&c->form, "redirect_uri"),
               *verifier = auth_form_get(&c->form, "code_verifier");
    if (code == NULL || ru == NULL || strlen(code) > 256 || strlen(ru) > 2048) {
        gw_oauth_error(o->greq, 400, "invalid_request", "code and redirect_uri are required");
        return;
    }
    if (verifier == NULL || !is_unreserved(verifier, 43, 128)) {
        gw_oauth_error(o->greq, 400, "invalid_grant", "a PKCE code_verifier (43-128 characters) is required");
        return;
    }
    uint8_t md[32];
    unsigned mdlen = 32;
    char challenge[CRYPTO_B64URL_LEN(32) + 1], code_key[128], rt_key[128], rt_ttl[24], keep[8] = "600";
    EVP_Digest(verifier, strlen(verifier), md, &mdlen, EVP_sha256(), NULL);
    crypto_b64url_encode(challenge, md, 32);
    char code_hash[65];
    auth_sha256_hex(code, strlen(code), code_hash);
    snprintf(code_key, sizeof(code_key), AUTH_RK_CODE "%s", code_hash);
    int with_refresh = auth_strlist_has(&c->client->grants, "refresh_token");
    auth_random_b64url(c->jti, 16);
    auth_random_b64url(c->fam, 16);
    if (with_refresh) {
        auth_random_b64url(c->rt, 32);
        auth_sha256_hex(c->rt, strlen(c->rt), c->new_rt_hash);
    }
    snprintf(rt_key, sizeof(rt_key), AUTH_RK_RT "%s", with_refresh ? c->new_rt_hash : "-");
    snprintf(rt_ttl, sizeof(rt_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000));
    char now[24], revexp[24];
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    const char *args[] = {code_key, rt_key,    c->client->id, ru, challenge, c->fam, c->jti, rt_ttl, AUTH_RK, keep, with_refresh ? "1" : "0",
                          now,      revexp, GW_REVOCATIONS_CHANNEL, c->client->backchannel_logout_uri != NULL ? "1" : "0"};
    gw_task_eval(o, &auth_scripts()->code_redeem, on_code_redeemed, 2, 15, args, NULL);
}

static void on_rt_rotated(gw_task_t *o, const redisReply *reply, const char *err)
{
    auth_cauth_t *c = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "ok") == 0) {
        grant_t g = grant_of_reply(reply);
        g.nonce = NULL; /* a refreshed ID token carries no nonce (OIDC Core §12.2) */
        send_tokens(o, "refresh_token", &g, c->rt);
        return;
    }
    if (strcmp(status, "reused") == 0) {
        /* the script revoked the family and ended the session in Redis (published, logouts queued) */
        session_ended(o->greq, gw_reply_str(reply, 1));
        gw_oauth_error(o->greq, 400, "invalid_grant", "the refresh token was used already; its session is revoked");
        return;
    }
    if (strcmp(status, "scope") == 0) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope exceeds the original grant");
        return;
    }
    gw_oauth_error(o->greq, 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
}

static void grant_refresh_token(gw_task_t *o)
{
    auth_cauth_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    const char *rt = auth_form_get(&c->form, "refresh_token"), *scope = auth_form_get(&c->form, "scope");
    if (rt == NULL || strlen(rt) > 256) {
        gw_oauth_error(o->greq, 400, "invalid_request", "refresh_token is required");
        return;
    }
    if (scope != NULL && !auth_scope_subset(scope, &c->client->scopes)) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope is not allowed");
        return;
    }
    char old_key[128], new_key[128], fam_ttl[24], rt_ttl[24], revexp[24], now[24];
    auth_sha256_hex(rt, strlen(rt), c->rt_hash);
    auth_random_b64url(c->rt, 32);
    auth_sha256_hex(c->rt, strlen(c->rt), c->new_rt_hash);
    snprintf(old_key, sizeof(old_key), AUTH_RK_RT "%s", c->rt_hash);
    snprintf(new_key, sizeof(new_key), AUTH_RK_RT "%s", c->new_rt_hash);
    snprintf(fam_ttl, sizeof(fam_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000 + 1));
    snprintf(rt_ttl, sizeof(rt_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000));
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    c->jti[0] = '\0';
    const char *args[] = {old_key, new_key, c->client->id,          AUTH_RK, fam_ttl, rt_ttl, "0", revexp, GW_REVOCATIONS_CHANNEL,
                          scope != NULL ? scope : "", now, c->client->backchannel_logout_uri != NULL ? "1" : "0"};
    gw_task_eval(o, &auth_scripts()->rt_rotate, on_rt_rotated, 2, 12, args, NULL);
}

/* ---- the device grant (RFC 8628 §3.4, SPEC §6.1) ---- */

static void on_device_polled(gw_task_t *o, const redisReply *reply, const char *err)
{
    auth_cauth_t *c = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "ok") == 0) {
        const gw_conf_t *conf = o->greq->gen->conf;
        grant_t g = grant_of_reply(reply);
        if (c->client->shared_device) { /* a kiosk: a short access token, no refresh token (SPEC §6.1) */
            uint64_t ttl = conf->tokens.shared_device_ttl_ms < conf->tokens.access_ttl_ms ? conf->tokens.shared_device_ttl_ms
                                                                                            : conf->tokens.access_ttl_ms;
            g.ttl_s = (int64_t)(ttl / 1000);
        }
        auth_device_count(o->greq->thread, "exchanged");
        send_tokens(o, "device_code", &g, c->rt[0] != '\0' ? c->rt : NULL);
        return;
    }
    if (strcmp(status, "pending") == 0) {
        gw_oauth_error(o->greq, 400, "authorization_pending", "the resident has not decided yet");
    } else if (strcmp(status, "slow_down") == 0) {
        gw_oauth_error(o->greq, 400, "slow_down", "polling too fast: the interval grew by 5 seconds");
    } else if (strcmp(status, "denied") == 0) {
        gw_oauth_error(o->greq, 400, "access_denied", "the resident denied the request");
    } else if (strcmp(status, "expired") == 0) {
        auth_device_count(o->greq->thread, "expired");
        gw_oauth_error(o->greq, 400, "expired_token", "the device code expired");
    } else {
        gw_oauth_error(o->greq, 400, "invalid_grant", "the device code is invalid, used or not yours");
    }
}

static void grant_device_code(gw_task_t *o)
{
    auth_cauth_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    const char *dc = auth_form_get(&c->form, "device_code");
    if (dc == NULL || strlen(dc) > 256) {
        gw_oauth_error(o->greq, 400, "invalid_request", "device_code is required");
        return;
    }
    char dev_key[128], rt_key[128], rt_ttl[24], sess_ttl[24], now_ms[24], now_s[24], dc_hash[65], sid[32];
    auth_sha256_hex(dc, strlen(dc), dc_hash);
    snprintf(dev_key, sizeof(dev_key), AUTH_RK_DEV "%s", dc_hash);
    int with_refresh = !c->client->shared_device && auth_strlist_has(&c->client->grants, "refresh_token");
    auth_random_b64url(c->fam, 16);
    auth_random_b64url(sid, 16);
    c->rt[0] = '\0';
    if (with_refresh) {
        auth_random_b64url(c->rt, 32);
        auth_sha256_hex(c->rt, strlen(c->rt), c->new_rt_hash);
    }
    snprintf(rt_key, sizeof(rt_key), AUTH_RK_RT "%s", with_refresh ? c->new_rt_hash : "-");
    snprintf(rt_ttl, sizeof(rt_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000));
    uint64_t st = c->client->shared_device ? conf->tokens.shared_device_ttl_ms : conf->tokens.session_ttl_ms;
    snprintf(sess_ttl, sizeof(sess_ttl), "%llu", (unsigned long long)(st / 1000 > 0 ? st / 1000 : 1));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(now_ms, sizeof(now_ms), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)ts.tv_sec);
    c->jti[0] = '\0';
    const char *args[] = {dev_key, rt_key, c->client->id, now_ms, AUTH_RK, rt_ttl, with_refresh ? "1" : "0", c->fam, sid, sess_ttl,
                          c->client->backchannel_logout_uri != NULL ? "1" : "0", now_s};
    gw_task_eval(o, &auth_scripts()->device_poll, on_device_polled, 2, 12, args, NULL);
}

static void grant_client_credentials(gw_task_t *o)
{
    auth_cauth_t *c = o->ctx;
    const char *scope = auth_form_get(&c->form, "scope");
    if (scope == NULL) {
        scope = auth_scope_all(&o->greq->req->pool, c->client);
    } else if (!auth_scope_subset(scope, &c->client->scopes)) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope is not allowed for this client");
        return;
    }
    c->jti[0] = '\0';
    grant_t g = {.sub = c->client->id, .scope = scope, .acr = "0"};
    send_tokens(o, "client_credentials", &g, NULL);
}

static void token_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    auth_cauth_t *c = o->ctx;
    const char *grant = auth_form_get(&c->form, "grant_type");
    if (grant == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "grant_type is required");
        return;
    }
    if (strcmp(grant, AUTH_DEVICE_GRANT_TYPE) == 0)
        grant = "device_code"; /* as clients' `grants` name it */
    if (strcmp(grant, "authorization_code") != 0 && strcmp(grant, "refresh_token") != 0 &&
        strcmp(grant, "client_credentials") != 0 && strcmp(grant, "device_code") != 0) {
        gw_oauth_error(o->greq, 400, "unsupported_grant_type", "the grant type is not supported");
        return;
    }
    if (!auth_strlist_has(&client->grants, grant)) {
        gw_oauth_error(o->greq, 400, "unauthorized_client", "this client may not use this grant type");
        return;
    }
    c->grant = grant;
    if (strcmp(grant, "authorization_code") == 0)
        grant_authorization_code(o);
    else if (strcmp(grant, "refresh_token") == 0)
        grant_refresh_token(o);
    else if (strcmp(grant, "device_code") == 0)
        grant_device_code(o);
    else
        grant_client_credentials(o);
}

void auth_token_handle(gw_req_t *greq)
{
    auth_client_authenticate(gw_task_new(greq), 0, token_after_auth);
}
