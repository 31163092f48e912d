/*
 * tests/unit/gateway/test_revocations_ask.c — gateway/revocations_ask.c against a real redis-server:
 * the per-thread memo of the store's revocation answers (good for GW_REVOCATIONS_ASK_MS, per token),
 * one store round trip shared by every waiter of the same token, a revocation the store knows entering
 * the local set, cancellation, and a store that does not answer (never remembered).
 */
#include "tests/unit/unit.h"
#include <time.h>
#include "tests/unit/redis_harness.h"
#include "gateway/gateway.h"
#include "gateway/revocations.h"

static h2o_evloop_t *loop;
static gw_thread_t thread;
static int redis_idx;

typedef struct {
    gw_revocations_waiter_t w;
    int called, answer;
    uint64_t at; /* the loop clock when the answer came: the memo's clock too */
} waiter_t;

static void on_answer(gw_revocations_waiter_t *w, int answer)
{
    waiter_t *x = H2O_STRUCT_FROM_MEMBER(waiter_t, w, w);
    ++x->called;
    x->answer = answer;
    x->at = h2o_now(loop);
}

static int run_until(const int *flag, unsigned ms)
{
    uint64_t until = redis_now_ms() + ms;
    while (!*flag && redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
    return *flag;
}

static uint64_t store_checks(void)
{
    uint64_t unknown, checks;
    gw_revocations_counts(&unknown, &checks);
    return checks;
}

/* the memo a token's first local check leaves (its digests) */
static auth_revocation_memo_t memo_of(const char *sid, const char *jti)
{
    auth_revocation_memo_t m = {0};
    assert_int_equal(gw_revocations_check_memo(sid, jti, &m), 0);
    return m;
}

static void setup_thread(void)
{
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", redis_servers[redis_idx].port);
    gw_store_conf_t conf = {.url = url, .timeout_ms = 200};
    loop = h2o_evloop_create();
    thread.loop = loop;
    if ((thread.store = gw_store_create(loop, &conf, err, sizeof(err))) == NULL)
        fail_msg("gw_store_create: %s", err);
    thread.revasked = gw_revocations_asked_new();
    uint64_t until = redis_now_ms() + 3000;
    while (!gw_store_is_up(thread.store) && redis_now_ms() < until)
        h2o_evloop_run(loop, 5);
    assert_true(gw_store_is_up(thread.store));
}

static void test_answer_remembered_for_a_second_per_token(void **state)
{
    auth_revocation_memo_t m = memo_of("s-fresh", "j-fresh"), other = memo_of("s-other", "j-other");
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, h2o_now(loop)), -1); /* never asked */
    uint64_t before = store_checks();
    waiter_t a = {0};
    gw_revocations_ask(&thread, "s-fresh", "j-fresh", &m, &a.w, on_answer);
    assert_true(run_until(&a.called, 2000));
    assert_int_equal(a.answer, 0);
    assert_int_equal(store_checks(), before + 1);
    uint64_t now = a.at; /* not h2o_now() after the loop returned: the loop may have moved its clock since */
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, now), 0);
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &other, now), -1); /* another token: its own question */
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, now + GW_REVOCATIONS_ASK_MS - 1), 0);
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, now + GW_REVOCATIONS_ASK_MS), -1); /* stale */
}

static void test_store_revocation_enters_the_local_set(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "%lld", (long long)time(NULL) + 600);
    redisReply *r = redis_sync(redis_servers[redis_idx].port, "ZADD %s %s %s", GW_REVOCATIONS_KEY, cmd, "sid:s-gone");
    assert_non_null(r);
    freeReplyObject(r);
    auth_revocation_memo_t m = memo_of("s-gone", "j-gone");
    assert_int_equal(gw_revocations_check("s-gone", "j-gone"), 0); /* the local set has not heard of it */
    waiter_t a = {0};
    gw_revocations_ask(&thread, "s-gone", "j-gone", &m, &a.w, on_answer);
    assert_true(run_until(&a.called, 2000));
    assert_int_equal(a.answer, 1);
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, a.at), 1);
    assert_int_equal(gw_revocations_check("s-gone", "j-gone"), 1); /* and now it has */
    /* an expired score is no revocation */
    snprintf(cmd, sizeof(cmd), "%lld", (long long)time(NULL) - 5);
    r = redis_sync(redis_servers[redis_idx].port, "ZADD %s %s %s", GW_REVOCATIONS_KEY, cmd, "jti:j-old");
    freeReplyObject(r);
    auth_revocation_memo_t o = memo_of(NULL, "j-old");
    waiter_t b = {0};
    gw_revocations_ask(&thread, NULL, "j-old", &o, &b.w, on_answer);
    assert_true(run_until(&b.called, 2000));
    assert_int_equal(b.answer, 0);
}

static void test_waiters_share_one_question_and_cancel(void **state)
{
    auth_revocation_memo_t m = memo_of("s-many", "j-many");
    uint64_t before = store_checks();
    waiter_t w[4];
    memset(w, 0, sizeof(w));
    for (int i = 0; i != 4; ++i)
        gw_revocations_ask(&thread, "s-many", "j-many", &m, &w[i].w, on_answer);
    gw_revocations_ask_cancel(&w[2].w); /* that request went away */
    gw_revocations_ask_cancel(&w[2].w); /* twice is harmless */
    assert_true(run_until(&w[3].called, 2000));
    run_until(&w[0].called, 100);
    assert_int_equal(store_checks(), before + 1); /* one round trip for all four */
    for (int i = 0; i != 4; ++i) {
        assert_int_equal(w[i].called, i == 2 ? 0 : 1);
        if (i != 2)
            assert_int_equal(w[i].answer, 0);
    }
}

static void test_tokens_without_sid_or_jti_need_no_question(void **state)
{
    auth_revocation_memo_t none = {0};
    assert_int_equal(gw_revocations_check_memo(NULL, "", &none), 0);
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &none, h2o_now(loop)), 0);
}

static void test_store_gone_is_unknown_and_not_remembered(void **state)
{
    auth_revocation_memo_t m = memo_of("s-dark", "j-dark");
    redis_server_pause(redis_idx, 1); /* nothing answers: the store's deadline (200 ms) decides */
    waiter_t a = {0};
    uint64_t t0 = redis_now_ms();
    gw_revocations_ask(&thread, "s-dark", "j-dark", &m, &a.w, on_answer);
    int got = run_until(&a.called, 3000);
    redis_server_pause(redis_idx, 0);
    assert_true(got);
    assert_int_equal(a.answer, -1);
    assert_true(redis_now_ms() - t0 < 1000); /* bounded by redis.timeout, not by the fault */
    assert_int_equal(gw_revocations_asked_answer(thread.revasked, &m, h2o_now(loop)), -1); /* ask again next time */
}

int main(void)
{
    redis_harness_init(60);
    redis_idx = redis_server_start(0, 0, 0);
    setup_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_remembered_for_a_second_per_token),
        cmocka_unit_test(test_store_revocation_enters_the_local_set),
        cmocka_unit_test(test_waiters_share_one_question_and_cancel),
        cmocka_unit_test(test_tokens_without_sid_or_jti_need_no_question),
        cmocka_unit_test(test_store_gone_is_unknown_and_not_remembered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
