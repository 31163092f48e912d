/*
 * tests/unit/auth/test_kdf.c — auth/kdf.c: the scrypt hash format, verification (right and wrong
 * secrets, an RFC 7914 §12 vector written in our format), refusal of malformed hashes without
 * running scrypt, and the worker pool on a real h2o event loop: results arrive on the loop, never
 * inside the call; an unknown user (NULL hash) answers 0; a cancelled job's callback never runs;
 * a full queue says so. Each scrypt costs ~100 ms, so hashes are made once and reused.
 */
#include "tests/unit/unit.h"
#include <time.h>
#include <openssl/evp.h>
#include "auth/auth.h"
#include "crypto/crypto.h"
#include "auth/kdf.h"

static char hash_a[AUTH_KDF_HASH_MAX]; /* of "correct horse" */

/* RFC 7914 §12: P="pleaseletmein", S="SodiumChloride", N=16384, r=8, p=1, dkLen=64 */
#define RFC7914_HASH                                                                                                               \
    "$scrypt$14$8$1$U29kaXVtQ2hsb3JpZGU$cCO9yzr9c0hGHAbNgf046_2o-7qQT44-qbVD9lRdofLVQylVYT8Pz2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw"

static int setup_hashes(void **state)
{
    return auth_kdf_hash("correct horse", 13, hash_a);
}

static void test_kdf_hash_format(void **state)
{
    /* $scrypt$15$8$1$ + 22 characters of salt + $ + 43 of hash */
    assert_memory_equal(hash_a, "$scrypt$15$8$1$", 15);
    assert_int_equal(strlen(hash_a), 15 + 22 + 1 + 43);
    assert_int_equal(hash_a[15 + 22], '$');
    const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_int_equal(strspn(hash_a + 15, b64), 22);
    assert_int_equal(strspn(hash_a + 15 + 23, b64), 43);
    char again[AUTH_KDF_HASH_MAX];
    assert_int_equal(auth_kdf_hash("correct horse", 13, again), 0);
    assert_string_not_equal(again, hash_a); /* a fresh salt */
    assert_int_equal(auth_kdf_verify(again, "correct horse", 13), 1);
}

static void test_kdf_verify_right_and_wrong(void **state)
{
    assert_int_equal(auth_kdf_verify(hash_a, "correct horse", 13), 1);
    assert_int_equal(auth_kdf_verify(hash_a, "correct horsf", 13), 0);
    assert_int_equal(auth_kdf_verify(hash_a, "correct horse", 12), 0);  /* a prefix */
    assert_int_equal(auth_kdf_verify(hash_a, "correct horse!", 14), 0); /* one byte more */
    assert_int_equal(auth_kdf_verify(hash_a, "", 0), 0);
}

static void test_kdf_verify_rfc7914_vector(void **state)
{
    assert_int_equal(auth_kdf_verify(RFC7914_HASH, "pleaseletmein", 13), 1);
    assert_int_equal(auth_kdf_verify(RFC7914_HASH, "pleaseletmeio", 13), 0);
}

static void test_kdf_verify_embedded_nul_counts(void **state)
{
    char h[AUTH_KDF_HASH_MAX];
    assert_int_equal(auth_kdf_hash("a\0b", 3, h), 0);
    assert_int_equal(auth_kdf_verify(h, "a\0b", 3), 1);
    assert_int_equal(auth_kdf_verify(h, "a", 1), 0);
}

static void test_kdf_refuses_too_long_secrets(void **state)
{
    char *pw = calloc(1, AUTH_KDF_SECRET_MAX + 1), h[AUTH_KDF_HASH_MAX];
    assert_int_equal(auth_kdf_hash(pw, AUTH_KDF_SECRET_MAX + 1, h), -1);
    assert_int_equal(auth_kdf_verify(hash_a, pw, AUTH_KDF_SECRET_MAX + 1), 0);
    free(pw);
}

/* "$scrypt$LOGN$R$P$salt$hash" of "correct horse", computed here with OpenSSL's scrypt directly */
static void make_hash(unsigned logn, unsigned r, unsigned p, char *out, size_t outsz)
{
    const uint8_t salt[16] = "0123456789abcdef";
    uint8_t dk[32];
    char salt_b64[32], dk_b64[64];
    assert_int_equal(EVP_PBE_scrypt("correct horse", 13, salt, sizeof(salt), (uint64_t)1 << logn, r, p, 512u << 20, dk, sizeof(dk)),
                     1);
    crypto_b64url_encode(salt_b64, salt, sizeof(salt));
    crypto_b64url_encode(dk_b64, dk, sizeof(dk));
    snprintf(out, outsz, "$scrypt$%u$%u$%u$%s$%s", logn, r, p, salt_b64, dk_b64);
}

static void test_kdf_verify_accepts_other_costs_in_range_only(void **state)
{
    char h[AUTH_KDF_HASH_MAX];
    make_hash(10, 8, 1, h, sizeof(h)); /* the cheapest accepted cost */
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 1);
    make_hash(10, 32, 2, h, sizeof(h));
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 1);
    make_hash(10, 1, 16, h, sizeof(h));
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 1);
    /* genuine hashes whose cost is out of bounds: a downgraded N, or r / p beyond the limits */
    make_hash(9, 8, 1, h, sizeof(h));
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 0);
    make_hash(10, 33, 1, h, sizeof(h));
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 0);
    make_hash(10, 1, 17, h, sizeof(h));
    assert_int_equal(auth_kdf_verify(h, "correct horse", 13), 0);
}

static void test_kdf_verify_refuses_malformed_hashes_quickly(void **state)
{
    char salt_hash[128];
    strcpy(salt_hash, strchr(hash_a + 15, '$') - 22); /* "<salt>$<hash>" of hash_a */
    char bad[32][AUTH_KDF_HASH_MAX + 32];
    int n = 0;
    snprintf(bad[n++], sizeof(bad[0]), "%s", "");
    snprintf(bad[n++], sizeof(bad[0]), "$bcrypt$15$8$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$SCRYPT$15$8$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$9$8$1$%s", salt_hash);  /* N below 2^10 */
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$21$8$1$%s", salt_hash); /* N above 2^20 */
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$015$8$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$1a$8$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$99999999999$8$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$0$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$33$1$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$0$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$17$%s", salt_hash);
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$%s", salt_hash);                          /* p missing */
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$1$%.22s", salt_hash);                     /* hash missing */
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$1$AAAAAAAAAA$%s", salt_hash + 23);        /* 7-byte salt */
    snprintf(bad[n++], sizeof(bad[0]), "$scrypt$15$8$1$%.23sAAAAAAAAAAAAAAAAAAAA", salt_hash); /* 15-byte hash */
    snprintf(bad[n++], sizeof(bad[0]), "%s$", hash_a);                                         /* trailing junk */
    snprintf(bad[n++], sizeof(bad[0]), "%s=", hash_a);                                         /* padding */
    snprintf(bad[n++], sizeof(bad[0]), " %s", hash_a);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i != n; ++i)
        if (auth_kdf_verify(bad[i], "correct horse", 13) != 0)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(auth_kdf_verify(NULL, "correct horse", 13), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* none of them may cost a scrypt run (~100 ms each, more under sanitizers) */
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms < 50);
}

/* ---- the pool, on a real event loop ---- */

typedef struct {
    int calls, result;
} outcome_t;

static void on_result(void *data, int result)
{
    outcome_t *o = data;
    ++o->calls;
    o->result = result;
}

static h2o_evloop_t *loop;
static h2o_multithread_queue_t *queue;
static auth_kdf_port_t port;

/* runs the loop until every outcome in OS[0..N) has been called, or 60 s */
static void run_until_called(outcome_t *const *os, size_t n)
{
    time_t until = time(NULL) + 60;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i != n; ++i)
            done += os[i]->calls != 0;
        if (done == n)
            return;
        if (time(NULL) > until)
            fail_msg("KDF results did not arrive within 60 s");
        h2o_evloop_run(loop, 100);
    }
}

static void test_pool_verifies_on_the_loop(void **state)
{
    outcome_t right = {0}, wrong = {0}, unknown = {0};
    assert_non_null(auth_kdf_verify_async(&port, hash_a, "correct horse", 13, on_result, &right));
    assert_non_null(auth_kdf_verify_async(&port, hash_a, "wrong horse", 11, on_result, &wrong));
    assert_non_null(auth_kdf_verify_async(&port, NULL, "correct horse", 13, on_result, &unknown));
    assert_int_equal(right.calls + wrong.calls + unknown.calls, 0); /* never from inside the call */
    outcome_t *all[] = {&right, &wrong, &unknown};
    run_until_called(all, 3);
    assert_int_equal(right.result, 1);
    assert_int_equal(wrong.result, 0);
    assert_int_equal(unknown.result, 0);
    assert_int_equal(right.calls + wrong.calls + unknown.calls, 3);
}

static void test_pool_cancelled_job_never_calls_back(void **state)
{
    outcome_t cancelled = {0}, later1 = {0}, later2 = {0};
    auth_kdf_job_t *job = auth_kdf_verify_async(&port, hash_a, "correct horse", 13, on_result, &cancelled);
    assert_non_null(job);
    auth_kdf_cancel(job);
    /* jobs are taken in order: by the time the second one queued after it is answered, the
     * cancelled one has (almost always) come back too and been dropped */
    assert_non_null(auth_kdf_verify_async(&port, hash_a, "correct horse", 13, on_result, &later1));
    assert_non_null(auth_kdf_verify_async(&port, hash_a, "correct horse", 13, on_result, &later2));
    outcome_t *all[] = {&later1, &later2};
    run_until_called(all, 2);
    for (int i = 0; i != 10; ++i)
        h2o_evloop_run(loop, 10);
    assert_int_equal(cancelled.calls, 0);
    assert_int_equal(later1.result, 1);
}

/* last: it fills the queue, then stops the pool */
static void test_pool_full_queue_refuses(void **state)
{
    enum { N = 300 };
    static outcome_t outcomes[N];
    static outcome_t *accepted[N];
    size_t n = 0, refused = 0;
    /* the first two keep both workers busy with real hashes; the rest are malformed (answered at once) */
    for (int i = 0; i != N; ++i) {
        const char *h = i < 2 ? hash_a : "$scrypt$malformed";
        if (auth_kdf_verify_async(&port, h, "correct horse", 13, on_result, &outcomes[i]) != NULL)
            accepted[n++] = &outcomes[i];
        else
            ++refused;
    }
    assert_true(refused > 0);
    assert_true(n <= 256 + 2); /* the queue bound, plus what the workers already took */
    run_until_called(accepted, n);
    assert_int_equal(outcomes[0].result, 1);
    assert_int_equal(accepted[n - 1]->result, 0);
    auth_kdf_pool_stop();
}

static int setup_loop(void **state)
{
    if (setup_hashes(state) != 0)
        return -1;
    loop = h2o_evloop_create();
    queue = h2o_multithread_create_queue(loop);
    auth_kdf_port_init(&port, queue);
    return 0;
}

static int teardown_loop(void **state)
{
    h2o_multithread_unregister_receiver(queue, &port.receiver);
    h2o_multithread_destroy_queue(queue);
    h2o_evloop_destroy(loop);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kdf_hash_format),
        cmocka_unit_test(test_kdf_verify_right_and_wrong),
        cmocka_unit_test(test_kdf_verify_rfc7914_vector),
        cmocka_unit_test(test_kdf_verify_embedded_nul_counts),
        cmocka_unit_test(test_kdf_refuses_too_long_secrets),
        cmocka_unit_test(test_kdf_verify_accepts_other_costs_in_range_only),
        cmocka_unit_test(test_kdf_verify_refuses_malformed_hashes_quickly),
        cmocka_unit_test(test_pool_verifies_on_the_loop),
        cmocka_unit_test(test_pool_cancelled_job_never_calls_back),
        cmocka_unit_test(test_pool_full_queue_refuses),
    };
    return cmocka_run_group_tests(tests, setup_loop, teardown_loop);
}
