#include "route/ttft_budget.h"

#include <math.h>
#include <string.h>

#define BIN_LOW_MS 10.0  /* the lowest bin's lower edge */
#define BINS_PER_OCTAVE 8 /* each bin 2^(1/8) = 1.09 times wider than the last */

static const char *const source_names[] = {
    [TTFT_BUDGET_LEARNT] = "learnt",
    [TTFT_BUDGET_SIBLINGS] = "siblings",
    [TTFT_BUDGET_SHORTER] = "shorter",
    [TTFT_BUDGET_COLD] = "cold",
};

const char *ttft_budget_source_name(enum ttft_budget_source s)
{
    return (unsigned)s <= TTFT_BUDGET_COLD ? source_names[s] : "?";
}

void ttft_budget_init(struct ttft_budget *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
}

void ttft_budget_destroy(struct ttft_budget *t)
{
    pthread_mutex_destroy(&t->lock);
}

/* Class c holds prompts of fewer than 256·4^c tokens (the last one: any larger). */
static uint32_t class_max_tokens(unsigned c)
{
    return c + 1 < TTFT_BUDGET_CLASSES ? 256u << (2 * c) : 0;
}

unsigned ttft_budget_class_of(uint32_t prompt_tokens)
{
    unsigned c = 0;
    while (c + 1 < TTFT_BUDGET_CLASSES && prompt_tokens >= class_max_tokens(c))
        c++;
    return c;
}

static unsigned bin_of(uint32_t ms)
{
    if (ms <= BIN_LOW_MS)
        return 0;
    double k = floor(BINS_PER_OCTAVE * log2(ms / BIN_LOW_MS));
    return k >= TTFT_BUDGET_BINS - 1 ? TTFT_BUDGET_BINS - 1 : (unsigned)k;
}

static double bin_low(double k)
{
    return BIN_LOW_MS * exp2(k / BINS_PER_OCTAVE);
}

/* The q-quantile of a class: the bin where the cumulative weight reaches q·total, and within
   it geometrically (the bins are log-spaced). 0 without samples. */
static uint32_t quantile(const struct ttft_budget_class *c, double q)
{
    if (c->total <= 0)
        return 0;
    double target = q * c->total, cum = 0;
    unsigned last = 0;
    for (unsigned k = 0; k < TTFT_BUDGET_BINS; k++) {
        double w = c->weight[k];
        if (w <= 0)
            continue;
        last = k;
        if (cum + w >= target) {
            double f = (target - cum) / w;
            return (uint32_t)lround(bin_low(k + (f < 0 ? 0 : f > 1 ? 1 : f)));
        }
        cum += w;
    }
    return (uint32_t)lround(bin_low(last + 1)); /* rounding left target past the sum */
}

/* Weights and unit divided by unit: the decay so far made real. A weight under 1e-6 of a
   sample's is dropped (no denormals after a long quiet spell in one bin). */
static void rescale(struct ttft_budget_class *c)
{
    double total = 0;
    for (unsigned k = 0; k < TTFT_BUDGET_BINS; k++) {
        c->weight[k] = (float)(c->weight[k] / c->unit);
        if (c->weight[k] < 1e-6f) c->weight[k] = 0;
        total += c->weight[k];
    }
    c->total = total; /* summed afresh: no drift of a running total */
    c->unit = 1;
}

void ttft_budget_observe(struct ttft_budget *t, uint32_t prompt_tokens, uint32_t ttft_ms)
{
    struct ttft_budget_class *c = &t->cls[ttft_budget_class_of(prompt_tokens)];
    unsigned bin = bin_of(ttft_ms ? ttft_ms : 1);
    pthread_mutex_lock(&t->lock);
    c->unit = c->unit > 0 ? c->unit / (1.0 - TTFT_BUDGET_DECAY) : 1;
    c->weight[bin] += (float)c->unit;
    c->total += c->unit;
    c->samples++;
    if (c->unit > TTFT_BUDGET_RESCALE) rescale(c);
    pthread_mutex_unlock(&t->lock);
}

/* The margin over a class's p99 with n samples: EARLY_MARGIN at EARLY_SAMPLES, shrinking
   linearly to MARGIN at MIN_SAMPLES (the p99 of a few samples is about their maximum, and
   the more there are, the closer that maximum comes to the true p99). */
static double early_margin(uint64_t n)
{
    if (n >= TTFT_BUDGET_MIN_SAMPLES)
        return TTFT_BUDGET_MARGIN;
    if (n < TTFT_BUDGET_EARLY_SAMPLES)
        n = TTFT_BUDGET_EARLY_SAMPLES;
    double left = (double)(TTFT_BUDGET_MIN_SAMPLES - n) /
                  (double)(TTFT_BUDGET_MIN_SAMPLES - TTFT_BUDGET_EARLY_SAMPLES);
    return TTFT_BUDGET_MARGIN + (TTFT_BUDGET_EARLY_MARGIN - TTFT_BUDGET_MARGIN) * left;
}

/* The class's p99 once it has a few samples, else 0; *margin: the margin it deserves. */
static uint32_t learnt_p99(struct ttft_budget *t, unsigned c, double *margin)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->cls[c].samples;
    uint32_t v = n >= TTFT_BUDGET_EARLY_SAMPLES ? quantile(&t->cls[c], 0.99) : 0;
    pthread_mutex_unlock(&t->lock);
    *margin = early_margin(n);
    return v;
}

static uint32_t prefill_ms(uint32_t tokens)
{
    return (uint32_t)((uint64_t)tokens * TTFT_BUDGET_COLD_US_PER_TOKEN / 1000u);
}

uint32_t ttft_budget_get(struct ttft_budget *t, struct ttft_budget *const *others, size_t n,
                         uint32_t prompt_tokens, uint32_t cap_ms, struct ttft_budget_info *info)
{
    unsigned c = ttft_budget_class_of(prompt_tokens);
    enum ttft_budget_source src = TTFT_BUDGET_LEARNT;
    double margin = TTFT_BUDGET_MARGIN;
    uint32_t p99 = learnt_p99(t, c, &margin);
    for (unsigned k = c; !p99 && k-- > 0;) {
        uint32_t v = learnt_p99(t, k, &margin);
        if (v) {
            src = TTFT_BUDGET_SHORTER;
            uint32_t below = class_max_tokens(k);
            p99 = v + (prompt_tokens > below ? prefill_ms(prompt_tokens - below) : 0);
        }
    }
    if (!p99) {
        src = TTFT_BUDGET_SIBLINGS;
        for (size_t i = 0; i < n; i++) {
            if (others[i] == t)
                continue;
            double m;
            uint32_t v = learnt_p99(others[i], c, &m);
            if (v > p99) {
                p99 = v; /* the slowest sibling: while unsure, hedge less */
                margin = m;
            }
        }
    }
    double budget;
    if (p99) {
        budget = p99 * margin;
        if (budget < TTFT_BUDGET_FLOOR_MS)
            budget = TTFT_BUDGET_FLOOR_MS;
    } else {
        src = TTFT_BUDGET_COLD;
        budget = (double)TTFT_BUDGET_COLD_MS + prefill_ms(prompt_tokens);
    }
    if (cap_ms && budget > cap_ms)
        budget = cap_ms;
    uint32_t ms = budget >= UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
    if (info)
        *info = (struct ttft_budget_info){.budget_ms = ms, .p99_ms = p99, .source = src, .cls = c};
    return ms;
}

void ttft_budget_class_stats(struct ttft_budget *t, unsigned c, struct ttft_budget_class_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c >= TTFT_BUDGET_CLASSES)
        return;
    out->max_tokens = class_max_tokens(c);
    pthread_mutex_lock(&t->lock);
    out->samples = t->cls[c].samples;
    out->weight = t->cls[c].unit > 0 ? t->cls[c].total / t->cls[c].unit : 0;
    out->p50_ms = quantile(&t->cls[c], 0.5);
    out->p99_ms = quantile(&t->cls[c], 0.99);
    pthread_mutex_unlock(&t->lock);
}
