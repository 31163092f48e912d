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

/* ---- the subscriber (thread 0's loop) ------------------------------------------------------------- */

static struct {
    gw_thread_t *thread;
    gw_store_addr_t addr;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    h2o_timeout_t timeout; /* reconnect and resync retries */
    h2o_timeout_entry_t reconnect_timer, resync_timer;
    uint64_t backoff_ms;
    unsigned generation; /* bumped per connection: a resync answer for an old one is ignored */
    int logged_down;
} sub;

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
        gw_log("warn", "revocations: subscriber connection lost; reconnecting in the background");
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
    __atomic_store_n(&set.synced, 1, __ATOMIC_RELAXED);
    if (sub.logged_down) {
        gw_log("info", "revocations: subscribed again and resynced (%zu entries)", reply->elements / 2);
        sub.logged_down = 0;
    }
}

static void on_pubsub(redisAsyncContext *ac, void *_reply, void *privdata)
{
    redisReply *r = _reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        sub.backoff_ms = 0;
        resync();
    } else if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        add_message(r->element[2]->str, r->element[2]->len);
    }
}

static void on_connect_cb(const redisAsyncContext *ac, int status)
{
}

static void sub_connect(void)
{
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
    redisAsyncCommand(ac, on_pubsub, NULL, "SUBSCRIBE %s", GW_REVOCATIONS_CHANNEL);
}

static void on_reconnect_timer(h2o_timeout_entry_t *entry)
{
    if (sub.ac == NULL)
        sub_connect();
}

void gw_revocations_start(gw_thread_t *thread)
{
    const gw_conf_t *conf = thread->gen->conf;
    const char *url = conf->redis.url != NULL ? conf->redis.url : conf->redis.cluster.n != 0 ? conf->redis.cluster.v[0] : NULL;
    char err[256];
    pthread_rwlock_wrlock(&set.lock);
    if (set.cap == 0)
        rebuild_locked(0);
    pthread_rwlock_unlock(&set.lock);
    if (url == NULL || gw_store_parse_url(url, &sub.addr, err, sizeof(err)) != 0) {
        gw_log("error", "revocations: no usable redis address; sign-out reaches this node only");
        return;
    }
    sub.thread = thread;
    h2o_timeout_init(thread->loop, &sub.timeout, 200);
    sub.reconnect_timer.cb = on_reconnect_timer;
    sub.resync_timer.cb = on_resync_timer;
    sub_connect();
}
