/*
 * retry_budget — bounds how many extra attempts failover may add.
 *
 * When a pool is in trouble, every request trying every deployment multiplies
 * the load on deployments that are already failing (a retry storm). A budget
 * allows retries only up to `ratio` of the requests seen over a sliding window,
 * plus a small reserve of `min_per_sec` × window so that a quiet model can still
 * fail over (Finagle's RetryBudget, Envoy's retry_budget).
 *
 * One per model, shared by all worker threads (a mutex inside). The proxy calls
 * retry_budget_note_request once per client request (not per attempt) and
 * retry_budget_try_spend before each attempt after the first; a false answer
 * means "no retry: answer the client with what the last attempt gave". Time
 * comes from the caller. No I/O.
 */
#ifndef UNBUSY_RETRY_BUDGET_H
#define UNBUSY_RETRY_BUDGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RETRY_BUDGET_BUCKETS 10

struct retry_budget_params {
    double ratio;         /* retries per request over the window, 0.2 */
    double min_per_sec;   /* reserve, in retries per second of window, 3 */
    uint32_t window_ms;   /* 10000 */
};

struct retry_budget_bucket {
    uint64_t epoch; /* now / bucket length + 1; 0 unused */
    uint32_t requests;
    uint32_t retries;
};

/* Fields are private: use the functions. */
struct retry_budget {
    pthread_mutex_t lock;
    struct retry_budget_params params;
    struct retry_budget_bucket buckets[RETRY_BUDGET_BUCKETS];
    uint64_t spent, denied; /* since init */
};

struct retry_budget_stats {
    uint32_t requests;  /* in the window */
    uint32_t retries;   /* spent in the window */
    uint32_t allowed;   /* ratio × requests + reserve */
    uint64_t spent, denied;
};

void retry_budget_params_default(struct retry_budget_params *p);
/* p NULL: defaults. */
void retry_budget_init(struct retry_budget *b, const struct retry_budget_params *p);
void retry_budget_destroy(struct retry_budget *b);
/* A reload; a new window length forgets the counts. */
void retry_budget_set_params(struct retry_budget *b, const struct retry_budget_params *p);

void retry_budget_note_request(struct retry_budget *b, uint64_t now_ms);
/* True (and counted) if a retry fits in the budget now. */
bool retry_budget_try_spend(struct retry_budget *b, uint64_t now_ms);
void retry_budget_get_stats(struct retry_budget *b, uint64_t now_ms, struct retry_budget_stats *out);

#endif
