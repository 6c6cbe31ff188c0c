#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/provider.h"

static const struct provider_ops *ops = &provider_openai_ops;

static struct cfg_header fixed_headers[] = {{.name = "OpenAI-Organization", .value = "org-1"}};

static struct cfg_provider provider(const char *auth_header, const char *auth_prefix, const char *key)
{
    struct cfg_provider pv;
    memset(&pv, 0, sizeof pv);
    pv.name = "p";
    pv.kind = CFG_PROVIDER_OPENAI;
    pv.wire = CFG_WIRE_OPENAI;
    pv.tls = true;
    pv.host = "api.example.com";
    pv.port = 443;
    pv.base_path = "/v1";
    pv.api_key = (char *)key;
    pv.auth_header = (char *)auth_header;
    pv.auth_prefix = (char *)auth_prefix;
    pv.headers = fixed_headers;
    pv.nheaders = 1;
    pv.probe.path = "/models";
    return pv;
}

static const char chat_body[] = "{\"model\":\"m-one\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* Builds a request for a chat call on pv; the returned string is malloc'd. */
static char *build(const struct cfg_provider *pv, bool stream, const char *cont, size_t *len)
{
    static struct jsonx_request scan;
    assert_int_equal(jsonx_scan_request(chat_body, strlen(chat_body), &scan), 0);
    struct provider_call c = {
        .provider = pv,
        .model = "up-model",
        .api = PROVIDER_API_CHAT,
        .body = chat_body,
        .body_len = strlen(chat_body),
        .scan = &scan,
        .stream = stream,
        .continue_text = cont,
        .continue_len = cont ? strlen(cont) : 0,
        .extra_headers = "x-request-id: r1\r\n",
        .user_agent = "ua/1",
    };
    char *req = provider_request(ops, &c, len);
    assert_non_null(req);
    assert_int_equal(strlen(req), *len);
    return req;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *body_of(const char *req)
{
    const char *b = strstr(req, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void assert_content_length(const char *req)
{
    const char *cl = strstr(req, "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body_of(req)));
}

static void test_request_bearer(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "sk-test");
    size_t len;
    char *req = build(&pv, true, NULL, &len);
    assert_true(starts_with(req, "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\n"));
    assert_non_null(strstr(req, "\r\nUser-Agent: ua/1\r\n"));
    assert_non_null(strstr(req, "\r\nAuthorization: Bearer sk-test\r\n"));
    assert_non_null(strstr(req, "\r\nOpenAI-Organization: org-1\r\n"));
    assert_non_null(strstr(req, "\r\nx-request-id: r1\r\n"));
    assert_non_null(strstr(req, "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"));
    const char *body = body_of(req);
    assert_non_null(strstr(body, "\"model\":\"up-model\""));
    assert_non_null(strstr(body, "\"stream\":true"));
    assert_non_null(strstr(body, "\"include_usage\":true"));
    assert_content_length(req);
    free(req);
}

static void test_request_auth_styles(void **state)
{
    size_t len;
    struct cfg_provider raw = provider("Authorization", "", "tok123");
    char *req = build(&raw, false, NULL, &len);
    assert_non_null(strstr(req, "\r\nAuthorization: tok123\r\n"));
    assert_non_null(strstr(req, "\r\nAccept: application/json\r\n"));
    assert_null(strstr(body_of(req), "\"stream\""));
    free(req);

    struct cfg_provider azure = provider("api-key", "", "az-key");
    req = build(&azure, false, NULL, &len);
    assert_non_null(strstr(req, "\r\napi-key: az-key\r\n"));
    assert_null(strstr(req, "Authorization"));
    free(req);

    struct cfg_provider keyless = provider("Authorization", "Bearer ", NULL);
    req = build(&keyless, false, NULL, &len);
    assert_null(strstr(req, "Authorization"));
    assert_null(strstr(req, "Bearer"));
    free(req);

    /* the port and an IPv6 host, with no base path */
    struct cfg_provider local = provider("Authorization", "Bearer ", "k");
    local.tls = false;
    local.host = "::1";
    local.port = 8080;
    local.base_path = "";
    req = build(&local, false, NULL, &len);
    assert_true(starts_with(req, "POST /chat/completions HTTP/1.1\r\nHost: [::1]:8080\r\n"));
    free(req);
}

static void test_request_continuation(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "k");
    size_t len;
    char *req = build(&pv, true, "Once upon \"a\" time", &len);
    const char *body = body_of(req);
    assert_non_null(strstr(body, "{\"role\":\"user\",\"content\":\"hi\"},"
                                 "{\"role\":\"assistant\",\"content\":\"Once upon \\\"a\\\" time\"}]"));
    assert_non_null(strstr(body, "\"model\":\"up-model\""));
    assert_non_null(strstr(body, "\"stream\":true"));
    assert_content_length(req);
    free(req);
}

/* A continuation of body on pv; NULL when the provider refuses to build one. */
static char *build_continuation(const struct cfg_provider *pv, const char *body, const char *cont,
                                int64_t tokens, size_t *len)
{
    static struct jsonx_request scan;
    assert_int_equal(jsonx_scan_request(body, strlen(body), &scan), 0);
    struct provider_call c = {
        .provider = pv,
        .model = "up-model",
        .api = PROVIDER_API_CHAT,
        .body = body,
        .body_len = strlen(body),
        .scan = &scan,
        .stream = true,
        .continue_text = cont,
        .continue_len = strlen(cont),
        .continue_tokens = tokens,
        .user_agent = "ua/1",
    };
    return provider_request(ops, &c, len);
}

static const char limited_body[] = "{\"model\":\"m\",\"max_tokens\":100,"
                                   "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* DeepSeek's chat prefix completion: found by its API host, sent to the beta base path. */
static void test_continuation_prefix_deepseek(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "k");
    pv.host = "api.deepseek.com";
    assert_int_equal(provider_continuation(&pv), CFG_CONTINUATION_PREFIX);
    size_t len;
    char *req = build_continuation(&pv, limited_body, "Once upon", 3, &len);
    assert_non_null(req);
    assert_true(starts_with(req, "POST /beta/chat/completions HTTP/1.1\r\nHost: api.deepseek.com\r\n"));
    const char *body = body_of(req);
    assert_non_null(strstr(body, "{\"role\":\"assistant\",\"content\":\"Once upon\",\"prefix\":true}]"));
    assert_non_null(strstr(body, "\"max_tokens\":97")); /* what is left of the client's limit */
    assert_null(strstr(body, "continue_final_message"));
    assert_content_length(req);
    free(req);
    /* the first attempt and a retry go to the configured base path */
    req = build(&pv, true, NULL, &len);
    assert_true(starts_with(req, "POST /v1/chat/completions HTTP/1.1\r\n"));
    free(req);
    /* prefix asked for elsewhere: the same body, the provider's own base path */
    struct cfg_provider other = provider("Authorization", "Bearer ", "k");
    other.continuation = CFG_CONTINUATION_PREFIX;
    req = build_continuation(&other, chat_body, "Once", 0, &len);
    assert_true(starts_with(req, "POST /v1/chat/completions HTTP/1.1\r\n"));
    assert_non_null(strstr(body_of(req), "\"content\":\"Once\",\"prefix\":true}"));
    free(req);
}

/* vLLM and SGLang: the chat template leaves the final message open. */
static void test_continuation_continue_final_message(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "k");
    pv.continuation = CFG_CONTINUATION_CONTINUE_FINAL;
    size_t len;
    char *req = build_continuation(&pv, limited_body, "Once upon", 200, &len);
    assert_non_null(req);
    assert_true(starts_with(req, "POST /v1/chat/completions HTTP/1.1\r\n"));
    const char *body = body_of(req);
    assert_non_null(strstr(body, "{\"role\":\"assistant\",\"content\":\"Once upon\"}]"));
    assert_non_null(strstr(body, "\"continue_final_message\":true"));
    assert_non_null(strstr(body, "\"add_generation_prompt\":false"));
    assert_non_null(strstr(body, "\"max_tokens\":1")); /* never below one */
    assert_null(strstr(body, "prefix"));
    assert_content_length(req);
    free(req);
}

/* Elsewhere a plain trailing assistant message; a client's own trailing assistant message
   (its prefix of the answer) is extended, not followed by a second one; off builds nothing. */
static void test_continuation_assistant_message_and_off(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "k");
    assert_int_equal(provider_continuation(&pv), CFG_CONTINUATION_ASSISTANT_MESSAGE);
    static const char prefilled[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                                    "{\"role\":\"assistant\",\"content\":\"```py\\n\"}]}";
    size_t len;
    char *req = build_continuation(&pv, prefilled, "print(1)", 2, &len);
    assert_non_null(req);
    const char *body = body_of(req);
    assert_non_null(strstr(body, "{\"role\":\"user\",\"content\":\"hi\"},"
                                 "{\"role\":\"assistant\",\"content\":\"```py\\nprint(1)\"}]"));
    assert_null(strstr(body, "prefix"));
    assert_null(strstr(body, "continue_final_message"));
    free(req);
    pv.continuation = CFG_CONTINUATION_OFF;
    assert_int_equal(provider_continuation(&pv), CFG_CONTINUATION_OFF);
    assert_null(build_continuation(&pv, chat_body, "Once", 0, &len));
    assert_string_equal(provider_continuation_name(CFG_CONTINUATION_CONTINUE_FINAL), "continue_final_message");
}

/* ---- the event feed --------------------------------------------------------- */

static const char recorded[] =
    ": keep-alive\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{}\"}}]}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n"
    "data: [DONE]\n\n";

struct seen {
    char out[4096];
    size_t len;
    int n;
    int stop_at; /* stop the feed at this event (1-based); 0 never */
    unsigned framed; /* bit n: the n-th event (0-based) was handed framed */
};

static int on_event(void *ud, const struct provider_event *ev)
{
    struct seen *s = ud;
    int w = snprintf(s->out + s->len, sizeof s->out - s->len, "%d/%x/%zu/%lld/%lld:%.*s\n", ev->kind, ev->what,
                     ev->kind == PROVIDER_EV_CHUNK ? ev->chunk.content_chars : 0,
                     ev->kind == PROVIDER_EV_CHUNK ? (long long)ev->chunk.prompt_tokens : 0,
                     ev->kind == PROVIDER_EV_CHUNK ? (long long)ev->chunk.completion_tokens : 0, (int)ev->len,
                     ev->data);
    assert_true(w > 0 && (size_t)w < sizeof s->out - s->len);
    s->len += (size_t)w;
    if (ev->framed) {
        assert_memory_equal(ev->data - 6, "data: ", 6);
        assert_memory_equal(ev->data + ev->len, "\n\n", 2);
        s->framed |= 1u << s->n;
    }
    return ++s->n == s->stop_at;
}

static int feed_split(const char *text, size_t len, size_t a, size_t b, struct seen *s)
{
    struct provider_stream st;
    provider_stream_init(&st, 1 << 16);
    int rc = ops->feed(&st, text, a, on_event, s);
    if (rc == 0)
        rc = ops->feed(&st, text + a, b - a, on_event, s);
    if (rc == 0)
        rc = ops->feed(&st, text + b, len - b, on_event, s);
    provider_stream_free(&st);
    return rc;
}

static void test_feed_events(void **state)
{
    struct seen whole = {0};
    size_t len = strlen(recorded);
    assert_int_equal(feed_split(recorded, len, len, len, &whole), 0);
    assert_int_equal(whole.n, 8);
    char want[2048];
    snprintf(want, sizeof want,
             "%d/0/0/0/0: keep-alive\n"
             "%d/0/0/0/0:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n"
             "%d/1/3/0/0:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n"
             "%d/1/3/0/0:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n",
             PROVIDER_EV_KEEPALIVE, PROVIDER_EV_CHUNK, PROVIDER_EV_CHUNK, PROVIDER_EV_CHUNK);
    assert_true(strncmp(whole.out, want, strlen(want)) == 0);
    const char *rest = whole.out + strlen(want);
    assert_true(strncmp(rest, "1/1/", 4) == 0); /* the tool-call delta is content */
    rest = strchr(rest, '\n') + 1;
    assert_true(strncmp(rest, "1/3/0/0/0:", 10) == 0); /* finish */
    rest = strchr(rest, '\n') + 1;
    assert_true(strncmp(rest, "1/c/0/7/3:", 10) == 0); /* usage only */
    rest = strchr(rest, '\n') + 1;
    snprintf(want, sizeof want, "%d/0/0/0/0:[DONE]\n", PROVIDER_EV_DONE);
    assert_string_equal(rest, want);

    /* the same events whatever the split: every pair of cut points */
    for (size_t a = 0; a <= len; a++)
        for (size_t b = a; b <= len; b += 7) {
            struct seen s = {0};
            assert_int_equal(feed_split(recorded, len, a, b, &s), 0);
            assert_string_equal(s.out, whole.out);
        }
    /* and byte by byte */
    struct provider_stream st;
    provider_stream_init(&st, 1 << 16);
    struct seen s = {0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ops->feed(&st, recorded + i, 1, on_event, &s), 0);
    provider_stream_free(&st);
    assert_string_equal(s.out, whole.out);
}

static void test_feed_error_and_bad_events(void **state)
{
    const char text[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"
                        "data: not json\n\n";
    struct seen s = {0};
    assert_int_equal(feed_split(text, strlen(text), 0, 0, &s), 0);
    char want[512];
    snprintf(want, sizeof want,
             "%d/1/1/0/0:{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n"
             "%d/0/0/0/0:{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n"
             "%d/0/0/0/0:not json\n",
             PROVIDER_EV_CHUNK, PROVIDER_EV_ERROR, PROVIDER_EV_BAD);
    assert_string_equal(s.out, want);

    /* the handler stops the feed: its value comes back, no event follows */
    struct seen stop = {.stop_at = 2};
    assert_int_equal(feed_split(text, strlen(text), 0, 0, &stop), 1);
    assert_int_equal(stop.n, 2);

    /* an event over the bound breaks the stream */
    struct provider_stream st;
    provider_stream_init(&st, 16);
    struct seen big = {0};
    assert_int_equal(ops->feed(&st, text, strlen(text), on_event, &big), PROVIDER_FEED_BAD);
    provider_stream_free(&st);
}

/* ---- the response head and errors ------------------------------------------- */

static enum provider_head head_of(const char *raw, bool asked_stream, int *retry_after)
{
    struct http1_response resp;
    assert_true(http1_parse_response(raw, strlen(raw), &resp) > 0);
    if (retry_after)
        *retry_after = provider_retry_after_s(&resp, 1700000000);
    return ops->head(&resp, asked_stream);
}

static void test_head(void **state)
{
    const char *sse = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n";
    const char *json = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";
    assert_int_equal(head_of(sse, true, NULL), PROVIDER_HEAD_STREAM);
    assert_int_equal(head_of(sse, false, NULL), PROVIDER_HEAD_ANSWER);
    assert_int_equal(head_of(json, true, NULL), PROVIDER_HEAD_ANSWER);
    int ra = 0;
    assert_int_equal(head_of("HTTP/1.1 429 Too Many\r\nRetry-After: 17\r\nContent-Length: 0\r\n\r\n", true, &ra),
                     PROVIDER_HEAD_ERROR);
    assert_int_equal(ra, 17);
    assert_int_equal(head_of("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", true, &ra), PROVIDER_HEAD_ERROR);
    assert_int_equal(ra, -1);
}

static void test_map_error(void **state)
{
    const char *json = "{\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}";
    const char *html = "\r\n  <html><head><title>502 Bad Gateway</title></head></html>";
    assert_int_equal(ops->map_error(401, json, strlen(json)), PROVIDER_ERR_AUTH);
    assert_int_equal(ops->map_error(402, json, strlen(json)), PROVIDER_ERR_AUTH);
    assert_int_equal(ops->map_error(403, json, strlen(json)), PROVIDER_ERR_AUTH);
    assert_int_equal(ops->map_error(429, json, strlen(json)), PROVIDER_ERR_RATE_LIMITED);
    assert_int_equal(ops->map_error(503, json, strlen(json)), PROVIDER_ERR_SERVER);
    assert_int_equal(ops->map_error(500, "", 0), PROVIDER_ERR_SERVER);
    assert_int_equal(ops->map_error(502, json, strlen(json)), PROVIDER_ERR_SERVER);
    assert_int_equal(ops->map_error(502, html, strlen(html)), PROVIDER_ERR_BAD_REPLY);
    assert_int_equal(ops->map_error(400, json, strlen(json)), PROVIDER_ERR_CLIENT);
    assert_int_equal(ops->map_error(413, json, strlen(json)), PROVIDER_ERR_CLIENT);
    assert_int_equal(ops->map_error(422, json, strlen(json)), PROVIDER_ERR_CLIENT);
    assert_int_equal(ops->map_error(404, json, strlen(json)), PROVIDER_ERR_STATUS);
}

static void test_answer(void **state)
{
    const char *body = "{\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hello\"},"
                       "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}";
    struct provider_event ev;
    assert_int_equal(ops->answer(NULL, body, strlen(body), &ev), 0);
    assert_int_equal(ev.kind, PROVIDER_EV_CHUNK);
    assert_true(ev.what & PROVIDER_HAS_USAGE);
    assert_int_equal(ev.chunk.completion_tokens, 2);
    assert_int_equal(ev.chunk.content_chars, 5);
    assert_ptr_equal(ev.data, body); /* relayed as it came, no copy */
    assert_int_equal(ev.len, strlen(body));
    assert_int_equal(ops->answer(NULL, "<html>", 6, &ev), -1);
}

static void test_probe(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", "sk-p");
    size_t len;
    char *req = provider_probe_request(ops, &pv, NULL, "probe/1", &len);
    assert_non_null(req);
    assert_true(starts_with(req, "GET /v1/models HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "\r\nAuthorization: Bearer sk-p\r\n"));
    assert_null(strstr(req, "Content-Length"));
    assert_string_equal(body_of(req), "");
    free(req);

    pv.probe.path = "/health";
    req = provider_probe_request(ops, &pv, NULL, "probe/1", &len);
    assert_true(starts_with(req, "GET /v1/health HTTP/1.1\r\n"));
    free(req);

    req = provider_probe_request(ops, &pv, "up-model", "probe/1", &len);
    assert_true(starts_with(req, "POST /v1/chat/completions HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "\r\nContent-Type: application/json\r\n"));
    assert_string_equal(body_of(req), "{\"model\":\"up-model\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],"
                                      "\"max_tokens\":1,\"stream\":false}");
    assert_content_length(req);
    free(req);

    assert_true(ops->probe_ok(false, 200));
    assert_true(ops->probe_ok(true, 204));
    assert_false(ops->probe_ok(true, 429));
    assert_false(ops->probe_ok(false, 503));
}

/* vLLM's "reasoning" key renamed, never a value's text that looks like it; Azure's path. */
static void test_quirks(void **state)
{
    (void)state;
    static const char events[] =
        "data: {\"choices\":[{\"delta\":{\"reasoning\" : \"a \\\"reasoning\\\": b\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"reasoning\"}}]}\n\n";
    struct provider_stream st;
    provider_stream_init(&st, 1 << 16);
    st.rename_reasoning = true;
    struct seen s = {0};
    assert_int_equal(ops->feed(&st, events, strlen(events), on_event, &s), 0);
    provider_stream_free(&st);
    assert_non_null(strstr(s.out, "{\"choices\":[{\"delta\":{\"reasoning_content\" : \"a \\\"reasoning\\\": b\"}}]}\n"));
    assert_non_null(strstr(s.out, "{\"choices\":[{\"delta\":{\"content\":\"reasoning\"}}]}\n"));
    assert_int_equal(s.framed, 2); /* the renamed one is not the event as it came */

    struct cfg_provider pv = provider("api-key", "", "k");
    pv.base_path = "";
    pv.deployment_paths = true;
    pv.api_version = "2024-10-21";
    size_t len;
    char *req = build(&pv, false, NULL, &len);
    assert_true(strncmp(req, "POST /openai/deployments/up-model/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n",
                        84) == 0);
    assert_non_null(strstr(req, "\r\napi-key: k\r\n"));
    free(req);
}

static void test_ops_of(void **state)
{
    struct cfg_provider pv = provider("Authorization", "Bearer ", NULL);
    assert_ptr_equal(provider_ops_of(&pv), &provider_openai_ops);
    pv.kind = CFG_PROVIDER_SIM; /* the simulator is a transport: it speaks OpenAI bytes */
    assert_ptr_equal(provider_ops_of(&pv), &provider_openai_ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_bearer),
        cmocka_unit_test(test_request_auth_styles),
        cmocka_unit_test(test_request_continuation),
        cmocka_unit_test(test_continuation_prefix_deepseek),
        cmocka_unit_test(test_continuation_continue_final_message),
        cmocka_unit_test(test_continuation_assistant_message_and_off),
        cmocka_unit_test(test_feed_events),
        cmocka_unit_test(test_feed_error_and_bad_events),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_map_error),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_quirks),
        cmocka_unit_test(test_ops_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
