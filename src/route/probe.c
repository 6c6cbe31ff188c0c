#include "route/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/transport.h"
#include "net/uphttp.h"
#include "provider/provider.h"

struct probe {
    struct probes *ps;
    struct runtime *rt;
    struct runtime_provider *rp;
    const char *deep_model;
    uv_timer_t tick;
    uv_timer_t deadline;
    struct uphttp *up;
    int status;
    bool deep; /* the exchange in flight is a deep probe */
    uint64_t last_deep_ms;
};

struct probes {
    struct transport_pool *pool;
    struct probe *list;
    size_t n;
    int handles_open;
    bool stopping;
};

static void probe_result(struct probe *pr, bool ok, const char *why)
{
    struct runtime_provider *rp = pr->rp;
    const struct cfg_probe *cfg = &rp->cfg->probe;
    if (ok) {
        atomic_fetch_add(&rp->probes_ok, 1);
        atomic_store(&rp->probe_fail_streak, 0);
        unsigned streak = atomic_fetch_add(&rp->probe_ok_streak, 1) + 1;
        if (atomic_load(&rp->probe_down) && streak >= cfg->healthy_threshold) {
            atomic_store(&rp->probe_down, false);
            runtime_provider_recovered(pr->rt, rp, runtime_now_ms()); /* slow start */
            log_info("provider %s: probes succeed again; it is back in service", rp->cfg->name);
        }
    } else {
        atomic_fetch_add(&rp->probes_failed, 1);
        atomic_store(&rp->probe_ok_streak, 0);
        snprintf(rp->probe_last_error, sizeof rp->probe_last_error, "%s", why);
        unsigned streak = atomic_fetch_add(&rp->probe_fail_streak, 1) + 1;
        if (!atomic_load(&rp->probe_down) && streak >= cfg->unhealthy_threshold) {
            atomic_store(&rp->probe_down, true);
            log_warn("provider %s: %u probes failed in a row (%s); its deployments are skipped",
                     rp->cfg->name, streak, why);
        }
    }
    atomic_store(&rp->probe_last_ms, runtime_now_ms());
}

static void finish(struct probe *pr, bool ok, const char *why)
{
    uv_timer_stop(&pr->deadline);
    if (pr->up) {
        uphttp_cancel(pr->up);
        pr->up = NULL;
    }
    probe_result(pr, ok, why);
}

static void on_head(void *ud, const struct http1_response *resp)
{
    struct probe *pr = ud;
    pr->status = resp->status;
}

static void on_body(void *ud, const char *data, size_t len)
{
}

static void on_end(void *ud)
{
    struct probe *pr = ud;
    char why[64];
    snprintf(why, sizeof why, "%sHTTP %d", pr->deep ? "deep probe: " : "", pr->status);
    finish(pr, provider_ops_of(pr->rp->cfg)->probe_ok(pr->deep, pr->status), why);
}

static void on_fail(void *ud, enum uphttp_fail f, enum transport_err terr)
{
    struct probe *pr = ud;
    finish(pr, false, f == UPHTTP_FAIL_TRANSPORT ? transport_err_name(terr) : "malformed reply");
}

static const struct uphttp_events probe_events = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_fail = on_fail,
};

static void on_deadline(uv_timer_t *t)
{
    struct probe *pr = t->data;
    if (pr->up)
        finish(pr, false, "probe timeout");
}

static void on_tick(uv_timer_t *t)
{
    struct probe *pr = t->data;
    const struct cfg_probe *cfg = &pr->rp->cfg->probe;
    if (pr->up || pr->ps->stopping)
        return; /* the previous probe is still out (its deadline will end it) */
    uint64_t now = runtime_now_ms();
    pr->deep = cfg->deep && pr->deep_model && now - pr->last_deep_ms >= cfg->deep_interval_ms;
    if (pr->deep)
        pr->last_deep_ms = now;
    pr->status = 0;
    size_t len = 0;
    char *req = provider_probe_request(provider_ops_of(pr->rp->cfg), pr->rp->cfg, pr->deep ? pr->deep_model : NULL,
                                       "unbusy-probe/0.1", &len);
    if (!req)
        return;
    pr->up = uphttp_start(pr->ps->pool, pr->rp->cfg, cfg->timeout_ms, req, len, &probe_events, pr);
    if (!pr->up) {
        probe_result(pr, false, "could not start");
        return;
    }
    uv_timer_start(&pr->deadline, on_deadline, cfg->timeout_ms, 0);
}

static const char *first_model_on(struct runtime *rt, const struct cfg_provider *p)
{
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        for (size_t j = 0; !rt->cfg->models[i].auto_import && j < rt->cfg->models[i].ndeployments; j++)
            if (rt->cfg->models[i].deployments[j].provider == p)
                return rt->cfg->models[i].deployments[j].model;
    return NULL;
}

struct probes *probes_start(uv_loop_t *loop, struct runtime *rt)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->cfg->nproviders; i++)
        if (rt->cfg->providers[i].probe.enabled)
            n++;
    if (n == 0)
        return NULL;
    struct probes *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->list = calloc(n, sizeof *ps->list);
    ps->pool = transport_pool_new(loop);
    if (!ps->list || !ps->pool) {
        free(ps->list);
        free(ps);
        return NULL;
    }
    for (size_t i = 0; i < rt->cfg->nproviders; i++) {
        const struct cfg_provider *pv = &rt->cfg->providers[i];
        if (!pv->probe.enabled)
            continue;
        struct probe *pr = &ps->list[ps->n++];
        pr->ps = ps;
        pr->rt = rt;
        pr->rp = &rt->providers[i];
        pr->deep_model = pv->probe.deep_model ? pv->probe.deep_model : first_model_on(rt, pv);
        uv_timer_init(loop, &pr->tick);
        uv_timer_init(loop, &pr->deadline);
        pr->tick.data = pr->deadline.data = pr;
        ps->handles_open += 2;
        if (pv->tls)
            transport_pool_warm(ps->pool, pv);
        /* The first probe soon after start, then every interval. */
        uv_timer_start(&pr->tick, on_tick, pv->probe.interval_ms < 1000 ? pv->probe.interval_ms : 1000,
                       pv->probe.interval_ms);
    }
    return ps;
}

static void on_pool_closed(void *ud)
{
    struct probes *ps = ud;
    free(ps->list);
    free(ps);
}

static void on_closed(uv_handle_t *h)
{
    struct probe *pr = h->data;
    struct probes *ps = pr->ps;
    if (--ps->handles_open == 0)
        transport_pool_close(ps->pool, on_pool_closed, ps);
}

void probes_stop(struct probes *ps)
{
    if (!ps)
        return;
    ps->stopping = true;
    for (size_t i = 0; i < ps->n; i++) {
        struct probe *pr = &ps->list[i];
        if (pr->up) {
            uphttp_cancel(pr->up);
            pr->up = NULL;
        }
        uv_close((uv_handle_t *)&pr->tick, on_closed);
        uv_close((uv_handle_t *)&pr->deadline, on_closed);
    }
}
