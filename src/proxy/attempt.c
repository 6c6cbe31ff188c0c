/*
 * One attempt: one exchange with one deployment.
 *
 *   CONNECTING ──head: stream──▶ WAITING (first-token deadline) ──content──▶ FLOWING (stall timer)
 *        │                                                                     │
 *        └──head: answer / error──▶ BODY ──end──▶ done / failed             └─done or finish──▶ done
 *
 * "Content" is a chunk with text, reasoning, tool calls or a finish reason: a
 * role-only chunk or an SSE comment (": keep-alive") is not progress, so an
 * upstream that answers 200 and then only keeps the connection alive is busy.
 * The attempt reports to proxy.c: first content, done, failed (with a health
 * class), or the provider refused the request as the client's fault.
 *
 * The provider's wire format (provider/provider.h) builds the request,
 * reads the head, turns the stream into events and says what an error
 * status means; this file knows no format, only the attempt's life:
 * deadlines, cancel, hand-over to proxy.c, back-pressure.
 *
 * Nothing here acts from inside the provider's event callback: an event
 * handler only records what is to be done (enum attempt_action), and it is
 * done once the feed has returned, so the parser is never reset or freed
 * under itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "obs/metrics.h"
#include "base/redact.h"
#include "provider/provider.h"
#include "proxy/proxy_int.h"
#include "http/server.h"

static void on_timer(uv_timer_t *t)
{
    struct attempt *a = t->data;
    if (!a->active)
        return;
    if (a->stall_lazy) {
        /* Content came since the timer was set: wait for the rest of the stall time. */
        uint64_t idle = uv_now(t->loop) - a->last_content;
        uint32_t stall = a->p->model->timeouts.stall_ms;
        uint64_t left = proxy_remaining_ms(a->p);
        if (idle < stall && left > 0) {
            uint64_t wait = stall - idle;
            uv_timer_start(&a->timer, on_timer, wait < left ? wait : left, 0);
            return;
        }
    }
    proxy_timer_fired(a);
}

void attempt_init(struct attempt *a, struct preq *p, int slot, uv_loop_t *loop)
{
    memset(a, 0, sizeof *a);
    a->p = p;
    a->slot = slot;
    a->retry_after_s = -1;
    buf_init(&a->body, PROXY_MAX_ERROR_BODY);
    buf_init(&a->held, PROXY_MAX_HELD);
    provider_stream_init(&a->stream, PROXY_MAX_SSE_EVENT);
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
}

void attempt_arm(struct attempt *a, uint32_t ms)
{
    uint64_t left = proxy_remaining_ms(a->p);
    a->stall_lazy = false;
    uv_timer_start(&a->timer, on_timer, ms < left ? ms : left, 0);
}

void attempt_progress(struct attempt *a)
{
    a->last_content = uv_now(a->timer.loop);
    if (!a->stall_lazy) {
        attempt_arm(a, a->p->model->timeouts.stall_ms);
        a->stall_lazy = true;
    }
}

void attempt_pause(struct attempt *a, bool paused)
{
    if (a->up)
        uphttp_pause(a->up, paused);
}

void attempt_reset(struct attempt *a)
{
    if (a->up) {
        uphttp_cancel(a->up);
        a->up = NULL;
    }
    uv_timer_stop(&a->timer);
    provider_stream_reset(&a->stream);
    buf_reset(&a->held);
    buf_reset(&a->body);
    if (a->asmb) {
        assemble_free(a->asmb);
        a->asmb = NULL;
    }
    a->active = a->hedge = false;
    a->got_first = a->saw_done = a->saw_finish = a->up_sse = a->usage_seen = false;
    a->content_chars = 0;
    a->status = 0;
    a->ttft_ms = 0;
    a->stall_lazy = false;
    a->retry_after_s = -1;
    a->action = ACT_NONE;
    a->provider_said[0] = '\0';
}

void attempt_free_buffers(struct attempt *a)
{
    provider_stream_free(&a->stream);
    buf_free(&a->held);
    buf_free(&a->body);
    if (a->asmb) {
        assemble_free(a->asmb);
        a->asmb = NULL;
    }
}

/* ---- the request sent upstream -------------------------------------------- */

static enum provider_api provider_api_of(enum proxy_api api)
{
    switch (api) {
    case PROXY_API_CHAT:
        return PROVIDER_API_CHAT;
    case PROXY_API_COMPLETIONS:
        return PROVIDER_API_COMPLETIONS;
    case PROXY_API_EMBEDDINGS:
        return PROVIDER_API_EMBEDDINGS;
    }
    return PROVIDER_API_CHAT;
}

/* The same call for the first attempt, a retry, a hedge or a continuation: only the
   deployment and the continued text differ. */
static char *build_request(struct attempt *a, size_t *len)
{
    struct preq *p = a->p;
    const struct server_request *sr = server_conn_request(p->conn);
    char span[17], trace[256];
    server_conn_new_id(p->conn, span); /* a new parent id per attempt, in the client's trace */
    /* "x-request-id: ID\r\ntraceparent: 00-TRACE-SPAN-FLAGS\r\n", without printf (every attempt) */
    const char *pieces[] = {
        "x-request-id: ", sr->request_id, "\r\ntraceparent: 00-", sr->trace_id, "-", span, "-",
        sr->trace_flags,  "\r\n"};
    size_t tl = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        size_t n = strnlen(pieces[i], sizeof trace - 1 - tl);
        memcpy(trace + tl, pieces[i], n);
        tl += n;
    }
    trace[tl] = '\0';
    size_t continue_len;
    int64_t continue_tokens;
    const char *continue_text = proxy_continue_text(p, &continue_len, &continue_tokens);
    struct provider_call call = {
        .provider = a->dep->provider,
        .model = p->auto_model && p->model->auto_import ? p->auto_model : a->dep->model,
        .api = provider_api_of(p->api),
        .body = p->body,
        .body_len = p->body_len,
        .scan = &p->scan,
        .stream = a->up_stream,
        .continue_text = continue_text,
        .continue_len = continue_len,
        .continue_tokens = continue_tokens,
        .max_tokens_limit = a->dep->max_tokens_limit,
        .extra_headers = trace,
        .user_agent = "unbusy/0.1",
        .refusal = &a->refusal,
    };
    return provider_request(a->ops, &call, len);
}

/* ---- upstream events --------------------------------------------------------- */

static void on_head(void *ud, const struct http1_response *resp)
{
    struct attempt *a = ud;
    struct preq *p = a->p;
    a->status = resp->status;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* Retry-After's date form is wall-clock time */
    a->retry_after_s = provider_retry_after_s(resp, (int64_t)ts.tv_sec);
    if (a->ops->head(resp, a->up_stream) == PROVIDER_HEAD_STREAM) {
        a->up_sse = true;
        if (!p->client_stream)
            a->asmb = assemble_new(p->api == PROXY_API_COMPLETIONS ? ASSEMBLE_COMPLETION : ASSEMBLE_CHAT,
                                   p->cfg->server.max_response_bytes);
        return;
    }
    a->body.limit = resp->status == 200 ? p->cfg->server.max_response_bytes : PROXY_MAX_ERROR_BODY;
    /* A whole-body answer has begun: from here the stall timeout bounds it. */
    if (resp->status == 200) {
        a->got_first = true;
        a->first_ns = uv_hrtime();
        a->ttft_ms = (uint32_t)(a->first_ns / 1000000 - a->t_start);
    }
    attempt_arm(a, p->model->timeouts.stall_ms);
}

/* Keeps the provider's own words for the log, with every configured secret taken out
   (a provider may echo the credentials it was sent); the client never gets them. */
static void note_provider_message(struct attempt *a, const char *body, size_t len)
{
    char msg[200];
    size_t n = jsonx_error_message(body, len, msg, sizeof msg);
    redact_text(&a->p->cfg->secrets, msg, n, a->provider_said, sizeof a->provider_said);
}

static void act(struct attempt *a, enum attempt_action what, enum health_class c, const char *detail)
{
    a->action = what;
    a->action_class = c;
    size_t n =
        detail ? strnlen(detail, sizeof a->action_detail - 1) : 0; /* cut as snprintf would */
    memcpy(a->action_detail, detail ? detail : "", n);
    a->action_detail[n] = '\0';
}

/* One event of the upstream's stream; returns non-zero (with a->action set) to stop the feed. */
static int on_event(void *ud, const struct provider_event *ev)
{
    struct attempt *a = ud;
    struct preq *p = a->p;
    switch (ev->kind) {
    case PROVIDER_EV_KEEPALIVE:
        if (p->committed && p->winner == a)
            proxy_relay_comment(p);
        return 0;
    case PROVIDER_EV_DONE:
        a->saw_done = true;
        return 0;
    case PROVIDER_EV_BAD:
        act(a, p->committed && p->winner == a ? ACT_MID_STREAM : ACT_FAIL, HEALTH_BAD_REPLY,
            "an event is not JSON");
        return 1;
    case PROVIDER_EV_ERROR:
        note_provider_message(a, ev->data, ev->len);
        if (p->committed && p->winner == a) {
            proxy_provider_error_event(p, ev->data, ev->len, a->provider_said);
            act(a, ACT_PROVIDER_ERROR_EVENT, HEALTH_SERVER_ERROR, "an error event");
        } else {
            act(a, ACT_FAIL, HEALTH_SERVER_ERROR, "an error event");
        }
        return 1;
    case PROVIDER_EV_CHUNK:
        break;
    }
    const struct jsonx_chunk *ch = &ev->chunk;
    if (ev->what & PROVIDER_HAS_USAGE) {
        a->usage = *ch;
        a->usage_seen = true;
    }
    if (ev->what & PROVIDER_HAS_FINISH)
        a->saw_finish = true;
    if (ev->what & PROVIDER_HAS_CONTENT) {
        metrics_content_event_at(p->env->metrics, p->model, a, a->got_first, a->read_us);
        if (!a->got_first) {
            a->got_first = true;
            a->first_ns = uv_hrtime();
            a->ttft_ms = (uint32_t)(a->first_ns / 1000000 - a->t_start);
            proxy_first_content(a); /* may commit the stream and cancel a rival attempt */
        }
        attempt_progress(a);
    }
    a->content_chars += ch->content_chars;
    if (p->winner == a) {
        p->content_chars += ch->content_chars;
        if (p->client_stream && p->client_usage && !p->chunk_meta)
            proxy_note_chunk_meta(p, ev->data, &ev->chunk);
    }
    if (a->asmb) {
        if ((ev->scan ? assemble_feed_scanned(a->asmb, ev->data, ev->len, ev->scan)
                      : assemble_feed_valid(a->asmb, ev->data, ev->len)) < 0) {
            act(a, ACT_FAIL, HEALTH_BAD_REPLY, "the answer could not be assembled");
            return 1;
        }
        return 0;
    }
    if ((ev->what & PROVIDER_USAGE_ONLY) && !p->client_usage)
        return 0; /* asked for on the client's behalf only */
    if (p->committed && p->winner == a) {
        proxy_relay_event(p, ev->data, ev->len, &ev->chunk, ev->framed);
    } else {
        /* role-only chunks before the first content: sent when the stream commits (an event
           past the held bound is dropped whole) */
        (void)sse_encode_event(&a->held, ev->data, ev->len);
    }
    return 0;
}

static void do_action(struct attempt *a)
{
    enum attempt_action what = a->action;
    a->action = ACT_NONE;
    switch (what) {
    case ACT_FAIL:
        proxy_attempt_failed(a, a->action_class, a->action_detail);
        break;
    case ACT_MID_STREAM:
        proxy_mid_stream_error(a->p, a->action_class, a->action_detail);
        break;
    case ACT_PROVIDER_ERROR_EVENT:
        proxy_mid_stream_error(a->p, HEALTH_SERVER_ERROR, NULL);
        break;
    case ACT_NONE:
        break;
    }
}

static void on_body(void *ud, const char *data, size_t len)
{
    struct attempt *a = ud;
    if (a->up_sse) {
        a->read_us = uv_hrtime() / 1000; /* every event of this read arrived now */
        int rc = a->ops->feed(&a->stream, data, len, on_event, a);
        if (rc > 0) {
            do_action(a);
        } else if (rc < 0) {
            if (a->p->committed && a->p->winner == a)
                proxy_mid_stream_error(a->p, HEALTH_BAD_REPLY, "oversized or malformed event");
            else
                proxy_attempt_failed(a, HEALTH_BAD_REPLY, "oversized event");
        }
        return;
    }
    if (buf_append(&a->body, data, len) < 0 && a->status == 200)
        proxy_attempt_failed(a, HEALTH_BAD_REPLY, "answer larger than server.max_response_bytes");
    /* an error body past its bound is cut: only its message is needed */
}

static void finish_sse(struct attempt *a)
{
    struct preq *p = a->p;
    bool complete = a->saw_done || a->saw_finish;
    if (!a->got_first || !complete) {
        if (p->committed && p->winner == a)
            proxy_mid_stream_error(p, HEALTH_CUT, "the upstream ended the stream before it was complete");
        else
            proxy_attempt_failed(a, a->got_first ? HEALTH_CUT : HEALTH_BAD_REPLY,
                                 a->got_first ? "ended before the answer was complete"
                                              : "a stream without content");
        return;
    }
    if (p->client_stream) {
        proxy_attempt_done(a, NULL, 0);
        return;
    }
    if (!assemble_has_usage(a->asmb)) {
        /* No usage chunk (older llama.cpp, some compatible servers): every answer has usage. */
        int64_t prompt, completion;
        proxy_estimate_usage(p, a->content_chars, &prompt, &completion);
        assemble_set_estimated_usage(a->asmb, prompt, completion);
    }
    struct buf out;
    buf_init(&out, 0);
    if (assemble_finish(a->asmb, &out) < 0) {
        buf_free(&out);
        proxy_attempt_failed(a, HEALTH_BAD_REPLY, "the answer could not be assembled");
        return;
    }
    proxy_attempt_done(a, out.data, out.len);
    buf_free(&out);
}

static enum health_class health_class_of(enum provider_error e)
{
    switch (e) {
    case PROVIDER_ERR_AUTH:
        return HEALTH_AUTH;
    case PROVIDER_ERR_RATE_LIMITED:
        return HEALTH_RATE_LIMITED;
    case PROVIDER_ERR_SERVER:
        return HEALTH_SERVER_ERROR;
    case PROVIDER_ERR_BAD_REPLY:
        return HEALTH_BAD_REPLY;
    case PROVIDER_ERR_TIMEOUT:
        return HEALTH_FIRST_TOKEN; /* it kept the answer past its own deadline: as ours would */
    case PROVIDER_ERR_CLIENT:
    case PROVIDER_ERR_STATUS:
        break;
    }
    return HEALTH_STATUS;
}

/* A whole-body answer has ended: a whole answer, or an error status. */
static void finish_body(struct attempt *a)
{
    struct preq *p = a->p;
    int st = a->status;
    const char *body = a->body.data ? a->body.data : "";
    if (st == 200) {
        struct provider_event ev;
        if (p->client_stream || a->ops->answer(&a->stream, body, a->body.len, &ev) < 0) {
            proxy_attempt_failed(a, HEALTH_BAD_REPLY,
                                 p->client_stream ? "no stream in the answer to a stream request"
                                                  : "the answer is not JSON");
            return;
        }
        a->content_chars = ev.chunk.content_chars;
        p->content_chars += ev.chunk.content_chars;
        if (ev.what & PROVIDER_HAS_USAGE) {
            a->usage = ev.chunk;
            a->usage_seen = true;
        } else if (p->api != PROXY_API_EMBEDDINGS) {
            struct buf with;
            buf_init(&with, a->body.len * 2 + 256);
            int64_t prompt, completion;
            proxy_estimate_usage(p, a->content_chars, &prompt, &completion);
            if (assemble_add_estimated_usage(ev.data, ev.len, prompt, completion, &with) == 0) {
                proxy_attempt_done(a, with.data, with.len);
                buf_free(&with);
                return;
            }
            buf_free(&with); /* out of room: the answer goes as it came */
        }
        proxy_attempt_done(a, ev.data, ev.len);
        return;
    }
    char detail[32];
    snprintf(detail, sizeof detail, "HTTP %d", st);
    enum provider_error e = a->ops->map_error(st, body, a->body.len);
    if (e == PROVIDER_ERR_CLIENT) {
        /* The client's request is at fault: every deployment would say the same. */
        proxy_attempt_client_error(a, st, body, a->body.len);
        return;
    }
    note_provider_message(a, body, a->body.len);
    proxy_attempt_failed(a, health_class_of(e), detail);
}

static void on_end(void *ud)
{
    struct attempt *a = ud;
    if (a->up_sse)
        finish_sse(a);
    else
        finish_body(a);
}

static void on_fail(void *ud, enum uphttp_fail f, enum transport_err terr)
{
    struct attempt *a = ud;
    struct preq *p = a->p;
    enum health_class c = HEALTH_BAD_REPLY;
    const char *detail = f == UPHTTP_FAIL_TOO_LARGE ? "response head too large" : "malformed response";
    if (f == UPHTTP_FAIL_TRANSPORT) {
        detail = transport_err_name(terr);
        switch (terr) {
        case TRANSPORT_ERR_DNS:
        case TRANSPORT_ERR_CONNECT:
            c = HEALTH_CONNECT;
            break;
        case TRANSPORT_ERR_CONNECT_TIMEOUT:
            c = HEALTH_CONNECT_TIMEOUT;
            break;
        case TRANSPORT_ERR_TLS:
            c = HEALTH_TLS;
            break;
        case TRANSPORT_ERR_EOF:
            c = a->got_first ? HEALTH_CUT : HEALTH_IO;
            break;
        default:
            c = HEALTH_IO;
            break;
        }
    }
    if (p->committed && p->winner == a)
        proxy_mid_stream_error(p, c, detail);
    else
        proxy_attempt_failed(a, c, detail);
}

static const struct uphttp_events attempt_events = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_fail = on_fail,
};

int attempt_start(struct attempt *a, struct runtime_dep *rd, bool hedge)
{
    struct preq *p = a->p;
    a->rd = rd;
    a->dep = rd->cfg;
    a->ops = provider_ops_of(a->dep->provider);
    a->stream.rename_reasoning = a->dep->provider->rename_reasoning;
    a->active = true;
    a->hedge = hedge;
    a->t_start = uv_hrtime() / 1000000;
    a->up_stream = p->api != PROXY_API_EMBEDDINGS && (p->client_stream || a->dep->provider->stream_upstream);
    size_t len = 0;
    a->refusal = NULL;
    provider_stream_begin(&a->stream, a->dep->model);
    char *req = build_request(a, &len);
    if (!req)
        return a->refusal ? ATTEMPT_REFUSED : -1;
    uint32_t connect_ms = a->dep->provider->connect_timeout_ms ? a->dep->provider->connect_timeout_ms
                                                               : p->model->timeouts.connect_ms;
    a->up = uphttp_start_at(p->env->pool, a->dep->provider,
                            a->ep ? (const struct sockaddr *)&a->ep->sa : NULL, connect_ms, req,
                            len, &attempt_events, a);
    if (!a->up)
        return -1;
    attempt_arm(a, p->model->timeouts.first_token_ms);
    return 0;
}
