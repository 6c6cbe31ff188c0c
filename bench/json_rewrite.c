/*
 * Micro-benchmark: the request-body rewrite on the hot path (model name,
 * "stream": true, stream_options.include_usage) on a ~100 KB chat body,
 * done by jsonx (one jsmn pass + a splice) and by cJSON (parse, modify,
 * print). Prints microseconds per operation for each.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Isrc -I/usr/include/cjson bench/json_rewrite.c \
 *      src/jsonx.c src/buf.c -lcjson -o json_rewrite && ./json_rewrite [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "buf.h"
#include "jsonx.h"

#define BENCH_BODY_BYTES 100000
#define BENCH_DEFAULT_ITERATIONS 2000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A conversation as SDKs send it: a system prompt, turns with prose, code
 * with escapes, some non-ASCII, a tool definition and sampling knobs. */
static char *make_body(size_t *len)
{
    static const char *para =
        "The gateway keeps a bounded queue per deployment and sheds load with an honest "
        "Retry-After. \\\"Quoted\\\" text, a tab\\tand a newline\\n, "
        "\\u670d\\u52a1\\u5668\\u7e41\\u5fd9, and \xe4\xbd\xa0\xe5\xa5\xbd. ";
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"model\":\"deepseek-r1\",\"temperature\":0.6,\"top_p\":0.95,"
                       "\"max_tokens\":4096,\"tools\":[{\"type\":\"function\",\"function\":"
                       "{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
                       "\"properties\":{\"city\":{\"type\":\"string\"}}}}}],\"messages\":["
                       "{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"}");
    for (int turn = 0; b.len < BENCH_BODY_BYTES; turn++) {
        buf_printf(&b, ",{\"role\":\"%s\",\"content\":\"", turn % 2 ? "assistant" : "user");
        for (int i = 0; i < 6; i++)
            buf_append_str(&b, para);
        buf_append_str(&b, "\"}");
    }
    buf_append_str(&b, "],\"stream\":false}");
    return buf_steal(&b, len);
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : BENCH_DEFAULT_ITERATIONS;
    if (iterations <= 0)
        iterations = BENCH_DEFAULT_ITERATIONS;
    size_t len;
    char *body = make_body(&len);
    size_t out_bytes = 0;

    struct buf out;
    buf_init(&out, 0);
    double t0 = now_us();
    for (int i = 0; i < iterations; i++) {
        struct jsonx_request scan;
        if (jsonx_scan_request(body, len, &scan) != JSONX_OK)
            return 1;
        buf_reset(&out);
        if (jsonx_rewrite_request(body, len, &scan, "deepseek-reasoner", true, &out) != 0)
            return 1;
        out_bytes += out.len;
    }
    double jsonx_us = (now_us() - t0) / iterations;
    buf_free(&out);

    t0 = now_us();
    for (int i = 0; i < iterations; i++) {
        cJSON *doc = cJSON_ParseWithLength(body, len);
        if (!doc)
            return 1;
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "model", cJSON_CreateString("deepseek-reasoner"));
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "stream", cJSON_CreateTrue());
        cJSON *so = cJSON_CreateObject();
        cJSON_AddTrueToObject(so, "include_usage");
        cJSON_AddItemToObject(doc, "stream_options", so);
        char *printed = cJSON_PrintUnformatted(doc);
        if (!printed)
            return 1;
        out_bytes += strlen(printed);
        free(printed);
        cJSON_Delete(doc);
    }
    double cjson_us = (now_us() - t0) / iterations;

    printf("body %zu bytes, %d iterations\n", len, iterations);
    printf("jsonx scan+rewrite:       %8.1f us/op\n", jsonx_us);
    printf("cJSON parse+modify+print: %8.1f us/op\n", cjson_us);
    printf("(%zu bytes written in total)\n", out_bytes);
    free(body);
    return 0;
}
