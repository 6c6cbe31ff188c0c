/*
 * cost — among the candidates whose TTFT estimate meets the model's target,
 * the cheapest now: input plus output per million tokens from prices:, the
 * time-of-day window in force counted; a deployment with no price is
 * self-hosted and free. Equal prices go to the lower load score. When none
 * meets the target, the fastest wins: P2C over all.
 *
 * Owns, from its creation: each deployment's price entry (pointing into the
 * config snapshot, which outlives it), the target and the wall clock. All
 * read-only, so no lock.
 */
#include <stdlib.h>
#include <time.h>

#include "route/balancer_int.h"

struct cost {
    struct balancer base;
    double latency_target_ms; /* qualifies at or below this TTFT estimate; 0: any */
    int64_t (*wall_clock_ms)(void);
    size_t n;
    const struct cfg_price *price[BALANCER_MAX_CANDIDATES]; /* NULL: self-hosted, free */
};

static int64_t system_wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct balancer *cost_create(const struct balancer_config *bc)
{
    struct cost *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &balancer_cost_ops;
    s->wall_clock_ms = bc->wall_clock_ms ? bc->wall_clock_ms : system_wall_clock_ms;
    const struct cfg_model *m = bc->model;
    if (m) {
        uint32_t target = m->resilience.ttft_target_ms;
        s->latency_target_ms = target ? target : m->timeouts.first_token_ms / 2.0;
        s->n = bc->ndeps < m->ndeployments ? bc->ndeps : m->ndeployments;
        for (size_t i = 0; bc->cfg && i < s->n; i++) {
            const struct cfg_deployment *d = &m->deployments[i];
            s->price[i] = prices_find(bc->cfg, d->provider->name, d->model);
        }
    }
    return &s->base;
}

static size_t cost_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                          const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    struct cost *s = (struct cost *)b;
    int64_t wall = s->wall_clock_ms();
    double price[BALANCER_MAX_CANDIDATES];
    size_t best = m;
    for (size_t k = 0; k < m; k++) {
        const struct balancer_candidate *x = &c[set[k]];
        if (s->latency_target_ms > 0 && health_latency_ms(x->h, now_ms) > s->latency_target_ms)
            continue;
        const struct cfg_price *p = set[k] < s->n ? s->price[set[k]] : NULL;
        const struct cfg_price_rates *r = p ? prices_rates_at(p, wall) : NULL;
        price[k] = r ? r->input + r->output : 0;
        if (best == m || price[k] < price[best] ||
            (price[k] == price[best] &&
             health_score(x->h, now_ms) * balancer_weight_of(&c[set[best]]) <
                 health_score(c[set[best]].h, now_ms) * balancer_weight_of(x)))
            best = k;
    }
    return best < m ? best : balancer_p2c_choose(c, set, m, now_ms, rand);
}

static void cost_destroy(struct balancer *b)
{
    free(b);
}

const struct balancer_ops balancer_cost_ops = {
    .name = "cost",
    .create = cost_create,
    .choose = cost_choose,
    .observe = NULL, /* prices come from the config, latency from health */
    .destroy = cost_destroy,
};
