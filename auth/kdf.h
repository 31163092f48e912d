/*
 * auth/kdf.h — password and client-secret hashing (scrypt) and the worker pool that runs it off the
 * event loops (auth/kdf.c). Part of auth's core, like auth/auth.h, but it hands results to an h2o
 * event loop (h2o_multithread), so it lives in a header of its own: auth.h stays free of h2o.
 */
#ifndef hegate_auth_kdf_h
#define hegate_auth_kdf_h

#include <stddef.h>
#include <h2o.h>

/* ---- kdf.c -------------------------------------------------------------------------------------- */

#define AUTH_KDF_HASH_MAX 160    /* "$scrypt$15$8$1$<salt>$<hash>" and a NUL */
#define AUTH_KDF_SECRET_MAX 1024 /* longest password or client secret accepted anywhere */

/* Hashes PW into OUT ("$scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>", N=2^15 r=8 p=1,
 * 16-byte random salt, 32-byte output). Blocking (≈ 50–100 ms): CLI and worker threads only. 0/-1. */
int auth_kdf_hash(const char *pw, size_t len, char out[AUTH_KDF_HASH_MAX]);
/* 1 if PW matches HASH, 0 if not or HASH is malformed, -1 on an internal error. Constant-time
 * comparison. Blocking. */
int auth_kdf_verify(const char *hash, const char *pw, size_t len);

/* The worker pool. A port receives the results on one event loop (one per loop thread). */
typedef struct {
    h2o_multithread_receiver_t receiver;
} auth_kdf_port_t;
typedef struct auth_kdf_job auth_kdf_job_t;
/* RESULT as auth_kdf_verify. Runs on the port's loop, never from inside auth_kdf_verify_async. */
typedef void (*auth_kdf_cb)(void *data, int result);

void auth_kdf_port_init(auth_kdf_port_t *port, h2o_multithread_queue_t *queue);
/* Queues a verification of PW against HASH (both copied; HASH NULL = an unknown user: a dummy hash
 * of the same cost is checked, and the result is 0 — same time, same answer). Returns NULL when the
 * queue is full (the caller answers 503). The handle is valid until CB runs or auth_kdf_cancel. */
auth_kdf_job_t *auth_kdf_verify_async(auth_kdf_port_t *port, const char *hash, const char *pw, size_t len, auth_kdf_cb cb,
                                      void *data);
/* CB will not be called (the work may still run to its end). Loop thread only. */
void auth_kdf_cancel(auth_kdf_job_t *job);
/* Stops the worker pool: each worker ends after the hash it is computing, queued work is dropped.
 * Call once the event loops have ended, before the process exits (a worker still inside OpenSSL
 * while exit() tears OpenSSL down would crash). */
void auth_kdf_pool_stop(void);

#endif
