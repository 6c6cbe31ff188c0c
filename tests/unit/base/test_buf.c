#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"

/* The number writers give what printf gives, at the edges too. */
static void test_numbers(void **state)
{
    (void)state;
    const unsigned long long u[] = {0, 1, 9, 10, 99, 100, 12345, 4294967295ULL, ULLONG_MAX};
    const long long s[] = {0, -1, 1, -10, 123456789, LLONG_MAX, LLONG_MIN};
    char want[64];
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        buf_reset(&b);
        assert_int_equal(buf_append_u64(&b, u[i]), 0);
        snprintf(want, sizeof want, "%llu", u[i]);
        assert_string_equal(b.data, want);
        buf_reset(&b);
        assert_int_equal(buf_append_hex(&b, u[i]), 0);
        snprintf(want, sizeof want, "%llx", u[i]);
        assert_string_equal(b.data, want);
    }
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        buf_reset(&b);
        assert_int_equal(buf_append_i64(&b, s[i]), 0);
        snprintf(want, sizeof want, "%lld", s[i]);
        assert_string_equal(b.data, want);
    }
    buf_reset(&b);
    assert_int_equal(buf_append_lit(&b, "x: "), 0);
    assert_int_equal(b.len, 3);
    buf_free(&b);
}

/* The bound holds for the number writers as for any append. */
static void test_numbers_bounded(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4);
    assert_int_equal(buf_append_u64(&b, 1234), 0);
    assert_int_equal(buf_append_u64(&b, 5), -ENOBUFS);
    assert_string_equal(b.data, "1234");
    buf_free(&b);
}

/* Runs of plain bytes are copied at once; escapes between them, at the ends, and many in a
   row (which use more room than the string's length reserved) come out right. */
static void test_json_str(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append_json_str(&b, "plain text", 10), 0);
    assert_string_equal(b.data, "\"plain text\"");
    buf_reset(&b);
    const char mixed[] = "\"a\\b\nc\rd\te\x01";
    assert_int_equal(buf_append_json_str(&b, mixed, sizeof mixed - 1), 0);
    assert_string_equal(b.data, "\"\\\"a\\\\b\\nc\\rd\\te\\u0001\"");
    buf_reset(&b);
    char ctl[300];
    memset(ctl, 0x02, sizeof ctl);
    memcpy(ctl + 100, "tail of plain bytes after the escapes", 37);
    assert_int_equal(buf_append_json_str(&b, ctl, sizeof ctl), 0);
    assert_int_equal(b.len, 2 + 263 * 6 + 37);
    assert_non_null(strstr(b.data, "\\u0002tail of plain bytes after the escapes\\u0002"));
    assert_int_equal(b.data[b.len], '\0');
    buf_reset(&b);
    assert_int_equal(buf_append_json_str(&b, "", 0), 0);
    assert_string_equal(b.data, "\"\"");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_bounded),
        cmocka_unit_test(test_json_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
