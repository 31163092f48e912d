/*
 * auth/http/session.c — the endpoints a resident's own bearer token (or, for logout, the browser's
 * session cookie hegate_sid) reaches: GET/POST /oauth2/userinfo (the masked profile and card kinds),
 * POST /oauth2/logout (ends one sign-in session) and POST /oauth2/logout-all (ends them all); the
 * ended sessions are revoked here at once and, through Redis, on every gateway.
 *
 * Called by oauth.c's family table after the pipeline has checked the token (scopes and the bearer
 * policy are declared there). Never answers with an unmasked name or phone number, an ID or card
 * number; nothing here logs.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "auth/http/internal.h"

static void on_userinfo(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || reply->element[0]->type != REDIS_REPLY_STRING) {
        gw_oauth_error(o->greq, 401, "invalid_token", "the token does not belong to a resident");
        return;
    }
    json_t *doc = json_object(), *cards = json_array();
    json_object_set_new(doc, "sub", json_string(o->ctx)); /* as the client knows the resident (oidc.c) */
    json_object_set_new(doc, "name", json_string(gw_reply_str(reply, 1)));
    json_object_set_new(doc, "phone_number", json_string(gw_reply_str(reply, 2)));
    for (const char *p = gw_reply_str(reply, 3); *p != '\0';) {
        size_t l = strcspn(p, ",");
        if (l != 0)
            json_array_append_new(cards, json_stringn(p, l));
        p += l;
        if (*p == ',')
            ++p;
    }
    json_object_set_new(doc, "cards", cards);
    auth_send_json_doc(o->greq, 200, doc);
}

/* the pipeline checked the token: one of this gateway's, with openid or profile */
void auth_userinfo_handle(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims;
    /* a client no longer configured keeps the default of partners: its own pairwise subjects */
    gw_client_conf_t gone = {.id = (char *)cl->client_id, .subject_type = GW_SUBJECT_PAIRWISE};
    const gw_client_conf_t *client = gw_conf_client(greq->gen->conf, cl->client_id);
    char sub[AUTH_SUB_MAX];
    if (auth_subject_for(greq->gen->conf, client != NULL ? client : &gone, cl->sub, sub) != 0) {
        gw_oauth_error(greq, 503, "temporarily_unavailable", "the subject cannot be derived (data key)");
        return;
    }
    gw_task_t *o = gw_task_new(greq);
    o->ctx = h2o_strdup(&greq->req->pool, sub, SIZE_MAX).base;
    char key[200];
    snprintf(key, sizeof(key), AUTH_RK_USER "%s", cl->sub);
    const char *argv[] = {"HMGET", h2o_strdup(&greq->req->pool, key, SIZE_MAX).base, "sub", "name_masked", "phone_masked", "cards"};
    gw_task_command(o, on_userinfo, 6, argv, NULL);
}

static void clear_session_cookie(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    int tls = req->scheme == &H2O_URL_SCHEME_HTTPS;
    const char *v = tls ? AUTH_COOKIE_SESSION "=; Path=/oauth2; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
                        : AUTH_COOKIE_SESSION "=; Path=/oauth2; Max-Age=0; HttpOnly; SameSite=Lax";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v, strlen(v));
}

/* the DONE of logout_session and logout_cookie_session: REPLY and ERR both NULL when there was no live
 * session to end */
#define ENDED_OR_NOTHING(o, reply, err) ((reply) == NULL && (err) == NULL ? 0 : gw_task_store_failed((o), (reply), (err)))

static void on_logout(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (ENDED_OR_NOTHING(o, reply, err))
        return;
    if (reply != NULL)
        auth_backchannel_kick(o->greq);
    clear_session_cookie(o->greq);
    auth_send_no_content(o->greq);
}

/* ends session SID (in Redis, published to every node, and in this node's revocation set), then DONE */
static void logout_session(gw_task_t *o, const char *sid, gw_task_store_cb done)
{
    const gw_conf_t *conf = o->greq->gen->conf;
    char key[160], revexp[24], now[24], m[160];
    int64_t exp = (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY;
    snprintf(m, sizeof(m), "sid:%s", sid);
    gw_revocations_add(m, strlen(m), exp);
    snprintf(key, sizeof(key), AUTH_RK_SESS "%s", sid);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)exp);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {key, AUTH_RK, sid, revexp, GW_REVOCATIONS_CHANNEL, now};
    gw_task_eval(o, &auth_scripts()->logout, done, 1, 6, args, NULL);
}

/* the browser's session cookie, checked against its record: {sid, secret, DONE} in the task's ctx */
typedef struct {
    const char *sid, *secret;
    gw_task_store_cb done;
    const char *location; /* end_session: where to send the browser afterwards, or NULL */
} cookie_logout_t;

static void on_cookie_session(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    cookie_logout_t *cs = o->ctx;
    char ck[65];
    auth_sha256_hex(cs->secret, strlen(cs->secret), ck);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
        !auth_str_equal_ct(reply->element[0]->str, ck)) {
        cs->done(o, NULL, NULL); /* no live session: nothing to end */
        return;
    }
    logout_session(o, cs->sid, cs->done);
}

/* ends the session of the browser's cookie (if it is live), then CS->done; -1 when there is no cookie */
static int logout_cookie_session(gw_task_t *o, cookie_logout_t *cs)
{
    h2o_req_t *req = o->greq->req;
    const char *cookie = auth_cookie_get(req, AUTH_COOKIE_SESSION);
    if (cookie == NULL || auth_session_cookie_split(&req->pool, cookie, &cs->sid, &cs->secret) != 0)
        return -1;
    o->ctx = cs;
    char key[160];
    snprintf(key, sizeof(key), AUTH_RK_SESS "%s", cs->sid);
    const char *argv[] = {"HMGET", h2o_strdup(&req->pool, key, SIZE_MAX).base, "ck"};
    gw_task_command(o, on_cookie_session, 3, argv, NULL);
    return 0;
}

void auth_logout_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_task_t *o = gw_task_new(greq);
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) == -1) {
        cookie_logout_t *cs = h2o_mem_alloc_pool(&req->pool, sizeof(*cs));
        *cs = (cookie_logout_t){.done = on_logout};
        if (logout_cookie_session(o, cs) != 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"hegate\""));
            gw_send_json(
                greq, 401,
                H2O_STRLIT(
                    "{\"error\":\"invalid_request\",\"error_description\":\"a bearer token or a session cookie is required\"}"));
        }
        return;
    }
    const auth_claims_t *cl = greq->claims; /* the pipeline checked it (a revoked one still names its session) */
    if (cl->sid[0] == '\0') {
        gw_oauth_error(greq, 400, "invalid_request", "the token has no sign-in session");
        return;
    }
    logout_session(o, cl->sid, on_logout);
}

static void on_logout_all(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    const gw_conf_t *conf = o->greq->gen->conf;
    int64_t exp = (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i != reply->elements; ++i)
        if (reply->element[i]->type == REDIS_REPLY_STRING && reply->element[i]->len < 140) {
            char m[160];
            snprintf(m, sizeof(m), "sid:%s", reply->element[i]->str);
            gw_revocations_add(m, strlen(m), exp);
        }
    auth_backchannel_kick(o->greq);
    clear_session_cookie(o->greq);
    auth_send_no_content(o->greq);
}

void auth_logout_all_handle(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims;
    if (cl->sid[0] == '\0') {
        gw_oauth_error(greq, 400, "invalid_request", "the token does not belong to a resident's sign-in");
        return;
    }
    const gw_conf_t *conf = greq->gen->conf;
    gw_task_t *o = gw_task_new(greq);
    char key[200], revexp[24], now[24];
    snprintf(key, sizeof(key), AUTH_RK_USESS "%s", cl->sub);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {key, AUTH_RK, revexp, GW_REVOCATIONS_CHANNEL, cl->sid, now};
    gw_task_eval(o, &auth_scripts()->logout_all, on_logout_all, 1, 6, args, NULL);
}

/* ---- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0; SPEC §6.2) -------------------------------- */

static void send_page(gw_req_t *greq, int status, const char *title, const char *message)
{
    auth_page_send(greq, status, auth_page_error(&greq->req->pool, title, message));
}

static void on_ended(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (ENDED_OR_NOTHING(o, reply, err))
        return;
    cookie_logout_t *cs = o->ctx;
    if (reply != NULL)
        auth_backchannel_kick(o->greq);
    clear_session_cookie(o->greq);
    if (cs->location != NULL)
        auth_redirect(o->greq, cs->location);
    else
        send_page(o->greq, 200, "已退出 Signed out", "您已退出鹤城在线。You are signed out of Hecheng Online.");
}

/* the client's registered URI with state appended, or NULL when URI is not one of CLIENT's */
static const char *post_logout_location(h2o_mem_pool_t *pool, const gw_client_conf_t *client, const char *uri, const char *state)
{
    if (!auth_strlist_has(&client->post_logout_redirect_uris, uri))
        return NULL;
    char loc[4096 + 1024];
    snprintf(loc, sizeof(loc), "%s", uri);
    if (state != NULL) {
        strcat(loc, strchr(uri, '?') != NULL ? "&state=" : "?state=");
        auth_urlencode(loc, sizeof(loc), state);
    }
    return h2o_strdup(pool, loc, SIZE_MAX).base;
}

/* GET|POST /oauth2/end_session: with a valid id_token_hint (and at most the hint's client_id and one of
 * that client's post_logout_redirect_uris) the hint's session ends and the browser goes back to the
 * client with its state; otherwise the browser gets a confirmation page, and confirming (a CSRF-checked
 * POST) ends the session of its cookie and shows that it did: never a redirect that was not verified. */
void auth_end_session_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    const gw_conf_t *conf = greq->gen->conf;
    int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    auth_form_t form;
    if (auth_form_of_request(req, &form) != 0) {
        send_page(greq, 400, "无法退出 Cannot sign out", "The request is malformed.");
        return;
    }
    gw_task_t *o = gw_task_new(greq);
    cookie_logout_t *cs = h2o_mem_alloc_pool(&req->pool, sizeof(*cs));
    *cs = (cookie_logout_t){.done = on_ended};
    o->ctx = cs;
    const char *action = auth_form_get(&form, "action");
    if (action != NULL) { /* the confirmation page's form */
        if (!post || strcmp(action, "logout") != 0 || !auth_csrf_ok(greq, auth_form_get(&form, "csrf"))) {
            send_page(greq, 403, "页面已过期 The page expired", "请重新退出。Please try signing out again.");
            return;
        }
        if (logout_cookie_session(o, cs) != 0)
            on_ended(o, NULL, NULL);
        return;
    }
    const char *hint = auth_form_get(&form, "id_token_hint"), *uri = auth_form_get(&form, "post_logout_redirect_uri"),
               *client_id = auth_form_get(&form, "client_id"), *state = auth_form_get(&form, "state");
    auth_hint_t h;
    const gw_client_conf_t *client = NULL;
    if (hint != NULL && greq->gen->token_keys != NULL &&
        auth_verify_id_token_hint(greq->gen->token_keys, conf->issuer, hint, strlen(hint), (int64_t)time(NULL), &h) == AUTH_OK &&
        h.sid[0] != '\0' && (client_id == NULL || strcmp(client_id, h.aud) == 0))
        client = gw_conf_client(conf, h.aud);
    if (client == NULL || (state != NULL && strlen(state) > 512)) {
        const char *csrf = auth_csrf_token(greq);
        if (csrf == NULL) {
            send_page(greq, 503, "暂时无法退出 Sign-out unavailable", "Please try again later.");
            return;
        }
        auth_page_send(greq, 200, auth_page_end_session(&req->pool, csrf));
        return;
    }
    if (uri != NULL && (cs->location = post_logout_location(&req->pool, client, uri, state)) == NULL) {
        send_page(greq, 400, "无法退出 Cannot sign out", "The post_logout_redirect_uri is not registered for this application.");
        return;
    }
    logout_session(o, h2o_strdup(&req->pool, h.sid, SIZE_MAX).base, on_ended);
}
