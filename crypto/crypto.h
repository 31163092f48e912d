/*
 * crypto/crypto.h — the one base64url codec and the one ES256 stack of hegate: the contract of the
 * crypto/ folder, shared by auth/ (access tokens, JWKS) and qr/ (city codes, trust list).
 *
 * crypto/ needs OpenSSL 3 and nothing else: never h2o, hiredis, jansson, auth/ or qr/ (a transit
 * gate links qr/ and crypto/ alone). Sections are named after the file that implements them:
 *
 *   b64url.c   strict base64url (RFC 4648 §5, no padding, one spelling per value)
 *   key.c      P-256 keys wrapping a parsed EVP_PKEY: PEM, SEC1 points, JWK x/y, generate, save
 *   es256.c    SHA-256; ECDSA P-256 / SHA-256 with raw r‖s signatures (sign low-S, verify)
 *   sm2.c      SM3; SM2 with SM3 and a signer ID, raw r‖s; SM2 keys (PEM, SEC1 points)
 *
 * Conventions: sizes are constants; functions return 0 / -1, a length / -1, or a pointer / NULL;
 * what allocates says so. A crypto_key_t is immutable once built and may be shared read-only by any
 * number of threads. Policies above the bare algorithm (HMT1's low-S rule, JOSE's alg pinning) are
 * the callers': verification here accepts any signature ECDSA accepts with r and s in [1, n − 1].
 * Nothing here logs, and nothing prompts for a passphrase.
 */
#ifndef hegate_crypto_crypto_h
#define hegate_crypto_crypto_h

#include <stddef.h>
#include <stdint.h>

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

/* ---- b64url.c --------------------------------------------------------------------------------- */

/* Characters needed to base64url-encode N bytes without padding (excluding a terminating NUL). */
#define CRYPTO_B64URL_LEN(n) ((((size_t)(n)) * 4 + 2) / 3)

/* Writes the unpadded base64url of SRC[0..LEN) and a NUL to DST (room for CRYPTO_B64URL_LEN(LEN) + 1);
 * returns the number of characters (without the NUL). */
size_t crypto_b64url_encode(char *dst, const void *src, size_t len);

/* Strict decoding: only [A-Za-z0-9_-], no padding, no whitespace, LEN % 4 != 1, and the unused low
 * bits of the last character must be zero (so every byte string has exactly one spelling). Writes at
 * most DSTSZ bytes (LEN / 4 * 3 + 2 is always enough); returns the decoded length, or -1 for any
 * other input, for LEN > 2^31 − 1, or when the result would not fit. */
long crypto_b64url_decode(void *dst, size_t dstsz, const char *src, size_t len);

/* ---- key.c ------------------------------------------------------------------------------------ */

#define CRYPTO_P256_POINT_LEN 33      /* SEC1 compressed point */
#define CRYPTO_P256_POINT_FULL_LEN 65 /* SEC1 uncompressed point */

/* A P-256 key: public, or private with its public half. Holds the parsed EVP_PKEY, so nothing is
 * parsed again per signature. Made by the crypto_key_* constructors below, freed by crypto_key_free. */
typedef struct crypto_key crypto_key_t;

/* A public key from a SEC1 point: 33 bytes (compressed) or 65 (uncompressed). NULL if LEN is neither
 * or the point is not on the curve. Allocates. */
crypto_key_t *crypto_key_from_point(const uint8_t *point, size_t len);

/* A public key from the JWK coordinates x, y (32 bytes each): NULL unless a point of P-256. Allocates. */
crypto_key_t *crypto_key_from_xy(const uint8_t x[32], const uint8_t y[32]);

/* A key from PEM text: "PRIVATE KEY" (PKCS#8), "EC PRIVATE KEY" (SEC1) or "PUBLIC KEY" (SPKI). NULL
 * unless an unencrypted EC key on P-256 (a private key must also pass OpenSSL's full key check), with
 * a short reason in ERR (if not NULL): no key material is ever quoted. Allocates. */
crypto_key_t *crypto_key_from_pem(const char *pem, size_t len, char *err, size_t errsz);

/* The same, but only a private key is accepted ("PUBLIC KEY" is refused as not a private key). */
crypto_key_t *crypto_key_from_private_pem(const char *pem, size_t len, char *err, size_t errsz);

/* A fresh private key (OpenSSL's RNG). Allocates. */
crypto_key_t *crypto_key_generate(void);

/* Writes the private key as PKCS#8 PEM to PATH, mode 0600, refusing to replace an existing file; the
 * file appears complete or not at all (written aside, synced, then linked). 0, or -1 with errno
 * (EINVAL without a private half). The PEM text only ever sits in OpenSSL's secure memory. */
int crypto_key_save_private_pem(const crypto_key_t *key, const char *path);

/* The private key as PKCS#8 PEM into BUF (NUL-terminated, *LEN without the NUL); -1 without a private
 * half or when BUF is too small. */
int crypto_key_private_pem(const crypto_key_t *key, char *buf, size_t bufsz, size_t *len);

void crypto_key_free(crypto_key_t *key); /* NULL is fine */

/* Whether the key can sign. */
int crypto_key_has_private(const crypto_key_t *key);

/* The SEC1 compressed point (33 bytes), and the JWK coordinates. */
void crypto_key_point(const crypto_key_t *key, uint8_t out[CRYPTO_P256_POINT_LEN]);
void crypto_key_xy(const crypto_key_t *key, uint8_t x[32], uint8_t y[32]);

/* SHA-256 of the key's DER SubjectPublicKeyInfo in RFC 5480's form (named curve, uncompressed point),
 * whatever form the key came in: what SPEC §6's kid and SPEC §7.1's key id are cut from. */
const uint8_t *crypto_key_spki_sha256(const crypto_key_t *key);

/* The cached OpenSSL key (never re-parsed). Owned by KEY. */
struct evp_pkey_st *crypto_key_pkey(const crypto_key_t *key);

/* ---- es256.c ---------------------------------------------------------------------------------- */

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_ES256_SIG_LEN 64 /* raw r‖s, 32 bytes each, big-endian */

/* SHA-256 of LEN bytes (a digest fetched once per process). 0, or -1 with OUT zeroed. */
int crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* ECDSA P-256 over SHA-256(MSG) into raw r‖s, always low-S (s ≤ (n − 1) / 2). -1 without a private
 * half. Fresh nonce per call (OpenSSL's RNG). */
int crypto_es256_sign(const crypto_key_t *key, const void *msg, size_t len, uint8_t sig[CRYPTO_ES256_SIG_LEN]);

/* 0 if SIG is a valid ES256 signature of MSG by KEY (RFC 7518 §3.4): SIGLEN must be 64, r and s in
 * [1, n − 1] (checked before OpenSSL sees them); high S is accepted, as ECDSA itself does. Uses a
 * verification context kept per thread and key (made on first use), so nothing else allocates. */
int crypto_es256_verify(const crypto_key_t *key, const void *msg, size_t len, const uint8_t *sig, size_t siglen);

/* The same for a key given as a SEC1 point (33 or 65 bytes; -1 if not a point of P-256), e.g. a key
 * carried inside the signed data: the point is decoded for this one call, SIG checked first. */
int crypto_es256_verify_point(const uint8_t *point, size_t pointlen, const void *msg, size_t len, const uint8_t *sig,
                              size_t siglen);

/* 1 if the S half of SIG is low (s ≤ (n − 1) / 2): the one spelling of a signature (r, s) ~ (r, n − s). */
int crypto_es256_is_low_s(const uint8_t sig[CRYPTO_ES256_SIG_LEN]);

/* ---- sm2.c: the 国密 suite of the city code (SPEC §7.4) ---------------------------------------- */

#define CRYPTO_SM3_LEN 32
#define CRYPTO_SM2_POINT_LEN 33      /* SEC1 compressed point on the SM2 curve */
#define CRYPTO_SM2_POINT_FULL_LEN 65 /* SEC1 uncompressed */
#define CRYPTO_SM2_SIG_LEN 64        /* raw r‖s */
#define CRYPTO_SM2_DEFAULT_ID "1234567812345678" /* GM/T 0009's default signer ID */

/* SM3 (GB/T 32905) of MSG[0..LEN). 0 or -1. */
int crypto_sm3(const void *msg, size_t len, uint8_t out[CRYPTO_SM3_LEN]);

/* An SM2 key: public, or private with its public half (immutable, shareable like crypto_key_t). */
typedef struct crypto_sm2_key crypto_sm2_key_t;
crypto_sm2_key_t *crypto_sm2_key_generate(void);
/* a PEM private key (PKCS#8) or public key (SPKI) of the SM2 curve; NULL for anything else */
crypto_sm2_key_t *crypto_sm2_key_from_pem(const char *pem, size_t len);
/* a SEC1 point (33 compressed or 65 uncompressed bytes) on the SM2 curve; NULL when not on it */
crypto_sm2_key_t *crypto_sm2_key_from_point(const uint8_t *point, size_t len);
int crypto_sm2_key_point(const crypto_sm2_key_t *key, uint8_t out[CRYPTO_SM2_POINT_LEN]);
int crypto_sm2_key_has_private(const crypto_sm2_key_t *key);
/* the private key as PKCS#8 PEM into BUF (NUL-terminated), its length in *LEN; 0 or -1 */
int crypto_sm2_key_private_pem(const crypto_sm2_key_t *key, char *buf, size_t bufsz, size_t *len);
void crypto_sm2_key_free(crypto_sm2_key_t *key); /* NULL is fine */

/* SM2 with SM3 (GB/T 32918.2): Z from the signer ID[0..IDLEN) and the public key, e = SM3(Z ‖ MSG), raw
 * r‖s. Sign: 0 or -1 (no private key). Verify: 0 valid, -1 otherwise (r, s outside [1, n − 1] included). */
int crypto_sm2_sign(const crypto_sm2_key_t *key, const char *id, size_t idlen, const void *msg, size_t len,
                    uint8_t sig[CRYPTO_SM2_SIG_LEN]);
int crypto_sm2_verify(const crypto_sm2_key_t *key, const char *id, size_t idlen, const void *msg, size_t len,
                      const uint8_t sig[CRYPTO_SM2_SIG_LEN]);
/* the same over a digest E already computed (e = SM3(Z ‖ M)): what OpenSSL's own SM2 test vectors give */
int crypto_sm2_verify_digest(const crypto_sm2_key_t *key, const uint8_t e[CRYPTO_SM3_LEN], const uint8_t sig[CRYPTO_SM2_SIG_LEN]);

#endif
