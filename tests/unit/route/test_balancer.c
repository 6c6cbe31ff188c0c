#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "route/balancer.h"
#include "config/config.h"

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

static struct balancer *make(enum balancer_strategy s, size_t n)
{
    struct balancer *b = balancer_create(s, &(struct balancer_config){.ndeps = n});
    assert_non_null(b);
    return b;
}

/* One pick from a new instance (for the strategies whose choice has no memory). */
static int pick_once(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                     uint64_t now, uint64_t r)
{
    struct balancer *b = make(s, n);
    int k = balancer_pick(b, c, n, now, r);
    balancer_destroy(b);
    return k;
}

static int acquire_once(enum balancer_strategy s, struct balancer_candidate *c, size_t n,
                        uint64_t now, uint64_t r, struct health_ticket *t)
{
    struct balancer *b = make(s, n);
    int k = balancer_acquire(b, c, n, now, r, t);
    balancer_destroy(b);
    return k;
}

/* An attempt on i ended: told to health and to the strategy, as the proxy does. */
static void outcome(struct pool *p, struct balancer *b, size_t i, struct health_ticket *t,
                    uint64_t now, enum health_class cls, uint32_t ttft_ms)
{
    health_release(&p->h[i], t, now, cls, cls == HEALTH_OK ? ttft_ms : 0,
                   cls == HEALTH_OK ? 0 : 30000, 0);
    struct balancer_outcome o = {.cls = cls, .ttft_ms = cls == HEALTH_OK ? ttft_ms : 0,
                                 .usage = {-1, -1, -1, -1}};
    balancer_observe(b, i, &o);
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
    struct balancer *b = make(s, p->n);
    for (int i = 0; i < rounds; i++) {
        int k = balancer_pick(b, p->c, p->n, T0, rng(&seed));
        assert_true(k >= 0 && (size_t)k < p->n);
        counts[k]++;
    }
    balancer_destroy(b);
}

static void assert_between(unsigned v, unsigned lo, unsigned hi)
{
    if (v < lo || v > hi)
        fail_msg("%u not in [%u, %u]", v, lo, hi);
}

static void test_names(void **state)
{
    static const char *names[] = {"p2c",  "round_robin", "least_inflight", "latency_weight",
                                  "cost", "engine_load"};
    for (int i = 0; i < BALANCER__COUNT; i++) {
        enum balancer_strategy s;
        assert_int_equal(balancer_strategy_parse(names[i], &s), 0);
        assert_int_equal(s, i);
        assert_string_equal(balancer_strategy_name(s), names[i]);
        assert_string_equal(balancer_ops_of(s)->name, names[i]);
        assert_non_null(balancer_ops_of(s)->create);
        assert_non_null(balancer_ops_of(s)->choose);
        assert_non_null(balancer_ops_of(s)->destroy);
        struct balancer *b = make(s, 3);
        assert_string_equal(balancer_name(b), names[i]);
        balancer_destroy(b);
    }
    enum balancer_strategy s = BALANCER_LEAST_INFLIGHT;
    assert_int_equal(balancer_strategy_parse("P2C", &s), -EINVAL);
    assert_int_equal(balancer_strategy_parse("", &s), -EINVAL);
    assert_int_equal(s, BALANCER_LEAST_INFLIGHT);
    assert_null(balancer_ops_of(BALANCER__COUNT));
    assert_string_equal(balancer_strategy_name(BALANCER__COUNT), "?");
    /* an unknown strategy is created as the default */
    struct balancer *b = make(BALANCER__COUNT, 3);
    assert_string_equal(balancer_name(b), "p2c");
    balancer_destroy(b);
    balancer_destroy(NULL);
}

static void test_empty_and_excluded(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    assert_int_equal(pick_once(BALANCER_P2C, p.c, 0, T0, 1), -1);
    p.c[0].excluded = p.c[2].excluded = true;
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, r), 1);
    p.c[1].excluded = true;
    for (int s = 0; s < BALANCER__COUNT; s++)
        assert_int_equal(pick_once((enum balancer_strategy)s, p.c, p.n, T0, 7), -1);
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
        assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, r), 1);
    /* 1000·2/3 < 1000·1/1: weight 3 outweighs one request in flight */
    p.c[0].weight = 3;
    for (uint64_t r = 0; r < 100; r++)
        assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, r), 0);
    health_abandon(&p.h[0], &t[0]);
    /* a slower one with a much larger weight still wins: 4000/8 < 1000/1 */
    p.c[0].weight = 1;
    set_latency(&p, 1, 4000);
    p.c[1].weight = 8;
    for (uint64_t r = 0; r < 100; r++)
        assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, r), 1);
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
        struct balancer *b = make((enum balancer_strategy)s, p.n);
        for (uint64_t r = 0; r < 200; r++) {
            int k = balancer_pick(b, p.c, p.n, T0, r * 7919);
            assert_true(k == 0 || k == 1);
        }
        balancer_destroy(b);
    }
    /* one of tier 0 tried already, the other open: tier 1 */
    p.c[0].excluded = true;
    trip(&p.h[1]);
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, r), 2);
    /* tier 1 cooling down: tier 2 */
    health_cooldown(&p.h[2], T0, 1000);
    assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, 3), 3);
    /* the cooldown over, back to tier 1 */
    assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0 + 1000, 3), 2);
    /* tier 0 back: the open breaker's time is over, its trial goes first */
    assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0 + 5000, 3), 1);
    pool_free(&p);

    /* tier numbers need not be dense nor sorted in the list */
    pool_init(&p, 3);
    p.c[0].tier = 50;
    p.c[1].tier = 7;
    p.c[2].tier = 50;
    assert_int_equal(pick_once(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, 1), 1);
    health_set_admin(&p.h[1], HEALTH_ADMIN_DRAINING);
    int k = pick_once(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, 1);
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
    assert_int_equal(acquire_once(BALANCER_P2C, p.c, p.n, T0, 1, &t), 0);
    assert_true(t.held);
    assert_int_equal(health_inflight(&p.h[0]), 1);
    struct health_ticket t2;
    assert_int_equal(acquire_once(BALANCER_P2C, p.c, p.n, T0, 1, &t2), 1);
    assert_int_equal(health_inflight(&p.h[1]), 1);
    health_release(&p.h[0], &t, T0, HEALTH_OK, 0, 0, 0);
    assert_int_equal(pick_once(BALANCER_P2C, p.c, p.n, T0, 1), 0);
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
    struct balancer *b = make(BALANCER_ROUND_ROBIN, p.n);
    char seq[22] = {0};
    for (int i = 0; i < 21; i++)
        seq[i] = (char)('a' + balancer_pick(b, p.c, p.n, T0, 0));
    assert_string_equal(seq, "aabacaaaabacaaaabacaa");
    balancer_destroy(b);
    pool_free(&p);
}

static void test_round_robin_skips_ineligible(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    struct balancer *b = make(BALANCER_ROUND_ROBIN, p.n);
    char seq[7] = {0};
    for (int i = 0; i < 3; i++)
        seq[i] = (char)('a' + balancer_pick(b, p.c, p.n, T0, 0));
    health_set_admin(&p.h[1], HEALTH_ADMIN_DISABLED);
    for (int i = 3; i < 6; i++)
        seq[i] = (char)('a' + balancer_pick(b, p.c, p.n, T0, 0));
    assert_string_equal(seq, "abcaca");
    /* another candidate count (a reload) starts the positions over: from where the three
       left them (-1, 0, 1) the two would go b a b a; started over, a b a b */
    health_set_admin(&p.h[1], HEALTH_ADMIN_ACTIVE);
    char two[5] = {0};
    for (int i = 0; i < 4; i++)
        two[i] = (char)('a' + balancer_pick(b, p.c, 2, T0, 0));
    assert_string_equal(two, "abab");
    balancer_destroy(b);
    pool_free(&p);
}

static void test_round_robin_share(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    p.c[0].weight = 3;
    unsigned counts[NMAX];
    count_picks(&p, BALANCER_ROUND_ROBIN, 8000, counts);
    assert_between(counts[0], 5700, 6300); /* 3:1 */
    assert_int_equal(counts[0], 6000);      /* and exactly so: the positions are kept */
    pool_free(&p);
}

/* A deployment back from an outage ramps its share under every strategy (slow start). */
static void test_slow_start_share(void **state)
{
    static const enum balancer_strategy all[] = {BALANCER_P2C, BALANCER_ROUND_ROBIN,
                                                 BALANCER_LEAST_INFLIGHT, BALANCER_LATENCY_WEIGHT};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        struct pool p;
        pool_init(&p, 2);
        health_recovered(&p.h[1], T0); /* a tenth of its weight now, all of it 30 s later */
        uint64_t times[2] = {T0, T0 + 30000};
        for (int w = 0; w < 2; w++) {
            uint64_t seed = 7;
            unsigned counts[2] = {0, 0};
            struct balancer *b = make(all[k], 2);
            for (int i = 0; i < 1100; i++)
                counts[balancer_pick(b, p.c, 2, times[w], rng(&seed))]++;
            balancer_destroy(b);
            if (w == 0) {
                assert_true(counts[1] <= 1100 / 8); /* ramping: well under half */
                if (all[k] == BALANCER_ROUND_ROBIN)
                    assert_int_equal(counts[1], 100); /* 100 : 10 exactly */
            } else {
                assert_between(counts[1], 400, 700); /* the ramp is over: even again */
            }
        }
        pool_free(&p);
    }
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
        assert_int_equal(pick_once(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, r), 1);
    /* by weight: (2+1)/4 < (0+1)/1 */
    p.c[0].weight = 4;
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(pick_once(BALANCER_LEAST_INFLIGHT, p.c, p.n, T0, r), 0);
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
    assert_int_equal(acquire_once(BALANCER_P2C, p.c, p.n, T0, 5, &t1), 1);
    /* open time over: the one trial goes to tier 0, the next request to tier 1 */
    assert_int_equal(acquire_once(BALANCER_P2C, p.c, p.n, T0 + 5000, 5, &t1), 0);
    assert_true(t1.trial);
    assert_int_equal(acquire_once(BALANCER_P2C, p.c, p.n, T0 + 5000, 5, &t2), 1);
    assert_false(t2.trial);
    pool_free(&p);
}

/* ---- the cost strategy: created from a config with prices ---------------------------- */

#define COST_DEPLOYMENTS                                                                           \
    "    deployments:\n"                                                                           \
    "      - {provider: local, model: llama}\n"                                                    \
    "      - {provider: cloud-a, model: model-a}\n"                                                \
    "      - {provider: cloud-b, model: model-b}\n"

static const char cost_yaml[] =
    "providers:\n"
    "  local: {base_url: \"http://127.0.0.1:8000/v1\"}\n"
    "  cloud-a: {base_url: \"https://a.example.com/v1\"}\n"
    "  cloud-b: {base_url: \"https://b.example.com/v1\"}\n"
    "models:\n"
    "  target-200:\n" COST_DEPLOYMENTS "    resilience: {strategy: cost, ttft_target: 200ms}\n"
    "  target-500:\n" COST_DEPLOYMENTS "    resilience: {strategy: cost, ttft_target: 500ms}\n"
    "  target-10:\n" COST_DEPLOYMENTS "    resilience: {strategy: cost, ttft_target: 10ms}\n"
    "  target-auto:\n" COST_DEPLOYMENTS "    timeouts: {first_token: 1s}\n"
    "    resilience: {strategy: cost}\n"
    "prices:\n"
    "  cloud-a:\n"
    "    model-a: {input: 0.5, output: 2}\n" /* 2.5 */
    "  cloud-b:\n"
    "    model-b:\n"
    "      input: 2\n" /* 10, but 0.5 from 01:00 to 04:00 UTC */
    "      output: 8\n"
    "      windows:\n"
    "        - {from: \"01:00\", to: \"04:00\", input: 0.1, output: 0.4}\n";

/* 2025-03-03 at HH:MM UTC, in unix ms: the cost strategy's wall clock in these tests. */
static int64_t wall_now;
static int64_t utc(int hh, int mm)
{
    return (1740960000ll + hh * 3600ll + mm * 60ll) * 1000;
}
static int64_t test_wall_clock(void)
{
    return wall_now;
}

static struct config *cost_config(void)
{
    struct config *cfg = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", cost_yaml, strlen(cost_yaml), &cfg, &errs);
    if (rc != 0)
        fail_msg("%s", errs.text.data ? errs.text.data : "?");
    config_errors_free(&errs);
    return cfg;
}

static struct balancer *make_cost(const struct config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->nmodels; i++) {
        if (strcmp(cfg->models[i].name, model) != 0)
            continue;
        struct balancer_config bc = {.cfg = cfg,
                                     .model = &cfg->models[i],
                                     .ndeps = cfg->models[i].ndeployments,
                                     .wall_clock_ms = test_wall_clock};
        struct balancer *b = balancer_create(BALANCER_COST, &bc);
        assert_non_null(b);
        assert_string_equal(balancer_name(b), "cost");
        return b;
    }
    fail_msg("no model %s", model);
    return NULL;
}

/* cost: the cheapest of those meeting the TTFT target; the fastest when none does. */
static void test_cost(void **state)
{
    struct config *cfg = cost_config();
    wall_now = utc(12, 0);
    struct pool p;
    pool_init(&p, 3);
    set_latency(&p, 0, 400); /* self-hosted: free, but slow */
    set_latency(&p, 1, 100); /* 2.5, fast enough */
    set_latency(&p, 2, 50);  /* 10, fastest */
    struct balancer *b = make_cost(cfg, "target-200");
    for (uint64_t r = 1; r < 50; r++)
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), 1);
    balancer_destroy(b);
    /* a looser target lets the free one qualify */
    b = make_cost(cfg, "target-500");
    assert_int_equal(balancer_pick(b, p.c, 3, T0, 7), 0);
    balancer_destroy(b);
    /* no target given: half the first-token deadline (1 s), so 400 ms qualifies too */
    b = make_cost(cfg, "target-auto");
    assert_int_equal(balancer_pick(b, p.c, 3, T0, 7), 0);
    balancer_destroy(b);
    /* nobody meets a very tight target: the choice falls back to load and latency (P2C) */
    b = make_cost(cfg, "target-10");
    unsigned counts[3] = {0};
    for (uint64_t r = 1; r < 2000; r++)
        counts[balancer_pick(b, p.c, 3, T0, r * 0x9e3779b97f4a7c15ull)]++;
    assert_true(counts[2] > counts[0]);
    balancer_destroy(b);
    /* the name parses */
    enum balancer_strategy s;
    assert_int_equal(balancer_strategy_parse("cost", &s), 0);
    assert_int_equal(s, BALANCER_COST);
    pool_free(&p);
    config_unref(cfg);
}

/* cost, told outcomes: it moves off a deployment that misses the target, and with the
   off-peak window of another. */
static void test_cost_object(void **state)
{
    struct config *cfg = cost_config();
    wall_now = utc(12, 0);
    struct pool p;
    pool_init(&p, 3);
    struct balancer *b = make_cost(cfg, "target-200");
    for (size_t i = 0; i < 3; i++)
        outcome(&p, b, i, NULL, T0, HEALTH_OK, 100); /* all fast: the free one */
    for (uint64_t r = 0; r < 20; r++)
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), 0);
    /* the free one gets slow (a 300 ms first token): the next cheapest */
    outcome(&p, b, 0, NULL, T0, HEALTH_OK, 300);
    for (uint64_t r = 0; r < 20; r++)
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), 1);
    /* that one fails: its estimate takes the penalty and it misses the target too */
    outcome(&p, b, 1, NULL, T0, HEALTH_SERVER_ERROR, 0);
    assert_int_equal(balancer_pick(b, p.c, 3, T0, 3), 2);
    /* already tried by this request: none left that meets the target, P2C between 0 and 1,
       and 0 (300 ms) beats 1 (30 s) whichever pair is drawn */
    p.c[2].excluded = true;
    for (uint64_t r = 0; r < 20; r++)
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), 0);
    p.c[2].excluded = false;
    /* time passes, the estimates drift back towards the 1 s prior; 1 recovers with fast
       answers, and at 02:00 UTC 2 costs 0.5 against 1's 2.5 */
    uint64_t later = T0 + 600000;
    outcome(&p, b, 1, NULL, later, HEALTH_OK, 100);
    outcome(&p, b, 2, NULL, later, HEALTH_OK, 100);
    assert_int_equal(balancer_pick(b, p.c, 3, later, 5), 1);
    wall_now = utc(2, 0);
    assert_int_equal(balancer_pick(b, p.c, 3, later, 5), 2);
    balancer_destroy(b);
    pool_free(&p);
    config_unref(cfg);
}

/* ---- each strategy as an object: create, choose and observe, destroy ---------------- */

/* p2c: with two candidates the pair is both, so only a tie is left to the random value. */
static void test_p2c_object(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    struct balancer *b = make(BALANCER_P2C, 2);
    for (uint64_t r = 0; r < 16; r++) {
        uint64_t x = r;
        int tie = (int)(rng(&x) % 2); /* the first of the two drawn */
        assert_int_equal(balancer_pick(b, p.c, 2, T0, r), tie);
    }
    outcome(&p, b, 0, NULL, T0, HEALTH_OK, 200);
    outcome(&p, b, 1, NULL, T0, HEALTH_OK, 400);
    for (uint64_t r = 0; r < 16; r++)
        assert_int_equal(balancer_pick(b, p.c, 2, T0, r), 0);
    /* a failure counts as a slow sample: the other one now */
    outcome(&p, b, 0, NULL, T0, HEALTH_SERVER_ERROR, 0);
    for (uint64_t r = 0; r < 16; r++)
        assert_int_equal(balancer_pick(b, p.c, 2, T0, r), 1);
    /* one in flight on 1 (400 × 2) still beats 0's 30 s */
    struct health_ticket t;
    assert_int_equal(balancer_acquire(b, p.c, 2, T0, 1, &t), 1);
    assert_int_equal(balancer_pick(b, p.c, 2, T0, 1), 1);
    outcome(&p, b, 1, &t, T0, HEALTH_OK, 400);
    assert_int_equal(health_inflight(&p.h[1]), 0);
    balancer_destroy(b);
    pool_free(&p);
}

/* round_robin: 5,1,1 stays a a b a c a a whatever the outcomes; a disabled one is skipped. */
static void test_round_robin_object(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    p.c[0].weight = 5;
    p.c[1].weight = 1;
    p.c[2].weight = 1;
    struct balancer *b = make(BALANCER_ROUND_ROBIN, 3);
    char seq[15] = {0};
    for (int i = 0; i < 14; i++) {
        uint64_t r = (uint64_t)i * 7919; /* the random value plays no part */
        struct health_ticket t;
        int k = balancer_acquire(b, p.c, 3, T0, r, &t);
        assert_true(k >= 0);
        seq[i] = (char)('a' + k);
        outcome(&p, b, (size_t)k, &t, T0, i % 3 ? HEALTH_OK : HEALTH_RATE_LIMITED, 100);
    }
    assert_string_equal(seq, "aabacaaaabacaa");
    /* b out: a and c share its turns by their weights (5:1) */
    health_set_admin(&p.h[1], HEALTH_ADMIN_DISABLED);
    char out[7] = {0};
    for (int i = 0; i < 6; i++)
        out[i] = (char)('a' + balancer_pick(b, p.c, 3, T0, 0));
    assert_int_equal(strchr(out, 'b'), NULL);
    assert_int_equal(strchr(out, 'c') != NULL, 1);
    assert_int_equal(strchr(out, 'c'), strrchr(out, 'c'));
    balancer_destroy(b);
    pool_free(&p);
}

/* least_inflight: slots taken go to the least loaded by weight; a slot given back moves it. */
static void test_least_inflight_object(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    p.c[0].weight = 3;
    p.c[1].weight = 2;
    p.c[2].weight = 1;
    struct balancer *b = make(BALANCER_LEAST_INFLIGHT, 3);
    struct health_ticket t[3];
    /* 1/3 < 1/2 < 1/1, then 2/3 > 1/2, then 2/3 < 2/2 */
    assert_int_equal(balancer_acquire(b, p.c, 3, T0, 1, &t[0]), 0);
    assert_int_equal(balancer_acquire(b, p.c, 3, T0, 1, &t[1]), 1);
    assert_int_equal(balancer_acquire(b, p.c, 3, T0, 1, &t[2]), 0);
    /* now 3/3 = 2/2 = 1/1: a three-way tie, each with the exact draw */
    for (uint64_t r = 0; r < 16; r++) {
        uint64_t x = r;
        int want = 0;
        for (unsigned ties = 2; ties <= 3; ties++)
            if (rng(&x) % ties == 0)
                want = (int)ties - 1;
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), want);
    }
    /* 1's request ends (a failure, it does not matter which): 1/2 is the least now */
    outcome(&p, b, 1, &t[1], T0, HEALTH_IO, 0);
    for (uint64_t r = 0; r < 16; r++)
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), 1);
    outcome(&p, b, 0, &t[0], T0, HEALTH_OK, 100);
    outcome(&p, b, 0, &t[2], T0, HEALTH_OK, 100);
    balancer_destroy(b);
    pool_free(&p);
}

/* latency_weight: the exact weighted draw, shares following the TTFT the outcomes bring. */
static void test_latency_weight_object(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    struct balancer *b = make(BALANCER_LATENCY_WEIGHT, 3);
    outcome(&p, b, 0, NULL, T0, HEALTH_OK, 150);  /* 100 */
    outcome(&p, b, 1, NULL, T0, HEALTH_OK, 250);  /* 50 */
    outcome(&p, b, 2, NULL, T0, HEALTH_OK, 5000); /* 1 */
    for (uint64_t r = 0; r < 64; r++) {
        uint64_t x = r, d = rng(&x) % 151;
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), d < 100 ? 0 : d < 150 ? 1 : 2);
    }
    /* 0 turns slow (peak: one slow answer is enough): 1, 50, 1 */
    outcome(&p, b, 0, NULL, T0, HEALTH_OK, 1000);
    for (uint64_t r = 0; r < 64; r++) {
        uint64_t x = r, d = rng(&x) % 52;
        assert_int_equal(balancer_pick(b, p.c, 3, T0, r), d < 1 ? 0 : d < 51 ? 1 : 2);
    }
    balancer_destroy(b);
    pool_free(&p);
}

/* ---- the seam itself: a strategy of the test's own --------------------------------- */

struct recorder {
    struct balancer base;
    size_t n, m, set[BALANCER_MAX_CANDIDATES];
    unsigned observed;
    size_t index;
    struct balancer_outcome last;
};

static size_t recorder_choose(struct balancer *b, const struct balancer_candidate *c, size_t n,
                              const uint16_t *set, size_t m, uint64_t now_ms, uint64_t rand)
{
    struct recorder *r = (struct recorder *)b;
    r->n = n;
    r->m = m;
    for (size_t k = 0; k < m; k++)
        r->set[k] = set[k];
    return m - 1; /* the last of the set */
}

static void recorder_observe(struct balancer *b, size_t index, const struct balancer_outcome *o)
{
    struct recorder *r = (struct recorder *)b;
    r->observed++;
    r->index = index;
    r->last = *o;
}

static const struct balancer_ops recorder_ops = {
    .name = "recorder", .choose = recorder_choose, .observe = recorder_observe};

/* A strategy is handed only the eligible lowest tier, and is told outcomes by index. */
static void test_strategy_seam(void **state)
{
    struct pool p;
    pool_init(&p, 5);
    p.c[0].tier = 1;
    p.c[2].excluded = true;
    p.c[4].tier = 1;
    health_set_admin(&p.h[3], HEALTH_ADMIN_DISABLED);
    struct recorder r = {.base.ops = &recorder_ops};
    assert_int_equal(balancer_pick(&r.base, p.c, p.n, T0, 0), 1);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.m, 1);
    assert_int_equal(r.set[0], 1);
    p.c[1].excluded = true; /* tier 0 empty: tier 1, both */
    assert_int_equal(balancer_pick(&r.base, p.c, p.n, T0, 0), 4);
    assert_int_equal(r.m, 2);
    assert_int_equal(r.set[0], 0);
    assert_int_equal(r.set[1], 4);

    struct balancer_outcome o = {.cls = HEALTH_FIRST_TOKEN, .ttft_ms = 0,
                                 .usage = {.prompt_tokens = 12, .completion_tokens = -1}};
    balancer_observe(&r.base, 4, &o);
    assert_int_equal(r.observed, 1);
    assert_int_equal(r.index, 4);
    assert_int_equal(r.last.cls, HEALTH_FIRST_TOKEN);
    assert_int_equal(r.last.usage.prompt_tokens, 12);
    balancer_observe(&r.base, BALANCER_MAX_CANDIDATES, &o); /* past the candidates: dropped */
    balancer_observe(NULL, 0, &o);
    assert_int_equal(r.observed, 1);
    /* the strategies that learn from health alone take an outcome as a no-op */
    for (int s = 0; s < BALANCER__COUNT; s++) {
        struct balancer *b = make((enum balancer_strategy)s, p.n);
        balancer_observe(b, 0, &o);
        balancer_destroy(b);
    }
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
        cmocka_unit_test(test_round_robin_share),
        cmocka_unit_test(test_least_inflight),
        cmocka_unit_test(test_slow_start_share),
        cmocka_unit_test(test_latency_weight_formula),
        cmocka_unit_test(test_latency_weight_distribution),
        cmocka_unit_test(test_half_open_trial_slot),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_cost_object),
        cmocka_unit_test(test_p2c_object),
        cmocka_unit_test(test_round_robin_object),
        cmocka_unit_test(test_least_inflight_object),
        cmocka_unit_test(test_latency_weight_object),
        cmocka_unit_test(test_strategy_seam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
