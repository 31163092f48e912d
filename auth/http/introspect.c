/*
 * auth/http/introspect.c — what a client may ask about a token it holds: POST /oauth2/revoke
 * (RFC 7009: access tokens by jti, refresh tokens by family; 200 whether or not the token was valid)
 * and POST /oauth2/introspect (RFC 7662, confidential clients only: active or not, and the claims).
 *
 * Called by oauth.c's family table (auth_revoke_handle, auth_introspect_handle), after client.c has
 * authenticated the client. A token is never logged nor echoed back; an unknown, foreign or
 * malformed one is simply inactive (or revoked as nothing).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "auth/http/internal.h"

/* ---- /oauth2/revoke (RFC 7009) and /oauth2/introspect (RFC 7662) ------------------------------------- */

static int looks_like_jwt(const char *t)
{
    const char *d = strchr(t, '.');
    return d != NULL && strchr(d + 1, '.') != NULL;
}

static void on_rt_revoked(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    auth_send_no_content(o->greq); /* RFC 7009 §2.2: 200 whether or not the token was valid */
}

static void revoke_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    auth_cauth_t *c = o->ctx;
    const char *token = auth_form_get(&c->form, "token");
    if (token == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "token is required");
        return;
    }
    const gw_gen_t *gen = o->greq->gen;
    if (looks_like_jwt(token)) {
        auth_claims_t claims;
        if (gen->verifier != NULL &&
            auth_verify_token(gen->verifier, token, strlen(token), (int64_t)time(NULL), &claims) == AUTH_OK &&
            claims.issuer_index == 0 && strcmp(claims.iss, gen->conf->issuer) == 0 && strcmp(claims.client_id, client->id) == 0) {
            char m[160];
            snprintf(m, sizeof(m), "jti:%s", claims.jti);
            const char *mm[] = {m};
            int64_t e[] = {claims.exp + AUTH_LEEWAY};
            auth_revoke_members(o->greq->thread, mm, e, 1);
        }
        auth_send_no_content(o->greq);
        return;
    }
    if (strlen(token) > 256) {
        auth_send_no_content(o->greq);
        return;
    }
    char key[128], ttl[24];
    auth_sha256_hex(token, strlen(token), c->rt_hash);
    snprintf(key, sizeof(key), AUTH_RK_RT "%s", c->rt_hash);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(gen->conf->tokens.refresh_ttl_ms / 1000 + 1));
    const char *args[] = {key, client->id, AUTH_RK, ttl};
    gw_task_eval(o, &auth_scripts()->rt_revoke, on_rt_revoked, 1, 4, args, NULL);
}

static void send_inactive(gw_req_t *greq)
{
    gw_send_json(greq, 200, H2O_STRLIT("{\"active\":false}"));
}

static void on_rt_introspected(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    /* HGETALL of the refresh token; active when unused and its session lives (checked by EXISTS below) */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[0]->elements != 6) {
        send_inactive(o->greq);
        return;
    }
    const redisReply *f = reply->element[0];
    for (size_t i = 0; i != 6; ++i)
        if (f->element[i]->type != REDIS_REPLY_STRING) {
            send_inactive(o->greq);
            return;
        }
    if (strcmp(f->element[4]->str, "0") != 0 || reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer != 0 ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        send_inactive(o->greq);
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "active", json_true());
    json_object_set_new(doc, "token_type", json_string("refresh_token"));
    json_object_set_new(doc, "client_id", json_string(f->element[0]->str));
    json_object_set_new(doc, "sub", json_string(f->element[1]->str));
    json_object_set_new(doc, "scope", json_string(f->element[3]->str));
    json_object_set_new(doc, "iss", json_string(o->greq->gen->conf->issuer));
    json_object_set_new(doc, "exp", json_integer((json_int_t)time(NULL) + (json_int_t)reply->element[2]->integer));
    auth_send_json_doc(o->greq, 200, doc);
}

static void introspect_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    auth_cauth_t *c = o->ctx;
    const char *token = auth_form_get(&c->form, "token");
    if (token == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "token is required");
        return;
    }
    const gw_gen_t *gen = o->greq->gen;
    if (looks_like_jwt(token)) {
        auth_claims_t cl;
        if (gen->verifier == NULL || auth_verify_token(gen->verifier, token, strlen(token), (int64_t)time(NULL), &cl) != AUTH_OK ||
            gw_revocations_check(cl.sid, cl.jti)) {
            send_inactive(o->greq);
            return;
        }
        json_t *doc = json_object();
        json_object_set_new(doc, "active", json_true());
        json_object_set_new(doc, "token_type", json_string("access_token"));
        json_object_set_new(doc, "iss", json_string(cl.iss));
        json_object_set_new(doc, "sub", json_string(cl.sub));
        json_object_set_new(doc, "client_id", json_string(cl.client_id));
        json_object_set_new(doc, "scope", json_string(cl.scope));
        json_object_set_new(doc, "jti", json_string(cl.jti));
        if (cl.sid[0] != '\0')
            json_object_set_new(doc, "sid", json_string(cl.sid));
        if (cl.acr[0] != '\0')
            json_object_set_new(doc, "acr", json_string(cl.acr));
        json_object_set_new(doc, "iat", json_integer(cl.iat));
        json_object_set_new(doc, "exp", json_integer(cl.exp));
        auth_send_json_doc(o->greq, 200, doc);
        return;
    }
    if (strlen(token) > 256) {
        send_inactive(o->greq);
        return;
    }
    char key[128];
    auth_sha256_hex(token, strlen(token), c->rt_hash);
    snprintf(key, sizeof(key), AUTH_RK_RT "%s", c->rt_hash);
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {key, AUTH_RK, now};
    gw_task_eval(o, &auth_scripts()->rt_info, on_rt_introspected, 1, 3, args, NULL);
}

void auth_revoke_handle(gw_req_t *greq)
{
    auth_client_authenticate(gw_task_new(greq), 0, revoke_after_auth);
}

void auth_introspect_handle(gw_req_t *greq)
{
    auth_client_authenticate(gw_task_new(greq), 1, introspect_after_auth);
}
