/*
 * auth/http/oidc.c — what OpenID Connect adds to the token answers (SPEC §6.2): the subject a client
 * sees (pairwise for partners, the city-wide pseudonym for first-party clients) and the ID token.
 *
 * Called by token.c (ID tokens with the tokens of a grant whose scope holds openid), session.c
 * (userinfo's sub) and authorize.c (the OpenID parameters of an authorization request; fuzzed by
 * tests/fuzz/fuzz_form.c). Pure computation on the generation's keys and the data key: no store, no logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/http/internal.h"
#include "crypto/crypto.h"

/* Pairwise (OIDC Core §8.1): HMAC-SHA-256 under a subkey of the data key over the sector and the
 * city-wide pseudonym; 128 bits in hex. Stable for one resident and one sector, unlinkable across
 * sectors without the key. */
int auth_subject_for(const gw_conf_t *conf, const gw_client_conf_t *client, const char *sub, char out[AUTH_SUB_MAX])
{
    if (client->subject_type == GW_SUBJECT_PUBLIC) {
        if (strlen(sub) >= AUTH_SUB_MAX)
            return -1;
        strcpy(out, sub);
        return 0;
    }
    const uint8_t *dk = auth_service_data_key(conf);
    if (dk == NULL)
        return -1;
    uint8_t k[32];
    char msg[512], mac[65];
    auth_subkey(dk, "pairwise-sub", k);
    int n = snprintf(msg, sizeof(msg), "%s\n%s", client->sector_identifier != NULL ? client->sector_identifier : client->id, sub);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return -1;
    auth_hmac_hex(k, msg, (size_t)n, mac);
    snprintf(out, AUTH_SUB_MAX, "p%.32s", mac);
    return 0;
}

const char *auth_oidc_request_read(const auth_form_t *f, auth_oidc_request_t *out)
{
    const char *prompt = auth_form_get(f, "prompt"), *max_age = auth_form_get(f, "max_age"), *nonce = auth_form_get(f, "nonce");
    *out = (auth_oidc_request_t){.max_age = -1};
    if (nonce != NULL && strlen(nonce) > AUTH_NONCE_MAX)
        return "the nonce is too long";
    for (const char *p = prompt != NULL ? prompt : ""; *p != '\0';) {
        size_t l = strcspn(p, " ");
        if (l == 4 && memcmp(p, "none", 4) == 0)
            out->prompt_none = 1;
        else if (l == 5 && memcmp(p, "login", 5) == 0)
            out->prompt_login = 1;
        else if (l != 0)
            return "unsupported prompt value (none and login are supported)";
        p += l;
        while (*p == ' ')
            ++p;
    }
    if (out->prompt_none && out->prompt_login)
        return "prompt=none cannot be combined with other values";
    if (max_age != NULL) {
        size_t n = strlen(max_age);
        if (n == 0 || n > 10 || strspn(max_age, "0123456789") != n)
            return "max_age must be a number of seconds";
        out->max_age = strtoll(max_age, NULL, 10);
    }
    return NULL;
}

char *auth_issue_id_token(const gw_gen_t *gen, const gw_client_conf_t *client, const auth_id_token_t *t)
{
    const gw_conf_t *conf = gen->conf;
    const auth_key_t *key = gen->token_keys != NULL ? auth_keyset_signer(gen->token_keys) : NULL;
    char sub[AUTH_SUB_MAX];
    if (key == NULL || auth_subject_for(conf, client, t->sub, sub) != 0)
        return NULL;
    /* at_hash: the left half of SHA-256 over the access token's ASCII, base64url (OIDC Core §3.1.3.6) */
    uint8_t md[CRYPTO_SHA256_LEN];
    char at_hash[CRYPTO_B64URL_LEN(CRYPTO_SHA256_LEN / 2) + 1];
    crypto_sha256(t->access_token, strlen(t->access_token), md);
    at_hash[crypto_b64url_encode(at_hash, md, CRYPTO_SHA256_LEN / 2)] = '\0';
    int64_t now = (int64_t)time(NULL);
    json_t *c = json_object();
    json_object_set_new(c, "iss", json_string(conf->issuer));
    json_object_set_new(c, "sub", json_string(sub));
    json_object_set_new(c, "aud", json_string(client->id));
    json_object_set_new(c, "azp", json_string(client->id));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(now + (int64_t)(conf->tokens.access_ttl_ms / 1000)));
    if (t->auth_time > 0)
        json_object_set_new(c, "auth_time", json_integer(t->auth_time));
    if (t->nonce != NULL && t->nonce[0] != '\0')
        json_object_set_new(c, "nonce", json_string(t->nonce));
    if (t->name != NULL && t->name[0] != '\0')
        json_object_set_new(c, "name", json_string(t->name)); /* masked (张*), never the name itself */
    json_object_set_new(c, "acr", json_string(t->acr));
    json_t *amr = json_array();
    /* RFC 8176: the password page, or (the device grant) approved on a second, signed-in device */
    json_array_append_new(amr, json_string(strcmp(t->acr, "cross-device") == 0 ? "mca" : "pwd"));
    json_object_set_new(c, "amr", amr);
    json_object_set_new(c, "at_hash", json_string(at_hash));
    if (t->sid != NULL && t->sid[0] != '\0')
        json_object_set_new(c, "sid", json_string(t->sid));
    char *tok = auth_jwt_sign_as(key, AUTH_JWT_ID, c);
    json_decref(c);
    return tok;
}
