/*
 * runtime — the learnt, changing state that goes with a config snapshot:
 * per deployment its health (breaker, EWMA, counters; shared by all workers),
 * per deployment also its first-token budget (route/ttft_budget.h),
 * per provider what the active probes found and the models it lists (models: auto,
 * route/catalog.h), per model its retry and hedge
 * budgets and its balancer (the strategy instance, which owns its own state
 * and lock). The config stays immutable; runtime_new builds this beside it,
 * indexed the same way, and runtime_free destroys it.
 *
 * main.c creates the first one once the config is loaded and before the
 * workers start; a reload (src/reload.c) builds each next one with
 * runtime_build, sharing the learnt state whose key is unchanged. The proxy,
 * the probes, the admin API and the metrics read and update it; a request
 * holds a reference to its generation (docs/architecture.md, "Generations").
 */
#ifndef UNBUSY_RUNTIME_H
#define UNBUSY_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admit/admission.h"
#include "route/balancer.h"
#include "route/catalog.h"
#include "route/engine.h"
#include "route/endpoints.h"
#include "config/config.h"
#include "route/health.h"
#include "route/hedge_budget.h"
#include "route/retry_budget.h"
#include "route/ttft_budget.h"

struct runtime_provider {
    const struct cfg_provider *cfg;
    atomic_bool probe_down;        /* the active probes say it is down */
    atomic_uint probe_ok_streak, probe_fail_streak;
    atomic_ullong probes_ok, probes_failed;
    atomic_ullong probe_last_ms;   /* wall-clock ms of the last probe result */
    char probe_last_error[128];    /* written by the probe thread only */
    struct engine_state engine;    /* what its engine's metrics say (route/engine.h) */
};

/* What a deployment learns, shared by every generation in which its key
   (provider name + model + base URL) is unchanged (route/runtime_carry.h):
   requests of an old generation and of the new one update the same state. */
struct runtime_dep_state {
    atomic_uint refs;
    struct health health;
    struct ttft_budget ttft;
    struct endpoint_set *endpoints; /* the addresses discovery found (owned); NULL: none */
};

struct runtime_dep {
    const struct cfg_deployment *cfg;
    struct runtime_provider *provider;
    struct health *health;         /* &state->health */
    struct ttft_budget *ttft;      /* its first-token budget, learnt per prompt size; &state->ttft */
    struct runtime_dep_state *state;
    char key[192];                 /* "provider/model", for messages and the admin API */
    struct endpoint_set *endpoints; /* state->endpoints when its provider has discovery: (route/
                                       endpoints.h, fed by route/discovery.c); NULL otherwise */
};

/* A model's admission queue and its retry and hedge budgets, shared by every generation
   that has the model (by name), so that requests queued before a reload are neither
   lost nor counted twice, and retries spent just before it still count. */
struct runtime_model_state {
    atomic_uint refs;
    struct admission admission;
    struct retry_budget retries;
    struct hedge_budget hedges;
};

/* What set a hedge's delay: the first-token budget (by its source) or hedge.after. */
enum runtime_hedge_reason {
    RUNTIME_HEDGE_LEARNT = TTFT_BUDGET_LEARNT,
    RUNTIME_HEDGE_SIBLINGS = TTFT_BUDGET_SIBLINGS,
    RUNTIME_HEDGE_SHORTER = TTFT_BUDGET_SHORTER,
    RUNTIME_HEDGE_COLD = TTFT_BUDGET_COLD,
    RUNTIME_HEDGE_CONFIGURED,
    RUNTIME_HEDGE__REASONS
};
/* "learnt", "siblings", "shorter", "cold", "configured": metric labels. */
const char *runtime_hedge_reason_name(enum runtime_hedge_reason r);

struct runtime_model {
    const struct cfg_model *cfg;
    struct runtime_dep *deps;
    size_t ndeps;
    enum balancer_strategy strategy;
    struct balancer *balancer;     /* created and destroyed with the runtime */
    struct retry_budget *retries;  /* &state->retries */
    struct hedge_budget *hedges;   /* &state->hedges */
    struct admission *admission;   /* &state->admission */
    struct runtime_model_state *state;
    const atomic_bool *retired;    /* its runtime's: a retired one leaves the queue alone */
    atomic_ullong requests, failovers, budget_exhausted;
    atomic_ullong hedges_started, hedges_won, hedges_wasted;
    /* hedges started by what set their delay (enum runtime_hedge_reason), and hedges not
       started when the delay passed: the hedge budget said no, or no other deployment */
    atomic_ullong hedges_by_reason[RUNTIME_HEDGE__REASONS];
    atomic_ullong hedges_denied, hedges_no_deployment;
};

/*
 * A runtime is one generation: a config snapshot and the state beside it.
 * A reload builds the next one with runtime_new_from (route/runtime_carry.c)
 * and publishes it; each request holds a reference (runtime_ref) to the one
 * it started with until its finalize, so a generation lives until its last
 * request ends.
 */
struct runtime {
    struct config *cfg;            /* one reference held */
    struct runtime_provider *providers;
    struct runtime_model *models;
    struct catalog *catalog;       /* what models: auto providers list (route/catalog.h) */
    atomic_uint refs;              /* runtime_new: 1 */
    uint64_t generation;           /* 1 for the first config, +1 per applied reload */
    atomic_bool retired;           /* a newer generation serves new requests */
};

/* Returns NULL when out of memory. One reference held by the caller. */
struct runtime *runtime_new(struct config *cfg, admission_ready_fn ready);
/* runtime_new, or (old not NULL) the next generation after old: the state of
   providers, models and deployments old has (route/runtime_carry.h) is adopted.
   old is only read; the caller publishes the result (runtime_carry_commit). */
struct runtime *runtime_build(struct config *cfg, admission_ready_fn ready, struct runtime *old);
/* Frees at once, whatever the references (the sole owner's shortcut). */
void runtime_free(struct runtime *rt);
/* Takes a reference; returns rt. */
struct runtime *runtime_ref(struct runtime *rt);
/* Drops one; the last frees (and with it the config reference and the shared
   states no other generation holds). NULL is ignored. */
void runtime_unref(struct runtime *rt);

struct runtime_model *runtime_model(struct runtime *rt, const struct cfg_model *m);
struct runtime_provider *runtime_provider(struct runtime *rt, const struct cfg_provider *p);
/* The deployment named "provider" + "model", or NULL. */
struct runtime_dep *runtime_find_dep(struct runtime *rt, const char *provider, const char *model,
                                     struct runtime_model **model_out);

/* May a new request go to this deployment now? (health and probes); *why when not. */
bool runtime_dep_eligible(struct runtime_dep *d, uint64_t now_ms, const char **why);

/* Deployment d's first-token budget (route/ttft_budget.h) for a prompt of prompt_tokens, with
   rm's other deployments as the prior and rm's timeouts.first_token as the cap; *info may be NULL. */
uint32_t runtime_dep_first_token_budget(struct runtime_model *rm, struct runtime_dep *d,
                                        uint32_t prompt_tokens, struct ttft_budget_info *info);

/* The model's admission capacity: the sum of its deployments' health_capacity
   (declared max_concurrency or the learnt limit). */
uint32_t runtime_model_capacity(struct runtime_model *rm, uint64_t now_ms);
/* Hands runtime_model_capacity to the model's admission (after an attempt moved a limit). */
void runtime_model_refresh_capacity(struct runtime_model *rm, uint64_t now_ms);

/* When will one of the model's deployments take a request again (health_returns_at,
   and UINT64_MAX while the active probes say its provider is down)? skip[i] (may be
   NULL) leaves deployment i out. UINT64_MAX: none will by time alone. */
uint64_t runtime_model_returns_at(struct runtime_model *rm, const bool *skip, uint64_t now_ms);

/* The provider is back in service (its probes pass again): its deployments ramp up. */
void runtime_provider_recovered(struct runtime *rt, struct runtime_provider *rp, uint64_t now_ms);

/* Monotonic milliseconds, the clock every health decision uses. */
uint64_t runtime_now_ms(void);

#endif
