/*
 * assemble — builds a non-stream answer from a stream of chunks.
 *
 * The gateway asks the upstream for a stream even when the client did not,
 * so that first-token deadlines, stall detection and usage capture work the
 * same for both; the proxy then feeds each SSE data payload here and, at the
 * end, writes the one JSON object the client expected: a "chat.completion"
 * (choices[].message with content, reasoning_content, refusal, tool_calls
 * merged by index) or a "text_completion" (choices[].text). Usage is copied
 * as the upstream sent it (the last non-null "usage" object); when it sent
 * none, the proxy sets an estimate (assemble_set_estimated_usage), so that
 * every answer carries usage. assemble_put_estimated_usage is the one writer
 * of an estimated usage object, also for whole-body answers and stream chunks.
 *
 * Each chunk is read in one walk of the text (jsonx_walk.h): no tokens, no
 * DOM; strings are decoded straight into the texts they extend, and usage is
 * kept as the JSON it came as. A chunk that is the last one walked with
 * another string in place of the one text it added (chunk_shape.h: most of a
 * stream) is not walked: its string extends the same text. Nor is a chunk of the
 * shape of one of the last few walked in earlier streams, but for its id,
 * "created", text and unread string (a stream's role chunk, first text, finish):
 * what that walk did is done again with the new values. Everything accumulated
 * (texts, ids, tool calls, choices) counts against max_bytes; the assembler
 * owns all of it until assemble_free.
 */
#ifndef UNBUSY_ASSEMBLE_H
#define UNBUSY_ASSEMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum assemble_kind {
    ASSEMBLE_CHAT,       /* /v1/chat/completions */
    ASSEMBLE_COMPLETION, /* /v1/completions (legacy) */
};

/* Choice and tool-call indexes at or past these are refused (-ERANGE). */
#define ASSEMBLE_MAX_CHOICES 128
#define ASSEMBLE_MAX_TOOL_CALLS 128

struct assemble;

/* max_bytes 0 means 16 MiB. Returns NULL when out of memory. */
struct assemble *assemble_new(enum assemble_kind kind, size_t max_bytes);

/*
 * Take one chunk (an SSE data payload, "[DONE]" is ignored). Returns 0,
 * -EINVAL when it is not a JSON object, -ERANGE for an index out of bounds,
 * -ENOBUFS when the answer would pass max_bytes, -ENOMEM. After an error the
 * assembler holds what came before and may still be finished or freed.
 */
int assemble_feed(struct assemble *a, const char *chunk_json, size_t len);

/* assemble_feed for a chunk the caller has already found to be a strict JSON object (the
   relay's jsonx_scan_chunk): the one walk only. Same results. */
int assemble_feed_valid(struct assemble *a, const char *chunk_json, size_t len);

/* assemble_feed_valid for a chunk the relay's scan (proto/chunk_shape.h) has just scanned
   with scan: while the assembler keeps the same chunk as the scan, a chunk the scan found of
   its shape is taken from that match, not matched again. Same results. */
struct chunk_shape_scan;
int assemble_feed_scanned(struct assemble *a, const char *chunk_json, size_t len,
                          const struct chunk_shape_scan *scan);

/* Walk every chunk, never taking the shortcut of a chunk shaped like the last or like one
   kept across streams (for the tests that hold the shortcuts to the walk's results). */
void assemble_walk_always(struct assemble *a);

/* Forget the calling thread's chunks kept across streams (for tests). */
void assemble_shared_clear(void);

/* How many chunks were walked (not taken by a shortcut): for tests. */
unsigned assemble_walks(const struct assemble *a);

/* Append the assembled answer (compact JSON) to out. Returns 0, or
 * -ENOBUFS/-ENOMEM from buf. May be called again after more feeds. */
int assemble_finish(struct assemble *a, struct buf *out);

/* True when some chunk carried a usage object. */
bool assemble_has_usage(const struct assemble *a);

/* The answer's usage becomes an estimate (see assemble_put_estimated_usage), in place of
   what the chunks said. */
void assemble_set_estimated_usage(struct assemble *a, int64_t prompt_tokens,
                                  int64_t completion_tokens);

/* Appends {"prompt_tokens":P,"completion_tokens":C,"total_tokens":P+C,"estimated":true}.
   Returns 0 or -ENOBUFS/-ENOMEM from buf. */
int assemble_put_estimated_usage(struct buf *out, int64_t prompt_tokens, int64_t completion_tokens);

/*
 * A whole JSON answer (an object) that came without usage, with an estimated one: the
 * object as compact JSON, its "usage" member (absent or null) set by
 * assemble_put_estimated_usage, appended to out. Returns 0, -EINVAL when json is not an
 * object, -ENOBUFS/-ENOMEM.
 */
int assemble_add_estimated_usage(const char *json, size_t len, int64_t prompt_tokens,
                                 int64_t completion_tokens, struct buf *out);

void assemble_free(struct assemble *a);

#endif
