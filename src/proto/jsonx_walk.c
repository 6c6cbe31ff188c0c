/*
 * The one-pass cursor (jsonx_walk.h) and, on it, the scan of one streamed
 * chunk (jsonx_scan_chunk): the relay's per-event work, so it neither
 * tokenizes nor allocates. Its verdicts equal the tokenizing scan's
 * (jsonx_scan_chunk_tokens), which the fuzz target checks.
 */
#include "proto/jsonx_walk.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "proto/jsonx_int.h"

void jw_init(struct jw *w, const char *s, size_t n)
{
    w->s = s;
    w->n = n;
    w->pos = 0;
    w->depth = 0;
    w->err = 0;
    w->plain_start = 0;
}

static bool fail(struct jw *w, int err)
{
    if (!w->err)
        w->err = err;
    w->pos = w->n;
    return false;
}

static inline void ws(struct jw *w)
{
    /* compact JSON, the usual case: the next byte is no space */
    if (w->pos < w->n && !jx_is_ws(w->s[w->pos])) return;
    w->pos = jx_skip_ws(w->s, w->pos, w->n);
}

char jw_peek_ws(struct jw *w)
{
    ws(w);
    return !w->err && w->pos < w->n ? w->s[w->pos] : 0;
}

static bool open(struct jw *w, char c)
{
    if (jw_peek(w) != c)
        return fail(w, JSONX_ERR_SYNTAX);
    if (++w->depth > JSONX_MAX_DEPTH)
        return fail(w, JSONX_ERR_TOO_DEEP);
    w->pos++;
    return true;
}

/* Before the next member or element: the closing bracket (taken, false), or a comma
   unless it is the first (then true with pos at what follows). */
static bool next(struct jw *w, bool *first, char close)
{
    char c = jw_peek(w);
    if (c == close && *first) {
        w->pos++;
        w->depth--;
        return false;
    }
    if (!*first) {
        if (c == close) {
            w->pos++;
            w->depth--;
            return false;
        }
        if (c != ',')
            return fail(w, JSONX_ERR_SYNTAX);
        w->pos++;
        ws(w);
    }
    *first = false;
    return w->pos < w->n || fail(w, JSONX_ERR_SYNTAX);
}

bool jw_object(struct jw *w)
{
    return open(w, '{');
}

bool jw_array(struct jw *w)
{
    return open(w, '[');
}

bool jw_member(struct jw *w, bool *first, struct jsonx_span *key)
{
    if (!next(w, first, '}'))
        return false;
    if (w->s[w->pos] != '"' || !jw_string(w, key))
        return fail(w, JSONX_ERR_SYNTAX);
    if (jw_peek(w) != ':')
        return fail(w, JSONX_ERR_SYNTAX);
    w->pos++;
    ws(w);
    return true;
}

bool jw_element(struct jw *w, bool *first)
{
    return next(w, first, ']');
}

bool jw_string(struct jw *w, struct jsonx_span *body)
{
    if (jw_peek(w) != '"')
        return fail(w, JSONX_ERR_SYNTAX);
    const char *s = w->s;
    size_t i = w->pos + 1, n = w->n;
    bool plain = true;
    body->start = i;
    for (;;) {
        i = buf_json_plain_end(s, i, n);
        if (i >= n)
            return fail(w, JSONX_ERR_SYNTAX);
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(w, JSONX_ERR_SYNTAX);
        /* a backslash */
        if (i + 1 >= n)
            return fail(w, JSONX_ERR_SYNTAX);
        plain = false;
        char e = s[i + 1];
        if (e == 'u') {
            if (n - i < 6 || !jx_is_hex(s[i + 2]) || !jx_is_hex(s[i + 3]) || !jx_is_hex(s[i + 4]) ||
                !jx_is_hex(s[i + 5]))
                return fail(w, JSONX_ERR_SYNTAX);
            i += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                   e == 't') {
            i += 2;
        } else {
            return fail(w, JSONX_ERR_SYNTAX);
        }
    }
    body->end = i;
    w->pos = i + 1;
    w->plain_start = plain ? body->start + 1 : 0;
    return true;
}

/* After a number or literal comes a delimiter (not even the end of the text: a bare
   top-level number is refused, as strict tokenizers such as jsmn's do). */
static bool delimited(const struct jw *w)
{
    if (w->pos >= w->n)
        return false;
    char c = w->s[w->pos];
    return jx_is_ws(c) || c == ',' || c == ']' || c == '}';
}

bool jw_number(struct jw *w, struct jsonx_span *num)
{
    ws(w);
    size_t len = jsonx_number_len(w->s + w->pos, w->n - w->pos);
    if (len == 0)
        return fail(w, JSONX_ERR_SYNTAX);
    num->start = w->pos;
    num->end = w->pos + len;
    w->pos = num->end;
    return delimited(w) || fail(w, JSONX_ERR_SYNTAX);
}

static bool literal(struct jw *w, const char *lit, size_t len)
{
    if (w->n - w->pos < len || memcmp(w->s + w->pos, lit, len) != 0)
        return fail(w, JSONX_ERR_SYNTAX);
    w->pos += len;
    return delimited(w) || fail(w, JSONX_ERR_SYNTAX);
}

bool jw_null(struct jw *w)
{
    if (jw_peek(w) != 'n')
        return false;
    return literal(w, "null", 4);
}

bool jw_skip(struct jw *w)
{
    struct jsonx_span sp;
    bool first = true;
    switch (jw_peek(w)) {
    case '{':
        if (!jw_object(w))
            return false;
        while (jw_member(w, &first, &sp))
            if (!jw_skip(w))
                return false;
        return !w->err;
    case '[':
        if (!jw_array(w))
            return false;
        while (jw_element(w, &first))
            if (!jw_skip(w))
                return false;
        return !w->err;
    case '"':
        return jw_string(w, &sp);
    case 't':
        return literal(w, "true", 4);
    case 'f':
        return literal(w, "false", 5);
    case 'n':
        return literal(w, "null", 4);
    default:
        return jw_number(w, &sp);
    }
}

int jw_end(struct jw *w)
{
    if (w->err)
        return w->err;
    ws(w);
    return w->pos == w->n ? 0 : JSONX_ERR_SYNTAX;
}

bool jw_key_is(const char *s, const struct jsonx_span *key, const char *lit, size_t litlen)
{
    const char *k = s + key->start;
    size_t n = key->end - key->start;
    if (n == litlen && memcmp(k, lit, n) == 0)
        return true;
    if (n <= litlen || !memchr(k, '\\', n)) /* an escape is longer than what it stands for */
        return false;
    size_t pos = 0, j = 0;
    while (pos < n) {
        char u8[4];
        size_t m = jsonx_str_next(k, n, &pos, u8);
        if (j + m > litlen || memcmp(lit + j, u8, m) != 0)
            return false;
        j += m;
    }
    return j == litlen;
}

int64_t jw_count(const char *s, const struct jsonx_span *num)
{
    const char *p = s + num->start;
    size_t n = num->end - num->start;
    int64_t v = 0;
    size_t k = 0;
    for (; k < n && jx_is_digit(p[k]); k++) {
        if (v > (INT64_MAX - (p[k] - '0')) / 10)
            break;
        v = v * 10 + (p[k] - '0');
    }
    if (k == n && n > 0)
        return v;
    char tmp[64];
    if (n == 0 || n >= sizeof tmp || !(jx_is_digit(p[0]) || p[0] == '-'))
        return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    double x = strtod(tmp, NULL);
    if (!(x >= 0 && x < 9.2e18))
        return 0;
    return (int64_t)x;
}

int64_t jw_take_count(struct jw *w)
{
    char c = jw_peek(w);
    struct jsonx_span num;
    if (c == '-' || jx_is_digit(c))
        return jw_number(w, &num) ? jw_count(w->s, &num) : 0;
    jw_skip(w);
    return 0;
}

/* ---- the chunk scan ----
 * Where the tokenizing scan looks a member up (jsonx_obj_get: the first of that name),
 * this one takes the first occurrence and skips the later ones. */

/* A string value's escaped length; 0 (and skipped) when the value is not a string. */
static size_t take_str(struct jw *w, struct jsonx_span *sp)
{
    sp->start = sp->end = 0;
    if (jw_peek(w) != '"') {
        jw_skip(w);
        return 0;
    }
    return jw_string(w, sp) ? sp->end - sp->start : 0;
}

/* A function call object's name and arguments, as generated text. */
static size_t call_chars(struct jw *w)
{
    if (jw_peek(w) != '{')
        return jw_skip(w), 0;
    bool first = true, name = false, args = false;
    size_t sum = 0;
    struct jsonx_span key, sp;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        if (!name && JW_KEY(w, &key, "name")) {
            name = true;
            sum += take_str(w, &sp);
        } else if (!args && JW_KEY(w, &key, "arguments")) {
            args = true;
            sum += take_str(w, &sp);
        } else {
            jw_skip(w);
        }
    }
    return sum;
}

static void scan_tool_calls(struct jw *w, struct jsonx_chunk *out)
{
    if (jw_peek(w) != '[') {
        jw_skip(w);
        return;
    }
    bool first = true;
    jw_array(w);
    while (jw_element(w, &first)) {
        out->has_content = true;
        if (jw_peek(w) != '{') {
            jw_skip(w);
            continue;
        }
        bool efirst = true, fn = false;
        struct jsonx_span key;
        jw_object(w);
        while (jw_member(w, &efirst, &key)) {
            if (!fn && JW_KEY(w, &key, "function")) {
                fn = true;
                out->content_chars += call_chars(w);
            } else {
                jw_skip(w);
            }
        }
    }
}

static void note_text(struct jsonx_chunk *out, const struct jsonx_span *body)
{
    out->n_text++;
    out->text = *body;
}

enum { D_CONTENT, D_REASONING_CONTENT, D_REASONING, D_REFUSAL, D_TOOL_CALLS, D_FUNCTION_CALL, D_N };

static int delta_key(const struct jw *w, const struct jsonx_span *key)
{
    if (JW_KEY(w, key, "content"))
        return D_CONTENT;
    if (JW_KEY(w, key, "reasoning_content"))
        return D_REASONING_CONTENT;
    if (JW_KEY(w, key, "reasoning"))
        return D_REASONING;
    if (JW_KEY(w, key, "refusal"))
        return D_REFUSAL;
    if (JW_KEY(w, key, "tool_calls"))
        return D_TOOL_CALLS;
    if (JW_KEY(w, key, "function_call"))
        return D_FUNCTION_CALL;
    return -1;
}

/* A choice's "delta" (is_delta) or "message" object. */
static void scan_delta(struct jw *w, struct jsonx_chunk *out, bool is_delta)
{
    if (jw_peek(w) != '{') {
        jw_skip(w);
        return;
    }
    bool first = true, seen[D_N] = {false};
    size_t len[D_N] = {0};
    struct jsonx_span key, sp;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        int k = delta_key(w, &key);
        if (k < 0 || seen[k]) {
            jw_skip(w);
            continue;
        }
        seen[k] = true;
        if (is_delta && (k == D_TOOL_CALLS || k == D_FUNCTION_CALL))
            out->delta_calls = true;
        if (k == D_TOOL_CALLS) {
            scan_tool_calls(w, out);
        } else if (k == D_FUNCTION_CALL) {
            if (jw_peek(w) == '{')
                out->has_content = true;
            out->content_chars += call_chars(w);
        } else {
            len[k] = take_str(w, &sp);
            if (len[k] > 0) note_text(out, &sp);
            if (k == D_CONTENT && is_delta && len[k] > 0 && out->n_content++ == 0)
                out->content = sp;
        }
    }
    if (len[D_CONTENT] || len[D_REASONING_CONTENT] || len[D_REASONING] || len[D_REFUSAL])
        out->has_content = true;
    /* Some servers send both reasoning names for the same text: count one. */
    out->content_chars += len[D_CONTENT] + len[D_REFUSAL] +
                          (len[D_REASONING_CONTENT] ? len[D_REASONING_CONTENT] : len[D_REASONING]);
}

static void scan_choice(struct jw *w, struct jsonx_chunk *out)
{
    bool first = true, delta = false, message = false, text = false, finish = false;
    struct jsonx_span key, sp;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        if (!delta && JW_KEY(w, &key, "delta")) {
            delta = true;
            scan_delta(w, out, true);
        } else if (!message && JW_KEY(w, &key, "message")) {
            message = true;
            scan_delta(w, out, false);
        } else if (!text && JW_KEY(w, &key, "text")) {
            text = true;
            size_t n = take_str(w, &sp);
            out->content_chars += n;
            if (n) {
                out->has_content = true;
                note_text(out, &sp);
            }
        } else if (!finish && JW_KEY(w, &key, "finish_reason")) {
            finish = true;
            if (!jw_null(w) && jw_skip(w))
                out->has_finish = out->has_content = true;
        } else {
            jw_skip(w);
        }
    }
}

/* Like a lookup that finds nothing, a detail object that is not an object gives "absent". */
static bool take_detail(struct jw *w, const char *name, size_t namelen, int64_t *v)
{
    if (jw_peek(w) != '{') {
        jw_skip(w);
        return false;
    }
    bool first = true, found = false;
    struct jsonx_span key;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        if (!found && jw_key_is(w->s, &key, name, namelen)) {
            found = true;
            *v = jw_take_count(w);
        } else {
            jw_skip(w);
        }
    }
    return found;
}

static void scan_usage(struct jw *w, struct jsonx_chunk *out)
{
    bool first = true, pt = false, ct = false, ctd = false, ptd = false, hit = false, cached = false;
    int64_t hit_tokens = 0, cached_tokens = 0, reasoning = 0;
    struct jsonx_span key;
    out->has_usage = true;
    out->prompt_tokens = out->completion_tokens = 0;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        if (!pt && JW_KEY(w, &key, "prompt_tokens")) {
            pt = true;
            out->prompt_tokens = jw_take_count(w);
        } else if (!ct && JW_KEY(w, &key, "completion_tokens")) {
            ct = true;
            out->completion_tokens = jw_take_count(w);
        } else if (!ctd && JW_KEY(w, &key, "completion_tokens_details")) {
            ctd = true;
            take_detail(w, "reasoning_tokens", 16, &reasoning);
        } else if (!ptd && JW_KEY(w, &key, "prompt_tokens_details")) {
            ptd = true;
            cached = take_detail(w, "cached_tokens", 13, &cached_tokens);
        } else if (!hit && JW_KEY(w, &key, "prompt_cache_hit_tokens")) {
            hit = true;
            hit_tokens = jw_take_count(w);
        } else {
            jw_skip(w);
        }
    }
    out->reasoning_tokens = reasoning;
    out->cached_tokens = cached ? cached_tokens : hit ? hit_tokens : 0;
}

int jsonx_scan_chunk(const char *data, size_t len, struct jsonx_chunk *out)
{
    struct jw w;
    memset(out, 0, sizeof *out);
    jw_init(&w, data, len);
    if (jw_peek(&w) != '{') {
        int rc = jw_skip(&w) ? jw_end(&w) : w.err;
        return rc ? rc : JSONX_ERR_NOT_OBJECT;
    }
    bool first = true, id = false, model = false, created = false;
    struct jsonx_span key;
    jw_object(&w);
    while (jw_member(&w, &first, &key)) {
        if (JW_KEY(&w, &key, "choices") && jw_peek(&w) == '[') {
            bool cfirst = true;
            out->choices_empty = true;
            jw_array(&w);
            while (jw_element(&w, &cfirst)) {
                out->choices_empty = false;
                if (jw_peek(&w) == '{')
                    scan_choice(&w, out);
                else
                    jw_skip(&w);
            }
        } else if (JW_KEY(&w, &key, "usage") && jw_peek(&w) == '{') {
            scan_usage(&w, out);
        } else if (JW_KEY(&w, &key, "error")) {
            if (!jw_null(&w) && jw_skip(&w))
                out->has_error = true;
        } else if (!id && JW_KEY(&w, &key, "id")) {
            id = true;
            take_str(&w, &out->id);
        } else if (!model && JW_KEY(&w, &key, "model")) {
            model = true;
            take_str(&w, &out->model);
        } else if (!created && JW_KEY(&w, &key, "created")) {
            created = true;
            char c = jw_peek(&w);
            if (c == '-' || jx_is_digit(c))
                jw_number(&w, &out->created);
            else
                jw_skip(&w);
        } else if (jw_peek(&w) == '"') {
            jw_string(&w, &out->pad); /* read by nothing: the last such is noted */
        } else {
            jw_skip(&w);
        }
    }
    int rc = jw_end(&w);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->valid = true;
    out->multiline = memchr(data, '\n', len) != NULL;
    return 0;
}

int jsonx_unescape(const char *s, size_t n, struct buf *out)
{
    size_t pos = 0;
    while (pos < n) {
        const char *bs = memchr(s + pos, '\\', n - pos);
        size_t plain = bs ? (size_t)(bs - s) - pos : n - pos;
        if (plain && buf_append(out, s + pos, plain) < 0)
            return -1;
        pos += plain;
        if (pos < n) {
            char u8[4];
            size_t k = jsonx_str_next(s, n, &pos, u8);
            if (buf_append(out, u8, k) < 0)
                return -1;
        }
    }
    return 0;
}

size_t jsonx_unescape_into(const char *s, size_t n, char *dst, size_t cap)
{
    if (n < cap && !memchr(s, '\\', n)) { /* nothing to decode: the usual id or model name */
        memcpy(dst, s, n);
        dst[n] = '\0';
        return n;
    }
    size_t pos = 0, len = 0;
    while (pos < n) {
        char u8[4];
        size_t k = jsonx_str_next(s, n, &pos, u8);
        if (cap - len <= k)
            return SIZE_MAX;
        memcpy(dst + len, u8, k);
        len += k;
    }
    if (cap == 0)
        return SIZE_MAX;
    dst[len] = '\0';
    return len;
}
