#include "config/prices.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_value.h"
#include "config/config_yaml.h"

/*
 * Two halves: the pure lookups and arithmetic the request path uses, and the
 * prices: section of the config file (its table of keys and checks), kept
 * here beside the code that gives the numbers their meaning.
 */

#define ERR CONFIG_YAML_ERR
#define COUNT CONFIG_COUNT
#define FIELD CONFIG_FIELD
#define SECTION CONFIG_SECTION
#define RATE_MAX ((int64_t)PRICES_MAX_RATE * CONFIG_YAML_MICRO)
#define MINUTES_PER_DAY 1440
#define UNSET (-1.0) /* a rate not given (never a valid one: rates are >= 0) */

/* ---- lookups and arithmetic ---- */

static bool is_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static bool name_matches(const char *pattern, bool glob, const char *name)
{
    return glob ? fnmatch(pattern, name, 0) == 0 : strcmp(pattern, name) == 0;
}

const struct cfg_price *prices_find(const struct config *c, const char *provider, const char *model)
{
    const struct cfg_price *best = NULL;
    int best_rank = 4;
    if (!c || !provider || !model) return NULL;
    for (size_t i = 0; i < c->nprices && best_rank > 0; i++) {
        const struct cfg_price *p = &c->prices[i];
        int rank = (p->provider_glob ? 2 : 0) + (p->model_glob ? 1 : 0);
        if (rank >= best_rank) continue;
        if (name_matches(p->provider, p->provider_glob, provider) &&
            name_matches(p->model, p->model_glob, model)) {
            best = p;
            best_rank = rank;
        }
    }
    return best;
}

/* Minutes after 00:00 UTC (unix time has no leap seconds, so days are 1440 minutes). */
static unsigned minute_of_day(int64_t ms)
{
    int64_t m = ms >= 0 ? ms / 60000 : -((-ms + 59999) / 60000);
    m %= MINUTES_PER_DAY;
    return (unsigned)(m < 0 ? m + MINUTES_PER_DAY : m);
}

static bool window_holds(const struct cfg_price_window *w, unsigned m)
{
    if (w->from_min < w->to_min) return m >= w->from_min && m < w->to_min;
    return m >= w->from_min || m < w->to_min; /* wraps past midnight */
}

const struct cfg_price_rates *prices_rates_at(const struct cfg_price *p, int64_t time_ms)
{
    unsigned m = minute_of_day(time_ms);
    for (size_t i = 0; i < p->nwindows; i++)
        if (window_holds(&p->windows[i], m)) return &p->windows[i].rates;
    return &p->rates;
}

double prices_cost_of(const struct cfg_price *p, const struct prices_usage *u, int64_t time_ms)
{
    const struct cfg_price_rates *r = prices_rates_at(p, time_ms);
    int64_t prompt = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    int64_t completion = u->completion_tokens > 0 ? u->completion_tokens : 0;
    if (cached > prompt) cached = prompt;
    /* reasoning_tokens are inside completion_tokens: not added again. */
    return ((double)(prompt - cached) * r->input + (double)cached * r->cached_input +
            (double)completion * r->output) /
           1e6;
}

int prices_cost(const struct config *c, const char *provider, const char *model,
                const struct prices_usage *u, int64_t time_ms, double *cost, const char **currency)
{
    const struct cfg_price *p = prices_find(c, provider, model);
    *cost = 0;
    *currency = NULL;
    if (!p) return -ENOENT;
    *cost = prices_cost_of(p, u, time_ms);
    *currency = p->currency;
    return 0;
}

void prices_estimate_tokens(size_t prompt_chars, size_t completion_chars, int64_t *prompt_tokens,
                            int64_t *completion_tokens)
{
    *prompt_tokens = (int64_t)(prompt_chars / 4 + (prompt_chars % 4 != 0));
    *completion_tokens = (int64_t)(completion_chars / 4 + (completion_chars % 4 != 0));
}

int prices_parse_hhmm(const char *s, int allow_24, uint16_t *minutes)
{
    unsigned h = 0, m = 0;
    size_t i = 0;
    if (!(s[i] >= '0' && s[i] <= '9')) return -EINVAL;
    h = (unsigned)(s[i++] - '0');
    if (s[i] >= '0' && s[i] <= '9') h = h * 10 + (unsigned)(s[i++] - '0');
    if (s[i++] != ':') return -EINVAL;
    for (int d = 0; d < 2; d++, i++) {
        if (!(s[i] >= '0' && s[i] <= '9')) return -EINVAL;
        m = m * 10 + (unsigned)(s[i] - '0');
    }
    if (s[i] != '\0' || m > 59) return -EINVAL;
    if (h > 23 && !(allow_24 && h == 24 && m == 0)) return -EINVAL;
    *minutes = (uint16_t)(h * 60 + m);
    return 0;
}

/* ---- the prices: section ---- */

static void parse_currency(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_price *p = obj;
    char *s = config_yaml_text(ld, v);
    if (!s) return;
    bool ok = strlen(s) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = s[i] >= 'A' && s[i] <= 'Z';
    if (ok)
        memcpy(p->currency, s, 4);
    else
        ERR(ld, v,
            "bad currency \"%s\": expected a three-letter code in capitals, such as USD or CNY", s);
    free(s);
}

/* A time of day; the row's max says whether "24:00" (the end of the day) is allowed. */
static void parse_time(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                       const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    uint16_t m;
    if (!s) return;
    bool allow_24 = f->max == MINUTES_PER_DAY;
    if (prices_parse_hhmm(s, allow_24, &m))
        ERR(ld, v, "bad time \"%s\": expected HH:MM in UTC, 00:00 to %s", s,
            allow_24 ? "24:00" : "23:59");
    else
        *(uint16_t *)config_yaml_field_ptr(obj, f) = m;
    free(s);
}

static const struct config_yaml_field window_fields[] = {
    FIELD("from", parse_time, struct cfg_price_window, from_min, 0, MINUTES_PER_DAY - 1,
          CONFIG_YAML_REQUIRED),
    FIELD("to", parse_time, struct cfg_price_window, to_min, 0, MINUTES_PER_DAY,
          CONFIG_YAML_REQUIRED),
    FIELD("input", config_yaml_number, struct cfg_price_window, rates.input, 0, RATE_MAX, 0),
    FIELD("cached_input", config_yaml_number, struct cfg_price_window, rates.cached_input, 0,
          RATE_MAX, 0),
    FIELD("output", config_yaml_number, struct cfg_price_window, rates.output, 0, RATE_MAX, 0),
};

/* Marks w's minutes in taken; false (nothing marked) when one was taken already. */
static bool claim_minutes(const struct cfg_price_window *w, bool taken[MINUTES_PER_DAY])
{
    for (unsigned m = 0; m < MINUTES_PER_DAY; m++)
        if (window_holds(w, m) && taken[m]) return false;
    for (unsigned m = 0; m < MINUTES_PER_DAY; m++)
        if (window_holds(w, m)) taken[m] = true;
    return true;
}

static void parse_windows(struct config_yaml_loader *ld, yaml_node_t *list, void *obj,
                          const struct config_yaml_field *f)
{
    struct cfg_price *p = obj;
    if (list->type != YAML_SEQUENCE_NODE) {
        ERR(ld, list,
            "expected a list of windows ({from, to, input, cached_input, output}), got %s",
            config_yaml_kind(list));
        return;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n > PRICES_MAX_WINDOWS) {
        ERR(ld, list, "too many windows (%zu, at most %d)", n, PRICES_MAX_WINDOWS);
        return;
    }
    if (n == 0) return;
    if (!(p->windows = calloc(n, sizeof *p->windows))) {
        ERR(ld, list, "out of memory");
        return;
    }
    bool taken[MINUTES_PER_DAY] = {false};
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config_yaml_node(ld, list->data.sequence.items.start[i]);
        struct cfg_price_window *w = &p->windows[p->nwindows];
        *w = (struct cfg_price_window){.rates = {UNSET, UNSET, UNSET},
                                       .line = config_yaml_line(item)};
        size_t old = config_yaml_path_index(ld, i);
        unsigned before = ld->errors;
        if (config_yaml_is_null(item))
            ERR(ld, item, "empty window (expected from: and to:)");
        else
            config_yaml_walk(ld, item, window_fields, COUNT(window_fields), w);
        if (ld->errors == before) {
            if (w->from_min == w->to_min % MINUTES_PER_DAY)
                ERR(ld, item, "from and to are the same time: the window is empty");
            else if (!claim_minutes(w, taken))
                ERR(ld, item, "overlaps an earlier window of this price");
            else
                p->nwindows++;
        }
        config_yaml_path_pop(ld, old);
    }
}

static const struct config_yaml_field price_fields[] = {
    FIELD("input", config_yaml_number, struct cfg_price, rates.input, 0, RATE_MAX,
          CONFIG_YAML_REQUIRED),
    FIELD("cached_input", config_yaml_number, struct cfg_price, rates.cached_input, 0, RATE_MAX, 0),
    FIELD("output", config_yaml_number, struct cfg_price, rates.output, 0, RATE_MAX,
          CONFIG_YAML_REQUIRED),
    SECTION("currency", parse_currency, 0),
    SECTION("windows", parse_windows, 0),
};

_Static_assert(COUNT(price_fields) <= CONFIG_YAML_MAX_FIELDS &&
                   COUNT(window_fields) <= CONFIG_YAML_MAX_FIELDS,
               "raise CONFIG_YAML_MAX_FIELDS");

/* Rates not given: cached input costs what input does; a window keeps the price's own. */
static void inherit_rates(struct cfg_price *p)
{
    if (p->rates.cached_input < 0) p->rates.cached_input = p->rates.input;
    for (size_t i = 0; i < p->nwindows; i++) {
        struct cfg_price_rates *w = &p->windows[i].rates;
        if (w->input < 0) w->input = p->rates.input;
        if (w->cached_input < 0) w->cached_input = p->rates.cached_input;
        if (w->output < 0) w->output = p->rates.output;
    }
}

static bool provider_known(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (c->providers[i].name && strcmp(c->providers[i].name, name) == 0) return true;
    return false;
}

static void warn_unknown_provider(struct config_yaml_loader *ld, yaml_node_t *k, const char *name)
{
    const struct config *c = ld->cfg;
    const char **names = calloc(c->nproviders ? c->nproviders : 1, sizeof *names);
    for (size_t i = 0; names && i < c->nproviders; i++)
        names[i] = c->providers[i].name ? c->providers[i].name : "";
    const char *near = names ? config_value_nearest(name, names, c->nproviders) : NULL;
    if (near)
        config_yaml_report(ld, config_yaml_line(k), true,
                           "no provider \"%s\" (did you mean \"%s\"?); these prices are never used",
                           name, near);
    else
        config_yaml_report(ld, config_yaml_line(k), true,
                           "no provider \"%s\" under providers:; these prices are never used",
                           name);
    free(names);
}

static void parse_provider_prices(struct config_yaml_loader *ld, struct config *c,
                                  const char *provider, yaml_node_t *map)
{
    if (config_yaml_is_null(map)) {
        ERR(ld, map, "no prices (expected a mapping of model names to {input, output, ...})");
        return;
    }
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, map, PRICES_MAX, false, "model", &dup);
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *model = config_yaml_named_key(ld, map, (size_t)i, &k, &v);
        if (!model || dup[i]) continue;
        struct cfg_price *p = &c->prices[c->nprices++];
        p->provider = config_yaml_strdup(ld, provider);
        p->model = config_yaml_strdup(ld, model);
        p->provider_glob = is_glob(provider);
        p->model_glob = is_glob(model);
        p->rates = (struct cfg_price_rates){0, UNSET, 0};
        memcpy(p->currency, "USD", 4);
        p->line = config_yaml_line(k);
        size_t old = config_yaml_path_key(ld, model);
        if (config_yaml_is_null(v))
            ERR(ld, v, "empty price (expected input: and output:, per million tokens)");
        else
            config_yaml_walk(ld, v, price_fields, COUNT(price_fields), p);
        inherit_rates(p);
        config_yaml_path_pop(ld, old);
    }
    free(dup);
}

void prices_config_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct config *c = obj;
    if (v->type != YAML_MAPPING_NODE) {
        ERR(ld, v, "expected a mapping of provider names to their models' prices, got %s",
            config_yaml_kind(v));
        return;
    }
    /* Count the entries first: the array is allocated once, at its size. */
    size_t total = 0;
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; pr++) {
        yaml_node_t *m = config_yaml_node(ld, pr->value);
        if (m->type == YAML_MAPPING_NODE)
            total += (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    }
    if (total > PRICES_MAX) {
        ERR(ld, v, "too many prices (%zu, at most %d)", total, PRICES_MAX);
        return;
    }
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, v, PRICES_MAX, false, "provider", &dup);
    if (n > 0 && total > 0 && !(c->prices = calloc(total, sizeof *c->prices))) {
        ERR(ld, v, "out of memory");
        n = -1;
    }
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *m;
        const char *provider = config_yaml_named_key(ld, v, (size_t)i, &k, &m);
        if (!provider || dup[i]) continue;
        size_t old = config_yaml_path_key(ld, provider);
        if (!is_glob(provider) && !provider_known(c, provider) && !ld->providers_broken)
            warn_unknown_provider(ld, k, provider);
        parse_provider_prices(ld, c, provider, m);
        config_yaml_path_pop(ld, old);
    }
    free(dup);
}

void prices_config_free(struct cfg_price *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].provider);
        free(p[i].model);
        free(p[i].windows);
    }
    free(p);
}
