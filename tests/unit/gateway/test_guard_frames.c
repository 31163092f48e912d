/*
 * tests/unit/gateway/test_guard_frames.c — gateway/guard_frames.c, the connection guard's HTTP/2 frame
 * rules without h2o: the leaky bucket, the cancelled-stream budget (open streams only) and control-frame budget, header blocks
 * bounded in size, fields (the HPACK walk) and time, trickled bodies, extension frames ignored, and bytes that are no frame yet.
 */
#include "tests/unit/unit.h"
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/guard_internal.h"

static gw_conf_t conf;

static int setup(void **state)
{
    memset(&conf, 0, sizeof(conf));
    conf.limits.header_bytes = 4096;
    conf.limits.head_timeout_ms = 10000;
    conf.limits.body_timeout_ms = 60000;
    conf.limits.h2_resets_per_second = 100;
    conf.limits.h2_control_frames_per_second = 10;
    return 0;
}

/* a frame header with LENGTH bytes of payload after it, in BUF */
static size_t frame(uint8_t *buf, uint32_t length, uint8_t type, uint8_t flags, uint32_t id)
{
    buf[0] = (uint8_t)(length >> 16), buf[1] = (uint8_t)(length >> 8), buf[2] = (uint8_t)length;
    buf[3] = type, buf[4] = flags;
    buf[5] = (uint8_t)(id >> 24), buf[6] = (uint8_t)(id >> 16), buf[7] = (uint8_t)(id >> 8), buf[8] = (uint8_t)id;
    memset(buf + 9, 0, length);
    return 9 + length;
}

static uint8_t buf[9 + 16384];

static int check(gw_h2_frames_t *s, uint32_t length, uint8_t type, uint8_t flags, uint32_t id, uint64_t now, size_t written)
{
    size_t n = frame(buf, length, type, flags, id), flen = 0;
    int v = gw_h2_frame_check(s, &conf, buf, n, now, written, &flen);
    if (v != GW_H2_FRAME_PASS)
        assert_int_equal(flen, n);
    return v;
}

static void test_bucket(void **state)
{
    gw_bucket_t b = {0, 1000};
    for (int i = 0; i != 20; ++i) /* bursts of two seconds' worth */
        assert_true(gw_bucket_take(&b, 10, 1000));
    assert_false(gw_bucket_take(&b, 10, 1000));
    assert_false(gw_bucket_take(&b, 10, 1099));
    assert_true(gw_bucket_take(&b, 10, 1100)); /* 100 ms drain one event at 10/s */
    assert_false(gw_bucket_take(&b, 10, 1100));
    gw_bucket_t off = {0, 0};
    for (int i = 0; i != 100000; ++i)
        assert_true(gw_bucket_take(&off, 0, 5));
}

static void test_rapid_reset_budget(void **state)
{
    gw_h2_frames_t s = {0};
    for (uint32_t i = 0; i != 200; ++i) {
        assert_int_equal(check(&s, 10, 1, 0x5, 1 + 2 * i, 1000, 0), GW_H2_FRAME_PASS); /* HEADERS END_STREAM|END_HEADERS */
        assert_int_equal(check(&s, 4, 3, 0, 1 + 2 * i, 1000, 0), GW_H2_FRAME_PASS);     /* RST_STREAM */
    }
    assert_int_equal(check(&s, 4, 3, 0, 401, 1000, 0), GW_GUARD_RESETS);
    gw_h2_frames_t calm = {0}; /* 100 a second for a minute is within the budget */
    for (uint64_t t = 0; t != 6000; ++t)
        assert_int_equal(check(&calm, 4, 3, 0, 1, 10000 + t * 10, 0), GW_H2_FRAME_PASS);
}

/* the server's view of its streams: OPEN of them in progress */
static int open_streams;
static int streams_open(void *ctx)
{
    assert_ptr_equal(ctx, &open_streams);
    return open_streams != 0;
}

static void test_resets_of_answered_streams_are_free(void **state)
{
    gw_h2_frames_t s = {.streams_open = streams_open, .stream_ctx = &open_streams};
    open_streams = 0; /* a client cancelling what was already answered (a browser closing a page) */
    for (uint32_t i = 0; i != 1000; ++i)
        assert_int_equal(check(&s, 4, 3, 0, 1 + 2 * i, 1000, 0), GW_H2_FRAME_PASS);
    open_streams = 1; /* the same, each cancelling work in progress: the budget holds */
    for (uint32_t i = 0; i != 200; ++i)
        assert_int_equal(check(&s, 4, 3, 0, 3001 + 2 * i, 1000, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&s, 4, 3, 0, 3401, 1000, 0), GW_GUARD_RESETS);
}

static void test_control_frames(void **state)
{
    static const uint8_t types[] = {6 /* PING */, 4 /* SETTINGS */, 2 /* PRIORITY */};
    for (size_t t = 0; t != sizeof(types); ++t) {
        gw_h2_frames_t s = {0};
        for (int i = 0; i != 20; ++i)
            assert_int_equal(check(&s, types[t] == 6 ? 8 : 5, types[t], 0, types[t] == 2 ? 3 : 0, 500, 0), GW_H2_FRAME_PASS);
        assert_int_equal(check(&s, 8, types[t], 0, 0, 500, 0), GW_GUARD_CONTROL_FRAMES);
    }
    /* WINDOW_UPDATE: free while the server sent data since the last one, counted when it did not */
    gw_h2_frames_t w = {0};
    for (size_t i = 0; i != 1000; ++i)
        assert_int_equal(check(&w, 4, 8, 0, 1, 500, (i + 1) * 16384), GW_H2_FRAME_PASS);
    for (int i = 0; i != 20; ++i)
        assert_int_equal(check(&w, 4, 8, 0, 1, 500, 1000 * 16384), GW_H2_FRAME_PASS);
    assert_int_equal(check(&w, 4, 8, 0, 1, 500, 1000 * 16384), GW_GUARD_CONTROL_FRAMES);
    /* empty DATA that ends nothing is a control frame too */
    gw_h2_frames_t d = {0};
    for (int i = 0; i != 20; ++i)
        assert_int_equal(check(&d, 0, 0, 0, 1, 500, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&d, 0, 0, 0, 1, 500, 0), GW_GUARD_CONTROL_FRAMES);
}

static void test_extension_frames_are_ignored(void **state)
{
    gw_h2_frames_t s = {0};
    for (int i = 0; i != 20; ++i)
        assert_int_equal(check(&s, 4, 0x77, 0, 0, 500, 0), GW_H2_FRAME_IGNORE);
    assert_int_equal(check(&s, 4, 0x77, 0, 0, 500, 0), GW_GUARD_CONTROL_FRAMES);
    /* inside a header block h2o must see it (and refuse it) */
    gw_h2_frames_t h = {0};
    assert_int_equal(check(&h, 100, 1, 0, 1, 500, 0), GW_H2_FRAME_PASS); /* HEADERS without END_HEADERS */
    assert_int_equal(check(&h, 4, 0x77, 0, 0, 500, 0), GW_H2_FRAME_PASS);
}

static void test_header_block_size_and_time(void **state)
{
    gw_h2_frames_t s = {0};
    assert_int_equal(check(&s, 100, 1, 0x1, 1, 500, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&s, 4096, 9, 0, 1, 500, 0), GW_H2_FRAME_PASS);  /* 4196 ≤ 4096 + 1024 */
    assert_int_equal(check(&s, 1000, 9, 0, 1, 500, 0), GW_GUARD_HEADER_BLOCK);
    gw_h2_frames_t t = {0};
    assert_int_equal(check(&t, 100, 1, 0x1, 1, 500, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&t, 1, 9, 0, 1, 10499, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&t, 1, 9, 0x4, 1, 10500, 0), GW_GUARD_HEAD_TIMEOUT);
    gw_h2_frames_t ok = {0}; /* a block ended in time resets the count */
    for (uint32_t id = 1; id != 41; id += 2) {
        assert_int_equal(check(&ok, 1000, 1, 0x1, id, 500, 0), GW_H2_FRAME_PASS);
        assert_int_equal(check(&ok, 3000, 9, 0x4, id, 500, 0), GW_H2_FRAME_PASS);
    }
}

/* every kind of representation, with long indexes and lengths (RFC 7541 §5.1 continuation bytes) */
static const uint8_t block[] = {
    0x82,                                  /* indexed: :method GET */
    0x41, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* incremental indexing, name 1: :authority */
    0x40, 0x03, 'a', 'b', 'c', 0x7f, 0x01, /* incremental indexing, new name, a value of 128 bytes: */
};
static const uint8_t block_tail[] = {
    0x3f, 0xe1, 0x1f,                     /* dynamic table size update 4096: no field */
    0x0f, 0x0d, 0x01, 'x',                /* without indexing, name 28 (content-length) */
    0x10, 0x81, 0xff, 0x00,               /* never indexed, new name (1 byte, Huffman), empty value */
    0xff, 0x00,                           /* indexed 127 */
};

static size_t whole_block(uint8_t *out)
{
    size_t n = 0;
    memcpy(out, block, sizeof(block)), n += sizeof(block);
    memset(out + n, 'v', 128), n += 128;
    memcpy(out + n, block_tail, sizeof(block_tail)), n += sizeof(block_tail);
    return n;
}

static void test_hpack_walk(void **state)
{
    uint8_t b[512];
    size_t n = whole_block(b);
    gw_hpack_walk_t w = {0};
    assert_int_equal(gw_hpack_walk(&w, b, n), 6);
    gw_hpack_walk_t bytewise = {0}; /* fragments end anywhere: inside an index, a length, a string */
    for (size_t i = 0; i != n; ++i)
        gw_hpack_walk(&bytewise, b + i, 1);
    assert_int_equal(bytewise.fields, 6);
    assert_int_equal(bytewise.state, w.state);
    gw_hpack_walk_t twice = {0};
    gw_hpack_walk(&twice, b, n);
    assert_int_equal(gw_hpack_walk(&twice, b, n), 12);
    assert_int_equal(gw_hpack_walk(&twice, NULL, 0), 12); /* an empty fragment (no pointer) changes nothing */
}

/* HEADERS (+ CONTINUATION) of FIELDS indexed fields (one byte each), FIRST of them in the HEADERS frame */
static int indexed_fields(gw_h2_frames_t *s, uint32_t fields, uint32_t first, uint8_t headers_flags)
{
    size_t n = frame(buf, first, 1, headers_flags | (first == fields ? 0x4 : 0), 1);
    memset(buf + 9, 0x82, first);
    size_t flen = 0;
    int v = gw_h2_frame_check(s, &conf, buf, n, 500, 0, &flen);
    if (v != GW_H2_FRAME_PASS || first == fields)
        return v;
    n = frame(buf, fields - first, 9, 0x4, 1);
    memset(buf + 9, 0x82, fields - first);
    return gw_h2_frame_check(s, &conf, buf, n, 500, 0, &flen);
}

static void test_header_fields(void **state)
{
    conf.limits.header_fields = 100;
    gw_h2_frames_t s = {0};
    assert_int_equal(indexed_fields(&s, 100, 100, 0x1), GW_H2_FRAME_PASS);
    assert_int_equal(indexed_fields(&s, 100, 100, 0x1), GW_H2_FRAME_PASS); /* each block counts from zero */
    assert_int_equal(indexed_fields(&s, 101, 101, 0x1), GW_GUARD_HEADER_FIELDS);
    gw_h2_frames_t c = {0};
    assert_int_equal(indexed_fields(&c, 101, 60, 0x1), GW_GUARD_HEADER_FIELDS); /* counted across CONTINUATION */
    gw_h2_frames_t c2 = {0};
    assert_int_equal(indexed_fields(&c2, 100, 60, 0x1), GW_H2_FRAME_PASS);
    /* padding and priority are not fields: 100 fields, 5 bytes of priority and 40 of padding */
    gw_h2_frames_t p = {0};
    size_t n = frame(buf, 1 + 5 + 100 + 40, 1, 0x4 | 0x8 | 0x20, 1), flen = 0;
    buf[9] = 40;
    memset(buf + 9 + 1 + 5, 0x82, 100);
    memset(buf + 9 + 1 + 5 + 100, 0x82, 40);
    assert_int_equal(gw_h2_frame_check(&p, &conf, buf, n, 500, 0, &flen), GW_H2_FRAME_PASS);
    /* an empty HEADERS frame that claims padding has no fragment at all: h2o's to refuse, nothing counted */
    gw_h2_frames_t e = {0};
    n = frame(buf, 0, 1, 0x4 | 0x8 | 0x20, 1);
    assert_int_equal(gw_h2_frame_check(&e, &conf, buf, n, 500, 0, &flen), GW_H2_FRAME_PASS);
    assert_int_equal(e.fields.fields, 0);
    conf.limits.header_fields = 0; /* off */
    gw_h2_frames_t off = {0};
    assert_int_equal(indexed_fields(&off, 5000, 5000, 0x1), GW_H2_FRAME_PASS);
}

static void test_trickled_body(void **state)
{
    gw_h2_frames_t s = {0};
    assert_int_equal(check(&s, 20, 1, 0x4, 1, 1000, 0), GW_H2_FRAME_PASS); /* HEADERS, a body to come */
    assert_int_equal(check(&s, 20, 1, 0x4, 3, 1000, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&s, 1, 0, 0, 1, 60999, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&s, 1, 0, 0x1, 3, 30000, 0), GW_H2_FRAME_PASS); /* stream 3 ends in time */
    assert_int_equal(check(&s, 1, 0, 0, 3, 90000, 0), GW_H2_FRAME_PASS);   /* (not timed any more) */
    assert_int_equal(check(&s, 1, 0, 0, 1, 61000, 0), GW_GUARD_BODY_TIMEOUT);
    gw_h2_frames_t r = {0}; /* a stream reset stops its clock */
    assert_int_equal(check(&r, 20, 1, 0x4, 1, 1000, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&r, 4, 3, 0, 1, 2000, 0), GW_H2_FRAME_PASS);
    assert_int_equal(check(&r, 1, 0, 0, 1, 100000, 0), GW_H2_FRAME_PASS);
}

static void test_not_a_frame_yet(void **state)
{
    gw_h2_frames_t s = {0};
    size_t flen = 0;
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_int_equal(gw_h2_frame_check(&s, &conf, preface, sizeof(preface) - 1, 0, 0, &flen), GW_H2_FRAME_PASS);
    size_t n = frame(buf, 100, 0x77, 0, 0);
    assert_int_equal(gw_h2_frame_check(&s, &conf, buf, n - 1, 0, 0, &flen), GW_H2_FRAME_PASS); /* incomplete */
    assert_int_equal(gw_h2_frame_check(&s, &conf, buf, 8, 0, 0, &flen), GW_H2_FRAME_PASS);
    gw_h2_frames_t fresh = {0};
    assert_memory_equal(&s, &fresh, sizeof(s)); /* nothing counted */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bucket, setup),
        cmocka_unit_test_setup(test_rapid_reset_budget, setup),
        cmocka_unit_test_setup(test_resets_of_answered_streams_are_free, setup),
        cmocka_unit_test_setup(test_control_frames, setup),
        cmocka_unit_test_setup(test_extension_frames_are_ignored, setup),
        cmocka_unit_test_setup(test_header_block_size_and_time, setup),
        cmocka_unit_test_setup(test_hpack_walk, setup),
        cmocka_unit_test_setup(test_header_fields, setup),
        cmocka_unit_test_setup(test_trickled_body, setup),
        cmocka_unit_test_setup(test_not_a_frame_yet, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
