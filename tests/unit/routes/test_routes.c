/*
 * tests/unit/routes/test_routes.c — route matching: longest prefix at '/' boundaries, methods, Allow.
 */
#include "tests/unit/unit.h"
#include "routes/routes.h"

static gw_route_conf_t routes[] = {
    {.name = "query", .prefix = "/api/v1/query", .methods = GW_M_GET},
    {.name = "query-special", .prefix = "/api/v1/query/special", .methods = GW_M_GET | GW_M_POST},
    {.name = "appointments", .prefix = "/api/v1/appointments", .methods = GW_M_GET | GW_M_POST | GW_M_DELETE},
    {.name = "api", .prefix = "/api", .methods = GW_M_ALL},
};

static route_table_t *make_table(gw_route_conf_t *r, size_t n)
{
    static gw_conf_t conf;
    conf.routes = r;
    conf.num_routes = n;
    return route_table_create(&conf);
}

static const char *match(route_table_t *t, const char *path)
{
    const route_t *r = route_match(t, path, strlen(path));
    return r != NULL ? r->conf->name : NULL;
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
    gw_route_conf_t r[] = {{.name = "root", .prefix = "/", .methods = GW_M_GET}, {.name = "a", .prefix = "/a", .methods = GW_M_GET}};
    route_table_t *t = make_table(r, 2);
    assert_string_equal(match(t, "/"), "root");
    assert_string_equal(match(t, "/anything"), "root");
    assert_string_equal(match(t, "/a/b"), "a");
    assert_string_equal(match(t, "/ab"), "root");
    route_table_free(t);
}

static void test_methods_and_allow(void **state)
{
    route_table_t *t = make_table(routes, 4);
    const route_t *r = route_match(t, "/api/v1/appointments", 20);
    assert_non_null(r);
    assert_true(route_allows(r, "GET", 3));
    assert_true(route_allows(r, "DELETE", 6));
    assert_false(route_allows(r, "PUT", 3));
    assert_false(route_allows(r, "get", 3));
    assert_false(route_allows(r, "BREW", 4));
    char buf[64];
    assert_int_equal(route_allow_header(r, buf, sizeof(buf)), strlen("GET, POST, DELETE"));
    assert_string_equal(buf, "GET, POST, DELETE");
    assert_int_equal(route_allow_header(r, buf, 8), 0); /* too small: says so, never truncates */
    route_table_free(t);
}

static void test_same_length_keeps_config_order(void **state)
{
    gw_route_conf_t r[] = {{.name = "b", .prefix = "/bb", .methods = GW_M_GET}, {.name = "a", .prefix = "/aa", .methods = GW_M_GET}};
    route_table_t *t = make_table(r, 2);
    assert_string_equal(match(t, "/aa"), "a");
    assert_string_equal(match(t, "/bb/x"), "b");
    assert_int_equal(t->routes[0].index, 0);
    route_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_longest_prefix_wins), cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_only_specific),       cmocka_unit_test(test_root_prefix),
        cmocka_unit_test(test_methods_and_allow),   cmocka_unit_test(test_same_length_keeps_config_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
