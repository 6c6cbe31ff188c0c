/*
 * ttft_budget — how long one deployment may take to its first token before a
 * hedged attempt starts elsewhere: its first-token budget, learnt online from
 * its own first tokens, per prompt size.
 *
 * Prefill grows with the prompt, so a 30,000-token prompt may normally take
 * seconds where a short one takes 300 ms: one number per deployment would
 * either hedge every long prompt or wait seconds for every short one. The
 * requests are put in log-spaced prompt-size classes (tokens estimated as the
 * prompt's characters / 4: < 256, < 1k, < 4k, < 16k, < 64k, larger) and each
 * class keeps its own estimate. Classes rather than a fitted line
 * ttft = a + b·tokens because a fit has to be robust to the very outliers it
 * exists to find (a busy provider's 20 s) and to providers whose curve is not
 * a line (prompt caches, chunked prefill); a class needs no such assumption,
 * and a class with no data borrows from the ones that have (below).
 *
 * Per class, a histogram of TTFT over 96 log-spaced bins (10 ms to 41 s, each
 * 9 % wider than the last) whose weights decay by 1/256 per sample: bounded
 * memory (2.3 KiB per deployment), no allocation, O(bins) per sample, recent
 * behaviour counts most (about the last 256 samples of the class), and a
 * quantile is read off the cumulative weights to within half a bin (±4.5 %).
 * The learnt value is the class's p99; the budget is p99 × 1.5, at least
 * 250 ms, at most the hard first-token deadline.
 *
 * Only real first tokens are samples. A cancelled hedge loser's wait is a lower
 * bound of its TTFT, and counting it would ratchet the budget up: a deployment
 * busy on 30 % of requests has a true p99 of its busy time (20 s), its losers
 * are cancelled just past the budget, and each one would push the budget past
 * the next. What should be hedged is what is slow for this deployment when it
 * works normally, and the 1.5 margin above p99 keeps the converse (slow
 * answers cut off, so the estimate only sees fast ones) from drifting down:
 * what is cut off lies above p99 × 1.5 and barely moves p99.
 *
 * A class with 20 samples uses its p99 × 1.5; one with 3 to 19 already uses
 * its own figure, with a margin of 2 at 3 samples shrinking linearly to 1.5 at
 * 20 (a p99 of a few samples is about their maximum, which comes closer to the
 * true p99 the more there are), so a deployment leaves the cold default after
 * a handful of answers. Before a class has 3 samples, in this order:
 *   - this deployment's nearest shorter class that has a figure, plus 0.2 ms
 *     per extra token (a 5,000 tokens/s prefill, slow for a cloud GPU:
 *     conservative): prefill speed is the deployment's own, so its short
 *     prompts predict its long ones better than another provider's long ones
 *     (a self-hosted engine slow on long prompts would otherwise be hedged on
 *     every long prompt while its siblings are fast, and, its first tokens
 *     never arriving before the hedge wins, never learn better);
 *   - the model's other deployments' figure for the class (the highest):
 *     the same model on another provider is the next best guess;
 *   - cold: 1.2 s + 0.2 ms per token. Long enough for most healthy cloud
 *     providers' first token on a short prompt (typically 0.3-1 s), short
 *     enough that a provider stuck sending keep-alives for 20 s costs its
 *     client 1.2 s, not 30. It only holds for a deployment's first five
 *     answers of a prompt size, so its price is a few hedges at start (within
 *     the hedge budget) where a slower model answers normally in 1.2-3 s; a
 *     longer cold value showed as the p99 of the overload benchmark (2.8 s
 *     at 2.5 s: the keep-alives of the first answers).
 *
 * One per deployment, in struct runtime_dep, shared by every worker (a mutex
 * inside). The proxy calls ttft_budget_observe with each attempt's first token
 * and ttft_budget_get when an attempt starts; the admin API and metrics read
 * it with ttft_budget_get and ttft_budget_class_stats. No I/O, no clock.
 */
#ifndef UNBUSY_TTFT_BUDGET_H
#define UNBUSY_TTFT_BUDGET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TTFT_BUDGET_CLASSES 6
#define TTFT_BUDGET_BINS 96

#define TTFT_BUDGET_MARGIN 1.5
#define TTFT_BUDGET_FLOOR_MS 250u
#define TTFT_BUDGET_COLD_MS 1200u
#define TTFT_BUDGET_COLD_US_PER_TOKEN 200u /* 0.2 ms: a 5,000 tokens/s prefill */
#define TTFT_BUDGET_MIN_SAMPLES 20u        /* samples before a class's p99 is fully trusted */
#define TTFT_BUDGET_EARLY_SAMPLES 3u       /* samples before it is used at all, ... */
#define TTFT_BUDGET_EARLY_MARGIN 2.0       /* ... with this margin, shrinking to MARGIN at MIN_SAMPLES */
#define TTFT_BUDGET_DECAY (1.0 / 256)      /* per sample of the class */

/* Prompt sizes the admin API and metrics show: a chat turn, a long document. */
#define TTFT_BUDGET_SHORT_TOKENS 200u
#define TTFT_BUDGET_LONG_TOKENS 20000u

/* Decay without a pass over the bins per sample: each sample weighs 1/(1-DECAY) times the
   last (`unit`), which is the same as every older weight shrinking by (1-DECAY); the weights
   are scaled back (unit 1) once unit passes TTFT_BUDGET_RESCALE. A quantile is a ratio of
   weights, so the scale does not show; the decayed count is total / unit. */
#define TTFT_BUDGET_RESCALE 65536.0

struct ttft_budget_class {
    float weight[TTFT_BUDGET_BINS];
    double total;     /* the weights' sum */
    double unit;      /* what the next sample weighs (0: none yet, the same as 1) */
    uint64_t samples; /* ever */
};

/* Fields are private: use the functions. */
struct ttft_budget {
    pthread_mutex_t lock;
    struct ttft_budget_class cls[TTFT_BUDGET_CLASSES];
};

/* Where a budget came from (tried in the order learnt, shorter, siblings, cold). */
enum ttft_budget_source {
    TTFT_BUDGET_LEARNT,   /* this deployment, this prompt-size class */
    TTFT_BUDGET_SIBLINGS, /* the model's other deployments, this class */
    TTFT_BUDGET_SHORTER,  /* this deployment's nearest shorter class, plus the extra tokens */
    TTFT_BUDGET_COLD,     /* nothing learnt yet */
};

struct ttft_budget_info {
    uint32_t budget_ms;           /* the budget in use: max(floor, p99 × margin), at most cap */
    uint32_t p99_ms;              /* the p99 it comes from (the cold value when cold) */
    enum ttft_budget_source source;
    unsigned cls;                 /* the prompt-size class */
};

struct ttft_budget_class_stats {
    uint32_t max_tokens; /* the class holds prompts below this; 0 for the last (no bound) */
    uint64_t samples;    /* ever */
    double weight;       /* decayed: about the samples that count now */
    uint32_t p50_ms, p99_ms; /* 0 without samples */
};

void ttft_budget_init(struct ttft_budget *t);
void ttft_budget_destroy(struct ttft_budget *t);

/* The prompt-size class of a prompt of this many (estimated) tokens, 0..CLASSES-1. */
unsigned ttft_budget_class_of(uint32_t prompt_tokens);
/* "learnt", "siblings", "shorter", "cold". Stable: used in the admin API and as metric labels. */
const char *ttft_budget_source_name(enum ttft_budget_source s);

/* One real first token after ttft_ms (0 counts as 1 ms) for a prompt of prompt_tokens. */
void ttft_budget_observe(struct ttft_budget *t, uint32_t prompt_tokens, uint32_t ttft_ms);

/*
 * The first-token budget of deployment t for a prompt of prompt_tokens.
 * others: the model's other deployments (t itself, if among them, is skipped;
 * NULL when n is 0). cap_ms: the hard first-token deadline, which bounds the
 * budget (0: no bound). Returns the budget in ms; *info (may be NULL) says
 * where it came from. Locks t and each of others in turn, never two at once.
 */
uint32_t ttft_budget_get(struct ttft_budget *t, struct ttft_budget *const *others, size_t n,
                         uint32_t prompt_tokens, uint32_t cap_ms, struct ttft_budget_info *info);

/* What class c holds now. */
void ttft_budget_class_stats(struct ttft_budget *t, unsigned c, struct ttft_budget_class_stats *out);

#endif
