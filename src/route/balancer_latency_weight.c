/*
 * latency_weight — weighted random, each candidate's share
 * weight × (100 − max(0, TTFT − 200 ms)), at least 1 per unit of weight: the
 * fast ones take most of the traffic, a slow one still gets enough to be
 * measured again. No state of its own: the TTFT estimates are in health.
 */
#include "route/balancer_int.h"

uint32_t balancer_latency_weight(double latency_ms)
{
    double over = latency_ms > 200 ? latency_ms - 200 : 0;
    return over >= 99 ? 1 : (uint32_t)(100 - over);
}

static struct balancer *latency_weight_create(const struct balancer_config *bc)
{
    return balancer_stateless_create(&balancer_latency_weight_ops);
}

static size_t latency_weight_choose(struct balancer *b, const struct balancer_candidate *c,
                                    size_t n, const uint16_t *set, size_t m, uint64_t now_ms,
                                    uint64_t rand)
{
    uint64_t w[BALANCER_MAX_CANDIDATES];
    for (size_t k = 0; k < m; k++)
        w[k] = balancer_latency_weight(health_latency_ms(c[set[k]].h, now_ms)) *
               balancer_weight_of(&c[set[k]]);
    uint64_t r = rand;
    return balancer_weighted_random(w, m, &r);
}

const struct balancer_ops balancer_latency_weight_ops = {
    .name = "latency_weight",
    .create = latency_weight_create,
    .choose = latency_weight_choose,
    .observe = NULL, /* health's EWMA is fed the same TTFT */
    .destroy = balancer_stateless_destroy,
};
