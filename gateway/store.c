/*
 * gateway/store.c — the Redis client of one event-loop thread: requests with deadlines, replies, scripts
 * (EVALSHA with the NOSCRIPT fallback) and the public API of gateway/store.h.
 *
 * Called by the rate limiter (and later sessions, tokens, replay sets) on the thread that owns the
 * store. Layers, bottom up: the socket adapter and the nodes (one connection each, handshake, back-off:
 * store_node.c), requests (deadline, callback exactly once, cancel: here), routing (cluster map, MOVED,
 * ASK: store_cluster.c).
 *
 * It must never: call a callback from inside gw_store_command(); call a callback twice or after
 * cancel; let a caller wait past its deadline; block the loop; log keys, values or passwords.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <openssl/evp.h>
#include <hiredis/async.h>
#include "h2o/linklist.h"
#include "h2o/memory.h"
#include "h2o/timeout.h"
#include "gateway/store.h"
#include "gateway/store_internal.h"

const char GW_STORE_ERR_TIMEOUT[] = "timeout";
const char GW_STORE_ERR_DOWN[] = "store down";
const char GW_STORE_ERR_DISCONNECTED[] = "disconnected";
const char GW_STORE_ERR_REDIRECTS[] = "too many redirections";
const char GW_STORE_ERR_INVALID[] = "invalid command";

#define FREELIST_MAX 1024 /* recycled request structs kept per store */

static void on_deadline(h2o_timeout_entry_t *entry);

/* The project's logger lives in server.c. Declared weak so that this file links without it (unit
 * tests link only what they use); then lines go to stderr in the same shape. */
extern void gw_log(const char *level, const char *fmt, ...) __attribute__((weak, format(printf, 2, 3)));

void gw_store_log(const char *level, const char *fmt, ...)
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

/* ---- URLs and scripts -------------------------------------------------------------------------------- */

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
        if (gw_store_copy_str(out->path, sizeof(out->path), p, plen) != 0)
            FAIL("unix socket path too long");
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 || gw_store_parse_uint(q + 4, strlen(q + 4), 1000000, &v) != 0)
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
            if (gw_store_copy_str(out->user, sizeof(out->user), p, (size_t)(colon - p)) != 0 ||
                gw_store_copy_str(out->password, sizeof(out->password), colon + 1, (size_t)(at - colon - 1)) != 0)
                FAIL("Redis URL credentials too long");
        } else if (gw_store_copy_str(out->password, sizeof(out->password), p, (size_t)(at - p)) != 0) {
            FAIL("Redis URL credentials too long");
        }
        p = at + 1;
    }
    const char *hend, *portp = NULL;
    if (p != end && *p == '[') { /* [IPv6] */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            FAIL("Redis URL: unterminated [IPv6] host");
        if (gw_store_copy_str(out->host, sizeof(out->host), p + 1, (size_t)(rb - p - 1)) != 0)
            FAIL("Redis URL: host too long");
        hend = rb + 1;
        if (hend != end && *hend == ':')
            portp = hend + 1;
        else if (hend != end)
            FAIL("Redis URL: junk after [IPv6] host");
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon != NULL ? colon : end;
        if (gw_store_copy_str(out->host, sizeof(out->host), p, (size_t)(hend - p)) != 0)
            FAIL("Redis URL: host too long");
        if (colon != NULL)
            portp = colon + 1;
    }
    if (out->host[0] == '\0')
        FAIL("Redis URL: no host");
    if (portp != NULL) {
        if (gw_store_parse_uint(portp, (size_t)(end - portp), 65535, &v) != 0 || v == 0)
            FAIL("Redis URL: bad port");
        out->port = (uint16_t)v;
    }
    if (*end == '/') {
        const char *d = end + 1;
        size_t dlen = strcspn(d, "?#");
        if (dlen != 0) {
            if (gw_store_parse_uint(d, dlen, 1000000, &v) != 0)
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

void gw_store_req_finish(gw_store_req_t *req, const redisReply *reply, const char *err)
{
    gw_store_t *store = req->store;
    gw_store_cb cb = req->cb;
    h2o_timeout_unlink(&req->timer);
    req->cb = NULL;
    if (cb != NULL) {
        if (!req->internal) {
            if (err != NULL)
                GW_STORE_STAT_INC(store, errors);
            else if (reply->type == REDIS_REPLY_ERROR)
                GW_STORE_STAT_INC(store, error_replies);
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
    gw_store_req_finish(req, NULL, req->deferred_err);
}

void gw_store_req_fail_later(gw_store_req_t *req, const char *err)
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
    gw_store_node_t *node = req->node;
    redisAsyncContext *ac = NULL;

    GW_STORE_STAT_INC(store, timeouts);
    /* A connection that leaves a command unanswered for timeout_ms is not trusted: detach it first (so
     * that commands issued from the callback below fail fast), answer, then free it, which fails the
     * other commands in flight on it and guarantees no late reply is ever delivered. */
    if (node != NULL && node->ac != NULL) {
        ac = node->ac;
        gw_store_node_lost(node, "command timeout");
    }
    gw_store_req_finish(req, NULL, GW_STORE_ERR_TIMEOUT);
    if (ac != NULL)
        redisAsyncFree(ac);
}

gw_store_req_t *gw_store_req_internal(gw_store_t *store, gw_store_cb cb, void *data, int argc, const char **argv,
                                      const size_t *lens)
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

/* ---- replies ------------------------------------------------------------------------------------------- */

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
static int handle_error_reply(gw_store_req_t *req, gw_store_node_t *node, const redisReply *reply)
{
    gw_store_t *store = req->store;
    gw_store_redirect_t redirect;
    if (store->cluster && gw_store_parse_redirect(reply->str, reply->len, &redirect) == 0)
        return gw_store_follow_redirect(req, node, &redirect);
    if (req->script != NULL && starts_with(reply, "NOSCRIPT")) {
        GW_STORE_STAT_INC(store, noscript);
        if (rewrite_as_eval(req) != 0)
            return 0;
        req->script = NULL;
        const char *err = gw_store_node_send(node, req);
        if (err != NULL)
            gw_store_req_finish(req, NULL, err);
        return 1;
    }
    if (store->cluster && (starts_with(reply, "CLUSTERDOWN") || starts_with(reply, "TRYAGAIN")))
        gw_store_request_refresh(store);
    return 0;
}

void gw_store_on_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    redisReply *reply = _reply;
    gw_store_req_t *req = privdata;
    gw_store_node_t *node = req->node;

    assert(node != NULL);
    req->node = NULL;
    --node->pending;
    if (reply == NULL || ac->data != node) {
        /* the context is being freed (or was detached): the connection is gone */
        if (ac->data == node)
            gw_store_node_lost(node, ac->errstr != NULL ? ac->errstr : "connection lost");
        gw_store_req_finish(req, NULL, GW_STORE_ERR_DISCONNECTED);
        return;
    }
    if (req->cb == NULL) { /* timed out or cancelled: the late reply goes nowhere */
        req_release(req);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && handle_error_reply(req, node, reply))
        return;
    gw_store_req_finish(req, reply, NULL);
}

/* ---- public API ---------------------------------------------------------------------------------------- */

static void init_levels(gw_store_t *store, uint64_t min_ms, uint64_t max_ms)
{
    h2o_timeout_init(store->loop, &store->levels[0], 0);
    store->num_levels = 1;
    for (uint64_t ms = min_ms;; ms *= 2) {
        if (ms >= max_ms || store->num_levels == GW_STORE_MAX_LEVELS - 1)
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
        gw_store_node_t *node = addr.path[0] != '\0' ? gw_store_node_new(store, NULL, 0, addr.path)
                                                     : gw_store_node_new(store, addr.host, addr.port, NULL);
        node->is_seed = 1;
    }
    explicit_bzero(&addr, sizeof(addr));

    h2o_timeout_init(loop, &store->deadline, store->timeout_ms);
    init_levels(store, bmin, bmax);
    store->refresh_timer.cb = gw_store_on_refresh_timer;
    store->refresh_level = 0;
    if (store->cluster) {
        store->slot_map = h2o_mem_alloc(GW_STORE_NUM_SLOTS * sizeof(*store->slot_map));
        memset(store->slot_map, 0, GW_STORE_NUM_SLOTS * sizeof(*store->slot_map));
        store->unmapped = GW_STORE_NUM_SLOTS;
        gw_store_node_connect(store->nodes[0]);
        gw_store_request_refresh(store);
    } else {
        gw_store_node_connect(store->nodes[0]);
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
        gw_store_node_t *node = store->nodes[i];
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
    gw_store_node_t *node = gw_store_route(store, req->slot);
    const char *err = node != NULL ? gw_store_node_send(node, req) : GW_STORE_ERR_DOWN;
    if (err != NULL) {
        gw_store_request_refresh(store);
        gw_store_req_fail_later(req, err);
    }
}

gw_store_req_t *gw_store_command(gw_store_t *store, gw_store_cb cb, void *data, int key_index, int argc, const char *const *argv,
                                 const size_t *argvlen)
{
    gw_store_req_t *req = req_alloc(store, cb, data);
    GW_STORE_STAT_INC(store, commands);
    int len = argc >= 1 ? redisFormatCommandArgv(&req->cmd, argc, (const char **)argv, argvlen) : -1;
    if (len < 0) {
        req->cmd = NULL;
        gw_store_req_fail_later(req, GW_STORE_ERR_INVALID);
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

int gw_store_is_cluster(const gw_store_t *store)
{
    return store->cluster;
}

int gw_store_node_addr(const gw_store_t *store, size_t i, char *host, size_t hostsz, uint16_t *port)
{
    if (i >= store->num_nodes)
        return -1;
    const gw_store_node_t *node = store->nodes[i];
    if (node->host == NULL) { /* a unix socket: not an address another connection can take */
        host[0] = '\0';
        *port = 0;
        return 0;
    }
    snprintf(host, hostsz, "%s", node->host);
    *port = node->port;
    return node->state == GW_STORE_NODE_READY;
}

void gw_store_get_stats(const gw_store_t *store, gw_store_stats_t *out)
{
    const uint64_t *src = (const uint64_t *)&store->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i != sizeof(*out) / sizeof(uint64_t); ++i)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
