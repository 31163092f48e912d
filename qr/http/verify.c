/*
 * qr/http/verify.c — POST /qr/v1/verify: a scanner client (client_credentials, scope qr.verify, with
 * roles) hands in a code and learns whether it is valid and the claims its role may see, or why not.
 * qr/ checks the signatures (qr_code_verify); one script decides revoked and replayed, records the scan
 * in the resident's history and reads the resident's fields. Called by the pipeline through the family's
 * table (family.c). It must never answer a role with another role's claims, nor keep an unsealed field
 * past the answer.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "qr/http/internal.h"

/* ---- what a scanner may see: hex, masks, unsealed fields --------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i != n; ++i) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
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
    if (sealed[0] == '\0' || (dk = qr_http_data_key(conf)) == NULL)
        return;
    char aad[256];
    snprintf(aad, sizeof(aad), "hegate/user/%s/%s", sub, field);
    if (auth_unseal(dk, aad, sealed, out, outsz) < 0)
        out[0] = '\0';
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
    qr_http_send_doc(greq, 200, doc);
}

static void on_verified(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    gw_req_t *greq = o->greq;
    verify_t *v = o->ctx;
    v->reason = reason_from_name(gw_reply_str(reply, 0));
    if (v->reason == QR_UNAVAILABLE) {
        qr_http_unavailable(greq);
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

void qr_http_verify_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    qr_body_t *b;
    qr_gen_t *g;
    if ((g = qr_http_gen(greq)) == NULL)
        return;
    const gw_conf_t *conf = greq->gen->conf;
    const gw_client_conf_t *client = gw_conf_client(conf, cl->client_id);
    if (strcmp(cl->sub, cl->client_id) != 0 || client == NULL || client->roles.n == 0) {
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "only a scanner client with a role may verify codes");
        return;
    }
    if ((b = qr_http_body_parse(greq, QR_BODY_VERIFY)) == NULL)
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
        qr_http_pool_printf(pool, QR_RK "qrseen:%s:%" PRIu32 ":%" PRIu32, kh, v->code.serial, v->code.counter),
        qr_http_pool_printf(pool, QR_RK "qrs:%" PRIu32, v->code.serial),
        h2o_strdup(pool, paykey, SIZE_MAX).base,
        qr_http_pool_printf(pool, "%" PRIu32, v->code.serial),
        result_name(v->reason),
        v->reason == QR_OK || v->reason >= QR_BAD_DEVICE_SIGNATURE ? "1" : "0",
        qr_http_pool_printf(pool, "%" PRId64, keep < 1 ? 1 : keep),
        qr_http_pool_printf(pool, "%" PRId64, now),
        cl->client_id,
        v->role[0] != '\0' ? v->role : client->roles.v[0],
        qr_scene_name(v->code.scene),
        v->scan_id,
        QR_RK "qrscans:",
        AUTH_RK_USER,
        paytok ? "1" : "0",
        qr_http_pool_printf(pool, "%d", QR_SCANS_CAP),
        qr_http_pool_printf(pool, "%d", QR_PAYTOK_TTL),
    };
    gw_task_eval(o, &qr_http_scripts()->verify, on_verified, 4, 18, args, NULL);
}
