/*
 * gateway/bearer.c — the authenticate and authorize stages: the gateway's one bearer-token check,
 * for proxied routes and own endpoints alike (SPEC §3, §6; the table is in the README, "Bearer tokens").
 *
 *   no Authorization header            401  WWW-Authenticate: Bearer realm="hegate"
 *   not Bearer, invalid, expired,      401  ... error="invalid_token"
 *     revoked, another issuer's (own)
 *   revocations cannot be told         503 with on_store_down: closed (else accepted, and counted)
 *     (subscription and store down)
 *   none of the entry's scopes         403  ... error="insufficient_scope", scope="..."
 *   a client's own token (resident)    403
 * in the entry's error format (problem+json, or OAuth's {"error": ...}). Called by pipeline.c only.
 * Never echoes a token or a claim into an answer or the log.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"

#define WWW_MISSING "Bearer realm=\"hegate\""
#define WWW_INVALID "Bearer realm=\"hegate\", error=\"invalid_token\""

/* The revocation question of one check: the local set (revocations.c), and while the subscription
 * is down the store's recent answers; when those cannot tell, NEED_ASK says so and MEMO keeps a copy
 * of the token's digests for the question to the store. */
typedef struct {
    gw_thread_t *thread;
    int need_ask;
    auth_revocation_memo_t memo;
} revocation_q_t;

static int revoked_cb(void *data, const char *sid, const char *jti, auth_revocation_memo_t *memo)
{
    revocation_q_t *q = data;
    int r = gw_revocations_check_memo(sid, jti, memo);
    if (r != 0 || gw_revocations_synced())
        return r;
    /* the subscription is down: a revocation made elsewhere meanwhile is only in the store */
    if ((r = gw_revocations_asked_answer(q->thread->revasked, memo, h2o_now(q->thread->loop))) >= 0)
        return r;
    q->need_ask = 1;
    q->memo = *memo;
    return -1;
}

static void challenge(gw_req_t *greq, const char *www, size_t len)
{
    h2o_req_t *req = greq->req;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, www, len);
}

static int missing(gw_req_t *greq, const gw_route_rt_t *rt)
{
    challenge(greq, H2O_STRLIT(WWW_MISSING));
    if (rt->errors == GW_ERRORS_OAUTH)
        gw_oauth_error(greq, 401, "invalid_request", "a bearer token is required");
    else
        gw_problem_send(greq, 401, "unauthorized", "Unauthorized", "this endpoint needs a bearer token");
    return 0;
}

static int invalid(gw_req_t *greq, const gw_route_rt_t *rt)
{
    challenge(greq, H2O_STRLIT(WWW_INVALID));
    if (rt->errors == GW_ERRORS_OAUTH)
        gw_oauth_error(greq, 401, "invalid_token", "the access token is missing, invalid, expired or revoked");
    else
        gw_problem_send(greq, 401, "unauthorized", "Unauthorized", "the bearer token is missing or invalid");
    return 0;
}

static int forbidden(gw_req_t *greq, const gw_route_rt_t *rt, const char *detail)
{
    if (rt->errors == GW_ERRORS_OAUTH)
        gw_oauth_error(greq, 403, "insufficient_scope", detail);
    else
        gw_problem_send(greq, 403, "forbidden", "Forbidden", detail);
    return 0;
}

/* whether the space-separated SCOPE list holds any of the entry's scopes */
static int scope_allows(const char *scope, const gw_route_rt_t *rt)
{
    for (size_t i = 0; i != rt->num_scopes; ++i) {
        size_t nlen = strlen(rt->scopes[i]);
        for (const char *p = scope; *p != '\0';) {
            size_t len = strcspn(p, " ");
            if (len == nlen && memcmp(p, rt->scopes[i], len) == 0)
                return 1;
            p += len;
            while (*p == ' ')
                ++p;
        }
    }
    return rt->num_scopes == 0;
}

static int insufficient_scope(gw_req_t *greq, const gw_route_rt_t *rt)
{
    h2o_req_t *req = greq->req;
    char www[512];
    int n = snprintf(www, sizeof(www), "Bearer realm=\"hegate\", error=\"insufficient_scope\", scope=\"");
    for (size_t s = 0; s != rt->num_scopes && n < (int)sizeof(www) - 2; ++s)
        n += snprintf(www + n, sizeof(www) - n, "%s%s", s != 0 ? " " : "", rt->scopes[s]);
    if (n < (int)sizeof(www) - 1)
        snprintf(www + n, sizeof(www) - n, "\"");
    challenge(greq, h2o_strdup(&req->pool, www, strlen(www)).base, strlen(www));
    return forbidden(greq, rt, "the token does not carry a scope this endpoint needs");
}

/* adds NAME: VALUE (copied into the request's pool) to the upstream request and returns the copy */
static const char *add_identity_header(h2o_req_t *req, const char *name, size_t name_len, const char *value)
{
    size_t len = strlen(value);
    char *copy = h2o_strdup(&req->pool, value, len).base;
    h2o_add_header_by_str(&req->pool, &req->headers, name, name_len, 0, NULL, copy, len);
    return copy;
}

/* the checks after the token's revocation is known (R: AUTH_OK or AUTH_REVOKED): issuer, scope,
 * resident; then the identity the next stages see */
static int finish(gw_req_t *greq, const gw_route_rt_t *rt, const auth_claims_t *claims, auth_reason_t r)
{
    h2o_req_t *req = greq->req;
    /* the reason is for the operator's metrics, not for the client: never echo token contents */
    if (r != AUTH_OK && !(r == AUTH_REVOKED && (rt->auth & GW_AUTH_REVOKED_OK) != 0))
        return invalid(greq, rt);
    if ((rt->auth & GW_AUTH_OWN) != 0 && (claims->issuer_index != 0 || strcmp(claims->iss, greq->gen->conf->issuer) != 0))
        return invalid(greq, rt);
    if (!scope_allows(claims->scope, rt))
        return insufficient_scope(greq, rt);
    if ((rt->auth & GW_AUTH_RESIDENT) != 0 && strcmp(claims->sub, claims->client_id) == 0)
        return forbidden(greq, rt, "this endpoint needs a resident's token");
    if (rt->conf != NULL) {
        /* a route: the identity goes upstream. CLAIMS may point into the thread's token cache: what
         * outlives this call is copied into the pool */
        greq->sub = add_identity_header(req, H2O_STRLIT("x-hegate-sub"), claims->sub);
        greq->client_id = add_identity_header(req, H2O_STRLIT("x-hegate-client"), claims->client_id);
        add_identity_header(req, H2O_STRLIT("x-hegate-scope"), claims->scope);
        if (claims->sid[0] != '\0')
            add_identity_header(req, H2O_STRLIT("x-hegate-sid"), claims->sid);
    } else {
        /* an own endpoint: its handler may run after the next request on this thread has used the cache */
        auth_claims_t *copy = h2o_mem_alloc_pool(&req->pool, sizeof(*copy));
        *copy = *claims;
        greq->claims = copy;
        greq->sub = copy->sub;
        greq->client_id = copy->client_id;
    }
    return GW_STAGE_NEXT;
}

/* neither the local set nor the store can tell whether the token is revoked: on_store_down decides */
static int unknown(gw_req_t *greq, const gw_route_rt_t *rt, const auth_claims_t *claims)
{
    if (greq->gen->conf->on_store_down == GW_STORE_DOWN_CLOSED) {
        gw_send_unavailable(greq, "token revocation cannot be checked right now");
        return GW_STAGE_ANSWERED;
    }
    gw_revocations_count_unknown();
    return finish(greq, rt, claims, AUTH_OK);
}

/* a request waiting for the store's word on its token (the claims copied: the cache may move on) */
typedef struct {
    gw_revocations_waiter_t waiter;
    gw_req_t *greq;
    auth_claims_t claims;
} pending_t;

static void pending_dispose(void *p)
{
    gw_revocations_ask_cancel(&((pending_t *)p)->waiter);
}

static void on_asked(gw_revocations_waiter_t *w, int answer)
{
    pending_t *p = H2O_STRUCT_FROM_MEMBER(pending_t, waiter, w);
    gw_req_t *greq = p->greq;
    int next =
        answer < 0 ? unknown(greq, greq->rt, &p->claims) : finish(greq, greq->rt, &p->claims, answer ? AUTH_REVOKED : AUTH_OK);
    if (next == GW_STAGE_NEXT)
        gw_pipeline_after_authenticate(greq);
}

int gw_authenticate(gw_req_t *greq, const gw_route_rt_t *rt)
{
    h2o_req_t *req = greq->req;
    if ((rt->auth & GW_AUTH_BEARER) == 0)
        return GW_STAGE_NEXT;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1)
        return (rt->auth & GW_AUTH_OPTIONAL) != 0 ? GW_STAGE_NEXT : missing(greq, rt);
    h2o_iovec_t v = req->headers.entries[i].value;
    const gw_gen_t *gen = greq->gen;
    if (v.len < 7 || !h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) || gen->verifier == NULL)
        return invalid(greq, rt);
    auth_claims_t scratch; /* only used when the token is not in (and cannot enter) the thread's cache */
    const auth_claims_t *claims;
    revocation_q_t q = {greq->thread};
    auth_reason_t r = auth_verify_bearer_ref(gen->verifier, greq->thread->tokcache, v.base + 7, v.len - 7, (int64_t)time(NULL),
                                             revoked_cb, &q, &scratch, &claims);
    if (r != AUTH_UNAVAILABLE || !q.need_ask)
        return r == AUTH_UNAVAILABLE ? unknown(greq, rt, claims) : finish(greq, rt, claims, r);
    /* the subscription is down and this token has not been asked about lately: the store decides
     * (within redis.timeout), or on_store_down when the store is known to be away too */
    gw_store_t *store = greq->thread->store;
    if (store == NULL || !gw_store_is_up_for_key(store, H2O_STRLIT(GW_REVOCATIONS_KEY)))
        return unknown(greq, rt, claims);
    pending_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), pending_dispose);
    p->greq = greq;
    p->claims = *claims;
    p->waiter.question = NULL;
    gw_revocations_ask(greq->thread, p->claims.sid, p->claims.jti, &q.memo, &p->waiter, on_asked);
    return GW_STAGE_PENDING;
}
