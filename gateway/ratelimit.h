/*
 * gateway/ratelimit.h — GCRA rate limits shared by every gateway node through the store (SPEC §5).
 *
 * The algorithm (GCRA, "virtual scheduling"), for a policy of LIMIT requests per WINDOW ms and
 * BURST (default LIMIT):
 *   T   = WINDOW / LIMIT       emission interval: one request every T ms in the long run
 *   tau = BURST * T            tolerance: how far ahead of now the schedule may run
 *   state: tat, the theoretical arrival time of the next request (a fresh key has tat <= now)
 *   on a request at `now`:  d = max(tat - now, 0);  allowed iff d + T <= tau;
 *                           if allowed, tat = now + d + T.
 * So a fresh key admits exactly BURST requests at one instant, then one per T (LIMIT per WINDOW).
 * Denied requests do not change the state. Derived values:
 *   remaining      = floor((tau - (d + T)) / T) after an allowed request, 0 when denied
 *   reset_ms       = ceil(tat - now): time until the key is back to a full burst (RateLimit "t")
 *   retry_after_ms = ceil(d + T - tau) when denied: the earliest instant it would be allowed
 * Several policies of one request (gw_gcra_all) are all or nothing: the request consumes T of every
 * policy if every policy admits it, else nothing at all; a policy that would have admitted a request
 * another policy refuses reports remaining = floor((tau - d) / T), reset_ms = ceil(d) (unchanged).
 * Exact arithmetic: times are whole milliseconds, and tat is kept as tat_ms + tat_frac/LIMIT ms,
 * so T need not be a whole number of ms and nothing is rounded. All intermediate values stay
 * below 2^52 when LIMIT <= 2^50 and BURST * WINDOW <= 2^50 (gw_gcra_params_ok): the same
 * arithmetic runs bit-for-bit in Redis' Lua (doubles) and here (integers).
 * Clock edges: a tat more than tau ahead of now (the clock went backwards, or a corrupt value) is
 * clamped to now + tau, and the clamped state is stored, so one backwards jump costs at most one
 * burst and a Retry-After stays honest; a tat in the past (any gap) is a fresh key.
 *
 * Runtime (gw_ratelimit_check): key "hegate:rl:{<kind>:<identity>}:<policy>" (kind: ip, user,
 * client; the hash tag is the limited identity, so all the policies of one identity share a slot;
 * an identity longer than GW_RATELIMIT_MAX_KEY or holding a '}' is replaced by "<kind>#<sha256 hex>").
 * Against one Redis the policies of a request are evaluated together, atomically and all or nothing on
 * Redis' own clock. In a cluster (a script's keys must share a slot) they are grouped by slot, each
 * group atomic and all or nothing, with no atomicity across groups (policies on different identities,
 * e.g. ip and user): a group that admits a request consumes its budget even when another refuses it.
 * Batching: what a thread checks during one loop iteration goes out at the end of the iteration as
 * ONE EVALSHA per slot (one in all against one Redis; at most 64 requests each): one TIME, one MGET of
 * the distinct keys, the requests one after the other exactly as separate calls would run them, one
 * SET per changed key. A request waits for no other: the batch leaves as soon as the iteration ends.
 * Keys expire when full again. Per thread: a bounded cache of keys known to be over a limit until
 * their retry time (answered without Redis), and, when the store is down, the on_store_down mode:
 * local (in-process GCRA on this thread with LIMIT split over nodes x threads, all or nothing over the
 * policies that fall back together, see gw_ratelimit_ctx_create), open (allow), closed (unavailable:
 * 503). Back to Redis as soon as the store answers again.
 */
#ifndef hegate_gateway_ratelimit_h
#define hegate_gateway_ratelimit_h

#include <stddef.h>
#include <stdint.h>
#include "h2o/memory.h"
#include "gateway/conf.h"
#include "gateway/store.h"

#define GW_RATELIMIT_MAX_POLICIES 8 /* per request; further policies are ignored */
#define GW_RATELIMIT_MAX_KEY 256    /* longer keys are replaced by their SHA-256 (hex) */
#define GW_GCRA_MAX ((uint64_t)1 << 50)

/* ---- the arithmetic (pure) ------------------------------------------------------------------------ */

typedef struct {
    int64_t tat_ms;    /* whole ms of the theoretical arrival time; {0, 0} is a fresh key */
    uint64_t tat_frac; /* plus tat_frac / limit ms; always < limit */
} gw_gcra_state_t;

typedef struct {
    int allowed;
    uint64_t remaining;
    uint64_t reset_ms;
    uint64_t retry_after_ms; /* 0 when allowed, >= 1 when denied */
} gw_gcra_result_t;

typedef struct {
    uint64_t limit, window_ms, burst;
} gw_gcra_policy_t;

/* 1 when LIMIT, WINDOW_MS, BURST are all > 0, LIMIT <= 2^50 and BURST * WINDOW_MS <= 2^50. */
static inline int gw_gcra_params_ok(uint64_t limit, uint64_t window_ms, uint64_t burst);
/* One request at NOW_MS against STATE (updated when allowed, or clamped). -1 if the parameters are
 * not ok (nothing changed, *RES untouched), else 0. gw_gcra_all(1, ...) */
int gw_gcra(uint64_t limit, uint64_t window_ms, uint64_t burst, int64_t now_ms, gw_gcra_state_t *state, gw_gcra_result_t *res);
/* One request at NOW_MS against N policies (N <= GW_RATELIMIT_MAX_POLICIES) all or nothing: every
 * STATES[i] advances if all admit it, else none does (clamped states are still repaired). -1 if some
 * parameters are not ok (nothing changed), 1 admitted, 0 refused. */
int gw_gcra_all(size_t n, const gw_gcra_policy_t *p, int64_t now_ms, gw_gcra_state_t *states, gw_gcra_result_t *res);
/* The results from D[i] = max(tat_i - now, 0) in 1/limit ms, clamped to tau (what the Lua script
 * returns): -1 if some parameters are not ok or some D[i] > tau, 1 admitted, 0 refused. */
int gw_gcra_results(size_t n, const gw_gcra_policy_t *p, const uint64_t *d, gw_gcra_result_t *res);
/* ceil(ms / 1000): whole seconds for the RateLimit "t" and Retry-After */
static inline uint64_t gw_ratelimit_seconds(uint64_t ms);

/* How many of COUNT identical requests in a row (the same N policies, all at the same instant, states
 * D[i] as gw_gcra_results takes them before the first) are admitted: the first ones, until one policy
 * is full; request j (0-based) then sees D[i] + min(j, admitted) * window_ms[i]. 0 if some D[i] > tau. */
static inline uint64_t gw_gcra_run_admits(size_t n, const gw_gcra_policy_t *p, const uint64_t *d, uint64_t count);

/* The Lua version, for a batch of requests: KEYS = their u distinct state keys (one slot), ARGV =
 * limit, window_ms, burst of each key (3u), then one string per RUN of identical requests: a count
 * byte (1..255), then the 0-based indexes of the run's keys, one byte each. Returns each run's values d
 * before its first request (one per key, in its order; see gw_gcra_run_admits for the others), then
 * now_ms (Redis TIME); see gw_gcra_results. */
extern const char gw_ratelimit_lua[];

/* "hegate:rl:{<kind>:<key>}:<policy name>" into BUF (NUL-terminated). Returns its length, 0 if CAP is
 * too small. Keys longer than GW_RATELIMIT_MAX_KEY or containing '}' become "<kind>#<SHA-256 hex>". */
size_t gw_ratelimit_store_key(char *buf, size_t cap, const gw_ratelimit_conf_t *policy, const char *key, size_t keylen);

/* ---- results and headers ------------------------------------------------------------------------ */

typedef enum {
    GW_RL_SOURCE_NONE,  /* not evaluated (another policy was already known to deny) */
    GW_RL_SOURCE_STORE, /* Redis answered */
    GW_RL_SOURCE_CACHE, /* known over the limit (deny cache) */
    GW_RL_SOURCE_LOCAL, /* store down, on_store_down: local */
    GW_RL_SOURCE_OPEN,  /* store down, on_store_down: open */
    GW_RL_SOURCE_CLOSED /* store down, on_store_down: closed */
} gw_ratelimit_source_t;

typedef enum {
    GW_RL_ALLOW,
    GW_RL_DENY,       /* 429 with Retry-After: verdict.retry_after_s */
    GW_RL_UNAVAILABLE /* 503: a policy could not be checked and on_store_down is closed */
} gw_ratelimit_verdict_kind_t;

typedef struct {
    const gw_ratelimit_conf_t *policy;
    gw_ratelimit_source_t source;
    int allowed;
    uint64_t limit;         /* RateLimit-Policy q */
    uint64_t remaining;     /* RateLimit r */
    uint64_t reset_s;       /* RateLimit t */
    uint64_t retry_after_s; /* 0 when allowed */
    uint64_t reset_ms, retry_after_ms;
} gw_ratelimit_result_t;

typedef struct {
    gw_ratelimit_verdict_kind_t verdict;
    uint64_t retry_after_s; /* DENY: the largest retry_after_s of the denying policies */
    size_t n;
    gw_ratelimit_result_t results[GW_RATELIMIT_MAX_POLICIES];
} gw_ratelimit_verdict_t;

/* RateLimit-Policy value: "per-user";q=20;w=1, "per-client";q=500;w=1  (w = window in whole
 * seconds, rounded up). RateLimit value: "per-user";r=7;t=1, ... for the results that have a
 * state (store, cache, local). Names are sf-strings ('"' and '\' escaped, other bytes outside
 * 0x20..0x7e replaced by '?'). Return the length written (NUL-terminated), 0 if nothing to write or
 * CAP too small. */
size_t gw_ratelimit_format_policy(char *buf, size_t cap, const gw_ratelimit_conf_t *const *policies, size_t n);
size_t gw_ratelimit_format_state(char *buf, size_t cap, const gw_ratelimit_result_t *results, size_t n);
/* A buffer size that always suffices for either header of these policies. */
size_t gw_ratelimit_header_bound(const gw_ratelimit_conf_t *const *policies, size_t n);

/* ---- runtime (one context per event-loop thread) ------------------------------------------------ */

typedef struct st_gw_ratelimit_ctx_t gw_ratelimit_ctx_t;
typedef struct st_gw_ratelimit_check_t gw_ratelimit_check_t;
typedef void (*gw_ratelimit_cb)(void *data, gw_ratelimit_verdict_t *verdict);

/* STORE may be NULL (then the on_store_down mode always applies). In local mode each thread
 * enforces LIMIT / (NODES * THREADS) per WINDOW (the window is stretched: T' = T * NODES * THREADS,
 * exact) with a burst of max(1, floor(BURST / (NODES * THREADS))), so all threads of all nodes
 * together never admit more than the policy; a key whose traffic sits on one thread (one HTTP/2
 * connection) gets that thread's share only. */
gw_ratelimit_ctx_t *gw_ratelimit_ctx_create(h2o_loop_t *loop, gw_store_t *store, gw_store_down_t on_store_down, unsigned nodes,
                                            unsigned threads);
/* Cancels the checks still in flight (their callbacks never come). Before gw_store_free(). */
void gw_ratelimit_ctx_free(gw_ratelimit_ctx_t *ctx);

/* Checks one request against N policies, KEYS[i] being the key for POLICIES[i] (user, client or
 * address). POLICIES must stay valid until the verdict; KEYS are copied. *OUT needs room for N results
 * only (offsetof(gw_ratelimit_verdict_t, results) + N * sizeof(gw_ratelimit_result_t)): nothing past
 * them is written.
 * Returns NULL when the verdict was reached without waiting (known over a limit, store down, N == 0):
 * *OUT is filled and CB is not called. Otherwise returns a handle: CB(DATA, OUT) runs exactly once,
 * later, on the loop, with *OUT filled, unless gw_ratelimit_cancel(handle) comes first; *OUT is not
 * touched before that. The handle is invalid once CB starts or after cancel. */
gw_ratelimit_check_t *gw_ratelimit_check(gw_ratelimit_ctx_t *ctx, const gw_ratelimit_conf_t *const *policies,
                                         const h2o_iovec_t *keys, size_t n, gw_ratelimit_verdict_t *out, gw_ratelimit_cb cb,
                                         void *data);
void gw_ratelimit_cancel(gw_ratelimit_check_t *check);

typedef struct {
    uint64_t checks;         /* policies checked */
    uint64_t store_checks;   /* ... answered by Redis */
    uint64_t cache_hits;     /* ... answered by the deny cache */
    uint64_t local_checks;   /* ... answered by the local GCRA */
    uint64_t open_checks;    /* ... allowed because the store was down (open) */
    uint64_t closed_checks;  /* ... unavailable because the store was down (closed) */
    uint64_t store_failures; /* policy groups whose Redis call failed (then on_store_down applied) */
    uint64_t store_calls;    /* script calls sent (one per batch) */
} gw_ratelimit_stats_t;
/* Any thread (relaxed atomic reads). */
void gw_ratelimit_get_stats(const gw_ratelimit_ctx_t *ctx, gw_ratelimit_stats_t *out);

/* ---- inline functions (the limiter calls them for every request: they stay inlined there) ------ */

static inline int gw_gcra_params_ok(uint64_t limit, uint64_t window_ms, uint64_t burst)
{
    uint64_t tau; /* burst * window_ms without a division: this runs several times per request */
    return limit > 0 && window_ms > 0 && burst > 0 && limit <= GW_GCRA_MAX && !__builtin_mul_overflow(burst, window_ms, &tau) &&
           tau <= GW_GCRA_MAX;
}

static inline uint64_t gw_ratelimit_seconds(uint64_t ms)
{
    return ms / 1000 + (ms % 1000 != 0);
}

static inline uint64_t gw_gcra_run_admits(size_t n, const gw_gcra_policy_t *p, const uint64_t *d, uint64_t count)
{
    /* each admitted request adds window_ms to every d; a refused one changes nothing, so once one is
     * refused all later ones are too: the first floor((tau - d) / window_ms) of them, for every policy */
    for (size_t i = 0; i != n; ++i) {
        const uint64_t tau = p[i].burst * p[i].window_ms;
        if (p[i].window_ms == 0 || d[i] > tau)
            return 0;
        uint64_t q = (tau - d[i]) / p[i].window_ms;
        if (q < count)
            count = q;
    }
    return count;
}

#endif
