/*
 * qr/render.c — a code's text as a QR symbol (libqrencode), drawn as PNG (libpng) or SVG.
 *
 * Called by the gateway's GET /qr/v1/codes/{scene}.png|.svg and by tests. The HMT1 text is
 * encoded in alphanumeric mode at error correction M (version 10, 57×57); images keep the
 * 4-module quiet zone scanners need. Rendering allocates (libqrencode, libpng, the _alloc
 * variants) but never writes past a caller's buffer, and never sees anything but the code text.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <qrencode.h>
#include "qr/hmt1.h"

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

typedef struct {
    uint8_t *buf;
    size_t cap, len;
    int grow; /* 1: realloc as needed; 0: the caller's fixed buffer */
} png_sink_t;

static void sink_write(png_structp png, png_bytep data, size_t n)
{
    png_sink_t *s = png_get_io_ptr(png);
    if (n > s->cap - s->len) {
        size_t cap = s->cap * 2 > s->len + n ? s->cap * 2 : s->len + n;
        uint8_t *buf = s->grow ? realloc(s->buf, cap) : NULL;
        if (buf == NULL)
            png_error(png, "output buffer too small");
        s->buf = buf;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void sink_flush(png_structp png)
{
    (void)png;
}

static size_t png_side(const qr_matrix_t *m, int scale)
{
    return (size_t)(m->width + 2 * QR_QUIET_ZONE) * (size_t)scale;
}

size_t qr_render_png_bound(const qr_matrix_t *m, int scale)
{
    size_t side = png_side(m, scale), raw = side * ((side + 7) / 8 + 1); /* rows with their filter byte */
    return raw + raw / 8 + 1024; /* deflate's stored blocks, IDAT chunking, signature, IHDR, IEND */
}

/* One row of pixels (1 bit each, 1 = white) for module row MY. */
static void png_fill_row(const qr_matrix_t *m, int scale, int my, uint8_t *row, size_t rowbytes)
{
    int modules = m->width + 2 * QR_QUIET_ZONE;
    memset(row, 0xFF, rowbytes);
    for (int mx = 0; mx != modules; ++mx) {
        if (!module_dark(m, mx, my))
            continue;
        for (int px = mx * scale; px != (mx + 1) * scale; ++px)
            row[px / 8] &= (uint8_t) ~(0x80 >> (px % 8));
    }
}

/* libpng's default handlers print to stderr; ours stay quiet (the caller gets -1) and jump back. */
static void png_quiet_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg;
}

static int png_write(const qr_matrix_t *m, int scale, png_sink_t *sink)
{
    png_structp png;
    png_infop info;
    size_t side = png_side(m, scale), rowbytes = (side + 7) / 8;
    uint8_t *row;
    if (scale < QR_MIN_SCALE || scale > QR_MAX_SCALE || m->dark == NULL)
        return -1;
    if ((png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning)) == NULL)
        return -1;
    info = png_create_info_struct(png);
    row = malloc(rowbytes);
    if (info == NULL || row == NULL) {
        png_destroy_write_struct(&png, &info);
        free(row);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) { /* png_error: png, info and row are not changed after setjmp */
        png_destroy_write_struct(&png, &info);
        free(row);
        return -1;
    }
    png_set_write_fn(png, sink, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)side, (png_uint_32)side, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 1); /* speed: level 9 is ~30% slower for a few bytes */
    png_set_filter(png, 0, PNG_FILTER_NONE);
    png_write_info(png, info);
    for (int my = 0; my != m->width + 2 * QR_QUIET_ZONE; ++my) {
        png_fill_row(m, scale, my, row, rowbytes);
        for (int i = 0; i != scale; ++i)
            png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return 0;
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
