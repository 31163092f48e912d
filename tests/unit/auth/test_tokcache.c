/*
 * tests/unit/auth/test_tokcache.c — auth/tokcache.c, the per-thread cache of verified tokens:
 * a hit skips verification, entries die at exp + leeway (or the key's retirement), capacity is a
 * hard bound with CLOCK eviction, only identical bytes hit (a high-S twin or one changed byte is a
 * miss), a verdict answers only for the verifier that gave it (reload), and revocation is asked
 * on every request regardless.
 */
#include "tests/unit/unit.h"
#include "auth/internal.h"

#define NOW ((int64_t)1700000000)
static const char *const ISS = "https://hegate.example";

static auth_keyset_t *ks;
static const auth_key_t *key;
static auth_verifier_t *verifier;

static int setup(void **state)
{
    (void)state;
    ks = auth_keyset_new();
    assert_int_equal(auth_keyset_add(ks, auth_key_generate(), NOW, INT64_MAX), 0);
    key = auth_keyset_signer(ks);
    auth_issuer_t is = {ISS, "hegate", ks};
    char err[256];
    verifier = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    return verifier == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    auth_verifier_free(verifier);
    auth_keyset_free(ks);
    return 0;
}

static char *token(const char *jti, int64_t exp)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "iss", ISS, "sub", "u-1", "aud", "hegate", "client_id",
                          "app", "scope", "query", "iat", (json_int_t)NOW, "exp", (json_int_t)exp, "jti", jti, "sid", "s-1");
    char *t = auth_jwt_sign(key, c);
    json_decref(c);
    assert_non_null(t);
    return t;
}

struct revocation {
    int calls;
    int revoked;
};

static int revoked_cb(void *data, const char *sid, const char *jti)
{
    (void)sid, (void)jti;
    struct revocation *r = data;
    ++r->calls;
    return r->revoked;
}

static void test_hit_skips_verification(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(16);
    char *t = token("a", NOW + 600);
    struct revocation r = {0, 0};
    auth_claims_t a, b;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &a), AUTH_OK);
    auth_tokcache_stats_t st = auth_tokcache_stats(c);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(auth_tokcache_size(c), 1);
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW + 1, revoked_cb, &r, &b), AUTH_OK);
    st = auth_tokcache_stats(c);
    assert_int_equal(st.hits, 1);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW, &b), 1);
    /* revocation is asked every time, cached or not */
    assert_int_equal(r.calls, 2);
    r.revoked = 1;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &b), AUTH_REVOKED);
    assert_int_equal(r.calls, 3);
    r.revoked = 0;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &b), AUTH_OK);
    /* a token that fails verification is not stored */
    char *bad = strdup(t);
    bad[strlen(bad) - 5] ^= 1;
    size_t size = auth_tokcache_size(c);
    assert_int_not_equal(auth_verify_bearer(verifier, c, bad, strlen(bad), NOW, revoked_cb, &r, &b), AUTH_OK);
    assert_int_equal(auth_tokcache_size(c), size);
    free(bad);
    free(t);
    auth_tokcache_free(c);
}

static void test_expiry(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(16);
    char *t = token("e", NOW + 10);
    struct revocation r = {0, 0};
    auth_claims_t cl;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(cl.valid_until, NOW + 10 + AUTH_LEEWAY);
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW + 10 + AUTH_LEEWAY - 1, &cl), 1);
    /* at exp + leeway the entry is dead, and so is the token */
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW + 10 + AUTH_LEEWAY, &cl), 0);
    assert_int_equal(auth_tokcache_stats(c).expirations, 1);
    assert_int_equal(auth_tokcache_size(c), 0);
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW + 10 + AUTH_LEEWAY, revoked_cb, &r, &cl), AUTH_EXPIRED);
    /* putting a verdict that is already over stores nothing */
    cl.valid_until = NOW;
    auth_tokcache_put(c, verifier, t, strlen(t), NOW, &cl);
    assert_int_equal(auth_tokcache_size(c), 0);
    free(t);

    /* expired entries are the first to be recycled when the cache is full */
    auth_tokcache_t *small = auth_tokcache_new(2);
    char *t1 = token("short", NOW + 10), *t2 = token("long", NOW + 600), *t3 = token("new", NOW + 600);
    assert_int_equal(auth_verify_bearer(verifier, small, t1, strlen(t1), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_verify_bearer(verifier, small, t2, strlen(t2), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_get(small, verifier, t1, strlen(t1), NOW, &cl), 1); /* t1 referenced */
    assert_int_equal(auth_verify_bearer(verifier, small, t3, strlen(t3), NOW + 100, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_stats(small).expirations, 1);
    assert_int_equal(auth_tokcache_stats(small).evictions, 0);
    assert_int_equal(auth_tokcache_get(small, verifier, t2, strlen(t2), NOW + 100, &cl), 1);
    assert_int_equal(auth_tokcache_get(small, verifier, t3, strlen(t3), NOW + 100, &cl), 1);
    free(t1), free(t2), free(t3);
    auth_tokcache_free(small);
    auth_tokcache_free(c);
}

static void test_capacity_bound_and_clock(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(8);
    assert_int_equal(auth_tokcache_capacity(c), 8);
    struct revocation r = {0, 0};
    auth_claims_t cl;
    char *toks[100];
    for (int i = 0; i < 100; ++i) {
        char jti[16];
        snprintf(jti, sizeof(jti), "j%d", i);
        toks[i] = token(jti, NOW + 600);
        assert_int_equal(auth_verify_bearer(verifier, c, toks[i], strlen(toks[i]), NOW, revoked_cb, &r, &cl), AUTH_OK);
        assert_true(auth_tokcache_size(c) <= 8);
    }
    auth_tokcache_stats_t st = auth_tokcache_stats(c);
    assert_int_equal(st.insertions, 100);
    assert_int_equal(st.evictions, 92);
    assert_int_equal(auth_tokcache_size(c), 8);
    /* the 8 newest are there, the older ones are not */
    for (int i = 92; i < 100; ++i)
        assert_int_equal(auth_tokcache_get(c, verifier, toks[i], strlen(toks[i]), NOW, &cl), 1);
    for (int i = 0; i < 92; ++i)
        assert_int_equal(auth_tokcache_get(c, verifier, toks[i], strlen(toks[i]), NOW, &cl), 0);
    auth_tokcache_free(c);

    /* CLOCK: an entry used since the hand last passed gets a second chance */
    c = auth_tokcache_new(4);
    for (int i = 0; i < 4; ++i)
        auth_verify_bearer(verifier, c, toks[i], strlen(toks[i]), NOW, revoked_cb, &r, &cl);
    assert_int_equal(auth_tokcache_get(c, verifier, toks[0], strlen(toks[0]), NOW, &cl), 1); /* 0 is hot */
    auth_verify_bearer(verifier, c, toks[4], strlen(toks[4]), NOW, revoked_cb, &r, &cl);     /* evicts 1, not 0 */
    assert_int_equal(auth_tokcache_get(c, verifier, toks[0], strlen(toks[0]), NOW, &cl), 1);
    assert_int_equal(auth_tokcache_get(c, verifier, toks[1], strlen(toks[1]), NOW, &cl), 0);
    assert_int_equal(auth_tokcache_get(c, verifier, toks[4], strlen(toks[4]), NOW, &cl), 1);
    auth_tokcache_free(c);
    for (int i = 0; i < 100; ++i)
        free(toks[i]);
}

static void test_other_bytes_miss(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(16);
    char *t = token("m", NOW + 600);
    struct revocation r = {0, 0};
    auth_claims_t cl;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &cl), AUTH_OK);
    /* the high-S twin: another spelling of the same token is another entry, verified on its own */
    static const uint8_t n[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                  0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
    char *dot = strrchr(t, '.');
    uint8_t sig[64];
    assert_int_equal(crypto_b64url_decode(sig, 64, dot + 1, strlen(dot + 1)), 64);
    unsigned borrow = 0;
    for (int i = 31; i >= 0; --i) {
        unsigned d = (unsigned)n[i] - sig[32 + i] - borrow;
        sig[32 + i] = (uint8_t)d;
        borrow = (d >> 8) & 1;
    }
    char *twin = strdup(t);
    crypto_b64url_encode(strrchr(twin, '.') + 1, sig, 64);
    assert_int_equal(auth_tokcache_get(c, verifier, twin, strlen(twin), NOW, &cl), 0);
    assert_int_equal(auth_verify_bearer(verifier, c, twin, strlen(twin), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_size(c), 2);
    assert_string_equal(cl.jti, "m"); /* revocation by jti catches both spellings */
    /* one changed byte, a prefix, a longer string: misses, and verification says no */
    char *changed = strdup(t);
    changed[20] = changed[20] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_tokcache_get(c, verifier, changed, strlen(changed), NOW, &cl), 0);
    assert_int_not_equal(auth_verify_bearer(verifier, c, changed, strlen(changed), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t) - 1, NOW, &cl), 0);
    char *longer = malloc(strlen(t) + 2);
    sprintf(longer, "%sA", t);
    assert_int_equal(auth_tokcache_get(c, verifier, longer, strlen(longer), NOW, &cl), 0);
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW, &cl), 1);
    free(longer);
    free(changed);
    free(twin);
    free(t);
    auth_tokcache_free(c);
}

static void test_verdicts_belong_to_their_verifier(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(16);
    char *t = token("r", NOW + 600);
    struct revocation r = {0, 0};
    auth_claims_t cl;
    assert_int_equal(auth_verify_bearer(verifier, c, t, strlen(t), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW, &cl), 1);
    /* a reload: new key set without the old key, new verifier — the old verdict must not answer for it */
    auth_keyset_t *ks2 = auth_keyset_new();
    assert_int_equal(auth_keyset_add(ks2, auth_key_generate(), NOW, INT64_MAX), 0);
    auth_issuer_t is = {ISS, "hegate", ks2};
    char err[256];
    auth_verifier_t *v2 = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    assert_int_equal(auth_tokcache_get(c, v2, t, strlen(t), NOW, &cl), 0);
    assert_int_equal(auth_verify_bearer(v2, c, t, strlen(t), NOW, revoked_cb, &r, &cl), AUTH_UNKNOWN_KID);
    /* requests still on the old configuration keep their cached verdicts meanwhile */
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW, &cl), 1);
    /* the same key set under a new verifier: judged afresh, then cached for it too */
    auth_issuer_t same = {ISS, "hegate", ks};
    auth_verifier_t *v3 = auth_verifier_new(&same, 1, 0, err, sizeof(err));
    assert_int_equal(auth_tokcache_get(c, v3, t, strlen(t), NOW, &cl), 0);
    assert_int_equal(auth_verify_bearer(v3, c, t, strlen(t), NOW, revoked_cb, &r, &cl), AUTH_OK);
    assert_int_equal(auth_tokcache_get(c, v3, t, strlen(t), NOW, &cl), 1);
    assert_int_equal(auth_tokcache_size(c), 2);
    auth_verifier_free(v3);
    auth_verifier_free(v2);
    auth_keyset_free(ks2);
    auth_tokcache_clear(c);
    assert_int_equal(auth_tokcache_size(c), 0);
    assert_int_equal(auth_tokcache_get(c, verifier, t, strlen(t), NOW, &cl), 0);
    free(t);
    auth_tokcache_free(c);
}

static void test_many_entries_consistent(void **state)
{
    (void)state;
    /* a larger run, to exercise bucket chains: every token inserted is found again, with its own claims */
    enum { N = 600 };
    auth_tokcache_t *c = auth_tokcache_new(1024);
    assert_non_null(c);
    char *toks[N];
    struct revocation r = {0, 0};
    auth_claims_t cl;
    for (int i = 0; i < N; ++i) {
        char jti[16];
        snprintf(jti, sizeof(jti), "k%d", i);
        toks[i] = token(jti, NOW + 600 + i);
        assert_int_equal(auth_verify_bearer(verifier, c, toks[i], strlen(toks[i]), NOW, revoked_cb, &r, &cl), AUTH_OK);
    }
    for (int i = 0; i < N; ++i) {
        char jti[16];
        snprintf(jti, sizeof(jti), "k%d", i);
        assert_int_equal(auth_tokcache_get(c, verifier, toks[i], strlen(toks[i]), NOW, &cl), 1);
        assert_string_equal(cl.jti, jti);
        assert_int_equal(cl.exp, NOW + 600 + i);
        free(toks[i]);
    }
    assert_int_equal(auth_tokcache_size(c), N);
    auth_tokcache_free(c);
    assert_null(auth_tokcache_new((size_t)1 << 30));
    c = auth_tokcache_new(0);
    assert_int_equal(auth_tokcache_capacity(c), AUTH_TOKCACHE_DEFAULT);
    auth_tokcache_free(c);
}

/* the by-reference path: the claims come from the cache without a copy, and the revocation callback
 * gets the memo kept with the cached token (zeroed when the token enters the cache, the same memo on
 * every hit, a fresh one for a new entry), or a call-local zeroed memo when nothing can be cached */
struct memo_probe {
    int calls;
    auth_revocation_memo_t *last;
    uint64_t seen_version;
    int revoked;
};

static int memo_cb(void *data, const char *sid, const char *jti, auth_revocation_memo_t *memo)
{
    struct memo_probe *p = data;
    assert_non_null(memo);
    assert_string_equal(sid, "s-1");
    ++p->calls;
    p->last = memo;
    p->seen_version = memo->version;
    memo->version = 42; /* what a real check would remember */
    return p->revoked;
}

static void test_ref_and_memo(void **state)
{
    (void)state;
    auth_tokcache_t *c = auth_tokcache_new(16);
    char *t = token("ref", NOW + 600), *u = token("ref2", NOW + 600);
    struct memo_probe p = {0, NULL, 0, 0};
    auth_claims_t scratch;
    const auth_claims_t *cl = NULL, *cl2 = NULL;
    assert_int_equal(auth_verify_bearer_ref(verifier, c, t, strlen(t), NOW, memo_cb, &p, &scratch, &cl), AUTH_OK);
    assert_true(cl != &scratch); /* cached: the claims live in the cache */
    assert_string_equal(cl->jti, "ref");
    assert_int_equal(p.seen_version, 0); /* a new entry's memo is zeroed */
    auth_revocation_memo_t *m1 = p.last;
    assert_int_equal(auth_verify_bearer_ref(verifier, c, t, strlen(t), NOW + 1, memo_cb, &p, &scratch, &cl2), AUTH_OK);
    assert_ptr_equal(cl2, cl);
    assert_ptr_equal(p.last, m1);         /* the same memo on a hit... */
    assert_int_equal(p.seen_version, 42); /* ...holding what the callback left there */
    assert_int_equal(auth_tokcache_stats(c).hits, 1);
    /* another token: its own memo, zeroed */
    assert_int_equal(auth_verify_bearer_ref(verifier, c, u, strlen(u), NOW, memo_cb, &p, &scratch, &cl2), AUTH_OK);
    assert_true(p.last != m1);
    assert_int_equal(p.seen_version, 0);
    assert_string_equal(cl2->jti, "ref2");
    /* revoked and unavailable answers are passed through, the claims still given */
    p.revoked = 1;
    assert_int_equal(auth_verify_bearer_ref(verifier, c, t, strlen(t), NOW + 2, memo_cb, &p, &scratch, &cl2), AUTH_REVOKED);
    assert_ptr_equal(cl2, cl);
    p.revoked = -1;
    assert_int_equal(auth_verify_bearer_ref(verifier, c, t, strlen(t), NOW + 2, memo_cb, &p, &scratch, &cl2), AUTH_UNAVAILABLE);
    /* no cache: scratch holds the claims and the memo is the call's own, zeroed each time */
    p.revoked = 0;
    assert_int_equal(auth_verify_bearer_ref(verifier, NULL, t, strlen(t), NOW, memo_cb, &p, &scratch, &cl2), AUTH_OK);
    assert_ptr_equal(cl2, &scratch);
    assert_int_equal(p.seen_version, 0);
    /* a bad token never reaches the callback; a missing callback is an internal error */
    int calls = p.calls;
    t[strlen(t) - 2] ^= 1;
    assert_int_not_equal(auth_verify_bearer_ref(verifier, c, t, strlen(t), NOW, memo_cb, &p, &scratch, &cl2), AUTH_OK);
    assert_int_equal(p.calls, calls);
    assert_int_equal(auth_verify_bearer_ref(verifier, c, u, strlen(u), NOW, NULL, &p, &scratch, &cl2), AUTH_INTERNAL);
    free(t);
    free(u);
    auth_tokcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_skips_verification),
        cmocka_unit_test(test_ref_and_memo),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_capacity_bound_and_clock),
        cmocka_unit_test(test_other_bytes_miss),
        cmocka_unit_test(test_verdicts_belong_to_their_verifier),
        cmocka_unit_test(test_many_entries_consistent),
    };
    return cmocka_run_group_tests_name("auth_tokcache", tests, setup, teardown);
}
