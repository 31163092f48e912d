/*
 * qr/hmt1.c — the 204 bytes of a city code (SPEC §7.1), its text form and its validity rule (§7.2).
 *
 * Called by the gateway's /qr/v1 endpoints (issue credentials, make online codes, verify), by
 * cli.c (`hegate qr make|verify`) and by a transit gate linking qr/ alone. Writes only into the
 * caller's buffers. The verifier reports the FIRST failing rule in the SPEC's order and consumes
 * a code (the seen callback) only when every other rule holds, so a scanner of the wrong role
 * cannot burn it. It must never report QR_OK for a code it did not check completely.
 */
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "qr/internal.h"

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const reason_names[] = {
    [QR_OK] = "ok",
    [QR_MALFORMED] = "malformed",
    [QR_UNKNOWN_KEY] = "unknown_key",
    [QR_BAD_ISSUER_SIGNATURE] = "bad_issuer_signature",
    [QR_CREDENTIAL_EXPIRED] = "credential_expired",
    [QR_REVOKED] = "revoked",
    [QR_BAD_DEVICE_SIGNATURE] = "bad_device_signature",
    [QR_NOT_YET_VALID] = "not_yet_valid",
    [QR_EXPIRED] = "expired",
    [QR_WRONG_SCENE] = "wrong_scene",
    [QR_REPLAYED] = "replayed",
    [QR_UNAVAILABLE] = "unavailable",
};

static const char *const scene_names[QR_SCENE_MAX + 1] = {NULL, "transit", "medical", "payment", "government", "tourism"};

static const struct {
    const char *role;
    uint32_t scenes;
} roles[] = {
    {"transit", QR_SCENE_BIT(QR_SCENE_TRANSIT)},
    {"medical", QR_SCENE_BIT(QR_SCENE_MEDICAL)},
    {"merchant", QR_SCENE_BIT(QR_SCENE_PAYMENT)},
    {"government", QR_SCENE_BIT(QR_SCENE_GOVERNMENT)},
    {"tourism", QR_SCENE_BIT(QR_SCENE_TOURISM) | QR_SCENE_BIT(QR_SCENE_TRANSIT)},
};

const char *qr_reason_name(qr_reason_t r)
{
    return (unsigned)r < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[r] : "unavailable";
}

const char *qr_scene_name(unsigned scene)
{
    return scene <= QR_SCENE_MAX ? scene_names[scene] : NULL;
}

unsigned qr_scene_from_name(const char *name)
{
    for (unsigned s = 1; s <= QR_SCENE_MAX; ++s)
        if (strcmp(scene_names[s], name) == 0)
            return s;
    return 0;
}

uint32_t qr_role_scenes(const char *role)
{
    for (size_t i = 0; i != sizeof(roles) / sizeof(roles[0]); ++i)
        if (strcmp(roles[i].role, role) == 0)
            return roles[i].scenes;
    return 0;
}

static uint32_t scene_bit(unsigned scene)
{
    return scene >= 1 && scene <= QR_SCENE_MAX ? QR_SCENE_BIT(scene) : 0;
}

/* ---- entitlements, pseudonym, terminal -------------------------------------------------------- */

void qr_transit_encode(const qr_transit_t *t, uint8_t out[HMT1_ENTITLEMENTS_LEN])
{
    out[0] = t->fare_class;
    out[1] = t->concessions;
    out[2] = (uint8_t)(t->operator_id >> 8);
    out[3] = (uint8_t)t->operator_id;
    qr_put_be32(out + 4, t->offline_cap_fen);
}

void qr_transit_decode(const uint8_t in[HMT1_ENTITLEMENTS_LEN], qr_transit_t *t)
{
    t->fare_class = in[0];
    t->concessions = in[1];
    t->operator_id = (uint16_t)(in[2] << 8 | in[3]);
    t->offline_cap_fen = qr_get_be32(in + 4);
}

int qr_pseudonym(const uint8_t *secret, size_t secret_len, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, const char *resident,
                 size_t resident_len, uint8_t out[HMT1_PSEUDONYM_LEN])
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    uint8_t head[HMT1_KID_LEN + 4], digest[32];
    size_t dlen = 0;
    int ok;
    memcpy(head, kid, HMT1_KID_LEN);
    qr_put_be32(head + HMT1_KID_LEN, serial);
    ok = ctx != NULL && EVP_MAC_init(ctx, secret, secret_len, params) == 1 && EVP_MAC_update(ctx, head, sizeof(head)) == 1 &&
         EVP_MAC_update(ctx, (const uint8_t *)resident, resident_len) == 1 &&
         EVP_MAC_final(ctx, digest, &dlen, sizeof(digest)) == 1 && dlen == sizeof(digest);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (ok)
        memcpy(out, digest, HMT1_PSEUDONYM_LEN);
    return ok ? 0 : -1;
}

void qr_terminal_binding(const char *id, size_t len, uint8_t out[HMT1_TERMINAL_LEN])
{
    uint8_t digest[32];
    crypto_sha256(id, len, digest);
    memcpy(out, digest, HMT1_TERMINAL_LEN);
}

/* ---- bytes ----------------------------------------------------------------------------------- */

int qr_credential_issue(const qr_credential_t *c, const qr_key_t *issuer, uint8_t out[HMT1_CRED_LEN])
{
    qr_key_t *device;
    if (scene_bit(c->scene) == 0 || !crypto_key_has_private(issuer))
        return -1;
    if ((device = crypto_key_from_point(c->device_key, HMT1_POINT_LEN)) == NULL) /* never sign a key no one can use */
        return -1;
    crypto_key_free(device);
    out[HMT1_OFF_VERSION] = HMT1_VERSION;
    out[HMT1_OFF_SUITE] = HMT1_SUITE_P256;
    out[HMT1_OFF_SCENE] = c->scene;
    qr_key_id(issuer, out + HMT1_OFF_KID);
    qr_put_be32(out + HMT1_OFF_SERIAL, c->serial);
    qr_put_be32(out + HMT1_OFF_CRED_EXPIRES, c->expires);
    memcpy(out + HMT1_OFF_PSEUDONYM, c->pseudonym, HMT1_PSEUDONYM_LEN);
    memcpy(out + HMT1_OFF_ENTITLEMENTS, c->entitlements, HMT1_ENTITLEMENTS_LEN);
    memcpy(out + HMT1_OFF_DEVICE_KEY, c->device_key, HMT1_POINT_LEN);
    return crypto_es256_sign(issuer, out, HMT1_ISSUER_SIGNED_LEN, out + HMT1_OFF_ISSUER_SIG);
}

int qr_code_make(const uint8_t cred[HMT1_CRED_LEN], const qr_key_t *device, uint32_t gen, uint8_t ttl, uint32_t counter,
                 const uint8_t *terminal, uint8_t out[HMT1_LEN])
{
    uint8_t point[HMT1_POINT_LEN];
    if (cred[HMT1_OFF_VERSION] != HMT1_VERSION || cred[HMT1_OFF_SUITE] != HMT1_SUITE_P256 || counter > HMT1_COUNTER_MAX)
        return -1;
    crypto_key_point(device, point);
    if (memcmp(point, cred + HMT1_OFF_DEVICE_KEY, HMT1_POINT_LEN) != 0)
        return -1;
    memmove(out, cred, HMT1_CRED_LEN);
    qr_put_be32(out + HMT1_OFF_GEN, gen);
    out[HMT1_OFF_TTL] = ttl;
    out[HMT1_OFF_COUNTER] = (uint8_t)(counter >> 16);
    out[HMT1_OFF_COUNTER + 1] = (uint8_t)(counter >> 8);
    out[HMT1_OFF_COUNTER + 2] = (uint8_t)counter;
    if (terminal != NULL)
        memcpy(out + HMT1_OFF_TERMINAL, terminal, HMT1_TERMINAL_LEN);
    else
        memset(out + HMT1_OFF_TERMINAL, 0, HMT1_TERMINAL_LEN);
    return crypto_es256_sign(device, out, HMT1_DEVICE_SIGNED_LEN, out + HMT1_OFF_DEVICE_SIG);
}

int qr_code_parse(const uint8_t *b, size_t len, qr_code_t *c)
{
    if (len != HMT1_LEN || b[HMT1_OFF_VERSION] != HMT1_VERSION || b[HMT1_OFF_SUITE] != HMT1_SUITE_P256)
        return -1;
    c->version = b[HMT1_OFF_VERSION];
    c->suite = b[HMT1_OFF_SUITE];
    c->scene = b[HMT1_OFF_SCENE];
    memcpy(c->kid, b + HMT1_OFF_KID, HMT1_KID_LEN);
    c->serial = qr_get_be32(b + HMT1_OFF_SERIAL);
    c->cred_expires = qr_get_be32(b + HMT1_OFF_CRED_EXPIRES);
    memcpy(c->pseudonym, b + HMT1_OFF_PSEUDONYM, HMT1_PSEUDONYM_LEN);
    memcpy(c->entitlements, b + HMT1_OFF_ENTITLEMENTS, HMT1_ENTITLEMENTS_LEN);
    memcpy(c->device_key, b + HMT1_OFF_DEVICE_KEY, HMT1_POINT_LEN);
    memcpy(c->issuer_sig, b + HMT1_OFF_ISSUER_SIG, HMT1_SIG_LEN);
    c->gen = qr_get_be32(b + HMT1_OFF_GEN);
    c->ttl = b[HMT1_OFF_TTL];
    c->counter = (uint32_t)b[HMT1_OFF_COUNTER] << 16 | (uint32_t)b[HMT1_OFF_COUNTER + 1] << 8 | b[HMT1_OFF_COUNTER + 2];
    memcpy(c->terminal, b + HMT1_OFF_TERMINAL, HMT1_TERMINAL_LEN);
    memcpy(c->device_sig, b + HMT1_OFF_DEVICE_SIG, HMT1_SIG_LEN);
    return 0;
}

void qr_code_to_text(const uint8_t code[HMT1_LEN], char out[HMT1_TEXT_LEN + 1])
{
    memcpy(out, HMT1_PREFIX, HMT1_PREFIX_LEN);
    qr_base45_encode(code, HMT1_LEN, out + HMT1_PREFIX_LEN, HMT1_B45_LEN + 1, NULL); /* sizes are exact: cannot fail */
}

int qr_code_from_text(const char *text, size_t len, uint8_t out[HMT1_LEN])
{
    size_t n;
    if (len != HMT1_TEXT_LEN || memcmp(text, HMT1_PREFIX, HMT1_PREFIX_LEN) != 0)
        return -1;
    if (qr_base45_decode(text + HMT1_PREFIX_LEN, HMT1_B45_LEN, out, HMT1_LEN, &n) != 0 || n != HMT1_LEN)
        return -1;
    return 0;
}

int64_t qr_code_valid_until(const qr_code_t *c)
{
    return (int64_t)c->gen + c->ttl + HMT1_GRACE;
}

/* ---- the validity rule ------------------------------------------------------------------------ */

static qr_reason_t check_denied(const qr_verify_params_t *p, const qr_code_t *c)
{
    int r;
    if (qr_trust_is_denied(p->trust, c->serial))
        return QR_REVOKED;
    if (p->denied == NULL)
        return QR_OK;
    r = p->denied(p->denied_ctx, c->kid, c->serial);
    return r == 0 ? QR_OK : r == 1 ? QR_REVOKED : QR_UNAVAILABLE;
}

static qr_reason_t check_seen(const qr_verify_params_t *p, const qr_code_t *c)
{
    int r;
    if (p->seen == NULL)
        return QR_OK;
    r = p->seen(p->seen_ctx, c->kid, c->serial, c->counter, p->now, qr_code_valid_until(c));
    return r == 0 ? QR_OK : r == 1 ? QR_REPLAYED : QR_UNAVAILABLE;
}

/* The rules after "malformed", in the SPEC's order, on the parsed C of the raw bytes B. */
static qr_reason_t verify_parsed(const qr_verify_params_t *p, const uint8_t *b, const qr_code_t *c)
{
    const qr_key_t *issuer = p->trust != NULL ? qr_trust_find(p->trust, c->kid, c->scene, p->now) : NULL;
    qr_reason_t r;
    if (issuer == NULL)
        return QR_UNKNOWN_KEY;
    if (qr_ecdsa_verify(issuer, b, HMT1_ISSUER_SIGNED_LEN, c->issuer_sig, HMT1_SIG_LEN) != 0)
        return QR_BAD_ISSUER_SIGNATURE;
    if (p->now > (int64_t)c->cred_expires)
        return QR_CREDENTIAL_EXPIRED;
    if ((r = check_denied(p, c)) != QR_OK)
        return r;
    if (qr_ecdsa_verify_point(c->device_key, HMT1_POINT_LEN, b, HMT1_DEVICE_SIGNED_LEN, c->device_sig, HMT1_SIG_LEN) != 0)
        return QR_BAD_DEVICE_SIGNATURE;
    if (p->now < (int64_t)c->gen - (int64_t)p->skew)
        return QR_NOT_YET_VALID;
    if (p->now > qr_code_valid_until(c))
        return QR_EXPIRED;
    if ((p->scenes & scene_bit(c->scene)) == 0)
        return QR_WRONG_SCENE;
    return check_seen(p, c); /* last: consumes the code */
}

qr_reason_t qr_code_verify(const qr_verify_params_t *p, const uint8_t *bytes, size_t len, qr_code_t *out)
{
    qr_code_t c;
    if (qr_code_parse(bytes, len, &c) != 0)
        return QR_MALFORMED;
    if (out != NULL)
        *out = c;
    return verify_parsed(p, bytes, &c);
}

qr_reason_t qr_code_verify_text(const qr_verify_params_t *p, const char *text, size_t len, qr_code_t *out)
{
    uint8_t bytes[HMT1_LEN];
    if (qr_code_from_text(text, len, bytes) != 0)
        return QR_MALFORMED;
    return qr_code_verify(p, bytes, sizeof(bytes), out);
}

/* ---- the offline seen-set --------------------------------------------------------------------- */

int qr_seenset_init(qr_seenset_t *s, qr_seen_slot_t *slots, size_t nslots)
{
    if (nslots < QR_SEEN_WINDOW || RAND_bytes((unsigned char *)&s->seed, sizeof(s->seed)) != 1)
        return -1;
    memset(slots, 0, nslots * sizeof(*slots));
    s->slots = slots;
    s->nslots = nslots;
    return 0;
}

static uint64_t mix64(uint64_t x) /* splitmix64's finalizer */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* a key's two windows (two-choice hashing): it is stored in the one with more room, looked for in both */
static void seen_homes(const qr_seenset_t *s, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, uint32_t counter,
                       size_t home[2])
{
    uint64_t h = mix64(mix64(s->seed ^ ((uint64_t)qr_get_be32(kid) << 32 | serial)) ^ counter ^ (s->seed << 24));
    home[0] = (size_t)(h % s->nslots);
    home[1] = (size_t)(mix64(h ^ s->seed) % s->nslots);
}

static int slot_live(const qr_seen_slot_t *e, int64_t now)
{
    return e->until != 0 && e->until >= now;
}

int qr_seenset_check_and_mark(void *ctx, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, uint32_t counter, int64_t now,
                              int64_t keep_until)
{
    qr_seenset_t *s = ctx;
    size_t home[2];
    seen_homes(s, kid, serial, counter, home);
    qr_seen_slot_t *free_slot[2] = {NULL, NULL};
    unsigned nfree[2] = {0, 0};
    for (int w = 0; w != 2; ++w) {
        for (size_t i = 0; i != QR_SEEN_WINDOW; ++i) {
            qr_seen_slot_t *e = &s->slots[(home[w] + i) % s->nslots];
            if (!slot_live(e, now)) {
                if (free_slot[w] == NULL)
                    free_slot[w] = e;
                ++nfree[w];
            } else if (e->serial == serial && e->counter == counter && memcmp(e->kid, kid, HMT1_KID_LEN) == 0) {
                return 1;
            }
        }
    }
    if (free_slot[0] == NULL && free_slot[1] == NULL)
        return -1; /* both windows full of live entries: fail closed rather than forget one */
    qr_seen_slot_t *slot = free_slot[nfree[1] > nfree[0]];
    slot->until = keep_until > now ? keep_until : now;
    if (slot->until == 0)
        slot->until = 1;
    slot->serial = serial;
    slot->counter = counter;
    memcpy(slot->kid, kid, HMT1_KID_LEN);
    return 0;
}
