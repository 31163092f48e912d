/*
 * qr/base45.c — Base45 (RFC 9285) for the code's text form (base64url is crypto/'s).
 *
 * Called by hmt1.c (text form) and, through it, by cli.c, the gateway's endpoints and gates. The
 * decoder accepts exactly one spelling per value and says "no" to anything else; it never writes
 * past OUTSZ and never allocates.
 */
#include <string.h>
#include "qr/qr.h"

static const char b45_alphabet[45] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

static int b45_value(unsigned char c)
{
    const char *p = c != '\0' ? memchr(b45_alphabet, c, sizeof(b45_alphabet)) : NULL;
    return p != NULL ? (int)(p - b45_alphabet) : -1;
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
