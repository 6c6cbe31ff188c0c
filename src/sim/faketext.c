#include "sim/faketext.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char lorem[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
#define LOREM_LEN (sizeof lorem - 1)

/* "think4294967295 " and its NUL. */
#define FAKETEXT_TOKEN_CAP 20

/* With big=: where chunk i starts in the lorem run, and how long it is. */
static void big_span(const struct faketext *t, uint32_t i, uint64_t *pos, uint64_t *n)
{
    uint64_t base = t->big / t->chunks;
    *pos = base * i;
    *n = i + 1 == t->chunks ? t->big - base * (t->chunks - 1) : base;
}

/* Without big=: chunk i's short text into out; returns its length. */
static size_t token_text(const struct faketext *t, uint32_t i, char out[FAKETEXT_TOKEN_CAP])
{
    int n = i < t->reasoning
                ? snprintf(out, FAKETEXT_TOKEN_CAP, "think%" PRIu32 " ", i)
                : snprintf(out, FAKETEXT_TOKEN_CAP, "tok%" PRIu32 " ", i - t->reasoning);
    return n > 0 ? (size_t)n : 0;
}

int faketext_put(const struct faketext *t, struct buf *b, uint32_t i, size_t from)
{
    if (t->big) {
        uint64_t pos, n;
        big_span(t, i, &pos, &n);
        if (from >= n) return 0;
        pos += from;
        n -= from;
        int rc = buf_reserve(b, (size_t)n);
        if (rc) return rc;
        for (uint64_t j = 0; j < n; j++)
            b->data[b->len++] = lorem[(pos + j) % LOREM_LEN];
        b->data[b->len] = '\0';
        return 0;
    }
    char tok[FAKETEXT_TOKEN_CAP];
    size_t n = token_text(t, i, tok);
    return from >= n ? 0 : buf_append(b, tok + from, n - from);
}

bool faketext_resume(const struct faketext *t, const char *prefix, size_t len, uint32_t *chunk,
                     size_t *from)
{
    size_t off = 0;
    uint32_t i = t->reasoning;
    for (; i < t->chunks && off < len; i++) {
        size_t n, want;
        if (t->big) {
            uint64_t pos, n64;
            big_span(t, i, &pos, &n64);
            want = n64 < len - off ? (size_t)n64 : len - off;
            for (size_t j = 0; j < want; j++)
                if (prefix[off + j] != lorem[(pos + j) % LOREM_LEN]) return false;
            n = (size_t)n64;
        } else {
            char tok[FAKETEXT_TOKEN_CAP];
            n = token_text(t, i, tok);
            want = n < len - off ? n : len - off;
            if (memcmp(prefix + off, tok, want) != 0) return false;
        }
        if (want < n) { /* the prefix stops inside this chunk */
            *chunk = i;
            *from = want;
            return true;
        }
        off += n;
    }
    if (off < len) return false; /* longer than the whole answer */
    *chunk = i;
    *from = 0;
    return true;
}
