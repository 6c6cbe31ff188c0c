#include "config/config_reload.h"

#define COUNT CONFIG_COUNT
#define FIELD CONFIG_FIELD

static const struct config_yaml_field reload_fields[] = {
    FIELD("watch", config_yaml_bool, struct cfg_reload, watch, 0, 0, 0),
    FIELD("interval", config_yaml_duration, struct cfg_reload, interval_ms,
          CONFIG_RELOAD_INTERVAL_MIN_MS, CONFIG_RELOAD_INTERVAL_MAX_MS, 0),
};

void config_reload_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    (void)f;
    struct config *c = obj;
    config_yaml_walk(ld, v, reload_fields, COUNT(reload_fields), &c->reload);
}

uint32_t config_reload_interval_ms(const struct cfg_reload *r)
{
    return r->interval_ms ? r->interval_ms : CONFIG_RELOAD_INTERVAL_DEFAULT_MS;
}
