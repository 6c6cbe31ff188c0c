/*
 * round_robin — nginx's smooth weighted round-robin: each pick adds every
 * weight to its candidate's position, takes the highest and moves it back by
 * the total, so weights 5,1,1 give a a b a c a a (spread, not bunched).
 * Candidates not eligible this time keep their position.
 *
 * Owns the positions, shared by every worker thread, and the lock over them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "route/balancer_int.h"

struct round_robin {
    struct balancer base;
    pthread_mutex_t lock;
    size_t n; /* the candidate count the positions are for; another count resets them */
    int64_t current[BALANCER_MAX_CANDIDATES];
};

static struct balancer *round_robin_create(const struct balancer_config *bc)
{
    struct round_robin *rr = calloc(1, sizeof *rr);
    if (!rr)
        return NULL;
    rr->base.ops = &balancer_round_robin_ops;
    rr->n = bc->ndeps;
    pthread_mutex_init(&rr->lock, NULL);
    return &rr->base;
}

static size_t round_robin_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                                 const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    struct round_robin *rr = (struct round_robin *)b;
    pthread_mutex_lock(&rr->lock);
    if (rr->n != n) {
        memset(rr->current, 0, sizeof rr->current);
        rr->n = n;
    }
    int64_t total = 0;
    size_t best = 0;
    for (size_t k = 0; k < m; k++) {
        int64_t w = (int64_t)balancer_weight_of(&c[set[k]]);
        rr->current[set[k]] += w;
        total += w;
        if (rr->current[set[k]] > rr->current[set[best]])
            best = k;
    }
    rr->current[set[best]] -= total;
    pthread_mutex_unlock(&rr->lock);
    return best;
}

static void round_robin_destroy(struct balancer *b)
{
    struct round_robin *rr = (struct round_robin *)b;
    pthread_mutex_destroy(&rr->lock);
    free(rr);
}

const struct balancer_ops balancer_round_robin_ops = {
    .name = "round_robin",
    .create = round_robin_create,
    .choose = round_robin_choose,
    .observe = NULL, /* the order is the order; a failing one is left out by health */
    .destroy = round_robin_destroy,
};
