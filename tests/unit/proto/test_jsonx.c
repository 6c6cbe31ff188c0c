#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "base/buf.h"
#include "proto/jsonx.h"

static int scan(const char *s, struct jsonx_request *r)
{
    return jsonx_scan_request(s, strlen(s), r);
}

static char *span_dup(const char *s, struct jsonx_span sp)
{
    char *p = malloc(sp.end - sp.start + 1);
    memcpy(p, s + sp.start, sp.end - sp.start);
    p[sp.end - sp.start] = '\0';
    return p;
}

static void assert_span(const char *s, struct jsonx_span sp, const char *want)
{
    char *got = span_dup(s, sp);
    assert_string_equal(got, want);
    free(got);
}

static void test_scan_fields(void **state)
{
    const char *body = "{ \"model\" : \"gpt-4o\", \"stream\": true,\n"
                       "  \"stream_options\": {\"include_usage\": true, \"x\": 1},\n"
                       "  \"max_tokens\": 512, \"tools\": [{\"type\":\"function\"}],\n"
                       "  \"messages\": [{\"role\":\"system\",\"content\":\"hi\"},\n"
                       "    {\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},"
                       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}}]}],\n"
                       "  \"unknown\": {\"model\": \"nested-is-ignored\"} }";
    struct jsonx_request r;
    assert_int_equal(scan(body, &r), JSONX_OK);
    assert_true(r.has_model);
    assert_string_equal(r.model, "gpt-4o");
    assert_true(r.stream);
    assert_true(r.has_stream_options);
    assert_true(r.include_usage);
    assert_true(r.has_max_tokens);
    assert_int_equal(r.max_tokens, 512);
    assert_true(r.has_tools);
    assert_int_equal(r.n_messages, 2);
    assert_int_equal(r.prompt_chars, 2 + 4);
    assert_span(body, r.model_member, "\"model\" : \"gpt-4o\"");
    assert_span(body, r.stream_member, "\"stream\": true");
    assert_span(body, r.stream_options_member,
                "\"stream_options\": {\"include_usage\": true, \"x\": 1}");
    assert_span(body, r.include_usage_member, "\"include_usage\": true");
    assert_int_equal(r.object.start, 0);
    assert_int_equal(r.object.end, strlen(body));
}

static void test_scan_absent_and_null(void **state)
{
    struct jsonx_request r;
    assert_int_equal(scan("  {}  ", &r), JSONX_OK);
    assert_false(r.has_model);
    assert_string_equal(r.model, "");
    assert_false(r.stream);
    assert_int_equal(r.model_member.end, 0);
    assert_int_equal(r.object.start, 2);
    assert_int_equal(r.object.end, 4);

    assert_int_equal(scan("{\"stream\":null,\"stream_options\":null,\"max_tokens\":null,"
                          "\"tools\":null,\"messages\":null}",
                          &r),
                     JSONX_OK);
    assert_false(r.stream);
    assert_false(r.has_stream_options);
    assert_false(r.has_max_tokens);
    assert_false(r.has_tools);
    assert_true(r.stream_member.end > 0);
    assert_true(r.stream_options_member.end > 0);

    assert_int_equal(scan("{\"stream\":false,\"tools\":[],\"functions\":[]}", &r), JSONX_OK);
    assert_false(r.stream);
    assert_false(r.has_tools);
    assert_int_equal(scan("{\"functions\":[{\"name\":\"f\"}]}", &r), JSONX_OK);
    assert_true(r.has_tools);
}

static void test_scan_escapes(void **state)
{
    struct jsonx_request r;
    /* keys compare unescaped: this is "model" to any JSON parser */
    assert_int_equal(scan("{\"mod\\u0065l\":\"gpt\\u002d4 \\\"q\\\" \\u00e9\\ud83d\\ude00\"}", &r),
                     JSONX_OK);
    assert_true(r.has_model);
    assert_string_equal(r.model, "gpt-4 \"q\" \xC3\xA9\xF0\x9F\x98\x80");
    /* ... so a second spelling of it is a duplicate */
    assert_int_equal(scan("{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", &r), JSONX_ERR_FIELD);
    assert_string_equal(r.bad_field, "model");
    /* a lone surrogate is valid JSON; unescaped it becomes U+FFFD */
    assert_int_equal(scan("{\"model\":\"a\\ud800b\"}", &r), JSONX_OK);
    assert_string_equal(r.model, "a\xEF\xBF\xBD" "b");
}

static void test_scan_field_errors(void **state)
{
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"model\":5}", "model"},
        {"{\"model\":null}", "model"},
        {"{\"model\":\"a\\u0000b\"}", "model"},
        {"{\"model\":\"a\",\"model\":\"a\"}", "model"},
        {"{\"stream\":\"yes\"}", "stream"},
        {"{\"stream\":1}", "stream"},
        {"{\"stream\":true,\"stream\":true}", "stream"},
        {"{\"stream_options\":[]}", "stream_options"},
        {"{\"stream_options\":{},\"stream_options\":{}}", "stream_options"},
        {"{\"stream_options\":{\"include_usage\":1}}", "stream_options.include_usage"},
        {"{\"max_tokens\":1.5}", "max_tokens"},
        {"{\"max_tokens\":-1}", "max_tokens"},
        {"{\"max_tokens\":\"10\"}", "max_tokens"},
        {"{\"max_tokens\":1e3}", "max_tokens"},
        {"{\"max_tokens\":99999999999999999999}", "max_tokens"},
        {"{\"max_completion_tokens\":true}", "max_completion_tokens"},
        {"{\"tools\":{}}", "tools"},
        {"{\"functions\":\"f\"}", "functions"},
        {"{\"messages\":{}}", "messages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jsonx_request r;
        int rc = scan(cases[i].body, &r);
        if (rc != JSONX_ERR_FIELD || strcmp(r.bad_field, cases[i].field) != 0)
            fail_msg("%s: rc %d field %s", cases[i].body, rc, rc == JSONX_ERR_FIELD ? r.bad_field : "-");
    }
}

struct field_case {
    const char *body, *field, *code;
};

static void check_field_cases(const struct field_case *cases, size_t n, enum jsonx_api api)
{
    for (size_t i = 0; i < n; i++) {
        struct jsonx_request r;
        int rc = jsonx_scan_api_request(cases[i].body, strlen(cases[i].body), api, &r);
        if (rc != JSONX_ERR_FIELD || strcmp(r.bad_field, cases[i].field) != 0 ||
            strcmp(r.error_code, cases[i].code) != 0 || !r.error[0])
            fail_msg("%s: rc %d field '%s' code %s (%s)", cases[i].body, rc,
                     rc == JSONX_ERR_FIELD ? r.bad_field : "-", rc == JSONX_ERR_FIELD ? r.error_code : "-",
                     rc == JSONX_ERR_FIELD ? r.error : "-");
    }
}

#define CHECK_CASES(cases, api) check_field_cases(cases, sizeof cases / sizeof cases[0], api)

static const char chat_ok[] = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";

/* A key the gateway reads, spelt in another case: an upstream that matches keys
   case-insensitively (Go's encoding/json) would read it. */
static void test_scan_case_folded_keys(void **state)
{
    static const struct field_case cases[] = {
        {"{\"model\":\"m\",\"MODEL\":\"other\"}", "MODEL", "unknown_parameter"},
        {"{\"MODEL\":\"other\",\"model\":\"m\"}", "MODEL", "unknown_parameter"},
        {"{\"Model\":\"m\"}", "Model", "unknown_parameter"},
        /* escaped: the comparison is on the unescaped key */
        {"{\"model\":\"m\",\"\\u004dODEL\":\"other\"}", "MODEL", "unknown_parameter"},
        {"{\"model\":\"m\",\"Stream\":true}", "Stream", "unknown_parameter"},
        {"{\"STREAM_OPTIONS\":{}}", "STREAM_OPTIONS", "unknown_parameter"},
        {"{\"Max_Tokens\":5}", "Max_Tokens", "unknown_parameter"},
        {"{\"MAX_COMPLETION_TOKENS\":5}", "MAX_COMPLETION_TOKENS", "unknown_parameter"},
        {"{\"N\":2}", "N", "unknown_parameter"},
        {"{\"Messages\":[]}", "Messages", "unknown_parameter"},
        {"{\"PROMPT\":\"x\"}", "PROMPT", "unknown_parameter"},
        {"{\"Input\":\"x\"}", "Input", "unknown_parameter"},
        {"{\"Tools\":[{}]}", "Tools", "unknown_parameter"},
        {"{\"FUNCTIONS\":[]}", "FUNCTIONS", "unknown_parameter"},
        /* Go also folds U+017F (long s) to 's' and U+212A (Kelvin sign) to 'k' */
        {"{\"\\u017ftream\":true}", "\xC5\xBFtream", "unknown_parameter"},
        {"{\"\xC5\xBFtream\":true}", "\xC5\xBFtream", "unknown_parameter"},
        {"{\"max_to\\u212Aens\":1}", "max_to\xE2\x84\xAA" "ens", "unknown_parameter"},
        {"{\"stream_options\":{\"Include_Usage\":true}}", "stream_options.Include_Usage",
         "unknown_parameter"},
        {"{\"stream_options\":{\"include_usage\":false,\"INCLUDE_USAGE\":true}}",
         "stream_options.INCLUDE_USAGE", "unknown_parameter"},
    };
    CHECK_CASES(cases, JSONX_API_ANY);

    struct jsonx_request r;
    assert_int_equal(scan("{\"model\":\"m\",\"MODEL\":\"other\"}", &r), JSONX_ERR_FIELD);
    assert_non_null(strstr(r.error, "'MODEL'"));
    assert_non_null(strstr(r.error, "did you mean 'model'"));
    /* near names that fold to none of them pass as the client's own fields */
    assert_int_equal(scan("{\"model\":\"m\",\"models\":1,\"mode\":2,\"model_name\":3,\"NN\":4,"
                          "\"stream_options\":{\"include_usage_x\":1}}",
                          &r),
                     JSONX_OK);
    assert_string_equal(r.model, "m");
}

/* Parsers disagree on which copy of a duplicate key counts: any copy of a field the
   gateway reads or rewrites is refused, null, escaped or exact. */
static void test_scan_duplicates(void **state)
{
    static const struct field_case cases[] = {
        {"{\"model\":\"a\",\"model\":\"b\"}", "model", "duplicate_parameter"},
        {"{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", "model", "duplicate_parameter"},
        {"{\"stream\":null,\"stream\":true}", "stream", "duplicate_parameter"},
        {"{\"stream_options\":null,\"stream_options\":{}}", "stream_options", "duplicate_parameter"},
        {"{\"stream_options\":{\"include_usage\":false,\"include_usage\":true}}",
         "stream_options.include_usage", "duplicate_parameter"},
        {"{\"max_tokens\":null,\"max_tokens\":5}", "max_tokens", "duplicate_parameter"},
        {"{\"max_tokens\":5,\"max_tokens\":500000}", "max_tokens", "duplicate_parameter"},
        {"{\"max_completion_tokens\":5,\"max_completion_tokens\":6}", "max_completion_tokens",
         "duplicate_parameter"},
        {"{\"n\":1,\"n\":100}", "n", "duplicate_parameter"},
        {"{\"messages\":[],\"messages\":[]}", "messages", "duplicate_parameter"},
        {"{\"prompt\":\"a\",\"prompt\":\"b\"}", "prompt", "duplicate_parameter"},
        {"{\"input\":\"a\",\"input\":\"b\"}", "input", "duplicate_parameter"},
        {"{\"tools\":[],\"tools\":[{}]}", "tools", "duplicate_parameter"},
        {"{\"functions\":[],\"functions\":[]}", "functions", "duplicate_parameter"},
    };
    CHECK_CASES(cases, JSONX_API_ANY);
    /* the two token limits are different fields; the newer one wins */
    struct jsonx_request r;
    assert_int_equal(scan("{\"max_completion_tokens\":7,\"max_tokens\":9}", &r), JSONX_OK);
    assert_int_equal(r.max_tokens, 7);
    /* a duplicate of a field the gateway does not read is the client's business */
    assert_int_equal(scan("{\"temperature\":1,\"temperature\":0}", &r), JSONX_OK);
}

static void test_scan_types(void **state)
{
    static const struct field_case cases[] = {
        {"{\"stream\":\"yes\"}", "stream", "invalid_type"},
        {"{\"n\":0}", "n", "integer_below_min_value"},
        {"{\"n\":-3}", "n", "integer_below_min_value"},
        {"{\"n\":1.5}", "n", "invalid_type"},
        {"{\"n\":\"2\"}", "n", "invalid_type"},
        {"{\"n\":1e1}", "n", "invalid_type"},
        {"{\"max_tokens\":-1}", "max_tokens", "integer_below_min_value"},
        {"{\"max_tokens\":99999999999999999999}", "max_tokens", "integer_above_max_value"},
        {"{\"max_completion_tokens\":2.0}", "max_completion_tokens", "invalid_type"},
        {"{\"model\":[]}", "model", "invalid_type"},
    };
    CHECK_CASES(cases, JSONX_API_ANY);

    struct jsonx_request r;
    assert_int_equal(scan("{\"stream\":\"yes\"}", &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Invalid type for 'stream': expected a boolean, but got a string instead.");
    assert_int_equal(scan("{\"n\":0}", &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 "
                                 "instead.");
    assert_int_equal(scan("{\"n\":3,\"max_tokens\":0}", &r), JSONX_OK);
    assert_true(r.has_n);
    assert_int_equal(r.n, 3);
    assert_true(r.has_max_tokens);
    assert_int_equal(r.max_tokens, 0);
    assert_int_equal(scan("{\"n\":null,\"max_tokens\":-0}", &r), JSONX_OK);
    assert_false(r.has_n);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.max_tokens, 0);
}

static void test_scan_required_chat(void **state)
{
    static const struct field_case cases[] = {
        {"{\"messages\":[{\"role\":\"user\"}]}", "model", "missing_required_parameter"},
        {"{\"model\":\"\",\"messages\":[{\"role\":\"user\"}]}", "model", "empty_string"},
        {"{\"model\":\"m\"}", "messages", "missing_required_parameter"},
        {"{\"model\":\"m\",\"messages\":null}", "messages", "missing_required_parameter"},
        {"{\"model\":\"m\",\"messages\":\"hi\"}", "messages", "invalid_type"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty_array"},
        {"{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]", "invalid_type"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role",
         "missing_required_parameter"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":null}]}", "messages[0].role", "missing_required_parameter"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},{\"role\":5}]}", "messages[1].role",
         "invalid_type"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"robot\"}]}", "messages[0].role", "invalid_value"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"User\"}]}", "messages[0].role", "invalid_value"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"role\":\"system\"}]}", "messages[0].role",
         "duplicate_parameter"},
    };
    CHECK_CASES(cases, JSONX_API_CHAT);

    struct jsonx_request r;
    const char *body = "{\"model\":\"m\"}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Missing required parameter: 'messages'.");
    body = "{\"model\":\"m\",\"messages\":\"hi\"}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Invalid type for 'messages': expected an array of objects, but got a string "
                                 "instead.");
    body = "{\"model\":\"m\",\"messages\":[]}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                                 "but got an empty array instead.");
    body = "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\"}]}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.error, "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', "
                                 "'function', 'tool', and 'developer'.");
    /* an odd value is not echoed */
    body = "{\"model\":\"m\",\"messages\":[{\"role\":\"a'b\"}]}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_ERR_FIELD);
    assert_null(strstr(r.error, "a'b"));

    body = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"developer\"},"
           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},{\"role\":\"assistant\","
           "\"content\":null,\"tool_calls\":[]},{\"role\":\"tool\",\"content\":\"r\"},{\"role\":\"function\","
           "\"name\":\"f\",\"content\":\"x\"},{\"ro\\u006ce\":\"user\"}]}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_CHAT, &r), JSONX_OK);
    assert_int_equal(r.n_messages, 7);
    /* the plain scan requires nothing; other endpoints do not look at messages */
    body = "{\"model\":\"m\"}";
    assert_int_equal(jsonx_scan_api_request(body, strlen(body), JSONX_API_ANY, &r), JSONX_OK);
    char chat[200];
    snprintf(chat, sizeof chat, "{\"model\":\"m\",%s}", chat_ok);
    assert_int_equal(jsonx_scan_api_request(chat, strlen(chat), JSONX_API_EMBEDDINGS, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.bad_field, "input");
}

static void test_scan_required_prompt_and_input(void **state)
{
    static const struct field_case completions[] = {
        {"{\"model\":\"m\"}", "prompt", "missing_required_parameter"},
        {"{\"model\":\"m\",\"prompt\":null}", "prompt", "missing_required_parameter"},
        {"{\"model\":\"m\",\"prompt\":{}}", "prompt", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":5}", "prompt", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[]}", "prompt", "empty_array"},
        {"{\"model\":\"m\",\"prompt\":[\"a\",1]}", "prompt[1]", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[1,\"a\"]}", "prompt[1]", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[-1]}", "prompt[0]", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[true]}", "prompt[0]", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[[1,2],[3,\"x\"]]}", "prompt[1][1]", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":[[1],2]}", "prompt[1]", "invalid_type"},
    };
    CHECK_CASES(completions, JSONX_API_COMPLETIONS);
    static const struct field_case embeddings[] = {
        {"{\"model\":\"m\"}", "input", "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":\"\"}", "input", "empty_string"},
        {"{\"model\":\"m\",\"input\":[]}", "input", "empty_array"},
        {"{\"model\":\"m\",\"input\":[\"a\",\"\"]}", "input[1]", "empty_string"},
        {"{\"model\":\"m\",\"input\":[[]]}", "input[0]", "empty_array"},
        {"{\"model\":\"m\",\"input\":{\"text\":\"a\"}}", "input", "invalid_type"},
        {"{\"model\":\"m\",\"prompt\":\"a\"}", "input", "missing_required_parameter"},
    };
    CHECK_CASES(embeddings, JSONX_API_EMBEDDINGS);

    static const char *const completions_ok[] = {
        "{\"model\":\"m\",\"prompt\":\"\"}",        "{\"model\":\"m\",\"prompt\":\"once\"}",
        "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "{\"model\":\"m\",\"prompt\":[1,2,3]}",
        "{\"model\":\"m\",\"prompt\":[[1,2],[3]]}",
    };
    for (size_t i = 0; i < sizeof completions_ok / sizeof completions_ok[0]; i++) {
        struct jsonx_request r;
        if (jsonx_scan_api_request(completions_ok[i], strlen(completions_ok[i]), JSONX_API_COMPLETIONS, &r))
            fail_msg("%s: %s", completions_ok[i], r.error);
    }
    static const char *const embeddings_ok[] = {
        "{\"model\":\"m\",\"input\":\"x\"}",
        "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}",
        "{\"model\":\"m\",\"input\":[[1,2],[3]]}",
    };
    for (size_t i = 0; i < sizeof embeddings_ok / sizeof embeddings_ok[0]; i++) {
        struct jsonx_request r;
        if (jsonx_scan_api_request(embeddings_ok[i], strlen(embeddings_ok[i]), JSONX_API_EMBEDDINGS, &r))
            fail_msg("%s: %s", embeddings_ok[i], r.error);
    }
}

static void test_scan_model_length(void **state)
{
    char body[400], name[300];
    struct jsonx_request r;
    memset(name, 'm', 255);
    name[255] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    assert_int_equal(scan(body, &r), JSONX_OK);
    assert_int_equal(strlen(r.model), 255);
    name[255] = 'm';
    name[256] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    assert_int_equal(scan(body, &r), JSONX_ERR_FIELD);
    assert_string_equal(r.bad_field, "model");
}

static void test_scan_max_tokens_precedence(void **state)
{
    struct jsonx_request r;
    assert_int_equal(scan("{\"max_tokens\":10,\"max_completion_tokens\":20}", &r), JSONX_OK);
    assert_int_equal(r.max_tokens, 20);
    assert_int_equal(scan("{\"max_completion_tokens\":20,\"max_tokens\":10}", &r), JSONX_OK);
    assert_int_equal(r.max_tokens, 20);
    assert_int_equal(scan("{\"max_tokens\":0}", &r), JSONX_OK);
    assert_true(r.has_max_tokens);
    assert_int_equal(r.max_tokens, 0);
    assert_int_equal(scan("{\"max_tokens\":9223372036854775807}", &r), JSONX_OK);
    assert_int_equal(r.max_tokens, INT64_MAX);
}

static void test_scan_prompt_chars(void **state)
{
    struct jsonx_request r;
    assert_int_equal(scan("{\"prompt\":\"12345\"}", &r), JSONX_OK);
    assert_int_equal(r.prompt_chars, 5);
    assert_int_equal(scan("{\"prompt\":[\"12\",\"345\",[1,2]]}", &r), JSONX_OK);
    assert_int_equal(r.prompt_chars, 5);
    assert_int_equal(scan("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
                          "\"text\":\"1234\"}]},\"xy\"]}",
                          &r),
                     JSONX_OK);
    assert_int_equal(r.prompt_chars, 6);
    /* tool results and assistant turns count; non-string content does not */
    assert_int_equal(scan("{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
                          "{\"role\":\"tool\",\"content\":\"abc\"},7]}",
                          &r),
                     JSONX_OK);
    assert_int_equal(r.n_messages, 3);
    assert_int_equal(r.prompt_chars, 3);
}

static void test_scan_syntax(void **state)
{
    static const char *bad[] = {
        "", "   ", "{", "}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{\"a\":[1,,2]}",
        "{\"a\":[1,2,]}", "{\"a\":nul}", "{\"a\":nulll}", "{\"a\":tru}", "{\"a\":01}",
        "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":0x10}",
        "{\"a\":\"x\ty\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":1}x", "{\"a\":1}{}",
        "{'a':1}", "{\"a\":[}]", "{1:2}", "{\"a\":1:2}", "{\"x\":[\"a\":1]}", "{,}",
        "{\"a\":,1}", "{\"a\"}", "{\"a\":}", "{\"a\":1,,\"b\":2}", "{\"a\":{\"b\":1}", "[",
        "{\"a\":\"unterminated}", "{\"a\":[1 2]}", "{\"a\":\"b\" \"c\"}", "{:1}",
        "{\"a\":1}]", "{\"a\":true false}", "\"str", "123", "1 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct jsonx_request r;
        int rc = scan(bad[i], &r);
        if (rc != JSONX_ERR_SYNTAX)
            fail_msg("accepted or wrong error %d: %s", rc, bad[i]);
    }
    /* a NUL byte is never JSON */
    struct jsonx_request r;
    assert_int_equal(jsonx_scan_request("{\"a\":1}\0", 8, &r), JSONX_ERR_SYNTAX);
    assert_int_equal(jsonx_scan_request("{\"a\":\"x\0y\"}", 11, &r), JSONX_ERR_SYNTAX);
    /* valid but not an object */
    assert_int_equal(scan("[1,2]", &r), JSONX_ERR_NOT_OBJECT);
    assert_int_equal(scan(" [] ", &r), JSONX_ERR_NOT_OBJECT);
    assert_int_equal(scan("\"str\"", &r), JSONX_ERR_NOT_OBJECT);
}

/* Control characters and escapes at every offset of a long string (the
 * string check strides 8 bytes at a time). */
static void test_scan_string_offsets(void **state)
{
    for (size_t at = 0; at < 40; at++) {
        char body[64], val[41];
        memset(val, 'a', 40);
        val[40] = '\0';
        struct jsonx_request r;
        for (int c = 1; c < 0x20; c += 7) {
            val[at] = (char)c;
            snprintf(body, sizeof body, "{\"k\":\"%s\"}", val);
            assert_int_equal(scan(body, &r), JSONX_ERR_SYNTAX);
        }
        val[at] = '\\';
        snprintf(body, sizeof body, "{\"k\":\"%s\"}", val);
        /* "\a" is not an escape; "\"" at the end leaves the string open */
        assert_int_equal(scan(body, &r), JSONX_ERR_SYNTAX);
        if (at + 1 < 40) {
            val[at + 1] = 'n';
            snprintf(body, sizeof body, "{\"k\":\"%s\"}", val);
            assert_int_equal(scan(body, &r), JSONX_OK);
            val[at + 1] = 'a';
        }
        val[at] = 'a';
    }
}

static void test_scan_valid_shapes(void **state)
{
    static const char *good[] = {
        "{\"a\":-0}", "{\"a\":1e10}", "{\"a\":1.5E-3}", "{\"a\":-12.25e+2}", "{\"a\":0.0}",
        "{\"a\":[]}", "{\"a\":[[],{}]}", "{\"\":\"\"}", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        " \t\r\n{ \"a\" \n:\r[ 1 , true , false , null , \"x\" ] }\n ", "{\"a\":\"\xE4\xBD\xA0\"}",
        "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct jsonx_request r;
        int rc = scan(good[i], &r);
        if (rc != JSONX_OK)
            fail_msg("rejected (%d): %s", rc, good[i]);
    }
}

static char *nested(int depth)
{
    /* {"a": then depth-1 arrays */
    char *s = malloc((size_t)depth * 2 + 16);
    size_t n = 0;
    n += (size_t)sprintf(s, "{\"a\":");
    for (int i = 1; i < depth; i++)
        s[n++] = '[';
    for (int i = 1; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void test_scan_depth(void **state)
{
    struct jsonx_request r;
    char *s = nested(JSONX_MAX_DEPTH);
    assert_int_equal(scan(s, &r), JSONX_OK);
    free(s);
    s = nested(JSONX_MAX_DEPTH + 1);
    assert_int_equal(scan(s, &r), JSONX_ERR_TOO_DEEP);
    free(s);
    s = nested(5000);
    assert_int_equal(scan(s, &r), JSONX_ERR_TOO_DEEP);
    free(s);
}

/* A chat body of about `approx` bytes with many messages (many tokens). */
static char *big_body(size_t approx, size_t *len, size_t *n_messages)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"messages\":[");
    size_t n = 0;
    while (b.len < approx) {
        buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"message number %zu \\u00e9\"}",
                   n ? "," : "", n);
        n++;
    }
    buf_append_str(&b, "],\"model\":\"client-model\",\"temperature\":0.7}");
    *n_messages = n;
    return buf_steal(&b, len);
}

static void test_scan_large(void **state)
{
    size_t len, n;
    char *body = big_body(100000, &len, &n);
    struct jsonx_request r;
    assert_int_equal(jsonx_scan_request(body, len, &r), JSONX_OK);
    assert_int_equal(r.n_messages, n);
    assert_string_equal(r.model, "client-model");
    assert_true(r.prompt_chars > n * 16);
    free(body);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Shapes on which a naive tokenizer goes quadratic: a long array of small
 * objects, and deep nesting. Linear takes milliseconds; quadratic, minutes. */
static void test_scan_pathological_is_linear(void **state)
{
    size_t n = 1000000;
    char *b = malloc(3 * n + 16);
    size_t len = (size_t)sprintf(b, "{\"a\":[{}");
    for (size_t i = 1; i < n; i++, len += 3)
        memcpy(b + len, ",{}", 3);
    len += (size_t)sprintf(b + len, "]}");
    struct jsonx_request r;
    double t0 = now_ms();
    assert_int_equal(jsonx_scan_request(b, len, &r), JSONX_OK);
    double elapsed = now_ms() - t0;
    if (elapsed > 2000)
        fail_msg("3 MB of small objects took %.0f ms", elapsed);

    len = (size_t)sprintf(b, "{\"a\":");
    for (size_t i = 0; i < n; i++)
        b[len++] = '[';
    for (size_t i = 0; i < n; i++)
        b[len++] = ']';
    b[len++] = '}';
    t0 = now_ms();
    assert_int_equal(jsonx_scan_request(b, len, &r), JSONX_ERR_TOO_DEEP);
    elapsed = now_ms() - t0;
    if (elapsed > 2000)
        fail_msg("2 MB of nesting took %.0f ms", elapsed);
    /* brackets inside strings are not nesting */
    len = (size_t)sprintf(b, "{\"a\":\"");
    for (size_t i = 0; i < 100; i++)
        b[len++] = '[';
    len += (size_t)sprintf(b + len, "\\\"[[[\\\\\"}");
    assert_int_equal(jsonx_scan_request(b, len, &r), JSONX_OK);
    free(b);
}

/* Rewrite, check the output is JSON to cJSON and scans back as intended. */
static char *rewrite(const char *body, const char *model, bool force)
{
    struct jsonx_request r;
    assert_int_equal(jsonx_scan_request(body, strlen(body), &r), JSONX_OK);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(jsonx_rewrite_request(body, strlen(body), &r, model, force, &out), 0);
    cJSON *doc = cJSON_ParseWithLength(out.data, out.len);
    if (!doc)
        fail_msg("not JSON: %s", out.data);
    if (model) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "model");
        assert_true(cJSON_IsString(m));
        assert_string_equal(m->valuestring, model);
    }
    if (force) {
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "stream")));
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(doc, "stream_options");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage")));
    }
    cJSON_Delete(doc);
    struct jsonx_request again;
    assert_int_equal(jsonx_scan_request(out.data, out.len, &again), JSONX_OK);
    if (model)
        assert_string_equal(again.model, model);
    if (force) {
        assert_true(again.stream);
        assert_true(again.include_usage);
    }
    return buf_steal(&out, NULL);
}

#define ASSERT_REWRITE(body, model, force, want)                                                   \
    do {                                                                                           \
        char *got_ = rewrite(body, model, force);                                                  \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_rewrite_model(void **state)
{
    ASSERT_REWRITE("{ \"model\" : \"alias\" , \"temperature\": 1.50, \"x\":[1, 2] }", "real-m", false,
                   "{ \"model\":\"real-m\" , \"temperature\": 1.50, \"x\":[1, 2] }");
    ASSERT_REWRITE("{\"temperature\":1e2}", "m", false, "{\"model\":\"m\",\"temperature\":1e2}");
    ASSERT_REWRITE("{}", "m", false, "{\"model\":\"m\"}");
    ASSERT_REWRITE(" { \n } ", "m", false, " {\"model\":\"m\" \n } ");
    ASSERT_REWRITE("{\"model\":\"a\"}", "q\"uo\\te\n\x01", false,
                   "{\"model\":\"q\\\"uo\\\\te\\n\\u0001\"}");
    /* no model given: the bytes are the same */
    ASSERT_REWRITE("{ \"model\":\"a\", \"stream\":false }", NULL, false,
                   "{ \"model\":\"a\", \"stream\":false }");
}

static void test_rewrite_stream(void **state)
{
    ASSERT_REWRITE("{}", "m", true,
                   "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    ASSERT_REWRITE("{\"model\":\"a\",\"stream\":false,\"n\":1}", "m", true,
                   "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true,"
                   "\"n\":1}");
    /* already right: left alone */
    ASSERT_REWRITE("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", NULL, true,
                   "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    /* stream_options with other keys keeps them */
    ASSERT_REWRITE("{\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":true}}", NULL,
                   true,
                   "{\"stream\":true,\"stream_options\":{\"include_usage\":true,"
                   "\"continuous_usage_stats\":true}}");
    ASSERT_REWRITE("{\"stream\":true,\"stream_options\":{ }}", NULL, true,
                   "{\"stream\":true,\"stream_options\":{\"include_usage\":true }}");
    ASSERT_REWRITE("{\"stream\":true,\"stream_options\":{\"a\":1, \"include_usage\" : false,\"b\":2}}",
                   NULL, true,
                   "{\"stream\":true,\"stream_options\":{\"a\":1, \"include_usage\":true,\"b\":2}}");
    ASSERT_REWRITE("{\"stream_options\":null,\"stream\":null}", NULL, true,
                   "{\"stream_options\":{\"include_usage\":true},\"stream\":true}");
    ASSERT_REWRITE("{\"stream_options\":{\"include_usage\":null}}", "m", true,
                   "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

static void test_rewrite_pretty_and_large(void **state)
{
    const char *pretty = "{\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ],\n"
                         "  \"stream_options\": {\n    \"x\": [1, {\"include_usage\": false}]\n  },\n"
                         "  \"model\": \"gpt\"\n}\n";
    char *out = rewrite(pretty, "deepseek-reasoner", true);
    /* the nested include_usage is not the member to set */
    assert_non_null(strstr(out, "{\"include_usage\": false}"));
    free(out);

    size_t len, n;
    char *body = big_body(100000, &len, &n);
    out = rewrite(body, "deepseek-chat", true);
    /* everything up to the model member is the client's bytes */
    const char *m = strstr(body, "\"model\":\"client-model\"");
    size_t head = (size_t)(m - body);
    assert_int_equal(memcmp(out + strlen("{\"stream\":true,\"stream_options\":{\"include_usage\":true},"),
                            body + 1, head - 1),
                     0);
    free(out);
    free(body);
}

static void test_rewrite_limits_and_misuse(void **state)
{
    const char *body = "{\"model\":\"a\",\"messages\":[]}";
    struct jsonx_request r;
    assert_int_equal(scan(body, &r), JSONX_OK);
    struct buf out;
    buf_init(&out, 16);
    assert_int_equal(jsonx_rewrite_request(body, strlen(body), &r, "m", true, &out), -ENOBUFS);
    buf_free(&out);
    buf_init(&out, 0);
    /* a scan of another body does not fit this one */
    assert_int_equal(jsonx_rewrite_request("{}", 2, &r, "m", true, &out), -EINVAL);
    buf_free(&out);
}

static void test_chunk_content(void **state)
{
    static const struct {
        const char *json;
        bool content, finish;
        size_t chars; /* content_chars */
    } cases[] = {
        {"{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}", false, false, 0},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}", false, false, 0},
        {"{\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}", true, false, 2},
        {"{\"choices\":[{\"delta\":{\"content\":null,\"reasoning_content\":\"think\"}}]}", true, false, 5},
        {"{\"choices\":[{\"delta\":{\"reasoning\":\"think\"}}]}", true, false, 5},
        {"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\"}}]}}]}", true, false, 0},
        {"{\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}", false, false, 0},
        {"{\"choices\":[{\"delta\":{\"function_call\":{\"name\":\"f\"}}}]}", true, false, 1},
        {"{\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}", true, false, 2},
        {"{\"choices\":[{\"text\":\"legacy\",\"index\":0}]}", true, false, 6},
        {"{\"choices\":[{\"text\":\"\",\"index\":0}]}", false, false, 0},
        {"{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}", true, true, 0},
        {"{\"choices\":[{\"delta\":{\"content\":\"\"}},{\"delta\":{\"content\":\"b\"}}]}", true, false, 1},
        {"{\"choices\":[{\"message\":{\"content\":\"whole\"}}]}", true, false, 5},
        {"{\"choices\":[{\"delta\":{\"reasoning_content\":\"abc\",\"reasoning\":\"abc\"}}]}", true, false, 3},
        {"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}",
         true, false, 12},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jsonx_chunk c;
        assert_int_equal(jsonx_scan_chunk(cases[i].json, strlen(cases[i].json), &c), JSONX_OK);
        assert_true(c.valid);
        if (c.has_content != cases[i].content || c.has_finish != cases[i].finish)
            fail_msg("%s: content %d finish %d", cases[i].json, c.has_content, c.has_finish);
        if (c.content_chars != cases[i].chars)
            fail_msg("%s: content_chars %zu", cases[i].json, c.content_chars);
        assert_false(c.has_usage);
        assert_false(c.choices_empty);
    }
}

static void test_chunk_usage(void **state)
{
    const char *openai = "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,"
                         "\"completion_tokens\":50,\"total_tokens\":150,"
                         "\"prompt_tokens_details\":{\"cached_tokens\":64},"
                         "\"completion_tokens_details\":{\"reasoning_tokens\":30}}}";
    struct jsonx_chunk c;
    assert_int_equal(jsonx_scan_chunk(openai, strlen(openai), &c), JSONX_OK);
    assert_true(c.has_usage);
    assert_true(c.choices_empty);
    assert_false(c.has_content);
    assert_int_equal(c.prompt_tokens, 100);
    assert_int_equal(c.completion_tokens, 50);
    assert_int_equal(c.cached_tokens, 64);
    assert_int_equal(c.reasoning_tokens, 30);

    const char *deepseek = "{\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}],"
                           "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2.0,"
                           "\"prompt_cache_hit_tokens\":8,\"prompt_cache_miss_tokens\":2}}";
    assert_int_equal(jsonx_scan_chunk(deepseek, strlen(deepseek), &c), JSONX_OK);
    assert_true(c.has_usage && c.has_finish && c.has_content);
    assert_int_equal(c.cached_tokens, 8);
    assert_int_equal(c.completion_tokens, 2);
    assert_int_equal(c.reasoning_tokens, 0);

    const char *nullusage = "{\"choices\":[],\"usage\":null}";
    assert_int_equal(jsonx_scan_chunk(nullusage, strlen(nullusage), &c), JSONX_OK);
    assert_false(c.has_usage);
}

static void test_chunk_error_and_invalid(void **state)
{
    struct jsonx_chunk c;
    const char *err = "{\"error\":{\"message\":\"overloaded\",\"code\":503}}";
    assert_int_equal(jsonx_scan_chunk(err, strlen(err), &c), JSONX_OK);
    assert_true(c.has_error);
    assert_false(c.has_content);
    const char *noerr = "{\"error\":null,\"choices\":[]}";
    assert_int_equal(jsonx_scan_chunk(noerr, strlen(noerr), &c), JSONX_OK);
    assert_false(c.has_error);
    assert_int_equal(jsonx_scan_chunk("{\"choices\":[", 12, &c), JSONX_ERR_SYNTAX);
    assert_false(c.valid);
    assert_int_equal(jsonx_scan_chunk("[DONE]", 6, &c), JSONX_ERR_SYNTAX);
    assert_int_equal(jsonx_scan_chunk("[1]", 3, &c), JSONX_ERR_NOT_OBJECT);
    assert_false(c.valid);
}

static void assert_msg(const char *body, size_t cap, const char *want)
{
    char msg[512];
    assert_true(cap <= sizeof msg);
    size_t n = jsonx_error_message(body, strlen(body), msg, cap);
    assert_int_equal(n, strlen(msg));
    assert_string_equal(msg, want);
}

static void test_error_message(void **state)
{
    assert_msg("{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}", 256,
               "Rate limit reached");
    assert_msg("{\"error\":\"model not found\"}", 256, "model not found");
    assert_msg("{\"object\":\"error\",\"message\":\"line1\\nline2\\t end \"}", 256,
               "line1 line2 end");
    assert_msg("{\"Message\":\"Too many requests, please wait\"}", 256, "Too many requests, please wait");
    assert_msg("{\"detail\":\"Not Found\"}", 256, "Not Found");
    assert_msg("{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"field required\"}]}", 256, "field required");
    assert_msg("[{\"error\":{\"code\":429,\"message\":\"Resource exhausted\"}}]", 256,
               "Resource exhausted");
    assert_msg("{\"error\":{\"message\":\"\\u670d\\u52a1\\u5668\\u7e41\\u5fd9\"}}", 256,
               "\xE6\x9C\x8D\xE5\x8A\xA1\xE5\x99\xA8\xE7\xB9\x81\xE5\xBF\x99");
    assert_msg("<html><head><title>503 Service\n Temporarily Unavailable</title></head>"
               "<body><h1>503</h1></body></html>",
               256, "503 Service Temporarily Unavailable");
    assert_msg("<html><head><style>body{color:red}</style><script>var a = 1 < 2;</script></head>"
               "<body><!-- note --><h1>Bad&nbsp;Gateway</h1><p>nginx &amp; co &#x263A;</p></body></html>",
               256, "Bad Gateway nginx & co \xE2\x98\xBA");
    assert_msg("upstream connect error or disconnect/reset before headers. a < b\r\n", 256,
               "upstream connect error or disconnect/reset before headers. a < b");
    assert_msg("{\"unrelated\":1}", 256, "{\"unrelated\":1}");
    assert_msg("  ", 256, "");
    assert_msg("abc", 1, "");
    assert_msg("abcdef", 4, "abc");
    /* a cut never splits a UTF-8 sequence */
    assert_msg("ab\xE4\xBD\xA0", 5, "ab");
    assert_msg("ab\xE4\xBD\xA0", 6, "ab\xE4\xBD\xA0");
    assert_msg("{\"error\":{\"message\":\"\\u00e9\\u00e9\"}}", 4, "\xC3\xA9");
}

/* The one-pass scan: the spans a continuation keeps, first occurrences as the
   tokenizing scan looks members up, escaped keys, and the same verdicts. */
static void test_chunk_one_pass(void **state)
{
    (void)state;
    const char *j = "{\"id\":\"chat\\u002d1\",\"model\":\"m\",\"created\":17,\"model\":\"x\","
                    "\"choices\":[{\"delta\":{\"cont\\u0065nt\":\"a\\\"b\",\"content\":\"zz\"},"
                    "\"finish_reason\":null}]}";
    struct jsonx_chunk c, ref;
    assert_int_equal(jsonx_scan_chunk(j, strlen(j), &c), JSONX_OK);
    assert_int_equal(jsonx_scan_chunk_tokens(j, strlen(j), &ref), JSONX_OK);
    assert_int_equal(c.content_chars, ref.content_chars);
    assert_int_equal(c.content_chars, 4); /* the first "content" (escaped key), 4 escaped bytes */
    assert_true(c.has_content && !c.has_finish && c.n_content == 1);
    assert_int_equal(c.content.end - c.content.start, 4);
    assert_memory_equal(j + c.content.start, "a\\\"b", 4);
    assert_memory_equal(j + c.id.start, "chat\\u002d1", c.id.end - c.id.start);
    assert_memory_equal(j + c.model.start, "m", 1);
    assert_int_equal(c.model.end - c.model.start, 1);
    assert_memory_equal(j + c.created.start, "17", 2);
    char out[16];
    assert_int_equal(jsonx_unescape_into(j + c.id.start, c.id.end - c.id.start, out, sizeof out), 6);
    assert_string_equal(out, "chat-1");
    assert_int_equal(jsonx_unescape_into(j + c.id.start, c.id.end - c.id.start, out, 6), SIZE_MAX);

    /* a tool call in a delta is seen even when empty; invalid texts agree */
    const char *calls = "{\"choices\":[{\"delta\":{\"tool_calls\":null}}]}";
    assert_int_equal(jsonx_scan_chunk(calls, strlen(calls), &c), JSONX_OK);
    assert_true(c.delta_calls && !c.has_content);
    const char *bad[] = {"{\"a\":1,}", "{\"a\":01}", "{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}", "{\"a\" 1}",
                         "{\"a\":[1 2]}", "{\"a\":tru}", "{\"a\":1}x", "{\"a\":-}", "{\"a\":1.}", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = jsonx_scan_chunk(bad[i], strlen(bad[i]), &c);
        if (rc == JSONX_OK || jsonx_scan_chunk_tokens(bad[i], strlen(bad[i]), &ref) == JSONX_OK)
            fail_msg("%s accepted", bad[i]);
        assert_false(c.valid);
    }
    char deep[200];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 70; i++)
        deep[n++] = '[';
    for (int i = 0; i < 70; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(jsonx_scan_chunk(deep, n, &c), JSONX_ERR_TOO_DEEP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_fields),
        cmocka_unit_test(test_scan_absent_and_null),
        cmocka_unit_test(test_scan_escapes),
        cmocka_unit_test(test_scan_field_errors),
        cmocka_unit_test(test_scan_case_folded_keys),
        cmocka_unit_test(test_scan_duplicates),
        cmocka_unit_test(test_scan_types),
        cmocka_unit_test(test_scan_required_chat),
        cmocka_unit_test(test_scan_required_prompt_and_input),
        cmocka_unit_test(test_scan_model_length),
        cmocka_unit_test(test_scan_max_tokens_precedence),
        cmocka_unit_test(test_scan_prompt_chars),
        cmocka_unit_test(test_scan_syntax),
        cmocka_unit_test(test_scan_string_offsets),
        cmocka_unit_test(test_scan_valid_shapes),
        cmocka_unit_test(test_scan_depth),
        cmocka_unit_test(test_scan_large),
        cmocka_unit_test(test_scan_pathological_is_linear),
        cmocka_unit_test(test_rewrite_model),
        cmocka_unit_test(test_rewrite_stream),
        cmocka_unit_test(test_rewrite_pretty_and_large),
        cmocka_unit_test(test_rewrite_limits_and_misuse),
        cmocka_unit_test(test_chunk_content),
        cmocka_unit_test(test_chunk_usage),
        cmocka_unit_test(test_chunk_error_and_invalid),
        cmocka_unit_test(test_chunk_one_pass),
        cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
