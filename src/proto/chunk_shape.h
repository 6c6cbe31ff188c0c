/*
 * chunk_shape — the last streamed chunk kept, to know the next one as the same chunk with
 * another piece of text.
 *
 * The chunks of one stream differ, as a rule, only in the few characters of text each
 * carries: `{"id":"…","object":"chat.completion.chunk","created":…,"model":"…",
 * "choices":[{"index":0,"delta":{"content":"TEXT"},"finish_reason":null}]}`. A chunk that
 * is the kept one byte for byte outside one string value, and whose string at that place is
 * strict JSON, is a strict JSON object with the same members in the same order: what was
 * read from the kept chunk holds for it, but for that one text. A second string after the
 * text may differ too when the reader reads nothing of it (a "pad": OpenAI sends a random
 * "obfuscation" string in every chunk); only what follows it moves. The relay's chunk scan
 * (chunk_shape_scan, below) and the assembler keep one each, so that a chunk is walked only
 * when its shape changed (the first content chunk, the finish, the usage).
 *
 * A kept chunk is a copy (at most CHUNK_SHAPE_MAX bytes; a longer chunk is not kept), so
 * the caller's buffers may be reused. Nothing here allocates.
 */
#ifndef UNBUSY_CHUNK_SHAPE_H
#define UNBUSY_CHUNK_SHAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/jsonx.h"

#define CHUNK_SHAPE_MAX 512

struct chunk_shape {
    size_t len;                  /* of the kept chunk; 0: none kept */
    size_t body_start, body_end; /* its varying string's body (the text between the quotes) */
    size_t pad_start, pad_end;   /* the pad's body, after the text; 0, 0: none */
    char text[CHUNK_SHAPE_MAX];
};

/* Forget the kept chunk (also the initial state: a zeroed struct keeps none). */
void chunk_shape_clear(struct chunk_shape *k);

/* Keep s[0..n) whose string body at *body is the part that may vary, and the pad's body
   when pad is not NULL and lies after it. Returns false (and keeps none) when the chunk is
   longer than CHUNK_SHAPE_MAX or the body is not a string's. */
bool chunk_shape_keep(struct chunk_shape *k, const char *s, size_t n, const struct jsonx_span *body,
                      const struct jsonx_span *pad);

/* Whether s[0..n) is the kept chunk with another non-empty string at the body's place (and
   any string at the pad's), each strict JSON (RFC 8259 escapes, no control characters);
   *body and *pad (start == end == 0 when none is kept) get their spans in s. */
bool chunk_shape_match(const struct chunk_shape *k, const char *s, size_t n,
                       struct jsonx_span *body, struct jsonx_span *pad);

/*
 * A chunk with parts that may vary (a template): a chunk that is the kept one byte for byte
 * outside its parts, each a strict JSON string (a text: not empty) or number where the kept
 * one has one, is a strict JSON object with the same members in the same order, of which
 * only those values differ. The relay's chunk scan and the assembler each keep a few across
 * streams.
 */
enum chunk_part { CHUNK_PART_STRING, CHUNK_PART_NUMBER, CHUNK_PART_TEXT /* a string, not empty */ };
#define CHUNK_TMPL_PARTS 4

struct chunk_tmpl {
    size_t len; /* 0: none kept */
    unsigned n_parts;
    struct {
        size_t start, end; /* a string's body or a number, in text */
        enum chunk_part kind;
    } parts[CHUNK_TMPL_PARTS]; /* in the order they come */
    char text[CHUNK_SHAPE_MAX];
};

/* Keep s[0..n) with no parts; false (and none kept) when it is longer than CHUNK_SHAPE_MAX. */
bool chunk_tmpl_set(struct chunk_tmpl *t, const char *s, size_t n);
/* Mark the value at sp as a part: a string's body (kind STRING or TEXT) or a number. Nothing
   is marked for a span that is absent (end 0), not such a value, or touching a part already
   marked, nor past CHUNK_TMPL_PARTS. */
void chunk_tmpl_part(struct chunk_tmpl *t, const struct jsonx_span *sp, enum chunk_part kind);
/* Whether s[0..n) is the kept chunk but for its parts; got[i] is part i's span in s. */
bool chunk_tmpl_match(const struct chunk_tmpl *t, const char *s, size_t n, struct jsonx_span *got);
/* A span of the kept chunk (a part, or outside every part) where it is in the chunk that
   matched; an absent span (end 0) stays absent. */
void chunk_tmpl_move(const struct chunk_tmpl *t, const struct jsonx_span *got,
                     struct jsonx_span *sp);

/* The relay's chunk scan with the stream's last chunk kept: one per stream, zeroed or reset
   (chunk_shape_scan_reset) to start, and reset when the stream starts over. */
struct chunk_shape_scan {
    struct chunk_shape shape;
    struct jsonx_chunk result; /* the kept chunk's scan */
    unsigned walked;           /* chunks walked in full (neither shape matched) */
    unsigned gen;              /* moves whenever the kept chunk changes */
    bool kept_hit;             /* the last chunk scanned was of the kept one's shape, */
    struct jsonx_span body, pad; /* its text and pad where chunk_shape_match found them */
};

/*
 * jsonx_scan_chunk's result for s[0..n), the same in every field: a chunk of the kept one's
 * shape is not walked. A valid chunk with one text (jsonx_chunk.n_text) and nothing else
 * counted as generated is kept in place of the last.
 *
 * Across streams: every stream of a server opens with the same role chunk and ends with the
 * same finish chunk, and its first text comes in the same chunk, but for the stream's id,
 * its "created" and the pad. Each thread keeps the last CHUNK_SHAPE_SHARED chunks walked
 * (any valid chunk of at most CHUNK_SHAPE_MAX bytes) with those values, and the text when it
 * was all the chunk counted, as the parts that may vary: a chunk that is one of them byte for
 * byte outside those parts, each a strict JSON string (the text non-empty) or number as
 * there, is not walked either. Its scan is the kept chunk's, the spans moved.
 */
#define CHUNK_SHAPE_SHARED 4
int chunk_shape_scan(struct chunk_shape_scan *k, const char *s, size_t n, struct jsonx_chunk *out);

/* Start k over: no chunk kept, a generation of its own. */
void chunk_shape_scan_reset(struct chunk_shape_scan *k);

/* Forget the calling thread's chunks kept across streams (for tests). */
void chunk_shape_shared_clear(void);

#endif
