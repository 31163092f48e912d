/*
 * tests/unit/gateway/test_store_redirect.c — gw_store_parse_redirect(), the one parser of Redis Cluster MOVED and
 * ASK replies (the store on the event loop and `hegate user add` both use it). Pure: no Redis needed.
 */
#include "tests/unit/unit.h"
#include "gateway/store.h"

static int parse(const char *s, gw_store_redirect_t *out)
{
    memset(out, 0xa5, sizeof(*out));
    return gw_store_parse_redirect(s, strlen(s), out);
}

/* S parses, into exactly these fields (HOST "" for the node that answered) */
static void expect(const char *s, int ask, unsigned slot, const char *host, uint16_t port)
{
    gw_store_redirect_t r;
    if (parse(s, &r) != 0)
        fail_msg("refused '%s'", s);
    assert_int_equal(r.ask, ask);
    assert_int_equal(r.slot, slot);
    assert_int_equal(r.host_len, strlen(host));
    assert_memory_equal(r.host, host, r.host_len);
    assert_int_equal(r.port, port);
}

static void test_moved_with_host(void **state)
{
    expect("MOVED 3999 127.0.0.1:6381", 0, 3999, "127.0.0.1", 6381);
    expect("MOVED 0 redis-a.internal:1", 0, 0, "redis-a.internal", 1);
    expect("MOVED 16383 ::1:65535", 0, 16383, "::1", 65535); /* the last ':' ends the host */
}

static void test_ask(void **state)
{
    expect("ASK 12182 10.0.0.7:7002", 1, 12182, "10.0.0.7", 7002);
    expect("ASK 0 h:6379", 1, 0, "h", 6379);
}

static void test_empty_host_is_the_node_asked(void **state)
{
    expect("MOVED 3999 :6381", 0, 3999, "", 6381);
    expect("ASK 1 :6380", 1, 1, "", 6380);
}

static void test_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "MOVED",
        "MOVED ",
        "ASK",
        "moved 3999 127.0.0.1:6381", /* Redis writes it in capitals */
        "MOVEDX 3999 127.0.0.1:6381",
        "NOSCRIPT No matching script",
        "CLUSTERDOWN The cluster is down",
        "ERR unknown command",
        "MOVED 3999",
        "MOVED 3999127.0.0.1:6381",
        "MOVED  3999 127.0.0.1:6381", /* no slot before the second space */
        "MOVED x 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "MOVED 16384 127.0.0.1:6381", /* slots are 0..16383 */
        "MOVED 99999999999999999999999 127.0.0.1:6381",
        "ASK 3999 127.0.0.1:6381 ",
        NULL,
    };
    gw_store_redirect_t r;
    for (size_t i = 0; bad[i] != NULL; ++i) {
        if (parse(bad[i], &r) != -1)
            fail_msg("accepted '%s'", bad[i]);
    }
    /* the length is what counts, not a NUL */
    assert_int_equal(gw_store_parse_redirect("MOVED 3999 127.0.0.1:6381", 13, &r), -1);
    assert_int_equal(gw_store_parse_redirect("MOVED 3999 127.0.0.1:63819", 25, &r), 0);
    assert_int_equal(r.port, 6381);
}

static void test_overlong_host(void **state)
{
    char buf[400], host[300];
    gw_store_redirect_t r;
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    /* 255 bytes fit gw_store_addr_t.host with its NUL; 256 do not */
    snprintf(buf, sizeof(buf), "MOVED 1 %.255s:6379", host);
    host[255] = '\0';
    expect(buf, 0, 1, host, 6379);
    host[255] = 'h';
    snprintf(buf, sizeof(buf), "MOVED 1 %.256s:6379", host);
    assert_int_equal(parse(buf, &r), -1);
    snprintf(buf, sizeof(buf), "ASK 1 %s:6379", host);
    assert_int_equal(parse(buf, &r), -1);
}

static void test_missing_port(void **state)
{
    gw_store_redirect_t r;
    assert_int_equal(parse("MOVED 3999 127.0.0.1", &r), -1);
    assert_int_equal(parse("MOVED 3999 127.0.0.1:", &r), -1);
    assert_int_equal(parse("ASK 3999 :", &r), -1);
    assert_int_equal(parse("MOVED 3999 ", &r), -1);
    assert_int_equal(parse("MOVED 3999 127.0.0.1:63a1", &r), -1);
}

static void test_port_out_of_range(void **state)
{
    gw_store_redirect_t r;
    assert_int_equal(parse("MOVED 3999 127.0.0.1:0", &r), -1);
    assert_int_equal(parse("MOVED 3999 127.0.0.1:65536", &r), -1);
    assert_int_equal(parse("MOVED 3999 127.0.0.1:-1", &r), -1);
    assert_int_equal(parse("ASK 3999 :99999999999999999999", &r), -1);
    expect("MOVED 3999 127.0.0.1:65535", 0, 3999, "127.0.0.1", 65535);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moved_with_host),
        cmocka_unit_test(test_ask),
        cmocka_unit_test(test_empty_host_is_the_node_asked),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_overlong_host),
        cmocka_unit_test(test_missing_port),
        cmocka_unit_test(test_port_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
