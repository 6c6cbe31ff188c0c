/*
 * The admission half of a proxied request: who the client is (virtual key),
 * where the request goes (tiering rules, degradation to a fallback model),
 * whether it may start now (rate limits, the model's admission queue) — and
 * giving all of that back when the request ends (proxy_admit_finish).
 *
 *   key ─▶ rules ─▶ model ─▶ rate limits ─┬─ 429 + Retry-After
 *                                         ├─ degrade? (fallback model)
 *                                         └─ admission ─┬─ start now
 *                                                       ├─ wait (queue, keep-alives) ─▶ start / 429 at the deadline
 *                                                       └─ shed: 429 + Retry-After from the drain rate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit/budget.h"
#include "admit/keys.h"
#include "base/log.h"
#include "obs/metrics.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "admit/ratelimit.h"
#include "http/server.h"

#define PRIORITY_HEADER "x-unbusy-priority"
#define QUEUE_TIMEOUT_HEADER "x-unbusy-queue-timeout"
#define DEFAULT_COMPLETION_ESTIMATE 1024 /* tokens charged up front when max_tokens is absent */

static bool str_eq(const struct http1_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s && s->len == n && strncasecmp(s->p, lit, n) == 0;
}

static long header_int(const struct http1_head *h, const char *name, long dflt)
{
    const struct http1_str *v = http1_find_header(h, name);
    if (!v || v->len == 0 || v->len > 9)
        return dflt;
    long n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return dflt;
        n = n * 10 + (v->p[i] - '0');
    }
    return n;
}

const struct key_info *proxy_authenticate(struct server_conn *c, enum gw_err *err, const char **msg)
{
    struct proxy_env *env = proxy_env_of(c);
    *err = GW_ERR_UNAUTHORIZED;
    *msg = NULL;
    if (env->cfg->auth.open)
        return NULL; /* the config opened the gateway: no key needed */
    const struct http1_str *auth = http1_find_header(&server_conn_request(c)->http.head, "authorization");
    if (!auth || auth->len == 0) {
        *msg = "no API key: send it as 'Authorization: Bearer KEY'";
        return NULL;
    }
    /* No key table (cannot happen when serving) refuses like an empty one. */
    const struct key_info *ki = env->keys ? keys_lookup(env->keys, auth->p, auth->len) : NULL;
    if (!ki)
        *msg = "incorrect API key provided";
    return ki;
}

bool proxy_check_head(struct server_conn *c)
{
    enum gw_err err;
    const char *msg;
    const struct key_info *ki = proxy_authenticate(c, &err, &msg);
    if (ki)
        keys_release(ki);
    if (!msg)
        return true;
    server_respond_error(c, err, msg, NULL);
    return false;
}

/* The first tiering rule that matches decides the model and tier; NULL: no rule matched. */
const struct cfg_rule *proxy_match_rule(const struct config *cfg, const struct jsonx_request *scan,
                                        const struct key_info *ki, const struct http1_head *h)
{
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct cfg_rule *r = &cfg->rules[i];
        if (r->match_model && strcmp(r->match_model, scan->model) != 0)
            continue;
        if (r->match_key && (!ki || strcmp(r->match_key, ki->name) != 0))
            continue;
        if (r->match_header) {
            const struct http1_str *v = http1_find_header(h, r->match_header);
            if (!v || (r->match_header_value && !str_eq(v, r->match_header_value)))
                continue;
        }
        if (r->min_prompt_chars && scan->prompt_chars < r->min_prompt_chars)
            continue;
        if (r->max_prompt_chars && scan->prompt_chars > r->max_prompt_chars)
            continue;
        if (r->match_tools >= 0 && (int)scan->has_tools != r->match_tools)
            continue;
        return r;
    }
    return NULL;
}

void proxy_limit_headers(struct preq *p, struct buf *h)
{
    struct proxy_env *env = p->env;
    if (!env->rl || (!p->limit_key && !p->model->rpm && !p->model->tpm))
        return;
    struct ratelimit_status st;
    ratelimit_status(env->rl, p->limit_key, p->model->name, runtime_now_ms(), &st);
    char lines[RATELIMIT_HEADERS_MAX];
    if (ratelimit_format_headers(&st, lines, sizeof lines) > 0)
        buf_append_str(h, lines);
}

static void on_queue_tick(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (p->waiting && p->head_sent)
        server_stream_write(p->conn, ": queued\n\n", 10);
}

static void on_queue_deadline(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (!p->waiting || p->finished)
        return;
    if (!admission_remove(&p->rm->admission, &p->waiter))
        return; /* handed on a moment ago: proxy_admitted continues it */
    p->waiting = false;
    uv_timer_stop(&p->hedge_timer);
    pthread_mutex_lock(&p->rm->admission.lock);
    p->rm->admission.timeouts++;
    pthread_mutex_unlock(&p->rm->admission.lock);
    uint32_t ra = admission_retry_after_s(&p->rm->admission);
    char msg[200];
    snprintf(msg, sizeof msg, "model '%s' is at capacity: waited %llu ms in the queue without a free slot",
             p->model->name, (unsigned long long)(runtime_now_ms() - p->queued_ms));
    proxy_fail_request(p, GW_ERR_RATE_LIMITED, msg, (int)ra);
    proxy_finalize(p, OUTCOME_QUEUE_TIMEOUT);
}

static void shed(struct preq *p, const char *why)
{
    uint32_t ra = admission_retry_after_s(&p->rm->admission);
    char msg[200];
    snprintf(msg, sizeof msg, "model '%s' is overloaded and the request was shed (%s)", p->model->name, why);
    metrics_shed(p->env->metrics, p->model);
    proxy_fail_request(p, GW_ERR_RATE_LIMITED, msg, (int)ra);
    proxy_finalize(p, OUTCOME_SHED);
}

static bool enqueue(struct preq *p)
{
    const struct cfg_queue *q = &p->model->queue;
    uint64_t now = runtime_now_ms();
    long timeout = q->timeout_ms;
    long asked = header_int(&server_conn_request(p->conn)->http.head, QUEUE_TIMEOUT_HEADER, -1);
    if (asked >= 0 && asked < timeout)
        timeout = asked; /* a client may only shorten it */
    if (q->max == 0 || timeout == 0) {
        shed(p, "no queue");
        return false;
    }
    p->waiter.cls = p->cls;
    p->waiter.key = p->key ? p->key->id : -1;
    p->waiter.owner = p->env;
    p->waiter.ud = p;
    if (admission_enqueue(&p->rm->admission, &p->waiter, now) < 0) {
        shed(p, "the queue is full");
        return false;
    }
    p->waiting = true;
    p->queued_ms = now;
    uv_timer_start(&p->queue_timer, on_queue_deadline, (uint64_t)timeout, 0);
    if (p->client_stream && q->keepalive_ms) {
        /* The head now and comments while waiting, so the client's SDK does not time out;
           nothing that would stop a failover later has been sent. */
        struct buf h;
        buf_init(&h, 0);
        buf_append_str(&h, "Cache-Control: no-cache\r\nx-unbusy-queued: true\r\n");
        proxy_limit_headers(p, &h);
        server_stream_begin(p->conn, 200, "text/event-stream", h.data);
        buf_free(&h);
        p->head_sent = true;
        uv_timer_start(&p->hedge_timer, on_queue_tick, q->keepalive_ms, q->keepalive_ms);
    }
    return false;
}

void proxy_admitted(struct admission_waiter *aw)
{
    struct preq *p = aw->ud;
    if (p->finished) {
        /* it ended while being handed on: give the slot back and let it go */
        if (!aw->evicted)
            admission_done(&p->rm->admission, runtime_now_ms());
        p->waiter_handed = false;
        if (--p->handles_open == 0) {
            config_unref(p->cfg);
            free(p);
        }
        return;
    }
    p->waiting = false;
    uv_timer_stop(&p->queue_timer);
    uv_timer_stop(&p->hedge_timer);
    if (aw->evicted) {
        shed(p, "made room for a higher priority");
        return;
    }
    p->adm_slot = true;
    metrics_queue_wait(p->env->metrics, p->model, (runtime_now_ms() - p->queued_ms) * 1000);
    proxy_go(p);
}

bool proxy_admit(struct preq *p)
{
    struct proxy_env *env = p->env;
    const struct http1_head *h = &server_conn_request(p->conn)->http.head;
    uint64_t now = runtime_now_ms();
    p->cls = p->key ? p->key->priority : KEYS_PRIORITY_DEFAULT;
    long asked = header_int(h, PRIORITY_HEADER, -1);
    if (asked >= 0 && asked <= KEYS_PRIORITY_MAX && asked >= (p->key ? p->key->priority : 0))
        p->cls = (int)asked; /* a key may lower its own priority, never raise it */

    /* The key's budget: refused, or sent to the cheaper model its budget names. */
    if (env->budgets && p->key) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const char *to = NULL;
        char why[256];
        enum budget_verdict bv = budgets_check(env->budgets, p->key->name,
                                               (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &to, why,
                                               sizeof why);
        if (bv == BUDGET_REFUSE) {
            proxy_fail_request(p, GW_ERR_QUOTA, why, -1);
            proxy_finalize(p, OUTCOME_BUDGET_EXHAUSTED);
            return false;
        }
        const struct cfg_model *cheaper = bv == BUDGET_DEGRADE && to ? config_find_model(p->cfg, to) : NULL;
        if (cheaper && cheaper != p->model) {
            p->degraded_from = p->model->name;
            p->model = cheaper;
            p->rm = runtime_model(env->rt, cheaper);
            server_conn_request_mut(p->conn)->log.model = cheaper->name;
        }
    }

    /* Graceful degradation: above the model's load threshold, to its fallback model. */
    const struct cfg_model *fb = NULL;
    if (!p->degraded_from && p->model->degrade.enabled && p->model->degrade.to &&
        admission_degrade(&p->rm->admission, &p->model->degrade, p->cls) &&
        (fb = config_find_model(p->cfg, p->model->degrade.to)) != NULL) {
        p->degraded_from = p->model->name;
        metrics_degraded(env->metrics, p->model);
        p->model = fb;
        p->rm = runtime_model(env->rt, fb);
        server_conn_request_mut(p->conn)->log.model = fb->name;
    }

    if (env->rl && (p->limit_key || p->model->rpm || p->model->tpm)) {
        const char *model_limit = (p->model->rpm || p->model->tpm) ? p->model->name : NULL;
        if (!ratelimit_enter(env->rl, p->limit_key, model_limit)) {
            proxy_fail_request(p, GW_ERR_RATE_LIMITED, "too many requests in flight for this key", 1);
            proxy_finalize(p, OUTCOME_RATE_LIMITED);
            return false;
        }
        p->rl_entered = true;
        uint64_t completion = p->scan.has_max_tokens && p->scan.max_tokens > 0 ? (uint64_t)p->scan.max_tokens
                                                                              : DEFAULT_COMPLETION_ESTIMATE;
        uint64_t estimate = p->scan.prompt_chars / 4 + completion;
        uint64_t wait_ms = 0;
        enum ratelimit_verdict v = ratelimit_try(env->rl, p->limit_key, model_limit, estimate, now, &wait_ms);
        if (v != RATELIMIT_OK) {
            char msg[200];
            if (v == RATELIMIT_TOO_LARGE)
                snprintf(msg, sizeof msg, "the request's token estimate (%llu) is more than a minute's "
                                          "token limit allows", (unsigned long long)estimate);
            else
                snprintf(msg, sizeof msg, "rate limit reached; try again in %llu ms",
                         (unsigned long long)wait_ms);
            proxy_fail_request(p, GW_ERR_RATE_LIMITED, msg,
                               v == RATELIMIT_TOO_LARGE ? -1 : (int)ratelimit_retry_after_seconds(wait_ms));
            proxy_finalize(p, OUTCOME_RATE_LIMITED);
            return false;
        }
        p->rl_estimate = estimate;
    }

    if (admission_try(&p->rm->admission, p->cls) == ADMISSION_START) {
        p->adm_slot = true;
        return true;
    }
    return enqueue(p);
}

/* Gives back the slot and settles the token estimate with the real usage — or, when none was
   reported (a stream the client aborted, one cut, a provider that never reports usage), with
   the prompt and the text generated so far, estimated. Called before the answer's last bytes
   go out, so that a client's next request (on any worker) sees it. */
void proxy_admit_settle(struct preq *p)
{
    struct proxy_env *env = p->env;
    uint64_t now = runtime_now_ms();
    if (p->adm_slot) {
        p->adm_slot = false;
        admission_done(&p->rm->admission, now);
    }
    if (p->rl_entered) {
        const char *model_limit = (p->model->rpm || p->model->tpm) ? p->model->name : NULL;
        if (p->rl_estimate) {
            const struct accesslog_entry *log = &server_conn_request(p->conn)->log;
            struct ratelimit_usage used = {.reported_tokens = -1, .sent = p->attempts > 0};
            if (log->prompt_tokens >= 0 && !log->usage_estimated)
                used.reported_tokens =
                    log->prompt_tokens + (log->completion_tokens > 0 ? log->completion_tokens : 0);
            int64_t prompt, streamed;
            proxy_estimate_usage(p, p->content_chars, &prompt, &streamed);
            used.prompt_tokens = (uint64_t)prompt;
            used.streamed_tokens = (uint64_t)streamed;
            ratelimit_settle(env->rl, p->limit_key, model_limit, p->rl_estimate, &used, now);
        }
        ratelimit_leave(env->rl, p->limit_key, model_limit);
        p->rl_entered = false;
    }
}

void proxy_admit_finish(struct preq *p)
{
    uv_timer_stop(&p->queue_timer);
    if (p->waiting) {
        p->waiting = false;
        if (!admission_remove(&p->rm->admission, &p->waiter)) {
            /* already handed to this worker's ready list: proxy_admitted frees it */
            p->waiter_handed = true;
            p->handles_open++;
        }
    }
    proxy_admit_settle(p);
    if (p->key) {
        keys_release(p->key);
        p->key = NULL;
    }
}
