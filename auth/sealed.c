/*
 * auth/sealed.c — personal data at rest (SPEC §6): the data key keys.dir/data.key, AES-256-GCM
 * sealing of names, ID and card numbers, and HMAC-SHA256 indexes (a phone number is found by its
 * keyed hash, never stored in the clear as a key) and small crypto helpers of the service.
 *
 * Used by users.c (`hegate user add`, which creates the key if absent) and by the gateway's sign-in
 * (which needs the phone index and the CSRF key). The key never leaves this file's callers' memory;
 * nothing here logs.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "auth/auth.h"
#include "crypto/crypto.h"

#define GCM_NONCE 12
#define GCM_TAG 16
#define SEAL_MAX 4096

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int read_key(const char *path, uint8_t key[AUTH_DATA_KEY_LEN], char *err, size_t errsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? -2 : -1;
    }
    struct stat st;
    char buf[80];
    ssize_t n = -1;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(err, errsz, "%s: must not be readable or writable by group or others (chmod 600)", path);
        close(fd);
        return -1;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n == 65 && buf[64] == '\n')
        n = 64;
    if (n != 64)
        goto Bad;
    for (int i = 0; i != AUTH_DATA_KEY_LEN; ++i) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            goto Bad;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
Bad:
    OPENSSL_cleanse(buf, sizeof(buf));
    snprintf(err, errsz, "%s: not 64 hex digits", path);
    return -1;
}

int auth_data_key_load(const char *keys_dir, int create, uint8_t key[AUTH_DATA_KEY_LEN], char *err, size_t errsz)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/data.key", keys_dir);
    int r = read_key(path, key, err, errsz);
    if (r != -2 || !create)
        return r == 0 ? 0 : -1;
    /* create aside, then link: the file appears complete or not at all, and a concurrent creator wins */
    uint8_t fresh[AUTH_DATA_KEY_LEN];
    char hex[AUTH_DATA_KEY_LEN * 2 + 2];
    if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
        snprintf(err, errsz, "no randomness");
        return -1;
    }
    for (int i = 0; i != AUTH_DATA_KEY_LEN; ++i)
        snprintf(hex + 2 * i, 3, "%02x", fresh[i]);
    hex[64] = '\n';
    OPENSSL_cleanse(fresh, sizeof(fresh));
    mkdir(keys_dir, 0700);
    snprintf(tmp, sizeof(tmp), "%s/.data.key.%ld.tmp", keys_dir, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
        snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
    close(fd);
    OPENSSL_cleanse(hex, sizeof(hex));
    if (ok && link(tmp, path) != 0 && errno != EEXIST)
        ok = 0;
    unlink(tmp);
    if (!ok) {
        snprintf(err, errsz, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    return read_key(path, key, err, errsz) == 0 ? 0 : -1;
}

void auth_subkey(const uint8_t key[AUTH_DATA_KEY_LEN], const char *label, uint8_t out[32])
{
    unsigned len = 32;
    HMAC(EVP_sha256(), key, AUTH_DATA_KEY_LEN, (const unsigned char *)label, strlen(label), out, &len);
}

void auth_hmac_hex(const uint8_t subkey[32], const void *msg, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned mdlen = 32;
    HMAC(EVP_sha256(), subkey, 32, msg, len, md, &mdlen);
    for (int i = 0; i != 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void auth_sha256_hex(const void *msg, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned mdlen = 32;
    EVP_Digest(msg, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i != 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int auth_random_b64url(char *out, size_t n)
{
    uint8_t buf[64];
    if (n > sizeof(buf) || RAND_bytes(buf, (int)n) != 1)
        return -1;
    crypto_b64url_encode(out, buf, n);
    return 0;
}

int auth_str_equal_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

char *auth_seal(const uint8_t key[AUTH_DATA_KEY_LEN], const char *aad, const void *pt, size_t len)
{
    if (len > SEAL_MAX)
        return NULL;
    uint8_t k[32], buf[GCM_NONCE + SEAL_MAX + GCM_TAG];
    int outl = 0, fl = 0, ok = 0;
    auth_subkey(key, "seal-v1", k);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || RAND_bytes(buf, GCM_NONCE) != 1)
        goto Exit;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k, buf) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, buf + GCM_NONCE, &outl, pt, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + GCM_NONCE + outl, &fl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, buf + GCM_NONCE + len) != 1)
        goto Exit;
    ok = 1;
Exit:
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof(k));
    if (!ok)
        return NULL;
    size_t total = GCM_NONCE + len + GCM_TAG;
    char *out = malloc(3 + CRYPTO_B64URL_LEN(total) + 1);
    if (out != NULL) {
        memcpy(out, "v1.", 3);
        crypto_b64url_encode(out + 3, buf, total);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return out;
}

long auth_unseal(const uint8_t key[AUTH_DATA_KEY_LEN], const char *aad, const char *sealed, char *out, size_t outsz)
{
    uint8_t k[32], buf[GCM_NONCE + SEAL_MAX + GCM_TAG];
    if (strncmp(sealed, "v1.", 3) != 0)
        return -1;
    long n = crypto_b64url_decode(buf, sizeof(buf), sealed + 3, strlen(sealed + 3));
    if (n < GCM_NONCE + GCM_TAG || (size_t)(n - GCM_NONCE - GCM_TAG) + 1 > outsz)
        return -1;
    size_t len = (size_t)n - GCM_NONCE - GCM_TAG;
    int outl = 0, fl = 0, ok = 0;
    auth_subkey(key, "seal-v1", k);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k, buf) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
        EVP_DecryptUpdate(ctx, (unsigned char *)out, &outl, buf + GCM_NONCE, (int)len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, buf + GCM_NONCE + len) == 1 &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)out + outl, &fl) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof(k));
    if (!ok) {
        OPENSSL_cleanse(out, outsz);
        return -1;
    }
    out[len] = '\0';
    return (long)len;
}

/* ---- the process-wide data key ------------------------------------------------------------------------ */

static pthread_mutex_t data_key_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint8_t data_key[AUTH_DATA_KEY_LEN];
static char *data_key_dir;

const uint8_t *auth_data_key(const char *keys_dir, char *err, size_t errsz)
{
    const uint8_t *ret = NULL;
    pthread_mutex_lock(&data_key_mutex);
    if (data_key_dir != NULL && strcmp(data_key_dir, keys_dir) == 0) {
        ret = data_key;
    } else if (auth_data_key_load(keys_dir, 1, data_key, err, errsz) == 0) {
        free(data_key_dir);
        data_key_dir = strdup(keys_dir);
        ret = data_key_dir != NULL ? data_key : NULL;
    }
    pthread_mutex_unlock(&data_key_mutex);
    return ret;
}
