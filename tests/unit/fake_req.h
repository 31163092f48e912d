/*
 * tests/unit/fake_req.h — a hand-made h2o request for unit tests of functions that take an h2o_req_t
 * or a gw_req_t, without a connection, a context or an event loop (tests/unit/fake_req.c).
 *
 * Contract: fake_req_init() gives a request whose pool is ready, whose method and path are set (the
 * query string, if any, marked as h2o marks it), with an empty path configuration (no filters) and
 * an output stream that records what the handler sends: h2o_send_inline() and h2o_send() work on it,
 * nothing else of h2o's request machinery does (no conn, no ctx). The gw_req_t inside points at it,
 * with request id "test-rid". Filters may be registered on f->pathconf (h2o_create_filter) before
 * sending. fake_req_dispose() frees the pool, those filters and whatever was recorded.
 * test_pool is a bare pool for tests of functions that take only an h2o_mem_pool_t.
 */
#ifndef hegate_tests_fake_req_h
#define hegate_tests_fake_req_h

#include <stddef.h>
#include <h2o.h>
#include "gateway/gateway.h"

typedef struct {
    h2o_req_t req;
    gw_req_t greq;
    h2o_pathconf_t pathconf;
    h2o_ostream_t ostream;
    char *body; /* what was sent, NUL-terminated (malloc'd) */
    size_t body_len;
    int sends;  /* do_send calls */
    int finals; /* ... of which with a final state */
} fake_req_t;

void fake_req_init(fake_req_t *f, const char *method, const char *path);
void fake_req_dispose(fake_req_t *f);
/* Adds a request header (lower-case NAME). */
void fake_req_add_header(fake_req_t *f, const char *name, const char *value);
/* The value of response header NAME (lower case) as a NUL-terminated copy in the pool, or NULL;
 * *COUNT (if not NULL) receives how many response headers have that name. */
const char *fake_req_res_header(fake_req_t *f, const char *name, size_t *count);

/* A pool for tests that only need one: cmocka setup/teardown functions that init and clear it. */
extern h2o_mem_pool_t test_pool;
int test_pool_setup(void **state);
int test_pool_teardown(void **state);

#endif
