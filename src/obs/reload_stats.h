/*
 * reload_stats — what the config reloads did, for /metrics: how many were
 * applied and how many refused as invalid, and when one last succeeded. One
 * set per process (reloads are process-wide); the reload (src/reload.c)
 * records, metrics_render reads. Lock-free: relaxed atomics.
 */
#ifndef UNBUSY_RELOAD_STATS_H
#define UNBUSY_RELOAD_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"

enum reload_result { RELOAD_RESULT_OK, RELOAD_RESULT_INVALID, RELOAD_RESULT__COUNT };

/* A reload ended with result at wall-clock time wall_s (seconds since the epoch). The
   first config counts as a success at start (reload_stats_started). */
void reload_stats_record(enum reload_result r, uint64_t wall_s);
void reload_stats_started(uint64_t wall_s);
uint64_t reload_stats_count(enum reload_result r);

/* unbusy_config_reload_total{result}, unbusy_config_generation (the one serving new
   requests: generation), unbusy_config_last_reload_success_timestamp_seconds. */
void reload_stats_render(struct buf *out, uint64_t generation);

#endif
