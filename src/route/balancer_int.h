/*
 * balancer_int — what balancer.c (tiers, eligibility, the strategy table) and
 * the strategy files (balancer_*.c) share: each strategy's ops table and the
 * few helpers more than one strategy uses. Internal to those files.
 */
#ifndef UNBUSY_BALANCER_INT_H
#define UNBUSY_BALANCER_INT_H

#include "route/balancer.h"

extern const struct balancer_ops balancer_p2c_ops;
extern const struct balancer_ops balancer_round_robin_ops;
extern const struct balancer_ops balancer_least_inflight_ops;
extern const struct balancer_ops balancer_latency_weight_ops;
extern const struct balancer_ops balancer_cost_ops;
extern const struct balancer_ops balancer_engine_load_ops;

/* splitmix64: turns the caller's one random value into as many as needed. */
static inline uint64_t balancer_next_rand(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t balancer_weight_of(const struct balancer_candidate *c)
{
    return c->weight ? c->weight : 1;
}

/* A position in w[0..m) drawn with probability w[k] / sum (each w[k] >= 1). */
size_t balancer_weighted_random(const uint64_t *w, size_t m, uint64_t *r);

/* The p2c choice, for strategies that fall back to it (cost). */
size_t balancer_p2c_choose(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                           uint64_t now_ms, uint64_t rand);

/* An instance with no state of its own but its ops (p2c, least_inflight, latency_weight). */
struct balancer *balancer_stateless_create(const struct balancer_ops *ops);
void balancer_stateless_destroy(struct balancer *b);

#endif
