/*
 * server — the client side: HTTP/1.1 connections on a worker's loop.
 *
 * Reads and frames requests (http1.c), enforces the limits (head size and
 * read timeout, body size, idle keep-alive timeout, connection count),
 * answers 100-continue, and dispatches one request at a time per connection;
 * pipelined requests wait in the input buffer and are answered in order.
 * It never names a handler: the composition root gives each listener
 * (struct server, one per event loop) its handlers and their context at
 * server_init (on_head when a head is complete, before any body byte is read
 * or 100 Continue sent; on_request once the whole request is in); a handler
 * finds its context with server_conn_context. The server owns its
 * connections: their deadlines (one timer for all), the batch of connections
 * with output to send, and the request ids (base/reqid) it gives each request.
 * Handlers answer through server_respond (a whole response) or
 * server_stream_* (a response written piece by piece), and every request
 * ends with exactly one server_request_done.
 *
 * What the wire needs, handlers need not know: an answer to HEAD has its
 * head (Content-Length of the body it would have) and no body; an HTTP/1.0
 * client gets no chunked coding (a stream is close-delimited and the
 * connection ends with it) and keeps its connection only when it asked for
 * keep-alive and the answer has a Content-Length; an HTTP/1.1 request
 * without Host is refused with 400.
 *
 * Back-pressure: server_pending_bytes tells how much is queued to the client;
 * the handler stops reading its upstream above a high-water mark and is told
 * through on_drain when the queue has fallen below the low-water mark.
 * A client that disconnects while a request is active causes on_abort (once);
 * the handler must then finish with server_request_done.
 */
#ifndef UNBUSY_SERVER_H
#define UNBUSY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/reqid.h"
#include "config/config.h"
#include "obs/accesslog.h"
#include "base/buf.h"
#include "http/errors.h"
#include "proto/http1.h"

struct tls_server;

#define SERVER_HIGH_WATER (16u * 1024)
#define SERVER_LOW_WATER (4u * 1024)
/* The accept queue of a listener (the kernel caps it at net.core.somaxconn, 4096 by default
   since Linux 5.4). A burst of thousands of connects (clients reconnecting after a restart)
   that overflows it has its SYNs dropped and retried after 1 s, 3 s, 7 s: a slow start for
   those clients and a burst for the loop when they come back together. */
#define SERVER_LISTEN_BACKLOG 4096
/* The kinds of wait a connection can be in (enum conn_timer in server_int.h). */
#define SERVER_DEADLINE_LISTS 6

/* What a handler sees of a request; valid until server_request_done. */
struct server_request {
    struct http1_request http;   /* method, target, headers (point into the conn's input) */
    char *body;                  /* the decoded body; the handler may take it (set to NULL) */
    size_t body_len;
    char request_id[72];
    char trace_id[33];           /* W3C trace context: the client's trace id, or a new one */
    char trace_flags[3];         /* "01" sampled (the default for a new trace) */
    uint64_t start_ns;           /* uv_hrtime when the head was complete */
    struct accesslog_entry log;  /* written by server_request_done */
};

struct server_hooks {
    void (*on_drain)(void *ud);  /* pending bytes fell below SERVER_LOW_WATER */
    void (*on_abort)(void *ud);  /* the client went away */
    void *ud;
};

struct server_conn;

/* What the listener calls for every request. */
struct server_handlers {
    /* The head is parsed and checked; no body byte has been read. Return true to read
       the body and go on to on_request; false after answering with server_respond*
       (server_request_done is then the server's: the body is never read and, when one
       was announced, the connection closes once the answer is out). NULL: always go on. */
    bool (*on_head)(struct server_conn *c);
    /* The whole request is in; the handler ends it with server_request_done. */
    void (*on_request)(struct server_conn *c);
};

/* One listener and its connections, on one event loop. The fields are the server's;
   nconns may be read by a metrics scrape on another thread (relaxed). */
struct server {
    uv_loop_t *loop;
    const struct cfg_server *cfg;   /* limits; points into a config the owner keeps alive */
    struct tls_server *tls;         /* NULL: plain HTTP */
    struct server_handlers handlers;
    void *ctx;                      /* the handlers' context (server_conn_context) */
    /* A connection closed; the owner stops the loop once draining and nconns is 0. */
    void (*on_conn_closed)(struct server *s);
    uv_tcp_t listener;
    uv_check_t flush_check;         /* sends what handlers wrote after the I/O callbacks of */
    uv_prepare_t flush_prepare;     /* an iteration, and before the loop blocks */
    /* The connections' deadlines: one list per kind of wait, each ordered by deadline, and
       one timer due at the earliest (server.c, "deadlines"); no timer per connection. */
    uv_timer_t timer;
    struct server_conn *timer_head[SERVER_DEADLINE_LISTS], *timer_tail[SERVER_DEADLINE_LISTS];
    uint64_t timer_due; /* when `timer` fires; UINT64_MAX: stopped */
    struct server_conn *flush_list; /* connections with output gathered in this iteration */
    struct reqid ids;
    unsigned nconns;
    bool draining;
    void *owner;                    /* for on_conn_closed */
};

/* Sets up s on loop (handles, request ids); listens on listen_fd (owned from now on).
   handlers and ctx: see struct server_handlers. Returns 0 or a libuv error. */
int server_init(struct server *s, uv_loop_t *loop, int listen_fd, const struct cfg_server *cfg,
                struct tls_server *tls, const struct server_handlers *handlers, void *ctx);
/* Stop accepting; close idle connections; busy ones close after their request. */
void server_drain(struct server *s);
/* Closes the server's own handles (after its connections are gone or abandoned). */
void server_close(struct server *s);

/* The handlers' context given to server_init. */
void *server_conn_context(struct server_conn *c);
/* Whether the connection's listener serves HTTPS. */
bool server_conn_tls(const struct server_conn *c);
/* A fresh id (16 hex digits and a NUL, at least 17 bytes) from the connection's server. */
void server_conn_new_id(struct server_conn *c, char *out);
const struct server_request *server_conn_request(struct server_conn *c);
struct server_request *server_conn_request_mut(struct server_conn *c);
void server_set_hooks(struct server_conn *c, const struct server_hooks *hooks);

/* A whole response. extra_headers: "Name: value\r\n" lines or NULL. */
void server_respond(struct server_conn *c, int status, const char *content_type,
                    const char *extra_headers, const char *body, size_t len);
/* An OpenAI-shaped error response (errors.c); extra_headers as above. */
void server_respond_error(struct server_conn *c, enum gw_err e, const char *message,
                          const char *extra_headers);

/* A streamed response: chunked, or close-delimited for an HTTP/1.0 client. Returns 0 or
   -errno (client gone). */
int server_stream_begin(struct server_conn *c, int status, const char *content_type,
                        const char *extra_headers);
int server_stream_write(struct server_conn *c, const char *data, size_t len);
/* Several pieces as one chunk (e.g. "data: ", payload, "\n\n"). */
int server_stream_writev(struct server_conn *c, const uv_buf_t *parts, unsigned nparts);
void server_stream_end(struct server_conn *c);
/* Ends the connection after the response (no keep-alive). */
void server_set_close(struct server_conn *c);

size_t server_pending_bytes(const struct server_conn *c);
size_t server_bytes_out(const struct server_conn *c);
bool server_conn_gone(const struct server_conn *c);

/* The handler is finished with the request: the connection goes on with the next. */
void server_request_done(struct server_conn *c);

#endif
