#include "route/retry_budget.h"

#include <string.h>

void retry_budget_params_default(struct retry_budget_params *p)
{
    *p = (struct retry_budget_params){.ratio = 0.2, .min_per_sec = 3, .window_ms = 10000};
}

static uint32_t bucket_ms(const struct retry_budget_params *p)
{
    uint32_t ms = p->window_ms / RETRY_BUDGET_BUCKETS;
    return ms ? ms : 1;
}

static struct retry_budget_bucket *current(struct retry_budget *b, uint64_t now)
{
    uint64_t e = now / bucket_ms(&b->params) + 1;
    struct retry_budget_bucket *s = &b->buckets[e % RETRY_BUDGET_BUCKETS];
    if (s->epoch != e) {
        s->epoch = e;
        s->requests = s->retries = 0;
    }
    return s;
}

/* Sums the buckets of the last window; returns the retries allowed in it. */
static uint32_t sum(const struct retry_budget *b, uint64_t now, uint32_t *requests,
                    uint32_t *retries)
{
    uint64_t e = now / bucket_ms(&b->params) + 1;
    uint32_t req = 0, ret = 0;
    for (unsigned i = 0; i < RETRY_BUDGET_BUCKETS; i++) {
        const struct retry_budget_bucket *s = &b->buckets[i];
        if (s->epoch && s->epoch <= e && e - s->epoch < RETRY_BUDGET_BUCKETS) {
            req += s->requests;
            ret += s->retries;
        }
    }
    *requests = req;
    *retries = ret;
    double ratio = b->params.ratio > 0 ? b->params.ratio : 0;
    double reserve = b->params.min_per_sec > 0 ? b->params.min_per_sec : 0;
    double allowed = ratio * req + reserve * b->params.window_ms / 1000.0;
    return allowed >= UINT32_MAX ? UINT32_MAX : (uint32_t)allowed;
}

void retry_budget_init(struct retry_budget *b, const struct retry_budget_params *p)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    if (p)
        b->params = *p;
    else
        retry_budget_params_default(&b->params);
}

void retry_budget_destroy(struct retry_budget *b)
{
    pthread_mutex_destroy(&b->lock);
}

void retry_budget_set_params(struct retry_budget *b, const struct retry_budget_params *p)
{
    pthread_mutex_lock(&b->lock);
    if (bucket_ms(p) != bucket_ms(&b->params))
        memset(b->buckets, 0, sizeof b->buckets); /* old slots mean other times now */
    b->params = *p;
    pthread_mutex_unlock(&b->lock);
}

void retry_budget_note_request(struct retry_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    current(b, now_ms)->requests++;
    pthread_mutex_unlock(&b->lock);
}

bool retry_budget_try_spend(struct retry_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    uint32_t req, ret;
    bool ok = sum(b, now_ms, &req, &ret) > ret;
    if (ok) {
        current(b, now_ms)->retries++;
        b->spent++;
    } else {
        b->denied++;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void retry_budget_get_stats(struct retry_budget *b, uint64_t now_ms, struct retry_budget_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->allowed = sum(b, now_ms, &out->requests, &out->retries);
    out->spent = b->spent;
    out->denied = b->denied;
    pthread_mutex_unlock(&b->lock);
}
