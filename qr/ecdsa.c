/*
 * qr/ecdsa.c — P-256 keys and ECDSA-SHA256 with raw r‖s signatures, through OpenSSL 3's EVP.
 *
 * Called by hmt1.c (issuer and device signatures), trust.c (the trust list's JWS, JWKS keys) and
 * cli.c (key files). A key is parsed once into an EVP_PKEY and kept; signing always yields low-S,
 * and qr_ecdsa_verify refuses high-S and out-of-range r/s before OpenSSL sees them. Never signs or
 * verifies with a key of another curve, never prompts for a passphrase, never logs key material.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "qr/internal.h"

struct qr_key {
    EVP_PKEY *pkey;
    int has_private;
    uint8_t x[32], y[32];
    uint8_t kid[HMT1_KID_LEN];
    char jwk_kid[12];
};

/* The group order n of P-256, and (n − 1) / 2: s is "high" when s > n/2, i.e. s > (n − 1) / 2. */
static const uint8_t p256_n[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
static const uint8_t p256_half_n[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF,
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B,
                                        0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};

/* DER SubjectPublicKeyInfo of a P-256 key, up to the uncompressed point (RFC 5480). */
static const uint8_t p256_spki_prefix[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                             0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

/* ---- helpers ---------------------------------------------------------------------------------- */

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256, fetched once: an implicit fetch per call costs time and a global lock in OpenSSL 3. */
static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md != NULL ? sha256_md : EVP_sha256();
}

void qr_sha256(const void *msg, size_t len, uint8_t out[32])
{
    if (EVP_Digest(msg, len, out, NULL, sha256(), NULL) != 1)
        memset(out, 0, 32); /* not reached with the default provider; never leave OUT undefined */
}

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

static int be32cmp(const uint8_t a[32], const uint8_t b[32])
{
    return memcmp(a, b, 32);
}

static int is_zero32(const uint8_t a[32])
{
    uint8_t acc = 0;
    for (int i = 0; i != 32; ++i)
        acc |= a[i];
    return acc == 0;
}

/* OUT = n − S (S < n). */
static void n_minus(const uint8_t s[32], uint8_t out[32])
{
    int borrow = 0;
    for (int i = 31; i >= 0; --i) {
        int d = p256_n[i] - s[i] - borrow;
        borrow = d < 0;
        out[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

/* ---- DER ECDSA-Sig-Value <-> raw r‖s --------------------------------------------------------- */

/* Appends INTEGER of the 32-byte unsigned big-endian V (non-zero) at OUT; returns the bytes written. */
static size_t der_put_uint(uint8_t *out, const uint8_t v[32])
{
    size_t skip = 0, n, o = 0;
    while (skip < 31 && v[skip] == 0)
        ++skip;
    n = 32 - skip;
    out[o++] = 0x02;
    out[o++] = (uint8_t)(n + (v[skip] >> 7));
    if (v[skip] & 0x80)
        out[o++] = 0x00;
    memcpy(out + o, v + skip, n);
    return o + n;
}

/* SEQUENCE { INTEGER r, INTEGER s } into OUT (≥ 72 bytes); returns its length. */
static size_t der_from_raw(const uint8_t sig[64], uint8_t out[72])
{
    size_t n = der_put_uint(out + 2, sig);
    n += der_put_uint(out + 2 + n, sig + 32);
    out[0] = 0x30;
    out[1] = (uint8_t)n;
    return n + 2;
}

/* Reads INTEGER at *P (bounded by END) into a 32-byte big-endian V. */
static int der_get_uint(const uint8_t **p, const uint8_t *end, uint8_t v[32])
{
    const uint8_t *q = *p;
    size_t n;
    if (end - q < 2 || q[0] != 0x02 || (n = q[1]) == 0 || n > (size_t)(end - q - 2))
        return -1;
    q += 2;
    *p = q + n;
    while (n > 0 && *q == 0)
        ++q, --n;
    if (n > 32)
        return -1;
    memset(v, 0, 32 - n);
    memcpy(v + 32 - n, q, n);
    return 0;
}

static int raw_from_der(const uint8_t *der, size_t len, uint8_t sig[64])
{
    const uint8_t *p = der + 2, *end = der + len;
    if (len < 2 || der[0] != 0x30 || der[1] != len - 2)
        return -1;
    if (der_get_uint(&p, end, sig) != 0 || der_get_uint(&p, end, sig + 32) != 0 || p != end)
        return -1;
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static int is_p256(EVP_PKEY *pkey)
{
    char name[32];
    if (!EVP_PKEY_is_a(pkey, "EC") || EVP_PKEY_get_group_name(pkey, name, sizeof(name), NULL) != 1)
        return 0;
    return strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0 || strcmp(name, "secp256r1") == 0;
}

static int get_coord(EVP_PKEY *pkey, const char *param, uint8_t out[32])
{
    BIGNUM *bn = NULL;
    int ok = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && BN_bn2binpad(bn, out, 32) == 32;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* Wraps PKEY (taken over) into a qr_key_t with its coordinates and ids; NULL (PKEY freed) on failure. */
static qr_key_t *key_wrap(EVP_PKEY *pkey, int has_private)
{
    qr_key_t *k;
    uint8_t spki[sizeof(p256_spki_prefix) + 65], digest[32];
    if (pkey == NULL)
        return NULL;
    if (!is_p256(pkey) || (k = calloc(1, sizeof(*k))) == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    k->pkey = pkey;
    k->has_private = has_private;
    if (get_coord(pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x) != 0 || get_coord(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y) != 0) {
        qr_key_free(k);
        return NULL;
    }
    memcpy(spki, p256_spki_prefix, sizeof(p256_spki_prefix));
    spki[sizeof(p256_spki_prefix)] = 0x04;
    memcpy(spki + sizeof(p256_spki_prefix) + 1, k->x, 32);
    memcpy(spki + sizeof(p256_spki_prefix) + 33, k->y, 32);
    qr_sha256(spki, sizeof(spki), digest);
    memcpy(k->kid, digest, HMT1_KID_LEN);
    qr_b64url_encode(digest, 8, k->jwk_kid, sizeof(k->jwk_kid), NULL);
    return k;
}

static pthread_once_t group_once = PTHREAD_ONCE_INIT;
static EVP_PKEY *group_template; /* P-256 domain parameters, no key */

static void group_template_make(void)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &group_template, EVP_PKEY_KEY_PARAMETERS, params);
    EVP_PKEY_CTX_free(ctx);
}

/* An EVP_PKEY for a SEC1 point. OpenSSL decodes it and refuses points off the curve (P-256 has
 * cofactor 1: on the curve is enough). Copying the group from a template and setting the point
 * costs a third of EVP_PKEY_fromdata, which also checks the point's order: this runs per code. */
static EVP_PKEY *pkey_from_point(const uint8_t *point, size_t len)
{
    EVP_PKEY *pkey;
    if (!((len == HMT1_POINT_LEN && (point[0] == 0x02 || point[0] == 0x03)) || (len == HMT1_POINT_FULL_LEN && point[0] == 0x04)))
        return NULL;
    pthread_once(&group_once, group_template_make);
    if (group_template == NULL || (pkey = EVP_PKEY_new()) == NULL)
        return NULL;
    if (EVP_PKEY_copy_parameters(pkey, group_template) != 1 || EVP_PKEY_set1_encoded_public_key(pkey, point, len) != 1) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return NULL;
    }
    return pkey;
}

qr_key_t *qr_key_from_point(const uint8_t *point, size_t len)
{
    return key_wrap(pkey_from_point(point, len), 0);
}

qr_key_t *qr_key_from_xy(const uint8_t x[32], const uint8_t y[32])
{
    uint8_t point[HMT1_POINT_FULL_LEN];
    point[0] = 0x04;
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    return qr_key_from_point(point, sizeof(point));
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* A private key must pass OpenSSL's full check (scalar range, public half matching). */
static int private_key_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

qr_key_t *qr_key_from_pem(const char *pem, size_t len)
{
    BIO *bio;
    EVP_PKEY *pkey;
    int priv = 1;
    if (len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
        return NULL;
    if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
        priv = 0;
        if (BIO_reset(bio) == 1)
            pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (pkey != NULL && priv && !private_key_ok(pkey)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
        ERR_clear_error();
    }
    return key_wrap(pkey, priv);
}

qr_key_t *qr_key_load_pem_file(const char *path)
{
    size_t len;
    char *pem = qr_read_file(path, 64 * 1024, &len);
    qr_key_t *k;
    if (pem == NULL)
        return NULL;
    k = qr_key_from_pem(pem, len);
    OPENSSL_cleanse(pem, len);
    free(pem);
    return k;
}

qr_key_t *qr_key_generate(void)
{
    return key_wrap(EVP_EC_gen("P-256"), 1);
}

int qr_key_save_private_pem(const qr_key_t *key, const char *path)
{
    BIO *bio;
    char *data;
    long n;
    int fd, ret = -1;
    if (!key->has_private || (bio = BIO_new(BIO_s_secmem())) == NULL) /* cleared when freed */
        return -1;
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
        (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
        ret = write(fd, data, (size_t)n) == n ? 0 : -1;
        if (close(fd) != 0)
            ret = -1;
    }
    BIO_free(bio);
    return ret;
}

int qr_key_private_pem(const qr_key_t *key, char *buf, size_t bufsz, size_t *len)
{
    BIO *bio;
    char *data;
    long n;
    int ret = -1;
    if (!key->has_private || (bio = BIO_new(BIO_s_secmem())) == NULL) /* cleared when freed */
        return -1;
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
        (size_t)n < bufsz) {
        memcpy(buf, data, (size_t)n);
        buf[n] = '\0';
        *len = (size_t)n;
        ret = 0;
    }
    BIO_free(bio);
    return ret;
}

void qr_key_free(qr_key_t *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

int qr_key_has_private(const qr_key_t *key)
{
    return key->has_private;
}

void qr_key_point(const qr_key_t *key, uint8_t out[HMT1_POINT_LEN])
{
    out[0] = (uint8_t)(0x02 | (key->y[31] & 1));
    memcpy(out + 1, key->x, 32);
}

void qr_key_xy(const qr_key_t *key, uint8_t x[32], uint8_t y[32])
{
    memcpy(x, key->x, 32);
    memcpy(y, key->y, 32);
}

void qr_key_id(const qr_key_t *key, uint8_t out[HMT1_KID_LEN])
{
    memcpy(out, key->kid, HMT1_KID_LEN);
}

void qr_key_jwk_kid(const qr_key_t *key, char out[12])
{
    memcpy(out, key->jwk_kid, 12);
}

/* ---- sign / verify --------------------------------------------------------------------------- */

int qr_ecdsa_sign(const qr_key_t *key, const void *msg, size_t len, uint8_t sig[HMT1_SIG_LEN])
{
    EVP_MD_CTX *mctx;
    uint8_t der[80];
    size_t derlen = sizeof(der);
    int ok;
    if (!key->has_private || (mctx = EVP_MD_CTX_new()) == NULL)
        return -1;
    ok = EVP_DigestSignInit(mctx, NULL, sha256(), NULL, key->pkey) == 1 && EVP_DigestSign(mctx, der, &derlen, msg, len) == 1 &&
         raw_from_der(der, derlen, sig) == 0;
    EVP_MD_CTX_free(mctx);
    if (!ok) {
        ERR_clear_error();
        return -1;
    }
    if (be32cmp(sig + 32, p256_half_n) > 0) /* (r, n − s) is the same signature, low-S */
        n_minus(sig + 32, sig + 32);
    return 0;
}

/* r and s in [1, n − 1]; with LOW_S also s ≤ (n − 1) / 2. */
static int sig_in_range(const uint8_t sig[64], int low_s)
{
    const uint8_t *r = sig, *s = sig + 32;
    if (is_zero32(r) || is_zero32(s) || be32cmp(r, p256_n) >= 0 || be32cmp(s, p256_n) >= 0)
        return 0;
    return !low_s || be32cmp(s, p256_half_n) <= 0;
}

static int verify_pkey(EVP_PKEY *pkey, const void *msg, size_t len, const uint8_t *sig, size_t siglen, int low_s)
{
    EVP_MD_CTX *mctx;
    uint8_t der[72];
    size_t derlen;
    int ok;
    if (siglen != HMT1_SIG_LEN || !sig_in_range(sig, low_s))
        return -1;
    derlen = der_from_raw(sig, der);
    if ((mctx = EVP_MD_CTX_new()) == NULL)
        return -1;
    ok = EVP_DigestVerifyInit(mctx, NULL, sha256(), NULL, pkey) == 1 && EVP_DigestVerify(mctx, der, derlen, msg, len) == 1;
    EVP_MD_CTX_free(mctx);
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : -1;
}

int qr_ecdsa_verify(const qr_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    return verify_pkey(key->pkey, msg, len, sig, siglen, 1);
}

int qr_es256_verify(const qr_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    return verify_pkey(key->pkey, msg, len, sig, siglen, 0);
}

int qr_ecdsa_verify_point(const uint8_t *point, size_t pointlen, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
    EVP_PKEY *pkey;
    int ret;
    if (siglen != HMT1_SIG_LEN || !sig_in_range(sig, 1)) /* cheap checks before decoding the point */
        return -1;
    if ((pkey = pkey_from_point(point, pointlen)) == NULL)
        return -1;
    ret = verify_pkey(pkey, msg, len, sig, siglen, 1);
    EVP_PKEY_free(pkey);
    return ret;
}
