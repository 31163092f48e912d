/*
 * bench/token_load.c — a load client for POST /oauth2/token, for the rows h2load cannot measure.
 *
 * h2load sends one fixed body, but a refresh token may be redeemed only once (SPEC §6: it rotates
 * on every use, and a used one revokes its whole family and session). So this client keeps one
 * refresh-token chain per in-flight slot: slot k redeems its token, the answer carries the next
 * token of that family, slot k redeems that one next. Every request redeems a distinct, unused
 * token exactly once — the work of a real app refreshing — and the chains continue across runs
 * (warm-up, measured run, later rounds) because the live tokens are written back to the file.
 * With -b it sends a fixed body instead (client_credentials), to compare with h2load's row. With -k
 * each line of BODYFILE is one request body to send exactly once (authorization codes: a code may be
 * redeemed once); the lines sent are removed from the file, so a warm-up and a measured run share it.
 *
 * HTTP/1.1 keep-alive over C connections, M requests pipelined on each (C × M in flight), one
 * thread, epoll, raw sockets; Content-Length framing only (hegate's token answers have it).
 * Output is shaped like h2load's ("finished in ..., N req/s", "status codes: ...") so that
 * bench/rows_identity.sh reads it the same way; -l writes one "start_us status latency_us" line per
 * request, the format bench/tools.py pct reads. Not part of the library or of `make test`.
 *
 *   token_load -u http://127.0.0.1:PORT/oauth2/token -n N [-c 50] [-m 10] [-l LATLOG] [-t SECONDS]
 *              (-r TOKENFILE -i CLIENT_ID | -b BODYFILE | -k BODYFILE) [-H 'name: value']...
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX 256
#define RBUF 65536
#define MAX_HEADERS 16

typedef struct {
    char token[TOKEN_MAX + 1]; /* refresh mode: the next token of this chain */
    int alive;
} slot_t;

typedef struct {
    int fd, connected;
    char *wbuf;
    size_t wlen, wcap, woff;
    char rbuf[RBUF];
    size_t rlen;
    /* in flight, in order: slot index and send time */
    int *q_slot;
    uint64_t *q_t;
    unsigned q_head, q_n;
} conn_t;

static const char *host = "127.0.0.1", *path = "/";
static int port = 80;
static const char *headers[MAX_HEADERS];
static int nheaders;
static const char *fixed_body;
static size_t fixed_len;
static const char *client_id;
static char **once_bodies; /* -k: one body per request, each sent once */
static long num_once, next_once;
static slot_t *slots;
static int nconn = 50, depth = 10;
static long total = 0, sent = 0, done = 0, st[6], errors;
static FILE *latlog;
static uint64_t t0;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "token_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL)
        die("calloc");
    return p;
}

static void wput(conn_t *c, const char *s, size_t n)
{
    if (c->wlen + n > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < c->wlen + n)
            cap *= 2;
        if ((c->wbuf = realloc(c->wbuf, cap)) == NULL)
            die("realloc");
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, s, n);
    c->wlen += n;
}

/* queues the next request of SLOT on C */
static void send_request(conn_t *c, int slot)
{
    char body[TOKEN_MAX + 512], head[2048];
    const char *b = fixed_body;
    size_t blen = fixed_len;
    if (once_bodies != NULL) {
        b = once_bodies[next_once++];
        blen = strlen(b);
    } else if (b == NULL) {
        int n =
            snprintf(body, sizeof(body), "grant_type=refresh_token&client_id=%s&refresh_token=%s", client_id, slots[slot].token);
        b = body;
        blen = (size_t)n;
    }
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/x-www-form-urlencoded\r\n"
                     "content-length: %zu\r\n",
                     path, host, port, blen);
    for (int i = 0; i != nheaders; ++i)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n", headers[i]);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    wput(c, head, (size_t)n);
    wput(c, b, blen);
    unsigned tail = (c->q_head + c->q_n) % (unsigned)depth;
    c->q_slot[tail] = slot;
    c->q_t[tail] = now_us();
    c->q_n++;
    sent++;
}

static int flush(conn_t *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return -1;
        }
        c->woff += (size_t)w;
    }
    c->woff = c->wlen = 0;
    return 0;
}

/* the JSON string value of "name" in BODY (no escapes expected in tokens), copied to OUT */
static int json_str(const char *body, size_t len, const char *name, char *out, size_t outsz)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", name);
    const char *p = memmem(body, len, pat, strlen(pat));
    if (p == NULL)
        return -1;
    p += strlen(pat);
    const char *e = memchr(p, '"', (size_t)(body + len - p));
    if (e == NULL || (size_t)(e - p) >= outsz)
        return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 0;
}

/* one complete response at the start of C->rbuf: its length, 0 if incomplete, -1 if unreadable */
static long parse_response(conn_t *c, int *status, const char **body, size_t *blen)
{
    char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (end == NULL)
        return c->rlen >= RBUF ? -1 : 0;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi(c->rbuf + 9);
    long clen = -1;
    for (char *l = memchr(c->rbuf, '\n', (size_t)(end - c->rbuf)); l != NULL && l < end;
         l = memchr(l + 1, '\n', (size_t)(end - l))) {
        if (strncasecmp(l + 1, "content-length:", 15) == 0)
            clen = atol(l + 16);
        else if (strncasecmp(l + 1, "transfer-encoding:", 18) == 0)
            return -1;
    }
    if (clen < 0)
        return -1;
    size_t hl = (size_t)(end + 4 - c->rbuf);
    if (hl + (size_t)clen > RBUF)
        return -1;
    if (c->rlen < hl + (size_t)clen)
        return 0;
    *body = c->rbuf + hl;
    *blen = (size_t)clen;
    return (long)(hl + (size_t)clen);
}

static void on_response(conn_t *c, int status, const char *body, size_t blen)
{
    int slot = c->q_slot[c->q_head];
    uint64_t t = c->q_t[c->q_head], now = now_us();
    c->q_head = (c->q_head + 1) % (unsigned)depth;
    c->q_n--;
    done++;
    st[status / 100 < 6 ? status / 100 : 0]++;
    if (latlog != NULL)
        fprintf(latlog, "%llu %d %llu\n", (unsigned long long)(t - t0), status, (unsigned long long)(now - t));
    if (fixed_body == NULL && once_bodies == NULL) {
        if (status != 200 || json_str(body, blen, "refresh_token", slots[slot].token, sizeof(slots[slot].token)) != 0)
            slots[slot].alive = 0; /* this chain is over (its token may have been used): never resend it */
    }
    if (sent < total && (fixed_body != NULL || once_bodies != NULL || slots[slot].alive))
        send_request(c, slot);
}

static int open_conn(conn_t *c, int ep, int idx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "token_load: %s is not an IPv4 address\n", host);
        exit(2);
    }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1; /* blocking connect: simple, and done before the clock starts */
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl");
    c->connected = 1;
    return 0;
}

/* the connection failed: what it had in flight is lost (refresh: those chains end) */
static void drop(conn_t *c)
{
    while (c->q_n > 0) {
        if (fixed_body == NULL && once_bodies == NULL)
            slots[c->q_slot[c->q_head]].alive = 0;
        c->q_head = (c->q_head + 1) % (unsigned)depth;
        c->q_n--;
        errors++;
        done++;
    }
    close(c->fd);
    c->connected = 0;
}

/* every token of FILE into SLOTS (grown as needed): the first ones are used, the rest written back untouched */
static int read_tokens(const char *file, int *nslots)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        die(file);
    char line[1024];
    int n = 0, cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || strlen(line) > TOKEN_MAX)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            if ((slots = realloc(slots, sizeof(slot_t) * (size_t)cap)) == NULL)
                die("realloc");
        }
        strcpy(slots[n].token, line);
        slots[n].alive = 1;
        ++n;
    }
    fclose(f);
    *nslots = n;
    return n;
}

static void write_tokens(const char *file, int n)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        die(tmp);
    for (int i = 0; i != n; ++i)
        if (slots[i].alive)
            fprintf(f, "%s\n", slots[i].token);
    if (fclose(f) != 0 || rename(tmp, file) != 0)
        die(file);
}

/* -k: every non-empty line of FILE; what is left unsent after the run is written back */
static void read_once_bodies(const char *file)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        die(file);
    char line[4096];
    long cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (num_once == cap) {
            cap = cap ? cap * 2 : 1024;
            if ((once_bodies = realloc(once_bodies, sizeof(char *) * (size_t)cap)) == NULL)
                die("realloc");
        }
        if ((once_bodies[num_once++] = strdup(line)) == NULL)
            die("strdup");
    }
    fclose(f);
}

static void write_once_bodies(const char *file)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        die(tmp);
    for (long i = next_once; i < num_once; ++i)
        fprintf(f, "%s\n", once_bodies[i]);
    if (fclose(f) != 0 || rename(tmp, file) != 0)
        die(file);
}

static void usage(void)
{
    fprintf(stderr, "usage: token_load -u http://HOST:PORT/PATH -n N [-c CONNS] [-m DEPTH] [-l LATLOG] [-t SECONDS]\n"
                    "                  (-r TOKENFILE -i CLIENT_ID | -b BODYFILE | -k BODYFILE) [-H 'name: value']...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *tokfile = NULL, *bodyfile = NULL, *oncefile = NULL, *lat = NULL;
    double limit_s = 300;
    int o;
    while ((o = getopt(argc, argv, "u:n:c:m:l:t:r:i:b:k:H:")) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 'n':
            total = atol(optarg);
            break;
        case 'c':
            nconn = atoi(optarg);
            break;
        case 'm':
            depth = atoi(optarg);
            break;
        case 'l':
            lat = optarg;
            break;
        case 't':
            limit_s = atof(optarg);
            break;
        case 'r':
            tokfile = optarg;
            break;
        case 'i':
            client_id = optarg;
            break;
        case 'b':
            bodyfile = optarg;
            break;
        case 'k':
            oncefile = optarg;
            break;
        case 'H':
            if (nheaders == MAX_HEADERS)
                usage();
            headers[nheaders++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (url == NULL || total <= 0 || nconn <= 0 || depth <= 0 || (tokfile != NULL) + (bodyfile != NULL) + (oncefile != NULL) != 1 ||
        (tokfile != NULL && client_id == NULL))
        usage();
    static char hostbuf[256];
    if (sscanf(url, "http://%255[^:/]:%d", hostbuf, &port) != 2 || (path = strchr(url + 7, '/')) == NULL)
        usage();
    host = hostbuf;
    if (bodyfile != NULL) {
        FILE *f = fopen(bodyfile, "rb");
        static char buf[16384];
        if (f == NULL)
            die(bodyfile);
        fixed_len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        fixed_body = buf;
    }
    int nslots = nconn * depth;
    if (oncefile != NULL) {
        read_once_bodies(oncefile);
        if (num_once < total) {
            fprintf(stderr, "token_load: %s holds %ld bodies, fewer than -n %ld\n", oncefile, num_once, total);
            return 1;
        }
    }
    if (tokfile != NULL) {
        int have = read_tokens(tokfile, &nslots);
        if (have < nconn * depth) { /* fewer chains than slots: fewer connections, same depth */
            nconn = have / depth;
            if (nconn == 0) {
                fprintf(stderr, "token_load: %s holds %d live tokens, fewer than -m %d\n", tokfile, have, depth);
                return 1;
            }
            fprintf(stderr, "token_load: only %d live refresh tokens: %d connections\n", have, nconn);
        }
    } else {
        slots = xmalloc(sizeof(slot_t) * (size_t)nslots);
        for (int i = 0; i != nslots; ++i)
            slots[i].alive = 1;
    }
    if (lat != NULL && (latlog = fopen(lat, "w")) == NULL)
        die(lat);

    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    conn_t *conns = xmalloc(sizeof(conn_t) * (size_t)nconn);
    for (int i = 0; i != nconn; ++i) {
        conns[i].q_slot = xmalloc(sizeof(int) * (size_t)depth);
        conns[i].q_t = xmalloc(sizeof(uint64_t) * (size_t)depth);
        if (open_conn(&conns[i], ep, i) != 0)
            die("connect");
    }
    t0 = now_us();
    for (int i = 0; i != nconn; ++i)
        for (int k = 0; k != depth && sent < total; ++k)
            send_request(&conns[i], i * depth + k);
    for (int i = 0; i != nconn; ++i)
        if (flush(&conns[i]) != 0)
            drop(&conns[i]);

    struct epoll_event evs[256];
    uint64_t deadline = t0 + (uint64_t)(limit_s * 1e6);
    int live = nconn;
    while (done < sent && live > 0) {
        if (now_us() > deadline) {
            fprintf(stderr, "token_load: timed out with %ld answers of %ld\n", done, total);
            break;
        }
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int e = 0; e < n; ++e) {
            conn_t *c = &conns[evs[e].data.u32];
            if (!c->connected)
                continue;
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                    if (r <= 0) {
                        drop(c);
                        --live;
                        break;
                    }
                    c->rlen += (size_t)r;
                    for (;;) {
                        int status;
                        const char *body;
                        size_t blen;
                        long used = c->q_n > 0 ? parse_response(c, &status, &body, &blen) : 0;
                        if (used < 0) {
                            fprintf(stderr, "token_load: unreadable response\n");
                            drop(c);
                            --live;
                            break;
                        }
                        if (used == 0)
                            break;
                        on_response(c, status, body, blen);
                        memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
                        c->rlen -= (size_t)used;
                    }
                    if (!c->connected)
                        break;
                }
            }
            if (c->connected && flush(c) != 0) {
                drop(c);
                --live;
            }
        }
    }
    double secs = (double)(now_us() - t0) / 1e6;
    if (latlog != NULL)
        fclose(latlog);
    if (tokfile != NULL)
        write_tokens(tokfile, nslots);
    if (oncefile != NULL)
        write_once_bodies(oncefile);
    long ok = st[2];
    printf("finished in %.2fs, %.2f req/s\n", secs, secs > 0 ? (double)done / secs : 0.0);
    printf("requests: %ld total, %ld done, %ld sent, %ld failed (connection)\n", total, done, sent, errors);
    printf("status codes: %ld 2xx, %ld 3xx, %ld 4xx, %ld 5xx\n", ok, st[3], st[4], st[5]);
    if (tokfile != NULL) {
        int alive = 0;
        for (int i = 0; i != nslots; ++i)
            alive += slots[i].alive;
        printf("refresh chains: %d of %d still alive\n", alive, nslots);
    }
    return ok == total ? 0 : 1;
}
