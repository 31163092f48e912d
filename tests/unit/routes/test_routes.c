/*
 * tests/unit/routes/test_routes.c — the match table: longest prefix at '/' boundaries, exact and below-only
 * entries (the gateway's own endpoint families), methods, and the Allow list the pipeline writes.
 */
#include "tests/unit/unit.h"
#include "gateway/gateway.h"
#include "routes/routes.h"

typedef struct {
    const char *name, *prefix;
    unsigned methods;
    route_kind_t kind;
} entry_t;

static const entry_t routes[] = {
    {"query", "/api/v1/query", GW_M_GET},
    {"query-special", "/api/v1/query/special", GW_M_GET | GW_M_POST},
    {"appointments", "/api/v1/appointments", GW_M_GET | GW_M_POST | GW_M_DELETE},
    {"api", "/api", GW_M_ALL},
};

static const entry_t *table_entries;

static route_table_t *make_table(const entry_t *e, size_t n)
{
    route_t v[16];
    for (size_t i = 0; i != n; ++i)
        v[i] = (route_t){.prefix = e[i].prefix, .kind = e[i].kind, .methods = e[i].methods, .index = i};
    table_entries = e;
    return route_table_create(v, n);
}

static const char *match(route_table_t *t, const char *path)
{
    const route_t *r = route_match(t, path, strlen(path));
    return r != NULL ? table_entries[r->index].name : NULL;
}

static void test_longest_prefix_wins(void **state)
{
    route_table_t *t = make_table(routes, 4);
    assert_string_equal(match(t, "/api/v1/query"), "query");
    assert_string_equal(match(t, "/api/v1/query/fund"), "query");
    assert_string_equal(match(t, "/api/v1/query/special"), "query-special");
    assert_string_equal(match(t, "/api/v1/query/special/x"), "query-special");
    assert_string_equal(match(t, "/api/v1/query/specialx"), "query");
    assert_string_equal(match(t, "/api/v1/appointments/42"), "appointments");
    route_table_free(t);
}

static void test_boundary(void **state)
{
    route_table_t *t = make_table(routes, 4);
    /* "/api/v1/queryx" is not under "/api/v1/query": falls back to the next prefix that matches */
    assert_string_equal(match(t, "/api/v1/queryx"), "api");
    assert_string_equal(match(t, "/api"), "api");
    assert_string_equal(match(t, "/api/"), "api");
    assert_null(match(t, "/apix"));
    assert_null(match(t, "/"));
    assert_null(match(t, ""));
    assert_null(match(t, "/ap"));
    route_table_free(t);
}

static void test_only_specific(void **state)
{
    route_table_t *t = make_table(routes, 1);
    assert_null(match(t, "/api/v1/queryx"));
    assert_null(match(t, "/api/v1/quer"));
    assert_null(match(t, "/API/V1/QUERY")); /* paths are case-sensitive */
    assert_string_equal(match(t, "/api/v1/query/"), "query");
    route_table_free(t);
}

static void test_root_prefix(void **state)
{
    static const entry_t r[] = {{"root", "/", GW_M_GET}, {"a", "/a", GW_M_GET}};
    route_table_t *t = make_table(r, 2);
    assert_string_equal(match(t, "/"), "root");
    assert_string_equal(match(t, "/anything"), "root");
    assert_string_equal(match(t, "/a/b"), "a");
    assert_string_equal(match(t, "/ab"), "root");
    assert_string_equal(match(t, "/zzz"), "root"); /* in every second-byte group */
    route_table_free(t);
}

static void test_methods_and_allow(void **state)
{
    route_table_t *t = make_table(routes, 4);
    const route_t *r = route_match(t, "/api/v1/appointments", 20);
    assert_non_null(r);
    assert_true(route_allows(r, gw_method_bit("GET", 3)));
    assert_true(route_allows(r, gw_method_bit("DELETE", 6)));
    assert_false(route_allows(r, gw_method_bit("PUT", 3)));
    assert_false(route_allows(r, gw_method_bit("get", 3)));
    assert_false(route_allows(r, gw_method_bit("BREW", 4)));
    char buf[64];
    assert_int_equal(gw_allow_header(r->methods, buf, sizeof(buf)), strlen("GET, POST, DELETE"));
    assert_string_equal(buf, "GET, POST, DELETE");
    assert_int_equal(gw_allow_header(r->methods, buf, 8), 0); /* too small: says so, never truncates */
    route_table_free(t);
}

static void test_same_length_keeps_config_order(void **state)
{
    static const entry_t r[] = {{"b", "/bb", GW_M_GET}, {"a", "/aa", GW_M_GET}};
    route_table_t *t = make_table(r, 2);
    assert_string_equal(match(t, "/aa"), "a");
    assert_string_equal(match(t, "/bb/x"), "b");
    assert_int_equal(t->routes[0].index, 0);
    route_table_free(t);
}

/* the gateway's own families: exact endpoints, a folder endpoint, the family's 404 below its prefix */
static void test_exact_and_below(void **state)
{
    static const entry_t r[] = {
        {"catch-all", "/", GW_M_ALL, ROUTE_PREFIX},        {"token", "/oauth2/token", GW_M_POST, ROUTE_EXACT},
        {"oauth2", "/oauth2", GW_M_ALL, ROUTE_BELOW},      {"code-image", "/qr/v1/codes", GW_M_GET, ROUTE_BELOW},
        {"codes", "/qr/v1/codes", GW_M_POST, ROUTE_EXACT}, {"wk", "/.well-known/jwks.json", GW_M_GET, ROUTE_EXACT},
    };
    route_table_t *t = make_table(r, 6);
    assert_string_equal(match(t, "/oauth2/token"), "token");
    assert_string_equal(match(t, "/oauth2/token/x"), "oauth2"); /* exact means exact */
    assert_string_equal(match(t, "/oauth2/tokenx"), "oauth2");
    assert_string_equal(match(t, "/oauth2/"), "oauth2");
    assert_string_equal(match(t, "/oauth2"), "catch-all"); /* below-only: not the prefix itself */
    assert_string_equal(match(t, "/oauth2x"), "catch-all");
    assert_string_equal(match(t, "/qr/v1/codes"), "codes");
    assert_string_equal(match(t, "/qr/v1/codes/transit.png"), "code-image");
    assert_string_equal(match(t, "/qr/v1/codesx"), "catch-all");
    assert_string_equal(match(t, "/.well-known/jwks.json"), "wk");
    assert_string_equal(match(t, "/.well-known/other"), "catch-all");
    route_table_free(t);
}

/* grouping by the second path byte changes nothing: every entry is found exactly as by a full scan */
static void test_groups_agree_with_scan(void **state)
{
    static const entry_t r[] = {
        {"a", "/a", GW_M_GET},
        {"ab", "/ab/c", GW_M_GET},
        {"q", "/qr/v1", GW_M_GET, ROUTE_BELOW},
        {"x", "/x", GW_M_GET},
        {"z", "/z/z/z", GW_M_GET},
        {"e", "/e", GW_M_GET, ROUTE_EXACT},
        {"u", "/\xc3\xa9t\xc3\xa9", GW_M_GET},
    };
    route_table_t *t = make_table(r, 7);
    const char *paths[] = {"/a",       "/a/",  "/ab/c",    "/ab/c/d", "/ab",  "/qr/v1",
                           "/qr/v1/x", "/x/y", "/z/z/z/1", "/e",      "/e/",  "/\xc3\xa9t\xc3\xa9/x",
                           "/",        "",     "/b",       "//",      "/\xff"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        size_t len = strlen(paths[i]);
        const route_t *best = NULL;
        for (size_t k = 0; k != t->num_routes; ++k) { /* the reference: the first full-scan match */
            const route_t *e = &t->routes[k];
            if (e->prefix_len > len || memcmp(e->prefix, paths[i], e->prefix_len) != 0)
                continue;
            int ok = e->kind == ROUTE_EXACT   ? len == e->prefix_len
                     : e->kind == ROUTE_BELOW ? len > e->prefix_len && paths[i][e->prefix_len] == '/'
                                              : len == e->prefix_len || paths[i][e->prefix_len] == '/';
            if (ok) {
                best = e;
                break;
            }
        }
        assert_ptr_equal(route_match(t, paths[i], len), best);
    }
    route_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_longest_prefix_wins), cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_only_specific),       cmocka_unit_test(test_root_prefix),
        cmocka_unit_test(test_methods_and_allow),   cmocka_unit_test(test_same_length_keeps_config_order),
        cmocka_unit_test(test_exact_and_below),     cmocka_unit_test(test_groups_agree_with_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
