#include "proto/assemble.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#define ASSEMBLE_DEFAULT_MAX (16u << 20)
/* What a new choice or tool call is charged against max_bytes for its bookkeeping. */
#define ASSEMBLE_ENTRY_COST 128

struct asm_text {
    char *p;
    size_t len, cap;
    bool seen; /* some chunk carried this field as a string */
};

struct asm_tool {
    int index;
    struct asm_text id, type, name, args;
};

struct asm_choice {
    bool used;
    struct asm_text role, content, reasoning, refusal, text, finish;
    struct asm_text fc_name, fc_args; /* legacy function_call */
    struct asm_tool *tools;          /* sorted by index */
    size_t n_tools;
};

struct assemble {
    enum assemble_kind kind;
    size_t max_bytes, used_bytes;
    struct asm_text id, model, fingerprint;
    int64_t created;
    bool has_created;
    struct asm_choice *choices; /* indexed by choice index */
    size_t n_choices;
    cJSON *usage;
    bool usage_estimated; /* usage_prompt and usage_completion replace usage */
    int64_t usage_prompt, usage_completion;
};

struct assemble *assemble_new(enum assemble_kind kind, size_t max_bytes)
{
    struct assemble *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->kind = kind;
    a->max_bytes = max_bytes ? max_bytes : ASSEMBLE_DEFAULT_MAX;
    return a;
}

static int charge(struct assemble *a, size_t n)
{
    if (n > a->max_bytes - a->used_bytes)
        return -ENOBUFS;
    a->used_bytes += n;
    return 0;
}

static int text_append(struct assemble *a, struct asm_text *t, const char *s, size_t n)
{
    t->seen = true;
    if (n == 0)
        return 0;
    int rc = charge(a, n);
    if (rc)
        return rc;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            a->used_bytes -= n;
            return -ENOMEM;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

static int text_set(struct assemble *a, struct asm_text *t, const char *s)
{
    a->used_bytes -= t->len;
    t->len = 0;
    return text_append(a, t, s, strlen(s));
}

static bool text_eq(const struct asm_text *t, const char *s)
{
    return t->len == strlen(s) && (t->len == 0 || memcmp(t->p, s, t->len) == 0);
}

static void text_free(struct asm_text *t)
{
    free(t->p);
}

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An "index" member, or fallback when there is none. */
static int index_of(const cJSON *obj, int fallback, int limit, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "index");
    if (!cJSON_IsNumber(v)) {
        *out = fallback;
        return 0;
    }
    if (!(v->valuedouble >= 0 && v->valuedouble < limit))
        return -ERANGE;
    *out = (int)v->valuedouble;
    return 0;
}

static int choice_at(struct assemble *a, int index, struct asm_choice **out)
{
    if ((size_t)index >= a->n_choices) {
        struct asm_choice *c = realloc(a->choices, ((size_t)index + 1) * sizeof *c);
        if (!c)
            return -ENOMEM;
        memset(c + a->n_choices, 0, ((size_t)index + 1 - a->n_choices) * sizeof *c);
        a->choices = c;
        a->n_choices = (size_t)index + 1;
    }
    struct asm_choice *c = &a->choices[index];
    if (!c->used) {
        int rc = charge(a, ASSEMBLE_ENTRY_COST);
        if (rc)
            return rc;
        c->used = true;
    }
    *out = c;
    return 0;
}

/*
 * The tool call a delta entry continues. Entries carry "index"; for servers
 * that omit it, a new "id" starts a call and no id continues the last one.
 */
static int tool_at(struct assemble *a, struct asm_choice *c, const cJSON *entry,
                   struct asm_tool **out)
{
    int last = c->n_tools ? c->tools[c->n_tools - 1].index : 0;
    int index;
    int rc = index_of(entry, last, ASSEMBLE_MAX_TOOL_CALLS, &index);
    if (rc)
        return rc;
    if (!cJSON_GetObjectItemCaseSensitive(entry, "index")) {
        const char *id = str_of(entry, "id");
        bool known = false;
        for (size_t i = 0; i < c->n_tools && id; i++)
            if (text_eq(&c->tools[i].id, id)) {
                index = c->tools[i].index;
                known = true;
            }
        if (id && *id && !known && c->n_tools)
            index = last + 1;
        if (index >= ASSEMBLE_MAX_TOOL_CALLS)
            return -ERANGE;
    }
    size_t pos = 0;
    while (pos < c->n_tools && c->tools[pos].index < index)
        pos++;
    if (pos < c->n_tools && c->tools[pos].index == index) {
        *out = &c->tools[pos];
        return 0;
    }
    if ((rc = charge(a, ASSEMBLE_ENTRY_COST)))
        return rc;
    struct asm_tool *t = realloc(c->tools, (c->n_tools + 1) * sizeof *t);
    if (!t)
        return -ENOMEM;
    c->tools = t;
    memmove(&t[pos + 1], &t[pos], (c->n_tools - pos) * sizeof *t);
    memset(&t[pos], 0, sizeof *t);
    t[pos].index = index;
    c->n_tools++;
    *out = &t[pos];
    return 0;
}

/* Names normally come once; some servers repeat the whole name in every
 * delta, which must not double it. */
static int name_merge(struct assemble *a, struct asm_text *t, const char *name)
{
    if (!name || text_eq(t, name))
        return 0;
    return text_append(a, t, name, strlen(name));
}

static int feed_tool_calls(struct assemble *a, struct asm_choice *c, const cJSON *calls)
{
    const cJSON *entry;
    cJSON_ArrayForEach(entry, calls)
    {
        if (!cJSON_IsObject(entry))
            continue;
        struct asm_tool *t;
        int rc = tool_at(a, c, entry, &t);
        if (rc)
            return rc;
        const char *id = str_of(entry, "id"), *type = str_of(entry, "type");
        if (id && *id && t->id.len == 0 && (rc = text_set(a, &t->id, id)))
            return rc;
        if (type && *type && (rc = text_set(a, &t->type, type)))
            return rc;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(entry, "function");
        const char *args = str_of(fn, "arguments");
        if ((rc = name_merge(a, &t->name, str_of(fn, "name"))))
            return rc;
        if (args && (rc = text_append(a, &t->args, args, strlen(args))))
            return rc;
    }
    return 0;
}

static int append_field(struct assemble *a, struct asm_text *t, const cJSON *obj, const char *key)
{
    const char *s = str_of(obj, key);
    return s ? text_append(a, t, s, strlen(s)) : 0;
}

static int feed_delta(struct assemble *a, struct asm_choice *c, const cJSON *delta)
{
    int rc;
    const char *role = str_of(delta, "role");
    if (role && *role && (rc = text_set(a, &c->role, role)))
        return rc;
    if ((rc = append_field(a, &c->content, delta, "content")) ||
        (rc = append_field(a, &c->refusal, delta, "refusal")))
        return rc;
    /* Some servers send both names for the same text: take one per delta. */
    rc = str_of(delta, "reasoning_content") ? append_field(a, &c->reasoning, delta, "reasoning_content")
                                            : append_field(a, &c->reasoning, delta, "reasoning");
    if (rc)
        return rc;
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    if (cJSON_IsArray(calls) && (rc = feed_tool_calls(a, c, calls)))
        return rc;
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(delta, "function_call");
    if (cJSON_IsObject(fc)) {
        if ((rc = name_merge(a, &c->fc_name, str_of(fc, "name"))) ||
            (rc = append_field(a, &c->fc_args, fc, "arguments")))
            return rc;
        c->fc_name.seen = true;
    }
    return 0;
}

static int feed_choice(struct assemble *a, const cJSON *ch)
{
    int index, rc = index_of(ch, 0, ASSEMBLE_MAX_CHOICES, &index);
    struct asm_choice *c;
    if (rc || (rc = choice_at(a, index, &c)))
        return rc;
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
    if (!cJSON_IsObject(delta)) /* some servers stream whole messages */
        delta = cJSON_GetObjectItemCaseSensitive(ch, "message");
    if (cJSON_IsObject(delta) && (rc = feed_delta(a, c, delta)))
        return rc;
    if ((rc = append_field(a, &c->text, ch, "text")))
        return rc;
    const char *finish = str_of(ch, "finish_reason");
    if (finish && (rc = text_set(a, &c->finish, finish)))
        return rc;
    return 0;
}

int assemble_feed(struct assemble *a, const char *chunk_json, size_t len)
{
    if (len == 6 && memcmp(chunk_json, "[DONE]", 6) == 0)
        return 0;
    cJSON *root = cJSON_ParseWithLength(chunk_json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EINVAL;
    }
    int rc = 0;
    const char *s;
    if ((s = str_of(root, "id")) && *s && a->id.len == 0)
        rc = text_set(a, &a->id, s);
    if (!rc && (s = str_of(root, "model")) && *s && a->model.len == 0)
        rc = text_set(a, &a->model, s);
    if (!rc && (s = str_of(root, "system_fingerprint")) && *s)
        rc = text_set(a, &a->fingerprint, s);
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(root, "created");
    if (!a->has_created && cJSON_IsNumber(created) && created->valuedouble >= 0 &&
        created->valuedouble < 9e15) {
        a->created = (int64_t)created->valuedouble;
        a->has_created = true;
    }
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (!rc && cJSON_IsObject(usage)) {
        /* The chunk was bounded by the SSE parser; the copy is no bigger. */
        cJSON_Delete(a->usage);
        a->usage = cJSON_DetachItemViaPointer(root, usage);
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *ch;
    cJSON_ArrayForEach(ch, choices)
    {
        if (rc)
            break;
        if (cJSON_IsObject(ch))
            rc = feed_choice(a, ch);
    }
    cJSON_Delete(root);
    return rc;
}

static int put_str(struct buf *out, const struct asm_text *t)
{
    return buf_append_json_str(out, t->p ? t->p : "", t->len);
}

/* ,"key":"value" */
static int put_member(struct buf *out, const char *key, const struct asm_text *t)
{
    int rc = buf_printf(out, ",\"%s\":", key);
    return rc ? rc : put_str(out, t);
}

static int put_tool_calls(struct buf *out, const struct asm_choice *c)
{
    int rc = buf_append_str(out, ",\"tool_calls\":[");
    for (size_t i = 0; i < c->n_tools && !rc; i++) {
        const struct asm_tool *t = &c->tools[i];
        rc = buf_append_str(out, i ? ",{\"id\":" : "{\"id\":");
        if (!rc)
            rc = put_str(out, &t->id);
        if (!rc)
            rc = buf_append_str(out, ",\"type\":");
        if (!rc)
            rc = t->type.len ? put_str(out, &t->type) : buf_append_str(out, "\"function\"");
        if (!rc)
            rc = buf_append_str(out, ",\"function\":{\"name\":");
        if (!rc)
            rc = put_str(out, &t->name);
        if (!rc)
            rc = put_member(out, "arguments", &t->args);
        if (!rc)
            rc = buf_append_str(out, "}}");
    }
    return rc ? rc : buf_append_str(out, "]");
}

static int put_message(struct buf *out, const struct asm_choice *c)
{
    int rc = buf_append_str(out, ",\"message\":{\"role\":");
    if (!rc)
        rc = c->role.len ? put_str(out, &c->role) : buf_append_str(out, "\"assistant\"");
    if (rc)
        return rc;
    /* As upstreams answer non-stream: content null beside tool calls and no text. */
    bool calls = c->n_tools > 0 || c->fc_name.seen;
    if (c->content.len == 0 && calls)
        rc = buf_append_str(out, ",\"content\":null");
    else
        rc = put_member(out, "content", &c->content);
    if (!rc && c->reasoning.seen)
        rc = put_member(out, "reasoning_content", &c->reasoning);
    if (!rc && c->refusal.seen)
        rc = put_member(out, "refusal", &c->refusal);
    if (!rc && c->n_tools)
        rc = put_tool_calls(out, c);
    if (!rc && c->fc_name.seen) {
        rc = buf_append_str(out, ",\"function_call\":{\"name\":");
        if (!rc)
            rc = put_str(out, &c->fc_name);
        if (!rc)
            rc = put_member(out, "arguments", &c->fc_args);
        if (!rc)
            rc = buf_append_str(out, "}");
    }
    return rc ? rc : buf_append_str(out, "}");
}

static int put_choices(struct assemble *a, struct buf *out)
{
    int rc = buf_append_str(out, ",\"choices\":[");
    bool first = true;
    for (size_t i = 0; i < a->n_choices && !rc; i++) {
        const struct asm_choice *c = &a->choices[i];
        if (!c->used)
            continue;
        rc = buf_printf(out, "%s{\"index\":%zu", first ? "" : ",", i);
        first = false;
        if (!rc)
            rc = a->kind == ASSEMBLE_CHAT ? put_message(out, c) : put_member(out, "text", &c->text);
        if (!rc)
            rc = buf_append_str(out, ",\"logprobs\":null,\"finish_reason\":");
        if (!rc)
            rc = c->finish.len ? put_str(out, &c->finish) : buf_append_str(out, "null");
        if (!rc)
            rc = buf_append_str(out, "}");
    }
    return rc ? rc : buf_append_str(out, "]");
}

int assemble_finish(struct assemble *a, struct buf *out)
{
    int64_t created = a->has_created ? a->created : (int64_t)time(NULL);
    int rc = buf_append_str(out, "{\"id\":");
    if (!rc)
        rc = put_str(out, &a->id);
    if (!rc)
        rc = buf_printf(out, ",\"object\":\"%s\",\"created\":%lld",
                        a->kind == ASSEMBLE_CHAT ? "chat.completion" : "text_completion",
                        (long long)created);
    if (!rc)
        rc = put_member(out, "model", &a->model);
    if (!rc && a->fingerprint.len)
        rc = put_member(out, "system_fingerprint", &a->fingerprint);
    if (!rc)
        rc = put_choices(a, out);
    if (!rc && a->usage_estimated) {
        rc = buf_append_str(out, ",\"usage\":");
        if (!rc)
            rc = assemble_put_estimated_usage(out, a->usage_prompt, a->usage_completion);
    } else if (!rc && a->usage) {
        char *u = cJSON_PrintUnformatted(a->usage);
        if (!u)
            return -ENOMEM;
        rc = buf_append_str(out, ",\"usage\":");
        if (!rc)
            rc = buf_append_str(out, u);
        free(u);
    }
    return rc ? rc : buf_append_str(out, "}");
}

bool assemble_has_usage(const struct assemble *a)
{
    return a->usage != NULL;
}

void assemble_set_estimated_usage(struct assemble *a, int64_t prompt_tokens,
                                  int64_t completion_tokens)
{
    a->usage_estimated = true;
    a->usage_prompt = prompt_tokens;
    a->usage_completion = completion_tokens;
}

int assemble_put_estimated_usage(struct buf *out, int64_t prompt_tokens, int64_t completion_tokens)
{
    return buf_printf(out,
                      "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                      "\"estimated\":true}",
                      (long long)prompt_tokens, (long long)completion_tokens,
                      (long long)(prompt_tokens + completion_tokens));
}

int assemble_add_estimated_usage(const char *json, size_t len, int64_t prompt_tokens,
                                 int64_t completion_tokens, struct buf *out)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EINVAL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "usage"); /* a null one */
    bool empty = root->child == NULL;
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    /* s ends with the object's closing brace: the member goes in before it. */
    int rc = buf_append(out, s, n - 1);
    free(s);
    if (!rc)
        rc = buf_append_str(out, empty ? "\"usage\":" : ",\"usage\":");
    if (!rc)
        rc = assemble_put_estimated_usage(out, prompt_tokens, completion_tokens);
    return rc ? rc : buf_append_str(out, "}");
}

void assemble_free(struct assemble *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_choices; i++) {
        struct asm_choice *c = &a->choices[i];
        struct asm_text *texts[] = {&c->role, &c->content, &c->reasoning, &c->refusal,
                                    &c->text, &c->finish, &c->fc_name, &c->fc_args};
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
            text_free(texts[k]);
        for (size_t k = 0; k < c->n_tools; k++) {
            text_free(&c->tools[k].id);
            text_free(&c->tools[k].type);
            text_free(&c->tools[k].name);
            text_free(&c->tools[k].args);
        }
        free(c->tools);
    }
    free(a->choices);
    text_free(&a->id);
    text_free(&a->model);
    text_free(&a->fingerprint);
    cJSON_Delete(a->usage);
    free(a);
}
