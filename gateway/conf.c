/*
 * gateway/conf.c — reads the YAML configuration (SPEC §2) into a checked, immutable gw_conf_t.
 *
 * Called by `hegate check`, at start-up and on SIGHUP (server.c), and by CLI commands that need
 * the config. Each mapping of the file is described once by a field table below; libyaml's
 * document API gives every node its line, so each problem becomes "FILE:LINE: message" and all of
 * them are collected (sorted by line) before the load fails. It reads the file and checks that the
 * files it names (TLS cert/key, JWKS) are readable; it never opens sockets, keeps global state, or
 * repeats a secret (a secret_hash, a Redis URL that may hold a password) in an error message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include "gateway/conf.h"

#define GW_CONF_MAX_FILE_BYTES (4u << 20) /* a config file larger than this is a mistake */
#define GW_CONF_MAX_VALUES 250000         /* nodes visited, aliases counted at each use: bounds the work */
#define GW_CONF_MAX_LIST 256              /* entries of one list of strings */
#define GW_CONF_MAX_ITEMS 4096            /* routes, clients, rate limits: keeps the uniqueness checks cheap */
#define GW_CONF_MAX_DEPTH 32              /* mappings and lists inside each other; the schema needs 4 */
#define GW_CONF_MAX_ANCHORS 100           /* &anchors in one file */
#define GW_CONF_MAX_ALIASES 10000         /* *aliases in one file */
#define GW_CONF_MAX_POLICIES 8            /* = GW_RATELIMIT_MAX_POLICIES: a route applies at most this many */
#define SHOW "%.200s"                     /* how much of a bad value a message repeats */

typedef struct gw_conf_ctx {
    const char *path;
    yaml_document_t *doc;
    gw_errors_t *errs;
    gw_conf_t *conf;
    yaml_node_t *routes; /* parsed after everything else, once rate_limits are known */
    long budget;         /* nodes that may still be visited */
    int failed;
    int oom;
} gw_conf_ctx_t;

/* ---- errors --------------------------------------------------------------------------------------------- */

static void errors_vadd(gw_errors_t *errs, const char *path, int line, const char *fmt, va_list ap)
{
    char *body = NULL, *msg = NULL, **nv;
    if (vasprintf(&body, fmt, ap) < 0)
        return;
    if (asprintf(&msg, "%s:%d: %s", path, line, body) < 0)
        msg = NULL;
    free(body);
    if (msg == NULL || (nv = realloc(errs->v, (errs->n + 1) * sizeof(*nv))) == NULL) {
        free(msg);
        return;
    }
    errs->v = nv;
    errs->v[errs->n++] = msg;
}

/* an error found before there is a document to walk; line 0 means the file as a whole */
static void file_error(gw_errors_t *errs, const char *path, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void file_error(gw_errors_t *errs, const char *path, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(errs, path, line, fmt, ap);
    va_end(ap);
}

static void error_at(gw_conf_ctx_t *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_at(gw_conf_ctx_t *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(c->errs, c->path, line, fmt, ap);
    va_end(ap);
    c->failed = 1;
}

static int line_of(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

#define ERR(node, ...) error_at(c, line_of(node), __VA_ARGS__)

void gw_errors_clear(gw_errors_t *errs)
{
    for (size_t i = 0; i != errs->n; ++i)
        free(errs->v[i]);
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

/* ---- memory: a failed allocation fails the load instead of leaving a NULL in a "valid" config ----------- */

static void *xcalloc(gw_conf_ctx_t *c, size_t n, size_t size)
{
    void *p = calloc(n + 1, size);
    if (p == NULL)
        c->oom = 1;
    return p;
}

static char *xstrndup(gw_conf_ctx_t *c, const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        c->oom = 1;
    return p;
}

static char *xstrdup(gw_conf_ctx_t *c, const char *s)
{
    return xstrndup(c, s, strlen(s));
}

static void strlist_free(gw_strlist_t *l)
{
    for (size_t i = 0; i != l->n; ++i)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_has(const gw_strlist_t *l, const char *s)
{
    for (size_t i = 0; i != l->n; ++i)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* ---- methods -------------------------------------------------------------------------------------------- */

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL};

unsigned gw_method_bit(const char *name, size_t len)
{
    for (size_t i = 0; method_names[i] != NULL; ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return 1u << i;
    return 0;
}

const char *gw_method_name(unsigned bit)
{
    for (size_t i = 0; method_names[i] != NULL; ++i)
        if (bit == 1u << i)
            return method_names[i];
    return NULL;
}

/* ---- numbers, sizes, durations -------------------------------------------------------------------------- */

/* the leading decimal digits of S (at least one) -> *OUT; *REST points after them. -1 on overflow. */
static int parse_u64(const char *s, uint64_t *out, const char **rest)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; ++s) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *rest = s;
    return 0;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

int gw_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;
    const char *rest;
    if (s == NULL || parse_u64(s, &v, &rest) != 0)
        return -1;
    if (*rest != '\0') { /* one of k, m, g (either case), and nothing after it */
        const char *units = "kmg", *u = strchr(units, rest[0] | 0x20);
        if (u == NULL || rest[1] != '\0')
            return -1;
        mult = (uint64_t)1 << (10 * (u - units + 1));
    }
    return mul_u64(v, mult, out);
}

int gw_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    uint64_t v;
    const char *rest;
    if (s == NULL || parse_u64(s, &v, &rest) != 0)
        return -1;
    for (size_t i = 0; i != sizeof(units) / sizeof(units[0]); ++i)
        if (strcmp(rest, units[i].suffix) == 0)
            return mul_u64(v, units[i].ms, out_ms);
    return -1;
}

/* MS written with the largest unit that divides it, for messages ("255s", "1500ms") */
static const char *fmt_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % 86400000 == 0)
        snprintf(buf, size, "%llud", (unsigned long long)(ms / 86400000));
    else if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    return buf;
}

static const char *fmt_size(uint64_t bytes, char *buf, size_t size)
{
    if (bytes != 0 && bytes % (1u << 30) == 0)
        snprintf(buf, size, "%llug", (unsigned long long)(bytes >> 30));
    else if (bytes != 0 && bytes % (1u << 20) == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(bytes >> 20));
    else if (bytes != 0 && bytes % (1u << 10) == 0)
        snprintf(buf, size, "%lluk", (unsigned long long)(bytes >> 10));
    else
        snprintf(buf, size, "%llu", (unsigned long long)bytes);
    return buf;
}

/* ---- what names, hosts and URLs may look like (each check returns why a value is refused, or NULL) ------ */

typedef const char *(*gw_conf_check_fn)(const char *value);

/* route and rate-limit names: they appear in metrics labels, RateLimit headers and logs */
static const char *check_name(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return s[n] == '\0' && n <= 64 ? NULL : "is not a valid name (1 to 64 of A-Z a-z 0-9 . _ -)";
}

/* client ids: sent in HTTP Basic credentials and in x-hegate-client */
static const char *check_client_id(const char *s)
{
    size_t n = 0;
    while (s[n] >= 0x21 && s[n] <= 0x7e && s[n] != ':' && s[n] != '"' && s[n] != '\\')
        ++n;
    return s[n] == '\0' && n <= 128 ? NULL
                                    : "is not a valid client id (1 to 128 printable ASCII characters, no space, ':', '\"' or '\\')";
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static const char *check_scope(const char *s)
{
    for (const char *p = s; *p != '\0'; ++p)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return "is not a valid scope (printable ASCII without spaces, '\"' or '\\', RFC 6749 §3.3)";
    return NULL;
}

/* the path part of a URL: visible ASCII, no query or fragment */
static const char *check_url_path(const char *p)
{
    for (; *p != '\0'; ++p) {
        if (*p == '?' || *p == '#')
            return "must not have a query or a fragment";
        if (*p < 0x21 || *p > 0x7e)
            return "must not contain spaces, control or non-ASCII characters";
    }
    return NULL;
}

/* RFC 6749 §3.1.2: an absolute URI without a fragment (custom schemes such as hecheng:// are fine) */
static const char *check_redirect_uri(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-");
    if (n == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z') || s[n] != ':' || s[n + 1] == '\0')
        return "is not an absolute URI (scheme:rest)";
    if (strchr(s, '#') != NULL)
        return "must not have a fragment (RFC 6749 §3.1.2)";
    for (const char *p = s; *p != '\0'; ++p)
        if (*p < 0x21 || *p > 0x7e)
            return "must not contain spaces, control or non-ASCII characters";
    return NULL;
}

/* labels of letters, digits, '_' and inner '-', 1 to 63 each, separated by single dots */
static int valid_dns_name(const char *h, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i != n; ++i) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                   (ch == '-' && label != 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label != 0 && h[n - 1] != '-';
}

/* an IPv4 literal, an IPv6 literal (bare, only when ALLOW_V6) or a DNS name */
static int valid_host(const char *h, size_t n, int allow_v6)
{
    char buf[256];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof(buf) || memchr(h, '\0', n) != NULL)
        return 0;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (strspn(buf, "0123456789.") == n)
        return inet_pton(AF_INET, buf, addr) == 1;
    if (strchr(buf, ':') != NULL)
        return allow_v6 && inet_pton(AF_INET6, buf, addr) == 1;
    return valid_dns_name(buf, n);
}

/* the decimal port between S and END, 1-65535 */
static int parse_port(const char *s, const char *end, uint16_t *port)
{
    uint64_t v;
    const char *rest;
    if (end - s > 5 || parse_u64(s, &v, &rest) != 0 || rest != end || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

typedef struct {
    const char *host; /* without brackets */
    size_t host_len;
    uint16_t port;    /* 0 when not given */
    const char *path; /* what follows the authority: "", "/...", or a query or fragment */
} gw_conf_authority_t;

/* "host[:port]" or "[v6][:port]" at the start of P, up to the first '/', '?' or '#' */
static const char *split_authority(const char *p, gw_conf_authority_t *a)
{
    const char *end = p + strcspn(p, "/?#"), *hostend;
    memset(a, 0, sizeof(*a));
    if (memchr(p, '@', (size_t)(end - p)) != NULL)
        return "must not contain user information (user@)";
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || memchr(p, ':', (size_t)(rb - p)) == NULL || !valid_host(p + 1, (size_t)(rb - p - 1), 1))
            return "has an invalid [IPv6 address]";
        a->host = p + 1;
        a->host_len = (size_t)(rb - p - 1);
        hostend = rb + 1;
        if (hostend != end && *hostend != ':')
            return "has something unexpected after the [IPv6 address]";
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hostend = colon != NULL ? colon : end;
        a->host = p;
        a->host_len = (size_t)(hostend - p);
        if (!valid_host(a->host, a->host_len, 0))
            return "has an invalid host (an IP address, [IPv6 address] or DNS name)";
    }
    if (hostend != end && parse_port(hostend + 1, end, &a->port) != 0)
        return "has an invalid port (1-65535)";
    a->path = end;
    return NULL;
}

/* an issuer: http(s)://authority[/path] without query or fragment; OWN (ours) also without a trailing '/' */
static const char *check_issuer_url(const char *s, int own)
{
    gw_conf_authority_t a;
    const char *why, *rest = strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    if (rest == NULL)
        return "must be an https:// (or http://) URL";
    if ((why = split_authority(rest, &a)) != NULL || (why = check_url_path(a.path)) != NULL)
        return why;
    if (own && s[strlen(s) - 1] == '/')
        return "must not end with '/' (discovery URLs are appended to it)";
    return NULL;
}

static const char *check_own_issuer(const char *s)
{
    return check_issuer_url(s, 1);
}

static const char *check_trusted_issuer(const char *s)
{
    return check_issuer_url(s, 0);
}

/* redis://[user[:password]@]host[:port][/db] or, with ALLOW_UNIX, unix:/path */
static const char *check_redis_url(const char *s, int allow_unix)
{
    gw_conf_authority_t a;
    const char *why, *p, *end, *at = NULL, *rest;
    uint64_t db;
    if (allow_unix && strncmp(s, "unix:", 5) == 0)
        return s[5] != '\0' ? NULL : "has no socket path after unix:";
    if (strncmp(s, "rediss://", 9) == 0)
        return "uses rediss:// (TLS), which this build does not support";
    if (strncmp(s, "redis://", 8) != 0)
        return allow_unix ? "must start with redis:// or unix:" : "must start with redis://";
    p = s + 8;
    end = p + strcspn(p, "/?#");
    for (const char *q = p; q != end; ++q)
        if (*q == '@')
            at = q;
    if ((why = split_authority(at != NULL ? at + 1 : p, &a)) != NULL)
        return why;
    if (a.path[0] == '\0' || strcmp(a.path, "/") == 0)
        return NULL;
    if (a.path[0] != '/' || parse_u64(a.path + 1, &db, &rest) != 0 || *rest != '\0' || db > 1000000)
        return "has an invalid database number (redis://host:port/N)";
    return NULL;
}

static const char *check_redis_url_or_unix(const char *s)
{
    return check_redis_url(s, 1);
}

static const char *check_redis_seed(const char *s)
{
    return check_redis_url(s, 0);
}

/* ---- nodes and values ----------------------------------------------------------------------------------- */

/* the node at INDEX, counted against the budget; NULL (reported once) when the file holds too much */
static yaml_node_t *visit(gw_conf_ctx_t *c, int index)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, index);
    if (n == NULL || c->budget <= 0)
        return NULL;
    if (--c->budget == 0) {
        ERR(n, "the file holds too many values (more than %d, counting every use of an alias)", GW_CONF_MAX_VALUES - 1);
        return NULL;
    }
    return n;
}

static size_t seq_len(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

static const char *node_kind(const yaml_node_t *node)
{
    return node->type == YAML_SEQUENCE_NODE ? "a list" : node->type == YAML_MAPPING_NODE ? "a mapping" : "a value";
}

static const char *scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        ERR(node, "%s must be a single value, not %s", what, node_kind(node));
        return NULL;
    }
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length) {
        ERR(node, "%s must not contain a NUL character", what);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

static const char *nonempty_scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what)
{
    const char *s = scalar(c, node, what);
    if (s != NULL && *s == '\0') {
        ERR(node, "%s must not be empty", what);
        return NULL;
    }
    return s;
}

static int get_uint(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = scalar(c, node, what), *rest;
    uint64_t v;
    if (s == NULL)
        return -1;
    if (parse_u64(s, &v, &rest) != 0 || *rest != '\0' || v < min || v > max) {
        ERR(node, "%s must be a whole number from %llu to %llu (got '" SHOW "')", what, (unsigned long long)min,
            (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_bool(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "on", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "off", NULL};
    const char *s = scalar(c, node, what);
    if (s == NULL)
        return -1;
    for (int i = 0; yes[i] != NULL; ++i) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    ERR(node, "%s must be true or false (got '" SHOW "')", what, s);
    return -1;
}

typedef const char *(*gw_conf_fmt_fn)(uint64_t v, char *buf, size_t size);

static int check_range(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t v, uint64_t min, uint64_t max,
                       gw_conf_fmt_fn fmt)
{
    char buf[32];
    if (v < min && min == 1)
        ERR(node, "%s must be greater than 0", what);
    else if (v < min)
        ERR(node, "%s must be at least %s", what, fmt(min, buf, sizeof(buf)));
    else if (v > max)
        ERR(node, "%s must be at most %s", what, fmt(max, buf, sizeof(buf)));
    return v < min || v > max ? -1 : 0;
}

static int get_size(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = scalar(c, node, what);
    uint64_t v;
    if (s == NULL)
        return -1;
    if (gw_parse_size(s, &v) != 0) {
        ERR(node, "%s must be a size such as 512, 16k, 1m or 1g (got '" SHOW "')", what, s);
        return -1;
    }
    if (check_range(c, node, what, v, min, max, fmt_size) != 0)
        return -1;
    *out = v;
    return 0;
}

static int get_duration(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = scalar(c, node, what);
    uint64_t v;
    if (s == NULL)
        return -1;
    if (gw_parse_duration(s, &v) != 0) {
        ERR(node, "%s must be a duration such as 500ms, 10s, 15m, 2h or 30d (got '" SHOW "')", what, s);
        return -1;
    }
    if (check_range(c, node, what, v, min, max, fmt_duration) != 0)
        return -1;
    *out = v;
    return 0;
}

/* P resolved against the config file's folder */
static char *resolve_path(gw_conf_ctx_t *c, const char *p)
{
    const char *dir = c->conf->dir;
    char *r = NULL;
    if (p[0] == '/')
        return xstrdup(c, p);
    if (asprintf(&r, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", p) < 0) {
        c->oom = 1;
        return NULL;
    }
    return r;
}

/* a file the gateway reads later: say now, with this line, if it cannot */
static void check_readable(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd == -1) {
        ERR(node, "%s '" SHOW "' cannot be read: %s", what, path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        ERR(node, "%s '" SHOW "' is not a regular file", what, path);
    close(fd);
}

/* ---- the field tables: one row per key, saying what it holds and where it goes -------------------------- */

typedef enum {
    GW_CONF_STRING,   /* non-empty text (CHECK may refuse it) -> char * */
    GW_CONF_PATH,     /* a path resolved against the file's folder -> char * */
    GW_CONF_FILE,     /* the same, and it must be a readable file now -> char * */
    GW_CONF_UINT,     /* a whole number in [MIN, MAX] -> uint16_t, unsigned or uint64_t */
    GW_CONF_BOOL,     /* true or false -> int */
    GW_CONF_SIZE,     /* "16k" -> uint64_t bytes in [MIN, MAX] */
    GW_CONF_DURATION, /* "500ms" -> uint64_t milliseconds in [MIN, MAX] */
    GW_CONF_ENUM,     /* one of ALLOWED -> its index, into an enum */
    GW_CONF_LIST,     /* a list of distinct strings (ALLOWED, CHECK restrict them; at least MIN) -> gw_strlist_t */
    GW_CONF_SECTION,  /* a nested mapping described by SECTION, filling the same target */
    GW_CONF_CUSTOM,   /* CUSTOM does it */
} gw_conf_kind_t;

_Static_assert(sizeof(gw_store_down_t) == sizeof(int) && sizeof(gw_limit_key_t) == sizeof(int), "GW_CONF_ENUM stores an int");

typedef struct gw_conf_field gw_conf_field_t;
typedef void (*gw_conf_custom_fn)(gw_conf_ctx_t *c, void *target, yaml_node_t *value, const char *what);

struct gw_conf_field {
    const char *name;
    gw_conf_kind_t kind;
    size_t off, width; /* where the value goes in the target */
    uint64_t min, max;
    const char *const *allowed; /* NULL-terminated */
    gw_conf_check_fn check;
    const gw_conf_field_t *section;
    gw_conf_custom_fn custom;
    const char *required; /* non-NULL: the key must be present; the text is added to the message */
    int secret;           /* never repeat the value in a message (it may hold a password) */
};

/* one row of a table; clang-format would spread each over four lines */
/* clang-format off */
#define AT(T, m) .off = offsetof(T, m), .width = sizeof(((T *)0)->m)
#define F_STRING(T, key, m, ...) {.name = key, .kind = GW_CONF_STRING, AT(T, m), __VA_ARGS__}
#define F_PATH(T, key, m, ...) {.name = key, .kind = GW_CONF_PATH, AT(T, m), __VA_ARGS__}
#define F_FILE(T, key, m, ...) {.name = key, .kind = GW_CONF_FILE, AT(T, m), __VA_ARGS__}
#define F_UINT(T, key, m, lo, hi, ...) {.name = key, .kind = GW_CONF_UINT, AT(T, m), .min = lo, .max = hi, __VA_ARGS__}
#define F_BOOL(T, key, m, ...) {.name = key, .kind = GW_CONF_BOOL, AT(T, m), __VA_ARGS__}
#define F_SIZE(T, key, m, lo, hi, ...) {.name = key, .kind = GW_CONF_SIZE, AT(T, m), .min = lo, .max = hi, __VA_ARGS__}
#define F_DURATION(T, key, m, lo, ...) {.name = key, .kind = GW_CONF_DURATION, AT(T, m), .min = lo, .max = UINT64_MAX, __VA_ARGS__}
#define F_ENUM(T, key, m, names, ...) {.name = key, .kind = GW_CONF_ENUM, AT(T, m), .allowed = names, __VA_ARGS__}
#define F_LIST(T, key, m, ...) {.name = key, .kind = GW_CONF_LIST, AT(T, m), __VA_ARGS__}
#define F_SECTION(key, fields) {.name = key, .kind = GW_CONF_SECTION, .section = fields}
#define F_CUSTOM(key, fn, ...) {.name = key, .kind = GW_CONF_CUSTOM, .custom = fn, __VA_ARGS__}
#define REQUIRED .required = ""
#define F_END {.name = NULL}
/* clang-format on */

static void store_uint(void *target, const gw_conf_field_t *f, uint64_t v)
{
    char *p = (char *)target + f->off;
    if (f->width == sizeof(uint16_t)) {
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, sizeof(x));
    } else if (f->width == sizeof(unsigned)) {
        unsigned x = (unsigned)v;
        memcpy(p, &x, sizeof(x));
    } else {
        memcpy(p, &v, sizeof(v));
    }
}

static void set_string(void *target, const gw_conf_field_t *f, char *value)
{
    char **slot = (char **)((char *)target + f->off);
    free(*slot);
    *slot = value;
}

/* "a, b or c" */
static void join_names(const char *const *names, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && n < size; ++i)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ", names[i]);
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; ++i)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* the list at NODE into OUT (replacing it), as F describes; each bad entry is reported at its own line */
static void get_strlist(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, const gw_conf_field_t *f, gw_strlist_t *out)
{
    char names[256];
    strlist_free(out);
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "%s must be a list, not %s", what, node_kind(node));
        return;
    }
    if (seq_len(node) > GW_CONF_MAX_LIST) {
        ERR(node, "%s has more than %d entries", what, GW_CONF_MAX_LIST);
        return;
    }
    if (seq_len(node) < f->min)
        ERR(node, "%s must not be empty", what);
    if ((out->v = xcalloc(c, seq_len(node), sizeof(*out->v))) == NULL)
        return;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = visit(c, *it);
        size_t nth = (size_t)(it - node->data.sequence.items.start) + 1;
        const char *s, *why;
        if (item == NULL)
            break;
        if ((s = nonempty_scalar(c, item, what)) == NULL)
            continue;
        if (f->allowed != NULL && name_index(f->allowed, s) < 0) {
            join_names(f->allowed, names, sizeof(names));
            ERR(item, "%s: unknown value '" SHOW "' (expected %s)", what, s, names);
        } else if (f->check != NULL && (why = f->check(s)) != NULL) {
            if (f->secret)
                ERR(item, "%s: entry %zu %s", what, nth, why);
            else
                ERR(item, "%s '" SHOW "' %s", what, s, why);
        } else if (strlist_has(out, s)) {
            if (f->secret)
                ERR(item, "%s: entry %zu is listed twice", what, nth);
            else
                ERR(item, "%s: '" SHOW "' is listed twice", what, s);
        } else if ((out->v[out->n] = xstrdup(c, s)) != NULL) {
            out->n++;
        }
    }
}

static void walk_mapping(gw_conf_ctx_t *c, yaml_node_t *node, const char *label, const gw_conf_field_t *fields, void *target);

static void apply_string(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = nonempty_scalar(c, v, what), *why;
    if (s == NULL)
        return;
    if (f->check != NULL && (why = f->check(s)) != NULL) {
        if (f->secret)
            ERR(v, "%s %s", what, why);
        else
            ERR(v, "%s '" SHOW "' %s", what, s, why);
        return;
    }
    set_string(target, f, xstrdup(c, s));
}

static void apply_path(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = nonempty_scalar(c, v, what);
    char *p;
    if (s == NULL)
        return;
    set_string(target, f, p = resolve_path(c, s));
    if (p != NULL && f->kind == GW_CONF_FILE)
        check_readable(c, v, what, p);
}

static void apply_enum(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = scalar(c, v, what);
    char names[256];
    int i;
    if (s == NULL)
        return;
    if ((i = name_index(f->allowed, s)) >= 0) {
        memcpy((char *)target + f->off, &i, sizeof(i));
        return;
    }
    join_names(f->allowed, names, sizeof(names));
    ERR(v, "%s must be %s (got '" SHOW "')", what, names, s);
}

static void apply_field(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    uint64_t n;
    int b;
    switch (f->kind) {
    case GW_CONF_STRING:
        apply_string(c, f, what, v, target);
        break;
    case GW_CONF_PATH:
    case GW_CONF_FILE:
        apply_path(c, f, what, v, target);
        break;
    case GW_CONF_UINT:
        if (get_uint(c, v, what, f->min, f->max, &n) == 0)
            store_uint(target, f, n);
        break;
    case GW_CONF_BOOL:
        if (get_bool(c, v, what, &b) == 0)
            memcpy((char *)target + f->off, &b, sizeof(b));
        break;
    case GW_CONF_SIZE:
        get_size(c, v, what, f->min, f->max, (uint64_t *)((char *)target + f->off));
        break;
    case GW_CONF_DURATION:
        get_duration(c, v, what, f->min, f->max, (uint64_t *)((char *)target + f->off));
        break;
    case GW_CONF_ENUM:
        apply_enum(c, f, what, v, target);
        break;
    case GW_CONF_LIST:
        get_strlist(c, v, what, f, (gw_strlist_t *)((char *)target + f->off));
        break;
    case GW_CONF_SECTION:
        walk_mapping(c, v, what, f->section, target);
        break;
    case GW_CONF_CUSTOM:
        f->custom(c, target, v, what);
        break;
    }
}

static size_t field_index(const gw_conf_field_t *fields, const char *name)
{
    size_t i = 0;
    while (fields[i].name != NULL && strcmp(fields[i].name, name) != 0)
        ++i;
    return i;
}

/* Applies each key of the mapping NODE (a LABEL such as "route" or "listen.tls"; "" at the top) to TARGET
 * through FIELDS, and reports keys that are unknown, given twice, or required and missing. */
static void walk_mapping(gw_conf_ctx_t *c, yaml_node_t *node, const char *label, const gw_conf_field_t *fields, void *target)
{
    int first_line[64] = {0};
    if (node->type != YAML_MAPPING_NODE) {
        ERR(node, "%s must be a mapping of keys to values, not %s", *label ? label : "the file", node_kind(node));
        return;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = visit(c, p->key), *v = k != NULL ? visit(c, p->value) : NULL;
        const char *name;
        char what[96];
        if (v == NULL)
            break;
        if (k->type != YAML_SCALAR_NODE) {
            ERR(k, "keys in %s must be plain names, not %s", *label ? label : "the file", node_kind(k));
            continue;
        }
        if ((name = scalar(c, k, "a key")) == NULL)
            continue;
        size_t i = field_index(fields, name);
        if (fields[i].name == NULL) {
            ERR(k, "unknown key '" SHOW "' %s%s", name, *label ? "in " : "at the top level", label);
            continue;
        }
        if (first_line[i] != 0) {
            ERR(k, "duplicate key '%s' in %s (first on line %d)", name, *label ? label : "the file", first_line[i]);
            continue;
        }
        first_line[i] = line_of(k);
        snprintf(what, sizeof(what), "%s%s%s", label, *label ? "." : "", name);
        apply_field(c, &fields[i], what, v, target);
    }
    for (size_t i = 0; fields[i].name != NULL && c->budget > 0; ++i)
        if (fields[i].required != NULL && first_line[i] == 0)
            ERR(node, "%s%skey '%s' is required%s", label, *label ? ": " : "", fields[i].name, fields[i].required);
}

/* Calls FN for each item of the list NODE, in an array of zeroed ELEM-sized items that it returns (or NULL);
 * *COUNT counts the items begun, so that gw_conf_free() can release a partly filled array. */
typedef void (*gw_conf_item_fn)(gw_conf_ctx_t *c, void *item, yaml_node_t *node);

static void *parse_items(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, size_t max, size_t elem, size_t *count,
                         gw_conf_item_fn fn)
{
    char *arr;
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "%s must be a list, not %s", what, node_kind(node));
        return NULL;
    }
    if (seq_len(node) > max) {
        ERR(node, "%s has more than %zu entries", what, max);
        return NULL;
    }
    if ((arr = xcalloc(c, seq_len(node), elem)) == NULL)
        return NULL;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = visit(c, *it);
        if (item == NULL)
            break;
        fn(c, arr + elem * (*count)++, item);
    }
    return arr;
}

/* ---- listen, admin -------------------------------------------------------------------------------------- */

/* "0.0.0.0", "::", "[::1]", "localhost" -> the bare host */
static void on_listen_host(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_listen_conf_t *l = target;
    const char *s = nonempty_scalar(c, v, what);
    size_t n;
    if (s == NULL)
        return;
    n = strlen(s);
    if (s[0] == '[' && n > 2 && s[n - 1] == ']' && memchr(s, ':', n) != NULL && valid_host(s + 1, n - 2, 1)) {
        free(l->host);
        l->host = xstrndup(c, s + 1, n - 2);
    } else if (valid_host(s, n, 1)) {
        free(l->host);
        l->host = xstrdup(c, s);
    } else {
        ERR(v, "%s '" SHOW "' is not an IP address or a host name", what, s);
    }
}

static const gw_conf_field_t tls_fields[] = {
    F_FILE(gw_listen_conf_t, "cert", tls_cert, REQUIRED),
    F_FILE(gw_listen_conf_t, "key", tls_key, REQUIRED),
    F_END,
};

static const gw_conf_field_t listen_fields[] = {
    F_CUSTOM("host", on_listen_host),
    F_UINT(gw_listen_conf_t, "port", port, 1, 65535, REQUIRED),
    F_SECTION("tls", tls_fields),
    F_END,
};

static void parse_listener(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_listen_conf_t *l = item;
    l->line = line_of(node);
    walk_mapping(c, node, "listen", listen_fields, l);
    if (l->host == NULL)
        l->host = xstrdup(c, "0.0.0.0");
}

static void on_listen(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->listen = parse_items(c, v, what, 64, sizeof(*conf->listen), &conf->num_listen, parse_listener);
    if (conf->listen != NULL && conf->num_listen == 0)
        ERR(v, "listen must name at least one listener");
    for (size_t i = 0; i != conf->num_listen; ++i) {
        const gw_listen_conf_t *l = &conf->listen[i];
        for (size_t j = 0; j != i; ++j)
            if (l->port != 0 && l->port == conf->listen[j].port && l->host != NULL && conf->listen[j].host != NULL &&
                strcmp(l->host, conf->listen[j].host) == 0)
                error_at(c, l->line, "listen: %s port %u is already listed on line %d", l->host, l->port, conf->listen[j].line);
    }
}

/* "127.0.0.1:9090", "[::1]:9090", "localhost:9090", a bare port (on 127.0.0.1), or "off" (no admin listener) */
static void on_admin_listen(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    gw_conf_authority_t a;
    const char *s = nonempty_scalar(c, v, what);
    char *host;
    uint16_t port = 0;
    if (s == NULL)
        return;
    if (strcmp(s, "off") == 0) {
        host = xstrdup(c, "127.0.0.1");
    } else if (strspn(s, "0123456789") == strlen(s) && parse_port(s, s + strlen(s), &port) == 0) {
        host = xstrdup(c, "127.0.0.1");
    } else if (split_authority(s, &a) == NULL && a.port != 0 && a.path[0] == '\0') {
        host = xstrndup(c, a.host, a.host_len);
        port = a.port;
    } else {
        ERR(v, "%s '" SHOW "' must be HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090), a port, or off", what, s);
        return;
    }
    free(conf->admin.host);
    conf->admin.host = host;
    conf->admin.port = port;
}

static const gw_conf_field_t admin_fields[] = {
    F_CUSTOM("listen", on_admin_listen),
    F_END,
};

/* ---- redis, keys, limits, tokens ------------------------------------------------------------------------ */

static const gw_conf_field_t redis_fields[] = {
    F_STRING(gw_conf_t, "url", redis.url, .check = check_redis_url_or_unix, .secret = 1),
    F_LIST(gw_conf_t, "cluster", redis.cluster, .check = check_redis_seed, .secret = 1, .min = 1),
    F_DURATION(gw_conf_t, "timeout", redis.timeout_ms, 1),
    F_END,
};

static void on_redis(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    walk_mapping(c, v, what, redis_fields, conf);
    if (conf->redis.url != NULL && conf->redis.cluster.n != 0)
        ERR(v, "redis: give either url or cluster, not both");
}

static const gw_conf_field_t keys_fields[] = {
    F_PATH(gw_conf_t, "dir", keys_dir),
    F_END,
};

static const gw_conf_field_t limits_fields[] = {
    F_SIZE(gw_conf_t, "header_bytes", limits.header_bytes, 1, (uint64_t)1 << 30),
    F_SIZE(gw_conf_t, "body_bytes", limits.body_bytes, 1, (uint64_t)1 << 30),
    F_SIZE(gw_conf_t, "token_bytes", limits.token_bytes, 1, (uint64_t)1 << 30),
    F_END,
};

static const gw_conf_field_t tokens_fields[] = {
    F_DURATION(gw_conf_t, "access_ttl", tokens.access_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "refresh_ttl", tokens.refresh_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "session_ttl", tokens.session_ttl_ms, 1000),
    F_STRING(gw_conf_t, "audience", tokens.audience),
    F_END,
};

/* ---- trusted issuers ------------------------------------------------------------------------------------ */

static const gw_conf_field_t trusted_issuer_fields[] = {
    F_STRING(gw_trusted_issuer_conf_t, "issuer", issuer, .check = check_trusted_issuer, REQUIRED),
    F_FILE(gw_trusted_issuer_conf_t, "jwks", jwks, REQUIRED),
    F_STRING(gw_trusted_issuer_conf_t, "audience", audience, REQUIRED),
    F_END,
};

static void parse_trusted_issuer(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_trusted_issuer_conf_t *t = item;
    t->line = line_of(node);
    walk_mapping(c, node, "trusted_issuer", trusted_issuer_fields, t);
}

static void on_trusted_issuers(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->trusted_issuers =
        parse_items(c, v, what, 64, sizeof(*conf->trusted_issuers), &conf->num_trusted_issuers, parse_trusted_issuer);
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        const gw_trusted_issuer_conf_t *t = &conf->trusted_issuers[i];
        for (size_t j = 0; j != i; ++j)
            if (t->issuer != NULL && conf->trusted_issuers[j].issuer != NULL &&
                strcmp(t->issuer, conf->trusted_issuers[j].issuer) == 0)
                error_at(c, t->line, "trusted_issuer '" SHOW "' is already listed on line %d", t->issuer,
                         conf->trusted_issuers[j].line);
    }
}

/* ---- clients -------------------------------------------------------------------------------------------- */

static const char *const grant_names[] = {"authorization_code", "refresh_token", "client_credentials", NULL};
static const char *const role_names[] = {"transit", "medical", "merchant", "government", "tourism", NULL};

static const gw_conf_field_t client_fields[] = {
    F_STRING(gw_client_conf_t, "id", id, .check = check_client_id, REQUIRED),
    F_LIST(gw_client_conf_t, "redirect_uris", redirect_uris, .check = check_redirect_uri),
    F_LIST(gw_client_conf_t, "scopes", scopes, .check = check_scope),
    F_LIST(gw_client_conf_t, "grants", grants, .allowed = grant_names, .min = 1),
    F_LIST(gw_client_conf_t, "roles", roles, .allowed = role_names),
    F_STRING(gw_client_conf_t, "secret_hash", secret_hash, .secret = 1),
    F_BOOL(gw_client_conf_t, "first_party", first_party),
    F_END,
};

/* the value of KEY in the mapping NODE, NULL if absent */
static yaml_node_t *mapping_get(gw_conf_ctx_t *c, yaml_node_t *node, const char *key)
{
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(c->doc, p->value);
    }
    return NULL;
}

static void parse_client(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_client_conf_t *cl = item;
    const char *id;
    cl->line = line_of(node);
    walk_mapping(c, node, "client", client_fields, cl);
    if (node->type != YAML_MAPPING_NODE)
        return;
    id = cl->id != NULL ? cl->id : "";
    if (cl->grants.v == NULL && (cl->grants.v = xcalloc(c, 2, sizeof(char *))) != NULL) /* no grants: the default */
        for (size_t i = 0; i != 2; ++i)
            if ((cl->grants.v[cl->grants.n] = xstrdup(c, grant_names[i])) != NULL)
                cl->grants.n++;
    if (strlist_has(&cl->grants, "client_credentials") && cl->secret_hash == NULL)
        ERR(node, "client '" SHOW "': grant client_credentials needs a secret_hash (a confidential client)", id);
    yaml_node_t *uris = mapping_get(c, node, "redirect_uris"); /* absent or [], not merely all refused (reported) */
    if (strlist_has(&cl->grants, "authorization_code") &&
        (uris == NULL || (uris->type == YAML_SEQUENCE_NODE && seq_len(uris) == 0)))
        ERR(node, "client '" SHOW "': redirect_uris are required for the authorization_code grant", id);
}

static void on_clients(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    conf->clients = parse_items(c, v, what, GW_CONF_MAX_ITEMS, sizeof(*conf->clients), &conf->num_clients, parse_client);
    for (size_t i = 0; i != conf->num_clients; ++i) {
        const gw_client_conf_t *cl = &conf->clients[i];
        for (size_t j = 0; j != i; ++j)
            if (cl->id != NULL && conf->clients[j].id != NULL && strcmp(cl->id, conf->clients[j].id) == 0)
                error_at(c, cl->line, "client '%s' is already defined on line %d", cl->id, conf->clients[j].line);
    }
}

/* ---- rate limits ---------------------------------------------------------------------------------------- */

static const char *const limit_key_names[] = {"user", "client", "ip", NULL}; /* in gw_limit_key_t order */

static const gw_conf_field_t policy_fields[] = {
    F_ENUM(gw_ratelimit_conf_t, "key", key, limit_key_names, REQUIRED),
    F_UINT(gw_ratelimit_conf_t, "limit", limit, 1, (uint64_t)1 << 40, REQUIRED),
    F_DURATION(gw_ratelimit_conf_t, "window", window_ms, 1, REQUIRED),
    F_UINT(gw_ratelimit_conf_t, "burst", burst, 1, (uint64_t)1 << 40),
    F_END,
};

static void parse_policy(gw_conf_ctx_t *c, gw_ratelimit_conf_t *p, yaml_node_t *k, yaml_node_t *v)
{
    char label[96];
    p->line = line_of(k);
    snprintf(label, sizeof(label), "rate_limits.%s", p->name);
    walk_mapping(c, v, label, policy_fields, p);
    if (p->burst == 0)
        p->burst = p->limit;
    if (p->window_ms != 0 && p->burst > ((uint64_t)1 << 50) / p->window_ms)
        ERR(v, "%s: burst x window is too large", label);
}

/* a mapping of policy names (each a valid, unique name) to policies */
static void on_rate_limits(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    if (v->type != YAML_MAPPING_NODE) {
        ERR(v, "%s must be a mapping of policy names to policies, not %s", what, node_kind(v));
        return;
    }
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > GW_CONF_MAX_ITEMS) {
        ERR(v, "%s has more than %d policies", what, GW_CONF_MAX_ITEMS);
        return;
    }
    if ((conf->rate_limits = xcalloc(c, n, sizeof(*conf->rate_limits))) == NULL)
        return;
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; ++pr) {
        yaml_node_t *k = visit(c, pr->key), *pv = k != NULL ? visit(c, pr->value) : NULL;
        const gw_ratelimit_conf_t *o = conf->rate_limits;
        const char *name, *why;
        if (pv == NULL)
            break;
        if ((name = nonempty_scalar(c, k, "a rate limit name")) == NULL)
            continue;
        if ((why = check_name(name)) != NULL) {
            ERR(k, "rate limit name '" SHOW "' %s", name, why);
            continue;
        }
        while (o != conf->rate_limits + conf->num_rate_limits && strcmp(o->name, name) != 0)
            ++o;
        if (o != conf->rate_limits + conf->num_rate_limits) {
            ERR(k, "rate limit '%s' is already defined on line %d", name, o->line);
            continue;
        }
        gw_ratelimit_conf_t *p = &conf->rate_limits[conf->num_rate_limits];
        if ((p->name = xstrdup(c, name)) == NULL)
            break;
        conf->num_rate_limits++;
        parse_policy(c, p, k, pv);
    }
}

/* ---- routes --------------------------------------------------------------------------------------------- */

/* a path prefix: starts with '/', no "//", no "." or ".." segment; a trailing '/' is dropped (except for "/") */
static void on_route_prefix(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_route_conf_t *r = target;
    const char *s = nonempty_scalar(c, v, what), *why;
    size_t n;
    if (s == NULL)
        return;
    n = strlen(s);
    if (s[0] != '/')
        why = "must start with '/'";
    else if (strstr(s, "//") != NULL)
        why = "must not contain '//'";
    else if (strstr(s, "/./") != NULL || strstr(s, "/../") != NULL || (n >= 2 && strcmp(s + n - 2, "/.") == 0) ||
             (n >= 3 && strcmp(s + n - 3, "/..") == 0))
        why = "must not contain '.' or '..' segments";
    else
        why = check_url_path(s);
    if (why != NULL) {
        ERR(v, "%s '" SHOW "' %s", what, s, why);
        return;
    }
    while (n > 1 && s[n - 1] == '/')
        --n;
    r->prefix = xstrndup(c, s, n);
}

static void on_route_methods(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.allowed = method_names, .min = 1};
    gw_route_conf_t *r = target;
    gw_strlist_t l = {NULL, 0};
    get_strlist(c, v, what, &list, &l);
    if (l.n != 0) {
        r->methods = 0;
        for (size_t i = 0; i != l.n; ++i)
            r->methods |= gw_method_bit(l.v[i], strlen(l.v[i]));
    }
    strlist_free(&l);
}

/* "http://host[:port][/path]" -> host (without brackets), port (default 80), path (without trailing '/') */
static const char *parse_upstream(gw_conf_ctx_t *c, const char *url, gw_upstream_conf_t *u)
{
    gw_conf_authority_t a;
    const char *why;
    size_t plen;
    if (strncasecmp(url, "https://", 8) == 0)
        return "is https://: upstreams are reached over cleartext http:// only";
    if (strncasecmp(url, "http://", 7) != 0)
        return "must be an http://host[:port][/path] URL";
    if ((why = split_authority(url + 7, &a)) != NULL || (why = check_url_path(a.path)) != NULL)
        return why;
    plen = strlen(a.path);
    while (plen > 0 && a.path[plen - 1] == '/')
        --plen;
    u->url = xstrdup(c, url);
    u->host = xstrndup(c, a.host, a.host_len);
    u->port = a.port != 0 ? a.port : 80;
    u->path = xstrndup(c, a.path, plen);
    return NULL;
}

static void on_route_upstreams(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_route_conf_t *r = target;
    if (v->type != YAML_SEQUENCE_NODE) {
        ERR(v, "%s must be a list, not %s", what, node_kind(v));
        return;
    }
    if (seq_len(v) == 0 || seq_len(v) > GW_CONF_MAX_LIST) {
        ERR(v, "%s must list from 1 to %d upstreams", what, GW_CONF_MAX_LIST);
        return;
    }
    if ((r->upstreams = xcalloc(c, seq_len(v), sizeof(*r->upstreams))) == NULL)
        return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
        yaml_node_t *item = visit(c, *it);
        const char *s, *why;
        int twice = 0;
        if (item == NULL)
            break;
        if ((s = nonempty_scalar(c, item, what)) == NULL)
            continue;
        for (size_t j = 0; j != r->num_upstreams; ++j)
            twice |= r->upstreams[j].url != NULL && strcmp(r->upstreams[j].url, s) == 0;
        if (twice)
            ERR(item, "%s: '" SHOW "' is listed twice", what, s);
        else if ((why = parse_upstream(c, s, &r->upstreams[r->num_upstreams])) != NULL)
            ERR(item, "%s '" SHOW "' %s", what, s, why);
        else
            r->num_upstreams++;
    }
}

static int policy_defined(const gw_conf_t *conf, const char *name)
{
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        if (strcmp(conf->rate_limits[i].name, name) == 0)
            return 1;
    return 0;
}

/* names of rate_limits policies (read before routes), each reported at its own line when undefined */
static void on_route_rate_limit(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.check = check_name};
    gw_route_conf_t *r = target;
    get_strlist(c, v, what, &list, &r->rate_limit);
    if (v->type != YAML_SEQUENCE_NODE || r->rate_limit.v == NULL)
        return;
    if (r->rate_limit.n > GW_CONF_MAX_POLICIES)
        ERR(v, "%s: a route may name at most %d policies", what, GW_CONF_MAX_POLICIES);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
        yaml_node_t *item = yaml_document_get_node(c->doc, *it); /* already counted by get_strlist */
        const char *name = item != NULL && item->type == YAML_SCALAR_NODE ? (const char *)item->data.scalar.value : "";
        if (strlist_has(&r->rate_limit, name) && !policy_defined(c->conf, name))
            ERR(item, "%s: '%s' is not defined in rate_limits", what, name);
    }
}

static const gw_conf_field_t route_fields[] = {
    F_STRING(gw_route_conf_t, "name", name, .check = check_name, REQUIRED),
    F_CUSTOM("prefix", on_route_prefix, REQUIRED),
    F_CUSTOM("methods", on_route_methods),
    F_CUSTOM("upstreams", on_route_upstreams, REQUIRED),
    /* fail closed: a route is public only when it says so */
    F_LIST(gw_route_conf_t, "scopes", scopes, .check = check_scope, .required = " (write scopes: [] for a public route)"),
    F_CUSTOM("rate_limit", on_route_rate_limit),
    F_DURATION(gw_route_conf_t, "timeout", timeout_ms, 1),
    F_UINT(gw_route_conf_t, "retries", retries, 0, 5),
    F_BOOL(gw_route_conf_t, "strip_prefix", strip_prefix),
    F_END,
};

static void parse_route(gw_conf_ctx_t *c, void *item, yaml_node_t *node)
{
    gw_route_conf_t *r = item;
    r->line = line_of(node);
    r->methods = GW_M_ALL;
    r->timeout_ms = 30000;
    walk_mapping(c, node, "route", route_fields, r);
}

static void parse_routes(gw_conf_ctx_t *c, yaml_node_t *v)
{
    gw_conf_t *conf = c->conf;
    conf->routes = parse_items(c, v, "routes", GW_CONF_MAX_ITEMS, sizeof(*conf->routes), &conf->num_routes, parse_route);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const gw_route_conf_t *r = &conf->routes[i];
        for (size_t j = 0; j != i; ++j) {
            const gw_route_conf_t *o = &conf->routes[j];
            if (r->name != NULL && o->name != NULL && strcmp(r->name, o->name) == 0)
                error_at(c, r->line, "route name '%s' is already used on line %d", r->name, o->line);
            if (r->prefix != NULL && o->prefix != NULL && strcmp(r->prefix, o->prefix) == 0)
                error_at(c, r->line, "route prefix '" SHOW "' is already used on line %d", r->prefix, o->line);
        }
    }
}

/* routes are read last, wherever they are in the file, so that their rate_limit names can be checked */
static void on_routes(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    (void)target;
    (void)what;
    c->routes = v;
}

/* ---- qr ------------------------------------------------------------------------------------------------- */

static const char *const scene_names[] = {"transit", "medical", "payment", "government", "tourism", NULL}; /* scene - 1 */

static void on_qr_scenes(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    static const gw_conf_field_t list = {.allowed = scene_names};
    gw_conf_t *conf = target;
    gw_strlist_t l = {NULL, 0};
    get_strlist(c, v, what, &list, &l);
    if (l.v != NULL) {
        conf->qr.scenes = 0;
        for (size_t i = 0; i != l.n; ++i)
            conf->qr.scenes |= 1u << (name_index(scene_names, l.v[i]) + GW_SCENE_TRANSIT);
    }
    strlist_free(&l);
}

/* one byte of seconds on the wire: whole seconds, 1 to 255 */
static void on_qr_code_ttl(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    uint64_t ms;
    if (get_duration(c, v, what, 1000, 255000, &ms) != 0)
        return;
    if (ms % 1000 != 0)
        ERR(v, "%s must be whole seconds (the code carries it as one byte of seconds)", what);
    else
        conf->qr.code_ttl_ms = ms;
}

static const gw_conf_field_t qr_fields[] = {
    F_CUSTOM("scenes", on_qr_scenes),
    F_CUSTOM("code_ttl", on_qr_code_ttl),
    F_DURATION(gw_conf_t, "credential_ttl", qr.credential_ttl_ms, 1000),
    F_DURATION(gw_conf_t, "skew", qr.skew_ms, 0),
    F_END,
};

/* ---- top level ------------------------------------------------------------------------------------------ */

/* "-" (stdout), "off", or a file path (resolved) */
static void on_access_log(gw_conf_ctx_t *c, void *target, yaml_node_t *v, const char *what)
{
    gw_conf_t *conf = target;
    const char *s = nonempty_scalar(c, v, what);
    if (s == NULL)
        return;
    free(conf->access_log);
    conf->access_log = strcmp(s, "-") == 0 || strcmp(s, "off") == 0 ? xstrdup(c, s) : resolve_path(c, s);
}

static const char *const store_down_names[] = {"local", "open", "closed", NULL}; /* in gw_store_down_t order */

static const gw_conf_field_t top_fields[] = {
    F_STRING(gw_conf_t, "issuer", issuer, .check = check_own_issuer, REQUIRED),
    F_UINT(gw_conf_t, "threads", threads, 1, 64),
    F_DURATION(gw_conf_t, "shutdown_timeout", shutdown_timeout_ms, 1),
    F_CUSTOM("listen", on_listen, REQUIRED),
    F_SECTION("admin", admin_fields),
    F_CUSTOM("redis", on_redis),
    F_SECTION("keys", keys_fields),
    F_SECTION("limits", limits_fields),
    F_SECTION("tokens", tokens_fields),
    F_CUSTOM("trusted_issuers", on_trusted_issuers),
    F_CUSTOM("clients", on_clients),
    F_CUSTOM("rate_limits", on_rate_limits),
    F_ENUM(gw_conf_t, "on_store_down", on_store_down, store_down_names),
    F_UINT(gw_conf_t, "nodes", nodes, 1, 1024),
    F_CUSTOM("routes", on_routes),
    F_SECTION("qr", qr_fields),
    F_CUSTOM("access_log", on_access_log),
    F_END,
};

/* ---- loading -------------------------------------------------------------------------------------------- */

static void set_defaults(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    conf->threads = cpus < 1 ? 1 : cpus > 64 ? 64 : (unsigned)cpus;
    conf->shutdown_timeout_ms = 10000;
    conf->admin.host = xstrdup(c, "127.0.0.1");
    conf->admin.port = 9090;
    conf->redis.timeout_ms = 50;
    conf->limits.header_bytes = 16 << 10;
    conf->limits.body_bytes = 1 << 20;
    conf->limits.token_bytes = 8 << 10;
    conf->tokens.access_ttl_ms = 15 * 60000;
    conf->tokens.refresh_ttl_ms = 30ull * 86400000;
    conf->tokens.session_ttl_ms = 30ull * 86400000;
    conf->tokens.audience = xstrdup(c, "hegate");
    conf->on_store_down = GW_STORE_DOWN_LOCAL;
    conf->nodes = 1;
    conf->qr.scenes = (1u << GW_SCENE_TRANSIT) | (1u << GW_SCENE_MEDICAL) | (1u << GW_SCENE_PAYMENT) | (1u << GW_SCENE_GOVERNMENT) |
                      (1u << GW_SCENE_TOURISM);
    conf->qr.code_ttl_ms = 60000;
    conf->qr.credential_ttl_ms = 72ull * 3600000;
    conf->qr.skew_ms = 20000;
}

/* checks that need several parts of the file, whatever their order in it */
static void check_across(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        const gw_trusted_issuer_conf_t *t = &conf->trusted_issuers[i];
        if (t->issuer != NULL && conf->issuer != NULL && strcmp(t->issuer, conf->issuer) == 0)
            error_at(c, t->line, "trusted_issuer '" SHOW "' is this gateway's own issuer", t->issuer);
    }
    for (size_t i = 0; i != conf->num_listen && conf->admin.port != 0; ++i) {
        const gw_listen_conf_t *l = &conf->listen[i];
        if (l->port == conf->admin.port && l->host != NULL && conf->admin.host != NULL &&
            (strcmp(l->host, conf->admin.host) == 0 || strcmp(l->host, "0.0.0.0") == 0 || strcmp(l->host, "::") == 0))
            error_at(c, l->line, "listen: port %u is also the admin port (admin.listen)", l->port);
    }
}

/* defaults that depend on what the file said */
static void set_late_defaults(gw_conf_ctx_t *c)
{
    gw_conf_t *conf = c->conf;
    if (conf->redis.url == NULL && conf->redis.cluster.n == 0)
        conf->redis.url = xstrdup(c, "redis://127.0.0.1:6379/0");
    if (conf->keys_dir == NULL)
        conf->keys_dir = resolve_path(c, "keys");
    if (conf->access_log == NULL)
        conf->access_log = xstrdup(c, "-");
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* the whole file in memory (libyaml reads it from there); NULL, with an error, if it cannot be had */
static char *read_file(const char *path, gw_errors_t *errs, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0;
    int oom = 0;
    if (fp == NULL) {
        file_error(errs, path, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    while (!oom && !ferror(fp) && !feof(fp) && n <= GW_CONF_MAX_FILE_BYTES) {
        if (n == cap) { /* 64 KiB, then doubling, up to one byte more than allowed */
            size_t ncap = cap == 0 ? 65536 : cap * 2 > GW_CONF_MAX_FILE_BYTES + 1 ? GW_CONF_MAX_FILE_BYTES + 1 : cap * 2;
            if ((nb = realloc(buf, ncap)) == NULL) {
                oom = 1;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        n += fread(buf + n, 1, cap - n, fp);
    }
    int bad = ferror(fp) || n > GW_CONF_MAX_FILE_BYTES || oom;
    if (ferror(fp))
        file_error(errs, path, 0, "cannot read: %s", strerror(errno));
    else if (n > GW_CONF_MAX_FILE_BYTES)
        file_error(errs, path, 0, "the file is larger than %u bytes", GW_CONF_MAX_FILE_BYTES);
    else if (oom)
        file_error(errs, path, 0, "out of memory");
    fclose(fp);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void yaml_error(gw_errors_t *errs, const char *path, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown problem";
    size_t line = p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        file_error(errs, path, 0, "out of memory");
    } else if (p->error == YAML_READER_ERROR) { /* only a byte offset: count the lines up to it */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; ++i)
            line += text[i] == '\n';
        file_error(errs, path, (int)line, "YAML syntax error: %s", problem);
    } else if (p->context != NULL) {
        file_error(errs, path, (int)line, "YAML syntax error: %s (%s that starts on line %zu)", problem, p->context,
                   p->context_mark.line + 1);
    } else {
        file_error(errs, path, (int)line, "YAML syntax error: %s", problem);
    }
}

/* after the first document, nothing but the end of the stream; -1 (reported) otherwise */
static int expect_end(gw_errors_t *errs, const char *path, yaml_parser_t *parser, const char *text, size_t len)
{
    yaml_document_t doc;
    int ret = 0;
    if (!yaml_parser_load(parser, &doc)) {
        yaml_error(errs, path, parser, text, len);
        return -1;
    }
    if (yaml_document_get_root_node(&doc) != NULL) {
        file_error(errs, path, (int)doc.start_mark.line + 1, "only one YAML document may be in the file");
        ret = -1;
    }
    yaml_document_delete(&doc);
    return ret;
}

static gw_conf_t *load_document(const char *path, yaml_document_t *doc, gw_errors_t *errs, int failed)
{
    gw_conf_ctx_t ctx = {path, doc, errs, NULL, NULL, GW_CONF_MAX_VALUES, failed, 0}, *c = &ctx;
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if ((c->conf = calloc(1, sizeof(*c->conf))) == NULL) {
        file_error(errs, path, 0, "out of memory");
        return NULL;
    }
    c->conf->path = xstrdup(c, path);
    if ((c->conf->dir = dir_of(path)) == NULL)
        c->oom = 1;
    if (!c->oom) {
        set_defaults(c);
        if (root == NULL)
            error_at(c, 1, "the file is empty: it should be a mapping of keys to values (SPEC §2)");
        else
            walk_mapping(c, root, "", top_fields, c->conf);
        if (c->routes != NULL)
            parse_routes(c, c->routes);
        check_across(c);
        set_late_defaults(c);
    }
    if (c->oom)
        error_at(c, 0, "out of memory");
    if (c->failed) {
        gw_conf_free(c->conf);
        return NULL;
    }
    return c->conf;
}

static const yaml_char_t *event_anchor(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* libyaml slows down with the square of the nesting depth (4 MiB of '[' would take hours) and with
 * anchors x aliases, so a first pass over the events refuses such files before any document is built.
 * A syntax error ends this pass quietly: the load that follows reports it. */
static int check_shape(gw_errors_t *errs, const char *path, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, anchors = 0, aliases = 0, ret = 0;
    if (!yaml_parser_initialize(&parser))
        return 0;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (ret == 0 && yaml_parser_parse(&parser, &ev)) {
        yaml_event_type_t type = ev.type;
        int line = (int)ev.start_mark.line + 1;
        if ((type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) && ++depth > GW_CONF_MAX_DEPTH) {
            file_error(errs, path, line, "lists and mappings are nested more than %d deep", GW_CONF_MAX_DEPTH);
            ret = -1;
        } else if (event_anchor(&ev) != NULL && ++anchors > GW_CONF_MAX_ANCHORS) {
            file_error(errs, path, line, "the file has more than %d anchors (&name)", GW_CONF_MAX_ANCHORS);
            ret = -1;
        } else if (type == YAML_ALIAS_EVENT && ++aliases > GW_CONF_MAX_ALIASES) {
            file_error(errs, path, line, "the file has more than %d aliases (*name)", GW_CONF_MAX_ALIASES);
            ret = -1;
        }
        depth -= type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    return ret;
}

static gw_conf_t *load_text(const char *path, const char *text, size_t len, gw_errors_t *errs)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    gw_conf_t *conf = NULL;
    if (check_shape(errs, path, text, len) != 0)
        return NULL;
    if (!yaml_parser_initialize(&parser)) {
        file_error(errs, path, 0, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(errs, path, &parser, text, len);
    } else {
        int failed = expect_end(errs, path, &parser, text, len) != 0;
        conf = load_document(path, &doc, errs, failed); /* a later document's mistake does not hide this one's */
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return conf;
}

typedef struct {
    long line;
    size_t index;
    char *msg;
} gw_conf_sorted_t;

static int cmp_sorted(const void *a, const void *b)
{
    const gw_conf_sorted_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* the errors from FROM on in the order of their lines (they are found in the schema's order); ties keep theirs */
static void sort_errors(gw_errors_t *errs, size_t from, const char *path)
{
    size_t n = errs->n - from, skip = strlen(path) + 1;
    gw_conf_sorted_t *t;
    if (n < 2 || (t = malloc(n * sizeof(*t))) == NULL)
        return;
    for (size_t i = 0; i != n; ++i)
        t[i] = (gw_conf_sorted_t){strtol(errs->v[from + i] + skip, NULL, 10), i, errs->v[from + i]};
    qsort(t, n, sizeof(*t), cmp_sorted);
    for (size_t i = 0; i != n; ++i)
        errs->v[from + i] = t[i].msg;
    free(t);
}

gw_conf_t *gw_conf_load(const char *path, gw_errors_t *errs)
{
    size_t len = 0, first_error = errs->n;
    char *text = read_file(path, errs, &len);
    gw_conf_t *conf = text != NULL ? load_text(path, text, len, errs) : NULL;
    free(text);
    sort_errors(errs, first_error, path);
    return conf;
}

void gw_conf_free(gw_conf_t *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i != conf->num_listen; ++i) {
        free(conf->listen[i].host);
        free(conf->listen[i].tls_cert);
        free(conf->listen[i].tls_key);
    }
    free(conf->listen);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        gw_route_conf_t *r = &conf->routes[i];
        free(r->name);
        free(r->prefix);
        for (size_t j = 0; j != r->num_upstreams; ++j) {
            free(r->upstreams[j].url);
            free(r->upstreams[j].host);
            free(r->upstreams[j].path);
        }
        free(r->upstreams);
        strlist_free(&r->scopes);
        strlist_free(&r->rate_limit);
    }
    free(conf->routes);
    for (size_t i = 0; i != conf->num_clients; ++i) {
        gw_client_conf_t *cl = &conf->clients[i];
        free(cl->id);
        free(cl->secret_hash);
        strlist_free(&cl->redirect_uris);
        strlist_free(&cl->scopes);
        strlist_free(&cl->grants);
        strlist_free(&cl->roles);
    }
    free(conf->clients);
    for (size_t i = 0; i != conf->num_rate_limits; ++i)
        free(conf->rate_limits[i].name);
    free(conf->rate_limits);
    for (size_t i = 0; i != conf->num_trusted_issuers; ++i) {
        free(conf->trusted_issuers[i].issuer);
        free(conf->trusted_issuers[i].jwks);
        free(conf->trusted_issuers[i].audience);
    }
    free(conf->trusted_issuers);
    free(conf->admin.host);
    free(conf->redis.url);
    strlist_free(&conf->redis.cluster);
    free(conf->keys_dir);
    free(conf->tokens.audience);
    free(conf->issuer);
    free(conf->access_log);
    free(conf->path);
    free(conf->dir);
    free(conf);
}

const gw_client_conf_t *gw_conf_client(const gw_conf_t *conf, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i != conf->num_clients; ++i)
        if (strcmp(conf->clients[i].id, id) == 0)
            return &conf->clients[i];
    return NULL;
}
