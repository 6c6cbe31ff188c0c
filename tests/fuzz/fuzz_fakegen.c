/*
 * Fuzz target for fakegen: the input is a behaviour string. fakegen_pick must
 * accept or refuse it with a message, never crash; a response built from it
 * (on one of a few fixed requests) is pulled segment by segment for a
 * bounded number of steps. Every segment must stay within the bound fakegen
 * promises, delays stay within a day, and an answer that ends ends for a
 * reason the behaviour asked for (never for want of memory).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/fakegen.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

/* Segments pulled per response: enough to reach the end of most answers. */
#define FUZZ_MAX_STEPS 4096
/* Bytes of behaviour string looked at; the grammar has nothing longer to say. */
#define FUZZ_MAX_BEHAVIOR 4096

struct fixed_request {
    const char *method, *path, *body;
};

static const struct fixed_request requests[] = {
    {"POST", "/v1/chat/completions",
     "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    {"POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[]}"},
    /* continuations: the answer so far as the last message, cut inside a chunk */
    {"POST", "/v1/chat/completions",
     "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
     "{\"role\":\"assistant\",\"content\":\"tok0 tok1 to\",\"prefix\":true}]}"},
    {"POST", "/v1/chat/completions",
     "{\"model\":\"m\",\"continue_final_message\":true,\"messages\":[{\"role\":\"user\","
     "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"lorem ipsum do\"}]}"},
    {"POST", "/v1/completions", "{\"model\":\"m\",\"prompt\":\"hi\",\"stream\":true}"},
    {"POST", "/v1/embeddings", "{\"model\":\"e\",\"input\":[\"a\",\"b\",\"c\"]}"},
    {"GET", "/v1/models", ""},
};

static void run(const struct fixed_request *fr, const char *behavior, uint64_t k)
{
    struct fakegen_request req = {
        .method = fr->method,
        .method_len = strlen(fr->method),
        .path = fr->path,
        .path_len = strlen(fr->path),
        .body = fr->body,
        .body_len = strlen(fr->body),
    };
    struct fakegen_counters counters = {0};
    for (uint64_t i = 0; i < k; i++)
        (void)fakegen_counters_next(&counters, behavior);
    struct fakegen *g = NULL;
    CHECK(fakegen_new(&req, behavior, &counters, &g) == 0 && g);
    const struct fakegen_opts *o = fakegen_get_opts(g);
    /* the bound for this behaviour, well below FAKEGEN_MAX_SEGMENT_BYTES for most */
    uint64_t chunks = o->chunks > o->reasoning ? o->chunks : (uint64_t)o->reasoning + 1;
    uint64_t bound = o->big + chunks * FAKEGEN_MAX_TOKEN_TEXT + FAKEGEN_SEGMENT_FRAME_BYTES;
    CHECK(bound <= FAKEGEN_MAX_SEGMENT_BYTES);
    struct fakegen_seg seg;
    int steps = 0, rc = 1;
    while (steps < FUZZ_MAX_STEPS && (rc = fakegen_next(g, &seg)) == 1) {
        CHECK(seg.len <= bound);
        CHECK(seg.delay_ms <= 24u * 3600u * 1000u);
        if (steps == 0 && seg.len) CHECK(memcmp(seg.data, "HTTP/1.1 ", 9) == 0);
        steps++;
    }
    if (rc == 0) {
        CHECK(seg.len == 0);
        /* the response ended: dropped only when asked to, never for want of memory */
        if (seg.end == FAKEGEN_END_CLOSE) CHECK(o->close || o->cut >= 0);
        if (seg.end == FAKEGEN_END_RESET) CHECK(o->reset);
        if (seg.end == FAKEGEN_END_HANG) CHECK(o->hang);
        CHECK(fakegen_next(g, &seg) == 0 && seg.len == 0);
    }
    fakegen_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_BEHAVIOR) return 0;
    char *behavior = malloc(size + 1);
    memcpy(behavior, data, size);
    behavior[size] = '\0';

    struct fakegen_opts o;
    char err[160];
    for (uint64_t k = 0; k < 3; k++) {
        memset(err, 'x', sizeof err);
        int rc = fakegen_pick(behavior, k * 41, &o, err, sizeof err);
        CHECK(rc == 0 || rc == -1);
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        if (rc == 0) {
            CHECK(err[0] == '\0');
            CHECK(o.status == 0 || (o.status >= 400 && o.status <= 599));
        } else {
            CHECK(err[0] != '\0');
        }
    }

    /* one request kind per input, chosen by its length, and the request number from its hash */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    run(&requests[size % (sizeof requests / sizeof requests[0])], behavior, h % 7);
    free(behavior);
    return 0;
}
