/*
 * routes/routes.c — route table construction and longest-prefix matching.
 *
 * Called by the gateway when it builds a configuration generation (route_table_create) and
 * on every request (route_match, route_allows). The table is immutable after creation, so
 * every thread may read it without locks. Matching never allocates and never reads past PATH.
 */
#include <stdlib.h>
#include <string.h>
#include "routes/routes.h"

static int route_cmp_longest_first(const void *a, const void *b)
{
    const route_t *x = a, *y = b;
    if (x->prefix_len != y->prefix_len)
        return x->prefix_len < y->prefix_len ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

route_table_t *route_table_create(const gw_conf_t *conf)
{
    route_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (conf->num_routes != 0 && (t->routes = calloc(conf->num_routes, sizeof(*t->routes))) == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i != conf->num_routes; ++i) {
        t->routes[i].conf = &conf->routes[i];
        t->routes[i].index = i;
        t->routes[i].prefix_len = strlen(conf->routes[i].prefix);
        /* "/" is stored as the empty prefix so that the boundary rule below covers it too */
        if (t->routes[i].prefix_len == 1)
            t->routes[i].prefix_len = 0;
    }
    t->num_routes = conf->num_routes;
    qsort(t->routes, t->num_routes, sizeof(*t->routes), route_cmp_longest_first);
    return t;
}

void route_table_free(route_table_t *table)
{
    if (table == NULL)
        return;
    free(table->routes);
    free(table);
}

const route_t *route_match(const route_table_t *table, const char *path, size_t path_len)
{
    for (size_t i = 0; i != table->num_routes; ++i) {
        const route_t *r = &table->routes[i];
        if (r->prefix_len > path_len)
            continue;
        if (memcmp(r->conf->prefix, path, r->prefix_len) != 0)
            continue;
        if (path_len == r->prefix_len || path[r->prefix_len] == '/')
            return r;
    }
    return NULL;
}

int route_allows(const route_t *route, const char *method, size_t method_len)
{
    return (route->conf->methods & gw_method_bit(method, method_len)) != 0;
}

size_t route_allow_header(const route_t *route, char *buf, size_t bufsz)
{
    size_t len = 0;
    for (unsigned bit = 1; bit < GW_M_ALL; bit <<= 1) {
        if ((route->conf->methods & bit) == 0)
            continue;
        const char *name = gw_method_name(bit);
        size_t nlen = strlen(name), sep = len != 0 ? 2 : 0;
        if (len + sep + nlen >= bufsz)
            return 0;
        if (sep != 0) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        memcpy(buf + len, name, nlen);
        len += nlen;
    }
    buf[len] = '\0';
    return len;
}
