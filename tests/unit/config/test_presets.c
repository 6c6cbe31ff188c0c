#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/presets.h"

static struct config *load(const char *text, struct config_errors *errs)
{
    struct config *c = NULL;
    config_errors_init(errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, errs) != 0) return NULL;
    return c;
}

static struct config *load_ok(const char *text)
{
    struct config_errors errs;
    struct config *c = load(text, &errs);
    if (!c || errs.count)
        fail_msg("unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    config_errors_free(&errs);
    return c;
}

static const struct cfg_provider *provider(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (strcmp(c->providers[i].name, name) == 0) return &c->providers[i];
    fail_msg("no provider %s", name);
    return NULL;
}

/* The table holds one row per type, in the enum's order, each name found again. */
static void test_table(void **state)
{
    (void)state;
    for (int t = 0; t < CFG_TYPE_COUNT; t++) {
        const struct config_preset *row = config_preset_of((enum cfg_provider_type)t);
        assert_int_equal(row->type, t);
        assert_ptr_equal(config_preset_find(row->name), row);
        assert_non_null(row->auth_header);
        assert_non_null(row->models_path);
    }
    assert_null(config_preset_find("no-such-type"));
    assert_string_equal(config_preset_of(CFG_TYPE_COUNT)->name, "openai-compatible");
}

static const char presets_yaml[] =
    "providers:\n"
    "  ds: {type: deepseek, api_key: k}\n"
    "  az: {type: azure-openai, base_url: 'https://r.openai.azure.com', api_key: k}\n"
    "  azv1: {type: azure-openai, base_url: 'https://r.openai.azure.com/openai/v1'}\n"
    "  eas: {type: alibaba-pai-eas, base_url: 'http://x.pai-eas.aliyuncs.com/api/predict/s/v1'}\n"
    "  v: {type: vllm, base_url: 'http://10.0.0.5:8000/v1'}\n"
    "  plain: {base_url: 'http://10.0.0.6:8000/v1'}\n"
    "  own: {type: siliconflow, max_tokens_limit: 1000}\n"
    "models:\n"
    "  m:\n"
    "    - {provider: ds, model: deepseek-chat}\n"
    "    - {provider: ds, model: deepseek-reasoner}\n"
    "    - {provider: ds, model: deepseek-chat, max_tokens_limit: 100}\n"
    "    - {provider: v, model: x}\n"
    "    - {provider: own, model: x}\n"
    "    - {provider: az, model: d}\n"
    "    - {provider: azv1, model: d}\n"
    "    - {provider: eas, model: d}\n"
    "    - {provider: plain, model: d}\n";

static void test_resolution(void **state)
{
    (void)state;
    struct config *c = load_ok(presets_yaml);
    const struct cfg_provider *ds = provider(c, "ds");
    assert_int_equal(ds->type, CFG_TYPE_DEEPSEEK);
    assert_string_equal(ds->host, "api.deepseek.com");
    assert_true(ds->tls);
    assert_string_equal(ds->base_path, "/v1");
    assert_true(ds->strip_reasoning_history);
    assert_false(ds->rename_reasoning);
    assert_string_equal(ds->auth_prefix, "Bearer ");

    const struct cfg_provider *az = provider(c, "az");
    assert_string_equal(az->auth_header, "api-key");
    assert_string_equal(az->auth_prefix, "");
    assert_string_equal(az->api_version, "2024-10-21");
    assert_true(az->deployment_paths);
    assert_string_equal(az->probe.path, "/openai/models");

    const struct cfg_provider *azv1 = provider(c, "azv1"); /* the v1 API: OpenAI paths */
    assert_false(azv1->deployment_paths);
    assert_null(azv1->api_version);
    assert_string_equal(azv1->probe.path, "/models");

    assert_string_equal(provider(c, "eas")->auth_prefix, "");
    const struct cfg_provider *v = provider(c, "v");
    assert_true(v->rename_reasoning);
    assert_int_equal(v->preset->continuation, CFG_CONTINUATION_CONTINUE_FINAL);

    const struct cfg_provider *plain = provider(c, "plain");
    assert_int_equal(plain->type, CFG_TYPE_OPENAI_COMPATIBLE);
    assert_string_equal(plain->auth_header, "Authorization");
    assert_string_equal(plain->probe.path, "/models");
    assert_false(plain->strip_reasoning_history || plain->rename_reasoning ||
                 plain->deployment_paths);

    const struct cfg_provider *own = provider(c, "own");
    assert_string_equal(own->host, "api.siliconflow.cn");
    struct cfg_model *m = &c->models[0];
    assert_int_equal(m->deployments[0].max_tokens_limit, 8192);
    assert_int_equal(m->deployments[1].max_tokens_limit, 65536);
    assert_int_equal(m->deployments[2].max_tokens_limit, 100);
    assert_int_equal(m->deployments[3].max_tokens_limit, 0);
    assert_int_equal(m->deployments[4].max_tokens_limit, 1000);
    config_unref(c);
}

/* A provider's own keys override its type's row, written before or after type:. */
static void test_overrides(void **state)
{
    (void)state;
    struct config *c = load_ok("providers:\n"
                               "  own:\n"
                               "    auth_prefix: 'Token '\n"
                               "    type: siliconflow\n"
                               "    base_url: 'http://10.0.0.7/v1'\n"
                               "    strip_reasoning_history: false\n"
                               "    max_tokens_limit: 1000\n"
                               "    models: auto\n"
                               "    models_path: /v2/models\n"
                               "    continuation: off\n"
                               "models:\n  m: [{provider: own, model: x}]\n");
    const struct cfg_provider *own = provider(c, "own");
    assert_int_equal(own->type, CFG_TYPE_SILICONFLOW);
    assert_string_equal(own->host, "10.0.0.7");
    assert_false(own->tls);
    assert_string_equal(own->auth_prefix, "Token ");
    assert_false(own->strip_reasoning_history);
    assert_int_equal(own->max_tokens_limit, 1000);
    assert_true(own->models_auto);
    assert_string_equal(own->models_path, "/v2/models");
    assert_int_equal(own->continuation, CFG_CONTINUATION_OFF);
    config_unref(c);
}

static void expect_problem(const char *text, const char *want)
{
    struct config_errors errs;
    struct config *c = load(text, &errs);
    assert_null(c);
    if (!strstr(errs.text.data, want)) fail_msg("missing \"%s\" in:\n%s", want, errs.text.data);
    config_errors_free(&errs);
}

static void test_problems(void **state)
{
    (void)state;
    expect_problem("providers:\n  p: {type: vlm, base_url: 'http://h/v1'}\nmodels:\n  m: "
                   "[{provider: p, model: x}]\n",
                   "t.yaml:2: providers.p.type: unknown type \"vlm\"; did you mean \"vllm\"?");
    expect_problem(
        "providers:\n  p: {type: azure-openai}\nmodels:\n  m: [{provider: p, model: x}]\n",
        "providers.p.base_url: missing (required: type azure-openai has no default URL)");
    expect_problem("providers:\n  p: {type: vllm, base_url: 'http://h/v1', models: "
                   "sometimes}\nmodels:\n  m: [{provider: p, "
                   "model: x}]\n",
                   "unknown models mode \"sometimes\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_resolution),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
