/* Unit tests for ratelimit: exact RPM and TPM buckets with injected time,
   estimate and reconcile, settling with what a request used, key and model together (all or nothing), the
   header values and their format, sync keeping state, the table bound,
   concurrency slots, and many threads taking from one bucket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "admit/ratelimit.h"

#define T0 1000000u /* any start: the clock is injected */

static struct ratelimit *with_key(const char *name, uint32_t rpm, uint32_t tpm, uint32_t conc)
{
    struct ratelimit *rl = ratelimit_new(16);
    assert_non_null(rl);
    struct ratelimit_def d = {name, rpm, tpm, conc};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, &d, 1, T0), 0);
    return rl;
}

static void test_exact_rpm(void **state)
{
    struct ratelimit *rl = with_key("k", 60, 0, 0);
    uint64_t retry = 77;
    /* A full minute's worth at once (spread over 59 ms). */
    for (unsigned i = 0; i < 60; i++) {
        assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + i, &retry), RATELIMIT_OK);
        assert_int_equal(retry, 0);
    }
    /* The 61st waits for the next request's worth: 1000 ms per request, 59 of them
       already refilled. */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 59, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 941);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 59 + 940, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 59 + 941, &retry), RATELIMIT_OK);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 59 + 941, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1000);
    /* Other names are not limited; neither is a NULL key. */
    assert_int_equal(ratelimit_try(rl, "other", NULL, 0, T0, &retry), RATELIMIT_OK);
    assert_int_equal(ratelimit_try(rl, NULL, NULL, 0, T0, NULL), RATELIMIT_OK);
    ratelimit_free(rl);
}

/* Polling every millisecond for two minutes admits the burst plus two minutes' refill. */
static void test_rpm_steady_rate(void **state)
{
    struct ratelimit *rl = with_key("k", 60, 0, 0);
    unsigned admitted = 0;
    uint64_t last = 0;
    for (uint64_t t = T0; t < T0 + 120000; t++) {
        uint64_t retry;
        if (ratelimit_try(rl, "k", NULL, 0, t, &retry) == RATELIMIT_OK) {
            if (admitted >= 61) assert_int_equal(t - last, 1000); /* then one a second */
            last = t;
            admitted++;
        } else {
            assert_true(retry >= 1 && retry <= 1000);
        }
    }
    assert_int_equal(admitted, 60 + 119);
    ratelimit_free(rl);
}

static void test_tpm_estimate_and_reconcile(void **state)
{
    struct ratelimit *rl = with_key("k", 0, 1000, 0);
    uint64_t retry;
    assert_int_equal(ratelimit_try(rl, "k", NULL, 600, T0, &retry), RATELIMIT_OK);
    /* 400 left, 600 wanted: 200 tokens at 1000 a minute is 12 s. */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 600, T0, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 12000);
    /* The answer used only 100: 500 come back and the next one fits. */
    ratelimit_reconcile(rl, "k", NULL, 600, 100, T0);
    struct ratelimit_status st;
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 900);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 600, T0, &retry), RATELIMIT_OK);
    /* This one used 2000: the excess is charged, a debt capped at a minute's tokens. */
    ratelimit_reconcile(rl, "k", NULL, 600, 2000, T0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 0);
    assert_int_equal(st.reset_tokens_ms, 120000); /* from -1000 to +1000 */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 60000);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 60000, &retry), RATELIMIT_OK);
    /* More than a whole minute's tokens can never fit; nothing is taken. */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 1001, T0 + 200000, &retry), RATELIMIT_TOO_LARGE);
    assert_int_equal(retry, 0);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 1000, T0 + 200000, &retry), RATELIMIT_OK);
    /* Absurd counts saturate instead of overflowing. */
    ratelimit_reconcile(rl, "k", NULL, 0, UINT64_MAX, T0 + 200000);
    assert_int_equal(ratelimit_try(rl, "k", NULL, UINT64_MAX, T0 + 200000, &retry),
                     RATELIMIT_TOO_LARGE);
    ratelimit_reconcile(rl, "k", NULL, UINT64_MAX, 0, T0 + 200000);
    ratelimit_status(rl, "k", NULL, T0 + 200000, &st);
    assert_int_equal(st.remaining_tokens, 1000);
    ratelimit_free(rl);
}

/* A request settles with what it used: the reported usage, or else the prompt and what it
   streamed before the end (an aborted stream), never its max_tokens estimate. */
static void test_settle(void **state)
{
    struct ratelimit *rl = with_key("k", 0, 2000, 0);
    struct ratelimit_status st;
    /* a stream asked for max_tokens 1500 and was aborted after ~12 tokens */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 2 + 1500, T0, NULL), RATELIMIT_OK);
    struct ratelimit_usage aborted = {.reported_tokens = -1, .sent = true, .prompt_tokens = 2,
                                      .streamed_tokens = 12};
    assert_int_equal(ratelimit_usage_tokens(&aborted), 14);
    ratelimit_settle(rl, "k", NULL, 2 + 1500, &aborted, T0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 2000 - 14);
    /* usage that arrived wins over any estimate */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 1502, T0, NULL), RATELIMIT_OK);
    struct ratelimit_usage reported = {.reported_tokens = 40, .sent = true, .prompt_tokens = 2,
                                       .streamed_tokens = 900};
    ratelimit_settle(rl, "k", NULL, 1502, &reported, T0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 2000 - 14 - 40);
    /* never sent (queue deadline, shed): nothing used, all of it comes back */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 1502, T0, NULL), RATELIMIT_OK);
    struct ratelimit_usage unsent = {.reported_tokens = -1, .sent = false, .prompt_tokens = 2};
    ratelimit_settle(rl, "k", NULL, 1502, &unsent, T0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 2000 - 14 - 40);
    /* an estimate past the up-front one is charged as a debt, like reported usage */
    struct ratelimit_usage big = {.reported_tokens = -1, .sent = true, .prompt_tokens = UINT64_MAX,
                                  .streamed_tokens = 5};
    assert_int_equal(ratelimit_usage_tokens(&big), UINT64_MAX);
    ratelimit_settle(rl, "k", NULL, 0, &big, T0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_tokens, 0);
    ratelimit_free(rl);
}

static void test_undo(void **state)
{
    struct ratelimit *rl = with_key("k", 2, 100, 0);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 80, T0, NULL), RATELIMIT_OK);
    ratelimit_undo(rl, "k", NULL, 80, T0);
    struct ratelimit_status st;
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_requests, 2);
    assert_int_equal(st.remaining_tokens, 100);
    ratelimit_undo(rl, "k", NULL, 80, T0); /* never above full */
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_requests, 2);
    assert_int_equal(st.remaining_tokens, 100);
    ratelimit_free(rl);
}

static void test_key_and_model_all_or_nothing(void **state)
{
    struct ratelimit *rl = ratelimit_new(8);
    struct ratelimit_def key = {"team", 10, 0, 0};
    struct ratelimit_def models[] = {{"r1", 0, 1000, 0}, {"v3", 1, 0, 0}};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, &key, 1, T0), 0);
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, models, 2, T0), 0);
    uint64_t retry;
    assert_int_equal(ratelimit_try(rl, "team", "r1", 900, T0, &retry), RATELIMIT_OK);
    /* The model's tokens refuse: the key's request is not taken either. */
    assert_int_equal(ratelimit_try(rl, "team", "r1", 500, T0, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 24000); /* 400 tokens at 1000/min */
    struct ratelimit_status st;
    ratelimit_status(rl, "team", "r1", T0, &st);
    assert_true(st.requests_limited);
    assert_int_equal(st.remaining_requests, 9);
    assert_true(st.tokens_limited);
    assert_int_equal(st.limit_tokens, 1000);
    assert_int_equal(st.remaining_tokens, 100);
    /* The other model's rpm of 1 binds tighter than the key's 10; the wait is the
       longer of the two buckets'. */
    assert_int_equal(ratelimit_try(rl, "team", "v3", 0, T0, &retry), RATELIMIT_OK);
    ratelimit_status(rl, "team", "v3", T0, &st);
    assert_int_equal(st.limit_requests, 1);
    assert_int_equal(st.remaining_requests, 0);
    assert_int_equal(st.reset_requests_ms, 60000);
    assert_false(st.tokens_limited);
    assert_int_equal(ratelimit_try(rl, "team", "v3", 0, T0 + 5000, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 55000);
    /* A key and a model may share a name without sharing a bucket. */
    assert_int_equal(ratelimit_try(rl, "r1", "team", 1000000, T0, &retry), RATELIMIT_OK);
    ratelimit_free(rl);
}

static void test_headers(void **state)
{
    struct ratelimit *rl = with_key("k", 60, 150000, 0);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 16, T0, NULL), RATELIMIT_OK);
    struct ratelimit_status st;
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_true(st.requests_limited && st.tokens_limited);
    assert_int_equal(st.limit_requests, 60);
    assert_int_equal(st.remaining_requests, 59);
    assert_int_equal(st.reset_requests_ms, 1000);
    assert_int_equal(st.limit_tokens, 150000);
    assert_int_equal(st.remaining_tokens, 149984);
    assert_int_equal(st.reset_tokens_ms, 7); /* 16 tokens at 2500 a second: 6.4 ms, rounded up */
    char h[RATELIMIT_HEADERS_MAX];
    size_t n = ratelimit_format_headers(&st, h, sizeof h);
    const char *want = "x-ratelimit-limit-requests: 60\r\n"
                       "x-ratelimit-remaining-requests: 59\r\n"
                       "x-ratelimit-reset-requests: 1s\r\n"
                       "x-ratelimit-limit-tokens: 150000\r\n"
                       "x-ratelimit-remaining-tokens: 149984\r\n"
                       "x-ratelimit-reset-tokens: 7ms\r\n";
    assert_string_equal(h, want);
    assert_int_equal(n, strlen(want));
    assert_int_equal(ratelimit_format_headers(&st, h, 20), 0); /* too small: nothing */
    assert_string_equal(h, "");

    /* Half a minute later, the request bucket is full again; the tokens long since. */
    ratelimit_status(rl, "k", NULL, T0 + 30000, &st);
    assert_int_equal(st.remaining_requests, 60);
    assert_int_equal(st.reset_requests_ms, 0);
    assert_int_equal(st.remaining_tokens, 150000);

    /* Only what is limited is reported; nothing for an unknown name. */
    ratelimit_free(rl);
    rl = with_key("k", 0, 5000, 0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_false(st.requests_limited);
    ratelimit_format_headers(&st, h, sizeof h);
    assert_string_equal(h, "x-ratelimit-limit-tokens: 5000\r\n"
                           "x-ratelimit-remaining-tokens: 5000\r\n"
                           "x-ratelimit-reset-tokens: 0s\r\n");
    ratelimit_status(rl, "nobody", "nothing", T0, &st);
    assert_false(st.requests_limited || st.tokens_limited);
    assert_int_equal(ratelimit_format_headers(&st, h, sizeof h), 0);
    ratelimit_free(rl);

    static const struct {
        uint64_t ms;
        const char *text;
    } durations[] = {
        {0, "0s"},
        {1, "1ms"},
        {20, "20ms"},
        {999, "999ms"},
        {1000, "1s"},
        {1500, "1.5s"},
        {8640, "8.64s"},
        {59999, "59.999s"},
        {60000, "1m0s"},
        {61500, "1m1.5s"},
        {360000, "6m0s"},
        {3600000, "1h0m0s"},
        {3723004, "1h2m3.004s"},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        char d[32];
        ratelimit_format_duration(durations[i].ms, d, sizeof d);
        assert_string_equal(d, durations[i].text);
    }
    assert_int_equal(ratelimit_retry_after_seconds(0), 1);
    assert_int_equal(ratelimit_retry_after_seconds(941), 1);
    assert_int_equal(ratelimit_retry_after_seconds(1000), 1);
    assert_int_equal(ratelimit_retry_after_seconds(1001), 2);
    assert_int_equal(ratelimit_retry_after_seconds(12000), 12);
}

static void test_sync_keeps_state(void **state)
{
    struct ratelimit *rl = with_key("k", 10, 0, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0, NULL), RATELIMIT_OK);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0, NULL), RATELIMIT_LIMITED);
    /* Redefining with another key added keeps k's empty bucket. */
    struct ratelimit_def defs[] = {{"k", 10, 0, 0}, {"new", 1, 0, 0}, {"k", 999, 0, 0}};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, defs, 3, T0 + 6000), 0);
    struct ratelimit_status st;
    ratelimit_status(rl, "k", NULL, T0 + 6000, &st);
    assert_int_equal(st.limit_requests, 10);    /* the first def of a repeated name */
    assert_int_equal(st.remaining_requests, 1); /* 6 s at 10 a minute */
    ratelimit_status(rl, "new", NULL, T0 + 6000, &st);
    assert_int_equal(st.remaining_requests, 1); /* a new name starts full */
    /* Raising the limit keeps the level; lowering it clamps it. */
    defs[0].rpm = 600;
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, defs, 1, T0 + 6000), 0);
    ratelimit_status(rl, "k", NULL, T0 + 6000, &st);
    assert_int_equal(st.remaining_requests, 1);
    assert_int_equal(st.reset_requests_ms, 59900);
    ratelimit_status(rl, "new", NULL, T0 + 6000, &st);
    assert_false(st.requests_limited); /* dropped: no longer limited */
    /* Syncing models leaves the keys alone. */
    struct ratelimit_def m = {"r1", 5, 0, 0};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, &m, 1, T0 + 6000), 0);
    ratelimit_status(rl, "k", "r1", T0 + 6000, &st);
    assert_int_equal(st.remaining_requests, 1);
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, NULL, 0, T0 + 6000), 0);
    ratelimit_status(rl, "k", "r1", T0 + 6000, &st);
    assert_int_equal(st.limit_requests, 5);
    assert_int_equal(st.remaining_requests, 5);
    ratelimit_free(rl);
}

static void test_bounded_table(void **state)
{
    struct ratelimit *rl = ratelimit_new(3);
    struct ratelimit_def defs[] = {
        {"a", 1, 0, 0},  {"unlimited", 0, 0, 0}, {"b", 1, 0, 0},
        {NULL, 1, 0, 0}, {"c", 1, 0, 0},         {"d", 1, 0, 0},
    };
    /* Defs without limits take no room; the fourth limited name does not fit. */
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, defs, 6, T0), -ENOSPC);
    struct ratelimit_status st;
    const char *in[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        ratelimit_status(rl, in[i], NULL, T0, &st);
        assert_true(st.requests_limited);
    }
    ratelimit_status(rl, "d", NULL, T0, &st);
    assert_false(st.requests_limited);
    /* A full table of keys leaves no room for models. */
    struct ratelimit_def m = {"r1", 5, 0, 0};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, &m, 1, T0), -ENOSPC);
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, defs, 1, T0), 0);
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, &m, 1, T0), 0);
    ratelimit_status(rl, NULL, "r1", T0, &st);
    assert_int_equal(st.limit_requests, 5);
    ratelimit_free(rl);
}

static void test_stale_clock(void **state)
{
    struct ratelimit *rl = with_key("k", 60, 0, 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 5000, NULL), RATELIMIT_OK);
    uint64_t retry;
    /* A worker that read the clock earlier: no time has passed, nothing is gained. */
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1000);
    assert_int_equal(ratelimit_try(rl, "k", NULL, 0, T0 + 6000, &retry), RATELIMIT_OK);
    ratelimit_free(rl);
}

static void test_concurrency(void **state)
{
    struct ratelimit *rl = with_key("k", 0, 0, 2);
    struct ratelimit_def m = {"r1", 0, 0, 3};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, &m, 1, T0), 0);
    assert_true(ratelimit_enter(rl, "k", "r1"));
    assert_true(ratelimit_enter(rl, "k", "r1"));
    assert_false(ratelimit_enter(rl, "k", "r1"));                       /* the key is full */
    assert_int_equal(ratelimit_inflight(rl, RATELIMIT_MODEL, "r1"), 2); /* nothing taken */
    assert_true(ratelimit_enter(rl, NULL, "r1"));
    assert_false(ratelimit_enter(rl, NULL, "r1")); /* the model is full */
    assert_true(ratelimit_enter(rl, "other", NULL));
    ratelimit_leave(rl, "k", "r1");
    assert_int_equal(ratelimit_inflight(rl, RATELIMIT_KEY, "k"), 1);
    assert_true(ratelimit_enter(rl, "k", "r1"));
    /* A sync keeps the count. */
    struct ratelimit_def k = {"k", 0, 0, 2};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_KEY, &k, 1, T0), 0);
    assert_int_equal(ratelimit_inflight(rl, RATELIMIT_KEY, "k"), 2);
    for (int i = 0; i < 4; i++)
        ratelimit_leave(rl, "k", NULL); /* never below zero */
    assert_int_equal(ratelimit_inflight(rl, RATELIMIT_KEY, "k"), 0);
    assert_int_equal(ratelimit_inflight(rl, RATELIMIT_KEY, "nobody"), 0);
    ratelimit_free(rl);
}

struct race {
    struct ratelimit *rl;
    unsigned admitted;
};

static void *race_worker(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 2000; i++)
        if (ratelimit_try(r->rl, "k", "m", 3, T0, NULL) == RATELIMIT_OK) r->admitted++;
    return NULL;
}

/* Eight threads at once never take more than the bucket holds, nor less. */
static void test_threads(void **state)
{
    struct ratelimit *rl = with_key("k", 5000, 0, 0);
    struct ratelimit_def m = {"m", 0, 3 * 4000, 0};
    assert_int_equal(ratelimit_sync(rl, RATELIMIT_MODEL, &m, 1, T0), 0);
    pthread_t t[8];
    struct race r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){rl, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, &r[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += r[i].admitted;
    }
    assert_int_equal(total, 4000); /* the model's tokens bind first */
    struct ratelimit_status st;
    ratelimit_status(rl, "k", "m", T0, &st);
    assert_int_equal(st.remaining_tokens, 0);
    ratelimit_status(rl, "k", NULL, T0, &st);
    assert_int_equal(st.remaining_requests, 1000);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_rpm),
        cmocka_unit_test(test_rpm_steady_rate),
        cmocka_unit_test(test_tpm_estimate_and_reconcile),
        cmocka_unit_test(test_settle),
        cmocka_unit_test(test_undo),
        cmocka_unit_test(test_key_and_model_all_or_nothing),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_sync_keeps_state),
        cmocka_unit_test(test_bounded_table),
        cmocka_unit_test(test_stale_clock),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
