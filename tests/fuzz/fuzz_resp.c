/*
 * Fuzz target for the RESP reply parser: every reply must parse the same
 * however the bytes are cut (a prefix of a whole reply is always "need
 * more"), strings must point inside the input, and nothing may read past it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"

static struct resp_reply whole, part;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so ASan sees any read past the end */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    size_t off = 0;
    for (int replies = 0; replies < 64 && off < size; replies++) {
        long n = resp_parse(copy + off, size - off, &whole);
        if (n <= 0) {
            /* need more or an error: every shorter prefix says need more or the same */
            for (size_t k = 0; k < size - off; k += 1 + (size - off) / 64) {
                long m = resp_parse(copy + off, k, &part);
                if (m > 0) abort(); /* a prefix cannot hold a reply the whole does not */
            }
            break;
        }
        if ((size_t)n > size - off) abort();
        for (size_t i = 0; i < whole.n; i++) {
            const struct resp_item *it = &whole.items[i];
            if (it->str && (it->str < copy + off || it->str + it->len > copy + off + (size_t)n))
                abort();
            if (resp_skip(&whole, i) <= i) abort();
        }
        for (size_t k = 0; k < (size_t)n; k += 1 + (size_t)n / 64)
            if (resp_parse(copy + off, k, &part) != RESP_NEED_MORE) abort();
        off += (size_t)n;
    }
    free(copy);
    return 0;
}
