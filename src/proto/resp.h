/*
 * resp — the Redis protocol (RESP2): a command writer and a pure reply parser.
 *
 * resp_command writes one command as an array of bulk strings into a bounded
 * buf (what every Redis accepts). resp_parse reads one whole reply from the
 * front of a byte range: it keeps no state between calls, so a caller that
 * has only part of a reply calls it again with more bytes appended
 * (restartable, never reading past len), and a reply is the same however
 * its bytes were split. The parsed reply is a flat list of items in
 * depth-first order (an array item is followed by its elements), each
 * string pointing into the caller's bytes, so parsing allocates nothing.
 *
 * Bounds: at most RESP_MAX_ITEMS items, RESP_MAX_DEPTH nested arrays, and
 * a bulk string of at most RESP_MAX_BULK bytes; more is RESP_ERR_LIMIT (the
 * connection is then unusable: the client closes it). Anything that is not
 * RESP2 is RESP_ERR_PROTO.
 *
 * Who calls it: the Redis client (net/redis.c) and its callers reading
 * replies; the fuzz target tests/fuzz/fuzz_resp.c.
 */
#ifndef UNBUSY_RESP_H
#define UNBUSY_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define RESP_MAX_ITEMS 160
#define RESP_MAX_DEPTH 4
#define RESP_MAX_BULK (512u << 10)
#define RESP_MAX_ARGS 256 /* arguments of one command */

enum resp_type {
    RESP_STATUS,  /* +OK */
    RESP_ERROR,   /* -ERR ... */
    RESP_INTEGER, /* :42 */
    RESP_BULK,    /* $3\r\nabc */
    RESP_NIL,     /* $-1 or *-1 */
    RESP_ARRAY,   /* *N: the next items are its N elements (each with its own) */
};

struct resp_item {
    enum resp_type type;
    int64_t integer; /* RESP_INTEGER; RESP_ARRAY: its element count */
    const char *str; /* STATUS, ERROR, BULK: into the parsed bytes (not NUL-terminated) */
    size_t len;
    unsigned depth; /* 0 for the reply itself */
};

struct resp_reply {
    struct resp_item items[RESP_MAX_ITEMS];
    size_t n;
};

#define RESP_NEED_MORE 0
#define RESP_ERR_PROTO (-1)
#define RESP_ERR_LIMIT (-2)

/*
 * Parses one reply from data[0..len). Returns its length in bytes (> 0) with
 * *out filled; RESP_NEED_MORE when the bytes end inside it (call again with
 * more); RESP_ERR_PROTO or RESP_ERR_LIMIT.
 */
long resp_parse(const char *data, size_t len, struct resp_reply *out);

/* Appends one command (argc arguments, argv[i] of lens[i] bytes; lens NULL: NUL-terminated
   strings). 0, or -ENOBUFS / -ENOMEM from the buf, -EINVAL for argc 0 or > RESP_MAX_ARGS. */
int resp_command(struct buf *b, int argc, const char *const *argv, const size_t *lens);

/* The index of item i's next sibling (skipping its elements), for walking arrays. */
size_t resp_skip(const struct resp_reply *r, size_t i);

/* True when item i is a status or bulk string equal to s. */
int resp_item_is(const struct resp_item *it, const char *s);

#endif
