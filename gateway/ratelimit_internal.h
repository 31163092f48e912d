/*
 * gateway/ratelimit_internal.h — the small helpers that gcra.c (the arithmetic, the headers) and
 * ratelimit.c (the limiter) share. Both are on the limiter's hot path, hence static inline here.
 * Only those two files include this header; everyone else sees gateway/ratelimit.h.
 */
#ifndef hegate_gateway_ratelimit_internal_h
#define hegate_gateway_ratelimit_internal_h

#include <stdint.h>
#include "gateway/ratelimit.h"

static inline int64_t gw_gcra_add_ms(int64_t t, uint64_t ms) /* saturating: a clock near INT64_MAX must not overflow */
{
    if (ms > (uint64_t)INT64_MAX)
        ms = (uint64_t)INT64_MAX;
    if (t > 0 && (int64_t)ms > INT64_MAX - t)
        return INT64_MAX;
    return t + (int64_t)ms; /* t <= 0: at most ms, at least t */
}

/* a result with a GCRA state behind it (store, cache, local): RateLimit reports it */
static inline int gw_ratelimit_has_state(const gw_ratelimit_result_t *r)
{
    return r->source == GW_RL_SOURCE_STORE || r->source == GW_RL_SOURCE_CACHE || r->source == GW_RL_SOURCE_LOCAL;
}

#endif
