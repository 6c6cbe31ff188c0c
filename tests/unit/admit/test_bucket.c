/* Unit tests for bucket: the per-minute token bucket shared by the key and model limits
   (ratelimit.c) and a deployment's rpm (route/health.c): full at the start, exact refill,
   debt bounded to a minute, a changed limit, and unlimited as a no-op. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "admit/bucket.h"

#define T0 1000000u
#define U BUCKET_UNITS

static void test_full_then_exact_refill(void **state)
{
    (void)state;
    struct bucket b = {0};
    bucket_set_limit(&b, 60, T0);
    assert_int_equal(bucket_remaining(&b), 60);
    for (int i = 0; i < 60; i++) {
        assert_int_equal(bucket_wait(&b, U), 0);
        bucket_take(&b, U);
    }
    assert_int_equal(bucket_remaining(&b), 0);
    assert_int_equal(bucket_wait(&b, U), 1000);
    bucket_refill(&b, T0 + 999);
    assert_int_equal(bucket_wait(&b, U), 1);
    bucket_refill(&b, T0 + 1000);
    assert_int_equal(bucket_wait(&b, U), 0);
    bucket_refill(&b, T0 + 500); /* an older clock: no time passes */
    assert_int_equal(bucket_remaining(&b), 1);
}

static void test_debt_is_bounded_and_waited_out(void **state)
{
    (void)state;
    struct bucket b = {0};
    bucket_set_limit(&b, 10, T0);
    bucket_take(&b, 1000 * U); /* far more than a minute */
    assert_int_equal(b.level, -bucket_capacity(&b));
    assert_int_equal(bucket_wait(&b, 0), 60000);
    bucket_refill(&b, T0 + 120000);
    assert_int_equal(bucket_remaining(&b), 10);
    bucket_give(&b, 5 * U); /* never above full */
    assert_int_equal(bucket_remaining(&b), 10);
}

static void test_changed_limit_keeps_use(void **state)
{
    (void)state;
    struct bucket b = {0};
    bucket_set_limit(&b, 10, T0);
    bucket_take(&b, 4 * U);
    bucket_set_limit(&b, 20, T0);
    assert_int_equal(bucket_remaining(&b), 6);
    bucket_set_limit(&b, 3, T0);
    assert_int_equal(bucket_remaining(&b), 3);
}

static void test_unlimited_is_a_no_op(void **state)
{
    (void)state;
    struct bucket b = {0};
    bucket_take(&b, 100 * U);
    assert_int_equal(bucket_wait(&b, U), 0);
    assert_int_equal(b.level, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_then_exact_refill),
        cmocka_unit_test(test_debt_is_bounded_and_waited_out),
        cmocka_unit_test(test_changed_limit_keeps_use),
        cmocka_unit_test(test_unlimited_is_a_no_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
