/* Unit tests for the config's budgets: section: the fields and their
   defaults, the webhook URL split into a target and a path (query kept, the
   URL never quoted in a message), webhook headers, and every problem with its
   line and key path: amounts, currency, action, degrade_to, key names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p:\n"                                                                                       \
    "    base_url: http://127.0.0.1:9000\n"                                                        \
    "models:\n"                                                                                    \
    "  deepseek-r1:\n"                                                                             \
    "    - {provider: p, model: r1}\n"                                                             \
    "  deepseek-v3:\n"                                                                             \
    "    - {provider: p, model: v3}\n"                                                             \
    "keys:\n"                                                                                      \
    "  - {name: team-a, key: sk-ub-0123456789abcdefghijABCDEFGHIJ0123456789}\n"                    \
    "  - {name: batch, key: sk-ub-9876543210abcdefghijABCDEFGHIJ0123456789}\n" /* line 11 */

static int load(const char *text, struct config **out, struct config_errors *errs)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    config_errors_init(errs);
    int rc = config_load_text("t.yaml", copy, n, out, errs);
    free(copy);
    return rc;
}

static struct config *load_ok(const char *text, unsigned warnings)
{
    struct config *c = NULL;
    struct config_errors errs;
    int rc = load(text, &c, &errs);
    if (rc != 0 || errs.count != 0 || errs.warnings != warnings)
        fprintf(stderr, "unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.warnings, warnings);
    config_errors_free(&errs);
    return c;
}

/* The load fails with exactly nerrors problems, each expected line present,
   and the text never contains `secret` (when given). */
static void expect_errors(const char *text, unsigned nerrors, const char *secret,
                          const char *const *expect)
{
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(text, &c, &errs), -1);
    assert_null(c);
    const char *got = errs.text.data ? errs.text.data : "";
    for (const char *const *e = expect; *e; e++) {
        if (!strstr(got, *e)) fprintf(stderr, "missing \"%s\" in:\n%s", *e, got);
        assert_non_null(strstr(got, *e));
    }
    if (errs.count != nerrors)
        fprintf(stderr, "expected %u problems, got %u:\n%s", nerrors, errs.count, got);
    assert_int_equal(errs.count, nerrors);
    if (secret) assert_null(strstr(got, secret));
    config_errors_free(&errs);
}

#define EXPECT(text, n, secret, ...)                                                               \
    do {                                                                                           \
        const char *const expect_[] = {__VA_ARGS__, NULL};                                         \
        expect_errors((text), (n), (secret), expect_);                                             \
    } while (0)

static void test_no_budgets(void **state)
{
    struct config *c = load_ok(BASE, 0);
    assert_int_equal(c->nbudgets, 0);
    assert_null(c->budgets);
    assert_null(c->budget_webhook);
    assert_null(c->budget_webhook_path);
    assert_true(c->budget_alert_at == 0.8);
    config_unref(c);

    c = load_ok(BASE "budgets:\n", 0);
    assert_int_equal(c->nbudgets, 0);
    assert_null(c->budget_webhook);
    config_unref(c);
}

static void test_fields_and_defaults(void **state)
{
    struct config *c = load_ok(BASE "budgets:\n"
                                    "  webhook: https://hooks.example.com:8443/services/T0/B1?x=1\n"
                                    "  webhook_headers:\n"
                                    "    X-Token: abc\n"
                                    "  alert_at: 0.9\n"
                                    "  keys:\n"
                                    "    team-a: {daily: 10, monthly: 200}\n"
                                    "    batch:\n"
                                    "      monthly: 50.5\n"
                                    "      currency: CNY\n"
                                    "      action: degrade\n"
                                    "      degrade_to: deepseek-v3\n",
                               0);
    const struct cfg_provider *w = c->budget_webhook;
    assert_non_null(w);
    assert_true(w->tls);
    assert_string_equal(w->host, "hooks.example.com");
    assert_int_equal(w->port, 8443);
    assert_int_equal(w->kind, CFG_PROVIDER_OPENAI);
    assert_true(w->tls_verify);
    assert_true(w->max_idle_conns > 0);
    assert_string_equal(c->budget_webhook_path, "/services/T0/B1?x=1");
    assert_int_equal(w->nheaders, 1);
    assert_string_equal(w->headers[0].name, "X-Token");
    assert_string_equal(w->headers[0].value, "abc");
    assert_true(c->budget_alert_at == 0.9);

    assert_int_equal(c->nbudgets, 2);
    const struct cfg_budget *a = &c->budgets[0], *b = &c->budgets[1];
    assert_string_equal(a->key_name, "team-a");
    assert_true(a->daily == 10 && a->monthly == 200);
    assert_string_equal(a->currency, "USD");
    assert_false(a->degrade);
    assert_null(a->degrade_to);
    assert_int_equal(a->line, 18);
    assert_string_equal(b->key_name, "batch");
    assert_true(b->daily == 0 && b->monthly == 50.5);
    assert_string_equal(b->currency, "CNY");
    assert_true(b->degrade);
    assert_string_equal(b->degrade_to, "deepseek-v3");
    config_unref(c);
}

static void test_webhook_paths(void **state)
{
    static const struct {
        const char *url, *host, *path;
        int port;
        bool tls;
    } cases[] = {
        {"http://127.0.0.1:9911", "127.0.0.1", "/", 9911, false},
        {"http://alerts.internal/", "alerts.internal", "/", 80, false},
        {"https://h.example/a/b/", "h.example", "/a/b/", 443, true},
        {"HTTPS://h.example?k=v", "h.example", "/?k=v", 443, true},
        {"http://[::1]:8080/hook", "::1", "/hook", 8080, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%sbudgets:\n  webhook: \"%s\"\n", BASE, cases[i].url);
        struct config *c = load_ok(text, 0);
        assert_non_null(c->budget_webhook);
        assert_string_equal(c->budget_webhook->host, cases[i].host);
        assert_int_equal(c->budget_webhook->port, cases[i].port);
        assert_int_equal(c->budget_webhook->tls, cases[i].tls);
        assert_string_equal(c->budget_webhook_path, cases[i].path);
        config_unref(c);
    }
}

static void test_webhook_problems(void **state)
{
    EXPECT(BASE "budgets:\n  webhook: ftp://h/secretpath\n", 1, "secretpath",
           "t.yaml:13: budgets.webhook: bad webhook URL: expected http:// or https://");
    EXPECT(BASE "budgets:\n  webhook: sim://healthy\n", 1, NULL,
           "t.yaml:13: budgets.webhook: bad webhook URL: expected http:// or https://");
    EXPECT(BASE "budgets:\n  webhook: http://u:pw@h/secretpath\n", 1, "secretpath",
           "budgets.webhook: bad webhook URL: credentials in the URL are not supported");
    EXPECT(BASE "budgets:\n  webhook: http://h/secretpath#frag\n", 1, "secretpath",
           "budgets.webhook: bad webhook URL: a fragment");
    EXPECT(BASE "budgets:\n  webhook: http://h:99999/secretpath\n", 1, "secretpath",
           "t.yaml:13: budgets.webhook: bad webhook URL:");
    EXPECT(BASE "budgets:\n  webhook: \"http://h/a b\"\n", 1, NULL,
           "budgets.webhook: bad webhook URL: spaces");
    EXPECT(BASE "budgets:\n  webhook_headers: {X-Token: abc}\n", 1, NULL,
           "t.yaml:13: budgets: webhook_headers: without a webhook: URL");
    EXPECT(BASE "budgets:\n"
                "  webhook: http://h/x\n"
                "  webhook_headers:\n"
                "    Content-Type: text/plain\n"
                "    \"bad name\": 1\n"
                "    Host: other\n",
           3, NULL, "t.yaml:15: budgets.webhook_headers.Content-Type: this header is set by unbusy",
           "t.yaml:16: budgets.webhook_headers.bad name: a name must be non-empty",
           "t.yaml:17: budgets.webhook_headers.Host: this header is set by unbusy");
    EXPECT(BASE "budgets:\n  webhok: http://h/x\n", 1, NULL,
           "t.yaml:13: budgets.webhok: unknown key; did you mean \"webhook\"?");
    EXPECT(BASE "budgets: [1]\n", 1, NULL, "t.yaml:12: budgets: expected a mapping");
}

static void test_budget_problems(void **state)
{
    EXPECT(BASE "budgets:\n"
                "  alert_at: 1.5\n"
                "  keys:\n"
                "    team-a: {daily: 0}\n"
                "    batch: {monthly: -1}\n",
           3, NULL, "t.yaml:13: budgets.alert_at: 1.5 is out of range",
           "t.yaml:15: budgets.keys.team-a.daily: 0 is out of range",
           "t.yaml:16: budgets.keys.batch.monthly: -1 is out of range");
    EXPECT(BASE "budgets:\n"
                "  keys:\n"
                "    team-a: {currency: USD}\n"
                "    batch: {daily: 1, currency: usd}\n",
           2, NULL, "t.yaml:14: budgets.keys.team-a: neither daily: nor monthly: is set",
           "t.yaml:15: budgets.keys.batch.currency: bad currency \"usd\"");
    EXPECT(BASE "budgets:\n"
                "  keys:\n"
                "    team-a: {daily: 1, action: degrad}\n"
                "    batch: {daily: 1, action: degrade}\n",
           2, NULL,
           "t.yaml:14: budgets.keys.team-a.action: unknown action \"degrad\"; did you mean "
           "\"degrade\"?",
           "t.yaml:15: budgets.keys.batch: action: degrade needs degrade_to:");
    EXPECT(BASE "budgets:\n"
                "  keys:\n"
                "    team-a: {daily: 1, action: degrade, degrade_to: deepseek-v4}\n"
                "    batch: {daily: 1, degrade_to: deepseek-v3}\n",
           2, NULL,
           "t.yaml:14: budgets.keys.team-a.degrade_to: unknown model \"deepseek-v4\"; did you "
           "mean \"deepseek-v3\"?",
           "t.yaml:15: budgets.keys.batch: degrade_to: is only used with action: degrade");
    EXPECT(BASE "budgets:\n"
                "  keys:\n"
                "    \"12345\": {daily: 1}\n"
                "    team-a: 10\n"
                "    batch: {daily: 1, weekly: 3}\n",
           3, NULL, "t.yaml:14: budgets.keys.12345: bad key name",
           "t.yaml:15: budgets.keys.team-a: expected a mapping",
           "t.yaml:16: budgets.keys.batch.weekly: unknown key");
    EXPECT(BASE "budgets:\n"
                "  keys:\n"
                "    team-a: {daily: 1}\n"
                "    team-a: {daily: 2}\n",
           1, NULL, "t.yaml:15: budgets.keys.team-a: duplicate key");
}

static void test_warnings(void **state)
{
    struct config_errors errs;
    struct config *c = NULL;
    /* A key that is neither in the file nor possibly in a store. */
    assert_int_equal(load(BASE "budgets:\n  keys:\n    nobody: {daily: 1}\n", &c, &errs), 0);
    assert_int_equal(errs.warnings, 1);
    assert_non_null(strstr(errs.text.data, "t.yaml:14: budgets.keys.nobody: warning: no key "
                                           "named \"nobody\""));
    config_errors_free(&errs);
    config_unref(c);
    /* With a key store it may be an issued key: no warning. */
    c = load_ok(BASE "key_store: /nonexistent/keys.db\nbudgets:\n  keys:\n    nobody: {daily: 1}\n",
                0);
    assert_int_equal(c->nbudgets, 1);
    config_unref(c);
    /* A daily budget above the monthly one never binds. */
    assert_int_equal(
        load(BASE "budgets:\n  keys:\n    team-a: {daily: 100, monthly: 10}\n", &c, &errs), 0);
    assert_int_equal(errs.warnings, 1);
    assert_non_null(strstr(errs.text.data, "budgets.keys.team-a: warning: daily (100) is larger"));
    config_errors_free(&errs);
    config_unref(c);
}

static void test_env_in_webhook(void **state)
{
    setenv("UNBUSY_TEST_HOOK_TOKEN", "tok-123", 1);
    struct config *c =
        load_ok(BASE "budgets:\n"
                     "  webhook: http://127.0.0.1:1/h\n"
                     "  webhook_headers: {Authorization: \"Bearer ${UNBUSY_TEST_HOOK_TOKEN}\"}\n",
                0);
    assert_string_equal(c->budget_webhook->headers[0].value, "Bearer tok-123");
    config_unref(c);
    unsetenv("UNBUSY_TEST_HOOK_TOKEN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_budgets),      cmocka_unit_test(test_fields_and_defaults),
        cmocka_unit_test(test_webhook_paths),   cmocka_unit_test(test_webhook_problems),
        cmocka_unit_test(test_budget_problems), cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_env_in_webhook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
