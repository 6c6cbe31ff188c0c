/*
 * config_redis — the redis: section: where replicas share their limits,
 * concurrency and breaker state (admit/shared_limits.h, route/shared_health.h).
 *
 *   redis:
 *     url: redis://[user:password@]host[:port][/db]   (rediss:// for TLS)
 *     prefix: "unbusy:"        every key unbusy writes starts with it
 *     timeout: 50ms            the most a request waits for Redis, then local state decides
 *     connect_timeout: 1s      connecting, TLS and AUTH; also how long a reply may be
 *                              overdue before the connection counts as lost
 *     tls: false               TLS even with redis:// (rediss:// turns it on)
 *     ca_file: ...             the CA bundle for TLS (default: the system store)
 *     tls_verify: true
 *     lease: 4                 requests a replica takes from a shared bucket at once
 *     sync_interval: 250ms     breaker states published and read this often
 *
 * The password is a secret: it goes into the config's redaction set, is
 * never quoted in a message (a bad URL is described, never shown) and the
 * admin API never sees this section. docs/configuration.md says why each
 * default is what it is.
 *
 * config.c puts config_redis_section in its top-level table and calls
 * config_redis_free from config_free; config_secrets.c adds the password.
 */
#ifndef UNBUSY_CONFIG_REDIS_H
#define UNBUSY_CONFIG_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "config/config_yaml.h"

#define CONFIG_REDIS_DEFAULT_PORT 6379
#define CONFIG_REDIS_DEFAULT_PREFIX "unbusy:"
#define CONFIG_REDIS_DEFAULT_TIMEOUT_MS 50
#define CONFIG_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define CONFIG_REDIS_DEFAULT_LEASE 4
#define CONFIG_REDIS_DEFAULT_SYNC_MS 250
#define CONFIG_REDIS_MAX_PREFIX 64

struct cfg_redis {
    char *url_shown; /* the URL with the password replaced by "***", for logs */
    bool tls;
    char *host; /* IPv6 without brackets */
    uint16_t port;
    char *user;     /* NULL: AUTH with the password only */
    char *password; /* NULL: no AUTH */
    uint32_t db;    /* SELECT when not 0 */
    char *prefix;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms;
    char *ca_file;
    bool tls_verify;
    uint32_t lease;
    uint32_t sync_interval_ms;
};

void config_redis_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f);
void config_redis_free(struct config *c);

/*
 * Splits a redis:// or rediss:// URL into r's tls, host, port, user,
 * password and db (percent-escapes in user and password decoded). 0, or -1
 * with *why a static sentence that never quotes the URL. Exposed for tests.
 */
int config_redis_parse_url(const char *url, struct cfg_redis *r, const char **why);

#endif
