#include "proxy/proxy_gen.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

#include "config/config.h"
#include "net/transport.h"
#include "obs/metrics.h"
#include "proxy/proxy.h"
#include "route/runtime.h"

struct proxy_gen {
    uv_async_t async;
    pthread_mutex_t lock;
    /* the offer not yet taken (guarded by lock); cbs: its callback and those of the
       offers it replaced, oldest last */
    struct runtime *next;
    struct metrics_shard *shard;
    struct proxy_gen_ack *cbs;
    void (*closed)(void *ud);
    void *closed_ud;
    struct proxy_env *env;
};

static void call_all(struct proxy_gen_ack *cb)
{
    while (cb) {
        struct proxy_gen_ack *next = cb->next;
        cb->switched(cb->ud); /* may free cb: next was read before */
        cb = next;
    }
}

static void on_offer(uv_async_t *a)
{
    struct proxy_gen *g = a->data;
    pthread_mutex_lock(&g->lock);
    struct runtime *rt = g->next;
    struct metrics_shard *shard = g->shard;
    struct proxy_gen_ack *cbs = g->cbs;
    g->next = NULL;
    g->cbs = NULL;
    pthread_mutex_unlock(&g->lock);
    if (!rt) {
        call_all(cbs);
        return;
    }
    struct proxy_env *env = g->env;
    struct runtime *old_rt = env->rt;
    struct config *old_cfg = env->cfg;
    env->rt = rt; /* the offer's reference becomes env's */
    env->cfg = config_ref(rt->cfg);
    if (shard) {
        metrics_shard_carry(shard, env->metrics); /* exact: this thread is its one writer */
        env->metrics = shard;
    }
    /* CA stores of the new TLS providers load now, on the thread pool, not at a first request */
    for (size_t i = 0; env->pool && i < rt->cfg->nproviders; i++)
        if (rt->cfg->providers[i].tls)
            transport_pool_warm(env->pool, &rt->cfg->providers[i]);
    runtime_unref(old_rt);
    config_unref(old_cfg);
    call_all(cbs); /* only now: the generations they free were in use until here */
}

int proxy_gen_init(struct proxy_env *env)
{
    struct proxy_gen *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->env = env;
    pthread_mutex_init(&g->lock, NULL);
    int rc = uv_async_init(env->loop, &g->async, on_offer);
    if (rc < 0) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return rc;
    }
    g->async.data = g;
    env->gen = g;
    env->cfg = config_ref(env->cfg);
    env->rt = runtime_ref(env->rt);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct proxy_gen *g = h->data;
    struct proxy_env *env = g->env;
    runtime_unref(g->next);
    call_all(g->cbs);
    pthread_mutex_destroy(&g->lock);
    void (*done)(void *) = g->closed;
    void *ud = g->closed_ud;
    free(g);
    env->gen = NULL;
    runtime_unref(env->rt);
    config_unref(env->cfg);
    env->rt = NULL;
    env->cfg = NULL;
    if (done) done(ud);
}

void proxy_gen_close(struct proxy_env *env, void (*done)(void *ud), void *ud)
{
    struct proxy_gen *g = env->gen;
    if (!g) {
        if (done) done(ud);
        return;
    }
    g->closed = done;
    g->closed_ud = ud;
    uv_close((uv_handle_t *)&g->async, on_closed);
}

void proxy_gen_offer(struct proxy_env *env, struct runtime *rt, struct metrics_shard *shard,
                     struct proxy_gen_ack *ack)
{
    struct proxy_gen *g = env->gen;
    runtime_ref(rt);
    pthread_mutex_lock(&g->lock);
    struct runtime *skipped = g->next;
    g->next = rt;
    g->shard = shard;
    ack->next = g->cbs;
    g->cbs = ack;
    pthread_mutex_unlock(&g->lock);
    uv_async_send(&g->async);
    runtime_unref(skipped); /* never taken: the loop goes straight to rt */
}
