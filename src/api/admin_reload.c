#include "api/admin_reload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/errors.h"
#include "http/server.h"
#include "proxy/proxy.h"
#include "route/runtime.h"

static const struct admin_reload_ops *reload_ops;

void admin_reload_set_ops(const struct admin_reload_ops *ops)
{
    reload_ops = ops;
}

/* One POST /admin/reload waiting for its answer from the main loop. */
struct pending {
    uv_async_t async; /* on the request's loop */
    struct server_conn *c;
    int status;
    char *body;
    size_t len;
};

static bool path_is(const char *p, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(p, lit, len) == 0;
}

static void fail(struct server_conn *c, int status, enum gw_err e, const char *msg)
{
    struct buf b;
    buf_init(&b, 0);
    errors_render(&b, e, msg, NULL);
    server_respond(c, status, "application/json", NULL, b.data, b.len);
    server_request_done(c);
    buf_free(&b);
}

static void on_pending_closed(uv_handle_t *h)
{
    struct pending *p = h->data;
    free(p->body);
    free(p);
}

static void on_answer_here(uv_async_t *a)
{
    struct pending *p = a->data;
    if (!server_conn_gone(p->c)) {
        if (p->body)
            server_respond(p->c, p->status, "application/json", "Cache-Control: no-store\r\n",
                           p->body, p->len);
        else
            server_respond_error(p->c, GW_ERR_INTERNAL, "out of memory", NULL);
    }
    server_request_done(p->c);
    uv_close((uv_handle_t *)&p->async, on_pending_closed);
}

/* From the main loop's thread. */
static void on_answer(int status, const char *json, size_t len, void *ud)
{
    struct pending *p = ud;
    p->status = status;
    p->body = malloc(len ? len : 1);
    if (p->body) {
        memcpy(p->body, json, len);
        p->len = len;
    }
    uv_async_send(&p->async);
}

static void post_reload(struct server_conn *c)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || uv_async_init(proxy_env_of(c)->loop, &p->async, on_answer_here) < 0) {
        free(p);
        fail(c, 500, GW_ERR_INTERNAL, "out of memory");
        return;
    }
    p->async.data = p;
    p->c = c;
    int rc = reload_ops->request(on_answer, p);
    if (rc < 0) {
        uv_close((uv_handle_t *)&p->async, on_pending_closed);
        fail(c, 503, GW_ERR_UNAVAILABLE,
             rc == -EBUSY    ? "too many reloads are pending; try again in a moment"
             : rc == -EAGAIN ? "the gateway is still starting; try again in a moment"
                             : "the gateway is shutting down");
    }
}

bool admin_reload_dispatch(struct server_conn *c)
{
    const struct server_request *req = server_conn_request(c);
    const char *path = req->http.target.p;
    size_t len = req->http.target.len;
    const char *q = memchr(path, '?', len);
    if (q) len = (size_t)(q - path);
    bool reload = path_is(path, len, "/admin/reload"), config = path_is(path, len, "/admin/config");
    if (!reload && !config) return false;
    if (!reload_ops) {
        fail(c, 404, GW_ERR_NOT_FOUND, "config reload is not available in this process");
        return true;
    }
    bool get = path_is(req->http.method.p, req->http.method.len, "GET");
    bool post = path_is(req->http.method.p, req->http.method.len, "POST");
    if (reload && !post) {
        fail(c, 405, GW_ERR_METHOD, "use POST");
        return true;
    }
    if (config && !get) {
        fail(c, 405, GW_ERR_METHOD, "use GET");
        return true;
    }
    if (reload) {
        post_reload(c);
        return true;
    }
    struct buf b;
    buf_init(&b, 0);
    reload_ops->describe(&b, proxy_env_of(c)->rt->generation);
    server_respond(c, 200, "application/json", NULL, b.data, b.len);
    server_request_done(c);
    buf_free(&b);
    return true;
}
