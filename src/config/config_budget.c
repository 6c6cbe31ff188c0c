#include "config/config_budget.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_secrets.h"
#include "config/config_value.h"

#define ERR CONFIG_YAML_ERR
#define FIELD CONFIG_FIELD
#define SECTION CONFIG_SECTION
#define COUNT CONFIG_COUNT
#define MICRO CONFIG_YAML_MICRO
#define MAX_AMOUNT_MICRO ((int64_t)(CONFIG_BUDGET_MAX_AMOUNT * MICRO))

/* The webhook's connection settings: alerts are rare, so few idle connections. */
#define WEBHOOK_IDLE_CONNS 2
#define WEBHOOK_IDLE_MS 30000
#define WEBHOOK_CONNECT_MS 5000

/* ---- the webhook target ---- */

static void free_webhook(struct cfg_provider *w)
{
    if (!w) return;
    config_provider_free_fields(w);
    free(w);
}

/* Messages never quote the URL: a webhook's path often is its secret. */
static void parse_webhook(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    struct config *c = obj;
    struct cfg_provider *w = c->budget_webhook;
    char *url = config_yaml_text(ld, v);
    if (!url) return;
    const char *rest = NULL, *why = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    size_t alen = rest ? strcspn(rest, "/?#") : 0;
    if (!rest)
        why = "expected http:// or https://";
    else if (config_value_has_control(url) || strpbrk(url, " \t"))
        why = "spaces and control characters are not allowed";
    else if (strchr(url, '#'))
        why = "a fragment (#...) is not allowed";
    else if (memchr(rest, '@', alen))
        why = "credentials in the URL are not supported (use webhook_headers)";
    if (why) {
        ERR(ld, v, "bad webhook URL: %s", why);
        free(url);
        return;
    }
    /* config_value_base_url checks scheme, host and port; it takes no query,
       so it sees the URL without one, and the path is kept here as written. */
    const char *path = rest + alen;
    char *bare = strndup(url, (size_t)(path - url));
    char *target = malloc(strlen(path) + 2);
    if (!bare || !target) {
        ERR(ld, v, "out of memory");
    } else if (config_value_base_url(bare, w, &why)) {
        ERR(ld, v, "bad webhook URL: %s", why);
    } else {
        snprintf(target, strlen(path) + 2, "%s%s", *path == '/' ? "" : "/", path);
        free(c->budget_webhook_path);
        c->budget_webhook_path = target;
        target = NULL;
        free(w->base_url);
        w->base_url = url;
        url = NULL;
    }
    free(bare);
    free(target);
    free(url);
}

/* Headers unbusy writes itself on the webhook's POST. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "upgrade",
    "te",   "trailer",        "content-type",
};

/* Every value is a secret: a webhook's headers are its credentials. */
static void parse_webhook_headers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                                  const struct config_yaml_field *f)
{
    struct config *c = obj;
    config_header_map(ld, map, c->budget_webhook, CONFIG_BUDGET_MAX_HEADERS, reserved_headers,
                      COUNT(reserved_headers), true);
}

/* ---- one key's budget ---- */

static void parse_currency(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_budget *b = obj;
    char *s = config_yaml_text(ld, v);
    if (!s) return;
    bool ok = strlen(s) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = s[i] >= 'A' && s[i] <= 'Z';
    if (!ok) {
        ERR(ld, v,
            "bad currency \"%s\": expected a three-letter code in capitals, such as USD or CNY", s);
        free(s);
        return;
    }
    free(b->currency);
    b->currency = s;
}

static void parse_action(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    static const char *const actions[] = {"refuse", "degrade"};
    struct cfg_budget *b = obj;
    char *s = config_yaml_text(ld, v);
    if (!s) return;
    int i = config_yaml_choice(ld, v, s, "action", actions, COUNT(actions));
    if (i >= 0)
        b->degrade = i == 1;
    free(s);
}

/* The models are parsed (an earlier section), so the name is checked here, at its line. */
static void parse_degrade_to(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    struct cfg_budget *b = obj;
    const struct config *c = ld->cfg;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    if (!*name) {
        ERR(ld, v, "empty model name");
    } else if (!config_find_model(c, name)) {
        const char **names = calloc(c->nmodels ? c->nmodels : 1, sizeof *names);
        for (size_t i = 0; names && i < c->nmodels; i++)
            names[i] = c->models[i].name ? c->models[i].name : "";
        const char *near = names ? config_value_nearest(name, names, c->nmodels) : NULL;
        if (near)
            ERR(ld, v, "unknown model \"%s\"; did you mean \"%s\"?", name, near);
        else
            ERR(ld, v, "unknown model \"%s\" (not defined under models:)", name);
        free(names);
    } else {
        free(b->degrade_to);
        b->degrade_to = name;
        return;
    }
    free(name);
}

static const struct config_yaml_field budget_fields[] = {
    FIELD("daily", config_yaml_number, struct cfg_budget, daily, 0, MAX_AMOUNT_MICRO,
          CONFIG_YAML_ABOVE_MIN),
    FIELD("monthly", config_yaml_number, struct cfg_budget, monthly, 0, MAX_AMOUNT_MICRO,
          CONFIG_YAML_ABOVE_MIN),
    SECTION("currency", parse_currency, 0),
    SECTION("action", parse_action, 0),
    SECTION("degrade_to", parse_degrade_to, 0),
};

static bool key_in_file(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (c->keys[i].name && strcmp(c->keys[i].name, name) == 0) return true;
    return false;
}

static void check_budget(struct config_yaml_loader *ld, const struct config *c, yaml_node_t *v,
                         const struct cfg_budget *b, bool had_degrade_to)
{
    if (b->daily == 0 && b->monthly == 0) ERR(ld, v, "neither daily: nor monthly: is set");
    if (b->degrade && !had_degrade_to)
        ERR(ld, v, "action: degrade needs degrade_to: (the model to send requests to)");
    if (!b->degrade && had_degrade_to) ERR(ld, v, "degrade_to: is only used with action: degrade");
    if (b->daily > 0 && b->monthly > 0 && b->daily > b->monthly)
        config_yaml_report(ld, config_yaml_line(v), true,
                           "daily (%.15g) is larger than monthly (%.15g); the daily budget "
                           "never binds",
                           b->daily, b->monthly);
    /* Keys issued into a store are not known while loading the file. */
    if (!c->key_store && !key_in_file(c, b->key_name))
        config_yaml_report(ld, b->line, true,
                           "no key named \"%s\" under keys: (and no key_store); this budget "
                           "never applies",
                           b->key_name);
}

/* True when the mapping v has the key `name` (the walk reports bad values, not absence). */
static bool has_key(struct config_yaml_loader *ld, yaml_node_t *v, const char *name)
{
    if (v->type != YAML_MAPPING_NODE) return false;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_yaml_node(ld, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, name) == 0)
            return true;
    }
    return false;
}

static void parse_budget_keys(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                              const struct config_yaml_field *f)
{
    struct config *c = obj;
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, map, CONFIG_BUDGET_MAX, false, "key", &dup);
    if (n > 0 && !(c->budgets = calloc((size_t)n, sizeof *c->budgets))) {
        ERR(ld, map, "out of memory");
        n = -1;
    }
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = config_yaml_named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i]) continue;
        size_t old = config_yaml_path_key(ld, name);
        if (!config_key_name_valid(name)) {
            ERR(ld, k,
                "bad key name: 1 to %d characters from A-Z a-z 0-9 . _ - : @, not all digits",
                CONFIG_KEY_NAME_MAX);
        } else if (v->type != YAML_MAPPING_NODE) {
            ERR(ld, v,
                "expected a mapping ({daily, monthly, currency, action, degrade_to}), got %s",
                config_yaml_kind(v));
        } else {
            struct cfg_budget *b = &c->budgets[c->nbudgets];
            b->line = config_yaml_line(k);
            b->key_name = config_yaml_strdup(ld, name);
            b->currency = config_yaml_strdup(ld, "USD");
            if (b->key_name && b->currency) {
                c->nbudgets++;
                unsigned before = ld->errors;
                config_yaml_walk(ld, v, budget_fields, COUNT(budget_fields), b);
                if (ld->errors == before) check_budget(ld, c, v, b, has_key(ld, v, "degrade_to"));
            } else {
                free(b->key_name);
                free(b->currency);
                memset(b, 0, sizeof *b);
            }
        }
        config_yaml_path_pop(ld, old);
    }
    free(dup);
}

/* ---- the section ---- */

static const struct config_yaml_field section_fields[] = {
    SECTION("webhook", parse_webhook, 0),
    SECTION("webhook_headers", parse_webhook_headers, 0),
    FIELD("alert_at", config_yaml_number, struct config, budget_alert_at, 0, MICRO,
          CONFIG_YAML_ABOVE_MIN),
    SECTION("keys", parse_budget_keys, 0),
};

void config_budget_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct config *c = obj;
    if (v->type != YAML_MAPPING_NODE && !config_yaml_is_null(v)) {
        ERR(ld, v, "expected a mapping (webhook, webhook_headers, alert_at, keys), got %s",
            config_yaml_kind(v));
        return;
    }
    /* The target is filled by webhook: and webhook_headers:, in either order. */
    struct cfg_provider *w = calloc(1, sizeof *w);
    if (!w) {
        ERR(ld, v, "out of memory");
        return;
    }
    c->budget_webhook = w;
    config_yaml_walk(ld, v, section_fields, COUNT(section_fields), c);
    if (!w->base_url) {
        if (!has_key(ld, v, "webhook") && has_key(ld, v, "webhook_headers"))
            ERR(ld, v, "webhook_headers: without a webhook: URL");
        free_webhook(w);
        c->budget_webhook = NULL;
        return;
    }
    w->name = config_yaml_strdup(ld, "budgets.webhook");
    w->auth_header = config_yaml_strdup(ld, "Authorization");
    w->auth_prefix = config_yaml_strdup(ld, "Bearer ");
    w->tls_verify = true;
    w->max_idle_conns = WEBHOOK_IDLE_CONNS;
    w->idle_conn_timeout_ms = WEBHOOK_IDLE_MS;
    w->connect_timeout_ms = WEBHOOK_CONNECT_MS;
    w->line = config_yaml_line(v);
}

void config_budget_free(struct config *c)
{
    for (size_t i = 0; i < c->nbudgets; i++) {
        free(c->budgets[i].key_name);
        free(c->budgets[i].currency);
        free(c->budgets[i].degrade_to);
    }
    free(c->budgets);
    free_webhook(c->budget_webhook);
    free(c->budget_webhook_path);
}
