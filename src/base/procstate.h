/*
 * procstate — the phase of the whole process, as /readyz and the service
 * manager see it:
 *
 *   STARTING --listeners up--> SERVING --SIGUSR2--> UPGRADING --new one ready--> DRAINING
 *                                 |  ^                  |
 *                                 |  +--new one failed--+
 *                                 +--SIGTERM--> STOPPING (server.drain_delay: still accepting,
 *                                                  not ready) --delay over / 2nd signal--> DRAINING
 *
 * One process-wide value (an atomic): the composition root (main.c,
 * lifecycle.c) writes it, the /readyz handler reads it from any worker.
 */
#ifndef UNBUSY_PROCSTATE_H
#define UNBUSY_PROCSTATE_H

#include <stdbool.h>

enum procstate {
    PROCSTATE_STARTING,  /* config loaded, listeners not all up yet */
    PROCSTATE_SERVING,   /* ready */
    PROCSTATE_UPGRADING, /* serving, and a new binary is starting beside it */
    PROCSTATE_STOPPING,  /* SIGTERM seen: accepting still, not ready (server.drain_delay) */
    PROCSTATE_DRAINING,  /* listeners closed, finishing what is in flight */
};

void procstate_set(enum procstate s);
enum procstate procstate_get(void);
/* "starting", "serving", "upgrading", "stopping", "draining". */
const char *procstate_name(enum procstate s);
/* Whether a load balancer should send new requests here (SERVING or UPGRADING). */
bool procstate_ready(enum procstate s);

#endif
