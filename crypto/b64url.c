/*
 * crypto/b64url.c — strict base64url (RFC 4648 §5, no padding), the only codec of it in hegate.
 *
 * Called by auth/ (every part of a token, JWK coordinates, kids, sealed values, PKCE) and qr/ (the
 * trust list's JWS and JWK coordinates, credentials). The decoder gives each byte string exactly one
 * accepted spelling: no padding, no whitespace, no other alphabet ('+', '/'), no length ≡ 1 (mod 4),
 * and the unused low bits of the last character must be zero. It never writes past DSTSZ, never
 * allocates and never logs its input.
 */
#include <string.h>
#include "crypto/crypto.h"
static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0–63 for an alphabet character, 64 for anything else (including '=' and NUL) */
/* clang-format off */
static const uint8_t b64url_value[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};
/* clang-format on */

size_t crypto_b64url_encode(char *dst, const void *src, size_t len)
{
    const uint8_t *s = src;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = b64url_alphabet[v >> 18];
        dst[o++] = b64url_alphabet[(v >> 12) & 63];
        dst[o++] = b64url_alphabet[(v >> 6) & 63];
        dst[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        dst[o++] = b64url_alphabet[v >> 18];
        dst[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        dst[o++] = b64url_alphabet[v >> 18];
        dst[o++] = b64url_alphabet[(v >> 12) & 63];
        dst[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    dst[o] = '\0';
    return o;
}

long crypto_b64url_decode(void *dst, size_t dstsz, const char *src, size_t len)
{
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = dst;
    size_t rem = len % 4, full = len - rem;
    size_t outlen = full / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    if (rem == 1 || outlen > dstsz || len > (size_t)0x7fffffff)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < full; i += 4) {
        uint8_t a = b64url_value[s[i]], b = b64url_value[s[i + 1]], c = b64url_value[s[i + 2]], e = b64url_value[s[i + 3]];
        if ((a | b | c | e) & 64)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | e;
        d[o++] = (uint8_t)(v >> 16);
        d[o++] = (uint8_t)(v >> 8);
        d[o++] = (uint8_t)v;
    }
    if (rem == 2) {
        uint8_t a = b64url_value[s[full]], b = b64url_value[s[full + 1]];
        if (((a | b) & 64) || (b & 0x0f) != 0) /* 4 unused bits must be zero */
            return -1;
        d[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (rem == 3) {
        uint8_t a = b64url_value[s[full]], b = b64url_value[s[full + 1]], c = b64url_value[s[full + 2]];
        if (((a | b | c) & 64) || (c & 0x03) != 0) /* 2 unused bits must be zero */
            return -1;
        d[o++] = (uint8_t)(a << 2 | b >> 4);
        d[o++] = (uint8_t)(b << 4 | c >> 2);
    }
    return (long)o;
}
