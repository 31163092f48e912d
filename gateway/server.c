/*
 * gateway/server.c — process and threads: listeners, event loops, handing configuration
 * generations (generation.c) to the threads, signals (SIGTERM/SIGINT drain and exit 0, SIGHUP reload) and the log.
 *
 * Called by main.c (gw_server_run). The main thread only waits for signals; each worker thread
 * owns one h2o evloop, one h2o context and its own SO_REUSEPORT listening sockets; the admin
 * listener has a thread of its own so /healthz answers even when workers are busy.
 * Configuration reaches threads only as immutable generations passed by message: nothing here
 * mutates a generation after it is built, and a bad new config never replaces a good one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"
#include "auth/kdf.h"

/* ---- log ---------------------------------------------------------------------------------------- */

void gw_log(const char *level, const char *fmt, ...)
{
    char line[1024], ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof(line), "%s.%03ldZ [%s] ", ts, now.tv_nsec / 1000000, level);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

/* ---- per-thread helpers ------------------------------------------------------------------------------ */

gw_timeout_t *gw_thread_timeout(gw_thread_t *thread, uint64_t ms)
{
    for (size_t i = 0; i != thread->num_timeouts; ++i)
        if (thread->timeouts[i]->ms == ms)
            return thread->timeouts[i];
    if (thread->num_timeouts == sizeof(thread->timeouts) / sizeof(thread->timeouts[0]))
        return thread->timeouts[thread->num_timeouts - 1]; /* more distinct timeouts than routes ever need */
    gw_timeout_t *t = h2o_mem_alloc(sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(thread->ctx.loop, &t->timeout, ms);
    t->client_ctx = (h2o_http1client_ctx_t){thread->ctx.loop, &thread->ctx.receivers.hostinfo_getaddr, &t->timeout, NULL, NULL};
    thread->timeouts[thread->num_timeouts++] = t;
    return t;
}

h2o_socketpool_t *gw_thread_pool(gw_thread_t *thread, gw_target_t *target)
{
    h2o_socketpool_t *pool = target->pools[thread->id];
    if (pool == NULL) {
        pool = h2o_mem_alloc(sizeof(*pool));
        h2o_socketpool_init_by_address(pool, (struct sockaddr *)&target->sa, target->salen, 0, SIZE_MAX);
        h2o_socketpool_set_timeout(pool, thread->ctx.loop, 2000); /* idle keep-alive connections live 2 s */
        target->pools[thread->id] = pool;
    }
    return pool;
}

/* ---- listeners ------------------------------------------------------------------------------------- */

typedef struct {
    const gw_listen_conf_t *conf;
    SSL_CTX *ssl_ctx;
    int fds[GW_MAX_THREADS];
} listener_t;

static struct {
    const char *conf_path;
    gw_gen_t *gen; /* newest generation (main thread only) */
    h2o_globalconf_t globalconf;
    listener_t *listeners;
    size_t num_listeners;
    gw_thread_t *threads;
    unsigned num_threads;
    pthread_t *tids;
    int admin_fd;
    pthread_t admin_tid;
    int keys_loaded;  /* the newest generation has token keys (read by the admin thread) */
    unsigned applied; /* serial of the newest generation every thread serves (atomic) */
} server;

static int open_listener(const char *host, uint16_t port, int reuseport)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (gw_resolve(host, port, &ss, &sslen) != 0) {
        gw_log("error", "cannot resolve listen address %s", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd == -1)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 4096) != 0) {
        gw_log("error", "cannot listen on %s:%u: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static SSL_CTX *create_ssl_ctx(const gw_listen_conf_t *lc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, lc->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, lc->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        gw_log("error", "port %u: cannot load TLS certificate/key (%s, %s)", lc->port, lc->tls_cert, lc->tls_key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
}

/* the admin listener: h2o's own accept */
static void on_admin_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_accept_ctx_t *actx = listener->data;
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(actx, sock);
    }
}

/* a worker listener: every client connection goes through the guard */
static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_accept_ctx_t *actx = listener->data;
    gw_thread_t *thread = H2O_STRUCT_FROM_MEMBER(gw_thread_t, ctx, actx->ctx);
    for (int i = 0; i != 64; ++i) { /* the guard refuses cheaply: drain bursts, then let the loop run */
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(h2o_socket_get_fd(listener), (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        gw_guard_accept(thread->guard, actx, fd, &peer, len);
    }
}

/* ---- worker threads ---------------------------------------------------------------------------------- */

typedef struct {
    h2o_multithread_message_t super;
    gw_gen_t *gen; /* new generation (a reference owned by the message), or NULL */
    int stop;
} control_msg_t;

static void stop_listening(gw_thread_t *thread)
{
    for (size_t i = 0; i != thread->num_listeners; ++i) {
        h2o_accept_ctx_t *actx = thread->listeners[i]->data;
        h2o_socket_read_stop(thread->listeners[i]);
        h2o_socket_close(thread->listeners[i]);
        free(actx);
    }
    thread->num_listeners = 0;
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    gw_thread_t *thread = H2O_STRUCT_FROM_MEMBER(gw_thread_t, control, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        control_msg_t *msg = H2O_STRUCT_FROM_MEMBER(control_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->gen != NULL) {
            gw_gen_t *old = thread->gen;
            thread->gen = msg->gen;
            gw_gen_release(old);
            /* the last thread to switch completes the reload: from here every new request sees it */
            if (__atomic_add_fetch(&thread->gen->switched, 1, __ATOMIC_ACQ_REL) == server.num_threads) {
                gw_log("info", "reload %u complete: every thread serves the new configuration", thread->gen->serial);
                __atomic_store_n(&server.applied, thread->gen->serial, __ATOMIC_RELEASE);
            }
        }
        if (msg->stop && !thread->stopping) {
            thread->stopping = 1;
            stop_listening(thread);
            h2o_context_request_shutdown(&thread->ctx);
        }
        free(msg);
    }
}

static void send_control(gw_thread_t *thread, gw_gen_t *gen, int stop)
{
    control_msg_t *msg = h2o_mem_alloc(sizeof(*msg));
    *msg = (control_msg_t){{{NULL}}, gen, stop};
    h2o_multithread_send_message(&thread->control, &msg->super);
}

static int thread_drained(gw_thread_t *thread)
{
    return thread->inflight == 0 && h2o_linklist_is_empty(&thread->ctx.http1._conns) &&
           h2o_linklist_is_empty(&thread->ctx.http2._conns);
}

/* the store and the rate limiter live on the thread's own loop */
static void thread_init_store(gw_thread_t *thread)
{
    const gw_conf_t *conf = thread->gen->conf;
    gw_store_conf_t sc = gw_store_conf_from(conf);
    char err[256];
    if ((thread->store = gw_store_create(thread->loop, &sc, err, sizeof(err))) == NULL && thread->id == 0)
        gw_log("error", "store: %s (on_store_down applies)", err);
    thread->tokcache = auth_tokcache_new(0);
    thread->revasked = gw_revocations_asked_new();
    thread->guard = gw_guard_thread_new(thread);
    thread->ratelimit = gw_ratelimit_ctx_create(thread->loop, thread->store, conf->on_store_down, conf->nodes, server.num_threads);
    gw_metrics_set_store(thread->metrics, thread->store);
    gw_metrics_set_ratelimit(thread->metrics, thread->ratelimit);
    gw_family_t *const *fam;
    for (size_t f = 0, nf = gw_families(&fam); f != nf; ++f)
        if (fam[f]->thread_init != NULL)
            thread->family_data[f] = fam[f]->thread_init(thread);
    if (thread->id == 0)
        gw_revocations_start(thread); /* one subscriber per process, on the first loop */
}

int gw_server_keys_loaded(void)
{
    return __atomic_load_n(&server.keys_loaded, __ATOMIC_RELAXED);
}

unsigned gw_server_generation(void)
{
    return __atomic_load_n(&server.applied, __ATOMIC_ACQUIRE);
}

int gw_server_store_up(void)
{
    for (unsigned i = 0; i != server.num_threads; ++i)
        if (server.threads[i].store == NULL || !gw_store_is_up(server.threads[i].store))
            return 0;
    return server.num_threads != 0;
}

static void *thread_main(void *arg)
{
    gw_thread_t *thread = arg;
    uint64_t deadline = 0;
    thread_init_store(thread);
    while (1) {
        h2o_evloop_run(thread->loop, thread->stopping ? 50 : INT32_MAX);
        if (thread->stopping) {
            if (deadline == 0)
                deadline = h2o_now(thread->loop) + thread->gen->conf->shutdown_timeout_ms;
            if (thread_drained(thread) || h2o_now(thread->loop) >= deadline)
                break;
        }
    }
    gw_accesslog_flush_thread();
    return NULL;
}

static int start_threads(void)
{
    const gw_conf_t *conf = server.gen->conf;
    server.num_threads = conf->threads;
    if (server.num_threads > GW_MAX_THREADS)
        server.num_threads = GW_MAX_THREADS;
    server.threads = calloc(server.num_threads, sizeof(*server.threads));
    server.tids = calloc(server.num_threads, sizeof(*server.tids));
    uint64_t seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    for (unsigned i = 0; i != server.num_threads; ++i) {
        gw_thread_t *thread = &server.threads[i];
        thread->id = i;
        thread->loop = h2o_evloop_create();
        h2o_context_init(&thread->ctx, thread->loop, &server.globalconf);
        h2o_multithread_register_receiver(thread->ctx.queue, &thread->control, on_control);
        gw_gen_addref(server.gen);
        thread->gen = server.gen;
        thread->reqid_prefix = seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
        thread->metrics = gw_metrics_thread_create();
        thread->listeners = calloc(server.num_listeners, sizeof(*thread->listeners));
        for (size_t l = 0; l != server.num_listeners; ++l) {
            h2o_accept_ctx_t *actx = calloc(1, sizeof(*actx));
            actx->ctx = &thread->ctx;
            actx->hosts = server.globalconf.hosts;
            actx->ssl_ctx = server.listeners[l].ssl_ctx;
            h2o_socket_t *sock = h2o_evloop_socket_create(thread->loop, server.listeners[l].fds[i], H2O_SOCKET_FLAG_DONT_READ);
            sock->data = actx;
            h2o_socket_read_start(sock, on_accept);
            thread->listeners[thread->num_listeners++] = sock;
        }
    }
    for (unsigned i = 0; i != server.num_threads; ++i)
        h2o_multithread_create_thread(&server.tids[i], NULL, thread_main, &server.threads[i]);
    return 0;
}

/* ---- admin thread ------------------------------------------------------------------------------------- */

static h2o_globalconf_t admin_globalconf;

static void *admin_main(void *arg)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_t ctx;
    h2o_context_init(&ctx, loop, &admin_globalconf);
    h2o_accept_ctx_t actx = {&ctx, admin_globalconf.hosts};
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, server.admin_fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = &actx;
    h2o_socket_read_start(sock, on_admin_accept);
    while (1)
        h2o_evloop_run(loop, INT32_MAX);
    return NULL;
}

static int start_admin(const gw_conf_t *conf)
{
    if (conf->admin.port == 0)
        return 0;
    if ((server.admin_fd = open_listener(conf->admin.host, conf->admin.port, 0)) == -1)
        return -1;
    h2o_config_init(&admin_globalconf);
    admin_globalconf.server_name = h2o_iovec_init(H2O_STRLIT("hegate"));
    gw_admin_register(&admin_globalconf);
    h2o_multithread_create_thread(&server.admin_tid, NULL, admin_main, NULL);
    return 0;
}

/* ---- reload and main loop ---------------------------------------------------------------------------- */

static void log_errors(const char *prefix, gw_errors_t *errs)
{
    for (size_t i = 0; i != errs->n; ++i)
        gw_log("error", "%s%s", prefix, errs->v[i]);
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* whether the store settings (read once per thread at start) differ */
static int store_conf_changed(const gw_conf_t *a, const gw_conf_t *b)
{
    if (str_differs(a->redis.url, b->redis.url) || a->redis.timeout_ms != b->redis.timeout_ms ||
        a->redis.cluster.n != b->redis.cluster.n || a->on_store_down != b->on_store_down || a->nodes != b->nodes)
        return 1;
    for (size_t i = 0; i != a->redis.cluster.n; ++i)
        if (str_differs(a->redis.cluster.v[i], b->redis.cluster.v[i]))
            return 1;
    return 0;
}

static void reload(void)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *conf = gw_conf_load(server.conf_path, &errs);
    gw_gen_t *gen = conf != NULL ? gw_gen_build(conf, &errs) : NULL;
    if (gen == NULL) {
        log_errors("reload refused, keeping the running configuration: ", &errs);
        if (errs.n == 0)
            gw_log("error", "reload refused, keeping the running configuration: cannot build it");
        gw_conf_free(conf);
        gw_errors_clear(&errs);
        return;
    }
    const gw_conf_t *old = server.gen->conf;
    if (conf->num_listen != old->num_listen || conf->threads != old->threads || conf->admin.port != old->admin.port)
        gw_log("warn", "reload: listeners, threads and admin changes take effect only after a restart");
    if (conf->limits.head_timeout_ms != old->limits.head_timeout_ms || conf->limits.idle_timeout_ms != old->limits.idle_timeout_ms)
        gw_log("warn", "reload: limits.head_timeout and limits.idle_timeout changes take effect only after a restart");
    if (store_conf_changed(conf, old))
        gw_log("warn", "reload: redis, on_store_down and nodes changes take effect only after a restart");
    gen->serial = server.gen->serial + 1;
    for (unsigned i = 0; i != server.num_threads; ++i) {
        gw_gen_addref(gen);
        send_control(&server.threads[i], gen, 0);
    }
    gw_gen_release(server.gen);
    server.gen = gen;
    __atomic_store_n(&server.keys_loaded, gen->token_keys != NULL, __ATOMIC_RELAXED);
    gw_log("info", "reload %u accepted (%s: %zu routes, %zu clients), handing it to every thread", gen->serial, server.conf_path,
           conf->num_routes, conf->num_clients);
}

static int setup_listeners(const gw_conf_t *conf)
{
    server.num_listeners = conf->num_listen;
    server.listeners = calloc(conf->num_listen, sizeof(*server.listeners));
    unsigned nthreads = conf->threads > GW_MAX_THREADS ? GW_MAX_THREADS : conf->threads;
    for (size_t l = 0; l != conf->num_listen; ++l) {
        listener_t *ls = &server.listeners[l];
        ls->conf = &conf->listen[l];
        if (ls->conf->tls_cert != NULL && (ls->ssl_ctx = create_ssl_ctx(ls->conf)) == NULL)
            return -1;
        for (unsigned t = 0; t != nthreads; ++t)
            if ((ls->fds[t] = open_listener(ls->conf->host, ls->conf->port, 1)) == -1)
                return -1;
    }
    return 0;
}

int gw_server_run(const char *conf_path)
{
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *conf = gw_conf_load(conf_path, &errs);
    if (conf == NULL || (server.gen = gw_gen_build(conf, &errs)) == NULL) {
        log_errors("", &errs);
        gw_errors_clear(&errs);
        gw_conf_free(conf);
        return 1;
    }
    server.conf_path = conf_path;
    server.gen->serial = server.applied = 1;
    server.keys_loaded = server.gen->token_keys != NULL;
    if (!server.keys_loaded)
        gw_log("warn", "no token keys under %s/token: protected routes answer 401 and /readyz 503 (hegate keys generate)",
               conf->keys_dir);

    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* threads inherit the mask; only the main thread takes signals */

    if (gw_accesslog_open(conf->access_log) != 0) {
        gw_log("error", "cannot open access log %s", conf->access_log);
        return 1;
    }
    h2o_config_init(&server.globalconf);
    server.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("hegate"));
    /* h2o refuses bodies beyond this cap itself, unread (HTTP/1.1: a 413 that problem.c's filter
     * rewrites to problem+json; HTTP/2: REFUSED_STREAM); up to it the pipeline answers 413 problem+json
     * for anything over limits.body_bytes */
    server.globalconf.max_request_entity_size = conf->limits.body_bytes * 2 + 65536;
    server.globalconf.http2.graceful_shutdown_timeout = conf->shutdown_timeout_ms;
    server.globalconf.http1.req_timeout = conf->limits.head_timeout_ms; /* h2o: a request head (and body) on HTTP/1.1 */
    server.globalconf.http2.idle_timeout = conf->limits.idle_timeout_ms;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&server.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    gw_pipeline_register(h2o_config_register_path(hostconf, "/", 0));
    gw_problem_register_rewriter(&hostconf->fallback_path);

    if (setup_listeners(conf) != 0 || start_admin(conf) != 0)
        return 1;
    start_threads();
    gw_ready = 1;
    gw_log("info", "hegate %s serving with %u threads, %zu listeners, %zu routes", HEGATE_VERSION, server.num_threads,
           server.num_listeners, conf->num_routes);

    while (1) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload();
            continue;
        }
        break;
    }
    gw_log("info", "shutting down: finishing in-flight requests (at most %llu ms)",
           (unsigned long long)server.gen->conf->shutdown_timeout_ms);
    gw_ready = 0;
    for (unsigned i = 0; i != server.num_threads; ++i)
        send_control(&server.threads[i], NULL, 1);
    for (unsigned i = 0; i != server.num_threads; ++i)
        pthread_join(server.tids[i], NULL);
    auth_kdf_pool_stop(); /* no worker may be inside OpenSSL while exit() cleans it up */
    gw_log("info", "stopped");
    fflush(stdout);
    return 0;
}
