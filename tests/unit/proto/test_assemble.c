#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "proto/assemble.h"
#include "proto/chunk_shape.h"
#include "base/buf.h"
#include "two_streams.h"

static int feed(struct assemble *a, const char *json)
{
    return assemble_feed(a, json, strlen(json));
}

static void feed_all(struct assemble *a, const char *const *chunks)
{
    for (size_t i = 0; chunks[i]; i++)
        if (feed(a, chunks[i]) != 0)
            fail_msg("feed failed: %s", chunks[i]);
}

/* Finish and parse the answer; the caller deletes it. */
static cJSON *finish(struct assemble *a)
{
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(assemble_finish(a, &out), 0);
    cJSON *doc = cJSON_ParseWithLength(out.data, out.len);
    if (!doc)
        fail_msg("not JSON: %s", out.data);
    buf_free(&out);
    return doc;
}

static const cJSON *get(const cJSON *o, const char *path)
{
    /* dotted path; a number selects an array element */
    char tmp[128];
    strcpy(tmp, path);
    const cJSON *cur = o;
    for (char *tok = strtok(tmp, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (tok[0] >= '0' && tok[0] <= '9')
            cur = cJSON_GetArrayItem(cur, atoi(tok));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cur;
}

static void assert_str(const cJSON *o, const char *path, const char *want)
{
    const cJSON *v = get(o, path);
    if (!cJSON_IsString(v))
        fail_msg("%s is not a string", path);
    assert_string_equal(v->valuestring, want);
}

static void assert_num(const cJSON *o, const char *path, double want)
{
    const cJSON *v = get(o, path);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", path);
    assert_true(v->valuedouble == want);
}

static void test_chat_text_and_usage(void **state)
{
    static const char *const chunks[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"deepseek-reasoner\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"chatcmpl-1\",\"created\":1700000001,\"model\":\"deepseek-reasoner\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"Let me \"}}]}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think.\"}}]}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", \\\"world\\\"\\n\"}}]}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
        "\"usage\":null}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,"
        "\"total_tokens\":21,\"completion_tokens_details\":{\"reasoning_tokens\":5}}}",
        "[DONE]",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_str(doc, "id", "chatcmpl-1");
    assert_str(doc, "object", "chat.completion");
    assert_num(doc, "created", 1700000000);
    assert_str(doc, "model", "deepseek-reasoner");
    assert_str(doc, "system_fingerprint", "fp_1");
    assert_int_equal(cJSON_GetArraySize(get(doc, "choices")), 1);
    assert_num(doc, "choices.0.index", 0);
    assert_str(doc, "choices.0.message.role", "assistant");
    assert_str(doc, "choices.0.message.content", "Hello, \"world\"\n");
    assert_str(doc, "choices.0.message.reasoning_content", "Let me think.");
    assert_null(get(doc, "choices.0.message.tool_calls"));
    assert_null(get(doc, "choices.0.message.refusal"));
    assert_true(cJSON_IsNull(get(doc, "choices.0.logprobs")));
    assert_str(doc, "choices.0.finish_reason", "stop");
    assert_num(doc, "usage.prompt_tokens", 9);
    assert_num(doc, "usage.total_tokens", 21);
    assert_num(doc, "usage.completion_tokens_details.reasoning_tokens", 5);
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_reasoning_alias_and_no_fingerprint(void **state)
{
    static const char *const chunks[] = {
        "{\"id\":\"g\",\"model\":\"m\",\"choices\":[{\"delta\":{\"reasoning\":\"r1\"}}]}",
        /* both names for the same text in one delta: counted once */
        "{\"choices\":[{\"delta\":{\"reasoning\":\"r2\",\"reasoning_content\":\"r2\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"c\"},\"finish_reason\":\"length\"}]}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_str(doc, "choices.0.message.reasoning_content", "r1r2");
    assert_str(doc, "choices.0.message.content", "c");
    assert_str(doc, "choices.0.finish_reason", "length");
    assert_null(get(doc, "system_fingerprint"));
    assert_null(get(doc, "usage"));
    assert_true(cJSON_IsNumber(get(doc, "created")));
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_tool_calls_by_index(void **state)
{
    static const char *const chunks[] = {
        "{\"id\":\"t\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":"
        "{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\"\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"{\\\"city\\\":\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":"
        "{\"arguments\":\":\\\"UTC\\\"}\"}},{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}",
        /* a server that repeats the name in every delta */
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"name\":\"get_weather\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_true(cJSON_IsNull(get(doc, "choices.0.message.content")));
    assert_int_equal(cJSON_GetArraySize(get(doc, "choices.0.message.tool_calls")), 2);
    assert_str(doc, "choices.0.message.tool_calls.0.id", "call_a");
    assert_str(doc, "choices.0.message.tool_calls.0.type", "function");
    assert_str(doc, "choices.0.message.tool_calls.0.function.name", "get_weather");
    assert_str(doc, "choices.0.message.tool_calls.0.function.arguments", "{\"city\":\"Paris\"}");
    assert_str(doc, "choices.0.message.tool_calls.1.id", "call_b");
    assert_str(doc, "choices.0.message.tool_calls.1.function.name", "get_time");
    assert_str(doc, "choices.0.message.tool_calls.1.function.arguments", "{\"tz\":\"UTC\"}");
    assert_str(doc, "choices.0.finish_reason", "tool_calls");
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_tool_calls_without_index(void **state)
{
    static const char *const chunks[] = {
        "{\"choices\":[{\"delta\":{\"content\":\"Checking.\",\"tool_calls\":[{\"id\":\"x1\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"}\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"x2\",\"function\":{\"name\":\"g\","
        "\"arguments\":\"[]\"}}]}}]}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    /* text beside tool calls stays a string */
    assert_str(doc, "choices.0.message.content", "Checking.");
    assert_int_equal(cJSON_GetArraySize(get(doc, "choices.0.message.tool_calls")), 2);
    assert_str(doc, "choices.0.message.tool_calls.0.function.arguments", "{}");
    assert_str(doc, "choices.0.message.tool_calls.1.id", "x2");
    assert_str(doc, "choices.0.message.tool_calls.1.function.name", "g");
    assert_true(cJSON_IsNull(get(doc, "choices.0.finish_reason")));
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_function_call_and_refusal(void **state)
{
    static const char *const chunks[] = {
        "{\"choices\":[{\"delta\":{\"function_call\":{\"name\":\"lookup\",\"arguments\":\"\"}}}]}",
        "{\"choices\":[{\"delta\":{\"function_call\":{\"arguments\":\"{}\"}},"
        "\"finish_reason\":\"function_call\"}]}",
        "{\"choices\":[{\"index\":1,\"delta\":{\"refusal\":\"I can't\"}}]}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_true(cJSON_IsNull(get(doc, "choices.0.message.content")));
    assert_str(doc, "choices.0.message.function_call.name", "lookup");
    assert_str(doc, "choices.0.message.function_call.arguments", "{}");
    assert_str(doc, "choices.1.message.refusal", "I can't");
    assert_str(doc, "choices.1.message.content", "");
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_choices_in_index_order(void **state)
{
    static const char *const chunks[] = {
        "{\"choices\":[{\"index\":2,\"delta\":{\"content\":\"two\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"zero\"}},"
        "{\"index\":2,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_int_equal(cJSON_GetArraySize(get(doc, "choices")), 2);
    assert_num(doc, "choices.0.index", 0);
    assert_str(doc, "choices.0.message.content", "zero");
    assert_num(doc, "choices.1.index", 2);
    assert_str(doc, "choices.1.message.content", "two!");
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_completion(void **state)
{
    static const char *const chunks[] = {
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"text\":\"Once\",\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\" upon\",\"finish_reason\":\"length\"}]}",
        "{\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
        "{\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3}}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_COMPLETION, 0);
    feed_all(a, chunks);
    cJSON *doc = finish(a);
    assert_str(doc, "object", "text_completion");
    assert_str(doc, "choices.0.text", "Once upon");
    assert_null(get(doc, "choices.0.message"));
    assert_str(doc, "choices.0.finish_reason", "length");
    assert_num(doc, "usage.completion_tokens", 3); /* the last usage wins */
    cJSON_Delete(doc);
    assemble_free(a);
}

static void test_errors_and_bounds(void **state)
{
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 1000);
    assert_int_equal(feed(a, "{\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}"), 0);
    assert_int_equal(feed(a, "{\"choices\":["), -EINVAL);
    assert_int_equal(feed(a, "[1,2]"), -EINVAL);
    assert_int_equal(feed(a, "{\"choices\":[{\"index\":128,\"delta\":{}}]}"), -ERANGE);
    assert_int_equal(feed(a, "{\"choices\":[{\"index\":-1,\"delta\":{}}]}"), -ERANGE);
    assert_int_equal(feed(a, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1000}]}}]}"), -ERANGE);
    char chunk[1200];
    strcpy(chunk, "{\"choices\":[{\"delta\":{\"content\":\"");
    size_t n = strlen(chunk);
    memset(chunk + n, 'x', 900);
    strcpy(chunk + n + 900, "\"}}]}");
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = feed(a, chunk);
    assert_int_equal(rc, -ENOBUFS);
    /* what came before is still there */
    cJSON *doc = finish(a);
    const cJSON *content = get(doc, "choices.0.message.content");
    assert_true(cJSON_IsString(content));
    assert_true(strncmp(content->valuestring, "ok", 2) == 0);
    assert_true(strlen(content->valuestring) <= 1000);
    cJSON_Delete(doc);

    /* the output buffer's own bound holds too */
    struct buf small;
    buf_init(&small, 32);
    assert_int_equal(assemble_finish(a, &small), -ENOBUFS);
    buf_free(&small);
    assemble_free(a);
    assemble_free(NULL);
}

static void test_many_tool_calls_bounded(void **state)
{
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 1 << 20);
    char chunk[128];
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        snprintf(chunk, sizeof chunk,
                 "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"c%d\",\"function\":{\"name\":\"f\"}}]}}]}",
                 i);
        rc = feed(a, chunk);
    }
    assert_int_equal(rc, -ERANGE);
    cJSON *doc = finish(a);
    assert_int_equal(cJSON_GetArraySize(get(doc, "choices.0.message.tool_calls")),
                     ASSEMBLE_MAX_TOOL_CALLS);
    cJSON_Delete(doc);
    assemble_free(a);
}

/* No usage chunk (an older llama.cpp): the estimate the proxy sets is in the answer. */
static void test_estimated_usage(void **state)
{
    static const char *const chunks[] = {
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}",
        NULL,
    };
    struct assemble *a = assemble_new(ASSEMBLE_CHAT, 0);
    feed_all(a, chunks);
    assert_false(assemble_has_usage(a));
    cJSON *doc = finish(a);
    assert_null(get(doc, "usage"));
    cJSON_Delete(doc);
    assemble_set_estimated_usage(a, 7, 2);
    doc = finish(a);
    assert_num(doc, "usage.prompt_tokens", 7);
    assert_num(doc, "usage.completion_tokens", 2);
    assert_num(doc, "usage.total_tokens", 9);
    assert_true(cJSON_IsTrue(get(doc, "usage.estimated")));
    cJSON_Delete(doc);
    assemble_free(a);

    /* a whole answer: usage absent, or null, becomes the estimate; the rest stays */
    static const char *const bodies[] = {
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"hi\"}}]}",
        "{\"id\":\"x\",\"usage\":null,\"choices\":[{\"index\":0,\"message\":{\"content\":\"hi\"}}]}",
    };
    for (size_t i = 0; i < 2; i++) {
        struct buf out;
        buf_init(&out, 0);
        assert_int_equal(assemble_add_estimated_usage(bodies[i], strlen(bodies[i]), 3, 1, &out), 0);
        doc = cJSON_ParseWithLength(out.data, out.len);
        assert_non_null(doc);
        assert_str(doc, "choices.0.message.content", "hi");
        assert_num(doc, "usage.total_tokens", 4);
        assert_int_equal(cJSON_GetArraySize(doc), 3);
        cJSON_Delete(doc);
        buf_free(&out);
    }
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(assemble_add_estimated_usage("{}", 2, 1, 0, &out), 0);
    assert_string_equal(out.data, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0,\"total_tokens\":1,"
                                  "\"estimated\":true}}");
    buf_reset(&out);
    assert_int_equal(assemble_add_estimated_usage("[1]", 3, 1, 0, &out), -EINVAL);
    buf_free(&out);
}

/* A stream assembled with the shortcuts for chunks shaped like the last one or like one kept
   across streams, and by walking every chunk: the same answer, byte for byte, and the same
   verdict for each chunk. Returns the chunks walked with the shortcuts. */
static void check_same(struct assemble *x, struct assemble *walk, const char *how)
{
    struct buf a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    assert_int_equal(assemble_finish(x, &a), 0);
    assert_int_equal(assemble_finish(walk, &b), 0);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        fail_msg("%s: %.*s\nwalked: %.*s", how, (int)a.len, a.data, (int)b.len, b.data);
    buf_free(&a);
    buf_free(&b);
}

/* Also fed as the relay feeds it, each valid chunk after the relay's scan
   (assemble_feed_scanned), with the chunks kept across streams the scan's own. */
static unsigned check_shortcut(const char *const *chunks, size_t max_bytes)
{
    struct assemble *fast = assemble_new(ASSEMBLE_CHAT, max_bytes);
    struct assemble *walk = assemble_new(ASSEMBLE_CHAT, max_bytes);
    struct assemble *relayed = assemble_new(ASSEMBLE_CHAT, max_bytes);
    assert_non_null(fast);
    assert_non_null(walk);
    assert_non_null(relayed);
    assemble_walk_always(walk);
    struct chunk_shape_scan scan;
    memset(&scan, 0, sizeof scan);
    chunk_shape_scan_reset(&scan);
    for (size_t i = 0; chunks[i]; i++) {
        size_t n = strlen(chunks[i]);
        int rf = feed(fast, chunks[i]), rw = feed(walk, chunks[i]);
        if (rf != rw)
            fail_msg("chunk %zu (%s): %d with the shortcut, %d walked", i, chunks[i], rf, rw);
        struct jsonx_chunk c;
        int rr = chunk_shape_scan(&scan, chunks[i], n, &c) == 0
                     ? assemble_feed_scanned(relayed, chunks[i], n, &scan)
                     : feed(relayed, chunks[i]);
        if (rr != rw) fail_msg("chunk %zu (%s): %d relayed, %d walked", i, chunks[i], rr, rw);
    }
    check_same(fast, walk, "shortcut");
    check_same(relayed, walk, "relayed");
    unsigned walks = assemble_walks(fast);
    assemble_free(fast);
    assemble_free(walk);
    assemble_free(relayed);
    return walks;
}

#define CH(delta)                                                                                  \
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","           \
    "\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":null}]}"
#define CHN(n, delta) "{\"id\":\"c1\",\"choices\":[{\"index\":" #n ",\"delta\":" delta "}]}"

static void test_shortcut_same_as_walk(void **state)
{
    (void)state;
    const char *content[] = {
        CH("{\"role\":\"assistant\",\"content\":\"\"}"),
        CH("{\"content\":\"Hel\"}"),
        CH("{\"content\":\"lo \\\"w\\u00e9\\\" \"}"),
        CH("{\"content\":\"\"}"),
        CH("{\"content\":\"!\"}"),
        CH("{\"content\":\"\\ud83d\\ude00\"}"),
        CH("{\"content\":\"\\/\"}"),
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}}",
        "[DONE]",
        NULL};
    check_shortcut(content, 0);
    /* a random pad after the text in every chunk (OpenAI's "obfuscation") */
    const char *padded[] = {"{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                            "\"assistant\",\"content\":\"\"}}],\"obfuscation\":\"Zk\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                            "\"He\"}}],\"obfuscation\":\"a9Xq\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                            "\"llo\"}}],\"obfuscation\":\"\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" "
                            "there\"}}],\"obfuscation\":\"b\\n\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}"
                            "}],\"obfuscation\":\"b\",\"model\":\"late\"}",
                            "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"?\"}"
                            "}],\"obfuscation\":\"bb\",\"model\":\"late\"}",
                            NULL};
    check_shortcut(padded, 0);
    const char *reasoning[] = {
        CH("{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"Th\"}"),
        CH("{\"content\":null,\"reasoning_content\":\"ink\"}"),
        CH("{\"content\":null,\"reasoning_content\":\"ing\"}"),
        CH("{\"content\":\"Yes\",\"reasoning_content\":null}"),
        CH("{\"content\":\".\",\"reasoning_content\":null}"),
        /* both names for one text: one is taken, never twice */
        CH("{\"reasoning_content\":\"a\",\"reasoning\":\"a\"}"),
        CH("{\"reasoning_content\":\"b\",\"reasoning\":\"b\"}"), NULL};
    check_shortcut(reasoning, 0);
    const char *tools[] = {
        CH("{\"tool_calls\":[{\"index\":0,\"id\":\"t0\",\"type\":\"function\",\"function\":{"
           "\"name\":\"f\",\"arguments\":\"\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":1}\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":1,\"id\":\"t1\",\"function\":{\"name\":\"g\",\"arguments\":"
           "\"{\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"}\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" \"}}]}"),
        /* a server that repeats the name in every delta: appended once */
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"h\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"h\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"i\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"hi\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"j\",\"arguments\":\"1\"}}]}"),
        CH("{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"j\",\"arguments\":\"2\"}}]}"),
        CH("{\"function_call\":{\"name\":\"old\",\"arguments\":\"x\"}}"),
        CH("{\"function_call\":{\"arguments\":\"y\"}}"),
        CH("{\"function_call\":{\"arguments\":\"z\"}}"), NULL};
    check_shortcut(tools, 0);
    /* two choices in turn; a member after the text; a chunk that adds two texts */
    const char *choices[] = {
        CHN(0, "{\"content\":\"a\"}"),
        CHN(1, "{\"content\":\"b\"}"),
        CHN(0, "{\"content\":\"c\"}"),
        CHN(0, "{\"content\":\"d\"}"),
        CHN(1, "{\"content\":\"e\"}"),
        CHN(1, "{\"content\":\"f\"}"),
        "{\"choices\":[{\"delta\":{\"content\":\"g\"}}],\"id\":\"late\",\"model\":\"m2\"}",
        "{\"choices\":[{\"delta\":{\"content\":\"hij\"}}],\"id\":\"late\",\"model\":\"m2\"}",
        CHN(0, "{\"refusal\":\"no\",\"content\":\"k\"}"),
        CHN(0, "{\"refusal\":\"no\",\"content\":\"l\"}"),
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"m\"}},{\"index\":1,\"delta\":{}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"n\"}},{\"index\":1,\"delta\":{}}]}",
        NULL};
    check_shortcut(choices, 0);
    /* a choice added after the text in the same chunk (the texts move) */
    const char *grow[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"m\"}},{\"index\":3,\"delta\":{}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"n\"}},{\"index\":3,\"delta\":{}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"o\"}},{\"index\":3,\"delta\":{}}]}",
        NULL};
    check_shortcut(grow, 0);
    /* broken texts in a kept shape: refused alike, and nothing of them kept */
    const char *broken[] = {CH("{\"content\":\"ok\"}"),      CH("{\"content\":\"bad\\x\"}"),
                            CH("{\"content\":\"ctl\x01\"}"), CH("{\"content\":\"cut\\u12\"}"),
                            CH("{\"content\":\"ok2\"}"),     NULL};
    check_shortcut(broken, 0);
    /* the bound is met on a chunk the shortcut takes */
    const char *bound[] = {CH("{\"content\":\"0123456789\"}"), CH("{\"content\":\"0123456789\"}"),
                           CH("{\"content\":\"0123456789\"}"), CH("{\"content\":\"0123456789\"}"),
                           CH("{\"content\":\"x\"}"),          NULL};
    check_shortcut(bound, 200);
}

/* The next stream's role chunk, first text and finish are the last one's with another id,
   "created", text and pad: not walked, and assembled as the walk assembles them. */
static void test_shortcut_across_streams(void **state)
{
    (void)state;
    assemble_shared_clear();
    assert_int_equal(check_shortcut(stream_first, 0), 4); /* all but the second text */
    assert_int_equal(check_shortcut(stream_next, 0), 1);  /* the usage: its numbers are not parts */
    /* an empty first text and id, a negative "created": the same ops, their own effects */
    const char *empty[] = {
        STREAM_CHUNK("", "-1",
                     "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"obfuscation\":\"\"}"),
        STREAM_CHUNK("", "-1", "\"delta\":{\"content\":\"\"}}],\"obfuscation\":\"\"}"),
        STREAM_CHUNK("c3", "2", "\"delta\":{\"content\":\"x\"}}],\"obfuscation\":\"\"}"),
        STREAM_CHUNK("c3", "2", "\"delta\":{},\"finish_reason\":\"stop\"}],\"obfuscation\":\"\"}"),
        NULL};
    assert_int_equal(check_shortcut(empty, 0), 0);
    /* a choice that is new in one stream and continued in the next, tool calls (never kept) */
    const char *tools[] = {
        STREAM_CHUNK(
            "t1", "5",
            "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\","
            "\"arguments\":\"\"}}]}}]}"),
        STREAM_CHUNK(
            "t1", "5",
            "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}"),
        NULL};
    assert_int_equal(check_shortcut(tools, 0), 2);
    assert_int_equal(check_shortcut(tools, 0), 2);
    /* where the ops could pass max_bytes the chunk is walked, to fail as the walk fails: all
       here, where the id does not fit */
    struct assemble *small = assemble_new(ASSEMBLE_CHAT, 150);
    int refused = 0;
    for (size_t i = 0; stream_next[i]; i++)
        refused += feed(small, stream_next[i]) == -ENOBUFS;
    assemble_free(small);
    assert_true(refused > 0);
    assert_int_equal(check_shortcut(stream_next, 150), 5);
    assert_int_equal(check_shortcut(stream_next, 2048), 0); /* its usage kept by the last */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_text_and_usage),
        cmocka_unit_test(test_reasoning_alias_and_no_fingerprint),
        cmocka_unit_test(test_tool_calls_by_index),
        cmocka_unit_test(test_tool_calls_without_index),
        cmocka_unit_test(test_function_call_and_refusal),
        cmocka_unit_test(test_choices_in_index_order),
        cmocka_unit_test(test_completion),
        cmocka_unit_test(test_errors_and_bounds),
        cmocka_unit_test(test_many_tool_calls_bounded),
        cmocka_unit_test(test_estimated_usage),
        cmocka_unit_test(test_shortcut_same_as_walk),
        cmocka_unit_test(test_shortcut_across_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
