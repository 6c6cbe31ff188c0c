/*
 * The endpoint set of a discovered deployment: merging answers (added, kept with their
 * health, drained, brought back), draining until the last attempt ends, choosing the least
 * loaded eligible address of the best SRV priority, the verdict that goes to the
 * deployment, the pending and empty states, and the resolution schedule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "config/config_discovery.h"
#include "route/discovery.h"
#include "route/endpoints.h"

#define T0 1000000u

static struct endpoint_addr addr4(const char *ip, uint16_t port, uint32_t ttl)
{
    struct endpoint_addr a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *in = (struct sockaddr_in *)&a.sa;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, ip, &in->sin_addr);
    a.ttl_s = ttl;
    a.weight = 1;
    a.source = ENDPOINT_SRC_A;
    return a;
}

static struct endpoint_set *new_set(void)
{
    struct health_params hp;
    health_params_default(&hp);
    hp.consecutive_failures = 2;
    struct endpoint_set *s = endpoint_set_new(&hp, 0);
    assert_non_null(s);
    return s;
}

static struct endpoint *pick(struct endpoint_set *s, uint64_t now, uint64_t r,
                             struct health_ticket *t)
{
    return endpoint_pick(s, now, NULL, 0, r, t);
}

static void test_pending_then_empty(void **state)
{
    struct endpoint_set *s = new_set();
    const char *why = NULL;
    /* no answer yet: the deployment is used by its name */
    assert_true(endpoint_set_eligible(s, T0, &why));
    assert_false(endpoint_set_answered(s));
    assert_int_equal(endpoint_set_returns_at(s, T0), T0);
    /* a first resolution that fails leaves no address: ineligible, with the reason */
    endpoint_set_failed(s, "vllm.test: not_found");
    assert_true(endpoint_set_answered(s));
    assert_false(endpoint_set_eligible(s, T0, &why));
    assert_string_equal(why, "no_addresses");
    assert_int_equal(endpoint_set_returns_at(s, T0), UINT64_MAX);
    struct health_ticket t;
    assert_null(pick(s, T0, 1, &t));
    endpoint_set_free(s);
}

static void test_merge_adds_keeps_drains(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[3] = {addr4("127.0.0.2", 80, 5), addr4("127.0.0.3", 80, 5),
                                 addr4("127.0.0.2", 80, 5)};
    assert_int_equal(endpoint_set_merge(s, a, 3, T0), 2); /* the duplicate counts once */
    struct endpoint_set_stats st;
    endpoint_set_stats(s, T0, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.healthy, 2);
    assert_false(st.stale);
    /* the same answer again adds nothing */
    assert_int_equal(endpoint_set_merge(s, a, 2, T0 + 1000), 0);
    /* another port is another endpoint */
    struct endpoint_addr b[3] = {a[0], a[1], addr4("127.0.0.3", 81, 5)};
    assert_int_equal(endpoint_set_merge(s, b, 3, T0 + 2000), 1);
    /* one gone with nothing in flight: freed at once */
    assert_int_equal(endpoint_set_merge(s, b, 2, T0 + 3000), 0);
    endpoint_set_stats(s, T0, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.draining, 0);
    assert_int_equal(atomic_load(&s->removed), 1);
    endpoint_set_free(s);
}

static void test_drain_until_last_attempt(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[2] = {addr4("127.0.0.2", 80, 5), addr4("127.0.0.3", 80, 5)};
    endpoint_set_merge(s, a, 2, T0);
    struct health_ticket t1, t2;
    struct endpoint *e1 = pick(s, T0, 1, &t1);
    assert_non_null(e1);
    /* the least loaded: the other one */
    struct endpoint *e2 = pick(s, T0, 1, &t2);
    assert_non_null(e2);
    assert_ptr_not_equal(e1, e2);
    /* e1's address disappears: it drains, e2 stays */
    struct endpoint_addr keep = strcmp(e2->name, "127.0.0.2:80") == 0 ? a[0] : a[1];
    endpoint_set_merge(s, &keep, 1, T0 + 1000);
    struct endpoint_set_stats st;
    endpoint_set_stats(s, T0 + 1000, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.draining, 1);
    /* no new attempt goes to the draining one */
    for (int i = 0; i < 10; i++) {
        struct health_ticket t;
        struct endpoint *e = pick(s, T0 + 1000, (uint64_t)i, &t);
        assert_ptr_equal(e, e2);
        endpoint_abandon(s, e, &t, 0);
    }
    /* its attempt ends well: the outcome is the deployment's too, and it is freed */
    bool verdict = false;
    endpoint_release(s, e1, &t1, T0 + 1500, HEALTH_OK, 100, 0, 1, &verdict);
    assert_true(verdict);
    endpoint_set_stats(s, T0 + 1500, &st);
    assert_int_equal(st.draining, 0);
    assert_int_equal(st.active, 1);
    endpoint_release(s, e2, &t2, T0 + 1500, HEALTH_OK, 100, 0, 1, NULL);
    endpoint_set_free(s);
}

static void test_comes_back_with_its_health(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[2] = {addr4("127.0.0.2", 80, 5), addr4("127.0.0.3", 80, 5)};
    endpoint_set_merge(s, a, 2, T0);
    struct health_ticket t;
    struct endpoint *e = endpoint_pick(s, T0, NULL, 0, 7, &t);
    uint64_t id = e->id;
    /* dropped while in flight, then named again: the same endpoint, active again */
    struct endpoint_addr other = strcmp(e->name, "127.0.0.2:80") == 0 ? a[1] : a[0];
    endpoint_set_merge(s, &other, 1, T0 + 10);
    endpoint_set_merge(s, a, 2, T0 + 20);
    struct endpoint_set_stats st;
    endpoint_set_stats(s, T0 + 20, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.draining, 0);
    assert_int_equal(health_inflight(&e->health), 1);
    assert_int_equal(e->id, id);
    endpoint_release(s, e, &t, T0 + 30, HEALTH_OK, 10, 0, 1, NULL);
    endpoint_set_free(s);
}

static void test_failing_address_has_its_own_breaker(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[2] = {addr4("127.0.0.2", 80, 5), addr4("127.0.0.3", 80, 5)};
    endpoint_set_merge(s, a, 2, T0);
    struct endpoint *bad = s->list, *good = s->list->next;
    for (int i = 0; i < 2; i++) {
        struct health_ticket t;
        /* the request avoids what it tried: with good tried, bad is chosen */
        struct endpoint *e = endpoint_pick(s, T0, &good->id, 1, 1, &t);
        assert_ptr_equal(e, bad);
        bool verdict = true;
        endpoint_release(s, e, &t, T0, HEALTH_CONNECT, 0, 1000, 1, &verdict);
        /* the other address still serves: the failure is the address's, not the deployment's */
        assert_false(verdict);
    }
    const char *why = NULL;
    assert_false(health_eligible(&bad->health, T0, &why));
    assert_string_equal(why, "open");
    assert_true(endpoint_set_eligible(s, T0, NULL));
    assert_int_equal(endpoint_set_healthy(s, T0), 1);
    /* every pick now goes to the other one */
    for (int i = 0; i < 10; i++) {
        struct health_ticket t;
        struct endpoint *e = pick(s, T0, (uint64_t)i * 7919, &t);
        assert_ptr_equal(e, good);
        endpoint_release(s, e, &t, T0, HEALTH_OK, 10, 0, 1, NULL);
    }
    /* the last eligible address failing is the deployment's failure */
    struct health_ticket t;
    bool verdict = false;
    endpoint_release(s, pick(s, T0, 1, &t), &t, T0, HEALTH_SERVER_ERROR, 0, 0, 1, &verdict);
    assert_true(verdict);
    /* its breaker's end is when the set takes requests again at the earliest */
    assert_true(endpoint_set_returns_at(s, T0) == T0);
    endpoint_set_free(s);
}

static void test_tried_avoided_and_spread(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[3] = {addr4("127.0.0.2", 80, 5), addr4("127.0.0.3", 80, 5),
                                 addr4("127.0.0.4", 80, 5)};
    endpoint_set_merge(s, a, 3, T0);
    /* the request's tried addresses are avoided while another is left */
    struct health_ticket t;
    struct endpoint *first = pick(s, T0, 3, &t);
    endpoint_abandon(s, first, &t, 0);
    uint64_t tried[2] = {first->id, 0};
    struct endpoint *second = endpoint_pick(s, T0, tried, 1, 3, &t);
    assert_ptr_not_equal(second, first);
    endpoint_abandon(s, second, &t, 0);
    tried[1] = second->id;
    struct endpoint *third = endpoint_pick(s, T0, tried, 2, 3, &t);
    assert_ptr_not_equal(third, first);
    assert_ptr_not_equal(third, second);
    endpoint_abandon(s, third, &t, 0);
    /* all tried: any of them rather than none */
    uint64_t all[3] = {first->id, second->id, third->id};
    struct endpoint *any = endpoint_pick(s, T0, all, 3, 3, &t);
    assert_non_null(any);
    endpoint_abandon(s, any, &t, 0);
    /* sequential picks with nothing in flight spread over every address */
    unsigned hits[3] = {0};
    for (uint64_t r = 1; r <= 300; r++) {
        struct endpoint *e = pick(s, T0, r * 0x9E3779B97F4A7C15ULL, &t);
        hits[e->name[8] - '2']++;
        endpoint_abandon(s, e, &t, 0);
    }
    for (int i = 0; i < 3; i++)
        assert_true(hits[i] > 50);
    endpoint_set_free(s);
}

static void test_srv_priority_and_weight(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a[3] = {addr4("127.0.0.2", 8001, 5), addr4("127.0.0.3", 8002, 5),
                                 addr4("127.0.0.4", 8003, 5)};
    a[0].priority = 1; /* a backup */
    a[1].priority = 0;
    a[1].weight = 3;
    a[2].priority = 0;
    a[2].weight = 1;
    for (int i = 0; i < 3; i++)
        a[i].source = ENDPOINT_SRC_SRV;
    endpoint_set_merge(s, a, 3, T0);
    /* in flight per weight: the weight-3 address takes three for the other's one */
    struct health_ticket t[8];
    struct endpoint *e[8];
    unsigned heavy = 0;
    for (int i = 0; i < 8; i++) {
        e[i] = pick(s, T0, (uint64_t)i, &t[i]);
        assert_int_equal(e[i]->priority, 0); /* never the backup while priority 0 serves */
        if (e[i]->weight == 3) heavy++;
    }
    assert_int_equal(heavy, 6);
    for (int i = 0; i < 8; i++)
        endpoint_abandon(s, e[i], &t[i], 0);
    endpoint_set_free(s);
}

static void test_failed_resolution_keeps_last_good(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a = addr4("127.0.0.2", 80, 5);
    endpoint_set_merge(s, &a, 1, T0);
    endpoint_set_failed(s, "vllm.test: timeout");
    struct endpoint_set_stats st;
    endpoint_set_stats(s, T0, &st);
    assert_true(st.stale);
    assert_int_equal(st.active, 1);
    assert_string_equal(st.last_error, "vllm.test: timeout");
    assert_true(endpoint_set_eligible(s, T0, NULL));
    endpoint_set_merge(s, &a, 1, T0 + 1000);
    endpoint_set_stats(s, T0, &st);
    assert_false(st.stale);
    assert_int_equal(atomic_load(&s->resolutions_failed), 1);
    assert_int_equal(atomic_load(&s->resolutions_ok), 2);
    endpoint_set_free(s);
}

static void test_bounded(void **state)
{
    struct health_params hp;
    health_params_default(&hp);
    struct endpoint_set *s = endpoint_set_new(&hp, 4);
    struct endpoint_addr a[10];
    char ip[32];
    for (int i = 0; i < 10; i++) {
        snprintf(ip, sizeof ip, "10.0.0.%d", i + 1);
        a[i] = addr4(ip, 80, 5);
    }
    assert_int_equal(endpoint_set_merge(s, a, 10, T0), 4);
    struct endpoint_set_stats st;
    endpoint_set_stats(s, T0, &st);
    assert_int_equal(st.active, 4);
    endpoint_set_free(s);
}

static void test_ipv6_names(void **state)
{
    struct endpoint_set *s = new_set();
    struct endpoint_addr a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.sa;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(8000);
    inet_pton(AF_INET6, "fd00::7", &in6->sin6_addr);
    a.weight = 1;
    a.source = ENDPOINT_SRC_AAAA;
    struct endpoint_addr v4 = addr4("127.0.0.2", 8000, 1);
    struct endpoint_addr both[2] = {a, v4};
    assert_int_equal(endpoint_set_merge(s, both, 2, T0), 2);
    struct endpoint_view v[4];
    assert_int_equal(endpoint_set_view(s, T0, v, 4), 2);
    assert_string_equal(v[0].name, "[fd00::7]:8000");
    assert_string_equal(v[0].source, "aaaa");
    assert_string_equal(v[0].state, "active");
    assert_string_equal(v[1].name, "127.0.0.2:8000");
    assert_string_equal(v[1].source, "a");
    endpoint_set_free(s);
}

static void test_next_interval(void **state)
{
    struct cfg_discovery c = {.interval_min_ms = 1000, .interval_max_ms = 300000};
    assert_int_equal(discovery_next_ms(&c, 0, 0), 1000);       /* TTL 0: the floor */
    assert_int_equal(discovery_next_ms(&c, 30, 0), 30000);     /* the TTL */
    assert_int_equal(discovery_next_ms(&c, 86400, 0), 300000); /* the cap */
    assert_int_equal(discovery_next_ms(&c, 30, 1), 1000);      /* failures: from the floor */
    assert_int_equal(discovery_next_ms(&c, 30, 3), 4000);      /* doubling */
    assert_int_equal(discovery_next_ms(&c, 30, 40), 300000);   /* up to the cap */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_then_empty),
        cmocka_unit_test(test_merge_adds_keeps_drains),
        cmocka_unit_test(test_drain_until_last_attempt),
        cmocka_unit_test(test_comes_back_with_its_health),
        cmocka_unit_test(test_failing_address_has_its_own_breaker),
        cmocka_unit_test(test_tried_avoided_and_spread),
        cmocka_unit_test(test_srv_priority_and_weight),
        cmocka_unit_test(test_failed_resolution_keeps_last_good),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_ipv6_names),
        cmocka_unit_test(test_next_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
