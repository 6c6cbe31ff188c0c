#include "api/api.h"

#include <stdio.h>
#include <string.h>

#include "api/admin.h"
#include "api/readyz.h"
#include "base/buf.h"
#include "config/config.h"
#include "obs/metrics.h"
#include "proxy/proxy.h"
#include "http/server.h"
#include "api/status_page.h"
#include "proxy/proxy.h"

static bool str_is(struct http1_str s, const char *lit)
{
    /* stops at the first byte that differs (most routes' second), no strlen of each route;
       a parsed method or path holds no NUL, so a shorter lit ends the compare */
    return (s.len == 0 || strncmp(lit, s.p, s.len) == 0) && lit[s.len] == '\0';
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
    bool tls = server_conn_tls(c);
    server_respond(c, 200, "application/json", NULL, tls ? ok_https : ok_http,
                   (tls ? sizeof ok_https : sizeof ok_http) - 1);
    server_request_done(c);
}

static void put_model(struct buf *b, const char *name)
{
    if (b->len > 1 && b->data[b->len - 1] != '[')
        buf_append_str(b, ",");
    buf_append_str(b, "{\"id\":");
    buf_append_json_str(b, name, strlen(name));
    buf_append_str(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"unbusy\"}");
}

static void put_imported(void *ud, const char *name)
{
    put_model(ud, name);
}

/* The config's models, then the names models: auto providers list (route/catalog.h). */
static void handle_models(struct server_conn *c)
{
    struct proxy_env *env = proxy_env_of(c);
    const struct config *cfg = env->cfg;
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < cfg->nmodels; i++)
        if (!cfg->models[i].auto_import)
            put_model(&b, cfg->models[i].name);
    if (env->rt && env->rt->catalog)
        catalog_foreach(env->rt->catalog, put_imported, &b);
    buf_append_str(&b, "]}");
    server_respond(c, 200, "application/json", NULL, b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}

static void handle_metrics(struct server_conn *c)
{
    struct metrics *m = metrics_of(proxy_env_of(c)->metrics);
    if (!m) {
        server_respond_error(c, GW_ERR_NOT_FOUND, "metrics are not enabled", NULL);
        server_request_done(c);
        return;
    }
    struct buf b;
    buf_init(&b, 0);
    metrics_render(m, &b);
    server_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                   "Cache-Control: no-store\r\n", b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}

struct route {
    const char *method;
    const char *path;
    /* NULL, or a check of the head before the body is read (see server_handlers) */
    bool (*on_head)(struct server_conn *c);
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

/* A GET route answers HEAD too (the server sends no body); POST routes need a key. */
static const struct route routes[] = {
    {"GET", "/healthz", NULL, handle_healthz},
    {"GET", "/readyz", NULL, readyz_handle},
    {"GET", "/v1/models", NULL, handle_models},
    {"GET", "/metrics", NULL, handle_metrics},
    {"GET", "/", NULL, status_page_handle},
    {"GET", "/status", NULL, status_page_handle},
    {"GET", "/status.json", NULL, status_json_handle},
    {"POST", "/v1/chat/completions", proxy_check_head, handle_chat},
    {"POST", "/v1/completions", proxy_check_head, handle_completions},
    {"POST", "/v1/embeddings", proxy_check_head, handle_embeddings},
    /* Clients configured with a base URL without /v1 still work. */
    {"GET", "/models", NULL, handle_models},
    {"POST", "/chat/completions", proxy_check_head, handle_chat},
    {"POST", "/completions", proxy_check_head, handle_completions},
    {"POST", "/embeddings", proxy_check_head, handle_embeddings},
};

static bool is_admin(struct http1_str path)
{
    return path.len >= 7 && memcmp(path.p, "/admin/", 7) == 0;
}

/*
 * The route for the request, or NULL after answering 404 (no such path) or
 * 405 (with Allow: the methods the path has).
 */
static const struct route *find_route(struct server_conn *c)
{
    const struct http1_request *r = &server_conn_request(c)->http;
    struct http1_str path = req_path(r);
    bool head = str_is(r->method, "HEAD");
    char allow[64] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!str_is(path, routes[i].path))
            continue;
        bool get = strcmp(routes[i].method, "GET") == 0;
        if (str_is(r->method, routes[i].method) || (head && get))
            return &routes[i];
        int n = snprintf(allow + used, sizeof allow - used, "%s%s%s", used ? ", " : "Allow: ",
                         routes[i].method, get ? ", HEAD" : "");
        if (n > 0 && (size_t)n < sizeof allow - used)
            used += (size_t)n;
    }
    if (used) {
        /* RFC 9110 15.5.6: a 405 lists the methods the path has */
        char extra[80];
        snprintf(extra, sizeof extra, "%s\r\n", allow);
        server_respond_error(c, GW_ERR_METHOD, "method not allowed for this path", extra);
    } else {
        server_respond_error(c, GW_ERR_NOT_FOUND, "no such endpoint", NULL);
    }
    return NULL;
}

bool api_on_head(struct server_conn *c)
{
    struct http1_str path = req_path(&server_conn_request(c)->http);
    if (is_admin(path))
        return admin_check_head(c);
    const struct route *rt = find_route(c);
    if (!rt)
        return false; /* answered before the body is read: a wrong path needs none */
    return !rt->on_head || rt->on_head(c);
}

void api_dispatch(struct server_conn *c)
{
    struct http1_str path = req_path(&server_conn_request(c)->http);
    if (is_admin(path)) {
        admin_dispatch(c);
        return;
    }
    const struct route *rt = find_route(c);
    if (!rt) {
        server_request_done(c);
        return;
    }
    rt->handler(c);
}
