/* config_redis — the redis: section (see config_redis.h). */
#include "config/config_redis.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_value.h"

#define ERR CONFIG_YAML_ERR
#define FIELD CONFIG_FIELD
#define COUNT CONFIG_COUNT
#define SEC 1000
#define MAX_URL 1024

static void free_secret(char *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void clear_url_parts(struct cfg_redis *r)
{
    free(r->host);
    free(r->user);
    free_secret(r->password);
    free(r->url_shown);
    r->host = r->user = r->password = r->url_shown = NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* s[0..n) with %XX decoded; NULL on a bad escape, a NUL or a control character. */
static char *decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            c = hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f) {
            out[o] = '\0';
            free_secret(out);
            return NULL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

int config_redis_parse_url(const char *url, struct cfg_redis *r, const char **why)
{
    const char *rest;
    bool tls;
    if (strncasecmp(url, "redis://", 8) == 0) {
        rest = url + 8;
        tls = false;
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        rest = url + 9;
        tls = true;
    } else {
        *why = "expected redis:// or rediss://";
        return -1;
    }
    if (strlen(url) > MAX_URL) {
        *why = "the URL is too long";
        return -1;
    }
    if (config_value_has_control(url) || strpbrk(url, " \t")) {
        *why = "spaces and control characters are not allowed";
        return -1;
    }
    size_t alen = strcspn(rest, "/?#");
    if (rest[alen] == '?' || rest[alen] == '#') {
        *why = "a query or fragment is not supported";
        return -1;
    }
    /* the last '@' of the authority: a password may hold one if escaped, never raw */
    const char *at = NULL;
    for (const char *p = rest; p < rest + alen; p++)
        if (*p == '@') at = p;
    char *user = NULL, *password = NULL;
    const char *hostport = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon) { /* redis://password@host is ambiguous; Redis's own tools read it as a user */
            *why = "credentials must be user:password@ or :password@";
            return -1;
        }
        if (colon > rest && !(user = decode(rest, (size_t)(colon - rest)))) {
            *why = "the user has a bad %-escape or a control character";
            return -1;
        }
        if (!(password = decode(colon + 1, (size_t)(at - colon - 1)))) {
            free(user);
            *why = "the password has a bad %-escape or a control character";
            return -1;
        }
        if (!*password) {
            free(user);
            free_secret(password);
            password = user = NULL;
            *why = "the password is empty";
            return -1;
        }
        hostport = at + 1;
    }
    size_t hplen = (size_t)(rest + alen - hostport);
    const char *host = hostport, *port = NULL;
    size_t hlen = hplen;
    if (hplen && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', hplen);
        if (!close) goto bad_host;
        host = hostport + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < hostport + hplen) {
            if (close[1] != ':') goto bad_host;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hostport, ':', hplen);
        if (colon) {
            hlen = (size_t)(colon - hostport);
            port = colon + 1;
        }
    }
    if (hlen == 0) goto bad_host;
    unsigned long portnum = CONFIG_REDIS_DEFAULT_PORT;
    if (port) {
        size_t plen = (size_t)(hostport + hplen - port);
        char pb[8];
        if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen) goto bad_port;
        memcpy(pb, port, plen);
        pb[plen] = '\0';
        portnum = strtoul(pb, NULL, 10);
        if (portnum == 0 || portnum > 65535) goto bad_port;
    }
    unsigned long db = 0;
    const char *path = rest + alen;
    if (*path == '/' && path[1]) {
        if (strlen(path + 1) > 5 || strspn(path + 1, "0123456789") != strlen(path + 1)) {
            *why = "the database must be a number (redis://host:6379/0)";
            goto fail;
        }
        db = strtoul(path + 1, NULL, 10);
        if (db > 65535) {
            *why = "the database number is too large";
            goto fail;
        }
    }
    char *h = strndup(host, hlen);
    /* what the logs may show: everything but the password */
    size_t shown_cap = strlen(url) + 8;
    char *shown = malloc(shown_cap);
    if (!h || !shown) {
        free(h);
        free(shown);
        *why = "out of memory";
        goto fail;
    }
    snprintf(shown, shown_cap, "%s://%s%s%.*s", tls ? "rediss" : "redis", user ? user : "",
             password ? ":***@" : "", (int)(strlen(hostport)), hostport);
    clear_url_parts(r);
    r->tls = tls;
    r->host = h;
    r->port = (uint16_t)portnum;
    r->user = user;
    r->password = password;
    r->db = (uint32_t)db;
    r->url_shown = shown;
    return 0;
bad_host:
    *why = "expected a host: redis://host:6379";
    goto fail;
bad_port:
    *why = "the port must be a number from 1 to 65535";
fail:
    free(user);
    free_secret(password);
    return -1;
}

static void parse_url(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f)
{
    struct cfg_redis *r = obj;
    char *url = config_yaml_text(ld, v);
    if (!url) return;
    const char *why = NULL;
    bool tls_given = r->tls; /* tls: true came first in the table */
    if (config_redis_parse_url(url, r, &why) < 0)
        ERR(ld, v, "bad redis URL: %s", why); /* never the URL: it may hold the password */
    else if (tls_given)
        r->tls = true;
    OPENSSL_cleanse(url, strlen(url));
    free(url);
}

static const struct config_yaml_field redis_fields[] = {
    FIELD("tls", config_yaml_bool, struct cfg_redis, tls, 0, 0, 0),
    FIELD("url", parse_url, struct cfg_redis, host, 0, 0, CONFIG_YAML_REQUIRED),
    FIELD("prefix", config_yaml_string, struct cfg_redis, prefix, 0, 0, CONFIG_YAML_HEADER_SAFE),
    FIELD("timeout", config_yaml_duration, struct cfg_redis, timeout_ms, 1, 10 * SEC, 0),
    FIELD("connect_timeout", config_yaml_duration, struct cfg_redis, connect_timeout_ms, 10,
          60 * SEC, 0),
    FIELD("ca_file", config_yaml_string, struct cfg_redis, ca_file, 0, 0,
          CONFIG_YAML_EMPTY_IS_NULL),
    FIELD("tls_verify", config_yaml_bool, struct cfg_redis, tls_verify, 0, 0, 0),
    FIELD("lease", config_yaml_u32, struct cfg_redis, lease, 0, 1000, 0),
    FIELD("sync_interval", config_yaml_duration, struct cfg_redis, sync_interval_ms, 20, 10 * SEC,
          0),
};

void config_redis_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    struct config *c = obj;
    if (config_yaml_is_null(v)) return;
    struct cfg_redis *r = calloc(1, sizeof *r);
    if (!r) {
        ERR(ld, v, "out of memory");
        return;
    }
    c->redis = r;
    r->prefix = config_yaml_strdup(ld, CONFIG_REDIS_DEFAULT_PREFIX);
    r->timeout_ms = CONFIG_REDIS_DEFAULT_TIMEOUT_MS;
    r->connect_timeout_ms = CONFIG_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    r->tls_verify = true;
    r->lease = CONFIG_REDIS_DEFAULT_LEASE;
    r->sync_interval_ms = CONFIG_REDIS_DEFAULT_SYNC_MS;
    unsigned before = ld->errors;
    config_yaml_walk(ld, v, redis_fields, COUNT(redis_fields), r);
    if (ld->errors != before) return;
    if (!r->prefix) r->prefix = config_yaml_strdup(ld, "");
    if (r->prefix && strlen(r->prefix) > CONFIG_REDIS_MAX_PREFIX)
        ERR(ld, v, "prefix is longer than %d bytes", CONFIG_REDIS_MAX_PREFIX);
    if (r->timeout_ms >= r->connect_timeout_ms)
        ERR(ld, v, "timeout (%u ms) must be shorter than connect_timeout (%u ms)", r->timeout_ms,
            r->connect_timeout_ms);
}

void config_redis_free(struct config *c)
{
    struct cfg_redis *r = c->redis;
    if (!r) return;
    clear_url_parts(r);
    free(r->prefix);
    free(r->ca_file);
    free(r);
    c->redis = NULL;
}
