/*
 * gateway/task.c — the asynchronous state of an own endpoint's request: one store command (or one
 * background job of the endpoint's own kind, e.g. a password check) in flight at a time, tied to the
 * request's pool so that both are cancelled when the client goes away before the answer.
 *
 * Used by the endpoint families (auth/http/, qr/http/) through gateway.h; the store calls go to the
 * thread's store (store.c). Nothing here answers but gw_task_store_failed's 503.
 */
#include <string.h>
#include "gateway/gateway.h"

static void task_dispose(void *p)
{
    gw_task_t *t = p;
    if (t->pending != NULL)
        gw_store_cancel(t->pending);
    if (t->job != NULL && t->job_cancel != NULL)
        t->job_cancel(t->job);
}

gw_task_t *gw_task_new(gw_req_t *greq)
{
    gw_task_t *t = h2o_mem_alloc_shared(&greq->req->pool, sizeof(*t), task_dispose);
    memset(t, 0, sizeof(*t));
    t->greq = greq;
    return t;
}

static void task_on_store(void *data, const redisReply *reply, const char *err)
{
    gw_task_t *t = data;
    t->pending = NULL;
    t->store_cb(t, reply, err);
}

void gw_task_command(gw_task_t *t, gw_task_store_cb cb, int argc, const char *const *argv, const size_t *lens)
{
    gw_store_t *store = t->greq->thread->store;
    if (store == NULL) {
        cb(t, NULL, GW_STORE_ERR_DOWN);
        return;
    }
    t->store_cb = cb;
    t->pending = gw_store_command(store, task_on_store, t, argc > 1 ? 1 : GW_STORE_NO_KEY, argc, argv, lens);
}

void gw_task_eval(gw_task_t *t, const gw_store_script_t *script, gw_task_store_cb cb, int numkeys, int nargs,
                  const char *const *args, const size_t *lens)
{
    gw_store_t *store = t->greq->thread->store;
    if (store == NULL) {
        cb(t, NULL, GW_STORE_ERR_DOWN);
        return;
    }
    t->store_cb = cb;
    t->pending = gw_store_evalsha(store, script, task_on_store, t, numkeys, nargs, args, lens);
}

int gw_task_store_failed(gw_task_t *t, const redisReply *reply, const char *err)
{
    if (err != NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        gw_send_unavailable(t->greq, "the store is unavailable right now");
        return 1;
    }
    return 0;
}

const char *gw_reply_str(const redisReply *r, size_t i)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING)
        return "";
    return r->element[i]->str;
}
