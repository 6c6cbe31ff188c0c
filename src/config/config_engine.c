#include "config/config_engine.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_value.h"

#define ERR CONFIG_YAML_ERR
#define FIELD CONFIG_FIELD
#define SECTION CONFIG_SECTION
#define COUNT CONFIG_COUNT
#define SEC 1000ll
#define MIN (60 * SEC)

/* By enum cfg_engine. */
static const char *const engine_names[] = {"none", "vllm", "sglang", "llama.cpp", "tgi"};
/* By enum cfg_affinity. */
static const char *const affinity_names[] = {"auto", "off", "prefix", "header"};

const char *config_engine_name(enum cfg_engine e)
{
    return (unsigned)e < COUNT(engine_names) ? engine_names[e] : "?";
}

const char *config_engine_affinity_name(enum cfg_affinity a)
{
    return (unsigned)a < COUNT(affinity_names) ? affinity_names[a] : "?";
}

void config_engine_parse_engine(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    int i = config_yaml_choice(ld, v, name, "engine", engine_names, COUNT(engine_names));
    if (i >= 0) {
        p->metrics.engine = (enum cfg_engine)i;
        p->metrics.engine_given = true;
    }
    free(name);
}

static void parse_path(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                       const struct config_yaml_field *f)
{
    struct cfg_engine_metrics *m = obj;
    char *path = config_yaml_text(ld, v);
    if (!path) return;
    if (path[0] != '/' || config_value_has_control(path) || strpbrk(path, " \t")) {
        ERR(ld, v, "must start with '/', without spaces or control characters, got \"%s\"", path);
        free(path);
        return;
    }
    free(m->path);
    m->path = path;
}

/* metrics.url: http(s)://HOST[:PORT]/PATH, where an engine serves its metrics apart. */
static void parse_url(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f)
{
    struct cfg_engine_metrics *m = obj;
    char *url = config_yaml_text(ld, v);
    if (!url) return;
    struct cfg_provider scratch = {0};
    const char *why = NULL;
    if (config_value_base_url(url, &scratch, &why) || scratch.kind != CFG_PROVIDER_OPENAI) {
        /* a URL with user:password@ is not echoed: the message goes to logs */
        if (strchr(url, '@'))
            ERR(ld, v, "bad URL: %s", why ? why : "expected http:// or https://");
        else
            ERR(ld, v, "bad URL \"%s\": %s", url, why ? why : "expected http:// or https://");
    } else {
        free(m->host);
        m->host = scratch.host;
        scratch.host = NULL;
        m->port = scratch.port;
        m->tls = scratch.tls;
        if (scratch.base_path && scratch.base_path[0]) {
            free(m->path);
            m->path = scratch.base_path;
            scratch.base_path = NULL;
        }
    }
    free(scratch.host);
    free(scratch.base_path);
    free(scratch.sim_profile);
    free(url);
}

static const struct config_yaml_field metrics_fields[] = {
    FIELD("enabled", config_yaml_bool, struct cfg_engine_metrics, enabled, 0, 0, 0),
    SECTION("path", parse_path, 0),
    SECTION("url", parse_url, 0),
    FIELD("interval", config_yaml_duration, struct cfg_engine_metrics, interval_ms, 100, 10 * MIN,
          0),
    FIELD("timeout", config_yaml_duration, struct cfg_engine_metrics, timeout_ms, 10, MIN, 0),
    FIELD("unhealthy_threshold", config_yaml_u32, struct cfg_engine_metrics, unhealthy_threshold, 1,
          1000, 0),
};

/* `metrics: false` is short for `metrics: {enabled: false}`. */
void config_engine_metrics_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                   const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    static const struct config_yaml_field enabled =
        FIELD("metrics", config_yaml_bool, struct cfg_engine_metrics, enabled, 0, 0, 0);
    p->metrics.enabled = true; /* written: on unless it says otherwise */
    p->metrics.given = true;
    if (v->type == YAML_SCALAR_NODE)
        config_yaml_bool(ld, v, &p->metrics, &enabled);
    else
        config_yaml_walk(ld, v, metrics_fields, COUNT(metrics_fields), &p->metrics);
}

static void parse_affinity(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_routing *r = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    int i = config_yaml_choice(ld, v, name, "affinity", affinity_names, COUNT(affinity_names));
    if (i >= 0) r->affinity = (enum cfg_affinity)i;
    free(name);
}

static const struct config_yaml_field routing_fields[] = {
    SECTION("affinity", parse_affinity, 0),
    FIELD("header", config_yaml_header_name, struct cfg_routing, header, 0, 0, 0),
    FIELD("prefix_bytes", config_yaml_u32, struct cfg_routing, prefix_bytes, 64, 1 << 20, 0),
    FIELD("load_factor", config_yaml_number, struct cfg_routing, load_factor, CONFIG_YAML_MICRO,
          100 * CONFIG_YAML_MICRO, CONFIG_YAML_ABOVE_MIN),
};

void config_engine_routing_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                   const struct config_yaml_field *f)
{
    struct cfg_model *m = obj;
    config_yaml_walk(ld, v, routing_fields, COUNT(routing_fields), &m->routing);
}

void config_engine_finish_provider(struct config_yaml_loader *ld, yaml_node_t *provider_node,
                                   struct cfg_provider *p)
{
    struct cfg_engine_metrics *m = &p->metrics;
    if (!m->engine_given) {
        switch (p->type) {
        case CFG_TYPE_VLLM:
            m->engine = CFG_ENGINE_VLLM;
            break;
        case CFG_TYPE_SGLANG:
            m->engine = CFG_ENGINE_SGLANG;
            break;
        case CFG_TYPE_LLAMA_CPP:
            m->engine = CFG_ENGINE_LLAMA_CPP;
            break;
        default:
            break;
        }
    }
    /* metrics: false (or enabled: false) keeps it off; else on wherever an engine is known,
       which no cloud preset implies. engine: none turns a preset's engine off. */
    bool off = m->given && !m->enabled;
    /* a discovered provider is many engines behind one name: one scrape would speak for all of
       them, so it is read only when metrics: says so */
    if (p->discovery && !m->given) off = true;
    m->enabled = !off && m->engine != CFG_ENGINE_NONE && p->kind == CFG_PROVIDER_OPENAI &&
                 p->wire == CFG_WIRE_OPENAI;
    if (!m->path) m->path = config_yaml_strdup(ld, "/metrics");
    if (!m->interval_ms) m->interval_ms = CONFIG_ENGINE_DEFAULT_INTERVAL_MS;
    if (!m->timeout_ms) m->timeout_ms = m->interval_ms < 5 * SEC ? m->interval_ms : 5 * SEC;
    if (!m->unhealthy_threshold) m->unhealthy_threshold = CONFIG_ENGINE_DEFAULT_THRESHOLD;
}

static bool scraped(const struct cfg_deployment *d)
{
    return d->provider && d->provider->metrics.enabled;
}

bool config_engine_model_all_scraped(const struct cfg_model *m)
{
    /* a strategy chooses within one tier: a cloud fallback in a tier of its own does not
       make the engines' tier a mixed one */
    bool any = false;
    for (size_t j = 0; j < m->ndeployments; j++) {
        if (!scraped(&m->deployments[j])) continue;
        any = true;
        for (size_t k = 0; k < m->ndeployments; k++)
            if (m->deployments[k].tier == m->deployments[j].tier && !scraped(&m->deployments[k]))
                return false;
    }
    return any;
}

void config_engine_finish(struct config_yaml_loader *ld, struct config *c)
{
    for (size_t i = 0; i < c->nmodels; i++) {
        struct cfg_model *m = &c->models[i];
        bool engines = config_engine_model_all_scraped(m);
        if (engines && !m->resilience.strategy_given) {
            free(m->resilience.strategy);
            m->resilience.strategy = config_yaml_strdup(ld, "engine_load");
        }
        struct cfg_routing *r = &m->routing;
        if (r->affinity == CFG_AFFINITY_AUTO)
            r->affinity = engines ? CFG_AFFINITY_PREFIX : CFG_AFFINITY_OFF;
        if (!r->header) r->header = config_yaml_strdup(ld, "x-session-id");
        for (char *h = r->header; h && *h; h++) /* compared with the lower-cased request head */
            *h = (char)(*h >= 'A' && *h <= 'Z' ? *h + 32 : *h);
        if (!r->prefix_bytes) r->prefix_bytes = CONFIG_ENGINE_DEFAULT_PREFIX_BYTES;
        if (r->load_factor <= 1.0) r->load_factor = CONFIG_ENGINE_DEFAULT_LOAD_FACTOR;
    }
}

void config_engine_free_provider(struct cfg_provider *p)
{
    free(p->metrics.path);
    free(p->metrics.host);
}
