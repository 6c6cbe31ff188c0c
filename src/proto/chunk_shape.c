#include "proto/chunk_shape.h"

#include <string.h>

#include "proto/jsonx_walk.h"

void chunk_shape_clear(struct chunk_shape *k)
{
    k->len = 0;
}

/* A string's body in s: its quotes on either side. */
static bool is_body(const char *s, size_t n, const struct jsonx_span *sp)
{
    return sp->start > 0 && sp->end >= sp->start && sp->end < n && s[sp->start - 1] == '"' &&
           s[sp->end] == '"';
}

bool chunk_shape_keep(struct chunk_shape *k, const char *s, size_t n, const struct jsonx_span *body,
                      const struct jsonx_span *pad)
{
    k->len = 0;
    if (n > sizeof k->text || !is_body(s, n, body)) return false;
    bool with_pad = pad && pad->start > body->end + 1 && is_body(s, n, pad);
    memcpy(k->text, s, n);
    k->body_start = body->start;
    k->body_end = body->end;
    k->pad_start = with_pad ? pad->start : 0;
    k->pad_end = with_pad ? pad->end : 0;
    k->len = n;
    return true;
}

/* The string whose opening quote is at s[at - 1], strict; its body in *sp. */
static bool string_at(const char *s, size_t n, size_t at, struct jsonx_span *sp)
{
    struct jw w;
    jw_init(&w, s, n);
    w.pos = at - 1;
    return jw_string(&w, sp);
}

bool chunk_shape_match(const struct chunk_shape *k, const char *s, size_t n,
                       struct jsonx_span *body, struct jsonx_span *pad)
{
    if (k->len == 0) return false;
    /* the bytes from the text's closing quote to the pad's opening one (or to the end) */
    size_t head = k->body_start, mid = (k->pad_end ? k->pad_start : k->len) - k->body_end;
    if (n < head + mid + 1 || memcmp(s, k->text, head) != 0) return false;
    struct jsonx_span sp, pp = {0, 0};
    if (!string_at(s, n, head, &sp) || sp.end == sp.start || n - sp.end < mid ||
        memcmp(s + sp.end, k->text + k->body_end, mid) != 0)
        return false;
    size_t rest = sp.end + mid; /* the end, or the pad's body */
    if (k->pad_end) {
        size_t tail = k->len - k->pad_end;
        if (!string_at(s, n, rest, &pp) || n - pp.end != tail ||
            memcmp(s + pp.end, k->text + k->pad_end, tail) != 0)
            return false;
    } else if (rest != n) {
        return false;
    }
    *body = sp;
    *pad = pp;
    return true;
}

/* A span of the kept chunk (outside its text and pad) where it is in a chunk that matched,
   whose text and pad are text_len and pad_len long. */
static void move(struct jsonx_span *sp, const struct chunk_shape *k, size_t text_len,
                 size_t pad_len)
{
    if (sp->end == 0) return;
    bool by_text = sp->start >= k->body_end, by_pad = k->pad_end && sp->start >= k->pad_end;
    if (by_text) {
        sp->start = sp->start - (k->body_end - k->body_start) + text_len;
        sp->end = sp->end - (k->body_end - k->body_start) + text_len;
    }
    if (by_pad) {
        sp->start = sp->start - (k->pad_end - k->pad_start) + pad_len;
        sp->end = sp->end - (k->pad_end - k->pad_start) + pad_len;
    }
}

int chunk_shape_scan(struct chunk_shape_scan *k, const char *s, size_t n, struct jsonx_chunk *out)
{
    struct jsonx_span body, pad;
    if (chunk_shape_match(&k->shape, s, n, &body, &pad)) {
        const struct jsonx_chunk *r = &k->result;
        size_t text_len = body.end - body.start, pad_len = pad.end - pad.start;
        *out = *r;
        out->text = body;
        out->content_chars = text_len; /* the text was all that counted */
        if (r->n_content)              /* then the one content is the text */
            out->content = body;
        move(&out->id, &k->shape, text_len, pad_len);
        move(&out->model, &k->shape, text_len, pad_len);
        move(&out->created, &k->shape, text_len, pad_len);
        if (k->shape.pad_end)
            out->pad = pad;
        else
            move(&out->pad, &k->shape, text_len, pad_len);
        return 0;
    }
    int rc = jsonx_scan_chunk(s, n, out);
    chunk_shape_clear(&k->shape);
    if (rc == 0 && out->n_text == 1 && out->content_chars == out->text.end - out->text.start &&
        chunk_shape_keep(&k->shape, s, n, &out->text, &out->pad))
        k->result = *out;
    return rc;
}
