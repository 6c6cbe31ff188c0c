#include "route/balancer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "route/affinity.h"
#include "route/balancer_int.h"
#include "route/engine.h"

/* Every strategy, by enum value: adding one is a file and a line here. */
static const struct balancer_ops *const strategies[BALANCER__COUNT] = {
    [BALANCER_P2C] = &balancer_p2c_ops,
    [BALANCER_ROUND_ROBIN] = &balancer_round_robin_ops,
    [BALANCER_LEAST_INFLIGHT] = &balancer_least_inflight_ops,
    [BALANCER_LATENCY_WEIGHT] = &balancer_latency_weight_ops,
    [BALANCER_COST] = &balancer_cost_ops,
    [BALANCER_ENGINE_LOAD] = &balancer_engine_load_ops,
};

/* ---- for the strategies --------------------------------------------------------- */

size_t balancer_weighted_random(const uint64_t *w, size_t m, uint64_t *r)
{
    uint64_t total = 0;
    for (size_t k = 0; k < m; k++)
        total += w[k];
    uint64_t x = balancer_next_rand(r) % total;
    for (size_t k = 0; k < m; k++) {
        if (x < w[k])
            return k;
        x -= w[k];
    }
    return m - 1;
}

struct balancer *balancer_stateless_create(const struct balancer_ops *ops)
{
    struct balancer *b = malloc(sizeof *b);
    if (b)
        b->ops = ops;
    return b;
}

void balancer_stateless_destroy(struct balancer *b)
{
    free(b);
}

/* ---- public ------------------------------------------------------------------- */

const struct balancer_ops *balancer_ops_of(enum balancer_strategy s)
{
    return (unsigned)s < BALANCER__COUNT ? strategies[s] : NULL;
}

const char *balancer_strategy_name(enum balancer_strategy s)
{
    return (unsigned)s < BALANCER__COUNT ? strategies[s]->name : "?";
}

int balancer_strategy_parse(const char *s, enum balancer_strategy *out)
{
    for (unsigned i = 0; s && i < BALANCER__COUNT; i++) {
        if (strcmp(s, strategies[i]->name) == 0) {
            *out = (enum balancer_strategy)i;
            return 0;
        }
    }
    return -EINVAL;
}

struct balancer *balancer_create(enum balancer_strategy s, const struct balancer_config *bc)
{
    const struct balancer_ops *ops = balancer_ops_of(s);
    if (!ops)
        ops = strategies[BALANCER_P2C];
    struct balancer_config clipped = *bc;
    if (clipped.ndeps > BALANCER_MAX_CANDIDATES)
        clipped.ndeps = BALANCER_MAX_CANDIDATES;
    struct balancer *b = ops->create(&clipped);
    if (!b)
        return NULL;
    b->affinity = NULL;
    for (size_t i = 0; i < BALANCER_MAX_CANDIDATES; i++)
        b->engines[i] = clipped.engines && i < clipped.ndeps ? clipped.engines[i] : NULL;
    const struct cfg_model *m = clipped.model;
    if (m && clipped.keys && clipped.ndeps > 1 && (m->routing.affinity == CFG_AFFINITY_PREFIX ||
                                                   m->routing.affinity == CFG_AFFINITY_HEADER)) {
        b->affinity = affinity_new(clipped.keys, clipped.ndeps, m->routing.load_factor);
        if (!b->affinity) {
            ops->destroy(b);
            return NULL;
        }
    }
    return b;
}

void balancer_destroy(struct balancer *b)
{
    if (b) {
        affinity_free(b->affinity);
        b->ops->destroy(b);
    }
}

const char *balancer_name(const struct balancer *b)
{
    return b->ops->name;
}

int balancer_pick(struct balancer *b, struct balancer_candidate *c, size_t n, uint64_t now_ms,
                  uint64_t rand)
{
    return balancer_pick_keyed(b, c, n, now_ms, rand, 0);
}

/* The ring's choice within the tier's set, or m when it has none. The load it bounds is the
   engine's estimate where its metrics are fresh (route/engine.h), else our in-flight. */
static size_t pick_affine(struct balancer *b, const struct balancer_candidate *c,
                          const uint16_t *set, size_t m, uint64_t now_ms, uint64_t key)
{
    double load[BALANCER_MAX_CANDIDATES];
    for (size_t k = 0; k < m; k++) {
        size_t i = set[k];
        load[k] = engine_estimate(b->engines[i], health_inflight(c[i].h), now_ms);
    }
    return affinity_choose(b->affinity, key, set, load, m);
}

int balancer_pick_keyed(struct balancer *b, struct balancer_candidate *c, size_t n,
                        uint64_t now_ms, uint64_t rand, uint64_t affinity_key)
{
    if (n > BALANCER_MAX_CANDIDATES)
        n = BALANCER_MAX_CANDIDATES;
    bool ok[BALANCER_MAX_CANDIDATES];
    bool any = false;
    int tier = 0;
    for (size_t i = 0; i < n; i++) {
        ok[i] = !c[i].excluded && health_eligible(c[i].h, now_ms, NULL);
        if (ok[i] && (!any || c[i].tier < tier)) {
            tier = c[i].tier;
            any = true;
        }
    }
    if (!any)
        return -1;
    uint16_t set[BALANCER_MAX_CANDIDATES];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ok[i] && c[i].tier == tier)
            set[m++] = (uint16_t)i;
    /* Slow start: a deployment back from an outage ramps its weight (health_slow_start)
       for every strategy alike. Weights are scaled by 100 while any candidate ramps, so
       that a tenth of a weight of 1 is still a weight. */
    struct balancer_candidate ramped[BALANCER_MAX_CANDIDATES];
    const struct balancer_candidate *view = c;
    for (size_t k = 0; k < m; k++) {
        if (health_slow_start(c[set[k]].h, now_ms) < 1.0) {
            memcpy(ramped, c, n * sizeof *c);
            for (size_t j = 0; j < m; j++) {
                double w = (double)balancer_weight_of(&c[set[j]]) * 100.0 *
                           health_slow_start(c[set[j]].h, now_ms);
                ramped[set[j]].weight = w < 1 ? 1 : w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
            }
            view = ramped;
            break;
        }
    }
    if (b->affinity && affinity_key && m > 1) {
        size_t k = pick_affine(b, view, set, m, now_ms, affinity_key);
        if (k < m)
            return set[k];
    }
    size_t k = b->ops->choose(b, view, n, set, m, now_ms, rand);
    return set[k < m ? k : 0];
}

int balancer_acquire(struct balancer *b, struct balancer_candidate *c, size_t n, uint64_t now_ms,
                     uint64_t rand, struct health_ticket *ticket)
{
    if (n > BALANCER_MAX_CANDIDATES)
        n = BALANCER_MAX_CANDIDATES;
    bool lost[BALANCER_MAX_CANDIDATES] = {false};
    uint64_t r = rand;
    int got = -1;
    for (size_t tries = 0; tries < n; tries++) {
        int i = balancer_pick(b, c, n, now_ms, tries ? balancer_next_rand(&r) : rand);
        if (i < 0)
            break;
        if (health_acquire(c[i].h, now_ms, ticket)) {
            got = i;
            break;
        }
        c[i].excluded = lost[i] = true; /* taken in between by another thread */
    }
    for (size_t i = 0; i < n; i++)
        if (lost[i])
            c[i].excluded = false;
    return got;
}

void balancer_observe(struct balancer *b, size_t index, const struct balancer_outcome *o)
{
    if (b && b->ops->observe && index < BALANCER_MAX_CANDIDATES)
        b->ops->observe(b, index, o);
}
