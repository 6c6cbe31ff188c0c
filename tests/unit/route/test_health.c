#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "admit/ratelimit.h"
#include "route/health.h"

#define T0 1000000u           /* a "now" far from 0, like a real monotonic clock */
#define MID_RAND (1ull << 63) /* jitter factor exactly 1.0 */

static void assert_near(double got, double want, double tol)
{
    if (fabs(got - want) > tol)
        fail_msg("got %f, want %f (±%f)", got, want, tol);
}

static void init_with(struct health *h, void (*tweak)(struct health_params *))
{
    struct health_params p;
    health_params_default(&p);
    if (tweak)
        tweak(&p);
    health_init(h, &p);
}

/* One whole attempt: acquire, then release with this outcome; returns the events. */
static unsigned attempt(struct health *h, uint64_t now, enum health_class cls)
{
    struct health_ticket t;
    assert_true(health_acquire(h, now, &t));
    return health_release(h, &t, now, cls, 0, 0, MID_RAND);
}

static const char *why(struct health *h, uint64_t now)
{
    const char *w = NULL;
    bool ok = health_eligible(h, now, &w);
    assert_int_equal(ok, w == NULL);
    return w ? w : "eligible";
}

static const char *breaker(struct health *h, uint64_t now)
{
    struct health_snapshot s;
    health_snapshot(h, now, &s);
    return s.breaker;
}

static uint64_t open_remaining(struct health *h, uint64_t now)
{
    struct health_snapshot s;
    health_snapshot(h, now, &s);
    return s.open_remaining_ms;
}

static void test_names(void **state)
{
    for (int i = 0; i < HEALTH__COUNT; i++) {
        assert_string_not_equal(health_class_name((enum health_class)i), "?");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(health_class_name((enum health_class)i),
                                    health_class_name((enum health_class)j));
    }
    assert_string_equal(health_class_name(HEALTH_RATE_LIMITED), "rate_limited");
    assert_string_equal(health_class_name(HEALTH__COUNT), "?");
    enum health_admin a;
    assert_int_equal(health_admin_parse("draining", &a), 0);
    assert_int_equal(a, HEALTH_ADMIN_DRAINING);
    assert_int_not_equal(health_admin_parse("drain", &a), 0);
    assert_string_equal(health_admin_name(HEALTH_ADMIN_DISABLED), "disabled");
    assert_string_equal(health_breaker_name(HEALTH_BREAKER_HALF_OPEN), "half_open");
}

static void test_defaults(void **state)
{
    struct health_params p;
    health_params_default(&p);
    assert_int_equal(p.window_ms, 30000);
    assert_int_equal(p.min_requests, 10);
    assert_near(p.failure_ratio, 0.5, 0);
    assert_int_equal(p.consecutive_failures, 5);
    assert_int_equal(p.open_ms, 5000);
    assert_int_equal(p.open_max_ms, 120000);
    assert_int_equal(p.half_open_trials, 1);
    assert_int_equal(p.ewma_tau_ms, 10000);
    assert_int_equal(p.ewma_prior_ms, 1000);
    struct health h;
    health_init(&h, NULL);
    assert_string_equal(why(&h, T0), "eligible");
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_string_equal(s.breaker, "closed");
    assert_string_equal(s.admin, "active");
    assert_true(s.eligible);
    assert_near(s.ewma_ttft_ms, 1000, 0);
    assert_int_equal(s.ttft_samples, 0);
    assert_null(s.last_failure);
    health_destroy(&h);
}

static void test_trip_by_ratio(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint64_t now = T0;
    /* F S F S F S F S F: 9 outcomes, 5 failures, never two in a row */
    for (int i = 0; i < 9; i++)
        assert_int_equal(attempt(&h, now += 100, i % 2 ? HEALTH_OK : HEALTH_SERVER_ERROR), 0);
    assert_string_equal(breaker(&h, now), "closed");
    /* the 10th, a failure: 10 outcomes, 6 failures >= 0.5 */
    assert_int_equal(attempt(&h, now += 100, HEALTH_CONNECT), HEALTH_EVENT_TRIPPED);
    assert_string_equal(why(&h, now), "open");
    struct health_ticket t;
    assert_false(health_acquire(&h, now, &t));
    struct health_snapshot s;
    health_snapshot(&h, now, &s);
    assert_int_equal(s.trips, 1);
    assert_int_equal(s.open_remaining_ms, 5000);
    health_destroy(&h);
}

static void below_ratio(struct health_params *p)
{
    p->consecutive_failures = 0;
}

static void test_stays_closed_under_min_requests(void **state)
{
    struct health h;
    init_with(&h, below_ratio);
    uint64_t now = T0;
    for (int i = 0; i < 9; i++)
        assert_int_equal(attempt(&h, now += 10, HEALTH_SERVER_ERROR), 0);
    assert_string_equal(breaker(&h, now), "closed"); /* 100 % failures, but only 9 */
    assert_int_equal(attempt(&h, now += 10, HEALTH_SERVER_ERROR), HEALTH_EVENT_TRIPPED);
    health_destroy(&h);

    /* enough requests, but below the ratio: 3 failures in every 10 */
    init_with(&h, below_ratio);
    now = T0;
    for (int i = 0; i < 20; i++)
        assert_int_equal(attempt(&h, now += 10, i % 10 < 3 ? HEALTH_STALL : HEALTH_OK), 0);
    struct health_snapshot s;
    health_snapshot(&h, now, &s);
    assert_string_equal(s.breaker, "closed");
    assert_int_equal(s.window_requests, 20);
    assert_int_equal(s.window_failures, 6);
    assert_near(s.window_failure_ratio, 0.3, 1e-9);
    health_destroy(&h);
}

static void test_window_slides(void **state)
{
    struct health h;
    init_with(&h, below_ratio);
    uint64_t now = T0;
    for (int i = 0; i < 9; i++)
        attempt(&h, now, HEALTH_SERVER_ERROR);
    /* a whole window later those nine are forgotten */
    now += 30000;
    struct health_snapshot s;
    health_snapshot(&h, now, &s);
    assert_int_equal(s.window_requests, 0);
    assert_int_equal(attempt(&h, now, HEALTH_SERVER_ERROR), 0);
    assert_string_equal(breaker(&h, now), "closed");
    health_destroy(&h);
}

static void test_trip_by_consecutive(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint64_t now = T0;
    for (int i = 0; i < 4; i++)
        assert_int_equal(attempt(&h, now, HEALTH_FIRST_TOKEN), 0);
    assert_int_equal(attempt(&h, now, HEALTH_OK), 0); /* breaks the run */
    for (int i = 0; i < 4; i++)
        assert_int_equal(attempt(&h, now, HEALTH_FIRST_TOKEN), 0);
    struct health_snapshot s;
    health_snapshot(&h, now, &s);
    assert_string_equal(s.breaker, "closed");
    assert_int_equal(s.consecutive_failures, 4);
    health_destroy(&h);

    /* five in a row trip it, far below min_requests */
    health_init(&h, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(attempt(&h, now, HEALTH_CONNECT_TIMEOUT), 0);
    assert_int_equal(attempt(&h, now, HEALTH_TLS), HEALTH_EVENT_TRIPPED);
    health_snapshot(&h, now, &s);
    assert_string_equal(s.breaker, "open");
    assert_int_equal(s.consecutive_failures, 0);
    health_destroy(&h);
}

static void trip_now(struct health *h, uint64_t now, uint64_t rand)
{
    unsigned ev = 0;
    for (int i = 0; i < 5 && !ev; i++)
        ev = health_release(h, NULL, now, HEALTH_CONNECT, 0, 0, rand);
    assert_int_equal(ev, HEALTH_EVENT_TRIPPED);
}

static void two_trials(struct health_params *p)
{
    p->half_open_trials = 2;
}

static void test_half_open_trials(void **state)
{
    struct health h;
    init_with(&h, two_trials);
    trip_now(&h, T0, MID_RAND);
    uint64_t t = T0 + 4999;
    assert_string_equal(why(&h, t), "open");
    t++;
    assert_string_equal(why(&h, t), "eligible");
    assert_string_equal(breaker(&h, t), "half_open");
    struct health_ticket a, b, c, d;
    assert_true(health_acquire(&h, t, &a));
    assert_true(health_acquire(&h, t, &b));
    assert_true(a.trial && b.trial);
    assert_false(health_acquire(&h, t, &c)); /* exactly two at a time */
    assert_string_equal(why(&h, t), "half_open");
    /* one trial succeeds: not closed yet, but its slot is free again */
    assert_int_equal(health_release(&h, &a, t + 10, HEALTH_OK, 300, 0, MID_RAND), 0);
    assert_string_equal(breaker(&h, t + 10), "half_open");
    assert_true(health_acquire(&h, t + 10, &c));
    assert_false(health_acquire(&h, t + 10, &d));
    /* the second success closes it */
    assert_int_equal(health_release(&h, &b, t + 20, HEALTH_OK, 300, 0, MID_RAND), HEALTH_EVENT_CLOSED);
    assert_string_equal(breaker(&h, t + 20), "closed");
    assert_int_equal(health_inflight(&h), 1);
    /* the third trial is now an ordinary request */
    assert_int_equal(health_release(&h, &c, t + 30, HEALTH_CONNECT, 0, 0, MID_RAND), 0);
    assert_int_equal(health_inflight(&h), 0);
    assert_string_equal(breaker(&h, t + 30), "closed");
    health_destroy(&h);
}

static void test_half_open_single_trial_fails(void **state)
{
    struct health h;
    health_init(&h, NULL);
    trip_now(&h, T0, MID_RAND);
    uint64_t t = T0 + 5000;
    struct health_ticket a, b;
    assert_true(health_acquire(&h, t, &a));
    assert_false(health_acquire(&h, t, &b));
    assert_int_equal(health_release(&h, &a, t + 100, HEALTH_SERVER_ERROR, 0, 0, MID_RAND),
                     HEALTH_EVENT_TRIPPED);
    assert_string_equal(breaker(&h, t + 100), "open");
    assert_int_equal(open_remaining(&h, t + 100), 10000); /* doubled */
    health_destroy(&h);
}

/* A request started before the trip finishes while the breaker is half-open:
   only the trial may decide. */
static void test_stale_release_does_not_decide(void **state)
{
    struct health h;
    health_init(&h, NULL);
    struct health_ticket old_ok, old_bad, trial;
    assert_true(health_acquire(&h, T0, &old_ok));
    assert_true(health_acquire(&h, T0, &old_bad));
    trip_now(&h, T0, MID_RAND);
    uint64_t t = T0 + 5000;
    assert_true(health_acquire(&h, t, &trial));
    assert_int_equal(health_release(&h, &old_ok, t, HEALTH_OK, 500, 0, 0), 0);
    assert_int_equal(health_release(&h, &old_bad, t, HEALTH_CUT, 0, 0, 0), 0);
    assert_string_equal(breaker(&h, t), "half_open");
    assert_string_equal(why(&h, t), "half_open"); /* the trial slot is still taken */
    assert_int_equal(health_release(&h, &trial, t, HEALTH_OK, 500, 0, 0), HEALTH_EVENT_CLOSED);
    assert_int_equal(health_inflight(&h), 0);
    /* releasing a ticket twice changes nothing */
    health_release(&h, &trial, t, HEALTH_OK, 0, 0, 0);
    assert_int_equal(health_inflight(&h), 0);
    health_destroy(&h);
}

/* The failures that opened the breaker do not count against it once closed. */
static void test_close_forgets_window(void **state)
{
    struct health h;
    init_with(&h, below_ratio);
    uint64_t t = T0;
    for (int i = 0; i < 9; i++)
        attempt(&h, t, i % 2 ? HEALTH_OK : HEALTH_SERVER_ERROR);
    assert_int_equal(attempt(&h, t, HEALTH_SERVER_ERROR), HEALTH_EVENT_TRIPPED);
    t += 5000;
    struct health_ticket tr;
    assert_true(health_acquire(&h, t, &tr));
    assert_int_equal(health_release(&h, &tr, t, HEALTH_OK, 0, 0, 0), HEALTH_EVENT_CLOSED);
    struct health_snapshot s;
    health_snapshot(&h, t, &s);
    assert_int_equal(s.window_requests, 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(attempt(&h, t, HEALTH_SERVER_ERROR), 0);
    assert_int_equal(attempt(&h, t, HEALTH_SERVER_ERROR), HEALTH_EVENT_TRIPPED);
    health_destroy(&h);
}

static void test_open_time_doubles_bounded(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint64_t t = T0;
    trip_now(&h, t, MID_RAND);
    static const uint64_t want[] = {5000, 10000, 20000, 40000, 80000, 120000, 120000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(open_remaining(&h, t), want[i]);
        t += want[i];
        struct health_ticket tr;
        assert_true(health_acquire(&h, t, &tr));
        assert_int_equal(health_release(&h, &tr, t, HEALTH_FIRST_TOKEN, 0, 0, MID_RAND),
                         HEALTH_EVENT_TRIPPED);
    }
    /* at the bound, jitter never goes past it */
    t += 120000;
    struct health_ticket tr;
    assert_true(health_acquire(&h, t, &tr));
    health_release(&h, &tr, t, HEALTH_FIRST_TOKEN, 0, 0, UINT64_MAX);
    assert_int_equal(open_remaining(&h, t), 120000);
    t += 120000;
    assert_true(health_acquire(&h, t, &tr));
    health_release(&h, &tr, t, HEALTH_FIRST_TOKEN, 0, 0, 0);
    assert_int_equal(open_remaining(&h, t), 96000); /* -20 % */

    /* a trial success closes; a trip soon after keeps doubling from where it was */
    t += 96000;
    assert_true(health_acquire(&h, t, &tr));
    assert_int_equal(health_release(&h, &tr, t, HEALTH_OK, 0, 0, 0), HEALTH_EVENT_CLOSED);
    t += 1000;
    trip_now(&h, t, MID_RAND);
    assert_int_equal(open_remaining(&h, t), 120000);
    /* ... but after a whole window closed, it starts again from open_ms */
    t += 120000;
    assert_true(health_acquire(&h, t, &tr));
    assert_int_equal(health_release(&h, &tr, t, HEALTH_OK, 0, 0, 0), HEALTH_EVENT_CLOSED);
    t += 30000;
    struct health_snapshot s;
    health_snapshot(&h, t, &s);
    assert_int_equal(s.trips_in_row, 0);
    trip_now(&h, t, MID_RAND);
    assert_int_equal(open_remaining(&h, t), 5000);
    health_destroy(&h);
}

static void test_jitter_bounds(void **state)
{
    struct health h;
    health_init(&h, NULL);
    trip_now(&h, T0, 0);
    assert_int_equal(open_remaining(&h, T0), 4000);
    health_reset(&h);
    trip_now(&h, T0, UINT64_MAX);
    uint64_t r = open_remaining(&h, T0);
    assert_true(r >= 5990 && r <= 6000);
    /* spread: different rands give different open times */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < 64; i++) {
        health_reset(&h);
        trip_now(&h, T0, i * 0x0400000000000000ull);
        uint64_t v = open_remaining(&h, T0);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo >= 4000 && lo < 4100);
    assert_true(hi > 5900 && hi < 6000);
    health_destroy(&h);
}

static void test_cooldown(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint64_t t = T0;
    /* 429s with a Retry-After: a cooldown, not breaker failures */
    for (int i = 0; i < 20; i++) {
        struct health_ticket tk;
        health_cooldown(&h, t, 3000);
        if (i == 0)
            assert_true(health_acquire(&h, t, &tk) == false);
        health_release(&h, NULL, t, HEALTH_RATE_LIMITED, 0, 0, 0);
    }
    assert_string_equal(why(&h, t + 2999), "cooldown");
    assert_string_equal(why(&h, t + 3000), "eligible");
    struct health_snapshot s;
    health_snapshot(&h, t + 1000, &s);
    assert_string_equal(s.breaker, "closed");
    assert_int_equal(s.window_requests, 0);
    assert_int_equal(s.cooldown_remaining_ms, 2000);
    assert_int_equal(s.counts[HEALTH_RATE_LIMITED], 20);

    /* a shorter one does not shorten it; a huge one is bounded by open_max */
    health_cooldown(&h, t, 10000);
    health_cooldown(&h, t, 1000);
    assert_string_equal(why(&h, t + 9999), "cooldown");
    health_cooldown(&h, t, 86400000);
    assert_string_equal(why(&h, t + 119999), "cooldown");
    assert_string_equal(why(&h, t + 120000), "eligible");

    /* 429s without a Retry-After are failures like any other */
    t += 200000;
    for (int i = 0; i < 4; i++)
        assert_int_equal(attempt(&h, t, HEALTH_RATE_LIMITED), 0);
    assert_int_equal(attempt(&h, t, HEALTH_RATE_LIMITED), HEALTH_EVENT_TRIPPED);
    health_destroy(&h);
}

static void test_auth(void **state)
{
    struct health h;
    health_init(&h, NULL);
    assert_int_equal(attempt(&h, T0, HEALTH_AUTH), HEALTH_EVENT_AUTH_FIRST);
    assert_string_equal(why(&h, T0), "auth");
    assert_string_equal(why(&h, T0 + 3600000), "auth"); /* no time heals it */
    /* another, from a request already in flight: not "first" again */
    assert_int_equal(health_release(&h, NULL, T0, HEALTH_AUTH, 0, 0, 0), 0);
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_true(s.auth_out);
    assert_int_equal(s.counts[HEALTH_AUTH], 2);
    assert_string_equal(s.last_failure, "auth");
    /* disabling and draining do not clear it; enabling does */
    health_set_admin(&h, HEALTH_ADMIN_DISABLED);
    health_set_admin(&h, HEALTH_ADMIN_DRAINING);
    assert_string_equal(why(&h, T0), "draining");
    health_set_admin(&h, HEALTH_ADMIN_ACTIVE);
    assert_string_equal(why(&h, T0), "eligible");
    assert_int_equal(attempt(&h, T0, HEALTH_AUTH), HEALTH_EVENT_AUTH_FIRST);
    health_reset(&h);
    assert_string_equal(why(&h, T0), "eligible");
    assert_int_equal(attempt(&h, T0, HEALTH_AUTH), HEALTH_EVENT_AUTH_FIRST);
    health_destroy(&h);
}

static void test_admin_states(void **state)
{
    struct health h;
    health_init(&h, NULL);
    struct health_ticket t;
    assert_true(health_acquire(&h, T0, &t));
    health_set_admin(&h, HEALTH_ADMIN_DRAINING);
    assert_int_equal(health_admin_state(&h), HEALTH_ADMIN_DRAINING);
    assert_string_equal(why(&h, T0), "draining");
    struct health_ticket t2;
    assert_false(health_acquire(&h, T0, &t2));
    /* the one in flight finishes normally */
    assert_int_equal(health_inflight(&h), 1);
    health_release(&h, &t, T0 + 5, HEALTH_OK, 100, 0, 0);
    assert_int_equal(health_inflight(&h), 0);
    health_set_admin(&h, HEALTH_ADMIN_DISABLED);
    assert_string_equal(why(&h, T0), "disabled");
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_string_equal(s.admin, "disabled");
    assert_false(s.eligible);
    assert_string_equal(s.why_not, "disabled");
    health_set_admin(&h, HEALTH_ADMIN_ACTIVE);
    assert_string_equal(why(&h, T0), "eligible");
    health_destroy(&h);
}

static void two_at_a_time(struct health_params *p)
{
    p->max_concurrency = 2;
}

static void test_max_concurrency(void **state)
{
    struct health h;
    init_with(&h, two_at_a_time);
    struct health_ticket a, b, c;
    assert_true(health_acquire(&h, T0, &a));
    assert_true(health_acquire(&h, T0, &b));
    assert_false(health_acquire(&h, T0, &c));
    assert_string_equal(why(&h, T0), "saturated");
    health_abandon(&h, &a); /* no verdict, slot back */
    assert_true(health_acquire(&h, T0, &c));
    assert_false(health_acquire(&h, T0, &a));
    health_release(&h, &b, T0, HEALTH_OK, 0, 0, 0);
    health_release(&h, &c, T0, HEALTH_OK, 0, 0, 0);
    assert_int_equal(health_inflight(&h), 0);
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_int_equal(s.requests, 2); /* the abandoned one is no outcome */
    /* a reload lifts the bound, keeping what was learnt */
    struct health_params p;
    health_params_default(&p);
    health_set_params(&h, &p);
    assert_true(health_acquire(&h, T0, &a));
    assert_true(health_acquire(&h, T0, &b));
    assert_true(health_acquire(&h, T0, &c));
    health_snapshot(&h, T0, &s);
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.inflight, 3);
    health_destroy(&h);
}

static void three_rpm(struct health_params *p)
{
    p->rpm = 3;
}

/* A deployment's rpm is a token bucket (admit/bucket.h), as a key's is: a whole minute may
   go at once, then one request's worth every 60 s / rpm; at its rpm the deployment is
   skipped (not eligible), never refused. */
static void test_rpm(void **state)
{
    (void)state;
    struct health h;
    init_with(&h, three_rpm);
    uint64_t t = 5000000;
    assert_int_equal(attempt(&h, t, HEALTH_OK), 0);
    assert_int_equal(attempt(&h, t, HEALTH_OK), 0);
    assert_string_equal(why(&h, t), "eligible");
    assert_int_equal(attempt(&h, t, HEALTH_OK), 0);
    assert_string_equal(why(&h, t), "rpm");
    struct health_ticket tk;
    assert_false(health_acquire(&h, t + 100, &tk));
    assert_string_equal(why(&h, t + 19999), "rpm");
    /* one request's worth has come back, exactly */
    assert_string_equal(why(&h, t + 20000), "eligible");
    struct health_snapshot s;
    health_snapshot(&h, t + 20000, &s);
    assert_int_equal(s.rpm_used, 2);
    assert_int_equal(s.rpm_limit, 3);
    assert_int_equal(attempt(&h, t + 20000, HEALTH_OK), 0);
    assert_string_equal(why(&h, t + 20000), "rpm");
    assert_string_equal(why(&h, t + 39999), "rpm");
    assert_string_equal(why(&h, t + 40000), "eligible");
    /* a quiet minute fills it again: three at once */
    for (int i = 0; i < 3; i++)
        assert_int_equal(attempt(&h, t + 200000, HEALTH_OK), 0);
    assert_string_equal(why(&h, t + 200000), "rpm");
    health_snapshot(&h, t + 200000, &s);
    assert_int_equal(s.rpm_used, 3);
    health_destroy(&h);
}

/* The deployment's rpm and a key's rpm (ratelimit.c) are the same bucket: the same
   requests are admitted at the same moments. */
static void test_rpm_same_bucket_as_ratelimit(void **state)
{
    (void)state;
    struct health h;
    init_with(&h, NULL);
    struct health_params p;
    health_params_default(&p);
    p.rpm = 60;
    health_set_params(&h, &p);
    struct ratelimit *rl = ratelimit_new(4);
    assert_non_null(rl);
    struct ratelimit_def d = {"k", 60, 0, 0};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, &d, 1, T0), 0);
    unsigned both = 0;
    for (uint64_t now = T0; now < T0 + 5000; now += 7) {
        struct health_ticket tk;
        bool dep = health_acquire(&h, now, &tk);
        bool key = ratelimit_try(rl, "k", NULL, 0, now, NULL) == RATELIMIT_OK;
        assert_int_equal(dep, key);
        if (dep) {
            health_release(&h, &tk, now, HEALTH_OK, 0, 0, MID_RAND);
            both++;
        }
    }
    assert_int_equal(both, 60 + 4); /* the minute at once, then one a second */
    ratelimit_free(rl);
    health_destroy(&h);
}

static void sample(struct health *h, uint64_t now, uint32_t ttft)
{
    health_release(h, NULL, now, HEALTH_OK, ttft, 0, 0);
}

static void test_peak_ewma(void **state)
{
    struct health h;
    health_init(&h, NULL);
    assert_near(health_latency_ms(&h, T0), 1000, 0); /* the prior */
    sample(&h, T0, 2000);
    assert_near(health_latency_ms(&h, T0), 2000, 1e-9);
    /* lower: decays toward it by the time since the last sample */
    sample(&h, T0 + 10000, 500);
    double want = 2000 * exp(-1) + 500 * (1 - exp(-1));
    assert_near(health_latency_ms(&h, T0 + 10000), want, 1e-6);
    /* a lower sample at the same instant moves nothing */
    sample(&h, T0 + 10000, 100);
    assert_near(health_latency_ms(&h, T0 + 10000), want, 1e-6);
    /* higher: at once */
    sample(&h, T0 + 10001, 6000);
    assert_near(health_latency_ms(&h, T0 + 10001), 6000, 1e-9);
    /* a short time later a fast sample moves it only a little */
    sample(&h, T0 + 11001, 300);
    double w = exp(-0.1);
    assert_near(health_latency_ms(&h, T0 + 11001), 6000 * w + 300 * (1 - w), 1e-6);
    health_destroy(&h);

    /* the first sample replaces the prior, even below it */
    health_init(&h, NULL);
    sample(&h, T0, 300);
    assert_near(health_latency_ms(&h, T0), 300, 1e-9);
    /* idle, the estimate drifts back to the prior */
    assert_near(health_latency_ms(&h, T0 + 10000), 1000 - 700 * exp(-1), 1e-6);
    assert_near(health_latency_ms(&h, T0 + 200000), 1000, 0.01);
    health_destroy(&h);
}

static void test_failure_penalty(void **state)
{
    struct health h;
    health_init(&h, NULL);
    sample(&h, T0, 400);
    /* failing fast must not look fast */
    health_release(&h, NULL, T0 + 10, HEALTH_CONNECT, 0, 30000, 0);
    assert_near(health_latency_ms(&h, T0 + 10), 30000, 1e-9);
    health_destroy(&h);
    health_init(&h, NULL);
    sample(&h, T0, 400);
    health_release(&h, NULL, T0 + 10, HEALTH_CONNECT, 0, 0, 0); /* no penalty given */
    assert_near(health_latency_ms(&h, T0), 400, 1e-9);
    /* a stream cut after its first token: the TTFT is a sample, then the penalty */
    health_release(&h, NULL, T0 + 20, HEALTH_CUT, 700, 5000, 0);
    assert_near(health_latency_ms(&h, T0 + 20), 5000, 1e-9);
    assert_int_equal(health_ttft_percentiles(&h, NULL, NULL, NULL), 2);
    health_destroy(&h);
}

static void test_score(void **state)
{
    struct health h;
    health_init(&h, NULL);
    sample(&h, T0, 800);
    assert_near(health_score(&h, T0), 800, 1e-9);
    struct health_ticket a, b;
    assert_true(health_acquire(&h, T0, &a));
    assert_true(health_acquire(&h, T0, &b));
    assert_near(health_score(&h, T0), 2400, 1e-9);
    health_abandon(&h, &a);
    health_abandon(&h, &b);
    assert_near(health_score(&h, T0), 800, 1e-9);
    health_destroy(&h);
}

static void test_percentiles(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint32_t p50, p95, p99;
    assert_int_equal(health_ttft_percentiles(&h, &p50, &p95, &p99), 0);
    assert_int_equal(p50 + p95 + p99, 0);
    /* 1..100 in a scrambled order */
    for (uint32_t i = 0; i < 100; i++)
        sample(&h, T0 + i, (i * 37) % 100 + 1);
    assert_int_equal(health_ttft_percentiles(&h, &p50, &p95, &p99), 100);
    assert_int_equal(p50, 50);
    assert_int_equal(p95, 95);
    assert_int_equal(p99, 99);
    /* the ring keeps the last 256: 1000..1299 leaves 1044..1299 */
    for (uint32_t i = 0; i < 300; i++)
        sample(&h, T0 + 1000 + i, 1000 + i);
    assert_int_equal(health_ttft_percentiles(&h, &p50, &p95, &p99), 256);
    assert_int_equal(p50, 1044 + 127);
    assert_int_equal(p95, 1044 + 243);
    assert_int_equal(p99, 1044 + 253);
    struct health_snapshot s;
    health_snapshot(&h, T0 + 2000, &s);
    assert_int_equal(s.ttft_samples, 256);
    assert_int_equal(s.ttft_p50_ms, p50);
    assert_int_equal(s.ttft_p99_ms, p99);
    /* the cache follows new samples */
    for (int i = 0; i < 256; i++)
        sample(&h, T0 + 3000, 7);
    health_ttft_percentiles(&h, &p50, NULL, &p99);
    assert_int_equal(p50, 7);
    assert_int_equal(p99, 7);
    health_destroy(&h);
}

static void test_snapshot_counts(void **state)
{
    struct health h;
    health_init(&h, NULL);
    uint64_t t = T0;
    attempt(&h, t, HEALTH_OK);
    attempt(&h, t, HEALTH_OK);
    attempt(&h, t, HEALTH_OK);
    attempt(&h, t, HEALTH_SERVER_ERROR);
    attempt(&h, t + 7, HEALTH_STALL);
    struct health_snapshot s;
    health_snapshot(&h, t + 10, &s);
    assert_int_equal(s.requests, 5);
    assert_int_equal(s.successes, 3);
    assert_int_equal(s.counts[HEALTH_OK], 3);
    assert_int_equal(s.counts[HEALTH_SERVER_ERROR], 1);
    assert_int_equal(s.counts[HEALTH_STALL], 1);
    assert_int_equal(s.counts[HEALTH_CONNECT], 0);
    assert_int_equal(s.window_requests, 5);
    assert_int_equal(s.window_failures, 2);
    assert_near(s.window_failure_ratio, 0.4, 1e-9);
    assert_int_equal(s.consecutive_failures, 2);
    assert_string_equal(s.last_failure, "stall");
    assert_int_equal(s.last_failure_ms, t + 7);
    assert_int_equal(s.open_until_ms, 0);
    assert_int_equal(s.cooldown_until_ms, 0);
    health_destroy(&h);
}

static void test_reset(void **state)
{
    struct health h;
    health_init(&h, NULL);
    sample(&h, T0, 1500);
    trip_now(&h, T0, MID_RAND);
    health_cooldown(&h, T0, 60000);
    health_release(&h, NULL, T0, HEALTH_AUTH, 0, 0, 0);
    health_set_admin(&h, HEALTH_ADMIN_DRAINING);
    health_reset(&h);
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_string_equal(s.breaker, "closed");
    assert_false(s.auth_out);
    assert_int_equal(s.cooldown_remaining_ms, 0);
    assert_int_equal(s.trips, 1);       /* statistics stay */
    assert_int_equal(s.trips_in_row, 0);
    assert_int_equal(s.window_requests, 0);
    assert_string_equal(s.admin, "draining"); /* an operator's choice stays */
    assert_near(s.ewma_ttft_ms, 1500, 1e-9);
    health_set_admin(&h, HEALTH_ADMIN_ACTIVE);
    assert_string_equal(why(&h, T0), "eligible");
    health_destroy(&h);
}

/* Shared by threads: the concurrency bound holds and the counts add up. */
struct race {
    struct health *h;
    atomic_uint acquired;
    atomic_uint over;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 20000; i++) {
        struct health_ticket t;
        if (!health_acquire(r->h, T0, &t))
            continue;
        atomic_fetch_add(&r->acquired, 1);
        if (health_inflight(r->h) > 3)
            atomic_fetch_add(&r->over, 1);
        health_release(r->h, &t, T0, HEALTH_OK, 100, 0, 0);
    }
    return NULL;
}

static void three_at_a_time(struct health_params *p)
{
    p->max_concurrency = 3;
}

static void test_threads(void **state)
{
    struct health h;
    init_with(&h, three_at_a_time);
    struct race r = {.h = &h};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &r), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.over), 0);
    assert_int_equal(health_inflight(&h), 0);
    struct health_snapshot s;
    health_snapshot(&h, T0, &s);
    assert_int_equal(s.requests, atomic_load(&r.acquired));
    assert_true(s.requests > 0);
    health_destroy(&h);
}

/* A cancelled attempt's wait counts as a lower bound in the percentiles, not in the EWMA. */
static void test_abandon_after(void **state)
{
    struct health h;
    health_init(&h, NULL);
    struct health_ticket t;
    uint32_t p50, p95, p99;
    for (int i = 0; i < 19; i++) {
        assert_true(health_acquire(&h, 1000, &t));
        health_release(&h, &t, 1000, HEALTH_OK, 50, 0, 0);
    }
    double ewma = health_latency_ms(&h, 1000);
    assert_true(health_acquire(&h, 1000, &t));
    assert_int_equal(health_inflight(&h), 1);
    health_abandon_after(&h, &t, 900);
    assert_int_equal(health_inflight(&h), 0);
    assert_int_equal(health_ttft_percentiles(&h, &p50, &p95, &p99), 20);
    assert_int_equal(p50, 50);
    assert_int_equal(p99, 900);
    assert_true(health_latency_ms(&h, 1000) == ewma);
    health_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_abandon_after),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_trip_by_ratio),
        cmocka_unit_test(test_stays_closed_under_min_requests),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_trip_by_consecutive),
        cmocka_unit_test(test_half_open_trials),
        cmocka_unit_test(test_half_open_single_trial_fails),
        cmocka_unit_test(test_stale_release_does_not_decide),
        cmocka_unit_test(test_close_forgets_window),
        cmocka_unit_test(test_open_time_doubles_bounded),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_cooldown),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_admin_states),
        cmocka_unit_test(test_max_concurrency),
        cmocka_unit_test(test_rpm),
        cmocka_unit_test(test_rpm_same_bucket_as_ratelimit),
        cmocka_unit_test(test_peak_ewma),
        cmocka_unit_test(test_failure_penalty),
        cmocka_unit_test(test_score),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_snapshot_counts),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
