/*
 * tests/unit/gateway/test_hygiene.c — header hygiene (SPEC §3): untrusted identity and forwarding
 * headers are removed, everything else is kept in order; request-id validation; head size.
 */
#include "tests/unit/unit.h"
#include "gateway/gateway.h"

static h2o_mem_pool_t pool;

static void add(h2o_headers_t *h, const char *name, const char *value)
{
    h2o_add_header_by_str(&pool, h, name, strlen(name), 1, NULL, value, strlen(value));
}

static int has(h2o_headers_t *h, const char *name)
{
    return h2o_find_header_by_str(h, name, strlen(name), -1) != -1;
}

static void test_strip(void **state)
{
    h2o_mem_init_pool(&pool);
    h2o_headers_t h = {NULL};
    add(&h, "accept", "application/json");
    add(&h, "x-hegate-sub", "attacker");
    add(&h, "x-hegate-scope", "payment");
    add(&h, "x-hegate-anything-new", "1");
    add(&h, "x-forwarded-for", "6.6.6.6");
    add(&h, "x-forwarded-proto", "https");
    add(&h, "x-forwarded-host", "evil");
    add(&h, "forwarded", "for=6.6.6.6");
    add(&h, "x-real-ip", "6.6.6.6");
    add(&h, "authorization", "Bearer abc");
    add(&h, "x-hegatex", "kept: not the x-hegate- prefix");
    add(&h, "forwarded-by", "kept: not exactly 'forwarded'");
    add(&h, "x-request-id", "abc");
    gw_hygiene_strip(&h);
    assert_int_equal(h.size, 5);
    assert_false(has(&h, "x-hegate-sub"));
    assert_false(has(&h, "x-hegate-scope"));
    assert_false(has(&h, "x-hegate-anything-new"));
    assert_false(has(&h, "x-forwarded-for"));
    assert_false(has(&h, "x-forwarded-proto"));
    assert_false(has(&h, "x-forwarded-host"));
    assert_false(has(&h, "forwarded"));
    assert_false(has(&h, "x-real-ip"));
    /* order of what is kept is preserved */
    assert_memory_equal(h.entries[0].name->base, "accept", 6);
    assert_memory_equal(h.entries[1].name->base, "authorization", 13);
    assert_memory_equal(h.entries[2].name->base, "x-hegatex", 9);
    assert_memory_equal(h.entries[3].name->base, "forwarded-by", 12);
    assert_memory_equal(h.entries[4].name->base, "x-request-id", 12);
    h2o_mem_clear_pool(&pool);
}

static void test_strip_all_and_none(void **state)
{
    h2o_mem_init_pool(&pool);
    h2o_headers_t h = {NULL};
    gw_hygiene_strip(&h);
    assert_int_equal(h.size, 0);
    add(&h, "x-forwarded-for", "1");
    add(&h, "x-hegate-client", "2");
    gw_hygiene_strip(&h);
    assert_int_equal(h.size, 0);
    h2o_mem_clear_pool(&pool);
}

static void test_request_id(void **state)
{
    assert_true(gw_request_id_is_valid("abc-123_X.y", 11));
    char id[65];
    memset(id, 'a', 64);
    assert_true(gw_request_id_is_valid(id, 64));
    memset(id, 'a', 65);
    assert_false(gw_request_id_is_valid(id, 65));
    assert_false(gw_request_id_is_valid("", 0));
    assert_false(gw_request_id_is_valid("a b", 3));
    assert_false(gw_request_id_is_valid("a\"b", 3));
    assert_false(gw_request_id_is_valid("a\nb", 3));
    assert_false(gw_request_id_is_valid("ключ", strlen("ключ")));
    assert_false(gw_request_id_is_valid("a/b", 3));
}

static void test_head_bytes(void **state)
{
    h2o_mem_init_pool(&pool);
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    req.input.method = h2o_iovec_init(H2O_STRLIT("GET"));
    req.input.path = h2o_iovec_init(H2O_STRLIT("/api/v1/query"));
    req.input.authority = h2o_iovec_init(H2O_STRLIT("example"));
    add(&req.headers, "accept", "x");
    assert_int_equal(gw_request_head_bytes(&req), 3 + 13 + 7 + 6 + 1);
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_strip_all_and_none),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_head_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
