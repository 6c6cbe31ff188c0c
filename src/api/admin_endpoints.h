/*
 * admin_endpoints — a discovered deployment's addresses in the admin API's
 * state (GET /admin/state): the "discovery" object of a deployment, with
 * what was asked (dns or srv name), whether the answer is stale, the last
 * error, and one entry per address: its name, source (a, aaaa, srv), state
 * (active, draining), TTL, SRV priority and weight, and its own health
 * (breaker, eligible, in flight, requests, failures, EWMA TTFT).
 *
 * Who calls it: admin.c's write_dep; it reads route/endpoints.h only.
 */
#ifndef UNBUSY_ADMIN_ENDPOINTS_H
#define UNBUSY_ADMIN_ENDPOINTS_H

#include <stdint.h>

#include "base/buf.h"
#include "route/runtime.h"

/* Appends ,"discovery":{...} for a deployment with discovery; nothing otherwise. */
void admin_write_endpoints(struct buf *b, struct runtime_dep *d, uint64_t now_ms);

#endif
