#include "proto/chunk_shape.h"

#include <string.h>

#include "proto/jsonx_walk.h"

void chunk_shape_clear(struct chunk_shape *k)
{
    k->len = 0;
}

bool chunk_shape_keep(struct chunk_shape *k, const char *s, size_t n, const struct jsonx_span *body)
{
    k->len = 0;
    if (n > sizeof k->text || body->start == 0 || body->end < body->start || body->end >= n ||
        s[body->start - 1] != '"' || s[body->end] != '"')
        return false;
    memcpy(k->text, s, n);
    k->body_start = body->start;
    k->body_end = body->end;
    k->len = n;
    return true;
}

bool chunk_shape_match(const struct chunk_shape *k, const char *s, size_t n,
                       struct jsonx_span *body)
{
    size_t head = k->body_start, tail = k->len - k->body_end; /* the quotes included */
    if (k->len == 0 || n < head + tail + 1 || memcmp(s, k->text, head) != 0) return false;
    struct jw w;
    jw_init(&w, s, n);
    w.pos = head - 1;
    struct jsonx_span sp;
    /* jw_string leaves pos after the closing quote, which the tail's first byte is */
    if (!jw_string(&w, &sp) || sp.end == sp.start || n - sp.end != tail ||
        memcmp(s + sp.end, k->text + k->body_end, tail) != 0)
        return false;
    *body = sp;
    return true;
}

/* A span of the kept chunk at or after its text, moved by the new text's length. */
static void shift(struct jsonx_span *sp, size_t text_end, size_t old_len, size_t new_len)
{
    if (sp->end == 0 || sp->start < text_end) return;
    sp->start = sp->start - old_len + new_len;
    sp->end = sp->end - old_len + new_len;
}

int chunk_shape_scan(struct chunk_shape_scan *k, const char *s, size_t n, struct jsonx_chunk *out)
{
    struct jsonx_span body;
    if (chunk_shape_match(&k->shape, s, n, &body)) {
        const struct jsonx_chunk *r = &k->result;
        size_t old_len = r->text.end - r->text.start, new_len = body.end - body.start;
        *out = *r;
        out->text = body;
        out->content_chars = new_len; /* the text was all that counted */
        if (r->n_content)             /* then the one content is the text */
            out->content = body;
        shift(&out->id, r->text.end, old_len, new_len);
        shift(&out->model, r->text.end, old_len, new_len);
        shift(&out->created, r->text.end, old_len, new_len);
        return 0;
    }
    int rc = jsonx_scan_chunk(s, n, out);
    chunk_shape_clear(&k->shape);
    if (rc == 0 && out->n_text == 1 && out->content_chars == out->text.end - out->text.start &&
        chunk_shape_keep(&k->shape, s, n, &out->text))
        k->result = *out;
    return rc;
}
