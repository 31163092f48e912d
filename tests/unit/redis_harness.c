/*
 * tests/unit/redis_harness.c — real redis-server processes for unit tests (the contract is in
 * redis_harness.h). Linked into every unit-test binary by the Makefile; only tests that call
 * redis_harness_init() start anything.
 *
 * Children are tracked in redis_pids so that the watchdog/signal handler can kill them from
 * async-signal context; atexit() reaps them and removes the private temporary folder.
 */
#include "tests/unit/redis_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utime.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>

redis_server_t redis_servers[REDIS_MAX_SERVERS];
static volatile pid_t redis_pids[REDIS_MAX_SERVERS + 4]; /* what the signal handler kills */
static char redis_dir[128];

uint64_t redis_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void redis_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void redis_track(pid_t pid)
{
    for (size_t i = 0; i != sizeof(redis_pids) / sizeof(redis_pids[0]); ++i)
        if (redis_pids[i] == 0) {
            redis_pids[i] = pid;
            return;
        }
}

static void redis_untrack(pid_t pid)
{
    for (size_t i = 0; i != sizeof(redis_pids) / sizeof(redis_pids[0]); ++i)
        if (redis_pids[i] == pid)
            redis_pids[i] = 0;
}

static void redis_on_fatal_signal(int sig)
{
    for (size_t i = 0; i != sizeof(redis_pids) / sizeof(redis_pids[0]); ++i)
        if (redis_pids[i] > 0) {
            kill(redis_pids[i], SIGCONT);
            kill(redis_pids[i], SIGKILL);
        }
    static const char msg[] = "redis_harness: watchdog or signal: killed every child, exiting\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    _exit(128 + sig);
}

static int redis_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void redis_cleanup(void)
{
    for (size_t i = 0; i != sizeof(redis_pids) / sizeof(redis_pids[0]); ++i)
        if (redis_pids[i] > 0) {
            pid_t pid = redis_pids[i];
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            redis_pids[i] = 0;
        }
    if (redis_dir[0] != '\0') {
        nftw(redis_dir, redis_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        redis_dir[0] = '\0';
    }
}

void redis_harness_init(unsigned watchdog_s)
{
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/hegate-redis-test.XXXXXX");
    if (mkdtemp(redis_dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(redis_cleanup);
    signal(SIGALRM, redis_on_fatal_signal);
    signal(SIGINT, redis_on_fatal_signal);
    signal(SIGTERM, redis_on_fatal_signal);
    signal(SIGHUP, redis_on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    alarm(watchdog_s);
}

static int redis_port_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Like tests/integration/hegatetest.py's free_port: a port below the kernel's ephemeral range (no outgoing
 * connection can take it before redis-server binds it), reserved across processes by a file created with
 * O_EXCL in /tmp/hegate-test-ports (a lease of 5 minutes), so that suites run side by side never pick the
 * same one. Data ports 10000-11999, their cluster bus ports (+10000) 20000-21999 — apart from the
 * integration tests' ranges (redis_fixtures.py's cluster ports 12000-14999 and 22000-24999, free_port()'s
 * 25000-31999). */
static int port_reserve(uint16_t port)
{
    char path[64];
    mkdir("/tmp/hegate-test-ports", 0777);
    snprintf(path, sizeof(path), "/tmp/hegate-test-ports/%u", port);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    struct stat st;
    if (errno == EEXIST && stat(path, &st) == 0 && time(NULL) - st.st_mtime >= 300)
        return utime(path, NULL) == 0; /* a stale lease: take it over */
    return 0;
}

uint16_t redis_free_port(int with_bus)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int attempt = 0; attempt != 5000; ++attempt) {
        uint16_t port = (uint16_t)(10000 + rand_r(&seed) % 2000);
        if (!redis_port_free(port) || (with_bus && !redis_port_free((uint16_t)(port + 10000))) || !port_reserve(port))
            continue;
        for (size_t i = 0; i != REDIS_MAX_SERVERS; ++i) /* not one we handed out already */
            if (redis_servers[i].port == port || (redis_servers[i].port != 0 && redis_servers[i].port + 10000 == port))
                port = 0;
        if (port != 0)
            return port;
    }
    fprintf(stderr, "redis_harness: no free port\n");
    exit(1);
}

/* fork + exec ARGV with output to LOG; the child dies with us */
static pid_t redis_spawn(char *const argv[], const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    redis_track(pid);
    return pid;
}

redisReply *redis_sync(uint16_t port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

int redis_wait_ping(uint16_t port, unsigned max_ms)
{
    uint64_t until = redis_now_ms() + max_ms;
    do {
        redisReply *r = redis_sync(port, "PING");
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r != NULL)
            freeReplyObject(r);
        if (ok)
            return 0;
        redis_sleep_ms(20);
    } while (redis_now_ms() < until);
    return -1;
}

int redis_server_start(uint16_t port, int cluster, int unixsock)
{
    int idx = -1;
    for (int i = 0; idx < 0 && port != 0 && i != REDIS_MAX_SERVERS; ++i) /* a restart keeps its place */
        if (redis_servers[i].pid == 0 && redis_servers[i].port == port)
            idx = i;
    for (int i = 0; idx < 0 && i != REDIS_MAX_SERVERS; ++i)
        if (redis_servers[i].pid == 0 && redis_servers[i].port == 0)
            idx = i;
    if (idx < 0) {
        fprintf(stderr, "redis_harness: too many servers\n");
        exit(1);
    }
    if (port == 0)
        port = redis_free_port(cluster);
    char portstr[8], log[256], sock[256], conf[64];
    snprintf(portstr, sizeof(portstr), "%u", port);
    snprintf(log, sizeof(log), "%s/redis-%u.log", redis_dir, port);
    snprintf(sock, sizeof(sock), "%s/redis-%u.sock", redis_dir, port);
    snprintf(conf, sizeof(conf), "nodes-%u.conf", port);
    char *argv[40];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port", argv[n++] = portstr;
    argv[n++] = "--bind", argv[n++] = "127.0.0.1";
    argv[n++] = "--save", argv[n++] = "";
    argv[n++] = "--appendonly", argv[n++] = "no";
    argv[n++] = "--dir", argv[n++] = redis_dir;
    argv[n++] = "--daemonize", argv[n++] = "no";
    argv[n++] = "--logfile", argv[n++] = "";
    if (unixsock)
        argv[n++] = "--unixsocket", argv[n++] = sock, argv[n++] = "--unixsocketperm", argv[n++] = "700";
    if (cluster) {
        argv[n++] = "--cluster-enabled", argv[n++] = "yes";
        argv[n++] = "--cluster-config-file", argv[n++] = conf;
        argv[n++] = "--cluster-node-timeout", argv[n++] = "1000";
        argv[n++] = "--repl-diskless-sync-delay", argv[n++] = "0"; /* replicas in sync at once */
    }
    argv[n] = NULL;
    redis_servers[idx].pid = redis_spawn(argv, log);
    redis_servers[idx].port = port;
    redis_servers[idx].cluster = cluster;
    redis_servers[idx].stopped = 0;
    if (redis_wait_ping(port, 5000) != 0) {
        fprintf(stderr, "redis_harness: redis-server on port %u did not start (see %s)\n", port, log);
        exit(1);
    }
    return idx;
}

void redis_server_kill(int idx)
{
    redis_server_t *s = &redis_servers[idx];
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    redis_untrack(s->pid);
    s->pid = 0;
    s->stopped = 0;
}

void redis_server_pause(int idx, int stop)
{
    redis_server_t *s = &redis_servers[idx];
    if (s->pid > 0) {
        kill(s->pid, stop ? SIGSTOP : SIGCONT);
        s->stopped = stop;
    }
}

void redis_server_sock_path(int idx, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/redis-%u.sock", redis_dir, redis_servers[idx].port);
}

int redis_run(char *const argv[], unsigned max_ms)
{
    char log[256];
    snprintf(log, sizeof(log), "%s/commands.log", redis_dir);
    pid_t pid = redis_spawn(argv, log);
    uint64_t until = redis_now_ms() + max_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (redis_now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            redis_untrack(pid);
            return -1;
        }
        redis_sleep_ms(20);
    }
    redis_untrack(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int redis_cluster_ok(uint16_t port)
{
    redisReply *r = redis_sync(port, "CLUSTER INFO");
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

uint16_t redis_cluster_owner(uint16_t port, unsigned slot)
{
    redisReply *r = redis_sync(port, "CLUSTER SLOTS");
    uint16_t owner = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i != r->elements; ++i) {
            redisReply *e = r->element[i];
            if (e->elements >= 3 && (long long)slot >= e->element[0]->integer && (long long)slot <= e->element[1]->integer)
                owner = (uint16_t)e->element[2]->element[1]->integer;
        }
    if (r != NULL)
        freeReplyObject(r);
    return owner;
}

int redis_cluster_myid(uint16_t port, char *id, size_t cap)
{
    redisReply *r = redis_sync(port, "CLUSTER MYID");
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len < cap;
    if (ok)
        memcpy(id, r->str, r->len + 1);
    if (r != NULL)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

int redis_cluster_start(int masters, int *idx)
{
    char *argv[40], addrs[12][32];
    int n = 0, total = masters * 2;
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i != total; ++i) {
        idx[i] = redis_server_start(0, 1, 0);
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", redis_servers[idx[i]].port);
        argv[n++] = addrs[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    if (redis_run(argv, 30000) != 0)
        return -1;
    uint64_t until = redis_now_ms() + 20000;
    for (;;) {
        int ok = 1;
        for (int i = 0; i != total; ++i)
            if (!redis_cluster_ok(redis_servers[idx[i]].port))
                ok = 0;
        /* every node must also agree on who serves slot 0 and 16383 */
        for (int i = 0; ok && i != total; ++i)
            if (redis_cluster_owner(redis_servers[idx[i]].port, 0) == 0 ||
                redis_cluster_owner(redis_servers[idx[i]].port, 16383) == 0)
                ok = 0;
        /* and every replica must be in sync, or it will refuse to fail over */
        int replicas = 0;
        for (int i = 0; ok && i != total; ++i) {
            redisReply *r = redis_sync(redis_servers[idx[i]].port, "INFO replication");
            if (r == NULL || r->type != REDIS_REPLY_STRING)
                ok = 0;
            else if (strstr(r->str, "role:slave") != NULL && ++replicas && strstr(r->str, "master_link_status:up") == NULL)
                ok = 0;
            if (r != NULL)
                freeReplyObject(r);
        }
        if (ok && replicas != total - masters)
            ok = 0;
        if (ok)
            return 0;
        if (redis_now_ms() > until)
            return -1;
        redis_sleep_ms(100);
    }
}
