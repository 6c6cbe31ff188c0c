/* Unit tests for shared_limits: the local lease (credit, all-or-nothing take over two
   buckets, adjust into debt, expiry by age and all at once), the take command and the
   reading of its replies (admitted with extras, refused with a wait, NOSCRIPT, hostile). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "admit/shared_limits.h"

static struct cfg_redis cfg = {.prefix = "ub:", .lease = 4, .timeout_ms = 50};

static struct shared_bucket bucket(char scope, const char *name, uint32_t rpm, uint32_t tpm)
{
    struct shared_bucket b = {.scope = scope, .rpm = rpm, .tpm = tpm};
    snprintf(b.name, sizeof b.name, "%s", name);
    return b;
}

static void test_lease_take_and_credit(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    struct shared_bucket b[2] = {bucket('k', "config:a", 60, 0), bucket('m', "m1", 100, 10000)};
    /* no lease yet: every request goes to Redis */
    assert_false(shared_limits_lease_take(sl, b, 2, 100, 1000));
    uint32_t extra[2] = {2, 3};
    uint64_t tokens[2] = {0, 300};
    shared_limits_credit(sl, b, 2, extra, tokens, 1000);
    /* two requests covered by both leases, the third not by the key's */
    assert_true(shared_limits_lease_take(sl, b, 2, 100, 1001));
    assert_true(shared_limits_lease_take(sl, b, 2, 100, 1002));
    assert_false(shared_limits_lease_take(sl, b, 2, 100, 1003));
    /* all or nothing: the model's lease still holds its last request and 100 tokens */
    assert_true(shared_limits_lease_take(sl, &b[1], 1, 100, 1004));
    assert_false(shared_limits_lease_take(sl, &b[1], 1, 1, 1005));
    struct shared_limits_stats st;
    shared_limits_stats(sl, &st);
    assert_int_equal(st.lease_hits, 3);
    assert_int_equal(st.leases, 2);
    shared_limits_free(sl);
}

static void test_tokens_adjust_and_debt(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    struct shared_bucket b = bucket('k', "config:t", 0, 1000);
    uint32_t extra[1] = {1};
    uint64_t tokens[1] = {200};
    shared_limits_credit(sl, &b, 1, extra, tokens, 10); /* 200 tokens leased */
    /* a request estimated at 200 used 50: 150 back to the lease */
    shared_limits_adjust(sl, &b, 1, 200, 50, 11);
    assert_true(shared_limits_lease_take(sl, &b, 1, 350, 12));
    assert_false(shared_limits_lease_take(sl, &b, 1, 1, 13));
    /* one used 500 more than estimated: the lease is in debt, nothing is served from it */
    shared_limits_adjust(sl, &b, 1, 100, 600, 14);
    assert_false(shared_limits_lease_take(sl, &b, 1, 0, 15));
    /* the debt goes back to Redis as a negative count when it expires */
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(shared_limits_expire(sl, &out, 15 + SHARED_LEASE_TTL_MS, false, 10), 1);
    assert_non_null(memmem(out.data, out.len, "$4\r\n-500\r\n", 10));
    assert_non_null(memmem(out.data, out.len, "ub:rl:k:config:t", 16));
    buf_free(&out);
    shared_limits_free(sl);
}

static void test_expiry(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    struct shared_bucket a = bucket('k', "old", 60, 0), b = bucket('m', "new", 60, 0);
    uint32_t one[1] = {3};
    uint64_t none[1] = {0};
    shared_limits_credit(sl, &a, 1, one, none, 1000);
    shared_limits_credit(sl, &b, 1, one, none, 1500);
    struct buf out;
    buf_init(&out, 0);
    /* only the one older than the TTL */
    assert_int_equal(shared_limits_expire(sl, &out, 1000 + SHARED_LEASE_TTL_MS, false, 10), 1);
    assert_non_null(memmem(out.data, out.len, "ub:rl:k:old", 11));
    assert_null(memmem(out.data, out.len, "ub:rl:m:new", 11));
    assert_false(shared_limits_lease_take(sl, &a, 1, 0, 2000)); /* given back */
    assert_true(shared_limits_lease_take(sl, &b, 1, 0, 2000));
    /* all at once (the connection came back), at most max per call */
    buf_reset(&out);
    assert_int_equal(shared_limits_expire(sl, &out, 2001, true, 0), 0);
    assert_int_equal(shared_limits_expire(sl, &out, 2001, true, 10), 1);
    assert_non_null(memmem(out.data, out.len, "$1\r\n2\r\n", 7)); /* 3 leased, 1 used */
    assert_int_equal(shared_limits_expire(sl, &out, 99999, true, 10), 0);
    struct shared_limits_stats st;
    shared_limits_stats(sl, &st);
    assert_int_equal(st.leases, 0);
    assert_int_equal(st.returned, 2);
    buf_free(&out);
    shared_limits_free(sl);
}

static long parse(const char *s, struct resp_reply *r)
{
    return resp_parse(s, strlen(s), r);
}

static void test_command_and_replies(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    struct shared_bucket b[2] = {bucket('k', "id:7", 10, 0), bucket('m', "gpt", 0, 500)};
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(shared_limits_command(sl, &out, b, 2, 321, false, NULL), 0);
    static struct resp_reply r;
    assert_int_equal(resp_parse(out.data, out.len, &r), (long)out.len);
    /* EVALSHA sha 2 key key rpm tpm lease rpm tpm lease tokens ccmax member ttl */
    assert_int_equal(r.items[0].integer, 15);
    assert_true(resp_item_is(&r.items[13], "0"));
    assert_true(resp_item_is(&r.items[1], "EVALSHA"));
    assert_int_equal(r.items[2].len, 40);
    assert_true(resp_item_is(&r.items[3], "2"));
    assert_true(resp_item_is(&r.items[4], "ub:rl:k:id:7"));
    assert_true(resp_item_is(&r.items[5], "ub:rl:m:gpt"));
    assert_true(resp_item_is(&r.items[8], "4"));
    assert_true(resp_item_is(&r.items[12], "321"));
    buf_reset(&out);
    assert_int_equal(shared_limits_command(sl, &out, b, 1, 1, true, NULL), 0);
    assert_int_equal(resp_parse(out.data, out.len, &r), (long)out.len);
    assert_true(resp_item_is(&r.items[1], "EVAL"));
    assert_non_null(memmem(r.items[2].str, r.items[2].len, "redis.call('TIME')", 18));
    buf_free(&out);

    struct shared_take t;
    assert_true(parse("*6\r\n:1\r\n:0\r\n:2\r\n:0\r\n:0\r\n:4000\r\n", &r) > 0);
    assert_int_equal(shared_limits_read_take(&r, &t), 0);
    assert_true(t.admitted);
    assert_int_equal(t.extra[0], 2);
    assert_int_equal(t.extra_tokens[0], 0);
    assert_int_equal(t.extra[1], 0);
    assert_int_equal(t.extra_tokens[1], 4000);
    assert_true(parse("*2\r\n:0\r\n:1500\r\n", &r) > 0);
    assert_int_equal(shared_limits_read_take(&r, &t), 0);
    assert_false(t.admitted);
    assert_int_equal(t.wait_ms, 1500);
    assert_true(parse("-NOSCRIPT No matching script. Please use EVAL.\r\n", &r) > 0);
    assert_int_equal(shared_limits_read_take(&r, &t), 0);
    assert_true(t.noscript);
    /* anything else is not a take's answer: the request goes on locally */
    const char *bad[] = {"-ERR busy\r\n",
                         "+OK\r\n",
                         "*1\r\n:1\r\n",
                         "*2\r\n:1\r\n$1\r\nx\r\n",
                         "*4\r\n:1\r\n:0\r\n:-4\r\n:0\r\n",
                         "*3\r\n:1\r\n:0\r\n:1\r\n",
                         "*2\r\n*1\r\n:1\r\n:0\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(parse(bad[i], &r) > 0);
        assert_int_equal(shared_limits_read_take(&r, &t), -1);
    }
    shared_limits_free(sl);
}

static void test_concurrency(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    struct shared_bucket b = bucket('k', "id:7", 10, 0);
    struct shared_inflight a = {.name = "id:7", .max = 3}, c = {.name = "id:7", .max = 3},
                           other = {.name = "id:8", .max = 1};
    assert_true(shared_limits_inflight_add(sl, &a));
    assert_true(shared_limits_inflight_add(sl, &c));
    assert_true(shared_limits_inflight_add(sl, &other));
    assert_true(a.seq != c.seq);
    /* the take names the in-flight set, the bound and this request, and asks no lease */
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(shared_limits_command(sl, &out, &b, 1, 5, false, &a), 0);
    static struct resp_reply r;
    assert_int_equal(resp_parse(out.data, out.len, &r), (long)out.len);
    assert_true(resp_item_is(&r.items[3], "2"));
    assert_true(resp_item_is(&r.items[5], "ub:cc:k:id:7"));
    assert_true(resp_item_is(&r.items[8], "0")); /* lease */
    assert_true(resp_item_is(&r.items[10], "3"));
    char member[48];
    snprintf(member, sizeof member, "%s:%llu", shared_limits_replica(sl),
             (unsigned long long)a.seq);
    assert_true(resp_item_is(&r.items[11], member));
    /* a key with only a concurrency bound: no bucket at all */
    buf_reset(&out);
    assert_int_equal(shared_limits_command(sl, &out, NULL, 0, 5, false, &other), 0);
    assert_int_equal(shared_limits_command(sl, &out, NULL, 0, 5, false, NULL), -EINVAL);
    /* the refresh: one command per key, every member still running */
    buf_reset(&out);
    assert_int_equal(shared_limits_inflight_refresh(sl, &out, 10), 2);
    long n = resp_parse(out.data, out.len, &r);
    assert_true(n > 0);
    assert_true(resp_item_is(&r.items[4], "ub:cc:k:id:7"));
    assert_int_equal(r.items[0].integer, 7); /* EVAL script 1 key ttl m1 m2 */
    shared_limits_inflight_remove(sl, &a);
    shared_limits_inflight_remove(sl, &a); /* twice: nothing more */
    buf_reset(&out);
    assert_int_equal(shared_limits_inflight_refresh(sl, &out, 10), 2);
    assert_true(resp_parse(out.data, out.len, &r) > 0);
    assert_int_equal(r.items[0].integer, 6); /* only c left for id:7 */
    /* leaving: a ZREM of exactly that member */
    buf_reset(&out);
    assert_int_equal(shared_limits_leave_command(sl, &out, &a), 0);
    assert_true(resp_parse(out.data, out.len, &r) > 0);
    assert_true(resp_item_is(&r.items[1], "ZREM"));
    assert_true(resp_item_is(&r.items[3], member));
    /* a refusal for concurrency */
    struct shared_take t;
    assert_true(resp_parse("*2\r\n:2\r\n:0\r\n", 14, &r) > 0);
    assert_int_equal(shared_limits_read_take(&r, &t), 0);
    assert_false(t.admitted);
    assert_true(t.too_many);
    shared_limits_inflight_remove(sl, &c);
    shared_limits_inflight_remove(sl, &other);
    buf_reset(&out);
    assert_int_equal(shared_limits_inflight_refresh(sl, &out, 10), 0);
    buf_free(&out);
    shared_limits_free(sl);
}

/* Leases are bounded, and a lease given back frees its slot for another name. */
static void test_lease_table_bounded_and_reused(void **state)
{
    struct shared_limits *sl = shared_limits_new(&cfg);
    uint32_t one[1] = {1};
    uint64_t none[1] = {0};
    char name[32];
    for (int i = 0; i < SHARED_MAX_LEASES; i++) {
        snprintf(name, sizeof name, "id:%d", i);
        struct shared_bucket b = bucket('k', name, 60, 0);
        shared_limits_credit(sl, &b, 1, one, none, 100);
    }
    struct shared_bucket extra = bucket('k', "id:extra", 60, 0);
    shared_limits_credit(sl, &extra, 1, one, none, 100);
    assert_false(shared_limits_lease_take(sl, &extra, 1, 0, 101)); /* no room: no lease */
    struct shared_bucket first = bucket('k', "id:0", 60, 0);
    assert_true(shared_limits_lease_take(sl, &first, 1, 0, 101));
    struct buf out;
    buf_init(&out, 0);
    size_t returned = 0, n;
    while ((n = shared_limits_expire(sl, &out, 100 + SHARED_LEASE_TTL_MS, false, 1000)) > 0) {
        returned += n;
        buf_reset(&out);
    }
    assert_int_equal(returned, SHARED_MAX_LEASES);
    shared_limits_credit(sl, &extra, 1, one, none, 5000);
    assert_true(shared_limits_lease_take(sl, &extra, 1, 0, 5001));
    /* and the names given back are found again when leased anew */
    shared_limits_credit(sl, &first, 1, one, none, 5002);
    assert_true(shared_limits_lease_take(sl, &first, 1, 0, 5003));
    assert_false(shared_limits_lease_take(sl, &first, 1, 0, 5004));
    buf_free(&out);
    shared_limits_free(sl);
}

static void test_estimate(void **state)
{
    assert_int_equal(shared_limits_estimate(400, true, 50), 150);
    assert_int_equal(shared_limits_estimate(400, false, 0), 1124);
    assert_int_equal(shared_limits_estimate(0, true, -3), 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_take_and_credit),
        cmocka_unit_test(test_tokens_adjust_and_debt),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_command_and_replies),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_lease_table_bounded_and_reused),
        cmocka_unit_test(test_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
