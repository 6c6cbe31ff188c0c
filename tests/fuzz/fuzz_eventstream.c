/*
 * Fuzz target for the AWS event stream parser: the messages (and the error) do
 * not depend on how the bytes are cut into feeds, nor on the callback stopping
 * the parse and the caller resuming from *consumed; every message delivered
 * encodes back to exactly the bytes it came from; a payload lies inside the
 * input; and nothing past max_message is ever accepted.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/eventstream.h"

struct record {
    unsigned char *p;
    size_t len, cap;
    int stop;
    size_t max;
};

static void rec_put(struct record *r, const void *bytes, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        while (cap < r->len + n)
            cap *= 2;
        unsigned char *p = realloc(r->p, cap);
        if (!p) abort();
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, bytes, n);
    r->len += n;
}

static int on_msg(void *ud, const struct evs_message *m)
{
    struct record *r = ud;
    struct buf again;
    buf_init(&again, 0);
    if (evs_encode(&again, m->headers, m->nheaders, m->payload, m->payload_len) < 0) abort();
    if (again.len > r->max || again.len < EVS_MIN_MESSAGE) abort();
    rec_put(r, &again.len, sizeof again.len);
    rec_put(r, again.data, again.len);
    buf_free(&again);
    return r->stop;
}

static int run(const uint8_t *data, size_t size, size_t max, uint32_t seed, int mode,
               struct record *r)
{
    struct evs_parser p;
    evs_parser_init(&p, max);
    int rc = 0;
    size_t off = 0;
    while (off < size && rc >= 0) {
        size_t n = size - off;
        if (mode == 1) {
            seed = seed * 1103515245u + 12345u;
            size_t want = 1 + (seed >> 16) % 61;
            n = n < want ? n : want;
        } else if (mode == 2) {
            n = 1;
        }
        size_t consumed = 0;
        rc = evs_parser_feed(&p, (const char *)data + off, n, on_msg, r, &consumed);
        if (consumed > n || (rc == 0 && consumed != n)) abort();
        if (rc > 0) {
            if (!r->stop) abort();
            rc = 0;
        }
        off += consumed;
    }
    evs_parser_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    /* a quarter of the inputs run under a small bound on one message */
    size_t max = seed % 4 == 0 ? EVS_MIN_MESSAGE + seed / 4 % 512 : EVS_DEFAULT_MAX_MESSAGE;
    struct record whole = {.max = max}, piece = {.max = max};
    int rc_whole = run(data, size, max, seed, 0, &whole);
    /* what was delivered whole is the input's prefix, byte for byte */
    size_t at = 0, off = 0;
    while (at < whole.len) {
        size_t n;
        memcpy(&n, whole.p + at, sizeof n);
        if (off + n > size || memcmp(whole.p + at + sizeof n, data + off, n) != 0) abort();
        at += sizeof n + n;
        off += n;
    }
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
