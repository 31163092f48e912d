/*
 * gateway/conf_internal.h — what the pieces of the configuration loader share, and nothing else.
 *
 * conf.c is the engine (the YAML document, errors with their lines, values, the field-table walker),
 * conf_schema.c says which keys exist and what they mean, conf_check.c what names, hosts and URLs may
 * look like. Only those files include this header; the rest of the gateway sees conf.h.
 */
#ifndef hegate_gateway_conf_internal_h
#define hegate_gateway_conf_internal_h

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>
#include "gateway/conf.h"

#define GW_CONF_MAX_LIST 256 /* entries of one list of strings */
#define SHOW "%.200s"        /* how much of a bad value a message repeats */

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

/* ---- conf.c: errors ------------------------------------------------------------------------------------- */

/* "path:LINE: message" appended to the errors; the load fails */
void gw_conf_error_at(gw_conf_ctx_t *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static inline int gw_conf_line_of(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

/* an error at NODE's line; needs a gw_conf_ctx_t *c in scope */
#define ERR(node, ...) gw_conf_error_at(c, gw_conf_line_of(node), __VA_ARGS__)

/* ---- conf.c: memory (a failed allocation sets c->oom, which fails the load) ----------------------------- */

/* N + 1 zeroed items (a NULL-terminated list has room for its NULL) */
void *gw_conf_calloc(gw_conf_ctx_t *c, size_t n, size_t size);
char *gw_conf_strndup(gw_conf_ctx_t *c, const char *s, size_t n);
char *gw_conf_strdup(gw_conf_ctx_t *c, const char *s);
void gw_conf_strlist_free(gw_strlist_t *l);
int gw_conf_strlist_has(const gw_strlist_t *l, const char *s);

/* ---- conf.c: numbers, nodes and values ------------------------------------------------------------------ */

/* the leading decimal digits of S (at least one) -> *OUT; *REST points after them. -1 on overflow. */
int gw_conf_parse_u64(const char *s, uint64_t *out, const char **rest);
/* the node at INDEX, counted against the budget; NULL (reported once) when the file holds too much */
yaml_node_t *gw_conf_visit(gw_conf_ctx_t *c, int index);

static inline size_t gw_conf_seq_len(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

/* "a list", "a mapping" or "a value", for messages */
const char *gw_conf_node_kind(const yaml_node_t *node);
/* the text of a scalar NODE; NULL (reported, WHAT naming the key) for a list, a mapping or an inner NUL */
const char *gw_conf_scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what);
/* the same, and the text must not be empty */
const char *gw_conf_nonempty_scalar(gw_conf_ctx_t *c, yaml_node_t *node, const char *what);
/* a duration in [MIN, MAX] milliseconds into *OUT; -1 (reported) otherwise */
int gw_conf_get_duration(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, uint64_t min, uint64_t max, uint64_t *out);
/* P resolved against the config file's folder */
char *gw_conf_resolve_path(gw_conf_ctx_t *c, const char *p);
/* the index of S in the NULL-terminated NAMES, -1 if absent */
int gw_conf_name_index(const char *const *names, const char *s);
/* the value of KEY in the mapping NODE, NULL if absent (not counted against the budget) */
yaml_node_t *gw_conf_mapping_get(gw_conf_ctx_t *c, yaml_node_t *node, const char *key);

/* ---- conf.c: the field tables, one row per key, saying what it holds and where it goes ------------------ */

typedef const char *(*gw_conf_check_fn)(const char *value);

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

_Static_assert(sizeof(gw_store_down_t) == sizeof(int) && sizeof(gw_limit_key_t) == sizeof(int) &&
                   sizeof(gw_subject_type_t) == sizeof(int),
               "GW_CONF_ENUM stores an int");

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
#define F_DURATION_IN(T, key, m, lo, hi, ...) {.name = key, .kind = GW_CONF_DURATION, AT(T, m), .min = lo, .max = hi, __VA_ARGS__}
#define F_ENUM(T, key, m, names, ...) {.name = key, .kind = GW_CONF_ENUM, AT(T, m), .allowed = names, __VA_ARGS__}
#define F_LIST(T, key, m, ...) {.name = key, .kind = GW_CONF_LIST, AT(T, m), __VA_ARGS__}
#define F_SECTION(key, fields) {.name = key, .kind = GW_CONF_SECTION, .section = fields}
#define F_CUSTOM(key, fn, ...) {.name = key, .kind = GW_CONF_CUSTOM, .custom = fn, __VA_ARGS__}
#define REQUIRED .required = ""
#define F_END {.name = NULL}
/* clang-format on */

/* the list at NODE into OUT (replacing it), as F describes; each bad entry is reported at its own line */
void gw_conf_get_strlist(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, const gw_conf_field_t *f, gw_strlist_t *out);
/* Applies each key of the mapping NODE (a LABEL such as "route" or "listen.tls"; "" at the top) to TARGET
 * through FIELDS, and reports keys that are unknown, given twice, or required and missing. */
void gw_conf_walk_mapping(gw_conf_ctx_t *c, yaml_node_t *node, const char *label, const gw_conf_field_t *fields, void *target);

/* Calls FN for each item of the list NODE, in an array of zeroed ELEM-sized items that it returns (or NULL);
 * *COUNT counts the items begun, so that gw_conf_free() can release a partly filled array. */
typedef void (*gw_conf_item_fn)(gw_conf_ctx_t *c, void *item, yaml_node_t *node);
void *gw_conf_parse_items(gw_conf_ctx_t *c, yaml_node_t *node, const char *what, size_t max, size_t elem, size_t *count,
                          gw_conf_item_fn fn);

/* ---- conf_schema.c -------------------------------------------------------------------------------------- */

/* Fills c->conf from ROOT (NULL when the file holds no document): the defaults, every key of the file,
 * the routes last, then what needs several sections and the defaults that depend on them. */
void gw_conf_apply_schema(gw_conf_ctx_t *c, yaml_node_t *root);

/* ---- conf_check.c: what names, hosts and URLs may look like (each returns why a value is refused, or NULL) */

const char *gw_conf_check_name(const char *s);      /* route and rate-limit names */
const char *gw_conf_check_client_id(const char *s); /* OAuth client ids */
const char *gw_conf_check_scope(const char *s);     /* one scope (RFC 6749 §3.3) */
const char *gw_conf_check_url_path(const char *p);  /* the path part of a URL */
const char *gw_conf_check_redirect_uri(const char *s);
const char *gw_conf_check_backchannel_uri(const char *s);
const char *gw_conf_check_display_text(const char *s);
const char *gw_conf_check_own_issuer(const char *s); /* the gateway's issuer: no trailing '/' */
const char *gw_conf_check_trusted_issuer(const char *s);
const char *gw_conf_check_redis_url_or_unix(const char *s);
const char *gw_conf_check_redis_seed(const char *s); /* a cluster seed: redis:// only */

/* an IPv4 literal, an IPv6 literal (bare, only when ALLOW_V6) or a DNS name: 1 if H (N bytes) is one */
int gw_conf_valid_host(const char *h, size_t n, int allow_v6);
/* the decimal port between S and END, 1-65535: 0, or -1 */
int gw_conf_parse_port(const char *s, const char *end, uint16_t *port);

typedef struct {
    const char *host; /* without brackets */
    size_t host_len;
    uint16_t port;    /* 0 when not given */
    const char *path; /* what follows the authority: "", "/...", or a query or fragment */
} gw_conf_authority_t;

/* "host[:port]" or "[v6][:port]" at the start of P, up to the first '/', '?' or '#' */
const char *gw_conf_split_authority(const char *p, gw_conf_authority_t *a);

#endif
