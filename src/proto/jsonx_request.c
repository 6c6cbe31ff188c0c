/*
 * The client's request body: the scan (jsonx_scan_api_request: the fields the
 * gateway reads, and what the API requires of each endpoint) and the splice
 * (jsonx_rewrite_request). See jsonx.h; the tokenizer is in jsonx.c.
 *
 * Why spelling matters: the gateway routes, checks the key's allowlist and
 * counts tokens by one copy of a field, and the upstream must read that same
 * copy. Parsers disagree on duplicate keys (first wins, last wins, error), and
 * Go's encoding/json (Ollama and many OpenAI-compatible servers) matches keys
 * case-insensitively, taking 'ſ' (U+017F) for 's' and the Kelvin sign (U+212A)
 * for 'k'. So each member the gateway reads must appear once and be spelt
 * exactly so after unescaping (every parser unescapes keys before it compares
 * them); a key that only folds to one of those names is refused, alone or
 * beside the exact spelling.
 */
#include "proto/jsonx.h"
#include "proto/jsonx_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- request scan ---- */

/* The top-level members the gateway reads or rewrites. */
enum rq_field {
    RQ_MODEL,
    RQ_STREAM,
    RQ_STREAM_OPTIONS,
    RQ_MAX_TOKENS,
    RQ_MAX_COMPLETION_TOKENS,
    RQ_N,
    RQ_MESSAGES,
    RQ_PROMPT,
    RQ_INPUT,
    RQ_TOOLS,
    RQ_FUNCTIONS,
    RQ_COUNT
};

static const char *const rq_names[RQ_COUNT] = {
    [RQ_MODEL] = "model",
    [RQ_STREAM] = "stream",
    [RQ_STREAM_OPTIONS] = "stream_options",
    [RQ_MAX_TOKENS] = "max_tokens",
    [RQ_MAX_COMPLETION_TOKENS] = "max_completion_tokens",
    [RQ_N] = "n",
    [RQ_MESSAGES] = "messages",
    [RQ_PROMPT] = "prompt",
    [RQ_INPUT] = "input",
    [RQ_TOOLS] = "tools",
    [RQ_FUNCTIONS] = "functions",
};

static const char *const include_usage_name[1] = {"include_usage"};

/* Unescaped keys longer than this fold to none of the names (21 letters of at most 3 bytes). */
#define RQ_KEY_MAX 64

/* The roles a chat message may have, in the order OpenAI lists them. */
static const char *const chat_roles[] = {"system", "assistant", "user", "function", "tool", "developer"};
#define CHAT_ROLES_TEXT "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"

struct rq {
    const struct jdoc *d;
    struct jsonx_request *out;
    int value[RQ_COUNT]; /* value token of each member; -1: absent */
};

static struct jsonx_span member_span(const struct jdoc *d, int ki, int vi)
{
    struct jsonx_span sp = {tok_vstart(&d->t[ki]), tok_vend(&d->t[vi])};
    return sp;
}

static bool span_present(struct jsonx_span sp)
{
    return sp.end > sp.start;
}

/* Unescape string token i into out; false when it needs more than cap bytes. */
static bool tok_unescape(const struct jdoc *d, int i, char *out, size_t cap, size_t *out_len)
{
    const char *s = d->s + d->t[i].start;
    size_t n = tok_len(d, i);
    size_t pos = 0, len = 0;
    if (!memchr(s, '\\', n)) { /* no escape: the bytes are the text */
        if (n > cap)
            return false;
        memcpy(out, s, n);
        *out_len = n;
        return true;
    }
    while (pos < n) {
        char u8[4];
        size_t k = jsonx_str_next(s, n, &pos, u8);
        if (k > cap - len)
            return false;
        memcpy(out + len, u8, k);
        len += k;
    }
    *out_len = len;
    return true;
}

/*
 * Which of names[0..count) key token ki is, or -1. *misspelt: it is that name
 * only when case-folded the way Go folds keys; spelt (cap > RQ_KEY_MAX) gets
 * the unescaped key then.
 */
static int rq_classify(const struct jdoc *d, int ki, const char *const *names, int count,
                       bool *misspelt, char *spelt, size_t cap)
{
    char raw[RQ_KEY_MAX], folded[RQ_KEY_MAX];
    size_t len, flen = 0;
    *misspelt = false;
    /* The usual key, lower-case ASCII letters, digits and '_' as written, is its own
       unescaped and folded spelling: compared as it is, byte for byte. */
    const char *k = d->s + d->t[ki].start;
    size_t kn = tok_len(d, ki), plain = 0;
    while (plain < kn && ((k[plain] >= 'a' && k[plain] <= 'z') || k[plain] == '_' ||
                          (k[plain] >= '0' && k[plain] <= '9')))
        plain++;
    if (plain == kn) {
        for (int f = 0; f < count; f++)
            if (kn && names[f][0] == k[0] && strlen(names[f]) == kn && memcmp(k, names[f], kn) == 0)
                return f;
        return -1;
    }
    if (kn > 6 * RQ_KEY_MAX || !tok_unescape(d, ki, raw, sizeof raw, &len)) return -1;
    for (size_t i = 0; i < len; flen++) {
        unsigned char c = (unsigned char)raw[i];
        if (c >= 'A' && c <= 'Z') {
            folded[flen] = (char)(c | 0x20);
            i++;
        } else if (c == 0xC5 && i + 1 < len && (unsigned char)raw[i + 1] == 0xBF) {
            folded[flen] = 's'; /* U+017F LATIN SMALL LETTER LONG S */
            i += 2;
        } else if (c == 0xE2 && i + 2 < len && (unsigned char)raw[i + 1] == 0x84 &&
                   (unsigned char)raw[i + 2] == 0xAA) {
            folded[flen] = 'k'; /* U+212A KELVIN SIGN */
            i += 3;
        } else {
            folded[flen] = (char)c;
            i++;
        }
    }
    for (int f = 0; f < count; f++) {
        size_t n = strlen(names[f]);
        if (flen != n || memcmp(folded, names[f], n) != 0)
            continue;
        if (len != n || memcmp(raw, names[f], n) != 0) {
            *misspelt = true;
            memcpy(spelt, raw, len);
            spelt[len] = '\0';
        }
        return f;
    }
    return -1;
}

__attribute__((format(printf, 4, 5))) static int rq_fail(struct jsonx_request *out, const char *code,
                                                         const char *param, const char *fmt, ...)
{
    snprintf(out->bad_field, sizeof out->bad_field, "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    out->error_code = code;
    return JSONX_ERR_FIELD;
}

/* What the value at token i is, in the words of a type error. */
static const char *kind_of(const struct jdoc *d, int i)
{
    const struct jtok *t = &d->t[i];
    const char *s = d->s + t->start;
    switch (t->type) {
    case JT_STRING: return "a string";
    case JT_OBJECT: return "an object";
    case JT_ARRAY: return "an array";
    default: break;
    }
    if (s[0] == 't' || s[0] == 'f')
        return "a boolean";
    if (s[0] == 'n')
        return "null";
    for (size_t k = 0; k < tok_len(d, i); k++)
        if (s[k] == '.' || s[k] == 'e' || s[k] == 'E')
            return "a decimal number";
    return "an integer";
}

static int type_error(struct rq *q, const char *param, const char *expected, int vi)
{
    return rq_fail(q->out, "invalid_type", param, "Invalid type for '%s': expected %s, but got %s instead.",
                   param, expected, kind_of(q->d, vi));
}

static int missing(struct rq *q, const char *param)
{
    return rq_fail(q->out, "missing_required_parameter", param, "Missing required parameter: '%s'.", param);
}

static int empty_array(struct rq *q, const char *param)
{
    return rq_fail(q->out, "empty_array", param,
                   "Invalid '%s': empty array. Expected an array with minimum length 1, but got an "
                   "empty array instead.",
                   param);
}

static int empty_string(struct rq *q, const char *param)
{
    return rq_fail(q->out, "empty_string", param,
                   "Invalid '%s': empty string. Expected a string with minimum length 1, but got an "
                   "empty string instead.",
                   param);
}

static bool tok_is_bool_or_null(const struct jdoc *d, int i)
{
    return tok_is(d, i, "true") || tok_is(d, i, "false") || tok_is_null(d, i);
}

/* "name": null (= absent) or an integer >= min (min >= 0). *present: it was an integer. */
static int rq_int(struct rq *q, const char *name, int vi, int64_t min, int64_t *v, bool *present)
{
    const struct jdoc *d = q->d;
    *present = false;
    if (tok_is_null(d, vi))
        return 0;
    const char *s = d->s + d->t[vi].start;
    size_t n = tok_len(d, vi);
    if (d->t[vi].type != JT_PRIMITIVE || strcmp(kind_of(d, vi), "an integer") != 0)
        return type_error(q, name, "an integer", vi);
    bool negative = s[0] == '-';
    if (negative && n == 2 && s[1] == '0') { /* -0: the strict grammar allows no other zero */
        negative = false;
        *v = 0;
    } else if (!negative && !jsonx_tok_uint(d, vi, v)) {
        return rq_fail(q->out, "integer_above_max_value", name,
                       "Invalid '%s': integer above maximum value. Expected a value <= %lld, but got %.*s "
                       "instead.",
                       name, (long long)INT64_MAX, n > 40 ? 40 : (int)n, s);
    }
    if (negative || *v < min)
        return rq_fail(q->out, "integer_below_min_value", name,
                       "Invalid '%s': integer below minimum value. Expected a value >= %lld, but got %.*s "
                       "instead.",
                       name, (long long)min, n > 40 ? 40 : (int)n, s);
    *present = true;
    return 0;
}

/* Length of message content: a string, or the "text" of content parts. */
static size_t content_chars(const struct jdoc *d, int ci)
{
    if (ci < 0)
        return 0;
    if (d->t[ci].type == JT_STRING)
        return tok_len(d, ci);
    if (d->t[ci].type != JT_ARRAY)
        return 0;
    size_t sum = 0;
    int ei = ci + 1;
    for (int k = 0; k < d->t[ci].size; k++, ei = jsonx_tok_next(d, ei)) {
        if (d->t[ei].type == JT_STRING) {
            sum += tok_len(d, ei);
        } else {
            int ti = jsonx_obj_get(d, ei, "text");
            if (ti >= 0 && d->t[ti].type == JT_STRING)
                sum += tok_len(d, ti);
        }
    }
    return sum;
}

/* messages[] or the Responses API's input[]: content of each element. */
static size_t messages_chars(const struct jdoc *d, int ai)
{
    size_t sum = 0;
    int ei = ai + 1;
    for (int k = 0; k < d->t[ai].size; k++, ei = jsonx_tok_next(d, ei)) {
        if (d->t[ei].type == JT_STRING)
            sum += tok_len(d, ei);
        else
            sum += content_chars(d, jsonx_obj_get(d, ei, "content"));
    }
    return sum;
}

static int scan_stream_options(struct rq *q, int vi)
{
    const struct jdoc *d = q->d;
    struct jsonx_request *out = q->out;
    if (tok_is_null(d, vi))
        return 0;
    if (d->t[vi].type != JT_OBJECT)
        return type_error(q, "stream_options", "an object", vi);
    out->has_stream_options = true;
    int ki = vi + 1;
    for (int k = 0; k < d->t[vi].size; k++) {
        int ui = ki + 1;
        char spelt[RQ_KEY_MAX + 1], param[RQ_KEY_MAX + 32];
        bool misspelt;
        if (rq_classify(d, ki, include_usage_name, 1, &misspelt, spelt, sizeof spelt) == 0) {
            if (misspelt) {
                snprintf(param, sizeof param, "stream_options.%s", spelt);
                return rq_fail(out, "unknown_parameter", param,
                               "Unrecognized request argument supplied: '%s'. Parameter names are "
                               "case-sensitive: did you mean 'stream_options.include_usage'?",
                               param);
            }
            if (span_present(out->include_usage_member))
                return rq_fail(out, "duplicate_parameter", "stream_options.include_usage",
                               "Duplicate parameter 'stream_options.include_usage': the request body "
                               "names it more than once.");
            if (!tok_is_bool_or_null(d, ui))
                return type_error(q, "stream_options.include_usage", "a boolean", ui);
            out->include_usage = tok_is(d, ui, "true");
            out->include_usage_member = member_span(d, ki, ui);
        }
        ki = jsonx_tok_next(d, ui);
    }
    return 0;
}

static int scan_member(struct rq *q, int ki, int vi)
{
    const struct jdoc *d = q->d;
    struct jsonx_request *out = q->out;
    const struct jtok *v = &d->t[vi];
    char spelt[RQ_KEY_MAX + 1];
    bool misspelt, present;
    size_t len;
    int64_t n;

    int f = rq_classify(d, ki, rq_names, RQ_COUNT, &misspelt, spelt, sizeof spelt);
    if (f < 0)
        return 0;
    if (misspelt)
        return rq_fail(out, "unknown_parameter", spelt,
                       "Unrecognized request argument supplied: '%s'. Parameter names are case-sensitive: "
                       "did you mean '%s'?",
                       spelt, rq_names[f]);
    if (q->value[f] >= 0)
        return rq_fail(out, "duplicate_parameter", rq_names[f],
                       "Duplicate parameter '%s': the request body names it more than once.", rq_names[f]);
    q->value[f] = vi;

    switch ((enum rq_field)f) {
    case RQ_MODEL:
        if (v->type != JT_STRING)
            return type_error(q, "model", "a string", vi);
        if (!tok_unescape(d, vi, out->model, sizeof out->model - 1, &len)) {
            out->model[0] = '\0';
            return rq_fail(out, "string_above_max_length", "model",
                           "Invalid 'model': string too long. Expected a string with maximum length %zu.",
                           sizeof out->model - 1);
        }
        out->model[len] = '\0';
        if (memchr(out->model, '\0', len)) {
            out->model[0] = '\0';
            return rq_fail(out, "invalid_value", "model", "Invalid 'model': a model name has no NUL character.");
        }
        out->has_model = true;
        out->model_member = member_span(d, ki, vi);
        return 0;
    case RQ_STREAM:
        if (!tok_is_bool_or_null(d, vi))
            return type_error(q, "stream", "a boolean", vi);
        out->stream = tok_is(d, vi, "true");
        out->stream_member = member_span(d, ki, vi);
        return 0;
    case RQ_STREAM_OPTIONS:
        out->stream_options_member = member_span(d, ki, vi);
        return scan_stream_options(q, vi);
    case RQ_MAX_TOKENS:
    case RQ_MAX_COMPLETION_TOKENS: {
        int rc = rq_int(q, rq_names[f], vi, 0, &n, &present);
        if (rc || !present)
            return rc;
        /* max_completion_tokens wins, whichever comes first */
        if (f == RQ_MAX_COMPLETION_TOKENS || !out->has_max_tokens)
            out->max_tokens = n;
        out->has_max_tokens = true;
        return 0;
    }
    case RQ_N: {
        int rc = rq_int(q, "n", vi, 1, &n, &present);
        if (rc || !present)
            return rc;
        out->has_n = true;
        out->n = n;
        return 0;
    }
    case RQ_TOOLS:
    case RQ_FUNCTIONS:
        if (tok_is_null(d, vi))
            return 0;
        if (v->type != JT_ARRAY)
            return type_error(q, rq_names[f], "an array", vi);
        if (v->size > 0)
            out->has_tools = true;
        return 0;
    case RQ_MESSAGES:
        if (tok_is_null(d, vi))
            return 0;
        if (v->type != JT_ARRAY)
            return type_error(q, "messages", "an array of objects", vi);
        out->n_messages = (size_t)v->size;
        out->prompt_chars += messages_chars(d, vi);
        return 0;
    case RQ_PROMPT:
    case RQ_INPUT:
        if (v->type == JT_STRING)
            out->prompt_chars += tok_len(d, vi);
        else if (v->type == JT_ARRAY)
            out->prompt_chars += messages_chars(d, vi);
        return 0;
    case RQ_COUNT: break;
    }
    return 0;
}

static bool chat_role_known(const char *role, size_t len)
{
    for (size_t r = 0; r < sizeof chat_roles / sizeof chat_roles[0]; r++)
        if (strlen(chat_roles[r]) == len && memcmp(role, chat_roles[r], len) == 0)
            return true;
    return false;
}

/* A chat request's messages: a non-empty array of objects, each with a known role. */
static int check_messages(struct rq *q)
{
    const struct jdoc *d = q->d;
    int ai = q->value[RQ_MESSAGES];
    char param[64];
    if (tok_is_null(d, ai))
        return missing(q, "messages");
    if (d->t[ai].size == 0)
        return empty_array(q, "messages");
    int ei = ai + 1;
    for (int k = 0; k < d->t[ai].size; k++, ei = jsonx_tok_next(d, ei)) {
        /* the parameter's name is written only for an error (every request passes here) */
        if (d->t[ei].type != JT_OBJECT) {
            snprintf(param, sizeof param, "messages[%d]", k);
            return type_error(q, param, "an object", ei);
        }
        int ri = -1, ki = ei + 1;
        for (int m = 0; m < d->t[ei].size; m++, ki = jsonx_tok_next(d, ki + 1)) {
            if (!jsonx_key_eq(d, ki, "role"))
                continue;
            if (ri >= 0 && snprintf(param, sizeof param, "messages[%d].role", k) > 0)
                return rq_fail(q->out, "duplicate_parameter", param,
                               "Duplicate parameter '%s': the message names it more than once.", param);
            ri = ki + 1;
        }
        char role[16];
        size_t len = 0;
        bool fits = false;
        if (!tok_is_null(d, ri) && d->t[ri].type == JT_STRING) {
            fits = tok_unescape(d, ri, role, sizeof role - 1, &len);
            role[len] = '\0';
            if (fits && chat_role_known(role, len)) continue;
        }
        snprintf(param, sizeof param, "messages[%d].role", k);
        if (tok_is_null(d, ri))
            return missing(q, param);
        if (d->t[ri].type != JT_STRING) return type_error(q, param, "a string", ri);
        /* Echo the value only when it is short plain text. */
        bool plain = fits && len > 0;
        for (size_t i = 0; plain && i < len; i++)
            plain = role[i] > 0x20 && role[i] < 0x7F && role[i] != '\'';
        if (plain)
            return rq_fail(q->out, "invalid_value", param,
                           "Invalid value: '%s'. Supported values are: " CHAT_ROLES_TEXT ".", role);
        return rq_fail(q->out, "invalid_value", param,
                       "Invalid value for '%s'. Supported values are: " CHAT_ROLES_TEXT ".", param);
    }
    return 0;
}

/* What an element of a prompt or input array may be: all elements of one kind. */
enum text_kind { TEXT_STRING, TEXT_TOKEN, TEXT_TOKENS };

static const char *const text_kind_expected[] = {
    [TEXT_STRING] = "a string",
    [TEXT_TOKEN] = "a non-negative integer (a token)",
    [TEXT_TOKENS] = "an array of non-negative integers (tokens)",
};

/*
 * The completions prompt or the embeddings input: a string, or a non-empty
 * array of strings, of tokens or of token arrays. Embeddings also refuse
 * empty strings and empty token arrays (there is nothing to embed).
 */
static int check_text_input(struct rq *q, enum rq_field f, bool embeddings)
{
    const struct jdoc *d = q->d;
    const char *name = rq_names[f];
    int vi = q->value[f];
    char param[48];
    int64_t tok;
    if (tok_is_null(d, vi))
        return missing(q, name);
    if (d->t[vi].type == JT_STRING)
        return embeddings && tok_len(d, vi) == 0 ? empty_string(q, name) : 0;
    if (d->t[vi].type != JT_ARRAY)
        return type_error(q, name,
                          "a string, an array of strings, an array of integers (tokens) or an array of "
                          "arrays of integers",
                          vi);
    if (d->t[vi].size == 0)
        return empty_array(q, name);
    enum text_kind kind = d->t[vi + 1].type == JT_STRING  ? TEXT_STRING
                          : d->t[vi + 1].type == JT_ARRAY ? TEXT_TOKENS
                                                            : TEXT_TOKEN;
    int ei = vi + 1;
    for (int k = 0; k < d->t[vi].size; k++, ei = jsonx_tok_next(d, ei)) {
        snprintf(param, sizeof param, "%s[%d]", name, k);
        const struct jtok *e = &d->t[ei];
        switch (kind) {
        case TEXT_STRING:
            if (e->type != JT_STRING)
                return type_error(q, param, text_kind_expected[kind], ei);
            if (embeddings && tok_len(d, ei) == 0)
                return empty_string(q, param);
            break;
        case TEXT_TOKEN:
            if (!jsonx_tok_uint(d, ei, &tok))
                return type_error(q, param, k ? text_kind_expected[kind]
                                              : "a string, an integer (a token) or an array of integers",
                                  ei);
            break;
        case TEXT_TOKENS:
            if (e->type != JT_ARRAY)
                return type_error(q, param, text_kind_expected[kind], ei);
            if (embeddings && e->size == 0)
                return empty_array(q, param);
            for (int j = 0; j < e->size; j++) {
                if (!jsonx_tok_uint(d, ei + 1 + j, &tok)) {
                    snprintf(param, sizeof param, "%s[%d][%d]", name, k, j);
                    return type_error(q, param, text_kind_expected[TEXT_TOKEN], ei + 1 + j);
                }
            }
            break;
        }
    }
    return 0;
}

/* What the endpoint requires, once every member has been scanned. */
static int check_required(struct rq *q, enum jsonx_api api)
{
    if (api == JSONX_API_ANY)
        return 0;
    if (q->value[RQ_MODEL] < 0)
        return missing(q, "model");
    if (!q->out->model[0])
        return empty_string(q, "model");
    switch (api) {
    case JSONX_API_CHAT: return check_messages(q);
    case JSONX_API_COMPLETIONS: return check_text_input(q, RQ_PROMPT, false);
    case JSONX_API_EMBEDDINGS: return check_text_input(q, RQ_INPUT, true);
    case JSONX_API_ANY: break;
    }
    return 0;
}

int jsonx_scan_api_request(const char *body, size_t len, enum jsonx_api api, struct jsonx_request *out)
{
    struct jdoc d;
    memset(out, 0, sizeof *out);
    out->n = 1;
    int rc = jsonx_doc_parse(&d, body, len);
    if (rc == 0 && d.t[0].type != JT_OBJECT)
        rc = JSONX_ERR_NOT_OBJECT;
    if (rc == 0) {
        struct rq q = {.d = &d, .out = out};
        for (int f = 0; f < RQ_COUNT; f++)
            q.value[f] = -1;
        out->object.start = (size_t)d.t[0].start;
        out->object.end = (size_t)d.t[0].end;
        int ki = 1;
        for (int k = 0; k < d.t[0].size && rc == 0; k++) {
            rc = scan_member(&q, ki, ki + 1);
            ki = jsonx_tok_next(&d, ki + 1);
        }
        if (rc == 0)
            rc = check_required(&q, api);
    }
    jsonx_doc_free(&d);
    return rc;
}

int jsonx_scan_request(const char *body, size_t len, struct jsonx_request *out)
{
    return jsonx_scan_api_request(body, len, JSONX_API_ANY, out);
}

/* ---- request rewrite ---- */

/* Members an edit writes, in this order, joined by commas. */
enum { RW_MODEL = 1, RW_STREAM = 2, RW_STREAM_OPTIONS = 4, RW_INCLUDE_USAGE = 8 };

struct rw_edit {
    size_t start, end; /* replaced bytes; start == end inserts */
    unsigned members;
    bool comma; /* an insert before existing members ends with ',' */
};

static bool span_inside(struct jsonx_span sp, struct jsonx_span outer)
{
    return !span_present(sp) || (sp.start > outer.start && sp.end < outer.end);
}

/* True when the object whose '{' is at open has no members. */
static bool object_empty(const char *body, size_t open, size_t end)
{
    size_t pos = jx_skip_ws(body, open + 1, end);
    return pos < end && body[pos] == '}';
}

static int rw_emit(struct buf *out, const struct rw_edit *e, const char *new_model)
{
    static const char *const text[] = {"\"model\":", "\"stream\":true",
                                       "\"stream_options\":{\"include_usage\":true}",
                                       "\"include_usage\":true"};
    int rc = 0;
    const char *sep = "";
    for (unsigned k = 0; k < 4 && !rc; k++) {
        if (!(e->members & (1u << k)))
            continue;
        rc = buf_append_str(out, sep);
        if (!rc)
            rc = buf_append_str(out, text[k]);
        if (!rc && k == 0)
            rc = buf_append_json_str(out, new_model, strlen(new_model));
        sep = ",";
    }
    if (!rc && e->comma)
        rc = buf_append_str(out, ",");
    return rc;
}

int jsonx_rewrite_request(const char *body, size_t len, const struct jsonx_request *scan,
                          const char *new_model, bool force_stream, struct buf *out)
{
    struct jsonx_span obj = scan->object;
    if (obj.end > len || obj.end < obj.start + 2 || body[obj.start] != '{' ||
        body[obj.end - 1] != '}' || !span_inside(scan->model_member, obj) ||
        !span_inside(scan->stream_member, obj) ||
        !span_inside(scan->stream_options_member, obj) ||
        !span_inside(scan->include_usage_member, scan->stream_options_member))
        return -EINVAL;

    struct rw_edit edits[4];
    int n = 0;
    unsigned insert = (new_model && !span_present(scan->model_member) ? RW_MODEL : 0) |
                      (force_stream && !span_present(scan->stream_member) ? RW_STREAM : 0) |
                      (force_stream && !span_present(scan->stream_options_member)
                           ? RW_STREAM_OPTIONS
                           : 0);
    if (insert)
        edits[n++] = (struct rw_edit){obj.start + 1, obj.start + 1, insert,
                                      !object_empty(body, obj.start, obj.end)};
    if (new_model && span_present(scan->model_member))
        edits[n++] = (struct rw_edit){scan->model_member.start, scan->model_member.end, RW_MODEL,
                                      false};
    if (force_stream && span_present(scan->stream_member) && !scan->stream)
        edits[n++] = (struct rw_edit){scan->stream_member.start, scan->stream_member.end,
                                      RW_STREAM, false};
    struct jsonx_span so = scan->stream_options_member, iu = scan->include_usage_member;
    if (force_stream && span_present(so)) {
        if (!scan->has_stream_options) { /* "stream_options": null */
            edits[n++] = (struct rw_edit){so.start, so.end, RW_STREAM_OPTIONS, false};
        } else if (span_present(iu)) {
            if (!scan->include_usage)
                edits[n++] = (struct rw_edit){iu.start, iu.end, RW_INCLUDE_USAGE, false};
        } else {
            /* The key cannot hold a literal '{', so the first one is the value's. */
            const char *open = memchr(body + so.start, '{', so.end - so.start);
            if (!open)
                return -EINVAL;
            size_t at = (size_t)(open - body) + 1;
            edits[n++] = (struct rw_edit){at, at, RW_INCLUDE_USAGE,
                                          !object_empty(body, at - 1, so.end)};
        }
    }
    /* Few edits: insertion sort by position. Spans never overlap. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && edits[j].start < edits[j - 1].start; j--) {
            struct rw_edit tmp = edits[j];
            edits[j] = edits[j - 1];
            edits[j - 1] = tmp;
        }

    /* One allocation in the common case; the appends below enforce the limit. */
    (void)buf_reserve(out, len + 96 + (new_model ? 6 * strlen(new_model) : 0));
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        int rc = buf_append(out, body + pos, edits[i].start - pos);
        if (!rc)
            rc = rw_emit(out, &edits[i], new_model);
        if (rc)
            return rc;
        pos = edits[i].end;
    }
    return buf_append(out, body + pos, len - pos);
}
