/*
 * tests/unit/gateway/test_conf.c — the configuration loader (SPEC §2): the SPEC's own example and a file
 * with every key away from its default (each value checked), the defaults, size and duration
 * parsing, each kind of mistake with its exact "FILE:LINE: message", unknown keys at every level,
 * many errors collected in one run, relative paths, and files that are not YAML at all.
 * Run from the repo root; scratch files go to a fresh folder under /tmp.
 */
#include "tests/unit/unit.h"
#include <ftw.h>
#include <sys/stat.h>
#include "gateway/conf.h"

#define FIX "tests/unit/fixtures/conf/"
#define OK2 "issuer: https://hegate.test\nlisten: [{port: 8080}]\n" /* a valid start, two lines long */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static char dir[64];  /* the scratch folder: cert.pem, key.pem, jwks.json, sub/ */
static char cfg[128]; /* dir/c.yaml, what load_text() writes */

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static int setup(void **state)
{
    char p[160];
    strcpy(dir, "/tmp/hegate-test-conf-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cfg, sizeof(cfg), "%s/c.yaml", dir);
    snprintf(p, sizeof(p), "%s/cert.pem", dir);
    write_text(p, "not checked by the loader, only read\n");
    snprintf(p, sizeof(p), "%s/key.pem", dir);
    write_text(p, "not checked by the loader, only read\n");
    snprintf(p, sizeof(p), "%s/jwks.json", dir);
    write_text(p, "{\"keys\": []}\n");
    snprintf(p, sizeof(p), "%s/sub", dir);
    return mkdir(p, 0700);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    return nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void dump(const gw_errors_t *errs)
{
    for (size_t i = 0; i != errs->n; ++i)
        print_error("    %s\n", errs->v[i]);
}

static gw_conf_t *load_text(const char *yaml, gw_errors_t *errs)
{
    write_text(cfg, yaml);
    return gw_conf_load(cfg, errs);
}

static gw_conf_t *load_ok(const char *path)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = gw_conf_load(path, &errs);
    if (c == NULL || errs.n != 0) {
        dump(&errs);
        fail_msg("%s should load without errors", path);
    }
    return c;
}

/* loads YAML (from FILE when not NULL, else written to cfg) and compares every error, in order, with
 * EXPECTED ("LINE: message", the file name added here). Returns 0 if all match, else prints and returns -1. */
static int check_errors(const char *name, const char *file, const char *yaml, const char *const *expected, size_t n)
{
    gw_errors_t errs = {NULL, 0};
    const char *path = file != NULL ? file : cfg;
    gw_conf_t *c = file != NULL ? gw_conf_load(file, &errs) : load_text(yaml, &errs);
    int ok = c == NULL && errs.n == n;
    char want[1024];
    for (size_t i = 0; ok && i != n; ++i) {
        snprintf(want, sizeof(want), "%s:%s", path, expected[i]);
        ok = strcmp(errs.v[i], want) == 0;
    }
    if (!ok) {
        print_error("  case %s: %s, %zu error(s):\n", name, c != NULL ? "LOADED" : "refused", errs.n);
        dump(&errs);
        print_error("  expected:\n");
        for (size_t i = 0; i != n; ++i)
            print_error("    %s:%s\n", path, expected[i]);
    }
    gw_conf_free(c);
    gw_errors_clear(&errs);
    return ok ? 0 : -1;
}

/* ---- sizes, durations, methods ------------------------------------------------------------------------ */

static void test_sizes(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"512", 512},
        {"16k", 16384},
        {"16K", 16384},
        {"1m", 1048576},
        {"1M", 1048576},
        {"2g", 2147483648ull},
        {"2G", 2147483648ull},
        {"007", 7},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183g", 17179869183ull << 30},
        {"18014398509481983k", 18014398509481983ull << 10},
    };
    static const char *const bad[] = {"",
                                      "k",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1.5k",
                                      "10kb",
                                      "10 k",
                                      "1t",
                                      "0x10",
                                      "1kk",
                                      "k1",
                                      "1e3",
                                      "1b",
                                      "1KB",
                                      "1\n",
                                      "18446744073709551616",
                                      "17179869184g",
                                      "18014398509481984k",
                                      "99999999999999999999999"};
    uint64_t v;
    for (size_t i = 0; i != ARRAY_SIZE(good); ++i) {
        v = 12345;
        if (gw_parse_size(good[i].s, &v) != 0 || v != good[i].v)
            fail_msg("gw_parse_size(\"%s\") should give %llu", good[i].s, (unsigned long long)good[i].v);
    }
    for (size_t i = 0; i != ARRAY_SIZE(bad); ++i) {
        v = 12345;
        if (gw_parse_size(bad[i], &v) != -1)
            fail_msg("gw_parse_size(\"%s\") should fail", bad[i]);
        assert_int_equal(v, 12345); /* untouched on failure */
    }
    assert_int_equal(gw_parse_size(NULL, &v), -1);
}

static void test_durations(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"0", 0},
        {"10", 10000},
        {"10s", 10000},
        {"500ms", 500},
        {"0ms", 0},
        {"15m", 900000},
        {"2h", 7200000},
        {"30d", 2592000000ull},
        {"18446744073709551615ms", UINT64_MAX},
        {"18446744073709551s", 18446744073709551000ull},
        {"213503982334d", 18446744073657600000ull},
    };
    static const char *const bad[] = {"",
                                      "s",
                                      "ms",
                                      "-5s",
                                      "+5s",
                                      "1.5s",
                                      "10 s",
                                      " 10s",
                                      "5w",
                                      "5sec",
                                      "5mss",
                                      "5S",
                                      "5M",
                                      "5H",
                                      "5D",
                                      "5Ms",
                                      "5us",
                                      "1m30s",
                                      "5s ",
                                      "18446744073709552s",
                                      "213503982335d",
                                      "18446744073709551616ms",
                                      "99999999999999999999"};
    uint64_t v;
    for (size_t i = 0; i != ARRAY_SIZE(good); ++i) {
        v = 12345;
        if (gw_parse_duration(good[i].s, &v) != 0 || v != good[i].ms)
            fail_msg("gw_parse_duration(\"%s\") should give %llu ms", good[i].s, (unsigned long long)good[i].ms);
    }
    for (size_t i = 0; i != ARRAY_SIZE(bad); ++i) {
        v = 12345;
        if (gw_parse_duration(bad[i], &v) != -1)
            fail_msg("gw_parse_duration(\"%s\") should fail", bad[i]);
        assert_int_equal(v, 12345);
    }
    assert_int_equal(gw_parse_duration(NULL, &v), -1);
}

static void test_method_names(void **state)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    unsigned all = 0;
    for (size_t i = 0; i != ARRAY_SIZE(names); ++i) {
        unsigned bit = gw_method_bit(names[i], strlen(names[i]));
        assert_int_equal(bit, 1u << i);
        assert_string_equal(gw_method_name(bit), names[i]);
        all |= bit;
    }
    assert_int_equal(all, GW_M_ALL);
    assert_int_equal(gw_method_bit("GETX", 3), GW_M_GET); /* only LEN bytes are looked at */
    assert_int_equal(gw_method_bit("get", 3), 0);
    assert_int_equal(gw_method_bit("GETX", 4), 0);
    assert_int_equal(gw_method_bit("CONNECT", 7), 0);
    assert_int_equal(gw_method_bit("", 0), 0);
    assert_null(gw_method_name(GW_M_GET | GW_M_POST));
    assert_null(gw_method_name(0));
    assert_null(gw_method_name(1u << 7));
}

/* ---- whole files that load --------------------------------------------------------------------------- */

static void assert_strlist(const gw_strlist_t *l, const char *const *want, size_t n)
{
    assert_int_equal(l->n, n);
    for (size_t i = 0; i != n; ++i)
        assert_string_equal(l->v[i], want[i]);
}
#define ASSERT_LIST(l, ...)                                                                                                        \
    do {                                                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                                                          \
        assert_strlist((l), want_, ARRAY_SIZE(want_));                                                                             \
    } while (0)

static void assert_upstream(const gw_upstream_conf_t *u, const char *url, const char *host, unsigned port, const char *path)
{
    assert_string_equal(u->url, url);
    assert_string_equal(u->host, host);
    assert_int_equal(u->port, port);
    assert_string_equal(u->path, path);
}

static void test_spec_example(void **state)
{
    gw_conf_t *c = load_ok(FIX "spec.yaml");
    assert_string_equal(c->path, FIX "spec.yaml");
    assert_string_equal(c->dir, "tests/unit/fixtures/conf");
    assert_string_equal(c->issuer, "https://hegate.example");
    assert_int_equal(c->threads, 2);
    assert_int_equal(c->shutdown_timeout_ms, 10000);
    assert_int_equal(c->num_listen, 2);
    assert_string_equal(c->listen[0].host, "0.0.0.0");
    assert_int_equal(c->listen[0].port, 8443);
    assert_string_equal(c->listen[0].tls_cert, FIX "cert.pem");
    assert_string_equal(c->listen[0].tls_key, FIX "key.pem");
    assert_int_equal(c->listen[0].line, 6);
    assert_string_equal(c->listen[1].host, "0.0.0.0");
    assert_int_equal(c->listen[1].port, 8080);
    assert_null(c->listen[1].tls_cert);
    assert_null(c->listen[1].tls_key);
    assert_int_equal(c->listen[1].line, 7);
    assert_string_equal(c->admin.host, "127.0.0.1");
    assert_int_equal(c->admin.port, 9090);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c->redis.cluster.n, 0);
    assert_int_equal(c->redis.timeout_ms, 50);
    assert_string_equal(c->keys_dir, FIX "keys");
    assert_int_equal(c->limits.header_bytes, 16384);
    assert_int_equal(c->limits.body_bytes, 1048576);
    assert_int_equal(c->limits.token_bytes, 8192);
    assert_int_equal(c->tokens.access_ttl_ms, 900000);
    assert_int_equal(c->tokens.refresh_ttl_ms, 2592000000ull);
    assert_int_equal(c->tokens.session_ttl_ms, 2592000000ull);
    assert_string_equal(c->tokens.audience, "hegate");

    assert_int_equal(c->num_trusted_issuers, 1);
    assert_string_equal(c->trusted_issuers[0].issuer, "https://id.province.example");
    assert_string_equal(c->trusted_issuers[0].jwks, FIX "province-jwks.json");
    assert_string_equal(c->trusted_issuers[0].audience, "hegate");
    assert_int_equal(c->trusted_issuers[0].line, 17);

    assert_int_equal(c->num_clients, 3);
    const gw_client_conf_t *cl = &c->clients[0];
    assert_string_equal(cl->id, "hecheng-app");
    ASSERT_LIST(&cl->redirect_uris, "hecheng://oauth/callback");
    ASSERT_LIST(&cl->scopes, "openid", "profile", "appointment", "query", "service", "qr", "payment");
    ASSERT_LIST(&cl->grants, "authorization_code", "refresh_token"); /* the default */
    assert_int_equal(cl->roles.n, 0);
    assert_null(cl->secret_hash);
    assert_int_equal(cl->first_party, 1);
    assert_int_equal(cl->line, 19);
    cl = &c->clients[1];
    assert_string_equal(cl->id, "mp-partner");
    ASSERT_LIST(&cl->redirect_uris, "https://mp.partner.example/cb");
    ASSERT_LIST(&cl->scopes, "openid", "appointment", "query");
    ASSERT_LIST(&cl->grants, "authorization_code", "refresh_token");
    assert_int_equal(cl->first_party, 0);
    assert_null(cl->secret_hash);
    assert_int_equal(cl->line, 23);
    cl = &c->clients[2];
    assert_string_equal(cl->id, "gate-line1");
    assert_string_equal(cl->secret_hash, "scrypt$16384$8$1$c2FsdA$aGFzaA");
    ASSERT_LIST(&cl->grants, "client_credentials");
    ASSERT_LIST(&cl->roles, "transit");
    ASSERT_LIST(&cl->scopes, "qr.verify");
    assert_int_equal(cl->redirect_uris.n, 0);
    assert_int_equal(cl->line, 26);

    static const struct {
        const char *name;
        gw_limit_key_t key;
        uint64_t limit, window_ms, burst;
        int line;
    } policies[] = {{"per-user", GW_LIMIT_KEY_USER, 20, 1000, 40, 32},
                    {"per-client", GW_LIMIT_KEY_CLIENT, 500, 1000, 500, 33},
                    {"per-ip", GW_LIMIT_KEY_IP, 50, 1000, 50, 34},
                    {"login", GW_LIMIT_KEY_IP, 10, 60000, 10, 35}};
    assert_int_equal(c->num_rate_limits, ARRAY_SIZE(policies));
    for (size_t i = 0; i != ARRAY_SIZE(policies); ++i) {
        assert_string_equal(c->rate_limits[i].name, policies[i].name);
        assert_int_equal(c->rate_limits[i].key, policies[i].key);
        assert_int_equal(c->rate_limits[i].limit, policies[i].limit);
        assert_int_equal(c->rate_limits[i].window_ms, policies[i].window_ms);
        assert_int_equal(c->rate_limits[i].burst, policies[i].burst);
        assert_int_equal(c->rate_limits[i].line, policies[i].line);
    }
    assert_int_equal(c->on_store_down, GW_STORE_DOWN_LOCAL);
    assert_int_equal(c->nodes, 2);

    assert_int_equal(c->num_routes, 4);
    const gw_route_conf_t *r = &c->routes[0];
    assert_string_equal(r->name, "appointment");
    assert_string_equal(r->prefix, "/api/v1/appointments");
    assert_int_equal(r->methods, GW_M_GET | GW_M_POST | GW_M_DELETE);
    assert_int_equal(r->num_upstreams, 2);
    assert_upstream(&r->upstreams[0], "http://127.0.0.1:9101", "127.0.0.1", 9101, "");
    assert_upstream(&r->upstreams[1], "http://127.0.0.1:9102", "127.0.0.1", 9102, "");
    ASSERT_LIST(&r->scopes, "appointment");
    ASSERT_LIST(&r->rate_limit, "per-user", "per-client");
    assert_int_equal(r->timeout_ms, 5000);
    assert_int_equal(r->retries, 1);
    assert_int_equal(r->strip_prefix, 0);
    assert_int_equal(r->line, 39);
    static const struct {
        const char *name, *prefix, *url, *scope;
        unsigned port;
        int line;
    } flow[] = {{"query", "/api/v1/query", "http://127.0.0.1:9103", "query", 9103, 48},
                {"service", "/api/v1/services", "http://127.0.0.1:9105", "service", 9105, 49},
                {"payment", "/api/v1/payments", "http://127.0.0.1:9107", "payment", 9107, 50}};
    for (size_t i = 0; i != ARRAY_SIZE(flow); ++i) {
        r = &c->routes[i + 1];
        assert_string_equal(r->name, flow[i].name);
        assert_string_equal(r->prefix, flow[i].prefix);
        assert_int_equal(r->methods, GW_M_ALL);
        assert_int_equal(r->num_upstreams, 1);
        assert_upstream(&r->upstreams[0], flow[i].url, "127.0.0.1", flow[i].port, "");
        assert_int_equal(r->scopes.n, 1);
        assert_string_equal(r->scopes.v[0], flow[i].scope);
        assert_int_equal(r->rate_limit.n, 0);
        assert_int_equal(r->timeout_ms, 30000);
        assert_int_equal(r->retries, 0);
        assert_int_equal(r->strip_prefix, 0);
        assert_int_equal(r->line, flow[i].line);
    }
    assert_int_equal(c->qr.scenes, (1u << GW_SCENE_TRANSIT) | (1u << GW_SCENE_MEDICAL) | (1u << GW_SCENE_PAYMENT) |
                                       (1u << GW_SCENE_GOVERNMENT) | (1u << GW_SCENE_TOURISM));
    assert_int_equal(c->qr.code_ttl_ms, 60000);
    assert_int_equal(c->qr.credential_ttl_ms, 72ull * 3600000);
    assert_int_equal(c->qr.skew_ms, 20000);
    assert_string_equal(c->access_log, "-");
    gw_conf_free(c);
}

/* every key away from its default: a key read into the wrong place, or not at all, shows here */
static void test_every_key_set(void **state)
{
    gw_conf_t *c = load_ok(FIX "full.yaml");
    assert_string_equal(c->issuer, "http://localhost:8443/city");
    assert_int_equal(c->threads, 3);
    assert_int_equal(c->shutdown_timeout_ms, 2500);
    assert_int_equal(c->num_listen, 2);
    assert_string_equal(c->listen[0].host, "::1"); /* brackets dropped */
    assert_int_equal(c->listen[0].port, 8443);
    assert_string_equal(c->listen[0].tls_cert, FIX "./cert.pem");
    assert_string_equal(c->listen[0].tls_key, FIX "../conf/key.pem");
    assert_int_equal(c->listen[0].line, 7);
    assert_string_equal(c->listen[1].host, "127.0.0.1");
    assert_int_equal(c->listen[1].port, 8080);
    assert_string_equal(c->admin.host, "::1");
    assert_int_equal(c->admin.port, 9191);
    assert_null(c->redis.url); /* no default url beside a cluster */
    ASSERT_LIST(&c->redis.cluster, "redis://10.0.0.1:7000", "redis://:pw@redis-2.internal:7001");
    assert_int_equal(c->redis.timeout_ms, 75);
    assert_string_equal(c->keys_dir, "/var/lib/hegate/keys"); /* absolute: kept */
    assert_int_equal(c->limits.header_bytes, 32768);
    assert_int_equal(c->limits.body_bytes, 2097152);
    assert_int_equal(c->limits.token_bytes, 4096);
    assert_int_equal(c->tokens.access_ttl_ms, 300000);
    assert_int_equal(c->tokens.refresh_ttl_ms, 7ull * 86400000);
    assert_int_equal(c->tokens.session_ttl_ms, 12ull * 3600000);
    assert_string_equal(c->tokens.audience, "city-api");
    assert_int_equal(c->num_trusted_issuers, 2);
    assert_string_equal(c->trusted_issuers[0].issuer, "https://id.province.example/"); /* theirs may end in '/' */
    assert_string_equal(c->trusted_issuers[0].jwks, FIX "province-jwks.json");
    assert_string_equal(c->trusted_issuers[0].audience, "province");
    assert_int_equal(c->trusted_issuers[0].line, 23);
    assert_string_equal(c->trusted_issuers[1].issuer, "http://[::1]:8081");
    assert_string_equal(c->trusted_issuers[1].audience, "local");
    assert_int_equal(c->trusted_issuers[1].line, 26);
    assert_int_equal(c->num_clients, 2);
    assert_string_equal(c->clients[0].id, "kiosk");
    ASSERT_LIST(&c->clients[0].redirect_uris, "http://127.0.0.1/cb", "kiosk:/done");
    ASSERT_LIST(&c->clients[0].grants, "authorization_code");
    assert_int_equal(c->clients[0].first_party, 1);
    assert_int_equal(c->clients[0].scopes.n, 0);
    assert_string_equal(c->clients[1].id, "hospital-scanner");
    assert_string_equal(c->clients[1].secret_hash, "h");
    ASSERT_LIST(&c->clients[1].grants, "client_credentials", "refresh_token");
    ASSERT_LIST(&c->clients[1].roles, "medical", "government");
    assert_int_equal(c->clients[1].scopes.n, 0);
    assert_int_equal(c->clients[1].line, 32);
    assert_int_equal(c->num_rate_limits, 1);
    assert_string_equal(c->rate_limits[0].name, "burst-ip");
    assert_int_equal(c->rate_limits[0].key, GW_LIMIT_KEY_IP);
    assert_int_equal(c->rate_limits[0].limit, 7);
    assert_int_equal(c->rate_limits[0].window_ms, 250);
    assert_int_equal(c->rate_limits[0].burst, 1);
    assert_int_equal(c->on_store_down, GW_STORE_DOWN_CLOSED);
    assert_int_equal(c->nodes, 3);
    assert_int_equal(c->num_routes, 2);
    const gw_route_conf_t *r = &c->routes[0];
    assert_string_equal(r->name, "root");
    assert_string_equal(r->prefix, "/");
    assert_int_equal(r->methods, GW_M_HEAD | GW_M_PUT | GW_M_PATCH | GW_M_OPTIONS);
    assert_int_equal(r->num_upstreams, 3);
    assert_upstream(&r->upstreams[0], "http://[::1]:9106/svc/", "::1", 9106, "/svc");
    assert_upstream(&r->upstreams[1], "http://backend.internal", "backend.internal", 80, "");
    assert_upstream(&r->upstreams[2], "HTTP://10.1.2.3:8000/a/b", "10.1.2.3", 8000, "/a/b");
    ASSERT_LIST(&r->scopes, "openid", "x.y");
    ASSERT_LIST(&r->rate_limit, "burst-ip");
    assert_int_equal(r->timeout_ms, 250);
    assert_int_equal(r->retries, 5);
    assert_int_equal(r->strip_prefix, 1);
    assert_int_equal(r->line, 42);
    r = &c->routes[1];
    assert_string_equal(r->prefix, "/a/b"); /* trailing '/' dropped */
    assert_upstream(&r->upstreams[0], "http://h_1:1", "h_1", 1, "");
    assert_int_equal(r->scopes.n, 0); /* scopes: [] -> a public route */
    assert_int_equal(r->line, 51);
    assert_int_equal(c->qr.scenes, (1u << GW_SCENE_PAYMENT) | (1u << GW_SCENE_TOURISM));
    assert_int_equal(c->qr.code_ttl_ms, 240000);
    assert_int_equal(c->qr.credential_ttl_ms, 86400000);
    assert_int_equal(c->qr.skew_ms, 0);
    assert_string_equal(c->access_log, "off");
    gw_conf_free(c);
}

static void test_defaults(void **state)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = load_text("issuer: https://hegate.test\n"
                             "listen: [{port: 8080}]\n"
                             "clients: [{id: app, redirect_uris: [\"app:/cb\"]}]\n"
                             "rate_limits: {p: {key: client, limit: 3, window: 2}}\n"
                             "routes: [{name: a, prefix: /a, upstreams: [http://h], scopes: []}]\n",
                             &errs);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char keys[160];
    dump(&errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    assert_int_equal(c->threads, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
    assert_int_equal(c->shutdown_timeout_ms, 10000);
    assert_string_equal(c->listen[0].host, "0.0.0.0");
    assert_null(c->listen[0].tls_cert);
    assert_string_equal(c->admin.host, "127.0.0.1");
    assert_int_equal(c->admin.port, 9090);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c->redis.cluster.n, 0);
    assert_int_equal(c->redis.timeout_ms, 50);
    snprintf(keys, sizeof(keys), "%s/keys", dir); /* resolved against the file's folder */
    assert_string_equal(c->keys_dir, keys);
    assert_int_equal(c->limits.header_bytes, 16384);
    assert_int_equal(c->limits.body_bytes, 1048576);
    assert_int_equal(c->limits.token_bytes, 8192);
    assert_int_equal(c->tokens.access_ttl_ms, 900000);
    assert_int_equal(c->tokens.refresh_ttl_ms, 2592000000ull);
    assert_int_equal(c->tokens.session_ttl_ms, 2592000000ull);
    assert_string_equal(c->tokens.audience, "hegate");
    assert_int_equal(c->num_trusted_issuers, 0);
    ASSERT_LIST(&c->clients[0].grants, "authorization_code", "refresh_token");
    assert_int_equal(c->clients[0].roles.n, 0);
    assert_int_equal(c->clients[0].scopes.n, 0);
    assert_int_equal(c->clients[0].first_party, 0);
    assert_null(c->clients[0].secret_hash);
    assert_int_equal(c->rate_limits[0].key, GW_LIMIT_KEY_CLIENT);
    assert_int_equal(c->rate_limits[0].window_ms, 2000); /* a plain number is seconds */
    assert_int_equal(c->rate_limits[0].burst, 3);        /* burst defaults to limit */
    assert_int_equal(c->on_store_down, GW_STORE_DOWN_LOCAL);
    assert_int_equal(c->nodes, 1);
    const gw_route_conf_t *r = &c->routes[0];
    assert_int_equal(r->methods, GW_M_ALL);
    assert_upstream(&r->upstreams[0], "http://h", "h", 80, "");
    assert_int_equal(r->rate_limit.n, 0);
    assert_int_equal(r->timeout_ms, 30000);
    assert_int_equal(r->retries, 0);
    assert_int_equal(r->strip_prefix, 0);
    assert_int_equal(c->qr.scenes, 0x3e); /* bits 1..5: all five scenes */
    assert_int_equal(c->qr.code_ttl_ms, 60000);
    assert_int_equal(c->qr.credential_ttl_ms, 72ull * 3600000);
    assert_int_equal(c->qr.skew_ms, 20000);
    assert_string_equal(c->access_log, "-");
    gw_conf_free(c);

    /* the smallest file: no routes, clients or policies at all */
    c = load_text(OK2, &errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    assert_int_equal(c->num_routes, 0);
    assert_int_equal(c->num_clients, 0);
    assert_int_equal(c->num_rate_limits, 0);
    gw_conf_free(c);
}

static void test_relative_paths(void **state)
{
    char sub[160], yaml[512], want[200], cwd[4096];
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c;
    /* sub/c.yaml: relative paths are taken from sub/, absolute ones kept, "-"/"off" are not paths */
    snprintf(sub, sizeof(sub), "%s/sub/c.yaml", dir);
    snprintf(yaml, sizeof(yaml),
             "issuer: https://hegate.test\n"
             "listen: [{port: 8443, tls: {cert: ../cert.pem, key: %s/key.pem}}]\n"
             "trusted_issuers: [{issuer: https://id.example, jwks: ../jwks.json, audience: a}]\n"
             "keys: {dir: k}\n"
             "access_log: logs/access.log\n",
             dir);
    write_text(sub, yaml);
    c = gw_conf_load(sub, &errs);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->path, sub);
    snprintf(want, sizeof(want), "%s/sub", dir);
    assert_string_equal(c->dir, want);
    snprintf(want, sizeof(want), "%s/sub/../cert.pem", dir);
    assert_string_equal(c->listen[0].tls_cert, want);
    snprintf(want, sizeof(want), "%s/key.pem", dir);
    assert_string_equal(c->listen[0].tls_key, want);
    snprintf(want, sizeof(want), "%s/sub/../jwks.json", dir);
    assert_string_equal(c->trusted_issuers[0].jwks, want);
    snprintf(want, sizeof(want), "%s/sub/k", dir);
    assert_string_equal(c->keys_dir, want);
    snprintf(want, sizeof(want), "%s/sub/logs/access.log", dir);
    assert_string_equal(c->access_log, want);
    gw_conf_free(c);

    /* a bare file name: its folder is "." */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    write_text("c.yaml", "issuer: https://hegate.test\nlisten: [{port: 1, tls: {cert: cert.pem, key: key.pem}}]\n");
    c = gw_conf_load("c.yaml", &errs);
    assert_int_equal(chdir(cwd), 0);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->dir, ".");
    assert_string_equal(c->listen[0].tls_cert, "./cert.pem");
    assert_string_equal(c->keys_dir, "./keys");
    gw_conf_free(c);
    gw_errors_clear(&errs);
}

static void test_hosts_and_addresses(void **state)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = load_text("issuer: https://hegate.test\n"
                             "listen: [{host: '::', port: 8080}, {host: localhost, port: 8081}, {host: '0.0.0.0', port: 8082}]\n"
                             "admin: {listen: '9091'}\n"
                             "redis: {url: 'unix:/run/redis.sock'}\n"
                             "routes: [{name: a, prefix: /a, upstreams: ['http://[2001:db8::1]/', 'http://a.b-c.d:65535/x//'], "
                             "scopes: []}]\n",
                             &errs);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->listen[0].host, "::");
    assert_string_equal(c->listen[1].host, "localhost");
    assert_string_equal(c->admin.host, "127.0.0.1"); /* a bare port is on the loopback */
    assert_int_equal(c->admin.port, 9091);
    assert_string_equal(c->redis.url, "unix:/run/redis.sock");
    assert_upstream(&c->routes[0].upstreams[0], "http://[2001:db8::1]/", "2001:db8::1", 80, "");
    assert_upstream(&c->routes[0].upstreams[1], "http://a.b-c.d:65535/x//", "a.b-c.d", 65535, "/x");
    gw_conf_free(c);

    c = load_text(OK2 "admin: {listen: 'off'}\n", &errs);
    assert_non_null(c);
    assert_int_equal(c->admin.port, 0); /* no admin listener */
    gw_conf_free(c);

    c = load_text(OK2 "admin: {listen: 'localhost:9095'}\n", &errs);
    assert_non_null(c);
    assert_string_equal(c->admin.host, "localhost");
    assert_int_equal(c->admin.port, 9095);
    gw_conf_free(c);
    assert_int_equal(errs.n, 0);
}

/* ---- mistakes, one at a time: exactly one error each, with its line ----------------------------------- */

typedef struct {
    const char *yaml;
    const char *error; /* "LINE: message" */
} mistake_t;

static int check_mistakes(const mistake_t *cases, size_t n)
{
    int failures = 0;
    for (size_t i = 0; i != n; ++i) {
        char name[16];
        snprintf(name, sizeof(name), "#%zu", i);
        failures -= check_errors(name, NULL, cases[i].yaml, &cases[i].error, 1);
    }
    return failures;
}

static void test_mistakes_top_level(void **state)
{
    static const mistake_t cases[] = {
        {"listen: [{port: 8080}]\n", "1: key 'issuer' is required"},
        {"issuer: https://hegate.test/\nlisten: [{port: 1}]\n",
         "1: issuer 'https://hegate.test/' must not end with '/' (discovery URLs are appended to it)"},
        {"issuer: hegate.test\nlisten: [{port: 1}]\n", "1: issuer 'hegate.test' must be an https:// (or http://) URL"},
        {"issuer: https://hegate.test?a=1\nlisten: [{port: 1}]\n",
         "1: issuer 'https://hegate.test?a=1' must not have a query or a fragment"},
        {"issuer: https://me@hegate.test\nlisten: [{port: 1}]\n",
         "1: issuer 'https://me@hegate.test' must not contain user information (user@)"},
        {"issuer: 'https://'\nlisten: [{port: 1}]\n",
         "1: issuer 'https://' has an invalid host (an IP address, [IPv6 address] or DNS name)"},
        {"issuer: [https://hegate.test]\nlisten: [{port: 1}]\n", "1: issuer must be a single value, not a list"},
        {"issuer: \"https://hegate.test\\0x\"\nlisten: [{port: 1}]\n", "1: issuer must not contain a NUL character"},
        {"issuer: ''\nlisten: [{port: 1}]\n", "1: issuer must not be empty"},
        {"issuer: https://hegate.test\n", "1: key 'listen' is required"},
        {OK2 "issuer: https://other.test\n", "3: duplicate key 'issuer' in the file (first on line 1)"},
        {OK2 "? [a]\n: 1\n", "3: keys in the file must be plain names, not a list"},
        {OK2 "threads: 65\n", "3: threads must be a whole number from 1 to 64 (got '65')"},
        {OK2 "threads: 0\n", "3: threads must be a whole number from 1 to 64 (got '0')"},
        {OK2 "threads: two\n", "3: threads must be a whole number from 1 to 64 (got 'two')"},
        {OK2 "shutdown_timeout: 0\n", "3: shutdown_timeout must be greater than 0"},
        {OK2 "shutdown_timeout: 1 minute\n",
         "3: shutdown_timeout must be a duration such as 500ms, 10s, 15m, 2h or 30d (got '1 minute')"},
        {OK2 "admin: {listen: nowhere}\n",
         "3: admin.listen 'nowhere' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off"},
        {OK2 "admin: {listen: '::1:9090'}\n",
         "3: admin.listen '::1:9090' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off"},
        {OK2 "admin: {listen: '127.0.0.1:0'}\n",
         "3: admin.listen '127.0.0.1:0' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off"},
        {OK2 "admin: {listen: 127.0.0.1:8080}\n", "2: listen: port 8080 is also the admin port (admin.listen)"},
        {OK2 "admin: 9090\n", "3: admin must be a mapping of keys to values, not a value"},
        {OK2 "redis: {url: http://r}\n", "3: redis.url must start with redis:// or unix:"},
        /* a Redis URL may hold a password: messages never repeat it */
        {OK2 "redis: {url: 'redis://:s3cret@'}\n", "3: redis.url has an invalid host (an IP address, [IPv6 address] or DNS name)"},
        {OK2 "redis: {url: 'rediss://:s3cret@r'}\n", "3: redis.url uses rediss:// (TLS), which this build does not support"},
        {OK2 "redis: {url: 'redis://:s3cret@r/x'}\n", "3: redis.url has an invalid database number (redis://host:port/N)"},
        {OK2 "redis: {url: 'unix:'}\n", "3: redis.url has no socket path after unix:"},
        {OK2 "redis: {url: redis://a, cluster: [redis://b]}\n", "3: redis: give either url or cluster, not both"},
        {OK2 "redis:\n  cluster:\n    - redis://a:7000\n    - unix:/s3cret.sock\n",
         "6: redis.cluster: entry 2 must start with redis://"},
        {OK2 "redis: {cluster: [redis://a, redis://a]}\n", "3: redis.cluster: entry 2 is listed twice"},
        {OK2 "redis: {cluster: []}\n", "3: redis.cluster must not be empty"},
        {OK2 "redis: {timeout: 0ms}\n", "3: redis.timeout must be greater than 0"},
        {OK2 "keys: {dir: ''}\n", "3: keys.dir must not be empty"},
        {OK2 "limits: {body_bytes: 0}\n", "3: limits.body_bytes must be greater than 0"},
        {OK2 "limits: {body_bytes: 2g}\n", "3: limits.body_bytes must be at most 1g"},
        {OK2 "limits: {header_bytes: 16kb}\n", "3: limits.header_bytes must be a size such as 512, 16k, 1m or 1g (got '16kb')"},
        {OK2 "limits: {token_bytes: 99999999999999999999}\n",
         "3: limits.token_bytes must be a size such as 512, 16k, 1m or 1g (got '99999999999999999999')"},
        {OK2 "limits: {body_bytes: 1m, body_bytes: 2m}\n", "3: duplicate key 'body_bytes' in limits (first on line 3)"},
        {OK2 "tokens: {access_ttl: 500ms}\n", "3: tokens.access_ttl must be at least 1s"},
        {OK2 "tokens: {audience: [a]}\n", "3: tokens.audience must be a single value, not a list"},
        {OK2 "tokens: {device_ttl: 11m}\n", "3: tokens.device_ttl must be at most 10m"},
        {OK2 "tokens: {device_ttl: 5s}\n", "3: tokens.device_ttl must be at least 10s"},
        {OK2 "on_store_down: maybe\n", "3: on_store_down must be local, open or closed (got 'maybe')"},
        {OK2 "nodes: 0\n", "3: nodes must be a whole number from 1 to 1024 (got '0')"},
        {OK2 "access_log: ''\n", "3: access_log must not be empty"},
        {OK2 "qr: {code_ttl: 5m}\n", "3: qr.code_ttl must be at most 255s"},
        {OK2 "qr: {code_ttl: 1500ms}\n", "3: qr.code_ttl must be whole seconds (the code carries it as one byte of seconds)"},
        {OK2 "qr: {code_ttl: 0}\n", "3: qr.code_ttl must be at least 1s"},
        {OK2 "qr: {credential_ttl: 0}\n", "3: qr.credential_ttl must be at least 1s"},
        {OK2 "qr: {skew: soon}\n", "3: qr.skew must be a duration such as 500ms, 10s, 15m, 2h or 30d (got 'soon')"},
        {OK2 "qr:\n  scenes:\n    - transit\n    - space\n",
         "6: qr.scenes: unknown value 'space' (expected transit, medical, payment, government or tourism)"},
    };
    assert_int_equal(check_mistakes(cases, ARRAY_SIZE(cases)), 0);
}

static void test_mistakes_listen(void **state)
{
    static const mistake_t cases[] = {
        {"issuer: https://hegate.test\nlisten: []\n", "2: listen must name at least one listener"},
        {"issuer: https://hegate.test\nlisten: {port: 8080}\n", "2: listen must be a list, not a mapping"},
        {"issuer: https://hegate.test\nlisten:\n  - port: 70000\n",
         "3: listen.port must be a whole number from 1 to 65535 (got '70000')"},
        {"issuer: https://hegate.test\nlisten:\n  - port: 0\n", "3: listen.port must be a whole number from 1 to 65535 (got '0')"},
        {"issuer: https://hegate.test\nlisten:\n  - host: 127.0.0.1\n", "3: listen: key 'port' is required"},
        {"issuer: https://hegate.test\nlisten:\n  - 8080\n", "3: listen must be a mapping of keys to values, not a value"},
        {"issuer: https://hegate.test\nlisten:\n  - {port: 8080, host: 'no such host'}\n",
         "3: listen.host 'no such host' is not an IP address or a host name"},
        {"issuer: https://hegate.test\nlisten:\n  - {port: 8080, host: 256.0.0.1}\n",
         "3: listen.host '256.0.0.1' is not an IP address or a host name"},
        {"issuer: https://hegate.test\nlisten:\n  - port: 8443\n    tls:\n      cert: cert.pem\n",
         "5: listen.tls: key 'key' is required"},
        {"issuer: https://hegate.test\nlisten:\n  - port: 8080\n  - {port: 8080, host: 0.0.0.0}\n",
         "4: listen: 0.0.0.0 port 8080 is already listed on line 3"},
    };
    int failures = check_mistakes(cases, ARRAY_SIZE(cases));
    /* files named by the config must be readable regular files: the message names the resolved path */
    char yaml[512], want[512];
    const char *w = want;
    snprintf(yaml, sizeof(yaml),
             "issuer: https://hegate.test\nlisten:\n  - port: 8443\n    tls: {cert: cert.pem, key: nope.pem}\n");
    snprintf(want, sizeof(want), "4: listen.tls.key '%s/nope.pem' cannot be read: No such file or directory", dir);
    failures -= check_errors("unreadable key", NULL, yaml, &w, 1);
    snprintf(yaml, sizeof(yaml), "issuer: https://hegate.test\nlisten:\n  - port: 8443\n    tls: {cert: sub, key: key.pem}\n");
    snprintf(want, sizeof(want), "4: listen.tls.cert '%s/sub' is not a regular file", dir);
    failures -= check_errors("directory as cert", NULL, yaml, &w, 1);
    snprintf(yaml, sizeof(yaml), OK2 "trusted_issuers:\n  - {issuer: https://id.example, jwks: gone.json, audience: a}\n");
    snprintf(want, sizeof(want), "4: trusted_issuer.jwks '%s/gone.json' cannot be read: No such file or directory", dir);
    failures -= check_errors("unreadable jwks", NULL, yaml, &w, 1);
    assert_int_equal(failures, 0);
}

static void test_mistakes_trusted_issuers_and_clients(void **state)
{
    static const mistake_t cases[] = {
        {OK2 "trusted_issuers:\n  - {issuer: https://id.example, audience: a}\n", "4: trusted_issuer: key 'jwks' is required"},
        {OK2 "trusted_issuers:\n  - {jwks: jwks.json, audience: a}\n", "4: trusted_issuer: key 'issuer' is required"},
        {OK2 "trusted_issuers:\n  - {issuer: id.example, jwks: jwks.json, audience: a}\n",
         "4: trusted_issuer.issuer 'id.example' must be an https:// (or http://) URL"},
        {OK2 "trusted_issuers:\n  - {issuer: https://hegate.test, jwks: jwks.json, audience: a}\n",
         "4: trusted_issuer 'https://hegate.test' is this gateway's own issuer"},
        {OK2 "trusted_issuers:\n  - {issuer: https://id.example, jwks: jwks.json, audience: a}\n"
             "  - {issuer: https://id.example, jwks: jwks.json, audience: b}\n",
         "5: trusted_issuer 'https://id.example' is already listed on line 4"},
        {OK2 "trusted_issuers: {issuer: https://id.example}\n", "3: trusted_issuers must be a list, not a mapping"},
        {OK2 "clients:\n  - {redirect_uris: [\"app:/cb\"]}\n", "4: client: key 'id' is required"},
        {OK2 "clients:\n  - {id: a, redirect_uris: [\"app:/cb\"]}\n  - {id: a, redirect_uris: [\"app:/cb\"]}\n",
         "5: client 'a' is already defined on line 4"},
        {OK2 "clients:\n  - {id: gate, grants: [client_credentials]}\n",
         "4: client 'gate': grant client_credentials needs a secret_hash (a confidential client)"},
        {OK2 "clients:\n  - id: app\n    scopes: [openid]\n",
         "4: client 'app': redirect_uris are required for the authorization_code grant"},
        {OK2 "clients:\n  - {id: app, redirect_uris: []}\n",
         "4: client 'app': redirect_uris are required for the authorization_code grant"},
        {OK2 "clients:\n  - {id: g, secret_hash: h, grants: [client_credentials], roles: [pilot]}\n",
         "4: client.roles: unknown value 'pilot' (expected transit, medical, merchant, government or tourism)"},
        {OK2 "clients:\n  - {id: g, secret_hash: h, grants: [password]}\n",
         "4: client.grants: unknown value 'password' (expected authorization_code, refresh_token, client_credentials or device_code)"},
        {OK2 "clients:\n  - {id: g, secret_hash: h, grants: []}\n", "4: client.grants must not be empty"},
        {OK2 "clients:\n  - {id: kiosk, grants: [device_code]}\n",
         "4: client 'kiosk': grant device_code needs a name (shown when a resident approves it)"},
        {OK2 "clients:\n  - {id: kiosk, grants: [device_code], name: \"a\\tb\"}\n",
         "4: client.name 'a\tb' must be UTF-8 text without control characters"},
        {OK2 "clients:\n  - {id: mp, redirect_uris: [\"app:/cb\"], backchannel_logout_uri: \"http://rp.example/bcl\"}\n",
         "4: client.backchannel_logout_uri 'http://rp.example/bcl' must use https:// unless its host is a loopback address "
         "(127.0.0.0/8, [::1], localhost)"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [\"https://a.example/cb#x\"]}\n",
         "4: client.redirect_uris 'https://a.example/cb#x' must not have a fragment (RFC 6749 §3.1.2)"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [/cb]}\n", "4: client.redirect_uris '/cb' is not an absolute URI (scheme:rest)"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [\"app:/c b\"]}\n",
         "4: client.redirect_uris 'app:/c b' must not contain spaces, control or non-ASCII characters"},
        {OK2 "clients:\n  - id: g\n    redirect_uris: [\"app:/cb\"]\n    scopes:\n      - openid\n      - \"a b\"\n",
         "8: client.scopes 'a b' is not a valid scope (printable ASCII without spaces, '\"' or '\\', RFC 6749 §3.3)"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [\"app:/cb\"], scopes: [openid, openid]}\n",
         "4: client.scopes: 'openid' is listed twice"},
        {OK2 "clients:\n  - {id: \"a:b\", redirect_uris: [\"app:/cb\"]}\n",
         "4: client.id 'a:b' is not a valid client id (1 to 128 printable ASCII characters, no space, ':', '\"' or '\\')"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [\"app:/cb\"], secret_hash: ''}\n", "4: client.secret_hash must not be empty"},
        {OK2 "clients:\n  - {id: g, redirect_uris: [\"app:/cb\"], first_party: maybe}\n",
         "4: client.first_party must be true or false (got 'maybe')"},
        {OK2 "clients:\n  - {id: g, redirect_uris: app:/cb}\n", "4: client.redirect_uris must be a list, not a value"},
    };
    assert_int_equal(check_mistakes(cases, ARRAY_SIZE(cases)), 0);
}

static void test_mistakes_rate_limits(void **state)
{
    static const mistake_t cases[] = {
        {OK2 "rate_limits:\n  p: {limit: 1, window: 1s}\n", "4: rate_limits.p: key 'key' is required"},
        {OK2 "rate_limits:\n  p: {key: ip, window: 1s}\n", "4: rate_limits.p: key 'limit' is required"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1}\n", "4: rate_limits.p: key 'window' is required"},
        {OK2 "rate_limits:\n  p: {key: planet, limit: 1, window: 1s}\n",
         "4: rate_limits.p.key must be user, client or ip (got 'planet')"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 0, window: 1s}\n",
         "4: rate_limits.p.limit must be a whole number from 1 to 1099511627776 (got '0')"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: -3, window: 1s}\n",
         "4: rate_limits.p.limit must be a whole number from 1 to 1099511627776 (got '-3')"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1, window: 0s}\n", "4: rate_limits.p.window must be greater than 0"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1, window: 1s, burst: 0}\n",
         "4: rate_limits.p.burst must be a whole number from 1 to 1099511627776 (got '0')"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1, window: 1s, brust: 2}\n", "4: unknown key 'brust' in rate_limits.p"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1, window: 30d, burst: 1000000}\n",
         "4: rate_limits.p: burst x window is too large"},
        {OK2 "rate_limits:\n  per ip: {key: ip, limit: 1, window: 1s}\n",
         "4: rate limit name 'per ip' is not a valid name (1 to 64 of A-Z a-z 0-9 . _ -)"},
        {OK2 "rate_limits:\n  p: {key: ip, limit: 1, window: 1s}\n  p: {key: ip, limit: 2, window: 1s}\n",
         "5: rate limit 'p' is already defined on line 4"},
        {OK2 "rate_limits: [p]\n", "3: rate_limits must be a mapping of policy names to policies, not a list"},
        {OK2 "rate_limits:\n  p: 5\n", "4: rate_limits.p must be a mapping of keys to values, not a value"},
    };
    assert_int_equal(check_mistakes(cases, ARRAY_SIZE(cases)), 0);
}

#define ROUTE(rest) OK2 "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: []" rest "}\n"
#define UPSTREAM(u) OK2 "routes:\n  - {name: a, prefix: /a, scopes: [], upstreams: [" u "]}\n"

static void test_mistakes_routes(void **state)
{
    static const mistake_t cases[] = {
        {OK2 "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1]}\n",
         "4: route: key 'scopes' is required (write scopes: [] for a public route)"},
        {OK2 "routes:\n  - {prefix: /a, upstreams: [http://h:1], scopes: []}\n", "4: route: key 'name' is required"},
        {OK2 "routes:\n  - {name: a, upstreams: [http://h:1], scopes: []}\n", "4: route: key 'prefix' is required"},
        {OK2 "routes:\n  - {name: a, prefix: /a, scopes: []}\n", "4: route: key 'upstreams' is required"},
        {OK2 "routes: {name: a}\n", "3: routes must be a list, not a mapping"},
        {ROUTE(", colour: red"), "4: unknown key 'colour' in route"},
        {ROUTE(", name: b"), "4: duplicate key 'name' in route (first on line 4)"},
        {OK2 "routes:\n  - {name: 'a b', prefix: /a, upstreams: [http://h:1], scopes: []}\n",
         "4: route.name 'a b' is not a valid name (1 to 64 of A-Z a-z 0-9 . _ -)"},
        {OK2 "routes:\n  - {name: a, prefix: api, upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix 'api' must start with '/'"},
        {OK2 "routes:\n  - {name: a, prefix: /a//b, upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix '/a//b' must not contain '//'"},
        {OK2 "routes:\n  - {name: a, prefix: /a/../b, upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix '/a/../b' must not contain '.' or '..' segments"},
        {OK2 "routes:\n  - {name: a, prefix: /a/., upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix '/a/.' must not contain '.' or '..' segments"},
        {OK2 "routes:\n  - {name: a, prefix: '/a b', upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix '/a b' must not contain spaces, control or non-ASCII characters"},
        {OK2 "routes:\n  - {name: a, prefix: '/a?x=1', upstreams: [http://h:1], scopes: []}\n",
         "4: route.prefix '/a?x=1' must not have a query or a fragment"},
        {UPSTREAM(""), "4: route.upstreams must list from 1 to 256 upstreams"},
        {UPSTREAM("ftp://h"), "4: route.upstreams 'ftp://h' must be an http://host[:port][/path] URL"},
        {UPSTREAM("https://h"), "4: route.upstreams 'https://h' is https://: upstreams are reached over cleartext http:// only"},
        {UPSTREAM("http://h:0"), "4: route.upstreams 'http://h:0' has an invalid port (1-65535)"},
        {UPSTREAM("http://h:65536"), "4: route.upstreams 'http://h:65536' has an invalid port (1-65535)"},
        {UPSTREAM("'http://h:'"), "4: route.upstreams 'http://h:' has an invalid port (1-65535)"},
        {UPSTREAM("http://-h:1"),
         "4: route.upstreams 'http://-h:1' has an invalid host (an IP address, [IPv6 address] or DNS name)"},
        {UPSTREAM("http://999.1.1.1"),
         "4: route.upstreams 'http://999.1.1.1' has an invalid host (an IP address, [IPv6 address] or DNS name)"},
        {UPSTREAM("'http://'"), "4: route.upstreams 'http://' has an invalid host (an IP address, [IPv6 address] or DNS name)"},
        {UPSTREAM("'http://[zz]:1'"), "4: route.upstreams 'http://[zz]:1' has an invalid [IPv6 address]"},
        {UPSTREAM("'http://[::1]x'"), "4: route.upstreams 'http://[::1]x' has something unexpected after the [IPv6 address]"},
        {UPSTREAM("'http://u:p@h'"), "4: route.upstreams 'http://u:p@h' must not contain user information (user@)"},
        {UPSTREAM("'http://h:1/x?y'"), "4: route.upstreams 'http://h:1/x?y' must not have a query or a fragment"},
        {UPSTREAM("http://h:1, http://h:1"), "4: route.upstreams: 'http://h:1' is listed twice"},
        {ROUTE(", methods: [GET, BREW]"),
         "4: route.methods: unknown value 'BREW' (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)"},
        {ROUTE(", methods: [get]"),
         "4: route.methods: unknown value 'get' (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)"},
        {ROUTE(", methods: []"), "4: route.methods must not be empty"},
        {ROUTE(", methods: GET"), "4: route.methods must be a list, not a value"},
        {ROUTE(", scopes2: []"), "4: unknown key 'scopes2' in route"},
        {OK2 "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: ['a\"b']}\n",
         "4: route.scopes 'a\"b' is not a valid scope (printable ASCII without spaces, '\"' or '\\', RFC 6749 §3.3)"},
        {OK2 "routes:\n  - name: a\n    prefix: /a\n    upstreams: [http://h:1]\n    scopes: []\n    rate_limit:\n      - nope\n",
         "9: route.rate_limit: 'nope' is not defined in rate_limits"},
        {OK2
         "rate_limits: {p1: {key: ip, limit: 1, window: 1}, p2: {key: ip, limit: 1, window: 1}, p3: {key: ip, limit: 1, window: 1},"
         " p4: {key: ip, limit: 1, window: 1}, p5: {key: ip, limit: 1, window: 1}, p6: {key: ip, limit: 1, window: 1},"
         " p7: {key: ip, limit: 1, window: 1}, p8: {key: ip, limit: 1, window: 1}, p9: {key: ip, limit: 1, window: 1}}\n"
         "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: [],\n"
         "     rate_limit: [p1, p2, p3, p4, p5, p6, p7, p8, p9]}\n",
         "6: route.rate_limit: a route may name at most 8 policies"},
        {ROUTE(", retries: 9"), "4: route.retries must be a whole number from 0 to 5 (got '9')"},
        {ROUTE(", timeout: 0"), "4: route.timeout must be greater than 0"},
        {ROUTE(", timeout: soon"), "4: route.timeout must be a duration such as 500ms, 10s, 15m, 2h or 30d (got 'soon')"},
        {ROUTE(", strip_prefix: maybe"), "4: route.strip_prefix must be true or false (got 'maybe')"},
        {OK2 "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: []}\n"
             "  - {name: b, prefix: /a/, upstreams: [http://h:1], scopes: []}\n",
         "5: route prefix '/a' is already used on line 4"},
        {OK2 "routes:\n  - {name: a, prefix: /a, upstreams: [http://h:1], scopes: []}\n"
             "  - {name: a, prefix: /b, upstreams: [http://h:1], scopes: []}\n",
         "5: route name 'a' is already used on line 4"},
    };
    assert_int_equal(check_mistakes(cases, ARRAY_SIZE(cases)), 0);
}

/* ---- whole files with many mistakes -------------------------------------------------------------------- */

static void test_unknown_keys_everywhere(void **state)
{
    static const char *const want[] = {
        "2: unknown key 'colour' at the top level",
        "4: unknown key 'chain' in listen.tls",
        "5: unknown key 'backlog' in listen",
        "6: unknown key 'user' in admin",
        "7: unknown key 'pool' in redis",
        "8: unknown key 'rotate' in keys",
        "9: unknown key 'uri_bytes' in limits",
        "10: unknown key 'id_ttl' in tokens",
        "12: unknown key 'alg' in trusted_issuer",
        "14: unknown key 'secret' in client",
        "16: unknown key 'brust' in rate_limits.p",
        "22: unknown key 'retires' in route",
        "23: unknown key 'ttl' in qr",
    };
    assert_int_equal(check_errors("unknown.yaml", FIX "unknown.yaml", NULL, want, ARRAY_SIZE(want)), 0);
}

static void test_many_errors_in_one_run(void **state)
{
    static const char *const want[] = {
        "1: issuer 'https://hegate.example/' must not end with '/' (discovery URLs are appended to it)",
        "3: listen.port must be a whole number from 1 to 65535 (got '70000')",
        "4: listen.tls: key 'key' is required",
        "5: admin.listen 'nowhere' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off",
        "6: unknown key 'bogus' at the top level",
        "7: limits.header_bytes must be a size such as 512, 16k, 1m or 1g (got '16q')",
        "9: rate_limits.per-ip.key must be user, client or ip (got 'planet')",
        "11: client 'gate': grant client_credentials needs a secret_hash (a confidential client)",
        "14: route.prefix 'api' must start with '/'",
        "15: route.upstreams 'ftp://x' must be an http://host[:port][/path] URL",
        "17: route.rate_limit: 'missing' is not defined in rate_limits",
        "18: route.methods: unknown value 'BREW' (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)",
        "19: route: key 'scopes' is required (write scopes: [] for a public route)",
        "19: route name 'a' is already used on line 13",
        "22: route.timeout must be a duration such as 500ms, 10s, 15m, 2h or 30d (got 'soon')",
        "22: unknown key 'extra' in route",
        "23: tokens.access_ttl must be a duration such as 500ms, 10s, 15m, 2h or 30d (got '-5s')",
        "24: qr.code_ttl must be at most 255s",
    };
    assert_int_equal(check_errors("bad.yaml", FIX "bad.yaml", NULL, want, ARRAY_SIZE(want)), 0);

    /* both keys of an empty tls, and an empty route: every missing key is named */
    static const char *const want2[] = {
        "4: listen.tls: key 'cert' is required", "4: listen.tls: key 'key' is required",
        "6: route: key 'name' is required",      "6: route: key 'prefix' is required",
        "6: route: key 'upstreams' is required", "6: route: key 'scopes' is required (write scopes: [] for a public route)",
    };
    assert_int_equal(check_errors("empty maps", NULL,
                                  "issuer: https://hegate.test\nlisten:\n  - port: 8443\n    tls: {}\nroutes:\n  - {}\n", want2,
                                  ARRAY_SIZE(want2)),
                     0);
}

/* errors are appended to what the list already holds; a good load adds nothing */
static void test_errors_list(void **state)
{
    gw_errors_t errs = {NULL, 0};
    char *first = strdup("earlier: kept");
    errs.v = malloc(sizeof(*errs.v));
    errs.v[0] = first;
    errs.n = 1;
    assert_null(load_text("issuer: https://hegate.test\nthreads: 0\n", &errs));
    assert_int_equal(errs.n, 3);
    assert_string_equal(errs.v[0], "earlier: kept");
    gw_conf_t *c = load_text(OK2, &errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 3);
    gw_conf_free(c);
    gw_errors_clear(&errs);
    assert_int_equal(errs.n, 0);
    assert_null(errs.v);
    gw_errors_clear(&errs); /* twice is fine */
    gw_conf_free(NULL);
}

/* ---- files that are not a config at all ------------------------------------------------------------------ */

static void test_not_yaml(void **state)
{
    static const mistake_t cases[] = {
        {"issuer: https://hegate.test\nlisten: [ {port: 1}\n",
         "3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence that starts on line 2)"},
        {"issuer: \"https://hegate.test\nlisten: 1\n",
         "3: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar that starts on line 1)"},
        {"issuer: https://hegate.test\nlisten:\n  - port: 1\n bad: 2\n",
         "4: YAML syntax error: did not find expected key (while parsing a block mapping that starts on line 1)"},
        {OK2 "nodes: \xff\n", "3: YAML syntax error: invalid leading UTF-8 octet"},
        {OK2 "nodes: *n\n", "3: YAML syntax error: found undefined alias"},
        {OK2 "---\nissuer: https://other.test\n", "3: only one YAML document may be in the file"},
        {"", "1: the file is empty: it should be a mapping of keys to values (SPEC §2)"},
        {"# only a comment\n", "1: the file is empty: it should be a mapping of keys to values (SPEC §2)"},
        {"- issuer: https://hegate.test\n", "1: the file must be a mapping of keys to values, not a list"},
        {"hegate\n", "1: the file must be a mapping of keys to values, not a value"},
    };
    int failures = check_mistakes(cases, ARRAY_SIZE(cases));
    static const char *const syntax[] = {
        "3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence that starts on line 2)"};
    failures -= check_errors("syntax.yaml", FIX "syntax.yaml", NULL, syntax, 1);

    /* a file that cannot be read at all: line 0 stands for the file as a whole */
    static const char *const missing[] = {"0: cannot open: No such file or directory"};
    failures -= check_errors("missing", "/nonexistent/hegate.yaml", NULL, missing, 1);
    static const char *const isdir[] = {"0: cannot read: Is a directory"};
    failures -= check_errors("directory", dir, NULL, isdir, 1);
    assert_int_equal(failures, 0);
}

static void test_size_bounds(void **state)
{
    /* more than 4 MiB: refused before parsing */
    size_t big = (4u << 20) + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    write_bytes(cfg, text, big);
    free(text);
    static const char *const too_big[] = {"0: the file is larger than 4194304 bytes"};
    int failures = -check_errors("4 MiB + 1", cfg, NULL, too_big, 1);

    /* aliases re-used many times: the work is bounded, not the file */
    size_t cap = 4 << 20, n = 0;
    text = malloc(cap);
    assert_non_null(text);
    n +=
        (size_t)snprintf(text + n, cap - n, OK2 "clients:\n  - {id: g, secret_hash: h, grants: [client_credentials], scopes: &l [");
    for (int i = 0; i != 256; ++i)
        n += (size_t)snprintf(text + n, cap - n, "%ss%d", i ? ", " : "", i);
    n += (size_t)snprintf(text + n, cap - n, "]}\nroutes:\n");
    for (int i = 0; i != 1100; ++i)
        n += (size_t)snprintf(text + n, cap - n, "  - {name: r%d, prefix: /r%d, upstreams: [http://h], scopes: *l}\n", i, i);
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *c = load_text(text, &errs);
    free(text);
    assert_null(c);
    int found = 0;
    for (size_t i = 0; i != errs.n; ++i)
        found |= strstr(errs.v[i], ": the file holds too many values (more than 249999, counting every use of an alias)") != NULL;
    if (!found) {
        dump(&errs);
        failures++;
    }
    gw_errors_clear(&errs);

    /* shapes that make libyaml itself slow (quadratic) are refused by a first, cheap pass */
    text = malloc(cap);
    assert_non_null(text);
    memset(text, '[', cap - 1);
    text[cap - 1] = '\0';
    static const char *const deep[] = {"1: lists and mappings are nested more than 32 deep"};
    failures -= check_errors("4 MiB of '['", NULL, text, deep, 1);
    n = (size_t)snprintf(text, cap, OK2 "x:\n");
    for (int i = 0; i != 101; ++i)
        n += (size_t)snprintf(text + n, cap - n, "  - &a%d v\n", i);
    static const char *const anchors[] = {"104: the file has more than 100 anchors (&name)"};
    failures -= check_errors("101 anchors", NULL, text, anchors, 1);
    n = (size_t)snprintf(text, cap, OK2 "x: [&a v");
    for (int i = 0; i != 10001; ++i)
        n += (size_t)snprintf(text + n, cap - n, ", *a");
    snprintf(text + n, cap - n, "]\n");
    static const char *const aliases[] = {"3: the file has more than 10000 aliases (*name)"};
    failures -= check_errors("10001 aliases", NULL, text, aliases, 1);
    /* 32 levels are fine: the top mapping and 31 lists (refused for the unknown key only) */
    n = (size_t)snprintf(text, cap, OK2 "x: ");
    for (int i = 0; i != 31; ++i)
        text[n++] = '[';
    for (int i = 0; i != 31; ++i)
        text[n++] = ']';
    snprintf(text + n, cap - n, "\n");
    static const char *const fine[] = {"3: unknown key 'x' at the top level"};
    failures -= check_errors("32 levels", NULL, text, fine, 1);
    free(text);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_every_key_set),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_hosts_and_addresses),
        cmocka_unit_test(test_mistakes_top_level),
        cmocka_unit_test(test_mistakes_listen),
        cmocka_unit_test(test_mistakes_trusted_issuers_and_clients),
        cmocka_unit_test(test_mistakes_rate_limits),
        cmocka_unit_test(test_mistakes_routes),
        cmocka_unit_test(test_unknown_keys_everywhere),
        cmocka_unit_test(test_many_errors_in_one_run),
        cmocka_unit_test(test_errors_list),
        cmocka_unit_test(test_not_yaml),
        cmocka_unit_test(test_size_bounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
