/*
 * metrics_discovery — the unbusy_discovery_* families of GET /metrics: per
 * discovered deployment, its addresses (active, draining, healthy), its
 * resolutions (ok, failed), the addresses added and removed, and whether it
 * serves a stale set. Read from the endpoint sets (route/endpoints.h) at
 * render time; labels are config names and fixed words only (never an
 * address: a name's addresses change).
 *
 * Who calls it: metrics_render (metrics.c), as a renderer main.c adds
 * (metrics_add_renderer).
 */
#ifndef UNBUSY_METRICS_DISCOVERY_H
#define UNBUSY_METRICS_DISCOVERY_H

#include "base/buf.h"
#include "route/runtime.h"

/* Appends the families of runtime rt (a struct runtime *); nothing when no deployment has
   discovery. */
void metrics_discovery_render(void *rt, struct buf *out);

#endif
