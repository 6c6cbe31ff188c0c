/*
 * model_fetch.c — one timer and at most one exchange per models: auto provider.
 */
#include "route/model_fetch.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "net/transport.h"
#include "net/uphttp.h"
#include "provider/provider.h"

#define MODEL_FETCH_MAX_BODY (4u << 20) /* a list of CATALOG_MAX_NAMES models fits easily */
#define MODEL_FETCH_FIRST_MS 200        /* the first fetch, soon after start */

struct fetch {
    struct model_fetches *mf;
    size_t provider_index;
    const struct cfg_provider *pv;
    uv_timer_t tick;
    uv_timer_t deadline;
    struct uphttp *up;
    int status;
    struct buf body;
    bool failing; /* the last fetch failed (logged once per run of failures) */
};

struct model_fetches {
    struct runtime *rt;
    struct transport_pool *pool;
    struct fetch *list;
    size_t n;
    int handles_open;
    bool stopping;
};

static void done(struct fetch *f, const char *why)
{
    uv_timer_stop(&f->deadline);
    if (f->up) {
        uphttp_cancel(f->up);
        f->up = NULL;
    }
    if (why) {
        if (!f->failing)
            log_warn("provider %s: its model list could not be read (%s); keeping the last one",
                     f->pv->name, why);
        f->failing = true;
    } else if (f->failing) {
        log_info("provider %s: its model list is read again", f->pv->name);
        f->failing = false;
    }
    buf_reset(&f->body);
}

static void on_head(void *ud, const struct http1_response *resp)
{
    struct fetch *f = ud;
    f->status = resp->status;
}

static void on_body(void *ud, const char *data, size_t len)
{
    struct fetch *f = ud;
    if (buf_append(&f->body, data, len) < 0) f->status = -1; /* over the bound: judged at the end */
}

static void on_end(void *ud)
{
    struct fetch *f = ud;
    char why[64];
    if (f->status != 200) {
        snprintf(why, sizeof why, f->status < 0 ? "list too large" : "HTTP %d", f->status);
        done(f, why);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    if (catalog_parse(f->body.data ? f->body.data : "", f->body.len, &names, &n) < 0) {
        done(f, "not a model list");
        return;
    }
    catalog_set(f->mf->rt->catalog, f->provider_index, names, n, runtime_now_ms());
    done(f, NULL);
}

static void on_fail(void *ud, enum uphttp_fail fail, enum transport_err terr)
{
    struct fetch *f = ud;
    done(f, fail == UPHTTP_FAIL_TRANSPORT ? transport_err_name(terr) : "malformed reply");
}

static const struct uphttp_events fetch_events = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_fail = on_fail,
};

static void on_deadline(uv_timer_t *t)
{
    struct fetch *f = t->data;
    if (f->up) done(f, "timeout");
}

static void on_tick(uv_timer_t *t)
{
    struct fetch *f = t->data;
    if (f->up || f->mf->stopping) return; /* the last fetch is still out (its deadline ends it) */
    /* The probe's request with the list's path: the same auth, api-version and head. */
    struct cfg_provider list_target = *f->pv;
    list_target.probe.path = f->pv->models_path ? f->pv->models_path : "/models";
    size_t len = 0;
    char *req =
        provider_probe_request(provider_ops_of(f->pv), &list_target, NULL, "unbusy/0.1", &len);
    if (!req) return;
    f->status = 0;
    buf_reset(&f->body);
    uint32_t timeout = f->pv->probe.timeout_ms ? f->pv->probe.timeout_ms : 5000;
    f->up = uphttp_start(f->mf->pool, f->pv, timeout, req, len, &fetch_events, f);
    if (!f->up) {
        done(f, "could not start");
        return;
    }
    uv_timer_start(&f->deadline, on_deadline, timeout, 0);
}

struct model_fetches *model_fetch_start(uv_loop_t *loop, struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nproviders; i++)
        n += cfg->providers[i].models_auto && cfg->providers[i].kind != CFG_PROVIDER_SIM;
    if (n == 0) return NULL;
    struct model_fetches *mf = calloc(1, sizeof *mf);
    if (!mf) return NULL;
    mf->rt = rt;
    mf->list = calloc(n, sizeof *mf->list);
    mf->pool = transport_pool_new(loop);
    if (!mf->list || !mf->pool) {
        free(mf->list);
        free(mf);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct cfg_provider *pv = &cfg->providers[i];
        if (!pv->models_auto || pv->kind == CFG_PROVIDER_SIM) continue;
        struct fetch *f = &mf->list[mf->n++];
        f->mf = mf;
        f->provider_index = i;
        f->pv = pv;
        buf_init(&f->body, MODEL_FETCH_MAX_BODY);
        uv_timer_init(loop, &f->tick);
        uv_timer_init(loop, &f->deadline);
        f->tick.data = f->deadline.data = f;
        mf->handles_open += 2;
        uv_timer_start(&f->tick, on_tick, MODEL_FETCH_FIRST_MS, pv->models_refresh_ms);
    }
    return mf;
}

static void on_pool_closed(void *ud)
{
    struct model_fetches *mf = ud;
    for (size_t i = 0; i < mf->n; i++)
        buf_free(&mf->list[i].body);
    free(mf->list);
    free(mf);
}

static void on_closed(uv_handle_t *h)
{
    struct fetch *f = h->data;
    struct model_fetches *mf = f->mf;
    if (--mf->handles_open == 0) transport_pool_close(mf->pool, on_pool_closed, mf);
}

void model_fetch_stop(struct model_fetches *mf)
{
    if (!mf) return;
    mf->stopping = true;
    for (size_t i = 0; i < mf->n; i++) {
        struct fetch *f = &mf->list[i];
        if (f->up) {
            uphttp_cancel(f->up);
            f->up = NULL;
        }
        uv_close((uv_handle_t *)&f->tick, on_closed);
        uv_close((uv_handle_t *)&f->deadline, on_closed);
    }
}
