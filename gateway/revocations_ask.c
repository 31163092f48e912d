/*
 * gateway/revocations_ask.c — while the revocation subscription is down (revocations.c), a token the
 * local set does not refuse is asked about in the store itself: ZMSCORE on the revocations sorted set
 * for its "sid:" and "jti:" members. So a sign-out made on any node while this one cannot hear it is
 * still honoured within a second (SPEC §6), at the price of one store round trip per distinct sid/jti
 * pair per second per thread: each thread remembers the answers for GW_REVOCATIONS_ASK_MS, and a
 * question in flight is shared by every request that needs it.
 *
 * Called by the authenticate stage (bearer.c) on its own thread; never blocks, never answers a request
 * itself. A revocation the store reports enters the local set too. Logs nothing (tokens are personal).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"

#define ASKED_SLOTS 512 /* a power of two */

typedef struct st_gw_revocations_question_t question_t;

typedef struct {
    uint8_t keys[32]; /* the token memo's digests: sid (0..16), jti (16..32) */
    uint8_t have;     /* the memo's have_keys */
    int answer;       /* 0 / 1 */
    uint64_t at;      /* loop clock of the answer; 0: none */
    question_t *inflight;
} asked_entry_t;

struct st_gw_revocations_asked_t {
    asked_entry_t slots[ASKED_SLOTS];
};

struct st_gw_revocations_question_t {
    asked_entry_t *entry; /* the memo slot it will answer, or NULL (the slot had another question) */
    uint8_t keys[32], have;
    gw_thread_t *thread;
    char members[2][160]; /* "sid:...", "jti:..." ("" when absent) */
    gw_store_req_t *pending;
    h2o_linklist_t waiters;
};

gw_revocations_asked_t *gw_revocations_asked_new(void)
{
    return calloc(1, sizeof(gw_revocations_asked_t));
}

static asked_entry_t *slot_of(gw_revocations_asked_t *a, const auth_revocation_memo_t *memo)
{
    uint64_t h;
    memcpy(&h, memo->keys + ((memo->have_keys & 2) ? 0 : 16), 8);
    return &a->slots[h & (ASKED_SLOTS - 1)];
}

static int same_token(const asked_entry_t *e, const uint8_t keys[32], uint8_t have)
{
    return e->have == have && memcmp(e->keys, keys, 32) == 0;
}

int gw_revocations_asked_answer(const gw_revocations_asked_t *a, const auth_revocation_memo_t *memo, uint64_t now_ms)
{
    if ((memo->have_keys & 6) == 0)
        return 0; /* neither a sid nor a jti: nothing could revoke it */
    const asked_entry_t *e = slot_of((gw_revocations_asked_t *)a, memo);
    if (e->at != 0 && now_ms - e->at < GW_REVOCATIONS_ASK_MS && same_token(e, memo->keys, memo->have_keys))
        return e->answer;
    return -1;
}

/* a score (unix seconds, as the writers store it) still in the future */
static int64_t live_score(const redisReply *r, int64_t now)
{
    if (r->type != REDIS_REPLY_STRING)
        return 0;
    int64_t v = strtoll(r->str, NULL, 10);
    return v > now ? v : 0;
}

static void on_answer(void *data, const redisReply *reply, const char *err)
{
    question_t *q = data;
    q->pending = NULL;
    int answer = -1;
    if (err == NULL && reply->type == REDIS_REPLY_ARRAY) {
        int64_t now = (int64_t)time(NULL);
        answer = 0;
        for (size_t i = 0, m = 0; i != 2; ++i) {
            if (q->members[i][0] == '\0')
                continue;
            int64_t exp = m < reply->elements ? live_score(reply->element[m], now) : 0;
            ++m;
            if (exp != 0) {
                gw_revocations_add(q->members[i], strlen(q->members[i]), exp);
                answer = 1;
            }
        }
    }
    if (q->entry != NULL) {
        asked_entry_t *e = q->entry;
        e->inflight = NULL;
        if (answer >= 0) { /* a failure is not remembered: the next request asks again */
            memcpy(e->keys, q->keys, 32);
            e->have = q->have;
            e->answer = answer;
            e->at = h2o_now(q->thread->loop);
        }
    }
    while (!h2o_linklist_is_empty(&q->waiters)) {
        gw_revocations_waiter_t *w = H2O_STRUCT_FROM_MEMBER(gw_revocations_waiter_t, link, q->waiters.next);
        h2o_linklist_unlink(&w->link);
        w->question = NULL;
        w->cb(w, answer);
    }
    free(q);
}

void gw_revocations_ask(gw_thread_t *thread, const char *sid, const char *jti, const auth_revocation_memo_t *memo,
                        gw_revocations_waiter_t *w, gw_revocations_ask_cb cb)
{
    asked_entry_t *e = slot_of(thread->revasked, memo);
    w->cb = cb;
    if (e->inflight != NULL && same_token(e, memo->keys, memo->have_keys)) {
        h2o_linklist_insert(&e->inflight->waiters, &w->link);
        w->question = e->inflight;
        return;
    }
    question_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        h2o_fatal("no memory");
    q->thread = thread;
    memcpy(q->keys, memo->keys, 32);
    q->have = memo->have_keys;
    h2o_linklist_init_anchor(&q->waiters);
    if (e->inflight == NULL) { /* the slot remembers this token's answer from now on */
        q->entry = e;
        e->inflight = q;
        memcpy(e->keys, q->keys, 32);
        e->have = q->have;
        e->at = 0;
    }
    const char *argv[4] = {"ZMSCORE", GW_REVOCATIONS_KEY};
    int argc = 2;
    if (sid != NULL && sid[0] != '\0') {
        snprintf(q->members[0], sizeof(q->members[0]), "sid:%s", sid);
        argv[argc++] = q->members[0];
    }
    if (jti != NULL && jti[0] != '\0') {
        snprintf(q->members[1], sizeof(q->members[1]), "jti:%s", jti);
        argv[argc++] = q->members[1];
    }
    h2o_linklist_insert(&q->waiters, &w->link);
    w->question = q;
    gw_revocations_count_store_check();
    q->pending = gw_store_command(thread->store, on_answer, q, 1, argc, argv, NULL);
}

void gw_revocations_ask_cancel(gw_revocations_waiter_t *w)
{
    if (w->question == NULL)
        return;
    h2o_linklist_unlink(&w->link); /* the question goes on: its answer still fills the memo */
    w->question = NULL;
}
