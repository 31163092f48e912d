/*
 * qr/http/trust.c — GET /qr/v1/trust (public): the trust list a gate downloads, as a compact JWS signed
 * by the newest token key — the generation's code keys with their scenes and validity, and the deny
 * list read from Redis (the deny_list script prunes it on the way). Called by the pipeline through the
 * family's table (family.c). It must never answer an unsigned or partial list: any failure is a problem.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include "qr/http/internal.h"

static void on_trust_deny(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    gw_req_t *greq = o->greq;
    qr_gen_t *g = gw_family_gen_data(greq);
    const char *kid;
    qr_key_t *signer = qr_http_gen_token_signer(greq, &kid);
    if (signer == NULL) {
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "no token key signs the trust list");
        return;
    }
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    uint32_t *deny = h2o_mem_alloc_pool(&greq->req->pool, (n + 1) * sizeof(*deny));
    size_t nd = 0;
    for (size_t i = 0; i != n; ++i) {
        const char *s = gw_reply_str(reply, i);
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*s != '\0' && *end == '\0' && v <= UINT32_MAX)
            deny[nd++] = (uint32_t)v;
    }
    qr_trust_t *t = qr_trust_new((int64_t)time(NULL));
    char *jws = NULL;
    size_t len = 0;
    int ok = t != NULL;
    for (size_t i = 0; ok && i != g->nkeys; ++i)
        ok = qr_trust_add_key(t, g->keys[i], g->scenes, g->not_before[i], g->not_after[i]) == 0;
    ok = ok && qr_trust_set_deny(t, deny, nd) == 0 && qr_trust_to_jws(t, signer, kid, &jws, &len) == 0;
    qr_trust_free(t);
    if (!ok) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the trust list cannot be built");
        return;
    }
    h2o_req_t *req = greq->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/jose"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("public, max-age=60"));
    gw_req_add_common_headers(greq);
    h2o_iovec_t body = h2o_strdup(&req->pool, jws, len);
    free(jws);
    h2o_send_inline(req, body.base, body.len);
}

void qr_http_trust(gw_req_t *greq)
{
    if (qr_http_gen(greq) == NULL)
        return;
    h2o_mem_pool_t *pool = &greq->req->pool;
    const gw_conf_t *conf = greq->gen->conf;
    const char *args[] = {QR_RK "qrdenyz", qr_http_pool_printf(pool, "%" PRId64, (int64_t)time(NULL)),
                          qr_http_pool_printf(pool, "%" PRIu64, (uint64_t)(conf->qr.credential_ttl_ms / 1000)),
                          qr_http_pool_printf(pool, "%d", QR_DENY_KEEP)};
    gw_task_eval(gw_task_new(greq), &qr_http_scripts()->deny_list, on_trust_deny, 1, 4, args, NULL);
}
