#include "proto/sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A line may carry a whole event's data plus its "data: " prefix. */
#define SSE_LINE_SLACK 16

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

void sse_parser_init(struct sse_parser *p, size_t max_event_bytes)
{
    memset(p, 0, sizeof *p);
    p->max_event_bytes = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT;
}

void sse_parser_free(struct sse_parser *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_cap = p->data_cap = 0;
    sse_parser_reset(p);
}

void sse_parser_reset(struct sse_parser *p)
{
    p->line_len = 0;
    p->data_len = 0;
    p->direct = NULL;
    p->event_len = 0;
    p->event[0] = '\0';
    p->has_data = false;
    p->pending_cr = false;
    p->bom_checked = false;
    p->bom_seen = 0;
}

static size_t sse_line_limit(const struct sse_parser *p)
{
    return p->max_event_bytes + SSE_LINE_SLACK;
}

/* Make room for `need` bytes plus a NUL, never past limit + 1. */
static int sse_grow(char **mem, size_t *cap, size_t need, size_t limit)
{
    if (need > limit)
        return SSE_ERR_TOO_BIG;
    if (need + 1 <= *cap)
        return 0;
    size_t ncap =
        *cap ? *cap : 1024; /* a usual chunk and the usage chunk fit: one allocation a stream */
    while (ncap < need + 1)
        ncap *= 2;
    if (ncap > limit + 1)
        ncap = limit + 1;
    char *m = realloc(*mem, ncap);
    if (!m)
        return SSE_ERR_NOMEM;
    *mem = m;
    *cap = ncap;
    return 0;
}

static int sse_line_append(struct sse_parser *p, const void *bytes, size_t n)
{
    if (n > sse_line_limit(p) - p->line_len)
        return SSE_ERR_TOO_BIG;
    int rc = sse_grow(&p->line, &p->line_cap, p->line_len + n, sse_line_limit(p));
    if (rc)
        return rc;
    memcpy(p->line + p->line_len, bytes, n);
    p->line_len += n;
    return 0;
}

/* Data still in the fed bytes, copied into the parser's own buffer: the feed is ending. */
static int sse_keep_direct(struct sse_parser *p)
{
    if (!p->direct) return 0;
    const char *d = p->direct;
    p->direct = NULL;
    int rc = sse_grow(&p->data, &p->data_cap, p->data_len, p->max_event_bytes);
    if (rc == 0 && p->data_len) memcpy(p->data, d, p->data_len);
    return rc;
}

static int sse_dispatch(struct sse_parser *p, sse_item_cb cb, void *ud)
{
    int rc = 0;
    /* One empty data line is no event (the spec drops an empty data buffer); two are "\n". */
    if (p->has_data && p->data_len > 0) {
        struct sse_item item = {
            .kind = SSE_EVENT,
            .data = p->direct ? p->direct : p->data,
            .data_len = p->data_len,
            .event = p->event,
            .event_len = p->event_len,
        };
        rc = cb(ud, &item);
    }
    p->direct = NULL;
    p->data_len = 0;
    p->has_data = false;
    p->event_len = 0;
    p->event[0] = '\0';
    return rc;
}

/* in_feed: value lies in the bytes being fed (not in the parser's line buffer). */
static int sse_data_line(struct sse_parser *p, const char *value, size_t n, bool in_feed)
{
    size_t sep = p->has_data ? 1 : 0;
    size_t room = p->max_event_bytes - p->data_len;
    if (p->data_len > p->max_event_bytes || sep > room || n > room - sep)
        return SSE_ERR_TOO_BIG;
    if (!p->has_data && in_feed && n) {
        /* the usual event, one data line: handed on from where it lies, not copied */
        p->direct = value;
        p->data_len = n;
        p->has_data = true;
        return 0;
    }
    int rc = sse_keep_direct(p);
    if (rc == 0) rc = sse_grow(&p->data, &p->data_cap, p->data_len + sep + n, p->max_event_bytes);
    if (rc)
        return rc;
    if (sep)
        p->data[p->data_len++] = '\n';
    if (n)
        memcpy(p->data + p->data_len, value, n);
    p->data_len += n;
    p->has_data = true;
    return 0;
}

static int sse_line(struct sse_parser *p, const char *line, size_t n, bool in_feed, sse_item_cb cb,
                    void *ud)
{
    if (n == 0) return sse_dispatch(p, cb, ud);
    if (line[0] == ':') {
        struct sse_item item = {
            .kind = SSE_COMMENT,
            .data = line + 1,
            .data_len = n - 1,
            .event = "",
            .event_len = 0,
        };
        return cb(ud, &item);
    }
    const char *colon = memchr(line, ':', n);
    size_t field_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = (size_t)(line + n - value);
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (field_len == 4 && memcmp(line, "data", 4) == 0)
        return sse_data_line(p, value, value_len, in_feed);
    if (field_len == 5 && memcmp(line, "event", 5) == 0) {
        size_t keep = value_len < sizeof p->event - 1 ? value_len : sizeof p->event - 1;
        memcpy(p->event, value, keep);
        p->event[keep] = '\0';
        p->event_len = keep;
    }
    return 0;
}

/* The first LF or CR in buf[i, len), or len: found with memchr (vectorised) rather than byte
   by byte, since every relayed byte passes here. *cr is where the first CR at or after an
   earlier i was found (len: none; SIZE_MAX: not searched), searched again only once passed:
   a stream whose lines end in LF alone is searched for CR once a feed, not once a line. */
static size_t sse_line_end(const char *buf, size_t i, size_t len, size_t *cr)
{
    if (*cr == SIZE_MAX || *cr < i) {
        const char *c = memchr(buf + i, '\r', len - i);
        *cr = c ? (size_t)(c - buf) : len;
    }
    const char *lf = memchr(buf + i, '\n', *cr - i);
    return lf ? (size_t)(lf - buf) : *cr;
}

int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_item_cb cb, void *ud,
                    size_t *consumed)
{
    size_t i = 0, cr = SIZE_MAX; /* not searched yet */
    int rc = 0;

    while (i < len) {
        if (!p->bom_checked) {
            if ((unsigned char)buf[i] == sse_bom[p->bom_seen]) {
                i++;
                if (++p->bom_seen == sizeof sse_bom)
                    p->bom_checked = true;
                continue;
            }
            /* Not a BOM after all: the bytes taken so far start the first line. */
            p->bom_checked = true;
            if (p->bom_seen && (rc = sse_line_append(p, sse_bom, p->bom_seen)))
                break;
        }
        if (p->pending_cr) {
            p->pending_cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        /* The usual event whole at a line's start, "data: " + data + "\n\n" with nothing
           pending: handed on framed in one step (the only way an event is framed). Anything
           else, or too big, goes the way of every line below (the fuzz target holds the two
           to the same items). */
        if (p->line_len == 0 && !p->has_data && p->event_len == 0 && len - i > 8 &&
            memcmp(buf + i, "data: ", 6) == 0) {
            size_t e = sse_line_end(buf, i + 6, len, &cr);
            if (e > i + 6 && len - e >= 2 && buf[e] == '\n' && buf[e + 1] == '\n' &&
                e - (i + 6) <= p->max_event_bytes) {
                struct sse_item item = {
                    .kind = SSE_EVENT,
                    .data = buf + i + 6,
                    .data_len = e - (i + 6),
                    .framed = true,
                    .event = p->event,
                    .event_len = 0,
                };
                i = e + 2;
                if ((rc = cb(ud, &item))) break;
                continue;
            }
        }
        /* the line's end; the empty line that ends every event without a search */
        size_t j = buf[i] == '\n' || buf[i] == '\r' ? i : sse_line_end(buf, i, len, &cr);
        if (j == len) {
            rc = sse_line_append(p, buf + i, len - i);
            if (rc == 0)
                i = len;
            break;
        }
        const char *line = buf + i;
        size_t n = j - i;
        if (p->line_len) {
            if ((rc = sse_line_append(p, buf + i, n)))
                break;
            line = p->line;
            n = p->line_len;
        } else if (n > sse_line_limit(p)) {
            rc = SSE_ERR_TOO_BIG;
            break;
        }
        p->pending_cr = buf[j] == '\r';
        i = j + 1;
        rc = sse_line(p, line, n, line != p->line, cb, ud);
        p->line_len = 0;
        if (rc)
            break;
    }
    if (p->direct) {
        int kept = sse_keep_direct(p); /* the fed bytes are the caller's again */
        if (rc == 0) rc = kept;
    }
    if (consumed)
        *consumed = i;
    return rc;
}

int sse_encode_event(struct buf *out, const char *data, size_t len)
{
    size_t lines = 1;
    for (const char *nl = data; (nl = memchr(nl, '\n', len - (size_t)(nl - data))) != NULL; nl++)
        lines++;
    /* "data: " and "\n" per line (the joining "\n"s become line ends), and the blank line */
    size_t need = len - (lines - 1) + lines * 7 + 1;
    int rc = buf_reserve(out, need);
    if (rc)
        return rc;
    const char *line = data, *end = data + len;
    for (;;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        memcpy(out->data + out->len, "data: ", 6);
        memcpy(out->data + out->len + 6, line, n);
        out->data[out->len + 6 + n] = '\n';
        out->len += n + 7;
        if (!nl)
            break;
        line = nl + 1;
    }
    out->data[out->len++] = '\n';
    out->data[out->len] = '\0';
    return 0;
}
