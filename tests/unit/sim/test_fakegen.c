#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "config/config.h"
#include "sim/fakegen.h"
#include "net/transport.h"

#define MAX_SEGS 512

/* Everything one response produced, copied out of the generator. */
struct transcript {
    char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    uint32_t delay[MAX_SEGS];
    size_t n;
    enum fakegen_end end;
    uint32_t end_delay;
    int status;
};

static void run(const char *method, const char *path, const char *body, const char *behavior,
                struct fakegen_counters *counters, struct transcript *t)
{
    struct fakegen_request req = {
        .method = method,
        .method_len = strlen(method),
        .path = path,
        .path_len = strlen(path),
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    struct fakegen *g = NULL;
    assert_int_equal(fakegen_new(&req, behavior, counters, &g), 0);
    memset(t, 0, sizeof *t);
    t->status = fakegen_status(g);
    struct fakegen_seg s;
    while (fakegen_next(g, &s)) {
        assert_true(t->n < MAX_SEGS);
        t->seg[t->n] = malloc(s.len + 1);
        memcpy(t->seg[t->n], s.data, s.len);
        t->seg[t->n][s.len] = '\0';
        t->len[t->n] = s.len;
        t->delay[t->n] = s.delay_ms;
        t->n++;
    }
    t->end = s.end;
    t->end_delay = s.delay_ms;
    assert_int_equal(fakegen_next(g, &s), 0); /* stays over */
    fakegen_free(g);
}

static void transcript_free(struct transcript *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->seg[i]);
}

static void chat_stream(const char *body, const char *behavior, struct transcript *t)
{
    run("POST", "/v1/chat/completions", body, behavior, NULL, t);
}

/* The payload of one chunked-encoding segment "HEX\r\npayload\r\n" (static storage). */
static const char *chunk_payload(const char *seg, size_t len)
{
    static char out[1 << 16];
    char *end;
    unsigned long n = strtoul(seg, &end, 16);
    assert_true(end[0] == '\r' && end[1] == '\n');
    size_t head = (size_t)(end + 2 - seg);
    assert_int_equal(len, head + n + 2);
    assert_memory_equal(seg + head + n, "\r\n", 2);
    assert_true(n < sizeof out);
    memcpy(out, seg + head, n);
    out[n] = '\0';
    return out;
}

/* Parses "data: {json}\n\n" and returns the JSON (caller deletes). */
static cJSON *event_json(const char *seg, size_t len)
{
    const char *p = chunk_payload(seg, len);
    assert_true(strncmp(p, "data: ", 6) == 0);
    size_t n = strlen(p);
    assert_true(n >= 8 && strcmp(p + n - 2, "\n\n") == 0);
    cJSON *j = cJSON_ParseWithLength(p + 6, n - 8);
    assert_non_null(j);
    return j;
}

static const char *delta_str(const cJSON *chunk, const char *field)
{
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(chunk, "choices"), 0);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), field);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *whole_body_json(const struct transcript *t)
{
    assert_int_equal(t->n, 1);
    const char *body = strstr(t->seg[0], "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    const char *cl = strstr(t->seg[0], "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal(strtoul(cl + 16, NULL, 10), t->len[0] - (size_t)(body - t->seg[0]));
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    return j;
}

static void test_profiles(void **state)
{
    assert_string_equal(fakegen_profile("healthy"), "ttft=300,chunks=30,chunk_ms=33");
    assert_non_null(fakegen_profile("busy"));
    assert_non_null(fakegen_profile("flaky"));
    assert_null(fakegen_profile("nope"));
    struct fakegen_opts o;
    char err[128];
    assert_int_equal(fakegen_pick("healthy", 0, &o, err, sizeof err), 0);
    assert_int_equal(o.ttft_ms, 300);
    assert_int_equal(o.chunks, 30);
    assert_int_equal(o.chunk_ms, 33);
    /* busy: buckets 0-49 plain, 50-79 keep-alive, 80-99 503; k=0 -> 0, k=2 -> 74, k=5 -> 85 */
    assert_int_equal(fakegen_pick("busy", 0, &o, err, sizeof err), 0);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.keepalive_ms, 0);
    assert_int_equal(fakegen_pick("busy", 2, &o, err, sizeof err), 0);
    assert_int_equal(o.keepalive_ms, 20000);
    assert_int_equal(fakegen_pick("busy", 5, &o, err, sizeof err), 0);
    assert_int_equal(o.status, 503);
}

static void test_grammar(void **state)
{
    struct fakegen_opts o;
    char err[128];
    assert_int_equal(fakegen_pick("", 0, &o, err, sizeof err), 0);
    assert_int_equal(o.chunks, 5);
    assert_int_equal(o.cut, -1);
    assert_int_equal(o.retry_after_s, -1);
    assert_int_equal(o.ka_every_ms, 1000);

    assert_int_equal(fakegen_pick(" ttft = 100 , chunks=3,chunk_ms=10,close,stall=7,big=99 ", 0, &o,
                                  err, sizeof err),
                     0);
    assert_int_equal(o.ttft_ms, 100);
    assert_int_equal(o.chunks, 3);
    assert_int_equal(o.chunk_ms, 10);
    assert_int_equal(o.stall_ms, 7);
    assert_int_equal(o.big, 99);
    assert_true(o.close);

    assert_int_equal(
        fakegen_pick("status=503,retry_after=7,html,no_usage,no_done,badjson,garbage,slowread,"
                     "keepalive=50,ka_every=5,cut=0,reasoning=2,hang,reset,ok",
                     0, &o, err, sizeof err),
        0);
    assert_int_equal(o.status, 503);
    assert_int_equal(o.retry_after_s, 7);
    assert_true(o.html && o.no_usage && o.no_done && o.badjson && o.garbage && o.hang && o.reset);
    assert_int_equal(o.slowread_ms, 2000);
    assert_int_equal(o.keepalive_ms, 50);
    assert_int_equal(o.ka_every_ms, 5);
    assert_int_equal(o.cut, 0);
    assert_int_equal(o.reasoning, 2);

    assert_int_equal(fakegen_pick("status=200", 0, &o, err, sizeof err), 0);
    assert_int_equal(o.status, 0);

    assert_int_equal(fakegen_pick("bogus", 0, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(fakegen_pick("ttft=abc", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("ttft", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("html=1", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("status=99", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("ka_every=0", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("60%ok|50%ok", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("101%ok", 0, &o, err, sizeof err), -1);
    /* A typo in a branch that is not picked still fails. */
    assert_int_equal(fakegen_pick("1%bogus|ok", 0, &o, err, sizeof err), -1);
}

static void test_percentages_exact(void **state)
{
    struct fakegen_opts o;
    char err[128];
    unsigned seen[4] = {0};
    for (uint64_t k = 0; k < 100; k++) {
        assert_int_equal(fakegen_pick("30%status=429|20%status=503|ok", k, &o, err, sizeof err), 0);
        assert_true(o.alternative < 3);
        seen[o.alternative]++;
        if (o.alternative == 0) assert_int_equal(o.status, 429);
        if (o.alternative == 1) assert_int_equal(o.status, 503);
        if (o.alternative == 2) assert_int_equal(o.status, 0);
    }
    assert_int_equal(seen[0], 30);
    assert_int_equal(seen[1], 20);
    assert_int_equal(seen[2], 50);

    /* Percentages that leave a rest: the rest answers ok (alternative index = count). */
    memset(seen, 0, sizeof seen);
    for (uint64_t k = 200; k < 300; k++) {
        assert_int_equal(fakegen_pick("10%status=500", k, &o, err, sizeof err), 0);
        seen[o.alternative]++;
    }
    assert_int_equal(seen[0], 10);
    assert_int_equal(seen[1], 90);

    /* Two without a percentage share the rest. */
    memset(seen, 0, sizeof seen);
    for (uint64_t k = 0; k < 100; k++) {
        assert_int_equal(fakegen_pick("status=500|status=502", k, &o, err, sizeof err), 0);
        seen[o.alternative]++;
    }
    assert_int_equal(seen[0], 50);
    assert_int_equal(seen[1], 50);

    /* The pick is a pure function of k. */
    struct fakegen_opts a, b;
    assert_int_equal(fakegen_pick("30%status=429|ok", 12345, &a, err, sizeof err), 0);
    assert_int_equal(fakegen_pick("30%status=429|ok", 12345, &b, err, sizeof err), 0);
    assert_int_equal(a.alternative, b.alternative);
}

static void test_counters(void **state)
{
    static struct fakegen_counters c;
    assert_int_equal(fakegen_counters_next(&c, "a"), 0);
    assert_int_equal(fakegen_counters_next(&c, "a"), 1);
    assert_int_equal(fakegen_counters_next(&c, "b"), 0);
    assert_int_equal(fakegen_counters_next(&c, "a"), 2);
    /* More strings than slots still count (in the shared overflow counter). */
    char name[32];
    for (int i = 0; i < FAKEGEN_COUNTER_SLOTS + 10; i++) {
        snprintf(name, sizeof name, "s%d", i);
        fakegen_counters_next(&c, name);
    }
    assert_int_equal(fakegen_counters_next(&c, "b"), 1);
    fakegen_counters_reset(&c);
    assert_int_equal(fakegen_counters_next(&c, "a"), 0);

    /* Through fakegen_new: 100 requests give exactly 30/20/50 statuses. */
    fakegen_counters_reset(&c);
    unsigned s429 = 0, s503 = 0, s200 = 0;
    for (int i = 0; i < 100; i++) {
        struct transcript t;
        run("POST", "/v1/chat/completions", "{\"model\":\"m\"}", "30%status=429|20%status=503|ok",
            &c, &t);
        s429 += t.status == 429;
        s503 += t.status == 503;
        s200 += t.status == 200;
        transcript_free(&t);
    }
    assert_int_equal(s429, 30);
    assert_int_equal(s503, 20);
    assert_int_equal(s200, 50);
}

static void test_stream_sequence(void **state)
{
    struct transcript t;
    chat_stream("{\"model\":\"m1\",\"stream\":true,\"messages\":[]}",
                "ttft=100,chunks=3,chunk_ms=10", &t);
    /* head, role, 3 content, finish, [DONE], terminator */
    assert_int_equal(t.n, 8);
    assert_true(strncmp(t.seg[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(t.seg[0], "Content-Type: text/event-stream\r\n"));
    assert_non_null(strstr(t.seg[0], "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(t.seg[0], "Connection: keep-alive\r\n"));
    assert_null(strstr(t.seg[0], "Content-Length"));
    assert_int_equal(t.delay[0], 0);

    cJSON *role = event_json(t.seg[1], t.len[1]);
    assert_int_equal(t.delay[1], 0);
    assert_string_equal(delta_str(role, "role"), "assistant");
    assert_string_equal(delta_str(role, "content"), "");
    cJSON_Delete(role);

    uint32_t want_delay[3] = {100, 10, 10};
    for (int i = 0; i < 3; i++) {
        cJSON *c = event_json(t.seg[2 + i], t.len[2 + i]);
        char want[16];
        snprintf(want, sizeof want, "tok%d ", i);
        assert_string_equal(delta_str(c, "content"), want);
        assert_string_equal(cJSON_GetObjectItem(c, "object")->valuestring, "chat.completion.chunk");
        assert_string_equal(cJSON_GetObjectItem(c, "model")->valuestring, "m1");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(c, "created")));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(c, "id")));
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
        assert_int_equal(t.delay[2 + i], want_delay[i]);
        cJSON_Delete(c);
    }
    cJSON *fin = event_json(t.seg[5], t.len[5]);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(fin, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop");
    assert_null(cJSON_GetObjectItem(fin, "usage")); /* include_usage was not asked */
    cJSON_Delete(fin);
    assert_string_equal(chunk_payload(t.seg[6], t.len[6]), "data: [DONE]\n\n");
    assert_string_equal(t.seg[7], "0\r\n\r\n");
    assert_int_equal(t.end, FAKEGEN_END_KEEP_ALIVE);
    assert_int_equal(t.status, 200);
    transcript_free(&t);
}

static void test_stream_include_usage(void **state)
{
    const char *body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                       "true},\"x\":\"0123456789\"}";
    struct transcript t;
    chat_stream(body, "chunks=2", &t);
    /* head, role, 2 content, finish, usage, [DONE], terminator */
    assert_int_equal(t.n, 8);
    cJSON *u = event_json(t.seg[5], t.len[5]);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(u, "choices")), 0);
    const cJSON *usage = cJSON_GetObjectItem(u, "usage");
    assert_int_equal(cJSON_GetObjectItem(usage, "prompt_tokens")->valueint, (int)strlen(body) / 4);
    assert_int_equal(cJSON_GetObjectItem(usage, "completion_tokens")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(usage, "total_tokens")->valueint,
                     (int)strlen(body) / 4 + 2);
    assert_int_equal(cJSON_GetObjectItem(usage, "prompt_cache_hit_tokens")->valueint, 0);
    cJSON_Delete(u);
    assert_string_equal(chunk_payload(t.seg[6], t.len[6]), "data: [DONE]\n\n");
    transcript_free(&t);

    chat_stream(body, "chunks=2,no_usage", &t);
    assert_int_equal(t.n, 7);
    transcript_free(&t);
}

static void test_stream_cut(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true}", "chunks=5,cut=2,chunk_ms=20", &t);
    /* head, role, 2 content; then the connection ends with no [DONE] and no terminator */
    assert_int_equal(t.n, 4);
    for (size_t i = 0; i < t.n; i++) {
        assert_null(strstr(t.seg[i], "[DONE]"));
        assert_null(strstr(t.seg[i], "\"stop\""));
        assert_true(strcmp(t.seg[i], "0\r\n\r\n") != 0);
    }
    assert_int_equal(t.end, FAKEGEN_END_CLOSE);
    assert_int_equal(t.end_delay, 20);
    transcript_free(&t);

    chat_stream("{\"stream\":true}", "chunks=3,cut=3", &t); /* all content, no finish */
    assert_int_equal(t.n, 5);
    assert_int_equal(t.end, FAKEGEN_END_CLOSE);
    transcript_free(&t);

    /* Non-stream: the promised length is not delivered. */
    run("POST", "/v1/chat/completions", "{}", "cut=1", NULL, &t);
    assert_int_equal(t.n, 1);
    const char *body = strstr(t.seg[0], "\r\n\r\n") + 4;
    unsigned long promised = strtoul(strstr(t.seg[0], "Content-Length: ") + 16, NULL, 10);
    assert_true((size_t)(t.seg[0] + t.len[0] - body) < promised);
    assert_int_equal(t.end, FAKEGEN_END_CLOSE);
    transcript_free(&t);
}

static void test_stream_keepalive(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true}", "keepalive=3500,ka_every=1000,ttft=50,chunks=1", &t);
    /* head, 3 keep-alives, role, 1 content, finish, [DONE], terminator */
    assert_int_equal(t.n, 9);
    assert_int_equal(t.delay[0], 0);
    for (int i = 1; i <= 3; i++) {
        assert_string_equal(chunk_payload(t.seg[i], t.len[i]), ": keep-alive\n\n");
        assert_int_equal(t.delay[i], 1000);
    }
    assert_int_equal(t.delay[4], 500); /* the rest of the 3.5 s */
    assert_non_null(strstr(t.seg[4], "\"role\":\"assistant\""));
    assert_int_equal(t.delay[5], 50);
    assert_non_null(strstr(t.seg[5], "tok0 "));
    transcript_free(&t);

    /* Non-stream: blank lines, then the JSON answer in the same chunked body. */
    run("POST", "/v1/chat/completions", "{}", "keepalive=2000,ttft=30,chunks=2,chunk_ms=10", NULL,
        &t);
    assert_int_equal(t.n, 5);
    assert_non_null(strstr(t.seg[0], "Content-Type: application/json\r\n"));
    assert_non_null(strstr(t.seg[0], "Transfer-Encoding: chunked\r\n"));
    assert_string_equal(chunk_payload(t.seg[1], t.len[1]), "\n");
    assert_string_equal(chunk_payload(t.seg[2], t.len[2]), "\n");
    assert_int_equal(t.delay[3], 30 + 10);
    cJSON *j = cJSON_Parse(chunk_payload(t.seg[3], t.len[3]));
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    cJSON_Delete(j);
    assert_string_equal(t.seg[4], "0\r\n\r\n");
    transcript_free(&t);
}

/* max_inflight=N: at N requests already being answered, a 429 at once instead. */
static void test_max_inflight(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"m\",\"stream\":true}";
    for (uint32_t inflight = 2; inflight <= 3; inflight++) {
        struct fakegen_request req = {.method = "POST", .method_len = 4, .path = "/v1/chat/completions",
                                      .path_len = 20, .body = body, .body_len = strlen(body),
                                      .inflight = inflight};
        struct fakegen *g = NULL;
        assert_int_equal(fakegen_new(&req, "max_inflight=3,ttft=500", NULL, &g), 0);
        assert_int_equal(fakegen_status(g), inflight < 3 ? 200 : 429);
        assert_int_equal(fakegen_get_opts(g)->ttft_ms, inflight < 3 ? 500 : 0);
        fakegen_free(g);
    }
    struct fakegen_opts o;
    char err[128];
    assert_int_equal(fakegen_pick("max_inflight=0", 0, &o, err, sizeof err), -1);
}

static void test_keepalive_is_lazy(void **state)
{
    /* A day of 1 ms keep-alives would be 86 million segments if built up front. */
    const char *body = "{\"stream\":true}";
    struct fakegen_request req = {"POST", 4, "/v1/chat/completions", 20, body, strlen(body), false, NULL, 0, 0};
    struct fakegen *g;
    assert_int_equal(fakegen_new(&req, "keepalive=86400000,ka_every=1", NULL, &g), 0);
    struct fakegen_seg s;
    assert_int_equal(fakegen_next(g, &s), 1); /* head */
    assert_int_equal(fakegen_next(g, &s), 1);
    const char *first = s.data;
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(fakegen_next(g, &s), 1);
        assert_int_equal(s.delay_ms, 1);
        assert_int_equal(s.len, strlen("e\r\n: keep-alive\n\n\r\n"));
        assert_ptr_equal(s.data, first); /* one reused buffer, not a list */
    }
    fakegen_free(g);
}

/* A body of `bytes` bytes: {"stream":true,"messages":[{"role":"user","content":"xxx..."}]}. */
static char *prompt_body(size_t bytes, bool stream)
{
    const char *head = stream ? "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\""
                              : "{\"messages\":[{\"role\":\"user\",\"content\":\"";
    const char *tail = "\"}]}";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(bytes > fixed);
    char *b = malloc(bytes + 1);
    assert_non_null(b);
    strcpy(b, head);
    memset(b + strlen(head), 'x', bytes - fixed);
    strcpy(b + bytes - strlen(tail), tail);
    assert_int_equal(strlen(b), bytes);
    return b;
}

static void test_ttft_per_ktok(void **state)
{
    (void)state;
    struct transcript t;
    const char *behavior = "ttft=100,ttft_per_ktok=50,chunks=2,chunk_ms=10";
    /* 8,000 bytes are 2,000 prompt tokens: 100 + 2 x 50 ms before the first content chunk. */
    char *long_prompt = prompt_body(8000, true);
    chat_stream(long_prompt, behavior, &t);
    assert_int_equal(t.status, 200);
    assert_int_equal(t.delay[0], 0); /* the head and the role chunk go out at once */
    assert_int_equal(t.delay[1], 0);
    assert_int_equal(t.delay[2], 200);
    assert_int_equal(t.delay[3], 10); /* only the first token pays for the prompt */
    transcript_free(&t);
    free(long_prompt);

    /* A short prompt (400 bytes, 100 tokens) adds 5 ms. */
    char *short_prompt = prompt_body(400, true);
    chat_stream(short_prompt, behavior, &t);
    assert_int_equal(t.delay[2], 105);
    transcript_free(&t);
    free(short_prompt);

    /* A whole (non-stream) answer comes after ttft with the prompt's share, plus the chunks. */
    char *long_plain = prompt_body(40000, false);
    chat_stream(long_plain, behavior, &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.delay[0], 100 + 10 * 50 + 10);
    transcript_free(&t);
    free(long_plain);

    /* Without the directive the prompt's size changes nothing. */
    char *plain = prompt_body(40000, true);
    chat_stream(plain, "ttft=100,chunks=2", &t);
    assert_int_equal(t.delay[2], 100);
    transcript_free(&t);
    free(plain);

    struct fakegen_opts o;
    char err[160];
    assert_int_equal(fakegen_pick("ttft_per_ktok=7", 0, &o, err, sizeof err), 0);
    assert_int_equal(o.ttft_per_ktok_ms, 7);
    assert_int_equal(o.ttft_ms, 0); /* pick parses; the prompt is applied per request */
    assert_int_equal(fakegen_pick("ttft_per_ktok", 0, &o, err, sizeof err), -1);
    assert_int_equal(fakegen_pick("ttft_per_ktok=-1", 0, &o, err, sizeof err), -1);
}

static void test_status_retry_after(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true}", "status=429,retry_after=7", &t);
    assert_int_equal(t.status, 429);
    assert_true(strncmp(t.seg[0], "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0);
    assert_non_null(strstr(t.seg[0], "Retry-After: 7\r\n"));
    assert_non_null(strstr(t.seg[0], "Content-Type: application/json\r\n"));
    cJSON *j = whole_body_json(&t);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    assert_non_null(cJSON_GetObjectItem(e, "param"));
    assert_non_null(cJSON_GetObjectItem(e, "code"));
    cJSON_Delete(j);
    assert_int_equal(t.end, FAKEGEN_END_KEEP_ALIVE);
    transcript_free(&t);

    chat_stream("{}", "status=503,ttft=40", &t);
    assert_int_equal(t.delay[0], 40);
    j = whole_body_json(&t);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
        "Server Overloaded");
    cJSON_Delete(j);
    assert_null(strstr(t.seg[0], "Retry-After"));
    transcript_free(&t);
}

static void test_html(void **state)
{
    struct transcript t;
    chat_stream("{}", "status=502,html,close", &t);
    assert_int_equal(t.n, 1);
    assert_true(strncmp(t.seg[0], "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    assert_non_null(strstr(t.seg[0], "Content-Type: text/html\r\n"));
    assert_non_null(strstr(t.seg[0], "Connection: close\r\n"));
    assert_non_null(strstr(t.seg[0], "\r\n\r\n<html>"));
    assert_int_equal(t.end, FAKEGEN_END_CLOSE);
    transcript_free(&t);
}

static void test_nonstream_json(void **state)
{
    const char *body =
        "{\"model\":\"deepseek-r1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct transcript t;
    run("POST", "/v1/chat/completions", body, "chunks=3,reasoning=1,ttft=100,chunk_ms=10,stall=5",
        NULL, &t);
    assert_int_equal(t.delay[0], 100 + 2 * 10 + 5);
    cJSON *j = whole_body_json(&t);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "deepseek-r1");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(c0, "message");
    assert_string_equal(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant");
    assert_string_equal(cJSON_GetObjectItem(msg, "content")->valuestring, "tok0 tok1 ");
    assert_string_equal(cJSON_GetObjectItem(msg, "reasoning_content")->valuestring, "think0 ");
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop");
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, (int)strlen(body) / 4);
    assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 3);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(u, "completion_tokens_details"), "reasoning_tokens")
            ->valueint,
        1);
    cJSON_Delete(j);
    transcript_free(&t);

    run("POST", "/v1/chat/completions", "{}", "no_usage,big=10000", NULL, &t);
    j = whole_body_json(&t);
    assert_null(cJSON_GetObjectItem(j, "usage"));
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "fake-model");
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_int_equal(
        strlen(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring),
        10000);
    cJSON_Delete(j);
    transcript_free(&t);

    run("POST", "/v1/chat/completions", "{}", "badjson", NULL, &t);
    const char *b = strstr(t.seg[0], "\r\n\r\n") + 4;
    cJSON *bad = cJSON_Parse(b);
    assert_null(bad);
    transcript_free(&t);
}

/* A non-stream answer of a million short chunks is one segment of about 12 MB:
   it must come whole, not be dropped as if memory had run out. */
static void test_nonstream_many_chunks_whole(void **state)
{
    (void)state;
    struct transcript t;
    run("POST", "/v1/chat/completions", "{}", "reasoning=1000000,chunks=0", NULL, &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.end, FAKEGEN_END_KEEP_ALIVE);
    assert_true(t.len[0] <= FAKEGEN_MAX_SEGMENT_BYTES);
    cJSON *j = whole_body_json(&t);
    assert_non_null(j);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(c0, "message");
    assert_string_equal(cJSON_GetObjectItem(msg, "content")->valuestring, "tok0 ");
    const char *thinking = cJSON_GetObjectItem(msg, "reasoning_content")->valuestring;
    assert_int_equal(strlen(thinking), 11888890); /* "think0 " .. "think999999 " */
    assert_non_null(strstr(thinking, "think999999 "));
    cJSON_Delete(j);
    transcript_free(&t);
}

static void test_stream_reasoning(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                "chunks=4,reasoning=2", &t);
    /* head, role, 4 content, finish, usage, [DONE], terminator */
    assert_int_equal(t.n, 10);
    for (int i = 0; i < 4; i++) {
        cJSON *c = event_json(t.seg[2 + i], t.len[2 + i]);
        if (i < 2) {
            assert_non_null(delta_str(c, "reasoning_content"));
            assert_null(delta_str(c, "content"));
        } else {
            assert_null(delta_str(c, "reasoning_content"));
            assert_non_null(delta_str(c, "content"));
        }
        cJSON_Delete(c);
    }
    cJSON *u = event_json(t.seg[7], t.len[7]);
    const cJSON *usage = cJSON_GetObjectItem(u, "usage");
    assert_int_equal(cJSON_GetObjectItem(usage, "completion_tokens")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(usage, "completion_tokens_details"),
                                         "reasoning_tokens")
                         ->valueint,
                     2);
    cJSON_Delete(u);
    transcript_free(&t);
}

/* What a chat answer said: text, reasoning, usage, content events and how it ended. */
struct answer {
    char text[512], reasoning[512];
    int prompt, completion, reasoning_tokens;
    size_t events;
    uint32_t first_delay;
    enum fakegen_end end;
};

static void read_usage(const cJSON *u, struct answer *a)
{
    a->prompt = cJSON_GetObjectItem(u, "prompt_tokens")->valueint;
    a->completion = cJSON_GetObjectItem(u, "completion_tokens")->valueint;
    a->reasoning_tokens =
        cJSON_GetObjectItem(cJSON_GetObjectItem(u, "completion_tokens_details"), "reasoning_tokens")
            ->valueint;
}

/* A chat request continuing so_far (extra: more members of that message), streamed or not. */
static void continued(const char *so_far, const char *extra, const char *behavior, bool stream,
                      struct answer *a, char *body, size_t cap)
{
    snprintf(body, cap,
             "{\"stream\":%s,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"%s\"%s}]}",
             stream ? "true" : "false", so_far, extra);
    struct transcript t;
    chat_stream(body, behavior, &t);
    memset(a, 0, sizeof *a);
    a->end = t.end;
    if (!stream) {
        cJSON *j = whole_body_json(&t);
        const cJSON *m = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "message");
        snprintf(a->text, sizeof a->text, "%s", cJSON_GetObjectItem(m, "content")->valuestring);
        const cJSON *r = cJSON_GetObjectItem(m, "reasoning_content");
        if (r) snprintf(a->reasoning, sizeof a->reasoning, "%s", r->valuestring);
        read_usage(cJSON_GetObjectItem(j, "usage"), a);
        a->first_delay = t.delay[0];
        cJSON_Delete(j);
        transcript_free(&t);
        return;
    }
    for (size_t i = 1; i < t.n; i++) {
        const char *p = chunk_payload(t.seg[i], t.len[i]);
        if (strncmp(p, "data: {", 7) != 0) continue;
        cJSON *ev = event_json(t.seg[i], t.len[i]);
        const char *c = delta_str(ev, "content"), *r = delta_str(ev, "reasoning_content");
        if ((c && *c) || r) {
            if (a->events++ == 0) a->first_delay = t.delay[i];
            strncat(a->text, c ? c : "", sizeof a->text - strlen(a->text) - 1);
            strncat(a->reasoning, r ? r : "", sizeof a->reasoning - strlen(a->reasoning) - 1);
        }
        if (cJSON_GetObjectItem(ev, "usage")) read_usage(cJSON_GetObjectItem(ev, "usage"), a);
        cJSON_Delete(ev);
    }
    transcript_free(&t);
}

/* A trailing assistant message that begins the answer: the rest only, usage of the rest. */
static void test_continuation(void **state)
{
    const char full[] = "tok0 tok1 tok2 tok3 tok4 ";
    const size_t cuts[] = {1, 3, 5, 7, 9, 12, 20, 24, sizeof full - 1};
    const char *extras[] = {"", ",\"prefix\":true"};
    char body[1024], so_far[64];
    struct answer a;
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        for (int stream = 0; stream < 2; stream++) {
            snprintf(so_far, sizeof so_far, "%.*s", (int)cuts[c], full);
            continued(so_far, extras[stream], "chunks=5,ttft=100,chunk_ms=10", stream, &a, body,
                      sizeof body);
            assert_string_equal(a.text, full + cuts[c]); /* so_far + text == full */
            /* the chunks left: "tok0 to" leaves "k1 ", "tok2 ".."tok4 " */
            int left = 5 - (int)(cuts[c] / 5);
            assert_int_equal(a.completion, left);
            if (stream) assert_int_equal(a.events, (size_t)left);
            assert_int_equal(a.prompt, (int)strlen(body) / 4); /* the prefix is prompt */
            if (stream && left) assert_int_equal(a.first_delay, 100);
            if (!stream) assert_int_equal(a.first_delay, 100 + (left > 1 ? left - 1 : 0) * 10);
            assert_int_equal(a.end, FAKEGEN_END_KEEP_ALIVE);
        }
    }
    /* continue_final_message (vLLM) is the same trailing message */
    snprintf(body, sizeof body,
             "{\"continue_final_message\":true,\"add_generation_prompt\":false,\"messages\":["
             "{\"role\":\"assistant\",\"content\":\"tok0 tok1 t\"}]}");
    struct transcript t;
    chat_stream(body, "chunks=3", &t);
    cJSON *j = whole_body_json(&t);
    const cJSON *m =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "message");
    assert_string_equal(cJSON_GetObjectItem(m, "content")->valuestring, "ok2 ");
    cJSON_Delete(j);
    transcript_free(&t);

    /* big=: the lorem run goes on mid-word */
    continued("lorem ipsum do", "", "big=40,chunks=4", true, &a, body, sizeof body);
    assert_string_equal(a.text, "lor sit amet consectetur a"); /* 40 bytes in all */
    assert_int_equal(a.completion, 3);
}

/* Reasoning is not done again; cut= counts the continuation's own chunks. */
static void test_continuation_reasoning_and_cut(void **state)
{
    char body[1024];
    struct answer a;
    for (int stream = 0; stream < 2; stream++) {
        continued("tok0 ", "", "chunks=4,reasoning=2", stream, &a, body, sizeof body);
        assert_string_equal(a.text, "tok1 ");
        assert_string_equal(a.reasoning, "");
        assert_int_equal(a.completion, 1);
        assert_int_equal(a.reasoning_tokens, 0);
    }
    continued("tok0 tok1 ", "", "chunks=6,cut=2", true, &a, body, sizeof body);
    assert_string_equal(a.text, "tok2 tok3 ");
    assert_int_equal(a.end, FAKEGEN_END_CLOSE);
}

/* Anything but a prefix of the answer: the whole answer, as for any other request. */
static void test_continuation_not_prefix(void **state)
{
    char body[1024];
    struct answer a;
    const char *others[] = {"Hello there", "tok1 ", "tok0 tok1 tok2 tok3 tok4 tok5 ", "think0 ",
                            "tok0 \\u00e9"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        continued(others[i], "", "chunks=5", true, &a, body, sizeof body);
        assert_string_equal(a.text, "tok0 tok1 tok2 tok3 tok4 ");
        assert_int_equal(a.completion, 5);
    }
    /* a tool call's arguments are not continued */
    continued("tok0 ", "", "chunks=2,tool_call", false, &a, body, sizeof body);
    assert_string_equal(a.text, "tok0 tok1 ");
    /* the assistant message is not the last one */
    struct transcript t;
    chat_stream("{\"messages\":[{\"role\":\"assistant\",\"content\":\"tok0 \"},{\"role\":\"user\","
                "\"content\":\"go on\"}]}",
                "chunks=2", &t);
    cJSON *j = whole_body_json(&t);
    const cJSON *m =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "message");
    assert_string_equal(cJSON_GetObjectItem(m, "content")->valuestring, "tok0 tok1 ");
    cJSON_Delete(j);
    transcript_free(&t);
}

static void test_stream_oddities(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true}", "chunks=1,no_done", &t);
    /* head, role, content, finish, terminator */
    assert_int_equal(t.n, 5);
    assert_non_null(strstr(t.seg[3], "\"stop\""));
    assert_string_equal(t.seg[4], "0\r\n\r\n");
    assert_int_equal(t.end, FAKEGEN_END_KEEP_ALIVE);
    transcript_free(&t);

    chat_stream("{\"stream\":true}", "chunks=1,badjson", &t);
    const char *p = chunk_payload(t.seg[2], t.len[2]);
    assert_true(strncmp(p, "data: ", 6) == 0);
    assert_null(cJSON_Parse(p + 6));
    assert_non_null(strstr(t.seg[3], "tok0 ")); /* the stream goes on */
    transcript_free(&t);

    chat_stream("{}", "garbage", &t);
    assert_int_equal(t.n, 3);
    assert_non_null(strstr(t.seg[0], "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(t.seg[0], "text/event-stream"));
    p = chunk_payload(t.seg[1], t.len[1]);
    const char *d = strstr(p, "data: ");
    assert_non_null(d);
    assert_null(cJSON_Parse(d + 6));
    transcript_free(&t);

    chat_stream("{\"stream\":true}", "hang", &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.end, FAKEGEN_END_HANG);
    assert_int_equal(t.status, 0);
    transcript_free(&t);

    chat_stream("{\"stream\":true}", "reset", &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.end, FAKEGEN_END_RESET);
    transcript_free(&t);

    /* multiline: every event's JSON over two data lines, whole once joined with "\n" */
    chat_stream("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", "chunks=1,multiline", &t);
    assert_int_equal(t.n, 7); /* head, role, content, finish, usage, [DONE], terminator */
    for (size_t i = 1; i <= 4; i++) {
        p = chunk_payload(t.seg[i], t.len[i]);
        const char *second = strstr(p, ",\ndata: \"choices\":");
        assert_non_null(second);
        char joined[4096];
        snprintf(joined, sizeof joined, "%.*s\n%s", (int)(second + 1 - (p + 6)), p + 6, second + 8);
        cJSON *j = cJSON_Parse(joined);
        assert_non_null(j);
        cJSON_Delete(j);
    }
    transcript_free(&t);

    chat_stream("{\"stream\":true}", "chunks=2,stall=300,chunk_ms=5", &t);
    assert_int_equal(t.delay[3], 305); /* the pause comes after the first content chunk */
    transcript_free(&t);
}

static void test_fake_field_overrides(void **state)
{
    struct transcript t;
    chat_stream("{\"stream\":true,\"fake\":\"status=503\"}", "ok", &t);
    assert_int_equal(t.status, 503);
    transcript_free(&t);
    chat_stream("{\"fake\":\"bogus=1\"}", "ok", &t);
    assert_int_equal(t.status, 400);
    assert_non_null(strstr(t.seg[0], "bad behaviour"));
    transcript_free(&t);
    /* A profile name works as a behaviour too. */
    chat_stream("{\"stream\":true}", "healthy", &t);
    assert_int_equal(t.n, 2 + 30 + 3);
    assert_int_equal(t.delay[2], 300);
    assert_int_equal(t.delay[3], 33);
    transcript_free(&t);
}

static void test_other_endpoints(void **state)
{
    struct transcript t;
    run("POST", "/v1/completions", "{\"model\":\"base\",\"stream\":true}", "chunks=2", NULL, &t);
    /* head, 2 content (no role chunk), finish, [DONE], terminator */
    assert_int_equal(t.n, 6);
    cJSON *c = event_json(t.seg[1], t.len[1]);
    assert_string_equal(cJSON_GetObjectItem(c, "object")->valuestring, "text_completion");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0), "text")
            ->valuestring,
        "tok0 ");
    cJSON_Delete(c);
    transcript_free(&t);

    run("POST", "/v1/completions", "{}", "chunks=2", NULL, &t);
    cJSON *j = whole_body_json(&t);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "text")
            ->valuestring,
        "tok0 tok1 ");
    cJSON_Delete(j);
    transcript_free(&t);

    run("POST", "/v1/embeddings", "{\"model\":\"e\",\"input\":[\"a\",\"b\",\"c\"]}", NULL, NULL,
        &t);
    j = whole_body_json(&t);
    const cJSON *data = cJSON_GetObjectItem(j, "data");
    assert_int_equal(cJSON_GetArraySize(data), 3);
    const cJSON *vec = cJSON_GetObjectItem(cJSON_GetArrayItem(data, 2), "embedding");
    assert_true(cJSON_GetArraySize(vec) > 0);
    assert_true(cJSON_IsNumber(cJSON_GetArrayItem(vec, 0)));
    cJSON_Delete(j);
    transcript_free(&t);

    run("GET", "/v1/models", NULL, NULL, NULL, &t);
    j = whole_body_json(&t);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "list");
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")) > 0);
    cJSON_Delete(j);
    transcript_free(&t);

    run("GET", "/v1/nothing?x=1", NULL, NULL, NULL, &t);
    assert_int_equal(t.status, 404);
    assert_true(strncmp(t.seg[0], "HTTP/1.1 404", 12) == 0);
    transcript_free(&t);

    /* Query strings are ignored; paths without /v1 work too. */
    run("POST", "/chat/completions?a=b", "{}", NULL, NULL, &t);
    assert_int_equal(t.status, 200);
    transcript_free(&t);
}

/* ---- the sim transport: fakegen behind transport_sim_ops on a real loop ---- */

struct simrun {
    uv_loop_t loop;
    struct transport_pool *pool;
    struct cfg_provider prov;
    struct transport_conn *conn;
    const char *request;
    struct buf got;
    int connects, errors, data_calls;
    bool reused;
    enum transport_err err;
    bool pause_on_first; /* pause at the first on_data, resume from a timer */
    bool paused_now;
    int data_while_paused;
    bool release_on_first; /* release at the first on_data */
    bool pool_done;
    uv_timer_t resume;
};

static void sim_on_connect(void *ud, bool reused)
{
    struct simrun *r = ud;
    r->connects++;
    r->reused = reused;
    assert_int_equal(transport_write(r->conn, r->request, strlen(r->request)), 0);
}

static void sim_resume_cb(uv_timer_t *t)
{
    struct simrun *r = t->data;
    r->paused_now = false;
    transport_pause(r->conn, false);
    uv_close((uv_handle_t *)t, NULL);
}

static void sim_on_data(void *ud, char *data, size_t len)
{
    struct simrun *r = ud;
    if (r->paused_now) r->data_while_paused++;
    r->data_calls++;
    assert_int_equal(buf_append(&r->got, data, len), 0);
    if (r->release_on_first) {
        transport_release(r->conn, false);
        r->conn = NULL;
        return;
    }
    if (r->pause_on_first && r->data_calls == 1) {
        transport_pause(r->conn, true);
        transport_pause(r->conn, true);
        r->paused_now = true;
        uv_timer_init(&r->loop, &r->resume);
        r->resume.data = r;
        uv_timer_start(&r->resume, sim_resume_cb, 60, 0);
    }
}

static void sim_on_error(void *ud, enum transport_err err)
{
    struct simrun *r = ud;
    r->errors++;
    r->err = err;
}

static const struct transport_events sim_events = {sim_on_connect, sim_on_data, sim_on_error};

static void sim_setup(struct simrun *r, const char *profile)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    r->pool = transport_pool_new(&r->loop);
    assert_non_null(r->pool);
    r->prov.name = "sim";
    r->prov.kind = CFG_PROVIDER_SIM;
    r->prov.host = "";
    r->prov.base_path = "";
    r->prov.sim_profile = (char *)profile;
    r->prov.max_idle_conns = 4;
    r->prov.idle_conn_timeout_ms = 60000;
    buf_init(&r->got, 0);
}

static void sim_open_and_run(struct simrun *r, const char *request)
{
    r->request = request;
    buf_reset(&r->got);
    assert_int_equal(transport_open(r->pool, &r->prov, 1000, &sim_events, r, &r->conn), 0);
    assert_int_equal(r->conn->ops, &transport_sim_ops);
    int connects = r->connects;
    /* No callback from inside the call; no write before on_connect. */
    assert_int_equal(transport_write(r->conn, "x", 1), -ENOTCONN);
    assert_int_equal(r->connects, connects);
    uv_run(&r->loop, UV_RUN_DEFAULT); /* returns once the sim has nothing left to send */
}

static void pool_done_cb(void *ud)
{
    ((struct simrun *)ud)->pool_done = true;
}

static void sim_teardown(struct simrun *r)
{
    if (r->conn) transport_release(r->conn, false);
    transport_pool_close(r->pool, pool_done_cb, r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_true(r->pool_done);
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle closed */
    buf_free(&r->got);
}

static char *make_request(const char *body)
{
    static char req[1024];
    snprintf(req, sizeof req,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return req;
}

static void test_sim_stream_and_reuse(void **state)
{
    struct simrun r;
    sim_setup(&r, "chunks=3,ttft=30,chunk_ms=10");
    const char *req = make_request("{\"model\":\"m\",\"stream\":true}");
    uint64_t t0 = uv_now(&r.loop);
    sim_open_and_run(&r, req);
    uv_update_time(&r.loop);
    assert_true(uv_now(&r.loop) - t0 >= 50); /* ttft + 2 gaps */
    assert_int_equal(r.connects, 1);
    assert_false(r.reused);
    assert_int_equal(r.errors, 0);
    assert_true(strncmp(r.got.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r.got.data, "data: [DONE]"));
    assert_true(r.got.len > 5 && strcmp(r.got.data + r.got.len - 5, "0\r\n\r\n") == 0);

    /* Back to the pool, and out again as a reused connection. */
    transport_release(r.conn, true);
    r.conn = NULL;
    sim_open_and_run(&r, req);
    assert_int_equal(r.connects, 2);
    assert_true(r.reused);
    assert_non_null(strstr(r.got.data, "data: [DONE]"));
    struct transport_stats st;
    transport_pool_stats(r.pool, &st);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.reused, 1);
    sim_teardown(&r);
}

static void test_sim_cut_is_eof(void **state)
{
    struct simrun r;
    sim_setup(&r, "chunks=5,cut=2");
    sim_open_and_run(&r, make_request("{\"stream\":true}"));
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TRANSPORT_ERR_EOF);
    assert_null(strstr(r.got.data, "[DONE]"));
    assert_non_null(strstr(r.got.data, "tok1 "));
    assert_null(strstr(r.got.data, "tok2 "));
    assert_int_equal(transport_write(r.conn, "x", 1), -EPIPE);
    sim_teardown(&r);

    sim_setup(&r, "reset");
    sim_open_and_run(&r, make_request("{}"));
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.got.len, 0);
    sim_teardown(&r);
}

static void test_sim_pause_holds_delivery(void **state)
{
    struct simrun r;
    sim_setup(&r, "chunks=4");
    r.pause_on_first = true;
    uint64_t t0 = uv_now(&r.loop);
    sim_open_and_run(&r, make_request("{\"stream\":true}"));
    uv_update_time(&r.loop);
    assert_true(uv_now(&r.loop) - t0 >= 60);
    assert_int_equal(r.data_while_paused, 0);
    assert_true(r.data_calls > 1);
    assert_non_null(strstr(r.got.data, "data: [DONE]"));
    sim_teardown(&r);
}

static void test_sim_release_inside_callback(void **state)
{
    struct simrun r;
    sim_setup(&r, "chunks=50");
    r.release_on_first = true;
    sim_open_and_run(&r, make_request("{\"stream\":true}"));
    assert_int_equal(r.data_calls, 1);
    assert_int_equal(r.errors, 0);
    sim_teardown(&r);
}

static void test_sim_hang_and_profile(void **state)
{
    struct simrun r;
    sim_setup(&r, "hang");
    sim_open_and_run(&r, make_request("{}"));
    assert_int_equal(r.connects, 1);
    assert_int_equal(r.got.len, 0);
    assert_int_equal(r.errors, 0);
    sim_teardown(&r);

    /* A profile name, and a body "fake" field overriding it. */
    sim_setup(&r, "healthy");
    sim_open_and_run(&r, make_request("{\"fake\":\"status=429,retry_after=3\"}"));
    assert_true(strncmp(r.got.data, "HTTP/1.1 429 ", 13) == 0);
    assert_non_null(strstr(r.got.data, "Retry-After: 3\r\n"));
    sim_teardown(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_percentages_exact),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_stream_sequence),
        cmocka_unit_test(test_stream_include_usage),
        cmocka_unit_test(test_stream_cut),
        cmocka_unit_test(test_stream_keepalive),
        cmocka_unit_test(test_keepalive_is_lazy),
        cmocka_unit_test(test_max_inflight),
        cmocka_unit_test(test_ttft_per_ktok),
        cmocka_unit_test(test_status_retry_after),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_nonstream_json),
        cmocka_unit_test(test_nonstream_many_chunks_whole),
        cmocka_unit_test(test_stream_reasoning),
        cmocka_unit_test(test_stream_oddities),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_continuation_reasoning_and_cut),
        cmocka_unit_test(test_continuation_not_prefix),
        cmocka_unit_test(test_fake_field_overrides),
        cmocka_unit_test(test_other_endpoints),
        cmocka_unit_test(test_sim_stream_and_reuse),
        cmocka_unit_test(test_sim_cut_is_eof),
        cmocka_unit_test(test_sim_pause_holds_delivery),
        cmocka_unit_test(test_sim_release_inside_callback),
        cmocka_unit_test(test_sim_hang_and_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
