/*
 * http1 — pure HTTP/1.x message-head parsers and a chunked-body decoder.
 *
 * No I/O and no allocation: the caller owns the bytes, the parser points into
 * them. The server (server.c) parses requests from clients; the upstream
 * client (uphttp.c) parses responses from providers. Both feed whatever
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
    int minor_version; /* 0 or 1 */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t nheaders;
    /* Framing, filled by the parser from the headers: */
    bool chunked; /* Transfer-Encoding: chunked (the only coding accepted) */
    bool has_content_length;
    uint64_t content_length;
    bool conn_close;      /* Connection: close, or HTTP/1.0 without keep-alive */
    bool expect_continue; /* Expect: 100-continue (HTTP/1.1 requests only) */
};

struct http1_request {
    struct http1_str method;
    struct http1_str target; /* the request-target as sent (path + query) */
    struct http1_head head;
};

struct http1_response {
    int status;
    struct http1_str reason;
    struct http1_head head;
};

/*
 * Parse a request head from buf[0..len). Returns the head's length in bytes
 * (the body starts there), HTTP1_NEED_MORE, or HTTP1_ERROR. Pointers in *req
 * point into buf. Line ends may be CRLF or a bare LF; empty lines before the
 * request line are skipped (counted in the length). Rejected, because a
 * front end and a back end could read them differently (request smuggling):
 * a method that is not a token, a target with controls or spaces, a version
 * other than HTTP/1.0 or HTTP/1.1, whitespace before a header colon, obs-fold,
 * control characters (bare CR, NUL, DEL, ...) in a value, both Content-Length
 * and Transfer-Encoding, conflicting or non-numeric Content-Lengths, any
 * transfer-coding other than a single chunked, Transfer-Encoding in an
 * HTTP/1.0 request, more than one Host, more than HTTP1_MAX_HEADERS headers.
 * A prefix of a valid head always gives HTTP1_NEED_MORE, never an error.
 */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req);

/*
 * Same for a response head: "HTTP/1.x NNN reason" (the reason may be empty or
 * absent) and headers, with the same rules. A 1xx head is returned like any
 * other: the caller skips it and parses the next head from where it ended.
 * An HTTP/1.0 response with Transfer-Encoding is read as chunked but marked
 * conn_close (RFC 9112 6.1). expect_continue is never set.
 */
int http1_parse_response(const char *buf, size_t len, struct http1_response *resp);

/* Case-insensitive header lookup; returns NULL when absent. */
const struct http1_str *http1_find_header(const struct http1_head *h, const char *name);

/*
 * True if the comma-separated header value contains token as a whole list
 * element (case-insensitive, surrounding whitespace ignored; "chunked;x=1"
 * does not contain "chunked").
 */
bool http1_value_has_token(struct http1_str value, const char *token);

/* The longest wait a Retry-After is taken for; a longer one means "much later", and
   multiplied into milliseconds it would no longer fit 32 bits. */
#define HTTP1_RETRY_AFTER_MAX_S 86400

/*
 * A Retry-After value in seconds, at most HTTP1_RETRY_AFTER_MAX_S: delay-seconds
 * ("120", any number of digits) or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
 * counted from now_unix_s (a date in the past is 0). -1 when the value is neither.
 */
int http1_retry_after_s(const char *v, size_t len, int64_t now_unix_s);

/*
 * Body framing. Init with the mode from http1_request_body_mode or
 * http1_response_body_mode. http1_body_feed decodes in place: it consumes
 * input from buf[0..*len), moves the payload bytes to the front of buf and
 * sets *len to how many payload bytes are there; *consumed says how many
 * input bytes were eaten (the rest, buf[*consumed..], untouched, belong to
 * the next message on a keep-alive connection; buf[*len..*consumed) is
 * garbage). Returns 1 when the body is complete, 0 when more is needed,
 * HTTP1_ERROR on a framing error or when a chunk-size line or trailer section
 * is longer than its bound; the error is sticky and the connection must be
 * closed. Chunk extensions are ignored and trailers are skipped. Feeding a
 * complete body again returns 1 and consumes nothing.
 */
enum http1_body_mode {
    HTTP1_BODY_NONE, /* no body (e.g. GET, 204, 304, response to HEAD) */
    HTTP1_BODY_LENGTH,
    HTTP1_BODY_CHUNKED,
    HTTP1_BODY_UNTIL_CLOSE /* responses only: ends at EOF; the connection is not reusable */
};

/* Bounds of the chunked decoder; exceeding one is HTTP1_ERROR. */
#define HTTP1_MAX_CHUNK_LINE 4096      /* chunk-size line, extensions included */
#define HTTP1_MAX_TRAILER_BYTES 8192   /* whole trailer section after the last chunk */
#define HTTP1_MAX_CHUNK_SIZE_DIGITS 16 /* so a chunk size always fits uint64_t */

struct http1_body {
    enum http1_body_mode mode;
    uint64_t remaining;  /* LENGTH: bytes left; CHUNKED: bytes left in this chunk */
    int state;           /* CHUNKED decoder state (private) */
    unsigned line_bytes; /* bytes in the current size line / trailer section (bounded) */
    bool done;
};

/*
 * The body that follows a request head: CHUNKED, LENGTH, or NONE when the
 * head has neither (a request without framing has no body).
 */
enum http1_body_mode http1_request_body_mode(const struct http1_request *req);

/*
 * The body that follows a response head: NONE for 1xx, 204, 304 and any
 * answer to HEAD (whatever Content-Length says), else CHUNKED, LENGTH, or
 * UNTIL_CLOSE when the head has no framing.
 */
enum http1_body_mode http1_response_body_mode(const struct http1_response *resp,
                                              bool request_was_head);

void http1_body_init(struct http1_body *b, enum http1_body_mode mode, uint64_t content_length);
int http1_body_feed(struct http1_body *b, char *buf, size_t *len, size_t *consumed);

/*
 * The peer closed the connection. Returns 1 if that completes the body
 * (UNTIL_CLOSE, or already complete), HTTP1_ERROR if the body was cut short.
 */
int http1_body_eof(struct http1_body *b);

/*
 * The canonical reason phrase for a status code ("OK", "Too Many Requests",
 * ...); "Unknown" for a code without one. Never NULL; a static string.
 */
const char *http1_reason(int status);

#endif
