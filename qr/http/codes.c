/*
 * qr/http/codes.c — POST /qr/v1/codes (a fresh online code as JSON), GET /qr/v1/codes/{scene}.png|svg
 * (the same as an image) and POST /qr/v1/credentials (an offline credential for the phone's own device
 * key), for a resident with scope qr; called by the pipeline through the family's table (family.c). An
 * online code is signed by a device key the gateway keeps sealed in Redis beside the credential; a
 * per-thread cache holds it unsealed. It must never store a device key unsealed, nor sign with a cached
 * key unless Redis still holds the very seal it came from.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "qr/http/internal.h"

#define QR_PNG_SCALE 8

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
    crypto_key_free(c->device);
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
    crypto_key_free(e->key);
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
    if (crypto_b64url_decode(cred, sizeof(cred), credtxt, strlen(credtxt)) != HMT1_CRED_LEN)
        return NULL;
    const uint8_t *dk = qr_http_data_key(conf);
    char aad[256], pem[1024];
    long pl = -1;
    qr_key_t *key = NULL;
    snprintf(aad, sizeof(aad), "hegate/qr/%s/%s/dev", sub, qr_scene_name(scene));
    if (dk != NULL)
        pl = auth_unseal(dk, aad, sealed, pem, sizeof(pem));
    if (pl > 0)
        key = crypto_key_from_pem(pem, (size_t)pl, NULL, 0);
    OPENSSL_cleanse(pem, sizeof(pem));
    if (key == NULL)
        return NULL;
    devcache_clear(e);
    if ((e->id = strdup(id)) == NULL || (e->sealed = strdup(sealed)) == NULL) {
        crypto_key_free(key);
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
        char b[CRYPTO_B64URL_LEN(HMT1_CRED_LEN) + 1];
        crypto_b64url_encode(b, c->cred, HMT1_CRED_LEN);
        json_t *doc = json_object();
        json_object_set_new(doc, "credential", json_string(b));
        json_object_set_new(doc, "scene", json_string(qr_scene_name(c->scene)));
        json_object_set_new(doc, "serial",
                            json_integer((json_int_t)((uint32_t)c->cred[7] << 24 | (uint32_t)c->cred[8] << 16 |
                                                      (uint32_t)c->cred[9] << 8 | c->cred[10])));
        json_object_set_new(doc, "expires_at", json_integer(c->cred_exp));
        qr_http_send_doc(greq, 200, doc);
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
        qr_http_send_doc(greq, 200, doc);
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
    char *v = qr_http_pool_printf(&req->pool, "%" PRId64, expires_at);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-hmt1-expires-at"), 0, NULL, v, strlen(v));
    v = qr_http_pool_printf(&req->pool, "%" PRId64, refresh_after);
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
        qr_http_pool_printf(pool, AUTH_RK_USER "%s", c->sub),
        qr_http_pool_printf(pool, QR_RK "qrcred:%s:%s", c->sub, qr_scene_name(c->scene)),
        QR_RK "qrserial",
        qr_http_pool_printf(pool, "%" PRId64, min_exp),
        c->out == OUT_CREDENTIAL ? "new" : "reuse",
        tag != NULL ? tag : "",
    };
    gw_task_eval(o, &qr_http_scripts()->code_next, on_code_next, 3, 6, args, NULL);
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
            qr_http_unavailable(greq);
            return;
        }
        c->retry.cb = on_busy_retry;
        h2o_timeout_link(greq->thread->loop, &gw_thread_timeout(greq->thread, QR_BUSY_RETRY_MS)->timeout, &c->retry);
        return;
    }
    if (strcmp(what, "new") != 0) {
        qr_http_unavailable(greq);
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
        const uint8_t *dk = qr_http_data_key(conf);
        char aad[256], pem[1024];
        snprintf(aad, sizeof(aad), "hegate/qr/%s/%s/dev", c->sub, qr_scene_name(c->scene));
        size_t pl = 0;
        /* generated as a qr_key_t and written out, not parsed back: parsing a PEM key costs ~0.7 ms */
        if (dk != NULL && (c->device = crypto_key_generate()) != NULL &&
            crypto_key_private_pem(c->device, pem, sizeof(pem), &pl) == 0)
            sealed_dev = auth_seal(dk, aad, pem, pl);
        OPENSSL_cleanse(pem, sizeof(pem));
        if (sealed_dev == NULL) {
            gw_problem_send(greq, 500, "internal", "Internal Server Error", "the device key cannot be made");
            return;
        }
        crypto_key_point(c->device, cr.device_key);
        c->signer = c->device;
    }
    if (qr_credential_issue(&cr, g->keys[0], c->cred) != 0) {
        free(sealed_dev);
        gw_problem_send(greq, 400, "bad-request", "Bad Request", "the credential cannot be issued for this device key");
        return;
    }
    c->counter = 1;
    char credtxt[CRYPTO_B64URL_LEN(HMT1_CRED_LEN) + 1];
    crypto_b64url_encode(credtxt, c->cred, HMT1_CRED_LEN);
    const char *scene = qr_scene_name(c->scene);
    const char *args[] = {
        c->out == OUT_CREDENTIAL ? qr_http_pool_printf(pool, QR_RK "qrserial")
                                 : qr_http_pool_printf(pool, QR_RK "qrcred:%s:%s", c->sub, scene),
        qr_http_pool_printf(pool, QR_RK "qrs:%llu", serial),
        qr_http_pool_printf(pool, QR_RK "qrsubs:%s", c->sub),
        credtxt,
        sealed_dev != NULL ? h2o_strdup(pool, sealed_dev, SIZE_MAX).base : "",
        qr_http_pool_printf(pool, "%" PRId64, c->cred_exp),
        c->sub,
        scene,
        qr_http_pool_printf(pool, "%" PRId64, c->cred_exp + 86400),
        qr_http_pool_printf(pool, "%llu", serial),
    };
    free(sealed_dev);
    gw_task_eval(o, &qr_http_scripts()->cred_store, on_cred_stored, 3, 10, args, NULL);
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

void qr_http_codes_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    qr_body_t *b;
    if (qr_http_gen(greq) == NULL || (b = qr_http_body_parse(greq, QR_BODY_CODES)) == NULL)
        return;
    codes_start(greq, cl->sub, b->scene, OUT_JSON, NULL);
}

/* GET /qr/v1/codes/{scene}.png|svg */
void qr_http_codes_image(gw_req_t *greq)
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
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    if (qr_http_gen(greq) == NULL)
        return;
    codes_start(greq, cl->sub, scene, out, NULL);
}

void qr_http_credentials_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    qr_body_t *b;
    if (qr_http_gen(greq) == NULL || (b = qr_http_body_parse(greq, QR_BODY_CREDENTIALS)) == NULL)
        return;
    codes_start(greq, cl->sub, b->scene, OUT_CREDENTIAL, b->device_point);
}
