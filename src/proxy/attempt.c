/*
 * One attempt: one exchange with one deployment.
 *
 *   CONNECTING ──head 200 SSE──▶ WAITING (first-token deadline) ──content──▶ FLOWING (stall timer)
 *        │                                                                     │
 *        └──head 200 JSON / error status──▶ BODY ──end──▶ done / failed         └─[DONE] or finish──▶ done
 *
 * "Content" is a chunk with text, reasoning, tool calls or a finish reason: a
 * role-only chunk or an SSE comment (": keep-alive") is not progress, so an
 * upstream that answers 200 and then only keeps the connection alive is busy.
 * The attempt reports to proxy.c: first content, done, failed (with a health
 * class), or the provider refused the request as the client's fault.
 *
 * Nothing here acts from inside the SSE parser's callback: an item handler
 * only records what is to be done (enum attempt_action), and it is done once
 * the parser has returned, so the parser is never reset or freed under itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "obs/metrics.h"
#include "base/redact.h"
#include "proxy/proxy_int.h"
#include "http/server.h"

static const char *api_path(enum proxy_api api)
{
    switch (api) {
    case PROXY_API_CHAT:
        return "/chat/completions";
    case PROXY_API_COMPLETIONS:
        return "/completions";
    case PROXY_API_EMBEDDINGS:
        return "/embeddings";
    }
    return "/";
}

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
    sse_parser_init(&a->sse, PROXY_MAX_SSE_EVENT);
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
    sse_parser_reset(&a->sse);
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
    sse_parser_free(&a->sse);
    buf_free(&a->held);
    buf_free(&a->body);
    if (a->asmb) {
        assemble_free(a->asmb);
        a->asmb = NULL;
    }
}

/* ---- the request sent upstream -------------------------------------------- */

static char *build_request(struct attempt *a, size_t *len)
{
    struct preq *p = a->p;
    const struct cfg_deployment *d = a->dep;
    const struct cfg_provider *pv = d->provider;
    struct buf body, out;
    buf_init(&body, 0);
    buf_init(&out, 0);
    if (jsonx_rewrite_request(p->body, p->body_len, &p->scan, d->model, a->up_stream, &body) < 0) {
        buf_free(&body);
        return NULL;
    }
    uphttp_request_head(&out, pv, "POST", api_path(p->api), "unbusy/0.1");
    buf_append_str(&out, "Content-Type: application/json\r\n");
    buf_append_str(&out, a->up_stream ? "Accept: text/event-stream\r\n" : "Accept: application/json\r\n");
    const struct server_request *sr = server_conn_request(p->conn);
    char span[17];
    server_conn_new_id(p->conn, span); /* a new parent id per attempt, in the client's trace */
    buf_printf(&out, "x-request-id: %s\r\ntraceparent: 00-%s-%s-%s\r\n", sr->request_id, sr->trace_id, span,
               sr->trace_flags);
    buf_printf(&out, "Content-Length: %zu\r\n\r\n", body.len);
    buf_append(&out, body.data, body.len);
    buf_free(&body);
    return buf_steal(&out, len);
}

/* ---- upstream events --------------------------------------------------------- */

static int parse_retry_after(const struct http1_str *v)
{
    if (!v)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the date form is wall-clock time */
    return http1_retry_after_s(v->p, v->len, (int64_t)ts.tv_sec);
}

static void on_head(void *ud, const struct http1_response *resp)
{
    struct attempt *a = ud;
    struct preq *p = a->p;
    a->status = resp->status;
    a->retry_after_s = parse_retry_after(http1_find_header(&resp->head, "retry-after"));
    const struct http1_str *ct = http1_find_header(&resp->head, "content-type");
    bool sse = ct && ct->len >= 17 && strncasecmp(ct->p, "text/event-stream", 17) == 0;
    if (resp->status == 200 && sse && a->up_stream) {
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
    snprintf(a->action_detail, sizeof a->action_detail, "%s", detail ? detail : "");
}

/* One upstream SSE item; returns non-zero (with a->action set) to stop the parser. */
static int on_sse_item(void *ud, const struct sse_item *it)
{
    struct attempt *a = ud;
    struct preq *p = a->p;
    if (it->kind == SSE_COMMENT) {
        if (p->committed && p->winner == a)
            proxy_relay_comment(p);
        return 0;
    }
    if (it->data_len == 6 && memcmp(it->data, "[DONE]", 6) == 0) {
        a->saw_done = true;
        return 0;
    }
    struct jsonx_chunk ch;
    if (jsonx_scan_chunk(it->data, it->data_len, &ch) < 0 || !ch.valid) {
        act(a, p->committed && p->winner == a ? ACT_MID_STREAM : ACT_FAIL, HEALTH_BAD_REPLY,
            "an event is not JSON");
        return 1;
    }
    if (ch.has_error) {
        note_provider_message(a, it->data, it->data_len);
        if (p->committed && p->winner == a) {
            proxy_provider_error_event(p, it->data, it->data_len, a->provider_said);
            act(a, ACT_PROVIDER_ERROR_EVENT, HEALTH_SERVER_ERROR, "an error event");
        } else {
            act(a, ACT_FAIL, HEALTH_SERVER_ERROR, "an error event");
        }
        return 1;
    }
    if (ch.has_usage) {
        a->usage = ch;
        a->usage_seen = true;
    }
    if (ch.has_finish)
        a->saw_finish = true;
    if (ch.has_content) {
        metrics_content_event(p->env->metrics, p->model, a, a->got_first);
        if (!a->got_first) {
            a->got_first = true;
            a->first_ns = uv_hrtime();
            a->ttft_ms = (uint32_t)(a->first_ns / 1000000 - a->t_start);
            proxy_first_content(a); /* may commit the stream and cancel a rival attempt */
        }
        attempt_progress(a);
    }
    a->content_chars += ch.content_chars;
    if (p->winner == a) {
        p->content_chars += ch.content_chars;
        if (p->client_stream && p->client_usage && !p->chunk_meta)
            proxy_note_chunk_meta(p, it->data, it->data_len);
    }
    if (a->asmb) {
        if (assemble_feed(a->asmb, it->data, it->data_len) < 0) {
            act(a, ACT_FAIL, HEALTH_BAD_REPLY, "the answer could not be assembled");
            return 1;
        }
        return 0;
    }
    if (ch.has_usage && ch.choices_empty && !p->client_usage)
        return 0; /* asked for on the client's behalf only */
    if (p->committed && p->winner == a) {
        proxy_relay_event(p, it->data, it->data_len);
    } else {
        /* role-only chunks before the first content: sent when the stream commits (an event
           past the held bound is dropped whole) */
        (void)sse_encode_event(&a->held, it->data, it->data_len);
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
        int rc = sse_parser_feed(&a->sse, data, len, on_sse_item, a, NULL);
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

/* A whole-body answer has ended: a JSON 200, or an error status. */
static void finish_body(struct attempt *a)
{
    struct preq *p = a->p;
    int st = a->status;
    const char *body = a->body.data ? a->body.data : "";
    if (st == 200) {
        struct jsonx_chunk ch;
        if (p->client_stream || jsonx_scan_chunk(body, a->body.len, &ch) < 0 || !ch.valid) {
            proxy_attempt_failed(a, HEALTH_BAD_REPLY,
                                 p->client_stream ? "no stream in the answer to a stream request"
                                                  : "the answer is not JSON");
            return;
        }
        a->content_chars = ch.content_chars;
        p->content_chars += ch.content_chars;
        if (ch.has_usage) {
            a->usage = ch;
            a->usage_seen = true;
        } else if (p->api != PROXY_API_EMBEDDINGS) {
            struct buf with;
            buf_init(&with, a->body.len * 2 + 256);
            int64_t prompt, completion;
            proxy_estimate_usage(p, a->content_chars, &prompt, &completion);
            if (assemble_add_estimated_usage(body, a->body.len, prompt, completion, &with) == 0) {
                proxy_attempt_done(a, with.data, with.len);
                buf_free(&with);
                return;
            }
            buf_free(&with); /* out of room: the answer goes as it came */
        }
        proxy_attempt_done(a, body, a->body.len);
        return;
    }
    char detail[32];
    snprintf(detail, sizeof detail, "HTTP %d", st);
    if (st == 400 || st == 413 || st == 422) {
        /* The client's request is at fault: every deployment would say the same. */
        proxy_attempt_client_error(a, st, body, a->body.len);
        return;
    }
    enum health_class c = HEALTH_STATUS;
    if (st == 429)
        c = HEALTH_RATE_LIMITED;
    else if (st >= 500)
        c = HEALTH_SERVER_ERROR;
    else if (st == 401 || st == 402 || st == 403)
        c = HEALTH_AUTH;
    note_provider_message(a, body, a->body.len);
    proxy_attempt_failed(a, c, detail);
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
    a->active = true;
    a->hedge = hedge;
    a->t_start = uv_hrtime() / 1000000;
    a->up_stream = p->api != PROXY_API_EMBEDDINGS && (p->client_stream || a->dep->provider->stream_upstream);
    size_t len = 0;
    char *req = build_request(a, &len);
    if (!req)
        return -1;
    uint32_t connect_ms = a->dep->provider->connect_timeout_ms ? a->dep->provider->connect_timeout_ms
                                                               : p->model->timeouts.connect_ms;
    a->up = uphttp_start(p->env->pool, a->dep->provider, connect_ms, req, len, &attempt_events, a);
    if (!a->up)
        return -1;
    attempt_arm(a, p->model->timeouts.first_token_ms);
    return 0;
}
