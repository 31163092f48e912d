/*
 * auth/http/form.c — the parsers of the identity service's inputs: application/x-www-form-urlencoded
 * bodies and query strings (strict: bounded, valid escapes, valid UTF-8, no duplicates), HTTP Basic
 * client credentials (RFC 6749 §2.3.1) and cookies.
 *
 * Called by the /oauth2 handlers (token.c, introspect.c, session.c, authorize.c) for every request they answer. Every parser says "no" to
 * anything unexpected rather than guessing; nothing is logged and nothing allocates outside the
 * request's pool.
 */
#include <string.h>
#include "auth/http/http.h"
#include "crypto/crypto.h"

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* valid UTF-8, no C0 controls except (when ALLOW_WS) tab, CR, LF, no DEL */
static int text_ok(const unsigned char *s, size_t len, int allow_ws)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && !(allow_ws && (c == '\t' || c == '\r' || c == '\n'))) || c == 0x7f)
                return 0;
            ++i;
            continue;
        }
        size_t n;
        unsigned min, cp;
        if ((c & 0xe0) == 0xc0)
            n = 1, min = 0x80, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            n = 2, min = 0x800, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return 0;
        for (size_t k = 1; k <= n; ++k) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* decodes S[0..LEN) into the pool; NULL if malformed */
static char *decode(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen, int allow_ws)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return NULL;
            if ((hi = hexv(s[i + 1])) < 0 || (lo = hexv(s[i + 2])) < 0)
                return NULL;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f || c == '=' || c == '&') {
            return NULL; /* raw spaces, controls, non-ASCII and stray separators are not urlencoded text */
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    if (!text_ok((unsigned char *)out, o, allow_ws))
        return NULL;
    *outlen = o;
    return out;
}

int auth_form_parse(h2o_mem_pool_t *pool, const char *text, size_t len, auth_form_t *out)
{
    out->n = 0;
    if (len > AUTH_FORM_MAX_BYTES)
        return -1;
    if (len == 0)
        return 0;
    const char *p = text, *end = text + len;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (pe == p || eq == NULL || eq == p || out->n == AUTH_FORM_MAX_PARAMS)
            return -1;
        size_t nl, vl;
        char *name = decode(pool, p, (size_t)(eq - p), &nl, 0), *value = decode(pool, eq + 1, (size_t)(pe - eq - 1), &vl, 1);
        if (name == NULL || value == NULL || nl == 0 || strlen(value) != vl)
            return -1;
        for (size_t i = 0; i != out->n; ++i)
            if (strcmp(out->p[i].name, name) == 0)
                return -1;
        out->p[out->n].name = name;
        out->p[out->n].value = value;
        out->p[out->n].value_len = vl;
        out->n++;
        if (amp == NULL)
            break;
        p = amp + 1;
        if (p == end)
            return -1; /* a trailing '&' */
    }
    return 0;
}

const char *auth_form_get(const auth_form_t *form, const char *name)
{
    for (size_t i = 0; i != form->n; ++i)
        if (strcmp(form->p[i].name, name) == 0)
            return form->p[i].value;
    return NULL;
}

int auth_form_content_type_ok(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i == -1)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char ct[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(ct) - 1;
    if (v.len < n || !h2o_lcstris(v.base, n, ct, n))
        return 0;
    const char *rest = v.base + n, *end = v.base + v.len;
    while (rest < end && *rest == ' ')
        ++rest;
    if (rest == end)
        return 1;
    if (*rest != ';')
        return 0;
    ++rest;
    while (rest < end && *rest == ' ')
        ++rest;
    return (size_t)(end - rest) >= 7 &&
           (h2o_lcstris(rest, (size_t)(end - rest), H2O_STRLIT("charset=utf-8")) ||
            h2o_lcstris(rest, (size_t)(end - rest), H2O_STRLIT("charset=\"utf-8\"")));
}

int auth_basic_parse(h2o_req_t *req, const char **id, const char **secret, size_t *secret_len)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1)
        return 0;
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) != -1)
        return -1;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 6 || !h2o_lcstris(v.base, 6, H2O_STRLIT("basic ")))
        return 0;
    const char *b = v.base + 6;
    size_t bl = v.len - 6;
    while (bl != 0 && *b == ' ')
        ++b, --bl;
    if (bl == 0 || bl > 4 * AUTH_KDF_SECRET_MAX)
        return -1;
    /* standard base64 with its padding: mapped onto the URL alphabet, then decoded strictly */
    char *tmp = h2o_mem_alloc_pool(&req->pool, bl);
    size_t tl = 0, pad = 0;
    for (size_t k = 0; k != bl; ++k) {
        char c = b[k];
        if (c == '=') {
            ++pad;
            continue;
        }
        if (pad != 0 || c == '-' || c == '_')
            return -1;
        tmp[tl++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    if (pad > 2 || (tl + pad) % 4 != 0)
        return -1;
    h2o_iovec_t dec;
    dec.base = h2o_mem_alloc_pool(&req->pool, tl);
    long dl = crypto_b64url_decode(dec.base, tl, tmp, tl);
    if (dl <= 0)
        return -1;
    dec.len = (size_t)dl;
    const char *colon = memchr(dec.base, ':', dec.len);
    if (colon == NULL)
        return -1;
    size_t idl, sl;
    char *idv = decode(&req->pool, dec.base, (size_t)(colon - dec.base), &idl, 0);
    char *sv = decode(&req->pool, colon + 1, dec.len - (size_t)(colon - dec.base) - 1, &sl, 0);
    if (idv == NULL || sv == NULL || idl == 0 || sl == 0 || sl > AUTH_KDF_SECRET_MAX)
        return -1;
    *id = idv;
    *secret = sv;
    *secret_len = sl;
    return 1;
}

const char *auth_cookie_get(h2o_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                ++p;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pe = semi != NULL ? semi : end;
            if ((size_t)(pe - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
                size_t vl = (size_t)(pe - p) - nl - 1;
                if (vl > 512)
                    return NULL;
                return h2o_strdup(&req->pool, p + nl + 1, vl).base;
            }
            p = pe;
        }
    }
    return NULL;
}

size_t auth_urlencode(char *buf, size_t bufsz, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strlen(buf);
    for (; *s != '\0' && o + 4 < bufsz; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    buf[o] = '\0';
    return o;
}

int auth_form_of_query(h2o_req_t *req, auth_form_t *out)
{
    if (req->query_at == SIZE_MAX)
        return auth_form_parse(&req->pool, "", 0, out);
    return auth_form_parse(&req->pool, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, out);
}

int auth_form_of_request(h2o_req_t *req, auth_form_t *out)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return auth_form_of_query(req, out) == 0 ? 0 : -1;
    if (!auth_form_content_type_ok(req))
        return -2;
    if (req->entity.len > AUTH_FORM_MAX_BYTES)
        return -1;
    return auth_form_parse(&req->pool, req->entity.base != NULL ? req->entity.base : "", req->entity.len, out) == 0 ? 0 : -1;
}
