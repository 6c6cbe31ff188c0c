/*
 * limit — a deployment's concurrency limit learnt from its behaviour, and the
 * slow-start ramp of a deployment that has just recovered.
 *
 * Most cloud deployments declare no max_concurrency: nobody knows how many
 * requests at once they take before they answer 429/503 or slow down. This
 * module finds out the way TCP congestion control and Netflix's
 * concurrency-limits do (AIMD):
 *
 *   probing      (until the first sign of overload) the limit grows by one per
 *                success that came while the deployment was busy (in flight at
 *                least half the limit): it doubles per round trip, as TCP's
 *                slow start;
 *   avoidance    (after it) by 1/limit per such success: one per round trip;
 *   decrease     × backoff (default ½) on a 429 or 5xx at a concurrency higher
 *                than any that succeeded recently (an overload), or when the
 *                recent TTFT (a short EWMA) rises above tolerance × the baseline
 *                (the lowest TTFT of the last minute or two, like TCP Vegas's
 *                min RTT; and by at least ttft_slack_ms) while the deployment is busy. Once per round trip:
 *                an attempt started before the last decrease ran under the old
 *                limit, so its failure says nothing new (a burst of 429s halves
 *                the limit once, not ten times).
 *
 * A success while the deployment is nearly idle teaches nothing: the limit
 * only grows on evidence that it is used. It stays within [min, max]. A
 * refusal at a concurrency the deployment has just served without complaint
 * (the highest in flight at a success over the last one to two ok_window_ms)
 * teaches nothing either: a provider that is busy now and then for reasons of
 * its own (other tenants, a queue of its own) refuses at any concurrency, and
 * halving on each of those would starve a pool that is not overloaded at all.
 * A concurrency limit shows as refusals above the level where answers come.
 *
 * Slow start (Envoy's slow_start_config): for window_ms after a recovery a
 * deployment's share is factor = max(min_weight, (elapsed / window)^(1/aggression))
 * of its weight, and its learnt limit is scaled by the same factor, so it is
 * not flooded with its whole share the instant its breaker closes.
 *
 * Who calls it: health.c, which embeds one struct limit per deployment and
 * calls it under its own lock (this module locks nothing); the balancer reads
 * the slow-start factor through health. Time comes from the caller, so the tests
 * are exact.
 */
#ifndef UNBUSY_LIMIT_H
#define UNBUSY_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct limit_params {
    uint32_t initial;          /* the limit before anything was learnt, 20 */
    uint32_t min;              /* floor, 1 */
    uint32_t max;              /* cap, 1000 */
    double backoff;            /* multiplicative decrease, 0.5 */
    double ttft_tolerance;     /* TTFT above this × the baseline is inflation, 3 */
    uint32_t ttft_slack_ms;    /* ... and at least this much above it (jitter of fast answers), 200 */
    uint32_t baseline_ms;      /* the baseline is the lowest TTFT over the last 1–2 of these, 60000 */
    uint32_t ok_window_ms;     /* a refusal at or below the highest in flight at a success over
                                  the last 1–2 of these is not an overload, 10000 */
    uint32_t slow_start_ms;    /* the ramp's window after a recovery, 30000; 0: no ramp */
    double aggression;         /* the ramp's curve: 1 linear, > 1 faster at first, 1 */
    double min_weight;         /* the ramp starts at this share, 0.1 */
};

/* How an attempt ended, as a capacity signal. */
enum limit_signal {
    LIMIT_OK,       /* an answer (its TTFT is a sample) */
    LIMIT_OVERLOAD, /* 429 or 5xx: the deployment refused or broke under load */
    LIMIT_NEUTRAL,  /* anything else (auth, a bad request, a cut): says nothing of capacity */
};

/* Fields are private: use the functions. Public only so that it can be embedded. */
struct limit {
    struct limit_params params;
    double value;               /* the learnt limit */
    bool probing;               /* no overload seen yet: grow fast */
    uint64_t last_decrease_ms;  /* 0: never */
    double ttft_recent;         /* short EWMA of TTFT samples, ms */
    uint32_t samples;           /* TTFT samples seen (saturating) */
    uint32_t base_cur, base_prev; /* lowest TTFT of this baseline period and of the one before; 0 none */
    uint64_t base_period;       /* which period base_cur belongs to (now / baseline_ms + 1) */
    uint32_t ok_cur, ok_prev;   /* highest in flight at a success, this ok period and the one before */
    uint64_t ok_period;         /* which period ok_cur belongs to (now / ok_window_ms + 1) */
    uint64_t recovered_ms;      /* when the ramp began; 0: no ramp */
    uint64_t increases, decreases;
};

void limit_params_default(struct limit_params *p);
/* A fresh limit at params.initial, probing, no ramp. p NULL: the defaults. */
void limit_init(struct limit *l, const struct limit_params *p);
/* New parameters keeping what was learnt (clamped into the new [min, max]). */
void limit_set_params(struct limit *l, const struct limit_params *p);

/*
 * An attempt ended. started_ms: when it took its slot; inflight: the
 * deployment's requests in flight when it ended, itself included; ttft_ms its
 * time to first content (0: none). Returns -1 if the limit went down, 1 if up,
 * 0 if it stayed.
 */
int limit_observe(struct limit *l, uint64_t now_ms, uint64_t started_ms, uint32_t inflight,
                  enum limit_signal sig, uint32_t ttft_ms);

/* The learnt limit, whole, within [min, max] (no ramp). */
uint32_t limit_learnt(const struct limit *l);
/* What the deployment may take now: the learnt limit × the ramp factor, at least min. */
uint32_t limit_current(const struct limit *l, uint64_t now_ms);
/* The TTFT baseline in ms (0: none yet). */
uint32_t limit_baseline_ms(const struct limit *l, uint64_t now_ms);

/* The deployment recovered (breaker closed, probes pass again): its ramp starts now.
   The learnt limit is kept (the ramp scales it); it probes again. */
void limit_recovered(struct limit *l, uint64_t now_ms);
/* The ramp's factor now, in [min_weight, 1]; 1 when no ramp is in force. */
double limit_ramp(const struct limit *l, uint64_t now_ms);

/* The slow-start formula alone: max(min_weight, (elapsed / window)^(1 / aggression)),
   1 once elapsed >= window or when window is 0. */
double limit_slow_start_factor(uint64_t elapsed_ms, uint32_t window_ms, double aggression,
                               double min_weight);

#endif
