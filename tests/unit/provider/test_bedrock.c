/*
 * Bedrock Converse and SageMaker: the request translation, the event stream
 * written as OpenAI chunks (cut at every byte), the whole answer, errors,
 * the signed request, and the container credentials' JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/aws_creds.h"
#include "provider/aws_sign.h"
#include "provider/bedrock.h"
#include "provider/sigv4.h"

static struct cfg_aws aws = {.region = "us-east-1",
                             .service = "bedrock",
                             .credentials = CFG_AWS_CRED_STATIC,
                             .access_key_id = "AKIDEXAMPLE",
                             .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};

static struct cfg_provider provider(enum cfg_wire wire)
{
    struct cfg_provider pv;
    memset(&pv, 0, sizeof pv);
    pv.name = "aws";
    pv.wire = wire;
    pv.tls = true;
    pv.host = "bedrock-runtime.us-east-1.amazonaws.com";
    pv.port = 443;
    pv.base_path = "";
    pv.aws = &aws;
    return pv;
}

static char *converse(const char *body, const char **why, int *rc)
{
    struct jsonx_request scan;
    jsonx_scan_request(body, strlen(body), &scan);
    struct cfg_provider pv = provider(CFG_WIRE_BEDROCK_CONVERSE);
    struct provider_call c = {.provider = &pv,
                              .model = "m",
                              .api = PROVIDER_API_CHAT,
                              .body = body,
                              .body_len = strlen(body),
                              .scan = &scan,
                              .stream = true};
    struct buf out;
    buf_init(&out, 0);
    *rc = bedrock_converse_body(&c, &out, why);
    buf_append(&out, "", 1);
    return buf_steal(&out, NULL);
}

static void test_translation(void **state)
{
    const char *why;
    int rc;
    char *out = converse(
        "{\"model\":\"x\",\"max_tokens\":50,\"temperature\":0.5,\"top_p\":0.9,\"stop\":[\"END\"],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"
        "\"d\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
        "\"tool_choice\":\"required\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
        "\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"},"
        "{\"role\":\"user\",\"content\":\"and?\"}]}",
        &why, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(
        out, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"look\"},{\"image\":{"
             "\"source\":{\"bytes\":"
             "\"iVBORw0KGgo=\"},\"format\":\"png\"}}]},{\"role\":\"assistant\",\"content\":[{"
             "\"toolUse\":{\"toolUseId\":"
             "\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}}]},{\"role\":"
             "\"user\",\"content\":["
             "{\"toolResult\":{\"content\":[{\"text\":\"sunny\"}],\"toolUseId\":\"call_1\"}},{"
             "\"text\":\"and?\"}]}],"
             "\"system\":[{\"text\":\"be "
             "brief\"}],\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"inputSchema\":{\"json\":"
             "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}},\"name\":"
             "\"get_weather\","
             "\"description\":\"d\"}}],\"toolChoice\":{\"any\":{}}},\"inferenceConfig\":{"
             "\"maxTokens\":50,"
             "\"temperature\":0.5,\"topP\":0.9,\"stopSequences\":[\"END\"]}}");
    free(out);
}

static void test_refusals(void **state)
{
    const char *why;
    int rc;
    char *out = converse(
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"https://example.com/cat.png\"}}]}]}",
        &why, &rc);
    assert_int_equal(rc, -2);
    assert_non_null(strstr(why, "data: URLs"));
    free(out);
    out = converse("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
                   "\"function\":{\"name\":"
                   "\"f\",\"arguments\":\"not json\"}}]}]}",
                   &why, &rc);
    assert_int_equal(rc, -2);
    free(out);
    out = converse(
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/bmp;base64,AA==\"}}]}]}",
        &why, &rc);
    assert_int_equal(rc, -2);
    free(out);
}

/* ---- the stream ---- */

static void put_event(struct buf *b, const char *type, const char *json)
{
    struct evs_header h[3] = {
        {.name = ":event-type",
         .name_len = 11,
         .type = EVS_STRING,
         .bytes = type,
         .bytes_len = strlen(type)},
        {.name = ":content-type",
         .name_len = 13,
         .type = EVS_STRING,
         .bytes = "application/json",
         .bytes_len = 16},
        {.name = ":message-type",
         .name_len = 13,
         .type = EVS_STRING,
         .bytes = "event",
         .bytes_len = 5},
    };
    assert_int_equal(evs_encode(b, h, 3, json, strlen(json)), 0);
}

static void put_exception(struct buf *b, const char *type, const char *json)
{
    struct evs_header h[2] = {
        {.name = ":exception-type",
         .name_len = 15,
         .type = EVS_STRING,
         .bytes = type,
         .bytes_len = strlen(type)},
        {.name = ":message-type",
         .name_len = 13,
         .type = EVS_STRING,
         .bytes = "exception",
         .bytes_len = 9},
    };
    assert_int_equal(evs_encode(b, h, 2, json, strlen(json)), 0);
}

struct events {
    char text[4096]; /* the events, one line each: K what data */
    size_t len;
};

static int on_event(void *ud, const struct provider_event *ev)
{
    struct events *e = ud;
    char kind = "?CKDEB"[ev->kind];
    int n = snprintf(e->text + e->len, sizeof e->text - e->len, "%c%u %.*s\n", kind, ev->what,
                     (int)ev->len, ev->data);
    e->len += (size_t)n;
    return 0;
}

/* The chunk text with the id and created taken out (they differ per stream). */
static void normalise(char *s)
{
    char *p;
    while ((p = strstr(s, "\"id\":\"chatcmpl-"))) {
        char *end = strchr(p + 15, '"') + 1;
        end += *end == ',';
        memmove(p, end, strlen(end) + 1);
    }
    while ((p = strstr(s, "\"created\":"))) {
        char *end = p + 10;
        while (*end >= '0' && *end <= '9')
            end++;
        end += *end == ',';
        memmove(p, end, strlen(end) + 1);
    }
}

static void test_stream_any_split(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    put_event(&b, "messageStart", "{\"role\":\"assistant\"}");
    put_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hel\"}}");
    put_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"lo\"}}");
    put_event(&b, "contentBlockStop", "{\"contentBlockIndex\":0}");
    put_event(&b, "contentBlockStart",
              "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":"
              "\"get_weather\"}}}");
    put_event(&b, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}}}");
    put_event(&b, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Paris\\\"}\"}}}");
    put_event(&b, "messageStop", "{\"stopReason\":\"tool_use\"}");
    put_event(
        &b, "metadata",
        "{\"usage\":{\"inputTokens\":10,\"outputTokens\":5,\"totalTokens\":15,"
        "\"cacheReadInputTokens\":4,\"cacheWriteInputTokens\":2},\"metrics\":{\"latencyMs\":9}}");
    const char *want = "C0 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"role\":"
                       "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n"
                       "C1 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"content\":"
                       "\"Hel\"},\"finish_reason\":null}]}\n"
                       "C1 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"content\":"
                       "\"lo\"},\"finish_reason\":null}]}\n"
                       "C1 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"tool_calls\":"
                       "[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":"
                       "\"get_weather\",\"arguments\":\"\"}}]},"
                       "\"finish_reason\":null}]}\n"
                       "C1 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"tool_calls\":"
                       "[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_"
                       "reason\":null}]}\n"
                       "C1 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{\"tool_calls\":"
                       "[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_"
                       "reason\":null}]}\n"
                       "C3 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{"
                       "\"index\":0,\"delta\":{},"
                       "\"finish_reason\":\"tool_calls\"}]}\n"
                       "C12 "
                       "{\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[],"
                       "\"usage\":{\"prompt_tokens\":16,"
                       "\"completion_tokens\":5,\"total_tokens\":21,\"prompt_tokens_details\":{"
                       "\"cached_tokens\":4},"
                       "\"cache_creation_input_tokens\":2}}\n"
                       "D0 [DONE]\n";
    for (size_t cut = 0; cut <= b.len; cut += 7) {
        struct provider_stream s;
        provider_stream_init(&s, 0);
        provider_stream_begin(&s, "m1");
        struct events e = {0};
        assert_int_equal(provider_bedrock_ops.feed(&s, b.data, cut, on_event, &e), 0);
        assert_int_equal(provider_bedrock_ops.feed(&s, b.data + cut, b.len - cut, on_event, &e), 0);
        normalise(e.text);
        assert_string_equal(e.text, want);
        provider_stream_free(&s);
    }
    buf_free(&b);
}

static void test_stream_exception_and_bad_crc(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    put_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    put_exception(&b, "throttlingException", "{\"message\":\"Too many tokens, please wait\"}");
    struct provider_stream s;
    provider_stream_init(&s, 0);
    struct events e = {0};
    assert_int_equal(provider_bedrock_ops.feed(&s, b.data, b.len, on_event, &e), 1);
    assert_non_null(strstr(
        e.text, "E0 {\"error\":{\"message\":\"Too many tokens, please wait\",\"type\":"
                "\"throttlingException\",\"param\":null,\"code\":\"throttlingException\"}}\n"));
    /* a flipped byte: the framing is broken, no event comes of it */
    provider_stream_reset(&s);
    b.data[20] ^= 1;
    memset(&e, 0, sizeof e);
    assert_int_equal(provider_bedrock_ops.feed(&s, b.data, b.len, on_event, &e), PROVIDER_FEED_BAD);
    assert_int_equal(e.len, 0);
    provider_stream_free(&s);
    buf_free(&b);
}

static void test_answer(void **state)
{
    const char *body = "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                       "\"It is \"},{\"text\":\"sunny.\"},"
                       "{\"toolUse\":{\"toolUseId\":\"t9\",\"name\":\"f\",\"input\":{\"a\":1}}}]}},"
                       "\"stopReason\":\"tool_use\","
                       "\"usage\":{\"inputTokens\":3,\"outputTokens\":4,\"totalTokens\":7}}";
    struct provider_stream s;
    provider_stream_init(&s, 0);
    provider_stream_begin(&s, "m1");
    struct provider_event ev;
    assert_int_equal(provider_bedrock_ops.answer(&s, body, strlen(body), &ev), 0);
    char *text = strndup(ev.data, ev.len);
    normalise(text);
    assert_string_equal(
        text,
        "{\"object\":\"chat.completion\",\"model\":\"m1\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"It is sunny.\",\"tool_calls\":[{\"id\":\"t9\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
        "\"total_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":0},"
        "\"cache_creation_input_tokens\":0}}");
    assert_true(ev.what & PROVIDER_HAS_USAGE);
    assert_int_equal(ev.chunk.completion_tokens, 4);
    free(text);
    assert_int_equal(provider_bedrock_ops.answer(&s, "<html>", 6, &ev), -1);
    provider_stream_free(&s);
}

static void test_finish_and_errors(void **state)
{
    assert_string_equal(bedrock_finish_reason("end_turn"), "stop");
    assert_string_equal(bedrock_finish_reason("stop_sequence"), "stop");
    assert_string_equal(bedrock_finish_reason("max_tokens"), "length");
    assert_string_equal(bedrock_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(bedrock_finish_reason("guardrail_intervened"), "content_filter");
    assert_string_equal(bedrock_finish_reason("content_filtered"), "content_filter");
    const struct provider_ops *o = &provider_bedrock_ops;
    assert_int_equal(o->map_error(429, "{\"message\":\"slow down\"}", 23),
                     PROVIDER_ERR_RATE_LIMITED);
    assert_int_equal(o->map_error(503, "{}", 2), PROVIDER_ERR_RATE_LIMITED);
    const char *t = "{\"__type\":\"com.amazon.coral#ModelTimeoutException\",\"message\":\"x\"}";
    assert_int_equal(o->map_error(408, t, strlen(t)), PROVIDER_ERR_TIMEOUT);
    t = "{\"__type\":\"ModelNotReadyException\"}";
    assert_int_equal(o->map_error(429, t, strlen(t)), PROVIDER_ERR_RATE_LIMITED);
    assert_int_equal(o->map_error(400, "{\"message\":\"bad\"}", 17), PROVIDER_ERR_CLIENT);
    assert_int_equal(o->map_error(403, "{\"message\":\"no\"}", 16), PROVIDER_ERR_AUTH);
    t = "{\"__type\":\"UnrecognizedClientException\"}";
    assert_int_equal(o->map_error(403, t, strlen(t)), PROVIDER_ERR_AUTH);
    assert_int_equal(o->map_error(424, "{}", 2), PROVIDER_ERR_SERVER);
    assert_int_equal(o->map_error(404, "{}", 2), PROVIDER_ERR_STATUS);
    const struct provider_ops *sm = &provider_sagemaker_ops;
    t = "{\"__type\":\"ModelError\",\"OriginalStatusCode\":400,\"Message\":\"bad prompt\"}";
    assert_int_equal(sm->map_error(424, t, strlen(t)), PROVIDER_ERR_CLIENT);
    t = "{\"__type\":\"ModelError\",\"OriginalStatusCode\":500}";
    assert_int_equal(sm->map_error(424, t, strlen(t)), PROVIDER_ERR_SERVER);
    assert_int_equal(sm->map_error(429, "{}", 2), PROVIDER_ERR_RATE_LIMITED);
}

/* The whole request: path with the model id encoded, the SigV4 headers, a signature that
   checks against the suite's example credentials. */
static void test_signed_request(void **state)
{
    struct cfg_provider pv = provider(CFG_WIRE_BEDROCK_CONVERSE);
    struct provider_request r;
    memset(&r, 0, sizeof r);
    buf_init(&r.head, 0);
    buf_init(&r.body, 0);
    buf_append_str(&r.head,
                   "POST /model/a.b-v1%3A0/converse HTTP/1.1\r\nHost: "
                   "bedrock-runtime.us-east-1.amazonaws.com\r\n"
                   "User-Agent: ua\r\nContent-Type: application/json\r\nContent-Length: 2\r\n");
    buf_append_str(&r.body, "{}");
    assert_int_equal(aws_sign_at(&pv, &r, 1440938160), 0);
    buf_append(&r.head, "", 1);
    assert_non_null(strstr(r.head.data, "X-Amz-Date: 20150830T123600Z\r\n"));
    assert_non_null(strstr(r.head.data,
                           "X-Amz-Content-Sha256: "
                           "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\r\n"));
    assert_null(strstr(r.head.data, "X-Amz-Security-Token"));
    assert_non_null(strstr(
        r.head.data, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                     "bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;"
                     "x-amz-date, Signature="));
    /* a session token is sent and signed */
    struct cfg_aws with_token = aws;
    with_token.session_token = "TOKEN";
    pv.aws = &with_token;
    buf_reset(&r.head);
    buf_append_str(&r.head, "POST / HTTP/1.1\r\nHost: h\r\n");
    assert_int_equal(aws_sign_at(&pv, &r, 1440938160), 0);
    buf_append(&r.head, "", 1);
    assert_non_null(strstr(r.head.data, "X-Amz-Security-Token: TOKEN\r\n"));
    assert_non_null(strstr(
        r.head.data, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));
    buf_free(&r.head);
    buf_free(&r.body);
}

static void test_sagemaker_build(void **state)
{
    static const char body[] =
        "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct jsonx_request scan;
    jsonx_scan_request(body, strlen(body), &scan);
    struct cfg_provider pv = provider(CFG_WIRE_SAGEMAKER);
    pv.host = "runtime.sagemaker.us-east-1.amazonaws.com";
    struct cfg_aws sm = aws;
    sm.service = "sagemaker";
    pv.aws = &sm;
    struct provider_call c = {.provider = &pv,
                              .model = "my-endpoint/served",
                              .api = PROVIDER_API_CHAT,
                              .body = body,
                              .body_len = strlen(body),
                              .scan = &scan,
                              .stream = true,
                              .user_agent = "u"};
    size_t len;
    char *req = provider_request(&provider_sagemaker_ops, &c, &len);
    assert_non_null(req);
    assert_true(strncmp(req, "POST /endpoints/my-endpoint/invocations-response-stream HTTP/1.1\r\n",
                        66) == 0);
    assert_non_null(strstr(req, "\"model\":\"served\""));
    assert_non_null(strstr(req, "\"stream\":true"));
    assert_non_null(strstr(req, "/sagemaker/aws4_request"));
    free(req);
}

/* PayloadParts cutting SSE lines anywhere make the one OpenAI stream. */
static void test_sagemaker_payload_parts(void **state)
{
    const char *sse =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: "
        "[DONE]\n\n";
    for (size_t part = 1; part < 20; part++) {
        struct buf b;
        buf_init(&b, 0);
        for (size_t off = 0; off < strlen(sse); off += part) {
            size_t n = strlen(sse) - off < part ? strlen(sse) - off : part;
            struct evs_header h[2] = {
                {.name = ":event-type",
                 .name_len = 11,
                 .type = EVS_STRING,
                 .bytes = "PayloadPart",
                 .bytes_len = 11},
                {.name = ":message-type",
                 .name_len = 13,
                 .type = EVS_STRING,
                 .bytes = "event",
                 .bytes_len = 5},
            };
            assert_int_equal(evs_encode(&b, h, 2, sse + off, n), 0);
        }
        struct provider_stream s;
        provider_stream_init(&s, 0);
        struct events e = {0};
        assert_int_equal(provider_sagemaker_ops.feed(&s, b.data, b.len, on_event, &e), 0);
        assert_string_equal(
            e.text, "C1 {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo\"}}]}\n"
                    "C3 {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n"
                    "D0 [DONE]\n");
        provider_stream_free(&s);
        buf_free(&b);
    }
}

static void test_container_credentials_json(void **state)
{
    struct aws_creds c;
    int64_t exp;
    const char *j =
        "{\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"tok\","
        "\"Expiration\":\"2015-08-30T13:36:00Z\",\"RoleArn\":\"arn:aws:iam::1:role/r\"}";
    assert_int_equal(aws_creds_parse(j, strlen(j), &c, &exp), 0);
    assert_string_equal(c.access_key_id, "ASIA1");
    assert_string_equal(c.secret_access_key, "s3cr3t");
    assert_string_equal(c.session_token, "tok");
    assert_int_equal(exp, 1440941760);
    assert_int_equal(aws_creds_parse("{\"AccessKeyId\":\"A\"}", 19, &c, &exp), -1);
    /* refreshed five minutes before expiry; short-lived keys at half their life */
    assert_int_equal(aws_creds_refresh_in(1000 + 3600, 1000), 3300);
    assert_int_equal(aws_creds_refresh_in(1000 + 300, 1000), 150);
    assert_int_equal(aws_creds_refresh_in(1000, 1000), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_translation),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_stream_any_split),
        cmocka_unit_test(test_stream_exception_and_bad_crc),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_finish_and_errors),
        cmocka_unit_test(test_signed_request),
        cmocka_unit_test(test_sagemaker_build),
        cmocka_unit_test(test_sagemaker_payload_parts),
        cmocka_unit_test(test_container_credentials_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
