/*
 * config_aws — a provider's wire: key and its aws: section (struct cfg_aws).
 *
 * wire: openai (the default), bedrock-converse or sagemaker. An AWS wire takes
 * an aws: section (region, service, credentials, access_key_id,
 * secret_access_key, session_token), all optional: config_aws_finish resolves
 * the region (the section, AWS_REGION / AWS_DEFAULT_REGION, or the label
 * before .amazonaws.com in base_url's host) and the credentials' source (keys
 * in the file, else the environment's AWS_ACCESS_KEY_ID and friends, copied
 * at load, else the container credentials endpoint), and reports what is
 * missing with the provider's line.
 *
 * Who calls it: config.c's provider table (the two section parsers) and
 * parse_providers (finish); config_provider_free_fields (free).
 */
#ifndef UNBUSY_CONFIG_AWS_H
#define UNBUSY_CONFIG_AWS_H

#include "config/config.h"
#include "config/config_yaml.h"

void config_aws_parse_wire(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f);
void config_aws_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f);
/* After the provider's keys are read: defaults, the environment, and what is missing. */
void config_aws_finish(struct config_yaml_loader *ld, yaml_node_t *provider_node,
                       struct cfg_provider *p);
/* The wire's name as in the file. */
const char *config_aws_wire_name(enum cfg_wire w);
void config_aws_free(struct cfg_aws *a);

#endif
