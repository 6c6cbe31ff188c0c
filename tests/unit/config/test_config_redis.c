/* Unit tests for the config's redis: section: URLs (user and password, escapes, IPv6, db,
   rediss://), the defaults, ranges, problems that never quote the URL, and the password in
   the redaction set. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/redact.h"
#include "config/config.h"
#include "config/config_redis.h"

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p:\n"                                                                                       \
    "    base_url: http://127.0.0.1:9000\n"                                                        \
    "models:\n"                                                                                    \
    "  m:\n"                                                                                       \
    "    - {provider: p, model: x}\n"

static struct config *load(const char *text, struct config_errors *errs)
{
    struct config *c = NULL;
    config_errors_init(errs);
    config_load_text("t.yaml", text, strlen(text), &c, errs);
    return c;
}

static void test_url_forms(void **state)
{
    struct cfg_redis *rp = calloc(1, sizeof *rp);
#define r (*rp)
    const char *why = NULL;
    assert_int_equal(config_redis_parse_url("redis://cache.internal", &r, &why), 0);
    assert_string_equal(r.host, "cache.internal");
    assert_int_equal(r.port, 6379);
    assert_false(r.tls);
    assert_null(r.password);
    assert_int_equal(r.db, 0);
    assert_int_equal(config_redis_parse_url("rediss://app:p%40ss%3Aw0rd@[::1]:6380/5", &r, &why),
                     0);
    assert_true(r.tls);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6380);
    assert_string_equal(r.user, "app");
    assert_string_equal(r.password, "p@ss:w0rd");
    assert_int_equal(r.db, 5);
    assert_null(strstr(r.url_shown, "p@ss"));
    assert_null(strstr(r.url_shown, "p%40ss"));
    assert_string_equal(r.url_shown, "rediss://app:***@[::1]:6380/5");
    assert_int_equal(config_redis_parse_url("redis://:only@127.0.0.1:1/", &r, &why), 0);
    assert_null(r.user);
    assert_string_equal(r.password, "only");
    assert_string_equal(r.url_shown, "redis://:***@127.0.0.1:1/");
    const char *bad[] = {"http://x",          "redis://",        "redis://h:0",
                         "redis://h:99999",   "redis://h:12a",   "redis://h/x",
                         "redis://h?db=1",    "redis://pw@h",    "redis://u:@h",
                         "redis://u:%zz@h",   "redis://u:%00@h", "redis://[::1",
                         "redis://h/99999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(config_redis_parse_url(bad[i], &r, &why), -1);
        assert_non_null(why);
    }
    /* a failed parse leaves the last good one */
    assert_string_equal(r.password, "only");
    struct config c = {.redis = rp};
    config_redis_free(&c);
#undef r
}

static void test_defaults_and_secret(void **state)
{
    struct config_errors errs;
    struct config *c = load(BASE "redis:\n  url: redis://u:s3cret-pw-x@127.0.0.1:7000/2\n", &errs);
    assert_non_null(c);
    assert_int_equal(errs.count, 0);
    const struct cfg_redis *r = c->redis;
    assert_string_equal(r->prefix, "unbusy:");
    assert_int_equal(r->timeout_ms, 50);
    assert_int_equal(r->connect_timeout_ms, 1000);
    assert_int_equal(r->lease, 4);
    assert_int_equal(r->sync_interval_ms, 250);
    assert_true(r->tls_verify);
    assert_int_equal(r->db, 2);
    /* the password is redacted wherever redaction runs */
    const char *line = "AUTH failed for s3cret-pw-x today";
    char out[128];
    redact_text(&c->secrets, line, strlen(line), out, sizeof out);
    assert_null(strstr(out, "s3cret-pw-x"));
    config_unref(c);
    config_errors_free(&errs);

    c = load(BASE
             "redis:\n  url: redis://h\n  tls: true\n  prefix: \"p:\"\n  timeout: 20ms\n"
             "  connect_timeout: 2s\n  lease: 1\n  sync_interval: 100ms\n  tls_verify: false\n",
             &errs);
    assert_non_null(c);
    assert_true(c->redis->tls);
    assert_string_equal(c->redis->prefix, "p:");
    assert_int_equal(c->redis->timeout_ms, 20);
    assert_int_equal(c->redis->lease, 1);
    assert_false(c->redis->tls_verify);
    config_unref(c);
    config_errors_free(&errs);

    c = load(BASE, &errs); /* no section: nothing shared */
    assert_null(c->redis);
    config_unref(c);
    config_errors_free(&errs);
}

static void test_problems(void **state)
{
    const struct {
        const char *yaml, *expect;
    } cases[] = {
        {"redis:\n  url: redis://u:TopSecret99@h:0\n", "bad redis URL: the port"},
        {"redis:\n  prefix: x\n", "url"},
        {"redis:\n  url: redis://h\n  timeout: 2s\n", "must be shorter than connect_timeout"},
        {"redis:\n  url: redis://h\n  lease: 1001\n", "lease"},
        {"redis:\n  url: redis://h\n  urll: x\n", "urll"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, BASE "%s", cases[i].yaml);
        struct config_errors errs;
        struct config *c = load(text, &errs);
        assert_null(c);
        const char *got = errs.text.data ? errs.text.data : "";
        if (!strstr(got, cases[i].expect))
            fprintf(stderr, "expected \"%s\" in:\n%s", cases[i].expect, got);
        assert_non_null(strstr(got, cases[i].expect));
        assert_null(strstr(got, "TopSecret99")); /* a bad URL is described, never shown */
        config_errors_free(&errs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_defaults_and_secret),
        cmocka_unit_test(test_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
