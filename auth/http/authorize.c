/*
 * auth/http/authorize.c — GET/POST /oauth2/authorize (SPEC §6): validate the authorization request
 * (known client, exact redirect_uri, response_type code, PKCE S256 required, scopes allowed), then
 * the browser's sign-in session (cookie hegate_sid backed by Redis; sign in once for every client),
 * the sign-in form (phone + password, CSRF token bound to the pre-auth cookie hegate_pre, lockout
 * after 5 failures per phone in 15 min, the same answer and time for an unknown phone), the consent
 * form for third-party clients (remembered per user and client), and finally a single-use code
 * (≤ 60 s, bound to client, redirect_uri and code_challenge) in a 302 to redirect_uri.
 *
 * The same sign-in serves the device page, GET|POST /oauth2/device (SPEC §6.1): a typed or scanned user
 * code, the browser's session (or the sign-in form), then what the device asks, with Approve / Deny
 * (CSRF-checked; decided through device.c's lookup, which counts failed lookups against guessing).
 *
 * The /oauth2 family's authorize and device endpoints (oauth.c's table; the pipeline calls them). Errors before the redirect_uri is trusted are HTML pages, never
 * redirects; later ones go back to the client as error=... Nothing here logs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "auth/http/internal.h"

typedef struct {
    auth_authz_params_t p;
    const gw_client_conf_t *client;
    auth_form_t form;
    const char *csrf; /* the token the forms carry */
    char phone_idx[65];
    const char *password;
    size_t password_len;
    char sub[128], sid[40], acr[16];
    const char *set_cookie; /* the session cookie to send with the final answer */
    int consented;
    char code[64];
    auth_oidc_request_t oidc; /* prompt, max_age (SPEC §6.2), of the GET request only: the forms do not carry them */
    /* the device page (/oauth2/device, SPEC §6.1): the same sign-in, then the device's code instead of a client's */
    int device;
    char user_code[AUTH_USER_CODE_LEN + 1];
    const char *decision; /* "approve" | "deny" from its form, or NULL: show what the code asks */
} az_t;

static int is_b64url(const char *s, size_t min, size_t max)
{
    size_t l = strlen(s);
    if (l < min || l > max)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

int auth_session_cookie_split(h2o_mem_pool_t *pool, const char *cookie, const char **sid, const char **secret)
{
    const char *dot = strchr(cookie, '.');
    if (dot == NULL || dot - cookie != 22)
        return -1;
    char *s = h2o_strdup(pool, cookie, 22).base;
    if (!is_b64url(s, 22, 22) || !is_b64url(dot + 1, 43, 43))
        return -1;
    *sid = s;
    *secret = dot + 1;
    return 0;
}

static void send_error_page(gw_req_t *greq, int status, const char *title, const char *message)
{
    auth_page_send(greq, status, auth_page_error(&greq->req->pool, title, message));
}

/* 302 to the client's (already validated) redirect_uri with PARAMS appended to its query */
static void redirect_to_client(gw_task_t *o, const char *code, const char *error, const char *description)
{
    az_t *az = o->ctx;
    char loc[4096 + 1024];
    snprintf(loc, sizeof(loc), "%s%c", az->p.redirect_uri, strchr(az->p.redirect_uri, '?') != NULL ? '&' : '?');
    if (code != NULL) {
        strcat(loc, "code=");
        auth_urlencode(loc, sizeof(loc), code);
    } else {
        strcat(loc, "error=");
        auth_urlencode(loc, sizeof(loc), error);
        if (description != NULL) {
            strcat(loc, "&error_description=");
            auth_urlencode(loc, sizeof(loc), description);
        }
    }
    if (az->p.state != NULL) {
        strcat(loc, "&state=");
        auth_urlencode(loc, sizeof(loc), az->p.state);
    }
    strcat(loc, "&iss=");
    auth_urlencode(loc, sizeof(loc), o->greq->gen->conf->issuer);
    if (az->set_cookie != NULL)
        h2o_add_header(&o->greq->req->pool, &o->greq->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, az->set_cookie,
                       strlen(az->set_cookie));
    auth_redirect(o->greq, h2o_strdup(&o->greq->req->pool, loc, SIZE_MAX).base);
}

static void show_signin(gw_task_t *o, int status, const char *error);

/* no usable sign-in session: the sign-in page, or for prompt=none the OIDC error (Core §3.1.2.6) */
static void need_signin(gw_task_t *o)
{
    az_t *az = o->ctx;
    if (az->oidc.prompt_none)
        redirect_to_client(o, NULL, "login_required", "the resident is not signed in");
    else
        show_signin(o, 200, NULL);
}

/* Checks the authorization request in AZ->p. 0: valid; -1: answered (an error page or a redirect). */
static int validate(gw_task_t *o)
{
    az_t *az = o->ctx;
    gw_req_t *greq = o->greq;
    const gw_conf_t *conf = greq->gen->conf;
    az->client = gw_conf_client(conf, az->p.client_id);
    if (az->client == NULL) {
        send_error_page(greq, 400, "无法登录 Cannot sign in", "未知的应用。Unknown application (client_id).");
        return -1;
    }
    if (az->p.redirect_uri == NULL || !auth_strlist_has(&az->client->redirect_uris, az->p.redirect_uri)) {
        send_error_page(greq, 400, "无法登录 Cannot sign in", "回调地址未登记。The redirect_uri is not registered for this application.");
        return -1;
    }
    if (az->p.state != NULL && strlen(az->p.state) > 512) {
        send_error_page(greq, 400, "无法登录 Cannot sign in", "The state parameter is too long.");
        return -1;
    }
    const char *why = auth_oidc_request_read(&az->form, &az->oidc);
    if (why != NULL) {
        redirect_to_client(o, NULL, "invalid_request", why);
        return -1;
    }
    if (!auth_strlist_has(&az->client->grants, "authorization_code")) {
        redirect_to_client(o, NULL, "unauthorized_client", "this client may not use the authorization code flow");
        return -1;
    }
    if (az->p.response_type == NULL || strcmp(az->p.response_type, "code") != 0) {
        redirect_to_client(o, NULL, "unsupported_response_type", "only response_type=code is supported");
        return -1;
    }
    if (az->p.code_challenge_method == NULL || strcmp(az->p.code_challenge_method, "S256") != 0 || az->p.code_challenge == NULL ||
        !is_b64url(az->p.code_challenge, 43, 43)) {
        redirect_to_client(o, NULL, "invalid_request", "PKCE with code_challenge_method=S256 is required");
        return -1;
    }
    if (az->p.scope == NULL || az->p.scope[0] == '\0') {
        az->p.scope = auth_scope_all(&greq->req->pool, az->client);
    } else if (!auth_scope_subset(az->p.scope, &az->client->scopes)) {
        redirect_to_client(o, NULL, "invalid_scope", "a requested scope is not allowed for this client");
        return -1;
    }
    return 0;
}

static void read_params(az_t *az, const auth_form_t *f)
{
    az->p.response_type = auth_form_get(f, "response_type");
    az->p.client_id = auth_form_get(f, "client_id");
    az->p.redirect_uri = auth_form_get(f, "redirect_uri");
    az->p.scope = auth_form_get(f, "scope");
    az->p.state = auth_form_get(f, "state");
    az->p.code_challenge = auth_form_get(f, "code_challenge");
    az->p.code_challenge_method = auth_form_get(f, "code_challenge_method");
    az->p.nonce = auth_form_get(f, "nonce");
}

static int is_tls(gw_req_t *greq)
{
    return greq->req->scheme == &H2O_URL_SCHEME_HTTPS;
}

/* the CSRF token of the pre-auth cookie; sets the cookie first if the browser has none */
const char *auth_csrf_token(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    const uint8_t *dk = auth_service_data_key(greq->gen->conf);
    if (dk == NULL)
        return NULL;
    const char *pre = auth_cookie_get(req, AUTH_COOKIE_PRE);
    if (pre == NULL || !is_b64url(pre, 43, 43)) {
        char *fresh = h2o_mem_alloc_pool(&req->pool, 64);
        auth_random_b64url(fresh, 32);
        pre = fresh;
        char cookie[256];
        snprintf(cookie, sizeof(cookie), AUTH_COOKIE_PRE "=%s; Path=/oauth2; Max-Age=3600; HttpOnly; SameSite=Lax%s", pre,
                 is_tls(greq) ? "; Secure" : "");
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, cookie, SIZE_MAX).base,
                       strlen(cookie));
    }
    uint8_t k[32];
    char *csrf = h2o_mem_alloc_pool(&req->pool, 65);
    auth_subkey(dk, "csrf", k);
    auth_hmac_hex(k, pre, strlen(pre), csrf);
    OPENSSL_cleanse(k, sizeof(k));
    return csrf;
}

int auth_csrf_ok(gw_req_t *greq, const char *csrf)
{
    const char *pre = auth_cookie_get(greq->req, AUTH_COOKIE_PRE);
    const uint8_t *dk = auth_service_data_key(greq->gen->conf);
    char want[65];
    int ok = 0;
    if (dk != NULL && csrf != NULL && pre != NULL && is_b64url(pre, 43, 43)) {
        uint8_t k[32];
        auth_subkey(dk, "csrf", k);
        auth_hmac_hex(k, pre, strlen(pre), want);
        OPENSSL_cleanse(k, sizeof(k));
        ok = auth_str_equal_ct(csrf, want);
    }
    return ok;
}

static void show_signin(gw_task_t *o, int status, const char *error)
{
    az_t *az = o->ctx;
    if ((az->csrf = auth_csrf_token(o->greq)) == NULL) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "Please try again later.");
        return;
    }
    if (status == 429)
        h2o_add_header(&o->greq->req->pool, &o->greq->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("900"));
    auth_page_send(o->greq, status,
                   auth_page_signin(&o->greq->req->pool, &az->p, az->csrf, error,
                                    az->client != NULL ? az->client->id : "设备登录 Device sign-in"));
}

static void show_consent(gw_task_t *o)
{
    az_t *az = o->ctx;
    if ((az->csrf = auth_csrf_token(o->greq)) == NULL) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "Please try again later.");
        return;
    }
    if (az->set_cookie != NULL)
        h2o_add_header(&o->greq->req->pool, &o->greq->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, az->set_cookie,
                       strlen(az->set_cookie));
    auth_page_send(o->greq, 200, auth_page_consent(&o->greq->req->pool, &az->p, az->csrf, az->client->id));
}

static int store_failed_page(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (err != NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "服务繁忙，请稍后再试。Please try again in a moment.");
        return 1;
    }
    return 0;
}

/* ---- the code ---------------------------------------------------------------------------------- */

static void on_code_created(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (store_failed_page(o, reply, err))
        return;
    redirect_to_client(o, ((az_t *)o->ctx)->code, NULL, NULL);
}

static void issue_code(gw_task_t *o)
{
    az_t *az = o->ctx;
    char *code = az->code, hash[65], key[128], ttl[8], exp[24];
    auth_random_b64url(code, 32);
    auth_sha256_hex(code, strlen(code), hash);
    snprintf(key, sizeof(key), AUTH_RK_CODE "%s", hash);
    snprintf(ttl, sizeof(ttl), "%d", AUTH_CODE_TTL);
    snprintf(exp, sizeof(exp), "%lld", (long long)time(NULL) + AUTH_CODE_TTL); /* ≤ 60 s on this clock too */
    const char *args[] = {
        key, az->client->id, az->p.redirect_uri, az->p.code_challenge, az->sub, az->sid, az->p.scope, az->acr, ttl, exp,
        az->p.nonce != NULL ? az->p.nonce : ""};
    gw_task_eval(o, &auth_scripts()->code_create, on_code_created, 1, 11, args, NULL);
}

/* ---- consent ------------------------------------------------------------------------------------ */

static void on_consent_saved(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (store_failed_page(o, reply, err))
        return;
    issue_code(o);
}

static void on_consent_read(gw_task_t *o, const redisReply *reply, const char *err)
{
    az_t *az = o->ctx;
    if (store_failed_page(o, reply, err))
        return;
    if (reply->type == REDIS_REPLY_STRING && auth_scope_subset_str(az->p.scope, reply->str))
        issue_code(o);
    else if (az->oidc.prompt_none)
        redirect_to_client(o, NULL, "consent_required", "the resident has not consented to these scopes");
    else
        show_consent(o);
}

static void device_signed_in(gw_task_t *o);

/* signed in as AZ->sub / AZ->sid: consent if needed, then the code (the device page: the device's code) */
static void with_session(gw_task_t *o)
{
    az_t *az = o->ctx;
    if (az->device) {
        device_signed_in(o);
        return;
    }
    char key[200];
    snprintf(key, sizeof(key), AUTH_RK_CONSENT "%s", az->sub);
    char *k = h2o_strdup(&o->greq->req->pool, key, SIZE_MAX).base;
    if (az->client->first_party) {
        issue_code(o);
    } else if (az->consented) {
        const char *args[] = {k, az->client->id, az->p.scope, "31536000"};
        gw_task_eval(o, &auth_scripts()->consent_save, on_consent_saved, 1, 4, args, NULL);
    } else {
        const char *argv[] = {"HGET", k, az->client->id};
        gw_task_command(o, on_consent_read, 3, argv, NULL);
    }
}

/* ---- the existing session (cookie) --------------------------------------------------------------- */

typedef void (*session_next_t)(gw_task_t *o, int found);

static void on_session_read(gw_task_t *o, const redisReply *reply, const char *err)
{
    az_t *az = o->ctx;
    if (store_failed_page(o, reply, err))
        return;
    const char *secret = (const char *)az->set_cookie; /* parked cookie secret */
    az->set_cookie = NULL;
    int found = 0;
    /* a session lives until its 'exp' on the gateway's clock (or Redis' TTL, whichever comes first) */
    int expired = reply->type == REDIS_REPLY_ARRAY && reply->elements == 5 && reply->element[3]->type == REDIS_REPLY_STRING &&
                  strtoll(reply->element[3]->str, NULL, 10) <= (long long)time(NULL);
    /* max_age: a sign-in longer ago than that does not count (OIDC Core §3.1.2.1) */
    if (az->oidc.max_age >= 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements == 5 &&
        (long long)time(NULL) - strtoll(gw_reply_str(reply, 4), NULL, 10) > (long long)az->oidc.max_age)
        expired = 1;
    if (!expired && reply->type == REDIS_REPLY_ARRAY && reply->elements == 5 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < sizeof(az->sub)) {
        char ck[65];
        auth_sha256_hex(secret, strlen(secret), ck);
        if (auth_str_equal_ct(reply->element[1]->str, ck)) {
            found = 1;
            strcpy(az->sub, reply->element[0]->str);
            snprintf(az->acr, sizeof(az->acr), "%s", reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : "pwd");
        }
    }
    if (found) {
        with_session(o);
        return;
    }
    if (az->consented) {
        send_error_page(o->greq, 400, "请重新登录 Please sign in again", "Your sign-in session has ended.");
        return;
    }
    need_signin(o);
}

/* looks the browser's session up: then with_session, or the sign-in page */
static void check_session(gw_task_t *o)
{
    az_t *az = o->ctx;
    h2o_req_t *req = o->greq->req;
    const char *cookie = auth_cookie_get(req, AUTH_COOKIE_SESSION), *sid, *secret;
    if (cookie == NULL || auth_session_cookie_split(&req->pool, cookie, &sid, &secret) != 0) {
        if (az->consented)
            send_error_page(o->greq, 400, "请重新登录 Please sign in again", "Your sign-in session has ended.");
        else
            need_signin(o);
        return;
    }
    snprintf(az->sid, sizeof(az->sid), "%s", sid);
    az->set_cookie = secret; /* parked for on_session_read */
    char key[128];
    snprintf(key, sizeof(key), AUTH_RK_SESS "%s", sid);
    const char *argv[] = {"HMGET", h2o_strdup(&req->pool, key, SIZE_MAX).base, "sub", "ck", "acr", "exp", "at"};
    gw_task_command(o, on_session_read, 7, argv, NULL);
}

/* ---- the device page (SPEC §6.1) ----------------------------------------------------------------- */

static void device_page(gw_task_t *o, int status, h2o_iovec_t body)
{
    az_t *az = o->ctx;
    if (az->set_cookie != NULL) /* signed in just now */
        h2o_add_header(&o->greq->req->pool, &o->greq->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, az->set_cookie,
                       strlen(az->set_cookie));
    auth_page_send(o->greq, status, body);
}

static void on_device_looked_up(gw_task_t *o, const redisReply *reply, const char *err)
{
    az_t *az = o->ctx;
    h2o_req_t *req = o->greq->req;
    if (store_failed_page(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    const gw_client_conf_t *client = strcmp(status, "ok") == 0 ? gw_conf_client(o->greq->gen->conf, gw_reply_str(reply, 1)) : NULL;
    if (strcmp(status, "limited") == 0) {
        long long ms = strtoll(gw_reply_str(reply, 1), NULL, 10);
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", ms > 0 ? (ms + 999) / 1000 : 1);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, ra, SIZE_MAX).base, strlen(ra));
        auth_device_count(o->greq->thread, "limited");
        device_page(o, 429, auth_page_error(&req->pool, "尝试次数过多 Too many attempts", "请稍后再试。Please try again later."));
    } else if (strcmp(status, "decided") == 0) {
        device_page(o, 409, auth_page_error(&req->pool, "已处理 Already decided", "这个代码已被处理。This code has been decided already."));
    } else if (client == NULL) {
        auth_device_count(o->greq->thread, "unknown");
        device_page(o, 404, auth_page_device_code(&req->pool, "代码无效或已过期。The code is not valid or has expired."));
    } else if (az->decision != NULL) {
        int approve = strcmp(az->decision, "approve") == 0;
        auth_device_count(o->greq->thread, approve ? "approved" : "denied");
        device_page(o, 200, approve ? auth_page_error(&req->pool, "已批准 Approved", "请回到设备，它正在登录。Go back to the device: it is signing in.")
                                    : auth_page_error(&req->pool, "已拒绝 Denied", "设备不会登录。The device will not be signed in."));
    } else if ((az->csrf = auth_csrf_token(o->greq)) == NULL) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "Please try again later.");
    } else {
        long left = (long)(strtoll(gw_reply_str(reply, 3), NULL, 10) - (long long)time(NULL));
        device_page(o, 200,
                    auth_page_device_approve(&req->pool, az->user_code, az->csrf, client->name != NULL ? client->name : client->id,
                                             client->description, gw_reply_str(reply, 2), left > 0 ? (left + 59) / 60 : 1));
    }
}

/* signed in: what the code asks (or, from the page's form, its decision) */
static void device_signed_in(gw_task_t *o)
{
    az_t *az = o->ctx;
    auth_device_lookup(o, az->user_code, az->decision != NULL ? az->decision : "", az->sub, on_device_looked_up);
}

/* ---- sign-in ------------------------------------------------------------------------------------- */

static const char signin_failed[] = "手机号或密码不正确。The phone number or password is not correct.";
static const char signin_locked[] = "尝试次数过多，请15分钟后再试。Too many attempts: try again in 15 minutes.";

static void on_session_created(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (store_failed_page(o, reply, err))
        return;
    with_session(o);
}

static void on_fail_counted(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (store_failed_page(o, reply, err))
        return;
    show_signin(o, 401, signin_failed);
}

static void on_password_checked(gw_task_t *o, int result)
{
    az_t *az = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    char fail_key[128];
    snprintf(fail_key, sizeof(fail_key), AUTH_RK_FAIL "%s", az->phone_idx);
    if (result < 0) {
        send_error_page(o->greq, 500, "暂时无法登录 Sign-in unavailable", "Please try again later.");
        return;
    }
    if (result == 0) {
        char window[16], limit[8];
        snprintf(window, sizeof(window), "%d", AUTH_LOCK_SECONDS);
        snprintf(limit, sizeof(limit), "%d", AUTH_LOCK_FAILURES);
        const char *args[] = {fail_key, window, limit};
        gw_task_eval(o, &auth_scripts()->login_fail, on_fail_counted, 1, 3, args, NULL);
        return;
    }
    /* a new session: sid (22 chars) and a cookie secret (43) of which Redis keeps only the hash */
    h2o_req_t *req = o->greq->req;
    char secret[48], ck[65], sess_key[128], usess_key[200], at[24], ttl[24], cookie[256];
    auth_random_b64url(az->sid, 16);
    auth_random_b64url(secret, 32);
    auth_sha256_hex(secret, strlen(secret), ck);
    strcpy(az->acr, "pwd");
    uint64_t ttl_s = conf->tokens.session_ttl_ms / 1000;
    snprintf(cookie, sizeof(cookie), AUTH_COOKIE_SESSION "=%s.%s; Path=/oauth2; Max-Age=%llu; HttpOnly; SameSite=Lax%s", az->sid,
             secret, (unsigned long long)ttl_s, is_tls(o->greq) ? "; Secure" : "");
    az->set_cookie = h2o_strdup(&req->pool, cookie, SIZE_MAX).base;
    OPENSSL_cleanse(secret, sizeof(secret));
    snprintf(sess_key, sizeof(sess_key), AUTH_RK_SESS "%s", az->sid);
    snprintf(usess_key, sizeof(usess_key), AUTH_RK_USESS "%s", az->sub);
    snprintf(at, sizeof(at), "%lld", (long long)time(NULL));
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_s);
    const char *args[] = {sess_key, usess_key, fail_key, az->sub, ck, az->acr, at, ttl, az->sid};
    gw_task_eval(o, &auth_scripts()->session_create, on_session_created, 3, 9, args, NULL);
}

static void on_login_lookup(gw_task_t *o, const redisReply *reply, const char *err)
{
    az_t *az = o->ctx;
    if (store_failed_page(o, reply, err))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "Please try again later.");
        return;
    }
    if (reply->element[0]->integer >= AUTH_LOCK_FAILURES) {
        show_signin(o, 429, signin_locked);
        return;
    }
    const char *sub = reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : "";
    const char *pw = reply->element[3]->type == REDIS_REPLY_STRING ? reply->element[3]->str : "";
    int known = sub[0] != '\0' && pw[0] != '\0' && strlen(sub) < sizeof(az->sub);
    if (known)
        strcpy(az->sub, sub);
    if (auth_task_kdf(o, known ? pw : NULL, az->password, az->password_len, on_password_checked) != 0)
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "服务繁忙，请稍后再试。Please try again in a moment.");
}

static void signin(gw_task_t *o)
{
    az_t *az = o->ctx;
    const char *phone_in = auth_form_get(&az->form, "phone"), *pw = auth_form_get(&az->form, "password");
    if (phone_in == NULL || pw == NULL || phone_in[0] == '\0' || pw[0] == '\0') {
        show_signin(o, 400, "请输入手机号和密码。Enter your phone number and password.");
        return;
    }
    const uint8_t *dk = auth_service_data_key(o->greq->gen->conf);
    if (dk == NULL) {
        send_error_page(o->greq, 503, "暂时无法登录 Sign-in unavailable", "Please try again later.");
        return;
    }
    /* a malformed phone number is simply an unknown one: same path, same time, same answer */
    char phone[40];
    if (auth_phone_normalize(phone_in, phone, sizeof(phone)) != 0)
        snprintf(phone, sizeof(phone), "?%.30s", phone_in);
    uint8_t k[32];
    auth_subkey(dk, "phone-index", k);
    auth_hmac_hex(k, phone, strlen(phone), az->phone_idx);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(phone, sizeof(phone));
    az->password = pw;
    az->password_len = strlen(pw);
    char fail_key[128], phone_key[128];
    snprintf(fail_key, sizeof(fail_key), AUTH_RK_FAIL "%s", az->phone_idx);
    snprintf(phone_key, sizeof(phone_key), AUTH_RK_PHONE "%s", az->phone_idx);
    const char *args[] = {fail_key, phone_key, AUTH_RK_USER};
    gw_task_eval(o, &auth_scripts()->login_lookup, on_login_lookup, 2, 3, args, NULL);
}

/* ---- the `login` rate-limit policy ------------------------------------------------------------------
 * SPEC §5: a policy named "login" also guards the sign-in form. Every submission of the sign-in form
 * (POST with action=signin and a valid authorization request, counted before the CSRF check and the
 * KDF: a flood costs one store round trip each, never a password hash) is checked against it, keyed
 * as the policy says (ip: the client address; client: the request's client_id, a registered one;
 * user: nobody is known before sign-in, so such a policy does not apply here). Over the limit: 429
 * problem+json with Retry-After; on every answer to a checked submission the RateLimit-Policy and
 * RateLimit fields, as on a limited route. The GET of the page, the consent form and the token
 * endpoint are not counted (SPEC names only the form; a per-IP minute budget on the token endpoint
 * would refuse the refreshes of every app behind one NAT). The answer is the routes' own
 * (gw_ratelimit_answer in pipeline.c). */

static const gw_ratelimit_conf_t *login_policy(const gw_conf_t *conf)
{
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        if (strcmp(conf->rate_limits[i].name, "login") == 0)
            return &conf->rate_limits[i];
    return NULL;
}

static void continue_post(gw_task_t *o);

static unsigned login_slot; /* hegate_ratelimited_total{policy="login"} */
static pthread_once_t login_slot_once = PTHREAD_ONCE_INIT;
static void login_slot_init(void)
{
    login_slot = gw_metrics_label_slot(GW_MF_RATELIMITED, "login");
}

static void on_login_verdict(void *data, gw_ratelimit_verdict_t *v)
{
    gw_task_t *o = data;
    o->greq->rl_check = NULL;
    pthread_once(&login_slot_once, login_slot_init);
    if (gw_ratelimit_answer(o->greq, v, h2o_iovec_init(NULL, 0), &login_slot,
                            "too many sign-in attempts from this address; try again later"))
        continue_post(o);
}

/* 1: a check is under way (or answered), the POST goes on from on_login_verdict; 0: no limit applies */
static int check_login_limit(gw_task_t *o)
{
    az_t *az = o->ctx;
    gw_req_t *greq = o->greq;
    const gw_ratelimit_conf_t *pol = login_policy(greq->gen->conf);
    const char *key = NULL;
    if (pol == NULL || greq->thread->ratelimit == NULL)
        return 0;
    switch (pol->key) {
    case GW_LIMIT_KEY_IP:
        key = greq->peer;
        break;
    case GW_LIMIT_KEY_CLIENT:
        key = az->p.client_id;
        break;
    case GW_LIMIT_KEY_USER:
        break;
    }
    if (key == NULL)
        return 0;
    h2o_iovec_t k = h2o_iovec_init(key, strlen(key));
    gw_ratelimit_verdict_t *verdict = h2o_mem_alloc_pool(&greq->req->pool, sizeof(*verdict)); /* 1 result; the full size is fine here */
    greq->rl_check = gw_ratelimit_check(greq->thread->ratelimit, &pol, &k, 1, verdict, on_login_verdict, o);
    if (greq->rl_check == NULL)
        on_login_verdict(o, verdict);
    return 1;
}

/* ---- entry ------------------------------------------------------------------------------------- */

void auth_authorize_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_task_t *o = gw_task_new(greq);
    az_t *az = h2o_mem_alloc_pool(&req->pool, sizeof(*az));
    memset(az, 0, sizeof(*az));
    o->ctx = az;
    int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (auth_form_of_request(req, &az->form) != 0) {
        send_error_page(greq, 400, "无法登录 Cannot sign in", post ? "The form is malformed." : "The authorization request is malformed.");
        return;
    }
    read_params(az, &az->form);
    if (validate(o) != 0)
        return;
    if (!post) {
        if (az->oidc.prompt_login) /* sign in again, whatever session the browser has */
            show_signin(o, 200, NULL);
        else
            check_session(o);
        return;
    }
    const char *action = auth_form_get(&az->form, "action");
    if (action != NULL && strcmp(action, "signin") == 0 && check_login_limit(o))
        return;
    continue_post(o);
}

void auth_device_page_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_task_t *o = gw_task_new(greq);
    az_t *az = h2o_mem_alloc_pool(&req->pool, sizeof(*az));
    memset(az, 0, sizeof(*az));
    o->ctx = az;
    az->device = 1;
    az->oidc.max_age = -1; /* no max_age: any live session counts */
    int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (auth_form_of_request(req, &az->form) != 0) {
        send_error_page(greq, 400, "无法登录 Cannot sign in", "The request is malformed.");
        return;
    }
    const char *uc = auth_form_get(&az->form, "user_code");
    if (uc == NULL && !post) { /* no code yet: the form to type it */
        auth_page_send(greq, 200, auth_page_device_code(&req->pool, NULL));
        return;
    }
    if (uc == NULL || auth_user_code_normalize(uc, strlen(uc), az->user_code) != 0) {
        auth_page_send(greq, 400, auth_page_device_code(&req->pool, "请输入8个字母的代码。Enter the 8-letter code (XXXX-XXXX)."));
        return;
    }
    az->p.user_code = az->user_code;
    if (!post) {
        check_session(o);
        return;
    }
    const char *action = auth_form_get(&az->form, "action");
    if (action != NULL && strcmp(action, "signin") == 0 && check_login_limit(o))
        return;
    continue_post(o);
}

/* a valid POST of the sign-in or consent form, once the `login` policy (if any) let it through */
static void continue_post(gw_task_t *o)
{
    az_t *az = o->ctx;
    gw_req_t *greq = o->greq;
    /* CSRF: the form's token must be the HMAC of this browser's pre-auth cookie */
    const char *csrf = auth_form_get(&az->form, "csrf"), *action = auth_form_get(&az->form, "action");
    int csrf_ok = auth_csrf_ok(greq, csrf);
    if (!csrf_ok) {
        send_error_page(greq, 403, "页面已过期 The page expired", "请返回应用重新开始。Please go back to the app and start again.");
        return;
    }
    if (action != NULL && strcmp(action, "signin") == 0) {
        signin(o);
    } else if (az->device) {
        if (action == NULL || (strcmp(action, "approve") != 0 && strcmp(action, "deny") != 0)) {
            send_error_page(greq, 400, "无法登录 Cannot sign in", "The form is malformed.");
            return;
        }
        az->decision = strcmp(action, "approve") == 0 ? "approve" : "deny";
        check_session(o); /* signed in? (else the sign-in page, then this page again to decide) */
    } else if (action != NULL && strcmp(action, "consent") == 0) {
        az->consented = 1;
        check_session(o);
    } else if (action != NULL && strcmp(action, "deny") == 0) {
        redirect_to_client(o, NULL, "access_denied", "the resident declined");
    } else {
        send_error_page(greq, 400, "无法登录 Cannot sign in", "The form is malformed.");
    }
}
