/*
 * presets.c — the table of provider types and how a row becomes a provider's
 * defaults. docs/providers.md gives each row's sources.
 */
#include "config/presets.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_admission.h"
#include "config/config_value.h"

#define SEC 1000u

/* DeepSeek's documented output caps ("Models & Pricing": deepseek-chat up to 8K,
   deepseek-reasoner up to 64K tokens); an API refuses a larger max_tokens with a 400. */
static const struct config_preset_limit deepseek_limits[] = {
    {"deepseek-chat", 8192},
    {"deepseek-reasoner", 65536},
    {NULL, 0},
};

/* One row per type, in enum cfg_provider_type's order (checked at start of config_preset_of). */
static const struct config_preset presets[CFG_TYPE_COUNT] = {
    {.name = "openai-compatible",
     .type = CFG_TYPE_OPENAI_COMPATIBLE,
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_AUTO},
    {.name = "openai",
     .type = CFG_TYPE_OPENAI,
     .base_url = "https://api.openai.com/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_OFF},
    {.name = "azure-openai",
     .type = CFG_TYPE_AZURE_OPENAI,
     .auth_header = "api-key",
     .auth_prefix = "",
     .models_path = "/openai/models",
     .probe_path = "/openai/models",
     .api_version = "2024-10-21",
     .deployment_paths = true,
     .continuation = CFG_CONTINUATION_OFF},
    {.name = "deepseek",
     .type = CFG_TYPE_DEEPSEEK,
     .base_url = "https://api.deepseek.com/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .prefix_base_path = "/beta",
     .continuation = CFG_CONTINUATION_PREFIX,
     .strip_reasoning_history = true,
     .limits = deepseek_limits},
    {.name = "volcengine-ark",
     .type = CFG_TYPE_VOLCENGINE_ARK,
     .base_url = "https://ark.cn-beijing.volces.com/api/v3",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "alibaba-bailian",
     .type = CFG_TYPE_ALIBABA_BAILIAN,
     .base_url = "https://dashscope.aliyuncs.com/compatible-mode/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "alibaba-pai-eas",
     .type = CFG_TYPE_ALIBABA_PAI_EAS,
     .auth_header = "Authorization",
     .auth_prefix = "",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE},
    {.name = "tencent-lkeap",
     .type = CFG_TYPE_TENCENT_LKEAP,
     .base_url = "https://api.lkeap.cloud.tencent.com/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "huawei-modelarts",
     .type = CFG_TYPE_HUAWEI_MODELARTS,
     .base_url = "https://api.modelarts-maas.com/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "baidu-qianfan",
     .type = CFG_TYPE_BAIDU_QIANFAN,
     .base_url = "https://qianfan.baidubce.com/v2",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "siliconflow",
     .type = CFG_TYPE_SILICONFLOW,
     .base_url = "https://api.siliconflow.cn/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE,
     .strip_reasoning_history = true},
    {.name = "vllm",
     .type = CFG_TYPE_VLLM,
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_CONTINUE_FINAL,
     .rename_reasoning = true},
    {.name = "sglang",
     .type = CFG_TYPE_SGLANG,
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_CONTINUE_FINAL},
    {.name = "llama.cpp",
     .type = CFG_TYPE_LLAMA_CPP,
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE},
    {.name = "ollama",
     .type = CFG_TYPE_OLLAMA,
     .base_url = "http://127.0.0.1:11434/v1",
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE},
    {.name = "triton",
     .type = CFG_TYPE_TRITON,
     .auth_header = "Authorization",
     .auth_prefix = "Bearer ",
     .models_path = "/models",
     .probe_path = "/models",
     .continuation = CFG_CONTINUATION_ASSISTANT_MESSAGE},
};

const struct config_preset *config_preset_of(enum cfg_provider_type type)
{
    return (unsigned)type < CFG_TYPE_COUNT ? &presets[type] : &presets[CFG_TYPE_OPENAI_COMPATIBLE];
}

const struct config_preset *config_preset_find(const char *name)
{
    for (size_t i = 0; i < CFG_TYPE_COUNT; i++)
        if (strcasecmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

/* *dst = a copy of s (the old value freed); NULL stays NULL. */
static void set_str(struct config_yaml_loader *ld, char **dst, const char *s)
{
    free(*dst);
    *dst = s ? config_yaml_strdup(ld, s) : NULL;
}

/* What a row sets on a provider; the provider's own keys come after. */
static void put_row(struct config_yaml_loader *ld, struct cfg_provider *p,
                    const struct config_preset *row)
{
    p->type = row->type;
    p->preset = row;
    set_str(ld, &p->auth_header, row->auth_header);
    set_str(ld, &p->auth_prefix, row->auth_prefix);
    set_str(ld, &p->probe.path, row->probe_path);
    set_str(ld, &p->models_path, row->models_path);
    set_str(ld, &p->api_version, row->api_version);
    p->deployment_paths = row->deployment_paths;
    p->rename_reasoning = row->rename_reasoning;
    p->strip_reasoning_history = row->strip_reasoning_history;
}

void config_preset_defaults(struct config_yaml_loader *ld, struct cfg_provider *p)
{
    p->tls_verify = true;
    p->stream_upstream = true;
    p->max_idle_conns = 64;
    p->idle_conn_timeout_ms = 60 * SEC;
    p->models_refresh_ms = 60 * SEC;
    p->probe = (struct cfg_probe){
        .interval_ms = 30 * SEC,
        .timeout_ms = 5 * SEC,
        .healthy_threshold = 2,
        .unhealthy_threshold = 3,
        .deep_interval_ms = 300 * SEC,
    };
    put_row(ld, p, &presets[CFG_TYPE_OPENAI_COMPATIBLE]);
}

static void set_base_url(struct config_yaml_loader *ld, yaml_node_t *v, struct cfg_provider *p,
                         const char *url)
{
    const char *why;
    free(p->host);
    free(p->base_path);
    free(p->sim_profile);
    p->host = p->base_path = p->sim_profile = NULL;
    if (config_value_base_url(url, p, &why))
        CONFIG_YAML_ERR(ld, v, "the preset's URL \"%s\": %s", url, why);
    set_str(ld, &p->base_url, url);
    p->probe.enabled = p->kind != CFG_PROVIDER_SIM;
}

void config_preset_apply(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    (void)f;
    struct cfg_provider *p = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    const char *names[CFG_TYPE_COUNT];
    for (size_t i = 0; i < CFG_TYPE_COUNT; i++)
        names[i] = presets[i].name;
    int i = config_yaml_choice(ld, v, name, "type", names, CFG_TYPE_COUNT);
    free(name);
    if (i < 0) return;
    put_row(ld, p, &presets[i]);
    if (presets[i].base_url) set_base_url(ld, v, p, presets[i].base_url);
}

void config_preset_models_path(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f)
{
    (void)f;
    struct cfg_provider *p = obj;
    char *path = config_yaml_text(ld, v);
    if (!path) return;
    if (path[0] != '/' || config_value_has_control(path) || strpbrk(path, " \t")) {
        CONFIG_YAML_ERR(ld, v, "must be a path starting with '/', without spaces, got \"%s\"",
                        path);
        free(path);
        return;
    }
    free(p->models_path);
    p->models_path = path;
}

void config_preset_models(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    (void)f;
    static const char *const modes[] = {"off", "auto"};
    char *mode = config_yaml_text(ld, v);
    if (!mode) return;
    int i = config_yaml_choice(ld, v, mode, "models mode", modes, 2);
    if (i >= 0) ((struct cfg_provider *)obj)->models_auto = i == 1;
    free(mode);
}

/* Azure's v1 API (base URL ending in /openai/v1) takes the OpenAI paths with the deployment
   as the body's model, and no api-version. */
static bool azure_v1(const struct cfg_provider *p)
{
    size_t n = p->base_path ? strlen(p->base_path) : 0;
    return n >= 10 && strcasecmp(p->base_path + n - 10, "/openai/v1") == 0;
}

void config_preset_finish(struct config_yaml_loader *ld, yaml_node_t *map, struct cfg_provider *p)
{
    if (!p->base_url) {
        size_t old = config_yaml_path_key(ld, "base_url");
        if (p->type == CFG_TYPE_OPENAI_COMPATIBLE)
            CONFIG_YAML_ERR(ld, map, "missing (required)");
        else
            CONFIG_YAML_ERR(ld, map, "missing (required: type %s has no default URL)",
                            p->preset ? p->preset->name : "?");
        config_yaml_path_pop(ld, old);
        return;
    }
    if (p->type == CFG_TYPE_AZURE_OPENAI && azure_v1(p) && p->deployment_paths) {
        p->deployment_paths = false;
        /* the v1 API's paths take no api-version; an explicit one is kept */
        if (p->api_version && p->preset && p->preset->api_version &&
            strcmp(p->api_version, p->preset->api_version) == 0)
            set_str(ld, &p->api_version, NULL);
        if (p->probe.path && strcmp(p->probe.path, "/openai/models") == 0)
            set_str(ld, &p->probe.path, "/models");
        if (p->models_path && strcmp(p->models_path, "/openai/models") == 0)
            set_str(ld, &p->models_path, "/models");
    }
}

void config_preset_deployment(struct cfg_deployment *d)
{
    const struct cfg_provider *pv = d->provider;
    if (d->max_tokens_limit || !pv) return;
    if (pv->max_tokens_limit) {
        d->max_tokens_limit = pv->max_tokens_limit;
        return;
    }
    const struct config_preset_limit *l = pv->preset ? pv->preset->limits : NULL;
    for (; l && l->model; l++)
        if (d->model && strcasecmp(d->model, l->model) == 0) {
            d->max_tokens_limit = l->max_tokens;
            return;
        }
}

bool config_preset_any_auto(const struct config *c)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (c->providers[i].models_auto) return true;
    return false;
}

void config_preset_auto_model(struct config_yaml_loader *ld, struct config *c, struct cfg_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nproviders; i++)
        n += c->providers[i].models_auto;
    m->name = config_yaml_strdup(ld, CONFIG_AUTO_MODEL_NAME);
    m->auto_import = true;
    m->timeouts = c->default_timeouts;
    m->resilience = c->default_resilience;
    m->resilience.strategy = c->default_resilience.strategy
                                 ? config_yaml_strdup(ld, c->default_resilience.strategy)
                                 : NULL;
    config_admission_defaults(m);
    m->deployments = calloc(n, sizeof *m->deployments);
    if (!m->deployments) {
        config_yaml_report(ld, 1, false, "out of memory");
        return;
    }
    for (size_t i = 0; i < c->nproviders; i++) {
        if (!c->providers[i].models_auto) continue;
        struct cfg_deployment *d = &m->deployments[m->ndeployments++];
        d->provider = &c->providers[i];
        d->model = config_yaml_strdup(ld, "*");
        d->weight = 1;
        d->line = c->providers[i].line;
        config_preset_deployment(d);
    }
    m->max_attempts = (uint32_t)(m->ndeployments > 10 ? 10 : m->ndeployments ? m->ndeployments : 1);
}
