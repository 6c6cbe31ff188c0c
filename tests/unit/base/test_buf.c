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
    /* near the limit: what fits exactly is written (the room for the longest form would
       not fit); what does not is refused whole, the buffer as it was */
    struct buf small;
    buf_init(&small, 16);
    assert_int_equal(buf_append_lit(&small, "x"), 0);
    assert_int_equal(buf_append_json_str(&small, "ab\ncdefghi", 10), 0);
    assert_string_equal(small.data, "x\"ab\\ncdefghi\"");
    assert_int_equal(small.len, 14);
    assert_int_equal(buf_append_json_str(&small, "\"", 1), -ENOBUFS);
    assert_int_equal(small.len, 14);
    assert_string_equal(small.data, "x\"ab\\ncdefghi\"");
    buf_free(&small);
}

/* Runs found 8 bytes at a time end where a byte at a time would: every byte that must be
   escaped, and some that must not, at every offset of a 40-byte string, against the same
   string escaped one byte per call. */
static void test_json_str_runs(void **state)
{
    (void)state;
    const unsigned char probes[] = {'"',  '\\', '\n', 0x01, 0x1f, ' ',
                                    0x7f, 0x80, 0xff, '!',  '#',  ']'};
    struct buf got, want, one;
    buf_init(&got, 0);
    buf_init(&want, 0);
    buf_init(&one, 0);
    for (size_t pi = 0; pi < sizeof probes; pi++) {
        for (size_t at = 0; at < 40; at++) {
            char s[40];
            memset(s, 'a', sizeof s);
            s[at] = (char)probes[pi];
            s[(at * 7 + 3) % 40] = (char)probes[(pi + 1) % sizeof probes]; /* a second one */
            buf_reset(&got);
            assert_int_equal(buf_append_json_str(&got, s, sizeof s), 0);
            buf_reset(&want);
            buf_append(&want, "\"", 1);
            for (size_t k = 0; k < sizeof s; k++) {
                buf_reset(&one);
                assert_int_equal(buf_append_json_str(&one, s + k, 1), 0);
                buf_append(&want, one.data + 1, one.len - 2);
            }
            buf_append(&want, "\"", 1);
            if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
                fail_msg("byte 0x%02x at %zu: %s, not %s", probes[pi], at, got.data, want.data);
        }
    }
    buf_free(&got);
    buf_free(&want);
    buf_free(&one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_bounded),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_str_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
