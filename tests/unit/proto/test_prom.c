#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "proto/prom.h"

static const char vllm_body[] =
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"qwen\"} 3.0\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"other\"} 40.0\n"
    "# TYPE vllm:num_requests_waiting gauge\r\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"qwen\"} 7.0 1700000000000\r\n"
    "vllm:num_requests_waiting_total{model_name=\"qwen\"} 99\n"
    "vllm:kv_cache_usage_perc{model_name=\"qwen\"} 0.625\n"
    "vllm:kv_cache_usage_perc{model_name=\"a \\\"quoted\\\\ \\n name\"} 0.5\n"
    "vllm:num_requests_waiting {  model_name = \"qwen\" , } 1\n"
    "vllm:num_requests_waiting NaN\n"
    "vllm:num_requests_waiting{model_name=\"qwen\"} +Inf\n"
    "this is not a metric line\n"
    "vllm:num_requests_running 2";

static struct prom_query vllm_query(void)
{
    struct prom_query q = {
        .names = {"vllm:num_requests_waiting", "vllm:num_requests_running",
                  "vllm:kv_cache_usage_perc"},
        .nnames = 3,
        .label = "model_name",
        .values = {"qwen"},
        .nvalues = 1,
    };
    return q;
}

static void check_vllm(const struct prom_parser *p)
{
    /* waiting: 7 + 1 (NaN and +Inf skipped); running: 3 (other model out) + 2 (no label) */
    assert_true(p->sum[0] == 8.0);
    assert_int_equal(p->count[0], 2);
    assert_true(p->sum[1] == 5.0);
    assert_int_equal(p->count[1], 2);
    assert_true(p->sum[2] == 0.625);
    assert_int_equal(p->count[2], 1);
    assert_int_equal(p->bad_lines, 1);
    assert_int_equal(p->lines, 14);
}

static void test_whole_body(void **state)
{
    struct prom_query q = vllm_query();
    struct prom_parser p;
    prom_init(&p, &q);
    prom_feed(&p, vllm_body, strlen(vllm_body));
    prom_finish(&p);
    check_vllm(&p);
}

/* Any cut into two feeds, and one byte at a time, reads the same. */
static void test_every_split(void **state)
{
    struct prom_query q = vllm_query();
    size_t len = strlen(vllm_body);
    for (size_t cut = 0; cut <= len; cut++) {
        struct prom_parser p;
        prom_init(&p, &q);
        prom_feed(&p, vllm_body, cut);
        prom_feed(&p, vllm_body + cut, len - cut);
        prom_finish(&p);
        check_vllm(&p);
    }
    struct prom_parser p;
    prom_init(&p, &q);
    for (size_t i = 0; i < len; i++)
        prom_feed(&p, vllm_body + i, 1);
    prom_finish(&p);
    check_vllm(&p);
}

static void test_label_escapes(void **state)
{
    struct prom_query q = {.names = {"m"},
                           .nnames = 1,
                           .label = "model_name",
                           .values = {"a \"quoted\\ \n name"},
                           .nvalues = 1};
    size_t k;
    double v;
    const char *line = "m{model_name=\"a \\\"quoted\\\\ \\n name\"} 0.5";
    assert_int_equal(prom_line(&q, line, strlen(line), &k, &v), 1);
    assert_true(v == 0.5);
    const char *other = "m{model_name=\"a\"} 0.5";
    assert_int_equal(prom_line(&q, other, strlen(other), &k, &v), 0);
}

static void test_malformed(void **state)
{
    struct prom_query q = {.names = {"m"}, .nnames = 1};
    const char *bad[] = {
        "m{",    "m{a=\"1\"", "m{a=1} 2", "m{1a=\"x\"} 2", "m{a=\"x\" b=\"y\"} 2", "m 1 2 3",
        "m 1 x", "m",         "9m 1",     "m{a=\"x\\",     "m{a:b=\"x\"} 1",       "m 0x1z",
        "m{}1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t k;
        double v;
        assert_int_equal(prom_line(&q, bad[i], strlen(bad[i]), &k, &v), -1);
    }
    const char *ok[] = {"m 1", "m{} 1", "m{a=\"x\",} 1", " m\t1 -5", "m 1e3"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t k = 9;
        double v = 0;
        assert_int_equal(prom_line(&q, ok[i], strlen(ok[i]), &k, &v), 1);
        assert_int_equal(k, 0);
    }
}

/* A line past the buffer is skipped whole, and the next one still counts. */
static void test_long_line(void **state)
{
    struct prom_query q = {.names = {"m"}, .nnames = 1};
    static char body[3 * PROM_MAX_LINE];
    size_t n = 0;
    memcpy(body + n, "m{a=\"", 5);
    n += 5;
    memset(body + n, 'x', PROM_MAX_LINE);
    n += PROM_MAX_LINE;
    memcpy(body + n, "\"} 5\nm 2\n", 9);
    n += 9;
    struct prom_parser p;
    prom_init(&p, &q);
    for (size_t i = 0; i < n; i += 100)
        prom_feed(&p, body + i, n - i < 100 ? n - i : 100);
    prom_finish(&p);
    assert_int_equal(p.long_lines, 1);
    assert_int_equal(p.count[0], 1);
    assert_true(p.sum[0] == 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_body),    cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_label_escapes), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
