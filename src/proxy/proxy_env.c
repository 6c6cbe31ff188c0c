/*
 * proxy_env — the request path's per-loop environment (struct proxy_env in
 * proxy.h): its upstream pool, and the ready list through which a request
 * that waited in an admission queue is resumed on its own loop.
 */
#include <errno.h>
#include <sys/random.h>

#include "net/transport.h"
#include "proxy/proxy_gen.h"
#include "proxy/proxy_int.h"

static void on_admit_async(uv_async_t *a)
{
    struct proxy_env *env = a->data;
    pthread_mutex_lock(&env->admit_lock);
    struct admission_waiter *list = env->admit_ready;
    env->admit_ready = NULL;
    pthread_mutex_unlock(&env->admit_lock);
    /* oldest first: the list was built newest first */
    struct admission_waiter *rev = NULL;
    while (list) {
        struct admission_waiter *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct admission_waiter *next = rev->next;
        rev->next = NULL;
        proxy_admitted(rev);
        rev = next;
    }
}

void proxy_env_admission_ready(void *owner, struct admission_waiter *aw)
{
    struct proxy_env *env = owner;
    pthread_mutex_lock(&env->admit_lock);
    aw->next = env->admit_ready;
    env->admit_ready = aw;
    pthread_mutex_unlock(&env->admit_lock);
    uv_async_send(&env->admit_async);
}

int proxy_env_init(struct proxy_env *env, unsigned id, uv_loop_t *loop, struct config *cfg,
                   struct runtime *rt)
{
    env->id = id;
    env->loop = loop;
    env->cfg = cfg;
    env->rt = rt;
    if (getrandom(&env->rng, sizeof env->rng, 0) != sizeof env->rng || env->rng == 0)
        env->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 32) ^ (uint64_t)uv_hrtime();
    pthread_mutex_init(&env->admit_lock, NULL);
    uv_async_init(loop, &env->admit_async, on_admit_async);
    env->admit_async.data = env;
    int grc = proxy_gen_init(env); /* env's references to its generation */
    if (grc < 0)
        return grc;
    env->pool = transport_pool_new(loop);
    if (!env->pool)
        return -ENOMEM;
    /* Load CA stores now, off the loop, so a first request does not pay for it. */
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].tls)
            transport_pool_warm(env->pool, &cfg->providers[i]);
    return 0;
}

static void on_gen_closed(void *ud)
{
    struct proxy_env *env = ud;
    if (env->close_done)
        env->close_done(env->close_ud);
}

static void on_pool_closed(void *ud)
{
    struct proxy_env *env = ud;
    uv_close((uv_handle_t *)&env->admit_async, NULL);
    proxy_gen_close(env, on_gen_closed, env);
}

void proxy_env_close(struct proxy_env *env, void (*done)(void *ud), void *ud)
{
    env->close_done = done;
    env->close_ud = ud;
    transport_pool_close(env->pool, on_pool_closed, env);
}
