#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "proto/resp.h"

static struct resp_reply r;

static long parse_str(const char *s)
{
    return resp_parse(s, strlen(s), &r);
}

static void test_scalars(void **state)
{
    assert_int_equal(parse_str("+OK\r\n"), 5);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.items[0].type, RESP_STATUS);
    assert_true(resp_item_is(&r.items[0], "OK"));

    assert_int_equal(parse_str("-NOSCRIPT No matching script\r\n"), 30);
    assert_int_equal(r.items[0].type, RESP_ERROR);
    assert_int_equal(r.items[0].len, 27);

    assert_int_equal(parse_str(":-42\r\n"), 6);
    assert_int_equal(r.items[0].type, RESP_INTEGER);
    assert_int_equal(r.items[0].integer, -42);

    assert_int_equal(parse_str("$5\r\nhe\r\no\r\n"), 11);
    assert_int_equal(r.items[0].type, RESP_BULK);
    assert_memory_equal(r.items[0].str, "he\r\no", 5);

    assert_int_equal(parse_str("$-1\r\n"), 5);
    assert_int_equal(r.items[0].type, RESP_NIL);
    assert_int_equal(parse_str("$0\r\n\r\n"), 6);
    assert_int_equal(r.items[0].len, 0);
}

static void test_nested_array_and_skip(void **state)
{
    const char *s = "*3\r\n*2\r\n:1\r\n$1\r\nx\r\n$-1\r\n:9\r\n+next\r\n";
    long n = parse_str(s);
    assert_int_equal(n, (long)strlen(s) - 7); /* the pipelined +next stays */
    assert_int_equal(r.n, 6);
    assert_int_equal(r.items[0].type, RESP_ARRAY);
    assert_int_equal(r.items[0].integer, 3);
    assert_int_equal(r.items[1].depth, 1);
    assert_int_equal(r.items[2].depth, 2);
    assert_int_equal(resp_skip(&r, 1), 4); /* the inner array and its two elements */
    assert_int_equal(r.items[4].type, RESP_NIL);
    assert_int_equal(r.items[5].integer, 9);
    assert_int_equal(resp_parse(s + n, 7, &r), 7);
    assert_true(resp_item_is(&r.items[0], "next"));
}

/* Every split of a pipeline of replies: each prefix short of a reply is "need more",
   and the replies come out the same. */
static void test_any_split(void **state)
{
    const char *s = "+OK\r\n*2\r\n:1\r\n$3\r\nabc\r\n-ERR x\r\n*0\r\n*-1\r\n$-1\r\n:123456789\r\n";
    size_t len = strlen(s);
    size_t whole[16], nwhole = 0, off = 0;
    while (off < len) {
        long n = resp_parse(s + off, len - off, &r);
        assert_true(n > 0);
        whole[nwhole++] = (size_t)n;
        off += (size_t)n;
    }
    assert_int_equal(nwhole, 7);
    off = 0;
    for (size_t i = 0; i < nwhole; i++) {
        for (size_t k = 0; k < whole[i]; k++)
            assert_int_equal(resp_parse(s + off, k, &r), RESP_NEED_MORE);
        /* and with the next reply's bytes after it, exactly this one */
        assert_int_equal(resp_parse(s + off, len - off, &r), (long)whole[i]);
        off += whole[i];
    }
}

static void test_hostile(void **state)
{
    assert_int_equal(parse_str("?what\r\n"), RESP_ERR_PROTO);
    assert_int_equal(parse_str(":12a\r\n"), RESP_ERR_PROTO);
    assert_int_equal(parse_str(":1\n"), RESP_ERR_PROTO);
    assert_int_equal(parse_str("$3\r\nabcd\r\n"), RESP_ERR_PROTO);
    assert_int_equal(parse_str("$-2\r\n"), RESP_ERR_PROTO);
    assert_int_equal(parse_str("$99999999999\r\n"), RESP_ERR_LIMIT);
    assert_int_equal(parse_str("*100000\r\n"), RESP_ERR_LIMIT);
    assert_int_equal(parse_str("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), RESP_ERR_LIMIT);
    /* a number line that never ends */
    char longline[200];
    memset(longline, '1', sizeof longline);
    longline[0] = ':';
    assert_int_equal(resp_parse(longline, sizeof longline, &r), RESP_ERR_PROTO);
    /* more items than the reply may hold: 150 arrays of one element each */
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "*150\r\n");
    for (int i = 0; i < 150; i++)
        buf_append_str(&b, "*1\r\n:1\r\n");
    assert_int_equal(resp_parse(b.data, b.len, &r), RESP_ERR_LIMIT);
    buf_free(&b);
}

static void test_command(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    const char *argv[] = {"SET", "k", "a\r\nb"};
    assert_int_equal(resp_command(&b, 3, argv, NULL), 0);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(resp_command(&b, 0, argv, NULL), -EINVAL);
    buf_free(&b);
    /* a command that does not fit leaves nothing behind */
    buf_init(&b, 16);
    assert_int_not_equal(resp_command(&b, 3, argv, NULL), 0);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),   cmocka_unit_test(test_nested_array_and_skip),
        cmocka_unit_test(test_any_split), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
