/*
 * auth/http/wellknown.c — the discovery endpoints of the identity service (SPEC §6):
 *   GET /.well-known/openid-configuration  (and /.well-known/oauth-authorization-server, RFC 8414)
 *   GET /.well-known/jwks.json             every token key that still verifies, as JWKs
 *
 * The /.well-known family: the pipeline (gateway/pipeline.c) calls its handlers. Read-only: builds
 * documents from the request's configuration generation; never touches the store.
 */
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "auth/http/http.h"

static void send_json(gw_req_t *greq, const char *text, size_t len, const char *cache_control)
{
    h2o_req_t *req = greq->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, cache_control, strlen(cache_control));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, H2O_STRLIT("*"));
    gw_req_add_common_headers(greq);
    req->res.content_length = len;
    h2o_send_inline(req, text, len);
}

static json_t *endpoint(const gw_conf_t *conf, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s", conf->issuer, path);
    return json_string(buf);
}

static json_t *string_array(const char *const *v)
{
    json_t *a = json_array();
    for (; *v != NULL; ++v)
        json_array_append_new(a, json_string(*v));
    return a;
}

/* the union of every client's scopes, in first-seen order */
static json_t *scopes_supported(const gw_conf_t *conf)
{
    json_t *a = json_array();
    for (size_t i = 0; i != conf->num_clients; ++i)
        for (size_t j = 0; j != conf->clients[i].scopes.n; ++j) {
            const char *s = conf->clients[i].scopes.v[j];
            size_t k, n = json_array_size(a);
            for (k = 0; k != n; ++k)
                if (strcmp(json_string_value(json_array_get(a, k)), s) == 0)
                    break;
            if (k == n)
                json_array_append_new(a, json_string(s));
        }
    return a;
}

static void send_discovery(gw_req_t *greq)
{
    const gw_conf_t *conf = greq->gen->conf;
    static const char *const response_types[] = {"code", NULL};
    static const char *const grants[] = {"authorization_code", "refresh_token", "client_credentials",
                                         "urn:ietf:params:oauth:grant-type:device_code", NULL}; /* token.c */
    static const char *const pkce[] = {"S256", NULL};
    static const char *const auth_methods[] = {"none", "client_secret_basic", NULL};
    static const char *const confidential_methods[] = {"client_secret_basic", NULL};
    static const char *const algs[] = {"ES256", NULL};
    static const char *const subjects[] = {"public", "pairwise", NULL};
    static const char *const acrs[] = {"pwd", "cross-device", NULL};
    static const char *const prompts[] = {"none", "login", NULL}; /* authorize.c */
    /* what ID tokens and userinfo carry (oidc.c, session.c) */
    static const char *const claims[] = {"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                                         "at_hash", "sid", "name", "phone_number", "cards", NULL};
    static const char *const response_modes[] = {"query", NULL};
    json_t *doc = json_object();
    json_object_set_new(doc, "issuer", json_string(conf->issuer));
    json_object_set_new(doc, "authorization_endpoint", endpoint(conf, "/oauth2/authorize"));
    json_object_set_new(doc, "token_endpoint", endpoint(conf, "/oauth2/token"));
    json_object_set_new(doc, "revocation_endpoint", endpoint(conf, "/oauth2/revoke"));
    json_object_set_new(doc, "introspection_endpoint", endpoint(conf, "/oauth2/introspect"));
    json_object_set_new(doc, "userinfo_endpoint", endpoint(conf, "/oauth2/userinfo"));
    json_object_set_new(doc, "device_authorization_endpoint", endpoint(conf, "/oauth2/device_authorization")); /* device.c */
    json_object_set_new(doc, "end_session_endpoint", endpoint(conf, "/oauth2/end_session"));
    json_object_set_new(doc, "backchannel_logout_supported", json_true()); /* backchannel.c */
    json_object_set_new(doc, "backchannel_logout_session_supported", json_true());
    json_object_set_new(doc, "jwks_uri", endpoint(conf, "/.well-known/jwks.json"));
    json_object_set_new(doc, "response_types_supported", string_array(response_types));
    json_object_set_new(doc, "response_modes_supported", string_array(response_modes));
    json_object_set_new(doc, "grant_types_supported", string_array(grants));
    json_object_set_new(doc, "code_challenge_methods_supported", string_array(pkce));
    json_object_set_new(doc, "token_endpoint_auth_methods_supported", string_array(auth_methods));
    json_object_set_new(doc, "revocation_endpoint_auth_methods_supported", string_array(auth_methods));
    json_object_set_new(doc, "introspection_endpoint_auth_methods_supported", string_array(confidential_methods));
    json_object_set_new(doc, "id_token_signing_alg_values_supported", string_array(algs));
    json_object_set_new(doc, "subject_types_supported", string_array(subjects));
    json_object_set_new(doc, "acr_values_supported", string_array(acrs));
    json_object_set_new(doc, "prompt_values_supported", string_array(prompts));
    json_object_set_new(doc, "claims_supported", string_array(claims));
    json_object_set_new(doc, "scopes_supported", scopes_supported(conf));
    json_object_set_new(doc, "authorization_response_iss_parameter_supported", json_true());
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "the discovery document cannot be built");
        return;
    }
    send_json(greq, text, strlen(text), "public, max-age=300");
    free(text);
}

static void send_jwks(gw_req_t *greq)
{
    char *text = greq->gen->token_keys != NULL ? auth_keyset_jwks(greq->gen->token_keys, (int64_t)time(NULL)) : NULL;
    if (text == NULL) {
        send_json(greq, H2O_STRLIT("{\"keys\":[]}"), "no-store"); /* no keys yet: nothing verifies, say so honestly */
        return;
    }
    send_json(greq, text, strlen(text), "public, max-age=300");
    free(text);
}

/* ---- the /.well-known family (only these paths: other /.well-known/ paths may be routes) ------------------ */

static gw_endpoint_t wellknown_endpoints[] = {
    {.name = "openid-configuration", .path = "openid-configuration", .methods = GW_M_GET | GW_M_HEAD, .handle = send_discovery},
    {.name = "oauth-authorization-server",
     .path = "oauth-authorization-server",
     .methods = GW_M_GET | GW_M_HEAD,
     .handle = send_discovery},
    {.name = "jwks", .path = "jwks.json", .methods = GW_M_GET | GW_M_HEAD, .handle = send_jwks},
};

static gw_family_t wellknown_family = {
    .name = "well-known",
    .prefix = "/.well-known",
    .errors = GW_ERRORS_PROBLEM,
    .endpoints = wellknown_endpoints,
    .num_endpoints = sizeof(wellknown_endpoints) / sizeof(wellknown_endpoints[0]),
};

void auth_wellknown_register(void)
{
    gw_family_register(&wellknown_family);
}
