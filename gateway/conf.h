/*
 * gateway/conf.h — the parsed configuration (SPEC §2), and nothing else.
 *
 * gw_conf_load() reads one YAML file into a gw_conf_t: every key of SPEC §2 is parsed and
 * validated here, so the rest of the gateway only ever sees checked, typed values (durations
 * in milliseconds, sizes in bytes, paths already resolved against the file's folder).
 * Errors are collected, not fatal: every problem found is reported as "FILE:LINE: message".
 * The struct is immutable once loaded; one gw_conf_free() releases all of it.
 */
#ifndef hegate_gateway_conf_h
#define hegate_gateway_conf_h

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **v;
    size_t n;
} gw_strlist_t;

/* methods as a bit set; a route without `methods` accepts all of them */
enum {
    GW_M_GET = 1 << 0,
    GW_M_HEAD = 1 << 1,
    GW_M_POST = 1 << 2,
    GW_M_PUT = 1 << 3,
    GW_M_PATCH = 1 << 4,
    GW_M_DELETE = 1 << 5,
    GW_M_OPTIONS = 1 << 6,
    GW_M_ALL = (1 << 7) - 1
};
/* the bit of a method name (case-sensitive, as HTTP), 0 if unknown */
unsigned gw_method_bit(const char *name, size_t len);
/* the name of one bit, NULL if not exactly one known bit */
const char *gw_method_name(unsigned bit);

typedef struct {
    char *host;     /* bind address; default "0.0.0.0" (extension: `host:` key) */
    uint16_t port;
    char *tls_cert; /* NULL for cleartext; resolved path */
    char *tls_key;
    int line;
} gw_listen_conf_t;

typedef struct {
    char *url;  /* as written, e.g. "http://127.0.0.1:9101" (only http:// is accepted) */
    char *host; /* "127.0.0.1" */
    uint16_t port;
    char *path; /* base path from the URL, "" when none ("http://h:1/base" -> "/base") */
} gw_upstream_conf_t;

typedef struct {
    char *name;
    char *prefix; /* starts with '/', no trailing '/' unless it is exactly "/" */
    unsigned methods;
    gw_upstream_conf_t *upstreams;
    size_t num_upstreams;
    gw_strlist_t scopes;      /* empty = public route */
    gw_strlist_t rate_limit;  /* names, each checked to exist in rate_limits */
    uint64_t timeout_ms;      /* default 30s */
    unsigned retries;         /* default 0 */
    int strip_prefix;         /* default 0 */
    int line;
} gw_route_conf_t;

/* what `sub` an OpenID Connect client sees (in conf_schema.c's subject_type_names order) */
typedef enum { GW_SUBJECT_PAIRWISE, GW_SUBJECT_PUBLIC } gw_subject_type_t;

typedef struct {
    char *id;
    gw_strlist_t redirect_uris;
    gw_strlist_t post_logout_redirect_uris; /* where /oauth2/end_session may send the browser back to */
    gw_strlist_t scopes;
    gw_strlist_t grants;  /* default: [authorization_code, refresh_token] */
    gw_strlist_t roles;   /* transit | medical | merchant | government | tourism */
    char *secret_hash;    /* NULL for a public client */
    int first_party;
    gw_subject_type_t subject_type; /* default: public for first_party clients, else pairwise (SPEC §6.2) */
    char *sector_identifier;        /* pairwise subjects are per sector: default the client id */
    char *backchannel_logout_uri;   /* where a logout token is POSTed when a session it was in ends (SPEC §6.2) */
    char *name, *description;       /* shown to a resident approving a device (SPEC §6.1); name required for device_code */
    int shared_device;              /* a kiosk: no refresh token, access tokens ≤ tokens.shared_device_ttl */
    int line;
} gw_client_conf_t;

typedef enum { GW_LIMIT_KEY_USER, GW_LIMIT_KEY_CLIENT, GW_LIMIT_KEY_IP } gw_limit_key_t;

typedef struct {
    char *name;
    gw_limit_key_t key;
    uint64_t limit;     /* requests per window, > 0 */
    uint64_t window_ms; /* > 0 */
    uint64_t burst;     /* default = limit */
    int line;
} gw_ratelimit_conf_t;

typedef struct {
    char *issuer;
    char *jwks; /* resolved path */
    char *audience;
    int line;
} gw_trusted_issuer_conf_t;

typedef enum { GW_STORE_DOWN_LOCAL, GW_STORE_DOWN_OPEN, GW_STORE_DOWN_CLOSED } gw_store_down_t;

/* qr scenes as bits: 1 << scene number (transit = 1 ... tourism = 5) */
enum { GW_SCENE_TRANSIT = 1, GW_SCENE_MEDICAL, GW_SCENE_PAYMENT, GW_SCENE_GOVERNMENT, GW_SCENE_TOURISM };

typedef struct {
    char *path;     /* the file as given */
    char *dir;      /* its folder, for relative paths */
    char *issuer;   /* required, an https:// or http:// URL without trailing '/' */
    unsigned threads; /* default: number of online CPUs */
    uint64_t shutdown_timeout_ms; /* default 10s */
    gw_listen_conf_t *listen;
    size_t num_listen; /* at least one */
    struct {
        char *host; /* default 127.0.0.1 */
        uint16_t port; /* default 9090; 0 = no admin listener */
    } admin;
    struct {
        char *url;            /* "redis://h:p/db" or "unix:/path"; NULL if cluster is used */
        gw_strlist_t cluster; /* redis://h:p seeds */
        uint64_t timeout_ms;  /* default 50ms */
    } redis;
    char *keys_dir;  /* resolved; default "keys" */
    struct {
        uint64_t header_bytes; /* default 16k */
        unsigned header_fields; /* in one HTTP/2 header block (HTTP/1.1: h2o's own 100); default 100 */
        uint64_t body_bytes;   /* default 1m */
        uint64_t token_bytes;  /* default 8k */
        /* the connection guard (guard.c); 0 turns one off */
        unsigned connections;            /* open client connections per process; default 16384 */
        unsigned connections_per_ip;     /* open from one address (IPv6: one /64); default 256 */
        unsigned new_connections_per_ip; /* per second from one address, bursts of 2 s; default 64 */
        unsigned device_authorizations_per_ip; /* device codes one address may ask for a minute (SPEC §6.1); default 120 */
        uint64_t handshake_timeout_ms;   /* TLS handshake / first bytes; default 10s */
        uint64_t head_timeout_ms;        /* a request head; default 10s */
        uint64_t body_timeout_ms;        /* an HTTP/2 request body; default 60s */
        uint64_t idle_timeout_ms;        /* an HTTP/2 connection without a frame; default 30s */
        uint64_t send_timeout_ms;        /* a response the client takes no byte of; default 30s */
        unsigned h2_resets_per_second;   /* streams a client cancels, per connection; default 100 */
        unsigned h2_control_frames_per_second; /* per connection; default 100 */
        uint64_t response_buffer_bytes;  /* of an upstream's answer held for a slow client; default 256k */
        uint64_t response_buffer_total;  /* of every answer held, per process (shared out by thread); default 32m */
    } limits;
    struct {
        uint64_t access_ttl_ms;  /* default 15m */
        uint64_t refresh_ttl_ms; /* default 30d */
        uint64_t session_ttl_ms; /* default 30d */
        uint64_t device_ttl_ms;        /* a device authorization's life (SPEC §6.1); default 5m, at most 10m */
        uint64_t shared_device_ttl_ms; /* the access tokens of a shared_device client at most; default 10m */
        char *audience;          /* default "hegate" */
    } tokens;
    gw_trusted_issuer_conf_t *trusted_issuers;
    size_t num_trusted_issuers;
    gw_client_conf_t *clients;
    size_t num_clients;
    gw_ratelimit_conf_t *rate_limits;
    size_t num_rate_limits;
    gw_store_down_t on_store_down; /* default local */
    unsigned nodes;                /* default 1 */
    gw_route_conf_t *routes;
    size_t num_routes;
    struct {
        unsigned scenes;          /* bit set of 1 << GW_SCENE_*; default all five */
        uint64_t code_ttl_ms;     /* default 60s, at most 255s (one byte on the wire) */
        uint64_t credential_ttl_ms; /* default 72h */
        uint64_t skew_ms;         /* default 20s */
    } qr;
    char *access_log; /* extension: file for the JSON access log; default "-" (stdout); "off" disables */
} gw_conf_t;

/* collected errors, each "file:line: message" */
typedef struct {
    char **v;
    size_t n;
} gw_errors_t;

/* The client ID of CONF, or NULL (ID NULL too). */
const gw_client_conf_t *gw_conf_client(const gw_conf_t *conf, const char *id);

/* Loads and validates PATH. Returns NULL when anything is wrong; every problem is appended to ERRS. */
gw_conf_t *gw_conf_load(const char *path, gw_errors_t *errs);
void gw_conf_free(gw_conf_t *conf);
void gw_errors_clear(gw_errors_t *errs);

/* "10k" / "1m" / "512" -> bytes (k = 1024). Returns 0 on success, -1 if malformed or overflowing. */
int gw_parse_size(const char *s, uint64_t *out);
/* "500ms" / "15m" / "2h" / "30d" / "10s" / "10" (seconds) -> milliseconds. 0 on success, -1 otherwise. */
int gw_parse_duration(const char *s, uint64_t *out_ms);

#endif
