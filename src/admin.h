/*
 * admin — the operator's API under /admin/: the state of every deployment
 * (tier, breaker, admin state, EWMA, percentiles, in-flight, counters, probe
 * results) and run-time drain / disable / enable / reset of one deployment.
 *
 * Access: with admin.token set, requests need "Authorization: Bearer TOKEN"
 * (compared in constant time). Without a token the API answers only when the
 * listener is on a loopback address, and is refused (403) otherwise.
 */
#ifndef UNBUSY_ADMIN_H
#define UNBUSY_ADMIN_H

#include <stdbool.h>

#include "buf.h"
#include "runtime.h"

struct server_conn;

/* The head of an /admin/ request is complete, its body not read: checks access as above.
   Returns true to go on; false after answering 401 or 403. */
bool admin_check_head(struct server_conn *c);
void admin_dispatch(struct server_conn *c);

/* The JSON document of GET /admin/deployments (also used by the status page). */
void admin_write_state(struct buf *out, struct runtime *rt);

#endif
