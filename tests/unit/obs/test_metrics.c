#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/accesslog.h"
#include "config/config.h"
#include "obs/incidents.h"
#include "obs/metrics.h"
#include "route/runtime.h"
#include "api/status_page.h"

/* Two models; m1 has two deployments on the same provider (one requests series). */
static const char cfg_text[] = "providers:\n"
                               "  pa:\n"
                               "    base_url: http://127.0.0.1:9/v1\n"
                               "  pb:\n"
                               "    base_url: http://127.0.0.1:10/v1\n"
                               "models:\n"
                               "  m1:\n"
                               "    - provider: pa\n"
                               "      model: up-a\n"
                               "    - provider: pb\n"
                               "      model: up-b\n"
                               "    - provider: pa\n"
                               "      model: up-a2\n"
                               "  'we\"ird\\name':\n"
                               "    - provider: pb\n"
                               "      model: up-w\n";

struct fx {
    struct config *cfg;
    struct runtime *rt;
    struct metrics *m;
    struct metrics_shard *s0, *s1;
    unsigned nconns[2], inflight[2];
    struct buf out;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", cfg_text, sizeof cfg_text - 1, &f->cfg, &errs);
    if (rc < 0) fail_msg("config: %s", errs.text.data ? errs.text.data : "?");
    config_errors_free(&errs);
    f->rt = runtime_new(f->cfg, NULL);
    f->m = metrics_new(f->rt, 2);
    assert_non_null(f->m);
    f->s0 = metrics_shard(f->m, 0, &f->nconns[0], &f->inflight[0]);
    f->s1 = metrics_shard(f->m, 1, &f->nconns[1], &f->inflight[1]);
    assert_non_null(f->s0);
    assert_non_null(f->s1);
    assert_null(metrics_shard(f->m, 2, NULL, NULL));
    buf_init(&f->out, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    buf_free(&f->out);
    metrics_free(f->m);
    runtime_free(f->rt);
    config_unref(f->cfg);
    free(f);
    return 0;
}

static const char *render(struct fx *f)
{
    buf_reset(&f->out);
    metrics_render(f->m, &f->out);
    buf_append(&f->out, "", 1); /* NUL-terminate */
    f->out.len--;
    return f->out.data;
}

/* The value of the sample line that starts with series + " ", or -1 when absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

static void assert_value(const char *text, const char *series, double want)
{
    double got = value_of(text, series);
    if (got != want) fail_msg("%s: got %g, want %g", series, got, want);
}

static struct accesslog_entry entry(int status, enum outcome outcome, int64_t ttft_ms,
                                    unsigned attempts)
{
    struct accesslog_entry e;
    accesslog_entry_init(&e);
    e.status = status;
    e.outcome = outcome;
    e.ttft_ms = ttft_ms;
    e.attempts = attempts;
    return e;
}

static bool name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

/*
 * Checks the exposition line by line against the text format: HELP and TYPE
 * once per family before its samples, names well formed, label values
 * quoted with only valid escapes, a number after the series, samples of a
 * family together.
 */
static void assert_valid_exposition(const char *text)
{
    char typed[64][96];
    size_t ntyped = 0;
    char current[96] = "";
    const char *p = text;
    assert_true(strlen(text) > 0);
    assert_int_equal(text[strlen(text) - 1], '\n');
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (strncmp(p, "# HELP ", 7) == 0) {
            p = eol + 1;
            continue;
        }
        if (strncmp(p, "# TYPE ", 7) == 0) {
            char name[96], type[32];
            assert_int_equal(sscanf(p + 7, "%95s %31s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            for (size_t i = 0; i < ntyped; i++)
                if (strcmp(typed[i], name) == 0) fail_msg("family %s typed twice", name);
            assert_true(ntyped < 64);
            snprintf(typed[ntyped++], sizeof typed[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            p = eol + 1;
            continue;
        }
        const char *q = p;
        assert_true(name_char(*q, true));
        while (name_char(*q, false))
            q++;
        size_t nlen = (size_t)(q - p);
        size_t clen = strlen(current);
        if (nlen < clen || strncmp(p, current, clen) != 0)
            fail_msg("sample %.*s outside its family %s", (int)nlen, p, current);
        if (nlen != clen) {
            const char *suffix = p + clen;
            size_t slen = nlen - clen;
            if (!((slen == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                  (slen == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                  (slen == 6 && strncmp(suffix, "_count", 6) == 0)))
                fail_msg("sample %.*s outside its family %s", (int)nlen, p, current);
        }
        if (*q == '{') {
            q++;
            while (*q != '}') {
                assert_true(name_char(*q, true));
                while (name_char(*q, false))
                    q++;
                assert_int_equal(*q++, '=');
                assert_int_equal(*q++, '"');
                while (*q != '"') {
                    assert_true(*q != '\n' && q < eol);
                    if (*q == '\\') {
                        q++;
                        assert_true(*q == '\\' || *q == '"' || *q == 'n');
                    }
                    q++;
                }
                q++;
                if (*q == ',') q++;
            }
            q++;
        }
        assert_int_equal(*q++, ' ');
        char *end;
        strtod(q, &end);
        if (end != eol && !(strncmp(q, "+Inf", 4) == 0 && q + 4 == eol))
            fail_msg("bad value in line: %.*s", (int)(eol - p), p);
        p = eol + 1;
    }
}

static void test_fresh_registry_renders_every_family(void **state)
{
    struct fx *f = *state;
    const char *t = render(f);
    assert_valid_exposition(t);
    static const char *const families[] = {
        "unbusy_requests_total counter",
        "unbusy_request_duration_seconds histogram",
        "unbusy_ttft_seconds histogram",
        "unbusy_inter_token_seconds histogram",
        "unbusy_tokens_total counter",
        "unbusy_attempts_total counter",
        "unbusy_failovers_total counter",
        "unbusy_hedges_total counter",
        "unbusy_retry_budget_exhausted_total counter",
        "unbusy_upstream_errors_total counter",
        "unbusy_deployment_breaker_state gauge",
        "unbusy_deployment_up gauge",
        "unbusy_deployment_inflight gauge",
        "unbusy_deployment_ttft_ewma_seconds gauge",
        "unbusy_deployment_breaker_trips_total counter",
        "unbusy_probe_up gauge",
        "unbusy_queue_depth gauge",
        "unbusy_queue_wait_seconds histogram",
        "unbusy_shed_total counter",
        "unbusy_degraded_total counter",
        "unbusy_open_connections gauge",
        "unbusy_inflight_requests gauge",
        "process_resident_memory_bytes gauge",
        "process_open_fds gauge",
        "process_cpu_seconds_total counter",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "# TYPE %s\n", families[i]);
        if (!strstr(t, want)) fail_msg("missing %s", want);
    }
    /* The series an error ratio divides exist from the start; others do not. */
    assert_value(
        t,
        "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\",outcome=\"ok\"}",
        0);
    assert_value(t,
                 "unbusy_requests_total{model=\"m1\",provider=\"pb\",status_class=\"5xx\",outcome="
                 "\"upstream_failed\"}",
                 0);
    assert_null(strstr(t, "provider=\"none\""));
    assert_null(strstr(t, "outcome=\"client_closed\""));
    /* Deployment gauges: every deployment, fresh ones closed and up. */
    assert_value(
        t,
        "unbusy_deployment_breaker_state{model=\"m1\",provider=\"pa\",deployment_model=\"up-a2\"}",
        0);
    assert_value(t, "unbusy_deployment_up{model=\"m1\",provider=\"pb\",deployment_model=\"up-b\"}",
                 1);
    assert_value(t,
                 "unbusy_deployment_ttft_ewma_seconds{model=\"m1\",provider=\"pa\",deployment_"
                 "model=\"up-a\"}",
                 1);
    assert_value(t, "unbusy_probe_up{provider=\"pa\"}", 1);
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"+Inf\"}", 0);
    assert_true(value_of(t, "process_resident_memory_bytes") > 0);
    assert_true(value_of(t, "process_open_fds") > 0);
}

static void test_requests_sum_shards_and_merge_providers(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    struct accesslog_entry ok = entry(200, OUTCOME_OK, 300, 1);
    ok.prompt_tokens = 10;
    ok.completion_tokens = 20;
    ok.reasoning_tokens = 5;
    uint64_t start = runtime_now_ms();
    metrics_request_done(f->s0, m1, &m1->deployments[0], &ok, start);
    metrics_request_done(f->s1, m1, &m1->deployments[0], &ok, start);
    metrics_request_done(f->s1, m1, &m1->deployments[2], &ok, start); /* also provider pa */
    struct accesslog_entry failed = entry(503, OUTCOME_UPSTREAM_FAILED, -1, 3);
    metrics_request_done(f->s0, m1, &m1->deployments[1], &failed, start);
    struct accesslog_entry none = entry(503, OUTCOME_UPSTREAM_FAILED, -1, 0);
    metrics_request_done(f->s0, m1, NULL, &none, start);
    /* Admission's outcomes have labels of their own, not a catch-all. */
    struct accesslog_entry limited = entry(429, OUTCOME_RATE_LIMITED, -1, 1);
    metrics_request_done(f->s1, m1, &m1->deployments[1], &limited, start);
    const char *t = render(f);
    assert_valid_exposition(t);
    assert_value(
        t,
        "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\",outcome=\"ok\"}",
        3);
    assert_value(t,
                 "unbusy_requests_total{model=\"m1\",provider=\"pb\",status_class=\"5xx\",outcome="
                 "\"upstream_failed\"}",
                 1);
    assert_value(t,
                 "unbusy_requests_total{model=\"m1\",provider=\"none\",status_class=\"5xx\","
                 "outcome=\"upstream_failed\"}",
                 1);
    assert_value(t,
                 "unbusy_requests_total{model=\"m1\",provider=\"pb\",status_class=\"4xx\",outcome="
                 "\"rate_limited\"}",
                 1);
    /* One series per (model, provider): pa appears once for the two deployments on it. */
    const char *first =
        strstr(t, "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\"");
    assert_non_null(first);
    assert_null(strstr(first + 1,
                       "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\""));
    assert_value(t, "unbusy_tokens_total{model=\"m1\",provider=\"pa\",kind=\"completion\"}", 60);
    assert_value(t, "unbusy_tokens_total{model=\"m1\",provider=\"pa\",kind=\"prompt\"}", 30);
    assert_value(t, "unbusy_tokens_total{model=\"m1\",provider=\"pa\",kind=\"reasoning\"}", 15);
    assert_value(t, "unbusy_tokens_total{model=\"m1\",provider=\"pa\",kind=\"cached\"}",
                 0); /* -1: unknown */
    assert_value(t, "unbusy_attempts_total{model=\"m1\"}", 7);
    assert_value(t, "unbusy_request_duration_seconds_count{model=\"m1\"}", 6);
    assert_value(t, "unbusy_ttft_seconds_count{model=\"m1\"}",
                 3); /* only those with a first token */
    /* The totals the status page reads. */
    struct metrics_dep_totals tot;
    assert_int_equal(metrics_dep_totals(f->m, 0, 0, &tot), 0);
    assert_int_equal(tot.requests, 2);
    assert_int_equal(tot.tokens[METRICS_TOKENS_COMPLETION], 40);
    assert_int_equal(metrics_dep_totals(f->m, 0, 1, &tot), 0);
    assert_int_equal(tot.requests, 2);
    assert_int_equal(tot.failed, 1);
    assert_int_equal(metrics_dep_totals(f->m, 0, 3, &tot), -1);
    assert_int_equal(metrics_dep_totals(f->m, 2, 0, &tot), -1);
}

static void test_histogram_buckets_are_inclusive_and_cumulative(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    const int64_t ttfts[] = {0, 50, 51, 1000, 1001, 700000};
    for (size_t i = 0; i < sizeof ttfts / sizeof ttfts[0]; i++) {
        struct accesslog_entry e = entry(200, OUTCOME_OK, ttfts[i], 1);
        metrics_request_done(i % 2 ? f->s1 : f->s0, m1, &m1->deployments[0], &e, runtime_now_ms());
    }
    const char *t = render(f);
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"0.05\"}",
                 2); /* 0 and exactly 50 ms */
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"0.1\"}", 3);
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"1\"}",
                 4); /* exactly 1 s is <= 1 */
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"2.5\"}", 5);
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"600\"}",
                 5); /* 700 s is past the last */
    assert_value(t, "unbusy_ttft_seconds_bucket{model=\"m1\",le=\"+Inf\"}", 6);
    assert_value(t, "unbusy_ttft_seconds_count{model=\"m1\"}", 6);
    double sum = value_of(t, "unbusy_ttft_seconds_sum{model=\"m1\"}");
    assert_true(sum > 702.102 - 1e-6 && sum < 702.102 + 1e-6);
    /* Another model's histogram is untouched. */
    assert_value(t, "unbusy_ttft_seconds_count{model=\"we\\\"ird\\\\name\"}", 0);
}

static void test_label_values_are_escaped(void **state)
{
    struct fx *f = *state;
    const char *t = render(f);
    assert_valid_exposition(t);
    assert_non_null(
        strstr(t, "{model=\"we\\\"ird\\\\name\",provider=\"pb\",deployment_model=\"up-w\"}"));
    assert_null(strstr(t, "model=\"we\"ird"));
}

static void test_inter_token_samples_need_a_previous_event(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    int stream_a = 0, stream_b = 0;
    metrics_content_event(f->s0, m1, &stream_a, false); /* first content: a baseline, no sample */
    metrics_content_event(f->s0, m1, &stream_a, true);
    metrics_content_event(f->s0, m1, &stream_a, true);
    metrics_content_event(f->s0, m1, &stream_b, true); /* no baseline for b: no sample */
    const char *t = render(f);
    assert_value(t, "unbusy_inter_token_seconds_count{model=\"m1\"}", 2);
    /* Back-to-back calls are well under a millisecond apart. */
    assert_value(t, "unbusy_inter_token_seconds_bucket{model=\"m1\",le=\"0.001\"}", 2);
}

/* With the time passed in (one clock read per upstream read): events of one read are 0 apart,
   the next read's first event is a sample of the gap between the reads. */
static void test_inter_token_at_a_given_time(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    int stream = 0;
    metrics_content_event_at(f->s0, m1, &stream, false, 1000000);
    metrics_content_event_at(f->s0, m1, &stream, true, 1000000);
    metrics_content_event_at(f->s0, m1, &stream, true, 1000000 + 700000); /* 0.7 s later */
    const char *t = render(f);
    assert_value(t, "unbusy_inter_token_seconds_count{model=\"m1\"}", 2);
    assert_value(t, "unbusy_inter_token_seconds_bucket{model=\"m1\",le=\"0.001\"}", 1);
    assert_value(t, "unbusy_inter_token_seconds_bucket{model=\"m1\",le=\"+Inf\"}", 2);
}

static void test_errors_and_incidents_from_attempts(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    metrics_attempt_end(f->s0, m1, &m1->deployments[1], HEALTH_SERVER_ERROR, 0, 503, INCIDENT_ATTEMPT_FAILED);
    metrics_attempt_end(f->s1, m1, &m1->deployments[1], HEALTH_SERVER_ERROR, HEALTH_EVENT_TRIPPED,
                        503, INCIDENT_ATTEMPT_FAILED);
    metrics_attempt_end(f->s1, m1, &m1->deployments[0], HEALTH_CUT, 0, 200, INCIDENT_STREAM_FAILED);
    metrics_attempt_end(f->s0, m1, &m1->deployments[0], HEALTH_OK, HEALTH_EVENT_CLOSED, 200, INCIDENT_ATTEMPT_FAILED);
    const char *t = render(f);
    assert_value(
        t,
        "unbusy_upstream_errors_total{model=\"m1\",provider=\"pb\",deployment_model=\"up-b\","
        "class=\"server_error\"}",
        2);
    assert_value(t,
                 "unbusy_upstream_errors_total{model=\"m1\",provider=\"pa\",deployment_model=\"up-"
                 "a\",class=\"cut\"}",
                 1);
    assert_null(strstr(t, "class=\"ok\""));
    struct incident list[INCIDENTS_MAX];
    size_t n = incidents_snapshot(metrics_incidents(f->m), list, INCIDENTS_MAX);
    assert_int_equal(n, 4); /* the two 503s in a row coalesce */
    assert_int_equal(list[0].kind, INCIDENT_BREAKER_CLOSED);
    assert_int_equal(list[1].kind, INCIDENT_STREAM_FAILED);
    assert_string_equal(list[1].deployment, "pa/up-a");
    assert_int_equal(list[1].status, 0); /* a 200 is not an error status */
    assert_int_equal(list[2].kind, INCIDENT_BREAKER_OPENED);
    assert_int_equal(list[3].kind, INCIDENT_ATTEMPT_FAILED);
    assert_int_equal(list[3].count, 2);
    assert_int_equal(list[3].status, 503);
    assert_string_equal(list[3].model, "m1");
}

static void test_admission_hooks(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    metrics_shed(f->s0, m1);
    metrics_shed(f->s1, m1);
    metrics_degraded(f->s1, m1);
    metrics_queue_depth_set(f->s0, m1, 4);
    metrics_queue_depth_set(f->s1, m1, 3);
    metrics_queue_depth_set(f->s1, m1, 2); /* a gauge: the last value counts */
    metrics_queue_wait(f->s0, m1, 1500);   /* 1.5 ms */
    f->nconns[0] = 5;
    f->nconns[1] = 2;
    f->inflight[1] = 3;
    const char *t = render(f);
    assert_value(t, "unbusy_shed_total{model=\"m1\"}", 2);
    assert_value(t, "unbusy_degraded_total{model=\"m1\"}", 1);
    assert_value(t, "unbusy_queue_depth{model=\"m1\"}", 6);
    assert_value(t, "unbusy_queue_wait_seconds_bucket{model=\"m1\",le=\"0.001\"}", 0);
    assert_value(t, "unbusy_queue_wait_seconds_bucket{model=\"m1\",le=\"0.0025\"}", 1);
    assert_value(t, "unbusy_open_connections", 7);
    assert_value(t, "unbusy_inflight_requests", 3);
}

/* A request that began before a reload ends with the older snapshot's model: it counts
   under the model's name and its deployment's provider and model. */
static void test_older_snapshot_counts_by_name(void **state)
{
    struct fx *f = *state;
    struct config *older = NULL;
    assert_int_equal(config_load_text("o.yaml", cfg_text, sizeof cfg_text - 1, &older, NULL), 0);
    const struct cfg_model *om = &older->models[0];
    struct accesslog_entry e = entry(200, OUTCOME_OK, 10, 1);
    metrics_request_done(f->s0, om, &om->deployments[1], &e, runtime_now_ms());
    config_unref(older);
    const char *t = render(f);
    assert_value(
        t,
        "unbusy_requests_total{model=\"m1\",provider=\"pb\",status_class=\"2xx\",outcome=\"ok\"}",
        1);
}

/* A reload: the next generation's registry continues the counters by name, and a worker's
   exact copy as it switches never goes below the first one. */
static void test_carry_to_the_next_registry(void **state)
{
    struct fx *f = *state;
    struct accesslog_entry e = entry(200, OUTCOME_OK, 10, 1);
    const struct cfg_model *m1 = &f->cfg->models[0];
    metrics_request_done(f->s0, m1, &m1->deployments[1], &e, runtime_now_ms());
    metrics_request_done(f->s1, m1, &m1->deployments[1], &e, runtime_now_ms());
    metrics_attempt_end(f->s0, m1, &m1->deployments[0], HEALTH_IO, 0, 0, INCIDENT_ATTEMPT_FAILED);
    metrics_request_done(f->s1, m1, &m1->deployments[2], &e, runtime_now_ms()); /* pa/up-a2 */
    /* the next config: m1 keeps pb/up-b (now first), replaces pa's two with pa/up-new */
    static const char next_text[] = "providers:\n  pb:\n    base_url: http://127.0.0.1:10/v1\n"
                                    "  pa:\n    base_url: http://127.0.0.1:9/v1\n"
                                    "models:\n  m1:\n    - provider: pb\n      model: up-b\n"
                                    "    - provider: pa\n      model: up-new\n";
    struct config *nc = NULL;
    assert_int_equal(config_load_text("n.yaml", next_text, sizeof next_text - 1, &nc, NULL), 0);
    struct runtime *nrt = runtime_new(nc, NULL);
    struct metrics *nm = metrics_new(nrt, 2);
    metrics_carry(nm, f->m);
    metrics_request_done(f->s0, m1, &m1->deployments[1], &e, runtime_now_ms()); /* after the copy */
    struct metrics_shard *n0 = metrics_shard(nm, 0, NULL, NULL);
    metrics_shard_carry(n0, f->s0);
    struct buf out;
    buf_init(&out, 0);
    metrics_render(nm, &out);
    assert_value(out.data,
                 "unbusy_requests_total{model=\"m1\",provider=\"pb\",status_class=\"2xx\",outcome=\"ok\"}",
                 3);
    /* the per-provider series does not go down when its deployment is replaced */
    assert_value(out.data,
                 "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\",outcome=\"ok\"}",
                 1);
    /* the per-deployment error series of a removed deployment ends with it */
    assert_null(strstr(out.data, "deployment_model=\"up-a\""));
    struct incident list[INCIDENTS_MAX];
    assert_int_equal(incidents_snapshot(metrics_incidents(nm), list, INCIDENTS_MAX), 1);
    assert_int_equal(list[0].kind, INCIDENT_ATTEMPT_FAILED);
    buf_free(&out);
    metrics_free(nm);
    runtime_free(nrt);
    config_unref(nc);
}

static void test_foreign_models_and_null_shards_are_ignored(void **state)
{
    struct fx *f = *state;
    struct config *other = NULL;
    static const char other_text[] = "providers:\n  pa:\n    base_url: http://127.0.0.1:9/v1\n"
                                     "models:\n  zz:\n    - provider: pa\n      model: up-a\n";
    assert_int_equal(config_load_text("o.yaml", other_text, sizeof other_text - 1, &other, NULL), 0);
    const struct cfg_model *om = &other->models[0];
    struct accesslog_entry e = entry(200, OUTCOME_OK, 10, 1);
    metrics_request_done(f->s0, om, &om->deployments[0], &e, runtime_now_ms());
    metrics_attempt_end(f->s0, om, &om->deployments[0], HEALTH_IO, HEALTH_EVENT_TRIPPED, 0, INCIDENT_ATTEMPT_FAILED);
    metrics_content_event(f->s0, om, &e, false);
    metrics_shed(f->s0, om);
    /* A deployment of another model of the same config is not m1's. */
    const struct cfg_model *m1 = &f->cfg->models[0];
    metrics_attempt_end(f->s0, m1, &f->cfg->models[1].deployments[0], HEALTH_IO, 0, 0, INCIDENT_ATTEMPT_FAILED);
    metrics_request_done(NULL, m1, &m1->deployments[0], &e, 0);
    metrics_attempt_end(NULL, m1, &m1->deployments[0], HEALTH_IO, 0, 0, INCIDENT_ATTEMPT_FAILED);
    metrics_content_event(NULL, m1, &e, true);
    metrics_shed(NULL, m1);
    metrics_degraded(NULL, m1);
    metrics_queue_depth_set(NULL, m1, 1);
    metrics_queue_wait(NULL, m1, 1);
    config_unref(other);
    const char *t = render(f);
    assert_value(
        t,
        "unbusy_requests_total{model=\"m1\",provider=\"pa\",status_class=\"2xx\",outcome=\"ok\"}",
        0);
    assert_value(t, "unbusy_shed_total{model=\"m1\"}", 0);
    assert_null(strstr(t, "class=\"io\""));
    struct incident none[INCIDENTS_MAX];
    assert_int_equal(incidents_snapshot(metrics_incidents(f->m), none, INCIDENTS_MAX), 0);
    assert_null(metrics_of(NULL));
}

static void test_incident_ring_is_bounded_newest_first(void **state)
{
    struct incidents in;
    incidents_init(&in);
    char dep[32];
    for (int i = 0; i < INCIDENTS_MAX + 20; i++) {
        snprintf(dep, sizeof dep, "p/d%d", i);
        incidents_add(&in, INCIDENT_ATTEMPT_FAILED, "m", dep, HEALTH_RATE_LIMITED, 429,
                      1000 + (uint64_t)i);
    }
    struct incident list[INCIDENTS_MAX + 5];
    size_t n = incidents_snapshot(&in, list, INCIDENTS_MAX + 5);
    assert_int_equal(n, INCIDENTS_MAX);
    assert_string_equal(list[0].deployment, "p/d69");
    assert_string_equal(list[INCIDENTS_MAX - 1].deployment, "p/d20");
    /* A repeat coalesces only within the window. */
    incidents_add(&in, INCIDENT_ATTEMPT_FAILED, "m", "p/d69", HEALTH_RATE_LIMITED, 429, 2000);
    assert_int_equal(incidents_snapshot(&in, list, 1), 1);
    assert_int_equal(list[0].count, 2);
    assert_int_equal(list[0].last_ms, 2000);
    incidents_add(&in, INCIDENT_ATTEMPT_FAILED, "m", "p/d69", HEALTH_RATE_LIMITED, 429,
                  2000 + INCIDENTS_COALESCE_MS);
    incidents_snapshot(&in, list, 2);
    assert_int_equal(list[0].count, 1);
    assert_int_equal(list[1].count, 2);
    /* Interleaved repeats (a failover, then the failed request it caused, again and
       again) coalesce too: the repeated entry moves to the front. */
    size_t before = incidents_snapshot(&in, list, INCIDENTS_MAX);
    incidents_add(&in, INCIDENT_ATTEMPT_FAILED, "m", "p/x", HEALTH_SERVER_ERROR, 503, 70000);
    incidents_add(&in, INCIDENT_REQUEST_FAILED, "m", NULL, HEALTH_OK, 503, 70001);
    incidents_add(&in, INCIDENT_ATTEMPT_FAILED, "m", "p/x", HEALTH_SERVER_ERROR, 503, 70002);
    incidents_add(&in, INCIDENT_REQUEST_FAILED, "m", NULL, HEALTH_OK, 503, 70003);
    assert_int_equal(incidents_snapshot(&in, list, INCIDENTS_MAX), before);
    assert_int_equal(list[0].kind, INCIDENT_REQUEST_FAILED);
    assert_int_equal(list[0].count, 2);
    assert_int_equal(list[0].first_ms, 70001);
    assert_int_equal(list[0].last_ms, 70003);
    assert_int_equal(list[1].kind, INCIDENT_ATTEMPT_FAILED);
    assert_int_equal(list[1].count, 2);
    for (size_t i = 1; i < before; i++)
        assert_true(list[i - 1].last_ms >= list[i].last_ms);
    /* Long names are cut, not overflowed; the JSON is valid. */
    char longname[400];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    incidents_add(&in, INCIDENT_BREAKER_OPENED, longname, longname, HEALTH_OK, 0, 80000);
    struct buf b;
    buf_init(&b, 0);
    incidents_write_json(&in, &b);
    buf_append(&b, "", 1);
    cJSON *doc = cJSON_Parse(b.data);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(doc), INCIDENTS_MAX);
    cJSON *first = cJSON_GetArrayItem(doc, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "kind")->valuestring, "breaker_opened");
    assert_int_equal(strlen(cJSON_GetObjectItem(first, "model")->valuestring),
                     sizeof list[0].model - 1);
    assert_string_equal(cJSON_GetObjectItem(first, "class")->valuestring, "");
    cJSON_Delete(doc);
    buf_free(&b);
    incidents_destroy(&in);
    assert_string_equal(incidents_kind_name(INCIDENT_REQUEST_FAILED), "request_failed");
    assert_string_equal(incidents_kind_name(INCIDENT__COUNT), "?");
    (void)state;
}

static void test_status_json_is_the_state_plus_usage_and_incidents(void **state)
{
    struct fx *f = *state;
    const struct cfg_model *m1 = &f->cfg->models[0];
    struct accesslog_entry e = entry(200, OUTCOME_OK, 10, 1);
    e.completion_tokens = 7;
    metrics_request_done(f->s0, m1, &m1->deployments[1], &e, runtime_now_ms());
    metrics_attempt_end(f->s0, m1, &m1->deployments[0], HEALTH_RATE_LIMITED, 0, 429, INCIDENT_ATTEMPT_FAILED);
    struct buf b;
    buf_init(&b, 0);
    status_write_json(&b, f->rt, f->m);
    buf_append(&b, "", 1);
    cJSON *doc = cJSON_Parse(b.data);
    assert_non_null(doc);
    cJSON *models = cJSON_GetObjectItem(doc, "models");
    assert_int_equal(cJSON_GetArraySize(models), 2);
    cJSON *deps = cJSON_GetObjectItem(cJSON_GetArrayItem(models, 0), "deployments");
    assert_int_equal(cJSON_GetArraySize(deps), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(deps, 1), "provider")->valuestring,
                        "pb");
    cJSON *usage = cJSON_GetObjectItem(doc, "usage");
    assert_int_equal(cJSON_GetArraySize(usage), 2);
    cJSON *u = cJSON_GetArrayItem(cJSON_GetArrayItem(usage, 0), 1);
    assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 7);
    assert_int_equal(cJSON_GetObjectItem(u, "requests")->valueint, 1);
    cJSON *inc = cJSON_GetObjectItem(doc, "incidents");
    assert_int_equal(cJSON_GetArraySize(inc), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(inc, 0), "class")->valuestring,
                        "rate_limited");
    assert_true(cJSON_GetObjectItem(doc, "now_ms")->valuedouble > 1.6e12);
    cJSON_Delete(doc);
    /* Without a registry: the same shape, empty usage and incidents. */
    buf_reset(&b);
    status_write_json(&b, f->rt, NULL);
    buf_append(&b, "", 1);
    doc = cJSON_Parse(b.data);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "incidents")), 0);
    cJSON_Delete(doc);
    buf_free(&b);
    /* The page is one self-contained document: it loads nothing from elsewhere. */
    const char *html = status_page_html();
    assert_non_null(strstr(html, "<!doctype html>"));
    assert_non_null(strstr(html, "/status.json"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "src="));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_registry_renders_every_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_sum_shards_and_merge_providers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_histogram_buckets_are_inclusive_and_cumulative, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_label_values_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inter_token_samples_need_a_previous_event, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inter_token_at_a_given_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_incidents_from_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admission_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_snapshot_counts_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_carry_to_the_next_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_models_and_null_shards_are_ignored, setup,
                                        teardown),
        cmocka_unit_test(test_incident_ring_is_bounded_newest_first),
        cmocka_unit_test_setup_teardown(test_status_json_is_the_state_plus_usage_and_incidents,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
