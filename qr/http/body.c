/*
 * qr/http/body.c — the /qr/v1 request bodies: qr_body_parse (public in http.h for the fuzz target,
 * tests/fuzz/fuzz_qr_json.c) and the handlers' wrapper around it that answers 400 when it says no.
 * Every body is one JSON object of at most QR_BODY_MAX bytes; the parser must never crash on any
 * input nor keep memory past its return.
 */
#include <string.h>
#include "qr/http/internal.h"

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
        long pl = -1;
        qr_key_t *k = NULL;
        if (dk != NULL && (pl = crypto_b64url_decode(point, sizeof(point), dk, strlen(dk))) >= 0)
            k = crypto_key_from_point(point, (size_t)pl);
        if (k != NULL)
            crypto_key_point(k, out->device_point);
        else
            ret = -2;
        crypto_key_free(k);
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
qr_body_t *qr_http_body_parse(gw_req_t *greq, qr_body_kind_t kind)
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
