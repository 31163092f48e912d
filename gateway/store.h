/*
 * gateway/store.h — the Redis client of one event-loop thread (hiredis 0.14 on the h2o 2.2.5 evloop).
 *
 * One gw_store_t per event-loop thread, created on that thread's loop and used only from that
 * thread (the exceptions, callable from any thread, are gw_store_is_up() and gw_store_get_stats()).
 * It talks to one Redis (TCP "redis://[user:password@]host[:port][/db]" or "unix:/path[?db=N]")
 * or to a Redis Cluster (seed URLs), keeps one pipelined connection per node (per master in a
 * cluster), and gives every command a deadline of `redis.timeout`.
 *
 * The contract a caller relies on:
 *  - gw_store_command() never calls back from inside itself. Its callback runs exactly once, later,
 *    on the loop (with a reply, or with an error string), unless the caller cancels first.
 *  - A callback never comes later than timeout_ms after the command was submitted (measured on the
 *    loop clock, which h2o updates once per loop iteration). When the deadline fires the callback
 *    gets GW_STORE_ERR_TIMEOUT and the connection that did not answer is dropped and re-established
 *    in the background: a late reply can never reach anybody.
 *  - While a connection is down (waiting out its reconnect back-off), commands for it fail fast
 *    (next loop iteration) with GW_STORE_ERR_DOWN: nobody waits on a store known to be down.
 *    Reconnects back off from backoff_min_ms doubling to backoff_max_ms (defaults 50 ms, 1 s).
 *  - Cancel: the handle returned by gw_store_command() is valid until its callback starts or until
 *    gw_store_cancel(); after either, forget it (the memory is recycled). The usual pattern for a
 *    request that may go away: keep the handle in state allocated with h2o_mem_alloc_shared(&req->pool,
 *    ..., dispose), set it to NULL first thing in the callback, and in dispose cancel it if non-NULL.
 *  - Reply objects (hiredis redisReply) are valid only during the callback.
 *
 * Cluster: keys are routed by CRC16 slot (hash tags honoured) through a slot map read with
 * CLUSTER SLOTS (on start, on MOVED, on CLUSTERDOWN, and when a node's connection fails, with
 * back-off); MOVED and ASK are followed (at most GW_STORE_MAX_REDIRECTS times, within the original
 * deadline). Until the map is known commands go to any reachable node and follow MOVED.
 * Pub/sub is not provided; it will be a separate connection type on the same connection layer.
 */
#ifndef hegate_gateway_store_h
#define hegate_gateway_store_h

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "h2o/socket.h"
#include "gateway/conf.h"

#define GW_STORE_NUM_SLOTS 16384
#define GW_STORE_MAX_REDIRECTS 5
#define GW_STORE_MAX_SCRIPTS 8
#define GW_STORE_MAX_NODES 256
#define GW_STORE_NO_KEY (-1) /* key_index for a command without a key (PING, TIME...): any node */

/* Error strings passed to callbacks (compare by pointer or by text). */
extern const char GW_STORE_ERR_TIMEOUT[];      /* "timeout": no answer within timeout_ms */
extern const char GW_STORE_ERR_DOWN[];         /* "store down": not sent, the connection is down */
extern const char GW_STORE_ERR_DISCONNECTED[]; /* "disconnected": the connection was lost while waiting */
extern const char GW_STORE_ERR_REDIRECTS[];    /* "too many redirections" (cluster) */
extern const char GW_STORE_ERR_INVALID[];      /* "invalid command" (argc < 1, formatting failed) */

typedef struct st_gw_store_t gw_store_t;
typedef struct st_gw_store_req_t gw_store_req_t;

/* REPLY is NULL iff ERR is non-NULL. Redis error replies (REDIS_REPLY_ERROR) arrive as replies,
 * except the cluster redirections and NOSCRIPT, which the store handles itself. */
typedef void (*gw_store_cb)(void *data, const redisReply *reply, const char *err);

typedef struct {
    const char *url;      /* single Redis; NULL when cluster is used */
    char *const *cluster; /* cluster seed URLs ("redis://h:p"); db must be 0 */
    size_t num_cluster;
    uint64_t timeout_ms;     /* per-command deadline; 0 means 50 */
    uint64_t backoff_min_ms; /* 0 means 50 */
    uint64_t backoff_max_ms; /* 0 means 1000 */
} gw_store_conf_t;

/* The store settings of a parsed configuration (redis.url / redis.cluster / redis.timeout). */
gw_store_conf_t gw_store_conf_from(const gw_conf_t *conf);

typedef struct {
    char host[256];     /* "" for a unix socket */
    uint16_t port;      /* default 6379 */
    char path[256];     /* unix socket path, "" for TCP */
    unsigned db;        /* SELECT db (0 = none) */
    char user[128];     /* AUTH user (Redis 6 ACL), may be "" */
    char password[256]; /* AUTH password, "" for none */
} gw_store_addr_t;

/* Parses a store URL. 0 on success; -1 with a reason in ERR (never containing the password). */
int gw_store_parse_url(const char *url, gw_store_addr_t *out, char *err, size_t errlen);

/* Creates the store on LOOP and starts connecting in the background. NULL (reason in ERR) if the
 * configuration is unusable (bad URL). */
gw_store_t *gw_store_create(h2o_loop_t *loop, const gw_store_conf_t *conf, char *err, size_t errlen);
/* Closes every connection. Pending callbacks are NOT called (their requests are dropped silently):
 * tear down callers first. Never call from inside a store callback. Run the loop (or destroy it)
 * afterwards so h2o can release the closed sockets. */
void gw_store_free(gw_store_t *store);

/* Sends ARGV (ARGC words; ARGVLEN may be NULL for NUL-terminated words) pipelined on the
 * connection owning argv[KEY_INDEX] (GW_STORE_NO_KEY: any node; for EVAL/EVALSHA pass 3, the first
 * key). The words are copied before returning. Returns the handle for gw_store_cancel(); never NULL. */
gw_store_req_t *gw_store_command(gw_store_t *store, gw_store_cb cb, void *data, int key_index, int argc, const char *const *argv,
                                 const size_t *argvlen);
/* After this the callback of REQ will never be called. REQ must be a live handle (see above). */
void gw_store_cancel(gw_store_req_t *req);

/* A Lua script known by its SHA1. Initialise once (any thread); BODY must outlive every store using it. */
typedef struct {
    const char *body;
    size_t len;
    char sha1[41];
} gw_store_script_t;
void gw_store_script_init(gw_store_script_t *script, const char *body);
/* SCRIPT LOAD SCRIPT on every connection of STORE, now and after every reconnect (at most
 * GW_STORE_MAX_SCRIPTS). A failing SCRIPT LOAD is logged, not fatal. */
void gw_store_preload(gw_store_t *store, const gw_store_script_t *script);
/* EVALSHA sha NUMKEYS args...: ARGS holds NUMKEYS keys then the other arguments (NARGS in all).
 * Routed by the first key. On NOSCRIPT the store resends it once as EVAL with the body, on the same
 * node and within the same deadline. Same callback and cancel rules as gw_store_command(). */
gw_store_req_t *gw_store_evalsha(gw_store_t *store, const gw_store_script_t *script, gw_store_cb cb, void *data, int numkeys,
                                 int nargs, const char *const *args, const size_t *argslen);

/* 1 when the store can serve every key right now (single: connected and handshaken; cluster: the
 * slot map covers all slots and every master in it is connected). Any thread. */
int gw_store_is_up(const gw_store_t *store);
/* Writes the commands queued so far now, instead of at the end of this loop iteration (for a caller
 * that queues from a timeout callback which may run after the store's own). Loop thread only. If a
 * write fails, the callbacks of that connection's pending commands run from inside this call (with
 * GW_STORE_ERR_DISCONNECTED): call it where such callbacks may run, never with state half-updated. */
void gw_store_flush(gw_store_t *store);
/* 1 for a Redis Cluster (then the keys of one command or script must share a slot). */
int gw_store_is_cluster(const gw_store_t *store);
/* The address of the I-th node STORE knows (the seeds, and in a cluster every node its slot map has
 * named since): 1 when its connection is ready, 0 when not (HOST "" for a unix socket), -1 when I is
 * past the last. For a second connection of another kind to the same store (the revocation
 * subscriber). Loop thread only. */
int gw_store_node_addr(const gw_store_t *store, size_t i, char *host, size_t hostsz, uint16_t *port);
/* 1 when the connection that owns KEY is up (loop thread only). */
int gw_store_is_up_for_key(const gw_store_t *store, const char *key, size_t len);

typedef struct {
    uint64_t commands;      /* gw_store_command/evalsha calls */
    uint64_t errors;        /* callbacks with ERR != NULL (timeouts, down, disconnected...): hegate_store_errors_total */
    uint64_t error_replies; /* callbacks with a Redis error reply */
    uint64_t timeouts;      /* deadlines that fired */
    uint64_t connects;      /* connections that completed their handshake */
    uint64_t disconnects;   /* established connections lost or dropped */
    uint64_t moved, ask;    /* cluster redirections followed */
    uint64_t refreshes;     /* CLUSTER SLOTS sent */
    uint64_t noscript;      /* EVALSHA resent as EVAL */
} gw_store_stats_t;
/* A consistent-enough copy of the counters (each read atomically); any thread. */
void gw_store_get_stats(const gw_store_t *store, gw_store_stats_t *out);

/* CRC16-CCITT (XMODEM), as Redis Cluster uses it: "123456789" -> 0x31C3. */
uint16_t gw_store_crc16(const void *buf, size_t len);
/* The cluster slot of KEY (0..16383), hashing only the first non-empty {...} hash tag if any. */
unsigned gw_store_key_slot(const void *key, size_t len);

/* A cluster redirection: "MOVED 3999 127.0.0.1:6381", or "ASK 3999 :6381" (follow once, after ASKING). */
typedef struct {
    unsigned slot;    /* 0..16383 */
    const char *host; /* into the reply text, not NUL-terminated */
    size_t host_len;  /* 0: the same host as the node that answered; at most 255 */
    uint16_t port;    /* 1..65535 */
    int ask;          /* 1 for ASK, 0 for MOVED */
} gw_store_redirect_t;
/* Parses the error reply text S (LEN bytes) as MOVED or ASK. 0 on success; -1 if it is neither or malformed. */
int gw_store_parse_redirect(const char *s, size_t len, gw_store_redirect_t *out);

#endif
