/*
 * gateway/accesslog.c — the access log: one JSON object per line (SPEC §8).
 *
 * Called once per finished request (pipeline.c's dispose hook). Each thread appends to its own
 * buffer and writes whole lines with one write(2), at the latest 100 ms after the line was
 * made, so lines of different threads never interleave. What it writes is fixed: time, request
 * id, route, method, path WITHOUT the query string, status, bytes, duration, upstream, client
 * id — never a header, a query, a body or anything personal.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "gateway/gateway.h"

#define BUFSZ 65536
#define LINE_MAX_BYTES 4096

static int log_fd = -1;

typedef struct {
    char buf[BUFSZ];
    size_t len;
    h2o_timeout_entry_t flush_entry;
} thread_log_t;

static __thread thread_log_t *tlog;

int gw_accesslog_open(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        log_fd = 1;
        return 0;
    }
    if (strcmp(path, "off") == 0) {
        log_fd = -1;
        return 0;
    }
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return log_fd == -1 ? -1 : 0;
}

static void flush(thread_log_t *t)
{
    size_t off = 0;
    while (off < t->len) {
        ssize_t n = write(log_fd, t->buf + off, t->len - off);
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    t->len = 0;
}

static void on_flush_timer(h2o_timeout_entry_t *entry)
{
    thread_log_t *t = H2O_STRUCT_FROM_MEMBER(thread_log_t, flush_entry, entry);
    flush(t);
}

void gw_accesslog_write(gw_req_t *greq, int status, size_t bytes, uint64_t duration_us)
{
    if (log_fd == -1)
        return;
    if (tlog == NULL) {
        tlog = h2o_mem_alloc(sizeof(*tlog));
        memset(tlog, 0, sizeof(*tlog));
        tlog->flush_entry.cb = on_flush_timer;
    }
    if (tlog->len + LINE_MAX_BYTES > BUFSZ)
        flush(tlog);

    h2o_req_t *req = greq->req;
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40], path[1024], method[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    size_t plen = req->input.path.len;
    if (req->input.query_at != SIZE_MAX && req->input.query_at < plen)
        plen = req->input.query_at;
    if (plen > 300)
        plen = 300; /* a long path says nothing more about the request */
    gw_json_escape(path, sizeof(path), req->input.path.base, plen);
    gw_json_escape(method, sizeof(method), req->input.method.base, req->input.method.len > 16 ? 16 : req->input.method.len);

    char *out = tlog->buf + tlog->len;
    int n = snprintf(out, LINE_MAX_BYTES,
                     "{\"time\":\"%s.%03ldZ\",\"request_id\":\"%s\",\"route\":%s%s%s,\"method\":\"%s\",\"path\":\"%s\","
                     "\"status\":%d,\"bytes\":%zu,\"duration\":%.6f,\"upstream\":%s%s%s,\"client_id\":%s%s%s}\n",
                     ts, (long)tv.tv_usec / 1000, greq->request_id, greq->rt ? "\"" : "", greq->rt ? greq->rt->name : "null",
                     greq->rt ? "\"" : "", method, path, status, bytes, duration_us / 1e6, greq->upstream ? "\"" : "",
                     greq->upstream ? greq->upstream : "null", greq->upstream ? "\"" : "", greq->client_id ? "\"" : "",
                     greq->client_id ? greq->client_id : "null", greq->client_id ? "\"" : "");
    if (n <= 0 || n >= LINE_MAX_BYTES)
        return;
    tlog->len += (size_t)n;
    if (!h2o_timeout_is_linked(&tlog->flush_entry))
        h2o_timeout_link(greq->thread->loop, &greq->thread->ctx.hundred_ms_timeout, &tlog->flush_entry);
}

void gw_accesslog_flush_thread(void)
{
    if (tlog == NULL)
        return;
    if (log_fd != -1)
        flush(tlog);
    h2o_timeout_unlink(&tlog->flush_entry);
    free(tlog);
    tlog = NULL;
}
