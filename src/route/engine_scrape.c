/*
 * engine_scrape.c — one timer and at most one exchange per scraped provider.
 */
#include "route/engine_scrape.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "config/config_engine.h"
#include "net/transport.h"
#include "net/uphttp.h"
#include "proto/prom.h"
#include "provider/provider.h"

#define ENGINE_SCRAPE_FIRST_MS 50     /* the first scrape, soon after start */
#define ENGINE_SCRAPE_ABSENT_MS 60000 /* asked again this often while it serves no metrics */

struct scrape {
    struct engine_scrapes *es;
    struct runtime_provider *rp;
    struct cfg_provider target; /* the provider, with the metrics URL's host and path */
    struct prom_query query;
    struct prom_parser parser;
    uv_timer_t tick;
    uv_timer_t deadline;
    struct uphttp *up;
    int status;
    uint32_t own_at_send; /* our requests on the engine when the scrape went out */
    size_t body_bytes;
    bool failing; /* the last scrape failed (logged once per run of failures) */
    bool absent;  /* it answers but serves no metrics (asked again every minute) */
};

struct engine_scrapes {
    struct runtime *rt;
    struct transport_pool *pool;
    struct scrape *list;
    size_t n;
    int handles_open;
    bool stopping;
};

static void on_tick(uv_timer_t *t);

/* An engine that answers but has never served its metrics (llama.cpp without --metrics, a
   proxy in front): balanced on in-flight counts, asked again every minute, never marked down
   for it; the probes and the breaker judge whether it serves. */
static void metrics_absent(struct scrape *s, const char *why)
{
    if (!s->absent)
        log_warn("provider %s: serves no %s metrics at %s (%s); balancing it on in-flight counts "
                 "and asking again every minute",
                 s->rp->cfg->name, config_engine_name(s->rp->cfg->metrics.engine),
                 s->rp->cfg->metrics.path, why);
    s->absent = true;
    uv_timer_start(&s->tick, on_tick, ENGINE_SCRAPE_ABSENT_MS, ENGINE_SCRAPE_ABSENT_MS);
}

static void done(struct scrape *s, const char *why)
{
    uv_timer_stop(&s->deadline);
    if (s->up) {
        uphttp_cancel(s->up);
        s->up = NULL;
    }
    struct runtime_provider *rp = s->rp;
    struct engine_state *st = &rp->engine;
    const struct cfg_engine_metrics *m = &rp->cfg->metrics;
    uint64_t now = runtime_now_ms();
    if (why && (s->absent ||
                (s->status > 0 && atomic_load(&st->scrapes_ok) == 0 &&
                 (s->status == 200 || s->status == 404 || s->status == 405 || s->status == 501)))) {
        atomic_fetch_add(&st->scrapes_failed, 1);
        metrics_absent(s, why);
        return;
    }
    if (!why && s->absent) {
        s->absent = false;
        uv_timer_start(&s->tick, on_tick, m->interval_ms, m->interval_ms);
        log_info("provider %s: serves its %s metrics now", rp->cfg->name,
                 config_engine_name(m->engine));
    }
    if (why) {
        uint32_t streak = engine_record_failure(st);
        if (!s->failing)
            log_warn("provider %s: its %s metrics could not be read (%s); balancing on in-flight "
                     "counts until they are",
                     rp->cfg->name, config_engine_name(m->engine), why);
        s->failing = true;
        if (streak >= m->unhealthy_threshold && !atomic_load(&rp->probe_down)) {
            atomic_store(&st->marked_down, true);
            atomic_store(&rp->probe_down, true);
            log_warn("provider %s: marked down after %u failed metrics scrapes in a row (%s)",
                     rp->cfg->name, streak, why);
        }
        return;
    }
    if (s->failing) {
        log_info("provider %s: its %s metrics are read again", rp->cfg->name,
                 config_engine_name(m->engine));
        s->failing = false;
    }
    if (atomic_exchange(&st->marked_down, false) && atomic_load(&rp->probe_down)) {
        atomic_store(&rp->probe_down, false);
        runtime_provider_recovered(s->es->rt, rp, now); /* slow start */
        log_info("provider %s: up again (its metrics are read again)", rp->cfg->name);
    }
}

static void on_head(void *ud, const struct http1_response *resp)
{
    struct scrape *s = ud;
    s->status = resp->status;
}

static void on_body(void *ud, const char *data, size_t len)
{
    struct scrape *s = ud;
    if (s->status != 200 || s->body_bytes > ENGINE_SCRAPE_MAX_BODY) return;
    s->body_bytes += len;
    if (s->body_bytes > ENGINE_SCRAPE_MAX_BODY) return; /* judged at the end */
    prom_feed(&s->parser, data, len);
}

/* The gateway's requests on the provider now: what of the engine's load is ours. */
static uint32_t own_inflight(struct scrape *s)
{
    struct runtime *rt = s->es->rt;
    uint32_t n = 0;
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        for (size_t j = 0; j < rt->models[i].ndeps; j++)
            if (rt->models[i].deps[j].provider == s->rp)
                n += health_inflight(rt->models[i].deps[j].health);
    return n;
}

static void on_end(void *ud)
{
    struct scrape *s = ud;
    char why[64];
    if (s->status != 200) {
        snprintf(why, sizeof why, "HTTP %d", s->status);
        done(s, why);
        return;
    }
    if (s->body_bytes > ENGINE_SCRAPE_MAX_BODY) {
        done(s, "metrics too large");
        return;
    }
    prom_finish(&s->parser);
    /* the engine counted somewhere between sending and now: the larger of ours then and now
       is the safer guess of what in its numbers is ours (too small reads as others' load) */
    uint32_t own = own_inflight(s);
    if (own < s->own_at_send) own = s->own_at_send;
    if (!engine_record_scrape(&s->rp->engine, &s->parser, own, runtime_now_ms())) {
        done(s, "no queue series in the metrics");
        return;
    }
    done(s, NULL);
}

static void on_fail(void *ud, enum uphttp_fail fail, enum transport_err terr)
{
    struct scrape *s = ud;
    done(s, fail == UPHTTP_FAIL_TRANSPORT ? transport_err_name(terr) : "malformed reply");
}

static const struct uphttp_events scrape_events = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_fail = on_fail,
};

static void on_deadline(uv_timer_t *t)
{
    struct scrape *s = t->data;
    if (s->up) done(s, "timeout");
}

static void on_tick(uv_timer_t *t)
{
    struct scrape *s = t->data;
    if (s->up || s->es->stopping) return; /* the last scrape is still out (its deadline ends it) */
    size_t len = 0;
    char *req =
        provider_probe_request(provider_ops_of(s->rp->cfg), &s->target, NULL, "unbusy/0.1", &len);
    if (!req) return;
    s->status = 0;
    s->body_bytes = 0;
    s->own_at_send = own_inflight(s);
    prom_init(&s->parser, &s->query);
    uint32_t timeout = s->rp->cfg->metrics.timeout_ms;
    s->up = uphttp_start(s->es->pool, &s->target, timeout, req, len, &scrape_events, s);
    if (!s->up) {
        done(s, "could not start");
        return;
    }
    uv_timer_start(&s->deadline, on_deadline, timeout, 0);
}

/* The models the provider's deployments name, for the engines that label series with them;
   none (or a models: auto "*") leaves the label unfiltered. */
static void query_for(struct runtime *rt, struct scrape *s)
{
    const char *models[PROM_MAX_LABEL_VALUES];
    size_t n = 0;
    bool any = false;
    const struct config *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const struct cfg_model *m = &cfg->models[i];
        for (size_t j = 0; j < m->ndeployments; j++) {
            const struct cfg_deployment *d = &m->deployments[j];
            if (d->provider != s->rp->cfg) continue;
            if (strcmp(d->model, "*") == 0) any = true;
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strcmp(models[k], d->model) == 0;
            if (!dup && n < PROM_MAX_LABEL_VALUES)
                models[n++] = d->model;
            else if (!dup)
                any = true; /* more models than the filter holds */
        }
    }
    engine_query_of(s->rp->cfg->metrics.engine, &s->query, models, n);
    if (any || n == 0) {
        s->query.label = NULL;
        s->query.nvalues = 0;
    }
}

struct engine_scrapes *engine_scrape_start(uv_loop_t *loop, struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nproviders; i++)
        n += cfg->providers[i].metrics.enabled;
    if (n == 0) return NULL;
    struct engine_scrapes *es = calloc(1, sizeof *es);
    if (!es) return NULL;
    es->rt = rt;
    es->list = calloc(n, sizeof *es->list);
    es->pool = transport_pool_new(loop);
    if (!es->list || !es->pool) {
        free(es->list);
        free(es);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct cfg_provider *pv = &cfg->providers[i];
        const struct cfg_engine_metrics *m = &pv->metrics;
        if (!m->enabled) continue;
        struct scrape *s = &es->list[es->n++];
        s->es = es;
        s->rp = &rt->providers[i];
        /* the probe's request with the metrics path, at the host's root (the engines serve
           /metrics beside /v1, not under it), or at metrics.url */
        s->target = *pv;
        s->target.base_path = "";
        s->target.probe.path = m->path;
        if (m->host) {
            s->target.host = m->host;
            s->target.port = m->port;
            s->target.tls = m->tls;
        }
        query_for(rt, s);
        uv_timer_init(loop, &s->tick);
        uv_timer_init(loop, &s->deadline);
        s->tick.data = s->deadline.data = s;
        es->handles_open += 2;
        uv_timer_start(&s->tick, on_tick, ENGINE_SCRAPE_FIRST_MS, m->interval_ms);
    }
    return es;
}

static void on_pool_closed(void *ud)
{
    struct engine_scrapes *es = ud;
    free(es->list);
    free(es);
}

static void on_closed(uv_handle_t *h)
{
    struct scrape *s = h->data;
    struct engine_scrapes *es = s->es;
    if (--es->handles_open == 0) transport_pool_close(es->pool, on_pool_closed, es);
}

void engine_scrape_stop(struct engine_scrapes *es)
{
    if (!es) return;
    es->stopping = true;
    for (size_t i = 0; i < es->n; i++) {
        struct scrape *s = &es->list[i];
        if (s->up) {
            uphttp_cancel(s->up);
            s->up = NULL;
        }
        uv_close((uv_handle_t *)&s->tick, on_closed);
        uv_close((uv_handle_t *)&s->deadline, on_closed);
    }
}
