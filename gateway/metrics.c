/*
 * gateway/metrics.c — Prometheus counters (SPEC §8) without locks on the request path.
 *
 * Each event-loop thread owns one gw_metrics_t and is its only writer; the admin thread sums
 * all of them when /metrics is scraped. Routes map to stable "slots" by name, so counters keep
 * counting across reloads. Counts are relaxed 64-bit loads/stores: a scrape may miss the
 * increment in flight, never tear a value.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"

#define SLOTS 256
#define CODES 500 /* status 100..599 */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
static const char *const upstream_kinds[GW_UPSTREAM_ERR_KINDS] = {"connect", "timeout", "protocol"};

#define LABEL_SLOTS 64
static const struct {
    const char *name, *label, *help;
} families[GW_MF_COUNT] = {
    [GW_MF_RATELIMITED] = {"hegate_ratelimited_total", "policy", "Requests refused by a rate limit, by policy."},
    [GW_MF_TOKENS_ISSUED] = {"hegate_tokens_issued_total", "grant", "Access tokens issued, by grant type."},
    [GW_MF_QR_CODES_ISSUED] = {"hegate_qr_codes_issued_total", "scene", "City codes issued, by scene."},
    [GW_MF_QR_VERIFICATIONS] = {"hegate_qr_verifications_total", "result", "City code verifications, by result."},
    [GW_MF_BACKCHANNEL_LOGOUT] = {"hegate_backchannel_logout_total", "result",
                                  "Back-channel logout attempts (delivered, failed), and jobs given up or dropped."},
    [GW_MF_DEVICE_CODES] = {"hegate_device_codes_total", "result",
                            "Device authorizations issued, approved, denied, exchanged, expired; unknown and limited lookups."},
};
static char *label_values[GW_MF_COUNT][LABEL_SLOTS];
static unsigned num_labels[GW_MF_COUNT];

struct st_gw_metrics_t {
    uint64_t labeled[GW_MF_COUNT][LABEL_SLOTS];
    const gw_store_t *store;
    const gw_ratelimit_ctx_t *ratelimit;
    uint64_t requests[SLOTS][CODES];
    uint64_t buckets[SLOTS][NBUCKETS + 1]; /* last = above the largest bound */
    uint64_t sum_us[SLOTS];
    uint64_t upstream_errors[SLOTS][GW_UPSTREAM_ERR_KINDS];
    gw_metrics_t *next;
};

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static char *slot_names[SLOTS] = {"-"};
static unsigned num_slots = 1;
static gw_metrics_t *all;

unsigned gw_metrics_route_slot(const char *name)
{
    unsigned slot = 0;
    pthread_mutex_lock(&mutex);
    for (unsigned i = 1; i != num_slots; ++i)
        if (strcmp(slot_names[i], name) == 0) {
            slot = i;
            goto Exit;
        }
    if (num_slots != SLOTS && (slot_names[num_slots] = strdup(name)) != NULL)
        slot = num_slots++;
Exit:
    pthread_mutex_unlock(&mutex);
    return slot; /* beyond SLOTS distinct names, routes share slot 0 */
}

unsigned gw_metrics_label_slot(int family, const char *value)
{
    unsigned slot = 0;
    pthread_mutex_lock(&mutex);
    for (unsigned i = 0; i != num_labels[family]; ++i)
        if (strcmp(label_values[family][i], value) == 0) {
            slot = i;
            goto Exit;
        }
    if (num_labels[family] != LABEL_SLOTS && (label_values[family][num_labels[family]] = strdup(value)) != NULL)
        slot = num_labels[family]++;
Exit:
    pthread_mutex_unlock(&mutex);
    return slot;
}

void gw_metrics_set_store(gw_metrics_t *m, const gw_store_t *store)
{
    __atomic_store_n(&m->store, store, __ATOMIC_RELEASE);
}

void gw_metrics_set_ratelimit(gw_metrics_t *m, const gw_ratelimit_ctx_t *rl)
{
    __atomic_store_n(&m->ratelimit, rl, __ATOMIC_RELEASE);
}

gw_metrics_t *gw_metrics_thread_create(void)
{
    gw_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    pthread_mutex_lock(&mutex);
    m->next = all;
    all = m;
    pthread_mutex_unlock(&mutex);
    return m;
}

static inline void bump(uint64_t *p, uint64_t by)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + by, __ATOMIC_RELAXED);
}

static inline uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void gw_metrics_request(gw_metrics_t *m, unsigned slot, int status, uint64_t duration_us)
{
    if (slot >= SLOTS)
        slot = 0;
    if (status < 100 || status > 599)
        status = 599;
    bump(&m->requests[slot][status - 100], 1);
    size_t b = 0;
    double secs = duration_us / 1e6;
    while (b != NBUCKETS && secs > bucket_le[b])
        ++b;
    bump(&m->buckets[slot][b], 1);
    bump(&m->sum_us[slot], duration_us);
}

void gw_metrics_count(gw_metrics_t *m, int family, unsigned slot)
{
    if (slot < LABEL_SLOTS)
        bump(&m->labeled[family][slot], 1);
}

void gw_metrics_upstream_error(gw_metrics_t *m, unsigned slot, int kind)
{
    if (slot >= SLOTS)
        slot = 0;
    bump(&m->upstream_errors[slot][kind], 1);
}

/* ---- rendering --------------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} strbuf_t;

static void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    while (1) {
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sb->cap - sb->len) {
            sb->len += n;
            return;
        }
        sb->cap = sb->cap * 2 + (size_t)n + 1;
        char *nb = realloc(sb->buf, sb->cap);
        if (nb == NULL)
            abort();
        sb->buf = nb;
    }
}

char *gw_metrics_render(size_t *len)
{
    strbuf_t sb = {malloc(65536), 0, 65536};
    if (sb.buf == NULL)
        abort();
    pthread_mutex_lock(&mutex);
    unsigned n = num_slots;

    sb_printf(&sb,
              "# HELP hegate_config_generation The configuration every thread serves: 1 at start, +1 per completed reload.\n"
              "# TYPE hegate_config_generation gauge\nhegate_config_generation %u\n",
              gw_server_generation());
    uint64_t rev_unknown, rev_checks;
    gw_revocations_counts(&rev_unknown, &rev_checks);
    sb_printf(&sb,
              "# HELP hegate_revocation_unknown_total Tokens accepted while neither the revocation subscription nor the store "
              "could tell (on_store_down local/open).\n"
              "# TYPE hegate_revocation_unknown_total counter\nhegate_revocation_unknown_total %llu\n",
              (unsigned long long)rev_unknown);
    sb_printf(
        &sb,
        "# HELP hegate_revocation_store_checks_total Revocation questions asked of the store while the subscription was down.\n"
        "# TYPE hegate_revocation_store_checks_total counter\nhegate_revocation_store_checks_total %llu\n",
        (unsigned long long)rev_checks);
    sb_printf(&sb,
              "# HELP hegate_revocation_subscribed 1 while the revocation subscriber is subscribed and resynced.\n"
              "# TYPE hegate_revocation_subscribed gauge\nhegate_revocation_subscribed %d\n",
              gw_revocations_synced());
    uint64_t closed[GW_GUARD_REASONS], cancelled, open;
    gw_guard_counts(closed, &cancelled, &open);
    sb_printf(&sb, "# HELP hegate_connections_open Client connections open now.\n"
                   "# TYPE hegate_connections_open gauge\nhegate_connections_open %llu\n",
              (unsigned long long)open);
    sb_printf(&sb, "# HELP hegate_connections_closed_total Client connections the guard refused or closed, by reason.\n"
                   "# TYPE hegate_connections_closed_total counter\n");
    for (int r = 0; r != GW_GUARD_REASONS; ++r)
        sb_printf(&sb, "hegate_connections_closed_total{reason=\"%s\"} %llu\n", gw_guard_reason_name(r),
                  (unsigned long long)closed[r]);
    sb_printf(&sb,
              "# HELP hegate_streams_cancelled_before_routing_total HTTP/2 streams reset by the client before the gateway "
              "routed them (no upstream, no access log line).\n"
              "# TYPE hegate_streams_cancelled_before_routing_total counter\nhegate_streams_cancelled_before_routing_total %llu\n",
              (unsigned long long)cancelled);
    sb_printf(&sb, "# HELP hegate_requests_total Requests answered, by route and status code.\n"
                   "# TYPE hegate_requests_total counter\n");
    for (unsigned s = 0; s != n; ++s)
        for (int c = 0; c != CODES; ++c) {
            uint64_t v = 0;
            for (gw_metrics_t *m = all; m != NULL; m = m->next)
                v += get(&m->requests[s][c]);
            if (v != 0)
                sb_printf(&sb, "hegate_requests_total{route=\"%s\",code=\"%d\"} %llu\n", slot_names[s], c + 100,
                          (unsigned long long)v);
        }

    sb_printf(&sb, "# HELP hegate_request_duration_seconds Time from the request's first byte to its last answered byte.\n"
                   "# TYPE hegate_request_duration_seconds histogram\n");
    for (unsigned s = 0; s != n; ++s) {
        uint64_t counts[NBUCKETS + 1] = {0}, sum_us = 0, total = 0;
        for (gw_metrics_t *m = all; m != NULL; m = m->next) {
            for (size_t b = 0; b != NBUCKETS + 1; ++b)
                counts[b] += get(&m->buckets[s][b]);
            sum_us += get(&m->sum_us[s]);
        }
        for (size_t b = 0; b != NBUCKETS + 1; ++b)
            total += counts[b];
        if (total == 0)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b != NBUCKETS; ++b) {
            cum += counts[b];
            sb_printf(&sb, "hegate_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", slot_names[s], bucket_le[b],
                      (unsigned long long)cum);
        }
        sb_printf(&sb, "hegate_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", slot_names[s],
                  (unsigned long long)total);
        sb_printf(&sb, "hegate_request_duration_seconds_sum{route=\"%s\"} %.6f\n", slot_names[s], sum_us / 1e6);
        sb_printf(&sb, "hegate_request_duration_seconds_count{route=\"%s\"} %llu\n", slot_names[s], (unsigned long long)total);
    }

    sb_printf(&sb, "# HELP hegate_upstream_errors_total Failed upstream attempts, by route and kind.\n"
                   "# TYPE hegate_upstream_errors_total counter\n");
    for (unsigned s = 0; s != n; ++s)
        for (int k = 0; k != GW_UPSTREAM_ERR_KINDS; ++k) {
            uint64_t v = 0;
            for (gw_metrics_t *m = all; m != NULL; m = m->next)
                v += get(&m->upstream_errors[s][k]);
            if (v != 0)
                sb_printf(&sb, "hegate_upstream_errors_total{route=\"%s\",kind=\"%s\"} %llu\n", slot_names[s], upstream_kinds[k],
                          (unsigned long long)v);
        }
    for (int f = 0; f != GW_MF_COUNT; ++f) {
        sb_printf(&sb, "# HELP %s %s\n# TYPE %s counter\n", families[f].name, families[f].help, families[f].name);
        for (unsigned l = 0; l != num_labels[f]; ++l) {
            uint64_t v = 0;
            for (gw_metrics_t *m = all; m != NULL; m = m->next)
                v += get(&m->labeled[f][l]);
            sb_printf(&sb, "%s{%s=\"%s\"} %llu\n", families[f].name, families[f].label, label_values[f][l], (unsigned long long)v);
        }
    }
    uint64_t store_errors = 0;
    gw_ratelimit_stats_t rl_sum = {0};
    for (gw_metrics_t *m = all; m != NULL; m = m->next) {
        const gw_store_t *store = __atomic_load_n(&m->store, __ATOMIC_ACQUIRE);
        if (store != NULL) {
            gw_store_stats_t st;
            gw_store_get_stats(store, &st);
            store_errors += st.errors;
        }
        /* checks answered without the store because it was known to be down never reach it as calls,
         * yet each is a store failure as far as a request is concerned */
        const gw_ratelimit_ctx_t *rl = __atomic_load_n(&m->ratelimit, __ATOMIC_ACQUIRE);
        if (rl != NULL) {
            gw_ratelimit_stats_t rs;
            gw_ratelimit_get_stats(rl, &rs);
            rl_sum.store_checks += rs.store_checks;
            rl_sum.cache_hits += rs.cache_hits;
            rl_sum.local_checks += rs.local_checks;
            rl_sum.open_checks += rs.open_checks;
            rl_sum.closed_checks += rs.closed_checks;
            rl_sum.store_calls += rs.store_calls;
            uint64_t fallbacks = rs.local_checks + rs.open_checks + rs.closed_checks;
            /* those after a failed call are already in the store's own count */
            store_errors += fallbacks > rs.store_failures ? fallbacks - rs.store_failures : 0;
        }
    }
    sb_printf(&sb,
              "# HELP hegate_store_errors_total Store (Redis) calls that failed: timeouts, connection loss, store down.\n"
              "# TYPE hegate_store_errors_total counter\nhegate_store_errors_total %llu\n",
              (unsigned long long)store_errors);
    sb_printf(
        &sb,
        "# HELP hegate_ratelimit_checks_total Rate-limit policy checks by who answered: store (Redis), cache (known over the "
        "limit), local/open/closed (store down, on_store_down).\n"
        "# TYPE hegate_ratelimit_checks_total counter\n"
        "hegate_ratelimit_checks_total{source=\"store\"} %llu\nhegate_ratelimit_checks_total{source=\"cache\"} %llu\n"
        "hegate_ratelimit_checks_total{source=\"local\"} %llu\nhegate_ratelimit_checks_total{source=\"open\"} %llu\n"
        "hegate_ratelimit_checks_total{source=\"closed\"} %llu\n"
        "# HELP hegate_ratelimit_store_calls_total Rate-limit script calls sent to Redis (each carries the checks of one "
        "event-loop iteration).\n# TYPE hegate_ratelimit_store_calls_total counter\nhegate_ratelimit_store_calls_total %llu\n",
        (unsigned long long)rl_sum.store_checks, (unsigned long long)rl_sum.cache_hits, (unsigned long long)rl_sum.local_checks,
        (unsigned long long)rl_sum.open_checks, (unsigned long long)rl_sum.closed_checks, (unsigned long long)rl_sum.store_calls);
    pthread_mutex_unlock(&mutex);
    *len = sb.len;
    return sb.buf;
}
