/*
 * auth/keys.c — ES256 keys and key sets: the key folder (`keys.dir`, SPEC §2), trusted issuers'
 * JWKS files and our JWKS document (SPEC §6). The P-256 keys themselves are crypto/'s; the
 * `hegate keys` command on top of this is keys_cli.c.
 *
 * The gateway loads each purpose's keys once per configuration generation (start, SIGHUP) into an
 * auth_keyset_t whose parsed keys are then used for every signature and verification — a PEM is
 * never parsed on a request. Rules for names, modes, "newest signs" and retirement are in
 * auth/auth.h. Never prints, logs or keeps in a normal buffer any private key material: PEM text
 * goes through OpenSSL's secure-memory BIO or is cleansed after use.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "auth/internal.h"

#define KEY_FILE_MAX (64 * 1024) /* a P-256 PEM is ~250 bytes */
#define JWKS_FILE_MAX (1024 * 1024)

static const char *const purpose_dir[] = {"token", "code"};

const char *auth_key_purpose_dir(auth_key_purpose_t purpose)
{
    return (unsigned)purpose <= AUTH_KEY_CODE ? purpose_dir[purpose] : NULL;
}

static void set_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (err == NULL || errsz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

int auth_path_fmt(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outsz) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* ---- one key --------------------------------------------------------------------------------- */

/* Wraps KEY (taken over) as a key pinned to ES256, with KID[0..KID_LEN) as its kid (KID NULL: the
 * kid of SPEC §6, from the SPKI hash) and, for a private key, the fixed header of the tokens it
 * signs. NULL (KEY freed) on failure. */
/* base64url of the JWS header {"alg":"ES256","typ":TYP,"kid":...} of K's tokens, into *OUT (malloc'd) */
static int make_header(const auth_key_t *k, const char *typ, char **out, size_t *out_len)
{
    json_t *h = json_pack("{s:s, s:s, s:s#}", "alg", "ES256", "typ", typ, "kid", k->kid, (int)k->kid_len);
    char *text = h != NULL ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    size_t tlen = text != NULL ? strlen(text) : 0;
    if (text != NULL && (*out = malloc(CRYPTO_B64URL_LEN(tlen) + 1)) != NULL)
        *out_len = crypto_b64url_encode(*out, text, tlen);
    free(text);
    return *out != NULL ? 0 : -1;
}

static auth_key_t *key_new(crypto_key_t *key, const char *kid, size_t kid_len, char *err, size_t errsz)
{
    auth_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        crypto_key_free(key);
        set_err(err, errsz, "out of memory");
        return NULL;
    }
    k->key = key;
    k->alg = AUTH_ALG_ES256;
    k->retire_at = INT64_MAX;
    if (kid == NULL) {
        k->kid_len = crypto_b64url_encode(k->kid, crypto_key_spki_sha256(key), 8);
    } else {
        memcpy(k->kid, kid, kid_len);
        k->kid[kid_len] = '\0';
        k->kid_len = kid_len;
    }
    static const char *const typs[AUTH_JWT_TYPES] = {[AUTH_JWT_ACCESS] = "at+jwt", [AUTH_JWT_ID] = "JWT", [AUTH_JWT_LOGOUT] = "logout+jwt"};
    for (int t = 0; t != AUTH_JWT_TYPES && crypto_key_has_private(key); ++t)
        if (make_header(k, typs[t], &k->hdr_b64[t], &k->hdr_b64_len[t]) != 0) {
            auth_key_free(k);
            set_err(err, errsz, "out of memory");
            return NULL;
        }
    return k;
}

void auth_key_free(auth_key_t *key)
{
    if (key == NULL)
        return;
    crypto_key_free(key->key);
    for (int t = 0; t != AUTH_JWT_TYPES; ++t)
        free(key->hdr_b64[t]);
    free(key);
}

auth_key_t *auth_key_generate(void)
{
    crypto_key_t *key = crypto_key_generate();
    return key != NULL ? key_new(key, NULL, 0, NULL, 0) : NULL;
}

auth_key_t *auth_key_from_pem(const char *pem, size_t len, char *err, size_t errsz)
{
    if (len > KEY_FILE_MAX) {
        set_err(err, errsz, "PEM too large");
        return NULL;
    }
    crypto_key_t *key = crypto_key_from_private_pem(pem, len, err, errsz);
    return key != NULL ? key_new(key, NULL, 0, err, errsz) : NULL;
}

static int jwk_str(json_t *o, const char *name, const char **out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/* 1: an ES256 verification key to import; 0: some other kind of key (skipped in a JWKS); -1: broken. */
static int jwk_is_es256_sig(json_t *o, char *err, size_t errsz)
{
    const char *kty, *crv, *use, *alg;
    if (jwk_str(o, "kty", &kty) || jwk_str(o, "crv", &crv) || jwk_str(o, "use", &use) || jwk_str(o, "alg", &alg)) {
        set_err(err, errsz, "kty, crv, use and alg must be strings");
        return -1;
    }
    if (kty == NULL) {
        set_err(err, errsz, "kty missing");
        return -1;
    }
    if (strcmp(kty, "EC") != 0 || crv == NULL || strcmp(crv, "P-256") != 0)
        return 0;
    if (use != NULL && strcmp(use, "sig") != 0)
        return 0;
    if (alg != NULL && strcmp(alg, "ES256") != 0)
        return 0;
    json_t *ops = json_object_get(o, "key_ops");
    if (ops != NULL) {
        if (!json_is_array(ops)) {
            set_err(err, errsz, "key_ops must be an array");
            return -1;
        }
        int verify = 0;
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op)
        {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                verify = 1;
        }
        if (!verify)
            return 0;
    }
    return 1;
}

static auth_key_t *key_from_jwk_object(json_t *o, char *err, size_t errsz)
{
    const char *xs, *ys, *kid;
    if (jwk_str(o, "x", &xs) || jwk_str(o, "y", &ys) || xs == NULL || ys == NULL) {
        set_err(err, errsz, "x and y must be strings");
        return NULL;
    }
    if (json_object_get(o, "d") != NULL) {
        set_err(err, errsz, "holds a private key (\"d\"): publish public keys only");
        return NULL;
    }
    if (jwk_str(o, "kid", &kid) != 0) {
        set_err(err, errsz, "kid must be a string");
        return NULL;
    }
    size_t kid_len = kid != NULL ? json_string_length(json_object_get(o, "kid")) : 0;
    if (kid_len > AUTH_KID_MAX || (kid != NULL && (kid_len == 0 || strlen(kid) != kid_len))) {
        set_err(err, errsz, "kid empty or longer than %d bytes", AUTH_KID_MAX);
        return NULL;
    }
    uint8_t x[32], y[32];
    if (crypto_b64url_decode(x, 32, xs, strlen(xs)) != 32 || crypto_b64url_decode(y, 32, ys, strlen(ys)) != 32) {
        set_err(err, errsz, "x and y must be 32 bytes of strict base64url");
        return NULL;
    }
    crypto_key_t *key = crypto_key_from_xy(x, y);
    if (key == NULL) {
        set_err(err, errsz, "x, y is not a point on P-256");
        return NULL;
    }
    return key_new(key, kid != NULL ? kid : "", kid_len, err, errsz); /* no kid: keep none rather than invent one */
}

auth_key_t *auth_key_from_jwk(const char *json, size_t len, char *err, size_t errsz)
{
    json_t *o = auth_json_parse_object(json, len, 4);
    if (o == NULL) {
        set_err(err, errsz, "not a JSON object");
        return NULL;
    }
    auth_key_t *k = NULL;
    int kind = jwk_is_es256_sig(o, err, errsz);
    if (kind == 0)
        set_err(err, errsz, "not an ES256 signature-verification key (kty/crv/use/key_ops/alg)");
    else if (kind == 1)
        k = key_from_jwk_object(o, err, errsz);
    json_decref(o);
    return k;
}

int auth_key_write_pem(const auth_key_t *key, const char *path)
{
    return crypto_key_save_private_pem(key->key, path);
}

const char *auth_key_kid(const auth_key_t *key)
{
    return key->kid;
}

const uint8_t *auth_key_spki_sha256(const auth_key_t *key)
{
    return crypto_key_spki_sha256(key->key);
}

void auth_key_public_xy(const auth_key_t *key, uint8_t x[32], uint8_t y[32])
{
    crypto_key_xy(key->key, x, y);
}

int auth_key_has_private(const auth_key_t *key)
{
    return crypto_key_has_private(key->key);
}

int64_t auth_key_created(const auth_key_t *key)
{
    return key->created;
}

int64_t auth_key_retire_at(const auth_key_t *key)
{
    return key->retire_at;
}

struct evp_pkey_st *auth_key_pkey(const auth_key_t *key)
{
    return crypto_key_pkey(key->key);
}

/* ---- key sets -------------------------------------------------------------------------------- */

auth_keyset_t *auth_keyset_new(void)
{
    return calloc(1, sizeof(auth_keyset_t));
}

void auth_keyset_free(auth_keyset_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i != set->n; ++i)
        auth_key_free(set->keys[i]);
    free(set->keys);
    free(set);
}

static const auth_key_t *find_kid(const auth_keyset_t *set, const char *kid, size_t len)
{
    for (size_t i = 0; i != set->n; ++i) {
        const auth_key_t *k = set->keys[i];
        if (k->kid_len == len && memcmp(k->kid, kid, len) == 0)
            return k;
    }
    return NULL;
}

int auth_keyset_add(auth_keyset_t *set, auth_key_t *key, int64_t created, int64_t retire_at)
{
    if (key->kid_len == 0 || find_kid(set, key->kid, key->kid_len) != NULL) {
        auth_key_free(key);
        return -1;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 4;
        auth_key_t **keys = realloc(set->keys, cap * sizeof(*keys));
        if (keys == NULL) {
            auth_key_free(key);
            return -1;
        }
        set->keys = keys;
        set->cap = cap;
    }
    key->created = created;
    key->retire_at = retire_at;
    set->keys[set->n++] = key;
    return 0;
}

size_t auth_keyset_count(const auth_keyset_t *set)
{
    return set->n;
}

const auth_key_t *auth_keyset_get(const auth_keyset_t *set, size_t i)
{
    return i < set->n ? set->keys[i] : NULL;
}

const auth_key_t *auth_keyset_signer(const auth_keyset_t *set)
{
    for (size_t i = 0; i != set->n; ++i)
        if (crypto_key_has_private(set->keys[i]->key))
            return set->keys[i];
    return NULL;
}

const auth_key_t *auth_keyset_find(const auth_keyset_t *set, const char *kid, size_t len, int64_t now)
{
    const auth_key_t *k = find_kid(set, kid, len);
    return k != NULL && now < k->retire_at ? k : NULL;
}

char *auth_keyset_jwks(const auth_keyset_t *set, int64_t now)
{
    json_t *keys = json_array();
    for (size_t i = 0; keys != NULL && i != set->n; ++i) {
        const auth_key_t *k = set->keys[i];
        if (now >= k->retire_at || k->kid_len == 0)
            continue;
        uint8_t xb[32], yb[32];
        char x[CRYPTO_B64URL_LEN(32) + 1], y[CRYPTO_B64URL_LEN(32) + 1];
        crypto_key_xy(k->key, xb, yb);
        crypto_b64url_encode(x, xb, 32);
        crypto_b64url_encode(y, yb, 32);
        json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s#, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y, "kid", k->kid,
                                (int)k->kid_len, "alg", "ES256", "use", "sig");
        if (jwk == NULL || json_array_append_new(keys, jwk) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    json_t *doc = keys != NULL ? json_pack("{s:o}", "keys", keys) : NULL;
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* ---- the key folder -------------------------------------------------------------------------- */

/* "<digits>-<kid>.pem": 1 and the parts if NAME has that shape, else 0. */
static int parse_key_name(const char *name, int64_t *created, const char **kid, size_t *kid_len)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 4, ".pem") != 0)
        return 0;
    int64_t t = 0;
    size_t i = 0;
    for (; name[i] >= '0' && name[i] <= '9'; ++i) {
        if (t > (INT64_MAX - 9) / 10)
            return 0;
        t = t * 10 + (name[i] - '0');
    }
    if (i == 0 || name[i] != '-' || i + 1 >= len - 4)
        return 0;
    *created = t;
    *kid = name + i + 1;
    *kid_len = len - 4 - (i + 1);
    return 1;
}

/* Reads a key file (regular, small, not readable by others, not writable by the group). */
static char *read_key_file(const char *path, size_t *len, char *err, size_t errsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errsz, "%s: not a regular file", path);
    } else if ((st.st_mode & 0027) != 0) {
        set_err(err, errsz, "%s: mode %03o lets others read or the group write a private key (chmod 600)", path,
                (unsigned)(st.st_mode & 0777));
    } else if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
        set_err(err, errsz, "%s: empty or too large for a key", path);
    } else if ((buf = malloc((size_t)st.st_size)) != NULL) {
        size_t off = 0;
        while (off < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            off += (size_t)r;
        }
        if (off != (size_t)st.st_size) {
            set_err(err, errsz, "%s: short read", path);
            OPENSSL_cleanse(buf, (size_t)st.st_size);
            free(buf);
            buf = NULL;
        } else {
            *len = off;
        }
    } else {
        set_err(err, errsz, "out of memory");
    }
    close(fd);
    return buf;
}

static int cmp_newest_first(const void *a, const void *b)
{
    const auth_key_t *x = *(auth_key_t *const *)a, *y = *(auth_key_t *const *)b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return -strcmp(x->kid, y->kid);
}

int auth_keydir_scan(const char *dir, auth_key_t ***out, size_t *count, char *err, size_t errsz)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        set_err(err, errsz, "%s: %s", dir, strerror(errno));
        return -1;
    }
    auth_key_t **keys = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t nlen = strlen(name);
        if (name[0] == '.' || nlen < 4 || strcmp(name + nlen - 4, ".pem") != 0)
            continue;
        int64_t created;
        const char *kid;
        size_t kid_len;
        char path[PATH_MAX];
        if (auth_path_fmt(path, sizeof(path), "%s/%s", dir, name) != 0) {
            set_err(err, errsz, "%s: path too long", dir);
            ret = -1;
            break;
        }
        if (!parse_key_name(name, &created, &kid, &kid_len)) {
            set_err(err, errsz, "%s: a key file must be named <unix-time>-<kid>.pem", path);
            ret = -1;
            break;
        }
        size_t len = 0;
        char *pem = read_key_file(path, &len, err, errsz);
        if (pem == NULL) {
            ret = -1;
            break;
        }
        char kerr[128];
        auth_key_t *k = auth_key_from_pem(pem, len, kerr, sizeof(kerr));
        OPENSSL_cleanse(pem, len);
        free(pem);
        if (k == NULL) {
            set_err(err, errsz, "%s: %s", path, kerr);
            ret = -1;
            break;
        }
        k->created = created;
        if (k->kid_len != kid_len || memcmp(k->kid, kid, kid_len) != 0) {
            set_err(err, errsz, "%s: the key's kid is %s: rename the file %lld-%s.pem", path, k->kid, (long long)created, k->kid);
            auth_key_free(k);
            ret = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            auth_key_t **nk = realloc(keys, cap * sizeof(*nk));
            if (nk == NULL) {
                auth_key_free(k);
                set_err(err, errsz, "out of memory");
                ret = -1;
                break;
            }
            keys = nk;
        }
        keys[n++] = k;
    }
    closedir(d);
    if (ret == 0 && n > 1) {
        qsort(keys, n, sizeof(*keys), cmp_newest_first);
        for (size_t i = 1; i != n; ++i)
            if (strcmp(keys[i]->kid, keys[i - 1]->kid) == 0) {
                set_err(err, errsz, "%s: key %s is there twice", dir, keys[i]->kid);
                ret = -1;
                break;
            }
    }
    if (ret != 0) {
        auth_keys_free(keys, n);
        return -1;
    }
    *out = keys;
    *count = n;
    return 0;
}

void auth_keys_free(auth_key_t **keys, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        auth_key_free(keys[i]);
    free(keys);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

auth_keyset_t *auth_keyset_load(const char *keys_dir, auth_key_purpose_t purpose, int64_t now, int64_t grace, char *err,
                                size_t errsz)
{
    if ((unsigned)purpose > AUTH_KEY_CODE) {
        set_err(err, errsz, "unknown key purpose");
        return NULL;
    }
    char dir[PATH_MAX];
    if (auth_path_fmt(dir, sizeof(dir), "%s/%s", keys_dir, purpose_dir[purpose]) != 0) {
        set_err(err, errsz, "%s: path too long", keys_dir);
        return NULL;
    }
    auth_key_t **keys;
    size_t n;
    if (auth_keydir_scan(dir, &keys, &n, err, errsz) != 0)
        return NULL;
    auth_keyset_t *set = auth_keyset_new();
    int failed = set == NULL;
    int64_t newer_created = 0; /* creation time of keys[i - 1]: when keys[i] was superseded */
    for (size_t i = 0; i != n; ++i) {
        int64_t retire_at = i == 0 || grace <= 0 ? INT64_MAX : add_sat(newer_created, grace);
        newer_created = keys[i]->created;
        if (failed || now >= retire_at) {
            auth_key_free(keys[i]);
            continue;
        }
        if (auth_keyset_add(set, keys[i], keys[i]->created, retire_at) != 0)
            failed = 1;
    }
    free(keys);
    if (failed) {
        set_err(err, errsz, "out of memory");
    } else if (set->n == 0) {
        set_err(err, errsz, "%s: no key (make one with `hegate keys generate --dir %s`)", dir, keys_dir);
        failed = 1;
    }
    if (failed) {
        auth_keyset_free(set);
        return NULL;
    }
    return set;
}

/* ---- JWKS of a trusted issuer ---------------------------------------------------------------- */

auth_keyset_t *auth_keyset_from_jwks(const char *json, size_t len, char *err, size_t errsz)
{
    if (len > JWKS_FILE_MAX) {
        set_err(err, errsz, "JWKS larger than %d bytes", JWKS_FILE_MAX);
        return NULL;
    }
    json_t *doc = auth_json_parse_object(json, len, 8);
    json_t *arr = doc != NULL ? json_object_get(doc, "keys") : NULL;
    if (!json_is_array(arr)) {
        set_err(err, errsz, "not a JWKS (a JSON object with a \"keys\" array)");
        json_decref(doc);
        return NULL;
    }
    auth_keyset_t *set = auth_keyset_new();
    int failed = set == NULL;
    size_t i;
    json_t *jwk;
    json_array_foreach(arr, i, jwk)
    {
        if (failed)
            break;
        char kerr[128];
        int kind = json_is_object(jwk) ? jwk_is_es256_sig(jwk, kerr, sizeof(kerr)) : -1;
        if (kind == 0 || (kind == 1 && json_object_get(jwk, "kid") == NULL))
            continue; /* not ours to use: another algorithm or use, or no kid to find it by */
        auth_key_t *k = kind == 1 ? key_from_jwk_object(jwk, kerr, sizeof(kerr)) : NULL;
        if (k == NULL) {
            set_err(err, errsz, "keys[%zu]: %s", i, json_is_object(jwk) ? kerr : "not an object");
            failed = 1;
        } else if (find_kid(set, k->kid, k->kid_len) != NULL) {
            set_err(err, errsz, "keys[%zu]: kid %s is there twice", i, k->kid);
            auth_key_free(k);
            failed = 1;
        } else if (auth_keyset_add(set, k, 0, INT64_MAX) != 0) {
            set_err(err, errsz, "out of memory");
            failed = 1;
        }
    }
    json_decref(doc);
    if (!failed && set->n == 0) {
        set_err(err, errsz, "no ES256 signing key with a kid in the JWKS");
        failed = 1;
    }
    if (failed) {
        auth_keyset_free(set);
        return NULL;
    }
    return set;
}

auth_keyset_t *auth_keyset_load_jwks(const char *path, char *err, size_t errsz)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        set_err(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(JWKS_FILE_MAX + 1);
    size_t len = buf != NULL ? fread(buf, 1, JWKS_FILE_MAX + 1, fp) : 0;
    int rerr = ferror(fp);
    fclose(fp);
    auth_keyset_t *set = NULL;
    if (buf == NULL) {
        set_err(err, errsz, "out of memory");
    } else if (rerr) {
        set_err(err, errsz, "%s: read error", path);
    } else if (len > JWKS_FILE_MAX) {
        set_err(err, errsz, "%s: larger than %d bytes", path, JWKS_FILE_MAX);
    } else {
        char jerr[192];
        set = auth_keyset_from_jwks(buf, len, jerr, sizeof(jerr));
        if (set == NULL)
            set_err(err, errsz, "%s: %s", path, jerr);
    }
    free(buf);
    return set;
}
