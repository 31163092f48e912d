/*
 * tests/fuzz/fuzz_guard_frames.c — libFuzzer target for the connection guard's HTTP/2 frame rules
 * (gateway/guard_frames.c), which look at every frame a client sends before h2o does. The input is read
 * as one connection's byte stream, frame after frame, the clock moving with the bytes: whatever the
 * bytes, each verdict is one the guard knows, and a frame's length is never taken beyond what was sent.
 * The same bytes as one HPACK header block: the walk counts the same whatever the fragments.
 */
#include <assert.h>
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/guard_internal.h"

/* the HPACK walk counts the same fields however the block is cut into fragments */
static void walk_in_pieces(const unsigned char *data, size_t size)
{
    gw_hpack_walk_t whole, pieces;
    memset(&whole, 0, sizeof(whole));
    memset(&pieces, 0, sizeof(pieces));
    gw_hpack_walk(&whole, data, size);
    for (size_t off = 0, step = 1; off < size; off += step, step = step * 3 % 17 + 1)
        gw_hpack_walk(&pieces, data + off, step < size - off ? step : size - off);
    assert(whole.fields == pieces.fields && whole.state == pieces.state && whole.skip == pieces.skip);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    walk_in_pieces(data, size);
    gw_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.limits.header_bytes = 4096;
    conf.limits.header_fields = 20; /* the HPACK walk, over every HEADERS and CONTINUATION payload */
    conf.limits.head_timeout_ms = 1000;
    conf.limits.body_timeout_ms = 2000;
    conf.limits.h2_resets_per_second = 5;
    conf.limits.h2_control_frames_per_second = 5;
    gw_h2_frames_t s;
    memset(&s, 0, sizeof(s));
    uint64_t now = 1;
    size_t off = 0, written = 0;
    while (off < size) {
        size_t flen = 0;
        int v = gw_h2_frame_check(&s, &conf, data + off, size - off, now, written, &flen);
        assert(v == GW_H2_FRAME_PASS || v == GW_H2_FRAME_IGNORE || (v >= 0 && v < GW_GUARD_REASONS));
        if (v >= 0)
            return 0; /* the connection would go */
        if (v == GW_H2_FRAME_IGNORE) {
            assert(flen >= 9 && flen <= size - off);
            off += flen;
        } else if (size - off >= 9) { /* h2o would take the frame: step over it as it would */
            size_t len = 9 + ((size_t)data[off] << 16 | (size_t)data[off + 1] << 8 | data[off + 2]);
            if (len > size - off)
                return 0;
            off += len;
        } else {
            return 0;
        }
        now += data[off - 1] * 7; /* time moves by what the bytes say */
        written += data[off - 1] * 100;
    }
    return 0;
}
