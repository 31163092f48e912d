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

#endif
