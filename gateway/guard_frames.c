/*
 * gateway/guard_frames.c — the connection guard's HTTP/2 frame rules (README "Under attack"): what one
 * client frame costs the server against what the connection may spend. Pure: no h2o, no socket; guard.c
 * calls gw_h2_frame_check() before h2o reads each frame, and acts on the verdict.
 *
 *   RST_STREAM                      limits.h2_resets_per_second (Rapid Reset)
 *   PING, SETTINGS, PRIORITY,       limits.h2_control_frames_per_second: frames that make the server work
 *   WINDOW_UPDATE without data      (acknowledge, reprioritise, reschedule) and carry no request
 *   sent, empty DATA / HEADERS /
 *   CONTINUATION, unknown types     (these are ignored, as RFC 9113 §4.1 says, and never reach h2o)
 *   HEADERS + CONTINUATION          the block within limits.header_bytes (+1 KiB) and limits.head_timeout
 *   HEADERS … DATA                  a request body within limits.body_timeout
 */
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/guard_internal.h"

enum {
    FRAME_DATA = 0,
    FRAME_HEADERS = 1,
    FRAME_PRIORITY = 2,
    FRAME_RST_STREAM = 3,
    FRAME_SETTINGS = 4,
    FRAME_PUSH_PROMISE = 5,
    FRAME_PING = 6,
    FRAME_GOAWAY = 7,
    FRAME_WINDOW_UPDATE = 8,
    FRAME_CONTINUATION = 9,
};
#define FLAG_END_STREAM 0x1
#define FLAG_END_HEADERS 0x4
#define FRAME_HEADER_SIZE 9
#define MAX_FRAME_SIZE 16384 /* what h2o announces (SETTINGS_MAX_FRAME_SIZE is left at its default) */

int gw_bucket_take(gw_bucket_t *b, uint64_t rate, uint64_t now_ms)
{
    if (rate == 0)
        return 1;
    uint64_t drained = (now_ms - b->last_ms) * rate, cap = rate * 2000;
    b->level = drained >= b->level ? 0 : (uint32_t)(b->level - drained);
    b->last_ms = now_ms;
    if (b->level + 1000 > cap)
        return 0;
    b->level += 1000;
    return 1;
}

/* A request body begins. Slots of streams that ended unseen here (h2o refused them) are reused after
 * twice the timeout; with every slot busy the body is not timed. */
static void body_started(gw_h2_frames_t *s, uint32_t id, uint64_t now, uint64_t timeout)
{
    for (size_t i = 0; i != GW_GUARD_BODY_SLOTS; ++i)
        if (s->bodies[i].stream_id == 0 || now - s->bodies[i].started_ms >= 2 * timeout) {
            s->bodies[i].stream_id = id;
            s->bodies[i].started_ms = now;
            return;
        }
}

static void body_ended(gw_h2_frames_t *s, uint32_t id)
{
    for (size_t i = 0; i != GW_GUARD_BODY_SLOTS; ++i)
        if (s->bodies[i].stream_id == id)
            s->bodies[i].stream_id = 0;
}

/* DATA for stream ID: 1 if its body began TIMEOUT ago or more (a body trickled) */
static int body_overdue(const gw_h2_frames_t *s, uint32_t id, uint64_t now, uint64_t timeout)
{
    for (size_t i = 0; i != GW_GUARD_BODY_SLOTS; ++i)
        if (s->bodies[i].stream_id == id)
            return now - s->bodies[i].started_ms >= timeout;
    return 0;
}

int gw_h2_frame_check(gw_h2_frames_t *s, const gw_conf_t *conf, const uint8_t *src, size_t len, uint64_t now,
                      size_t bytes_written, size_t *frame_len)
{
    if (len < FRAME_HEADER_SIZE)
        return GW_H2_FRAME_PASS;
    uint32_t length = (uint32_t)src[0] << 16 | (uint32_t)src[1] << 8 | src[2];
    uint8_t type = src[3], flags = src[4];
    uint32_t id = ((uint32_t)src[5] << 24 | (uint32_t)src[6] << 16 | (uint32_t)src[7] << 8 | src[8]) & 0x7fffffff;
    if (length > MAX_FRAME_SIZE || len < FRAME_HEADER_SIZE + (size_t)length)
        return GW_H2_FRAME_PASS; /* incomplete, the preface ("PRI" is no frame length), or an error h2o reports */
    *frame_len = FRAME_HEADER_SIZE + length;
    int control = 0;
    switch (type) {
    case FRAME_DATA:
        control = length == 0 && (flags & FLAG_END_STREAM) == 0;
        if (conf->limits.body_timeout_ms != 0 && body_overdue(s, id, now, conf->limits.body_timeout_ms))
            return GW_GUARD_BODY_TIMEOUT;
        if ((flags & FLAG_END_STREAM) != 0)
            body_ended(s, id);
        break;
    case FRAME_HEADERS:
        if ((flags & FLAG_END_HEADERS) == 0) {
            s->header_block_bytes = length != 0 ? length : 1;
            s->header_block_since_ms = now;
            control = length == 0;
        }
        if ((flags & FLAG_END_STREAM) == 0) {
            if (id > s->max_stream_id && conf->limits.body_timeout_ms != 0) /* a new stream (else: trailers to come) */
                body_started(s, id, now, conf->limits.body_timeout_ms);
        } else {
            body_ended(s, id);
        }
        if (id > s->max_stream_id)
            s->max_stream_id = id;
        break;
    case FRAME_CONTINUATION:
        s->header_block_bytes += length;
        control = length == 0 && (flags & FLAG_END_HEADERS) == 0;
        if (s->header_block_bytes > conf->limits.header_bytes + 1024) /* h2o would drop the excess, and read on */
            return GW_GUARD_HEADER_BLOCK;
        if (conf->limits.head_timeout_ms != 0 && now - s->header_block_since_ms >= conf->limits.head_timeout_ms)
            return GW_GUARD_HEAD_TIMEOUT;
        if ((flags & FLAG_END_HEADERS) != 0)
            s->header_block_bytes = 0;
        break;
    case FRAME_RST_STREAM:
        /* a client cancels what it asked for; one that cancels at this rate asks in order to cancel */
        body_ended(s, id);
        if (!gw_bucket_take(&s->resets, conf->limits.h2_resets_per_second, now))
            return GW_GUARD_RESETS;
        break;
    case FRAME_PING: /* h2o sends no PING and one SETTINGS: every one of these costs it */
    case FRAME_SETTINGS:
    case FRAME_PRIORITY:
        control = 1;
        break;
    case FRAME_WINDOW_UPDATE:
        /* a receiver acknowledges what it was sent: free while data went out since the last one */
        control = bytes_written - s->written_at_window_update < 1024;
        s->written_at_window_update = bytes_written;
        break;
    case FRAME_PUSH_PROMISE:
    case FRAME_GOAWAY:
        break;
    default:
        if (s->header_block_bytes == 0) { /* an extension frame (inside a header block h2o refuses it) */
            if (!gw_bucket_take(&s->control, conf->limits.h2_control_frames_per_second, now))
                return GW_GUARD_CONTROL_FRAMES;
            return GW_H2_FRAME_IGNORE;
        }
        break;
    }
    if (control && !gw_bucket_take(&s->control, conf->limits.h2_control_frames_per_second, now))
        return GW_GUARD_CONTROL_FRAMES;
    return GW_H2_FRAME_PASS;
}
