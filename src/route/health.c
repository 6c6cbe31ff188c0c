#include "route/health.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


static const char *const class_names[HEALTH__COUNT] = {
    [HEALTH_OK] = "ok",
    [HEALTH_CONNECT] = "connect",
    [HEALTH_TLS] = "tls",
    [HEALTH_CONNECT_TIMEOUT] = "connect_timeout",
    [HEALTH_FIRST_TOKEN] = "first_token",
    [HEALTH_STALL] = "stall",
    [HEALTH_RATE_LIMITED] = "rate_limited",
    [HEALTH_SERVER_ERROR] = "server_error",
    [HEALTH_AUTH] = "auth",
    [HEALTH_BAD_REPLY] = "bad_reply",
    [HEALTH_CUT] = "cut",
    [HEALTH_IO] = "io",
    [HEALTH_STATUS] = "status",
};

static const char *const admin_names[] = {
    [HEALTH_ADMIN_ACTIVE] = "active",
    [HEALTH_ADMIN_DRAINING] = "draining",
    [HEALTH_ADMIN_DISABLED] = "disabled",
};

static const char *const breaker_names[] = {
    [HEALTH_BREAKER_CLOSED] = "closed",
    [HEALTH_BREAKER_OPEN] = "open",
    [HEALTH_BREAKER_HALF_OPEN] = "half_open",
};

const char *health_class_name(enum health_class c)
{
    return (unsigned)c < HEALTH__COUNT ? class_names[c] : "?";
}

const char *health_admin_name(enum health_admin a)
{
    return (unsigned)a <= HEALTH_ADMIN_DISABLED ? admin_names[a] : "?";
}

int health_admin_parse(const char *s, enum health_admin *out)
{
    for (unsigned i = 0; i <= HEALTH_ADMIN_DISABLED; i++) {
        if (s && strcmp(s, admin_names[i]) == 0) {
            *out = (enum health_admin)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *health_breaker_name(enum health_breaker b)
{
    return (unsigned)b <= HEALTH_BREAKER_HALF_OPEN ? breaker_names[b] : "?";
}

void health_params_default(struct health_params *p)
{
    *p = (struct health_params){
        .window_ms = 30000,
        .min_requests = 10,
        .failure_ratio = 0.5,
        .consecutive_failures = 5,
        .open_ms = 5000,
        .open_max_ms = 120000,
        .half_open_trials = 1,
        .ewma_tau_ms = 10000,
        .ewma_prior_ms = 1000,
        .max_concurrency = 0,
        .rpm = 0,
    };
    limit_params_default(&p->limit);
}

/* ---- bucketed sliding counts --------------------------------------------- */

/* A window of n buckets of bucket_ms each: a bucket is reused (zeroed) when
   its slot comes round again, and summing skips buckets older than n slots,
   so the window covers the last (n-1)·bucket_ms to n·bucket_ms. */
static void bucket_add(struct health_bucket *b, unsigned n, uint32_t bucket_ms, uint64_t now,
                       uint32_t requests, uint32_t failures)
{
    uint64_t e = now / bucket_ms + 1;
    struct health_bucket *s = &b[e % n];
    if (s->epoch != e) {
        s->epoch = e;
        s->requests = s->failures = 0;
    }
    s->requests += requests;
    s->failures += failures;
}

static void bucket_sum(const struct health_bucket *b, unsigned n, uint32_t bucket_ms,
                       uint64_t now, uint32_t *requests, uint32_t *failures)
{
    uint64_t e = now / bucket_ms + 1;
    uint32_t r = 0, f = 0;
    for (unsigned i = 0; i < n; i++) {
        if (b[i].epoch && b[i].epoch <= e && e - b[i].epoch < n) {
            r += b[i].requests;
            f += b[i].failures;
        }
    }
    *requests = r;
    if (failures)
        *failures = f;
}

static uint32_t window_bucket_ms(const struct health_params *p)
{
    uint32_t ms = p->window_ms / HEALTH_WINDOW_BUCKETS;
    return ms ? ms : 1;
}

/* Requests the rpm bucket is short of a full minute: those started recently. */
static uint32_t rpm_used(struct health *h, uint64_t now)
{
    if (!h->rpm.limit)
        return 0;
    bucket_refill(&h->rpm, now);
    return h->rpm.limit - bucket_remaining(&h->rpm);
}

/* ---- latency ---------------------------------------------------------------- */

static double tau_ms(const struct health *h)
{
    return h->params.ewma_tau_ms ? (double)h->params.ewma_tau_ms : 1.0;
}

/*
 * Peak-EWMA (Finagle, Linkerd): a sample above the estimate replaces it at
 * once, so a deployment that slows down loses traffic immediately; a sample
 * below pulls it down with a weight that grows with the time since the last
 * sample, so it earns traffic back gradually. The first sample replaces the
 * prior outright: the prior was a guess, the sample is evidence.
 */
static void ewma_observe(struct health *h, uint64_t now, double v)
{
    if (!h->ewma_sampled || v > h->ewma) {
        h->ewma = v;
    } else {
        double elapsed = now > h->ewma_stamp ? (double)(now - h->ewma_stamp) : 0.0;
        double w = exp(-elapsed / tau_ms(h));
        h->ewma = h->ewma * w + v * (1.0 - w);
    }
    h->ewma_sampled = true;
    h->ewma_stamp = now;
}

/*
 * What the estimate is worth now: without new samples it drifts back to the
 * prior with the same time constant. Otherwise a deployment that once had a
 * slow spell would score badly for ever (no traffic, so no sample to correct
 * it); this way an idle one is tried again after a few time constants.
 */
static double ewma_read(const struct health *h, uint64_t now)
{
    double prior = h->params.ewma_prior_ms;
    if (!h->ewma_sampled)
        return prior;
    if (now <= h->ewma_stamp)
        return h->ewma;
    double w = exp(-(double)(now - h->ewma_stamp) / tau_ms(h));
    return prior + (h->ewma - prior) * w;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles over the ring, cached until the next sample. */
static unsigned percentiles_locked(struct health *h, uint32_t out[3])
{
    unsigned n = h->ttft_total < HEALTH_TTFT_RING ? (unsigned)h->ttft_total : HEALTH_TTFT_RING;
    if (n == 0) {
        out[0] = out[1] = out[2] = 0;
        return 0;
    }
    if (h->pct_at != h->ttft_total) {
        uint32_t sorted[HEALTH_TTFT_RING];
        memcpy(sorted, h->ttft_ring, n * sizeof sorted[0]);
        qsort(sorted, n, sizeof sorted[0], cmp_u32);
        static const unsigned pcts[3] = {50, 95, 99};
        for (int i = 0; i < 3; i++) {
            unsigned rank = (pcts[i] * n + 99) / 100; /* ceil(p·n), 1-based */
            h->pct[i] = sorted[rank ? rank - 1 : 0];
        }
        h->pct_at = h->ttft_total;
    }
    memcpy(out, h->pct, sizeof h->pct);
    return n;
}

/* ---- breaker ---------------------------------------------------------------- */

static uint32_t trials_allowed(const struct health *h)
{
    return h->params.half_open_trials ? h->params.half_open_trials : 1;
}

static void clear_window(struct health *h)
{
    memset(h->window, 0, sizeof h->window);
    h->consecutive = 0;
}

/* Time-driven transitions, applied whenever the state is looked at. */
static void advance(struct health *h, uint64_t now)
{
    if (h->breaker == HEALTH_BREAKER_OPEN && now >= h->open_until) {
        h->breaker = HEALTH_BREAKER_HALF_OPEN;
        h->epoch++;
        h->trials_inflight = 0;
        h->trial_successes = 0;
    }
    /* A stable close: the next trip starts again from open_ms. */
    if (h->breaker == HEALTH_BREAKER_CLOSED && h->trips_in_row &&
        now - h->closed_since >= h->params.window_ms)
        h->trips_in_row = 0;
}

static bool should_trip(const struct health *h, uint64_t now)
{
    const struct health_params *p = &h->params;
    if (p->consecutive_failures && h->consecutive >= p->consecutive_failures)
        return true;
    if (p->failure_ratio <= 0)
        return false;
    uint32_t req, fail;
    bucket_sum(h->window, HEALTH_WINDOW_BUCKETS, window_bucket_ms(p), now, &req, &fail);
    uint32_t min = p->min_requests ? p->min_requests : 1;
    return req >= min && (double)fail >= p->failure_ratio * (double)req;
}

/* open_ms doubled per consecutive trip, bounded, then ±20 % so that gateways
   (and workers) that saw the same failures do not all probe at the same instant. */
static uint64_t open_duration(const struct health_params *p, uint32_t trips_in_row, uint64_t rand)
{
    double max = p->open_max_ms > p->open_ms ? p->open_max_ms : p->open_ms;
    double d = p->open_ms;
    for (uint32_t k = 1; k < trips_in_row && d < max; k++)
        d *= 2;
    if (d > max)
        d = max;
    double u = (double)(rand >> 11) * 0x1.0p-53; /* [0, 1) */
    d *= 0.8 + 0.4 * u;
    if (d > max)
        d = max;
    return d < 1 ? 1 : (uint64_t)d;
}

static void trip(struct health *h, uint64_t now, uint64_t rand)
{
    h->trips_in_row++;
    h->trips++;
    h->breaker = HEALTH_BREAKER_OPEN;
    h->epoch++;
    h->open_until = now + open_duration(&h->params, h->trips_in_row, rand);
    h->trials_inflight = 0;
    h->trial_successes = 0;
    h->consecutive = 0;
}

static void close_breaker(struct health *h, uint64_t now)
{
    h->breaker = HEALTH_BREAKER_CLOSED;
    h->epoch++;
    h->closed_since = now;
    h->trials_inflight = 0;
    h->trial_successes = 0;
    clear_window(h); /* the failures that opened it are history */
    limit_recovered(&h->limit, now); /* take its share back gradually */
}

/* NULL if a new request may go there, else why not. */
static const char *blocked(struct health *h, uint64_t now)
{
    if (h->admin == HEALTH_ADMIN_DISABLED)
        return "disabled";
    if (h->admin == HEALTH_ADMIN_DRAINING)
        return "draining";
    if (h->auth_out)
        return "auth";
    if (h->cooldown_until > now)
        return "cooldown";
    if (h->breaker == HEALTH_BREAKER_OPEN)
        return "open";
    if (h->breaker == HEALTH_BREAKER_HALF_OPEN && h->trials_inflight >= trials_allowed(h))
        return "half_open";
    if (health_inflight(h) >= (h->params.max_concurrency ? h->params.max_concurrency
                                                          : limit_current(&h->limit, now)))
        return "saturated";
    if (h->params.rpm) { /* the same bucket as a key's rpm (admit/bucket.h): skipped, not refused */
        bucket_refill(&h->rpm, now);
        if (bucket_wait(&h->rpm, BUCKET_UNITS))
            return "rpm";
    }
    return NULL;
}

/* ---- public ---------------------------------------------------------------- */

void health_init(struct health *h, const struct health_params *p)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    if (p)
        h->params = *p;
    else
        health_params_default(&h->params);
    atomic_init(&h->inflight, 0);
    bucket_set_limit(&h->rpm, h->params.rpm, 0); /* full: the clock brings it up to date */
    h->admin = HEALTH_ADMIN_ACTIVE;
    h->breaker = HEALTH_BREAKER_CLOSED;
    h->ewma = h->params.ewma_prior_ms;
    limit_init(&h->limit, &h->params.limit);
}

void health_destroy(struct health *h)
{
    pthread_mutex_destroy(&h->lock);
}

void health_set_params(struct health *h, const struct health_params *p)
{
    pthread_mutex_lock(&h->lock);
    bool new_buckets = window_bucket_ms(p) != window_bucket_ms(&h->params);
    h->params = *p;
    bucket_set_limit(&h->rpm, p->rpm, h->rpm.at_ms); /* keeps what was used, no time passes */
    if (new_buckets)
        memset(h->window, 0, sizeof h->window); /* old slots mean other times now */
    if (!h->ewma_sampled)
        h->ewma = p->ewma_prior_ms;
    limit_set_params(&h->limit, &p->limit);
    pthread_mutex_unlock(&h->lock);
}

bool health_eligible(struct health *h, uint64_t now_ms, const char **why_not)
{
    pthread_mutex_lock(&h->lock);
    advance(h, now_ms);
    const char *why = blocked(h, now_ms);
    pthread_mutex_unlock(&h->lock);
    if (why_not)
        *why_not = why;
    return why == NULL;
}

bool health_acquire(struct health *h, uint64_t now_ms, struct health_ticket *ticket)
{
    pthread_mutex_lock(&h->lock);
    advance(h, now_ms);
    if (blocked(h, now_ms)) {
        pthread_mutex_unlock(&h->lock);
        return false;
    }
    atomic_fetch_add_explicit(&h->inflight, 1, memory_order_relaxed);
    bucket_take(&h->rpm, BUCKET_UNITS);
    ticket->trial = h->breaker == HEALTH_BREAKER_HALF_OPEN;
    if (ticket->trial)
        h->trials_inflight++;
    ticket->epoch = h->epoch;
    ticket->started_ms = now_ms;
    ticket->held = true;
    pthread_mutex_unlock(&h->lock);
    return true;
}

/* Gives back the ticket's slots; true if it was a trial of the current half-open period. */
static bool put_back(struct health *h, struct health_ticket *ticket)
{
    if (!ticket || !ticket->held)
        return false;
    ticket->held = false;
    atomic_fetch_sub_explicit(&h->inflight, 1, memory_order_relaxed);
    if (ticket->trial && ticket->epoch == h->epoch && h->breaker == HEALTH_BREAKER_HALF_OPEN) {
        h->trials_inflight--;
        return true;
    }
    return false; /* a stale trial: its period ended, and its slots with it */
}

unsigned health_release(struct health *h, struct health_ticket *ticket, uint64_t now_ms,
                        enum health_class cls, uint32_t ttft_ms, uint32_t penalty_ms,
                        uint64_t rand)
{
    if ((unsigned)cls >= HEALTH__COUNT)
        cls = HEALTH_STATUS;
    unsigned events = 0;
    pthread_mutex_lock(&h->lock);
    advance(h, now_ms);
    if (ticket && ticket->held) {
        /* A capacity signal: refusals and errors under load lower the learnt limit, answers
           while busy raise it. Other failures (auth, a bad reply, a timeout) say nothing
           about how many requests it takes. */
        enum limit_signal sig = cls == HEALTH_OK ? LIMIT_OK
                                : cls == HEALTH_RATE_LIMITED || cls == HEALTH_SERVER_ERROR ? LIMIT_OVERLOAD
                                                                                          : LIMIT_NEUTRAL;
        limit_observe(&h->limit, now_ms, ticket->started_ms, health_inflight(h), sig, ttft_ms);
        if (sig == LIMIT_OVERLOAD && !h->params.max_concurrency && health_inflight(h) > 1)
            events |= HEALTH_EVENT_LOAD_REFUSAL;
    }
    bool trial = put_back(h, ticket);
    bool failure = cls != HEALTH_OK;

    h->requests++;
    h->counts[cls]++;
    if (failure) {
        h->last_failure = cls;
        h->last_failure_ms = now_ms;
    } else {
        h->successes++;
    }
    if (cls == HEALTH_AUTH && !h->auth_out) {
        h->auth_out = true;
        events |= HEALTH_EVENT_AUTH_FIRST;
    }

    if (ttft_ms) {
        h->ttft_ring[h->ttft_total % HEALTH_TTFT_RING] = ttft_ms;
        h->ttft_total++;
        ewma_observe(h, now_ms, ttft_ms);
    }
    if (failure && penalty_ms)
        ewma_observe(h, now_ms, penalty_ms);

    /* A 429 that came with a Retry-After is the provider telling us when to come
       back, not a sign of a broken deployment: the cooldown handles it. */
    bool explained = cls == HEALTH_RATE_LIMITED && h->cooldown_until > now_ms;
    /* So is a 429 while others were in flight and no limit is declared: we sent more than it
       takes at once, which the learnt limit corrects without taking it out of service. */
    if (cls == HEALTH_RATE_LIMITED && (events & HEALTH_EVENT_LOAD_REFUSAL))
        explained = true;
    if (!explained) {
        switch (h->breaker) {
        case HEALTH_BREAKER_CLOSED:
            bucket_add(h->window, HEALTH_WINDOW_BUCKETS, window_bucket_ms(&h->params), now_ms, 1,
                       failure);
            if (!failure) {
                h->consecutive = 0;
            } else {
                h->consecutive++;
                if (should_trip(h, now_ms)) {
                    trip(h, now_ms, rand);
                    events |= HEALTH_EVENT_TRIPPED;
                }
            }
            break;
        case HEALTH_BREAKER_HALF_OPEN:
            /* Only the trials decide: a request from before the trip says little
               about the deployment now. */
            if (!trial)
                break;
            if (failure) {
                trip(h, now_ms, rand);
                events |= HEALTH_EVENT_TRIPPED;
            } else if (++h->trial_successes >= trials_allowed(h)) {
                close_breaker(h, now_ms);
                events |= HEALTH_EVENT_CLOSED;
            }
            break;
        case HEALTH_BREAKER_OPEN:
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return events;
}

void health_abandon(struct health *h, struct health_ticket *ticket)
{
    pthread_mutex_lock(&h->lock);
    put_back(h, ticket);
    pthread_mutex_unlock(&h->lock);
}

uint64_t health_returns_at(struct health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    advance(h, now_ms);
    uint64_t at = now_ms;
    if (h->admin != HEALTH_ADMIN_ACTIVE || h->auth_out) {
        at = UINT64_MAX; /* an operator or a new key brings it back, not the clock */
    } else {
        if (h->cooldown_until > at)
            at = h->cooldown_until;
        if (h->breaker == HEALTH_BREAKER_OPEN && h->open_until > at)
            at = h->open_until;
        if (h->params.rpm) {
            bucket_refill(&h->rpm, now_ms);
            uint64_t wait = bucket_wait(&h->rpm, BUCKET_UNITS);
            if (now_ms + wait > at)
                at = now_ms + wait;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return at;
}

uint32_t health_capacity(struct health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    uint32_t c = h->params.max_concurrency ? h->params.max_concurrency : limit_current(&h->limit, now_ms);
    pthread_mutex_unlock(&h->lock);
    return c;
}

double health_slow_start(struct health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    double f = limit_ramp(&h->limit, now_ms);
    pthread_mutex_unlock(&h->lock);
    return f;
}

void health_recovered(struct health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    limit_recovered(&h->limit, now_ms);
    pthread_mutex_unlock(&h->lock);
}

void health_cooldown(struct health *h, uint64_t now_ms, uint32_t ms)
{
    pthread_mutex_lock(&h->lock);
    uint32_t max = h->params.open_max_ms > h->params.open_ms ? h->params.open_max_ms : h->params.open_ms;
    if (ms > max)
        ms = max; /* a provider's "come back tomorrow" should not remove it for a day */
    if (now_ms + ms > h->cooldown_until)
        h->cooldown_until = now_ms + ms;
    pthread_mutex_unlock(&h->lock);
}

void health_set_admin(struct health *h, enum health_admin a)
{
    pthread_mutex_lock(&h->lock);
    h->admin = a;
    if (a == HEALTH_ADMIN_ACTIVE)
        h->auth_out = false;
    pthread_mutex_unlock(&h->lock);
}

enum health_admin health_admin_state(struct health *h)
{
    pthread_mutex_lock(&h->lock);
    enum health_admin a = h->admin;
    pthread_mutex_unlock(&h->lock);
    return a;
}

void health_reset(struct health *h)
{
    pthread_mutex_lock(&h->lock);
    h->breaker = HEALTH_BREAKER_CLOSED;
    h->epoch++;
    h->closed_since = 0;
    h->open_until = 0;
    h->trials_inflight = 0;
    h->trial_successes = 0;
    h->trips_in_row = 0;
    h->cooldown_until = 0;
    h->auth_out = false;
    clear_window(h);
    pthread_mutex_unlock(&h->lock);
}

double health_latency_ms(struct health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    double v = ewma_read(h, now_ms);
    pthread_mutex_unlock(&h->lock);
    return v;
}

double health_score(struct health *h, uint64_t now_ms)
{
    return health_latency_ms(h, now_ms) * (double)(health_inflight(h) + 1);
}

unsigned health_ttft_percentiles(struct health *h, uint32_t *p50, uint32_t *p95, uint32_t *p99)
{
    uint32_t v[3];
    pthread_mutex_lock(&h->lock);
    unsigned n = percentiles_locked(h, v);
    pthread_mutex_unlock(&h->lock);
    if (p50)
        *p50 = v[0];
    if (p95)
        *p95 = v[1];
    if (p99)
        *p99 = v[2];
    return n;
}

void health_snapshot(struct health *h, uint64_t now_ms, struct health_snapshot *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&h->lock);
    advance(h, now_ms);
    out->breaker = health_breaker_name(h->breaker);
    out->admin = health_admin_name(h->admin);
    out->why_not = blocked(h, now_ms);
    out->eligible = out->why_not == NULL;
    out->auth_out = h->auth_out;
    if (h->breaker == HEALTH_BREAKER_OPEN) {
        out->open_until_ms = h->open_until;
        out->open_remaining_ms = h->open_until - now_ms; /* > 0: advance() ran */
    }
    if (h->cooldown_until > now_ms) {
        out->cooldown_until_ms = h->cooldown_until;
        out->cooldown_remaining_ms = h->cooldown_until - now_ms;
    }
    out->trips = h->trips;
    out->trips_in_row = h->trips_in_row;
    out->consecutive_failures = h->consecutive;
    out->trials_inflight = h->trials_inflight;
    out->inflight = health_inflight(h);
    out->max_concurrency = h->params.max_concurrency;
    out->learnt_limit = limit_learnt(&h->limit);
    out->concurrency_limit = h->params.max_concurrency ? h->params.max_concurrency
                                                       : limit_current(&h->limit, now_ms);
    out->slow_start_factor = limit_ramp(&h->limit, now_ms);
    out->ttft_baseline_ms = limit_baseline_ms(&h->limit, now_ms);
    out->limit_increases = h->limit.increases;
    out->limit_decreases = h->limit.decreases;
    out->rpm_used = rpm_used(h, now_ms);
    out->rpm_limit = h->params.rpm;
    out->ewma_ttft_ms = ewma_read(h, now_ms);
    uint32_t pct[3];
    out->ttft_samples = percentiles_locked(h, pct);
    out->ttft_p50_ms = pct[0];
    out->ttft_p95_ms = pct[1];
    out->ttft_p99_ms = pct[2];
    out->requests = h->requests;
    out->successes = h->successes;
    memcpy(out->counts, h->counts, sizeof out->counts);
    bucket_sum(h->window, HEALTH_WINDOW_BUCKETS, window_bucket_ms(&h->params), now_ms,
               &out->window_requests, &out->window_failures);
    if (out->window_requests)
        out->window_failure_ratio = (double)out->window_failures / out->window_requests;
    if (h->requests > h->successes) {
        out->last_failure = health_class_name(h->last_failure);
        out->last_failure_ms = h->last_failure_ms;
    }
    pthread_mutex_unlock(&h->lock);
}

void health_abandon_after(struct health *h, struct health_ticket *ticket, uint32_t waited_ms)
{
    if (waited_ms) {
        /* Its first token would have come no sooner than this: a lower bound belongs in
           the percentiles, or a deployment whose slow answers are always cancelled would
           look as fast as its fast ones (and a learnt hedge delay would hedge every
           request). The EWMA, which steers the balancer, is left to real outcomes. */
        pthread_mutex_lock(&h->lock);
        h->ttft_ring[h->ttft_total % HEALTH_TTFT_RING] = waited_ms;
        h->ttft_total++;
        pthread_mutex_unlock(&h->lock);
    }
    health_abandon(h, ticket);
}
