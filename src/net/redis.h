/*
 * redis — a non-blocking Redis client on one libuv loop: one connection,
 * TCP or TLS (the upstream transport, net/transport.h, with its memory-BIO
 * TLS), AUTH and SELECT on connect, pipelined commands with a bounded queue
 * of outstanding ones, and reconnection with backoff.
 *
 * Each loop that talks to Redis has its own client (every worker's loop and
 * the main loop): a reply is handled on the loop that asked, with no lock and
 * no hand-over between threads. Replies come in the order commands were sent,
 * so the outstanding commands are a ring of at most max_pending; a command
 * sent while the ring is full, or while the connection is not up, is refused
 * at once (-ENOBUFS / -ENOTCONN): the caller then decides locally. Nothing is
 * queued while the connection is down, so a Redis outage never holds memory
 * or requests.
 *
 *   DOWN ──(backoff over)──▶ CONNECTING ──(TCP, TLS)──▶ HANDSHAKE ──(AUTH, SELECT, PING ok)──▶ UP
 *    ▲                                                                                        │
 *    └──── any error, a reply overdue by connect_timeout, a protocol error: every ─────────────┘
 *          outstanding command gets REDIS_ERR_LOST; backoff 100 ms, doubling to 3 s
 *
 * Each transition is logged once ("redis (worker 0): up", "... lost: why");
 * the URL in logs never holds the password. Counters go to a struct
 * redis_stats that the clients of one process share (atomics), for
 * /metrics.
 *
 * Who calls it: admit/shared_limits.c (rate-limit takes and returns) and
 * route/shared_health.c (breaker states) through redis_send; main.c creates
 * one client per loop and worker.c closes a worker's with its loop.
 */
#ifndef UNBUSY_REDIS_H
#define UNBUSY_REDIS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config_redis.h"
#include "proto/resp.h"

#define REDIS_DEFAULT_MAX_PENDING 1024
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 3000
#define REDIS_LATENCY_BUCKETS 8

/* Why a command got no reply (its callback's err). */
#define REDIS_ERR_LOST (-1)   /* the connection was lost before the reply */
#define REDIS_ERR_CLOSED (-2) /* the client was closed */

/* Shared by the clients of a process; every field atomic. */
struct redis_stats {
    atomic_uint clients;    /* clients open */
    atomic_uint clients_up; /* of those, up now */
    atomic_ullong sent;     /* commands written */
    atomic_ullong replies;  /* replies received (error replies included) */
    atomic_ullong error_replies;
    atomic_ullong refused;  /* redis_send refused: down or the ring full */
    atomic_ullong lost;     /* commands that got REDIS_ERR_LOST */
    atomic_ullong connects; /* connections that reached UP */
    atomic_ullong failures; /* connection attempts or connections that failed */
    /* round-trip times: le 100 µs, 250 µs, 500 µs, 1 ms, 2.5 ms, 10 ms, 50 ms, +Inf */
    atomic_ullong latency_buckets[REDIS_LATENCY_BUCKETS];
    atomic_ullong latency_sum_us;
};
extern const uint64_t redis_latency_bounds_us[REDIS_LATENCY_BUCKETS - 1];

/* A reply (err 0: reply is valid until the callback returns; an error reply is a reply)
   or no reply (err REDIS_ERR_*, reply NULL). */
typedef void (*redis_reply_fn)(void *ud, const struct resp_reply *reply, int err);

struct redis_options {
    const struct cfg_redis *cfg; /* must outlive the client */
    const char *name;            /* for logs: "worker 0", "main" */
    struct redis_stats *stats;   /* may be NULL */
    uint32_t max_pending;        /* 0: REDIS_DEFAULT_MAX_PENDING */
    /* May be NULL: told when the client comes up or goes down (on its loop). */
    void (*on_state)(void *ud, bool up);
    void *ud;
};

struct redis;

/* Starts connecting (from the loop, never inside this call). NULL when out of memory. */
struct redis *redis_new(uv_loop_t *loop, const struct redis_options *o);

/* Closes the connection and the handles; every outstanding command gets REDIS_ERR_CLOSED
   (from the loop), then done(ud). NULL is fine (done is not called then). */
void redis_close(struct redis *r, void (*done)(void *ud), void *ud);

bool redis_is_up(const struct redis *r);

/*
 * Sends one command already written with resp_command (copied). On 0, cb(ud, ...) follows
 * exactly once from the loop, unless redis_forget(*ticket) comes first; *ticket (may be
 * NULL) names it. -ENOTCONN (not up), -ENOBUFS (the ring is full or the write queue
 * is), -ENOMEM: refused, no callback.
 */
int redis_send(struct redis *r, const char *cmd, size_t len, redis_reply_fn cb, void *ud,
               uint64_t *ticket);
/* Sends ncmds commands written one after the other in cmds, whose replies nobody reads
   (returns, publications): one write, ncmds ring slots. 0 or as redis_send. */
int redis_send_batch(struct redis *r, const char *cmds, size_t len, uint32_t ncmds);
/* The command's callback will not be called (its reply is read and dropped). */
void redis_forget(struct redis *r, uint64_t ticket);

/* Commands sent and not yet answered. */
uint32_t redis_outstanding(const struct redis *r);

#endif
