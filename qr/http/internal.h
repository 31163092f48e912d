/*
 * qr/http/internal.h — what the files of qr/http/ share and nobody else may use: the Redis key
 * layout, the per-generation state (family.c builds it), the Lua scripts (scripts.c), the answer
 * helpers every endpoint uses and the handlers the family's table (family.c) points at.
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
#ifndef hegate_qr_http_internal_h
#define hegate_qr_http_internal_h

#include <stdint.h>
#include <jansson.h>
#include "gateway/gateway.h"
#include "crypto/crypto.h"
#include "qr/qr.h"
#include "qr/http/http.h"

#define QR_RK AUTH_RK
#define QR_SCANS_CAP 100
#define QR_PAYTOK_TTL 120
/* A revoked serial stays on the deny list this long after its credential expired: after that any code
 * of it is credential_expired anyway, to a gate whose clock is no more than a day late. */
#define QR_DENY_KEEP 86400

/* ---- family.c: per-generation state ------------------------------------------------------------------ */

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

/* the request's generation's city-code state; NULL after a 503 problem (no code keys configured) */
qr_gen_t *qr_http_gen(gw_req_t *greq);
/* the token key signing the trust list (*KID: its kid), built on first use; NULL when there is none */
qr_key_t *qr_http_gen_token_signer(gw_req_t *greq, const char **kid);

/* ---- family.c: answers and the data key ---------------------------------------------------------------- */

/* sends DOC (taken) as compact JSON with STATUS */
void qr_http_send_doc(gw_req_t *greq, int status, json_t *doc);
/* 503: the city-code store is unavailable */
void qr_http_unavailable(gw_req_t *greq);
/* a formatted string (at most 511 bytes) in POOL */
char *qr_http_pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* the process-wide data key (sealed device keys, pseudonym secrets), or NULL (logged) */
const uint8_t *qr_http_data_key(const gw_conf_t *conf);

/* ---- body.c ------------------------------------------------------------------------------------------ */

/* the request body parsed as KIND into OUT (pool memory); NULL after a 400 problem */
qr_body_t *qr_http_body_parse(gw_req_t *greq, qr_body_kind_t kind);

/* ---- scripts.c --------------------------------------------------------------------------------------- */

typedef struct {
    gw_store_script_t code_next, cred_store, verify, revoke, deny_list, redeem;
} qr_scripts_t;
/* loads the scripts' texts (once, at registration: the family's init hook) */
void qr_http_scripts_init(void);
const qr_scripts_t *qr_http_scripts(void);

/* ---- the handlers (trust.c, codes.c, verify.c, account.c), as the family's table names them ------------ */

void qr_http_trust(gw_req_t *greq);
void qr_http_codes_post(gw_req_t *greq);
void qr_http_codes_image(gw_req_t *greq);
void qr_http_credentials_post(gw_req_t *greq);
void qr_http_verify_post(gw_req_t *greq);
void qr_http_revoke_post(gw_req_t *greq);
void qr_http_scans_get(gw_req_t *greq);
void qr_http_redeem_post(gw_req_t *greq);

#endif
