/*
 * Fuzz target for the SSE parser: the events must not depend on how the
 * stream is cut into feeds, nor on the callback stopping the parse and the
 * caller resuming from *consumed.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sse.h"

struct record {
    unsigned char *p;
    size_t len, cap;
    int stop; /* callback returns 1 after every item */
};

static void rec_put(struct record *r, const void *bytes, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        while (cap < r->len + n)
            cap *= 2;
        unsigned char *p = realloc(r->p, cap);
        if (!p)
            abort();
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, bytes, n);
    r->len += n;
}

static int on_item(void *ud, const struct sse_item *it)
{
    struct record *r = ud;
    unsigned char kind = it->kind == SSE_EVENT ? 'E' : 'C';
    rec_put(r, &kind, 1);
    rec_put(r, &it->event_len, sizeof it->event_len);
    rec_put(r, it->event, it->event_len);
    rec_put(r, &it->data_len, sizeof it->data_len);
    rec_put(r, it->data, it->data_len);
    /* framed: the bytes around the data are the event's frame (read from the fed piece: ASan
       tells a frame that is not there) */
    if (it->framed &&
        (it->kind != SSE_EVENT || memcmp(it->data - 6, "data: ", 6) != 0 ||
         memcmp(it->data + it->data_len, "\n\n", 2) != 0 || memchr(it->data, '\n', it->data_len) ||
         memchr(it->data, '\r', it->data_len)))
        abort();
    return r->stop;
}

/* Feed in pieces; piece sizes from a generator seeded by the input. Returns
 * 0 or the first negative rc. */
static int run(const uint8_t *data, size_t size, size_t max, uint32_t seed, int mode,
               struct record *r)
{
    struct sse_parser p;
    sse_parser_init(&p, max);
    int rc = 0;
    size_t off = 0;
    while (off < size && rc >= 0) {
        size_t n = size - off;
        if (mode == 1) {
            seed = seed * 1103515245u + 12345u;
            size_t want = 1 + (seed >> 16) % 37;
            n = n < want ? n : want;
        } else if (mode == 2) {
            n = 1;
        }
        size_t consumed = 0;
        /* each piece in its own allocation, freed after its feed: data handed in place
           must not be read past the piece, nor kept after it (ASan tells) */
        char *piece = malloc(n ? n : 1);
        if (!piece) abort();
        memcpy(piece, data + off, n);
        rc = sse_parser_feed(&p, piece, n, on_item, r, &consumed);
        free(piece);
        if (consumed > n || (rc == 0 && consumed != n))
            abort();
        if (rc > 0) {
            if (!r->stop)
                abort();
            rc = 0; /* resume right after the item that stopped us */
        }
        off += consumed;
    }
    sse_parser_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max = size ? 8 + (size_t)data[0] * 4 : 64;
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;

    struct record whole = {0}, piece = {0};
    int rc_whole = run(data, size, max, seed, 0, &whole);
    for (int mode = 0; mode < 4; mode++) {
        piece.len = 0;
        piece.stop = mode == 3;
        int rc = run(data, size, max, seed, mode == 3 ? 1 : mode, &piece);
        if (rc != rc_whole || piece.len != whole.len ||
            (whole.len && memcmp(piece.p, whole.p, whole.len) != 0))
            abort();
    }
    free(whole.p);
    free(piece.p);
    return 0;
}
