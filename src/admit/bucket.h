/*
 * bucket — one token bucket of a per-minute limit, in exact integers: the unit
 * of every requests-per-minute and tokens-per-minute limit in the gateway (a
 * key's and a model's limits in ratelimit.c, a deployment's rpm in
 * route/health.c).
 *
 * A bucket holds one minute's allowance, starts full and refills continuously
 * at limit per minute, so a client may burst up to its whole minute and then
 * goes at the steady rate. Its level counts units of 1/60000 of a request (or
 * token): refilling `limit` units per millisecond fills `limit` whole ones per
 * minute, so "60 rpm" has room again exactly 1000 ms after it ran dry. A level
 * may go below empty (a debt, at most one minute deep) when a request turns
 * out to have used more than was taken for it.
 *
 * It owns nothing and never locks or reads the clock: its owner guards it and
 * passes now_ms from any monotonic millisecond clock (a now_ms older than one
 * seen counts as no time passing). A limit of 0 is unlimited: every call is a
 * no-op and every wait 0.
 */
#ifndef UNBUSY_BUCKET_H
#define UNBUSY_BUCKET_H

#include <stdint.h>

#define BUCKET_UNITS 60000ll /* one whole request or token */

struct bucket {
    uint32_t limit; /* per minute; 0: unlimited */
    int64_t level;  /* units; may be negative (a debt), down to -capacity */
    uint64_t at_ms; /* when level was last brought up to date */
};

/* A new limit: a bucket that was unlimited starts full, one that was limited keeps its
   level (clamped to the new capacity). */
void bucket_set_limit(struct bucket *b, uint32_t limit, uint64_t now_ms);
/* Brings the level up to now_ms. Call before the others that read the level. */
void bucket_refill(struct bucket *b, uint64_t now_ms);
/* limit × BUCKET_UNITS: a whole minute. */
int64_t bucket_capacity(const struct bucket *b);
/* Milliseconds until the bucket holds need units (need <= capacity); 0: it does now. */
uint64_t bucket_wait(const struct bucket *b, int64_t need);
/* Takes units (down to -capacity at most) / gives them back (up to capacity). */
void bucket_take(struct bucket *b, int64_t units);
void bucket_give(struct bucket *b, int64_t units);
/* Whole units in the bucket now (0 when empty or in debt). */
uint32_t bucket_remaining(const struct bucket *b);

#endif
