/*
 * qr/http/family.c — the /qr/v1 endpoint family (SPEC §7.3): its table (what the pipeline checks before
 * each handler runs), qr_http_register (main.c calls it at start-up), the per-generation state the
 * gateway builds and frees with every generation (the code keys, the trust list without its deny list,
 * the pseudonym secrets, lazily the trust list's signer), and the answer helpers every endpoint uses.
 * It never talks to Redis (the endpoints do) and never keeps a code or token key outside a generation.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "qr/http/internal.h"

#define QR_NOT_AFTER_OPEN 253402300799LL /* 9999-12-31: the signing key has no end yet */

/* ---- per-generation state -------------------------------------------------------------------------- */

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
        q = crypto_key_from_pem(p, (size_t)n, NULL, 0);
    BIO_free(b);
    return q;
}

static void qr_gen_free(void *p)
{
    qr_gen_t *g = p;
    if (g == NULL)
        return;
    for (size_t i = 0; i != g->nkeys; ++i)
        crypto_key_free(g->keys[i]);
    free(g->keys);
    free(g->not_before);
    free(g->not_after);
    qr_trust_free(g->trust);
    crypto_key_free(g->token_signer);
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
    if (n == 0 || !crypto_key_has_private(g->keys[0])) {
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

qr_key_t *qr_http_gen_token_signer(gw_req_t *greq, const char **kid)
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

/* ---- what every endpoint of the family uses ---------------------------------------------------------- */

qr_gen_t *qr_http_gen(gw_req_t *greq)
{
    qr_gen_t *g = gw_family_gen_data(greq);
    if (g == NULL)
        gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "no city-code keys are configured");
    return g;
}

void qr_http_send_doc(gw_req_t *greq, int status, json_t *doc)
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

void qr_http_unavailable(gw_req_t *greq)
{
    gw_problem_send(greq, 503, "unavailable", "Service Unavailable", "the city-code store is unavailable right now");
}

char *qr_http_pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return h2o_strdup(pool, buf, SIZE_MAX).base;
}

/* the process-wide data key (sealed device keys, pseudonym secrets), or NULL (logged) */
const uint8_t *qr_http_data_key(const gw_conf_t *conf)
{
    char err[256];
    const uint8_t *dk = auth_data_key(conf->keys_dir, err, sizeof(err));
    if (dk == NULL)
        gw_log("error", "city code: data key: %s", err);
    return dk;
}

/* ---- the /qr/v1 family -------------------------------------------------------------------------------- */

/* The endpoints, and what the pipeline has checked (matched, sized, authenticated) before each handler runs:
 *   GET  /qr/v1/trust                 public: the trust list as a compact JWS (newest token key)
 *   POST /qr/v1/codes                 resident, scope qr: a fresh online code
 *   GET  /qr/v1/codes/{scene}.png|svg same, as an image
 *   POST /qr/v1/verify                scanner client (client_credentials), scope qr.verify
 *   POST /qr/v1/credentials           resident, scope qr: an offline credential for a device key
 *   POST /qr/v1/credentials/revoke    resident: every credential of the resident on the deny list
 *   GET  /qr/v1/scans                 resident: who verified the resident's codes, newest first
 *   POST /qr/v1/redeem                payment back end, scope payment.redeem: a one-time token → card
 */
static const char *const scope_qr[] = {"qr", NULL}, *const scope_verify[] = {"qr.verify", NULL},
                         *const scope_redeem[] = {"payment.redeem", NULL};

#define RESIDENT (GW_AUTH_BEARER | GW_AUTH_OWN | GW_AUTH_RESIDENT)

static gw_endpoint_t qr_endpoints[] = {
    {.name = "trust", .path = "trust", .methods = GW_M_GET, .handle = qr_http_trust},
    {.name = "scans", .path = "scans", .methods = GW_M_GET, .auth = RESIDENT, .handle = qr_http_scans_get},
    {.name = "codes", .path = "codes", .methods = GW_M_POST, .auth = RESIDENT, .scopes = scope_qr, .handle = qr_http_codes_post},
    {.name = "code-image",
     .path = "codes/",
     .subtree = 1,
     .methods = GW_M_GET,
     .auth = RESIDENT,
     .scopes = scope_qr,
     .handle = qr_http_codes_image},
    {.name = "verify",
     .path = "verify",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = scope_verify,
     .handle = qr_http_verify_post},
    {.name = "credentials",
     .path = "credentials",
     .methods = GW_M_POST,
     .auth = RESIDENT,
     .scopes = scope_qr,
     .handle = qr_http_credentials_post},
    {.name = "credentials-revoke",
     .path = "credentials/revoke",
     .methods = GW_M_POST,
     .auth = RESIDENT,
     .handle = qr_http_revoke_post},
    {.name = "redeem",
     .path = "redeem",
     .methods = GW_M_POST,
     .auth = GW_AUTH_BEARER | GW_AUTH_OWN,
     .scopes = scope_redeem,
     .handle = qr_http_redeem_post},
};

static gw_family_t qr_family = {
    .name = "qr",
    .prefix = "/qr/v1",
    .owns_prefix = 1,
    .not_found = "no such city-code endpoint",
    .errors = GW_ERRORS_PROBLEM,
    .endpoints = qr_endpoints,
    .num_endpoints = sizeof(qr_endpoints) / sizeof(qr_endpoints[0]),
    .init = qr_http_scripts_init,
    .gen_build = qr_gen_build,
    .gen_free = qr_gen_free,
};

void qr_http_register(void)
{
    gw_family_register(&qr_family);
}
