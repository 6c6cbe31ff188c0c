/*
 * least_inflight — the lowest (in-flight + 1) / weight; ties at random, each
 * of the tied ones equally likely. No state of its own: the in-flight counts
 * are in health.
 */
#include "route/balancer_int.h"

static struct balancer *least_inflight_create(const struct balancer_config *bc)
{
    return balancer_stateless_create(&balancer_least_inflight_ops);
}

static size_t least_inflight_choose(struct balancer *b, const struct balancer_candidate *c,
                                    size_t n, const uint16_t *set, size_t m, uint64_t now_ms,
                                    uint64_t rand)
{
    uint64_t r = rand;
    size_t best = 0, ties = 1;
    uint64_t best_load = health_inflight(c[set[0]].h) + 1, best_w = balancer_weight_of(&c[set[0]]);
    for (size_t k = 1; k < m; k++) {
        uint64_t load = health_inflight(c[set[k]].h) + 1, w = balancer_weight_of(&c[set[k]]);
        /* load / w against best_load / best_w */
        uint64_t lhs = load * best_w, rhs = best_load * w;
        if (lhs < rhs) {
            best = k;
            best_load = load;
            best_w = w;
            ties = 1;
        } else if (lhs == rhs && balancer_next_rand(&r) % ++ties == 0) {
            best = k; /* each of the tied ones with probability 1/ties */
            best_load = load;
            best_w = w;
        }
    }
    return best;
}

const struct balancer_ops balancer_least_inflight_ops = {
    .name = "least_inflight",
    .create = least_inflight_create,
    .choose = least_inflight_choose,
    .observe = NULL, /* health counts what is in flight */
    .destroy = balancer_stateless_destroy,
};
