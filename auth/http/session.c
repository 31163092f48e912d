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

static void on_logout(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    clear_session_cookie(o->greq);
    auth_send_no_content(o->greq);
}

static void logout_session(gw_task_t *o, const char *sid)
{
    const gw_conf_t *conf = o->greq->gen->conf;
    char key[160], revexp[24], m[160];
    int64_t exp = (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY;
    snprintf(m, sizeof(m), "sid:%s", sid);
    gw_revocations_add(m, strlen(m), exp);
    snprintf(key, sizeof(key), AUTH_RK_SESS "%s", sid);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)exp);
    const char *args[] = {key, AUTH_RK, sid, revexp, GW_REVOCATIONS_CHANNEL};
    gw_task_eval(o, &auth_scripts()->logout, on_logout, 1, 5, args, NULL);
}

static void on_cookie_session(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    const char **cs = o->ctx; /* {sid, secret} */
    char ck[65];
    auth_sha256_hex(cs[1], strlen(cs[1]), ck);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
        !auth_str_equal_ct(reply->element[0]->str, ck)) {
        clear_session_cookie(o->greq);
        auth_send_no_content(o->greq); /* no live session: nothing to end */
        return;
    }
    logout_session(o, cs[0]);
}

void auth_logout_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_task_t *o = gw_task_new(greq);
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) == -1) {
        const char *cookie = auth_cookie_get(req, AUTH_COOKIE_SESSION), **cs = h2o_mem_alloc_pool(&req->pool, 2 * sizeof(char *));
        if (cookie == NULL || auth_session_cookie_split(&req->pool, cookie, &cs[0], &cs[1]) != 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"hegate\""));
            gw_send_json(
                greq, 401,
                H2O_STRLIT(
                    "{\"error\":\"invalid_request\",\"error_description\":\"a bearer token or a session cookie is required\"}"));
            return;
        }
        o->ctx = cs;
        char key[160];
        snprintf(key, sizeof(key), AUTH_RK_SESS "%s", cs[0]);
        const char *argv[] = {"HMGET", h2o_strdup(&req->pool, key, SIZE_MAX).base, "ck"};
        gw_task_command(o, on_cookie_session, 3, argv, NULL);
        return;
    }
    const auth_claims_t *cl = greq->claims; /* the pipeline checked it (a revoked one still names its session) */
    if (cl->sid[0] == '\0') {
        gw_oauth_error(greq, 400, "invalid_request", "the token has no sign-in session");
        return;
    }
    logout_session(o, cl->sid);
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
    char key[200], revexp[24];
    snprintf(key, sizeof(key), AUTH_RK_USESS "%s", cl->sub);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    const char *args[] = {key, AUTH_RK, revexp, GW_REVOCATIONS_CHANNEL, cl->sid};
    gw_task_eval(o, &auth_scripts()->logout_all, on_logout_all, 1, 5, args, NULL);
}
