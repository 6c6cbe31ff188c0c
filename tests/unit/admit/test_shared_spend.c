/* Unit tests for shared_spend: what a replica reports (only what it spent since its last
   report that Redis took), what the other replicas spent read from the shared total and
   added to a budget check (budgets_check refusing on spend of other replicas), a lost
   reply sent again, and a new period starting from nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct/ledger.h"
#include "admit/budget.h"
#include "admit/shared_spend.h"
#include "config/config.h"
#include "config/config_redis.h"

#define T0 1740830400000ll /* 2025-03-01T12:00:00Z */
#define DAY 86400000ll

static const char text[] =
    "providers:\n  p:\n    base_url: http://127.0.0.1:9000\n"
    "models:\n  m:\n    - {provider: p, model: x}\n"
    "keys:\n  - {name: team-a, key: sk-ub-0123456789abcdefghijABCDEFGHIJ0123456789}\n"
    "budgets:\n  keys:\n    team-a: {daily: 10}\n"
    "redis:\n  url: redis://127.0.0.1\n  prefix: \"p:\"\n";

static void spend(struct ledger *l, double cost, int64_t t)
{
    struct ledger_record r = {.time_ms = t,
                              .key_name = "team-a",
                              .model = "m",
                              .cost = cost,
                              .currency = "USD",
                              .prompt_tokens = -1,
                              .completion_tokens = -1,
                              .reasoning_tokens = -1,
                              .cached_tokens = -1,
                              .ttft_ms = -1};
    assert_int_equal(ledger_record(l, &r), 0);
}

/* The reported amount (ARGV[1]) of the one command in out. */
static double amount_of(struct buf *out, char *key, size_t cap)
{
    static struct resp_reply r;
    assert_true(resp_parse(out->data, out->len, &r) > 0);
    snprintf(key, cap, "%.*s", (int)r.items[4].len, r.items[4].str);
    char num[64];
    snprintf(num, sizeof num, "%.*s", (int)r.items[5].len, r.items[5].str);
    return strtod(num, NULL);
}

static void answer(struct shared_spend *ss, const struct shared_spend_report *rep,
                   const char *total)
{
    char raw[64];
    snprintf(raw, sizeof raw, "$%zu\r\n%s\r\n", strlen(total), total);
    static struct resp_reply r;
    assert_true(resp_parse(raw, strlen(raw), &r) > 0);
    shared_spend_seen(ss, rep, &r);
}

static void test_report_and_total(void **state)
{
    struct config *c = NULL;
    assert_int_equal(config_load_text("t.yaml", text, strlen(text), &c, NULL), 0);
    struct ledger_options o = {0};
    struct ledger *l = NULL;
    char err[128];
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), 0);
    struct shared_spend *ss = shared_spend_new(c, c->redis, l);
    struct budgets *b = budgets_new(c, l);
    budgets_share(b, ss);
    const struct cfg_budget *tb = &c->budgets[0];

    spend(l, 3, T0);
    struct buf out;
    buf_init(&out, 0);
    struct shared_spend_report rep[4];
    /* one budget with a daily amount only: one report */
    assert_int_equal(shared_spend_report(ss, T0, &out, rep, 4), 1);
    char key[128];
    assert_true(amount_of(&out, key, sizeof key) == 3);
    assert_string_equal(key, "p:spend:d:20148:team-a:USD");
    /* the others spent 6.5: the total Redis answers is 9.5 */
    answer(ss, &rep[0], "9.5");
    assert_true(shared_spend_total(ss, tb, LEDGER_DAY, T0, 3) == 9.5);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_OK);
    /* 0.6 more here: past 10 with the others' spend, which alone it would not be */
    spend(l, 0.6, T0 + 1);
    assert_int_equal(budgets_check(b, "team-a", T0 + 1, NULL, NULL, 0), BUDGET_REFUSE);
    /* only what was not reported yet goes out; a lost reply sends it again */
    buf_reset(&out);
    assert_int_equal(shared_spend_report(ss, T0 + 2, &out, rep, 4), 1);
    assert_true(amount_of(&out, key, sizeof key) > 0.59 && amount_of(&out, key, sizeof key) < 0.61);
    shared_spend_seen(ss, &rep[0], NULL);
    buf_reset(&out);
    assert_int_equal(shared_spend_report(ss, T0 + 3, &out, rep, 4), 1);
    assert_true(amount_of(&out, key, sizeof key) > 0.59);
    answer(ss, &rep[0], "10.1");
    assert_true(shared_spend_total(ss, tb, LEDGER_DAY, T0 + 3, 3.6) > 10.09);
    /* a report in flight is not sent twice */
    buf_reset(&out);
    assert_int_equal(shared_spend_report(ss, T0 + 4, &out, rep, 4), 1);
    assert_int_equal(shared_spend_report(ss, T0 + 4, &out, rep, 4), 0);
    shared_spend_seen(ss, &rep[0], NULL);
    /* the next day starts from nothing: the others' spend of yesterday does not count */
    assert_true(shared_spend_total(ss, tb, LEDGER_DAY, T0 + DAY, 0) == 0);
    buf_reset(&out);
    assert_int_equal(shared_spend_report(ss, T0 + DAY, &out, rep, 4), 1);
    assert_true(amount_of(&out, key, sizeof key) == 0);
    assert_string_equal(key, "p:spend:d:20149:team-a:USD");
    buf_free(&out);
    budgets_free(b);
    shared_spend_free(ss);
    ledger_close(l);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_and_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
