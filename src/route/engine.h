/*
 * engine — what an inference engine's own metrics say about its load, and
 * the estimate the balancer makes of it.
 *
 * One struct engine_state per provider (in struct runtime_provider); the
 * scraper (route/engine_scrape.c) writes it after each scrape of the
 * engine's /metrics, the engine_load strategy and the affinity ring read it
 * from any worker thread (all atomics, no lock). engine_query_of says which
 * series each engine names: the waiting queue, the running batch and the
 * KV-cache use, as the engines' own code and docs name them
 * (docs/routing.md cites them):
 *
 *   vLLM       vllm:num_requests_waiting, vllm:num_requests_running,
 *              vllm:kv_cache_usage_perc (V1; older: vllm:gpu_cache_usage_perc)
 *   SGLang     sglang:num_queue_reqs, sglang:num_running_reqs, sglang:token_usage
 *   llama.cpp  llamacpp:requests_deferred, llamacpp:requests_processing
 *              (llamacpp:kv_cache_usage_ratio where a build still exports it)
 *   TGI        tgi_queue_size, tgi_batch_current_size (no KV gauge)
 *
 * The estimate (engine_estimate) is the load a new request would join: what
 * other clients put on the engine (its waiting queue plus its running batch
 * at the scrape, less the gateway's own requests then) weighted by the KV
 * pressure, plus the gateway's own in-flight now (so what it sent since the
 * scrape counts at once), plus one. The KV pressure is 1 up to 80 % of the
 * cache in use, rising linearly to 4 at 100 % (an engine whose cache is full
 * preempts and recomputes; below that the cache is no constraint). It fades linearly into the plain
 * in-flight view (in-flight + 1) as the scrape ages from 2 to 5 intervals,
 * so an engine whose metrics stop answering is balanced as any provider.
 */
#ifndef UNBUSY_ENGINE_H
#define UNBUSY_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "proto/prom.h"

/* Positions in the query engine_query_of fills. */
enum engine_series {
    ENGINE_WAITING,
    ENGINE_RUNNING,
    ENGINE_KV,     /* a share 0..1 */
    ENGINE_KV_ALT, /* the older name of the same gauge */
    ENGINE__SERIES
};

struct engine_state {
    bool enabled;                 /* scraped (cfg_engine_metrics.enabled) */
    uint32_t interval_ms;         /* the scrape interval, for staleness */
    atomic_uint waiting, running; /* from the last good scrape */
    atomic_uint kv_permille;      /* KV-cache use x 1000; 0 when the engine does not say */
    atomic_uint own_at_scrape;    /* the gateway's requests on it when the scrape came back */
    atomic_ullong scraped_at_ms;  /* monotonic ms of the last good scrape; 0: none yet */
    atomic_ullong seq;            /* good scrapes so far */
    atomic_uint fail_streak;      /* failed scrapes in a row */
    atomic_ullong scrapes_ok, scrapes_failed;
    atomic_bool marked_down; /* the scraper marked the provider down (probe_down) */
};

/* Sets up st for provider p (disabled unless p's metrics are scraped). */
void engine_state_init(struct engine_state *st, const struct cfg_provider *p);

/* The series engine e exports, into q; label filter model_name with the given deployment
   models (NULL-free, at most PROM_MAX_LABEL_VALUES used). */
void engine_query_of(enum cfg_engine e, struct prom_query *q, const char *const *models,
                     size_t nmodels);

/* A good scrape (p finished over the query of engine_query_of), with own_inflight of the
   gateway's requests on the engine then. Returns false when the body named none of the wanted
   queue series: not this engine's metrics, a failure. */
bool engine_record_scrape(struct engine_state *st, const struct prom_parser *p,
                          uint32_t own_inflight, uint64_t now_ms);
/* A failed scrape; returns the failures in a row now. */
uint32_t engine_record_failure(struct engine_state *st);

/* How much the scrape still counts: 1 up to 2 intervals old, 0 from 5 on (or none yet). */
double engine_freshness(const struct engine_state *st, uint64_t now_ms);

/* The estimate above, for a deployment with inflight requests of ours now. st may be NULL
   (no engine: the in-flight view). */
double engine_estimate(const struct engine_state *st, uint32_t inflight, uint64_t now_ms);

#endif
