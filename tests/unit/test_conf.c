/*
 * tests/unit/test_conf.c — the configuration loader (SPEC §2): every value of a full file,
 * defaults, size and duration parsing, and each kind of mistake reported with its own line.
 */
#include "tests/unit/unit.h"
#include "gateway/conf.h"

#define FIX "tests/unit/fixtures/conf/"

static void test_sizes(void **state)
{
    uint64_t v;
    assert_int_equal(gw_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(gw_parse_size("16k", &v), 0);
    assert_int_equal(v, 16384);
    assert_int_equal(gw_parse_size("1m", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(gw_parse_size("2G", &v), 0);
    assert_int_equal(v, 2147483648ull);
    const char *bad[] = {"", "k", "-1", "1.5k", "10kb", "10 k", "1t", "99999999999999999999", "17179869184g", NULL};
    for (const char **b = bad; *b != NULL; ++b)
        assert_int_equal(gw_parse_size(*b, &v), -1);
    assert_int_equal(gw_parse_size(NULL, &v), -1);
}

static void test_durations(void **state)
{
    uint64_t v;
    assert_int_equal(gw_parse_duration("500ms", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(gw_parse_duration("10", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(gw_parse_duration("10s", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(gw_parse_duration("15m", &v), 0);
    assert_int_equal(v, 900000);
    assert_int_equal(gw_parse_duration("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(gw_parse_duration("30d", &v), 0);
    assert_int_equal(v, 2592000000ull);
    const char *bad[] = {"", "s", "-5s", "1.5s", "10 s", "5w", "5sec", "5mss", "18446744073709551615d", NULL};
    for (const char **b = bad; *b != NULL; ++b)
        assert_int_equal(gw_parse_duration(*b, &v), -1);
}

static void test_full(void **state)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = gw_conf_load(FIX "full.yaml", &errs);
    for (size_t i = 0; i != errs.n; ++i)
        print_error("%s\n", errs.v[i]);
    assert_non_null(c);
    assert_string_equal(c->issuer, "https://hegate.example");
    assert_int_equal(c->threads, 3);
    assert_int_equal(c->shutdown_timeout_ms, 7000);
    assert_int_equal(c->num_listen, 2);
    assert_string_equal(c->listen[0].host, "0.0.0.0");
    assert_int_equal(c->listen[0].port, 8443);
    assert_string_equal(c->listen[0].tls_cert, FIX "cert.pem");
    assert_string_equal(c->listen[0].tls_key, FIX "key.pem");
    assert_string_equal(c->listen[1].host, "127.0.0.1");
    assert_null(c->listen[1].tls_cert);
    assert_string_equal(c->admin.host, "127.0.0.1");
    assert_int_equal(c->admin.port, 9191);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6379/2");
    assert_int_equal(c->redis.timeout_ms, 75);
    assert_string_equal(c->keys_dir, FIX "keys");
    assert_int_equal(c->limits.header_bytes, 16384);
    assert_int_equal(c->limits.body_bytes, 1048576);
    assert_int_equal(c->limits.token_bytes, 8192);
    assert_int_equal(c->tokens.access_ttl_ms, 900000);
    assert_int_equal(c->tokens.refresh_ttl_ms, 2592000000ull);
    assert_int_equal(c->tokens.session_ttl_ms, 7200000);
    assert_string_equal(c->tokens.audience, "city");
    assert_int_equal(c->num_clients, 2);
    assert_string_equal(c->clients[0].id, "hecheng-app");
    assert_int_equal(c->clients[0].first_party, 1);
    assert_int_equal(c->clients[0].scopes.n, 7);
    assert_string_equal(c->clients[0].grants.v[0], "authorization_code"); /* default grants */
    assert_string_equal(c->clients[0].grants.v[1], "refresh_token");
    assert_null(c->clients[0].secret_hash);
    assert_string_equal(c->clients[1].grants.v[0], "client_credentials");
    assert_string_equal(c->clients[1].roles.v[0], "transit");
    assert_int_equal(c->num_rate_limits, 3);
    assert_string_equal(c->rate_limits[0].name, "per-user");
    assert_int_equal(c->rate_limits[0].key, GW_LIMIT_KEY_USER);
    assert_int_equal(c->rate_limits[0].limit, 20);
    assert_int_equal(c->rate_limits[0].window_ms, 1000);
    assert_int_equal(c->rate_limits[0].burst, 40);
    assert_int_equal(c->rate_limits[1].key, GW_LIMIT_KEY_IP);
    assert_int_equal(c->rate_limits[1].burst, 50); /* default burst = limit */
    assert_int_equal(c->rate_limits[2].window_ms, 60000);
    assert_int_equal(c->on_store_down, GW_STORE_DOWN_CLOSED);
    assert_int_equal(c->nodes, 2);
    assert_int_equal(c->num_routes, 2);
    const gw_route_conf_t *r = &c->routes[0];
    assert_string_equal(r->name, "appointment");
    assert_string_equal(r->prefix, "/api/v1/appointments"); /* trailing '/' dropped */
    assert_int_equal(r->methods, GW_M_GET | GW_M_POST | GW_M_DELETE);
    assert_int_equal(r->num_upstreams, 2);
    assert_string_equal(r->upstreams[0].host, "127.0.0.1");
    assert_int_equal(r->upstreams[0].port, 9101);
    assert_string_equal(r->upstreams[0].path, "");
    assert_string_equal(r->upstreams[1].host, "10.0.0.2");
    assert_string_equal(r->upstreams[1].path, "/base");
    assert_int_equal(r->scopes.n, 1);
    assert_int_equal(r->rate_limit.n, 2);
    assert_int_equal(r->timeout_ms, 5000);
    assert_int_equal(r->retries, 1);
    assert_int_equal(r->strip_prefix, 1);
    assert_int_equal(r->line, 31);
    r = &c->routes[1];
    assert_int_equal(r->methods, GW_M_ALL);
    assert_int_equal(r->timeout_ms, 30000);
    assert_int_equal(r->scopes.n, 0);
    assert_int_equal(r->retries, 0);
    assert_int_equal(c->qr.scenes, (1u << GW_SCENE_TRANSIT) | (1u << GW_SCENE_MEDICAL));
    assert_int_equal(c->qr.code_ttl_ms, 90000);
    assert_int_equal(c->qr.credential_ttl_ms, 72ull * 3600000);
    assert_int_equal(c->qr.skew_ms, 0);
    assert_string_equal(c->access_log, FIX "logs/access.log");
    gw_conf_free(c);
}

static int has_error(gw_errors_t *errs, const char *prefix, const char *needle)
{
    for (size_t i = 0; i != errs->n; ++i)
        if (strncmp(errs->v[i], prefix, strlen(prefix)) == 0 && strstr(errs->v[i], needle) != NULL)
            return 1;
    return 0;
}

static void test_bad_collects_every_error_with_its_line(void **state)
{
    gw_errors_t errs = {NULL, 0};
    assert_null(gw_conf_load(FIX "bad.yaml", &errs));
#define EXPECT(line, needle)                                                                                                   \
    do {                                                                                                                       \
        if (!has_error(&errs, FIX "bad.yaml:" #line ": ", needle)) {                                                           \
            for (size_t i = 0; i != errs.n; ++i)                                                                               \
                print_error("  %s\n", errs.v[i]);                                                                              \
            fail_msg("missing error at line %d: %s", line, needle);                                                            \
        }                                                                                                                      \
    } while (0)
    EXPECT(3, "listen.port must be a whole number from 1 to 65535");
    EXPECT(4, "admin.listen must be HOST:PORT");
    EXPECT(5, "unknown key 'bogus'");
    EXPECT(6, "limits.header_bytes must be a size");
    EXPECT(8, "key must be user, client or ip");
    EXPECT(10, "rate_limit 'missing' is not defined");
    EXPECT(11, "route prefix must be a path starting with '/'");
    EXPECT(12, "ftp://x");
    EXPECT(15, "unknown method 'BREW'");
    EXPECT(16, "route name 'a' is used twice");
    EXPECT(16, "scopes is required");
    EXPECT(19, "route timeout must be a duration");
    EXPECT(19, "unknown key 'extra' in route");
    EXPECT(20, "tokens.access_ttl must be a duration");
    assert_int_equal(errs.n, 14);
    gw_errors_clear(&errs);
    assert_int_equal(errs.n, 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* one small file per mistake: the message and the line it names */
static void test_single_mistakes(void **state)
{
    static const struct {
        const char *yaml;
        int line;
        const char *needle;
    } cases[] = {
        {"listen: [{port: 1}]\n", 1, "issuer is required"},
        {"issuer: https://x/\nlisten: [{port: 1}]\n", 1, "without a trailing '/'"},
        {"issuer: https://x\n", 1, "at least one listener"},
        {"issuer: https://x\nlisten: [{port: 1, tls: {cert: nope.pem, key: nope.pem}}]\n", 2, "cannot be read"},
        {"issuer: https://x\nlisten: [{port: 1, tls: {cert: " FIX "cert.pem}}]\n", 2, "needs both cert and key"},
        {"issuer: https://x\nlisten: [{port: 1}, {port: 1}]\n", 2, "listed twice"},
        {"issuer: https://x\nlisten: [{port: 1}]\nredis: {url: http://x}\n", 3, "must start with redis://"},
        {"issuer: https://x\nlisten: [{port: 1}]\nredis: {url: redis://a, cluster: [redis://b]}\n", 3, "either url or cluster"},
        {"issuer: https://x\nlisten: [{port: 1}]\non_store_down: maybe\n", 3, "local, open or closed"},
        {"issuer: https://x\nlisten: [{port: 1}]\nthreads: 0\n", 3, "threads must be a whole number"},
        {"issuer: https://x\nlisten: [{port: 1}]\nclients:\n  - {id: a, grants: [client_credentials]}\n", 4,
         "needs a secret_hash"},
        {"issuer: https://x\nlisten: [{port: 1}]\nclients:\n  - {id: a}\n", 4, "redirect_uris are required"},
        {"issuer: https://x\nlisten: [{port: 1}]\nclients:\n  - {id: a, roles: [pilot], grants: [client_credentials], secret_hash: "
         "h}\n",
         4, "unknown value 'pilot'"},
        {"issuer: https://x\nlisten: [{port: 1}]\nrate_limits:\n  p: {limit: 1, window: 1s}\n", 4, "key is required"},
        {"issuer: https://x\nlisten: [{port: 1}]\nrate_limits:\n  p: {key: ip, limit: 0, window: 1s}\n", 4,
         "rate_limits.limit must be"},
        {"issuer: https://x\nlisten: [{port: 1}]\nqr: {code_ttl: 5m}\n", 3, "at most 255s"},
        {"issuer: https://x\nlisten: [{port: 1}]\nqr: {scenes: [space]}\n", 3, "unknown value 'space'"},
        {"issuer: https://x\nlisten: [{port: 1}]\nroutes:\n  - {name: a, prefix: /a, upstreams: [], scopes: []}\n", 4,
         "upstreams must not be empty"},
        {"issuer: https://x\nlisten: [{port: 1}]\nroutes:\n  - {name: a, prefix: /a, upstreams: [http://h:0], scopes: []}\n", 4,
         "http://host:port"},
        {"issuer: https://x\nlisten: [{port: 1}]\nroutes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: [], "
         "retries: 9}\n",
         4, "route retries must be"},
        {"issuer: https://x\nlisten: [{port: 1}]\nroutes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: []}\n  - "
         "{name: b, prefix: /a/, upstreams: [http://h:1], scopes: []}\n",
         5, "prefix '/a' is used twice"},
        {"issuer: https://x\nlisten: [{port: 1}]\nlimits: {body_bytes: 0}\n", 3, "limits.body_bytes must be a size"},
        {"issuer: https://x\nlisten: [{port: 1}]\nissuer: https://y\n", 3, "duplicate key 'issuer'"},
        {"issuer: https://x\nlisten: {port: 1}\n", 2, "listen must be a list"},
        {"issuer: [a]\nlisten: [{port: 1}]\n", 1, "issuer must be a single value"},
        {"", 1, "the file is empty"},
        {"issuer: https://x\nlisten: [ {port: 1}\n", 3, "YAML syntax error"},
    };
    char path[] = "/tmp/hegate-test-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        write_file(path, cases[i].yaml);
        gw_errors_t errs = {NULL, 0};
        gw_conf_t *c = gw_conf_load(path, &errs);
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "%s:%d: ", path, cases[i].line);
        if (c != NULL || !has_error(&errs, prefix, cases[i].needle)) {
            for (size_t j = 0; j != errs.n; ++j)
                print_error("  %s\n", errs.v[j]);
            fail_msg("case %zu: expected '%s%s'", i, prefix, cases[i].needle);
        }
        gw_errors_clear(&errs);
    }
    close(fd);
    unlink(path);
}

static void test_defaults(void **state)
{
    char path[] = "/tmp/hegate-test-conf-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_file(path, "issuer: https://x\nlisten: [{port: 8080}]\nroutes:\n  - {name: a, prefix: /, upstreams: [http://h], "
                     "scopes: []}\n");
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = gw_conf_load(path, &errs);
    assert_non_null(c);
    assert_true(c->threads >= 1);
    assert_int_equal(c->shutdown_timeout_ms, 10000);
    assert_string_equal(c->admin.host, "127.0.0.1");
    assert_int_equal(c->admin.port, 9090);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c->redis.timeout_ms, 50);
    assert_string_equal(c->keys_dir, "/tmp/keys");
    assert_int_equal(c->limits.header_bytes, 16384);
    assert_int_equal(c->limits.body_bytes, 1048576);
    assert_int_equal(c->limits.token_bytes, 8192);
    assert_int_equal(c->tokens.access_ttl_ms, 900000);
    assert_string_equal(c->tokens.audience, "hegate");
    assert_int_equal(c->on_store_down, GW_STORE_DOWN_LOCAL);
    assert_int_equal(c->nodes, 1);
    assert_int_equal(c->qr.code_ttl_ms, 60000);
    assert_int_equal(c->qr.skew_ms, 20000);
    assert_string_equal(c->access_log, "-");
    assert_string_equal(c->routes[0].prefix, "/");
    assert_int_equal(c->routes[0].upstreams[0].port, 80);
    gw_conf_free(c);
    unlink(path);
}

static void test_missing_file(void **state)
{
    gw_errors_t errs = {NULL, 0};
    assert_null(gw_conf_load("/nonexistent/hegate.yaml", &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.v[0], "/nonexistent/hegate.yaml:0: cannot open"));
    gw_errors_clear(&errs);
}

static void test_method_names(void **state)
{
    assert_int_equal(gw_method_bit("GET", 3), GW_M_GET);
    assert_int_equal(gw_method_bit("OPTIONS", 7), GW_M_OPTIONS);
    assert_int_equal(gw_method_bit("get", 3), 0);
    assert_int_equal(gw_method_bit("GETX", 4), 0);
    assert_string_equal(gw_method_name(GW_M_PATCH), "PATCH");
    assert_null(gw_method_name(GW_M_GET | GW_M_POST));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),         cmocka_unit_test(test_durations),
        cmocka_unit_test(test_full),          cmocka_unit_test(test_bad_collects_every_error_with_its_line),
        cmocka_unit_test(test_single_mistakes), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_missing_file),  cmocka_unit_test(test_method_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
