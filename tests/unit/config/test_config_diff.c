/* config_diff: what a reload cannot apply is named; what it can is not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/config_diff.h"

static struct config *load(const char *server, const char *tail)
{
    char text[2048];
    snprintf(text, sizeof text,
             "server: {%s}\nproviders:\n  p: {base_url: 'http://127.0.0.1:9/v1'}\n"
             "models:\n  m: [{provider: p, model: x}]\n%s",
             server, tail);
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, &errs) < 0)
        fail_msg("%s", errs.text.data);
    config_errors_free(&errs);
    return c;
}

static size_t diff(const char *s1, const char *t1, const char *s2, const char *t2,
                   struct config_diff_item *out)
{
    struct config *a = load(s1, t1), *b = load(s2, t2);
    size_t n = config_diff_restart(a, b, out, CONFIG_DIFF_MAX);
    config_unref(a);
    config_unref(b);
    return n;
}

static void test_what_a_reload_applies_is_not_named(void **state)
{
    (void)state;
    struct config_diff_item d[CONFIG_DIFF_MAX];
    /* models, providers, timeouts, admin, max_response_bytes, reload: all applied */
    assert_int_equal(
        diff("listen: '127.0.0.1:0'", "", "listen: '127.0.0.1:0', max_response_bytes: 1m",
             "timeouts: {first_token: 3s}\nadmin: {token: 'abcdefabcdefabcdefabcdef'}\n"
             "reload: {watch: true}\n",
             d),
        0);
}

static void test_restart_keys_are_named(void **state)
{
    (void)state;
    struct config_diff_item d[CONFIG_DIFF_MAX];
    size_t n = diff("listen: '127.0.0.1:0', workers: 1", "",
                    "listen: '127.0.0.1:1', workers: 2, idle_timeout: 5s, access_log: 'off'",
                    "ledger: /nonexistent/x.db\n", d);
    const char *want[] = {"server.listen", "server.workers",
                          "server.header_timeout/idle_timeout/drain_timeout", "server.access_log",
                          "ledger"};
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(d[i].key, want[i]);
        assert_true(strlen(d[i].why) > 10);
    }
    /* the bound holds */
    struct config *a = load("listen: '127.0.0.1:0', workers: 1", "");
    struct config *b = load("listen: '127.0.0.1:1', workers: 2", "");
    assert_int_equal(config_diff_restart(a, b, d, 1), 1);
    config_unref(a);
    config_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_what_a_reload_applies_is_not_named),
        cmocka_unit_test(test_restart_keys_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
