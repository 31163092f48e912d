/*
 * tests/unit/redis_harness.h — real redis-server processes for unit tests (tests/unit/redis_harness.c,
 * linked into every unit-test binary).
 *
 * Contract:
 * - Call redis_harness_init() once at the start of main(), before starting anything: it makes a private
 *   temporary folder, installs the cleanup and arms a watchdog alarm that bounds the whole binary.
 * - Every server binds 127.0.0.1 on a free port, keeps no data on disk (--save '' --appendonly no) and
 *   lives in that folder. Nothing outlives the test: each child gets PR_SET_PDEATHSIG (SIGKILL when the
 *   test dies, however it dies), SIGALRM/SIGINT/SIGTERM/SIGHUP kill every child and exit, and atexit()
 *   kills and reaps what is left and removes the folder. SIGPIPE is ignored.
 * - Failures to set up (no free port, a server that does not answer PING within 5 s, more than
 *   REDIS_MAX_SERVERS servers) print a line and exit(1): a test never runs against a half-made setup.
 * - Servers are named by their index in redis_servers[], which tests may read (port, pid, ...) but
 *   should change only through the functions below. Not thread-safe: call from the test's main thread.
 */
#ifndef hegate_tests_redis_harness_h
#define hegate_tests_redis_harness_h

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#define REDIS_MAX_SERVERS 16

typedef struct {
    pid_t pid; /* 0 once killed */
    uint16_t port;
    int cluster;
    int stopped; /* SIGSTOPped */
} redis_server_t;

extern redis_server_t redis_servers[REDIS_MAX_SERVERS];

/* Once at the start of main(): temp folder, cleanup, watchdog of WATCHDOG_S seconds. */
void redis_harness_init(unsigned watchdog_s);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t redis_now_ms(void);
/* Sleeps MS milliseconds, resuming after signals. */
void redis_sleep_ms(unsigned ms);

/* A loopback port nobody uses and no server of ours was given (and port + 10000 too, for a cluster
 * bus, when WITH_BUS). */
uint16_t redis_free_port(int with_bus);

/* A synchronous one-shot command to 127.0.0.1:PORT (1 s timeouts); the caller frees the reply with
 * freeReplyObject(). NULL if unreachable. */
redisReply *redis_sync(uint16_t port, const char *fmt, ...);
/* 0 once PORT answers PING with PONG, -1 after MAX_MS. */
int redis_wait_ping(uint16_t port, unsigned max_ms);

/* Starts redis-server on PORT (0: pick one; a killed server's port restarts in its old slot).
 * CLUSTER: cluster mode, node timeout 1000 ms. UNIXSOCK: also listen on a unix socket (see
 * redis_server_sock_path). Returns once it answers PING; the index in redis_servers. */
int redis_server_start(uint16_t port, int cluster, int unixsock);
/* SIGKILL and reap server IDX (a no-op if it is not running). */
void redis_server_kill(int idx);
/* STOP != 0: SIGSTOP server IDX (it keeps its connections but answers nothing); 0: SIGCONT. */
void redis_server_pause(int idx, int stop);
/* The unix socket path of server IDX (started with UNIXSOCK). */
void redis_server_sock_path(int idx, char *buf, size_t cap);

/* Runs ARGV to completion (at most MAX_MS, then SIGKILL), output to the folder's commands.log;
 * its exit status, or -1 on timeout or signal. */
int redis_run(char *const argv[], unsigned max_ms);

/* 1 when CLUSTER INFO on PORT says cluster_state:ok. */
int redis_cluster_ok(uint16_t port);
/* The port of the master serving SLOT according to node PORT, 0 if unknown. */
uint16_t redis_cluster_owner(uint16_t port, unsigned slot);
/* The node id of the node on PORT into ID (CAP bytes, NUL-terminated); 0, or -1. */
int redis_cluster_myid(uint16_t port, char *id, size_t cap);
/* Starts 2 * MASTERS cluster nodes (MASTERS masters, one replica each, at most 6 masters), creates the
 * cluster and waits until every node agrees and every replica is in sync. Fills IDX (2 * MASTERS
 * entries) with the redis_servers indexes. 0 on success, -1 on timeout. */
int redis_cluster_start(int masters, int *idx);

#endif
