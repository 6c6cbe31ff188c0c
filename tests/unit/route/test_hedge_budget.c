#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "route/hedge_budget.h"

#define T0 1000000u

static unsigned spend_all(struct hedge_budget *b, uint64_t now)
{
    unsigned n = 0;
    while (hedge_budget_try_spend(b, now) && n < 100000)
        n++;
    return n;
}

static void requests(struct hedge_budget *b, uint64_t now, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        hedge_budget_note_request(b, now);
}

static void test_defaults(void **state)
{
    struct hedge_budget_params p;
    hedge_budget_params_default(&p);
    assert_true(p.base_ratio > 0.049 && p.base_ratio < 0.051);
    assert_true(p.max_ratio > 0.199 && p.max_ratio < 0.201);
    assert_true(p.earn == 2);
    assert_true(p.min_per_sec == 1);
    assert_int_equal(p.window_ms, 10000);
}

/* A quiet model may hedge its first slow requests: the reserve, 1/s over 10 s. */
static void test_reserve(void **state)
{
    struct hedge_budget b;
    hedge_budget_init(&b, NULL);
    assert_int_equal(spend_all(&b, T0), 10);
    assert_int_equal(spend_all(&b, T0 + 10000), 10); /* spent hedges leave the window */
    hedge_budget_destroy(&b);
}

/* A reload: the same window keeps what was spent, another one forgets it. */
static void test_set_params(void **state)
{
    struct hedge_budget b;
    hedge_budget_init(&b, NULL);
    assert_int_equal(spend_all(&b, T0), 10);
    struct hedge_budget_params p;
    hedge_budget_params_default(&p);
    p.max_ratio = 0.1;
    hedge_budget_set_params(&b, &p);
    assert_int_equal(spend_all(&b, T0), 0);
    p.window_ms = 20000;
    hedge_budget_set_params(&b, &p);
    assert_int_equal(spend_all(&b, T0), 20); /* the reserve over 20 s, nothing spent in it */
    hedge_budget_destroy(&b);
}

/* Hedges that do not help leave only the base ratio; hedges that win earn more, up to the cap. */
static void test_adapts_to_need(void **state)
{
    struct hedge_budget_params p;
    hedge_budget_params_default(&p);
    p.min_per_sec = 0;
    struct hedge_budget b;
    hedge_budget_init(&b, &p);
    requests(&b, T0, 1000);
    assert_int_equal(spend_all(&b, T0), 50); /* 5 % */
    struct hedge_budget_stats s;
    hedge_budget_get_stats(&b, T0, &s);
    assert_int_equal(s.requests, 1000);
    assert_int_equal(s.hedges, 50);
    assert_int_equal(s.allowed, 50);
    /* 40 of them brought the first token: 80 more may go, 130 in all */
    for (int i = 0; i < 40; i++)
        hedge_budget_note_result(&b, T0, true);
    assert_int_equal(spend_all(&b, T0), 80);
    /* and however useful, at most 20 % of requests */
    for (int i = 0; i < 200; i++)
        hedge_budget_note_result(&b, T0, true);
    assert_int_equal(spend_all(&b, T0), 70);
    hedge_budget_get_stats(&b, T0, &s);
    assert_int_equal(s.allowed, 200);
    assert_int_equal(s.spent, 200);
    hedge_budget_destroy(&b);
}

/* When hedges fail more than they help (every deployment failing), they stop, reserve included,
   until the failures leave the window. */
static void test_stops_when_everything_fails(void **state)
{
    struct hedge_budget b;
    hedge_budget_init(&b, NULL);
    requests(&b, T0, 100);
    assert_true(hedge_budget_try_spend(&b, T0));
    hedge_budget_note_result(&b, T0, false);
    hedge_budget_note_result(&b, T0, false);
    assert_true(hedge_budget_try_spend(&b, T0)); /* two failures: not yet a pattern */
    hedge_budget_note_result(&b, T0, true);
    assert_true(hedge_budget_try_spend(&b, T0)); /* 2 failed, 1 useful */
    hedge_budget_note_result(&b, T0, false);     /* 3 failed, more than useful */
    struct hedge_budget_stats s;
    hedge_budget_get_stats(&b, T0, &s);
    assert_true(s.stopped);
    assert_int_equal(s.allowed, 0);
    assert_false(hedge_budget_try_spend(&b, T0));
    assert_int_equal(b.stopped, 1);
    /* the window moves on */
    assert_true(hedge_budget_try_spend(&b, T0 + 10000));
    hedge_budget_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_set_params),
        cmocka_unit_test(test_adapts_to_need),
        cmocka_unit_test(test_stops_when_everything_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
