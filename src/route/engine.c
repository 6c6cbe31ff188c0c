#include "route/engine.h"

#include <string.h>

#define ENGINE_KV_FACTOR_MAX 4.0
#define ENGINE_KV_CALM 0.8
#define ENGINE_SCRAPE_SLACK 1.0
#define ENGINE_FRESH_INTERVALS 2.0
#define ENGINE_STALE_INTERVALS 5.0
#define ENGINE_MAX_GAUGE 1000000.0 /* a larger queue is a lie or a broken engine */

void engine_state_init(struct engine_state *st, const struct cfg_provider *p)
{
    memset(st, 0, sizeof *st);
    st->enabled = p && p->metrics.enabled;
    st->interval_ms = p && p->metrics.interval_ms ? p->metrics.interval_ms : 1000;
}

void engine_query_of(enum cfg_engine e, struct prom_query *q, const char *const *models,
                     size_t nmodels)
{
    memset(q, 0, sizeof *q);
    static const char *const names[][ENGINE__SERIES] = {
        [CFG_ENGINE_VLLM] = {"vllm:num_requests_waiting", "vllm:num_requests_running",
                             "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
        [CFG_ENGINE_SGLANG] = {"sglang:num_queue_reqs", "sglang:num_running_reqs",
                               "sglang:token_usage", NULL},
        [CFG_ENGINE_LLAMA_CPP] = {"llamacpp:requests_deferred", "llamacpp:requests_processing",
                                  "llamacpp:kv_cache_usage_ratio", NULL},
        [CFG_ENGINE_TGI] = {"tgi_queue_size", "tgi_batch_current_size", NULL, NULL},
    };
    if ((unsigned)e >= sizeof names / sizeof names[0] || e == CFG_ENGINE_NONE) return;
    for (size_t k = 0; k < ENGINE__SERIES; k++)
        q->names[k] = names[e][k];
    q->nnames = ENGINE__SERIES;
    /* vLLM and SGLang label their series with the served model's name */
    if (e == CFG_ENGINE_VLLM || e == CFG_ENGINE_SGLANG) {
        q->label = "model_name";
        for (size_t i = 0; i < nmodels && q->nvalues < PROM_MAX_LABEL_VALUES; i++)
            q->values[q->nvalues++] = models[i];
    }
}

static unsigned gauge(double v)
{
    if (!(v > 0)) return 0;
    return v > ENGINE_MAX_GAUGE ? (unsigned)ENGINE_MAX_GAUGE : (unsigned)(v + 0.5);
}

bool engine_record_scrape(struct engine_state *st, const struct prom_parser *p,
                          uint32_t own_inflight, uint64_t now_ms)
{
    if (p->count[ENGINE_WAITING] == 0) return false;
    atomic_store(&st->own_at_scrape, own_inflight);
    atomic_store(&st->waiting, gauge(p->sum[ENGINE_WAITING]));
    atomic_store(&st->running, gauge(p->sum[ENGINE_RUNNING]));
    /* a share per model: several models' series are averaged */
    double kv = 0;
    if (p->count[ENGINE_KV])
        kv = p->sum[ENGINE_KV] / p->count[ENGINE_KV];
    else if (p->count[ENGINE_KV_ALT])
        kv = p->sum[ENGINE_KV_ALT] / p->count[ENGINE_KV_ALT];
    if (kv > 1.0 && kv <= 100.0) kv /= 100.0; /* a percentage after all */
    kv = kv < 0 ? 0 : kv > 1 ? 1 : kv;
    atomic_store(&st->kv_permille, (unsigned)(kv * 1000.0 + 0.5));
    atomic_store(&st->scraped_at_ms, now_ms ? now_ms : 1);
    atomic_fetch_add(&st->seq, 1);
    atomic_store(&st->fail_streak, 0);
    atomic_fetch_add(&st->scrapes_ok, 1);
    return true;
}

uint32_t engine_record_failure(struct engine_state *st)
{
    atomic_fetch_add(&st->scrapes_failed, 1);
    return atomic_fetch_add(&st->fail_streak, 1) + 1;
}

double engine_freshness(const struct engine_state *st, uint64_t now_ms)
{
    if (!st || !st->enabled) return 0;
    uint64_t at = atomic_load(&st->scraped_at_ms);
    if (!at) return 0;
    double age = now_ms > at ? (double)(now_ms - at) : 0;
    double iv = st->interval_ms ? st->interval_ms : 1000;
    double fresh = ENGINE_FRESH_INTERVALS * iv, stale = ENGINE_STALE_INTERVALS * iv;
    if (age <= fresh) return 1;
    if (age >= stale) return 0;
    return (stale - age) / (stale - fresh);
}

double engine_estimate(const struct engine_state *st, uint32_t inflight, uint64_t now_ms)
{
    double plain = (double)inflight + 1.0;
    double a = engine_freshness(st, now_ms);
    if (a <= 0) return plain;
    /* what others put on the engine: its queue and batch less ours at the scrape */
    double carried = (double)atomic_load(&st->waiting) + (double)atomic_load(&st->running);
    /* less one request of slack: the engine counts at some instant between the scrape going
       out and its answer, while requests come and go (and a hedge's loser runs on a moment
       after the gateway let it go); weighed by a full cache, that noise alone would make an
       engine look four requests busier than it is */
    double own = (double)atomic_load(&st->own_at_scrape) + ENGINE_SCRAPE_SLACK;
    double foreign = carried > own ? carried - own : 0;
    double kv = atomic_load(&st->kv_permille) / 1000.0;
    /* below ENGINE_KV_CALM the cache is no constraint; from there to full, preemption and
       recomputation come closer: up to ENGINE_KV_FACTOR_MAX */
    double kv_factor =
        kv <= ENGINE_KV_CALM
            ? 1.0
            : 1.0 + (ENGINE_KV_FACTOR_MAX - 1.0) * (kv - ENGINE_KV_CALM) / (1.0 - ENGINE_KV_CALM);
    /* the KV pressure weighs the others' load only: ours is counted live, and weighing it by a
       scrape up to an interval old would keep every worker off an engine our own burst filled
       until the next scrape, and send them all elsewhere (a herd) */
    double est = foreign * kv_factor + (double)inflight + 1.0;
    return a * est + (1 - a) * plain;
}
