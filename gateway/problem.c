/*
 * gateway/problem.c — the one place that writes an error answer of the gateway's own
 * (RFC 9457 application/problem+json, SPEC §4).
 *
 * Called by every pipeline stage that refuses a request. The detail text is always chosen by
 * the caller from fixed messages: never pass request data (tokens, ids, card numbers) into it.
 */
#include <stdio.h>
#include <string.h>
#include "gateway/gateway.h"

size_t gw_json_escape(char *buf, size_t bufsz, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = s[i];
        if (o + 6 >= bufsz)
            break;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(buf + o, "\\u00", 4);
            buf[o + 4] = hex[c >> 4];
            buf[o + 5] = hex[c & 15];
            o += 6;
        } else {
            buf[o++] = c;
        }
    }
    if (o < bufsz)
        buf[o] = '\0';
    return o;
}

void gw_problem_send_raw(h2o_req_t *req, const char *request_id, int status, const char *slug, const char *title,
                         const char *detail)
{
    char d[512], rid[GW_REQUEST_ID_MAX * 6 + 1] = "";
    gw_json_escape(d, sizeof(d), detail, strlen(detail));
    if (request_id != NULL)
        gw_json_escape(rid, sizeof(rid), request_id, strlen(request_id));
    char *body = h2o_mem_alloc_pool(&req->pool, 1024 + sizeof(d) + sizeof(rid));
    int len = snprintf(body, 1024 + sizeof(d) + sizeof(rid),
                       "{\"type\":\"https://hegate.dev/problems/%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\","
                       "\"request_id\":\"%s\"}",
                       slug, title, status, d, rid);
    req->res.status = status;
    req->res.reason = title;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/problem+json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (request_id != NULL)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, request_id, strlen(request_id));
    /* HTTP/1.1: h2o chunks only 200s, so an error of unknown length would close a keep-alive connection
     * (and its client's reconnections then count against limits.new_connections_per_ip) */
    req->res.content_length = (size_t)len;
    h2o_send_inline(req, body, (size_t)len);
}

void gw_req_add_common_headers(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, greq->request_id,
                          greq->request_id_len);
    if (greq->rl_policy_hdr.len != 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit-policy"), 0, NULL, greq->rl_policy_hdr.base,
                              greq->rl_policy_hdr.len);
    if (greq->rl_state_hdr.len != 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit"), 0, NULL, greq->rl_state_hdr.base,
                              greq->rl_state_hdr.len);
}

void gw_problem_send(gw_req_t *greq, int status, const char *slug, const char *title, const char *detail)
{
    if (greq->rl_policy_hdr.len != 0 || greq->rl_state_hdr.len != 0) {
        /* the RateLimit fields go on errors of a limited route too */
        h2o_req_t *req = greq->req;
        if (greq->rl_policy_hdr.len != 0)
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit-policy"), 0, NULL, greq->rl_policy_hdr.base,
                                  greq->rl_policy_hdr.len);
        if (greq->rl_state_hdr.len != 0)
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit"), 0, NULL, greq->rl_state_hdr.base,
                                  greq->rl_state_hdr.len);
    }
    gw_problem_send_raw(greq->req, greq->request_id, status, slug, title, detail);
}

/* ---- JSON answers of the own endpoints ------------------------------------------------------------------ */

void gw_add_no_store(h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("pragma"), 0, NULL, H2O_STRLIT("no-cache"));
}

void gw_send_json(gw_req_t *greq, int status, const char *text, size_t len)
{
    h2o_req_t *req = greq->req;
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 401 ? "Unauthorized" : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = len; /* HTTP/1.1: framed by length, so the connection stays open even after an error */
    h2o_send_inline(req, text, len);
}

void gw_oauth_error(gw_req_t *greq, int status, const char *error, const char *description)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "{\"error\":\"%s\",\"error_description\":\"%s\"}", error, description);
    h2o_req_t *req = greq->req;
    if (status == 401 && strcmp(error, "invalid_client") == 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Basic realm=\"hegate\""));
    else if ((status == 401 || status == 403) && h2o_find_header(&req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, -1) == -1) {
        const char *www = status == 401 ? "Bearer realm=\"hegate\", error=\"invalid_token\""
                                        : "Bearer realm=\"hegate\", error=\"insufficient_scope\"";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, www, strlen(www));
    }
    gw_send_json(greq, status, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void gw_send_unavailable(gw_req_t *greq, const char *detail)
{
    if (greq->rt != NULL && greq->rt->errors == GW_ERRORS_OAUTH)
        gw_oauth_error(greq, 503, "temporarily_unavailable", detail);
    else
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", detail);
}

/* ---- h2o's own error answers ---------------------------------------------------------------------------
 * h2o answers some malformed requests before any handler runs (HTTP/1.1 parse errors: 400; a declared
 * body over its hard cap: 413; unknown Expect: 417), as text/plain. This filter, on the host's fallback
 * path, turns those into the same problem+json the pipeline writes, so every error the gateway itself
 * produces has one shape. It only touches text/plain 4xx/5xx answers, never a proxied response. */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
} rewrite_ostream_t;

static void rewrite_do_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    rewrite_ostream_t *self = (void *)_self;
    if (!h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(&self->super, req, &self->body, 1, state);
    } else {
        h2o_ostream_send_next(&self->super, req, NULL, 0, state); /* drop h2o's text; ours goes with the final call */
    }
}

static const char *slug_of(int status)
{
    switch (status) {
    case 400:
        return "bad-request";
    case 404:
        return "not-found";
    case 405:
        return "method-not-allowed";
    case 413:
        return "too-large";
    case 431:
        return "headers-too-large";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "bad-gateway" : "bad-request";
    }
}

static void rewrite_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && ct != -1 && h2o_memis(req->res.headers.entries[ct].value.base, 10, H2O_STRLIT("text/plain"))) {
        int status = req->res.status;
        char body[512];
        int len = snprintf(body, sizeof(body),
                           "{\"type\":\"https://hegate.dev/problems/%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\","
                           "\"request_id\":null}",
                           slug_of(status), status == 413 ? "Content Too Large" : "Bad Request", status,
                           status == 413 ? "the request body exceeds the gateway's limit" : "the request is malformed");
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/problem+json"));
        req->res.content_length = (size_t)len;
        rewrite_ostream_t *os = (void *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = rewrite_do_send;
        os->body = h2o_strdup(&req->pool, body, (size_t)len);
        slot = &os->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void gw_problem_register_rewriter(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = rewrite_on_setup_ostream;
}
