/*
 * hedge_budget — bounds how many hedged attempts a model may add, and lets
 * the bound follow the need.
 *
 * A hedge is an extra upstream request. When a deployment is busy (it answers
 * but sends its first token late), hedges are what keeps clients from waiting,
 * and the more requests land on the busy deployment the more hedges are
 * needed; when every deployment is down, hedges only double the load on them.
 * So over a sliding window (10 buckets), with R client requests, U hedges that
 * were useful (they brought the request's first content) and F hedges that
 * failed (no content, an error or the hard deadline):
 *
 *     allowed = min(max_ratio · R,  base_ratio · R + earn · U)  +  min_per_sec · window
 *     allowed = 0 when F ≥ 3 and F > U   (hedging does not help: every deployment is failing)
 *
 * A useful hedge earns room for `earn` more (2): with hedges useful more than
 * half the time they may grow up to max_ratio of requests (default 0.2, the
 * "1.2 upstream requests per client request" bound); useless hedges leave
 * only base_ratio (0.05). The reserve (1 per second) lets a quiet model hedge
 * its first slow request. Like the retry budget (route/retry_budget.h), one
 * per model, shared by all workers (a mutex inside); time from the caller.
 *
 * The proxy calls hedge_budget_note_request once per client request,
 * hedge_budget_try_spend when a first-token budget passes, and
 * hedge_budget_note_result when a hedged attempt is decided.
 */
#ifndef UNBUSY_HEDGE_BUDGET_H
#define UNBUSY_HEDGE_BUDGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define HEDGE_BUDGET_BUCKETS 10
#define HEDGE_BUDGET_STOP_FAILURES 3

struct hedge_budget_params {
    double base_ratio;  /* hedges always allowed per request, 0.05 */
    double max_ratio;   /* hedges at most per request, 0.2 */
    double earn;        /* extra hedges allowed per useful one, 2 */
    double min_per_sec; /* reserve, 1 */
    uint32_t window_ms; /* 10000 */
};

struct hedge_budget_bucket {
    uint64_t epoch; /* now / bucket length + 1; 0 unused */
    uint32_t requests, hedges, useful, failed;
};

/* Fields are private: use the functions. */
struct hedge_budget {
    pthread_mutex_t lock;
    struct hedge_budget_params params;
    struct hedge_budget_bucket buckets[HEDGE_BUDGET_BUCKETS];
    uint64_t spent, denied, stopped; /* since init; stopped: denied by the failure rule */
};

struct hedge_budget_stats {
    uint32_t requests, hedges, useful, failed; /* in the window */
    uint32_t allowed;                          /* the formula above, now */
    bool stopped;                              /* the failure rule holds */
    uint64_t spent, denied;
};

void hedge_budget_params_default(struct hedge_budget_params *p);
/* p NULL: defaults. */
void hedge_budget_init(struct hedge_budget *b, const struct hedge_budget_params *p);
void hedge_budget_destroy(struct hedge_budget *b);
/* A reload; a new window length forgets the counts. */
void hedge_budget_set_params(struct hedge_budget *b, const struct hedge_budget_params *p);

void hedge_budget_note_request(struct hedge_budget *b, uint64_t now_ms);
/* True (and counted) if a hedge fits in the budget now. */
bool hedge_budget_try_spend(struct hedge_budget *b, uint64_t now_ms);
/* A hedge spent earlier was useful (brought the first content) or failed (ended without any). */
void hedge_budget_note_result(struct hedge_budget *b, uint64_t now_ms, bool useful);
void hedge_budget_get_stats(struct hedge_budget *b, uint64_t now_ms, struct hedge_budget_stats *out);

#endif
