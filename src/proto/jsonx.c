#include "proto/jsonx.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/jsonx_int.h"
#include "proto/jsonx_walk.h"

void jsonx_doc_free(struct jdoc *d)
{
    if (d->t && d->t != d->local)
        free(d->t);
    d->t = NULL;
}

size_t jsonx_number_len(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && jx_is_digit(s[i])) {
        while (i < n && jx_is_digit(s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        if (++i >= n || !jx_is_digit(s[i]))
            return 0;
        while (i < n && jx_is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !jx_is_digit(s[i]))
            return 0;
        while (i < n && jx_is_digit(s[i]))
            i++;
    }
    return i;
}

/*
 * A document's tokens, built by the one-pass cursor (jsonx_walk.h) as it checks the text:
 * every byte is looked at once, the checks are the cursor's (strict RFC 8259, nesting at most
 * JSONX_MAX_DEPTH, the same the relay's chunk scan makes), and a token is written in
 * document order as its value starts. The array starts on the stack (d->local) and doubles
 * when full; a token covers at least one byte, so it never needs more than len + 1 entries.
 */
struct jbuild {
    struct jdoc *d;
    struct jw w;
    int cap;
    int err; /* JSONX_ERR_NOMEM, or 0 */
};

/* A new token at the end of the array, its fields all set but the end; -1 out of memory. */
static int push(struct jbuild *b, enum jtok_type type, size_t start, int parent)
{
    struct jdoc *d = b->d;
    if (d->n == b->cap) {
        size_t ncap = (size_t)b->cap * 2 > d->len + 1 ? d->len + 1 : (size_t)b->cap * 2;
        if (ncap <= (size_t)b->cap) ncap = (size_t)b->cap + 1;
        struct jtok *t =
            d->t == d->local ? malloc(ncap * sizeof *t) : realloc(d->t, ncap * sizeof *t);
        if (!t) {
            b->err = JSONX_ERR_NOMEM;
            return -1;
        }
        if (d->t == d->local) memcpy(t, d->local, (size_t)b->cap * sizeof *t);
        d->t = t;
        b->cap = (int)ncap;
    }
    d->t[d->n] = (struct jtok){.type = type, .start = (int)start, .end = -1, .parent = parent};
    return d->n++;
}

/* The value at the cursor and everything in it. False on an error (in b->w.err or b->err). */
static bool build_value(struct jbuild *b, int parent)
{
    struct jw *w = &b->w;
    struct jsonx_span sp;
    bool first = true;
    char c = jw_peek(w);
    size_t start = w->pos;
    int i;
    switch (c) {
    case '{':
    case '[':
        if ((i = push(b, c == '{' ? JT_OBJECT : JT_ARRAY, start, parent)) < 0) return false;
        if (c == '{' ? !jw_object(w) : !jw_array(w)) return false;
        for (;;) {
            if (c == '{') {
                if (!jw_member(w, &first, &sp)) break;
                int k = push(b, JT_STRING, sp.start, i);
                if (k < 0) return false;
                b->d->t[k].end = (int)sp.end;
                b->d->t[k].size = 1; /* a key's one child is its value */
                if (!build_value(b, k)) return false;
            } else {
                if (!jw_element(w, &first)) break;
                if (!build_value(b, i)) return false;
            }
            b->d->t[i].size++;
        }
        if (w->err) return false;
        b->d->t[i].end = (int)w->pos; /* past the closing bracket */
        return true;
    case '"':
        if (!jw_string(w, &sp) || (i = push(b, JT_STRING, sp.start, parent)) < 0) return false;
        b->d->t[i].end = (int)sp.end;
        return true;
    default:
        if (!jw_skip(w) || (i = push(b, JT_PRIMITIVE, start, parent)) < 0) return false;
        b->d->t[i].end = (int)w->pos;
        return true;
    }
}

/* Tokenize and validate one JSON text (any top-level value). */
int jsonx_doc_parse(struct jdoc *d, const char *s, size_t len)
{
    d->s = s;
    d->len = len;
    d->t = d->local;
    d->n = 0;
    if (len >= INT_MAX) return JSONX_ERR_NOMEM;
    struct jbuild b = {.d = d, .cap = JSONX_LOCAL_TOKENS};
    jw_init(&b.w, s, len);
    bool ok = build_value(&b, -1);
    if (b.err) return b.err;
    int rc = jw_end(&b.w);
    return rc ? rc : ok ? 0 : JSONX_ERR_SYNTAX;
}

/* Index of the token after the subtree at i. Starts grow along the token
 * array and a subtree's tokens lie inside its text, hence the bisection. */
int jsonx_tok_next(const struct jdoc *d, int i)
{
    const struct jtok *t = &d->t[i];
    if (t->type == JT_STRING || t->type == JT_PRIMITIVE) return i + 1;
    int lo = i + 1, hi = d->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (d->t[mid].start < t->end)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t put_utf8(unsigned cp, char u8[4])
{
    static const unsigned char lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t k = n - 1; k > 0; k--, cp >>= 6)
        u8[k] = (char)(0x80 | (cp & 0x3F));
    u8[0] = (char)(lead[n] | cp);
    return n;
}

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = v * 16 + (unsigned)(jx_is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Decode the next character of a validated string body s[0..n) at *pos into
 * u8 (1-4 bytes); returns how many. Lone surrogates become U+FFFD. */
size_t jsonx_str_next(const char *s, size_t n, size_t *pos, char u8[4])
{
    size_t i = *pos;
    if (s[i] != '\\') {
        u8[0] = s[i];
        *pos = i + 1;
        return 1;
    }
    char c = s[i + 1];
    *pos = i + 2;
    switch (c) {
    case 'b': u8[0] = '\b'; return 1;
    case 'f': u8[0] = '\f'; return 1;
    case 'n': u8[0] = '\n'; return 1;
    case 'r': u8[0] = '\r'; return 1;
    case 't': u8[0] = '\t'; return 1;
    case 'u': break;
    default: u8[0] = c; return 1;
    }
    unsigned cp = hex4(s + i + 2);
    *pos = i + 6;
    if (cp >= 0xD800 && cp < 0xDC00 && i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u') {
        unsigned lo = hex4(s + i + 8);
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *pos = i + 12;
        }
    }
    if (cp >= 0xD800 && cp < 0xE000)
        cp = 0xFFFD;
    return put_utf8(cp, u8);
}

static bool key_eq_impl(const struct jdoc *d, int i, const char *lit, bool fold_case)
{
    const char *s = d->s + d->t[i].start;
    size_t n = (size_t)(d->t[i].end - d->t[i].start);
    size_t litlen = strlen(lit);
    if (!fold_case && !memchr(s, '\\', n))
        return n == litlen && memcmp(s, lit, n) == 0;
    size_t pos = 0, j = 0;
    while (pos < n) {
        char u8[4];
        size_t k = jsonx_str_next(s, n, &pos, u8);
        for (size_t m = 0; m < k; m++, j++) {
            if (j >= litlen)
                return false;
            char a = u8[m];
            if (fold_case && a >= 'A' && a <= 'Z')
                a = (char)(a | 0x20);
            if (a != lit[j])
                return false;
        }
    }
    return j == litlen;
}

bool jsonx_key_eq(const struct jdoc *d, int i, const char *lit)
{
    return key_eq_impl(d, i, lit, false);
}

/* Value token of member `key` in object oi, or -1. */
int jsonx_obj_get(const struct jdoc *d, int oi, const char *key)
{
    if (oi < 0 || d->t[oi].type != JT_OBJECT) return -1;
    int ki = oi + 1;
    for (int k = 0; k < d->t[oi].size; k++) {
        if (jsonx_key_eq(d, ki, key))
            return ki + 1;
        ki = jsonx_tok_next(d, ki + 1);
    }
    return -1;
}

static bool tok_nonempty_string(const struct jdoc *d, int i)
{
    return i >= 0 && d->t[i].type == JT_STRING && tok_len(d, i) > 0;
}

/* A plain non-negative integer literal (no fraction, no exponent). */
bool jsonx_tok_uint(const struct jdoc *d, int i, int64_t *out)
{
    if (d->t[i].type != JT_PRIMITIVE) return false;
    const char *s = d->s + d->t[i].start;
    size_t n = tok_len(d, i);
    int64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!jx_is_digit(s[k]) || v > (INT64_MAX - (s[k] - '0')) / 10)
            return false;
        v = v * 10 + (s[k] - '0');
    }
    *out = v;
    return true;
}

/* Any number as a count: fractions truncated, out of range or negative gives 0. */
static int64_t tok_count(const struct jdoc *d, int i)
{
    int64_t v;
    if (i < 0 || d->t[i].type != JT_PRIMITIVE) return 0;
    if (jsonx_tok_uint(d, i, &v))
        return v;
    char tmp[64];
    size_t n = tok_len(d, i);
    const char *s = d->s + d->t[i].start;
    if (n >= sizeof tmp || !(jx_is_digit(s[0]) || s[0] == '-'))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    double x = strtod(tmp, NULL);
    if (!(x >= 0 && x < 9.2e18))
        return 0;
    return (int64_t)x;
}

/* ---- stream chunk scan ---- */

static size_t str_chars(const struct jdoc *d, int i)
{
    return i >= 0 && d->t[i].type == JT_STRING ? tok_len(d, i) : 0;
}

/* A function call's name and arguments, as generated text. */
static size_t call_chars(const struct jdoc *d, int fi)
{
    return fi >= 0 && d->t[fi].type == JT_OBJECT
               ? str_chars(d, jsonx_obj_get(d, fi, "name")) +
                     str_chars(d, jsonx_obj_get(d, fi, "arguments"))
               : 0;
}

static void scan_delta(const struct jdoc *d, int di, struct jsonx_chunk *out)
{
    if (di < 0 || d->t[di].type != JT_OBJECT) return;
    int ti;
    if (tok_nonempty_string(d, jsonx_obj_get(d, di, "content")) ||
        tok_nonempty_string(d, jsonx_obj_get(d, di, "reasoning_content")) ||
        tok_nonempty_string(d, jsonx_obj_get(d, di, "reasoning")) ||
        tok_nonempty_string(d, jsonx_obj_get(d, di, "refusal")))
        out->has_content = true;
    /* Some servers send both reasoning names for the same text: count one. */
    size_t reasoning = str_chars(d, jsonx_obj_get(d, di, "reasoning_content"));
    if (!reasoning)
        reasoning = str_chars(d, jsonx_obj_get(d, di, "reasoning"));
    out->content_chars += str_chars(d, jsonx_obj_get(d, di, "content")) +
                          str_chars(d, jsonx_obj_get(d, di, "refusal")) + reasoning;
    ti = jsonx_obj_get(d, di, "tool_calls");
    if (ti >= 0 && d->t[ti].type == JT_ARRAY && d->t[ti].size > 0) {
        out->has_content = true;
        int ei = ti + 1;
        for (int k = 0; k < d->t[ti].size; k++, ei = jsonx_tok_next(d, ei))
            if (d->t[ei].type == JT_OBJECT)
                out->content_chars += call_chars(d, jsonx_obj_get(d, ei, "function"));
    }
    ti = jsonx_obj_get(d, di, "function_call");
    if (ti >= 0 && d->t[ti].type == JT_OBJECT) {
        out->has_content = true;
        out->content_chars += call_chars(d, ti);
    }
}

static void scan_usage(const struct jdoc *d, int ui, struct jsonx_chunk *out)
{
    out->has_usage = true;
    out->prompt_tokens = tok_count(d, jsonx_obj_get(d, ui, "prompt_tokens"));
    out->completion_tokens = tok_count(d, jsonx_obj_get(d, ui, "completion_tokens"));
    out->reasoning_tokens =
        tok_count(d, jsonx_obj_get(d, jsonx_obj_get(d, ui, "completion_tokens_details"), "reasoning_tokens"));
    int ci = jsonx_obj_get(d, jsonx_obj_get(d, ui, "prompt_tokens_details"), "cached_tokens");
    if (ci < 0)
        ci = jsonx_obj_get(d, ui, "prompt_cache_hit_tokens");
    out->cached_tokens = tok_count(d, ci);
}

int jsonx_scan_chunk_tokens(const char *data, size_t len, struct jsonx_chunk *out)
{
    struct jdoc d;
    memset(out, 0, sizeof *out);
    int rc = jsonx_doc_parse(&d, data, len);
    if (rc == 0 && d.t[0].type != JT_OBJECT) rc = JSONX_ERR_NOT_OBJECT;
    if (rc) {
        jsonx_doc_free(&d);
        return rc;
    }
    out->valid = true;
    out->multiline = memchr(data, '\n', len) != NULL;
    int ki = 1;
    for (int k = 0; k < d.t[0].size; k++) {
        int vi = ki + 1;
        if (jsonx_key_eq(&d, ki, "choices") && d.t[vi].type == JT_ARRAY) {
            out->choices_empty = d.t[vi].size == 0;
            int ci = vi + 1;
            for (int c = 0; c < d.t[vi].size; c++, ci = jsonx_tok_next(&d, ci)) {
                if (d.t[ci].type != JT_OBJECT) continue;
                scan_delta(&d, jsonx_obj_get(&d, ci, "delta"), out);
                scan_delta(&d, jsonx_obj_get(&d, ci, "message"), out);
                if (tok_nonempty_string(&d, jsonx_obj_get(&d, ci, "text")))
                    out->has_content = true;
                out->content_chars += str_chars(&d, jsonx_obj_get(&d, ci, "text"));
                if (!tok_is_null(&d, jsonx_obj_get(&d, ci, "finish_reason")))
                    out->has_finish = out->has_content = true;
            }
        } else if (jsonx_key_eq(&d, ki, "usage") && d.t[vi].type == JT_OBJECT) {
            scan_usage(&d, vi, out);
        } else if (jsonx_key_eq(&d, ki, "error") && !tok_is_null(&d, vi)) {
            out->has_error = true;
        }
        ki = jsonx_tok_next(&d, vi);
    }
    jsonx_doc_free(&d);
    return 0;
}

/* ---- error message ---- */

/* Writes text with whitespace and control characters collapsed to one space. */
struct msg_writer {
    char *msg;
    size_t cap, len;
    bool space, full;
};

static void mw_put(struct msg_writer *w, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !w->full; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7F) {
            w->space = w->len > 0;
            continue;
        }
        size_t need = w->space ? 2 : 1;
        if (w->len + need > w->cap - 1) {
            w->full = true;
            break;
        }
        if (w->space)
            w->msg[w->len++] = ' ';
        w->space = false;
        w->msg[w->len++] = (char)c;
    }
}

/* NUL-terminate, first dropping a UTF-8 sequence the cut left incomplete. */
static size_t mw_finish(struct msg_writer *w)
{
    if (w->full && w->len > 0) {
        size_t i = w->len, cont = 0;
        while (i > 0 && ((unsigned char)w->msg[i - 1] & 0xC0) == 0x80 && cont < 3) {
            i--;
            cont++;
        }
        if (i > 0) {
            unsigned char lead = (unsigned char)w->msg[i - 1];
            size_t want = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
            if (lead >= 0xC0 && want != cont)
                w->len = i - 1;
        }
    }
    w->msg[w->len] = '\0';
    return w->len;
}

static bool str_has_prefix_ci(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && strncasecmp(s, lit, k) == 0;
}

static const char *find_ci(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, lit, k) == 0)
            return s + i;
    return NULL;
}

/* One HTML character reference at s (which starts with '&'); returns bytes used, 0 if none. */
static size_t html_entity(const char *s, size_t n, char u8[4], size_t *u8len)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
                 {"&apos;", '\''}, {"&nbsp;", ' '}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (str_has_prefix_ci(s, n, named[i].name)) {
            u8[0] = named[i].c;
            *u8len = 1;
            return strlen(named[i].name);
        }
    if (n < 4 || s[1] != '#')
        return 0;
    bool hex = s[2] == 'x' || s[2] == 'X';
    unsigned long cp = 0;
    size_t i = hex ? 3 : 2, digits = 0;
    for (; i < n && digits < 7; i++, digits++) {
        char c = s[i];
        if (jx_is_digit(c))
            cp = cp * (hex ? 16 : 10) + (unsigned long)(c - '0');
        else if (hex && jx_is_hex(c))
            cp = cp * 16 + (unsigned long)((c | 0x20) - 'a' + 10);
        else
            break;
    }
    if (!digits || i >= n || s[i] != ';')
        return 0;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
        cp = 0xFFFD;
    *u8len = put_utf8((unsigned)cp, u8);
    return i + 1;
}

/* Text of HTML (or plain text) with tags, comments, scripts and styles dropped. */
static void html_text(struct msg_writer *w, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !w->full) {
        /* Only '<' followed by a letter, '/', '!' or '?' opens a tag: "a < b" is text. */
        char next = i + 1 < n ? (char)(s[i + 1] | 0x20) : 0;
        if (s[i] == '<' && ((next >= 'a' && next <= 'z') || next == '/' || next == '!' ||
                            next == '?')) {
            const char *close = NULL;
            if (str_has_prefix_ci(s + i, n - i, "<!--")) {
                close = find_ci(s + i + 4, n - i - 4, "-->");
                i = close ? (size_t)(close - s) + 3 : n;
            } else if (str_has_prefix_ci(s + i, n - i, "<script") ||
                       str_has_prefix_ci(s + i, n - i, "<style")) {
                const char *tag = s[i + 2] == 'c' || s[i + 2] == 'C' ? "</script" : "</style";
                close = find_ci(s + i, n - i, tag);
                const char *gt = close ? memchr(close, '>', n - (size_t)(close - s)) : NULL;
                i = gt ? (size_t)(gt - s) + 1 : n;
            } else {
                const char *gt = memchr(s + i, '>', n - i);
                i = gt ? (size_t)(gt - s) + 1 : n;
            }
            w->space = w->len > 0; /* tags separate words */
            continue;
        }
        if (s[i] == '&') {
            char u8[4];
            size_t u8len = 0, used = html_entity(s + i, n - i, u8, &u8len);
            if (used) {
                mw_put(w, u8, u8len);
                i += used;
                continue;
            }
        }
        mw_put(w, s + i, 1);
        i++;
    }
}

/* The message string of a JSON error body, or -1. */
static int error_message_token(const struct jdoc *d)
{
    int top = 0;
    if (d->t[0].type == JT_ARRAY && d->t[0].size > 0) top = 1;
    if (d->t[top].type != JT_OBJECT) return -1;
    int ei = jsonx_obj_get(d, top, "error");
    if (ei >= 0 && d->t[ei].type == JT_STRING) return ei;
    int cand[] = {jsonx_obj_get(d, ei, "message"), jsonx_obj_get(d, ei, "msg"), -1, -1, -1};
    /* "Message" (AWS) and friends: look the top level over case-insensitively. */
    int ki = top + 1;
    for (int k = 0; k < d->t[top].size; k++) {
        if (key_eq_impl(d, ki, "message", true))
            cand[2] = ki + 1;
        else if (jsonx_key_eq(d, ki, "detail"))
            cand[3] = ki + 1;
        else if (jsonx_key_eq(d, ki, "msg"))
            cand[4] = ki + 1;
        ki = jsonx_tok_next(d, ki + 1);
    }
    /* FastAPI's validation errors: {"detail":[{"msg":...}]} */
    if (cand[3] >= 0 && d->t[cand[3]].type == JT_ARRAY && d->t[cand[3]].size > 0)
        cand[3] = jsonx_obj_get(d, cand[3] + 1, "msg");
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (tok_nonempty_string(d, cand[i]))
            return cand[i];
    return -1;
}

size_t jsonx_error_message(const char *body, size_t len, char *msg, size_t cap)
{
    if (cap == 0)
        return 0;
    struct msg_writer w = {msg, cap, 0, false, false};
    size_t start = jx_skip_ws(body, 0, len);
    if (start < len && (body[start] == '{' || body[start] == '[')) {
        struct jdoc d;
        int rc = jsonx_doc_parse(&d, body, len);
        int mi = rc == 0 ? error_message_token(&d) : -1;
        if (mi >= 0) {
            const char *s = body + d.t[mi].start;
            size_t n = tok_len(&d, mi), pos = 0;
            while (pos < n && !w.full) {
                char u8[4];
                size_t k = jsonx_str_next(s, n, &pos, u8);
                mw_put(&w, u8, k);
            }
        }
        jsonx_doc_free(&d);
        if (mi >= 0)
            return mw_finish(&w);
    }
    const char *title = find_ci(body, len, "<title");
    if (title) {
        const char *gt = memchr(title, '>', len - (size_t)(title - body));
        const char *end = gt ? find_ci(gt, len - (size_t)(gt - body), "</title") : NULL;
        if (end) {
            html_text(&w, gt + 1, (size_t)(end - gt - 1));
            if (w.len > 0)
                return mw_finish(&w);
        }
    }
    html_text(&w, body, len);
    return mw_finish(&w);
}
