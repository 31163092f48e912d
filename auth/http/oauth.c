/*
 * auth/http/oauth.c — the /oauth2 endpoint family of SPEC §6: its table (each endpoint's path,
 * methods and bearer policy; the pipeline matches it beside the routes and walks the same stages),
 * its init (the scripts) and per-thread state (client.c's), and the small helpers that the files
 * of auth/http/ share: scopes, answers without a body, revocations.
 *
 * main.c calls auth_oauth_register() before gw_server_run; the pipeline then calls the handlers
 * (authorize.c, token.c, introspect.c, session.c). Nothing here logs but a missing data key;
 * error descriptions are fixed texts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/http/internal.h"

/* ---- small helpers ------------------------------------------------------------------------------------ */

const uint8_t *auth_service_data_key(const gw_conf_t *conf)
{
    char err[512];
    const uint8_t *dk = auth_data_key(conf->keys_dir, err, sizeof(err));
    if (dk == NULL)
        gw_log("error", "identity: data key: %s", err);
    return dk;
}

const char *auth_scope_all(h2o_mem_pool_t *pool, const gw_client_conf_t *client)
{
    size_t len = 1;
    for (size_t i = 0; i != client->scopes.n; ++i)
        len += strlen(client->scopes.v[i]) + 1;
    char *all = h2o_mem_alloc_pool(pool, len), *p = all;
    *p = '\0';
    for (size_t i = 0; i != client->scopes.n; ++i)
        p += sprintf(p, "%s%s", i != 0 ? " " : "", client->scopes.v[i]);
    return all;
}

int auth_strlist_has(const gw_strlist_t *l, const char *s)
{
    for (size_t i = 0; i != l->n; ++i)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* calls CB for each word of SCOPE (single spaces only, words of visible ASCII but '"' and '\\'); -1 if malformed */
static int scope_words(const char *scope, int (*cb)(void *, const char *, size_t), void *data)
{
    const char *p = scope;
    if (strlen(scope) > 512)
        return -1;
    while (*p != '\0') {
        size_t l = 0;
        while (p[l] != '\0' && p[l] != ' ') {
            unsigned char c = (unsigned char)p[l];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
                return -1;
            ++l;
        }
        if (l == 0 || (p[l] == ' ' && p[l + 1] == '\0'))
            return -1;
        if (!cb(data, p, l))
            return 0;
        p += l;
        if (*p == ' ')
            ++p;
    }
    return 1;
}

static int word_in_list(void *data, const char *w, size_t l)
{
    const gw_strlist_t *allowed = data;
    for (size_t i = 0; i != allowed->n; ++i)
        if (strlen(allowed->v[i]) == l && memcmp(allowed->v[i], w, l) == 0)
            return 1;
    return 0;
}

int auth_scope_subset(const char *scope, const gw_strlist_t *allowed)
{
    return scope_words(scope, word_in_list, (void *)allowed) == 1;
}

static int word_in_str(void *data, const char *w, size_t l)
{
    for (const char *p = data; *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n == l && memcmp(p, w, l) == 0)
            return 1;
        p += n;
        while (*p == ' ')
            ++p;
    }
    return 0;
}

int auth_scope_subset_str(const char *scope, const char *allowed)
{
    return scope_words(scope, word_in_str, (void *)allowed) == 1;
}

void auth_send_json_doc(gw_req_t *greq, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        gw_oauth_error(greq, 500, "server_error", "the answer cannot be built");
        return;
    }
    gw_send_json(greq, status, text, strlen(text));
    free(text);
}

void auth_send_no_content(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    req->res.status = 200;
    req->res.reason = "OK";
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

void auth_redirect(gw_req_t *greq, const char *location)
{
    h2o_req_t *req = greq->req;
    req->res.status = 302;
    req->res.reason = "Found";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, location, strlen(location));
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

void auth_ignore_reply(void *data, const redisReply *reply, const char *err)
{
}

void auth_revoke_members(gw_thread_t *thread, const char *const *members, const int64_t *exps, size_t n)
{
    char now[24], expbuf[8][24];
    const char *args[3 + 16];
    size_t nargs = 0;
    if (n > 8)
        n = 8;
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    args[nargs++] = GW_REVOCATIONS_KEY;
    args[nargs++] = now;
    args[nargs++] = GW_REVOCATIONS_CHANNEL;
    for (size_t i = 0; i != n; ++i) {
        gw_revocations_add(members[i], strlen(members[i]), exps[i]);
        snprintf(expbuf[i], sizeof(expbuf[i]), "%lld", (long long)exps[i]);
        args[nargs++] = members[i];
        args[nargs++] = expbuf[i];
    }
    if (thread->store != NULL)
        gw_store_evalsha(thread->store, &auth_scripts()->revoke, auth_ignore_reply, NULL, 1, (int)nargs, args, NULL);
}

/* ---- the /oauth2 family ------------------------------------------------------------------------------- */

static const char *const userinfo_scopes[] = {"openid", "profile", NULL};

static const char *const device_scopes[] = {"device", NULL};

static gw_endpoint_t oauth_endpoints[] = {
    {.name = "authorize", .path = "authorize", .methods = GW_M_GET | GW_M_POST, .handle = auth_authorize_handle},
    {.name = "token", .path = "token", .methods = GW_M_POST, .handle = auth_token_handle},
    {.name = "revoke", .path = "revoke", .methods = GW_M_POST, .handle = auth_revoke_handle},
    {.name = "introspect", .path = "introspect", .methods = GW_M_POST, .handle = auth_introspect_handle},
    {.name = "userinfo",
     .path = "userinfo",
     .methods = GW_M_GET | GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = userinfo_scopes,
     .handle = auth_userinfo_handle},
    /* a bearer token or, without one, the session cookie */
    {.name = "logout",
     .path = "logout",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OPTIONAL | GW_AUTH_OWN | GW_AUTH_REVOKED_OK,
     .handle = auth_logout_handle},
    /* the device grant (SPEC §6.1): the device asks; the resident's app reads and decides */
    {.name = "device_authorization", .path = "device_authorization", .methods = GW_M_POST, .handle = auth_device_authorization_handle},
    {.name = "device.info",
     .path = "device/info",
     .methods = GW_M_GET,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN | GW_AUTH_RESIDENT,
     .scopes = device_scopes,
     .handle = auth_device_info_handle},
    {.name = "device", .path = "device", .methods = GW_M_GET | GW_M_POST, .handle = auth_device_page_handle},
    {.name = "device.qr_png", .path = "device/qr.png", .methods = GW_M_GET, .handle = auth_device_qr_png_handle},
    {.name = "device.qr_svg", .path = "device/qr.svg", .methods = GW_M_GET, .handle = auth_device_qr_svg_handle},
    {.name = "device.approve",
     .path = "device/approve",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN | GW_AUTH_RESIDENT,
     .scopes = device_scopes,
     .handle = auth_device_approve_handle},
    /* RP-initiated logout: a browser, no token (SPEC §6.2) */
    {.name = "end_session", .path = "end_session", .methods = GW_M_GET | GW_M_POST, .handle = auth_end_session_handle},
    {.name = "logout-all",
     .path = "logout-all",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .handle = auth_logout_all_handle},
};

static void oauth_init(void)
{
    auth_scripts();
}

static int oauth_gen_build(const gw_conf_t *conf, void **out, char *err, size_t errsz)
{
    auth_oauth_gen_t *og = calloc(1, sizeof(*og));
    if (og == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    err[0] = '\0';
    if ((og->backchannel_tls = auth_backchannel_tls_new(conf, err, errsz)) == NULL && err[0] != '\0') {
        free(og);
        return -1;
    }
    *out = og;
    return 0;
}

static void oauth_gen_free(void *data)
{
    auth_oauth_gen_t *og = data;
    SSL_CTX_free(og->backchannel_tls);
    free(og);
}

static gw_family_t oauth_family;

const auth_oauth_gen_t *auth_oauth_gen(const gw_gen_t *gen)
{
    return gen->family_data[oauth_family.index];
}

static gw_family_t oauth_family = {
    .name = "oauth2",
    .prefix = "/oauth2",
    .owns_prefix = 1,
    .not_found = "no such OAuth endpoint",
    .errors = GW_ERRORS_OAUTH,
    .endpoints = oauth_endpoints,
    .num_endpoints = sizeof(oauth_endpoints) / sizeof(oauth_endpoints[0]),
    .init = oauth_init,
    .gen_build = oauth_gen_build,
    .gen_free = oauth_gen_free,
    .thread_init = auth_oauth_thread_init,
};

void auth_oauth_register(void)
{
    gw_family_register(&oauth_family);
}
