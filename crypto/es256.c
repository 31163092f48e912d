/*
 * crypto/es256.c — SHA-256, and ECDSA P-256 / SHA-256 with raw r‖s signatures, through OpenSSL 3.
 *
 * Called by auth/jwt.c for every access token (the gateway's hot path), by qr/ for every code and
 * trust list, and by key.c (SPKI hashes). r and s are range-checked before OpenSSL sees them and
 * converted to DER here; signing always yields the low-S twin. Verification with a crypto_key_t
 * reuses a per-thread context made once per key, so a request allocates nothing. Policy (low-S
 * only, which key, which algorithm) is the caller's; this file never logs or keeps a message.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include "crypto/internal.h"

/* the order n of P-256, and (n - 1) / 2: s is "high" when s > (n - 1) / 2 */
static const uint8_t p256_n[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
static const uint8_t p256_half_n[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF,
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B,
                                        0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};

/* ---- raw r‖s ------------------------------------------------------------------------------------ */

/* 1 ≤ v < n (big-endian, equal lengths: memcmp orders them as numbers) */
static int scalar_in_range(const uint8_t v[32])
{
    static const uint8_t zero[32];
    return memcmp(v, zero, 32) != 0 && memcmp(v, p256_n, 32) < 0;
}

int crypto_es256_is_low_s(const uint8_t sig[CRYPTO_ES256_SIG_LEN])
{
    return memcmp(sig + 32, p256_half_n, 32) <= 0;
}

/* one DER INTEGER for the unsigned big-endian V: minimal length, a 0x00 first if the top bit is set */
static size_t der_integer(uint8_t *out, const uint8_t v[32])
{
    size_t skip = 0;
    while (skip < 31 && v[skip] == 0)
        ++skip;
    size_t len = 32 - skip, pad = (v[skip] & 0x80) != 0;
    out[0] = 0x02;
    out[1] = (uint8_t)(len + pad);
    out[2] = 0x00;
    memcpy(out + 2 + pad, v + skip, len);
    return 2 + pad + len;
}

/* raw r‖s → DER ECDSA-Sig-Value (at most 2 + 2 × 35 = 72 bytes: always the short length form) */
static size_t raw_to_der(uint8_t der[72], const uint8_t sig[64])
{
    size_t n = 2;
    n += der_integer(der + n, sig);
    n += der_integer(der + n, sig + 32);
    der[0] = 0x30;
    der[1] = (uint8_t)(n - 2);
    return n;
}

/* DER ECDSA-Sig-Value (as OpenSSL signs) → raw r‖s, the low-S twin: 0 or -1 */
static int der_to_raw_low_s(const uint8_t *der, size_t derlen, uint8_t sig[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    int ok = es != NULL && p == der + derlen && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
             BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32;
    ECDSA_SIG_free(es);
    if (!ok)
        return -1;
    if (!crypto_es256_is_low_s(sig)) { /* s := n - s: the same signature, low-S */
        unsigned borrow = 0;
        for (int i = 31; i >= 0; --i) {
            unsigned d = (unsigned)p256_n[i] - sig[32 + i] - borrow;
            sig[32 + i] = (uint8_t)d;
            borrow = (d >> 8) & 1;
        }
    }
    return 0;
}

/* ---- SHA-256 and the per-thread contexts ---------------------------------------------------- */

/*
 * Verification contexts, per thread. A fresh EVP_DigestVerifyInit per signature costs an algorithm
 * fetch and a context build (~10% of a verification); instead each thread keeps, for the last few
 * keys it used, an EVP_PKEY_CTX already set up for ECDSA verification (holding its own reference
 * to the key, so a key freed by a reload cannot leave it dangling), plus one SHA-256 context.
 * Keys are told apart by serial, never by address. Freed when the thread exits. Signing keeps its
 * own slots the same way: EVP_PKEY_sign draws a fresh nonce on every call.
 */
#define VERIFY_SLOTS 8

struct verify_tls {
    EVP_MD_CTX *md;
    unsigned next, sign_next;
    struct {
        uint64_t serial;
        EVP_PKEY_CTX *ctx;
    } slot[VERIFY_SLOTS], sign_slot[VERIFY_SLOTS];
};

static pthread_once_t verify_once = PTHREAD_ONCE_INIT;
static pthread_key_t verify_key;
static EVP_MD *verify_sha256;
static int verify_ready;

static void verify_tls_free(void *p)
{
    struct verify_tls *t = p;
    for (unsigned i = 0; i != VERIFY_SLOTS; ++i) {
        EVP_PKEY_CTX_free(t->slot[i].ctx);
        EVP_PKEY_CTX_free(t->sign_slot[i].ctx);
    }
    EVP_MD_CTX_free(t->md);
    free(t);
}

static void verify_init(void)
{
    verify_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    verify_ready = verify_sha256 != NULL && pthread_key_create(&verify_key, verify_tls_free) == 0;
}

/* SHA-256, fetched once (OpenSSL 3's implicit fetch per call costs time and a global lock) */
static const EVP_MD *sha256_md(void)
{
    pthread_once(&verify_once, verify_init);
    return verify_sha256 != NULL ? verify_sha256 : EVP_sha256();
}

int crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    unsigned dlen = 0;
    if (EVP_Digest(msg, len, out, &dlen, sha256_md(), NULL) != 1 || dlen != CRYPTO_SHA256_LEN) {
        memset(out, 0, CRYPTO_SHA256_LEN); /* not reached with the default provider; never leave OUT undefined */
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* this thread's ECDSA context for KEY (and its digest context), verifying or SIGNING, or NULL: then use the slow path */
static EVP_PKEY_CTX *pkey_ctx(const crypto_key_t *key, EVP_MD_CTX **md, int signing)
{
    pthread_once(&verify_once, verify_init);
    if (!verify_ready)
        return NULL;
    struct verify_tls *t = pthread_getspecific(verify_key);
    if (t == NULL) {
        if ((t = calloc(1, sizeof(*t))) == NULL || (t->md = EVP_MD_CTX_new()) == NULL || pthread_setspecific(verify_key, t) != 0) {
            if (t != NULL)
                EVP_MD_CTX_free(t->md);
            free(t);
            return NULL;
        }
    }
    *md = t->md;
    __typeof__(t->slot[0]) *slots = signing ? t->sign_slot : t->slot;
    for (unsigned i = 0; i != VERIFY_SLOTS; ++i)
        if (slots[i].ctx != NULL && slots[i].serial == key->serial)
            return slots[i].ctx;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (ctx == NULL || (signing ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, verify_sha256) != 1) {
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    unsigned i = (signing ? t->sign_next++ : t->next++) % VERIFY_SLOTS;
    EVP_PKEY_CTX_free(slots[i].ctx);
    slots[i].serial = key->serial;
    slots[i].ctx = ctx;
    return ctx;
}

/* SHA-256 of MSG with this thread's digest context MD: 1 on success */
static int sha256_into(EVP_MD_CTX *md, const void *msg, size_t len, uint8_t digest[32])
{
    unsigned dlen = 0;
    return EVP_DigestInit_ex2(md, verify_sha256, NULL) == 1 && EVP_DigestUpdate(md, msg, len) == 1 &&
           EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
}

/* ---- sign / verify ------------------------------------------------------------------------------ */

int crypto_es256_sign(const crypto_key_t *key, const void *msg, size_t len, uint8_t sig[CRYPTO_ES256_SIG_LEN])
{
    if (!key->has_private)
        return -1;
    uint8_t der[80];
    size_t derlen = sizeof(der);
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = pkey_ctx(key, &md, 1);
    int ok;
    if (pctx != NULL) {
        uint8_t digest[32];
        ok = sha256_into(md, msg, len, digest) && EVP_PKEY_sign(pctx, der, &derlen, digest, 32) == 1;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
             EVP_DigestSign(ctx, der, &derlen, msg, len) == 1;
        EVP_MD_CTX_free(ctx);
    }
    if (!ok || der_to_raw_low_s(der, derlen, sig) != 0) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* one verification with a fresh context: for a key without per-thread slots (a point, or no TLS) */
static int verify_pkey_once(EVP_PKEY *pkey, const uint8_t *der, size_t derlen, const void *msg, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, sha256_md(), NULL, pkey) == 1 &&
             EVP_DigestVerify(ctx, der, derlen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* SIG as DER into DER (72 bytes), after the checks every ES256 signature must pass: 64 bytes, r and s in [1, n − 1] */
static size_t sig_to_der(const uint8_t *sig, size_t siglen, uint8_t der[72])
{
    if (siglen != CRYPTO_ES256_SIG_LEN || !scalar_in_range(sig) || !scalar_in_range(sig + 32))
        return 0;
    return raw_to_der(der, sig);
}

int crypto_es256_verify(const crypto_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    uint8_t der[72];
    size_t derlen = sig_to_der(sig, siglen, der);
    if (derlen == 0)
        return -1;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = pkey_ctx(key, &md, 0);
    int ok;
    if (pctx != NULL) {
        uint8_t digest[32];
        ok = sha256_into(md, msg, len, digest) && EVP_PKEY_verify(pctx, der, derlen, digest, 32) == 1;
    } else {
        ok = verify_pkey_once(key->pkey, der, derlen, msg, len);
    }
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : -1;
}

int crypto_es256_verify_point(const uint8_t *point, size_t pointlen, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    uint8_t der[72];
    size_t derlen = sig_to_der(sig, siglen, der); /* cheap checks before decoding the point */
    EVP_PKEY *pkey;
    if (derlen == 0 || (pkey = crypto_pkey_from_point(point, pointlen)) == NULL)
        return -1;
    int ok = verify_pkey_once(pkey, der, derlen, msg, len);
    EVP_PKEY_free(pkey);
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : -1;
}
