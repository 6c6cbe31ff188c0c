#include "api/readyz.h"

#include <string.h>

#include "http/server.h"
#include "proxy/proxy.h"

/* Reasons of runtime_dep_eligible that say a deployment is busy, not out of service:
   it takes requests again as soon as one finishes. */
static bool only_busy(const char *why)
{
    return why && (strcmp(why, "saturated") == 0 || strcmp(why, "rpm") == 0 ||
                   strcmp(why, "half_open") == 0);
}

/* Whether one of the model's deployments is in health; else *why: the first one's reason. */
static bool model_in_health(struct runtime_model *rm, uint64_t now_ms, const char **why)
{
    *why = "no_deployment";
    for (size_t j = 0; j < rm->ndeps; j++) {
        const char *w = NULL;
        if (runtime_dep_eligible(&rm->deps[j], now_ms, &w) || only_busy(w)) return true;
        if (j == 0) *why = w ? w : "unknown";
    }
    return false;
}

int readyz_render(struct runtime *rt, enum procstate st, uint64_t now_ms, struct buf *out)
{
    if (!rt) {
        buf_append_str(out, "{\"status\":\"not_ready\",\"reason\":\"no_config\"}");
        return 503;
    }
    if (!procstate_ready(st)) {
        buf_printf(out, "{\"status\":\"not_ready\",\"reason\":\"%s\"}", procstate_name(st));
        return 503;
    }
    size_t down = 0, nmodels = 0;
    for (size_t i = 0; i < rt->cfg->nmodels; i++) {
        const struct cfg_model *m = &rt->cfg->models[i];
        if (m->auto_import)
            continue; /* the names models: auto providers list come and go with their lists */
        nmodels++;
        const char *why;
        if (model_in_health(&rt->models[i], now_ms, &why)) continue;
        if (down == 0)
            buf_append_str(out, "{\"status\":\"not_ready\",\"reason\":\"models\",\"models\":[");
        if (down < READYZ_MAX_MODELS) {
            buf_append_str(out, down ? ",{\"model\":" : "{\"model\":");
            buf_append_json_str(out, m->name, strlen(m->name));
            buf_printf(out, ",\"deployments\":%zu,\"why\":\"%s\"}", rt->models[i].ndeps, why);
        }
        down++;
    }
    if (down) {
        buf_printf(out, "],\"more\":%zu,\"models_total\":%zu}",
                   down > READYZ_MAX_MODELS ? down - READYZ_MAX_MODELS : 0, nmodels);
        return 503;
    }
    buf_printf(out, "{\"status\":\"ready\",\"models\":%zu}", nmodels);
    return 200;
}

void readyz_handle(struct server_conn *c)
{
    struct proxy_env *env = proxy_env_of(c);
    struct buf b;
    buf_init(&b, 0);
    int status = readyz_render(env->cfg ? env->rt : NULL, procstate_get(), runtime_now_ms(), &b);
    server_respond(c, status, "application/json", "Cache-Control: no-store\r\n", b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}
