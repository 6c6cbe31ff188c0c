/*
 * health — what unbusy has learnt about one deployment from its traffic.
 *
 * One struct health per deployment, shared by every worker thread: a breaker
 * learns N times faster from the traffic of N workers than from one, and LLM
 * request rates are low enough that a small uncontended mutex, taken a few
 * times per request, costs nothing measurable. The in-flight count is atomic
 * so it can be read without the lock.
 *
 * It owns: the outcome counts per error class; the circuit breaker; the
 * Retry-After cooldown; the "our credentials are refused" state; the admin
 * state (active / draining / disabled); the peak-EWMA of time to first token
 * and a ring of recent TTFT samples for percentiles; in-flight and RPM limits;
 * the learnt concurrency limit and the slow-start ramp (route/limit.h), which
 * stand in for max_concurrency when the config declares none.
 * It does no I/O and never reads the clock: every call takes now_ms (any
 * monotonic millisecond clock) and, where chance is involved, a random value
 * from the caller, so tests are exact and need no sleeping.
 *
 * Who calls it: the balancer (health_eligible, health_score) to choose a
 * deployment; the proxy around each attempt:
 *
 *     struct health_ticket t;
 *     if (!health_acquire(h, now, &t)) ... choose another deployment
 *     ... the attempt ...
 *     if (retry_after_ms) health_cooldown(h, now, retry_after_ms);  (before release)
 *     health_release(h, &t, now, cls, ttft_ms, first_token_ms, rand);
 *     (or health_abandon(h, &t) when the attempt ends with no verdict)
 *
 * and the admin API / status page / metrics (health_snapshot, health_set_admin,
 * health_reset).
 *
 * The breaker:
 *
 *           trip: window ratio or N failures in a row
 *   CLOSED ──────────────────────────────────────────▶ OPEN (open_ms · 2^(trips-1), ±20 %,
 *     ▲                                                  │   at most open_max_ms)
 *     │ half_open_trials successes                       │ open time over (on the next
 *     │                                                  ▼  health_acquire / eligible)
 *     └──────────────────────────────────────────── HALF_OPEN: up to half_open_trials
 *                       any trial fails ──▶ OPEN        trial requests at a time
 *
 * Consecutive trips double the open time; the count starts over once the
 * breaker has stayed closed for a whole window.
 */
#ifndef UNBUSY_HEALTH_H
#define UNBUSY_HEALTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admit/bucket.h"
#include "route/limit.h"

/* How an attempt ended, as far as the deployment's health is concerned. */
enum health_class {
    HEALTH_OK,
    HEALTH_CONNECT,         /* DNS or TCP connect failed */
    HEALTH_TLS,
    HEALTH_CONNECT_TIMEOUT,
    HEALTH_FIRST_TOKEN,     /* no content before the first-token deadline */
    HEALTH_STALL,           /* no content within the stall timeout after the first */
    HEALTH_RATE_LIMITED,    /* 429 */
    HEALTH_SERVER_ERROR,    /* 5xx, or an error event in the stream */
    HEALTH_AUTH,            /* 401/402/403: our key or balance */
    HEALTH_BAD_REPLY,       /* malformed head, body or event */
    HEALTH_CUT,             /* the stream ended before the answer was complete */
    HEALTH_IO,              /* connection error during the exchange */
    HEALTH_STATUS,          /* another unexpected status (404, ...) */
    HEALTH__COUNT
};

enum health_admin {
    HEALTH_ADMIN_ACTIVE,
    HEALTH_ADMIN_DRAINING, /* no new requests; those in flight finish */
    HEALTH_ADMIN_DISABLED,
};

enum health_breaker {
    HEALTH_BREAKER_CLOSED,
    HEALTH_BREAKER_OPEN,
    HEALTH_BREAKER_HALF_OPEN,
};

/* Flags returned by health_release. */
#define HEALTH_EVENT_TRIPPED 0x1u   /* the breaker opened (from closed or half-open) */
#define HEALTH_EVENT_CLOSED 0x2u    /* a half-open breaker closed again */
#define HEALTH_EVENT_AUTH_FIRST 0x4u /* the first HEALTH_AUTH since init/reset/enable: log it */
#define HEALTH_EVENT_LOAD_REFUSAL 0x8u /* a 429/5xx while others were in flight there and no
                                          max_concurrency is declared: the learnt limit was high */

#define HEALTH_WINDOW_BUCKETS 10
#define HEALTH_TTFT_RING 256

/* Parameters; health_params_default fills the documented defaults
   (docs/resilience.md says why each). Zero where noted means "off". */
struct health_params {
    uint32_t window_ms;            /* breaker window, 30000 */
    uint32_t min_requests;         /* outcomes in the window before the ratio counts, 10 */
    double failure_ratio;          /* trip at this failure share of the window, 0.5 */
    uint32_t consecutive_failures; /* trip after this many failures in a row, 5; 0 off */
    uint32_t open_ms;              /* first open time, 5000 */
    uint32_t open_max_ms;          /* open time bound (and Retry-After bound), 120000 */
    uint32_t half_open_trials;     /* trial requests at a time when half-open, 1 */
    uint32_t ewma_tau_ms;          /* peak-EWMA time constant, 10000 */
    uint32_t ewma_prior_ms;        /* TTFT assumed before any sample, 1000 */
    uint32_t max_concurrency;      /* declared in-flight bound; 0: the learnt limit bounds it */
    uint32_t rpm;                  /* requests started per 60 s, 0 unlimited */
    struct limit_params limit;     /* the learnt limit and the slow-start ramp (limit.h) */
};

/* A slot taken by health_acquire, handed back to health_release/abandon. */
struct health_ticket {
    uint32_t epoch; /* the breaker period it was taken in */
    uint64_t started_ms; /* when it was taken (the learnt limit's round trips) */
    bool trial;     /* a half-open trial */
    bool held;      /* holds an in-flight slot (false after release) */
};

struct health_bucket {
    uint64_t epoch; /* now / bucket length + 1; 0 unused */
    uint32_t requests;
    uint32_t failures;
};

/* Fields are private: use the functions. Public only so that it can be embedded. */
struct health {
    pthread_mutex_t lock;
    struct health_params params;
    atomic_uint inflight;

    enum health_admin admin;
    enum health_breaker breaker;
    uint32_t epoch;              /* bumped on every breaker transition */
    uint64_t open_until;
    uint64_t closed_since;
    uint32_t trials_inflight;
    uint32_t trial_successes;
    uint32_t trips_in_row;
    uint64_t trips;
    uint32_t consecutive;        /* failures in a row */
    uint64_t cooldown_until;
    bool auth_out;
    enum health_class last_failure;
    uint64_t last_failure_ms;

    struct health_bucket window[HEALTH_WINDOW_BUCKETS];
    struct bucket rpm;           /* params.rpm: requests started per minute */

    double ewma;                 /* ms */
    uint64_t ewma_stamp;
    bool ewma_sampled;

    uint32_t ttft_ring[HEALTH_TTFT_RING];
    uint64_t ttft_total;         /* samples ever; ring holds the last min(total, RING) */
    uint64_t pct_at;             /* ttft_total when pct was computed */
    uint32_t pct[3];             /* p50, p95, p99 cache */

    uint64_t requests, successes;
    uint64_t counts[HEALTH__COUNT];

    struct limit limit;          /* learnt concurrency limit, slow-start ramp */
};

struct health_snapshot {
    const char *breaker;            /* "closed", "open", "half_open" */
    const char *admin;              /* "active", "draining", "disabled" */
    bool eligible;
    const char *why_not;            /* NULL when eligible, else as health_eligible */
    bool auth_out;
    uint64_t open_until_ms;         /* 0 unless open */
    uint64_t open_remaining_ms;
    uint64_t cooldown_until_ms;     /* 0 when none */
    uint64_t cooldown_remaining_ms;
    uint64_t trips;                 /* since init */
    uint32_t trips_in_row;          /* what the next open time doubles from */
    uint32_t consecutive_failures;
    uint32_t trials_inflight;
    uint32_t inflight;
    uint32_t max_concurrency;       /* declared; 0: none */
    uint32_t concurrency_limit;     /* in force now: declared, or learnt × slow start */
    uint32_t learnt_limit;          /* what the AIMD has learnt (even when one is declared) */
    double slow_start_factor;       /* share of its weight now, (0, 1]; 1 outside a ramp */
    uint32_t ttft_baseline_ms;      /* the learnt limit's TTFT baseline, 0 none yet */
    uint64_t limit_increases, limit_decreases;
    uint32_t rpm_used;              /* the rpm bucket's whole requests short of full */
    uint32_t rpm_limit;
    double ewma_ttft_ms;
    uint32_t ttft_samples;          /* in the ring */
    uint32_t ttft_p50_ms, ttft_p95_ms, ttft_p99_ms; /* 0 without samples */
    uint64_t requests, successes;   /* outcomes since init */
    uint64_t counts[HEALTH__COUNT];
    uint32_t window_requests, window_failures;
    double window_failure_ratio;    /* 0 when the window is empty */
    const char *last_failure;       /* class name, NULL if none yet */
    uint64_t last_failure_ms;
};

/* "ok", "connect", "tls", "connect_timeout", "first_token", "stall",
   "rate_limited", "server_error", "auth", "bad_reply", "cut", "io", "status";
   "?" out of range. Stable: used as metric labels. */
const char *health_class_name(enum health_class c);
const char *health_admin_name(enum health_admin a);
/* "active", "draining", "disabled" -> 0, else -EINVAL. */
int health_admin_parse(const char *s, enum health_admin *out);
const char *health_breaker_name(enum health_breaker b);

void health_params_default(struct health_params *p);

/* Fresh state: closed, active, no samples (EWMA = prior). p NULL: defaults. */
void health_init(struct health *h, const struct health_params *p);
void health_destroy(struct health *h);
/* New parameters (a reload) keeping what was learnt. */
void health_set_params(struct health *h, const struct health_params *p);

/*
 * May a new request go there now? False when disabled, draining, out for
 * refused credentials, cooling down, open, half-open with every trial slot
 * taken, at max_concurrency or at the RPM cap; *why_not (may be NULL) then
 * says which: "disabled", "draining", "auth", "cooldown", "open", "half_open",
 * "saturated", "rpm" (static strings). Takes no slot (an open breaker whose
 * time is over does become half-open here, as in every call that takes now).
 */
bool health_eligible(struct health *h, uint64_t now_ms, const char **why_not);

/*
 * health_eligible and, if so, take an in-flight slot (and a trial slot when
 * half-open, and an RPM unit) in one step under the lock, so two threads
 * cannot both take the last slot. Returns false (ticket untouched) if not.
 */
bool health_acquire(struct health *h, uint64_t now_ms, struct health_ticket *ticket);

/*
 * Record an attempt's outcome and give its slots back. ticket may be NULL for
 * an outcome not tied to health_acquire (an active probe): it then changes
 * no in-flight count and is not a trial. ttft_ms: time to the first content
 * (0 if none); it feeds the EWMA and the percentile ring. penalty_ms: for a
 * failure, a sample fed to the EWMA so that a deployment failing fast does not
 * look fast (the first-token deadline is a good value; 0: none). rand: any
 * random 64-bit value, for the open time's jitter.
 * A HEALTH_RATE_LIMITED outcome while a cooldown is in force (call
 * health_cooldown with the Retry-After first), or while others were in flight
 * on a deployment whose limit is learnt (HEALTH_EVENT_LOAD_REFUSAL), is not a
 * breaker failure: the cooldown or the learnt limit handles it.
 * Returns HEALTH_EVENT_* flags.
 */
unsigned health_release(struct health *h, struct health_ticket *ticket, uint64_t now_ms,
                        enum health_class cls, uint32_t ttft_ms, uint32_t penalty_ms,
                        uint64_t rand);

/* Give the slots back with no verdict (the client went away, the request was
   rejected as the client's fault before any judgement). */
void health_abandon(struct health *h, struct health_ticket *ticket);
/* The same for an attempt cancelled after waiting waited_ms without a first token (a hedge
   that lost): that wait goes into the TTFT percentiles as a lower bound. */
void health_abandon_after(struct health *h, struct health_ticket *ticket, uint32_t waited_ms);

/* When will it take a new request again? now_ms when it may now or as soon as a
   slot frees (saturated, half-open trials taken); the end of its cooldown / open
   breaker / RPM wait; UINT64_MAX when no time brings it back (disabled, draining,
   credentials refused). */
uint64_t health_returns_at(struct health *h, uint64_t now_ms);

/* What the model's admission may count on: max_concurrency when declared, else the
   learnt limit (× the slow-start ramp). */
uint32_t health_capacity(struct health *h, uint64_t now_ms);
/* The slow-start factor now, in (0, 1]: the balancer multiplies the weight by it. */
double health_slow_start(struct health *h, uint64_t now_ms);
/* It came back by a way health does not see (the active probes pass again): ramp. */
void health_recovered(struct health *h, uint64_t now_ms);

/* Keep the deployment out until now + ms (a Retry-After), at most open_max_ms;
   an earlier end never shortens a cooldown already in force. */
void health_cooldown(struct health *h, uint64_t now_ms, uint32_t ms);

/* ACTIVE also ends an "auth" exclusion (an operator re-enabling it has fixed the key). */
void health_set_admin(struct health *h, enum health_admin a);
enum health_admin health_admin_state(struct health *h);

/* Forget the learnt faults: breaker closed, trip count, window, cooldown,
   auth exclusion. Statistics, EWMA, samples, admin state and in-flight stay. */
void health_reset(struct health *h);

/* Peak-EWMA TTFT in ms, drifting back to the prior while no sample arrives. */
double health_latency_ms(struct health *h, uint64_t now_ms);
/* health_latency_ms × (in-flight + 1): lower is better; the balancer divides by weight. */
double health_score(struct health *h, uint64_t now_ms);
static inline uint32_t health_inflight(struct health *h)
{
    return atomic_load_explicit(&h->inflight, memory_order_relaxed);
}

/* p50/p95/p99 of the recent TTFT samples (any pointer may be NULL); returns
   how many samples they come from (0: the outputs are 0). */
unsigned health_ttft_percentiles(struct health *h, uint32_t *p50, uint32_t *p95, uint32_t *p99);

void health_snapshot(struct health *h, uint64_t now_ms, struct health_snapshot *out);

#endif
