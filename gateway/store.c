/*
 * gateway/store.c — the Redis client of one event-loop thread: hiredis 0.14 async contexts driven by
 * the h2o 2.2.5 evloop, pipelined commands with deadlines, reconnect with back-off, Redis Cluster
 * routing (slot map, MOVED, ASK, failover) and EVALSHA with NOSCRIPT fallback.
 *
 * Called by the rate limiter (and later sessions, tokens, replay sets) on the thread that owns the
 * store. Layers, bottom up: the socket adapter (hiredis <-> h2o socket), nodes (one connection each,
 * handshake, back-off), requests (deadline, callback exactly once, cancel), routing (cluster map).
 *
 * It must never: call a callback from inside gw_store_command(); call a callback twice or after
 * cancel; let a caller wait past its deadline; block the loop (except hiredis' own getaddrinfo for
 * host names: use IP addresses in production); log keys, values or passwords.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <openssl/evp.h>
#include <hiredis/async.h>
#include "h2o/linklist.h"
#include "h2o/memory.h"
#include "h2o/timeout.h"
#include "gateway/store.h"

const char GW_STORE_ERR_TIMEOUT[] = "timeout";
const char GW_STORE_ERR_DOWN[] = "store down";
const char GW_STORE_ERR_DISCONNECTED[] = "disconnected";
const char GW_STORE_ERR_REDIRECTS[] = "too many redirections";
const char GW_STORE_ERR_INVALID[] = "invalid command";

#define MAX_LEVELS 16     /* [0] = 0 ms (deferred work), [1..] back-off steps */
#define FREELIST_MAX 1024 /* recycled request structs kept per store */
#define LABEL_MAX 300

/* The project's logger lives in server.c. Declared weak so that this file links without it (unit
 * tests link only what they use); then lines go to stderr in the same shape. */
extern void gw_log(const char *level, const char *fmt, ...) __attribute__((weak, format(printf, 2, 3)));

static void store_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_log(const char *level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (gw_log != NULL)
        gw_log(level, "store: %s", msg);
    else
        fprintf(stderr, "[%s] store: %s\n", level, msg);
}

/* counters: single writer (the loop thread), readers anywhere */
#define STAT_INC(store, field)                                                                                                     \
    __atomic_store_n(&(store)->stats.field, __atomic_load_n(&(store)->stats.field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)

typedef enum {
    NODE_IDLE,       /* no connection, none wanted yet */
    NODE_CONNECTING, /* connection and handshake in progress; commands queue behind the handshake */
    NODE_READY,      /* handshake answered */
    NODE_BACKOFF     /* connection failed; waiting for the retry timer; commands fail fast */
} node_state_t;

typedef struct st_store_node_t {
    gw_store_t *store;
    size_t index; /* in store->nodes; the slot map stores index + 1 */
    char *host;   /* NULL for a unix socket */
    uint16_t port;
    char *path;            /* unix socket path or NULL */
    char label[LABEL_MAX]; /* "host:port" or the socket path, for logs */
    redisAsyncContext *ac; /* NULL unless CONNECTING or READY */
    node_state_t state;
    unsigned handshake_left;   /* replies still expected before READY */
    unsigned fail_level;       /* back-off level of the next failure (1..num_levels-1) */
    h2o_timeout_entry_t retry; /* reconnect timer */
    size_t pending;            /* requests hiredis holds a callback for */
    uint32_t slots;            /* slots the cluster map gives this node */
    unsigned is_seed : 1;
    unsigned logged_down : 1; /* a failure was logged; log the recovery */
} store_node_t;

/* the glue between one hiredis context and its h2o socket */
typedef struct {
    h2o_socket_t *sock;
    redisAsyncContext *ac;
    gw_store_t *store;
    h2o_timeout_entry_t flush; /* on store->levels[0]: the buffered commands go out at the end of this loop iteration */
} store_sock_t;

/* the socket whose buffered commands are being written from sock_on_flush (this thread) */
static __thread store_sock_t *flushing;

struct st_gw_store_req_t {
    gw_store_t *store;
    gw_store_cb cb; /* NULL once called or cancelled */
    void *data;
    h2o_timeout_entry_t timer; /* the deadline, or the deferred-failure entry */
    h2o_linklist_t link;       /* store->live, or store->freelist */
    store_node_t *node;        /* non-NULL while hiredis holds a callback for this request */
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
    h2o_timeout_t levels[MAX_LEVELS];
    size_t num_levels;
    store_node_t *nodes[GW_STORE_MAX_NODES];
    size_t num_nodes;
    uint16_t *slot_map; /* cluster: node index + 1 per slot, 0 = unknown */
    size_t unmapped;    /* slots with 0 */
    size_t rr;
    h2o_timeout_entry_t refresh_timer;
    unsigned refresh_level;
    store_node_t *refresh_node; /* node asked by the CLUSTER SLOTS in flight */
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

static void node_lost(store_node_t *node, const char *why);
static int node_connect(store_node_t *node);
static const char *node_send(store_node_t *node, gw_store_req_t *req);
static void request_refresh(gw_store_t *store);
static void update_up(gw_store_t *store);
static void on_reply(redisAsyncContext *ac, void *_reply, void *privdata);
static void on_deadline(h2o_timeout_entry_t *entry);

/* ---- pure helpers -------------------------------------------------------------------------------- */

uint16_t gw_store_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i != len; ++i) {
        crc ^= (uint16_t)p[i] << 8;
        for (int b = 0; b != 8; ++b)
            crc = (crc & 0x8000) != 0 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned gw_store_key_slot(const void *_key, size_t len)
{
    const char *key = _key;
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close != open + 1)
            return gw_store_crc16(open + 1, (size_t)(close - open - 1)) & (GW_STORE_NUM_SLOTS - 1);
    }
    return gw_store_crc16(key, len) & (GW_STORE_NUM_SLOTS - 1);
}

static int copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
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

int gw_store_parse_url(const char *url, gw_store_addr_t *out, char *err, size_t errlen)
{
    unsigned long v;
    memset(out, 0, sizeof(*out));
    out->port = 6379;
#define FAIL(msg)                                                                                                                  \
    do {                                                                                                                           \
        snprintf(err, errlen, "%s", msg);                                                                                          \
        return -1;                                                                                                                 \
    } while (0)
    if (url == NULL)
        FAIL("no Redis URL");
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5, *q = strchr(p, '?');
        size_t plen = q != NULL ? (size_t)(q - p) : strlen(p);
        if (strncmp(p, "//", 2) == 0) { /* unix:///path */
            p += 2;
            plen -= 2;
        }
        if (plen == 0 || p[0] != '/')
            FAIL("unix: URL needs an absolute socket path");
        if (copy_str(out->path, sizeof(out->path), p, plen) != 0)
            FAIL("unix socket path too long");
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 || parse_uint(q + 4, strlen(q + 4), 1000000, &v) != 0)
                FAIL("unix: URL accepts only ?db=N");
            out->db = (unsigned)v;
        }
        return 0;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        FAIL("rediss:// (TLS) is not supported by this build");
    if (strncmp(url, "redis://", 8) != 0)
        FAIL("Redis URL must start with redis:// or unix:");
    const char *p = url + 8, *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *s = p; s != end; ++s)
        if (*s == '@')
            at = s;
    if (at != NULL) { /* [user][:password]@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            if (copy_str(out->user, sizeof(out->user), p, (size_t)(colon - p)) != 0 ||
                copy_str(out->password, sizeof(out->password), colon + 1, (size_t)(at - colon - 1)) != 0)
                FAIL("Redis URL credentials too long");
        } else if (copy_str(out->password, sizeof(out->password), p, (size_t)(at - p)) != 0) {
            FAIL("Redis URL credentials too long");
        }
        p = at + 1;
    }
    const char *hend, *portp = NULL;
    if (p != end && *p == '[') { /* [IPv6] */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            FAIL("Redis URL: unterminated [IPv6] host");
        if (copy_str(out->host, sizeof(out->host), p + 1, (size_t)(rb - p - 1)) != 0)
            FAIL("Redis URL: host too long");
        hend = rb + 1;
        if (hend != end && *hend == ':')
            portp = hend + 1;
        else if (hend != end)
            FAIL("Redis URL: junk after [IPv6] host");
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon != NULL ? colon : end;
        if (copy_str(out->host, sizeof(out->host), p, (size_t)(hend - p)) != 0)
            FAIL("Redis URL: host too long");
        if (colon != NULL)
            portp = colon + 1;
    }
    if (out->host[0] == '\0')
        FAIL("Redis URL: no host");
    if (portp != NULL) {
        if (parse_uint(portp, (size_t)(end - portp), 65535, &v) != 0 || v == 0)
            FAIL("Redis URL: bad port");
        out->port = (uint16_t)v;
    }
    if (*end == '/') {
        const char *d = end + 1;
        size_t dlen = strcspn(d, "?#");
        if (dlen != 0) {
            if (parse_uint(d, dlen, 1000000, &v) != 0)
                FAIL("Redis URL: bad database number");
            out->db = (unsigned)v;
        }
        end = d + dlen;
    }
    if (*end != '\0')
        FAIL("Redis URL: query and fragment are not supported");
    return 0;
#undef FAIL
}

gw_store_conf_t gw_store_conf_from(const gw_conf_t *conf)
{
    gw_store_conf_t c = {NULL};
    c.url = conf->redis.url;
    c.cluster = conf->redis.cluster.v;
    c.num_cluster = conf->redis.cluster.n;
    c.timeout_ms = conf->redis.timeout_ms;
    return c;
}

void gw_store_script_init(gw_store_script_t *script, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    script->body = body;
    script->len = strlen(body);
    if (EVP_Digest(body, script->len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        abort();
    for (unsigned i = 0; i != 20; ++i)
        sprintf(script->sha1 + i * 2, "%02x", md[i]);
}

/* ---- socket adapter: hiredis drives an h2o socket that h2o never reads from ------------------------- */

static void sock_on_read(h2o_socket_t *sock, const char *err)
{
    store_sock_t *s = sock->data;
    redisAsyncHandleRead(s->ac);
}

static void sock_on_write(h2o_socket_t *sock, const char *err)
{
    store_sock_t *s = sock->data;
    redisAsyncHandleWrite(s->ac);
}

static void ev_add_read(void *p)
{
    store_sock_t *s = p;
    h2o_socket_read_start(s->sock, sock_on_read);
}

static void ev_del_read(void *p)
{
    store_sock_t *s = p;
    h2o_socket_read_stop(s->sock);
}

/* A connected socket is written once per loop iteration, after everything the iteration queued, with
 * one write(2) and no poll for writability (asking epoll costs two epoll_ctl and an iteration per
 * round). Only a connection still connecting, or a write the kernel did not take whole, waits for
 * the socket to be writable. */
static void sock_on_flush(h2o_timeout_entry_t *entry)
{
    store_sock_t *s = H2O_STRUCT_FROM_MEMBER(store_sock_t, flush, entry);
    flushing = s;
    redisAsyncHandleWrite(s->ac); /* may free S (write error -> disconnect -> ev_cleanup) */
    flushing = NULL;
}

static void ev_add_write(void *p)
{
    store_sock_t *s = p;
    if (flushing != s && (s->ac->c.flags & REDIS_CONNECTED) != 0 && !h2o_socket_is_writing(s->sock)) {
        if (!h2o_timeout_is_linked(&s->flush))
            h2o_timeout_link(s->store->loop, &s->store->levels[0], &s->flush);
        return;
    }
    if (!h2o_socket_is_writing(s->sock)) /* h2o asserts on a second notify */
        h2o_socket_notify_write(s->sock, sock_on_write);
}

/* hiredis calls this exactly once, when it frees the context (after the NULL-reply callbacks) */
static void ev_cleanup(void *p)
{
    store_sock_t *s = p;
    store_node_t *node = s->ac->data;
    if (h2o_timeout_is_linked(&s->flush))
        h2o_timeout_unlink(&s->flush);
    if (node != NULL)
        node_lost(node, s->ac->errstr != NULL ? s->ac->errstr : "connection closed");
    h2o_socket_close(s->sock);
    s->ac->c.fd = -1; /* h2o closed it */
    free(s);
}

static void on_connect_cb(const redisAsyncContext *ac, int status)
{
    /* nothing: the handshake replies decide readiness, ev_cleanup handles failure */
}

/* ---- requests ---------------------------------------------------------------------------------------- */

static gw_store_req_t *req_alloc(gw_store_t *store, gw_store_cb cb, void *data)
{
    gw_store_req_t *req;
    if (!h2o_linklist_is_empty(&store->freelist)) {
        req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, link, store->freelist.next);
        h2o_linklist_unlink(&req->link);
        --store->num_free;
    } else {
        req = h2o_mem_alloc(sizeof(*req));
    }
    memset(req, 0, sizeof(*req));
    req->store = store;
    req->cb = cb;
    req->data = data;
    req->slot = -1;
    h2o_linklist_insert(&store->live, &req->link);
    return req;
}

static void req_release(gw_store_req_t *req)
{
    gw_store_t *store = req->store;
    assert(req->node == NULL);
    h2o_timeout_unlink(&req->timer);
    free(req->cmd);
    req->cmd = NULL;
    req->cb = NULL;
    h2o_linklist_unlink(&req->link);
    if (store->num_free < FREELIST_MAX && !store->closing) {
        h2o_linklist_insert(&store->freelist, &req->link);
        ++store->num_free;
    } else {
        free(req);
    }
}

/* Delivers the outcome (if the caller still waits) and releases REQ unless hiredis still holds it. */
static void req_finish(gw_store_req_t *req, const redisReply *reply, const char *err)
{
    gw_store_t *store = req->store;
    gw_store_cb cb = req->cb;
    h2o_timeout_unlink(&req->timer);
    req->cb = NULL;
    if (cb != NULL) {
        if (!req->internal) {
            if (err != NULL)
                STAT_INC(store, errors);
            else if (reply->type == REDIS_REPLY_ERROR)
                STAT_INC(store, error_replies);
        }
        ++store->cb_depth;
        cb(req->data, reply, err);
        --store->cb_depth;
    }
    if (req->node == NULL)
        req_release(req);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    gw_store_req_t *req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, timer, entry);
    req_finish(req, NULL, req->deferred_err);
}

/* fails REQ on the next loop iteration: for failures detected inside gw_store_command() */
static void req_fail_later(gw_store_req_t *req, const char *err)
{
    h2o_timeout_unlink(&req->timer);
    req->deferred_err = err;
    req->timer.cb = on_deferred;
    h2o_timeout_link(req->store->loop, &req->store->levels[0], &req->timer);
}

/* Starts the deadline of REQ. h2o stamps a timeout entry with the loop's clock, which is only
 * updated once per loop iteration: after a long iteration (or a loop idle since long before this
 * call) the deadline would fire early and drop a healthy connection. So stamp it with the same
 * clock (gettimeofday, ms) read now, never before the previous entry, so the list stays sorted. */
static void deadline_start(gw_store_t *store, gw_store_req_t *req)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t now = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    req->timer.cb = on_deadline;
    h2o_timeout_link(store->loop, &store->deadline, &req->timer);
    if (now < req->timer.registered_at)
        now = req->timer.registered_at;
    if (now < store->last_deadline_at)
        now = store->last_deadline_at;
    req->timer.registered_at = now;
    store->last_deadline_at = now;
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    gw_store_req_t *req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, timer, entry);
    gw_store_t *store = req->store;
    store_node_t *node = req->node;
    redisAsyncContext *ac = NULL;

    STAT_INC(store, timeouts);
    /* A connection that leaves a command unanswered for timeout_ms is not trusted: detach it first (so
     * that commands issued from the callback below fail fast), answer, then free it, which fails the
     * other commands in flight on it and guarantees no late reply is ever delivered. */
    if (node != NULL && node->ac != NULL) {
        ac = node->ac;
        node_lost(node, "command timeout");
    }
    req_finish(req, NULL, GW_STORE_ERR_TIMEOUT);
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* ---- routing (cluster) ------------------------------------------------------------------------------- */

static store_node_t *node_new(gw_store_t *store, const char *host, uint16_t port, const char *path)
{
    size_t index = store->num_nodes;
    if (index == GW_STORE_MAX_NODES) {
        /* reuse the place of a node nobody refers to (cluster nodes come and go with failovers) */
        for (index = 0; index != store->num_nodes; ++index) {
            store_node_t *n = store->nodes[index];
            if (n->slots == 0 && !n->is_seed && n->state == NODE_IDLE && n->pending == 0 && n != store->refresh_node)
                break;
        }
        if (index == store->num_nodes)
            return NULL;
        store_node_t *old = store->nodes[index];
        h2o_timeout_unlink(&old->retry);
        free(old->host);
        free(old->path);
        free(old);
    } else {
        ++store->num_nodes;
    }
    store_node_t *node = h2o_mem_alloc(sizeof(*node));
    memset(node, 0, sizeof(*node));
    node->store = store;
    node->index = index;
    node->host = host != NULL ? h2o_strdup(NULL, host, SIZE_MAX).base : NULL;
    node->port = port;
    node->path = path != NULL ? h2o_strdup(NULL, path, SIZE_MAX).base : NULL;
    if (path != NULL)
        snprintf(node->label, sizeof(node->label), "%s", path);
    else if (strchr(host, ':') != NULL)
        snprintf(node->label, sizeof(node->label), "[%s]:%u", host, port);
    else
        snprintf(node->label, sizeof(node->label), "%s:%u", host, port);
    node->state = NODE_IDLE;
    node->fail_level = 1;
    store->nodes[index] = node;
    return node;
}

static store_node_t *node_get(gw_store_t *store, const char *host, size_t hostlen, uint16_t port)
{
    char h[256];
    if (copy_str(h, sizeof(h), host, hostlen) != 0)
        return NULL;
    for (size_t i = 0; i != store->num_nodes; ++i) {
        store_node_t *n = store->nodes[i];
        if (n->host != NULL && n->port == port && strcmp(n->host, h) == 0)
            return n;
    }
    return node_new(store, h, port, NULL);
}

static int node_wanted(store_node_t *node)
{
    gw_store_t *store = node->store;
    if (!store->cluster)
        return 1;
    return node->slots != 0 || (store->unmapped == GW_STORE_NUM_SLOTS && node->is_seed);
}

static void map_set(gw_store_t *store, unsigned slot, store_node_t *node)
{
    uint16_t old = store->slot_map[slot];
    if (old != 0)
        --store->nodes[old - 1]->slots;
    else
        --store->unmapped;
    store->slot_map[slot] = (uint16_t)(node->index + 1);
    ++node->slots;
}

/* any node able to take a command: connected first, then connecting, then idle (connects it) */
static store_node_t *pick_any(gw_store_t *store)
{
    store_node_t *connecting = NULL, *idle = NULL;
    size_t n = store->num_nodes;
    for (size_t k = 0; k != n; ++k) {
        store_node_t *node = store->nodes[(store->rr + k) % n];
        if (node->state == NODE_READY) {
            store->rr = (store->rr + k + 1) % n;
            return node;
        }
        if (node->state == NODE_CONNECTING && connecting == NULL)
            connecting = node;
        if (node->state == NODE_IDLE && (idle == NULL || (node->is_seed && !idle->is_seed) || (node->slots && !idle->slots)))
            idle = node;
    }
    return connecting != NULL ? connecting : idle;
}

static store_node_t *route(gw_store_t *store, int slot)
{
    if (!store->cluster)
        return store->nodes[0];
    if (slot >= 0 && store->slot_map[slot] != 0)
        return store->nodes[store->slot_map[slot] - 1];
    return pick_any(store);
}

static void update_up(gw_store_t *store)
{
    int up;
    if (!store->cluster) {
        up = store->nodes[0]->state == NODE_READY;
    } else {
        up = store->unmapped == 0;
        for (size_t i = 0; up && i != store->num_nodes; ++i)
            if (store->nodes[i]->slots != 0 && store->nodes[i]->state != NODE_READY)
                up = 0;
    }
    __atomic_store_n(&store->up, up, __ATOMIC_RELAXED);
}

/* closes an idle connection nobody needs (a master that became a replica, a seed) */
static void node_close(store_node_t *node)
{
    redisAsyncContext *ac = node->ac;
    if (ac == NULL)
        return;
    ac->data = NULL;
    node->ac = NULL;
    node->state = NODE_IDLE;
    redisAsyncFree(ac);
}

static int install_map(gw_store_t *store, const redisReply *reply, store_node_t *asked)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return -1;
    uint16_t *map = calloc(GW_STORE_NUM_SLOTS, sizeof(*map));
    if (map == NULL)
        return -1;
    for (size_t i = 0; i != reply->elements; ++i) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            goto Fail;
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        const redisReply *ip = e->element[2]->element[0], *port = e->element[2]->element[1];
        if (from < 0 || to < from || to >= GW_STORE_NUM_SLOTS || ip->type != REDIS_REPLY_STRING ||
            port->type != REDIS_REPLY_INTEGER || port->integer <= 0 || port->integer > 65535)
            goto Fail;
        const char *host = ip->str;
        size_t hostlen = ip->len;
        if (hostlen == 0 || (hostlen == 1 && host[0] == '?')) { /* "the node you asked" */
            if (asked == NULL || asked->host == NULL)
                goto Fail;
            host = asked->host;
            hostlen = strlen(host);
        }
        store_node_t *node = node_get(store, host, hostlen, (uint16_t)port->integer);
        if (node == NULL)
            goto Fail;
        for (long long s = from; s <= to; ++s)
            map[s] = (uint16_t)(node->index + 1);
    }
    memcpy(store->slot_map, map, GW_STORE_NUM_SLOTS * sizeof(*map));
    free(map);
    for (size_t i = 0; i != store->num_nodes; ++i)
        store->nodes[i]->slots = 0;
    store->unmapped = 0;
    for (size_t s = 0; s != GW_STORE_NUM_SLOTS; ++s) {
        if (store->slot_map[s] == 0)
            ++store->unmapped;
        else
            ++store->nodes[store->slot_map[s] - 1]->slots;
    }
    for (size_t i = 0; i != store->num_nodes; ++i) {
        store_node_t *node = store->nodes[i];
        if (node->slots != 0 && node->state == NODE_IDLE)
            node_connect(node); /* one connection per master, opened eagerly */
        else if (node->slots == 0 && node->state == NODE_READY && node->pending == 0)
            node_close(node);
    }
    update_up(store);
    return 0;
Fail:
    free(map);
    return -1;
}

static gw_store_req_t *internal_req(gw_store_t *store, gw_store_cb cb, void *data, int argc, const char **argv, const size_t *lens)
{
    gw_store_req_t *req = req_alloc(store, cb, data);
    req->internal = 1;
    int len = redisFormatCommandArgv(&req->cmd, argc, argv, lens);
    if (len < 0)
        abort(); /* out of memory */
    req->cmdlen = (size_t)len;
    deadline_start(store, req);
    return req;
}

static void refresh_schedule(gw_store_t *store)
{
    if (!h2o_timeout_is_linked(&store->refresh_timer))
        h2o_timeout_link(store->loop, &store->levels[store->refresh_level], &store->refresh_timer);
}

static void refresh_failed(gw_store_t *store)
{
    if (store->refresh_level + 1 < store->num_levels)
        ++store->refresh_level;
    refresh_schedule(store);
}

static void on_slots(void *data, const redisReply *reply, const char *err)
{
    gw_store_t *store = data;
    store_node_t *asked = store->refresh_node;
    store->refresh_inflight = 0;
    store->refresh_node = NULL;
    if (err != NULL || install_map(store, reply, asked) != 0) {
        if (err == NULL)
            store_log("warn", "unusable CLUSTER SLOTS reply from %s", asked != NULL ? asked->label : "?");
        refresh_failed(store);
        return;
    }
    store->refresh_level = 1; /* at most one refresh per back-off minimum */
    if (store->refresh_again) {
        store->refresh_again = 0;
        refresh_schedule(store);
    }
}

static void on_refresh_timer(h2o_timeout_entry_t *entry)
{
    gw_store_t *store = H2O_STRUCT_FROM_MEMBER(gw_store_t, refresh_timer, entry);
    store->refresh_again = 0;
    store_node_t *node = pick_any(store);
    if (node == NULL) {
        refresh_failed(store);
        return;
    }
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    gw_store_req_t *req = internal_req(store, on_slots, store, 2, argv, NULL);
    store->refresh_inflight = 1;
    store->refresh_node = node;
    STAT_INC(store, refreshes);
    const char *err = node_send(node, req);
    if (err != NULL)
        req_finish(req, NULL, err); /* -> on_slots -> refresh_failed */
}

static void request_refresh(gw_store_t *store)
{
    if (!store->cluster || store->closing)
        return;
    if (store->refresh_inflight || h2o_timeout_is_linked(&store->refresh_timer)) {
        store->refresh_again = 1;
        return;
    }
    refresh_schedule(store);
}

/* ---- nodes: connect, handshake, back-off ------------------------------------------------------------- */

static void on_retry(h2o_timeout_entry_t *entry)
{
    store_node_t *node = H2O_STRUCT_FROM_MEMBER(store_node_t, retry, entry);
    node->state = NODE_IDLE;
    if (node_wanted(node))
        node_connect(node);
    update_up(node->store);
}

static void node_backoff(store_node_t *node)
{
    gw_store_t *store = node->store;
    node->state = NODE_BACKOFF;
    node->retry.cb = on_retry;
    h2o_timeout_unlink(&node->retry);
    h2o_timeout_link(store->loop, &store->levels[node->fail_level], &node->retry);
    if (node->fail_level + 1 < store->num_levels)
        ++node->fail_level;
}

/* The connection of NODE is gone or being dropped: detach it (its remaining callbacks then see
 * ac->data == NULL) and schedule a reconnect. Idempotent. Does not free the context. */
static void node_lost(store_node_t *node, const char *why)
{
    gw_store_t *store = node->store;
    redisAsyncContext *ac = node->ac;
    if (ac == NULL)
        return;
    ac->data = NULL;
    node->ac = NULL;
    if (store->closing) {
        node->state = NODE_IDLE;
        return;
    }
    if (node->state == NODE_READY)
        STAT_INC(store, disconnects);
    if (!node->logged_down) {
        store_log("warn", "%s: %s; reconnecting in the background", node->label, why);
        node->logged_down = 1;
    }
    node_backoff(node);
    update_up(store);
    request_refresh(store);
}

static void handshake_step(store_node_t *node)
{
    if (--node->handshake_left != 0)
        return;
    gw_store_t *store = node->store;
    node->state = NODE_READY;
    node->fail_level = 1;
    STAT_INC(store, connects);
    if (node->logged_down) {
        store_log("info", "%s: connected", node->label);
        node->logged_down = 0;
    }
    update_up(store);
}

/* AUTH, SELECT, PING: an error reply means this connection is unusable */
static void on_handshake(void *data, const redisReply *reply, const char *err)
{
    store_node_t *node = data;
    if (err != NULL)
        return; /* the connection is already gone; node_lost did the rest */
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[128];
        snprintf(msg, sizeof(msg), "handshake refused (%.*s)", (int)(reply->len < 80 ? reply->len : 80), reply->str);
        redisAsyncContext *ac = node->ac;
        node_lost(node, msg);
        if (ac != NULL)
            redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    handshake_step(node);
}

/* SCRIPT LOAD: failure is logged; EVALSHA falls back to EVAL anyway */
static void on_handshake_script(void *data, const redisReply *reply, const char *err)
{
    store_node_t *node = data;
    if (err != NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR)
        store_log("warn", "%s: SCRIPT LOAD failed (%.*s)", node->label, (int)(reply->len < 80 ? reply->len : 80), reply->str);
    handshake_step(node);
}

/* SCRIPT LOAD on a connection that is already READY (gw_store_preload after connect) */
static void on_script_loaded(void *data, const redisReply *reply, const char *err)
{
    store_node_t *node = data;
    if (err == NULL && reply->type == REDIS_REPLY_ERROR)
        store_log("warn", "%s: SCRIPT LOAD failed (%.*s)", node->label, (int)(reply->len < 80 ? reply->len : 80), reply->str);
}

static void handshake_send(store_node_t *node, gw_store_cb cb, int argc, const char **argv, const size_t *lens)
{
    gw_store_req_t *req = internal_req(node->store, cb, node, argc, argv, lens);
    if (cb != on_script_loaded)
        ++node->handshake_left;
    const char *err = node_send(node, req);
    if (err != NULL) /* cannot happen on a live context; keep the exactly-once rule anyway */
        req_fail_later(req, err);
}

static void node_load_script(store_node_t *node, const gw_store_script_t *script, gw_store_cb cb)
{
    const char *argv[] = {"SCRIPT", "LOAD", script->body};
    size_t lens[] = {6, 4, script->len};
    handshake_send(node, cb, 3, argv, lens);
}

static int node_connect(store_node_t *node)
{
    gw_store_t *store = node->store;
    assert(node->ac == NULL);
    redisAsyncContext *ac = node->path != NULL ? redisAsyncConnectUnix(node->path) : redisAsyncConnect(node->host, node->port);
    if (ac == NULL || ac->err != 0) {
        if (!node->logged_down) {
            store_log("warn", "%s: cannot connect (%s); retrying in the background", node->label,
                      ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
            node->logged_down = 1;
        }
        if (ac != NULL)
            redisAsyncFree(ac);
        node_backoff(node);
        update_up(store);
        request_refresh(store);
        return -1;
    }
    store_sock_t *s = h2o_mem_alloc(sizeof(*s));
    s->ac = ac;
    s->store = store;
    s->flush = (h2o_timeout_entry_t){0};
    s->flush.cb = sock_on_flush;
    s->sock = h2o_evloop_socket_create(store->loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    s->sock->data = s;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = NULL;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = s;
    ac->data = node;
    node->ac = ac;
    node->state = NODE_CONNECTING;
    node->handshake_left = 0;
    redisAsyncSetConnectCallback(ac, on_connect_cb); /* after attaching: it schedules a write */

    /* the handshake: pipelined ahead of any command queued while connecting */
    if (store->password != NULL) {
        const char *argv[] = {"AUTH", store->user, store->password};
        if (store->user != NULL)
            handshake_send(node, on_handshake, 3, argv, NULL);
        else
            handshake_send(node, on_handshake, 2, (const char *[]){"AUTH", store->password}, NULL);
    }
    if (store->db != 0 && !store->cluster) {
        char db[16];
        snprintf(db, sizeof(db), "%u", store->db);
        handshake_send(node, on_handshake, 2, (const char *[]){"SELECT", db}, NULL);
    }
    for (size_t i = 0; i != store->num_scripts; ++i)
        node_load_script(node, store->scripts[i], on_handshake_script);
    handshake_send(node, on_handshake, 1, (const char *[]){"PING"}, NULL);
    update_up(store);
    return 0;
}

/* Queues REQ on NODE (connecting it if idle). Returns NULL, or the error when it cannot be sent. */
static const char *node_send(store_node_t *node, gw_store_req_t *req)
{
    if (node->state == NODE_BACKOFF)
        return GW_STORE_ERR_DOWN;
    if (node->state == NODE_IDLE && node_connect(node) != 0)
        return GW_STORE_ERR_DOWN;
    if (req->asking && redisAsyncCommand(node->ac, NULL, NULL, "ASKING") != REDIS_OK)
        return GW_STORE_ERR_DISCONNECTED;
    if (redisAsyncFormattedCommand(node->ac, on_reply, req, req->cmd, req->cmdlen) != REDIS_OK)
        return GW_STORE_ERR_DISCONNECTED;
    req->node = node;
    ++node->pending;
    return NULL;
}

/* ---- replies ------------------------------------------------------------------------------------------- */

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381": the target node, or NULL if unparsable */
static store_node_t *parse_redirect(gw_store_t *store, const char *s, size_t len, store_node_t *from, unsigned *slot)
{
    const char *p = memchr(s, ' ', len), *end = s + len;
    unsigned long v;
    if (p == NULL)
        return NULL;
    ++p;
    const char *q = memchr(p, ' ', (size_t)(end - p));
    if (q == NULL || parse_uint(p, (size_t)(q - p), GW_STORE_NUM_SLOTS - 1, &v) != 0)
        return NULL;
    *slot = (unsigned)v;
    const char *addr = q + 1, *colon = NULL;
    for (const char *c = addr; c != end; ++c)
        if (*c == ':')
            colon = c;
    if (colon == NULL || parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &v) != 0 || v == 0)
        return NULL;
    if (colon == addr) { /* empty host: same host as the node that answered */
        if (from->host == NULL)
            return NULL;
        return node_get(store, from->host, strlen(from->host), (uint16_t)v);
    }
    return node_get(store, addr, (size_t)(colon - addr), (uint16_t)v);
}

static int starts_with(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->len >= n && memcmp(r->str, prefix, n) == 0;
}

/* EVALSHA <sha> ... -> EVAL <body> ...; the other words are kept byte for byte */
static int rewrite_as_eval(gw_store_req_t *req)
{
    static const char sha_word[] = "$7\r\nEVALSHA\r\n$40\r\n";
    const gw_store_script_t *script = req->script;
    const char *nl = memchr(req->cmd, '\n', req->cmdlen);
    if (nl == NULL)
        return -1;
    size_t head = (size_t)(nl + 1 - req->cmd), skip = sizeof(sha_word) - 1 + 40 + 2;
    if (head + skip > req->cmdlen || memcmp(nl + 1, sha_word, sizeof(sha_word) - 1) != 0)
        return -1;
    char lenword[32];
    int lw = snprintf(lenword, sizeof(lenword), "$%zu\r\n", script->len);
    size_t restlen = req->cmdlen - head - skip;
    size_t total = head + 10 + (size_t)lw + script->len + 2 + restlen;
    char *cmd = h2o_mem_alloc(total + 1), *p = cmd;
    memcpy(p, req->cmd, head);
    p += head;
    memcpy(p, "$4\r\nEVAL\r\n", 10);
    p += 10;
    memcpy(p, lenword, (size_t)lw);
    p += lw;
    memcpy(p, script->body, script->len);
    p += script->len;
    memcpy(p, "\r\n", 2);
    p += 2;
    memcpy(p, req->cmd + head + skip, restlen);
    p += restlen;
    *p = '\0';
    free(req->cmd);
    req->cmd = cmd;
    req->cmdlen = total;
    return 0;
}

/* Handles the error replies the store owns. Returns 1 when REQ was resent or finished here. */
static int handle_error_reply(gw_store_req_t *req, store_node_t *node, const redisReply *reply)
{
    gw_store_t *store = req->store;
    if (store->cluster && (starts_with(reply, "MOVED ") || starts_with(reply, "ASK "))) {
        int ask = reply->str[1] == 'S';
        unsigned slot;
        store_node_t *target = parse_redirect(store, reply->str, reply->len, node, &slot);
        if (target == NULL)
            return 0; /* deliver the error as it is */
        if (ask) {
            STAT_INC(store, ask);
        } else {
            STAT_INC(store, moved);
            map_set(store, slot, target);
            update_up(store);
            request_refresh(store); /* one MOVED usually means more slots moved */
        }
        if (++req->redirects > GW_STORE_MAX_REDIRECTS) {
            req_finish(req, NULL, GW_STORE_ERR_REDIRECTS);
            return 1;
        }
        req->asking = ask;
        const char *err = node_send(target, req);
        req->asking = 0;
        if (err != NULL)
            req_finish(req, NULL, err);
        return 1;
    }
    if (req->script != NULL && starts_with(reply, "NOSCRIPT")) {
        STAT_INC(store, noscript);
        if (rewrite_as_eval(req) != 0)
            return 0;
        req->script = NULL;
        const char *err = node_send(node, req);
        if (err != NULL)
            req_finish(req, NULL, err);
        return 1;
    }
    if (store->cluster && (starts_with(reply, "CLUSTERDOWN") || starts_with(reply, "TRYAGAIN")))
        request_refresh(store);
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    redisReply *reply = _reply;
    gw_store_req_t *req = privdata;
    store_node_t *node = req->node;

    assert(node != NULL);
    req->node = NULL;
    --node->pending;
    if (reply == NULL || ac->data != node) {
        /* the context is being freed (or was detached): the connection is gone */
        if (ac->data == node)
            node_lost(node, ac->errstr != NULL ? ac->errstr : "connection lost");
        req_finish(req, NULL, GW_STORE_ERR_DISCONNECTED);
        return;
    }
    if (req->cb == NULL) { /* timed out or cancelled: the late reply goes nowhere */
        req_release(req);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && handle_error_reply(req, node, reply))
        return;
    req_finish(req, reply, NULL);
}

/* ---- public API ---------------------------------------------------------------------------------------- */

static void init_levels(gw_store_t *store, uint64_t min_ms, uint64_t max_ms)
{
    h2o_timeout_init(store->loop, &store->levels[0], 0);
    store->num_levels = 1;
    for (uint64_t ms = min_ms;; ms *= 2) {
        if (ms >= max_ms || store->num_levels == MAX_LEVELS - 1)
            ms = max_ms;
        h2o_timeout_init(store->loop, &store->levels[store->num_levels++], ms);
        if (ms == max_ms)
            break;
    }
}

gw_store_t *gw_store_create(h2o_loop_t *loop, const gw_store_conf_t *conf, char *err, size_t errlen)
{
    gw_store_addr_t addr;
    gw_store_t *store = h2o_mem_alloc(sizeof(*store));
    memset(store, 0, sizeof(*store));
    store->loop = loop;
    h2o_linklist_init_anchor(&store->live);
    h2o_linklist_init_anchor(&store->freelist);
    store->cluster = conf->url == NULL;
    if (store->cluster && conf->num_cluster == 0) {
        snprintf(err, errlen, "neither redis.url nor redis.cluster is set");
        free(store);
        return NULL;
    }
    store->timeout_ms = conf->timeout_ms != 0 ? conf->timeout_ms : 50;
    uint64_t bmin = conf->backoff_min_ms != 0 ? conf->backoff_min_ms : 50;
    uint64_t bmax = conf->backoff_max_ms != 0 ? conf->backoff_max_ms : 1000;
    if (bmax < bmin)
        bmax = bmin;

    size_t nseeds = store->cluster ? conf->num_cluster : 1;
    for (size_t i = 0; i != nseeds; ++i) {
        const char *url = store->cluster ? conf->cluster[i] : conf->url;
        char why[200];
        if (gw_store_parse_url(url, &addr, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s", why);
            goto Error;
        }
        if (store->cluster && (addr.path[0] != '\0' || addr.db != 0)) {
            snprintf(err, errlen, "cluster seeds must be redis://host:port without a database");
            goto Error;
        }
        if (store->num_nodes == GW_STORE_MAX_NODES) {
            snprintf(err, errlen, "too many cluster seeds");
            goto Error;
        }
        if (addr.password[0] != '\0' && store->password == NULL) {
            store->password = h2o_strdup(NULL, addr.password, SIZE_MAX).base;
            if (addr.user[0] != '\0')
                store->user = h2o_strdup(NULL, addr.user, SIZE_MAX).base;
        }
        store->db = addr.db;
        store_node_t *node =
            addr.path[0] != '\0' ? node_new(store, NULL, 0, addr.path) : node_new(store, addr.host, addr.port, NULL);
        node->is_seed = 1;
    }
    explicit_bzero(&addr, sizeof(addr));

    h2o_timeout_init(loop, &store->deadline, store->timeout_ms);
    init_levels(store, bmin, bmax);
    store->refresh_timer.cb = on_refresh_timer;
    store->refresh_level = 0;
    if (store->cluster) {
        store->slot_map = h2o_mem_alloc(GW_STORE_NUM_SLOTS * sizeof(*store->slot_map));
        memset(store->slot_map, 0, GW_STORE_NUM_SLOTS * sizeof(*store->slot_map));
        store->unmapped = GW_STORE_NUM_SLOTS;
        node_connect(store->nodes[0]);
        request_refresh(store);
    } else {
        node_connect(store->nodes[0]);
    }
    return store;

Error:
    explicit_bzero(&addr, sizeof(addr));
    for (size_t i = 0; i != store->num_nodes; ++i) {
        free(store->nodes[i]->host);
        free(store->nodes[i]->path);
        free(store->nodes[i]);
    }
    if (store->password != NULL) {
        explicit_bzero(store->password, strlen(store->password));
        free(store->password);
    }
    free(store->user);
    free(store);
    return NULL;
}

void gw_store_free(gw_store_t *store)
{
    h2o_linklist_t *l, *next;
    assert(store->cb_depth == 0 && "gw_store_free() called from a store callback");
    store->closing = 1;
    /* forget every caller; requests hiredis does not hold are released now */
    for (l = store->live.next; l != &store->live; l = next) {
        next = l->next;
        gw_store_req_t *req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, link, l);
        req->cb = NULL;
        h2o_timeout_unlink(&req->timer);
    }
    for (l = store->live.next; l != &store->live; l = next) {
        next = l->next;
        gw_store_req_t *req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, link, l);
        if (req->node == NULL)
            req_release(req);
    }
    h2o_timeout_unlink(&store->refresh_timer);
    for (size_t i = 0; i != store->num_nodes; ++i) {
        store_node_t *node = store->nodes[i];
        h2o_timeout_unlink(&node->retry);
        redisAsyncContext *ac = node->ac;
        if (ac != NULL) {
            ac->data = NULL;
            node->ac = NULL;
            redisAsyncFree(ac); /* NULL replies release the remaining requests */
        }
    }
    assert(h2o_linklist_is_empty(&store->live));
    while (!h2o_linklist_is_empty(&store->freelist)) {
        gw_store_req_t *req = H2O_STRUCT_FROM_MEMBER(gw_store_req_t, link, store->freelist.next);
        h2o_linklist_unlink(&req->link);
        free(req);
    }
    for (size_t i = 0; i != store->num_nodes; ++i) {
        free(store->nodes[i]->host);
        free(store->nodes[i]->path);
        free(store->nodes[i]);
    }
    h2o_timeout_dispose(store->loop, &store->deadline);
    for (size_t i = 0; i != store->num_levels; ++i)
        h2o_timeout_dispose(store->loop, &store->levels[i]);
    if (store->password != NULL) {
        explicit_bzero(store->password, strlen(store->password));
        free(store->password);
    }
    free(store->user);
    free(store->slot_map);
    free(store);
}

static void submit(gw_store_req_t *req)
{
    gw_store_t *store = req->store;
    store_node_t *node = route(store, req->slot);
    const char *err = node != NULL ? node_send(node, req) : GW_STORE_ERR_DOWN;
    if (err != NULL) {
        request_refresh(store);
        req_fail_later(req, err);
    }
}

gw_store_req_t *gw_store_command(gw_store_t *store, gw_store_cb cb, void *data, int key_index, int argc, const char *const *argv,
                                 const size_t *argvlen)
{
    gw_store_req_t *req = req_alloc(store, cb, data);
    STAT_INC(store, commands);
    int len = argc >= 1 ? redisFormatCommandArgv(&req->cmd, argc, (const char **)argv, argvlen) : -1;
    if (len < 0) {
        req->cmd = NULL;
        req_fail_later(req, GW_STORE_ERR_INVALID);
        return req;
    }
    req->cmdlen = (size_t)len;
    if (key_index >= 0 && key_index < argc)
        req->slot = (int)gw_store_key_slot(argv[key_index], argvlen != NULL ? argvlen[key_index] : strlen(argv[key_index]));
    deadline_start(store, req);
    submit(req);
    return req;
}

void gw_store_cancel(gw_store_req_t *req)
{
    if (req == NULL || req->cb == NULL)
        return;
    req->cb = NULL;
    h2o_timeout_unlink(&req->timer);
    if (req->node == NULL)
        req_release(req); /* else released when hiredis hands it back */
}

void gw_store_preload(gw_store_t *store, const gw_store_script_t *script)
{
    for (size_t i = 0; i != store->num_scripts; ++i)
        if (store->scripts[i] == script)
            return;
    if (store->num_scripts == GW_STORE_MAX_SCRIPTS) {
        store_log("error", "too many preloaded scripts; %s relies on the EVAL fallback", script->sha1);
        return;
    }
    store->scripts[store->num_scripts++] = script;
    /* connecting nodes add it to their handshake; ready ones load it now, best effort */
    for (size_t i = 0; i != store->num_nodes; ++i) {
        store_node_t *node = store->nodes[i];
        if (node->state == NODE_CONNECTING) {
            node_load_script(node, script, on_handshake_script);
        } else if (node->state == NODE_READY) {
            node_load_script(node, script, on_script_loaded);
        }
    }
}

gw_store_req_t *gw_store_evalsha(gw_store_t *store, const gw_store_script_t *script, gw_store_cb cb, void *data, int numkeys,
                                 int nargs, const char *const *args, const size_t *argslen)
{
    const char *small_argv[19];
    size_t small_lens[19];
    const char **argv = small_argv;
    size_t *lens = small_lens;
    char nk[16];
    if (nargs < 0 || numkeys < 0 || numkeys > nargs)
        return gw_store_command(store, cb, data, GW_STORE_NO_KEY, 0, NULL, NULL); /* fails with GW_STORE_ERR_INVALID */
    if (nargs + 3 > 19) {
        argv = h2o_mem_alloc(sizeof(*argv) * (size_t)(nargs + 3));
        lens = h2o_mem_alloc(sizeof(*lens) * (size_t)(nargs + 3));
    }
    snprintf(nk, sizeof(nk), "%d", numkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = script->sha1;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = strlen(nk);
    for (int i = 0; i != nargs; ++i) {
        argv[3 + i] = args[i];
        lens[3 + i] = argslen != NULL ? argslen[i] : strlen(args[i]);
    }
    gw_store_req_t *req = gw_store_command(store, cb, data, numkeys > 0 ? 3 : GW_STORE_NO_KEY, nargs + 3, argv, lens);
    if (req->cmd != NULL)
        req->script = script;
    if (argv != small_argv) {
        free(argv);
        free(lens);
    }
    return req;
}

int gw_store_is_up(const gw_store_t *store)
{
    return __atomic_load_n(&store->up, __ATOMIC_RELAXED);
}

void gw_store_flush(gw_store_t *store)
{
    for (size_t i = 0; i != store->num_nodes; ++i) {
        store_node_t *node = store->nodes[i];
        if (node == NULL || node->ac == NULL)
            continue;
        store_sock_t *s = node->ac->ev.data;
        if (s != NULL && h2o_timeout_is_linked(&s->flush)) {
            h2o_timeout_unlink(&s->flush);
            sock_on_flush(&s->flush); /* may drop the connection (and S) */
        }
    }
}

int gw_store_is_cluster(const gw_store_t *store)
{
    return store->cluster;
}

int gw_store_is_up_for_key(const gw_store_t *store, const char *key, size_t len)
{
    if (!store->cluster)
        return store->nodes[0]->state == NODE_READY;
    uint16_t n = store->slot_map[gw_store_key_slot(key, len)];
    return n != 0 && store->nodes[n - 1]->state == NODE_READY;
}

void gw_store_get_stats(const gw_store_t *store, gw_store_stats_t *out)
{
    const uint64_t *src = (const uint64_t *)&store->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i != sizeof(*out) / sizeof(uint64_t); ++i)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
