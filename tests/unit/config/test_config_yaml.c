/* Unit tests for the bounds on a config's YAML: anchors and aliases work
   within them, and a text whose aliases expand past what any alias-free
   file could be ("billion laughs"), that names more anchors than allowed,
   whose alias sits inside the node it names, or that nests too deep is
   refused with its line, before libyaml builds the document. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/buf.h"
#include "config/config.h"
#include "config/config_yaml.h"

static int load(const struct buf *text, struct config **out, struct config_errors *errs)
{
    config_errors_init(errs);
    return config_load_text("t.yaml", text->data, text->len, out, errs);
}

static void assert_refused(const struct buf *text, const char *expected)
{
    struct config *c = NULL;
    struct config_errors errs;
    int rc = load(text, &c, &errs);
    if (rc == 0) config_unref(c);
    assert_int_equal(rc, -1);
    assert_null(c);
    if (!strstr(errs.text.data, expected))
        fprintf(stderr, "expected \"%s\" in:\n%s", expected, errs.text.data);
    assert_non_null(strstr(errs.text.data, expected));
    config_errors_free(&errs);
}

static void test_aliases_within_bounds(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t,
                   "providers:\n"
                   "  a:\n"
                   "    base_url: http://127.0.0.1:9000\n"
                   "    api_key: &key sk-shared-0123456789\n"
                   "    headers: &hdr {X-Team: infra, X-Env: prod}\n"
                   "  b: {base_url: http://127.0.0.1:9001, api_key: *key, headers: *hdr}\n"
                   "models:\n"
                   "  m1: {deployments: &deps [{provider: a, model: x}, {provider: b, model: x}]}\n"
                   "  m2: {deployments: *deps}\n");
    struct config *c = NULL;
    struct config_errors errs;
    int rc = load(&t, &c, &errs);
    if (rc) fprintf(stderr, "%s", errs.text.data);
    assert_int_equal(rc, 0);
    assert_int_equal(c->nproviders, 2);
    assert_string_equal(c->providers[1].api_key, "sk-shared-0123456789");
    assert_int_equal(c->providers[1].nheaders, 2);
    assert_int_equal(config_find_model(c, "m2")->ndeployments, 2);
    config_unref(c);
    config_errors_free(&errs);
    buf_free(&t);
}

/* 200 providers share one 64 KiB key through an alias: a 70 KiB text that the
   walk would copy into 12.8 MB. */
static void test_alias_expansion_refused(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t, "models:\n  m: {deployments: [{provider: p0, model: x}]}\nproviders:\n"
                       "  p0: {base_url: http://127.0.0.1:9000, api_key: &k \"");
    for (int i = 0; i < 64 * 1024; i++)
        buf_append(&t, "k", 1);
    buf_append_str(&t, "\"}\n");
    for (int i = 1; i < 200; i++)
        buf_printf(&t, "  p%d: {base_url: http://127.0.0.1:9000, api_key: *k}\n", i);
    assert_true(t.len < 80 * 1024);
    assert_refused(&t, "t.yaml:");
    assert_refused(&t, "YAML aliases expand the document past 6 MiB, refused");
    buf_free(&t);
}

/* Nested aliases: ten lists of ten of ten ... of one value; each level costs a
   few bytes of text and multiplies the document by ten. */
static void test_nested_alias_bomb_refused(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t, "x: &l0 [lol]\n");
    for (int level = 1; level <= 9; level++) {
        buf_printf(&t, "x%d: &l%d [", level, level);
        for (int i = 0; i < 10; i++)
            buf_printf(&t, "%s*l%d", i ? "," : "", level - 1);
        buf_append_str(&t, "]\n");
    }
    buf_append_str(&t, "keys:\n  k: {key: sk-0123456789abcdef, models: *l9}\n");
    assert_refused(&t, "YAML aliases expand the document past");
    buf_free(&t);
}

static void test_too_many_anchors_refused(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t, "models:\n  m: {deployments: [{provider: p0, model: x}]}\nproviders:\n");
    for (int i = 0; i <= CONFIG_YAML_MAX_ANCHORS; i++)
        buf_printf(&t, "  p%d: {base_url: &u%d http://127.0.0.1:9000, api_key: &k%d sk-%d}\n", i, i,
                   i, i);
    assert_refused(&t, "t.yaml:54: more than 100 YAML anchors (&name)");
    buf_free(&t);
}

/* libyaml's scanner costs time quadratic in the flow depth: a 4 MiB text of
   brackets would take hours. Refused at the first level too deep, at once. */
static void test_deep_nesting_refused(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t, "server:\n  listen: 127.0.0.1:8080\nx: ");
    /* the file's own mapping is the first level */
    for (int i = 0; i < CONFIG_YAML_MAX_DEPTH - 1; i++)
        buf_append_str(&t, i % 2 ? "{a: " : "[");
    for (int i = CONFIG_YAML_MAX_DEPTH - 1; i-- > 0;)
        buf_append_str(&t, i % 2 ? "}" : "]");
    buf_append_str(&t, "\n");
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(&t, &c, &errs), -1); /* deep enough, but x is not a key */
    assert_null(strstr(errs.text.data, "nested deeper"));
    config_errors_free(&errs);

    buf_reset(&t);
    buf_append_str(&t, "x: ");
    for (int i = 0; i < 1000 * 1000; i++)
        buf_append(&t, "[", 1);
    assert_refused(&t, "t.yaml:1: nested deeper than 64 levels");
    buf_free(&t);
}

static void test_recursive_alias_refused(void **state)
{
    (void)state;
    struct buf t;
    buf_init(&t, 0);
    buf_append_str(&t, "providers: &p\n"
                       "  a: {base_url: http://127.0.0.1:9000}\n"
                       "  b: *p\n");
    assert_refused(&t, "t.yaml:3: the alias *p is inside the node it names (&p)");
    buf_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aliases_within_bounds),
        cmocka_unit_test(test_alias_expansion_refused),
        cmocka_unit_test(test_nested_alias_bomb_refused),
        cmocka_unit_test(test_too_many_anchors_refused),
        cmocka_unit_test(test_deep_nesting_refused),
        cmocka_unit_test(test_recursive_alias_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
