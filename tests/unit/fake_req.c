/*
 * tests/unit/fake_req.c — a hand-made h2o request that records its answer (contract in fake_req.h).
 * h2o_send_inline() in libh2o 2.2.5 needs only the pool, req->pathconf (for the filter list) and
 * req->_ostr_top (the output stream the last filter hands to); the rest stays zero.
 */
#include "tests/unit/fake_req.h"
#include <stdlib.h>
#include <string.h>

static void record(h2o_ostream_t *os, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    fake_req_t *f = H2O_STRUCT_FROM_MEMBER(fake_req_t, ostream, os);
    size_t more = 0;
    for (size_t i = 0; i != bufcnt; ++i)
        more += bufs[i].len;
    f->body = realloc(f->body, f->body_len + more + 1);
    for (size_t i = 0; i != bufcnt; ++i) {
        memcpy(f->body + f->body_len, bufs[i].base, bufs[i].len);
        f->body_len += bufs[i].len;
    }
    f->body[f->body_len] = '\0';
    ++f->sends;
    if (!h2o_send_state_is_in_progress(state))
        ++f->finals;
}

/* h2o_create_filter numbers each filter's config slot in the global configuration: nothing else of it is read */
static h2o_globalconf_t globalconf;

void fake_req_init(fake_req_t *f, const char *method, const char *path)
{
    memset(f, 0, sizeof(*f));
    h2o_mem_init_pool(&f->req.pool);
    f->pathconf.global = &globalconf;
    f->req.pathconf = &f->pathconf;
    f->req._ostr_top = &f->ostream;
    f->ostream.do_send = record;
    f->req.res.content_length = SIZE_MAX;
    f->req.res.reason = "OK";
    f->req.input.method = h2o_strdup(&f->req.pool, method, strlen(method));
    f->req.input.path = h2o_strdup(&f->req.pool, path, strlen(path));
    const char *q = strchr(path, '?');
    f->req.input.query_at = q != NULL ? (size_t)(q - path) : SIZE_MAX;
    f->req.method = f->req.input.method;
    f->req.path = f->req.input.path;
    f->req.query_at = f->req.input.query_at;
    f->greq.req = &f->req;
    strcpy(f->greq.request_id, "test-rid");
    f->greq.request_id_len = strlen(f->greq.request_id);
}

void fake_req_dispose(fake_req_t *f)
{
    free(f->body);
    f->body = NULL;
    /* filters registered on the path configuration (h2o_create_filter mallocs each and the list) */
    for (size_t i = 0; i != f->pathconf.filters.size; ++i)
        free(f->pathconf.filters.entries[i]);
    free(f->pathconf.filters.entries);
    h2o_mem_clear_pool(&f->req.pool);
}

void fake_req_add_header(fake_req_t *f, const char *name, const char *value)
{
    h2o_iovec_t n = h2o_strdup(&f->req.pool, name, strlen(name)), v = h2o_strdup(&f->req.pool, value, strlen(value));
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

const char *fake_req_res_header(fake_req_t *f, const char *name, size_t *count)
{
    const char *first = NULL;
    size_t n = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&f->req.res.headers, name, strlen(name), i)) != -1; ++n)
        if (first == NULL)
            first =
                h2o_strdup(&f->req.pool, f->req.res.headers.entries[i].value.base, f->req.res.headers.entries[i].value.len).base;
    if (count != NULL)
        *count = n;
    return first;
}

h2o_mem_pool_t test_pool;

int test_pool_setup(void **state)
{
    h2o_mem_init_pool(&test_pool);
    return 0;
}

int test_pool_teardown(void **state)
{
    h2o_mem_clear_pool(&test_pool);
    return 0;
}
