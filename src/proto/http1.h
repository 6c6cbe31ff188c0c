/*
 * http1 — pure HTTP/1.x message-head parsers and a chunked-body decoder.
 *
 * No I/O and no allocation: the caller owns the bytes, the parser points into
 * them. The server (server.c) parses requests from clients; the upstream
 * client (uphttp.c) parses responses from providers. The head parsers are
 * stateless: they parse a complete head in one pass and return
 * HTTP1_NEED_MORE for a prefix. So that a head arriving in many small reads
 * costs time linear in its size (not a re-parse per read), the server first
 * finds the end of a request head with the resumable http1_head_scan_request
 * and parses it once it is whole. Bodies are framed by http1_body_*
 * (Content-Length or chunked), which is resumable byte by byte.
 *
 * Line ends: in a head, CRLF or a bare LF (RFC 9112 2.2 lets a recipient
 * accept LF alone, as nginx and HAProxy do, and both readers of a head agree
 * on where its lines end either way). In chunked framing a request must use
 * CRLF everywhere (chunk-size lines, after chunk data, trailers): a front end
 * that takes a bare LF there while the next hop does not is a known request
 * smuggling vector, so http1_body refuses it by default. A response decoder
 * may set bare_lf_ok: unbusy decodes a provider's answer itself and re-frames
 * what it relays, so no second parser reads those bytes, and a lenient reader
 * of a minimal self-hosted server costs nothing (RFC 9112 2.2, 7.1).
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
 * An HTTP/1.1 request without Host is the caller's to refuse (server.c, with
 * a message that says so). A prefix of a valid head always gives
 * HTTP1_NEED_MORE, never an error.
 */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req);

/*
 * Finds the end of a request head in a stream that grows between calls,
 * resuming where the last call stopped: each byte is examined once and each
 * line checked at most once, so the cost is linear in the head's size however
 * it arrives. A head whose end is found is not checked here but by the parser
 * that reads it next; a head still incomplete is, so that bytes that are not
 * HTTP are refused as they arrive. buf[0..len) is the stream so far (its first bytes must not
 * change between calls; the buffer may move). Returns the head's length (then parse buf[0..length)
 * with http1_parse_request, which may still refuse its framing), HTTP1_NEED_MORE, or HTTP1_ERROR
 * for bytes http1_parse_request would refuse (a bad request line, header line or control byte): the
 * scan agrees with the parser on where a head ends and refuses nothing the parser accepts. After a
 * result other than HTTP1_NEED_MORE, init the scan again for the next head.
 */
struct http1_head_scan {
    size_t pos;           /* bytes of the stream examined */
    size_t line_start;    /* where the current line begins */
    size_t lines;         /* complete non-empty lines: the request line, then headers */
    size_t checked;       /* the complete lines before this have been checked */
    size_t checked_lines; /* of which non-empty */
    bool method_done;     /* the request line's method has ended (in the line not yet ended) */
    bool cr;              /* the last byte examined was a CR (the same) */
    size_t work;          /* bytes examined plus bytes of lines checked (tests bound it) */
};

void http1_head_scan_init(struct http1_head_scan *s);
int http1_head_scan_request(struct http1_head_scan *s, const char *buf, size_t len);

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
 * complete body again returns 1 and consumes nothing. Chunked framing needs
 * CRLF line ends unless bare_lf_ok is set after init (see the top of this file).
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
    bool bare_lf_ok; /* CHUNKED: also accept LF alone as a line end (responses only) */
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
