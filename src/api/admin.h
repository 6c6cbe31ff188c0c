/*
 * admin — the operator's API under /admin/: the state of every deployment
 * (tier, breaker, admin state, EWMA, percentiles, in-flight, counters, probe
 * results) and run-time drain / disable / enable / reset of one deployment.
 *
 * Access: with admin.token set, every request needs "Authorization: Bearer
 * TOKEN" (compared in constant time), whatever its Host or Origin. Without a
 * token the API is read-only (GET, HEAD), answers only on a loopback listener,
 * and refuses (403) a request with an Origin header or a Host that is not a
 * loopback name, so that a web page the operator opens (DNS rebinding
 * included) can neither change nor read anything. No CORS header is ever
 * sent, so no preflight is granted. /metrics and the status page are not
 * under /admin/: they are public and read-only.
 */
#ifndef UNBUSY_ADMIN_H
#define UNBUSY_ADMIN_H

#include <stdbool.h>

#include "base/buf.h"
#include "route/runtime.h"

struct server_conn;

/* The head of an /admin/ request is complete, its body not read: checks access as above.
   Returns true to go on; false after answering 401 or 403. */
bool admin_check_head(struct server_conn *c);
void admin_dispatch(struct server_conn *c);

/* Is p[0..len) a loopback name: localhost (any case), an IPv4 address in
   127.0.0.0/8 or [::1], each with an optional :PORT; or the bare "::1" of a
   listen address? Used for both the listener and the Host header. */
bool admin_host_is_loopback(const char *p, size_t len);

/* The JSON document of GET /admin/deployments (also used by the status page). */
void admin_write_state(struct buf *out, struct runtime *rt);

#endif
