/*
 * engine_load — the lowest estimated wait, from what each engine's own
 * metrics say (route/engine.h: what other clients put on it at the scrape,
 * plus the gateway's own requests on it now, times its KV pressure), per
 * unit of weight. The gateway's own in-flight moves the estimate at once,
 * so no herd follows a scrape; a stale scrape fades into the plain in-flight
 * view. Ties go at random (never by a scraped number: every worker would
 * break them the same way until the next scrape).
 * No state of its own: the engines' states and health hold all it reads.
 */
#include "route/balancer_int.h"
#include "route/engine.h"

static struct balancer *el_create(const struct balancer_config *bc)
{
    return balancer_stateless_create(&balancer_engine_load_ops);
}

static size_t el_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                        const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    uint64_t r = rand;
    size_t best = 0, ties = 0;
    double best_est = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = set[k];
        double est = engine_estimate(b->engines[i], health_inflight(c[i].h), now_ms) /
                     (double)balancer_weight_of(&c[i]);
        if (k == 0 || est < best_est) {
            best = k;
            best_est = est;
            ties = 1;
        } else if (est == best_est && balancer_next_rand(&r) % ++ties == 0) {
            best = k; /* reservoir sampling: each tie equally likely */
        }
    }
    return best;
}

const struct balancer_ops balancer_engine_load_ops = {
    .name = "engine_load",
    .create = el_create,
    .choose = el_choose,
    .observe = NULL, /* the engines' metrics and health hold all it reads */
    .destroy = balancer_stateless_destroy,
};
