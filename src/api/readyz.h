/*
 * readyz — GET /readyz, the readiness a load balancer or Kubernetes asks
 * before it sends traffic (GET /healthz stays liveness: the process
 * answers). 200 only when the process is serving (listeners up, not
 * stopping or draining: base/procstate.h) and every model the config names
 * has at least one deployment in health (route/runtime.h,
 * runtime_dep_eligible: breaker not open, not cooling down, probes passing,
 * not disabled); a deployment that is only busy (saturated, at its rpm, a
 * half-open trial in flight) counts as in health. Otherwise 503 with a
 * JSON body that says why and which models have nothing in health.
 *
 * Unauthenticated like /healthz (a probe carries no key), so the body holds
 * only config names and fixed reason words, never provider text; it is
 * bounded (at most READYZ_MAX_MODELS models listed, then a count).
 * api.c routes to readyz_handle; readyz_render is the pure part, unit-tested.
 */
#ifndef UNBUSY_READYZ_H
#define UNBUSY_READYZ_H

#include <stdint.h>

#include "base/buf.h"
#include "base/procstate.h"
#include "route/runtime.h"

#define READYZ_MAX_MODELS 32

struct server_conn;

/* Writes the JSON body for the process in state st with learnt state rt (NULL: no
   config loaded) at now_ms into out. Returns the status: 200 ready, 503 not. */
int readyz_render(struct runtime *rt, enum procstate st, uint64_t now_ms, struct buf *out);

/* The route's handler. */
void readyz_handle(struct server_conn *c);

#endif
