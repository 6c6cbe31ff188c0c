#include "config/config_admission.h"

#include <stdlib.h>
#include <string.h>

#define ERR CONFIG_YAML_ERR
#define FIELD CONFIG_FIELD
#define SECTION CONFIG_SECTION
#define COUNT CONFIG_COUNT
#define SEC 1000ll
#define HOUR (3600 * SEC)
#define MAX_RULES 256

void config_admission_defaults(struct cfg_model *m)
{
    /* 1000 waiters and 30 s: long enough to ride out a burst, short enough that a client
       is told to come back before its own timeout (the SDKs' default is 10 minutes). */
    m->queue = (struct cfg_queue){.max = 1000, .timeout_ms = 30 * SEC, .keepalive_ms = 5 * SEC,
                                  .reserve_ratio = 0.2};
    m->degrade = (struct cfg_degrade){.enabled = false, .threshold = 0.85, .hysteresis = 0.1,
                                      .share = 1.0, .classes = 0xE};
}

static const struct config_yaml_field queue_fields[] = {
    FIELD("max", config_yaml_u32, struct cfg_queue, max, 0, 1000000, 0),
    FIELD("timeout", config_yaml_duration, struct cfg_queue, timeout_ms, 0, HOUR, 0),
    FIELD("keepalive", config_yaml_duration, struct cfg_queue, keepalive_ms, 0, HOUR, 0),
    FIELD("reserve", config_yaml_number, struct cfg_queue, reserve_ratio, 0, CONFIG_YAML_MICRO, 0),
};

void config_parse_queue(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    struct cfg_model *m = obj;
    config_yaml_walk(ld, v, queue_fields, COUNT(queue_fields), &m->queue);
}

static void parse_degrade_to(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    struct cfg_degrade *d = obj;
    char *to = config_yaml_text(ld, v);
    if (!to)
        return;
    free(d->to);
    d->to = to;
}

static void parse_classes(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    struct cfg_degrade *d = obj;
    if (v->type != YAML_SEQUENCE_NODE) {
        ERR(ld, v, "expected a list of priority classes (0-3), got %s", config_yaml_kind(v));
        return;
    }
    unsigned mask = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *n = config_yaml_node(ld, *it);
        char *t = config_yaml_text(ld, n);
        if (!t)
            continue;
        if (strlen(t) == 1 && t[0] >= '0' && t[0] <= '3')
            mask |= 1u << (t[0] - '0');
        else
            ERR(ld, n, "a priority class is 0, 1, 2 or 3, got \"%s\"", t);
        free(t);
    }
    d->classes = mask;
}

static const struct config_yaml_field degrade_fields[] = {
    FIELD("enabled", config_yaml_bool, struct cfg_degrade, enabled, 0, 0, 0),
    FIELD("threshold", config_yaml_number, struct cfg_degrade, threshold, 0, CONFIG_YAML_MICRO,
          CONFIG_YAML_ABOVE_MIN),
    FIELD("hysteresis", config_yaml_number, struct cfg_degrade, hysteresis, 0, CONFIG_YAML_MICRO, 0),
    SECTION("to", parse_degrade_to, 0),
    FIELD("share", config_yaml_number, struct cfg_degrade, share, 0, CONFIG_YAML_MICRO,
          CONFIG_YAML_ABOVE_MIN),
    SECTION("classes", parse_classes, 0),
};

void config_parse_degrade(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    struct cfg_model *m = obj;
    unsigned before = ld->errors;
    config_yaml_walk(ld, v, degrade_fields, COUNT(degrade_fields), &m->degrade);
    if (ld->errors == before && m->degrade.enabled && !m->degrade.to)
        ERR(ld, v, "degrade is enabled but names no fallback model (to:)");
}

static const struct config_yaml_field limit_fields[] = {
    FIELD("rpm", config_yaml_u32, struct cfg_model, rpm, 0, 100000000, 0),
    FIELD("tpm", config_yaml_u32, struct cfg_model, tpm, 0, 4000000000u, 0),
};

void config_parse_model_limits(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, limit_fields, COUNT(limit_fields), obj);
}

/* ---- rules ---- */

static void parse_tools(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    struct cfg_rule *r = obj;
    bool b = false;
    char *t = config_yaml_text(ld, v);
    if (!t)
        return;
    if (strcmp(t, "true") == 0 || strcmp(t, "yes") == 0)
        b = true;
    else if (strcmp(t, "false") != 0 && strcmp(t, "no") != 0)
        ERR(ld, v, "expected true or false, got \"%s\"", t);
    free(t);
    r->match_tools = b ? 1 : 0;
}

static const struct config_yaml_field match_fields[] = {
    FIELD("model", config_yaml_string, struct cfg_rule, match_model, 0, 0, CONFIG_YAML_NONEMPTY),
    FIELD("key", config_yaml_string, struct cfg_rule, match_key, 0, 0, CONFIG_YAML_NONEMPTY),
    FIELD("header", config_yaml_header_name, struct cfg_rule, match_header, 0, 0, 0),
    FIELD("value", config_yaml_string, struct cfg_rule, match_header_value, 0, 0, 0),
    FIELD("min_prompt_chars", config_yaml_size, struct cfg_rule, min_prompt_chars, 0, 1ll << 40, 0),
    FIELD("max_prompt_chars", config_yaml_size, struct cfg_rule, max_prompt_chars, 0, 1ll << 40, 0),
    SECTION("tools", parse_tools, 0),
};

static const struct config_yaml_field route_fields[] = {
    FIELD("model", config_yaml_string, struct cfg_rule, route_model, 0, 0, CONFIG_YAML_NONEMPTY),
    FIELD("tier", config_yaml_int, struct cfg_rule, route_tier, 0, 1000, 0),
    FIELD("bypass_allowlist", config_yaml_bool, struct cfg_rule, bypass_allowlist, 0, 0, 0),
};

static void parse_match(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, match_fields, COUNT(match_fields), obj);
}

static void parse_route(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, route_fields, COUNT(route_fields), obj);
}

static const struct config_yaml_field rule_fields[] = {
    SECTION("match", parse_match, 0),
    SECTION("route", parse_route, CONFIG_YAML_REQUIRED),
};

void config_parse_rules(struct config_yaml_loader *ld, yaml_node_t *list, void *obj,
                        const struct config_yaml_field *f)
{
    struct config *c = ld->cfg;
    if (list->type != YAML_SEQUENCE_NODE) {
        ERR(ld, list, "expected a list of rules, got %s", config_yaml_kind(list));
        return;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n > MAX_RULES) {
        ERR(ld, list, "too many rules (%zu, at most %d)", n, MAX_RULES);
        return;
    }
    if (n == 0)
        return;
    c->rules = calloc(n, sizeof *c->rules);
    if (!c->rules) {
        ERR(ld, list, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config_yaml_node(ld, list->data.sequence.items.start[i]);
        struct cfg_rule *r = &c->rules[c->nrules++];
        r->match_tools = -1;
        r->route_tier = -1;
        r->line = config_yaml_line(item);
        size_t old = config_yaml_path_index(ld, i);
        config_yaml_walk(ld, item, rule_fields, COUNT(rule_fields), r);
        if (!r->route_model && r->route_tier < 0)
            ERR(ld, item, "the route names neither a model nor a tier");
        else if (!r->route_model && r->bypass_allowlist)
            ERR(ld, item, "route.bypass_allowlist: the route names no model to hand out");
        config_yaml_path_pop(ld, old);
    }
}

static const struct cfg_model *model_named(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nmodels; i++)
        if (c->models[i].name && strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}

void config_admission_check(struct config_yaml_loader *ld, struct config *c)
{
    for (size_t i = 0; i < c->nmodels; i++) {
        const struct cfg_model *m = &c->models[i];
        if (!m->degrade.to)
            continue;
        const struct cfg_model *to = model_named(c, m->degrade.to);
        if (!to)
            config_yaml_report(ld, m->line, false, "models.%s.degrade.to: no model named \"%s\"", m->name,
                               m->degrade.to);
        else if (to == m)
            config_yaml_report(ld, m->line, false, "models.%s.degrade.to: a model cannot degrade to itself",
                               m->name);
    }
    for (size_t i = 0; i < c->nrules; i++) {
        const struct cfg_rule *r = &c->rules[i];
        if (r->route_model && !model_named(c, r->route_model))
            config_yaml_report(ld, r->line, false, "rules[%zu].route.model: no model named \"%s\"", i,
                               r->route_model);
        if (r->match_model && !model_named(c, r->match_model))
            config_yaml_report(ld, r->line, false, "rules[%zu].match.model: no model named \"%s\"", i,
                               r->match_model);
    }
}

void config_admission_free(struct config *c)
{
    for (size_t i = 0; i < c->nmodels; i++)
        free(c->models[i].degrade.to);
    for (size_t i = 0; i < c->nrules; i++) {
        struct cfg_rule *r = &c->rules[i];
        free(r->match_model);
        free(r->match_key);
        free(r->match_header);
        free(r->match_header_value);
        free(r->route_model);
    }
    free(c->rules);
}
