#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config/config.h"
#include "route/balancer.h"
#include "route/engine.h"

#define T0 1000000u

static void scrape_own(struct engine_state *st, double waiting, double running, double kv,
                       uint32_t own, uint64_t now)
{
    struct prom_parser p;
    memset(&p, 0, sizeof p);
    p.sum[ENGINE_WAITING] = waiting;
    p.count[ENGINE_WAITING] = 1;
    p.sum[ENGINE_RUNNING] = running;
    p.count[ENGINE_RUNNING] = 1;
    if (kv >= 0) {
        p.sum[ENGINE_KV] = kv;
        p.count[ENGINE_KV] = 1;
    }
    assert_true(engine_record_scrape(st, &p, own, now));
}

static void scrape(struct engine_state *st, double waiting, double running, double kv, uint64_t now)
{
    scrape_own(st, waiting, running, kv, 0, now);
}

static void enabled(struct engine_state *st)
{
    struct cfg_provider pv = {.metrics = {.enabled = true, .interval_ms = 1000}};
    engine_state_init(st, &pv);
}

static void test_queries(void **state)
{
    struct prom_query q;
    const char *models[] = {"qwen"};
    engine_query_of(CFG_ENGINE_VLLM, &q, models, 1);
    assert_string_equal(q.names[ENGINE_WAITING], "vllm:num_requests_waiting");
    assert_string_equal(q.names[ENGINE_RUNNING], "vllm:num_requests_running");
    assert_string_equal(q.names[ENGINE_KV], "vllm:kv_cache_usage_perc");
    assert_string_equal(q.names[ENGINE_KV_ALT], "vllm:gpu_cache_usage_perc");
    assert_string_equal(q.label, "model_name");
    assert_int_equal(q.nvalues, 1);
    engine_query_of(CFG_ENGINE_SGLANG, &q, models, 1);
    assert_string_equal(q.names[ENGINE_WAITING], "sglang:num_queue_reqs");
    assert_string_equal(q.names[ENGINE_KV], "sglang:token_usage");
    engine_query_of(CFG_ENGINE_LLAMA_CPP, &q, models, 1);
    assert_string_equal(q.names[ENGINE_WAITING], "llamacpp:requests_deferred");
    assert_null(q.label);
    engine_query_of(CFG_ENGINE_TGI, &q, models, 1);
    assert_string_equal(q.names[ENGINE_WAITING], "tgi_queue_size");
    assert_string_equal(q.names[ENGINE_RUNNING], "tgi_batch_current_size");
    engine_query_of(CFG_ENGINE_NONE, &q, models, 1);
    assert_int_equal(q.nnames, 0);
}

static void test_scrape_and_estimate(void **state)
{
    struct engine_state st;
    enabled(&st);
    /* none yet: the in-flight view */
    assert_true(engine_estimate(&st, 3, T0) == 4.0);
    /* a scrape without the queue series is refused */
    struct prom_parser empty;
    memset(&empty, 0, sizeof empty);
    assert_false(engine_record_scrape(&st, &empty, 0, T0));
    scrape_own(&st, 6, 4, 0.5, 3, T0);
    assert_int_equal(atomic_load(&st.kv_permille), 500);
    /* others' 6 waiting + 4 running - our 3 then - 1 of slack, + our 5 now + 1; a cache half
       used is no constraint */
    assert_true(engine_estimate(&st, 5, T0 + 100) == 12.0);
    /* KV pressure on the others' load from 80 % on, 4 at 100 % */
    scrape(&st, 0, 4, 1.0, T0);
    assert_true(engine_estimate(&st, 0, T0) == 13.0); /* others' (4 - 1) x 4, + 1 */
    scrape(&st, 0, 4, 0.9, T0);
    assert_true(engine_estimate(&st, 0, T0) == 8.5);
    /* our own requests are counted live, once, and not weighed by the scrape's KV */
    scrape_own(&st, 0, 4, 0.9, 4, T0);
    assert_true(engine_estimate(&st, 4, T0) == 5.0);
    assert_true(engine_estimate(&st, 1, T0) == 2.0);
    /* a percentage (0..100) is read as a share */
    scrape(&st, 0, 4, 50, T0);
    assert_int_equal(atomic_load(&st.kv_permille), 500);
    /* vLLM before V1: the older gauge */
    struct prom_parser old;
    memset(&old, 0, sizeof old);
    old.count[ENGINE_WAITING] = 1;
    old.sum[ENGINE_KV_ALT] = 0.25;
    old.count[ENGINE_KV_ALT] = 1;
    assert_true(engine_record_scrape(&st, &old, 0, T0));
    assert_int_equal(atomic_load(&st.kv_permille), 250);
}

static void test_staleness(void **state)
{
    struct engine_state st;
    enabled(&st);
    scrape_own(&st, 10, 0, -1, 1, T0);
    assert_true(engine_freshness(&st, T0 + 2000) == 1.0);
    assert_true(engine_freshness(&st, T0 + 3500) == 0.5);
    assert_true(engine_freshness(&st, T0 + 5000) == 0.0);
    /* fresh: the queue; halfway: between; stale: in-flight + 1 */
    assert_true(engine_estimate(&st, 1, T0 + 1000) == 10.0);
    assert_true(engine_estimate(&st, 1, T0 + 3500) == 0.5 * 10.0 + 0.5 * 2.0);
    assert_true(engine_estimate(&st, 1, T0 + 9000) == 2.0);
    assert_true(engine_estimate(NULL, 1, T0) == 2.0);
    /* failures count in a row and a good scrape ends the run */
    assert_int_equal(engine_record_failure(&st), 1);
    assert_int_equal(engine_record_failure(&st), 2);
    scrape(&st, 0, 0, -1, T0);
    assert_int_equal(atomic_load(&st.fail_streak), 0);
    assert_int_equal(atomic_load(&st.scrapes_failed), 2);
}

/* ---- the engine_load strategy ---- */

struct pool {
    struct health h[4];
    struct balancer_candidate c[4];
    struct engine_state st[4];
    struct engine_state *engines[4];
    struct balancer *b;
};

static void pool_init(struct pool *p, size_t n)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        health_init(&p->h[i], NULL);
        p->c[i] = (struct balancer_candidate){.h = &p->h[i], .weight = 1};
        enabled(&p->st[i]);
        p->engines[i] = &p->st[i];
    }
    p->b = balancer_create(BALANCER_ENGINE_LOAD,
                           &(struct balancer_config){.ndeps = n, .engines = p->engines});
    assert_non_null(p->b);
    assert_string_equal(balancer_name(p->b), "engine_load");
}

static void pool_free(struct pool *p, size_t n)
{
    balancer_destroy(p->b);
    for (size_t i = 0; i < n; i++)
        health_destroy(&p->h[i]);
}

static void test_strategy_avoids_the_queue(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    scrape(&p.st[0], 12, 8, 0.3, T0);
    scrape(&p.st[1], 0, 8, 0.3, T0);
    scrape(&p.st[2], 5, 9, 0.3, T0);
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(balancer_pick(p.b, p.c, 3, T0, r), 1);
    /* what it sends moves the estimate before the next scrape: 1 (others' load 8) takes
       requests until its load passes 2's (others' 14) */
    struct health_ticket t[8];
    int got[3] = {0};
    for (int k = 0; k < 8; k++) {
        int i = balancer_pick(p.b, p.c, 3, T0, (uint64_t)k);
        got[i]++;
        assert_true(health_acquire(&p.h[i], T0, &t[k]));
    }
    assert_int_equal(got[0], 0);
    assert_true(got[1] >= 6 && got[1] <= 7); /* loads 9..14; a tie at 15 goes either way */
    assert_int_equal(got[1] + got[2], 8);
    pool_free(&p, 3);
}

static void test_strategy_stale_is_inflight(void **state)
{
    struct pool p;
    pool_init(&p, 2);
    scrape(&p.st[0], 50, 8, 0, T0);
    scrape_own(&p.st[1], 0, 8, 0, 3, T0);
    struct health_ticket t[3];
    for (int k = 0; k < 3; k++)
        assert_true(health_acquire(&p.h[1], T0, &t[k]));
    /* fresh: 0's queue of 50 beats 1's three in flight */
    assert_int_equal(balancer_pick(p.b, p.c, 2, T0, 1), 1);
    /* long after the last scrape: 0 has nothing in flight, 1 has three */
    assert_int_equal(balancer_pick(p.b, p.c, 2, T0 + 60000, 1), 0);
    pool_free(&p, 2);
}

static void test_strategy_ties_at_random(void **state)
{
    struct pool p;
    pool_init(&p, 3);
    scrape(&p.st[0], 0, 9, 0, T0);
    scrape(&p.st[1], 0, 2, 0, T0);
    scrape(&p.st[2], 0, 2, 0, T0);
    int got[3] = {0};
    for (uint64_t r = 0; r < 400; r++)
        got[balancer_pick(p.b, p.c, 3, T0, r * 7919)]++;
    assert_int_equal(got[0], 0);
    assert_true(got[1] > 120 && got[2] > 120);
    pool_free(&p, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_scrape_and_estimate),
        cmocka_unit_test(test_staleness),
        cmocka_unit_test(test_strategy_avoids_the_queue),
        cmocka_unit_test(test_strategy_stale_is_inflight),
        cmocka_unit_test(test_strategy_ties_at_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
