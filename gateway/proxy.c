/*
 * gateway/proxy.c — forwarding a request to a route's upstreams (SPEC §3).
 *
 * Called by the pipeline's last stage (gw_proxy_start). Picks a target round robin among the
 * healthy ones (a target that failed to connect or timed out is ejected for 10 s; when all are
 * ejected they are tried anyway), sends the request over a per-thread keep-alive pool with h2o's
 * HTTP/1.1 client, and streams the answer back. Connect failures and 502/503 answers are
 * retried on another target for idempotent methods only. Its own failures are answered as
 * problem+json: 502 unreachable, 504 timeout. It never forwards a client's hop-by-hop headers.
 */
#include <string.h>
#include <sys/socket.h>
#include "gateway/gateway.h"

typedef struct {
    h2o_generator_t super;
    gw_req_t *greq;
    h2o_http1client_t *client;
    gw_timeout_t *tmo;
    h2o_timeout_entry_t deadline;
    gw_target_t *target;
    size_t target_index;
    unsigned attempts_left;
    int idempotent;
    int is_head;
    int had_body_error;
    h2o_iovec_t reqbufs[2];
    h2o_buffer_t *last_content_before_send;
    h2o_doublebuffer_t sending;
    h2o_socket_cb paused; /* the upstream reader, while reading is paused for a slow client; NULL: reading */
    gw_thread_t *thread;  /* the request's thread */
    size_t held;          /* what this answer counts in thread->response_held */
} gw_proxy_t;

#define UPSTREAM_RCVBUF (32 << 10)

static void attempt(gw_proxy_t *p);

static int method_is_idempotent(h2o_iovec_t m)
{
    return h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("HEAD")) ||
           h2o_memis(m.base, m.len, H2O_STRLIT("PUT")) || h2o_memis(m.base, m.len, H2O_STRLIT("DELETE")) ||
           h2o_memis(m.base, m.len, H2O_STRLIT("OPTIONS"));
}

static int method_expects_body(h2o_iovec_t m)
{
    return h2o_memis(m.base, m.len, H2O_STRLIT("POST")) || h2o_memis(m.base, m.len, H2O_STRLIT("PUT")) ||
           h2o_memis(m.base, m.len, H2O_STRLIT("PATCH"));
}

static const gw_route_rt_t *route_rt(gw_proxy_t *p)
{
    return p->greq->rt;
}

static void eject(gw_target_t *target, gw_thread_t *thread)
{
    __atomic_store_n(&target->ejected_until, h2o_now(thread->loop) + GW_EJECT_MS, __ATOMIC_RELAXED);
}

/* Round robin over targets not ejected; AVOID (the one that just failed) only if there is another. */
static size_t choose_target(gw_proxy_t *p, gw_target_t *avoid)
{
    const gw_route_rt_t *rt = route_rt(p);
    gw_thread_t *thread = p->greq->thread;
    size_t n = rt->num_targets, start = (thread->rr[p->greq->route->index % 1024]++ + thread->id) % n;
    uint64_t now = h2o_now(thread->loop);
    for (size_t i = 0; i != n; ++i) {
        size_t j = (start + i) % n;
        if (rt->targets[j] == avoid && n > 1)
            continue;
        if (__atomic_load_n(&rt->targets[j]->ejected_until, __ATOMIC_RELAXED) <= now)
            return j;
    }
    if (rt->targets[start] == avoid && n > 1)
        start = (start + 1) % n;
    return start; /* all ejected: try anyway */
}

/* ---- the upstream request ------------------------------------------------------------------------ */

static int drop_request_header(const h2o_iovec_t *name)
{
    if (h2o_iovec_is_token(name)) {
        const h2o_token_t *token = H2O_STRUCT_FROM_MEMBER(h2o_token_t, buf, name);
        return token->proxy_should_drop_for_req || token == H2O_TOKEN_HOST || token == H2O_TOKEN_CONTENT_LENGTH ||
               token == H2O_TOKEN_TRANSFER_ENCODING || token == H2O_TOKEN_CONNECTION || token == H2O_TOKEN_UPGRADE ||
               token == H2O_TOKEN_TE || token == H2O_TOKEN_KEEP_ALIVE || token == H2O_TOKEN_HTTP2_SETTINGS ||
               token == H2O_TOKEN_COOKIE || token == H2O_TOKEN_EXPECT;
    }
    return h2o_memis(name->base, name->len, H2O_STRLIT("x-request-id")) ||
           h2o_memis(name->base, name->len, H2O_STRLIT("proxy-connection"));
}

#define APPEND(s, l)                                                                                                               \
    do {                                                                                                                           \
        memcpy(buf + off, (s), (l));                                                                                               \
        off += (l);                                                                                                                \
    } while (0)
#define APPEND_LIT(s) APPEND(s, sizeof(s) - 1)

static h2o_iovec_t build_request(gw_proxy_t *p)
{
    gw_req_t *greq = p->greq;
    h2o_req_t *req = greq->req;
    const gw_route_rt_t *rt = route_rt(p);
    const char *base = rt->base_paths[p->target_index];
    size_t base_len = strlen(base);
    h2o_iovec_t path = req->path_normalized;
    if (greq->rt->conf->strip_prefix) {
        path.base += greq->route->prefix_len;
        path.len -= greq->route->prefix_len;
    }
    int slash = path.len == 0; /* "/api/v1/query" with strip_prefix forwards "/" */
    h2o_iovec_t query = {NULL, 0};
    if (req->query_at != SIZE_MAX)
        query = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
    const char *proto = req->scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http";

    size_t cap = req->method.len + base_len + path.len + 1 + query.len + 64 + strlen(p->target->authority) + 64 +
                 greq->request_id_len + 32 + strlen(greq->peer) + 32 + 32;
    size_t cookie_len = 0, num_cookies = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name == &H2O_TOKEN_COOKIE->buf) {
            cookie_len += h->value.len + 2;
            ++num_cookies;
        } else if (!drop_request_header(h->name)) {
            cap += h->name->len + h->value.len + 4;
        }
    }
    cap += cookie_len + 16;

    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    size_t off = 0;
    APPEND(req->method.base, req->method.len);
    APPEND_LIT(" ");
    APPEND(base, base_len);
    if (slash)
        APPEND_LIT("/");
    APPEND(path.base, path.len);
    if (query.base != NULL)
        APPEND(query.base, query.len);
    APPEND_LIT(" HTTP/1.1\r\nhost: ");
    APPEND(p->target->authority, strlen(p->target->authority));
    APPEND_LIT("\r\n");
    if (req->entity.base != NULL || method_expects_body(req->method))
        off += sprintf(buf + off, "content-length: %zu\r\n", req->entity.len);
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (drop_request_header(h->name))
            continue;
        APPEND(h->name->base, h->name->len);
        APPEND_LIT(": ");
        APPEND(h->value.base, h->value.len);
        APPEND_LIT("\r\n");
    }
    if (num_cookies != 0) { /* HTTP/2 splits cookies; HTTP/1.1 wants one header */
        APPEND_LIT("cookie: ");
        size_t n = 0;
        for (size_t i = 0; i != req->headers.size; ++i) {
            const h2o_header_t *h = &req->headers.entries[i];
            if (h->name != &H2O_TOKEN_COOKIE->buf)
                continue;
            if (n++ != 0)
                APPEND_LIT("; ");
            APPEND(h->value.base, h->value.len);
        }
        APPEND_LIT("\r\n");
    }
    APPEND_LIT("x-request-id: ");
    APPEND(greq->request_id, greq->request_id_len);
    APPEND_LIT("\r\nx-forwarded-for: ");
    APPEND(greq->peer, strlen(greq->peer));
    APPEND_LIT("\r\nx-forwarded-proto: ");
    APPEND(proto, strlen(proto));
    APPEND_LIT("\r\n\r\n");
    return h2o_iovec_init(buf, off);
}

/* ---- answering ----------------------------------------------------------------------------------- */

static void fail(gw_proxy_t *p, int kind)
{
    gw_req_t *greq = p->greq;
    gw_metrics_upstream_error(greq->thread->metrics, route_rt(p)->metric_slot, kind);
    if (kind == GW_UPSTREAM_ERR_TIMEOUT)
        gw_problem_send(greq, 504, "gateway-timeout", "Gateway Timeout", "the upstream service did not answer in time");
    else
        gw_problem_send(greq, 502, "bad-gateway", "Bad Gateway", "the upstream service is unreachable");
}

/* the attempt failed before anything reached the client: retry if allowed, else answer */
static void attempt_failed(gw_proxy_t *p, int kind, int retryable)
{
    p->client = NULL;
    h2o_timeout_unlink(&p->deadline);
    if (retryable && p->attempts_left > 0) {
        gw_metrics_upstream_error(p->greq->thread->metrics, route_rt(p)->metric_slot, kind);
        attempt(p);
        return;
    }
    fail(p, kind);
}

static void do_send(gw_proxy_t *p)
{
    h2o_iovec_t vec;
    h2o_send_state_t state;
    vec = h2o_doublebuffer_prepare(&p->sending, p->client != NULL ? &p->client->sock->input : &p->last_content_before_send,
                                   p->greq->req->preferred_chunk_size);
    if (p->client == NULL && vec.len == p->sending.buf->size && p->last_content_before_send->size == 0) {
        state = p->had_body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    } else {
        if (vec.len == 0)
            return;
        state = H2O_SEND_STATE_IN_PROGRESS;
    }
    h2o_send(p->greq->req, &vec, vec.len != 0 ? 1 : 0, state);
}

/* Backpressure: past limits.response_buffer_bytes of an answer not yet taken by the client, the
 * upstream is not read (its TCP window closes); below half of it, reading resumes. While the thread
 * holds more than its share of limits.response_buffer_total for all its clients, no answer with
 * anything untaken is read: many slow readers cost the share, plus one read each. A client that
 * takes nothing for the route's timeout loses the rest of the answer (the upstream read times out),
 * and the guard's send_timeout closes its connection. */
static size_t buffer_limit(gw_proxy_t *p)
{
    const gw_conf_t *conf = p->greq->gen->conf;
    uint64_t share = conf->limits.response_buffer_total / (conf->threads != 0 ? conf->threads : 1);
    if (share != 0 && p->thread->response_held > share)
        return 0;
    return conf->limits.response_buffer_bytes;
}

/* keeps thread->response_held up to date with what this answer holds now */
static void account(gw_proxy_t *p)
{
    size_t now = p->sending.buf != NULL ? p->sending.buf->size : 0;
    if (p->client != NULL)
        now += p->client->sock->input->size;
    else if (p->last_content_before_send != NULL)
        now += p->last_content_before_send->size;
    p->thread->response_held = p->thread->response_held - p->held + now;
    p->held = now;
}

static void pause_if_full(gw_proxy_t *p)
{
    if (p->client != NULL && p->paused == NULL && p->client->sock->input->size > buffer_limit(p)) {
        p->paused = p->client->sock->_cb.read;
        h2o_socket_read_stop(p->client->sock);
    }
}

static void resume_if_drained(gw_proxy_t *p)
{
    if (p->client != NULL && p->paused != NULL && p->client->sock->input->size <= buffer_limit(p) / 2) {
        h2o_socket_cb cb = p->paused;
        p->paused = NULL;
        h2o_socket_read_start(p->client->sock, cb);
    }
}

static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    gw_proxy_t *p = (void *)generator;
    h2o_doublebuffer_consume(&p->sending);
    do_send(p);
    account(p);
    resume_if_drained(p);
}

static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    gw_proxy_t *p = (void *)generator;
    if (p->client != NULL) {
        h2o_http1client_cancel(p->client);
        p->client = NULL;
    }
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    gw_proxy_t *p = client->data;
    if (errstr != NULL) {
        /* keep what arrived, detach from the client (which is gone after we return) */
        h2o_buffer_dispose(&p->last_content_before_send);
        p->last_content_before_send = client->sock->input;
        h2o_buffer_init(&client->sock->input, &h2o_socket_buffer_prototype);
        p->client = NULL;
        if (errstr != h2o_http1client_error_is_eos) {
            p->had_body_error = 1;
            gw_metrics_upstream_error(p->greq->thread->metrics, route_rt(p)->metric_slot, GW_UPSTREAM_ERR_PROTOCOL);
        }
    }
    if (p->sending.bytes_inflight == 0)
        do_send(p);
    account(p);
    pause_if_full(p);
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    gw_proxy_t *p = client->data;
    h2o_req_t *req = p->greq->req;

    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        if (strcmp(errstr, "I/O timeout") == 0) {
            eject(p->target, p->greq->thread);
            attempt_failed(p, GW_UPSTREAM_ERR_TIMEOUT, 0);
        } else {
            /* nothing usable came back (often a pooled connection the upstream had closed) */
            attempt_failed(p, GW_UPSTREAM_ERR_PROTOCOL, p->idempotent);
        }
        return NULL;
    }
    h2o_timeout_unlink(&p->deadline);
    if ((status == 502 || status == 503) && p->idempotent && p->attempts_left > 0) {
        p->client = NULL; /* returning NULL closes this upstream connection */
        gw_metrics_upstream_error(p->greq->thread->metrics, route_rt(p)->metric_slot, GW_UPSTREAM_ERR_PROTOCOL);
        attempt(p);
        return NULL;
    }

    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
    for (size_t i = 0; i != num_headers; ++i) {
        const h2o_iovec_t *name = headers[i].name;
        if (h2o_iovec_is_token(name)) {
            const h2o_token_t *token = H2O_STRUCT_FROM_MEMBER(h2o_token_t, buf, name);
            if (token->proxy_should_drop_for_res || token == H2O_TOKEN_SERVER)
                continue;
            if (token == H2O_TOKEN_CONTENT_LENGTH) {
                if (req->res.content_length != SIZE_MAX ||
                    (req->res.content_length = h2o_strtosize(headers[i].value.base, headers[i].value.len)) == SIZE_MAX) {
                    req->res = (h2o_res_t){0, NULL, SIZE_MAX, {NULL}};
                    attempt_failed(p, GW_UPSTREAM_ERR_PROTOCOL, 0);
                    return NULL;
                }
                continue;
            }
            h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value.base, headers[i].value.len);
            h2o_add_header(&req->pool, &req->res.headers, token, NULL, v.base, v.len);
        } else {
            if (h2o_memis(name->base, name->len, H2O_STRLIT("x-request-id")))
                continue;
            h2o_iovec_t n = h2o_strdup(&req->pool, name->base, name->len);
            h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value.base, headers[i].value.len);
            h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 0, NULL, v.base, v.len);
        }
    }
    gw_req_add_common_headers(p->greq);
    h2o_start_response(req, &p->super);
    if (errstr == h2o_http1client_error_is_eos) {
        p->client = NULL;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    gw_proxy_t *p = client->data;
    if (errstr != NULL) {
        eject(p->target, p->greq->thread);
        attempt_failed(p, GW_UPSTREAM_ERR_CONNECT, p->idempotent);
        return NULL;
    }
    if (client->sock->bytes_read == 0) { /* a new upstream connection (pooled ones have read an answer) */
        /* h2o reads a socket dry on every event: the kernel's buffer bounds what one read adds to what
         * backpressure holds (Linux doubles the value given: 64 KiB) */
        int fd = h2o_socket_get_fd(client->sock), sz = (int)p->greq->gen->conf->limits.response_buffer_bytes;
        if (sz > UPSTREAM_RCVBUF)
            sz = UPSTREAM_RCVBUF;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    *reqbufs = p->reqbufs;
    *reqbufcnt = p->reqbufs[1].base != NULL && p->reqbufs[1].len != 0 ? 2 : 1;
    *method_is_head = p->is_head;
    return on_head;
}

/* the route's timeout passed before the upstream's head arrived */
static void on_deadline(h2o_timeout_entry_t *entry)
{
    gw_proxy_t *p = H2O_STRUCT_FROM_MEMBER(gw_proxy_t, deadline, entry);
    if (p->client != NULL) {
        h2o_http1client_cancel(p->client);
        p->client = NULL;
    }
    eject(p->target, p->greq->thread);
    fail(p, GW_UPSTREAM_ERR_TIMEOUT);
}

static void attempt(gw_proxy_t *p)
{
    gw_req_t *greq = p->greq;
    gw_target_t *failed = p->target;
    --p->attempts_left;
    p->target_index = choose_target(p, failed);
    p->target = route_rt(p)->targets[p->target_index];
    greq->upstream = p->target->authority;
    p->reqbufs[0] = build_request(p);
    p->reqbufs[1] = greq->req->entity;
    h2o_timeout_link(greq->thread->loop, &p->tmo->timeout, &p->deadline);
    h2o_http1client_connect_with_pool(&p->client, p, &p->tmo->client_ctx, gw_thread_pool(greq->thread, p->target), on_connect);
}

static void on_proxy_dispose(void *_p)
{
    gw_proxy_t *p = _p;
    if (p->client != NULL) {
        h2o_http1client_cancel(p->client);
        p->client = NULL;
    }
    h2o_timeout_unlink(&p->deadline);
    p->thread->response_held -= p->held;
    h2o_buffer_dispose(&p->last_content_before_send);
    h2o_doublebuffer_dispose(&p->sending);
}

void gw_proxy_start(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_proxy_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_proxy_dispose);
    memset(p, 0, sizeof(*p));
    p->super.proceed = do_proceed;
    p->super.stop = do_stop;
    p->greq = greq;
    p->thread = greq->thread;
    p->deadline.cb = on_deadline;
    p->tmo = gw_thread_timeout(greq->thread, greq->rt->conf->timeout_ms);
    p->idempotent = method_is_idempotent(req->method);
    p->is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    p->attempts_left = 1 + (p->idempotent ? greq->rt->conf->retries : 0);
    h2o_buffer_init(&p->last_content_before_send, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&p->sending, &h2o_socket_buffer_prototype);
    attempt(p);
}
