/* Unit tests for prices: the prices: section (rates, defaults, windows, globs
   and every problem with its line), the cost of each kind of token, cached
   input, reasoning tokens not counted twice, time-of-day windows including
   one that wraps past midnight, glob precedence, and the token estimate. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/prices.h"

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  deepseek:\n"                                                                                \
    "    base_url: https://api.deepseek.com/v1\n"                                                  \
    "  ark:\n"                                                                                     \
    "    base_url: https://ark.example.com/api/v3\n"                                               \
    "models:\n"                                                                                    \
    "  deepseek-r1:\n"                                                                             \
    "    - {provider: deepseek, model: deepseek-reasoner}\n"                                       \
    "    - {provider: ark, model: deepseek-r1-250120}\n" /* line 9 */

#define PRICES                                                                                     \
    "prices:\n"                                                                                    \
    "  deepseek:\n"                                                                                \
    "    deepseek-chat:\n"                                                                         \
    "      input: 0.27\n"                                                                          \
    "      cached_input: 0.07\n"                                                                   \
    "      output: 1.10\n"                                                                         \
    "      windows:\n"                                                                             \
    "        - {from: \"16:30\", to: \"00:30\", input: 0.135, cached_input: 0.035, output: "       \
    "0.55}\n"                                                                                      \
    "    deepseek-reasoner:\n"                                                                     \
    "      input: 0.55\n"                                                                          \
    "      cached_input: 0.14\n"                                                                   \
    "      output: 2.19\n"                                                                         \
    "      windows:\n"                                                                             \
    "        - {from: \"16:30\", to: \"00:30\", input: 0.135, cached_input: 0.035, output: "       \
    "0.55}\n"                                                                                      \
    "    \"deepseek-*\":\n"                                                                        \
    "      input: 1\n"                                                                             \
    "      output: 2\n"                                                                            \
    "  ark:\n"                                                                                     \
    "    \"*\":\n"                                                                                 \
    "      input: 4\n"                                                                             \
    "      output: 16\n"                                                                           \
    "      currency: CNY\n"                                                                        \
    "      windows:\n"                                                                             \
    "        - {from: \"01:00\", to: \"04:00\", output: 32}\n"                                     \
    "  \"*\":\n"                                                                                   \
    "    deepseek-reasoner: {input: 9, output: 9}\n"                                               \
    "    \"*\": {input: 0, output: 0, currency: EUR}\n"

/* 2025-03-03 at HH:MM UTC, in unix ms. */
static int64_t at(int hh, int mm)
{
    return (1740960000ll + hh * 3600ll + mm * 60ll) * 1000;
}

static struct config *load_ok(const char *text, unsigned warnings)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", text, strlen(text), &c, &errs);
    if (rc != 0 || errs.warnings != warnings)
        fprintf(stderr, "unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.warnings, warnings);
    config_errors_free(&errs);
    return c;
}

static void expect_error(const char *text, const char *expect)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    assert_int_equal(config_load_text("t.yaml", text, strlen(text), &c, &errs), -1);
    assert_null(c);
    const char *got = errs.text.data ? errs.text.data : "";
    if (!strstr(got, expect)) fprintf(stderr, "missing \"%s\" in:\n%s", expect, got);
    assert_non_null(strstr(got, expect));
    assert_int_equal(errs.count, 1);
    config_errors_free(&errs);
}

#define assert_near(a, b)                                                                          \
    assert_true(fabs((double)(a) - (double)(b)) < 1e-12 * (fabs((double)(b)) + 1))

static void test_parse(void **state)
{
    struct config *c = load_ok(BASE PRICES, 0);
    assert_int_equal(c->nprices, 6);
    const struct cfg_price *p = &c->prices[0];
    assert_string_equal(p->provider, "deepseek");
    assert_string_equal(p->model, "deepseek-chat");
    assert_false(p->provider_glob);
    assert_false(p->model_glob);
    assert_near(p->rates.input, 0.27);
    assert_near(p->rates.cached_input, 0.07);
    assert_near(p->rates.output, 1.10);
    assert_string_equal(p->currency, "USD");
    assert_int_equal(p->nwindows, 1);
    assert_int_equal(p->windows[0].from_min, 16 * 60 + 30);
    assert_int_equal(p->windows[0].to_min, 30);
    assert_int_equal(p->line, 12);
    assert_true(c->prices[2].model_glob);
    /* cached_input not given: costs what input does */
    assert_near(c->prices[2].rates.cached_input, 1);
    /* a window inherits the rates it does not give */
    p = &c->prices[3];
    assert_string_equal(p->currency, "CNY");
    assert_near(p->windows[0].rates.input, 4);
    assert_near(p->windows[0].rates.cached_input, 4);
    assert_near(p->windows[0].rates.output, 32);
    assert_true(c->prices[4].provider_glob);
    assert_string_equal(c->prices[5].currency, "EUR");
    config_unref(c);
}

static void test_cost_per_kind(void **state)
{
    struct config *c = load_ok(BASE PRICES, 0);
    double cost;
    const char *cur;
    int64_t noon = at(12, 0);
    struct prices_usage u = {1000000, 0, -1, 0};
    assert_int_equal(prices_cost(c, "deepseek", "deepseek-chat", &u, noon, &cost, &cur), 0);
    assert_near(cost, 0.27);
    assert_string_equal(cur, "USD");
    /* output */
    u = (struct prices_usage){0, 1000000, -1, -1};
    prices_cost(c, "deepseek", "deepseek-chat", &u, noon, &cost, &cur);
    assert_near(cost, 1.10);
    /* cached input is part of the prompt: 400k cached, 600k not */
    u = (struct prices_usage){1000000, 0, 0, 400000};
    prices_cost(c, "deepseek", "deepseek-chat", &u, noon, &cost, &cur);
    assert_near(cost, 0.6 * 0.27 + 0.4 * 0.07);
    /* reasoning tokens are inside completion: the same cost with or without them */
    u = (struct prices_usage){2000, 5000, 4000, 1000};
    double with_reasoning;
    prices_cost(c, "deepseek", "deepseek-reasoner", &u, noon, &with_reasoning, &cur);
    u.reasoning_tokens = 0;
    prices_cost(c, "deepseek", "deepseek-reasoner", &u, noon, &cost, &cur);
    assert_near(with_reasoning, cost);
    assert_near(cost, (1000 * 0.55 + 1000 * 0.14 + 5000 * 2.19) / 1e6);
    /* more cached than prompt: the whole prompt cached */
    u = (struct prices_usage){100, 0, 0, 500};
    prices_cost(c, "deepseek", "deepseek-chat", &u, noon, &cost, &cur);
    assert_near(cost, 100 * 0.07 / 1e6);
    /* unknown counts are zero */
    u = (struct prices_usage){-1, -1, -1, -1};
    prices_cost(c, "deepseek", "deepseek-chat", &u, noon, &cost, &cur);
    assert_near(cost, 0);
    config_unref(c);
}

static void test_windows_wrap_midnight(void **state)
{
    struct config *c = load_ok(BASE PRICES, 0);
    const struct cfg_price *p = prices_find(c, "deepseek", "deepseek-chat");
    assert_non_null(p);
    struct {
        int hh, mm;
        bool discounted;
    } cases[] = {
        {0, 0, true},    {0, 29, true},  {0, 30, false}, {12, 0, false},
        {16, 29, false}, {16, 30, true}, {23, 59, true}, {8, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct cfg_price_rates *r = prices_rates_at(p, at(cases[i].hh, cases[i].mm));
        if ((r == &p->windows[0].rates) != cases[i].discounted)
            fprintf(stderr, "at %02d:%02d\n", cases[i].hh, cases[i].mm);
        assert_int_equal(r == &p->windows[0].rates, cases[i].discounted);
    }
    /* seconds inside the last minute still count */
    assert_ptr_equal(prices_rates_at(p, at(0, 29) + 59999), &p->windows[0].rates);
    assert_ptr_equal(prices_rates_at(p, at(0, 30)), &p->rates);
    /* the off-peak cost of the same usage */
    struct prices_usage u = {1000000, 1000000, 0, 500000};
    double peak = prices_cost_of(p, &u, at(9, 0)), off = prices_cost_of(p, &u, at(17, 0));
    assert_near(peak, 0.5 * 0.27 + 0.5 * 0.07 + 1.10);
    assert_near(off, 0.5 * 0.135 + 0.5 * 0.035 + 0.55);
    /* a window that does not wrap */
    p = prices_find(c, "ark", "anything");
    assert_ptr_equal(prices_rates_at(p, at(0, 59)), &p->rates);
    assert_ptr_equal(prices_rates_at(p, at(1, 0)), &p->windows[0].rates);
    assert_ptr_equal(prices_rates_at(p, at(3, 59)), &p->windows[0].rates);
    assert_ptr_equal(prices_rates_at(p, at(4, 0)), &p->rates);
    /* before 1970 the minute of the day is still right: 1969-12-31 23:00 */
    assert_ptr_equal(prices_rates_at(prices_find(c, "deepseek", "deepseek-chat"), -3600000),
                     &prices_find(c, "deepseek", "deepseek-chat")->windows[0].rates);
    config_unref(c);
}

static void test_glob_precedence(void **state)
{
    struct config *c = load_ok(BASE PRICES, 0);
    double cost;
    const char *cur;
    struct prices_usage u = {1000000, 0, 0, 0};
    /* exact provider, exact model beats the glob after it and the "*" provider */
    assert_ptr_equal(prices_find(c, "deepseek", "deepseek-reasoner"), &c->prices[1]);
    /* exact provider with a model glob */
    assert_ptr_equal(prices_find(c, "deepseek", "deepseek-v3-0324"), &c->prices[2]);
    prices_cost(c, "deepseek", "deepseek-v3-0324", &u, at(12, 0), &cost, &cur);
    assert_near(cost, 1);
    /* a provider glob with an exact model beats both globs */
    assert_ptr_equal(prices_find(c, "other", "deepseek-reasoner"), &c->prices[4]);
    /* exact provider, model glob "*" beats provider glob, exact model */
    assert_ptr_equal(prices_find(c, "ark", "deepseek-reasoner"), &c->prices[3]);
    /* both globs */
    assert_ptr_equal(prices_find(c, "other", "qwen"), &c->prices[5]);
    assert_int_equal(prices_cost(c, "other", "qwen", &u, 0, &cost, &cur), 0);
    assert_string_equal(cur, "EUR");
    /* the deepseek-* glob does not match a name merely containing it */
    assert_ptr_equal(prices_find(c, "deepseek", "my-deepseek-x"), &c->prices[5]);
    /* no prices at all: -ENOENT, zero, no currency */
    struct config *bare = load_ok(BASE, 0);
    cur = "x";
    assert_int_equal(prices_cost(bare, "deepseek", "deepseek-chat", &u, 0, &cost, &cur), -ENOENT);
    assert_near(cost, 0);
    assert_null(cur);
    assert_null(prices_find(bare, NULL, "x"));
    config_unref(bare);
    config_unref(c);
}

static void test_estimate(void **state)
{
    int64_t p, q;
    prices_estimate_tokens(0, 1, &p, &q);
    assert_int_equal(p, 0);
    assert_int_equal(q, 1);
    prices_estimate_tokens(400, 401, &p, &q);
    assert_int_equal(p, 100);
    assert_int_equal(q, 101);
}

static void test_hhmm(void **state)
{
    uint16_t m;
    assert_int_equal(prices_parse_hhmm("16:30", 0, &m), 0);
    assert_int_equal(m, 990);
    assert_int_equal(prices_parse_hhmm("0:05", 0, &m), 0);
    assert_int_equal(m, 5);
    assert_int_equal(prices_parse_hhmm("24:00", 1, &m), 0);
    assert_int_equal(m, 1440);
    const char *bad[] = {"24:00", "23:60", "1630", "16:3", "16:300", "", ":30", "a:00", "-1:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(prices_parse_hhmm(bad[i], 0, &m), -EINVAL);
    assert_int_equal(prices_parse_hhmm("24:01", 1, &m), -EINVAL);
}

static void test_problems(void **state)
{
    expect_error(BASE "prices:\n  deepseek:\n    m: {input: 1, output: 1, currency: usd}\n",
                 "t.yaml:12: prices.deepseek.m.currency: bad currency \"usd\"");
    expect_error(BASE "prices:\n  deepseek:\n    m: {input: 1}\n",
                 "t.yaml:12: prices.deepseek.m.output: missing (required)");
    expect_error(BASE "prices:\n  deepseek:\n    m: {input: -1, output: 1}\n",
                 "prices.deepseek.m.input: -1 is out of range");
    expect_error(BASE "prices:\n  deepseek:\n    m: {input: 1, output: 1, outptu: 2}\n",
                 "prices.deepseek.m.outptu: unknown key; did you mean \"output\"?");
    expect_error(BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                      "      windows:\n        - {from: \"25:00\", to: \"01:00\"}\n",
                 "t.yaml:16: prices.deepseek.m.windows[0].from: bad time \"25:00\"");
    expect_error(BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                      "      windows:\n        - {from: \"10:00\", to: \"10:00\"}\n",
                 "windows[0]: from and to are the same time");
    expect_error(BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                      "      windows:\n        - {from: \"22:00\", to: \"02:00\"}\n"
                      "        - {from: \"01:00\", to: \"03:00\"}\n",
                 "t.yaml:17: prices.deepseek.m.windows[1]: overlaps an earlier window");
    expect_error(BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                      "      windows:\n        - {to: \"03:00\"}\n",
                 "windows[0].from: missing (required)");
    expect_error(BASE "prices:\n  deepseek:\n    m:\n", "prices.deepseek.m: empty price");
    expect_error(BASE "prices:\n  deepseek: [1]\n", "prices.deepseek: expected a mapping");
    expect_error(BASE "prices: 3\n", "prices: expected a mapping");
    expect_error(BASE "prices:\n  deepseek:\n    m: {input: 1, output: 1}\n    m: {input: 1, "
                      "output: 2}\n",
                 "duplicate");
    /* 24:00 is the end of a day: fine as "to", not as "from" */
    struct config *c =
        load_ok(BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                     "      windows:\n        - {from: \"18:00\", to: \"24:00\"}\n",
                0);
    assert_int_equal(c->prices[0].windows[0].to_min, 1440);
    assert_ptr_equal(prices_rates_at(&c->prices[0], at(23, 59)), &c->prices[0].windows[0].rates);
    assert_ptr_equal(prices_rates_at(&c->prices[0], at(0, 0)), &c->prices[0].rates);
    config_unref(c);
    /* an unknown provider is a warning, with a suggestion */
    c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    const char *text = BASE "prices:\n  deepseak:\n    m: {input: 1, output: 1}\n";
    assert_int_equal(config_load_text("t.yaml", text, strlen(text), &c, &errs), 0);
    assert_int_equal(errs.warnings, 1);
    assert_non_null(strstr(errs.text.data, "t.yaml:11: prices.deepseak: warning: no provider "
                                           "\"deepseak\" (did you mean \"deepseek\"?)"));
    config_errors_free(&errs);
    config_unref(c);
}

static void test_too_many_windows(void **state)
{
    char text[8192];
    int n = snprintf(text, sizeof text,
                     BASE "prices:\n  deepseek:\n    m:\n      input: 1\n      output: 1\n"
                          "      windows:\n");
    for (int i = 0; i <= PRICES_MAX_WINDOWS; i++)
        n += snprintf(text + n, sizeof text - (size_t)n,
                      "        - {from: \"%02d:00\", to: \"%02d:30\"}\n", i % 24, i % 24);
    expect_error(text, "too many windows (25, at most 24)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cost_per_kind),
        cmocka_unit_test(test_windows_wrap_midnight),
        cmocka_unit_test(test_glob_precedence),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_hhmm),
        cmocka_unit_test(test_problems),
        cmocka_unit_test(test_too_many_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
