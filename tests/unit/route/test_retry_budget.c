#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "route/retry_budget.h"

#define T0 1000000u

static unsigned spend_all(struct retry_budget *b, uint64_t now)
{
    unsigned n = 0;
    while (retry_budget_try_spend(b, now) && n < 100000)
        n++;
    return n;
}

static void test_defaults(void **state)
{
    struct retry_budget_params p;
    retry_budget_params_default(&p);
    assert_true(p.ratio > 0.199 && p.ratio < 0.201);
    assert_int_equal(p.min_per_sec, 3);
    assert_int_equal(p.window_ms, 10000);
}

static void test_floor(void **state)
{
    struct retry_budget b;
    retry_budget_init(&b, NULL);
    /* no traffic at all: the reserve, 3/s over 10 s */
    assert_int_equal(spend_all(&b, T0), 30);
    assert_false(retry_budget_try_spend(&b, T0 + 9999));
    /* spent retries leave the window with time */
    assert_int_equal(spend_all(&b, T0 + 10000), 30);
    retry_budget_destroy(&b);
}

static void test_ratio(void **state)
{
    struct retry_budget_params p = {.ratio = 0.2, .min_per_sec = 0, .window_ms = 10000};
    struct retry_budget b;
    retry_budget_init(&b, &p);
    assert_false(retry_budget_try_spend(&b, T0));
    for (int i = 0; i < 100; i++)
        retry_budget_note_request(&b, T0 + (uint64_t)i * 10);
    assert_int_equal(spend_all(&b, T0 + 1000), 20);
    for (int i = 0; i < 50; i++)
        retry_budget_note_request(&b, T0 + 2000);
    assert_int_equal(spend_all(&b, T0 + 2000), 10);
    struct retry_budget_stats s;
    retry_budget_get_stats(&b, T0 + 2000, &s);
    assert_int_equal(s.requests, 150);
    assert_int_equal(s.retries, 30);
    assert_int_equal(s.allowed, 30);
    assert_int_equal(s.spent, 30);
    assert_int_equal(s.denied, 3); /* the first try and one at the end of each spend_all */
    retry_budget_destroy(&b);
}

static void test_ratio_plus_floor(void **state)
{
    struct retry_budget b;
    retry_budget_init(&b, NULL);
    for (int i = 0; i < 1000; i++)
        retry_budget_note_request(&b, T0);
    assert_int_equal(spend_all(&b, T0), 200 + 30);
    retry_budget_destroy(&b);
}

static void test_window_slides(void **state)
{
    struct retry_budget_params p = {.ratio = 0.5, .min_per_sec = 0, .window_ms = 10000};
    struct retry_budget b;
    retry_budget_init(&b, &p);
    for (int i = 0; i < 10; i++)
        retry_budget_note_request(&b, T0);
    for (int i = 0; i < 10; i++)
        retry_budget_note_request(&b, T0 + 5000);
    assert_int_equal(spend_all(&b, T0 + 5000), 10);
    /* the first ten requests have left the window, and so have no retries
       (all spent at T0 + 5000) */
    assert_int_equal(spend_all(&b, T0 + 10000), 0);
    struct retry_budget_stats s;
    retry_budget_get_stats(&b, T0 + 10000, &s);
    assert_int_equal(s.requests, 10);
    assert_int_equal(s.allowed, 5);
    assert_int_equal(s.retries, 10);
    /* when those retries leave too, the remaining budget is free */
    retry_budget_get_stats(&b, T0 + 15000, &s);
    assert_int_equal(s.requests, 0);
    assert_int_equal(s.retries, 0);
    retry_budget_destroy(&b);
}

static void test_reload(void **state)
{
    struct retry_budget b;
    retry_budget_init(&b, NULL);
    for (int i = 0; i < 100; i++)
        retry_budget_note_request(&b, T0);
    struct retry_budget_params p = {.ratio = 1.0, .min_per_sec = 0, .window_ms = 10000};
    retry_budget_set_params(&b, &p); /* same window: counts kept */
    assert_int_equal(spend_all(&b, T0), 100);
    p.window_ms = 20000; /* another window: counts forgotten */
    retry_budget_set_params(&b, &p);
    assert_int_equal(spend_all(&b, T0), 0);
    retry_budget_destroy(&b);
}

struct race {
    struct retry_budget *b;
    atomic_uint got;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 5000; i++)
        if (retry_budget_try_spend(r->b, T0))
            atomic_fetch_add(&r->got, 1);
    return NULL;
}

static void test_threads(void **state)
{
    struct retry_budget_params p = {.ratio = 0.25, .min_per_sec = 1, .window_ms = 10000};
    struct retry_budget b;
    retry_budget_init(&b, &p);
    for (int i = 0; i < 4000; i++)
        retry_budget_note_request(&b, T0);
    struct race r = {.b = &b};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.got), 1000 + 10);
    retry_budget_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_floor),
        cmocka_unit_test(test_ratio),
        cmocka_unit_test(test_ratio_plus_floor),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
