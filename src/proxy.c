/*
 * A proxied request's states:
 *
 *   ATTEMPT ──head 200 SSE──▶ WAIT_FIRST ──content event──▶ RELAY ──[DONE]/end──▶ finish
 *      │  ▲                      │                             │
 *      │  └──── next deployment ◀┴─ any failure, deadline      └─ failure: error event,
 *      │        (while the client has seen nothing)               no [DONE] (stream clients)
 *      └──head 200 JSON / error status──▶ BODY ──end──▶ answer, or next deployment
 *
 * "Content" is a chunk with text, reasoning, tool calls or a finish reason: a
 * role-only chunk or an SSE comment (": keep-alive") is not progress, so an
 * upstream that answers 200 and then only keeps the connection alive is busy.
 *
 * For a stream client the relay commits (sends the head) at the first content
 * event; after that a failure can only end the stream with an error event.
 * A non-stream client is answered only at the end, so any failure before the
 * end moves it to the next deployment, invisibly.
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assemble.h"
#include "jsonx.h"
#include "log.h"
#include "server.h"
#include "sse.h"
#include "uphttp.h"
#include "worker.h"

#define PROXY_MAX_ORDER 64
#define PROXY_MAX_HELD (256u * 1024)     /* events held before the first content event */
#define PROXY_MAX_ERROR_BODY (64u * 1024) /* an upstream error body kept for its message */
#define PROXY_MAX_SSE_EVENT (8u << 20)

enum preq_state { PS_ATTEMPT, PS_WAIT_FIRST, PS_RELAY, PS_BODY, PS_DONE };

/* Why an attempt failed; kept apart for the health logic and the client's message. */
enum fail_class {
    FC_CONNECT,
    FC_TLS,
    FC_TIMEOUT, /* connect timeout */
    FC_IO,
    FC_RATE_LIMITED,
    FC_OVERLOADED, /* 5xx */
    FC_AUTH,       /* 401/402/403: our key or balance */
    FC_STATUS,     /* other unexpected status */
    FC_FIRST_TOKEN,
    FC_STALL,
    FC_BAD_REPLY,
    FC_CUT,
};

struct preq {
    struct server_conn *conn;
    struct worker *w;
    struct config *cfg;
    const struct cfg_model *model;
    enum proxy_api api;
    enum preq_state state;
    char *body;
    size_t body_len;
    struct jsonx_request scan;
    bool client_stream;
    bool client_usage;

    const struct cfg_deployment *order[PROXY_MAX_ORDER];
    size_t norder, next;
    unsigned attempts;
    const struct cfg_deployment *dep;
    struct uphttp *up;
    bool up_stream; /* we asked this upstream for a stream */
    int up_status;
    bool up_sse;
    int retry_after_s; /* smallest Retry-After seen, -1 none */
    struct buf upbody; /* non-SSE body: JSON answer or error */
    struct buf why;    /* "provider/model: reason; ..." */
    unsigned n_timeout, n_busy, n_other;

    struct sse_parser sse;
    struct buf held;
    bool got_first;
    bool committed;
    bool saw_done, saw_finish;
    bool paused;
    struct assemble *asmb;
    struct jsonx_chunk usage;
    bool usage_seen;

    uv_timer_t token_timer; /* first-token deadline, then stall timer */
    uv_timer_t total_timer;
    int handles_open;
    uint64_t t_start;
    bool finished;
};

static void next_attempt(struct preq *p);
static void finalize(struct preq *p, const char *outcome);

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

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static uint64_t remaining_ms(struct preq *p)
{
    uint64_t spent = now_ms() - p->t_start;
    return spent >= p->model->timeouts.total_ms ? 0 : p->model->timeouts.total_ms - spent;
}

static void arm_token_timer(struct preq *p, uint32_t ms);

/* ---- answering the client ---------------------------------------------- */

static void extra_headers(struct preq *p, struct buf *h)
{
    if (p->dep) {
        buf_printf(h, "x-unbusy-provider: %s\r\n", p->dep->provider->name);
        buf_printf(h, "x-unbusy-attempts: %u\r\n", p->attempts);
    }
}

static void respond_error(struct preq *p, enum gw_err e, const char *msg)
{
    struct buf h;
    buf_init(&h, 0);
    extra_headers(p, &h);
    if (p->retry_after_s >= 0 && (e == GW_ERR_UNAVAILABLE || e == GW_ERR_RATE_LIMITED))
        buf_printf(&h, "Retry-After: %d\r\n", p->retry_after_s);
    server_respond_error(p->conn, e, msg, h.data);
    buf_free(&h);
}

/* Write one SSE event to a committed stream client, with back-pressure. */
static void relay_event(struct preq *p, const char *data, size_t len)
{
    uv_buf_t parts[3] = {uv_buf_init("data: ", 6), uv_buf_init((char *)data, (unsigned)len),
                         uv_buf_init("\n\n", 2)};
    server_stream_writev(p->conn, parts, 3);
    if (!p->paused && server_pending_bytes(p->conn) > SERVER_HIGH_WATER && p->up) {
        p->paused = true;
        uphttp_pause(p->up, true);
    }
}

static void commit_stream(struct preq *p)
{
    struct buf h;
    buf_init(&h, 0);
    buf_append_str(&h, "Cache-Control: no-cache\r\n");
    extra_headers(p, &h);
    server_stream_begin(p->conn, 200, "text/event-stream", h.data);
    buf_free(&h);
    p->committed = true;
    if (p->held.len)
        server_stream_write(p->conn, p->held.data, p->held.len);
    buf_reset(&p->held);
}

/* After the client has seen bytes: end the stream with an error event and no [DONE]. */
static void mid_stream_error(struct preq *p, const char *why)
{
    struct buf b;
    buf_init(&b, 0);
    char msg[512];
    snprintf(msg, sizeof msg, "the upstream stream from %s failed after it had started: %s",
             p->dep ? p->dep->provider->name : "?", why);
    errors_render(&b, GW_ERR_MID_STREAM, msg, NULL);
    relay_event(p, b.data, b.len);
    buf_free(&b);
    server_stream_end(p->conn);
    server_set_close(p->conn);
    snprintf(server_conn_request_mut(p->conn)->log.error, 256, "%s", why);
    finalize(p, "mid_stream_error");
}

/* ---- attempts ----------------------------------------------------------- */

static const char *fail_name(enum fail_class fc)
{
    static const char *names[] = {
        [FC_CONNECT] = "connect failed",    [FC_TLS] = "TLS failed",
        [FC_TIMEOUT] = "connect timeout",   [FC_IO] = "connection error",
        [FC_RATE_LIMITED] = "rate limited", [FC_OVERLOADED] = "server error",
        [FC_AUTH] = "not authorised",       [FC_STATUS] = "unexpected status",
        [FC_FIRST_TOKEN] = "no first token before the deadline",
        [FC_STALL] = "stream stalled",      [FC_BAD_REPLY] = "malformed reply",
        [FC_CUT] = "stream cut",
    };
    return names[fc];
}

static void reset_attempt(struct preq *p)
{
    if (p->up) {
        uphttp_cancel(p->up);
        p->up = NULL;
    }
    uv_timer_stop(&p->token_timer);
    sse_parser_reset(&p->sse);
    buf_reset(&p->held);
    buf_reset(&p->upbody);
    if (p->asmb) {
        assemble_free(p->asmb);
        p->asmb = NULL;
    }
    p->got_first = p->saw_done = p->saw_finish = p->up_sse = false;
    p->usage_seen = false;
    p->paused = false;
    p->up_status = 0;
}

static void attempt_failed(struct preq *p, enum fail_class fc, const char *detail)
{
    if (fc == FC_TIMEOUT || fc == FC_FIRST_TOKEN)
        p->n_timeout++;
    else if (fc == FC_RATE_LIMITED || fc == FC_OVERLOADED)
        p->n_busy++;
    else
        p->n_other++;
    if (fc == FC_AUTH) {
        char key[128];
        snprintf(key, sizeof key, "auth:%s", p->dep->provider->name);
        if (log_first_time(key))
            log_error("provider %s refuses our credentials (%s); check its api_key and balance",
                      p->dep->provider->name, detail ? detail : "");
    }
    if (p->why.len)
        buf_append_str(&p->why, "; ");
    buf_printf(&p->why, "%s/%s: %s", p->dep->provider->name, p->dep->model, fail_name(fc));
    if (detail && *detail)
        buf_printf(&p->why, " (%s)", detail);
    reset_attempt(p);
    next_attempt(p);
}

static void all_failed(struct preq *p)
{
    enum gw_err e = GW_ERR_UPSTREAM;
    if (p->n_other == 0 && p->n_busy == 0 && p->n_timeout > 0)
        e = GW_ERR_UPSTREAM_TIMEOUT;
    else if (p->n_other == 0)
        e = GW_ERR_UNAVAILABLE;
    char *msg = malloc(p->why.len + 256);
    if (!msg) {
        respond_error(p, GW_ERR_INTERNAL, "out of memory");
        finalize(p, "upstream_failed");
        return;
    }
    sprintf(msg, "every deployment of model '%s' failed (%u attempt%s): %s", p->model->name,
            p->attempts, p->attempts == 1 ? "" : "s", p->why.len ? p->why.data : "none tried");
    respond_error(p, e, msg);
    snprintf(server_conn_request_mut(p->conn)->log.error, 256, "%s", p->why.data ? p->why.data : "");
    free(msg);
    finalize(p, "upstream_failed");
}

static void on_up_connected(void *ud);
static void on_up_head(void *ud, const struct http1_response *resp);
static void on_up_body(void *ud, const char *data, size_t len);
static void on_up_end(void *ud);
static void on_up_fail(void *ud, enum uphttp_fail f, enum transport_err terr);

static const struct uphttp_events up_events = {
    .on_connected = on_up_connected,
    .on_head = on_up_head,
    .on_body = on_up_body,
    .on_end = on_up_end,
    .on_fail = on_up_fail,
};

/* The request for one deployment: head + rewritten body, malloc'd. */
static char *build_request(struct preq *p, const struct cfg_deployment *d, size_t *len)
{
    const struct cfg_provider *pv = d->provider;
    struct buf body, out;
    buf_init(&body, 0);
    buf_init(&out, 0);
    if (jsonx_rewrite_request(p->body, p->body_len, &p->scan, d->model, p->up_stream, &body) < 0) {
        buf_free(&body);
        return NULL;
    }
    bool v6 = strchr(pv->host, ':') != NULL; /* an IPv6 literal goes in brackets */
    buf_printf(&out, "POST %s%s HTTP/1.1\r\nHost: %s%s%s", pv->base_path, api_path(p->api),
               v6 ? "[" : "", pv->host, v6 ? "]" : "");
    if (pv->port != (pv->tls ? 443 : 80))
        buf_printf(&out, ":%u", pv->port);
    buf_append_str(&out, "\r\nContent-Type: application/json\r\n");
    buf_append_str(&out, p->up_stream ? "Accept: text/event-stream\r\n" : "Accept: application/json\r\n");
    buf_append_str(&out, "User-Agent: unbusy/0.1\r\n");
    if (pv->api_key)
        buf_printf(&out, "%s: %s%s\r\n", pv->auth_header, pv->auth_prefix, pv->api_key);
    for (size_t i = 0; i < pv->nheaders; i++)
        buf_printf(&out, "%s: %s\r\n", pv->headers[i].name, pv->headers[i].value);
    buf_printf(&out, "x-request-id: %s\r\n", server_conn_request(p->conn)->request_id);
    buf_printf(&out, "Content-Length: %zu\r\n\r\n", body.len);
    buf_append(&out, body.data, body.len);
    buf_free(&body);
    return buf_steal(&out, len);
}

static void on_token_timer(uv_timer_t *t);

static void arm_token_timer(struct preq *p, uint32_t ms)
{
    uint64_t left = remaining_ms(p);
    uv_timer_start(&p->token_timer, on_token_timer, ms < left ? ms : left, 0);
}

static void next_attempt(struct preq *p)
{
    if (p->finished)
        return;
    uint32_t max_attempts = p->model->max_attempts ? p->model->max_attempts : (uint32_t)p->norder;
    while (p->next < p->norder && p->attempts < max_attempts) {
        if (remaining_ms(p) == 0)
            break;
        const struct cfg_deployment *d = p->order[p->next++];
        p->dep = d;
        p->attempts++;
        p->up_stream = p->api != PROXY_API_EMBEDDINGS && (p->client_stream || d->provider->stream_upstream);
        p->state = PS_ATTEMPT;
        size_t len = 0;
        char *req = build_request(p, d, &len);
        if (!req) {
            attempt_failed(p, FC_IO, "request too large to build");
            return;
        }
        uint32_t connect_ms = d->provider->connect_timeout_ms ? d->provider->connect_timeout_ms
                                                              : p->model->timeouts.connect_ms;
        p->up = uphttp_start(p->w->pool, d->provider, connect_ms, req, len, &up_events, p);
        if (!p->up) {
            attempt_failed(p, FC_CONNECT, "could not start");
            return;
        }
        arm_token_timer(p, p->model->timeouts.first_token_ms);
        return;
    }
    all_failed(p);
}

/* ---- upstream events ------------------------------------------------------ */

static void on_up_connected(void *ud)
{
    (void)ud;
}

static int parse_retry_after(const struct http1_str *v)
{
    if (!v || v->len == 0 || v->len > 9)
        return -1;
    int n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return -1; /* HTTP-date form: not used by LLM providers; ignored */
        n = n * 10 + (v->p[i] - '0');
    }
    return n;
}

static void on_up_head(void *ud, const struct http1_response *resp)
{
    struct preq *p = ud;
    p->up_status = resp->status;
    int ra = parse_retry_after(http1_find_header(&resp->head, "retry-after"));
    if (ra >= 0 && (p->retry_after_s < 0 || ra < p->retry_after_s))
        p->retry_after_s = ra;
    const struct http1_str *ct = http1_find_header(&resp->head, "content-type");
    bool sse = ct && ct->len >= 17 && strncasecmp(ct->p, "text/event-stream", 17) == 0;
    if (resp->status == 200 && sse && p->up_stream) {
        p->up_sse = true;
        p->state = PS_WAIT_FIRST;
        if (!p->client_stream) {
            p->asmb = assemble_new(p->api == PROXY_API_COMPLETIONS ? ASSEMBLE_COMPLETION : ASSEMBLE_CHAT,
                                   p->cfg->server.max_response_bytes);
        }
        return;
    }
    p->state = PS_BODY;
    p->upbody.limit = resp->status == 200 ? p->cfg->server.max_response_bytes : PROXY_MAX_ERROR_BODY;
    /* A whole-body answer has begun: from here the stall timeout bounds it. */
    p->got_first = true;
    arm_token_timer(p, p->model->timeouts.stall_ms);
}

static int on_sse_item(void *ud, const struct sse_item *it);

static void on_up_body(void *ud, const char *data, size_t len)
{
    struct preq *p = ud;
    if (p->up_sse) {
        size_t consumed = 0;
        int rc = sse_parser_feed(&p->sse, data, len, on_sse_item, p, &consumed);
        if (rc < 0) {
            if (p->committed)
                mid_stream_error(p, "oversized or malformed event");
            else
                attempt_failed(p, FC_BAD_REPLY, "oversized event");
        }
        return; /* rc > 0: on_sse_item already moved the request on */
    }
    if (buf_append(&p->upbody, data, len) < 0 && p->up_status == 200)
        attempt_failed(p, FC_BAD_REPLY, "answer larger than server.max_response_bytes");
    /* error bodies past their bound are cut: only the message is needed */
}

/* Handles one upstream SSE item; returns non-zero when the request moved on (stop parsing). */
static int on_sse_item(void *ud, const struct sse_item *it)
{
    struct preq *p = ud;
    if (it->kind == SSE_COMMENT) {
        if (p->committed) /* keep the client's idle timers fed too */
            server_stream_write(p->conn, ": keep-alive\n\n", 14);
        return 0;
    }
    if (it->data_len == 6 && memcmp(it->data, "[DONE]", 6) == 0) {
        p->saw_done = true;
        return 0;
    }
    struct jsonx_chunk ch;
    if (jsonx_scan_chunk(it->data, it->data_len, &ch) < 0 || !ch.valid) {
        if (p->committed)
            mid_stream_error(p, "malformed event");
        else
            attempt_failed(p, FC_BAD_REPLY, "event is not JSON");
        return 1;
    }
    if (ch.has_error) {
        char msg[256];
        jsonx_error_message(it->data, it->data_len, msg, sizeof msg);
        if (p->committed) {
            relay_event(p, it->data, it->data_len); /* the provider's own error event */
            server_stream_end(p->conn);
            server_set_close(p->conn);
            snprintf(server_conn_request_mut(p->conn)->log.error, 256, "%s", msg);
            finalize(p, "mid_stream_error");
        } else {
            attempt_failed(p, FC_OVERLOADED, msg);
        }
        return 1;
    }
    if (ch.has_usage) {
        p->usage = ch;
        p->usage_seen = true;
    }
    if (ch.has_finish)
        p->saw_finish = true;
    if (ch.has_content) {
        if (!p->got_first) {
            p->got_first = true;
            p->state = PS_RELAY;
            struct accesslog_entry *log = &server_conn_request_mut(p->conn)->log;
            log->ttft_ms = (int64_t)(now_ms() - p->t_start);
            if (p->client_stream)
                commit_stream(p);
        }
        arm_token_timer(p, p->model->timeouts.stall_ms);
    }
    if (p->asmb) {
        if (assemble_feed(p->asmb, it->data, it->data_len) < 0) {
            attempt_failed(p, FC_BAD_REPLY, "answer could not be assembled");
            return 1;
        }
        return 0;
    }
    bool usage_only = ch.has_usage && ch.choices_empty;
    if (usage_only && !p->client_usage)
        return 0;
    if (p->committed) {
        relay_event(p, it->data, it->data_len);
    } else {
        /* role-only chunks before the first content: held, sent at commit */
        uv_buf_t parts[3] = {uv_buf_init("data: ", 6), uv_buf_init((char *)it->data, (unsigned)it->data_len),
                             uv_buf_init("\n\n", 2)};
        size_t total = 8 + it->data_len;
        if (p->held.len + total <= PROXY_MAX_HELD)
            for (int i = 0; i < 3; i++)
                buf_append(&p->held, parts[i].base, parts[i].len);
    }
    return 0;
}

static void record_usage(struct preq *p)
{
    if (!p->usage_seen)
        return;
    struct accesslog_entry *log = &server_conn_request_mut(p->conn)->log;
    log->prompt_tokens = p->usage.prompt_tokens;
    log->completion_tokens = p->usage.completion_tokens;
    log->reasoning_tokens = p->usage.reasoning_tokens;
    log->cached_tokens = p->usage.cached_tokens;
}

static void finish_sse(struct preq *p)
{
    bool complete = p->saw_done || p->saw_finish;
    if (!p->got_first || !complete) {
        if (p->committed)
            mid_stream_error(p, "the upstream ended the stream before it was complete");
        else
            attempt_failed(p, p->got_first ? FC_CUT : FC_BAD_REPLY,
                           p->got_first ? "ended before the answer was complete" : "stream without content");
        return;
    }
    record_usage(p);
    if (p->client_stream) {
        server_stream_write(p->conn, "data: [DONE]\n\n", 14);
        server_stream_end(p->conn);
        finalize(p, "ok");
        return;
    }
    struct buf out;
    buf_init(&out, 0);
    if (assemble_finish(p->asmb, &out) < 0) {
        buf_free(&out);
        attempt_failed(p, FC_BAD_REPLY, "answer could not be assembled");
        return;
    }
    struct buf h;
    buf_init(&h, 0);
    extra_headers(p, &h);
    server_respond(p->conn, 200, "application/json", h.data, out.data, out.len);
    buf_free(&h);
    buf_free(&out);
    finalize(p, "ok");
}

/* A non-SSE answer has ended: a JSON 200, or an error status. */
static void finish_body(struct preq *p)
{
    int st = p->up_status;
    char detail[200];
    if (st == 200) {
        struct jsonx_chunk ch;
        if (p->client_stream || jsonx_scan_chunk(p->upbody.data, p->upbody.len, &ch) < 0 || !ch.valid) {
            attempt_failed(p, FC_BAD_REPLY, p->client_stream ? "no stream in answer to a stream request"
                                                             : "answer is not JSON");
            return;
        }
        if (ch.has_usage) {
            p->usage = ch;
            p->usage_seen = true;
            record_usage(p);
        }
        struct buf h;
        buf_init(&h, 0);
        extra_headers(p, &h);
        server_respond(p->conn, 200, "application/json", h.data, p->upbody.data, p->upbody.len);
        buf_free(&h);
        finalize(p, "ok");
        return;
    }
    char msg[160];
    jsonx_error_message(p->upbody.data ? p->upbody.data : "", p->upbody.len, msg, sizeof msg);
    snprintf(detail, sizeof detail, "HTTP %d%s%s", st, msg[0] ? ": " : "", msg);
    if (st == 400 || st == 413 || st == 422) {
        /* The client's request is at fault: every deployment would say the same. */
        struct jsonx_chunk ch;
        bool json_error = jsonx_scan_chunk(p->upbody.data ? p->upbody.data : "", p->upbody.len, &ch) == 0 &&
                          ch.valid && ch.has_error;
        struct buf h;
        buf_init(&h, 0);
        extra_headers(p, &h);
        if (json_error) {
            server_respond(p->conn, st, "application/json", h.data, p->upbody.data, p->upbody.len);
        } else {
            struct buf b;
            buf_init(&b, 0);
            errors_render(&b, st == 413 ? GW_ERR_TOO_LARGE : GW_ERR_BAD_REQUEST,
                          msg[0] ? msg : "the provider rejected the request", NULL);
            server_respond(p->conn, st, "application/json", h.data, b.data, b.len);
            buf_free(&b);
        }
        buf_free(&h);
        snprintf(server_conn_request_mut(p->conn)->log.error, 256, "%s", detail);
        finalize(p, "client_error");
        return;
    }
    enum fail_class fc = FC_STATUS;
    if (st == 429)
        fc = FC_RATE_LIMITED;
    else if (st >= 500)
        fc = FC_OVERLOADED;
    else if (st == 401 || st == 402 || st == 403)
        fc = FC_AUTH;
    attempt_failed(p, fc, detail);
}

static void on_up_end(void *ud)
{
    struct preq *p = ud;
    if (p->up_sse)
        finish_sse(p);
    else
        finish_body(p);
}

static void on_up_fail(void *ud, enum uphttp_fail f, enum transport_err terr)
{
    struct preq *p = ud;
    if (p->committed) {
        mid_stream_error(p, f == UPHTTP_FAIL_TRANSPORT ? transport_err_name(terr) : "malformed reply");
        return;
    }
    if (f != UPHTTP_FAIL_TRANSPORT) {
        attempt_failed(p, FC_BAD_REPLY, f == UPHTTP_FAIL_TOO_LARGE ? "response head too large" : NULL);
        return;
    }
    enum fail_class fc = FC_IO;
    switch (terr) {
    case TRANSPORT_ERR_DNS:
    case TRANSPORT_ERR_CONNECT:
        fc = FC_CONNECT;
        break;
    case TRANSPORT_ERR_CONNECT_TIMEOUT:
        fc = FC_TIMEOUT;
        break;
    case TRANSPORT_ERR_TLS:
        fc = FC_TLS;
        break;
    case TRANSPORT_ERR_EOF:
        fc = p->got_first ? FC_CUT : FC_IO;
        break;
    case TRANSPORT_ERR_IO:
        fc = FC_IO;
        break;
    }
    attempt_failed(p, fc, transport_err_name(terr));
}

/* ---- timers, client events -------------------------------------------------- */

static void on_token_timer(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (p->finished)
        return;
    if (remaining_ms(p) == 0) {
        if (p->committed) {
            mid_stream_error(p, "total deadline reached");
            return;
        }
        if (p->dep) {
            if (p->why.len)
                buf_append_str(&p->why, "; ");
            buf_printf(&p->why, "%s/%s: total deadline reached", p->dep->provider->name, p->dep->model);
        }
        p->n_timeout++;
        reset_attempt(p);
        p->next = p->norder; /* no time left for another */
        all_failed(p);
        return;
    }
    if (!p->got_first) {
        char d[64];
        snprintf(d, sizeof d, "%u ms", p->model->timeouts.first_token_ms);
        attempt_failed(p, FC_FIRST_TOKEN, d);
    } else if (p->committed) {
        mid_stream_error(p, "no new tokens within the stall timeout");
    } else {
        attempt_failed(p, FC_STALL, NULL);
    }
}

static void on_client_drain(void *ud)
{
    struct preq *p = ud;
    if (p->paused && p->up) {
        p->paused = false;
        uphttp_pause(p->up, false);
    }
}

static void on_client_abort(void *ud)
{
    struct preq *p = ud;
    server_conn_request_mut(p->conn)->log.status = 499;
    finalize(p, "client_closed");
}

/* ---- start and finalize ------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct preq *p = h->data;
    if (--p->handles_open > 0)
        return;
    config_unref(p->cfg);
    free(p);
}

/* The one exit of every proxied request. */
static void finalize(struct preq *p, const char *outcome)
{
    if (p->finished)
        return;
    p->finished = true;
    p->state = PS_DONE;
    if (p->up) {
        uphttp_cancel(p->up);
        p->up = NULL;
    }
    struct accesslog_entry *log = &server_conn_request_mut(p->conn)->log;
    log->outcome = outcome;
    if (!log->error[0] && p->why.len) /* answered, after these attempts failed */
        snprintf(log->error, sizeof log->error, "%s", p->why.data);
    log->attempts = p->attempts;
    if (p->dep) {
        log->provider = p->dep->provider->name;
        log->deployment_model = p->dep->model;
    }
    p->w->inflight--;
    sse_parser_free(&p->sse);
    buf_free(&p->held);
    buf_free(&p->upbody);
    buf_free(&p->why);
    if (p->asmb)
        assemble_free(p->asmb);
    free(p->body);
    p->body = NULL;
    server_set_hooks(p->conn, NULL);
    server_request_done(p->conn);
    uv_close((uv_handle_t *)&p->token_timer, on_timer_closed);
    uv_close((uv_handle_t *)&p->total_timer, on_timer_closed);
}

static void on_total_timer(uv_timer_t *t)
{
    on_token_timer(t); /* remaining_ms() is 0 now: the same path ends the request */
}

/* Deployments in the order they are tried: by tier, rotating within a tier so that
   equal deployments share the load. */
static void order_deployments(struct preq *p)
{
    const struct cfg_model *m = p->model;
    size_t n = m->ndeployments < PROXY_MAX_ORDER ? m->ndeployments : PROXY_MAX_ORDER;
    uint64_t rot = p->w->rr++;
    p->norder = 0;
    int tier = -1;
    for (;;) {
        int next_tier = -1;
        for (size_t i = 0; i < n; i++)
            if (m->deployments[i].tier > tier && (next_tier < 0 || m->deployments[i].tier < next_tier))
                next_tier = m->deployments[i].tier;
        if (next_tier < 0)
            break;
        size_t first = p->norder, count = 0;
        for (size_t i = 0; i < n; i++)
            if (m->deployments[i].tier == next_tier)
                count++;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (m->deployments[i].tier != next_tier)
                continue;
            p->order[first + (k + rot) % count] = &m->deployments[i];
            k++;
        }
        p->norder += count;
        tier = next_tier;
    }
}

static void reject_request(struct server_conn *c, enum gw_err e, const char *msg, const char *param)
{
    struct buf b;
    buf_init(&b, 0);
    int status = errors_render(&b, e, msg, param);
    server_respond(c, status, "application/json", NULL, b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}

void proxy_start(struct server_conn *c, enum proxy_api api)
{
    struct server_request *req = server_conn_request_mut(c);
    struct worker *w = server_conn_worker(c);
    struct jsonx_request scan;
    int rc = jsonx_scan_request(req->body ? req->body : "", req->body_len, &scan);
    if (rc == JSONX_ERR_FIELD) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid value for '%s'", scan.bad_field ? scan.bad_field : "?");
        reject_request(c, GW_ERR_BAD_FIELD, msg, scan.bad_field);
        return;
    }
    if (rc < 0) {
        reject_request(c, GW_ERR_BAD_JSON,
                       rc == JSONX_ERR_NOT_OBJECT ? "the request body must be a JSON object"
                                                  : "the request body is not valid JSON",
                       NULL);
        return;
    }
    if (!scan.has_model || !scan.model[0]) {
        reject_request(c, GW_ERR_BAD_FIELD, "you must provide a model parameter", "model");
        return;
    }
    const struct cfg_model *m = config_find_model(w->cfg, scan.model);
    req->log.stream = scan.stream;
    if (!m) {
        snprintf(req->log.model_buf, sizeof req->log.model_buf, "%.63s", scan.model);
        char msg[400];
        snprintf(msg, sizeof msg, "the model '%s' does not exist", scan.model);
        reject_request(c, GW_ERR_UNKNOWN_MODEL, msg, "model");
        return;
    }
    req->log.model = m->name;
    struct preq *p = calloc(1, sizeof *p);
    if (!p) {
        reject_request(c, GW_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    p->conn = c;
    p->w = w;
    p->cfg = config_ref(w->cfg);
    p->model = m;
    p->api = api;
    p->body = req->body;
    p->body_len = req->body_len;
    req->body = NULL;
    p->scan = scan;
    p->client_stream = scan.stream && api != PROXY_API_EMBEDDINGS;
    p->client_usage = scan.include_usage;
    p->retry_after_s = -1;
    p->t_start = now_ms();
    buf_init(&p->upbody, PROXY_MAX_ERROR_BODY);
    buf_init(&p->why, 16 * 1024);
    buf_init(&p->held, PROXY_MAX_HELD);
    sse_parser_init(&p->sse, PROXY_MAX_SSE_EVENT);
    uv_timer_init(&w->loop, &p->token_timer);
    uv_timer_init(&w->loop, &p->total_timer);
    p->token_timer.data = p->total_timer.data = p;
    p->handles_open = 2;
    w->inflight++;
    struct server_hooks hooks = {.on_drain = on_client_drain, .on_abort = on_client_abort, .ud = p};
    server_set_hooks(c, &hooks);
    uv_timer_start(&p->total_timer, on_total_timer, m->timeouts.total_ms, 0);
    order_deployments(p);
    next_attempt(p);
}
