/*
 * tests/unit/gateway/test_problem.c — gateway/problem.c: gw_json_escape for every byte value
 * (quotes, backslash, control bytes and DEL as \u00XX, everything else passed through, UTF-8
 * included), read back by jansson, and truncated at every buffer size without writing past it or
 * cutting an escape; gw_problem_send_raw / gw_problem_send / gw_req_add_common_headers (status,
 * reason, headers, the RFC 9457 body parsed back); and the rewriter that turns h2o's own text/plain
 * errors into problem+json — all on a hand-made request whose output stream records the answer.
 */
#include "tests/unit/unit.h"
#include <jansson.h>
#include "gateway/gateway.h"
#include "tests/unit/fake_req.h"

/* what gw_json_escape must write for one byte */
static void expected_escape(unsigned char c, char *out)
{
    if (c == '"' || c == '\\')
        sprintf(out, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
        sprintf(out, "\\u%04x", c);
    else
        sprintf(out, "%c", c);
}

static void test_json_escape_every_byte(void **state)
{
    for (int c = 0; c != 256; ++c) {
        char in[1] = {(char)c}, out[16], want[8];
        memset(out, '#', sizeof(out));
        expected_escape((unsigned char)c, want);
        size_t n = gw_json_escape(out, sizeof(out), in, 1);
        if (n != strlen(want) || memcmp(out, want, n) != 0 || out[n] != '\0')
            fail_msg("byte 0x%02x: got \"%.*s\" (%zu), want \"%s\"", c, (int)n, out, n, want);
        assert_int_equal(out[n + 1], '#');
    }
}

static void test_json_escape_mixed_text(void **state)
{
    char out[128];
    const char in[] = "a\"b\\c\nd\te\x01\x1f\x7f/<>'";
    size_t n = gw_json_escape(out, sizeof(out), in, sizeof(in) - 1);
    assert_string_equal(out, "a\\\"b\\\\c\\u000ad\\u0009e\\u0001\\u001f\\u007f/<>'");
    assert_int_equal(n, strlen(out));
    /* LEN counts, not the NUL: an embedded NUL is escaped and what follows kept */
    n = gw_json_escape(out, sizeof(out), "x\0y", 3);
    assert_string_equal(out, "x\\u0000y");
    n = gw_json_escape(out, sizeof(out), "xyz", 2);
    assert_string_equal(out, "xy");
    assert_int_equal(gw_json_escape(out, sizeof(out), "", 0), 0);
    assert_string_equal(out, "");
}

static void test_json_escape_utf8_passes_through(void **state)
{
    char out[128];
    const char *in = "张三 ✓ \xf0\x9f\x98\x80 é";
    assert_int_equal(gw_json_escape(out, sizeof(out), in, strlen(in)), strlen(in));
    assert_string_equal(out, in);
}

/* "\"" + OUT + "\"" read by jansson must give back exactly IN */
static void assert_json_reads_back(const char *out, const char *in, size_t len)
{
    char doc[2048];
    int dl = snprintf(doc, sizeof(doc), "\"%s\"", out);
    json_error_t err;
    json_t *j = json_loadb(doc, (size_t)dl, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j == NULL)
        fail_msg("not JSON: %s (%s)", doc, err.text);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), len);
    assert_memory_equal(json_string_value(j), in, len);
    json_decref(j);
}

static void test_json_escape_reads_back_as_the_same_string(void **state)
{
    char ascii[128], out[1024];
    for (int i = 0; i != 128; ++i)
        ascii[i] = (char)i;
    gw_json_escape(out, sizeof(out), ascii, sizeof(ascii));
    assert_json_reads_back(out, ascii, sizeof(ascii));
    const char *utf8 = "鹤城 \"quoted\" \\ back\\slash \r\n end";
    gw_json_escape(out, sizeof(out), utf8, strlen(utf8));
    assert_json_reads_back(out, utf8, strlen(utf8));
}

static void test_json_escape_truncates_within_bufsz_at_escape_boundaries(void **state)
{
    const char in[] = "ab\"c\\\x01\x7f"
                      "def\nghi";
    char full[128];
    size_t full_len = gw_json_escape(full, sizeof(full), in, sizeof(in) - 1);
    char canary[64];
    memset(canary, '#', sizeof(canary));
    assert_int_equal(gw_json_escape(canary, 0, in, sizeof(in) - 1), 0);
    assert_int_equal(canary[0], '#'); /* bufsz 0: nothing written at all */
    for (size_t bufsz = 1; bufsz != 50; ++bufsz) {
        char out[64];
        memset(out, '#', sizeof(out));
        size_t n = gw_json_escape(out, bufsz, in, sizeof(in) - 1);
        assert_true(n < bufsz);
        assert_int_equal(out[n], '\0');
        for (size_t i = bufsz; i != sizeof(out); ++i)
            if (out[i] != '#')
                fail_msg("bufsz %zu: byte %zu written", bufsz, i);
        assert_memory_equal(out, full, n);
        /* the prefix is whole escapes: still a JSON string, reading back as a prefix of IN */
        char doc[80];
        snprintf(doc, sizeof(doc), "\"%s\"", out);
        json_t *j = json_loads(doc, JSON_DECODE_ANY, NULL);
        if (j == NULL)
            fail_msg("bufsz %zu: cut inside an escape: %s", bufsz, out);
        assert_memory_equal(json_string_value(j), in, json_string_length(j));
        json_decref(j);
    }
    char roomy[64];
    assert_int_equal(gw_json_escape(roomy, sizeof(roomy), in, sizeof(in) - 1), full_len);
}

/* ---- answers ---- */

static json_t *body_json(fake_req_t *f)
{
    assert_int_equal(f->finals, 1);
    json_error_t err;
    json_t *j = json_loadb(f->body, f->body_len, 0, &err);
    if (j == NULL)
        fail_msg("body is not JSON: %s (%s)", f->body, err.text);
    return j;
}

static void assert_one_header(fake_req_t *f, const char *name, const char *value)
{
    size_t n;
    const char *v = fake_req_res_header(f, name, &n);
    if (n != 1 || strcmp(v, value) != 0)
        fail_msg("%s: %zu times, first \"%s\", want once \"%s\"", name, n, v != NULL ? v : "(none)", value);
}

static void test_problem_send_raw_body_and_headers(void **state)
{
    fake_req_t f;
    fake_req_init(&f, "GET", "/nothing/here");
    gw_problem_send_raw(&f.req, "rid-123", 404, "not-found", "Not Found", "no route matches \"/nothing\\here\"\n");
    assert_int_equal(f.req.res.status, 404);
    assert_string_equal(f.req.res.reason, "Not Found");
    assert_one_header(&f, "content-type", "application/problem+json");
    assert_one_header(&f, "cache-control", "no-store");
    assert_one_header(&f, "x-request-id", "rid-123");
    assert_int_equal(f.req.res.headers.size, 3);
    json_t *j = body_json(&f);
    assert_int_equal(json_object_size(j), 5);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "https://hegate.dev/problems/not-found");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Not Found");
    assert_true(json_is_integer(json_object_get(j, "status")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "no route matches \"/nothing\\here\"\n");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "rid-123");
    json_decref(j);
    fake_req_dispose(&f);
}

static void test_problem_send_raw_without_request_id(void **state)
{
    fake_req_t f;
    fake_req_init(&f, "GET", "/");
    gw_problem_send_raw(&f.req, NULL, 431, "headers-too-large", "Request Header Fields Too Large", "too big");
    assert_null(fake_req_res_header(&f, "x-request-id", NULL));
    json_t *j = body_json(&f);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 431);
    json_decref(j);
    fake_req_dispose(&f);
}

static void test_problem_send_raw_long_detail_stays_json(void **state)
{
    char detail[2000];
    for (size_t i = 0; i != sizeof(detail) - 1; ++i)
        detail[i] = "\"\\\n"[i % 3];
    detail[sizeof(detail) - 1] = '\0';
    fake_req_t f;
    fake_req_init(&f, "GET", "/");
    gw_problem_send_raw(&f.req, "r", 400, "bad-request", "Bad Request", detail);
    json_t *j = body_json(&f); /* cut short, but never broken */
    const char *d = json_string_value(json_object_get(j, "detail"));
    assert_true(strlen(d) > 100 && strlen(d) < sizeof(detail) - 1);
    assert_memory_equal(d, detail, strlen(d));
    json_decref(j);
    fake_req_dispose(&f);
}

static void test_problem_send_carries_request_id_and_ratelimit_fields(void **state)
{
    fake_req_t f;
    fake_req_init(&f, "GET", "/api/v1/query");
    f.greq.rl_policy_hdr = h2o_iovec_init(H2O_STRLIT("\"per-user\";q=20;w=1"));
    f.greq.rl_state_hdr = h2o_iovec_init(H2O_STRLIT("\"per-user\";r=0;t=1"));
    gw_problem_send(&f.greq, 429, "rate-limited", "Too Many Requests", "slow down");
    assert_one_header(&f, "ratelimit-policy", "\"per-user\";q=20;w=1");
    assert_one_header(&f, "ratelimit", "\"per-user\";r=0;t=1");
    assert_one_header(&f, "x-request-id", "test-rid");
    json_t *j = body_json(&f);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "test-rid");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "https://hegate.dev/problems/rate-limited");
    json_decref(j);
    fake_req_dispose(&f);
    /* without limits, no RateLimit fields */
    fake_req_init(&f, "GET", "/api/v1/query");
    gw_problem_send(&f.greq, 401, "unauthorized", "Unauthorized", "no token");
    assert_null(fake_req_res_header(&f, "ratelimit-policy", NULL));
    assert_null(fake_req_res_header(&f, "ratelimit", NULL));
    assert_one_header(&f, "x-request-id", "test-rid");
    fake_req_dispose(&f);
}

static void test_common_headers(void **state)
{
    fake_req_t f;
    fake_req_init(&f, "GET", "/");
    gw_req_add_common_headers(&f.greq);
    assert_one_header(&f, "x-request-id", "test-rid");
    assert_int_equal(f.req.res.headers.size, 1);
    f.greq.rl_state_hdr = h2o_iovec_init(H2O_STRLIT("\"p\";r=5;t=0"));
    gw_req_add_common_headers(&f.greq);
    assert_one_header(&f, "ratelimit", "\"p\";r=5;t=0");
    assert_null(fake_req_res_header(&f, "ratelimit-policy", NULL));
    fake_req_dispose(&f);
}

/* h2o's own error answer (as its HTTP/1 parser sends one), through the rewriter on the path */
static void rewrite(fake_req_t *f, int status, const char *reason, const char *content_type, const char *body)
{
    fake_req_init(f, "GET", "/");
    gw_problem_register_rewriter(&f->pathconf);
    f->req.res.status = status;
    f->req.res.reason = reason;
    f->req.res.content_length = strlen(body);
    h2o_add_header(&f->req.pool, &f->req.res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_send_inline(&f->req, body, strlen(body));
}

static void test_rewriter_turns_h2o_text_errors_into_problems(void **state)
{
    static const struct {
        int status;
        const char *slug, *title;
    } cases[] = {{400, "bad-request", "Bad Request"}, {413, "too-large", "Content Too Large"}, {417, "bad-request", "Bad Request"}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        fake_req_t f;
        rewrite(&f, cases[i].status, "Whatever", "text/plain; charset=utf-8", "line format error");
        assert_one_header(&f, "content-type", "application/problem+json");
        assert_int_equal(f.req.res.content_length, f.body_len);
        json_t *j = body_json(&f);
        char type[128];
        snprintf(type, sizeof(type), "https://hegate.dev/problems/%s", cases[i].slug);
        assert_string_equal(json_string_value(json_object_get(j, "type")), type);
        assert_string_equal(json_string_value(json_object_get(j, "title")), cases[i].title);
        assert_int_equal(json_integer_value(json_object_get(j, "status")), cases[i].status);
        assert_true(json_is_null(json_object_get(j, "request_id")));
        assert_null(strstr(f.body, "line format error"));
        json_decref(j);
        fake_req_dispose(&f);
    }
}

static void test_rewriter_leaves_other_answers_alone(void **state)
{
    fake_req_t f;
    rewrite(&f, 200, "OK", "text/plain", "hello");
    assert_string_equal(f.body, "hello");
    assert_one_header(&f, "content-type", "text/plain");
    fake_req_dispose(&f);
    rewrite(&f, 502, "Bad Gateway", "application/json", "{\"upstream\":true}");
    assert_string_equal(f.body, "{\"upstream\":true}");
    assert_one_header(&f, "content-type", "application/json");
    fake_req_dispose(&f);
    rewrite(&f, 404, "Not Found", "text/html", "<p>upstream page</p>");
    assert_string_equal(f.body, "<p>upstream page</p>");
    fake_req_dispose(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape_every_byte),
        cmocka_unit_test(test_json_escape_mixed_text),
        cmocka_unit_test(test_json_escape_utf8_passes_through),
        cmocka_unit_test(test_json_escape_reads_back_as_the_same_string),
        cmocka_unit_test(test_json_escape_truncates_within_bufsz_at_escape_boundaries),
        cmocka_unit_test(test_problem_send_raw_body_and_headers),
        cmocka_unit_test(test_problem_send_raw_without_request_id),
        cmocka_unit_test(test_problem_send_raw_long_detail_stays_json),
        cmocka_unit_test(test_problem_send_carries_request_id_and_ratelimit_fields),
        cmocka_unit_test(test_common_headers),
        cmocka_unit_test(test_rewriter_turns_h2o_text_errors_into_problems),
        cmocka_unit_test(test_rewriter_leaves_other_answers_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
