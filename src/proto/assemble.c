#include "proto/assemble.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "base/pool.h"
#include "proto/chunk_shape.h"
#include "proto/jsonx_walk.h"

#define ASSEMBLE_DEFAULT_MAX (16u << 20)
/* What a new choice or tool call is charged against max_bytes for its bookkeeping. */
#define ASSEMBLE_ENTRY_COST 128

struct asm_text {
    char *p;
    size_t len, cap;
    bool seen; /* some chunk carried this field as a string */
};

struct asm_tool {
    int index;
    struct asm_text id, type, name, args;
};

struct asm_choice {
    bool used;
    struct asm_text role, content, reasoning, refusal, text, finish;
    struct asm_text fc_name, fc_args; /* legacy function_call */
    struct asm_tool *tools;          /* sorted by index */
    size_t n_tools, tools_cap;       /* tools_cap: bytes (base/buf.h's blocks) */
};

/*
 * What a walk did to the answer, in order: a chunk of a kept chunk's shape (the assembler's
 * chunks kept across streams, below) does the same without a walk. A walk that did anything
 * else (a tool call, a function call) is not kept.
 */
enum asm_op_kind {
    OP_CHOICE,
    OP_ROLE,
    OP_APPEND,
    OP_FINISH,
    OP_ID,
    OP_MODEL,
    OP_FINGERPRINT,
    OP_CREATED,
    OP_USAGE
};
enum asm_field { AF_CONTENT, AF_REFUSAL, AF_REASONING, AF_TEXT };

struct asm_op {
    unsigned char kind, field; /* enum asm_op_kind; enum asm_field for OP_APPEND */
    int index;                 /* OP_CHOICE: the choice the next ops are of */
    struct jsonx_span v;       /* the value: a string's body, a number, the usage object */
};

#define ASM_MAX_OPS 16

struct asm_ops {
    unsigned n;
    bool partial; /* something not recorded was done, or more than ASM_MAX_OPS */
    struct asm_op op[ASM_MAX_OPS];
};

struct assemble {
    enum assemble_kind kind;
    size_t max_bytes, used_bytes;
    struct asm_text id, model, fingerprint;
    int64_t created;
    bool has_created;
    struct asm_choice *choices; /* indexed by choice index */
    size_t n_choices, choices_cap; /* choices_cap: bytes (base/buf.h's blocks) */
    struct asm_text usage; /* the last usage object, its JSON as it came (not charged) */
    bool usage_estimated; /* usage_prompt and usage_completion replace usage */
    int64_t usage_prompt, usage_completion;
    /* The last chunk walked, when all it added was one text (chunk_shape.h): a chunk of its
       shape appends its string to that text without a walk. The walk counts what it adds. */
    struct chunk_shape shape;
    struct asm_text *shape_text; /* NULL: no chunk kept */
    unsigned appends;            /* texts a walk appended to (or may append to, by name) */
    bool grew;                   /* a walk added a choice or a tool call (texts may have moved) */
    struct asm_text *appended;   /* the last text appended to, and the body appended */
    struct jsonx_span appended_body;
    struct jsonx_span walk_pad; /* the last top-level string the walk read nothing of */
    bool no_shape; /* assemble_walk_always */
    struct asm_ops *rec; /* the walk's ops are noted here (NULL: not) */
    unsigned walks;      /* chunks walked */
    /* The kept chunk is the relay's scan's of generation twin_gen, byte for byte (same text
       and pad places): its match there is this one's (assemble_feed_scanned). */
    bool twin;
    unsigned twin_gen;
};

/* One per non-stream answer: a per-thread free list (base/pool.h). */
static __thread struct pool assemble_pool = POOL_INIT(sizeof(struct assemble), 64);

struct assemble *assemble_new(enum assemble_kind kind, size_t max_bytes)
{
    struct assemble *a = pool_get_zeroed(&assemble_pool);
    if (!a)
        return NULL;
    a->kind = kind;
    a->max_bytes = max_bytes ? max_bytes : ASSEMBLE_DEFAULT_MAX;
    return a;
}

static int charge(struct assemble *a, size_t n)
{
    if (n > a->max_bytes - a->used_bytes)
        return -ENOBUFS;
    a->used_bytes += n;
    return 0;
}

static int text_append(struct assemble *a, struct asm_text *t, const char *s, size_t n)
{
    t->seen = true;
    if (n == 0)
        return 0;
    int rc = charge(a, n);
    if (rc)
        return rc;
    if (t->len + n + 1 > t->cap) {
        char *p = buf_mem_grow(t->p, &t->cap, t->len + n + 1);
        if (!p) {
            a->used_bytes -= n;
            return -ENOMEM;
        }
        t->p = p;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

/* Append an escaped JSON string body, decoded. */
static int text_append_esc(struct assemble *a, struct asm_text *t, const char *s, const struct jsonx_span *sp)
{
    size_t n = sp->end - sp->start;
    if (!memchr(s + sp->start, '\\', n))
        return text_append(a, t, s + sp->start, n);
    t->seen = true;
    /* decoded it is no longer: room for n, charged for what it decodes to */
    size_t before = t->len;
    int rc = text_append(a, t, s + sp->start, n);
    if (rc)
        return rc;
    t->len = before;
    size_t pos = 0;
    const char *e = s + sp->start;
    while (pos < n) {
        char u8[4];
        size_t k = jsonx_str_next(e, n, &pos, u8);
        memcpy(t->p + t->len, u8, k);
        t->len += k;
    }
    a->used_bytes -= n - (t->len - before);
    t->p[t->len] = '\0';
    return 0;
}

static int text_set_esc(struct assemble *a, struct asm_text *t, const char *s, const struct jsonx_span *sp)
{
    a->used_bytes -= t->len;
    t->len = 0;
    return text_append_esc(a, t, s, sp);
}

/* Whether t holds the decoded text of an escaped body. */
static bool text_eq_esc(const struct asm_text *t, const char *s, const struct jsonx_span *sp)
{
    size_t n = sp->end - sp->start, pos = 0, j = 0;
    const char *e = s + sp->start;
    while (pos < n) {
        char u8[4];
        size_t k = jsonx_str_next(e, n, &pos, u8);
        if (j + k > t->len || memcmp(t->p + j, u8, k) != 0)
            return false;
        j += k;
    }
    return j == t->len;
}

static void text_free(struct asm_text *t)
{
    buf_mem_free(t->p, t->cap);
}

/* The members of one object a feed reads: the value span of the first occurrence of each
   name (end == 0: absent), taken in one walk, so that "index" may come after what it
   places. The object is at w's position; it is walked to its end. */
/* A member name and its length, spelled once (no strlen per chunk). */
struct asm_name {
    const char *s;
    size_t n;
};
#define NM(lit)                                                                                    \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }

struct asm_members {
    struct jsonx_span v[8];
};

static void take_members(struct jw *w, const struct asm_name *names, size_t n,
                         struct asm_members *m)
{
    memset(m, 0, sizeof *m);
    bool first = true;
    struct jsonx_span key;
    jw_object(w);
    while (jw_member(w, &first, &key)) {
        size_t i = 0;
        while (i < n && !(m->v[i].end == 0 && jw_key_is_inline(w, &key, names[i].s, names[i].n)))
            i++;
        jw_peek(w);
        size_t start = w->pos;
        jw_skip(w);
        if (i < n) {
            m->v[i].start = start;
            m->v[i].end = w->pos;
        }
    }
}

static bool is_kind(const char *s, const struct jsonx_span *v, char c)
{
    return v->end && s[v->start] == c;
}

static bool is_number(const char *s, const struct jsonx_span *v)
{
    return v->end && (s[v->start] == '-' || (s[v->start] >= '0' && s[v->start] <= '9'));
}

/* A string value's body (without its quotes); false when the value is not a string. */
static bool str_body(const char *s, const struct jsonx_span *v, struct jsonx_span *body)
{
    if (!is_kind(s, v, '"'))
        return false;
    body->start = v->start + 1;
    body->end = v->end - 1;
    return true;
}

static double number_of(const char *s, const struct jsonx_span *v)
{
    char tmp[64];
    size_t n = v->end - v->start;
    if (n >= sizeof tmp)
        return -1; /* out of every range checked below */
    memcpy(tmp, s + v->start, n);
    tmp[n] = '\0';
    return strtod(tmp, NULL);
}

/* An "index" member (value span v), or fallback when there is none. */
static int index_of(const char *s, const struct jsonx_span *v, int fallback, int limit, int *out)
{
    if (!is_number(s, v)) {
        *out = fallback;
        return 0;
    }
    double x = number_of(s, v);
    if (!(x >= 0 && x < limit))
        return -ERANGE;
    *out = (int)x;
    return 0;
}

static void walk_at(struct jw *w, const char *s, const struct jsonx_span *v)
{
    jw_init(w, s, v->end);
    w->pos = v->start;
}

static void note(struct assemble *a, enum asm_op_kind kind, enum asm_field field, int index,
                 const struct jsonx_span *v)
{
    struct asm_ops *r = a->rec;
    if (!r) return;
    if (r->n == ASM_MAX_OPS) {
        r->partial = true;
        return;
    }
    r->op[r->n++] = (struct asm_op){.kind = (unsigned char)kind,
                                    .field = (unsigned char)field,
                                    .index = index,
                                    .v = v ? *v : (struct jsonx_span){0, 0}};
}

static void note_partial(struct assemble *a)
{
    if (a->rec) a->rec->partial = true;
}

static int choice_at(struct assemble *a, int index, struct asm_choice **out)
{
    if ((size_t)index >= a->n_choices) {
        struct asm_choice *c = a->choices;
        if (((size_t)index + 1) * sizeof *c > a->choices_cap &&
            !(c = buf_mem_grow(a->choices, &a->choices_cap, ((size_t)index + 1) * sizeof *c)))
            return -ENOMEM;
        memset(c + a->n_choices, 0, ((size_t)index + 1 - a->n_choices) * sizeof *c);
        a->choices = c;
        a->n_choices = (size_t)index + 1;
        a->grew = true;
    }
    struct asm_choice *c = &a->choices[index];
    if (!c->used) {
        int rc = charge(a, ASSEMBLE_ENTRY_COST);
        if (rc)
            return rc;
        c->used = true;
    }
    *out = c;
    return 0;
}

enum { T_INDEX, T_ID, T_TYPE, T_FUNCTION, T_N };
static const struct asm_name tool_names[T_N] = {NM("index"), NM("id"), NM("type"), NM("function")};

/*
 * The tool call a delta entry continues. Entries carry "index"; for servers
 * that omit it, a new "id" starts a call and no id continues the last one.
 */
static int tool_at(struct assemble *a, struct asm_choice *c, const char *s, const struct asm_members *e,
                   struct asm_tool **out)
{
    int last = c->n_tools ? c->tools[c->n_tools - 1].index : 0;
    int index;
    int rc = index_of(s, &e->v[T_INDEX], last, ASSEMBLE_MAX_TOOL_CALLS, &index);
    if (rc)
        return rc;
    if (!e->v[T_INDEX].end) {
        struct jsonx_span id;
        bool has_id = str_body(s, &e->v[T_ID], &id);
        bool known = false;
        for (size_t i = 0; i < c->n_tools && has_id; i++)
            if (text_eq_esc(&c->tools[i].id, s, &id)) {
                index = c->tools[i].index;
                known = true;
            }
        if (has_id && id.end > id.start && !known && c->n_tools)
            index = last + 1;
        if (index >= ASSEMBLE_MAX_TOOL_CALLS)
            return -ERANGE;
    }
    size_t pos = 0;
    while (pos < c->n_tools && c->tools[pos].index < index)
        pos++;
    if (pos < c->n_tools && c->tools[pos].index == index) {
        *out = &c->tools[pos];
        return 0;
    }
    if ((rc = charge(a, ASSEMBLE_ENTRY_COST)))
        return rc;
    struct asm_tool *t = c->tools;
    if ((c->n_tools + 1) * sizeof *t > c->tools_cap &&
        !(t = buf_mem_grow(c->tools, &c->tools_cap, (c->n_tools + 1) * sizeof *t)))
        return -ENOMEM;
    c->tools = t;
    memmove(&t[pos + 1], &t[pos], (c->n_tools - pos) * sizeof *t);
    memset(&t[pos], 0, sizeof *t);
    t[pos].index = index;
    c->n_tools++;
    a->grew = true;
    *out = &t[pos];
    return 0;
}

/* Names normally come once; some servers repeat the whole name in every
 * delta, which must not double it. */
static int name_merge(struct assemble *a, struct asm_text *t, const char *s, const struct jsonx_span *v)
{
    struct jsonx_span name;
    if (!str_body(s, v, &name) || text_eq_esc(t, s, &name))
        return 0;
    a->appends += 2; /* whether a name is appended depends on it: never a kept shape's text */
    return text_append_esc(a, t, s, &name);
}

static int append_body(struct assemble *a, struct asm_text *t, const char *s,
                       const struct jsonx_span *body)
{
    if (body->end > body->start) {
        a->appends++;
        a->appended = t;
        a->appended_body = *body;
    }
    return text_append_esc(a, t, s, body);
}

/* field: what is noted (a tool call's or function call's text is not: -1) */
static int append_field(struct assemble *a, struct asm_text *t, const char *s,
                        const struct jsonx_span *v, int field)
{
    struct jsonx_span body;
    if (!str_body(s, v, &body)) return 0;
    if (field >= 0) note(a, OP_APPEND, (enum asm_field)field, 0, &body);
    return append_body(a, t, s, &body);
}

static struct asm_text *field_text(struct asm_choice *c, enum asm_field f)
{
    return f == AF_CONTENT     ? &c->content
           : f == AF_REFUSAL   ? &c->refusal
           : f == AF_REASONING ? &c->reasoning
                               : &c->text;
}

enum { F_NAME, F_ARGUMENTS, F_N };
static const struct asm_name fn_names[F_N] = {NM("name"), NM("arguments")};

static void take_function(const char *s, const struct jsonx_span *v, struct asm_members *fn)
{
    memset(fn, 0, sizeof *fn);
    if (is_kind(s, v, '{')) {
        struct jw w;
        walk_at(&w, s, v);
        take_members(&w, fn_names, F_N, fn);
    }
}

static int feed_tool_calls(struct assemble *a, struct asm_choice *c, const char *s, const struct jsonx_span *v)
{
    struct jw w;
    bool first = true;
    note_partial(a);
    walk_at(&w, s, v);
    jw_array(&w);
    while (jw_element(&w, &first)) {
        if (jw_peek(&w) != '{') {
            jw_skip(&w);
            continue;
        }
        struct asm_members e, fn;
        take_members(&w, tool_names, T_N, &e);
        struct asm_tool *t;
        int rc = tool_at(a, c, s, &e, &t);
        if (rc)
            return rc;
        struct jsonx_span id, type;
        if (str_body(s, &e.v[T_ID], &id) && id.end > id.start && t->id.len == 0 &&
            (rc = text_set_esc(a, &t->id, s, &id)))
            return rc;
        if (str_body(s, &e.v[T_TYPE], &type) && type.end > type.start && (rc = text_set_esc(a, &t->type, s, &type)))
            return rc;
        take_function(s, &e.v[T_FUNCTION], &fn);
        if ((rc = name_merge(a, &t->name, s, &fn.v[F_NAME])) ||
            (rc = append_field(a, &t->args, s, &fn.v[F_ARGUMENTS], -1)))
            return rc;
    }
    return 0;
}

enum { M_ROLE, M_CONTENT, M_REFUSAL, M_REASONING_CONTENT, M_REASONING, M_TOOL_CALLS, M_FUNCTION_CALL, M_N };
static const struct asm_name delta_names[M_N] = {
    NM("role"),      NM("content"),    NM("refusal"),      NM("reasoning_content"),
    NM("reasoning"), NM("tool_calls"), NM("function_call")};

static int feed_delta(struct assemble *a, struct asm_choice *c, const char *s, const struct jsonx_span *v)
{
    struct jw w;
    struct asm_members d;
    walk_at(&w, s, v);
    take_members(&w, delta_names, M_N, &d);
    int rc;
    struct jsonx_span role;
    if (str_body(s, &d.v[M_ROLE], &role) && role.end > role.start) {
        note(a, OP_ROLE, 0, 0, &role);
        if ((rc = text_set_esc(a, &c->role, s, &role))) return rc;
    }
    if ((rc = append_field(a, &c->content, s, &d.v[M_CONTENT], AF_CONTENT)) ||
        (rc = append_field(a, &c->refusal, s, &d.v[M_REFUSAL], AF_REFUSAL)))
        return rc;
    /* Some servers send both names for the same text: take one per delta. */
    rc = is_kind(s, &d.v[M_REASONING_CONTENT], '"')
             ? append_field(a, &c->reasoning, s, &d.v[M_REASONING_CONTENT], AF_REASONING)
             : append_field(a, &c->reasoning, s, &d.v[M_REASONING], AF_REASONING);
    if (rc)
        return rc;
    if (is_kind(s, &d.v[M_TOOL_CALLS], '[') && (rc = feed_tool_calls(a, c, s, &d.v[M_TOOL_CALLS])))
        return rc;
    if (is_kind(s, &d.v[M_FUNCTION_CALL], '{')) {
        note_partial(a);
        struct asm_members fn;
        take_function(s, &d.v[M_FUNCTION_CALL], &fn);
        if ((rc = name_merge(a, &c->fc_name, s, &fn.v[F_NAME])) ||
            (rc = append_field(a, &c->fc_args, s, &fn.v[F_ARGUMENTS], -1)))
            return rc;
        c->fc_name.seen = true;
    }
    return 0;
}

enum { C_INDEX, C_DELTA, C_MESSAGE, C_TEXT, C_FINISH, C_N };
static const struct asm_name choice_names[C_N] = {NM("index"), NM("delta"), NM("message"),
                                                  NM("text"), NM("finish_reason")};

static int feed_choice(struct assemble *a, struct jw *w)
{
    struct asm_members m;
    const char *s = w->s;
    take_members(w, choice_names, C_N, &m);
    int index, rc = index_of(s, &m.v[C_INDEX], 0, ASSEMBLE_MAX_CHOICES, &index);
    struct asm_choice *c;
    if (rc || (rc = choice_at(a, index, &c)))
        return rc;
    note(a, OP_CHOICE, 0, index, NULL);
    const struct jsonx_span *delta = &m.v[C_DELTA];
    if (!is_kind(s, delta, '{')) /* some servers stream whole messages */
        delta = &m.v[C_MESSAGE];
    if (is_kind(s, delta, '{') && (rc = feed_delta(a, c, s, delta)))
        return rc;
    if ((rc = append_field(a, &c->text, s, &m.v[C_TEXT], AF_TEXT))) return rc;
    struct jsonx_span finish;
    if (str_body(s, &m.v[C_FINISH], &finish)) {
        note(a, OP_FINISH, 0, 0, &finish);
        if ((rc = text_set_esc(a, &c->finish, s, &finish))) return rc;
    }
    return 0;
}

enum { R_ID, R_MODEL, R_FINGERPRINT, R_CREATED, R_N };
static const struct asm_name root_names[R_N] = {NM("id"), NM("model"), NM("system_fingerprint"),
                                                NM("created")};

/* A top-level member's part of the answer (OP_ID to OP_USAGE), its value at v. */
static int apply_root(struct assemble *a, enum asm_op_kind kind, const char *s,
                      const struct jsonx_span *v)
{
    switch (kind) {
    case OP_ID:
        return v->end > v->start && a->id.len == 0 ? text_set_esc(a, &a->id, s, v) : 0;
    case OP_MODEL:
        return v->end > v->start && a->model.len == 0 ? text_set_esc(a, &a->model, s, v) : 0;
    case OP_FINGERPRINT:
        return v->end > v->start ? text_set_esc(a, &a->fingerprint, s, v) : 0;
    case OP_CREATED:
        if (!a->has_created) {
            double x = number_of(s, v);
            if (x >= 0 && x < 9e15) {
                a->created = (int64_t)x;
                a->has_created = true;
            }
        }
        return 0;
    case OP_USAGE:
        /* The chunk was bounded by the SSE parser; the copy is no bigger (not charged). */
        a->usage.len = 0;
        a->usage.seen = true;
        if (v->end - v->start + 1 > a->usage.cap) {
            char *p = buf_mem_grow(a->usage.p, &a->usage.cap, v->end - v->start + 1);
            if (!p) return -ENOMEM;
            a->usage.p = p;
        }
        memcpy(a->usage.p, s + v->start, v->end - v->start);
        a->usage.len = v->end - v->start;
        return 0;
    default:
        return 0;
    }
}

static int feed_walk(struct assemble *a, const char *s, size_t len)
{
    struct jw w;
    jw_init(&w, s, len);
    if (jw_peek(&w) != '{')
        return -EINVAL;
    /* One walk: the top-level members it reads are noted as it passes them; choices are
       fed as they come; "usage" (every one: the last wins) is copied as it is. */
    struct jsonx_span root[R_N] = {{0, 0}}, key, usage = {0, 0};
    bool first = true;
    int rc = 0;
    jw_object(&w);
    while (!rc && jw_member(&w, &first, &key)) {
        size_t i = 0;
        while (i < R_N &&
               !(root[i].end == 0 && jw_key_is_inline(&w, &key, root_names[i].s, root_names[i].n)))
            i++;
        char c = jw_peek(&w);
        size_t start = w.pos;
        if (JW_KEY(&w, &key, "choices") && c == '[') {
            bool cfirst = true;
            jw_array(&w);
            while (!rc && jw_element(&w, &cfirst)) {
                if (jw_peek(&w) == '{')
                    rc = feed_choice(a, &w);
                else
                    jw_skip(&w);
            }
            continue;
        }
        jw_skip(&w);
        if (i < R_N) {
            root[i].start = start;
            root[i].end = w.pos;
        } else if (c == '{' && JW_KEY(&w, &key, "usage")) {
            usage.start = start;
            usage.end = w.pos;
        } else if (c == '"' && !w.err) { /* read by nothing here: may differ in a kept shape */
            a->walk_pad.start = start + 1;
            a->walk_pad.end = w.pos - 1;
        }
    }
    if (!rc && w.err)
        return -EINVAL;
    /* As when the members came before the choices: a choice refused does not undo them. */
    int choices_rc = rc;
    rc = 0;
    struct jsonx_span v;
    if (str_body(s, &root[R_ID], &v)) {
        note(a, OP_ID, 0, 0, &v);
        if (!rc) rc = apply_root(a, OP_ID, s, &v);
    }
    if (str_body(s, &root[R_MODEL], &v)) {
        note(a, OP_MODEL, 0, 0, &v);
        if (!rc) rc = apply_root(a, OP_MODEL, s, &v);
    }
    if (str_body(s, &root[R_FINGERPRINT], &v)) {
        note(a, OP_FINGERPRINT, 0, 0, &v);
        if (!rc) rc = apply_root(a, OP_FINGERPRINT, s, &v);
    }
    if (is_number(s, &root[R_CREATED])) {
        note(a, OP_CREATED, 0, 0, &root[R_CREATED]);
        apply_root(a, OP_CREATED, s, &root[R_CREATED]);
    }
    if (usage.end) {
        note(a, OP_USAGE, 0, 0, &usage);
        if (!rc) rc = apply_root(a, OP_USAGE, s, &usage);
    }
    return choices_rc ? choices_rc : rc;
}

/*
 * Chunks kept across streams: each thread's last ASSEMBLE_SHARED chunks walked (those whose
 * walk did only what ops record), with the id, "created", the one text appended and the
 * unread top-level string as the parts that may differ (chunk_shape.h). A chunk of one's
 * shape does its ops, their values moved to it, without a walk.
 */
#define ASSEMBLE_SHARED 4

struct asm_kept {
    struct chunk_tmpl t;
    struct asm_ops ops;
    struct jsonx_span pad; /* the walk's walk_pad */
    uint64_t used;         /* when last kept or matched: the least recent is replaced */
};

static __thread struct asm_kept kept_chunks[ASSEMBLE_SHARED];
static __thread uint64_t kept_clock;

void assemble_shared_clear(void)
{
    for (size_t i = 0; i < ASSEMBLE_SHARED; i++)
        kept_chunks[i].t.len = 0;
}

static void kept_add(const struct assemble *a, const char *s, size_t len, const struct asm_ops *ops)
{
    struct asm_kept *k = &kept_chunks[0];
    for (size_t i = 1; i < ASSEMBLE_SHARED; i++)
        if (kept_chunks[i].used < k->used) k = &kept_chunks[i];
    if (!chunk_tmpl_set(&k->t, s, len)) return;
    if (a->appends == 1) chunk_tmpl_part(&k->t, &a->appended_body, CHUNK_PART_STRING);
    for (unsigned i = 0; i < ops->n; i++)
        if (ops->op[i].kind == OP_ID || ops->op[i].kind == OP_CREATED)
            chunk_tmpl_part(&k->t, &ops->op[i].v,
                            ops->op[i].kind == OP_ID ? CHUNK_PART_STRING : CHUNK_PART_NUMBER);
    chunk_tmpl_part(&k->t, &a->walk_pad, CHUNK_PART_STRING);
    k->ops = *ops;
    k->pad = a->walk_pad;
    k->used = ++kept_clock;
}

/* The kept chunk whose shape s[0..len) has (NULL: none), provided that doing its ops cannot
   pass max_bytes: they charge at most the chunk's length (their values lie apart in it) and
   an entry per choice. */
static struct asm_kept *kept_match(const struct assemble *a, const char *s, size_t len,
                                   struct jsonx_span *got)
{
    size_t lru = 0;
    for (size_t i = 1; i < ASSEMBLE_SHARED; i++)
        if (kept_chunks[i].used < kept_chunks[lru].used) lru = i;
    for (size_t j = 0; j < ASSEMBLE_SHARED; j++) {
        struct asm_kept *k = &kept_chunks[(lru + j) % ASSEMBLE_SHARED];
        if (!chunk_tmpl_match(&k->t, s, len, got)) continue;
        size_t cost = len;
        for (unsigned i = 0; i < k->ops.n; i++)
            cost += k->ops.op[i].kind == OP_CHOICE ? ASSEMBLE_ENTRY_COST : 0;
        if (cost > a->max_bytes - a->used_bytes) return NULL;
        k->used = ++kept_clock;
        return k;
    }
    return NULL;
}

static int replay(struct assemble *a, const struct asm_kept *k, const char *s,
                  const struct jsonx_span *got)
{
    struct asm_choice *c = NULL;
    for (unsigned i = 0; i < k->ops.n; i++) {
        const struct asm_op *op = &k->ops.op[i];
        struct jsonx_span v = op->v;
        chunk_tmpl_move(&k->t, got, &v);
        int rc;
        switch (op->kind) {
        case OP_CHOICE:
            rc = choice_at(a, op->index, &c);
            break;
        case OP_ROLE:
            rc = text_set_esc(a, &c->role, s, &v);
            break;
        case OP_APPEND:
            rc = append_body(a, field_text(c, (enum asm_field)op->field), s, &v);
            break;
        case OP_FINISH:
            rc = text_set_esc(a, &c->finish, s, &v);
            break;
        default:
            rc = apply_root(a, (enum asm_op_kind)op->kind, s, &v);
            break;
        }
        if (rc) return rc;
    }
    a->walk_pad = k->pad;
    chunk_tmpl_move(&k->t, got, &a->walk_pad);
    return 0;
}

/* *reshaped: the kept chunk was replaced or dropped */
static int feed(struct assemble *a, const char *s, size_t len, bool *reshaped)
{
    *reshaped = false;
    if (len == 6 && memcmp(s, "[DONE]", 6) == 0) return 0;
    struct jsonx_span body, pad;
    if (a->shape_text && chunk_shape_match(&a->shape, s, len, &body, &pad))
        return text_append_esc(a, a->shape_text, s, &body);
    *reshaped = true;
    a->appends = 0;
    a->grew = false;
    a->appended = NULL;
    a->walk_pad.start = a->walk_pad.end = 0;
    struct jsonx_span got[CHUNK_TMPL_PARTS];
    const struct asm_kept *k = a->no_shape ? NULL : kept_match(a, s, len, got);
    int rc;
    if (k) {
        rc = replay(a, k, s, got);
    } else {
        struct asm_ops ops;
        ops.n = 0;
        ops.partial = false;
        a->rec = a->no_shape ? NULL : &ops;
        a->walks++;
        rc = feed_walk(a, s, len);
        a->rec = NULL;
        if (rc == 0 && !a->no_shape && !ops.partial) kept_add(a, s, len, &ops);
    }
    a->shape_text = NULL;
    if (rc == 0 && a->appends == 1 && !a->grew && !a->no_shape &&
        chunk_shape_keep(&a->shape, s, len, &a->appended_body,
                         a->walk_pad.end ? &a->walk_pad : NULL))
        a->shape_text = a->appended;
    return rc;
}

int assemble_feed_valid(struct assemble *a, const char *s, size_t len)
{
    bool reshaped;
    int rc = feed(a, s, len, &reshaped);
    if (reshaped) a->twin = false;
    return rc;
}

int assemble_feed_scanned(struct assemble *a, const char *s, size_t len,
                          const struct chunk_shape_scan *scan)
{
    if (a->shape_text && a->twin && scan->gen == a->twin_gen && scan->kept_hit)
        return text_append_esc(a, a->shape_text, s, &scan->body);
    bool reshaped;
    int rc = feed(a, s, len, &reshaped);
    if (reshaped) {
        const struct chunk_shape *r = &scan->shape, *k = &a->shape;
        a->twin = a->shape_text && r->len == k->len && r->body_start == k->body_start &&
                  r->body_end == k->body_end && r->pad_start == k->pad_start &&
                  r->pad_end == k->pad_end && memcmp(r->text, k->text, k->len) == 0;
        a->twin_gen = scan->gen;
    }
    return rc;
}

unsigned assemble_walks(const struct assemble *a)
{
    return a->walks;
}

void assemble_walk_always(struct assemble *a)
{
    a->no_shape = true;
    a->shape_text = NULL;
}

int assemble_feed(struct assemble *a, const char *chunk_json, size_t len)
{
    if (len == 6 && memcmp(chunk_json, "[DONE]", 6) == 0)
        return 0;
    struct jsonx_span body, pad;
    if (a->shape_text && chunk_shape_match(&a->shape, chunk_json, len, &body, &pad))
        return text_append_esc(a, a->shape_text, chunk_json, &body); /* strict: see chunk_shape.h */
    /* A strict pass first, so that a broken chunk changes nothing. */
    struct jw w;
    jw_init(&w, chunk_json, len);
    if (jw_peek(&w) != '{' || !jw_skip(&w) || jw_end(&w) != 0)
        return -EINVAL;
    return assemble_feed_valid(a, chunk_json, len);
}

static int put_str(struct buf *out, const struct asm_text *t)
{
    return buf_append_json_str(out, t->p ? t->p : "", t->len);
}

/* ,"key":"value" (no printf: every answer writes several) */
static int put_member(struct buf *out, const char *key, const struct asm_text *t)
{
    int rc = buf_append_lit(out, ",\"");
    if (!rc) rc = buf_append_str(out, key);
    if (!rc) rc = buf_append_lit(out, "\":");
    return rc ? rc : put_str(out, t);
}

static int put_tool_calls(struct buf *out, const struct asm_choice *c)
{
    int rc = buf_append_str(out, ",\"tool_calls\":[");
    for (size_t i = 0; i < c->n_tools && !rc; i++) {
        const struct asm_tool *t = &c->tools[i];
        rc = buf_append_str(out, i ? ",{\"id\":" : "{\"id\":");
        if (!rc)
            rc = put_str(out, &t->id);
        if (!rc)
            rc = buf_append_str(out, ",\"type\":");
        if (!rc)
            rc = t->type.len ? put_str(out, &t->type) : buf_append_str(out, "\"function\"");
        if (!rc)
            rc = buf_append_str(out, ",\"function\":{\"name\":");
        if (!rc)
            rc = put_str(out, &t->name);
        if (!rc)
            rc = put_member(out, "arguments", &t->args);
        if (!rc)
            rc = buf_append_str(out, "}}");
    }
    return rc ? rc : buf_append_str(out, "]");
}

static int put_message(struct buf *out, const struct asm_choice *c)
{
    int rc = buf_append_str(out, ",\"message\":{\"role\":");
    if (!rc)
        rc = c->role.len ? put_str(out, &c->role) : buf_append_str(out, "\"assistant\"");
    if (rc)
        return rc;
    /* As upstreams answer non-stream: content null beside tool calls and no text. */
    bool calls = c->n_tools > 0 || c->fc_name.seen;
    if (c->content.len == 0 && calls)
        rc = buf_append_str(out, ",\"content\":null");
    else
        rc = put_member(out, "content", &c->content);
    if (!rc && c->reasoning.seen)
        rc = put_member(out, "reasoning_content", &c->reasoning);
    if (!rc && c->refusal.seen)
        rc = put_member(out, "refusal", &c->refusal);
    if (!rc && c->n_tools)
        rc = put_tool_calls(out, c);
    if (!rc && c->fc_name.seen) {
        rc = buf_append_str(out, ",\"function_call\":{\"name\":");
        if (!rc)
            rc = put_str(out, &c->fc_name);
        if (!rc)
            rc = put_member(out, "arguments", &c->fc_args);
        if (!rc)
            rc = buf_append_str(out, "}");
    }
    return rc ? rc : buf_append_str(out, "}");
}

static int put_choices(struct assemble *a, struct buf *out)
{
    int rc = buf_append_str(out, ",\"choices\":[");
    bool first = true;
    for (size_t i = 0; i < a->n_choices && !rc; i++) {
        const struct asm_choice *c = &a->choices[i];
        if (!c->used)
            continue;
        rc = first ? buf_append_lit(out, "{\"index\":") : buf_append_lit(out, ",{\"index\":");
        if (!rc) rc = buf_append_u64(out, i);
        first = false;
        if (!rc)
            rc = a->kind == ASSEMBLE_CHAT ? put_message(out, c) : put_member(out, "text", &c->text);
        if (!rc)
            rc = buf_append_str(out, ",\"logprobs\":null,\"finish_reason\":");
        if (!rc)
            rc = c->finish.len ? put_str(out, &c->finish) : buf_append_str(out, "null");
        if (!rc)
            rc = buf_append_str(out, "}");
    }
    return rc ? rc : buf_append_str(out, "]");
}

int assemble_finish(struct assemble *a, struct buf *out)
{
    int64_t created = a->has_created ? a->created : (int64_t)time(NULL);
    int rc = buf_append_str(out, "{\"id\":");
    if (!rc)
        rc = put_str(out, &a->id);
    if (!rc)
        rc = a->kind == ASSEMBLE_CHAT
                 ? buf_append_lit(out, ",\"object\":\"chat.completion\",\"created\":")
                 : buf_append_lit(out, ",\"object\":\"text_completion\",\"created\":");
    if (!rc) rc = buf_append_i64(out, created);
    if (!rc)
        rc = put_member(out, "model", &a->model);
    if (!rc && a->fingerprint.len)
        rc = put_member(out, "system_fingerprint", &a->fingerprint);
    if (!rc)
        rc = put_choices(a, out);
    if (!rc && a->usage_estimated) {
        rc = buf_append_str(out, ",\"usage\":");
        if (!rc)
            rc = assemble_put_estimated_usage(out, a->usage_prompt, a->usage_completion);
    } else if (!rc && a->usage.seen) {
        rc = buf_append_str(out, ",\"usage\":");
        if (!rc)
            rc = buf_append(out, a->usage.p, a->usage.len);
    }
    return rc ? rc : buf_append_str(out, "}");
}

bool assemble_has_usage(const struct assemble *a)
{
    return a->usage.seen;
}

void assemble_set_estimated_usage(struct assemble *a, int64_t prompt_tokens,
                                  int64_t completion_tokens)
{
    a->usage_estimated = true;
    a->usage_prompt = prompt_tokens;
    a->usage_completion = completion_tokens;
}

int assemble_put_estimated_usage(struct buf *out, int64_t prompt_tokens, int64_t completion_tokens)
{
    return buf_printf(out,
                      "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                      "\"estimated\":true}",
                      (long long)prompt_tokens, (long long)completion_tokens,
                      (long long)(prompt_tokens + completion_tokens));
}

int assemble_add_estimated_usage(const char *json, size_t len, int64_t prompt_tokens,
                                 int64_t completion_tokens, struct buf *out)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EINVAL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "usage"); /* a null one */
    bool empty = root->child == NULL;
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    /* s ends with the object's closing brace: the member goes in before it. */
    int rc = buf_append(out, s, n - 1);
    free(s);
    if (!rc)
        rc = buf_append_str(out, empty ? "\"usage\":" : ",\"usage\":");
    if (!rc)
        rc = assemble_put_estimated_usage(out, prompt_tokens, completion_tokens);
    return rc ? rc : buf_append_str(out, "}");
}

void assemble_free(struct assemble *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_choices; i++) {
        struct asm_choice *c = &a->choices[i];
        struct asm_text *texts[] = {&c->role, &c->content, &c->reasoning, &c->refusal,
                                    &c->text, &c->finish, &c->fc_name, &c->fc_args};
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
            text_free(texts[k]);
        for (size_t k = 0; k < c->n_tools; k++) {
            text_free(&c->tools[k].id);
            text_free(&c->tools[k].type);
            text_free(&c->tools[k].name);
            text_free(&c->tools[k].args);
        }
        buf_mem_free(c->tools, c->tools_cap);
    }
    buf_mem_free(a->choices, a->choices_cap);
    text_free(&a->id);
    text_free(&a->model);
    text_free(&a->fingerprint);
    text_free(&a->usage);
    pool_put(&assemble_pool, a);
}
