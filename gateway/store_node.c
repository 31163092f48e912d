/*
 * gateway/store_node.c — the connections of a store: hiredis 0.14 async contexts driven by the h2o 2.2.5
 * evloop (the socket adapter), and one node per Redis server with its handshake and reconnect back-off.
 *
 * Called by store.c (connect, send, lost on a deadline) and store_cluster.c (the nodes the slot map
 * names), on the store's loop thread only. It must never block the loop (except hiredis' own getaddrinfo
 * for host names: use IP addresses in production), deliver a reply to a detached connection's callers,
 * or log a password.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/async.h>
#include "h2o/memory.h"
#include "h2o/timeout.h"
#include "gateway/store.h"
#include "gateway/store_internal.h"

/* the glue between one hiredis context and its h2o socket */
typedef struct {
    h2o_socket_t *sock;
    redisAsyncContext *ac;
    gw_store_t *store;
    h2o_timeout_entry_t flush; /* on store->levels[0]: the buffered commands go out at the end of this loop iteration */
} store_sock_t;

/* the socket whose buffered commands are being written from sock_on_flush (this thread) */
static __thread store_sock_t *flushing;

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
    gw_store_node_t *node = s->ac->data;
    if (h2o_timeout_is_linked(&s->flush))
        h2o_timeout_unlink(&s->flush);
    if (node != NULL)
        gw_store_node_lost(node, s->ac->errstr != NULL ? s->ac->errstr : "connection closed");
    h2o_socket_close(s->sock);
    s->ac->c.fd = -1; /* h2o closed it */
    free(s);
}

static void on_connect_cb(const redisAsyncContext *ac, int status)
{
    /* nothing: the handshake replies decide readiness, ev_cleanup handles failure */
}

/* ---- nodes: connect, handshake, back-off ------------------------------------------------------------- */

static void on_retry(h2o_timeout_entry_t *entry)
{
    gw_store_node_t *node = H2O_STRUCT_FROM_MEMBER(gw_store_node_t, retry, entry);
    node->state = GW_STORE_NODE_IDLE;
    if (gw_store_node_wanted(node))
        gw_store_node_connect(node);
    gw_store_update_up(node->store);
}

static void node_backoff(gw_store_node_t *node)
{
    gw_store_t *store = node->store;
    node->state = GW_STORE_NODE_BACKOFF;
    node->retry.cb = on_retry;
    h2o_timeout_unlink(&node->retry);
    h2o_timeout_link(store->loop, &store->levels[node->fail_level], &node->retry);
    if (node->fail_level + 1 < store->num_levels)
        ++node->fail_level;
}

void gw_store_node_lost(gw_store_node_t *node, const char *why)
{
    gw_store_t *store = node->store;
    redisAsyncContext *ac = node->ac;
    if (ac == NULL)
        return;
    ac->data = NULL;
    node->ac = NULL;
    if (store->closing) {
        node->state = GW_STORE_NODE_IDLE;
        return;
    }
    if (node->state == GW_STORE_NODE_READY)
        GW_STORE_STAT_INC(store, disconnects);
    if (!node->logged_down) {
        gw_store_log("warn", "%s: %s; reconnecting in the background", node->label, why);
        node->logged_down = 1;
    }
    node_backoff(node);
    gw_store_update_up(store);
    gw_store_request_refresh(store);
}

static void handshake_step(gw_store_node_t *node)
{
    if (--node->handshake_left != 0)
        return;
    gw_store_t *store = node->store;
    node->state = GW_STORE_NODE_READY;
    node->fail_level = 1;
    GW_STORE_STAT_INC(store, connects);
    if (node->logged_down) {
        gw_store_log("info", "%s: connected", node->label);
        node->logged_down = 0;
    }
    gw_store_update_up(store);
}

/* AUTH, SELECT, PING: an error reply means this connection is unusable */
static void on_handshake(void *data, const redisReply *reply, const char *err)
{
    gw_store_node_t *node = data;
    if (err != NULL)
        return; /* the connection is already gone; gw_store_node_lost did the rest */
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[128];
        snprintf(msg, sizeof(msg), "handshake refused (%.*s)", (int)(reply->len < 80 ? reply->len : 80), reply->str);
        redisAsyncContext *ac = node->ac;
        gw_store_node_lost(node, msg);
        if (ac != NULL)
            redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    handshake_step(node);
}

/* SCRIPT LOAD: failure is logged; EVALSHA falls back to EVAL anyway */
static void on_handshake_script(void *data, const redisReply *reply, const char *err)
{
    gw_store_node_t *node = data;
    if (err != NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR)
        gw_store_log("warn", "%s: SCRIPT LOAD failed (%.*s)", node->label, (int)(reply->len < 80 ? reply->len : 80), reply->str);
    handshake_step(node);
}

/* SCRIPT LOAD on a connection that is already READY (gw_store_preload after connect) */
static void on_script_loaded(void *data, const redisReply *reply, const char *err)
{
    gw_store_node_t *node = data;
    if (err == NULL && reply->type == REDIS_REPLY_ERROR)
        gw_store_log("warn", "%s: SCRIPT LOAD failed (%.*s)", node->label, (int)(reply->len < 80 ? reply->len : 80), reply->str);
}

static void handshake_send(gw_store_node_t *node, gw_store_cb cb, int argc, const char **argv, const size_t *lens)
{
    gw_store_req_t *req = gw_store_req_internal(node->store, cb, node, argc, argv, lens);
    if (cb != on_script_loaded)
        ++node->handshake_left;
    const char *err = gw_store_node_send(node, req);
    if (err != NULL) /* cannot happen on a live context; keep the exactly-once rule anyway */
        gw_store_req_fail_later(req, err);
}

static void node_load_script(gw_store_node_t *node, const gw_store_script_t *script, gw_store_cb cb)
{
    const char *argv[] = {"SCRIPT", "LOAD", script->body};
    size_t lens[] = {6, 4, script->len};
    handshake_send(node, cb, 3, argv, lens);
}

int gw_store_node_connect(gw_store_node_t *node)
{
    gw_store_t *store = node->store;
    assert(node->ac == NULL);
    redisAsyncContext *ac = node->path != NULL ? redisAsyncConnectUnix(node->path) : redisAsyncConnect(node->host, node->port);
    if (ac == NULL || ac->err != 0) {
        if (!node->logged_down) {
            gw_store_log("warn", "%s: cannot connect (%s); retrying in the background", node->label,
                         ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
            node->logged_down = 1;
        }
        if (ac != NULL)
            redisAsyncFree(ac);
        node_backoff(node);
        gw_store_update_up(store);
        gw_store_request_refresh(store);
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
    node->state = GW_STORE_NODE_CONNECTING;
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
    gw_store_update_up(store);
    return 0;
}

const char *gw_store_node_send(gw_store_node_t *node, gw_store_req_t *req)
{
    if (node->state == GW_STORE_NODE_BACKOFF)
        return GW_STORE_ERR_DOWN;
    if (node->state == GW_STORE_NODE_IDLE && gw_store_node_connect(node) != 0)
        return GW_STORE_ERR_DOWN;
    if (req->asking && redisAsyncCommand(node->ac, NULL, NULL, "ASKING") != REDIS_OK)
        return GW_STORE_ERR_DISCONNECTED;
    if (redisAsyncFormattedCommand(node->ac, gw_store_on_reply, req, req->cmd, req->cmdlen) != REDIS_OK)
        return GW_STORE_ERR_DISCONNECTED;
    req->node = node;
    ++node->pending;
    return NULL;
}

/* ---- public API -------------------------------------------------------------------------------------- */

void gw_store_preload(gw_store_t *store, const gw_store_script_t *script)
{
    for (size_t i = 0; i != store->num_scripts; ++i)
        if (store->scripts[i] == script)
            return;
    if (store->num_scripts == GW_STORE_MAX_SCRIPTS) {
        gw_store_log("error", "too many preloaded scripts; %s relies on the EVAL fallback", script->sha1);
        return;
    }
    store->scripts[store->num_scripts++] = script;
    /* connecting nodes add it to their handshake; ready ones load it now, best effort */
    for (size_t i = 0; i != store->num_nodes; ++i) {
        gw_store_node_t *node = store->nodes[i];
        if (node->state == GW_STORE_NODE_CONNECTING) {
            node_load_script(node, script, on_handshake_script);
        } else if (node->state == GW_STORE_NODE_READY) {
            node_load_script(node, script, on_script_loaded);
        }
    }
}

void gw_store_flush(gw_store_t *store)
{
    for (size_t i = 0; i != store->num_nodes; ++i) {
        gw_store_node_t *node = store->nodes[i];
        if (node == NULL || node->ac == NULL)
            continue;
        store_sock_t *s = node->ac->ev.data;
        if (s != NULL && h2o_timeout_is_linked(&s->flush)) {
            h2o_timeout_unlink(&s->flush);
            sock_on_flush(&s->flush); /* may drop the connection (and S) */
        }
    }
}
