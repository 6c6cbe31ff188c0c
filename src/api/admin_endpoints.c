#include "api/admin_endpoints.h"

#include <stdlib.h>
#include <string.h>

#include "config/config_discovery.h"

/* Active ones plus as many draining ones: what the view shows at most. */
#define ADMIN_MAX_ENDPOINTS (2 * ENDPOINTS_MAX)

void admin_write_endpoints(struct buf *b, struct runtime_dep *d, uint64_t now_ms)
{
    struct endpoint_set *s = d->endpoints;
    const struct cfg_discovery *c = d->cfg->provider->discovery;
    if (!s || !c) return;
    struct endpoint_set_stats st;
    endpoint_set_stats(s, now_ms, &st);
    buf_append_str(b, ",\"discovery\":{\"name\":");
    const char *name = c->srv ? c->srv : d->cfg->provider->host;
    buf_append_json_str(b, name, strlen(name));
    buf_printf(b,
               ",\"type\":\"%s\",\"answered\":%s,\"stale\":%s,\"active\":%u,\"draining\":%u,"
               "\"healthy\":%u,\"resolved_ago_ms\":%llu,\"resolutions_ok\":%llu,"
               "\"resolutions_failed\":%llu",
               c->srv ? "srv" : "dns", st.answered ? "true" : "false", st.stale ? "true" : "false",
               st.active, st.draining, st.healthy,
               (unsigned long long)(st.resolved_ms && now_ms > st.resolved_ms
                                        ? now_ms - st.resolved_ms
                                        : 0),
               (unsigned long long)atomic_load(&s->resolutions_ok),
               (unsigned long long)atomic_load(&s->resolutions_failed));
    if (st.last_error[0]) {
        buf_append_str(b, ",\"last_error\":");
        buf_append_json_str(b, st.last_error, strlen(st.last_error));
    }
    buf_append_str(b, ",\"endpoints\":[");
    struct endpoint_view *v = calloc(ADMIN_MAX_ENDPOINTS, sizeof *v);
    size_t n = v ? endpoint_set_view(s, now_ms, v, ADMIN_MAX_ENDPOINTS) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct health_snapshot *h = &v[i].health;
        buf_append_str(b, i ? ",{\"address\":" : "{\"address\":");
        buf_append_json_str(b, v[i].name, strlen(v[i].name));
        buf_printf(b,
                   ",\"source\":\"%s\",\"state\":\"%s\",\"ttl_s\":%u,\"priority\":%u,"
                   "\"weight\":%u,\"breaker\":\"%s\",\"eligible\":%s",
                   v[i].source, v[i].state, v[i].ttl_s, v[i].priority, v[i].weight, h->breaker,
                   h->eligible ? "true" : "false");
        if (h->why_not) buf_printf(b, ",\"why_not\":\"%s\"", h->why_not);
        buf_printf(b,
                   ",\"inflight\":%u,\"requests\":%llu,\"successes\":%llu,\"trips\":%llu,"
                   "\"ewma_ttft_ms\":%.1f",
                   h->inflight, (unsigned long long)h->requests, (unsigned long long)h->successes,
                   (unsigned long long)h->trips, h->ewma_ttft_ms);
        if (h->last_failure) buf_printf(b, ",\"last_failure\":\"%s\"", h->last_failure);
        buf_append_str(b, "}");
    }
    free(v);
    buf_append_str(b, "]}");
}
