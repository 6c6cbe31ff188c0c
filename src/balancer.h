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
 * strategy chooses; strategies sit behind `const struct balancer_ops`:
 *
 *   p2c             power of two choices (default): two distinct random
 *                   candidates, the lower health_score / weight wins
 *                   (peak-EWMA TTFT × (in-flight + 1)).
 *   round_robin     smooth weighted round-robin (nginx): with weights 5,1,1
 *                   the order is a a b a c a a, spread rather than bunched.
 *   least_inflight  the lowest (in-flight + 1) / weight; ties at random.
 *   latency_weight  weighted random with weight × (100 − max(0, TTFT − 200 ms)),
 *                   at least 1 per unit of weight.
 *
 * Owns nothing but struct balancer_state (round-robin positions), which the
 * caller keeps per model per worker thread: it is not locked. Randomness comes
 * from the caller (`rand`, any 64-bit random value), so tests are exact.
 * Only the first BALANCER_MAX_CANDIDATES candidates are considered.
 */
#ifndef UNBUSY_BALANCER_H
#define UNBUSY_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"

#define BALANCER_MAX_CANDIDATES 64

enum balancer_strategy {
    BALANCER_P2C,
    BALANCER_ROUND_ROBIN,
    BALANCER_LEAST_INFLIGHT,
    BALANCER_LATENCY_WEIGHT,
    BALANCER_COST,
    BALANCER__COUNT
};

struct balancer_candidate {
    struct health *h;
    int tier;        /* lower first */
    uint32_t weight; /* share within the tier; 0 counts as 1 */
    bool excluded;   /* already tried by this request */
    double cost;     /* BALANCER_COST: its price now (per million tokens; 0 for self-hosted) */
    double latency_target_ms; /* BALANCER_COST: qualifies at or below this TTFT estimate */
};

/* Smooth weighted round-robin positions, by candidate index. */
struct balancer_state {
    size_t n; /* the candidate count the positions are for; another count resets them */
    int64_t current[BALANCER_MAX_CANDIDATES];
};

struct balancer_ops {
    const char *name;
    /* Choose among set[0..m) (m >= 1; indexes into c, all eligible, one tier).
       Returns a position in set. st may be NULL. */
    size_t (*choose)(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                     uint64_t now_ms, uint64_t rand, struct balancer_state *st);
};

void balancer_state_init(struct balancer_state *st);

/* NULL for an unknown strategy. */
const struct balancer_ops *balancer_ops_of(enum balancer_strategy s);
/* "p2c", "round_robin", "least_inflight", "latency_weight"; "?" otherwise. */
const char *balancer_strategy_name(enum balancer_strategy s);
/* The names above -> 0 and *out set; -EINVAL otherwise. */
int balancer_strategy_parse(const char *s, enum balancer_strategy *out);

/*
 * The index in c of the candidate to try next, or -1 when none is eligible.
 * Reads health (health_eligible, health_score) and, for round_robin, updates
 * st (NULL: round_robin falls back to weighted random). Takes no slot: the
 * caller then calls health_acquire, which can still refuse if another thread
 * took the last slot in between; balancer_acquire does both.
 */
int balancer_pick(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                  uint64_t now_ms, uint64_t rand, struct balancer_state *st);

/*
 * balancer_pick, then health_acquire on the chosen one; if that loses a race,
 * picks again without it. Returns the index with *ticket filled, or -1.
 * c[].excluded is as the caller left it on return.
 */
int balancer_acquire(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                     uint64_t now_ms, uint64_t rand, struct balancer_state *st,
                     struct health_ticket *ticket);

/* The latency_weight strategy's weight for a TTFT: 100 − max(0, ms − 200), at least 1. */
uint32_t balancer_latency_weight(double latency_ms);

#endif
