/*
 * qr/http/account.c — what follows issuance: POST /qr/v1/credentials/revoke (a resident puts every one
 * of their credentials on the deny list), GET /qr/v1/scans (who verified the resident's codes, newest
 * first) and POST /qr/v1/redeem (the payment back end trades a one-time payment token for a card
 * reference). Called by the pipeline through the family's table (family.c). It must never answer with a
 * card number: a card reference is an HMAC of the card's kind under a data-key subkey.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "qr/http/internal.h"

static void on_revoked(gw_task_t *o, const redisReply *reply, const char *err)
{
    if (gw_task_store_failed(o, reply, err))
        return;
    json_t *doc = json_object();
    json_object_set_new(doc, "revoked", json_integer(reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0));
    qr_http_send_doc(o->greq, 200, doc);
}

void qr_http_revoke_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    if (qr_http_gen(greq) == NULL)
        return;
    h2o_mem_pool_t *pool = &greq->req->pool;
    const char *args[2 + QR_SCENE_MAX + 4];
    args[0] = QR_RK "qrdenyz";
    args[1] = qr_http_pool_printf(pool, QR_RK "qrsubs:%s", cl->sub);
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s)
        args[1 + s] = qr_http_pool_printf(pool, QR_RK "qrcred:%s:%s", cl->sub, qr_scene_name(s));
    args[2 + QR_SCENE_MAX] = qr_http_pool_printf(pool, "%" PRId64, (int64_t)time(NULL));
    args[3 + QR_SCENE_MAX] = qr_http_pool_printf(pool, "%" PRIu64, (uint64_t)(greq->gen->conf->qr.credential_ttl_ms / 1000));
    args[4 + QR_SCENE_MAX] = qr_http_pool_printf(pool, "%d", QR_DENY_KEEP);
    args[5 + QR_SCENE_MAX] = QR_RK "qrs:";
    gw_task_eval(gw_task_new(greq), &qr_http_scripts()->revoke, on_revoked, 2 + QR_SCENE_MAX, 2 + QR_SCENE_MAX + 4, args, NULL);
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
    qr_http_send_doc(o->greq, 200, doc);
}

void qr_http_scans_get(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    char cap[16];
    snprintf(cap, sizeof(cap), "%d", QR_SCANS_CAP - 1);
    const char *argv[] = {"LRANGE", qr_http_pool_printf(&greq->req->pool, QR_RK "qrscans:%s", cl->sub), "0",
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
        qr_http_send_doc(greq, 400, doc);
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
    const uint8_t *dk = qr_http_data_key(greq->gen->conf);
    if (kind[0] == '\0' || dk == NULL) {
        json_t *doc = json_object();
        json_object_set_new(doc, "error", json_string("no_funding_card"));
        json_object_set_new(doc, "error_description", json_string("the resident has no card to pay with"));
        qr_http_send_doc(greq, 409, doc);
        return;
    }
    uint8_t sk[32];
    char ref[65], msg[256];
    auth_subkey(dk, "qr-card-ref", sk);
    int n = snprintf(msg, sizeof(msg), "%s/%s", sub, kind);
    auth_hmac_hex(sk, msg, (size_t)n, ref);
    OPENSSL_cleanse(sk, sizeof(sk));
    json_t *doc = json_object();
    json_object_set_new(doc, "card_reference", json_string(qr_http_pool_printf(&greq->req->pool, "card_%.32s", ref)));
    json_object_set_new(doc, "card_kind", json_string(kind));
    qr_http_send_doc(greq, 200, doc);
}

void qr_http_redeem_post(gw_req_t *greq)
{
    const auth_claims_t *cl = greq->claims; /* checked by the pipeline (the table in family.c) */
    qr_body_t *b;
    if (strcmp(cl->sub, cl->client_id) != 0) {
        gw_problem_send(greq, 403, "forbidden", "Forbidden", "only the payment back end's client token may redeem");
        return;
    }
    if ((b = qr_http_body_parse(greq, QR_BODY_REDEEM)) == NULL)
        return;
    char h[65];
    auth_sha256_hex(b->payment_token, strlen(b->payment_token), h);
    OPENSSL_cleanse(b->payment_token, sizeof(b->payment_token));
    const char *args[] = {qr_http_pool_printf(&greq->req->pool, QR_RK "qrpay:%s", h), AUTH_RK_USER};
    gw_task_eval(gw_task_new(greq), &qr_http_scripts()->redeem, on_redeemed, 1, 2, args, NULL);
}
