#include "config/config_diff.h"

#include "config/config_redis.h"

#include <stdbool.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The shared limits and every loop's Redis client are made once, from the first config. */
static bool same_redis(const struct cfg_redis *a, const struct cfg_redis *b)
{
    if (!a || !b) return !a && !b;
    return a->tls == b->tls && same_str(a->host, b->host) && a->port == b->port &&
           same_str(a->user, b->user) && same_str(a->password, b->password) && a->db == b->db &&
           same_str(a->prefix, b->prefix) && a->timeout_ms == b->timeout_ms &&
           a->connect_timeout_ms == b->connect_timeout_ms && same_str(a->ca_file, b->ca_file) &&
           a->tls_verify == b->tls_verify && a->lease == b->lease &&
           a->sync_interval_ms == b->sync_interval_ms;
}

static bool same_budgets(const struct config *a, const struct config *b)
{
    if (a->nbudgets != b->nbudgets || a->budget_alert_at != b->budget_alert_at ||
        !same_str(a->budget_webhook_path, b->budget_webhook_path) ||
        !a->budget_webhook != !b->budget_webhook ||
        (a->budget_webhook && !same_str(a->budget_webhook->base_url, b->budget_webhook->base_url)))
        return false;
    for (size_t i = 0; i < a->nbudgets; i++) {
        const struct cfg_budget *x = &a->budgets[i], *y = &b->budgets[i];
        if (!same_str(x->key_name, y->key_name) || x->daily != y->daily ||
            x->monthly != y->monthly || !same_str(x->currency, y->currency) ||
            x->degrade != y->degrade || !same_str(x->degrade_to, y->degrade_to))
            return false;
    }
    return true;
}

size_t config_diff_restart(const struct config *a, const struct config *b,
                           struct config_diff_item *out, size_t max)
{
    size_t n = 0;
#define NEEDS(cond, k, w)                                                                          \
    do {                                                                                           \
        if ((cond) && n < max) out[n++] = (struct config_diff_item){k, w};                         \
    } while (0)
    const struct cfg_server *x = &a->server, *y = &b->server;
    NEEDS(!same_str(x->listen_host, y->listen_host) || x->listen_port != y->listen_port,
          "server.listen", "the listeners keep their address and port");
    NEEDS(!x->tls_cert != !y->tls_cert, "server.tls",
          "HTTPS on or off: the listeners keep serving as they started");
    NEEDS(x->tls_cert && y->tls_cert &&
              (!same_str(x->tls_cert, y->tls_cert) || !same_str(x->tls_key, y->tls_key)),
          "server.tls.cert", "SIGHUP reloads the certificate and key from the paths in force");
    NEEDS(x->workers != y->workers, "server.workers", "the number of worker loops stays");
    NEEDS(x->max_connections != y->max_connections, "server.max_connections",
          "the listeners keep their limit");
    NEEDS(x->max_header_bytes != y->max_header_bytes || x->max_body_bytes != y->max_body_bytes,
          "server.max_header_bytes/max_body_bytes", "the listeners keep their limits");
    NEEDS(x->header_timeout_ms != y->header_timeout_ms ||
              x->idle_timeout_ms != y->idle_timeout_ms ||
              x->drain_timeout_ms != y->drain_timeout_ms,
          "server.header_timeout/idle_timeout/drain_timeout", "the listeners keep their timeouts");
    NEEDS(x->drain_delay_ms != y->drain_delay_ms, "server.drain_delay",
          "a stop keeps the delay it started with (SIGUSR2 starts a process that reads it)");
    NEEDS(!same_str(x->access_log, y->access_log), "server.access_log",
          "the access log stays where it is (SIGUSR1 reopens it)");
    NEEDS(!same_str(a->ledger.path, b->ledger.path) || a->ledger.queue != b->ledger.queue ||
              a->ledger.batch != b->ledger.batch ||
              a->ledger.flush_interval_ms != b->ledger.flush_interval_ms,
          "ledger", "the ledger's file and writer stay");
    NEEDS(!same_str(a->key_store, b->key_store), "key_store", "the key store file stays");
    NEEDS(!same_budgets(a, b), "budgets", "the budgets and their alerts stay as they started");
    NEEDS(!same_redis(a->redis, b->redis), "redis",
          "the shared limits and the Redis connections stay as they started");
#undef NEEDS
    return n;
}
