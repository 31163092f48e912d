/*
 * crypto/internal.h — the layout of a key, shared by key.c (which builds keys) and es256.c (which
 * signs and verifies with them, caching per-thread contexts by serial). Private to crypto/: everyone
 * else goes through crypto/crypto.h and never sees the EVP_PKEY except by crypto_key_pkey.
 */
#ifndef hegate_crypto_internal_h
#define hegate_crypto_internal_h

#include <openssl/evp.h>
#include "crypto/crypto.h"

struct crypto_key {
    uint64_t serial; /* unique per key object ever made: names it in per-thread caches, never the address */
    EVP_PKEY *pkey;
    int has_private;
    uint8_t x[32], y[32];
    uint8_t spki_sha256[CRYPTO_SHA256_LEN];
};

/* key.c: a bare EVP_PKEY for a SEC1 point (33 or 65 bytes) on P-256, or NULL. */
EVP_PKEY *crypto_pkey_from_point(const uint8_t *point, size_t len);

#endif
