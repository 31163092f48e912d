/*
 * tests/fuzz/fuzz_guard_frames.c — libFuzzer target for the connection guard's HTTP/2 frame rules
 * (gateway/guard_frames.c), which look at every frame a client sends before h2o does. The input is read
 * as one connection's byte stream, frame after frame, the clock moving with the bytes: whatever the
 * bytes, each verdict is one the guard knows, and a frame's length is never taken beyond what was sent.
 */
#include <assert.h>
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/guard_internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    gw_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.limits.header_bytes = 4096;
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
