/*
 * A provider's discovery: section: the defaults, SRV, a resolver of its own, and what does
 * not fit together reported with the provider's line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/config_discovery.h"

#define MODEL "models:\n  m:\n    - provider: p\n      model: x\n"

static struct config *load(const char *provider, struct config_errors *errs)
{
    char text[1024];
    snprintf(text, sizeof text, "providers:\n  p:\n%s" MODEL, provider);
    struct config *c = NULL;
    config_errors_init(errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, errs) < 0) return NULL;
    return c;
}

static void test_off_by_default(void **state)
{
    struct config_errors errs;
    struct config *c = load("    base_url: http://vllm.test:8000/v1\n", &errs);
    assert_non_null(c);
    assert_null(c->providers[0].discovery);
    config_unref(c);
    config_errors_free(&errs);
}

static void test_dns_defaults(void **state)
{
    struct config_errors errs;
    struct config *c =
        load("    base_url: http://vllm.test:8000/v1\n    discovery: {dns: true}\n", &errs);
    assert_non_null(c);
    const struct cfg_discovery *d = c->providers[0].discovery;
    assert_non_null(d);
    assert_true(d->dns);
    assert_null(d->srv);
    assert_int_equal(d->interval_min_ms, 1000);
    assert_int_equal(d->interval_max_ms, 300000);
    assert_int_equal(d->timeout_ms, 2000);
    assert_int_equal(d->max_endpoints, 64);
    assert_null(d->resolver);
    config_unref(c);
    config_errors_free(&errs);
}

static void expect_error(const char *provider, const char *words);

static void test_shorthand(void **state)
{
    struct config_errors errs;
    struct config *c = load("    base_url: http://vllm.test:8000/v1\n    discovery: true\n", &errs);
    assert_non_null(c);
    assert_non_null(c->providers[0].discovery);
    assert_true(c->providers[0].discovery->dns);
    assert_int_equal(c->providers[0].discovery->interval_min_ms, 1000);
    config_unref(c);
    config_errors_free(&errs);
    c = load("    base_url: http://vllm.test:8000/v1\n    discovery: off\n", &errs);
    assert_non_null(c);
    assert_null(c->providers[0].discovery);
    config_unref(c);
    config_errors_free(&errs);
    expect_error("    base_url: http://vllm.test/v1\n    discovery: sometimes\n", "discovery");
}

static void test_srv_with_resolver(void **state)
{
    struct config_errors errs;
    struct config *c = load("    base_url: http://vllm.default.svc/v1\n"
                            "    discovery:\n      srv: _http._tcp.vllm.default.svc.cluster.local\n"
                            "      resolver: \"[::1]:5353\"\n      interval_min: 5s\n"
                            "      interval_max: 1m\n      max_endpoints: 8\n",
                            &errs);
    assert_non_null(c);
    const struct cfg_discovery *d = c->providers[0].discovery;
    assert_string_equal(d->srv, "_http._tcp.vllm.default.svc.cluster.local");
    assert_string_equal(d->resolver, "[::1]:5353");
    assert_int_equal(d->interval_min_ms, 5000);
    assert_int_equal(d->interval_max_ms, 60000);
    assert_int_equal(d->max_endpoints, 8);
    config_unref(c);
    config_errors_free(&errs);
}

static void expect_error(const char *provider, const char *words)
{
    struct config_errors errs;
    struct config *c = load(provider, &errs);
    assert_null(c);
    if (!strstr(errs.text.data, words)) fail_msg("no \"%s\" in: %s", words, errs.text.data);
    assert_non_null(strstr(errs.text.data, "t.yaml:"));
    config_errors_free(&errs);
}

static void test_errors(void **state)
{
    expect_error("    base_url: http://vllm.test/v1\n    discovery: {dns: true, srv: _x._tcp.a}\n",
                 "not both");
    expect_error("    base_url: http://vllm.test/v1\n    discovery: {interval_min: 2s}\n",
                 "needs dns: true or srv");
    expect_error("    base_url: http://10.0.0.5:8000/v1\n    discovery: {dns: true}\n",
                 "needs a host name");
    expect_error(
        "    base_url: http://vllm.test/v1\n    discovery: {dns: true, resolver: dns.local}\n",
        "is not ADDRESS:PORT");
    expect_error("    base_url: http://vllm.test/v1\n"
                 "    discovery: {dns: true, interval_min: 10m, interval_max: 1m}\n",
                 "interval_min is above interval_max");
    expect_error("    base_url: sim://healthy\n    discovery: {dns: true}\n", "simulated");
    expect_error(
        "    base_url: http://vllm.test/v1\n    discovery: {dns: true, max_endpoints: 65}\n",
        "max_endpoints");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default), cmocka_unit_test(test_dns_defaults),
        cmocka_unit_test(test_shorthand),      cmocka_unit_test(test_srv_with_resolver),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
