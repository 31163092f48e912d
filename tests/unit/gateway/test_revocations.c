/*
 * tests/unit/gateway/test_revocations.c — gateway/revocations.c, the process's deny set (without the
 * subscriber): sid and jti members, expiry, and the memo a cached token keeps so that asking again
 * costs one atomic read until anything is revoked — after which the very next check sees it.
 */
#include "tests/unit/unit.h"
#include <time.h>
#include "gateway/revocations.h"

static void test_memo_sees_every_new_revocation(void **state)
{
    (void)state;
    int64_t later = (int64_t)time(NULL) + 3600;
    auth_revocation_memo_t m = {0}, other = {0};
    assert_int_equal(gw_revocations_check_memo("sess-a", "tok-a", &m), 0);
    assert_true(m.version != 0); /* remembered: absent at this version */
    uint64_t v = m.version;
    assert_int_equal(gw_revocations_check_memo("sess-a", "tok-a", &m), 0);
    assert_int_equal(m.version, v);
    /* another token's revocation changes the version: the memo re-checks, still not revoked */
    gw_revocations_add("jti:tok-b", 9, later);
    assert_int_equal(gw_revocations_check_memo("sess-a", "tok-a", &m), 0);
    assert_true(m.version > v);
    /* its session revoked: refused at once, and the refusal is never remembered as absent */
    gw_revocations_add("sid:sess-a", 10, later);
    assert_int_equal(gw_revocations_check_memo("sess-a", "tok-a", &m), 1);
    assert_int_equal(m.version, 0);
    assert_int_equal(gw_revocations_check_memo("sess-a", "tok-a", &m), 1);
    assert_int_equal(gw_revocations_check("sess-a", "tok-a"), 1);
    /* by jti, for a token without a session */
    assert_int_equal(gw_revocations_check_memo(NULL, "tok-c", &other), 0);
    gw_revocations_add("jti:tok-c", 9, later);
    assert_int_equal(gw_revocations_check_memo(NULL, "tok-c", &other), 1);
    /* the digests are the token's: a memo is not shared between tokens, and a member that expired
     * already is not added */
    auth_revocation_memo_t d = {0};
    gw_revocations_add("jti:tok-d", 9, (int64_t)time(NULL) - 1);
    assert_int_equal(gw_revocations_check_memo("", "tok-d", &d), 0);
    assert_int_equal(gw_revocations_check(NULL, "tok-d"), 0);
}

static void test_many_members(void **state)
{
    (void)state;
    int64_t later = (int64_t)time(NULL) + 3600;
    char m[64];
    for (int i = 0; i != 5000; ++i) { /* beyond the first table: rebuilt as it grows */
        int n = snprintf(m, sizeof(m), "jti:bulk-%d", i);
        gw_revocations_add(m, (size_t)n, later);
    }
    for (int i = 0; i < 5000; i += 499) {
        snprintf(m, sizeof(m), "bulk-%d", i);
        auth_revocation_memo_t memo = {0};
        assert_int_equal(gw_revocations_check_memo(NULL, m, &memo), 1);
    }
    auth_revocation_memo_t memo = {0};
    assert_int_equal(gw_revocations_check_memo(NULL, "bulk-5000", &memo), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memo_sees_every_new_revocation),
        cmocka_unit_test(test_many_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
