/* shared_sync — breakers and leases shared through Redis, on the main loop (see shared_sync.h). */
#include "route/shared_sync.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

#define MAX_EXPIRE_PER_TICK 256
#define KEY_CAP (CONFIG_REDIS_MAX_PREFIX + 48)

/* KEYS: breaker keys. Returns {value or false, pttl} per key. */
static const char read_script[] = "local out = {}\n"
                                  "for i = 1, #KEYS do\n"
                                  "  local v = redis.call('GET', KEYS[i])\n"
                                  "  out[2 * i - 1] = v\n"
                                  "  out[2 * i] = v and redis.call('PTTL', KEYS[i]) or 0\n"
                                  "end\n"
                                  "return out\n";
/* KEYS[1]: a breaker key; ARGV[1]: our id. Deletes it only while it is ours. */
static const char del_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                 "  return redis.call('DEL', KEYS[1])\n"
                                 "end\n"
                                 "return 0\n";

struct dep_sync {
    struct runtime_dep *d;
    char key[KEY_CAP];
    uint64_t published_until; /* the open time we published (runtime ms); 0: nothing */
    uint64_t remote_until;    /* a remote opening applied here until (runtime ms) */
};

struct shared_sync {
    uv_loop_t *loop;
    struct runtime *rt;
    struct shared_limits *sl;
    struct redis_stats *stats;
    struct redis *redis;
    uv_timer_t timer;
    char id[17]; /* this replica, in the values it publishes */
    struct dep_sync *deps;
    size_t ndeps;
    bool reads_in_flight;
    bool resync; /* the connection came back: return every lease */
    struct shared_spend *spend;
    atomic_ullong remote_opens, published;
};

void shared_sync_breaker_key(const char *prefix, const char *provider, const char *model,
                             const char *base_url, char *out, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_DigestUpdate(ctx, provider, strlen(provider) + 1);
        EVP_DigestUpdate(ctx, model, strlen(model) + 1);
        EVP_DigestUpdate(ctx, base_url ? base_url : "", base_url ? strlen(base_url) : 0);
        EVP_DigestFinal_ex(ctx, md, &len);
    }
    EVP_MD_CTX_free(ctx);
    char hex[17] = "0000000000000000";
    for (unsigned i = 0; i < 8 && i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(out, cap, "%sbreaker:%s", prefix ? prefix : "", hex);
}

static void return_leases(struct shared_sync *s, uint64_t now, bool all)
{
    struct buf cmds;
    buf_init(&cmds, 1u << 20);
    size_t n = shared_limits_expire(s->sl, &cmds, now, all, MAX_EXPIRE_PER_TICK);
    if (n) redis_send_batch(s->redis, cmds.data, cmds.len, (uint32_t)n);
    buf_free(&cmds);
}

/* A published state changed here: open (publish until its end) or closed (withdraw). */
static void publish(struct shared_sync *s, uint64_t now)
{
    struct buf cmd;
    buf_init(&cmd, 64u << 10);
    for (size_t i = 0; i < s->ndeps; i++) {
        struct dep_sync *ds = &s->deps[i];
        struct health_snapshot snap;
        health_snapshot(ds->d->health, now, &snap);
        bool open = strcmp(snap.breaker, "open") == 0 && snap.open_remaining_ms > 0;
        buf_reset(&cmd);
        if (open && ds->published_until != snap.open_until_ms) {
            char px[24];
            snprintf(px, sizeof px, "%" PRIu64, snap.open_remaining_ms);
            const char *argv[] = {"SET", ds->key, s->id, "PX", px};
            if (resp_command(&cmd, 5, argv, NULL) == 0 &&
                redis_send_batch(s->redis, cmd.data, cmd.len, 1) == 0) {
                ds->published_until = snap.open_until_ms;
                atomic_fetch_add(&s->published, 1);
            }
        } else if (strcmp(snap.breaker, "closed") == 0 && ds->published_until) {
            const char *argv[] = {"EVAL", del_script, "1", ds->key, s->id};
            if (resp_command(&cmd, 5, argv, NULL) == 0 &&
                redis_send_batch(s->redis, cmd.data, cmd.len, 1) == 0)
                ds->published_until = 0;
        }
    }
    buf_free(&cmd);
}

struct read_call {
    struct shared_sync *s;
    size_t first, n;
};

static void on_read(void *ud, const struct resp_reply *reply, int err)
{
    struct read_call *c = ud;
    struct shared_sync *s = c->s;
    if (err == REDIS_ERR_CLOSED) { /* shared_sync_stop: s may be gone */
        free(c);
        return;
    }
    s->reads_in_flight = false;
    if (err || reply->items[0].type != RESP_ARRAY || reply->n != 1 + 2 * c->n) {
        free(c);
        return;
    }
    uint64_t now = runtime_now_ms();
    for (size_t i = 0; i < c->n; i++) {
        const struct resp_item *v = &reply->items[1 + 2 * i], *ttl = &reply->items[2 + 2 * i];
        struct dep_sync *ds = &s->deps[c->first + i];
        if (v->type != RESP_BULK || ttl->type != RESP_INTEGER || ttl->integer <= 0) continue;
        if (v->len == strlen(s->id) && memcmp(v->str, s->id, v->len) == 0) continue; /* ours */
        uint64_t until = now + (uint64_t)ttl->integer;
        if (until <= ds->remote_until + 100) continue; /* known already */
        uint32_t ms = ttl->integer > UINT32_MAX ? UINT32_MAX : (uint32_t)ttl->integer;
        health_cooldown(ds->d->health, now, ms);
        if (!ds->remote_until || ds->remote_until < now)
            log_warn("deployment %s: circuit breaker open on another replica; kept out here too "
                     "for %u ms",
                     ds->d->key, ms);
        ds->remote_until = until;
        atomic_fetch_add(&s->remote_opens, 1);
    }
    free(c);
}

static void read_remote(struct shared_sync *s)
{
    if (s->reads_in_flight) return; /* the last round has not come back: Redis is slow */
    struct buf cmd;
    buf_init(&cmd, 64u << 10);
    for (size_t first = 0; first < s->ndeps; first += SHARED_SYNC_CHUNK) {
        size_t n = s->ndeps - first < SHARED_SYNC_CHUNK ? s->ndeps - first : SHARED_SYNC_CHUNK;
        const char *argv[3 + SHARED_SYNC_CHUNK];
        char nkeys[8];
        snprintf(nkeys, sizeof nkeys, "%zu", n);
        argv[0] = "EVAL";
        argv[1] = read_script;
        argv[2] = nkeys;
        for (size_t i = 0; i < n; i++)
            argv[3 + i] = s->deps[first + i].key;
        buf_reset(&cmd);
        struct read_call *c = malloc(sizeof *c);
        if (!c) break;
        *c = (struct read_call){.s = s, .first = first, .n = n};
        if (resp_command(&cmd, (int)(3 + n), argv, NULL) < 0 ||
            redis_send(s->redis, cmd.data, cmd.len, on_read, c, NULL) < 0) {
            free(c);
            break;
        }
        s->reads_in_flight = true;
    }
    buf_free(&cmd);
}

struct spend_call {
    struct shared_spend *ss;
    struct shared_spend_report r;
};

static void on_spend(void *ud, const struct resp_reply *reply, int err)
{
    struct spend_call *c = ud;
    shared_spend_seen(c->ss, &c->r, err ? NULL : reply);
    free(c);
}

static void report_spend(struct shared_sync *s)
{
    if (!s->spend) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* budgets' periods are UTC days and months */
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    struct buf cmd;
    buf_init(&cmd, 16u << 10);
    for (int i = 0; i < SHARED_SYNC_SPEND_MAX; i++) {
        struct spend_call *c = malloc(sizeof *c);
        if (!c) break;
        c->ss = s->spend;
        buf_reset(&cmd);
        if (shared_spend_report(s->spend, now, &cmd, &c->r, 1) != 1) {
            free(c);
            break;
        }
        if (redis_send(s->redis, cmd.data, cmd.len, on_spend, c, NULL) < 0) {
            shared_spend_seen(s->spend, &c->r, NULL);
            free(c);
            break;
        }
    }
    buf_free(&cmd);
}

void shared_sync_spend(struct shared_sync *s, struct shared_spend *ss)
{
    if (s) s->spend = ss;
}

static void on_tick(uv_timer_t *t)
{
    struct shared_sync *s = t->data;
    if (!redis_is_up(s->redis)) return;
    uint64_t now = runtime_now_ms();
    return_leases(s, now, s->resync);
    s->resync = false;
    struct buf cmds; /* the requests still running here keep counting in their keys' sets */
    buf_init(&cmds, 4u << 20);
    size_t n = shared_limits_inflight_refresh(s->sl, &cmds, 256);
    if (n) redis_send_batch(s->redis, cmds.data, cmds.len, (uint32_t)n);
    buf_free(&cmds);
    publish(s, now);
    read_remote(s);
    report_spend(s);
}

static void on_state(void *ud, bool up)
{
    struct shared_sync *s = ud;
    if (up) s->resync = true;
}

struct shared_sync *shared_sync_start(uv_loop_t *loop, struct runtime *rt, struct shared_limits *sl,
                                      struct redis_stats *stats)
{
    struct shared_sync *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->rt = rt;
    s->sl = sl;
    s->stats = stats;
    const struct cfg_redis *cfg = shared_limits_config(sl);
    snprintf(s->id, sizeof s->id, "%s", shared_limits_replica(sl));
    size_t n = 0;
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        n += rt->models[i].ndeps;
    s->deps = calloc(n ? n : 1, sizeof *s->deps);
    if (!s->deps) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < rt->cfg->nmodels; i++)
        for (size_t j = 0; j < rt->models[i].ndeps; j++) {
            struct dep_sync *ds = &s->deps[s->ndeps++];
            ds->d = &rt->models[i].deps[j];
            const struct cfg_deployment *dc = ds->d->cfg;
            shared_sync_breaker_key(cfg->prefix, dc->provider->name, dc->model,
                                    dc->provider->base_url, ds->key, sizeof ds->key);
        }
    struct redis_options o = {
        .cfg = cfg, .name = "main", .stats = stats, .on_state = on_state, .ud = s};
    s->redis = redis_new(loop, &o);
    if (!s->redis) {
        free(s->deps);
        free(s);
        return NULL;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, cfg->sync_interval_ms, cfg->sync_interval_ms);
    return s;
}

static void timer_closed(uv_handle_t *h)
{
    struct shared_sync *s = h->data;
    free(s->deps);
    free(s);
}

void shared_sync_stop(struct shared_sync *s)
{
    if (!s) return;
    if (redis_is_up(s->redis)) return_leases(s, runtime_now_ms(), true); /* written before close */
    redis_close(s->redis, NULL, NULL);
    s->redis = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static void counter(struct buf *out, const char *name, const char *help, const char *type)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void shared_sync_render(void *ud, struct buf *out)
{
    struct shared_sync *s = ud;
    if (!s) return;
    struct redis_stats *st = s->stats;
    unsigned clients = atomic_load(&st->clients), up = atomic_load(&st->clients_up);
    counter(out, "unbusy_redis_up",
            "1 while every Redis connection of this replica is up (limits and breakers shared); 0: "
            "some loops decide on local state.",
            "gauge");
    buf_printf(out, "unbusy_redis_up %d\n", clients && up >= clients ? 1 : 0);
    counter(out, "unbusy_redis_connections", "Redis connections of this replica: open and up.",
            "gauge");
    buf_printf(out, "unbusy_redis_connections{state=\"open\"} %u\n", clients);
    buf_printf(out, "unbusy_redis_connections{state=\"up\"} %u\n", up);
    counter(out, "unbusy_redis_commands_total",
            "Redis commands: sent, answered, answered with an error, refused (not up or the queue "
            "full), lost with a connection.",
            "counter");
    const char *res[] = {"sent", "replied", "error_reply", "refused", "lost"};
    uint64_t vals[] = {atomic_load(&st->sent), atomic_load(&st->replies),
                       atomic_load(&st->error_replies), atomic_load(&st->refused),
                       atomic_load(&st->lost)};
    for (int i = 0; i < 5; i++)
        buf_printf(out, "unbusy_redis_commands_total{result=\"%s\"} %" PRIu64 "\n", res[i],
                   vals[i]);
    counter(out, "unbusy_redis_connects_total",
            "Redis connections that came up, and attempts or connections that failed.", "counter");
    buf_printf(out, "unbusy_redis_connects_total{result=\"up\"} %llu\n",
               (unsigned long long)atomic_load(&st->connects));
    buf_printf(out, "unbusy_redis_connects_total{result=\"failed\"} %llu\n",
               (unsigned long long)atomic_load(&st->failures));
    counter(out, "unbusy_redis_latency_seconds", "Round-trip time of Redis commands.", "histogram");
    uint64_t cum = 0;
    for (int i = 0; i < REDIS_LATENCY_BUCKETS; i++) {
        cum += atomic_load(&st->latency_buckets[i]);
        if (i < REDIS_LATENCY_BUCKETS - 1)
            buf_printf(out, "unbusy_redis_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                       (double)redis_latency_bounds_us[i] / 1e6, cum);
        else
            buf_printf(out, "unbusy_redis_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    buf_printf(out, "unbusy_redis_latency_seconds_sum %g\n",
               (double)atomic_load(&st->latency_sum_us) / 1e6);
    buf_printf(out, "unbusy_redis_latency_seconds_count %" PRIu64 "\n", cum);
    struct shared_limits_stats ls;
    shared_limits_stats(s->sl, &ls);
    counter(out, "unbusy_redis_limit_checks_total",
            "Shared rate-limit checks: from a local lease (no round trip), admitted or refused by "
            "Redis.",
            "counter");
    buf_printf(out, "unbusy_redis_limit_checks_total{result=\"lease\"} %" PRIu64 "\n",
               ls.lease_hits);
    buf_printf(out, "unbusy_redis_limit_checks_total{result=\"admitted\"} %" PRIu64 "\n",
               ls.round_trips - ls.refused);
    buf_printf(out, "unbusy_redis_limit_checks_total{result=\"refused\"} %" PRIu64 "\n",
               ls.refused);
    counter(out, "unbusy_redis_fallbacks_total",
            "Requests whose shared limits were decided on local state: Redis down, no reply within "
            "redis.timeout, an error.",
            "counter");
    const char *why[] = {"down", "timeout", "error"};
    for (int i = 0; i < SHARED_FALLBACK__COUNT; i++)
        buf_printf(out, "unbusy_redis_fallbacks_total{reason=\"%s\"} %" PRIu64 "\n", why[i],
                   ls.fallbacks[i]);
    counter(out, "unbusy_redis_leases", "Shared buckets this replica holds a lease of now.",
            "gauge");
    buf_printf(out, "unbusy_redis_leases %u\n", ls.leases);
    counter(out, "unbusy_redis_leases_returned_total",
            "Leases given back to Redis (expired or at exit).", "counter");
    buf_printf(out, "unbusy_redis_leases_returned_total %" PRIu64 "\n", ls.returned);
    counter(
        out, "unbusy_redis_breaker_events_total",
        "Breaker openings published to the other replicas, and openings of theirs applied here.",
        "counter");
    buf_printf(out, "unbusy_redis_breaker_events_total{direction=\"published\"} %llu\n",
               (unsigned long long)atomic_load(&s->published));
    buf_printf(out, "unbusy_redis_breaker_events_total{direction=\"received\"} %llu\n",
               (unsigned long long)atomic_load(&s->remote_opens));
}
