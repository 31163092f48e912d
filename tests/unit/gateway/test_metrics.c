/*
 * tests/unit/gateway/test_metrics.c — gateway/metrics.c: route and label slots (stable, distinct,
 * bounded), per-thread counters summed by gw_metrics_render, whose Prometheus text is parsed back:
 * exact request counts by route and code, the latency histogram (bucket edges, cumulative buckets,
 * +Inf == _count == requests, _sum), upstream errors by kind, the labelled families, the rate
 * limiter's store-less answers counted as store errors, and the exposition format of every line.
 * The metrics are process-wide, so each test uses route names of its own.
 */
#include "tests/unit/unit.h"
#include <pthread.h>
#include "gateway/gateway.h"

/* the value of the sample SERIES (name and labels exactly as rendered), or -1 when absent */
static double sample(const char *text, const char *series)
{
    size_t sl = strlen(series);
    for (const char *line = text; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        if (eol == NULL)
            eol = line + strlen(line);
        if ((size_t)(eol - line) > sl && memcmp(line, series, sl) == 0 && line[sl] == ' ')
            return strtod(line + sl + 1, NULL);
        line = *eol == '\n' ? eol + 1 : eol;
    }
    return -1;
}

static char *render(void)
{
    size_t len;
    char *text = gw_metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static double sample_of(const char *series)
{
    char *text = render();
    double v = sample(text, series);
    free(text);
    return v;
}

static void test_route_slots_are_stable_and_distinct(void **state)
{
    unsigned a = gw_metrics_route_slot("slots-a"), b = gw_metrics_route_slot("slots-b");
    assert_int_not_equal(a, 0); /* slot 0 is "no route" */
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(gw_metrics_route_slot("slots-a"), a);
    assert_int_equal(gw_metrics_route_slot("slots-b"), b);
}

static void test_requests_counted_exactly_by_route_and_code_across_threads(void **state)
{
    gw_metrics_t *t1 = gw_metrics_thread_create(), *t2 = gw_metrics_thread_create();
    unsigned r = gw_metrics_route_slot("count-r"), q = gw_metrics_route_slot("count-q");
    for (int i = 0; i != 3; ++i)
        gw_metrics_request(t1, r, 200, 100);
    for (int i = 0; i != 2; ++i)
        gw_metrics_request(t2, r, 200, 100);
    gw_metrics_request(t1, r, 404, 100);
    gw_metrics_request(t2, q, 503, 100);
    gw_metrics_request(t2, q, 42, 100); /* impossible codes count as 599 */
    gw_metrics_request(t2, q, 600, 100);
    char *text = render();
    assert_true(sample(text, "hegate_requests_total{route=\"count-r\",code=\"200\"}") == 5);
    assert_true(sample(text, "hegate_requests_total{route=\"count-r\",code=\"404\"}") == 1);
    assert_true(sample(text, "hegate_requests_total{route=\"count-r\",code=\"503\"}") == -1); /* zero: not listed */
    assert_true(sample(text, "hegate_requests_total{route=\"count-q\",code=\"503\"}") == 1);
    assert_true(sample(text, "hegate_requests_total{route=\"count-q\",code=\"599\"}") == 2);
    assert_null(strstr(text, "code=\"42\""));
    assert_null(strstr(text, "code=\"600\""));
    free(text);
}

static void test_unknown_slots_count_as_no_route(void **state)
{
    gw_metrics_t *m = gw_metrics_thread_create();
    double before = sample_of("hegate_requests_total{route=\"-\",code=\"418\"}");
    gw_metrics_request(m, 0, 418, 1);
    gw_metrics_request(m, 100000, 418, 1); /* out of range */
    double after = sample_of("hegate_requests_total{route=\"-\",code=\"418\"}");
    assert_true(after == (before < 0 ? 0 : before) + 2);
}

static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                  "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

static double bucket(const char *text, const char *route, const char *le)
{
    char series[160];
    snprintf(series, sizeof(series), "hegate_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"}", route, le);
    return sample(text, series);
}

static void test_histogram_buckets_are_cumulative_with_inclusive_edges(void **state)
{
    gw_metrics_t *m = gw_metrics_thread_create();
    unsigned r = gw_metrics_route_slot("hist");
    /* each le bound is inclusive: exactly 500 us is in le="0.0005", 501 us is not */
    static const uint64_t us[] = {0, 500, 501, 1000, 30000, 999999, 1000000, 10000000, 10000001, 60000000};
    uint64_t total_us = 0;
    for (size_t i = 0; i != sizeof(us) / sizeof(us[0]); ++i) {
        gw_metrics_request(m, r, 200, us[i]);
        total_us += us[i];
    }
    char *text = render();
    static const double want[] = {2, 4, 4, 4, 4, 4, 5, 5, 5, 5, 7, 7, 7, 8};
    double prev = 0;
    for (size_t b = 0; b != sizeof(les) / sizeof(les[0]); ++b) {
        double got = bucket(text, "hist", les[b]);
        if (got != want[b])
            fail_msg("le=%s: got %g, want %g", les[b], got, want[b]);
        assert_true(got >= prev);
        prev = got;
    }
    assert_true(bucket(text, "hist", "+Inf") == 10);
    assert_true(sample(text, "hegate_request_duration_seconds_count{route=\"hist\"}") == 10);
    assert_true(sample(text, "hegate_requests_total{route=\"hist\",code=\"200\"}") == 10);
    double sum = sample(text, "hegate_request_duration_seconds_sum{route=\"hist\"}");
    assert_true(sum > total_us / 1e6 - 1e-6 && sum < total_us / 1e6 + 1e-6);
    /* a route with no requests has no histogram */
    gw_metrics_route_slot("hist-idle");
    assert_true(sample(text, "hegate_request_duration_seconds_count{route=\"hist-idle\"}") == -1);
    free(text);
}

static void test_histogram_count_equals_requests_for_many_durations(void **state)
{
    gw_metrics_t *a = gw_metrics_thread_create(), *b = gw_metrics_thread_create();
    unsigned r = gw_metrics_route_slot("hist-many");
    uint64_t x = 12345;
    for (int i = 0; i != 5000; ++i) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        gw_metrics_request(i % 2 ? a : b, r, i % 7 ? 200 : 500, (x >> 33) % 20000000);
    }
    char *text = render();
    double total = sample(text, "hegate_requests_total{route=\"hist-many\",code=\"200\"}") +
                   sample(text, "hegate_requests_total{route=\"hist-many\",code=\"500\"}");
    assert_true(total == 5000);
    assert_true(sample(text, "hegate_request_duration_seconds_count{route=\"hist-many\"}") == 5000);
    assert_true(bucket(text, "hist-many", "+Inf") == 5000);
    double prev = 0;
    for (size_t i = 0; i != sizeof(les) / sizeof(les[0]); ++i) {
        double v = bucket(text, "hist-many", les[i]);
        assert_true(v >= prev && v <= 5000);
        prev = v;
    }
    assert_true(prev < 5000); /* durations up to 20 s: some are above le="10" */
    free(text);
}

static void test_upstream_errors_by_kind(void **state)
{
    gw_metrics_t *m = gw_metrics_thread_create();
    unsigned r = gw_metrics_route_slot("up-err");
    gw_metrics_upstream_error(m, r, GW_UPSTREAM_ERR_CONNECT);
    gw_metrics_upstream_error(m, r, GW_UPSTREAM_ERR_CONNECT);
    gw_metrics_upstream_error(m, r, GW_UPSTREAM_ERR_TIMEOUT);
    char *text = render();
    assert_true(sample(text, "hegate_upstream_errors_total{route=\"up-err\",kind=\"connect\"}") == 2);
    assert_true(sample(text, "hegate_upstream_errors_total{route=\"up-err\",kind=\"timeout\"}") == 1);
    assert_true(sample(text, "hegate_upstream_errors_total{route=\"up-err\",kind=\"protocol\"}") == -1);
    free(text);
}

static void test_labelled_families(void **state)
{
    gw_metrics_t *m = gw_metrics_thread_create();
    unsigned ac = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "authorization_code");
    unsigned rt = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "refresh_token");
    unsigned login = gw_metrics_label_slot(GW_MF_RATELIMITED, "login");
    gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "login"); /* the same value in another family: another counter */
    gw_metrics_label_slot(GW_MF_QR_VERIFICATIONS, "valid");
    assert_int_not_equal(ac, rt);
    assert_int_equal(gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "authorization_code"), ac);
    gw_metrics_count(m, GW_MF_TOKENS_ISSUED, ac);
    gw_metrics_count(m, GW_MF_TOKENS_ISSUED, ac);
    gw_metrics_count(m, GW_MF_TOKENS_ISSUED, ac);
    gw_metrics_count(m, GW_MF_RATELIMITED, login);
    char *text = render();
    gw_metrics_count(m, GW_MF_TOKENS_ISSUED, 1000); /* beyond the label slots: ignored, nothing else touched */
    gw_metrics_count(m, GW_MF_TOKENS_ISSUED, 64);
    char *again = render();
    assert_string_equal(again, text);
    free(again);
    assert_true(sample(text, "hegate_tokens_issued_total{grant=\"authorization_code\"}") == 3);
    assert_true(sample(text, "hegate_tokens_issued_total{grant=\"refresh_token\"}") == 0); /* known values are listed at 0 */
    assert_true(sample(text, "hegate_ratelimited_total{policy=\"login\"}") == 1);
    assert_true(sample(text, "hegate_tokens_issued_total{grant=\"login\"}") == 0);
    assert_true(sample(text, "hegate_qr_verifications_total{result=\"valid\"}") == 0);
    assert_true(sample(text, "hegate_qr_codes_issued_total{scene=\"valid\"}") == -1);
    free(text);
}

static void test_store_less_ratelimit_answers_count_as_store_errors(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    gw_ratelimit_conf_t per_user = {"per-user", GW_LIMIT_KEY_USER, 20, 1000, 40, 1};
    const gw_ratelimit_conf_t *p[] = {&per_user, &per_user};
    h2o_iovec_t keys[] = {{"alice", 5}, {"bob", 3}};
    gw_ratelimit_verdict_t v[3];
    gw_ratelimit_ctx_t *open = gw_ratelimit_ctx_create(loop, NULL, GW_STORE_DOWN_OPEN, 1, 1);
    gw_ratelimit_ctx_t *local = gw_ratelimit_ctx_create(loop, NULL, GW_STORE_DOWN_LOCAL, 1, 1);
    for (int i = 0; i != 5; ++i)
        assert_null(gw_ratelimit_check(open, p, keys, 2, &v[0], NULL, NULL));
    for (int i = 0; i != 3; ++i)
        assert_null(gw_ratelimit_check(local, p, keys, 1, &v[0], NULL, NULL));
    double errors_before = sample_of("hegate_store_errors_total"),
           open_before = sample_of("hegate_ratelimit_checks_total{source=\"open\"}"),
           local_before = sample_of("hegate_ratelimit_checks_total{source=\"local\"}");
    gw_metrics_t *m1 = gw_metrics_thread_create(), *m2 = gw_metrics_thread_create();
    gw_metrics_set_ratelimit(m1, open);
    gw_metrics_set_ratelimit(m2, local);
    char *text = render();
    assert_true(sample(text, "hegate_ratelimit_checks_total{source=\"open\"}") == open_before + 10);
    assert_true(sample(text, "hegate_ratelimit_checks_total{source=\"local\"}") == local_before + 3);
    assert_true(sample(text, "hegate_ratelimit_checks_total{source=\"store\"}") == 0);
    assert_true(sample(text, "hegate_ratelimit_store_calls_total") == 0);
    assert_true(sample(text, "hegate_store_errors_total") == errors_before + 13);
    free(text);
    gw_metrics_set_ratelimit(m1, NULL);
    gw_metrics_set_ratelimit(m2, NULL);
    gw_ratelimit_ctx_free(open);
    gw_ratelimit_ctx_free(local);
    h2o_evloop_destroy(loop);
}

static void test_generation_gauge(void **state)
{
    assert_true(sample_of("hegate_config_generation") == gw_server_generation());
}

/* Prometheus text format: HELP and TYPE before a family's samples; every sample line is
 * name{label="value",...} number, with label values free of quotes, backslashes and newlines */
static void test_every_line_is_valid_exposition_format(void **state)
{
    char *text = render();
    char family[128] = "";
    int typed = 0, samples = 0;
    for (char *line = text, *eol; *line != '\0'; line = eol + 1) {
        eol = strchr(line, '\n');
        assert_non_null(eol); /* every line ends with a newline */
        *eol = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", family), 1);
            typed = 0;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 || strcmp(type, "histogram") == 0);
            typed = 1;
            continue;
        }
        assert_true(typed);
        size_t nl = strspn(line, "abcdefghijklmnopqrstuvwxyz_");
        assert_true(nl > 0);
        size_t fl = strlen(family);
        if (strncmp(line, family, fl) != 0 || (nl != fl && line[fl] != '_'))
            fail_msg("sample outside its family %s: %s", family, line);
        char *p = line + nl;
        if (*p == '{') {
            for (++p;;) {
                size_t ln = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
                assert_true(ln > 0 && p[ln] == '=' && p[ln + 1] == '"');
                p += ln + 2;
                char *close = strchr(p, '"');
                assert_non_null(close);
                for (char *c = p; c != close; ++c)
                    assert_true(*c != '\\' && *c != '\n');
                p = close + 1;
                if (*p == ',') {
                    ++p;
                    continue;
                }
                assert_int_equal(*p, '}');
                ++p;
                break;
            }
        }
        assert_int_equal(*p, ' ');
        char *end;
        strtod(p + 1, &end);
        assert_true(end != p + 1 && *end == '\0');
        ++samples;
    }
    assert_true(samples > 10);
    free(text);
}

/* one writer thread per gw_metrics_t, as the server has */
static void *writer(void *arg)
{
    gw_metrics_t *m = gw_metrics_thread_create();
    unsigned r = *(unsigned *)arg;
    for (int i = 0; i != 100000; ++i)
        gw_metrics_request(m, r, 204, 10);
    return NULL;
}

static void test_counters_from_concurrent_threads_sum_exactly(void **state)
{
    unsigned r = gw_metrics_route_slot("threads");
    pthread_t t[4];
    for (int i = 0; i != 4; ++i)
        pthread_create(&t[i], NULL, writer, &r);
    for (int k = 0; k != 20; ++k) { /* scrapes while they count: never more than the final total */
        double v = sample_of("hegate_requests_total{route=\"threads\",code=\"204\"}");
        assert_true(v <= 400000);
    }
    for (int i = 0; i != 4; ++i)
        pthread_join(t[i], NULL);
    assert_true(sample_of("hegate_requests_total{route=\"threads\",code=\"204\"}") == 400000);
    assert_true(sample_of("hegate_request_duration_seconds_count{route=\"threads\"}") == 400000);
}

/* last: it uses up the slots */
static void test_slots_are_bounded(void **state)
{
    unsigned last = 0;
    char name[32];
    for (int i = 0; i != 300; ++i) {
        snprintf(name, sizeof(name), "many-%d", i);
        unsigned s = gw_metrics_route_slot(name);
        assert_true(s < 256);
        if (s != 0)
            last = s;
    }
    assert_int_equal(last, 255);
    assert_int_equal(gw_metrics_route_slot("one-too-many"), 0); /* shares "no route" */
    assert_int_equal(gw_metrics_route_slot("many-10") != 0, 1); /* names given a slot keep it */
    for (int i = 0; i != 100; ++i) {                            /* a family of its own: values take slots 0..63, the rest share 0 */
        snprintf(name, sizeof(name), "label-%d", i);
        assert_int_equal(gw_metrics_label_slot(GW_MF_QR_CODES_ISSUED, name), i < 64 ? i : 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_slots_are_stable_and_distinct),
        cmocka_unit_test(test_requests_counted_exactly_by_route_and_code_across_threads),
        cmocka_unit_test(test_unknown_slots_count_as_no_route),
        cmocka_unit_test(test_histogram_buckets_are_cumulative_with_inclusive_edges),
        cmocka_unit_test(test_histogram_count_equals_requests_for_many_durations),
        cmocka_unit_test(test_upstream_errors_by_kind),
        cmocka_unit_test(test_labelled_families),
        cmocka_unit_test(test_store_less_ratelimit_answers_count_as_store_errors),
        cmocka_unit_test(test_generation_gauge),
        cmocka_unit_test(test_every_line_is_valid_exposition_format),
        cmocka_unit_test(test_counters_from_concurrent_threads_sum_exactly),
        cmocka_unit_test(test_slots_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
