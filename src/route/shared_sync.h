/*
 * shared_sync — the main loop's half of the state replicas share through
 * Redis (redis:): breaker states, returning unused rate-limit leases, and the
 * unbusy_redis_* metrics.
 *
 * Every redis.sync_interval (default 250 ms), with its own Redis client:
 *
 *  - publish: a deployment whose breaker opened here is written as
 *    PREFIXbreaker:ID = this replica's id, expiring when the breaker's open
 *    time ends (SET ... PX); when it closes again here the key is deleted
 *    (if it is still ours). ID is a hash of provider name, model and base
 *    URL, so the replicas agree on it and no URL (with its credentials) is
 *    ever a key.
 *  - read: every deployment's key, with its time to live, in one script
 *    call per 64 deployments. A breaker open on another replica keeps the
 *    deployment out here for the rest of that open time (health_cooldown: a
 *    health signal, not a copy of the other breaker), logged once per
 *    opening. So an opening is seen elsewhere within two intervals (0.5 s by
 *    default).
 *  - budgets' spend: what this replica spent since its last report is
 *    added to the period's shared counter, whose new total tells what the
 *    others spent (admit/shared_spend.h); at most SHARED_SYNC_SPEND_MAX
 *    counters per tick, round robin.
 *  - the requests in flight here that count in their key's concurrency
 *    across replicas are refreshed (shared_limits_inflight_refresh), so a
 *    replica that dies frees its slots after SHARED_INFLIGHT_TTL_MS.
 *  - leases older than SHARED_LEASE_TTL_MS go back to Redis's buckets
 *    (shared_limits_expire); all of them when the connection comes back.
 *
 * While Redis is down nothing is published or read: each replica's breakers
 * are its own, and a deployment cooled down by a remote breaker comes back
 * when that cooldown ends.
 *
 * Who calls it: main.c (start, stop; shared_sync_render as a metrics
 * source).
 */
#ifndef UNBUSY_SHARED_SYNC_H
#define UNBUSY_SHARED_SYNC_H

#include <uv.h>

#include "admit/shared_limits.h"
#include "admit/shared_spend.h"
#include "base/buf.h"
#include "net/redis.h"
#include "route/runtime.h"

#define SHARED_SYNC_CHUNK 64      /* deployments read per script call */
#define SHARED_SYNC_SPEND_MAX 128 /* budget counters reported per tick */

struct shared_sync;

/* Starts on loop (the main one). stats: the process's Redis counters, also given to the
   workers' clients. NULL when out of memory. */
struct shared_sync *shared_sync_start(uv_loop_t *loop, struct runtime *rt, struct shared_limits *sl,
                                      struct redis_stats *stats);
/* Also reports budgets' spend and reads the other replicas' (admit/shared_spend.h); ss
   (may be NULL: no budgets) must outlive the loop's last run. */
void shared_sync_spend(struct shared_sync *s, struct shared_spend *ss);
/* Returns the leases it can (one last try), closes its client and handles, then frees
   itself from the loop. NULL is fine. */
void shared_sync_stop(struct shared_sync *s);

/* Appends the unbusy_redis_* families (Prometheus text) to out; ud is the shared_sync. */
void shared_sync_render(void *ud, struct buf *out);

/* The key of a deployment's breaker (exposed for tests): PREFIX "breaker:" and 16 hex
   digits of SHA-256(provider \0 model \0 base_url). */
void shared_sync_breaker_key(const char *prefix, const char *provider, const char *model,
                             const char *base_url, char *out, size_t cap);

#endif
