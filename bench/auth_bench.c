/*
 * bench/auth_bench.c — micro-benchmark of auth/'s token layer on this machine: ES256 signs/s,
 * full cache-miss verifications/s (auth_verify_token: split, header, key, signature, claims) on one
 * thread and on N threads sharing one verifier, and cache-hit verifications/s (auth_verify_bearer
 * through a per-thread auth_tokcache_t). Not part of the library or of `make test`.
 * Single-thread rates are per CPU-second of the measuring thread (best of 3 rounds), so that other
 * processes on the machine disturb them less; the multi-thread rate is wall-clock. The "OpenSSL
 * alone" line is the ceiling measured in the same run: EVP_PKEY_verify of a ready SHA-256 digest
 * with one reused context, as `openssl speed ecdsap256` does.
 * Build and run from the repo root with the line below (arguments: tokens, threads).
 */
// cc -std=gnu11 -O2 -I. -o build/auth_bench bench/auth_bench.c auth/*.c -ljansson -lssl -lcrypto -lpthread && build/auth_bench
// 20000 2
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "auth/auth.h"

static const char *const ISS = "https://hegate.example";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int not_revoked(void *data, const char *sid, const char *jti)
{
    (void)data, (void)sid, (void)jti;
    return 0;
}

struct job {
    const auth_verifier_t *v;
    char **tokens;
    size_t from, to;
    int64_t now;
    size_t ok;
};

static void *verify_range(void *arg)
{
    struct job *j = arg;
    auth_claims_t c;
    for (size_t i = j->from; i != j->to; ++i)
        j->ok += auth_verify_token(j->v, j->tokens[i], strlen(j->tokens[i]), j->now, &c) == AUTH_OK;
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    size_t nthreads = argc > 2 ? strtoul(argv[2], NULL, 10) : 2;
    if (n == 0 || nthreads == 0 || nthreads > 64)
        return 2;
    int64_t now = (int64_t)time(NULL);

    auth_keyset_t *ks = auth_keyset_new();
    if (ks == NULL || auth_keyset_add(ks, auth_key_generate(), now, INT64_MAX) != 0)
        return 1;
    auth_issuer_t is = {ISS, "hegate", ks};
    char err[256];
    auth_verifier_t *v = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    if (v == NULL)
        return 1;
    const auth_key_t *key = auth_keyset_signer(ks);

    char **tokens = calloc(n, sizeof(*tokens));
    double t_sign = 1e9;
    for (int round = 0; round < 3; ++round) {
        double t0 = cpu_s();
        for (size_t i = 0; i != n; ++i) {
            json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "iss", ISS, "sub", "u-8f2a61c0d9e4b7a3",
                                  "aud", "hegate", "client_id", "hecheng-app", "scope", "openid profile appointment query", "iat",
                                  (json_int_t)now, "exp", (json_int_t)now + 900, "jti", "", "sid", "s-5a1e0c", "acr", "pwd");
            char jti[32];
            snprintf(jti, sizeof(jti), "j-%zu", i);
            json_object_set_new(c, "jti", json_string(jti));
            free(tokens[i]);
            tokens[i] = auth_jwt_sign(key, c);
            json_decref(c);
            if (tokens[i] == NULL)
                return 1;
        }
        double t = cpu_s() - t0;
        t_sign = t < t_sign ? t : t_sign;
    }
    printf("token size: %zu bytes\n", strlen(tokens[0]));
    printf("sign (claims object -> token), 1 thread:        %8.0f /s per CPU-second\n", (double)n / t_sign);

    double t_verify = 1e9;
    struct job one = {v, tokens, 0, n, now, 0};
    for (int round = 0; round < 3; ++round) {
        one.ok = 0;
        double t0 = cpu_s();
        verify_range(&one);
        double t = cpu_s() - t0;
        t_verify = t < t_verify ? t : t_verify;
    }
    printf("verify, cache miss, 1 thread:                   %8.0f /s per CPU-second (%zu/%zu ok)\n", (double)n / t_verify, one.ok,
           n);

    {
        EVP_PKEY *pk = auth_key_pkey(key);
        uint8_t dg[32], sig[80];
        size_t sl = sizeof(sig);
        EVP_PKEY_CTX *sc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL), *vc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        memset(dg, 7, sizeof(dg));
        if (EVP_PKEY_sign_init(sc) != 1 || EVP_PKEY_sign(sc, sig, &sl, dg, sizeof(dg)) != 1 || EVP_PKEY_verify_init(vc) != 1)
            return 1;
        double best = 1e9;
        size_t okc = 0;
        for (int round = 0; round < 3; ++round) {
            double t0 = cpu_s();
            for (size_t i = 0; i != n; ++i)
                okc += EVP_PKEY_verify(vc, sig, sl, dg, sizeof(dg)) == 1;
            double t = cpu_s() - t0;
            best = t < best ? t : best;
        }
        EVP_PKEY_CTX_free(sc);
        EVP_PKEY_CTX_free(vc);
        printf("  OpenSSL alone (ECDSA P-256 verify), 1 thread: %8.0f /s per CPU-second -> ours is %.0f%% of it\n",
               (double)n / best, 100.0 * best / t_verify);
        if (okc != 3 * n)
            return 1;
    }

    pthread_t th[64];
    struct job jobs[64];
    double t0 = now_s();
    for (size_t t = 0; t != nthreads; ++t) {
        jobs[t] = (struct job){v, tokens, n * t / nthreads, n * (t + 1) / nthreads, now, 0};
        pthread_create(&th[t], NULL, verify_range, &jobs[t]);
    }
    size_t ok = 0;
    for (size_t t = 0; t != nthreads; ++t) {
        pthread_join(th[t], NULL);
        ok += jobs[t].ok;
    }
    double t_par = now_s() - t0;
    printf("verify, cache miss, %zu threads (wall clock):    %8.0f /s  (%zu/%zu ok)\n", nthreads, (double)n / t_par, ok, n);

    auth_tokcache_t *cache = auth_tokcache_new(AUTH_TOKCACHE_DEFAULT);
    size_t hot = n < 1000 ? n : 1000, rounds = 200000, hits_ok = 0;
    auth_claims_t c;
    for (size_t i = 0; i != hot; ++i)
        auth_verify_bearer(v, cache, tokens[i], strlen(tokens[i]), now, not_revoked, NULL, &c);
    t0 = cpu_s();
    for (size_t i = 0; i != rounds; ++i) {
        const char *tok = tokens[i % hot];
        hits_ok += auth_verify_bearer(v, cache, tok, strlen(tok), now, not_revoked, NULL, &c) == AUTH_OK;
    }
    double t_hit = cpu_s() - t0;
    auth_tokcache_stats_t st = auth_tokcache_stats(cache);
    printf("verify, cache hit (+ revocation cb), 1 thread: %8.0f /s per CPU-second (%zu ok, %llu hits)\n", (double)rounds / t_hit,
           hits_ok, (unsigned long long)st.hits);

    auth_tokcache_free(cache);
    for (size_t i = 0; i != n; ++i)
        free(tokens[i]);
    free(tokens);
    auth_verifier_free(v);
    auth_keyset_free(ks);
    return 0;
}
