/*
 * gateway/family.c — the registry of the gateway's own endpoint families (/.well-known, /oauth2,
 * /qr/v1 ...), the way h2o's handlers register on a path and nginx modules add a content handler.
 *
 * main.c calls each folder's *_register function once at start-up; it lands here. generation.c
 * puts every registered endpoint into the same match table as the configured routes, so an own
 * endpoint walks the same pipeline stages as a proxied request and only its handle step differs.
 * Nothing here runs per request but the two state lookups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"

static gw_family_t *families[GW_MAX_FAMILIES];
static size_t num_families;

void gw_family_register(gw_family_t *f)
{
    if (num_families == GW_MAX_FAMILIES)
        h2o_fatal("too many endpoint families");
    f->index = (unsigned)num_families;
    f->metric_slot = gw_metrics_route_slot(f->name);
    for (size_t i = 0; i != f->num_endpoints; ++i) {
        gw_endpoint_t *ep = &f->endpoints[i];
        size_t len = strlen(f->name) + strlen(ep->name) + 2;
        if ((ep->label = malloc(len)) == NULL)
            h2o_fatal("no memory");
        snprintf(ep->label, len, "%s.%s", f->name, ep->name);
        size_t plen = strlen(ep->path);
        if (ep->subtree && plen != 0 && ep->path[plen - 1] == '/')
            --plen;
        if ((ep->full_path = malloc(strlen(f->prefix) + plen + 2)) == NULL)
            h2o_fatal("no memory");
        snprintf(ep->full_path, strlen(f->prefix) + plen + 2, "%s/%.*s", f->prefix, (int)plen, ep->path);
        ep->metric_slot = gw_metrics_route_slot(ep->label);
    }
    if (f->init != NULL)
        f->init();
    families[num_families++] = f;
}

size_t gw_families(gw_family_t *const **out)
{
    *out = families;
    return num_families;
}

void *gw_family_gen_data(const gw_req_t *greq)
{
    return greq->rt != NULL && greq->rt->family != NULL ? greq->gen->family_data[greq->rt->family->index] : NULL;
}

void *gw_family_thread_data(const gw_req_t *greq)
{
    return greq->rt != NULL && greq->rt->family != NULL ? greq->thread->family_data[greq->rt->family->index] : NULL;
}
