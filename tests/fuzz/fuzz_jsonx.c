/*
 * Fuzz target for jsonx (and the answer assembler, which eats the same
 * chunks). The input is taken as a request body, a stream chunk, an error
 * body, and as newline-separated chunks for the assembler. Properties:
 *   - a body jsonx accepts, cJSON accepts too (jsonx is the stricter one,
 *     except for lone surrogate escapes and numbers too long for cJSON);
 *   - an endpoint's scan refuses what the plain scan refuses, and what it
 *     accepts has a model and (chat) messages; a refusal names a field;
 *   - its rewrite is JSON, scans back with the new model, stream true and
 *     include_usage true, and keeps every other byte;
 *   - the one-pass chunk scan gives the tokenizing scan's verdict and fields on
 *     any text that opens with '{', and its spans lie inside the text;
 *   - newline-separated chunks scanned with the last one kept (chunk_shape.h)
 *     give the plain scan's result, every field and span; an empty line starts
 *     another stream, which has the chunks kept across streams;
 *   - an error message is NUL-terminated within its capacity;
 *   - whatever the assembler is fed, its answer is strict JSON, and the same
 *     byte for byte as when it walks every chunk, also when fed after the
 *     relay's scan (an empty line: the next stream, with the chunks kept
 *     across streams).
 * A broken property aborts, which the fuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "proto/assemble.h"
#include "base/buf.h"
#include "proto/chunk_shape.h"
#include "proto/jsonx.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Inputs cJSON rejects although they are JSON. */
static bool cjson_may_reject(const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 2 < n && s[i + 1] == 'u' && (s[i + 2] | 0x20) == 'd')
            return true;
        run = strchr("0123456789+-.eE", s[i]) && s[i] ? run + 1 : 0;
        if (run >= 60)
            return true;
    }
    return false;
}

static bool cjson_accepts(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    CHECK(copy);
    memcpy(copy, s, n);
    copy[n] = '\0';
    cJSON *doc = cJSON_ParseWithLengthOpts(copy, n + 1, NULL, 1);
    free(copy);
    cJSON_Delete(doc);
    return doc != NULL;
}

static void check_rewrite(const char *body, size_t len, const struct jsonx_request *scan,
                          const char *model, bool force)
{
    struct buf out;
    buf_init(&out, 0);
    CHECK(jsonx_rewrite_request(body, len, scan, model, force, &out) == 0);
    struct jsonx_request again;
    CHECK(jsonx_scan_request(out.data, out.len, &again) == JSONX_OK);
    if (model)
        CHECK(strcmp(again.model, model) == 0);
    else
        CHECK(strcmp(again.model, scan->model) == 0);
    if (force)
        CHECK(again.stream && again.include_usage && again.has_stream_options);
    else
        CHECK(again.stream == scan->stream && again.include_usage == scan->include_usage);
    CHECK(again.n_messages == scan->n_messages && again.prompt_chars == scan->prompt_chars &&
          again.has_max_tokens == scan->has_max_tokens && again.max_tokens == scan->max_tokens &&
          again.has_tools == scan->has_tools);
    /* the bytes before the first member and after the last are the client's */
    size_t tail = len - (scan->object.end - 1);
    CHECK(memcmp(out.data, body, scan->object.start + 1) == 0);
    CHECK(out.len >= tail && memcmp(out.data + out.len - tail, body + len - tail, tail) == 0);
    if (!cjson_may_reject(body, len))
        CHECK(cjson_accepts(out.data, out.len));
    buf_free(&out);
}

/* An endpoint's scan refuses all that the plain scan refuses, for the same
   reason, and what it accepts has a model and the endpoint's required field. */
static void fuzz_api_request(const char *s, size_t n, int any_rc, const struct jsonx_request *any)
{
    for (int api = JSONX_API_CHAT; api <= JSONX_API_EMBEDDINGS; api++) {
        struct jsonx_request r;
        int rc = jsonx_scan_api_request(s, n, (enum jsonx_api)api, &r);
        if (rc == JSONX_ERR_FIELD)
            CHECK(r.bad_field[0] && r.error[0] && r.error_code);
        if (any_rc != JSONX_OK) {
            CHECK(rc == any_rc);
            if (rc == JSONX_ERR_FIELD)
                CHECK(strcmp(r.bad_field, any->bad_field) == 0);
            continue;
        }
        if (rc != JSONX_OK)
            continue;
        CHECK(r.has_model && r.model[0] && strcmp(r.model, any->model) == 0);
        CHECK(r.n >= 1 && r.prompt_chars == any->prompt_chars);
        if (api == JSONX_API_CHAT)
            CHECK(r.n_messages > 0);
    }
}

static void fuzz_request(const char *s, size_t n)
{
    struct jsonx_request r;
    int rc = jsonx_scan_request(s, n, &r);
    CHECK(rc <= 0 && rc >= JSONX_ERR_TOO_DEEP);
    if (rc == JSONX_ERR_FIELD)
        CHECK(r.bad_field[0] && r.error[0] && r.error_code);
    fuzz_api_request(s, n, rc, &r);
    if (rc != JSONX_OK)
        return;
    CHECK(strlen(r.model) < sizeof r.model);
    CHECK(r.object.end <= n && r.object.start < r.object.end);
    if (!cjson_may_reject(s, n))
        CHECK(cjson_accepts(s, n));
    /* a model name made of input bytes, quotes and controls included */
    char model[40];
    size_t m = n < sizeof model - 1 ? n : sizeof model - 1;
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (s[i])
            model[k++] = s[i];
    model[k] = '\0';
    check_rewrite(s, n, &r, model, true);
    check_rewrite(s, n, &r, "m", false);
    check_rewrite(s, n, &r, NULL, true);
}

static void fuzz_chunk(const char *s, size_t n)
{
    struct jsonx_chunk c;
    int rc = jsonx_scan_chunk(s, n, &c);
    CHECK((rc == 0) == c.valid);
    if (c.has_finish)
        CHECK(c.has_content);
    if (c.has_usage)
        CHECK(c.prompt_tokens >= 0 && c.completion_tokens >= 0 && c.reasoning_tokens >= 0 &&
              c.cached_tokens >= 0);
    /* the one-pass scan agrees with the tokenizing one on what opens as an object */
    size_t lead = 0;
    while (lead < n && (s[lead] == ' ' || s[lead] == '\t' || s[lead] == '\n' || s[lead] == '\r'))
        lead++;
    struct jsonx_chunk ref;
    int ref_rc = jsonx_scan_chunk_tokens(s, n, &ref);
    if (lead < n && s[lead] == '{') {
        CHECK((rc == 0) == (ref_rc == 0));
        CHECK(c.valid == ref.valid && c.has_content == ref.has_content &&
              c.has_finish == ref.has_finish && c.choices_empty == ref.choices_empty &&
              c.has_usage == ref.has_usage && c.has_error == ref.has_error &&
              c.prompt_tokens == ref.prompt_tokens &&
              c.completion_tokens == ref.completion_tokens &&
              c.reasoning_tokens == ref.reasoning_tokens && c.cached_tokens == ref.cached_tokens &&
              c.content_chars == ref.content_chars && c.multiline == ref.multiline);
    }
    /* spans lie inside the text, and a kept content body unescapes */
    const struct jsonx_span *spans[] = {&c.id, &c.model, &c.created, &c.content};
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
        CHECK(spans[i]->start <= spans[i]->end && spans[i]->end <= n);
    CHECK((c.n_content > 0) == (c.content.end > c.content.start));
    if (c.n_content) {
        struct buf text;
        buf_init(&text, 0);
        CHECK(jsonx_unescape(s + c.content.start, c.content.end - c.content.start, &text) == 0);
        CHECK(text.len > 0 && text.len <= c.content.end - c.content.start);
        buf_free(&text);
    }

    char msg[97];
    size_t cap = n ? 1 + s[0] % sizeof msg : sizeof msg;
    size_t len = jsonx_error_message(s, n, msg, cap);
    CHECK(len < cap && strlen(msg) == len);
}

static bool span_eq(struct jsonx_span a, struct jsonx_span b)
{
    return a.start == b.start && a.end == b.end;
}

static void fuzz_chunk_stream(const char *s, size_t n)
{
    struct chunk_shape_scan k;
    memset(&k, 0, sizeof k);
    chunk_shape_shared_clear();
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\n') continue;
        if (i == start) { /* an empty line: the next stream, with what was kept across streams */
            memset(&k, 0, sizeof k);
            start = i + 1;
            continue;
        }
        struct jsonx_chunk a, b;
        int ra = chunk_shape_scan(&k, s + start, i - start, &a);
        int rb = jsonx_scan_chunk(s + start, i - start, &b);
        CHECK(ra == rb && a.valid == b.valid && a.has_content == b.has_content &&
              a.has_finish == b.has_finish && a.choices_empty == b.choices_empty &&
              a.has_usage == b.has_usage && a.has_error == b.has_error &&
              a.prompt_tokens == b.prompt_tokens && a.completion_tokens == b.completion_tokens &&
              a.reasoning_tokens == b.reasoning_tokens && a.cached_tokens == b.cached_tokens &&
              a.content_chars == b.content_chars && a.n_content == b.n_content &&
              a.multiline == b.multiline && a.delta_calls == b.delta_calls &&
              a.n_text == b.n_text && span_eq(a.id, b.id) && span_eq(a.model, b.model) &&
              span_eq(a.created, b.created) && span_eq(a.content, b.content) &&
              span_eq(a.text, b.text) && span_eq(a.pad, b.pad));
        start = i + 1;
    }
}

/* One stream's answer, assembled with the shortcuts and walking every chunk: the same. */
static void assemble_stream(const char *s, size_t n, bool completion)
{
    enum assemble_kind kind = completion ? ASSEMBLE_COMPLETION : ASSEMBLE_CHAT;
    struct assemble *a = assemble_new(kind, 4096), *walk = assemble_new(kind, 4096),
                    *relayed = assemble_new(kind, 4096);
    CHECK(a && walk && relayed);
    assemble_walk_always(walk);
    struct chunk_shape_scan k; /* the relay's scan, whose matches the relayed one takes */
    memset(&k, 0, sizeof k);
    chunk_shape_scan_reset(&k);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '\n') {
            const char *c = s + start;
            size_t len = i - start;
            int rw = assemble_feed(walk, c, len);
            CHECK(assemble_feed(a, c, len) == rw);
            struct jsonx_chunk ch;
            CHECK((chunk_shape_scan(&k, c, len, &ch) == 0
                       ? assemble_feed_scanned(relayed, c, len, &k)
                       : assemble_feed(relayed, c, len)) == rw);
            start = i + 1;
        }
    }
    struct buf out, ref, rel;
    buf_init(&out, 0);
    buf_init(&ref, 0);
    buf_init(&rel, 0);
    CHECK(assemble_finish(a, &out) == 0);
    CHECK(assemble_finish(walk, &ref) == 0);
    CHECK(assemble_finish(relayed, &rel) == 0);
    if (out.len != ref.len || memcmp(out.data, ref.data, out.len) != 0 || rel.len != ref.len ||
        memcmp(rel.data, ref.data, rel.len) != 0) {
        /* "created" is the clock's when no chunk gave one: its second may have turned
           between them; twice in a row it does not */
        buf_reset(&out);
        buf_reset(&ref);
        buf_reset(&rel);
        CHECK(assemble_finish(a, &out) == 0 && assemble_finish(walk, &ref) == 0 &&
              assemble_finish(relayed, &rel) == 0);
        CHECK(out.len == ref.len && memcmp(out.data, ref.data, out.len) == 0);
        CHECK(rel.len == ref.len && memcmp(rel.data, ref.data, rel.len) == 0);
    }
    buf_free(&ref);
    buf_free(&rel);
    assemble_free(walk);
    assemble_free(relayed);
    struct jsonx_chunk c;
    int rc = jsonx_scan_chunk(out.data, out.len, &c);
    /* usage is copied as it came, however deeply it nests */
    CHECK(rc == JSONX_OK || rc == JSONX_ERR_TOO_DEEP);
    buf_free(&out);
    assemble_free(a);
}

/* An empty line starts the next stream, with the chunks kept across streams. */
static void fuzz_assemble(const char *s, size_t n)
{
    assemble_shared_clear();
    chunk_shape_shared_clear();
    size_t start = 0;
    for (size_t i = 0; i + 1 <= n; i++) {
        if (s[i] == '\n' && i + 1 < n && s[i + 1] == '\n') {
            assemble_stream(s + start, i - start, n % 2);
            start = i + 2;
            i++;
        }
    }
    assemble_stream(s + start, n - start, n % 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fuzz_request(s, size);
    fuzz_chunk(s, size);
    fuzz_chunk_stream(s, size);
    fuzz_assemble(s, size);
    return 0;
}
