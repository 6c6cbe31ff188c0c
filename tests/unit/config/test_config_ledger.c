/* Unit tests for the config's ledger: section (defaults, every key, the
   one-line form, ranges and problems with their line and key path), and for
   the example price file loading clean. The prices: section itself is tested
   in test_prices.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "acct/ledger.h"
#include "config/prices.h"

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p:\n"                                                                                       \
    "    base_url: http://127.0.0.1:9000\n"                                                        \
    "models:\n"                                                                                    \
    "  m:\n"                                                                                       \
    "    - {provider: p, model: x}\n" /* line 6 */

static struct config *load_ok(const char *text)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", text, strlen(text), &c, &errs);
    if (rc != 0 || errs.count != 0)
        fprintf(stderr, "unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
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
    if (!strstr(got, expect) || errs.count != 1)
        fprintf(stderr, "expected only \"%s\" in:\n%s", expect, got);
    assert_non_null(strstr(got, expect));
    assert_int_equal(errs.count, 1);
    config_errors_free(&errs);
}

static void test_defaults(void **state)
{
    struct config *c = load_ok(BASE);
    assert_null(c->ledger.path);
    assert_int_equal(c->ledger.queue, 65536);
    assert_int_equal(c->ledger.batch, 256);
    assert_int_equal(c->ledger.flush_interval_ms, 200);
    assert_int_equal(c->nprices, 0);
    assert_null(c->prices);
    struct ledger_options o;
    ledger_options_from_config(&o, &c->ledger);
    assert_null(o.path);
    assert_int_equal(o.queue, 65536);
    config_unref(c);
}

static void test_every_key(void **state)
{
    struct config *c = load_ok(BASE "ledger:\n"
                                    "  path: /var/lib/unbusy/ledger.db\n"
                                    "  queue: 1000\n"
                                    "  batch: 1000\n"
                                    "  flush_interval: 1.5s\n");
    assert_string_equal(c->ledger.path, "/var/lib/unbusy/ledger.db");
    assert_int_equal(c->ledger.queue, 1000);
    assert_int_equal(c->ledger.batch, 1000);
    assert_int_equal(c->ledger.flush_interval_ms, 1500);
    struct ledger_options o;
    ledger_options_from_config(&o, &c->ledger);
    assert_string_equal(o.path, "/var/lib/unbusy/ledger.db");
    assert_int_equal(o.batch, 1000);
    assert_int_equal(o.flush_interval_ms, 1500);
    config_unref(c);
}

static void test_one_line_form_and_env(void **state)
{
    setenv("UNBUSY_TEST_LEDGER_DIR", "/tmp/x", 1);
    struct config *c = load_ok(BASE "ledger: ${UNBUSY_TEST_LEDGER_DIR}/ledger.db\n");
    assert_string_equal(c->ledger.path, "/tmp/x/ledger.db");
    assert_int_equal(c->ledger.batch, 256);
    config_unref(c);
    /* an empty path is no ledger */
    c = load_ok(BASE "ledger:\n  path: \"\"\n  batch: 10\n");
    assert_null(c->ledger.path);
    assert_int_equal(c->ledger.batch, 10);
    config_unref(c);
    unsetenv("UNBUSY_TEST_LEDGER_DIR");
}

static void test_problems(void **state)
{
    expect_error(BASE "ledger:\n  queue: 100\n  batch: 200\n",
                 "t.yaml:8: ledger: batch (200) is larger than queue (100)");
    expect_error(BASE "ledger:\n  queue: 0\n", "t.yaml:8: ledger.queue: 0 is out of range");
    expect_error(BASE "ledger:\n  queue: 16777217\n", "ledger.queue: 16777217 is out of range");
    expect_error(BASE "ledger:\n  batch: 65537\n", "ledger.batch: 65537 is out of range");
    expect_error(BASE "ledger:\n  flush_interval: 2m\n", "ledger.flush_interval:");
    expect_error(BASE "ledger:\n  flush_interval: soon\n",
                 "t.yaml:8: ledger.flush_interval: bad duration \"soon\"");
    expect_error(BASE "ledger:\n  paht: x.db\n",
                 "t.yaml:8: ledger.paht: unknown key; did you mean \"path\"?");
    expect_error(BASE "ledger: [a, b]\n", "t.yaml:7: ledger: expected a mapping");
    expect_error(BASE "ledgr: x.db\n", "ledgr: unknown key; did you mean \"ledger\"?");
}

/* The example file is a whole, valid config: it loads with warnings at most
   (its ${DEEPSEEK_API_KEY} may be unset), and its prices give the published numbers. */
static void test_example_file(void **state)
{
    char path[512];
    const char *here = __FILE__; /* tests/unit/config/test_config_ledger.c, from the repository */
    const char *slash = strrchr(here, '/');
    snprintf(path, sizeof path, "%.*s/../../../examples/prices-deepseek.yaml",
             slash ? (int)(slash - here) : 1, slash ? here : ".");
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_file(path, &c, &errs);
    if (rc || errs.count) fprintf(stderr, "%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    config_errors_free(&errs);
    const struct cfg_price *chat = prices_find(c, "deepseek", "deepseek-chat");
    const struct cfg_price *reasoner = prices_find(c, "deepseek", "deepseek-reasoner");
    assert_non_null(chat);
    assert_non_null(reasoner);
    assert_string_equal(chat->currency, "USD");
    assert_int_equal(chat->nwindows, 1);
    assert_int_equal(chat->windows[0].from_min, 16 * 60 + 30);
    assert_int_equal(chat->windows[0].to_min, 30);
    assert_true(chat->rates.input == 0.27 && chat->rates.cached_input == 0.07 &&
                chat->rates.output == 1.10);
    assert_true(reasoner->rates.input == 0.55 && reasoner->rates.cached_input == 0.14 &&
                reasoner->rates.output == 2.19);
    assert_true(reasoner->windows[0].rates.input == 0.135 &&
                reasoner->windows[0].rates.cached_input == 0.035 &&
                reasoner->windows[0].rates.output == 0.55);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_one_line_form_and_env),
        cmocka_unit_test(test_problems),
        cmocka_unit_test(test_example_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
