#include "route/discovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/dns.h"

struct target;

/* One address lookup of an SRV record's target. */
struct srv_sub {
    struct target *t;
    unsigned idx; /* into t->srv */
};

struct target {
    struct discovery *d;
    const struct cfg_provider *p;
    struct dns_resolver *res;
    struct endpoint_set **sets; /* every deployment of the provider */
    size_t nsets;
    uv_timer_t timer;
    bool busy;         /* a resolution is out */
    unsigned failures; /* in a row */
    /* the resolution being assembled */
    struct endpoint_addr addrs[ENDPOINTS_MAX];
    size_t naddrs;
    uint32_t min_ttl_s;
    struct dns_srv srv[DNS_MAX_SRV];
    struct srv_sub subs[DNS_MAX_SRV];
    size_t nsrv, srv_pending;
    bool target_failed; /* a target's lookup failed (not "no such name"): keep the last set */
    char why[96];       /* of a failure */
};

struct discovery {
    struct target *targets;
    size_t n;
    int handles_open;
    bool stopping;
};

uint32_t discovery_next_ms(const struct cfg_discovery *c, uint32_t ttl_s, unsigned failures)
{
    uint64_t ms;
    if (failures) {
        unsigned shift = failures - 1 < 20 ? failures - 1 : 20;
        ms = (uint64_t)c->interval_min_ms << shift;
    } else {
        ms = (uint64_t)ttl_s * 1000u;
    }
    if (ms < c->interval_min_ms) ms = c->interval_min_ms;
    if (ms > c->interval_max_ms) ms = c->interval_max_ms;
    return (uint32_t)ms;
}

static void on_tick(uv_timer_t *timer);

static void schedule(struct target *t, uint32_t ms)
{
    if (!t->d->stopping) uv_timer_start(&t->timer, on_tick, ms, 0);
}

/* The resolution is complete: merge it, or keep the last good set. */
static void finish(struct target *t)
{
    t->busy = false;
    if (t->d->stopping) return;
    const struct cfg_discovery *c = t->p->discovery;
    uint64_t now = runtime_now_ms();
    if (t->naddrs > 0 && !t->target_failed) {
        unsigned added = 0, before = 0, after = 0;
        for (size_t i = 0; i < t->nsets; i++) {
            struct endpoint_set_stats st;
            endpoint_set_stats(t->sets[i], now, &st);
            if (i == 0) before = st.active;
            unsigned a = endpoint_set_merge(t->sets[i], t->addrs, t->naddrs, now);
            if (i == 0) {
                added = a;
                endpoint_set_stats(t->sets[i], now, &st);
                after = st.active;
            }
        }
        if (t->failures || added || after != before)
            log_info("provider %s: discovery found %u address%s (%u new, %u gone)%s", t->p->name,
                     after, after == 1 ? "" : "es", added, before + added - after,
                     t->failures ? " after failing" : "");
        t->failures = 0;
        schedule(t, discovery_next_ms(c, t->min_ttl_s, 0));
        return;
    }
    for (size_t i = 0; i < t->nsets; i++)
        endpoint_set_failed(t->sets[i], t->why);
    t->failures++;
    uint32_t next = discovery_next_ms(c, 0, t->failures);
    if (t->failures == 1 || (t->failures & (t->failures - 1)) == 0) /* 1, 2, 4, 8, ... */
        log_warn("provider %s: discovery of %s failed (%s, %u in a row); the last good addresses "
                 "stay; again in %u ms",
                 t->p->name, c->srv ? c->srv : t->p->host, t->why, t->failures, next);
    schedule(t, next);
}

/* Adds an answer's addresses (bounded by the set's bound), SRV's priority and weight. */
static void add_addrs(struct target *t, const struct dns_addr *addrs, size_t n,
                      const struct dns_srv *srv)
{
    for (size_t i = 0; i < n && t->naddrs < ENDPOINTS_MAX; i++) {
        struct endpoint_addr *e = &t->addrs[t->naddrs++];
        e->sa = addrs[i].sa;
        e->ttl_s = addrs[i].ttl_s;
        e->priority = srv ? srv->priority : 0;
        e->weight = srv ? srv->weight : 1;
        e->source = srv                                 ? ENDPOINT_SRC_SRV
                    : addrs[i].sa.ss_family == AF_INET6 ? ENDPOINT_SRC_AAAA
                                                        : ENDPOINT_SRC_A;
        if (addrs[i].ttl_s < t->min_ttl_s) t->min_ttl_s = addrs[i].ttl_s;
    }
}

static void note_failure(struct target *t, const char *what, enum dns_status st)
{
    snprintf(t->why, sizeof t->why, "%s: %s", what, dns_status_name(st));
}

static void on_addrs(void *ud, enum dns_status st, const struct dns_addr *addrs, size_t n)
{
    if (st == DNS_CANCELLED) return; /* stopping: the target may be gone */
    struct target *t = ud;
    if (st == DNS_OK)
        add_addrs(t, addrs, n, NULL);
    else
        note_failure(t, t->p->host, st);
    finish(t);
}

static void on_srv_target(void *ud, enum dns_status st, const struct dns_addr *addrs, size_t n)
{
    if (st == DNS_CANCELLED) return;
    struct srv_sub *sub = ud;
    struct target *t = sub->t;
    if (st == DNS_OK) {
        add_addrs(t, addrs, n, &t->srv[sub->idx]);
    } else {
        /* A target that does not exist is left out; one that could not be looked up now
           would drain a replica that may be fine: the whole answer waits for the next try. */
        note_failure(t, t->srv[sub->idx].target, st);
        if (st != DNS_NOT_FOUND) t->target_failed = true;
    }
    if (--t->srv_pending == 0) finish(t);
}

static void on_srv(void *ud, enum dns_status st, const struct dns_srv *recs, size_t n)
{
    if (st == DNS_CANCELLED) return;
    struct target *t = ud;
    if (st != DNS_OK) {
        note_failure(t, t->p->discovery->srv, st);
        finish(t);
        return;
    }
    memcpy(t->srv, recs, n * sizeof *recs);
    t->nsrv = n;
    t->srv_pending = n;
    for (size_t i = 0; i < n; i++) {
        t->subs[i] = (struct srv_sub){.t = t, .idx = (unsigned)i};
        if (dns_resolve_addrs(t->res, t->srv[i].target, t->srv[i].port, on_srv_target,
                              &t->subs[i]) < 0) {
            snprintf(t->why, sizeof t->why, "could not start a lookup");
            t->srv_pending -= n - i; /* none of the rest will call back */
            if (t->srv_pending == 0) finish(t);
            return;
        }
    }
}

static void on_tick(uv_timer_t *timer)
{
    struct target *t = timer->data;
    if (t->busy || t->d->stopping) return;
    const struct cfg_discovery *c = t->p->discovery;
    t->busy = true;
    t->naddrs = 0;
    t->nsrv = 0;
    t->min_ttl_s = UINT32_MAX;
    t->target_failed = false;
    t->why[0] = '\0';
    int rc = c->srv ? dns_resolve_srv(t->res, c->srv, on_srv, t)
                    : dns_resolve_addrs(t->res, t->p->host, t->p->port, on_addrs, t);
    if (rc < 0) {
        snprintf(t->why, sizeof t->why, "could not start a lookup");
        finish(t);
    }
}

struct discovery *discovery_start(uv_loop_t *loop, struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].discovery) n++;
    if (n == 0) return NULL;
    struct discovery *d = calloc(1, sizeof *d);
    if (!d || !(d->targets = calloc(n, sizeof *d->targets))) {
        free(d);
        log_error("discovery: out of memory; discovered providers are resolved per connect");
        return NULL;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct cfg_provider *p = &cfg->providers[i];
        if (!p->discovery) continue;
        struct target *t = &d->targets[d->n];
        t->d = d;
        t->p = p;
        size_t ndeps = 0;
        for (size_t m = 0; m < cfg->nmodels; m++)
            ndeps += rt->models[m].ndeps;
        t->sets = calloc(ndeps ? ndeps : 1, sizeof *t->sets);
        int err = 0;
        t->res =
            t->sets ? dns_resolver_new(loop, p->discovery->resolver, p->discovery->timeout_ms, &err)
                    : NULL;
        if (!t->res) {
            log_error("provider %s: discovery cannot start (%s); it is resolved per connect",
                      p->name, err == -EINVAL ? "bad resolver" : "no resolver");
            free(t->sets);
            t->sets = NULL;
            continue;
        }
        for (size_t m = 0; m < cfg->nmodels; m++)
            for (size_t j = 0; j < rt->models[m].ndeps; j++)
                if (rt->models[m].deps[j].cfg->provider == p && rt->models[m].deps[j].endpoints)
                    t->sets[t->nsets++] = rt->models[m].deps[j].endpoints;
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        d->handles_open++;
        d->n++;
        uv_timer_start(&t->timer, on_tick, 0, 0);
    }
    return d;
}

static void on_closed(uv_handle_t *h)
{
    struct target *t = h->data;
    struct discovery *d = t->d;
    if (--d->handles_open > 0) return;
    for (size_t i = 0; i < d->n; i++)
        free(d->targets[i].sets);
    free(d->targets);
    free(d);
}

void discovery_stop(struct discovery *d)
{
    if (!d) return;
    d->stopping = true;
    for (size_t i = 0; i < d->n; i++) {
        struct target *t = &d->targets[i];
        /* The resolver delivers its lookups as cancelled, and those callbacks touch
           nothing: the target may be freed first. */
        dns_resolver_close(t->res);
        uv_close((uv_handle_t *)&t->timer, on_closed);
    }
}
