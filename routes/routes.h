/*
 * routes/routes.h — the match table: built once per configuration generation, then read-only.
 *
 * One table holds every place a request can go: the configured routes and the gateway's own
 * endpoint families. route_match() finds the entry for a (normalized) request path, longest
 * prefix first, at '/' boundaries ("/api/v1/query" matches "/api/v1/query" and "/api/v1/query/x",
 * never "/api/v1/queryx"); an entry may instead match its path exactly, or only what lies below it.
 * Entries are opaque to this folder: the caller's INDEX says what an entry stands for, METHODS is
 * the caller's bit set. Depends on nothing but libc. No allocation on the match path.
 */
#ifndef hegate_routes_h
#define hegate_routes_h

#include <stddef.h>

typedef enum {
    ROUTE_PREFIX, /* the path and everything below it (a "/" prefix matches every path) */
    ROUTE_EXACT,  /* the path itself only */
    ROUTE_BELOW   /* only paths below it: "/oauth2" matches "/oauth2/" and "/oauth2/x", not "/oauth2" */
} route_kind_t;

typedef struct {
    const char *prefix; /* referenced, not copied: it must outlive the table */
    size_t prefix_len;  /* set by route_table_create */
    route_kind_t kind;
    unsigned methods; /* the methods the entry accepts, as the caller's bit set */
    size_t index;     /* the caller's own index (route_table_create keeps it) */
} route_t;

typedef struct {
    route_t *routes; /* sorted by prefix length, longest first; equal lengths in the order given */
    size_t num_routes;
    /* per second path byte (path[1]): the entries that can match such a path, in table order */
    const route_t **by_byte[256];
    size_t num_by_byte[256];
} route_table_t;

/* Builds a table from N entries (copied; their prefixes referenced). NULL on allocation failure. */
route_table_t *route_table_create(const route_t *entries, size_t n);
void route_table_free(route_table_t *table);

/* The entry that is the longest match of PATH, or NULL. PATH has no query. */
const route_t *route_match(const route_table_t *table, const char *path, size_t path_len);

/* Whether the entry accepts the method whose bit is METHOD_BIT (0: an unknown method). */
static inline int route_allows(const route_t *route, unsigned method_bit)
{
    return (route->methods & method_bit) != 0;
}

#endif
