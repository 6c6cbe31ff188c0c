/*
 * jsonx's insides, shared by its files and by no other module: jsonx.c (the
 * tokens of a document, the token helpers, the tokenizing scan of streamed
 * chunks and provider errors), jsonx_request.c (the scan, checks and rewrite
 * of a client's request body) and jsonx_walk.c (the one-pass cursor, which
 * also builds the tokens).
 */
#ifndef UNBUSY_JSONX_INT_H
#define UNBUSY_JSONX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One value of a document, in document order: a container's members or elements follow it
   (a member as its key, a string token of size 1, then the key's value). */
enum jtok_type { JT_OBJECT = 1, JT_ARRAY, JT_STRING, JT_PRIMITIVE };
struct jtok {
    enum jtok_type type;
    int start, end; /* the value's text; a string's without its quotes */
    int size;       /* members of an object, elements of an array, 1 for a key, else 0 */
    int parent;     /* the container's (or a value's key's) token; -1 at the top */
};

/* Enough for any streamed chunk, so the hot path never allocates. */
#define JSONX_LOCAL_TOKENS 256

/*
 * A tokenized and validated document: a body that passes is strict RFC 8259
 * JSON, which is what makes splicing into it safe.
 */
struct jdoc {
    const char *s;
    size_t len;
    struct jtok *t;
    int n;
    struct jtok local[JSONX_LOCAL_TOKENS];
};

/* Tokenize and validate one JSON text (any top-level value) of s[0..len).
   Returns 0 or a JSONX_ERR_*; call jsonx_doc_free either way. */
int jsonx_doc_parse(struct jdoc *d, const char *s, size_t len);
void jsonx_doc_free(struct jdoc *d);
/* Index of the token after the subtree at i. */
int jsonx_tok_next(const struct jdoc *d, int i);
/* Decode the next character of a validated string body s[0..n) at *pos into
   u8 (1-4 bytes); returns how many. Lone surrogates become U+FFFD. */
size_t jsonx_str_next(const char *s, size_t n, size_t *pos, char u8[4]);
/* Whether string token i, unescaped, is exactly lit. */
bool jsonx_key_eq(const struct jdoc *d, int i, const char *lit);
/* Value token of member `key` in object oi, or -1. */
int jsonx_obj_get(const struct jdoc *d, int oi, const char *key);
/* A plain non-negative integer literal (no sign, fraction or exponent) that fits int64. */
bool jsonx_tok_uint(const struct jdoc *d, int i, int64_t *out);

static inline bool jx_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline size_t jx_skip_ws(const char *s, size_t pos, size_t end)
{
    while (pos < end && jx_is_ws(s[pos]))
        pos++;
    return pos;
}

static inline bool jx_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool jx_is_hex(char c)
{
    return jx_is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The length of the JSON number (RFC 8259 grammar) that starts s[0..n), 0 when none does. */
size_t jsonx_number_len(const char *s, size_t n);

/* Where a value's text starts and ends (string tokens exclude the quotes). */
static inline size_t tok_vstart(const struct jtok *t)
{
    return (size_t)t->start - (t->type == JT_STRING);
}

static inline size_t tok_vend(const struct jtok *t)
{
    return (size_t)t->end + (t->type == JT_STRING);
}

static inline bool tok_is(const struct jdoc *d, int i, const char *lit)
{
    size_t n = strlen(lit);
    return d->t[i].type == JT_PRIMITIVE && (size_t)(d->t[i].end - d->t[i].start) == n &&
           memcmp(d->s + d->t[i].start, lit, n) == 0;
}

static inline bool tok_is_null(const struct jdoc *d, int i)
{
    return i < 0 || tok_is(d, i, "null");
}

static inline size_t tok_len(const struct jdoc *d, int i)
{
    return (size_t)(d->t[i].end - d->t[i].start);
}

#endif
