/*
 * qr/render.c — a code's text as a QR symbol (libqrencode), drawn as PNG (zlib) or SVG.
 *
 * Called by the gateway's GET /qr/v1/codes/{scene}.png|.svg and by tests. The HMT1 text is
 * encoded in alphanumeric mode at error correction M (version 10, 57×57); images keep the
 * 4-module quiet zone scanners need. Rendering allocates (libqrencode, zlib, the _alloc
 * variants) but never writes past a caller's buffer, and never sees anything but the code text.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <qrencode.h>
#include "qr/qr.h"

#define QR_TEXT_MAX 7089 /* the most any QR symbol holds (numeric, version 40-L) */

/* ---- the matrix ------------------------------------------------------------------------------- */

static int is_alphanumeric(const char *s, size_t len)
{
    static const char an[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    for (size_t i = 0; i != len; ++i)
        if (s[i] == '\0' || strchr(an, s[i]) == NULL)
            return 0;
    return 1;
}

static QRcode *encode_text(const char *text, size_t len)
{
    QRinput *in = QRinput_new2(0, QR_ECLEVEL_M); /* version 0: the smallest that fits */
    QRcode *qr = NULL;
    if (in == NULL)
        return NULL;
    if (QRinput_append(in, is_alphanumeric(text, len) ? QR_MODE_AN : QR_MODE_8, (int)len, (const unsigned char *)text) == 0)
        qr = QRcode_encodeInput(in);
    QRinput_free(in);
    return qr;
}

int qr_matrix_encode(const char *text, size_t len, qr_matrix_t *m)
{
    QRcode *qr;
    size_t n;
    if (len == 0 || len > QR_TEXT_MAX || (qr = encode_text(text, len)) == NULL)
        return -1;
    n = (size_t)qr->width * (size_t)qr->width;
    if ((m->dark = malloc(n)) == NULL) {
        QRcode_free(qr);
        return -1;
    }
    for (size_t i = 0; i != n; ++i)
        m->dark[i] = qr->data[i] & 1; /* bit 0: dark; the other bits are libqrencode's bookkeeping */
    m->version = qr->version;
    m->width = qr->width;
    QRcode_free(qr);
    return 0;
}

void qr_matrix_free(qr_matrix_t *m)
{
    free(m->dark);
    m->dark = NULL;
}

static int module_dark(const qr_matrix_t *m, int x, int y) /* coordinates include the quiet zone */
{
    x -= QR_QUIET_ZONE;
    y -= QR_QUIET_ZONE;
    return x >= 0 && y >= 0 && x < m->width && y < m->width && m->dark[y * m->width + x];
}

/* ---- PNG -------------------------------------------------------------------------------------- */
/* Written directly (signature, IHDR, one IDAT, IEND; zlib for the deflate stream and the CRCs): libpng's
 * per-row machinery and its 256 KiB deflate state (an mmap, page faults and an munmap per image) cost
 * several times the compression itself, and the endpoint draws an image per request. Each module row is
 * SCALE identical pixel rows: the first is written with filter None, the others with filter Up, which
 * makes them all zero bytes, which deflate level 1 turns into almost nothing. A 4 KiB window (wider
 * than a row up to scale 63) and a small hash keep zlib's state small; measured here, that is also the
 * fastest setting (8 px per module: ~50 µs per image against ~125 µs through libpng). */

typedef struct {
    uint8_t *buf;
    size_t cap, len;
    int grow; /* 1: realloc as needed; 0: the caller's fixed buffer */
} png_sink_t;

static int sink_put(png_sink_t *s, const void *data, size_t n)
{
    if (n > s->cap - s->len) {
        size_t cap = s->cap * 2 > s->len + n ? s->cap * 2 : s->len + n;
        uint8_t *buf = s->grow ? realloc(s->buf, cap) : NULL;
        if (buf == NULL)
            return -1;
        s->buf = buf;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* one chunk: length, type, data, CRC-32 of type and data */
static int sink_chunk(png_sink_t *s, const char type[4], const uint8_t *data, size_t len)
{
    uint8_t head[8], tail[4];
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len > 0x7FFFFFFFu)
        return -1;
    put_be32(head, (uint32_t)len);
    memcpy(head + 4, type, 4);
    if (len != 0)
        crc = crc32(crc, data, (uInt)len);
    put_be32(tail, (uint32_t)crc);
    return sink_put(s, head, 8) != 0 || (len != 0 && sink_put(s, data, len) != 0) || sink_put(s, tail, 4) != 0 ? -1 : 0;
}

static size_t png_side(const qr_matrix_t *m, int scale)
{
    return (size_t)(m->width + 2 * QR_QUIET_ZONE) * (size_t)scale;
}

size_t qr_render_png_bound(const qr_matrix_t *m, int scale)
{
    size_t side = png_side(m, scale), raw = side * ((side + 7) / 8 + 1); /* rows with their filter byte */
    return raw + raw / 8 + 1024; /* deflate's stored blocks, zlib header, signature, chunks */
}

/* The first pixel row (1 bit each, 1 = white) of module row MY, into ROW. */
static void png_fill_row(const qr_matrix_t *m, int scale, int my, uint8_t *row, size_t rowbytes)
{
    int modules = m->width + 2 * QR_QUIET_ZONE;
    memset(row, 0xFF, rowbytes);
    for (int mx = 0; mx != modules; ++mx) {
        if (!module_dark(m, mx, my))
            continue;
        int px = mx * scale, end = px + scale;
        for (; px != end && (px & 7) != 0; ++px)
            row[px / 8] &= (uint8_t) ~(0x80 >> (px & 7));
        for (; end - px >= 8; px += 8)
            row[px / 8] = 0;
        for (; px != end; ++px)
            row[px / 8] &= (uint8_t) ~(0x80 >> (px & 7));
    }
}

static int png_write(const qr_matrix_t *m, int scale, png_sink_t *sink)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t side = png_side(m, scale), rowbytes = (side + 7) / 8, stride = rowbytes + 1, rawlen;
    uint8_t ihdr[13], *raw, *z = NULL;
    z_stream zs;
    int ret = -1;
    if (scale < QR_MIN_SCALE || scale > QR_MAX_SCALE || m->dark == NULL)
        return -1;
    rawlen = side * stride;
    if ((raw = calloc(1, rawlen)) == NULL) /* zero: the filtered repeats */
        return -1;
    for (int my = 0; my != m->width + 2 * QR_QUIET_ZONE; ++my) {
        uint8_t *first = raw + (size_t)my * (size_t)scale * stride;
        first[0] = 0; /* None */
        png_fill_row(m, scale, my, first + 1, rowbytes);
        for (int i = 1; i != scale; ++i)
            first[(size_t)i * stride] = 2; /* Up: the same row again, all zero */
    }
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 1, Z_DEFLATED, 12, 4, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(raw);
        return -1;
    }
    size_t zcap = deflateBound(&zs, rawlen);
    if ((z = malloc(zcap)) != NULL) {
        zs.next_in = raw;
        zs.avail_in = (uInt)rawlen;
        zs.next_out = z;
        zs.avail_out = (uInt)zcap;
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END) {
            put_be32(ihdr, (uint32_t)side);
            put_be32(ihdr + 4, (uint32_t)side);
            ihdr[8] = 1;  /* bit depth */
            ihdr[9] = 0;  /* grayscale */
            ihdr[10] = 0; /* deflate */
            ihdr[11] = 0; /* adaptive filtering */
            ihdr[12] = 0; /* not interlaced */
            if (sink_put(sink, signature, sizeof(signature)) == 0 && sink_chunk(sink, "IHDR", ihdr, sizeof(ihdr)) == 0 &&
                sink_chunk(sink, "IDAT", z, zs.total_out) == 0 && sink_chunk(sink, "IEND", NULL, 0) == 0)
                ret = 0;
        }
    }
    deflateEnd(&zs);
    free(z);
    free(raw);
    return ret;
}

int qr_render_png(const qr_matrix_t *m, int scale, uint8_t *buf, size_t bufsz, size_t *outlen)
{
    png_sink_t sink = {.buf = buf, .cap = bufsz, .grow = 0};
    if (png_write(m, scale, &sink) != 0)
        return -1;
    *outlen = sink.len;
    return 0;
}

int qr_render_png_alloc(const qr_matrix_t *m, int scale, uint8_t **out, size_t *outlen)
{
    png_sink_t sink = {.grow = 1};
    if ((sink.buf = malloc(sink.cap = 4096)) == NULL)
        return -1;
    if (png_write(m, scale, &sink) != 0) {
        free(sink.buf);
        return -1;
    }
    *out = sink.buf;
    *outlen = sink.len;
    return 0;
}

/* ---- SVG -------------------------------------------------------------------------------------- */

typedef struct {
    char *buf; /* NULL: only measure */
    size_t cap, len;
} text_out_t;

static void out_printf(text_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(text_out_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *dst = o->buf != NULL && o->len < o->cap ? o->buf + o->len : NULL;
    va_start(ap, fmt);
    n = vsnprintf(dst, dst != NULL ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* Each horizontal run of dark modules becomes one rectangle of the path. */
static void svg_path(const qr_matrix_t *m, text_out_t *o)
{
    for (int y = 0; y != m->width; ++y) {
        for (int x = 0; x != m->width;) {
            int run = 0;
            while (x + run < m->width && m->dark[y * m->width + x + run])
                ++run;
            if (run != 0)
                out_printf(o, "M%d %dh%dv1h-%dz", x + QR_QUIET_ZONE, y + QR_QUIET_ZONE, run, run);
            x += run != 0 ? run : 1;
        }
    }
}

static void svg_write(const qr_matrix_t *m, int scale, text_out_t *o)
{
    int side = m->width + 2 * QR_QUIET_ZONE;
    out_printf(o,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
               side * scale, side * scale, side, side, side, side);
    svg_path(m, o);
    out_printf(o, "\"/></svg>\n");
}

int qr_render_svg(const qr_matrix_t *m, int scale, char *buf, size_t bufsz, size_t *outlen)
{
    text_out_t o = {.buf = buf, .cap = bufsz};
    if (scale < 1 || scale > QR_MAX_SCALE || m->dark == NULL)
        return -1;
    svg_write(m, scale, &o);
    *outlen = o.len;
    return buf == NULL || o.len < bufsz ? 0 : -1;
}

int qr_render_svg_alloc(const qr_matrix_t *m, int scale, char **out, size_t *outlen)
{
    size_t len;
    char *buf;
    if (qr_render_svg(m, scale, NULL, 0, &len) != 0 || (buf = malloc(len + 1)) == NULL)
        return -1;
    if (qr_render_svg(m, scale, buf, len + 1, outlen) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}
