/*
 * A provider's engine: and metrics: keys, a model's routing: section, and the
 * defaults that follow from the deployments: engine_load and prefix affinity
 * where every deployment is a scraped engine, p2c and no affinity elsewhere.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static struct config *load(const char *text, struct config_errors *errs)
{
    struct config *c = NULL;
    config_errors_init(errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, errs) < 0) return NULL;
    return c;
}

#define ENGINES                                                                                    \
    "providers:\n"                                                                                 \
    "  a:\n    type: vllm\n    base_url: http://10.0.0.1:8000/v1\n"                                \
    "  b:\n    type: sglang\n    base_url: http://10.0.0.2:30000/v1\n"                             \
    "  c:\n    type: llama.cpp\n    base_url: http://10.0.0.3:8080/v1\n"                           \
    "  cloud:\n    type: deepseek\n    api_key: sk-x\n"

/* Presets only: the engines are scraped at /metrics every second, the pool of engines
   balances with engine_load and prefix affinity, the mixed one as before. */
static void test_untuned_presets(void **state)
{
    struct config_errors errs;
    struct config *c =
        load(ENGINES "models:\n"
                     "  local:\n    - {provider: a, model: q}\n"
                     "    - {provider: b, model: q}\n    - {provider: c, model: q}\n"
                     "  mixed:\n    - {provider: a, model: q}\n"
                     "    - {provider: cloud, model: deepseek-chat}\n"
                     "  fallback:\n    - {provider: a, model: q}\n"
                     "    - {provider: b, model: q}\n"
                     "    - {provider: cloud, model: deepseek-chat, tier: 1}\n"
                     "  cloud-only:\n    - {provider: cloud, model: deepseek-chat}\n",
             &errs);
    assert_non_null(c);
    const enum cfg_engine want[] = {CFG_ENGINE_VLLM, CFG_ENGINE_SGLANG, CFG_ENGINE_LLAMA_CPP,
                                    CFG_ENGINE_NONE};
    for (int i = 0; i < 4; i++) {
        const struct cfg_engine_metrics *m = &c->providers[i].metrics;
        assert_int_equal(m->engine, want[i]);
        assert_int_equal(m->enabled, i < 3);
        assert_string_equal(m->path, "/metrics");
        assert_int_equal(m->interval_ms, 1000);
        assert_int_equal(m->timeout_ms, 1000);
        assert_int_equal(m->unhealthy_threshold, 3);
        assert_null(m->host);
    }
    const struct cfg_model *local = config_find_model(c, "local");
    assert_string_equal(local->resilience.strategy, "engine_load");
    assert_int_equal(local->routing.affinity, CFG_AFFINITY_PREFIX);
    assert_string_equal(local->routing.header, "x-session-id");
    assert_int_equal(local->routing.prefix_bytes, 4096);
    assert_true(local->routing.load_factor == 1.25);
    /* engines in tier 0, a cloud API as the fallback tier: still the engines' defaults */
    const struct cfg_model *fallback = config_find_model(c, "fallback");
    assert_string_equal(fallback->resilience.strategy, "engine_load");
    assert_int_equal(fallback->routing.affinity, CFG_AFFINITY_PREFIX);
    const struct cfg_model *cloud = config_find_model(c, "cloud-only");
    assert_string_equal(cloud->resilience.strategy, "p2c");
    assert_int_equal(cloud->routing.affinity, CFG_AFFINITY_OFF);
    const struct cfg_model *mixed = config_find_model(c, "mixed");
    assert_string_equal(mixed->resilience.strategy, "p2c");
    assert_int_equal(mixed->routing.affinity, CFG_AFFINITY_OFF);
    config_unref(c);
    config_errors_free(&errs);
}

/* What is written wins: a strategy (top-level or the model's), metrics: off, engine: tgi
   on a plain OpenAI-compatible server, a metrics URL of its own, header affinity. */
static void test_written_keys_win(void **state)
{
    struct config_errors errs;
    struct config *c =
        load("resilience:\n  strategy: least_inflight\n"
             "providers:\n"
             "  a:\n    type: vllm\n    base_url: http://10.0.0.1:8000/v1\n"
             "  t:\n    base_url: http://10.0.0.4:80/v1\n    engine: tgi\n"
             "    metrics:\n      url: http://10.0.0.4:9400/prom\n      interval: 250ms\n"
             "      unhealthy_threshold: 5\n"
             "  off:\n    type: vllm\n    base_url: http://10.0.0.5:8000/v1\n    metrics: false\n"
             "  none:\n    type: vllm\n    base_url: http://10.0.0.6:8000/v1\n    engine: none\n"
             "models:\n"
             "  m1:\n    deployments:\n      - {provider: a, model: q}\n      - {provider: t, "
             "model: q}\n"
             "    routing:\n      affinity: header\n      header: X-Session-Id\n"
             "      load_factor: 1.5\n      prefix_bytes: 1024\n"
             "  m2:\n    deployments:\n      - {provider: a, model: q}\n"
             "    resilience: {strategy: engine_load}\n"
             "    routing: {affinity: off}\n"
             "  m3:\n    - {provider: a, model: q}\n    - {provider: off, model: q}\n",
             &errs);
    if (!c) fail_msg("%s", errs.text.data);
    const struct cfg_engine_metrics *t = &c->providers[1].metrics;
    assert_int_equal(t->engine, CFG_ENGINE_TGI);
    assert_true(t->enabled);
    assert_string_equal(t->host, "10.0.0.4");
    assert_int_equal(t->port, 9400);
    assert_string_equal(t->path, "/prom");
    assert_int_equal(t->interval_ms, 250);
    assert_int_equal(t->timeout_ms, 250);
    assert_int_equal(t->unhealthy_threshold, 5);
    assert_false(c->providers[2].metrics.enabled);
    assert_false(c->providers[3].metrics.enabled);
    const struct cfg_model *m1 = config_find_model(c, "m1");
    assert_string_equal(m1->resilience.strategy, "least_inflight"); /* the top-level one */
    assert_int_equal(m1->routing.affinity, CFG_AFFINITY_HEADER);
    assert_string_equal(m1->routing.header, "x-session-id");
    assert_true(m1->routing.load_factor == 1.5);
    assert_int_equal(m1->routing.prefix_bytes, 1024);
    const struct cfg_model *m2 = config_find_model(c, "m2");
    assert_string_equal(m2->resilience.strategy, "engine_load");
    assert_int_equal(m2->routing.affinity, CFG_AFFINITY_OFF);
    const struct cfg_model *m3 = config_find_model(c, "m3");
    assert_int_equal(m3->routing.affinity, CFG_AFFINITY_OFF); /* one is not scraped */
    config_unref(c);
    config_errors_free(&errs);
}

static void test_problems(void **state)
{
    struct config_errors errs;
    struct config *c = load("providers:\n  a:\n    base_url: http://h/v1\n    engine: triton\n"
                            "    metrics: {path: metrics, interval: 10ms, url: ftp://x}\n"
                            "models:\n  m:\n    deployments:\n      - {provider: a, model: q}\n"
                            "    routing: {affinity: sticky, load_factor: 1, header: \"a b\"}\n",
                            &errs);
    assert_null(c);
    const char *want[] = {
        "t.yaml:4: providers.a.engine: unknown engine \"triton\"",
        "providers.a.metrics.path: must start with '/'",
        "providers.a.metrics.interval:",
        "providers.a.metrics.url: bad URL \"ftp://x\"",
        "models.m.routing.affinity: unknown affinity \"sticky\"",
        "models.m.routing.load_factor:",
        "models.m.routing.header: \"a b\" is not a valid HTTP header name",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(errs.text.data, want[i]))
            fail_msg("missing %s in:\n%s", want[i], errs.text.data);
    config_errors_free(&errs);
    /* a password in a metrics URL is refused without being repeated */
    c = load("providers:\n  a:\n    type: vllm\n    base_url: http://h/v1\n"
             "    metrics: {url: \"http://user:s3cretpw@h:9000/metrics\"}\n"
             "models:\n  m: [{provider: a, model: q}]\n",
             &errs);
    assert_null(c);
    assert_non_null(strstr(errs.text.data, "providers.a.metrics.url: bad URL: credentials"));
    assert_null(strstr(errs.text.data, "s3cretpw"));
    config_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untuned_presets),
        cmocka_unit_test(test_written_keys_win),
        cmocka_unit_test(test_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
