/*
 * jsonx_walk — a strict, one-pass JSON cursor: no tokens, no allocation.
 *
 * The relay scans streamed chunks and the assembler reads the chunks of a
 * non-stream answer (each chunk whose shape is new: chunk_shape.h); both walk
 * the text once, front to back, taking the members they know and skipping
 * the rest, and the same walk validates the
 * text as strictly as jsonx_doc_parse does (RFC 8259 strings, escapes and
 * numbers, nesting at most JSONX_MAX_DEPTH deep). Nothing is read outside
 * [s, s + n).
 *
 * Use: jw_init, then jw_object / jw_member / jw_array / jw_element to go in,
 * jw_string / jw_number / jw_skip to take a value. The first error sticks in
 * w->err (a JSONX_ERR_*) and every later call returns false; a caller checks
 * w->err at the end, and jw_end checks nothing follows the top-level value.
 */
#ifndef UNBUSY_JSONX_WALK_H
#define UNBUSY_JSONX_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/jsonx.h"

struct jw {
    const char *s;
    size_t n, pos;
    int depth; /* containers open around pos */
    int err;   /* 0, or the first JSONX_ERR_* met */
    size_t plain_start; /* body start of the last string taken that had no escape (+1; 0: none) */
};

void jw_init(struct jw *w, const char *s, size_t n);

/* The first byte of the next value ('{', '[', '"', '-', a digit, 't', 'f', 'n'), 0 at the end
   or after an error. Inline for compact JSON (no space before the value); jw_peek_ws
   does the rest. */
char jw_peek_ws(struct jw *w);
static inline char jw_peek(struct jw *w)
{
    if (w->pos < w->n && !w->err) {
        char c = w->s[w->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return c;
    }
    return jw_peek_ws(w);
}

/* Enter the object at pos; *first starts true for jw_member. */
bool jw_object(struct jw *w);
/* The next member's key (its escaped body) with the ':' after it taken; false at the '}'
   (taken) or on error. */
bool jw_member(struct jw *w, bool *first, struct jsonx_span *key);
bool jw_array(struct jw *w);
/* true when another element follows (pos at it); false at the ']' (taken) or on error. */
bool jw_element(struct jw *w, bool *first);

/* A string value; body is its escaped text without the quotes. */
bool jw_string(struct jw *w, struct jsonx_span *body);
bool jw_number(struct jw *w, struct jsonx_span *num);
/* Any value, checked and passed over. */
bool jw_skip(struct jw *w);
/* A value that is the literal null: taken, true. Anything else: left, false. */
bool jw_null(struct jw *w);
/* After the top-level value: only whitespace to the end. Returns w->err or JSONX_ERR_SYNTAX. */
int jw_end(struct jw *w);

/* Whether key (an escaped body) spells lit (of length litlen), escapes decoded. */
bool jw_key_is(const char *s, const struct jsonx_span *key, const char *lit, size_t litlen);
/* The same, with the usual cases decided inline (the relay compares every key of every chunk
   with a few names): another length, or the same bytes; only a longer key that may hold
   escapes goes to jw_key_is. */
static inline bool jw_key_is_inline(const struct jw *w, const struct jsonx_span *key,
                                    const char *lit, size_t litlen)
{
    size_t n = key->end - key->start;
    if (n < litlen) return false;
    if (n == litlen)
        return memcmp(w->s + key->start, lit, litlen) == 0; /* an escape would make it longer */
    if (w->plain_start == key->start + 1) return false;     /* the key just taken had no escape */
    return jw_key_is(w->s, key, lit, litlen);
}
#define JW_KEY(w, key, lit) jw_key_is_inline((w), (key), lit, sizeof lit - 1)

/* Decode the next character of a string body s[0..n) at *pos into u8 (1-4 bytes); returns
   how many. Lone surrogates become U+FFFD. (jsonx.c) */
size_t jsonx_str_next(const char *s, size_t n, size_t *pos, char u8[4]);

/* A number as a count: fractions truncated; negative, out of range or not a number gives 0. */
int64_t jw_count(const char *s, const struct jsonx_span *num);
/* Take a value as a count (see jw_count); anything else is skipped and counts 0. */
int64_t jw_take_count(struct jw *w);

#endif
