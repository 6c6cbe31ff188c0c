#include "base/buf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"

#define BUF_DEFAULT_LIMIT (16u << 20)

/*
 * A buffer's first block, and the blocks it is freed with, come from per-thread free lists
 * when they are one of the small sizes a buffer grows through (256 B to 4 KiB): the
 * buffers a request fills and frees (its head, the upstream request, the SSE parser's
 * event, log lines, response heads) then take no malloc/free in the steady state. A block
 * is a malloc block of at least its size either way, so realloc, free and buf_steal's
 * caller treat it as any other.
 */
#define BUF_POOL_MIN 256
#define BUF_POOL_CLASSES 5 /* 256, 512, 1 KiB, 2 KiB, 4 KiB */
#define BUF_POOL_KEEP 32   /* blocks of each size a thread keeps (about 250 KiB at most) */

static __thread struct pool buf_pools[BUF_POOL_CLASSES] = {
    POOL_INIT(256, BUF_POOL_KEEP), POOL_INIT(512, BUF_POOL_KEEP), POOL_INIT(1024, BUF_POOL_KEEP),
    POOL_INIT(2048, BUF_POOL_KEEP), POOL_INIT(4096, BUF_POOL_KEEP)};

/* The pool of blocks of exactly cap bytes, or NULL. */
static struct pool *pool_of(size_t cap)
{
    for (unsigned i = 0; i < BUF_POOL_CLASSES; i++)
        if (cap == (size_t)BUF_POOL_MIN << i) return &buf_pools[i];
    return NULL;
}

void buf_init(struct buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit ? limit : BUF_DEFAULT_LIMIT;
}

void buf_free(struct buf *b)
{
    buf_mem_free(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

void *buf_mem_grow(void *mem, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : BUF_POOL_MIN;
    while (c < need)
        c *= 2;
    struct pool *pl = mem ? NULL : pool_of(c);
    void *p = pl ? pool_get(pl) : realloc(mem, c);
    if (p) *cap = c;
    return p;
}

void buf_mem_free(void *mem, size_t cap)
{
    struct pool *p = mem ? pool_of(cap) : NULL;
    if (p)
        pool_put(p, mem);
    else
        free(mem);
}

static int grow(struct buf *b, size_t extra)
{
    size_t limit = b->limit ? b->limit : BUF_DEFAULT_LIMIT;
    if (extra > limit || b->len > limit - extra)
        return -ENOBUFS;
    size_t need = b->len + extra + 1; /* room for a NUL terminator */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : BUF_POOL_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > limit + 1)
        cap = limit + 1; /* not a pooled size unless it happens to be one: still any block */
    struct pool *pl = b->data ? NULL : pool_of(cap);
    char *p = pl ? pool_get(pl) : realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* The usual case, room already there and within the limit, decided without a call: every
   append of the per-request paths asks. A buffer with no block has cap 0 and grows. */
static inline int reserve(struct buf *b, size_t extra)
{
    if (extra < b->cap - b->len && b->len + extra <= b->limit) return 0;
    return grow(b, extra);
}

int buf_reserve(struct buf *b, size_t extra)
{
    return reserve(b, extra);
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return buf_append(b, small, (size_t)n);
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *buf_put_u64(char *w, unsigned long long v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(w, tmp + n, sizeof tmp - n);
    return w + (sizeof tmp - n);
}

int buf_append_u64(struct buf *b, unsigned long long v)
{
    char tmp[24];
    return buf_append(b, tmp, (size_t)(buf_put_u64(tmp, v) - tmp));
}

int buf_append_i64(struct buf *b, long long v)
{
    if (v >= 0) return buf_append_u64(b, (unsigned long long)v);
    int rc = buf_append(b, "-", 1);
    return rc ? rc : buf_append_u64(b, 0ULL - (unsigned long long)v);
}

int buf_append_hex(struct buf *b, unsigned long long v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = digits[v & 15];
        v >>= 4;
    } while (v);
    return buf_append(b, tmp + n, sizeof tmp - n);
}

/* One byte that a JSON string may not hold as it is, escaped into esc: its length. */
static size_t json_escape(char *esc, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
        esc[0] = '\\';
        esc[1] = (char)c;
        return 2;
    }
    if (c == '\n' || c == '\r' || c == '\t') {
        esc[0] = '\\';
        esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        return 2;
    }
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

char *buf_put_json_str(char *w, const char *s, size_t len)
{
    *w++ = '"';
    for (size_t i = 0; i < len;) {
        size_t run = buf_json_plain_end(s, i, len);
        memcpy(w, s + i, run - i);
        w += run - i;
        i = run;
        if (i < len) w += json_escape(w, (unsigned char)s[i++]);
    }
    *w++ = '"';
    return w;
}

/* What buf_put_json_str writes for s: the quotes and each byte, escaped or not. */
static size_t json_str_len(const char *s, size_t len)
{
    size_t need = 2;
    for (size_t i = 0; i < len;) {
        size_t run = buf_json_plain_end(s, i, len);
        need += run - i;
        i = run;
        if (i < len) {
            char esc[6];
            need += json_escape(esc, (unsigned char)s[i++]);
        }
    }
    return need;
}

int buf_append_json_str(struct buf *b, const char *s, size_t len)
{
    /* room for the longest form, the usual case; near the buffer's limit, for the exact one */
    if (len >= (SIZE_MAX - 2) / 6 || reserve(b, BUF_JSON_STR_MAX(len)) != 0) {
        int rc = reserve(b, json_str_len(s, len));
        if (rc) return rc;
    }
    char *end = buf_put_json_str(b->data + b->len, s, len);
    b->len = (size_t)(end - b->data);
    b->data[b->len] = '\0';
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
