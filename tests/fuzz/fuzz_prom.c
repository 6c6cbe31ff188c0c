/*
 * Fuzz target for the Prometheus text reader: the sums, counts and line
 * tallies do not depend on how the body is cut into feeds (whole, at a cut
 * the input chooses, a byte at a time), and prom_line never reports a
 * matching sample with a non-finite value or an index outside the query.
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/prom.h"

static const struct prom_query query = {
    .names = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
              "m"},
    .nnames = 4,
    .label = "model_name",
    .values = {"qwen", ""},
    .nvalues = 2,
};

static void run(const uint8_t *data, size_t size, size_t step, size_t cut, struct prom_parser *p)
{
    prom_init(p, &query);
    if (cut) {
        prom_feed(p, (const char *)data, cut);
        prom_feed(p, (const char *)data + cut, size - cut);
    } else {
        for (size_t i = 0; i < size; i += step)
            prom_feed(p, (const char *)data + i, size - i < step ? size - i : step);
    }
    prom_finish(p);
}

static void same(const struct prom_parser *a, const struct prom_parser *b)
{
    if (memcmp(a->sum, b->sum, sizeof a->sum) != 0 ||
        memcmp(a->count, b->count, sizeof a->count) != 0 || a->lines != b->lines ||
        a->bad_lines != b->bad_lines || a->long_lines != b->long_lines)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct prom_parser whole, split, bytes;
    run(data, size, size ? size : 1, 0, &whole);
    run(data, size, 1, size ? (size_t)data[0] * 131 % (size + 1) : 0, &split);
    same(&whole, &split);
    if (size <= 1 << 16) {
        run(data, size, 1, 0, &bytes);
        same(&whole, &bytes);
    }
    /* each line alone */
    const char *s = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && s[i] != '\n') continue;
        size_t k = 99;
        double v = 0;
        int rc = prom_line(&query, s + start, i - start, &k, &v);
        if (rc < -1 || rc > 1) abort();
        if (rc == 1 && (k >= query.nnames || !isfinite(v))) abort();
        start = i + 1;
    }
    return 0;
}
