#include "config/config_secrets.h"
#include "config/config_redis.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_value.h"

#define ERR CONFIG_YAML_ERR
#define COUNT CONFIG_COUNT

/* Headers unbusy writes itself; a provider may not override them. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
};

bool config_header_secret_by_name(const char *name)
{
    static const char *const exact[] = {"authorization", "proxy-authorization", "cookie"};
    static const char *const parts[] = {"key", "token", "secret", "auth", "passw", "signature",
                                        "credential"};
    for (size_t i = 0; i < COUNT(exact); i++)
        if (strcasecmp(name, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < COUNT(parts); i++)
        if (strcasestr(name, parts[i]))
            return true;
    return false;
}

static bool has_header(const struct cfg_provider *p, const char *name)
{
    for (size_t i = 0; i < p->nheaders; i++)
        if (strcasecmp(p->headers[i].name, name) == 0)
            return true;
    return false;
}

void config_header_map(struct config_yaml_loader *ld, yaml_node_t *map, struct cfg_provider *p,
                       size_t max, const char *const *reserved, size_t nreserved, bool secret)
{
    bool *dup = NULL;
    long n = config_yaml_named_begin(ld, map, (int)max, true, "header", &dup);
    if (n > 0 && p->nheaders + (size_t)n > max) {
        ERR(ld, map, "too many headers (at most %zu%s)", max,
            max == CONFIG_MAX_HEADERS ? " in headers: and secret_headers: together" : "");
        n = -1;
    }
    if (n > 0) {
        struct cfg_header *h = realloc(p->headers, (p->nheaders + (size_t)n) * sizeof *h);
        if (!h) {
            ERR(ld, map, "out of memory");
            n = -1;
        } else {
            p->headers = h;
        }
    }
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = config_yaml_named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i]) continue;
        size_t old = config_yaml_path_key(ld, name);
        bool is_reserved = false;
        for (size_t r = 0; r < nreserved; r++)
            is_reserved |= strcasecmp(name, reserved[r]) == 0;
        char *value = NULL;
        if (!config_value_is_token(name))
            ERR(ld, k, "not a valid HTTP header name");
        else if (is_reserved)
            ERR(ld, k, "this header is set by unbusy and cannot be configured");
        else if (has_header(p, name))
            ERR(ld, k, "set twice (in headers: and secret_headers:)");
        else if (!(value = config_yaml_text(ld, v)))
            ; /* reported */
        else if (config_value_has_control(value))
            ERR(ld, v, "control characters (line breaks) are not allowed in a header value");
        else {
            struct cfg_header *h = &p->headers[p->nheaders];
            if ((h->name = config_yaml_strdup(ld, name))) {
                h->value = value;
                h->secret = secret || config_header_secret_by_name(name);
                value = NULL;
                p->nheaders++;
            }
        }
        free(value);
        config_yaml_path_pop(ld, old);
    }
    free(dup);
}

void config_parse_headers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                          const struct config_yaml_field *f)
{
    config_header_map(ld, map, obj, CONFIG_MAX_HEADERS, reserved_headers, COUNT(reserved_headers), false);
}

void config_parse_secret_headers(struct config_yaml_loader *ld, yaml_node_t *map, void *obj,
                                 const struct config_yaml_field *f)
{
    config_header_map(ld, map, obj, CONFIG_MAX_HEADERS, reserved_headers, COUNT(reserved_headers), true);
}

int config_secrets_build(struct config *c)
{
    struct redact_set *s = &c->secrets;
    int rc = 0;
    for (size_t i = 0; i < c->nproviders; i++) {
        const struct cfg_provider *p = &c->providers[i];
        rc |= redact_set_add(s, p->api_key);
        if (p->aws) { /* the key id too: with the secret it is a credential */
            rc |= redact_set_add(s, p->aws->access_key_id);
            rc |= redact_set_add(s, p->aws->secret_access_key);
            rc |= redact_set_add(s, p->aws->session_token);
        }
        for (size_t j = 0; j < p->nheaders; j++)
            if (p->headers[j].secret)
                rc |= redact_set_add(s, p->headers[j].value);
    }
    if (c->budget_webhook) /* webhook_headers: there for a token */
        for (size_t j = 0; j < c->budget_webhook->nheaders; j++)
            rc |= redact_set_add(s, c->budget_webhook->headers[j].value);
    rc |= redact_set_add(s, c->admin_token);
    if (c->redis) /* also in logs as redis://user:***@host */
        rc |= redact_set_add(s, c->redis->password);
    for (size_t i = 0; i < c->nkeys; i++)
        rc |= redact_set_add(s, c->keys[i].key);
    return rc ? -1 : 0;
}
