#include "route/limit.h"

#include <math.h>
#include <string.h>

#define TTFT_EWMA_ALPHA 0.3 /* the recent TTFT: about the last three samples */
#define MIN_SAMPLES 5       /* before inflation is judged: one slow answer is not a trend */

void limit_params_default(struct limit_params *p)
{
    *p = (struct limit_params){
        .initial = 20,
        .min = 1,
        .max = 1000,
        .backoff = 0.5,
        .ttft_tolerance = 3.0,
        .ttft_slack_ms = 200,
        .baseline_ms = 60000,
        .ok_window_ms = 10000,
        .slow_start_ms = 30000,
        .aggression = 1.0,
        .min_weight = 0.1,
    };
}

static double clamp(const struct limit_params *p, double v)
{
    double lo = p->min ? p->min : 1, hi = p->max > lo ? p->max : lo;
    return v < lo ? lo : v > hi ? hi : v;
}

void limit_init(struct limit *l, const struct limit_params *p)
{
    memset(l, 0, sizeof *l);
    if (p)
        l->params = *p;
    else
        limit_params_default(&l->params);
    l->value = clamp(&l->params, l->params.initial);
    l->probing = true;
}

void limit_set_params(struct limit *l, const struct limit_params *p)
{
    l->params = *p;
    l->value = clamp(p, l->value);
}

/* The lowest TTFT of the current and the previous period: a minimum that forgets, so a
   deployment that became slower for good gets a new baseline within two periods. */
static void baseline_note(struct limit *l, uint64_t now, uint32_t ttft)
{
    uint32_t len = l->params.baseline_ms ? l->params.baseline_ms : 60000;
    uint64_t period = now / len + 1;
    if (period != l->base_period) {
        l->base_prev = period == l->base_period + 1 ? l->base_cur : 0;
        l->base_cur = 0;
        l->base_period = period;
    }
    if (!l->base_cur || ttft < l->base_cur)
        l->base_cur = ttft;
}

uint32_t limit_baseline_ms(const struct limit *l, uint64_t now_ms)
{
    uint32_t len = l->params.baseline_ms ? l->params.baseline_ms : 60000;
    uint64_t period = now_ms / len + 1;
    uint32_t cur = l->base_cur, prev = l->base_prev;
    if (period != l->base_period) { /* no sample in this period yet */
        prev = period == l->base_period + 1 ? cur : 0;
        cur = 0;
    }
    if (!cur)
        return prev;
    return prev && prev < cur ? prev : cur;
}

/* The highest in flight at which a success came, over the current and the previous
   ok period (a maximum that forgets, like the TTFT baseline). */
static uint32_t ok_level(struct limit *l, uint64_t now, uint32_t note)
{
    uint32_t len = l->params.ok_window_ms ? l->params.ok_window_ms : 10000;
    uint64_t period = now / len + 1;
    if (period != l->ok_period) {
        l->ok_prev = period == l->ok_period + 1 ? l->ok_cur : 0;
        l->ok_cur = 0;
        l->ok_period = period;
    }
    if (note > l->ok_cur)
        l->ok_cur = note;
    return l->ok_cur > l->ok_prev ? l->ok_cur : l->ok_prev;
}

static bool inflated(const struct limit *l, uint64_t now)
{
    uint32_t base = limit_baseline_ms(l, now);
    return base && l->samples >= MIN_SAMPLES && l->ttft_recent > l->params.ttft_tolerance * base &&
           l->ttft_recent - base > l->params.ttft_slack_ms;
}

static int decrease(struct limit *l, uint64_t now, uint64_t started)
{
    /* Once per round trip: what started before the last decrease ran under the old limit. */
    if (l->last_decrease_ms && started < l->last_decrease_ms)
        return 0;
    double before = l->value;
    l->value = clamp(&l->params, floor(l->value * l->params.backoff));
    l->probing = false;
    l->last_decrease_ms = now ? now : 1;
    if (l->value == before)
        return 0;
    l->decreases++;
    return -1;
}

int limit_observe(struct limit *l, uint64_t now_ms, uint64_t started_ms, uint32_t inflight,
                  enum limit_signal sig, uint32_t ttft_ms)
{
    if (sig == LIMIT_OVERLOAD) {
        /* refused where answers came a moment ago: not our concurrency */
        if (inflight <= ok_level(l, now_ms, 0))
            return 0;
        return decrease(l, now_ms, started_ms);
    }
    if (sig != LIMIT_OK)
        return 0;
    ok_level(l, now_ms, inflight);
    bool busy = (double)inflight * 2 >= l->value;
    if (ttft_ms) {
        baseline_note(l, now_ms, ttft_ms);
        l->ttft_recent = l->samples ? l->ttft_recent + TTFT_EWMA_ALPHA * (ttft_ms - l->ttft_recent)
                                    : (double)ttft_ms;
        if (l->samples < UINT32_MAX)
            l->samples++;
        /* Slower answers only under load are queueing at the provider: back off before it
           starts refusing. Slow while idle is the model (a long prompt), not a limit. */
        if (busy && inflated(l, now_ms))
            return decrease(l, now_ms, started_ms);
    }
    if (!busy)
        return 0;
    double before = l->value;
    l->value = clamp(&l->params, l->value + (l->probing ? 1.0 : 1.0 / l->value));
    if ((uint32_t)l->value == (uint32_t)before)
        return 0;
    l->increases++;
    return 1;
}

uint32_t limit_learnt(const struct limit *l)
{
    return (uint32_t)clamp(&l->params, l->value);
}

double limit_slow_start_factor(uint64_t elapsed_ms, uint32_t window_ms, double aggression,
                               double min_weight)
{
    if (window_ms == 0 || elapsed_ms >= window_ms)
        return 1.0;
    double a = aggression > 0 ? aggression : 1.0;
    double f = pow((double)elapsed_ms / window_ms, 1.0 / a);
    return f < min_weight ? min_weight : f > 1.0 ? 1.0 : f;
}

double limit_ramp(const struct limit *l, uint64_t now_ms)
{
    if (!l->recovered_ms)
        return 1.0;
    uint64_t elapsed = now_ms > l->recovered_ms ? now_ms - l->recovered_ms : 0;
    return limit_slow_start_factor(elapsed, l->params.slow_start_ms, l->params.aggression,
                                   l->params.min_weight);
}

uint32_t limit_current(const struct limit *l, uint64_t now_ms)
{
    double v = floor(limit_learnt(l) * limit_ramp(l, now_ms));
    return (uint32_t)clamp(&l->params, v);
}

void limit_recovered(struct limit *l, uint64_t now_ms)
{
    if (l->params.slow_start_ms)
        l->recovered_ms = now_ms ? now_ms : 1;
    l->probing = true;
}
