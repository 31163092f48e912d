/*
 * tests/unit/auth/test_form.c — auth/form.c, the strict parsers of the identity service's inputs:
 * application/x-www-form-urlencoded (pairs, '+' as space, %XX, empty pieces, duplicates, control
 * characters, invalid UTF-8, the size and pair caps), the form content type, HTTP Basic client
 * credentials (RFC 6749 §2.3.1: base64 then form-urldecoding), cookies, and auth_urlencode.
 * Request-taking functions run on a hand-made h2o_req_t (tests/unit/fake_req.h).
 */
#include "tests/unit/unit.h"
#include <openssl/evp.h>
#include "auth/http/http.h"
#include "tests/unit/fake_req.h"

static int parse(const char *text, auth_form_t *form)
{
    return auth_form_parse(&test_pool, text, strlen(text), form);
}

/* every input in TEXTS is refused */
static void assert_all_refused(const char *const *texts, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        auth_form_t form;
        if (parse(texts[i], &form) != -1)
            fail_msg("accepted: \"%s\"", texts[i]);
    }
}

static void test_form_parse_decodes_pairs_in_order(void **state)
{
    auth_form_t form;
    assert_int_equal(parse("grant_type=authorization_code&code=abc%2Fdef&redirect_uri=hecheng%3A%2F%2Foauth%2Fcallback", &form), 0);
    assert_int_equal(form.n, 3);
    assert_string_equal(form.p[0].name, "grant_type");
    assert_string_equal(form.p[0].value, "authorization_code");
    assert_string_equal(form.p[1].name, "code");
    assert_string_equal(form.p[1].value, "abc/def");
    assert_int_equal(form.p[1].value_len, 7);
    assert_string_equal(form.p[2].value, "hecheng://oauth/callback");
    assert_string_equal(auth_form_get(&form, "code"), "abc/def");
    assert_null(auth_form_get(&form, "Code")); /* names are case-sensitive */
    assert_null(auth_form_get(&form, "missing"));
}

static void test_form_parse_plus_is_space_and_escaped_plus_is_plus(void **state)
{
    auth_form_t form;
    assert_int_equal(parse("q=a+b++c&p=1%2B1&a+b=x", &form), 0);
    assert_string_equal(auth_form_get(&form, "q"), "a b  c");
    assert_string_equal(auth_form_get(&form, "p"), "1+1");
    assert_string_equal(auth_form_get(&form, "a b"), "x");
}

static void test_form_parse_empty_text_and_empty_values(void **state)
{
    auth_form_t form;
    form.n = 99;
    assert_int_equal(auth_form_parse(&test_pool, "", 0, &form), 0);
    assert_int_equal(form.n, 0);
    assert_int_equal(parse("state=&scope=openid", &form), 0); /* an empty value is a value */
    assert_string_equal(auth_form_get(&form, "state"), "");
    assert_int_equal(form.p[0].value_len, 0);
}

static void test_form_parse_refuses_empty_pieces(void **state)
{
    static const char *const bad[] = {"&a=1", "a=1&", "a=1&&b=2", "&", "=1", "a", "a=1&b", "a=1&=2", "%20"};
    assert_all_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_form_parse_refuses_bad_escapes(void **state)
{
    static const char *const bad[] = {"a=%", "a=%4", "a=%G1", "a=%4G", "a=%%41", "%zz=1", "a=1%", "a=%-1", "a=% 1"};
    assert_all_refused(bad, sizeof(bad) / sizeof(bad[0]));
    auth_form_t form;
    assert_int_equal(parse("a=%4a%4A", &form), 0); /* both cases of hex digits */
    assert_string_equal(auth_form_get(&form, "a"), "JJ");
}

static void test_form_parse_refuses_duplicate_names(void **state)
{
    static const char *const bad[] = {"a=1&a=2", "a=1&a=1", "a=1&b=2&a=3", "a=1&%61=2", "a+b=1&a%20b=2"};
    assert_all_refused(bad, sizeof(bad) / sizeof(bad[0]));
    auth_form_t form;
    assert_int_equal(parse("a=1&A=2", &form), 0);
    assert_int_equal(form.n, 2);
}

static void test_form_parse_refuses_raw_and_escaped_controls(void **state)
{
    static const char *const bad[] = {
        "a=%00",      "a=b%00c", "a=%01",  "a=%1F",  "a=%7F", "a=%7f", /* escaped controls and DEL */
        "%09=1",      "%0A=1",   "%0d=1",                              /* whitespace controls are refused in names */
        "a=b c",      "a=b\tc",  "a=\x01", "a=\x7f",                   /* raw space, tab, controls, DEL */
        "a=\xc3\xa9",                                                  /* raw non-ASCII must be percent-encoded */
        "a=b=c",                                                       /* a stray '=' in a value */
    };
    assert_all_refused(bad, sizeof(bad) / sizeof(bad[0]));
    auth_form_t form;
    assert_int_equal(parse("a=x%09y%0D%0Az", &form), 0); /* tab, CR and LF are allowed in values */
    assert_string_equal(auth_form_get(&form, "a"), "x\ty\r\nz");
    assert_int_equal(parse("a=%3D%26", &form), 0); /* escaped separators are data */
    assert_string_equal(auth_form_get(&form, "a"), "=&");
}

static void test_form_parse_utf8(void **state)
{
    auth_form_t form;
    assert_int_equal(parse("name=%E5%BC%A0%E4%B8%89&e=%C3%A9&emoji=%F0%9F%98%80&max=%F4%8F%BF%BF", &form), 0);
    assert_string_equal(auth_form_get(&form, "name"), "张三");
    assert_string_equal(auth_form_get(&form, "e"), "\xc3\xa9");
    assert_string_equal(auth_form_get(&form, "emoji"), "\xf0\x9f\x98\x80");
    assert_string_equal(auth_form_get(&form, "max"), "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    static const char *const bad[] = {
        "a=%C3",          /* truncated 2-byte sequence */
        "a=%E4%B8",       /* truncated 3-byte sequence */
        "a=%F0%9F%98",    /* truncated 4-byte sequence */
        "a=%C3x",         /* continuation missing */
        "a=%80",          /* lone continuation byte */
        "a=%C0%AF",       /* overlong '/' */
        "a=%E0%80%AF",    /* overlong, 3 bytes */
        "a=%ED%A0%80",    /* UTF-16 surrogate U+D800 */
        "a=%F4%90%80%80", /* above U+10FFFF */
        "a=%F8%88%80%80%80",
        "a=%FE",
        "a=%FF",
        "%C3=1", /* names too */
    };
    assert_all_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_form_parse_size_cap(void **state)
{
    char *text = malloc(AUTH_FORM_MAX_BYTES + 2);
    memcpy(text, "a=", 2);
    memset(text + 2, 'x', AUTH_FORM_MAX_BYTES);
    auth_form_t form;
    assert_int_equal(auth_form_parse(&test_pool, text, AUTH_FORM_MAX_BYTES, &form), 0);
    assert_int_equal(form.p[0].value_len, AUTH_FORM_MAX_BYTES - 2);
    assert_int_equal(auth_form_parse(&test_pool, text, AUTH_FORM_MAX_BYTES + 1, &form), -1);
    free(text);
}

static void test_form_parse_pair_cap(void **state)
{
    char text[AUTH_FORM_MAX_PARAMS * 8 + 16] = "";
    size_t len = 0;
    for (int i = 0; i != AUTH_FORM_MAX_PARAMS; ++i)
        len += (size_t)sprintf(text + len, "%sp%d=%d", i == 0 ? "" : "&", i, i);
    auth_form_t form;
    assert_int_equal(auth_form_parse(&test_pool, text, len, &form), 0);
    assert_int_equal(form.n, AUTH_FORM_MAX_PARAMS);
    assert_string_equal(auth_form_get(&form, "p31"), "31");
    len += (size_t)sprintf(text + len, "&p%d=x", AUTH_FORM_MAX_PARAMS);
    assert_int_equal(auth_form_parse(&test_pool, text, len, &form), -1);
}

static void test_form_parse_reads_only_len_bytes(void **state)
{
    auth_form_t form;
    const char text[] = "a=1&b=2";
    assert_int_equal(auth_form_parse(&test_pool, text, 3, &form), 0);
    assert_int_equal(form.n, 1);
    assert_string_equal(auth_form_get(&form, "a"), "1");
    assert_null(auth_form_get(&form, "b"));
}

static int content_type_ok(const char *value)
{
    fake_req_t f;
    fake_req_init(&f, "POST", "/oauth2/token");
    if (value != NULL)
        fake_req_add_header(&f, "content-type", value);
    int r = auth_form_content_type_ok(&f.req);
    fake_req_dispose(&f);
    return r;
}

static void test_form_content_type(void **state)
{
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded"), 1);
    assert_int_equal(content_type_ok("Application/X-WWW-Form-Urlencoded"), 1);
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded; charset=utf-8"), 1);
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded;charset=UTF-8"), 1);
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded ; charset=\"utf-8\""), 1);
    assert_int_equal(content_type_ok(NULL), 0);
    assert_int_equal(content_type_ok("application/json"), 0);
    assert_int_equal(content_type_ok("application/x-www-form-urlencodedx"), 0);
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded; charset=latin1"), 0);
    assert_int_equal(content_type_ok("application/x-www-form-urlencoded; charset=utf-8; x=y"), 0);
    assert_int_equal(content_type_ok("multipart/form-data"), 0);
}

/* "Basic " + standard base64 of CREDS (OpenSSL's encoder, independent of auth/'s) */
static void basic_header(char *out, const char *creds)
{
    strcpy(out, "Basic ");
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)creds, (int)strlen(creds));
}

typedef struct {
    int rc;
    char id[2048], secret[2048];
    size_t secret_len;
} basic_result_t;

static basic_result_t basic(const char *const *values, size_t n)
{
    basic_result_t r = {0};
    fake_req_t f;
    fake_req_init(&f, "POST", "/oauth2/token");
    for (size_t i = 0; i != n; ++i)
        fake_req_add_header(&f, "authorization", values[i]);
    const char *id = NULL, *secret = NULL;
    r.rc = auth_basic_parse(&f.req, &id, &secret, &r.secret_len);
    if (r.rc == 1) {
        snprintf(r.id, sizeof(r.id), "%s", id);
        snprintf(r.secret, sizeof(r.secret), "%s", secret);
    }
    fake_req_dispose(&f);
    return r;
}

static basic_result_t basic_creds(const char *creds)
{
    char hdr[4096];
    basic_header(hdr, creds);
    const char *v[] = {hdr};
    return basic(v, 1);
}

static basic_result_t basic_raw(const char *value)
{
    const char *v[] = {value};
    return basic(v, 1);
}

static void test_basic_parse_well_formed(void **state)
{
    basic_result_t r = basic_creds("gate-line1:s3cret");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.id, "gate-line1");
    assert_string_equal(r.secret, "s3cret");
    assert_int_equal(r.secret_len, 6);
    /* RFC 6749 §2.3.1: both parts are form-urlencoded before base64 */
    r = basic_creds("my%20client:p%40ss%3Aword+x");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.id, "my client");
    assert_string_equal(r.secret, "p@ss:word x");
    /* the first colon splits; later ones belong to the secret */
    r = basic_creds("c:a:b");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.id, "c");
    assert_string_equal(r.secret, "a:b");
    /* the scheme name is case-insensitive */
    r = basic_raw("bAsIc Yzpz"); /* "c:s" */
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.id, "c");
}

static void test_basic_parse_absent_or_other_scheme(void **state)
{
    assert_int_equal(basic(NULL, 0).rc, 0);
    assert_int_equal(basic_raw("Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig").rc, 0);
    assert_int_equal(basic_raw("Basi").rc, 0);
}

static void test_basic_parse_refuses_malformed(void **state)
{
    static const char *const bad[] = {
        "Basic ",             /* nothing */
        "Basic    ",          /* only spaces */
        "Basic Yzpz=",        /* padding where none belongs */
        "Basic Yzp",          /* length not a multiple of 4 */
        "Basic YzpzYQ",       /* padding missing */
        "Basic YzpzYQ===",    /* three padding characters */
        "Basic YzpzYQ==YQ==", /* data after padding */
        "Basic Yz-z",         /* the URL alphabet is not standard base64 */
        "Basic Yz_z",
        "Basic Yz!z",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (basic_raw(bad[i]).rc != -1)
            fail_msg("accepted: %s", bad[i]);
    static const char *const bad_creds[] = {"nocolon",    ":secret", "client:", "cli%ent:s",
                                            "client:s%0", "c\x01:s", "c:s%00",  "c:s\x7f"};
    for (size_t i = 0; i != sizeof(bad_creds) / sizeof(bad_creds[0]); ++i)
        if (basic_creds(bad_creds[i]).rc != -1)
            fail_msg("accepted credentials: %s", bad_creds[i]);
}

static void test_basic_parse_refuses_two_headers(void **state)
{
    char a[64], b[64];
    basic_header(a, "c:s");
    basic_header(b, "d:t");
    const char *v[] = {a, b};
    assert_int_equal(basic(v, 2).rc, -1);
}

static void test_basic_parse_secret_length_cap(void **state)
{
    char creds[AUTH_KDF_SECRET_MAX + 16];
    strcpy(creds, "c:");
    memset(creds + 2, 's', AUTH_KDF_SECRET_MAX);
    creds[2 + AUTH_KDF_SECRET_MAX] = '\0';
    basic_result_t r = basic_creds(creds);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.secret_len, AUTH_KDF_SECRET_MAX);
    strcat(creds, "s");
    assert_int_equal(basic_creds(creds).rc, -1);
}

static const char *cookie(fake_req_t *f, const char *const *values, size_t n, const char *name)
{
    fake_req_init(f, "GET", "/oauth2/authorize");
    for (size_t i = 0; i != n; ++i)
        fake_req_add_header(f, "cookie", values[i]);
    return auth_cookie_get(&f->req, name);
}

static void test_cookie_get(void **state)
{
    fake_req_t f;
    const char *one[] = {"a=1; hegate_sid=abc.def;b=2"};
    assert_string_equal(cookie(&f, one, 1, "hegate_sid"), "abc.def");
    fake_req_dispose(&f);
    assert_string_equal(cookie(&f, one, 1, "b"), "2");
    fake_req_dispose(&f);
    assert_null(cookie(&f, one, 1, "hegate_pre"));
    fake_req_dispose(&f);
    /* HTTP/2 clients may send each cookie in its own header */
    const char *split[] = {"a=1", "hegate_pre=xyz"};
    assert_string_equal(cookie(&f, split, 2, "hegate_pre"), "xyz");
    fake_req_dispose(&f);
    /* a longer or shorter name is another cookie */
    const char *near[] = {"hegate_sidx=1; xhegate_sid=2; hegate_si=3"};
    assert_null(cookie(&f, near, 1, "hegate_sid"));
    fake_req_dispose(&f);
    /* the first of two wins; an empty value is a value */
    const char *two[] = {"k=first; k=second", "e="};
    assert_string_equal(cookie(&f, two, 2, "k"), "first");
    fake_req_dispose(&f);
    assert_string_equal(cookie(&f, two, 2, "e"), "");
    fake_req_dispose(&f);
    assert_null(cookie(&f, NULL, 0, "k"));
    fake_req_dispose(&f);
}

static void test_cookie_get_value_cap(void **state)
{
    char v[600] = "hegate_sid=";
    memset(v + 11, 'v', 512);
    v[11 + 512] = '\0';
    fake_req_t f;
    const char *values[] = {v};
    const char *got = cookie(&f, values, 1, "hegate_sid");
    assert_non_null(got);
    assert_int_equal(strlen(got), 512);
    fake_req_dispose(&f);
    strcat(v, "v");
    assert_null(cookie(&f, values, 1, "hegate_sid"));
    fake_req_dispose(&f);
}

static void test_urlencode(void **state)
{
    char buf[256] = "";
    assert_int_equal(auth_urlencode(buf, sizeof(buf), "AZaz09-._~"), 10);
    assert_string_equal(buf, "AZaz09-._~");
    buf[0] = '\0';
    auth_urlencode(buf, sizeof(buf), "a b/?&=+%#\"<\x01\x7f");
    assert_string_equal(buf, "a%20b%2F%3F%26%3D%2B%25%23%22%3C%01%7F");
    buf[0] = '\0';
    auth_urlencode(buf, sizeof(buf), "张");
    assert_string_equal(buf, "%E5%BC%A0");
    /* appends to what BUF holds */
    strcpy(buf, "https://mp.partner.example/cb?code=");
    size_t n = auth_urlencode(buf, sizeof(buf), "a/b");
    assert_string_equal(buf, "https://mp.partner.example/cb?code=a%2Fb");
    assert_int_equal(n, strlen(buf));
}

static void test_urlencode_truncates_inside_bufsz_at_escape_boundaries(void **state)
{
    const char *in = "a/b/c/d/e/f/g/h";
    char full[128] = "";
    auth_urlencode(full, sizeof(full), in);
    for (size_t bufsz = 1; bufsz != 40; ++bufsz) {
        char buf[64];
        memset(buf, '#', sizeof(buf));
        buf[0] = '\0';
        size_t n = auth_urlencode(buf, bufsz, in);
        assert_true(n < bufsz);
        assert_int_equal(strlen(buf), n);
        for (size_t i = bufsz; i != sizeof(buf); ++i)
            assert_int_equal(buf[i], '#'); /* nothing written past bufsz */
        assert_memory_equal(buf, full, n); /* a prefix of the full encoding, never a cut %XX */
        if (n >= 1)
            assert_int_not_equal(buf[n - 1], '%');
        if (n >= 2)
            assert_int_not_equal(buf[n - 2], '%');
        if (bufsz < strlen(full) + 1)
            assert_true(n < strlen(full));
    }
    char roomy[64] = "";
    assert_int_equal(auth_urlencode(roomy, sizeof(roomy), in), strlen(full));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_form_parse_decodes_pairs_in_order, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_plus_is_space_and_escaped_plus_is_plus, test_pool_setup,
                                        test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_empty_text_and_empty_values, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_refuses_empty_pieces, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_refuses_bad_escapes, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_refuses_duplicate_names, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_refuses_raw_and_escaped_controls, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_utf8, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_size_cap, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_pair_cap, test_pool_setup, test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_form_parse_reads_only_len_bytes, test_pool_setup, test_pool_teardown),
        cmocka_unit_test(test_form_content_type),
        cmocka_unit_test(test_basic_parse_well_formed),
        cmocka_unit_test(test_basic_parse_absent_or_other_scheme),
        cmocka_unit_test(test_basic_parse_refuses_malformed),
        cmocka_unit_test(test_basic_parse_refuses_two_headers),
        cmocka_unit_test(test_basic_parse_secret_length_cap),
        cmocka_unit_test(test_cookie_get),
        cmocka_unit_test(test_cookie_get_value_cap),
        cmocka_unit_test(test_urlencode),
        cmocka_unit_test(test_urlencode_truncates_inside_bufsz_at_escape_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
