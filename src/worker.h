/*
 * worker — one event loop per thread, each with its own listening socket on
 * the shared port (SO_REUSEPORT), its own connections and its own upstream
 * connection pool. Nothing on the request path is shared between workers
 * except the immutable config snapshot.
 *
 * main.c creates the workers (worker_start), asks them to drain on SIGTERM
 * (worker_drain) and joins them (worker_join).
 */
#ifndef UNBUSY_WORKER_H
#define UNBUSY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "route/runtime.h"
#include "net/transport.h"

struct server_conn;
struct metrics_shard;
struct keys;
struct ratelimit;
struct admission_waiter;
struct tls_server;

struct worker {
    unsigned id;
    uv_loop_t loop;
    uv_tcp_t listener;
    int listen_fd;
    uv_async_t wake;             /* drain requests from the main thread */
    uv_timer_t drain_timer;
    pthread_t thread;
    struct transport_pool *pool;
    struct config *cfg;          /* the snapshot new requests use (one reference held) */
    struct runtime *rt;          /* its learnt state, shared by all workers */
    struct server_conn *conns;   /* every open client connection (intrusive list) */
    struct server_conn *flush_list; /* connections with output gathered in this iteration */
    uv_check_t flush_check;      /* sends it after the I/O callbacks of an iteration, */
    uv_prepare_t flush_prepare;  /* and before the loop blocks (timer callbacks write too) */
    unsigned nconns;
    unsigned inflight;           /* requests being answered */
    atomic_bool drain_requested;
    bool draining;
    bool stopped;
    uint64_t rng;                /* xorshift state for request ids */
    uint64_t rr;                 /* round-robin cursor for equal-tier deployments */
    struct metrics_shard *metrics; /* this worker's counters (metrics.c); NULL: none */
    struct keys *keys;           /* virtual keys (shared); NULL: none configured */
    struct ratelimit *rl;        /* rate-limit buckets (shared); NULL: none */
    struct ledger *ledger;       /* the usage ledger (shared); NULL: none */
    struct budgets *budgets;     /* per-key budgets (shared); NULL: none */
    struct tls_server *tls;      /* the listener's certificate (shared); NULL: plain HTTP */
    uv_async_t admit_async;      /* queued requests that may start now (from any thread) */
    pthread_mutex_t admit_lock;
    struct admission_waiter *admit_ready; /* guarded by admit_lock */
};

/* Opens a listening socket bound to host:port with SO_REUSEPORT. Returns the fd or -errno;
   *bound_port gets the port actually bound (for port 0). */
int worker_listen_socket(const char *host, uint16_t port, uint16_t *bound_port);

/* Starts the worker thread on listen_fd (ownership passes to the worker). cfg: one reference
   is taken. Returns 0 or -errno. */
int worker_start(struct worker *w, unsigned id, int listen_fd, struct config *cfg, struct runtime *rt);
/* Asks the worker to stop accepting and finish its requests (thread-safe). */
void worker_drain(struct worker *w);
void worker_join(struct worker *w);

/* A client connection closed (server.c); a draining worker stops when none is left. */
void worker_conn_closed(struct worker *w);

/* admission_ready_fn: hands a waiter to its worker (any thread). */
void worker_admission_ready(void *owner, struct admission_waiter *w);

/* A fresh request id (16 hex digits) into out (at least 17 bytes). */
void worker_request_id(struct worker *w, char *out);

#endif
