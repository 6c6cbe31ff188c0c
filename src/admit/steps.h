/*
 * steps — the gateway's admission steps (one file each, step_*.c) and the
 * order they run in (steps.c, admit_steps):
 *
 *   key ─▶ budget ─▶ degrade ─▶ ratelimit ─▶ shared ─▶ queue
 *
 *   key        the priority class: the key's, or lower if the client asks
 *   budget     the key's budget: refuse (429 insufficient_quota) or send the
 *              request to the cheaper model the budget names
 *   degrade    above the model's load threshold: to its fallback model
 *   ratelimit  key and model RPM/TPM buckets and concurrency: 429 + Retry-After;
 *              settles the token estimate with what the request used
 *   shared     the same buckets shared by every replica through Redis (redis:):
 *              a lease or one round trip, bounded by redis.timeout, then local
 *   queue      the model's admission queue: start now, WAIT (keep-alives to a
 *              stream client) until a slot frees or the deadline, or shed
 *
 * The virtual key itself is looked up when the head arrives and the tiering
 * rules pick the model before the request exists (a rule's model must exist
 * for admission to have a queue to admit into); both stay with the request.
 */
#ifndef UNBUSY_ADMIT_STEPS_H
#define UNBUSY_ADMIT_STEPS_H

#include "admit/admission.h"
#include "admit/admit.h"

extern const struct admit_step admit_step_key;
extern const struct admit_step admit_step_budget;
extern const struct admit_step admit_step_degrade;
extern const struct admit_step admit_step_ratelimit;
extern const struct admit_step admit_step_shared;
extern const struct admit_step admit_step_queue;

/* A waiter of the queue step may start now, or was evicted (on its own worker's loop). */
void admit_queue_woken(struct admission_waiter *aw);

#endif
