/*
 * gateway/conf.c — loads and validates the YAML configuration (SPEC §2) into a gw_conf_t.
 *
 * Called by `hegate check`, at start and on SIGHUP (server.c). Parsing uses libyaml's
 * document API so that every node knows its line: each problem becomes "FILE:LINE: message"
 * and all of them are collected before giving up. It only reads the file (and checks that
 * referenced TLS files are readable); it never opens sockets or keeps global state.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include "gateway/conf.h"

typedef struct {
    const char *path;
    yaml_document_t *doc;
    gw_errors_t *errs;
    gw_conf_t *conf;
    int failed;
} ctx_t;

static void add_error(gw_errors_t *errs, const char *msg)
{
    char **nv = realloc(errs->v, (errs->n + 1) * sizeof(*errs->v));
    if (nv == NULL)
        return;
    errs->v = nv;
    errs->v[errs->n] = strdup(msg);
    if (errs->v[errs->n] != NULL)
        errs->n++;
}

static void error_at(ctx_t *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_at(ctx_t *c, int line, const char *fmt, ...)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s:%d: ", c->path, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
    va_end(ap);
    add_error(c->errs, msg);
    c->failed = 1;
}

static int line_of(yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

#define ERR(node, ...) error_at(c, line_of(node), __VA_ARGS__)

void gw_errors_clear(gw_errors_t *errs)
{
    for (size_t i = 0; i != errs->n; ++i)
        free(errs->v[i]);
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

/* ---- methods ------------------------------------------------------------------------------------- */

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

unsigned gw_method_bit(const char *name, size_t len)
{
    for (size_t i = 0; i != sizeof(method_names) / sizeof(method_names[0]); ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return 1u << i;
    return 0;
}

const char *gw_method_name(unsigned bit)
{
    for (size_t i = 0; i != sizeof(method_names) / sizeof(method_names[0]); ++i)
        if (bit == 1u << i)
            return method_names[i];
    return NULL;
}

/* ---- sizes and durations --------------------------------------------------------------------------- */

static int parse_number(const char *s, uint64_t *out, const char **rest)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); ++s) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    *rest = s;
    return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

int gw_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;
    const char *rest;
    if (s == NULL || parse_number(s, &v, &rest) != 0)
        return -1;
    if (*rest != '\0') {
        switch (tolower((unsigned char)*rest)) {
        case 'k':
            mult = 1024;
            break;
        case 'm':
            mult = 1024 * 1024;
            break;
        case 'g':
            mult = 1024 * 1024 * 1024;
            break;
        default:
            return -1;
        }
        if (rest[1] != '\0')
            return -1;
    }
    return mul_ok(v, mult, out);
}

int gw_parse_duration(const char *s, uint64_t *out_ms)
{
    uint64_t v, mult;
    const char *rest;
    if (s == NULL || parse_number(s, &v, &rest) != 0)
        return -1;
    if (*rest == '\0' || strcmp(rest, "s") == 0)
        mult = 1000;
    else if (strcmp(rest, "ms") == 0)
        mult = 1;
    else if (strcmp(rest, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(rest, "h") == 0)
        mult = 3600 * 1000;
    else if (strcmp(rest, "d") == 0)
        mult = 86400 * 1000;
    else
        return -1;
    return mul_ok(v, mult, out_ms);
}

/* ---- node helpers ---------------------------------------------------------------------------------- */

static yaml_node_t *node_at(ctx_t *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static const char *scalar(ctx_t *c, yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        ERR(node, "%s must be a single value", what);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

static char *dup_scalar(ctx_t *c, yaml_node_t *node, const char *what)
{
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return NULL;
    if (*s == '\0') {
        ERR(node, "%s must not be empty", what);
        return NULL;
    }
    return strdup(s);
}

static int get_uint(ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = scalar(c, node, what);
    uint64_t v;
    const char *rest;
    if (s == NULL)
        return -1;
    if (parse_number(s, &v, &rest) != 0 || *rest != '\0' || v < min || v > max) {
        ERR(node, "%s must be a whole number from %llu to %llu (got '%s')", what, (unsigned long long)min,
            (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_bool(ctx_t *c, yaml_node_t *node, const char *what, int *out)
{
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return -1;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0) {
        *out = 1;
    } else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0) {
        *out = 0;
    } else {
        ERR(node, "%s must be true or false (got '%s')", what, s);
        return -1;
    }
    return 0;
}

static int get_size(ctx_t *c, yaml_node_t *node, const char *what, uint64_t *out)
{
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return -1;
    if (gw_parse_size(s, out) != 0 || *out == 0) {
        ERR(node, "%s must be a size such as 512, 16k or 1m (got '%s')", what, s);
        return -1;
    }
    return 0;
}

static int get_duration(ctx_t *c, yaml_node_t *node, const char *what, uint64_t *out)
{
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return -1;
    if (gw_parse_duration(s, out) != 0 || *out == 0) {
        ERR(node, "%s must be a duration such as 500ms, 10s, 15m, 2h or 30d (got '%s')", what, s);
        return -1;
    }
    return 0;
}

static char *resolve_path(ctx_t *c, const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    size_t n = strlen(c->conf->dir) + 1 + strlen(p) + 1;
    char *r = malloc(n);
    if (r != NULL)
        snprintf(r, n, "%s/%s", c->conf->dir, p);
    return r;
}

static char *get_path(ctx_t *c, yaml_node_t *node, const char *what)
{
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return NULL;
    if (*s == '\0') {
        ERR(node, "%s must not be empty", what);
        return NULL;
    }
    return resolve_path(c, s);
}

static void strlist_free(gw_strlist_t *l)
{
    for (size_t i = 0; i != l->n; ++i)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* a list of non-empty strings; ALLOWED (NULL-terminated) restricts the values when non-NULL */
static int get_strlist(ctx_t *c, yaml_node_t *node, const char *what, const char *const *allowed, gw_strlist_t *out)
{
    strlist_free(out);
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "%s must be a list", what);
        return -1;
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    out->v = calloc(n + 1, sizeof(*out->v));
    int ok = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = node_at(c, *it);
        const char *s = scalar(c, item, what);
        if (s == NULL || *s == '\0') {
            if (s != NULL)
                ERR(item, "%s: empty value", what);
            ok = -1;
            continue;
        }
        if (allowed != NULL) {
            const char *const *a = allowed;
            while (*a != NULL && strcmp(*a, s) != 0)
                ++a;
            if (*a == NULL) {
                ERR(item, "%s: unknown value '%s'", what, s);
                ok = -1;
                continue;
            }
        }
        out->v[out->n++] = strdup(s);
    }
    return ok;
}

/* Walks a mapping: calls FN for each known key, reports unknown and duplicate keys. */
typedef void (*key_fn)(ctx_t *c, void *target, const char *key, yaml_node_t *value, yaml_node_t *keynode);

static int walk_mapping(ctx_t *c, yaml_node_t *node, const char *what, const char *const *keys, key_fn fn, void *target)
{
    if (node->type != YAML_MAPPING_NODE) {
        ERR(node, "%s must be a mapping of keys to values", what);
        return -1;
    }
    size_t nkeys = 0;
    while (keys[nkeys] != NULL)
        ++nkeys;
    int seen[64] = {0};
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            ERR(k, "%s: keys must be plain names", what);
            continue;
        }
        const char *name = (const char *)k->data.scalar.value;
        size_t i = 0;
        while (i != nkeys && strcmp(keys[i], name) != 0)
            ++i;
        if (i == nkeys) {
            ERR(k, "unknown key '%s' in %s", name, what);
            continue;
        }
        if (seen[i]++) {
            ERR(k, "duplicate key '%s' in %s", name, what);
            continue;
        }
        fn(c, target, name, v, k);
    }
    return 0;
}

/* whether mapping NODE has KEY at all (a key given with a bad value is reported once, not as missing) */
static int mapping_has(ctx_t *c, yaml_node_t *node, const char *key)
{
    if (node->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return 1;
    }
    return 0;
}

static int is_key(const char *key, const char *name)
{
    return strcmp(key, name) == 0;
}

/* ---- listen, admin ------------------------------------------------------------------------------------ */

static const char *const listen_keys[] = {"host", "port", "tls", NULL};
static const char *const tls_keys[] = {"cert", "key", NULL};

static int file_readable(ctx_t *c, yaml_node_t *node, const char *what, const char *path)
{
    if (access(path, R_OK) != 0) {
        ERR(node, "%s '%s' cannot be read: %s", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_tls_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_listen_conf_t *l = target;
    char **slot = is_key(key, "cert") ? &l->tls_cert : &l->tls_key;
    if ((*slot = get_path(c, v, is_key(key, "cert") ? "tls.cert" : "tls.key")) != NULL)
        file_readable(c, v, is_key(key, "cert") ? "tls.cert" : "tls.key", *slot);
}

static void on_listen_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_listen_conf_t *l = target;
    uint64_t n;
    if (is_key(key, "host")) {
        free(l->host);
        l->host = dup_scalar(c, v, "listen.host");
    } else if (is_key(key, "port")) {
        if (get_uint(c, v, "listen.port", 1, 65535, &n) == 0)
            l->port = (uint16_t)n;
    } else if (is_key(key, "tls")) {
        walk_mapping(c, v, "listen.tls", tls_keys, on_tls_key, l);
        if (v->type == YAML_MAPPING_NODE && (l->tls_cert == NULL) != (l->tls_key == NULL))
            ERR(v, "listen.tls needs both cert and key");
        if (v->type == YAML_MAPPING_NODE && l->tls_cert == NULL && l->tls_key == NULL)
            ERR(v, "listen.tls needs cert and key");
    }
}

static void parse_listen(ctx_t *c, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "listen must be a list of listeners");
        return;
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    c->conf->listen = calloc(n + 1, sizeof(*c->conf->listen));
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = node_at(c, *it);
        gw_listen_conf_t *l = &c->conf->listen[c->conf->num_listen++];
        l->line = line_of(item);
        walk_mapping(c, item, "listen", listen_keys, on_listen_key, l);
        if (l->host == NULL)
            l->host = strdup("0.0.0.0");
        if (item->type == YAML_MAPPING_NODE && !mapping_has(c, item, "port"))
            ERR(item, "listen: port is required");
        for (gw_listen_conf_t *o = c->conf->listen; o != l; ++o)
            if (o->port == l->port && l->port != 0 && strcmp(o->host, l->host) == 0)
                ERR(item, "listen: %s:%u is listed twice", l->host, l->port);
    }
}

/* "127.0.0.1:9090", "[::1]:9090", or a bare port (127.0.0.1) */
static int parse_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon = strrchr(s, ':'), *p;
    uint64_t n;
    if (colon == NULL) {
        if (parse_number(s, &n, &p) != 0 || *p != '\0' || n == 0 || n > 65535)
            return -1;
        *host = strdup("127.0.0.1");
        *port = (uint16_t)n;
        return 0;
    }
    if (parse_number(colon + 1, &n, &p) != 0 || *p != '\0' || n == 0 || n > 65535 || colon == s)
        return -1;
    const char *hb = s, *he = colon;
    if (*hb == '[') {
        if (he[-1] != ']')
            return -1;
        ++hb;
        --he;
    }
    if (he <= hb)
        return -1;
    *host = strndup(hb, (size_t)(he - hb));
    *port = (uint16_t)n;
    return 0;
}

static const char *const admin_keys[] = {"listen", NULL};

static void on_admin_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    const char *s = scalar(c, v, "admin.listen");
    if (s == NULL)
        return;
    free(c->conf->admin.host);
    c->conf->admin.host = NULL;
    if (strcmp(s, "off") == 0) {
        c->conf->admin.port = 0;
        c->conf->admin.host = strdup("127.0.0.1");
    } else if (parse_hostport(s, &c->conf->admin.host, &c->conf->admin.port) != 0) {
        ERR(v, "admin.listen must be HOST:PORT such as 127.0.0.1:9090 (got '%s')", s);
    }
}

/* ---- redis, keys, limits, tokens ----------------------------------------------------------------------- */

static int url_scheme_ok(const char *s, int allow_unix)
{
    return strncmp(s, "redis://", 8) == 0 || (allow_unix && strncmp(s, "unix:", 5) == 0 && s[5] != '\0');
}

static const char *const redis_keys[] = {"url", "cluster", "timeout", NULL};

static void on_redis_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_conf_t *conf = c->conf;
    if (is_key(key, "url")) {
        if ((conf->redis.url = dup_scalar(c, v, "redis.url")) != NULL && !url_scheme_ok(conf->redis.url, 1))
            ERR(v, "redis.url must start with redis:// or unix: (got '%s')", conf->redis.url);
    } else if (is_key(key, "cluster")) {
        if (get_strlist(c, v, "redis.cluster", NULL, &conf->redis.cluster) == 0) {
            if (conf->redis.cluster.n == 0)
                ERR(v, "redis.cluster needs at least one node");
            for (size_t i = 0; i != conf->redis.cluster.n; ++i)
                if (!url_scheme_ok(conf->redis.cluster.v[i], 0))
                    ERR(v, "redis.cluster: '%s' must start with redis://", conf->redis.cluster.v[i]);
        }
    } else {
        get_duration(c, v, "redis.timeout", &conf->redis.timeout_ms);
    }
}

static const char *const keys_keys[] = {"dir", NULL};

static void on_keys_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    char *p = get_path(c, v, "keys.dir");
    if (p != NULL) {
        free(c->conf->keys_dir);
        c->conf->keys_dir = p;
    }
}

static const char *const limits_keys[] = {"header_bytes", "body_bytes", "token_bytes", NULL};

static void on_limits_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_conf_t *conf = c->conf;
    uint64_t *slot = is_key(key, "header_bytes") ? &conf->limits.header_bytes
                     : is_key(key, "body_bytes") ? &conf->limits.body_bytes
                                                 : &conf->limits.token_bytes;
    char what[64];
    snprintf(what, sizeof(what), "limits.%s", key);
    if (get_size(c, v, what, slot) == 0 && *slot > (uint64_t)1 << 30)
        ERR(v, "%s must be at most 1g", what);
}

static const char *const tokens_keys[] = {"access_ttl", "refresh_ttl", "session_ttl", "audience", NULL};

static void on_tokens_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_conf_t *conf = c->conf;
    if (is_key(key, "audience")) {
        char *a = dup_scalar(c, v, "tokens.audience");
        if (a != NULL) {
            free(conf->tokens.audience);
            conf->tokens.audience = a;
        }
        return;
    }
    uint64_t *slot = is_key(key, "access_ttl") ? &conf->tokens.access_ttl_ms
                     : is_key(key, "refresh_ttl") ? &conf->tokens.refresh_ttl_ms
                                                  : &conf->tokens.session_ttl_ms;
    char what[64];
    snprintf(what, sizeof(what), "tokens.%s", key);
    get_duration(c, v, what, slot);
}

static const char *const issuer_keys[] = {"issuer", "jwks", "audience", NULL};

static void on_issuer_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_trusted_issuer_conf_t *t = target;
    if (is_key(key, "issuer"))
        t->issuer = dup_scalar(c, v, "trusted_issuers.issuer");
    else if (is_key(key, "jwks")) {
        if ((t->jwks = get_path(c, v, "trusted_issuers.jwks")) != NULL)
            file_readable(c, v, "trusted_issuers.jwks", t->jwks);
    } else
        t->audience = dup_scalar(c, v, "trusted_issuers.audience");
}

static void parse_trusted_issuers(ctx_t *c, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "trusted_issuers must be a list");
        return;
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    c->conf->trusted_issuers = calloc(n + 1, sizeof(*c->conf->trusted_issuers));
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = node_at(c, *it);
        gw_trusted_issuer_conf_t *t = &c->conf->trusted_issuers[c->conf->num_trusted_issuers++];
        t->line = line_of(item);
        walk_mapping(c, item, "trusted_issuers", issuer_keys, on_issuer_key, t);
        if (item->type == YAML_MAPPING_NODE && (t->issuer == NULL || t->jwks == NULL || t->audience == NULL))
            ERR(item, "trusted_issuers: issuer, jwks and audience are all required");
    }
}

/* ---- clients --------------------------------------------------------------------------------------------- */

static const char *const client_keys[] = {"id", "redirect_uris", "scopes", "grants", "roles", "secret_hash", "first_party", NULL};
static const char *const grant_names[] = {"authorization_code", "refresh_token", "client_credentials", NULL};
static const char *const role_names[] = {"transit", "medical", "merchant", "government", "tourism", NULL};

static void on_client_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_client_conf_t *cl = target;
    if (is_key(key, "id"))
        cl->id = dup_scalar(c, v, "clients.id");
    else if (is_key(key, "redirect_uris"))
        get_strlist(c, v, "clients.redirect_uris", NULL, &cl->redirect_uris);
    else if (is_key(key, "scopes"))
        get_strlist(c, v, "clients.scopes", NULL, &cl->scopes);
    else if (is_key(key, "grants"))
        get_strlist(c, v, "clients.grants", grant_names, &cl->grants);
    else if (is_key(key, "roles"))
        get_strlist(c, v, "clients.roles", role_names, &cl->roles);
    else if (is_key(key, "secret_hash"))
        cl->secret_hash = dup_scalar(c, v, "clients.secret_hash");
    else
        get_bool(c, v, "clients.first_party", &cl->first_party);
}

static int strlist_has(const gw_strlist_t *l, const char *s)
{
    for (size_t i = 0; i != l->n; ++i)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

static void parse_clients(ctx_t *c, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "clients must be a list");
        return;
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    c->conf->clients = calloc(n + 1, sizeof(*c->conf->clients));
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = node_at(c, *it);
        gw_client_conf_t *cl = &c->conf->clients[c->conf->num_clients++];
        cl->line = line_of(item);
        walk_mapping(c, item, "client", client_keys, on_client_key, cl);
        if (item->type != YAML_MAPPING_NODE)
            continue;
        if (cl->id == NULL) {
            ERR(item, "client: id is required");
            continue;
        }
        for (gw_client_conf_t *o = c->conf->clients; o != cl; ++o)
            if (o->id != NULL && strcmp(o->id, cl->id) == 0)
                ERR(item, "client '%s' is defined twice", cl->id);
        if (cl->grants.n == 0) {
            strlist_free(&cl->grants);
            cl->grants.v = calloc(3, sizeof(char *));
            cl->grants.v[cl->grants.n++] = strdup("authorization_code");
            cl->grants.v[cl->grants.n++] = strdup("refresh_token");
        }
        if (strlist_has(&cl->grants, "client_credentials") && cl->secret_hash == NULL)
            ERR(item, "client '%s': client_credentials needs a secret_hash (a confidential client)", cl->id);
        if (strlist_has(&cl->grants, "authorization_code") && cl->redirect_uris.n == 0)
            ERR(item, "client '%s': redirect_uris are required for authorization_code", cl->id);
    }
}

/* ---- rate limits ------------------------------------------------------------------------------------------ */

static const char *const policy_keys[] = {"key", "limit", "window", "burst", NULL};

static void on_policy_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_ratelimit_conf_t *p = target;
    if (is_key(key, "key")) {
        const char *s = scalar(c, v, "rate_limits.key");
        if (s == NULL)
            return;
        if (strcmp(s, "user") == 0)
            p->key = GW_LIMIT_KEY_USER;
        else if (strcmp(s, "client") == 0)
            p->key = GW_LIMIT_KEY_CLIENT;
        else if (strcmp(s, "ip") == 0)
            p->key = GW_LIMIT_KEY_IP;
        else
            ERR(v, "rate limit '%s': key must be user, client or ip (got '%s')", p->name, s);
        p->line = -p->line; /* marks "key seen" until validation */
    } else if (is_key(key, "limit")) {
        get_uint(c, v, "rate_limits.limit", 1, (uint64_t)1 << 40, &p->limit);
    } else if (is_key(key, "window")) {
        get_duration(c, v, "rate_limits.window", &p->window_ms);
    } else {
        get_uint(c, v, "rate_limits.burst", 1, (uint64_t)1 << 40, &p->burst);
    }
}

static void parse_rate_limits(ctx_t *c, yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE) {
        ERR(node, "rate_limits must be a mapping of policy names to policies");
        return;
    }
    size_t n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    c->conf->rate_limits = calloc(n + 1, sizeof(*c->conf->rate_limits));
    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top; ++pr) {
        yaml_node_t *k = node_at(c, pr->key), *v = node_at(c, pr->value);
        const char *name = scalar(c, k, "rate limit name");
        if (name == NULL || *name == '\0')
            continue;
        int dup = 0;
        for (size_t i = 0; i != c->conf->num_rate_limits; ++i)
            dup |= strcmp(c->conf->rate_limits[i].name, name) == 0;
        if (dup) {
            ERR(k, "rate limit '%s' is defined twice", name);
            continue;
        }
        gw_ratelimit_conf_t *p = &c->conf->rate_limits[c->conf->num_rate_limits++];
        p->name = strdup(name);
        p->line = line_of(k);
        walk_mapping(c, v, "rate limit", policy_keys, on_policy_key, p);
        if (v->type != YAML_MAPPING_NODE)
            continue;
        if (p->line > 0)
            ERR(v, "rate limit '%s': key is required (user, client or ip)", name);
        p->line = line_of(k);
        if (p->limit == 0)
            ERR(v, "rate limit '%s': limit is required", name);
        if (p->window_ms == 0)
            ERR(v, "rate limit '%s': window is required", name);
        if (p->burst == 0)
            p->burst = p->limit;
        if (p->window_ms != 0 && p->burst > ((uint64_t)1 << 50) / p->window_ms)
            ERR(v, "rate limit '%s': burst x window is too large", name);
    }
}

/* ---- routes ------------------------------------------------------------------------------------------------ */

static const char *const route_keys[] = {"name",    "prefix",  "methods", "upstreams",    "scopes", "rate_limit",
                                         "timeout", "retries", "strip_prefix", NULL};

/* "http://host[:port][/path]" */
static int parse_upstream(const char *url, gw_upstream_conf_t *u)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7, *end = h + strcspn(h, "/?#"), *colon;
    if (*end == '?' || *end == '#')
        return -1;
    const char *hostend = end;
    uint16_t port = 80;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL)
            return -1;
        hostend = rb + 1;
        colon = hostend < end && *hostend == ':' ? hostend : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        if (colon != NULL)
            hostend = colon;
    }
    if (colon != NULL) {
        uint64_t n;
        const char *p;
        if (parse_number(colon + 1, &n, &p) != 0 || p != end || n == 0 || n > 65535)
            return -1;
        port = (uint16_t)n;
    }
    if (hostend == h)
        return -1;
    for (const char *q = h; q != hostend; ++q)
        if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == '[' || *q == ']' || *q == ':'))
            return -1;
    size_t plen = strlen(end);
    while (plen > 0 && end[plen - 1] == '/')
        --plen;
    u->url = strdup(url);
    u->host = strndup(h, (size_t)(hostend - h));
    u->port = port;
    u->path = strndup(end, plen);
    return 0;
}

static void on_route_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_route_conf_t *r = target;
    uint64_t n;
    if (is_key(key, "name")) {
        r->name = dup_scalar(c, v, "route name");
    } else if (is_key(key, "prefix")) {
        char *p = dup_scalar(c, v, "route prefix");
        if (p == NULL)
            return;
        if (p[0] != '/' || strchr(p, '?') != NULL || strchr(p, '#') != NULL || strstr(p, "//") != NULL) {
            ERR(v, "route prefix must be a path starting with '/' (got '%s')", p);
            free(p);
            return;
        }
        size_t len = strlen(p);
        while (len > 1 && p[len - 1] == '/')
            p[--len] = '\0';
        r->prefix = p;
    } else if (is_key(key, "methods")) {
        gw_strlist_t l = {NULL, 0};
        if (get_strlist(c, v, "route methods", NULL, &l) == 0) {
            r->methods = 0;
            for (size_t i = 0; i != l.n; ++i) {
                unsigned bit = gw_method_bit(l.v[i], strlen(l.v[i]));
                if (bit == 0)
                    ERR(v, "route methods: unknown method '%s' (GET HEAD POST PUT PATCH DELETE OPTIONS)", l.v[i]);
                r->methods |= bit;
            }
            if (l.n == 0)
                ERR(v, "route methods must not be empty (leave the key out for all methods)");
        }
        strlist_free(&l);
    } else if (is_key(key, "upstreams")) {
        gw_strlist_t l = {NULL, 0};
        if (get_strlist(c, v, "route upstreams", NULL, &l) == 0) {
            r->upstreams = calloc(l.n + 1, sizeof(*r->upstreams));
            for (size_t i = 0; i != l.n; ++i) {
                if (parse_upstream(l.v[i], &r->upstreams[r->num_upstreams]) != 0)
                    ERR(v, "route upstream '%s' must be an http://host:port[/path] URL", l.v[i]);
                else
                    r->num_upstreams++;
            }
            if (l.n == 0)
                ERR(v, "route upstreams must not be empty");
        }
        strlist_free(&l);
    } else if (is_key(key, "scopes")) {
        get_strlist(c, v, "route scopes", NULL, &r->scopes);
        r->line = -r->line; /* marks "scopes given" until parse_routes checks it */
    } else if (is_key(key, "rate_limit")) {
        if (get_strlist(c, v, "route rate_limit", NULL, &r->rate_limit) == 0 && r->rate_limit.n > 8)
            ERR(v, "route rate_limit: at most 8 policies");
    } else if (is_key(key, "timeout")) {
        get_duration(c, v, "route timeout", &r->timeout_ms);
    } else if (is_key(key, "retries")) {
        if (get_uint(c, v, "route retries", 0, 5, &n) == 0)
            r->retries = (unsigned)n;
    } else {
        get_bool(c, v, "route strip_prefix", &r->strip_prefix);
    }
}

static void parse_routes(ctx_t *c, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "routes must be a list");
        return;
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    c->conf->routes = calloc(n + 1, sizeof(*c->conf->routes));
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = node_at(c, *it);
        gw_route_conf_t *r = &c->conf->routes[c->conf->num_routes++];
        r->line = line_of(item);
        r->methods = GW_M_ALL;
        r->timeout_ms = 30000;
        walk_mapping(c, item, "route", route_keys, on_route_key, r);
        if (item->type != YAML_MAPPING_NODE)
            continue;
        if (r->line > 0) /* fail closed: a route is public only when it says so */
            ERR(item, "route%s%s: scopes is required (write scopes: [] for a public route)", r->name ? " " : "",
                r->name ? r->name : "");
        r->line = line_of(item);
        if (!mapping_has(c, item, "name"))
            ERR(item, "route: name is required");
        if (!mapping_has(c, item, "prefix"))
            ERR(item, "route%s%s: prefix is required", r->name ? " " : "", r->name ? r->name : "");
        if (!mapping_has(c, item, "upstreams"))
            ERR(item, "route%s%s: upstreams are required", r->name ? " " : "", r->name ? r->name : "");
        for (gw_route_conf_t *o = c->conf->routes; o != r; ++o) {
            if (r->name != NULL && o->name != NULL && strcmp(o->name, r->name) == 0)
                ERR(item, "route name '%s' is used twice", r->name);
            if (r->prefix != NULL && o->prefix != NULL && strcmp(o->prefix, r->prefix) == 0)
                ERR(item, "route prefix '%s' is used twice", r->prefix);
        }
    }
}

/* ---- qr ------------------------------------------------------------------------------------------------------ */

static const char *const qr_keys[] = {"scenes", "code_ttl", "credential_ttl", "skew", NULL};
static const char *const scene_names[] = {"transit", "medical", "payment", "government", "tourism", NULL};

static void on_qr_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_conf_t *conf = c->conf;
    if (is_key(key, "scenes")) {
        gw_strlist_t l = {NULL, 0};
        if (get_strlist(c, v, "qr.scenes", scene_names, &l) == 0) {
            conf->qr.scenes = 0;
            for (size_t i = 0; i != l.n; ++i)
                for (int s = 0; scene_names[s] != NULL; ++s)
                    if (strcmp(scene_names[s], l.v[i]) == 0)
                        conf->qr.scenes |= 1u << (s + 1);
        }
        strlist_free(&l);
    } else if (is_key(key, "code_ttl")) {
        if (get_duration(c, v, "qr.code_ttl", &conf->qr.code_ttl_ms) == 0 && conf->qr.code_ttl_ms > 255000)
            ERR(v, "qr.code_ttl must be at most 255s (one byte in the code)");
    } else if (is_key(key, "credential_ttl")) {
        get_duration(c, v, "qr.credential_ttl", &conf->qr.credential_ttl_ms);
    } else {
        const char *s = scalar(c, v, "qr.skew");
        if (s != NULL && gw_parse_duration(s, &conf->qr.skew_ms) != 0) /* 0 is a valid skew */
            ERR(v, "qr.skew must be a duration such as 20s (got '%s')", s);
    }
}

/* ---- top level ------------------------------------------------------------------------------------------------ */

static const char *const top_keys[] = {"issuer", "threads", "shutdown_timeout", "listen", "admin", "redis", "keys", "limits",
                                       "tokens", "trusted_issuers", "clients", "rate_limits", "on_store_down", "nodes",
                                       "routes", "qr", "access_log", NULL};

static void on_top_key(ctx_t *c, void *target, const char *key, yaml_node_t *v, yaml_node_t *k)
{
    gw_conf_t *conf = c->conf;
    uint64_t n;
    if (is_key(key, "issuer")) {
        if ((conf->issuer = dup_scalar(c, v, "issuer")) != NULL) {
            size_t len = strlen(conf->issuer);
            if ((strncmp(conf->issuer, "https://", 8) != 0 && strncmp(conf->issuer, "http://", 7) != 0) ||
                conf->issuer[len - 1] == '/' || strchr(conf->issuer, '?') != NULL || strchr(conf->issuer, '#') != NULL)
                ERR(v, "issuer must be an https:// URL without a trailing '/', query or fragment (got '%s')", conf->issuer);
        }
    } else if (is_key(key, "threads")) {
        if (get_uint(c, v, "threads", 1, 64, &n) == 0)
            conf->threads = (unsigned)n;
    } else if (is_key(key, "shutdown_timeout")) {
        get_duration(c, v, "shutdown_timeout", &conf->shutdown_timeout_ms);
    } else if (is_key(key, "listen")) {
        parse_listen(c, v);
    } else if (is_key(key, "admin")) {
        walk_mapping(c, v, "admin", admin_keys, on_admin_key, NULL);
    } else if (is_key(key, "redis")) {
        walk_mapping(c, v, "redis", redis_keys, on_redis_key, NULL);
        if (conf->redis.url != NULL && conf->redis.cluster.n != 0)
            ERR(v, "redis: give either url or cluster, not both");
    } else if (is_key(key, "keys")) {
        walk_mapping(c, v, "keys", keys_keys, on_keys_key, NULL);
    } else if (is_key(key, "limits")) {
        walk_mapping(c, v, "limits", limits_keys, on_limits_key, NULL);
    } else if (is_key(key, "tokens")) {
        walk_mapping(c, v, "tokens", tokens_keys, on_tokens_key, NULL);
    } else if (is_key(key, "trusted_issuers")) {
        parse_trusted_issuers(c, v);
    } else if (is_key(key, "clients")) {
        parse_clients(c, v);
    } else if (is_key(key, "rate_limits")) {
        parse_rate_limits(c, v);
    } else if (is_key(key, "on_store_down")) {
        const char *s = scalar(c, v, "on_store_down");
        if (s == NULL)
            return;
        if (strcmp(s, "local") == 0)
            conf->on_store_down = GW_STORE_DOWN_LOCAL;
        else if (strcmp(s, "open") == 0)
            conf->on_store_down = GW_STORE_DOWN_OPEN;
        else if (strcmp(s, "closed") == 0)
            conf->on_store_down = GW_STORE_DOWN_CLOSED;
        else
            ERR(v, "on_store_down must be local, open or closed (got '%s')", s);
    } else if (is_key(key, "nodes")) {
        if (get_uint(c, v, "nodes", 1, 1024, &n) == 0)
            conf->nodes = (unsigned)n;
    } else if (is_key(key, "routes")) {
        parse_routes(c, v);
    } else if (is_key(key, "qr")) {
        walk_mapping(c, v, "qr", qr_keys, on_qr_key, NULL);
    } else if (is_key(key, "access_log")) {
        const char *s = scalar(c, v, "access_log");
        if (s != NULL && *s != '\0') {
            free(conf->access_log);
            conf->access_log = strcmp(s, "-") == 0 || strcmp(s, "off") == 0 ? strdup(s) : resolve_path(c, s);
        } else if (s != NULL) {
            ERR(v, "access_log must be -, off or a file path");
        }
    }
}

static void set_defaults(gw_conf_t *conf)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    conf->threads = cpus > 0 ? (cpus > 64 ? 64 : (unsigned)cpus) : 1;
    conf->shutdown_timeout_ms = 10000;
    conf->admin.host = strdup("127.0.0.1");
    conf->admin.port = 9090;
    conf->redis.timeout_ms = 50;
    conf->limits.header_bytes = 16 * 1024;
    conf->limits.body_bytes = 1024 * 1024;
    conf->limits.token_bytes = 8 * 1024;
    conf->tokens.access_ttl_ms = 15 * 60 * 1000;
    conf->tokens.refresh_ttl_ms = 30ull * 86400 * 1000;
    conf->tokens.session_ttl_ms = 30ull * 86400 * 1000;
    conf->tokens.audience = strdup("hegate");
    conf->on_store_down = GW_STORE_DOWN_LOCAL;
    conf->nodes = 1;
    conf->qr.scenes = (1u << GW_SCENE_TRANSIT) | (1u << GW_SCENE_MEDICAL) | (1u << GW_SCENE_PAYMENT) |
                      (1u << GW_SCENE_GOVERNMENT) | (1u << GW_SCENE_TOURISM);
    conf->qr.code_ttl_ms = 60000;
    conf->qr.credential_ttl_ms = 72ull * 3600 * 1000;
    conf->qr.skew_ms = 20000;
}

/* checks that need the whole file */
static void validate(ctx_t *c, yaml_node_t *root)
{
    gw_conf_t *conf = c->conf;
    if (conf->issuer == NULL)
        ERR(root, "issuer is required");
    if (conf->num_listen == 0)
        ERR(root, "listen: at least one listener is required");
    if (conf->redis.url == NULL && conf->redis.cluster.n == 0)
        conf->redis.url = strdup("redis://127.0.0.1:6379/0");
    if (conf->keys_dir == NULL)
        conf->keys_dir = resolve_path(c, "keys");
    if (conf->access_log == NULL)
        conf->access_log = strdup("-");
    for (size_t i = 0; i != conf->num_routes; ++i) {
        gw_route_conf_t *r = &conf->routes[i];
        for (size_t j = 0; j != r->rate_limit.n; ++j) {
            size_t k = 0;
            while (k != conf->num_rate_limits && strcmp(conf->rate_limits[k].name, r->rate_limit.v[j]) != 0)
                ++k;
            if (k == conf->num_rate_limits)
                error_at(c, r->line, "route %s: rate_limit '%s' is not defined in rate_limits", r->name ? r->name : "",
                         r->rate_limit.v[j]);
        }
    }
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

gw_conf_t *gw_conf_load(const char *path, gw_errors_t *errs)
{
    ctx_t c = {path, NULL, errs, NULL, 0};
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s:0: cannot open: %s", path, strerror(errno));
        add_error(errs, msg);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s:%zu: YAML syntax error: %s%s%s", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "unknown", parser.context ? " " : "", parser.context ? parser.context : "");
        add_error(errs, msg);
        yaml_parser_delete(&parser);
        fclose(fp);
        return NULL;
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    c.doc = &doc;
    c.conf = calloc(1, sizeof(*c.conf));
    c.conf->path = strdup(path);
    c.conf->dir = dir_of(path);
    set_defaults(c.conf);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        error_at(&c, 1, "the file is empty");
    } else {
        walk_mapping(&c, root, "the configuration", top_keys, on_top_key, NULL);
        validate(&c, root);
    }
    yaml_document_delete(&doc);
    if (c.failed) {
        gw_conf_free(c.conf);
        return NULL;
    }
    return c.conf;
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
        strlist_free(&r->scopes);
        strlist_free(&r->rate_limit);
    }
    free(conf->routes);
    for (size_t i = 0; i != conf->num_clients; ++i) {
        gw_client_conf_t *cl = &conf->clients[i];
        free(cl->id);
        free(cl->secret_hash);
        strlist_free(&cl->redirect_uris);
        strlist_free(&cl->scopes);
        strlist_free(&cl->grants);
        strlist_free(&cl->roles);
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
    strlist_free(&conf->redis.cluster);
    free(conf->keys_dir);
    free(conf->tokens.audience);
    free(conf->issuer);
    free(conf->access_log);
    free(conf->path);
    free(conf->dir);
    free(conf);
}
