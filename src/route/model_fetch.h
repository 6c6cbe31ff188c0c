/*
 * model_fetch — fetches the model lists of the models: auto providers, on the
 * main thread's loop, beside the probes.
 *
 * Each provider with models: auto is asked for its model list (models_path,
 * default /models; the provider's auth, and api-version on Azure) soon after
 * start and every models_refresh (default 60 s); the ids it lists replace the
 * provider's list in the runtime's catalog (route/catalog.h), so an engine
 * that starts or stops serving a model is followed. A failed fetch keeps the
 * last list (a provider that is down is the probes' and the breakers'
 * business, not a reason to forget its models) and is logged once per run of
 * failures.
 */
#ifndef UNBUSY_MODEL_FETCH_H
#define UNBUSY_MODEL_FETCH_H

#include <uv.h>

#include "route/runtime.h"

struct model_fetches;

/* Starts fetching for every models: auto provider. NULL when there is none (or out of memory). */
struct model_fetches *model_fetch_start(uv_loop_t *loop, struct runtime *rt);
/* Stops and frees (from the loop, after every handle has closed). */
void model_fetch_stop(struct model_fetches *mf);

#endif
