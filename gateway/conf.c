/*
 * gateway/conf.c — the configuration engine: YAML text into a checked gw_conf_t, whatever the keys.
 *
 * gw_conf_load() (called by `hegate check`, at start-up and on SIGHUP by server.c, and by CLI commands
 * that need the config) reads the file, refuses shapes that would make libyaml slow, loads the document
 * and hands it to the schema (conf_schema.c), whose field tables gw_conf_walk_mapping() applies. libyaml's
 * document API gives every node its line, so each problem becomes "FILE:LINE: message", and all of them are
 * collected (sorted by line) before the load fails. Sizes, durations and lists of strings are parsed here.
 * It knows no key of the file; it never opens sockets, keeps global state, or repeats a secret in a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include "gateway/conf.h"
#include "gateway/conf_internal.h"

#define GW_CONF_MAX_FILE_BYTES (4u << 20) /* a config file larger than this is a mistake */
#define GW_CONF_MAX_VALUES 250000         /* nodes visited, aliases counted at each use: bounds the work */
#define GW_CONF_MAX_DEPTH 32              /* mappings and lists inside each other; the schema needs 4 */
#define GW_CONF_MAX_ANCHORS 100           /* &anchors in one file */
#define GW_CONF_MAX_ALIASES 10000         /* *aliases in one file */

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

void gw_conf_error_at(gw_conf_ctx_t *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(c->errs, c->path, line, fmt, ap);
    va_end(ap);
    c->failed = 1;
}

void gw_errors_clear(gw_errors_t *errs)
{
    for (size_t i = 0; i != errs->n; ++i)
        free(errs->v[i]);
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

/* ---- memory: a failed allocation fails the load instead of leaving a NULL in a "valid" config ----------- */

void *gw_conf_calloc(gw_conf_ctx_t *c, size_t n, size_t size)
{
    void *p = calloc(n + 1, size);
    if (p == NULL)
        c->oom = 1;
    return p;
}

char *gw_conf_strndup(gw_conf_ctx_t *c, const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        c->oom = 1;
    return p;
}

char *gw_conf_strdup(gw_conf_ctx_t *c, const char *s)
{
    return gw_conf_strndup(c, s, strlen(s));
}

void gw_conf_strlist_free(gw_strlist_t *l)
{
    for (size_t i = 0; i != l->n; ++i)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int gw_conf_strlist_has(const gw_strlist_t *l, const char *s)
{
    for (size_t i = 0; i != l->n; ++i)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* ---- numbers, sizes, durations -------------------------------------------------------------------------- */

int gw_conf_parse_u64(const char *s, uint64_t *out, const char **rest)
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
    if (s == NULL || gw_conf_parse_u64(s, &v, &rest) != 0)
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
    if (s == NULL || gw_conf_parse_u64(s, &v, &rest) != 0)
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

/* ---- nodes and values ----------------------------------------------------------------------------------- */

yaml_node_t *gw_conf_visit(gw_conf_ctx_t *c, int index)
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

const char *gw_conf_node_kind(const yaml_node_t *node)
{
    return node->type == YAML_SEQUENCE_NODE ? "a list" : node->type == YAML_MAPPING_NODE ? "a mapping" : "a value";
}

const char *gw_conf_scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        ERR(node, "%s must be a single value, not %s", what, gw_conf_node_kind(node));
        return NULL;
    }
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length) {
        ERR(node, "%s must not contain a NUL character", what);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

const char *gw_conf_nonempty_scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what)
{
    const char *s = gw_conf_scalar(c, node, what);
    if (s != NULL && *s == '\0') {
        ERR(node, "%s must not be empty", what);
        return NULL;
    }
    return s;
}

static int get_uint(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = gw_conf_scalar(c, node, what), *rest;
    uint64_t v;
    if (s == NULL)
        return -1;
    if (gw_conf_parse_u64(s, &v, &rest) != 0 || *rest != '\0' || v < min || v > max) {
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
    const char *s = gw_conf_scalar(c, node, what);
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
    const char *s = gw_conf_scalar(c, node, what);
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

int gw_conf_get_duration(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = gw_conf_scalar(c, node, what);
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

char *gw_conf_resolve_path(gw_conf_ctx_t *c, const char *p)
{
    const char *dir = c->conf->dir;
    char *r = NULL;
    if (p[0] == '/')
        return gw_conf_strdup(c, p);
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

int gw_conf_name_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; ++i)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

void gw_conf_get_strlist(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, const gw_conf_field_t *f, gw_strlist_t *out)
{
    char names[256];
    gw_conf_strlist_free(out);
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "%s must be a list, not %s", what, gw_conf_node_kind(node));
        return;
    }
    if (gw_conf_seq_len(node) > GW_CONF_MAX_LIST) {
        ERR(node, "%s has more than %d entries", what, GW_CONF_MAX_LIST);
        return;
    }
    if (gw_conf_seq_len(node) < f->min)
        ERR(node, "%s must not be empty", what);
    if ((out->v = gw_conf_calloc(c, gw_conf_seq_len(node), sizeof(*out->v))) == NULL)
        return;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = gw_conf_visit(c, *it);
        size_t nth = (size_t)(it - node->data.sequence.items.start) + 1;
        const char *s, *why;
        if (item == NULL)
            break;
        if ((s = gw_conf_nonempty_scalar(c, item, what)) == NULL)
            continue;
        if (f->allowed != NULL && gw_conf_name_index(f->allowed, s) < 0) {
            join_names(f->allowed, names, sizeof(names));
            ERR(item, "%s: unknown value '" SHOW "' (expected %s)", what, s, names);
        } else if (f->check != NULL && (why = f->check(s)) != NULL) {
            if (f->secret)
                ERR(item, "%s: entry %zu %s", what, nth, why);
            else
                ERR(item, "%s '" SHOW "' %s", what, s, why);
        } else if (gw_conf_strlist_has(out, s)) {
            if (f->secret)
                ERR(item, "%s: entry %zu is listed twice", what, nth);
            else
                ERR(item, "%s: '" SHOW "' is listed twice", what, s);
        } else if ((out->v[out->n] = gw_conf_strdup(c, s)) != NULL) {
            out->n++;
        }
    }
}

static void apply_string(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = gw_conf_nonempty_scalar(c, v, what), *why;
    if (s == NULL)
        return;
    if (f->check != NULL && (why = f->check(s)) != NULL) {
        if (f->secret)
            ERR(v, "%s %s", what, why);
        else
            ERR(v, "%s '" SHOW "' %s", what, s, why);
        return;
    }
    set_string(target, f, gw_conf_strdup(c, s));
}

static void apply_path(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = gw_conf_nonempty_scalar(c, v, what);
    char *p;
    if (s == NULL)
        return;
    set_string(target, f, p = gw_conf_resolve_path(c, s));
    if (p != NULL && f->kind == GW_CONF_FILE)
        check_readable(c, v, what, p);
}

static void apply_enum(gw_conf_ctx_t *c, const gw_conf_field_t *f, const char *what, yaml_node_t *v, void *target)
{
    const char *s = gw_conf_scalar(c, v, what);
    char names[256];
    int i;
    if (s == NULL)
        return;
    if ((i = gw_conf_name_index(f->allowed, s)) >= 0) {
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
        gw_conf_get_duration(c, v, what, f->min, f->max, (uint64_t *)((char *)target + f->off));
        break;
    case GW_CONF_ENUM:
        apply_enum(c, f, what, v, target);
        break;
    case GW_CONF_LIST:
        gw_conf_get_strlist(c, v, what, f, (gw_strlist_t *)((char *)target + f->off));
        break;
    case GW_CONF_SECTION:
        gw_conf_walk_mapping(c, v, what, f->section, target);
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

void gw_conf_walk_mapping(gw_conf_ctx_t *c, yaml_node_t *node, const char *label, const gw_conf_field_t *fields, void *target)
{
    int first_line[64] = {0};
    if (node->type != YAML_MAPPING_NODE) {
        ERR(node, "%s must be a mapping of keys to values, not %s", *label ? label : "the file", gw_conf_node_kind(node));
        return;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = gw_conf_visit(c, p->key), *v = k != NULL ? gw_conf_visit(c, p->value) : NULL;
        const char *name;
        char what[96];
        if (v == NULL)
            break;
        if (k->type != YAML_SCALAR_NODE) {
            ERR(k, "keys in %s must be plain names, not %s", *label ? label : "the file", gw_conf_node_kind(k));
            continue;
        }
        if ((name = gw_conf_scalar(c, k, "a key")) == NULL)
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
        first_line[i] = gw_conf_line_of(k);
        snprintf(what, sizeof(what), "%s%s%s", label, *label ? "." : "", name);
        apply_field(c, &fields[i], what, v, target);
    }
    for (size_t i = 0; fields[i].name != NULL && c->budget > 0; ++i)
        if (fields[i].required != NULL && first_line[i] == 0)
            ERR(node, "%s%skey '%s' is required%s", label, *label ? ": " : "", fields[i].name, fields[i].required);
}

void *gw_conf_parse_items(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, size_t max, size_t elem, size_t *count,
                          gw_conf_item_fn fn)
{
    char *arr;
    if (node->type != YAML_SEQUENCE_NODE) {
        ERR(node, "%s must be a list, not %s", what, gw_conf_node_kind(node));
        return NULL;
    }
    if (gw_conf_seq_len(node) > max) {
        ERR(node, "%s has more than %zu entries", what, max);
        return NULL;
    }
    if ((arr = gw_conf_calloc(c, gw_conf_seq_len(node), elem)) == NULL)
        return NULL;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; ++it) {
        yaml_node_t *item = gw_conf_visit(c, *it);
        if (item == NULL)
            break;
        fn(c, arr + elem * (*count)++, item);
    }
    return arr;
}

yaml_node_t *gw_conf_mapping_get(gw_conf_ctx_t *c, yaml_node_t *node, const char *key)
{
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(c->doc, p->value);
    }
    return NULL;
}

/* ---- loading -------------------------------------------------------------------------------------------- */

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
    c->conf->path = gw_conf_strdup(c, path);
    if ((c->conf->dir = dir_of(path)) == NULL)
        c->oom = 1;
    if (!c->oom)
        gw_conf_apply_schema(c, root);
    if (c->oom)
        gw_conf_error_at(c, 0, "out of memory");
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
