/*
 * server.c — a listener's connections: accepting, reading and framing
 * requests, the limits and timeouts, dispatching to the handlers, writing
 * (coalesced per loop iteration, with back-pressure), closing and lingering.
 * HTTPS is server_tls.c: it sits between the socket and this file, which
 * sees only plaintext; what the two share is in server_int.h.
 *
 * Connection states:
 *
 *   READ_HEAD --head complete--> READ_BODY --body complete--> ACTIVE
 *      ^                                                        |
 *      +------------- server_request_done (keep-alive) ---------+
 *   any state --error / EOF / timeout / close after response--> CLOSING
 *
 * While ACTIVE the connection keeps reading (bounded), so that a client that
 * goes away is noticed at once and its upstream request cancelled, and so
 * that pipelined requests wait in `in` to be answered in order.
 */
#include "http/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "http/server_int.h"

__thread char server_read_scratch[SERVER_READ_SCRATCH];
/* The request states and output batches of this worker's connections (base/pool.h). */
static __thread struct pool reqstate_pool = POOL_INIT(sizeof(struct server_reqstate), 64);
static __thread struct pool out_pool = POOL_INIT(SERVER_OUT_BLOCK, SERVER_OUT_POOL_KEEP);
static __thread struct pool out_small_pool = POOL_INIT(SERVER_OUT_SMALL, SERVER_OUT_POOL_KEEP);

void server_out_put(char *mem, size_t cap)
{
    if (cap == SERVER_OUT_BLOCK)
        pool_put(&out_pool, mem);
    else if (cap == SERVER_OUT_SMALL)
        pool_put(&out_small_pool, mem);
    else
        free(mem);
}

static void out_release(struct server_conn *c)
{
    server_out_put(c->out.data, c->out.cap);
    c->out.data = NULL;
    c->out.len = c->out.cap = 0;
}

/* Room for `more` bytes (and the terminating NUL) in the batch buffer: a small block when the
   connection has none, a large one when a small one is outgrown (server_int.h). */
static int out_take(struct server_conn *c, size_t more)
{
    if (!c->out.data) {
        bool small = more < SERVER_OUT_SMALL;
        if (!(c->out.data = pool_get(small ? &out_small_pool : &out_pool))) return -ENOMEM;
        c->out.cap = small ? SERVER_OUT_SMALL : SERVER_OUT_BLOCK;
        c->out.len = 0;
        c->out.data[0] = '\0';
    } else if (c->out.cap == SERVER_OUT_SMALL && c->out.len + more >= SERVER_OUT_SMALL) {
        char *big = pool_get(&out_pool);
        if (!big) return -ENOMEM;
        memcpy(big, c->out.data, c->out.len + 1);
        pool_put(&out_small_pool, c->out.data);
        c->out.data = big;
        c->out.cap = SERVER_OUT_BLOCK;
    }
    return 0;
}

static void conn_process(struct server_conn *c);
static void conn_flush(struct server_conn *c);

/* Zeroes n bytes at p but the parsed head's header array, which the parser fills before
   anything reads it (nheaders says how far): 2 KB a request not written twice. */
static void zero_but_headers(void *p, size_t n, const struct http1_request *http)
{
    char *from = (char *)http->head.headers, *to = from + sizeof http->head.headers;
    memset(p, 0, (size_t)(from - (char *)p));
    memset(to, 0, (size_t)((char *)p + n - to));
}

/*
 * What an idle keep-alive connection holds is its socket and this struct (no
 * timer of its own: it is on the server's idle list): the request (its head,
 * its body, its framing, its log entry) exists from the first byte of a
 * request to server_request_done, the input buffer only while it holds bytes
 * (reads land in the loop's server_read_scratch), and the output buffer only
 * while a response is being written.
 */
static int conn_req_get(struct server_conn *c)
{
    if (c->req)
        return 0;
    struct server_reqstate *rs = pool_get(&reqstate_pool);
    if (!rs)
        return -ENOMEM;
    zero_but_headers(rs, sizeof *rs, &rs->pub.http);
    const struct cfg_server *cfg = c->srv->cfg;
    http1_head_scan_init(&rs->scan);
    buf_init(&rs->head, cfg->max_header_bytes + 1);
    buf_init(&rs->body, cfg->max_body_bytes);
    c->req = rs;
    return 0;
}

static void conn_req_release(struct server_conn *c)
{
    struct server_reqstate *rs = c->req;
    if (!rs)
        return;
    free(rs->pub.body);
    buf_free(&rs->head); /* the request's strings pointed into it */
    buf_free(&rs->body);
    pool_put(&reqstate_pool, rs);
    c->req = NULL;
}

void *server_conn_context(struct server_conn *c)
{
    return c->srv->ctx;
}

bool server_conn_tls(const struct server_conn *c)
{
    return c->srv->tls != NULL;
}

void server_conn_new_id(struct server_conn *c, char *out)
{
    reqid_next(&c->srv->ids, out);
}

const struct server_request *server_conn_request(struct server_conn *c)
{
    return c->req ? &c->req->pub : NULL;
}

struct server_request *server_conn_request_mut(struct server_conn *c)
{
    return c->req ? &c->req->pub : NULL;
}

void server_set_hooks(struct server_conn *c, const struct server_hooks *hooks)
{
    if (!c->req)
        return; /* hooks belong to a request */
    if (hooks)
        c->req->hooks = *hooks;
    else
        memset(&c->req->hooks, 0, sizeof c->req->hooks);
}

size_t server_pending_bytes(const struct server_conn *c)
{
    return c->pending;
}

size_t server_bytes_out(const struct server_conn *c)
{
    return c->req ? c->req->bytes_out : 0;
}

bool server_conn_gone(const struct server_conn *c)
{
    return c->gone;
}

void server_set_close(struct server_conn *c)
{
    c->keep_alive = false;
}

static const struct cfg_server *conn_cfg(struct server_conn *c)
{
    return c->srv->cfg;
}

/* ---- closing ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct server_conn *c = h->data;
    if (c->flush_queued) { /* still listed: take it out before the memory goes */
        struct server_conn **pp = &c->srv->flush_list;
        while (*pp && *pp != c)
            pp = &(*pp)->flush_next;
        if (*pp)
            *pp = c->flush_next;
    }
    buf_free(&c->in);
    out_release(c);
    conn_req_release(c);
    server_tls_detach(c);
    free(c);
}

static void conn_really_close(struct server_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return; /* already closing */
    server_timer_set(c, CT_NONE);
    c->srv->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->srv->on_conn_closed)
        c->srv->on_conn_closed(c->srv);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct server_conn *c = req->data;
    free(req);
    if (!c->lingering || status < 0)
        conn_really_close(c);
}

/*
 * Close after the queued writes have gone out. A connection refused while the
 * client is still sending its body (413, say) lingers: the answer goes out, the
 * write side is shut down, and what the client still sends is read and dropped
 * for up to SERVER_LINGER_MS, so that its TCP stack does not reset the
 * connection before the client has read the answer.
 */
void server_conn_close(struct server_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    conn_flush(c); /* what the handler wrote goes out before the shutdown */
    if (c->tls)
        server_tls_close_notify(c);
    c->state = CS_CLOSING;
    server_timer_set(c, CT_NONE);
    if (c->linger && !c->gone) {
        uv_shutdown_t *req = malloc(sizeof *req);
        if (req) {
            req->data = c;
            if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
                c->lingering = true;
                server_timer_set(c, CT_LINGER);
                return; /* on_read keeps reading and dropping */
            }
            free(req);
        }
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (!c->gone && c->writes_inflight > 0) {
        uv_shutdown_t *req = malloc(sizeof *req);
        if (req) {
            req->data = c;
            if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
                return;
            free(req);
        }
    }
    conn_really_close(c);
}

/* The client is gone: tell an active handler once; it finishes with server_request_done. */
void server_conn_lost(struct server_conn *c)
{
    c->gone = true;
    if (c->state == CS_ACTIVE && !c->aborted) {
        c->aborted = true;
        if (c->req && c->req->hooks.on_abort) {
            c->req->hooks.on_abort(c->req->hooks.ud);
            return; /* server_request_done will close */
        }
    }
    if (c->state != CS_ACTIVE)
        server_conn_close(c);
}

/* ---- writing ---------------------------------------------------------- */

/* n bytes have left: tell the handler when the queue falls below the low-water mark. */
void server_conn_written(struct server_conn *c, size_t n)
{
    size_t before = c->pending;
    c->pending -= n;
    if (before >= SERVER_LOW_WATER && c->pending < SERVER_LOW_WATER && c->state == CS_ACTIVE &&
        c->req && c->req->hooks.on_drain)
        c->req->hooks.on_drain(c->req->hooks.ud);
}

void server_on_write(uv_write_t *req, int status)
{
    struct server_wreq *wr = (struct server_wreq *)req;
    struct server_conn *c = wr->c;
    size_t len = wr->len;
    c->writes_inflight--;
    server_out_put(wr->mem, wr->mem_cap);
    free(wr);
    if (status < 0 && !c->gone) {
        c->pending -= len;
        server_conn_lost(c);
        return;
    }
    server_conn_written(c, len);
}

/* `out` has all gone to the socket: its buffer goes back to the pool (the next batch takes
   one again), so a connection between batches holds none. */
void server_conn_out_sent(struct server_conn *c)
{
    out_release(c);
}

/*
 * Sends what has gathered in `out`: first straight to the socket when nothing is queued
 * (most batches leave here, with no allocation), the rest as one uv_write.
 */
static void conn_flush(struct server_conn *c)
{
    size_t len = c->out.len;
    if (len == 0)
        return;
    if (c->gone || uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->pending -= len;
        out_release(c);
        return;
    }
    if (c->tls) {
        server_tls_flush(c);
        return;
    }
    size_t sent = 0;
    if (c->writes_inflight == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent == len) {
        server_conn_out_sent(c);
        server_conn_written(c, sent);
        return;
    }
    struct server_wreq *wr = malloc(sizeof *wr);
    if (!wr) {
        server_conn_lost(c);
        return;
    }
    wr->c = c;
    wr->len = len - sent;
    wr->mem_cap = c->out.cap;
    wr->mem = buf_steal(&c->out, NULL);
    buf_init(&c->out, c->out.limit);
    uv_buf_t b = uv_buf_init(wr->mem + sent, (unsigned)(len - sent));
    int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, server_on_write);
    if (rc < 0) {
        server_out_put(wr->mem, wr->mem_cap);
        free(wr);
        c->pending -= len - sent;
        if (sent)
            server_conn_written(c, sent);
        server_conn_lost(c);
        return;
    }
    c->writes_inflight++;
    if (sent)
        server_conn_written(c, sent);
}

static void flush_all(struct server *s)
{
    struct server_conn *list = s->flush_list;
    s->flush_list = NULL;
    while (list) {
        struct server_conn *c = list;
        list = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = false;
        conn_flush(c);
    }
}

/*
 * Copies the parts into the batch; as one HTTP chunk when `chunk`, its size line and CRLF
 * written around them in place (a relayed event is one such chunk: no array of parts to
 * build, no copy calls for the framing).
 */
static int conn_write_parts(struct server_conn *c, const uv_buf_t *parts, unsigned n, bool chunk)
{
    if (c->gone || c->state == CS_CLOSING)
        return -EPIPE;
    size_t body = 0;
    for (unsigned i = 0; i < n; i++)
        body += parts[i].len;
    if (body == 0) return 0;
    unsigned digits = 0;
    if (chunk)
        for (size_t v = body; v; v >>= 4)
            digits++;
    size_t total = body + (chunk ? digits + 4 : 0); /* size, CRLF, data, CRLF */
    int rc = out_take(c, total);
    if (rc == 0) rc = buf_reserve(&c->out, total);
    if (rc < 0)
        return rc;
    char *dst = c->out.data + c->out.len; /* room reserved above: copied straight in */
    if (chunk) {
        static const char hexdigits[] = "0123456789abcdef";
        size_t v = body;
        for (unsigned k = digits; k > 0; k--, v >>= 4)
            dst[k - 1] = hexdigits[v & 15];
        dst[digits] = '\r';
        dst[digits + 1] = '\n';
        dst += digits + 2;
    }
    for (unsigned i = 0; i < n; i++) {
        if (parts[i].len) memcpy(dst, parts[i].base, parts[i].len);
        dst += parts[i].len;
    }
    if (chunk) {
        dst[0] = '\r';
        dst[1] = '\n';
    }
    c->out.len += total;
    c->out.data[c->out.len] = '\0';
    c->pending += total;
    if (c->req)
        c->req->bytes_out += total;
    if (c->out.len >= SERVER_HIGH_WATER) {
        conn_flush(c); /* a big batch goes now: `out` stays bounded */
    } else if (!c->flush_queued) {
        c->flush_queued = true; /* sent once this loop iteration's callbacks are done */
        c->flush_next = c->srv->flush_list;
        c->srv->flush_list = c;
    }
    return 0;
}

static int conn_write(struct server_conn *c, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return conn_write_parts(c, &b, 1, false);
}

static void head_begin(struct server_conn *c, struct buf *h, int status, const char *content_type,
                       const char *extra_headers)
{
    /* no printf: this runs for every response */
    buf_append_lit(h, "HTTP/1.1 ");
    buf_append_u64(h, (unsigned)status);
    buf_append_lit(h, " ");
    buf_append_str(h, http1_reason(status));
    buf_append_lit(h, "\r\n");
    if (content_type) {
        buf_append_lit(h, "Content-Type: ");
        buf_append_str(h, content_type);
        buf_append_lit(h, "\r\n");
    }
    if (c->req->pub.request_id[0]) {
        buf_append_lit(h, "x-request-id: ");
        buf_append_str(h, c->req->pub.request_id);
        buf_append_lit(h, "\r\n");
    }
    if (extra_headers)
        buf_append_str(h, extra_headers);
    if (!c->keep_alive)
        buf_append_str(h, "Connection: close\r\n");
    else if (c->http10)
        buf_append_str(h, "Connection: keep-alive\r\n"); /* 1.0 closes unless told otherwise */
}

void server_respond(struct server_conn *c, int status, const char *content_type,
                    const char *extra_headers, const char *body, size_t len)
{
    if (c->response_started || conn_req_get(c) < 0)
        return;
    c->response_started = true;
    c->response_done = true;
    c->req->pub.log.status = status;
    if (c->srv->draining)
        c->keep_alive = false;
    struct buf h;
    buf_init(&h, 0);
    head_begin(c, &h, status, content_type, extra_headers);
    /* an answer to HEAD says how long the body would be and sends none (RFC 9110 9.3.2) */
    buf_append_lit(&h, "Content-Length: ");
    buf_append_u64(&h, len);
    buf_append_lit(&h, "\r\n\r\n");
    uv_buf_t parts[2] = {uv_buf_init(h.data, (unsigned)h.len), uv_buf_init((char *)body, (unsigned)len)};
    conn_write_parts(c, parts, len && !c->head_only ? 2 : 1, false);
    buf_free(&h);
}

void server_respond_error(struct server_conn *c, enum gw_err e, const char *message,
                          const char *extra_headers)
{
    struct buf b;
    buf_init(&b, 0);
    int status = errors_render(&b, e, message, NULL);
    server_respond(c, status, "application/json", extra_headers, b.data, b.len);
    buf_free(&b);
}

int server_stream_begin(struct server_conn *c, int status, const char *content_type,
                        const char *extra_headers)
{
    if (c->response_started)
        return -EALREADY;
    if (conn_req_get(c) < 0)
        return -ENOMEM;
    c->response_started = true;
    c->req->pub.log.status = status;
    if (c->srv->draining)
        c->keep_alive = false;
    /* an HTTP/1.0 client knows no chunked coding: the body ends when the connection closes */
    c->chunked_out = !c->http10;
    if (!c->chunked_out)
        c->keep_alive = false;
    struct buf h;
    buf_init(&h, 0);
    head_begin(c, &h, status, content_type, extra_headers);
    buf_append_str(&h, c->chunked_out ? "Transfer-Encoding: chunked\r\n\r\n" : "\r\n");
    int rc = conn_write(c, h.data, h.len);
    buf_free(&h);
    return rc;
}

int server_stream_writev(struct server_conn *c, const uv_buf_t *parts, unsigned nparts)
{
    if (c->head_only) return 0;
    return conn_write_parts(c, parts, nparts, c->chunked_out);
}

int server_stream_write(struct server_conn *c, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return server_stream_writev(c, &b, 1);
}

void server_stream_end(struct server_conn *c)
{
    if (c->response_done)
        return;
    c->response_done = true;
    if (c->chunked_out && !c->head_only)
        conn_write(c, "0\r\n\r\n", 5);
}

/* ---- reading and framing ---------------------------------------------- */

/* c's wait of `kind` is over (it is on no list now). */
/* c waited past its deadline of `kind` (called by the sweep in server_deadline.c). */
void server_conn_deadline(struct server_conn *c, int kind)
{
    if (kind == CT_LINGER) {
        conn_really_close(c);
        return;
    }
    if (kind == CT_KICKING) {
        conn_process(c);
        return;
    }
    if (c->state == CS_READ_HEAD && c->in.len == 0) {
        server_conn_close(c); /* idle keep-alive connection */
        return;
    }
    if (c->state == CS_READ_HEAD || c->state == CS_READ_BODY) {
        c->keep_alive = false;
        server_respond_error(c, GW_ERR_TIMEOUT_CLIENT,
                             "the request did not arrive in time (server.header_timeout)", NULL);
        server_conn_close(c);
    }
}

static void conn_log(struct server_conn *c)
{
    const struct http1_request *r = &c->req->pub.http;
    int64_t total_ms = (int64_t)((uv_hrtime() - c->req->pub.start_ns) / 1000000);
    accesslog_write(&c->req->pub.log, c->req->pub.request_id, c->req->pub.trace_id, r->method.p, r->method.len, r->target.p,
                    r->target.len, total_ms, c->req->bytes_out);
}

static void reject(struct server_conn *c, enum gw_err e, const char *message)
{
    c->keep_alive = false;
    bool had_head = c->state == CS_READ_BODY;
    c->linger = had_head; /* the client may still be sending the body */
    server_respond_error(c, e, message, NULL);
    if (had_head)
        conn_log(c);
    server_conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    b->base = server_read_scratch;
    b->len = sizeof server_read_scratch;
}

static void set_reading(struct server_conn *c, bool on);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct server_conn *c = s->data;
    if (c->lingering) {
        if (nread < 0)
            conn_really_close(c);
        return; /* dropped */
    }
    if (nread < 0) {
        server_conn_lost(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == CS_CLOSING)
        return;
    if (c->tls)
        server_tls_input(c, b->base, (size_t)nread);
    else
        server_conn_input(c, b->base, (size_t)nread);
}

/* Request bytes from the client: straight from the socket, or decrypted (server_tls_input). */
void server_conn_input(struct server_conn *c, const char *data, size_t len)
{
    if (c->state == CS_READ_HEAD && c->in.len == 0)
        server_timer_set(c, CT_HEAD);
    if (buf_append(&c->in, data, len) < 0) {
        if (c->state == CS_ACTIVE) {
            set_reading(c, false); /* pipelined input waits until this answer is out */
            return;
        }
        reject(c, c->state == CS_READ_HEAD ? GW_ERR_HEADERS_TOO_LARGE : GW_ERR_TOO_LARGE,
               "request too large");
        return;
    }
    if (c->state == CS_ACTIVE && c->in.len > conn_cfg(c)->max_header_bytes)
        set_reading(c, false);
    conn_process(c);
    if (c->in.len == 0)
        buf_free(&c->in); /* all consumed: no read buffer while waiting */
}

static void set_reading(struct server_conn *c, bool on)
{
    if (on == c->reading || c->state == CS_CLOSING)
        return;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = on;
}

static void make_request_id(struct server_conn *c)
{
    const struct http1_str *rid = http1_find_header(&c->req->pub.http.head, "x-request-id");
    if (rid && rid->len > 0 && rid->len < 64) {
        bool ok = true;
        for (size_t i = 0; i < rid->len && ok; i++) {
            char ch = rid->p[i];
            ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 ch == '-' || ch == '_' || ch == '.';
        }
        if (ok) {
            memcpy(c->req->pub.request_id, rid->p, rid->len);
            c->req->pub.request_id[rid->len] = '\0';
            return;
        }
    }
    reqid_next(&c->srv->ids, c->req->pub.request_id);
}

static bool all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* W3C traceparent "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>": keep the client's
   trace (all-zero ids are invalid), or start one. */
static void make_trace(struct server_conn *c)
{
    const struct http1_str *tp = http1_find_header(&c->req->pub.http.head, "traceparent");
    if (tp && tp->len >= 55 && tp->p[2] == '-' && tp->p[35] == '-' && tp->p[52] == '-' &&
        all_hex(tp->p, 2) && memcmp(tp->p, "ff", 2) != 0 && all_hex(tp->p + 3, 32) &&
        all_hex(tp->p + 36, 16) && all_hex(tp->p + 53, 2) &&
        strspn(tp->p + 3, "0") < 32 && strspn(tp->p + 36, "0") < 16) {
        memcpy(c->req->pub.trace_id, tp->p + 3, 32);
        c->req->pub.trace_id[32] = '\0';
        memcpy(c->req->pub.trace_flags, tp->p + 53, 2);
        c->req->pub.trace_flags[2] = '\0';
        return;
    }
    reqid_next(&c->srv->ids, c->req->pub.trace_id);
    reqid_next(&c->srv->ids, c->req->pub.trace_id + 16);
    memcpy(c->req->pub.trace_flags, "01", 3);
}

/* A request refused before its head could be read: a fresh id, not the previous request's. */
static void reject_head(struct server_conn *c, enum gw_err e, const char *message)
{
    memset(&c->req->pub, 0, sizeof c->req->pub);
    reqid_next(&c->srv->ids, c->req->pub.request_id);
    reject(c, e, message);
}

/*
 * The head is complete and the body not read: the on_head handler may answer
 * now (a missing key, say), so that nobody unauthenticated makes unbusy read a
 * body or send 100 Continue. Returns true to go on with the body.
 */
static bool head_handler(struct server_conn *c)
{
    if (!c->srv->handlers.on_head)
        return true;
    bool body_follows = !c->req->framer.done;
    bool keep_alive = c->keep_alive;
    /* an answer given now leaves the body unread, so its head must say the connection ends */
    if (body_follows)
        c->keep_alive = false;
    if (c->srv->handlers.on_head(c)) {
        c->keep_alive = keep_alive;
        return true;
    }
    if (!c->response_started)
        server_respond_error(c, GW_ERR_INTERNAL, "no response was produced", NULL);
    c->linger = body_follows; /* the client may be sending the body: let it read the answer */
    c->state = CS_ACTIVE;
    server_request_done(c);
    return false;
}

/*
 * A head has been found at the start of `in`: copy it out, parse and check it,
 * set up the body. Returns false when the request has been answered (or the
 * connection refused) without a body to read.
 */
static bool start_request(struct server_conn *c, int head_len)
{
    struct server_reqstate *rs = c->req;
    buf_reset(&rs->head);
    buf_append(&rs->head, c->in.data, (size_t)head_len);
    buf_consume(&c->in, (size_t)head_len);
    http1_head_scan_init(&rs->scan);
    zero_but_headers(&rs->pub, sizeof rs->pub, &rs->pub.http);
    if (http1_parse_request(rs->head.data, rs->head.len, &rs->pub.http) < 0) {
        reject_head(c, GW_ERR_BAD_REQUEST, "malformed HTTP request");
        return false;
    }
    c->req->pub.start_ns = uv_hrtime();
    accesslog_entry_init(&c->req->pub.log);
    rs->bytes_out = 0;
    make_request_id(c);
    make_trace(c);
    const struct http1_request *r = &c->req->pub.http;
    const struct http1_head *h = &r->head;
    c->keep_alive = !h->conn_close && !c->srv->draining;
    c->http10 = h->minor_version == 0;
    c->head_only = r->method.len == 4 && memcmp(r->method.p, "HEAD", 4) == 0;
    c->chunked_out = false;
    c->sent_continue = false;
    c->response_started = c->response_done = false;
    buf_reset(&rs->body);
    size_t max_body = conn_cfg(c)->max_body_bytes;
    rs->body.limit = max_body;
    c->state = CS_READ_BODY;
    if (h->chunked)
        http1_body_init(&rs->framer, HTTP1_BODY_CHUNKED, 0);
    else if (h->has_content_length)
        http1_body_init(&rs->framer, HTTP1_BODY_LENGTH, h->content_length);
    else
        http1_body_init(&rs->framer, HTTP1_BODY_NONE, 0);
    /* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400 (two Hosts fail the parse) */
    if (!c->http10 && !http1_find_header(h, "host")) {
        reject(c, GW_ERR_BAD_REQUEST, "an HTTP/1.1 request needs a Host header");
        return false;
    }
    if (!head_handler(c))
        return false;
    if (h->has_content_length && h->content_length > max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the limit of %zu bytes", max_body);
        reject(c, GW_ERR_TOO_LARGE, msg);
        return false;
    }
    return true;
}

static void dispatch(struct server_conn *c)
{
    struct server_reqstate *rs = c->req;
    server_timer_set(c, CT_NONE);
    rs->pub.body_len = rs->body.len;
    rs->pub.body = buf_steal(&rs->body, NULL);
    buf_init(&rs->body, conn_cfg(c)->max_body_bytes);
    c->state = CS_ACTIVE;
    c->aborted = false;
    memset(&rs->hooks, 0, sizeof rs->hooks);
    if (c->srv->handlers.on_request) {
        c->srv->handlers.on_request(c);
    } else {
        server_respond_error(c, GW_ERR_INTERNAL, "no handler for requests", NULL);
        server_request_done(c);
    }
}

static void conn_process(struct server_conn *c)
{
    if (c->state == CS_READ_HEAD && c->in.len > 0 && c->tkind != CT_HEAD)
        server_timer_set(c, CT_HEAD); /* pipelined input is being looked at: the head's clock runs */
    while (c->state == CS_READ_HEAD || c->state == CS_READ_BODY) {
        if (c->state == CS_READ_HEAD) {
            if (c->in.len == 0)
                return;
            if (conn_req_get(c) < 0) {
                server_conn_lost(c);
                return;
            }
            /* resumes where the last read left off: a head trickled in costs no more than one sent whole */
            int n = http1_head_scan_request(&c->req->scan, c->in.data, c->in.len);
            if (n == HTTP1_NEED_MORE) {
                if (c->in.len > conn_cfg(c)->max_header_bytes)
                    reject_head(c, GW_ERR_HEADERS_TOO_LARGE, "request headers are too large");
                return;
            }
            if (n < 0 || (size_t)n > conn_cfg(c)->max_header_bytes) {
                reject_head(c, n < 0 ? GW_ERR_BAD_REQUEST : GW_ERR_HEADERS_TOO_LARGE,
                            n < 0 ? "malformed HTTP request" : "request headers are too large");
                return;
            }
            if (!start_request(c, n))
                return;
            continue;
        }
        struct server_reqstate *rs = c->req;
        if (rs->framer.done) {
            dispatch(c);
            return;
        }
        if (c->req->pub.http.head.expect_continue && !c->sent_continue && c->in.len == 0) {
            c->sent_continue = true;
            conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        if (c->in.len == 0)
            return;
        size_t len = c->in.len, consumed = 0;
        int rc = http1_body_feed(&rs->framer, c->in.data, &len, &consumed);
        if (rc == HTTP1_ERROR) {
            reject(c, GW_ERR_BAD_REQUEST, "malformed request body framing");
            return;
        }
        if (buf_append(&rs->body, c->in.data, len) < 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body is larger than the limit of %zu bytes",
                     conn_cfg(c)->max_body_bytes);
            reject(c, GW_ERR_TOO_LARGE, msg);
            return;
        }
        buf_consume(&c->in, consumed);
        if (rc == 1) {
            dispatch(c);
            return;
        }
        if (consumed == 0)
            return;
    }
}

void server_request_done(struct server_conn *c)
{
    if (c->state != CS_ACTIVE)
        return;
    free(c->req->pub.body);
    c->req->pub.body = NULL;
    memset(&c->req->hooks, 0, sizeof c->req->hooks);
    if (!c->response_started && !c->gone)
        server_respond_error(c, GW_ERR_INTERNAL, "no response was produced", NULL);
    conn_log(c);
    /* While draining, a response whose head went out before the drain promised keep-alive:
       the client may send its next request the moment it ends, so the connection waits out
       the drain grace instead of closing under it (that request is answered with
       Connection: close). Responses begun while draining said Connection: close. */
    bool close = c->gone || !c->keep_alive || !c->response_done;
    /* an answer given before the next head is parsed (400, 408, 431) is that request's own */
    c->response_started = c->response_done = false;
    c->head_only = c->http10 = c->chunked_out = false;
    conn_req_release(c);
    if (c->out.len == 0) out_release(c);
    if (close) {
        c->state = CS_READ_HEAD;
        server_conn_close(c);
        return;
    }
    c->state = CS_READ_HEAD;
    set_reading(c, true);
    /* pipelined input is processed from the timer: not from inside the handler's call */
    server_timer_set(c, c->in.len > 0 ? CT_KICK : c->srv->draining ? CT_DRAINED : CT_IDLE);
}

/* ---- accepting -------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *w = listener->data;
    if (status < 0)
        return;
    struct server_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = w;
    c->tkind = CT_NONE;
    uv_tcp_init(w->loop, &c->tcp);
    c->tcp.data = c;
    buf_init(&c->in, w->cfg->max_header_bytes + 64 * 1024);
    buf_init(&c->out, 64u << 20); /* bounded far above the high-water mark: a safety net */
    w->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || w->draining ||
        w->nconns > w->cfg->max_connections) {
        conn_really_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (w->tls && server_tls_attach(c) < 0) {
        conn_really_close(c);
        return;
    }
    c->state = CS_READ_HEAD;
    set_reading(c, true);
    /* Over TLS this also bounds the handshake: a client that never finishes it is closed
       as an idle connection would be. */
    server_timer_set(c, CT_HEAD);
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void on_flush_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
    accesslog_flush(); /* the iteration's access-log lines, in one write, before the loop waits */
}

int server_init(struct server *s, uv_loop_t *loop, int listen_fd, const struct cfg_server *cfg,
                struct tls_server *tls, const struct server_handlers *handlers, void *ctx)
{
    s->loop = loop;
    s->cfg = cfg;
    s->tls = tls;
    s->handlers = *handlers;
    s->ctx = ctx;
    reqid_init(&s->ids, (uint64_t)listen_fd);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_due = UINT64_MAX;
    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_flush_check);
    uv_prepare_init(loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, on_flush_prepare);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_open(&s->listener, listen_fd);
    if (rc < 0)
        return rc;
    return uv_listen((uv_stream_t *)&s->listener, SERVER_LISTEN_BACKLOG, on_connection);
}

void server_close(struct server *s)
{
    uv_close((uv_handle_t *)&s->flush_check, NULL);
    uv_close((uv_handle_t *)&s->flush_prepare, NULL);
    uv_close((uv_handle_t *)&s->timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
}

void server_drain(struct server *w)
{
    if (w->draining)
        return;
    w->draining = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    /* Connections between requests (or accepted with nothing read yet) close after a short
       grace, not at once: a request the client already sent would otherwise meet a reset.
       One that arrives in the grace is answered with Connection: close. The busy ones close
       after their request (server_request_done and start_request look at `draining`). */
    while (w->timer_head[CT_IDLE])
        server_timer_set(w->timer_head[CT_IDLE], CT_DRAINED);
    struct server_conn *c = w->timer_head[CT_HEAD], *next;
    for (; c; c = next) {
        next = c->tnext;
        if (c->state == CS_READ_HEAD && c->in.len == 0)
            server_timer_set(c, CT_DRAINED); /* accepted, nothing read yet (or a TLS handshake) */
        else
            c->keep_alive = false;
    }
}
