/* runtime_carry: what a reload keeps, by key, and what it drops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "route/runtime.h"
#include "route/runtime_carry.h"

static const char before[] = "providers:\n"
                             "  pa: {base_url: 'http://127.0.0.1:9/v1'}\n"
                             "  pb: {base_url: 'http://127.0.0.1:10/v1'}\n"
                             "models:\n"
                             "  m1:\n"
                             "    - {provider: pa, model: up-a}\n"
                             "    - {provider: pb, model: up-b}\n"
                             "  m2:\n"
                             "    - {provider: pa, model: up-a}\n"
                             "  gone:\n"
                             "    - {provider: pb, model: up-g}\n";

/* m1 keeps pa/up-a, loses pb/up-b (pb moved), gains pa/up-n; m2 and its copy of pa/up-a
   stay; "gone" is removed; "fresh" is new. */
static const char after[] = "providers:\n"
                            "  pa: {base_url: 'http://127.0.0.1:9/v1'}\n"
                            "  pb: {base_url: 'http://127.0.0.1:11/v1'}\n"
                            "models:\n"
                            "  fresh:\n"
                            "    - {provider: pa, model: up-f}\n"
                            "  m2:\n"
                            "    - {provider: pa, model: up-a}\n"
                            "  m1:\n"
                            "    queue: {max: 7}\n"
                            "    deployments:\n"
                            "      - {provider: pa, model: up-n}\n"
                            "      - {provider: pa, model: up-a, max_concurrency: 7}\n"
                            "      - {provider: pb, model: up-b}\n";

static struct config *load(const char *text)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, &errs) < 0)
        fail_msg("config: %s", errs.text.data ? errs.text.data : "?");
    config_errors_free(&errs);
    return c;
}

static struct runtime_model *model(struct runtime *rt, const char *name)
{
    struct runtime_model *m = runtime_carry_find_model(rt, name);
    assert_non_null(m);
    return m;
}

static unsigned readied, gone;

static void on_ready(void *owner, struct admission_waiter *w)
{
    (void)owner;
    readied++;
    if (w->evicted && w->gone) gone++;
}

static void test_state_follows_the_key(void **state)
{
    (void)state;
    struct config *a = load(before), *b = load(after);
    struct runtime *old = runtime_new(a, on_ready);
    assert_int_equal(old->generation, 1);
    struct runtime_model *m1 = model(old, "m1"), *m2 = model(old, "m2");
    /* learnt and set state on m1's pa/up-a: an operator's drain and a TTFT history */
    health_set_admin(m1->deps[0].health, HEALTH_ADMIN_DRAINING);
    for (int i = 0; i < 50; i++)
        ttft_budget_observe(m1->deps[0].ttft, 100, 800);
    atomic_store(&m1->requests, 41);
    atomic_store(&old->providers[0].probe_down, true);
    atomic_store(&old->providers[1].probe_down, true); /* pb moves: its verdict stays behind */

    struct runtime *next = runtime_build(b, on_ready, old);
    assert_non_null(next);
    assert_int_equal(next->generation, 2);
    struct runtime_model *n1 = model(next, "m1"), *n2 = model(next, "m2");
    /* same key under the same model: the very state, not a copy */
    assert_ptr_equal(n1->deps[1].state, m1->deps[0].state);
    assert_int_equal(health_admin_state(n1->deps[1].health), HEALTH_ADMIN_DRAINING);
    struct ttft_budget_class_stats st;
    ttft_budget_class_stats(n1->deps[1].ttft, ttft_budget_class_of(100), &st);
    assert_int_equal(st.samples, 50);
    /* the same key in another model keeps that model's own state */
    assert_ptr_equal(n2->deps[0].state, m2->deps[0].state);
    assert_ptr_not_equal(n2->deps[0].state, n1->deps[1].state);
    /* a new deployment and one whose provider moved start fresh */
    assert_ptr_not_equal(n1->deps[2].state, m1->deps[1].state);
    assert_int_equal(health_admin_state(n1->deps[0].health), HEALTH_ADMIN_ACTIVE);
    /* the model's queue is shared, its counters copied; a provider's probe verdict too */
    assert_ptr_equal(n1->admission, m1->admission);
    assert_ptr_equal(n1->retries, m1->retries); /* retries spent before the reload still count */
    assert_ptr_equal(n1->hedges, m1->hedges);
    assert_int_equal(atomic_load(&n1->requests), 41);
    assert_true(
        atomic_load(&runtime_provider(next, config_find_model(b, "fresh")->deployments[0].provider)
                         ->probe_down));
    assert_false(atomic_load(&next->providers[1].probe_down));
    assert_ptr_not_equal(model(next, "fresh")->admission, m1->admission);

    struct runtime_carry_report r;
    runtime_carry_diff(old, next, &r);
    assert_int_equal(r.models_added, 1);
    assert_int_equal(r.models_removed, 1);
    assert_int_equal(r.models_kept, 2);
    assert_int_equal(r.deps_added, 3);   /* fresh's up-f, m1's up-n, m1's moved pb/up-b */
    assert_int_equal(r.deps_removed, 2); /* gone's pb/up-g, m1's old pb/up-b */
    assert_int_equal(r.deps_kept, 2);
    assert_non_null(strstr(r.json.data, "\"removed\":[\"gone\"]"));
    assert_non_null(strstr(r.json.data, "\"m1: pa/up-n\""));
    runtime_carry_report_free(&r);

    /* a request waits in the removed model's queue: the commit answers it */
    struct runtime_model *g = model(old, "gone");
    struct admission_waiter w = {.cls = 0};
    admission_set_capacity(g->admission, 1);
    assert_int_equal(admission_try(g->admission, 0), ADMISSION_START);
    assert_int_equal(admission_enqueue(g->admission, &w, 1), 0);
    readied = gone = 0;
    assert_int_equal(m1->admission->cfg->max, 1000); /* until the commit, the running settings */
    assert_int_equal(runtime_carry_commit(old, next), 1);
    assert_int_equal(readied, 1);
    assert_int_equal(gone, 1);
    assert_true(atomic_load(&old->retired));
    /* a request of the old generation reaching the closed queue later is not queued */
    struct admission_waiter late = {.cls = 0};
    assert_int_equal(admission_enqueue(g->admission, &late, 2), -ESHUTDOWN);
    /* the shared queue now reads the new snapshot's settings (a copy) */
    assert_int_equal(n1->admission->cfg->max, 7);

    /* the old generation goes with its last reference; what next shares stays */
    config_unref(a);
    runtime_ref(old);
    runtime_unref(old);
    assert_int_equal(health_admin_state(n1->deps[1].health), HEALTH_ADMIN_DRAINING);
    runtime_unref(old);
    assert_int_equal(health_admin_state(n1->deps[1].health), HEALTH_ADMIN_DRAINING);
    ttft_budget_class_stats(n1->deps[1].ttft, ttft_budget_class_of(100), &st);
    assert_int_equal(st.samples, 50);
    runtime_unref(next);
    config_unref(b);
}

/* A reload to the same file keeps everything, and the learnt limit's new cap applies. */
static void test_same_file_keeps_all(void **state)
{
    (void)state;
    struct config *a = load(before), *b = load(before);
    struct runtime *old = runtime_new(a, NULL);
    struct runtime *next = runtime_build(b, NULL, old);
    struct runtime_carry_report r;
    runtime_carry_diff(old, next, &r);
    assert_int_equal(r.models_added + r.models_removed + r.deps_added + r.deps_removed, 0);
    assert_int_equal(r.models_kept, 3);
    assert_int_equal(r.deps_kept, 4);
    runtime_carry_report_free(&r);
    for (size_t i = 0; i < a->nmodels; i++)
        for (size_t j = 0; j < old->models[i].ndeps; j++)
            assert_ptr_equal(next->models[i].deps[j].state, old->models[i].deps[j].state);
    assert_int_equal(runtime_carry_commit(old, next), 0);
    runtime_unref(old);
    runtime_unref(next);
    config_unref(a);
    config_unref(b);
}

static void test_same_dep_key(void **state)
{
    (void)state;
    struct config *a = load(before), *b = load(after);
    const struct cfg_deployment *x = &config_find_model(a, "m1")->deployments[0];
    const struct cfg_deployment *y = &config_find_model(b, "m1")->deployments[1];
    const struct cfg_deployment *moved = &config_find_model(b, "m1")->deployments[2];
    assert_true(runtime_carry_same_dep(x, y)); /* max_concurrency is not part of the key */
    assert_false(runtime_carry_same_dep(&config_find_model(a, "m1")->deployments[1], moved));
    assert_false(runtime_carry_same_dep(x, &config_find_model(b, "m1")->deployments[0]));
    config_unref(a);
    config_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_follows_the_key),
        cmocka_unit_test(test_same_file_keeps_all),
        cmocka_unit_test(test_same_dep_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
