/*
 * gateway/guard_frames.c — the connection guard's HTTP/2 frame rules (README "Under attack"): what one
 * client frame costs the server against what the connection may spend. Pure: no h2o, no socket; guard.c
 * calls gw_h2_frame_check() before h2o reads each frame, and acts on the verdict.
 *
 *   RST_STREAM, streams in progress limits.h2_resets_per_second (Rapid Reset)
 *   PING, SETTINGS, PRIORITY,       limits.h2_control_frames_per_second: frames that make the server work
 *   WINDOW_UPDATE without data      (acknowledge, reprioritise, reschedule) and carry no request
 *   sent, empty DATA / HEADERS /
 *   CONTINUATION, unknown types     (these are ignored, as RFC 9113 §4.1 says, and never reach h2o)
 *   HEADERS + CONTINUATION          the block within limits.header_bytes (+1 KiB), limits.header_fields
 *                                   (counted without decoding: HPACK bomb) and limits.head_timeout
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

enum { AT_FIELD, IN_INDEX, AT_STRING, IN_LENGTH, IN_STRING };

uint32_t gw_hpack_walk(gw_hpack_walk_t *w, const uint8_t *p, size_t len)
{
    if (len == 0) /* P may be NULL then (a HEADERS frame with no fragment) */
        return w->fields;
    const uint8_t *end = p + len;
    while (p != end) {
        if (w->state == IN_STRING) { /* skip the string's bytes at once */
            size_t n = (size_t)(end - p) < w->skip ? (size_t)(end - p) : w->skip;
            p += n, w->skip -= (uint32_t)n;
            if (w->skip == 0)
                w->state = --w->strings != 0 ? AT_STRING : AT_FIELD;
            continue;
        }
        uint8_t b = *p++;
        switch (w->state) {
        case AT_FIELD: {
            unsigned prefix, index;
            if (b & 0x80) { /* indexed field */
                prefix = 7, index = b & 0x7f, w->strings = 0;
            } else if (b & 0x40) { /* literal with incremental indexing */
                prefix = 6, index = b & 0x3f, w->strings = index == 0 ? 2 : 1;
            } else if (b & 0x20) { /* dynamic table size update: no field */
                prefix = 5, index = b & 0x1f, w->strings = 0, --w->fields;
            } else { /* literal without indexing / never indexed */
                prefix = 4, index = b & 0x0f, w->strings = index == 0 ? 2 : 1;
            }
            ++w->fields;
            if (index == (1u << prefix) - 1)
                w->state = IN_INDEX;
            else
                w->state = w->strings != 0 ? AT_STRING : AT_FIELD;
            break;
        }
        case IN_INDEX: /* continuation bytes of an index (its value does not matter here) */
            if ((b & 0x80) == 0)
                w->state = w->strings != 0 ? AT_STRING : AT_FIELD;
            break;
        case AT_STRING:
            w->skip = b & 0x7f, w->shift = 0;
            w->state = w->skip == 0x7f ? IN_LENGTH : IN_STRING;
            break;
        case IN_LENGTH:
            if (w->shift < 28) /* longer than any block h2o accepts: what follows is h2o's to refuse */
                w->skip += (uint32_t)(b & 0x7f) << w->shift;
            w->shift += 7;
            if ((b & 0x80) == 0)
                w->state = IN_STRING;
            break;
        }
    }
    return w->fields;
}

/* the header block fragment of a HEADERS frame (PAYLOAD, LENGTH bytes): without padding and priority */
static size_t headers_fragment(const uint8_t *payload, size_t length, uint8_t flags, const uint8_t **fragment)
{
    size_t start = 0, pad = 0;
    if (flags & 0x8) { /* PADDED */
        if (length < 1)
            return 0;
        pad = payload[0], start = 1;
    }
    if (flags & 0x20) /* PRIORITY */
        start += 5;
    if (start + pad > length)
        return 0; /* h2o refuses it (PROTOCOL_ERROR) */
    *fragment = payload + start;
    return length - start - pad;
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
    case FRAME_HEADERS: {
        const uint8_t *fragment = NULL;
        size_t n = headers_fragment(src + FRAME_HEADER_SIZE, length, flags, &fragment);
        memset(&s->fields, 0, sizeof(s->fields));
        if (conf->limits.header_fields != 0 && gw_hpack_walk(&s->fields, fragment, n) > conf->limits.header_fields)
            return GW_GUARD_HEADER_FIELDS;
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
    }
    case FRAME_CONTINUATION:
        s->header_block_bytes += length;
        control = length == 0 && (flags & FLAG_END_HEADERS) == 0;
        if (s->header_block_bytes > conf->limits.header_bytes + 1024) /* h2o would drop the excess, and read on */
            return GW_GUARD_HEADER_BLOCK;
        if (conf->limits.header_fields != 0 &&
            gw_hpack_walk(&s->fields, src + FRAME_HEADER_SIZE, length) > conf->limits.header_fields)
            return GW_GUARD_HEADER_FIELDS;
        if (conf->limits.head_timeout_ms != 0 && now - s->header_block_since_ms >= conf->limits.head_timeout_ms)
            return GW_GUARD_HEAD_TIMEOUT;
        if ((flags & FLAG_END_HEADERS) != 0)
            s->header_block_bytes = 0;
        break;
    case FRAME_RST_STREAM:
        /* a client cancels what it asked for; one that cancels at this rate asks in order to cancel. A
         * reset that finds every stream answered (a browser leaving a page) costs nothing more. */
        body_ended(s, id);
        if (s->streams_open != NULL && !s->streams_open(s->stream_ctx))
            break;
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
