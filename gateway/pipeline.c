/*
 * gateway/pipeline.c — the request pipeline, written down once and in order (SPEC §3). Every
 * request, proxied or answered by the gateway itself, walks the same stages:
 *
 *   hygiene (strip untrusted headers, request id) → head size limit → match (one table: routes and
 *   the own endpoint families, longest prefix) → method → body size limit → authenticate and
 *   authorize (bearer.c) → rate limit → handle (proxy.c, or the endpoint's handler) → log
 *
 * Registered by server.c as the only h2o handler at "/". Each stage either passes the request on
 * or answers it through problem.c. gw_req_t lives in the request's pool; its dispose hook is where
 * every request is counted and logged under its entry's name, whatever path it took.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include "gateway/gateway.h"

static void make_request_id(gw_req_t *greq)
{
    h2o_iovec_t hdr = {NULL, 0};
    ssize_t i = h2o_find_header_by_str(&greq->req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1)
        hdr = greq->req->headers.entries[i].value;
    if (hdr.base != NULL && gw_request_id_is_valid(hdr.base, hdr.len)) {
        memcpy(greq->request_id, hdr.base, hdr.len);
        greq->request_id_len = hdr.len;
    } else {
        gw_thread_t *t = greq->thread;
        static const char hex[] = "0123456789abcdef";
        uint64_t w[2] = {t->reqid_prefix, ++t->reqid_counter};
        for (size_t j = 0; j != 32; ++j) /* "%016llx%016llx" */
            greq->request_id[j] = hex[(w[j / 16] >> (60 - 4 * (j % 16))) & 15];
        greq->request_id_len = 32;
    }
    greq->request_id[greq->request_id_len] = '\0';
}

static void read_peer(gw_req_t *greq)
{
    struct sockaddr_storage ss;
    socklen_t len = greq->req->conn->callbacks->get_peername(greq->req->conn, (struct sockaddr *)&ss);
    strcpy(greq->peer, "unknown");
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET) { /* dotted quad by hand: inet_ntop goes through sprintf (~1,700 instructions) */
        const unsigned char *a = (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr;
        char *p = greq->peer;
        for (size_t i = 0; i != 4; ++i) {
            unsigned v = a[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i != 3 ? '.' : '\0';
        }
    } else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, greq->peer, sizeof(greq->peer));
}

/* every request ends here, once: metrics and the access log */
static void on_greq_dispose(void *p)
{
    gw_req_t *greq = p;
    h2o_req_t *req = greq->req;
    uint64_t now_us = (uint64_t)req->timestamps.response_end_at.tv_sec * 1000000 + req->timestamps.response_end_at.tv_usec;
    uint64_t begin_us = (uint64_t)req->timestamps.request_begin_at.tv_sec * 1000000 + req->timestamps.request_begin_at.tv_usec;
    if (req->timestamps.response_end_at.tv_sec == 0) { /* the client went away before the end */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        now_us = (uint64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    }
    uint64_t duration_us = now_us > begin_us ? now_us - begin_us : 0;
    int status = req->res.status != 0 ? req->res.status : 499;
    unsigned slot = greq->rt != NULL ? greq->rt->metric_slot : 0;
    gw_metrics_request(greq->thread->metrics, slot, status, duration_us);
    gw_accesslog_write(greq, status, req->bytes_sent, duration_us);
    if (greq->rl_check != NULL)
        gw_ratelimit_cancel(greq->rl_check);
    gw_gen_release(greq->gen);
    --greq->thread->inflight;
}

/* ---- stage: rate limits (SPEC §5) ------------------------------------------------------------------ */

int gw_ratelimit_answer(gw_req_t *greq, const gw_ratelimit_verdict_t *v, h2o_iovec_t policy_hdr, const unsigned *slots,
                        const char *detail)
{
    h2o_req_t *req = greq->req;
    const gw_ratelimit_conf_t *pols[GW_RATELIMIT_MAX_POLICIES];
    for (size_t i = 0; i != v->n; ++i)
        pols[i] = v->results[i].policy;
    size_t cap = gw_ratelimit_header_bound(pols, v->n);
    char *buf = h2o_mem_alloc_pool(&req->pool, policy_hdr.base != NULL ? cap : cap * 2);
    greq->rl_state_hdr = h2o_iovec_init(buf, gw_ratelimit_format_state(buf, cap, v->results, v->n));
    if (policy_hdr.base != NULL)
        greq->rl_policy_hdr = policy_hdr;
    else
        greq->rl_policy_hdr = h2o_iovec_init(buf + cap, gw_ratelimit_format_policy(buf + cap, cap, pols, v->n));

    switch (v->verdict) {
    case GW_RL_ALLOW:
        return 1;
    case GW_RL_DENY: {
        for (size_t i = 0; i != v->n; ++i)
            if (!v->results[i].allowed && v->results[i].source != GW_RL_SOURCE_NONE && v->results[i].source != GW_RL_SOURCE_CLOSED)
                gw_metrics_count(greq->thread->metrics, GW_MF_RATELIMITED, slots[i]);
        char ra[24];
        int len = snprintf(ra, sizeof(ra), "%llu", (unsigned long long)(v->retry_after_s < 1 ? 1 : v->retry_after_s));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, ra, len).base, len);
        gw_problem_send(greq, 429, "quota-exceeded", "Too Many Requests", detail);
        return 0;
    }
    case GW_RL_UNAVAILABLE:
        break;
    }
    gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "rate limits cannot be checked right now");
    return 0;
}

/* ---- stage: handle ---------------------------------------------------------------------------------- */

static void stage_handle(gw_req_t *greq)
{
    if (greq->rt->endpoint != NULL)
        greq->rt->endpoint->handle(greq);
    else
        gw_proxy_start(greq);
}

static void on_ratelimit_verdict(void *data, gw_ratelimit_verdict_t *v)
{
    gw_req_t *greq = data;
    greq->rl_check = NULL;
    const gw_route_rt_t *rt = greq->rt;
    unsigned slots[GW_RATELIMIT_MAX_POLICIES] = {0};
    for (size_t i = 0; i != v->n; ++i)
        for (size_t j = 0; j != rt->num_policies; ++j)
            if (rt->policies[j] == v->results[i].policy)
                slots[i] = rt->policy_slots[j];
    /* every policy of the route applies (the usual case): RateLimit-Policy was formatted once per generation */
    h2o_iovec_t policy_hdr = v->n == rt->num_policies ? rt->policy_hdr : h2o_iovec_init(NULL, 0);
    if (gw_ratelimit_answer(greq, v, policy_hdr, slots, "a rate limit of this route is exhausted"))
        stage_handle(greq);
}

static void stage_ratelimit(gw_req_t *greq)
{
    const gw_route_rt_t *rt = greq->rt;
    const gw_ratelimit_conf_t *pols[GW_RATELIMIT_MAX_POLICIES];
    h2o_iovec_t keys[GW_RATELIMIT_MAX_POLICIES];
    size_t n = 0;
    for (size_t i = 0; i != rt->num_policies; ++i) {
        const char *key = NULL;
        switch (rt->policies[i]->key) {
        case GW_LIMIT_KEY_IP:
            key = greq->peer;
            break;
        case GW_LIMIT_KEY_USER:
            key = greq->sub; /* NULL on public routes: user and client policies bind authenticated requests */
            break;
        case GW_LIMIT_KEY_CLIENT:
            key = greq->client_id;
            break;
        }
        if (key == NULL)
            continue;
        pols[n] = rt->policies[i];
        keys[n++] = h2o_iovec_init(key, strlen(key));
    }
    if (n == 0) {
        stage_handle(greq);
        return;
    }
    /* from the pool only here, and only as long as N results: most requests never need one, and a large
     * one would push the pool past its first chunk (a malloc and a free per request) */
    gw_ratelimit_verdict_t *verdict =
        h2o_mem_alloc_pool(&greq->req->pool, offsetof(gw_ratelimit_verdict_t, results) + n * sizeof(verdict->results[0]));
    greq->rl_check = gw_ratelimit_check(greq->thread->ratelimit, pols, keys, n, verdict, on_ratelimit_verdict, greq);
    if (greq->rl_check == NULL)
        on_ratelimit_verdict(greq, verdict);
}

/* ---- stage: method ---------------------------------------------------------------------------------- */

size_t gw_allow_header(unsigned methods, char *buf, size_t bufsz)
{
    size_t len = 0;
    for (unsigned bit = 1; bit < GW_M_ALL; bit <<= 1) {
        if ((methods & bit) == 0)
            continue;
        const char *name = gw_method_name(bit);
        size_t nlen = strlen(name), sep = len != 0 ? 2 : 0;
        if (len + sep + nlen >= bufsz)
            return 0;
        if (sep != 0) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        memcpy(buf + len, name, nlen);
        len += nlen;
    }
    buf[len] = '\0';
    return len;
}

static void method_not_allowed(gw_req_t *greq, unsigned methods)
{
    h2o_req_t *req = greq->req;
    char allow[128];
    size_t len = gw_allow_header(methods, allow, sizeof(allow));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, len).base, len);
    gw_problem_send(greq, 405, "method-not-allowed", "Method Not Allowed",
                    greq->rt->conf != NULL ? "the route does not accept this method" : "this endpoint does not accept this method");
}

static void run_stages(h2o_req_t *req)
{
    gw_thread_t *thread = H2O_STRUCT_FROM_MEMBER(gw_thread_t, ctx, req->conn->ctx);
    gw_req_t *greq = h2o_mem_alloc_shared(&req->pool, sizeof(*greq), on_greq_dispose);
    memset(greq, 0, sizeof(*greq));
    greq->req = req;
    greq->thread = thread;
    greq->gen = thread->gen;
    gw_gen_addref(greq->gen);
    ++thread->inflight;
    const gw_conf_t *conf = greq->gen->conf;

    /* 1. hygiene */
    make_request_id(greq);
    gw_hygiene_strip(&req->headers);
    read_peer(greq);

    /* 2. head size */
    if (gw_request_head_bytes(req) > conf->limits.header_bytes) {
        gw_guard_bad_request(req);
        gw_problem_send(greq, 431, "headers-too-large", "Request Header Fields Too Large",
                        "the request headers exceed the gateway's limit");
        return;
    }

    /* 3. match: routes and own endpoints, one table; then the method */
    if ((greq->route = route_match(greq->gen->routes, req->path_normalized.base, req->path_normalized.len)) == NULL) {
        gw_problem_send(greq, 404, "not-found", "Not Found", "no route matches the request path");
        return;
    }
    const gw_route_rt_t *rt = greq->rt = &greq->gen->rt[greq->route->index];
    if (rt->conf == NULL && rt->endpoint == NULL) { /* below a family's prefix, none of its endpoints */
        gw_problem_send(greq, 404, "not-found", "Not Found", rt->family->not_found);
        return;
    }
    if (!route_allows(greq->route, gw_method_bit(req->method.base, req->method.len))) {
        method_not_allowed(greq, rt->methods);
        return;
    }

    /* 4. body size */
    if (req->entity.base != NULL && req->entity.len > rt->body_limit) {
        gw_problem_send(greq, 413, "too-large", "Content Too Large", "the request body exceeds the gateway's limit");
        return;
    }

    /* 5. authentication and scopes (public entries go straight on) */
    if (gw_authenticate(greq, rt) == GW_STAGE_NEXT)
        gw_pipeline_after_authenticate(greq);
}

/* HTTP/2: a stream enters the stages after every frame read with it (on the loop's zero timeout, in the
 * same turn), so a HEADERS reset in the same read (Rapid Reset) costs no routing, no upstream, no log line */
typedef struct {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
} deferred_t;

static void on_deferred(h2o_timeout_entry_t *entry)
{
    deferred_t *d = H2O_STRUCT_FROM_MEMBER(deferred_t, entry, entry);
    run_stages(d->req);
}

static void on_deferred_dispose(void *p)
{
    deferred_t *d = p;
    if (h2o_timeout_is_linked(&d->entry)) {
        h2o_timeout_unlink(&d->entry);
        gw_guard_cancelled_before_routing(d->req);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (req->version < 0x200) {
        run_stages(req);
        return 0;
    }
    gw_guard_on_request(req);
    deferred_t *d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), on_deferred_dispose);
    memset(d, 0, sizeof(*d));
    d->req = req;
    d->entry.cb = on_deferred;
    h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->zero_timeout, &d->entry);
    return 0;
}

/* 6. rate limits, then 7. handle: proxy, or the endpoint's own handler */
void gw_pipeline_after_authenticate(gw_req_t *greq)
{
    stage_ratelimit(greq);
}

void gw_pipeline_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
