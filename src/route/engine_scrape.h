/*
 * engine_scrape — reads each inference engine's Prometheus metrics in the
 * background, on the main thread's loop, beside the probes.
 *
 * Every provider whose metrics are scraped (cfg_engine_metrics.enabled: an
 * engine known from its type: or engine:, metrics: not off) is asked for
 * its metrics path (default /metrics at the base URL's host, or metrics.url)
 * every metrics.interval (default 1 s), through the same pooled transport
 * and HTTP client as the probes, with its auth headers, a timeout and a
 * bound on the body (ENGINE_SCRAPE_MAX_BODY). The body goes through
 * proto/prom, which keeps only the engine's queue, batch and KV series (for
 * the deployments' models where the engine labels them); the result lands
 * in the provider's struct engine_state, where the balancer reads it.
 *
 * A failed scrape (transport, timeout, a status other than 200, a body over
 * the bound or without the queue series) counts in the state; after
 * metrics.unhealthy_threshold of them in a row (default 3) the provider is
 * marked down like a failing probe (runtime_provider.probe_down), and the
 * first good scrape after that brings it back (with slow start) — only if
 * the scraper was the one that marked it. Logged once per run of failures.
 */
#ifndef UNBUSY_ENGINE_SCRAPE_H
#define UNBUSY_ENGINE_SCRAPE_H

#include <uv.h>

#include "route/runtime.h"

#define ENGINE_SCRAPE_MAX_BODY (4u << 20)

struct engine_scrapes;

/* Starts scraping every scraped provider. NULL when there is none (or out of memory). */
struct engine_scrapes *engine_scrape_start(uv_loop_t *loop, struct runtime *rt);
/* Stops and frees (from the loop, after every handle has closed). */
void engine_scrape_stop(struct engine_scrapes *es);

#endif
