#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "acct/outcome.h"

/* Every outcome has a name of its own that reads back as itself. */
static void test_round_trip(void **state)
{
    for (int i = OUTCOME_NONE + 1; i < OUTCOME__COUNT; i++) {
        const char *name = outcome_name((enum outcome)i);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_string_not_equal(name, "none");
        enum outcome back = OUTCOME_NONE;
        assert_true(outcome_from_name(name, strlen(name), &back));
        assert_int_equal(back, i);
        for (int j = OUTCOME_NONE + 1; j < i; j++)
            assert_string_not_equal(name, outcome_name((enum outcome)j));
    }
}

static void test_names_admission_outcomes(void **state)
{
    assert_string_equal(outcome_name(OUTCOME_OK), "ok");
    assert_string_equal(outcome_name(OUTCOME_RATE_LIMITED), "rate_limited");
    assert_string_equal(outcome_name(OUTCOME_BUDGET_EXHAUSTED), "budget_exhausted");
    assert_string_equal(outcome_name(OUTCOME_QUEUE_TIMEOUT), "queue_timeout");
    assert_string_equal(outcome_name(OUTCOME_SHED), "shed");
}

static void test_unknown_and_none(void **state)
{
    enum outcome o = OUTCOME_OK;
    assert_false(outcome_from_name("other", 5, &o));
    assert_false(outcome_from_name("none", 4, &o));
    assert_false(outcome_from_name("ok", 1, &o)); /* a prefix is not a name */
    assert_false(outcome_from_name("okay", 4, &o));
    assert_false(outcome_from_name(NULL, 0, &o));
    assert_int_equal(o, OUTCOME_OK);
    assert_string_equal(outcome_name(OUTCOME__COUNT), "none");
    assert_string_equal(outcome_name((enum outcome)-1), "none");
}

static void test_or_status(void **state)
{
    assert_int_equal(outcome_or_status(OUTCOME_NONE, 200), OUTCOME_OK);
    assert_int_equal(outcome_or_status(OUTCOME_NONE, 404), OUTCOME_REJECTED);
    assert_int_equal(outcome_or_status(OUTCOME_SHED, 429), OUTCOME_SHED);
    assert_int_equal(outcome_or_status(OUTCOME_OK, 500), OUTCOME_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_names_admission_outcomes),
        cmocka_unit_test(test_unknown_and_none),
        cmocka_unit_test(test_or_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
