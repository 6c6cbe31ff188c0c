/*
 * config_auth — who may use the gateway and its admin API, as the
 * configuration says: the auth: section (open: serve requests without an API
 * key), the admin: section (token) and the decision, once the whole file is
 * read, whether clients need a key (config->auth.open).
 *
 * The gateway is open only when the file says auth.open: true or names
 * neither keys: nor key_store:. How many keys a store holds never matters: a
 * store emptied at run time refuses everyone, it does not open the gateway.
 * An admin token that is written but comes out empty (an unset ${VAR}) is an
 * error, not an admin API that quietly falls back to having no token.
 *
 * config.c puts config_auth_section and config_admin_section in its
 * top-level table, calls config_auth_note_keys from the keys: and key_store:
 * parsers, and config_auth_check after the walk.
 */
#ifndef UNBUSY_CONFIG_AUTH_H
#define UNBUSY_CONFIG_AUTH_H

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_ADMIN_TOKEN_MIN_CHARS 16 /* shorter loads, with a warning */

void config_auth_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f);
void config_admin_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f);
/* keys: or key_store: is in the file (whatever its value): clients need a key. */
void config_auth_note_keys(struct config_yaml_loader *ld);
/* Decides c->auth.open; reports auth.open: true next to keys: or key_store:. */
void config_auth_check(struct config_yaml_loader *ld, struct config *c);

#endif
