/*
 * qr/qr.h — the city code 鹤码通 (HMT1, SPEC §7): the contract of the qr/ folder.
 *
 * qr/ is a library a transit gate can link alone, with crypto/ (base64url, P-256 keys, ES256):
 * it needs OpenSSL 3, jansson, libqrencode and libpng, never h2o, hiredis or auth/. The one file
 * that knows the gateway, endpoints.c (the /qr/v1 endpoints), is not part of this contract.
 * Sections are named after the file that implements them:
 *
 *   base45.c   RFC 9285 Base45
 *   ecdsa.c    HMT1's signature rule (low-S only) and key ids on crypto/'s keys; key files
 *   hmt1.c     the 204 bytes: credentials, codes, text form, the validity rule, seen-set
 *   trust.c    the trust list (SPEC §7.3) as a compact JWS, JWKS, building and checking it
 *   render.c   QR matrix (libqrencode), PNG (libpng) and SVG
 *   cli.c      `hegate qr verify|make|keygen-device`
 *
 * Conventions: sizes are constants; functions return 0 on success and -1 on failure (or a
 * qr_reason_t); the byte/text/verify core writes only into buffers the caller provides. What
 * allocates says so (keys, trust lists, JWKS, JWS, images); OpenSSL allocates internally while
 * it signs or verifies. Every qr_key_t, qr_trust_t and qr_jwks_t may be shared read-only by any
 * number of threads once built. All times are unix seconds.
 */
#ifndef hegate_qr_qr_h
#define hegate_qr_qr_h

#include <stddef.h>
#include <stdint.h>
#include "crypto/crypto.h"

/* ---- the format (SPEC §7.1) ----------------------------------------------------------------- */

#define HMT1_LEN 204               /* a whole code */
#define HMT1_CRED_LEN 128          /* the credential part: bytes 0–127, issued by the gateway */
#define HMT1_ISSUER_SIGNED_LEN 64  /* the issuer signs bytes 0–63 */
#define HMT1_DEVICE_SIGNED_LEN 140 /* the device signs bytes 0–139 */
#define HMT1_SIG_LEN 64            /* raw r‖s */
#define HMT1_KID_LEN 4             /* issuer key id */
#define HMT1_PSEUDONYM_LEN 8
#define HMT1_ENTITLEMENTS_LEN 8
#define HMT1_TERMINAL_LEN 4
#define HMT1_POINT_LEN 33      /* SEC1 compressed P-256 point */
#define HMT1_POINT_FULL_LEN 65 /* SEC1 uncompressed P-256 point */
#define HMT1_PREFIX "HMT1:"
#define HMT1_PREFIX_LEN 5
#define HMT1_B45_LEN 306  /* Base45 of 204 bytes */
#define HMT1_TEXT_LEN 311 /* "HMT1:" + Base45: what the QR holds */
#define HMT1_VERSION 0x01
#define HMT1_SUITE_P256 0x01       /* ECDSA P-256 / SHA-256, raw r‖s, low-S */
#define HMT1_COUNTER_MAX 0xFFFFFFu /* the counter has 3 bytes */
#define HMT1_GRACE 5               /* seconds a code stays valid after gen + ttl */

/* Byte offsets (big-endian fields). */
enum {
    HMT1_OFF_VERSION = 0,
    HMT1_OFF_SUITE = 1,
    HMT1_OFF_SCENE = 2,
    HMT1_OFF_KID = 3,
    HMT1_OFF_SERIAL = 7,
    HMT1_OFF_CRED_EXPIRES = 11,
    HMT1_OFF_PSEUDONYM = 15,
    HMT1_OFF_ENTITLEMENTS = 23,
    HMT1_OFF_DEVICE_KEY = 31,
    HMT1_OFF_ISSUER_SIG = 64,
    HMT1_OFF_GEN = 128,
    HMT1_OFF_TTL = 132,
    HMT1_OFF_COUNTER = 133,
    HMT1_OFF_TERMINAL = 136,
    HMT1_OFF_DEVICE_SIG = 140,
};

/* Scenes (byte 2), and scene sets as bit masks of 1 << scene (the gateway config uses the same). */
enum { QR_SCENE_TRANSIT = 1, QR_SCENE_MEDICAL = 2, QR_SCENE_PAYMENT = 3, QR_SCENE_GOVERNMENT = 4, QR_SCENE_TOURISM = 5 };
#define QR_SCENE_MAX 5
#define QR_SCENE_BIT(s) (1u << (s))
#define QR_SCENES_ALL 0x3Eu /* bits 1..5 */

/* Why a code is not valid: the first rule of SPEC §7.2 that fails, in this order. */
typedef enum {
    QR_OK = 0,
    QR_MALFORMED,            /* not 204 bytes / not "HMT1:"+Base45, or unknown version or suite */
    QR_UNKNOWN_KEY,          /* issuer key id not trusted for the code's scene (or outside its not_before..not_after) */
    QR_BAD_ISSUER_SIGNATURE, /* incl. high-S, r or s zero or ≥ n */
    QR_CREDENTIAL_EXPIRED,   /* now > credential expiry */
    QR_REVOKED,              /* serial on the deny list */
    QR_BAD_DEVICE_SIGNATURE, /* incl. a device key that is not a point of P-256 */
    QR_NOT_YET_VALID,        /* now < gen − skew */
    QR_EXPIRED,              /* now > gen + ttl + 5 s */
    QR_WRONG_SCENE,          /* the scanner does not accept the code's scene */
    QR_REPLAYED,             /* (key, serial, counter) already consumed */
    QR_UNAVAILABLE,          /* not a verdict: a deny/seen store failed; the gateway answers 503 */
} qr_reason_t;

/* The reason as SPEC §7.2 spells it ("ok", "malformed", "unknown_key", ..., "replayed", "unavailable"). */
const char *qr_reason_name(qr_reason_t r);

/* "transit" ... "tourism" for 1..5; NULL for anything else. */
const char *qr_scene_name(unsigned scene);

/* The scene number for a name (1..5), or 0 when unknown. */
unsigned qr_scene_from_name(const char *name);

/* The scenes a scanner role accepts (SPEC §7.3): transit → transit; medical → medical;
 * merchant → payment; government → government; tourism → tourism + transit. 0 for an unknown role. */
uint32_t qr_role_scenes(const char *role);

/* ---- base45.c ------------------------------------------------------------------------------- */

#define QR_BASE45_ENCODED_LEN(n) ((n) / 2 * 3 + (n) % 2 * 2)

/* Base45 (RFC 9285) of LEN bytes into OUT (OUTSZ ≥ QR_BASE45_ENCODED_LEN(len) + 1, NUL-terminated).
 * *OUTLEN (if not NULL) gets the length without the NUL. -1 if OUT is too small. */
int qr_base45_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen);

/* Decodes Base45. -1 for a character outside the 45, a length ≡ 1 (mod 3), a triple above 65535,
 * a final pair above 255, or OUTSZ too small (len / 3 * 2 + 1 is always enough). */
int qr_base45_decode(const char *in, size_t len, uint8_t *out, size_t outsz, size_t *outlen);

/* ---- ecdsa.c -------------------------------------------------------------------------------- */

/* A P-256 key: crypto/'s key, public or private (crypto/crypto.h): made by crypto_key_from_point
 * (SEC1, 33 or 65 bytes), crypto_key_from_xy (JWK coordinates), crypto_key_from_pem,
 * crypto_key_generate; written by crypto_key_save_private_pem / crypto_key_private_pem; read by
 * crypto_key_point / crypto_key_xy; freed by crypto_key_free. crypto_es256_sign signs with it
 * (raw r‖s, always low-S); crypto_es256_verify is plain ES256 (RFC 7518 §3.4: high S accepted), which
 * qr/ uses for the trust list's JWS only, never for codes. */
typedef crypto_key_t qr_key_t;

/* crypto_key_from_pem on the contents of a file (at most 64 KiB). NULL on any failure. Allocates. */
qr_key_t *qr_key_load_pem_file(const char *path);

/* HMT1 key id: the first 4 bytes of SHA-256 of the DER SubjectPublicKeyInfo. */
void qr_key_id(const qr_key_t *key, uint8_t out[HMT1_KID_LEN]);

/* JWK "kid" as SPEC §6 defines it for the gateway's keys: base64url of the first 8 bytes of
 * SHA-256(DER SPKI) — 11 characters and a NUL. */
void qr_key_jwk_kid(const qr_key_t *key, char out[12]);

/* HMT1's rule: 0 if SIG (SIGLEN must be 64) is a valid low-S signature of MSG: rejects 1 ≤ r, s < n
 * failing, s > n/2 (high-S: HMT1 wants one spelling per signature), and anything OpenSSL rejects. */
int qr_ecdsa_verify(const qr_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen);

/* The same for a key given as a SEC1 point (a device key inside a code); -1 if the point is bad. */
int qr_ecdsa_verify_point(const uint8_t *point, size_t pointlen, const void *msg, size_t len, const uint8_t *sig, size_t siglen);

/* ---- hmt1.c --------------------------------------------------------------------------------- */

/* Every field of a code, decoded. Integers are host order. */
typedef struct {
    uint8_t version, suite, scene;
    uint8_t kid[HMT1_KID_LEN];
    uint32_t serial;
    uint32_t cred_expires;
    uint8_t pseudonym[HMT1_PSEUDONYM_LEN];
    uint8_t entitlements[HMT1_ENTITLEMENTS_LEN];
    uint8_t device_key[HMT1_POINT_LEN];
    uint8_t issuer_sig[HMT1_SIG_LEN];
    uint32_t gen;
    uint8_t ttl;
    uint32_t counter; /* 24 bits */
    uint8_t terminal[HMT1_TERMINAL_LEN];
    uint8_t device_sig[HMT1_SIG_LEN];
} qr_code_t;

/* What the issuer puts in a credential (bytes 0–63 but the constants and the key id). */
typedef struct {
    uint8_t scene;
    uint32_t serial;
    uint32_t expires;
    uint8_t pseudonym[HMT1_PSEUDONYM_LEN];
    uint8_t entitlements[HMT1_ENTITLEMENTS_LEN];
    uint8_t device_key[HMT1_POINT_LEN]; /* SEC1 compressed */
} qr_credential_t;

/* Transit entitlements (bytes 23–30 when scene = transit). */
typedef struct {
    uint8_t fare_class;
    uint8_t concessions; /* flags, defined by the operators */
    uint16_t operator_id;
    uint32_t offline_cap_fen; /* what a gate may charge without going online, in fen */
} qr_transit_t;

void qr_transit_encode(const qr_transit_t *t, uint8_t out[HMT1_ENTITLEMENTS_LEN]);
void qr_transit_decode(const uint8_t in[HMT1_ENTITLEMENTS_LEN], qr_transit_t *t);

/* Subject pseudonym: the first 8 bytes of HMAC-SHA256(SECRET, kid ‖ serial (4 B, big-endian) ‖ RESIDENT),
 * SECRET being the scene's secret; the serial makes it differ per credential. */
int qr_pseudonym(const uint8_t *secret, size_t secret_len, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, const char *resident,
                 size_t resident_len, uint8_t out[HMT1_PSEUDONYM_LEN]);

/* Terminal binding: the first 4 bytes of SHA-256(ID). */
void qr_terminal_binding(const char *id, size_t len, uint8_t out[HMT1_TERMINAL_LEN]);

/* Issues a credential (bytes 0–127): version, suite, C's fields, ISSUER's key id, and ISSUER's
 * signature over bytes 0–63. -1 for an unknown scene, a device key that is not a point, or no private key. */
int qr_credential_issue(const qr_credential_t *c, const qr_key_t *issuer, uint8_t out[HMT1_CRED_LEN]);

/* Makes a code from a credential, as a phone (or the gateway, for online codes) does: bytes
 * 128–139 from the arguments (TERMINAL may be NULL: zero, unbound) and DEVICE's signature over
 * 0–139. -1 if CRED's version/suite are unknown, DEVICE is not the credential's device key, or
 * COUNTER > HMT1_COUNTER_MAX. */
int qr_code_make(const uint8_t cred[HMT1_CRED_LEN], const qr_key_t *device, uint32_t gen, uint8_t ttl, uint32_t counter,
                 const uint8_t *terminal, uint8_t out[HMT1_LEN]);

/* Splits a code into its fields. -1 unless LEN is 204 and version and suite are known. */
int qr_code_parse(const uint8_t *bytes, size_t len, qr_code_t *out);

/* The text form: "HMT1:" + Base45, exactly 311 characters and a NUL. */
void qr_code_to_text(const uint8_t code[HMT1_LEN], char out[HMT1_TEXT_LEN + 1]);

/* Back from text: -1 unless TEXT is exactly "HMT1:" + 306 Base45 characters (no white space). */
int qr_code_from_text(const char *text, size_t len, uint8_t out[HMT1_LEN]);

/* The last second a code can be valid (gen + ttl + 5): a seen-set may forget it after that. */
int64_t qr_code_valid_until(const qr_code_t *c);

/* ---- hmt1.c: the validity rule (SPEC §7.2) -------------------------------------------------- */

typedef struct qr_trust qr_trust_t;

/* Deny-list lookup beyond the trust list's own `deny`: 1 revoked, 0 not, -1 the store failed. */
typedef int (*qr_denied_fn)(void *ctx, const uint8_t kid[HMT1_KID_LEN], uint32_t serial);

/* Replay check, consulted last and only for a code that is otherwise valid. Atomically: return 1 if
 * (kid, serial, counter) was recorded before, else record it (it may be forgotten after KEEP_UNTIL)
 * and return 0; -1 if the store failed. The gateway backs it with one Redis SET NX EX; an offline
 * gate with qr_seenset_check_and_mark. */
typedef int (*qr_seen_fn)(void *ctx, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, uint32_t counter, int64_t now,
                          int64_t keep_until);

typedef struct {
    const qr_trust_t *trust; /* issuer keys and the deny list; required */
    int64_t now;
    uint32_t skew;       /* seconds a code's gen may lie in the future (the gateway's qr.skew) */
    uint32_t scenes;     /* the scanner's accepted scenes, QR_SCENE_BIT()s (see qr_role_scenes) */
    qr_denied_fn denied; /* optional */
    void *denied_ctx;
    qr_seen_fn seen; /* optional: NULL skips the replay check — then the caller MUST do it on QR_OK */
    void *seen_ctx;
} qr_verify_params_t;

/* The validity rule of SPEC §7.2 on BYTES (LEN must be 204): the first failing reason in the SPEC's
 * order, or QR_OK. The code is marked seen only when everything else holds. OUT (may be NULL) gets
 * the fields whenever the result is not QR_MALFORMED. A caller whose stores answer asynchronously
 * looks the serial up first (qr_code_parse) and passes a `denied` that returns the answer, and
 * passes seen = NULL and consumes the code itself when the result is QR_OK (replay is the last rule). */
qr_reason_t qr_code_verify(const qr_verify_params_t *p, const uint8_t *bytes, size_t len, qr_code_t *out);

/* The same for the text form; text that is not "HMT1:"+Base45 of 204 bytes is QR_MALFORMED. */
qr_reason_t qr_code_verify_text(const qr_verify_params_t *p, const char *text, size_t len, qr_code_t *out);

/* ---- hmt1.c: the offline seen-set ----------------------------------------------------------- */

/* A bounded, in-memory set of consumed (kid, serial, counter), for a gate. The caller provides the
 * slots; entries are forgotten after their keep_until. A key lives in one of two windows of
 * QR_SEEN_WINDOW slots after its two hashes (stored in the one with more room: with a single window,
 * one fill in ~20,000 of a quarter-full set overflowed somewhere); when both hold only live entries
 * the check fails closed (-1 → QR_UNAVAILABLE).
 * Size it at 4 × (codes scanned per second) × (max ttl + skew + 5) or more. Not thread-safe. */
#define QR_SEEN_WINDOW 16

typedef struct {
    int64_t until; /* 0: empty */
    uint32_t serial, counter;
    uint8_t kid[HMT1_KID_LEN];
} qr_seen_slot_t;

typedef struct {
    qr_seen_slot_t *slots;
    size_t nslots;
    uint64_t seed; /* random: where keys land is not predictable */
} qr_seenset_t;

/* NSLOTS ≥ QR_SEEN_WINDOW. Clears the slots. -1 if NSLOTS is too small or the RNG fails. */
int qr_seenset_init(qr_seenset_t *s, qr_seen_slot_t *slots, size_t nslots);

/* A qr_seen_fn; CTX is the qr_seenset_t. */
int qr_seenset_check_and_mark(void *ctx, const uint8_t kid[HMT1_KID_LEN], uint32_t serial, uint32_t counter, int64_t now,
                              int64_t keep_until);

/* ---- trust.c -------------------------------------------------------------------------------- */

/* The trust list (SPEC §7.3). The payload of the compact JWS is
 *   {"keys":[{"kid":"0a1b2c3d","alg":"ES256","x":"<b64url>","y":"<b64url>","scenes":["transit",...],
 *             "not_before":N,"not_after":N}, ...], "deny":[serial, ...], "issued_at":N}
 * with a protected header {"alg":"ES256","kid":"<signing key's kid>","typ":QR_TRUST_TYP}. A key's kid
 * must be its HMT1 key id (8 lower- or upper-case hex digits); scenes are names; serials are 0..2^32−1
 * and apply to every key. Unknown members are ignored; duplicate members are an error. */
#define QR_TRUST_TYP "hmt1-trust"
#define QR_TRUST_MAX_LEN (8u << 20) /* bytes of JWS accepted */

/* An empty trust list. Allocates. */
qr_trust_t *qr_trust_new(int64_t issued_at);
void qr_trust_free(qr_trust_t *t);

/* Trusts KEY's public half (copied) for SCENES in [NOT_BEFORE, NOT_AFTER]. -1 on a duplicate key id,
 * empty SCENES or NOT_BEFORE > NOT_AFTER. */
int qr_trust_add_key(qr_trust_t *t, const qr_key_t *key, uint32_t scenes, int64_t not_before, int64_t not_after);

/* Replaces the deny list with a sorted copy of SERIALS. */
int qr_trust_set_deny(qr_trust_t *t, const uint32_t *serials, size_t n);

int64_t qr_trust_issued_at(const qr_trust_t *t);
size_t qr_trust_num_keys(const qr_trust_t *t);

/* The key trusted under KID for SCENE at NOW, or NULL. */
const qr_key_t *qr_trust_find(const qr_trust_t *t, const uint8_t kid[HMT1_KID_LEN], unsigned scene, int64_t now);

/* Whether SERIAL is on the deny list (binary search). */
int qr_trust_is_denied(const qr_trust_t *t, uint32_t serial);

/* The JWS-verification keys of a JWKS (RFC 7517). */
typedef struct qr_jwks qr_jwks_t;

/* Parses {"keys":[...]}: keeps keys with kty EC, crv P-256, a kid, use absent or "sig", alg absent or
 * "ES256"; skips other key types; a malformed EC P-256 key or a repeated kid fails the whole set.
 * At most 1 MiB. Allocates. */
qr_jwks_t *qr_jwks_parse(const char *json, size_t len);
qr_jwks_t *qr_jwks_load_file(const char *path);
void qr_jwks_free(qr_jwks_t *jwks);
size_t qr_jwks_num_keys(const qr_jwks_t *jwks);

/* Verifies a compact JWS (header.payload.signature, each non-empty strict base64url): header a JSON
 * object with "alg" exactly "ES256" (never none, HS*, ...), no "crit"; the key is JWKS's key named by the
 * header's "kid" (required), or KEY when JWKS is NULL (then "kid" is not consulted). If TYP is not NULL
 * the header's "typ" must equal it. At most QR_TRUST_MAX_LEN bytes. On success *PAYLOAD is a malloc'd
 * copy (free()) of *PAYLOAD_LEN bytes with a NUL after them. */
int qr_jws_verify(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, const char *typ, uint8_t **payload,
                  size_t *payload_len);

/* Signs PAYLOAD as a compact JWS, header {"alg":"ES256","kid":KID[,"typ":TYP]}; KID NULL means
 * qr_key_jwk_kid(SIGNER). *OUT is malloc'd and NUL-terminated. */
int qr_jws_sign(const qr_key_t *signer, const char *kid, const char *typ, const uint8_t *payload, size_t len, char **out,
                size_t *outlen);

/* Parses and checks a trust-list JWS against JWKS, or against KEY if JWKS is NULL (one of them is
 * required). Allocates; NULL on any failure, with a short reason in ERR (if not NULL). */
qr_trust_t *qr_trust_from_jws(const char *jws, size_t len, const qr_jwks_t *jwks, const qr_key_t *key, char *err, size_t errsz);

/* The same WITHOUT checking the signature (the JWS must still be well-formed ES256): only for a file
 * whose origin the operator vouches for (`hegate qr verify` without --jwks). */
qr_trust_t *qr_trust_from_jws_unverified(const char *jws, size_t len, char *err, size_t errsz);

/* Builds the trust list's JWS, signed by SIGNER (KID: see qr_jws_sign). *OUT is malloc'd. */
int qr_trust_to_jws(const qr_trust_t *t, const qr_key_t *signer, const char *kid, char **out, size_t *outlen);

/* ---- render.c ------------------------------------------------------------------------------- */

#define QR_QUIET_ZONE 4 /* modules of white around the symbol */
#define QR_MIN_SCALE 4  /* pixels per module */
#define QR_MAX_SCALE 64

/* A QR symbol: WIDTH × WIDTH modules, DARK[y * width + x] is 1 for a dark module. */
typedef struct {
    int version;
    int width;
    unsigned char *dark; /* malloc'd; qr_matrix_free */
} qr_matrix_t;

/* Encodes TEXT at error correction M, the smallest version that fits: alphanumeric mode when every
 * character is one of the 45 (the HMT1 text: version 10), else 8-bit. Allocates. */
int qr_matrix_encode(const char *text, size_t len, qr_matrix_t *m);
void qr_matrix_free(qr_matrix_t *m);

/* An upper bound of the PNG qr_render_png writes for M at SCALE. */
size_t qr_render_png_bound(const qr_matrix_t *m, int scale);

/* PNG (1-bit grayscale, SCALE px per module, 4-module quiet zone, zlib level 1) into BUF. -1 if SCALE
 * is outside [QR_MIN_SCALE, QR_MAX_SCALE] or BUF is too small. libpng allocates while it works. */
int qr_render_png(const qr_matrix_t *m, int scale, uint8_t *buf, size_t bufsz, size_t *outlen);

/* The same into a malloc'd buffer (free()). */
int qr_render_png_alloc(const qr_matrix_t *m, int scale, uint8_t **out, size_t *outlen);

/* SVG: a white background and one <path> of the dark modules (runs of rectangles), quiet zone
 * included, SCALE px per module as its width/height. Into BUF (NUL-terminated); -1 if too small.
 * qr_render_svg(m, s, NULL, 0, &len) only measures (len excludes the NUL). */
int qr_render_svg(const qr_matrix_t *m, int scale, char *buf, size_t bufsz, size_t *outlen);

/* The same into a malloc'd, NUL-terminated buffer (free()). */
int qr_render_svg_alloc(const qr_matrix_t *m, int scale, char **out, size_t *outlen);

/* ---- cli.c ---------------------------------------------------------------------------------- */

/* `hegate qr ...`: ARGV[0] is "qr" (ignored), ARGV[1] the command:
 *   verify --trust FILE [--jwks FILE | --trust-key PEMFILE] [--role ROLE | --scenes LIST] [--now T]
 *          [--skew S] [--seen FILE] CODE|-
 *   make --credential FILE --device-key PEMFILE [--counter N] [--scene NAME] [--now T] [--ttl S] [--terminal ID]
 *   keygen-device --out PEMFILE
 * Returns the process exit status: verify 0 valid / 1 invalid; 2 for usage or I/O errors. */
int qr_cli_main(int argc, char **argv);

#endif
