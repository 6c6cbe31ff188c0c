#include "obs/metrics_discovery.h"

#include <string.h>

/* A label value with backslash, double quote and line feed escaped. */
static void label(struct buf *b, const char *k, const char *v, bool comma)
{
    buf_printf(b, "%s%s=\"", comma ? "," : "", k);
    for (; *v; v++) {
        if (*v == '\\')
            buf_append_str(b, "\\\\");
        else if (*v == '"')
            buf_append_str(b, "\\\"");
        else if (*v == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append(b, v, 1);
    }
    buf_append_str(b, "\"");
}

/* Labelled as the unbusy_deployment_* families: model, provider, deployment_model. */
static void sample(struct buf *b, const char *name, const char *model, const struct runtime_dep *d,
                   const char *k, const char *v, unsigned long long value)
{
    buf_printf(b, "%s{", name);
    label(b, "model", model, false);
    label(b, "provider", d->cfg->provider->name, true);
    label(b, "deployment_model", d->cfg->model, true);
    if (k) label(b, k, v, true);
    buf_printf(b, "} %llu\n", value);
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum fam { F_ADDRESSES, F_RESOLUTIONS, F_CHANGES, F_STALE, F__COUNT };

void metrics_discovery_render(void *runtime, struct buf *b)
{
    struct runtime *rt = runtime;
    static const struct {
        const char *name, *type, *help;
    } fams[F__COUNT] = {
        {"unbusy_discovery_addresses", "gauge",
         "Addresses of a discovered deployment: active (in the latest answer), healthy (active "
         "and taking requests), draining (gone from DNS, requests still in flight)."},
        {"unbusy_discovery_resolutions_total", "counter",
         "DNS resolutions of a discovered deployment's name, by result (ok, failed)."},
        {"unbusy_discovery_address_changes_total", "counter",
         "Addresses a discovered deployment gained (added) or lost (removed) from DNS."},
        {"unbusy_discovery_stale", "gauge",
         "1 while the latest resolution failed and the last good addresses serve, else 0."},
    };
    uint64_t now = runtime_now_ms();
    bool any = false;
    for (size_t i = 0; i < rt->cfg->nmodels && !any; i++)
        for (size_t j = 0; j < rt->models[i].ndeps && !any; j++)
            any = rt->models[i].deps[j].endpoints != NULL;
    if (!any) return;
    for (int f = 0; f < F__COUNT; f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < rt->cfg->nmodels; i++) {
            for (size_t j = 0; j < rt->models[i].ndeps; j++) {
                struct runtime_dep *d = &rt->models[i].deps[j];
                struct endpoint_set *s = d->endpoints;
                if (!s) continue;
                struct endpoint_set_stats st;
                endpoint_set_stats(s, now, &st);
                const char *name = fams[f].name;
                const char *mname = rt->models[i].cfg->name;
                switch ((enum fam)f) {
                case F_ADDRESSES:
                    sample(b, name, mname, d, "state", "active", st.active);
                    sample(b, name, mname, d, "state", "healthy", st.healthy);
                    sample(b, name, mname, d, "state", "draining", st.draining);
                    break;
                case F_RESOLUTIONS:
                    sample(b, name, mname, d, "result", "ok", atomic_load(&s->resolutions_ok));
                    sample(b, name, mname, d, "result", "failed",
                           atomic_load(&s->resolutions_failed));
                    break;
                case F_CHANGES:
                    sample(b, name, mname, d, "change", "added", atomic_load(&s->added));
                    sample(b, name, mname, d, "change", "removed", atomic_load(&s->removed));
                    break;
                case F_STALE:
                    sample(b, name, mname, d, NULL, NULL, st.stale ? 1 : 0);
                    break;
                case F__COUNT:
                    break;
                }
            }
        }
    }
}
