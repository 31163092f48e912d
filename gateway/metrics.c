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

#define SLOTS 256
#define CODES 500 /* status 100..599 */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
static const char *const upstream_kinds[GW_UPSTREAM_ERR_KINDS] = {"connect", "timeout", "protocol"};

struct st_gw_metrics_t {
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
    pthread_mutex_unlock(&mutex);
    *len = sb.len;
    return sb.buf;
}
