/* resp — RESP2 command writer and restartable reply parser (see resp.h). */
#include "proto/resp.h"

#include <errno.h>
#include <string.h>

#define MAX_LINE 64          /* a type byte, a number or a short status, and CRLF */
#define MAX_STATUS_LINE 4096 /* a status or error line (Redis's are short) */

/* The line starting at p (before CRLF): its length, or -1 need more, -2 too long / bad. */
static long line_len(const char *p, size_t avail, size_t max)
{
    size_t lim = avail < max ? avail : max;
    for (size_t i = 0; i < lim; i++) {
        if (p[i] == '\r') {
            if (i + 1 >= avail) return -1;
            return p[i + 1] == '\n' ? (long)i : -2;
        }
        if (p[i] == '\n') return -2;
    }
    return avail < max ? -1 : -2;
}

/* A signed decimal of the whole range; -1 when it is not one. */
static int parse_int(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (n && p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 18) return -1;
    int64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

long resp_parse(const char *data, size_t len, struct resp_reply *out)
{
    /* left[d]: elements still to read of the array open at depth d (d 0: the reply itself) */
    int64_t left[RESP_MAX_DEPTH + 2];
    unsigned depth = 0;
    left[0] = 1;
    size_t off = 0;
    out->n = 0;
    for (;;) {
        while (depth > 0 && left[depth] == 0)
            depth--;
        if (depth == 0 && left[0] == 0) return (long)off;
        if (out->n == RESP_MAX_ITEMS) return RESP_ERR_LIMIT;
        if (off >= len) return RESP_NEED_MORE;
        char type = data[off];
        const char *p = data + off + 1;
        size_t avail = len - off - 1;
        long ll = line_len(p, avail, type == '+' || type == '-' ? MAX_STATUS_LINE : MAX_LINE);
        if (ll == -1) return RESP_NEED_MORE;
        if (ll < 0) return type == '+' || type == '-' ? RESP_ERR_LIMIT : RESP_ERR_PROTO;
        struct resp_item *it = &out->items[out->n];
        memset(it, 0, sizeof *it);
        it->depth = depth;
        size_t next = off + 1 + (size_t)ll + 2;
        int64_t num = 0;
        switch (type) {
        case '+':
        case '-':
            it->type = type == '+' ? RESP_STATUS : RESP_ERROR;
            it->str = p;
            it->len = (size_t)ll;
            break;
        case ':':
            if (parse_int(p, (size_t)ll, &num) < 0) return RESP_ERR_PROTO;
            it->type = RESP_INTEGER;
            it->integer = num;
            break;
        case '$':
            if (parse_int(p, (size_t)ll, &num) < 0 || num < -1) return RESP_ERR_PROTO;
            if (num == -1) {
                it->type = RESP_NIL;
                break;
            }
            if ((uint64_t)num > RESP_MAX_BULK) return RESP_ERR_LIMIT;
            if (len - next < (size_t)num + 2) return RESP_NEED_MORE;
            if (data[next + (size_t)num] != '\r' || data[next + (size_t)num + 1] != '\n')
                return RESP_ERR_PROTO;
            it->type = RESP_BULK;
            it->str = data + next;
            it->len = (size_t)num;
            next += (size_t)num + 2;
            break;
        case '*':
            if (parse_int(p, (size_t)ll, &num) < 0 || num < -1) return RESP_ERR_PROTO;
            if (num == -1) {
                it->type = RESP_NIL;
                break;
            }
            if (num >= RESP_MAX_ITEMS) return RESP_ERR_LIMIT;
            it->type = RESP_ARRAY;
            it->integer = num;
            break;
        default:
            return RESP_ERR_PROTO;
        }
        out->n++;
        off = next;
        left[depth]--;
        if (it->type == RESP_ARRAY && it->integer > 0) {
            if (depth + 1 > RESP_MAX_DEPTH) return RESP_ERR_LIMIT;
            left[++depth] = it->integer;
        }
    }
}

int resp_command(struct buf *b, int argc, const char *const *argv, const size_t *lens)
{
    if (argc <= 0 || argc > RESP_MAX_ARGS) return -EINVAL;
    size_t start = b->len;
    int rc = buf_printf(b, "*%d\r\n", argc);
    for (int i = 0; rc == 0 && i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        rc = buf_printf(b, "$%zu\r\n", n);
        if (rc == 0) rc = buf_append(b, argv[i], n);
        if (rc == 0) rc = buf_append(b, "\r\n", 2);
    }
    if (rc != 0) b->len = start; /* never half a command */
    return rc;
}

size_t resp_skip(const struct resp_reply *r, size_t i)
{
    unsigned d = r->items[i].depth;
    for (i++; i < r->n && r->items[i].depth > d; i++)
        ;
    return i;
}

int resp_item_is(const struct resp_item *it, const char *s)
{
    size_t n = strlen(s);
    return (it->type == RESP_STATUS || it->type == RESP_BULK) && it->len == n &&
           memcmp(it->str, s, n) == 0;
}
