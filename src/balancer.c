#include "balancer.h"

#include <errno.h>
#include <string.h>

/* splitmix64: turns the caller's one random value into as many as needed. */
static uint64_t next_rand(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t weight_of(const struct balancer_candidate *c)
{
    return c->weight ? c->weight : 1;
}

/* Weighted random over set by w[] (each >= 1). */
static size_t weighted_random(const uint64_t *w, size_t m, uint64_t *r)
{
    uint64_t total = 0;
    for (size_t k = 0; k < m; k++)
        total += w[k];
    uint64_t x = next_rand(r) % total;
    for (size_t k = 0; k < m; k++) {
        if (x < w[k])
            return k;
        x -= w[k];
    }
    return m - 1;
}

/* ---- strategies --------------------------------------------------------------- */

/*
 * Power of two choices: comparing two random candidates instead of all of them
 * avoids the herd that "always the best" causes when every worker sees the
 * same stale numbers, yet nearly never picks a bad one (Mitzenmacher).
 */
static size_t choose_p2c(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                         uint64_t now, uint64_t rand, struct balancer_state *st)
{
    if (m == 1)
        return 0;
    uint64_t r = rand;
    size_t a = (size_t)(next_rand(&r) % m);
    size_t b = (size_t)(next_rand(&r) % (m - 1));
    if (b >= a)
        b++;
    /* score_a / weight_a <= score_b / weight_b, without dividing */
    double sa = health_score(c[set[a]].h, now) * (double)weight_of(&c[set[b]]);
    double sb = health_score(c[set[b]].h, now) * (double)weight_of(&c[set[a]]);
    return sa <= sb ? a : b;
}

/*
 * nginx's smooth weighted round-robin: each pick adds every weight to its
 * candidate's position, takes the highest and moves it back by the total.
 * Candidates not eligible this time keep their position.
 */
static size_t choose_round_robin(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                                 uint64_t now, uint64_t rand, struct balancer_state *st)
{
    if (!st) {
        uint64_t w[BALANCER_MAX_CANDIDATES];
        for (size_t k = 0; k < m; k++)
            w[k] = weight_of(&c[set[k]]);
        uint64_t r = rand;
        return weighted_random(w, m, &r);
    }
    int64_t total = 0;
    size_t best = 0;
    for (size_t k = 0; k < m; k++) {
        int64_t w = (int64_t)weight_of(&c[set[k]]);
        st->current[set[k]] += w;
        total += w;
        if (st->current[set[k]] > st->current[set[best]])
            best = k;
    }
    st->current[set[best]] -= total;
    return best;
}

static size_t choose_least_inflight(const struct balancer_candidate *c, const uint16_t *set,
                                    size_t m, uint64_t now, uint64_t rand,
                                    struct balancer_state *st)
{
    uint64_t r = rand;
    size_t best = 0, ties = 1;
    uint64_t best_load = health_inflight(c[set[0]].h) + 1, best_w = weight_of(&c[set[0]]);
    for (size_t k = 1; k < m; k++) {
        uint64_t load = health_inflight(c[set[k]].h) + 1, w = weight_of(&c[set[k]]);
        /* load / w against best_load / best_w */
        uint64_t lhs = load * best_w, rhs = best_load * w;
        if (lhs < rhs) {
            best = k;
            best_load = load;
            best_w = w;
            ties = 1;
        } else if (lhs == rhs && next_rand(&r) % ++ties == 0) {
            best = k; /* each of the tied ones with probability 1/ties */
            best_load = load;
            best_w = w;
        }
    }
    return best;
}

uint32_t balancer_latency_weight(double latency_ms)
{
    double over = latency_ms > 200 ? latency_ms - 200 : 0;
    return over >= 99 ? 1 : (uint32_t)(100 - over);
}

static size_t choose_latency_weight(const struct balancer_candidate *c, const uint16_t *set,
                                    size_t m, uint64_t now, uint64_t rand,
                                    struct balancer_state *st)
{
    uint64_t w[BALANCER_MAX_CANDIDATES];
    for (size_t k = 0; k < m; k++)
        w[k] = balancer_latency_weight(health_latency_ms(c[set[k]].h, now)) * weight_of(&c[set[k]]);
    uint64_t r = rand;
    return weighted_random(w, m, &r);
}

/*
 * Cost-aware: among the candidates whose TTFT estimate meets the target, the
 * cheapest now (self-hosted, with no price, first; off-peak windows counted by
 * the caller); equal prices go to the lower load score. When none meets the
 * target, the fastest wins: P2C over all.
 */
static size_t choose_cost(const struct balancer_candidate *c, const uint16_t *set, size_t m,
                          uint64_t now, uint64_t rand, struct balancer_state *st)
{
    size_t best = m;
    for (size_t k = 0; k < m; k++) {
        const struct balancer_candidate *x = &c[set[k]];
        if (x->latency_target_ms > 0 && health_latency_ms(x->h, now) > x->latency_target_ms)
            continue;
        if (best == m || x->cost < c[set[best]].cost ||
            (x->cost == c[set[best]].cost &&
             health_score(x->h, now) * weight_of(&c[set[best]]) <
                 health_score(c[set[best]].h, now) * weight_of(x)))
            best = k;
    }
    return best < m ? best : choose_p2c(c, set, m, now, rand, st);
}

static const struct balancer_ops strategies[BALANCER__COUNT] = {
    [BALANCER_COST] = {"cost", choose_cost},
    [BALANCER_P2C] = {"p2c", choose_p2c},
    [BALANCER_ROUND_ROBIN] = {"round_robin", choose_round_robin},
    [BALANCER_LEAST_INFLIGHT] = {"least_inflight", choose_least_inflight},
    [BALANCER_LATENCY_WEIGHT] = {"latency_weight", choose_latency_weight},
};

/* ---- public ------------------------------------------------------------------- */

void balancer_state_init(struct balancer_state *st)
{
    memset(st, 0, sizeof *st);
}

const struct balancer_ops *balancer_ops_of(enum balancer_strategy s)
{
    return (unsigned)s < BALANCER__COUNT ? &strategies[s] : NULL;
}

const char *balancer_strategy_name(enum balancer_strategy s)
{
    return (unsigned)s < BALANCER__COUNT ? strategies[s].name : "?";
}

int balancer_strategy_parse(const char *s, enum balancer_strategy *out)
{
    for (unsigned i = 0; s && i < BALANCER__COUNT; i++) {
        if (strcmp(s, strategies[i].name) == 0) {
            *out = (enum balancer_strategy)i;
            return 0;
        }
    }
    return -EINVAL;
}

int balancer_pick(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                  uint64_t now_ms, uint64_t rand, struct balancer_state *st)
{
    const struct balancer_ops *ops = balancer_ops_of(s);
    if (!ops)
        ops = &strategies[BALANCER_P2C];
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
    if (st && st->n != n) {
        balancer_state_init(st);
        st->n = n;
    }
    size_t k = ops->choose(c, set, m, now_ms, rand, st);
    return set[k < m ? k : 0];
}

int balancer_acquire(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                     uint64_t now_ms, uint64_t rand, struct balancer_state *st,
                     struct health_ticket *ticket)
{
    if (n > BALANCER_MAX_CANDIDATES)
        n = BALANCER_MAX_CANDIDATES;
    bool lost[BALANCER_MAX_CANDIDATES] = {false};
    uint64_t r = rand;
    int got = -1;
    for (size_t tries = 0; tries < n; tries++) {
        int i = balancer_pick(s, c, n, now_ms, tries ? next_rand(&r) : rand, st);
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
