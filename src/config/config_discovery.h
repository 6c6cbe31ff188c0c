/*
 * config_discovery — a provider's discovery: section (struct cfg_discovery).
 *
 *   discovery: {dns: true}                       A and AAAA of base_url's host, again per TTL
 *   discovery: true                              the same
 *   discovery: {srv: _http._tcp.vllm.ns.svc.cluster.local}   SRV records: targets and ports
 *
 * with interval_min / interval_max (the floor and cap on the time between
 * resolutions; the record's TTL decides between them), resolver (a DNS
 * server HOST:PORT instead of the system's), timeout (per DNS try) and
 * max_endpoints (addresses kept per deployment). Off unless the section is
 * there: a fixed host name is resolved per connect, as without it.
 *
 * Who calls it: config.c's provider table (section) and parse_providers
 * (finish); config_provider_free_fields (free). route/discovery.c reads it.
 */
#ifndef UNBUSY_CONFIG_DISCOVERY_H
#define UNBUSY_CONFIG_DISCOVERY_H

#include "config/config.h"
#include "config/config_yaml.h"

/* The defaults (docs/configuration.md says why). */
#define CFG_DISCOVERY_INTERVAL_MIN_MS 1000u
#define CFG_DISCOVERY_INTERVAL_MAX_MS 300000u
#define CFG_DISCOVERY_TIMEOUT_MS 2000u
#define CFG_DISCOVERY_MAX_ENDPOINTS 64u

struct cfg_discovery {
    bool dns;  /* A/AAAA of the provider's host */
    char *srv; /* or: an SRV name; NULL */
    uint32_t interval_min_ms, interval_max_ms;
    uint32_t timeout_ms;
    uint32_t max_endpoints;
    char *resolver; /* "HOST:PORT" (IPv6 in brackets); NULL: /etc/resolv.conf */
};

void config_discovery_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                              const struct config_yaml_field *f);
/* After the provider's keys: defaults and what does not fit together. */
void config_discovery_finish(struct config_yaml_loader *ld, yaml_node_t *provider_node,
                             struct cfg_provider *p);
void config_discovery_free(struct cfg_discovery *d);

#endif
