/*
 * engine_load — the lowest estimated wait, from what each engine's own
 * metrics say (route/engine.h: its queue, plus the requests this gateway
 * sent it since the scrape, times its KV pressure), per unit of weight.
 * Between scrapes the gateway's own in-flight moves the estimate at once, so
 * no herd follows a scrape; a stale scrape fades into the plain in-flight
 * view. Ties (an idle pool) go to the smaller running batch, then at random.
 *
 * State: per candidate, the scrape it last saw and its in-flight count then
 * (the base "since the scrape" counts from), atomics read and written by
 * every worker without a lock: two workers seeing a new scrape at once both
 * store nearly the same base.
 */
#include <stdlib.h>

#include "route/balancer_int.h"
#include "route/engine.h"

struct engine_load {
    struct balancer base;
    size_t n;
    atomic_ullong seen_seq[BALANCER_MAX_CANDIDATES];
    atomic_uint inflight_base[BALANCER_MAX_CANDIDATES];
};

static struct balancer *el_create(const struct balancer_config *bc)
{
    struct engine_load *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.ops = &balancer_engine_load_ops;
    s->n = bc->ndeps;
    return &s->base;
}

static size_t el_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                        const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    struct engine_load *s = (struct engine_load *)b;
    uint64_t r = rand;
    size_t best = 0, ties = 0;
    double best_est = 0;
    unsigned best_running = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = set[k];
        struct engine_state *st = b->engines[i];
        uint32_t inflight = health_inflight(c[i].h);
        unsigned running = 0;
        if (st) {
            unsigned long long seq = atomic_load(&st->seq);
            if (atomic_load(&s->seen_seq[i]) != seq) {
                atomic_store(&s->seen_seq[i], seq);
                atomic_store(&s->inflight_base[i], inflight);
            }
            running = atomic_load(&st->running);
        }
        double est = engine_estimate(st, inflight, atomic_load(&s->inflight_base[i]), now_ms) /
                     (double)balancer_weight_of(&c[i]);
        if (k == 0 || est < best_est || (est == best_est && running < best_running)) {
            best = k;
            best_est = est;
            best_running = running;
            ties = 1;
        } else if (est == best_est && running == best_running) {
            /* reservoir sampling: each tie equally likely */
            if (balancer_next_rand(&r) % ++ties == 0) best = k;
        }
    }
    return best;
}

static void el_destroy(struct balancer *b)
{
    free(b);
}

const struct balancer_ops balancer_engine_load_ops = {
    .name = "engine_load",
    .create = el_create,
    .choose = el_choose,
    .observe = NULL, /* the engines' metrics and health hold all it reads */
    .destroy = el_destroy,
};
