#include "sim/fakegen.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "proto/http1.h"
#include "sim/faketext.h"

#define FAKEGEN_MAX_ALTERNATIVES 32
#define FAKEGEN_MAX_MS (24u * 3600u * 1000u)
#define FAKEGEN_MAX_EMBED_INPUTS 2048
#define FAKEGEN_EMBED_DIMS 8
#define FAKEGEN_SLOWREAD_MS 2000u
#define FAKEGEN_DEFAULT_MODEL "fake-model"

static const struct {
    const char *name;
    const char *behavior;
} fakegen_profiles[] = {
    /* About 30 tokens/s after a 300 ms first token. */
    {"healthy", "ttft=300,chunks=30,chunk_ms=33"},
    /* DeepSeek under load: a 200 that only keeps the connection alive for 20 s,
       or 503 "Server Overloaded". */
    {"busy", "50%ttft=300,chunks=30,chunk_ms=33|30%keepalive=20000,ttft=300,chunks=30,chunk_ms=33|"
             "status=503"},
    /* The plain answer comes first so that a newcomer's first request is a clean one. */
    {"flaky", "90%ttft=200,chunks=30,chunk_ms=33|cut=8,ttft=200,chunks=30,chunk_ms=33"},
};

const char *fakegen_profile(const char *name)
{
    for (size_t i = 0; i < sizeof fakegen_profiles / sizeof fakegen_profiles[0]; i++)
        if (strcmp(name, fakegen_profiles[i].name) == 0) return fakegen_profiles[i].behavior;
    return NULL;
}

/* ---- grammar ---- */

struct span {
    const char *p;
    size_t len;
};

static struct span span_trim(const char *p, size_t len)
{
    while (len && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    return (struct span){p, len};
}

static bool span_eq(struct span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static int parse_uint(struct span s, uint64_t max, uint64_t *out)
{
    if (s.len == 0 || s.len > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!isdigit((unsigned char)s.p[i])) return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
        if (v > max) return -1;
    }
    *out = v;
    return 0;
}

static void opts_defaults(struct fakegen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->retry_after_s = -1;
    o->ka_every_ms = 1000;
    o->chunks = 5;
    o->cut = -1;
}

static int parse_directive(struct span d, struct fakegen_opts *o, char *err, size_t errcap)
{
    const char *eq = memchr(d.p, '=', d.len);
    struct span name = span_trim(d.p, eq ? (size_t)(eq - d.p) : d.len);
    struct span val =
        eq ? span_trim(eq + 1, d.len - (size_t)(eq - d.p) - 1) : (struct span){NULL, 0};
    uint64_t v = 0;

    static const struct {
        const char *name;
        size_t off;
    } flags[] = {
        {"html", offsetof(struct fakegen_opts, html)},
        {"garbage", offsetof(struct fakegen_opts, garbage)},
        {"badjson", offsetof(struct fakegen_opts, badjson)},
        {"no_usage", offsetof(struct fakegen_opts, no_usage)},
        {"no_done", offsetof(struct fakegen_opts, no_done)},
        {"multiline", offsetof(struct fakegen_opts, multiline)},
        {"close", offsetof(struct fakegen_opts, close)},
        {"hang", offsetof(struct fakegen_opts, hang)},
        {"reset", offsetof(struct fakegen_opts, reset)},
        {"echo_auth", offsetof(struct fakegen_opts, echo_auth)},
        {"tool_call", offsetof(struct fakegen_opts, tool_call)},
    };
    if (span_eq(name, "ok") && !eq) return 0;
    if (span_eq(name, "slowread") && !eq) {
        o->slowread_ms = FAKEGEN_SLOWREAD_MS;
        return 0;
    }
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (span_eq(name, flags[i].name)) {
            if (eq) goto no_value;
            *(bool *)((char *)o + flags[i].off) = true;
            return 0;
        }
    }

    static const struct {
        const char *name;
        size_t off;
        uint64_t min, max;
    } nums[] = {
        {"ttft", offsetof(struct fakegen_opts, ttft_ms), 0, FAKEGEN_MAX_MS},
        {"ttft_per_ktok", offsetof(struct fakegen_opts, ttft_per_ktok_ms), 0, FAKEGEN_MAX_MS},
        {"keepalive", offsetof(struct fakegen_opts, keepalive_ms), 0, FAKEGEN_MAX_MS},
        {"ka_every", offsetof(struct fakegen_opts, ka_every_ms), 1, FAKEGEN_MAX_MS},
        {"chunks", offsetof(struct fakegen_opts, chunks), 0, FAKEGEN_MAX_CHUNKS},
        {"chunk_ms", offsetof(struct fakegen_opts, chunk_ms), 0, FAKEGEN_MAX_MS},
        {"stall", offsetof(struct fakegen_opts, stall_ms), 0, FAKEGEN_MAX_MS},
        {"reasoning", offsetof(struct fakegen_opts, reasoning), 0, FAKEGEN_MAX_CHUNKS},
        {"max_inflight", offsetof(struct fakegen_opts, max_inflight), 1, 1000000},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (span_eq(name, nums[i].name)) {
            if (!eq || parse_uint(val, nums[i].max, &v) || v < nums[i].min) goto bad_value;
            *(uint32_t *)((char *)o + nums[i].off) = (uint32_t)v;
            return 0;
        }
    }
    if (span_eq(name, "status")) {
        if (!eq || parse_uint(val, 599, &v) || v < 100) goto bad_value;
        o->status = v >= 400 ? (int)v : 0; /* status=200 is the normal answer */
        return 0;
    }
    if (span_eq(name, "retry_after")) {
        if (!eq || parse_uint(val, 999999999, &v)) goto bad_value; /* past a gateway's clamp */
        o->retry_after_s = (int)v;
        return 0;
    }
    if (span_eq(name, "cut")) {
        if (!eq || parse_uint(val, FAKEGEN_MAX_CHUNKS, &v)) goto bad_value;
        o->cut = (int32_t)v;
        return 0;
    }
    if (span_eq(name, "big")) {
        if (!eq || parse_uint(val, FAKEGEN_MAX_BIG, &v)) goto bad_value;
        o->big = v;
        return 0;
    }
    snprintf(err, errcap, "unknown directive '%.*s'", (int)(name.len > 40 ? 40 : name.len), name.p);
    return -1;
bad_value:
    snprintf(err, errcap, "directive '%.*s' needs a number in range",
             (int)(name.len > 40 ? 40 : name.len), name.p);
    return -1;
no_value:
    snprintf(err, errcap, "directive '%.*s' takes no value", (int)(name.len > 40 ? 40 : name.len),
             name.p);
    return -1;
}

static int parse_alternative(struct span alt, struct fakegen_opts *o, char *err, size_t errcap)
{
    opts_defaults(o);
    const char *p = alt.p, *end = alt.p + alt.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        struct span d = span_trim(p, (size_t)(stop - p));
        if (d.len && parse_directive(d, o, err, errcap)) return -1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

int fakegen_pick(const char *behavior, uint64_t k, struct fakegen_opts *out, char *err,
                 size_t errcap)
{
    if (errcap) err[0] = '\0';
    if (!behavior) behavior = "";
    struct span whole = span_trim(behavior, strlen(behavior));
    for (size_t i = 0; i < sizeof fakegen_profiles / sizeof fakegen_profiles[0]; i++) {
        if (span_eq(whole, fakegen_profiles[i].name)) {
            behavior = fakegen_profiles[i].behavior;
            whole = span_trim(behavior, strlen(behavior));
            break;
        }
    }

    struct span alts[FAKEGEN_MAX_ALTERNATIVES];
    int pct[FAKEGEN_MAX_ALTERNATIVES];
    size_t n = 0;
    const char *p = whole.p, *end = whole.p + whole.len;
    for (;;) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *stop = bar ? bar : end;
        if (n == FAKEGEN_MAX_ALTERNATIVES) {
            snprintf(err, errcap, "more than %d alternatives", FAKEGEN_MAX_ALTERNATIVES);
            return -1;
        }
        struct span a = span_trim(p, (size_t)(stop - p));
        pct[n] = -1;
        size_t digits = 0;
        while (digits < a.len && isdigit((unsigned char)a.p[digits]))
            digits++;
        if (digits && digits < a.len && a.p[digits] == '%') {
            uint64_t v;
            if (parse_uint((struct span){a.p, digits}, 100, &v)) {
                snprintf(err, errcap, "a percentage above 100");
                return -1;
            }
            pct[n] = (int)v;
            a = span_trim(a.p + digits + 1, a.len - digits - 1);
        }
        alts[n++] = a;
        if (!bar) break;
        p = bar + 1;
    }

    int sum = 0, unspecified = 0;
    for (size_t i = 0; i < n; i++) {
        if (pct[i] < 0)
            unspecified++;
        else
            sum += pct[i];
    }
    if (sum > 100) {
        snprintf(err, errcap, "percentages add up to %d, more than 100", sum);
        return -1;
    }
    if (unspecified) {
        int rest = 100 - sum, share = rest / unspecified, odd = rest % unspecified;
        for (size_t i = 0; i < n; i++) {
            if (pct[i] < 0) {
                pct[i] = share + (odd > 0);
                odd--;
            }
        }
    }

    /* Every alternative is checked, not only the one picked, so that a typo in
       a rare branch fails on the first request. */
    int bucket = (int)((k % 100) * 37 % 100), acc = 0;
    size_t chosen = n; /* n: the implicit "ok" that takes what percentages leave */
    for (size_t i = 0; i < n; i++) {
        struct fakegen_opts o;
        if (parse_alternative(alts[i], &o, err, errcap)) return -1;
        if (chosen == n && bucket < acc + pct[i]) {
            chosen = i;
            *out = o;
        }
        acc += pct[i];
    }
    if (chosen == n) opts_defaults(out);
    out->alternative = (unsigned)chosen;
    return 0;
}

/* ---- counters ---- */

static uint64_t hash64(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ? h : 1; /* 0 marks an empty slot */
}

uint64_t fakegen_counters_next(struct fakegen_counters *c, const char *behavior)
{
    uint64_t h = hash64(behavior ? behavior : "");
    for (size_t probe = 0; probe < FAKEGEN_COUNTER_SLOTS; probe++) {
        size_t i = (size_t)((h + probe) % FAKEGEN_COUNTER_SLOTS);
        uint64_t key = atomic_load(&c->key[i]);
        if (key == 0) {
            uint64_t expected = 0;
            if (atomic_compare_exchange_strong(&c->key[i], &expected, h))
                key = h;
            else
                key = expected; /* another thread claimed the slot first */
        }
        if (key == h) return atomic_fetch_add(&c->count[i], 1);
    }
    return atomic_fetch_add(&c->overflow, 1);
}

void fakegen_counters_reset(struct fakegen_counters *c)
{
    for (size_t i = 0; i < FAKEGEN_COUNTER_SLOTS; i++) {
        atomic_store(&c->key[i], 0);
        atomic_store(&c->count[i], 0);
    }
    atomic_store(&c->overflow, 0);
}

/* ---- generator ---- */

enum fakegen_kind {
    KIND_CHAT,
    KIND_COMPLETION,
    KIND_EMBEDDINGS,
    KIND_MODELS,
    KIND_NOT_FOUND,
    KIND_BAD_BEHAVIOR,
};

/*
 * Phases, in order; each one may emit zero or more segments and then moves on:
 *
 *   HEAD ─▶ KEEPALIVE ─▶ ROLE ─▶ BADJSON ─▶ CHUNKS ─▶ FINISH ─▶ USAGE ─▶ DONE ─▶ TERM ─▶ END
 *     │                    (streams only: ROLE .. DONE)                ▲
 *     │  non-stream with keep-alive: HEAD ─▶ KEEPALIVE ─▶ BODY ────────┘
 *     └─ a whole response (Content-Length) or nothing at all ─▶ END
 *
 * A cut jumps from CHUNKS (or FINISH) to END with FAKEGEN_END_CLOSE.
 */
enum fakegen_phase {
    PH_HEAD,
    PH_KEEPALIVE,
    PH_ROLE,
    PH_BADJSON,
    PH_CHUNKS,
    PH_BODY,
    PH_FINISH,
    PH_USAGE,
    PH_DONE,
    PH_TERM,
    PH_END,
};

struct fakegen {
    struct fakegen_opts o;
    enum fakegen_kind kind;
    enum fakegen_phase phase;
    enum fakegen_end end;
    bool stream, include_usage;
    int status;
    char *behavior;
    char err[160];
    char echo[600]; /* echo_auth: the message quoting the request's credentials */
    char *model; /* JSON string literal, quotes included */
    uint64_t k;
    uint64_t prompt_tokens;
    uint32_t total_chunks; /* reasoning chunks included */
    struct faketext text;
    /* A continuation starts at this chunk, without its first first_from bytes
       (0 and 0 for an answer from the start); chunks before it are not sent. */
    uint32_t first_chunk;
    size_t first_from;
    uint32_t ka_left;
    uint32_t next_chunk;
    uint32_t carry_ms; /* delay owed to the next segment */
    int64_t created;
    size_t n_inputs;
    struct buf seg; /* the segment handed out last */
    struct buf ev;  /* scratch for one event or body */
};

static uint32_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static uint32_t take_carry(struct fakegen *g)
{
    uint32_t c = g->carry_ms;
    g->carry_ms = 0;
    return c;
}

static bool path_is(const char *path, size_t len, const char *suffix)
{
    const char *q = memchr(path, '?', len);
    if (q) len = (size_t)(q - path);
    size_t n = strlen(suffix);
    if (len < n || memcmp(path + len - n, suffix, n) != 0) return false;
    return len == n || path[len - n - 1] == '/';
}

static bool method_is(const struct fakegen_request *r, const char *m)
{
    return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

static enum fakegen_kind classify(const struct fakegen_request *r)
{
    if (method_is(r, "POST")) {
        if (path_is(r->path, r->path_len, "chat/completions")) return KIND_CHAT;
        if (path_is(r->path, r->path_len, "completions")) return KIND_COMPLETION;
        if (path_is(r->path, r->path_len, "embeddings")) return KIND_EMBEDDINGS;
    } else if (method_is(r, "GET") && path_is(r->path, r->path_len, "models")) {
        return KIND_MODELS;
    }
    return KIND_NOT_FOUND;
}

static size_t count_inputs(const cJSON *input)
{
    if (!cJSON_IsArray(input)) return 1;
    const cJSON *first = input->child;
    if (!first || cJSON_IsNumber(first)) /* one prompt given as token ids */
        return 1;
    size_t n = (size_t)cJSON_GetArraySize(input);
    return n > FAKEGEN_MAX_EMBED_INPUTS ? FAKEGEN_MAX_EMBED_INPUTS : n;
}

/* A trailing assistant message's text (the answer so far, to be continued), or NULL. */
static const char *trailing_assistant(const cJSON *root)
{
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(messages)) return NULL;
    const cJSON *last = messages->child;
    while (last && last->next)
        last = last->next;
    if (!cJSON_IsObject(last)) return NULL;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") != 0) return NULL;
    return cJSON_IsString(content) && content->valuestring[0] ? content->valuestring : NULL;
}

/*
 * Reads what the answer depends on; the override behaviour, if any, and the
 * text of a trailing assistant message, if any, are returned malloc'd.
 */
static int read_body(struct fakegen *g, const struct fakegen_request *req, char **fake,
                     char **prefix)
{
    *fake = NULL;
    *prefix = NULL;
    g->n_inputs = 1;
    const char *model = FAKEGEN_DEFAULT_MODEL;
    cJSON *root = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    if (cJSON_IsObject(root)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (cJSON_IsString(m) && strlen(m->valuestring) <= 200) model = m->valuestring;
        g->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        g->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "fake");
        if (cJSON_IsString(f) && !(*fake = strdup(f->valuestring))) goto nomem;
        g->n_inputs = count_inputs(cJSON_GetObjectItemCaseSensitive(root, "input"));
        const char *so_far = trailing_assistant(root);
        if (so_far && !(*prefix = strdup(so_far))) goto nomem;
    }
    struct buf m;
    buf_init(&m, 0);
    if (buf_append_json_str(&m, model, strlen(model))) goto nomem;
    g->model = buf_steal(&m, NULL);
    cJSON_Delete(root);
    return 0;
nomem:
    cJSON_Delete(root);
    free(*fake);
    free(*prefix);
    *fake = NULL;
    *prefix = NULL;
    return -ENOMEM;
}

int fakegen_new(const struct fakegen_request *req, const char *behavior,
                struct fakegen_counters *counters, struct fakegen **out)
{
    struct fakegen *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    char *fake = NULL, *prefix = NULL;
    if (read_body(g, req, &fake, &prefix)) {
        free(g);
        return -ENOMEM;
    }
    g->behavior = fake ? fake : strdup(behavior ? behavior : "");
    if (!g->behavior) {
        free(prefix);
        fakegen_free(g);
        return -ENOMEM;
    }
    g->k = counters ? fakegen_counters_next(counters, g->behavior) : 0;
    g->kind = classify(req);
    if (fakegen_pick(g->behavior, g->k, &g->o, g->err, sizeof g->err)) {
        opts_defaults(&g->o);
        g->kind = KIND_BAD_BEHAVIOR;
    }
    if (g->o.max_inflight && req->inflight >= g->o.max_inflight && g->kind != KIND_BAD_BEHAVIOR) {
        /* over the provider's concurrency: refused at once, whatever else was asked */
        uint32_t cap = g->o.max_inflight;
        unsigned alt = g->o.alternative;
        opts_defaults(&g->o);
        g->o.status = 429;
        g->o.max_inflight = cap;
        g->o.alternative = alt;
    }
    if (g->o.echo_auth)
        snprintf(g->echo, sizeof g->echo, "Incorrect API key provided: %.*s",
                 (int)(req->credentials_len < 500 ? req->credentials_len : 500),
                 req->credentials ? req->credentials : "");
    g->created = (int64_t)time(NULL);
    g->prompt_tokens = req->body_len / 4 ? req->body_len / 4 : 1;
    /* Prefill: every later delay that starts from ttft (the first chunk, a whole
       answer) sees the prompt's share too. */
    if (g->o.ttft_per_ktok_ms)
        g->o.ttft_ms =
            sat_add(g->o.ttft_ms, (uint64_t)g->o.ttft_per_ktok_ms * g->prompt_tokens / 1000);
    g->total_chunks = g->o.chunks;
    if (g->o.reasoning && g->o.reasoning >= g->total_chunks)
        g->total_chunks = g->o.reasoning + 1; /* an answer follows the reasoning */
    if (g->o.big && g->total_chunks == 0) g->total_chunks = 1;
    if (g->kind == KIND_COMPLETION) g->o.reasoning = 0;
    g->text = (struct faketext){
        .big = g->o.big, .chunks = g->total_chunks, .reasoning = g->o.reasoning};
    /* The last message is the answer so far: go on from where it stops, as a
       model continuing its own text would (no reasoning again: it was done
       before the answer began). A tool call's arguments are not text to go on. */
    if (prefix && g->kind == KIND_CHAT && !g->o.tool_call &&
        faketext_resume(&g->text, prefix, strlen(prefix), &g->first_chunk, &g->first_from))
        g->next_chunk = g->first_chunk;
    free(prefix);
    if (g->o.close || req->client_close)
        g->end = FAKEGEN_END_CLOSE;
    else
        g->end = FAKEGEN_END_KEEP_ALIVE;
    /* The largest segment is a whole non-stream answer: every chunk's text, "big" or
       "thinkN " / "tokN ", in a JSON frame. Bounded by the grammar's own limits. */
    size_t limit = (size_t)g->o.big + (size_t)g->total_chunks * FAKEGEN_MAX_TOKEN_TEXT +
                   FAKEGEN_SEGMENT_FRAME_BYTES;
    buf_init(&g->seg, limit);
    buf_init(&g->ev, limit);
    *out = g;
    return 0;
}

void fakegen_free(struct fakegen *g)
{
    if (!g) return;
    buf_free(&g->seg);
    buf_free(&g->ev);
    free(g->behavior);
    free(g->model);
    free(g);
}

const struct fakegen_opts *fakegen_get_opts(const struct fakegen *g)
{
    return &g->o;
}

int fakegen_status(const struct fakegen *g)
{
    if (g->kind == KIND_BAD_BEHAVIOR) return 400;
    if (g->o.hang || g->o.reset) return 0;
    if (g->o.status) return g->o.status;
    if (g->kind == KIND_NOT_FOUND) return 404;
    return 200;
}

const char *fakegen_behavior(const struct fakegen *g)
{
    return g->behavior;
}

/* ---- bytes ---- */

static int put_status_line(struct fakegen *g, int status, const char *content_type)
{
    int rc =
        buf_printf(&g->seg,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: %s\r\n"
                   "X-Fake-Alternative: %u\r\nX-Fake-Request: %" PRIu64 "\r\n",
                   status, http1_reason(status), content_type,
                   g->end == FAKEGEN_END_CLOSE ? "close" : "keep-alive", g->o.alternative, g->k);
    if (!rc && g->o.retry_after_s >= 0)
        rc = buf_printf(&g->seg, "Retry-After: %d\r\n", g->o.retry_after_s);
    return rc;
}

/* A head for a chunked body; the body follows in later segments. */
static int put_chunked_head(struct fakegen *g, int status, const char *content_type)
{
    int rc = put_status_line(g, status, content_type);
    if (!rc && strcmp(content_type, "text/event-stream") == 0)
        rc = buf_append_str(&g->seg, "Cache-Control: no-cache\r\n");
    return rc ? rc : buf_append_str(&g->seg, "Transfer-Encoding: chunked\r\n\r\n");
}

/* A whole response, Content-Length framed; body from g->ev. */
static int put_whole(struct fakegen *g, int status, const char *content_type)
{
    int rc = put_status_line(g, status, content_type);
    if (!rc) rc = buf_printf(&g->seg, "Content-Length: %zu\r\n\r\n", g->ev.len);
    return rc ? rc : buf_append(&g->seg, g->ev.data, g->ev.len);
}

/* One chunk of a chunked body (what is in g->ev). */
static int put_chunk(struct fakegen *g)
{
    if (g->ev.len == 0) return 0;
    int rc = buf_printf(&g->seg, "%zx\r\n", g->ev.len);
    if (!rc) rc = buf_append(&g->seg, g->ev.data, g->ev.len);
    return rc ? rc : buf_append(&g->seg, "\r\n", 2);
}

static const struct {
    int status;
    const char *message, *type, *code;
} fakegen_errors[] = {
    {400, "Invalid request", "invalid_request_error", NULL},
    {401, "Authentication Fails, Your api key is invalid", "authentication_error",
     "invalid_api_key"},
    {402, "Insufficient Balance", "insufficient_quota", "insufficient_quota"},
    {403, "Permission denied", "permission_error", NULL},
    {404, "Not found", "invalid_request_error", "not_found"},
    {422, "Invalid Parameters", "invalid_request_error", NULL},
    {429, "Rate limit reached for requests", "rate_limit_error", "rate_limit_exceeded"},
    {500, "Internal Server Error", "server_error", NULL},
    {502, "Bad Gateway", "server_error", NULL},
    {503, "Server Overloaded", "server_error", "server_overloaded"},
    {504, "Gateway Timeout", "server_error", NULL},
};

static int error_body(struct fakegen *g, int status, const char *message)
{
    const char *type = status >= 500 ? "server_error" : "invalid_request_error", *code = NULL;
    const char *msg = http1_reason(status);
    for (size_t i = 0; i < sizeof fakegen_errors / sizeof fakegen_errors[0]; i++) {
        if (fakegen_errors[i].status == status) {
            msg = fakegen_errors[i].message;
            type = fakegen_errors[i].type;
            code = fakegen_errors[i].code;
        }
    }
    if (message) msg = message;
    if (g->o.echo_auth) msg = g->echo;
    buf_reset(&g->ev);
    if (g->o.html)
        return buf_printf(&g->ev,
                          "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                          "<center><h1>%d %s</h1></center>\r\n<hr><center>cloud-lb</center>\r\n"
                          "</body>\r\n</html>\r\n",
                          status, http1_reason(status), status, http1_reason(status));
    int rc = buf_append_str(&g->ev, "{\"error\":{\"message\":");
    if (!rc) rc = buf_append_json_str(&g->ev, msg, strlen(msg));
    if (!rc) rc = buf_printf(&g->ev, ",\"type\":\"%s\",\"param\":null,\"code\":", type);
    if (!rc) rc = code ? buf_printf(&g->ev, "\"%s\"", code) : buf_append_str(&g->ev, "null");
    return rc ? rc : buf_append_str(&g->ev, "}}");
}

static int put_error(struct fakegen *g, int status, const char *message)
{
    int rc = error_body(g, status, message);
    return rc ? rc : put_whole(g, status, g->o.html ? "text/html" : "application/json");
}

/* Content of chunk i (reasoning or answer), appended to b as JSON string contents. */
static int put_content_text(struct fakegen *g, struct buf *b, uint32_t i)
{
    return faketext_put(&g->text, b, i, i == g->first_chunk ? g->first_from : 0);
}

static int put_usage(struct fakegen *g, struct buf *b)
{
    /* A continuation counts what it generated, not the answer it was given. */
    uint64_t completion = g->total_chunks - g->first_chunk;
    uint32_t reasoning = g->first_chunk < g->o.reasoning ? g->o.reasoning - g->first_chunk : 0;
    return buf_printf(b,
                      "\"usage\":{\"prompt_tokens\":%" PRIu64 ",\"completion_tokens\":%" PRIu64
                      ",\"total_tokens\":%" PRIu64 ",\"prompt_cache_hit_tokens\":0,"
                      "\"prompt_cache_miss_tokens\":%" PRIu64
                      ",\"completion_tokens_details\":{\"reasoning_tokens\":%" PRIu32 "}}",
                      g->prompt_tokens, completion, g->prompt_tokens + completion, g->prompt_tokens,
                      reasoning);
}

static int put_chunk_prefix(struct fakegen *g, struct buf *b)
{
    bool chat = g->kind == KIND_CHAT;
    return buf_printf(b,
                      "data: {\"id\":\"%s-fake-%" PRIu64 "\",\"object\":\"%s\",\"created\":%" PRId64
                      ",\"model\":%s,",
                      chat ? "chatcmpl" : "cmpl", g->k,
                      chat ? "chat.completion.chunk" : "text_completion", g->created, g->model);
}

/* One SSE event into g->ev: what = 'r' role, 'c' content i, 'f' finish, 'u' usage. */
static int build_event(struct fakegen *g, char what, uint32_t i)
{
    struct buf *b = &g->ev;
    bool chat = g->kind == KIND_CHAT;
    buf_reset(b);
    int rc = put_chunk_prefix(g, b);
    if (!rc && g->o.multiline) rc = buf_append_str(b, "\ndata: ");
    if (rc) return rc;
    switch (what) {
    case 'r':
        rc = buf_append_str(
            b, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
               "\"finish_reason\":null}]");
        break;
    case 'c':
        if (chat && g->o.tool_call)
            rc = buf_append_str(b, i == 0 ? "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                                            "\"id\":\"call_fake\",\"type\":\"function\",\"function\":"
                                            "{\"name\":\"fake\",\"arguments\":\""
                                          : "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                                            "\"function\":{\"arguments\":\"");
        else if (chat)
            rc = buf_printf(b, "\"choices\":[{\"index\":0,\"delta\":{\"%s\":\"",
                            i < g->o.reasoning ? "reasoning_content" : "content");
        else
            rc = buf_append_str(b, "\"choices\":[{\"text\":\"");
        if (!rc) rc = put_content_text(g, b, i);
        if (!rc && chat && g->o.tool_call)
            rc = buf_append_str(b, "\"}}]},\"finish_reason\":null}]");
        else if (!rc)
            rc = buf_append_str(b,
                                chat ? "\"},\"finish_reason\":null}]"
                                     : "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
        break;
    case 'f':
        rc = buf_append_str(
            b, chat ? "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]"
                    : "\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                      "\"finish_reason\":\"stop\"}]");
        break;
    default:
        rc = buf_append_str(b, "\"choices\":[],");
        if (!rc) rc = put_usage(g, b);
        break;
    }
    return rc ? rc : buf_append_str(b, "}\n\n");
}

/* The non-stream answer (or a deliberately broken one) into g->ev. */
static int build_body(struct fakegen *g)
{
    struct buf *b = &g->ev;
    buf_reset(b);
    int rc = 0;
    if (g->kind == KIND_MODELS)
        return buf_printf(b,
                          "{\"object\":\"list\",\"data\":["
                          "{\"id\":\"fake-model\",\"object\":\"model\",\"created\":%" PRId64
                          ",\"owned_by\":\"fake\"},"
                          "{\"id\":\"fake-reasoner\",\"object\":\"model\",\"created\":%" PRId64
                          ",\"owned_by\":\"fake\"}]}",
                          g->created, g->created);
    if (g->kind == KIND_EMBEDDINGS) {
        rc = buf_append_str(b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; !rc && i < g->n_inputs; i++) {
            rc = buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[",
                            i ? "," : "", i);
            for (int d = 0; !rc && d < FAKEGEN_EMBED_DIMS; d++) {
                uint64_t h = (g->k * 1000003u + i * 8191u + (uint64_t)d) * 0x9e3779b97f4a7c15ull;
                rc = buf_printf(b, "%s%.4f", d ? "," : "",
                                (double)(h >> 40) / (double)(1u << 24) * 2.0 - 1.0);
            }
            if (!rc) rc = buf_append_str(b, "]}");
        }
        if (!rc)
            rc = buf_printf(b,
                            "],\"model\":%s,\"usage\":{\"prompt_tokens\":%" PRIu64
                            ",\"total_tokens\":%" PRIu64 "}}",
                            g->model, g->prompt_tokens, g->prompt_tokens);
        return rc;
    }
    bool chat = g->kind == KIND_CHAT;
    rc = buf_printf(b,
                    "{\"id\":\"%s-fake-%" PRIu64 "\",\"object\":\"%s\",\"created\":%" PRId64
                    ",\"model\":%s,",
                    chat ? "chatcmpl" : "cmpl", g->k, chat ? "chat.completion" : "text_completion",
                    g->created, g->model);
    if (!rc && g->o.badjson)
        return buf_append_str(b, "\"choices\":[{\"index\":0,\"message\":{\"role\":");
    if (!rc)
        rc = buf_append_str(
            b, chat ? "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""
                    : "\"choices\":[{\"text\":\"");
    uint32_t first_answer = g->first_chunk > g->o.reasoning ? g->first_chunk : g->o.reasoning;
    for (uint32_t i = first_answer; !rc && i < g->total_chunks; i++)
        rc = put_content_text(g, b, i);
    if (!rc && chat && g->first_chunk < g->o.reasoning) {
        rc = buf_append_str(b, "\",\"reasoning_content\":\"");
        for (uint32_t i = g->first_chunk; !rc && i < g->o.reasoning; i++)
            rc = put_content_text(g, b, i);
    }
    if (!rc)
        rc = buf_append_str(b,
                            chat ? "\"},\"logprobs\":null,\"finish_reason\":\"stop\"}]"
                                 : "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    if (!rc && !g->o.no_usage) {
        rc = buf_append_str(b, ",");
        if (!rc) rc = put_usage(g, b);
    }
    return rc ? rc : buf_append_str(b, "}");
}

static uint32_t generation_ms(const struct fakegen *g)
{
    uint64_t t = (uint64_t)g->o.ttft_ms + g->o.stall_ms;
    uint32_t sent = g->total_chunks - g->first_chunk;
    if (sent > 1) t += (uint64_t)(sent - 1) * g->o.chunk_ms;
    return sat_add(t, 0);
}

static int emit_head(struct fakegen *g, struct fakegen_seg *seg)
{
    if (g->o.hang || g->o.reset) {
        g->end = g->o.hang ? FAKEGEN_END_HANG : FAKEGEN_END_RESET;
        g->phase = PH_END;
        return 0;
    }
    g->phase = PH_END;
    seg->delay_ms = g->o.ttft_ms;
    if (g->kind == KIND_BAD_BEHAVIOR) {
        char msg[200];
        snprintf(msg, sizeof msg, "fake: bad behaviour: %s", g->err);
        seg->delay_ms = 0;
        return put_error(g, 400, msg) ? -ENOMEM : 1;
    }
    if (g->o.status) return put_error(g, g->o.status, NULL) ? -ENOMEM : 1;
    if (g->kind == KIND_NOT_FOUND) return put_error(g, 404, "fake: no such endpoint") ? -ENOMEM : 1;
    if (g->o.garbage) {
        seg->delay_ms = 0;
        g->phase = PH_BODY;
        g->carry_ms = g->o.ttft_ms;
        return put_chunked_head(g, 200, "text/event-stream") ? -ENOMEM : 1;
    }
    bool streaming = g->stream && (g->kind == KIND_CHAT || g->kind == KIND_COMPLETION);
    if (streaming || g->o.keepalive_ms) {
        seg->delay_ms = 0;
        g->ka_left = g->o.keepalive_ms / g->o.ka_every_ms;
        g->carry_ms = g->o.keepalive_ms - g->ka_left * g->o.ka_every_ms;
        g->phase = PH_KEEPALIVE;
        return put_chunked_head(g, 200, streaming ? "text/event-stream" : "application/json")
                   ? -ENOMEM
                   : 1;
    }
    /* A whole answer after the time it took to "generate". */
    seg->delay_ms = generation_ms(g);
    if (build_body(g) || put_status_line(g, 200, "application/json")) return -ENOMEM;
    if (g->o.cut >= 0) {
        /* Promise the whole length, deliver half, then close. */
        size_t half = g->ev.len / 2;
        if (buf_printf(&g->seg, "Content-Length: %zu\r\n\r\n", g->ev.len) ||
            buf_append(&g->seg, g->ev.data, half))
            return -ENOMEM;
        g->end = FAKEGEN_END_CLOSE;
        return 1;
    }
    if (buf_printf(&g->seg, "Content-Length: %zu\r\n\r\n", g->ev.len) ||
        buf_append(&g->seg, g->ev.data, g->ev.len))
        return -ENOMEM;
    return 1;
}

static int emit(struct fakegen *g, struct fakegen_seg *seg)
{
    bool streaming = g->stream && (g->kind == KIND_CHAT || g->kind == KIND_COMPLETION);
    switch (g->phase) {
    case PH_HEAD:
        return emit_head(g, seg);
    case PH_KEEPALIVE:
        if (g->ka_left == 0) {
            g->phase = streaming ? PH_ROLE : PH_BODY;
            if (!streaming) g->carry_ms = sat_add(g->carry_ms, generation_ms(g));
            return 0;
        }
        g->ka_left--;
        buf_reset(&g->ev);
        if (buf_append_str(&g->ev, streaming ? ": keep-alive\n\n" : "\n") || put_chunk(g))
            return -ENOMEM;
        seg->delay_ms = g->o.ka_every_ms;
        return 1;
    case PH_ROLE:
        g->phase = PH_BADJSON;
        if (g->kind != KIND_CHAT) return 0;
        seg->delay_ms = take_carry(g);
        return build_event(g, 'r', 0) || put_chunk(g) ? -ENOMEM : 1;
    case PH_BADJSON:
        g->phase = PH_CHUNKS;
        if (!g->o.badjson) return 0;
        seg->delay_ms = take_carry(g);
        buf_reset(&g->ev);
        if (buf_printf(&g->ev, "data: {\"id\":\"chatcmpl-fake-%" PRIu64 "\",\"choices\":[{oops\n\n",
                       g->k))
            return -ENOMEM;
        return put_chunk(g) ? -ENOMEM : 1;
    case PH_CHUNKS: {
        /* cut=, ttft and stall count the chunks of this answer, a continuation's too */
        uint32_t i = g->next_chunk, sent = i - g->first_chunk;
        if (g->o.cut >= 0 && sent == (uint32_t)g->o.cut) {
            g->carry_ms = sat_add(g->carry_ms, sent ? g->o.chunk_ms : g->o.ttft_ms);
            g->end = FAKEGEN_END_CLOSE;
            g->phase = PH_END;
            return 0;
        }
        if (i == g->total_chunks) {
            g->phase = PH_FINISH;
            return 0;
        }
        seg->delay_ms = sat_add(take_carry(g), sent ? g->o.chunk_ms : g->o.ttft_ms);
        if (sent == 0) g->carry_ms = g->o.stall_ms;
        g->next_chunk++;
        return build_event(g, 'c', i) || put_chunk(g) ? -ENOMEM : 1;
    }
    case PH_BODY:
        g->phase = PH_TERM;
        seg->delay_ms = take_carry(g);
        buf_reset(&g->ev);
        if (g->o.garbage) {
            static const char junk[] = "\x01\x02 garbage \xff\xfe not an event stream {{{\n"
                                       "data: <<<#%$ this is not json>>>\n\n";
            if (buf_append(&g->ev, junk, sizeof junk - 1)) return -ENOMEM;
        } else if (build_body(g)) {
            return -ENOMEM;
        }
        if (g->o.cut >= 0) {
            g->ev.len /= 2;
            g->end = FAKEGEN_END_CLOSE;
            g->phase = PH_END;
        }
        return put_chunk(g) ? -ENOMEM : 1;
    case PH_FINISH:
        if (g->o.cut >= 0) { /* a cut at or past the last chunk: no finish either */
            g->carry_ms = sat_add(g->carry_ms, g->o.chunk_ms);
            g->end = FAKEGEN_END_CLOSE;
            g->phase = PH_END;
            return 0;
        }
        g->phase = PH_USAGE;
        seg->delay_ms = take_carry(g);
        return build_event(g, 'f', 0) || put_chunk(g) ? -ENOMEM : 1;
    case PH_USAGE:
        g->phase = PH_DONE;
        if (!g->include_usage || g->o.no_usage) return 0;
        seg->delay_ms = take_carry(g);
        return build_event(g, 'u', 0) || put_chunk(g) ? -ENOMEM : 1;
    case PH_DONE:
        g->phase = PH_TERM;
        if (g->o.no_done) return 0;
        seg->delay_ms = take_carry(g);
        buf_reset(&g->ev);
        return buf_append_str(&g->ev, "data: [DONE]\n\n") || put_chunk(g) ? -ENOMEM : 1;
    case PH_TERM:
        g->phase = PH_END;
        seg->delay_ms = take_carry(g);
        return buf_append_str(&g->seg, "0\r\n\r\n") ? -ENOMEM : 1;
    case PH_END:
        break;
    }
    return 0;
}

int fakegen_next(struct fakegen *g, struct fakegen_seg *seg)
{
    for (;;) {
        buf_reset(&g->seg);
        seg->delay_ms = 0;
        if (g->phase == PH_END) {
            static char none[1];
            seg->data = none;
            seg->len = 0;
            seg->delay_ms = take_carry(g);
            seg->end = g->end;
            return 0;
        }
        int rc = emit(g, seg);
        if (rc < 0) {
            /* Out of memory mid-answer: the only honest thing left is to drop the connection. */
            g->phase = PH_END;
            g->end = FAKEGEN_END_CLOSE;
            continue;
        }
        if (rc > 0) {
            seg->data = g->seg.data;
            seg->len = g->seg.len;
            seg->end = g->end;
            return 1;
        }
    }
}
