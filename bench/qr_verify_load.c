/*
 * bench/qr_verify_load.c — load client for POST /qr/v1/verify (issue 6). A code is single use, so
 * every request must carry a distinct one, which h2load (one fixed body per run) cannot send.
 *
 * Two steps, on 127.0.0.1:PORT over cleartext HTTP/1.1 (keep-alive, pipelined), so that the measured
 * step does nothing else:
 *   mint  asks the gateway for an offline credential (POST /qr/v1/credentials, a resident's token) for
 *         a device key of its own and makes N codes from it with the qr/ library, as a phone does
 *         (distinct counters; gen = now, ttl 255 s), one per line into CODES_FILE;
 *   run   verifies every code of CODES_FILE once (a scanner client's token) over C connections with
 *         up to M requests in flight on each, and counts the answers that are 200 and "valid":true.
 * `run` prints one line `rps=… ok=… valid=… n=… wall=…` (rps = valid verifications per wall-clock
 * second) and with LOGFILE one line per request in h2load's --log-file format (start µs, status,
 * latency µs) so that bench/tools.py computes the percentiles. Every code is fresh, so every answer
 * must be valid: a replayed or refused code means the measurement is wrong, and the exit status is 1.
 *
 * Build (bench/rows_qr.sh does): cc -std=gnu11 -O2 -I. -o qr_verify_load bench/qr_verify_load.c
 *   build/libhegate.a <the Makefile's LDLIBS>
 * Run:  qr_verify_load mint PORT RESIDENT_TOKEN N CODES_FILE
 *       qr_verify_load run PORT SCANNER_TOKEN CODES_FILE C M [LOGFILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "qr/qr.h"

#define RBUF 65536

static int port;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "qr_verify_load: %s\n", what);
    exit(2);
}

static int dial(int nonblock)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("cannot connect to the gateway");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* one HTTP/1.1 response in BUF[0..LEN): its total length (0: incomplete, -1: unreadable); STATUS and BODY */
static long response_parse(const char *buf, size_t len, int *status, const char **body, size_t *bodylen)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    if (len < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi(buf + 9);
    long cl = -1;
    for (const char *p = memchr(buf, '\n', (size_t)(end - buf)); p != NULL && p < end; p = memchr(p + 1, '\n', (size_t)(end - p))) {
        if ((size_t)(end - p) > 16 && strncasecmp(p + 1, "content-length:", 15) == 0)
            cl = strtol(p + 16, NULL, 10);
    }
    if (cl < 0)
        return -1; /* the gateway answers with a length; chunked is not expected here */
    size_t hl = (size_t)(end - buf) + 4;
    if (len < hl + (size_t)cl)
        return 0;
    *body = buf + hl;
    *bodylen = (size_t)cl;
    return (long)(hl + (size_t)cl);
}

/* a blocking request for the set-up, sent with "connection: close": the whole answer up to EOF into
 * OUT (headers included, whatever the framing); returns the status */
static int request_once(const char *req, size_t len, char *out, size_t outsz)
{
    int fd = dial(0);
    size_t got = 0;
    if (write(fd, req, len) != (ssize_t)len)
        die("cannot send the set-up request");
    for (;;) {
        ssize_t r = read(fd, out + got, outsz - 1 - got);
        if (r < 0)
            die("cannot read the set-up answer");
        if (r == 0 || (got += (size_t)r) == outsz - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    return got > 12 && memcmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9) : 0;
}

typedef struct {
    int fd;
    size_t next;         /* index of the next request to send on this connection */
    size_t sent_upto;    /* bytes of the current write buffer already written */
    size_t inflight[64]; /* ring of request indexes awaiting an answer */
    unsigned head, count;
    char *wbuf;
    size_t wlen;
    char rbuf[RBUF];
    size_t rlen;
} conn_t;

typedef struct {
    char **reqs;
    size_t *lens;
    size_t from, to, cursor; /* requests [from, to), the next one to hand out */
    double *start;           /* per request: when it was written */
    double *lat;             /* per request: latency in seconds (0: none) */
    int *status;
    size_t done, ok, valid;
} run_t;

static void conn_fill(conn_t *c, run_t *r, unsigned depth)
{
    c->wlen = 0;
    c->sent_upto = 0;
    double t = now_s();
    while (c->count < depth && r->cursor < r->to) {
        size_t i = r->cursor++;
        memcpy(c->wbuf + c->wlen, r->reqs[i], r->lens[i]);
        c->wlen += r->lens[i];
        c->inflight[(c->head + c->count++) % 64] = i;
        r->start[i] = t;
    }
}

static int conn_write(conn_t *c)
{
    while (c->sent_upto < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->sent_upto, c->wlen - c->sent_upto);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->sent_upto += (size_t)w;
    }
    return 0;
}

static void run(run_t *r, unsigned nconn, unsigned depth, size_t maxreq)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn_t *cs = calloc(nconn, sizeof(*cs));
    if (ep < 0 || cs == NULL)
        die("out of resources");
    r->cursor = r->from;
    size_t total = r->to - r->from;
    for (unsigned i = 0; i != nconn; ++i) {
        conn_t *c = &cs[i];
        c->fd = dial(1);
        c->wbuf = malloc(maxreq * depth);
        if (c->wbuf == NULL)
            die("out of memory");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        conn_fill(c, r, depth);
        if (conn_write(c) != 0)
            die("write failed");
        if (c->sent_upto < c->wlen) {
            ev.events = EPOLLIN | EPOLLOUT;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    struct epoll_event evs[256];
    while (r->done < total) {
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n <= 0)
            die("no answer from the gateway for 10 s");
        for (int k = 0; k != n; ++k) {
            conn_t *c = evs[k].data.ptr;
            if (evs[k].events & EPOLLOUT) {
                if (conn_write(c) != 0)
                    die("write failed");
            }
            if (!(evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                goto Rearm;
            ssize_t got = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
            if (got == 0 || (got < 0 && errno != EAGAIN))
                die("the gateway closed a connection");
            if (got > 0)
                c->rlen += (size_t)got;
            size_t off = 0;
            double t = now_s();
            for (;;) {
                int status;
                const char *body;
                size_t bl;
                long m = response_parse(c->rbuf + off, c->rlen - off, &status, &body, &bl);
                if (m < 0)
                    die("unreadable answer");
                if (m == 0)
                    break;
                if (c->count == 0)
                    die("an answer nobody asked for");
                size_t i = c->inflight[c->head];
                c->head = (c->head + 1) % 64;
                c->count--;
                r->lat[i] = t - r->start[i];
                r->status[i] = status;
                r->done++;
                if (status >= 200 && status < 300) {
                    r->ok++;
                    if (memmem(body, bl, "\"valid\":true", 12) != NULL)
                        r->valid++;
                }
                off += (size_t)m;
            }
            memmove(c->rbuf, c->rbuf + off, c->rlen - off);
            c->rlen -= off;
            /* everything written and answered: the next batch */
            if (c->count == 0 && r->cursor < r->to) {
                conn_fill(c, r, depth);
                if (conn_write(c) != 0)
                    die("write failed");
            }
        Rearm: {
            struct epoll_event ev = {.events = EPOLLIN | (c->sent_upto < c->wlen ? EPOLLOUT : 0), .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        }
    }
    for (unsigned i = 0; i != nconn; ++i) {
        close(cs[i].fd);
        free(cs[i].wbuf);
    }
    free(cs);
    close(ep);
}

/* mint: an offline credential for a device key of ours, then N codes from it, one per line into FILE */
static int mint(const char *resident, size_t n, const char *path)
{
    qr_key_t *device = crypto_key_generate();
    uint8_t point[HMT1_POINT_LEN];
    char pb[64], req[8192], answer[8192], body[256];
    if (device == NULL)
        die("cannot make a device key");
    crypto_key_point(device, point);
    crypto_b64url_encode(pb, point, sizeof(point));
    int bl = snprintf(body, sizeof(body), "{\"scene\":\"transit\",\"device_public_key\":\"%s\"}", pb);
    int rl = snprintf(req, sizeof(req),
                      "POST /qr/v1/credentials HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\nauthorization: Bearer %s\r\n"
                      "content-type: application/json\r\ncontent-length: %d\r\n\r\n%s",
                      resident, bl, body);
    if (rl <= 0 || (size_t)rl >= sizeof(req))
        die("token too long");
    int st = request_once(req, (size_t)rl, answer, sizeof(answer));
    char *cp = strstr(answer, "\"credential\":\"");
    uint8_t cred[HMT1_CRED_LEN + 3];
    if (st != 200 || cp == NULL) {
        fprintf(stderr, "qr_verify_load: POST /qr/v1/credentials answered %d\n", st);
        return 2;
    }
    cp += strlen("\"credential\":\"");
    if (crypto_b64url_decode(cred, sizeof(cred), cp, strcspn(cp, "\"")) != HMT1_CRED_LEN)
        die("unreadable credential");
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        die("cannot write the codes");
    uint32_t gen = (uint32_t)time(NULL);
    for (size_t i = 0; i != n; ++i) {
        uint8_t code[HMT1_LEN];
        char text[HMT1_TEXT_LEN + 1];
        if (qr_code_make(cred, device, gen, 255, (uint32_t)(i + 1), NULL, code) != 0)
            die("cannot make a code");
        qr_code_to_text(code, text);
        fprintf(fp, "%s\n", text);
    }
    if (fclose(fp) != 0)
        die("cannot write the codes");
    crypto_key_free(device);
    return 0;
}

/* run: every code of FILE verified once */
static int verify_all(const char *scanner, const char *path, unsigned nconn, unsigned depth, const char *logpath)
{
    FILE *fp = fopen(path, "r");
    char line[1024], req[8192], body[512];
    size_t cap = 1024, n = 0, maxreq = 0;
    run_t r = {0};
    if (fp == NULL)
        die("cannot read the codes");
    r.reqs = malloc(cap * sizeof(*r.reqs));
    r.lens = malloc(cap * sizeof(*r.lens));
    while (r.reqs != NULL && r.lens != NULL && fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (n == cap) {
            cap *= 2;
            r.reqs = realloc(r.reqs, cap * sizeof(*r.reqs));
            r.lens = realloc(r.lens, cap * sizeof(*r.lens));
            if (r.reqs == NULL || r.lens == NULL)
                break;
        }
        int bl = snprintf(body, sizeof(body), "{\"code\":\"%s\"}", line);
        int rl = snprintf(req, sizeof(req),
                          "POST /qr/v1/verify HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer %s\r\n"
                          "content-type: application/json\r\ncontent-length: %d\r\n\r\n%s",
                          scanner, bl, body);
        if (rl <= 0 || (size_t)rl >= sizeof(req) || (r.reqs[n] = strdup(req)) == NULL)
            die("request too long");
        r.lens[n++] = (size_t)rl;
        maxreq = (size_t)rl > maxreq ? (size_t)rl : maxreq;
    }
    fclose(fp);
    r.start = calloc(n + 1, sizeof(double));
    r.lat = calloc(n + 1, sizeof(double));
    r.status = calloc(n + 1, sizeof(int));
    if (r.reqs == NULL || r.lens == NULL || r.start == NULL || r.lat == NULL || r.status == NULL)
        die("out of memory");
    if (n == 0)
        die("no codes");
    r.from = 0;
    r.to = n;
    double t0 = now_s();
    run(&r, nconn, depth, maxreq);
    double wall = now_s() - t0;
    printf("rps=%.0f ok=%zu valid=%zu n=%zu wall=%.3f\n", (double)r.valid / wall, r.ok, r.valid, n, wall);
    if (logpath != NULL) {
        FILE *lf = fopen(logpath, "w");
        if (lf == NULL)
            die("cannot write the log");
        for (size_t i = 0; i != n; ++i)
            fprintf(lf, "%.0f\t%d\t%.0f\n", (r.start[i] - t0) * 1e6, r.status[i], r.lat[i] * 1e6);
        fclose(lf);
    }
    return r.valid == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "mint") == 0) {
        port = atoi(argv[2]);
        size_t n = strtoul(argv[4], NULL, 10);
        if (port <= 0 || n == 0 || n > HMT1_COUNTER_MAX)
            die("bad arguments");
        return mint(argv[3], n, argv[5]);
    }
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "run") == 0) {
        port = atoi(argv[2]);
        unsigned nconn = (unsigned)atoi(argv[5]), depth = (unsigned)atoi(argv[6]);
        if (port <= 0 || nconn == 0 || nconn > 10000 || depth == 0 || depth > 64)
            die("bad arguments");
        return verify_all(argv[3], argv[4], nconn, depth, argc == 8 ? argv[7] : NULL);
    }
    fprintf(stderr, "usage: qr_verify_load mint PORT RESIDENT_TOKEN N CODES_FILE\n"
                    "       qr_verify_load run PORT SCANNER_TOKEN CODES_FILE CONNECTIONS DEPTH [LOGFILE]\n");
    return 2;
}
