/*
 * tests/unit/qr/test_render.c — QR symbols of the HMT1 text: version 10 at error correction M
 * (read back from the symbol's own format bits), PNG decoded by zbarimg to exactly the text,
 * PNG/SVG geometry (scale, 4-module quiet zone), and buffers that are too small.
 */
#include <unistd.h>
#include "tests/unit/unit.h"
#include "qr/qr.h"

static char code_text[HMT1_TEXT_LEN + 1];

static int setup(void **state)
{
    (void)state;
    qr_key_t *issuer = crypto_key_generate(), *device = crypto_key_generate();
    qr_credential_t c = {.scene = QR_SCENE_TRANSIT, .serial = 1, .expires = 2000000000};
    uint8_t cred[HMT1_CRED_LEN], code[HMT1_LEN];
    int ret;
    crypto_key_point(device, c.device_key);
    ret = qr_credential_issue(&c, issuer, cred) == 0 && qr_code_make(cred, device, 1750000000, 60, 1, NULL, code) == 0 ? 0 : -1;
    qr_code_to_text(code, code_text);
    crypto_key_free(issuer);
    crypto_key_free(device);
    return ret;
}

/* The 15 format bits next to the top-left finder (ISO/IEC 18004 §7.9), unmasked; bits 14–13 are the
 * error correction level: 01 L, 00 M, 11 Q, 10 H. */
static int ecc_level_bits(const qr_matrix_t *m)
{
    unsigned format = 0;
    for (int i = 0; i != 15; ++i) {
        int x, y;
        if (i < 6)
            x = 8, y = i;
        else if (i < 8)
            x = 8, y = i + 1;
        else if (i == 8)
            x = 7, y = 8;
        else
            x = 14 - i, y = 8;
        format |= (unsigned)m->dark[y * m->width + x] << i;
    }
    return (int)((format ^ 0x5412) >> 13);
}

static void test_version_10_ecc_m(void **state)
{
    (void)state;
    qr_matrix_t m;
    assert_int_equal(strlen(code_text), 311);
    assert_int_equal(qr_matrix_encode(code_text, strlen(code_text), &m), 0);
    assert_int_equal(m.version, 10);
    assert_int_equal(m.width, 57);
    assert_int_equal(ecc_level_bits(&m), 0); /* M */
    qr_matrix_free(&m);
    assert_int_equal(qr_matrix_encode("", 0, &m), -1);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* What zbarimg reads from the image at PATH, without its trailing newline. */
static char *zbar(const char *path)
{
    char cmd[256], *out = calloc(1, 8192);
    size_t n;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "zbarimg --raw -q '%s' 2>/dev/null", path);
    assert_non_null(p = popen(cmd, "r"));
    n = fread(out, 1, 8191, p);
    pclose(p);
    if (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    return out;
}

static unsigned be32(const uint8_t *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

static void test_png_scans_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/hegate-qr-render-XXXXXX", path[64];
    qr_matrix_t m;
    uint8_t *png;
    size_t len;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/code.png", dir);
    assert_int_equal(qr_matrix_encode(code_text, strlen(code_text), &m), 0);
    for (int scale = QR_MIN_SCALE; scale <= 6; ++scale) {
        assert_int_equal(qr_render_png_alloc(&m, scale, &png, &len), 0);
        assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
        assert_memory_equal(png + 12, "IHDR", 4);
        assert_int_equal(be32(png + 16), (57 + 2 * QR_QUIET_ZONE) * scale); /* width */
        assert_int_equal(be32(png + 20), (57 + 2 * QR_QUIET_ZONE) * scale); /* height */
        assert_int_equal(png[24], 1);                                       /* bit depth */
        assert_int_equal(png[25], 0);                                       /* grayscale */
        write_file(path, png, len);
        char *text = zbar(path);
        assert_string_equal(text, code_text);
        free(text);
        free(png);
    }
    qr_matrix_free(&m);
    unlink(path);
    rmdir(dir);
}

static void test_png_buffers(void **state)
{
    (void)state;
    qr_matrix_t m;
    uint8_t *a, *b;
    size_t alen, blen, bound;
    assert_int_equal(qr_matrix_encode(code_text, strlen(code_text), &m), 0);
    assert_int_equal(qr_render_png_alloc(&m, 4, &a, &alen), 0);
    bound = qr_render_png_bound(&m, 4);
    assert_true(bound >= alen);
    b = malloc(bound);
    assert_int_equal(qr_render_png(&m, 4, b, bound, &blen), 0);
    assert_int_equal(blen, alen);
    assert_memory_equal(a, b, alen);
    assert_int_equal(qr_render_png(&m, 4, b, alen - 1, &blen), -1); /* one byte short */
    assert_int_equal(qr_render_png(&m, 4, b, alen, &blen), 0);
    assert_int_equal(qr_render_png(&m, 3, b, bound, &blen), -1); /* below 4 px per module */
    assert_int_equal(qr_render_png(&m, QR_MAX_SCALE + 1, b, bound, &blen), -1);
    free(a);
    free(b);
    qr_matrix_free(&m);
}

/* Parses the SVG's path back into modules and compares them with the matrix. */
static void assert_svg_draws(const char *svg, const qr_matrix_t *m)
{
    int side = m->width + 2 * QR_QUIET_ZONE, x, y, run, run2, used;
    unsigned char *drawn = calloc((size_t)(side * side), 1);
    const char *d = strstr(svg, " d=\"");
    assert_non_null(d);
    for (d += 4; *d == 'M'; d += used) {
        assert_int_equal(sscanf(d, "M%d %dh%dv1h-%dz%n", &x, &y, &run, &run2, &used), 4);
        assert_int_equal(run, run2);
        for (int i = 0; i != run; ++i) {
            assert_true(x + i < side && y < side);
            assert_int_equal(drawn[y * side + x + i], 0); /* no module drawn twice */
            drawn[y * side + x + i] = 1;
        }
    }
    assert_int_equal(*d, '"');
    for (y = 0; y != side; ++y)
        for (x = 0; x != side; ++x) {
            int mx = x - QR_QUIET_ZONE, my = y - QR_QUIET_ZONE;
            int want = mx >= 0 && my >= 0 && mx < m->width && my < m->width && m->dark[my * m->width + mx];
            assert_int_equal(drawn[y * side + x], want);
        }
    free(drawn);
}

static void test_svg(void **state)
{
    (void)state;
    qr_matrix_t m;
    char *svg, small[64];
    size_t len, measured;
    assert_int_equal(qr_matrix_encode(code_text, strlen(code_text), &m), 0);
    assert_int_equal(qr_render_svg(&m, 4, NULL, 0, &measured), 0);
    assert_int_equal(qr_render_svg_alloc(&m, 4, &svg, &len), 0);
    assert_int_equal(len, measured);
    assert_int_equal(strlen(svg), len);
    assert_memory_equal(svg, "<svg ", 5);
    assert_non_null(strstr(svg, "viewBox=\"0 0 65 65\""));
    assert_non_null(strstr(svg, "width=\"260\""));
    assert_non_null(strstr(svg, "<path "));
    assert_null(strstr(strstr(svg, "<path ") + 1, "<path")); /* one path */
    assert_svg_draws(svg, &m);
    assert_int_equal(qr_render_svg(&m, 4, small, sizeof(small), &len), -1);
    {
        char *exact = malloc(measured + 1);
        assert_int_equal(qr_render_svg(&m, 4, exact, measured, &len), -1); /* no room for the NUL */
        assert_int_equal(qr_render_svg(&m, 4, exact, measured + 1, &len), 0);
        assert_string_equal(exact, svg);
        free(exact);
    }
    free(svg);
    qr_matrix_free(&m);
}

static void test_other_text(void **state)
{
    (void)state;
    char dir[] = "/tmp/hegate-qr-render-XXXXXX", path[64];
    qr_matrix_t m;
    uint8_t *png;
    size_t len;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/other.png", dir);
    assert_int_equal(qr_matrix_encode("https://hegate.example/qr?x=1", 29, &m), 0); /* lower case: 8-bit mode */
    assert_int_equal(ecc_level_bits(&m), 0);
    assert_int_equal(qr_render_png_alloc(&m, 4, &png, &len), 0);
    write_file(path, png, len);
    char *text = zbar(path);
    assert_string_equal(text, "https://hegate.example/qr?x=1");
    free(text);
    free(png);
    qr_matrix_free(&m);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_10_ecc_m), cmocka_unit_test(test_png_scans_back),
        cmocka_unit_test(test_png_buffers),      cmocka_unit_test(test_svg),
        cmocka_unit_test(test_other_text),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
