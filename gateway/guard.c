/*
 * gateway/guard.c — the connection guard: what keeps the front door open when one client attacks it
 * (README "Under attack"). h2o 2.2.5 defends against few of the HTTP/2 floods, so the defences are ours,
 * written against h2o's installed headers (h2o/http2_internal.h: the connection, its socket, its
 * frame reader `_read_expect`).
 *
 *   at accept      a global cap on open connections, a cap per client address and a rate of new
 *                  connections per address (a table shared by the threads); over any: closed at once
 *   before a       TLS handshake, and on cleartext ports the first bytes (HTTP/1.1 or the HTTP/2
 *   protocol       preface), within limits.handshake_timeout; then the connection is handed to
 *                  h2o's HTTP/1.1 or HTTP/2 code, the HTTP/2 one with its frame reader wrapped
 *   every HTTP/2   the frame rules of guard_frames.c: streams cancelled (Rapid Reset), control frames
 *   frame          that cost the server and carry nothing, header blocks and request bodies beyond
 *                  their size or time; over one, GOAWAY ENHANCE_YOUR_CALM
 *   a sweep        every 250 ms per thread: handshakes overdue, responses the client takes no byte of
 *                  for limits.send_timeout (slow readers), connections told to go that did not
 *
 * A connection over a limit is told why when the protocol allows (GOAWAY ENHANCE_YOUR_CALM), counted
 * once in hegate_connections_closed_total{reason} and logged once (refusals at accept: at most one
 * line per second per reason, with the number left out); if it is still there 1 s later its socket is
 * shut down. Per connection the guard keeps one gw_guard_conn_t, found from the socket (on_close.data,
 * set at accept and freed when h2o disposes the socket). Thread-local except the address table.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/rand.h>
#include "gateway/gateway.h"
#include "gateway/guard_internal.h"
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#define SWEEP_MS 250
#define KILL_GRACE_MS 1000

/* ---- reasons ---------------------------------------------------------------------------------------- */

static const char *const reason_names[GW_GUARD_REASONS] = {
    [GW_GUARD_CAPACITY] = "capacity",
    [GW_GUARD_PER_IP] = "per_ip",
    [GW_GUARD_CONNECT_RATE] = "connect_rate",
    [GW_GUARD_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [GW_GUARD_RESETS] = "resets",
    [GW_GUARD_CONTROL_FRAMES] = "control_frames",
    [GW_GUARD_HEADER_BLOCK] = "header_block",
    [GW_GUARD_HEADER_FIELDS] = "header_fields",
    [GW_GUARD_HEAD_TIMEOUT] = "head_timeout",
    [GW_GUARD_BODY_TIMEOUT] = "body_timeout",
    [GW_GUARD_SEND_TIMEOUT] = "send_timeout",
    [GW_GUARD_BAD_REQUESTS] = "bad_requests",
};

const char *gw_guard_reason_name(int reason)
{
    return reason >= 0 && reason < GW_GUARD_REASONS ? reason_names[reason] : "other";
}

/* process-wide counts, for /metrics */
static struct {
    uint64_t closed[GW_GUARD_REASONS];
    uint64_t cancelled_before_routing;
    uint64_t open; /* client connections open now */
} totals;

static void bump(uint64_t *p)
{
    __atomic_add_fetch(p, 1, __ATOMIC_RELAXED);
}

void gw_guard_counts(uint64_t closed[GW_GUARD_REASONS], uint64_t *cancelled_before_routing, uint64_t *open)
{
    for (int i = 0; i != GW_GUARD_REASONS; ++i)
        closed[i] = __atomic_load_n(&totals.closed[i], __ATOMIC_RELAXED);
    *cancelled_before_routing = __atomic_load_n(&totals.cancelled_before_routing, __ATOMIC_RELAXED);
    *open = __atomic_load_n(&totals.open, __ATOMIC_RELAXED);
}

/* ---- the address table (shared by the threads) --------------------------------------------------------- */

#define ADDR_SLOTS 16384 /* power of two */
#define ADDR_PROBE 16

typedef struct {
    uint8_t addr[16]; /* IPv4-mapped, or an IPv6 /64 with the rest zero */
    uint32_t open;    /* connections open from it */
    uint32_t level;   /* leaky bucket of new connections, in 1/1000 connection */
    uint64_t last_ms; /* when the bucket was last drained; 0: free slot */
} addr_slot_t;

static struct {
    pthread_mutex_t mutex;
    uint64_t seed;
    addr_slot_t slots[ADDR_SLOTS];
} addrs = {PTHREAD_MUTEX_INITIALIZER};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* the address a connection is counted under; 0 when it has none (a unix socket) */
static int addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 1;
    }
    if (ss->ss_family == AF_INET6) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8); /* one IPv6 host may own a whole /64 */
        return 1;
    }
    return 0;
}

/* a slot is taken while connections are open from its address or its bucket has not drained. NOW_MS
 * is the calling thread's loop clock, which may lag the clock of the thread that last touched the slot:
 * a "now" before last_ms is no time at all (unsigned, it would be a bucket drained for ages). */
static int slot_in_use(const addr_slot_t *s, uint64_t now_ms, uint64_t drain_ms)
{
    return s->last_ms != 0 && (s->open != 0 || now_ms < s->last_ms || now_ms - s->last_ms < drain_ms);
}

/* Counts a new connection from KEY. Returns its slot (≥ 0), -1 when the table has no room for it
 * (then it is not counted per address), or -2 - reason when it is refused. */
static int addr_admit(const uint8_t key[16], const gw_conf_t *conf, uint64_t now_ms)
{
    uint64_t k0, k1;
    memcpy(&k0, key, 8);
    memcpy(&k1, key + 8, 8);
    size_t home = (size_t)mix64(mix64(k0 ^ addrs.seed) ^ k1) & (ADDR_SLOTS - 1);
    uint64_t rate = conf->limits.new_connections_per_ip, burst_milli = rate * 2000; /* two seconds' worth */
    uint64_t drain_ms = rate != 0 ? burst_milli / rate + 1 : 0;
    int ret = -1;
    pthread_mutex_lock(&addrs.mutex);
    addr_slot_t *s = NULL, *free_slot = NULL;
    for (size_t i = 0; i != ADDR_PROBE; ++i) {
        addr_slot_t *e = &addrs.slots[(home + i) & (ADDR_SLOTS - 1)];
        if (e->last_ms != 0 && memcmp(e->addr, key, 16) == 0) {
            s = e;
            break;
        }
        if (free_slot == NULL && !slot_in_use(e, now_ms, drain_ms))
            free_slot = e;
    }
    if (s == NULL && (s = free_slot) != NULL) {
        memcpy(s->addr, key, 16);
        s->open = 0;
        s->level = 0;
        s->last_ms = now_ms;
    }
    if (s != NULL) {
        if (now_ms > s->last_ms) { /* (another thread's clock may be ahead: then nothing drained) */
            uint64_t drained = (now_ms - s->last_ms) * rate; /* rate per second = rate milli-connections per ms */
            s->level = drained >= s->level ? 0 : (uint32_t)(s->level - drained);
            s->last_ms = now_ms;
        } else if (s->last_ms == 0) {
            s->last_ms = 1;
        }
        if (conf->limits.connections_per_ip != 0 && s->open >= conf->limits.connections_per_ip) {
            ret = -2 - GW_GUARD_PER_IP;
        } else if (rate != 0 && s->level + 1000 > burst_milli) {
            ret = -2 - GW_GUARD_CONNECT_RATE;
        } else {
            s->level += 1000;
            ++s->open;
            ret = (int)(s - addrs.slots);
        }
    }
    pthread_mutex_unlock(&addrs.mutex);
    return ret;
}

static void addr_release(int slot)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&addrs.mutex);
    if (addrs.slots[slot].open != 0)
        --addrs.slots[slot].open;
    pthread_mutex_unlock(&addrs.mutex);
}

/* ---- per connection ------------------------------------------------------------------------------------ */

typedef enum { STATE_HANDSHAKE, STATE_SNIFF, STATE_HTTP1, STATE_HTTP2 } conn_state_t;

typedef ssize_t (*read_expect_fn)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

struct st_gw_guard_conn_t {
    h2o_linklist_t link; /* in the thread's list */
    gw_guard_thread_t *gt;
    h2o_socket_t *sock;
    h2o_accept_ctx_t *actx;
    struct timeval connected_at;
    conn_state_t state;
    int addr_slot;
    uint64_t deadline_ms; /* handshake / first bytes; 0: none */
    uint64_t kill_at_ms;  /* told to go: shut down if still here then; 0: not told */
    int reason;           /* why it was told to go; -1: not */
    /* slow reader */
    size_t written_at_check;
    uint64_t stalled_since_ms; /* 0: not stalled */
    /* HTTP/2 */
    read_expect_fn inner;
    gw_h2_frames_t frames;
    unsigned bad_requests;
};

struct st_gw_guard_thread_t {
    gw_thread_t *thread;
    h2o_linklist_t conns;
    h2o_timeout_t sweep_timeout;
    h2o_timeout_entry_t sweep;
    uint64_t log_second[GW_GUARD_REASONS];
    unsigned log_suppressed[GW_GUARD_REASONS];
};

static const gw_conf_t *conf_of(gw_guard_thread_t *gt)
{
    return gt->thread->gen->conf;
}

static uint64_t now_ms(gw_guard_thread_t *gt)
{
    return h2o_now(gt->thread->loop);
}

/* one line per offending connection; refusals at accept at most one line a second per reason */
/* one line for REASON about the peer at SA (LEN bytes; 0: unknown); THROTTLED: at most one a second */
static void log_reason_addr(gw_guard_thread_t *gt, const struct sockaddr *sa, socklen_t len, int reason, const char *detail,
                            int throttled)
{
    char peer[64] = "unknown";
    if (throttled) {
        uint64_t sec = now_ms(gt) / 1000;
        if (gt->log_second[reason] == sec) {
            ++gt->log_suppressed[reason];
            return;
        }
        gt->log_second[reason] = sec;
    }
    if (len != 0)
        h2o_socket_getnumerichost((struct sockaddr *)sa, len, peer);
    if (throttled && gt->log_suppressed[reason] != 0) {
        gw_log("warn", "guard: %s: %s (and %u more refused in the last seconds)", peer, detail, gt->log_suppressed[reason]);
        gt->log_suppressed[reason] = 0;
    } else {
        gw_log("warn", "guard: %s: %s", peer, detail);
    }
}

static void log_reason(gw_guard_thread_t *gt, h2o_socket_t *sock, int reason, const char *detail, int throttled)
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    log_reason_addr(gt, (struct sockaddr *)&ss, len, reason, detail, throttled);
}

static void count_close(int reason)
{
    bump(&totals.closed[reason]);
}

/* the socket goes now: pending writes fail, h2o's reader sees the end, and h2o disposes the socket */
static void shut_down(gw_guard_conn_t *g)
{
    int fd = h2o_socket_get_fd(g->sock);
    if (fd < 0)
        return;
    struct linger lg = {1, 0}; /* an abusive peer gets a reset, not a graceful close it could stall */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    shutdown(fd, SHUT_RDWR);
}

/* tells G to go (once): counted, logged; KILL_GRACE_MS later its socket is shut down if still there */
static void condemn(gw_guard_conn_t *g, int reason, const char *detail, int now_)
{
    if (g->reason >= 0)
        return;
    g->reason = reason;
    g->kill_at_ms = now_ms(g->gt) + (now_ ? 0 : KILL_GRACE_MS);
    count_close(reason);
    log_reason(g->gt, g->sock, reason, detail, 0);
    if (now_)
        shut_down(g);
}

static void on_socket_close(void *data)
{
    gw_guard_conn_t *g = data;
    h2o_linklist_unlink(&g->link);
    addr_release(g->addr_slot);
    __atomic_sub_fetch(&totals.open, 1, __ATOMIC_RELAXED);
    free(g);
}

/* ---- HTTP/2: the frame reader ------------------------------------------------------------------------- */

static gw_guard_conn_t *guard_of_sock(h2o_socket_t *sock)
{
    return sock != NULL && sock->on_close.cb == on_socket_close ? sock->on_close.data : NULL;
}

static const char *const calm_detail[GW_GUARD_REASONS] = {
    [GW_GUARD_RESETS] = "streams cancelled beyond limits.h2_resets_per_second",
    [GW_GUARD_CONTROL_FRAMES] = "control frames beyond limits.h2_control_frames_per_second",
    [GW_GUARD_HEADER_BLOCK] = "a header block over limits.header_bytes",
    [GW_GUARD_HEADER_FIELDS] = "a header block of more fields than limits.header_fields",
    [GW_GUARD_HEAD_TIMEOUT] = "a header block still arriving after limits.head_timeout",
    [GW_GUARD_BODY_TIMEOUT] = "a request body still arriving after limits.body_timeout",
};

/* every frame passes here first (guard_frames.c judges it), then to h2o's reader of the moment */
static ssize_t guarded_read_expect(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    gw_guard_conn_t *g = guard_of_sock(conn->sock);
    if (g == NULL || g->inner == NULL) { /* cannot happen: only guarded connections get this reader */
        *err_desc = "internal error";
        return H2O_HTTP2_ERROR_INTERNAL;
    }
    size_t frame_len = 0;
    int verdict = gw_h2_frame_check(&g->frames, conf_of(g->gt), src, len, now_ms(g->gt), g->sock->bytes_written, &frame_len);
    if (verdict >= 0) {
        condemn(g, verdict, calm_detail[verdict], 0);
        *err_desc = calm_detail[verdict];
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    if (verdict == GW_H2_FRAME_IGNORE)
        return (ssize_t)frame_len;
    ssize_t ret = g->inner(conn, src, len, err_desc);
    if (conn->_read_expect != guarded_read_expect) { /* h2o moved on (preface → frames → CONTINUATION → frames) */
        g->inner = conn->_read_expect;
        conn->_read_expect = guarded_read_expect;
    }
    return ret;
}

/* h2o counts a stream open from its HEADERS until both sides have ended it (half-closed, sending the body) */
static int h2_streams_open(void *ctx)
{
    h2o_http2_conn_t *conn = ctx;
    return conn->num_streams.pull.open + conn->num_streams.push.open != 0;
}

static void wrap_h2(gw_guard_conn_t *g, h2o_http2_conn_t *conn)
{
    if (conn->_read_expect == guarded_read_expect)
        return;
    g->inner = conn->_read_expect;
    conn->_read_expect = guarded_read_expect;
    g->state = STATE_HTTP2;
    g->deadline_ms = 0;
    g->frames.written_at_window_update = g->sock->bytes_written;
    g->frames.streams_open = h2_streams_open;
    g->frames.stream_ctx = conn;
}

/* hands SOCK to h2o's HTTP/2 code with the frame reader wrapped before any input is read */
static void start_h2(gw_guard_conn_t *g)
{
    h2o_socket_t *sock = g->sock;
    h2o_buffer_t *input = sock->input; /* what arrived with the handshake / the sniffed bytes */
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http2_accept(g->actx, sock, g->connected_at); /* nothing to read yet: h2o only sets up */
    wrap_h2(g, sock->data);
    h2o_buffer_dispose(&sock->input);
    sock->input = input;
    if (input->size != 0)
        sock->_cb.read(sock, NULL); /* h2o's reader, now on what had arrived */
}

static void start_h1(gw_guard_conn_t *g)
{
    g->state = STATE_HTTP1;
    g->deadline_ms = 0; /* h2o's http1 req_timeout (limits.head_timeout) takes over */
    h2o_http1_accept(g->actx, g->sock, g->connected_at);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    gw_guard_conn_t *g = guard_of_sock(sock);
    if (err != NULL || g == NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    if (proto.len == 2 && memcmp(proto.base, "h2", 2) == 0)
        start_h2(g);
    else
        start_h1(g);
}

/* cleartext: HTTP/2 with prior knowledge starts with the preface, anything else is HTTP/1.1 */
static void on_first_bytes(h2o_socket_t *sock, const char *err)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    gw_guard_conn_t *g = guard_of_sock(sock);
    if (err != NULL || g == NULL) {
        h2o_socket_close(sock);
        return;
    }
    size_t n = sock->input->size < sizeof(preface) - 1 ? sock->input->size : sizeof(preface) - 1;
    if (memcmp(sock->input->bytes, preface, n) != 0) {
        h2o_socket_read_stop(sock);
        start_h1(g);
    } else if (n == sizeof(preface) - 1) {
        h2o_socket_read_stop(sock);
        start_h2(g);
    } /* else: a prefix of the preface, read on */
}

/* ---- accept ----------------------------------------------------------------------------------------------- */

/* A refused connection costs accept4, setsockopt and close: no h2o socket, no allocation, no event
 * registration (a burst of thousands must drain faster than the kernel's accept queue fills). */
void gw_guard_accept(gw_guard_thread_t *gt, h2o_accept_ctx_t *actx, int fd, const struct sockaddr_storage *peer,
                     socklen_t peerlen)
{
    const gw_conf_t *conf = conf_of(gt);
    uint64_t now = now_ms(gt);
    uint64_t open = __atomic_add_fetch(&totals.open, 1, __ATOMIC_RELAXED);
    int reason = -1, slot = -1;
    uint8_t key[16];
    if (conf->limits.connections != 0 && open > conf->limits.connections)
        reason = GW_GUARD_CAPACITY;
    else if (addr_key(peer, key) && (slot = addr_admit(key, conf, now)) <= -2)
        reason = -2 - slot;
    if (reason >= 0) {
        __atomic_sub_fetch(&totals.open, 1, __ATOMIC_RELAXED);
        count_close(reason);
        log_reason_addr(gt, (const struct sockaddr *)peer, peerlen, reason,
                        reason == GW_GUARD_CAPACITY ? "connection refused: limits.connections are open"
                        : reason == GW_GUARD_PER_IP
                            ? "connection refused: limits.connections_per_ip are open from this address"
                            : "connection refused: over limits.new_connections_per_ip",
                        1);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        return;
    }
    gw_guard_conn_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        addr_release(slot);
        __atomic_sub_fetch(&totals.open, 1, __ATOMIC_RELAXED);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    h2o_socket_t *sock = h2o_evloop_socket_create(gt->thread->loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
    h2o_socket_setpeername(sock, (struct sockaddr *)peer, peerlen);
    g->gt = gt;
    g->sock = sock;
    g->actx = actx;
    g->connected_at = *h2o_get_timestamp(actx->ctx, NULL, NULL);
    g->addr_slot = slot;
    g->reason = -1;
    g->deadline_ms = conf->limits.handshake_timeout_ms != 0 ? now + conf->limits.handshake_timeout_ms : 0;
    h2o_linklist_insert(&gt->conns, &g->link);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = g;
    if (actx->ssl_ctx != NULL) {
        g->state = STATE_HANDSHAKE;
        h2o_socket_ssl_handshake(sock, actx->ssl_ctx, NULL, on_handshake);
    } else {
        g->state = STATE_SNIFF;
        h2o_socket_read_start(sock, on_first_bytes);
    }
}

/* ---- from the pipeline ------------------------------------------------------------------------------------ */

void gw_guard_on_request(h2o_req_t *req)
{
    if (req->version < 0x200)
        return;
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    gw_guard_conn_t *g = guard_of_sock(conn->sock);
    if (g != NULL && g->state != STATE_HTTP2) /* upgraded from HTTP/1.1 (Upgrade: h2c) */
        wrap_h2(g, conn);
}

void gw_guard_cancelled_before_routing(h2o_req_t *req)
{
    bump(&totals.cancelled_before_routing);
}

void gw_guard_bad_request(h2o_req_t *req)
{
    h2o_socket_t *sock = NULL;
    if (req->version >= 0x200)
        sock = ((h2o_http2_conn_t *)req->conn)->sock;
    gw_guard_conn_t *g = guard_of_sock(sock);
    if (g != NULL && ++g->bad_requests > GW_GUARD_MAX_BAD_REQUESTS)
        condemn(g, GW_GUARD_BAD_REQUESTS, "too many requests refused for their headers on one connection", 0);
}

/* ---- the sweep ---------------------------------------------------------------------------------------------- */

static void on_sweep(h2o_timeout_entry_t *entry)
{
    gw_guard_thread_t *gt = H2O_STRUCT_FROM_MEMBER(gw_guard_thread_t, sweep, entry);
    const gw_conf_t *conf = conf_of(gt);
    uint64_t now = now_ms(gt);
    h2o_linklist_t *node, *next;
    for (node = gt->conns.next; node != &gt->conns; node = next) {
        next = node->next; /* shut_down never disposes the socket here: h2o does, on its next read or write */
        gw_guard_conn_t *g = H2O_STRUCT_FROM_MEMBER(gw_guard_conn_t, link, node);
        if (g->reason >= 0) {
            if (g->kill_at_ms != 0 && now >= g->kill_at_ms) {
                g->kill_at_ms = 0;
                shut_down(g);
            }
            continue;
        }
        if (g->deadline_ms != 0 && now >= g->deadline_ms) {
            condemn(g, GW_GUARD_HANDSHAKE_TIMEOUT, "no request within limits.handshake_timeout", 1);
            continue;
        }
        /* a client that takes no byte of a response for limits.send_timeout */
        if (h2o_socket_is_writing(g->sock) && g->sock->bytes_written == g->written_at_check) {
            if (g->stalled_since_ms == 0)
                g->stalled_since_ms = now;
            else if (conf->limits.send_timeout_ms != 0 && now - g->stalled_since_ms >= conf->limits.send_timeout_ms)
                condemn(g, GW_GUARD_SEND_TIMEOUT, "the client took no byte of its responses for limits.send_timeout", 1);
        } else {
            g->stalled_since_ms = 0;
        }
        g->written_at_check = g->sock->bytes_written;
    }
    h2o_timeout_link(gt->thread->loop, &gt->sweep_timeout, &gt->sweep);
}

static void seed_once(void)
{
    if (RAND_bytes((unsigned char *)&addrs.seed, sizeof(addrs.seed)) != 1)
        addrs.seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
}

gw_guard_thread_t *gw_guard_thread_new(gw_thread_t *thread)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, seed_once);
    gw_guard_thread_t *gt = calloc(1, sizeof(*gt));
    if (gt == NULL)
        h2o_fatal("no memory");
    gt->thread = thread;
    h2o_linklist_init_anchor(&gt->conns);
    h2o_timeout_init(thread->loop, &gt->sweep_timeout, SWEEP_MS);
    gt->sweep.cb = on_sweep;
    h2o_timeout_link(thread->loop, &gt->sweep_timeout, &gt->sweep);
    return gt;
}
