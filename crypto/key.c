/*
 * crypto/key.c — P-256 keys: an EVP_PKEY parsed once (PEM, SEC1 point, JWK x/y, or generated), its
 * coordinates and the SHA-256 of its SubjectPublicKeyInfo, and writing the private key out.
 *
 * Called by auth/keys.c (the key folder, JWKS) and qr/ (issuer, device and trust-list keys). Refuses
 * every key that is not EC P-256 and every point off the curve; never prompts for a passphrase
 * (encrypted PEM fails) and never puts private key text anywhere but OpenSSL's secure memory or a
 * 0600 file it creates — it never replaces an existing file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "crypto/internal.h"

/* DER SubjectPublicKeyInfo of a P-256 key, up to the uncompressed point (RFC 5480). */
static const uint8_t p256_spki_prefix[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                             0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

static void set_err(char *err, size_t errsz, const char *msg)
{
    if (err != NULL && errsz != 0)
        snprintf(err, errsz, "%s", msg);
}

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

/* Wraps PKEY (taken over) into a key with its coordinates and SPKI hash; NULL (PKEY freed) on failure. */
static crypto_key_t *key_wrap(EVP_PKEY *pkey, int has_private, char *err, size_t errsz)
{
    static uint64_t serials;
    crypto_key_t *k;
    uint8_t spki[sizeof(p256_spki_prefix) + CRYPTO_P256_POINT_FULL_LEN];
    if (pkey == NULL)
        return NULL;
    if (!is_p256(pkey)) {
        set_err(err, errsz, "not an EC P-256 key");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        set_err(err, errsz, "out of memory");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    k->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    k->pkey = pkey;
    k->has_private = has_private;
    if (get_coord(pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x) != 0 || get_coord(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y) != 0) {
        set_err(err, errsz, "cannot read the public point");
        crypto_key_free(k);
        ERR_clear_error();
        return NULL;
    }
    /* the canonical SPKI (what a freshly made key encodes to), from the coordinates: the same bytes
     * whether the key arrived compressed, uncompressed or as PEM */
    memcpy(spki, p256_spki_prefix, sizeof(p256_spki_prefix));
    spki[sizeof(p256_spki_prefix)] = 0x04;
    memcpy(spki + sizeof(p256_spki_prefix) + 1, k->x, 32);
    memcpy(spki + sizeof(p256_spki_prefix) + 33, k->y, 32);
    if (crypto_sha256(spki, sizeof(spki), k->spki_sha256) != 0) {
        set_err(err, errsz, "cannot hash the public key");
        crypto_key_free(k);
        return NULL;
    }
    return k;
}

void crypto_key_free(crypto_key_t *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* ---- public keys from points ------------------------------------------------------------------ */

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

/* OpenSSL decodes the point and refuses points off the curve (and coordinates ≥ p); P-256 has
 * cofactor 1, so on the curve is enough. Copying the group from a template and setting the point
 * costs a third of EVP_PKEY_fromdata, which also checks the point's order: this runs per code. */
EVP_PKEY *crypto_pkey_from_point(const uint8_t *point, size_t len)
{
    EVP_PKEY *pkey;
    if (!((len == CRYPTO_P256_POINT_LEN && (point[0] == 0x02 || point[0] == 0x03)) ||
          (len == CRYPTO_P256_POINT_FULL_LEN && point[0] == 0x04)))
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

crypto_key_t *crypto_key_from_point(const uint8_t *point, size_t len)
{
    return key_wrap(crypto_pkey_from_point(point, len), 0, NULL, 0);
}

crypto_key_t *crypto_key_from_xy(const uint8_t x[32], const uint8_t y[32])
{
    uint8_t point[CRYPTO_P256_POINT_FULL_LEN];
    point[0] = 0x04;
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    return crypto_key_from_point(point, sizeof(point));
}

/* ---- PEM ---------------------------------------------------------------------------------------- */

/* PEM password callback: never prompt (OpenSSL's default reads the terminal); encrypted keys fail. */
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

static crypto_key_t *key_from_pem(const char *pem, size_t len, int private_only, char *err, size_t errsz)
{
    BIO *bio;
    EVP_PKEY *pkey;
    int priv = 1;
    if (len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        set_err(err, errsz, len > INT32_MAX ? "PEM too large" : "out of memory");
        return NULL;
    }
    if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL && !private_only) {
        priv = 0;
        if (BIO_reset(bio) == 1)
            pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (pkey == NULL) {
        set_err(err, errsz, private_only ? "not an unencrypted PEM private key" : "not an unencrypted PEM key");
        return NULL;
    }
    if (priv && is_p256(pkey) && !private_key_ok(pkey)) {
        set_err(err, errsz, "the private key fails OpenSSL's key check");
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return NULL;
    }
    return key_wrap(pkey, priv, err, errsz);
}

crypto_key_t *crypto_key_from_pem(const char *pem, size_t len, char *err, size_t errsz)
{
    return key_from_pem(pem, len, 0, err, errsz);
}

crypto_key_t *crypto_key_from_private_pem(const char *pem, size_t len, char *err, size_t errsz)
{
    return key_from_pem(pem, len, 1, err, errsz);
}

crypto_key_t *crypto_key_generate(void)
{
    return key_wrap(EVP_EC_gen("P-256"), 1, NULL, 0);
}

/* The private key as PKCS#8 PEM in a secure-memory BIO (cleansed when freed), or NULL. */
static BIO *private_pem_bio(const crypto_key_t *key, char **data, long *len)
{
    BIO *bio;
    if (!key->has_private || (bio = BIO_new(BIO_s_secmem())) == NULL)
        return NULL;
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1 || (*len = BIO_get_mem_data(bio, data)) <= 0) {
        BIO_free(bio);
        ERR_clear_error();
        return NULL;
    }
    return bio;
}

int crypto_key_private_pem(const crypto_key_t *key, char *buf, size_t bufsz, size_t *len)
{
    char *data;
    long n = 0;
    BIO *bio = private_pem_bio(key, &data, &n);
    int ret = -1;
    if (bio != NULL && (size_t)n < bufsz) {
        memcpy(buf, data, (size_t)n);
        buf[n] = '\0';
        *len = (size_t)n;
        ret = 0;
    }
    BIO_free(bio);
    return ret;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int crypto_key_save_private_pem(const crypto_key_t *key, const char *path)
{
    if (!key->has_private) {
        errno = EINVAL;
        return -1;
    }
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *pem = NULL;
    long pemlen = 0;
    BIO *bio = private_pem_bio(key, &pem, &pemlen);
    if (bio == NULL) {
        errno = EIO;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        BIO_free(bio);
        errno = e;
        return -1;
    }
    int ok = fchmod(fd, 0600) == 0;
    for (long off = 0; ok && off < pemlen;) {
        ssize_t w = write(fd, pem + off, (size_t)(pemlen - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            ok = 0;
        else
            off += w;
    }
    BIO_free(bio);
    ok = ok && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && link(tmp, path) != 0) { /* link, not rename: never replaces an existing key */
        e = errno;
        ok = 0;
    }
    unlink(tmp);
    if (ok)
        fsync_dir_of(path);
    errno = e;
    return ok ? 0 : -1;
}

/* ---- accessors ---------------------------------------------------------------------------------- */

int crypto_key_has_private(const crypto_key_t *key)
{
    return key->has_private;
}

void crypto_key_point(const crypto_key_t *key, uint8_t out[CRYPTO_P256_POINT_LEN])
{
    out[0] = (uint8_t)(0x02 | (key->y[31] & 1));
    memcpy(out + 1, key->x, 32);
}

void crypto_key_xy(const crypto_key_t *key, uint8_t x[32], uint8_t y[32])
{
    memcpy(x, key->x, 32);
    memcpy(y, key->y, 32);
}

const uint8_t *crypto_key_spki_sha256(const crypto_key_t *key)
{
    return key->spki_sha256;
}

struct evp_pkey_st *crypto_key_pkey(const crypto_key_t *key)
{
    return key->pkey;
}
