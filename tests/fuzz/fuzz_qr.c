/*
 * tests/fuzz/fuzz_qr.c — libFuzzer target for everything in qr/ that reads outside input:
 * the code's text form and Base45, the full validity rule against a fixed trust list, base64url,
 * the trust list's JWS (with a JWKS, a pinned key, and unverified) and JWKS documents.
 *
 * The first byte picks the parser (seeds use '0'..'5'); the rest is its input. Round-trip
 * properties are checked too (a decoder that accepts must give back exactly what it read), so a
 * second spelling of one value is a crash. Build: see the Makefile's `fuzz` target.
 * HEGATE_FUZZ_WRITE_SEEDS=DIR makes the initializer write valid seed inputs into DIR (this is
 * how tests/fuzz/seeds/fuzz_qr/ was made).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qr/qr.h"

#define FUZZ_NOW 1750000000

/* Fuzzing-only keys, generated for this file; they sign nothing anywhere else. */
static const char issuer_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                 "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3n8mIcwXNKoxxzJA\n"
                                 "1ryE5Jv5F6KF/VdRXnXVS3SLXh2hRANCAAQ5OEwSk5gLb228l1MBUWLUj2QkXTy/\n"
                                 "Udz+Mei1X7uIoThcDRsATzI2HoiLsqTwx/5Bjzu8rICgU9m/Jo/HdluY\n"
                                 "-----END PRIVATE KEY-----\n";
static const char signer_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                 "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3sWyLCuIA8KbseGE\n"
                                 "870pyyukm5ykfF2pt+dcBd4X3hKhRANCAARTv69f+y7K5HsM7trmgbWrvvAe4JEy\n"
                                 "EgBysG+gAjUGktXLurQoB1wTplNoUakJY7c73H+2B8Ywa0Ef7N/HQpaL\n"
                                 "-----END PRIVATE KEY-----\n";

static qr_key_t *issuer, *signer;
static qr_trust_t *trust;
static qr_jwks_t *jwks;

static char *jwks_doc(const qr_key_t *key)
{
    uint8_t x[32], y[32];
    char xs[44], ys[44], kid[12];
    static char doc[512];
    crypto_key_xy(key, x, y);
    qr_key_jwk_kid(key, kid);
    crypto_b64url_encode(xs, x, 32);
    crypto_b64url_encode(ys, y, 32);
    snprintf(doc, sizeof(doc),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"use\":\"sig\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%"
             "s\"}]}",
             kid, xs, ys);
    return doc;
}

static void write_seed(const char *dir, const char *name, char selector, const void *data, size_t len)
{
    char path[512];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fp = fopen(path, "wb")) == NULL)
        abort();
    fputc(selector, fp);
    fwrite(data, 1, len, fp);
    fclose(fp);
}

/* One valid code (text and bytes), the trust list's JWS, the JWKS, and a Base45 string. */
static void write_seeds(const char *dir)
{
    qr_key_t *device = crypto_key_generate();
    qr_credential_t c = {.scene = QR_SCENE_TRANSIT, .serial = 4242, .expires = FUZZ_NOW + 86400};
    uint8_t cred[HMT1_CRED_LEN], code[HMT1_LEN];
    char text[HMT1_TEXT_LEN + 1], *jws, *doc = jwks_doc(signer);
    size_t len;
    crypto_key_point(device, c.device_key);
    if (qr_credential_issue(&c, issuer, cred) != 0 || qr_code_make(cred, device, FUZZ_NOW, 60, 1, NULL, code) != 0 ||
        qr_trust_to_jws(trust, signer, NULL, &jws, &len) != 0)
        abort();
    qr_code_to_text(code, text);
    write_seed(dir, "text-valid", '0', text, HMT1_TEXT_LEN);
    write_seed(dir, "base45", '1', text + HMT1_PREFIX_LEN, HMT1_B45_LEN);
    write_seed(dir, "bytes-valid", '2', code, HMT1_LEN);
    write_seed(dir, "trust-jws", '3', jws, len);
    write_seed(dir, "jwks", '4', doc, strlen(doc));
    write_seed(dir, "b64url", '5', jws, strcspn(jws, "."));
    free(jws);
    crypto_key_free(device);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *seeds = getenv("HEGATE_FUZZ_WRITE_SEEDS");
    uint32_t deny[] = {666, 4243};
    char *doc;
    (void)argc, (void)argv;
    issuer = crypto_key_from_pem(issuer_pem, sizeof(issuer_pem) - 1, NULL, 0);
    signer = crypto_key_from_pem(signer_pem, sizeof(signer_pem) - 1, NULL, 0);
    trust = qr_trust_new(FUZZ_NOW);
    if (issuer == NULL || signer == NULL || trust == NULL || qr_trust_add_key(trust, issuer, QR_SCENES_ALL, 0, 4102444800) != 0 ||
        qr_trust_set_deny(trust, deny, 2) != 0)
        abort();
    doc = jwks_doc(signer);
    if ((jwks = qr_jwks_parse(doc, strlen(doc))) == NULL)
        abort();
    if (seeds != NULL)
        write_seeds(seeds);
    return 0;
}

static void fuzz_verify_text(const uint8_t *data, size_t size)
{
    qr_seen_slot_t slots[QR_SEEN_WINDOW];
    qr_seenset_t seen;
    qr_verify_params_t p = {.trust = trust, .now = FUZZ_NOW, .skew = 20, .scenes = QR_SCENES_ALL};
    qr_code_t c;
    if (qr_seenset_init(&seen, slots, QR_SEEN_WINDOW) != 0)
        abort();
    p.seen = qr_seenset_check_and_mark;
    p.seen_ctx = &seen;
    if (qr_code_verify_text(&p, (const char *)data, size, &c) == QR_OK &&
        qr_code_verify_text(&p, (const char *)data, size, &c) != QR_REPLAYED)
        abort(); /* a valid code is consumed */
}

static void fuzz_text_round_trip(const uint8_t *data, size_t size)
{
    uint8_t bytes[HMT1_LEN];
    char text[HMT1_TEXT_LEN + 1];
    if (qr_code_from_text((const char *)data, size, bytes) == 0) {
        qr_code_to_text(bytes, text);
        if (size != HMT1_TEXT_LEN || memcmp(text, data, size) != 0)
            abort();
    }
}

static void fuzz_base45(const uint8_t *data, size_t size)
{
    uint8_t *out = malloc(size / 3 * 2 + 2);
    char *back = malloc(size + 2);
    size_t n, m;
    if (out == NULL || back == NULL)
        abort();
    if (qr_base45_decode((const char *)data, size, out, size / 3 * 2 + 2, &n) == 0) {
        if (qr_base45_encode(out, n, back, size + 1, &m) != 0 || m != size || memcmp(back, data, size) != 0)
            abort(); /* Base45 has one spelling per value */
    }
    free(out);
    free(back);
}

static void fuzz_b64url(const uint8_t *data, size_t size)
{
    uint8_t *out = malloc(size / 4 * 3 + 3);
    char *back = malloc(size + 2);
    long n;
    if (out == NULL || back == NULL)
        abort();
    if ((n = crypto_b64url_decode(out, size / 4 * 3 + 3, (const char *)data, size)) >= 0) {
        if (crypto_b64url_encode(back, out, (size_t)n) != size || memcmp(back, data, size) != 0)
            abort(); /* strict base64url has one spelling per value */
    }
    free(out);
    free(back);
}

static void fuzz_trust(const uint8_t *data, size_t size)
{
    char err[128], *jws;
    size_t len;
    qr_trust_t *a = qr_trust_from_jws((const char *)data, size, jwks, NULL, err, sizeof(err));
    qr_trust_t *b = qr_trust_from_jws((const char *)data, size, NULL, signer, err, sizeof(err));
    qr_trust_t *u = qr_trust_from_jws_unverified((const char *)data, size, err, sizeof(err)), *again;
    if ((a != NULL || b != NULL) && u == NULL)
        abort();     /* verified implies well-formed */
    if (u != NULL) { /* what parses, serializes and parses again */
        if (qr_trust_to_jws(u, signer, NULL, &jws, &len) != 0 ||
            (again = qr_trust_from_jws(jws, len, jwks, NULL, err, sizeof(err))) == NULL ||
            qr_trust_num_keys(again) != qr_trust_num_keys(u))
            abort();
        qr_trust_free(again);
        free(jws);
    }
    qr_trust_free(a);
    qr_trust_free(b);
    qr_trust_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qr_verify_params_t p = {.trust = trust, .now = FUZZ_NOW, .skew = 20, .scenes = QR_SCENES_ALL};
    if (size == 0)
        return 0;
    switch (data[0] % 6) {
    case 0:
        fuzz_verify_text(data + 1, size - 1);
        fuzz_text_round_trip(data + 1, size - 1);
        break;
    case 1:
        fuzz_base45(data + 1, size - 1);
        break;
    case 2:
        qr_code_verify(&p, data + 1, size - 1, NULL);
        break;
    case 3:
        fuzz_trust(data + 1, size - 1);
        break;
    case 4:
        qr_jwks_free(qr_jwks_parse((const char *)data + 1, size - 1));
        break;
    case 5:
        fuzz_b64url(data + 1, size - 1);
        break;
    }
    return 0;
}
