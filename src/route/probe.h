/*
 * probe — active health checks of providers, on the main thread's loop.
 *
 * Every provider with probe.enabled is asked for probe.path (default: the
 * models endpoint) every probe.interval; probe.unhealthy_threshold failures
 * in a row mark it down (its deployments are skipped), probe.healthy_threshold
 * successes in a row mark it up again. With probe.deep, a one-token
 * completion is sent every probe.deep_interval too, for providers whose
 * models endpoint stays up while generation is down. Results go to the
 * runtime's provider state, where the balancer and the admin API see them.
 * The requests and how to judge their answers are the provider's wire
 * format's (provider/provider.h: probe, probe_ok); probe only times them.
 */
#ifndef UNBUSY_PROBE_H
#define UNBUSY_PROBE_H

#include <uv.h>

#include "route/runtime.h"

struct probes;

/* Starts probing every enabled provider. Returns NULL when none is enabled or out of memory. */
struct probes *probes_start(uv_loop_t *loop, struct runtime *rt);
/* Stops and frees (from the loop, after every handle has closed). */
void probes_stop(struct probes *ps);

#endif
