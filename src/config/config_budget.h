/*
 * config_budget — the budgets: section of the configuration: spending limits
 * per key (daily and monthly, in a currency), what happens when one is spent
 * (refuse, or degrade to a cheaper model), the share of a budget that sends
 * a warning, and the webhook those alerts are posted to.
 *
 * config.c puts config_budget_section in its top-level table (after models,
 * keys and key_store: a budget names a key and may name a model) and calls
 * config_budget_free from config_free. The webhook URL becomes a struct
 * cfg_provider (host, port, TLS, extra headers) that budget.c hands to the
 * HTTP client, plus the path and query to POST to. budget.c holds the runtime
 * side (spend checks, alerts, delivery).
 */
#ifndef UNBUSY_CONFIG_BUDGET_H
#define UNBUSY_CONFIG_BUDGET_H

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_BUDGET_MAX 16384       /* budgets under budgets.keys */
#define CONFIG_BUDGET_MAX_AMOUNT 1e12 /* per day or month, in any currency */
#define CONFIG_BUDGET_MAX_HEADERS 16  /* webhook_headers */
#define CONFIG_BUDGET_DEFAULT_ALERT_AT 0.8

void config_budget_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f);
/* Frees what the section allocated (budgets, the webhook target). */
void config_budget_free(struct config *c);

#endif
