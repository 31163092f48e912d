/*
 * gateway/generation.c — configuration generations: the match table of routes and own endpoints,
 * the per-entry view the pipeline's stages read (gw_route_rt_t), upstream targets, token keys and
 * the verifier, and each endpoint family's per-generation state.
 *
 * Called by server.c at start and on SIGHUP (gw_gen_build), on the main thread; the result is
 * immutable and shared by every thread through its reference count. A generation that cannot be
 * built completely is refused whole: the running one keeps serving.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "gateway/gateway.h"

/* ---- upstream targets (process-wide registry) ------------------------------------------------------- */

static pthread_mutex_t targets_mutex = PTHREAD_MUTEX_INITIALIZER;
static gw_target_t **targets;
static size_t num_targets;

int gw_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *h = host;
    char unbracketed[256];
    if (host[0] == '[') { /* IPv6 literal in a URL */
        size_t l = strlen(host);
        if (l < 3 || l - 2 >= sizeof(unbracketed))
            return -1;
        memcpy(unbracketed, host + 1, l - 2);
        unbracketed[l - 2] = '\0';
        h = unbracketed;
    }
    if (getaddrinfo(h, portstr, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

gw_target_t *gw_target_get(const char *host, uint16_t port)
{
    char authority[300];
    /* an IPv6 literal needs its brackets back in an authority (the config stores the bare address) */
    snprintf(authority, sizeof(authority), strchr(host, ':') != NULL && host[0] != '[' ? "[%s]:%u" : "%s:%u", host, port);
    gw_target_t *t = NULL;
    pthread_mutex_lock(&targets_mutex);
    for (size_t i = 0; i != num_targets; ++i)
        if (strcmp(targets[i]->authority, authority) == 0) {
            t = targets[i];
            goto Exit;
        }
    t = calloc(1, sizeof(*t));
    if (t == NULL || gw_resolve(host, port, &t->sa, &t->salen) != 0) {
        free(t);
        t = NULL;
        goto Exit;
    }
    t->authority = strdup(authority);
    gw_target_t **nt = realloc(targets, (num_targets + 1) * sizeof(*targets));
    if (nt == NULL || t->authority == NULL) {
        free(t->authority);
        free(t);
        t = NULL;
        goto Exit;
    }
    targets = nt;
    targets[num_targets++] = t;
Exit:
    pthread_mutex_unlock(&targets_mutex);
    return t;
}

/* ---- generations ------------------------------------------------------------------------------------- */

static void gen_free_auth(gw_gen_t *gen, size_t num_issuers)
{
    auth_verifier_free(gen->verifier);
    auth_keyset_free(gen->token_keys);
    if (gen->issuer_keys != NULL)
        for (size_t i = 0; i != num_issuers; ++i)
            auth_keyset_free(gen->issuer_keys[i]);
    free(gen->issuer_keys);
}

static void add_gen_error(gw_errors_t *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_gen_error(gw_errors_t *errs, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char **nv = realloc(errs->v, (errs->n + 1) * sizeof(*errs->v));
    if (nv != NULL) {
        errs->v = nv;
        if ((errs->v[errs->n] = strdup(msg)) != NULL)
            errs->n++;
    }
}

/* keys and the token verifier of a generation: our own token keys (if keys.dir/token exists) and
 * every trusted issuer's JWKS. A key file or JWKS that is there but wrong refuses the config. */
static int gen_build_auth(gw_gen_t *gen, gw_errors_t *errs)
{
    const gw_conf_t *conf = gen->conf;
    char err[512], dir[4096];
    int64_t now = (int64_t)time(NULL);
    snprintf(dir, sizeof(dir), "%s/token", conf->keys_dir);
    if (access(dir, F_OK) == 0 && (gen->token_keys = auth_keyset_load(conf->keys_dir, AUTH_KEY_TOKEN, now,
                                                                      (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY,
                                                                      err, sizeof(err))) == NULL) {
        add_gen_error(errs, "%s:0: keys.dir %s: %s", conf->path, conf->keys_dir, err);
        return -1;
    }
    gen->issuer_keys = calloc(conf->num_trusted_issuers + 1, sizeof(*gen->issuer_keys));
    auth_issuer_t *issuers = calloc(conf->num_trusted_issuers + 1, sizeof(*issuers));
    size_t n = 0;
    if (gen->token_keys != NULL)
        issuers[n++] = (auth_issuer_t){conf->issuer, conf->tokens.audience, gen->token_keys};
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        const gw_trusted_issuer_conf_t *ti = &conf->trusted_issuers[i];
        if ((gen->issuer_keys[i] = auth_keyset_load_jwks(ti->jwks, err, sizeof(err))) == NULL) {
            add_gen_error(errs, "%s:%d: trusted issuer %s: %s", conf->path, ti->line, ti->issuer, err);
            free(issuers);
            return -1;
        }
        issuers[n++] = (auth_issuer_t){ti->issuer, ti->audience, gen->issuer_keys[i]};
    }
    if (n != 0 && (gen->verifier = auth_verifier_new(issuers, n, conf->limits.token_bytes, err, sizeof(err))) == NULL) {
        add_gen_error(errs, "%s:0: token verifier: %s", conf->path, err);
        free(issuers);
        return -1;
    }
    free(issuers);
    return 0;
}

/* each family's per-generation state (its code keys, say); a family whose state cannot be built refuses the config */
static int gen_build_families(gw_gen_t *gen, gw_errors_t *errs)
{
    gw_family_t *const *fam;
    size_t nf = gw_families(&fam);
    for (size_t f = 0; f != nf; ++f) {
        char err[512];
        if (fam[f]->gen_build != NULL && fam[f]->gen_build(gen->conf, &gen->family_data[f], err, sizeof(err)) != 0) {
            add_gen_error(errs, "%s:0: keys.dir %s: %s", gen->conf->path, gen->conf->keys_dir, err);
            return -1;
        }
    }
    return 0;
}

static void gen_free_families(gw_gen_t *gen)
{
    gw_family_t *const *fam;
    size_t nf = gw_families(&fam);
    for (size_t f = 0; f != nf; ++f)
        if (fam[f]->gen_free != NULL && gen->family_data[f] != NULL)
            fam[f]->gen_free(gen->family_data[f]);
}

static void gen_free_rt(gw_gen_t *gen)
{
    if (gen->rt != NULL) {
        for (size_t i = 0; i != gen->num_rt; ++i) {
            free(gen->rt[i].targets);
            free(gen->rt[i].base_paths);
            free(gen->rt[i].policy_hdr.base);
        }
        free(gen->rt);
    }
    route_table_free(gen->routes);
}

static void gen_free(gw_gen_t *gen)
{
    gen_free_families(gen);
    gen_free_auth(gen, gen->conf->num_trusted_issuers);
    gen_free_rt(gen);
    gw_conf_free(gen->conf);
    free(gen);
}

/* a configured route's entry: its upstream targets and rate-limit policies */
static int rt_init_route(gw_gen_t *gen, size_t i, gw_errors_t *errs)
{
    const gw_conf_t *conf = gen->conf;
    const gw_route_conf_t *rc = &conf->routes[i];
    gw_route_rt_t *rt = &gen->rt[i];
    rt->name = rc->name;
    rt->metric_slot = gw_metrics_route_slot(rc->name);
    rt->methods = rc->methods;
    rt->body_limit = conf->limits.body_bytes;
    rt->auth = rc->scopes.n != 0 ? GW_AUTH_BEARER : 0;
    rt->scopes = (const char *const *)rc->scopes.v;
    rt->num_scopes = rc->scopes.n;
    rt->errors = GW_ERRORS_PROBLEM;
    rt->conf = rc;
    if ((rt->targets = calloc(rc->num_upstreams, sizeof(*rt->targets))) == NULL ||
        (rt->base_paths = calloc(rc->num_upstreams, sizeof(*rt->base_paths))) == NULL)
        return -1;
    for (size_t j = 0; j != rc->num_upstreams; ++j) {
        if ((rt->targets[j] = gw_target_get(rc->upstreams[j].host, rc->upstreams[j].port)) == NULL) {
            add_gen_error(errs, "%s:%d: upstream '%s' does not resolve", conf->path, rc->line, rc->upstreams[j].url);
            return -1;
        }
        rt->base_paths[j] = rc->upstreams[j].path;
    }
    rt->num_targets = rc->num_upstreams;
    for (size_t j = 0; j != rc->rate_limit.n && rt->num_policies != GW_RATELIMIT_MAX_POLICIES; ++j)
        for (size_t k = 0; k != conf->num_rate_limits; ++k)
            if (strcmp(conf->rate_limits[k].name, rc->rate_limit.v[j]) == 0) {
                rt->policies[rt->num_policies] = &conf->rate_limits[k];
                rt->policy_slots[rt->num_policies++] = gw_metrics_label_slot(GW_MF_RATELIMITED, conf->rate_limits[k].name);
            }
    if (rt->num_policies != 0) {
        size_t cap = gw_ratelimit_header_bound(rt->policies, rt->num_policies);
        if ((rt->policy_hdr.base = malloc(cap)) == NULL)
            h2o_fatal("no memory");
        rt->policy_hdr.len = gw_ratelimit_format_policy(rt->policy_hdr.base, cap, rt->policies, rt->num_policies);
    }
    return 0;
}

/* an own endpoint's entry (EP), or its family's 404 (EP NULL): declared like a route, answered by the family */
static void rt_init_own(gw_gen_t *gen, gw_route_rt_t *rt, const gw_family_t *f, const gw_endpoint_t *ep)
{
    rt->name = ep != NULL ? ep->label : f->name;
    rt->metric_slot = ep != NULL ? ep->metric_slot : f->metric_slot;
    rt->methods = ep != NULL ? ep->methods : GW_M_ALL;
    rt->body_limit = gen->conf->limits.body_bytes;
    rt->auth = ep != NULL ? ep->auth : 0;
    rt->scopes = ep != NULL ? ep->scopes : NULL;
    for (rt->num_scopes = 0; rt->scopes != NULL && rt->scopes[rt->num_scopes] != NULL; ++rt->num_scopes)
        ;
    rt->errors = f->errors;
    rt->endpoint = ep;
    rt->family = f;
}

/* the match table: the config's routes (entries 0 .. num_routes-1), then every family's endpoints and,
 * for a family that owns its prefix, the 404 entry below it */
static int gen_build_table(gw_gen_t *gen, gw_errors_t *errs)
{
    const gw_conf_t *conf = gen->conf;
    gw_family_t *const *fam;
    size_t nf = gw_families(&fam), n = conf->num_routes;
    for (size_t f = 0; f != nf; ++f)
        n += fam[f]->num_endpoints + (fam[f]->owns_prefix ? 1 : 0);
    route_t *entries = calloc(n + 1, sizeof(*entries));
    if (entries == NULL || (gen->rt = calloc(n + 1, sizeof(*gen->rt))) == NULL) {
        free(entries);
        return -1;
    }
    gen->num_rt = n;
    size_t k = 0;
    for (size_t i = 0; i != conf->num_routes; ++i, ++k) {
        if (rt_init_route(gen, i, errs) != 0)
            goto Fail;
        entries[k] =
            (route_t){.prefix = conf->routes[i].prefix, .kind = ROUTE_PREFIX, .methods = conf->routes[i].methods, .index = k};
    }
    for (size_t f = 0; f != nf; ++f) {
        const gw_family_t *fm = fam[f];
        for (size_t e = 0; e != fm->num_endpoints; ++e, ++k) {
            gw_endpoint_t *ep = &fm->endpoints[e];
            rt_init_own(gen, &gen->rt[k], fm, ep);
            entries[k] = (route_t){.prefix = ep->full_path, .methods = ep->methods, .index = k};
            entries[k].kind = ep->subtree ? ROUTE_BELOW : ROUTE_EXACT;
        }
        if (fm->owns_prefix) {
            rt_init_own(gen, &gen->rt[k], fm, NULL);
            entries[k] = (route_t){.prefix = fm->prefix, .kind = ROUTE_BELOW, .methods = GW_M_ALL, .index = k};
            ++k;
        }
    }
    gen->routes = route_table_create(entries, n);
    free(entries);
    return gen->routes != NULL ? 0 : -1;
Fail:
    free(entries);
    return -1;
}

gw_gen_t *gw_gen_build(gw_conf_t *conf, gw_errors_t *errs)
{
    gw_gen_t *gen = calloc(1, sizeof(*gen));
    if (gen == NULL)
        return NULL;
    gen->refcnt = 1;
    gen->conf = conf;
    if (gen_build_table(gen, errs) != 0 || gen_build_auth(gen, errs) != 0 || gen_build_families(gen, errs) != 0) {
        gen_free_families(gen);
        gen_free_auth(gen, conf->num_trusted_issuers);
        gen_free_rt(gen);
        free(gen); /* CONF stays with the caller on failure */
        return NULL;
    }
    return gen;
}

void gw_gen_addref(gw_gen_t *gen)
{
    __atomic_add_fetch(&gen->refcnt, 1, __ATOMIC_RELAXED);
}

void gw_gen_release(gw_gen_t *gen)
{
    if (__atomic_sub_fetch(&gen->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        gen_free(gen);
}
