/*
 * http1 — pure HTTP/1.x message-head parsers and a chunked-body decoder.
 *
 * No I/O and no allocation: the caller owns the bytes, the parser points into
 * them. The server (server.c) parses requests from clients; the upstream
 * transport (upstream.c) parses responses from providers. Both feed whatever
 * bytes have arrived so far; a head that is not complete yet returns
 * HTTP1_NEED_MORE and is parsed again, from the start, once more bytes arrive
 * (heads are bounded by the caller, so re-parsing is cheap and keeps the parser
 * stateless). Bodies are framed by http1_body_* (Content-Length or chunked),
 * which is resumable byte by byte.
 */
#ifndef UNBUSY_HTTP1_H
#define UNBUSY_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define HTTP1_MAX_HEADERS 64

enum {
    HTTP1_NEED_MORE = -2, /* head incomplete: feed more bytes */
    HTTP1_ERROR = -1,     /* malformed: answer 400 (or treat the upstream reply as bad) */
};

struct http1_str {
    const char *p;
    size_t len;
};

struct http1_header {
    struct http1_str name;
    struct http1_str value;
};

/* What every head carries once parsed; framing facts are extracted for the caller. */
struct http1_head {
    int minor_version;               /* 0 or 1 */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t nheaders;
    /* Framing, filled by the parser from the headers: */
    bool chunked;                    /* Transfer-Encoding: chunked (last coding) */
    bool has_content_length;
    uint64_t content_length;
    bool conn_close;                 /* Connection: close, or HTTP/1.0 without keep-alive */
    bool expect_continue;            /* Expect: 100-continue (requests only) */
};

struct http1_request {
    struct http1_str method;
    struct http1_str target;         /* the request-target as sent (path + query) */
    struct http1_head head;
};

struct http1_response {
    int status;
    struct http1_str reason;
    struct http1_head head;
};

/*
 * Parse a request head from buf[0..len). Returns the head's length in bytes
 * (the body starts there), HTTP1_NEED_MORE, or HTTP1_ERROR. Rejects: bad
 * tokens, bare LF inside the head is accepted as line end, obs-fold is
 * rejected, both Content-Length and chunked, conflicting Content-Lengths,
 * a transfer-coding other than chunked, more than HTTP1_MAX_HEADERS headers.
 */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req);

/* Same for a response head (status line + headers). */
int http1_parse_response(const char *buf, size_t len, struct http1_response *resp);

/* Case-insensitive header lookup; returns NULL when absent. */
const struct http1_str *http1_find_header(const struct http1_head *h, const char *name);

/* True if the comma-separated header value contains token (case-insensitive). */
bool http1_value_has_token(struct http1_str value, const char *token);

/*
 * Body framing. Init with the head's framing (or close-delimited for a
 * response with neither length nor chunked). http1_body_feed decodes in
 * place: it consumes input from buf[0..*len), moves the payload bytes to the
 * front of buf and sets *len to how many payload bytes are there; *consumed
 * says how many input bytes were eaten (the rest belong to the next message
 * on a keep-alive connection). Returns 1 when the body is complete, 0 when
 * more is needed, HTTP1_ERROR on a framing error or when a chunk-size line
 * or trailer section is longer than its bound.
 */
enum http1_body_mode {
    HTTP1_BODY_NONE,       /* no body (e.g. GET, 204, 304, response to HEAD) */
    HTTP1_BODY_LENGTH,
    HTTP1_BODY_CHUNKED,
    HTTP1_BODY_UNTIL_CLOSE /* responses only: ends at EOF */
};

struct http1_body {
    enum http1_body_mode mode;
    uint64_t remaining;    /* LENGTH: bytes left; CHUNKED: bytes left in this chunk */
    int state;             /* CHUNKED decoder state (private) */
    unsigned line_bytes;   /* bytes in the current size/trailer line (bounded) */
    bool done;
};

void http1_body_init(struct http1_body *b, enum http1_body_mode mode, uint64_t content_length);
int http1_body_feed(struct http1_body *b, char *buf, size_t *len, size_t *consumed);

/* The canonical reason phrase for a status code ("OK", "Too Many Requests", ...). */
const char *http1_reason(int status);

#endif
