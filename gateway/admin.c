/*
 * gateway/admin.c — the admin listener's endpoints (SPEC §1, §8): /healthz, /readyz, /metrics.
 *
 * Registered by server.c on the admin thread's own h2o configuration, never on the public
 * listeners. Read-only: it looks at counters and readiness, and changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"
#include "gateway/revocations.h"

volatile int gw_ready;

static void send_text(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Service Unavailable";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    send_text(req, 200, "application/json", H2O_STRLIT("{\"status\":\"ok\"}\n"));
    return 0;
}

static int on_readyz(h2o_handler_t *self, h2o_req_t *req)
{
    int keys = gw_server_keys_loaded(), store = gw_server_store_up();
    char body[200];
    int len = snprintf(body, sizeof(body),
                       "{\"status\":\"%s\",\"keys\":\"%s\",\"store\":\"%s\",\"revocations\":\"%s\",\"generation\":%u}\n",
                       gw_ready && keys && store ? "ready" : "not ready", keys ? "loaded" : "missing", store ? "up" : "down",
                       gw_revocations_state_name(gw_revocations_state()), gw_server_generation());
    send_text(req, gw_ready && keys && store ? 200 : 503, "application/json", h2o_strdup(&req->pool, body, len).base, len);
    return 0;
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    size_t len;
    char *text = gw_metrics_render(&len);
    char *copy = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(copy, text, len);
    free(text);
    send_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", copy, len);
    return 0;
}

static int on_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    gw_problem_send_raw(req, NULL, 404, "not-found", "Not Found", "the admin listener serves /healthz, /readyz and /metrics");
    return 0;
}

static void add(h2o_hostconf_t *host, const char *path, int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    h2o_handler_t *h = h2o_create_handler(pathconf, sizeof(*h));
    h->on_req = on_req;
}

void gw_admin_register(h2o_globalconf_t *globalconf)
{
    h2o_hostconf_t *host = h2o_config_register_host(globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    add(host, "/healthz", on_healthz);
    add(host, "/readyz", on_readyz);
    add(host, "/metrics", on_metrics);
    add(host, "/", on_not_found);
}
