/*
 * runtime_carry — what a reload keeps: matching the next generation's
 * providers, models and deployments with the running one's, and publishing it.
 *
 * A deployment's key is its provider's name, the model the provider is asked
 * for and the provider's base URL: while the key is unchanged, the new
 * generation shares the deployment's learnt state (struct runtime_dep_state:
 * breaker, EWMA, TTFT history and budgets, learnt concurrency limit, counters)
 * with the old one, so requests still running on the old generation and new
 * ones feed the same state. A model (by the name clients send) shares its
 * admission queue and its retry and hedge budgets the same way; its request,
 * failover and hedge counters are copied. A provider (by name) starts with the probe state the old
 * one had.
 *
 * runtime_build (runtime.c) calls the finders while it builds; the reload
 * (src/reload.c) calls runtime_carry_diff for its answer and
 * runtime_carry_commit when the new generation takes over.
 */
#ifndef UNBUSY_RUNTIME_CARRY_H
#define UNBUSY_RUNTIME_CARRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "route/runtime.h"

/* Is the deployment the same one (provider name, model, base URL)? */
bool runtime_carry_same_dep(const struct cfg_deployment *a, const struct cfg_deployment *b);

/* The old generation's model of this name, or NULL. */
struct runtime_model *runtime_carry_find_model(struct runtime *old, const char *name);
/*
 * The old deployment whose state the new deployment d of model model_name takes:
 * the same key under the same model first, else the same key under another
 * model whose state no deployment of the generation being built (built, with
 * its models filled so far) has taken yet. NULL: it starts fresh.
 */
struct runtime_dep *runtime_carry_find_dep(struct runtime *old, struct runtime *built,
                                           const char *model_name, const struct cfg_deployment *d);
/* Copies the probe state of old's provider of the same name and base URL into rp (if any). */
void runtime_carry_provider(struct runtime_provider *rp, struct runtime *old);
/* Copies the model's counters (requests, failovers, hedges...) from om into rm. */
void runtime_carry_model_counters(struct runtime_model *rm, struct runtime_model *om);

/* What changed between two generations, by name (for the reload's answer and log). */
struct runtime_carry_report {
    unsigned models_added, models_removed, models_kept;
    unsigned deps_added, deps_removed, deps_kept; /* deps_kept: state carried over */
    struct buf json; /* {"added":[...],"removed":[...],"kept":[...]} for models and deployments */
};

/* Fills r (its buffer bounded; runtime_carry_report_free frees it). */
void runtime_carry_diff(struct runtime *old, struct runtime *next, struct runtime_carry_report *r);
void runtime_carry_report_free(struct runtime_carry_report *r);

/*
 * next takes over from old (call before publishing next): the shared queues
 * now follow next's queue settings; the queue of every model next no longer
 * has is closed, its waiters answered (model removed); old is marked retired.
 * Returns the number of waiters so answered.
 */
unsigned runtime_carry_commit(struct runtime *old, struct runtime *next);

#endif
