#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/chunk_shape.h"
#include "proto/jsonx.h"
#include "two_streams.h"

static bool span_eq(struct jsonx_span a, struct jsonx_span b)
{
    return a.start == b.start && a.end == b.end;
}

/* Every field jsonx_scan_chunk sets. */
static bool chunk_eq(const struct jsonx_chunk *a, const struct jsonx_chunk *b)
{
    return a->valid == b->valid && a->has_content == b->has_content &&
           a->has_finish == b->has_finish && a->choices_empty == b->choices_empty &&
           a->has_usage == b->has_usage && a->has_error == b->has_error &&
           a->prompt_tokens == b->prompt_tokens && a->completion_tokens == b->completion_tokens &&
           a->reasoning_tokens == b->reasoning_tokens && a->cached_tokens == b->cached_tokens &&
           a->content_chars == b->content_chars && span_eq(a->id, b->id) &&
           span_eq(a->model, b->model) && span_eq(a->created, b->created) &&
           span_eq(a->content, b->content) && a->n_content == b->n_content &&
           a->delta_calls == b->delta_calls && a->n_text == b->n_text &&
           span_eq(a->text, b->text) && span_eq(a->pad, b->pad) && a->multiline == b->multiline;
}

static bool matches(const struct chunk_shape *k, const char *s)
{
    struct jsonx_span body, pad;
    return chunk_shape_match(k, s, strlen(s), &body, &pad);
}

static void test_match(void **state)
{
    (void)state;
    struct chunk_shape k = {0};
    const char *first = "{\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"id\":\"x\"}";
    assert_false(matches(&k, first)); /* none kept */
    size_t at = (size_t)(strstr(first, "ab") - first);
    struct jsonx_span body = {at, at + 2};
    assert_true(chunk_shape_keep(&k, first, strlen(first), &body, NULL));
    assert_true(matches(&k, first));
    const char *other = "{\"choices\":[{\"delta\":{\"content\":\"c\\\"d\\u00e9\"}}],\"id\":\"x\"}";
    struct jsonx_span got, pad;
    assert_true(chunk_shape_match(&k, other, strlen(other), &got, &pad));
    assert_int_equal(pad.end, 0);
    assert_int_equal(got.start, at);
    assert_int_equal(got.end, strlen(other) - strlen("\"}}],\"id\":\"x\"}"));
    /* another member, another tail, an empty text, broken texts: not this shape */
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"id\":\"y\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"refusal\":\"ab\"}}],\"id\":\"x\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"\"}}],\"id\":\"x\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"a\\x\"}}],\"id\":\"x\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"a\\u12\"}}],\"id\":\"x\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"a\x01\"}}],\"id\":\"x\"}"));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"id\":\"x\"} "));
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"id\":\"x\""));
    /* a quote in the text must be escaped: a bare one ends the string where the tail differs */
    assert_false(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"a\"b\"}}],\"id\":\"x\"}"));
    /* a chunk over the bound is not kept */
    char big[CHUNK_SHAPE_MAX + 64];
    int n = snprintf(big, sizeof big, "{\"choices\":[{\"delta\":{\"content\":\"%0*d\"}}]}",
                     CHUNK_SHAPE_MAX, 0);
    struct jsonx_span bb = {at, (size_t)n - 5};
    assert_false(chunk_shape_keep(&k, big, (size_t)n, &bb, NULL));
    assert_false(matches(&k, first));
}

/* A second string after the text (a pad) may differ too; what follows it moves. */
static void test_match_pad(void **state)
{
    (void)state;
    struct chunk_shape k = {0};
    const char *first =
        "{\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"obfuscation\":\"x1\",\"id\":\"i\"}";
    size_t at = (size_t)(strstr(first, "ab") - first), pat = (size_t)(strstr(first, "x1") - first);
    struct jsonx_span body = {at, at + 2}, pad = {pat, pat + 2};
    assert_true(chunk_shape_keep(&k, first, strlen(first), &body, &pad));
    const char *other =
        "{\"choices\":[{\"delta\":{\"content\":\"cde\"}}],\"obfuscation\":\"\",\"id\":\"i\"}";
    struct jsonx_span b, p;
    assert_true(chunk_shape_match(&k, other, strlen(other), &b, &p));
    assert_int_equal(b.end - b.start, 3);
    assert_int_equal(p.start, p.end); /* an empty pad is still one */
    assert_int_equal(p.start, (size_t)(strstr(other, "\",\"id") - other));
    assert_true(matches(&k, "{\"choices\":[{\"delta\":{\"content\":\"c\"}}],\"obfuscation\":\"long "
                            "pad\",\"id\":\"i\"}"));
    assert_false(matches(
        &k,
        "{\"choices\":[{\"delta\":{\"content\":\"c\"}}],\"obfuscation\":\"p\\q\",\"id\":\"i\"}"));
    assert_false(matches(
        &k, "{\"choices\":[{\"delta\":{\"content\":\"c\"}}],\"obfuscation\":\"p\",\"id\":\"j\"}"));
    assert_false(matches(
        &k, "{\"choices\":[{\"delta\":{\"content\":\"c\"}}],\"obfuscatio\":\"p\",\"id\":\"i\"}"));
    /* a pad before the text is not kept as one */
    struct jsonx_span early = {2, 9};
    assert_true(chunk_shape_keep(&k, first, strlen(first), &body, &early));
    assert_int_equal(k.pad_end, 0);
}

/* A stream scanned with the kept shape gives jsonx_scan_chunk's result for each chunk. */
static unsigned scan_stream(const char *const *chunks)
{
    struct chunk_shape_scan k;
    memset(&k, 0, sizeof k);
    for (size_t i = 0; chunks[i]; i++) {
        struct jsonx_chunk fast, ref;
        size_t n = strlen(chunks[i]);
        int rf = chunk_shape_scan(&k, chunks[i], n, &fast);
        int rr = jsonx_scan_chunk(chunks[i], n, &ref);
        if (rf != rr || !chunk_eq(&fast, &ref)) fail_msg("chunk %zu differs: %s", i, chunks[i]);
    }
    return k.walked;
}

/* The first stream since the shapes kept across streams were forgotten. */
static void check_scan(const char *const *chunks, unsigned want_walked)
{
    chunk_shape_shared_clear();
    assert_int_equal(scan_stream(chunks), want_walked);
}

#define CH(delta)                                                                                  \
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","           \
    "\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":null}]}"

static void test_scan_same_as_walk(void **state)
{
    (void)state;
    const char *content[] = {
        CH("{\"role\":\"assistant\",\"content\":\"\"}"),
        CH("{\"content\":\"Hel\"}"),
        CH("{\"content\":\"lo \\\"w\\u00e9\\\"\"}"),
        CH("{\"content\":\"\"}"),
        CH("{\"content\":\"!\"}"),
        CH("{\"content\":\"x\\y\"}"), /* invalid: refused alike */
        CH("{\"content\":\"?\"}"),
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}}",
        NULL};
    /* walked: the role chunk, the first text, the empty text, the broken one, the finish, the
       usage (the texts after the empty and the broken one are of the first text's shape) */
    check_scan(content, 6);
    const char *reasoning[] = {
        CH("{\"content\":null,\"reasoning_content\":\"Th\"}"),
        CH("{\"content\":null,\"reasoning_content\":\"ink\"}"),
        CH("{\"content\":null,\"reasoning\":\"ing\"}"),
        CH("{\"content\":null,\"reasoning\":\"!\"}"),
        /* two texts counted once: never kept */
        CH("{\"reasoning_content\":\"a\",\"reasoning\":\"a\"}"),
        CH("{\"reasoning_content\":\"b\",\"reasoning\":\"b\"}"),
        /* a tool call's text is not the kept text */
        CH("{\"content\":\"c\",\"tool_calls\":[{\"function\":{\"arguments\":\"x\"}}]}"),
        CH("{\"content\":\"d\",\"tool_calls\":[{\"function\":{\"arguments\":\"x\"}}]}"), NULL};
    check_scan(reasoning, 6);
    /* members after the text move with it; usage in every chunk */
    const char *late[] = {
        "{\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"id\":\"late\",\"model\":\"m2\","
        "\"created\":9}",
        "{\"choices\":[{\"delta\":{\"content\":\"bcdef\"}}],\"id\":\"late\",\"model\":\"m2\","
        "\"created\":9}",
        "{\"choices\":[{\"delta\":{\"content\":\"g\"}}],\"id\":\"late\",\"model\":\"m2\","
        "\"created\":9}",
        "{\"choices\":[{\"text\":\"h\",\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":1}}",
        "{\"choices\":[{\"text\":\"ij\",\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":1}}",
        "{\"choices\":[{\"text\":\"k\",\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":2}}",
        NULL};
    check_scan(late, 3);
    /* OpenAI's random padding in every chunk, members after it moving twice */
    const char *padded[] = {"{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                            "\"assistant\",\"content\":\"\"}}],\"obfuscation\":\"Zk\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                            "\"He\"}}],\"obfuscation\":\"a9Xq\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                            "\"llo\"}}],\"obfuscation\":\"b\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" "
                            "there\"}}],\"obfuscation\":\"\"}",
                            "{\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"obfuscation\":\"xy\","
                            "\"model\":\"m\",\"created\":5}",
                            "{\"choices\":[{\"delta\":{\"content\":\"bcd\"}}],\"obfuscation\":\"\","
                            "\"model\":\"m\",\"created\":5}",
                            "{\"choices\":[{\"delta\":{\"content\":\"e\"}}],\"obfuscation\":"
                            "\"wxyz12\",\"model\":\"m\",\"created\":5}",
                            "{\"choices\":[{\"delta\":{\"content\":\"f\"}}],\"obfuscation\":7,"
                            "\"model\":\"m\",\"created\":5}",
                            NULL};
    check_scan(padded, 4);
    /* a chunk whose JSON spans lines (joined SSE data lines) is kept and matched as any
       other: the matched chunks are multi-line as their walk says */
    const char *lines[] = {"{\"choices\":[{\"delta\":\n{\"content\":\"a\"}}]}",
                           "{\"choices\":[{\"delta\":\n{\"content\":\"bc\"}}]}",
                           "{\"choices\":[{\"delta\":\n{\"content\":\"d\"}}]}",
                           "{\"choices\":[{\"delta\":{\"content\":\"e\"}}]}", NULL};
    check_scan(lines, 2);
    struct jsonx_chunk c;
    assert_int_equal(jsonx_scan_chunk(lines[1], strlen(lines[1]), &c), JSONX_OK);
    assert_true(c.multiline);
    assert_int_equal(jsonx_scan_chunk(lines[3], strlen(lines[3]), &c), JSONX_OK);
    assert_false(c.multiline);
}

/* The next stream's role chunk, first text and finish are its last's with another id,
   "created" and pad: not walked, and scanned as the walk scans them. */
static void test_scan_across_streams(void **state)
{
    (void)state;
    chunk_shape_shared_clear();
    assert_int_equal(scan_stream(stream_first), 4); /* all but the second text */
    assert_int_equal(scan_stream(stream_next),
                     1); /* the usage: its numbers are not among the parts */
    /* What may differ is a strict string (the text not empty) or number, and nothing else:
       each variant in a stream after a finish chunk kept in another: walked or not. */
#define FIN(id, created, reason, pad)                                                              \
    STREAM_CHUNK(id, created,                                                                      \
                 "\"delta\":{},\"finish_reason\":" reason "}],\"obfuscation\":\"" pad "\"}")
    const char *kept = FIN("c3", "17", "\"stop\"", "");
    struct {
        const char *chunk;
        unsigned walked;
    } variants[] = {
        {FIN("c4\\\"", "-1.5e3", "\"stop\"", "\\u00e9"), 0},
        {FIN("", "0", "\"stop\"", "a"), 0},
        {FIN("c\\x", "17", "\"stop\"", ""), 1},   /* a bad escape */
        {FIN("c3", "017", "\"stop\"", ""), 1},    /* not a number */
        {FIN("c3", "1.", "\"stop\"", ""), 1},     /* nor this */
        {FIN("c3", "\"17\"", "\"stop\"", ""), 1}, /* a string where the number was */
        {FIN("c3", "17 ", "\"stop\"", ""), 1},    /* a space more */
        {FIN("c3", "17", "\"stop\"", "a\nb"), 1}, /* a control character */
        {FIN("c3", "17", "\"length\"", ""), 1},   /* another finish */
        {FIN("c3", "17", "null", ""), 1},
        {FIN("c3", "17", "\"stop\"", "") " ", 1},
        {FIN("c3", "17", "\"stop\"", "\""), 1}, /* a quote more */
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        chunk_shape_shared_clear();
        const char *one[] = {kept, NULL}, *two[] = {variants[v].chunk, NULL};
        assert_int_equal(scan_stream(one), 1);
        if (scan_stream(two) != variants[v].walked)
            fail_msg("variant %zu: %s", v, variants[v].chunk);
    }
    /* the text of the kept first text may differ, not be empty */
    const char *text[] = {STREAM_CHUNK("c5", "1", "\"delta\":{\"content\":\"a\"}}]}"), NULL},
               *empty[] = {STREAM_CHUNK("c6", "1", "\"delta\":{\"content\":\"\"}}]}"), NULL},
               *longer[] = {STREAM_CHUNK("c7", "2", "\"delta\":{\"content\":\"bcd\\n\"}}]}"), NULL};
    chunk_shape_shared_clear();
    assert_int_equal(scan_stream(text), 1);
    assert_int_equal(scan_stream(empty), 1);
    assert_int_equal(scan_stream(longer), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_match_pad),
        cmocka_unit_test(test_scan_same_as_walk),
        cmocka_unit_test(test_scan_across_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
