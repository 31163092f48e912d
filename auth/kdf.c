/*
 * auth/kdf.c — scrypt hashes of residents' passwords and confidential clients' secrets, and the
 * small worker pool that checks them off the event loops (SPEC §6: memory-hard, never on a loop).
 *
 * Format: "$scrypt$<log2 N>$<r>$<p>$<salt>$<hash>" (salt 16 bytes, hash 32 bytes, both unpadded
 * base64url). The pool: AUTH_KDF_WORKERS threads take jobs from one bounded queue; each result is
 * posted back with h2o_multithread_send_message to the port (receiver) of the loop that asked. A job
 * whose request went away is cancelled on its loop and freed when its result arrives. An unknown
 * user is checked against a dummy hash of the same cost, so both answers take the same time.
 * Nothing here logs; passwords are wiped from job memory as soon as they are used.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "auth/auth.h"
#include "auth/kdf.h"
#include "crypto/crypto.h"

#define KDF_LOG_N 15
#define KDF_R 8
#define KDF_P 1
#define KDF_SALT_LEN 16
#define KDF_HASH_LEN 32
#define KDF_MAXMEM ((uint64_t)256 << 20)
#define AUTH_KDF_WORKERS 2
#define AUTH_KDF_QUEUE_MAX 256

static int scrypt_raw(const char *pw, size_t len, const uint8_t *salt, size_t saltlen, unsigned logn, unsigned r, unsigned p,
                      uint8_t *out, size_t outlen)
{
    return EVP_PBE_scrypt(pw, len, salt, saltlen, (uint64_t)1 << logn, r, p, KDF_MAXMEM, out, outlen) == 1 ? 0 : -1;
}

int auth_kdf_hash(const char *pw, size_t len, char out[AUTH_KDF_HASH_MAX])
{
    uint8_t salt[KDF_SALT_LEN], hash[KDF_HASH_LEN];
    char salt_b64[CRYPTO_B64URL_LEN(KDF_SALT_LEN) + 1], hash_b64[CRYPTO_B64URL_LEN(KDF_HASH_LEN) + 1];
    if (len > AUTH_KDF_SECRET_MAX || RAND_bytes(salt, sizeof(salt)) != 1 ||
        scrypt_raw(pw, len, salt, sizeof(salt), KDF_LOG_N, KDF_R, KDF_P, hash, sizeof(hash)) != 0)
        return -1;
    crypto_b64url_encode(salt_b64, salt, sizeof(salt));
    crypto_b64url_encode(hash_b64, hash, sizeof(hash));
    OPENSSL_cleanse(hash, sizeof(hash));
    snprintf(out, AUTH_KDF_HASH_MAX, "$scrypt$%u$%u$%u$%s$%s", KDF_LOG_N, KDF_R, KDF_P, salt_b64, hash_b64);
    return 0;
}

/* a decimal in [MIN, MAX] up to '$'; advances *S past the '$' */
static int parse_num(const char **s, unsigned min, unsigned max, unsigned *out)
{
    unsigned v = 0;
    const char *p = *s;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '$'))
        return -1;
    for (; *p >= '0' && *p <= '9'; ++p)
        if ((v = v * 10 + (unsigned)(*p - '0')) > max)
            return -1;
    if (*p != '$' || v < min)
        return -1;
    *s = p + 1;
    *out = v;
    return 0;
}

int auth_kdf_verify(const char *hash, const char *pw, size_t len)
{
    unsigned logn, r, p;
    uint8_t salt[64], want[64], got[64];
    const char *s = hash;
    if (hash == NULL || len > AUTH_KDF_SECRET_MAX || strncmp(s, "$scrypt$", 8) != 0)
        return 0;
    s += 8;
    if (parse_num(&s, 10, 20, &logn) != 0 || parse_num(&s, 1, 32, &r) != 0 || parse_num(&s, 1, 16, &p) != 0)
        return 0;
    const char *dollar = strchr(s, '$');
    if (dollar == NULL)
        return 0;
    long saltlen = crypto_b64url_decode(salt, sizeof(salt), s, (size_t)(dollar - s));
    long wantlen = crypto_b64url_decode(want, sizeof(want), dollar + 1, strlen(dollar + 1));
    if (saltlen < 8 || wantlen < 16)
        return 0;
    if (scrypt_raw(pw, len, salt, (size_t)saltlen, logn, r, p, got, (size_t)wantlen) != 0)
        return -1;
    int ok = CRYPTO_memcmp(got, want, (size_t)wantlen) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* ---- the pool ----------------------------------------------------------------------------------- */

struct auth_kdf_job {
    h2o_multithread_message_t msg; /* first: the receiver hands us this link */
    h2o_linklist_t queued;
    auth_kdf_port_t *port;
    auth_kdf_cb cb;
    void *data;
    int cancelled; /* loop thread only */
    int unknown;   /* no such user: check the dummy hash, answer 0 */
    int result;
    char hash[AUTH_KDF_HASH_MAX];
    size_t len;
    char pw[AUTH_KDF_SECRET_MAX];
};

static struct {
    pthread_once_t once;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    h2o_linklist_t queue;
    size_t queued;
    char dummy[AUTH_KDF_HASH_MAX];
    int stopping;
    size_t num_tids;
    pthread_t tids[AUTH_KDF_WORKERS];
} pool = {PTHREAD_ONCE_INIT, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

/* the dummy hash is made by the workers themselves, never on a loop thread */
static void make_dummy(void)
{
    char pw[33];
    auth_random_b64url(pw, 24);
    if (auth_kdf_hash(pw, strlen(pw), pool.dummy) != 0)
        strcpy(pool.dummy, "$scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    OPENSSL_cleanse(pw, sizeof(pw));
}

static void *worker_main(void *arg)
{
    pthread_once(&dummy_once, make_dummy);
    while (1) {
        pthread_mutex_lock(&pool.mutex);
        while (h2o_linklist_is_empty(&pool.queue) && !pool.stopping)
            pthread_cond_wait(&pool.cond, &pool.mutex);
        if (pool.stopping) {
            pthread_mutex_unlock(&pool.mutex);
            break;
        }
        auth_kdf_job_t *job = H2O_STRUCT_FROM_MEMBER(auth_kdf_job_t, queued, pool.queue.next);
        h2o_linklist_unlink(&job->queued);
        --pool.queued;
        pthread_mutex_unlock(&pool.mutex);
        int r = auth_kdf_verify(job->unknown ? pool.dummy : job->hash, job->pw, job->len);
        job->result = job->unknown ? (r < 0 ? -1 : 0) : r;
        OPENSSL_cleanse(job->pw, sizeof(job->pw));
        h2o_multithread_send_message(&job->port->receiver, &job->msg);
    }
    return NULL;
}

static void pool_start(void)
{
    h2o_linklist_init_anchor(&pool.queue);
    for (int i = 0; i != AUTH_KDF_WORKERS; ++i)
        if (pthread_create(&pool.tids[pool.num_tids], NULL, worker_main, NULL) == 0)
            ++pool.num_tids;
}

void auth_kdf_pool_stop(void)
{
    pthread_mutex_lock(&pool.mutex);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.mutex);
    for (size_t i = 0; i != pool.num_tids; ++i)
        pthread_join(pool.tids[i], NULL);
    pool.num_tids = 0;
}

static void on_results(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        auth_kdf_job_t *job = H2O_STRUCT_FROM_MEMBER(auth_kdf_job_t, msg.link, messages->next);
        h2o_linklist_unlink(&job->msg.link);
        if (!job->cancelled)
            job->cb(job->data, job->result);
        free(job);
    }
}

void auth_kdf_port_init(auth_kdf_port_t *port, h2o_multithread_queue_t *queue)
{
    pthread_once(&pool.once, pool_start);
    h2o_multithread_register_receiver(queue, &port->receiver, on_results);
}

auth_kdf_job_t *auth_kdf_verify_async(auth_kdf_port_t *port, const char *hash, const char *pw, size_t len, auth_kdf_cb cb,
                                      void *data)
{
    if (len > AUTH_KDF_SECRET_MAX)
        len = AUTH_KDF_SECRET_MAX; /* callers cap inputs before; a cut password simply does not match */
    auth_kdf_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->port = port;
    job->cb = cb;
    job->data = data;
    job->unknown = hash == NULL || strlen(hash) >= sizeof(job->hash);
    if (!job->unknown)
        strcpy(job->hash, hash);
    memcpy(job->pw, pw, len);
    job->len = len;
    pthread_mutex_lock(&pool.mutex);
    if (pool.queued >= AUTH_KDF_QUEUE_MAX) {
        pthread_mutex_unlock(&pool.mutex);
        OPENSSL_cleanse(job->pw, sizeof(job->pw));
        free(job);
        return NULL;
    }
    h2o_linklist_insert(&pool.queue, &job->queued);
    ++pool.queued;
    pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.mutex);
    return job;
}

void auth_kdf_cancel(auth_kdf_job_t *job)
{
    job->cancelled = 1;
}
