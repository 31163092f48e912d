/*
 * gateway/revocations.h — the local deny set of revoked sessions and tokens (SPEC §6: "sign out
 * everywhere within 1 s"), fed by Redis pub/sub.
 *
 * A revocation is a member "sid:<sid>" or "jti:<jti>" with an expiry (unix seconds: after it, every
 * token it could refuse has expired anyway). Writers keep them in the sorted set GW_REVOCATIONS_KEY
 * (score = expiry) and PUBLISH "<member> <expiry>" on GW_REVOCATIONS_CHANNEL. Each process holds
 * one subscriber connection (on thread 0's loop) that adds what it hears to a process-wide set and,
 * after every (re)subscription, reads the whole sorted set again, so nothing published while the
 * connection was down is missed. Reads are lock-protected (a read-write lock): any thread may ask.
 */
#ifndef hegate_gateway_revocations_h
#define hegate_gateway_revocations_h

#include <stddef.h>
#include <stdint.h>
#include <h2o/linklist.h>
#include "auth/auth.h"

#define GW_REVOCATIONS_KEY "hegate:{id}:revocations"
#define GW_REVOCATIONS_CHANNEL "hegate:{id}:revocations"

struct st_gw_thread_t;

/* Starts the subscriber on THREAD's loop (call once, from that thread). Resyncs through THREAD's store. */
void gw_revocations_start(struct st_gw_thread_t *thread);
/* Adds MEMBER[0..LEN) ("sid:..." or "jti:...") until EXP (unix seconds). Any thread. */
void gw_revocations_add(const char *member, size_t len, int64_t exp);
/* 1 if the session SID (may be NULL or "") or the token JTI is revoked now, else 0. Any thread. */
int gw_revocations_check(const char *sid, const char *jti);
/* The same for a cached token: MEMO (zeroed when the token entered the cache) keeps the digests of
 * its sid and jti and the version of the set it was last found absent from, so that a token asked
 * about again costs one atomic read until something is revoked anywhere. Any thread (a memo belongs
 * to one thread's cache). */
int gw_revocations_check_memo(const char *sid, const char *jti, auth_revocation_memo_t *memo);
/* 1 while the subscriber is subscribed and has read the sorted set since its last (re)connect. */
int gw_revocations_synced(void);

/* How this node tells a revoked token (README "Sign-out under faults"; /readyz "revocations"):
 * SUBSCRIBED  the local set is complete (the subscriber is up and resynced);
 * STORE       the subscription is down but the store answers: a token the local set does not refuse
 *             is asked about in the store (revocations_ask.c), at most once a second per sid/jti;
 * UNKNOWN     the store cannot be asked either: on_store_down decides (closed: 503; local/open: the
 *             token is accepted and counted in hegate_revocation_unknown_total). Any thread. */
typedef enum { GW_REVOCATIONS_SUBSCRIBED, GW_REVOCATIONS_STORE, GW_REVOCATIONS_UNKNOWN } gw_revocations_state_t;
gw_revocations_state_t gw_revocations_state(void);
const char *gw_revocations_state_name(gw_revocations_state_t st);
/* hegate_revocation_unknown_total and hegate_revocation_store_checks_total (any thread) */
void gw_revocations_count_unknown(void);
void gw_revocations_count_store_check(void);
void gw_revocations_counts(uint64_t *unknown, uint64_t *store_checks);

/* ---- revocations_ask.c: asking the store while the subscription is down --------------------------- */

/* A thread's memo of the store's answers, keyed by a token's revocation digests (its memo's keys):
 * what the store said about a sid/jti pair stays good for GW_REVOCATIONS_ASK_MS, and a question in
 * flight is shared by every request that needs the same answer. One per event-loop thread. */
#define GW_REVOCATIONS_ASK_MS 1000
typedef struct st_gw_revocations_asked_t gw_revocations_asked_t;
gw_revocations_asked_t *gw_revocations_asked_new(void); /* lives as long as its thread */
/* For a token whose memo MEMO the local set did not refuse: 0 the store said "not revoked", 1 it said
 * revoked, within the last GW_REVOCATIONS_ASK_MS of NOW_MS (loop clock); -1 it must be asked. */
int gw_revocations_asked_answer(const gw_revocations_asked_t *a, const auth_revocation_memo_t *memo, uint64_t now_ms);

/* One request waiting for the store's answer: caller memory (e.g. the request's pool), linked from
 * gw_revocations_ask until CB runs or gw_revocations_ask_cancel. ANSWER: 0 not revoked, 1 revoked (now
 * in the local set too), -1 the store did not answer (on_store_down applies). */
typedef struct st_gw_revocations_waiter_t gw_revocations_waiter_t;
typedef void (*gw_revocations_ask_cb)(gw_revocations_waiter_t *w, int answer);
struct st_gw_revocations_waiter_t {
    h2o_linklist_t link;
    gw_revocations_ask_cb cb;
    struct st_gw_revocations_question_t *question;
};
/* Asks THREAD's store whether SID (may be "") or JTI is revoked, unless a question about the same pair
 * is in flight on this thread (W then waits for its answer). CB runs later, on the loop, exactly once
 * unless cancelled; within redis.timeout. */
void gw_revocations_ask(struct st_gw_thread_t *thread, const char *sid, const char *jti, const auth_revocation_memo_t *memo,
                        gw_revocations_waiter_t *w, gw_revocations_ask_cb cb);
void gw_revocations_ask_cancel(gw_revocations_waiter_t *w);

#endif
