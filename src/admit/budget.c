#include "admit/budget.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/buf.h"
#include "proto/http1.h"
#include "base/log.h"
#include "net/transport.h"
#include "net/uphttp.h"
#include "base/utcdate.h"
#include "admit/shared_spend.h"

/*
 * Layout: dates; the budgets and their lookup; raising an alert; the check;
 * the webhook thread (build a POST, one attempt, retry, drain and close);
 * new and free.
 *
 * Threads: any thread calls budgets_check; it takes `lock` only to queue an
 * alert (a copy of a small struct), never while holding the ledger's lock.
 * The webhook thread alone touches the loop, the pool and the exchange in
 * flight (`hook`); the request path reaches it only through uv_async_send.
 */

#define DAY_MS UTCDATE_DAY_MS
#define EPSILON 1e-9 /* relative: a sum of float costs a hair under a limit is at it */
#define MAX_BACKOFF_SHIFT 20
#define REQUEST_LIMIT (64u << 10)

enum { LEVEL_WARNING, LEVEL_EXHAUSTED };

/* ---- dates (UTC, utcdate.c: no gmtime_r and its lock) ---- */

/* The period's number (days since 1970, or year * 12 + month - 1) and when it ends. */
static int64_t period_number(enum ledger_period p, int64_t now_ms, int64_t *end_ms)
{
    int64_t day = utcdate_floor_div(now_ms, DAY_MS);
    if (p == LEDGER_DAY) {
        if (end_ms) *end_ms = (day + 1) * DAY_MS;
        return day;
    }
    int y;
    unsigned m, d;
    utcdate_civil_from_days(day, &y, &m, &d);
    if (end_ms) *end_ms = utcdate_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY_MS;
    return (int64_t)y * 12 + m - 1;
}

#define ISO_TIME_SIZE 24

static void iso_time(int64_t ms, char out[ISO_TIME_SIZE])
{
    int64_t day = utcdate_floor_div(ms, DAY_MS), sec = utcdate_floor_div(ms, 1000) - day * 86400;
    int y;
    unsigned m, d;
    utcdate_civil_from_days(day, &y, &m, &d);
    if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;
    unsigned hms = (unsigned)sec % 86400;
    snprintf(out, ISO_TIME_SIZE, "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)y % 10000, m % 100,
             d % 100, hms / 3600 % 100, hms / 60 % 60, hms % 60);
}

static const char *period_word(enum ledger_period p)
{
    return p == LEDGER_DAY ? "daily" : "monthly";
}

/* ---- the budgets ---- */

struct budget_slot {
    const struct cfg_budget *cfg;
    /* [period][level]: the number of the last period this alert went out for
       (INT64_MIN: never). The compare-and-swap on it makes each alert once. */
    _Atomic int64_t alerted[2][2];
};

struct alert {
    char key[CONFIG_KEY_NAME_MAX + 1];
    char currency[8];
    enum ledger_period period;
    bool exhausted;
    double budget, spent, threshold;
    int64_t time_ms;
};

enum hook_state { HOOK_IDLE, HOOK_SENDING, HOOK_BACKOFF };

struct budgets {
    struct config *cfg; /* one reference */
    struct ledger *ledger;
    struct budget_slot *slots;
    size_t nslots;
    uint32_t *index; /* open addressing over key names: slot + 1, 0 empty */
    size_t index_mask;
    struct budgets_options opt;
    struct shared_spend *shared; /* the other replicas' spend; NULL: this process's only */

    /* The queue: any thread pushes, the webhook thread pops. */
    pthread_mutex_t lock;
    struct alert *ring;
    uint32_t cap, head, count;
    bool hold;
    atomic_ullong fired, delivered, failed, dropped;

    /* The webhook thread. */
    const struct cfg_provider *webhook; /* NULL: no webhook, no thread */
    bool thread_started;
    pthread_t thread;
    atomic_bool stopping;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer; /* the attempt's deadline, or the backoff before the next one */
    uv_timer_t drain; /* the bound on budgets_free */
    struct transport_pool *pool;
    int handles_open;
    struct {
        enum hook_state state;
        struct alert cur;
        unsigned attempt;
        int status;
        struct uphttp *up;
        bool draining, closing;
    } hook;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct budget_slot *find_slot(struct budgets *b, const char *name)
{
    if (!b->index) return NULL;
    for (size_t i = name_hash(name) & b->index_mask; b->index[i]; i = (i + 1) & b->index_mask) {
        struct budget_slot *s = &b->slots[b->index[i] - 1];
        if (strcmp(s->cfg->key_name, name) == 0) return s;
    }
    return NULL;
}

/* ---- raising an alert ---- */

static void alert_text(const struct alert *a, const char *action, char *out, size_t cap)
{
    if (a->exhausted)
        snprintf(out, cap, "unbusy: key %s has spent its %s budget (%.6g of %.6g %s)%s%s", a->key,
                 period_word(a->period), a->spent, a->budget, a->currency, action ? "; " : "",
                 action ? action : "");
    else
        snprintf(out, cap, "unbusy: key %s has spent %.0f%% of its %s budget (%.6g of %.6g %s)",
                 a->key, a->spent / a->budget * 100, period_word(a->period), a->spent, a->budget,
                 a->currency);
}

static void queue_alert(struct budgets *b, const struct alert *a)
{
    pthread_mutex_lock(&b->lock);
    bool room = b->count < b->cap;
    if (room) {
        b->ring[(b->head + b->count) % b->cap] = *a;
        b->count++;
    }
    pthread_mutex_unlock(&b->lock);
    if (!room) {
        uint64_t n = atomic_fetch_add(&b->dropped, 1) + 1;
        log_warn("budget: alert queue full (%u); alerts dropped so far: %llu", b->cap,
                 (unsigned long long)n);
        return;
    }
    uv_async_send(&b->wake);
}

/* Sends the alert when this call is the first to see (slot, period, level) this period. */
static void alert_once(struct budgets *b, struct budget_slot *s, enum ledger_period p, int level,
                       int64_t number, double amount, double spent, int64_t now_ms)
{
    _Atomic int64_t *seen_at = &s->alerted[p][level];
    int64_t seen = atomic_load_explicit(seen_at, memory_order_relaxed);
    do {
        if (seen >= number) return; /* sent already (or the clock went back) */
    } while (!atomic_compare_exchange_weak(seen_at, &seen, number));
    struct alert a = {
        .period = p,
        .exhausted = level == LEVEL_EXHAUSTED,
        .budget = amount,
        .spent = spent,
        .threshold = level == LEVEL_EXHAUSTED ? 1.0 : b->cfg->budget_alert_at,
        .time_ms = now_ms,
    };
    snprintf(a.key, sizeof a.key, "%s", s->cfg->key_name);
    snprintf(a.currency, sizeof a.currency, "%s", s->cfg->currency);
    atomic_fetch_add(&b->fired, 1);
    char text[256], action[160];
    if (s->cfg->degrade)
        snprintf(action, sizeof action, "its requests go to %s", s->cfg->degrade_to);
    else
        snprintf(action, sizeof action, "its requests are refused");
    alert_text(&a, action, text, sizeof text);
    log_warn("%s", text + strlen("unbusy: "));
    if (b->webhook) queue_alert(b, &a);
}

/* ---- the check ---- */

enum budget_verdict budgets_check(struct budgets *b, const char *key_name, int64_t now_ms,
                                  const char **degrade_to, char *why, size_t cap)
{
    if (!b || !key_name || !b->nslots) return BUDGET_OK;
    struct budget_slot *s = find_slot(b, key_name);
    if (!s) return BUDGET_OK;
    const struct cfg_budget *c = s->cfg;
    bool out = false;
    enum ledger_period out_period = LEDGER_DAY;
    double out_amount = 0, out_spent = 0;
    int64_t out_end = 0;
    for (int p = LEDGER_DAY; p <= LEDGER_MONTH; p++) {
        double amount = p == LEDGER_DAY ? c->daily : c->monthly;
        if (amount <= 0) continue;
        double spent =
            ledger_spend(b->ledger, key_name, (enum ledger_period)p, now_ms, c->currency);
        spent = shared_spend_total(b->shared, c, (enum ledger_period)p, now_ms, spent);
        int64_t end = 0, number = period_number((enum ledger_period)p, now_ms, &end);
        double slack = amount * EPSILON;
        if (spent + slack >= amount) {
            alert_once(b, s, (enum ledger_period)p, LEVEL_EXHAUSTED, number, amount, spent, now_ms);
            /* Tell the client the later reset: the one it has to wait for. */
            if (!out || end > out_end) {
                out_period = (enum ledger_period)p;
                out_amount = amount;
                out_spent = spent;
                out_end = end;
            }
            out = true;
        } else if (spent + slack >= amount * b->cfg->budget_alert_at) {
            alert_once(b, s, (enum ledger_period)p, LEVEL_WARNING, number, amount, spent, now_ms);
        }
    }
    if (!out) return BUDGET_OK;
    if (why && cap) {
        char reset[ISO_TIME_SIZE];
        iso_time(out_end, reset);
        snprintf(why, cap, "the %s budget of key %s is spent (%.6g of %.6g %s); it resets at %s",
                 period_word(out_period), key_name, out_spent, out_amount, c->currency, reset);
    }
    if (c->degrade) {
        if (degrade_to) *degrade_to = c->degrade_to;
        return BUDGET_DEGRADE;
    }
    return BUDGET_REFUSE;
}

void budgets_stats(struct budgets *b, struct budgets_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!b) return;
    out->fired = atomic_load(&b->fired);
    out->delivered = atomic_load(&b->delivered);
    out->failed = atomic_load(&b->failed);
    out->dropped = atomic_load(&b->dropped);
    pthread_mutex_lock(&b->lock);
    out->depth = b->count;
    pthread_mutex_unlock(&b->lock);
}

void budgets_share(struct budgets *b, struct shared_spend *ss)
{
    if (b) b->shared = ss;
}

void budgets_test_hold(struct budgets *b, bool hold)
{
    pthread_mutex_lock(&b->lock);
    b->hold = hold;
    pthread_mutex_unlock(&b->lock);
    if (b->webhook) uv_async_send(&b->wake);
}

/* ---- the webhook thread ---- */

static char *build_request(struct budgets *b, const struct alert *a, size_t *len)
{
    const struct cfg_provider *w = b->webhook;
    struct buf body, req;
    buf_init(&body, REQUEST_LIMIT);
    buf_init(&req, REQUEST_LIMIT);
    char when[ISO_TIME_SIZE], text[256];
    iso_time(a->time_ms, when);
    alert_text(a, NULL, text, sizeof text);
    /* Any append that fails (no memory) fails the whole request, never half a body. */
    int rc = buf_append_str(&body, "{\"type\":\"budget_alert\",\"key\":");
    rc |= buf_append_json_str(&body, a->key, strlen(a->key));
    rc |= buf_printf(&body,
                     ",\"period\":\"%s\",\"level\":\"%s\",\"budget\":%.10g,\"spent\":%.10g,"
                     "\"currency\":",
                     a->period == LEDGER_DAY ? "day" : "month",
                     a->exhausted ? "exhausted" : "warning", a->budget, a->spent);
    rc |= buf_append_json_str(&body, a->currency, strlen(a->currency));
    rc |= buf_printf(&body, ",\"share\":%.4g,\"threshold\":%.4g,\"time\":\"%s\",\"text\":",
                     a->spent / a->budget, a->threshold, when);
    rc |= buf_append_json_str(&body, text, strlen(text));
    rc |= buf_append_str(&body, "}");

    /* the path is the webhook's own, whole: no base path before it */
    struct cfg_provider target = *w;
    target.base_path = "";
    rc |= uphttp_request_head(&req, &target, "POST", b->cfg->budget_webhook_path, "unbusy-budgets/0.1");
    rc |= buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body.len);
    rc |= buf_append_str(&req, "\r\n");
    rc |= buf_append(&req, body.data, body.len);
    buf_free(&body);
    if (rc != 0) {
        buf_free(&req);
        return NULL;
    }
    return buf_steal(&req, len);
}

static void hook_pump(struct budgets *b);
static void on_timer(uv_timer_t *t);

static void hook_end_exchange(struct budgets *b)
{
    uv_timer_stop(&b->timer);
    if (b->hook.up) {
        uphttp_cancel(b->hook.up); /* allowed from inside its callbacks */
        b->hook.up = NULL;
    }
}

/* The current alert is done with; the next one starts from the loop (so a
   queue of alerts that fail at once never recurses). */
static void hook_next(struct budgets *b)
{
    b->hook.state = HOOK_IDLE;
    uv_timer_start(&b->timer, on_timer, 0, 0);
}

static void hook_give_up(struct budgets *b, const char *why)
{
    atomic_fetch_add(&b->failed, 1);
    log_warn("budget: webhook: gave up on the %s alert for key %s after %u attempt%s (%s)",
             b->hook.cur.exhausted ? "exhausted" : "warning", b->hook.cur.key, b->hook.attempt,
             b->hook.attempt == 1 ? "" : "s", why);
}

static void hook_retry(struct budgets *b, const char *why)
{
    hook_end_exchange(b);
    if (b->hook.attempt >= b->opt.attempts) {
        hook_give_up(b, why);
        hook_next(b);
        return;
    }
    unsigned shift = b->hook.attempt - 1;
    uint64_t delay = (uint64_t)b->opt.backoff_ms
                     << (shift > MAX_BACKOFF_SHIFT ? MAX_BACKOFF_SHIFT : shift);
    log_debug("budget: webhook attempt %u failed (%s); next in %llu ms", b->hook.attempt, why,
              (unsigned long long)delay);
    b->hook.state = HOOK_BACKOFF;
    uv_timer_start(&b->timer, on_timer, delay, 0);
}

static void on_head(void *ud, const struct http1_response *resp)
{
    struct budgets *b = ud;
    b->hook.status = resp->status;
}

static void on_body(void *ud, const char *data, size_t len)
{
}

static void on_end(void *ud)
{
    struct budgets *b = ud;
    int st = b->hook.status;
    char why[32];
    snprintf(why, sizeof why, "HTTP %d", st);
    if (st >= 200 && st < 300) {
        hook_end_exchange(b);
        atomic_fetch_add(&b->delivered, 1);
        hook_next(b);
    } else if (st >= 400 && st < 500 && st != 408 && st != 429) {
        /* The receiver refuses this request as such: sending it again changes nothing. */
        hook_end_exchange(b);
        hook_give_up(b, why);
        hook_next(b);
    } else {
        hook_retry(b, why);
    }
}

static void on_fail(void *ud, enum uphttp_fail f, enum transport_err terr)
{
    struct budgets *b = ud;
    hook_retry(b, f == UPHTTP_FAIL_TRANSPORT ? transport_err_name(terr) : "malformed reply");
}

static const struct uphttp_events hook_events = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_fail = on_fail,
};

static void hook_send(struct budgets *b)
{
    b->hook.attempt++;
    b->hook.status = 0;
    size_t len = 0;
    char *req = build_request(b, &b->hook.cur, &len);
    if (!req) {
        hook_retry(b, "out of memory");
        return;
    }
    uint32_t connect_ms = b->webhook->connect_timeout_ms;
    if (!connect_ms || connect_ms > b->opt.timeout_ms) connect_ms = b->opt.timeout_ms;
    b->hook.state = HOOK_SENDING;
    b->hook.up = uphttp_start(b->pool, b->webhook, connect_ms, req, len, &hook_events, b);
    if (!b->hook.up) {
        hook_retry(b, "could not start");
        return;
    }
    uv_timer_start(&b->timer, on_timer, b->opt.timeout_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct budgets *b = t->data;
    switch (b->hook.state) {
    case HOOK_SENDING:
        hook_retry(b, "timeout");
        break;
    case HOOK_BACKOFF:
        hook_send(b);
        break;
    case HOOK_IDLE:
        hook_pump(b);
        break;
    }
}

static void on_handle_closed(uv_handle_t *h);
static void on_drain(uv_timer_t *t);

static void hook_close(struct budgets *b)
{
    if (b->hook.closing) return;
    b->hook.closing = true;
    hook_end_exchange(b);
    b->handles_open = 3;
    uv_close((uv_handle_t *)&b->wake, on_handle_closed);
    uv_close((uv_handle_t *)&b->timer, on_handle_closed);
    uv_close((uv_handle_t *)&b->drain, on_handle_closed);
}

static void hook_pump(struct budgets *b)
{
    if (b->hook.closing) return;
    if (!b->hook.draining && atomic_load(&b->stopping)) {
        b->hook.draining = true;
        uv_timer_start(&b->drain, on_drain, b->opt.drain_ms, 0);
    }
    if (b->hook.state != HOOK_IDLE) return;
    pthread_mutex_lock(&b->lock);
    bool empty = b->count == 0, got = !b->hold && !empty;
    if (got) {
        b->hook.cur = b->ring[b->head];
        b->head = (b->head + 1) % b->cap;
        b->count--;
    }
    pthread_mutex_unlock(&b->lock);
    if (got) {
        b->hook.attempt = 0;
        hook_send(b);
    } else if (b->hook.draining && empty) {
        hook_close(b); /* else held (tests): the drain timer gives the queue up */
    }
}

static void on_wake(uv_async_t *a)
{
    hook_pump(a->data);
}

/* budgets_free's bound: what is still out or queued is given up. */
static void on_drain(uv_timer_t *t)
{
    struct budgets *b = t->data;
    if (b->hook.state != HOOK_IDLE) {
        hook_end_exchange(b);
        hook_give_up(b, "shutting down");
        b->hook.state = HOOK_IDLE;
    }
    pthread_mutex_lock(&b->lock);
    uint32_t left = b->count;
    b->count = 0;
    pthread_mutex_unlock(&b->lock);
    if (left) {
        atomic_fetch_add(&b->dropped, left);
        log_warn("budget: webhook: %u alert%s not sent at shutdown", left, left == 1 ? "" : "s");
    }
    hook_close(b);
}

static void on_pool_closed(void *ud)
{
    struct budgets *b = ud;
    b->pool = NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct budgets *b = h->data;
    if (--b->handles_open == 0) transport_pool_close(b->pool, on_pool_closed, b);
}

static void *hook_main(void *arg)
{
    struct budgets *b = arg;
    uv_run(&b->loop, UV_RUN_DEFAULT); /* returns once hook_close has closed everything */
    return NULL;
}

static int hook_start(struct budgets *b)
{
    if (uv_loop_init(&b->loop) != 0) return -1;
    if (!(b->pool = transport_pool_new(&b->loop))) {
        uv_loop_close(&b->loop);
        return -1;
    }
    uv_async_init(&b->loop, &b->wake, on_wake);
    uv_timer_init(&b->loop, &b->timer);
    uv_timer_init(&b->loop, &b->drain);
    b->wake.data = b->timer.data = b->drain.data = b;
    if (b->webhook->tls) transport_pool_warm(b->pool, b->webhook);
    /* Signals stay with the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&b->thread, NULL, hook_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("budget: cannot start the webhook thread: %s", strerror(rc));
        hook_close(b);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        uv_loop_close(&b->loop);
        return -1;
    }
    b->thread_started = true;
    return 0;
}

/* ---- new and free ---- */

static void free_parts(struct budgets *b)
{
    free(b->slots);
    free(b->index);
    free(b->ring);
    pthread_mutex_destroy(&b->lock);
    config_unref(b->cfg);
    free(b);
}

struct budgets *budgets_new_opts(const struct config *cfg, struct ledger *l,
                                 const struct budgets_options *o)
{
    struct budgets *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    /* The snapshot is immutable; the reference keeps names and models valid for b's life. */
    b->cfg = config_ref((struct config *)cfg);
    b->ledger = l;
    pthread_mutex_init(&b->lock, NULL);
    b->opt = o ? *o : (struct budgets_options){0};
    if (!b->opt.queue) b->opt.queue = BUDGETS_DEFAULT_QUEUE;
    if (b->opt.queue > BUDGETS_MAX_QUEUE) b->opt.queue = BUDGETS_MAX_QUEUE;
    if (!b->opt.attempts) b->opt.attempts = BUDGETS_DEFAULT_ATTEMPTS;
    if (!b->opt.backoff_ms) b->opt.backoff_ms = BUDGETS_DEFAULT_BACKOFF_MS;
    if (!b->opt.timeout_ms) b->opt.timeout_ms = BUDGETS_DEFAULT_TIMEOUT_MS;
    if (!b->opt.drain_ms) b->opt.drain_ms = BUDGETS_DEFAULT_DRAIN_MS;
    b->nslots = cfg->nbudgets;
    if (b->nslots) {
        size_t cap = 8;
        while (cap < 2 * b->nslots)
            cap *= 2;
        b->slots = calloc(b->nslots, sizeof *b->slots);
        b->index = calloc(cap, sizeof *b->index);
        if (!b->slots || !b->index) {
            free_parts(b);
            return NULL;
        }
        b->index_mask = cap - 1;
        for (size_t i = 0; i < b->nslots; i++) {
            struct budget_slot *s = &b->slots[i];
            s->cfg = &cfg->budgets[i];
            for (int p = 0; p < 2; p++)
                for (int v = 0; v < 2; v++)
                    atomic_init(&s->alerted[p][v], INT64_MIN);
            size_t at = name_hash(s->cfg->key_name) & b->index_mask;
            while (b->index[at])
                at = (at + 1) & b->index_mask;
            b->index[at] = (uint32_t)i + 1;
        }
    }
    if (cfg->budget_webhook && cfg->budget_webhook_path) {
        b->webhook = cfg->budget_webhook;
        b->cap = b->opt.queue;
        if (!(b->ring = calloc(b->cap, sizeof *b->ring)) || hook_start(b) != 0) {
            free_parts(b);
            return NULL;
        }
    }
    return b;
}

struct budgets *budgets_new(const struct config *cfg, struct ledger *l)
{
    return budgets_new_opts(cfg, l, NULL);
}

void budgets_free(struct budgets *b)
{
    if (!b) return;
    if (b->thread_started) {
        atomic_store(&b->stopping, true);
        uv_async_send(&b->wake);
        pthread_join(b->thread, NULL);
        if (uv_loop_close(&b->loop) != 0) log_error("budget: the webhook loop still has handles");
    }
    free_parts(b);
}
