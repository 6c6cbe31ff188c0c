/*
 * openai — the OpenAI-compatible wire format: OpenAI itself, DeepSeek, vLLM,
 * llama.cpp, Azure's key header, any server that speaks /chat/completions.
 *
 * Request: POST base_path + /chat/completions, /completions or /embeddings,
 * the client's body with the deployment's model (and stream + include_usage
 * when a stream is asked for). A continuation is the same body with the
 * answer so far as a trailing assistant message, marked as the provider
 * wants it continued (cfg_provider.continuation: DeepSeek's "prefix": true
 * on its beta base path, vLLM's and SGLang's continue_final_message, or
 * nothing). Auth is one header:
 * auth_header: auth_prefix + api_key ("Authorization: Bearer KEY" by default,
 * "api-key: KEY", or a raw token with auth_prefix "").
 *
 * Reply: text/event-stream of "data: {chunk}" events ending with
 * "data: [DONE]", or a whole JSON answer; errors as a status with a JSON
 * body, or an {"error":...} event inside the stream. The chunks are already
 * what the client reads, so an event's data is relayed as it came.
 */
#include "provider/provider.h"

#include "config/presets.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *api_path(enum provider_api api)
{
    switch (api) {
    case PROVIDER_API_CHAT:
        return "/chat/completions";
    case PROVIDER_API_COMPLETIONS:
        return "/completions";
    case PROVIDER_API_EMBEDDINGS:
        return "/embeddings";
    }
    return "/";
}

/* DeepSeek serves chat prefix completion on its beta base URL only ("Chat Prefix Completion
   (Beta)": base_url https://api.deepseek.com/beta). */
#define DEEPSEEK_HOST "api.deepseek.com"
#define DEEPSEEK_BETA_BASE_PATH "/beta"

static bool deepseek_host(const struct cfg_provider *pv)
{
    return pv->host && strcasecmp(pv->host, DEEPSEEK_HOST) == 0;
}

/* auto is the preset's mechanism; openai-compatible (and a provider built by hand) goes by
   the host. */
static enum cfg_continuation openai_continuation(const struct cfg_provider *pv)
{
    if (pv->continuation != CFG_CONTINUATION_AUTO)
        return pv->continuation;
    if (pv->preset && pv->preset->continuation != CFG_CONTINUATION_AUTO)
        return pv->preset->continuation;
    return deepseek_host(pv) ? CFG_CONTINUATION_PREFIX : CFG_CONTINUATION_ASSISTANT_MESSAGE;
}

/* The base path prefix continuation is served under, or NULL for the provider's own. */
static const char *prefix_base_path(const struct cfg_provider *pv)
{
    if (pv->preset && pv->preset->prefix_base_path)
        return pv->preset->prefix_base_path;
    return (!pv->preset || pv->type == CFG_TYPE_OPENAI_COMPATIBLE) && deepseek_host(pv) ? DEEPSEEK_BETA_BASE_PATH
                                                                                       : NULL;
}

/* obj[key] = item, replacing a member of that name; false when out of memory (item freed). */
static bool set_member(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return false;
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    if (cJSON_AddItemToObject(obj, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

/* What is left of a token limit once `spent` tokens have been generated (at least 1). */
static bool lower_limit(cJSON *j, const char *key, int64_t spent)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || spent <= 0)
        return true;
    double left = v->valuedouble - (double)spent;
    return set_member(j, key, cJSON_CreateNumber(left < 1 ? 1 : left));
}

static bool apply_quirks(const struct provider_call *c, cJSON *j);

/*
 * The client's body turned into the continuation of the answer so far (malloc'd):
 * the text as the trailing assistant message (appended to one the client already ended
 * with, which it meant as a prefix of the answer), and what the mechanism adds:
 *   prefix                  "prefix": true on that message (DeepSeek)
 *   continue_final_message  "continue_final_message": true, "add_generation_prompt": false
 *                           at the top level (vLLM, SGLang: the chat template leaves the
 *                           message open instead of starting a new assistant turn)
 *   assistant_message       nothing: the provider may or may not read it as a prefix
 * Token limits lose what was already generated.
 */
static char *continuation_body(const struct provider_call *c, enum cfg_continuation how, size_t *len)
{
    cJSON *j = cJSON_ParseWithLength(c->body, c->body_len);
    cJSON *messages = j ? cJSON_GetObjectItemCaseSensitive(j, "messages") : NULL;
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *role = last ? cJSON_GetObjectItemCaseSensitive(last, "role") : NULL;
    const cJSON *content = last ? cJSON_GetObjectItemCaseSensitive(last, "content") : NULL;
    bool extend = cJSON_IsString(role) && strcmp(role->valuestring, "assistant") == 0 && cJSON_IsString(content);
    struct buf text;
    buf_init(&text, 0);
    bool ok = (!extend || buf_append_str(&text, content->valuestring) == 0) &&
              buf_append(&text, c->continue_text, c->continue_len) == 0 && buf_append(&text, "", 1) == 0;
    cJSON *m = extend ? last : NULL;
    if (ok && !m) {
        m = cJSON_CreateObject();
        ok = m && cJSON_AddStringToObject(m, "role", "assistant") && cJSON_AddItemToArray(messages, m);
        if (!ok)
            cJSON_Delete(m);
    }
    ok = ok && set_member(m, "content", cJSON_CreateString(text.data));
    if (ok && how == CFG_CONTINUATION_PREFIX)
        ok = set_member(m, "prefix", cJSON_CreateTrue());
    if (ok && how == CFG_CONTINUATION_CONTINUE_FINAL)
        ok = set_member(j, "continue_final_message", cJSON_CreateTrue()) &&
             set_member(j, "add_generation_prompt", cJSON_CreateFalse());
    ok = ok && apply_quirks(c, j) && lower_limit(j, "max_tokens", c->continue_tokens) &&
         lower_limit(j, "max_completion_tokens", c->continue_tokens);
    char *out = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    buf_free(&text);
    if (out)
        *len = strlen(out);
    return out;
}

/*
 * What a provider's quirks change in the client's body, on the parsed body j:
 * reasoning_content leaves the messages that carry no tool call (DeepSeek answers 400 when
 * a previous answer's reasoning comes back; its thinking mode wants it back beside a tool
 * call), and a token limit above the deployment's cap is lowered to the cap.
 */
static bool apply_quirks(const struct provider_call *c, cJSON *j)
{
    if (c->provider->strip_reasoning_history) {
        cJSON *m, *messages = cJSON_GetObjectItemCaseSensitive(j, "messages");
        cJSON_ArrayForEach(m, messages)
        {
            if (cJSON_IsObject(m) && !cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
                cJSON_DeleteItemFromObjectCaseSensitive(m, "reasoning_content");
        }
    }
    if (c->max_tokens_limit) {
        static const char *const keys[] = {"max_tokens", "max_completion_tokens"};
        for (size_t i = 0; i < 2; i++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
            if (cJSON_IsNumber(v) && v->valuedouble > (double)c->max_tokens_limit &&
                !set_member(j, keys[i], cJSON_CreateNumber((double)c->max_tokens_limit)))
                return false;
        }
    }
    return true;
}

/* Whether the client's body needs apply_quirks: a cheap look first, so the common request
   is rewritten by the scan alone. */
static bool needs_quirks(const struct provider_call *c)
{
    const struct cfg_provider *pv = c->provider;
    if (c->max_tokens_limit && c->scan->has_max_tokens && c->scan->max_tokens > (int64_t)c->max_tokens_limit)
        return true;
    return pv->strip_reasoning_history && c->api == PROVIDER_API_CHAT &&
           memmem(c->body, c->body_len, "reasoning_content", 17) != NULL;
}

/* The body with the quirks applied (malloc'd, *len set), or NULL. */
static char *quirked_body(const struct provider_call *c, size_t *len)
{
    cJSON *j = cJSON_ParseWithLength(c->body, c->body_len);
    char *out = j && apply_quirks(c, j) ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (out)
        *len = strlen(out);
    return out;
}

/* Appends s to the path, each byte outside RFC 3986's unreserved set percent-encoded. */
static int append_segment(struct buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~')
            rc = buf_append(b, s, 1);
        else
            rc = buf_printf(b, "%%%02X", ch);
    }
    return rc;
}

/* Azure's deployment path (/openai/deployments/{model}/chat/completions) and its
   api-version; nothing for a provider with neither (r->path stays). */
static int provider_path(const struct provider_call *c, struct provider_request *r)
{
    const struct cfg_provider *pv = c->provider;
    if (!pv->deployment_paths && !pv->api_version)
        return 0;
    int rc = 0;
    if (pv->deployment_paths) {
        rc |= buf_append_str(&r->path_buf, "/openai/deployments/");
        rc |= append_segment(&r->path_buf, c->model);
    }
    rc |= buf_append_str(&r->path_buf, r->path);
    if (pv->api_version) {
        rc |= buf_append_str(&r->path_buf, "?api-version=");
        rc |= append_segment(&r->path_buf, pv->api_version);
    }
    return rc;
}

static int openai_build(const struct provider_call *c, struct provider_request *r)
{
    r->method = "POST";
    r->path = api_path(c->api);
    if (provider_path(c, r) < 0)
        return -1;
    int rc;
    if (c->continue_text) {
        enum cfg_continuation how = openai_continuation(c->provider);
        if (how == CFG_CONTINUATION_OFF)
            return -1; /* the proxy does not send a continuation here */
        if (how == CFG_CONTINUATION_PREFIX)
            r->base_path = prefix_base_path(c->provider);
        size_t len = 0;
        char *body = continuation_body(c, how, &len);
        struct jsonx_request scan;
        rc = body && jsonx_scan_request(body, len, &scan) == 0
                 ? jsonx_rewrite_request(body, len, &scan, c->model, c->stream, &r->body)
                 : -1;
        free(body);
    } else if (needs_quirks(c)) {
        size_t len = 0;
        char *body = quirked_body(c, &len);
        struct jsonx_request scan;
        rc = body && jsonx_scan_request(body, len, &scan) == 0
                 ? jsonx_rewrite_request(body, len, &scan, c->model, c->stream, &r->body)
                 : -1;
        free(body);
    } else {
        buf_reserve(&r->body,
                    c->body_len + 128); /* the rewrite adds a few members: one allocation */
        rc = jsonx_rewrite_request(c->body, c->body_len, c->scan, c->model, c->stream, &r->body);
    }
    if (rc < 0)
        return -1;
    return c->stream
               ? buf_append_lit(&r->head,
                                "Content-Type: application/json\r\nAccept: text/event-stream\r\n")
               : buf_append_lit(&r->head,
                                "Content-Type: application/json\r\nAccept: application/json\r\n");
}

static int openai_sign(const struct cfg_provider *pv, struct provider_request *r)
{
    if (!pv->api_key)
        return 0;
    int rc = buf_append_str(&r->head, pv->auth_header ? pv->auth_header : "Authorization");
    rc |= buf_append_lit(&r->head, ": ");
    rc |= buf_append_str(&r->head, pv->auth_prefix ? pv->auth_prefix : "Bearer ");
    rc |= buf_append_str(&r->head, pv->api_key);
    return rc | buf_append_lit(&r->head, "\r\n");
}

static enum provider_head openai_head(const struct http1_response *resp, bool asked_stream)
{
    if (resp->status != 200)
        return PROVIDER_HEAD_ERROR;
    const struct http1_str *ct = http1_find_header(&resp->head, "content-type");
    bool sse = ct && ct->len >= 17 && strncasecmp(ct->p, "text/event-stream", 17) == 0;
    return sse && asked_stream ? PROVIDER_HEAD_STREAM : PROVIDER_HEAD_ANSWER;
}


struct feed_ctx {
    provider_event_fn fn;
    void *ud;
    struct provider_stream *s;
};

/*
 * vLLM names the reasoning delta "reasoning" where DeepSeek and the OpenAI SDKs' users read
 * "reasoning_content": data rewritten into out with every key "reasoning" renamed. A string
 * walk (a key is a string followed by ':'), so the text of a value is never touched. Returns
 * 1 when something was renamed (out holds the event), 0 when not, -1 when out is full.
 */
static int rename_reasoning(const char *data, size_t len, struct buf *out)
{
    static const char key[] = "\"reasoning\"";
    const size_t klen = sizeof key - 1;
    if (!memmem(data, len, key, klen))
        return 0;
    buf_reset(out);
    size_t copied = 0;
    bool renamed = false;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '"')
            continue;
        size_t start = i++;
        while (i < len && data[i] != '"')
            i += data[i] == '\\' ? 2 : 1;
        if (i >= len)
            break;
        size_t after = i + 1;
        while (after < len && (data[after] == ' ' || data[after] == '\t' || data[after] == '\r' || data[after] == '\n'))
            after++;
        if (i + 1 - start == klen && memcmp(data + start, key, klen) == 0 && after < len && data[after] == ':') {
            if (buf_append(out, data + copied, start - copied) < 0 || buf_append_str(out, "\"reasoning_content\"") < 0)
                return -1;
            copied = i + 1;
            renamed = true;
        }
    }
    if (!renamed)
        return 0;
    return buf_append(out, data + copied, len - copied) < 0 ? -1 : 1;
}

static int on_item(void *ud, const struct sse_item *it)
{
    struct feed_ctx *f = ud;
    struct provider_event ev;
    ev.what = 0;
    ev.scan = NULL;
    ev.data = it->data;
    ev.len = it->data_len;
    ev.framed = false;
    if (it->kind == SSE_COMMENT) {
        ev.kind = PROVIDER_EV_KEEPALIVE;
        return f->fn(f->ud, &ev);
    }
    if (it->data_len == 6 && memcmp(it->data, "[DONE]", 6) == 0) {
        ev.kind = PROVIDER_EV_DONE;
        return f->fn(f->ud, &ev);
    }
    if (f->s->rename_reasoning) {
        int rc = rename_reasoning(it->data, it->data_len, &f->s->rewrite);
        if (rc < 0) {
            ev.kind = PROVIDER_EV_BAD;
            return f->fn(f->ud, &ev);
        }
        if (rc > 0) {
            ev.data = f->s->rewrite.data;
            ev.len = f->s->rewrite.len;
        }
    }
    ev.framed = it->framed && ev.data == it->data;
    int rc = provider_scan_chunk(f->s, ev.data, ev.len, &ev.chunk);
    ev.scan = f->s->kept;
    if (rc < 0 || !ev.chunk.valid)
        ev.kind = PROVIDER_EV_BAD;
    else
        provider_classify(&ev);
    return f->fn(f->ud, &ev);
}

static int openai_feed(struct provider_stream *s, const char *data, size_t len, provider_event_fn fn, void *ud)
{
    struct feed_ctx f = {fn, ud, s};
    int rc = sse_parser_feed(&s->sse, data, len, on_item, &f, NULL);
    return rc < 0 ? PROVIDER_FEED_BAD : rc;
}

static int openai_answer(struct provider_stream *s, const char *body, size_t len, struct provider_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->data = body;
    ev->len = len;
    if (jsonx_scan_chunk(body, len, &ev->chunk) < 0 || !ev->chunk.valid)
        return -1;
    provider_classify(ev);
    return 0;
}

/* A page from something in front of the provider (a load balancer's or CDN's HTML),
   not the provider's own JSON. */
static bool looks_like_html(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '<';
}

static enum provider_error openai_map_error(int status, const char *body, size_t len)
{
    if (status == 400 || status == 413 || status == 422)
        return PROVIDER_ERR_CLIENT; /* every deployment would say the same */
    if (status == 429)
        return PROVIDER_ERR_RATE_LIMITED;
    if (status == 401 || status == 402 || status == 403)
        return PROVIDER_ERR_AUTH;
    if (status >= 500)
        return looks_like_html(body, len) ? PROVIDER_ERR_BAD_REPLY : PROVIDER_ERR_SERVER;
    return PROVIDER_ERR_STATUS;
}

/* Shallow: GET probe.path (default /models). Deep: the smallest chat completion. Both with
   the provider's api-version (Azure) and deployment path. */
static int openai_probe(const struct cfg_provider *pv, const char *deep_model, struct provider_request *r)
{
    if (!deep_model) {
        r->method = "GET";
        r->path = pv->probe.path ? pv->probe.path : "/models";
        if (pv->api_version &&
            (buf_append_str(&r->path_buf, r->path) < 0 || buf_append_str(&r->path_buf, "?api-version=") < 0 ||
             append_segment(&r->path_buf, pv->api_version) < 0))
            return -1;
        return 0;
    }
    r->method = "POST";
    r->path = "/chat/completions";
    struct provider_call c = {.provider = pv, .model = deep_model};
    if (provider_path(&c, r) < 0)
        return -1;
    int rc = buf_append_str(&r->body, "{\"model\":");
    rc |= buf_append_json_str(&r->body, deep_model, strlen(deep_model));
    rc |= buf_append_str(&r->body, ",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],\"max_tokens\":1,"
                                   "\"stream\":false}");
    rc |= buf_append_str(&r->head, "Content-Type: application/json\r\n");
    return rc;
}

static bool openai_probe_ok(bool deep, int status)
{
    return status >= 200 && status < 300;
}

const struct provider_ops provider_openai_ops = {
    .name = "openai",
    .build = openai_build,
    .continuation = openai_continuation,
    .sign = openai_sign,
    .head = openai_head,
    .feed = openai_feed,
    .answer = openai_answer,
    .map_error = openai_map_error,
    .probe = openai_probe,
    .probe_ok = openai_probe_ok,
};
