/*
 * gateway/ratelimit.c — GCRA rate limits (SPEC §5): the exact arithmetic, the same arithmetic as a
 * Redis Lua script, the per-thread deny cache and local fallback, and the RateLimit header values.
 *
 * Called by the request pipeline (the "rate limit" stage) on the thread that owns the context;
 * the pure functions (gw_gcra, formatting, keys) from anywhere, including unit tests.
 *
 * It must never: let a request wait on a store known to be down; admit more than a policy allows
 * while the store answers (the deny cache only answers what Redis would answer); write a key,
 * user id or address to a log; allocate without bound (both caches are fixed-size).
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "h2o/linklist.h"
#include "h2o/timeout.h"
#include "gateway/ratelimit.h"

#define DENY_SETS 256   /* x 4 ways: keys known over a limit, per thread */
#define LOCAL_SETS 1024 /* x 4 ways: local GCRA states while the store is down, per thread */
#define WAYS 4
#define CHECK_FREELIST_MAX 256
#define STORE_KEY_MAX 640

#define STAT_INC(ctx, field)                                                                                                       \
    __atomic_store_n(&(ctx)->stats.field, __atomic_load_n(&(ctx)->stats.field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)

/* ---- the arithmetic ------------------------------------------------------------------------------------ */

int gw_gcra_params_ok(uint64_t limit, uint64_t window_ms, uint64_t burst)
{
    return limit > 0 && window_ms > 0 && burst > 0 && limit <= GW_GCRA_MAX && burst <= GW_GCRA_MAX / window_ms;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static int64_t add_ms(int64_t t, uint64_t ms) /* saturating: a clock near INT64_MAX must not overflow */
{
    if (ms > (uint64_t)INT64_MAX)
        ms = (uint64_t)INT64_MAX;
    if (t > 0 && (int64_t)ms > INT64_MAX - t)
        return INT64_MAX;
    return t + (int64_t)ms; /* t <= 0: at most ms, at least t */
}

uint64_t gw_ratelimit_seconds(uint64_t ms)
{
    return ceil_div(ms, 1000);
}

int gw_gcra(uint64_t limit, uint64_t window_ms, uint64_t burst, int64_t now_ms, gw_gcra_state_t *state, gw_gcra_result_t *res)
{
    if (!gw_gcra_params_ok(limit, window_ms, burst))
        return -1;
    /* time in units of 1/limit ms ("scaled"): T = window_ms, tau = burst * window_ms */
    const uint64_t L = limit, T = window_ms, tau = burst * window_ms;
    uint64_t d = 0; /* max(tat - now, 0), scaled */
    int clamped = 0;
    if (state->tat_ms >= now_ms) {
        uint64_t dm = (uint64_t)state->tat_ms - (uint64_t)now_ms; /* exact: the difference fits in 64 bits */
        if (dm > tau / L + 1) {
            d = tau, clamped = 1; /* further ahead than any legal state: the clock went back */
        } else {
            uint64_t f = state->tat_frac < L ? state->tat_frac : L - 1;
            d = dm * L + f; /* <= tau + 2L < 2^52 */
            if (d > tau)
                d = tau, clamped = 1;
        }
    }
    uint64_t nd = d + T;
    if (nd <= tau) {
        state->tat_ms = add_ms(now_ms, nd / L);
        state->tat_frac = nd % L;
        res->allowed = 1;
        res->remaining = (tau - nd) / T;
        res->reset_ms = ceil_div(nd, L);
        res->retry_after_ms = 0;
    } else {
        if (clamped) {
            state->tat_ms = add_ms(now_ms, tau / L);
            state->tat_frac = tau % L;
        }
        res->allowed = 0;
        res->remaining = 0;
        res->reset_ms = ceil_div(d, L);
        res->retry_after_ms = ceil_div(nd - tau, L); /* >= 1 since nd > tau */
    }
    return 0;
}

/* The same, in Redis. Lua numbers are doubles: every value below stays an integer < 2^52 (see
 * gw_gcra_params_ok), so +, -, *, floor(a/b), a%b and ceil(a/b) are exact and match the C code.
 * State: "<tat_ms>:<tat_frac>", expiring when the key is full again (then absent == fresh). */
const char gw_ratelimit_lua[] =
    "local L = tonumber(ARGV[1])\n"
    "local W = tonumber(ARGV[2])\n"
    "local B = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local tau = B * W\n"
    "local d = 0\n"
    "local clamped = false\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then\n"
    "  local ms, f = string.match(v, '^(%-?%d+):(%d+)$')\n"
    "  if ms then\n"
    "    local dm = tonumber(ms) - now\n"
    "    if dm > math.floor(tau / L) + 1 then\n"
    "      d = tau\n"
    "      clamped = true\n"
    "    elseif dm >= 0 then\n"
    "      f = tonumber(f)\n"
    "      if f >= L then f = L - 1 end\n"
    "      d = dm * L + f\n"
    "      if d > tau then\n"
    "        d = tau\n"
    "        clamped = true\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local nd = d + W\n"
    "if nd <= tau then\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', now + math.floor(nd / L), nd % L), 'PX', math.ceil(nd / L))\n"
    "  return {1, math.floor((tau - nd) / W), math.ceil(nd / L), 0, now}\n"
    "end\n"
    "if clamped then\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', now + math.floor(tau / L), tau % L), 'PX', math.ceil(tau / L))\n"
    "end\n"
    "return {0, 0, math.ceil(d / L), math.ceil((nd - tau) / L), now}\n";

size_t gw_ratelimit_store_key(char *buf, size_t cap, const char *policy, const char *key, size_t keylen)
{
    char hex[65];
    if (keylen > GW_RATELIMIT_MAX_KEY) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
            return 0;
        for (unsigned i = 0; i != 32; ++i)
            sprintf(hex + i * 2, "%02x", md[i]);
        key = hex;
        keylen = 64;
    }
    size_t plen = strlen(policy), total = sizeof("hegate:rl:{") - 1 + plen + 1 + keylen + 1;
    if (total + 1 > cap)
        return 0;
    char *p = buf;
    memcpy(p, "hegate:rl:{", 11);
    p += 11;
    memcpy(p, policy, plen);
    p += plen;
    *p++ = ':';
    memcpy(p, key, keylen);
    p += keylen;
    *p++ = '}';
    *p = '\0';
    return total;
}

/* ---- headers --------------------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} appender_t;

static void app_bytes(appender_t *a, const char *s, size_t n)
{
    if (a->overflow || a->len + n + 1 > a->cap) {
        a->overflow = 1;
        return;
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

static void app_sfstring(appender_t *a, const char *s)
{
    app_bytes(a, "\"", 1);
    for (; *s != '\0'; ++s) {
        char c = *s;
        if (c == '"' || c == '\\')
            app_bytes(a, "\\", 1);
        else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
            c = '?';
        app_bytes(a, &c, 1);
    }
    app_bytes(a, "\"", 1);
}

static void app_param(appender_t *a, const char *name, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), ";%s=%llu", name, (unsigned long long)v);
    app_bytes(a, tmp, (size_t)n);
}

static size_t app_done(appender_t *a)
{
    if (a->overflow || a->len == 0) {
        if (a->cap != 0)
            a->buf[0] = '\0';
        return 0;
    }
    return a->len;
}

size_t gw_ratelimit_format_policy(char *buf, size_t cap, const gw_ratelimit_conf_t *const *policies, size_t n)
{
    appender_t a = {buf, cap, 0, cap == 0};
    for (size_t i = 0; i != n; ++i) {
        if (i != 0)
            app_bytes(&a, ", ", 2);
        app_sfstring(&a, policies[i]->name);
        app_param(&a, "q", policies[i]->limit);
        uint64_t w = gw_ratelimit_seconds(policies[i]->window_ms);
        app_param(&a, "w", w != 0 ? w : 1);
    }
    return app_done(&a);
}

static int has_state(const gw_ratelimit_result_t *r)
{
    return r->source == GW_RL_SOURCE_STORE || r->source == GW_RL_SOURCE_CACHE || r->source == GW_RL_SOURCE_LOCAL;
}

size_t gw_ratelimit_format_state(char *buf, size_t cap, const gw_ratelimit_result_t *results, size_t n)
{
    appender_t a = {buf, cap, 0, cap == 0};
    for (size_t i = 0; i != n; ++i) {
        if (!has_state(&results[i]))
            continue;
        if (a.len != 0)
            app_bytes(&a, ", ", 2);
        app_sfstring(&a, results[i].policy->name);
        app_param(&a, "r", results[i].remaining);
        app_param(&a, "t", results[i].reset_s);
    }
    return app_done(&a);
}

size_t gw_ratelimit_header_bound(const gw_ratelimit_conf_t *const *policies, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i != n; ++i)
        total += 2 + 2 * strlen(policies[i]->name) + 2 + 2 * (3 + 20);
    return total;
}

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

/* SipHash-2-4: the tables are indexed by attacker-chosen strings (addresses, ids) */
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
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; ++j)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
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

typedef struct {
    gw_ratelimit_check_t *check;
    gw_store_req_t *req;
    uint64_t h;
} rl_sub_t;

struct st_gw_ratelimit_check_t {
    gw_ratelimit_ctx_t *ctx;
    h2o_linklist_t link; /* ctx->inflight or ctx->freelist */
    gw_ratelimit_verdict_t *out;
    gw_ratelimit_cb cb;
    void *data;
    size_t pending;
    gw_ratelimit_verdict_t v;
    rl_sub_t subs[GW_RATELIMIT_MAX_POLICIES];
};

struct st_gw_ratelimit_ctx_t {
    h2o_loop_t *loop;
    gw_store_t *store;
    gw_store_down_t mode;
    uint64_t split; /* nodes x threads */
    rl_table_t deny, local;
    h2o_linklist_t inflight, freelist;
    size_t num_free;
    gw_ratelimit_stats_t stats;
};

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

/* the store cannot answer for this policy: apply on_store_down */
static void fallback(gw_ratelimit_ctx_t *ctx, gw_ratelimit_result_t *r, uint64_t h, int64_t now)
{
    const gw_ratelimit_conf_t *p = r->policy;
    if (ctx->mode == GW_STORE_DOWN_LOCAL) {
        uint64_t burst = p->burst / ctx->split;
        uint64_t window = p->window_ms <= UINT64_MAX / ctx->split ? p->window_ms * ctx->split : 0;
        rl_entry_t *e = table_claim(&ctx->local, h, now);
        gw_gcra_state_t st = {e->a, e->b};
        gw_gcra_result_t g;
        if (gw_gcra(p->limit, window, burst != 0 ? burst : 1, now, &st, &g) == 0) {
            e->a = st.tat_ms;
            e->b = st.tat_frac;
            e->until = st.tat_ms + (st.tat_frac != 0); /* once tat is past, the entry is a fresh key */
            set_from_gcra(r, &g, GW_RL_SOURCE_LOCAL);
            STAT_INC(ctx, local_checks);
            return;
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

static void finalize(gw_ratelimit_verdict_t *v)
{
    v->verdict = GW_RL_ALLOW;
    v->retry_after_s = 0;
    for (size_t i = 0; i != v->n; ++i) {
        gw_ratelimit_result_t *r = &v->results[i];
        r->reset_s = gw_ratelimit_seconds(r->reset_ms);
        r->retry_after_s = 0;
        if (has_state(r) && !r->allowed) {
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

/* {allowed, remaining, reset_ms, retry_after_ms, now_ms} */
static int parse_script_reply(const redisReply *reply, gw_gcra_result_t *g)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 4)
        return -1;
    for (size_t i = 0; i != 4; ++i)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
    g->allowed = reply->element[0]->integer != 0;
    g->remaining = (uint64_t)reply->element[1]->integer;
    g->reset_ms = (uint64_t)reply->element[2]->integer;
    g->retry_after_ms = (uint64_t)reply->element[3]->integer;
    return 0;
}

static void on_store_reply(void *data, const redisReply *reply, const char *err)
{
    rl_sub_t *sub = data;
    gw_ratelimit_check_t *check = sub->check;
    gw_ratelimit_ctx_t *ctx = check->ctx;
    gw_ratelimit_result_t *r = &check->v.results[sub - check->subs];
    int64_t now = (int64_t)h2o_now(ctx->loop);
    gw_gcra_result_t g;

    sub->req = NULL;
    if (err == NULL && parse_script_reply(reply, &g) == 0) {
        set_from_gcra(r, &g, GW_RL_SOURCE_STORE);
        STAT_INC(ctx, store_checks);
        if (!g.allowed) { /* Redis will say no until then whoever asks: answer it here meanwhile */
            rl_entry_t *e = table_claim(&ctx->deny, sub->h, now);
            e->until = add_ms(now, g.retry_after_ms);
            e->a = add_ms(now, g.reset_ms);
        }
    } else {
        STAT_INC(ctx, store_failures);
        fallback(ctx, r, sub->h, now);
    }
    if (--check->pending != 0)
        return;
    finalize(&check->v);
    gw_ratelimit_verdict_t *out = check->out;
    gw_ratelimit_cb cb = check->cb;
    void *cbdata = check->data;
    *out = check->v;
    check_release(check);
    cb(cbdata, out);
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
    memset(&v, 0, sizeof(v));
    v.n = n;
    for (size_t i = 0; i != n; ++i) {
        gw_ratelimit_result_t *r = &v.results[i];
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

    char skeys[GW_RATELIMIT_MAX_POLICIES][STORE_KEY_MAX];
    size_t sklen[GW_RATELIMIT_MAX_POLICIES], nstore = 0;
    for (size_t i = 0; i != n; ++i) {
        const gw_ratelimit_conf_t *p = policies[i];
        sklen[i] = gw_ratelimit_store_key(skeys[i], sizeof(skeys[i]), p->name, keys[i].base, keys[i].len);
        if (ctx->store != NULL && sklen[i] != 0 && gw_gcra_params_ok(p->limit, p->window_ms, p->burst) &&
            gw_store_is_up_for_key(ctx->store, skeys[i], sklen[i])) {
            ++nstore;
        } else {
            sklen[i] = 0;
            fallback(ctx, &v.results[i], h[i], now);
        }
    }
    if (nstore == 0)
        goto Done;

    gw_ratelimit_check_t *check;
    if (!h2o_linklist_is_empty(&ctx->freelist)) {
        check = H2O_STRUCT_FROM_MEMBER(gw_ratelimit_check_t, link, ctx->freelist.next);
        h2o_linklist_unlink(&check->link);
        --ctx->num_free;
    } else {
        check = h2o_mem_alloc(sizeof(*check));
    }
    memset(check, 0, sizeof(*check));
    check->ctx = ctx;
    check->out = out;
    check->cb = cb;
    check->data = data;
    check->v = v;
    h2o_linklist_insert(&ctx->inflight, &check->link);
    for (size_t i = 0; i != n; ++i) {
        if (sklen[i] == 0)
            continue;
        const gw_ratelimit_conf_t *p = policies[i];
        char lim[24], win[24], bur[24];
        snprintf(lim, sizeof(lim), "%llu", (unsigned long long)p->limit);
        snprintf(win, sizeof(win), "%llu", (unsigned long long)p->window_ms);
        snprintf(bur, sizeof(bur), "%llu", (unsigned long long)p->burst);
        const char *args[] = {skeys[i], lim, win, bur};
        size_t lens[] = {sklen[i], strlen(lim), strlen(win), strlen(bur)};
        check->subs[i].check = check;
        check->subs[i].h = h[i];
        ++check->pending;
        check->subs[i].req = gw_store_evalsha(ctx->store, &script, on_store_reply, &check->subs[i], 1, 4, args, lens);
    }
    return check;

Done:
    finalize(&v);
    *out = v;
    return NULL;
}

void gw_ratelimit_cancel(gw_ratelimit_check_t *check)
{
    if (check == NULL)
        return;
    for (size_t i = 0; i != GW_RATELIMIT_MAX_POLICIES; ++i)
        if (check->subs[i].req != NULL) {
            gw_store_cancel(check->subs[i].req);
            check->subs[i].req = NULL;
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
