/*
 * metrics_engine — the unbusy_engine_* and unbusy_affinity_* families: what
 * the engines' own metrics said at the last scrape (queue, running batch, KV
 * use, scrape age), how the scrapes went, and how often prefix affinity sent
 * a request to its own deployment or past it. Read straight from the
 * runtime's engine states and the balancers' rings (atomics), so nothing on
 * the request path changes for them.
 *
 * Who calls it: main.c registers metrics_engine_renderer with metrics_add_renderer;
 * metrics_render then calls it once per scrape of /metrics.
 */
#ifndef UNBUSY_METRICS_ENGINE_H
#define UNBUSY_METRICS_ENGINE_H

#include <stdint.h>

#include "base/buf.h"
#include "route/runtime.h"

/* Appends the families to out (nothing when no provider is scraped and no model has affinity). */
void metrics_engine_render(struct buf *out, struct runtime *rt, uint64_t now_ms);
/* The same for metrics_add_renderer: ud is the struct runtime, the time is now. */
void metrics_engine_renderer(void *ud, struct buf *out);

#endif
