#include "proto/http1.h"

#include <limits.h>
#include <string.h>

#include "base/utcdate.h"

/*
 * The head parsers walk the buffer once from the start. Running out of bytes
 * anywhere returns HTTP1_NEED_MORE; a byte that can never start a valid head
 * returns HTTP1_ERROR at once, so a valid prefix is never an error and a bad
 * one is refused before the caller buffers more of it.
 */

/*
 * Byte classes, one bit each in a table of 256: a head's bytes are looked up,
 * not compared against a list, on every header of every request.
 */
enum { CL_TCHAR = 1, CL_VALUE = 2 };

/* tchar (RFC 9110 5.6.2); field-vchar, SP or HTAB: what may appear inside a header value or
   reason phrase (obs-text, 0x80-0xff, included) */
#define CL_IS_TCHAR(c)                                                                             \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9') ||     \
     (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||           \
     (c) == '`' || (c) == '|' || (c) == '~')
#define CL_IS_VALUE(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define CL_ROW(c) (unsigned char)((CL_IS_TCHAR(c) ? CL_TCHAR : 0) | (CL_IS_VALUE(c) ? CL_VALUE : 0))
#define CL_ROW4(c) CL_ROW(c), CL_ROW((c) + 1), CL_ROW((c) + 2), CL_ROW((c) + 3)
#define CL_ROW16(c) CL_ROW4(c), CL_ROW4((c) + 4), CL_ROW4((c) + 8), CL_ROW4((c) + 12)
#define CL_ROW64(c) CL_ROW16(c), CL_ROW16((c) + 16), CL_ROW16((c) + 32), CL_ROW16((c) + 48)
static const unsigned char byte_class[256] = {CL_ROW64(0), CL_ROW64(64), CL_ROW64(128),
                                              CL_ROW64(192)};

static bool is_tchar(unsigned char c)
{
    return byte_class[c] & CL_TCHAR;
}

static bool is_value_char(unsigned char c)
{
    return byte_class[c] & CL_VALUE;
}

static unsigned char lower(unsigned char c)
{
    return (unsigned char)(c - 'A') < 26 ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* s spells name (n bytes), case aside; STR_IEQ for a literal, its length known */
static bool str_ieq(struct http1_str s, const char *name, size_t n)
{
    if (s.len != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)name[i])) return false;
    return true;
}
#define STR_IEQ(s, lit) str_ieq((s), lit, sizeof lit - 1)

/* Eats one CRLF or bare LF. */
static int eat_eol(const char **pp, const char *end)
{
    const char *p = *pp;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p == '\r') {
        if (++p == end) return HTTP1_NEED_MORE;
        if (*p != '\n') return HTTP1_ERROR;
    } else if (*p != '\n') {
        return HTTP1_ERROR;
    }
    *pp = p + 1;
    return 0;
}

/* "HTTP/1.0" or "HTTP/1.1"; compared byte by byte so a short prefix needs more. */
static int parse_version(const char **pp, const char *end, int *minor)
{
    static const char prefix[] = "HTTP/1.";
    const char *p = *pp;
    for (size_t i = 0; i < sizeof prefix - 1; i++, p++) {
        if (p == end) return HTTP1_NEED_MORE;
        if (*p != prefix[i]) return HTTP1_ERROR;
    }
    if (p == end) return HTTP1_NEED_MORE;
    if (*p != '0' && *p != '1') return HTTP1_ERROR;
    *minor = *p - '0';
    *pp = p + 1;
    return 0;
}

static void trim_ows(struct http1_str *s)
{
    while (s->len && (s->p[0] == ' ' || s->p[0] == '\t')) {
        s->p++;
        s->len--;
    }
    while (s->len && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\t'))
        s->len--;
}

/* One header line, its line end included; the caller has checked it is not the empty line. */
static int parse_header_line(const char **pp, const char *end, struct http1_header *hd)
{
    const char *p = *pp;
    /* obs-fold, or whitespace before the first header (RFC 9112 2.2, 5.2) */
    if (*p == ' ' || *p == '\t') return HTTP1_ERROR;

    hd->name.p = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == end) return HTTP1_NEED_MORE;
    /* anything but ':' here, whitespace included, is refused (RFC 9112 5.1) */
    if (*p != ':' || p == hd->name.p) return HTTP1_ERROR;
    hd->name.len = (size_t)(p - hd->name.p);
    p++;

    hd->value.p = p;
    while (p < end && is_value_char((unsigned char)*p))
        p++;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p != '\r' && *p != '\n') return HTTP1_ERROR;
    hd->value.len = (size_t)(p - hd->value.p);
    trim_ows(&hd->value);
    int rc = eat_eol(&p, end);
    if (rc) return rc;
    *pp = p;
    return 0;
}

/* Header lines up to and including the empty line that ends the head. */
static int parse_headers(const char **pp, const char *end, struct http1_head *h)
{
    const char *p = *pp;
    h->nheaders = 0;
    for (;;) {
        if (p == end) return HTTP1_NEED_MORE;
        if (*p == '\r' || *p == '\n') {
            int rc = eat_eol(&p, end);
            if (rc) return rc;
            break;
        }
        if (*p == ' ' || *p == '\t') return HTTP1_ERROR; /* before the count: same answer */
        if (h->nheaders == HTTP1_MAX_HEADERS) return HTTP1_ERROR;
        int rc = parse_header_line(&p, end, &h->headers[h->nheaders]);
        if (rc) return rc;
        h->nheaders++;
    }
    *pp = p;
    return 0;
}

/* 1*DIGIT into a uint64; anything else (sign, comma list, overflow) is refused. */
static bool parse_content_length(struct http1_str v, uint64_t *out)
{
    if (v.len == 0) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < '0' || c > '9') return false;
        unsigned d = c - '0';
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/*
 * Counts the codings of a Transfer-Encoding value into *chunked; returns false
 * on any coding but chunked, which we do not decode and must not guess at.
 */
static bool scan_transfer_coding(struct http1_str v, unsigned *chunked)
{
    size_t i = 0;
    while (i <= v.len) {
        size_t start = i;
        while (i < v.len && v.p[i] != ',')
            i++;
        struct http1_str el = {v.p + start, i - start};
        trim_ows(&el);
        i++;                       /* past the comma, or past the end */
        if (el.len == 0) continue; /* empty list elements are allowed (RFC 9110 5.6.1) */
        if (!STR_IEQ(el, "chunked")) return false;
        (*chunked)++;
    }
    return true;
}

/* Fills the framing fields from the headers; is_request enables request-only rules. */
static int extract_framing(struct http1_head *h, bool is_request)
{
    bool te_seen = false, close_tok = false, keepalive_tok = false;
    unsigned chunked_codings = 0, hosts = 0;

    h->chunked = false;
    h->has_content_length = false;
    h->content_length = 0;
    h->conn_close = false;
    h->expect_continue = false;

    for (size_t i = 0; i < h->nheaders; i++) {
        struct http1_str name = h->headers[i].name;
        struct http1_str value = h->headers[i].value;
        if (STR_IEQ(name, "content-length")) {
            uint64_t n;
            if (!parse_content_length(value, &n)) return HTTP1_ERROR;
            if (h->has_content_length && n != h->content_length) return HTTP1_ERROR;
            h->has_content_length = true;
            h->content_length = n;
        } else if (STR_IEQ(name, "transfer-encoding")) {
            te_seen = true;
            if (!scan_transfer_coding(value, &chunked_codings)) return HTTP1_ERROR;
        } else if (STR_IEQ(name, "connection")) {
            close_tok |= http1_value_has_token(value, "close");
            keepalive_tok |= http1_value_has_token(value, "keep-alive");
        } else if (is_request && STR_IEQ(name, "expect")) {
            /* an HTTP/1.0 client cannot know 100 Continue (RFC 9110 10.1.1) */
            if (h->minor_version >= 1 && STR_IEQ(value, "100-continue")) h->expect_continue = true;
        } else if (is_request && STR_IEQ(name, "host")) {
            if (++hosts > 1) return HTTP1_ERROR;
        }
    }

    if (te_seen) {
        /* chunked exactly once, and nothing else: "Transfer-Encoding:" alone is refused too */
        if (chunked_codings != 1 || h->has_content_length) return HTTP1_ERROR;
        if (h->minor_version == 0) {
            if (is_request) return HTTP1_ERROR;
            close_tok = true;
        }
        h->chunked = true;
    }
    h->conn_close = close_tok || (h->minor_version == 0 && !keepalive_tok);
    return 0;
}

static int head_length(const char *start, const char *p)
{
    return (int)(p - start);
}

/* "METHOD SP request-target SP HTTP-version" and its line end. */
static int parse_request_line(const char **pp, const char *end, struct http1_str *method,
                              struct http1_str *target, int *minor)
{
    const char *p = *pp;
    int rc;
    method->p = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p != ' ' || p == method->p) return HTTP1_ERROR;
    method->len = (size_t)(p - method->p);
    p++;

    target->p = p;
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p != ' ' || p == target->p) return HTTP1_ERROR;
    target->len = (size_t)(p - target->p);
    p++;

    if ((rc = parse_version(&p, end, minor))) return rc;
    if ((rc = eat_eol(&p, end))) return rc;
    *pp = p;
    return 0;
}

int http1_parse_request(const char *buf, size_t len, struct http1_request *req)
{
    /* the result is an int; the caller bounds heads far below this anyway */
    if (len == 0) return HTTP1_NEED_MORE; /* buf may be NULL then */
    if (len > INT_MAX) len = INT_MAX;
    const char *p = buf, *end = buf + len;
    int rc;

    /* not a memset: the header array is large */
    req->method = req->target = (struct http1_str){NULL, 0};
    req->head.minor_version = 0;
    req->head.nheaders = 0;

    /* a client may send a stray CRLF after a body (RFC 9112 2.2) */
    while (p < end && (*p == '\r' || *p == '\n'))
        if ((rc = eat_eol(&p, end))) return rc;

    if ((rc = parse_request_line(&p, end, &req->method, &req->target, &req->head.minor_version)))
        return rc;
    if ((rc = parse_headers(&p, end, &req->head))) return rc;
    if ((rc = extract_framing(&req->head, true))) return rc;
    return head_length(buf, p);
}

void http1_head_scan_init(struct http1_head_scan *s)
{
    memset(s, 0, sizeof *s);
}

/*
 * The complete lines the scan has passed over but not checked, each once, by
 * the functions the parser uses, so the scan refuses what the parser refuses.
 */
static int check_lines(struct http1_head_scan *s, const char *buf)
{
    while (s->checked < s->line_start) {
        const char *start = buf + s->checked;
        const char *lf = memchr(start, '\n', s->line_start - s->checked);
        const char *end = lf + 1, *p = start;
        size_t content = (size_t)(lf - start) - (lf > start && lf[-1] == '\r');
        s->checked += (size_t)(end - start);
        if (content == 0) continue; /* leading empty lines: the head has not ended */
        s->work += (size_t)(end - start);
        int rc;
        if (s->checked_lines++ == 0) {
            struct http1_str method, target;
            int minor;
            rc = parse_request_line(&p, end, &method, &target, &minor);
        } else {
            struct http1_header hd;
            rc = parse_header_line(&p, end, &hd);
        }
        if (rc) return HTTP1_ERROR; /* a whole line never needs more */
    }
    return 0;
}

/* What has come of a line not yet ended, byte by byte, so that what is not HTTP at all (a TLS
   hello, say) is refused at once and not after a line. */
static int check_tail(struct http1_head_scan *s, const char *buf, size_t len)
{
    for (size_t i = s->pos; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        s->work++;
        s->pos = i + 1;
        /* a CR not followed by LF, or a control byte, is an error wherever it is in a head */
        if (s->cr || (c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) return HTTP1_ERROR;
        if (c == '\r') {
            s->cr = true;
            continue;
        }
        if (s->lines == 0 && !s->method_done) {
            if (c == ' ') {
                if (i == s->line_start) return HTTP1_ERROR;
                s->method_done = true;
            } else if (!is_tchar(c)) {
                return HTTP1_ERROR;
            }
        }
    }
    return HTTP1_NEED_MORE;
}

/*
 * Lines are found by memchr. A head that ends in this call is handed to the
 * parser as it is (the parser checks every line); only a head that has not
 * ended has its lines checked here, so that garbage is not buffered up to the
 * size limit before it is refused.
 */
int http1_head_scan_request(struct http1_head_scan *s, const char *buf, size_t len)
{
    if (len > INT_MAX) len = INT_MAX;
    while (s->pos < len) {
        const char *lf = memchr(buf + s->pos, '\n', len - s->pos);
        if (!lf) break;
        size_t at = (size_t)(lf - buf), start = s->line_start;
        s->work += at + 1 - s->pos;
        s->pos = s->line_start = at + 1;
        s->cr = s->method_done = false;
        if (at - start == (size_t)(at > start && buf[at - 1] == '\r')) { /* an empty line */
            if (s->lines) return (int)(at + 1);
            continue; /* leading empty lines are skipped */
        }
        if (s->lines > HTTP1_MAX_HEADERS)
            return HTTP1_ERROR; /* the request line and the most headers */
        s->lines++;
    }
    int rc = check_lines(s, buf);
    return rc ? rc : check_tail(s, buf, len);
}

int http1_parse_response(const char *buf, size_t len, struct http1_response *resp)
{
    if (len == 0) return HTTP1_NEED_MORE;
    if (len > INT_MAX) len = INT_MAX;
    const char *p = buf, *end = buf + len;
    int rc;

    resp->status = 0;
    resp->reason = (struct http1_str){NULL, 0};
    resp->head.minor_version = 0;
    resp->head.nheaders = 0;

    if ((rc = parse_version(&p, end, &resp->head.minor_version))) return rc;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p++ != ' ') return HTTP1_ERROR;

    int status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == end) return HTTP1_NEED_MORE;
        if (*p < '0' || *p > '9') return HTTP1_ERROR;
        status = status * 10 + (*p - '0');
    }
    if (status < 100) return HTTP1_ERROR;
    resp->status = status;

    if (p == end) return HTTP1_NEED_MORE;
    /* some servers omit the SP before an empty reason; tolerate that */
    if (*p == ' ') {
        p++;
    } else if (*p != '\r' && *p != '\n') {
        return HTTP1_ERROR;
    }
    resp->reason.p = p;
    while (p < end && is_value_char((unsigned char)*p))
        p++;
    if (p == end) return HTTP1_NEED_MORE;
    if (*p != '\r' && *p != '\n') return HTTP1_ERROR;
    resp->reason.len = (size_t)(p - resp->reason.p);
    if ((rc = eat_eol(&p, end))) return rc;
    if ((rc = parse_headers(&p, end, &resp->head))) return rc;
    if ((rc = extract_framing(&resp->head, false))) return rc;
    return head_length(buf, p);
}

const struct http1_str *http1_find_header(const struct http1_head *h, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->nheaders; i++)
        if (str_ieq(h->headers[i].name, name, n)) return &h->headers[i].value;
    return NULL;
}

bool http1_value_has_token(struct http1_str value, const char *token)
{
    size_t n = strlen(token), i = 0;
    while (i < value.len) {
        size_t start = i;
        while (i < value.len && value.p[i] != ',')
            i++;
        struct http1_str el = {value.p + start, i - start};
        trim_ows(&el);
        /* empty list elements are not tokens (RFC 9110 5.6.1) */
        if (el.len && str_ieq(el, token, n)) return true;
        i++;
    }
    return false;
}

enum http1_body_mode http1_request_body_mode(const struct http1_request *req)
{
    if (req->head.chunked) return HTTP1_BODY_CHUNKED;
    if (req->head.has_content_length) return HTTP1_BODY_LENGTH;
    return HTTP1_BODY_NONE;
}

enum http1_body_mode http1_response_body_mode(const struct http1_response *resp,
                                              bool request_was_head)
{
    /* RFC 9112 6.3 rules 1 and 2: these never carry a body, whatever the headers say */
    if (request_was_head || resp->status < 200 || resp->status == 204 || resp->status == 304)
        return HTTP1_BODY_NONE;
    if (resp->head.chunked) return HTTP1_BODY_CHUNKED;
    if (resp->head.has_content_length) return HTTP1_BODY_LENGTH;
    return HTTP1_BODY_UNTIL_CLOSE;
}

/*
 * Chunked decoder states (RFC 9112 7.1):
 *
 *   SIZE_START -hex-> SIZE -hex-> SIZE
 *                     SIZE -SP/HTAB-> SIZE_WS -';'-> EXT
 *                     SIZE -';'-> EXT -...-> EXT
 *                     SIZE / EXT -CR-> SIZE_LF -LF-> DATA, or TRAILER_START if size 0
 *   DATA -size bytes-> DATA_CR -CR-> DATA_LF -LF-> SIZE_START
 *   TRAILER_START -CR-> END_LF -LF-> DONE
 *   TRAILER_START -other-> TRAILER -CR-> TRAILER_LF -LF-> TRAILER_START
 *
 * With bare_lf_ok (responses), an LF alone also ends each of these lines:
 *   SIZE / EXT -LF-> DATA or TRAILER_START;  DATA_CR -LF-> SIZE_START;
 *   TRAILER_START -LF-> DONE;  TRAILER -LF-> TRAILER_START.
 *
 * Any other byte, or passing a bound, is ERROR, which is sticky.
 */
enum {
    CS_SIZE_START,
    CS_SIZE,
    CS_SIZE_WS,
    CS_EXT,
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START,
    CS_TRAILER,
    CS_TRAILER_LF,
    CS_END_LF,
    CS_DONE,
    CS_ERROR,
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void http1_body_init(struct http1_body *b, enum http1_body_mode mode, uint64_t content_length)
{
    memset(b, 0, sizeof *b);
    b->mode = mode;
    b->state = CS_SIZE_START;
    switch (mode) {
    case HTTP1_BODY_NONE:
        b->done = true;
        break;
    case HTTP1_BODY_LENGTH:
        b->remaining = content_length;
        b->done = content_length == 0;
        break;
    case HTTP1_BODY_CHUNKED:
    case HTTP1_BODY_UNTIL_CLOSE:
        break;
    }
}

/* The end of a size line: start the chunk's data, or the trailers after the last chunk. */
static int chunk_size_line_done(struct http1_body *b)
{
    b->line_bytes = 0;
    return b->remaining ? CS_DATA : CS_TRAILER_START;
}

/* One byte of chunked framing (not data); returns the next state. */
static int chunked_step(struct http1_body *b, unsigned char c)
{
    switch (b->state) {
    case CS_SIZE_START:
    case CS_SIZE: {
        int d = hex_value(c);
        if (d >= 0) {
            /* the digit cap keeps the size in a uint64 with no overflow check */
            if (++b->line_bytes > HTTP1_MAX_CHUNK_SIZE_DIGITS) return CS_ERROR;
            b->remaining = (b->remaining << 4) | (uint64_t)d;
            return CS_SIZE;
        }
        if (b->state == CS_SIZE_START) return CS_ERROR;
        b->line_bytes++;
        if (c == ' ' || c == '\t') return CS_SIZE_WS;
        if (c == ';') return CS_EXT;
        if (c == '\r') return CS_SIZE_LF;
        if (c == '\n' && b->bare_lf_ok) return chunk_size_line_done(b);
        return CS_ERROR;
    }
    case CS_SIZE_WS:
        /* BWS is only allowed before an extension (RFC 9112 7.1.1) */
        if (++b->line_bytes > HTTP1_MAX_CHUNK_LINE) return CS_ERROR;
        if (c == ' ' || c == '\t') return CS_SIZE_WS;
        return c == ';' ? CS_EXT : CS_ERROR;
    case CS_EXT:
        /* the bound is on the line's content; its CRLF is not counted */
        if (c == '\r') return CS_SIZE_LF;
        if (c == '\n') return b->bare_lf_ok ? chunk_size_line_done(b) : CS_ERROR;
        if (++b->line_bytes > HTTP1_MAX_CHUNK_LINE) return CS_ERROR;
        return is_value_char(c) ? CS_EXT : CS_ERROR;
    case CS_SIZE_LF:
        return c == '\n' ? chunk_size_line_done(b) : CS_ERROR;
    case CS_DATA_CR:
        if (c == '\r') return CS_DATA_LF;
        return c == '\n' && b->bare_lf_ok ? CS_SIZE_START : CS_ERROR;
    case CS_DATA_LF:
        return c == '\n' ? CS_SIZE_START : CS_ERROR;
    case CS_TRAILER_START:
    case CS_TRAILER:
        if (++b->line_bytes > HTTP1_MAX_TRAILER_BYTES) return CS_ERROR;
        if (c == '\r') return b->state == CS_TRAILER_START ? CS_END_LF : CS_TRAILER_LF;
        if (c == '\n') {
            if (!b->bare_lf_ok) return CS_ERROR;
            return b->state == CS_TRAILER_START ? CS_DONE : CS_TRAILER_START;
        }
        return is_value_char(c) ? CS_TRAILER : CS_ERROR;
    case CS_TRAILER_LF:
        if (++b->line_bytes > HTTP1_MAX_TRAILER_BYTES) return CS_ERROR;
        return c == '\n' ? CS_TRAILER_START : CS_ERROR;
    case CS_END_LF:
        return c == '\n' ? CS_DONE : CS_ERROR;
    default:
        return CS_ERROR;
    }
}

/* A whole size line with no extension ("1a2\r\n", or "1a2\n" where a bare LF is taken) at buf:
   its length, the state moved past it as the byte steps would; 0 to go byte by byte (a line
   cut, an extension, anything else). Every chunk of a relayed stream starts with one. */
static size_t chunk_size_line_whole(struct http1_body *b, const char *buf, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    int d;
    while (i < n && i < HTTP1_MAX_CHUNK_SIZE_DIGITS &&
           (d = hex_value((unsigned char)buf[i])) >= 0) {
        v = v << 4 | (uint64_t)d;
        i++;
    }
    if (i == 0) return 0;
    if (n - i >= 2 && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;
    else if (i < n && buf[i] == '\n' && b->bare_lf_ok)
        i++;
    else
        return 0;
    b->remaining = v;
    b->state = chunk_size_line_done(b);
    return i;
}

static int feed_chunked(struct http1_body *b, char *buf, size_t *len, size_t *consumed)
{
    size_t in = 0, out = 0, n = *len;

    while (in < n && b->state != CS_DONE && b->state != CS_ERROR) {
        if (b->state == CS_DATA_CR && n - in >= 2 && buf[in] == '\r' && buf[in + 1] == '\n') {
            in += 2; /* a chunk's CRLF, whole */
            b->state = CS_SIZE_START;
            continue;
        }
        if (b->state == CS_SIZE_START) {
            size_t k = chunk_size_line_whole(b, buf + in, n - in);
            if (k) {
                in += k;
                uint64_t r = b->remaining;
                /* the usual chunk, its data and CRLF all here: taken in this step too */
                if (b->state == CS_DATA && n - in >= 2 && r <= n - in - 2 && buf[in + r] == '\r' &&
                    buf[in + r + 1] == '\n') {
                    if (out != in) memmove(buf + out, buf + in, (size_t)r);
                    out += (size_t)r;
                    in += (size_t)r + 2;
                    b->remaining = 0;
                    b->state = CS_SIZE_START;
                }
                continue;
            }
        }
        if (b->state == CS_DATA) {
            size_t take = n - in;
            if ((uint64_t)take > b->remaining) take = (size_t)b->remaining;
            /* out never passes in, so the payload slides toward the front */
            if (out != in) memmove(buf + out, buf + in, take);
            out += take;
            in += take;
            b->remaining -= take;
            if (b->remaining == 0) b->state = CS_DATA_CR;
            continue;
        }
        b->state = chunked_step(b, (unsigned char)buf[in++]);
    }
    *len = out;
    *consumed = in;
    if (b->state == CS_ERROR) return HTTP1_ERROR;
    if (b->state == CS_DONE) {
        b->done = true;
        return 1;
    }
    return 0;
}

int http1_body_feed(struct http1_body *b, char *buf, size_t *len, size_t *consumed)
{
    if (b->mode == HTTP1_BODY_CHUNKED && b->state == CS_ERROR) {
        *len = 0;
        *consumed = 0;
        return HTTP1_ERROR;
    }
    if (b->done) {
        *len = 0;
        *consumed = 0;
        return 1;
    }
    switch (b->mode) {
    case HTTP1_BODY_LENGTH: {
        size_t take = *len;
        if ((uint64_t)take > b->remaining) take = (size_t)b->remaining;
        b->remaining -= take;
        *len = take;
        *consumed = take;
        b->done = b->remaining == 0;
        return b->done ? 1 : 0;
    }
    case HTTP1_BODY_CHUNKED:
        return feed_chunked(b, buf, len, consumed);
    case HTTP1_BODY_UNTIL_CLOSE:
        *consumed = *len;
        return 0;
    case HTTP1_BODY_NONE:
        break;
    }
    *len = 0;
    *consumed = 0;
    return 1;
}

int http1_body_eof(struct http1_body *b)
{
    if (b->done) return 1;
    if (b->mode == HTTP1_BODY_UNTIL_CLOSE) {
        b->done = true;
        return 1;
    }
    if (b->mode == HTTP1_BODY_CHUNKED) b->state = CS_ERROR;
    return HTTP1_ERROR;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}

/* ---- Retry-After ---------------------------------------------------------------- */

static bool digits_at(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110's IMF-fixdate) as unix seconds; false if not. */
static bool imf_fixdate(const char *v, size_t len, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (len != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || v[25] != ' ' || memcmp(v + 26, "GMT", 3) != 0)
        return false;
    unsigned day, year, hh, mm, ss, mon = 0;
    if (!digits_at(v + 5, 2, &day) || !digits_at(v + 12, 4, &year) || !digits_at(v + 17, 2, &hh) ||
        !digits_at(v + 20, 2, &mm) || !digits_at(v + 23, 2, &ss))
        return false;
    while (mon < 12 && memcmp(months + 3 * mon, v + 8, 3) != 0)
        mon++;
    if (mon == 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
        return false;
    int64_t days = utcdate_days_from_civil((int)year, mon + 1, day);
    *out = days * 86400 + hh * 3600 + mm * 60 + ss;
    return true;
}

int http1_retry_after_s(const char *v, size_t len, int64_t now_unix_s)
{
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;
    if (v[0] >= '0' && v[0] <= '9') {
        /* Clamped digit by digit: any number of digits, no overflow on the way. */
        int64_t s = 0;
        for (size_t i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            if (s < HTTP1_RETRY_AFTER_MAX_S)
                s = s * 10 + (v[i] - '0');
        }
        return s > HTTP1_RETRY_AFTER_MAX_S ? HTTP1_RETRY_AFTER_MAX_S : (int)s;
    }
    int64_t at;
    if (!imf_fixdate(v, len, &at))
        return -1;
    int64_t wait = at - now_unix_s;
    return wait <= 0 ? 0 : wait > HTTP1_RETRY_AFTER_MAX_S ? HTTP1_RETRY_AFTER_MAX_S : (int)wait;
}
