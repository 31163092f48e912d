/*
 * tests/unit/gateway/test_accesslog.c — gateway/accesslog.c, written to a temporary file and
 * parsed back with jansson: exactly the README's fields (time, request_id, route, method, path,
 * status, bytes, duration, upstream, client_id) with their types, null for what a request did
 * not have, never the query string; a path trying to smuggle quotes, newlines or JSON stays one
 * valid line; long paths and methods are cut; lines keep their order through the thread buffer,
 * which is written when full, on the 100 ms timer, and by gw_accesslog_flush_thread; "off" writes
 * nothing. Requests are hand-made (tests/unit/fake_req.h) on a thread with a real h2o evloop.
 */
#include "tests/unit/unit.h"
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include "gateway/gateway.h"
#include "tests/unit/fake_req.h"

static gw_thread_t thread;
static char path[64];

static int setup(void **state)
{
    thread.loop = h2o_evloop_create();
    h2o_timeout_init(thread.loop, &thread.ctx.hundred_ms_timeout, 100);
    return 0;
}

static int teardown(void **state)
{
    h2o_timeout_dispose(thread.loop, &thread.ctx.hundred_ms_timeout);
    h2o_evloop_destroy(thread.loop);
    return 0;
}

/* a fresh, empty log file for each test */
static int open_log(void **state)
{
    strcpy(path, "/tmp/hegate-test-accesslog.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return gw_accesslog_open(path);
}

static int close_log(void **state)
{
    gw_accesslog_flush_thread();
    gw_accesslog_open("off");
    return unlink(path);
}

static char *read_log(void)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text != '\0'; ++text)
        n += *text == '\n';
    return n;
}

/* the only line of the log, parsed (it must be one complete JSON object and a newline) */
static json_t *only_line(void)
{
    char *text = read_log();
    assert_int_equal(count_lines(text), 1);
    size_t len = strlen(text);
    assert_int_equal(text[len - 1], '\n');
    json_error_t err;
    json_t *j = json_loadb(text, len - 1, 0, &err);
    if (j == NULL)
        fail_msg("not one JSON object: %s (%s)", text, err.text);
    assert_true(json_is_object(j));
    return j;
}

static gw_route_conf_t query_conf = {.name = "query"};
static gw_route_rt_t query_rt = {.name = "query", .conf = &query_conf};

static void log_one(const char *method, const char *reqpath, int status, size_t bytes, uint64_t duration_us, int full)
{
    fake_req_t f;
    fake_req_init(&f, method, reqpath);
    f.greq.thread = &thread;
    if (full) {
        f.greq.rt = &query_rt;
        f.greq.upstream = "127.0.0.1:9101";
        f.greq.client_id = "hecheng-app";
    }
    gw_accesslog_write(&f.greq, status, bytes, duration_us);
    fake_req_dispose(&f);
}

static void test_line_has_exactly_the_documented_fields(void **state)
{
    time_t before = time(NULL);
    log_one("GET", "/api/v1/query/records?id=110101199003071234&token=secret", 200, 1234, 1500, 1);
    gw_accesslog_flush_thread();
    char *raw = read_log();
    assert_null(strstr(raw, "?"));
    assert_null(strstr(raw, "110101199003071234"));
    assert_null(strstr(raw, "secret"));
    json_t *j = only_line();
    static const char *const fields[] = {"time",   "request_id", "route",    "method",   "path",
                                         "status", "bytes",      "duration", "upstream", "client_id"};
    assert_int_equal(json_object_size(j), sizeof(fields) / sizeof(fields[0]));
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i)
        if (json_object_get(j, fields[i]) == NULL)
            fail_msg("field %s missing", fields[i]);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "test-rid");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "query");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/api/v1/query/records");
    assert_true(json_is_integer(json_object_get(j, "status")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(json_is_integer(json_object_get(j, "bytes")));
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1234);
    assert_true(json_is_real(json_object_get(j, "duration")));
    assert_true(json_real_value(json_object_get(j, "duration")) == 0.0015);
    assert_string_equal(json_string_value(json_object_get(j, "upstream")), "127.0.0.1:9101");
    assert_string_equal(json_string_value(json_object_get(j, "client_id")), "hecheng-app");
    /* time: UTC, milliseconds, now */
    const char *t = json_string_value(json_object_get(j, "time"));
    assert_non_null(t);
    assert_int_equal(strlen(t), 24);
    struct tm tm = {0};
    int ms = -1;
    char z = 0;
    assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                            &tm.tm_sec, &ms, &z),
                     8);
    assert_int_equal(z, 'Z');
    assert_true(ms >= 0 && ms <= 999);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t logged = timegm(&tm);
    assert_true(logged >= before && logged <= time(NULL));
    json_decref(j);
}

static void test_absent_route_upstream_and_client_are_null(void **state)
{
    log_one("POST", "/nowhere", 404, 0, 20, 0);
    gw_accesslog_flush_thread();
    json_t *j = only_line();
    assert_true(json_is_null(json_object_get(j, "route")));
    assert_true(json_is_null(json_object_get(j, "upstream")));
    assert_true(json_is_null(json_object_get(j, "client_id")));
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 0);
    assert_true(json_real_value(json_object_get(j, "duration")) == 0.00002);
    json_decref(j);
}

static void test_smuggled_quotes_and_newlines_stay_one_valid_line(void **state)
{
    const char *evil = "/a\"b\nc\\d\r\x01\x7f\",\"status\":999,\"route\":\"admin\"}\n{\"x\":\"";
    char reqpath[256];
    snprintf(reqpath, sizeof(reqpath), "%s?\"q\n", evil);
    log_one("GET", reqpath, 403, 10, 1, 0);
    gw_accesslog_flush_thread();
    json_t *j = only_line();
    assert_string_equal(json_string_value(json_object_get(j, "path")), evil);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 403);
    assert_true(json_is_null(json_object_get(j, "route")));
    assert_null(json_object_get(j, "x"));
    json_decref(j);
    /* and in the method */
    close_log(state);
    open_log(state);
    log_one("G\"E\nT", "/", 400, 0, 1, 0);
    gw_accesslog_flush_thread();
    j = only_line();
    assert_string_equal(json_string_value(json_object_get(j, "method")), "G\"E\nT");
    json_decref(j);
}

static void test_long_paths_and_methods_are_cut(void **state)
{
    char reqpath[2001];
    reqpath[0] = '/';
    memset(reqpath + 1, 'a', sizeof(reqpath) - 2);
    reqpath[sizeof(reqpath) - 1] = '\0';
    log_one("AVERYVERYLONGMETHODNAME", reqpath, 200, 0, 1, 0);
    gw_accesslog_flush_thread();
    json_t *j = only_line();
    const char *p = json_string_value(json_object_get(j, "path"));
    assert_int_equal(strlen(p), 300);
    assert_memory_equal(p, reqpath, 300);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "AVERYVERYLONGMET");
    json_decref(j);
    /* 300 bytes that each need 6 characters: cut further, still one valid line */
    close_log(state);
    open_log(state);
    memset(reqpath + 1, '\x01', 400);
    reqpath[401] = '\0';
    log_one("GET", reqpath, 200, 0, 1, 0);
    gw_accesslog_flush_thread();
    j = only_line();
    p = json_string_value(json_object_get(j, "path"));
    assert_true(strlen(p) > 100 && strlen(p) < 300);
    assert_memory_equal(p, reqpath, strlen(p));
    json_decref(j);
}

/* every line of the log parsed, in order, with bytes == its index */
static void assert_lines_in_order(size_t want)
{
    char *text = read_log();
    assert_int_equal(count_lines(text), want);
    size_t i = 0;
    for (char *line = text, *eol; (eol = strchr(line, '\n')) != NULL; line = eol + 1, ++i) {
        json_t *j = json_loadb(line, (size_t)(eol - line), 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "bytes")), i);
        json_decref(j);
    }
}

static void test_lines_are_buffered_in_order_until_the_buffer_fills(void **state)
{
    char reqpath[320];
    reqpath[0] = '/';
    memset(reqpath + 1, 'p', 299);
    reqpath[300] = '\0';
    for (size_t i = 0; i != 10; ++i)
        log_one("GET", reqpath, 200, i, 1, 1);
    assert_int_equal(strlen(read_log()), 0); /* still in the thread's buffer */
    for (size_t i = 10; i != 400; ++i)       /* ~190 kB of lines: the 64 kB buffer is written out as it fills */
        log_one("GET", reqpath, 200, i, 1, 1);
    size_t written = count_lines(read_log());
    assert_true(written >= 200 && written < 400);
    gw_accesslog_flush_thread();
    assert_lines_in_order(400);
}

static void test_timer_writes_within_about_100ms(void **state)
{
    log_one("GET", "/t", 200, 0, 1, 1);
    assert_int_equal(strlen(read_log()), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double ms = 0;
    while (strlen(read_log()) == 0 && ms < 3000) {
        h2o_evloop_run(thread.loop, 50);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    }
    assert_lines_in_order(1);
    assert_true(ms < 3000);
    /* the next line arms the timer again */
    log_one("GET", "/t", 200, 1, 1, 1);
    for (int i = 0; i != 100 && count_lines(read_log()) != 2; ++i)
        h2o_evloop_run(thread.loop, 50);
    assert_lines_in_order(2);
}

static void test_off_writes_nothing(void **state)
{
    assert_int_equal(gw_accesslog_open("off"), 0);
    log_one("GET", "/quiet", 200, 0, 1, 1);
    gw_accesslog_flush_thread();
    assert_int_equal(strlen(read_log()), 0);
    assert_int_equal(gw_accesslog_open("/nonexistent-dir/x/access.log"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_has_exactly_the_documented_fields, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_absent_route_upstream_and_client_are_null, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_smuggled_quotes_and_newlines_stay_one_valid_line, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_long_paths_and_methods_are_cut, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_lines_are_buffered_in_order_until_the_buffer_fills, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_timer_writes_within_about_100ms, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_off_writes_nothing, open_log, close_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
