/* Unit tests for the config's keys: and key_store: sections: the fields and
   their defaults, models as a list or a comma list, ${ENV} keys, and every
   problem with its line and key path (never showing the secret). */
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
    "    - {provider: p, model: v3}\n" /* line 8 */

#define STRONG "sk-ub-0123456789abcdefghijABCDEFGHIJ0123456789"

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

static struct config *load_ok(const char *text)
{
    struct config *c = NULL;
    struct config_errors errs;
    int rc = load(text, &c, &errs);
    if (rc != 0 || errs.count != 0)
        fprintf(stderr, "unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    config_errors_free(&errs);
    return c;
}

/* The load fails with exactly nerrors problems, each expected line present, and
   the text never contains `secret` (when given). */
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

static void test_no_keys(void **state)
{
    struct config *c = load_ok(BASE);
    assert_int_equal(c->nkeys, 0);
    assert_null(c->keys);
    assert_null(c->key_store);
    config_unref(c);
    c = load_ok(BASE "keys: []\nkey_store: ''\n");
    assert_int_equal(c->nkeys, 0);
    assert_null(c->key_store);
    config_unref(c);
}

static void test_keys_fields_and_defaults(void **state)
{
    setenv("UNBUSY_T_KEY", "sk-env-abcdefghijklmnopqrstuvwxyz", 1);
    struct config *c = load_ok(BASE "key_store: /var/lib/unbusy/keys.db\n" /* 9 */
                                    "keys:\n"                              /* 10 */
                                    "  - name: team-a\n"                   /* 11 */
                                    "    key: " STRONG "\n"                /* 12 */
                                    "    models: [deepseek-r1, deepseek-v3]\n"
                                    "    priority: 0\n"
                                    "    rpm: 60\n"
                                    "    tpm: 100000\n"
                                    "    max_concurrency: 4\n"
                                    "  - name: batch.jobs@ops\n" /* 18 */
                                    "    key: ${UNBUSY_T_KEY}\n"
                                    "    models: 'deepseek-v3 , deepseek-r1,deepseek-v3'\n"
                                    "  - {name: all, key: sk-all-0123456789abcdefghij, "
                                    "tpm: 4000000000}\n");
    unsetenv("UNBUSY_T_KEY");
    assert_string_equal(c->key_store, "/var/lib/unbusy/keys.db");
    assert_int_equal(c->nkeys, 3);

    const struct cfg_key *a = &c->keys[0];
    assert_string_equal(a->name, "team-a");
    assert_string_equal(a->key, STRONG);
    assert_int_equal(a->nmodels, 2);
    assert_string_equal(a->models[0], "deepseek-r1");
    assert_string_equal(a->models[1], "deepseek-v3");
    assert_int_equal(a->priority, 0);
    assert_int_equal(a->rpm, 60);
    assert_int_equal(a->tpm, 100000);
    assert_int_equal(a->max_concurrency, 4);
    assert_int_equal(a->line, 11);

    const struct cfg_key *b = &c->keys[1];
    assert_string_equal(b->name, "batch.jobs@ops");
    assert_string_equal(b->key, "sk-env-abcdefghijklmnopqrstuvwxyz");
    assert_int_equal(b->nmodels, 2); /* trimmed; the repeat dropped */
    assert_string_equal(b->models[0], "deepseek-v3");
    assert_string_equal(b->models[1], "deepseek-r1");
    assert_int_equal(b->priority, 1); /* the defaults */
    assert_int_equal(b->rpm, 0);
    assert_int_equal(b->tpm, 0);
    assert_int_equal(b->max_concurrency, 0);
    assert_int_equal(b->line, 18);

    const struct cfg_key *all = &c->keys[2];
    assert_int_equal(all->nmodels, 0); /* no list: every model */
    assert_int_equal(all->tpm, 4000000000u);
    config_unref(c);
}

static void test_short_key_warns(void **state)
{
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(BASE "keys:\n  - {name: a, key: short-secret}\n", &c, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.warnings, 1);
    assert_non_null(strstr(errs.text.data, "t.yaml:10: keys[0].key: warning: shorter than 20"));
    assert_null(strstr(errs.text.data, "short-secret"));
    config_errors_free(&errs);
    config_unref(c);
}

static void test_key_problems(void **state)
{
    EXPECT(BASE "keys: {a: 1}\n", 1, NULL,
           "t.yaml:9: keys: expected a list of keys ({name, key, ...}), got a mapping\n");
    EXPECT(BASE "keys:\n  - {name: 'a b', key: " STRONG "}\n", 1, STRONG,
           "t.yaml:10: keys[0].name: bad key name \"a b\": 1 to 64 characters");
    EXPECT(BASE "keys:\n  - {name: '12', key: " STRONG "}\n", 1, STRONG,
           "t.yaml:10: keys[0].name: bad key name \"12\"");
    EXPECT(BASE "keys:\n  - {key: " STRONG "}\n  - {name: b}\n  -\n", 3, STRONG,
           "t.yaml:10: keys[0].name: missing (required)\n",
           "t.yaml:11: keys[1].key: missing (required)\n",
           "t.yaml:12: keys[2]: empty key (expected name: and key:)\n");
    EXPECT(BASE "keys:\n  - {name: a, key: 'sk-with space-0123456789abc'}\n", 1, "with space",
           "t.yaml:10: keys[0].key: spaces are not allowed in a key\n");
    EXPECT(BASE "keys:\n  - {name: a, key: \"sk-0123456789abcdefghij\\nX: y\"}\n", 1, "abcdefghij",
           "t.yaml:10: keys[0].key: control characters");
    EXPECT(BASE "keys:\n  - name: a\n    priority: 4\n    rpm: -1\n    key: " STRONG "\n", 2,
           STRONG, "t.yaml:11: keys[0].priority: 4 is out of range (0 to 3)\n",
           "t.yaml:12: keys[0].rpm: ");
    EXPECT(BASE "keys:\n  - {name: a, key: " STRONG ", models: [deepseek-r2, gpt]}\n", 2, STRONG,
           "t.yaml:10: keys[0].models[0]: unknown model \"deepseek-r2\"; did you mean "
           "\"deepseek-r1\"?\n",
           "t.yaml:10: keys[0].models[1]: unknown model \"gpt\" (not defined under models:)\n");
    EXPECT(BASE "keys:\n  - {name: a, key: " STRONG ", models: 'deepseek-r1,,x'}\n", 2, STRONG,
           "t.yaml:10: keys[0].models: empty model name in the list\n",
           "t.yaml:10: keys[0].models: unknown model \"x\"");
    EXPECT(BASE "keys:\n"
                "  - {name: a, key: " STRONG "}\n"
                "  - {name: b, key: " STRONG "}\n"
                "  - {name: a, key: sk-other-0123456789abcdefgh}\n",
           2, STRONG, "t.yaml:11: keys[1]: the same key as \"a\" (line 10)\n",
           "t.yaml:12: keys[2]: duplicate key name \"a\" (first at line 10)\n");
    EXPECT(BASE "keys:\n  - {name: a, key: " STRONG ", colour: red}\n", 1, STRONG,
           "t.yaml:10: keys[0].colour: unknown key");
    EXPECT(BASE "key_store: [a]\n", 1, NULL,
           "t.yaml:9: key_store: expected a single value, got a list\n");

    /* An unset variable: a warning that it is empty, and an error, never an empty key. */
    unsetenv("UNBUSY_T_UNSET_KEY");
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(BASE "keys:\n  - {name: a, key: '${UNBUSY_T_UNSET_KEY}'}\n", &c, &errs),
                     -1);
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.warnings, 1);
    assert_non_null(strstr(errs.text.data, "t.yaml:10: keys[0].key: must not be empty\n"));
    config_errors_free(&errs);

    /* Longer than 256 characters. */
    char text[2048];
    char long_key[300];
    memset(long_key, 'k', 257);
    long_key[257] = '\0';
    snprintf(text, sizeof text, BASE "keys:\n  - {name: a, key: %s}\n", long_key);
    EXPECT(text, 1, long_key, "t.yaml:10: keys[0].key: longer than 256 characters\n");
}

static void test_too_many_models(void **state)
{
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text,
                                BASE "keys:\n  - name: a\n    key: " STRONG "\n    models: [");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sdeepseek-r1", i ? ", " : "");
    snprintf(text + n, sizeof text - n, "]\n");
    struct config *c = load_ok(text); /* repeats of one model are one model */
    assert_int_equal(c->keys[0].nmodels, 1);
    config_unref(c);
}

static void test_name_rule(void **state)
{
    assert_true(config_key_name_valid("a"));
    assert_true(config_key_name_valid("team-a.prod_1:x@y"));
    assert_true(config_key_name_valid("1a"));
    char name[CONFIG_KEY_NAME_MAX + 2];
    memset(name, 'n', CONFIG_KEY_NAME_MAX);
    name[CONFIG_KEY_NAME_MAX] = '\0';
    assert_true(config_key_name_valid(name));
    name[CONFIG_KEY_NAME_MAX] = 'n';
    name[CONFIG_KEY_NAME_MAX + 1] = '\0';
    assert_false(config_key_name_valid(name));
    assert_false(config_key_name_valid(""));
    assert_false(config_key_name_valid("123"));
    assert_false(config_key_name_valid("a b"));
    assert_false(config_key_name_valid("a/b"));
    assert_false(config_key_name_valid("a\"b"));
    assert_false(config_key_name_valid("\xc3\xa9t\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_keys),         cmocka_unit_test(test_keys_fields_and_defaults),
        cmocka_unit_test(test_short_key_warns), cmocka_unit_test(test_key_problems),
        cmocka_unit_test(test_too_many_models), cmocka_unit_test(test_name_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
