/*
 * provider.c — what every wire format shares: the ops of a provider, the
 * assembly around build and sign, Retry-After, the stream state.
 */
#include "provider/provider.h"

#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "net/uphttp.h"

const struct provider_ops *provider_ops_of(const struct cfg_provider *pv)
{
    switch (pv->wire) {
    case CFG_WIRE_OPENAI:
        break;
    case CFG_WIRE_BEDROCK_CONVERSE:
        return &provider_bedrock_ops;
    case CFG_WIRE_SAGEMAKER:
        return &provider_sagemaker_ops;
    }
    return &provider_openai_ops;
}

void provider_classify(struct provider_event *ev)
{
    const struct jsonx_chunk *ch = &ev->chunk;
    ev->kind = ch->has_error ? PROVIDER_EV_ERROR : PROVIDER_EV_CHUNK;
    ev->what = (ch->has_content ? PROVIDER_HAS_CONTENT : 0) | (ch->has_finish ? PROVIDER_HAS_FINISH : 0) |
               (ch->has_usage ? PROVIDER_HAS_USAGE : 0) |
               (ch->has_usage && ch->choices_empty ? PROVIDER_USAGE_ONLY : 0);
}

enum cfg_continuation provider_continuation(const struct cfg_provider *pv)
{
    return provider_ops_of(pv)->continuation(pv);
}

const char *provider_continuation_name(enum cfg_continuation c)
{
    switch (c) {
    case CFG_CONTINUATION_AUTO: return "auto";
    case CFG_CONTINUATION_PREFIX: return "prefix";
    case CFG_CONTINUATION_CONTINUE_FINAL: return "continue_final_message";
    case CFG_CONTINUATION_ASSISTANT_MESSAGE: return "assistant_message";
    case CFG_CONTINUATION_OFF: return "off";
    }
    return "?";
}

static void request_init(struct provider_request *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->head, 0);
    buf_init(&r->body, 0);
    buf_init(&r->path_buf, 0);
}

static void request_free(struct provider_request *r)
{
    buf_free(&r->head);
    buf_free(&r->body);
    buf_free(&r->path_buf);
}

/* r holds what build (or probe) made: the common head goes before its headers, then the
   caller's, Content-Length, the auth step over the finished head, the blank line and the body. */
static char *finish(const struct provider_ops *ops, const struct cfg_provider *pv, struct provider_request *r,
                    const char *extra_headers, const char *user_agent, size_t *len)
{
    struct buf head;
    buf_init(&head, 0);
    struct cfg_provider other_base; /* the same provider under another base path (a beta API) */
    const struct cfg_provider *target = pv;
    if (r->base_path) {
        other_base = *pv;
        other_base.base_path = (char *)r->base_path;
        target = &other_base;
    }
    const char *path = r->path;
    if (r->path_buf.len) {
        if (buf_append(&r->path_buf, "", 1) < 0) { /* NUL-terminated for the request line */
            buf_free(&head);
            request_free(r);
            return NULL;
        }
        path = r->path_buf.data;
    }
    /* the whole request (head, then body) in one allocation: room for the usual head up front */
    buf_reserve(&head,
                512 + r->head.len + r->body.len + (extra_headers ? strlen(extra_headers) : 0));
    int rc = uphttp_request_head(&head, target, r->method, path, user_agent);
    rc |= buf_append(&head, r->head.data ? r->head.data : "", r->head.len);
    if (extra_headers)
        rc |= buf_append_str(&head, extra_headers);
    if (r->body.len || strcmp(r->method, "GET") != 0) {
        rc |= buf_append_lit(&head, "Content-Length: ");
        rc |= buf_append_u64(&head, r->body.len);
        rc |= buf_append_lit(&head, "\r\n");
    }
    buf_free(&r->head);
    r->head = head;
    if (rc < 0 || ops->sign(pv, r) < 0 || buf_append_str(&r->head, "\r\n") < 0 ||
        buf_append(&r->head, r->body.data ? r->body.data : "", r->body.len) < 0) {
        request_free(r);
        return NULL;
    }
    char *out = buf_steal(&r->head, len);
    request_free(r);
    return out;
}

char *provider_request(const struct provider_ops *ops, const struct provider_call *c, size_t *len)
{
    struct provider_request r;
    request_init(&r);
    if (ops->build(c, &r) < 0) {
        request_free(&r);
        return NULL;
    }
    return finish(ops, c->provider, &r, c->extra_headers, c->user_agent, len);
}

char *provider_probe_request(const struct provider_ops *ops, const struct cfg_provider *pv,
                             const char *deep_model, const char *user_agent, size_t *len)
{
    struct provider_request r;
    request_init(&r);
    if (ops->probe(pv, deep_model, &r) < 0) {
        request_free(&r);
        return NULL;
    }
    return finish(ops, pv, &r, NULL, user_agent, len);
}

int provider_retry_after_s(const struct http1_response *resp, int64_t now_unix_s)
{
    const struct http1_str *v = http1_find_header(&resp->head, "retry-after");
    return v ? http1_retry_after_s(v->p, v->len, now_unix_s) : -1;
}

/* A stream's kept chunk: 0.7 KB that only a stream with content needs (not an idle second
   attempt, nor a whole-body answer). */
static __thread struct pool kept_pool = POOL_INIT(sizeof(struct chunk_shape_scan), 64);

void provider_stream_init(struct provider_stream *s, size_t max_event_bytes)
{
    memset(s, 0, sizeof *s);
    sse_parser_init(&s->sse, max_event_bytes);
    /* an AWS message carries one event (or a SageMaker payload part) and its headers */
    evs_parser_init(&s->evs, (max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT) + 64 * 1024);
    buf_init(&s->out, 2 * (max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT) + 4096);
    s->rename_reasoning = false;
    /* a rewritten event grows by the renamed keys only: twice the event's bound is ample */
    buf_init(&s->rewrite, 2 * (max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT));
}

void provider_stream_begin(struct provider_stream *s, const char *model)
{
    s->model = model;
}

void provider_stream_reset(struct provider_stream *s)
{
    sse_parser_reset(&s->sse);
    evs_parser_reset(&s->evs);
    buf_reset(&s->out);
    s->id[0] = '\0';
    s->created = 0;
    s->ntools = 0;
    memset(s->tool_of_block, 0, sizeof s->tool_of_block);
    pool_put(&kept_pool, s->kept);
    s->kept = NULL;
}

int provider_scan_chunk(struct provider_stream *s, const char *data, size_t len,
                        struct jsonx_chunk *out)
{
    if (!s->kept) {
        s->kept = pool_get(&kept_pool);
        if (!s->kept) return jsonx_scan_chunk(data, len, out);
        chunk_shape_scan_reset(s->kept);
    }
    return chunk_shape_scan(s->kept, data, len, out);
}

void provider_stream_free(struct provider_stream *s)
{
    sse_parser_free(&s->sse);
    evs_parser_free(&s->evs);
    buf_free(&s->out);
    buf_free(&s->rewrite);
    pool_put(&kept_pool, s->kept);
    s->kept = NULL;
}
