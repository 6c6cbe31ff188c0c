#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/buf.h"
#include "sim/faketext.h"

/* The whole answer text (reasoning chunks left out) into b. */
static void answer_text(const struct faketext *t, struct buf *b)
{
    buf_reset(b);
    for (uint32_t i = t->reasoning; i < t->chunks; i++)
        assert_int_equal(faketext_put(t, b, i, 0), 0);
}

/* For every cut point of the answer: the rest from faketext_resume completes it exactly. */
static void check_every_cut(const struct faketext *t)
{
    struct buf full, rest;
    buf_init(&full, 0);
    buf_init(&rest, 0);
    answer_text(t, &full);
    assert_true(full.len > 0);
    for (size_t cut = 0; cut <= full.len; cut++) {
        uint32_t chunk = UINT32_MAX;
        size_t from = SIZE_MAX;
        assert_true(faketext_resume(t, full.data, cut, &chunk, &from));
        assert_true(chunk >= t->reasoning && chunk <= t->chunks);
        buf_reset(&rest);
        assert_int_equal(buf_append(&rest, full.data, cut), 0);
        for (uint32_t i = chunk; i < t->chunks; i++)
            assert_int_equal(faketext_put(t, &rest, i, i == chunk ? from : 0), 0);
        assert_int_equal(rest.len, full.len);
        assert_memory_equal(rest.data, full.data, full.len);
        if (cut == full.len) assert_int_equal(chunk, t->chunks); /* nothing left to send */
        if (from) assert_true(chunk < t->chunks);
    }
    buf_free(&full);
    buf_free(&rest);
}

static void test_every_cut_point(void **state)
{
    (void)state;
    /* "tok0 ".."tok11 ": cuts at chunk ends, mid-word, mid-number (tok1|0) */
    check_every_cut(&(struct faketext){.chunks = 12});
    /* reasoning chunks are not part of the answer: "tok0 " follows "think2 " */
    check_every_cut(&(struct faketext){.chunks = 5, .reasoning = 3});
    /* big=: one lorem run across chunks of 14 bytes and a longer last one */
    check_every_cut(&(struct faketext){.big = 100, .chunks = 7});
    check_every_cut(&(struct faketext){.big = 97, .chunks = 9, .reasoning = 4});
    /* more chunks than bytes: empty chunks, then the last takes all */
    check_every_cut(&(struct faketext){.big = 3, .chunks = 5});
}

static void test_resume_points(void **state)
{
    (void)state;
    const struct faketext t = {.chunks = 5};
    uint32_t chunk;
    size_t from;
    assert_true(faketext_resume(&t, "tok0 tok1 ", 10, &chunk, &from));
    assert_int_equal(chunk, 2);
    assert_int_equal(from, 0);
    assert_true(faketext_resume(&t, "tok0 tok1 to", 12, &chunk, &from));
    assert_int_equal(chunk, 2);
    assert_int_equal(from, 2);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(faketext_put(&t, &b, 2, from), 0);
    assert_int_equal(faketext_put(&t, &b, 3, 0), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "k2 tok3 ", 8);
    buf_reset(&b);
    assert_int_equal(faketext_put(&t, &b, 2, 99), 0); /* past the chunk: nothing */
    assert_int_equal(b.len, 0);
    buf_free(&b);
    assert_true(faketext_resume(&t, "tok0 tok1 tok2 tok3 tok4 ", 25, &chunk, &from));
    assert_int_equal(chunk, 5);
    assert_int_equal(from, 0);
}

static void test_not_a_prefix(void **state)
{
    (void)state;
    const struct faketext t = {.chunks = 5};
    const struct faketext r = {.chunks = 5, .reasoning = 2};
    const struct faketext big = {.big = 40, .chunks = 4};
    uint32_t chunk = 7;
    size_t from = 7;
    const char *not_prefixes[] = {
        "tok1 ",                      /* another chunk first */
        "tok0 tok2 ",                 /* one skipped */
        "tok0  tok1",                 /* a byte more */
        "Tok0 ",                      /* case */
        "tok0 tok1 tok2 tok3 tok4 t", /* longer than the answer */
        "tok0 tok1 tok2 tok3 tok4 tok5 ",
        "tok0 \xc3\xa9", /* multibyte text the fake never writes */
        "hello",
    };
    for (size_t i = 0; i < sizeof not_prefixes / sizeof not_prefixes[0]; i++)
        assert_false(faketext_resume(&t, not_prefixes[i], strlen(not_prefixes[i]), &chunk, &from));
    /* the reasoning is not the answer */
    assert_false(faketext_resume(&r, "think0 ", 7, &chunk, &from));
    assert_true(faketext_resume(&r, "tok0 t", 6, &chunk, &from));
    assert_int_equal(chunk, 3);
    assert_int_equal(from, 1);
    assert_false(
        faketext_resume(&big, "lorem ipsum dolor sit amet conXectetur", 38, &chunk, &from));
    assert_false(faketext_resume(&big, "lorem ipsum dolor sit amet consectetur adip", 43, &chunk,
                                 &from)); /* 43 > 40 bytes */
    assert_false(faketext_resume(&big, "ipsum", 5, &chunk, &from));
    /* a NUL inside is just a byte that differs */
    assert_false(faketext_resume(&t, "tok0\0", 5, &chunk, &from));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cut_point),
        cmocka_unit_test(test_resume_points),
        cmocka_unit_test(test_not_a_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
