#include "config/config_discovery.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define ERR CONFIG_YAML_ERR
#define COUNT CONFIG_COUNT
#define SEC 1000ll
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static const struct config_yaml_field discovery_fields[] = {
    CONFIG_FIELD("dns", config_yaml_bool, struct cfg_discovery, dns, 0, 0, 0),
    CONFIG_FIELD("srv", config_yaml_string, struct cfg_discovery, srv, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    CONFIG_FIELD("interval_min", config_yaml_duration, struct cfg_discovery, interval_min_ms, 100,
                 HOUR, 0),
    CONFIG_FIELD("interval_max", config_yaml_duration, struct cfg_discovery, interval_max_ms, 100,
                 24 * HOUR, 0),
    CONFIG_FIELD("timeout", config_yaml_duration, struct cfg_discovery, timeout_ms, 100, MIN, 0),
    CONFIG_FIELD("max_endpoints", config_yaml_u32, struct cfg_discovery, max_endpoints, 1, 64, 0),
    CONFIG_FIELD("resolver", config_yaml_string, struct cfg_discovery, resolver, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
};

void config_discovery_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                              const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    if (v->type == YAML_SCALAR_NODE) { /* discovery: true is {dns: true}; false is off */
        struct {
            bool on;
        } flag = {false};
        static const struct config_yaml_field as_bool = {"discovery", config_yaml_bool, 0, 0, 0, 0};
        unsigned errors = ld->errors;
        config_yaml_bool(ld, v, &flag, &as_bool);
        if (ld->errors != errors || !flag.on) return;
        if (!p->discovery && !(p->discovery = calloc(1, sizeof *p->discovery))) {
            ERR(ld, v, "out of memory");
            return;
        }
        p->discovery->dns = true;
        return;
    }
    if (!p->discovery && !(p->discovery = calloc(1, sizeof *p->discovery))) {
        ERR(ld, v, "out of memory");
        return;
    }
    config_yaml_walk(ld, v, discovery_fields, COUNT(discovery_fields), p->discovery);
}

/* "127.0.0.1:5353", "[::1]:53": a numeric address and a port (c-ares takes no names). */
static bool resolver_valid(const char *s)
{
    char host[64];
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') return false;
        hlen = (size_t)(end - s - 1);
        if (hlen >= sizeof host) return false;
        memcpy(host, s + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return false;
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof host) return false;
        memcpy(host, s, hlen);
    }
    host[hlen] = '\0';
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return colon[1] && !*end && port > 0 && port < 65536;
}

static bool numeric_host(const char *h)
{
    unsigned char buf[16];
    return h && (inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1);
}

void config_discovery_finish(struct config_yaml_loader *ld, yaml_node_t *node,
                             struct cfg_provider *p)
{
    struct cfg_discovery *d = p->discovery;
    if (!d) return;
    if (p->kind == CFG_PROVIDER_SIM) {
        ERR(ld, node, "discovery: has nothing to resolve for a simulated provider (sim://)");
        return;
    }
    if (d->dns && d->srv) ERR(ld, node, "discovery: takes dns: true or srv: NAME, not both");
    if (!d->dns && !d->srv) ERR(ld, node, "discovery: needs dns: true or srv: NAME");
    if (d->dns && numeric_host(p->host))
        ERR(ld, node, "discovery: dns: true needs a host name in base_url, not an address");
    if (!d->interval_min_ms) d->interval_min_ms = CFG_DISCOVERY_INTERVAL_MIN_MS;
    if (!d->interval_max_ms)
        d->interval_max_ms = d->interval_min_ms > CFG_DISCOVERY_INTERVAL_MAX_MS
                                 ? d->interval_min_ms
                                 : CFG_DISCOVERY_INTERVAL_MAX_MS;
    if (d->interval_min_ms > d->interval_max_ms)
        ERR(ld, node, "discovery: interval_min is above interval_max");
    if (!d->timeout_ms) d->timeout_ms = CFG_DISCOVERY_TIMEOUT_MS;
    if (!d->max_endpoints) d->max_endpoints = CFG_DISCOVERY_MAX_ENDPOINTS;
    if (d->resolver && !resolver_valid(d->resolver))
        ERR(ld, node, "discovery: resolver \"%s\" is not ADDRESS:PORT (e.g. 127.0.0.1:53)",
            d->resolver);
}

void config_discovery_free(struct cfg_discovery *d)
{
    if (!d) return;
    free(d->srv);
    free(d->resolver);
    free(d);
}
