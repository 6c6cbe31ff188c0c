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
#include "http/server.h"
#include "proxy/proxy.h"
#include "route/runtime.h"

/* The thread and its loop; the listener (struct server) and the request path's
   environment (struct proxy_env) live in it, each owning its own state. */
struct worker {
    unsigned id;
    uv_loop_t loop;
    uv_async_t wake;             /* drain requests from the main thread */
    uv_timer_t drain_timer;
    pthread_t thread;
    struct config *cfg;          /* the snapshot new requests use (one reference held) */
    struct server server;
    struct proxy_env env;        /* the handlers' context; main fills its shared services */
    atomic_bool drain_requested;
    bool stopped;
};

/* Opens a listening socket bound to host:port with SO_REUSEPORT. Returns the fd or -errno;
   *bound_port gets the port actually bound (for port 0). */
int worker_listen_socket(const char *host, uint16_t port, uint16_t *bound_port);

/* Prepares the worker's loop, server and environment (cfg: one reference is taken).
   main then fills w->env's shared services before worker_start. 0 or -errno. */
int worker_init(struct worker *w, unsigned id, struct config *cfg, struct runtime *rt);
/* Starts the thread serving listen_fd (ownership passes to the worker) with tls (NULL:
   plain HTTP) and the handlers. Returns 0 or -errno. */
int worker_start(struct worker *w, int listen_fd, struct tls_server *tls,
                 const struct server_handlers *handlers);
/* Asks the worker to stop accepting and finish its requests (thread-safe). */
void worker_drain(struct worker *w);
void worker_join(struct worker *w);


#endif
