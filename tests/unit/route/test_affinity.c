#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "route/affinity.h"
#include "route/balancer.h"

static const char *const names[] = {"a/m", "b/m", "c/m", "d/m"};

static uint64_t key_of(unsigned k)
{
    char s[32];
    int n = snprintf(s, sizeof s, "conversation-%u", k);
    return affinity_hash(s, (size_t)n, 0);
}

/* Equal loads: a key keeps its deployment, and keys spread over all of them. */
static void test_home_and_spread(void **state)
{
    struct affinity *a = affinity_new(names, 4, 1.25);
    assert_non_null(a);
    uint16_t set[4] = {0, 1, 2, 3};
    double load[4] = {1, 1, 1, 1};
    int per[4] = {0};
    for (unsigned k = 0; k < 4000; k++) {
        size_t first = affinity_choose(a, key_of(k), set, load, 4);
        assert_true(first < 4);
        assert_int_equal(affinity_choose(a, key_of(k), set, load, 4), first);
        per[first]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(per[i] > 600 && per[i] < 1400); /* 1000 each, give or take the ring */
    assert_int_equal(atomic_load(&a->home), 8000);
    assert_int_equal(atomic_load(&a->spill), 0);
    affinity_free(a);
}

/* Over the bound, the key's requests go on to the next on the ring, the same one each time. */
static void test_bounded_load_spills_to_next(void **state)
{
    struct affinity *a = affinity_new(names, 4, 1.25);
    uint16_t set[4] = {0, 1, 2, 3};
    double even[4] = {2, 2, 2, 2};
    for (unsigned k = 0; k < 200; k++) {
        size_t home = affinity_choose(a, key_of(k), set, even, 4);
        double load[4] = {2, 2, 2, 2};
        load[home] = 6; /* mean 3, bound 3.75 + 1 */
        size_t next = affinity_choose(a, key_of(k), set, load, 4);
        assert_true(next != home);
        assert_int_equal(affinity_choose(a, key_of(k), set, load, 4), next);
        /* at the bound itself it still counts as home */
        load[home] = 11.5 / 2.75 - 1e-9; /* x = 1.25 (6 + x) / 4 + 1 */
        assert_int_equal(affinity_choose(a, key_of(k), set, load, 4), home);
    }
    assert_int_equal(atomic_load(&a->spill), 400);
    affinity_free(a);
}

/* A deployment out of the set (open, excluded) moves only its own keys. */
static void test_consistent_when_one_leaves(void **state)
{
    struct affinity *a = affinity_new(names, 4, 1.25);
    uint16_t all[4] = {0, 1, 2, 3}, three[3] = {0, 1, 3};
    double load[4] = {1, 1, 1, 1};
    for (unsigned k = 0; k < 1000; k++) {
        size_t home = affinity_choose(a, key_of(k), all, load, 4);
        size_t now = affinity_choose(a, key_of(k), three, load, 3);
        if (home != 2) assert_int_equal(three[now], all[home]);
    }
    affinity_free(a);
}

/* Through the balancer: a keyed pick goes to the ring's choice; no key: the strategy's. */
static void test_balancer_keyed(void **state)
{
    struct health h[3];
    struct balancer_candidate c[3];
    for (int i = 0; i < 3; i++) {
        health_init(&h[i], NULL);
        c[i] = (struct balancer_candidate){.h = &h[i], .weight = 1};
    }
    struct cfg_model m = {.routing = {.affinity = CFG_AFFINITY_PREFIX, .load_factor = 1.25}};
    struct balancer *b = balancer_create(
        BALANCER_LEAST_INFLIGHT, &(struct balancer_config){.model = &m, .ndeps = 3, .keys = names});
    assert_non_null(b->affinity);
    uint64_t key = key_of(7);
    int home = balancer_pick_keyed(b, c, 3, 1000, 1, key);
    for (uint64_t r = 0; r < 20; r++)
        assert_int_equal(balancer_pick_keyed(b, c, 3, 1000, r, key), home);
    /* load on home past 1.25 x the mean: the next one */
    struct health_ticket t[4];
    for (int k = 0; k < 4; k++)
        assert_true(health_acquire(&h[home], 1000, &t[k]));
    int next = balancer_pick_keyed(b, c, 3, 1000, 1, key);
    assert_int_not_equal(next, home);
    /* the home deployment excluded: never chosen */
    for (int k = 0; k < 4; k++)
        health_abandon(&h[home], &t[k]);
    c[home].excluded = true;
    assert_int_not_equal(balancer_pick_keyed(b, c, 3, 1000, 1, key), home);
    balancer_destroy(b);
    /* affinity off: no ring */
    m.routing.affinity = CFG_AFFINITY_OFF;
    b = balancer_create(BALANCER_P2C,
                        &(struct balancer_config){.model = &m, .ndeps = 3, .keys = names});
    assert_null(b->affinity);
    balancer_destroy(b);
    for (int i = 0; i < 3; i++)
        health_destroy(&h[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_home_and_spread),
        cmocka_unit_test(test_bounded_load_spills_to_next),
        cmocka_unit_test(test_consistent_when_one_leaves),
        cmocka_unit_test(test_balancer_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
