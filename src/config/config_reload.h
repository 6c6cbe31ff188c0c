/*
 * config_reload — the reload: section: whether unbusy watches its config file
 * and reloads it when it changes (a reload on SIGHUP or POST /admin/reload
 * needs no config).
 *
 *   reload:
 *     watch: true        # default false
 *     interval: 2s       # how often the file is checked; default 2 s
 *
 * config.c puts config_reload_section in the top table; the watcher itself is
 * the composition root's (src/reload.c).
 */
#ifndef UNBUSY_CONFIG_RELOAD_H
#define UNBUSY_CONFIG_RELOAD_H

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_RELOAD_INTERVAL_DEFAULT_MS 2000u
#define CONFIG_RELOAD_INTERVAL_MIN_MS 100u
#define CONFIG_RELOAD_INTERVAL_MAX_MS 3600000u

/* obj: the struct config. */
void config_reload_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f);

/* The interval in force: the configured one, or the default. */
uint32_t config_reload_interval_ms(const struct cfg_reload *r);

#endif
