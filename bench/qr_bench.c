/*
 * bench/qr_bench.c — micro-benchmark of the qr/ library alone (issue 6): offline verifications/s as a
 * gate does them (text → bytes → trust list → issuer signature → deny list → device signature → time
 * windows → scene → seen-set: two ECDSA verifications per code), codes made/s as a phone does (one
 * ECDSA signature), and QR matrix + PNG renderings/s. Not part of the library or of `make test`.
 * Rates are per CPU-second of the measuring thread (best of 3 rounds), so other processes on the
 * machine disturb them less. The "OpenSSL alone" line is the ceiling measured in the same run:
 * EVP_PKEY_verify of a ready SHA-256 digest with one reused context (`openssl speed ecdsap256`):
 * two of those per code is the most a verifier can do.
 * Build from the repo root (bench/rows_qr.sh does): cc -std=gnu11 -O2 -I. -o build/qr_bench
 * bench/qr_bench.c build/libhegate.a <the Makefile's LDLIBS>; run: build/qr_bench [codes]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include "qr/qr.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "qr_bench: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    if (n == 0 || n > 10000000)
        return 2;
    int64_t now = (int64_t)time(NULL);

    /* an issuer, a trust list with a deny list of 1000 serials, a device and its credential */
    qr_key_t *issuer = crypto_key_generate(), *device = crypto_key_generate();
    qr_trust_t *trust = qr_trust_new(now);
    if (issuer == NULL || device == NULL || trust == NULL || qr_trust_add_key(trust, issuer, QR_SCENES_ALL, now - 60, now + 86400) != 0)
        return fail("cannot make the keys");
    uint32_t deny[1000];
    for (size_t i = 0; i != 1000; ++i)
        deny[i] = (uint32_t)(1000000 + 7 * i);
    qr_trust_set_deny(trust, deny, 1000);
    qr_credential_t c = {.scene = QR_SCENE_TRANSIT, .serial = 42, .expires = (uint32_t)(now + 3600)};
    qr_transit_t t = {.fare_class = 1, .operator_id = 1, .offline_cap_fen = 2000};
    qr_transit_encode(&t, c.entitlements);
    crypto_key_point(device, c.device_key);
    uint8_t cred[HMT1_CRED_LEN];
    if (qr_credential_issue(&c, issuer, cred) != 0)
        return fail("cannot issue the credential");

    /* codes made as a phone makes them: distinct counters */
    char(*texts)[HMT1_TEXT_LEN + 1] = malloc(n * sizeof(*texts));
    if (texts == NULL)
        return fail("out of memory");
    double best = 1e9;
    for (int round = 0; round < 3; ++round) {
        double t0 = cpu_s();
        for (size_t i = 0; i != n; ++i) {
            uint8_t code[HMT1_LEN];
            if (qr_code_make(cred, device, (uint32_t)now, 60, (uint32_t)(i + 1), NULL, code) != 0)
                return fail("qr_code_make failed");
            qr_code_to_text(code, texts[i]);
        }
        double dt = cpu_s() - t0;
        best = dt < best ? dt : best;
    }
    printf("codes made (device signature + Base45), 1 thread:   %8.0f /s per CPU-second\n", (double)n / best);

    /* offline verification, each round with a fresh seen-set (every code is new to it) */
    size_t nslots = 4 * n + QR_SEEN_WINDOW;
    qr_seen_slot_t *slots = malloc(nslots * sizeof(*slots));
    qr_seenset_t seen;
    if (slots == NULL)
        return fail("out of memory");
    best = 1e9;
    size_t valid = 0, replayed = 0;
    for (int round = 0; round < 3; ++round) {
        if (qr_seenset_init(&seen, slots, nslots) != 0)
            return fail("qr_seenset_init failed");
        qr_verify_params_t p = {.trust = trust, .now = now, .skew = 20, .scenes = qr_role_scenes("transit"),
                                .seen = qr_seenset_check_and_mark, .seen_ctx = &seen};
        valid = 0;
        double t0 = cpu_s();
        for (size_t i = 0; i != n; ++i)
            valid += qr_code_verify_text(&p, texts[i], HMT1_TEXT_LEN, NULL) == QR_OK;
        double dt = cpu_s() - t0;
        best = dt < best ? dt : best;
        /* the same codes again: every one replayed (the check really consumed them) */
        if (round == 0)
            for (size_t i = 0; i != n && i != 1000; ++i)
                replayed += qr_code_verify_text(&p, texts[i], HMT1_TEXT_LEN, NULL) == QR_REPLAYED;
    }
    double verify_rate = (double)n / best;
    printf("offline verifications (2 ECDSA verifies), 1 thread: %8.0f /s per CPU-second (%zu/%zu valid, %zu/%zu replayed "
           "on a second pass)\n",
           verify_rate, valid, n, replayed, n < 1000 ? n : 1000);
    if (valid != n)
        return fail("not every code verified");

    /* the ceiling: OpenSSL's raw P-256 verify of a ready digest, one reused context */
    {
        EVP_PKEY *pk = EVP_EC_gen("P-256");
        uint8_t dg[32], sig[80];
        size_t sl = sizeof(sig), okc = 0;
        EVP_PKEY_CTX *sc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL), *vc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        memset(dg, 7, sizeof(dg));
        if (pk == NULL || EVP_PKEY_sign_init(sc) != 1 || EVP_PKEY_sign(sc, sig, &sl, dg, sizeof(dg)) != 1 ||
            EVP_PKEY_verify_init(vc) != 1)
            return fail("OpenSSL reference failed");
        best = 1e9;
        for (int round = 0; round < 3; ++round) {
            double t0 = cpu_s();
            for (size_t i = 0; i != n; ++i)
                okc += EVP_PKEY_verify(vc, sig, sl, dg, sizeof(dg)) == 1;
            double dt = cpu_s() - t0;
            best = dt < best ? dt : best;
        }
        EVP_PKEY_CTX_free(sc);
        EVP_PKEY_CTX_free(vc);
        EVP_PKEY_free(pk);
        double raw = (double)n / best;
        printf("  OpenSSL alone (one P-256 verify), 1 thread:       %8.0f /s per CPU-second -> ceiling %.0f codes/s; ours is "
               "%.0f%% of it\n",
               raw, raw / 2, 100.0 * verify_rate / (raw / 2));
        if (okc != 3 * n)
            return fail("OpenSSL reference did not verify");
    }

    /* rendering: matrix + PNG at the endpoint's 8 px per module */
    size_t nr = n / 10 < 200 ? 200 : n / 10;
    best = 1e9;
    size_t bytes = 0;
    for (int round = 0; round < 3; ++round) {
        double t0 = cpu_s();
        for (size_t i = 0; i != nr; ++i) {
            qr_matrix_t m;
            uint8_t *png;
            size_t len;
            if (qr_matrix_encode(texts[i % n], HMT1_TEXT_LEN, &m) != 0 || qr_render_png_alloc(&m, 8, &png, &len) != 0)
                return fail("rendering failed");
            bytes = len;
            free(png);
            qr_matrix_free(&m);
        }
        double dt = cpu_s() - t0;
        best = dt < best ? dt : best;
    }
    printf("QR matrix + PNG (8 px/module, %zu bytes), 1 thread:  %8.0f /s per CPU-second\n", bytes, (double)nr / best);

    free(slots);
    free(texts);
    qr_trust_free(trust);
    crypto_key_free(issuer);
    crypto_key_free(device);
    return 0;
}
