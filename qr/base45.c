/*
 * qr/base45.c — Base45 (RFC 9285) for the code's text form, and strict base64url for JWS/JWK.
 *
 * Called by hmt1.c (text form), trust.c (JWS parts, JWK coordinates) and cli.c (credential files).
 * Both decoders accept exactly one spelling per value and say "no" to anything else; they never
 * write past OUTSZ and never allocate.
 */
#include <string.h>
#include "qr/hmt1.h"

static const char b45_alphabet[45] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

static const char b64url_alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b45_value(unsigned char c)
{
    const char *p = c != '\0' ? memchr(b45_alphabet, c, sizeof(b45_alphabet)) : NULL;
    return p != NULL ? (int)(p - b45_alphabet) : -1;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int qr_base45_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
    size_t need = QR_BASE45_ENCODED_LEN(len), o = 0;
    if (outsz < need + 1)
        return -1;
    for (size_t i = 0; i + 1 < len; i += 2) {
        unsigned v = (unsigned)in[i] << 8 | in[i + 1];
        out[o++] = b45_alphabet[v % 45];
        out[o++] = b45_alphabet[v / 45 % 45];
        out[o++] = b45_alphabet[v / (45 * 45)];
    }
    if (len % 2 != 0) {
        unsigned v = in[len - 1];
        out[o++] = b45_alphabet[v % 45];
        out[o++] = b45_alphabet[v / 45];
    }
    out[o] = '\0';
    if (outlen != NULL)
        *outlen = o;
    return 0;
}

/* The value of N (2 or 3) Base45 characters, least significant first; -1 for a bad character. */
static long b45_group(const char *in, size_t n)
{
    long v = 0, mul = 1;
    for (size_t i = 0; i != n; ++i, mul *= 45) {
        int d = b45_value((unsigned char)in[i]);
        if (d < 0)
            return -1;
        v += d * mul;
    }
    return v;
}

int qr_base45_decode(const char *in, size_t len, uint8_t *out, size_t outsz, size_t *outlen)
{
    size_t need = len / 3 * 2 + (len % 3 == 2), o = 0;
    if (len % 3 == 1 || outsz < need)
        return -1;
    for (size_t i = 0; i + 3 <= len; i += 3) {
        long v = b45_group(in + i, 3);
        if (v < 0 || v > 65535)
            return -1;
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (len % 3 == 2) {
        long v = b45_group(in + len - 2, 2);
        if (v < 0 || v > 255)
            return -1;
        out[o++] = (uint8_t)v;
    }
    if (outlen != NULL)
        *outlen = o;
    return 0;
}

int qr_b64url_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
    size_t need = QR_BASE64URL_ENCODED_LEN(len), o = 0, i = 0;
    if (outsz < need + 1)
        return -1;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        out[o++] = b64url_alphabet[in[i] >> 2];
        out[o++] = b64url_alphabet[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = b64url_alphabet[v >> 10];
        out[o++] = b64url_alphabet[v >> 4 & 63];
        out[o++] = b64url_alphabet[(v & 15) << 2];
    }
    out[o] = '\0';
    if (outlen != NULL)
        *outlen = o;
    return 0;
}

int qr_b64url_decode(const char *in, size_t len, uint8_t *out, size_t outsz, size_t *outlen)
{
    size_t o = 0, rem = len % 4;
    uint32_t acc = 0;
    if (rem == 1 || outsz < len / 4 * 3 + (rem != 0 ? rem - 1 : 0))
        return -1;
    for (size_t i = 0; i != len; ++i) {
        int d = b64url_value((unsigned char)in[i]);
        if (d < 0)
            return -1;
        acc = acc << 6 | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (rem == 2) { /* 12 bits: one byte and 4 unused bits that must be zero */
        if ((acc & 0xF) != 0)
            return -1;
        out[o++] = (uint8_t)(acc >> 4);
    } else if (rem == 3) { /* 18 bits: two bytes and 2 unused bits */
        if ((acc & 0x3) != 0)
            return -1;
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    if (outlen != NULL)
        *outlen = o;
    return 0;
}
