/* Unit tests for readyz_render: the phases that are not ready, a model whose every
   deployment is out of service named (and one only busy or with one left not), the
   names models: auto lists left out, the list bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/readyz.h"
#include "config/config.h"
#include "route/runtime.h"

static const char two_models[] =
    "server:\n  listen: 127.0.0.1:0\n"
    "providers:\n  a: {base_url: 'http://127.0.0.1:9/v1'}\n"
    "  b: {base_url: 'http://127.0.0.1:9/v1'}\n"
    "models:\n"
    "  one:\n    - {provider: a, model: x}\n    - {provider: b, model: x}\n"
    "  two:\n    - {provider: a, model: y}\n";

static struct runtime *load(const char *text, struct config **cfg_out)
{
    struct config_errors errs;
    config_errors_init(&errs);
    struct config *cfg = NULL;
    int rc = config_load_text("<test>", text, strlen(text), &cfg, &errs);
    if (rc < 0) fail_msg("config: %s", errs.text.data);
    config_errors_free(&errs);
    struct runtime *rt = runtime_new(cfg, NULL);
    assert_non_null(rt);
    *cfg_out = cfg;
    return rt;
}

static int render(struct runtime *rt, enum procstate st, uint64_t now, char *out, size_t cap)
{
    struct buf b;
    buf_init(&b, 0);
    int status = readyz_render(rt, st, now, &b);
    snprintf(out, cap, "%.*s", (int)b.len, b.data ? b.data : "");
    buf_free(&b);
    return status;
}

static void test_phases(void **state)
{
    (void)state;
    struct config *cfg;
    struct runtime *rt = load(two_models, &cfg);
    char body[512];
    assert_int_equal(render(rt, PROCSTATE_SERVING, 1000, body, sizeof body), 200);
    assert_string_equal(body, "{\"status\":\"ready\",\"models\":2}");
    assert_int_equal(render(rt, PROCSTATE_UPGRADING, 1000, body, sizeof body), 200);
    assert_int_equal(render(rt, PROCSTATE_STARTING, 1000, body, sizeof body), 503);
    assert_string_equal(body, "{\"status\":\"not_ready\",\"reason\":\"starting\"}");
    assert_int_equal(render(rt, PROCSTATE_STOPPING, 1000, body, sizeof body), 503);
    assert_string_equal(body, "{\"status\":\"not_ready\",\"reason\":\"stopping\"}");
    assert_int_equal(render(rt, PROCSTATE_DRAINING, 1000, body, sizeof body), 503);
    assert_int_equal(render(NULL, PROCSTATE_SERVING, 1000, body, sizeof body), 503);
    assert_string_equal(body, "{\"status\":\"not_ready\",\"reason\":\"no_config\"}");
    runtime_free(rt);
    config_unref(cfg);
}

static void test_models(void **state)
{
    (void)state;
    struct config *cfg;
    struct runtime *rt = load(two_models, &cfg);
    char body[512];
    struct runtime_model *one = &rt->models[0], *two = &rt->models[1];
    /* one of two deployments cooling down: still in service */
    health_cooldown(one->deps[0].health, 1000, 60000);
    assert_int_equal(render(rt, PROCSTATE_SERVING, 1000, body, sizeof body), 200);
    /* both: the model is named, with the first deployment's reason */
    health_set_admin(one->deps[1].health, HEALTH_ADMIN_DISABLED);
    assert_int_equal(render(rt, PROCSTATE_SERVING, 1000, body, sizeof body), 503);
    assert_string_equal(body, "{\"status\":\"not_ready\",\"reason\":\"models\",\"models\":["
                              "{\"model\":\"one\",\"deployments\":2,\"why\":\"cooldown\"}],"
                              "\"more\":0,\"models_total\":2}");
    /* the cooldown passes: ready again */
    health_set_admin(one->deps[1].health, HEALTH_ADMIN_ACTIVE);
    assert_int_equal(render(rt, PROCSTATE_SERVING, 61001, body, sizeof body), 200);
    /* the probes say the provider is down */
    atomic_store(&two->deps[0].provider->probe_down, true);
    assert_int_equal(render(rt, PROCSTATE_SERVING, 61001, body, sizeof body), 503);
    assert_non_null(strstr(body, "{\"model\":\"two\",\"deployments\":1,\"why\":\"probe_down\"}"));
    assert_null(strstr(body, "\"one\"")); /* b still serves one */
    atomic_store(&two->deps[0].provider->probe_down, false);
    /* busy is not out of service: a deployment at its concurrency is still "in health" */
    struct health_ticket t[4];
    struct health_params p;
    health_params_default(&p);
    p.max_concurrency = 1;
    health_set_params(two->deps[0].health, &p);
    assert_true(health_acquire(two->deps[0].health, 61001, &t[0]));
    assert_int_equal(render(rt, PROCSTATE_SERVING, 61001, body, sizeof body), 200);
    health_abandon(two->deps[0].health, &t[0]);
    runtime_free(rt);
    config_unref(cfg);
}

static void test_bounded(void **state)
{
    (void)state;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text,
                                "providers:\n  a: {base_url: "
                                "'http://127.0.0.1:9/v1'}\nmodels:\n");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "  m%d:\n    - {provider: a, model: x%d}\n", i, i);
    struct config *cfg;
    struct runtime *rt = load(text, &cfg);
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        health_set_admin(rt->models[i].deps[0].health, HEALTH_ADMIN_DISABLED);
    char body[8192];
    assert_int_equal(render(rt, PROCSTATE_SERVING, 1000, body, sizeof body), 503);
    size_t listed = 0;
    for (const char *p = body; (p = strstr(p, "{\"model\":")); p++)
        listed++;
    assert_int_equal(listed, READYZ_MAX_MODELS);
    assert_non_null(strstr(body, "\"more\":18,\"models_total\":50}"));
    assert_non_null(strstr(body, "\"why\":\"disabled\""));
    runtime_free(rt);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phases),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
