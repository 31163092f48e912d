/*
 * tests/unit/auth/test_keys.c — auth/keys.c: `hegate keys generate|rotate|list|jwks` (folders,
 * modes, names, kid = base64url(SHA-256(SPKI)[0..8]) recomputed here independently), the loading
 * rules (refused files, newest signs, retirement after a grace period), the JWKS we publish, and
 * the JWKS / JWK import rules for trusted issuers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, mkdtemp */
#endif
#include "tests/unit/unit.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "auth/auth.h"
#include "crypto/crypto.h"

static char tmp[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int make_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/hegate-auth-keys-XXXXXX");
    return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int remove_tmp(void **state)
{
    (void)state;
    return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* runs `hegate keys ARGS...` in a child; returns its exit status and its stdout + stderr in OUT */
static int run_cli(char *out, size_t outsz, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
                   const char *a6)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        char *argv[8] = {"keys", (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, (char *)a6, NULL};
        int argc = 1;
        while (argv[argc] != NULL)
            ++argc;
        int r = auth_keys_cli_main(argc, argv);
        fflush(stdout);
        fflush(stderr);
        _exit(r);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, outsz - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* the names of the .pem files in DIR, sorted; returns how many */
static int list_pems(const char *dir, char names[][128], int max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < max) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".pem") == 0)
            snprintf(names[n++], 128, "%s", de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j)
            if (strcmp(names[j], names[i]) < 0) {
                char t[128];
                strcpy(t, names[i]);
                strcpy(names[i], names[j]);
                strcpy(names[j], t);
            }
    return n;
}

/* kid of a PEM file, computed here with OpenSSL directly (not through auth/) */
static void independent_kid(const char *path, char out[16])
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(pk);
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pk, &der);
    unsigned char h[32];
    EVP_Digest(der, (size_t)len, h, NULL, EVP_sha256(), NULL);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = v << 8 | h[i];
    /* 64 bits → 11 characters: 10 × 6 bits, then the last 4 bits shifted left by 2 */
    for (int i = 0; i < 10; ++i)
        out[i] = a[(v >> (58 - 6 * i)) & 63];
    out[10] = a[(v & 15) << 2];
    out[11] = '\0';
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    fchmod(fd, mode);
    close(fd);
}

/* ---- the command -------------------------------------------------------------------------------- */

static void test_cli_generate(void **state)
{
    (void)state;
    char dir[256], out[4096], names[8][128], path[1024];
    snprintf(dir, sizeof(dir), "%s/keys", tmp);
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, NULL, NULL, NULL), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    const char *purposes[] = {"token", "code"};
    char kids[2][16];
    for (int p = 0; p < 2; ++p) {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s/%s", dir, purposes[p]);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(list_pems(sub, names, 8), 1);
        snprintf(path, sizeof(path), "%s/%s", sub, names[0]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        /* <unix-time>-<kid>.pem with the kid recomputed independently */
        long long t = 0;
        char kid[64];
        assert_int_equal(sscanf(names[0], "%lld-%63[A-Za-z0-9_-].pem", &t, kid), 2);
        assert_true(t >= before && t <= (long long)time(NULL));
        independent_kid(path, kids[p]);
        assert_string_equal(kid, kids[p]);
        assert_non_null(strstr(out, kid));   /* the command reports the kid ... */
        assert_null(strstr(out, "PRIVATE")); /* ... never the key */
    }
    assert_string_not_equal(kids[0], kids[1]); /* one key, one purpose */

    /* loading: one key per purpose, it signs, its SPKI hash gives the kid */
    char err[256];
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 1);
    const auth_key_t *signer = auth_keyset_signer(ks);
    assert_non_null(signer);
    assert_true(auth_key_has_private(signer));
    assert_string_equal(auth_key_kid(signer), kids[0]);
    char kid2[16];
    crypto_b64url_encode(kid2, auth_key_spki_sha256(signer), 8);
    assert_string_equal(kid2, kids[0]);
    auth_keyset_free(ks);
    ks = auth_keyset_load(dir, AUTH_KEY_CODE, (int64_t)time(NULL), 0, err, sizeof(err));
    assert_non_null(ks);
    assert_string_equal(auth_key_kid(auth_keyset_signer(ks)), kids[1]);
    auth_keyset_free(ks);

    /* generate again: what is there stays */
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "keeping"));
    snprintf(path, sizeof(path), "%s/token", dir);
    assert_int_equal(list_pems(path, names, 8), 1);
}

static void test_cli_rotate_newest_signs(void **state)
{
    (void)state;
    char dir[256], out[4096], names[8][128], sub[512];
    snprintf(dir, sizeof(dir), "%s/rot", tmp);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, NULL, NULL, NULL), 0);
    /* two rotations within one second still give distinct, ordered times */
    assert_int_equal(run_cli(out, sizeof(out), "rotate", "--dir", dir, "--purpose", "token", NULL), 0);
    assert_int_equal(run_cli(out, sizeof(out), "rotate",
                             "--dir="
                             "",
                             NULL, NULL, NULL, NULL),
                     2);
    char opt[512];
    snprintf(opt, sizeof(opt), "--dir=%s", dir);
    assert_int_equal(run_cli(out, sizeof(out), "rotate", opt, "--purpose=token", NULL, NULL, NULL), 0);
    char newest_kid[64];
    const char *p = strstr(out, "new key ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "new key %63s", newest_kid), 1);
    snprintf(sub, sizeof(sub), "%s/token", dir);
    assert_int_equal(list_pems(sub, names, 8), 3);
    long long t[3];
    for (int i = 0; i < 3; ++i)
        assert_int_equal(sscanf(names[i], "%lld-", &t[i]), 1);
    /* sorted by name = by time when the digit counts agree */
    assert_true(t[0] < t[1] && t[1] < t[2]);
    snprintf(sub, sizeof(sub), "%s/code", dir);
    assert_int_equal(list_pems(sub, names, 8), 1); /* the other purpose untouched */

    char err[256];
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 3);
    assert_string_equal(auth_key_kid(auth_keyset_signer(ks)), newest_kid);
    assert_ptr_equal(auth_keyset_get(ks, 0), auth_keyset_signer(ks));
    for (size_t i = 1; i < 3; ++i)
        assert_true(auth_key_created(auth_keyset_get(ks, i - 1)) > auth_key_created(auth_keyset_get(ks, i)));
    /* every key verifies: a token from the oldest still passes */
    const auth_key_t *oldest = auth_keyset_get(ks, 2);
    assert_non_null(auth_keyset_find(ks, auth_key_kid(oldest), strlen(auth_key_kid(oldest)), (int64_t)time(NULL)));
    auth_keyset_free(ks);

    /* list shows every key and which signs; jwks prints the token keys */
    assert_int_equal(run_cli(out, sizeof(out), "list", "--dir", dir, NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, newest_kid));
    assert_non_null(strstr(out, "(signs)"));
    assert_null(strstr(out, "PRIVATE"));
    assert_int_equal(run_cli(out, sizeof(out), "jwks", "--dir", dir, NULL, NULL, NULL), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "keys")), 3);
    assert_null(strstr(out, "\"d\""));
    json_decref(doc);

    /* rotate a purpose that has no folder yet: made, with one key */
    snprintf(dir, sizeof(dir), "%s/fresh", tmp);
    assert_int_equal(run_cli(out, sizeof(out), "rotate", "--dir", dir, "--purpose", "code", NULL), 0);
    snprintf(sub, sizeof(sub), "%s/code", dir);
    assert_int_equal(list_pems(sub, names, 8), 1);
}

static void test_cli_usage_errors(void **state)
{
    (void)state;
    char out[4096], dir[128];
    snprintf(dir, sizeof(dir), "%s/usage", tmp);
    assert_int_equal(run_cli(out, sizeof(out), NULL, NULL, NULL, NULL, NULL, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "--help", NULL, NULL, NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "rotate"));
    assert_int_equal(run_cli(out, sizeof(out), "generate", NULL, NULL, NULL, NULL, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", NULL, NULL, NULL, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "rotate", "--dir", dir, NULL, NULL, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "rotate", "--dir", dir, "--purpose", "tls", NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, "--purpose", "token", NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, "--force", NULL, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", dir, "--dir", dir, NULL), 2);
    assert_int_equal(run_cli(out, sizeof(out), "destroy", "--dir", dir, NULL, NULL, NULL), 2);
    assert_int_equal(access(dir, F_OK), -1); /* nothing was made by a refused command */
    /* a folder that cannot be made: exit 1 with a reason */
    assert_int_equal(run_cli(out, sizeof(out), "generate", "--dir", "/proc/hegate-no/such", NULL, NULL, NULL), 1);
    assert_non_null(strstr(out, "hegate keys:"));
}

/* ---- loading rules ------------------------------------------------------------------------------ */

static char *pem_of(EVP_PKEY *pk, const EVP_CIPHER *enc, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, enc, enc ? (unsigned char *)"secret" : NULL, enc ? 6 : 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = malloc((size_t)n);
    memcpy(copy, data, (size_t)n);
    *len = (size_t)n;
    BIO_free(bio);
    return copy;
}

/* a fresh keys folder with one valid token key; returns its file path in PATH */
static void one_key_dir(const char *name, char *dir, size_t dirsz, char *path, size_t pathsz)
{
    char out[2048], sub[512], names[4][128];
    snprintf(dir, dirsz, "%s/%s", tmp, name);
    assert_int_equal(run_cli(out, sizeof(out), "rotate", "--dir", dir, "--purpose", "token", NULL), 0);
    snprintf(sub, sizeof(sub), "%s/token", dir);
    assert_int_equal(list_pems(sub, names, 4), 1);
    snprintf(path, pathsz, "%s/%s", sub, names[0]);
}

static void expect_load_error(const char *dir, const char *needle)
{
    char err[512] = "";
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    if (ks != NULL)
        fail_msg("loaded %s, expected an error containing '%s'", dir, needle);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

static void test_load_refusals(void **state)
{
    (void)state;
    char dir[256], path[1024], other[1024];
    /* readable by others, writable by the group */
    one_key_dir("mode", dir, sizeof(dir), path, sizeof(path));
    chmod(path, 0644);
    expect_load_error(dir, "chmod 600");
    chmod(path, 0620);
    expect_load_error(dir, "chmod 600");
    chmod(path, 0640); /* group-readable is allowed (e.g. a secrets mount with fsGroup) */
    char err[256];
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    assert_non_null(ks);
    auth_keyset_free(ks);
    chmod(path, 0600);

    /* a file renamed so that its name lies about its kid */
    one_key_dir("rename", dir, sizeof(dir), path, sizeof(path));
    snprintf(other, sizeof(other), "%s/token/1700000000-AAAAAAAAAAA.pem", dir);
    assert_int_equal(rename(path, other), 0);
    expect_load_error(dir, "rename the file");

    /* a .pem file with another kind of name */
    one_key_dir("name", dir, sizeof(dir), path, sizeof(path));
    snprintf(other, sizeof(other), "%s/token/signing.pem", dir);
    assert_int_equal(rename(path, other), 0);
    expect_load_error(dir, "<unix-time>-<kid>.pem");

    /* other files are ignored: hidden files, notes, editor leftovers */
    one_key_dir("ignored", dir, sizeof(dir), path, sizeof(path));
    snprintf(other, sizeof(other), "%s/token/README", dir);
    write_file(other, "notes", 5, 0644);
    snprintf(other, sizeof(other), "%s/token/.1-x.pem", dir);
    write_file(other, "junk", 4, 0600);
    snprintf(other, sizeof(other), "%s/token/1-x.pem.bak", dir);
    write_file(other, "junk", 4, 0600);
    ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 1);
    auth_keyset_free(ks);

    /* no key at all; no folder at all */
    snprintf(dir, sizeof(dir), "%s/empty", tmp);
    mkdir(dir, 0700);
    snprintf(other, sizeof(other), "%s/token", dir);
    mkdir(other, 0700);
    expect_load_error(dir, "no key");
    snprintf(dir, sizeof(dir), "%s/absent", tmp);
    expect_load_error(dir, "No such file");

    /* garbage, an encrypted key (never a passphrase prompt), a P-384 key, an RSA key, a symlinked dir entry */
    snprintf(dir, sizeof(dir), "%s/bad", tmp);
    mkdir(dir, 0700);
    snprintf(other, sizeof(other), "%s/token", dir);
    mkdir(other, 0700);
    snprintf(path, sizeof(path), "%s/token/1-AAAAAAAAAAA.pem", dir);
    write_file(path, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", 64, 0600);
    expect_load_error(dir, "not an unencrypted PEM private key");

    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    size_t len;
    char *pem = pem_of(p256, EVP_aes_128_cbc(), &len);
    write_file(path, pem, len, 0600);
    free(pem);
    int saved = dup(0);
    int devnull = open("/dev/null", O_RDONLY); /* if it ever prompted, it would read EOF, not hang */
    dup2(devnull, 0);
    expect_load_error(dir, "not an unencrypted PEM private key");
    dup2(saved, 0);
    close(saved);
    close(devnull);
    EVP_PKEY_free(p256);

    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    pem = pem_of(p384, NULL, &len);
    write_file(path, pem, len, 0600);
    free(pem);
    EVP_PKEY_free(p384);
    expect_load_error(dir, "not an EC P-256 key");

    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    pem = pem_of(rsa, NULL, &len);
    write_file(path, pem, len, 0600);
    free(pem);
    EVP_PKEY_free(rsa);
    expect_load_error(dir, "not an EC P-256 key");

    unlink(path);
    mkdir(path, 0700); /* a directory named like a key */
    expect_load_error(dir, "not a regular file");
    rmdir(path);
}

static void test_retirement_after_grace(void **state)
{
    (void)state;
    char dir[256], sub[512], path[1024];
    snprintf(dir, sizeof(dir), "%s/grace", tmp);
    mkdir(dir, 0700);
    snprintf(sub, sizeof(sub), "%s/token", dir);
    mkdir(sub, 0700);
    const int64_t t0 = 1700000000;
    char kids[3][16];
    for (int i = 0; i < 3; ++i) { /* keys made at t0, t0 + 100, t0 + 200 */
        auth_key_t *k = auth_key_generate();
        strcpy(kids[i], auth_key_kid(k));
        snprintf(path, sizeof(path), "%s/%lld-%s.pem", sub, (long long)(t0 + 100 * i), kids[i]);
        assert_int_equal(auth_key_write_pem(k, path), 0);
        assert_int_equal(auth_key_write_pem(k, path), -1); /* never replaces a key file */
        auth_key_free(k);
    }
    char err[256];
    /* grace 50 at t0 + 220: key 1 was superseded at t0 + 200 → verifies until t0 + 250; key 0 retired at t0 + 150 */
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, t0 + 220, 50, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 2);
    assert_string_equal(auth_key_kid(auth_keyset_get(ks, 0)), kids[2]);
    assert_string_equal(auth_key_kid(auth_keyset_get(ks, 1)), kids[1]);
    assert_int_equal(auth_key_retire_at(auth_keyset_get(ks, 0)), INT64_MAX);
    assert_int_equal(auth_key_retire_at(auth_keyset_get(ks, 1)), t0 + 250);
    assert_int_equal(auth_key_created(auth_keyset_get(ks, 1)), t0 + 100);
    assert_non_null(auth_keyset_find(ks, kids[1], strlen(kids[1]), t0 + 249));
    assert_null(auth_keyset_find(ks, kids[1], strlen(kids[1]), t0 + 250)); /* retired while loaded */
    assert_null(auth_keyset_find(ks, kids[0], strlen(kids[0]), t0 + 220));
    assert_null(auth_keyset_find(ks, kids[1], strlen(kids[1]) - 1, t0)); /* a prefix is not a kid */
    /* the JWKS lists what verifies at the time asked */
    char *jwks = auth_keyset_jwks(ks, t0 + 220);
    assert_non_null(strstr(jwks, kids[1]));
    assert_non_null(strstr(jwks, kids[2]));
    free(jwks);
    jwks = auth_keyset_jwks(ks, t0 + 250);
    assert_null(strstr(jwks, kids[1]));
    free(jwks);
    auth_keyset_free(ks);
    /* grace 0: every key stays until deleted */
    ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, t0 + 1000000, 0, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 3);
    auth_keyset_free(ks);
    /* the newest key never retires, however old */
    ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, t0 + 1000000, 50, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 1);
    assert_string_equal(auth_key_kid(auth_keyset_signer(ks)), kids[2]);
    auth_keyset_free(ks);
}

/* ---- JWKS out and in ---------------------------------------------------------------------------- */

static void test_jwks_document(void **state)
{
    (void)state;
    auth_keyset_t *ks = auth_keyset_new();
    auth_key_t *a = auth_key_generate(), *b = auth_key_generate();
    uint8_t ax[32], ay[32];
    auth_key_public_xy(a, ax, ay);
    char akid[16];
    strcpy(akid, auth_key_kid(a));
    assert_int_equal(auth_keyset_add(ks, a, 200, INT64_MAX), 0);
    assert_int_equal(auth_keyset_add(ks, b, 100, INT64_MAX), 0);
    assert_int_equal(auth_keyset_add(ks, auth_key_generate(), 50, INT64_MAX), 0);
    char *text = auth_keyset_jwks(ks, 0);
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    json_t *keys = json_object_get(doc, "keys");
    assert_int_equal(json_array_size(keys), 3);
    json_t *k0 = json_array_get(keys, 0);
    assert_int_equal(json_object_size(k0), 7);
    assert_string_equal(json_string_value(json_object_get(k0, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(k0, "crv")), "P-256");
    assert_string_equal(json_string_value(json_object_get(k0, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(k0, "use")), "sig");
    assert_string_equal(json_string_value(json_object_get(k0, "kid")), akid);
    uint8_t x[32], y[32];
    const char *xs = json_string_value(json_object_get(k0, "x")), *ys = json_string_value(json_object_get(k0, "y"));
    assert_int_equal(strlen(xs), 43);
    assert_int_equal(crypto_b64url_decode(x, 32, xs, strlen(xs)), 32);
    assert_int_equal(crypto_b64url_decode(y, 32, ys, strlen(ys)), 32);
    assert_memory_equal(x, ax, 32);
    assert_memory_equal(y, ay, 32);

    /* our JWKS read back as a trusted issuer's: same kids, verifies our tokens */
    char err[256];
    auth_keyset_t *back = auth_keyset_from_jwks(text, strlen(text), err, sizeof(err));
    assert_non_null(back);
    assert_int_equal(auth_keyset_count(back), 3);
    assert_null(auth_keyset_signer(back)); /* public keys only */
    const auth_key_t *kb = auth_keyset_find(back, akid, strlen(akid), 0);
    assert_non_null(kb);
    assert_memory_equal(auth_key_spki_sha256(kb), auth_key_spki_sha256(auth_keyset_get(ks, 0)), 32);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "https://a.example", "sub", "s", "aud", "hegate",
                               "client_id", "c", "iat", (json_int_t)1000, "exp", (json_int_t)2000, "jti", "j");
    char *tok = auth_jwt_sign(auth_keyset_signer(ks), claims);
    json_decref(claims);
    auth_issuer_t is = {"https://a.example", "hegate", back};
    auth_verifier_t *v = auth_verifier_new(&is, 1, 0, err, sizeof(err));
    auth_claims_t c;
    assert_int_equal(auth_verify_token(v, tok, strlen(tok), 1500, &c), AUTH_OK);
    auth_verifier_free(v);
    free(tok);
    auth_keyset_free(back);
    json_decref(doc);
    free(text);
    auth_keyset_free(ks);

    /* a key set refuses a second key with the same kid */
    ks = auth_keyset_new();
    auth_key_t *k = auth_key_generate();
    char pemkid[16];
    strcpy(pemkid, auth_key_kid(k));
    size_t len;
    char *pem = pem_of(auth_key_pkey(k), NULL, &len);
    assert_int_equal(auth_keyset_add(ks, k, 1, INT64_MAX), 0);
    auth_key_t *again = auth_key_from_pem(pem, len, err, sizeof(err));
    assert_non_null(again);
    assert_string_equal(auth_key_kid(again), pemkid);
    assert_int_equal(auth_keyset_add(ks, again, 2, INT64_MAX), -1);
    free(pem);
    auth_keyset_free(ks);
}

static const char *X = "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY";
static const char *Y = "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw";

static auth_keyset_t *jwks_of(const char *keys_json, char *err, size_t errsz)
{
    char doc[4096];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", keys_json);
    return auth_keyset_from_jwks(doc, strlen(doc), err, errsz);
}

static void test_jwks_import_rules(void **state)
{
    (void)state;
    char err[256], k[1024];
    /* keys that are not ES256 signing keys are skipped, the good one kept */
    snprintf(
        k, sizeof(k),
        "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"enc\",\"use\":\"enc\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ops\",\"key_ops\":[\"encrypt\"],\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"hs\",\"alg\":\"HS256\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"oct\",\"kid\":\"o\",\"k\":\"AAAA\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"good\",\"key_ops\":[\"verify\"],\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\"}",
        X, Y, X, Y, X, Y, X, Y, X, Y);
    auth_keyset_t *ks = jwks_of(k, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 1);
    assert_string_equal(auth_key_kid(auth_keyset_get(ks, 0)), "good");
    auth_keyset_free(ks);

    /* errors: broken ES256 keys, duplicate kids, private keys, nothing usable, not a JWKS */
    struct {
        const char *keys, *needle;
    } bad[] = {
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"AAAA\",\"y\":\"AAAA\"}", "32 bytes"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY=\",\"y\":\"AAAA\"}",
         "32 bytes"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\","
         "\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmx\"}",
         "32 bytes"}, /* non-canonical last character */
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\","
         "\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmg\"}",
         "not a point"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":1,\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\","
         "\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw\"}",
         "kid"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"d\":\"yy49oPcINGK2ps0LmtxpB6UTEOiITghHBif6wDqmJ3c\","
         "\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\",\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw\"}",
         "private"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\","
         "\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw\"},"
         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\","
         "\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw\"}",
         "twice"},
        {"{\"kty\":\"RSA\",\"kid\":\"r\"}", "no ES256"},
        {"", "no ES256"},
        {"42", "not an object"},
        {"{\"crv\":\"P-256\"}", "kty missing"},
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        ks = jwks_of(bad[i].keys, err, sizeof(err));
        if (ks != NULL || strstr(err, bad[i].needle) == NULL)
            fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].needle);
    }
    assert_null(auth_keyset_from_jwks("{\"keys\":{}}", 11, err, sizeof(err)));
    assert_null(auth_keyset_from_jwks("[]", 2, err, sizeof(err)));
    assert_null(auth_keyset_from_jwks("{\"keys\":[],\"keys\":[]}", 21, err, sizeof(err)));
    assert_null(auth_keyset_load_jwks("/nonexistent/jwks.json", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));

    /* from a file */
    char path[128];
    snprintf(path, sizeof(path), "%s/jwks.json", tmp);
    snprintf(k, sizeof(k), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"f\",\"x\":\"%s\",\"y\":\"%s\"}]}", X, Y);
    write_file(path, k, strlen(k), 0644);
    ks = auth_keyset_load_jwks(path, err, sizeof(err));
    assert_non_null(ks);
    assert_string_equal(auth_key_kid(auth_keyset_get(ks, 0)), "f");
    auth_keyset_free(ks);

    /* one JWK on its own: the same rules, plus "not a signing key" is an error here */
    snprintf(k, sizeof(k), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", X, Y);
    auth_key_t *key = auth_key_from_jwk(k, strlen(k), err, sizeof(err));
    assert_non_null(key);
    assert_string_equal(auth_key_kid(key), "");
    auth_key_free(key);
    snprintf(k, sizeof(k), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"x\":\"%s\",\"y\":\"%s\"}", X, Y);
    assert_null(auth_key_from_jwk(k, strlen(k), err, sizeof(err)));
    snprintf(k, sizeof(k), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"key_ops\":[\"sign\"],\"x\":\"%s\",\"y\":\"%s\"}", X, Y);
    assert_null(auth_key_from_jwk(k, strlen(k), err, sizeof(err)));
    snprintf(k, sizeof(k), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"key_ops\":\"verify\",\"x\":\"%s\",\"y\":\"%s\"}", X, Y);
    assert_null(auth_key_from_jwk(k, strlen(k), err, sizeof(err)));
    snprintf(k, sizeof(k), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\",\"x\":\"%s\",\"y\":\"%s\"}", X, Y);
    assert_null(auth_key_from_jwk(k, strlen(k), err, sizeof(err)));
    assert_null(auth_key_from_jwk("{\"kty\":\"oct\",\"k\":\"AAAA\"}", 24, err, sizeof(err)));
    assert_null(auth_key_from_jwk("nope", 4, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_generate),           cmocka_unit_test(test_cli_rotate_newest_signs),
        cmocka_unit_test(test_cli_usage_errors),       cmocka_unit_test(test_load_refusals),
        cmocka_unit_test(test_retirement_after_grace), cmocka_unit_test(test_jwks_document),
        cmocka_unit_test(test_jwks_import_rules),
    };
    return cmocka_run_group_tests_name("auth_keys", tests, make_tmp, remove_tmp);
}
