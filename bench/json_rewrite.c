/*
 * Micro-benchmark: the request-body rewrite on the hot path (model name,
 * "stream": true, stream_options.include_usage) on a ~100 KB chat body,
 * done by jsonx (one tokenizing pass + a splice) and by cJSON (parse, modify,
 * print). Prints microseconds per operation for each.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Isrc -I/usr/include/cjson bench/json_rewrite.c \
 *      src/proto/jsonx.c src/proto/jsonx_walk.c src/proto/jsonx_request.c src/base/buf.c \
 *      src/base/pool.c -lcjson -lpthread \
 *      -o json_rewrite && ./json_rewrite [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "base/buf.h"
#include "proto/jsonx.h"

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

/* One rewrite each way; returns bytes produced (to keep the work observable). */
static size_t rewrite_jsonx(const char *body, size_t len, struct buf *out)
{
    struct jsonx_request scan;
    if (jsonx_scan_request(body, len, &scan) != JSONX_OK)
        exit(1);
    buf_reset(out);
    if (jsonx_rewrite_request(body, len, &scan, "deepseek-reasoner", true, out) != 0)
        exit(1);
    return out->len;
}

static size_t rewrite_cjson(const char *body, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc)
        exit(1);
    cJSON_ReplaceItemInObjectCaseSensitive(doc, "model", cJSON_CreateString("deepseek-reasoner"));
    cJSON_ReplaceItemInObjectCaseSensitive(doc, "stream", cJSON_CreateTrue());
    cJSON *so = cJSON_CreateObject();
    cJSON_AddTrueToObject(so, "include_usage");
    cJSON_AddItemToObject(doc, "stream_options", so);
    char *printed = cJSON_PrintUnformatted(doc);
    if (!printed)
        exit(1);
    size_t n = strlen(printed);
    free(printed);
    cJSON_Delete(doc);
    return n;
}

/*
 * The two run in alternating batches so that a change in machine load hits
 * both alike; the mean and the best batch are printed (the best is the one
 * to compare on a busy machine).
 */
#define BENCH_BATCH 100

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : BENCH_DEFAULT_ITERATIONS;
    if (iterations < BENCH_BATCH)
        iterations = BENCH_BATCH;
    size_t len;
    char *body = make_body(&len);
    size_t out_bytes = 0;
    struct buf out;
    buf_init(&out, 0);
    double total[2] = {0, 0}, best[2] = {1e300, 1e300};
    for (int done = 0; done < iterations; done += BENCH_BATCH) {
        for (int way = 0; way < 2; way++) {
            double t0 = now_us();
            for (int i = 0; i < BENCH_BATCH; i++)
                out_bytes += way == 0 ? rewrite_jsonx(body, len, &out) : rewrite_cjson(body, len);
            double per_op = (now_us() - t0) / BENCH_BATCH;
            total[way] += per_op * BENCH_BATCH;
            if (per_op < best[way])
                best[way] = per_op;
        }
    }
    int n = iterations / BENCH_BATCH * BENCH_BATCH;
    printf("body %zu bytes, %d iterations each\n", len, n);
    printf("jsonx scan+rewrite:       mean %8.1f us/op   best batch %8.1f us/op\n", total[0] / n,
           best[0]);
    printf("cJSON parse+modify+print: mean %8.1f us/op   best batch %8.1f us/op\n", total[1] / n,
           best[1]);
    printf("(%zu bytes written in total)\n", out_bytes);
    buf_free(&out);
    free(body);
    return 0;
}
