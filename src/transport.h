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
 */
#ifndef UNBUSY_TRANSPORT_H
#define UNBUSY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"

/* Why a connection failed; the router learns from these (kept apart per class). */
enum transport_err {
    TRANSPORT_ERR_DNS = 1,
    TRANSPORT_ERR_CONNECT,       /* refused, unreachable */
    TRANSPORT_ERR_CONNECT_TIMEOUT,
    TRANSPORT_ERR_TLS,           /* handshake or verification failed */
    TRANSPORT_ERR_IO,            /* reset / write error after connect */
    TRANSPORT_ERR_EOF,           /* the peer closed the connection */
};

const char *transport_err_name(enum transport_err e);

/* The first member of every implementation's connection struct. */
struct transport_conn {
    const struct transport_ops *ops;
};

struct transport_events {
    /* Ready to write. reused: the connection came from the pool (a failure before
       any response byte on a reused connection may be a stale keep-alive). */
    void (*on_connect)(void *ud, bool reused);
    /* Bytes from the provider (already decrypted). */
    void (*on_data)(void *ud, const char *data, size_t len);
    /* The connection failed or closed; no callback follows. The conn must still be
       given back with transport_release(conn, false). */
    void (*on_error)(void *ud, enum transport_err err);
};

struct transport_pool;

struct transport_ops {
    const char *name;
    int (*open)(struct transport_pool *pool, const struct cfg_provider *p, uint32_t connect_timeout_ms,
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

/* One per worker loop. transport_pool_close closes every idle connection and
   calls done(ud) from the loop once all handles are closed. */
struct transport_pool *transport_pool_new(uv_loop_t *loop);
void transport_pool_close(struct transport_pool *pool, void (*done)(void *ud), void *ud);
uv_loop_t *transport_pool_loop(struct transport_pool *pool);

/* Common front door: picks the ops for the provider and opens. Returns 0 or -errno. */
int transport_open(struct transport_pool *pool, const struct cfg_provider *p, uint32_t connect_timeout_ms,
                   const struct transport_events *ev, void *ud, struct transport_conn **out);
int transport_write(struct transport_conn *c, const char *data, size_t len);
void transport_pause(struct transport_conn *c, bool paused);
void transport_release(struct transport_conn *c, bool keep_alive);

/* Counters for metrics (per pool). */
struct transport_stats {
    unsigned long opened, reused, idle_now, failed;
};
void transport_pool_stats(const struct transport_pool *pool, struct transport_stats *out);

#endif
