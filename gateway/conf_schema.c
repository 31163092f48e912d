/*
 * gateway/conf_schema.c — which keys the configuration has (SPEC §2) and what each one means.
 *
 * One field table per mapping of the file, the custom parsers for what a table cannot say, the defaults,
 * the checks across sections, and gw_conf_free(). The engine (conf.c) calls gw_conf_apply_schema() once the
 * YAML document is loaded; values are read only through the engine's helpers, so every error has its line.
 * The files it names (TLS cert/key, JWKS) must be readable now; it never opens sockets, keeps global state,
 * or repeats a secret (a secret_hash, a Redis URL that may hold a password) in an error message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>
#include "gateway/conf.h"
#include "gateway/conf_internal.h"

#define GW_CONF_MAX_ITEMS 4096 /* routes, clients, rate limits: keeps the uniqueness checks cheap */
#define GW_CONF_MAX_POLICIES 8 /* = GW_RATELIMIT_MAX_POLICIES: a route applies at most this many */

/* ---- methods -------------------------------------------------------------------------------------------- */

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL};

unsigned gw_method_bit(const char *name, size_t len)
{
    for (size_t i = 0; method_names[i] != NULL; ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return 1u << i;
    return 0;
}

const char *gw_method_name(unsigned bit)
{
    for (size_t i = 0; method_names[i] != NULL; ++i)
        if (bit == 1u << i)
            return method_names[i];
    return NULL;
}

/* ---- listen, admin -------------------------------------------------------------------------------------- */

/* "0.0.0.0", "::", "[::1]", "localhost" -> the bare host */
static void on_listen_host(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_listen_conf_t *l = target;
    const char *s = gw_conf_nonempty_scalar(c, v, what);
    size_t n;
    if (s == NULL)
        return;
    n = strlen(s);
    if (s[0] == '[' && n > 2 && s[n - 1] == ']' && memchr(s, ':', n) != NULL && gw_conf_valid_host(s + 1, n - 2, 1)) {
        free(l->host);
        l->host = gw_conf_strndup(c, s + 1, n - 2);
    } else if (gw_conf_valid_host(s, n, 1)) {
        free(l->host);
        l->host = gw_conf_strdup(c, s);
    } else {
        ERR(v, "%s '" SHOW "' is not an IP address or a host name", what, s);
    }
}

static const gw_conf_field_t tls_fields[] = {
    F_FILE(gw_listen_conf_t, "cert", tls_cert, REQUIRED),
    F_FILE(gw_listen_conf_t, "key", tls_key, REQUIRED),
    F_END,
};

static const gw_conf_field_t listen_fields[] = {
    F_CUSTOM("host", on_listen_host),
    F_UINT(gw_listen_conf_t, "port", port, 1, 65535, REQUIRED),
    F_SECTION("tls", tls_fields),
    F_END,
};

static void parse_listener(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_listen_conf_t *l = item;
    l->line = gw_conf_line_of(node);
    gw_conf_walk_mapping(c, node, "listen", listen_fields, l);
    if (l->host == NULL)
        l->host = gw_conf_strdup(c, "0.0.0.0");
}

static void on_listen(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->listen = gw_conf_parse_items(c, v, what, 64, sizeof(*conf->listen), &conf->num_listen, parse_listener);
    if (conf->listen != NULL && conf->num_listen == 0)
        ERR(v, "listen must name at least one listener");
    for (size_t i = 0; i != conf->num_listen; ++i) {
        const gw_listen_conf_t *l = &conf->listen[i];
        for (size_t j = 0; j != i; ++j)
            if (l->port != 0 && l->port == conf->listen[j].port && l->host != NULL && conf->listen[j].host != NULL &&
                strcmp(l->host, conf->listen[j].host) == 0)
                gw_conf_error_at(c, l->line, "listen: %s port %u is already listed on line %d", l->host, l->port,
                                 conf->listen[j].line);
    }
}

/* "127.0.0.1:9090", "[::1]:9090", "localhost:9090", a bare port (on 127.0.0.1), or "off" (no admin listener) */
static void on_admin_listen(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    gw_conf_authority_t a;
    const char *s = gw_conf_nonempty_scalar(c, v, what);
    char *host;
    uint16_t port = 0;
    if (s == NULL)
        return;
    if (strcmp(s, "off") == 0) {
        host = gw_conf_strdup(c, "127.0.0.1");
    } else if (strspn(s, "0123456789") == strlen(s) && gw_conf_parse_port(s, s + strlen(s), &port) == 0) {
        host = gw_conf_strdup(c, "127.0.0.1");
    } else if (gw_conf_split_authority(s, &a) == NULL && a.port != 0 && a.path[0] == '\0') {
        host = gw_conf_strndup(c, a.host, a.host_len);
        port = a.port;
    } else {
        ERR(v, "%s '" SHOW "' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off", what, s);
        return;
    }
    free(conf->admin.host);
    conf->admin.host = host;
    conf->admin.port = port;
}

static const gw_conf_field_t admin_fields[] = {
    F_CUSTOM("listen", on_admin_listen),
    F_END,
};

/* ---- redis, keys, limits, tokens ------------------------------------------------------------------------ */

static const gw_conf_field_t redis_fields[] = {
    F_STRING(gw_conf_t, "url", redis.url, .check = gw_conf_check_redis_url_or_unix, .secret = 1),
    F_LIST(gw_conf_t, "cluster", redis.cluster, .check = gw_conf_check_redis_seed, .secret = 1, .min = 1),
    F_DURATION(gw_conf_t, "timeout", redis.timeout_ms, 1),
    F_END,
};

static void on_redis(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    gw_conf_walk_mapping(c, v, what, redis_fields, conf);
    if (conf->redis.url != NULL && conf->redis.cluster.n != 0)
        ERR(v, "redis: give either url or cluster, not both");
}

static const gw_conf_field_t keys_fields[] = {
    F_PATH(gw_conf_t, "dir", keys_dir),
    F_END,
};

static const gw_conf_field_t limits_fields[] = {
    F_SIZE(gw_conf_t, "header_bytes", limits.header_bytes, 1, (uint64_t)1 << 30),
    F_UINT(gw_conf_t, "header_fields", limits.header_fields, 0, 1 << 16),
    F_SIZE(gw_conf_t, "body_bytes", limits.body_bytes, 1, (uint64_t)1 << 30),
    F_SIZE(gw_conf_t, "token_bytes", limits.token_bytes, 1, (uint64_t)1 << 30),
    F_UINT(gw_conf_t, "connections", limits.connections, 0, 1 << 24),
    F_UINT(gw_conf_t, "connections_per_ip", limits.connections_per_ip, 0, 1 << 24),
    F_UINT(gw_conf_t, "new_connections_per_ip", limits.new_connections_per_ip, 0, 1 << 20),
    F_UINT(gw_conf_t, "device_authorizations_per_ip", limits.device_authorizations_per_ip, 1, 1 << 24),
    F_DURATION(gw_conf_t, "handshake_timeout", limits.handshake_timeout_ms, 0),
    F_DURATION(gw_conf_t, "head_timeout", limits.head_timeout_ms, 1),
    F_DURATION(gw_conf_t, "body_timeout", limits.body_timeout_ms, 0),
    F_DURATION(gw_conf_t, "idle_timeout", limits.idle_timeout_ms, 1),
    F_DURATION(gw_conf_t, "send_timeout", limits.send_timeout_ms, 0),
    F_UINT(gw_conf_t, "h2_resets_per_second", limits.h2_resets_per_second, 0, 1 << 20),
    F_UINT(gw_conf_t, "h2_control_frames_per_second", limits.h2_control_frames_per_second, 0, 1 << 20),
    F_SIZE(gw_conf_t, "response_buffer_bytes", limits.response_buffer_bytes, 16384, (uint64_t)1 << 30),
    F_SIZE(gw_conf_t, "response_buffer_total", limits.response_buffer_total, 0, (uint64_t)1 << 40),
    F_END,
};

static const gw_conf_field_t tokens_fields[] = {
    F_DURATION(gw_conf_t, "access_ttl", tokens.access_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "refresh_ttl", tokens.refresh_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "session_ttl", tokens.session_ttl_ms, 1000),
    F_DURATION_IN(gw_conf_t, "device_ttl", tokens.device_ttl_ms, 10000, 600000),
    F_DURATION(gw_conf_t, "shared_device_ttl", tokens.shared_device_ttl_ms, 1000),
    F_STRING(gw_conf_t, "audience", tokens.audience),
    F_END,
};

/* ---- trusted issuers ------------------------------------------------------------------------------------ */

static const gw_conf_field_t trusted_issuer_fields[] = {
    F_STRING(gw_trusted_issuer_conf_t, "issuer", issuer, .check = gw_conf_check_trusted_issuer, REQUIRED),
    F_FILE(gw_trusted_issuer_conf_t, "jwks", jwks, REQUIRED),
    F_STRING(gw_trusted_issuer_conf_t, "audience", audience, REQUIRED),
    F_END,
};

static void parse_trusted_issuer(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_trusted_issuer_conf_t *t = item;
    t->line = gw_conf_line_of(node);
    gw_conf_walk_mapping(c, node, "trusted_issuer", trusted_issuer_fields, t);
}

static void on_trusted_issuers(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->trusted_issuers =
        gw_conf_parse_items(c, v, what, 64, sizeof(*conf->trusted_issuers), &conf->num_trusted_issuers, parse_trusted_issuer);
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        const gw_trusted_issuer_conf_t *t = &conf->trusted_issuers[i];
        for (size_t j = 0; j != i; ++j)
            if (t->issuer != NULL && conf->trusted_issuers[j].issuer != NULL &&
                strcmp(t->issuer, conf->trusted_issuers[j].issuer) == 0)
                gw_conf_error_at(c, t->line, "trusted_issuer '" SHOW "' is already listed on line %d", t->issuer,
                                 conf->trusted_issuers[j].line);
    }
}

/* ---- clients -------------------------------------------------------------------------------------------- */

static const char *const grant_names[] = {"authorization_code", "refresh_token", "client_credentials", "device_code", NULL};
static const char *const subject_type_names[] = {"pairwise", "public", NULL}; /* in gw_subject_type_t order */
static const char *const role_names[] = {"transit", "medical", "merchant", "government", "tourism", NULL};

static const gw_conf_field_t client_fields[] = {
    F_STRING(gw_client_conf_t, "id", id, .check = gw_conf_check_client_id, REQUIRED),
    F_LIST(gw_client_conf_t, "redirect_uris", redirect_uris, .check = gw_conf_check_redirect_uri),
    F_LIST(gw_client_conf_t, "post_logout_redirect_uris", post_logout_redirect_uris, .check = gw_conf_check_redirect_uri),
    F_LIST(gw_client_conf_t, "scopes", scopes, .check = gw_conf_check_scope),
    F_LIST(gw_client_conf_t, "grants", grants, .allowed = grant_names, .min = 1),
    F_LIST(gw_client_conf_t, "roles", roles, .allowed = role_names),
    F_STRING(gw_client_conf_t, "secret_hash", secret_hash, .secret = 1),
    F_BOOL(gw_client_conf_t, "first_party", first_party),
    F_ENUM(gw_client_conf_t, "subject_type", subject_type, subject_type_names),
    F_STRING(gw_client_conf_t, "sector_identifier", sector_identifier, .check = gw_conf_check_client_id),
    F_STRING(gw_client_conf_t, "backchannel_logout_uri", backchannel_logout_uri, .check = gw_conf_check_backchannel_uri),
    F_STRING(gw_client_conf_t, "name", name, .check = gw_conf_check_display_text),
    F_STRING(gw_client_conf_t, "description", description, .check = gw_conf_check_display_text),
    F_BOOL(gw_client_conf_t, "shared_device", shared_device),
    F_END,
};

static void parse_client(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_client_conf_t *cl = item;
    const char *id;
    cl->line = gw_conf_line_of(node);
    cl->subject_type = -1; /* not given */
    gw_conf_walk_mapping(c, node, "client", client_fields, cl);
    if ((int)cl->subject_type == -1)
        cl->subject_type = cl->first_party ? GW_SUBJECT_PUBLIC : GW_SUBJECT_PAIRWISE;
    if (node->type != YAML_MAPPING_NODE)
        return;
    id = cl->id != NULL ? cl->id : "";
    if (cl->grants.v == NULL && (cl->grants.v = gw_conf_calloc(c, 2, sizeof(char *))) != NULL) /* no grants: the default */
        for (size_t i = 0; i != 2; ++i)
            if ((cl->grants.v[cl->grants.n] = gw_conf_strdup(c, grant_names[i])) != NULL)
                cl->grants.n++;
    if (gw_conf_strlist_has(&cl->grants, "client_credentials") && cl->secret_hash == NULL)
        ERR(node, "client '" SHOW "': grant client_credentials needs a secret_hash (a confidential client)", id);
    yaml_node_t *uris = gw_conf_mapping_get(c, node, "redirect_uris"); /* absent or [], not merely all refused (reported) */
    if (gw_conf_strlist_has(&cl->grants, "authorization_code") &&
        (uris == NULL || (uris->type == YAML_SEQUENCE_NODE && gw_conf_seq_len(uris) == 0)))
        ERR(node, "client '" SHOW "': redirect_uris are required for the authorization_code grant", id);
    if (gw_conf_strlist_has(&cl->grants, "device_code") && gw_conf_mapping_get(c, node, "name") == NULL) /* the approval screens name it */
        ERR(node, "client '" SHOW "': grant device_code needs a name (shown when a resident approves it)", id);
}

static void on_clients(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->clients = gw_conf_parse_items(c, v, what, GW_CONF_MAX_ITEMS, sizeof(*conf->clients), &conf->num_clients, parse_client);
    for (size_t i = 0; i != conf->num_clients; ++i) {
        const gw_client_conf_t *cl = &conf->clients[i];
        for (size_t j = 0; j != i; ++j)
            if (cl->id != NULL && conf->clients[j].id != NULL && strcmp(cl->id, conf->clients[j].id) == 0)
                gw_conf_error_at(c, cl->line, "client '%s' is already defined on line %d", cl->id, conf->clients[j].line);
    }
}

/* ---- rate limits ---------------------------------------------------------------------------------------- */

static const char *const limit_key_names[] = {"user", "client", "ip", NULL}; /* in gw_limit_key_t order */

static const gw_conf_field_t policy_fields[] = {
    F_ENUM(gw_ratelimit_conf_t, "key", key, limit_key_names, REQUIRED),
    F_UINT(gw_ratelimit_conf_t, "limit", limit, 1, (uint64_t)1 << 40, REQUIRED),
    F_DURATION(gw_ratelimit_conf_t, "window", window_ms, 1, REQUIRED),
    F_UINT(gw_ratelimit_conf_t, "burst", burst, 1, (uint64_t)1 << 40),
    F_END,
};

static void parse_policy(gw_conf_ctx_t *c, gw_ratelimit_conf_t *p, yaml_node_t *k, yaml_node_t *v)
{
    char label[96];
    p->line = gw_conf_line_of(k);
    snprintf(label, sizeof(label), "rate_limits.%s", p->name);
    gw_conf_walk_mapping(c, v, label, policy_fields, p);
    if (p->burst == 0)
        p->burst = p->limit;
    if (p->window_ms != 0 && p->burst > ((uint64_t)1 << 50) / p->window_ms)
        ERR(v, "%s: burst x window is too large", label);
}

/* a mapping of policy names (each a valid, unique name) to policies */
static void on_rate_limits(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    if (v->type != YAML_MAPPING_NODE) {
        ERR(v, "%s must be a mapping of policy names to policies, not %s", what, gw_conf_node_kind(v));
        return;
    }
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > GW_CONF_MAX_ITEMS) {
        ERR(v, "%s has more than %d policies", what, GW_CONF_MAX_ITEMS);
        return;
    }
    if ((conf->rate_limits = gw_conf_calloc(c, n, sizeof(*conf->rate_limits))) == NULL)
        return;
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; ++pr) {
        yaml_node_t *k = gw_conf_visit(c, pr->key), *pv = k != NULL ? gw_conf_visit(c, pr->value) : NULL;
        const gw_ratelimit_conf_t *o = conf->rate_limits;
        const char *name, *why;
        if (pv == NULL)
            break;
        if ((name = gw_conf_nonempty_scalar(c, k, "a rate limit name")) == NULL)
            continue;
        if ((why = gw_conf_check_name(name)) != NULL) {
            ERR(k, "rate limit name '" SHOW "' %s", name, why);
            continue;
        }
        while (o != conf->rate_limits + conf->num_rate_limits && strcmp(o->name, name) != 0)
            ++o;
        if (o != conf->rate_limits + conf->num_rate_limits) {
            ERR(k, "rate limit '%s' is already defined on line %d", name, o->line);
            continue;
        }
        gw_ratelimit_conf_t *p = &conf->rate_limits[conf->num_rate_limits];
        if ((p->name = gw_conf_strdup(c, name)) == NULL)
            break;
        conf->num_rate_limits++;
        parse_policy(c, p, k, pv);
    }
}

/* ---- routes --------------------------------------------------------------------------------------------- */

/* a path prefix: starts with '/', no "//", no "." or ".." segment; a trailing '/' is dropped (except for "/") */
static void on_route_prefix(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_route_conf_t *r = target;
    const char *s = gw_conf_nonempty_scalar(c, v, what), *why;
    size_t n;
    if (s == NULL)
        return;
    n = strlen(s);
    if (s[0] != '/')
        why = "must start with '/'";
    else if (strstr(s, "//") != NULL)
        why = "must not contain '//'";
    else if (strstr(s, "/./") != NULL || strstr(s, "/../") != NULL || (n >= 2 && strcmp(s + n - 2, "/.") == 0) ||
             (n >= 3 && strcmp(s + n - 3, "/..") == 0))
        why = "must not contain '.' or '..' segments";
    else
        why = gw_conf_check_url_path(s);
    if (why != NULL) {
        ERR(v, "%s '" SHOW "' %s", what, s, why);
        return;
    }
    while (n > 1 && s[n - 1] == '/')
        --n;
    r->prefix = gw_conf_strndup(c, s, n);
}

static void on_route_methods(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.allowed = method_names, .min = 1};
    gw_route_conf_t *r = target;
    gw_strlist_t l = {NULL, 0};
    gw_conf_get_strlist(c, v, what, &list, &l);
    if (l.n != 0) {
        r->methods = 0;
        for (size_t i = 0; i != l.n; ++i)
            r->methods |= gw_method_bit(l.v[i], strlen(l.v[i]));
    }
    gw_conf_strlist_free(&l);
}

/* "http://host[:port][/path]" -> host (without brackets), port (default 80), path (without trailing '/') */
static const char *parse_upstream(gw_conf_ctx_t *c, const char *url, gw_upstream_conf_t *u)
{
    gw_conf_authority_t a;
    const char *why;
    size_t plen;
    if (strncasecmp(url, "https://", 8) == 0)
        return "is https://: upstreams are reached over cleartext http:// only";
    if (strncasecmp(url, "http://", 7) != 0)
        return "must be an http://host[:port][/path] URL";
    if ((why = gw_conf_split_authority(url + 7, &a)) != NULL || (why = gw_conf_check_url_path(a.path)) != NULL)
        return why;
    plen = strlen(a.path);
    while (plen > 0 && a.path[plen - 1] == '/')
        --plen;
    u->url = gw_conf_strdup(c, url);
    u->host = gw_conf_strndup(c, a.host, a.host_len);
    u->port = a.port != 0 ? a.port : 80;
    u->path = gw_conf_strndup(c, a.path, plen);
    return NULL;
}

static void on_route_upstreams(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_route_conf_t *r = target;
    if (v->type != YAML_SEQUENCE_NODE) {
        ERR(v, "%s must be a list, not %s", what, gw_conf_node_kind(v));
        return;
    }
    if (gw_conf_seq_len(v) == 0 || gw_conf_seq_len(v) > GW_CONF_MAX_LIST) {
        ERR(v, "%s must list from 1 to %d upstreams", what, GW_CONF_MAX_LIST);
        return;
    }
    if ((r->upstreams = gw_conf_calloc(c, gw_conf_seq_len(v), sizeof(*r->upstreams))) == NULL)
        return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
        yaml_node_t *item = gw_conf_visit(c, *it);
        const char *s, *why;
        int twice = 0;
        if (item == NULL)
            break;
        if ((s = gw_conf_nonempty_scalar(c, item, what)) == NULL)
            continue;
        for (size_t j = 0; j != r->num_upstreams; ++j)
            twice |= r->upstreams[j].url != NULL && strcmp(r->upstreams[j].url, s) == 0;
        if (twice)
            ERR(item, "%s: '" SHOW "' is listed twice", what, s);
        else if ((why = parse_upstream(c, s, &r->upstreams[r->num_upstreams])) != NULL)
            ERR(item, "%s '" SHOW "' %s", what, s, why);
        else
            r->num_upstreams++;
    }
}

static int policy_defined(const gw_conf_t *conf, const char *name)
{
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        if (strcmp(conf->rate_limits[i].name, name) == 0)
            return 1;
    return 0;
}

/* names of rate_limits policies (read before routes), each reported at its own line when undefined */
static void on_route_rate_limit(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.check = gw_conf_check_name};
    gw_route_conf_t *r = target;
    gw_conf_get_strlist(c, v, what, &list, &r->rate_limit);
    if (v->type != YAML_SEQUENCE_NODE || r->rate_limit.v == NULL)
        return;
    if (r->rate_limit.n > GW_CONF_MAX_POLICIES)
        ERR(v, "%s: a route may name at most %d policies", what, GW_CONF_MAX_POLICIES);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
        yaml_node_t *item = yaml_document_get_node(c->doc, *it); /* already counted by gw_conf_get_strlist */
        const char *name = item != NULL && item->type == YAML_SCALAR_NODE ? (const char *)item->data.scalar.value : "";
        if (gw_conf_strlist_has(&r->rate_limit, name) && !policy_defined(c->conf, name))
            ERR(item, "%s: '%s' is not defined in rate_limits", what, name);
    }
}

static const gw_conf_field_t route_fields[] = {
    F_STRING(gw_route_conf_t, "name", name, .check = gw_conf_check_name, REQUIRED),
    F_CUSTOM("prefix", on_route_prefix, REQUIRED),
    F_CUSTOM("methods", on_route_methods),
    F_CUSTOM("upstreams", on_route_upstreams, REQUIRED),
    /* fail closed: a route is public only when it says so */
    F_LIST(gw_route_conf_t, "scopes", scopes, .check = gw_conf_check_scope, .required = " (write scopes: [] for a public route)"),
    F_CUSTOM("rate_limit", on_route_rate_limit),
    F_DURATION(gw_route_conf_t, "timeout", timeout_ms, 1),
    F_UINT(gw_route_conf_t, "retries", retries, 0, 5),
    F_BOOL(gw_route_conf_t, "strip_prefix", strip_prefix),
    F_END,
};

static void parse_route(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_route_conf_t *r = item;
    r->line = gw_conf_line_of(node);
    r->methods = GW_M_ALL;
    r->timeout_ms = 30000;
    gw_conf_walk_mapping(c, node, "route", route_fields, r);
}

static void parse_routes(gw_conf_ctx_t *c, yaml_node_t *v)
{
    gw_conf_t *conf = c->conf;
    conf->routes = gw_conf_parse_items(c, v, "routes", GW_CONF_MAX_ITEMS, sizeof(*conf->routes), &conf->num_routes, parse_route);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const gw_route_conf_t *r = &conf->routes[i];
        for (size_t j = 0; j != i; ++j) {
            const gw_route_conf_t *o = &conf->routes[j];
            if (r->name != NULL && o->name != NULL && strcmp(r->name, o->name) == 0)
                gw_conf_error_at(c, r->line, "route name '%s' is already used on line %d", r->name, o->line);
            if (r->prefix != NULL && o->prefix != NULL && strcmp(r->prefix, o->prefix) == 0)
                gw_conf_error_at(c, r->line, "route prefix '" SHOW "' is already used on line %d", r->prefix, o->line);
        }
    }
}

/* routes are read last, wherever they are in the file, so that their rate_limit names can be checked */
static void on_routes(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    (void)target;
    (void)what;
    c->routes = v;
}

/* ---- qr ------------------------------------------------------------------------------------------------- */

static const char *const scene_names[] = {"transit", "medical", "payment", "government", "tourism", NULL}; /* scene - 1 */

static void on_qr_scenes(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.allowed = scene_names};
    gw_conf_t *conf = target;
    gw_strlist_t l = {NULL, 0};
    gw_conf_get_strlist(c, v, what, &list, &l);
    if (l.v != NULL) {
        conf->qr.scenes = 0;
        for (size_t i = 0; i != l.n; ++i)
            conf->qr.scenes |= 1u << (gw_conf_name_index(scene_names, l.v[i]) + GW_SCENE_TRANSIT);
    }
    gw_conf_strlist_free(&l);
}

/* one byte of seconds on the wire: whole seconds, 1 to 255 */
static void on_qr_code_ttl(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    uint64_t ms;
    if (gw_conf_get_duration(c, v, what, 1000, 255000, &ms) != 0)
        return;
    if (ms % 1000 != 0)
        ERR(v, "%s must be whole seconds (the code carries it as one byte of seconds)", what);
    else
        conf->qr.code_ttl_ms = ms;
}

static const gw_conf_field_t qr_fields[] = {
    F_CUSTOM("scenes", on_qr_scenes),
    F_CUSTOM("code_ttl", on_qr_code_ttl),
    F_DURATION(gw_conf_t, "credential_ttl", qr.credential_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "skew", qr.skew_ms, 0),
    F_END,
};

/* ---- top level ------------------------------------------------------------------------------------------ */

/* "-" (stdout), "off", or a file path (resolved) */
static void on_access_log(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    const char *s = gw_conf_nonempty_scalar(c, v, what);
    if (s == NULL)
        return;
    free(conf->access_log);
    conf->access_log = strcmp(s, "-") == 0 || strcmp(s, "off") == 0 ? gw_conf_strdup(c, s) : gw_conf_resolve_path(c, s);
}

static const char *const store_down_names[] = {"local", "open", "closed", NULL}; /* in gw_store_down_t order */

static const gw_conf_field_t top_fields[] = {
    F_STRING(gw_conf_t, "issuer", issuer, .check = gw_conf_check_own_issuer, REQUIRED),
    F_UINT(gw_conf_t, "threads", threads, 1, 64),
    F_DURATION(gw_conf_t, "shutdown_timeout", shutdown_timeout_ms, 1),
    F_CUSTOM("listen", on_listen, REQUIRED),
    F_SECTION("admin", admin_fields),
    F_CUSTOM("redis", on_redis),
    F_SECTION("keys", keys_fields),
    F_SECTION("limits", limits_fields),
    F_SECTION("tokens", tokens_fields),
    F_CUSTOM("trusted_issuers", on_trusted_issuers),
    F_CUSTOM("clients", on_clients),
    F_CUSTOM("rate_limits", on_rate_limits),
    F_ENUM(gw_conf_t, "on_store_down", on_store_down, store_down_names),
    F_UINT(gw_conf_t, "nodes", nodes, 1, 1024),
    F_CUSTOM("routes", on_routes),
    F_SECTION("qr", qr_fields),
    F_CUSTOM("access_log", on_access_log),
    F_END,
};

/* ---- defaults, checks across sections ------------------------------------------------------------------ */

static void set_defaults(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    conf->threads = cpus < 1 ? 1 : cpus > 64 ? 64 : (unsigned)cpus;
    conf->shutdown_timeout_ms = 10000;
    conf->admin.host = gw_conf_strdup(c, "127.0.0.1");
    conf->admin.port = 9090;
    conf->redis.timeout_ms = 50;
    conf->limits.header_bytes = 16 << 10;
    conf->limits.header_fields = 100;
    conf->limits.body_bytes = 1 << 20;
    conf->limits.token_bytes = 8 << 10;
    conf->limits.connections = 16384;
    conf->limits.connections_per_ip = 256;
    conf->limits.new_connections_per_ip = 64;
    conf->limits.device_authorizations_per_ip = 120;
    conf->limits.handshake_timeout_ms = 10000;
    conf->limits.head_timeout_ms = 10000;
    conf->limits.body_timeout_ms = 60000;
    conf->limits.idle_timeout_ms = 30000;
    conf->limits.send_timeout_ms = 30000;
    conf->limits.h2_resets_per_second = 100;
    conf->limits.h2_control_frames_per_second = 100;
    conf->limits.response_buffer_bytes = 256 << 10;
    conf->limits.response_buffer_total = 32 << 20;
    conf->tokens.access_ttl_ms = 15 * 60000;
    conf->tokens.refresh_ttl_ms = 30ull * 86400000;
    conf->tokens.session_ttl_ms = 30ull * 86400000;
    conf->tokens.device_ttl_ms = 5 * 60000;
    conf->tokens.shared_device_ttl_ms = 10 * 60000;
    conf->tokens.audience = gw_conf_strdup(c, "hegate");
    conf->on_store_down = GW_STORE_DOWN_LOCAL;
    conf->nodes = 1;
    conf->qr.scenes = (1u << GW_SCENE_TRANSIT) | (1u << GW_SCENE_MEDICAL) | (1u << GW_SCENE_PAYMENT) | (1u << GW_SCENE_GOVERNMENT) |
                      (1u << GW_SCENE_TOURISM);
    conf->qr.code_ttl_ms = 60000;
    conf->qr.credential_ttl_ms = 72ull * 3600000;
    conf->qr.skew_ms = 20000;
}

/* checks that need several parts of the file, whatever their order in it */
static void check_across(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        const gw_trusted_issuer_conf_t *t = &conf->trusted_issuers[i];
        if (t->issuer != NULL && conf->issuer != NULL && strcmp(t->issuer, conf->issuer) == 0)
            gw_conf_error_at(c, t->line, "trusted_issuer '" SHOW "' is this gateway's own issuer", t->issuer);
    }
    for (size_t i = 0; i != conf->num_listen && conf->admin.port != 0; ++i) {
        const gw_listen_conf_t *l = &conf->listen[i];
        if (l->port == conf->admin.port && l->host != NULL && conf->admin.host != NULL &&
            (strcmp(l->host, conf->admin.host) == 0 || strcmp(l->host, "0.0.0.0") == 0 || strcmp(l->host, "::") == 0))
            gw_conf_error_at(c, l->line, "listen: port %u is also the admin port (admin.listen)", l->port);
    }
}

/* defaults that depend on what the file said */
static void set_late_defaults(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    if (conf->redis.url == NULL && conf->redis.cluster.n == 0)
        conf->redis.url = gw_conf_strdup(c, "redis://127.0.0.1:6379/0");
    if (conf->keys_dir == NULL)
        conf->keys_dir = gw_conf_resolve_path(c, "keys");
    if (conf->access_log == NULL)
        conf->access_log = gw_conf_strdup(c, "-");
}

void gw_conf_apply_schema(gw_conf_ctx_t *c, yaml_node_t *root)
{
    set_defaults(c);
    if (root == NULL)
        gw_conf_error_at(c, 1, "the file is empty: it should be a mapping of keys to values (SPEC §2)");
    else
        gw_conf_walk_mapping(c, root, "", top_fields, c->conf);
    if (c->routes != NULL)
        parse_routes(c, c->routes);
    check_across(c);
    set_late_defaults(c);
}

void gw_conf_free(gw_conf_t *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i != conf->num_listen; ++i) {
        free(conf->listen[i].host);
        free(conf->listen[i].tls_cert);
        free(conf->listen[i].tls_key);
    }
    free(conf->listen);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        gw_route_conf_t *r = &conf->routes[i];
        free(r->name);
        free(r->prefix);
        for (size_t j = 0; j != r->num_upstreams; ++j) {
            free(r->upstreams[j].url);
            free(r->upstreams[j].host);
            free(r->upstreams[j].path);
        }
        free(r->upstreams);
        gw_conf_strlist_free(&r->scopes);
        gw_conf_strlist_free(&r->rate_limit);
    }
    free(conf->routes);
    for (size_t i = 0; i != conf->num_clients; ++i) {
        gw_client_conf_t *cl = &conf->clients[i];
        free(cl->id);
        free(cl->secret_hash);
        free(cl->sector_identifier);
        free(cl->backchannel_logout_uri);
        free(cl->name);
        free(cl->description);
        gw_conf_strlist_free(&cl->redirect_uris);
        gw_conf_strlist_free(&cl->post_logout_redirect_uris);
        gw_conf_strlist_free(&cl->scopes);
        gw_conf_strlist_free(&cl->grants);
        gw_conf_strlist_free(&cl->roles);
    }
    free(conf->clients);
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        free(conf->rate_limits[i].name);
    free(conf->rate_limits);
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        free(conf->trusted_issuers[i].issuer);
        free(conf->trusted_issuers[i].jwks);
        free(conf->trusted_issuers[i].audience);
    }
    free(conf->trusted_issuers);
    free(conf->admin.host);
    free(conf->redis.url);
    gw_conf_strlist_free(&conf->redis.cluster);
    free(conf->keys_dir);
    free(conf->tokens.audience);
    free(conf->issuer);
    free(conf->access_log);
    free(conf->path);
    free(conf->dir);
    free(conf);
}

const gw_client_conf_t *gw_conf_client(const gw_conf_t *conf, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i != conf->num_clients; ++i)
        if (strcmp(conf->clients[i].id, id) == 0)
            return &conf->clients[i];
    return NULL;
}
