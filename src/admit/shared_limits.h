/*
 * shared_limits — the key's and the model's RPM/TPM buckets shared by every
 * replica through Redis, with a small local lease so most requests cost no
 * round trip at all.
 *
 * In Redis each limited name has one bucket (a hash PREFIXrl:k:LIMIT_ID or
 * PREFIXrl:m:MODEL with its request and token levels and when they were last
 * brought up to date), the same bucket as admit/bucket.h: a minute's
 * allowance, starting full, refilling continuously, in units of 1/60000. One
 * Lua script (EVALSHA, EVAL when Redis does not know it yet) takes one request
 * and the token estimate from every bucket of the request atomically, or
 * nothing and says how long until they would fit; the clock is Redis's
 * (TIME), so replicas' clocks do not matter. A bucket untouched for two
 * minutes is full again, so its key expires then: Redis holds only the names
 * in use.
 *
 * The lease: when a bucket has plenty left, the same take also hands this
 * replica up to `lease` more requests (and lease x the token estimate, at
 * least lease x 1000 tokens), never more than a quarter of what is left, so near the limit every
 * request asks Redis and the total across replicas stays exact. A request that finds a lease on
 * each of its buckets takes from them here under a mutex (no round trip). What a request used less
 * or more than its estimate goes back to or is charged to the local lease. Leases older than
 * SHARED_LEASE_TTL_MS (and all of them when Redis comes back) are returned by shared_limits_expire,
 * which the main loop's sync runs (route/shared_health.c).
 *
 * A key's max_concurrency is shared too: each of its requests is a member of
 * a sorted set PREFIXcc:k:LIMIT_ID (scored by when it stops counting unless
 * refreshed), added by the same take and removed when the request ends;
 * such requests take no lease, so each costs one round trip.
 *
 * When Redis is down or slow the local buckets (ratelimit.h) decide alone:
 * the limits are then per replica. They run always, before this; so with
 * Redis up a request passes both and the tighter one wins.
 *
 * Who calls it: the admission step step_shared.c (shared_limits_lease_take,
 * shared_limits_command, shared_limits_read_take, shared_limits_credit,
 * shared_limits_adjust), the main loop's sync (shared_limits_expire), main.c
 * (new, free), /metrics (shared_limits_stats). Thread-safe.
 */
#ifndef UNBUSY_SHARED_LIMITS_H
#define UNBUSY_SHARED_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config_redis.h"
#include "proto/resp.h"

#define SHARED_LEASE_TTL_MS 1000     /* an unused lease goes back to Redis after this */
#define SHARED_MAX_LEASES 4096       /* buckets with a lease at once (more: no lease) */
#define SHARED_MAX_NAME 160          /* a longer limit name is not shared (local only) */
#define SHARED_LEASE_SHARE 4         /* a lease is at most 1/SHARED_LEASE_SHARE of what is left */
#define SHARED_MAX_INFLIGHT 8192     /* requests counted in a shared concurrency bound at once */
#define SHARED_INFLIGHT_TTL_MS 10000 /* an in-flight entry not refreshed this long is dropped */

/* One bucket of a request: the key's or the model's. */
struct shared_bucket {
    char scope;                 /* 'k' key, 'm' model */
    char name[SHARED_MAX_NAME]; /* the key's limit id, or the model's name */
    uint32_t rpm, tpm;          /* 0: not limited in that dimension */
};

/* A request counted in its key's concurrency bound across replicas. */
struct shared_inflight {
    char name[SHARED_MAX_NAME]; /* the key's limit id */
    uint32_t max;               /* its max_concurrency */
    uint64_t seq;               /* its number in this replica's table (set by _add) */
};

/* What a take answered. */
struct shared_take {
    bool admitted;
    uint64_t wait_ms;         /* not admitted: until every bucket would have room */
    uint32_t extra[2];        /* admitted: requests leased to this replica, per bucket */
    uint64_t extra_tokens[2]; /* and tokens */
    bool noscript;            /* Redis does not know the script: send it again with EVAL */
    bool too_many; /* not admitted: the key has max_concurrency in flight across replicas */
};

/* Why a request was decided without Redis (metrics). */
enum shared_fallback {
    SHARED_FALLBACK_DOWN,    /* no connection */
    SHARED_FALLBACK_TIMEOUT, /* no reply within redis.timeout */
    SHARED_FALLBACK_ERROR,   /* an error reply, or the connection lost */
    SHARED_FALLBACK__COUNT
};

struct shared_limits_stats {
    uint64_t lease_hits; /* requests served from a lease, no round trip */
    uint64_t round_trips;
    uint64_t refused; /* 429s the shared buckets gave */
    uint64_t fallbacks[SHARED_FALLBACK__COUNT];
    uint64_t returned; /* leases given back to Redis */
    uint32_t leases;   /* buckets with a lease now */
};

struct shared_limits;

/* cfg must outlive the result. NULL when out of memory. */
struct shared_limits *shared_limits_new(const struct cfg_redis *cfg);
void shared_limits_free(struct shared_limits *sl);
const struct cfg_redis *shared_limits_config(const struct shared_limits *sl);

/* Takes one request and tokens from the local lease of every bucket in b[0..n), all or
   nothing. True when taken (no round trip needed). */
bool shared_limits_lease_take(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                              uint64_t tokens, uint64_t now_ms);

/* Appends the take command for b[0..n), tokens and (cc not NULL) one more request in flight
   for the key to out (EVALSHA, or EVAL with the script when eval). With cc no lease is asked
   for: each such request must be counted in Redis. 0 or -ENOBUFS/-ENOMEM. */
int shared_limits_command(struct shared_limits *sl, struct buf *out, const struct shared_bucket *b,
                          size_t n, uint64_t tokens, bool eval, const struct shared_inflight *cc);

/*
 * The in-flight table: a request counted across replicas is added before its take is sent
 * and removed when it ends; the main loop's sync refreshes every entry in Redis
 * (shared_limits_inflight_refresh), so the entries of a replica that died expire after
 * SHARED_INFLIGHT_TTL_MS. _add sets cc->seq; false when the table is full (the request is
 * then bounded by its replica alone). _leave appends the ZREM that takes it out of Redis.
 */
bool shared_limits_inflight_add(struct shared_limits *sl, struct shared_inflight *cc);
void shared_limits_inflight_remove(struct shared_limits *sl, const struct shared_inflight *cc);
int shared_limits_leave_command(struct shared_limits *sl, struct buf *out,
                                const struct shared_inflight *cc);
/* Appends refresh commands for every entry (grouped by key, at most max commands). Returns
   how many. */
size_t shared_limits_inflight_refresh(struct shared_limits *sl, struct buf *out, size_t max);
/* This replica's random id (16 hex digits), in what it writes to Redis. */
const char *shared_limits_replica(const struct shared_limits *sl);

/* Reads a take's reply. 0, or -1 when it is not one (an error reply other than
   NOSCRIPT, or a malformed one). */
int shared_limits_read_take(const struct resp_reply *reply, struct shared_take *out);

/* Adds a take's extra requests and tokens to the buckets' local leases. */
void shared_limits_credit(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                          const uint32_t *extra, const uint64_t *extra_tokens, uint64_t now_ms);

/* A request that took from Redis or a lease used actual tokens instead of the estimate: the
   difference goes back to (or is charged to) the buckets' local leases. */
void shared_limits_adjust(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                          uint64_t estimate, uint64_t actual, uint64_t now_ms);

/*
 * Leases older than SHARED_LEASE_TTL_MS at now_ms (all when all is true) as one command
 * per lease returning what is left to Redis, appended to out (at most max commands);
 * those leases are emptied. Returns the number of commands appended.
 */
size_t shared_limits_expire(struct shared_limits *sl, struct buf *out, uint64_t now_ms, bool all,
                            size_t max);

void shared_limits_count(struct shared_limits *sl, enum shared_fallback why);
void shared_limits_count_round_trip(struct shared_limits *sl, bool refused);
void shared_limits_stats(struct shared_limits *sl, struct shared_limits_stats *out);

/* The estimate both the local and the shared rate limits charge up front: the prompt's
   characters / 4 plus max_tokens (1024 when absent). */
uint64_t shared_limits_estimate(uint64_t prompt_chars, bool has_max_tokens, int64_t max_tokens);

#endif
