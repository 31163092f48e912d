/*
 * tests/unit/qr/test_hmt1.c — HMT1 codes (SPEC §7.1/§7.2): bytes, text form, and the validity rule —
 * every reason provoked on purpose, the SPEC's order of reasons, replay and the seen-set.
 *
 * Keys are made fresh per run; the clock is the constant NOW, never the machine's.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "tests/unit/unit.h"
#include "qr/qr.h"

#define NOW 1750000000
#define SKEW 20
#define SERIAL 1001
#define REVOKED_SERIAL 666

static const uint8_t n_be[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};

typedef struct {
    qr_key_t *issuer, *device, *stranger; /* stranger: trusted by no one */
    qr_trust_t *trust;
    qr_seen_slot_t slots[256];
    qr_seenset_t seen;
} fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    (void)state;
    uint32_t deny[] = {REVOKED_SERIAL, 7};
    fx.issuer = crypto_key_generate();
    fx.device = crypto_key_generate();
    fx.stranger = crypto_key_generate();
    fx.trust = qr_trust_new(NOW);
    if (fx.issuer == NULL || fx.device == NULL || fx.stranger == NULL || fx.trust == NULL)
        return -1;
    if (qr_trust_add_key(fx.trust, fx.issuer, QR_SCENE_BIT(QR_SCENE_TRANSIT) | QR_SCENE_BIT(QR_SCENE_TOURISM), NOW - 86400,
                         NOW + 86400) != 0)
        return -1;
    return qr_trust_set_deny(fx.trust, deny, 2);
}

static int teardown(void **state)
{
    (void)state;
    crypto_key_free(fx.issuer);
    crypto_key_free(fx.device);
    crypto_key_free(fx.stranger);
    qr_trust_free(fx.trust);
    return 0;
}

static void make_credential(uint8_t cred[HMT1_CRED_LEN], const qr_key_t *issuer, unsigned scene, uint32_t serial, uint32_t expires)
{
    static const uint8_t secret[] = "per-scene secret for tests";
    qr_credential_t c = {.scene = (uint8_t)scene, .serial = serial, .expires = expires};
    qr_transit_t t = {.fare_class = 2, .concessions = 0x05, .operator_id = 0x0102, .offline_cap_fen = 500};
    uint8_t kid[4];
    qr_key_id(issuer, kid);
    assert_int_equal(qr_pseudonym(secret, sizeof(secret) - 1, kid, serial, "resident-0001", 13, c.pseudonym), 0);
    qr_transit_encode(&t, c.entitlements);
    crypto_key_point(fx.device, c.device_key);
    assert_int_equal(qr_credential_issue(&c, issuer, cred), 0);
}

typedef struct {
    const qr_key_t *issuer;
    unsigned scene;
    uint32_t serial, expires, gen, counter;
    uint8_t ttl;
} spec_t;

static spec_t default_spec(void)
{
    return (spec_t){.issuer = fx.issuer,
                    .scene = QR_SCENE_TRANSIT,
                    .serial = SERIAL,
                    .expires = NOW + 3600,
                    .gen = NOW,
                    .counter = 1,
                    .ttl = 60};
}

static void make_code(const spec_t *s, uint8_t code[HMT1_LEN])
{
    uint8_t cred[HMT1_CRED_LEN];
    make_credential(cred, s->issuer, s->scene, s->serial, s->expires);
    assert_int_equal(qr_code_make(cred, fx.device, s->gen, s->ttl, s->counter, NULL, code), 0);
}

static qr_verify_params_t params(int64_t now, uint32_t scenes)
{
    return (qr_verify_params_t){.trust = fx.trust, .now = now, .skew = SKEW, .scenes = scenes};
}

static qr_reason_t verify(const uint8_t code[HMT1_LEN], int64_t now, uint32_t scenes)
{
    qr_verify_params_t p = params(now, scenes);
    return qr_code_verify(&p, code, HMT1_LEN, NULL);
}

#define TRANSIT QR_SCENE_BIT(QR_SCENE_TRANSIT)
#define assert_reason(got, want) assert_string_equal(qr_reason_name(got), qr_reason_name(want))

/* ---- bytes and text ---------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN], back[HMT1_LEN], kid[4], term[4];
    char text[HMT1_TEXT_LEN + 1];
    qr_code_t c;
    qr_transit_t t;
    s.counter = 0xABCDEF;
    make_code(&s, code);
    assert_int_equal(qr_code_parse(code, HMT1_LEN, &c), 0);
    qr_key_id(fx.issuer, kid);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.suite, 1);
    assert_int_equal(c.scene, QR_SCENE_TRANSIT);
    assert_memory_equal(c.kid, kid, 4);
    assert_int_equal(c.serial, SERIAL);
    assert_int_equal(c.cred_expires, NOW + 3600);
    assert_int_equal(c.gen, NOW);
    assert_int_equal(c.ttl, 60);
    assert_int_equal(c.counter, 0xABCDEF);
    memset(term, 0, 4);
    assert_memory_equal(c.terminal, term, 4);
    assert_int_equal(qr_code_valid_until(&c), NOW + 60 + 5);
    qr_transit_decode(c.entitlements, &t);
    assert_int_equal(t.fare_class, 2);
    assert_int_equal(t.concessions, 5);
    assert_int_equal(t.operator_id, 0x0102);
    assert_int_equal(t.offline_cap_fen, 500);
    /* big-endian on the wire */
    assert_int_equal(code[7], 0);
    assert_int_equal(code[10], SERIAL & 0xFF);
    assert_int_equal(code[133], 0xAB);
    assert_int_equal(code[135], 0xEF);

    qr_code_to_text(code, text);
    assert_int_equal(strlen(text), HMT1_TEXT_LEN);
    assert_int_equal(strlen(text), 311);
    assert_memory_equal(text, "HMT1:", 5);
    for (size_t i = 0; i != HMT1_TEXT_LEN; ++i)
        assert_non_null(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", text[i]));
    assert_int_equal(qr_code_from_text(text, strlen(text), back), 0);
    assert_memory_equal(back, code, HMT1_LEN);
    qr_verify_params_t p = params(NOW, TRANSIT);
    assert_reason(qr_code_verify_text(&p, text, strlen(text), &c), QR_OK);
}

static void test_text_refusals(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN], back[HMT1_LEN];
    char text[HMT1_TEXT_LEN + 2];
    make_code(&s, code);
    qr_code_to_text(code, text);
    assert_int_equal(qr_code_from_text(text, HMT1_TEXT_LEN - 1, back), -1);
    text[HMT1_TEXT_LEN] = 'A';
    assert_int_equal(qr_code_from_text(text, HMT1_TEXT_LEN + 1, back), -1);
    text[HMT1_TEXT_LEN] = '\0';
    text[0] = 'h';
    assert_int_equal(qr_code_from_text(text, HMT1_TEXT_LEN, back), -1); /* the prefix is upper case */
    text[0] = 'H';
    text[100] = 'a';
    assert_int_equal(qr_code_from_text(text, HMT1_TEXT_LEN, back), -1);
    memcpy(text + 5 + 99, ":::", 3); /* a triple above 65535 */
    assert_int_equal(qr_code_from_text(text, HMT1_TEXT_LEN, back), -1);
    qr_verify_params_t p = params(NOW, TRANSIT);
    assert_reason(qr_code_verify_text(&p, text, HMT1_TEXT_LEN, NULL), QR_MALFORMED);
    assert_reason(qr_code_verify_text(&p, "", 0, NULL), QR_MALFORMED);
}

static void test_issue_and_make_refusals(void **state)
{
    (void)state;
    uint8_t cred[HMT1_CRED_LEN], code[HMT1_LEN];
    qr_credential_t c = {.scene = QR_SCENE_TRANSIT, .serial = 1, .expires = NOW};
    crypto_key_point(fx.device, c.device_key);
    c.device_key[0] = 0x07; /* not a point */
    assert_int_equal(qr_credential_issue(&c, fx.issuer, cred), -1);
    crypto_key_point(fx.device, c.device_key);
    c.scene = 6;
    assert_int_equal(qr_credential_issue(&c, fx.issuer, cred), -1);
    c.scene = 0;
    assert_int_equal(qr_credential_issue(&c, fx.issuer, cred), -1);
    c.scene = QR_SCENE_TRANSIT;
    assert_int_equal(qr_credential_issue(&c, fx.issuer, cred), 0);
    assert_int_equal(qr_code_make(cred, fx.stranger, NOW, 60, 1, NULL, code), -1); /* not the credential's device key */
    assert_int_equal(qr_code_make(cred, fx.device, NOW, 60, HMT1_COUNTER_MAX + 1, NULL, code), -1);
    assert_int_equal(qr_code_make(cred, fx.device, NOW, 60, HMT1_COUNTER_MAX, NULL, code), 0);
    cred[1] = 2;
    assert_int_equal(qr_code_make(cred, fx.device, NOW, 60, 1, NULL, code), -1);
}

static void test_terminal_and_pseudonym(void **state)
{
    (void)state;
    uint8_t t[4], digest[32], p1[8], p2[8], p3[8], mac[32], msg[8 + 13], kid[4] = {1, 2, 3, 4};
    unsigned mlen = 0;
    qr_terminal_binding("gate-A17", 8, t);
    EVP_Digest("gate-A17", 8, digest, NULL, EVP_sha256(), NULL);
    assert_memory_equal(t, digest, 4);
    assert_int_equal(qr_pseudonym((const uint8_t *)"k", 1, kid, 9, "resident-0001", 13, p1), 0);
    memcpy(msg, kid, 4);
    msg[4] = 0, msg[5] = 0, msg[6] = 0, msg[7] = 9;
    memcpy(msg + 8, "resident-0001", 13);
    HMAC(EVP_sha256(), "k", 1, msg, sizeof(msg), mac, &mlen);
    assert_memory_equal(p1, mac, 8);
    assert_int_equal(qr_pseudonym((const uint8_t *)"k", 1, kid, 10, "resident-0001", 13, p2), 0);
    assert_int_equal(qr_pseudonym((const uint8_t *)"j", 1, kid, 9, "resident-0001", 13, p3), 0);
    assert_memory_not_equal(p1, p2, 8); /* differs per credential */
    assert_memory_not_equal(p1, p3, 8); /* and per scene secret */

    spec_t s = default_spec();
    uint8_t cred[HMT1_CRED_LEN], code[HMT1_LEN];
    qr_code_t c;
    make_credential(cred, fx.issuer, s.scene, s.serial, s.expires);
    assert_int_equal(qr_code_make(cred, fx.device, NOW, 60, 3, t, code), 0);
    assert_int_equal(qr_code_parse(code, HMT1_LEN, &c), 0);
    assert_memory_equal(c.terminal, t, 4);
    assert_reason(verify(code, NOW, TRANSIT), QR_OK);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const want[] = {"ok",
                                       "malformed",
                                       "unknown_key",
                                       "bad_issuer_signature",
                                       "credential_expired",
                                       "revoked",
                                       "bad_device_signature",
                                       "not_yet_valid",
                                       "expired",
                                       "wrong_scene",
                                       "replayed",
                                       "unavailable"};
    for (int r = QR_OK; r <= QR_UNAVAILABLE; ++r)
        assert_string_equal(qr_reason_name((qr_reason_t)r), want[r]);
    assert_string_equal(qr_scene_name(1), "transit");
    assert_string_equal(qr_scene_name(5), "tourism");
    assert_null(qr_scene_name(0));
    assert_null(qr_scene_name(6));
    assert_int_equal(qr_scene_from_name("payment"), QR_SCENE_PAYMENT);
    assert_int_equal(qr_scene_from_name("Payment"), 0);
    assert_int_equal(qr_role_scenes("transit"), TRANSIT);
    assert_int_equal(qr_role_scenes("merchant"), QR_SCENE_BIT(QR_SCENE_PAYMENT));
    assert_int_equal(qr_role_scenes("tourism"), QR_SCENE_BIT(QR_SCENE_TOURISM) | TRANSIT);
    assert_int_equal(qr_role_scenes("government"), QR_SCENE_BIT(QR_SCENE_GOVERNMENT));
    assert_int_equal(qr_role_scenes("medical"), QR_SCENE_BIT(QR_SCENE_MEDICAL));
    assert_int_equal(qr_role_scenes("admin"), 0);
}

/* ---- each reason ------------------------------------------------------------------------------- */

static void test_malformed(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN + 1];
    qr_verify_params_t p = params(NOW, TRANSIT);
    make_code(&s, code);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN - 1, NULL), QR_MALFORMED);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN + 1, NULL), QR_MALFORMED);
    assert_reason(qr_code_verify(&p, code, 0, NULL), QR_MALFORMED);
    code[0] = 2;
    assert_reason(verify(code, NOW, TRANSIT), QR_MALFORMED);
    code[0] = 1;
    code[1] = 2;
    assert_reason(verify(code, NOW, TRANSIT), QR_MALFORMED);
}

static void test_unknown_key(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    s.issuer = fx.stranger;
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_UNKNOWN_KEY);
    s = default_spec();
    s.scene = QR_SCENE_MEDICAL; /* the issuer is trusted for transit and tourism only */
    make_code(&s, code);
    assert_reason(verify(code, NOW, QR_SCENES_ALL), QR_UNKNOWN_KEY);
    s = default_spec();
    make_code(&s, code);
    assert_reason(verify(code, NOW - 86400 - 1, TRANSIT), QR_UNKNOWN_KEY); /* before the key's not_before */
    qr_verify_params_t p = params(NOW, TRANSIT);
    p.trust = NULL;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_UNKNOWN_KEY);
}

/* Flip one bit of every byte in turn: the reason must be the one for the region it lands in. */
static void test_every_byte_tampered(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN], bad[HMT1_LEN];
    make_code(&s, code);
    for (size_t i = 0; i != HMT1_LEN; ++i) {
        qr_reason_t want = i < 2     ? QR_MALFORMED
                           : i < 7   ? QR_UNKNOWN_KEY
                           : i < 128 ? QR_BAD_ISSUER_SIGNATURE
                                     : QR_BAD_DEVICE_SIGNATURE;
        memcpy(bad, code, HMT1_LEN);
        bad[i] ^= 0x01; /* scene 1 → 0: a scene no key is trusted for */
        if (verify(bad, NOW, TRANSIT) != want)
            fail_msg("byte %zu: %s, want %s", i, qr_reason_name(verify(bad, NOW, TRANSIT)), qr_reason_name(want));
    }
    assert_reason(verify(code, NOW, TRANSIT), QR_OK);
}

static void test_credential_expired(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    s.expires = NOW - 1;
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_CREDENTIAL_EXPIRED);
    s.expires = NOW; /* now ≤ expiry */
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_OK);
}

static int deny_cb(void *ctx, const uint8_t kid[4], uint32_t serial)
{
    (void)kid, (void)serial;
    return *(int *)ctx;
}

static void test_revoked(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    int answer;
    s.serial = REVOKED_SERIAL;
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_REVOKED);
    s = default_spec();
    make_code(&s, code);
    qr_verify_params_t p = params(NOW, TRANSIT);
    p.denied = deny_cb;
    p.denied_ctx = &answer;
    answer = 1;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_REVOKED);
    answer = -1;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_UNAVAILABLE);
    answer = 0;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_OK);
}

static void test_bad_device_signature(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    make_code(&s, code);
    assert_int_equal(crypto_es256_sign(fx.stranger, code, HMT1_DEVICE_SIGNED_LEN, code + HMT1_OFF_DEVICE_SIG), 0);
    assert_reason(verify(code, NOW, TRANSIT), QR_BAD_DEVICE_SIGNATURE);
}

/* The same signatures with s replaced by n − s: valid ECDSA, refused by the SPEC. */
static void high_s(uint8_t *sig)
{
    int borrow = 0;
    for (int i = 63; i >= 32; --i) {
        int d = n_be[i - 32] - sig[i] - borrow;
        borrow = d < 0;
        sig[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static void test_high_s_variants(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN], bad[HMT1_LEN], point[33];
    qr_key_t *issuer_pub;
    make_code(&s, code);
    crypto_key_point(fx.issuer, point);
    issuer_pub = crypto_key_from_point(point, 33);
    memcpy(bad, code, HMT1_LEN);
    high_s(bad + HMT1_OFF_ISSUER_SIG);
    assert_int_equal(crypto_es256_verify(issuer_pub, bad, 64, bad + HMT1_OFF_ISSUER_SIG, 64), 0); /* OpenSSL would take it */
    assert_reason(verify(bad, NOW, TRANSIT), QR_BAD_ISSUER_SIGNATURE);
    memcpy(bad, code, HMT1_LEN);
    high_s(bad + HMT1_OFF_DEVICE_SIG);
    assert_reason(verify(bad, NOW, TRANSIT), QR_BAD_DEVICE_SIGNATURE);
    crypto_key_free(issuer_pub);
}

static void test_time_window(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    s.gen = NOW + SKEW; /* gen − skew ≤ now */
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_OK);
    s.gen = NOW + SKEW + 1;
    make_code(&s, code);
    assert_reason(verify(code, NOW, TRANSIT), QR_NOT_YET_VALID);
    s = default_spec();
    make_code(&s, code);
    assert_reason(verify(code, NOW + 60 + 5, TRANSIT), QR_OK); /* now ≤ gen + ttl + 5 */
    assert_reason(verify(code, NOW + 60 + 6, TRANSIT), QR_EXPIRED);
    s.ttl = 0;
    make_code(&s, code);
    assert_reason(verify(code, NOW + 5, TRANSIT), QR_OK);
    assert_reason(verify(code, NOW + 6, TRANSIT), QR_EXPIRED);
}

static void test_wrong_scene_does_not_burn(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    qr_verify_params_t p = params(NOW, QR_SCENE_BIT(QR_SCENE_PAYMENT)); /* a merchant's scanner */
    assert_int_equal(qr_seenset_init(&fx.seen, fx.slots, 256), 0);
    p.seen = qr_seenset_check_and_mark;
    p.seen_ctx = &fx.seen;
    s.counter = 77;
    make_code(&s, code);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_WRONG_SCENE);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_WRONG_SCENE);
    p.scenes = qr_role_scenes("tourism"); /* tourism scanners accept transit codes */
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_OK);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_REPLAYED);
}

static void test_replay(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN], other[HMT1_LEN];
    qr_verify_params_t p = params(NOW, TRANSIT);
    qr_code_t c;
    assert_int_equal(qr_seenset_init(&fx.seen, fx.slots, 256), 0);
    p.seen = qr_seenset_check_and_mark;
    p.seen_ctx = &fx.seen;
    make_code(&s, code);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, &c), QR_OK);
    assert_int_equal(c.serial, SERIAL);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, &c), QR_REPLAYED);
    assert_int_equal(c.serial, SERIAL); /* fields are reported with the reason */
    s.counter = 2;
    make_code(&s, other);
    assert_reason(qr_code_verify(&p, other, HMT1_LEN, NULL), QR_OK);
    s.counter = 1; /* same (serial, counter), new gen time: still the same code as far as replay goes */
    s.gen = NOW + 1;
    make_code(&s, other);
    assert_reason(qr_code_verify(&p, other, HMT1_LEN, NULL), QR_REPLAYED);
    s = default_spec();
    s.serial = SERIAL + 1; /* another credential, same counter */
    make_code(&s, other);
    assert_reason(qr_code_verify(&p, other, HMT1_LEN, NULL), QR_OK);
    p.seen = NULL; /* stateless: the caller consumes */
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_OK);
}

static int seen_fails(void *ctx, const uint8_t kid[4], uint32_t serial, uint32_t counter, int64_t now, int64_t keep_until)
{
    (void)kid, (void)serial, (void)counter, (void)now, (void)keep_until;
    ++*(int *)ctx;
    return -1;
}

static void test_seen_store_failure(void **state)
{
    (void)state;
    spec_t s = default_spec();
    uint8_t code[HMT1_LEN];
    int calls = 0;
    qr_verify_params_t p = params(NOW, TRANSIT);
    p.seen = seen_fails;
    p.seen_ctx = &calls;
    make_code(&s, code);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_UNAVAILABLE);
    assert_int_equal(calls, 1);
    p.scenes = QR_SCENE_BIT(QR_SCENE_MEDICAL);
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_WRONG_SCENE);
    assert_int_equal(calls, 1); /* consulted last, and only for an otherwise valid code */
}

/* ---- the order of reasons ---------------------------------------------------------------------- */

static void test_reason_order(void **state)
{
    (void)state;
    spec_t s;
    uint8_t code[HMT1_LEN];
    uint32_t medical = QR_SCENE_BIT(QR_SCENE_MEDICAL);

    s = default_spec(); /* revoked and expired (both the code and the credential lapse later) */
    s.serial = REVOKED_SERIAL;
    make_code(&s, code);
    assert_reason(verify(code, NOW + 1000, medical), QR_REVOKED);

    s.expires = NOW - 1; /* credential expired beats revoked */
    make_code(&s, code);
    assert_reason(verify(code, NOW + 1000, medical), QR_CREDENTIAL_EXPIRED);

    s.issuer = fx.stranger; /* unknown key beats everything after it */
    make_code(&s, code);
    code[HMT1_OFF_DEVICE_SIG + 5] ^= 1;
    assert_reason(verify(code, NOW + 1000, medical), QR_UNKNOWN_KEY);

    s = default_spec(); /* bad issuer signature beats credential expired */
    s.expires = NOW - 1;
    make_code(&s, code);
    code[HMT1_OFF_PSEUDONYM] ^= 1;
    assert_reason(verify(code, NOW, TRANSIT), QR_BAD_ISSUER_SIGNATURE);

    s = default_spec(); /* bad device signature beats not yet valid and wrong scene */
    s.gen = NOW + 1000;
    make_code(&s, code);
    code[HMT1_OFF_DEVICE_SIG + 5] ^= 1;
    assert_reason(verify(code, NOW, medical), QR_BAD_DEVICE_SIGNATURE);

    s = default_spec(); /* not yet valid beats wrong scene */
    s.gen = NOW + 1000;
    make_code(&s, code);
    assert_reason(verify(code, NOW, medical), QR_NOT_YET_VALID);

    s = default_spec(); /* expired beats wrong scene */
    make_code(&s, code);
    assert_reason(verify(code, NOW + 1000, medical), QR_EXPIRED);

    /* wrong scene beats replayed */
    qr_verify_params_t p = params(NOW, TRANSIT);
    assert_int_equal(qr_seenset_init(&fx.seen, fx.slots, 256), 0);
    p.seen = qr_seenset_check_and_mark;
    p.seen_ctx = &fx.seen;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_OK);
    p.scenes = medical;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_WRONG_SCENE);
    p.scenes = TRANSIT;
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_REPLAYED);
    p.now = NOW + 1000; /* expired beats replayed */
    assert_reason(qr_code_verify(&p, code, HMT1_LEN, NULL), QR_EXPIRED);
}

/* ---- the seen-set ------------------------------------------------------------------------------ */

static void test_seenset_bounded(void **state)
{
    (void)state;
    qr_seen_slot_t slots[QR_SEEN_WINDOW];
    qr_seenset_t set;
    uint8_t kid[4] = {9, 9, 9, 9};
    assert_int_equal(qr_seenset_init(&set, slots, QR_SEEN_WINDOW - 1), -1);
    assert_int_equal(qr_seenset_init(&set, slots, QR_SEEN_WINDOW), 0);
    for (uint32_t i = 0; i != QR_SEEN_WINDOW; ++i)
        assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, i, NOW, NOW + 60), 0);
    for (uint32_t i = 0; i != QR_SEEN_WINDOW; ++i)
        assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, i, NOW + 30, NOW + 90), 1);
    /* full of live entries: fail closed, forget nothing */
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, 100, NOW + 60, NOW + 120), -1);
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, 0, NOW + 60, NOW + 120), 1);
    /* after keep_until the entries are forgotten and their slots reused */
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, 100, NOW + 61, NOW + 120), 0);
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 5, 100, NOW + 62, NOW + 120), 1);
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 6, 100, NOW + 62, NOW + 120), 0);
    kid[0] = 8;
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 6, 100, NOW + 62, NOW + 120), 0);
}

static void test_seenset_many(void **state)
{
    (void)state;
    static qr_seen_slot_t slots[4096];
    qr_seenset_t set;
    uint8_t kid[4] = {1, 2, 3, 4};
    assert_int_equal(qr_seenset_init(&set, slots, 4096), 0);
    /* half full, twice the sizing qr.h asks for: no key may find both its windows full (with one window
     * per key, one fill in ~20,000 of a quarter-full set failed here) */
    for (uint32_t i = 0; i != 2048; ++i)
        assert_int_equal(qr_seenset_check_and_mark(&set, kid, i / 8, i % 8, NOW, NOW + 300), 0);
    for (uint32_t i = 0; i != 2048; ++i)
        assert_int_equal(qr_seenset_check_and_mark(&set, kid, i / 8, i % 8, NOW, NOW + 300), 1);
    assert_int_equal(qr_seenset_check_and_mark(&set, kid, 2048, 0, NOW, NOW + 300), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_text_refusals),
        cmocka_unit_test(test_issue_and_make_refusals),
        cmocka_unit_test(test_terminal_and_pseudonym),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_every_byte_tampered),
        cmocka_unit_test(test_credential_expired),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_bad_device_signature),
        cmocka_unit_test(test_high_s_variants),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_wrong_scene_does_not_burn),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_seen_store_failure),
        cmocka_unit_test(test_reason_order),
        cmocka_unit_test(test_seenset_bounded),
        cmocka_unit_test(test_seenset_many),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
