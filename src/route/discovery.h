/*
 * discovery — keeps the endpoint sets of discovered deployments fed from DNS,
 * on the main thread's loop.
 *
 * For every provider with a discovery: section (config/config_discovery.h)
 * one target: a c-ares resolver (net/dns.h; the provider's resolver: or the
 * system's) and a timer. dns: true asks for A and AAAA of base_url's host
 * (port from base_url); srv: NAME asks for the SRV records, then for the
 * addresses of each target (the record's port). Each answer is merged into
 * the endpoint set of every deployment of that provider
 * (route/endpoints.h); the next resolution comes after the smallest TTL of
 * the answer, within [interval_min, interval_max]. A failed resolution keeps
 * the last good set (endpoint_set_failed) and is retried after interval_min,
 * doubling per failure in a row up to interval_max.
 *
 * Who calls it: main.c starts it after the workers and stops it at the end,
 * beside the probes. The sets are shared with the workers through their own
 * locks; nothing else crosses threads.
 */
#ifndef UNBUSY_DISCOVERY_H
#define UNBUSY_DISCOVERY_H

#include <uv.h>

#include "config/config_discovery.h"
#include "route/runtime.h"

struct discovery;

/* Starts resolving for every provider with discovery:. NULL when none has it (or out of
   memory, logged). */
struct discovery *discovery_start(uv_loop_t *loop, struct runtime *rt);
/* Cancels the lookups and frees (from the loop, after every handle has closed). */
void discovery_stop(struct discovery *d);

/* Milliseconds to the next resolution: after an answer whose smallest TTL is ttl_s
   (failures 0), or after `failures` failed resolutions in a row. */
uint32_t discovery_next_ms(const struct cfg_discovery *c, uint32_t ttl_s, unsigned failures);

#endif
