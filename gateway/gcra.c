/*
 * gateway/gcra.c — the pure half of the rate limits (SPEC §5): the exact GCRA arithmetic, the same
 * arithmetic as a Redis Lua script, the store keys of a policy, and the RateLimit header values.
 *
 * Called by the limiter (ratelimit.c), the request pipeline (headers) and unit tests, from any thread.
 * It keeps no state and must never round: every value is exact (see gateway/ratelimit.h), and the C
 * and the Lua code must stay the same arithmetic, bit for bit.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/evp.h>
#include "gateway/ratelimit.h"
#include "gateway/ratelimit_internal.h"

/* ---- the arithmetic ------------------------------------------------------------------------------------ */

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* d = max(tat - now, 0) in units of 1/L ms, clamped to tau (*CLAMPED set then) */
static uint64_t gcra_delay(uint64_t L, uint64_t tau, int64_t now_ms, const gw_gcra_state_t *state, int *clamped)
{
    *clamped = 0;
    if (state->tat_ms < now_ms)
        return 0;
    uint64_t dm = (uint64_t)state->tat_ms - (uint64_t)now_ms; /* exact: the difference fits in 64 bits */
    if (dm > tau / L + 1) {
        *clamped = 1; /* further ahead than any legal state: the clock went back */
        return tau;
    }
    uint64_t f = state->tat_frac < L ? state->tat_frac : L - 1;
    uint64_t d = dm * L + f; /* <= tau + 2L < 2^52 */
    if (d > tau) {
        *clamped = 1;
        return tau;
    }
    return d;
}

int gw_gcra_results(size_t n, const gw_gcra_policy_t *p, const uint64_t *d, gw_gcra_result_t *res)
{
    int all = 1;
    for (size_t i = 0; i != n; ++i) {
        if (!gw_gcra_params_ok(p[i].limit, p[i].window_ms, p[i].burst) || d[i] > p[i].burst * p[i].window_ms)
            return -1;
        all &= d[i] + p[i].window_ms <= p[i].burst * p[i].window_ms;
    }
    for (size_t i = 0; i != n; ++i) {
        const uint64_t L = p[i].limit, T = p[i].window_ms, tau = p[i].burst * p[i].window_ms, nd = d[i] + T;
        if (all) { /* admitted: this request consumes T of every policy */
            res[i].allowed = 1;
            res[i].remaining = (tau - nd) / T;
            res[i].reset_ms = ceil_div(nd, L);
            res[i].retry_after_ms = 0;
        } else if (nd <= tau) { /* this policy would admit it, another refuses: nothing consumed */
            res[i].allowed = 1;
            res[i].remaining = (tau - d[i]) / T;
            res[i].reset_ms = ceil_div(d[i], L);
            res[i].retry_after_ms = 0;
        } else {
            res[i].allowed = 0;
            res[i].remaining = 0;
            res[i].reset_ms = ceil_div(d[i], L);
            res[i].retry_after_ms = ceil_div(nd - tau, L); /* >= 1 since nd > tau */
        }
    }
    return all;
}

int gw_gcra_all(size_t n, const gw_gcra_policy_t *p, int64_t now_ms, gw_gcra_state_t *states, gw_gcra_result_t *res)
{
    uint64_t d[GW_RATELIMIT_MAX_POLICIES] = {0};
    int clamped[GW_RATELIMIT_MAX_POLICIES] = {0};
    if (n > GW_RATELIMIT_MAX_POLICIES)
        return -1;
    for (size_t i = 0; i != n; ++i) {
        if (!gw_gcra_params_ok(p[i].limit, p[i].window_ms, p[i].burst))
            return -1;
        d[i] = gcra_delay(p[i].limit, p[i].burst * p[i].window_ms, now_ms, &states[i], &clamped[i]);
    }
    int all = gw_gcra_results(n, p, d, res);
    for (size_t i = 0; i != n; ++i) {
        const uint64_t L = p[i].limit, tau = p[i].burst * p[i].window_ms;
        uint64_t x;
        if (all)
            x = d[i] + p[i].window_ms; /* the new schedule */
        else if (clamped[i])
            x = tau; /* store the clamped state (a clamped policy always refuses) */
        else
            continue;
        states[i].tat_ms = gw_gcra_add_ms(now_ms, x / L);
        states[i].tat_frac = x % L;
    }
    return all;
}

int gw_gcra(uint64_t limit, uint64_t window_ms, uint64_t burst, int64_t now_ms, gw_gcra_state_t *state, gw_gcra_result_t *res)
{
    gw_gcra_policy_t p = {limit, window_ms, burst};
    return gw_gcra_all(1, &p, now_ms, state, res) < 0 ? -1 : 0;
}

/* The same, in Redis, for a batch of requests (those a thread checked in one loop iteration whose
 * keys share a slot), evaluated one after the other exactly as if each had been its own call:
 *   KEYS                 the u distinct state keys of the batch
 *   ARGV[3k-2 .. 3k]     limit, window_ms, burst of KEYS[k]            (k = 1..u)
 *   ARGV[3u+1 ...]       one string per run of requests over the same keys: a count byte c, then the
 *                        indexes of its keys, one byte each, 0-based
 * A run stands for c requests in a row: they arrived in the same loop iteration and are evaluated at the
 * same instant, so this is one valid order of them, and the first n of them are admitted where n =
 * min(c, floor((tau - d) / window) over its keys) (gw_gcra_run_admits): what c separate calls would do,
 * for the cost of one. One TIME and one MGET for the whole batch, then each run in order, all or nothing
 * over its policies (a clamped state is repaired even when refused), and at the end one SET per key
 * that changed. Returns {d..., now_ms}: for each run, for each of its keys in order, d = max(tat - now,
 * 0) in 1/L ms, clamped to tau, before its first request; the caller derives every request's d, verdict
 * and numbers with gw_gcra_run_admits() and gw_gcra_results(), the code the pure gw_gcra_all() uses.
 * Lua numbers are doubles: every value stays an integer < 2^52 (see gw_gcra_params_ok), so +, -, *,
 * floor(a/b), a%b and ceil(a/b) are exact and match the C code. State: "<tat_ms>:<tat_frac>" ('%d'
 * formats exactly below 2^63), expiring when the key is full again (then absent == fresh). A flood from
 * one address costs one read and one write of its keys per batch, not per request. */
const char gw_ratelimit_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local v = redis.call('MGET', unpack(KEYS))\n"
    "local floor, byte, nk = math.floor, string.byte, #KEYS\n"
    "local L, W, tau, lim, ms, fr, ttl = {}, {}, {}, {}, {}, {}, {}\n"
    "for k = 1, nk do\n"
    "  L[k], W[k] = tonumber(ARGV[3 * k - 2]), tonumber(ARGV[3 * k - 1])\n"
    "  tau[k] = ARGV[3 * k] * W[k]\n"
    "  lim[k] = floor(tau[k] / L[k]) + 1\n"
    "  if v[k] then\n"
    "    local a, b = string.match(v[k], '^(%-?%d+):(%d+)$')\n"
    "    if a then\n"
    "      ms[k] = tonumber(a)\n"
    "      fr[k] = tonumber(b)\n"
    "      if fr[k] >= L[k] then fr[k] = L[k] - 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local r, o, d, c, seen, order, nd = {}, 0, {}, {}, {}, {}, 0\n"
    "for a = 3 * nk + 1, #ARGV do\n"
    "  local s = ARGV[a]\n"
    "  local m, n = #s - 1, byte(s, 1)\n"
    "  for j = 1, m do\n"
    "    local k = byte(s, j + 1) + 1\n"
    "    local x, tm, cl = 0, ms[k], false\n"
    "    if tm then\n"
    "      local dm = tm - now\n"
    "      if dm > lim[k] then\n"
    "        x, cl = tau[k], true\n"
    "      elseif dm >= 0 then\n"
    "        x = dm * L[k] + fr[k]\n"
    "        if x > tau[k] then x, cl = tau[k], true end\n"
    "      end\n"
    "    end\n"
    "    d[j], c[j] = x, cl\n"
    "    r[o + j] = x\n"
    "    local q = floor((tau[k] - x) / W[k])\n"
    "    if q < n then n = q end\n"
    "  end\n"
    "  for j = 1, m do\n"
    "    if n > 0 or c[j] then\n"
    "      local k = byte(s, j + 1) + 1\n"
    "      local x = d[j] + n * W[k]\n"
    "      local q = floor(x / L[k])\n"
    "      ms[k], fr[k], ttl[k] = now + q, x - q * L[k], q + (x > q * L[k] and 1 or 0)\n"
    "      if not seen[k] then\n"
    "        seen[k] = true\n"
    "        nd = nd + 1\n"
    "        order[nd] = k\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  o = o + m\n"
    "end\n"
    "for i = 1, nd do\n"
    "  local k = order[i]\n"
    "  redis.call('SET', KEYS[k], string.format('%d:%d', ms[k], fr[k]), 'PX', string.format('%d', ttl[k]))\n"
    "end\n"
    "r[o + 1] = now\n"
    "return r\n";

/* ---- store keys ---------------------------------------------------------------------------------------- */

static const char *key_kind(gw_limit_key_t k)
{
    switch (k) {
    case GW_LIMIT_KEY_USER:
        return "user";
    case GW_LIMIT_KEY_CLIENT:
        return "client";
    default:
        return "ip";
    }
}

size_t gw_ratelimit_store_key(char *buf, size_t cap, const gw_ratelimit_conf_t *policy, const char *key, size_t keylen)
{
    char hex[65];
    const char *kind = key_kind(policy->key);
    char sep = ':';
    if (keylen > GW_RATELIMIT_MAX_KEY || memchr(key, '}', keylen) != NULL) {
        /* too long, or a '}' that would end the hash tag early (and make keys ambiguous) */
        static const char digits[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
            return 0;
        for (unsigned i = 0; i != 32; ++i) {
            hex[i * 2] = digits[md[i] >> 4];
            hex[i * 2 + 1] = digits[md[i] & 15];
        }
        key = hex;
        keylen = 64;
        sep = '#'; /* a hashed identity never equals a raw one */
    }
    size_t klen = strlen(kind), plen = strlen(policy->name);
    size_t total = sizeof("hegate:rl:{") - 1 + klen + 1 + keylen + 2 + plen;
    if (total + 1 > cap)
        return 0;
    char *p = buf;
    memcpy(p, "hegate:rl:{", 11);
    p += 11;
    memcpy(p, kind, klen);
    p += klen;
    *p++ = sep;
    memcpy(p, key, keylen);
    p += keylen;
    *p++ = '}';
    *p++ = ':';
    memcpy(p, policy->name, plen);
    p += plen;
    *p = '\0';
    return total;
}

/* ---- headers --------------------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} appender_t;

static void app_bytes(appender_t *a, const char *s, size_t n)
{
    if (a->overflow || a->len + n + 1 > a->cap) {
        a->overflow = 1;
        return;
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

static void app_sfstring(appender_t *a, const char *s)
{
    size_t n = 0; /* the usual name needs no escape: one copy */
    while (s[n] != '\0' && s[n] != '"' && s[n] != '\\' && (unsigned char)s[n] >= 0x20 && (unsigned char)s[n] <= 0x7e)
        ++n;
    if (s[n] == '\0' && !a->overflow && a->len + n + 3 <= a->cap) {
        char *p = a->buf + a->len;
        *p++ = '"';
        memcpy(p, s, n);
        p[n] = '"';
        p[n + 1] = '\0';
        a->len += n + 2;
        return;
    }
    app_bytes(a, "\"", 1);
    for (; *s != '\0'; ++s) {
        char c = *s;
        if (c == '"' || c == '\\')
            app_bytes(a, "\\", 1);
        else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
            c = '?';
        app_bytes(a, &c, 1);
    }
    app_bytes(a, "\"", 1);
}

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                     "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                     "8081828384858687888990919293949596979899";

static void app_param(appender_t *a, char name, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    while (v >= 100) { /* two digits per division */
        p -= 2;
        memcpy(p, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    *--p = '=';
    *--p = name;
    *--p = ';';
    app_bytes(a, p, (size_t)(tmp + sizeof(tmp) - p));
}

static size_t app_done(appender_t *a)
{
    if (a->overflow || a->len == 0) {
        if (a->cap != 0)
            a->buf[0] = '\0';
        return 0;
    }
    return a->len;
}

size_t gw_ratelimit_format_policy(char *buf, size_t cap, const gw_ratelimit_conf_t *const *policies, size_t n)
{
    appender_t a = {buf, cap, 0, cap == 0};
    for (size_t i = 0; i != n; ++i) {
        if (i != 0)
            app_bytes(&a, ", ", 2);
        app_sfstring(&a, policies[i]->name);
        app_param(&a, 'q', policies[i]->limit);
        uint64_t w = gw_ratelimit_seconds(policies[i]->window_ms);
        app_param(&a, 'w', w != 0 ? w : 1);
    }
    return app_done(&a);
}

size_t gw_ratelimit_format_state(char *buf, size_t cap, const gw_ratelimit_result_t *results, size_t n)
{
    appender_t a = {buf, cap, 0, cap == 0};
    for (size_t i = 0; i != n; ++i) {
        if (!gw_ratelimit_has_state(&results[i]))
            continue;
        if (a.len != 0)
            app_bytes(&a, ", ", 2);
        app_sfstring(&a, results[i].policy->name);
        app_param(&a, 'r', results[i].remaining);
        app_param(&a, 't', results[i].reset_s);
    }
    return app_done(&a);
}

size_t gw_ratelimit_header_bound(const gw_ratelimit_conf_t *const *policies, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i != n; ++i)
        total += 2 + 2 * strlen(policies[i]->name) + 2 + 2 * (3 + 20);
    return total;
}
