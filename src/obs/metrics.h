/*
 * metrics — Prometheus metrics (text format 0.0.4) at GET /metrics.
 *
 * The request path must not contend on shared cache lines, so counters live
 * in per-worker shards: one struct metrics_shard per worker, laid out for the
 * config's models × deployments index space, written only by its worker
 * (a relaxed load and store: a plain add, no lock prefix) and read with
 * relaxed atomic loads by whichever worker answers a scrape, which sums the
 * shards. Histograms have fixed buckets. Gauges that already exist elsewhere
 * (breaker state, in-flight, EWMA, probe results, failover and hedge counts,
 * workers' connection counts) are read at scrape time instead of copied.
 *
 * Label values come only from config names (model, provider, deployment
 * model) and fixed enums (status class, outcome, error class, token kind),
 * never from request ids or client input, so the series count is bounded by
 * the config.
 *
 * Who calls it: main.c creates the registry beside the runtime (metrics_new)
 * and gives each worker its shard (metrics_shard); proxy.c and attempt.c call
 * the hooks below on the worker's own shard; the admission code calls the
 * queue / shed / degraded hooks; api.c answers GET /metrics with metrics_render;
 * the status page reads metrics_dep_totals and the incident ring. Every hook
 * accepts a NULL shard (does nothing), and ignores a model or deployment that
 * does not belong to the registry's config (a request still running on an
 * older snapshot after a reload).
 *
 * docs/metrics.md lists every metric, its labels and meaning.
 */
#ifndef UNBUSY_METRICS_H
#define UNBUSY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/accesslog.h"
#include "base/buf.h"
#include "config/config.h"
#include "route/health.h"
#include "obs/incidents.h"
#include "route/runtime.h"

struct metrics;
struct metrics_shard;
struct server_conn;

/* A registry for rt's config with nshards worker shards. NULL when out of memory.
   rt must outlive it. */
struct metrics *metrics_new(struct runtime *rt, unsigned nshards);
void metrics_free(struct metrics *m);
/* A config reload: next (the next generation's registry, not yet in use) starts with
   old's incidents and counters (a first copy, see metrics_shard_carry) and reads the
   same ledger and budgets. */
void metrics_carry(struct metrics *next, struct metrics *old);
/* The worker moving to next's registry (on its own thread, the shards' one writer):
   next starts from old's counters, by model name and deployment (provider + model). */
void metrics_shard_carry(struct metrics_shard *next, struct metrics_shard *old);

/* Shard i (< nshards) for worker i; nconns / inflight point at that worker's
   connection and request counts (read at scrape time; may be NULL). */
struct metrics_shard *metrics_shard(struct metrics *m, unsigned i, const unsigned *nconns,
                                    const unsigned *inflight);
/* The registry a shard belongs to (NULL for NULL). */
struct metrics *metrics_of(struct metrics_shard *s);
/* The recent-incidents ring (owned by the registry). */
struct incidents *metrics_incidents(struct metrics *m);
struct runtime *metrics_runtime(struct metrics *m);

/* ---- hooks: called on the owning worker's thread only ------------------------- */

/*
 * A proxied request has ended (its finalize): requests_total by the provider
 * of deployment d (NULL: none was tried; provider="none"), the log entry's
 * status class and outcome; request duration from start_ms (runtime_now_ms
 * clock) to now; TTFT and tokens when the entry has them; attempts. An
 * "upstream_failed" outcome is also an incident.
 */
void metrics_request_done(struct metrics_shard *s, const struct cfg_model *m,
                          const struct cfg_deployment *d, const struct accesslog_entry *log,
                          uint64_t start_ms);

/*
 * An attempt on deployment d got its verdict (health_release returned
 * health_events). A failure class counts in upstream_errors_total and is an
 * incident of kind failed_as (attempt_failed before the client saw a byte of
 * it, stream_failed after, continued when another deployment takes the
 * stream over); breaker trips / closes and a first refusal of our
 * credentials are incidents too. status: the upstream's HTTP status (0 if none).
 */
void metrics_attempt_end(struct metrics_shard *s, const struct cfg_model *m,
                         const struct cfg_deployment *d, enum health_class c,
                         unsigned health_events, int status, enum incident_kind failed_as);

/* A hedge was started because deployment d was slow to its first token: an incident. */
void metrics_hedged(struct metrics_shard *s, const struct cfg_model *m, const struct cfg_deployment *d);

/* What became of a stream cut after its first byte (unbusy_continuations_total):
   continued to a complete answer, continued but the request still failed, or not
   continued because continuing was unsafe (tool calls, n > 1, logprobs, JSON output,
   no deployment that continues). */
enum metrics_continuation {
    METRICS_CONTINUATION_OK,
    METRICS_CONTINUATION_FAILED,
    METRICS_CONTINUATION_UNSAFE,
    METRICS_CONTINUATION__COUNT
};
void metrics_continuation(struct metrics_shard *s, const struct cfg_model *m, enum metrics_continuation r);

/*
 * A content event of an upstream stream arrived. stream identifies the
 * attempt (any pointer stable for its life); had_content: an earlier content
 * event of the same attempt exists, so the gap since it is an inter-token
 * latency sample. Costs a clock read and a few stores.
 */
void metrics_content_event(struct metrics_shard *s, const struct cfg_model *m, const void *stream,
                           bool had_content);
/* The same at now_us (CLOCK_MONOTONIC, µs) read by the caller: the relay reads the clock
   once per upstream read, whose events all arrived at that moment. */
void metrics_content_event_at(struct metrics_shard *s, const struct cfg_model *m,
                              const void *stream, bool had_content, uint64_t now_us);

/* Admission: the requests of model m waiting in this worker's queue now (the
   scrape sums the workers); one request's time in the queue; a request shed
   (refused with 429); a request served by a degraded (smaller) deployment. */
void metrics_queue_depth_set(struct metrics_shard *s, const struct cfg_model *m, uint32_t depth);
void metrics_queue_wait(struct metrics_shard *s, const struct cfg_model *m, uint64_t wait_us);
void metrics_shed(struct metrics_shard *s, const struct cfg_model *m);
void metrics_degraded(struct metrics_shard *s, const struct cfg_model *m);

/* ---- reading ------------------------------------------------------------------ */

/* Appends the whole exposition (every family, HELP and TYPE included). */
struct ledger;
struct budgets;
/* The ledger and the budgets whose counters a scrape reads (either may be NULL). */
void metrics_set_sources(struct metrics *m, struct ledger *l, struct budgets *b);
/* A module that renders its own families (Prometheus text) at the end of every scrape;
   at most METRICS_MAX_RENDERERS, the rest are ignored. */
#define METRICS_MAX_RENDERERS 4
void metrics_add_renderer(struct metrics *m, void (*render)(void *ud, struct buf *out), void *ud);

void metrics_render(struct metrics *m, struct buf *out);


enum metrics_token_kind {
    METRICS_TOKENS_PROMPT,
    METRICS_TOKENS_COMPLETION,
    METRICS_TOKENS_REASONING,
    METRICS_TOKENS_CACHED,
    METRICS_TOKENS__COUNT
};

/* Summed over the shards, since start, for deployment dep of model index model. */
struct metrics_dep_totals {
    uint64_t requests; /* finished requests it answered (any outcome) */
    uint64_t failed;   /* of those: upstream_failed or mid_stream_error */
    uint64_t errors;   /* attempts on it that failed (any class) */
    uint64_t tokens[METRICS_TOKENS__COUNT];
};
/* Returns 0, or -1 when the indices are out of range (out zeroed). */
int metrics_dep_totals(struct metrics *m, size_t model, size_t dep, struct metrics_dep_totals *out);

#endif
