/* Unit tests for config: the contract form, defaults, ${ENV}, every problem
   kind with its line and key path, value syntaxes, resilience and probes with
   their inheritance, refcounting, the examples and the demo config. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/config_secrets.h"
#include "config/config_tls.h"
#include "config/config_value.h"
#include "net/tls_server.h"
#include "sim/demo.h"

/* The minimal form from the design's configuration contract, verbatim. */
static const char contract[] = "server:\n"
                               "  listen: 127.0.0.1:8080\n"
                               "providers:\n"
                               "  deepseek:\n"
                               "    base_url: https://api.deepseek.com/v1\n"
                               "    api_key: ${DEEPSEEK_API_KEY}\n"
                               "  local-vllm:\n"
                               "    base_url: http://10.0.0.5:8000/v1\n"
                               "models:\n"
                               "  deepseek-r1:                 # the name clients send\n"
                               "    - provider: deepseek\n"
                               "      model: deepseek-reasoner # the name the provider expects\n"
                               "    - provider: local-vllm\n"
                               "      model: deepseek-r1-distill-qwen-32b\n";

/* A valid provider block for tests that are about something else. */
#define ONE_PROVIDER "providers:\n  p:\n    base_url: http://127.0.0.1:9000\n"
#define ONE_MODEL_FOR(provider) "models:\n  m:\n    - provider: " provider "\n      model: x\n"
#define ONE_MODEL ONE_MODEL_FOR("p")

/* Loads text from an exactly sized heap copy (no NUL after it), so ASan sees any over-read. */
static int load(const char *text, struct config **out, struct config_errors *errs)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    config_errors_init(errs);
    int rc = config_load_text("t.yaml", copy, n, out, errs);
    free(copy);
    return rc;
}

static struct config *load_ok(const char *text)
{
    struct config *c = NULL;
    struct config_errors errs;
    int rc = load(text, &c, &errs);
    if (rc != 0 || errs.count != 0)
        fprintf(stderr, "unexpected problems:\n%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_non_null(c);
    config_errors_free(&errs);
    return c;
}

/* Asserts the load fails with exactly nerrors problems, each line in expect present. */
static void expect_errors(const char *text, unsigned nerrors, const char *const *expect)
{
    struct config *c = (struct config *)0x1;
    struct config_errors errs;
    assert_int_equal(load(text, &c, &errs), -1);
    assert_ptr_equal(c, (struct config *)0x1); /* untouched on failure */
    const char *got = errs.text.data ? errs.text.data : "";
    for (const char *const *e = expect; *e; e++) {
        if (!strstr(got, *e)) fprintf(stderr, "missing \"%s\" in:\n%s", *e, got);
        assert_non_null(strstr(got, *e));
    }
    if (errs.count != nerrors)
        fprintf(stderr, "expected %u problems, got %u:\n%s", nerrors, errs.count, got);
    assert_int_equal(errs.count, nerrors);
    config_errors_free(&errs);
}

#define EXPECT(text, n, ...)                                                                       \
    do {                                                                                           \
        const char *const expect_[] = {__VA_ARGS__, NULL};                                         \
        expect_errors((text), (n), expect_);                                                       \
    } while (0)

static void test_contract_form(void **state)
{
    setenv("DEEPSEEK_API_KEY", "sk-test-123", 1);
    struct config *c = load_ok(contract);
    unsetenv("DEEPSEEK_API_KEY");

    assert_string_equal(c->source, "t.yaml");
    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.listen_port, 8080);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->server.workers, cores < 1 ? 1 : cores > 1024 ? 1024 : cores);
    assert_int_equal(c->server.max_body_bytes, 8u << 20);
    assert_int_equal(c->server.max_header_bytes, 64u << 10);
    assert_string_equal(c->server.access_log, "-");

    assert_int_equal(c->nproviders, 2);
    const struct cfg_provider *ds = &c->providers[0], *lv = &c->providers[1];
    assert_string_equal(ds->name, "deepseek");
    assert_int_equal(ds->kind, CFG_PROVIDER_OPENAI);
    assert_true(ds->tls);
    assert_string_equal(ds->host, "api.deepseek.com");
    assert_int_equal(ds->port, 443);
    assert_string_equal(ds->base_path, "/v1");
    assert_string_equal(ds->base_url, "https://api.deepseek.com/v1");
    assert_string_equal(ds->api_key, "sk-test-123");
    assert_string_equal(ds->auth_header, "Authorization");
    assert_string_equal(ds->auth_prefix, "Bearer ");
    assert_true(ds->tls_verify);
    assert_true(ds->stream_upstream);
    assert_null(ds->ca_file);
    assert_int_equal(ds->nheaders, 0);
    assert_int_equal(ds->max_idle_conns, 64);
    assert_int_equal(ds->idle_conn_timeout_ms, 60000);
    assert_int_equal(ds->connect_timeout_ms, 0);
    assert_int_equal(ds->line, 4);

    assert_string_equal(lv->name, "local-vllm");
    assert_false(lv->tls);
    assert_string_equal(lv->host, "10.0.0.5");
    assert_int_equal(lv->port, 8000);
    assert_string_equal(lv->base_path, "/v1");
    assert_null(lv->api_key);
    assert_null(lv->sim_profile);

    assert_int_equal(c->nmodels, 1);
    const struct cfg_model *m = config_find_model(c, "deepseek-r1");
    assert_ptr_equal(m, &c->models[0]);
    assert_int_equal(m->line, 10);
    assert_int_equal(m->ndeployments, 2);
    assert_ptr_equal(m->deployments[0].provider, ds);
    assert_string_equal(m->deployments[0].model, "deepseek-reasoner");
    assert_int_equal(m->deployments[0].tier, 0);
    assert_int_equal(m->deployments[0].weight, 1);
    assert_int_equal(m->deployments[0].line, 11);
    assert_ptr_equal(m->deployments[1].provider, lv);
    assert_string_equal(m->deployments[1].model, "deepseek-r1-distill-qwen-32b");
    assert_int_equal(m->max_attempts, 3); /* two deployments: one try each and one more */
    assert_int_equal(m->timeouts.connect_ms, 5000);
    assert_int_equal(m->timeouts.first_token_ms, 30000);
    assert_int_equal(m->timeouts.stall_ms, 60000);
    assert_int_equal(m->timeouts.total_ms, 600000);
    assert_null(config_find_model(c, "deepseek-r2"));
    assert_null(config_find_model(c, ""));
    config_unref(c);
}

static void test_contract_form_key_unset_warns(void **state)
{
    unsetenv("DEEPSEEK_API_KEY");
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(contract, &c, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.warnings, 1);
    assert_string_equal(errs.text.data, "t.yaml:6: providers.deepseek.api_key: warning: "
                                        "${DEEPSEEK_API_KEY} is not set; using an empty value\n");
    assert_null(c->providers[0].api_key); /* empty means no key */
    config_errors_free(&errs);
    config_unref(c);
}

static void test_map_form_and_timeouts(void **state)
{
    struct config *c = load_ok("timeouts:\n"
                               "  first_token: 45s\n"
                               "  total: 5m\n"
                               "providers:\n"
                               "  a: {base_url: 'https://a.example.com:8443/api/v3/'}\n"
                               "  b:\n"
                               "    base_url: http://[fd00::5]:8000\n"
                               "models:\n"
                               "  r1:\n"
                               "    deployments:\n"
                               "      - {provider: a, model: r1-a, tier: 0, weight: 3}\n"
                               "      - {provider: b, model: r1-b, tier: 1}\n"
                               "    timeouts: {first_token: 90s, stall: 1.5m}\n"
                               "    max_attempts: 5\n"
                               "  v3:\n"
                               "    - provider: b\n"
                               "      model: v3\n");
    assert_int_equal(c->default_timeouts.first_token_ms, 45000);
    assert_int_equal(c->default_timeouts.total_ms, 300000);
    assert_int_equal(c->default_timeouts.connect_ms, 5000);

    const struct cfg_provider *a = &c->providers[0], *b = &c->providers[1];
    assert_int_equal(a->port, 8443);
    assert_string_equal(a->host, "a.example.com");
    assert_string_equal(a->base_path, "/api/v3");
    assert_string_equal(b->host, "fd00::5");
    assert_int_equal(b->port, 8000);
    assert_string_equal(b->base_path, "");

    const struct cfg_model *r1 = config_find_model(c, "r1");
    assert_non_null(r1);
    assert_int_equal(r1->ndeployments, 2);
    assert_int_equal(r1->deployments[0].weight, 3);
    assert_int_equal(r1->deployments[1].tier, 1);
    assert_int_equal(r1->deployments[1].weight, 1);
    assert_ptr_equal(r1->deployments[1].provider, b);
    assert_int_equal(r1->max_attempts, 5);
    assert_int_equal(r1->timeouts.first_token_ms, 90000); /* its own */
    assert_int_equal(r1->timeouts.stall_ms, 90000);
    assert_int_equal(r1->timeouts.total_ms, 300000); /* inherited from the top */
    assert_int_equal(r1->timeouts.connect_ms, 5000); /* the built-in default */

    const struct cfg_model *v3 = config_find_model(c, "v3");
    assert_non_null(v3);
    assert_int_equal(v3->timeouts.first_token_ms, 45000);
    assert_int_equal(v3->max_attempts, 1); /* one deployment: one try (a cooldown is waited out) */
    config_unref(c);
}

static void test_server_and_provider_options(void **state)
{
    setenv("UNBUSY_T_TOKEN", "tok", 1);
    setenv("UNBUSY_T_ORG", "org-9", 1);
    struct config *c =
        load_ok("server:\n"
                "  listen: '[::1]:0'\n"
                "  workers: 3\n"
                "  max_header_bytes: 32k\n"
                "  max_body_bytes: 16m\n"
                "  max_response_bytes: 1g\n"
                "  header_timeout: 5s\n"
                "  idle_timeout: 2m\n"
                "  drain_timeout: 0\n"
                "  max_connections: 500\n"
                "  access_log: off\n"
                "providers:\n"
                "  eas:\n"
                "    base_url: https://eas.example.com/api/predict/svc\n"
                "    api_key: ${UNBUSY_T_TOKEN}\n"
                "    auth_prefix: ''\n"
                "    headers:\n"
                "      OpenAI-Organization: ${UNBUSY_T_ORG}\n"
                "      X-Trace: fixed\n"
                "    ca_file: /dev/null\n"
                "    tls_verify: false\n"
                "    stream_upstream: no\n"
                "    max_idle_conns: 0\n"
                "    idle_conn_timeout: 15s\n"
                "    connect_timeout: 750ms\n"
                "  azure:\n"
                "    base_url: https://x.openai.azure.com/openai\n"
                "    auth_header: api-key\n"
                "  demo:\n"
                "    base_url: sim://busy\n"
                "  raw:\n"
                "    base_url: 'sim://30%status=503 | ttft=50'\n" ONE_MODEL_FOR("eas"));
    unsetenv("UNBUSY_T_TOKEN");
    unsetenv("UNBUSY_T_ORG");
    assert_string_equal(c->server.listen_host, "::1");
    assert_int_equal(c->server.listen_port, 0);
    assert_int_equal(c->server.workers, 3);
    assert_int_equal(c->server.max_header_bytes, 32 << 10);
    assert_int_equal(c->server.max_body_bytes, 16 << 20);
    assert_int_equal(c->server.max_response_bytes, 1 << 30);
    assert_int_equal(c->server.header_timeout_ms, 5000);
    assert_int_equal(c->server.idle_timeout_ms, 120000);
    assert_int_equal(c->server.drain_timeout_ms, 0);
    assert_int_equal(c->server.max_connections, 500);
    assert_string_equal(c->server.access_log, "off");

    const struct cfg_provider *eas = &c->providers[0];
    assert_string_equal(eas->api_key, "tok");
    assert_string_equal(eas->auth_prefix, "");
    assert_int_equal(eas->nheaders, 2);
    assert_string_equal(eas->headers[0].name, "OpenAI-Organization");
    assert_string_equal(eas->headers[0].value, "org-9");
    assert_string_equal(eas->headers[1].name, "X-Trace");
    assert_string_equal(eas->headers[1].value, "fixed");
    assert_string_equal(eas->ca_file, "/dev/null");
    assert_false(eas->tls_verify);
    assert_false(eas->stream_upstream);
    assert_int_equal(eas->max_idle_conns, 0);
    assert_int_equal(eas->idle_conn_timeout_ms, 15000);
    assert_int_equal(eas->connect_timeout_ms, 750);

    assert_string_equal(c->providers[1].auth_header, "api-key");
    const struct cfg_provider *demo = &c->providers[2];
    assert_int_equal(demo->kind, CFG_PROVIDER_SIM);
    assert_string_equal(demo->sim_profile, "busy");
    assert_string_equal(demo->host, "");
    assert_string_equal(demo->base_path, "");
    assert_int_equal(demo->port, 0);
    assert_string_equal(c->providers[3].sim_profile, "30%status=503 | ttft=50");
    config_unref(c);
}

static void test_listen_forms(void **state)
{
    struct config *c = load_ok("server: {listen: ':9090'}\n" ONE_PROVIDER ONE_MODEL);
    assert_string_equal(c->server.listen_host, "0.0.0.0");
    assert_int_equal(c->server.listen_port, 9090);
    config_unref(c);
    c = load_ok("server:\n  listen: localhost:1\n" ONE_PROVIDER ONE_MODEL);
    assert_string_equal(c->server.listen_host, "localhost");
    assert_int_equal(c->server.listen_port, 1);
    config_unref(c);
    c = load_ok("server:\n" ONE_PROVIDER ONE_MODEL); /* an empty section: the defaults */
    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.listen_port, 8080);
    config_unref(c);
}

static void test_env_substitution(void **state)
{
    setenv("UNBUSY_T_HOST", "10.1.2.3", 1);
    setenv("UNBUSY_T_EMPTY", "", 1);
    unsetenv("UNBUSY_T_UNSET");
    struct config *c = NULL;
    struct config_errors errs;
    int rc =
        load("server:\n"
             "  listen: ${UNBUSY_T_HOST}:${UNBUSY_T_UNSET:-8181}\n"
             "  workers: ${UNBUSY_T_EMPTY:-2}\n"
             "providers:\n"
             "  p:\n"
             "    base_url: http://${UNBUSY_T_HOST}/v1\n"
             "    api_key: a$b$${literal}${UNBUSY_T_EMPTY}\n"
             "    headers: {X-A: '${UNBUSY_T_UNSET}x', X-B: '${UNBUSY_T_UNSET:-}'}\n" ONE_MODEL,
             &c, &errs);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.warnings, 1); /* X-A: unset, no default; X-B has one */
    assert_non_null(strstr(errs.text.data, "t.yaml:8: providers.p.headers.X-A: warning: "
                                           "${UNBUSY_T_UNSET} is not set"));
    assert_string_equal(c->server.listen_host, "10.1.2.3");
    assert_int_equal(c->server.listen_port, 8181);
    assert_int_equal(c->server.workers, 2); /* set but empty takes the default */
    assert_string_equal(c->providers[0].host, "10.1.2.3");
    assert_string_equal(c->providers[0].api_key, "a$b${literal}");
    assert_string_equal(c->providers[0].headers[0].value, "x");
    assert_string_equal(c->providers[0].headers[1].value, "");
    config_errors_free(&errs);
    config_unref(c);
    unsetenv("UNBUSY_T_HOST");
    unsetenv("UNBUSY_T_EMPTY");

    EXPECT(ONE_PROVIDER "    api_key: ${UNCLOSED\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.api_key: bad ${...}: unterminated ${");
    EXPECT(ONE_PROVIDER "    api_key: ${1BAD}\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.api_key: bad ${...}: expected ${NAME}");
    EXPECT(ONE_PROVIDER "    api_key: ${A-b}\n" ONE_MODEL, 1, "t.yaml:4: providers.p.api_key: bad");
}

static void test_unknown_keys(void **state)
{
    EXPECT("server:\n  listn: :80\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.listn: unknown key; did you mean \"listen\"?\n");
    EXPECT(ONE_PROVIDER "    baseurl: http://x\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.baseurl: unknown key; did you mean \"base_url\"?\n");
    EXPECT(ONE_PROVIDER "limits:\n  rpm: 5\n" ONE_MODEL, 1,
           "t.yaml:4: limits: unknown key (expected one of: server, timeouts, resilience, "
           "admin, auth, providers, models, keys, key_store, budgets, ledger, prices, rules, redis, reload)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n      model: x\n      teir: 1\n", 1,
           "t.yaml:8: models.m[0].teir: unknown key; did you mean \"tier\"?\n");
    EXPECT(ONE_PROVIDER ONE_MODEL "model:\n  x: 1\n", 1,
           "t.yaml:8: model: unknown key; did you mean \"models\"?\n");
    EXPECT(ONE_PROVIDER "    base_url: http://y\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.base_url: duplicate key (first at line 3)\n");
}

static void test_wrong_types(void **state)
{
    EXPECT("server: [1, 2]\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:1: server: expected a mapping, got a list\n");
    EXPECT("server:\n  workers: many\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.workers: expected an integer, got \"many\"\n");
    EXPECT("server:\n  workers: {a: 1}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.workers: expected a single value, got a mapping\n");
    EXPECT(ONE_PROVIDER "    tls_verify: maybe\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.tls_verify: expected true or false, got \"maybe\"\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n      model: x\n      tier: -1\n", 1,
           "t.yaml:8: models.m[0].tier: -1 is out of range (0 to 1000)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n      model: x\n      weight: 0\n", 1,
           "t.yaml:8: models.m[0].weight: 0 is out of range (1 to 1000000)\n");
    EXPECT(ONE_PROVIDER "models:\n  m: deepseek\n", 1,
           "t.yaml:5: models.m: expected a list of deployments or a mapping with "
           "deployments:, got a single value\n");
    EXPECT("- a\n- b\n", 1, "t.yaml:1: the file must be a mapping");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n      model: ''\n", 1,
           "t.yaml:7: models.m[0].model: must not be empty\n");
    EXPECT(ONE_PROVIDER "    api_key: \"a\\r\\nX-Evil: 1\"\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.api_key: control characters");
    EXPECT(ONE_PROVIDER "    auth_header: 'bad header'\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.auth_header: \"bad header\" is not a valid HTTP header name\n");
    EXPECT(ONE_PROVIDER "    headers: {Host: x, 'a b': y}\n" ONE_MODEL, 2,
           "t.yaml:4: providers.p.headers.Host: this header is set by unbusy",
           "t.yaml:4: providers.p.headers.a b: a name must be non-empty, without spaces");
    EXPECT(ONE_PROVIDER "    headers: {'a:b': x, X-Ok: \"1\\n\"}\n" ONE_MODEL, 2,
           "t.yaml:4: providers.p.headers.a:b: not a valid HTTP header name\n",
           "t.yaml:4: providers.p.headers.X-Ok: control characters");
    EXPECT(ONE_PROVIDER "    headers: {X-A: 1, x-a: 2}\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.headers.x-a: duplicate header (first at line 4)\n");
}

static void test_bad_durations_and_sizes(void **state)
{
    EXPECT("timeouts:\n  stall: 30 seconds\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: timeouts.stall: bad duration \"30 seconds\": expected e.g. 500ms");
    EXPECT("timeouts:\n  first_token: 90s\n  total: 1m\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: timeouts: first_token (90000ms) is longer than total (60000ms)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    deployments: [{provider: p, model: x}]\n"
                        "    timeouts: {total: 10s}\n",
           1, "t.yaml:7: models.m.timeouts: first_token (30000ms) is longer than total");
    EXPECT("timeouts:\n  connect: 0\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: timeouts.connect: 0 is out of range (1ms to 600000ms)\n");
    EXPECT("server:\n  max_body_bytes: 8 MB\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.max_body_bytes: bad size \"8 MB\": expected e.g. 65536");
    EXPECT("server:\n  max_body_bytes: 2g\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.max_body_bytes: 2g is out of range (1024 to 1073741824 bytes)\n");
    EXPECT("server:\n  max_body_bytes: 99999999999999999999g\n" ONE_PROVIDER ONE_MODEL, 1,
           "server.max_body_bytes: bad size \"99999999999999999999g\": too large\n");
}

static void test_bad_listen_and_base_url(void **state)
{
    EXPECT("server:\n  listen: 8080\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: server.listen: bad address \"8080\": expected HOST:PORT");
    EXPECT("server:\n  listen: ::1:8080\n" ONE_PROVIDER ONE_MODEL, 1,
           "server.listen: bad address \"::1:8080\": an IPv6 address must be written in "
           "brackets");
    EXPECT("server:\n  listen: 'host:70000'\n" ONE_PROVIDER ONE_MODEL, 1,
           "bad address \"host:70000\": port out of range");
    static const char *const bad[][2] = {
        {"ftp://x/v1", "expected http://, https:// or sim://"},
        {"https://", "missing host"},
        {"https:///v1", "missing host"},
        {"http://u:p@x/v1", "credentials in the URL are not supported"},
        {"http://x/v1?a=b", "a query string or fragment is not allowed"},
        {"http://x:0/v1", "port out of range"},
        {"http://x:http/v1", "port is not a number"},
        {"http://[fd00::1/v1", "missing ']'"},
        {"sim://", "sim:// needs a profile"},
        {"api.deepseek.com", "expected http://"},
        {"http://x/a b", "spaces are not allowed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, "providers:\n  p:\n    base_url: '%s'\n" ONE_MODEL, bad[i][0]);
        snprintf(want, sizeof want, "t.yaml:3: providers.p.base_url: bad URL \"%s\": %s", bad[i][0],
                 bad[i][1]);
        EXPECT(text, 1, want);
    }
    EXPECT("providers:\n  p:\n    api_key: k\n" ONE_MODEL, 1,
           "t.yaml:3: providers.p.base_url: missing (required)\n");
}

static void test_model_problems(void **state)
{
    EXPECT("providers:\n  deepseek: {base_url: 'https://api.deepseek.com'}\n"
           "models:\n  m:\n    - provider: deepsek\n      model: x\n",
           1,
           "t.yaml:5: models.m[0].provider: unknown provider \"deepsek\"; did you mean "
           "\"deepseek\"?\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: nowhere\n      model: x\n", 1,
           "t.yaml:6: models.m[0].provider: unknown provider \"nowhere\" (not defined under "
           "providers:)\n");
    EXPECT(ONE_PROVIDER ONE_MODEL "  m:\n    - provider: p\n      model: y\n", 1,
           "t.yaml:8: models.m: duplicate model name (first at line 5)\n");
    EXPECT(ONE_PROVIDER "models: {}\n", 1,
           "t.yaml:4: models: no models defined (at least one is needed)\n");
    EXPECT(ONE_PROVIDER, 1, "t.yaml:1: models: missing (required)\n");
    EXPECT("", 1, "t.yaml:1: models: missing (required)\n");
    EXPECT(ONE_PROVIDER "models:\n  m: []\n", 1, "t.yaml:5: models.m: no deployments");
    EXPECT(ONE_PROVIDER "models:\n  m:\n", 1, "t.yaml:5: models.m: no deployments");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    timeouts: {total: 1m}\n", 1,
           "t.yaml:6: models.m.deployments: missing (required)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - model: x\n", 1,
           "t.yaml:6: models.m[0].provider: missing (required)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n", 1,
           "t.yaml:6: models.m[0].model: missing (required)\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    deployments: [{provider: p, model: x}]\n"
                        "    max_attempts: 11\n",
           1, "t.yaml:7: models.m.max_attempts: 11 is out of range (1 to 10)\n");
    EXPECT("providers:\n  p: {base_url: 'http://a'}\n  p: {base_url: 'http://b'}\n" ONE_MODEL, 1,
           "t.yaml:3: providers.p: duplicate provider (first at line 2)\n");
    /* A broken providers section does not also flag every deployment. */
    EXPECT("providers: [a, b]\n" ONE_MODEL, 1,
           "t.yaml:1: providers: expected a mapping of provider names, got a list\n");
}

static void test_many_problems_at_once(void **state)
{
    const char *text = "server:\n"                  /* 1 */
                       "  listen: nowhere\n"        /* 2 */
                       "  max_body_bytes: lots\n"   /* 3 */
                       "providers:\n"               /* 4 */
                       "  a:\n"                     /* 5 */
                       "    base_url: gopher://x\n" /* 6 */
                       "    tls_verify: perhaps\n"  /* 7 */
                       "models:\n"                  /* 8 */
                       "  r1:\n"                    /* 9 */
                       "    - provider: b\n"        /* 10 */
                       "      model: r1\n"          /* 11 */
                       "      weight: 0\n"          /* 12 */
                       "  r1:\n"                    /* 13 */
                       "    - provider: a\n"        /* 14 */
                       "      model: r1\n"          /* 15 */
                       "limits: {}\n";              /* 16 */
    struct config *c = NULL;
    struct config_errors errs;
    assert_int_equal(load(text, &c, &errs), -1);
    assert_int_equal(errs.count, 8);
    /* In line order, whatever order the sections were checked in. */
    assert_string_equal(errs.text.data,
                        "t.yaml:2: server.listen: bad address \"nowhere\": expected HOST:PORT, "
                        "[IPv6]:PORT or :PORT\n"
                        "t.yaml:3: server.max_body_bytes: bad size \"lots\": expected e.g. "
                        "65536, 64k, 8m or 1g\n"
                        "t.yaml:6: providers.a.base_url: bad URL \"gopher://x\": expected "
                        "http://, https:// or sim://\n"
                        "t.yaml:7: providers.a.tls_verify: expected true or false, got "
                        "\"perhaps\"\n"
                        "t.yaml:10: models.r1[0].provider: unknown provider \"b\" (not "
                        "defined under providers:)\n"
                        "t.yaml:12: models.r1[0].weight: 0 is out of range (1 to 1000000)\n"
                        "t.yaml:13: models.r1: duplicate model name (first at line 9)\n"
                        "t.yaml:16: limits: unknown key (expected one of: server, timeouts, "
                        "resilience, admin, auth, providers, models, keys, key_store, budgets, ledger, prices, rules, redis, reload)\n");
    config_errors_free(&errs);
}

static void test_yaml_syntax_error(void **state)
{
    EXPECT("server:\n  listen: [1, 2\nmodels: {}\n", 1, "t.yaml:3: YAML syntax: ");
    EXPECT(ONE_PROVIDER ONE_MODEL "---\nb: 2\n", 1,
           "t.yaml:9: only one YAML document is allowed per file\n");
    EXPECT(ONE_PROVIDER ONE_MODEL "---\nb: [\n", 1, "t.yaml:10: YAML syntax: ");
}

static void test_duration_syntax(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint32_t ms;
    } cases[] = {
        {"0", 0, 0},
        {"250", 0, 250},
        {"250ms", 0, 250},
        {"15s", 0, 15000},
        {"1.5s", 0, 1500},
        {"0.25s", 0, 250},
        {"2m", 0, 120000},
        {"1.5m", 0, 90000},
        {"2h", 0, 7200000},
        {"1193h", 0, 4294800000u},
        {"1194h", -ERANGE, 0},
        {"4294967295", 0, 4294967295u},
        {"4294967296", -ERANGE, 0},
        {"1.5ms", -EINVAL, 0},
        {"1.5", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"s", -EINVAL, 0},
        {"1.s", -EINVAL, 0},
        {".5s", -EINVAL, 0},
        {"-1s", -EINVAL, 0},
        {"10 s", -EINVAL, 0},
        {"10S", -EINVAL, 0},
        {"1d", -EINVAL, 0},
        {"0.0000001s", -EINVAL, 0},
        {"99999999999999999999", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t ms = 12345;
        int rc = config_parse_duration_ms(cases[i].s, &ms);
        if (rc != cases[i].rc) fprintf(stderr, "duration \"%s\": rc %d\n", cases[i].s, rc);
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(ms, rc ? 12345 : cases[i].ms);
    }
}

static void test_size_syntax(void **state)
{
    static const struct {
        const char *s;
        int rc;
        size_t bytes;
    } cases[] = {
        {"0", 0, 0},
        {"65536", 0, 65536},
        {"64k", 0, 65536},
        {"64K", 0, 65536},
        {"64kb", 0, 65536},
        {"64KiB", 0, 65536},
        {"8m", 0, 8u << 20},
        {"8MB", 0, 8u << 20},
        {"1g", 0, 1u << 30},
        {"10b", 0, 10},
        {"", -EINVAL, 0},
        {"k", -EINVAL, 0},
        {"1.5m", -EINVAL, 0},
        {"8 m", -EINVAL, 0},
        {"1t", -EINVAL, 0},
        {"-1", -EINVAL, 0},
        {"8mibs", -EINVAL, 0},
        {"18446744073709551615", 0, SIZE_MAX},
        {"18446744073709551616", -ERANGE, 0},
        {"17179869184g", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bytes = 777;
        int rc = config_parse_size(cases[i].s, &bytes);
        if (rc != cases[i].rc) fprintf(stderr, "size \"%s\": rc %d\n", cases[i].s, rc);
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(bytes, rc ? 777 : cases[i].bytes);
    }
}

static void test_value_helpers(void **state)
{
    static const char *const keys[] = {"base_url", "api_key", "auth_header", "tier", "models"};
    assert_string_equal(config_value_nearest("base-url", keys, 5), "base_url");
    assert_string_equal(config_value_nearest("BASE_URL", keys, 5), "base_url");
    assert_string_equal(config_value_nearest("apikey", keys, 5), "api_key");
    assert_string_equal(config_value_nearest("tire", keys, 5), "tier");
    assert_null(config_value_nearest("weight", keys, 5));
    assert_null(config_value_nearest("x", keys, 5));
    assert_true(config_value_is_token("X-Api-Key"));
    assert_false(config_value_is_token("X Api"));
    assert_false(config_value_is_token(""));
    assert_true(config_value_has_control("a\nb"));
    assert_false(config_value_has_control("a\tb"));
}

/* ---- resilience, probes, deployment limits, admin ---- */

static void assert_builtin_resilience(const struct cfg_resilience *r)
{
    assert_string_equal(r->strategy, "p2c");
    assert_int_equal(r->breaker.window_ms, 30000);
    assert_int_equal(r->breaker.min_requests, 10);
    assert_true(r->breaker.failure_ratio == 0.5);
    assert_int_equal(r->breaker.consecutive_failures, 5);
    assert_int_equal(r->breaker.open_ms, 5000);
    assert_int_equal(r->breaker.open_max_ms, 120000);
    assert_int_equal(r->breaker.half_open_trials, 1);
    assert_true(r->retry_budget.ratio == 0.2);
    assert_true(r->retry_budget.min_per_sec == 3);
    assert_int_equal(r->retry_budget.window_ms, 10000);
    assert_true(r->hedge.enabled); /* on: the learnt first-token budget sets its delay */
    assert_int_equal(r->hedge.after_ms, 0);
    assert_true(r->hedge.max_ratio == 0.2);
    assert_true(r->continue_on_cut); /* a cut stream is continued unless turned off */
}

static void test_resilience_defaults(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  web: {base_url: 'https://api.example.com/v1'}\n"
                               "  lan: {base_url: 'http://10.0.0.5:8000/v1'}\n"
                               "  sim: {base_url: 'sim://healthy'}\n"
                               "models:\n"
                               "  short:\n"
                               "    - {provider: web, model: a}\n"
                               "  long:\n"
                               "    deployments: [{provider: sim, model: b}]\n");
    assert_builtin_resilience(&c->default_resilience);
    assert_null(c->admin_token);
    for (size_t i = 0; i < c->nmodels; i++) {
        const struct cfg_model *m = &c->models[i];
        assert_builtin_resilience(&m->resilience);
        /* Each model owns its string (freed with it; ASan checks the frees). */
        assert_ptr_not_equal(m->resilience.strategy, c->default_resilience.strategy);
        assert_int_equal(m->deployments[0].max_concurrency, 0);
        assert_int_equal(m->deployments[0].rpm, 0);
    }
    for (size_t i = 0; i < c->nproviders; i++) {
        const struct cfg_probe *p = &c->providers[i].probe;
        assert_string_equal(p->path, "/models");
        assert_int_equal(p->interval_ms, 30000);
        assert_int_equal(p->timeout_ms, 5000);
        assert_int_equal(p->healthy_threshold, 2);
        assert_int_equal(p->unhealthy_threshold, 3);
        assert_false(p->deep);
        assert_int_equal(p->deep_interval_ms, 300000);
        assert_null(p->deep_model);
    }
    assert_true(c->providers[0].probe.enabled);  /* https */
    assert_true(c->providers[1].probe.enabled);  /* http */
    assert_false(c->providers[2].probe.enabled); /* sim:// runs in-process */
    config_unref(c);
}

/* A model's section overrides only what it gives, field by field inside
   breaker/retry_budget/hedge too; the rest comes from the top-level section,
   which applies to models wherever it stands in the file. */
static void test_resilience_override(void **state)
{
    struct config *c =
        load_ok(ONE_PROVIDER "models:\n"
                             "  listed:\n"
                             "    - {provider: p, model: a}\n"
                             "  plain:\n"
                             "    deployments: [{provider: p, model: b}]\n"
                             "  tuned:\n"
                             "    resilience:\n"
                             "      strategy: least_inflight\n"
                             "      breaker: {failure_ratio: 0.25, open: 1s}\n"
                             "      hedge: {after: 800ms}\n"
                             "    deployments: [{provider: p, model: c}]\n"
                             "resilience:\n"
                             "  strategy: round_robin\n"
                             "  breaker:\n"
                             "    window: 1m\n"
                             "    min_requests: 20\n"
                             "    failure_ratio: 1\n"
                             "    consecutive_failures: 0\n"
                             "    open: 2s\n"
                             "    open_max: 10m\n"
                             "    half_open_trials: 3\n"
                             "  retry_budget: {ratio: 0.05, min_per_sec: 0.5, window: 30s}\n"
                             "  hedge: {enabled: no, after: auto, max_ratio: 0}\n"
                             "  continue_on_cut: true\n");
    const struct cfg_resilience *d = &c->default_resilience;
    assert_string_equal(d->strategy, "round_robin");
    assert_int_equal(d->breaker.window_ms, 60000);
    assert_int_equal(d->breaker.min_requests, 20);
    assert_true(d->breaker.failure_ratio == 1.0);
    assert_int_equal(d->breaker.consecutive_failures, 0);
    assert_int_equal(d->breaker.open_ms, 2000);
    assert_int_equal(d->breaker.open_max_ms, 600000);
    assert_int_equal(d->breaker.half_open_trials, 3);
    assert_true(d->retry_budget.ratio == 0.05);
    assert_true(d->retry_budget.min_per_sec == 0.5);
    assert_int_equal(d->retry_budget.window_ms, 30000);
    assert_false(d->hedge.enabled);
    assert_int_equal(d->hedge.after_ms, 0);
    assert_true(d->hedge.max_ratio == 0.0);
    assert_true(d->continue_on_cut);

    /* The list form and a mapping without resilience: get exactly the top level. */
    for (int i = 0; i < 2; i++) {
        const struct cfg_resilience *r = &config_find_model(c, i ? "plain" : "listed")->resilience;
        assert_string_equal(r->strategy, "round_robin");
        assert_memory_equal(&r->breaker, &d->breaker, sizeof r->breaker);
        assert_memory_equal(&r->retry_budget, &d->retry_budget, sizeof r->retry_budget);
        assert_memory_equal(&r->hedge, &d->hedge, sizeof r->hedge);
        assert_true(r->continue_on_cut);
    }

    const struct cfg_resilience *t = &config_find_model(c, "tuned")->resilience;
    assert_string_equal(t->strategy, "least_inflight");
    assert_true(t->breaker.failure_ratio == 0.25); /* its own */
    assert_int_equal(t->breaker.open_ms, 1000);    /* its own */
    assert_int_equal(t->breaker.window_ms, 60000); /* the top level's, not the built-in */
    assert_int_equal(t->breaker.min_requests, 20);
    assert_int_equal(t->breaker.consecutive_failures, 0);
    assert_int_equal(t->breaker.open_max_ms, 600000);
    assert_int_equal(t->breaker.half_open_trials, 3);
    assert_int_equal(t->hedge.after_ms, 800); /* its own */
    assert_false(t->hedge.enabled);           /* inherited */
    assert_true(t->hedge.max_ratio == 0.0);
    assert_memory_equal(&t->retry_budget, &d->retry_budget, sizeof t->retry_budget);
    assert_true(t->continue_on_cut);
    config_unref(c);

    /* Every strategy name is accepted; an anchored section can be reused. */
    c = load_ok(ONE_PROVIDER "resilience: &r {strategy: latency_weight}\n"
                             "models:\n"
                             "  a: {deployments: [{provider: p, model: a}], resilience: *r}\n"
                             "  b: {deployments: [{provider: p, model: b}],\n"
                             "      resilience: {strategy: p2c, hedge: {enabled: false}}}\n");
    assert_string_equal(c->default_resilience.strategy, "latency_weight");
    assert_string_equal(config_find_model(c, "a")->resilience.strategy, "latency_weight");
    const struct cfg_resilience *b = &config_find_model(c, "b")->resilience;
    assert_string_equal(b->strategy, "p2c");
    assert_false(b->hedge.enabled);
    assert_true(b->hedge.max_ratio == 0.2);
    assert_true(c->default_resilience.hedge.enabled);
    config_unref(c);
}

/* A provider's continuation mechanism: auto unless given; a misspelt one is an error. */
static void test_provider_continuation(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  a: {base_url: 'http://127.0.0.1:1/v1'}\n"
                               "  b: {base_url: 'http://127.0.0.1:2/v1', continuation: continue_final_message}\n"
                               "  c: {base_url: 'http://127.0.0.1:3/v1', continuation: 'off'}\n"
                               "models:\n  m: [{provider: a, model: x}]\n");
    assert_int_equal(c->providers[0].continuation, CFG_CONTINUATION_AUTO);
    assert_int_equal(c->providers[1].continuation, CFG_CONTINUATION_CONTINUE_FINAL);
    assert_int_equal(c->providers[2].continuation, CFG_CONTINUATION_OFF);
    config_unref(c);
    EXPECT("providers:\n  a: {base_url: 'http://127.0.0.1:1/v1', continuation: prefx}\n"
           "models:\n  m: [{provider: a, model: x}]\n",
           1, "t.yaml:2: providers.a.continuation: unknown continuation \"prefx\"; did you mean \"prefix\"?\n");
}

static void test_resilience_problems(void **state)
{
    EXPECT("resilience:\n  strategy: p2x\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.strategy: unknown strategy \"p2x\"; did you mean \"p2c\"?\n");
    EXPECT("resilience:\n  strategy: random\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.strategy: unknown strategy \"random\" (expected one of: p2c, "
           "round_robin, least_inflight, latency_weight, cost, engine_load)\n");
    EXPECT("resilience:\n  strategy: least-inflight\n" ONE_PROVIDER ONE_MODEL, 1,
           "did you mean \"least_inflight\"?\n");
    EXPECT("resilience:\n  breaker:\n    failure_ratio: 0\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:3: resilience.breaker.failure_ratio: 0 is out of range (more than 0, at most "
           "1)\n");
    EXPECT("resilience:\n  breaker: {failure_ratio: 1.01}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.breaker.failure_ratio: 1.01 is out of range (more than 0, at "
           "most 1)\n");
    EXPECT("resilience:\n  breaker: {failure_ratio: half}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.breaker.failure_ratio: expected a number like 0.25, got "
           "\"half\"\n");
    EXPECT("resilience:\n  breaker: {window: 50ms, min_requests: 0, half_open_trials: "
           "0}\n" ONE_PROVIDER ONE_MODEL,
           3, "t.yaml:2: resilience.breaker.window: 50ms is out of range (100ms to 3600000ms)\n",
           "t.yaml:2: resilience.breaker.min_requests: 0 is out of range (1 to 1000000)\n",
           "t.yaml:2: resilience.breaker.half_open_trials: 0 is out of range (1 to 1000)\n");
    EXPECT("resilience:\n  breaker: {consecutive_failures: -1}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.breaker.consecutive_failures: -1 is out of range (0 to "
           "1000000)\n");
    EXPECT("resilience:\n  breaker:\n    open: 30s\n    open_max: 10s\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:3: resilience.breaker: open_max (10000ms) is shorter than open (30000ms)\n");
    EXPECT("resilience:\n  breaker: {failure_rate: 0.5}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: resilience.breaker.failure_rate: unknown key; did you mean "
           "\"failure_ratio\"?\n");
    EXPECT("resilience:\n  retry_budget:\n    ratio: 1.5\n    min_per_sec: -1\n"
           "    window: 0\n" ONE_PROVIDER ONE_MODEL,
           3, "t.yaml:3: resilience.retry_budget.ratio: 1.5 is out of range (0 to 1)\n",
           "t.yaml:4: resilience.retry_budget.min_per_sec: -1 is out of range (0 to 1000000)\n",
           "t.yaml:5: resilience.retry_budget.window: 0 is out of range (100ms to 3600000ms)\n");
    EXPECT("resilience:\n  hedge:\n    after: 0\n    max_ratio: -0.1\n" ONE_PROVIDER ONE_MODEL, 2,
           "t.yaml:3: resilience.hedge.after: 0 is out of range (1ms to 3600000ms, or auto)\n",
           "t.yaml:4: resilience.hedge.max_ratio: -0.1 is out of range (0 to 1)\n");
    EXPECT("resilience:\n  hedge: {after: soon, enabled: 1}\n" ONE_PROVIDER ONE_MODEL, 2,
           "t.yaml:2: resilience.hedge.after: bad duration \"soon\": expected e.g. 500ms, 30s, "
           "1.5m, 2h or an integer of milliseconds, or auto\n",
           "t.yaml:2: resilience.hedge.enabled: expected true or false, got \"1\"\n");
    EXPECT("resilience:\n  hedge: on\n  continue_on_cut: sometimes\n" ONE_PROVIDER ONE_MODEL, 2,
           "t.yaml:2: resilience.hedge: expected a mapping, got a single value\n",
           "t.yaml:3: resilience.continue_on_cut: expected true or false, got \"sometimes\"\n");
    EXPECT("resilience: [p2c]\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:1: resilience: expected a mapping, got a list\n");
    EXPECT("resilience: {stratgy: p2c}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:1: resilience.stratgy: unknown key; did you mean \"strategy\"?\n");

    /* In a model: the path and line of the model's own key; a check spanning inherited
       and own values (open_max from the top, open from the model) still applies. */
    EXPECT(ONE_PROVIDER "models:\n" /* 4 */
                        "  m:\n"    /* 5 */
                        "    deployments: [{provider: p, model: x}]\n"
                        "    resilience:\n"                 /* 7 */
                        "      strategy: fastest\n"         /* 8 */
                        "      breaker:\n"                  /* 9 */
                        "        open: 3m\n"                /* 10 */
                        "      retry_budget: {ratio: 2}\n", /* 11 */
           3,
           "t.yaml:8: models.m.resilience.strategy: unknown strategy \"fastest\" (expected one "
           "of:",
           "t.yaml:10: models.m.resilience.breaker: open_max (120000ms) is shorter than open "
           "(180000ms)\n",
           "t.yaml:11: models.m.resilience.retry_budget.ratio: 2 is out of range (0 to 1)\n");
}

static void test_probe_options(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  full:\n"
                               "    base_url: https://api.example.com/v1\n"
                               "    probe:\n"
                               "      enabled: true\n"
                               "      path: /health?full=1\n"
                               "      interval: 50ms\n"
                               "      timeout: 2m\n"
                               "      healthy_threshold: 1\n"
                               "      unhealthy_threshold: 7\n"
                               "      deep: on\n"
                               "      deep_interval: 1s\n"
                               "      deep_model: deepseek-chat\n"
                               "  off:\n"
                               "    probe: false\n" /* before base_url: order does not matter */
                               "    base_url: http://10.0.0.9/v1\n"
                               "  partly:\n"
                               "    base_url: http://10.0.0.8/v1\n"
                               "    probe: {deep: true}\n"
                               "  sim-on:\n"
                               "    base_url: sim://busy\n"
                               "    probe: true\n"
                               "  sim-tuned:\n"
                               "    base_url: sim://busy\n"
                               "    probe: {interval: 1s}\n"
                               "  null-probe:\n"
                               "    base_url: http://10.0.0.7\n"
                               "    probe:\n" ONE_MODEL_FOR("full"));
    const struct cfg_probe *full = &c->providers[0].probe;
    assert_true(full->enabled);
    assert_string_equal(full->path, "/health?full=1");
    assert_int_equal(full->interval_ms, 50);
    assert_int_equal(full->timeout_ms, 120000); /* longer than the interval: allowed */
    assert_int_equal(full->healthy_threshold, 1);
    assert_int_equal(full->unhealthy_threshold, 7);
    assert_true(full->deep);
    assert_int_equal(full->deep_interval_ms, 1000);
    assert_string_equal(full->deep_model, "deepseek-chat");

    const struct cfg_probe *off = &c->providers[1].probe;
    assert_false(off->enabled);
    assert_string_equal(off->path, "/models");

    const struct cfg_probe *partly = &c->providers[2].probe;
    assert_true(partly->enabled);
    assert_true(partly->deep);
    assert_int_equal(partly->interval_ms, 30000);
    assert_int_equal(partly->deep_interval_ms, 300000);
    assert_null(partly->deep_model);

    assert_true(c->providers[3].probe.enabled);
    assert_false(c->providers[4].probe.enabled); /* settings alone do not enable it */
    assert_int_equal(c->providers[4].probe.interval_ms, 1000);
    assert_true(c->providers[5].probe.enabled); /* probe: with nothing = the defaults */
    config_unref(c);
}

static void test_probe_problems(void **state)
{
    EXPECT(ONE_PROVIDER "    probe: maybe\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.probe: expected true or false, got \"maybe\"\n");
    EXPECT(ONE_PROVIDER "    probe: [a]\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.probe: expected a mapping, got a list\n");
    EXPECT(ONE_PROVIDER "    probe:\n"           /* 4 */
                        "      path: models\n"   /* 5 */
                        "      interval: 10ms\n" /* 6 */
                        "      timeout: 0\n"     /* 7 */
                        "      healthy_threshold: 0\n"
                        "      unhealthy_threshold: 1001\n"
                        "      deep: sometimes\n" /* 10 */
                        "      deep_interval: 500ms\n"
                        "      deep_model: ''\n" /* 12 */
                        "      deeep: true\n" ONE_MODEL,
           9, "t.yaml:5: providers.p.probe.path: must start with '/', got \"models\"\n",
           "t.yaml:6: providers.p.probe.interval: 10ms is out of range (50ms to 86400000ms)\n",
           "t.yaml:7: providers.p.probe.timeout: 0 is out of range (1ms to 600000ms)\n",
           "t.yaml:8: providers.p.probe.healthy_threshold: 0 is out of range (1 to 1000)\n",
           "t.yaml:9: providers.p.probe.unhealthy_threshold: 1001 is out of range (1 to 1000)\n",
           "t.yaml:10: providers.p.probe.deep: expected true or false, got \"sometimes\"\n",
           "t.yaml:11: providers.p.probe.deep_interval: 500ms is out of range (1000ms to "
           "86400000ms)\n",
           "t.yaml:12: providers.p.probe.deep_model: must not be empty\n",
           "t.yaml:13: providers.p.probe.deeep: unknown key; did you mean \"deep\"?\n");
    EXPECT(ONE_PROVIDER "    probe: {path: '/a b'}\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.probe.path: spaces and control characters are not allowed");
    EXPECT(ONE_PROVIDER "    probe: {path: \"/a\\r\\nX: y\"}\n" ONE_MODEL, 1,
           "t.yaml:4: providers.p.probe.path: spaces and control characters are not allowed");
}

static void test_deployment_limits(void **state)
{
    struct config *c = load_ok(ONE_PROVIDER "models:\n"
                                            "  m:\n"
                                            "    - {provider: p, model: a, max_concurrency: 8, "
                                            "rpm: 600}\n"
                                            "    - {provider: p, model: b, rpm: 0}\n");
    const struct cfg_model *m = config_find_model(c, "m");
    assert_int_equal(m->deployments[0].max_concurrency, 8);
    assert_int_equal(m->deployments[0].rpm, 600);
    assert_int_equal(m->deployments[1].max_concurrency, 0);
    assert_int_equal(m->deployments[1].rpm, 0);
    config_unref(c);
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - provider: p\n      model: x\n"
                        "      max_concurrency: -1\n      rpm: lots\n",
           2, "t.yaml:8: models.m[0].max_concurrency: -1 is out of range (0 to 1000000)\n",
           "t.yaml:9: models.m[0].rpm: expected an integer, got \"lots\"\n");
    EXPECT(ONE_PROVIDER "models:\n  m:\n    - {provider: p, model: x, rpm: 100000001}\n", 1,
           "t.yaml:6: models.m[0].rpm: 100000001 is out of range (0 to 100000000)\n");
}

static void test_admin_token(void **state)
{
    setenv("UNBUSY_T_ADMIN", "0123456789abcdef0123", 1);
    struct config *c = load_ok("admin:\n  token: ${UNBUSY_T_ADMIN}\n" ONE_PROVIDER ONE_MODEL);
    assert_string_equal(c->admin_token, "0123456789abcdef0123");
    config_unref(c);

    /* Short: loads, with a warning that does not show the token. */
    setenv("UNBUSY_T_ADMIN", "hunter2", 1);
    struct config_errors errs;
    assert_int_equal(load("admin:\n  token: ${UNBUSY_T_ADMIN}\n" ONE_PROVIDER ONE_MODEL, &c, &errs),
                     0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.warnings, 1);
    assert_string_equal(errs.text.data,
                        "t.yaml:2: admin.token: warning: shorter than 16 characters, easy to "
                        "guess; use a long random string (e.g. openssl rand -hex 32)\n");
    assert_string_equal(c->admin_token, "hunter2");
    config_errors_free(&errs);
    config_unref(c);

    /* Sixteen is enough. */
    c = load_ok("admin: {token: 0123456789abcdef}\n" ONE_PROVIDER ONE_MODEL);
    assert_string_equal(c->admin_token, "0123456789abcdef");
    config_unref(c);

    /* Unset or empty: an error, never an admin API that quietly has no token. */
    unsetenv("UNBUSY_T_ADMIN");
    EXPECT("admin:\n  token: ${UNBUSY_T_ADMIN}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: admin.token: ${UNBUSY_T_ADMIN} is not set (required here: set it, or "
           "remove this key)\n");
    setenv("UNBUSY_T_ADMIN", "", 1);
    EXPECT("admin:\n  token: ${UNBUSY_T_ADMIN}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: admin.token: empty; set a long random string");
    unsetenv("UNBUSY_T_ADMIN");
    EXPECT("admin:\n  token: ${UNBUSY_T_ADMIN:-}\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: admin.token: empty;");
    EXPECT("admin: {token: ''}\n" ONE_PROVIDER ONE_MODEL, 1, "t.yaml:1: admin.token: empty;");
    /* No token written: the read-only loopback admin API. */
    c = load_ok("admin:\n" ONE_PROVIDER ONE_MODEL);
    assert_null(c->admin_token);
    config_unref(c);

    EXPECT("admin:\n  token: \"0123456789abcdef\\n0123\"\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: admin.token: control characters");
    EXPECT("admin:\n  tokn: x\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:2: admin.tokn: unknown key; did you mean \"token\"?\n");
    EXPECT("admin: secret\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:1: admin: expected a mapping, got a single value\n");
}

static void test_auth_open(void **state)
{
    /* Open only by what the file says: no keys: and no key_store:, or auth.open: true. */
    struct config *c = load_ok(ONE_PROVIDER ONE_MODEL);
    assert_true(c->auth.open);
    assert_false(c->auth.open_given);
    config_unref(c);
    c = load_ok("auth: {open: true}\n" ONE_PROVIDER ONE_MODEL);
    assert_true(c->auth.open);
    assert_true(c->auth.open_given);
    config_unref(c);

    /* keys: or key_store: written, whatever they hold: closed. A store that is
       empty, or a key list that is, refuses everyone instead of opening up. */
    c = load_ok(ONE_PROVIDER ONE_MODEL "keys:\n  - {name: a, key: sk-test-0123456789abcdef}\n");
    assert_false(c->auth.open);
    config_unref(c);
    c = load_ok(ONE_PROVIDER ONE_MODEL "key_store: /nonexistent/keys.db\n");
    assert_false(c->auth.open);
    config_unref(c);
    c = load_ok(ONE_PROVIDER ONE_MODEL "keys: []\n");
    assert_false(c->auth.open);
    config_unref(c);
    unsetenv("UNBUSY_T_STORE");
    struct config_errors errs;
    assert_int_equal(load(ONE_PROVIDER ONE_MODEL "key_store: ${UNBUSY_T_STORE}\n", &c, &errs), 0);
    assert_int_equal(errs.warnings, 1); /* the unset variable */
    assert_null(c->key_store);
    assert_false(c->auth.open);
    config_errors_free(&errs);
    config_unref(c);

    /* auth.open: false and no keys at all: loads, refusing every request, with a warning. */
    assert_int_equal(load("auth:\n  open: false\n" ONE_PROVIDER ONE_MODEL, &c, &errs), 0);
    assert_string_equal(errs.text.data, "t.yaml:2: auth.open: warning: false with neither keys: "
                                        "nor key_store: refuses every request (401)\n");
    assert_false(c->auth.open);
    config_errors_free(&errs);
    config_unref(c);

    /* The opt-in next to keys is a contradiction, reported at the opt-in. */
    EXPECT("auth:\n  open: true\n" ONE_PROVIDER ONE_MODEL "key_store: k.db\n", 1,
           "t.yaml:2: auth.open: true, but the file also has keys: or key_store:; an open gateway "
           "would ignore them, so remove one or the other\n");
    EXPECT("auth: {open: true}\n" ONE_PROVIDER ONE_MODEL
           "keys:\n  - {name: a, key: sk-test-0123456789abcdef}\n",
           1, "t.yaml:1: auth.open: true, but the file also has keys:");
    EXPECT("auth: {open: yes please}\n" ONE_PROVIDER ONE_MODEL, 1, "t.yaml:1: auth.open: ");
    EXPECT("auth: open\n" ONE_PROVIDER ONE_MODEL, 1,
           "t.yaml:1: auth: expected a mapping, got a single value\n");
}

static void test_number_syntax(void **state)
{
    static const struct {
        const char *s;
        int rc;
        double v;
    } cases[] = {
        {"0", 0, 0},
        {"1", 0, 1},
        {"0.5", 0, 0.5},
        {"0.25", 0, 0.25},
        {"-0.1", 0, -0.1},
        {"3", 0, 3},
        {"0.000000001", 0, 1e-9},
        {"12.5", 0, 12.5},
        {"", -1, 0},
        {".5", -1, 0},
        {"1.", -1, 0},
        {"-", -1, 0},
        {"1e3", -1, 0},
        {"0x10", -1, 0},
        {"+1", -1, 0},
        {"1 ", -1, 0},
        {"50%", -1, 0},
        {"0.0000000001", -1, 0},
        {"1234567890123456", -1, 0},
        {"nan", -1, 0},
        {"inf", -1, 0},
        {"1.2.3", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = 42;
        const char *why = NULL;
        int rc = config_value_number(cases[i].s, &v, &why);
        if (rc != cases[i].rc) fprintf(stderr, "number \"%s\": rc %d\n", cases[i].s, rc);
        assert_int_equal(rc, cases[i].rc);
        if (rc)
            assert_non_null(why);
        else
            assert_true(v == cases[i].v);
    }
}

/* Anchors and aliases share one node: both models get their own copy of the list. */
static void test_aliases(void **state)
{
    struct config *c = load_ok(ONE_PROVIDER "models:\n"
                                            "  a: &pool\n"
                                            "    - {provider: p, model: up}\n"
                                            "  b: *pool\n");
    const struct cfg_model *a = config_find_model(c, "a"), *b = config_find_model(c, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a->deployments, b->deployments);
    assert_string_equal(b->deployments[0].model, "up");
    config_unref(c);
}

static void test_rule_bypass_allowlist(void **state)
{
    struct config *c = load_ok(ONE_PROVIDER ONE_MODEL "    - provider: p\n      model: y\n"
                                             "rules:\n"
                                             "  - match: {header: x-partner}\n"
                                             "    route: {model: m, bypass_allowlist: true}\n"
                                             "  - match: {header: x-quality}\n"
                                             "    route: {model: m}\n");
    assert_int_equal(c->nrules, 2);
    assert_true(c->rules[0].bypass_allowlist);
    assert_false(c->rules[1].bypass_allowlist);
    config_unref(c);
    EXPECT(ONE_PROVIDER ONE_MODEL "rules:\n  - match: {header: x-a}\n    route: {tier: 1, bypass_allowlist: true}\n",
           1, "t.yaml:9: rules[0]: route.bypass_allowlist: the route names no model to hand out\n");
    EXPECT(ONE_PROVIDER ONE_MODEL "rules:\n  - route: {model: m, bypass_allowlist: maybe}\n", 1,
           "t.yaml:9: rules[0].route.bypass_allowlist:");
}

static void test_refcount(void **state)
{
    struct config *c = load_ok(ONE_PROVIDER ONE_MODEL);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_ptr_equal(config_ref(c), c);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 3);
    config_unref(c);
    config_unref(c);
    /* Still usable with one reference left (ASan would flag a use after free). */
    assert_string_equal(config_find_model(c, "m")->deployments[0].provider->name, "p");
    config_unref(c); /* frees; a leak or double free shows under ASan */
    config_unref(NULL);
}

static void test_many_models_lookup(void **state)
{
    struct buf text;
    buf_init(&text, 0);
    buf_append_str(&text, ONE_PROVIDER "models:\n");
    for (int i = 0; i < 300; i++)
        buf_printf(&text, "  model-%d:\n    - {provider: p, model: up-%d}\n", i, i);
    struct config *c = load_ok(text.data);
    assert_int_equal(c->nmodels, 300);
    for (int i = 0; i < 300; i++) {
        char name[32], up[32];
        snprintf(name, sizeof name, "model-%d", i);
        snprintf(up, sizeof up, "up-%d", i);
        const struct cfg_model *m = config_find_model(c, name);
        assert_non_null(m);
        assert_string_equal(m->deployments[0].model, up);
    }
    assert_null(config_find_model(c, "model-300"));
    /* A snapshot without the index (built by hand) falls back to a scan. */
    uint32_t *slots = c->model_slots;
    c->model_slots = NULL;
    assert_string_equal(config_find_model(c, "model-299")->name, "model-299");
    assert_null(config_find_model(c, "model-x"));
    c->model_slots = slots;
    config_unref(c);
    buf_free(&text);
}

static void test_load_file(void **state)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    assert_int_equal(config_load_file("/nonexistent/unbusy.yaml", &c, &errs), -1);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.text.data,
                        "/nonexistent/unbusy.yaml: cannot read: No such file or directory\n");
    config_errors_free(&errs);

    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(ONE_PROVIDER ONE_MODEL, f);
    fclose(f);
    config_errors_init(&errs);
    assert_int_equal(config_load_file(path, &c, &errs), 0);
    assert_string_equal(c->source, path);
    config_unref(c);
    config_errors_free(&errs);

    /* One byte past the limit is refused, before any parsing. */
    f = fopen(path, "w");
    fputs("# big\n", f);
    for (size_t n = 6; n < CONFIG_MAX_TEXT_BYTES + 1; n++)
        fputc(n % 64 == 63 ? '\n' : '#', f);
    fclose(f);
    config_errors_init(&errs);
    assert_int_equal(config_load_file(path, &c, &errs), -1);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.text.data, "larger than 4 MiB"));
    config_errors_free(&errs);
    unlink(path);

    /* errs may be NULL. */
    assert_int_equal(config_load_text("x", "models: {}", 10, &c, NULL), -1);
}

/* ---- server.tls ---- */

/* A self-signed certificate (CN=unit.test, valid until 2126), its key, and another key. */
static const char unit_cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBgDCCASWgAwIBAgIUJIIiNMyeJNbqrHSEhGycxB5hXEgwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJdW5pdC50ZXN0MCAXDTI2MTIwMjE2MTc0NloYDzIxMjYxMTA4\n"
    "MTYxNzQ2WjAUMRIwEAYDVQQDDAl1bml0LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAARw4pefAcqJY9sTmPJkdkmR9dxsOBxTPJebGgDTF497uHXU9POplmzF\n"
    "2xPsCNCd40CgdW0Fsflk3Zg4zpsJJPkzo1MwUTAdBgNVHQ4EFgQUhY9sgsVJbD0p\n"
    "vaHg9Kha9NLu2nEwHwYDVR0jBBgwFoAUhY9sgsVJbD0pvaHg9Kha9NLu2nEwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEArS+HKdAJPkVDslrx2BfE\n"
    "pizwBsw71lIuqpGoDk3G0S0CIQD7ZjRvxi79QvAKmTa/ApNNwR1DmywSrLoSXt9n\n"
    "9UnuQQ==\n"
    "-----END CERTIFICATE-----\n";
static const char unit_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCr0WWY+I2FJUVUhR\n"
    "MXyXUBk39LGrU5MOusRZ2F5ffaWhRANCAARw4pefAcqJY9sTmPJkdkmR9dxsOBxT\n"
    "PJebGgDTF497uHXU9POplmzF2xPsCNCd40CgdW0Fsflk3Zg4zpsJJPkz\n"
    "-----END PRIVATE KEY-----\n";
static const char other_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9NeUb04dyF4etZli\n"
    "kahLAhjGBxNsuH8dcdjcCfNFSq+hRANCAASFxJnsfn3fupIERTzgsGSIM7PXPYDa\n"
    "+JaicY0pkJSQCThJuAIOcFmz2izNqrpg+kDODKgh049mybFRDs/c8w5j\n"
    "-----END PRIVATE KEY-----\n";

struct tls_files {
    char dir[64];
    char cert[96], key[96], other[96], junk[96], missing[96];
};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void tls_files_make(struct tls_files *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/test_config_tls_XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof t->key, "%s/key.pem", t->dir);
    snprintf(t->other, sizeof t->other, "%s/other.pem", t->dir);
    snprintf(t->junk, sizeof t->junk, "%s/junk.pem", t->dir);
    snprintf(t->missing, sizeof t->missing, "%s/missing.pem", t->dir);
    write_text(t->cert, unit_cert);
    write_text(t->key, unit_key);
    write_text(t->other, other_key);
    write_text(t->junk, "not a certificate\n");
}

static void tls_files_remove(struct tls_files *t)
{
    unlink(t->cert);
    unlink(t->key);
    unlink(t->other);
    unlink(t->junk);
    rmdir(t->dir);
}

/* A config whose server.tls names cert (line 3) and key (line 4). */
static void tls_config(char *out, size_t cap, const char *cert, const char *key)
{
    snprintf(out, cap, "server:\n  tls:\n    cert: %s\n    key: %s\n" ONE_PROVIDER ONE_MODEL, cert, key);
}

static void test_server_tls(void **state)
{
    struct tls_files t;
    tls_files_make(&t);
    char text[1024];

    /* Absent, or present with nothing under it: plain HTTP. */
    struct config *c = load_ok(ONE_PROVIDER ONE_MODEL);
    assert_null(c->server.tls_cert);
    assert_null(c->server.tls_key);
    config_unref(c);
    c = load_ok("server:\n  tls:\n" ONE_PROVIDER ONE_MODEL);
    assert_null(c->server.tls_cert);
    config_unref(c);

    tls_config(text, sizeof text, t.cert, t.key);
    c = load_ok(text);
    assert_string_equal(c->server.tls_cert, t.cert);
    assert_string_equal(c->server.tls_key, t.key);
    config_unref(c);

    /* A chain file (the leaf then more certificates) loads too. */
    char chain[128];
    snprintf(chain, sizeof chain, "%s/chain.pem", t.dir);
    char both[2 * sizeof unit_cert];
    snprintf(both, sizeof both, "%s%s", unit_cert, unit_cert);
    write_text(chain, both);
    tls_config(text, sizeof text, chain, t.key);
    c = load_ok(text);
    config_unref(c);
    unlink(chain);
    tls_files_remove(&t);
}

static void test_server_tls_problems(void **state)
{
    struct tls_files t;
    tls_files_make(&t);
    char text[1024], want[256];

    /* Each problem names the file, the line and the key at fault. */
    tls_config(text, sizeof text, t.missing, t.key);
    snprintf(want, sizeof want, "t.yaml:3: server.tls.cert: cannot read certificate %s: No such file",
             t.missing);
    expect_errors(text, 1, (const char *[]){want, NULL});

    tls_config(text, sizeof text, t.junk, t.key);
    snprintf(want, sizeof want, "t.yaml:3: server.tls.cert: cannot load certificate %s:", t.junk);
    expect_errors(text, 1, (const char *[]){want, NULL});

    tls_config(text, sizeof text, t.cert, t.missing);
    snprintf(want, sizeof want, "t.yaml:4: server.tls.key: cannot read key %s: No such file", t.missing);
    expect_errors(text, 1, (const char *[]){want, NULL});

    tls_config(text, sizeof text, t.cert, t.junk);
    snprintf(want, sizeof want, "t.yaml:4: server.tls.key: cannot load key %s:", t.junk);
    expect_errors(text, 1, (const char *[]){want, NULL});

    tls_config(text, sizeof text, t.cert, t.other);
    snprintf(want, sizeof want, "t.yaml:4: server.tls.key: key %s does not match the certificate %s",
             t.other, t.cert);
    expect_errors(text, 1, (const char *[]){want, NULL});

    /* A directory is not a readable file either. */
    tls_config(text, sizeof text, t.dir, t.key);
    snprintf(want, sizeof want, "t.yaml:3: server.tls.cert: ");
    expect_errors(text, 1, (const char *[]){want, NULL});

    /* Both keys are needed; nothing else is known; the section is a mapping. */
    snprintf(text, sizeof text, "server:\n  tls:\n    cert: %s\n" ONE_PROVIDER ONE_MODEL, t.cert);
    expect_errors(text, 1, (const char *[]){"t.yaml:3: server.tls.key: missing (required)", NULL});
    snprintf(text, sizeof text,
             "server:\n  tls:\n    cert: %s\n    key: %s\n    chain: x\n" ONE_PROVIDER ONE_MODEL,
             t.cert, t.key);
    expect_errors(text, 1, (const char *[]){"t.yaml:5: server.tls", "chain", NULL});
    expect_errors("server:\n  tls: yes\n" ONE_PROVIDER ONE_MODEL, 1,
                  (const char *[]){"t.yaml:2: server.tls", NULL});
    tls_files_remove(&t);
}

static void load_example(const char *path)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_file(path, &c, &errs);
    if (rc || errs.count) fprintf(stderr, "%s", errs.text.data ? errs.text.data : "");
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_true(c->nmodels >= 2);
    for (size_t i = 0; i < c->nmodels; i++)
        for (size_t j = 0; j < c->models[i].ndeployments; j++)
            assert_non_null(c->models[i].deployments[j].provider);
    config_errors_free(&errs);
    config_unref(c);
}

static void test_examples_load(void **state)
{
    load_example("examples/deepseek-multicloud.yaml");
    load_example("examples/self-hosted-vllm.yaml");

    struct config *c = NULL;
    assert_int_equal(config_load_file("examples/deepseek-multicloud.yaml", &c, NULL), 0);
    const struct cfg_model *r1 = config_find_model(c, "deepseek-r1");
    assert_non_null(r1);
    assert_true(r1->ndeployments >= 4);
    config_unref(c);
}

/* The built-in demo config (make run), with and without real providers' keys. */
static void test_demo_config_loads(void **state)
{
    for (int with_key = 0; with_key < 2; with_key++) {
        if (with_key)
            setenv("DEEPSEEK_API_KEY", "sk-demo", 1);
        else
            unsetenv("DEEPSEEK_API_KEY");
        struct buf text;
        buf_init(&text, 0);
        demo_config_text(&text, "127.0.0.1:0");
        struct config *c = load_ok(text.data);
        const struct cfg_model *r1 = config_find_model(c, "deepseek-r1");
        assert_non_null(r1);
        assert_non_null(config_find_model(c, "deepseek-v3"));
        assert_int_equal(r1->ndeployments, with_key ? 4 : 3);
        assert_string_equal(r1->resilience.strategy, "p2c");
        for (size_t i = 0; i < c->nproviders; i++)
            assert_int_equal(c->providers[i].probe.enabled,
                             c->providers[i].kind != CFG_PROVIDER_SIM);
        config_unref(c);
        buf_free(&text);
    }
    unsetenv("DEEPSEEK_API_KEY");
}

/* The secrets a snapshot holds, for redaction: keys, secret headers, the admin token. */
static bool has_secret(const struct config *c, const char *v)
{
    for (size_t i = 0; i < c->secrets.n; i++)
        if (c->secrets.v[i].len == strlen(v) && memcmp(c->secrets.v[i].p, v, strlen(v)) == 0)
            return true;
    return false;
}

static void test_secrets(void **state)
{
    struct config *c = load_ok("admin:\n  token: admin-token-123456\n"
                               "providers:\n"
                               "  p:\n"
                               "    base_url: http://127.0.0.1:9/v1\n"
                               "    api_key: sk-provider-key-1\n"
                               "    headers:\n"
                               "      X-Api-Key: header-key-123456\n"
                               "      Authorization-Extra: Bearer tok-in-header-1\n"
                               "      X-Trace: not-a-secret-value\n"
                               "    secret_headers:\n"
                               "      X-Tenant-Pass: tenant-pass-123\n"
                               "keys:\n  - name: a\n    key: sk-client-key-123456\n" ONE_MODEL);
    const struct cfg_provider *p = &c->providers[0];
    assert_int_equal(p->nheaders, 4);
    assert_true(p->headers[0].secret);
    assert_true(p->headers[1].secret);
    assert_false(p->headers[2].secret);
    assert_string_equal(p->headers[3].name, "X-Tenant-Pass");
    assert_true(p->headers[3].secret);
    assert_true(has_secret(c, "admin-token-123456"));
    assert_true(has_secret(c, "sk-provider-key-1"));
    assert_true(has_secret(c, "header-key-123456"));
    assert_true(has_secret(c, "Bearer tok-in-header-1"));
    assert_true(has_secret(c, "tok-in-header-1"));
    assert_true(has_secret(c, "tenant-pass-123"));
    assert_true(has_secret(c, "sk-client-key-123456"));
    assert_false(has_secret(c, "not-a-secret-value"));
    config_unref(c);
    assert_true(config_header_secret_by_name("api-key"));
    assert_true(config_header_secret_by_name("Proxy-Authorization"));
    assert_true(config_header_secret_by_name("x-goog-api-key"));
    assert_false(config_header_secret_by_name("OpenAI-Organization"));

    const char *const twice[] = {"set twice", NULL};
    expect_errors("providers:\n  p:\n    base_url: http://127.0.0.1:9/v1\n"
                  "    headers: {X-A: one}\n    secret_headers: {x-a: two}\n" ONE_MODEL,
                  1, twice);
}

/* server.workers: 0 counts the CPUs the process may use: affinity, then a cgroup quota. */
static void test_default_workers(void **state)
{
    (void)state;
    assert_int_equal(config_default_workers(8, NULL), 8);
    assert_int_equal(config_default_workers(0, NULL), 1);
    assert_int_equal(config_default_workers(8, "max 100000\n"), 8);       /* no quota */
    assert_int_equal(config_default_workers(8, "200000 100000\n"), 2);    /* two CPUs */
    assert_int_equal(config_default_workers(8, "150000 100000\n"), 2);    /* 1.5: rounded up */
    assert_int_equal(config_default_workers(8, "50000 100000\n"), 1);     /* half a CPU */
    assert_int_equal(config_default_workers(2, "800000 100000\n"), 2);    /* affinity is less */
    assert_int_equal(config_default_workers(4, "garbage"), 4);
    assert_int_equal(config_default_workers(4, "0 100000"), 4);
    assert_int_equal(config_default_workers(5000, NULL), 1024);
}

int main(void)
{
    config_tls_set_loader(tls_server_check_files);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_form),
        cmocka_unit_test(test_contract_form_key_unset_warns),
        cmocka_unit_test(test_map_form_and_timeouts),
        cmocka_unit_test(test_server_and_provider_options),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_durations_and_sizes),
        cmocka_unit_test(test_bad_listen_and_base_url),
        cmocka_unit_test(test_model_problems),
        cmocka_unit_test(test_many_problems_at_once),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_duration_syntax),
        cmocka_unit_test(test_size_syntax),
        cmocka_unit_test(test_value_helpers),
        cmocka_unit_test(test_resilience_defaults),
        cmocka_unit_test(test_resilience_override),
        cmocka_unit_test(test_resilience_problems),
        cmocka_unit_test(test_probe_options),
        cmocka_unit_test(test_probe_problems),
        cmocka_unit_test(test_deployment_limits),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_number_syntax),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_rule_bypass_allowlist),
        cmocka_unit_test(test_auth_open),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_many_models_lookup),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_server_tls),
        cmocka_unit_test(test_server_tls_problems),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_examples_load),
        cmocka_unit_test(test_demo_config_loads),
        cmocka_unit_test(test_provider_continuation),
        cmocka_unit_test(test_default_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
