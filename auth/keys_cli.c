/*
 * auth/keys_cli.c — `hegate keys generate|rotate|list|jwks`: the operator's side of the key folder
 * (SPEC §1, §2 `keys.dir`), on top of the keys library (keys.c) and the data key (sealed.c).
 *
 * Called by gateway/main.c for `hegate keys ...`, never by the server itself. It adds keys and the
 * data key but never replaces or deletes a file, and it prints purposes, kids, times and paths —
 * never key material.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/crypto.h>
#include "auth/internal.h"

static const char keys_usage[] = "usage: hegate keys generate --dir DIR\n"
                                 "       hegate keys rotate --dir DIR --purpose token|code\n"
                                 "       hegate keys list --dir DIR\n"
                                 "       hegate keys jwks --dir DIR\n";

/* Reads "--dir DIR", "--dir=DIR", "--purpose P", "--purpose=P" from ARGV[2..]; anything else is a usage error. */
static int parse_opts(int argc, char **argv, const char **dir, const char **purpose)
{
    *dir = *purpose = NULL;
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i], **slot = NULL, *val = NULL;
        if (strncmp(a, "--dir", 5) == 0 && (a[5] == '\0' || a[5] == '='))
            slot = dir, val = a[5] == '=' ? a + 6 : NULL;
        else if (strncmp(a, "--purpose", 9) == 0 && (a[9] == '\0' || a[9] == '='))
            slot = purpose, val = a[9] == '=' ? a + 10 : NULL;
        if (slot == NULL) {
            fprintf(stderr, "hegate keys: unexpected argument '%s'\n", a);
            return -1;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hegate keys: %s needs a value\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (*slot != NULL) {
            fprintf(stderr, "hegate keys: %s given twice\n", a);
            return -1;
        }
        *slot = val;
    }
    return 0;
}

static int mkdir_0700(const char *path)
{
    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Makes a new key in DIR (one purpose's folder), dated after every key already there. */
static int new_key_in(const char *dir, const char *purpose, auth_key_t **existing, size_t n)
{
    int64_t t = (int64_t)time(NULL);
    if (n > 0 && existing[0]->created >= t)
        t = existing[0]->created + 1; /* stays the newest even when two rotations share a second */
    auth_key_t *k = auth_key_generate();
    if (k == NULL) {
        fprintf(stderr, "hegate keys: cannot generate a P-256 key\n");
        return 1;
    }
    char path[PATH_MAX];
    if (auth_path_fmt(path, sizeof(path), "%s/%lld-%s.pem", dir, (long long)t, k->kid) != 0 || auth_key_write_pem(k, path) != 0) {
        fprintf(stderr, "hegate keys: %s: %s\n", path, strerror(errno));
        auth_key_free(k);
        return 1;
    }
    printf("%s: new key %s (%s)\n", purpose, k->kid, path);
    auth_key_free(k);
    return 0;
}

static int cli_generate_or_rotate(const char *top, int only_purpose)
{
    if (mkdir_0700(top) != 0) {
        fprintf(stderr, "hegate keys: %s: %s\n", top, strerror(errno));
        return 1;
    }
    for (int p = AUTH_KEY_TOKEN; p <= AUTH_KEY_CODE; ++p) {
        if (only_purpose >= 0 && p != only_purpose)
            continue;
        char dir[PATH_MAX];
        if (auth_path_fmt(dir, sizeof(dir), "%s/%s", top, auth_key_purpose_dir(p)) != 0 || mkdir_0700(dir) != 0) {
            fprintf(stderr, "hegate keys: %s: %s\n", dir, strerror(errno));
            return 1;
        }
        auth_key_t **keys;
        size_t n;
        char err[PATH_MAX + 128];
        if (auth_keydir_scan(dir, &keys, &n, err, sizeof(err)) != 0) {
            fprintf(stderr, "hegate keys: %s\n", err);
            return 1;
        }
        int r = 0;
        if (only_purpose < 0 && n > 0) /* generate: keep what is there */
            printf("%s: keeping %zu existing key(s), newest %s\n", auth_key_purpose_dir(p), n, keys[0]->kid);
        else
            r = new_key_in(dir, auth_key_purpose_dir(p), keys, n);
        auth_keys_free(keys, n);
        if (r != 0)
            return r;
    }
    if (only_purpose >= 0) {
        printf("the new key signs from the next start or SIGHUP; older keys keep verifying\n");
        return 0;
    }
    /* generate: the data key of personal data at rest too (auth/sealed.c), if there is none yet */
    char path[PATH_MAX], err[PATH_MAX + 128];
    uint8_t data_key[AUTH_DATA_KEY_LEN];
    struct stat st;
    if (auth_path_fmt(path, sizeof(path), "%s/data.key", top) != 0) {
        fprintf(stderr, "hegate keys: %s: path too long\n", top);
        return 1;
    }
    int existed = lstat(path, &st) == 0;
    int r = auth_data_key_load(top, 1, data_key, err, sizeof(err));
    OPENSSL_cleanse(data_key, sizeof(data_key));
    if (r != 0) {
        fprintf(stderr, "hegate keys: data key: %s\n", err);
        return 1;
    }
    printf(existed ? "data: keeping the existing data key (%s)\n" : "data: new data key (%s)\n", path);
    return 0;
}

static int cli_list(const char *top)
{
    for (int p = AUTH_KEY_TOKEN; p <= AUTH_KEY_CODE; ++p) {
        char dir[PATH_MAX], err[PATH_MAX + 128];
        if (auth_path_fmt(dir, sizeof(dir), "%s/%s", top, auth_key_purpose_dir(p)) != 0) {
            fprintf(stderr, "hegate keys: %s: path too long\n", top);
            return 1;
        }
        auth_key_t **keys;
        size_t n;
        if (auth_keydir_scan(dir, &keys, &n, err, sizeof(err)) != 0) {
            fprintf(stderr, "hegate keys: %s\n", err);
            return 1;
        }
        for (size_t i = 0; i != n; ++i) {
            char when[32] = "?";
            time_t t = (time_t)keys[i]->created;
            struct tm tm;
            if (gmtime_r(&t, &tm) != NULL)
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%-5s %s %s %s/%lld-%s.pem%s\n", auth_key_purpose_dir(p), keys[i]->kid, when, dir, (long long)keys[i]->created,
                   keys[i]->kid, i == 0 ? " (signs)" : "");
        }
        auth_keys_free(keys, n);
    }
    return 0;
}

static int cli_jwks(const char *top)
{
    char err[PATH_MAX + 128];
    auth_keyset_t *set = auth_keyset_load(top, AUTH_KEY_TOKEN, (int64_t)time(NULL), 0, err, sizeof(err));
    if (set == NULL) {
        fprintf(stderr, "hegate keys: %s\n", err);
        return 1;
    }
    char *text = auth_keyset_jwks(set, (int64_t)time(NULL));
    auth_keyset_free(set);
    if (text == NULL) {
        fprintf(stderr, "hegate keys: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int auth_keys_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(keys_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *dir, *purpose;
    if (parse_opts(argc, argv, &dir, &purpose) != 0) {
        fputs(keys_usage, stderr);
        return 2;
    }
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "hegate keys %s: --dir DIR is required\n%s", cmd, keys_usage);
        return 2;
    }
    if (strcmp(cmd, "rotate") == 0) {
        int p = purpose == NULL                 ? -1
                : strcmp(purpose, "token") == 0 ? AUTH_KEY_TOKEN
                : strcmp(purpose, "code") == 0  ? AUTH_KEY_CODE
                                                : -1;
        if (p < 0) {
            fprintf(stderr, "hegate keys rotate: --purpose token|code is required\n%s", keys_usage);
            return 2;
        }
        return cli_generate_or_rotate(dir, p);
    }
    if (purpose != NULL) {
        fprintf(stderr, "hegate keys %s: --purpose applies to rotate only\n%s", cmd, keys_usage);
        return 2;
    }
    if (strcmp(cmd, "generate") == 0)
        return cli_generate_or_rotate(dir, -1);
    if (strcmp(cmd, "list") == 0)
        return cli_list(dir);
    if (strcmp(cmd, "jwks") == 0)
        return cli_jwks(dir);
    fprintf(stderr, "hegate keys: unknown command '%s'\n%s", cmd, keys_usage);
    return 2;
}
