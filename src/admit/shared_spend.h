/*
 * shared_spend — budgets' spend added up across replicas through Redis.
 *
 * Each replica's ledger knows what its own traffic spent (ledger_spend). For
 * every budget and period (UTC day, UTC month) that has an amount, the main
 * loop's sync (route/shared_sync.c) adds what this replica spent since its
 * last report to a shared counter, PREFIXspend:d:DAY:KEY:CURRENCY (or m:MONTH),
 * with INCRBYFLOAT, which answers the new total: everything every replica
 * reported. What the others spent is that total minus what this replica
 * reported; budgets_check adds it to the local spend (shared_spend_total). A
 * counter expires after its period (two days for a day, 32 for a month).
 *
 * While Redis is down nothing is reported and the last known total of the
 * others stays in force for the period; what this replica spent meanwhile is
 * reported when it returns (the ledger's totals are cumulative), so no spend
 * is lost, only late. A restarted replica reports its ledger's totals again
 * from zero: with a ledger file (totals loaded at open) that counts its
 * earlier spend twice for the rest of the period, so budgets err towards
 * refusing early, never late.
 *
 * Who calls it: main.c (new, free, budgets_share), budget.c
 * (shared_spend_total), route/shared_sync.c (shared_spend_report,
 * shared_spend_seen). Thread-safe.
 */
#ifndef UNBUSY_SHARED_SPEND_H
#define UNBUSY_SHARED_SPEND_H

#include <stddef.h>
#include <stdint.h>

#include "acct/ledger.h"
#include "base/buf.h"
#include "config/config.h"
#include "config/config_redis.h"
#include "proto/resp.h"

struct shared_spend;

/* The budgets of cfg (which must outlive it) over ledger l. NULL when out of memory. */
struct shared_spend *shared_spend_new(const struct config *cfg, const struct cfg_redis *rc,
                                      struct ledger *l);
void shared_spend_free(struct shared_spend *ss);

/* local (this replica's spend under budget b, one of the config's, in period at now_ms)
   plus what the other replicas reported for the same period; local alone when nothing is
   known. A lookup by index under a mutex: no search. */
double shared_spend_total(struct shared_spend *ss, const struct cfg_budget *b,
                          enum ledger_period period, int64_t now_ms, double local);

/* One report in flight; handed back to shared_spend_seen with the reply. */
struct shared_spend_report {
    size_t entry;
    int64_t number;  /* the period it was for */
    double reported; /* this replica's total once this report is counted */
};

/*
 * Appends up to max reports (commands) for the entries from the round-robin cursor on,
 * at now_ms (wall clock, unix ms), into out and their descriptions into reports[].
 * Returns how many.
 */
size_t shared_spend_report(struct shared_spend *ss, int64_t now_ms, struct buf *out,
                           struct shared_spend_report *reports, size_t max);
/* The reply to one report (reply NULL: lost; it is sent again next time). */
void shared_spend_seen(struct shared_spend *ss, const struct shared_spend_report *r,
                       const struct resp_reply *reply);

#endif
