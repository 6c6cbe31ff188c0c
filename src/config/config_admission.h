/*
 * config_admission — the admission keys of the configuration: a model's
 * queue:, degrade: and limits:, and the top-level rules: list (request
 * tiering). config.c puts these parsers in its tables and calls
 * config_admission_defaults for each model and config_admission_check once
 * the whole file is read.
 */
#ifndef UNBUSY_CONFIG_ADMISSION_H
#define UNBUSY_CONFIG_ADMISSION_H

#include "config/config.h"
#include "config/config_yaml.h"

void config_admission_defaults(struct cfg_model *m);
void config_parse_queue(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f);
void config_parse_degrade(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f);
void config_parse_model_limits(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                               const struct config_yaml_field *f);
void config_parse_rules(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f);
/* Cross-checks once every model is known: degrade.to and rules' route.model name models. */
void config_admission_check(struct config_yaml_loader *ld, struct config *c);
void config_admission_free(struct config *c);

#endif
