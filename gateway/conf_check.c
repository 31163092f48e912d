/*
 * gateway/conf_check.c — what names, hosts and URLs in the configuration may look like.
 *
 * Pure checks of one string each, used by the schema (conf_schema.c) in its field tables and parsers: each
 * returns why a value is refused, or NULL. They never allocate, never look at the YAML document, and never
 * repeat the value (the caller decides whether it may: a Redis URL can hold a password).
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>
#include "gateway/conf.h"
#include "gateway/conf_internal.h"

/* route and rate-limit names: they appear in metrics labels, RateLimit headers and logs */
const char *gw_conf_check_name(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return s[n] == '\0' && n <= 64 ? NULL : "is not a valid name (1 to 64 of A-Z a-z 0-9 . _ -)";
}

/* client ids: sent in HTTP Basic credentials and in x-hegate-client */
const char *gw_conf_check_client_id(const char *s)
{
    size_t n = 0;
    while (s[n] >= 0x21 && s[n] <= 0x7e && s[n] != ':' && s[n] != '"' && s[n] != '\\')
        ++n;
    return s[n] == '\0' && n <= 128 ? NULL
                                    : "is not a valid client id (1 to 128 printable ASCII characters, no space, ':', '\"' or '\\')";
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
const char *gw_conf_check_scope(const char *s)
{
    for (const char *p = s; *p != '\0'; ++p)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return "is not a valid scope (printable ASCII without spaces, '\"' or '\\', RFC 6749 §3.3)";
    return NULL;
}

/* the path part of a URL: visible ASCII, no query or fragment */
const char *gw_conf_check_url_path(const char *p)
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
const char *gw_conf_check_redirect_uri(const char *s)
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
int gw_conf_valid_host(const char *h, size_t n, int allow_v6)
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
int gw_conf_parse_port(const char *s, const char *end, uint16_t *port)
{
    uint64_t v;
    const char *rest;
    if (end - s > 5 || gw_conf_parse_u64(s, &v, &rest) != 0 || rest != end || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* "host[:port]" or "[v6][:port]" at the start of P, up to the first '/', '?' or '#' */
const char *gw_conf_split_authority(const char *p, gw_conf_authority_t *a)
{
    const char *end = p + strcspn(p, "/?#"), *hostend;
    memset(a, 0, sizeof(*a));
    if (memchr(p, '@', (size_t)(end - p)) != NULL)
        return "must not contain user information (user@)";
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || memchr(p, ':', (size_t)(rb - p)) == NULL || !gw_conf_valid_host(p + 1, (size_t)(rb - p - 1), 1))
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
        if (!gw_conf_valid_host(a->host, a->host_len, 0))
            return "has an invalid host (an IP address, [IPv6 address] or DNS name)";
    }
    if (hostend != end && gw_conf_parse_port(hostend + 1, end, &a->port) != 0)
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
    if ((why = gw_conf_split_authority(rest, &a)) != NULL || (why = gw_conf_check_url_path(a.path)) != NULL)
        return why;
    if (own && s[strlen(s) - 1] == '/')
        return "must not end with '/' (discovery URLs are appended to it)";
    return NULL;
}

/* text shown to residents (a device's name, description): 1-200 bytes of valid UTF-8 without control characters */
const char *gw_conf_check_display_text(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200)
        return "must be 1 to 200 bytes";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f)))
            return "must be UTF-8 text without control characters";
        for (int i = 1; i < len; ++i)
            if ((p[i] & 0xc0) != 0x80)
                return "must be UTF-8 text without control characters";
        if ((len == 2 && *p < 0xc2) || (len == 3 && *p == 0xe0 && p[1] < 0xa0) || (len == 4 && (*p > 0xf4 || (*p == 0xf0 && p[1] < 0x90))))
            return "must be UTF-8 text without control characters"; /* overlong or beyond U+10FFFF */
        p += len;
    }
    return NULL;
}

/* OpenID Connect Back-Channel Logout §2.2: https://authority[/path][?query], no fragment; http:// only to a
 * loopback host (a logout token is a bearer credential for the RP's session) */
const char *gw_conf_check_backchannel_uri(const char *s)
{
    gw_conf_authority_t a;
    int tls = strncmp(s, "https://", 8) == 0;
    const char *why, *rest = tls ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    if (rest == NULL)
        return "must be an https:// URL (or http:// to a loopback address)";
    if ((why = gw_conf_split_authority(rest, &a)) != NULL)
        return why;
    if (strchr(a.path, '#') != NULL)
        return "must not have a fragment";
    if (a.path[0] != '\0' && a.path[0] != '/' && a.path[0] != '?')
        return "has an invalid path";
    for (const char *p = a.path; *p != '\0'; ++p)
        if (*p < 0x21 || *p > 0x7e)
            return "must not contain spaces, control or non-ASCII characters";
    if (!tls && !((a.host_len == 9 && memcmp(a.host, "localhost", 9) == 0) || (a.host_len == 3 && memcmp(a.host, "::1", 3) == 0) ||
                  (a.host_len >= 4 && memcmp(a.host, "127.", 4) == 0 && strspn(a.host, "0123456789.") >= a.host_len)))
        return "must use https:// unless its host is a loopback address (127.0.0.0/8, [::1], localhost)";
    return NULL;
}

const char *gw_conf_check_own_issuer(const char *s)
{
    return check_issuer_url(s, 1);
}

const char *gw_conf_check_trusted_issuer(const char *s)
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
    if ((why = gw_conf_split_authority(at != NULL ? at + 1 : p, &a)) != NULL)
        return why;
    if (a.path[0] == '\0' || strcmp(a.path, "/") == 0)
        return NULL;
    if (a.path[0] != '/' || gw_conf_parse_u64(a.path + 1, &db, &rest) != 0 || *rest != '\0' || db > 1000000)
        return "has an invalid database number (redis://host:port/N)";
    return NULL;
}

const char *gw_conf_check_redis_url_or_unix(const char *s)
{
    return check_redis_url(s, 1);
}

const char *gw_conf_check_redis_seed(const char *s)
{
    return check_redis_url(s, 0);
}
