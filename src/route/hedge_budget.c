#include "route/hedge_budget.h"

#include <string.h>

void hedge_budget_params_default(struct hedge_budget_params *p)
{
    *p = (struct hedge_budget_params){
        .base_ratio = 0.05, .max_ratio = 0.2, .earn = 2, .min_per_sec = 1, .window_ms = 10000};
}

static uint32_t bucket_ms(const struct hedge_budget_params *p)
{
    uint32_t ms = p->window_ms / HEDGE_BUDGET_BUCKETS;
    return ms ? ms : 1;
}

static struct hedge_budget_bucket *current(struct hedge_budget *b, uint64_t now)
{
    uint64_t e = now / bucket_ms(&b->params) + 1;
    struct hedge_budget_bucket *s = &b->buckets[e % HEDGE_BUDGET_BUCKETS];
    if (s->epoch != e)
        *s = (struct hedge_budget_bucket){.epoch = e};
    return s;
}

/* Sums the window into *w (its epoch unused); returns the hedges allowed in it, 0 when stopped. */
static uint32_t sum(const struct hedge_budget *b, uint64_t now, struct hedge_budget_bucket *w,
                    bool *stopped)
{
    uint64_t e = now / bucket_ms(&b->params) + 1;
    memset(w, 0, sizeof *w);
    for (unsigned i = 0; i < HEDGE_BUDGET_BUCKETS; i++) {
        const struct hedge_budget_bucket *s = &b->buckets[i];
        if (s->epoch && s->epoch <= e && e - s->epoch < HEDGE_BUDGET_BUCKETS) {
            w->requests += s->requests;
            w->hedges += s->hedges;
            w->useful += s->useful;
            w->failed += s->failed;
        }
    }
    *stopped = w->failed >= HEDGE_BUDGET_STOP_FAILURES && w->failed > w->useful;
    if (*stopped)
        return 0;
    const struct hedge_budget_params *p = &b->params;
    double need = p->base_ratio * w->requests + p->earn * w->useful;
    double cap = p->max_ratio * w->requests;
    double allowed = (need < cap ? need : cap) + p->min_per_sec * p->window_ms / 1000.0;
    return allowed <= 0 ? 0 : allowed >= UINT32_MAX ? UINT32_MAX : (uint32_t)allowed;
}

void hedge_budget_init(struct hedge_budget *b, const struct hedge_budget_params *p)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    if (p)
        b->params = *p;
    else
        hedge_budget_params_default(&b->params);
}

void hedge_budget_set_params(struct hedge_budget *b, const struct hedge_budget_params *p)
{
    pthread_mutex_lock(&b->lock);
    if (bucket_ms(p) != bucket_ms(&b->params))
        memset(b->buckets, 0, sizeof b->buckets); /* old slots mean other times now */
    b->params = *p;
    pthread_mutex_unlock(&b->lock);
}

void hedge_budget_destroy(struct hedge_budget *b)
{
    pthread_mutex_destroy(&b->lock);
}

void hedge_budget_note_request(struct hedge_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    current(b, now_ms)->requests++;
    pthread_mutex_unlock(&b->lock);
}

bool hedge_budget_try_spend(struct hedge_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    struct hedge_budget_bucket w;
    bool stopped;
    bool ok = sum(b, now_ms, &w, &stopped) > w.hedges;
    if (ok) {
        current(b, now_ms)->hedges++;
        b->spent++;
    } else {
        b->denied++;
        if (stopped)
            b->stopped++;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void hedge_budget_note_result(struct hedge_budget *b, uint64_t now_ms, bool useful)
{
    pthread_mutex_lock(&b->lock);
    struct hedge_budget_bucket *s = current(b, now_ms);
    if (useful)
        s->useful++;
    else
        s->failed++;
    pthread_mutex_unlock(&b->lock);
}

void hedge_budget_get_stats(struct hedge_budget *b, uint64_t now_ms, struct hedge_budget_stats *out)
{
    pthread_mutex_lock(&b->lock);
    struct hedge_budget_bucket w;
    out->allowed = sum(b, now_ms, &w, &out->stopped);
    out->requests = w.requests;
    out->hedges = w.hedges;
    out->useful = w.useful;
    out->failed = w.failed;
    out->spent = b->spent;
    out->denied = b->denied;
    pthread_mutex_unlock(&b->lock);
}
