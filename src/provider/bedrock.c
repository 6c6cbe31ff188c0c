/*
 * bedrock — AWS Bedrock's Converse API: POST /model/{modelId}/converse for a whole
 * answer, /model/{modelId}/converse-stream for a stream, on
 * bedrock-runtime.{region}.amazonaws.com, signed with SigV4 (service "bedrock").
 *
 * Request: the OpenAI chat body turned into Converse (bedrock_request.c).
 *
 * Reply: ConverseStream answers application/vnd.amazon.eventstream
 * (proto/eventstream.h); each message's :event-type names a JSON event, written
 * back here as the OpenAI chunk a client expects:
 *
 *   messageStart {role}                          → a role chunk (not progress)
 *   contentBlockStart {start.toolUse{id,name}}   → a tool_calls delta with id and name
 *   contentBlockDelta {delta.text}               → a content delta
 *                     {delta.toolUse.input}      → a tool_calls arguments delta
 *                     {delta.reasoningContent.text} → a reasoning_content delta
 *   contentBlockStop                             → nothing
 *   messageStop {stopReason}                     → the finish chunk (finish_reason mapped)
 *   metadata {usage}                             → the usage chunk (choices: []), then done
 *
 * A message with :message-type exception (throttlingException,
 * modelStreamErrorException, ...) or error is the provider's error event,
 * written as {"error":{...}}. Converse's whole answer (output.message.content,
 * stopReason, usage) is written as one chat.completion. Error statuses map by
 * the exception's name (__type) or, without it, the status.
 */
#include "provider/bedrock.h"

#include <cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider/aws_sign.h"

const char *bedrock_finish_reason(const char *r)
{
    if (!r) return "stop";
    if (strcmp(r, "max_tokens") == 0 || strcmp(r, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(r, "tool_use") == 0) return "tool_calls";
    if (strcmp(r, "guardrail_intervened") == 0 || strcmp(r, "content_filtered") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence */
}

static enum cfg_continuation bedrock_continuation(const struct cfg_provider *pv)
{
    /* a trailing assistant turn is a prefill for the models that take one, not for all:
       only when the operator says so */
    return pv->continuation == CFG_CONTINUATION_ASSISTANT_MESSAGE
               ? CFG_CONTINUATION_ASSISTANT_MESSAGE
               : CFG_CONTINUATION_OFF;
}

static int model_path(struct provider_request *r, const char *model, const char *action)
{
    struct buf p;
    buf_init(&p, sizeof r->path_own - 1);
    int rc =
        buf_append_str(&p, "/model/") | aws_path_segment(&p, model) | buf_append_str(&p, action);
    if (rc == 0) {
        memcpy(r->path_own, p.data, p.len);
        r->path_own[p.len] = '\0';
        r->path = r->path_own;
    }
    buf_free(&p);
    return rc < 0 ? -1 : 0;
}

static int bedrock_build(const struct provider_call *c, struct provider_request *r)
{
    const char *why = NULL;
    r->method = "POST";
    if (model_path(r, c->model, c->stream ? "/converse-stream" : "/converse") < 0) return -1;
    int rc = bedrock_converse_body(c, &r->body, &why);
    if (rc == -2 && c->refusal) *c->refusal = why;
    if (rc < 0) return -1;
    return buf_printf(&r->head, "Content-Type: application/json\r\nAccept: %s\r\n",
                      c->stream ? "application/vnd.amazon.eventstream" : "application/json");
}

/* ---- OpenAI chunks written here ---- */

static void ensure_id(struct provider_stream *s)
{
    static atomic_uint_fast64_t counter;
    if (s->id[0]) return;
    uint64_t n = atomic_fetch_add(&counter, 1) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix =
        ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (n * 0x9E3779B97F4A7C15ull);
    snprintf(s->id, sizeof s->id, "chatcmpl-%016llx%04llx", (unsigned long long)mix,
             (unsigned long long)(n & 0xffff));
    s->created = (int64_t)ts.tv_sec;
}

static int chunk_head(struct provider_stream *s, const char *object)
{
    ensure_id(s);
    const char *model = s->model ? s->model : "";
    buf_reset(&s->out);
    int rc =
        buf_printf(&s->out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", s->id,
                   object, (long long)s->created);
    rc |= buf_append_json_str(&s->out, model, strlen(model));
    return rc;
}

/* the chunk in s->out scanned and handed to fn */
static int emit(struct provider_stream *s, provider_event_fn fn, void *ud)
{
    struct provider_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data = s->out.data;
    ev.len = s->out.len;
    if (jsonx_scan_chunk(ev.data, ev.len, &ev.chunk) < 0 || !ev.chunk.valid)
        ev.kind = PROVIDER_EV_BAD;
    else
        provider_classify(&ev);
    return fn(ud, &ev);
}

static int delta_chunk(struct provider_stream *s, provider_event_fn fn, void *ud,
                       const char *delta_json, const char *finish)
{
    int rc = chunk_head(s, "chat.completion.chunk");
    rc |= buf_printf(&s->out,
                     ",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":", delta_json);
    rc |= finish ? buf_printf(&s->out, "\"%s\"}]}", finish) : buf_append_str(&s->out, "null}]}");
    return rc < 0 ? PROVIDER_FEED_BAD : emit(s, fn, ud);
}

static int usage_json(struct buf *out, const cJSON *usage)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(usage, "inputTokens");
    const cJSON *outp = cJSON_GetObjectItemCaseSensitive(usage, "outputTokens");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(usage, "cacheReadInputTokens");
    const cJSON *cw = cJSON_GetObjectItemCaseSensitive(usage, "cacheWriteInputTokens");
    long long i = cJSON_IsNumber(in) ? (long long)in->valuedouble : 0;
    long long o = cJSON_IsNumber(outp) ? (long long)outp->valuedouble : 0;
    long long r = cJSON_IsNumber(cr) ? (long long)cr->valuedouble : 0;
    long long w = cJSON_IsNumber(cw) ? (long long)cw->valuedouble : 0;
    /* Converse counts cached prompt tokens apart from inputTokens; OpenAI's prompt_tokens
       holds them all, and cached_tokens says how many were read from the cache */
    return buf_printf(
        out,
        "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
        "\"prompt_tokens_details\":{\"cached_tokens\":%lld},\"cache_creation_input_tokens\":%lld}",
        i + r + w, o, i + r + w + o, r, w);
}

static int tool_start(struct provider_stream *s, provider_event_fn fn, void *ud, const cJSON *ev)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ev, "contentBlockIndex");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(ev, "start");
    const cJSON *tu = start ? cJSON_GetObjectItemCaseSensitive(start, "toolUse") : NULL;
    if (!tu) return 0; /* a text block starts with its first delta */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(tu, "toolUseId");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(tu, "name");
    int b = cJSON_IsNumber(idx) ? idx->valueint : -1;
    if (b < 0 || b >= 64 || !cJSON_IsString(id) || !cJSON_IsString(name)) return PROVIDER_FEED_BAD;
    unsigned k = s->ntools++;
    s->tool_of_block[b] = (int)k + 1;
    struct buf d;
    buf_init(&d, 0);
    int rc = buf_printf(&d, "{\"tool_calls\":[{\"index\":%u,\"id\":", k);
    rc |= buf_append_json_str(&d, id->valuestring, strlen(id->valuestring));
    rc |= buf_append_str(&d, ",\"type\":\"function\",\"function\":{\"name\":");
    rc |= buf_append_json_str(&d, name->valuestring, strlen(name->valuestring));
    rc |= buf_append_str(&d, ",\"arguments\":\"\"}}]}");
    rc = rc < 0 ? PROVIDER_FEED_BAD : delta_chunk(s, fn, ud, d.data, NULL);
    buf_free(&d);
    return rc;
}

static int block_delta(struct provider_stream *s, provider_event_fn fn, void *ud, const cJSON *ev)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ev, "contentBlockIndex");
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    if (!cJSON_IsObject(delta)) return PROVIDER_FEED_BAD;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(delta, "text");
    const cJSON *tu = cJSON_GetObjectItemCaseSensitive(delta, "toolUse");
    const cJSON *rc_ = cJSON_GetObjectItemCaseSensitive(delta, "reasoningContent");
    struct buf d;
    buf_init(&d, 0);
    int rc = 0;
    if (cJSON_IsString(text)) {
        rc = buf_append_str(&d, "{\"content\":") |
             buf_append_json_str(&d, text->valuestring, strlen(text->valuestring)) |
             buf_append_str(&d, "}");
    } else if (tu) {
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(tu, "input");
        int b = cJSON_IsNumber(idx) ? idx->valueint : -1;
        if (b < 0 || b >= 64 || !s->tool_of_block[b] || !cJSON_IsString(input)) {
            buf_free(&d);
            return PROVIDER_FEED_BAD;
        }
        rc = buf_printf(&d, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":",
                        s->tool_of_block[b] - 1) |
             buf_append_json_str(&d, input->valuestring, strlen(input->valuestring)) |
             buf_append_str(&d, "}}]}");
    } else if (rc_) {
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rc_, "text");
        if (!cJSON_IsString(rt)) {
            buf_free(&d);
            return 0; /* a signature or redacted reasoning: nothing to show */
        }
        rc = buf_append_str(&d, "{\"reasoning_content\":") |
             buf_append_json_str(&d, rt->valuestring, strlen(rt->valuestring)) |
             buf_append_str(&d, "}");
    } else {
        buf_free(&d);
        return 0; /* a delta of a kind not relayed (citations, ...) */
    }
    rc = rc < 0 ? PROVIDER_FEED_BAD : delta_chunk(s, fn, ud, d.data, NULL);
    buf_free(&d);
    return rc;
}

static int usage_chunk(struct provider_stream *s, provider_event_fn fn, void *ud, const cJSON *ev)
{
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(ev, "usage");
    int rc = 0;
    if (cJSON_IsObject(usage)) {
        rc = chunk_head(s, "chat.completion.chunk") | buf_append_str(&s->out, ",\"choices\":[],") |
             usage_json(&s->out, usage) | buf_append_str(&s->out, "}");
        rc = rc < 0 ? PROVIDER_FEED_BAD : emit(s, fn, ud);
    }
    if (rc) return rc;
    struct provider_event done = {.kind = PROVIDER_EV_DONE, .data = "[DONE]", .len = 6};
    return fn(ud, &done); /* metadata is the stream's last event */
}

/* An exception message as an OpenAI error event: {"error":{message, type, param, code}}. */
static int error_event(struct provider_stream *s, provider_event_fn fn, void *ud, const char *type,
                       size_t tlen, const char *payload, size_t plen)
{
    char msg[512];
    jsonx_error_message(payload, plen, msg, sizeof msg);
    buf_reset(&s->out);
    int rc = buf_append_str(&s->out, "{\"error\":{\"message\":") |
             buf_append_json_str(&s->out, msg, strlen(msg)) |
             buf_append_str(&s->out, ",\"type\":") | buf_append_json_str(&s->out, type, tlen) |
             buf_append_str(&s->out, ",\"param\":null,\"code\":") |
             buf_append_json_str(&s->out, type, tlen) | buf_append_str(&s->out, "}}");
    if (rc < 0) return PROVIDER_FEED_BAD;
    struct provider_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = PROVIDER_EV_ERROR;
    ev.data = s->out.data;
    ev.len = s->out.len;
    return fn(ud, &ev);
}

int bedrock_exception_event(struct provider_stream *s, const struct evs_message *m,
                            provider_event_fn fn, void *ud)
{
    if (evs_header_is(m, ":message-type", "exception")) {
        const struct evs_header *t = evs_header_find(m, ":exception-type");
        bool named = t && t->type == EVS_STRING;
        return error_event(s, fn, ud, named ? t->bytes : "exception", named ? t->bytes_len : 9,
                           m->payload, m->payload_len);
    }
    if (evs_header_is(m, ":message-type", "error")) {
        const struct evs_header *code = evs_header_find(m, ":error-code");
        const struct evs_header *msg = evs_header_find(m, ":error-message");
        bool named = code && code->type == EVS_STRING, said = msg && msg->type == EVS_STRING;
        /* the message header is text, not JSON: jsonx_error_message takes it as it is */
        return error_event(s, fn, ud, named ? code->bytes : "error", named ? code->bytes_len : 5,
                           said ? msg->bytes : "", said ? msg->bytes_len : 0);
    }
    return BEDROCK_NOT_EXCEPTION;
}

struct feed_ctx {
    struct provider_stream *s;
    provider_event_fn fn;
    void *ud;
};

static int on_message(void *ud, const struct evs_message *m)
{
    struct feed_ctx *f = ud;
    struct provider_stream *s = f->s;
    int ex = bedrock_exception_event(s, m, f->fn, f->ud);
    if (ex != BEDROCK_NOT_EXCEPTION)
        return ex < 0 ? 1 : ex ? ex : 1; /* the provider's error ends the stream */
    const struct evs_header *et = evs_header_find(m, ":event-type");
    if (!et || et->type != EVS_STRING) return 0;
    cJSON *ev = cJSON_ParseWithLength(m->payload, m->payload_len);
    if (!cJSON_IsObject(ev)) {
        cJSON_Delete(ev);
        struct provider_event bad = {
            .kind = PROVIDER_EV_BAD, .data = m->payload, .len = m->payload_len};
        return f->fn(f->ud, &bad);
    }
    int rc = 0;
#define IS(name) (et->bytes_len == sizeof name - 1 && memcmp(et->bytes, name, sizeof name - 1) == 0)
    if (IS("messageStart")) {
        rc = delta_chunk(s, f->fn, f->ud, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
    } else if (IS("contentBlockStart")) {
        rc = tool_start(s, f->fn, f->ud, ev);
    } else if (IS("contentBlockDelta")) {
        rc = block_delta(s, f->fn, f->ud, ev);
    } else if (IS("messageStop")) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(ev, "stopReason");
        rc = delta_chunk(s, f->fn, f->ud, "{}",
                         bedrock_finish_reason(cJSON_IsString(r) ? r->valuestring : NULL));
    } else if (IS("metadata")) {
        rc = usage_chunk(s, f->fn, f->ud, ev);
    }
#undef IS
    cJSON_Delete(ev);
    if (rc < 0) { /* an event that does not say what its type says */
        struct provider_event bad = {
            .kind = PROVIDER_EV_BAD, .data = m->payload, .len = m->payload_len};
        rc = f->fn(f->ud, &bad);
        return rc ? rc : 1;
    }
    return rc;
}

static int bedrock_feed(struct provider_stream *s, const char *data, size_t len,
                        provider_event_fn fn, void *ud)
{
    struct feed_ctx f = {s, fn, ud};
    int rc = evs_parser_feed(&s->evs, data, len, on_message, &f, NULL);
    return rc < 0 ? PROVIDER_FEED_BAD : rc;
}

/* Converse's whole answer as a chat.completion in s->out. */
static int bedrock_answer(struct provider_stream *s, const char *body, size_t len,
                          struct provider_event *ev)
{
    memset(ev, 0, sizeof *ev);
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *output = cJSON_GetObjectItemCaseSensitive(j, "output");
    const cJSON *msg = output ? cJSON_GetObjectItemCaseSensitive(output, "message") : NULL;
    const cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!s || !cJSON_IsArray(content)) {
        cJSON_Delete(j);
        return -1;
    }
    struct buf text, reasoning, calls;
    buf_init(&text, 0);
    buf_init(&reasoning, 0);
    buf_init(&calls, 0);
    int rc = 0;
    unsigned ncalls = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
        const cJSON *tu = cJSON_GetObjectItemCaseSensitive(b, "toolUse");
        const cJSON *rcn = cJSON_GetObjectItemCaseSensitive(b, "reasoningContent");
        if (cJSON_IsString(t)) {
            rc |= buf_append_str(&text, t->valuestring);
        } else if (cJSON_IsObject(tu)) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(tu, "toolUseId");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(tu, "name");
            const cJSON *input = cJSON_GetObjectItemCaseSensitive(tu, "input");
            char *args = input ? cJSON_PrintUnformatted(input) : NULL;
            if (!cJSON_IsString(id) || !cJSON_IsString(name) || !args) {
                free(args);
                rc = -1;
                break;
            }
            rc |= buf_printf(&calls, "%s{\"id\":", ncalls++ ? "," : "");
            rc |= buf_append_json_str(&calls, id->valuestring, strlen(id->valuestring));
            rc |= buf_append_str(&calls, ",\"type\":\"function\",\"function\":{\"name\":");
            rc |= buf_append_json_str(&calls, name->valuestring, strlen(name->valuestring));
            rc |= buf_append_str(&calls, ",\"arguments\":");
            rc |= buf_append_json_str(&calls, args, strlen(args));
            rc |= buf_append_str(&calls, "}}");
            free(args);
        } else if (cJSON_IsObject(rcn)) {
            const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rcn, "reasoningText");
            const cJSON *rtt = rt ? cJSON_GetObjectItemCaseSensitive(rt, "text") : NULL;
            if (cJSON_IsString(rtt)) rc |= buf_append_str(&reasoning, rtt->valuestring);
        }
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stopReason");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (rc == 0) {
        rc = chunk_head(s, "chat.completion");
        rc |= buf_append_str(
            &s->out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        rc |= text.len || !ncalls
                  ? buf_append_json_str(&s->out, text.data ? text.data : "", text.len)
                  : buf_append_str(&s->out, "null");
        if (reasoning.len)
            rc |= buf_append_str(&s->out, ",\"reasoning_content\":") |
                  buf_append_json_str(&s->out, reasoning.data, reasoning.len);
        if (ncalls) rc |= buf_printf(&s->out, ",\"tool_calls\":[%.*s]", (int)calls.len, calls.data);
        rc |= buf_printf(&s->out, "},\"finish_reason\":\"%s\"}]",
                         bedrock_finish_reason(cJSON_IsString(stop) ? stop->valuestring : NULL));
        if (cJSON_IsObject(usage)) rc |= buf_append_str(&s->out, ",") | usage_json(&s->out, usage);
        rc |= buf_append_str(&s->out, "}");
    }
    buf_free(&text);
    buf_free(&reasoning);
    buf_free(&calls);
    cJSON_Delete(j);
    if (rc < 0) return -1;
    ev->data = s->out.data;
    ev->len = s->out.len;
    if (jsonx_scan_chunk(ev->data, ev->len, &ev->chunk) < 0 || !ev->chunk.valid) return -1;
    provider_classify(ev);
    return 0;
}

/* Bedrock's exceptions by name (the body's __type, as "ThrottlingException" or with a
   namespace before '#'); without one, the status says it. */
enum provider_error bedrock_map_error(int status, const char *body, size_t len)
{
    static const struct {
        const char *name;
        enum provider_error e;
    } names[] = {
        {"ThrottlingException", PROVIDER_ERR_RATE_LIMITED},
        {"ServiceUnavailableException", PROVIDER_ERR_RATE_LIMITED},
        {"ModelNotReadyException", PROVIDER_ERR_RATE_LIMITED},
        {"ServiceQuotaExceededException", PROVIDER_ERR_RATE_LIMITED},
        {"ModelTimeoutException", PROVIDER_ERR_TIMEOUT},
        {"ValidationException", PROVIDER_ERR_CLIENT},
        {"AccessDeniedException", PROVIDER_ERR_AUTH},
        {"UnrecognizedClientException", PROVIDER_ERR_AUTH},
        {"ExpiredTokenException", PROVIDER_ERR_AUTH},
        {"InvalidSignatureException", PROVIDER_ERR_AUTH},
        {"ResourceNotFoundException", PROVIDER_ERR_STATUS},
        {"ModelErrorException", PROVIDER_ERR_SERVER},
        {"InternalServerException", PROVIDER_ERR_SERVER},
    };
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "__type");
    if (cJSON_IsString(type)) {
        const char *t = strrchr(type->valuestring, '#');
        t = t ? t + 1 : type->valuestring;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strncmp(t, names[i].name, strlen(names[i].name)) == 0) {
                cJSON_Delete(j);
                return names[i].e;
            }
    }
    cJSON_Delete(j);
    switch (status) {
    case 400:
    case 413:
        return PROVIDER_ERR_CLIENT;
    case 401:
    case 403:
        return PROVIDER_ERR_AUTH;
    case 408:
        return PROVIDER_ERR_TIMEOUT;
    case 429:
    case 503:
        return PROVIDER_ERR_RATE_LIMITED; /* throttled, not ready, or busy: back off */
    }
    return status >= 500 || status == 424 ? PROVIDER_ERR_SERVER : PROVIDER_ERR_STATUS;
}

/* Shallow: a signed GET of / (any answer under 500 says the service is there). Deep: the
   smallest Converse call. */
static int bedrock_probe(const struct cfg_provider *pv, const char *deep_model,
                         struct provider_request *r)
{
    if (!deep_model) {
        r->method = "GET";
        r->path = "/";
        return 0;
    }
    r->method = "POST";
    if (model_path(r, deep_model, "/converse") < 0) return -1;
    return buf_append_str(&r->body,
                          "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"ping\"}]}],"
                          "\"inferenceConfig\":{\"maxTokens\":1}}") |
           buf_append_str(&r->head, "Content-Type: application/json\r\n");
}

bool bedrock_probe_ok(bool deep, int status)
{
    return deep ? status >= 200 && status < 300 : status > 0 && status < 500;
}

const struct provider_ops provider_bedrock_ops = {
    .name = "bedrock-converse",
    .build = bedrock_build,
    .continuation = bedrock_continuation,
    .sign = aws_sign,
    .head = aws_head,
    .feed = bedrock_feed,
    .answer = bedrock_answer,
    .map_error = bedrock_map_error,
    .probe = bedrock_probe,
    .probe_ok = bedrock_probe_ok,
};
