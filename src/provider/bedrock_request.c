/*
 * bedrock_request.c — an OpenAI chat request as a Bedrock Converse request body.
 */
#include "provider/bedrock.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *text_block(const char *text)
{
    cJSON *b = cJSON_CreateObject();
    if (b && !cJSON_AddStringToObject(b, "text", text)) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

/* A data: URL of an image as a Converse image block (its base64 kept as it is: the JSON
   API carries bytes as base64); NULL with *why when it is not one. */
static cJSON *image_block(const char *url, const char **why)
{
    static const char *const formats[] = {"png", "jpeg", "gif", "webp"};
    if (strncmp(url, "data:image/", 11) != 0) {
        *why = "image_url: only data: URLs (data:image/png;base64,...) can be sent to Bedrock";
        return NULL;
    }
    const char *fmt = url + 11;
    const char *semi = strchr(fmt, ';');
    if (!semi || strncmp(semi, ";base64,", 8) != 0) {
        *why = "image_url: a data: URL must be base64 (data:image/png;base64,...)";
        return NULL;
    }
    size_t flen = (size_t)(semi - fmt);
    const char *format = NULL;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strlen(formats[i]) == flen && strncmp(fmt, formats[i], flen) == 0) format = formats[i];
    if (flen == 3 && strncmp(fmt, "jpg", 3) == 0) format = "jpeg";
    if (!format) {
        *why = "image_url: Bedrock takes png, jpeg, gif or webp images";
        return NULL;
    }
    cJSON *b = cJSON_CreateObject(), *img = cJSON_AddObjectToObject(b, "image");
    cJSON *src = img ? cJSON_AddObjectToObject(img, "source") : NULL;
    if (!src || !cJSON_AddStringToObject(img, "format", format) ||
        !cJSON_AddStringToObject(src, "bytes", semi + 8)) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

/* A message's content (a string or an array of parts) appended to blocks as text and image
   blocks. 0, -1 (memory) or -2 (*why). */
static int add_content(cJSON *blocks, const cJSON *content, bool images, const char **why)
{
    if (cJSON_IsString(content)) {
        if (!content->valuestring[0]) return 0; /* Converse refuses an empty text block */
        cJSON *b = text_block(content->valuestring);
        return b && cJSON_AddItemToArray(blocks, b) ? 0 : -1;
    }
    if (!content || cJSON_IsNull(content)) return 0;
    if (!cJSON_IsArray(content)) {
        *why = "a message's content must be a string or an array of parts";
        return -2;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        cJSON *b = NULL;
        if (strcmp(t, "text") == 0) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(text)) {
                *why = "a text part needs a text string";
                return -2;
            }
            if (!text->valuestring[0]) continue;
            b = text_block(text->valuestring);
        } else if (strcmp(t, "image_url") == 0 && images) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const cJSON *url =
                cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
            if (!cJSON_IsString(url)) {
                *why = "an image_url part needs a url";
                return -2;
            }
            if (!(b = image_block(url->valuestring, why))) return *why ? -2 : -1;
        } else {
            *why = "a content part of this type cannot be sent to Bedrock (text and image_url can)";
            return -2;
        }
        if (!b || !cJSON_AddItemToArray(blocks, b)) {
            cJSON_Delete(b);
            return -1;
        }
    }
    return 0;
}

/* The turn to add blocks to: the last one when it has this role (Converse wants the
   roles to alternate), else a new one. */
static cJSON *turn(cJSON *messages, const char *role)
{
    cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *r = last ? cJSON_GetObjectItemCaseSensitive(last, "role") : NULL;
    if (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0)
        return cJSON_GetObjectItemCaseSensitive(last, "content");
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddItemToArray(messages, m)) {
        cJSON_Delete(m);
        return NULL;
    }
    cJSON_AddStringToObject(m, "role", role);
    return cJSON_AddArrayToObject(m, "content");
}

static int add_tool_calls(cJSON *blocks, const cJSON *calls, const char **why)
{
    const cJSON *call;
    cJSON_ArrayForEach(call, calls)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        const cJSON *args = fn ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
        if (!cJSON_IsString(id) || !cJSON_IsString(name)) {
            *why = "an assistant tool call needs an id and a function name";
            return -2;
        }
        cJSON *input = cJSON_IsString(args) && args->valuestring[0] ? cJSON_Parse(args->valuestring)
                                                                    : cJSON_CreateObject();
        if (!cJSON_IsObject(input)) {
            cJSON_Delete(input);
            *why = "a tool call's arguments must be a JSON object to be sent to Bedrock";
            return -2;
        }
        cJSON *b = cJSON_CreateObject(), *tu = cJSON_AddObjectToObject(b, "toolUse");
        if (!tu || !cJSON_AddStringToObject(tu, "toolUseId", id->valuestring) ||
            !cJSON_AddStringToObject(tu, "name", name->valuestring) ||
            !cJSON_AddItemToObject(tu, "input", input) || !cJSON_AddItemToArray(blocks, b)) {
            cJSON_Delete(b);
            return -1;
        }
    }
    return 0;
}

static int add_tool_result(cJSON *blocks, const cJSON *msg, const char **why)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "tool_call_id");
    if (!cJSON_IsString(id)) {
        *why = "a tool message needs a tool_call_id";
        return -2;
    }
    cJSON *b = cJSON_CreateObject(), *tr = cJSON_AddObjectToObject(b, "toolResult");
    cJSON *content = tr ? cJSON_AddArrayToObject(tr, "content") : NULL;
    if (!content || !cJSON_AddStringToObject(tr, "toolUseId", id->valuestring) ||
        !cJSON_AddItemToArray(blocks, b)) {
        cJSON_Delete(b);
        return -1;
    }
    int rc = add_content(content, cJSON_GetObjectItemCaseSensitive(msg, "content"), false, why);
    if (rc == 0 && cJSON_GetArraySize(content) == 0) {
        cJSON *t = text_block("(empty)"); /* a tool result needs content */
        rc = t && cJSON_AddItemToArray(content, t) ? 0 : -1;
    }
    return rc;
}

static int add_messages(cJSON *out, const cJSON *messages, const char **why)
{
    cJSON *system = cJSON_CreateArray(), *turns = cJSON_AddArrayToObject(out, "messages");
    if (!system || !turns) {
        cJSON_Delete(system);
        return -1;
    }
    int rc = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        cJSON *blocks;
        if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
            rc = add_content(system, content, false, why);
        } else if (strcmp(r, "user") == 0) {
            rc = (blocks = turn(turns, "user")) ? add_content(blocks, content, true, why) : -1;
        } else if (strcmp(r, "assistant") == 0) {
            rc =
                (blocks = turn(turns, "assistant")) ? add_content(blocks, content, false, why) : -1;
            const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            if (rc == 0 && cJSON_IsArray(calls)) rc = add_tool_calls(blocks, calls, why);
        } else if (strcmp(r, "tool") == 0) {
            rc = (blocks = turn(turns, "user")) ? add_tool_result(blocks, m, why) : -1;
        } else {
            *why = "a message's role must be system, developer, user, assistant or tool";
            rc = -2;
        }
        if (rc < 0) break;
    }
    if (rc == 0 && cJSON_GetArraySize(system) > 0)
        return cJSON_AddItemToObject(out, "system", system) ? 0 : -1;
    cJSON_Delete(system);
    return rc;
}

static int add_tools(cJSON *out, const cJSON *req, const char **why)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0) return 0;
    if (cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0)
        return 0; /* Converse has no "none": the model is not offered the tools */
    cJSON *cfg = cJSON_AddObjectToObject(out, "toolConfig");
    cJSON *list = cfg ? cJSON_AddArrayToObject(cfg, "tools") : NULL;
    if (!list) return -1;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        const cJSON *desc = fn ? cJSON_GetObjectItemCaseSensitive(fn, "description") : NULL;
        const cJSON *params = fn ? cJSON_GetObjectItemCaseSensitive(fn, "parameters") : NULL;
        if (!cJSON_IsString(name)) {
            *why = "a tool needs function.name (function tools only)";
            return -2;
        }
        cJSON *item = cJSON_CreateObject(), *spec = cJSON_AddObjectToObject(item, "toolSpec");
        cJSON *schema = spec ? cJSON_AddObjectToObject(spec, "inputSchema") : NULL;
        cJSON *json = cJSON_IsObject(params)
                          ? cJSON_Duplicate(params, true)
                          : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}");
        if (!schema || !json || !cJSON_AddStringToObject(spec, "name", name->valuestring) ||
            (cJSON_IsString(desc) && desc->valuestring[0] &&
             !cJSON_AddStringToObject(spec, "description", desc->valuestring)) ||
            !cJSON_AddItemToObject(schema, "json", json) || !cJSON_AddItemToArray(list, item)) {
            cJSON_Delete(item);
            return -1;
        }
    }
    cJSON *tc = NULL;
    if (cJSON_IsString(choice) && strcmp(choice->valuestring, "required") == 0) {
        tc = cJSON_CreateObject();
        cJSON_AddObjectToObject(tc, "any");
    } else if (cJSON_IsObject(choice)) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(choice, "function");
        const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        if (cJSON_IsString(name)) {
            tc = cJSON_CreateObject();
            cJSON *tool = cJSON_AddObjectToObject(tc, "tool");
            cJSON_AddStringToObject(tool, "name", name->valuestring);
        }
    }
    return !tc || cJSON_AddItemToObject(cfg, "toolChoice", tc) ? 0 : -1;
}

static int add_inference(cJSON *out, const cJSON *req, int64_t spent)
{
    cJSON *inf = cJSON_CreateObject();
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
    if (!cJSON_IsNumber(max)) max = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
    if (cJSON_IsNumber(max)) {
        double left = max->valuedouble - (double)(spent > 0 ? spent : 0);
        cJSON_AddNumberToObject(inf, "maxTokens", left < 1 ? 1 : left);
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "temperature");
    if (cJSON_IsNumber(t)) cJSON_AddNumberToObject(inf, "temperature", t->valuedouble);
    t = cJSON_GetObjectItemCaseSensitive(req, "top_p");
    if (cJSON_IsNumber(t)) cJSON_AddNumberToObject(inf, "topP", t->valuedouble);
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop");
    if (cJSON_IsString(stop) || cJSON_IsArray(stop)) {
        cJSON *seq = cJSON_AddArrayToObject(inf, "stopSequences");
        if (cJSON_IsString(stop)) {
            cJSON_AddItemToArray(seq, cJSON_CreateString(stop->valuestring));
        } else {
            const cJSON *s;
            cJSON_ArrayForEach(s, stop) if (cJSON_IsString(s))
                cJSON_AddItemToArray(seq, cJSON_CreateString(s->valuestring));
        }
    }
    if (cJSON_GetArraySize(inf) == 0) {
        cJSON_Delete(inf);
        return 0;
    }
    return cJSON_AddItemToObject(out, "inferenceConfig", inf) ? 0 : -1;
}

int bedrock_converse_body(const struct provider_call *c, struct buf *out, const char **why)
{
    *why = NULL;
    if (c->api != PROVIDER_API_CHAT) {
        *why = "Bedrock Converse serves chat completions only";
        return -2;
    }
    cJSON *req = cJSON_ParseWithLength(c->body, c->body_len);
    const cJSON *messages = req ? cJSON_GetObjectItemCaseSensitive(req, "messages") : NULL;
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(req);
        *why = "messages must be an array";
        return -2;
    }
    cJSON *conv = cJSON_CreateObject();
    int rc = conv ? add_messages(conv, messages, why) : -1;
    if (rc == 0 && c->continue_text) {
        char *text = strndup(c->continue_text, c->continue_len);
        cJSON *blocks = turn(cJSON_GetObjectItemCaseSensitive(conv, "messages"), "assistant");
        cJSON *b = text ? text_block(text) : NULL;
        rc = blocks && b && cJSON_AddItemToArray(blocks, b) ? 0 : -1;
        if (rc < 0) cJSON_Delete(b);
        free(text);
    }
    if (rc == 0) rc = add_tools(conv, req, why);
    if (rc == 0) rc = add_inference(conv, req, c->continue_text ? c->continue_tokens : 0);
    char *text = rc == 0 ? cJSON_PrintUnformatted(conv) : NULL;
    if (rc == 0 && (!text || buf_append_str(out, text) < 0)) rc = -1;
    free(text);
    cJSON_Delete(conv);
    cJSON_Delete(req);
    return rc;
}
