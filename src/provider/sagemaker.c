/*
 * sagemaker — an AWS SageMaker endpoint serving an OpenAI-compatible container
 * (vLLM, TGI's Messages API, LMI): POST /endpoints/{name}/invocations for a
 * whole answer, /endpoints/{name}/invocations-response-stream for a stream, on
 * runtime.sagemaker.{region}.amazonaws.com, signed with SigV4 (service
 * "sagemaker").
 *
 * The deployment's model is "ENDPOINT" or "ENDPOINT/MODEL": the endpoint in
 * the path, and MODEL (else the endpoint's name) as the body's model. The body
 * is the client's, as for the OpenAI format (provider_openai_ops.build).
 *
 * Reply: the stream is an AWS event stream of PayloadPart events whose bytes
 * are the container's own text/event-stream cut anywhere (a part may end in
 * the middle of a line, or of a UTF-8 character): each part's bytes go into
 * the OpenAI format's SSE parser, which joins them as one stream. A
 * ModelStreamError or InternalStreamFailure message is the provider's error
 * event. The whole answer is the container's OpenAI JSON.
 */
#include "provider/provider.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "provider/aws_sign.h"
#include "provider/bedrock.h"

/* "endpoint/model" split; the endpoint into ep (NUL-terminated). */
static const char *split_model(const char *model, char *ep, size_t cap)
{
    const char *slash = strchr(model, '/');
    size_t n = slash ? (size_t)(slash - model) : strlen(model);
    if (n == 0 || n >= cap) return NULL;
    memcpy(ep, model, n);
    ep[n] = '\0';
    return slash && slash[1] ? slash + 1 : ep;
}

static int endpoint_path(struct provider_request *r, const char *endpoint, const char *action)
{
    struct buf p;
    buf_init(&p, sizeof r->path_own - 1);
    int rc = buf_append_str(&p, "/endpoints/") | aws_path_segment(&p, endpoint) |
             buf_append_str(&p, action);
    if (rc == 0) {
        memcpy(r->path_own, p.data, p.len);
        r->path_own[p.len] = '\0';
        r->path = r->path_own;
    }
    buf_free(&p);
    return rc < 0 ? -1 : 0;
}

static enum cfg_continuation sagemaker_continuation(const struct cfg_provider *pv)
{
    /* the containers are vLLM, SGLang, TGI: what the OpenAI format would do for them */
    return pv->continuation == CFG_CONTINUATION_AUTO ? CFG_CONTINUATION_ASSISTANT_MESSAGE
                                                     : pv->continuation;
}

static int sagemaker_build(const struct provider_call *c, struct provider_request *r)
{
    char endpoint[64]; /* SageMaker's endpoint names are at most 63 characters */
    const char *body_model = split_model(c->model, endpoint, sizeof endpoint);
    if (!body_model) return -1;
    struct provider_call inner = *c;
    inner.model = body_model;
    if (provider_openai_ops.build(&inner, r) < 0) return -1;
    buf_reset(&r->head); /* the OpenAI format's headers: SageMaker's instead */
    if (endpoint_path(r, endpoint, c->stream ? "/invocations-response-stream" : "/invocations") < 0)
        return -1;
    return buf_printf(&r->head, "Content-Type: application/json\r\n%s",
                      c->stream ? "X-Amzn-SageMaker-Accept: text/event-stream\r\n"
                                  "Accept: application/vnd.amazon.eventstream\r\n"
                                : "Accept: application/json\r\n");
}

struct feed_ctx {
    struct provider_stream *s;
    provider_event_fn fn;
    void *ud;
    bool broken; /* the SSE inside the parts is broken (an oversized event) */
};

static int on_message(void *ud, const struct evs_message *m)
{
    struct feed_ctx *f = ud;
    int ex = bedrock_exception_event(f->s, m, f->fn, f->ud);
    if (ex != BEDROCK_NOT_EXCEPTION) return ex < 0 ? 1 : ex ? ex : 1;
    if (!evs_header_is(m, ":event-type", "PayloadPart")) return 0;
    int rc = provider_openai_ops.feed(f->s, m->payload, m->payload_len, f->fn, f->ud);
    if (rc < 0) {
        f->broken = true;
        return 1;
    }
    return rc;
}

static int sagemaker_feed(struct provider_stream *s, const char *data, size_t len,
                          provider_event_fn fn, void *ud)
{
    struct feed_ctx f = {s, fn, ud, false};
    int rc = evs_parser_feed(&s->evs, data, len, on_message, &f, NULL);
    return rc < 0 || f.broken ? PROVIDER_FEED_BAD : rc;
}

static int sagemaker_answer(struct provider_stream *s, const char *body, size_t len,
                            struct provider_event *ev)
{
    return provider_openai_ops.answer(s, body, len, ev);
}

/* SageMaker's own errors; a ModelError carries the container's status (OriginalStatusCode):
   a 4xx from the container is the client's request, as it would be from the OpenAI format. */
static enum provider_error sagemaker_map_error(int status, const char *body, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "__type");
    const cJSON *orig = cJSON_GetObjectItemCaseSensitive(j, "OriginalStatusCode");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    const char *hash = strrchr(t, '#');
    t = hash ? hash + 1 : t;
    enum provider_error e = PROVIDER_ERR_STATUS;
    bool known = true;
    if (strcmp(t, "ValidationError") == 0)
        e = PROVIDER_ERR_CLIENT;
    else if (strcmp(t, "ModelError") == 0 && cJSON_IsNumber(orig))
        e = orig->valueint == 429 ? PROVIDER_ERR_RATE_LIMITED
            : orig->valueint >= 400 && orig->valueint < 500 && orig->valueint != 401 &&
                    orig->valueint != 403
                ? PROVIDER_ERR_CLIENT
                : PROVIDER_ERR_SERVER;
    else if (strcmp(t, "ModelError") == 0 || strcmp(t, "InternalFailure") == 0 ||
             strcmp(t, "InternalDependencyException") == 0)
        e = PROVIDER_ERR_SERVER;
    else if (strcmp(t, "ServiceUnavailable") == 0)
        e = PROVIDER_ERR_RATE_LIMITED;
    else
        known = false;
    cJSON_Delete(j);
    return known ? e : bedrock_map_error(status, body, len);
}

/* Shallow: a signed GET of /. Deep: the smallest chat call to the endpoint. */
static int sagemaker_probe(const struct cfg_provider *pv, const char *deep_model,
                           struct provider_request *r)
{
    if (!deep_model) {
        r->method = "GET";
        r->path = "/";
        return 0;
    }
    char endpoint[64];
    const char *model = split_model(deep_model, endpoint, sizeof endpoint);
    r->method = "POST";
    if (!model || endpoint_path(r, endpoint, "/invocations") < 0) return -1;
    int rc = buf_append_str(&r->body, "{\"model\":");
    rc |= buf_append_json_str(&r->body, model, strlen(model));
    rc |= buf_append_str(
        &r->body, ",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],\"max_tokens\":1}");
    rc |= buf_append_str(&r->head, "Content-Type: application/json\r\n");
    return rc;
}

const struct provider_ops provider_sagemaker_ops = {
    .name = "sagemaker",
    .build = sagemaker_build,
    .continuation = sagemaker_continuation,
    .sign = aws_sign,
    .head = aws_head,
    .feed = sagemaker_feed,
    .answer = sagemaker_answer,
    .map_error = sagemaker_map_error,
    .probe = sagemaker_probe,
    .probe_ok = bedrock_probe_ok,
};
