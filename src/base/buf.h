/*
 * buf — a growable byte buffer with a hard upper bound.
 *
 * Every buffer in unbusy is bounded: buf_append fails with -ENOBUFS instead of
 * growing past `limit`. The buffer owns its memory; buf_free releases it.
 * buf_consume drops bytes from the front (used by parsers that eat input).
 */
#ifndef UNBUSY_BUF_H
#define UNBUSY_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0 means the default limit (16 MiB) */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
/* Returns 0, or -ENOBUFS when the result would pass the limit, -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Number writers for the per-request paths (no printf): decimal, and lower-case hex. */
int buf_append_u64(struct buf *b, unsigned long long v);
int buf_append_i64(struct buf *b, long long v);
int buf_append_hex(struct buf *b, unsigned long long v);
/* The decimal written at w, which has room for BUF_U64_MAX bytes: the end. No NUL. */
#define BUF_U64_MAX 20
char *buf_put_u64(char *w, unsigned long long v);
/* A string literal without strlen: buf_append_lit(b, "x-y: ") */
#define buf_append_lit(b, lit) buf_append((b), (lit), sizeof(lit) - 1)
/* Appends s as a JSON string literal, quotes included. */
int buf_append_json_str(struct buf *b, const char *s, size_t len);
/* The same written at w, which has room for BUF_JSON_STR_MAX(len) bytes (each byte escaped
   as \u00XX at worst, and the quotes): the end of what was written. No NUL. */
#define BUF_JSON_STR_MAX(len) (6 * (size_t)(len) + 2)
char *buf_put_json_str(char *w, const char *s, size_t len);

/* The first i' >= i with s[i'] a quote, a backslash or a control character (< 0x20), or n:
   where a JSON string's plain run from i ends. 8 bytes at a time; the writer above and the
   JSON walk (proto/jsonx_walk) both run over every string byte they pass. */
static inline size_t buf_json_plain_end(const char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
        uint64_t hit = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
        if (hit) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* the lowest flagged byte is always a true one (a borrow only runs upwards) */
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }
        i += 8;
    }
    while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* The blocks struct buf grows through, for a module that keeps a growing array or text of its
   own: buf_mem_grow makes *cap at least need (NULL mem: a new block; small ones from the
   per-thread lists), returning the block (moved, maybe) or NULL with mem untouched when out
   of memory; buf_mem_free gives a block and its cap back. */
void *buf_mem_grow(void *mem, size_t *cap, size_t need);
void buf_mem_free(void *mem, size_t cap);
/* Hands the memory to the caller (who frees it with free()); the buffer is empty after. */
char *buf_steal(struct buf *b, size_t *len);

#endif
