#include "config/config_tls.h"

#include <stdio.h>
#include <string.h>

static config_tls_loader loader; /* set once by the composition root; NULL: readability only */

void config_tls_set_loader(config_tls_loader fn)
{
    loader = fn;
}

/* Without a loader: can each file be opened for reading? */
static int files_readable(const char *cert, const char *key, char *err, size_t errlen)
{
    const char *paths[2] = {cert, key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) {
            snprintf(err, errlen, "cannot read %s", paths[i]);
            return i == 0 ? CONFIG_TLS_BAD_CERT : CONFIG_TLS_BAD_KEY;
        }
        fclose(f);
    }
    return 0;
}

static const struct config_yaml_field tls_fields[] = {
    CONFIG_FIELD("cert", config_yaml_string, struct cfg_server, tls_cert, 0, 0,
                 CONFIG_YAML_REQUIRED | CONFIG_YAML_NONEMPTY),
    CONFIG_FIELD("key", config_yaml_string, struct cfg_server, tls_key, 0, 0,
                 CONFIG_YAML_REQUIRED | CONFIG_YAML_NONEMPTY),
};

/* The value of key in map, or NULL. */
static yaml_node_t *map_get(struct config_yaml_loader *ld, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_yaml_node(ld, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return config_yaml_node(ld, p->value);
    }
    return NULL;
}

void config_tls_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    struct cfg_server *s = obj;
    if (config_yaml_is_null(v)) return; /* "tls:" with nothing under it: plain HTTP */
    unsigned before = ld->errors;
    config_yaml_walk(ld, v, tls_fields, CONFIG_COUNT(tls_fields), s);
    if (ld->errors != before || !s->tls_cert || !s->tls_key) return;
    /* Load the pair now, as serving will: a bad file is a config error with its line,
       not a failure at startup or at the next SIGHUP. */
    char err[512] = "";
    int rc = (loader ? loader : files_readable)(s->tls_cert, s->tls_key, err, sizeof err);
    if (rc == 0) return;
    const char *at = rc == CONFIG_TLS_BAD_CERT ? "cert" : "key";
    size_t old = config_yaml_path_key(ld, at);
    CONFIG_YAML_ERR(ld, map_get(ld, v, at), "%s", err);
    config_yaml_path_pop(ld, old);
}
