/*
 * gateway/guard_internal.h — the HTTP/2 frame rules of the connection guard, apart from h2o so they can
 * be tested and fuzzed alone (guard_frames.c; guard.c applies them to every frame a client sends).
 */
#ifndef hegate_guard_internal_h
#define hegate_guard_internal_h

#include <stddef.h>
#include <stdint.h>
#include "gateway/conf.h"

#define GW_GUARD_BODY_SLOTS 8 /* request bodies in progress timed per HTTP/2 connection */

/* a leaky bucket of events */
typedef struct {
    uint32_t level; /* in 1/1000 event */
    uint64_t last_ms;
} gw_bucket_t;

/* 1 (and the event counted) if one more event fits RATE per second with bursts of 2 s; 0 if not.
 * RATE 0: no limit. */
int gw_bucket_take(gw_bucket_t *b, uint64_t rate, uint64_t now_ms);

/* A walk over an HPACK header block (RFC 7541 §6), fed a fragment at a time: it counts the field
 * representations and skips their strings without decoding them. Zeroed at the start of a block. */
typedef struct {
    uint8_t state;   /* where in a representation the next byte falls (guard_frames.c) */
    uint8_t strings; /* strings still to come in this representation */
    uint8_t shift;   /* of a string length's continuation bytes */
    uint32_t skip;   /* string bytes still to skip */
    uint32_t fields; /* representations begun, dynamic table size updates aside */
} gw_hpack_walk_t;

/* counts the fields in the LEN bytes of a header block fragment at P; returns the count so far */
uint32_t gw_hpack_walk(gw_hpack_walk_t *w, const uint8_t *p, size_t len);

/* what the guard remembers of one HTTP/2 connection's frames (zeroed at the start) */
typedef struct {
    gw_bucket_t resets, control;
    size_t written_at_window_update; /* bytes the server had sent at the last WINDOW_UPDATE */
    uint32_t max_stream_id;
    uint32_t header_block_bytes; /* of the header block in progress; 0: none */
    uint64_t header_block_since_ms;
    gw_hpack_walk_t fields; /* of the header block in progress, or the last one */
    /* whether the server has any stream in progress (guard.c asks h2o's stream counts): a RST_STREAM
     * while it has none cancels nothing it works on and is not counted. NULL: every RST_STREAM counts. */
    int (*streams_open)(void *ctx);
    void *stream_ctx;
    struct {
        uint32_t stream_id; /* 0: free */
        uint64_t started_ms;
    } bodies[GW_GUARD_BODY_SLOTS];
} gw_h2_frames_t;

enum {
    GW_H2_FRAME_PASS = -1,   /* hand the bytes to h2o (a frame, an incomplete one, the preface, garbage) */
    GW_H2_FRAME_IGNORE = -2, /* an extension frame of *FRAME_LEN bytes: consumed here, unseen by h2o */
};

/* Judges the frame at the start of SRC (LEN bytes received so far) against CONF's limits. NOW_MS is the
 * loop clock, BYTES_WRITTEN what the server has sent on the connection. Returns GW_H2_FRAME_PASS,
 * GW_H2_FRAME_IGNORE, or the GW_GUARD_* reason the connection must go for. */
int gw_h2_frame_check(gw_h2_frames_t *s, const gw_conf_t *conf, const uint8_t *src, size_t len, uint64_t now_ms,
                      size_t bytes_written, size_t *frame_len);

#endif
