/*
 * gateway/store_cluster.c — Redis Cluster routing for the store: CRC16 key slots, the slot map read with
 * CLUSTER SLOTS (refreshed on start, on MOVED, on CLUSTERDOWN and when a node fails, with back-off),
 * MOVED and ASK replies (gw_store_parse_redirect(), also used by `hegate user add`), and failover.
 *
 * Called by store.c (route a command, follow a redirection, refresh) and store_node.c (a node lost or
 * up), on the store's loop thread; the pure functions from anywhere. It must never send a command past
 * its deadline or follow more than GW_STORE_MAX_REDIRECTS redirections, and never logs keys.
 */
#include <stdlib.h>
#include <string.h>
#include <hiredis/async.h>
#include "h2o/memory.h"
#include "h2o/timeout.h"
#include "gateway/store.h"
#include "gateway/store_internal.h"

/* ---- pure helpers ------------------------------------------------------------------------------------ */

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

int gw_store_parse_redirect(const char *s, size_t len, gw_store_redirect_t *out)
{
    const char *end = s + len, *p;
    unsigned long v;
    if (len >= 6 && memcmp(s, "MOVED ", 6) == 0)
        p = s + 6;
    else if (len >= 4 && memcmp(s, "ASK ", 4) == 0)
        p = s + 4;
    else
        return -1;
    const char *q = memchr(p, ' ', (size_t)(end - p));
    if (q == NULL || gw_store_parse_uint(p, (size_t)(q - p), GW_STORE_NUM_SLOTS - 1, &v) != 0)
        return -1;
    out->slot = (unsigned)v;
    const char *addr = q + 1, *colon = NULL;
    for (const char *c = addr; c != end; ++c)
        if (*c == ':')
            colon = c;
    if (colon == NULL || gw_store_parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &v) != 0 || v == 0)
        return -1;
    if ((size_t)(colon - addr) >= sizeof(((gw_store_addr_t *)0)->host))
        return -1;
    out->host = addr;
    out->host_len = (size_t)(colon - addr);
    out->port = (uint16_t)v;
    out->ask = s[0] == 'A';
    return 0;
}

/* ---- routing (cluster) ------------------------------------------------------------------------------- */

gw_store_node_t *gw_store_node_new(gw_store_t *store, const char *host, uint16_t port, const char *path)
{
    size_t index = store->num_nodes;
    if (index == GW_STORE_MAX_NODES) {
        /* reuse the place of a node nobody refers to (cluster nodes come and go with failovers) */
        for (index = 0; index != store->num_nodes; ++index) {
            gw_store_node_t *n = store->nodes[index];
            if (n->slots == 0 && !n->is_seed && n->state == GW_STORE_NODE_IDLE && n->pending == 0 && n != store->refresh_node)
                break;
        }
        if (index == store->num_nodes)
            return NULL;
        gw_store_node_t *old = store->nodes[index];
        h2o_timeout_unlink(&old->retry);
        free(old->host);
        free(old->path);
        free(old);
    } else {
        ++store->num_nodes;
    }
    gw_store_node_t *node = h2o_mem_alloc(sizeof(*node));
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
    node->state = GW_STORE_NODE_IDLE;
    node->fail_level = 1;
    store->nodes[index] = node;
    return node;
}

static gw_store_node_t *node_get(gw_store_t *store, const char *host, size_t hostlen, uint16_t port)
{
    char h[256];
    if (gw_store_copy_str(h, sizeof(h), host, hostlen) != 0)
        return NULL;
    for (size_t i = 0; i != store->num_nodes; ++i) {
        gw_store_node_t *n = store->nodes[i];
        if (n->host != NULL && n->port == port && strcmp(n->host, h) == 0)
            return n;
    }
    return gw_store_node_new(store, h, port, NULL);
}

int gw_store_node_wanted(gw_store_node_t *node)
{
    gw_store_t *store = node->store;
    if (!store->cluster)
        return 1;
    return node->slots != 0 || (store->unmapped == GW_STORE_NUM_SLOTS && node->is_seed);
}

static void map_set(gw_store_t *store, unsigned slot, gw_store_node_t *node)
{
    uint16_t old = store->slot_map[slot];
    if (old != 0)
        --store->nodes[old - 1]->slots;
    else
        --store->unmapped;
    store->slot_map[slot] = (uint16_t)(node->index + 1);
    ++node->slots;
}

gw_store_node_t *gw_store_pick_any(gw_store_t *store)
{
    gw_store_node_t *connecting = NULL, *idle = NULL;
    size_t n = store->num_nodes;
    for (size_t k = 0; k != n; ++k) {
        gw_store_node_t *node = store->nodes[(store->rr + k) % n];
        if (node->state == GW_STORE_NODE_READY) {
            store->rr = (store->rr + k + 1) % n;
            return node;
        }
        if (node->state == GW_STORE_NODE_CONNECTING && connecting == NULL)
            connecting = node;
        if (node->state == GW_STORE_NODE_IDLE &&
            (idle == NULL || (node->is_seed && !idle->is_seed) || (node->slots && !idle->slots)))
            idle = node;
    }
    return connecting != NULL ? connecting : idle;
}

void gw_store_update_up(gw_store_t *store)
{
    int up;
    if (!store->cluster) {
        up = store->nodes[0]->state == GW_STORE_NODE_READY;
    } else {
        up = store->unmapped == 0;
        for (size_t i = 0; up && i != store->num_nodes; ++i)
            if (store->nodes[i]->slots != 0 && store->nodes[i]->state != GW_STORE_NODE_READY)
                up = 0;
    }
    __atomic_store_n(&store->up, up, __ATOMIC_RELAXED);
}

/* closes an idle connection nobody needs (a master that became a replica, a seed) */
static void node_close(gw_store_node_t *node)
{
    redisAsyncContext *ac = node->ac;
    if (ac == NULL)
        return;
    ac->data = NULL;
    node->ac = NULL;
    node->state = GW_STORE_NODE_IDLE;
    redisAsyncFree(ac);
}

static int install_map(gw_store_t *store, const redisReply *reply, gw_store_node_t *asked)
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
        gw_store_node_t *node = node_get(store, host, hostlen, (uint16_t)port->integer);
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
        gw_store_node_t *node = store->nodes[i];
        if (node->slots != 0 && node->state == GW_STORE_NODE_IDLE)
            gw_store_node_connect(node); /* one connection per master, opened eagerly */
        else if (node->slots == 0 && node->state == GW_STORE_NODE_READY && node->pending == 0)
            node_close(node);
    }
    gw_store_update_up(store);
    return 0;
Fail:
    free(map);
    return -1;
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
    gw_store_node_t *asked = store->refresh_node;
    store->refresh_inflight = 0;
    store->refresh_node = NULL;
    if (err != NULL || install_map(store, reply, asked) != 0) {
        if (err == NULL)
            gw_store_log("warn", "unusable CLUSTER SLOTS reply from %s", asked != NULL ? asked->label : "?");
        refresh_failed(store);
        return;
    }
    store->refresh_level = 1; /* at most one refresh per back-off minimum */
    if (store->refresh_again) {
        store->refresh_again = 0;
        refresh_schedule(store);
    }
}

void gw_store_on_refresh_timer(h2o_timeout_entry_t *entry)
{
    gw_store_t *store = H2O_STRUCT_FROM_MEMBER(gw_store_t, refresh_timer, entry);
    store->refresh_again = 0;
    gw_store_node_t *node = gw_store_pick_any(store);
    if (node == NULL) {
        refresh_failed(store);
        return;
    }
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    gw_store_req_t *req = gw_store_req_internal(store, on_slots, store, 2, argv, NULL);
    store->refresh_inflight = 1;
    store->refresh_node = node;
    GW_STORE_STAT_INC(store, refreshes);
    const char *err = gw_store_node_send(node, req);
    if (err != NULL)
        gw_store_req_finish(req, NULL, err); /* -> on_slots -> refresh_failed */
}

void gw_store_request_refresh(gw_store_t *store)
{
    if (!store->cluster || store->closing)
        return;
    if (store->refresh_inflight || h2o_timeout_is_linked(&store->refresh_timer)) {
        store->refresh_again = 1;
        return;
    }
    refresh_schedule(store);
}

/* ---- redirections ------------------------------------------------------------------------------------ */

int gw_store_follow_redirect(gw_store_req_t *req, gw_store_node_t *node, const gw_store_redirect_t *redirect)
{
    gw_store_t *store = req->store;
    gw_store_node_t *target;
    if (redirect->host_len == 0) { /* empty host: same host as the node that answered */
        if (node->host == NULL)
            return 0;
        target = node_get(store, node->host, strlen(node->host), redirect->port);
    } else {
        target = node_get(store, redirect->host, redirect->host_len, redirect->port);
    }
    if (target == NULL)
        return 0; /* deliver the error as it is */
    if (redirect->ask) {
        GW_STORE_STAT_INC(store, ask);
    } else {
        GW_STORE_STAT_INC(store, moved);
        map_set(store, redirect->slot, target);
        gw_store_update_up(store);
        gw_store_request_refresh(store); /* one MOVED usually means more slots moved */
    }
    if (++req->redirects > GW_STORE_MAX_REDIRECTS) {
        gw_store_req_finish(req, NULL, GW_STORE_ERR_REDIRECTS);
        return 1;
    }
    req->asking = redirect->ask;
    const char *err = gw_store_node_send(target, req);
    req->asking = 0;
    if (err != NULL)
        gw_store_req_finish(req, NULL, err);
    return 1;
}

/* ---- public API ---------------------------------------------------------------------------------------- */

int gw_store_is_up_for_key(const gw_store_t *store, const char *key, size_t len)
{
    if (!store->cluster)
        return store->nodes[0]->state == GW_STORE_NODE_READY;
    uint16_t n = store->slot_map[gw_store_key_slot(key, len)];
    return n != 0 && store->nodes[n - 1]->state == GW_STORE_NODE_READY;
}
