/*
 * auth/oauth.c — the OAuth 2.0 endpoints of SPEC §6 other than authorize: /oauth2/token
 * (authorization_code with PKCE, refresh_token with rotation and reuse detection,
 * client_credentials), /oauth2/revoke (RFC 7009), /oauth2/introspect (RFC 7662), /oauth2/userinfo,
 * /oauth2/logout and /oauth2/logout-all; plus the dispatch of /oauth2/... and the helpers that
 * authorize.c shares (async request state, Lua scripts, token minting, revocations).
 *
 * Called by the pipeline (gateway/pipeline.c) before route matching. Every answer is JSON in the
 * OAuth error format or an HTML page, with Cache-Control: no-store. Secrets are checked by the KDF
 * pool, never on the loop; every state change is one Lua script (atomic, one round trip). Nothing
 * here logs; error descriptions are fixed texts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "auth/http/internal.h"
#include "crypto/crypto.h"

/* ---- scripts ------------------------------------------------------------------------------------ */

static const char lua_login_lookup[] = "local f = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                                       "local ttl = redis.call('TTL', KEYS[1])\n"
                                       "local sub = redis.call('GET', KEYS[2])\n"
                                       "local pw = false\n"
                                       "if sub then pw = redis.call('HGET', ARGV[1] .. sub, 'pw') end\n"
                                       "return {f, ttl, sub or '', pw or ''}\n";

static const char lua_login_fail[] = "local n = redis.call('INCR', KEYS[1])\n"
                                     "if n == 1 or n == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
                                     "return n\n";

static const char lua_session_create[] =
    "redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'ck', ARGV[2], 'acr', ARGV[3], 'at', ARGV[4], "
    "'exp', tonumber(ARGV[4]) + tonumber(ARGV[5]))\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "redis.call('SADD', KEYS[2], ARGV[6])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
    "redis.call('DEL', KEYS[3])\n"
    "return 1\n";

static const char lua_code_create[] =
    "redis.call('HSET', KEYS[1], 'cid', ARGV[1], 'ru', ARGV[2], 'cc', ARGV[3], 'sub', ARGV[4], 'sid', ARGV[5], 'scope', "
    "ARGV[6], 'acr', ARGV[7], 'used', '0', 'exp', ARGV[9])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "return 1\n";

#define LUA_HASH                                                                                                                   \
    "local v = redis.call('HGETALL', KEYS[1])\n if #v == 0 then return {'invalid'} end\n local h = {}\n for i = 1, #v, 2 do "      \
    "h[v[i]] = v[i + 1] end\n"
/* Expiry: every code, refresh token and session carries 'exp' (unix seconds on the issuing gateway's
 * clock) beside its Redis TTL, and the scripts compare it with the calling gateway's NOW: whichever
 * comes first ends it, so the limits of SPEC §6 hold on the gateway's clock too (and can be tested by
 * moving that clock). Records without 'exp' (made by an older version) live by their TTL alone. */
#define LUA_EXPIRED                                                                                                                \
    "local function expired(e, now)\n"                                                                                             \
    "  return e ~= nil and e ~= false and tonumber(e) ~= nil and tonumber(e) <= now\n"                                             \
    "end\n"
#define LUA_SESS_LIVE                                                                                                              \
    "local function sess_live(k, now)\n"                                                                                           \
    "  local e = redis.call('HGET', k, 'exp')\n"                                                                                   \
    "  if not e then return redis.call('EXISTS', k) == 1 end\n"                                                                    \
    "  return not expired(e, now)\n"                                                                                               \
    "end\n"

static const char lua_code_redeem[] = LUA_EXPIRED LUA_SESS_LIVE LUA_HASH
    "local now = tonumber(ARGV[10])\n"
    "if h['used'] == '1' then return {'used', h['fam'] or '', h['jti'] or '', h['sid'] or ''} end\n"
    "if expired(h['exp'], now) then return {'invalid'} end\n"
    "if h['cid'] ~= ARGV[1] or h['ru'] ~= ARGV[2] then return {'invalid'} end\n"
    "if h['cc'] ~= ARGV[3] then return {'pkce'} end\n"
    "if not sess_live(ARGV[7] .. 'sess:' .. h['sid'], now) then return {'invalid'} end\n"
    "redis.call('HSET', KEYS[1], 'used', '1', 'fam', ARGV[4], 'jti', ARGV[5])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "if ARGV[9] == '1' then\n"
    "  redis.call('HSET', KEYS[2], 'fam', ARGV[4], 'sub', h['sub'], 'sid', h['sid'], 'cid', h['cid'], 'scope', "
    "h['scope'], 'acr', h['acr'], 'used', '0', 'exp', now + tonumber(ARGV[6]))\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[6])\n"
    "end\n"
    "return {'ok', h['sub'], h['sid'], h['scope'], h['acr']}\n";

static const char lua_rt_rotate[] = LUA_EXPIRED LUA_SESS_LIVE LUA_HASH
    "local now = tonumber(ARGV[9])\n"
    "if h['cid'] ~= ARGV[1] or expired(h['exp'], now) then return {'invalid'} end\n"
    "if h['used'] == '1' then\n"
    "  redis.call('SET', ARGV[2] .. 'famrev:' .. h['fam'], '1', 'EX', ARGV[3])\n"
    "  if h['sid'] ~= '' then\n"
    "    redis.call('DEL', ARGV[2] .. 'sess:' .. h['sid'])\n"
    "    redis.call('SREM', ARGV[2] .. 'usess:' .. h['sub'], h['sid'])\n"
    "    redis.call('ZADD', ARGV[2] .. 'revocations', ARGV[6], 'sid:' .. h['sid'])\n"
    "    redis.call('PUBLISH', ARGV[7], 'sid:' .. h['sid'] .. ' ' .. ARGV[6])\n"
    "  end\n"
    "  return {'reused', h['sid']}\n"
    "end\n"
    "if redis.call('EXISTS', ARGV[2] .. 'famrev:' .. h['fam']) == 1 then return {'invalid'} end\n"
    "if not sess_live(ARGV[2] .. 'sess:' .. h['sid'], now) then return {'invalid'} end\n"
    "local scope = h['scope']\n"
    "if ARGV[8] ~= '' then\n"
    "  local have = {}\n"
    "  for w in string.gmatch(h['scope'], '%S+') do have[w] = true end\n"
    "  for w in string.gmatch(ARGV[8], '%S+') do if not have[w] then return {'scope'} end end\n"
    "  scope = ARGV[8]\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'used', '1')\n"
    "redis.call('HSET', KEYS[2], 'fam', h['fam'], 'sub', h['sub'], 'sid', h['sid'], 'cid', h['cid'], 'scope', h['scope'], "
    "'acr', h['acr'], 'used', '0', 'exp', now + tonumber(ARGV[4]))\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "return {'ok', h['sub'], h['sid'], scope, h['acr']}\n";

static const char lua_rt_revoke[] = "local f = redis.call('HMGET', KEYS[1], 'cid', 'fam')\n"
                                    "if not f[1] then return 0 end\n"
                                    "if f[1] ~= ARGV[1] then return -1 end\n"
                                    "redis.call('SET', ARGV[2] .. 'famrev:' .. f[2], '1', 'EX', ARGV[3])\n"
                                    "redis.call('DEL', KEYS[1])\n"
                                    "return 1\n";

static const char lua_revoke[] = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])\n"
                                 "for i = 3, #ARGV, 2 do\n"
                                 "  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])\n"
                                 "  redis.call('PUBLISH', ARGV[2], ARGV[i] .. ' ' .. ARGV[i + 1])\n"
                                 "end\n"
                                 "return 1\n";

static const char lua_logout[] = "local sub = redis.call('HGET', KEYS[1], 'sub')\n"
                                 "redis.call('DEL', KEYS[1])\n"
                                 "if sub then redis.call('SREM', ARGV[1] .. 'usess:' .. sub, ARGV[2]) end\n"
                                 "redis.call('ZADD', ARGV[1] .. 'revocations', ARGV[3], 'sid:' .. ARGV[2])\n"
                                 "redis.call('PUBLISH', ARGV[4], 'sid:' .. ARGV[2] .. ' ' .. ARGV[3])\n"
                                 "return sub or ''\n";

static const char lua_logout_all[] = "local sids = redis.call('SMEMBERS', KEYS[1])\n"
                                     "if ARGV[4] ~= '' then table.insert(sids, ARGV[4]) end\n"
                                     "for _, sid in ipairs(sids) do\n"
                                     "  redis.call('DEL', ARGV[1] .. 'sess:' .. sid)\n"
                                     "  redis.call('ZADD', ARGV[1] .. 'revocations', ARGV[2], 'sid:' .. sid)\n"
                                     "  redis.call('PUBLISH', ARGV[3], 'sid:' .. sid .. ' ' .. ARGV[2])\n"
                                     "end\n"
                                     "redis.call('DEL', KEYS[1])\n"
                                     "return sids\n";

static auth_scripts_t scripts;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    gw_store_script_init(&scripts.login_lookup, lua_login_lookup);
    gw_store_script_init(&scripts.login_fail, lua_login_fail);
    gw_store_script_init(&scripts.session_create, lua_session_create);
    gw_store_script_init(&scripts.code_create, lua_code_create);
    gw_store_script_init(&scripts.code_redeem, lua_code_redeem);
    gw_store_script_init(&scripts.rt_rotate, lua_rt_rotate);
    gw_store_script_init(&scripts.rt_revoke, lua_rt_revoke);
    gw_store_script_init(&scripts.revoke, lua_revoke);
    gw_store_script_init(&scripts.logout, lua_logout);
    gw_store_script_init(&scripts.logout_all, lua_logout_all);
    gw_store_script_init(&scripts.consent_save, "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                                "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
                                                "return 1\n");
}

const auth_scripts_t *auth_scripts(void)
{
    pthread_once(&scripts_once, scripts_init);
    return &scripts;
}

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
} oauth_thread_t;

static void *oauth_thread_init(gw_thread_t *thread)
{
    oauth_thread_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    auth_kdf_port_init(&t->kdf, thread->ctx.queue);
    return t;
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

/* ---- small helpers ------------------------------------------------------------------------------------ */

const uint8_t *auth_service_data_key(const gw_conf_t *conf)
{
    char err[512];
    const uint8_t *dk = auth_data_key(conf->keys_dir, err, sizeof(err));
    if (dk == NULL)
        gw_log("error", "identity: data key: %s", err);
    return dk;
}

int auth_strlist_has(const gw_strlist_t *l, const char *s)
{
    for (size_t i = 0; i != l->n; ++i)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* calls CB for each word of SCOPE (single spaces only, words of visible ASCII but '"' and '\\'); -1 if malformed */
static int scope_words(const char *scope, int (*cb)(void *, const char *, size_t), void *data)
{
    const char *p = scope;
    if (strlen(scope) > 512)
        return -1;
    while (*p != '\0') {
        size_t l = 0;
        while (p[l] != '\0' && p[l] != ' ') {
            unsigned char c = (unsigned char)p[l];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
                return -1;
            ++l;
        }
        if (l == 0 || (p[l] == ' ' && p[l + 1] == '\0'))
            return -1;
        if (!cb(data, p, l))
            return 0;
        p += l;
        if (*p == ' ')
            ++p;
    }
    return 1;
}

static int word_in_list(void *data, const char *w, size_t l)
{
    const gw_strlist_t *allowed = data;
    for (size_t i = 0; i != allowed->n; ++i)
        if (strlen(allowed->v[i]) == l && memcmp(allowed->v[i], w, l) == 0)
            return 1;
    return 0;
}

int auth_scope_subset(const char *scope, const gw_strlist_t *allowed)
{
    return scope_words(scope, word_in_list, (void *)allowed) == 1;
}

static int word_in_str(void *data, const char *w, size_t l)
{
    for (const char *p = data; *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n == l && memcmp(p, w, l) == 0)
            return 1;
        p += n;
        while (*p == ' ')
            ++p;
    }
    return 0;
}

int auth_scope_subset_str(const char *scope, const char *allowed)
{
    return scope_words(scope, word_in_str, (void *)allowed) == 1;
}

static void send_json_doc(gw_req_t *greq, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        gw_oauth_error(greq, 500, "server_error", "the answer cannot be built");
        return;
    }
    gw_send_json(greq, status, text, strlen(text));
    free(text);
}

void auth_send_no_content(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    req->res.status = 200;
    req->res.reason = "OK";
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

void auth_redirect(gw_req_t *greq, const char *location)
{
    h2o_req_t *req = greq->req;
    req->res.status = 302;
    req->res.reason = "Found";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, location, strlen(location));
    gw_add_no_store(req);
    gw_req_add_common_headers(greq);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

static void ignore_reply(void *data, const redisReply *reply, const char *err)
{
}

void auth_revoke_members(gw_thread_t *thread, const char *const *members, const int64_t *exps, size_t n)
{
    char now[24], expbuf[8][24];
    const char *args[3 + 16];
    size_t nargs = 0;
    if (n > 8)
        n = 8;
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    args[nargs++] = GW_REVOCATIONS_KEY;
    args[nargs++] = now;
    args[nargs++] = GW_REVOCATIONS_CHANNEL;
    for (size_t i = 0; i != n; ++i) {
        gw_revocations_add(members[i], strlen(members[i]), exps[i]);
        snprintf(expbuf[i], sizeof(expbuf[i]), "%lld", (long long)exps[i]);
        args[nargs++] = members[i];
        args[nargs++] = expbuf[i];
    }
    if (thread->store != NULL)
        gw_store_evalsha(thread->store, &auth_scripts()->revoke, ignore_reply, NULL, 1, (int)nargs, args, NULL);
}

char *auth_issue_access_token(const gw_gen_t *gen, const char *sub, const char *client_id, const char *scope, const char *sid,
                              const char *acr, char *jti, int64_t *exp_out)
{
    const gw_conf_t *conf = gen->conf;
    const auth_key_t *key = gen->token_keys != NULL ? auth_keyset_signer(gen->token_keys) : NULL;
    if (key == NULL)
        return NULL;
    int64_t now = (int64_t)time(NULL), exp = now + (int64_t)(conf->tokens.access_ttl_ms / 1000);
    if (jti[0] == '\0')
        auth_random_b64url(jti, 16);
    json_t *c = json_object();
    json_object_set_new(c, "iss", json_string(conf->issuer));
    json_object_set_new(c, "sub", json_string(sub));
    json_object_set_new(c, "aud", json_string(conf->tokens.audience));
    json_object_set_new(c, "client_id", json_string(client_id));
    json_object_set_new(c, "scope", json_string(scope));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(exp));
    json_object_set_new(c, "jti", json_string(jti));
    if (sid != NULL && sid[0] != '\0')
        json_object_set_new(c, "sid", json_string(sid));
    json_object_set_new(c, "acr", json_string(acr));
    char *tok = auth_jwt_sign(key, c);
    json_decref(c);
    *exp_out = exp;
    return tok;
}

static unsigned grant_slots[3];
static pthread_once_t grant_slots_once = PTHREAD_ONCE_INIT;
static void grant_slots_init(void)
{
    grant_slots[0] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "authorization_code");
    grant_slots[1] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "refresh_token");
    grant_slots[2] = gw_metrics_label_slot(GW_MF_TOKENS_ISSUED, "client_credentials");
}

void auth_count_issued(gw_thread_t *thread, const char *grant)
{
    pthread_once(&grant_slots_once, grant_slots_init);
    unsigned i = strcmp(grant, "authorization_code") == 0 ? 0 : strcmp(grant, "refresh_token") == 0 ? 1 : 2;
    gw_metrics_count(thread->metrics, GW_MF_TOKENS_ISSUED, grant_slots[i]);
}

/* ---- client authentication (token, revoke, introspect) --------------------------------------------------- */

typedef struct cauth cauth_t;
typedef void (*cauth_cb)(gw_task_t *o, const gw_client_conf_t *client);

struct cauth {
    auth_form_t form;
    const gw_client_conf_t *client;
    cauth_cb next;
    uint8_t digest[32];
    /* endpoint state */
    char jti[32], fam[32], rt[64], rt_hash[65], new_rt_hash[65];
    const char *grant;
};

static void cauth_on_kdf(gw_task_t *o, int result)
{
    cauth_t *c = o->ctx;
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

/* Parses the form and authenticates the client (Basic for confidential clients, client_id in the body
 * for public ones unless CONFIDENTIAL_ONLY), then calls NEXT. Answers errors itself. */
static void client_authenticate(gw_task_t *o, int confidential_only, cauth_cb next)
{
    gw_req_t *greq = o->greq;
    h2o_req_t *req = greq->req;
    cauth_t *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    o->ctx = c;
    c->next = next;
    if (!auth_form_content_type_ok(req)) {
        gw_oauth_error(greq, 400, "invalid_request", "the body must be application/x-www-form-urlencoded");
        return;
    }
    if (req->entity.len > AUTH_FORM_MAX_BYTES ||
        auth_form_parse(&req->pool, req->entity.base != NULL ? req->entity.base : "", req->entity.len, &c->form) != 0) {
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

/* ---- /oauth2/token -------------------------------------------------------------------------------------- */

static void send_tokens(gw_task_t *o, const char *grant, const char *sub, const char *sid, const char *scope, const char *acr,
                        const char *refresh)
{
    cauth_t *c = o->ctx;
    int64_t exp;
    char *at = auth_issue_access_token(o->greq->gen, sub, c->client->id, scope, sid, acr, c->jti, &exp);
    if (at == NULL) {
        gw_oauth_error(o->greq, 503, "temporarily_unavailable", "no signing key is loaded");
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "access_token", json_string(at));
    json_object_set_new(doc, "token_type", json_string("Bearer"));
    json_object_set_new(doc, "expires_in", json_integer((json_int_t)(o->greq->gen->conf->tokens.access_ttl_ms / 1000)));
    json_object_set_new(doc, "scope", json_string(scope));
    if (refresh != NULL)
        json_object_set_new(doc, "refresh_token", json_string(refresh));
    OPENSSL_cleanse(at, strlen(at));
    free(at);
    auth_count_issued(o->greq->thread, grant);
    send_json_doc(o->greq, 200, doc);
}

static void on_code_redeemed(gw_task_t *o, const redisReply *reply, const char *err)
{
    cauth_t *c = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "ok") == 0) {
        send_tokens(o, "authorization_code", gw_reply_str(reply, 1), gw_reply_str(reply, 2), gw_reply_str(reply, 3),
                    gw_reply_str(reply, 4), c->rt[0] != '\0' ? c->rt : NULL);
        return;
    }
    if (strcmp(status, "used") == 0) {
        /* a replayed code: what it issued dies (its refresh family and its access token) */
        const gw_conf_t *conf = o->greq->gen->conf;
        int64_t now = (int64_t)time(NULL);
        char fam_key[128], ttl[24], jti_m[160];
        if (gw_reply_str(reply, 1)[0] != '\0' && o->greq->thread->store != NULL) {
            snprintf(fam_key, sizeof(fam_key), AUTH_RK "famrev:%s", gw_reply_str(reply, 1));
            snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000 + 1));
            const char *argv[] = {"SET", fam_key, "1", "EX", ttl};
            gw_store_command(o->greq->thread->store, ignore_reply, NULL, 1, 5, argv, NULL);
        }
        if (gw_reply_str(reply, 2)[0] != '\0') {
            snprintf(jti_m, sizeof(jti_m), "jti:%s", gw_reply_str(reply, 2));
            const char *m[] = {jti_m};
            int64_t e[] = {now + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY};
            auth_revoke_members(o->greq->thread, m, e, 1);
        }
        gw_oauth_error(o->greq, 400, "invalid_grant", "the authorization code was used already");
        return;
    }
    if (strcmp(status, "pkce") == 0) {
        gw_oauth_error(o->greq, 400, "invalid_grant", "PKCE verification failed");
        return;
    }
    gw_oauth_error(o->greq, 400, "invalid_grant", "the authorization code is invalid, expired or not yours");
}

static int is_unreserved(const char *s, size_t min, size_t max)
{
    size_t l = strlen(s);
    if (l < min || l > max)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
              *s == '_' || *s == '~'))
            return 0;
    return 1;
}

static void grant_authorization_code(gw_task_t *o)
{
    cauth_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    const char *code = auth_form_get(&c->form, "code"), *ru = auth_form_get(&c->form, "redirect_uri"),
               *verifier = auth_form_get(&c->form, "code_verifier");
    if (code == NULL || ru == NULL || strlen(code) > 256 || strlen(ru) > 2048) {
        gw_oauth_error(o->greq, 400, "invalid_request", "code and redirect_uri are required");
        return;
    }
    if (verifier == NULL || !is_unreserved(verifier, 43, 128)) {
        gw_oauth_error(o->greq, 400, "invalid_grant", "a PKCE code_verifier (43-128 characters) is required");
        return;
    }
    uint8_t md[32];
    unsigned mdlen = 32;
    char challenge[CRYPTO_B64URL_LEN(32) + 1], code_key[128], rt_key[128], rt_ttl[24], keep[8] = "600";
    EVP_Digest(verifier, strlen(verifier), md, &mdlen, EVP_sha256(), NULL);
    crypto_b64url_encode(challenge, md, 32);
    char code_hash[65];
    auth_sha256_hex(code, strlen(code), code_hash);
    snprintf(code_key, sizeof(code_key), AUTH_RK_CODE "%s", code_hash);
    int with_refresh = auth_strlist_has(&c->client->grants, "refresh_token");
    auth_random_b64url(c->jti, 16);
    auth_random_b64url(c->fam, 16);
    if (with_refresh) {
        auth_random_b64url(c->rt, 32);
        auth_sha256_hex(c->rt, strlen(c->rt), c->new_rt_hash);
    }
    snprintf(rt_key, sizeof(rt_key), AUTH_RK_RT "%s", with_refresh ? c->new_rt_hash : "-");
    snprintf(rt_ttl, sizeof(rt_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000));
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {
        code_key, rt_key, c->client->id, ru, challenge, c->fam, c->jti, rt_ttl, AUTH_RK, keep, with_refresh ? "1" : "0", now};
    gw_task_eval(o, &auth_scripts()->code_redeem, on_code_redeemed, 2, 12, args, NULL);
}

static void on_rt_rotated(gw_task_t *o, const redisReply *reply, const char *err)
{
    cauth_t *c = o->ctx;
    if (gw_task_store_failed(o, reply, err))
        return;
    const char *status = gw_reply_str(reply, 0);
    if (strcmp(status, "ok") == 0) {
        send_tokens(o, "refresh_token", gw_reply_str(reply, 1), gw_reply_str(reply, 2), gw_reply_str(reply, 3),
                    gw_reply_str(reply, 4), c->rt);
        return;
    }
    if (strcmp(status, "reused") == 0) {
        /* the script revoked the family and the session in Redis (and published it); count it here at once */
        const gw_conf_t *conf = o->greq->gen->conf;
        if (gw_reply_str(reply, 1)[0] != '\0') {
            char m[160];
            snprintf(m, sizeof(m), "sid:%s", gw_reply_str(reply, 1));
            gw_revocations_add(m, strlen(m), (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
        }
        gw_oauth_error(o->greq, 400, "invalid_grant", "the refresh token was used already; its session is revoked");
        return;
    }
    if (strcmp(status, "scope") == 0) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope exceeds the original grant");
        return;
    }
    gw_oauth_error(o->greq, 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
}

static void grant_refresh_token(gw_task_t *o)
{
    cauth_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    const char *rt = auth_form_get(&c->form, "refresh_token"), *scope = auth_form_get(&c->form, "scope");
    if (rt == NULL || strlen(rt) > 256) {
        gw_oauth_error(o->greq, 400, "invalid_request", "refresh_token is required");
        return;
    }
    if (scope != NULL && !auth_scope_subset(scope, &c->client->scopes)) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope is not allowed");
        return;
    }
    char old_key[128], new_key[128], fam_ttl[24], rt_ttl[24], revexp[24], now[24];
    auth_sha256_hex(rt, strlen(rt), c->rt_hash);
    auth_random_b64url(c->rt, 32);
    auth_sha256_hex(c->rt, strlen(c->rt), c->new_rt_hash);
    snprintf(old_key, sizeof(old_key), AUTH_RK_RT "%s", c->rt_hash);
    snprintf(new_key, sizeof(new_key), AUTH_RK_RT "%s", c->new_rt_hash);
    snprintf(fam_ttl, sizeof(fam_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000 + 1));
    snprintf(rt_ttl, sizeof(rt_ttl), "%llu", (unsigned long long)(conf->tokens.refresh_ttl_ms / 1000));
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    c->jti[0] = '\0';
    const char *args[] = {
        old_key, new_key, c->client->id, AUTH_RK, fam_ttl, rt_ttl, "0", revexp, GW_REVOCATIONS_CHANNEL, scope != NULL ? scope : "",
        now};
    gw_task_eval(o, &auth_scripts()->rt_rotate, on_rt_rotated, 2, 11, args, NULL);
}

static void grant_client_credentials(gw_task_t *o)
{
    cauth_t *c = o->ctx;
    const char *scope = auth_form_get(&c->form, "scope");
    char all[1024] = "";
    if (scope == NULL) {
        for (size_t i = 0; i != c->client->scopes.n; ++i) {
            if (strlen(all) + strlen(c->client->scopes.v[i]) + 2 >= sizeof(all))
                break;
            if (i != 0)
                strcat(all, " ");
            strcat(all, c->client->scopes.v[i]);
        }
        scope = all;
    } else if (!auth_scope_subset(scope, &c->client->scopes)) {
        gw_oauth_error(o->greq, 400, "invalid_scope", "the requested scope is not allowed for this client");
        return;
    }
    c->jti[0] = '\0';
    send_tokens(o, "client_credentials", c->client->id, NULL, scope, "0", NULL);
}

static void token_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    cauth_t *c = o->ctx;
    const char *grant = auth_form_get(&c->form, "grant_type");
    if (grant == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "grant_type is required");
        return;
    }
    if (strcmp(grant, "authorization_code") != 0 && strcmp(grant, "refresh_token") != 0 &&
        strcmp(grant, "client_credentials") != 0) {
        gw_oauth_error(o->greq, 400, "unsupported_grant_type", "the grant type is not supported");
        return;
    }
    if (!auth_strlist_has(&client->grants, grant)) {
        gw_oauth_error(o->greq, 400, "unauthorized_client", "this client may not use this grant type");
        return;
    }
    c->grant = grant;
    if (strcmp(grant, "authorization_code") == 0)
        grant_authorization_code(o);
    else if (strcmp(grant, "refresh_token") == 0)
        grant_refresh_token(o);
    else
        grant_client_credentials(o);
}

/* ---- /oauth2/revoke (RFC 7009) and /oauth2/introspect (RFC 7662) ------------------------------------- */

static int looks_like_jwt(const char *t)
{
    const char *d = strchr(t, '.');
    return d != NULL && strchr(d + 1, '.') != NULL;
}

static void on_rt_revoked(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    auth_send_no_content(o->greq); /* RFC 7009 §2.2: 200 whether or not the token was valid */
}

static void revoke_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    cauth_t *c = o->ctx;
    const char *token = auth_form_get(&c->form, "token");
    if (token == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "token is required");
        return;
    }
    const gw_gen_t *gen = o->greq->gen;
    if (looks_like_jwt(token)) {
        auth_claims_t claims;
        if (gen->verifier != NULL &&
            auth_verify_token(gen->verifier, token, strlen(token), (int64_t)time(NULL), &claims) == AUTH_OK &&
            claims.issuer_index == 0 && strcmp(claims.iss, gen->conf->issuer) == 0 && strcmp(claims.client_id, client->id) == 0) {
            char m[160];
            snprintf(m, sizeof(m), "jti:%s", claims.jti);
            const char *mm[] = {m};
            int64_t e[] = {claims.exp + AUTH_LEEWAY};
            auth_revoke_members(o->greq->thread, mm, e, 1);
        }
        auth_send_no_content(o->greq);
        return;
    }
    if (strlen(token) > 256) {
        auth_send_no_content(o->greq);
        return;
    }
    char key[128], ttl[24];
    auth_sha256_hex(token, strlen(token), c->rt_hash);
    snprintf(key, sizeof(key), AUTH_RK_RT "%s", c->rt_hash);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(gen->conf->tokens.refresh_ttl_ms / 1000 + 1));
    const char *args[] = {key, client->id, AUTH_RK, ttl};
    gw_task_eval(o, &auth_scripts()->rt_revoke, on_rt_revoked, 1, 4, args, NULL);
}

static void send_inactive(gw_req_t *greq)
{
    gw_send_json(greq, 200, H2O_STRLIT("{\"active\":false}"));
}

static void on_rt_introspected(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    /* HGETALL of the refresh token; active when unused and its session lives (checked by EXISTS below) */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[0]->elements != 6) {
        send_inactive(o->greq);
        return;
    }
    const redisReply *f = reply->element[0];
    for (size_t i = 0; i != 6; ++i)
        if (f->element[i]->type != REDIS_REPLY_STRING) {
            send_inactive(o->greq);
            return;
        }
    if (strcmp(f->element[4]->str, "0") != 0 || reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer != 0 ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        send_inactive(o->greq);
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "active", json_true());
    json_object_set_new(doc, "token_type", json_string("refresh_token"));
    json_object_set_new(doc, "client_id", json_string(f->element[0]->str));
    json_object_set_new(doc, "sub", json_string(f->element[1]->str));
    json_object_set_new(doc, "scope", json_string(f->element[3]->str));
    json_object_set_new(doc, "iss", json_string(o->greq->gen->conf->issuer));
    json_object_set_new(doc, "exp", json_integer((json_int_t)time(NULL) + (json_int_t)reply->element[2]->integer));
    send_json_doc(o->greq, 200, doc);
}

static const char lua_rt_info[] = LUA_EXPIRED LUA_SESS_LIVE
    "local now = tonumber(ARGV[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 'cid', 'sub', 'sid', 'scope', 'used', 'fam')\n"
    "if not v[1] then return {} end\n"
    "local dead = redis.call('EXISTS', ARGV[1] .. 'famrev:' .. v[6])\n"
    "if not sess_live(ARGV[1] .. 'sess:' .. v[3], now) or expired(redis.call('HGET', KEYS[1], 'exp'), now) then dead = 1 end\n"
    "return {v, dead, redis.call('TTL', KEYS[1])}\n";
static gw_store_script_t script_rt_info;
static pthread_once_t rt_info_once = PTHREAD_ONCE_INIT;
static void rt_info_init(void)
{
    gw_store_script_init(&script_rt_info, lua_rt_info);
}

static void introspect_after_auth(gw_task_t *o, const gw_client_conf_t *client)
{
    cauth_t *c = o->ctx;
    const char *token = auth_form_get(&c->form, "token");
    if (token == NULL) {
        gw_oauth_error(o->greq, 400, "invalid_request", "token is required");
        return;
    }
    const gw_gen_t *gen = o->greq->gen;
    if (looks_like_jwt(token)) {
        auth_claims_t cl;
        if (gen->verifier == NULL || auth_verify_token(gen->verifier, token, strlen(token), (int64_t)time(NULL), &cl) != AUTH_OK ||
            gw_revocations_check(cl.sid, cl.jti)) {
            send_inactive(o->greq);
            return;
        }
        json_t *doc = json_object();
        json_object_set_new(doc, "active", json_true());
        json_object_set_new(doc, "token_type", json_string("access_token"));
        json_object_set_new(doc, "iss", json_string(cl.iss));
        json_object_set_new(doc, "sub", json_string(cl.sub));
        json_object_set_new(doc, "client_id", json_string(cl.client_id));
        json_object_set_new(doc, "scope", json_string(cl.scope));
        json_object_set_new(doc, "jti", json_string(cl.jti));
        if (cl.sid[0] != '\0')
            json_object_set_new(doc, "sid", json_string(cl.sid));
        if (cl.acr[0] != '\0')
            json_object_set_new(doc, "acr", json_string(cl.acr));
        json_object_set_new(doc, "iat", json_integer(cl.iat));
        json_object_set_new(doc, "exp", json_integer(cl.exp));
        send_json_doc(o->greq, 200, doc);
        return;
    }
    if (strlen(token) > 256) {
        send_inactive(o->greq);
        return;
    }
    pthread_once(&rt_info_once, rt_info_init);
    char key[128];
    auth_sha256_hex(token, strlen(token), c->rt_hash);
    snprintf(key, sizeof(key), AUTH_RK_RT "%s", c->rt_hash);
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {key, AUTH_RK, now};
    gw_task_eval(o, &script_rt_info, on_rt_introspected, 1, 3, args, NULL);
}

/* ---- bearer-authenticated endpoints: userinfo, logout, logout-all ------------------------------------ */

static void on_userinfo(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || reply->element[0]->type != REDIS_REPLY_STRING) {
        gw_oauth_error(o->greq, 401, "invalid_token", "the token does not belong to a resident");
        return;
    }
    json_t *doc = json_object(), *cards = json_array();
    json_object_set_new(doc, "sub", json_string(gw_reply_str(reply, 0)));
    json_object_set_new(doc, "name", json_string(gw_reply_str(reply, 1)));
    json_object_set_new(doc, "phone_number", json_string(gw_reply_str(reply, 2)));
    for (const char *p = gw_reply_str(reply, 3); *p != '\0';) {
        size_t l = strcspn(p, ",");
        if (l != 0)
            json_array_append_new(cards, json_stringn(p, l));
        p += l;
        if (*p == ',')
            ++p;
    }
    json_object_set_new(doc, "cards", cards);
    send_json_doc(o->greq, 200, doc);
}

/* the pipeline checked the token: one of this gateway's, with openid or profile */
static void userinfo(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims;
    gw_task_t *o = gw_task_new(greq);
    char key[200];
    snprintf(key, sizeof(key), AUTH_RK_USER "%s", cl->sub);
    const char *argv[] = {"HMGET", h2o_strdup(&greq->req->pool, key, SIZE_MAX).base, "sub", "name_masked", "phone_masked", "cards"};
    gw_task_command(o, on_userinfo, 6, argv, NULL);
}

static void clear_session_cookie(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    int tls = req->scheme == &H2O_URL_SCHEME_HTTPS;
    const char *v = tls ? AUTH_COOKIE_SESSION "=; Path=/oauth2; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
                        : AUTH_COOKIE_SESSION "=; Path=/oauth2; Max-Age=0; HttpOnly; SameSite=Lax";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v, strlen(v));
}

static void on_logout(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    clear_session_cookie(o->greq);
    auth_send_no_content(o->greq);
}

static void logout_session(gw_task_t *o, const char *sid)
{
    const gw_conf_t *conf = o->greq->gen->conf;
    char key[160], revexp[24], m[160];
    int64_t exp = (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY;
    snprintf(m, sizeof(m), "sid:%s", sid);
    gw_revocations_add(m, strlen(m), exp);
    snprintf(key, sizeof(key), AUTH_RK_SESS "%s", sid);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)exp);
    const char *args[] = {key, AUTH_RK, sid, revexp, GW_REVOCATIONS_CHANNEL};
    gw_task_eval(o, &auth_scripts()->logout, on_logout, 1, 5, args, NULL);
}

/* "<sid>.<secret>" of the hegate_sid cookie, split and checked for shape; 0 or -1 */
int auth_session_cookie_split(h2o_mem_pool_t *pool, const char *cookie, const char **sid, const char **secret);

static void on_cookie_session(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    const char **cs = o->ctx; /* {sid, secret} */
    char ck[65];
    auth_sha256_hex(cs[1], strlen(cs[1]), ck);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
        !auth_str_equal_ct(reply->element[0]->str, ck)) {
        clear_session_cookie(o->greq);
        auth_send_no_content(o->greq); /* no live session: nothing to end */
        return;
    }
    logout_session(o, cs[0]);
}

static void logout(gw_req_t *greq)
{
    h2o_req_t *req = greq->req;
    gw_task_t *o = gw_task_new(greq);
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) == -1) {
        const char *cookie = auth_cookie_get(req, AUTH_COOKIE_SESSION), **cs = h2o_mem_alloc_pool(&req->pool, 2 * sizeof(char *));
        if (cookie == NULL || auth_session_cookie_split(&req->pool, cookie, &cs[0], &cs[1]) != 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"hegate\""));
            gw_send_json(
                greq, 401,
                H2O_STRLIT(
                    "{\"error\":\"invalid_request\",\"error_description\":\"a bearer token or a session cookie is required\"}"));
            return;
        }
        o->ctx = cs;
        char key[160];
        snprintf(key, sizeof(key), AUTH_RK_SESS "%s", cs[0]);
        const char *argv[] = {"HMGET", h2o_strdup(&req->pool, key, SIZE_MAX).base, "ck"};
        gw_task_command(o, on_cookie_session, 3, argv, NULL);
        return;
    }
    const auth_claims_t *cl = greq->claims; /* the pipeline checked it (a revoked one still names its session) */
    if (cl->sid[0] == '\0') {
        gw_oauth_error(greq, 400, "invalid_request", "the token has no sign-in session");
        return;
    }
    logout_session(o, cl->sid);
}

static void on_logout_all(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    const gw_conf_t *conf = o->greq->gen->conf;
    int64_t exp = (int64_t)time(NULL) + (int64_t)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i != reply->elements; ++i)
        if (reply->element[i]->type == REDIS_REPLY_STRING && reply->element[i]->len < 140) {
            char m[160];
            snprintf(m, sizeof(m), "sid:%s", reply->element[i]->str);
            gw_revocations_add(m, strlen(m), exp);
        }
    clear_session_cookie(o->greq);
    auth_send_no_content(o->greq);
}

static void logout_all(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims;
    if (cl->sid[0] == '\0') {
        gw_oauth_error(greq, 400, "invalid_request", "the token does not belong to a resident's sign-in");
        return;
    }
    const gw_conf_t *conf = greq->gen->conf;
    gw_task_t *o = gw_task_new(greq);
    char key[200], revexp[24];
    snprintf(key, sizeof(key), AUTH_RK_USESS "%s", cl->sub);
    snprintf(revexp, sizeof(revexp), "%lld", (long long)time(NULL) + (long long)(conf->tokens.access_ttl_ms / 1000) + AUTH_LEEWAY);
    const char *args[] = {key, AUTH_RK, revexp, GW_REVOCATIONS_CHANNEL, cl->sid};
    gw_task_eval(o, &auth_scripts()->logout_all, on_logout_all, 1, 5, args, NULL);
}

/* ---- the /oauth2 family ------------------------------------------------------------------------------- */

static void token_post(gw_req_t *greq)
{
    client_authenticate(gw_task_new(greq), 0, token_after_auth);
}

static void revoke_post(gw_req_t *greq)
{
    client_authenticate(gw_task_new(greq), 0, revoke_after_auth);
}

static void introspect_post(gw_req_t *greq)
{
    client_authenticate(gw_task_new(greq), 1, introspect_after_auth);
}

static const char *const userinfo_scopes[] = {"openid", "profile", NULL};

static gw_endpoint_t oauth_endpoints[] = {
    {.name = "authorize", .path = "authorize", .methods = GW_M_GET | GW_M_POST, .handle = auth_authorize_handle},
    {.name = "token", .path = "token", .methods = GW_M_POST, .handle = token_post},
    {.name = "revoke", .path = "revoke", .methods = GW_M_POST, .handle = revoke_post},
    {.name = "introspect", .path = "introspect", .methods = GW_M_POST, .handle = introspect_post},
    {.name = "userinfo",
     .path = "userinfo",
     .methods = GW_M_GET | GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = userinfo_scopes,
     .handle = userinfo},
    /* a bearer token or, without one, the session cookie */
    {.name = "logout",
     .path = "logout",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OPTIONAL | GW_AUTH_OWN | GW_AUTH_REVOKED_OK,
     .handle = logout},
    {.name = "logout-all", .path = "logout-all", .methods = GW_M_POST, .auth = GW_AUTH_BEARER | GW_AUTH_OWN, .handle = logout_all},
};

static void oauth_init(void)
{
    auth_scripts();
}

static gw_family_t oauth_family = {
    .name = "oauth2",
    .prefix = "/oauth2",
    .owns_prefix = 1,
    .not_found = "no such OAuth endpoint",
    .errors = GW_ERRORS_OAUTH,
    .endpoints = oauth_endpoints,
    .num_endpoints = sizeof(oauth_endpoints) / sizeof(oauth_endpoints[0]),
    .init = oauth_init,
    .thread_init = oauth_thread_init,
};

void auth_oauth_register(void)
{
    gw_family_register(&oauth_family);
}
