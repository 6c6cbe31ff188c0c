/*
 * sse — a pure, resumable parser for text/event-stream (WHATWG SSE).
 *
 * The relay (attempt.c) feeds it upstream body bytes as they arrive, in pieces
 * of any size; it calls back once per complete event and once per comment
 * line. No I/O. The parser owns one bounded buffer for the event being built;
 * an event larger than `max_event_bytes` is an error (SSE_ERR_TOO_BIG), so a
 * garbage upstream cannot grow memory without bound.
 *
 * The relay writes events back out with sse_encode_event (proxy.c), which
 * splits data at each "\n" into its own "data:" line: a multi-line event
 * reaches the client's parser exactly as this parser joined it.
 *
 * Lines end in LF, CRLF or CR. A CR ends its line at once (so a CR-only
 * stream is not delayed); an LF right after it, even at the start of the next
 * feed, is then skipped. A UTF-8 BOM at the start of the stream is skipped.
 * Field "data" lines are joined with "\n"; "event" is kept (names longer than
 * 63 bytes are cut); "id", "retry" and unknown fields are ignored (the gateway
 * never resumes a stream with Last-Event-ID). An event is dispatched at a blank
 * line when its joined data is not empty (as the spec says: a lone "data:"
 * line dispatches nothing, two of them dispatch "\n"); a partial event at the
 * end of the stream is never dispatched. After a negative return the parser is unusable
 * until sse_parser_reset.
 */
#ifndef UNBUSY_SSE_H
#define UNBUSY_SSE_H

#include <stddef.h>
#include <stdbool.h>

#include "base/buf.h"

enum sse_item_kind {
    SSE_EVENT,   /* a complete event: data (joined), event name (may be empty) */
    SSE_COMMENT, /* a line starting with ':' (e.g. ": keep-alive"); text excludes the ':' */
};

struct sse_item {
    enum sse_item_kind kind;
    const char *data; /* SSE_EVENT: joined data; SSE_COMMENT: comment text. Not
                         NUL-terminated: an event of one data line that came whole in
                         one feed is handed where it lies in the fed bytes. Valid only
                         during the callback. */
    size_t data_len;
    bool framed;          /* SSE_EVENT: the data lies in the fed bytes as the event came,
                             "data: " + data + "\n\n" exactly: from data - 6 to
                             data + data_len + 2 is the event, ready to send on */
    const char *event;    /* event name, "" when none */
    size_t event_len;
};

/* Return 0 to go on, or a positive value to stop parsing (sse_parser_feed returns it). */
typedef int (*sse_item_cb)(void *ud, const struct sse_item *item);

enum {
    SSE_ERR_TOO_BIG = -1, /* one event (or line) passed max_event_bytes */
    SSE_ERR_NOMEM = -2,
};

struct sse_parser {
    size_t max_event_bytes;
    /* private state: */
    char *line;      size_t line_len, line_cap;
    char *data;      size_t data_len, data_cap;
    const char *direct; /* the data, still in the fed bytes (copied to data at the feed's end) */
    char event[64];  size_t event_len;
    bool has_data;
    bool pending_cr;
    bool bom_checked;
    unsigned bom_seen;
};

/* max_event_bytes 0 means SSE_DEFAULT_MAX_EVENT. Allocates nothing yet. */
#define SSE_DEFAULT_MAX_EVENT (1u << 20)
void sse_parser_init(struct sse_parser *p, size_t max_event_bytes);
void sse_parser_free(struct sse_parser *p);
/* Reset for a new stream, keeping allocated memory. */
void sse_parser_reset(struct sse_parser *p);

/*
 * Feed len bytes. Calls cb for each item completed by these bytes, in order.
 * Returns 0 when all bytes were consumed, the callback's non-zero value if it
 * stopped the parse (bytes after that item are not consumed; *consumed says
 * how many were), or a negative SSE_ERR_*. consumed may be NULL.
 */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_item_cb cb, void *ud,
                    size_t *consumed);

/*
 * Appends one event carrying data (as an SSE_EVENT gives it: lines joined by
 * "\n", no CR) to out: "data: LINE\n" for each line, then the blank line.
 * All or nothing: returns 0, or -ENOBUFS/-ENOMEM from buf with out unchanged.
 */
int sse_encode_event(struct buf *out, const char *data, size_t len);

#endif
