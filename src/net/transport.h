/*
 * transport — byte streams to a provider, behind one ops table.
 *
 * Implementations: tcp (plain TCP or TLS through OpenSSL memory BIOs, in
 * transport_tcp.c) and sim (simulated providers inside the binary, in
 * sim.c). The HTTP client (uphttp.c) speaks HTTP/1.1 over whichever the
 * provider's config selects, so the demo's simulated providers go through the
 * same parsing, deadlines and relay as real ones.
 *
 * Each worker thread has its own struct transport_pool (idle keep-alive
 * connections per provider, bounded by max_idle_conns, closed after
 * idle_conn_timeout_ms). Nothing here is shared between threads.
 *
 * Callbacks are never made from inside a call into the transport (no
 * synchronous callback from an API call): transport_open always reports
 * on_connect from the loop, even for a pooled connection.
 *
 * The pool (transport.c) keys idle connections by the provider's identity as
 * values — ops, host, port, tls, ca_file, tls_verify — never by the
 * cfg_provider pointer, so a connection opened under one config snapshot is
 * reused under the next one when the provider is unchanged. The second half
 * of this header is the pool's side for implementations.
 */
#ifndef UNBUSY_TRANSPORT_H
#define UNBUSY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config/config.h"

/* Used when neither the caller nor the provider gives a connect timeout. */
#define TRANSPORT_DEFAULT_CONNECT_TIMEOUT_MS 10000u

/* Why a connection failed; the router learns from these (kept apart per class). */
enum transport_err {
    TRANSPORT_ERR_DNS = 1,
    TRANSPORT_ERR_CONNECT, /* refused, unreachable */
    TRANSPORT_ERR_CONNECT_TIMEOUT,
    TRANSPORT_ERR_TLS, /* handshake or verification failed */
    TRANSPORT_ERR_IO,  /* reset / write error after connect */
    TRANSPORT_ERR_EOF, /* the peer closed the connection */
};

/* A short lowercase constant ("dns", "connect_timeout", ...) for logs and metric labels. */
const char *transport_err_name(enum transport_err e);

struct transport_bucket;

/* The first member of every implementation's connection struct. */
struct transport_conn {
    const struct transport_ops *ops;
    /* Pool bookkeeping, owned by transport.c while the connection is idle
       (idle_bucket != NULL); implementations leave these zeroed. */
    struct transport_conn *idle_next, *idle_prev;
    struct transport_bucket *idle_bucket;
    uint64_t idle_since_ms;
};

struct transport_events {
    /* Ready to write. reused: the connection came from the pool (a failure before
       any response byte on a reused connection may be a stale keep-alive). */
    void (*on_connect)(void *ud, bool reused);
    /* Bytes from the provider (already decrypted), in the transport's own buffer: the
       receiver may change them during the call (uphttp de-frames a chunked body where it
       lies), and they are not valid after it. */
    void (*on_data)(void *ud, char *data, size_t len);
    /* The connection failed or closed; no callback follows. The conn must still be
       given back with transport_release(conn, false). */
    void (*on_error)(void *ud, enum transport_err err);
};

struct transport_pool;

struct transport_ops {
    const char *name;
    /* addr: connect there instead of resolving p->host (NULL: resolve); TLS names
       p->host either way. */
    int (*open)(struct transport_pool *pool, const struct cfg_provider *p,
                const struct sockaddr *addr, uint32_t connect_timeout_ms,
                const struct transport_events *ev, void *ud, struct transport_conn **out);
    int (*write)(struct transport_conn *c, const char *data, size_t len);
    void (*pause)(struct transport_conn *c, bool paused);
    /* Give the connection back: keep_alive true puts it in the idle pool (if the
       pool has room and the conn is healthy), false closes it. No callback to
       the old ud after this returns. */
    void (*release)(struct transport_conn *c, bool keep_alive);
};

extern const struct transport_ops transport_tcp_ops;
extern const struct transport_ops transport_sim_ops;

/* The ops table for a provider (tcp or sim). */
const struct transport_ops *transport_for(const struct cfg_provider *p);

/* One per worker loop. Returns NULL when out of memory. */
struct transport_pool *transport_pool_new(uv_loop_t *loop);
/* Closes every idle connection and refuses new opens (-ESHUTDOWN); a connection
   released later is closed, not kept. done(ud) is called from the loop once
   every handle the pool or its connections own is closed — so after every
   connection still out has been released too — and no TLS context is still
   loading in the thread pool. The pool is freed just before done. */
void transport_pool_close(struct transport_pool *pool, void (*done)(void *ud), void *ud);
uv_loop_t *transport_pool_loop(struct transport_pool *pool);
/* Optional: starts loading what a first connection to p would need (its TLS CA
   store, in the thread pool), so that cost does not land inside the first
   request's connect timeout. Call it for each provider at start and reload. */
void transport_pool_warm(struct transport_pool *pool, const struct cfg_provider *p);

/*
 * Common front door: picks the ops for the provider and opens. Returns 0 or
 * -errno (no callback follows an error return). On 0, *out is the connection
 * and exactly one of on_connect or on_error follows from the loop; the caller
 * owns *out until transport_release. connect_timeout_ms covers DNS, TCP and
 * TLS; 0 means the provider's connect_timeout_ms, then
 * TRANSPORT_DEFAULT_CONNECT_TIMEOUT_MS. The events table must outlive the
 * connection; ud is passed back untouched.
 */
int transport_open(struct transport_pool *pool, const struct cfg_provider *p,
                   uint32_t connect_timeout_ms, const struct transport_events *ev, void *ud,
                   struct transport_conn **out);
/* The same to one address of p's host (a discovered endpoint, route/endpoints.h): no DNS,
   TLS's SNI and verification still name p->host, and idle connections are pooled per
   address. addr NULL: transport_open. */
int transport_open_at(struct transport_pool *pool, const struct cfg_provider *p,
                      const struct sockaddr *addr, uint32_t connect_timeout_ms,
                      const struct transport_events *ev, void *ud, struct transport_conn **out);
/* Queues bytes after on_connect (the data is copied). Returns 0, -ENOTCONN before
   on_connect, -EPIPE after on_error, -ENOBUFS past the write-queue bound. A write
   that fails later is reported as on_error(TRANSPORT_ERR_IO). */
int transport_write(struct transport_conn *c, const char *data, size_t len);
/* Back-pressure: paused stops on_data (and reading from the socket) until
   unpaused. Resuming never calls on_data from inside this call. */
void transport_pause(struct transport_conn *c, bool paused);
void transport_release(struct transport_conn *c, bool keep_alive);

/* Counters for metrics (per pool). */
struct transport_stats {
    unsigned long opened;   /* new connections established (TCP, and TLS when on) */
    unsigned long reused;   /* opens served from the idle pool */
    unsigned long idle_now; /* idle connections held right now */
    unsigned long failed;   /* new connection attempts that failed before on_connect */
    unsigned long reads_postponed; /* reads left to a later loop iteration (read_budget.h) */
};
void transport_pool_stats(const struct transport_pool *pool, struct transport_stats *out);

/*
 * ---- The pool's side, for transport implementations ----
 *
 * A bucket holds the idle connections of one provider identity. Every live
 * connection holds one reference on its bucket from open to its final free
 * (idle or not), which also keeps the pool alive until it is gone.
 */

/* Finds or creates the bucket for (ops, p) and takes a reference; its bounds
   (max_idle_conns, idle_conn_timeout_ms) follow the latest p seen. NULL with
   *err = -ENOMEM, or -ESHUTDOWN once the pool is closing. */
struct transport_bucket *transport_pool_bucket(struct transport_pool *pool,
                                               const struct transport_ops *ops,
                                               const struct cfg_provider *p, int *err);
/* The same for connections to one address of p's host (addr NULL: transport_pool_bucket). */
struct transport_bucket *transport_pool_bucket_at(struct transport_pool *pool,
                                                  const struct transport_ops *ops,
                                                  const struct cfg_provider *p,
                                                  const struct sockaddr *addr, int *err);
void transport_bucket_unref(struct transport_bucket *b);
struct transport_pool *transport_bucket_pool(const struct transport_bucket *b);
/* The most recently parked idle connection, removed from the pool (counted as
   reused), or NULL. */
struct transport_conn *transport_bucket_take(struct transport_bucket *b);
/* Parks c as idle. false when the bucket is full, pooling is off for the
   provider (max_idle_conns or idle_conn_timeout_ms 0) or the pool is closing:
   the caller closes c then. When an idle connection outlives the idle timeout,
   or the pool closes, the pool removes it and calls c->ops->release(c, false). */
bool transport_bucket_park(struct transport_bucket *b, struct transport_conn *c);
/* Removes an idle connection that died (peer closed, unexpected bytes). */
void transport_bucket_unpark(struct transport_conn *c);
/* Outcome of a new connection attempt, for the counters. */
void transport_pool_count_open(struct transport_pool *pool, bool ok);
/* The pool's bound on upstream reading per loop iteration (read_budget.h); it lives until the
   pool's last connection is gone. */
struct read_budget *transport_pool_read_budget(struct transport_pool *pool);
/* The pool's TLS context cache (struct tls_ctx_cache, tls.h), created on first
   use; NULL when out of memory. Freed with the pool. */
struct tls_ctx_cache *transport_pool_tls(struct transport_pool *pool);

#endif
