/*
 * config_diff — which differences between two snapshots a running process
 * cannot apply: the settings read once at start (the listener, the workers,
 * the ledger, the key store, the budgets). A reload applies everything else
 * and names these in its answer and its log, so the operator knows a restart
 * is still due. Pure: compares two snapshots, no I/O.
 *
 * Who calls it: the reload (src/reload.c); its unit test.
 */
#ifndef UNBUSY_CONFIG_DIFF_H
#define UNBUSY_CONFIG_DIFF_H

#include <stddef.h>

#include "config/config.h"

#define CONFIG_DIFF_MAX 24

struct config_diff_item {
    const char *key; /* "server.listen", "server.workers", "ledger", ... (static) */
    const char *why; /* what stays until a restart (static) */
};

/* The keys that changed from running to next and need a restart, at most max of
   them, into out. Returns how many. */
size_t config_diff_restart(const struct config *running, const struct config *next,
                           struct config_diff_item *out, size_t max);

#endif
