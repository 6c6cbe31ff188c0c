/*
 * continue_on_cut (experimental, off by default): when a stream client's
 * answer breaks after it has started, ask another deployment to continue it
 * instead of ending the stream with an error event.
 *
 * While the option is on, the text relayed to the client is kept (bounded by
 * PROXY_MAX_PARTIAL). On a cut, the request is sent again with that text to
 * continue (the wire format says how: provider.h, provider_call.continue_text;
 * for the OpenAI format a trailing assistant message), and the new deployment's content events are
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

bool proxy_continue_try(struct preq *p)
{
    if (!proxy_continue_enabled(p) || p->continued || !p->partial.len || p->partial_overflow ||
        proxy_remaining_ms(p) == 0)
        return false;
    /* The request stays the client's: the provider's wire format builds the continuation from
       it and p->partial (the OpenAI format as a trailing assistant message). The prompt the
       provider reads now holds the partial answer too. */
    p->scan.prompt_chars += p->partial.len;
    p->continued = true;
    log_info("request %s: the stream broke after %zu bytes of content; asking another deployment "
             "to continue it",
             server_conn_request(p->conn)->request_id, p->partial.len);
    return true;
}
