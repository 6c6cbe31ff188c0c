#include "route/runtime.h"

#include "config/config_discovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/runtime_carry.h"

uint32_t runtime_dep_first_token_budget(struct runtime_model *rm, struct runtime_dep *d,
                                        uint32_t prompt_tokens, struct ttft_budget_info *info)
{
    struct ttft_budget *others[64];
    size_t n = rm->ndeps < 64 ? rm->ndeps : 64;
    for (size_t i = 0; i < n; i++)
        others[i] = rm->deps[i].ttft;
    return ttft_budget_get(d->ttft, others, n, prompt_tokens, rm->cfg->timeouts.first_token_ms, info);
}

const char *runtime_hedge_reason_name(enum runtime_hedge_reason r)
{
    return r == RUNTIME_HEDGE_CONFIGURED ? "configured"
                                         : ttft_budget_source_name((enum ttft_budget_source)r);
}

uint64_t runtime_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void health_params_from(struct health_params *hp, const struct cfg_model *m,
                               const struct cfg_deployment *d)
{
    const struct cfg_breaker *b = &m->resilience.breaker;
    health_params_default(hp);
    if (b->window_ms)
        hp->window_ms = b->window_ms;
    if (b->min_requests)
        hp->min_requests = b->min_requests;
    if (b->failure_ratio > 0)
        hp->failure_ratio = b->failure_ratio;
    hp->consecutive_failures = b->consecutive_failures;
    if (b->open_ms)
        hp->open_ms = b->open_ms;
    if (b->open_max_ms)
        hp->open_max_ms = b->open_max_ms;
    if (b->half_open_trials)
        hp->half_open_trials = b->half_open_trials;
    hp->max_concurrency = d->max_concurrency;
    hp->rpm = d->rpm;
    hp->limit.slow_start_ms = m->resilience.slow_start_ms;
}

static void budget_params_from(struct retry_budget_params *bp, double ratio, double min_per_sec,
                               uint32_t window_ms)
{
    retry_budget_params_default(bp);
    bp->ratio = ratio;
    bp->min_per_sec = min_per_sec;
    if (window_ms)
        bp->window_ms = window_ms;
}

static struct runtime_dep_state *dep_state_new(const struct health_params *hp)
{
    struct runtime_dep_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    atomic_init(&st->refs, 1);
    health_init(&st->health, hp);
    ttft_budget_init(&st->ttft);
    return st;
}

static void dep_state_unref(struct runtime_dep_state *st)
{
    if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    health_destroy(&st->health);
    ttft_budget_destroy(&st->ttft);
    endpoint_set_free(st->endpoints);
    free(st);
}

static struct runtime_model_state *model_state_new(const struct cfg_queue *q, admission_ready_fn ready,
                                                   const struct retry_budget_params *rp,
                                                   const struct hedge_budget_params *hp)
{
    struct runtime_model_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    atomic_init(&st->refs, 1);
    admission_init(&st->admission, q, 0, ready);
    retry_budget_init(&st->retries, rp);
    hedge_budget_init(&st->hedges, hp);
    return st;
}

static void model_state_unref(struct runtime_model_state *st)
{
    if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    admission_destroy(&st->admission);
    retry_budget_destroy(&st->retries);
    hedge_budget_destroy(&st->hedges);
    free(st);
}

struct runtime *runtime_new(struct config *cfg, admission_ready_fn ready)
{
    return runtime_build(cfg, ready, NULL);
}

struct runtime *runtime_build(struct config *cfg, admission_ready_fn ready, struct runtime *old)
{
    struct runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    atomic_init(&rt->refs, 1);
    rt->generation = old ? old->generation + 1 : 1;
    rt->cfg = config_ref(cfg);
    rt->providers = calloc(cfg->nproviders ? cfg->nproviders : 1, sizeof *rt->providers);
    rt->models = calloc(cfg->nmodels ? cfg->nmodels : 1, sizeof *rt->models);
    rt->catalog = catalog_new(cfg);
    if (!rt->providers || !rt->models || !rt->catalog) {
        runtime_free(rt);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        rt->providers[i].cfg = &cfg->providers[i];
        engine_state_init(&rt->providers[i].engine, &cfg->providers[i]);
        if (old)
            runtime_carry_provider(&rt->providers[i], old);
    }
    if (old)
        catalog_carry(rt->catalog, old->catalog);
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const struct cfg_model *m = &cfg->models[i];
        struct runtime_model *rm = &rt->models[i];
        rm->cfg = m;
        rm->deps = calloc(m->ndeployments ? m->ndeployments : 1, sizeof *rm->deps);
        if (!rm->deps) {
            runtime_free(rt);
            return NULL;
        }
        if (!m->resilience.strategy || balancer_strategy_parse(m->resilience.strategy, &rm->strategy) < 0)
            rm->strategy = BALANCER_P2C;
        struct retry_budget_params bp;
        const struct cfg_retry_budget *rb = &m->resilience.retry_budget;
        budget_params_from(&bp, rb->ratio, rb->min_per_sec, rb->window_ms);
        struct hedge_budget_params hbp;
        hedge_budget_params_default(&hbp);
        hbp.max_ratio = m->resilience.hedge.max_ratio;
        if (hbp.base_ratio > hbp.max_ratio)
            hbp.base_ratio = hbp.max_ratio; /* a lower cap set by hand holds */
        if (rb->window_ms)
            hbp.window_ms = rb->window_ms;
        struct runtime_model *om = old ? runtime_carry_find_model(old, m->name) : NULL;
        rm->state = om ? om->state : model_state_new(&m->queue, ready, &bp, &hbp);
        if (!rm->state) {
            runtime_free(rt);
            return NULL;
        }
        if (om) {
            atomic_fetch_add(&rm->state->refs, 1);
            /* values only, under their locks: safe before the swap */
            retry_budget_set_params(&rm->state->retries, &bp);
            hedge_budget_set_params(&rm->state->hedges, &hbp);
        }
        rm->admission = &rm->state->admission;
        rm->retries = &rm->state->retries;
        rm->hedges = &rm->state->hedges;
        rm->retired = &rt->retired;
        if (om)
            runtime_carry_model_counters(rm, om);
        for (size_t j = 0; j < m->ndeployments; j++) {
            const struct cfg_deployment *d = &m->deployments[j];
            struct runtime_dep *rd = &rm->deps[j];
            struct health_params hp;
            health_params_from(&hp, m, d);
            rd->cfg = d;
            rd->provider = runtime_provider(rt, d->provider);
            struct runtime_dep *od = old ? runtime_carry_find_dep(old, rt, m->name, d) : NULL;
            if (od) {
                rd->state = od->state;
                atomic_fetch_add(&rd->state->refs, 1);
                health_set_params(&rd->state->health, &hp); /* values only: safe before the swap */
            } else {
                rd->state = dep_state_new(&hp);
            }
            if (!rd->state) {
                runtime_free(rt);
                return NULL;
            }
            rd->health = &rd->state->health;
            rd->ttft = &rd->state->ttft;
            rm->ndeps = j + 1;
            snprintf(rd->key, sizeof rd->key, "%s/%s", d->provider->name, d->model);
            /* the addresses discovery found are learnt state too: kept with the rest */
            if (d->provider->discovery && !rd->state->endpoints &&
                !(rd->state->endpoints =
                      endpoint_set_new(&hp, d->provider->discovery->max_endpoints))) {
                runtime_free(rt);
                return NULL;
            }
            rd->endpoints = d->provider->discovery ? rd->state->endpoints : NULL;
        }
        runtime_model_refresh_capacity(rm, runtime_now_ms());
        /* Last, so that a failure here leaves this model whole for runtime_free. */
        struct engine_state *engines[BALANCER_MAX_CANDIDATES] = {NULL};
        const char *keys[BALANCER_MAX_CANDIDATES] = {NULL};
        for (size_t j = 0; j < m->ndeployments && j < BALANCER_MAX_CANDIDATES; j++) {
            struct engine_state *es = &rm->deps[j].provider->engine;
            engines[j] = es->enabled ? es : NULL;
            keys[j] = rm->deps[j].key;
        }
        struct balancer_config bc = {.cfg = cfg, .model = m, .ndeps = m->ndeployments,
                                     .engines = engines, .keys = keys};
        rm->balancer = balancer_create(rm->strategy, &bc);
        if (!rm->balancer) {
            runtime_free(rt);
            return NULL;
        }
    }
    return rt;
}

void runtime_free(struct runtime *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; rt->models && i < rt->cfg->nmodels; i++) {
        struct runtime_model *rm = &rt->models[i];
        if (!rm->deps)
            continue;
        for (size_t j = 0; j < rm->ndeps; j++)
            dep_state_unref(rm->deps[j].state);
        free(rm->deps);
        model_state_unref(rm->state);
        balancer_destroy(rm->balancer);
    }
    free(rt->models);
    free(rt->providers);
    catalog_free(rt->catalog);
    config_unref(rt->cfg);
    free(rt);
}

struct runtime *runtime_ref(struct runtime *rt)
{
    atomic_fetch_add(&rt->refs, 1);
    return rt;
}

void runtime_unref(struct runtime *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
        runtime_free(rt);
}

struct runtime_model *runtime_model(struct runtime *rt, const struct cfg_model *m)
{
    return &rt->models[m - rt->cfg->models];
}

struct runtime_provider *runtime_provider(struct runtime *rt, const struct cfg_provider *p)
{
    return &rt->providers[p - rt->cfg->providers];
}

struct runtime_dep *runtime_find_dep(struct runtime *rt, const char *provider, const char *model,
                                     struct runtime_model **model_out)
{
    for (size_t i = 0; i < rt->cfg->nmodels; i++) {
        struct runtime_model *rm = &rt->models[i];
        for (size_t j = 0; j < rm->ndeps; j++) {
            const struct cfg_deployment *d = rm->deps[j].cfg;
            if (strcmp(d->provider->name, provider) == 0 && strcmp(d->model, model) == 0) {
                if (model_out)
                    *model_out = rm;
                return &rm->deps[j];
            }
        }
    }
    return NULL;
}

bool runtime_dep_eligible(struct runtime_dep *d, uint64_t now_ms, const char **why)
{
    if (atomic_load(&d->provider->probe_down)) {
        if (why)
            *why = "probe_down";
        return false;
    }
    if (d->endpoints && !endpoint_set_eligible(d->endpoints, now_ms, why))
        return false;
    return health_eligible(d->health, now_ms, why);
}

uint32_t runtime_model_capacity(struct runtime_model *rm, uint64_t now_ms)
{
    uint64_t sum = 0;
    for (size_t j = 0; j < rm->ndeps; j++)
        sum += health_capacity(rm->deps[j].health, now_ms);
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

void runtime_model_refresh_capacity(struct runtime_model *rm, uint64_t now_ms)
{
    if (rm->retired && atomic_load(rm->retired))
        return; /* the shared queue follows the newest generation's deployments */
    uint32_t c = runtime_model_capacity(rm, now_ms);
    if (c != admission_capacity(rm->admission))
        admission_set_capacity(rm->admission, c);
}

uint64_t runtime_model_returns_at(struct runtime_model *rm, const bool *skip, uint64_t now_ms)
{
    uint64_t earliest = UINT64_MAX;
    for (size_t j = 0; j < rm->ndeps; j++) {
        struct runtime_dep *d = &rm->deps[j];
        if ((skip && skip[j]) || atomic_load(&d->provider->probe_down))
            continue; /* the probes bring it back, at no time known in advance */
        uint64_t at = health_returns_at(d->health, now_ms);
        if (d->endpoints) { /* the later of the deployment's and its first address's return */
            uint64_t ep = endpoint_set_returns_at(d->endpoints, now_ms);
            at = ep > at ? ep : at;
        }
        if (at < earliest)
            earliest = at;
    }
    return earliest;
}

void runtime_provider_recovered(struct runtime *rt, struct runtime_provider *rp, uint64_t now_ms)
{
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        for (size_t j = 0; j < rt->models[i].ndeps; j++)
            if (rt->models[i].deps[j].provider == rp)
                health_recovered(rt->models[i].deps[j].health, now_ms);
}
