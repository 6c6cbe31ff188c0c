#include "proto/chunk_shape.h"

#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "proto/jsonx_int.h"
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
    size_t end = buf_json_plain_end(s, at, n); /* the usual text: no escape */
    if (end < n && s[end] == '"') {
        sp->start = at;
        sp->end = end;
        return true;
    }
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

/* A span of the kept chunk (outside its text and pad) where it is in a chunk that matched:
   moved by d_text past the text and by d_pad past the pad (the lengths' differences, modulo
   SIZE_MAX + 1). */
static inline void move(struct jsonx_span *sp, const struct chunk_shape *k, size_t d_text,
                        size_t d_pad)
{
    if (sp->end == 0) return;
    size_t d = (sp->start >= k->body_end ? d_text : 0) +
               (k->pad_end && sp->start >= k->pad_end ? d_pad : 0);
    sp->start += d;
    sp->end += d;
}

bool chunk_tmpl_set(struct chunk_tmpl *t, const char *s, size_t n)
{
    t->len = 0;
    t->n_parts = 0;
    if (n > sizeof t->text) return false;
    memcpy(t->text, s, n);
    t->len = n;
    return true;
}

void chunk_tmpl_part(struct chunk_tmpl *t, const struct jsonx_span *sp, enum chunk_part kind)
{
    if (t->len == 0 || sp->end == 0 || t->n_parts == CHUNK_TMPL_PARTS ||
        (kind == CHUNK_PART_NUMBER ? sp->end <= sp->start || sp->end > t->len
                                   : !is_body(t->text, t->len, sp)))
        return;
    unsigned i = t->n_parts;
    while (i > 0 && t->parts[i - 1].start > sp->start)
        i--;
    if ((i > 0 && t->parts[i - 1].end >= sp->start) ||
        (i < t->n_parts && sp->end >= t->parts[i].start))
        return;
    memmove(&t->parts[i + 1], &t->parts[i], (t->n_parts - i) * sizeof *t->parts);
    t->parts[i].start = sp->start;
    t->parts[i].end = sp->end;
    t->parts[i].kind = kind;
    t->n_parts++;
}

bool chunk_tmpl_match(const struct chunk_tmpl *t, const char *s, size_t n, struct jsonx_span *got)
{
    if (t->len == 0) return false;
    /* the last bytes first (up to 16 after the last part): most chunks of another shape end
       otherwise, and are told without scanning their parts */
    size_t tail = t->len - (t->n_parts ? t->parts[t->n_parts - 1].end : 0);
    if (tail > 16) tail = 16;
    if (n < tail || memcmp(s + n - tail, t->text + t->len - tail, tail) != 0) return false;
    size_t ks = 0, ss = 0; /* where the next fixed part starts, in t's text and in s */
    for (unsigned i = 0; i < t->n_parts; i++) {
        size_t fixed = t->parts[i].start - ks;
        if (n - ss < fixed || memcmp(s + ss, t->text + ks, fixed) != 0) return false;
        ss += fixed;
        if (t->parts[i].kind == CHUNK_PART_NUMBER) {
            size_t len = jsonx_number_len(s + ss, n - ss);
            if (len == 0) return false;
            got[i] = (struct jsonx_span){ss, ss + len};
        } else if (!string_at(s, n, ss, &got[i]) ||
                   (t->parts[i].kind == CHUNK_PART_TEXT && got[i].end == got[i].start)) {
            return false;
        }
        ss = got[i].end;
        ks = t->parts[i].end;
    }
    return n - ss == t->len - ks && memcmp(s + ss, t->text + ks, n - ss) == 0;
}

void chunk_tmpl_move(const struct chunk_tmpl *t, const struct jsonx_span *got,
                     struct jsonx_span *sp)
{
    if (sp->end == 0) return;
    size_t d = 0;
    for (unsigned i = 0; i < t->n_parts && t->parts[i].start <= sp->start; i++) {
        if (t->parts[i].start == sp->start && t->parts[i].end == sp->end) {
            *sp = got[i];
            return;
        }
        d += (got[i].end - got[i].start) - (t->parts[i].end - t->parts[i].start);
    }
    sp->start += d;
    sp->end += d;
}

/* The chunks kept across streams (chunk_shape.h), with what their scan gave. */
struct shared_shape {
    struct chunk_tmpl t; /* the text, the id, "created" and the pad as its parts */
    uint64_t used;       /* when it was last kept or matched: the least recent is replaced */
    struct jsonx_chunk result;
};

static __thread struct shared_shape shared[CHUNK_SHAPE_SHARED];
static __thread uint64_t shared_clock;

void chunk_shape_shared_clear(void)
{
    for (size_t i = 0; i < CHUNK_SHAPE_SHARED; i++)
        shared[i].t.len = 0;
}

/* Keep a walked chunk r (valid) in place of the least recently used. */
static void shared_keep(const char *s, size_t n, const struct jsonx_chunk *r)
{
    struct shared_shape *k = &shared[0];
    for (size_t i = 1; i < CHUNK_SHAPE_SHARED; i++)
        if (shared[i].used < k->used) k = &shared[i];
    if (!chunk_tmpl_set(&k->t, s, n)) return;
    if (r->n_text == 1 && r->content_chars == r->text.end - r->text.start)
        chunk_tmpl_part(&k->t, &r->text, CHUNK_PART_TEXT); /* the text was all that counted */
    chunk_tmpl_part(&k->t, &r->id, CHUNK_PART_STRING);
    chunk_tmpl_part(&k->t, &r->created, CHUNK_PART_NUMBER);
    chunk_tmpl_part(&k->t, &r->pad, CHUNK_PART_STRING);
    k->result = *r;
    k->used = ++shared_clock;
}

static void shared_result(const struct shared_shape *k, const struct jsonx_span *got,
                          struct jsonx_chunk *out)
{
    const struct chunk_tmpl *t = &k->t;
    *out = k->result;
    for (unsigned i = 0; i < t->n_parts; i++)
        if (t->parts[i].kind == CHUNK_PART_TEXT) out->content_chars = got[i].end - got[i].start;
    chunk_tmpl_move(t, got, &out->id);
    chunk_tmpl_move(t, got, &out->model);
    chunk_tmpl_move(t, got, &out->created);
    chunk_tmpl_move(t, got, &out->content);
    chunk_tmpl_move(t, got, &out->text);
    chunk_tmpl_move(t, got, &out->pad);
}

/* The kept chunks' generations: each change of one takes the next (chunk_shape_scan.gen). */
static __thread unsigned gen_clock;

void chunk_shape_scan_reset(struct chunk_shape_scan *k)
{
    chunk_shape_clear(&k->shape);
    k->gen = ++gen_clock;
    k->kept_hit = false;
    k->walked = 0;
}

/* After a chunk's scan: keep it as the stream's, or none. */
static void keep_own(struct chunk_shape_scan *k, const char *s, size_t n, int rc,
                     const struct jsonx_chunk *r)
{
    chunk_shape_clear(&k->shape);
    k->gen = ++gen_clock;
    if (rc == 0 && r->n_text == 1 && r->content_chars == r->text.end - r->text.start &&
        chunk_shape_keep(&k->shape, s, n, &r->text, &r->pad))
        k->result = *r;
}

int chunk_shape_scan(struct chunk_shape_scan *k, const char *s, size_t n, struct jsonx_chunk *out)
{
    struct jsonx_span body, pad;
    k->kept_hit = chunk_shape_match(&k->shape, s, n, &body, &pad);
    if (k->kept_hit) {
        k->body = body;
        k->pad = pad;
        const struct jsonx_chunk *r = &k->result;
        size_t text_len = body.end - body.start;
        size_t d_text = text_len - (k->shape.body_end - k->shape.body_start),
               d_pad = (pad.end - pad.start) - (k->shape.pad_end - k->shape.pad_start);
        *out = *r;
        out->text = body;
        out->content_chars = text_len; /* the text was all that counted */
        if (r->n_content)              /* then the one content is the text */
            out->content = body;
        move(&out->id, &k->shape, d_text, d_pad);
        move(&out->model, &k->shape, d_text, d_pad);
        move(&out->created, &k->shape, d_text, d_pad);
        if (k->shape.pad_end)
            out->pad = pad;
        else
            move(&out->pad, &k->shape, d_text, d_pad);
        return 0;
    }
    /* The least recently used first: streams alike repeat the same chunks in turn. */
    size_t lru = 0;
    for (size_t i = 1; i < CHUNK_SHAPE_SHARED; i++)
        if (shared[i].used < shared[lru].used) lru = i;
    struct jsonx_span got[CHUNK_TMPL_PARTS];
    for (size_t j = 0; j < CHUNK_SHAPE_SHARED; j++) {
        struct shared_shape *t = &shared[(lru + j) % CHUNK_SHAPE_SHARED];
        if (chunk_tmpl_match(&t->t, s, n, got)) {
            shared_result(t, got, out);
            t->used = ++shared_clock;
            keep_own(k, s, n, 0, out);
            return 0;
        }
    }
    int rc = jsonx_scan_chunk(s, n, out);
    k->walked++;
    keep_own(k, s, n, rc, out);
    if (rc == 0) shared_keep(s, n, out);
    return rc;
}
