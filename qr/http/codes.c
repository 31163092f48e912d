/*
 * qr/http/endpoints.c — the city code's HTTP endpoints (SPEC §7.3), the /qr/v1 family, on top of the
 * qr/ library and the gateway's interface. The only part of qr/ that knows the gateway (the rest of
 * the folder links alone, see hmt1.h). The pipeline has matched, sized and authenticated a request
 * (the endpoint table at the end says what each needs) before a handler here runs.
 *
 *   GET  /qr/v1/trust                 public: the trust list as a compact JWS (newest token key)
 *   POST /qr/v1/codes                 resident, scope qr: a fresh online code
 *   GET  /qr/v1/codes/{scene}.png|svg same, as an image
 *   POST /qr/v1/verify                scanner client (client_credentials), scope qr.verify
 *   POST /qr/v1/credentials           resident, scope qr: an offline credential for a device key
 *   POST /qr/v1/credentials/revoke    resident: every credential of the resident on the deny list
 *   GET  /qr/v1/scans                 resident: who verified the resident's codes, newest first
 *   POST /qr/v1/redeem                payment back end, scope payment.redeem: a one-time token → card
 *
 * Redis keys (under the identity hash tag of auth/auth.h, so every script is one slot):
 *   hegate:{id}:qrcred:<sub>:<scene>  hash: cred (base64url of bytes 0–127), dev (the online device key,
 *                                     PKCS#8 PEM sealed with the data key), exp, ctr; expires with the credential
 *   hegate:{id}:qrserial              INCR: credential serials (unique across every issuer key)
 *   hegate:{id}:qrs:<serial>          hash: sub, scene, exp — whose credential (expires a day after it)
 *   hegate:{id}:qrsubs:<sub>          set: the resident's serials (revoke)
 *   hegate:{id}:qrdenyz               sorted set: revoked serials (the trust list's deny), scored by their
 *                                     credential's expiry; a serial leaves it QR_DENY_KEEP after that
 *   hegate:{id}:qrdeny                (the deny list's earlier form, a plain set: moved into qrdenyz by the
 *                                     first script that reads or writes the deny list)
 *   hegate:{id}:qrseen:<kid>:<serial>:<counter>  consumed codes, until gen + ttl + 5
 *   hegate:{id}:qrscans:<sub>         list: the resident's scan history (JSON, newest first, capped)
 *   hegate:{id}:qrpay:<sha256>        one-time payment token (120 s): sub
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <jansson.h>
#include "gateway/gateway.h"
#include "qr/hmt1.h"
#include "qr/http/http.h"

#define QR_RK AUTH_RK
#define QR_SCANS_CAP 100
#define QR_PAYTOK_TTL 120
/* A revoked serial stays on the deny list this long after its credential expired: after that any code
 * of it is credential_expired anyway, to a gate whose clock is no more than a day late. */
#define QR_DENY_KEEP 86400
#define QR_PNG_SCALE 8
#define QR_NOT_AFTER_OPEN 253402300799LL /* 9999-12-31: the signing key has no end yet */

/* ---- per-generation state -------------------------------------------------------------------------- */

typedef struct {
    size_t nkeys;
    qr_key_t **keys; /* code keys, newest first; keys[0] signs */
    int64_t *not_before, *not_after;
    uint8_t signer_kid[HMT1_KID_LEN];
    char signer_kid_hex[9];
    qr_trust_t *trust; /* the keys, no deny list (the deny list is asked of Redis) */
    uint8_t scene_secret[QR_SCENE_MAX + 1][32];
    qr_key_t *token_signer; /* the newest token key, for the trust list's JWS */
    char token_kid[AUTH_KID_MAX + 1];
    uint32_t scenes;
} qr_gen_t;

static qr_key_t *qr_from_auth(const auth_key_t *k)
{
    EVP_PKEY *pk = auth_key_pkey(k);
    BIO *b = BIO_new(BIO_s_secmem());
    qr_key_t *q = NULL;
    if (b == NULL)
        return NULL;
    int ok = auth_key_has_private(k) ? PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(b, pk);
    char *p;
    long n;
    if (ok == 1 && (n = BIO_get_mem_data(b, &p)) > 0)
        q = qr_key_from_pem(p, (size_t)n);
    BIO_free(b);
    return q;
}

static void qr_gen_free(void *p)
{
    qr_gen_t *g = p;
    if (g == NULL)
        return;
    for (size_t i = 0; i != g->nkeys; ++i)
        qr_key_free(g->keys[i]);
    free(g->keys);
    free(g->not_before);
    free(g->not_after);
    qr_trust_free(g->trust);
    qr_key_free(g->token_signer);
    OPENSSL_cleanse(g->scene_secret, sizeof(g->scene_secret));
    free(g);
}

static int qr_gen_build(const gw_conf_t *conf, void **out, char *err, size_t errsz)
{
    char dir[4096];
    *out = NULL;
    snprintf(dir, sizeof(dir), "%s/code", conf->keys_dir);
    if (access(dir, F_OK) != 0)
        return 0;
    int64_t now = (int64_t)time(NULL);
    int64_t grace = (int64_t)(conf->qr.credential_ttl_ms / 1000 + conf->qr.skew_ms / 1000) + HMT1_GRACE + 255;
    auth_keyset_t *set = auth_keyset_load(conf->keys_dir, AUTH_KEY_CODE, now, grace, err, errsz);
    if (set == NULL)
        return -1;
    qr_gen_t *g = calloc(1, sizeof(*g));
    size_t n = auth_keyset_count(set);
    if (g == NULL || (g->keys = calloc(n, sizeof(*g->keys))) == NULL || (g->not_before = calloc(n, sizeof(int64_t))) == NULL ||
        (g->not_after = calloc(n, sizeof(int64_t))) == NULL || (g->trust = qr_trust_new(now)) == NULL)
        goto NoMem;
    g->scenes = conf->qr.scenes & QR_SCENES_ALL;
    for (size_t i = 0; i != n; ++i) {
        const auth_key_t *k = auth_keyset_get(set, i);
        if ((g->keys[i] = qr_from_auth(k)) == NULL)
            goto NoMem;
        g->nkeys = i + 1;
        g->not_before[i] = auth_key_created(k);
        int64_t ra = auth_key_retire_at(k);
        g->not_after[i] = ra == INT64_MAX || ra > QR_NOT_AFTER_OPEN ? QR_NOT_AFTER_OPEN : ra;
        if (g->not_before[i] > g->not_after[i])
            g->not_before[i] = g->not_after[i];
        if (qr_trust_add_key(g->trust, g->keys[i], g->scenes, g->not_before[i], g->not_after[i]) != 0) {
            snprintf(err, errsz, "code keys: two keys share an HMT1 key id");
            goto Error;
        }
    }
    if (n == 0 || !qr_key_has_private(g->keys[0])) {
        snprintf(err, errsz, "code keys: no signing key");
        goto Error;
    }
    qr_key_id(g->keys[0], g->signer_kid);
    snprintf(g->signer_kid_hex, sizeof(g->signer_kid_hex), "%02x%02x%02x%02x", g->signer_kid[0], g->signer_kid[1], g->signer_kid[2],
             g->signer_kid[3]);
    /* the pseudonym secrets: one subkey of the data key (keys.dir/data.key) per scene */
    char dkerr[256];
    const uint8_t *dk = auth_data_key(conf->keys_dir, dkerr, sizeof(dkerr));
    if (dk == NULL) {
        snprintf(err, errsz, "the data key (data.key) cannot be loaded: %s", dkerr);
        goto Error;
    }
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s) {
        char label[64];
        snprintf(label, sizeof(label), "qr-pseudonym/%s", qr_scene_name(s));
        auth_subkey(dk, label, g->scene_secret[s]);
    }
    auth_keyset_free(set);
    *out = g;
    return 0;
NoMem:
    snprintf(err, errsz, "code keys: out of memory or unusable key");
Error:
    auth_keyset_free(set);
    qr_gen_free(g);
    return -1;
}

/* the token key signing the trust list: built lazily (token keys belong to the generation too) */
static pthread_mutex_t token_signer_mutex = PTHREAD_MUTEX_INITIALIZER;

static qr_key_t *gen_token_signer(gw_req_t *greq, const char **kid)
{
    const gw_gen_t *gen = greq->gen;
    qr_gen_t *g = gw_family_gen_data(greq);
    qr_key_t *ret = NULL;
    pthread_mutex_lock(&token_signer_mutex);
    if (g->token_signer == NULL && gen->token_keys != NULL) {
        const auth_key_t *k = auth_keyset_signer(gen->token_keys);
        if (k != NULL && (g->token_signer = qr_from_auth(k)) != NULL)
            snprintf(g->token_kid, sizeof(g->token_kid), "%s", auth_key_kid(k));
    }
    ret = g->token_signer;
    *kid = g->token_kid;
    pthread_mutex_unlock(&token_signer_mutex);
    return ret;
}

/* ---- small helpers ----------------------------------------------------------------------------------- */

static void send_doc(gw_req_t *greq, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the answer cannot be built");
        return;
    }
    gw_send_json(greq, status, text, strlen(text));
    free(text);
}

static void unavailable(gw_req_t *greq)
{
    gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "the city-code store is unavailable right now");
}

static char *pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return h2o_strdup(pool, buf, SIZE_MAX).base;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i != n; ++i) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* the process-wide data key (sealed device keys, pseudonym secrets), or NULL (logged) */
static const uint8_t *data_key(const gw_conf_t *conf)
{
    char err[256];
    const uint8_t *dk = auth_data_key(conf->keys_dir, err, sizeof(err));
    if (dk == NULL)
        gw_log("error", "city code: data key: %s", err);
    return dk;
}

static const char *json_str(json_t *doc, const char *name)
{
    json_t *v = json_object_get(doc, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int qr_body_parse(qr_body_kind_t kind, const char *body, size_t len, qr_body_t *out)
{
    json_t *doc = body != NULL && len <= QR_BODY_MAX ? auth_json_parse_object(body, len, 4) : NULL;
    int ret = 0;
    memset(out, 0, sizeof(*out));
    if (doc == NULL)
        return -1;
    if (kind == QR_BODY_CODES || kind == QR_BODY_CREDENTIALS) {
        const char *s = json_str(doc, "scene");
        out->scene = s != NULL ? qr_scene_from_name(s) : 0;
    }
    if (kind == QR_BODY_CREDENTIALS) {
        const char *dk = json_str(doc, "device_public_key");
        uint8_t point[HMT1_POINT_FULL_LEN + 3];
        size_t pl = 0;
        qr_key_t *k = NULL;
        if (dk != NULL && qr_b64url_decode(dk, strlen(dk), point, sizeof(point), &pl) == 0)
            k = qr_key_from_point(point, pl);
        if (k != NULL)
            qr_key_point(k, out->device_point);
        else
            ret = -2;
        qr_key_free(k);
    } else if (kind == QR_BODY_VERIFY) {
        json_t *jc = json_object_get(doc, "code"), *jt = json_object_get(doc, "terminal_id");
        if (!json_is_string(jc) || (jt != NULL && !json_is_string(jt)))
            ret = -2;
        else
            out->code_readable = qr_code_from_text(json_string_value(jc), json_string_length(jc), out->code) == 0;
    } else if (kind == QR_BODY_REDEEM) {
        json_t *jp = json_object_get(doc, "payment_token");
        if (!json_is_string(jp) || json_string_length(jp) > 64 || strlen(json_string_value(jp)) != json_string_length(jp))
            ret = -2;
        else
            memcpy(out->payment_token, json_string_value(jp), json_string_length(jp) + 1);
    }
    json_decref(doc);
    return ret;
}

/* the request body parsed as KIND into OUT (pool memory); NULL after a 400 problem */
static qr_body_t *body_parse(gw_req_t *greq, qr_body_kind_t kind)
{
    h2o_req_t *req = greq->req;
    qr_body_t *b = h2o_mem_alloc_pool(&req->pool, sizeof(*b));
    int r = qr_body_parse(kind, req->entity.base, req->entity.len, b);
    if (r == -1)
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "the body must be one JSON object (at most 4 KiB)");
    else if (r != 0)
        gw_problem_send(greq, 400, "bad-request", "Bad Request",
                        kind == QR_BODY_CREDENTIALS ? "device_public_key must be a P-256 SEC1 point in base64url"
                        : kind == QR_BODY_VERIFY    ? "code (a string) is required; terminal_id must be a string"
                                                    : "payment_token (a string) is required");
    return r == 0 ? b : NULL;
}

static qr_gen_t *gen_qr(gw_req_t *greq)
{
    qr_gen_t *g = gw_family_gen_data(greq);
    if (g == NULL)
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "no city-code keys are configured");
    return g;
}

/* "****0001": every character but the last 4 masked (short values: all but the last 2) */
static void mask_tail(const char *s, char *out, size_t outsz)
{
    size_t n = strlen(s), keep = n > 6 ? 4 : n > 2 ? 2 : 0, i = 0;
    for (; i + keep < n && i + 1 < outsz; ++i)
        out[i] = '*';
    for (size_t j = n - keep; j < n && i + 1 < outsz; ++j)
        out[i++] = s[j];
    out[i] = '\0';
}

/* "230***********123X": the first 3 and the last 4 kept */
static void mask_id(const char *s, char *out, size_t outsz)
{
    size_t n = strlen(s), i = 0;
    if (n <= 7) {
        mask_tail(s, out, outsz);
        return;
    }
    for (; i != n && i + 1 < outsz; ++i)
        out[i] = i < 3 || i >= n - 4 ? s[i] : '*';
    out[i] = '\0';
}

/* unseals the resident's field (aad as users.c seals it) into OUT; "" when absent or unreadable */
static void unseal_field(const gw_conf_t *conf, const char *sub, const char *field, const char *sealed, char *out, size_t outsz)
{
    out[0] = '\0';
    const uint8_t *dk;
    if (sealed[0] == '\0' || (dk = data_key(conf)) == NULL)
        return;
    char aad[256];
    snprintf(aad, sizeof(aad), "hegate/user/%s/%s", sub, field);
    if (auth_unseal(dk, aad, sealed, out, outsz) < 0)
        out[0] = '\0';
}

/* ---- Lua scripts ------------------------------------------------------------------------------------ */

/* KEYS: user, cred, serial counter. ARGV: min exp of a reusable credential, "new" to always make one,
 * the tail of the seal the caller has cached ("" for none).
 * → {"nouser"} | {"same", counter} | {"ok", cred, dev, counter} | {"new", serial, fare_class, concessions}
 *   | {"busy"}: another request (any node) is making this online credential right now — the first one
 *   claims the making with a "creating" field (the hash lives 2 s unless the credential is stored,
 *   which replaces the hash), so a burst of first requests makes one credential, not one each. */
static const char lua_code_next[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return {'nouser'} end\n"
                                    "if ARGV[2] ~= 'new' then\n"
                                    "  local c = redis.call('HMGET', KEYS[2], 'cred', 'dev', 'exp', 'ctr')\n"
                                    "  if c[1] and c[2] and tonumber(c[3]) and tonumber(c[3]) >= tonumber(ARGV[1]) and\n"
                                    "     tonumber(c[4] or '0') < 16777215 then\n"
                                    "    local n = tostring(redis.call('HINCRBY', KEYS[2], 'ctr', 1))\n"
                                    "    if ARGV[3] ~= '' and #c[2] >= #ARGV[3] and string.sub(c[2], -#ARGV[3]) == ARGV[3] then\n"
                                    "      return {'same', n}\n"
                                    "    end\n"
                                    "    return {'ok', c[1], c[2], n}\n"
                                    "  end\n"
                                    "  if redis.call('HSETNX', KEYS[2], 'creating', '1') == 0 then return {'busy'} end\n"
                                    "  redis.call('PEXPIRE', KEYS[2], 2000)\n"
                                    "end\n"
                                    "local s = redis.call('INCR', KEYS[3])\n"
                                    "local u = redis.call('HMGET', KEYS[1], 'fare_class', 'concessions')\n"
                                    "return {'new', tostring(s), u[1] or '', u[2] or ''}\n";

/* KEYS: cred (or the serial key again when offline), serial map, the resident's serials.
 * ARGV: cred, dev ("" offline), exp, sub, scene, map expiry, serial */
static const char lua_cred_store[] = "if ARGV[2] ~= '' then\n"
                                     "  redis.call('DEL', KEYS[1])\n"
                                     "  redis.call('HSET', KEYS[1], 'cred', ARGV[1], 'dev', ARGV[2], 'exp', ARGV[3], 'ctr', 1)\n"
                                     "  redis.call('EXPIREAT', KEYS[1], ARGV[3])\n"
                                     "end\n"
                                     "redis.call('HSET', KEYS[2], 'sub', ARGV[4], 'scene', ARGV[5], 'exp', ARGV[3])\n"
                                     "redis.call('EXPIREAT', KEYS[2], ARGV[6])\n"
                                     "redis.call('SADD', KEYS[3], ARGV[7])\n"
                                     "redis.call('EXPIREAT', KEYS[3], ARGV[6])\n"
                                     "return 1\n";

/* KEYS: deny (the sorted set; its earlier plain-set form, named without the final "z", is still consulted),
 * seen, serial map, payment token. ARGV: serial, result, check deny (1/0), seen ttl, time,
 * client, role, scene, scan id, scans prefix, user prefix, make payment token (1/0), cap, token ttl
 * → {result, sub, name_masked, name, id_number, card:transit, card:bus, card:metro, card:social, insurance_status} */
static const char lua_verify[] =
    "local r = ARGV[2]\n"
    "if ARGV[3] == '1' and (redis.call('ZSCORE', KEYS[1], ARGV[1]) or\n"
    "    redis.call('SISMEMBER', string.sub(KEYS[1], 1, -2), ARGV[1]) == 1) then r = 'revoked' end\n"
    "if r == 'valid' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then r = 'replayed' end\n"
    "local sub = redis.call('HGET', KEYS[3], 'sub')\n"
    "if not sub then return {r, ''} end\n"
    "local lk = ARGV[10] .. sub\n"
    "redis.call('LPUSH', lk, cjson.encode({at = tonumber(ARGV[5]), client = ARGV[6], role = ARGV[7], scene = ARGV[8],\n"
    "  scan_id = ARGV[9], result = r}))\n"
    "redis.call('LTRIM', lk, 0, tonumber(ARGV[13]) - 1)\n"
    "if r ~= 'valid' then return {r, sub} end\n"
    "if ARGV[12] == '1' then redis.call('SET', KEYS[4], sub, 'EX', ARGV[14]) end\n"
    "local u = redis.call('HMGET', ARGV[11] .. sub, 'name_masked', 'name', 'id_number', 'card:transit', 'card:bus',\n"
    "  'card:metro', 'card:social', 'insurance_status')\n"
    "return {r, sub, u[1] or '', u[2] or '', u[3] or '', u[4] or '', u[5] or '', u[6] or '', u[7] or '', u[8] or ''}\n";

/* Every script that touches the deny list starts with this: KEYS[1] the deny list (sorted set), ARGV[1]
 * now, ARGV[2] the credential ttl, ARGV[3] QR_DENY_KEEP. A deny list of the earlier form (a plain set
 * under the old name) is moved over first, each serial scored now + credential ttl (no credential
 * outlives that); then serials whose credentials expired more than QR_DENY_KEEP ago are dropped. */
#define LUA_DENY_PRELUDE                                                                                                           \
    "local old = string.sub(KEYS[1], 1, -2)\n"                                                                                     \
    "if redis.call('EXISTS', old) == 1 then\n"                                                                                     \
    "  for _, v in ipairs(redis.call('SMEMBERS', old)) do\n"                                                                       \
    "    redis.call('ZADD', KEYS[1], 'NX', tonumber(ARGV[1]) + tonumber(ARGV[2]), v)\n"                                            \
    "  end\n"                                                                                                                      \
    "  redis.call('DEL', old)\n"                                                                                                   \
    "end\n"                                                                                                                        \
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[3])))\n"

/* KEYS: deny, the resident's serials, then the resident's online credentials (one per scene). ARGV: now,
 * credential ttl, keep, serial map prefix. Each serial goes on the deny list scored by its credential's
 * expiry (a serial whose map is gone expired over a day ago: nothing to deny).
 * → the number of serials on the deny list for the resident */
static const char lua_revoke[] =
    LUA_DENY_PRELUDE "local n = 0\n"
                     "for _, v in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
                     "  local m = ARGV[4] .. v\n"
                     "  if redis.call('EXISTS', m) == 1 then\n"
                     "    local exp = tonumber(redis.call('HGET', m, 'exp') or '') or (tonumber(ARGV[1]) + tonumber(ARGV[2]))\n"
                     "    if exp >= tonumber(ARGV[1]) - tonumber(ARGV[3]) then\n"
                     "      redis.call('ZADD', KEYS[1], 'GT', exp, v)\n"
                     "      n = n + 1\n"
                     "    end\n"
                     "  end\n"
                     "end\n"
                     "for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end\n"
                     "return n\n";

/* KEYS: deny. ARGV: now, credential ttl, keep → the serials on the deny list */
static const char lua_deny_list[] = LUA_DENY_PRELUDE "return redis.call('ZRANGE', KEYS[1], 0, -1)\n";

/* KEYS: payment token. ARGV: user prefix → {sub, cards, card:bank, card:pay} or {} (once) */
static const char lua_redeem[] = "local sub = redis.call('GET', KEYS[1])\n"
                                 "if not sub then return {} end\n"
                                 "redis.call('DEL', KEYS[1])\n"
                                 "local u = redis.call('HMGET', ARGV[1] .. sub, 'cards')\n"
                                 "return {sub, u[1] or ''}\n";

static struct {
    gw_store_script_t code_next, cred_store, verify, revoke, deny_list, redeem;
} scripts;
static void scripts_init(void)
{
    gw_store_script_init(&scripts.code_next, lua_code_next);
    gw_store_script_init(&scripts.cred_store, lua_cred_store);
    gw_store_script_init(&scripts.verify, lua_verify);
    gw_store_script_init(&scripts.revoke, lua_revoke);
    gw_store_script_init(&scripts.deny_list, lua_deny_list);
    gw_store_script_init(&scripts.redeem, lua_redeem);
}

/* ---- GET /qr/v1/trust ------------------------------------------------------------------------------- */

static void on_trust_deny(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    gw_req_t *greq = o->greq;
    qr_gen_t *g = gw_family_gen_data(greq);
    const char *kid;
    qr_key_t *signer = gen_token_signer(greq, &kid);
    if (signer == NULL) {
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "no token key signs the trust list");
        return;
    }
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    uint32_t *deny = h2o_mem_alloc_pool(&greq->req->pool, (n + 1) * sizeof(*deny));
    size_t nd = 0;
    for (size_t i = 0; i != n; ++i) {
        const char *s = gw_reply_str(reply, i);
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*s != '\0' && *end == '\0' && v <= UINT32_MAX)
            deny[nd++] = (uint32_t)v;
    }
    qr_trust_t *t = qr_trust_new((int64_t)time(NULL));
    char *jws = NULL;
    size_t len = 0;
    int ok = t != NULL;
    for (size_t i = 0; ok && i != g->nkeys; ++i)
        ok = qr_trust_add_key(t, g->keys[i], g->scenes, g->not_before[i], g->not_after[i]) == 0;
    ok = ok && qr_trust_set_deny(t, deny, nd) == 0 && qr_trust_to_jws(t, signer, kid, &jws, &len) == 0;
    qr_trust_free(t);
    if (!ok) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the trust list cannot be built");
        return;
    }
    h2o_req_t *req = greq->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/jose"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("public, max-age=60"));
    gw_req_add_common_headers(greq);
    h2o_iovec_t body = h2o_strdup(&req->pool, jws, len);
    free(jws);
    h2o_send_inline(req, body.base, body.len);
}

static void trust(gw_req_t *greq)
{
    if (gen_qr(greq) == NULL)
        return;
    h2o_mem_pool_t *pool = &greq->req->pool;
    const gw_conf_t *conf = greq->gen->conf;
    const char *args[] = {QR_RK "qrdenyz", pool_printf(pool, "%" PRId64, (int64_t)time(NULL)),
                          pool_printf(pool, "%" PRIu64, (uint64_t)(conf->qr.credential_ttl_ms / 1000)),
                          pool_printf(pool, "%d", QR_DENY_KEEP)};
    gw_task_eval(gw_task_new(greq), &scripts.deny_list, on_trust_deny, 1, 4, args, NULL);
}

/* ---- POST /qr/v1/codes, GET /qr/v1/codes/{scene}.png|svg, POST /qr/v1/credentials ------------------ */

typedef enum { OUT_JSON, OUT_PNG, OUT_SVG, OUT_CREDENTIAL } qr_out_t;

typedef struct {
    const char *sub;
    unsigned scene;
    qr_out_t out;
    int64_t now;
    uint8_t cred[HMT1_CRED_LEN];
    uint8_t device_point[HMT1_POINT_LEN]; /* offline credentials: the phone's key */
    qr_key_t *device;                     /* online, new credential: the gateway's device key (freed in dispose) */
    const qr_key_t *signer;               /* online: the key that signs the code (DEVICE, or this thread's cache) */
    const char *tag;                      /* the cached seal's tail sent with the script, or NULL */
    uint32_t counter;
    int64_t cred_exp;
    gw_task_t *o;
    h2o_timeout_entry_t retry; /* asking again while another request makes the credential */
    unsigned retries;
} codes_t;

#define QR_BUSY_RETRY_MS 5
#define QR_BUSY_RETRIES 400 /* 2 s: the "creating" claim's lifetime */

static void codes_dispose(void *p)
{
    codes_t *c = p;
    if (h2o_timeout_is_linked(&c->retry))
        h2o_timeout_unlink(&c->retry);
    qr_key_free(c->device);
}

static unsigned scene_slots[QR_SCENE_MAX + 1];
static pthread_once_t scene_slots_once = PTHREAD_ONCE_INIT;
static void scene_slots_init(void)
{
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s)
        scene_slots[s] = gw_metrics_label_slot(GW_MF_QR_CODES_ISSUED, qr_scene_name(s));
}

static unsigned scene_slot(unsigned scene)
{
    pthread_once(&scene_slots_once, scene_slots_init);
    return scene_slots[scene];
}

/* Per-thread cache of online credentials with their device keys, decrypted. Unsealing a device key and
 * parsing its PEM through OpenSSL's decoders costs ~0.7 ms (mostly provider lookups under a global
 * lock): far more than making the code. An entry belongs to (sub, scene) and holds the sealed text Redis
 * had for it, the credential and the parsed key; it is used only while Redis still holds that very
 * sealed text (the seal has a random nonce: a new credential or device key never matches an old
 * entry). To keep the script's answer small, the request sends the tail of the cached seal (its GCM
 * tag) and Redis answers "same" instead of the credential and the seal when they match: small answers
 * all arrive in one read, which keeps the store's deadlines honest when many requests are in flight.
 * Direct-mapped, bounded (QR_DEVCACHE_SLOTS per thread): a collision evicts. Each thread owns its cache
 * (no lock); a thread-specific key frees it when the thread ends. */
#define QR_DEVCACHE_SLOTS 1024
#define QR_DEVCACHE_TAG 22 /* base64url characters of the seal's tail that name it (the 16-byte GCM tag) */

typedef struct {
    char *id; /* "<sub>\n<scene>", malloc'd; NULL: empty */
    char *sealed;
    uint8_t cred[HMT1_CRED_LEN];
    qr_key_t *key;
} devcache_entry_t;

static pthread_key_t devcache_key;
static pthread_once_t devcache_once = PTHREAD_ONCE_INIT;

static void devcache_clear(devcache_entry_t *e)
{
    free(e->id);
    free(e->sealed);
    qr_key_free(e->key);
    memset(e, 0, sizeof(*e));
}

static void devcache_free(void *p)
{
    devcache_entry_t *e = p;
    for (size_t i = 0; e != NULL && i != QR_DEVCACHE_SLOTS; ++i)
        devcache_clear(&e[i]);
    free(e);
}

static void devcache_init(void)
{
    pthread_key_create(&devcache_key, devcache_free);
}

/* this thread's slot for (SUB, SCENE) and the id it must hold (*ID, in POOL); NULL without memory */
static devcache_entry_t *devcache_slot(const char *sub, unsigned scene, char **id, h2o_mem_pool_t *pool)
{
    pthread_once(&devcache_once, devcache_init);
    devcache_entry_t *cache = pthread_getspecific(devcache_key);
    if (cache == NULL) {
        if ((cache = calloc(QR_DEVCACHE_SLOTS, sizeof(*cache))) == NULL || pthread_setspecific(devcache_key, cache) != 0) {
            free(cache);
            return NULL;
        }
    }
    size_t sl = strlen(sub);
    *id = h2o_mem_alloc_pool(pool, sl + 3);
    memcpy(*id, sub, sl);
    (*id)[sl] = '\n';
    (*id)[sl + 1] = (char)('0' + scene);
    (*id)[sl + 2] = '\0';
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *p = *id; *p != '\0'; ++p)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return &cache[h % QR_DEVCACHE_SLOTS];
}

static const char *seal_tag(const char *sealed)
{
    size_t n = strlen(sealed);
    return n > QR_DEVCACHE_TAG ? sealed + n - QR_DEVCACHE_TAG : sealed;
}

/* The cached entry of (SUB, SCENE) when it holds the seal whose tail is TAG (NULL: any), else NULL. */
static devcache_entry_t *devcache_find(const char *sub, unsigned scene, const char *tag, h2o_mem_pool_t *pool)
{
    char *id = NULL;
    devcache_entry_t *e = devcache_slot(sub, scene, &id, pool);
    if (e == NULL || e->id == NULL || strcmp(e->id, id) != 0)
        return NULL;
    return tag == NULL || strcmp(seal_tag(e->sealed), tag) == 0 ? e : NULL;
}

/* The entry of (SUB, SCENE) for credential CREDTXT (base64url) and device key SEALED, as Redis holds
 * them: the cached one if it holds SEALED, else made (unsealed, parsed) in its slot. NULL if they
 * cannot be read. The entry belongs to the cache: use it at once, on this thread. */
static devcache_entry_t *devcache_get(const gw_conf_t *conf, const char *sub, unsigned scene, const char *credtxt,
                                      const char *sealed, h2o_mem_pool_t *pool)
{
    char *id = NULL;
    devcache_entry_t *e = devcache_slot(sub, scene, &id, pool);
    if (e == NULL)
        return NULL;
    if (e->id != NULL && strcmp(e->id, id) == 0 && strcmp(e->sealed, sealed) == 0)
        return e;
    uint8_t cred[HMT1_CRED_LEN + 4];
    size_t cl = 0;
    if (qr_b64url_decode(credtxt, strlen(credtxt), cred, sizeof(cred), &cl) != 0 || cl != HMT1_CRED_LEN)
        return NULL;
    const uint8_t *dk = data_key(conf);
    char aad[256], pem[1024];
    long pl = -1;
    qr_key_t *key = NULL;
    snprintf(aad, sizeof(aad), "hegate/qr/%s/%s/dev", sub, qr_scene_name(scene));
    if (dk != NULL)
        pl = auth_unseal(dk, aad, sealed, pem, sizeof(pem));
    if (pl > 0)
        key = qr_key_from_pem(pem, (size_t)pl);
    OPENSSL_cleanse(pem, sizeof(pem));
    if (key == NULL)
        return NULL;
    devcache_clear(e);
    if ((e->id = strdup(id)) == NULL || (e->sealed = strdup(sealed)) == NULL) {
        qr_key_free(key);
        devcache_clear(e);
        return NULL;
    }
    memcpy(e->cred, cred, HMT1_CRED_LEN);
    e->key = key;
    return e;
}

static void codes_answer(gw_task_t *o)
{
    codes_t *c = o->ctx;
    gw_req_t *greq = o->greq;
    h2o_req_t *req = greq->req;
    const gw_conf_t *conf = greq->gen->conf;
    if (c->out == OUT_CREDENTIAL) {
        char b[QR_BASE64URL_ENCODED_LEN(HMT1_CRED_LEN) + 1];
        qr_b64url_encode(c->cred, HMT1_CRED_LEN, b, sizeof(b), NULL);
        json_t *doc = json_object();
        json_object_set_new(doc, "credential", json_string(b));
        json_object_set_new(doc, "scene", json_string(qr_scene_name(c->scene)));
        json_object_set_new(doc, "serial",
                            json_integer((json_int_t)((uint32_t)c->cred[7] << 24 | (uint32_t)c->cred[8] << 16 |
                                                      (uint32_t)c->cred[9] << 8 | c->cred[10])));
        json_object_set_new(doc, "expires_at", json_integer(c->cred_exp));
        send_doc(greq, 200, doc);
        return;
    }
    unsigned ttl = (unsigned)(conf->qr.code_ttl_ms / 1000);
    if (ttl < 1)
        ttl = 1;
    if (ttl > 255)
        ttl = 255;
    uint8_t code[HMT1_LEN];
    if (qr_code_make(c->cred, c->signer, (uint32_t)c->now, (uint8_t)ttl, c->counter & HMT1_COUNTER_MAX, NULL, code) != 0) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the code cannot be made");
        return;
    }
    char text[HMT1_TEXT_LEN + 1];
    qr_code_to_text(code, text);
    gw_metrics_count(greq->thread->metrics, GW_MF_QR_CODES_ISSUED, scene_slot(c->scene));
    int64_t expires_at = c->now + ttl, refresh_after = c->now + ttl / 2;
    if (c->out == OUT_JSON) {
        json_t *doc = json_object();
        json_object_set_new(doc, "code", json_string(text));
        json_object_set_new(doc, "scene", json_string(qr_scene_name(c->scene)));
        json_object_set_new(doc, "expires_at", json_integer(expires_at));
        json_object_set_new(doc, "refresh_after", json_integer(refresh_after));
        send_doc(greq, 200, doc);
        return;
    }
    qr_matrix_t m;
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = -1;
    if (qr_matrix_encode(text, HMT1_TEXT_LEN, &m) == 0) {
        rc = c->out == OUT_PNG ? qr_render_png_alloc(&m, QR_PNG_SCALE, &img, &len)
                               : qr_render_svg_alloc(&m, QR_PNG_SCALE, (char **)&img, &len);
        qr_matrix_free(&m);
    }
    if (rc != 0) {
        gw_problem_send(greq, 500, "internal", "Internal Server Error", "the image cannot be rendered");
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    if (c->out == OUT_PNG)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("image/png"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("image/svg+xml"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    char *v = pool_printf(&req->pool, "%" PRId64, expires_at);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-hmt1-expires-at"), 0, NULL, v, strlen(v));
    v = pool_printf(&req->pool, "%" PRId64, refresh_after);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-hmt1-refresh-after"), 0, NULL, v, strlen(v));
    gw_req_add_common_headers(greq);
    h2o_iovec_t body = h2o_strdup(&req->pool, (const char *)img, len);
    free(img);
    h2o_send_inline(req, body.base, body.len);
}

static void on_cred_stored(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    codes_answer(o);
}

static void on_code_next(gw_task_t *o, const redisReply *reply, const char *err);
static void codes_send(gw_task_t *o, const char *tag);

static void on_busy_retry(h2o_timeout_entry_t *entry)
{
    codes_t *c = H2O_STRUCT_FROM_MEMBER(codes_t, retry, entry);
    codes_send(c->o, c->tag);
}

/* The script that finds (or starts) the resident's credential; TAG: the tail of the seal this thread has
 * cached for it (NULL: none), so that Redis answers "same" rather than send them again. */
static void codes_send(gw_task_t *o, const char *tag)
{
    codes_t *c = o->ctx;
    const gw_conf_t *conf = o->greq->gen->conf;
    h2o_mem_pool_t *pool = &o->greq->req->pool;
    c->tag = tag;
    /* an online credential is reused while it outlives a code by a comfortable margin */
    int64_t min_exp = c->now + (int64_t)(conf->qr.code_ttl_ms / 1000) + 300;
    const char *args[] = {
        pool_printf(pool, AUTH_RK_USER "%s", c->sub),
        pool_printf(pool, QR_RK "qrcred:%s:%s", c->sub, qr_scene_name(c->scene)),
        QR_RK "qrserial",
        pool_printf(pool, "%" PRId64, min_exp),
        c->out == OUT_CREDENTIAL ? "new" : "reuse",
        tag != NULL ? tag : "",
    };
    gw_task_eval(o, &scripts.code_next, on_code_next, 3, 6, args, NULL);
}

static void on_code_next(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    codes_t *c = o->ctx;
    gw_req_t *greq = o->greq;
    h2o_mem_pool_t *pool = &greq->req->pool;
    const gw_conf_t *conf = greq->gen->conf;
    qr_gen_t *g = gw_family_gen_data(greq);
    const char *what = gw_reply_str(reply, 0);
    if (strcmp(what, "nouser") == 0) {
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "the token does not belong to a resident");
        return;
    }
    if (strcmp(what, "ok") == 0) {
        devcache_entry_t *e = devcache_get(conf, c->sub, c->scene, gw_reply_str(reply, 1), gw_reply_str(reply, 2), pool);
        if (e == NULL) {
            gw_problem_send(greq, 500, "internal", "Internal Server Error", "the stored credential cannot be read");
            return;
        }
        memcpy(c->cred, e->cred, HMT1_CRED_LEN);
        c->signer = e->key;
        c->counter = (uint32_t)strtoul(gw_reply_str(reply, 3), NULL, 10);
        codes_answer(o);
        return;
    }
    if (strcmp(what, "same") == 0) { /* the credential and key this thread cached when the request started */
        devcache_entry_t *e = c->tag != NULL ? devcache_find(c->sub, c->scene, c->tag, pool) : NULL;
        if (e == NULL) { /* evicted meanwhile by another resident's code: ask again for all of it */
            codes_send(o, NULL);
            return;
        }
        memcpy(c->cred, e->cred, HMT1_CRED_LEN);
        c->signer = e->key;
        c->counter = (uint32_t)strtoul(gw_reply_str(reply, 1), NULL, 10);
        codes_answer(o);
        return;
    }
    if (strcmp(what, "busy") == 0) {
        if (++c->retries > QR_BUSY_RETRIES) {
            unavailable(greq);
            return;
        }
        c->retry.cb = on_busy_retry;
        h2o_timeout_link(greq->thread->loop, &gw_thread_timeout(greq->thread, QR_BUSY_RETRY_MS)->timeout, &c->retry);
        return;
    }
    if (strcmp(what, "new") != 0) {
        unavailable(greq);
        return;
    }
    /* a new credential: serial, pseudonym, entitlements, device key */
    unsigned long long serial = strtoull(gw_reply_str(reply, 1), NULL, 10);
    if (serial == 0 || serial > UINT32_MAX) {
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "credential serials are exhausted");
        return;
    }
    qr_credential_t cr = {.scene = (uint8_t)c->scene, .serial = (uint32_t)serial};
    c->cred_exp = c->now + (int64_t)(conf->qr.credential_ttl_ms / 1000);
    cr.expires = (uint32_t)c->cred_exp;
    qr_pseudonym(g->scene_secret[c->scene], 32, g->signer_kid, cr.serial, c->sub, strlen(c->sub), cr.pseudonym);
    if (c->scene == QR_SCENE_TRANSIT || c->scene == QR_SCENE_TOURISM) {
        qr_transit_t t = {.fare_class = 1, .concessions = 0, .operator_id = 1, .offline_cap_fen = 2000};
        const char *fc = gw_reply_str(reply, 2), *cc = gw_reply_str(reply, 3);
        if (*fc != '\0')
            t.fare_class = (uint8_t)strtoul(fc, NULL, 10);
        if (*cc != '\0')
            t.concessions = (uint8_t)strtoul(cc, NULL, 10);
        qr_transit_encode(&t, cr.entitlements);
    }
    char *sealed_dev = NULL;
    if (c->out == OUT_CREDENTIAL) {
        memcpy(cr.device_key, c->device_point, HMT1_POINT_LEN);
    } else {
        const uint8_t *dk = data_key(conf);
        char aad[256], pem[1024];
        snprintf(aad, sizeof(aad), "hegate/qr/%s/%s/dev", c->sub, qr_scene_name(c->scene));
        size_t pl = 0;
        /* generated as a qr_key_t and written out, not parsed back: parsing a PEM key costs ~0.7 ms */
        if (dk != NULL && (c->device = qr_key_generate()) != NULL && qr_key_private_pem(c->device, pem, sizeof(pem), &pl) == 0)
            sealed_dev = auth_seal(dk, aad, pem, pl);
        OPENSSL_cleanse(pem, sizeof(pem));
        if (sealed_dev == NULL) {
            gw_problem_send(greq, 500, "internal", "Internal Server Error", "the device key cannot be made");
            return;
        }
        qr_key_point(c->device, cr.device_key);
        c->signer = c->device;
    }
    if (qr_credential_issue(&cr, g->keys[0], c->cred) != 0) {
        free(sealed_dev);
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "the credential cannot be issued for this device key");
        return;
    }
    c->counter = 1;
    char credtxt[QR_BASE64URL_ENCODED_LEN(HMT1_CRED_LEN) + 1];
    qr_b64url_encode(c->cred, HMT1_CRED_LEN, credtxt, sizeof(credtxt), NULL);
    const char *scene = qr_scene_name(c->scene);
    const char *args[] = {
        c->out == OUT_CREDENTIAL ? pool_printf(pool, QR_RK "qrserial") : pool_printf(pool, QR_RK "qrcred:%s:%s", c->sub, scene),
        pool_printf(pool, QR_RK "qrs:%llu", serial),
        pool_printf(pool, QR_RK "qrsubs:%s", c->sub),
        credtxt,
        sealed_dev != NULL ? h2o_strdup(pool, sealed_dev, SIZE_MAX).base : "",
        pool_printf(pool, "%" PRId64, c->cred_exp),
        c->sub,
        scene,
        pool_printf(pool, "%" PRId64, c->cred_exp + 86400),
        pool_printf(pool, "%llu", serial),
    };
    free(sealed_dev);
    gw_task_eval(o, &scripts.cred_store, on_cred_stored, 3, 10, args, NULL);
}

static void codes_start(gw_req_t *greq, const char *sub, unsigned scene, qr_out_t out, const uint8_t *device_point)
{
    qr_gen_t *g = gw_family_gen_data(greq);
    if (scene == 0 || (g->scenes & QR_SCENE_BIT(scene)) == 0) {
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "unknown or disabled scene");
        return;
    }
    gw_task_t *o = gw_task_new(greq);
    codes_t *c = h2o_mem_alloc_shared(&greq->req->pool, sizeof(*c), codes_dispose);
    memset(c, 0, sizeof(*c));
    o->ctx = c;
    c->o = o;
    c->sub = sub;
    c->scene = scene;
    c->out = out;
    c->now = (int64_t)time(NULL);
    if (device_point != NULL)
        memcpy(c->device_point, device_point, HMT1_POINT_LEN);
    const char *tag = NULL;
    if (out != OUT_CREDENTIAL) {
        devcache_entry_t *e = devcache_find(sub, scene, NULL, &greq->req->pool);
        if (e != NULL)
            tag = h2o_strdup(&greq->req->pool, seal_tag(e->sealed), SIZE_MAX).base;
    }
    codes_send(o, tag);
}

static void codes_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    qr_body_t *b;
    if (gen_qr(greq) == NULL || (b = body_parse(greq, QR_BODY_CODES)) == NULL)
        return;
    codes_start(greq, cl->sub, b->scene, OUT_JSON, NULL);
}

/* GET /qr/v1/codes/{scene}.png|svg */
static void codes_image(gw_req_t *greq)
{
    h2o_iovec_t path = greq->req->path_normalized;
    const char *name = path.base + sizeof("/qr/v1/codes/") - 1;
    size_t nl = path.len - (sizeof("/qr/v1/codes/") - 1);
    qr_out_t out;
    if (nl > 4 && memcmp(name + nl - 4, ".png", 4) == 0)
        out = OUT_PNG;
    else if (nl > 4 && memcmp(name + nl - 4, ".svg", 4) == 0)
        out = OUT_SVG;
    else {
        gw_problem_send(greq, 404, "not-found", "Not Found", "no such city-code endpoint");
        return;
    }
    char scene_name[16];
    if (nl - 4 >= sizeof(scene_name)) {
        gw_problem_send(greq, 404, "not-found", "Not Found", "no such scene");
        return;
    }
    memcpy(scene_name, name, nl - 4);
    scene_name[nl - 4] = '\0';
    unsigned scene = qr_scene_from_name(scene_name);
    if (scene == 0) {
        gw_problem_send(greq, 404, "not-found", "Not Found", "no such scene");
        return;
    }
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    if (gen_qr(greq) == NULL)
        return;
    codes_start(greq, cl->sub, scene, out, NULL);
}

static void credentials_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    qr_body_t *b;
    if (gen_qr(greq) == NULL || (b = body_parse(greq, QR_BODY_CREDENTIALS)) == NULL)
        return;
    codes_start(greq, cl->sub, b->scene, OUT_CREDENTIAL, b->device_point);
}

/* ---- POST /qr/v1/verify ------------------------------------------------------------------------------ */

typedef struct {
    qr_code_t code;
    qr_reason_t reason;
    const char *role;
    char scan_id[32];
    char paytok[48];
} verify_t;

static unsigned result_slots[QR_UNAVAILABLE + 1];
static pthread_once_t result_slots_once = PTHREAD_ONCE_INIT;
static void result_slots_init(void)
{
    for (int r = QR_OK; r <= QR_UNAVAILABLE; ++r)
        result_slots[r] = gw_metrics_label_slot(GW_MF_QR_VERIFICATIONS, r == QR_OK ? "valid" : qr_reason_name((qr_reason_t)r));
}

static const char *result_name(qr_reason_t r)
{
    return r == QR_OK ? "valid" : qr_reason_name(r);
}

static qr_reason_t reason_from_name(const char *s)
{
    for (int r = QR_OK; r <= QR_UNAVAILABLE; ++r)
        if (strcmp(s, result_name((qr_reason_t)r)) == 0)
            return (qr_reason_t)r;
    return QR_UNAVAILABLE;
}

static void verify_answer(gw_req_t *greq, verify_t *v, json_t *claims)
{
    pthread_once(&result_slots_once, result_slots_init);
    gw_metrics_count(greq->thread->metrics, GW_MF_QR_VERIFICATIONS, result_slots[v->reason]);
    json_t *doc = json_object();
    if (v->reason == QR_OK) {
        json_object_set_new(doc, "valid", json_true());
        json_object_set_new(doc, "scene", json_string(qr_scene_name(v->code.scene)));
        json_object_set_new(doc, "scan_id", json_string(v->scan_id));
        json_object_set_new(doc, "claims", claims != NULL ? claims : json_object());
    } else {
        json_decref(claims);
        json_object_set_new(doc, "valid", json_false());
        json_object_set_new(doc, "reason", json_string(qr_reason_name(v->reason)));
    }
    send_doc(greq, 200, doc);
}

static void on_verified(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    gw_req_t *greq = o->greq;
    verify_t *v = o->ctx;
    v->reason = reason_from_name(gw_reply_str(reply, 0));
    if (v->reason == QR_UNAVAILABLE) {
        unavailable(greq);
        return;
    }
    if (v->reason != QR_OK) {
        verify_answer(greq, v, NULL);
        return;
    }
    const gw_conf_t *conf = greq->gen->conf;
    const char *sub = gw_reply_str(reply, 1);
    json_t *claims = json_object();
    char buf[256], masked[256], hx[2 * HMT1_ENTITLEMENTS_LEN + 1];
    const char *role = v->role;
    if (strcmp(role, "transit") == 0 || strcmp(role, "tourism") == 0) {
        hex(v->code.pseudonym, HMT1_PSEUDONYM_LEN, hx);
        json_object_set_new(claims, "pseudonym", json_string(hx));
    }
    if (strcmp(role, "transit") == 0) {
        qr_transit_t t;
        qr_transit_decode(v->code.entitlements, &t);
        json_object_set_new(claims, "fare_class", json_integer(t.fare_class));
        json_object_set_new(claims, "concessions", json_integer(t.concessions));
        static const char *const kinds[] = {"card:transit", "card:bus", "card:metro"};
        json_t *card = json_null();
        for (size_t i = 0; i != 3; ++i) {
            unseal_field(conf, sub, kinds[i], gw_reply_str(reply, 5 + i), buf, sizeof(buf));
            if (buf[0] != '\0') {
                mask_tail(buf, masked, sizeof(masked));
                json_decref(card);
                card = json_string(masked);
                break;
            }
        }
        json_object_set_new(claims, "transit_card", card);
    } else if (strcmp(role, "tourism") == 0) {
        hex(v->code.entitlements, HMT1_ENTITLEMENTS_LEN, hx);
        json_object_set_new(claims, "entitlements", json_string(hx));
    } else if (strcmp(role, "medical") == 0) {
        json_object_set_new(claims, "name", json_string(gw_reply_str(reply, 2)));
        unseal_field(conf, sub, "card:social", gw_reply_str(reply, 8), buf, sizeof(buf));
        mask_tail(buf, masked, sizeof(masked));
        json_object_set_new(claims, "social_card", buf[0] != '\0' ? json_string(masked) : json_null());
        json_object_set_new(claims, "insurance_status",
                            json_string(*gw_reply_str(reply, 9) != '\0' ? gw_reply_str(reply, 9) : "unknown"));
    } else if (strcmp(role, "government") == 0) {
        unseal_field(conf, sub, "name", gw_reply_str(reply, 3), buf, sizeof(buf));
        json_object_set_new(claims, "name", json_string(buf));
        unseal_field(conf, sub, "id_number", gw_reply_str(reply, 4), buf, sizeof(buf));
        mask_id(buf, masked, sizeof(masked));
        json_object_set_new(claims, "id_number", json_string(masked));
    } else if (strcmp(role, "merchant") == 0) {
        json_object_set_new(claims, "payment_token", json_string(v->paytok));
        json_object_set_new(claims, "payment_token_expires_in", json_integer(QR_PAYTOK_TTL));
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    verify_answer(greq, v, claims);
}

static void verify_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    qr_body_t *b;
    qr_gen_t *g;
    if ((g = gen_qr(greq)) == NULL)
        return;
    const gw_conf_t *conf = greq->gen->conf;
    const gw_client_conf_t *client = gw_conf_client(conf, cl->client_id);
    if (strcmp(cl->sub, cl->client_id) != 0 || client == NULL || client->roles.n == 0) {
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "only a scanner client with a role may verify codes");
        return;
    }
    if ((b = body_parse(greq, QR_BODY_VERIFY)) == NULL)
        return;
    h2o_mem_pool_t *pool = &greq->req->pool;
    verify_t *v = h2o_mem_alloc_pool(pool, sizeof(*v));
    memset(v, 0, sizeof(*v));
    uint32_t scenes = 0;
    for (size_t i = 0; i != client->roles.n; ++i)
        scenes |= qr_role_scenes(client->roles.v[i]);
    int64_t now = (int64_t)time(NULL);
    if (!b->code_readable) {
        v->reason = QR_MALFORMED;
        verify_answer(greq, v, NULL);
        return;
    }
    qr_verify_params_t p = {.trust = g->trust, .now = now, .skew = (uint32_t)(conf->qr.skew_ms / 1000), .scenes = scenes};
    v->reason = qr_code_verify(&p, b->code, HMT1_LEN, &v->code);
    if (v->reason == QR_MALFORMED || v->reason == QR_UNKNOWN_KEY || v->reason == QR_BAD_ISSUER_SIGNATURE) {
        verify_answer(greq, v, NULL); /* the serial is not the issuer's: nobody's history */
        return;
    }
    v->role = "";
    for (size_t i = 0; i != client->roles.n; ++i)
        if ((qr_role_scenes(client->roles.v[i]) & QR_SCENE_BIT(v->code.scene)) != 0) {
            v->role = client->roles.v[i];
            break;
        }
    auth_random_b64url(v->scan_id, 12);
    int paytok = v->reason == QR_OK && strcmp(v->role, "merchant") == 0;
    char paykey[128] = QR_RK "qrpay:-";
    if (paytok) {
        char h[65];
        auth_random_b64url(v->paytok, 24);
        auth_sha256_hex(v->paytok, strlen(v->paytok), h);
        snprintf(paykey, sizeof(paykey), QR_RK "qrpay:%s", h);
    }
    char kh[9];
    hex(v->code.kid, HMT1_KID_LEN, kh);
    int64_t keep = qr_code_valid_until(&v->code) - now + 1;
    gw_task_t *o = gw_task_new(greq);
    o->ctx = v;
    const char *args[] = {
        QR_RK "qrdenyz",
        pool_printf(pool, QR_RK "qrseen:%s:%" PRIu32 ":%" PRIu32, kh, v->code.serial, v->code.counter),
        pool_printf(pool, QR_RK "qrs:%" PRIu32, v->code.serial),
        h2o_strdup(pool, paykey, SIZE_MAX).base,
        pool_printf(pool, "%" PRIu32, v->code.serial),
        result_name(v->reason),
        v->reason == QR_OK || v->reason >= QR_BAD_DEVICE_SIGNATURE ? "1" : "0",
        pool_printf(pool, "%" PRId64, keep < 1 ? 1 : keep),
        pool_printf(pool, "%" PRId64, now),
        cl->client_id,
        v->role[0] != '\0' ? v->role : client->roles.v[0],
        qr_scene_name(v->code.scene),
        v->scan_id,
        QR_RK "qrscans:",
        AUTH_RK_USER,
        paytok ? "1" : "0",
        pool_printf(pool, "%d", QR_SCANS_CAP),
        pool_printf(pool, "%d", QR_PAYTOK_TTL),
    };
    gw_task_eval(o, &scripts.verify, on_verified, 4, 18, args, NULL);
}

/* ---- POST /qr/v1/credentials/revoke, GET /qr/v1/scans, POST /qr/v1/redeem ------------------------------ */

static void on_revoked(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    json_t *doc = json_object();
    json_object_set_new(doc, "revoked", json_integer(reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0));
    send_doc(o->greq, 200, doc);
}

static void revoke_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    if (gen_qr(greq) == NULL)
        return;
    h2o_mem_pool_t *pool = &greq->req->pool;
    const char *args[2 + QR_SCENE_MAX + 4];
    args[0] = QR_RK "qrdenyz";
    args[1] = pool_printf(pool, QR_RK "qrsubs:%s", cl->sub);
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s)
        args[1 + s] = pool_printf(pool, QR_RK "qrcred:%s:%s", cl->sub, qr_scene_name(s));
    args[2 + QR_SCENE_MAX] = pool_printf(pool, "%" PRId64, (int64_t)time(NULL));
    args[3 + QR_SCENE_MAX] = pool_printf(pool, "%" PRIu64, (uint64_t)(greq->gen->conf->qr.credential_ttl_ms / 1000));
    args[4 + QR_SCENE_MAX] = pool_printf(pool, "%d", QR_DENY_KEEP);
    args[5 + QR_SCENE_MAX] = QR_RK "qrs:";
    gw_task_eval(gw_task_new(greq), &scripts.revoke, on_revoked, 2 + QR_SCENE_MAX, 2 + QR_SCENE_MAX + 4, args, NULL);
}

static void on_scans(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    json_t *doc = json_object(), *list = json_array();
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i != reply->elements; ++i) {
        const char *s = gw_reply_str(reply, i);
        json_t *e = json_loads(s, 0, NULL);
        if (json_is_object(e))
            json_array_append(list, e);
        json_decref(e);
    }
    json_object_set_new(doc, "scans", list);
    send_doc(o->greq, 200, doc);
}

static void scans_get(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    char cap[16];
    snprintf(cap, sizeof(cap), "%d", QR_SCANS_CAP - 1);
    const char *argv[] = {"LRANGE", pool_printf(&greq->req->pool, QR_RK "qrscans:%s", cl->sub), "0",
                          h2o_strdup(&greq->req->pool, cap, SIZE_MAX).base};
    gw_task_command(gw_task_new(greq), on_scans, 4, argv, NULL);
}

static void on_redeemed(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    gw_req_t *greq = o->greq;
    const char *sub = gw_reply_str(reply, 0), *cards = gw_reply_str(reply, 1);
    if (*sub == '\0') {
        json_t *doc = json_object();
        json_object_set_new(doc, "error", json_string("invalid_token"));
        json_object_set_new(doc, "error_description", json_string("unknown, expired or already redeemed payment token"));
        send_doc(greq, 400, doc);
        return;
    }
    /* the card reference: an opaque, stable id of the resident's funding card (never its number) */
    char kind[32] = "";
    for (const char *p = cards; *p != '\0';) {
        size_t l = strcspn(p, ",");
        if (l != 0 && l < sizeof(kind) && (kind[0] == '\0' || (l == 4 && memcmp(p, "bank", 4) == 0))) {
            memcpy(kind, p, l);
            kind[l] = '\0';
        }
        p += l;
        if (*p == ',')
            ++p;
    }
    const uint8_t *dk = data_key(greq->gen->conf);
    if (kind[0] == '\0' || dk == NULL) {
        json_t *doc = json_object();
        json_object_set_new(doc, "error", json_string("no_funding_card"));
        json_object_set_new(doc, "error_description", json_string("the resident has no card to pay with"));
        send_doc(greq, 409, doc);
        return;
    }
    uint8_t sk[32];
    char ref[65], msg[256];
    auth_subkey(dk, "qr-card-ref", sk);
    int n = snprintf(msg, sizeof(msg), "%s/%s", sub, kind);
    auth_hmac_hex(sk, msg, (size_t)n, ref);
    OPENSSL_cleanse(sk, sizeof(sk));
    json_t *doc = json_object();
    json_object_set_new(doc, "card_reference", json_string(pool_printf(&greq->req->pool, "card_%.32s", ref)));
    json_object_set_new(doc, "card_kind", json_string(kind));
    send_doc(greq, 200, doc);
}

static void redeem_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table below) */
    qr_body_t *b;
    if (strcmp(cl->sub, cl->client_id) != 0) {
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "only the payment back end's client token may redeem");
        return;
    }
    if ((b = body_parse(greq, QR_BODY_REDEEM)) == NULL)
        return;
    char h[65];
    auth_sha256_hex(b->payment_token, strlen(b->payment_token), h);
    OPENSSL_cleanse(b->payment_token, sizeof(b->payment_token));
    const char *args[] = {pool_printf(&greq->req->pool, QR_RK "qrpay:%s", h), AUTH_RK_USER};
    gw_task_eval(gw_task_new(greq), &scripts.redeem, on_redeemed, 1, 2, args, NULL);
}

/* ---- dispatch -------------------------------------------------------------------------------------- */

/* ---- the /qr/v1 family -------------------------------------------------------------------------------- */

static const char *const scope_qr[] = {"qr", NULL}, *const scope_verify[] = {"qr.verify", NULL},
                         *const scope_redeem[] = {"payment.redeem", NULL};

#define RESIDENT (GW_AUTH_BEARER | GW_AUTH_OWN | GW_AUTH_RESIDENT)

static gw_endpoint_t qr_endpoints[] = {
    {.name = "trust", .path = "trust", .methods = GW_M_GET, .handle = trust},
    {.name = "scans", .path = "scans", .methods = GW_M_GET, .auth = RESIDENT, .handle = scans_get},
    {.name = "codes", .path = "codes", .methods = GW_M_POST, .auth = RESIDENT, .scopes = scope_qr, .handle = codes_post},
    {.name = "code-image",
     .path = "codes/",
     .subtree = 1,
     .methods = GW_M_GET,
     .auth = RESIDENT,
     .scopes = scope_qr,
     .handle = codes_image},
    {.name = "verify",
     .path = "verify",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = scope_verify,
     .handle = verify_post},
    {.name = "credentials",
     .path = "credentials",
     .methods = GW_M_POST,
     .auth = RESIDENT,
     .scopes = scope_qr,
     .handle = credentials_post},
    {.name = "credentials-revoke", .path = "credentials/revoke", .methods = GW_M_POST, .auth = RESIDENT, .handle = revoke_post},
    {.name = "redeem",
     .path = "redeem",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = scope_redeem,
     .handle = redeem_post},
};

static gw_family_t qr_family = {
    .name = "qr",
    .prefix = "/qr/v1",
    .owns_prefix = 1,
    .not_found = "no such city-code endpoint",
    .errors = GW_ERRORS_PROBLEM,
    .endpoints = qr_endpoints,
    .num_endpoints = sizeof(qr_endpoints) / sizeof(qr_endpoints[0]),
    .init = scripts_init,
    .gen_build = qr_gen_build,
    .gen_free = qr_gen_free,
};

void qr_http_register(void)
{
    gw_family_register(&qr_family);
}
