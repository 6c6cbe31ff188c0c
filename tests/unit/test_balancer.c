#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "balancer.h"

#define T0 1000000u
#define NMAX 8

struct pool {
    struct health h[NMAX];
    struct balancer_candidate c[NMAX];
    size_t n;
};

static void pool_init(struct pool *p, size_t n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    for (size_t i = 0; i < n; i++) {
        health_init(&p->h[i], NULL);
        p->c[i] = (struct balancer_candidate){.h = &p->h[i], .tier = 0, .weight = 1};
    }
}

static void pool_free(struct pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        health_destroy(&p->h[i]);
}

/* Gives deployment i a TTFT estimate of exactly ms at T0. */
static void set_latency(struct pool *p, size_t i, uint32_t ms)
{
    health_release(&p->h[i], NULL, T0, HEALTH_OK, ms, 0, 0);
}

static void trip(struct health *h)
{
    for (int i = 0; i < 5; i++)
        health_release(h, NULL, T0, HEALTH_SERVER_ERROR, 0, 0, 1ull << 63);
    assert_false(health_eligible(h, T0, NULL));
}

/* A fixed pseudo-random sequence, so the statistical tests are reproducible. */
static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void count_picks(struct pool *p, enum balancer_strategy s, int rounds, unsigned *counts)
{
    uint64_t seed = 42;
    memset(counts, 0, sizeof(unsigned) * NMAX);
    for (int i = 0; i < rounds; i++) {
        int k = balancer_pick(s, p->c, p->n, T0, rng(&seed), NULL);
        assert_true(k >= 0 && (size_t)k < p->n);
        counts[k]++;
    }
}

static void assert_between(unsigned v, unsigned lo, unsigned hi)
{
    if (v < lo || v > hi)
        fail_msg("%u not in [%u, %u]", v, lo, hi);
}

static void test_names(void **state)
{
    static const char *names[] = {"p2c", "round_robin", "least_inflight", "latency_weight", "cost"};
    for (int i = 0; i < BALANCER__COUNT; i++) {
        enum balancer_strategy s;
        assert_int_equal(balancer_strategy_parse(names[i], &s), 0);
        assert_int_equal(s, i);
        assert_string_equal(balancer_strategy_name(s), names[i]);
        assert_string_equal(balancer_ops_of(s)->name, names[i]);
        assert_non_null(balancer_ops_of(s)->choose);
    }
    enum balancer_strategy s = BALANCER_LEAST_INFLIGHT;
    assert_int_equal(balancer_strategy_parse("P2C", &s), -EINVAL);
    assert_int_equal(balancer_strategy_parse("", &s), -EINVAL);
    assert_int_equal(s, BALANCER_LEAST_INFLIGHT);
    assert_null(balancer_ops_of(BALANCER__COUNT));
    assert_string_equal(balancer_strategy_name(BALANCER__COUNT), "?");
}

static void test_empty_and_excluded(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    assert_int_equal(balancer_pick(BALANCER_P2C, p.c, 0, T0, 1, NULL), -1);
    p.c[0].excluded = p.c[2].excluded = true;
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, r, NULL), 1);
    p.c[1].excluded = true;
    for (int s = 0; s < BALANCER__COUNT; s++)
        assert_int_equal(balancer_pick((enum balancer_strategy)s, p.c, p.n, T0, 7, NULL), -1);
    pool_free(&p);
}

static void test_p2c_prefers_lower_score(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    set_latency(&p, 0, 1000);
    set_latency(&p, 1, 2000);
    set_latency(&p, 2, 3000);
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_P2C, 10000, counts);
    /* the best wins whenever drawn (2 of 3 pairs), the worst never */
    assert_between(counts[0], 6400, 6950);
    assert_between(counts[1], 3050, 3600);
    assert_int_equal(counts[2], 0);
    pool_free(&p);
}

static void test_p2c_inflight_and_weight(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    set_latency(&p, 0, 1000);
    set_latency(&p, 1, 1000);
    struct health_ticket t[2];
    assert_true(health_acquire(&p.h[0], T0, &t[0]));
    for (uint64_t r = 0; r < 100; r++)
        assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, r, NULL), 1);
    /* 1000·2/3 < 1000·1/1: weight 3 outweighs one request in flight */
    p.c[0].weight = 3;
    for (uint64_t r = 0; r < 100; r++)
        assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, r, NULL), 0);
    health_abandon(&p.h[0], &t[0]);
    /* a slower one with a much larger weight still wins: 4000/8 < 1000/1 */
    p.c[0].weight = 1;
    set_latency(&p, 1, 4000);
    p.c[1].weight = 8;
    for (uint64_t r = 0; r < 100; r++)
        assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, r, NULL), 1);
    pool_free(&p);
}

static void test_p2c_equal_spreads(void **state)
{
    struct pool p;
    pool_init(&p, 4);
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_P2C, 10000, counts);
    for (int i = 0; i < 4; i++)
        assert_between(counts[i], 2200, 2800);
    pool_free(&p);
}

static void test_tiers(void **state)
{
    struct pool p;
    pool_init(&p, 4);
    p.c[0].tier = 0;
    p.c[1].tier = 0;
    p.c[2].tier = 1;
    p.c[3].tier = 2;
    for (int s = 0; s < BALANCER__COUNT; s++) {
        struct balancer_state st;
        balancer_state_init(&st);
        for (uint64_t r = 0; r < 200; r++) {
            int k = balancer_pick((enum balancer_strategy)s, p.c, p.n, T0, r * 7919, &st);
            assert_true(k == 0 || k == 1);
        }
    }
    /* one of tier 0 tried already, the other open: tier 1 */
    p.c[0].excluded = true;
    trip(&p.h[1]);
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, r, NULL), 2);
    /* tier 1 cooling down: tier 2 */
    health_cooldown(&p.h[2], T0, 1000);
    assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, 3, NULL), 3);
    /* the cooldown over, back to tier 1 */
    assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0 + 1000, 3, NULL), 2);
    /* tier 0 back: the open breaker's time is over, its trial goes first */
    assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0 + 5000, 3, NULL), 1);
    pool_free(&p);

    /* tier numbers need not be dense nor sorted in the list */
    pool_init(&p, 3);
    p.c[0].tier = 50;
    p.c[1].tier = 7;
    p.c[2].tier = 50;
    assert_int_equal(balancer_pick(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, 1, NULL), 1);
    health_set_admin(&p.h[1], HEALTH_ADMIN_DRAINING);
    int k = balancer_pick(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, 1, NULL);
    assert_true(k == 0 || k == 2);
    pool_free(&p);
}

static void test_saturated_goes_up_a_tier(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    struct health_params hp;
    health_params_default(&hp);
    hp.max_concurrency = 1;
    health_set_params(&p.h[0], &hp);
    p.c[1].tier = 1;
    struct health_ticket t;
    assert_int_equal(balancer_acquire(BALANCER_P2C, p.c, p.n, T0, 1, NULL, &t), 0);
    assert_true(t.held);
    assert_int_equal(health_inflight(&p.h[0]), 1);
    struct health_ticket t2;
    assert_int_equal(balancer_acquire(BALANCER_P2C, p.c, p.n, T0, 1, NULL, &t2), 1);
    assert_int_equal(health_inflight(&p.h[1]), 1);
    health_release(&p.h[0], &t, T0, HEALTH_OK, 0, 0, 0);
    assert_int_equal(balancer_pick(BALANCER_P2C, p.c, p.n, T0, 1, NULL), 0);
    assert_false(p.c[0].excluded || p.c[1].excluded);
    pool_free(&p);
}

static void test_round_robin_sequence(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    p.c[0].weight = 5;
    p.c[1].weight = 1;
    p.c[2].weight = 1;
    struct balancer_state st;
    balancer_state_init(&st);
    char seq[22] = {0};
    for (int i = 0; i < 21; i++)
        seq[i] = (char)('a' + balancer_pick(BALANCER_ROUND_ROBIN, p.c, p.n, T0, 0, &st));
    assert_string_equal(seq, "aabacaaaabacaaaabacaa");
    pool_free(&p);
}

static void test_round_robin_skips_ineligible(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    struct balancer_state st;
    balancer_state_init(&st);
    char seq[7] = {0};
    for (int i = 0; i < 3; i++)
        seq[i] = (char)('a' + balancer_pick(BALANCER_ROUND_ROBIN, p.c, p.n, T0, 0, &st));
    health_set_admin(&p.h[1], HEALTH_ADMIN_DISABLED);
    for (int i = 3; i < 6; i++)
        seq[i] = (char)('a' + balancer_pick(BALANCER_ROUND_ROBIN, p.c, p.n, T0, 0, &st));
    assert_string_equal(seq, "abcaca");
    /* another candidate count (a reload) starts the positions over */
    assert_int_equal(balancer_pick(BALANCER_ROUND_ROBIN, p.c, 2, T0, 0, &st), 0);
    assert_int_equal(st.n, 2);
    pool_free(&p);
}

static void test_round_robin_without_state(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    p.c[0].weight = 3;
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_ROUND_ROBIN, 8000, counts);
    assert_between(counts[0], 5700, 6300); /* weighted random, 3:1 */
    pool_free(&p);
}

static void test_least_inflight(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    struct health_ticket t[4];
    assert_true(health_acquire(&p.h[0], T0, &t[0]));
    assert_true(health_acquire(&p.h[0], T0, &t[1]));
    assert_true(health_acquire(&p.h[2], T0, &t[2]));
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(balancer_pick(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, r, NULL), 1);
    /* by weight: (2+1)/4 < (0+1)/1 */
    p.c[0].weight = 4;
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(balancer_pick(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, r, NULL), 0);
    health_abandon(&p.h[0], &t[0]);
    health_abandon(&p.h[0], &t[1]);
    health_abandon(&p.h[2], &t[2]);
    /* all equal: ties broken at random, evenly */
    p.c[0].weight = 1;
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_LEAST_INFLIGHT, 9000, counts);
    for (int i = 0; i < 3; i++)
        assert_between(counts[i], 2700, 3300);
    pool_free(&p);
}

static void test_latency_weight_formula(void **state)
{
    assert_int_equal(balancer_latency_weight(0), 100);
    assert_int_equal(balancer_latency_weight(150), 100);
    assert_int_equal(balancer_latency_weight(200), 100);
    assert_int_equal(balancer_latency_weight(250), 50);
    assert_int_equal(balancer_latency_weight(260), 40);
    assert_int_equal(balancer_latency_weight(298), 2);
    assert_int_equal(balancer_latency_weight(299), 1);
    assert_int_equal(balancer_latency_weight(299.5), 1);
    assert_int_equal(balancer_latency_weight(300), 1); /* clamped, not 0 */
    assert_int_equal(balancer_latency_weight(30000), 1);
}

static void test_latency_weight_distribution(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    set_latency(&p, 0, 150);  /* 100 */
    set_latency(&p, 1, 250);  /* 50 */
    set_latency(&p, 2, 5000); /* 1 */
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_LATENCY_WEIGHT, 15100, counts);
    /* expected 10000 : 5000 : 100 */
    assert_between(counts[0], 9700, 10300);
    assert_between(counts[1], 4700, 5300);
    assert_between(counts[2], 50, 160);
    /* the configured weight multiplies it */
    p.c[2].weight = 150;
    count_picks(&p, BALANCER_LATENCY_WEIGHT, 30000, counts);
    assert_between(counts[0], 9600, 10400);
    assert_between(counts[2], 14500, 15500);
    pool_free(&p);
}

static void test_half_open_trial_slot(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    trip(&p.h[0]);
    p.c[1].tier = 1;
    struct health_ticket t1, t2;
    assert_int_equal(balancer_acquire(BALANCER_P2C, p.c, p.n, T0, 5, NULL, &t1), 1);
    /* open time over: the one trial goes to tier 0, the next request to tier 1 */
    assert_int_equal(balancer_acquire(BALANCER_P2C, p.c, p.n, T0 + 5000, 5, NULL, &t1), 0);
    assert_true(t1.trial);
    assert_int_equal(balancer_acquire(BALANCER_P2C, p.c, p.n, T0 + 5000, 5, NULL, &t2), 1);
    assert_false(t2.trial);
    pool_free(&p);
}

/* cost: the cheapest of those meeting the TTFT target; the fastest when none does. */
static void test_cost(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    set_latency(&p, 0, 400); /* cheapest, but slow */
    set_latency(&p, 1, 100); /* middle price, fast enough */
    set_latency(&p, 2, 50);  /* dearest, fastest */
    p.c[0].cost = 0;         /* self-hosted */
    p.c[1].cost = 2.5;
    p.c[2].cost = 10;
    for (size_t i = 0; i < 3; i++)
        p.c[i].latency_target_ms = 200;
    for (uint64_t r = 1; r < 50; r++)
        assert_int_equal(balancer_pick(BALANCER_COST, p.c, 3, T0, r, NULL), 1);
    /* a looser target lets the free one qualify */
    for (size_t i = 0; i < 3; i++)
        p.c[i].latency_target_ms = 500;
    assert_int_equal(balancer_pick(BALANCER_COST, p.c, 3, T0, 7, NULL), 0);
    /* nobody meets a very tight target: the choice falls back to load and latency (P2C) */
    for (size_t i = 0; i < 3; i++)
        p.c[i].latency_target_ms = 10;
    unsigned counts[3] = {0};
    for (uint64_t r = 1; r < 2000; r++)
        counts[balancer_pick(BALANCER_COST, p.c, 3, T0, r * 0x9e3779b97f4a7c15ull, NULL)]++;
    assert_true(counts[2] > counts[0]);
    /* the name parses */
    enum balancer_strategy s;
    assert_int_equal(balancer_strategy_parse("cost", &s), 0);
    assert_int_equal(s, BALANCER_COST);
    pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_empty_and_excluded),
        cmocka_unit_test(test_p2c_prefers_lower_score),
        cmocka_unit_test(test_p2c_inflight_and_weight),
        cmocka_unit_test(test_p2c_equal_spreads),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_saturated_goes_up_a_tier),
        cmocka_unit_test(test_round_robin_sequence),
        cmocka_unit_test(test_round_robin_skips_ineligible),
        cmocka_unit_test(test_round_robin_without_state),
        cmocka_unit_test(test_least_inflight),
        cmocka_unit_test(test_latency_weight_formula),
        cmocka_unit_test(test_latency_weight_distribution),
        cmocka_unit_test(test_half_open_trial_slot),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
