/*
 * routes/routes.c — match-table construction and longest-prefix matching.
 *
 * Called by the gateway when it builds a configuration generation (route_table_create) and on
 * every request (route_match). The table is immutable after creation, so every thread may read it
 * without locks. Matching never allocates and never reads past PATH. Entries are grouped by the
 * path's second byte ("/a..." never looks at "/oauth2" or "/qr/v1"), so the gateway's own
 * endpoints cost a proxied request nothing.
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

route_table_t *route_table_create(const route_t *entries, size_t n)
{
    route_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (n != 0 && (t->routes = calloc(n, sizeof(*t->routes))) == NULL)
        goto Fail;
    for (size_t i = 0; i != n; ++i) {
        t->routes[i] = entries[i];
        t->routes[i].prefix_len = strlen(entries[i].prefix);
        /* "/" is stored as the empty prefix so that the boundary rule below covers it too */
        if (t->routes[i].prefix_len == 1 && t->routes[i].kind == ROUTE_PREFIX)
            t->routes[i].prefix_len = 0;
    }
    t->num_routes = n;
    qsort(t->routes, t->num_routes, sizeof(*t->routes), route_cmp_longest_first);
    /* an entry of 0 or 1 bytes ("", "/") can match paths of any second byte; longer ones only their own */
    for (unsigned c = 0; c != 256; ++c) {
        for (size_t i = 0; i != n; ++i)
            if (t->routes[i].prefix_len < 2 || (unsigned char)t->routes[i].prefix[1] == c)
                ++t->num_by_byte[c];
        if (t->num_by_byte[c] == 0)
            continue;
        if ((t->by_byte[c] = malloc(t->num_by_byte[c] * sizeof(*t->by_byte[c]))) == NULL)
            goto Fail;
        size_t k = 0;
        for (size_t i = 0; i != n; ++i)
            if (t->routes[i].prefix_len < 2 || (unsigned char)t->routes[i].prefix[1] == c)
                t->by_byte[c][k++] = &t->routes[i];
    }
    return t;
Fail:
    route_table_free(t);
    return NULL;
}

void route_table_free(route_table_t *table)
{
    if (table == NULL)
        return;
    for (unsigned c = 0; c != 256; ++c)
        free(table->by_byte[c]);
    free(table->routes);
    free(table);
}

static int entry_matches(const route_t *r, const char *path, size_t path_len)
{
    if (r->prefix_len > path_len || memcmp(r->prefix, path, r->prefix_len) != 0)
        return 0;
    switch (r->kind) {
    case ROUTE_EXACT:
        return path_len == r->prefix_len;
    case ROUTE_BELOW:
        return path_len > r->prefix_len && path[r->prefix_len] == '/';
    case ROUTE_PREFIX:
        break;
    }
    return path_len == r->prefix_len || path[r->prefix_len] == '/';
}

const route_t *route_match(const route_table_t *table, const char *path, size_t path_len)
{
    unsigned c = path_len >= 2 ? (unsigned char)path[1] : 0;
    const route_t *const *v = table->by_byte[c];
    if (path_len < 2) { /* "" or "/": only entries of 0 or 1 bytes can match; they are in every group */
        for (size_t i = 0; i != table->num_routes; ++i)
            if (table->routes[i].prefix_len < 2 && entry_matches(&table->routes[i], path, path_len))
                return &table->routes[i];
        return NULL;
    }
    for (size_t i = 0, n = table->num_by_byte[c]; i != n; ++i)
        if (entry_matches(v[i], path, path_len))
            return v[i];
    return NULL;
}
