/*
 * gateway/gateway.h — the server's contract: threads, configuration generations, the request
 * pipeline, and the small interface the gateway's own endpoint families (auth/http/, qr/http/) use:
 * register a family, answer (problem+json, JSON, OAuth errors), call the store, count, log.
 * Sections are named after the file that implements them.
 *
 * The big picture: main.c registers the endpoint families and calls gw_server_run(). server.c
 * starts one event loop per thread (SO_REUSEPORT listeners), each with an h2o context whose single
 * handler at "/" is pipeline.c. A request takes the thread's current generation (generation.c: the
 * match table of routes and own endpoints, upstream targets, keys, built from one config file) and
 * keeps it until it is disposed; SIGHUP builds a new generation aside and hands it to every thread,
 * so no connection is dropped. Every request walks the same stages (pipeline.c): hygiene → head
 * limit → match → method → body limit → authenticate → authorize (bearer.c) → rate limit → handle
 * (proxy.c, or the endpoint's own handler) → log (metrics.c, accesslog.c, when it is disposed).
 * Every error goes through problem.c.
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
#define GW_MAX_FAMILIES 8
#define GW_REQUEST_ID_MAX 64
#define GW_EJECT_MS 10000

typedef struct st_gw_thread_t gw_thread_t;
typedef struct st_gw_metrics_t gw_metrics_t;
typedef struct st_gw_req_t gw_req_t;
typedef struct st_gw_family_t gw_family_t;

/* ---- family.c: the gateway's own endpoint families ------------------------------------------------- */

/* How an entry's errors are written: RFC 9457 problem+json, or RFC 6749 §5.2 {"error": ...} */
typedef enum { GW_ERRORS_PROBLEM, GW_ERRORS_OAUTH } gw_error_format_t;

/* What the authenticate stage does for an entry (bearer.c; README "Bearer tokens"). 0: public. */
enum {
    GW_AUTH_BEARER = 1 << 0,     /* a valid bearer token is required */
    GW_AUTH_OPTIONAL = 1 << 1,   /* ... only when the request carries an Authorization header */
    GW_AUTH_OWN = 1 << 2,        /* only tokens this gateway issued (not a trusted issuer's) */
    GW_AUTH_REVOKED_OK = 1 << 3, /* a revoked token still says whose session it was (logout) */
    GW_AUTH_RESIDENT = 1 << 4,   /* a resident's token, not a client's own (sub != client_id) */
};

/* One endpoint of a family, declared as a route is: path, methods, what authentication it needs. */
typedef struct {
    const char *name;          /* below the family's name in /metrics and the access log: "token" */
    const char *path;          /* below the family's prefix: "token", "codes/" (with SUBTREE: anything below) */
    int subtree;               /* 1: PATH is a folder, every path below it is this endpoint */
    unsigned methods;          /* GW_M_* */
    unsigned auth;             /* GW_AUTH_* */
    const char *const *scopes; /* GW_AUTH_BEARER: the token must hold one of these (NULL-terminated; NULL: any) */
    void (*handle)(gw_req_t *greq);
    /* set by gw_family_register */
    char *label;     /* "<family>.<name>" */
    char *full_path; /* "<prefix>/<path>" (a SUBTREE's without its trailing '/') */
    unsigned metric_slot;
} gw_endpoint_t;

/* A family of own endpoints under one prefix ("/oauth2"): registered once, before gw_server_run, by
 * its folder's *_register function (called from main.c). */
struct st_gw_family_t {
    const char *name;      /* the metrics / access-log label of its endpoints' prefix: "oauth2" */
    const char *prefix;    /* "/oauth2" */
    int owns_prefix;       /* 1: every path below PREFIX is the family's (unknown ones: its 404); 0: only its endpoints */
    const char *not_found; /* the 404 detail when it owns the prefix */
    gw_error_format_t errors;
    gw_endpoint_t *endpoints;
    size_t num_endpoints;
    /* optional hooks */
    void (*init)(void); /* once, at registration (e.g. the family's store scripts) */
    /* per generation: 0 with *OUT set (NULL allowed), or -1 with a reason in ERR; freed by gen_free */
    int (*gen_build)(const gw_conf_t *conf, void **out, char *err, size_t errsz);
    void (*gen_free)(void *data);
    void *(*thread_init)(gw_thread_t *thread); /* per event-loop thread, before it serves */
    /* set by gw_family_register */
    unsigned index;
    unsigned metric_slot;
};

/* Adds FAMILY (static storage, filled in here). Start-up only, before gw_server_run. */
void gw_family_register(gw_family_t *family);
size_t gw_families(gw_family_t *const **out);
/* The per-generation / per-thread state of the family that GREQ's endpoint belongs to. */
void *gw_family_gen_data(const gw_req_t *greq);
void *gw_family_thread_data(const gw_req_t *greq);

/* ---- generation.c --------------------------------------------------------------------------------- */

/* One upstream address (host:port), shared by every generation and thread for the process's
 * life: passive health and keep-alive pools survive reloads. */
typedef struct {
    char *authority; /* "127.0.0.1:9101" — also the Host header sent upstream */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t ejected_until;                  /* ms (h2o_now clock, CLOCK_MONOTONIC based); read/written atomically */
    h2o_socketpool_t *pools[GW_MAX_THREADS]; /* created lazily by each thread on its own loop */
} gw_target_t;

/* One entry of a generation's match table, as the pipeline's stages see it: a configured route
 * (proxied) or an own endpoint (its handler answers), or a family's 404. Indexed by route_t.index:
 * the config's routes first, in order, then the families' entries. */
typedef struct {
    const char *name; /* metrics and access-log label: the route's name, "oauth2.token", "oauth2" */
    unsigned metric_slot;
    unsigned methods;          /* GW_M_* */
    uint64_t body_limit;       /* bytes */
    unsigned auth;             /* GW_AUTH_* (a route with scopes: GW_AUTH_BEARER) */
    const char *const *scopes; /* any one of them; NUM_SCOPES 0: any token */
    size_t num_scopes;
    gw_error_format_t errors;
    /* what answers: a route's upstreams (CONF), an own endpoint (ENDPOINT), or FAMILY's 404 (neither) */
    const gw_route_conf_t *conf;
    const gw_endpoint_t *endpoint;
    const gw_family_t *family;
    /* routes only */
    gw_target_t **targets;
    size_t num_targets;
    const char **base_paths;                                        /* upstream URL path per target ("" or "/base") */
    const gw_ratelimit_conf_t *policies[GW_RATELIMIT_MAX_POLICIES]; /* resolved `rate_limit` names */
    unsigned policy_slots[GW_RATELIMIT_MAX_POLICIES];               /* their metric label slots */
    size_t num_policies;
    h2o_iovec_t policy_hdr; /* RateLimit-Policy when every policy applies (formatted once; base malloc'd) */
} gw_route_rt_t;

/* An immutable, reference-counted configuration generation. */
typedef struct {
    int refcnt;
    unsigned serial;   /* 1 for the configuration started with, +1 per accepted reload */
    unsigned switched; /* threads serving this generation so far (atomic) */
    gw_conf_t *conf;
    route_table_t *routes; /* the match table: routes and own endpoints */
    gw_route_rt_t *rt;
    size_t num_rt;
    auth_keyset_t *token_keys;          /* keys.dir/token/, NULL when the folder does not exist */
    auth_keyset_t **issuer_keys;        /* one per trusted issuer */
    auth_verifier_t *verifier;          /* NULL when no issuer has keys: every protected route answers 401 */
    void *family_data[GW_MAX_FAMILIES]; /* each family's gen_build result */
} gw_gen_t;

gw_gen_t *gw_gen_build(gw_conf_t *conf, gw_errors_t *errs); /* takes ownership of CONF on success */
void gw_gen_addref(gw_gen_t *gen);
void gw_gen_release(gw_gen_t *gen);
/* Resolves HOST (a name, an address, or a bracketed IPv6 literal) and PORT. 0 or -1. */
int gw_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
/* The target for HOST:PORT (created once per process), or NULL when it does not resolve. */
gw_target_t *gw_target_get(const char *host, uint16_t port);

/* ---- server.c ---------------------------------------------------------------------------- */

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
    size_t response_held; /* bytes of upstream answers read and not yet taken by their clients (proxy.c) */
    gw_metrics_t *metrics;
    gw_store_t *store; /* NULL if the store config is unusable (then on_store_down applies) */
    gw_ratelimit_ctx_t *ratelimit;
    auth_tokcache_t *tokcache;                  /* verified bearer tokens (revocation is still checked every time) */
    struct st_gw_revocations_asked_t *revasked; /* the store\'s recent revocation answers (revocations_ask.c) */
    void *family_data[GW_MAX_FAMILIES];         /* each family's thread_init result */
    gw_timeout_t *timeouts[64];
    size_t num_timeouts;
    unsigned rr[1024]; /* round-robin cursor per route index */
    h2o_socket_t **listeners;
    size_t num_listeners;
    int stopping;
    struct st_gw_guard_thread_t *guard; /* this thread's client connections (guard.c) */
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
struct st_gw_req_t {
    h2o_req_t *req;
    gw_thread_t *thread;
    gw_gen_t *gen;
    const gw_route_rt_t *rt; /* the matched entry, or NULL (404 before any match) */
    const route_t *route;    /* its match-table entry */
    char request_id[GW_REQUEST_ID_MAX + 1];
    size_t request_id_len;
    char peer[64];                           /* client address, text */
    const char *upstream;                    /* authority of the last upstream tried, or NULL */
    const char *client_id;                   /* authenticated client, or NULL */
    const char *sub;                         /* authenticated subject, or NULL */
    const auth_claims_t *claims;             /* an own endpoint's verified token (a copy in the pool), or NULL */
    uint64_t started_at;                     /* ms */
    gw_ratelimit_check_t *rl_check;          /* a rate-limit check in flight */
    h2o_iovec_t rl_policy_hdr, rl_state_hdr; /* RateLimit-Policy / RateLimit values for every answer */
};

/* Adds what every answer to GREQ carries: x-request-id and the RateLimit fields. */
void gw_req_add_common_headers(gw_req_t *greq);
/* Writes METHODS (GW_M_* bits) as an `Allow` value ("GET, POST") into BUF; the length, 0 if BUFSZ is too small. */
size_t gw_allow_header(unsigned methods, char *buf, size_t bufsz);

void gw_pipeline_register(h2o_pathconf_t *pathconf);
/* The stages after authentication (rate limit, handle), for a request whose authentication was pending. */
void gw_pipeline_after_authenticate(gw_req_t *greq);

/* ---- bearer.c ------------------------------------------------------------------------------------ */

/* What a stage did with a request: pass it to the next stage, answer it, or keep it until an
 * asynchronous step ends (the stage then resumes the pipeline itself). */
enum { GW_STAGE_ANSWERED, GW_STAGE_NEXT, GW_STAGE_PENDING };

/* The authenticate and authorize stages, the one bearer authentication of the gateway (README
 * "Bearer tokens": missing / invalid / expired / revoked → 401, wrong scope → 403, revocations
 * unknown → 503 or accepted as on_store_down says, in RT's error format). GW_STAGE_NEXT: the request
 * goes on (GREQ's sub, client_id and, for own endpoints, claims are set when a token was given);
 * GW_STAGE_ANSWERED; GW_STAGE_PENDING: the store is being asked whether the token is revoked (the
 * subscription is down), and gw_pipeline_after_authenticate follows if it is not. */
int gw_authenticate(gw_req_t *greq, const gw_route_rt_t *rt);

/* ---- task.c: asynchronous work of an own endpoint ------------------------------------------------- */

/* One store command or background job in flight at a time; both die with the request. */
typedef struct st_gw_task_t gw_task_t;
typedef void (*gw_task_store_cb)(gw_task_t *t, const redisReply *reply, const char *err);
typedef void (*gw_task_job_cb)(gw_task_t *t, int result);
struct st_gw_task_t {
    gw_req_t *greq;
    gw_store_req_t *pending;
    void *job; /* a background job (the owner's kind), cancelled with JOB_CANCEL */
    void (*job_cancel)(void *job);
    gw_task_store_cb store_cb;
    gw_task_job_cb job_cb;
    void *ctx; /* the endpoint's own state (pool memory) */
};

gw_task_t *gw_task_new(gw_req_t *greq);
/* Sends one command / script; when the store is missing, CB runs at once with an error. */
void gw_task_command(gw_task_t *t, gw_task_store_cb cb, int argc, const char *const *argv, const size_t *lens);
void gw_task_eval(gw_task_t *t, const gw_store_script_t *script, gw_task_store_cb cb, int numkeys, int nargs,
                  const char *const *args, const size_t *lens);
/* 1 (and a 503 answered in the endpoint's error format) when a store reply is an error or missing */
int gw_task_store_failed(gw_task_t *t, const redisReply *reply, const char *err);
/* The I-th element of an array reply as a string ("" when absent or not a string). */
const char *gw_reply_str(const redisReply *r, size_t i);

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
/* Cache-Control: no-store and Pragma: no-cache on the answer (every answer that carries a secret). */
void gw_add_no_store(h2o_req_t *req);
/* A JSON answer (application/json, no-store, the common headers, framed by length). */
void gw_send_json(gw_req_t *greq, int status, const char *text, size_t len);
/* An RFC 6749 §5.2 error answer {"error": ERROR, "error_description": DESCRIPTION} (fixed texts only),
 * with the WWW-Authenticate challenge a 401 / 403 needs. */
void gw_oauth_error(gw_req_t *greq, int status, const char *error, const char *description);
/* 503 in GREQ's error format (its entry's: problem+json, or OAuth temporarily_unavailable). */
void gw_send_unavailable(gw_req_t *greq, const char *detail);

/* ---- guard.c: the connection guard (README "Under attack") ------------------------------------------ */

/* why the guard closed or refused a connection: hegate_connections_closed_total{reason} */
enum {
    GW_GUARD_CAPACITY,          /* limits.connections open */
    GW_GUARD_PER_IP,            /* limits.connections_per_ip open from its address */
    GW_GUARD_CONNECT_RATE,      /* over limits.new_connections_per_ip */
    GW_GUARD_HANDSHAKE_TIMEOUT, /* no TLS handshake / first bytes within limits.handshake_timeout */
    GW_GUARD_RESETS,            /* HTTP/2 streams cancelled (RST_STREAM) over limits.h2_resets_per_second */
    GW_GUARD_CONTROL_FRAMES,    /* PING, SETTINGS, PRIORITY, idle WINDOW_UPDATE, empty and unknown frames */
    GW_GUARD_HEADER_BLOCK,      /* an HTTP/2 header block over limits.header_bytes (CONTINUATION flood) */
    GW_GUARD_HEADER_FIELDS,     /* an HTTP/2 header block of more than limits.header_fields fields (HPACK bomb) */
    GW_GUARD_HEAD_TIMEOUT,      /* an HTTP/2 header block still arriving after limits.head_timeout */
    GW_GUARD_BODY_TIMEOUT,      /* an HTTP/2 request body still arriving after limits.body_timeout */
    GW_GUARD_SEND_TIMEOUT,      /* no byte of a response taken for limits.send_timeout */
    GW_GUARD_BAD_REQUESTS,      /* more than GW_GUARD_MAX_BAD_REQUESTS requests refused for their heads */
    GW_GUARD_REASONS
};
#define GW_GUARD_MAX_BAD_REQUESTS 16
typedef struct st_gw_guard_thread_t gw_guard_thread_t;
typedef struct st_gw_guard_conn_t gw_guard_conn_t;

gw_guard_thread_t *gw_guard_thread_new(gw_thread_t *thread);
/* a client connection (FD, non-blocking, from PEER) accepted on a worker listener: admitted (TLS,
 * protocol, h2o) or closed */
void gw_guard_accept(gw_guard_thread_t *gt, h2o_accept_ctx_t *actx, int fd, const struct sockaddr_storage *peer,
                     socklen_t peerlen);
/* the pipeline's first look at a request (guards an HTTP/2 connection upgraded from HTTP/1.1) */
void gw_guard_on_request(h2o_req_t *req);
/* an HTTP/2 stream the client cancelled before the pipeline routed it: no upstream, no log line */
void gw_guard_cancelled_before_routing(h2o_req_t *req);
/* a request refused for its head (431): too many on one connection close it */
void gw_guard_bad_request(h2o_req_t *req);
const char *gw_guard_reason_name(int reason);
void gw_guard_counts(uint64_t closed[GW_GUARD_REASONS], uint64_t *cancelled_before_routing, uint64_t *open);

/* ---- metrics.c ------------------------------------------------------------------------------------- */

/* single-label counter families */
enum { GW_MF_RATELIMITED, GW_MF_TOKENS_ISSUED, GW_MF_QR_CODES_ISSUED, GW_MF_QR_VERIFICATIONS, GW_MF_BACKCHANNEL_LOGOUT, GW_MF_DEVICE_CODES,
       GW_MF_COUNT };
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
