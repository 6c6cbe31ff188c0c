/*
 * A provider's wire: and aws: keys: the region and credentials resolved from the
 * file, the environment or the host; what is missing reported with the provider's line;
 * the keys in the redaction set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/redact.h"
#include "config/config.h"

#define MODEL "models:\n  m:\n    - provider: p\n      model: x\n"

static void clear_env(void)
{
    const char *names[] = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                           "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

static struct config *load(const char *text, struct config_errors *errs)
{
    struct config *c = NULL;
    config_errors_init(errs);
    if (config_load_text("t.yaml", text, strlen(text), &c, errs) < 0)
        return NULL;
    return c;
}

static void test_static_keys_region_from_host(void **state)
{
    clear_env();
    struct config_errors errs;
    struct config *c = load("providers:\n  p:\n    base_url: https://bedrock-runtime.eu-west-3.amazonaws.com\n"
                            "    wire: bedrock-converse\n    aws:\n      access_key_id: AKIDFILEKEY\n"
                            "      secret_access_key: file-secret-value\n      session_token: file-token-value\n" MODEL,
                            &errs);
    assert_non_null(c);
    const struct cfg_provider *p = &c->providers[0];
    assert_int_equal(p->wire, CFG_WIRE_BEDROCK_CONVERSE);
    assert_string_equal(p->aws->region, "eu-west-3");
    assert_string_equal(p->aws->service, "bedrock");
    assert_int_equal(p->aws->credentials, CFG_AWS_CRED_STATIC);
    /* every part of the credentials is a secret */
    char out[128];
    redact_text(&c->secrets, "id AKIDFILEKEY s file-secret-value t file-token-value", 52, out, sizeof out);
    assert_null(strstr(out, "AKIDFILEKEY"));
    assert_null(strstr(out, "file-secret-value"));
    assert_null(strstr(out, "file-token-value"));
    config_unref(c);
    config_errors_free(&errs);
}

static void test_environment(void **state)
{
    clear_env();
    setenv("AWS_REGION", "ap-northeast-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value", 1);
    setenv("AWS_SESSION_TOKEN", "env-token-value", 1);
    struct config_errors errs;
    struct config *c =
        load("providers:\n  p:\n    base_url: http://127.0.0.1:9000\n    wire: sagemaker\n" MODEL, &errs);
    assert_non_null(c);
    const struct cfg_provider *p = &c->providers[0];
    assert_string_equal(p->aws->region, "ap-northeast-1");
    assert_string_equal(p->aws->service, "sagemaker");
    assert_int_equal(p->aws->credentials, CFG_AWS_CRED_ENV);
    assert_string_equal(p->aws->secret_access_key, "env-secret-value");
    assert_string_equal(p->aws->session_token, "env-token-value");
    char out[64];
    redact_text(&c->secrets, "env-secret-value", 16, out, sizeof out);
    assert_null(strstr(out, "env-secret-value"));
    config_unref(c);
    config_errors_free(&errs);
    /* with no keys anywhere but the container endpoint's variable: the container */
    clear_env();
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);
    c = load("providers:\n  p:\n    base_url: https://runtime.sagemaker.us-west-2.amazonaws.com\n    wire: sagemaker\n" MODEL,
             &errs);
    assert_non_null(c);
    assert_int_equal(c->providers[0].aws->credentials, CFG_AWS_CRED_CONTAINER);
    assert_string_equal(c->providers[0].aws->region, "us-west-2");
    config_unref(c);
    config_errors_free(&errs);
    clear_env();
}

static void test_problems(void **state)
{
    clear_env();
    struct config_errors errs;
    /* no region, no keys */
    assert_null(load("providers:\n  p:\n    base_url: http://127.0.0.1:9000\n    wire: bedrock-converse\n" MODEL, &errs));
    assert_int_equal(errs.count, 2);
    assert_non_null(strstr(errs.text.data, "t.yaml:3: providers.p: no AWS region"));
    assert_non_null(strstr(errs.text.data, "no AWS credentials"));
    config_errors_free(&errs);
    /* an unknown wire, with a suggestion */
    assert_null(load("providers:\n  p:\n    base_url: http://h\n    wire: bedrock\n" MODEL, &errs));
    assert_non_null(strstr(errs.text.data, "bedrock-converse"));
    config_errors_free(&errs);
    /* aws: without an AWS wire */
    assert_null(load("providers:\n  p:\n    base_url: http://h\n    aws:\n      region: us-east-1\n" MODEL, &errs));
    assert_non_null(strstr(errs.text.data, "aws: is for wire: bedrock-converse or sagemaker"));
    config_errors_free(&errs);
    /* half the keys */
    assert_null(load("providers:\n  p:\n    base_url: http://h\n    wire: sagemaker\n    aws:\n      region: r\n"
                     "      access_key_id: A\n" MODEL,
                     &errs));
    assert_int_equal(errs.count, 1);
    config_errors_free(&errs);
    /* container asked for, no endpoint */
    assert_null(load("providers:\n  p:\n    base_url: http://h\n    wire: sagemaker\n    aws:\n      region: r\n"
                     "      credentials: container\n" MODEL,
                     &errs));
    assert_non_null(strstr(errs.text.data, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    config_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_keys_region_from_host),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
