/*
 * transport_tcp — the tcp transport: libuv TCP, optionally TLS (tls.c).
 *
 * One struct tcp_conn per connection, from open to the close callbacks of
 * its two handles (the socket and a timer). States:
 *
 *   RESOLVING --dns ok--> CONNECTING --tcp ok--> HANDSHAKE --tls ok--> OPEN
 *       \____________________\______________________\___________> FAILED
 *                       (dns error, refused, timeout, TLS)     (on_error)
 *   OPEN --release(keep)--> OPEN, idle in the pool --open--> OPEN (reused)
 *   OPEN --error / EOF--> FAILED;    anything --release / pool--> closing
 *
 * The timer has one job per state: the connect timeout (DNS + TCP + TLS)
 * before OPEN; after it, zero-delay wake-ups that keep callbacks out of API
 * calls — on_connect for a pooled connection, an error found inside open,
 * plaintext left in TLS buffers when unpaused.
 *
 * A user is attached from open to release. Every release bumps `gen`; code
 * that calls back into a user checks gen afterwards and stops if the user let
 * go (or the connection failed) inside the callback. Memory is freed only
 * from a loop callback, once both handles are closed and no DNS request,
 * wait for a TLS context or write is outstanding, so a struct is always
 * valid while a callback into the user unwinds.
 *
 * A name resolving to several addresses is tried address by address (each
 * on a fresh socket) within the one connect timeout. TLS needs the pool's
 * SSL_CTX for the provider's CA settings; it is asked for at open so that a
 * first load (in the thread pool) overlaps DNS and the TCP connect.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/read_budget.h"
#include "net/tls.h"
#include "net/transport.h"

/* Addresses tried in turn from one DNS answer. */
#define TCP_MAX_ADDRS 8
/* Bound on bytes queued to a socket and not yet written. */
#define TCP_MAX_WRITE_QUEUE (64u << 20)
/* One socket read, and the plaintext taken out of TLS per step. A read is what may reach a
   client beyond the high-water mark before the proxy pauses this connection
   (SERVER_HIGH_WATER): as small as that mark keeps a slow reader's queue near it. */
#define TCP_READ_CHUNK (16u * 1024)
#define TCP_TLS_CHUNK (16u * 1024)
#define TCP_KEEPALIVE_DELAY_S 60

enum tcp_state { TCP_RESOLVING, TCP_CONNECTING, TCP_HANDSHAKE, TCP_OPEN, TCP_FAILED };

struct tcp_conn {
    struct transport_conn base;
    struct transport_pool *pool;
    struct transport_bucket *bucket; /* one reference, dropped at free */
    struct read_budget *budget;      /* the pool's: reads per loop iteration */
    struct read_budget_entry rb;
    enum tcp_state state;

    /* the attached user */
    struct transport_events ev;
    void *ud;
    unsigned gen;
    bool attached;

    char *host;
    uint16_t port;
    bool use_tls;
    bool tls_verify;
    char *ca_file;
    SSL_CTX *ssl_ctx; /* our reference, once loaded */
    struct tls_ctx_waiter ctx_wait;
    bool ctx_waiting;   /* the context loads in the thread pool */
    bool tcp_connected; /* TLS: TCP is up, the handshake waits for the context */
    struct tls_conn *tls;

    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t dns;
    uv_connect_t connect_req;
    struct sockaddr_storage addrs[TCP_MAX_ADDRS];
    unsigned naddrs, next_addr;
    int last_connect_err;

    bool tcp_inited; /* uv_close still owed (or in flight, see tcp_closing) */
    bool tcp_closing;
    bool timer_inited;
    bool dns_pending; /* uv_getaddrinfo callback still to come */
    unsigned writes_pending;

    bool reading;
    bool paused;                    /* by the user */
    bool idle;                      /* parked in the pool */
    bool notify_pending;            /* on_connect(reused) waits for the timer */
    bool drain_pending;             /* TLS plaintext waits for the timer */
    enum transport_err pending_err; /* a failure found inside open, reported from the timer */
    bool broken;                    /* a write was refused half-way: never reuse */
    bool closing;                   /* torn down; waiting for close callbacks */
};

struct tcp_write {
    uv_write_t req;
    struct tcp_conn *conn;
    char data[];
};

/* One socket read at a time per thread: libuv calls alloc then read back to back. */
static _Thread_local char tcp_read_buf[TCP_READ_CHUNK];

static void tcp_teardown(struct tcp_conn *c);
static void tcp_start_connect(struct tcp_conn *c);
static void tcp_tls_drain(struct tcp_conn *c);

static void tcp_maybe_free(struct tcp_conn *c)
{
    if (!c->closing || c->tcp_inited || c->timer_inited || c->dns_pending || c->writes_pending ||
        c->ctx_waiting)
        return;
    tls_conn_free(c->tls);
    SSL_CTX_free(c->ssl_ctx);
    free(c->host);
    free(c->ca_file);
    struct transport_bucket *b = c->bucket;
    free(c);
    transport_bucket_unref(b); /* may free the pool: last */
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct tcp_conn *c = h->data;
    c->tcp_inited = false;
    c->tcp_closing = false;
    tcp_maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct tcp_conn *c = h->data;
    c->timer_inited = false;
    tcp_maybe_free(c);
}

/* A read that would hand the user data waits when the loop iteration's budget is spent: a
   zero-length buffer makes libuv call on_read with UV_ENOBUFS, the bytes left in the kernel. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tcp_conn *c = h->data;
    if (c->state == TCP_OPEN && c->attached && !c->idle && !c->notify_pending &&
        !read_budget_may_read(c->budget, &c->rb)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(tcp_read_buf, sizeof tcp_read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reading follows the state: always during the handshake and while idle (to see
   the peer close), otherwise while the user is attached, notified and not paused, and the
   read budget has not stopped it (read_budget.h). A plain
   connection taken from the pool keeps reading while its on_connect is pending (on_read
   treats anything it brings as a failure), so that reusing it costs no epoll_ctl calls. */
static void tcp_update_reading(struct tcp_conn *c)
{
    bool want =
        !c->closing && c->tcp_inited && !c->tcp_closing &&
        ((c->state == TCP_HANDSHAKE && c->tls) ||
         (c->state == TCP_OPEN &&
          (c->idle || (!c->paused && !c->rb.stopped && (!c->notify_pending || !c->use_tls)))));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void tcp_budget_resume(struct read_budget_entry *e)
{
    tcp_update_reading((struct tcp_conn *)((char *)e - offsetof(struct tcp_conn, rb)));
}

/* Reports a failure to the attached user: the last thing any caller does. */
static void tcp_fail(struct tcp_conn *c, enum transport_err err)
{
    if (c->closing || c->state == TCP_FAILED) return;
    bool before_open = c->state != TCP_OPEN;
    c->state = TCP_FAILED;
    c->notify_pending = c->drain_pending = false;
    uv_timer_stop(&c->timer);
    tcp_update_reading(c);
    if (c->dns_pending) uv_cancel((uv_req_t *)&c->dns);
    if (c->ctx_waiting) {
        tls_ctx_waiter_cancel(&c->ctx_wait);
        c->ctx_waiting = false;
    }
    if (before_open) transport_pool_count_open(c->pool, false);
    if (c->attached) c->ev.on_error(c->ud, err);
}

/* A failure found inside an API call: reported from the loop instead. */
static void tcp_fail_later(struct tcp_conn *c, enum transport_err err);

static void on_timer(uv_timer_t *t)
{
    struct tcp_conn *c = t->data;
    if (c->closing) return;
    if (c->pending_err) {
        enum transport_err err = c->pending_err;
        c->pending_err = 0;
        tcp_fail(c, err);
        return;
    }
    if (c->state < TCP_OPEN) {
        tcp_fail(c, TRANSPORT_ERR_CONNECT_TIMEOUT);
        return;
    }
    if (c->state != TCP_OPEN || !c->attached) return;
    if (c->notify_pending) {
        c->notify_pending = false;
        tcp_update_reading(c);
        unsigned gen = c->gen;
        c->ev.on_connect(c->ud, true);
        if (gen != c->gen || c->state != TCP_OPEN) return;
    }
    if (c->drain_pending) {
        c->drain_pending = false;
        tcp_tls_drain(c);
    }
}

static void tcp_fail_later(struct tcp_conn *c, enum transport_err err)
{
    c->pending_err = err;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* Drops an idle connection from the pool and closes it. */
static void tcp_drop_idle(struct tcp_conn *c)
{
    transport_bucket_unpark(&c->base);
    c->idle = false;
    tcp_teardown(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct tcp_write *w = (struct tcp_write *)req;
    struct tcp_conn *c = w->conn;
    free(w);
    c->writes_pending--;
    if (c->closing) {
        tcp_maybe_free(c);
        return;
    }
    if (status < 0) {
        if (c->idle)
            tcp_drop_idle(c);
        else if (c->state == TCP_HANDSHAKE)
            tcp_fail(c, TRANSPORT_ERR_TLS);
        else
            tcp_fail(c, TRANSPORT_ERR_IO);
    }
}

/* Queues a copy of data (plaintext goes straight to the socket first when nothing is queued:
   most requests leave that way, with no copy). Returns 0 or a negative uv error. */
static int tcp_queue(struct tcp_conn *c, const char *data, size_t len, bool from_tls)
{
    if (!from_tls && c->writes_pending == 0) {
        uv_buf_t direct = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &direct, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            if (len == 0) return 0;
        }
    }
    struct tcp_write *w = malloc(sizeof *w + len);
    if (!w) return UV_ENOMEM;
    w->conn = c;
    if (from_tls)
        len = tls_out_read(c->tls, w->data, len);
    else
        memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->writes_pending++;
    return 0;
}

/* Sends whatever ciphertext TLS produced. */
static int tcp_tls_flush(struct tcp_conn *c)
{
    size_t n = tls_out_pending(c->tls);
    return n ? tcp_queue(c, NULL, n, true) : 0;
}

static void tcp_ready(struct tcp_conn *c)
{
    uv_timer_stop(&c->timer);
    c->state = TCP_OPEN;
    transport_pool_count_open(c->pool, true);
    tcp_update_reading(c);
    c->ev.on_connect(c->ud, false);
}

/* Idle connections must stay quiet: any plaintext, close_notify or error drops them.
   (Records without plaintext, such as TLS 1.3 session tickets, are fine.) */
static void tcp_tls_idle_check(struct tcp_conn *c)
{
    char buf[TCP_TLS_CHUNK];
    int r = tls_read(c->tls, buf, sizeof buf);
    if (r != TLS_WANT || tcp_tls_flush(c) < 0) tcp_drop_idle(c);
}

/* Hands out decrypted bytes until TLS needs input, the user pauses or lets go. */
static void tcp_tls_drain(struct tcp_conn *c)
{
    char buf[TCP_TLS_CHUNK];
    while (c->attached && !c->paused && c->state == TCP_OPEN && !c->closing) {
        int r = tls_read(c->tls, buf, sizeof buf);
        if (tcp_tls_flush(c) < 0) {
            tcp_fail(c, TRANSPORT_ERR_IO);
            return;
        }
        if (r == TLS_WANT) return;
        if (r == TLS_CLOSED) {
            tcp_fail(c, TRANSPORT_ERR_EOF);
            return;
        }
        if (r < 0) {
            tcp_fail(c, TRANSPORT_ERR_IO);
            return;
        }
        unsigned gen = c->gen;
        c->ev.on_data(c->ud, buf, (size_t)r);
        if (gen != c->gen) return;
    }
}

static void tcp_tls_input(struct tcp_conn *c, const char *data, size_t len)
{
    if (tls_feed(c->tls, data, len) < 0) {
        if (c->idle)
            tcp_drop_idle(c);
        else
            tcp_fail(c, c->state == TCP_HANDSHAKE ? TRANSPORT_ERR_TLS : TRANSPORT_ERR_IO);
        return;
    }
    if (c->state == TCP_HANDSHAKE) {
        int r = tls_handshake(c->tls);
        if (r == TLS_FAIL || tcp_tls_flush(c) < 0) {
            tcp_fail(c, TRANSPORT_ERR_TLS);
            return;
        }
        if (r == TLS_WANT) return;
        unsigned gen = c->gen;
        tcp_ready(c);
        if (gen != c->gen || c->state != TCP_OPEN) return;
        /* Application data may have come with the last handshake flight. */
    }
    if (c->idle)
        tcp_tls_idle_check(c);
    else
        tcp_tls_drain(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp_conn *c = s->data;
    if (nread == 0 || c->closing) return;
    if (nread == UV_ENOBUFS) { /* on_alloc: over the budget */
        if (read_budget_wait(c->budget, &c->rb)) tcp_update_reading(c);
        return;
    }
    if (nread < 0) {
        if (c->idle) {
            tcp_drop_idle(c);
        } else if (c->state == TCP_HANDSHAKE) {
            tcp_fail(c, TRANSPORT_ERR_TLS); /* the server hung up on our hello */
        } else {
            tcp_fail(c, nread == UV_EOF ? TRANSPORT_ERR_EOF : TRANSPORT_ERR_IO);
        }
        return;
    }
    if (c->use_tls) {
        tcp_tls_input(c, buf->base, (size_t)nread);
    } else if (c->idle) {
        tcp_drop_idle(c); /* an idle HTTP/1.1 connection has nothing to say */
    } else if (c->notify_pending) {
        tcp_fail(c, TRANSPORT_ERR_IO); /* taken from the pool, nothing sent yet: the same */
    } else if (c->attached && c->state == TCP_OPEN) {
        c->ev.on_data(c->ud, buf->base, (size_t)nread);
    }
}

static void tcp_start_tls(struct tcp_conn *c)
{
    c->tls = tls_conn_new(c->ssl_ctx, c->host, c->tls_verify);
    if (!c->tls) {
        tcp_fail(c, TRANSPORT_ERR_TLS);
        return;
    }
    c->state = TCP_HANDSHAKE;
    int r = tls_handshake(c->tls); /* writes the ClientHello */
    if (r == TLS_FAIL || tcp_tls_flush(c) < 0) {
        tcp_fail(c, TRANSPORT_ERR_TLS);
        return;
    }
    tcp_update_reading(c);
}

static void on_ctx_ready(struct tls_ctx_waiter *w, SSL_CTX *ctx, const char *err)
{
    struct tcp_conn *c = (struct tcp_conn *)((char *)w - offsetof(struct tcp_conn, ctx_wait));
    c->ctx_waiting = false;
    if (c->closing || c->state >= TCP_HANDSHAKE) return;
    if (!ctx) {
        tcp_fail(c, TRANSPORT_ERR_TLS); /* e.g. an unreadable ca_file */
        return;
    }
    SSL_CTX_up_ref(ctx);
    c->ssl_ctx = ctx;
    if (c->tcp_connected) tcp_start_tls(c);
}

/* Asks for the TLS context at open, so a first load overlaps DNS and connect. */
static void tcp_want_ctx(struct tcp_conn *c)
{
    struct tls_ctx_cache *cache = transport_pool_tls(c->pool);
    SSL_CTX *ctx = NULL;
    c->ctx_wait.ready = on_ctx_ready;
    int rc =
        cache ? tls_ctx_cache_get(cache, c->ca_file, c->tls_verify, &ctx, &c->ctx_wait) : -ENOMEM;
    if (rc == 0) {
        SSL_CTX_up_ref(ctx);
        c->ssl_ctx = ctx;
    } else if (rc == 1) {
        c->ctx_waiting = true;
    } else {
        tcp_fail_later(c, TRANSPORT_ERR_TLS);
    }
}

static void on_recycled(uv_handle_t *h);

/* A failed connect leaves the socket unusable: close the handle, try the next
   address from a fresh one. */
static void tcp_recycle(struct tcp_conn *c)
{
    c->tcp_closing = true;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_recycled);
}

static void on_recycled(uv_handle_t *h)
{
    struct tcp_conn *c = h->data;
    c->tcp_inited = false;
    c->tcp_closing = false;
    if (c->closing) {
        tcp_maybe_free(c);
        return;
    }
    if (c->state != TCP_CONNECTING) return; /* timed out meanwhile */
    if (uv_tcp_init(transport_pool_loop(c->pool), &c->tcp) != 0) {
        tcp_fail(c, TRANSPORT_ERR_CONNECT);
        return;
    }
    c->tcp.data = c;
    c->tcp_inited = true;
    tcp_start_connect(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct tcp_conn *c = req->data;
    if (c->closing || c->state != TCP_CONNECTING) return; /* cancelled by close, or timed out */
    if (status < 0) {
        c->last_connect_err = status;
        tcp_recycle(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, TCP_KEEPALIVE_DELAY_S);
    if (!c->use_tls) {
        tcp_ready(c);
        return;
    }
    c->tcp_connected = true;
    if (c->ssl_ctx) tcp_start_tls(c);
    /* else on_ctx_ready starts the handshake */
}

static void tcp_start_connect(struct tcp_conn *c)
{
    if (c->next_addr >= c->naddrs) {
        tcp_fail(c, c->last_connect_err == UV_ETIMEDOUT ? TRANSPORT_ERR_CONNECT_TIMEOUT
                                                        : TRANSPORT_ERR_CONNECT);
        return;
    }
    c->state = TCP_CONNECTING;
    const struct sockaddr *addr = (const struct sockaddr *)&c->addrs[c->next_addr++];
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
    if (rc < 0) {
        /* Refused synchronously (e.g. unreachable network): still answer from the loop. */
        c->last_connect_err = rc;
        tcp_recycle(c);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct tcp_conn *c = req->data;
    c->dns_pending = false;
    if (c->closing || c->state != TCP_RESOLVING) {
        uv_freeaddrinfo(res);
        tcp_maybe_free(c);
        return;
    }
    if (status < 0) {
        uv_freeaddrinfo(res);
        tcp_fail(c, TRANSPORT_ERR_DNS);
        return;
    }
    for (struct addrinfo *ai = res; ai && c->naddrs < TCP_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof c->addrs[0])
            memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    uv_freeaddrinfo(res);
    if (c->naddrs == 0) {
        tcp_fail(c, TRANSPORT_ERR_DNS);
        return;
    }
    tcp_start_connect(c);
}

/* Numeric hosts skip the resolver (and its thread pool). */
static bool tcp_numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    return uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0 ||
           uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0;
}

static void tcp_attach(struct tcp_conn *c, const struct transport_events *ev, void *ud)
{
    c->ev = *ev;
    c->ud = ud;
    c->attached = true;
    c->paused = false;
}

static int tcp_open(struct transport_pool *pool, const struct cfg_provider *p,
                    const struct sockaddr *addr, uint32_t connect_timeout_ms,
                    const struct transport_events *ev, void *ud, struct transport_conn **out)
{
    if (!p->host || !p->host[0] || p->port == 0) return -EINVAL;
    if (addr && addr->sa_family != AF_INET && addr->sa_family != AF_INET6) return -EINVAL;
    int err = 0;
    struct transport_bucket *b = transport_pool_bucket_at(pool, &transport_tcp_ops, p, addr, &err);
    if (!b) return err;

    struct transport_conn *idle = transport_bucket_take(b);
    if (idle) {
        struct tcp_conn *c = (struct tcp_conn *)idle;
        transport_bucket_unref(b); /* the idle connection holds its own */
        c->idle = false;
        uv_ref((uv_handle_t *)&c->tcp);
        tcp_attach(c, ev, ud);
        c->notify_pending = true;
        tcp_update_reading(c);
        uv_timer_start(&c->timer, on_timer, 0, 0);
        *out = &c->base;
        return 0;
    }

    uv_loop_t *loop = transport_pool_loop(pool);
    struct tcp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        transport_bucket_unref(b);
        return -ENOMEM;
    }
    c->base.ops = &transport_tcp_ops;
    c->pool = pool;
    c->bucket = b;
    c->budget = transport_pool_read_budget(pool);
    c->rb.resume = tcp_budget_resume;
    c->port = p->port;
    c->use_tls = p->tls;
    c->tls_verify = p->tls && p->tls_verify;
    c->host = strdup(p->host);
    if (p->tls && p->tls_verify && p->ca_file) c->ca_file = strdup(p->ca_file);
    if (!c->host || (p->tls && p->tls_verify && p->ca_file && !c->ca_file) ||
        uv_tcp_init(loop, &c->tcp) != 0) {
        free(c->host);
        free(c->ca_file);
        free(c);
        transport_bucket_unref(b);
        return -ENOMEM;
    }
    c->tcp.data = c;
    c->tcp_inited = true;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->timer_inited = true;
    c->dns.data = c;
    tcp_attach(c, ev, ud);
    *out = &c->base;

    if (connect_timeout_ms == 0) /* called without the front door */
        connect_timeout_ms =
            p->connect_timeout_ms ? p->connect_timeout_ms : TRANSPORT_DEFAULT_CONNECT_TIMEOUT_MS;
    uv_timer_start(&c->timer, on_timer, connect_timeout_ms, 0);
    if (c->use_tls) tcp_want_ctx(c);
    if (addr) { /* an endpoint of the name: its address, the name for TLS */
        memcpy(&c->addrs[0], addr,
               addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
        c->naddrs = 1;
        tcp_start_connect(c);
        return 0;
    }
    if (tcp_numeric_addr(c->host, c->port, &c->addrs[0])) {
        c->naddrs = 1;
        tcp_start_connect(c); /* any failure in there is reported from the loop */
        return 0;
    }
    c->state = TCP_RESOLVING;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(loop, &c->dns, on_resolved, c->host, service, &hints);
    if (rc < 0)
        tcp_fail_later(c, TRANSPORT_ERR_DNS);
    else
        c->dns_pending = true;
    return 0;
}

static int tcp_write(struct transport_conn *base, const char *data, size_t len)
{
    struct tcp_conn *c = (struct tcp_conn *)base;
    if (c->closing || c->state == TCP_FAILED || c->pending_err || c->broken) return -EPIPE;
    if (c->state != TCP_OPEN || c->notify_pending) return -ENOTCONN;
    if (len == 0) return 0;
    /* Checked before anything is encrypted, so a refusal leaves the stream intact. */
    if (len > TCP_MAX_WRITE_QUEUE ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > TCP_MAX_WRITE_QUEUE - len)
        return -ENOBUFS;
    int rc = c->use_tls ? (tls_write(c->tls, data, len) < 0 ? UV_EPROTO : tcp_tls_flush(c))
                        : tcp_queue(c, data, len, false);
    if (rc < 0) {
        /* Part of the stream may be gone: the connection must not be reused. */
        c->broken = true;
        return rc == UV_ENOMEM ? -ENOMEM : -EPIPE;
    }
    return 0;
}

static void tcp_pause(struct transport_conn *base, bool paused)
{
    struct tcp_conn *c = (struct tcp_conn *)base;
    if (c->closing || c->paused == paused) return;
    c->paused = paused;
    tcp_update_reading(c);
    if (!paused && c->use_tls && c->state == TCP_OPEN && !c->notify_pending && c->tls &&
        tls_has_buffered(c->tls)) {
        /* Plaintext already decrypted or buffered: hand it out from the loop. */
        c->drain_pending = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
    }
}

/* Records that arrived after the response but carry no plaintext (a TLS 1.3
   session ticket in the same read as the last bytes) must not cost the
   connection its reuse: process them. Plaintext or a partial record left means
   the response was not the whole story. */
static bool tcp_tls_settle(struct tcp_conn *c)
{
    if (!tls_has_buffered(c->tls)) return true;
    char buf[TCP_TLS_CHUNK];
    int r = tls_read(c->tls, buf, sizeof buf);
    return r == TLS_WANT && tcp_tls_flush(c) == 0 && !tls_has_buffered(c->tls);
}

/* Reusable: open, nothing in flight, nothing unread. */
static bool tcp_healthy(struct tcp_conn *c)
{
    return !c->closing && !c->broken && c->state == TCP_OPEN && !c->pending_err &&
           c->writes_pending == 0 && c->tcp_inited && !c->tcp_closing &&
           (!c->use_tls || tcp_tls_settle(c));
}

static void tcp_teardown(struct tcp_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    c->attached = false;
    c->reading = false;
    read_budget_leave(c->budget, &c->rb);
    if (c->idle) {
        transport_bucket_unpark(&c->base);
        c->idle = false;
    }
    if (c->dns_pending) uv_cancel((uv_req_t *)&c->dns);
    if (c->ctx_waiting) {
        tls_ctx_waiter_cancel(&c->ctx_wait);
        c->ctx_waiting = false;
    }
    if (c->tcp_inited && !c->tcp_closing) {
        c->tcp_closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
    if (c->timer_inited) uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void tcp_release(struct transport_conn *base, bool keep_alive)
{
    struct tcp_conn *c = (struct tcp_conn *)base;
    if (c->closing) return;
    c->gen++;
    c->attached = false;
    c->ud = NULL;
    c->notify_pending = c->drain_pending = false;
    read_budget_leave(c->budget, &c->rb);
    if (c->idle) { /* the pool gives an idle connection back to close it */
        transport_bucket_unpark(base);
        c->idle = false;
        keep_alive = false;
    }
    if (keep_alive && tcp_healthy(c)) {
        uv_timer_stop(&c->timer);
        c->paused = false;
        if (transport_bucket_park(c->bucket, base)) {
            c->idle = true;
            uv_unref((uv_handle_t *)&c->tcp); /* an idle connection is not work */
            tcp_update_reading(c);
            return;
        }
    }
    tcp_teardown(c);
}

const struct transport_ops transport_tcp_ops = {
    .name = "tcp",
    .open = tcp_open,
    .write = tcp_write,
    .pause = tcp_pause,
    .release = tcp_release,
};
