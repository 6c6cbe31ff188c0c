/*
 * balancer — which of a model's deployments the next attempt goes to.
 *
 * The proxy calls balancer_pick (or balancer_acquire, which also takes the
 * deployment's health slot) before each attempt, with the model's
 * deployments as candidates in config order; it marks the ones this request
 * has already tried as excluded. Tiers come first: only the lowest tier that
 * has an eligible (health_eligible) and not excluded candidate is considered,
 * so a higher tier takes traffic only while every lower-tier deployment is
 * open, cooling down, saturated, disabled or already tried. Within that tier a
 * strategy chooses. A strategy is an object behind `const struct balancer_ops`,
 * one file each:
 *
 *   p2c             power of two choices (default): two distinct random
 *                   candidates, the lower health_score / weight wins
 *                   (peak-EWMA TTFT × (in-flight + 1)).      balancer_p2c.c
 *   round_robin     smooth weighted round-robin (nginx): with weights 5,1,1
 *                   the order is a a b a c a a, spread rather than bunched.
 *                                                       balancer_round_robin.c
 *   least_inflight  the lowest (in-flight + 1) / weight; ties at random.
 *                                                     balancer_least_inflight.c
 *   latency_weight  weighted random with weight × (100 − max(0, TTFT − 200 ms)),
 *                   at least 1 per unit of weight.    balancer_latency_weight.c
 *   cost            the cheapest now (prices:, time-of-day windows counted) of
 *                   those whose TTFT estimate meets the model's target; P2C
 *                   when none does.                            balancer_cost.c
 *   engine_load     the lowest estimated wait from the engines' own metrics
 *                   (route/engine.h: queue + own in-flight since the scrape,
 *                   x KV pressure), fading to in-flight when a scrape is
 *                   stale. The default where every deployment is a scraped
 *                   engine.                             balancer_engine_load.c
 *
 * Optional prefix affinity (routing.affinity, route/affinity.h) comes before
 * the strategy: a request with an affinity key (balancer_pick_keyed) goes to
 * its deployment on a consistent-hash ring while that one carries at most
 * load_factor x the tier's average load, else to the next on the ring.
 *
 * Who calls it: runtime.c creates one instance per model with the runtime
 * (balancer_create) and destroys it with the runtime; the proxy picks with it
 * and, where an attempt's outcome goes into health, tells it the outcome too
 * (balancer_observe). The proxy never names a strategy.
 *
 * What it owns: each instance owns its strategy's state (round-robin
 * positions, the cost strategy's prices and target) and the lock that state
 * needs; an instance is shared by every worker thread and the caller locks
 * nothing. It does not own the candidates' health, which it only reads.
 * Randomness and time come from the caller (`rand`, any 64-bit random value;
 * `now_ms` monotonic; the cost strategy's wall clock is given at create), so
 * tests are exact. Only the first BALANCER_MAX_CANDIDATES candidates are
 * considered.
 */
#ifndef UNBUSY_BALANCER_H
#define UNBUSY_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "route/health.h"
#include "config/prices.h"

struct affinity;
struct engine_state;

#define BALANCER_MAX_CANDIDATES 64

enum balancer_strategy {
    BALANCER_P2C,
    BALANCER_ROUND_ROBIN,
    BALANCER_LEAST_INFLIGHT,
    BALANCER_LATENCY_WEIGHT,
    BALANCER_COST,
    BALANCER_ENGINE_LOAD,
    BALANCER__COUNT
};

/* What every strategy sees of a candidate; what only one strategy needs, it keeps itself. */
struct balancer_candidate {
    struct health *h;
    int tier;        /* lower first */
    uint32_t weight; /* share within the tier; 0 counts as 1 */
    bool excluded;   /* already tried by this request */
};

/* What a strategy is created from. Candidate i is deployment i of the model. */
struct balancer_config {
    const struct config *cfg;      /* the snapshot (prices:); NULL: no prices */
    const struct cfg_model *model; /* deployments, resilience, timeouts; NULL: none known */
    size_t ndeps;                  /* candidates it will be asked about (at most the maximum) */
    int64_t (*wall_clock_ms)(void); /* unix ms, for time-of-day prices; NULL: the system's */
    /* candidate i's engine state (route/engine.h), or NULL (none; the whole array may be NULL):
       read by engine_load and by the affinity ring's load bound */
    struct engine_state *const *engines;
    const char *const *keys; /* candidate i's "provider/model", for the affinity ring; NULL: none */
};

/* How an attempt on a candidate ended (told where its health learns it). */
struct balancer_outcome {
    enum health_class cls;    /* HEALTH_OK, or the failure's class */
    uint32_t ttft_ms;         /* time to the first content; 0 when none came */
    struct prices_usage usage; /* tokens reported (with a strategy's prices: what the attempt
                                  cost); negative counts: unknown */
};

/* An instance: a strategy's own state begins with this. */
struct balancer {
    const struct balancer_ops *ops;
    struct affinity *affinity; /* the model's ring (balancer_create sets it); NULL: affinity off */
    struct engine_state *engines[BALANCER_MAX_CANDIDATES]; /* by candidate; NULL: none */
};

struct balancer_ops {
    const char *name;
    /* A new instance for bc, or NULL when out of memory. */
    struct balancer *(*create)(const struct balancer_config *bc);
    /* Choose among set[0..m) (m >= 1; indexes into c[0..n), all eligible, one tier).
       Returns a position in set. Called from any worker thread. */
    size_t (*choose)(struct balancer *b, const struct balancer_candidate *c, size_t n,
                     const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand);
    /* Candidate index ended an attempt with o. NULL: the strategy learns all it needs from
       health, which the same call site feeds (every strategy today). */
    void (*observe)(struct balancer *b, size_t index, const struct balancer_outcome *o);
    void (*destroy)(struct balancer *b);
};

/* NULL for an unknown strategy. */
const struct balancer_ops *balancer_ops_of(enum balancer_strategy s);
/* "p2c", "round_robin", "least_inflight", "latency_weight", "cost"; "?" otherwise. */
const char *balancer_strategy_name(enum balancer_strategy s);
/* The names above -> 0 and *out set; -EINVAL otherwise. */
int balancer_strategy_parse(const char *s, enum balancer_strategy *out);

/* A new instance of strategy s (an unknown one: p2c); NULL when out of memory.
   Freed with balancer_destroy. bc is not kept; what it points to must outlive the instance. */
struct balancer *balancer_create(enum balancer_strategy s, const struct balancer_config *bc);
/* NULL is a no-op. */
void balancer_destroy(struct balancer *b);
/* The instance's strategy name. */
const char *balancer_name(const struct balancer *b);

/*
 * The index in c of the candidate to try next, or -1 when none is eligible.
 * Reads health (health_eligible, health_score) and updates b's own state.
 * Takes no slot: the caller then calls health_acquire, which can still refuse
 * if another thread took the last slot in between; balancer_acquire does both.
 */
int balancer_pick(struct balancer *b, struct balancer_candidate *c, size_t n, uint64_t now_ms,
                  uint64_t rand);

/* balancer_pick for a request with an affinity key (0: none, the same as balancer_pick): the
   key's deployment on the ring, within the load bound, before the strategy is asked. */
int balancer_pick_keyed(struct balancer *b, struct balancer_candidate *c, size_t n, uint64_t now_ms,
                        uint64_t rand, uint64_t affinity_key);

/*
 * balancer_pick, then health_acquire on the chosen one; if that loses a race,
 * picks again without it. Returns the index with *ticket filled, or -1.
 * c[].excluded is as the caller left it on return.
 */
int balancer_acquire(struct balancer *b, struct balancer_candidate *c, size_t n, uint64_t now_ms,
                     uint64_t rand, struct health_ticket *ticket);

/* Candidate index ended an attempt with o: tells the strategy (if it listens). */
void balancer_observe(struct balancer *b, size_t index, const struct balancer_outcome *o);

/* The latency_weight strategy's weight for a TTFT: 100 − max(0, ms − 200), at least 1. */
uint32_t balancer_latency_weight(double latency_ms);

#endif
