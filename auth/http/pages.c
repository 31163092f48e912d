/*
 * auth/http/pages.c — the HTML of the sign-in service: sign-in, consent and error pages. Plain,
 * accessible (labels, lang, one column, large targets), mobile-first, no script, no external
 * resources; every value from a request or the config is HTML-escaped, and pages carry headers that
 * forbid framing, sniffing, caching and referrers.
 *
 * Called by authorize.c (also for the device pages of SPEC §6.1). Pages never show a password, a phone number or any other personal data.
 */
#include <string.h>
#include "auth/http/http.h"

typedef struct {
    h2o_mem_pool_t *pool;
    char *buf;
    size_t len, cap;
} sb_t;

static void sb_grow(sb_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap * 2 + more + 1;
    char *nb = h2o_mem_alloc_pool(b->pool, cap);
    if (b->len != 0)
        memcpy(nb, b->buf, b->len);
    b->buf = nb;
    b->cap = cap;
}

static void sb_raw(sb_t *b, const char *s)
{
    size_t l = strlen(s);
    sb_grow(b, l);
    memcpy(b->buf + b->len, s, l);
    b->len += l;
    b->buf[b->len] = '\0';
}

static void sb_esc(sb_t *b, const char *s)
{
    for (; s != NULL && *s != '\0'; ++s) {
        switch (*s) {
        case '&':
            sb_raw(b, "&amp;");
            break;
        case '<':
            sb_raw(b, "&lt;");
            break;
        case '>':
            sb_raw(b, "&gt;");
            break;
        case '"':
            sb_raw(b, "&quot;");
            break;
        case '\'':
            sb_raw(b, "&#39;");
            break;
        default: {
            char c[2] = {*s, '\0'};
            sb_raw(b, c);
        }
        }
    }
}

static void hidden(sb_t *b, const char *name, const char *value)
{
    if (value == NULL)
        return;
    sb_raw(b, "<input type=\"hidden\" name=\"");
    sb_esc(b, name);
    sb_raw(b, "\" value=\"");
    sb_esc(b, value);
    sb_raw(b, "\">\n");
}

static void head(sb_t *b, const char *title)
{
    sb_raw(b, "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    sb_esc(b, title);
    sb_raw(b, "</title>\n<style>\n"
              "body{font:18px/1.5 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#111}\n"
              "main{max-width:26rem;margin:0 auto;background:#fff;padding:1.25rem;border-radius:.5rem}\n"
              "label{display:block;margin-top:1rem;font-weight:600}\n"
              "input[type=tel],input[type=password]{box-sizing:border-box;width:100%;font-size:1.1rem;padding:.7rem;"
              "margin-top:.3rem;border:1px solid #767676;border-radius:.3rem}\n"
              "button{width:100%;font-size:1.1rem;padding:.8rem;margin-top:1.25rem;border:0;border-radius:.3rem;"
              "background:#0b57d0;color:#fff}\n"
              "button.secondary{background:#fff;color:#0b57d0;border:1px solid #0b57d0}\n"
              ".error{color:#a50e0e;background:#fce8e6;padding:.6rem;border-radius:.3rem}\n"
              ":focus{outline:3px solid #f9ab00;outline-offset:2px}\n"
              "</style>\n</head>\n<body>\n<main>\n");
}

static void params(sb_t *b, const auth_authz_params_t *p, const char *csrf)
{
    hidden(b, "response_type", p->response_type);
    hidden(b, "client_id", p->client_id);
    hidden(b, "redirect_uri", p->redirect_uri);
    hidden(b, "scope", p->scope);
    hidden(b, "state", p->state);
    hidden(b, "code_challenge", p->code_challenge);
    hidden(b, "code_challenge_method", p->code_challenge_method);
    hidden(b, "nonce", p->nonce);
    hidden(b, "user_code", p->user_code);
    hidden(b, "csrf", csrf);
}

static h2o_iovec_t finish(sb_t *b)
{
    sb_raw(b, "</main>\n</body>\n</html>\n");
    return h2o_iovec_init(b->buf, b->len);
}

h2o_iovec_t auth_page_signin(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *error,
                             const char *client_label)
{
    sb_t b = {pool, NULL, 0, 0};
    sb_grow(&b, 4096);
    head(&b, "登录 Sign in — 鹤城在线");
    sb_raw(&b, "<h1>登录 Sign in</h1>\n<p>");
    sb_esc(&b, client_label);
    sb_raw(&b, " 请求使用您的鹤城在线账号。<br>wants to use your Hecheng Online account.</p>\n");
    if (error != NULL) {
        sb_raw(&b, "<p class=\"error\" role=\"alert\" id=\"error\">");
        sb_esc(&b, error);
        sb_raw(&b, "</p>\n");
    }
    sb_raw(&b, p->user_code != NULL ? "<form method=\"post\" action=\"/oauth2/device\">\n"
                                    : "<form method=\"post\" action=\"/oauth2/authorize\">\n");
    params(&b, p, csrf);
    sb_raw(&b, "<label for=\"phone\">手机号 Phone number</label>\n"
               "<input type=\"tel\" id=\"phone\" name=\"phone\" autocomplete=\"username\" inputmode=\"tel\" maxlength=\"32\" "
               "required>\n"
               "<label for=\"password\">密码 Password</label>\n"
               "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" maxlength=\"1024\" "
               "required>\n"
               "<button type=\"submit\" name=\"action\" value=\"signin\" id=\"signin\">登录 Sign in</button>\n</form>\n");
    return finish(&b);
}

static const char *scope_text(const char *s)
{
    static const struct {
        const char *scope, *text;
    } known[] = {{"openid", "您的账号标识 Your account identifier"},
                 {"profile", "您的姓名（部分隐藏）和手机号（部分隐藏）Your masked name and phone number"},
                 {"appointment", "预约办事大厅 Book appointments at service halls"},
                 {"query", "查询公积金、社保、工资记录 Query fund, social-insurance and wage records"},
                 {"service", "在线办事 File applications online"},
                 {"qr", "鹤码通城市码 The Crane city code"},
                 {"payment", "支付 Payments"},
                 {"device", "批准其他设备的登录 Approve sign-ins on other devices"}};
    for (size_t i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        if (strcmp(known[i].scope, s) == 0)
            return known[i].text;
    return NULL;
}

/* the scopes of SCOPE (space-separated) as a list of what they let the client do */
static void scope_list(sb_t *b, const char *scope)
{
    char word[128];
    sb_raw(b, "<ul>\n");
    for (const char *s = scope; s != NULL && *s != '\0';) {
        size_t l = strcspn(s, " ");
        if (l != 0 && l < sizeof(word)) {
            memcpy(word, s, l);
            word[l] = '\0';
            const char *t = scope_text(word);
            sb_raw(b, "<li>");
            sb_esc(b, t != NULL ? t : word);
            sb_raw(b, " (<code>");
            sb_esc(b, word);
            sb_raw(b, "</code>)</li>\n");
        }
        s += l;
        while (*s == ' ')
            ++s;
    }
    sb_raw(b, "</ul>\n");
}

h2o_iovec_t auth_page_device_code(h2o_mem_pool_t *pool, const char *error)
{
    sb_t b = {pool, NULL, 0, 0};
    sb_grow(&b, 2048);
    head(&b, "设备登录 Sign in a device — 鹤城在线");
    sb_raw(&b, "<h1>设备登录 Sign in a device</h1>\n<p>输入设备屏幕上显示的代码。<br>Enter the code the device shows.</p>\n");
    if (error != NULL) {
        sb_raw(&b, "<p class=\"error\" role=\"alert\" id=\"error\">");
        sb_esc(&b, error);
        sb_raw(&b, "</p>\n");
    }
    sb_raw(&b, "<form method=\"get\" action=\"/oauth2/device\">\n"
               "<label for=\"user_code\">代码 Code</label>\n"
               "<input type=\"text\" id=\"user_code\" name=\"user_code\" autocomplete=\"off\" autocapitalize=\"characters\" "
               "spellcheck=\"false\" maxlength=\"20\" placeholder=\"XXXX-XXXX\" required "
               "style=\"box-sizing:border-box;width:100%;font-size:1.4rem;padding:.7rem;letter-spacing:.15em\">\n"
               "<button type=\"submit\" id=\"next\">继续 Continue</button>\n</form>\n");
    return finish(&b);
}

h2o_iovec_t auth_page_device_approve(h2o_mem_pool_t *pool, const char *user_code, const char *csrf, const char *name,
                                     const char *description, const char *scope, long minutes_left)
{
    sb_t b = {pool, NULL, 0, 0};
    char left[96];
    sb_grow(&b, 4096);
    head(&b, "设备登录 Sign in a device — 鹤城在线");
    sb_raw(&b, "<h1>登录此设备？Sign in this device?</h1>\n<p><strong id=\"device-name\">");
    sb_esc(&b, name);
    sb_raw(&b, "</strong></p>\n");
    if (description != NULL) {
        sb_raw(&b, "<p id=\"device-description\">");
        sb_esc(&b, description);
        sb_raw(&b, "</p>\n");
    }
    sb_raw(&b, "<p>将以您的身份登录，并可以：<br>will be signed in as you and may:</p>\n");
    scope_list(&b, scope);
    snprintf(left, sizeof(left), "代码 %s，%ld 分钟内有效。Code %s, valid for %ld more minute%s.", user_code, minutes_left, user_code,
             minutes_left, minutes_left == 1 ? "" : "s");
    sb_raw(&b, "<p id=\"time-left\">");
    sb_esc(&b, left);
    sb_raw(&b, "</p>\n<p>只有设备就在您面前时才批准。Approve only if the device is in front of you.</p>\n"
               "<form method=\"post\" action=\"/oauth2/device\">\n");
    hidden(&b, "user_code", user_code);
    hidden(&b, "csrf", csrf);
    sb_raw(&b, "<button type=\"submit\" name=\"action\" value=\"approve\" id=\"approve\">批准 Approve</button>\n"
               "<button type=\"submit\" name=\"action\" value=\"deny\" id=\"deny\" class=\"secondary\">拒绝 Deny</button>\n"
               "</form>\n");
    return finish(&b);
}

h2o_iovec_t auth_page_consent(h2o_mem_pool_t *pool, const auth_authz_params_t *p, const char *csrf, const char *client_label)
{
    sb_t b = {pool, NULL, 0, 0};
    sb_grow(&b, 4096);
    head(&b, "授权 Allow access — 鹤城在线");
    sb_raw(&b, "<h1>授权 Allow access</h1>\n<p><strong>");
    sb_esc(&b, client_label);
    sb_raw(&b, "</strong> 请求以下权限：<br>asks for:</p>\n");
    scope_list(&b, p->scope);
    sb_raw(&b, "<form method=\"post\" action=\"/oauth2/authorize\">\n");
    params(&b, p, csrf);
    sb_raw(&b, "<button type=\"submit\" name=\"action\" value=\"consent\" id=\"allow\">同意 Allow</button>\n"
               "<button type=\"submit\" name=\"action\" value=\"deny\" id=\"deny\" class=\"secondary\">拒绝 Deny</button>\n"
               "</form>\n");
    return finish(&b);
}

h2o_iovec_t auth_page_end_session(h2o_mem_pool_t *pool, const char *csrf)
{
    sb_t b = {pool, NULL, 0, 0};
    sb_grow(&b, 2048);
    head(&b, "退出登录 Sign out — 鹤城在线");
    sb_raw(&b, "<h1>退出登录 Sign out</h1>\n<p>要退出此浏览器中的鹤城在线账号吗？<br>Sign out of your Hecheng Online account in "
               "this browser?</p>\n<form method=\"post\" action=\"/oauth2/end_session\">\n");
    hidden(&b, "csrf", csrf);
    sb_raw(&b, "<button type=\"submit\" name=\"action\" value=\"logout\" id=\"logout\">退出 Sign out</button>\n</form>\n");
    return finish(&b);
}

h2o_iovec_t auth_page_error(h2o_mem_pool_t *pool, const char *title, const char *message)
{
    sb_t b = {pool, NULL, 0, 0};
    sb_grow(&b, 2048);
    head(&b, title);
    sb_raw(&b, "<h1>");
    sb_esc(&b, title);
    sb_raw(&b, "</h1>\n<p role=\"alert\">");
    sb_esc(&b, message);
    sb_raw(&b, "</p>\n");
    return finish(&b);
}

void auth_page_send(gw_req_t *greq, int status, h2o_iovec_t body)
{
    h2o_req_t *req = greq->req;
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" : status == 429 ? "Too Many Requests" : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/html; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("pragma"), 0, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL, H2O_STRLIT("DENY"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL, H2O_STRLIT("no-referrer"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                          H2O_STRLIT("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"));
    gw_req_add_common_headers(greq);
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}
