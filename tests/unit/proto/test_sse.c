#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sse.h"

/* Items as text, one per line: "E<event>|<data>" or "C<comment>", data's
 * newlines shown as '\n' escapes so a whole stream compares as one string. */
struct collect {
    char out[8192];
    size_t len;
    int items;
    int stop_after; /* return 1 from the callback after this many items; 0 never */
    const char *last_data; /* where the last event's data was handed */
    int framed;            /* events handed as framed */
};

static void put(struct collect *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n && c->len + 2 < sizeof c->out; i++) {
        if (s[i] == '\n') {
            c->out[c->len++] = '\\';
            c->out[c->len++] = 'n';
        } else {
            c->out[c->len++] = s[i];
        }
    }
    c->out[c->len] = '\0';
}

static int on_item(void *ud, const struct sse_item *it)
{
    struct collect *c = ud;
    if (it->kind == SSE_EVENT) {
        c->last_data = it->data;
        c->framed += it->framed;
        put(c, "E", 1);
        put(c, it->event, it->event_len);
        put(c, "|", 1);
    } else {
        put(c, "C", 1);
    }
    put(c, it->data, it->data_len);
    put(c, ";", 1);
    c->items++;
    return c->stop_after && c->items >= c->stop_after ? 1 : 0;
}

/* Feed s in pieces of `step` bytes (0: whole); returns the last feed's rc. */
static int feed_steps(struct sse_parser *p, const char *s, size_t len, size_t step,
                      struct collect *c)
{
    if (step == 0)
        step = len ? len : 1;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += step) {
        size_t n = len - off < step ? len - off : step;
        size_t consumed = 0;
        rc = sse_parser_feed(p, s + off, n, on_item, c, &consumed);
        if (rc == 0)
            assert_int_equal(consumed, n);
    }
    return rc;
}

static void expect_stream(const char *s, size_t len, const char *want)
{
    for (size_t step = 0; step <= 7; step++) {
        struct sse_parser p;
        struct collect c = {0};
        sse_parser_init(&p, 1024);
        assert_int_equal(feed_steps(&p, s, len, step, &c), 0);
        assert_string_equal(c.out, want);
        sse_parser_free(&p);
    }
}

#define EXPECT(lit, want) expect_stream(lit, sizeof(lit) - 1, want)

static void test_basic_event(void **state)
{
    EXPECT("data: hello\n\n", "E|hello;");
    EXPECT("data:hello\n\n", "E|hello;");
    EXPECT("data:  two spaces\n\n", "E| two spaces;");
    EXPECT("data: {\"a\":1}\n\ndata: [DONE]\n\n", "E|{\"a\":1};E|[DONE];");
}

static void test_multiline_and_fields(void **state)
{
    EXPECT("event: delta\nid: 7\nretry: 100\nfoo: bar\ndata: a\ndata: b\n\n", "Edelta|a\\nb;");
    /* "data" with no colon is a data line with an empty value */
    EXPECT("data\ndata\n\n", "E|\\n;");
    /* one empty data line is no event (the spec drops an empty data buffer) */
    EXPECT("data:\n\ndata: x\n\n", "E|x;");
    EXPECT("data:\ndata:\n\n", "E|\\n;");
    /* a JSON object over several data lines arrives joined, whole */
    EXPECT("data: {\"a\":\ndata: 1}\n\n", "E|{\"a\":\\n1};");
    /* the event name does not leak into the next event */
    EXPECT("event: x\ndata: 1\n\ndata: 2\n\n", "Ex|1;E|2;");
    /* an event without data is not dispatched, and its name is dropped */
    EXPECT("event: x\n\ndata: 2\n\n", "E|2;");
    /* a colon inside the value is kept */
    EXPECT("data: a:b\n\n", "E|a:b;");
}

static void test_comments(void **state)
{
    EXPECT(": keep-alive\n\n", "C keep-alive;");
    EXPECT(":\ndata: x\n: mid\n\n", "C;C mid;E|x;");
}

static void test_line_endings(void **state)
{
    EXPECT("data: a\r\n\r\n", "E|a;");
    EXPECT("data: a\r\rdata: b\r\r", "E|a;E|b;");
    EXPECT("data: a\r\ndata: b\n\r\n", "E|a\\nb;");
    /* an LF right after a CR belongs to it, even across feeds */
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 1024);
    assert_int_equal(sse_parser_feed(&p, "data: a\r", 8, on_item, &c, NULL), 0);
    assert_int_equal(sse_parser_feed(&p, "\n", 1, on_item, &c, NULL), 0);
    assert_int_equal(sse_parser_feed(&p, "data: b\r\n\r\n", 11, on_item, &c, NULL), 0);
    assert_string_equal(c.out, "E|a\\nb;");
    sse_parser_free(&p);
}

static void test_bom(void **state)
{
    EXPECT("\xEF\xBB\xBF" "data: x\n\n", "E|x;");
    /* only at the start of the stream */
    EXPECT("\xEF\xBB\xBF" "data: x\n\n\xEF\xBB\xBF" "data: y\n\n", "E|x;");
    /* a BOM prefix that is not a BOM stays part of the line */
    EXPECT("\xEF\xBB" ": c\n\n", "");
    EXPECT("\xEF" "\n: c\n", "C c;");
}

static void test_partial_event_not_dispatched(void **state)
{
    EXPECT("data: a\n\ndata: b\n", "E|a;");
    EXPECT("data: a", "");
}

static void test_too_big(void **state)
{
    struct sse_parser p;
    struct collect c = {0};
    char big[200];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);

    /* exactly max_event_bytes of data is fine */
    sse_parser_init(&p, 64);
    char ok[80];
    memcpy(ok, "data: ", 6);
    memset(ok + 6, 'y', 64);
    memcpy(ok + 70, "\n\n", 2);
    assert_int_equal(sse_parser_feed(&p, ok, 72, on_item, &c, NULL), 0);
    assert_int_equal(c.items, 1);
    sse_parser_free(&p);

    /* one line too long, whole or trickled */
    for (size_t step = 0; step <= 3; step++) {
        sse_parser_init(&p, 64);
        memset(&c, 0, sizeof c);
        int rc = feed_steps(&p, big, sizeof big, step, &c);
        assert_int_equal(rc, SSE_ERR_TOO_BIG);
        assert_int_equal(c.items, 0);
        sse_parser_free(&p);
    }

    /* many short data lines that add up */
    sse_parser_init(&p, 64);
    memset(&c, 0, sizeof c);
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++)
        rc = sse_parser_feed(&p, "data: 0123456\n", 14, on_item, &c, NULL);
    assert_int_equal(rc, SSE_ERR_TOO_BIG);
    sse_parser_free(&p);

    /* a long comment line is refused too: nothing grows without bound */
    sse_parser_init(&p, 64);
    big[0] = ':';
    assert_int_equal(sse_parser_feed(&p, big, sizeof big, on_item, &c, NULL), SSE_ERR_TOO_BIG);
    sse_parser_free(&p);
}

static void test_stop_and_resume(void **state)
{
    const char s[] = "data: 1\n\ndata: 2\r\n\r\ndata: 3\n\n";
    size_t len = sizeof s - 1;
    struct sse_parser p;
    struct collect c = {.stop_after = 1};
    sse_parser_init(&p, 1024);
    size_t off = 0, consumed = 0;
    int rc = sse_parser_feed(&p, s, len, on_item, &c, &consumed);
    assert_int_equal(rc, 1);
    assert_int_equal(consumed, 9); /* right after the blank line */
    assert_string_equal(c.out, "E|1;");
    off += consumed;
    c.stop_after = 2;
    rc = sse_parser_feed(&p, s + off, len - off, on_item, &c, &consumed);
    assert_int_equal(rc, 1);
    /* the dispatching CR was consumed, its LF not yet */
    assert_int_equal(s[off + consumed - 1], '\r');
    off += consumed;
    c.stop_after = 0;
    rc = sse_parser_feed(&p, s + off, len - off, on_item, &c, &consumed);
    assert_int_equal(rc, 0);
    assert_int_equal(consumed, len - off);
    assert_string_equal(c.out, "E|1;E|2;E|3;");
    sse_parser_free(&p);
}

/* An event of one data line that came whole is handed where it lies; one cut across feeds,
   or of several lines, from the parser's own copy, which outlives the caller's bytes. */
static void test_data_in_place_or_kept(void **state)
{
    char s[] = "data: {\"a\":1}\n\ndata: x\n: c\n\ndata: y\ndata: z\n\n";
    size_t len = sizeof s - 1;
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 1024);
    size_t consumed = 0;
    c.stop_after = 1;
    assert_int_equal(sse_parser_feed(&p, s, len, on_item, &c, &consumed), 1);
    assert_ptr_equal(c.last_data, s + 6);
    /* stopped at the comment with "x" read but not dispatched: the rest comes in other
       bytes, and the ones fed before are overwritten */
    size_t off = consumed;
    c.stop_after = 2;
    assert_int_equal(sse_parser_feed(&p, s + off, len - off, on_item, &c, &consumed), 1);
    assert_string_equal(c.out, "E|{\"a\":1};C c;");
    char rest[64];
    off += consumed;
    memcpy(rest, s + off, len - off);
    memset(s, '#', len);
    c.stop_after = 0;
    assert_int_equal(sse_parser_feed(&p, rest, len - off, on_item, &c, &consumed), 0);
    assert_string_equal(c.out, "E|{\"a\":1};C c;E|x;E|y\\nz;");
    assert_true(c.last_data < rest || c.last_data >= rest + sizeof rest); /* joined: a copy */
    /* cut inside the data line: the first part is gone when the second comes */
    char a[] = "data: he", b[] = "llo\n\n";
    memset(&c, 0, sizeof c);
    assert_int_equal(sse_parser_feed(&p, a, strlen(a), on_item, &c, NULL), 0);
    memset(a, '#', strlen(a));
    assert_int_equal(sse_parser_feed(&p, b, strlen(b), on_item, &c, NULL), 0);
    assert_string_equal(c.out, "E|hello;");
    /* the data line whole in one feed, its blank line in the next */
    char d[] = "data: kept\n", e[] = "\n";
    memset(&c, 0, sizeof c);
    assert_int_equal(sse_parser_feed(&p, d, strlen(d), on_item, &c, NULL), 0);
    memset(d, '#', strlen(d));
    assert_int_equal(sse_parser_feed(&p, e, 1, on_item, &c, NULL), 0);
    assert_string_equal(c.out, "E|kept;");
    sse_parser_free(&p);
}

/* Framed: the event's bytes as they came are "data: " + data + "\n\n", to be sent on whole. */
static void test_framed(void **state)
{
    static const struct {
        const char *s;
        int framed;
    } cases[] = {
        {"data: {\"a\":1}\n\n", 1},
        {"data: a\n\ndata: b\n\n", 2},
        {"data:  two spaces\n\n", 1}, /* the second space is the data's */
        {"id: 7\ndata: x\n\n", 1},    /* not relayed either way */
        {"data:x\n\n", 0},
        {"data: x\r\n\r\n", 0},
        {"data: x\n\r\n", 0},
        {"data: x\r\n\n", 0},
        {"data: x\n: c\n\n", 0},
        {"data: x\nid: 1\n\n", 0},
        {"data: a\ndata: b\n\n", 0},
        {"event: e\ndata: x\n\n", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].s);
        char *s = malloc(len);
        memcpy(s, cases[k].s, len);
        struct sse_parser p;
        struct collect c = {0};
        sse_parser_init(&p, 1024);
        assert_int_equal(sse_parser_feed(&p, s, len, on_item, &c, NULL), 0);
        assert_true(c.items >= 1);
        if (c.framed != cases[k].framed)
            fail_msg("%s: %d framed, want %d", cases[k].s, c.framed, cases[k].framed);
        /* cut anywhere before the end: the part fed first is no longer there, none framed */
        for (size_t cut = 1; cut < len; cut++) {
            struct collect d = {0};
            sse_parser_reset(&p);
            char *a = malloc(cut), *b = malloc(len - cut);
            memcpy(a, cases[k].s, cut);
            memcpy(b, cases[k].s + cut, len - cut);
            assert_int_equal(sse_parser_feed(&p, a, cut, on_item, &d, NULL), 0);
            int before = d.framed;
            free(a);
            assert_int_equal(sse_parser_feed(&p, b, len - cut, on_item, &d, NULL), 0);
            free(b);
            assert_string_equal(d.out, c.out);
            assert_true(d.framed - before <= cases[k].framed);
        }
        free(s);
        sse_parser_free(&p);
    }
}

static void test_reset(void **state)
{
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 1024);
    assert_int_equal(sse_parser_feed(&p, "event: e\ndata: half", 19, on_item, &c, NULL), 0);
    sse_parser_reset(&p);
    assert_int_equal(sse_parser_feed(&p, "\xEF\xBB\xBF" "data: new\n\n", 14, on_item, &c, NULL), 0);
    assert_string_equal(c.out, "E|new;");
    sse_parser_free(&p);
}

static void test_default_limit_and_large_event(void **state)
{
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 0);
    assert_int_equal(p.max_event_bytes, SSE_DEFAULT_MAX_EVENT);
    size_t n = 300000;
    char *s = malloc(n + 8);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'z', n);
    memcpy(s + 6 + n, "\n\n", 2);
    /* in odd pieces, through the line buffer */
    size_t off = 0;
    while (off < n + 8) {
        size_t k = n + 8 - off < 4093 ? n + 8 - off : 4093;
        assert_int_equal(sse_parser_feed(&p, s + off, k, on_item, &c, NULL), 0);
        off += k;
    }
    assert_int_equal(c.items, 1);
    free(s);
    sse_parser_free(&p);
}

/* Whatever the parser gives, the encoder writes so that a parser gives it again. */
static void test_encode_round_trip(void **state)
{
    static const char *const datas[] = {"x", "{\"a\":\n1}", "\n", "a\n\nb", "\nlead", "trail\n", "[DONE]"};
    for (size_t i = 0; i < sizeof datas / sizeof datas[0]; i++) {
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(sse_encode_event(&b, datas[i], strlen(datas[i])), 0);
        assert_int_equal(b.data[b.len], '\0');
        struct sse_parser p;
        struct collect c = {0}, want = {0};
        sse_parser_init(&p, 1024);
        assert_int_equal(sse_parser_feed(&p, b.data, b.len, on_item, &c, NULL), 0);
        put(&want, "E|", 2);
        put(&want, datas[i], strlen(datas[i]));
        put(&want, ";", 1);
        assert_string_equal(c.out, want.out);
        sse_parser_free(&p);
        buf_free(&b);
    }
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(sse_encode_event(&b, "a\nb", 3), 0);
    assert_string_equal(b.data, "data: a\ndata: b\n\n");
    /* all or nothing at the buffer's bound */
    struct buf small;
    buf_init(&small, 20);
    assert_int_equal(sse_encode_event(&small, "0123456789", 10), 0); /* 18 bytes */
    assert_int_not_equal(sse_encode_event(&small, "a\nb", 3), 0);
    assert_int_equal(small.len, 18);
    buf_free(&small);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_event),
        cmocka_unit_test(test_multiline_and_fields),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_partial_event_not_dispatched),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_data_in_place_or_kept),
        cmocka_unit_test(test_framed),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_default_limit_and_large_event),
        cmocka_unit_test(test_encode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
