/*
 * lifecycle — how the process stops and hands over, on the main loop
 * (base/procstate.h draws the phases):
 *
 *   SIGTERM   /readyz turns 503 and the service manager hears STOPPING=1; the
 *             listeners keep accepting for server.drain_delay (a load balancer
 *             or Kubernetes takes the endpoint out meanwhile), then the
 *             workers drain (server.drain_timeout) and the process exits 0.
 *   SIGINT    the same without the delay (a terminal has no load balancer).
 *   2nd signal during the delay: drain at once; during the drain: exit at once.
 *   SIGUSR2   binary upgrade (upgrade.h): the listeners go to a new process
 *             with the same argv; once it serves, this one drains and exits.
 *
 * Every way out goes through one drain (worker_drain on every worker, then
 * uv_stop of the main loop; main.c does the rest). main.c calls
 * lifecycle_start before the first worker listens and lifecycle_close after
 * the main loop stopped.
 */
#ifndef UNBUSY_LIFECYCLE_H
#define UNBUSY_LIFECYCLE_H

#include <uv.h>

#include "config/config.h"
#include "worker.h"

/* Takes SIGTERM, SIGINT and SIGUSR2 on loop. workers[0..nworkers) are drained on the way
   out; argv (kept, not copied) starts the new process of an upgrade; srv's drain_delay and
   drain_timeout are copied (a reload does not change them: config_diff names them). */
void lifecycle_start(uv_loop_t *loop, struct worker *workers, unsigned nworkers,
                     const struct cfg_server *srv, char **argv);
/* The listeners are up: the process is ready (tells the old process of an upgrade, or
   the service manager READY=1). */
void lifecycle_serving(void);
/* Closes the signal handles and what an upgrade left open. */
void lifecycle_close(void);

#endif
