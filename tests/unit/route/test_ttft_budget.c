#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <cmocka.h>

#include "route/ttft_budget.h"

#define CAP 30000u

/* Within a bin's width (9 %) of the value: the histogram's resolution. */
static void assert_near(uint32_t got, uint32_t want)
{
    if (got < want * 0.91 || got > want * 1.09)
        fail_msg("%u is not within 9 %% of %u", got, want);
}

static void feed(struct ttft_budget *t, uint32_t tokens, uint32_t ms, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ttft_budget_observe(t, tokens, ms);
}

static void test_classes(void **state)
{
    assert_int_equal(ttft_budget_class_of(0), 0);
    assert_int_equal(ttft_budget_class_of(255), 0);
    assert_int_equal(ttft_budget_class_of(256), 1);
    assert_int_equal(ttft_budget_class_of(1023), 1);
    assert_int_equal(ttft_budget_class_of(1024), 2);
    assert_int_equal(ttft_budget_class_of(16384), 4);
    assert_int_equal(ttft_budget_class_of(65535), 4);
    assert_int_equal(ttft_budget_class_of(65536), 5);
    assert_int_equal(ttft_budget_class_of(UINT32_MAX), 5);
}

/* Nothing learnt: 1.2 s plus 0.2 ms per token, within the hard deadline. */
static void test_cold(void **state)
{
    struct ttft_budget t;
    ttft_budget_init(&t);
    struct ttft_budget_info info;
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 1220);
    assert_int_equal(info.source, TTFT_BUDGET_COLD);
    assert_string_equal(ttft_budget_source_name(info.source), "cold");
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 30000, CAP, &info), 7200);
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 1000000, CAP, &info), CAP); /* capped */
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 100, 1000, NULL), 1000);
    /* 2 samples are not yet enough to use */
    feed(&t, 100, 400, 2);
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 1220);
    /* 3 to 19 are used, with an early margin of 2 × p99 at 3 that shrinks towards 1.5 */
    feed(&t, 100, 400, 1);
    assert_near(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 800);
    assert_int_equal(info.source, TTFT_BUDGET_LEARNT);
    feed(&t, 100, 400, 8); /* 11 samples: 1.5 + 0.5 × 9/17 */
    assert_near(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 706);
    feed(&t, 100, 400, 8); /* 19 */
    assert_near(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 612);
    /* from 20 on, 1.5 × p99 */
    feed(&t, 100, 400, 1);
    assert_near(ttft_budget_get(&t, NULL, 0, 100, CAP, &info), 600);
    ttft_budget_destroy(&t);
}

/* Injected samples: the learnt p99 converges to them, the budget is 1.5 × p99, at least 250 ms. */
static void test_converges(void **state)
{
    struct ttft_budget t;
    ttft_budget_init(&t);
    struct ttft_budget_info info;
    feed(&t, 100, 400, 20);
    uint32_t b = ttft_budget_get(&t, NULL, 0, 100, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_LEARNT);
    assert_near(info.p99_ms, 400);
    assert_near(b, 600);
    /* 98 % at 300 ms and 2 % at 1 s: p99 is in the slow 2 % */
    struct ttft_budget u;
    ttft_budget_init(&u);
    for (int i = 0; i < 1000; i++)
        ttft_budget_observe(&u, 100, i % 50 == 0 ? 1000 : 300);
    ttft_budget_get(&u, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 1000);
    /* 0.5 % slow: p99 is the fast mode */
    struct ttft_budget v;
    ttft_budget_init(&v);
    for (int i = 0; i < 1000; i++)
        ttft_budget_observe(&v, 100, i % 200 == 0 ? 20000 : 300);
    ttft_budget_get(&v, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 300);
    /* the floor: a 20 ms local engine is not hedged after 30 ms */
    struct ttft_budget w;
    ttft_budget_init(&w);
    feed(&w, 100, 20, 50);
    assert_int_equal(ttft_budget_get(&w, NULL, 0, 100, CAP, NULL), TTFT_BUDGET_FLOOR_MS);
    ttft_budget_destroy(&t);
    ttft_budget_destroy(&u);
    ttft_budget_destroy(&v);
    ttft_budget_destroy(&w);
}

/* Recent samples count most: a deployment that got slower is followed within a few hundred. */
static void test_follows_change(void **state)
{
    struct ttft_budget t;
    ttft_budget_init(&t);
    struct ttft_budget_info info;
    feed(&t, 100, 2000, 300);
    ttft_budget_get(&t, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 2000);
    feed(&t, 100, 300, 1500); /* the old samples' weight: 300·e^(-1500/256) < 1 % of the total */
    ttft_budget_get(&t, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 300);
    ttft_budget_destroy(&t);
}

/* The decay is kept as a growing weight per sample, scaled back now and then: the decayed
   count is the geometric sum whatever the number of samples, and the p99 follows a change
   across the rescaling as it does before it. */
static void test_decay_across_rescaling(void **state)
{
    struct ttft_budget t;
    ttft_budget_init(&t);
    const unsigned counts[] = {1, 10, 2000, 3000, 20000};
    unsigned fed = 0;
    for (unsigned i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        feed(&t, 100, 500, counts[i] - fed);
        fed = counts[i];
        struct ttft_budget_class_stats st;
        ttft_budget_class_stats(&t, 0, &st);
        double keep = 1.0 - TTFT_BUDGET_DECAY, want = (1.0 - pow(keep, fed)) / TTFT_BUDGET_DECAY;
        if (fabs(st.weight - want) > want * 1e-4)
            fail_msg("after %u samples the decayed count is %f, not %f", fed, st.weight, want);
        assert_near(st.p99_ms, 500);
    }
    feed(&t, 100, 3000, 1500);
    struct ttft_budget_info info;
    ttft_budget_get(&t, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 3000);
    feed(&t, 100, 300, 1500);
    ttft_budget_get(&t, NULL, 0, 100, CAP, &info);
    assert_near(info.p99_ms, 300);
    ttft_budget_destroy(&t);
}

/* A long prompt is allowed its own, longer, time; a short one keeps its short budget. */
static void test_long_prompts(void **state)
{
    struct ttft_budget t;
    ttft_budget_init(&t);
    struct ttft_budget_info info;
    feed(&t, 100, 300, 100);
    /* the long class borrows from the short one plus 0.2 ms per extra token */
    uint32_t b = ttft_budget_get(&t, NULL, 0, 30000, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_SHORTER);
    assert_true(info.p99_ms >= 300 + (30000 - 256) / 5 - 30);
    assert_true(b > 8000);
    feed(&t, 30000, 4000, 100);
    b = ttft_budget_get(&t, NULL, 0, 30000, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_LEARNT);
    assert_int_equal(info.cls, 4);
    assert_near(b, 6000);
    assert_near(ttft_budget_get(&t, NULL, 0, 100, CAP, NULL), 450);
    ttft_budget_destroy(&t);
}

/* Without its own samples, a deployment takes the slowest of its siblings' figures for the class. */
static void test_sibling_prior(void **state)
{
    struct ttft_budget a, b, c;
    ttft_budget_init(&a);
    ttft_budget_init(&b);
    ttft_budget_init(&c);
    feed(&b, 100, 400, 50);
    feed(&c, 100, 800, 50);
    feed(&c, 5000, 3000, 2); /* too few: not used */
    struct ttft_budget *all[3] = {&a, &b, &c};
    struct ttft_budget_info info;
    uint32_t got = ttft_budget_get(&a, all, 3, 100, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_SIBLINGS);
    assert_near(got, 1200);
    ttft_budget_get(&a, all, 3, 5000, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_COLD);
    /* its own samples win over the siblings' */
    feed(&a, 100, 200, 30);
    got = ttft_budget_get(&a, all, 3, 100, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_LEARNT);
    assert_near(got, 300); /* 1.5 × 200 */
    ttft_budget_destroy(&a);
    ttft_budget_destroy(&b);
    ttft_budget_destroy(&c);
}

/* A deployment's own short prompts predict its long ones better than its siblings' long ones:
   an engine slow to prefill is not hedged on every long prompt because another is fast. */
static void test_own_shorter_before_siblings(void **state)
{
    struct ttft_budget slow, fast;
    ttft_budget_init(&slow);
    ttft_budget_init(&fast);
    feed(&slow, 100, 150, 30);  /* short prompts: 150 ms */
    feed(&fast, 8000, 300, 30); /* the sibling's long prompts: 300 ms */
    struct ttft_budget *all[2] = {&slow, &fast};
    struct ttft_budget_info info;
    uint32_t got = ttft_budget_get(&slow, all, 2, 8000, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_SHORTER);
    assert_true(got > 1500); /* (150 + 0.2 ms × 7,744 extra tokens) × 1.5: not 450 */
    /* a deployment with nothing of its own still takes its siblings' figure */
    struct ttft_budget fresh;
    ttft_budget_init(&fresh);
    struct ttft_budget *three[3] = {&slow, &fast, &fresh};
    ttft_budget_get(&fresh, three, 3, 8000, CAP, &info);
    assert_int_equal(info.source, TTFT_BUDGET_SIBLINGS);
    ttft_budget_destroy(&slow);
    ttft_budget_destroy(&fast);
    ttft_budget_destroy(&fresh);
}

/* Bounded memory: the state is a fixed struct, whatever was fed; extreme values land in the end bins. */
static void test_bounded(void **state)
{
    assert_true(sizeof(struct ttft_budget) < 4096);
    struct ttft_budget t;
    ttft_budget_init(&t);
    for (uint32_t i = 0; i < 100000; i++)
        ttft_budget_observe(&t, i * 7919u, i % 3 ? 0 : UINT32_MAX);
    for (unsigned c = 0; c < TTFT_BUDGET_CLASSES; c++) {
        struct ttft_budget_class_stats st;
        ttft_budget_class_stats(&t, c, &st);
        assert_true(st.weight <= 1.0 / TTFT_BUDGET_DECAY + 1e-3);
        assert_true(st.p99_ms <= 42000);
    }
    struct ttft_budget_class_stats st;
    ttft_budget_class_stats(&t, 0, &st);
    assert_int_equal(st.max_tokens, 256);
    ttft_budget_class_stats(&t, TTFT_BUDGET_CLASSES - 1, &st);
    assert_int_equal(st.max_tokens, 0);
    assert_int_equal(ttft_budget_get(&t, NULL, 0, 1000000, 5000, NULL), 5000); /* the cap holds */
    ttft_budget_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_cold),
        cmocka_unit_test(test_converges),
        cmocka_unit_test(test_follows_change),
        cmocka_unit_test(test_decay_across_rescaling),
        cmocka_unit_test(test_long_prompts),
        cmocka_unit_test(test_sibling_prior),
        cmocka_unit_test(test_own_shorter_before_siblings),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
