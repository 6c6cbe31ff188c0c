#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "route/health.h"
#include "route/limit.h"

#define T0 1000000u /* a "now" far from 0, like a real monotonic clock */
#define MID_RAND (1ull << 63)

static void assert_near(double got, double want, double tol)
{
    if (fabs(got - want) > tol)
        fail_msg("got %f, want %f (±%f)", got, want, tol);
}

static void init_at(struct limit *l, uint32_t initial)
{
    struct limit_params p;
    limit_params_default(&p);
    p.initial = initial;
    limit_init(l, &p);
}

/* Probing (nothing refused yet): one more per success while busy — doubling per round trip. */
static void test_grows_while_probing(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 4);
    assert_int_equal(limit_learnt(&l), 4);
    for (int i = 0; i < 4; i++) /* 4 in flight at a limit of 4: every one is at the limit */
        assert_int_equal(limit_observe(&l, T0 + 100, T0, 4, LIMIT_OK, 100), 1);
    assert_int_equal(limit_learnt(&l), 8);
    assert_int_equal(l.increases, 4);
}

/* A success while nearly idle is no evidence that more would work: no growth. */
static void test_idle_success_does_not_grow(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 10);
    for (int i = 0; i < 50; i++)
        assert_int_equal(limit_observe(&l, T0 + i, T0, 4, LIMIT_OK, 100), 0); /* 4 < 10 / 2 */
    assert_int_equal(limit_learnt(&l), 10);
    assert_int_equal(limit_observe(&l, T0 + 60, T0, 5, LIMIT_OK, 100), 1); /* 5 >= 10 / 2 */
    assert_int_equal(limit_learnt(&l), 11);
}

/* A 429 halves it, once per round trip: attempts started before the decrease do not count
   again; after it the growth is additive (1/limit per success). */
static void test_halves_on_overload_onset(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 20);
    assert_int_equal(limit_observe(&l, T0 + 500, T0, 20, LIMIT_OVERLOAD, 0), -1);
    assert_int_equal(limit_learnt(&l), 10);
    /* the rest of the same burst: started at T0, before the decrease */
    for (int i = 0; i < 9; i++)
        assert_int_equal(limit_observe(&l, T0 + 501 + i, T0 + 10, 20, LIMIT_OVERLOAD, 0), 0);
    assert_int_equal(limit_learnt(&l), 10);
    /* avoidance: 1/limit per success at the limit: eleven successes add one */
    int ups = 0;
    for (int i = 0; i < 10; i++)
        ups += limit_observe(&l, T0 + 1000 + i, T0 + 600, 10, LIMIT_OK, 100);
    assert_int_equal(ups, 0);
    for (int i = 0; i < 1; i++)
        ups += limit_observe(&l, T0 + 1000 + i, T0 + 600, 10, LIMIT_OK, 100);
    assert_int_equal(ups, 1);
    assert_int_equal(limit_learnt(&l), 11);
    /* a new refusal, from an attempt started after the decrease, halves again */
    assert_int_equal(limit_observe(&l, T0 + 2000, T0 + 1500, 11, LIMIT_OVERLOAD, 0), -1);
    assert_int_equal(limit_learnt(&l), 5);
    /* a neutral failure (auth, a cut) says nothing */
    assert_int_equal(limit_observe(&l, T0 + 3000, T0 + 2500, 5, LIMIT_NEUTRAL, 0), 0);
    assert_int_equal(limit_learnt(&l), 5);
}

/* A provider busy now and then for its own reasons refuses at any concurrency: a refusal at
   a level that was just served is not an overload; one above it is. The level forgets. */
static void test_refusal_where_answers_came(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 20);
    assert_int_equal(limit_observe(&l, T0 + 100, T0, 6, LIMIT_OK, 100), 0); /* 6 < 20 / 2 */
    for (int i = 0; i < 20; i++) /* random 503s at 3..6 in flight */
        assert_int_equal(limit_observe(&l, T0 + 200 + i * 100, T0 + 150 + i * 100, 3 + (unsigned)i % 4,
                                       LIMIT_OVERLOAD, 0), 0);
    assert_int_equal(limit_learnt(&l), 20);
    /* above every level that succeeded: a concurrency limit */
    assert_int_equal(limit_observe(&l, T0 + 3000, T0 + 2900, 7, LIMIT_OVERLOAD, 0), -1);
    assert_int_equal(limit_learnt(&l), 10);
    /* two ok windows later the served level is forgotten: a refusal at 3 counts again */
    assert_int_equal(limit_observe(&l, T0 + 25000, T0 + 24900, 3, LIMIT_OVERLOAD, 0), -1);
    assert_int_equal(limit_learnt(&l), 5);
}

/* Floor and cap. */
static void test_floor_and_cap(void **state)
{
    (void)state;
    struct limit_params p;
    limit_params_default(&p);
    p.initial = 4;
    p.min = 2;
    p.max = 6;
    struct limit l;
    limit_init(&l, &p);
    for (uint64_t t = 1; t <= 10; t++)
        limit_observe(&l, T0 + t * 1000, T0 + t * 1000, 1, LIMIT_OVERLOAD, 0);
    assert_int_equal(limit_learnt(&l), 2);
    limit_recovered(&l, 0); /* probing again, no ramp asked (now 0 is a valid clock here) */
    for (int i = 0; i < 100; i++)
        limit_observe(&l, T0 + 20000 + i, T0 + 20000, 6, LIMIT_OK, 50);
    assert_int_equal(limit_learnt(&l), 6);
    p.initial = 0; /* clamped: never below the floor */
    limit_init(&l, &p);
    assert_int_equal(limit_learnt(&l), 2);
}

/* TTFT inflation under load is queueing at the provider: decrease before it refuses. The
   same TTFT while idle (a long prompt) is left alone. */
static void test_ttft_inflation(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 40);
    uint64_t t = T0;
    for (int i = 0; i < 10; i++) /* baseline 300 ms, idle */
        assert_int_equal(limit_observe(&l, t += 10, T0, 1, LIMIT_OK, 300), 0);
    assert_int_equal(limit_baseline_ms(&l, t), 300);
    for (int i = 0; i < 10; i++) /* slow while idle: a long prompt, no decrease */
        assert_int_equal(limit_observe(&l, t += 10, T0, 1, LIMIT_OK, 2000), 0);
    assert_int_equal(limit_learnt(&l), 40);
    for (int i = 0; i < 10; i++) /* back to normal */
        limit_observe(&l, t += 10, T0, 1, LIMIT_OK, 300);
    /* busy and 4× slower: the recent average passes 3× the baseline within a few samples */
    int r = 0, n = 0;
    while (r >= 0 && n < 10) {
        r = limit_observe(&l, t += 10, T0 + 1, 30, LIMIT_OK, 1200);
        n++;
    }
    assert_int_equal(r, -1);
    assert_true(n >= 2); /* not on the first slow answer: a trend, not one sample */
    assert_int_equal(limit_learnt(&l), (40 + n - 1) / 2); /* grew while busy, then halved */
    /* small absolute times: 3 ms over a 1 ms baseline is jitter, not inflation */
    struct limit f;
    init_at(&f, 40);
    for (int i = 0; i < 10; i++)
        limit_observe(&f, T0 + i, T0, 1, LIMIT_OK, 1);
    for (int i = 0; i < 10; i++)
        assert_true(limit_observe(&f, T0 + 100 + i, T0 + 50, 30, LIMIT_OK, 5) >= 0);
    assert_int_equal(f.decreases, 0);
}

/* The baseline forgets: a minimum of the current and the previous period only. */
static void test_baseline_window(void **state)
{
    (void)state;
    struct limit l;
    init_at(&l, 10);
    uint64_t t = 60000 * 100; /* the start of a period */
    limit_observe(&l, t, t, 1, LIMIT_OK, 100);
    limit_observe(&l, t + 60000, t, 1, LIMIT_OK, 900);
    assert_int_equal(limit_baseline_ms(&l, t + 60000), 100); /* the previous period's */
    assert_int_equal(limit_baseline_ms(&l, t + 120000), 900); /* two periods on: forgotten */
    assert_int_equal(limit_baseline_ms(&l, t + 180000), 0);
}

/* Envoy's slow start: max(min_weight, (elapsed / window)^(1 / aggression)). */
static void test_slow_start_ramp(void **state)
{
    (void)state;
    assert_near(limit_slow_start_factor(0, 30000, 1.0, 0.1), 0.1, 1e-9);
    assert_near(limit_slow_start_factor(3000, 30000, 1.0, 0.1), 0.1, 1e-9);
    assert_near(limit_slow_start_factor(7500, 30000, 1.0, 0.1), 0.25, 1e-9);
    assert_near(limit_slow_start_factor(15000, 30000, 1.0, 0.1), 0.5, 1e-9);
    assert_near(limit_slow_start_factor(15000, 30000, 2.0, 0.1), sqrt(0.5), 1e-9);
    assert_near(limit_slow_start_factor(30000, 30000, 1.0, 0.1), 1.0, 1e-9);
    assert_near(limit_slow_start_factor(10, 0, 1.0, 0.1), 1.0, 1e-9); /* off */

    struct limit l;
    init_at(&l, 40);
    assert_near(limit_ramp(&l, T0), 1.0, 1e-9); /* at start: no ramp */
    assert_int_equal(limit_current(&l, T0), 40);
    limit_recovered(&l, T0);
    assert_near(limit_ramp(&l, T0), 0.1, 1e-9);
    assert_int_equal(limit_current(&l, T0), 4);       /* the learnt limit ramps too */
    assert_int_equal(limit_current(&l, T0 + 15000), 20);
    assert_int_equal(limit_current(&l, T0 + 30000), 40);
    assert_int_equal(limit_learnt(&l), 40);
}

/* Through health: the learnt limit bounds the in-flight count when none is declared; a
   declared max_concurrency wins; a closing breaker starts the ramp. */
static void test_health_uses_learnt_limit(void **state)
{
    (void)state;
    struct health_params p;
    health_params_default(&p);
    p.limit.initial = 3;
    struct health h;
    health_init(&h, &p);
    struct health_ticket t[5];
    for (int i = 0; i < 3; i++)
        assert_true(health_acquire(&h, T0, &t[i]));
    const char *why = NULL;
    assert_false(health_eligible(&h, T0, &why));
    assert_string_equal(why, "saturated");
    assert_int_equal(health_capacity(&h, T0), 3);
    /* a 429 halves it: 3 -> 1 */
    health_release(&h, &t[0], T0 + 10, HEALTH_RATE_LIMITED, 0, 0, MID_RAND);
    assert_int_equal(health_capacity(&h, T0 + 10), 1);
    health_release(&h, &t[1], T0 + 20, HEALTH_OK, 50, 0, MID_RAND);
    health_release(&h, &t[2], T0 + 20, HEALTH_OK, 50, 0, MID_RAND);
    struct health_snapshot s;
    health_snapshot(&h, T0 + 20, &s);
    assert_int_equal(s.concurrency_limit, health_capacity(&h, T0 + 20));
    assert_int_equal(s.limit_decreases, 1);
    health_destroy(&h);

    p.max_concurrency = 7; /* declared: the learnt limit is not what bounds it */
    health_init(&h, &p);
    for (int i = 0; i < 5; i++)
        assert_true(health_acquire(&h, T0, &t[i]));
    assert_int_equal(health_capacity(&h, T0), 7);
    for (int i = 0; i < 5; i++)
        health_abandon(&h, &t[i]);
    health_destroy(&h);

    /* breaker: trip, half-open, a trial succeeds -> closed and ramping */
    health_params_default(&p);
    p.consecutive_failures = 1;
    health_init(&h, &p);
    assert_true(health_acquire(&h, T0, &t[0]));
    assert_true(health_release(&h, &t[0], T0, HEALTH_SERVER_ERROR, 0, 0, MID_RAND) & HEALTH_EVENT_TRIPPED);
    uint64_t later = T0 + 10000;
    assert_true(health_acquire(&h, later, &t[0]));
    assert_true(health_release(&h, &t[0], later, HEALTH_OK, 50, 0, MID_RAND) & HEALTH_EVENT_CLOSED);
    assert_near(health_slow_start(&h, later), 0.1, 1e-9);
    assert_near(health_slow_start(&h, later + 15000), 0.5, 1e-9);
    assert_near(health_slow_start(&h, later + 30000), 1.0, 1e-9);
    health_destroy(&h);
}

/* 429s while others are in flight on a deployment with a learnt limit: a load refusal (the
   request may try again), not a breaker failure. Alone, or with a declared limit: as before. */
static void test_load_refusal(void **state)
{
    (void)state;
    struct health h;
    health_init(&h, NULL);
    struct health_ticket t[8];
    for (int i = 0; i < 8; i++)
        assert_true(health_acquire(&h, T0, &t[i]));
    for (int i = 0; i < 7; i++) {
        unsigned ev = health_release(&h, &t[i], T0 + 10, HEALTH_RATE_LIMITED, 0, 0, MID_RAND);
        assert_true(ev & HEALTH_EVENT_LOAD_REFUSAL);
        assert_false(ev & HEALTH_EVENT_TRIPPED);
    }
    unsigned ev = health_release(&h, &t[7], T0 + 10, HEALTH_RATE_LIMITED, 0, 0, MID_RAND);
    assert_false(ev & HEALTH_EVENT_LOAD_REFUSAL); /* the last one in flight: no other load */
    struct health_snapshot s;
    health_snapshot(&h, T0 + 10, &s);
    assert_string_equal(s.breaker, "closed");
    assert_int_equal(s.learnt_limit, 10); /* halved once for the whole burst */
    health_destroy(&h);
}

/* When will it come back? */
static void test_returns_at(void **state)
{
    (void)state;
    struct health_params p;
    health_params_default(&p);
    p.consecutive_failures = 1;
    struct health h;
    health_init(&h, &p);
    assert_int_equal(health_returns_at(&h, T0), T0); /* now */
    health_cooldown(&h, T0, 1500);
    assert_int_equal(health_returns_at(&h, T0), T0 + 1500);
    struct health_ticket t;
    health_reset(&h);
    assert_true(health_acquire(&h, T0, &t));
    health_release(&h, &t, T0, HEALTH_SERVER_ERROR, 0, 0, MID_RAND); /* open 5 s (mid jitter) */
    assert_int_equal(health_returns_at(&h, T0), T0 + 5000);
    health_cooldown(&h, T0, 8000); /* both: the later one */
    assert_int_equal(health_returns_at(&h, T0 + 100), T0 + 8000);
    assert_int_equal(health_returns_at(&h, T0 + 9000), T0 + 9000); /* half-open now: a trial may go */
    health_set_admin(&h, HEALTH_ADMIN_DISABLED);
    assert_true(health_returns_at(&h, T0 + 9000) == UINT64_MAX);
    health_set_admin(&h, HEALTH_ADMIN_ACTIVE);
    assert_true(health_acquire(&h, T0 + 9000, &t));
    health_release(&h, &t, T0 + 9000, HEALTH_AUTH, 0, 0, MID_RAND);
    assert_true(health_returns_at(&h, T0 + 9000) == UINT64_MAX); /* refused credentials */
    health_destroy(&h);

    p.rpm = 60; /* one a second */
    p.consecutive_failures = 5;
    health_init(&h, &p);
    for (int i = 0; i < 60; i++) {
        assert_true(health_acquire(&h, T0, &t));
        health_abandon(&h, &t);
    }
    assert_int_equal(health_returns_at(&h, T0), T0 + 1000);
    health_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_while_probing),
        cmocka_unit_test(test_idle_success_does_not_grow),
        cmocka_unit_test(test_halves_on_overload_onset),
        cmocka_unit_test(test_refusal_where_answers_came),
        cmocka_unit_test(test_floor_and_cap),
        cmocka_unit_test(test_ttft_inflation),
        cmocka_unit_test(test_baseline_window),
        cmocka_unit_test(test_slow_start_ramp),
        cmocka_unit_test(test_health_uses_learnt_limit),
        cmocka_unit_test(test_load_refusal),
        cmocka_unit_test(test_returns_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
