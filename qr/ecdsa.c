/*
 * qr/ecdsa.c — what HMT1 adds to crypto/'s P-256 keys and ES256: the low-S rule for codes, the key
 * ids (SPEC §7.1's 4 bytes, SPEC §6's JWK kid) and reading key files.
 *
 * Called by hmt1.c (issuer and device signatures, key ids), trust.c (kids) and cli.c (key files).
 * A code's signature has one spelling: high S is refused here before crypto/ checks the rest, so
 * nothing but low-S, in-range r‖s ever verifies as a code. Never logs key material; a key file's
 * text is cleansed once parsed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "qr/internal.h"

#define KEY_FILE_MAX (64 * 1024)

char *qr_read_file(const char *path, size_t max, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (fp == NULL)
        return NULL;
    if ((buf = malloc(max + 1)) != NULL) {
        n = fread(buf, 1, max + 1, fp);
        if (ferror(fp) || n > max) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            if (len != NULL)
                *len = n;
        }
    }
    fclose(fp);
    return buf;
}

qr_key_t *qr_key_load_pem_file(const char *path)
{
    size_t len;
    char *pem = qr_read_file(path, KEY_FILE_MAX, &len);
    qr_key_t *k;
    if (pem == NULL)
        return NULL;
    k = crypto_key_from_pem(pem, len, NULL, 0);
    OPENSSL_cleanse(pem, len);
    free(pem);
    return k;
}

void qr_key_id(const qr_key_t *key, uint8_t out[HMT1_KID_LEN])
{
    memcpy(out, crypto_key_spki_sha256(key), HMT1_KID_LEN);
}

void qr_key_jwk_kid(const qr_key_t *key, char out[12])
{
    crypto_b64url_encode(out, crypto_key_spki_sha256(key), 8);
}

int qr_ecdsa_verify(const qr_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    if (siglen != HMT1_SIG_LEN || !crypto_es256_is_low_s(sig))
        return -1;
    return crypto_es256_verify(key, msg, len, sig, siglen);
}

int qr_ecdsa_verify_point(const uint8_t *point, size_t pointlen, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    if (siglen != HMT1_SIG_LEN || !crypto_es256_is_low_s(sig)) /* cheap checks before decoding the point */
        return -1;
    return crypto_es256_verify_point(point, pointlen, msg, len, sig, siglen);
}
