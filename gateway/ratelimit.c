/*
 * gateway/ratelimit.c — the rate limiter of one event-loop thread (SPEC §5): the per-thread deny cache
 * and local fallback, the batches of checks sent to Redis as one script call, and the verdicts.
 *
 * Called by the request pipeline (the "rate limit" stage) on the thread that owns the context; the
 * arithmetic, the Lua script, keys and headers are in gcra.c.
 *
 * It must never: let a request wait on a store known to be down; admit more than a policy allows
 * while the store answers (the deny cache only answers what Redis would answer); write a key,
 * user id or address to a log; allocate without bound (both caches are fixed-size).
 */
#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "h2o/linklist.h"
#include "h2o/timeout.h"
#include "gateway/ratelimit.h"
#include "gateway/ratelimit_internal.h"

#define DENY_SETS 256   /* x 4 ways: keys known over a limit, per thread */
#define LOCAL_SETS 1024 /* x 4 ways: local GCRA states while the store is down, per thread */
#define WAYS 4
#define CHECK_FREELIST_MAX 2048 /* checks kept for reuse per thread: at least the usual number in flight */
#define STORE_KEY_MAX 640

#define STAT_INC(ctx, field)                                                                                                       \
    __atomic_store_n(&(ctx)->stats.field, __atomic_load_n(&(ctx)->stats.field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)

/* ---- per-thread tables: fixed-size, 4-way set associative -------------------------------------------- */

typedef struct {
    uint64_t h;    /* 0: empty */
    int64_t until; /* the entry means nothing at or after this instant (ms) */
    int64_t a;
    uint64_t b;
} rl_entry_t;

typedef struct {
    rl_entry_t *e;
    size_t mask; /* sets - 1 */
} rl_table_t;

static rl_entry_t *table_find(rl_table_t *t, uint64_t h, int64_t now)
{
    rl_entry_t *set = t->e + (h & t->mask) * WAYS;
    for (size_t i = 0; i != WAYS; ++i)
        if (set[i].h == h)
            return set[i].until > now ? &set[i] : NULL;
    return NULL;
}

/* the entry of H, or a fresh one (zeroed) replacing an empty, expired or the soonest-expiring one */
static rl_entry_t *table_claim(rl_table_t *t, uint64_t h, int64_t now)
{
    rl_entry_t *set = t->e + (h & t->mask) * WAYS, *victim = NULL;
    for (size_t i = 0; i != WAYS; ++i)
        if (set[i].h == h)
            return &set[i];
    for (size_t i = 0; i != WAYS; ++i) {
        if (set[i].h == 0 || set[i].until <= now) {
            victim = &set[i];
            break;
        }
        if (victim == NULL || set[i].until < victim->until)
            victim = &set[i];
    }
    *victim = (rl_entry_t){h, now, 0, 0};
    return victim;
}

/* SipHash-1-3 (as Python's and Rust's hash tables use): the tables are indexed by attacker-chosen
 * strings (addresses, ids), under a random key per process */
static uint64_t sip_key[2];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_init(void)
{
    if (getrandom(sip_key, sizeof(sip_key), 0) != (ssize_t)sizeof(sip_key)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sip_key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        sip_key[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4full ^ (uint64_t)(uintptr_t)&ts;
    }
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                                   \
    do {                                                                                                                           \
        v0 += v1;                                                                                                                  \
        v1 = ROTL(v1, 13);                                                                                                         \
        v1 ^= v0;                                                                                                                  \
        v0 = ROTL(v0, 32);                                                                                                         \
        v2 += v3;                                                                                                                  \
        v3 = ROTL(v3, 16);                                                                                                         \
        v3 ^= v2;                                                                                                                  \
        v0 += v3;                                                                                                                  \
        v3 = ROTL(v3, 21);                                                                                                         \
        v3 ^= v0;                                                                                                                  \
        v2 += v1;                                                                                                                  \
        v1 = ROTL(v1, 17);                                                                                                         \
        v1 ^= v2;                                                                                                                  \
        v2 = ROTL(v2, 32);                                                                                                         \
    } while (0)

static uint64_t siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i;
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8); /* little-endian hosts; the value only indexes our own tables */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; ++j)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t policy_key_hash(const gw_ratelimit_conf_t *policy, const char *key, size_t len)
{
    uint64_t h1 = siphash(sip_key[0], sip_key[1], policy->name, strlen(policy->name));
    uint64_t h = siphash(sip_key[0] ^ h1, sip_key[1], key, len);
    return h != 0 ? h : 1;
}

/* ---- runtime ------------------------------------------------------------------------------------------ */

static gw_store_script_t script; /* immutable once initialised; stores keep pointers to it */
static pthread_once_t script_once = PTHREAD_ONCE_INIT;

static void script_init(void)
{
    gw_store_script_init(&script, gw_ratelimit_lua);
}

/* The policies of one request whose keys share a slot: one entry in a batch (one script call). */
typedef struct st_rl_batch_t rl_batch_t;
typedef struct {
    gw_ratelimit_check_t *check;
    rl_batch_t *batch; /* NULL when not (or no longer) waiting for one */
    uint16_t pos;      /* in batch->ent */
    uint8_t n;
    uint8_t idx[GW_RATELIMIT_MAX_POLICIES];  /* into check->v.results and check->h */
    uint8_t kidx[GW_RATELIMIT_MAX_POLICIES]; /* into batch->keys */
} rl_sub_t;

struct st_gw_ratelimit_check_t {
    gw_ratelimit_ctx_t *ctx;
    h2o_linklist_t link; /* ctx->inflight or ctx->freelist */
    gw_ratelimit_verdict_t *out;
    gw_ratelimit_cb cb;
    void *data;
    size_t pending;
    gw_ratelimit_verdict_t v;
    uint64_t h[GW_RATELIMIT_MAX_POLICIES];
    rl_sub_t subs[GW_RATELIMIT_MAX_POLICIES];
};

/* The requests one thread checks within a loop iteration (per slot in a cluster) go to Redis as ONE
 * script call at the end of the iteration (or as soon as the batch is full): Redis runs them one after
 * the other, each all or nothing, exactly as separate calls would, for a fraction of the cost. */
#define BATCH_REQS 64
#define BATCH_KEYS 128
#define BATCH_TEXT 16384
#define BATCH_OPEN 16      /* batches collecting at once (a cluster: one per slot) */
#define BATCH_SPARE_MAX 16 /* released batches kept for reuse */
#define BATCH_ARGS (4 * BATCH_KEYS + BATCH_REQS)

struct st_rl_batch_t {
    gw_ratelimit_ctx_t *ctx;
    h2o_linklist_t link; /* ctx->open, ctx->sent or ctx->spare */
    unsigned slot;
    gw_store_req_t *req; /* non-NULL once sent, until the reply */
    size_t nent, nkeys, used, nruns;
    struct {
        rl_sub_t *sub; /* NULL once cancelled */
        uint8_t run;   /* in runs[] */
        uint8_t pos;   /* its place in the run (set when sent) */
    } ent[BATCH_REQS];
    struct {
        uint8_t count; /* requests sent in it (0: none) */
        uint8_t m;
        uint8_t kidx[GW_RATELIMIT_MAX_POLICIES];               /* its keys, into keys[] */
        uint16_t off;                                          /* of its values in the reply */
        uint64_t admits;                                       /* from the reply: how many of its requests were admitted */
    } runs[BATCH_REQS];                                        /* the requests over the same keys (see gw_ratelimit_lua) */
    uint8_t runarg[BATCH_REQS][1 + GW_RATELIMIT_MAX_POLICIES]; /* as sent: count, key indexes */

    struct {
        uint64_t h;
        uint16_t off, len;
        const gw_ratelimit_conf_t *policy; /* its limit, window and burst */
    } keys[BATCH_KEYS];
    char text[BATCH_TEXT];
};

struct st_gw_ratelimit_ctx_t {
    h2o_loop_t *loop;
    gw_store_t *store;
    gw_store_down_t mode;
    uint64_t split; /* nodes x threads */
    rl_table_t deny, local;
    h2o_linklist_t inflight, freelist;
    size_t num_free;
    h2o_linklist_t open, sent, spare; /* batches */
    size_t num_open, num_spare;
    h2o_timeout_t flush_timeout; /* 0 ms: the end of this loop iteration */
    h2o_timeout_entry_t flush_entry;
    const char **args; /* scratch for building a script call (BATCH_ARGS each) */
    size_t *lens;
    char (*nums)[20];
    gw_ratelimit_stats_t stats;
};

static void flush_all(h2o_timeout_entry_t *entry);
static void batch_release(rl_batch_t *b);

gw_ratelimit_ctx_t *gw_ratelimit_ctx_create(h2o_loop_t *loop, gw_store_t *store, gw_store_down_t on_store_down, unsigned nodes,
                                            unsigned threads)
{
    pthread_once(&sip_once, sip_init);
    pthread_once(&script_once, script_init);
    gw_ratelimit_ctx_t *ctx = h2o_mem_alloc(sizeof(*ctx));
    memset(ctx, 0, sizeof(*ctx));
    ctx->loop = loop;
    ctx->store = store;
    ctx->mode = on_store_down;
    ctx->split = (uint64_t)(nodes != 0 ? nodes : 1) * (threads != 0 ? threads : 1);
    ctx->deny.e = calloc(DENY_SETS * WAYS, sizeof(rl_entry_t));
    ctx->deny.mask = DENY_SETS - 1;
    ctx->local.e = calloc(LOCAL_SETS * WAYS, sizeof(rl_entry_t));
    ctx->local.mask = LOCAL_SETS - 1;
    if (ctx->deny.e == NULL || ctx->local.e == NULL)
        h2o_fatal("no memory");
    h2o_linklist_init_anchor(&ctx->inflight);
    h2o_linklist_init_anchor(&ctx->freelist);
    h2o_linklist_init_anchor(&ctx->open);
    h2o_linklist_init_anchor(&ctx->sent);
    h2o_linklist_init_anchor(&ctx->spare);
    h2o_timeout_init(loop, &ctx->flush_timeout, 0);
    ctx->flush_entry = (h2o_timeout_entry_t){0};
    ctx->flush_entry.cb = flush_all;
    ctx->args = malloc(BATCH_ARGS * sizeof(*ctx->args));
    ctx->lens = malloc(BATCH_ARGS * sizeof(*ctx->lens));
    ctx->nums = malloc(BATCH_ARGS * sizeof(*ctx->nums));
    if (ctx->args == NULL || ctx->lens == NULL || ctx->nums == NULL)
        h2o_fatal("no memory");
    if (store != NULL)
        gw_store_preload(store, &script);
    return ctx;
}

static void check_release(gw_ratelimit_check_t *check)
{
    gw_ratelimit_ctx_t *ctx = check->ctx;
    h2o_linklist_unlink(&check->link);
    if (ctx->num_free < CHECK_FREELIST_MAX) {
        h2o_linklist_insert(&ctx->freelist, &check->link);
        ++ctx->num_free;
    } else {
        free(check);
    }
}

void gw_ratelimit_ctx_free(gw_ratelimit_ctx_t *ctx)
{
    while (!h2o_linklist_is_empty(&ctx->inflight))
        gw_ratelimit_cancel(H2O_STRUCT_FROM_MEMBER(gw_ratelimit_check_t, link, ctx->inflight.next));
    while (!h2o_linklist_is_empty(&ctx->freelist)) {
        gw_ratelimit_check_t *check = H2O_STRUCT_FROM_MEMBER(gw_ratelimit_check_t, link, ctx->freelist.next);
        h2o_linklist_unlink(&check->link);
        free(check);
    }
    /* the batches hold no request now: drop the ones collecting or in flight */
    if (h2o_timeout_is_linked(&ctx->flush_entry))
        h2o_timeout_unlink(&ctx->flush_entry);
    h2o_timeout_dispose(ctx->loop, &ctx->flush_timeout);
    while (!h2o_linklist_is_empty(&ctx->sent)) {
        rl_batch_t *b = H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->sent.next);
        if (b->req != NULL)
            gw_store_cancel(b->req);
        b->req = NULL;
        batch_release(b);
    }
    while (!h2o_linklist_is_empty(&ctx->open))
        batch_release(H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->open.next));
    while (!h2o_linklist_is_empty(&ctx->spare)) {
        rl_batch_t *b = H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->spare.next);
        h2o_linklist_unlink(&b->link);
        free(b);
    }
    free(ctx->args);
    free(ctx->lens);
    free(ctx->nums);
    free(ctx->deny.e);
    free(ctx->local.e);
    free(ctx);
}

static void set_from_gcra(gw_ratelimit_result_t *r, const gw_gcra_result_t *g, gw_ratelimit_source_t source)
{
    r->source = source;
    r->allowed = g->allowed;
    r->remaining = g->remaining;
    r->reset_ms = g->reset_ms;
    r->retry_after_ms = g->retry_after_ms;
}

/* the store cannot answer for these policies (RESULTS[IDX[0..n)], hashes H[IDX[..]]): apply
 * on_store_down. In local mode the policies are evaluated together, all or nothing, like in Redis. */
static void fallback(gw_ratelimit_ctx_t *ctx, gw_ratelimit_result_t *results, const uint64_t *h, const uint8_t *idx, size_t n,
                     int64_t now)
{
    uint8_t loc[GW_RATELIMIT_MAX_POLICIES];
    gw_gcra_policy_t lp[GW_RATELIMIT_MAX_POLICIES];
    gw_gcra_state_t st[GW_RATELIMIT_MAX_POLICIES];
    gw_gcra_result_t g[GW_RATELIMIT_MAX_POLICIES];
    size_t nloc = 0;
    for (size_t k = 0; k != n; ++k) {
        gw_ratelimit_result_t *r = &results[idx[k]];
        const gw_ratelimit_conf_t *p = r->policy;
        if (ctx->mode == GW_STORE_DOWN_LOCAL) {
            uint64_t burst = p->burst / ctx->split;
            uint64_t window = p->window_ms <= UINT64_MAX / ctx->split ? p->window_ms * ctx->split : 0;
            gw_gcra_policy_t q = {p->limit, window, burst != 0 ? burst : 1};
            if (gw_gcra_params_ok(q.limit, q.window_ms, q.burst)) {
                rl_entry_t *e = table_find(&ctx->local, h[idx[k]], now);
                st[nloc] = e != NULL ? (gw_gcra_state_t){e->a, e->b} : (gw_gcra_state_t){0, 0};
                lp[nloc] = q;
                loc[nloc++] = idx[k];
                continue;
            }
            /* parameters beyond the exact range: nothing sensible to enforce locally */
        }
        if (ctx->mode == GW_STORE_DOWN_CLOSED) {
            r->source = GW_RL_SOURCE_CLOSED;
            r->allowed = 0;
            STAT_INC(ctx, closed_checks);
        } else {
            r->source = GW_RL_SOURCE_OPEN;
            r->allowed = 1;
            STAT_INC(ctx, open_checks);
        }
    }
    if (nloc == 0 || gw_gcra_all(nloc, lp, now, st, g) < 0)
        return;
    for (size_t k = 0; k != nloc; ++k) {
        rl_entry_t *e = table_claim(&ctx->local, h[loc[k]], now);
        e->a = st[k].tat_ms;
        e->b = st[k].tat_frac;
        e->until = st[k].tat_ms + (st[k].tat_frac != 0); /* once tat is past, the entry is a fresh key */
        set_from_gcra(&results[loc[k]], &g[k], GW_RL_SOURCE_LOCAL);
        STAT_INC(ctx, local_checks);
    }
}

/* *DST = *SRC for the SRC->n results in use (the rest of the array is garbage) */
static void verdict_copy(gw_ratelimit_verdict_t *dst, const gw_ratelimit_verdict_t *src)
{
    memcpy(dst, src, offsetof(gw_ratelimit_verdict_t, results) + src->n * sizeof(src->results[0]));
}

static void finalize(gw_ratelimit_verdict_t *v)
{
    v->verdict = GW_RL_ALLOW;
    v->retry_after_s = 0;
    for (size_t i = 0; i != v->n; ++i) {
        gw_ratelimit_result_t *r = &v->results[i];
        r->reset_s = gw_ratelimit_seconds(r->reset_ms);
        r->retry_after_s = 0;
        if (gw_ratelimit_has_state(r) && !r->allowed) {
            r->retry_after_s = gw_ratelimit_seconds(r->retry_after_ms);
            if (r->retry_after_s == 0)
                r->retry_after_s = 1;
            v->verdict = GW_RL_DENY;
            if (r->retry_after_s > v->retry_after_s)
                v->retry_after_s = r->retry_after_s;
        }
    }
    if (v->verdict == GW_RL_ALLOW)
        for (size_t i = 0; i != v->n; ++i)
            if (v->results[i].source == GW_RL_SOURCE_CLOSED)
                v->verdict = GW_RL_UNAVAILABLE;
}

static size_t u64_dec(char *buf, uint64_t v) /* decimal, no NUL; buf >= 20 bytes */
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i != n; ++i)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* the verdict of Redis for one sub (D: its n values) or its failure (D == NULL: on_store_down applies);
 * the check's callback once every sub is done */
static void sub_done(rl_sub_t *sub, const uint64_t *d, int64_t now)
{
    gw_ratelimit_check_t *check = sub->check;
    gw_ratelimit_ctx_t *ctx = check->ctx;
    gw_gcra_policy_t gp[GW_RATELIMIT_MAX_POLICIES];
    gw_gcra_result_t g[GW_RATELIMIT_MAX_POLICIES];

    sub->batch = NULL;
    for (size_t k = 0; k != sub->n; ++k) {
        const gw_ratelimit_conf_t *p = check->v.results[sub->idx[k]].policy;
        gp[k] = (gw_gcra_policy_t){p->limit, p->window_ms, p->burst};
    }
    if (d != NULL && gw_gcra_results(sub->n, gp, d, g) >= 0) {
        for (size_t k = 0; k != sub->n; ++k) {
            set_from_gcra(&check->v.results[sub->idx[k]], &g[k], GW_RL_SOURCE_STORE);
            STAT_INC(ctx, store_checks);
            if (!g[k].allowed) { /* Redis will say no until then whoever asks: answer it here meanwhile */
                rl_entry_t *e = table_claim(&ctx->deny, check->h[sub->idx[k]], now);
                e->until = gw_gcra_add_ms(now, g[k].retry_after_ms);
                e->a = gw_gcra_add_ms(now, g[k].reset_ms);
            }
        }
    } else {
        STAT_INC(ctx, store_failures);
        fallback(ctx, check->v.results, check->h, sub->idx, sub->n, now);
    }
    if (--check->pending != 0)
        return;
    finalize(&check->v);
    gw_ratelimit_verdict_t *out = check->out;
    gw_ratelimit_cb cb = check->cb;
    void *cbdata = check->data;
    verdict_copy(out, &check->v);
    check_release(check);
    cb(cbdata, out);
}

static void batch_release(rl_batch_t *b)
{
    gw_ratelimit_ctx_t *ctx = b->ctx;
    h2o_linklist_unlink(&b->link);
    if (ctx->num_spare < BATCH_SPARE_MAX) {
        h2o_linklist_insert(&ctx->spare, &b->link);
        ++ctx->num_spare;
    } else {
        free(b);
    }
}

/* the policies of run R of batch B, for gw_gcra_results */
static void run_policies(const rl_batch_t *b, size_t r, gw_gcra_policy_t *gp)
{
    for (size_t k = 0; k != b->runs[r].m; ++k) {
        const gw_ratelimit_conf_t *p = b->keys[b->runs[r].kidx[k]].policy;
        gp[k] = (gw_gcra_policy_t){p->limit, p->window_ms, p->burst};
    }
}

static void on_batch_reply(void *data, const redisReply *reply, const char *err)
{
    rl_batch_t *b = data;
    int64_t now = (int64_t)h2o_now(b->ctx->loop);
    size_t total = 0;
    gw_gcra_policy_t gp[GW_RATELIMIT_MAX_POLICIES];
    uint64_t d[GW_RATELIMIT_MAX_POLICIES];

    b->req = NULL;
    for (size_t r = 0; r != b->nruns; ++r)
        if (b->runs[r].count != 0)
            total += b->runs[r].m;
    int ok = err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == total + 1;
    for (size_t i = 0; ok && i != total + 1; ++i)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            ok = 0;
    for (size_t r = 0; ok && r != b->nruns; ++r) {
        if (b->runs[r].count == 0)
            continue;
        run_policies(b, r, gp);
        for (size_t k = 0; k != b->runs[r].m; ++k)
            d[k] = (uint64_t)reply->element[b->runs[r].off + k]->integer;
        b->runs[r].admits = gw_gcra_run_admits(b->runs[r].m, gp, d, b->runs[r].count);
    }
    for (size_t i = 0; i != b->nent; ++i) { /* re-read every entry: a callback may cancel a later one */
        rl_sub_t *sub = b->ent[i].sub;
        if (sub == NULL)
            continue;
        b->ent[i].sub = NULL;
        if (ok) { /* its values: its run's, after the admissions of the requests before it in the run */
            size_t r = b->ent[i].run;
            uint64_t before = b->ent[i].pos < b->runs[r].admits ? b->ent[i].pos : b->runs[r].admits;
            run_policies(b, r, gp);
            for (size_t k = 0; k != b->runs[r].m; ++k)
                d[k] = (uint64_t)reply->element[b->runs[r].off + k]->integer + before * gp[k].window_ms;
        }
        sub_done(sub, ok ? d : NULL, now);
    }
    batch_release(b);
}

/* sends batch B (collecting) as one script call (see gw_ratelimit_lua for the arguments) */
static void batch_send(rl_batch_t *b)
{
    gw_ratelimit_ctx_t *ctx = b->ctx;
    const char **args = ctx->args;
    size_t *lens = ctx->lens, na = 0, nsent = 0, off = 0;

    h2o_linklist_unlink(&b->link);
    --ctx->num_open;
    for (size_t k = 0; k != b->nkeys; ++k) {
        args[na] = b->text + b->keys[k].off;
        lens[na++] = b->keys[k].len;
    }
    for (size_t k = 0; k != b->nkeys; ++k) {
        const gw_ratelimit_conf_t *p = b->keys[k].policy;
        const uint64_t vals[3] = {p->limit, p->window_ms, p->burst};
        for (size_t j = 0; j != 3; ++j) {
            args[na] = ctx->nums[na];
            lens[na] = u64_dec(ctx->nums[na], vals[j]);
            ++na;
        }
    }
    for (size_t r = 0; r != b->nruns; ++r)
        b->runs[r].count = 0;
    for (size_t i = 0; i != b->nent; ++i) /* the requests still wanted, in order within their runs */
        if (b->ent[i].sub != NULL)
            b->ent[i].pos = b->runs[b->ent[i].run].count++;
    for (size_t r = 0; r != b->nruns; ++r) {
        if (b->runs[r].count == 0)
            continue;
        b->runarg[r][0] = b->runs[r].count;
        memcpy(&b->runarg[r][1], b->runs[r].kidx, b->runs[r].m);
        args[na] = (const char *)b->runarg[r];
        lens[na++] = 1 + (size_t)b->runs[r].m;
        b->runs[r].off = (uint16_t)off;
        off += b->runs[r].m;
        ++nsent;
    }
    h2o_linklist_insert(&ctx->sent, &b->link);
    if (nsent == 0) { /* every request of it went away meanwhile */
        batch_release(b);
        return;
    }
    STAT_INC(ctx, store_calls);
    b->req = gw_store_evalsha(ctx->store, &script, on_batch_reply, b, (int)b->nkeys, (int)na, args, lens);
}

static void flush_all(h2o_timeout_entry_t *entry)
{
    gw_ratelimit_ctx_t *ctx = H2O_STRUCT_FROM_MEMBER(gw_ratelimit_ctx_t, flush_entry, entry);
    while (!h2o_linklist_is_empty(&ctx->open))
        batch_send(H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->open.next));
    if (ctx->store != NULL) /* out now: the store's own end-of-iteration flush may already have run */
        gw_store_flush(ctx->store);
}

/* the collecting batch for SLOT with room for N more keys of TEXTLEN bytes in all (a new one if needed) */
static rl_batch_t *batch_for(gw_ratelimit_ctx_t *ctx, unsigned slot, size_t n, size_t textlen)
{
    rl_batch_t *b = NULL;
    for (h2o_linklist_t *l = ctx->open.next; l != &ctx->open; l = l->next) {
        rl_batch_t *o = H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, l);
        if (o->slot == slot) {
            b = o;
            break;
        }
    }
    if (b != NULL && b->nent < BATCH_REQS && b->nkeys + n <= BATCH_KEYS && b->used + textlen <= BATCH_TEXT)
        return b;
    if (b != NULL)
        batch_send(b); /* full: it goes now */
    else if (ctx->num_open == BATCH_OPEN)
        batch_send(H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->open.next)); /* the oldest */
    if (!h2o_linklist_is_empty(&ctx->spare)) {
        b = H2O_STRUCT_FROM_MEMBER(rl_batch_t, link, ctx->spare.next);
        h2o_linklist_unlink(&b->link);
        --ctx->num_spare;
    } else {
        b = h2o_mem_alloc(sizeof(*b));
        b->link = (h2o_linklist_t){NULL, NULL};
    }
    b->ctx = ctx;
    b->slot = slot;
    b->req = NULL;
    b->nent = b->nkeys = b->used = b->nruns = 0;
    h2o_linklist_insert(&ctx->open, &b->link);
    ++ctx->num_open;
    if (!h2o_timeout_is_linked(&ctx->flush_entry))
        h2o_timeout_link(ctx->loop, &ctx->flush_timeout, &ctx->flush_entry);
    return b;
}

/* SUB (its policies' store keys SKEYS/SKLEN, hashes H, indexed by sub->idx) joins a batch for SLOT */
static void batch_add(gw_ratelimit_ctx_t *ctx, rl_sub_t *sub, unsigned slot, char (*skeys)[STORE_KEY_MAX], const size_t *sklen,
                      const uint64_t *h)
{
    size_t textlen = 0;
    for (size_t k = 0; k != sub->n; ++k)
        textlen += sklen[sub->idx[k]];
    rl_batch_t *b = batch_for(ctx, slot, sub->n, textlen);
    for (size_t k = 0; k != sub->n; ++k) {
        size_t i = sub->idx[k], len = sklen[i], j;
        for (j = 0; j != b->nkeys; ++j)
            if (b->keys[j].h == h[i] && b->keys[j].len == len && memcmp(b->text + b->keys[j].off, skeys[i], len) == 0)
                break;
        if (j == b->nkeys) {
            memcpy(b->text + b->used, skeys[i], len);
            b->keys[j].h = h[i];
            b->keys[j].policy = sub->check->v.results[i].policy;
            b->keys[j].off = (uint16_t)b->used;
            b->keys[j].len = (uint16_t)len;
            b->used += len;
            ++b->nkeys;
        }
        sub->kidx[k] = (uint8_t)j;
    }
    size_t r = 0; /* its run: the requests of this batch over the same keys */
    while (r != b->nruns && !(b->runs[r].m == sub->n && memcmp(b->runs[r].kidx, sub->kidx, sub->n) == 0))
        ++r;
    if (r == b->nruns) {
        memcpy(b->runs[r].kidx, sub->kidx, sub->n);
        b->runs[r].m = sub->n;
        ++b->nruns;
    }
    sub->batch = b;
    sub->pos = (uint16_t)b->nent;
    b->ent[b->nent].sub = sub;
    b->ent[b->nent].run = (uint8_t)r;
    ++b->nent;
}

gw_ratelimit_check_t *gw_ratelimit_check(gw_ratelimit_ctx_t *ctx, const gw_ratelimit_conf_t *const *policies,
                                         const h2o_iovec_t *keys, size_t n, gw_ratelimit_verdict_t *out, gw_ratelimit_cb cb,
                                         void *data)
{
    gw_ratelimit_verdict_t v;
    uint64_t h[GW_RATELIMIT_MAX_POLICIES];
    int64_t now = (int64_t)h2o_now(ctx->loop);
    int denied = 0;

    if (n > GW_RATELIMIT_MAX_POLICIES)
        n = GW_RATELIMIT_MAX_POLICIES;
    v.verdict = GW_RL_ALLOW;
    v.retry_after_s = 0;
    v.n = n;
    for (size_t i = 0; i != n; ++i) {
        gw_ratelimit_result_t *r = &v.results[i];
        memset(r, 0, sizeof(*r));
        r->policy = policies[i];
        r->limit = policies[i]->limit;
        r->source = GW_RL_SOURCE_NONE;
        r->allowed = 1;
        h[i] = policy_key_hash(policies[i], keys[i].base, keys[i].len);
        STAT_INC(ctx, checks);
        rl_entry_t *e = table_find(&ctx->deny, h[i], now);
        if (e != NULL) {
            r->source = GW_RL_SOURCE_CACHE;
            r->allowed = 0;
            r->retry_after_ms = (uint64_t)(e->until - now);
            r->reset_ms = e->a > e->until ? (uint64_t)(e->a - now) : r->retry_after_ms;
            STAT_INC(ctx, cache_hits);
            denied = 1;
        }
    }
    if (denied) /* the request is refused whatever the other policies say: no round trip at all */
        goto Done;

    /* group the policies by the slot of their key (one hash tag per identity) in a cluster, where a
     * script's keys must share a slot; against one Redis all of them form one group. Each group is
     * evaluated atomically and all or nothing in Redis, as one entry of a batch (see batch_for) */
    char skeys[GW_RATELIMIT_MAX_POLICIES][STORE_KEY_MAX];
    size_t sklen[GW_RATELIMIT_MAX_POLICIES];
    unsigned slot[GW_RATELIMIT_MAX_POLICIES];
    rl_sub_t groups[GW_RATELIMIT_MAX_POLICIES];
    size_t ngroups = 0, nstore = 0;
    uint8_t down[GW_RATELIMIT_MAX_POLICIES];
    size_t ndown = 0;
    int cluster = ctx->store != NULL && gw_store_is_cluster(ctx->store);
    for (size_t i = 0; i != n; ++i) {
        const gw_ratelimit_conf_t *p = policies[i];
        sklen[i] = ctx->store != NULL ? gw_ratelimit_store_key(skeys[i], sizeof(skeys[i]), p, keys[i].base, keys[i].len) : 0;
        if (sklen[i] == 0 || !gw_gcra_params_ok(p->limit, p->window_ms, p->burst)) {
            down[ndown++] = (uint8_t)i;
            continue;
        }
        slot[i] = cluster ? gw_store_key_slot(skeys[i], sklen[i]) : 0;
        size_t g = 0;
        while (g != ngroups && slot[groups[g].idx[0]] != slot[i])
            ++g;
        if (g == ngroups) {
            if (!gw_store_is_up_for_key(ctx->store, skeys[i], sklen[i])) {
                down[ndown++] = (uint8_t)i;
                continue;
            }
            groups[ngroups++].n = 0;
        }
        groups[g].idx[groups[g].n++] = (uint8_t)i;
        ++nstore;
    }
    if (ndown != 0)
        fallback(ctx, v.results, h, down, ndown, now);
    if (nstore == 0)
        goto Done;

    gw_ratelimit_check_t *check;
    if (!h2o_linklist_is_empty(&ctx->freelist)) {
        check = H2O_STRUCT_FROM_MEMBER(gw_ratelimit_check_t, link, ctx->freelist.next);
        h2o_linklist_unlink(&check->link);
        --ctx->num_free;
    } else {
        check = h2o_mem_alloc(sizeof(*check));
        check->link = (h2o_linklist_t){NULL, NULL};
    }
    check->ctx = ctx;
    check->out = out;
    check->cb = cb;
    check->data = data;
    check->pending = ngroups;
    verdict_copy(&check->v, &v);
    memcpy(check->h, h, sizeof(h[0]) * n);
    h2o_linklist_insert(&ctx->inflight, &check->link);
    for (size_t g = 0; g != GW_RATELIMIT_MAX_POLICIES; ++g)
        check->subs[g].batch = NULL;
    for (size_t g = 0; g != ngroups; ++g) {
        rl_sub_t *sub = &check->subs[g];
        sub->check = check;
        sub->n = groups[g].n;
        memcpy(sub->idx, groups[g].idx, sub->n);
        batch_add(ctx, sub, slot[sub->idx[0]], skeys, sklen, h);
    }
    return check;

Done:
    finalize(&v);
    verdict_copy(out, &v);
    return NULL;
}

void gw_ratelimit_cancel(gw_ratelimit_check_t *check)
{
    if (check == NULL)
        return;
    /* out of its batches: one still collecting leaves it out, one sent ignores its part of the reply */
    for (size_t i = 0; i != GW_RATELIMIT_MAX_POLICIES; ++i)
        if (check->subs[i].batch != NULL) {
            check->subs[i].batch->ent[check->subs[i].pos].sub = NULL;
            check->subs[i].batch = NULL;
        }
    check_release(check);
}

void gw_ratelimit_get_stats(const gw_ratelimit_ctx_t *ctx, gw_ratelimit_stats_t *out)
{
    const uint64_t *src = (const uint64_t *)&ctx->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i != sizeof(*out) / sizeof(uint64_t); ++i)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
