/*
 * gateway/gateway.h — the server's internal contract: threads, configuration generations,
 * the request pipeline and the pieces it calls. Sections are named after the file that
 * implements them.
 *
 * The big picture: main.c parses the CLI and calls gw_server_run(). server.c starts one
 * event loop per thread (SO_REUSEPORT listeners), each with an h2o context whose single
 * handler at "/" is pipeline.c. A request takes the thread's current generation (routes,
 * upstream targets, built from one config file) and keeps it until it is disposed; SIGHUP
 * builds a new generation aside and hands it to every thread, so no connection is dropped.
 * Pipeline: hygiene → route match → method → limits → (authenticate → authorize → rate limit,
 * later issues) → proxy.c. Every error goes through problem.c; every finished request through
 * gw_req_finish (metrics + access log).
 */
#ifndef hegate_gateway_h
#define hegate_gateway_h

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <h2o.h>
#include <h2o/http1client.h>
#include "gateway/conf.h"
#include "routes/routes.h"
#include "gateway/store.h"
#include "gateway/ratelimit.h"
#include "auth/auth.h"

#define GW_MAX_THREADS 64
#define GW_REQUEST_ID_MAX 64
#define GW_EJECT_MS 10000

typedef struct st_gw_thread_t gw_thread_t;
typedef struct st_gw_metrics_t gw_metrics_t;

/* ---- server.c ---------------------------------------------------------------------------- */

/* One upstream address (host:port), shared by every generation and thread for the process's
 * life: passive health and keep-alive pools survive reloads. */
typedef struct {
    char *authority; /* "127.0.0.1:9101" — also the Host header sent upstream */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t ejected_until; /* ms (h2o_now clock, CLOCK_MONOTONIC based); read/written atomically */
    h2o_socketpool_t *pools[GW_MAX_THREADS]; /* created lazily by each thread on its own loop */
} gw_target_t;

/* Per-route runtime data of one generation, indexed like conf->routes. */
typedef struct {
    gw_target_t **targets;
    size_t num_targets;
    const char **base_paths; /* upstream URL path per target ("" or "/base") */
    unsigned metric_slot;
    const gw_ratelimit_conf_t *policies[GW_RATELIMIT_MAX_POLICIES]; /* resolved `rate_limit` names */
    unsigned policy_slots[GW_RATELIMIT_MAX_POLICIES];                /* their metric label slots */
    size_t num_policies;
    h2o_iovec_t policy_hdr; /* RateLimit-Policy when every policy applies (formatted once; base malloc'd) */
} gw_route_rt_t;

/* An immutable, reference-counted configuration generation. */
typedef struct {
    int refcnt;
    unsigned serial;   /* 1 for the configuration started with, +1 per accepted reload */
    unsigned switched; /* threads serving this generation so far (atomic) */
    gw_conf_t *conf;
    route_table_t *routes;
    gw_route_rt_t *rt;
    auth_keyset_t *token_keys;   /* keys.dir/token/, NULL when the folder does not exist */
    auth_keyset_t **issuer_keys; /* one per trusted issuer */
    auth_verifier_t *verifier;   /* NULL when no issuer has keys: every protected route answers 401 */
    void *qr;                    /* the city code's keys (qr/endpoints.c), NULL when keys.dir/code does not exist */
} gw_gen_t;

gw_gen_t *gw_gen_build(gw_conf_t *conf, gw_errors_t *errs); /* takes ownership of CONF on success */
void gw_gen_addref(gw_gen_t *gen);
void gw_gen_release(gw_gen_t *gen);

/* per-thread cache of timeouts (one h2o_timeout_t per distinct duration) */
typedef struct {
    uint64_t ms;
    h2o_timeout_t timeout;
    h2o_http1client_ctx_t client_ctx;
} gw_timeout_t;

struct st_gw_thread_t {
    unsigned id;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    gw_gen_t *gen;
    h2o_multithread_receiver_t control;
    uint64_t reqid_prefix;
    uint64_t reqid_counter;
    size_t inflight;
    gw_metrics_t *metrics;
    gw_store_t *store;          /* NULL if the store config is unusable (then on_store_down applies) */
    gw_ratelimit_ctx_t *ratelimit;
    auth_tokcache_t *tokcache; /* verified bearer tokens (revocation is still checked every time) */
    void *oauth;               /* the identity service's per-thread state (auth/oauth.c) */
    gw_timeout_t *timeouts[64];
    size_t num_timeouts;
    unsigned rr[1024]; /* round-robin cursor per route index */
    h2o_socket_t **listeners;
    size_t num_listeners;
    int stopping;
};

/* the h2o timeout (and matching upstream client context) of MS milliseconds on THREAD's loop */
gw_timeout_t *gw_thread_timeout(gw_thread_t *thread, uint64_t ms);
/* THREAD's keep-alive pool for TARGET */
h2o_socketpool_t *gw_thread_pool(gw_thread_t *thread, gw_target_t *target);

/* 1 when the running configuration has token keys (any thread) */
int gw_server_keys_loaded(void);
/* the serial of the newest generation every thread has switched to: a reload is complete when this
 * reaches its serial (any thread; /readyz and /metrics report it) */
unsigned gw_server_generation(void);
/* 1 when every thread's store connection is up (any thread) */
int gw_server_store_up(void);
/* Runs the gateway until SIGTERM/SIGINT. Returns the process exit code. */
int gw_server_run(const char *conf_path);

/* ---- pipeline.c ---------------------------------------------------------------------------- */

/* Per-request state, allocated from the request's pool; disposed (and logged) with it. */
typedef struct {
    h2o_req_t *req;
    gw_thread_t *thread;
    gw_gen_t *gen;
    const route_t *route;
    char request_id[GW_REQUEST_ID_MAX + 1];
    size_t request_id_len;
    char peer[64]; /* client address, text */
    const char *upstream; /* authority of the last upstream tried, or NULL */
    const char *client_id; /* authenticated client, or NULL */
    const char *sub;       /* authenticated subject, or NULL */
    uint64_t started_at; /* ms */
    gw_ratelimit_check_t *rl_check; /* a rate-limit check in flight */
    h2o_iovec_t rl_policy_hdr, rl_state_hdr; /* RateLimit-Policy / RateLimit values for every answer */
} gw_req_t;

/* Adds what every answer to GREQ carries: x-request-id and the RateLimit fields. */
void gw_req_add_common_headers(gw_req_t *greq);

void gw_pipeline_register(h2o_pathconf_t *pathconf);

/* ---- the gateway's own endpoints (answered before route matching) ---------------------------------------- */

/* auth/wellknown.c: /.well-known/openid-configuration, /.well-known/oauth-authorization-server,
 * /.well-known/jwks.json. Returns 0 when it answered, -1 when the path is not one of its own. */
int auth_wellknown_handle(gw_req_t *greq);

/* qr/endpoints.c: /qr/v1/... (SPEC §7.3). Returns 0 when it answered (or will answer), -1 when the
 * path is not one of its own. */
int qr_endpoints_handle(gw_req_t *greq);
/* The city-code state of a generation (code keys from keys.dir/code, the trust list's keys, the
 * per-scene pseudonym secrets): 0 with *OUT set (NULL when keys.dir/code does not exist), or -1 with
 * a reason in ERR. Freed by qr_endpoints_gen_free. */
int qr_endpoints_gen_build(const gw_conf_t *conf, void **out, char *err, size_t errsz);
void qr_endpoints_gen_free(void *qr);

/* ---- hygiene.c ------------------------------------------------------------------------------- */

/* Removes every x-hegate-*, x-forwarded-*, forwarded and x-real-ip header. */
void gw_hygiene_strip(h2o_headers_t *headers);
/* 1 if V is a well-formed client request id: 1..64 chars of [A-Za-z0-9._-] */
int gw_request_id_is_valid(const char *v, size_t len);
/* Total bytes of the request head as the limit counts them: method, path, authority, each name + value. */
size_t gw_request_head_bytes(h2o_req_t *req);

/* ---- proxy.c ----------------------------------------------------------------------------------- */

/* Forwards the request to one of the route's upstreams (round robin, passive health, retries);
 * answers 502/504 problem+json itself when no upstream answers. */
void gw_proxy_start(gw_req_t *greq);
/* The answer to a rate-limit verdict V for GREQ (routes, and the sign-in form's `login` policy): sets
 * the RateLimit-Policy / RateLimit values every answer carries (POLICY_HDR when non-empty: formatted
 * beforehand for exactly V's policies), and for a refusal counts hegate_ratelimited_total under
 * SLOTS[i] for each refusing V->results[i], then answers 429 problem+json with Retry-After and DETAIL;
 * 503 when the limits cannot be checked. Returns 1 when the request may go on, 0 when answered. */
int gw_ratelimit_answer(gw_req_t *greq, const gw_ratelimit_verdict_t *v, h2o_iovec_t policy_hdr, const unsigned *slots,
                        const char *detail);

/* ---- problem.c ----------------------------------------------------------------------------------- */

/* Sends an RFC 9457 problem+json answer. SLUG is the last part of the type URL ("not-found"). */
void gw_problem_send(gw_req_t *greq, int status, const char *slug, const char *title, const char *detail);
/* Same, for a request the pipeline has not set up (no gw_req_t); REQUEST_ID may be NULL. */
void gw_problem_send_raw(h2o_req_t *req, const char *request_id, int status, const char *slug, const char *title,
                         const char *detail);
/* Turns h2o's own text/plain error answers (sent before the pipeline runs) into problem+json. */
void gw_problem_register_rewriter(h2o_pathconf_t *pathconf);
/* Appends S to BUF as the inside of a JSON string (escaping quotes, backslashes, control bytes). */
size_t gw_json_escape(char *buf, size_t bufsz, const char *s, size_t len);

/* ---- metrics.c ------------------------------------------------------------------------------------- */

/* single-label counter families */
enum { GW_MF_RATELIMITED, GW_MF_TOKENS_ISSUED, GW_MF_QR_CODES_ISSUED, GW_MF_QR_VERIFICATIONS, GW_MF_COUNT };
/* the slot of one label value of FAMILY (stable for the process's life) */
unsigned gw_metrics_label_slot(int family, const char *value);
void gw_metrics_count(gw_metrics_t *m, int family, unsigned slot);
/* the store whose error count this thread's metrics report (hegate_store_errors_total) */
void gw_metrics_set_store(gw_metrics_t *m, const gw_store_t *store);
/* the rate limiter whose store-less answers count as store errors too */
void gw_metrics_set_ratelimit(gw_metrics_t *m, const gw_ratelimit_ctx_t *rl);

enum { GW_UPSTREAM_ERR_CONNECT, GW_UPSTREAM_ERR_TIMEOUT, GW_UPSTREAM_ERR_PROTOCOL, GW_UPSTREAM_ERR_KINDS };

/* The metric slot of a route name (stable across reloads). Slot 0 is requests that matched no route. */
unsigned gw_metrics_route_slot(const char *name);
gw_metrics_t *gw_metrics_thread_create(void);
void gw_metrics_request(gw_metrics_t *m, unsigned slot, int status, uint64_t duration_us);
void gw_metrics_upstream_error(gw_metrics_t *m, unsigned slot, int kind);
/* Renders every thread's counters in Prometheus text format into a malloc'd string. */
char *gw_metrics_render(size_t *len);

/* ---- accesslog.c ------------------------------------------------------------------------------------ */

int gw_accesslog_open(const char *path); /* "-" stdout, "off" none; 0 or -1 */
void gw_accesslog_write(gw_req_t *greq, int status, size_t bytes, uint64_t duration_us);
/* writes out what the calling thread has buffered (at thread exit) */
void gw_accesslog_flush_thread(void);

/* ---- admin.c ---------------------------------------------------------------------------------------- */

void gw_admin_register(h2o_globalconf_t *globalconf);
/* readiness as the admin endpoint reports it; set by the server */
extern volatile int gw_ready;

/* ---- log (server.c) ---------------------------------------------------------------------------------- */

/* One line on stderr: "<time> [level] message". Never pass personal data or tokens. */
void gw_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
