#include "api.h"

#include <string.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "metrics.h"
#include "proxy.h"
#include "server.h"
#include "status_page.h"
#include "worker.h"

static bool str_is(struct http1_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* The path without the query string. */
static struct http1_str req_path(const struct http1_request *r)
{
    struct http1_str p = r->target;
    const char *q = memchr(p.p, '?', p.len);
    if (q)
        p.len = (size_t)(q - p.p);
    return p;
}

static void handle_healthz(struct server_conn *c)
{
    /* The scheme lets a probe confirm it reached the listener it meant (server.tls). */
    static const char ok_http[] = "{\"status\":\"ok\",\"scheme\":\"http\"}";
    static const char ok_https[] = "{\"status\":\"ok\",\"scheme\":\"https\"}";
    bool tls = server_conn_worker(c)->tls != NULL;
    server_respond(c, 200, "application/json", NULL, tls ? ok_https : ok_http,
                   (tls ? sizeof ok_https : sizeof ok_http) - 1);
    server_request_done(c);
}

static void handle_models(struct server_conn *c)
{
    const struct config *cfg = server_conn_worker(c)->cfg;
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < cfg->nmodels; i++) {
        if (i)
            buf_append_str(&b, ",");
        buf_append_str(&b, "{\"id\":");
        buf_append_json_str(&b, cfg->models[i].name, strlen(cfg->models[i].name));
        buf_append_str(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"unbusy\"}");
    }
    buf_append_str(&b, "]}");
    server_respond(c, 200, "application/json", NULL, b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}

struct route {
    const char *method;
    const char *path;
    void (*handler)(struct server_conn *c);
};

static void handle_chat(struct server_conn *c)
{
    proxy_start(c, PROXY_API_CHAT);
}

static void handle_completions(struct server_conn *c)
{
    proxy_start(c, PROXY_API_COMPLETIONS);
}

static void handle_embeddings(struct server_conn *c)
{
    proxy_start(c, PROXY_API_EMBEDDINGS);
}

static const struct route routes[] = {
    {"GET", "/healthz", handle_healthz},
    {"GET", "/v1/models", handle_models},
    {"GET", "/metrics", metrics_handle},
    {"GET", "/", status_page_handle},
    {"GET", "/status", status_page_handle},
    {"GET", "/status.json", status_json_handle},
    {"POST", "/v1/chat/completions", handle_chat},
    {"POST", "/v1/completions", handle_completions},
    {"POST", "/v1/embeddings", handle_embeddings},
    /* Clients configured with a base URL without /v1 still work. */
    {"GET", "/models", handle_models},
    {"POST", "/chat/completions", handle_chat},
    {"POST", "/completions", handle_completions},
    {"POST", "/embeddings", handle_embeddings},
};

void api_dispatch(struct server_conn *c)
{
    const struct http1_request *r = &server_conn_request(c)->http;
    struct http1_str path = req_path(r);
    if (path.len >= 7 && memcmp(path.p, "/admin/", 7) == 0) {
        admin_dispatch(c);
        return;
    }
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!str_is(path, routes[i].path))
            continue;
        path_known = true;
        if (str_is(r->method, routes[i].method)) {
            routes[i].handler(c);
            return;
        }
    }
    if (path_known) {
        server_respond_error(c, GW_ERR_METHOD, "method not allowed for this path", NULL);
    } else {
        server_respond_error(c, GW_ERR_NOT_FOUND, "no such endpoint", NULL);
    }
    server_request_done(c);
}
