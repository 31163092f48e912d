/*
 * auth/http/users.c — residents and client secrets from the command line (SPEC §1):
 *   hegate user add -c FILE --phone P --name N --id-number ID [--card KIND:NUMBER]... --password-stdin
 *   hegate client hash-secret            (secret on stdin, the scrypt hash for `secret_hash` on stdout)
 * and the masking rules userinfo shows ("张*", "138****0000").
 *
 * `user add` writes one resident into the config's Redis (blocking hiredis: this is a CLI, not the
 * gateway): a random pseudonymous sub, the scrypt hash of the password, the name, ID and card
 * numbers sealed with AES-256-GCM under keys.dir/data.key (created if absent), the phone found by
 * its HMAC index only. With redis.cluster it talks to the first seed that answers and follows
 * MOVED/ASK to the master of the identity keys' slot. It prints the sub; it never echoes personal data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include "auth/http/http.h"
#include "auth/http/internal.h"

/* ---- masking ------------------------------------------------------------------------------------- */

static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
}

void auth_mask_name(const char *name, char *out, size_t outsz)
{
    size_t o = 0, i = 0, len = strlen(name);
    if (outsz == 0)
        return;
    if (len != 0) {
        size_t n = utf8_len((unsigned char)name[0]);
        if (n > len)
            n = len;
        if (n + 1 < outsz) {
            memcpy(out, name, n);
            o = n;
        }
        i = n;
    }
    while (i < len && o + 2 < outsz) {
        i += utf8_len((unsigned char)name[i]);
        out[o++] = '*';
    }
    out[o] = '\0';
}

void auth_mask_phone(const char *phone, char *out, size_t outsz)
{
    size_t len = strlen(phone), o = 0;
    size_t keep_head = len >= 11 ? 3 : 0, keep_tail = len >= 11 ? 4 : len >= 4 ? 2 : 0;
    for (size_t i = 0; i != len && o + 1 < outsz; ++i)
        out[o++] = (i < keep_head || i >= len - keep_tail) ? phone[i] : '*';
    if (outsz != 0)
        out[o] = '\0';
}

int auth_phone_normalize(const char *in, char *out, size_t outsz)
{
    size_t o = 0, digits = 0;
    for (const char *p = in; *p != '\0'; ++p) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p == '+' && o == 0) {
            /* leading plus only */
        } else if (*p < '0' || *p > '9') {
            return -1;
        } else {
            ++digits;
        }
        if (o + 1 >= outsz)
            return -1;
        out[o++] = *p;
    }
    out[o] = '\0';
    return digits >= 5 && digits <= 20 ? 0 : -1;
}

/* ---- shared CLI helpers ------------------------------------------------------------------------------ */

/* reads at most MAX bytes of stdin, one trailing newline (LF or CRLF) removed; -1 if longer or empty */
static long read_stdin_secret(char *buf, size_t max)
{
    size_t n = 0;
    while (n <= max) {
        ssize_t r = read(0, buf + n, max + 1 - n);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max)
        return -1;
    if (n != 0 && buf[n - 1] == '\n')
        --n;
    if (n != 0 && buf[n - 1] == '\r')
        --n;
    buf[n] = '\0';
    return n == 0 || strlen(buf) != n ? -1 : (long)n;
}

int auth_client_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "hash-secret") != 0 || argc != 2) {
        fprintf(stderr, "usage: hegate client hash-secret   (the secret on stdin; prints the hash for secret_hash)\n");
        return 2;
    }
    char secret[AUTH_KDF_SECRET_MAX + 2], hash[AUTH_KDF_HASH_MAX];
    long n = read_stdin_secret(secret, AUTH_KDF_SECRET_MAX);
    if (n < 16) {
        OPENSSL_cleanse(secret, sizeof(secret));
        fprintf(stderr, "hegate client hash-secret: the secret must be 16 to %d bytes on stdin\n", AUTH_KDF_SECRET_MAX);
        return 1;
    }
    int r = auth_kdf_hash(secret, (size_t)n, hash);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (r != 0) {
        fprintf(stderr, "hegate client hash-secret: hashing failed\n");
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}

/* ---- user add ------------------------------------------------------------------------------------ */

static const char user_usage[] =
    "usage: hegate user add -c FILE --phone P --name N --id-number ID [--card KIND:NUMBER]... --password-stdin\n";

#define MAX_CARDS 8

static int valid_text(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int valid_charset(const char *s, size_t min, size_t max, const char *extra)
{
    size_t len = strlen(s);
    if (len < min || len > max)
        return 0;
    for (const char *p = s; *p != '\0'; ++p)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || strchr(extra, *p) != NULL))
            return 0;
    return 1;
}

static redisContext *connect_addr(gw_store_addr_t *addr, char *err, size_t errsz)
{
    struct timeval tv = {2, 0};
    redisContext *c =
        addr->path[0] != '\0' ? redisConnectUnixWithTimeout(addr->path, tv) : redisConnectWithTimeout(addr->host, addr->port, tv);
    if (c == NULL || c->err != 0) {
        snprintf(err, errsz, "cannot connect to redis: %s", c != NULL ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (addr->password[0] != '\0') {
        r = addr->user[0] != '\0' ? redisCommand(c, "AUTH %s %s", addr->user, addr->password)
                                  : redisCommand(c, "AUTH %s", addr->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            goto Fail;
        freeReplyObject(r);
    }
    if (addr->db != 0) {
        r = redisCommand(c, "SELECT %u", addr->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            goto Fail;
        freeReplyObject(r);
    }
    return c;
Fail:
    snprintf(err, errsz, "redis refused the connection handshake");
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* The configured Redis, or the first cluster seed that answers (commands then follow redirections: store_argv). */
static redisContext *connect_store(const gw_conf_t *conf, char *err, size_t errsz)
{
    size_t n = conf->redis.url != NULL ? 1 : conf->redis.cluster.n;
    if (n == 0) {
        snprintf(err, errsz, "no redis configured");
        return NULL;
    }
    for (size_t i = 0; i != n; ++i) {
        const char *url = conf->redis.url != NULL ? conf->redis.url : conf->redis.cluster.v[i];
        gw_store_addr_t addr;
        redisContext *c = NULL;
        if (gw_store_parse_url(url, &addr, err, errsz) == 0)
            c = connect_addr(&addr, err, errsz);
        OPENSSL_cleanse(&addr, sizeof(addr));
        if (c != NULL)
            return c;
    }
    return NULL;
}

/* One command. In a cluster, a MOVED or ASK answer (the seed does not own the slot of hash tag {id})
 * is followed to the node it names, with the seeds' credentials, at most a few times. */
static redisReply *store_argv(redisContext **rc, const gw_conf_t *conf, int argc, const char **argv)
{
    redisReply *r = NULL;
    for (int hops = 0;; ++hops) {
        r = redisCommandArgv(*rc, argc, argv, NULL);
        int moved = r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0,
            ask = r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
        if (conf->redis.url != NULL || (!moved && !ask) || hops == 5)
            return r;
        /* "MOVED <slot> <host>:<port>" (an empty host: the node we asked) */
        gw_store_redirect_t to;
        gw_store_addr_t addr;
        char err[256];
        if (gw_store_parse_redirect(r->str, r->len, &to) != 0 ||
            gw_store_parse_url(conf->redis.cluster.v[0], &addr, err, sizeof(err)) != 0)
            return r;
        if (to.host_len != 0) {
            memcpy(addr.host, to.host, to.host_len);
            addr.host[to.host_len] = '\0';
        } else if ((*rc)->tcp.host == NULL) {
            OPENSSL_cleanse(&addr, sizeof(addr));
            return r;
        } else {
            snprintf(addr.host, sizeof(addr.host), "%s", (*rc)->tcp.host);
        }
        addr.port = to.port;
        addr.path[0] = '\0';
        redisContext *c = connect_addr(&addr, err, sizeof(err));
        OPENSSL_cleanse(&addr, sizeof(addr));
        if (c == NULL)
            return r;
        freeReplyObject(r);
        r = NULL;
        if (ask)
            freeReplyObject(redisCommand(c, "ASKING"));
        redisFree(*rc);
        *rc = c;
    }
}

static char *seal_field(const uint8_t *key, const char *sub, const char *field, const char *value)
{
    char aad[256];
    snprintf(aad, sizeof(aad), "hegate/user/%s/%s", sub, field);
    return auth_seal(key, aad, value, strlen(value));
}

int auth_user_cli_main(int argc, char **argv)
{
    const char *conf_path = NULL, *phone_in = NULL, *name = NULL, *idn = NULL, *cards[MAX_CARDS];
    size_t num_cards = 0;
    int pw_stdin = 0;
    if (argc < 2 || strcmp(argv[1], "add") != 0) {
        fputs(user_usage, stderr);
        return 2;
    }
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--password-stdin") == 0) {
            pw_stdin = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "hegate user add: %s needs a value\n%s", a, user_usage);
            return 2;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            conf_path = v;
        else if (strcmp(a, "--phone") == 0)
            phone_in = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--id-number") == 0)
            idn = v;
        else if (strcmp(a, "--card") == 0) {
            if (num_cards == MAX_CARDS) {
                fprintf(stderr, "hegate user add: at most %d cards\n", MAX_CARDS);
                return 2;
            }
            cards[num_cards++] = v;
        } else {
            fprintf(stderr, "hegate user add: unknown option %s\n%s", a, user_usage);
            return 2;
        }
        ++i;
    }
    if (conf_path == NULL || phone_in == NULL || name == NULL || idn == NULL || !pw_stdin) {
        fputs(user_usage, stderr);
        return 2;
    }
    /* validate everything before touching anything; messages never repeat the values */
    char phone[32];
    if (auth_phone_normalize(phone_in, phone, sizeof(phone)) != 0) {
        fprintf(stderr, "hegate user add: --phone must be 5 to 20 digits (an optional leading +)\n");
        return 2;
    }
    if (!valid_text(name, 64)) {
        fprintf(stderr, "hegate user add: --name must be 1 to 64 bytes of text\n");
        return 2;
    }
    if (!valid_charset(idn, 6, 32, "")) {
        fprintf(stderr, "hegate user add: --id-number must be 6 to 32 letters or digits\n");
        return 2;
    }
    char kinds[MAX_CARDS][17];
    for (size_t i = 0; i != num_cards; ++i) {
        const char *colon = strchr(cards[i], ':');
        size_t kl = colon != NULL ? (size_t)(colon - cards[i]) : 0;
        if (colon == NULL || kl == 0 || kl > 16 || !valid_charset(colon + 1, 4, 32, "-")) {
            fprintf(stderr, "hegate user add: --card must be KIND:NUMBER (kind 1-16 of [a-z_], number 4-32 of [A-Za-z0-9-])\n");
            return 2;
        }
        memcpy(kinds[i], cards[i], kl);
        kinds[i][kl] = '\0';
        for (size_t k = 0; k != kl; ++k)
            if (!((kinds[i][k] >= 'a' && kinds[i][k] <= 'z') || kinds[i][k] == '_')) {
                fprintf(stderr, "hegate user add: a card kind is 1-16 of [a-z_]\n");
                return 2;
            }
        for (size_t j = 0; j != i; ++j)
            if (strcmp(kinds[j], kinds[i]) == 0) {
                fprintf(stderr, "hegate user add: card kind '%s' given twice\n", kinds[i]);
                return 2;
            }
    }
    char pw[AUTH_KDF_SECRET_MAX + 2];
    long pwlen = read_stdin_secret(pw, AUTH_KDF_SECRET_MAX);
    if (pwlen < 8) {
        OPENSSL_cleanse(pw, sizeof(pw));
        fprintf(stderr, "hegate user add: the password (on stdin) must be 8 to %d bytes\n", AUTH_KDF_SECRET_MAX);
        return 2;
    }

    int status = 1;
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *conf = gw_conf_load(conf_path, &errs);
    redisContext *rc = NULL;
    redisReply *r = NULL;
    char *sealed[2 + MAX_CARDS] = {NULL};
    uint8_t key[AUTH_DATA_KEY_LEN];
    char err[512], hash[AUTH_KDF_HASH_MAX];
    if (conf == NULL) {
        for (size_t i = 0; i != errs.n; ++i)
            fprintf(stderr, "%s\n", errs.v[i]);
        gw_errors_clear(&errs);
        goto Exit;
    }
    if (auth_data_key_load(conf->keys_dir, 1, key, err, sizeof(err)) != 0) {
        fprintf(stderr, "hegate user add: data key: %s\n", err);
        goto Exit;
    }
    if (auth_kdf_hash(pw, (size_t)pwlen, hash) != 0) {
        fprintf(stderr, "hegate user add: hashing the password failed\n");
        goto Exit;
    }
    char sub[40] = "u_";
    auth_random_b64url(sub + 2, 16);
    uint8_t idx_key[32];
    char idx[65], name_m[3 * 64 + 1], phone_m[32];
    auth_subkey(key, "phone-index", idx_key);
    auth_hmac_hex(idx_key, phone, strlen(phone), idx);
    auth_mask_name(name, name_m, sizeof(name_m));
    auth_mask_phone(phone, phone_m, sizeof(phone_m));
    if ((sealed[0] = seal_field(key, sub, "name", name)) == NULL || (sealed[1] = seal_field(key, sub, "id_number", idn)) == NULL)
        goto SealFail;
    for (size_t i = 0; i != num_cards; ++i) {
        char field[32];
        snprintf(field, sizeof(field), "card:%s", kinds[i]);
        if ((sealed[2 + i] = seal_field(key, sub, field, strchr(cards[i], ':') + 1)) == NULL)
            goto SealFail;
    }
    if ((rc = connect_store(conf, err, sizeof(err))) == NULL) {
        fprintf(stderr, "hegate user add: %s\n", err);
        goto Exit;
    }
    char phone_key[128], user_key[128], kind_list[MAX_CARDS * 17 + 1] = "";
    snprintf(phone_key, sizeof(phone_key), AUTH_RK_PHONE "%s", idx);
    snprintf(user_key, sizeof(user_key), AUTH_RK_USER "%s", sub);
    for (size_t i = 0; i != num_cards; ++i) {
        if (i != 0)
            strcat(kind_list, ",");
        strcat(kind_list, kinds[i]);
    }
    const char *set_nx[] = {"SET", phone_key, sub, "NX"};
    r = store_argv(&rc, conf, 4, set_nx);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hegate user add: redis: %s\n", r != NULL ? r->str : rc->errstr);
        goto Exit;
    }
    if (r->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "hegate user add: a resident with this phone number exists already\n");
        goto Exit;
    }
    freeReplyObject(r);
    const char *args[40];
    size_t n = 0;
    char created[24], fields[MAX_CARDS][32];
    snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
    args[n++] = "HSET";
    args[n++] = user_key;
    args[n++] = "sub", args[n++] = sub;
    args[n++] = "pw", args[n++] = hash;
    args[n++] = "phone_idx", args[n++] = idx;
    args[n++] = "name_masked", args[n++] = name_m;
    args[n++] = "phone_masked", args[n++] = phone_m;
    args[n++] = "name", args[n++] = sealed[0];
    args[n++] = "id_number", args[n++] = sealed[1];
    args[n++] = "cards", args[n++] = kind_list;
    args[n++] = "created", args[n++] = created;
    for (size_t i = 0; i != num_cards; ++i) {
        snprintf(fields[i], sizeof(fields[i]), "card:%s", kinds[i]);
        args[n++] = fields[i];
        args[n++] = sealed[2 + i];
    }
    r = store_argv(&rc, conf, (int)n, args);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hegate user add: redis: %s\n", r != NULL ? r->str : rc->errstr);
        const char *del[] = {"DEL", phone_key};
        freeReplyObject(store_argv(&rc, conf, 2, del));
        goto Exit;
    }
    printf("%s\n", sub);
    status = 0;
    goto Exit;
SealFail:
    fprintf(stderr, "hegate user add: sealing personal data failed\n");
Exit:
    if (r != NULL)
        freeReplyObject(r);
    if (rc != NULL)
        redisFree(rc);
    for (size_t i = 0; i != 2 + MAX_CARDS; ++i)
        free(sealed[i]);
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(key, sizeof(key));
    gw_conf_free(conf);
    return status;
}
