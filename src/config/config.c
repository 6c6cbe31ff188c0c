#include "config/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config/config_admission.h"
#include "config/config_aws.h"
#include "config/config_discovery.h"
#include "config/config_auth.h"
#include "config/config_reload.h"
#include "config/config_budget.h"
#include "config/config_engine.h"
#include "config/config_redis.h"
#include "config/config_tls.h"
#include "config/config_secrets.h"
#include "config/config_value.h"
#include "config/config_yaml.h"
#include "config/presets.h"
#include "config/prices.h"

/*
 * The schema of the file: one table of keys per section, each row naming the
 * parse function and where the value goes (config_yaml.c does the walking and
 * the reporting), plus the snapshot's defaults, lifetime and model index.
 * Every limit on a count is here, so no list in a snapshot is unbounded.
 */

#define MAX_PROVIDERS 1024
#define MAX_MODELS 4096
#define MAX_DEPLOYMENTS 64 /* per model */

#define ERR CONFIG_YAML_ERR

#define FIELD CONFIG_FIELD
#define SECTION CONFIG_SECTION
#define COUNT CONFIG_COUNT
#define SEC 1000ll
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* calloc for a section's entries, reporting failure at the section. */
static void *alloc_entries(struct config_yaml_loader *ld, yaml_node_t *at, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) ERR(ld, at, "out of memory");
    return p;
}

static void check_timeouts(struct config_yaml_loader *ld, yaml_node_t *v,
                           const struct cfg_timeouts *t)
{
    if (t->first_token_ms > t->total_ms)
        ERR(ld, v, "first_token (%ums) is longer than total (%ums)", t->first_token_ms,
            t->total_ms);
    if (t->connect_ms > t->total_ms)
        ERR(ld, v, "connect (%ums) is longer than total (%ums)", t->connect_ms, t->total_ms);
}

static const struct config_yaml_field timeout_fields[] = {
    FIELD("connect", config_yaml_duration, struct cfg_timeouts, connect_ms, 1, 10 * MIN, 0),
    FIELD("first_token", config_yaml_duration, struct cfg_timeouts, first_token_ms, 1, 24 * HOUR,
          0),
    FIELD("stall", config_yaml_duration, struct cfg_timeouts, stall_ms, 1, 24 * HOUR, 0),
    FIELD("total", config_yaml_duration, struct cfg_timeouts, total_ms, 1, 24 * HOUR, 0),
};

/* obj + f->offset is a struct cfg_timeouts already holding the inherited values. */
static void parse_timeouts(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_timeouts *t = config_yaml_field_ptr(obj, f);
    unsigned before = ld->errors;
    config_yaml_walk(ld, v, timeout_fields, COUNT(timeout_fields), t);
    if (ld->errors == before) check_timeouts(ld, v, t);
}

/* ---- resilience: balancing, breaker, retry budget, hedging ---- */

static const char *const strategies[] = {"p2c", "round_robin", "least_inflight", "latency_weight",
                                         "cost", "engine_load"};

static void parse_strategy(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_resilience *r = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    if (config_yaml_choice(ld, v, name, "strategy", strategies, COUNT(strategies)) >= 0) {
        free(r->strategy);
        r->strategy = name;
        r->strategy_given = true;
        return;
    }
    free(name);
}

static const struct config_yaml_field breaker_fields[] = {
    FIELD("window", config_yaml_duration, struct cfg_breaker, window_ms, 100, HOUR, 0),
    FIELD("min_requests", config_yaml_u32, struct cfg_breaker, min_requests, 1, 1000000, 0),
    FIELD("failure_ratio", config_yaml_number, struct cfg_breaker, failure_ratio, 0,
          CONFIG_YAML_MICRO, CONFIG_YAML_ABOVE_MIN),
    FIELD("consecutive_failures", config_yaml_u32, struct cfg_breaker, consecutive_failures, 0,
          1000000, 0),
    FIELD("open", config_yaml_duration, struct cfg_breaker, open_ms, 1, HOUR, 0),
    FIELD("open_max", config_yaml_duration, struct cfg_breaker, open_max_ms, 1, 24 * HOUR, 0),
    FIELD("half_open_trials", config_yaml_u32, struct cfg_breaker, half_open_trials, 1, 1000, 0),
};

static const struct config_yaml_field retry_budget_fields[] = {
    FIELD("ratio", config_yaml_number, struct cfg_retry_budget, ratio, 0, CONFIG_YAML_MICRO, 0),
    FIELD("min_per_sec", config_yaml_number, struct cfg_retry_budget, min_per_sec, 0,
          1000000 * CONFIG_YAML_MICRO, 0),
    FIELD("window", config_yaml_duration, struct cfg_retry_budget, window_ms, 100, HOUR, 0),
};

static const struct config_yaml_field hedge_fields[] = {
    FIELD("enabled", config_yaml_bool, struct cfg_hedge, enabled, 0, 0, 0),
    FIELD("after", config_yaml_duration, struct cfg_hedge, after_ms, 1, HOUR,
          CONFIG_YAML_AUTO_IS_ZERO),
    FIELD("max_ratio", config_yaml_number, struct cfg_hedge, max_ratio, 0, CONFIG_YAML_MICRO, 0),
};

/* The three sub-sections: each fills its struct in place, over the inherited values. */
static void parse_breaker(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    struct cfg_breaker *b = config_yaml_field_ptr(obj, f);
    unsigned before = ld->errors;
    config_yaml_walk(ld, v, breaker_fields, COUNT(breaker_fields), b);
    if (ld->errors == before && b->open_max_ms < b->open_ms)
        ERR(ld, v, "open_max (%ums) is shorter than open (%ums)", b->open_max_ms, b->open_ms);
}

static void parse_retry_budget(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, retry_budget_fields, COUNT(retry_budget_fields),
                     config_yaml_field_ptr(obj, f));
}

static void parse_hedge(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, hedge_fields, COUNT(hedge_fields), config_yaml_field_ptr(obj, f));
}

static const struct config_yaml_field resilience_fields[] = {
    SECTION("strategy", parse_strategy, 0),
    FIELD("breaker", parse_breaker, struct cfg_resilience, breaker, 0, 0, 0),
    FIELD("retry_budget", parse_retry_budget, struct cfg_resilience, retry_budget, 0, 0, 0),
    FIELD("hedge", parse_hedge, struct cfg_resilience, hedge, 0, 0, 0),
    FIELD("continue_on_cut", config_yaml_bool, struct cfg_resilience, continue_on_cut, 0, 0, 0),
    FIELD("ttft_target", config_yaml_duration, struct cfg_resilience, ttft_target_ms, 1, HOUR,
          CONFIG_YAML_AUTO_IS_ZERO),
    FIELD("slow_start", config_yaml_duration, struct cfg_resilience, slow_start_ms, 0, HOUR, 0),
};

/* obj + f->offset is a struct cfg_resilience already holding the inherited values: a
   model's section overrides only the keys it gives, also inside breaker: and the like. */
static void parse_resilience(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, resilience_fields, COUNT(resilience_fields),
                     config_yaml_field_ptr(obj, f));
}

/* A model's starting point: the top-level section, with its own strategy string. */
static void copy_resilience(struct config_yaml_loader *ld, struct cfg_resilience *dst,
                            const struct cfg_resilience *src)
{
    *dst = *src;
    dst->strategy = src->strategy ? config_yaml_strdup(ld, src->strategy) : NULL;
}

/* ---- provider probes ---- */

static void parse_probe_path(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    struct cfg_probe *p = obj;
    char *path = config_yaml_text(ld, v);
    if (!path) return;
    if (path[0] != '/') {
        ERR(ld, v, "must start with '/', got \"%s\"", path);
    } else if (config_value_has_control(path) || strpbrk(path, " \t")) {
        ERR(ld, v, "spaces and control characters are not allowed in a path");
    } else {
        free(p->path);
        p->path = path;
        return;
    }
    free(path);
}

static const struct config_yaml_field probe_fields[] = {
    FIELD("enabled", config_yaml_bool, struct cfg_probe, enabled, 0, 0, 0),
    SECTION("path", parse_probe_path, 0),
    FIELD("interval", config_yaml_duration, struct cfg_probe, interval_ms, 50, 24 * HOUR, 0),
    FIELD("timeout", config_yaml_duration, struct cfg_probe, timeout_ms, 1, 10 * MIN, 0),
    FIELD("healthy_threshold", config_yaml_u32, struct cfg_probe, healthy_threshold, 1, 1000, 0),
    FIELD("unhealthy_threshold", config_yaml_u32, struct cfg_probe, unhealthy_threshold, 1, 1000,
          0),
    FIELD("deep", config_yaml_bool, struct cfg_probe, deep, 0, 0, 0),
    FIELD("deep_interval", config_yaml_duration, struct cfg_probe, deep_interval_ms, SEC, 24 * HOUR,
          0),
    FIELD("deep_model", config_yaml_string, struct cfg_probe, deep_model, 0, 0,
          CONFIG_YAML_NONEMPTY | CONFIG_YAML_HEADER_SAFE),
};

/* `probe: false` (or true) is short for `probe: {enabled: false}`. */
static void parse_probe(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    struct cfg_probe *p = config_yaml_field_ptr(obj, f);
    static const struct config_yaml_field enabled =
        FIELD("probe", config_yaml_bool, struct cfg_probe, enabled, 0, 0, 0);
    if (v->type == YAML_SCALAR_NODE)
        config_yaml_bool(ld, v, p, &enabled);
    else
        config_yaml_walk(ld, v, probe_fields, COUNT(probe_fields), p);
}

static void parse_listen(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    struct cfg_server *s = obj;
    char *text = config_yaml_text(ld, v), *host;
    const char *why;
    if (!text) return;
    if (config_value_listen(text, &host, &s->listen_port, &why)) {
        ERR(ld, v, "bad address \"%s\": %s", text, why);
    } else {
        free(s->listen_host);
        s->listen_host = host;
    }
    free(text);
}

static const struct config_yaml_field server_fields[] = {
    SECTION("listen", parse_listen, 0),
    FIELD("workers", config_yaml_u32, struct cfg_server, workers, 0, 1024, 0),
    FIELD("max_header_bytes", config_yaml_size, struct cfg_server, max_header_bytes, 1024, 1 << 20,
          0),
    FIELD("max_body_bytes", config_yaml_size, struct cfg_server, max_body_bytes, 1024, 1ll << 30,
          0),
    FIELD("max_response_bytes", config_yaml_size, struct cfg_server, max_response_bytes, 1024,
          1ll << 30, 0),
    FIELD("header_timeout", config_yaml_duration, struct cfg_server, header_timeout_ms, 1, 10 * MIN,
          0),
    FIELD("idle_timeout", config_yaml_duration, struct cfg_server, idle_timeout_ms, 1, HOUR, 0),
    FIELD("drain_timeout", config_yaml_duration, struct cfg_server, drain_timeout_ms, 0, HOUR, 0),
    FIELD("drain_delay", config_yaml_duration, struct cfg_server, drain_delay_ms, 0, 10 * MIN, 0),
    FIELD("max_connections", config_yaml_u32, struct cfg_server, max_connections, 1, 1000000, 0),
    FIELD("access_log", config_yaml_string, struct cfg_server, access_log, 0, 0,
          CONFIG_YAML_NONEMPTY),
    SECTION("tls", config_tls_section, 0),
};

static void parse_server(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, server_fields, COUNT(server_fields), config_yaml_field_ptr(obj, f));
}

static void parse_base_url(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    char *url = config_yaml_text(ld, v);
    const char *why;
    if (!url) return;
    free(p->host); /* a type: may have set them already */
    free(p->base_path);
    free(p->sim_profile);
    p->host = p->base_path = p->sim_profile = NULL;
    if (config_value_base_url(url, p, &why)) ERR(ld, v, "bad URL \"%s\": %s", url, why);
    free(p->base_url);
    p->base_url = url;
    /* The default; a probe: row, later in the table, may override it. The simulator
       runs in-process: there is nothing to probe. */
    p->probe.enabled = p->kind != CFG_PROVIDER_SIM;
}

static const char *const continuations[] = {"auto", "prefix", "continue_final_message",
                                            "assistant_message", "off"};

static void parse_continuation(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    /* the table's order is enum cfg_continuation's */
    int i = config_yaml_choice(ld, v, name, "continuation", continuations, COUNT(continuations));
    if (i >= 0)
        p->continuation = (enum cfg_continuation)i;
    free(name);
}

static const struct config_yaml_field provider_fields[] = {
    SECTION("type", config_preset_apply, 0), /* first: every other key overrides its row */
    SECTION("base_url", parse_base_url, 0),
    FIELD("api_key", config_yaml_string, struct cfg_provider, api_key, 0, 0,
          CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    FIELD("auth_header", config_yaml_header_name, struct cfg_provider, auth_header, 0, 0, 0),
    FIELD("auth_prefix", config_yaml_string, struct cfg_provider, auth_prefix, 0, 0,
          CONFIG_YAML_HEADER_SAFE),
    SECTION("headers", config_parse_headers, 0),
    SECTION("secret_headers", config_parse_secret_headers, 0),
    FIELD("ca_file", config_yaml_string, struct cfg_provider, ca_file, 0, 0,
          CONFIG_YAML_EMPTY_IS_NULL),
    FIELD("tls_verify", config_yaml_bool, struct cfg_provider, tls_verify, 0, 0, 0),
    FIELD("stream_upstream", config_yaml_bool, struct cfg_provider, stream_upstream, 0, 0, 0),
    FIELD("max_idle_conns", config_yaml_u32, struct cfg_provider, max_idle_conns, 0, 100000, 0),
    FIELD("idle_conn_timeout", config_yaml_duration, struct cfg_provider, idle_conn_timeout_ms, 1,
          HOUR, 0),
    FIELD("connect_timeout", config_yaml_duration, struct cfg_provider, connect_timeout_ms, 0,
          10 * MIN, 0),
    FIELD("probe", parse_probe, struct cfg_provider, probe, 0, 0, 0),
    SECTION("continuation", parse_continuation, 0),
    SECTION("wire", config_aws_parse_wire, 0),
    SECTION("aws", config_aws_section, 0),
    SECTION("engine", config_engine_parse_engine, 0),
    SECTION("metrics", config_engine_metrics_section, 0),
    SECTION("discovery", config_discovery_section, 0),
    FIELD("api_version", config_yaml_string, struct cfg_provider, api_version, 0, 0,
          CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    SECTION("models_path", config_preset_models_path, 0),
    SECTION("models", config_preset_models, 0),
    FIELD("models_refresh", config_yaml_duration, struct cfg_provider, models_refresh_ms, SEC, 24 * HOUR, 0),
    FIELD("rename_reasoning", config_yaml_bool, struct cfg_provider, rename_reasoning, 0, 0, 0),
    FIELD("strip_reasoning_history", config_yaml_bool, struct cfg_provider, strip_reasoning_history, 0, 0, 0),
    FIELD("max_tokens_limit", config_yaml_u32, struct cfg_provider, max_tokens_limit, 0, 100000000, 0),
};

static void parse_providers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                            const struct config_yaml_field *f)
{
    struct config *c = ld->cfg;
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, map, MAX_PROVIDERS, false, "provider", &dup);
    if (n > 0 && !(c->providers = alloc_entries(ld, map, (size_t)n, sizeof *c->providers))) n = -1;
    if (n < 0) ld->providers_broken = true;
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = config_yaml_named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i]) continue;
        struct cfg_provider *p = &c->providers[c->nproviders++];
        p->name = config_yaml_strdup(ld, name);
        p->line = config_yaml_line(k);
        config_preset_defaults(ld, p);
        size_t old = config_yaml_path_key(ld, name);
        config_yaml_walk(ld, v, provider_fields, COUNT(provider_fields), p);
        config_preset_finish(ld, v, p);
        if (p->ca_file && access(p->ca_file, R_OK) != 0)
            ERR(ld, v, "ca_file \"%s\" cannot be read: %s", p->ca_file, strerror(errno));
        config_aws_finish(ld, v, p);
        config_engine_finish_provider(ld, v, p);
        config_discovery_finish(ld, v, p);
        config_yaml_path_pop(ld, old);
    }
    free(dup);
}

static const char *const *provider_names(const struct config *c, const char **names)
{
    for (size_t i = 0; i < c->nproviders; i++)
        names[i] = c->providers[i].name ? c->providers[i].name : "";
    return names;
}

static void parse_provider_ref(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f)
{
    struct cfg_deployment *d = obj;
    const struct config *c = ld->cfg;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    for (size_t i = 0; i < c->nproviders && !d->provider; i++)
        if (c->providers[i].name && strcmp(c->providers[i].name, name) == 0)
            d->provider = &c->providers[i];
    if (!d->provider && !ld->providers_broken) {
        const char *names[MAX_PROVIDERS];
        const char *near = config_value_nearest(name, provider_names(c, names), c->nproviders);
        if (near)
            ERR(ld, v, "unknown provider \"%s\"; did you mean \"%s\"?", name, near);
        else
            ERR(ld, v, "unknown provider \"%s\" (not defined under providers:)", name);
    }
    free(name);
}

static const struct config_yaml_field deployment_fields[] = {
    SECTION("provider", parse_provider_ref, CONFIG_YAML_REQUIRED),
    FIELD("model", config_yaml_string, struct cfg_deployment, model, 0, 0,
          CONFIG_YAML_REQUIRED | CONFIG_YAML_NONEMPTY),
    FIELD("tier", config_yaml_int, struct cfg_deployment, tier, 0, 1000, 0),
    FIELD("weight", config_yaml_u32, struct cfg_deployment, weight, 1, 1000000, 0),
    FIELD("max_concurrency", config_yaml_u32, struct cfg_deployment, max_concurrency, 0, 1000000,
          0),
    FIELD("rpm", config_yaml_u32, struct cfg_deployment, rpm, 0, 100000000, 0),
    FIELD("max_tokens_limit", config_yaml_u32, struct cfg_deployment, max_tokens_limit, 0, 100000000, 0),
};

static void parse_deployments(struct config_yaml_loader *ld, yaml_node_t *list, void *obj,
                              const struct config_yaml_field *f)
{
    struct cfg_model *m = obj;
    if (list->type != YAML_SEQUENCE_NODE) {
        ERR(ld, list, "expected a list of deployments, got %s", config_yaml_kind(list));
        return;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0) {
        ERR(ld, list, "no deployments (a model needs at least one)");
        return;
    }
    if (n > MAX_DEPLOYMENTS) {
        ERR(ld, list, "too many deployments (%zu, at most %d)", n, MAX_DEPLOYMENTS);
        return;
    }
    if (!(m->deployments = alloc_entries(ld, list, n, sizeof *m->deployments))) return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config_yaml_node(ld, list->data.sequence.items.start[i]);
        struct cfg_deployment *d = &m->deployments[m->ndeployments++];
        d->weight = 1;
        d->line = config_yaml_line(item);
        size_t old = config_yaml_path_index(ld, i);
        if (config_yaml_is_null(item))
            ERR(ld, item, "empty deployment (expected provider: and model:)");
        else
            config_yaml_walk(ld, item, deployment_fields, COUNT(deployment_fields), d);
        config_preset_deployment(d);
        config_yaml_path_pop(ld, old);
    }
}

static const struct config_yaml_field model_fields[] = {
    SECTION("deployments", parse_deployments, CONFIG_YAML_REQUIRED),
    FIELD("timeouts", parse_timeouts, struct cfg_model, timeouts, 0, 0, 0),
    FIELD("max_attempts", config_yaml_u32, struct cfg_model, max_attempts, 1, 10, 0),
    FIELD("resilience", parse_resilience, struct cfg_model, resilience, 0, 0, 0),
    SECTION("queue", config_parse_queue, 0),
    SECTION("degrade", config_parse_degrade, 0),
    SECTION("limits", config_parse_model_limits, 0),
    SECTION("routing", config_engine_routing_section, 0),
};

static void parse_models(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                         const struct config_yaml_field *f)
{
    struct config *c = ld->cfg;
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, map, MAX_MODELS, false, "model name", &dup);
    bool imported = config_preset_any_auto(c); /* models: auto may be the only source */
    if (n == 0 && !imported) ERR(ld, map, "no models defined (at least one is needed)");
    /* one more entry: the model of the models: auto providers (config_preset_auto_model) */
    if (n >= 0 && !(c->models = alloc_entries(ld, map, (size_t)n + 1, sizeof *c->models))) n = -1;
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = config_yaml_named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i]) continue;
        struct cfg_model *m = &c->models[c->nmodels++];
        if (!(m->name = config_yaml_strdup(ld, name))) {
            c->nmodels--;
            continue;
        }
        m->line = config_yaml_line(k);
        m->timeouts = c->default_timeouts;
        copy_resilience(ld, &m->resilience, &c->default_resilience);
        config_admission_defaults(m);
        size_t old = config_yaml_path_key(ld, name);
        if (v->type == YAML_SEQUENCE_NODE)
            parse_deployments(ld, v, m, NULL);
        else if (v->type == YAML_MAPPING_NODE)
            config_yaml_walk(ld, v, model_fields, COUNT(model_fields), m);
        else if (config_yaml_is_null(v))
            ERR(ld, v, "no deployments (a model needs at least one)");
        else
            ERR(ld, v, "expected a list of deployments or a mapping with deployments:, got %s",
                config_yaml_kind(v));
        if (m->max_attempts == 0) { /* one try per deployment, and one more in a pool, at most 10 */
            size_t n_tries = m->ndeployments <= 1 ? 1 : m->ndeployments + 1;
            m->max_attempts = (uint32_t)(n_tries > 10 ? 10 : n_tries);
        }
        config_yaml_path_pop(ld, old);
    }
    free(dup);
    if (n >= 0 && imported) config_preset_auto_model(ld, c, &c->models[c->nmodels++]);
}

/* ---- keys: static API keys ---- */

#define MAX_KEYS 4096     /* static keys in the file; issued keys live in key_store */
#define MAX_KEY_MODELS 64 /* models one key may be limited to */
#define KEY_MAX_CHARS 256 /* a longer bearer token is not one anybody types */
#define KEY_MIN_CHARS 20

bool config_key_name_valid(const char *name)
{
    size_t n = 0;
    bool digits_only = true;
    for (const char *p = name; *p; p++, n++) {
        char ch = *p;
        bool digit = ch >= '0' && ch <= '9';
        bool ok = digit || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  strchr("._-:@", ch) != NULL;
        if (!ok) return false;
        digits_only &= digit;
    }
    return n >= 1 && n <= CONFIG_KEY_NAME_MAX && !digits_only;
}

static void parse_key_name(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_key *k = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    if (!config_key_name_valid(name)) {
        ERR(ld, v,
            "bad key name \"%s\": 1 to %d characters from A-Z a-z 0-9 . _ - : @, not all digits",
            name, CONFIG_KEY_NAME_MAX);
        free(name);
        return;
    }
    free(k->name);
    k->name = name;
}

/* Messages here never quote the value: it is a secret. */
static void parse_key_secret(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    struct cfg_key *k = obj;
    config_yaml_string(ld, v, obj, f);
    if (!k->key) return;
    size_t n = strlen(k->key);
    const char *bad = NULL;
    if (n > KEY_MAX_CHARS)
        bad = "longer than 256 characters";
    else if (strpbrk(k->key, " \t"))
        bad = "spaces are not allowed in a key";
    if (bad) {
        ERR(ld, v, "%s", bad);
        free(k->key);
        k->key = NULL;
    } else if (n < KEY_MIN_CHARS) {
        config_yaml_report(ld, config_yaml_line(v), true,
                           "shorter than %d characters, easy to guess; `unbusy keys create` "
                           "issues strong ones",
                           KEY_MIN_CHARS);
    }
}

static bool model_known(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0) return true;
    return false;
}

static void add_key_model(struct config_yaml_loader *ld, yaml_node_t *at, struct cfg_key *k,
                          const char *name, size_t len)
{
    const struct config *c = ld->cfg;
    char *m = strndup(name, len);
    if (!m) {
        ERR(ld, at, "out of memory");
        return;
    }
    bool known = c->model_slots ? config_find_model(c, m) != NULL : model_known(c, m);
    if (!*m) {
        ERR(ld, at, "empty model name in the list");
    } else if (k->nmodels == MAX_KEY_MODELS) {
        ERR(ld, at, "too many models (at most %d)", MAX_KEY_MODELS);
    } else if (!known) {
        const char **names = calloc(c->nmodels ? c->nmodels : 1, sizeof *names);
        for (size_t i = 0; names && i < c->nmodels; i++)
            names[i] = c->models[i].name;
        const char *near = names ? config_value_nearest(m, names, c->nmodels) : NULL;
        if (near)
            ERR(ld, at, "unknown model \"%s\"; did you mean \"%s\"?", m, near);
        else
            ERR(ld, at, "unknown model \"%s\" (not defined under models:)", m);
        free(names);
    } else {
        for (size_t i = 0; i < k->nmodels; i++)
            if (strcmp(k->models[i], m) == 0) {
                free(m); /* listed twice: harmless */
                return;
            }
        k->models[k->nmodels++] = m;
        return;
    }
    free(m);
}

/* A list of model names, or one scalar with names separated by commas. */
static void parse_key_models(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    struct cfg_key *k = obj;
    if (!(k->models = alloc_entries(ld, v, MAX_KEY_MODELS, sizeof *k->models))) return;
    if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = config_yaml_node(ld, *it);
            size_t old = config_yaml_path_index(ld, (size_t)(it - v->data.sequence.items.start));
            char *name = config_yaml_text(ld, item);
            if (name) add_key_model(ld, item, k, name, strlen(name));
            free(name);
            config_yaml_path_pop(ld, old);
        }
        return;
    }
    char *list = config_yaml_text(ld, v);
    if (!list) return;
    for (char *p = list;;) {
        size_t len = strcspn(p, ",");
        char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        add_key_model(ld, v, k, s, (size_t)(e - s));
        if (!p[len]) break;
        p += len + 1;
    }
    free(list);
}

static const struct config_yaml_field key_fields[] = {
    FIELD("name", parse_key_name, struct cfg_key, name, 0, 0, CONFIG_YAML_REQUIRED),
    FIELD("key", parse_key_secret, struct cfg_key, key, 0, 0,
          CONFIG_YAML_REQUIRED | CONFIG_YAML_NONEMPTY | CONFIG_YAML_HEADER_SAFE),
    SECTION("models", parse_key_models, 0),
    FIELD("priority", config_yaml_int, struct cfg_key, priority, 0, 3, 0),
    FIELD("rpm", config_yaml_u32, struct cfg_key, rpm, 0, 100000000, 0),
    FIELD("tpm", config_yaml_u32, struct cfg_key, tpm, 0, 4000000000ll, 0),
    FIELD("max_concurrency", config_yaml_u32, struct cfg_key, max_concurrency, 0, 1000000, 0),
};

static int index_models(struct config *c);

static void parse_keys(struct config_yaml_loader *ld, yaml_node_t *list, void *obj,
                       const struct config_yaml_field *f)
{
    struct config *c = ld->cfg;
    config_auth_note_keys(ld);
    if (list->type != YAML_SEQUENCE_NODE) {
        ERR(ld, list, "expected a list of keys ({name, key, ...}), got %s", config_yaml_kind(list));
        return;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n > MAX_KEYS) {
        ERR(ld, list, "too many keys (%zu, at most %d; issue more with key_store)", n, MAX_KEYS);
        return;
    }
    /* The models are parsed (an earlier row): index them for the model checks. */
    if (!c->model_slots && index_models(c)) ERR(ld, list, "out of memory");
    if (n == 0 || !(c->keys = alloc_entries(ld, list, n, sizeof *c->keys))) return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config_yaml_node(ld, list->data.sequence.items.start[i]);
        struct cfg_key *k = &c->keys[c->nkeys++];
        k->priority = 1;
        k->line = config_yaml_line(item);
        size_t old = config_yaml_path_index(ld, i);
        if (config_yaml_is_null(item)) {
            ERR(ld, item, "empty key (expected name: and key:)");
        } else {
            config_yaml_walk(ld, item, key_fields, COUNT(key_fields), k);
            /* Quadratic, but over at most MAX_KEYS entries once per load. */
            for (size_t j = 0; j + 1 < c->nkeys; j++) {
                const struct cfg_key *o = &c->keys[j];
                if (k->name && o->name && strcmp(k->name, o->name) == 0)
                    ERR(ld, item, "duplicate key name \"%s\" (first at line %d)", k->name, o->line);
                if (k->key && o->key && strcmp(k->key, o->key) == 0)
                    ERR(ld, item, "the same key as \"%s\" (line %d)", o->name ? o->name : "?",
                        o->line);
            }
        }
        config_yaml_path_pop(ld, old);
    }
}

/* Written at all (even as an unset ${VAR}), a key store means clients need a key. */
static void parse_key_store(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                            const struct config_yaml_field *f)
{
    config_auth_note_keys(ld);
    config_yaml_string(ld, v, obj, f);
}

/* ---- ledger ---- */

static const struct config_yaml_field ledger_fields[] = {
    FIELD("path", config_yaml_string, struct cfg_ledger, path, 0, 0, CONFIG_YAML_EMPTY_IS_NULL),
    FIELD("queue", config_yaml_u32, struct cfg_ledger, queue, 1, 1 << 24, 0),
    FIELD("batch", config_yaml_u32, struct cfg_ledger, batch, 1, 65536, 0),
    FIELD("flush_interval", config_yaml_duration, struct cfg_ledger, flush_interval_ms, 1, MIN, 0),
};

/* `ledger: FILE` is short for `ledger: {path: FILE}`. */
static void parse_ledger(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    struct cfg_ledger *l = config_yaml_field_ptr(obj, f);
    unsigned before = ld->errors;
    if (v->type == YAML_SCALAR_NODE)
        config_yaml_string(ld, v, l, &ledger_fields[0]);
    else
        config_yaml_walk(ld, v, ledger_fields, COUNT(ledger_fields), l);
    if (ld->errors == before && l->batch > l->queue)
        ERR(ld, v, "batch (%u) is larger than queue (%u)", l->batch, l->queue);
}

/*
 * The sections, in the order they are applied: models use providers, the
 * default timeouts and the default resilience. A new section is one row here
 * and its parse function.
 */
static const struct config_yaml_field top_fields[] = {
    FIELD("server", parse_server, struct config, server, 0, 0, 0),
    FIELD("timeouts", parse_timeouts, struct config, default_timeouts, 0, 0, 0),
    FIELD("resilience", parse_resilience, struct config, default_resilience, 0, 0, 0),
    SECTION("admin", config_admin_section, 0),
    SECTION("auth", config_auth_section, 0),
    SECTION("providers", parse_providers, 0),
    SECTION("models", parse_models, CONFIG_YAML_REQUIRED),
    SECTION("keys", parse_keys, 0), /* after models: a key names the models it may use */
    FIELD("key_store", parse_key_store, struct config, key_store, 0, 0,
          CONFIG_YAML_EMPTY_IS_NULL),
    /* after models, keys and key_store: a budget names a key and may name a model */
    SECTION("budgets", config_budget_section, 0),
    FIELD("ledger", parse_ledger, struct config, ledger, 0, 0, 0),
    SECTION("prices", prices_config_section, 0), /* after providers: it names them */
    SECTION("rules", config_parse_rules, 0),
    SECTION("redis", config_redis_section, 0),
    SECTION("reload", config_reload_section, 0),
};

#define FITS(table) (COUNT(table) <= CONFIG_YAML_MAX_FIELDS)
_Static_assert(FITS(timeout_fields) && FITS(server_fields) && FITS(provider_fields) &&
                   FITS(deployment_fields) && FITS(model_fields) && FITS(top_fields) &&
                   FITS(breaker_fields) && FITS(retry_budget_fields) && FITS(hedge_fields) &&
                   FITS(resilience_fields) && FITS(probe_fields) &&
                   FITS(key_fields) && FITS(ledger_fields),
               "raise CONFIG_YAML_MAX_FIELDS");
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "workers is parsed as a uint32_t");

/* ---- the snapshot ---- */

static void set_defaults(struct config_yaml_loader *ld, struct config *c)
{
    struct cfg_server *s = &c->server;
    s->listen_host = config_yaml_strdup(ld, "127.0.0.1");
    s->listen_port = 8080;
    s->workers = 0;
    s->max_header_bytes = 64 << 10;
    s->max_body_bytes = 8 << 20;
    s->max_response_bytes = 32 << 20;
    s->header_timeout_ms = 10 * SEC;
    s->idle_timeout_ms = 60 * SEC;
    s->drain_timeout_ms = 30 * SEC;
    s->drain_delay_ms = 5 * SEC;
    s->max_connections = 10000;
    s->access_log = config_yaml_strdup(ld, "-");
    c->ledger = (struct cfg_ledger){.queue = 65536, .batch = 256, .flush_interval_ms = 200};
    c->budget_alert_at = CONFIG_BUDGET_DEFAULT_ALERT_AT;
    c->default_timeouts = (struct cfg_timeouts){
        .connect_ms = 5 * SEC,
        .first_token_ms = 30 * SEC,
        .stall_ms = 60 * SEC,
        .total_ms = 600 * SEC,
    };
    c->default_resilience = (struct cfg_resilience){
        .strategy = config_yaml_strdup(ld, "p2c"),
        .breaker =
            {
                .window_ms = 30 * SEC,
                .min_requests = 10,
                .failure_ratio = 0.5,
                .consecutive_failures = 5,
                .open_ms = 5 * SEC,
                .open_max_ms = 120 * SEC,
                .half_open_trials = 1,
            },
        .retry_budget = {.ratio = 0.2, .min_per_sec = 3, .window_ms = 10 * SEC},
        .hedge = {.enabled = true, .after_ms = 0, .max_ratio = 0.2},
        .continue_on_cut = true,
        .slow_start_ms = 30 * SEC,
    };
}

void config_provider_free_fields(struct cfg_provider *p)
{
    free(p->name);
    free(p->base_url);
    free(p->host);
    free(p->base_path);
    free(p->sim_profile);
    free(p->api_key);
    free(p->auth_header);
    free(p->auth_prefix);
    for (size_t i = 0; i < p->nheaders; i++) {
        free(p->headers[i].name);
        free(p->headers[i].value);
    }
    free(p->headers);
    free(p->ca_file);
    free(p->probe.path);
    free(p->probe.deep_model);
    config_aws_free(p->aws);
    config_engine_free_provider(p);
    config_discovery_free(p->discovery);
    free(p->api_version);
    free(p->models_path);
}

static void config_free(struct config *c)
{
    free(c->source);
    free(c->server.listen_host);
    free(c->server.access_log);
    free(c->server.tls_cert);
    free(c->server.tls_key);
    free(c->default_resilience.strategy);
    free(c->admin_token);
    for (size_t i = 0; i < c->nproviders; i++)
        config_provider_free_fields(&c->providers[i]);
    free(c->providers);
    for (size_t i = 0; i < c->nmodels; i++) {
        for (size_t j = 0; j < c->models[i].ndeployments; j++)
            free(c->models[i].deployments[j].model);
        free(c->models[i].deployments);
        free(c->models[i].name);
        free(c->models[i].resilience.strategy);
        free(c->models[i].routing.header);
    }
    config_admission_free(c); /* before the models go */
    free(c->models);
    for (size_t i = 0; i < c->nkeys; i++) {
        struct cfg_key *k = &c->keys[i];
        free(k->name);
        if (k->key) /* a secret: do not leave it in freed memory */
            OPENSSL_cleanse(k->key, strlen(k->key));
        free(k->key);
        for (size_t j = 0; j < k->nmodels; j++)
            free(k->models[j]);
        free(k->models);
    }
    free(c->keys);
    free(c->key_store);
    free(c->ledger.path);
    prices_config_free(c->prices, c->nprices);
    config_budget_free(c);
    config_redis_free(c);
    free(c->model_slots);
    redact_set_free(&c->secrets);
    free(c);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int index_models(struct config *c)
{
    size_t cap = 8;
    while (cap < 2 * c->nmodels)
        cap *= 2;
    c->model_slots = calloc(cap, sizeof *c->model_slots);
    if (!c->model_slots) return -1;
    c->nmodel_slots = cap;
    for (size_t i = 0; i < c->nmodels; i++) {
        size_t s = name_hash(c->models[i].name) & (cap - 1);
        while (c->model_slots[s])
            s = (s + 1) & (cap - 1);
        c->model_slots[s] = (uint32_t)i + 1;
    }
    return 0;
}

const struct cfg_model *config_find_model(const struct config *c, const char *name)
{
    if (!c->model_slots) {
        for (size_t i = 0; i < c->nmodels; i++)
            if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
        return NULL;
    }
    size_t mask = c->nmodel_slots - 1;
    for (size_t s = name_hash(name) & mask; c->model_slots[s]; s = (s + 1) & mask) {
        const struct cfg_model *m = &c->models[c->model_slots[s] - 1];
        if (strcmp(m->name, name) == 0) return m;
    }
    return NULL;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_unref(struct config *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) config_free(c);
}

void config_errors_init(struct config_errors *e)
{
    buf_init(&e->text, 0);
    e->count = 0;
    e->warnings = 0;
}

void config_errors_free(struct config_errors *e)
{
    buf_free(&e->text);
    e->count = 0;
    e->warnings = 0;
}

/* A problem about the text as a whole: "file: message", no line. */
static void report_whole(struct config_errors *errs, const char *source, const char *problem)
{
    if (errs) {
        buf_printf(&errs->text, "%s: %s\n", source, problem);
        errs->count++;
    }
}

int config_load_text(const char *source, const char *text, size_t len, struct config **out,
                     struct config_errors *errs)
{
    if (len > CONFIG_MAX_TEXT_BYTES) {
        report_whole(errs, source, "larger than 4 MiB, refused");
        return -1;
    }
    struct config_yaml_loader *ld = calloc(1, sizeof *ld);
    struct config *c = calloc(1, sizeof *c);
    if (!ld || !c) {
        free(ld);
        free(c);
        report_whole(errs, source, "out of memory");
        return -1;
    }
    atomic_init(&c->refs, 1);
    ld->source = source;
    ld->cfg = c;
    c->source = config_yaml_strdup(ld, source);
    set_defaults(ld, c);
    config_yaml_load(ld, text, len, top_fields, COUNT(top_fields), c);
    config_admission_check(ld, c);
    config_auth_check(ld, c);
    config_engine_finish(ld, c);
    if (c->server.workers == 0)
        c->server.workers = config_usable_cpus();
    if (!c->model_slots && index_models(c)) config_yaml_report(ld, 1, false, "out of memory");
    if (!ld->errors && config_secrets_build(c)) config_yaml_report(ld, 1, false, "out of memory");
    int rc = ld->errors ? -1 : 0;
    config_yaml_flush(ld, errs);
    free(ld);
    if (rc)
        config_unref(c);
    else
        *out = c;
    return rc;
}

int config_load_file(const char *path, struct config **out, struct config_errors *errs)
{
    FILE *f = fopen(path, "rb");
    const char *problem = NULL;
    char *text = NULL;
    size_t len = 0;
    if (!f) {
        problem = strerror(errno);
    } else {
        /* Read at most one byte past the limit: a pipe or /proc file has no size. */
        text = malloc(CONFIG_MAX_TEXT_BYTES + 1);
        if (!text)
            problem = "out of memory";
        else
            len = fread(text, 1, CONFIG_MAX_TEXT_BYTES + 1, f);
        if (text && ferror(f)) problem = strerror(errno ? errno : EIO);
        fclose(f);
    }
    if (problem) {
        char message[256];
        snprintf(message, sizeof message, "cannot read: %s", problem);
        report_whole(errs, path, message);
        free(text);
        return -1;
    }
    /* A text one byte past the limit is refused there. */
    int rc = config_load_text(path, text, len, out, errs);
    free(text);
    return rc;
}
