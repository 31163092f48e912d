/*
 * auth/http/client.c — who is calling /oauth2/token, /revoke and /introspect: the form is parsed
 * and the client authenticated (HTTP Basic for confidential clients, client_id in the body for
 * public ones), then the endpoint's next step runs. Secrets and passwords are checked by the KDF
 * pool, never on the loop (auth_task_kdf, also used by authorize.c); a secret that passed is
 * remembered for 5 minutes per thread as a salted digest, never as the secret itself.
 *
 * Called by token.c and introspect.c (auth_client_authenticate), authorize.c (auth_task_kdf) and
 * oauth.c (the per-thread state, which also holds the thread's back-channel deliverer: session.c and
 * token.c kick it through auth_backchannel_kick). Errors are answered here, with fixed texts; nothing here logs.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "auth/http/internal.h"

/* ---- per-thread state ------------------------------------------------------------------------------- */

#define SECRET_CACHE 32
#define SECRET_CACHE_MS 300000

typedef struct {
    auth_kdf_port_t kdf;
    struct {
        uint8_t digest[32];
        uint64_t until; /* ms, loop clock */
    } secrets[SECRET_CACHE];
    unsigned next;
    auth_backchannel_t *backchannel;
} oauth_thread_t;

void *auth_oauth_thread_init(gw_thread_t *thread)
{
    oauth_thread_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    auth_kdf_port_init(&t->kdf, thread->ctx.queue);
    t->backchannel = auth_backchannel_new(thread);
    return t;
}

void auth_backchannel_kick(gw_req_t *greq)
{
    oauth_thread_t *t = gw_family_thread_data(greq);
    auth_backchannel_kick_thread(t != NULL ? t->backchannel : NULL);
}

static void secret_digest(const gw_client_conf_t *c, const char *secret, size_t len, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned olen = 32;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, c->id, strlen(c->id) + 1);
    EVP_DigestUpdate(md, c->secret_hash, strlen(c->secret_hash) + 1);
    EVP_DigestUpdate(md, secret, len);
    EVP_DigestFinal_ex(md, out, &olen);
    EVP_MD_CTX_free(md);
}

/* ---- password checks off the loop ------------------------------------------------------------------- */

static void kdf_cancel(void *job)
{
    auth_kdf_cancel(job);
}

static void task_on_kdf(void *data, int result)
{
    gw_task_t *t = data;
    t->job = NULL;
    t->job_cb(t, result);
}

int auth_task_kdf(gw_task_t *t, const char *hash, const char *pw, size_t len, gw_task_job_cb cb)
{
    oauth_thread_t *ot = gw_family_thread_data(t->greq);
    t->job_cb = cb;
    t->job_cancel = kdf_cancel;
    t->job = auth_kdf_verify_async(&ot->kdf, hash, pw, len, task_on_kdf, t);
    return t->job != NULL ? 0 : -1;
}

/* ---- client authentication (token, revoke, introspect) --------------------------------------------------- */

static void cauth_on_kdf(gw_task_t *o, int result)
{
    auth_cauth_t *c = o->ctx;
    if (result < 0) {
        gw_oauth_error(o->greq, 500, "server_error", "the client secret cannot be checked right now");
        return;
    }
    if (result == 0) {
        gw_oauth_error(o->greq, 401, "invalid_client", "client authentication failed");
        return;
    }
    oauth_thread_t *t = gw_family_thread_data(o->greq);
    unsigned i = t->next++ % SECRET_CACHE;
    memcpy(t->secrets[i].digest, c->digest, 32);
    t->secrets[i].until = h2o_now(o->greq->thread->loop) + SECRET_CACHE_MS;
    c->next(o, c->client);
}

void auth_client_authenticate(gw_task_t *o, int confidential_only, auth_cauth_cb next)
{
    gw_req_t *greq = o->greq;
    h2o_req_t *req = greq->req;
    auth_cauth_t *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    o->ctx = c;
    c->next = next;
    int r = auth_form_of_request(req, &c->form); /* the endpoints calling this are POST only */
    if (r == -2) {
        gw_oauth_error(greq, 400, "invalid_request", "the body must be application/x-www-form-urlencoded");
        return;
    }
    if (r != 0) {
        gw_oauth_error(greq, 400, "invalid_request", "the form is malformed or too large");
        return;
    }
    const char *bid = NULL, *bsecret = NULL;
    size_t bsecret_len = 0;
    int basic = auth_basic_parse(req, &bid, &bsecret, &bsecret_len);
    const char *fid = auth_form_get(&c->form, "client_id");
    if (basic < 0 || auth_form_get(&c->form, "client_secret") != NULL) {
        gw_oauth_error(greq, 401, "invalid_client", "client authentication failed (use client_secret_basic)");
        return;
    }
    if (basic == 1 && fid != NULL && strcmp(fid, bid) != 0) {
        gw_oauth_error(greq, 400, "invalid_request", "client_id differs from the authenticated client");
        return;
    }
    const char *cid = basic == 1 ? bid : fid;
    const gw_client_conf_t *client = gw_conf_client(greq->gen->conf, cid);
    if (client == NULL || (client->secret_hash != NULL) != (basic == 1) || (confidential_only && client->secret_hash == NULL)) {
        gw_oauth_error(greq, 401, "invalid_client", "client authentication failed");
        return;
    }
    c->client = client;
    greq->client_id = client->id;
    if (client->secret_hash == NULL) {
        next(o, client);
        return;
    }
    oauth_thread_t *t = gw_family_thread_data(greq);
    uint64_t now = h2o_now(greq->thread->loop);
    secret_digest(client, bsecret, bsecret_len, c->digest);
    for (unsigned i = 0; i != SECRET_CACHE; ++i)
        if (t->secrets[i].until > now && CRYPTO_memcmp(t->secrets[i].digest, c->digest, 32) == 0) {
            next(o, client);
            return;
        }
    if (auth_task_kdf(o, client->secret_hash, bsecret, bsecret_len, cauth_on_kdf) != 0)
        gw_oauth_error(greq, 503, "temporarily_unavailable", "too many sign-ins in progress; try again");
}
