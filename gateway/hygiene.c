/*
 * gateway/hygiene.c — what the gateway refuses to trust from a client request: identity and
 * forwarding headers, request ids, oversize heads.
 *
 * Called by the pipeline before anything else looks at the request (SPEC §3): once
 * gw_hygiene_strip() has run, every x-hegate-* header the request carries was set by us.
 * Pure functions over h2o's header vector; no allocation.
 */
#include <string.h>
#include "gateway/gateway.h"

static int has_prefix(const h2o_iovec_t *name, const char *prefix, size_t plen)
{
    return name->len >= plen && h2o_memis(name->base, plen, prefix, plen);
}

/* header names arrive lower-cased from h2o (HTTP/1 parser and HPACK both) */
static int is_untrusted(const h2o_iovec_t *name)
{
    return has_prefix(name, H2O_STRLIT("x-hegate-")) || has_prefix(name, H2O_STRLIT("x-forwarded-")) ||
           h2o_memis(name->base, name->len, H2O_STRLIT("forwarded")) || h2o_memis(name->base, name->len, H2O_STRLIT("x-real-ip"));
}

void gw_hygiene_strip(h2o_headers_t *headers)
{
    size_t w = 0;
    for (size_t r = 0; r != headers->size; ++r) {
        if (is_untrusted(headers->entries[r].name))
            continue;
        if (w != r)
            headers->entries[w] = headers->entries[r];
        ++w;
    }
    headers->size = w;
}

int gw_request_id_is_valid(const char *v, size_t len)
{
    if (len == 0 || len > GW_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

size_t gw_request_head_bytes(h2o_req_t *req)
{
    size_t total = req->input.method.len + req->input.path.len + req->input.authority.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return total;
}
