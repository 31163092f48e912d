/*
 * gateway/pipeline.c — the request pipeline, written down once and in order (SPEC §3):
 *
 *   hygiene (strip untrusted headers, request id) → head size limit → route match → method
 *   → body size limit → [authenticate → authorize → rate limit: later stages] → proxy
 *
 * Registered by server.c as the only h2o handler at "/". Each stage either passes the request
 * on or answers it through problem.c. gw_req_t lives in the request's pool; its dispose hook
 * is where every request is counted and logged, whatever path it took.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"
#include "auth/oauth.h"

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
    unsigned slot = greq->route != NULL ? greq->gen->rt[greq->route->index].metric_slot : 0;
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

static void on_ratelimit_verdict(void *data, gw_ratelimit_verdict_t *v)
{
    gw_req_t *greq = data;
    greq->rl_check = NULL;
    const gw_route_rt_t *rt = &greq->gen->rt[greq->route->index];
    unsigned slots[GW_RATELIMIT_MAX_POLICIES] = {0};
    for (size_t i = 0; i != v->n; ++i)
        for (size_t j = 0; j != rt->num_policies; ++j)
            if (rt->policies[j] == v->results[i].policy)
                slots[i] = rt->policy_slots[j];
    /* every policy of the route applies (the usual case): RateLimit-Policy was formatted once per generation */
    h2o_iovec_t policy_hdr = v->n == rt->num_policies ? rt->policy_hdr : h2o_iovec_init(NULL, 0);
    if (gw_ratelimit_answer(greq, v, policy_hdr, slots, "a rate limit of this route is exhausted"))
        gw_proxy_start(greq);
}

static void stage_ratelimit(gw_req_t *greq)
{
    const gw_route_rt_t *rt = &greq->gen->rt[greq->route->index];
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
        gw_proxy_start(greq);
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

/* ---- stage: authentication and scopes (SPEC §3, §6) ------------------------------------------------------ */

/* The local revocation view: the process's deny set, fed by Redis pub/sub (gateway/revocations.c). */
static int revoked_cb(void *data, const char *sid, const char *jti, auth_revocation_memo_t *memo)
{
    return gw_revocations_check_memo(sid, jti, memo);
}

static void send_unauthorized(gw_req_t *greq, const char *www_authenticate, const char *detail)
{
    h2o_req_t *req = greq->req;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, www_authenticate, strlen(www_authenticate));
    gw_problem_send(greq, 401, "unauthorized", "Unauthorized", detail);
}

/* whether the space-separated SCOPE list holds any of the route's scopes */
static int scope_allows(const char *scope, const gw_strlist_t *need)
{
    for (size_t i = 0; i != need->n; ++i) {
        size_t nlen = strlen(need->v[i]);
        for (const char *p = scope; *p != '\0';) {
            size_t len = strcspn(p, " ");
            if (len == nlen && memcmp(p, need->v[i], len) == 0)
                return 1;
            p += len;
            while (*p == ' ')
                ++p;
        }
    }
    return 0;
}

/* adds NAME: VALUE (copied into the request's pool) and returns the copy */
static const char *add_identity_header(h2o_req_t *req, const char *name, size_t name_len, const char *value)
{
    size_t len = strlen(value);
    char *copy = h2o_strdup(&req->pool, value, len).base;
    h2o_add_header_by_str(&req->pool, &req->headers, name, name_len, 0, NULL, copy, len);
    return copy;
}

/* 0: authenticated (or a public route); -1: answered */
static int stage_authenticate(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    const gw_route_conf_t *rc = greq->route->conf;
    if (rc->scopes.n == 0)
        return 0;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1) {
        send_unauthorized(greq, "Bearer realm=\"hegate\"", "this route needs a bearer token");
        return -1;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 7 || !h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) || greq->gen->verifier == NULL) {
        send_unauthorized(greq, "Bearer realm=\"hegate\", error=\"invalid_token\"", "the bearer token is missing or invalid");
        return -1;
    }
    const char *token = v.base + 7;
    size_t len = v.len - 7;
    auth_claims_t scratch; /* only used when the token is not in (and cannot enter) the thread's cache */
    const auth_claims_t *claims;
    auth_reason_t r = auth_verify_bearer_ref(greq->gen->verifier, greq->thread->tokcache, token, len, (int64_t)time(NULL),
                                             revoked_cb, NULL, &scratch, &claims);
    if (r == AUTH_UNAVAILABLE) {
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "token revocation cannot be checked right now");
        return -1;
    }
    if (r != AUTH_OK) {
        /* the reason is for the operator's metrics, not for the client: never echo token contents */
        send_unauthorized(greq, "Bearer realm=\"hegate\", error=\"invalid_token\"", "the bearer token is missing or invalid");
        return -1;
    }
    if (!scope_allows(claims->scope, &rc->scopes)) {
        char www[512];
        int n = snprintf(www, sizeof(www), "Bearer realm=\"hegate\", error=\"insufficient_scope\", scope=\"");
        for (size_t s = 0; s != rc->scopes.n && n < (int)sizeof(www) - 2; ++s)
            n += snprintf(www + n, sizeof(www) - n, "%s%s", s != 0 ? " " : "", rc->scopes.v[s]);
        if (n < (int)sizeof(www) - 1)
            snprintf(www + n, sizeof(www) - n, "\"");
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, h2o_strdup(&req->pool, www, strlen(www)).base,
                       strlen(www));
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "the token does not carry a scope this route needs");
        return -1;
    }
    /* CLAIMS point into the thread's token cache: what outlives this call is copied into the pool */
    greq->sub = add_identity_header(req, H2O_STRLIT("x-hegate-sub"), claims->sub);
    greq->client_id = add_identity_header(req, H2O_STRLIT("x-hegate-client"), claims->client_id);
    add_identity_header(req, H2O_STRLIT("x-hegate-scope"), claims->scope);
    if (claims->sid[0] != '\0')
        add_identity_header(req, H2O_STRLIT("x-hegate-sid"), claims->sid);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
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
        gw_problem_send(greq, 431, "headers-too-large", "Request Header Fields Too Large",
                        "the request headers exceed the gateway's limit");
        return 0;
    }

    /* 3. the gateway's own endpoints, then the route table */
    if (req->path_normalized.len > 12 && memcmp(req->path_normalized.base, "/.well-known/", 13) == 0 &&
        auth_wellknown_handle(greq) == 0)
        return 0;
    if (req->path_normalized.len > 7 && memcmp(req->path_normalized.base, "/oauth2/", 8) == 0 && auth_oauth_handle(greq) == 0)
        return 0;
    if (req->path_normalized.len > 6 && memcmp(req->path_normalized.base, "/qr/v1/", 7) == 0 && qr_endpoints_handle(greq) == 0)
        return 0;
    /* route and method */
    if ((greq->route = route_match(greq->gen->routes, req->path_normalized.base, req->path_normalized.len)) == NULL) {
        gw_problem_send(greq, 404, "not-found", "Not Found", "no route matches the request path");
        return 0;
    }
    if (!route_allows(greq->route, req->method.base, req->method.len)) {
        char allow[128];
        size_t len = route_allow_header(greq->route, allow, sizeof(allow));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, len).base, len);
        gw_problem_send(greq, 405, "method-not-allowed", "Method Not Allowed", "the route does not accept this method");
        return 0;
    }

    /* 4. body size */
    if (req->entity.base != NULL && req->entity.len > conf->limits.body_bytes) {
        gw_problem_send(greq, 413, "too-large", "Content Too Large", "the request body exceeds the gateway's limit");
        return 0;
    }

    /* 5. authentication and scopes (public routes go straight on) */
    if (stage_authenticate(greq) != 0)
        return 0;

    /* 6. rate limits, then 7. forward */
    stage_ratelimit(greq);
    return 0;
}

void gw_pipeline_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
