/*
 * tests/unit/auth/test_pages.c — auth/pages.c, the sign-in, consent and error pages: every value
 * (each authorization parameter, the CSRF token, the error, the client's label, the scope words,
 * the error page's title and message) appears only HTML-escaped; the forms carry the CSRF token;
 * absent parameters are left out; large values survive the buffer's growth; and auth_page_send's
 * status, headers (no-store, CSP, framing, sniffing, referrer) and body, captured from a hand-made
 * request (tests/unit/fake_req.h).
 */
#include "tests/unit/unit.h"
#include <strings.h>
#include "auth/http/http.h"
#include "tests/unit/fake_req.h"

#define EVIL "<script>\"'&"
#define EVIL_ESCAPED "&lt;script&gt;&quot;&#39;&amp;"

static char *text(h2o_iovec_t page)
{
    assert_int_equal(strlen(page.base), page.len); /* NUL-terminated, no NUL inside */
    return page.base;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        ++n;
    return n;
}

static void assert_count(const char *page, const char *needle, size_t want)
{
    size_t got = count(page, needle);
    if (got != want)
        fail_msg("\"%s\" appears %zu times, want %zu", needle, got, want);
}

/* a whole document, no script, no markup that could load anything */
static void assert_safe_document(const char *page)
{
    assert_memory_equal(page, "<!doctype html>\n<html lang=\"zh-CN\">", 34);
    size_t len = strlen(page);
    assert_true(len > 24);
    assert_string_equal(page + len - 24, "</main>\n</body>\n</html>\n");
    for (const char *p = page; *p != '\0'; ++p) {
        if (strncasecmp(p, "<script", 7) == 0 || strncasecmp(p, "<img", 4) == 0 || strncasecmp(p, "<link", 5) == 0 ||
            strncasecmp(p, "<iframe", 7) == 0 || strncasecmp(p, " src=", 5) == 0)
            fail_msg("unsafe markup at: %.40s", p);
        if (strncasecmp(p, " on", 3) == 0) { /* an event-handler attribute: " on<letters>=" */
            size_t n = 3;
            while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z'))
                ++n;
            if (n > 3 && p[n] == '=')
                fail_msg("event handler at: %.40s", p);
        }
    }
}

/* each parameter marked with its own name, so that each field is checked on its own */
static const auth_authz_params_t evil_params = {
    .client_id = EVIL "client_id",
    .redirect_uri = EVIL "redirect_uri",
    .scope = EVIL "scope",
    .state = EVIL "state",
    .code_challenge = EVIL "code_challenge",
    .code_challenge_method = EVIL "code_challenge_method",
    .response_type = EVIL "response_type",
};

static const char *const param_names[] = {"client_id",      "redirect_uri",          "scope",        "state",
                                          "code_challenge", "code_challenge_method", "response_type"};

static void assert_params_escaped_in_hidden_fields(const char *page)
{
    char want[256];
    for (size_t i = 0; i != sizeof(param_names) / sizeof(param_names[0]); ++i) {
        snprintf(want, sizeof(want), "<input type=\"hidden\" name=\"%s\" value=\"" EVIL_ESCAPED "%s\">", param_names[i],
                 param_names[i]);
        assert_count(page, want, 1);
    }
    snprintf(want, sizeof(want), "<input type=\"hidden\" name=\"csrf\" value=\"" EVIL_ESCAPED "csrf\">");
    assert_count(page, want, 1);
}

static void test_signin_escapes_every_value(void **state)
{
    char *page = text(auth_page_signin(&test_pool, &evil_params, EVIL "csrf", EVIL "error", EVIL "label"));
    assert_safe_document(page);
    assert_null(strstr(page, EVIL));
    assert_params_escaped_in_hidden_fields(page);
    assert_count(page, EVIL_ESCAPED "error</p>", 1);
    assert_count(page, "<p>" EVIL_ESCAPED "label 请求使用", 1);
    assert_count(page, "&quot;", 10); /* 7 parameters, csrf, error, label: nothing else needed escaping */
}

static void test_consent_escapes_every_value_and_scope_word(void **state)
{
    auth_authz_params_t p = evil_params;
    p.scope = "openid " EVIL "scope profile <b>bold</b>";
    char *page = text(auth_page_consent(&test_pool, &p, EVIL "csrf", EVIL "label"));
    assert_safe_document(page);
    assert_null(strstr(page, EVIL));
    assert_null(strstr(page, "<b>"));
    assert_count(page, "<strong>" EVIL_ESCAPED "label</strong>", 1);
    /* an unknown scope word is shown as itself, escaped, twice (text and code) */
    assert_count(page, "<li>" EVIL_ESCAPED "scope (<code>" EVIL_ESCAPED "scope</code>)</li>", 1);
    assert_count(page, "<li>&lt;b&gt;bold&lt;/b&gt; (<code>&lt;b&gt;bold&lt;/b&gt;</code>)</li>", 1);
    /* known scopes get their description */
    assert_count(page, "(<code>openid</code>)", 1);
    assert_count(page, "您的账号标识 Your account identifier", 1);
    assert_count(page, "(<code>profile</code>)", 1);
    assert_count(page, "<li>", 4);
    /* the hidden scope field carries the whole, escaped */
    assert_count(page, "name=\"scope\" value=\"openid " EVIL_ESCAPED "scope profile &lt;b&gt;bold&lt;/b&gt;\">", 1);
    assert_count(page, "<input type=\"hidden\" name=\"csrf\" value=\"" EVIL_ESCAPED "csrf\">", 1);
}

static void test_error_page_escapes_title_and_message(void **state)
{
    char *page = text(auth_page_error(&test_pool, EVIL "title", EVIL "message"));
    assert_safe_document(page);
    assert_null(strstr(page, EVIL));
    assert_count(page, "<title>" EVIL_ESCAPED "title</title>", 1);
    assert_count(page, "<h1>" EVIL_ESCAPED "title</h1>", 1);
    assert_count(page, "<p role=\"alert\">" EVIL_ESCAPED "message</p>", 1);
    assert_null(strstr(page, "<form"));
}

/* the text between the first "<form" and the next "</form>" */
static char *form_of(const char *page)
{
    const char *a = strstr(page, "<form method=\"post\" action=\"/oauth2/authorize\">"), *b = a ? strstr(a, "</form>") : NULL;
    assert_non_null(b);
    return h2o_strdup(&test_pool, a, (size_t)(b - a)).base;
}

static void test_forms_carry_the_csrf_token_and_only_given_params(void **state)
{
    const auth_authz_params_t p = {.client_id = "mp-partner",
                                   .redirect_uri = "https://mp.partner.example/cb",
                                   .scope = "openid query",
                                   .response_type = "code",
                                   .code_challenge = "E9Melhoa2Owv",
                                   .code_challenge_method = "S256"}; /* no state */
    const char *csrf = "Zm9vYmFyLWNzcmYtdG9rZW4";
    char *signin = text(auth_page_signin(&test_pool, &p, csrf, NULL, "Partner")),
         *consent = text(auth_page_consent(&test_pool, &p, csrf, "Partner"));
    char *pages[] = {signin, consent};
    for (int i = 0; i != 2; ++i) {
        char *form = form_of(pages[i]);
        assert_count(form, "<input type=\"hidden\" name=\"csrf\" value=\"Zm9vYmFyLWNzcmYtdG9rZW4\">", 1);
        assert_count(form, "name=\"client_id\" value=\"mp-partner\"", 1);
        assert_count(form, "name=\"redirect_uri\" value=\"https://mp.partner.example/cb\"", 1);
        assert_count(form, "name=\"code_challenge_method\" value=\"S256\"", 1);
        assert_null(strstr(form, "name=\"state\""));
        assert_count(pages[i], "<form", 1);
    }
    assert_null(strstr(signin, "class=\"error\"")); /* no error given */
    assert_count(form_of(signin), "name=\"password\"", 1);
    assert_count(form_of(consent), "value=\"consent\"", 1);
    assert_count(form_of(consent), "value=\"deny\"", 1);
}

static void test_large_values_survive_growth(void **state)
{
    char *label = malloc(5001), *want = malloc(25001);
    memset(label, '&', 5000);
    label[5000] = '\0';
    for (int i = 0; i != 5000; ++i)
        memcpy(want + 5 * i, "&amp;", 5);
    want[25000] = '\0';
    auth_authz_params_t p = {.client_id = label, .state = label};
    char *page = text(auth_page_signin(&test_pool, &p, label, label, label));
    assert_count(page, want, 5); /* the label, the error, and the client_id, state and csrf fields */
    free(label);
    free(want);
}

static void test_page_send_headers_and_body(void **state)
{
    fake_req_t f;
    fake_req_init(&f, "GET", "/oauth2/authorize?client_id=x");
    h2o_iovec_t body = auth_page_error(&f.req.pool, "Error", "Something went wrong");
    auth_page_send(&f.greq, 400, body);
    assert_int_equal(f.req.res.status, 400);
    assert_string_equal(f.req.res.reason, "Bad Request");
    assert_int_equal(f.req.res.content_length, body.len);
    assert_int_equal(f.finals, 1);
    assert_int_equal(f.body_len, body.len);
    assert_memory_equal(f.body, body.base, body.len);
    static const struct {
        const char *name, *value;
    } want[] = {
        {"content-type", "text/html; charset=utf-8"},
        {"cache-control", "no-store"},
        {"pragma", "no-cache"},
        {"x-frame-options", "DENY"},
        {"x-content-type-options", "nosniff"},
        {"referrer-policy", "no-referrer"},
        {"content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"},
        {"x-request-id", "test-rid"},
    };
    for (size_t i = 0; i != sizeof(want) / sizeof(want[0]); ++i) {
        size_t n;
        const char *v = fake_req_res_header(&f, want[i].name, &n);
        if (v == NULL || n != 1 || strcmp(v, want[i].value) != 0)
            fail_msg("%s: got %zu, first \"%s\"", want[i].name, n, v != NULL ? v : "(none)");
    }
    assert_int_equal(f.req.res.headers.size, sizeof(want) / sizeof(want[0]));
    fake_req_dispose(&f);
}

static void test_page_send_reasons_and_ratelimit_fields(void **state)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {{200, "OK"}, {401, "Unauthorized"}, {403, "Forbidden"}, {429, "Too Many Requests"}, {500, "Error"}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        fake_req_t f;
        fake_req_init(&f, "POST", "/oauth2/authorize");
        f.greq.rl_policy_hdr = h2o_iovec_init(H2O_STRLIT("\"login\";q=10;w=60"));
        f.greq.rl_state_hdr = h2o_iovec_init(H2O_STRLIT("\"login\";r=0;t=42"));
        auth_page_send(&f.greq, cases[i].status, h2o_iovec_init(H2O_STRLIT("<p>x</p>")));
        assert_int_equal(f.req.res.status, cases[i].status);
        assert_string_equal(f.req.res.reason, cases[i].reason);
        assert_string_equal(fake_req_res_header(&f, "ratelimit-policy", NULL), "\"login\";q=10;w=60");
        assert_string_equal(fake_req_res_header(&f, "ratelimit", NULL), "\"login\";r=0;t=42");
        assert_string_equal(f.body, "<p>x</p>");
        fake_req_dispose(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signin_escapes_every_value, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_consent_escapes_every_value_and_scope_word, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_error_page_escapes_title_and_message, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_forms_carry_the_csrf_token_and_only_given_params, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_large_values_survive_growth, test_pool_setup, test_pool_teardown),
        cmocka_unit_test(test_page_send_headers_and_body),
        cmocka_unit_test(test_page_send_reasons_and_ratelimit_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
