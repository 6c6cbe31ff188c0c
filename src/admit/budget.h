/*
 * budget — per-key spending limits on the request path, and the alerts they
 * send.
 *
 * A key's budget (config: budgets.keys) caps what it may spend per UTC day
 * and per UTC month, in one currency. budgets_check, called once per request
 * before it goes upstream, reads the key's spend from the ledger's totals in
 * memory (ledger_spend: a hash lookup under a mutex, never the disk) and
 * answers OK, REFUSE, or DEGRADE (send the request to the budget's
 * degrade_to model instead). The check that first finds a budget past
 * alert_at in a period sends one "warning" alert, and the check that first
 * finds it spent sends one "exhausted" alert: exactly once per key, period
 * (day or month), period number and level, also when many threads check at
 * once (per budget, one atomic slot per period and level holds the number of
 * the last period it alerted for; a compare-and-swap decides who sends).
 * That state is bounded by the number of budgets and lives as long as the
 * struct budgets.
 *
 * Alerts are logged, counted, and when budgets.webhook is set, copied into a
 * bounded queue (overflow dropped and counted) that one thread of this module
 * drains: it has its own libuv loop and connection pool (transport, uphttp)
 * and POSTs each alert as JSON, one at a time in order, retrying on failure
 * with exponential backoff (1 s, 2 s, 4 s, ... up to 5 attempts; a 2xx ends
 * it, a 4xx other than 408 and 429 is final). The request path never waits
 * for it: queueing is a copy under a mutex and a uv_async_send.
 *
 * Alert body (docs/usage.md#budgets):
 *   {"type":"budget_alert","key":"team-a","period":"day","level":"warning",
 *    "budget":10,"spent":8.02,"currency":"USD","share":0.802,"threshold":0.8,
 *    "time":"2025-03-01T12:34:56Z","text":"unbusy: key team-a has spent ..."}
 *
 * Who calls it: main (budgets_new after the ledger is open, budgets_free
 * before ledger_close), the request path (budgets_check), /metrics
 * (budgets_stats). Everything but new and free is thread-safe.
 */
#ifndef UNBUSY_BUDGET_H
#define UNBUSY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "acct/ledger.h"

#define BUDGETS_DEFAULT_QUEUE 1024       /* alerts waiting for the webhook */
#define BUDGETS_DEFAULT_ATTEMPTS 5       /* tries per alert */
#define BUDGETS_DEFAULT_BACKOFF_MS 1000  /* before the 2nd try; doubles each time */
#define BUDGETS_DEFAULT_TIMEOUT_MS 10000 /* one try, connecting included */
#define BUDGETS_DEFAULT_DRAIN_MS 3000    /* budgets_free waits at most this for the queue */
#define BUDGETS_MAX_QUEUE 65536

enum budget_verdict {
    BUDGET_OK = 0,  /* no budget, or not spent */
    BUDGET_REFUSE,  /* spent, action refuse: answer an error, do not go upstream */
    BUDGET_DEGRADE, /* spent, action degrade: serve the request with *degrade_to instead */
};

/* Defaults are the production values; tests shorten them. 0: the default. */
struct budgets_options {
    uint32_t queue;      /* BUDGETS_DEFAULT_QUEUE; at most BUDGETS_MAX_QUEUE */
    uint32_t attempts;   /* BUDGETS_DEFAULT_ATTEMPTS */
    uint32_t backoff_ms; /* BUDGETS_DEFAULT_BACKOFF_MS */
    uint32_t timeout_ms; /* BUDGETS_DEFAULT_TIMEOUT_MS */
    uint32_t drain_ms;   /* BUDGETS_DEFAULT_DRAIN_MS */
};

struct budgets_stats {
    uint64_t fired;     /* alerts raised (each also logged) */
    uint64_t delivered; /* POSTed and answered 2xx */
    uint64_t failed;    /* given up on: a final 4xx, every attempt failed, or shutdown */
    uint64_t dropped;   /* not queued (queue full, no memory) or never tried (shutdown) */
    uint32_t depth;     /* waiting in the queue now */
};

struct budgets;

/*
 * Builds the budgets of cfg (holding one reference on it) over ledger l,
 * which must outlive the result, and starts the webhook thread when
 * cfg->budget_webhook is set. Returns NULL when out of memory or when the
 * thread cannot start. With no budgets in cfg the result is valid and every
 * check answers BUDGET_OK at once.
 */
struct budgets *budgets_new(const struct config *cfg, struct ledger *l);
struct budgets *budgets_new_opts(const struct config *cfg, struct ledger *l,
                                 const struct budgets_options *o);

/* Stops the webhook thread once what is queued is delivered or given up
   (at most drain_ms, then the rest is counted as dropped), and frees b. No
   check may run during or after it. NULL is fine. */
void budgets_free(struct budgets *b);

/*
 * The verdict for one request of key_name (NULL: a request without a key:
 * always OK) at now_ms (unix ms, wall clock; periods are UTC). On REFUSE and
 * DEGRADE, why (cap bytes, may be NULL) gets a sentence for the client and
 * the log, e.g. "the daily budget of key team-a is spent (10.02 of 10 USD);
 * it resets at 2025-03-02T00:00:00Z"; on DEGRADE *degrade_to is the model to
 * use (valid while b lives). May raise an alert. Never blocks on I/O.
 */
enum budget_verdict budgets_check(struct budgets *b, const char *key_name, int64_t now_ms,
                                  const char **degrade_to, char *why, size_t cap);

void budgets_stats(struct budgets *b, struct budgets_stats *out); /* zeros for NULL */

/* Spend of the other replicas (redis:) added to the ledger's in every check from now on
   (admit/shared_spend.h); ss must outlive b. Call before the workers start. */
struct shared_spend;
void budgets_share(struct budgets *b, struct shared_spend *ss);

/* Tests: while held, the webhook thread takes nothing from the queue. */
void budgets_test_hold(struct budgets *b, bool hold);

#endif
