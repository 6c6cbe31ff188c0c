/*
 * A proxied request:
 *
 *   start ─▶ pick a deployment (tier, health, balancer) ─▶ attempt ─┬─ first content ─▶ winner
 *              ▲                                              │     │   (stream client: commit)
 *              └─── failed before the client saw a byte ◀─────┘     └─ hedge timer: a second
 *                   (within max_attempts, the retry budget            attempt on another deployment;
 *                    and the total deadline)                          the first to bring content wins
 *   winner done ─▶ [DONE] / JSON answer ─▶ finalize
 *   winner fails after commit ─▶ error event, no [DONE] ─▶ finalize
 *
 * A non-stream client is answered only at the end, so any failure before the
 * end moves it to another deployment, invisibly. Every path ends in finalize.
 */
#include "proxy/proxy.h"

#include <cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit/keys.h"
#include "acct/ledger.h"
#include "config/presets.h"
#include "config/prices.h"
#include "base/redact.h"
#include "base/log.h"
#include "base/pool.h"
#include "obs/metrics.h"
#include "proxy/proxy_int.h"
#include "http/server.h"

static void next_attempt(struct preq *p);
static void arm_hedge(struct preq *p);
static void note_why(struct preq *p, const char *key, const char *reason, const char *detail,
                     const char *provider_said);
static const char *class_reason(enum health_class c);

static uint64_t now_ms(void)
{
    return runtime_now_ms();
}

static uint64_t remaining_at(const struct preq *p, uint64_t now)
{
    uint64_t spent = now - p->t_start;
    return spent >= p->model->timeouts.total_ms ? 0 : p->model->timeouts.total_ms - spent;
}

uint64_t proxy_remaining_ms(struct preq *p)
{
    return remaining_at(p, now_ms());
}

/* The prompt's size in tokens as the ledger estimates it (a quarter of its characters): what
   the first-token budget is learnt and looked up by. */
static uint32_t prompt_tokens(const struct preq *p)
{
    size_t t = p->scan.prompt_chars / 4;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static uint64_t rand64(struct preq *p)
{
    uint64_t x = p->env->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->env->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static struct accesslog_entry *log_entry(struct preq *p)
{
    return &server_conn_request_mut(p->conn)->log;
}

/* ---- answering the client ------------------------------------------------ */

static void extra_headers(struct preq *p, const struct attempt *a, struct buf *h)
{
    if (a && a->dep) { /* no printf: this runs for every answer */
        buf_append_lit(h, "x-unbusy-provider: ");
        buf_append_str(h, a->dep->provider->name);
        buf_append_lit(h, "\r\nx-unbusy-attempts: ");
        buf_append_u64(h, p->attempts);
        buf_append_lit(h, "\r\n");
    }
    if (p->degraded_from) {
        buf_append_lit(h, "x-unbusy-degraded: ");
        buf_append_str(h, p->model->name);
        buf_append_lit(h, "\r\n");
    }
    proxy_limit_headers(p, h);
}

/*
 * Answers a request that will not be served. Before the head has gone out this is an
 * ordinary error response; a queued stream client already has a 200 head, so it gets
 * the error as an event and the stream ends without [DONE].
 */
void proxy_fail_request(struct preq *p, enum gw_err e, const char *msg, int retry_after_s)
{
    if (p->head_sent) {
        /* The head (and its status) went out while the request waited: the retry hint
           can only travel in the message. */
        char with_hint[1024];
        if (retry_after_s >= 0) {
            snprintf(with_hint, sizeof with_hint, "%.900s; retry after %d s", msg, retry_after_s);
            msg = with_hint;
        }
        struct buf b;
        buf_init(&b, 0);
        errors_render(&b, e, msg, NULL);
        proxy_relay_event(p, b.data, b.len, NULL, false);
        buf_free(&b);
        server_stream_end(p->conn);
        server_set_close(p->conn);
        log_entry(p)->status = errors_status(e);
        return;
    }
    struct buf h;
    buf_init(&h, 0);
    extra_headers(p, p->attempts ? &p->at[0] : NULL, &h);
    if (retry_after_s >= 0)
        buf_printf(&h, "Retry-After: %d\r\n", retry_after_s);
    server_respond_error(p->conn, e, msg, h.data);
    buf_free(&h);
}

void proxy_relay_event(struct preq *p, const char *data, size_t len, const struct jsonx_chunk *ch,
                       bool framed)
{
    char *rewritten = proxy_continue_relay(p, ch, &data, &len);
    if (framed && !rewritten) {
        /* the event as it came is the event to send: "data: ", the chunk and "\n\n" */
        uv_buf_t whole = uv_buf_init((char *)data - 6, (unsigned)len + 8);
        server_stream_writev(p->conn, &whole, 1);
    } else if (ch && !rewritten ? ch->multiline : memchr(data, '\n', len) != NULL) {
        /* the scan knows whether the chunk has a line end (a chunk of the last one's shape
           without a walk: the same as it); a rewritten chunk is searched. An upstream event
           of several data lines: one data line each again, or the client would read only
           the first (its parser joins them back as ours did). */
        struct buf ev;
        buf_init(&ev, 0);
        if (sse_encode_event(&ev, data, len) == 0)
            server_stream_write(p->conn, ev.data, ev.len);
        buf_free(&ev);
    } else {
        uv_buf_t parts[3] = {uv_buf_init("data: ", 6), uv_buf_init((char *)data, (unsigned)len),
                             uv_buf_init("\n\n", 2)};
        server_stream_writev(p->conn, parts, 3);
    }
    free(rewritten);
    if (!p->paused && server_pending_bytes(p->conn) > SERVER_HIGH_WATER && p->winner) {
        p->paused = true;
        attempt_pause(p->winner, true);
    }
}

void proxy_relay_comment(struct preq *p)
{
    server_stream_write(p->conn, ": keep-alive\n\n", 14); /* keeps the client's idle timers fed */
}

static void commit_stream(struct preq *p, struct attempt *a)
{
    struct buf h;
    buf_init(&h, 0);
    buf_append_str(&h, "Cache-Control: no-cache\r\n");
    extra_headers(p, a, &h);
    if (!p->head_sent) /* a queued client has had its head already */
        server_stream_begin(p->conn, 200, "text/event-stream", h.data);
    buf_free(&h);
    p->head_sent = true;
    p->committed = true;
    if (a->held.len)
        server_stream_write(p->conn, a->held.data, a->held.len);
    buf_reset(&a->held);
}

/* failed_as: the incident a failure is (attempt_failed, stream_failed, continued). */
static void release_attempt_as(struct attempt *a, enum health_class c, enum incident_kind failed_as)
{
    struct preq *p = a->p;
    if (!a->rd)
        return;
    /* A failure counts as a slow sample, so that a deployment failing fast does not look fast;
       a 429 that said when to come back is not slowness. */
    uint32_t penalty = c == HEALTH_OK || (c == HEALTH_RATE_LIMITED && a->retry_after_s > 0)
                           ? 0
                           : p->model->timeouts.first_token_ms;
    unsigned ev = 0;
    uint64_t now = now_ms();
    if (!proxy_endpoint_release(a, c, penalty, now, rand64(p))) {
        /* the address's failure, not the deployment's */
        health_abandon(a->rd->health, &a->ticket);
        if (p->endpoint_retries < PROXY_ENDPOINT_RETRIES)
            p->endpoint_retries++; /* another address of it may serve: that try is free */
    } else {
        if (a->retry_after_s > 0 && (c == HEALTH_RATE_LIMITED || c == HEALTH_SERVER_ERROR))
            health_cooldown(a->rd->health, now, /* at most HTTP1_RETRY_AFTER_MAX_S: fits */
                            (uint32_t)a->retry_after_s * 1000u);
        ev = health_release(a->rd->health, &a->ticket, now, c, c == HEALTH_OK ? a->ttft_ms : 0,
                            penalty, rand64(p));
    }
    /* A first token that came is a sample of the budget even if the stream broke later. */
    if (a->got_first)
        ttft_budget_observe(a->rd->ttft, prompt_tokens(p), a->ttft_ms);
    metrics_attempt_end(p->env->metrics, p->model, a->dep, c, ev, a->status, failed_as);
    struct balancer_outcome o = {.cls = c, .ttft_ms = c == HEALTH_OK ? a->ttft_ms : 0,
                                 .usage = {.prompt_tokens = -1, .completion_tokens = -1,
                                           .reasoning_tokens = -1, .cached_tokens = -1}};
    if (a->usage_seen)
        o.usage = (struct prices_usage){.prompt_tokens = a->usage.prompt_tokens,
                                        .completion_tokens = a->usage.completion_tokens,
                                        .reasoning_tokens = a->usage.reasoning_tokens,
                                        .cached_tokens = a->usage.cached_tokens};
    balancer_observe(p->rm->balancer, (size_t)(a->rd - p->rm->deps), &o);
    runtime_model_refresh_capacity(p->rm, now); /* the learnt limit may have moved */
    if (ev & HEALTH_EVENT_TRIPPED)
        log_warn("deployment %s: circuit breaker opened (last failure: %s)", a->rd->key,
                 health_class_name(c));
    if (ev & HEALTH_EVENT_CLOSED)
        log_info("deployment %s: circuit breaker closed again", a->rd->key);
    /* A refusal under load from a deployment whose limit is learnt is how the limit is
       found: the request itself is fine, so (unless max_attempts is set) it may try once
       more, even when that deployment was the only one (it waits for a slot). */
    if ((ev & HEALTH_EVENT_LOAD_REFUSAL) && !p->model->max_attempts)
        p->overload_retry = true;
    if (ev & HEALTH_EVENT_AUTH_FIRST)
        log_error("deployment %s: the provider refuses our credentials (401/402/403); it is out until "
                  "reload or an admin enable; check its api_key and balance",
                  a->rd->key);
    a->rd = NULL;
}

static void release_attempt(struct attempt *a, enum health_class c)
{
    /* After the first byte only the winner's failure reaches the client. */
    bool seen = a->p->committed && a->p->winner == a;
    release_attempt_as(a, c, seen ? INCIDENT_STREAM_FAILED : INCIDENT_ATTEMPT_FAILED);
}

static void abandon_attempt(struct attempt *a)
{
    if (a->rd) {
        proxy_endpoint_abandon(a, a->rd, 0);
        health_abandon(a->rd->health, &a->ticket);
        a->rd = NULL;
    }
    attempt_reset(a);
}

/* A hedge race is decided: the loser is cancelled; how long it waited without a first token
   still tells something about its deployment. */
static void cancel_loser(struct attempt *a)
{
    proxy_endpoint_abandon(a, a->rd, a->got_first ? 0 : (uint32_t)(now_ms() - a->t_start));
    if (a->rd && !a->got_first)
        health_abandon_after(a->rd->health, &a->ticket, (uint32_t)(now_ms() - a->t_start));
    else if (a->rd)
        health_abandon(a->rd->health, &a->ticket);
    a->rd = NULL;
    attempt_reset(a);
}

static void record_usage(struct preq *p, const struct attempt *a)
{
    struct accesslog_entry *log = log_entry(p);
    uint64_t start_ns = server_conn_request(p->conn)->start_ns;
    if (!p->cont.n || log->ttft_ms < 0) /* a continued stream's first token was the first attempt's */
        log->ttft_ms = a->got_first ? (int64_t)((a->first_ns - start_ns) / 1000000) : -1;
    if (!a->usage_seen)
        return;
    log->prompt_tokens = a->usage.prompt_tokens;
    log->completion_tokens = a->usage.completion_tokens;
    log->reasoning_tokens = a->usage.reasoning_tokens;
    log->cached_tokens = a->usage.cached_tokens;
}

/* After the client has seen bytes: end the stream with an error event and no [DONE]. */
void proxy_mid_stream_error(struct preq *p, enum health_class c, const char *why)
{
    struct attempt *a = p->winner;
    if (why && a && proxy_continue_try(p, a)) {
        /* continue_on_cut: the same client stream goes on from another deployment */
        note_why(p, a->rd ? a->rd->key : "?", class_reason(c), why, NULL);
        record_usage(p, a);
        release_attempt_as(a, c, INCIDENT_CONTINUED);
        attempt_reset(a);
        p->winner = NULL;
        next_attempt(p);
        return;
    }
    if (why) {
        struct buf b;
        buf_init(&b, 0);
        char msg[512];
        snprintf(msg, sizeof msg, "the stream from %s failed after it had started: %s",
                 a && a->dep ? a->dep->provider->name : "the upstream", why);
        errors_render(&b, GW_ERR_MID_STREAM, msg, NULL);
        proxy_relay_event(p, b.data, b.len, NULL, false);
        buf_free(&b);
    }
    server_stream_end(p->conn);
    server_set_close(p->conn);
    if (a) {
        record_usage(p, a);
        release_attempt(a, c);
    }
    if (why)
        snprintf(log_entry(p)->error, sizeof log_entry(p)->error, "%s", why);
    proxy_finalize(p, OUTCOME_MID_STREAM_ERROR);
}

void proxy_provider_error_event(struct preq *p, const char *data, size_t len, const char *msg)
{
    /* The provider's own error event, as it came but for any secret it echoes. */
    size_t cap = redact_bound(len);
    char *clean = malloc(cap);
    if (clean) {
        size_t n = redact_text(&p->cfg->secrets, data, len, clean, cap);
        proxy_relay_event(p, clean, n, NULL, false);
        free(clean);
    }
    snprintf(log_entry(p)->error, sizeof log_entry(p)->error, "provider: %s", msg);
}

void proxy_first_content(struct attempt *a)
{
    struct preq *p = a->p;
    if (p->winner)
        return;
    p->winner = a;
    uv_timer_stop(&p->hedge_timer);
    if (a->hedge)
        hedge_budget_note_result(p->rm->hedges, now_ms(), true);
    struct attempt *rival = &p->at[1 - a->slot];
    if (rival->active) {
        if (a->hedge)
            atomic_fetch_add(&p->rm->hedges_won, 1);
        else
            atomic_fetch_add(&p->rm->hedges_wasted, 1);
        cancel_loser(rival);
    }
    if (p->client_stream && !p->committed)
        commit_stream(p, a); /* a continuation goes on in the stream already committed */
}

void proxy_attempt_done(struct attempt *a, const char *json, size_t len)
{
    struct preq *p = a->p;
    p->winner = a;
    record_usage(p, a);
    struct accesslog_entry *log = log_entry(p);
    if (!a->usage_seen && p->api != PROXY_API_EMBEDDINGS) {
        /* The same estimate as in the answer (attempt.c): of what this client received. */
        proxy_estimate_usage(p, p->client_stream ? p->content_chars : a->content_chars,
                             &log->prompt_tokens, &log->completion_tokens);
        log->usage_estimated = true;
    }
    proxy_continue_usage(p, a, log); /* a continued stream: summed over its attempts */
    /* The deployment's slot, then the model's admission slot, then the answer: a waiter woken
       by the admission slot (on any worker) finds the deployment free. */
    release_attempt(a, HEALTH_OK);
    proxy_admit_settle(p);
    if (p->client_stream) {
        if (log->usage_estimated && p->client_usage)
            proxy_estimated_usage_chunk(p);
        server_stream_write(p->conn, "data: [DONE]\n\n", 14);
        server_stream_end(p->conn);
    } else {
        struct buf h;
        buf_init(&h, 0);
        extra_headers(p, a, &h);
        if (log->usage_estimated)
            buf_append_str(&h, "x-unbusy-usage: estimated\r\n");
        server_respond(p->conn, 200, "application/json", h.data, json, len);
        buf_free(&h);
    }
    proxy_finalize(p, OUTCOME_OK);
}

/* A provider's JSON error goes to the client as it came when it is OpenAI's shape; another
   shape (Azure's {"error":{"code","message","param","status","innererror"}}) is said again
   in OpenAI's, with the provider's code (content_filter, ...) and param. Returns whether it
   was rewritten into out. */
static bool reshape_error(const char *body, size_t len, enum gw_err e, const char *msg, struct buf *out)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    bool shaped = cJSON_IsObject(err) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message")) &&
                  cJSON_HasObjectItem(err, "type") && cJSON_HasObjectItem(err, "param") &&
                  cJSON_HasObjectItem(err, "code");
    bool rewritten = false;
    if (!shaped && cJSON_IsObject(err)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
        const cJSON *param = cJSON_GetObjectItemCaseSensitive(err, "param");
        char num[32];
        const char *code_text = cJSON_IsString(code) ? code->valuestring : NULL;
        if (cJSON_IsNumber(code)) {
            snprintf(num, sizeof num, "%d", code->valueint);
            code_text = num;
        }
        errors_render_code(out, e, msg, cJSON_IsString(param) ? param->valuestring : NULL, code_text);
        rewritten = true;
    }
    cJSON_Delete(j);
    return rewritten;
}

void proxy_attempt_client_error(struct attempt *a, int status, const char *raw, size_t raw_len)
{
    struct preq *p = a->p;
    /* Passed on to the client, so first cleaned of any secret the provider echoes. */
    size_t cap = redact_bound(raw_len);
    char *owned = malloc(cap);
    const char *body = owned ? owned : "";
    size_t len = owned ? redact_text(&p->cfg->secrets, raw, raw_len, owned, cap) : 0;
    struct jsonx_chunk ch;
    bool json_error = jsonx_scan_chunk(body, len, &ch) == 0 && ch.valid && ch.has_error;
    char cut[160], msg[sizeof cut + sizeof REDACT_MARK];
    size_t n = jsonx_error_message(body, len, cut, sizeof cut);
    redact_text(&p->cfg->secrets, cut, n, msg, sizeof msg); /* a key the cut cut in two */
    snprintf(log_entry(p)->error, sizeof log_entry(p)->error, "provider: HTTP %d: %s", status, msg);
    enum gw_err e = status == 413 ? GW_ERR_TOO_LARGE : GW_ERR_BAD_REQUEST;
    if (p->head_sent) {
        proxy_fail_request(p, e, msg[0] ? msg : "the provider rejected the request", -1);
    } else {
        struct buf h;
        buf_init(&h, 0);
        extra_headers(p, a, &h);
        struct buf reshaped;
        buf_init(&reshaped, 0);
        if (json_error && reshape_error(body, len, e, msg[0] ? msg : "the provider rejected the request", &reshaped)) {
            server_respond(p->conn, status, "application/json", h.data, reshaped.data, reshaped.len);
        } else if (json_error) {
            server_respond(p->conn, status, "application/json", h.data, body, len);
        } else {
            struct buf b;
            buf_init(&b, 0);
            errors_render(&b, e, msg[0] ? msg : "the provider rejected the request", NULL);
            server_respond(p->conn, status, "application/json", h.data, b.data, b.len);
            buf_free(&b);
        }
        buf_free(&reshaped);
        buf_free(&h);
    }
    free(owned);
    release_attempt(a, HEALTH_OK); /* the deployment did its job */
    attempt_reset(a);
    proxy_finalize(p, OUTCOME_CLIENT_ERROR);
}

/* ---- failures ---------------------------------------------------------------- */

/* The client is told which deployment failed and the class of failure; the log also gets
   what the provider said (already redacted), which the client never sees: it may echo
   the credentials unbusy sent. */
static void note_why(struct preq *p, const char *key, const char *reason, const char *detail,
                     const char *provider_said)
{
    struct buf *both[2] = {&p->why, &p->why_log};
    for (int i = 0; i < 2; i++) {
        if (both[i]->len)
            buf_append_str(both[i], "; ");
        buf_printf(both[i], "%s: %s", key, reason);
        if (detail && *detail)
            buf_printf(both[i], " (%s)", detail);
    }
    if (provider_said && *provider_said)
        buf_printf(&p->why_log, ": \"%s\"", provider_said);
}

static const char *class_reason(enum health_class c)
{
    switch (c) {
    case HEALTH_CONNECT: return "connect failed";
    case HEALTH_TLS: return "TLS failed";
    case HEALTH_CONNECT_TIMEOUT: return "connect timeout";
    case HEALTH_FIRST_TOKEN: return "no first token before the deadline";
    case HEALTH_STALL: return "stream stalled";
    case HEALTH_RATE_LIMITED: return "rate limited";
    case HEALTH_SERVER_ERROR: return "server error";
    case HEALTH_AUTH: return "credentials refused";
    case HEALTH_BAD_REPLY: return "malformed reply";
    case HEALTH_CUT: return "stream cut";
    case HEALTH_IO: return "connection error";
    case HEALTH_STATUS: return "unexpected status";
    default: return "failed";
    }
}

static void all_failed(struct preq *p)
{
    /* Deployments never tried: say why each was skipped. */
    uint64_t now = now_ms();
    for (size_t i = 0; i < p->rm->ndeps && i < PROXY_MAX_DEPS; i++) {
        const char *why = NULL;
        if (p->tried[i] || runtime_dep_eligible(&p->rm->deps[i], now, &why))
            continue;
        note_why(p, p->rm->deps[i].key, why ? why : "not eligible", NULL, NULL);
        p->n_busy++; /* out of service, not broken: the answer is 503 */
    }
    enum gw_err e = GW_ERR_UPSTREAM;
    if (p->n_other == 0 && p->n_busy == 0 && p->n_timeout > 0)
        e = GW_ERR_UPSTREAM_TIMEOUT;
    else if (p->n_other == 0)
        e = GW_ERR_UNAVAILABLE;
    size_t cap = p->why.len + 256;
    char *msg = malloc(cap);
    int retry_after = e != GW_ERR_UPSTREAM_TIMEOUT ? p->retry_after_s : -1;
    if (msg) {
        snprintf(msg, cap, "every deployment of model '%s' failed (%u attempt%s): %s", p->model->name,
                 p->attempts, p->attempts == 1 ? "" : "s", p->why.len ? p->why.data : "none could be tried");
        proxy_fail_request(p, e, msg, retry_after);
        free(msg);
    } else {
        proxy_fail_request(p, GW_ERR_INTERNAL, "out of memory", -1);
    }
    snprintf(log_entry(p)->error, sizeof log_entry(p)->error, "%s", p->why_log.data ? p->why_log.data : "");
    proxy_finalize(p, OUTCOME_UPSTREAM_FAILED);
}

void proxy_attempt_failed(struct attempt *a, enum health_class c, const char *detail)
{
    struct preq *p = a->p;
    if (c == HEALTH_FIRST_TOKEN || c == HEALTH_CONNECT_TIMEOUT)
        p->n_timeout++;
    else if (c == HEALTH_RATE_LIMITED || c == HEALTH_SERVER_ERROR)
        p->n_busy++;

    else
        p->n_other++;
    if (a->retry_after_s >= 0 && (p->retry_after_s < 0 || a->retry_after_s < p->retry_after_s))
        p->retry_after_s = a->retry_after_s;
    note_why(p, a->rd ? a->rd->key : "?", class_reason(c), detail, a->provider_said);
    if (p->winner == a)
        p->winner = NULL; /* a non-stream answer broke before its end: start over elsewhere */
    if (a->hedge && !a->got_first)
        hedge_budget_note_result(p->rm->hedges, now_ms(), false);
    release_attempt(a, c);
    attempt_reset(a);
    if (p->at[1 - a->slot].active) {
        arm_hedge(p); /* the rival goes on alone: it may be hedged again once its budget passes */
        return;
    }
    atomic_fetch_add(&p->rm->failovers, 1);
    next_attempt(p);
}

/* ---- choosing and starting ------------------------------------------------------ */

void proxy_excluded_mask(struct preq *p, bool skip[PROXY_MAX_DEPS])
{
    struct runtime_model *rm = p->rm;
    size_t n = rm->ndeps < PROXY_MAX_DEPS ? rm->ndeps : PROXY_MAX_DEPS;
    bool any_untried = false;
    for (size_t i = 0; i < n; i++)
        if (!p->tried[i] && (p->route_tier < 0 || rm->deps[i].cfg->tier == p->route_tier))
            any_untried = true;
    for (size_t i = 0; i < PROXY_MAX_DEPS; i++) {
        if (i >= n) {
            skip[i] = true;
            continue;
        }
        bool busy = (p->at[0].active && p->at[0].rd == &rm->deps[i]) ||
                    (p->at[1].active && p->at[1].rd == &rm->deps[i]);
        /* Once every deployment has had its turn, any but the last one may go again. */
        skip[i] = busy || (any_untried ? p->tried[i] : (int)i == p->last_tried && n > 1) ||
                  (p->route_tier >= 0 && rm->deps[i].cfg->tier != p->route_tier) ||
                  (p->cont.continued &&
                   provider_continuation(rm->deps[i].cfg->provider) == CFG_CONTINUATION_OFF) ||
                  (p->auto_model && p->model->auto_import && !catalog_has(p->rt->catalog,
                                                 (size_t)(rm->deps[i].cfg->provider - p->cfg->providers),
                                                 p->auto_model));
    }
}

static struct runtime_dep *pick(struct preq *p, int *index_out)
{
    struct runtime_model *rm = p->rm;
    size_t n = rm->ndeps < PROXY_MAX_DEPS ? rm->ndeps : PROXY_MAX_DEPS;
    struct balancer_candidate cand[PROXY_MAX_DEPS];
    uint64_t now = now_ms();
    bool skip[PROXY_MAX_DEPS];
    proxy_excluded_mask(p, skip);
    for (size_t i = 0; i < n; i++) {
        cand[i] = (struct balancer_candidate){
            .h = rm->deps[i].health,
            .tier = rm->deps[i].cfg->tier,
            .weight = proxy_endpoint_weight(&rm->deps[i], now),
            .excluded = skip[i] || rm->deps[i].provider->probe_down,
        };
    }
    uint64_t affinity_key = proxy_affinity_key(p);
    for (;;) {
        int idx = balancer_pick_keyed(rm->balancer, cand, n, now, rand64(p), affinity_key);
        if (idx < 0)
            return NULL;
        struct attempt *slot = p->at[0].active ? &p->at[1] : &p->at[0];
        if (health_acquire(rm->deps[idx].health, now, &slot->ticket)) {
            if (proxy_endpoint_take(p, slot, &rm->deps[idx], now, rand64(p))) {
                *index_out = idx;
                return &rm->deps[idx];
            }
            health_abandon(rm->deps[idx].health, &slot->ticket); /* no address takes it */
        }
        cand[idx].excluded = true; /* lost a race for its last slot */
    }
}

/* Starts attempt a on rd, which pick() chose for it (its ticket is in a->ticket). */
static void start_picked(struct preq *p, struct attempt *a, struct runtime_dep *rd, int idx, bool hedge)
{
    p->tried[idx] = true;
    p->last_tried = idx;
    p->attempts++;
    int rc = attempt_start(a, rd, hedge);
    if (rc == ATTEMPT_REFUSED) {
        /* the request cannot be said in this deployment's format: the client's to fix */
        a->rd = rd;
        struct buf b;
        buf_init(&b, 0);
        errors_render(&b, GW_ERR_BAD_REQUEST, a->refusal, NULL);
        proxy_attempt_client_error(a, 400, b.data ? b.data : "", b.len);
        buf_free(&b);
    } else if (rc < 0) {
        a->rd = rd;
        proxy_attempt_failed(a, HEALTH_IO, "the request could not be started");
    }
}

static bool start_on(struct preq *p, struct attempt *a, bool hedge)
{
    int idx = -1;
    struct runtime_dep *rd = pick(p, &idx);
    if (!rd)
        return false;
    start_picked(p, a, rd, idx, hedge);
    return true;
}

static uint32_t max_attempts(const struct preq *p)
{
    /* a load refusal while a limit is being learnt costs the client no attempt; a continuation
       is another request to the pool, with max_attempts of its own */
    return (p->model->max_attempts ? p->model->max_attempts : (uint32_t)p->rm->ndeps) +
           p->overload_retry + p->endpoint_retries + p->cont.attempts_base;
}

/* The one attempt running while no other is, if it still waits for its first content. */
static struct attempt *lone_waiting(struct preq *p)
{
    if (p->finished || p->winner || p->at[0].active == p->at[1].active)
        return NULL;
    struct attempt *a = p->at[0].active ? &p->at[0] : &p->at[1];
    return a->got_first ? NULL : a;
}

/* Both slots run and neither has brought content: the newer attempt (a hedge). */
static struct attempt *both_waiting(struct preq *p)
{
    struct attempt *x = &p->at[0], *y = &p->at[1];
    if (p->finished || p->winner || !x->active || !y->active || x->got_first || y->got_first)
        return NULL;
    return x->t_start > y->t_start ? x : y;
}

/*
 * The waiting attempt's first-token budget has passed: another attempt on another
 * deployment, if the model's hedge budget allows; the first to bring content wins. When a
 * hedge is itself late (both slots wait: each deployment was busy in its turn, as when every
 * deployment is sometimes busy), the older attempt is let go — it has waited longest and
 * is the likelier to be stuck — and its slot takes the next deployment, so a request is
 * never left with two stuck attempts until the hard deadline.
 */
static void on_hedge_timer(uv_timer_t *t)
{
    struct preq *p = t->data;
    struct attempt *a = lone_waiting(p), *newer = a ? NULL : both_waiting(p);
    if ((!a && !newer) || p->attempts >= max_attempts(p))
        return;
    struct attempt *slot = a ? &p->at[1 - a->slot] : &p->at[1 - newer->slot];
    struct attempt *slow = a ? a : slot; /* the one the hedge is for */
    if (newer) {
        metrics_hedged(p->env->metrics, p->model, slot->dep);
        cancel_loser(slot); /* frees its deployment for pick */
    }
    int idx = -1;
    struct runtime_dep *rd = pick(p, &idx); /* takes a ticket into the free slot */
    if (!rd) {
        atomic_fetch_add(&p->rm->hedges_no_deployment, 1);
        if (newer)
            arm_hedge(p); /* the newer one goes on alone */
        return;
    }
    if (!hedge_budget_try_spend(p->rm->hedges, now_ms())) {
        proxy_endpoint_abandon(slot, rd, 0);
        health_abandon(rd->health, &slot->ticket);
        atomic_fetch_add(&p->rm->hedges_denied, 1);
        if (newer)
            arm_hedge(p);
        return;
    }
    atomic_fetch_add(&p->rm->hedges_started, 1);
    atomic_fetch_add(&p->rm->hedges_by_reason[p->hedge_reason], 1);
    if (!newer)
        metrics_hedged(p->env->metrics, p->model, slow->dep); /* the slow one */
    start_picked(p, slot, rd, idx, true);
    arm_hedge(p); /* for the hedge itself, should it be late too */
}

/*
 * Arms the hedge timer for the attempt waiting for its first content (the lone one, or the
 * newer of two): its deployment's
 * first-token budget for this prompt size (route/ttft_budget.h), or hedge.after when set,
 * counted from the attempt's start. A budget at the hard first-token deadline arms nothing:
 * the deadline fails the attempt over anyway.
 */
static void arm_hedge(struct preq *p)
{
    const struct cfg_hedge *hg = &p->model->resilience.hedge;
    if (p->finished)
        return; /* its timers are closing */
    struct attempt *a = lone_waiting(p);
    if (!a)
        a = both_waiting(p); /* a hedge is timed by its own budget too */
    uv_timer_stop(&p->hedge_timer); /* a timer armed for an earlier attempt is not this one's */
    if (!hg->enabled || !a || !a->rd || p->attempts >= max_attempts(p))
        return;
    uint32_t after = hg->after_ms;
    p->hedge_reason = RUNTIME_HEDGE_CONFIGURED;
    if (after == 0) {
        struct ttft_budget_info info;
        uint32_t cap = p->model->timeouts.first_token_ms;
        after = runtime_dep_first_token_budget(p->rm, a->rd, prompt_tokens(p), &info);
        if (after >= cap)
            return;
        p->hedge_reason = (enum runtime_hedge_reason)info.source;
    }
    uint64_t waited = uv_hrtime() / 1000000 - a->t_start; /* a->t_start is on this clock */
    uv_timer_start(&p->hedge_timer, on_hedge_timer, after > waited ? after - waited : 0, 0);
}

static void next_attempt(struct preq *p)
{
    if (p->finished)
        return;
    if (p->attempts >= max_attempts(p) || proxy_remaining_ms(p) == 0) {
        all_failed(p);
        return;
    }
    if (p->attempts > 0 && !retry_budget_try_spend(p->rm->retries, now_ms())) {
        atomic_fetch_add(&p->rm->budget_exhausted, 1);
        note_why(p, "gateway", "retry budget exhausted", "too many retries across all requests", NULL);
        p->n_busy++;
        all_failed(p);
        return;
    }
    proxy_try_start(p);
}

void proxy_try_start(struct preq *p)
{
    if (p->finished)
        return;
    if (!start_on(p, &p->at[0], false)) {
        if (!proxy_wait_for_deployment(p))
            all_failed(p);
        return;
    }
    arm_hedge(p);
}

/* ---- timers, client events ------------------------------------------------------- */

void proxy_timer_fired(struct attempt *a)
{
    struct preq *p = a->p;
    if (p->finished)
        return;
    if (!a->got_first) {
        char d[64];
        snprintf(d, sizeof d, "%u ms", p->model->timeouts.first_token_ms);
        proxy_attempt_failed(a, HEALTH_FIRST_TOKEN, d);
    } else if (p->committed && p->winner == a) {
        proxy_mid_stream_error(p, HEALTH_STALL, "no new tokens within the stall timeout");
    } else {
        proxy_attempt_failed(a, HEALTH_STALL, NULL);
    }
}

static void on_total_timer(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (p->finished)
        return;
    if (p->committed) {
        proxy_mid_stream_error(p, HEALTH_STALL, "the total deadline was reached");
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct attempt *a = &p->at[i];
        if (!a->active)
            continue;
        note_why(p, a->rd ? a->rd->key : "?", "total deadline reached", NULL, NULL);
        abandon_attempt(a);
    }
    p->n_timeout++;
    all_failed(p);
}

static void on_client_drain(void *ud)
{
    struct preq *p = ud;
    if (p->paused && p->winner) {
        p->paused = false;
        attempt_pause(p->winner, false);
    }
}

static void on_client_abort(void *ud)
{
    struct preq *p = ud;
    log_entry(p)->status = 499;
    proxy_finalize(p, OUTCOME_CLIENT_CLOSED);
}

/* ---- start and finalize ------------------------------------------------------------- */

/* The proxied requests of this worker (base/pool.h): taken at start, given back when the
   request's last handle has closed. */
static __thread struct pool preq_pool = POOL_INIT(sizeof(struct preq), 64);

static void on_handle_closed(uv_handle_t *h)
{
    struct preq *p = h->data;
    if (--p->handles_open > 0)
        return;
    config_unref(p->cfg);
    runtime_unref(p->rt);
    pool_put(&preq_pool, p);
}

/* One ledger row per proxied request; usage the provider did not report is estimated. */
/* The one exit of every proxied request. */
void proxy_finalize(struct preq *p, enum outcome outcome)
{
    if (p->finished)
        return;
    p->finished = true;
    struct attempt *shown = p->winner ? p->winner : (p->at[0].dep ? &p->at[0] : NULL);
    for (int i = 0; i < 2; i++) {
        if (p->at[i].active)
            abandon_attempt(&p->at[i]);
    }
    struct accesslog_entry *log = log_entry(p);
    log->outcome = outcome;
    log->attempts = p->attempts;
    if (shown && shown->dep) {
        log->provider = shown->dep->provider->name;
        log->deployment_model = p->auto_model && p->model->auto_import ? p->auto_model : shown->dep->model;
        memcpy(log->endpoint, shown->ep_name, sizeof log->endpoint);
    }
    if (!log->error[0] && p->why_log.len) /* answered, after these attempts failed */
        snprintf(log->error, sizeof log->error, "%s", p->why_log.data);
    proxy_record_ledger(p, log);
    proxy_admit_finish(p);
    metrics_request_done(p->env->metrics, p->model, shown ? shown->dep : NULL, log, p->t_start);
    p->env->inflight--;
    for (int i = 0; i < 2; i++)
        attempt_free_buffers(&p->at[i]);
    buf_free(&p->why);
    buf_free(&p->why_log);
    proxy_continue_finish(p, outcome);
    free(p->body);
    p->body = NULL;
    server_set_hooks(p->conn, NULL);
    server_request_done(p->conn);
    uv_close((uv_handle_t *)&p->total_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->hedge_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->queue_timer, on_handle_closed);
    for (int i = 0; i < 2; i++) {
        p->at[i].timer.data = p;
        uv_close((uv_handle_t *)&p->at[i].timer, on_handle_closed);
    }
}

static void reject_request_code(struct server_conn *c, enum gw_err e, const char *msg, const char *param,
                                const char *code)
{
    struct buf b;
    buf_init(&b, 0);
    int status = errors_render_code(&b, e, msg, param, code);
    server_respond(c, status, "application/json", NULL, b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}

static void reject_request(struct server_conn *c, enum gw_err e, const char *msg, const char *param)
{
    reject_request_code(c, e, msg, param, NULL);
}

static enum jsonx_api jsonx_api_of(enum proxy_api api)
{
    switch (api) {
    case PROXY_API_CHAT: return JSONX_API_CHAT;
    case PROXY_API_COMPLETIONS: return JSONX_API_COMPLETIONS;
    case PROXY_API_EMBEDDINGS: return JSONX_API_EMBEDDINGS;
    }
    return JSONX_API_ANY;
}

/* Admitted: the first attempt starts now. */
void proxy_go(struct preq *p)
{
    atomic_fetch_add(&p->rm->requests, 1);
    uint64_t now = now_ms();
    retry_budget_note_request(p->rm->retries, now);
    if (p->model->resilience.hedge.enabled) hedge_budget_note_request(p->rm->hedges, now);
    uv_timer_start(&p->total_timer, on_total_timer, remaining_at(p, now), 0);
    next_attempt(p);
}

void proxy_start(struct server_conn *c, enum proxy_api api)
{
    struct server_request *req = server_conn_request_mut(c);
    struct proxy_env *env = proxy_env_of(c);
    struct jsonx_request scan;
    int rc = jsonx_scan_api_request(req->body ? req->body : "", req->body_len, jsonx_api_of(api), &scan);
    if (rc == JSONX_ERR_FIELD) {
        /* Nothing of it reaches an upstream: a field the gateway reads spelt twice or in
           another case, a wrong type, or a required field missing. */
        reject_request_code(c, GW_ERR_BAD_FIELD, scan.error, scan.bad_field, scan.error_code);
        return;
    }
    if (rc < 0) {
        reject_request(c, GW_ERR_BAD_JSON,
                       rc == JSONX_ERR_NOT_OBJECT ? "the request body must be a JSON object"
                                                  : "the request body is not valid JSON",
                       NULL);
        return;
    }
    enum gw_err auth_err;
    const char *auth_msg;
    const struct key_info *ki = proxy_authenticate(c, &auth_err, &auth_msg);
    if (auth_msg) {
        reject_request(c, auth_err, auth_msg, NULL);
        return;
    }
    req->log.stream = scan.stream;
    if (ki && !keys_model_allowed(ki, scan.model, strlen(scan.model))) {
        keys_release(ki);
        char msg[400];
        snprintf(msg, sizeof msg, "this key may not use the model '%s'", scan.model);
        reject_request(c, GW_ERR_FORBIDDEN, msg, "model");
        return;
    }
    const struct cfg_rule *rule = proxy_match_rule(env->cfg, &scan, ki, &req->http.head);
    const char *target = rule && rule->route_model ? rule->route_model : scan.model;
    /* A rule may match on what the client controls (a header, the prompt's size), so the
       model it routes to must be one the key may use too, unless the operator says the
       rule hands it out (bypass_allowlist). The client is told its request was refused,
       not which model the rule chose; the access log names it. */
    if (ki && target != scan.model && !rule->bypass_allowlist &&
        !keys_model_allowed(ki, target, strlen(target))) {
        keys_release(ki);
        snprintf(req->log.error, sizeof req->log.error,
                 "a routing rule sends '%.90s' to '%.90s', which this key may not use", scan.model, target);
        char msg[400];
        snprintf(msg, sizeof msg,
                 "this key may not use the model that requests for '%s' are routed to here", scan.model);
        reject_request(c, GW_ERR_FORBIDDEN, msg, "model");
        return;
    }
    const struct cfg_model *m = config_find_model(env->cfg, target);
    if (m && m->auto_import)
        m = NULL; /* never asked for by its own name */
    bool imported = !m && env->rt->catalog && catalog_any(env->rt->catalog, target);
    if (imported)
        m = config_find_model(env->cfg, CONFIG_AUTO_MODEL_NAME);
    if (!m) {
        if (ki)
            keys_release(ki);
        snprintf(req->log.model_buf, sizeof req->log.model_buf, "%.63s", scan.model);
        char msg[400];
        snprintf(msg, sizeof msg, "the model '%s' does not exist", scan.model);
        reject_request(c, GW_ERR_UNKNOWN_MODEL, msg, "model");
        return;
    }
    req->log.model = m->name;
    if (imported) { /* the log names the model asked for, not the catch-all */
        snprintf(req->log.model_buf, sizeof req->log.model_buf, "%.63s", target);
        req->log.model = NULL;
    }
    struct preq *p = pool_get(&preq_pool);
    if (!p) {
        if (ki)
            keys_release(ki);
        reject_request(c, GW_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    /* zeroed but for the two attempts, which attempt_init zeroes below (8 KB, once) */
    size_t at_start = offsetof(struct preq, at), at_end = at_start + sizeof p->at;
    memset(p, 0, at_start);
    memset((char *)p + at_end, 0, sizeof *p - at_end);
    p->conn = c;
    p->env = env;
    p->cfg = config_ref(env->cfg);
    p->rt = runtime_ref(env->rt); /* the generation it finishes on, whatever reloads come */
    p->rm = runtime_model(p->rt, m);
    p->model = m;
    p->api = api;
    p->key = ki;
    p->limit_key = ki ? ki->limit_id : NULL;
    p->route_tier = rule ? rule->route_tier : -1;
    p->body = req->body;
    p->body_len = req->body_len;
    req->body = NULL;
    p->scan = scan;
    if (imported)
        p->auto_model = target == scan.model ? p->scan.model : target;
    p->client_stream = scan.stream && api != PROXY_API_EMBEDDINGS;
    p->client_usage = scan.include_usage;
    p->retry_after_s = -1;
    p->last_tried = -1;
    p->t_start = now_ms();
    buf_init(&p->why, 16 * 1024);
    buf_init(&p->why_log, 16 * 1024);
    attempt_init(&p->at[0], p, 0, env->loop);
    attempt_init(&p->at[1], p, 1, env->loop);
    uv_timer_init(env->loop, &p->total_timer);
    uv_timer_init(env->loop, &p->hedge_timer);
    uv_timer_init(env->loop, &p->queue_timer);
    p->total_timer.data = p->hedge_timer.data = p->queue_timer.data = p;
    p->handles_open = 5;
    env->inflight++;
    struct server_hooks hooks = {.on_drain = on_client_drain, .on_abort = on_client_abort, .ud = p};
    server_set_hooks(c, &hooks);
    runtime_model_refresh_capacity(p->rm, p->t_start); /* slow-start ramps move with time alone */
    if (!proxy_admit(p))
        return; /* answered, or waiting in the queue */
    proxy_go(p);
}
