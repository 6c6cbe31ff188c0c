#include "net/uphttp.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/pool.h"

#define UPHTTP_MAX_HEAD (64u * 1024)
#define UPHTTP_STALE_RETRIES 2

enum up_state { UP_CONNECTING, UP_HEAD, UP_BODY, UP_DONE };

struct uphttp {
    struct transport_pool *pool;
    const struct cfg_provider *provider;
    bool has_addr; /* connect to addr (a discovered endpoint), not the host name */
    struct sockaddr_storage addr;
    uint32_t connect_timeout_ms;
    struct transport_conn *conn;
    const struct uphttp_events *ev;
    void *ud;
    char *request;
    size_t request_len;
    enum up_state state;
    struct buf head; /* response head bytes until complete */
    struct http1_body framer;
    bool keep_alive;
    bool reused;
    bool got_bytes;
    bool cancelled;
    bool paused;
    unsigned stale_retries;
    unsigned depth; /* > 0 while inside our own callbacks */
};

/* The requests of this thread's loop (base/pool.h). */
static __thread struct pool uphttp_pool = POOL_INIT(sizeof(struct uphttp), 64);

static void up_free(struct uphttp *u)
{
    free(u->request);
    buf_free(&u->head);
    pool_put(&uphttp_pool, u);
}

static void up_leave(struct uphttp *u)
{
    if (--u->depth == 0 && u->cancelled)
        up_free(u);
}

static void up_release(struct uphttp *u, bool keep_alive)
{
    if (u->conn) {
        transport_release(u->conn, keep_alive);
        u->conn = NULL;
    }
}

static void on_connect(void *ud, bool reused);
static void on_data(void *ud, char *data, size_t len);
static void on_error(void *ud, enum transport_err err);

static const struct transport_events up_transport_events = {
    .on_connect = on_connect,
    .on_data = on_data,
    .on_error = on_error,
};

static void fail(struct uphttp *u, enum uphttp_fail f, enum transport_err terr)
{
    up_release(u, false);
    u->state = UP_DONE;
    u->ev->on_fail(u->ud, f, terr);
}

static int up_open(struct uphttp *u)
{
    return transport_open_at(u->pool, u->provider, u->has_addr ? (struct sockaddr *)&u->addr : NULL,
                             u->connect_timeout_ms, &up_transport_events, u, &u->conn);
}

static void on_connect(void *ud, bool reused)
{
    struct uphttp *u = ud;
    u->depth++;
    u->reused = reused;
    u->state = UP_HEAD;
    if (u->paused)
        transport_pause(u->conn, true);
    if (transport_write(u->conn, u->request, u->request_len) < 0) {
        fail(u, UPHTTP_FAIL_TRANSPORT, TRANSPORT_ERR_IO);
    } else if (u->ev->on_connected) {
        u->ev->on_connected(u->ud);
    }
    up_leave(u);
}

static void on_error(void *ud, enum transport_err err)
{
    struct uphttp *u = ud;
    u->depth++;
    if (u->state == UP_BODY && u->framer.mode == HTTP1_BODY_UNTIL_CLOSE && err == TRANSPORT_ERR_EOF) {
        up_release(u, false);
        u->state = UP_DONE;
        u->ev->on_end(u->ud);
    } else if (u->reused && !u->got_bytes && u->stale_retries < UPHTTP_STALE_RETRIES &&
               (err == TRANSPORT_ERR_EOF || err == TRANSPORT_ERR_IO)) {
        /* A keep-alive connection the provider had closed: not the provider's failure. */
        u->stale_retries++;
        up_release(u, false);
        u->state = UP_CONNECTING;
        if (up_open(u) < 0)
            fail(u, UPHTTP_FAIL_TRANSPORT, TRANSPORT_ERR_CONNECT);
    } else {
        fail(u, UPHTTP_FAIL_TRANSPORT, err);
    }
    up_leave(u);
}

static bool body_has_none(int status)
{
    return status < 200 || status == 204 || status == 304;
}

/* Hands the payload of framed body bytes on, de-framed where they lie in p: the transport's
   read buffer (or the head's, for the rest of a head's read), which is ours during the call. */
static void feed_body(struct uphttp *u, char *p, size_t len)
{
    size_t left = len;
    while (left > 0 && !u->cancelled && u->state == UP_BODY) {
        size_t n = left, consumed = 0;
        int rc = http1_body_feed(&u->framer, p, &n, &consumed);
        if (rc == HTTP1_ERROR) {
            fail(u, UPHTTP_FAIL_BAD_RESPONSE, 0);
            return;
        }
        if (n > 0)
            u->ev->on_body(u->ud, p, n);
        if (u->cancelled)
            return;
        p += consumed;
        left -= consumed;
        if (rc == 1) {
            u->state = UP_DONE;
            /* Bytes after the end of the message: the connection is not reusable. */
            up_release(u, u->keep_alive && left == 0);
            u->ev->on_end(u->ud);
            return;
        }
        if (consumed == 0)
            break;
    }
}

static void on_data(void *ud, char *data, size_t len)
{
    struct uphttp *u = ud;
    u->depth++;
    u->got_bytes = true;
    if (u->state == UP_HEAD) {
        /* A head that came whole in this read (the usual case) is parsed where it lies; only
           one cut across reads is gathered in u->head. */
        bool direct = u->head.len == 0;
        if (!direct && buf_append(&u->head, data, len) < 0) {
            fail(u, UPHTTP_FAIL_TOO_LARGE, 0);
            goto out;
        }
        char *src = direct ? data : u->head.data;
        size_t srclen = direct ? len : u->head.len;
        for (;;) {
            struct http1_response resp;
            int n = http1_parse_response(src, srclen, &resp);
            if (n == HTTP1_NEED_MORE) {
                if (direct && buf_append(&u->head, src, srclen) < 0)
                    fail(u, UPHTTP_FAIL_TOO_LARGE, 0);
                goto out;
            }
            if (n < 0) {
                fail(u, UPHTTP_FAIL_BAD_RESPONSE, 0);
                goto out;
            }
            if (resp.status >= 100 && resp.status < 200) { /* 100 Continue and friends */
                if (direct) {
                    src += n;
                    srclen -= (size_t)n;
                } else {
                    buf_consume(&u->head, (size_t)n);
                    srclen = u->head.len;
                }
                if (srclen == 0) goto out;
                continue;
            }
            u->keep_alive = !resp.head.conn_close;
            if (body_has_none(resp.status)) {
                http1_body_init(&u->framer, HTTP1_BODY_NONE, 0);
            } else if (resp.head.chunked) {
                http1_body_init(&u->framer, HTTP1_BODY_CHUNKED, 0);
                u->framer.bare_lf_ok = true; /* decoded and re-framed here: see http1.h */
            } else if (resp.head.has_content_length) {
                http1_body_init(&u->framer, HTTP1_BODY_LENGTH, resp.head.content_length);
            } else {
                http1_body_init(&u->framer, HTTP1_BODY_UNTIL_CLOSE, 0);
                u->keep_alive = false;
            }
            u->state = UP_BODY;
            u->ev->on_head(u->ud, &resp);
            if (u->cancelled)
                goto out;
            if (u->framer.mode == HTTP1_BODY_NONE ||
                (u->framer.mode == HTTP1_BODY_LENGTH && resp.head.content_length == 0)) {
                u->state = UP_DONE;
                up_release(u, u->keep_alive && srclen == (size_t)n);
                u->ev->on_end(u->ud);
                goto out;
            }
            /* The rest of what arrived with the head is body. */
            size_t rest = srclen - (size_t)n;
            if (direct) {
                feed_body(u, src + n, rest);
            } else if (rest > 0) {
                struct buf tmp = u->head;
                buf_init(&u->head, UPHTTP_MAX_HEAD);
                feed_body(u, tmp.data + n, rest);
                buf_free(&tmp);
            }
            goto out;
        }
    } else if (u->state == UP_BODY) {
        feed_body(u, data, len);
    }
out:
    up_leave(u);
}

struct uphttp *uphttp_start(struct transport_pool *pool, const struct cfg_provider *p,
                            uint32_t connect_timeout_ms, char *request, size_t len,
                            const struct uphttp_events *ev, void *ud)
{
    return uphttp_start_at(pool, p, NULL, connect_timeout_ms, request, len, ev, ud);
}

struct uphttp *uphttp_start_at(struct transport_pool *pool, const struct cfg_provider *p,
                               const struct sockaddr *addr, uint32_t connect_timeout_ms,
                               char *request, size_t len, const struct uphttp_events *ev, void *ud)
{
    struct uphttp *u = pool_get_zeroed(&uphttp_pool);
    if (!u) {
        free(request);
        return NULL;
    }
    u->pool = pool;
    u->provider = p;
    if (addr) {
        u->has_addr = true;
        memcpy(&u->addr, addr,
               addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
    }
    u->connect_timeout_ms = connect_timeout_ms;
    u->ev = ev;
    u->ud = ud;
    u->request = request;
    u->request_len = len;
    buf_init(&u->head, UPHTTP_MAX_HEAD);
    u->state = UP_CONNECTING;
    if (up_open(u) < 0) {
        up_free(u);
        return NULL;
    }
    return u;
}

void uphttp_pause(struct uphttp *u, bool paused)
{
    if (u->paused == paused)
        return;
    u->paused = paused;
    if (u->conn && u->state != UP_CONNECTING)
        transport_pause(u->conn, paused);
}

void uphttp_cancel(struct uphttp *u)
{
    if (!u || u->cancelled)
        return;
    u->cancelled = true;
    up_release(u, false);
    if (u->depth == 0)
        up_free(u);
}

int uphttp_request_head(struct buf *out, const struct cfg_provider *p, const char *method,
                        const char *path, const char *user_agent)
{
    bool v6 = strchr(p->host, ':') != NULL; /* an IPv6 literal goes in brackets */
    /* no printf: this runs for every attempt */
    int rc = buf_append_str(out, method);
    rc |= buf_append_lit(out, " ");
    if (p->base_path) rc |= buf_append_str(out, p->base_path);
    rc |= buf_append_str(out, path);
    rc |= buf_append_lit(out, " HTTP/1.1\r\nHost: ");
    if (v6) rc |= buf_append_lit(out, "[");
    rc |= buf_append_str(out, p->host);
    if (v6) rc |= buf_append_lit(out, "]");
    if (p->port != (p->tls ? 443 : 80)) {
        rc |= buf_append_lit(out, ":");
        rc |= buf_append_u64(out, p->port);
    }
    rc |= buf_append_lit(out, "\r\nUser-Agent: ");
    rc |= buf_append_str(out, user_agent);
    rc |= buf_append_lit(out, "\r\n");
    for (size_t i = 0; i < p->nheaders; i++) {
        rc |= buf_append_str(out, p->headers[i].name);
        rc |= buf_append_lit(out, ": ");
        rc |= buf_append_str(out, p->headers[i].value);
        rc |= buf_append_lit(out, "\r\n");
    }
    return rc;
}
