/*
 * gateway/revocations.c — the process's deny set of revoked sessions (sid) and tokens (jti), and
 * the Redis pub/sub subscriber that feeds it (see revocations.h for the protocol).
 *
 * The set: open addressing over the first 16 bytes of SHA-256(member), each slot with its expiry;
 * rebuilt (expired entries dropped) when it fills. One read-write lock: the pipeline reads it on
 * every authenticated request (any thread), writers are the subscriber (thread 0) and the OAuth
 * endpoints of any thread (a node's own revocations count at once, before the round trip).
 * The subscriber is a hiredis async connection of its own on thread 0's h2o loop (store.c's
 * connections are request/response only); it reconnects with back-off and resyncs from the sorted
 * set through thread 0's store after each SUBSCRIBE confirmation. Logs never carry members.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"

typedef struct {
    uint8_t key[16];
    int64_t exp; /* 0: empty */
} entry_t;

static struct {
    pthread_rwlock_t lock;
    entry_t *slots;
    size_t cap, used;
    int synced;
    uint64_t version; /* bumped (under the write lock) by every insertion: 0 is never a version */
} set = {PTHREAD_RWLOCK_INITIALIZER, NULL, 0, 0, 0, 1};

static void member_key(const char *m, size_t len, uint8_t out[16])
{
    uint8_t md[32];
    unsigned mdlen = 32;
    EVP_Digest(m, len, md, &mdlen, EVP_sha256(), NULL);
    memcpy(out, md, 16);
}

static size_t slot_of(const uint8_t key[16], size_t cap)
{
    uint64_t h;
    memcpy(&h, key, 8);
    return (size_t)h & (cap - 1);
}

/* lock held for writing */
static void insert_locked(const uint8_t key[16], int64_t exp)
{
    size_t i = slot_of(key, set.cap);
    while (set.slots[i].exp != 0) {
        if (memcmp(set.slots[i].key, key, 16) == 0) {
            if (exp > set.slots[i].exp)
                set.slots[i].exp = exp;
            return;
        }
        i = (i + 1) & (set.cap - 1);
    }
    memcpy(set.slots[i].key, key, 16);
    set.slots[i].exp = exp;
    ++set.used;
}

/* lock held for writing: a table of the right size holding the unexpired entries */
static int rebuild_locked(int64_t now)
{
    size_t live = 0;
    for (size_t i = 0; i != set.cap; ++i)
        if (set.slots[i].exp > now)
            ++live;
    size_t cap = 1024;
    while (cap < (live + 1) * 4)
        cap *= 2;
    entry_t *slots = calloc(cap, sizeof(*slots)), *old = set.slots;
    if (slots == NULL)
        return -1;
    size_t oldcap = set.cap;
    set.slots = slots;
    set.cap = cap;
    set.used = 0;
    for (size_t i = 0; i != oldcap; ++i)
        if (old[i].exp > now)
            insert_locked(old[i].key, old[i].exp);
    free(old);
    return 0;
}

void gw_revocations_add(const char *member, size_t len, int64_t exp)
{
    uint8_t key[16];
    int64_t now = (int64_t)time(NULL);
    if (exp <= now || len == 0)
        return;
    member_key(member, len, key);
    pthread_rwlock_wrlock(&set.lock);
    if ((set.used + 1) * 2 > set.cap && rebuild_locked(now) != 0) {
        pthread_rwlock_unlock(&set.lock);
        return;
    }
    insert_locked(key, exp);
    __atomic_store_n(&set.version, set.version + 1, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&set.lock);
}

/* the key of PREFIX ID ("sid:" / "jti:"); 0 when there is nothing to look up */
static int id_key(const char *prefix, const char *id, uint8_t key[16])
{
    char m[300];
    size_t pl = strlen(prefix), il = id != NULL ? strlen(id) : 0;
    if (il == 0 || pl + il > sizeof(m))
        return 0;
    memcpy(m, prefix, pl);
    memcpy(m + pl, id, il);
    member_key(m, pl + il, key);
    return 1;
}

static int lookup_key_locked(const uint8_t key[16], int64_t now)
{
    for (size_t i = slot_of(key, set.cap); set.slots[i].exp != 0; i = (i + 1) & (set.cap - 1))
        if (memcmp(set.slots[i].key, key, 16) == 0)
            return set.slots[i].exp > now;
    return 0;
}

static int lookup_locked(const char *prefix, const char *id, int64_t now)
{
    uint8_t key[16];
    return id_key(prefix, id, key) && lookup_key_locked(key, now);
}

int gw_revocations_check(const char *sid, const char *jti)
{
    int64_t now = (int64_t)time(NULL);
    int r = 0;
    pthread_rwlock_rdlock(&set.lock);
    if (set.cap != 0)
        r = (sid != NULL && lookup_locked("sid:", sid, now)) || (jti != NULL && lookup_locked("jti:", jti, now));
    pthread_rwlock_unlock(&set.lock);
    return r;
}

int gw_revocations_check_memo(const char *sid, const char *jti, auth_revocation_memo_t *memo)
{
    /* nothing was added since this token was last found absent: still absent (entries only expire) */
    if (memo->version != 0 && memo->version == __atomic_load_n(&set.version, __ATOMIC_ACQUIRE))
        return 0;
    if (!memo->have_keys) { /* have_keys: 1 computed, | 2 a sid key in keys[0..16), | 4 a jti key in keys[16..32) */
        uint8_t flags = 1;
        if (id_key("sid:", sid, memo->keys))
            flags |= 2;
        if (id_key("jti:", jti, memo->keys + 16))
            flags |= 4;
        memo->have_keys = flags;
    }
    int64_t now = (int64_t)time(NULL);
    int r = 0;
    pthread_rwlock_rdlock(&set.lock);
    uint64_t version = set.version;
    if (set.cap != 0)
        r = ((memo->have_keys & 2) && lookup_key_locked(memo->keys, now)) ||
            ((memo->have_keys & 4) && lookup_key_locked(memo->keys + 16, now));
    pthread_rwlock_unlock(&set.lock);
    memo->version = r ? 0 : version;
    return r;
}

int gw_revocations_synced(void)
{
    return __atomic_load_n(&set.synced, __ATOMIC_RELAXED);
}

/* "sid:abc 1700000000" → added */
static void add_message(const char *s, size_t len)
{
    const char *sp = memchr(s, ' ', len);
    if (sp == NULL || sp == s || (size_t)(sp - s) > 200)
        return;
    int64_t exp = 0;
    for (const char *p = sp + 1; p != s + len; ++p) {
        if (*p < '0' || *p > '9' || exp > (int64_t)1 << 40)
            return;
        exp = exp * 10 + (*p - '0');
    }
    gw_revocations_add(s, (size_t)(sp - s), exp);
}

/* ---- the subscriber (thread 0's loop) -------------------------------------------------------------
 * One connection, to any node that answers: the configured seeds and, in a cluster, every node thread
 * 0's store has learnt of (Redis Cluster delivers a PUBLISH to every node, replicas included). Each
 * (re)connect tries the next address, preferring nodes the store reaches. A probe every second proves
 * the connection alive: no reply within a second, and it is dropped and replaced, so a node that
 * died or a path that black-holes is noticed, not waited on. */

#define SUB_PROBE_MS 250 /* a probe (SUBSCRIBE again) once the last one is answered, at most this often */
#define SUB_STALE_MS 500 /* a probe unanswered this long: the local set is no longer trusted to be complete */
#define SUB_DEAD_MS 1000 /* ... this long: the connection is dropped and another node tried */
#define SUB_MAX_ADDRS 64

static struct {
    gw_thread_t *thread;
    gw_store_addr_t seeds[SUB_MAX_ADDRS]; /* the configured URLs (credentials and db from each) */
    size_t num_seeds;
    size_t next;          /* rotation over seeds, then the store's nodes */
    gw_store_addr_t addr; /* the address of the current connection */
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    h2o_timeout_t timeout;      /* reconnect and resync retries (200 ms) */
    h2o_timeout_t check_period; /* liveness (SUB_PROBE_MS) */
    h2o_timeout_entry_t reconnect_timer, resync_timer, check_timer;
    unsigned generation;             /* bumped per connection: a resync answer for an old one is ignored */
    uint64_t last_reply, last_probe; /* loop clock, ms */
    int confirmed;                   /* this connection's first SUBSCRIBE was confirmed */
    int stale;                       /* a probe went unanswered too long: resync before the set counts as complete again */
    int resyncing;                   /* a resync is in flight */
    int logged_down;
    gw_revocations_state_t logged_state;
} sub;

static struct {
    uint64_t unknown, store_checks; /* counters for /metrics (atomic) */
} counts;

static void sub_connect(void);

static void sock_on_read(h2o_socket_t *sock, const char *err)
{
    redisAsyncHandleRead(sub.ac);
}

static void sock_on_write(h2o_socket_t *sock, const char *err)
{
    redisAsyncHandleWrite(sub.ac);
}

static void ev_add_read(void *p)
{
    h2o_socket_read_start(sub.sock, sock_on_read);
}

static void ev_del_read(void *p)
{
    h2o_socket_read_stop(sub.sock);
}

static void ev_add_write(void *p)
{
    if (!h2o_socket_is_writing(sub.sock))
        h2o_socket_notify_write(sub.sock, sock_on_write);
}

static void schedule_reconnect(void)
{
    if (h2o_timeout_is_linked(&sub.reconnect_timer))
        return;
    h2o_timeout_link(sub.thread->loop, &sub.timeout, &sub.reconnect_timer);
}

/* hiredis calls this once when it frees the context */
static void ev_cleanup(void *p)
{
    h2o_socket_close(sub.sock);
    sub.sock = NULL;
    sub.ac->c.fd = -1;
    sub.ac = NULL;
    __atomic_store_n(&set.synced, 0, __ATOMIC_RELAXED);
    if (!sub.logged_down) {
        gw_log("warn", "revocations: subscriber connection to %s:%u lost; reconnecting in the background", sub.addr.host,
               sub.addr.port);
        sub.logged_down = 1;
    }
    schedule_reconnect();
}

static void on_resync(void *data, const redisReply *reply, const char *err);

static void resync(void)
{
    char now[24];
    snprintf(now, sizeof(now), "(%lld", (long long)time(NULL));
    const char *argv[] = {"ZRANGEBYSCORE", GW_REVOCATIONS_KEY, now, "+inf", "WITHSCORES"};
    if (sub.thread->store == NULL)
        return;
    sub.resyncing = 1;
    gw_store_command(sub.thread->store, on_resync, (void *)(uintptr_t)sub.generation, 1, 5, argv, NULL);
}

static void on_resync_timer(h2o_timeout_entry_t *entry)
{
    if (sub.ac != NULL)
        resync();
}

static void on_resync(void *data, const redisReply *reply, const char *err)
{
    if ((unsigned)(uintptr_t)data != sub.generation || sub.ac == NULL)
        return;
    sub.resyncing = 0;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (!h2o_timeout_is_linked(&sub.resync_timer))
            h2o_timeout_link(sub.thread->loop, &sub.timeout, &sub.resync_timer);
        return;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *m = reply->element[i], *s = reply->element[i + 1];
        if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING)
            continue;
        gw_revocations_add(m->str, m->len, strtoll(s->str, NULL, 10));
    }
    sub.stale = 0;
    __atomic_store_n(&set.synced, 1, __ATOMIC_RELAXED);
    if (sub.logged_down) {
        gw_log("info", "revocations: subscribed again (%s:%u) and resynced (%zu entries)", sub.addr.host, sub.addr.port,
               reply->elements / 2);
        sub.logged_down = 0;
    }
}

/* Every reply of the channel proves the connection alive: its messages, and the confirmations of
 * SUBSCRIBE, which is sent again as the probe (in subscribed mode hiredis 0.14 hands a PING's reply
 * to nobody). The first confirmation of a connection starts the resync, and so does the first reply
 * after the connection went stale (what was published meanwhile may be lost). */
static void on_pubsub(redisAsyncContext *ac, void *_reply, void *privdata)
{
    redisReply *r = _reply;
    if (r == NULL || ac != sub.ac)
        return;
    sub.last_reply = h2o_now(sub.thread->loop);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "subscribe") == 0 && !sub.confirmed) {
        sub.confirmed = 1;
        resync();
    } else if (sub.stale && sub.confirmed && !sub.resyncing) {
        resync();
    }
    if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        add_message(r->element[2]->str, r->element[2]->len);
    }
}

static void on_connect_cb(const redisAsyncContext *ac, int status)
{
}

/* 1 when thread 0's store has a ready connection to HOST:PORT */
static int store_reaches(const char *host, uint16_t port)
{
    char h[256];
    uint16_t p;
    int ready;
    for (size_t i = 0; sub.thread->store != NULL && (ready = gw_store_node_addr(sub.thread->store, i, h, sizeof(h), &p)) >= 0; ++i)
        if (ready == 1 && p == port && strcmp(h, host) == 0)
            return 1;
    return 0;
}

/* the address of the next connection: the seeds, then the store's nodes, each in turn; an address the
 * store reaches right now is preferred over one it does not (a unix socket is taken as it is) */
static int next_addr(gw_store_addr_t *out)
{
    char host[256];
    uint16_t port;
    size_t num_nodes = 0;
    while (sub.thread->store != NULL && gw_store_node_addr(sub.thread->store, num_nodes, host, sizeof(host), &port) >= 0)
        ++num_nodes;
    size_t total = sub.num_seeds + num_nodes;
    for (int pass = 0; pass != 2; ++pass)
        for (size_t k = 0; k != total; ++k) {
            size_t i = (sub.next + k) % total;
            gw_store_addr_t a = sub.seeds[i < sub.num_seeds ? i : 0]; /* credentials and db as the seeds' */
            if (i >= sub.num_seeds) {
                gw_store_node_addr(sub.thread->store, i - sub.num_seeds, host, sizeof(host), &port);
                if (host[0] == '\0')
                    continue;
                snprintf(a.host, sizeof(a.host), "%s", host);
                a.port = port;
                a.path[0] = '\0';
            }
            if (pass == 0 && a.path[0] == '\0' && !store_reaches(a.host, a.port))
                continue;
            *out = a;
            sub.next = i + 1;
            return 0;
        }
    return -1;
}

static void sub_connect(void)
{
    if (next_addr(&sub.addr) != 0) {
        schedule_reconnect();
        return;
    }
    redisAsyncContext *ac =
        sub.addr.path[0] != '\0' ? redisAsyncConnectUnix(sub.addr.path) : redisAsyncConnect(sub.addr.host, sub.addr.port);
    if (ac == NULL || ac->err != 0) {
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect();
        return;
    }
    ++sub.generation;
    sub.ac = ac;
    sub.last_reply = sub.last_probe = h2o_now(sub.thread->loop);
    sub.confirmed = sub.stale = sub.resyncing = 0;
    sub.sock = h2o_evloop_socket_create(sub.thread->loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = NULL;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = NULL;
    redisAsyncSetConnectCallback(ac, on_connect_cb);
    if (sub.addr.password[0] != '\0') {
        if (sub.addr.user[0] != '\0')
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", sub.addr.user, sub.addr.password);
        else
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s", sub.addr.password);
    }
    /* a name that says whose subscriber this is (CLIENT LIST), no secret in it */
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME hegate-revocations-%d", (int)getpid());
    redisAsyncCommand(ac, on_pubsub, NULL, "SUBSCRIBE %s", GW_REVOCATIONS_CHANNEL);
}

static void on_reconnect_timer(h2o_timeout_entry_t *entry)
{
    if (sub.ac == NULL)
        sub_connect();
}

/* once per state change: the log says how token checks are decided now */
static void log_state(void)
{
    gw_revocations_state_t st = gw_revocations_state();
    if (st == sub.logged_state)
        return;
    switch (st) {
    case GW_REVOCATIONS_SUBSCRIBED:
        gw_log("info", "revocations: subscribed; token checks use the local set");
        break;
    case GW_REVOCATIONS_STORE:
        gw_log("warn", "revocations: subscriber down; token checks ask the store directly");
        break;
    case GW_REVOCATIONS_UNKNOWN:
        gw_log("error", "revocations: the store cannot be asked either; on_store_down %s applies to token checks",
               (const char *[]){"local", "open", "closed"}[sub.thread->gen->conf->on_store_down]);
        break;
    }
    sub.logged_state = st;
}

/* every SUB_PROBE_MS: probe the connection; a probe unanswered for SUB_STALE_MS makes token checks
 * ask the store (a revocation published meanwhile may never arrive: the path may black-hole), one
 * unanswered for SUB_DEAD_MS replaces the connection. A sign-out published into a silent cut is
 * honoured within SUB_PROBE_MS + SUB_STALE_MS (+ one store round trip): inside SPEC §6's second. */
static void on_check_timer(h2o_timeout_entry_t *entry)
{
    uint64_t now = h2o_now(sub.thread->loop);
    if (sub.ac != NULL) {
        int waiting = sub.last_reply < sub.last_probe;
        if (waiting && now - sub.last_probe >= SUB_DEAD_MS) {
            gw_log("warn", "revocations: no answer from %s:%u for %llu ms; trying another node", sub.addr.host, sub.addr.port,
                   (unsigned long long)(now - sub.last_probe));
            redisAsyncFree(sub.ac); /* ev_cleanup schedules the reconnect */
        } else if (waiting && now - sub.last_probe >= SUB_STALE_MS) {
            if (!sub.stale) {
                sub.stale = 1;
                __atomic_store_n(&set.synced, 0, __ATOMIC_RELAXED);
            }
        } else if (!waiting) {
            sub.last_probe = now;
            redisAsyncCommand(sub.ac, on_pubsub, NULL, "SUBSCRIBE %s", GW_REVOCATIONS_CHANNEL);
        }
    }
    log_state();
    h2o_timeout_link(sub.thread->loop, &sub.check_period, &sub.check_timer);
}

void gw_revocations_start(gw_thread_t *thread)
{
    const gw_conf_t *conf = thread->gen->conf;
    char err[256];
    pthread_rwlock_wrlock(&set.lock);
    if (set.cap == 0)
        rebuild_locked(0);
    pthread_rwlock_unlock(&set.lock);
    sub.thread = thread;
    if (conf->redis.url != NULL) {
        if (gw_store_parse_url(conf->redis.url, &sub.seeds[0], err, sizeof(err)) == 0)
            sub.num_seeds = 1;
    } else {
        for (size_t i = 0; i != conf->redis.cluster.n && sub.num_seeds != SUB_MAX_ADDRS; ++i)
            if (gw_store_parse_url(conf->redis.cluster.v[i], &sub.seeds[sub.num_seeds], err, sizeof(err)) == 0)
                ++sub.num_seeds;
    }
    if (sub.num_seeds == 0) {
        gw_log("error", "revocations: no usable redis address; sign-out reaches this node only");
        return;
    }
    sub.logged_state = GW_REVOCATIONS_SUBSCRIBED; /* the start is not a transition worth a line */
    h2o_timeout_init(thread->loop, &sub.timeout, 200);
    h2o_timeout_init(thread->loop, &sub.check_period, SUB_PROBE_MS);
    sub.reconnect_timer.cb = on_reconnect_timer;
    sub.resync_timer.cb = on_resync_timer;
    sub.check_timer.cb = on_check_timer;
    h2o_timeout_link(thread->loop, &sub.check_period, &sub.check_timer);
    sub_connect();
}

/* ---- the state, and what happens while the subscription is down -------------------------------------- */

gw_revocations_state_t gw_revocations_state(void)
{
    if (gw_revocations_synced())
        return GW_REVOCATIONS_SUBSCRIBED;
    return gw_server_store_up() ? GW_REVOCATIONS_STORE : GW_REVOCATIONS_UNKNOWN;
}

const char *gw_revocations_state_name(gw_revocations_state_t st)
{
    return st == GW_REVOCATIONS_SUBSCRIBED ? "subscribed" : st == GW_REVOCATIONS_STORE ? "store" : "unknown";
}

void gw_revocations_count_unknown(void)
{
    __atomic_add_fetch(&counts.unknown, 1, __ATOMIC_RELAXED);
}

void gw_revocations_count_store_check(void)
{
    __atomic_add_fetch(&counts.store_checks, 1, __ATOMIC_RELAXED);
}

void gw_revocations_counts(uint64_t *unknown, uint64_t *store_checks)
{
    *unknown = __atomic_load_n(&counts.unknown, __ATOMIC_RELAXED);
    *store_checks = __atomic_load_n(&counts.store_checks, __ATOMIC_RELAXED);
}
