#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/presets.h"
#include "route/catalog.h"

static void test_parse(void **state)
{
    (void)state;
    char **names;
    size_t n;
    static const char list[] =
        "{\"object\":\"list\",\"data\":[{\"id\":\"b\"},{\"id\":\"a\",\"object\":\"model\"},"
        "{\"id\":\"b\"},{\"id\":\"\"},{\"nope\":1},{\"id\":7}]}";
    assert_int_equal(catalog_parse(list, strlen(list), &names, &n), 0);
    assert_int_equal(n, 2); /* sorted, repeats and non-names left out */
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    catalog_names_free(names, n);
    static const char bare[] = "[\"x\",{\"id\":\"y\"}]";
    assert_int_equal(catalog_parse(bare, strlen(bare), &names, &n), 0);
    assert_int_equal(n, 2);
    catalog_names_free(names, n);
    assert_int_equal(catalog_parse("{\"data\":{}}", 11, &names, &n), -1);
    assert_int_equal(catalog_parse("<html>", 6, &names, &n), -1);
}

static char **list_of(const char *a, const char *b, size_t *n)
{
    char **names = calloc(2, sizeof *names);
    names[0] = strdup(a);
    names[1] = b ? strdup(b) : NULL;
    *n = b ? 2 : 1;
    return names;
}

static void add(void *ud, const char *name)
{
    strcat(ud, name);
    strcat(ud, ",");
}

static void test_set_has_foreach(void **state)
{
    (void)state;
    static const char yaml[] = "providers:\n"
                               "  one: {type: vllm, base_url: 'http://h1/v1', models: auto}\n"
                               "  two: {type: vllm, base_url: 'http://h2/v1', models: auto}\n"
                               "models:\n  fixed: [{provider: one, model: x}]\n";
    struct config *cfg = NULL;
    assert_int_equal(config_load_text("t.yaml", yaml, strlen(yaml), &cfg, NULL), 0);
    const struct cfg_model *auto_model = config_find_model(cfg, CONFIG_AUTO_MODEL_NAME);
    assert_non_null(auto_model);
    assert_true(auto_model->auto_import);
    assert_int_equal(auto_model->ndeployments, 2);
    assert_string_equal(auto_model->deployments[1].provider->name, "two");

    struct catalog *cat = catalog_new(cfg);
    assert_false(catalog_any(cat, "a"));
    size_t n;
    char **l;
    assert_int_equal(catalog_parse("[\"b\",\"a\",\"fixed\"]", 17, &l, &n),
                     0); /* sorted for the set */
    catalog_set(cat, 0, l, n, 1);
    l = list_of("a", "c", &n);
    catalog_set(cat, 1, l, n, 1);
    assert_true(catalog_has(cat, 0, "b"));
    assert_false(catalog_has(cat, 1, "b"));
    assert_true(catalog_any(cat, "c"));
    assert_false(catalog_has(cat, 7, "a"));

    char seen[64] = "";
    catalog_foreach(cat, add, seen);
    assert_string_equal(seen, "a,b,c,"); /* "fixed" is the config's; "a" once */
    /* replaced: the old names go */
    l = list_of("z", NULL, &n);
    catalog_set(cat, 0, l, n, 2);
    assert_false(catalog_has(cat, 0, "b"));
    assert_true(catalog_has(cat, 0, "z"));
    catalog_free(cat);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_set_has_foreach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
