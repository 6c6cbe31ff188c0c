/*
 * proxy — a proxied API request from routing to the last byte: picks the
 * model's deployments in order, runs one attempt at a time over uphttp,
 * watches the first-token and stall deadlines, relays the stream (or
 * assembles the JSON answer for a non-stream client) and fails over while
 * the client has seen nothing. One finalize path ends every request.
 *
 * struct proxy_env is what the request path of one event loop works with:
 * the config snapshot and runtime it serves, its upstream connection pool,
 * its metrics shard, the shared admission services (keys, rate limits,
 * ledger, budgets) and the ready list through which a queued request is
 * resumed on its own loop. The composition root fills one per worker thread
 * (proxy_env_init) and hands it to the server as the handlers' context, so
 * every handler above the server finds it with proxy_env_of(conn).
 */
#ifndef UNBUSY_PROXY_H
#define UNBUSY_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/server.h"

struct config;
struct runtime;
struct transport_pool;
struct metrics_shard;
struct keys;
struct ratelimit;
struct ledger;
struct budgets;
struct shared_limits;
struct redis;
struct admission_waiter;
struct proxy_gen;

struct proxy_env {
    unsigned id;                  /* the worker's number */
    uv_loop_t *loop;
    struct config *cfg;           /* the snapshot new requests use (the owner holds a reference) */
    struct runtime *rt;           /* its learnt state, shared by all workers */
    struct transport_pool *pool;  /* upstream connections of this loop */
    struct metrics_shard *metrics; /* this loop's counters; NULL: none */
    struct keys *keys;            /* virtual keys (shared); NULL: none configured */
    struct ratelimit *rl;         /* rate-limit buckets (shared); NULL: none */
    struct ledger *ledger;        /* the usage ledger (shared); NULL: none */
    struct budgets *budgets;      /* per-key budgets (shared); NULL: none */
    struct shared_limits *shared; /* limits shared across replicas (redis:); NULL: none */
    struct redis *redis;          /* this loop's Redis client; NULL: none */
    uint64_t rng;                 /* xorshift state for balancing and jitter */
    unsigned inflight;            /* requests being answered (read by a metrics scrape) */
    uv_async_t admit_async;       /* queued requests that may start now (from any thread) */
    pthread_mutex_t admit_lock;
    struct admission_waiter *admit_ready; /* guarded by admit_lock */
    struct proxy_gen *gen;        /* a reload's next generation (proxy_gen.h) */
    void (*close_done)(void *ud); /* proxy_env_close's */
    void *close_ud;
};

/* Sets up env on loop: the upstream pool (CA stores warmed for cfg's TLS providers) and
   the admission ready list. The caller fills the shared services. 0 or -errno. */
int proxy_env_init(struct proxy_env *env, unsigned id, uv_loop_t *loop, struct config *cfg,
                   struct runtime *rt);
/* Closes the pool and the handles; done(ud) once everything is closed. */
void proxy_env_close(struct proxy_env *env, void (*done)(void *ud), void *ud);
/* admission_ready_fn (runtime_new): hands a waiter to the loop of its env (any thread). */
void proxy_env_admission_ready(void *owner, struct admission_waiter *w);

static inline struct proxy_env *proxy_env_of(struct server_conn *c)
{
    return (struct proxy_env *)server_conn_context(c);
}

enum proxy_api {
    PROXY_API_CHAT = 1,
    PROXY_API_COMPLETIONS,
    PROXY_API_EMBEDDINGS,
};

/*
 * The head of a proxied request is complete and its body not read yet: checks
 * the client's key (Authorization against the virtual keys) so that an
 * unknown client never makes unbusy read a body. Returns true to go on; false
 * after answering 401. proxy_start checks again with the body (a key may be
 * disabled in between) and keeps the key for the request.
 */
bool proxy_check_head(struct server_conn *c);

/* Takes over the connection's current request; ends it with server_request_done. */
void proxy_start(struct server_conn *c, enum proxy_api api);


#endif
