/*
 * crypto/sm2.c — the 国密 algorithms of the city code's suite 0x02 (SPEC §7.4): SM3 (GB/T 32905) and SM2
 * signatures with SM3 (GB/T 32918, GM/T 0003) over OpenSSL 3's EVP SM2, the signer ID of GM/T 0009
 * (default "1234567812345678") bound into Z, raw r‖s (32 + 32 bytes), keys on the SM2 curve as PEM or
 * SEC1 points (compressed 33 bytes, uncompressed 65).
 *
 * Called by qr/ (the SM2 suite) and by tests. Like es256.c it verifies what SM2 accepts with r and s in
 * [1, n − 1]; policies above that are the callers'. Nothing here logs key material.
 */
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "crypto/crypto.h"

struct crypto_sm2_key {
    EVP_PKEY *pkey;
    int has_private;
};

int crypto_sm3(const void *msg, size_t len, uint8_t out[CRYPTO_SM3_LEN])
{
    unsigned n = CRYPTO_SM3_LEN;
    return EVP_Digest(msg, len, out, &n, EVP_sm3(), NULL) == 1 && n == CRYPTO_SM3_LEN ? 0 : -1;
}

static crypto_sm2_key_t *wrap(EVP_PKEY *pkey, int has_private)
{
    crypto_sm2_key_t *k;
    if (pkey == NULL || !EVP_PKEY_is_a(pkey, "SM2") || (k = OPENSSL_zalloc(sizeof(*k))) == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    k->pkey = pkey;
    k->has_private = has_private;
    return k;
}

crypto_sm2_key_t *crypto_sm2_key_generate(void)
{
    return wrap(EVP_PKEY_Q_keygen(NULL, NULL, "SM2"), 1);
}

crypto_sm2_key_t *crypto_sm2_key_from_pem(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *p = NULL;
    int priv = 0;
    if (b == NULL || len > (1u << 20))
        goto Exit;
    if ((p = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) != NULL) {
        priv = 1;
    } else {
        BIO_free(b);
        if ((b = BIO_new_mem_buf(pem, (int)len)) != NULL)
            p = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    }
Exit:
    BIO_free(b);
    return wrap(p, priv);
}

crypto_sm2_key_t *crypto_sm2_key_from_point(const uint8_t *point, size_t len)
{
    if (len != CRYPTO_SM2_POINT_LEN && len != CRYPTO_SM2_POINT_FULL_LEN)
        return NULL;
    if ((len == CRYPTO_SM2_POINT_LEN && point[0] != 0x02 && point[0] != 0x03) || (len == CRYPTO_SM2_POINT_FULL_LEN && point[0] != 0x04))
        return NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "SM2", 0),
                           OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len), OSSL_PARAM_END};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    EVP_PKEY *p = NULL;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &p, EVP_PKEY_PUBLIC_KEY, params) != 1)
        p = NULL;
    EVP_PKEY_CTX_free(ctx);
    /* fromdata decodes the point; a point off the curve fails there, and the check below is cheap insurance */
    if (p != NULL) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, p, NULL);
        int ok = c != NULL && EVP_PKEY_public_check(c) == 1;
        EVP_PKEY_CTX_free(c);
        if (!ok) {
            EVP_PKEY_free(p);
            p = NULL;
        }
    }
    return wrap(p, 0);
}

int crypto_sm2_key_point(const crypto_sm2_key_t *key, uint8_t out[CRYPTO_SM2_POINT_LEN])
{
    uint8_t full[CRYPTO_SM2_POINT_FULL_LEN];
    size_t n = 0;
    if (EVP_PKEY_get_octet_string_param(key->pkey, OSSL_PKEY_PARAM_PUB_KEY, full, sizeof(full), &n) != 1)
        return -1;
    if (n == CRYPTO_SM2_POINT_LEN) {
        memcpy(out, full, n);
        return 0;
    }
    if (n != CRYPTO_SM2_POINT_FULL_LEN || full[0] != 0x04)
        return -1;
    out[0] = (uint8_t)(0x02 | (full[64] & 1)); /* y's parity */
    memcpy(out + 1, full + 1, 32);
    return 0;
}

int crypto_sm2_key_has_private(const crypto_sm2_key_t *key)
{
    return key->has_private;
}

int crypto_sm2_key_private_pem(const crypto_sm2_key_t *key, char *buf, size_t bufsz, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int r = -1;
    if (b != NULL && key->has_private && PEM_write_bio_PrivateKey(b, key->pkey, NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(b, &p)) > 0 && (size_t)n < bufsz) {
        memcpy(buf, p, (size_t)n);
        buf[n] = '\0';
        *len = (size_t)n;
        r = 0;
    }
    BIO_free(b);
    return r;
}

void crypto_sm2_key_free(crypto_sm2_key_t *key)
{
    if (key != NULL) {
        EVP_PKEY_free(key->pkey);
        OPENSSL_free(key);
    }
}

/* DER ECDSA-Sig-Value ↔ raw r‖s */
static int der_to_raw(const uint8_t *der, size_t len, uint8_t raw[CRYPTO_SM2_SIG_LEN])
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    int ok = s != NULL && p == der + len && BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32) == 32 &&
             BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32) == 32;
    ECDSA_SIG_free(s);
    return ok ? 0 : -1;
}

static int raw_to_der(const uint8_t raw[CRYPTO_SM2_SIG_LEN], uint8_t *der, size_t dersz, size_t *len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *ss = BN_bin2bn(raw + 32, 32, NULL);
    int n = -1;
    if (s != NULL && r != NULL && ss != NULL && ECDSA_SIG_set0(s, r, ss) == 1) {
        r = ss = NULL; /* owned by S now */
        if ((n = i2d_ECDSA_SIG(s, NULL)) > 0 && (size_t)n <= dersz) {
            unsigned char *p = der;
            n = i2d_ECDSA_SIG(s, &p);
        } else {
            n = -1;
        }
    }
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    if (n <= 0)
        return -1;
    *len = (size_t)n;
    return 0;
}

static EVP_MD_CTX *md_ctx(const crypto_sm2_key_t *key, const char *id, size_t idlen, int sign)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (md == NULL || pctx == NULL || EVP_PKEY_CTX_set1_id(pctx, id, (int)idlen) != 1) {
        EVP_MD_CTX_free(md);
        EVP_PKEY_CTX_free(pctx);
        return NULL;
    }
    EVP_MD_CTX_set_pkey_ctx(md, pctx); /* MD owns nothing: PCTX is freed below, after the operation */
    if ((sign ? EVP_DigestSignInit(md, NULL, EVP_sm3(), NULL, key->pkey) : EVP_DigestVerifyInit(md, NULL, EVP_sm3(), NULL, key->pkey)) != 1) {
        EVP_MD_CTX_free(md);
        EVP_PKEY_CTX_free(pctx);
        return NULL;
    }
    return md;
}

static void md_ctx_free(EVP_MD_CTX *md)
{
    EVP_PKEY_CTX *pctx = EVP_MD_CTX_get_pkey_ctx(md);
    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(pctx);
}

int crypto_sm2_sign(const crypto_sm2_key_t *key, const char *id, size_t idlen, const void *msg, size_t len,
                    uint8_t sig[CRYPTO_SM2_SIG_LEN])
{
    uint8_t der[80];
    size_t derlen = sizeof(der);
    if (!key->has_private)
        return -1;
    EVP_MD_CTX *md = md_ctx(key, id, idlen, 1);
    int r = md != NULL && EVP_DigestSign(md, der, &derlen, msg, len) == 1 && der_to_raw(der, derlen, sig) == 0 ? 0 : -1;
    if (md != NULL)
        md_ctx_free(md);
    return r;
}

int crypto_sm2_verify(const crypto_sm2_key_t *key, const char *id, size_t idlen, const void *msg, size_t len,
                      const uint8_t sig[CRYPTO_SM2_SIG_LEN])
{
    uint8_t der[80];
    size_t derlen;
    if (raw_to_der(sig, der, sizeof(der), &derlen) != 0)
        return -1;
    EVP_MD_CTX *md = md_ctx(key, id, idlen, 0);
    int r = md != NULL && EVP_DigestVerify(md, der, derlen, msg, len) == 1 ? 0 : -1;
    if (md != NULL)
        md_ctx_free(md);
    return r;
}

int crypto_sm2_verify_digest(const crypto_sm2_key_t *key, const uint8_t e[CRYPTO_SM3_LEN], const uint8_t sig[CRYPTO_SM2_SIG_LEN])
{
    uint8_t der[80];
    size_t derlen;
    if (raw_to_der(sig, der, sizeof(der), &derlen) != 0)
        return -1;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    int r = c != NULL && EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_CTX_set_signature_md(c, EVP_sm3()) == 1 &&
                    EVP_PKEY_verify(c, der, derlen, e, CRYPTO_SM3_LEN) == 1
                ? 0
                : -1;
    EVP_PKEY_CTX_free(c);
    return r;
}
