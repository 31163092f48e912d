/*
 * auth/http/backchannel.c — OpenID Connect Back-Channel Logout 1.0 (SPEC §6.2): the delivery of the
 * logout tokens of ended sessions to the clients that were issued tokens in them.
 *
 * The scripts that end a session (scripts.c: logout, logout-all, end_session, a replayed refresh token
 * or code) queue one job per client with a backchannel_logout_uri, in the same atomic step. Here every
 * gateway node takes due jobs from that queue with one script that leases each job to it for
 * BCL_LEASE_MS (so exactly one node attempts a job at a time; a node that dies mid-delivery leaves it to
 * another after the lease), POSTs `logout_token=<JWT>` to the client's URI (h2o's HTTP/1.1 client,
 * TLS with the system's trust store — SSL_CERT_FILE / SSL_CERT_DIR honoured — and the host name
 * checked), and reports the outcome: done on a 2xx, otherwise due again after a doubling backoff
 * (1 s, 2 s, ... at most BCL_BACKOFF_MAX_MS) until BCL_WINDOW_MS after the session ended, then given
 * up. Each attempt is counted in hegate_backchannel_logout_total{result}.
 *
 * Who polls: thread 0 of every node, every BCL_POLL_MS (one small script; also while no client has a
 * backchannel_logout_uri, so that jobs of clients a reload removed are dropped); and the thread that
 * ended a session, at once (auth_backchannel_kick), so a delivery normally starts within one loop
 * iteration. Logout answers never wait for a delivery.
 *
 * The TLS client context (the trust store read from disk: ~50 ms) is made with the generation, on the
 * main thread (oauth.c's gen_build), never on a loop; an attempt holds a reference to it.
 *
 * Called by oauth.c (the generation's TLS context), client.c (the per-thread state) and by session.c /
 * token.c (kicks). Logs nothing personal: no token, no subject, no session id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/ssl.h>
#include "auth/http/internal.h"

#define BCL_POLL_MS 1000
#define BCL_LEASE_MS 30000      /* ≫ BCL_ATTEMPT_MS: a job is never attempted by two nodes at once */
#define BCL_ATTEMPT_MS 5000     /* connect, send and the answer's head */
#define BCL_BACKOFF_MAX_MS 120000
#define BCL_WINDOW_MS 600000    /* retries stop 10 minutes after the session ended */
#define BCL_CLAIM_MAX 16        /* jobs per claim */
#define BCL_INFLIGHT_MAX 64     /* attempts at once per thread */
#define BCL_TOKEN_TTL 120       /* seconds a logout token is valid */
#define BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"

typedef struct st_bcl_attempt_t bcl_attempt_t;

struct auth_backchannel {
    gw_thread_t *thread;
    h2o_timeout_entry_t tick, kick;
    gw_store_req_t *claim; /* the claim in flight, or NULL */
    h2o_linklist_t attempts;
    size_t inflight;
    unsigned slots[4]; /* metric label slots: delivered, failed, gave_up, dropped */
};
enum { R_DELIVERED, R_FAILED, R_GAVE_UP, R_DROPPED };

struct st_bcl_attempt_t {
    auth_backchannel_t *b;
    h2o_linklist_t link;
    h2o_http1client_t *client;
    h2o_http1client_ctx_t client_ctx; /* its ssl_ctx a reference of the attempt's own */
    h2o_timeout_entry_t deadline;
    h2o_iovec_t reqbuf;
    char *uri; /* a copy: a reload may free the configuration during the attempt */
    int64_t t0_ms;
    unsigned n; /* this attempt's number, from 1 */
    char job[AUTH_SUB_MAX + 160];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(auth_backchannel_t *b, const char *job, int64_t due_ms)
{
    if (b->thread->store == NULL)
        return; /* the lease runs out and another attempt follows */
    char due[24] = "";
    if (due_ms != 0)
        snprintf(due, sizeof(due), "%lld", (long long)due_ms);
    const char *args[] = {AUTH_RK_BCLQ, AUTH_RK, job, due};
    gw_store_evalsha(b->thread->store, &auth_scripts()->bcl_report, auth_ignore_reply, NULL, 1, 4, args, NULL);
}

static void count(auth_backchannel_t *b, int result)
{
    gw_metrics_count(b->thread->metrics, GW_MF_BACKCHANNEL_LOGOUT, b->slots[result]);
}

static void claim(auth_backchannel_t *b);

static void attempt_free(bcl_attempt_t *a)
{
    auth_backchannel_t *b = a->b;
    if (h2o_timeout_is_linked(&a->deadline))
        h2o_timeout_unlink(&a->deadline);
    if (a->client != NULL)
        h2o_http1client_cancel(a->client);
    h2o_linklist_unlink(&a->link);
    --b->inflight;
    if (a->client_ctx.ssl_ctx != NULL)
        SSL_CTX_free(a->client_ctx.ssl_ctx);
    free(a->reqbuf.base);
    free(a->uri);
    free(a);
}

/* the attempt ended: delivered (a 2xx) or not */
static void attempt_done(bcl_attempt_t *a, int delivered)
{
    auth_backchannel_t *b = a->b;
    if (delivered) {
        count(b, R_DELIVERED);
        report(b, a->job, 0);
    } else {
        count(b, R_FAILED);
        int64_t now = wall_ms(), backoff = (int64_t)1000 << (a->n - 1 < 7 ? a->n - 1 : 7);
        if (backoff > BCL_BACKOFF_MAX_MS)
            backoff = BCL_BACKOFF_MAX_MS;
        if (now + backoff - a->t0_ms > BCL_WINDOW_MS) {
            count(b, R_GAVE_UP);
            report(b, a->job, 0);
        } else {
            report(b, a->job, now + backoff);
        }
    }
    int was_full = b->inflight == BCL_INFLIGHT_MAX;
    attempt_free(a);
    if (was_full)
        claim(b);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    bcl_attempt_t *a = H2O_STRUCT_FROM_MEMBER(bcl_attempt_t, deadline, entry);
    attempt_done(a, 0);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    bcl_attempt_t *a = client->data;
    a->client = NULL; /* h2o closes it when this returns NULL */
    attempt_done(a, (errstr == NULL || errstr == h2o_http1client_error_is_eos) && status >= 200 && status <= 299);
    return NULL;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    bcl_attempt_t *a = client->data;
    if (errstr != NULL) {
        a->client = NULL;
        attempt_done(a, 0);
        return NULL;
    }
    *reqbufs = &a->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

/* The logout token for CLIENT of session SID of resident SUB (city-wide pseudonym). malloc'd or NULL. */
static char *logout_token(const gw_gen_t *gen, const gw_client_conf_t *client, const char *sid, const char *sub)
{
    const auth_key_t *key = gen->token_keys != NULL ? auth_keyset_signer(gen->token_keys) : NULL;
    char csub[AUTH_SUB_MAX], jti[32];
    if (key == NULL || auth_subject_for(gen->conf, client, sub, csub) != 0)
        return NULL;
    auth_random_b64url(jti, 16); /* a new one for every attempt */
    int64_t now = (int64_t)time(NULL);
    json_t *c = json_object(), *events = json_object();
    json_object_set_new(c, "iss", json_string(gen->conf->issuer));
    json_object_set_new(c, "sub", json_string(csub));
    json_object_set_new(c, "aud", json_string(client->id));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(now + BCL_TOKEN_TTL));
    json_object_set_new(c, "jti", json_string(jti));
    json_object_set_new(c, "sid", json_string(sid));
    json_object_set_new(events, BCL_EVENT, json_object());
    json_object_set_new(c, "events", events);
    char *tok = auth_jwt_sign_as(key, AUTH_JWT_LOGOUT, c);
    json_decref(c);
    return tok;
}

/* one claimed job: "<sid> <client_id>", the resident, this attempt's number, when the session ended */
static void start_attempt(auth_backchannel_t *b, const char *job, const char *sub, unsigned n, int64_t t0_ms)
{
    const gw_gen_t *gen = b->thread->gen;
    const char *sp = strchr(job, ' ');
    char sid[160];
    if (sp == NULL || (size_t)(sp - job) >= sizeof(sid) || strlen(job) >= sizeof(((bcl_attempt_t *)0)->job)) {
        count(b, R_DROPPED);
        report(b, job, 0);
        return;
    }
    memcpy(sid, job, (size_t)(sp - job));
    sid[sp - job] = '\0';
    const gw_client_conf_t *client = gw_conf_client(gen->conf, sp + 1);
    h2o_url_t url;
    if (client == NULL || client->backchannel_logout_uri == NULL ||
        h2o_url_parse(client->backchannel_logout_uri, SIZE_MAX, &url) != 0) { /* no longer configured: nobody to tell */
        count(b, R_DROPPED);
        report(b, job, 0);
        return;
    }
    int tls = url.scheme == &H2O_URL_SCHEME_HTTPS;
    const auth_oauth_gen_t *og = auth_oauth_gen(gen);
    SSL_CTX *ssl_ctx = tls && og != NULL ? og->backchannel_tls : NULL;
    char *tok = tls && ssl_ctx == NULL ? NULL : logout_token(gen, client, sid, sub);
    if (tok == NULL) { /* no signing key, data key or TLS context now: try again later */
        count(b, R_FAILED);
        report(b, job, wall_ms() + BCL_POLL_MS * 5);
        return;
    }
    bcl_attempt_t *a = calloc(1, sizeof(*a));
    char *uri = strdup(client->backchannel_logout_uri);
    size_t body_len = strlen("logout_token=") + strlen(tok), cap = strlen(client->backchannel_logout_uri) + body_len + 256;
    char *buf = malloc(cap);
    if (a == NULL || uri == NULL || buf == NULL) { /* out of memory: the lease runs out, and another attempt follows */
        free(a), free(uri), free(buf);
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
        return;
    }
    a->b = b;
    a->n = n != 0 ? n : 1;
    a->t0_ms = t0_ms;
    strcpy(a->job, job);
    a->uri = uri;
    h2o_url_parse(a->uri, SIZE_MAX, &url); /* the iovecs now point into the copy */
    a->reqbuf.base = buf;
    int hl = snprintf(a->reqbuf.base, cap,
                      "POST %.*s HTTP/1.1\r\nHost: %.*s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\nUser-Agent: hegate\r\nConnection: close\r\n\r\n"
                      "logout_token=%s",
                      (int)url.path.len, url.path.base, (int)url.authority.len, url.authority.base, body_len, tok);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    a->reqbuf.len = (size_t)hl;
    if (ssl_ctx != NULL)
        SSL_CTX_up_ref(ssl_ctx);
    a->client_ctx = (h2o_http1client_ctx_t){b->thread->loop, &b->thread->ctx.receivers.hostinfo_getaddr,
                                            &gw_thread_timeout(b->thread, BCL_ATTEMPT_MS)->timeout, NULL, ssl_ctx};
    h2o_linklist_insert(&b->attempts, &a->link);
    ++b->inflight;
    a->deadline.cb = on_deadline;
    h2o_timeout_link(b->thread->loop, &gw_thread_timeout(b->thread, BCL_ATTEMPT_MS)->timeout, &a->deadline);
    h2o_http1client_connect(&a->client, a, &a->client_ctx, url.host, h2o_url_get_port(&url), tls, on_connect);
}

static void on_claimed(void *data, const redisReply *reply, const char *err)
{
    auth_backchannel_t *b = data;
    b->claim = NULL;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY)
        return; /* the next tick tries again */
    size_t jobs = reply->elements / 4;
    for (size_t i = 0; i != jobs; ++i) {
        const char *job = gw_reply_str(reply, 4 * i), *sub = gw_reply_str(reply, 4 * i + 1);
        unsigned n = (unsigned)strtoul(gw_reply_str(reply, 4 * i + 2), NULL, 10);
        int64_t t0 = strtoll(gw_reply_str(reply, 4 * i + 3), NULL, 10);
        if (job[0] != '\0' && sub[0] != '\0')
            start_attempt(b, job, sub, n, t0);
        else if (job[0] != '\0')
            report(b, job, 0);
    }
    if (jobs == BCL_CLAIM_MAX) /* there may be more due */
        claim(b);
}

/* takes the due jobs (as many as this thread may still attempt) */
static void claim(auth_backchannel_t *b)
{
    if (b->claim != NULL || b->thread->store == NULL || b->inflight >= BCL_INFLIGHT_MAX || b->thread->stopping)
        return;
    size_t room = BCL_INFLIGHT_MAX - b->inflight;
    char now[24], lease[24], max[8];
    snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
    snprintf(lease, sizeof(lease), "%d", BCL_LEASE_MS);
    snprintf(max, sizeof(max), "%zu", room < BCL_CLAIM_MAX ? room : BCL_CLAIM_MAX);
    const char *args[] = {AUTH_RK_BCLQ, AUTH_RK, now, lease, max};
    b->claim = gw_store_evalsha(b->thread->store, &auth_scripts()->bcl_claim, on_claimed, b, 1, 5, args, NULL);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    auth_backchannel_t *b = H2O_STRUCT_FROM_MEMBER(auth_backchannel_t, tick, entry);
    if (b->thread->stopping)
        return;
    claim(b);
    h2o_timeout_link(b->thread->loop, &gw_thread_timeout(b->thread, BCL_POLL_MS)->timeout, &b->tick);
}

static void on_kick(h2o_timeout_entry_t *entry)
{
    auth_backchannel_t *b = H2O_STRUCT_FROM_MEMBER(auth_backchannel_t, kick, entry);
    claim(b);
}

void auth_backchannel_kick_thread(auth_backchannel_t *b)
{
    if (b != NULL && !h2o_timeout_is_linked(&b->kick))
        h2o_timeout_link(b->thread->loop, &gw_thread_timeout(b->thread, 0)->timeout, &b->kick);
}

SSL_CTX *auth_backchannel_tls_new(const gw_conf_t *conf, char *err, size_t errsz)
{
    int https = 0;
    for (size_t i = 0; i != conf->num_clients; ++i)
        https |= conf->clients[i].backchannel_logout_uri != NULL && strncmp(conf->clients[i].backchannel_logout_uri, "https:", 6) == 0;
    if (!https)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        snprintf(err, errsz, "back-channel logout: cannot set up TLS (the system's trust store)");
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

auth_backchannel_t *auth_backchannel_new(gw_thread_t *thread)
{
    auth_backchannel_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        abort();
    b->thread = thread;
    h2o_linklist_init_anchor(&b->attempts);
    b->tick.cb = on_tick;
    b->kick.cb = on_kick;
    static const char *const names[] = {"delivered", "failed", "gave_up", "dropped"};
    for (int i = 0; i != 4; ++i)
        b->slots[i] = gw_metrics_label_slot(GW_MF_BACKCHANNEL_LOGOUT, names[i]);
    if (thread->id == 0) /* one poller per node; the others only follow their own kicks */
        h2o_timeout_link(thread->loop, &gw_thread_timeout(thread, BCL_POLL_MS)->timeout, &b->tick);
    return b;
}
