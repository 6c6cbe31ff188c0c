#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/redact.h"

#define KEY "sk-live-0123456789abcdefXYZ"
#define ADMIN "admin-token-very-secret"
#define RAW "AbCdEfGh12345678"

static struct redact_set set;

static int setup(void **state)
{
    redact_set_init(&set);
    assert_int_equal(redact_set_add(&set, KEY), 0);
    assert_int_equal(redact_set_add(&set, ADMIN), 0);
    assert_int_equal(redact_set_add(&set, "Bearer " RAW), 0); /* a secret header value */
    assert_int_equal(redact_set_add(&set, "short"), 0);      /* too short: ignored */
    assert_int_equal(redact_set_add(&set, NULL), 0);
    assert_int_equal(redact_set_add(&set, KEY), 0);          /* once is enough */
    return 0;
}

static int teardown(void **state)
{
    redact_set_free(&set);
    return 0;
}

static char *red(const char *in)
{
    static char out[1024];
    size_t n = redact_text(&set, in, strlen(in), out, sizeof out);
    assert_int_equal(n, strlen(out));
    return out;
}

static void test_set(void **state)
{
    assert_int_equal(set.n, 4); /* KEY, ADMIN, "Bearer RAW", RAW */
}

static void test_whole_secrets(void **state)
{
    assert_string_equal(red("Incorrect API key provided: " KEY "."),
                        "Incorrect API key provided: [redacted].");
    assert_string_equal(red("Incorrect API key provided: Bearer " KEY),
                        "Incorrect API key provided: Bearer [redacted]");
    assert_string_equal(red(ADMIN ADMIN), "[redacted][redacted]");
    assert_string_equal(red("x-api-key=" RAW ";"), "x-api-key=[redacted];");
    assert_string_equal(red("a short word is kept"), "a short word is kept");
    assert_string_equal(red("nothing to see"), "nothing to see");
    assert_string_equal(red(""), "");
}

/* A message cut at N bytes ends in the first bytes of a key. */
static void test_cut_at_the_end(void **state)
{
    assert_string_equal(red("key: admin-tok"), "key: [redacted]");
    assert_string_equal(red("key: " RAW "0"), "key: [redacted]0");
    for (size_t keep = REDACT_PARTIAL_MIN; keep < strlen(ADMIN); keep++) {
        char in[128];
        snprintf(in, sizeof in, "provided: %.*s", (int)keep, ADMIN);
        assert_string_equal(red(in), "provided: [redacted]");
    }
    /* fewer than REDACT_PARTIAL_MIN bytes tell nothing, and ordinary words end that way */
    assert_string_equal(red("key: adm"), "key: adm");
    /* not at the end: not a cut key */
    assert_string_equal(red("key: admin-tok and more"), "key: admin-tok and more");
}

/* Keys the configuration does not know, by their shape. */
static void test_shapes(void **state)
{
    assert_string_equal(red("Incorrect API key provided: sk-proj-abcdefgh1234. See"),
                        "Incorrect API key provided: [redacted]. See");
    assert_string_equal(red("got sk-ant-api03-xyz"), "got [redacted]");
    assert_string_equal(red("cut: sk-ab"), "cut: [redacted]");
    assert_string_equal(red("a task-list, sk-short one"), "a task-list, sk-short one");
    assert_string_equal(red("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
                        "Authorization: Bearer [redacted]");
    assert_string_equal(red("header was bearer   0123456789abcdefghij, rejected"),
                        "header was bearer   [redacted], rejected");
    assert_string_equal(red("cut: Bearer 01234"), "cut: Bearer [redacted]");
    assert_string_equal(red("use a Bearer token here"), "use a Bearer token here");
}

/* The output is bounded by cap and by redact_bound, and always terminated. */
static void test_bounds(void **state)
{
    char small[8];
    size_t n = redact_text(&set, "hello world", 11, small, sizeof small);
    assert_int_equal(n, 7);
    assert_string_equal(small, "hello w");
    n = redact_text(&set, KEY, strlen(KEY), small, sizeof small);
    assert_int_equal(n, 7);
    assert_string_equal(small, "[redact");
    assert_int_equal(redact_text(&set, "x", 1, small, 0), 0);
    /* worst case: many short secrets back to back, and a cut one at the end */
    char in[600];
    size_t len = 0;
    while (len + strlen(ADMIN) < 580) {
        memcpy(in + len, ADMIN, strlen(ADMIN));
        len += strlen(ADMIN);
    }
    memcpy(in + len, "sk-a", 4);
    len += 4;
    size_t cap = redact_bound(len);
    char *out = malloc(cap);
    assert_non_null(out);
    n = redact_text(&set, in, len, out, cap);
    assert_true(n < cap - 1);
    assert_int_equal(strlen(out), n);
    assert_non_null(strstr(out, "[redacted]"));
    assert_null(strstr(out, "admin"));
    free(out);
    /* no set: only the shapes */
    char buf[64];
    redact_text(NULL, "k " KEY, strlen("k " KEY), buf, sizeof buf);
    assert_string_equal(buf, "k [redacted]");
}

/* Secrets fetched at run time are redacted with or without a set; the ring keeps the last ones. */
static void test_learnt(void **state)
{
    char buf[256];
    const char *msg = "token FQoGZXIvYXdzEJr-session-token-value rejected";
    redact_text(NULL, msg, strlen(msg), buf, sizeof buf);
    assert_non_null(strstr(buf, "FQoGZXIvYXdzEJr")); /* not known yet, not key-shaped */
    assert_int_equal(redact_learn("FQoGZXIvYXdzEJr-session-token-value"), 0);
    assert_int_equal(redact_learn("FQoGZXIvYXdzEJr-session-token-value"), 0); /* once */
    redact_text(NULL, msg, strlen(msg), buf, sizeof buf);
    assert_string_equal(buf, "token [redacted] rejected");
    struct redact_set own;
    redact_set_init(&own);
    assert_int_equal(redact_set_add(&own, "admin-token-1"), 0);
    const char *both = "admin-token-1 and FQoGZXIvYXdzEJr-sess";
    redact_text(&own, both, strlen(both), buf, sizeof buf);
    assert_string_equal(buf, "[redacted] and [redacted]"); /* a learnt one cut at the end too */
    redact_set_free(&own);
    assert_int_equal(redact_learn("short"), -1);
    /* the ring keeps the last REDACT_LEARNT_MAX: the first is forgotten after that many more */
    char v[32];
    for (int i = 0; i < REDACT_LEARNT_MAX; i++) {
        snprintf(v, sizeof v, "rotated-secret-%04d", i);
        assert_int_equal(redact_learn(v), 0);
    }
    redact_text(NULL, msg, strlen(msg), buf, sizeof buf);
    assert_non_null(strstr(buf, "FQoGZXIvYXdzEJr"));
    redact_text(NULL, "x rotated-secret-0015 y", 23, buf, sizeof buf);
    assert_string_equal(buf, "x [redacted] y");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_whole_secrets),
        cmocka_unit_test(test_cut_at_the_end),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_learnt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
