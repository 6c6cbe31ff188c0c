/*
 * presets — what `type:` on a provider fills in: one table, one row per kind
 * of provider (DeepSeek, Azure OpenAI, vLLM, ...), each row the defaults of
 * that provider's keys and the quirks its API has.
 *
 * config.c parses `type:` first among a provider's keys (config_preset_apply
 * copies the row into the cfg_provider), so every key the provider gives
 * itself overrides the row; config_preset_finish runs after the provider's
 * keys (base URL required when the row has none, Azure's v1 API told from
 * its base path) and config_preset_deployment resolves a deployment's
 * max_tokens limit. Nothing here runs per request: the provider layer reads
 * the resolved fields of cfg_provider and cfg_deployment, and the row itself
 * (cfg_provider.preset) only for constant data. docs/providers.md describes
 * each row and cites the providers' documentation.
 */
#ifndef UNBUSY_CONFIG_PRESETS_H
#define UNBUSY_CONFIG_PRESETS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "config/config_yaml.h"

/* A model name the provider caps at a documented max_tokens. */
struct config_preset_limit {
    const char *model;
    uint32_t max_tokens;
};

struct config_preset {
    const char *name; /* the type: value */
    enum cfg_provider_type type;
    const char *base_url;               /* NULL: base_url: is required */
    const char *auth_header;            /* "Authorization" or "api-key" */
    const char *auth_prefix;            /* "Bearer " or "" (the raw key) */
    const char *models_path;            /* the model list (models: auto), under base_path */
    const char *probe_path;             /* the shallow probe, under base_path */
    const char *api_version;            /* an api-version query parameter (Azure); NULL: none */
    bool deployment_paths;              /* /openai/deployments/{model}/... (Azure) */
    const char *prefix_base_path;       /* prefix continuation is served under this base path
                                           (DeepSeek's /beta); NULL: the provider's own */
    enum cfg_continuation continuation; /* what continuation: auto means here */
    bool rename_reasoning;        /* stream chunks say "reasoning": relay "reasoning_content" */
    bool strip_reasoning_history; /* drop reasoning_content from the messages sent */
    const struct config_preset_limit *limits; /* NULL-model-terminated; NULL: none */
};

/* The row of a type (never NULL for a valid enum value). */
const struct config_preset *config_preset_of(enum cfg_provider_type type);

/* The row named name, or NULL. */
const struct config_preset *config_preset_find(const char *name);

/* The defaults of a provider that gives no type: (openai-compatible), before its keys. */
void config_preset_defaults(struct config_yaml_loader *ld, struct cfg_provider *p);

/* `type:` — a parse function for config.c's provider table (its first row). */
void config_preset_apply(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f);

/* models_path: (a path under base_path) and models: auto|off, for config.c's provider table. */
void config_preset_models_path(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f);
void config_preset_models(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f);

/* After the provider's keys: checks and what depends on several keys. map is the
   provider's node (for messages). */
void config_preset_finish(struct config_yaml_loader *ld, yaml_node_t *map, struct cfg_provider *p);

/* The name of the model that serves what models: auto providers list: a name no file can
   give a model (it has a space), never served as itself. */
#define CONFIG_AUTO_MODEL_NAME "models: auto"

/* Whether a provider of c says models: auto. */
bool config_preset_any_auto(const struct config *c);
/* Fills m (zeroed) as that model: one deployment per models: auto provider, whose model
   "*" stands for the name the client asks for; the top-level timeouts and resilience. */
void config_preset_auto_model(struct config_yaml_loader *ld, struct config *c, struct cfg_model *m);

/* d->max_tokens_limit when the deployment gave none: the provider's, else the preset's
   for d->model, else 0 (none). */
void config_preset_deployment(struct cfg_deployment *d);

#endif
