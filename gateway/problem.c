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
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit-policy"), 0, NULL,
                                  greq->rl_policy_hdr.base, greq->rl_policy_hdr.len);
        if (greq->rl_state_hdr.len != 0)
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit"), 0, NULL, greq->rl_state_hdr.base,
                                  greq->rl_state_hdr.len);
    }
    gw_problem_send_raw(greq->req, greq->request_id, status, slug, title, detail);
}
