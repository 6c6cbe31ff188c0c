#include "obs/metrics_engine.h"

#include "config/config_engine.h"
#include "route/affinity.h"
#include "route/engine.h"

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed escaped, as the format asks. */
static void label_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (esc)
            buf_append_str(b, esc);
        else
            buf_append(b, s, 1);
    }
}

static void provider_series(struct buf *b, const char *name, const struct runtime_provider *p,
                            const char *extra_name, const char *extra_value)
{
    buf_append_str(b, name);
    buf_append_str(b, "{provider=\"");
    label_value(b, p->cfg->name);
    buf_printf(b, "\",engine=\"%s\"", config_engine_name(p->cfg->metrics.engine));
    if (extra_name) buf_printf(b, ",%s=\"%s\"", extra_name, extra_value);
    buf_append_str(b, "}");
}

static void render_engines(struct buf *b, struct runtime *rt, uint64_t now_ms)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"unbusy_engine_queue", "gauge",
         "Requests waiting in the engine's queue at the last good scrape of its metrics."},
        {"unbusy_engine_running", "gauge",
         "Requests in the engine's running batch at the last good scrape."},
        {"unbusy_engine_kv_usage", "gauge",
         "The engine's KV-cache use (0 to 1) at the last good scrape; 0 where it has no gauge."},
        {"unbusy_engine_scrape_age_seconds", "gauge",
         "Seconds since the last good scrape of the engine's metrics (-1: none yet)."},
        {"unbusy_engine_scrapes_total", "counter",
         "Scrapes of the engine's metrics, by result (ok, failed)."},
        {"unbusy_engine_up", "gauge",
         "0 while failed scrapes in a row have marked the provider down, else 1."},
    };
    const struct config *cfg = rt->cfg;
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < cfg->nproviders; i++) {
            const struct runtime_provider *p = &rt->providers[i];
            const struct engine_state *st = &p->engine;
            if (!st->enabled) continue;
            if (f == 4) {
                provider_series(b, fams[f].name, p, "result", "ok");
                buf_printf(b, " %llu\n", (unsigned long long)atomic_load(&st->scrapes_ok));
                provider_series(b, fams[f].name, p, "result", "failed");
                buf_printf(b, " %llu\n", (unsigned long long)atomic_load(&st->scrapes_failed));
                continue;
            }
            provider_series(b, fams[f].name, p, NULL, NULL);
            uint64_t at = atomic_load(&st->scraped_at_ms);
            switch (f) {
            case 0:
                buf_printf(b, " %u\n", atomic_load(&st->waiting));
                break;
            case 1:
                buf_printf(b, " %u\n", atomic_load(&st->running));
                break;
            case 2:
                buf_printf(b, " %.3f\n", atomic_load(&st->kv_permille) / 1000.0);
                break;
            case 3:
                buf_printf(b, " %.3f\n", at ? (now_ms > at ? now_ms - at : 0) / 1000.0 : -1.0);
                break;
            default:
                buf_printf(b, " %d\n", atomic_load(&st->marked_down) ? 0 : 1);
                break;
            }
        }
    }
}

static void render_affinity(struct buf *b, struct runtime *rt)
{
    family(b, "unbusy_affinity_requests_total", "counter",
           "Requests with an affinity key, by where they went: home (the key's own deployment on "
           "the ring) or spill (it was over the load bound; the next on the ring).");
    for (size_t i = 0; i < rt->cfg->nmodels; i++) {
        const struct runtime_model *rm = &rt->models[i];
        const struct affinity *a = rm->balancer ? rm->balancer->affinity : NULL;
        if (!a) continue;
        const char *results[2] = {"home", "spill"};
        unsigned long long v[2] = {atomic_load(&a->home), atomic_load(&a->spill)};
        for (int r = 0; r < 2; r++) {
            buf_append_str(b, "unbusy_affinity_requests_total{model=\"");
            label_value(b, rm->cfg->name);
            buf_printf(b, "\",affinity=\"%s\",result=\"%s\"} %llu\n",
                       config_engine_affinity_name(rm->cfg->routing.affinity), results[r], v[r]);
        }
    }
}

void metrics_engine_render(struct buf *out, struct runtime *rt, uint64_t now_ms)
{
    if (!rt) return;
    bool engines = false, rings = false;
    for (size_t i = 0; i < rt->cfg->nproviders; i++)
        engines |= rt->providers[i].engine.enabled;
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        rings |= rt->models[i].balancer && rt->models[i].balancer->affinity;
    if (engines) render_engines(out, rt, now_ms);
    if (rings) render_affinity(out, rt);
}

void metrics_engine_renderer(void *ud, struct buf *out)
{
    metrics_engine_render(out, ud, runtime_now_ms());
}
