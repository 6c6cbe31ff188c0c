/*
 * config_engine — a provider's engine: and metrics: keys and a model's
 * routing: section (struct cfg_engine_metrics, struct cfg_routing), and the
 * defaults that follow from them.
 *
 * engine: vllm | sglang | llama.cpp | tgi | none names the inference server
 * behind a provider; the presets vllm, sglang and llama.cpp imply theirs.
 * metrics: {path, url, interval, timeout, unhealthy_threshold} (or false)
 * says where and how often its Prometheus metrics are read; an engine known
 * and not turned off is scraped (route/engine_scrape.c). routing: {affinity:
 * auto | prefix | header | off, header, prefix_bytes, load_factor} says
 * whether a model's requests keep to one deployment. config_engine_finish,
 * after every model is read, resolves the defaults that depend on a model's
 * deployments: a model whose tiers with engines hold only scraped engines (a
 * cloud fallback in a tier of its own allowed) balances with engine_load
 * unless resilience.strategy is written, and routing.affinity auto becomes
 * prefix there and off elsewhere (docs/routing.md says why).
 *
 * Who calls it: config.c's provider and model tables (the section parsers),
 * parse_providers (finish_provider), config_load_text (finish) and
 * config_provider_free_fields (free_provider).
 */
#ifndef UNBUSY_CONFIG_ENGINE_H
#define UNBUSY_CONFIG_ENGINE_H

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_ENGINE_DEFAULT_INTERVAL_MS 1000
#define CONFIG_ENGINE_DEFAULT_THRESHOLD 3
#define CONFIG_ENGINE_DEFAULT_PREFIX_BYTES 4096
#define CONFIG_ENGINE_DEFAULT_LOAD_FACTOR 1.25

void config_engine_parse_engine(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                const struct config_yaml_field *f);
void config_engine_metrics_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                   const struct config_yaml_field *f);
void config_engine_routing_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                                   const struct config_yaml_field *f);
/* After a provider's keys: the engine its type implies, the metrics defaults. */
void config_engine_finish_provider(struct config_yaml_loader *ld, yaml_node_t *provider_node,
                                   struct cfg_provider *p);
/* After every model: the default strategy and affinity of each model. */
void config_engine_finish(struct config_yaml_loader *ld, struct config *c);
void config_engine_free_provider(struct cfg_provider *p);

/* "vllm", "sglang", "llama.cpp", "tgi", "none". */
const char *config_engine_name(enum cfg_engine e);
/* "auto", "off", "prefix", "header". */
const char *config_engine_affinity_name(enum cfg_affinity a);
/* m has a deployment on a scraped engine, and no tier of m mixes such deployments with
   others (a cloud fallback in a higher tier of its own is fine). */
bool config_engine_model_all_scraped(const struct cfg_model *m);

#endif
