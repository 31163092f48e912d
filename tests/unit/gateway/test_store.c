/*
 * tests/unit/gateway/test_store.c — the store against real redis-server processes on loopback: round trips,
 * pipelining order, cancel, deadlines under SIGSTOP, kill and restart, unix sockets and SELECT, the
 * Lua GCRA against the pure function, two "nodes" sharing one budget exactly, store-down modes and
 * recovery, a 3-master (+3 replicas) Redis Cluster (routing, MOVED, ASK, failover), and a round-trip
 * measurement. Every process started here is stopped even on failure (see redis_harness.h).
 */
#include "tests/unit/unit.h"
#include "tests/unit/redis_harness.h"
#include "gateway/ratelimit.h"
#include "gateway/store.h"

static h2o_evloop_t *loop;
static int main_idx;
static char main_url[64], main_sock[256];

/* ---- helpers ---------------------------------------------------------------------------------------- */

typedef struct {
    int done, calls, seq;
    int type;
    long long integer;
    char str[256];
    size_t elements;
    long long ints[64];
    const char *err;
    uint64_t at;
} res_t;

static int seq_counter;

static void collect(void *data, const redisReply *reply, const char *err)
{
    res_t *r = data;
    ++r->calls;
    r->done = 1;
    r->seq = ++seq_counter;
    r->at = redis_now_ms();
    r->err = err;
    if (reply != NULL) {
        r->type = reply->type;
        r->integer = reply->integer;
        if (reply->str != NULL)
            snprintf(r->str, sizeof(r->str), "%.*s", (int)reply->len, reply->str);
        r->elements = reply->elements;
        for (size_t i = 0; i != reply->elements && i != 64; ++i)
            r->ints[i] = reply->element[i]->type == REDIS_REPLY_INTEGER ? reply->element[i]->integer : -1;
    }
}

/* sends the NULL-terminated words */
static gw_store_req_t *cmd(gw_store_t *s, res_t *r, int key_index, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, key_index);
    const char *w;
    while ((w = va_arg(ap, const char *)) != NULL)
        argv[argc++] = w;
    va_end(ap);
    memset(r, 0, sizeof(*r));
    gw_store_req_t *req = gw_store_command(s, collect, r, key_index, argc, argv, NULL);
    assert_non_null(req);
    assert_int_equal(r->calls, 0); /* never from inside gw_store_command */
    return req;
}

static void run_for(unsigned ms)
{
    uint64_t until = redis_now_ms() + ms;
    while (redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
}

static int run_until(const int *flag, unsigned ms)
{
    uint64_t until = redis_now_ms() + ms;
    while (!*flag && redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
    return *flag;
}

static int wait_up(gw_store_t *s, unsigned ms)
{
    uint64_t until = redis_now_ms() + ms;
    while (!gw_store_is_up(s) && redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
    return gw_store_is_up(s);
}

/* Stores and limiter contexts in use: a failed assertion jumps out of the test, the group
 * teardown frees what it left (h2o_evloop_destroy insists on it). */
static gw_store_t *live_stores[8];
static gw_ratelimit_ctx_t *live_ctxs[8];

static void track(void **arr, void *p, void *replace)
{
    for (int i = 0; i != 8; ++i)
        if (arr[i] == replace) {
            arr[i] = p;
            return;
        }
    fail_msg("too many live objects");
}

static gw_store_t *store_create(const gw_store_conf_t *conf)
{
    char err[200];
    gw_store_t *s = gw_store_create(loop, conf, err, sizeof(err));
    if (s == NULL)
        fail_msg("gw_store_create: %s", err);
    track((void **)live_stores, s, NULL);
    return s;
}

static gw_store_t *store_new(const char *url, uint64_t timeout_ms)
{
    gw_store_conf_t conf = {url, NULL, 0, timeout_ms, 0, 0};
    return store_create(&conf);
}

static void store_done(gw_store_t *s)
{
    track((void **)live_stores, NULL, s);
    gw_store_free(s);
    run_for(2); /* let h2o release the closed sockets */
}

static gw_ratelimit_ctx_t *ctx_new(gw_store_t *s, gw_store_down_t mode, unsigned nodes, unsigned threads)
{
    gw_ratelimit_ctx_t *c = gw_ratelimit_ctx_create(loop, s, mode, nodes, threads);
    track((void **)live_ctxs, c, NULL);
    return c;
}

static void ctx_done(gw_ratelimit_ctx_t *c)
{
    track((void **)live_ctxs, NULL, c);
    gw_ratelimit_ctx_free(c);
}

static void free_leftovers(void)
{
    for (int i = 0; i != 8; ++i)
        if (live_ctxs[i] != NULL)
            ctx_done(live_ctxs[i]);
    for (int i = 0; i != 8; ++i)
        if (live_stores[i] != NULL)
            store_done(live_stores[i]);
}

/* a synchronous command through the store */
static void sync_cmd(gw_store_t *s, res_t *r, int key_index, const char *a0, const char *a1, const char *a2, const char *a3)
{
    cmd(s, r, key_index, a0, a1, a2, a3, NULL);
    assert_true(run_until(&r->done, 3000));
}

/* ---- single Redis ------------------------------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
    gw_store_t *s = store_new(main_url, 1000);
    res_t r;
    sync_cmd(s, &r, 1, "SET", "hegate:t:a", "hello", NULL);
    assert_null(r.err);
    assert_int_equal(r.type, REDIS_REPLY_STATUS);
    assert_string_equal(r.str, "OK");
    assert_true(gw_store_is_up(s));
    sync_cmd(s, &r, 1, "GET", "hegate:t:a", NULL, NULL);
    assert_int_equal(r.type, REDIS_REPLY_STRING);
    assert_string_equal(r.str, "hello");
    sync_cmd(s, &r, 1, "INCRBY", "hegate:t:n", "5", NULL);
    assert_int_equal(r.type, REDIS_REPLY_INTEGER);
    sync_cmd(s, &r, GW_STORE_NO_KEY, "NOSUCHCOMMAND", NULL, NULL, NULL);
    assert_null(r.err);
    assert_int_equal(r.type, REDIS_REPLY_ERROR);
    /* binary-safe words */
    const char *argv[] = {"SET", "hegate:t:bin", "a\0b\r\n"};
    size_t lens[] = {3, 12, 5};
    memset(&r, 0, sizeof(r));
    gw_store_command(s, collect, &r, 1, 3, argv, lens);
    assert_true(run_until(&r.done, 2000));
    redisReply *rep = redis_sync(redis_servers[main_idx].port, "STRLEN hegate:t:bin");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 5);
    freeReplyObject(rep);
    /* an invalid command fails later, not now */
    memset(&r, 0, sizeof(r));
    gw_store_command(s, collect, &r, GW_STORE_NO_KEY, 0, argv, NULL);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(&r.done, 1000));
    assert_ptr_equal(r.err, GW_STORE_ERR_INVALID);

    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_int_equal(st.commands, 6);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.error_replies, 1);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.timeouts, 0);
    store_done(s);
}

static void test_pipeline_order(void **state)
{
    enum { N = 2000 };
    gw_store_t *s = store_new(main_url, 2000);
    res_t *r = calloc(N, sizeof(*r)), del;
    assert_true(wait_up(s, 2000));
    sync_cmd(s, &del, 1, "DEL", "hegate:t:ctr", NULL, NULL);
    for (int i = 0; i != N; ++i)
        cmd(s, &r[i], 1, "INCR", "hegate:t:ctr", NULL);
    int last = 0;
    uint64_t until = redis_now_ms() + 5000;
    while (!r[N - 1].done && redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
    for (int i = 0; i != N; ++i) {
        assert_int_equal(r[i].calls, 1);
        assert_null(r[i].err);
        assert_int_equal(r[i].integer, i + 1);
        assert_true(r[i].seq > last); /* callbacks in the order of the commands */
        last = r[i].seq;
    }
    free(r);
    store_done(s);
}

static void test_unix_socket_and_db(void **state)
{
    char url[300];
    snprintf(url, sizeof(url), "unix:%s?db=3", main_sock);
    gw_store_t *s = store_new(url, 1000);
    res_t r;
    sync_cmd(s, &r, 1, "SET", "hegate:t:db3", "three", NULL);
    assert_null(r.err);
    assert_true(gw_store_is_up(s));
    /* it is in db 3, not in db 0 */
    redisReply *rep = redis_sync(redis_servers[main_idx].port, "EXISTS hegate:t:db3");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_servers[main_idx].port, tv);
    assert_true(c != NULL && c->err == 0);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    rep = redisCommand(c, "GET hegate:t:db3");
    assert_string_equal(rep->str, "three");
    freeReplyObject(rep);
    redisFree(c);
    store_done(s);
}

static void test_cancel(void **state)
{
    gw_store_t *s = store_new(main_url, 500);
    assert_true(wait_up(s, 2000));
    res_t r[100];
    gw_store_req_t *h[100];
    for (int i = 0; i != 100; ++i)
        h[i] = cmd(s, &r[i], 1, "GET", "hegate:t:a", NULL);
    for (int i = 0; i != 100; i += 2)
        gw_store_cancel(h[i]); /* the replies still come back: they must go nowhere */
    run_for(200);
    for (int i = 0; i != 100; ++i)
        assert_int_equal(r[i].calls, i % 2 == 0 ? 0 : 1);
    /* cancel a request that was failing later (store down) */
    gw_store_t *down = store_new("redis://127.0.0.1:1", 500);
    res_t d;
    gw_store_cancel(cmd(down, &d, 1, "GET", "x", NULL));
    run_for(100);
    assert_int_equal(d.calls, 0);
    gw_store_cancel(NULL);
    store_done(down);
    /* requests pending at gw_store_free never call back */
    cmd(s, &r[0], 1, "BLPOP", "hegate:t:nolist", "5", NULL);
    cmd(s, &r[1], 1, "GET", "hegate:t:a", NULL);
    store_done(s);
    run_for(50);
    assert_int_equal(r[0].calls + r[1].calls, 0);
}

static void test_down_store_fails_fast(void **state)
{
    uint16_t port = redis_free_port(0); /* nobody listens there */
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    gw_store_t *s = store_new(url, 2000);
    for (int i = 0; i != 5; ++i) {
        res_t r;
        uint64_t t0 = redis_now_ms();
        cmd(s, &r, 1, "GET", "x", NULL);
        assert_true(run_until(&r.done, 3000));
        assert_non_null(r.err);
        assert_true(r.err == GW_STORE_ERR_DOWN || r.err == GW_STORE_ERR_DISCONNECTED);
        assert_true(r.at - t0 < 200); /* far below the 2 s deadline */
        run_for(30);
    }
    assert_false(gw_store_is_up(s));
    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_int_equal(st.errors, 5);
    store_done(s);
}

static void test_timeout_sigstop(void **state)
{
    gw_store_t *s = store_new(main_url, 100);
    assert_true(wait_up(s, 2000));
    res_t r;
    redis_server_pause(main_idx, 1);
    uint64_t t0 = redis_now_ms();
    cmd(s, &r, 1, "GET", "hegate:t:a", NULL);
    assert_true(run_until(&r.done, 2000));
    uint64_t took = r.at - t0;
    assert_ptr_equal(r.err, GW_STORE_ERR_TIMEOUT);
    assert_true(took >= 90 && took <= 160);
    assert_int_equal(r.calls, 1);
    /* while it stays stopped, every call is bounded by the timeout (fail fast while backing off) */
    uint64_t worst = 0;
    for (int i = 0; i != 30; ++i) {
        t0 = redis_now_ms();
        cmd(s, &r, 1, "GET", "hegate:t:a", NULL);
        assert_true(run_until(&r.done, 2000));
        assert_non_null(r.err);
        if (r.at - t0 > worst)
            worst = r.at - t0;
        run_for(20);
    }
    assert_true(worst <= 160);
    assert_false(gw_store_is_up(s));
    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_true(st.timeouts >= 1);
    /* resumed: back within the back-off maximum, without any help */
    redis_server_pause(main_idx, 0);
    t0 = redis_now_ms();
    assert_true(wait_up(s, 3000));
    assert_true(redis_now_ms() - t0 < 2000);
    sync_cmd(s, &r, 1, "GET", "hegate:t:a", NULL, NULL);
    assert_null(r.err);
    assert_string_equal(r.str, "hello");
    store_done(s);
}

static void test_kill_restart(void **state)
{
    gw_store_t *s = store_new(main_url, 3000);
    assert_true(wait_up(s, 2000));
    res_t blocked, r;
    cmd(s, &blocked, 1, "BLPOP", "hegate:t:nolist", "10", NULL);
    run_for(50);
    uint64_t t0 = redis_now_ms();
    uint16_t port = redis_servers[main_idx].port;
    redis_server_kill(main_idx);
    assert_true(run_until(&blocked.done, 3000));
    assert_ptr_equal(blocked.err, GW_STORE_ERR_DISCONNECTED);
    assert_true(blocked.at - t0 < 500); /* at once, not at the 3 s deadline */
    /* down: fail fast */
    t0 = redis_now_ms();
    cmd(s, &r, 1, "GET", "hegate:t:a", NULL);
    assert_true(run_until(&r.done, 3000));
    assert_non_null(r.err);
    assert_true(r.at - t0 < 200);
    assert_false(gw_store_is_up(s));
    run_for(1500); /* let the back-off grow to its maximum */
    main_idx = redis_server_start(port, 0, 1);
    t0 = redis_now_ms();
    assert_true(wait_up(s, 3000));
    assert_true(redis_now_ms() - t0 < 1500); /* within the back-off maximum (1 s) + margin */
    sync_cmd(s, &r, 1, "SET", "hegate:t:a", "hello", NULL);
    assert_null(r.err);
    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_true(st.disconnects >= 1);
    assert_true(st.connects >= 2);
    store_done(s);
}

/* ---- Lua GCRA ----------------------------------------------------------------------------------------- */

static gw_store_script_t lua;

/* EVALSHA of the limiter script for one request over N keys (one slot) with their (limit, window, burst) */
static void evalsha_n(gw_store_t *s, res_t *r, size_t n, const char *const *keys, const gw_gcra_policy_t *p)
{
    const char *args[5 * GW_RATELIMIT_MAX_POLICIES];
    size_t lens[5 * GW_RATELIMIT_MAX_POLICIES];
    char nums[3 * GW_RATELIMIT_MAX_POLICIES][24], idx[1 + GW_RATELIMIT_MAX_POLICIES];
    size_t na = 0, nn = 0;
    for (size_t i = 0; i != n; ++i) {
        args[na] = keys[i];
        lens[na++] = strlen(keys[i]);
    }
    for (size_t i = 0; i != n; ++i) {
        const uint64_t vals[3] = {p[i].limit, p[i].window_ms, p[i].burst};
        for (size_t j = 0; j != 3; ++j) {
            lens[na] = (size_t)snprintf(nums[nn], 24, "%llu", (unsigned long long)vals[j]);
            args[na++] = nums[nn++];
        }
        idx[1 + i] = (char)i; /* the request uses every key, in order (index 0 is a NUL byte: binary-safe) */
    }
    idx[0] = 1; /* a run of one request */
    args[na] = idx;
    lens[na++] = 1 + n;
    memset(r, 0, sizeof(*r));
    gw_store_evalsha(s, &lua, collect, r, (int)n, (int)na, args, lens);
    assert_int_equal(r->calls, 0);
    assert_true(run_until(&r->done, 3000));
    assert_null(r->err);
    if (r->type != REDIS_REPLY_ARRAY)
        fail_msg("script reply: type %d %s", r->type, r->str);
    assert_int_equal(r->elements, n + 1); /* d_1..d_n, now */
}

static void evalsha(gw_store_t *s, res_t *r, const char *key, uint64_t l, uint64_t w, uint64_t b)
{
    gw_gcra_policy_t p = {l, w, b};
    evalsha_n(s, r, 1, &key, &p);
}

/* the reply of Redis against the pure C function on the same clock (Redis' TIME): same verdict,
 * same numbers, same stored state */
static int replay_n(gw_store_t *s, res_t *r, size_t n, const char *const *keys, const gw_gcra_policy_t *p, gw_gcra_state_t *st)
{
    gw_gcra_result_t g[GW_RATELIMIT_MAX_POLICIES], gl[GW_RATELIMIT_MAX_POLICIES];
    uint64_t d[GW_RATELIMIT_MAX_POLICIES];
    int all = gw_gcra_all(n, p, r->ints[n], st, g);
    assert_true(all >= 0);
    for (size_t i = 0; i != n; ++i)
        d[i] = (uint64_t)r->ints[i];
    assert_int_equal(gw_gcra_results(n, p, d, gl), all);
    for (size_t i = 0; i != n; ++i) {
        assert_int_equal(gl[i].allowed, g[i].allowed);
        assert_int_equal(gl[i].remaining, g[i].remaining);
        assert_int_equal(gl[i].reset_ms, g[i].reset_ms);
        assert_int_equal(gl[i].retry_after_ms, g[i].retry_after_ms);
        /* the stored state is the C state, bit for bit */
        res_t v;
        sync_cmd(s, &v, 1, "GET", keys[i], NULL, NULL);
        if (st[i].tat_ms == 0 && st[i].tat_frac == 0) {
            assert_int_equal(v.type, REDIS_REPLY_NIL);
        } else if (st[i].tat_ms >= r->ints[n]) { /* not expired yet */
            char expect[64];
            snprintf(expect, sizeof(expect), "%lld:%llu", (long long)st[i].tat_ms, (unsigned long long)st[i].tat_frac);
            /* a key may already have expired when tat is within a few ms of now (its TTL runs on Redis' clock,
             * this check on ours, and a loaded run can stall between them): compare when it is there, or
             * when tat is far enough ahead that it must be. tat is on Redis' TIME, a wall clock: compare it
             * with the wall clock (redis_now_ms() is monotonic — compared with it, every tat looked far
             * ahead, and a key that had rightly expired failed the test whenever the GET came late) */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            if (v.type != REDIS_REPLY_NIL || st[i].tat_ms > wall_ms + 100)
                assert_string_equal(v.str, expect);
        }
    }
    return all;
}

static void replay(res_t *r, uint64_t l, uint64_t w, uint64_t b, gw_gcra_state_t *st)
{
    gw_gcra_result_t g;
    gw_gcra_policy_t p = {l, w, b};
    uint64_t d = (uint64_t)r->ints[0];
    gw_gcra_result_t gl;
    assert_int_equal(gw_gcra(l, w, b, r->ints[1], st, &g), 0);
    assert_int_equal(gw_gcra_results(1, &p, &d, &gl), g.allowed);
    assert_int_equal(gl.allowed, g.allowed);
    assert_int_equal(gl.remaining, g.remaining);
    assert_int_equal(gl.reset_ms, g.reset_ms);
    assert_int_equal(gl.retry_after_ms, g.retry_after_ms);
}

/* One script call over NK keys (one slot) with their policies P, for NRUNS runs: COUNT[q] identical
 * requests over the keys whose bits are set in USES[q]. Then every request of every run, with its d
 * derived as the gateway does (gw_gcra_run_admits), against separate gw_gcra_all calls in order on
 * Redis' clock: same verdicts, same numbers. ST: the C states before (updated); ADMITTED[q]: per run. */
static void eval_runs(gw_store_t *s, size_t nk, const char *const *keys, const gw_gcra_policy_t *p, size_t nruns,
                      const int *count, const int *uses, gw_gcra_state_t *st, size_t *admitted)
{
    enum { MAXK = 3, MAXR = 16 };
    const char *args[MAXK + 3 * MAXK + MAXR];
    size_t lens[MAXK + 3 * MAXK + MAXR], na = 0, nd = 0;
    char nums[3 * MAXK][24], rs[MAXR][1 + MAXK];
    res_t r;
    assert_true(nk <= MAXK && nruns <= MAXR);
    for (size_t k = 0; k != nk; ++k) {
        args[na] = keys[k];
        lens[na++] = strlen(keys[k]);
    }
    for (size_t k = 0; k != nk; ++k) {
        const unsigned long long vals[3] = {p[k].limit, p[k].window_ms, p[k].burst};
        for (size_t j = 0; j != 3; ++j) {
            lens[na] = (size_t)snprintf(nums[3 * k + j], 24, "%llu", vals[j]);
            args[na++] = nums[3 * k + j];
        }
    }
    for (size_t q = 0; q != nruns; ++q) {
        size_t m = 0;
        rs[q][0] = (char)count[q];
        for (size_t k = 0; k != nk; ++k)
            if (uses[q] & (1 << k))
                rs[q][1 + m++] = (char)k;
        args[na] = rs[q];
        lens[na++] = 1 + m;
        nd += m;
    }
    memset(&r, 0, sizeof(r));
    gw_store_evalsha(s, &lua, collect, &r, (int)nk, (int)na, args, lens);
    assert_true(run_until(&r.done, 3000));
    assert_null(r.err);
    assert_int_equal(r.elements, nd + 1);
    int64_t now = r.ints[nd];
    size_t off = 0;
    for (size_t q = 0; q != nruns; ++q) {
        gw_gcra_policy_t qp[MAXK];
        size_t m = 0, which[MAXK];
        uint64_t d0[MAXK];
        for (size_t k = 0; k != nk; ++k)
            if (uses[q] & (1 << k)) {
                which[m] = k;
                qp[m] = p[k];
                d0[m] = (uint64_t)r.ints[off + m];
                ++m;
            }
        uint64_t admits = gw_gcra_run_admits(m, qp, d0, (uint64_t)count[q]);
        admitted[q] = 0;
        for (int j = 0; j != count[q]; ++j) { /* request j of the run */
            gw_gcra_state_t qs[MAXK];
            gw_gcra_result_t g[MAXK], gl[MAXK];
            uint64_t d[MAXK];
            for (size_t i = 0; i != m; ++i) {
                qs[i] = st[which[i]];
                d[i] = d0[i] + ((uint64_t)j < admits ? (uint64_t)j : admits) * qp[i].window_ms;
            }
            int all = gw_gcra_all(m, qp, now, qs, g);
            assert_int_equal(gw_gcra_results(m, qp, d, gl), all);
            for (size_t i = 0; i != m; ++i) {
                assert_int_equal(gl[i].allowed, g[i].allowed);
                assert_int_equal(gl[i].remaining, g[i].remaining);
                assert_int_equal(gl[i].reset_ms, g[i].reset_ms);
                assert_int_equal(gl[i].retry_after_ms, g[i].retry_after_ms);
                st[which[i]] = qs[i];
            }
            admitted[q] += all == 1;
        }
        assert_int_equal(admitted[q], admits);
        off += m;
    }
}

/* Redis holds the C states KEYS[0..n) = ST, bit for bit */
static void assert_states(gw_store_t *s, size_t n, const char *const *keys, const gw_gcra_state_t *st)
{
    for (size_t k = 0; k != n; ++k) {
        char expect[64];
        res_t r;
        snprintf(expect, sizeof(expect), "%lld:%llu", (long long)st[k].tat_ms, (unsigned long long)st[k].tat_frac);
        sync_cmd(s, &r, 1, "GET", keys[k], NULL, NULL);
        assert_string_equal(r.str, expect);
    }
}

static void test_lua_matches_pure(void **state)
{
    gw_store_t *s = store_new(main_url, 1000);
    gw_store_preload(s, &lua);
    assert_true(wait_up(s, 2000));
    res_t r;
    const char *k1 = "hegate:rl:{t:lua}:1", *k2 = "hegate:rl:{t:lua}:2", *k3 = "hegate:rl:{t:lua}:3", *k4 = "hegate:rl:{t:lua}:4";
    sync_cmd(s, &r, 1, "DEL", k1, NULL, NULL);
    sync_cmd(s, &r, 1, "DEL", k2, NULL, NULL);
    sync_cmd(s, &r, 1, "DEL", k3, NULL, NULL);
    sync_cmd(s, &r, 1, "DEL", k4, NULL, NULL);
    /* a long window: exact burst, then denials with the same numbers as the C code */
    gw_gcra_state_t st = {0, 0};
    int allowed = 0;
    for (int i = 0; i != 15; ++i) {
        evalsha(s, &r, k1, 5, 3600000, 10);
        replay(&r, 5, 3600000, 10, &st);
        allowed += r.ints[0] + 3600000 <= 10 * 3600000;
    }
    assert_int_equal(allowed, 10);
    /* the stored state is the C state, and expires when the key is full again */
    sync_cmd(s, &r, 1, "GET", k1, NULL, NULL);
    char expect[64];
    snprintf(expect, sizeof(expect), "%lld:%llu", (long long)st.tat_ms, (unsigned long long)st.tat_frac);
    assert_string_equal(r.str, expect);
    sync_cmd(s, &r, 1, "PTTL", k1, NULL, NULL);
    assert_true(r.integer > 7100000 && r.integer <= 7200000);
    /* real time passing, fractional interval (333.3 ms): still identical */
    gw_gcra_state_t st2 = {0, 0};
    for (int i = 0; i != 25; ++i) {
        evalsha(s, &r, k2, 3, 1000, 3);
        replay(&r, 3, 1000, 3, &st2);
        run_for(37);
    }
    /* several keys in one call, all or nothing: A (tight: 3 per hour) and B (loose) in one slot; the
     * requests A refuses leave B untouched, in Redis as in C. Large values too: a limit near 2^50
     * (fractions of 16 digits) and tat far beyond 2^32 ms. */
    {
        const char *keys[] = {k3, k4};
        gw_gcra_policy_t p[] = {{3, 3600000, 3}, {((uint64_t)1 << 50) - 3, 1000, 1000}};
        gw_gcra_state_t sts[2] = {{0, 0}, {0, 0}};
        int admitted = 0;
        for (int i = 0; i != 12; ++i) {
            evalsha_n(s, &r, 2, keys, p);
            admitted += replay_n(s, &r, 2, keys, p, sts);
        }
        assert_int_equal(admitted, 3);
        /* the order of the keys does not matter */
        const char *rkeys[] = {k4, k3};
        gw_gcra_policy_t rp[] = {p[1], p[0]};
        gw_gcra_state_t rsts[2] = {sts[1], sts[0]};
        evalsha_n(s, &r, 2, rkeys, rp);
        assert_int_equal(replay_n(s, &r, 2, rkeys, rp, rsts), 0);
    }
    /* a corrupt value is a fresh key; a state far ahead (clock went back) is clamped and stored */
    sync_cmd(s, &r, 1, "SET", k1, "garbage", NULL);
    evalsha(s, &r, k1, 5, 3600000, 10);
    assert_int_equal(r.ints[0], 0);
    sync_cmd(s, &r, 1, "SET", k1, "99999999999999:0", NULL);
    evalsha(s, &r, k1, 5, 3600000, 10);
    assert_int_equal(r.ints[0], 10 * 3600000); /* d = tau: refused */
    sync_cmd(s, &r, 1, "GET", k1, NULL, NULL);
    long long now = 0;
    assert_int_equal(sscanf(r.str, "%lld:", &now) == 1, 1);
    assert_true(now < 99999999999999LL); /* repaired */
    /* a batch: many requests in one call, some over one key, some over two, some repeating a key; Redis
     * runs them one after the other exactly as the C code does, each all or nothing */
    {
        const char *bk[] = {k3, k4};
        gw_gcra_policy_t bp[] = {{4, 3600000, 4}, {6, 3600000, 6}};
        sync_cmd(s, &r, 1, "DEL", k3, NULL, NULL);
        sync_cmd(s, &r, 1, "DEL", k4, NULL, NULL);
        /* requests (runs of one each): which keys each uses (bit 0: k3, bit 1: k4) */
        static const int uses[] = {1, 3, 2, 3, 3, 1, 2, 3, 3, 2, 2, 1, 3, 2}, ones[14] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        gw_gcra_state_t bst[2] = {{0, 0}, {0, 0}};
        size_t admitted[14], total = 0;
        eval_runs(s, 2, bk, bp, 14, ones, uses, bst, admitted);
        for (size_t q = 0; q != 14; ++q)
            total += admitted[q];
        /* k3 allows 4, k4 allows 6; the two-key requests consume both or neither */
        assert_int_equal(total, 7);
        assert_states(s, 2, bk, bst);
    }
    /* runs: c identical requests sent once (a count byte before the key indexes); Redis answers d before
     * each run's first request, and every request of the run, derived with gw_gcra_run_admits, gets the
     * verdict and numbers of c separate calls in a row. A run stopped midway by one of its keys, a run
     * refused outright, and a run over a state far ahead (clamped, repaired though refused). */
    {
        const char *rk[] = {k3, k4, k1};
        gw_gcra_policy_t rp[] = {{4, 3600000, 4}, {6, 3600000, 6}, {5, 3600000, 10}};
        sync_cmd(s, &r, 1, "DEL", k3, NULL, NULL);
        sync_cmd(s, &r, 1, "DEL", k4, NULL, NULL);
        sync_cmd(s, &r, 1, "SET", k1, "99999999999999:0", NULL);
        static const int count[] = {3, 5, 2, 1, 3, 60}, uses[] = {2, 3, 2, 1, 4, 1}; /* bit k: key rk[k] */
        gw_gcra_state_t rst[3] = {{0, 0}, {0, 0}, {99999999999999LL, 0}};
        size_t admitted[6];
        eval_runs(s, 3, rk, rp, 6, count, uses, rst, admitted);
        /* k4 admits 3 of the first run, then 3 of the second (k3 alone would take 4), none of the third */
        assert_int_equal(admitted[0], 3);
        assert_int_equal(admitted[1], 3);
        assert_int_equal(admitted[2], 0);
        assert_int_equal(admitted[3], 1); /* k3's last */
        assert_int_equal(admitted[4], 0); /* clamped */
        assert_int_equal(admitted[5], 0);
        assert_states(s, 3, rk, rst); /* k1: repaired */
        assert_true(rst[2].tat_ms < 99999999999999LL);
    }
    /* NOSCRIPT: the script cache is flushed behind our back; EVAL takes over, once */
    sync_cmd(s, &r, 1, "DEL", k1, NULL, NULL);
    st = (gw_gcra_state_t){0, 0};
    redisReply *rep = redis_sync(redis_servers[main_idx].port, "SCRIPT FLUSH");
    freeReplyObject(rep);
    evalsha(s, &r, k1, 5, 3600000, 10);
    replay(&r, 5, 3600000, 10, &st);
    gw_store_stats_t stats;
    gw_store_get_stats(s, &stats);
    assert_int_equal(stats.noscript, 1);
    evalsha(s, &r, k1, 5, 3600000, 10); /* EVAL cached it again */
    gw_store_get_stats(s, &stats);
    assert_int_equal(stats.noscript, 1);
    store_done(s);
}

/* ---- rate limits through the store --------------------------------------------------------------------- */

typedef struct {
    int done;
    gw_ratelimit_verdict_t *v;
} verdict_wait_t;

static void on_verdict(void *data, gw_ratelimit_verdict_t *v)
{
    verdict_wait_t *w = data;
    ++w->done;
    w->v = v;
}

/* runs one check to its verdict; returns 1 if it needed the loop (store round trip) */
static int check_one(gw_ratelimit_ctx_t *ctx, const gw_ratelimit_conf_t *p, const char *key, gw_ratelimit_verdict_t *v)
{
    h2o_iovec_t k = {(char *)key, strlen(key)};
    verdict_wait_t w = {0, NULL};
    memset(v, 0x5a, sizeof(*v));
    gw_ratelimit_check_t *c = gw_ratelimit_check(ctx, &p, &k, 1, v, on_verdict, &w);
    if (c == NULL) {
        assert_int_equal(w.done, 0);
        return 0;
    }
    assert_int_equal(w.done, 0);
    assert_true(run_until(&w.done, 3000));
    assert_int_equal(w.done, 1);
    assert_ptr_equal(w.v, v);
    return 1;
}

static int shared_budget(gw_ratelimit_ctx_t *ctx1, gw_ratelimit_ctx_t *ctx2, const gw_ratelimit_conf_t *p, const char *key, int n)
{
    int allowed = 0;
    gw_ratelimit_verdict_t v;
    for (int i = 0; i != n; ++i) {
        check_one(i % 2 ? ctx2 : ctx1, p, key, &v);
        assert_int_equal(v.n, 1);
        if (v.verdict == GW_RL_ALLOW) {
            assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
            assert_int_equal(v.results[0].remaining, p->burst - 1 - (uint64_t)allowed);
            ++allowed;
        } else {
            assert_int_equal(v.verdict, GW_RL_DENY);
            assert_true(v.results[0].source == GW_RL_SOURCE_STORE || v.results[0].source == GW_RL_SOURCE_CACHE);
            /* one interval: 3600 s / 5 = 720 s */
            assert_int_equal(v.retry_after_s, 720);
            assert_int_equal(v.results[0].remaining, 0);
        }
    }
    return allowed;
}

static void test_two_nodes_share_budget(void **state)
{
    /* two stores and two limiter contexts: two gateway nodes sharing one Redis */
    gw_store_t *s1 = store_new(main_url, 1000), *s2 = store_new(main_url, 1000);
    gw_ratelimit_ctx_t *c1 = ctx_new(s1, GW_STORE_DOWN_LOCAL, 2, 1);
    gw_ratelimit_ctx_t *c2 = ctx_new(s2, GW_STORE_DOWN_LOCAL, 2, 1);
    assert_true(wait_up(s1, 2000) && wait_up(s2, 2000));
    res_t r;
    sync_cmd(s1, &r, 1, "DEL", "hegate:rl:{ip:198.51.100.7}:shared", NULL, NULL);
    gw_ratelimit_conf_t p = {"shared", GW_LIMIT_KEY_IP, 5, 3600000, 10, 1};
    assert_int_equal(shared_budget(c1, c2, &p, "198.51.100.7", 40), 10);
    /* after the first denial each node answers from its deny cache: no more round trips */
    gw_ratelimit_stats_t st1, st2;
    gw_ratelimit_get_stats(c1, &st1);
    gw_ratelimit_get_stats(c2, &st2);
    assert_int_equal(st1.checks + st2.checks, 40);
    assert_true(st1.cache_hits >= 10 && st2.cache_hits >= 10);
    assert_int_equal(st1.store_checks + st2.store_checks + st1.cache_hits + st2.cache_hits, 40);
    /* headers of a denied request */
    gw_ratelimit_verdict_t v;
    check_one(c1, &p, "198.51.100.7", &v);
    char buf[128];
    const gw_ratelimit_conf_t *pp = &p;
    gw_ratelimit_format_policy(buf, sizeof(buf), &pp, 1);
    assert_string_equal(buf, "\"shared\";q=5;w=3600");
    gw_ratelimit_format_state(buf, sizeof(buf), v.results, v.n);
    assert_true(strncmp(buf, "\"shared\";r=0;t=", 15) == 0);

    /* two policies of one identity (one slot): ONE script call, all or nothing. "aon-tight" (3 per
     * hour) refuses after 3; the refused requests do not consume "aon-loose" (10 per hour) */
    {
        gw_ratelimit_conf_t tight = {"aon-tight", GW_LIMIT_KEY_IP, 3, 3600000, 3, 1};
        gw_ratelimit_conf_t loose = {"aon-loose", GW_LIMIT_KEY_IP, 10, 3600000, 10, 1};
        const gw_ratelimit_conf_t *tl[] = {&loose, &tight};
        h2o_iovec_t ip2[] = {{"198.51.100.8", 12}, {"198.51.100.8", 12}};
        sync_cmd(s1, &r, 1, "DEL", "hegate:rl:{ip:198.51.100.8}:aon-tight", NULL, NULL);
        sync_cmd(s1, &r, 1, "DEL", "hegate:rl:{ip:198.51.100.8}:aon-loose", NULL, NULL);
        gw_ratelimit_ctx_t *c3 = ctx_new(s2, GW_STORE_DOWN_CLOSED, 1, 1);
        gw_store_stats_t b0, b1;
        gw_store_get_stats(s2, &b0);
        int ok = 0, refused = 0;
        for (int i = 0; i != 8; ++i) {
            verdict_wait_t w = {0, NULL};
            /* a fresh context each time for the refusals: no deny cache, Redis answers every time */
            gw_ratelimit_ctx_t *cx = i < 3 ? c3 : ctx_new(s2, GW_STORE_DOWN_CLOSED, 1, 1);
            gw_ratelimit_check_t *c = gw_ratelimit_check(cx, tl, ip2, 2, &v, on_verdict, &w);
            assert_non_null(c);
            assert_true(run_until(&w.done, 2000));
            assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
            assert_int_equal(v.results[1].source, GW_RL_SOURCE_STORE);
            if (v.verdict == GW_RL_ALLOW) {
                ++ok;
                assert_int_equal(v.results[0].remaining, 10 - (uint64_t)ok);
            } else {
                ++refused;
                assert_true(v.results[0].allowed); /* the loose policy would admit it... */
                assert_int_equal(v.results[0].remaining, 7); /* ...and is not charged */
                assert_false(v.results[1].allowed);
                assert_int_equal(v.retry_after_s, 1200);
            }
            if (cx != c3)
                ctx_done(cx);
        }
        assert_int_equal(ok, 3);
        assert_int_equal(refused, 5);
        gw_store_get_stats(s2, &b1);
        assert_int_equal(b1.commands - b0.commands, 8); /* one call per request for both policies */
        /* in Redis: loose charged 3 times only (its tat is 3 intervals = 3 x 360 s ahead) */
        sync_cmd(s1, &r, 1, "PTTL", "hegate:rl:{ip:198.51.100.8}:aon-loose", NULL, NULL);
        assert_true(r.integer > 3 * 360000 - 10000 && r.integer <= 3 * 360000);
        ctx_done(c3);
    }

    /* policies of different identities (user, client: different slots) against one Redis: one call,
     * all or nothing over both (a cluster groups them by slot: test_cluster_routing) */
    gw_ratelimit_conf_t a = {"pa", GW_LIMIT_KEY_USER, 100, 1000, 100, 1}, b = {"pb", GW_LIMIT_KEY_CLIENT, 7, 1000, 7, 1};
    const gw_ratelimit_conf_t *ps[] = {&a, &b};
    h2o_iovec_t keys[] = {{"u1", 2}, {"c1", 2}};
    gw_store_stats_t before, after;
    gw_store_get_stats(s1, &before);
    verdict_wait_t w = {0, NULL};
    gw_ratelimit_check_t *c = gw_ratelimit_check(c1, ps, keys, 2, &v, on_verdict, &w);
    assert_non_null(c);
    assert_true(run_until(&w.done, 2000));
    gw_store_get_stats(s1, &after);
    assert_int_equal(after.commands - before.commands, 1);
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
    assert_int_equal(v.results[1].source, GW_RL_SOURCE_STORE);
    assert_true(v.results[1].remaining <= 6);
    /* a cancelled check never calls back, even though Redis answers */
    w.done = 0;
    c = gw_ratelimit_check(c1, ps, keys, 2, &v, on_verdict, &w);
    assert_non_null(c);
    gw_ratelimit_cancel(c);
    run_for(100);
    assert_int_equal(w.done, 0);
    /* a check still in flight when the context goes away: no callback either */
    c = gw_ratelimit_check(c2, ps, keys, 2, &v, on_verdict, &w);
    assert_non_null(c);
    ctx_done(c1);
    ctx_done(c2);
    run_for(50);
    assert_int_equal(w.done, 0);
    store_done(s1);
    store_done(s2);
}

/* what one thread checks in one loop iteration goes to Redis as one script call (at most 64 requests
 * each), evaluated in order exactly like separate calls; a check cancelled before the batch leaves is
 * not sent and costs nothing */
typedef struct {
    int done, order;
    gw_ratelimit_verdict_t v;
} batch_wait_t;

static int batch_seq;

static void on_batch_verdict(void *data, gw_ratelimit_verdict_t *v)
{
    batch_wait_t *w = data;
    ++w->done;
    w->order = ++batch_seq;
}

static void test_ratelimit_batches(void **state)
{
    gw_store_t *s = store_new(main_url, 1000);
    gw_ratelimit_ctx_t *ctx = ctx_new(s, GW_STORE_DOWN_CLOSED, 1, 1);
    assert_true(wait_up(s, 2000));
    res_t r;
    sync_cmd(s, &r, 1, "DEL", "hegate:rl:{ip:203.0.113.9}:batch", NULL, NULL);
    sync_cmd(s, &r, 1, "DEL", "hegate:rl:{ip:203.0.113.10}:batch", NULL, NULL);
    gw_ratelimit_conf_t p = {"batch", GW_LIMIT_KEY_IP, 12, 3600000, 12, 1};
    const gw_ratelimit_conf_t *pp = &p;
    h2o_iovec_t k9 = {"203.0.113.9", 11}, k10 = {"203.0.113.10", 12}, k11 = {"203.0.113.11", 12};
    sync_cmd(s, &r, 1, "DEL", "hegate:rl:{ip:203.0.113.11}:batch", NULL, NULL);
    enum { N = 150 };
    static batch_wait_t w[N];
    gw_ratelimit_check_t *c[N];
    gw_store_stats_t b0, b1;
    gw_ratelimit_stats_t r0, r1;
    gw_store_get_stats(s, &b0);
    gw_ratelimit_get_stats(ctx, &r0);
    batch_seq = 0;
    /* all submitted without running the loop: one iteration's worth (the first two batches leave as
     * soon as they are full). Request 140, in the batch still collecting, is cancelled before it
     * leaves; every 10th request is for another address */
    for (int i = 0; i != N; ++i) {
        memset(&w[i], 0, sizeof(w[i]));
        c[i] = gw_ratelimit_check(ctx, &pp, i == 140 ? &k11 : i % 10 == 9 ? &k10 : &k9, 1, &w[i].v, on_batch_verdict, &w[i]);
        assert_non_null(c[i]);
    }
    gw_ratelimit_cancel(c[140]);
    int all = 0;
    uint64_t until = redis_now_ms() + 3000;
    while (all != N - 1 && redis_now_ms() < until) {
        h2o_evloop_run(loop, 10);
        all = 0;
        for (int i = 0; i != N; ++i)
            all += w[i].done;
    }
    assert_int_equal(all, N - 1);
    assert_int_equal(w[140].done, 0);
    gw_store_get_stats(s, &b1);
    gw_ratelimit_get_stats(ctx, &r1);
    assert_int_equal(r1.store_calls - r0.store_calls, 3); /* 150 checks: 64 + 64 + 22 */
    assert_int_equal(b1.commands - b0.commands, 3);
    /* in submission order per address: the first 12 live ones admitted with r = 11, 10, ..., 0 */
    int ok9 = 0, ok10 = 0, prev = 0;
    for (int i = 0; i != N; ++i) {
        if (i == 140)
            continue;
        assert_true(w[i].order > prev); /* verdicts come back in submission order */
        prev = w[i].order;
        assert_int_equal(w[i].v.results[0].source, GW_RL_SOURCE_STORE);
        int *ok = i % 10 == 9 ? &ok10 : &ok9;
        if (w[i].v.verdict == GW_RL_ALLOW) {
            assert_true(*ok < 12);
            ++*ok;
            assert_int_equal(w[i].v.results[0].remaining, 12 - (uint64_t)*ok);
        } else {
            assert_int_equal(*ok, 12);
            assert_int_equal(w[i].v.verdict, GW_RL_DENY);
        }
    }
    assert_int_equal(ok9, 12);
    assert_int_equal(ok10, 12);
    /* Redis holds exactly 12 admissions per address, and nothing for the cancelled request's */
    sync_cmd(s, &r, 1, "PTTL", "hegate:rl:{ip:203.0.113.9}:batch", NULL, NULL);
    assert_true(r.integer > 12 * 300000 - 10000 && r.integer <= 12 * 300000);
    sync_cmd(s, &r, 1, "EXISTS", "hegate:rl:{ip:203.0.113.11}:batch", NULL, NULL);
    assert_int_equal(r.integer, 0);
    ctx_done(ctx);
    store_done(s);
}

static void test_ratelimit_store_down_and_back(void **state)
{
    gw_store_t *s = store_new(main_url, 200);
    gw_ratelimit_ctx_t *ctx = ctx_new(s, GW_STORE_DOWN_LOCAL, 1, 1);
    assert_true(wait_up(s, 2000));
    gw_ratelimit_conf_t p = {"recov", GW_LIMIT_KEY_IP, 1000, 1000, 1000, 1};
    gw_ratelimit_verdict_t v;
    assert_int_equal(check_one(ctx, &p, "203.0.113.9", &v), 1);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
    /* paused: the check waits at most the timeout, then the local mode answers */
    redis_server_pause(main_idx, 1);
    uint64_t t0 = redis_now_ms();
    assert_int_equal(check_one(ctx, &p, "203.0.113.9", &v), 1);
    assert_true(redis_now_ms() - t0 <= 260);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_LOCAL);
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    /* known down: answered at once, without the loop */
    assert_int_equal(check_one(ctx, &p, "203.0.113.9", &v), 0);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_LOCAL);
    /* back: Redis decides again, no restart */
    redis_server_pause(main_idx, 0);
    assert_true(wait_up(s, 3000));
    assert_int_equal(check_one(ctx, &p, "203.0.113.9", &v), 1);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
    gw_ratelimit_stats_t st;
    gw_ratelimit_get_stats(ctx, &st);
    assert_int_equal(st.store_failures, 1);
    assert_int_equal(st.local_checks, 2);
    ctx_done(ctx);
    store_done(s);
}

static redisReply *admin_cmd(const char *password, const char *fmt, const char *arg)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_servers[main_idx].port, tv);
    assert_true(c != NULL && c->err == 0);
    if (password != NULL)
        freeReplyObject(redisCommand(c, "AUTH %s", password));
    redisReply *r = redisCommand(c, fmt, arg);
    redisFree(c);
    return r;
}

static void test_auth(void **state)
{
    char url[128];
    uint16_t port = redis_servers[main_idx].port;
    freeReplyObject(admin_cmd(NULL, "ACL SETUSER gw on >%s ~* &* +@all", "gw-pass"));
    freeReplyObject(admin_cmd(NULL, "CONFIG SET requirepass %s", "s3cret"));
    /* password only (the default user), then an ACL user */
    snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%u", port);
    gw_store_t *s1 = store_new(url, 1000);
    snprintf(url, sizeof(url), "redis://gw:gw-pass@127.0.0.1:%u/2", port);
    gw_store_t *s2 = store_new(url, 1000);
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%u", port);
    gw_store_t *s3 = store_new(url, 1000);
    assert_true(wait_up(s1, 2000));
    assert_true(wait_up(s2, 2000));
    res_t r;
    sync_cmd(s1, &r, 1, "SET", "hegate:t:auth", "ok", NULL);
    assert_string_equal(r.str, "OK");
    sync_cmd(s2, &r, 1, "SET", "hegate:t:auth", "ok", NULL);
    assert_string_equal(r.str, "OK");
    /* refused credentials: never up, and callers are answered fast, not at the deadline */
    run_for(100);
    assert_false(gw_store_is_up(s3));
    uint64_t t0 = redis_now_ms();
    cmd(s3, &r, 1, "GET", "hegate:t:auth", NULL);
    assert_true(run_until(&r.done, 2000));
    assert_non_null(r.err);
    assert_true(r.at - t0 < 500);
    freeReplyObject(admin_cmd("s3cret", "CONFIG SET requirepass %s", ""));
    freeReplyObject(admin_cmd(NULL, "ACL DELUSER %s", "gw"));
    store_done(s1);
    store_done(s2);
    store_done(s3);
}

/* ---- round trips per second, for the record ----------------------------------------------------------- */

typedef struct {
    gw_store_t *s;
    long sent, done, target, errors;
    int window;
} bench_t;

static void bench_cb(void *data, const redisReply *reply, const char *err)
{
    bench_t *b = data;
    ++b->done;
    if (err != NULL || reply->type == REDIS_REPLY_ERROR)
        ++b->errors;
    if (b->sent < b->target) {
        static const char *argv[] = {"GET", "hegate:t:a"};
        ++b->sent;
        gw_store_command(b->s, bench_cb, b, 1, 2, argv, NULL);
    }
}

static double bench(gw_store_t *s, long n, int window)
{
    static const char *argv[] = {"GET", "hegate:t:a"};
    bench_t b = {s, 0, 0, n, 0, window};
    uint64_t t0 = redis_now_ms();
    for (int i = 0; i != window && b.sent < n; ++i) {
        ++b.sent;
        gw_store_command(s, bench_cb, &b, 1, 2, argv, NULL);
    }
    while (b.done < n)
        h2o_evloop_run(loop, 10);
    assert_int_equal(b.errors, 0);
    uint64_t ms = redis_now_ms() - t0;
    return (double)n * 1000.0 / (double)(ms != 0 ? ms : 1);
}

static void test_roundtrips_per_second(void **state)
{
    gw_store_t *s = store_new(main_url, 5000);
    assert_true(wait_up(s, 2000));
    double seq = bench(s, 20000, 1);
    double pip = bench(s, 200000, 256);
    printf("# store round trips from one thread: %.0f/s one at a time, %.0f/s with 256 in flight (GET, loopback)\n", seq, pip);
    store_done(s);
}

/* ---- Redis Cluster ---------------------------------------------------------------------------------------- */

static int cl_idx[6];
static char cl_seed[64];

static gw_store_t *cluster_store(uint64_t timeout_ms)
{
    char *seeds[] = {cl_seed};
    gw_store_conf_t conf = {NULL, seeds, 1, timeout_ms, 0, 0};
    return store_create(&conf);
}

/* a live cluster node to ask */
static uint16_t live_port(void)
{
    for (int i = 0; i != 6; ++i)
        if (redis_servers[cl_idx[i]].pid > 0)
            return redis_servers[cl_idx[i]].port;
    return 0;
}

static void test_cluster_routing(void **state)
{
    enum { N = 60 };
    gw_store_t *s = cluster_store(1000);
    res_t r[N];
    char keys[N][32], vals[N][16];
    /* straight away: the slot map is not known yet, MOVED leads the way */
    for (int i = 0; i != N; ++i) {
        snprintf(keys[i], sizeof(keys[i]), "hegate:c:{k%d}", i);
        snprintf(vals[i], sizeof(vals[i]), "v%d", i);
        cmd(s, &r[i], 1, "SET", keys[i], vals[i], NULL);
    }
    for (int i = 0; i != N; ++i) {
        assert_true(run_until(&r[i].done, 5000));
        if (r[i].err != NULL)
            fprintf(stderr, "key %d: err=%s type=%d str=%s\n", i, r[i].err ? r[i].err : "-", r[i].type, r[i].str);
        assert_null(r[i].err);
        assert_string_equal(r[i].str, "OK");
    }
    assert_true(wait_up(s, 5000));
    /* every key sits on the master that owns its slot */
    for (int i = 0; i != N; ++i) {
        uint16_t owner = redis_cluster_owner(live_port(), gw_store_key_slot(keys[i], strlen(keys[i])));
        redisReply *rep = redis_sync(owner, "GET %s", keys[i]);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_string_equal(rep->str, vals[i]);
        freeReplyObject(rep);
    }
    /* with the map: straight to the owner, no redirection */
    gw_store_stats_t before, after;
    gw_store_get_stats(s, &before);
    for (int round = 0; round != 5; ++round) {
        for (int i = 0; i != N; ++i)
            cmd(s, &r[i], 1, "GET", keys[i], NULL);
        for (int i = 0; i != N; ++i) {
            assert_true(run_until(&r[i].done, 3000));
            assert_string_equal(r[i].str, vals[i]);
        }
    }
    gw_store_get_stats(s, &after);
    assert_int_equal(after.moved, before.moved);
    assert_int_equal(after.ask, 0);
    assert_true(after.refreshes >= 1);
    assert_int_equal(after.errors, 0);
    /* a keyless command goes to any master */
    sync_cmd(s, &r[0], GW_STORE_NO_KEY, "PING", NULL, NULL, NULL);
    assert_string_equal(r[0].str, "PONG");

    /* two nodes sharing one budget through the cluster, exactly */
    gw_store_t *s2 = cluster_store(1000);
    assert_true(wait_up(s2, 5000));
    gw_ratelimit_ctx_t *c1 = ctx_new(s, GW_STORE_DOWN_LOCAL, 2, 1);
    gw_ratelimit_ctx_t *c2 = ctx_new(s2, GW_STORE_DOWN_LOCAL, 2, 1);
    gw_ratelimit_conf_t p = {"shared", GW_LIMIT_KEY_IP, 5, 3600000, 10, 1};
    char key[64];
    for (int k = 0; k != 3; ++k) { /* keys on different masters */
        snprintf(key, sizeof(key), "192.0.2.%d", k * 37);
        char skey[128];
        assert_true(gw_ratelimit_store_key(skey, sizeof(skey), &p, key, strlen(key)) != 0);
        sync_cmd(s, &r[0], 1, "DEL", skey, NULL, NULL);
        assert_null(r[0].err);
        assert_int_equal(shared_budget(c1, c2, &p, key, 30), 10);
    }
    ctx_done(c1);
    ctx_done(c2);
    store_done(s2);
    store_done(s);
}

static void test_cluster_moved_ask(void **state)
{
    gw_store_t *s = cluster_store(1000);
    assert_true(wait_up(s, 5000));
    const char *k1 = "hegate:c:{mig}", *k2 = "hegate:c:{mig}:new";
    unsigned slot = gw_store_key_slot(k1, strlen(k1));
    uint16_t a = redis_cluster_owner(live_port(), slot), b = 0;
    for (unsigned probe = 0; b == 0 && probe < 16384; probe += 100) {
        uint16_t o = redis_cluster_owner(live_port(), probe);
        if (o != a)
            b = o;
    }
    assert_true(a != 0 && b != 0);
    char ida[64], idb[64];
    assert_int_equal(redis_cluster_myid(a, ida, sizeof(ida)), 0);
    assert_int_equal(redis_cluster_myid(b, idb, sizeof(idb)), 0);
    res_t r;
    sync_cmd(s, &r, 1, "SET", k1, "v1", NULL);
    assert_string_equal(r.str, "OK");

    /* migration under way: a key A does not have -> ASK B */
    redisReply *rep = redis_sync(b, "CLUSTER SETSLOT %u IMPORTING %s", slot, ida);
    assert_string_equal(rep->str, "OK");
    freeReplyObject(rep);
    rep = redis_sync(a, "CLUSTER SETSLOT %u MIGRATING %s", slot, idb);
    assert_string_equal(rep->str, "OK");
    freeReplyObject(rep);
    sync_cmd(s, &r, 1, "SET", k2, "v2", NULL);
    assert_null(r.err);
    assert_string_equal(r.str, "OK");
    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_int_equal(st.ask, 1);
    assert_int_equal(st.moved, 0);

    /* finish the move: A answers MOVED, the store follows and learns */
    rep = redis_sync(a, "MIGRATE 127.0.0.1 %u %s 0 5000", b, k1);
    assert_non_null(rep);
    assert_string_equal(rep->str, "OK");
    freeReplyObject(rep);
    for (int i = 0; i != 6; ++i) {
        uint16_t port = redis_servers[cl_idx[i]].port;
        rep = redis_sync(port, "CLUSTER SETSLOT %u NODE %s", slot, idb);
        if (rep != NULL)
            freeReplyObject(rep);
    }
    sync_cmd(s, &r, 1, "GET", k1, NULL, NULL);
    assert_null(r.err);
    assert_string_equal(r.str, "v1");
    gw_store_get_stats(s, &st);
    assert_int_equal(st.moved, 1);
    sync_cmd(s, &r, 1, "GET", k2, NULL, NULL);
    assert_string_equal(r.str, "v2");
    run_for(200); /* the background refresh */
    sync_cmd(s, &r, 1, "GET", k1, NULL, NULL);
    gw_store_get_stats(s, &st);
    assert_int_equal(st.moved, 1); /* the map knows now */
    assert_int_equal(st.errors, 0);
    store_done(s);
}

static void test_cluster_failover(void **state)
{
    gw_store_t *s = cluster_store(500);
    gw_ratelimit_ctx_t *ctx = ctx_new(s, GW_STORE_DOWN_LOCAL, 1, 1);
    assert_true(wait_up(s, 5000));
    const char *k = "hegate:c:{failover}";
    res_t r;
    sync_cmd(s, &r, 1, "SET", k, "before", NULL);
    assert_string_equal(r.str, "OK");
    uint16_t old = redis_cluster_owner(live_port(), gw_store_key_slot(k, strlen(k)));
    int victim = -1;
    for (int i = 0; i != 6; ++i)
        if (redis_servers[cl_idx[i]].port == old)
            victim = cl_idx[i];
    assert_true(victim >= 0);
    redis_server_kill(victim);

    /* keep writing; every call is bounded; after the replica is promoted, writes succeed again */
    uint64_t t0 = redis_now_ms(), worst = 0;
    int ok = 0;
    while (!ok && redis_now_ms() - t0 < 30000) {
        uint64_t t1 = redis_now_ms();
        cmd(s, &r, 1, "SET", k, "after", NULL);
        assert_true(run_until(&r.done, 3000));
        if (r.at - t1 > worst)
            worst = r.at - t1;
        ok = r.err == NULL && r.type == REDIS_REPLY_STATUS;
        /* meanwhile the limiter answers locally when the owner is down */
        gw_ratelimit_conf_t p = {"fo", GW_LIMIT_KEY_IP, 1000, 1000, 1000, 1};
        gw_ratelimit_verdict_t v;
        check_one(ctx, &p, "failover", &v);
        assert_int_not_equal(v.verdict, GW_RL_UNAVAILABLE);
        if (!ok)
            run_for(100);
    }
    printf("# cluster failover: writes back after %llu ms (worst single call %llu ms)\n", (unsigned long long)(redis_now_ms() - t0),
           (unsigned long long)worst);
    assert_true(ok);
    assert_true(worst <= 600);
    uint16_t now_owner = redis_cluster_owner(live_port(), gw_store_key_slot(k, strlen(k)));
    assert_true(now_owner != 0 && now_owner != old);
    redisReply *rep = redis_sync(now_owner, "GET %s", k);
    assert_string_equal(rep->str, "after");
    freeReplyObject(rep);
    assert_true(wait_up(s, 5000));
    /* and the limiter is back on the cluster */
    gw_ratelimit_conf_t p = {"fo", GW_LIMIT_KEY_IP, 1000, 1000, 1000, 1};
    gw_ratelimit_verdict_t v;
    check_one(ctx, &p, "failover", &v);
    assert_int_equal(v.results[0].source, GW_RL_SOURCE_STORE);
    gw_store_stats_t st;
    gw_store_get_stats(s, &st);
    assert_true(st.disconnects >= 1);
    ctx_done(ctx);
    store_done(s);
}

/* ---- groups ---------------------------------------------------------------------------------------------- */

static int single_setup(void **state)
{
    main_idx = redis_server_start(0, 0, 1);
    snprintf(main_url, sizeof(main_url), "redis://127.0.0.1:%u/0", redis_servers[main_idx].port);
    redis_server_sock_path(main_idx, main_sock, sizeof(main_sock));
    return 0;
}

static int single_teardown(void **state)
{
    free_leftovers();
    redis_server_kill(main_idx);
    return 0;
}

static int cluster_setup(void **state)
{
    if (redis_cluster_start(3, cl_idx) != 0) {
        fprintf(stderr, "cannot create the test cluster\n");
        return -1;
    }
    snprintf(cl_seed, sizeof(cl_seed), "redis://127.0.0.1:%u", redis_servers[cl_idx[0]].port);
    return 0;
}

static int cluster_teardown(void **state)
{
    free_leftovers();
    for (int i = 0; i != 6; ++i)
        redis_server_kill(cl_idx[i]);
    return 0;
}

int main(void)
{
    redis_harness_init(240);
    gw_store_script_init(&lua, gw_ratelimit_lua);
    loop = h2o_evloop_create();
    const struct CMUnitTest single[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_pipeline_order),
        cmocka_unit_test(test_unix_socket_and_db),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_down_store_fails_fast),
        cmocka_unit_test(test_lua_matches_pure),
        cmocka_unit_test(test_two_nodes_share_budget),
        cmocka_unit_test(test_timeout_sigstop),
        cmocka_unit_test(test_kill_restart),
        cmocka_unit_test(test_ratelimit_batches),
        cmocka_unit_test(test_ratelimit_store_down_and_back),
        cmocka_unit_test(test_roundtrips_per_second),
        cmocka_unit_test(test_auth), /* last: it changes the server's password for a moment */
    };
    const struct CMUnitTest cluster[] = {
        cmocka_unit_test(test_cluster_routing),
        cmocka_unit_test(test_cluster_moved_ask),
        cmocka_unit_test(test_cluster_failover),
    };
    int failed = cmocka_run_group_tests_name("store: single Redis", single, single_setup, single_teardown);
    failed +=
        cmocka_run_group_tests_name("store: Redis Cluster (3 masters + 3 replicas)", cluster, cluster_setup, cluster_teardown);
    run_for(10);
    h2o_evloop_destroy(loop);
    return failed != 0;
}
