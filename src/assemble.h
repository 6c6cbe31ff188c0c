/*
 * assemble — builds a non-stream answer from a stream of chunks.
 *
 * The gateway asks the upstream for a stream even when the client did not,
 * so that first-token deadlines, stall detection and usage capture work the
 * same for both; the proxy then feeds each SSE data payload here and, at the
 * end, writes the one JSON object the client expected: a "chat.completion"
 * (choices[].message with content, reasoning_content, refusal, tool_calls
 * merged by index) or a "text_completion" (choices[].text). Usage is copied
 * as the upstream sent it (the last non-null "usage" object).
 *
 * Not the hot path, so chunks are parsed with cJSON. Everything accumulated
 * (texts, ids, tool calls, choices) counts against max_bytes; the assembler
 * owns all of it until assemble_free.
 */
#ifndef UNBUSY_ASSEMBLE_H
#define UNBUSY_ASSEMBLE_H

#include <stddef.h>

#include "buf.h"

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

/* Append the assembled answer (compact JSON) to out. Returns 0, or
 * -ENOBUFS/-ENOMEM from buf. May be called again after more feeds. */
int assemble_finish(struct assemble *a, struct buf *out);

void assemble_free(struct assemble *a);

#endif
