/*
 * transport — the front door (ops dispatch) and the per-loop pool of idle
 * keep-alive connections.
 *
 * Buckets: one per provider identity (ops, host, port, tls, ca_file,
 * tls_verify), compared by value so that providers from a reloaded config
 * find the connections opened under the old one. Each bucket keeps its idle
 * connections in a list, most recently parked at the head: open takes from
 * the head (the warmest connection), the idle timeout expires from the tail.
 * A bucket lives while any connection, idle or not, refers to it.
 *
 * One timer per pool sweeps expired idle connections and is armed for the
 * earliest next expiry. The pool lives until it was closed, its last bucket
 * is gone and no TLS context is loading in the thread pool, so nothing ever
 * points at a freed pool.
 */
#include "net/transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/read_budget.h"
#include "net/tls.h"

struct transport_bucket {
    struct transport_bucket *next, *prev; /* in pool->buckets */
    struct transport_pool *pool;
    unsigned refs;
    /* identity */
    const struct transport_ops *ops;
    char *host;
    char *ca_file;
    uint16_t port;
    bool tls;
    bool tls_verify;
    bool has_addr; /* an endpoint's connections: addr is part of the identity */
    struct sockaddr_storage addr;
    /* bounds, from the latest provider seen */
    uint32_t max_idle;
    uint32_t idle_timeout_ms;
    /* idle connections, head = most recently parked */
    struct transport_conn *idle_head, *idle_tail;
    uint32_t nidle;
};

struct transport_pool {
    uv_loop_t *loop;
    struct transport_bucket *buckets;
    uv_timer_t sweep;
    bool sweep_armed;
    uint64_t sweep_due;
    bool closing;
    bool sweep_closed;
    struct read_budget *budget; /* NULL once closed, after the last connection */
    bool budget_closing;
    void (*done)(void *ud);
    void *done_ud;
    struct tls_ctx_cache *tls;
    struct transport_stats stats;
};

const char *transport_err_name(enum transport_err e)
{
    switch (e) {
    case TRANSPORT_ERR_DNS:
        return "dns";
    case TRANSPORT_ERR_CONNECT:
        return "connect";
    case TRANSPORT_ERR_CONNECT_TIMEOUT:
        return "connect_timeout";
    case TRANSPORT_ERR_TLS:
        return "tls";
    case TRANSPORT_ERR_IO:
        return "io";
    case TRANSPORT_ERR_EOF:
        return "eof";
    }
    return "unknown";
}

const struct transport_ops *transport_for(const struct cfg_provider *p)
{
    return p->kind == CFG_PROVIDER_SIM ? &transport_sim_ops : &transport_tcp_ops;
}

int transport_open(struct transport_pool *pool, const struct cfg_provider *p,
                   uint32_t connect_timeout_ms, const struct transport_events *ev, void *ud,
                   struct transport_conn **out)
{
    return transport_open_at(pool, p, NULL, connect_timeout_ms, ev, ud, out);
}

int transport_open_at(struct transport_pool *pool, const struct cfg_provider *p,
                      const struct sockaddr *addr, uint32_t connect_timeout_ms,
                      const struct transport_events *ev, void *ud, struct transport_conn **out)
{
    if (!pool || !p || !ev || !out) return -EINVAL;
    const struct transport_ops *ops = transport_for(p);
    if (!ops->open) return -ENOSYS;
    if (connect_timeout_ms == 0)
        connect_timeout_ms =
            p->connect_timeout_ms ? p->connect_timeout_ms : TRANSPORT_DEFAULT_CONNECT_TIMEOUT_MS;
    return ops->open(pool, p, addr, connect_timeout_ms, ev, ud, out);
}

int transport_write(struct transport_conn *c, const char *data, size_t len)
{
    return c->ops->write(c, data, len);
}

void transport_pause(struct transport_conn *c, bool paused)
{
    c->ops->pause(c, paused);
}

void transport_release(struct transport_conn *c, bool keep_alive)
{
    if (c) c->ops->release(c, keep_alive);
}

/* ---- pool lifecycle ---- */

static void pool_sweep_cb(uv_timer_t *t);

struct transport_pool *transport_pool_new(uv_loop_t *loop)
{
    struct transport_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->loop = loop;
    pool->budget = read_budget_new(loop);
    if (!pool->budget || uv_timer_init(loop, &pool->sweep) != 0) {
        if (pool->budget) read_budget_close(pool->budget, NULL, NULL);
        free(pool);
        return NULL;
    }
    pool->sweep.data = pool;
    /* Idle connections are not work: the sweep alone must not keep a loop running. */
    uv_unref((uv_handle_t *)&pool->sweep);
    return pool;
}

uv_loop_t *transport_pool_loop(struct transport_pool *pool)
{
    return pool->loop;
}

static void pool_budget_closed(void *ud);

static void pool_maybe_done(struct transport_pool *pool)
{
    if (!pool->closing || !pool->sweep_closed || pool->buckets ||
        (pool->tls && tls_ctx_cache_busy(pool->tls)))
        return;
    if (pool->budget) { /* last: a connection still out reads through it until released */
        if (!pool->budget_closing) read_budget_close(pool->budget, pool_budget_closed, pool);
        pool->budget_closing = true;
        return;
    }
    void (*done)(void *) = pool->done;
    void *ud = pool->done_ud;
    tls_ctx_cache_free(pool->tls);
    free(pool);
    if (done) done(ud);
}

static void pool_budget_closed(void *ud)
{
    struct transport_pool *pool = ud;
    pool->budget = NULL;
    pool_maybe_done(pool);
}

struct read_budget *transport_pool_read_budget(struct transport_pool *pool)
{
    return pool->budget;
}

static void pool_sweep_closed(uv_handle_t *h)
{
    struct transport_pool *pool = h->data;
    pool->sweep_closed = true;
    pool_maybe_done(pool);
}

static void bucket_list_remove(struct transport_bucket *b, struct transport_conn *c)
{
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        b->idle_head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        b->idle_tail = c->idle_prev;
    c->idle_next = c->idle_prev = NULL;
    c->idle_bucket = NULL;
    b->nidle--;
    b->pool->stats.idle_now--;
}

void transport_pool_close(struct transport_pool *pool, void (*done)(void *ud), void *ud)
{
    if (pool->closing) return;
    pool->closing = true;
    pool->done = done;
    pool->done_ud = ud;
    uv_timer_stop(&pool->sweep);
    pool->sweep_armed = false;
    /* Releasing never frees synchronously (handles close from the loop), so the
       bucket list stays valid while we walk it. */
    for (struct transport_bucket *b = pool->buckets; b; b = b->next) {
        while (b->idle_head) {
            struct transport_conn *c = b->idle_head;
            bucket_list_remove(b, c);
            c->ops->release(c, false);
        }
    }
    uv_close((uv_handle_t *)&pool->sweep, pool_sweep_closed);
}

void transport_pool_stats(const struct transport_pool *pool, struct transport_stats *out)
{
    *out = pool->stats;
    if (pool->budget) out->reads_postponed = read_budget_postponed(pool->budget);
}

void transport_pool_count_open(struct transport_pool *pool, bool ok)
{
    if (ok)
        pool->stats.opened++;
    else
        pool->stats.failed++;
}

/* A CA load that outlived its connections holds the pool until it ends. */
static void pool_tls_idle(void *arg)
{
    pool_maybe_done(arg);
}

struct tls_ctx_cache *transport_pool_tls(struct transport_pool *pool)
{
    if (!pool->tls) pool->tls = tls_ctx_cache_new(pool->loop, pool_tls_idle, pool);
    return pool->tls;
}

void transport_pool_warm(struct transport_pool *pool, const struct cfg_provider *p)
{
    if (pool->closing || !p->tls || transport_for(p) != &transport_tcp_ops) return;
    struct tls_ctx_cache *cache = transport_pool_tls(pool);
    SSL_CTX *ctx;
    if (cache) tls_ctx_cache_get(cache, p->ca_file, p->tls_verify, &ctx, NULL);
}

/* ---- buckets ---- */

static bool same_opt_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static socklen_t addr_len(const struct sockaddr *a)
{
    return a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool bucket_matches(const struct transport_bucket *b, const struct transport_ops *ops,
                           const struct cfg_provider *p, const struct sockaddr *addr)
{
    bool verify = p->tls && p->tls_verify;
    const char *ca = verify ? p->ca_file : NULL;
    if (b->has_addr != (addr != NULL) || (addr && memcmp(&b->addr, addr, addr_len(addr)) != 0))
        return false;
    return b->ops == ops && b->port == p->port && b->tls == p->tls && b->tls_verify == verify &&
           strcasecmp(b->host, p->host ? p->host : "") == 0 && same_opt_str(b->ca_file, ca);
}

struct transport_bucket *transport_pool_bucket(struct transport_pool *pool,
                                               const struct transport_ops *ops,
                                               const struct cfg_provider *p, int *err)
{
    return transport_pool_bucket_at(pool, ops, p, NULL, err);
}

struct transport_bucket *transport_pool_bucket_at(struct transport_pool *pool,
                                                  const struct transport_ops *ops,
                                                  const struct cfg_provider *p,
                                                  const struct sockaddr *addr, int *err)
{
    if (pool->closing) {
        *err = -ESHUTDOWN;
        return NULL;
    }
    /* Linear: a worker talks to as many identities as the config has providers. */
    struct transport_bucket *b;
    for (b = pool->buckets; b; b = b->next)
        if (bucket_matches(b, ops, p, addr)) break;
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) goto nomem;
        b->pool = pool;
        b->ops = ops;
        b->port = p->port;
        b->tls = p->tls;
        b->tls_verify = p->tls && p->tls_verify;
        if (addr) {
            b->has_addr = true;
            memcpy(&b->addr, addr, addr_len(addr));
        }
        b->host = strdup(p->host ? p->host : "");
        if (b->tls_verify && p->ca_file) b->ca_file = strdup(p->ca_file);
        if (!b->host || (b->tls_verify && p->ca_file && !b->ca_file)) {
            free(b->host);
            free(b->ca_file);
            free(b);
            goto nomem;
        }
        b->next = pool->buckets;
        if (pool->buckets) pool->buckets->prev = b;
        pool->buckets = b;
    }
    b->max_idle = p->max_idle_conns;
    b->idle_timeout_ms = p->idle_conn_timeout_ms;
    b->refs++;
    return b;
nomem:
    *err = -ENOMEM;
    return NULL;
}

void transport_bucket_unref(struct transport_bucket *b)
{
    if (--b->refs > 0) return;
    /* Idle connections hold references, so an unreferenced bucket is empty. */
    struct transport_pool *pool = b->pool;
    if (b->prev)
        b->prev->next = b->next;
    else
        pool->buckets = b->next;
    if (b->next) b->next->prev = b->prev;
    free(b->host);
    free(b->ca_file);
    free(b);
    pool_maybe_done(pool);
}

struct transport_pool *transport_bucket_pool(const struct transport_bucket *b)
{
    return b->pool;
}

struct transport_conn *transport_bucket_take(struct transport_bucket *b)
{
    struct transport_conn *c = b->idle_head;
    if (!c) return NULL;
    bucket_list_remove(b, c);
    b->pool->stats.reused++;
    return c;
}

static void pool_arm(struct transport_pool *pool, uint64_t due)
{
    if (pool->closing) return;
    if (pool->sweep_armed && pool->sweep_due <= due) return;
    uint64_t now = uv_now(pool->loop);
    pool->sweep_armed = true;
    pool->sweep_due = due;
    uv_timer_start(&pool->sweep, pool_sweep_cb, due > now ? due - now : 0, 0);
}

bool transport_bucket_park(struct transport_bucket *b, struct transport_conn *c)
{
    struct transport_pool *pool = b->pool;
    if (pool->closing || b->max_idle == 0 || b->idle_timeout_ms == 0 || b->nidle >= b->max_idle)
        return false;
    c->idle_bucket = b;
    c->idle_prev = NULL;
    c->idle_next = b->idle_head;
    if (b->idle_head)
        b->idle_head->idle_prev = c;
    else
        b->idle_tail = c;
    b->idle_head = c;
    b->nidle++;
    pool->stats.idle_now++;
    c->idle_since_ms = uv_now(pool->loop);
    pool_arm(pool, c->idle_since_ms + b->idle_timeout_ms);
    return true;
}

void transport_bucket_unpark(struct transport_conn *c)
{
    if (c->idle_bucket) bucket_list_remove(c->idle_bucket, c);
}

static void pool_sweep_cb(uv_timer_t *t)
{
    struct transport_pool *pool = t->data;
    pool->sweep_armed = false;
    uint64_t now = uv_now(pool->loop);
    uint64_t next_due = UINT64_MAX;
    for (struct transport_bucket *b = pool->buckets; b; b = b->next) {
        /* The tail is the longest idle; a timeout lowered by a reload applies at once. */
        while (b->idle_tail && b->idle_tail->idle_since_ms + b->idle_timeout_ms <= now) {
            struct transport_conn *c = b->idle_tail;
            bucket_list_remove(b, c);
            c->ops->release(c, false);
        }
        if (b->idle_tail) {
            uint64_t due = b->idle_tail->idle_since_ms + b->idle_timeout_ms;
            if (due < next_due) next_due = due;
        }
    }
    if (next_due != UINT64_MAX) pool_arm(pool, next_due);
}
