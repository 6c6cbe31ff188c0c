/*
 * The request's side of admission: who the client is (the virtual key, at
 * head time), which model a tiering rule picks, and the glue the admission
 * steps (admit/steps.h) work through — answering the client, switching the
 * model, the queued stream's head and keep-alives, the request's timers, the
 * usage a finished request settles with. proxy_admit runs the steps;
 * proxy_admit_settle / proxy_admit_finish give back what they took, once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#include "admit/admit.h"
#include "admit/keys.h"
#include "admit/steps.h"
#include "base/log.h"
#include "obs/metrics.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "admit/ratelimit.h"
#include "route/runtime.h"
#include "http/server.h"

#define PRIORITY_HEADER "x-unbusy-priority"
#define QUEUE_TIMEOUT_HEADER "x-unbusy-queue-timeout"

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

/* ---- the request's side of the admission steps (admit/admit.h) ------------ */

static struct preq *of(struct admit_req *r)
{
    return (struct preq *)((char *)r - offsetof(struct preq, adm));
}

static void op_answer(struct admit_req *r, enum admit_refusal why, const char *msg, int retry_after_s,
                      enum outcome outcome)
{
    struct preq *p = of(r);
    proxy_fail_request(p,
                       why == ADMIT_REFUSE_QUOTA  ? GW_ERR_QUOTA
                       : why == ADMIT_REFUSE_GONE ? GW_ERR_UNKNOWN_MODEL
                                                  : GW_ERR_RATE_LIMITED,
                       msg, retry_after_s);
    proxy_finalize(p, outcome);
}

static void op_set_model(struct admit_req *r, const struct cfg_model *m)
{
    struct preq *p = of(r);
    if (!p->degraded_from)
        p->degraded_from = p->model->name; /* the model asked for, for the ledger and the header */
    p->model = m;
    p->rm = runtime_model(p->rt, m);
    server_conn_request_mut(p->conn)->log.model = m->name;
    r->model = m;
    r->adm = p->rm->admission;
}

static void op_usage(struct admit_req *r, struct ratelimit_usage *used)
{
    struct preq *p = of(r);
    const struct accesslog_entry *log = &server_conn_request(p->conn)->log;
    *used = (struct ratelimit_usage){.reported_tokens = -1, .sent = p->attempts > 0};
    if (log->prompt_tokens >= 0 && !log->usage_estimated)
        used->reported_tokens = log->prompt_tokens + (log->completion_tokens > 0 ? log->completion_tokens : 0);
    int64_t prompt, streamed;
    proxy_estimate_usage(p, p->content_chars, &prompt, &streamed);
    used->prompt_tokens = (uint64_t)prompt;
    used->streamed_tokens = (uint64_t)streamed;
}

static void op_waiting_head(struct admit_req *r)
{
    proxy_waiting_head(of(r));
}

void proxy_waiting_head(struct preq *p)
{
    struct buf h;
    buf_init(&h, 0);
    buf_append_str(&h, "Cache-Control: no-cache\r\nx-unbusy-queued: true\r\n");
    proxy_limit_headers(p, &h);
    server_stream_begin(p->conn, 200, "text/event-stream", h.data);
    buf_free(&h);
    p->head_sent = true;
}

static void op_keepalive(struct admit_req *r)
{
    struct preq *p = of(r);
    if (p->head_sent)
        server_stream_write(p->conn, ": queued\n\n", 10);
}

static void on_admit_deadline(uv_timer_t *t)
{
    struct preq *p = t->data;
    admit_timer(&p->run, ADMIT_TIMER_DEADLINE);
}

static void on_admit_tick(uv_timer_t *t)
{
    struct preq *p = t->data;
    admit_timer(&p->run, ADMIT_TIMER_TICK);
}

/* A waiting request has no attempt yet, so it lends the hedge timer to the tick. */
static void op_arm(struct admit_req *r, enum admit_timer which, uint64_t ms, uint64_t repeat)
{
    struct preq *p = of(r);
    uv_timer_t *t = which == ADMIT_TIMER_DEADLINE ? &p->queue_timer : &p->hedge_timer;
    if (ms)
        uv_timer_start(t, which == ADMIT_TIMER_DEADLINE ? on_admit_deadline : on_admit_tick, ms, repeat);
    else
        uv_timer_stop(t);
}

static void op_hold(struct admit_req *r)
{
    of(r)->handles_open++;
}

static void op_release(struct admit_req *r)
{
    struct preq *p = of(r);
    if (--p->handles_open == 0) {
        config_unref(p->cfg);
        runtime_unref(p->rt);
        free(p);
    }
}

static uint64_t op_now_ms(struct admit_req *r)
{
    (void)r;
    return runtime_now_ms();
}

static void op_go(struct admit_req *r)
{
    proxy_go(of(r));
}

static void op_counted(struct admit_req *r, enum admit_event ev, uint64_t value)
{
    struct preq *p = of(r);
    switch (ev) {
    case ADMIT_EVENT_DEGRADED:
        metrics_degraded(p->env->metrics, r->model);
        break;
    case ADMIT_EVENT_SHED:
        metrics_shed(p->env->metrics, r->model);
        break;
    case ADMIT_EVENT_QUEUE_WAIT:
        metrics_queue_wait(p->env->metrics, r->model, value);
        break;
    }
}

static const struct admit_ops ops = {
    .answer = op_answer,
    .set_model = op_set_model,
    .usage = op_usage,
    .waiting_head = op_waiting_head,
    .keepalive = op_keepalive,
    .arm = op_arm,
    .hold = op_hold,
    .release = op_release,
    .now_ms = op_now_ms,
    .go = op_go,
    .counted = op_counted,
};

void proxy_admitted(struct admission_waiter *aw)
{
    admit_queue_woken(aw);
}

bool proxy_admit(struct preq *p)
{
    struct proxy_env *env = p->env;
    const struct http1_head *h = &server_conn_request(p->conn)->http.head;
    p->adm = (struct admit_req){
        .ops = &ops,
        .cfg = p->cfg,
        .model = p->model,
        .adm = p->rm->admission,
        .key = p->key,
        .limit_key = p->limit_key,
        .scan = &p->scan,
        .client_stream = p->client_stream,
        .asked_priority = header_int(h, PRIORITY_HEADER, -1),
        .asked_queue_timeout_ms = header_int(h, QUEUE_TIMEOUT_HEADER, -1),
        .rl = env->rl,
        .budgets = env->budgets,
        .shared = env->shared,
        .redis = env->redis,
        .owner = env,
    };
    if (admit_init(&p->run, admit_steps, admit_nsteps, &p->adm) < 0) {
        /* the steps' states outgrew ADMIT_STATE_MAX: test_admit fails first */
        proxy_fail_request(p, GW_ERR_INTERNAL, "admission is misconfigured", -1);
        proxy_finalize(p, OUTCOME_NONE);
        return false;
    }
    return admit_run(&p->run) == ADMIT_GO;
}

/* Settles every admission step that went (slots back, token estimates settled with the real
   usage). Called before the answer's last bytes go out, so that a client's next request (on
   any worker) sees it; again at the end, when it does nothing. */
void proxy_admit_settle(struct preq *p)
{
    admit_finish(&p->run);
}

void proxy_admit_finish(struct preq *p)
{
    admit_finish(&p->run);
    if (p->key) {
        keys_release(p->key);
        p->key = NULL;
    }
}
