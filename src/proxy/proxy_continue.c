/*
 * continue_on_cut (experimental, off by default): when a stream client's
 * answer breaks after it has started, ask another deployment to continue it
 * instead of ending the stream with an error event.
 *
 * While the option is on, the text relayed to the client is kept (bounded by
 * PROXY_MAX_PARTIAL). On a cut, the request is sent again with that text as a
 * trailing assistant message, and the new deployment's content events are
 * spliced into the same stream (its role-only first chunk is not repeated).
 * Limits, said in docs/resilience.md: only chat completions with one choice;
 * whether a provider continues a trailing assistant message rather than
 * starting a new turn depends on the provider (DeepSeek's prefix completion,
 * vLLM's continue_final_message do; others may repeat themselves); reasoning
 * text is not carried over; usage is the continuation's own; at most one
 * continuation per request.
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "proxy/proxy_int.h"

#define PROXY_MAX_PARTIAL (1u << 20)

bool proxy_continue_enabled(const struct preq *p)
{
    return p->model->resilience.continue_on_cut && p->client_stream && p->api == PROXY_API_CHAT;
}

void proxy_continue_note(struct preq *p, const char *data, size_t len)
{
    if (!proxy_continue_enabled(p) || p->continued)
        return;
    cJSON *j = cJSON_ParseWithLength(data, len);
    const cJSON *choices = j ? cJSON_GetObjectItemCaseSensitive(j, "choices") : NULL;
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    const cJSON *delta = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "delta") : NULL;
    const cJSON *content = delta ? cJSON_GetObjectItemCaseSensitive(delta, "content") : NULL;
    if (cJSON_IsString(content) && content->valuestring[0]) {
        if (!p->partial.data)
            buf_init(&p->partial, PROXY_MAX_PARTIAL);
        if (buf_append_str(&p->partial, content->valuestring) < 0)
            p->partial_overflow = true;
    }
    cJSON_Delete(j);
}

/* The original body with the partial answer as a trailing assistant message. */
static char *continuation_body(struct preq *p, size_t *len)
{
    cJSON *j = cJSON_ParseWithLength(p->body, p->body_len);
    cJSON *messages = j ? cJSON_GetObjectItemCaseSensitive(j, "messages") : NULL;
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", p->partial.data);
    cJSON_AddItemToArray(messages, m);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (out)
        *len = strlen(out);
    return out;
}

bool proxy_continue_try(struct preq *p)
{
    if (!proxy_continue_enabled(p) || p->continued || !p->partial.len || p->partial_overflow ||
        proxy_remaining_ms(p) == 0)
        return false;
    size_t len = 0;
    char *body = continuation_body(p, &len);
    if (!body)
        return false;
    struct jsonx_request scan;
    if (jsonx_scan_request(body, len, &scan) < 0) {
        free(body);
        return false;
    }
    /* From here on the request's body is the continuation's. */
    free(p->body);
    p->body = body;
    p->body_len = len;
    p->scan = scan;
    p->continued = true;
    log_info("request %s: the stream broke after %zu bytes of content; asking another deployment "
             "to continue it",
             server_conn_request(p->conn)->request_id, p->partial.len);
    return true;
}
