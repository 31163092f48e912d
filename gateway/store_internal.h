/*
 * gateway/store_internal.h — what the pieces of the store share: its structs and the calls between layers.
 *
 * store_node.c holds the connections (socket adapter, nodes, handshake, back-off), store.c the requests,
 * replies and scripts, store_cluster.c the routing (slot map, MOVED/ASK, refresh). Only those files include
 * this header; callers of the store see gateway/store.h. Everything here runs on the store's loop thread.
 */
#ifndef hegate_gateway_store_internal_h
#define hegate_gateway_store_internal_h

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <hiredis/async.h>
#include "h2o/linklist.h"
#include "h2o/timeout.h"
#include "gateway/store.h"

#define GW_STORE_MAX_LEVELS 16 /* [0] = 0 ms (deferred work), [1..] back-off steps */
#define GW_STORE_LABEL_MAX 300

/* counters: single writer (the loop thread), readers anywhere */
#define GW_STORE_STAT_INC(store, field)                                                                                            \
    __atomic_store_n(&(store)->stats.field, __atomic_load_n(&(store)->stats.field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)

typedef enum {
    GW_STORE_NODE_IDLE,       /* no connection, none wanted yet */
    GW_STORE_NODE_CONNECTING, /* connection and handshake in progress; commands queue behind the handshake */
    GW_STORE_NODE_READY,      /* handshake answered */
    GW_STORE_NODE_BACKOFF     /* connection failed; waiting for the retry timer; commands fail fast */
} gw_store_node_state_t;

typedef struct st_gw_store_node_t {
    gw_store_t *store;
    size_t index; /* in store->nodes; the slot map stores index + 1 */
    char *host;   /* NULL for a unix socket */
    uint16_t port;
    char *path;                     /* unix socket path or NULL */
    char label[GW_STORE_LABEL_MAX]; /* "host:port" or the socket path, for logs */
    redisAsyncContext *ac;          /* NULL unless CONNECTING or READY */
    gw_store_node_state_t state;
    unsigned handshake_left;   /* replies still expected before READY */
    unsigned fail_level;       /* back-off level of the next failure (1..num_levels-1) */
    h2o_timeout_entry_t retry; /* reconnect timer */
    size_t pending;            /* requests hiredis holds a callback for */
    uint32_t slots;            /* slots the cluster map gives this node */
    unsigned is_seed : 1;
    unsigned logged_down : 1; /* a failure was logged; log the recovery */
} gw_store_node_t;

struct st_gw_store_req_t {
    gw_store_t *store;
    gw_store_cb cb; /* NULL once called or cancelled */
    void *data;
    h2o_timeout_entry_t timer; /* the deadline, or the deferred-failure entry */
    h2o_linklist_t link;       /* store->live, or store->freelist */
    gw_store_node_t *node;     /* non-NULL while hiredis holds a callback for this request */
    char *cmd;                 /* the formatted command, kept for resends (redirects, NOSCRIPT) */
    size_t cmdlen;
    const gw_store_script_t *script; /* EVALSHA not yet retried as EVAL */
    const char *deferred_err;
    int slot; /* -1: no key */
    unsigned redirects;
    unsigned asking : 1;
    unsigned internal : 1; /* handshake / CLUSTER SLOTS: not in the caller-facing counters */
};

struct st_gw_store_t {
    h2o_loop_t *loop;
    int cluster;
    unsigned db;
    char *user, *password;
    uint64_t timeout_ms;
    h2o_timeout_t deadline;
    uint64_t last_deadline_at; /* registered_at of the newest deadline entry (keeps the list sorted) */
    h2o_timeout_t levels[GW_STORE_MAX_LEVELS];
    size_t num_levels;
    gw_store_node_t *nodes[GW_STORE_MAX_NODES];
    size_t num_nodes;
    uint16_t *slot_map; /* cluster: node index + 1 per slot, 0 = unknown */
    size_t unmapped;    /* slots with 0 */
    size_t rr;
    h2o_timeout_entry_t refresh_timer;
    unsigned refresh_level;
    gw_store_node_t *refresh_node; /* node asked by the CLUSTER SLOTS in flight */
    int refresh_inflight, refresh_again;
    const gw_store_script_t *scripts[GW_STORE_MAX_SCRIPTS];
    size_t num_scripts;
    h2o_linklist_t live, freelist;
    size_t num_free;
    int up;
    unsigned cb_depth;
    int closing;
    gw_store_stats_t stats;
};

/* ---- store.c ------------------------------------------------------------------------------------------- */

void gw_store_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Delivers the outcome (if the caller still waits) and releases REQ unless hiredis still holds it. */
void gw_store_req_finish(gw_store_req_t *req, const redisReply *reply, const char *err);
/* fails REQ on the next loop iteration: for failures detected inside gw_store_command() */
void gw_store_req_fail_later(gw_store_req_t *req, const char *err);
/* a request of the store itself (handshake, CLUSTER SLOTS), formatted and with its deadline started */
gw_store_req_t *gw_store_req_internal(gw_store_t *store, gw_store_cb cb, void *data, int argc, const char **argv,
                                      const size_t *lens);
/* hiredis' callback for every command a node sends */
void gw_store_on_reply(redisAsyncContext *ac, void *_reply, void *privdata);

/* ---- store_node.c -------------------------------------------------------------------------------------- */

/* The connection of NODE is gone or being dropped: detach it (its remaining callbacks then see
 * ac->data == NULL) and schedule a reconnect. Idempotent. Does not free the context. */
void gw_store_node_lost(gw_store_node_t *node, const char *why);
/* starts connecting NODE and queues its handshake; -1 (back-off scheduled) when it cannot */
int gw_store_node_connect(gw_store_node_t *node);
/* Queues REQ on NODE (connecting it if idle). Returns NULL, or the error when it cannot be sent. */
const char *gw_store_node_send(gw_store_node_t *node, gw_store_req_t *req);

/* ---- store_cluster.c ----------------------------------------------------------------------------------- */

/* a new node in store->nodes (reusing the place of one nobody refers to when full); NULL when none is free */
gw_store_node_t *gw_store_node_new(gw_store_t *store, const char *host, uint16_t port, const char *path);
/* 1 when NODE should be connected (single Redis: always; cluster: it owns slots, or a seed while the map is empty) */
int gw_store_node_wanted(gw_store_node_t *node);
/* any node able to take a command: connected first, then connecting, then idle (connects it) */
gw_store_node_t *gw_store_pick_any(gw_store_t *store);
/* recomputes store->up (gw_store_is_up) */
void gw_store_update_up(gw_store_t *store);
/* a CLUSTER SLOTS soon (at most one in flight; another after it when asked again meanwhile) */
void gw_store_request_refresh(gw_store_t *store);
void gw_store_on_refresh_timer(h2o_timeout_entry_t *entry);
/* Follows the MOVED or ASK REDIRECT that NODE answered REQ with. Returns 1 when REQ was resent or finished
 * here, 0 when the error reply goes to the caller as it is (no usable target). */
int gw_store_follow_redirect(gw_store_req_t *req, gw_store_node_t *node, const gw_store_redirect_t *redirect);

/* the node for a command on SLOT (-1: no key); on every command, hence inline */
static inline gw_store_node_t *gw_store_route(gw_store_t *store, int slot)
{
    if (!store->cluster)
        return store->nodes[0];
    if (slot >= 0 && store->slot_map[slot] != 0)
        return store->nodes[store->slot_map[slot] - 1];
    return gw_store_pick_any(store);
}

/* ---- small parsers (URLs, redirections, the slot map) -------------------------------------------------- */

static inline int gw_store_copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* the LEN decimal digits at S (at least one), at most MAX */
static inline int gw_store_parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

#endif
