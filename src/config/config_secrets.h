/*
 * config_secrets — the configured values that must never be shown: a
 * provider's extra headers (the headers: and secret_headers: sections, parsed
 * here because which of their values are secret is decided here) and, for a
 * loaded snapshot, the set of every secret it holds (struct config.secrets:
 * provider api_keys, secret header values, webhook header values, the admin
 * token and the keys: section's keys), which redact.c looks for in text that
 * came from a provider before it is logged or passed on.
 *
 * config.c puts the two header sections in its provider table and calls
 * config_secrets_build once a snapshot has loaded; config_free frees the set.
 */
#ifndef UNBUSY_CONFIG_SECRETS_H
#define UNBUSY_CONFIG_SECRETS_H

#include <stdbool.h>

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_MAX_HEADERS 64 /* extra headers per provider, both sections together */

/* providers.NAME.headers: and providers.NAME.secret_headers: (name → value). */
void config_parse_headers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                          const struct config_yaml_field *f);
void config_parse_secret_headers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                                 const struct config_yaml_field *f);

/* A name → value map of extra headers into p's list (at most max in it), refusing bad
   names, the reserved ones, repeats and control characters; secret: every value is a
   secret (else by config_header_secret_by_name). Also the budget webhook's headers. */
void config_header_map(struct config_yaml_loader *ld, yaml_node_t *map, struct cfg_provider *p,
                       size_t max, const char *const *reserved, size_t nreserved, bool secret);

/* A header whose value is a credential by its name alone: Authorization,
   Proxy-Authorization, Cookie, or a name containing key, token, secret, auth,
   passw, signature or credential (case-insensitive). */
bool config_header_secret_by_name(const char *name);

/* Fills c->secrets (pointers into c). 0, or -1 when out of memory. */
int config_secrets_build(struct config *c);

#endif
