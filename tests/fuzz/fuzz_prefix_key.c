/*
 * Fuzz target for the prefix key of a request body: any bytes are read
 * without reading past them (ASan checks), the key depends only on the bytes
 * up to its bound (a body cut after them, or with anything appended past the
 * end of "messages", keeps it), and a body of one message has no key.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/prefix_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t bound = size ? 64 + data[0] : 64;
    uint64_t k = prefix_key(s, size, bound);
    if (prefix_key(s, size, bound) != k) abort(); /* pure */
    for (size_t cut = 0; cut < size && cut < 256; cut++)
        (void)prefix_key(s, cut, bound);
    /* wrapped as the only message: no key */
    char *one = malloc(size + 32);
    if (!one) return 0;
    memcpy(one, "{\"messages\":[", 13);
    size_t n = 13, body = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] != '[' && data[i] != ']' && data[i] != '{' && data[i] != '}' &&
            data[i] != '"' && data[i] != ',' && data[i] != '\\')
            one[n + 1 + body++] = (char)data[i];
    one[n] = '"';
    n += 1 + body;
    memcpy(one + n, "\"]}", 3);
    n += 3;
    if (prefix_key(one, n, bound) != 0) abort();
    free(one);
    (void)prefix_key_bytes(s, size);
    return 0;
}
