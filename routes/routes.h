/*
 * routes/routes.h — the route table: built once from the parsed config, then read-only.
 *
 * route_match() finds the route for a (normalized) request path: the longest `prefix` that
 * matches at a '/' boundary ("/api/v1/query" matches "/api/v1/query" and "/api/v1/query/x",
 * never "/api/v1/queryx"). Method filtering is a separate step (route_allows) so that the
 * pipeline can answer 405 with an `Allow` list. No allocation on the match path.
 */
#ifndef hegate_routes_h
#define hegate_routes_h

#include <stddef.h>
#include "gateway/conf.h"

typedef struct {
    const gw_route_conf_t *conf; /* name, prefix, methods, upstreams, scopes, policies ... */
    size_t prefix_len;
    size_t index;                /* position in the config's route list */
} route_t;

typedef struct {
    route_t *routes; /* sorted by prefix length, longest first */
    size_t num_routes;
} route_table_t;

/* Builds the table from the config's routes (which it references, not copies). NULL on allocation failure. */
route_table_t *route_table_create(const gw_conf_t *conf);
void route_table_free(route_table_t *table);

/* The route whose prefix is the longest match of PATH at a '/' boundary, or NULL. PATH has no query. */
const route_t *route_match(const route_table_t *table, const char *path, size_t path_len);

/* Whether the route accepts METHOD (e.g. "GET"). */
int route_allows(const route_t *route, const char *method, size_t method_len);

/* Writes the route's methods as an `Allow` value ("GET, POST") into BUF; returns the length (0 if BUFSZ too small). */
size_t route_allow_header(const route_t *route, char *buf, size_t bufsz);

#endif
