#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/eventstream.h"

struct seen {
    int n;
    int stop_after; /* 0: never stop */
    char last_payload[256];
    struct evs_header h[EVS_MAX_HEADERS];
    char names[EVS_MAX_HEADERS][64];
    char values[EVS_MAX_HEADERS][64];
    size_t nh;
};

static int on_msg(void *ud, const struct evs_message *m)
{
    struct seen *s = ud;
    s->n++;
    memcpy(s->last_payload, m->payload, m->payload_len < 255 ? m->payload_len : 255);
    s->last_payload[m->payload_len < 255 ? m->payload_len : 255] = '\0';
    s->nh = m->nheaders;
    for (size_t i = 0; i < m->nheaders; i++) {
        s->h[i] = m->headers[i];
        memcpy(s->names[i], m->headers[i].name, m->headers[i].name_len);
        s->names[i][m->headers[i].name_len] = '\0';
        if (m->headers[i].bytes) {
            memcpy(s->values[i], m->headers[i].bytes, m->headers[i].bytes_len);
            s->h[i].bytes = s->values[i];
        }
    }
    return s->stop_after && s->n % s->stop_after == 0 ? 7 : 0;
}

static const char uuid[16] = "0123456789abcdef";

/* One message with every one of the ten header types. */
static void encode_all_types(struct buf *out, const char *payload)
{
    struct evs_header h[] = {
        {.name = "t", .name_len = 1, .type = EVS_BOOL_TRUE},
        {.name = "f", .name_len = 1, .type = EVS_BOOL_FALSE},
        {.name = "byte", .name_len = 4, .type = EVS_BYTE, .num = -5},
        {.name = "short", .name_len = 5, .type = EVS_SHORT, .num = -300},
        {.name = "int", .name_len = 3, .type = EVS_INT, .num = -70000},
        {.name = "long", .name_len = 4, .type = EVS_LONG, .num = -5000000000ll},
        {.name = "bytes",
         .name_len = 5,
         .type = EVS_BYTES,
         .bytes = "\x00\x01\x02",
         .bytes_len = 3},
        {.name = ":event-type",
         .name_len = 11,
         .type = EVS_STRING,
         .bytes = "chunk",
         .bytes_len = 5},
        {.name = "ts", .name_len = 2, .type = EVS_TIMESTAMP, .num = 1440938160000ll},
        {.name = "uuid", .name_len = 4, .type = EVS_UUID, .bytes = uuid, .bytes_len = 16},
    };
    assert_int_equal(evs_encode(out, h, 10, payload, strlen(payload)), 0);
}

static void test_crc32(void **state)
{
    assert_int_equal(evs_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(evs_crc32(evs_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* A message with no headers and no payload is 16 bytes; its bytes are known (AWS's
   "empty message" example: total 16, headers 0, prelude CRC 0x05c248eb, message CRC 0x7d98c8ff). */
static void test_known_empty_message(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(evs_encode(&b, NULL, 0, NULL, 0), 0);
    static const unsigned char want[] = {0,    0,    0,    0x10, 0,    0,    0,    0,
                                         0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff};
    assert_int_equal(b.len, 16);
    assert_memory_equal(b.data, want, 16);
    buf_free(&b);
}

static void test_all_header_types_any_split(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    encode_all_types(&b, "{\"bytes\":\"aGk=\"}");
    size_t first_len = b.len;
    encode_all_types(&b, "second");
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct seen s = {0};
        struct evs_parser p;
        evs_parser_init(&p, 0);
        assert_int_equal(evs_parser_feed(&p, b.data, cut, on_msg, &s, NULL), 0);
        assert_int_equal(evs_parser_feed(&p, b.data + cut, b.len - cut, on_msg, &s, NULL), 0);
        assert_int_equal(s.n, 2);
        assert_false(evs_parser_partial(&p));
        assert_string_equal(s.last_payload, "second");
        assert_int_equal(s.nh, 10);
        assert_int_equal(s.h[0].num, 1);
        assert_int_equal(s.h[1].num, 0);
        assert_int_equal(s.h[2].num, -5);
        assert_int_equal(s.h[3].num, -300);
        assert_int_equal(s.h[4].num, -70000);
        assert_true(s.h[5].num == -5000000000ll);
        assert_int_equal(s.h[6].bytes_len, 3);
        assert_memory_equal(s.h[6].bytes, "\x00\x01\x02", 3);
        assert_string_equal(s.names[7], ":event-type");
        assert_memory_equal(s.h[7].bytes, "chunk", 5);
        assert_true(s.h[8].num == 1440938160000ll);
        assert_memory_equal(s.h[9].bytes, uuid, 16);
        evs_parser_free(&p);
    }
    /* byte by byte */
    struct seen s = {0};
    struct evs_parser p;
    evs_parser_init(&p, 0);
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(evs_parser_feed(&p, b.data + i, 1, on_msg, &s, NULL), 0);
        assert_int_equal(evs_parser_partial(&p), i + 1 != first_len && i + 1 != b.len);
    }
    assert_int_equal(s.n, 2);
    evs_parser_free(&p);
    buf_free(&b);
}

static void test_stop_and_resume(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 3; i++)
        encode_all_types(&b, "x");
    struct seen s = {.stop_after = 1};
    struct evs_parser p;
    evs_parser_init(&p, 0);
    size_t off = 0, consumed = 0;
    int stops = 0;
    while (off < b.len) {
        int rc = evs_parser_feed(&p, b.data + off, b.len - off, on_msg, &s, &consumed);
        assert_true(rc == 7 || rc == 0);
        stops += rc == 7;
        off += consumed;
    }
    assert_int_equal(s.n, 3);
    assert_int_equal(stops, 3);
    evs_parser_free(&p);
    buf_free(&b);
}

static int feed_all(const char *data, size_t len, size_t max, int *n)
{
    struct seen s = {0};
    struct evs_parser p;
    evs_parser_init(&p, max);
    int rc = evs_parser_feed(&p, data, len, on_msg, &s, NULL);
    /* refused for good: more bytes change nothing */
    if (rc < 0) assert_int_equal(evs_parser_feed(&p, data, len, on_msg, &s, NULL), rc);
    evs_parser_free(&p);
    *n = s.n;
    return rc;
}

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static void test_refusals(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    encode_all_types(&b, "payload");
    int n;
    /* a flipped payload byte: the message CRC */
    char *m = malloc(b.len);
    memcpy(m, b.data, b.len);
    m[b.len - 6] ^= 1;
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_MESSAGE_CRC);
    assert_int_equal(n, 0);
    /* a flipped length: the prelude CRC */
    memcpy(m, b.data, b.len);
    m[3] ^= 1;
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_PRELUDE_CRC);
    /* lengths that cannot be, with a right prelude CRC */
    memcpy(m, b.data, b.len);
    put32(m, 15);
    put32(m + 8, evs_crc32(0, m, 8));
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_LENGTH);
    memcpy(m, b.data, b.len);
    put32(m + 4, (uint32_t)b.len - 15); /* headers past the payload */
    put32(m + 8, evs_crc32(0, m, 8));
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_LENGTH);
    /* past the bound: refused at the prelude, before anything is buffered */
    assert_int_equal(feed_all(b.data, 12, b.len - 1, &n), EVS_ERR_LENGTH);
    assert_int_equal(feed_all(b.data, b.len, b.len, &n), 0);
    assert_int_equal(n, 1);
    /* a header type past the ten */
    memcpy(m, b.data, b.len);
    m[12 + 1 + 1] = 10; /* header "t": its type byte */
    put32(m + b.len - 4, evs_crc32(0, m, b.len - 4));
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_HEADER);
    /* a header name running past the headers */
    memcpy(m, b.data, b.len);
    m[12] = (char)200;
    put32(m + b.len - 4, evs_crc32(0, m, b.len - 4));
    assert_int_equal(feed_all(m, b.len, 0, &n), EVS_ERR_HEADER);
    free(m);
    buf_free(&b);
}

static void test_too_many_headers(void **state)
{
    struct evs_header h[EVS_MAX_HEADERS + 1];
    for (int i = 0; i <= EVS_MAX_HEADERS; i++)
        h[i] = (struct evs_header){.name = "h", .name_len = 1, .type = EVS_BOOL_TRUE};
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(evs_encode(&b, h, EVS_MAX_HEADERS, "", 0), 0);
    int n;
    assert_int_equal(feed_all(b.data, b.len, 0, &n), 0);
    buf_reset(&b);
    assert_int_equal(evs_encode(&b, h, EVS_MAX_HEADERS + 1, "", 0), 0);
    assert_int_equal(feed_all(b.data, b.len, 0, &n), EVS_ERR_HEADER);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_known_empty_message),
        cmocka_unit_test(test_all_header_types_any_split),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_too_many_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
