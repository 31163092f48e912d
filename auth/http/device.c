/*
 * auth/http/device.c — scan to sign in (扫码登录; SPEC §6.1, RFC 8628): the device authorization a kiosk or
 * the PC portal asks for (POST /oauth2/device_authorization), and the city app's side of it: reading what a
 * scanned user code asks (GET /oauth2/device/info) and deciding it (POST /oauth2/device/approve), with the
 * resident's own token (scope device); and what the kiosk shows, GET /oauth2/device/qr.png|.svg (the
 * verification_uri_complete of a pending code, rendered by qr/). The device's polls are a grant of the
 * token endpoint (token.c).
 *
 * State lives in Redis (internal.h: dev:, uc:), so a code shown through one node is decided through a second
 * and polled through a third. A user-code lookup that finds nothing counts against the guessing limit of
 * the address and of the resident (the `device` policy's limit and window, else 5 a minute); over it, 429
 * with Retry-After. Unknown, expired, denied and exchanged codes all answer the same 404.
 *
 * Called by oauth.c's endpoint table. Nothing here logs; answers never carry a device code but to the
 * device that asked for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/http/internal.h"
#include "qr/qr.h"

#define QR_SCALE 8 /* pixels per module of the kiosk's image */
#define GUESS_LIMIT_DEFAULT 5
#define GUESS_WINDOW_DEFAULT_MS 60000

void auth_device_count(gw_thread_t *thread, const char *result)
{
    gw_metrics_count(thread->metrics, GW_MF_DEVICE_CODES, gw_metrics_label_slot(GW_MF_DEVICE_CODES, result));
}

/* ---- POST /oauth2/device_authorization ---------------------------------------------------------------- */

typedef struct {
    const gw_client_conf_t *client;
    const char *scope;
    char device_code[64], dc_hash[65], user_code[AUTH_USER_CODE_LEN + 1];
    int tries;
} devauth_t;

static void create_code(gw_task_t *o);

static void on_created(gw_task_t *o, const redisReply *reply, const char *err)
{
    devauth_t *d = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer < 0) { /* this address asked too often */
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)((-reply->integer + 999) / 1000));
        h2o_add_header(&o->greq->req->pool, &o->greq->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       h2o_strdup(&o->greq->req->pool, ra, SIZE_MAX).base, strlen(ra));
        auth_device_count(o->greq->thread, "limited");
        gw_oauth_error(o->greq, 429, "temporarily_unavailable", "too many device authorizations from this address; try again later");
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) { /* the user code is taken: draw again */
        if (++d->tries < 4) {
            create_code(o);
            return;
        }
        gw_oauth_error(o->greq, 503, "temporarily_unavailable", "no free user code; try again");
        return;
    }
    const gw_conf_t *conf = o->greq->gen->conf;
    char uri[1024], complete[1100];
    snprintf(uri, sizeof(uri), "%s/oauth2/device", conf->issuer);
    snprintf(complete, sizeof(complete), "%s?user_code=%s", uri, d->user_code);
    json_t *doc = json_object();
    json_object_set_new(doc, "device_code", json_string(d->device_code));
    json_object_set_new(doc, "user_code", json_string(d->user_code));
    json_object_set_new(doc, "verification_uri", json_string(uri));
    json_object_set_new(doc, "verification_uri_complete", json_string(complete));
    json_object_set_new(doc, "expires_in", json_integer((json_int_t)(conf->tokens.device_ttl_ms / 1000)));
    json_object_set_new(doc, "interval", json_integer(AUTH_DEVICE_INTERVAL));
    auth_device_count(o->greq->thread, "issued");
    auth_send_json_doc(o->greq, 200, doc);
}

static void create_code(gw_task_t *o)
{
    devauth_t *d = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    if (auth_user_code_new(d->user_code) != 0) {
        gw_oauth_error(o->greq, 503, "temporarily_unavailable", "no randomness");
        return;
    }
    char dev_key[128], uc_key[64], ttl[24], exp[24], iv[8], ip_key[160], lim[16];
    snprintf(dev_key, sizeof(dev_key), AUTH_RK_DEV "%s", d->dc_hash);
    snprintf(ip_key, sizeof(ip_key), AUTH_RK_DGUESS "auth:%s", o->greq->peer);
    snprintf(lim, sizeof(lim), "%u", conf->limits.device_authorizations_per_ip);
    snprintf(uc_key, sizeof(uc_key), AUTH_RK_UC "%s", d->user_code);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(conf->tokens.device_ttl_ms / 1000));
    snprintf(exp, sizeof(exp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.device_ttl_ms / 1000));
    snprintf(iv, sizeof(iv), "%d", AUTH_DEVICE_INTERVAL);
    const char *args[] = {dev_key, uc_key, ip_key, d->client->id, d->scope, d->user_code, ttl, exp, iv, d->dc_hash, lim,
                          d->tries != 0 ? "1" : "0"};
    gw_task_eval(o, &auth_scripts()->device_create, on_created, 3, 12, args, NULL);
}

static void device_authorization_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    auth_cauth_t *c = o->ctx;
    if (!auth_strlist_has(&client->grants, "device_code")) {
        gw_oauth_error(o->greq, 400, "unauthorized_client", "this client may not use the device grant");
        return;
    }
    devauth_t *d = h2o_mem_alloc_pool(&o->greq->req->pool, sizeof(*d));
    memset(d, 0, sizeof(*d));
    d->client = client;
    const char *scope = auth_form_get(&c->form, "scope");
    o->ctx = d;
    if (scope == NULL)
        scope = auth_scope_all(&o->greq->req->pool, client);
    else if (!auth_scope_subset(scope, &client->scopes)) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope is not allowed for this client");
        return;
    }
    d->scope = scope;
    auth_random_b64url(d->device_code, 32); /* 256 bits */
    auth_sha256_hex(d->device_code, strlen(d->device_code), d->dc_hash);
    create_code(o);
}

void auth_device_authorization_handle(gw_req_t *greq)
{
    auth_client_authenticate(gw_task_new(greq), 0, device_authorization_after_auth);
}

/* ---- the app path: GET /oauth2/device/info, POST /oauth2/device/approve ------------------------------- */

typedef struct {
    const char *decision; /* "" (info, an image), "approve", "deny" */
    enum { AS_INFO, AS_PNG, AS_SVG } as;
    char user_code[AUTH_USER_CODE_LEN + 1];
} lookup_t;

/* the kiosk's image: the verification_uri_complete of L's pending code */
static void send_qr(gw_req_t *greq, const lookup_t *l)
{
    h2o_req_t *req = greq->req;
    char uri[1200];
    int n = snprintf(uri, sizeof(uri), "%s/oauth2/device?user_code=%s", greq->gen->conf->issuer, l->user_code);
    qr_matrix_t m;
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = -1;
    if (n > 0 && (size_t)n < sizeof(uri) && qr_matrix_encode(uri, (size_t)n, &m) == 0) {
        rc = l->as == AS_PNG ? qr_render_png_alloc(&m, QR_SCALE, &img, &len) : qr_render_svg_alloc(&m, QR_SCALE, (char **)&img, &len);
        qr_matrix_free(&m);
    }
    if (rc != 0) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the image cannot be rendered");
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    if (l->as == AS_PNG)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("image/png"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("image/svg+xml"));
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = len;
    h2o_iovec_t body = h2o_strdup(&req->pool, (const char *)img, len);
    free(img);
    h2o_send_inline(req, body.base, body.len);
}

void auth_device_lookup(gw_task_t *o, const char *uc, const char *decision, const char *sub, gw_task_store_cb cb)
{
    gw_req_t *greq = o->greq;
    const gw_conf_t *conf = greq->gen->conf;
    uint64_t limit = GUESS_LIMIT_DEFAULT, window = GUESS_WINDOW_DEFAULT_MS;
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        if (strcmp(conf->rate_limits[i].name, "device") == 0)
            limit = conf->rate_limits[i].limit, window = conf->rate_limits[i].window_ms;
    char uc_key[64], gk_ip[160], gk_sub[200] = "", now[24], lim[24], win[24];
    snprintf(uc_key, sizeof(uc_key), AUTH_RK_UC "%s", uc);
    snprintf(gk_ip, sizeof(gk_ip), AUTH_RK_DGUESS "ip:%s", greq->peer);
    if (sub != NULL) /* nobody signed in: the address alone */
        snprintf(gk_sub, sizeof(gk_sub), AUTH_RK_DGUESS "sub:%s", sub);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(lim, sizeof(lim), "%llu", (unsigned long long)limit);
    snprintf(win, sizeof(win), "%llu", (unsigned long long)window);
    const char *args[] = {uc_key, AUTH_RK, decision, sub != NULL ? sub : "", now, gk_ip, gk_sub, lim, win};
    gw_task_eval(o, &auth_scripts()->device_lookup, cb, 1, 9, args, NULL);
}

static void send_no_content_204(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    req->res.status = 204;
    req->res.reason = "No Content";
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    h2o_send_inline(req, "", 0);
}

static void on_looked_up(gw_task_t *o, const redisReply *reply, const char *err)
{
    lookup_t *l = o->ctx;
    gw_req_t *greq = o->greq;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "limited") == 0) {
        long long ms = strtoll(gw_reply_str(reply, 1), NULL, 10), s = ms > 0 ? (ms + 999) / 1000 : 1;
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", s);
        h2o_add_header(&greq->req->pool, &greq->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       h2o_strdup(&greq->req->pool, ra, SIZE_MAX).base, strlen(ra));
        auth_device_count(greq->thread, "limited");
        gw_problem_send(greq, 429, "too-many-requests", "Too Many Requests", "too many unknown user codes; try again later");
        return;
    }
    if (strcmp(status, "decided") == 0 && l->as == AS_INFO) {
        gw_problem_send(greq, 409, "conflict", "Conflict", "this code has been decided already");
        return;
    }
    const gw_client_conf_t *client = strcmp(status, "ok") == 0 ? gw_conf_client(greq->gen->conf, gw_reply_str(reply, 1)) : NULL;
    if (client == NULL) {
        auth_device_count(greq->thread, "unknown");
        gw_problem_send(greq, 404, "not-found", "Not Found", "no pending request has this user code");
        return;
    }
    if (l->decision[0] != '\0') {
        auth_device_count(greq->thread, strcmp(l->decision, "approve") == 0 ? "approved" : "denied");
        send_no_content_204(greq);
        return;
    }
    if (l->as != AS_INFO) {
        send_qr(greq, l);
        return;
    }
    json_t *doc = json_object(), *scopes = json_array();
    const char *p = gw_reply_str(reply, 2);
    while (*p != '\0') {
        size_t n = strcspn(p, " ");
        if (n != 0)
            json_array_append_new(scopes, json_stringn(p, n));
        p += n;
        p += *p == ' ';
    }
    json_object_set_new(doc, "client_id", json_string(client->id));
    json_object_set_new(doc, "name", json_string(client->name != NULL ? client->name : client->id));
    if (client->description != NULL)
        json_object_set_new(doc, "description", json_string(client->description));
    json_object_set_new(doc, "scopes", scopes);
    json_object_set_new(doc, "expires_at", json_integer(strtoll(gw_reply_str(reply, 3), NULL, 10)));
    auth_send_json_doc(greq, 200, doc);
}

/* looks USER_CODE up — for the resident of GREQ's token, deciding it when DECISION is not "", or (AS an
 * image) for anybody: then only the address's guesses count */
static void lookup(gw_req_t *greq, const char *user_code, size_t len, const char *decision, int as)
{
    char uc[AUTH_USER_CODE_LEN + 1];
    if (user_code == NULL || auth_user_code_normalize(user_code, len, uc) != 0) {
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "user_code must be a user code (XXXX-XXXX)");
        return;
    }
    gw_task_t *o = gw_task_new(greq);
    lookup_t *l = h2o_mem_alloc_pool(&greq->req->pool, sizeof(*l));
    l->decision = decision;
    l->as = as;
    memcpy(l->user_code, uc, sizeof(uc));
    o->ctx = l;
    auth_device_lookup(o, uc, decision, greq->claims != NULL ? greq->claims->sub : NULL, on_looked_up);
}

/* the user_code of GREQ's query, for lookup AS */
static void lookup_query(gw_req_t *greq, int as)
{
    auth_form_t form;
    if (auth_form_of_query(greq->req, &form) != 0) {
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "the query is malformed");
        return;
    }
    const char *uc = auth_form_get(&form, "user_code");
    lookup(greq, uc, uc != NULL ? strlen(uc) : 0, "", as);
}

void auth_device_info_handle(gw_req_t *greq)
{
    lookup_query(greq, AS_INFO);
}

void auth_device_qr_png_handle(gw_req_t *greq)
{
    lookup_query(greq, AS_PNG);
}

void auth_device_qr_svg_handle(gw_req_t *greq)
{
    lookup_query(greq, AS_SVG);
}

int auth_device_decision_parse(const char *body, size_t len, char user_code[AUTH_USER_CODE_LEN + 1], const char **decision)
{
    json_t *doc = len <= 4096 ? auth_json_parse_object(body, len, 2) : NULL;
    json_t *uc = json_object_get(doc, "user_code"), *dec = json_object_get(doc, "decision");
    const char *d = json_is_string(dec) ? json_string_value(dec) : "";
    int r = json_is_string(uc) && auth_user_code_normalize(json_string_value(uc), json_string_length(uc), user_code) == 0 &&
                    (strcmp(d, "approve") == 0 || strcmp(d, "deny") == 0)
                ? 0
                : -1;
    *decision = r == 0 && strcmp(d, "approve") == 0 ? "approve" : "deny"; /* static strings: DOC is freed here */
    json_decref(doc);
    return r;
}

void auth_device_approve_handle(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    char uc[AUTH_USER_CODE_LEN + 1];
    const char *decision;
    if (auth_device_decision_parse(req->entity.base != NULL ? req->entity.base : "", req->entity.len, uc, &decision) != 0) {
        gw_problem_send(greq, 400, "bad-request", "Bad Request",
                        "the body must be {\"user_code\": \"XXXX-XXXX\", \"decision\": \"approve\" | \"deny\"}");
        return;
    }
    lookup(greq, h2o_strdup(&req->pool, uc, SIZE_MAX).base, AUTH_USER_CODE_LEN, decision, AS_INFO);
}
