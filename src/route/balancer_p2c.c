/*
 * p2c — power of two choices, the default strategy: two distinct random
 * candidates, the lower health_score / weight wins. Comparing two random
 * candidates instead of all of them avoids the herd that "always the best"
 * causes when every worker sees the same stale numbers, yet nearly never
 * picks a bad one (Mitzenmacher). No state of its own: the scores are in health.
 */
#include "route/balancer_int.h"

size_t balancer_p2c_choose(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                           uint64_t now_ms, uint64_t rand)
{
    if (m == 1)
        return 0;
    uint64_t r = rand;
    size_t a = (size_t)(balancer_next_rand(&r) % m);
    size_t b = (size_t)(balancer_next_rand(&r) % (m - 1));
    if (b >= a)
        b++;
    /* score_a / weight_a <= score_b / weight_b, without dividing */
    double sa = health_score(c[set[a]].h, now_ms) * (double)balancer_weight_of(&c[set[b]]);
    double sb = health_score(c[set[b]].h, now_ms) * (double)balancer_weight_of(&c[set[a]]);
    return sa <= sb ? a : b;
}

static struct balancer *p2c_create(const struct balancer_config *bc)
{
    return balancer_stateless_create(&balancer_p2c_ops);
}

static size_t p2c_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                         const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    return balancer_p2c_choose(c, set, m, now_ms, rand);
}

const struct balancer_ops balancer_p2c_ops = {
    .name = "p2c",
    .create = p2c_create,
    .choose = p2c_choose,
    .observe = NULL, /* health_score already holds the outcomes */
    .destroy = balancer_stateless_destroy,
};
