/*
 * tests/unit/gateway/test_ratelimit.c — the pure parts of rate limiting: GCRA arithmetic (burst, steady
 * rate, honest Retry-After, clock edges, overflow), the cluster slot function, store keys, the
 * draft-11 header values, and the store-down modes of the runtime (no Redis needed for those).
 */
#include "tests/unit/unit.h"
#include <limits.h>
#include "gateway/ratelimit.h"
#include "gateway/store.h"

/* ---- CRC16 / slots ------------------------------------------------------------------------------- */

static unsigned slot_of(const char *s)
{
    return gw_store_key_slot(s, strlen(s));
}

static void test_crc16_vector(void **state)
{
    assert_int_equal(gw_store_crc16("123456789", 9), 0x31C3);
    assert_int_equal(gw_store_crc16("", 0), 0);
    assert_int_equal(slot_of("123456789"), 12739);
    /* values Redis' CLUSTER KEYSLOT gives */
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("hello"), 866);
}

static void test_hash_tags(void **state)
{
    assert_int_equal(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    /* an empty tag: the whole key */
    assert_int_equal(slot_of("foo{}{bar}"), gw_store_crc16("foo{}{bar}", 10) & 16383);
    assert_int_not_equal(slot_of("foo{}{bar}"), slot_of("bar"));
    /* the first '{' and the first '}' after it */
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* no closing brace: the whole key */
    assert_int_equal(slot_of("foo{bar"), gw_store_crc16("foo{bar", 7) & 16383);
    assert_int_equal(slot_of("}foo{"), gw_store_crc16("}foo{", 5) & 16383);
    /* binary safe */
    assert_int_equal(gw_store_key_slot("a\0{b}", 5), slot_of("b"));
}

static void test_store_key(void **state)
{
    char buf[700];
    gw_ratelimit_conf_t pu = {"per-user", GW_LIMIT_KEY_USER, 20, 1000, 20, 1}, pu2 = {"per-user-min", GW_LIMIT_KEY_USER, 600, 60000, 600, 1};
    gw_ratelimit_conf_t pc = {"per-client", GW_LIMIT_KEY_CLIENT, 20, 1000, 20, 1}, pi = {"per-ip", GW_LIMIT_KEY_IP, 20, 1000, 20, 1};
    size_t n = gw_ratelimit_store_key(buf, sizeof(buf), &pu, "alice", 5);
    assert_int_equal(n, strlen("hegate:rl:{user:alice}:per-user"));
    assert_string_equal(buf, "hegate:rl:{user:alice}:per-user");
    /* the hash tag is the identity: every policy of one identity lives in one slot */
    assert_int_equal(gw_store_key_slot(buf, n), slot_of("user:alice"));
    n = gw_ratelimit_store_key(buf, sizeof(buf), &pu2, "alice", 5);
    assert_string_equal(buf, "hegate:rl:{user:alice}:per-user-min");
    assert_int_equal(gw_store_key_slot(buf, n), slot_of("user:alice"));
    n = gw_ratelimit_store_key(buf, sizeof(buf), &pc, "app", 3);
    assert_string_equal(buf, "hegate:rl:{client:app}:per-client");
    n = gw_ratelimit_store_key(buf, sizeof(buf), &pi, "127.0.0.1", 9);
    assert_string_equal(buf, "hegate:rl:{ip:127.0.0.1}:per-ip");
    assert_int_equal(gw_store_key_slot(buf, n), slot_of("ip:127.0.0.1"));
    /* the same identity string of another kind is another identity */
    n = gw_ratelimit_store_key(buf, sizeof(buf), &pc, "alice", 5);
    assert_string_equal(buf, "hegate:rl:{client:alice}:per-client");
    /* too small */
    assert_int_equal(gw_ratelimit_store_key(buf, 10, &pu, "alice", 5), 0);
    assert_int_equal(gw_ratelimit_store_key(buf, strlen("hegate:rl:{user:alice}:per-user"), &pu, "alice", 5), 0);
    assert_int_equal(gw_ratelimit_store_key(buf, strlen("hegate:rl:{user:alice}:per-user") + 1, &pu, "alice", 5),
                     strlen("hegate:rl:{user:alice}:per-user"));
    /* a long key is hashed: bounded size, stable, distinct, marked '#', one slot for all policies */
    char longkey[1000], buf2[700];
    gw_ratelimit_conf_t p = {"p", GW_LIMIT_KEY_USER, 1, 1000, 1, 1}, q = {"q", GW_LIMIT_KEY_USER, 1, 1000, 1, 1};
    memset(longkey, 'x', sizeof(longkey));
    n = gw_ratelimit_store_key(buf, sizeof(buf), &p, longkey, sizeof(longkey));
    assert_int_equal(n, strlen("hegate:rl:{user#}:p") + 64);
    assert_int_equal(memcmp(buf, "hegate:rl:{user#", 16), 0);
    assert_int_equal(gw_ratelimit_store_key(buf2, sizeof(buf2), &p, longkey, sizeof(longkey)), n);
    assert_string_equal(buf, buf2);
    assert_int_equal(gw_ratelimit_store_key(buf2, sizeof(buf2), &q, longkey, sizeof(longkey)), n);
    assert_int_equal(gw_store_key_slot(buf, n), gw_store_key_slot(buf2, n));
    longkey[999] = 'y';
    gw_ratelimit_store_key(buf2, sizeof(buf2), &p, longkey, sizeof(longkey));
    assert_string_not_equal(buf, buf2);
    /* an identity with a '}' would end the tag early and make keys ambiguous ("a}:b" + "c" vs
     * "a" + policy "b}:c"): hashed too, still one slot per identity */
    gw_ratelimit_conf_t bc = {"b}:c", GW_LIMIT_KEY_IP, 1, 1000, 1, 1};
    n = gw_ratelimit_store_key(buf, sizeof(buf), &pi, "a}b", 3);
    assert_int_equal(memcmp(buf, "hegate:rl:{ip#", 14), 0);
    size_t n2 = gw_ratelimit_store_key(buf2, sizeof(buf2), &bc, "a}b", 3);
    assert_int_equal(gw_store_key_slot(buf, n), gw_store_key_slot(buf2, n2));
    gw_ratelimit_conf_t c = {"c", GW_LIMIT_KEY_IP, 1, 1000, 1, 1};
    gw_ratelimit_store_key(buf, sizeof(buf), &c, "a}:b", 4);
    gw_ratelimit_store_key(buf2, sizeof(buf2), &bc, "a", 1);
    assert_string_not_equal(buf, buf2);
}

/* ---- GCRA ------------------------------------------------------------------------------------------ */

static gw_gcra_result_t hit(uint64_t l, uint64_t w, uint64_t b, int64_t now, gw_gcra_state_t *st)
{
    gw_gcra_result_t r;
    memset(&r, 0xee, sizeof(r));
    assert_int_equal(gw_gcra(l, w, b, now, st, &r), 0);
    return r;
}

static void test_gcra_exact_burst(void **state)
{
    gw_gcra_state_t st = {0, 0};
    const int64_t t0 = 1700000000000LL;
    /* per-user: 20/s, burst 40 */
    for (uint64_t i = 0; i != 40; ++i) {
        gw_gcra_result_t r = hit(20, 1000, 40, t0, &st);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 39 - i);
        assert_int_equal(r.retry_after_ms, 0);
        assert_int_equal(r.reset_ms, (i + 1) * 50); /* back to a full burst after (i+1) * T */
    }
    gw_gcra_result_t r = hit(20, 1000, 40, t0, &st);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_ms, 50);
    assert_int_equal(r.reset_ms, 2000);
    assert_int_equal(gw_ratelimit_seconds(r.retry_after_ms), 1);
    /* denied requests do not move the state */
    gw_gcra_state_t before = st;
    hit(20, 1000, 40, t0, &st);
    assert_memory_equal(&before, &st, sizeof(st));
    /* default burst = limit: exactly `limit` at once */
    gw_gcra_state_t s2 = {0, 0};
    int allowed = 0;
    for (int i = 0; i != 1000; ++i)
        allowed += hit(500, 1000, 500, t0, &s2).allowed;
    assert_int_equal(allowed, 500);
}

/* a client hammering every millisecond gets exactly burst + limit * elapsed / window */
static void test_gcra_steady_rate(void **state)
{
    struct {
        uint64_t limit, window, burst, elapsed, expect;
    } cases[] = {
        {20, 1000, 40, 10000, 40 + 200},
        {3, 1000, 3, 9000, 3 + 27}, /* T = 333.33.. ms: fractions stay exact */
        {7, 60000, 2, 600000, 2 + 70},
        {1000, 1000, 1000, 5000, 6000}, /* T = 1 ms */
        /* burst 1: no tolerance, so a request can only come at or after tat; arriving on a whole
         * millisecond it cannot bank the 0.43 ms it came late (standard GCRA): one per 8572 ms */
        {7, 60000, 1, 600000, 1 + 69},
        {3000, 1000, 10, 2000, 10 + 6000}, /* T = 1/3 ms: several per millisecond */
    };
    for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c) {
        gw_gcra_state_t st = {0, 0};
        const int64_t t0 = 1700000000123LL;
        uint64_t allowed = 0;
        for (int64_t t = t0; t <= t0 + (int64_t)cases[c].elapsed; ++t) {
            /* as many requests as it takes to be denied, each millisecond */
            for (;;) {
                gw_gcra_result_t r = hit(cases[c].limit, cases[c].window, cases[c].burst, t, &st);
                if (!r.allowed)
                    break;
                ++allowed;
            }
        }
        assert_int_equal(allowed, cases[c].expect);
    }
}

static void test_gcra_retry_after_honest(void **state)
{
    const uint64_t limits[][3] = {{20, 1000, 40}, {3, 1000, 3}, {10, 60000, 10}, {1, 3600000, 5}, {7, 1000, 2}};
    for (size_t c = 0; c != sizeof(limits) / sizeof(limits[0]); ++c) {
        uint64_t l = limits[c][0], w = limits[c][1], b = limits[c][2];
        gw_gcra_state_t st = {0, 0};
        int64_t t = 1700000000000LL;
        while (hit(l, w, b, t, &st).allowed)
            ;
        for (int round = 0; round != 5; ++round) {
            gw_gcra_state_t saved = st;
            gw_gcra_result_t r = hit(l, w, b, t, &st);
            assert_false(r.allowed);
            assert_true(r.retry_after_ms >= 1);
            /* one millisecond early: still denied; exactly then: allowed */
            gw_gcra_state_t probe = saved;
            if (r.retry_after_ms > 1)
                assert_false(hit(l, w, b, t + (int64_t)r.retry_after_ms - 1, &probe).allowed);
            probe = saved;
            assert_true(hit(l, w, b, t + (int64_t)r.retry_after_ms, &probe).allowed);
            /* and the whole seconds of Retry-After are never too short */
            probe = saved;
            assert_true(hit(l, w, b, t + (int64_t)gw_ratelimit_seconds(r.retry_after_ms) * 1000, &probe).allowed);
            st = saved;
            t += (int64_t)r.retry_after_ms;
            assert_true(hit(l, w, b, t, &st).allowed);
        }
    }
}

static void test_gcra_clock_backwards(void **state)
{
    gw_gcra_state_t st = {0, 0};
    const int64_t t0 = 1700000000000LL;
    for (int i = 0; i != 10; ++i)
        assert_true(hit(10, 1000, 10, t0, &st).allowed); /* tat = t0 + 1000 */
    /* a step back puts tat further ahead than tau allows: clamped to now + tau (one full burst),
     * Retry-After one interval on the new clock, and the clamp is stored */
    gw_gcra_result_t r = hit(10, 1000, 10, t0 - 50, &st);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 100);
    assert_int_equal(st.tat_ms, t0 - 50 + 1000);
    /* even 1 ms back: tat - now would exceed tau, clamped the same way */
    gw_gcra_state_t s1 = {0, 0};
    for (int i = 0; i != 10; ++i)
        hit(10, 1000, 10, t0, &s1);
    r = hit(10, 1000, 10, t0 - 1, &s1);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 100);
    assert_int_equal(s1.tat_ms, t0 + 999);
    /* a big jump back (an hour): clamped to one full burst, honest retry of one interval */
    int64_t back = t0 - 3600000;
    r = hit(10, 1000, 10, back, &st);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 100);
    assert_int_equal(r.reset_ms, 1000);
    assert_int_equal(st.tat_ms, back + 1000); /* the clamp is stored */
    assert_true(hit(10, 1000, 10, back + 100, &st).allowed);
    /* a corrupt fraction (>= limit) is treated as limit - 1 */
    gw_gcra_state_t bad = {t0, 999999};
    r = hit(10, 1000, 10, t0, &bad);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 8);
}

static void test_gcra_huge_gaps_and_overflow(void **state)
{
    gw_gcra_state_t st = {0, 0};
    int64_t t = 1700000000000LL;
    while (hit(5, 1000, 5, t, &st).allowed)
        ;
    /* decades later: a fresh key */
    gw_gcra_result_t r = hit(5, 1000, 5, t + 1000LL * 86400 * 365 * 30, &st);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 4);
    /* extreme clocks: no overflow (UBSan watches), sane answers */
    int64_t nows[] = {INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1, 0, -1};
    int64_t tats[] = {INT64_MAX, INT64_MIN, 0, -5, 1700000000000LL};
    for (size_t i = 0; i != sizeof(nows) / sizeof(nows[0]); ++i)
        for (size_t j = 0; j != sizeof(tats) / sizeof(tats[0]); ++j) {
            gw_gcra_state_t s = {tats[j], 3};
            gw_gcra_result_t res;
            assert_int_equal(gw_gcra(5, 1000, 5, nows[i], &s, &res), 0);
            assert_true(res.remaining <= 4);
            assert_true(res.allowed ? res.retry_after_ms == 0 : res.retry_after_ms >= 1);
            assert_true(res.reset_ms <= 1000);
            assert_true(s.tat_frac < 5);
        }
    /* the largest exact parameters */
    gw_gcra_state_t big = {0, 0};
    uint64_t m = GW_GCRA_MAX;
    r = hit(m, 1, m, 1700000000000LL, &big);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, m - 1);
    r = hit(1, m, 1, 1700000000000LL, &big);
    assert_true(r.allowed);
    /* out of range: refused, state untouched */
    gw_gcra_state_t keep = {42, 1};
    gw_gcra_result_t res;
    assert_int_equal(gw_gcra(0, 1000, 1, 0, &keep, &res), -1);
    assert_int_equal(gw_gcra(1, 0, 1, 0, &keep, &res), -1);
    assert_int_equal(gw_gcra(1, 1000, 0, 0, &keep, &res), -1);
    assert_int_equal(gw_gcra(m + 1, 1000, 1, 0, &keep, &res), -1);
    assert_int_equal(gw_gcra(1, m, 2, 0, &keep, &res), -1);
    assert_int_equal(gw_gcra(1, UINT64_MAX, UINT64_MAX, 0, &keep, &res), -1);
    assert_int_equal(keep.tat_ms, 42);
    assert_false(gw_gcra_params_ok(10, 86400000ULL * 365, 1ULL << 30));
    assert_true(gw_gcra_params_ok(20, 1000, 40));
}

/* several policies, all or nothing: a request refused by one policy consumes none of the others */
static void test_gcra_all_or_nothing(void **state)
{
    const int64_t t0 = 1700000000000LL;
    /* A: 3 per hour (tight), B: 100 per second, burst 100 (loose) */
    gw_gcra_policy_t p[2] = {{3, 3600000, 3}, {100, 1000, 100}};
    gw_gcra_state_t st[2] = {{0, 0}, {0, 0}};
    gw_gcra_result_t r[2];
    for (int i = 0; i != 3; ++i) {
        assert_int_equal(gw_gcra_all(2, p, t0, st, r), 1);
        assert_true(r[0].allowed && r[1].allowed);
        assert_int_equal(r[1].remaining, 99 - i);
    }
    gw_gcra_state_t before[2] = {st[0], st[1]};
    for (int i = 0; i != 50; ++i) {
        assert_int_equal(gw_gcra_all(2, p, t0, st, r), 0);
        assert_false(r[0].allowed);
        assert_int_equal(r[0].retry_after_ms, 1200000);
        /* B would admit it but is not charged: its numbers are those before the request */
        assert_true(r[1].allowed);
        assert_int_equal(r[1].remaining, 97);
        assert_int_equal(r[1].reset_ms, 30);
        assert_int_equal(r[1].retry_after_ms, 0);
        assert_memory_equal(before, st, sizeof(st));
    }
    /* B still has its 97: exhaust it with A out of the way */
    gw_gcra_policy_t b = p[1];
    int allowed = 0;
    while (gw_gcra_all(1, &b, t0, &st[1], r) == 1)
        ++allowed;
    assert_int_equal(allowed, 97);
    /* the same through gw_gcra: one policy is gw_gcra_all(1) */
    gw_gcra_state_t s1 = {0, 0}, s2 = {0, 0};
    for (int64_t t = t0; t < t0 + 3000; t += 7) {
        gw_gcra_result_t x, y;
        assert_int_equal(gw_gcra(20, 1000, 5, t, &s1, &x), 0);
        assert_int_equal(gw_gcra_all(1, &(gw_gcra_policy_t){20, 1000, 5}, t, &s2, &y) >= 0, 1);
        assert_int_equal(x.allowed, y.allowed);
        assert_int_equal(x.remaining, y.remaining);
        assert_int_equal(x.reset_ms, y.reset_ms);
        assert_int_equal(x.retry_after_ms, y.retry_after_ms);
        assert_memory_equal(&s1, &s2, sizeof(s1));
    }
    /* a clamped (clock went back) policy refuses and is repaired even though the request is refused */
    gw_gcra_state_t c[2] = {{t0 + 10000000, 0}, {0, 0}};
    assert_int_equal(gw_gcra_all(2, p, t0, c, r), 0);
    assert_int_equal(c[0].tat_ms, t0 + 3600000);
    assert_int_equal(c[1].tat_ms, 0);
    /* parameters out of range: -1, nothing touched */
    gw_gcra_policy_t bad[2] = {{3, 3600000, 3}, {0, 1000, 1}};
    gw_gcra_state_t z[2] = {{0, 0}, {0, 0}};
    assert_int_equal(gw_gcra_all(2, bad, t0, z, r), -1);
    assert_int_equal(z[0].tat_ms, 0);
    /* results from delays (what Redis returns): a delay beyond tau is rejected */
    uint64_t d[2] = {3 * 3600000 + 1, 0};
    assert_int_equal(gw_gcra_results(2, p, d, r), -1);
}

static void test_seconds(void **state)
{
    assert_int_equal(gw_ratelimit_seconds(0), 0);
    assert_int_equal(gw_ratelimit_seconds(1), 1);
    assert_int_equal(gw_ratelimit_seconds(1000), 1);
    assert_int_equal(gw_ratelimit_seconds(1001), 2);
    assert_int_equal(gw_ratelimit_seconds(UINT64_MAX), UINT64_MAX / 1000 + 1);
}

/* ---- headers ---------------------------------------------------------------------------------------- */

static gw_ratelimit_conf_t per_user = {"per-user", GW_LIMIT_KEY_USER, 20, 1000, 40, 1};
static gw_ratelimit_conf_t per_client = {"per-client", GW_LIMIT_KEY_CLIENT, 500, 1000, 500, 2};
static gw_ratelimit_conf_t login = {"login", GW_LIMIT_KEY_IP, 10, 60000, 10, 3};

static void test_header_policy(void **state)
{
    char buf[256];
    const gw_ratelimit_conf_t *p[] = {&per_user, &per_client, &login};
    size_t n = gw_ratelimit_format_policy(buf, sizeof(buf), p, 1);
    assert_string_equal(buf, "\"per-user\";q=20;w=1");
    assert_int_equal(n, strlen(buf));
    gw_ratelimit_format_policy(buf, sizeof(buf), p, 3);
    assert_string_equal(buf, "\"per-user\";q=20;w=1, \"per-client\";q=500;w=1, \"login\";q=10;w=60");
    assert_true(gw_ratelimit_header_bound(p, 3) > strlen(buf));
    /* too small: nothing, and an empty string */
    assert_int_equal(gw_ratelimit_format_policy(buf, 10, p, 3), 0);
    assert_string_equal(buf, "");
    assert_int_equal(gw_ratelimit_format_policy(buf, sizeof(buf), p, 0), 0);
    /* sub-second windows round up; names are escaped sf-strings */
    gw_ratelimit_conf_t odd = {"a\"b\\c\x01", GW_LIMIT_KEY_IP, 5, 500, 5, 4};
    const gw_ratelimit_conf_t *po[] = {&odd};
    gw_ratelimit_format_policy(buf, sizeof(buf), po, 1);
    assert_string_equal(buf, "\"a\\\"b\\\\c?\";q=5;w=1");
    assert_true(gw_ratelimit_header_bound(po, 1) > strlen(buf));
}

static void test_header_state(void **state)
{
    char buf[256];
    gw_ratelimit_result_t r[3];
    memset(r, 0, sizeof(r));
    r[0] = (gw_ratelimit_result_t){&per_user, GW_RL_SOURCE_STORE, 1, 20, 7, 1, 0, 600, 0};
    r[1] = (gw_ratelimit_result_t){&per_client, GW_RL_SOURCE_OPEN, 1, 500, 0, 0, 0, 0, 0};
    r[2] = (gw_ratelimit_result_t){&login, GW_RL_SOURCE_CACHE, 0, 10, 0, 42, 5, 42000, 4100};
    size_t n = gw_ratelimit_format_state(buf, sizeof(buf), r, 1);
    assert_string_equal(buf, "\"per-user\";r=7;t=1");
    assert_int_equal(n, strlen(buf));
    /* results without a state (open) are left out */
    gw_ratelimit_format_state(buf, sizeof(buf), r, 3);
    assert_string_equal(buf, "\"per-user\";r=7;t=1, \"login\";r=0;t=42");
    assert_int_equal(gw_ratelimit_format_state(buf, sizeof(buf), &r[1], 1), 0);
    assert_int_equal(gw_ratelimit_format_state(buf, 5, r, 3), 0);
    /* numbers at every digit boundary, against printf */
    static const uint64_t nums[] = {0, 9, 10, 99, 100, 101, 999, 1000, 12345, 99999999, 100000000, 5999999999ull,
                                    18446744073709551615ull};
    for (size_t i = 0; i != sizeof(nums) / sizeof(nums[0]); ++i) {
        char expect[128];
        r[0].remaining = nums[i];
        r[0].reset_s = nums[(i + 5) % (sizeof(nums) / sizeof(nums[0]))];
        snprintf(expect, sizeof(expect), "\"per-user\";r=%llu;t=%llu", (unsigned long long)r[0].remaining,
                 (unsigned long long)r[0].reset_s);
        gw_ratelimit_format_state(buf, sizeof(buf), r, 1);
        assert_string_equal(buf, expect);
    }
}

/* ---- runtime without a store: the on_store_down modes ----------------------------------------------- */

static void never_called(void *data, gw_ratelimit_verdict_t *v)
{
    fail_msg("a verdict reached without the store must not call back");
}

static void test_store_down_modes(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    const gw_ratelimit_conf_t *p[] = {&per_user, &per_client};
    h2o_iovec_t keys[] = {{"alice", 5}, {"app", 3}};
    gw_ratelimit_verdict_t v;

    /* local: 2 nodes x 2 threads -> this thread gets burst 40/4 = 10 and 20/4 = 5 per second */
    gw_ratelimit_ctx_t *ctx = gw_ratelimit_ctx_create(loop, NULL, GW_STORE_DOWN_LOCAL, 2, 2);
    int allowed = 0;
    for (int i = 0; i != 30; ++i) {
        assert_null(gw_ratelimit_check(ctx, p, keys, 1, &v, never_called, NULL));
        assert_int_equal(v.n, 1);
        assert_int_equal(v.results[0].source, GW_RL_SOURCE_LOCAL);
        if (v.verdict == GW_RL_ALLOW)
            ++allowed;
        else {
            assert_int_equal(v.verdict, GW_RL_DENY);
            assert_true(v.retry_after_s >= 1);
            /* 4 x 50 ms stretched interval = 200 ms -> Retry-After 1 */
            assert_int_equal(v.results[0].retry_after_ms > 0 && v.results[0].retry_after_ms <= 200, 1);
        }
    }
    assert_int_equal(allowed, 10);
    /* another key has its own budget; a deny on one policy denies the request */
    h2o_iovec_t bob[] = {{"bob", 3}, {"app", 3}};
    assert_null(gw_ratelimit_check(ctx, p, bob, 2, &v, never_called, NULL));
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    assert_int_equal(v.results[0].remaining, 9);
    assert_int_equal(v.results[1].source, GW_RL_SOURCE_LOCAL);
    gw_ratelimit_stats_t stats;
    gw_ratelimit_get_stats(ctx, &stats);
    assert_int_equal(stats.local_checks, 32);
    /* local mode is all or nothing too: "tight" (4 per hour: burst 4 / 4 = 1 on this thread) refuses
     * after one request, and per_user (burst 10 on this thread) is not charged for the refusals */
    gw_ratelimit_conf_t tight = {"tight", GW_LIMIT_KEY_USER, 4, 3600000, 4, 1};
    const gw_ratelimit_conf_t *pt[] = {&per_user, &tight};
    h2o_iovec_t dave[] = {{"dave", 4}, {"dave", 4}};
    assert_null(gw_ratelimit_check(ctx, pt, dave, 2, &v, never_called, NULL));
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    assert_int_equal(v.results[0].remaining, 9);
    for (int i = 0; i != 20; ++i) {
        assert_null(gw_ratelimit_check(ctx, pt, dave, 2, &v, never_called, NULL));
        assert_int_equal(v.verdict, GW_RL_DENY);
        assert_true(v.results[0].allowed);
        assert_int_equal(v.results[0].remaining, 9); /* not charged */
        assert_false(v.results[1].allowed);
    }
    assert_null(gw_ratelimit_check(ctx, pt, dave, 1, &v, never_called, NULL));
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    assert_int_equal(v.results[0].remaining, 8);
    gw_ratelimit_ctx_free(ctx);

    /* open: everything passes, no state to advertise */
    ctx = gw_ratelimit_ctx_create(loop, NULL, GW_STORE_DOWN_OPEN, 2, 2);
    for (int i = 0; i != 100; ++i) {
        assert_null(gw_ratelimit_check(ctx, p, keys, 2, &v, never_called, NULL));
        assert_int_equal(v.verdict, GW_RL_ALLOW);
        assert_int_equal(v.results[0].source, GW_RL_SOURCE_OPEN);
    }
    char buf[128];
    assert_int_equal(gw_ratelimit_format_state(buf, sizeof(buf), v.results, v.n), 0);
    gw_ratelimit_ctx_free(ctx);

    /* closed: unavailable (503) */
    ctx = gw_ratelimit_ctx_create(loop, NULL, GW_STORE_DOWN_CLOSED, 1, 1);
    assert_null(gw_ratelimit_check(ctx, p, keys, 2, &v, never_called, NULL));
    assert_int_equal(v.verdict, GW_RL_UNAVAILABLE);
    assert_int_equal(v.results[1].source, GW_RL_SOURCE_CLOSED);
    /* no policies: allowed, nothing to say */
    assert_null(gw_ratelimit_check(ctx, p, keys, 0, &v, never_called, NULL));
    assert_int_equal(v.verdict, GW_RL_ALLOW);
    assert_int_equal(v.n, 0);
    gw_ratelimit_ctx_free(ctx);
    h2o_evloop_destroy(loop);
}

/* ---- URL parsing -------------------------------------------------------------------------------------- */

static void test_parse_url(void **state)
{
    gw_store_addr_t a;
    char err[200];
    assert_int_equal(gw_store_parse_url("redis://127.0.0.1:6380/2", &a, err, sizeof(err)), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 2);
    assert_int_equal(gw_store_parse_url("redis://localhost", &a, err, sizeof(err)), 0);
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_int_equal(gw_store_parse_url("redis://:s3cret@h:1/", &a, err, sizeof(err)), 0);
    assert_string_equal(a.password, "s3cret");
    assert_string_equal(a.user, "");
    assert_int_equal(gw_store_parse_url("redis://gw:p@ss@[::1]:7000/1", &a, err, sizeof(err)), 0);
    assert_string_equal(a.user, "gw");
    assert_string_equal(a.password, "p@ss");
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(gw_store_parse_url("unix:/run/redis.sock", &a, err, sizeof(err)), 0);
    assert_string_equal(a.path, "/run/redis.sock");
    assert_int_equal(gw_store_parse_url("unix:/run/redis.sock?db=4", &a, err, sizeof(err)), 0);
    assert_int_equal(a.db, 4);
    const char *bad[] = {"http://x",
                         "redis://",
                         "redis://h:0",
                         "redis://h:70000",
                         "redis://h:1/x",
                         "redis://h/1?x=1",
                         "unix:relative",
                         "unix:/p?foo=1",
                         "rediss://h",
                         "redis://[::1",
                         NULL};
    for (size_t i = 0; bad[i] != NULL; ++i) {
        assert_int_equal(gw_store_parse_url(bad[i], &a, err, sizeof(err)), -1);
        assert_null(strstr(err, "s3cret"));
    }
    assert_int_equal(gw_store_parse_url("redis://:s3cret@h:99999", &a, err, sizeof(err)), -1);
    assert_null(strstr(err, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vector),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_store_key),
        cmocka_unit_test(test_gcra_exact_burst),
        cmocka_unit_test(test_gcra_steady_rate),
        cmocka_unit_test(test_gcra_retry_after_honest),
        cmocka_unit_test(test_gcra_clock_backwards),
        cmocka_unit_test(test_gcra_huge_gaps_and_overflow),
        cmocka_unit_test(test_gcra_all_or_nothing),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_header_policy),
        cmocka_unit_test(test_header_state),
        cmocka_unit_test(test_store_down_modes),
        cmocka_unit_test(test_parse_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
