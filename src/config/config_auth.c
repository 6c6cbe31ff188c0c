#include "config/config_auth.h"

#include <stdlib.h>
#include <string.h>

#define ERR CONFIG_YAML_ERR
#define FIELD CONFIG_FIELD
#define COUNT CONFIG_COUNT

/* ---- auth: ---- */

static void parse_open(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                       const struct config_yaml_field *f)
{
    struct cfg_auth *a = obj;
    config_yaml_bool(ld, v, obj, f);
    a->open_given = true;
    a->open_line = config_yaml_line(v);
}

static const struct config_yaml_field auth_fields[] = {
    FIELD("open", parse_open, struct cfg_auth, open, 0, 0, 0),
};

void config_auth_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    struct config *c = obj;
    config_yaml_walk(ld, v, auth_fields, COUNT(auth_fields), &c->auth);
}

void config_auth_note_keys(struct config_yaml_loader *ld)
{
    ld->cfg->auth.keys_given = true;
}

void config_auth_check(struct config_yaml_loader *ld, struct config *c)
{
    struct cfg_auth *a = &c->auth;
    size_t old = config_yaml_path_key(ld, "auth");
    config_yaml_path_key(ld, "open");
    if (a->open && a->keys_given) {
        /* Either reading is dangerous: keys that silently stop mattering, or an
           opt-in that silently does nothing. The operator decides. */
        config_yaml_report(ld, a->open_line, false,
                           "true, but the file also has keys: or key_store:; an open gateway "
                           "would ignore them, so remove one or the other");
        a->open = false;
    } else if (!a->keys_given && a->open_given && !a->open) {
        config_yaml_report(ld, a->open_line, true,
                           "false with neither keys: nor key_store: refuses every request (401)");
    } else if (!a->keys_given) {
        a->open = true;
    }
    config_yaml_path_pop(ld, old);
}

/* ---- admin: ---- */

static void parse_admin_token(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                              const struct config_yaml_field *f)
{
    struct config *c = obj;
    unsigned errors = ld->errors;
    config_yaml_string(ld, v, obj, f);
    if (!c->admin_token || ld->errors != errors) return;
    if (!*c->admin_token) {
        /* Falling back to "no token" would change what the admin API allows. */
        ERR(ld, v,
            "empty; set a long random string (e.g. openssl rand -hex 32), or remove "
            "admin.token for a read-only admin API on loopback");
        free(c->admin_token);
        c->admin_token = NULL;
        return;
    }
    /* A warning, not an error: a short token still beats none on a trusted network. */
    if (strlen(c->admin_token) < CONFIG_ADMIN_TOKEN_MIN_CHARS)
        config_yaml_report(ld, config_yaml_line(v), true,
                           "shorter than %d characters, easy to guess; use a long random "
                           "string (e.g. openssl rand -hex 32)",
                           CONFIG_ADMIN_TOKEN_MIN_CHARS);
}

static const struct config_yaml_field admin_fields[] = {
    FIELD("token", parse_admin_token, struct config, admin_token, 0, 0,
          CONFIG_YAML_HEADER_SAFE | CONFIG_YAML_UNSET_IS_ERROR),
};

void config_admin_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    config_yaml_walk(ld, v, admin_fields, COUNT(admin_fields), obj);
}
