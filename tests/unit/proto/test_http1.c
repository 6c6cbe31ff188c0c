/* Unit tests for http1: request/response heads, framing rules, the body framer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/http1.h"

/* Parses s from an exactly sized heap copy, so ASan sees any read past the end. */
static int parse_req(const char *s, struct http1_request *req)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int rc = http1_parse_request(copy, n, req);
    free(copy); /* req points into copy: callers only look at rc and scalars */
    return rc;
}

static int parse_resp(const char *s, struct http1_response *resp)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int rc = http1_parse_response(copy, n, resp);
    free(copy);
    return rc;
}

static bool str_is(struct http1_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void assert_req_error(const char *s)
{
    struct http1_request req;
    int rc = parse_req(s, &req);
    if (rc != HTTP1_ERROR) fail_msg("expected HTTP1_ERROR, got %d for: %s", rc, s);
}

static void assert_resp_error(const char *s)
{
    struct http1_response resp;
    int rc = parse_resp(s, &resp);
    if (rc != HTTP1_ERROR) fail_msg("expected HTTP1_ERROR, got %d for: %s", rc, s);
}

/* Every proper prefix needs more; the whole head parses to its full length. */
static void assert_req_prefixes_need_more(const char *s)
{
    size_t n = strlen(s);
    struct http1_request req;
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1);
        memcpy(copy, s, i);
        int rc = http1_parse_request(copy, i, &req);
        free(copy);
        if (rc != HTTP1_NEED_MORE) fail_msg("prefix %zu of %zu: got %d", i, n, rc);
    }
    assert_int_equal(parse_req(s, &req), (int)n);
}

static void test_simple_get(void **state)
{
    const char *s = "GET /v1/models?x=1 HTTP/1.1\r\nHost: example.com\r\n"
                    "Accept:  */*  \r\nX-Empty:\r\n\r\n";
    struct http1_request req;
    assert_int_equal(http1_parse_request(s, strlen(s), &req), (int)strlen(s));
    assert_true(str_is(req.method, "GET"));
    assert_true(str_is(req.target, "/v1/models?x=1"));
    assert_int_equal(req.head.minor_version, 1);
    assert_int_equal(req.head.nheaders, 3);
    assert_true(str_is(req.head.headers[0].name, "Host"));
    assert_true(str_is(req.head.headers[0].value, "example.com"));
    /* surrounding whitespace trimmed, inner kept */
    assert_true(str_is(req.head.headers[1].value, "*/*"));
    assert_true(str_is(req.head.headers[2].name, "X-Empty"));
    assert_int_equal(req.head.headers[2].value.len, 0);
    assert_false(req.head.chunked);
    assert_false(req.head.has_content_length);
    assert_false(req.head.conn_close);
    assert_false(req.head.expect_continue);
    assert_int_equal(http1_request_body_mode(&req), HTTP1_BODY_NONE);
}

static void test_post_with_length(void **state)
{
    const char *s =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n"
        "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"model\":\"x\"}...";
    struct http1_request req;
    int n = http1_parse_request(s, strlen(s), &req);
    assert_true(n > 0);
    assert_string_equal(s + n, "{\"model\":\"x\"}...");
    assert_true(req.head.has_content_length);
    assert_int_equal(req.head.content_length, 17);
    assert_int_equal(http1_request_body_mode(&req), HTTP1_BODY_LENGTH);
    const struct http1_str *ct = http1_find_header(&req.head, "content-TYPE");
    assert_non_null(ct);
    assert_true(str_is(*ct, "application/json"));
    assert_null(http1_find_header(&req.head, "Content-Typ"));
}

static void test_bare_lf_and_leading_empty_lines(void **state)
{
    const char *s = "\r\n\nGET / HTTP/1.0\nHost: a\n\n";
    struct http1_request req;
    assert_int_equal(http1_parse_request(s, strlen(s), &req), (int)strlen(s));
    assert_true(str_is(req.method, "GET"));
    assert_int_equal(req.head.minor_version, 0);
    assert_int_equal(req.head.nheaders, 1);
    assert_true(str_is(req.head.headers[0].value, "a"));
}

static void test_request_byte_by_byte(void **state)
{
    assert_req_prefixes_need_more("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:8080\r\n"
                                  "Authorization: Bearer sk-x\r\nTransfer-Encoding: chunked\r\n"
                                  "Expect: 100-continue\r\n\r\n");
    assert_req_prefixes_need_more("GET / HTTP/1.0\nConnection: keep-alive\n\n");
    assert_req_prefixes_need_more("\r\nGET /x HTTP/1.1\r\nA: b \t\r\n\r\n");
}

static void test_pipelined(void **state)
{
    const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                    "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(s);
    char *buf = malloc(len);
    memcpy(buf, s, len);

    struct http1_request req;
    int n = http1_parse_request(buf, len, &req);
    assert_true(n > 0);
    assert_true(str_is(req.target, "/a"));
    assert_int_equal(http1_request_body_mode(&req), HTTP1_BODY_LENGTH);

    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_LENGTH, req.head.content_length);
    size_t blen = len - (size_t)n, consumed;
    assert_int_equal(http1_body_feed(&body, buf + n, &blen, &consumed), 1);
    assert_int_equal(blen, 5);
    assert_int_equal(consumed, 5);
    assert_memory_equal(buf + n, "hello", 5);

    size_t off = (size_t)n + consumed;
    int n2 = http1_parse_request(buf + off, len - off, &req);
    assert_int_equal(n2, (int)(len - off));
    assert_true(str_is(req.method, "GET"));
    assert_true(str_is(req.target, "/b"));
    free(buf);
}

static void test_length_body_split(void **state)
{
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_LENGTH, 6);
    char a[] = "abc";
    size_t len = 3, consumed;
    assert_int_equal(http1_body_feed(&body, a, &len, &consumed), 0);
    assert_int_equal(len, 3);
    assert_int_equal(consumed, 3);
    char b[] = "defGET";
    len = 6;
    assert_int_equal(http1_body_feed(&body, b, &len, &consumed), 1);
    assert_int_equal(len, 3);
    assert_int_equal(consumed, 3);
    /* complete: further feeds consume nothing */
    len = 3;
    assert_int_equal(http1_body_feed(&body, b + 3, &len, &consumed), 1);
    assert_int_equal(len, 0);
    assert_int_equal(consumed, 0);

    http1_body_init(&body, HTTP1_BODY_LENGTH, 0);
    assert_true(body.done);
    len = 3;
    assert_int_equal(http1_body_feed(&body, b, &len, &consumed), 1);
    assert_int_equal(consumed, 0);
    assert_int_equal(http1_body_eof(&body), 1);

    http1_body_init(&body, HTTP1_BODY_LENGTH, 10);
    assert_int_equal(http1_body_eof(&body), HTTP1_ERROR);
}

static const char chunked_wire[] = "5;name=\"v a\"\r\nhello\r\n"
                                   "6\r\n world\r\n"
                                   "A \t;ext\r\nfrom chunk\r\n"
                                   "0000000000000000\r\n" /* 16 digits: allowed */
                                   "X-Trailer: 1\r\nX-Other: two words\r\n"
                                   "\r\n"
                                   "NEXT";
static const char chunked_payload[] = "hello worldfrom chunk";

static void test_chunked_whole(void **state)
{
    size_t wire_len = strlen(chunked_wire);
    char *buf = malloc(wire_len);
    memcpy(buf, chunked_wire, wire_len);
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    size_t len = wire_len, consumed;
    assert_int_equal(http1_body_feed(&body, buf, &len, &consumed), 1);
    assert_int_equal(len, strlen(chunked_payload));
    assert_memory_equal(buf, chunked_payload, len);
    assert_int_equal(consumed, wire_len - 4);
    /* the next message's bytes are untouched */
    assert_memory_equal(buf + consumed, "NEXT", 4);
    assert_true(body.done);
    assert_int_equal(http1_body_eof(&body), 1);
    free(buf);
}

static void test_chunked_byte_by_byte(void **state)
{
    size_t wire_len = strlen(chunked_wire);
    char out[64];
    size_t out_len = 0, i;
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    int rc = 0;
    for (i = 0; i < wire_len; i++) {
        char byte = chunked_wire[i];
        size_t len = 1, consumed;
        rc = http1_body_feed(&body, &byte, &len, &consumed);
        assert_int_equal(consumed, 1);
        if (len) {
            assert_true(out_len < sizeof out);
            out[out_len++] = byte;
        }
        if (rc != 0) break;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(i + 1, wire_len - 4);
    assert_int_equal(out_len, strlen(chunked_payload));
    assert_memory_equal(out, chunked_payload, out_len);
}

static void test_chunked_all_splits(void **state)
{
    /* feeding in two pieces at every split point gives the same payload */
    size_t wire_len = strlen(chunked_wire);
    for (size_t split = 0; split <= wire_len; split++) {
        char *buf = malloc(wire_len);
        memcpy(buf, chunked_wire, wire_len);
        struct http1_body body;
        http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
        char out[64];
        size_t out_len = 0, len = split, consumed;
        int rc = http1_body_feed(&body, buf, &len, &consumed);
        assert_int_equal(consumed, rc == 1 ? wire_len - 4 : split);
        memcpy(out, buf, len);
        out_len = len;
        if (rc == 0) {
            len = wire_len - split;
            rc = http1_body_feed(&body, buf + split, &len, &consumed);
            memcpy(out + out_len, buf + split, len);
            out_len += len;
            consumed += split;
        }
        assert_int_equal(rc, 1);
        assert_int_equal(consumed, wire_len - 4);
        assert_int_equal(out_len, strlen(chunked_payload));
        assert_memory_equal(out, chunked_payload, out_len);
        free(buf);
    }
}

static int chunked_decode(const char *wire, size_t *payload_len)
{
    size_t n = strlen(wire);
    char *buf = malloc(n ? n : 1);
    memcpy(buf, wire, n);
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    size_t len = n, consumed;
    int rc = http1_body_feed(&body, buf, &len, &consumed);
    if (payload_len) *payload_len = len;
    if (rc == HTTP1_ERROR) {
        /* sticky */
        len = n;
        assert_int_equal(http1_body_feed(&body, buf, &len, &consumed), HTTP1_ERROR);
        assert_int_equal(consumed, 0);
    }
    free(buf);
    return rc;
}

/* A size near 2^64 with a few bytes of it here: taken as data, never as a chunk whose end
   lies within these bytes (its size plus its CRLF would wrap around). */
static void test_chunked_huge_size(void **state)
{
    static const char *const wires[] = {"fffffffffffffffe\r\nab", "ffffffffffffffff\r\nab",
                                        "fffffffffffffffe\r\n\r\n"};
    for (size_t k = 0; k < sizeof wires / sizeof wires[0]; k++) {
        size_t n = strlen(wires[k]);
        char *buf = malloc(n);
        memcpy(buf, wires[k], n);
        struct http1_body body;
        http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
        size_t len = n, consumed = 0;
        assert_int_equal(http1_body_feed(&body, buf, &len, &consumed), 0);
        assert_int_equal(consumed, n);
        assert_int_equal(len, n - 18); /* all after the size line is data */
        assert_memory_equal(buf, wires[k] + 18, len);
        free(buf);
    }
}

static void test_chunked_rejections(void **state)
{
    assert_int_equal(chunked_decode("11111111111111111\r\n", NULL), HTTP1_ERROR); /* 17 digits */
    assert_int_equal(chunked_decode("00000000000000000\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("ffffffffffffffff\r\nab", NULL), 0); /* max size: fine */
    assert_int_equal(chunked_decode("\r\n", NULL), HTTP1_ERROR);         /* no size */
    assert_int_equal(chunked_decode("g\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("-1\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("0x5\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode(" 5\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("5 \r\nhello\r\n", NULL), HTTP1_ERROR); /* BWS, no ext */
    assert_int_equal(chunked_decode("5\rhello\r\n", NULL), HTTP1_ERROR);    /* bare CR */
    assert_int_equal(chunked_decode("5;a\rb\r\nhello", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("5;a\001\r\nhello", NULL), HTTP1_ERROR);
    size_t plen;
    assert_int_equal(chunked_decode("3\r\nabcX\r\n", &plen), HTTP1_ERROR); /* no CRLF after data */
    assert_int_equal(plen, 3);
    assert_int_equal(chunked_decode("3\r\nabc\rX", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("0\r\nX-T: a\rb\r\n\r\n", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("0\r\n\rX", NULL), HTTP1_ERROR);
    assert_int_equal(chunked_decode("0\r\nX-T: \001\r\n\r\n", NULL), HTTP1_ERROR);

    /* size line bound: an extension just under it passes, over it fails */
    char *line = malloc(HTTP1_MAX_CHUNK_LINE + 16);
    memset(line, 'x', HTTP1_MAX_CHUNK_LINE + 15);
    line[0] = '1';
    line[1] = ';';
    strcpy(line + HTTP1_MAX_CHUNK_LINE, "\r\nz\r\n0\r\n\r\n");
    assert_int_equal(chunked_decode(line, NULL), 1);
    strcpy(line + HTTP1_MAX_CHUNK_LINE + 1, "\r\nz\r\n0\r\n\r\n");
    assert_int_equal(chunked_decode(line, NULL), HTTP1_ERROR);
    free(line);

    /* trailer section bound */
    size_t tlen = HTTP1_MAX_TRAILER_BYTES + 64;
    char *tr = malloc(tlen + 1);
    strcpy(tr, "0\r\n");
    size_t at = 3;
    while (at + 16 < tlen) {
        memcpy(tr + at, "X-Long: 1234\r\n", 14);
        at += 14;
    }
    strcpy(tr + at, "\r\n");
    assert_int_equal(chunked_decode(tr, NULL), HTTP1_ERROR);
    free(tr);

    /* a truncated chunked body at EOF is an error */
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    char part[] = "5\r\nhel";
    size_t len = 6, consumed;
    assert_int_equal(http1_body_feed(&body, part, &len, &consumed), 0);
    assert_int_equal(len, 3);
    assert_int_equal(http1_body_eof(&body), HTTP1_ERROR);
}

/* The same body with a bare LF ending each kind of line: size, extension, data, trailer, end. */
static const char chunked_wire_lf[] = "5\nhello\r\n"
                                      "6;x\n world\n"
                                      "A\r\nfrom chunk\r\n"
                                      "0\r\n"
                                      "X-Trailer: 1\n"
                                      "\n"
                                      "NEXT";

static int chunked_decode_mode(const char *wire, bool bare_lf_ok, size_t *payload_len, char *payload)
{
    size_t n = strlen(wire);
    char *buf = malloc(n ? n : 1);
    memcpy(buf, wire, n);
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    body.bare_lf_ok = bare_lf_ok;
    size_t len = n, consumed;
    int rc = http1_body_feed(&body, buf, &len, &consumed);
    if (payload_len) *payload_len = len;
    if (payload) memcpy(payload, buf, len);
    free(buf);
    return rc;
}

static void test_chunked_bare_lf(void **state)
{
    /* a request's chunked framing needs CRLF at every line end: each bare LF is refused */
    static const char *const strict_errors[] = {
        "5\nhello\r\n0\r\n\r\n",          /* after the size */
        "5;ext\nhello\r\n0\r\n\r\n",      /* after an extension */
        "5\r\nhello\n0\r\n\r\n",          /* after the data */
        "5\r\nhello\r\n0\n\r\n",          /* after the last size */
        "5\r\nhello\r\n0\r\nX-T: 1\n\r\n", /* after a trailer */
        "5\r\nhello\r\n0\r\n\n",          /* the final empty line */
    };
    for (size_t i = 0; i < sizeof strict_errors / sizeof strict_errors[0]; i++) {
        if (chunked_decode_mode(strict_errors[i], false, NULL, NULL) != HTTP1_ERROR)
            fail_msg("a bare LF was accepted in: %s", strict_errors[i]);
        /* a response decoder may be lenient: the same bytes are a whole body */
        if (chunked_decode_mode(strict_errors[i], true, NULL, NULL) != 1)
            fail_msg("the lenient decoder refused: %s", strict_errors[i]);
    }
    assert_int_equal(chunked_decode_mode(chunked_wire_lf, false, NULL, NULL), HTTP1_ERROR);
    char out[64];
    size_t plen;
    assert_int_equal(chunked_decode_mode(chunked_wire_lf, true, &plen, out), 1);
    assert_int_equal(plen, strlen(chunked_payload));
    assert_memory_equal(out, chunked_payload, plen);
    /* lenient still refuses a bare CR */
    assert_int_equal(chunked_decode_mode("5\rhello\r\n0\r\n\r\n", true, NULL, NULL), HTTP1_ERROR);
    /* init resets the choice: strict is the default */
    struct http1_body body;
    body.bare_lf_ok = true;
    http1_body_init(&body, HTTP1_BODY_CHUNKED, 0);
    assert_false(body.bare_lf_ok);
}

/* Feeds s to the head scanner in pieces of `step` bytes, as a growing stream. */
static int scan_in_steps(const char *s, size_t n, size_t step, size_t *work)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    struct http1_head_scan scan;
    http1_head_scan_init(&scan);
    int rc = HTTP1_NEED_MORE;
    for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
        /* an exactly sized copy each time, so ASan sees a read past what has arrived */
        char *part = malloc(have ? have : 1);
        memcpy(part, copy, have);
        rc = http1_head_scan_request(&scan, part, have);
        free(part);
        if (rc != HTTP1_NEED_MORE || have == n) break;
    }
    if (work) *work = scan.work;
    free(copy);
    return rc;
}

/* The scanner agrees with the parser, whole and byte by byte. */
static void assert_scan_agrees(const char *s)
{
    size_t n = strlen(s);
    struct http1_request req;
    int parsed = parse_req(s, &req);
    for (size_t step = 1; step <= n; step = step < 4 ? step + 1 : step * 2) {
        int scanned = scan_in_steps(s, n, step, NULL);
        if (parsed > 0 && scanned != parsed)
            fail_msg("scan %d, parse %d (step %zu) for: %s", scanned, parsed, step, s);
        if (scanned > 0) {
            int again = http1_parse_request(s, (size_t)scanned, &req);
            if (again != scanned && again != HTTP1_ERROR)
                fail_msg("scan found a head of %d bytes the parser reads as %d: %s", scanned, again, s);
        }
        if (scanned == HTTP1_ERROR && parsed != HTTP1_ERROR)
            fail_msg("scan refused what the parser gives %d: %s", parsed, s);
        if (parsed == HTTP1_NEED_MORE && scanned != HTTP1_NEED_MORE)
            fail_msg("scan gives %d for an incomplete head: %s", scanned, s);
    }
}

static void test_head_scan(void **state)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
        "\r\n\nGET /x HTTP/1.0\nA: b \t\n\n",
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost: a\r\n",                  /* incomplete */
        "GET / HTTP/1.1\r\nHost: a\r\n\r",               /* incomplete */
        "GET /a",                                             /* incomplete */
        "GET / HTTP/1.1\r\nX: \x80\xff\r\n\r\n",       /* obs-text in a value */
        "GE(T / HTTP/1.1\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "GET\t/ HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",
        "GET / HTTP/1.1\r\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\001b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n",
        "GET / HTTP/1.1\r\nX A: a\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: a\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  /* a TLS hello */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", /* framing */
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        assert_scan_agrees(heads[i]);

    /* what is not HTTP is refused at its first bad byte, not after a line */
    assert_int_equal(scan_in_steps("\x16\x03", 2, 1, NULL), HTTP1_ERROR);
    assert_int_equal(scan_in_steps("{\"model\"", 8, 1, NULL), HTTP1_ERROR);

    /* more than HTTP1_MAX_HEADERS headers */
    char buf[4096];
    size_t at = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP1_MAX_HEADERS; i++)
        at += (size_t)sprintf(buf + at, "H%d: v\r\n", i);
    strcpy(buf + at, "\r\n");
    assert_scan_agrees(buf);
    assert_int_equal(scan_in_steps(buf, strlen(buf), 7, NULL), HTTP1_ERROR);
}

/*
 * A head that ends in one read is left to the parser, which checks every line;
 * the same bad line in a head that has not ended is refused by the scan.
 */
static void test_head_scan_leaves_ended_heads_to_parser(void **state)
{
    static const char bad[] = "GET / HTTP/1.1\r\nX-A: a\001b\r\n\r\n";
    size_t n = sizeof bad - 1;
    struct http1_head_scan scan;
    http1_head_scan_init(&scan);
    assert_int_equal(http1_head_scan_request(&scan, bad, n), (int)n);
    struct http1_request req;
    assert_int_equal(http1_parse_request(bad, n, &req), HTTP1_ERROR);

    http1_head_scan_init(&scan);
    assert_int_equal(http1_head_scan_request(&scan, bad, n - 2), HTTP1_ERROR);
    /* a line checked in one call is not checked again in the next */
    static const char good[] = "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    http1_head_scan_init(&scan);
    assert_int_equal(http1_head_scan_request(&scan, good, 18), HTTP1_NEED_MORE);
    size_t work = scan.work;
    assert_int_equal(http1_head_scan_request(&scan, good, 27), HTTP1_NEED_MORE);
    assert_int_equal(scan.work,
                     work + (27 - 18) + 9); /* 9 bytes examined, one 9-byte line checked */
    assert_int_equal(http1_head_scan_request(&scan, good, sizeof good - 1), (int)sizeof good - 1);
}

/* Every byte as part of a header's name and of its value: the byte tables are RFC 9110's. */
static void test_header_bytes(void **state)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     (c && strchr(tchars, c));
        bool vchar = c == '\t' || (c >= 0x20 && c != 0x7f);
        char head[64];
        struct http1_request req;
        int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nX%cY: v\r\n\r\n", c ? c : '@');
        if (c == 0) head[17] = '\0';
        int rc = http1_parse_request(head, (size_t)n, &req);
        if ((rc > 0) != (tchar || c == ':')) /* "X:Y: v" is X with the value "Y: v" */
            fail_msg("byte 0x%02x in a name: %d", c, rc);
        n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nX: a%cb\r\n\r\n", c ? c : '@');
        if (c == 0) head[20] = '\0';
        rc = http1_parse_request(head, (size_t)n, &req);
        if ((rc > 0) != vchar) fail_msg("byte 0x%02x in a value: %d", c, rc);
    }
}

/*
 * A 60 KB head arriving one byte per read costs work linear in its size: each
 * byte is examined once and each line checked once (re-parsing from the start
 * on every read would be about 1.8e9 byte visits).
 */
static void test_head_scan_linear(void **state)
{
    size_t cap = 64 * 1024;
    char *head = malloc(cap);
    size_t at = (size_t)sprintf(head, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
    /* 50 headers of 1,200 bytes: under HTTP1_MAX_HEADERS */
    for (int i = 0; i < 50; i++) {
        at += (size_t)sprintf(head + at, "X-Pad-%02d: ", i);
        memset(head + at, 'a' + i % 26, 1200);
        at += 1200;
        at += (size_t)sprintf(head + at, "\r\n");
    }
    strcpy(head + at, "\r\n");
    size_t n = at + 2;

    struct http1_head_scan scan;
    http1_head_scan_init(&scan);
    int rc = HTTP1_NEED_MORE;
    for (size_t have = 1; have <= n && rc == HTTP1_NEED_MORE; have++)
        rc = http1_head_scan_request(&scan, head, have);
    assert_int_equal(rc, (int)n);
    if (scan.work > 2 * n) fail_msg("%zu units of work for a %zu-byte head", scan.work, n);
    struct http1_request *req = malloc(sizeof *req);
    assert_int_equal(http1_parse_request(head, n, req), (int)n);
    free(req);
    free(head);
}

static void test_chunked_request_head(void **state)
{
    struct http1_request req;
    assert_true(parse_req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &req) > 0);
    assert_true(req.head.chunked);
    assert_int_equal(http1_request_body_mode(&req), HTTP1_BODY_CHUNKED);
    assert_true(parse_req("POST / HTTP/1.1\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n", &req) > 0);
    assert_true(req.head.chunked);
}

static void test_framing_rejections(void **state)
{
    /* both framings */
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n");
    /* conflicting, non-numeric, overflowing lengths */
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n");
    /* transfer-codings other than one chunked */
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    assert_req_error(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n");
    assert_req_error("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n");
    /* HTTP/1.0 has no chunked */
    assert_req_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* two Hosts */
    assert_req_error("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");

    struct http1_request req;
    /* identical repeated lengths are one length; the biggest uint64 fits */
    assert_true(
        parse_req("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length:5\r\n\r\n", &req) > 0);
    assert_int_equal(req.head.content_length, 5);
    assert_true(parse_req("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n", &req) >
                0);
    assert_true(req.head.content_length == UINT64_MAX);
    assert_true(parse_req("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", &req) > 0);
    assert_int_equal(req.head.content_length, 7);
}

static void test_syntax_rejections(void **state)
{
    /* whitespace before the colon */
    assert_req_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n");
    /* obs-fold, and whitespace before the first header */
    assert_req_error("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\n Host: a\r\n\r\n");
    /* control characters in a value */
    assert_req_error("GET / HTTP/1.1\r\nX-A: a\001b\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX-A: a\177b\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX-A: a\r\r\n\r\n");
    {
        static const char nul[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
        struct http1_request req;
        assert_int_equal(http1_parse_request(nul, sizeof nul - 1, &req), HTTP1_ERROR);
    }
    /* header names */
    assert_req_error("GET / HTTP/1.1\r\n: a\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX A: a\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nX(A): a\r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n");
    /* method not a token */
    assert_req_error("GE(T / HTTP/1.1\r\n\r\n");
    assert_req_error("G\001T / HTTP/1.1\r\n\r\n");
    assert_req_error("GET\t/ HTTP/1.1\r\n\r\n");
    assert_req_error(" GET / HTTP/1.1\r\n\r\n");
    assert_req_error("\x80GET / HTTP/1.1\r\n\r\n");
    /* target and version */
    assert_req_error("GET  / HTTP/1.1\r\n\r\n");
    assert_req_error("GET /a\001b HTTP/1.1\r\n\r\n");
    assert_req_error("GET /\x80 HTTP/1.1\r\n\r\n");
    assert_req_error("GET /\r\n\r\n");
    assert_req_error("GET / HTTP/2.0\r\n\r\n");
    assert_req_error("GET / HTTP/1.2\r\n\r\n");
    assert_req_error("GET / http/1.1\r\n\r\n");
    assert_req_error("GET / HTTP/1.1 \r\n\r\n");
    assert_req_error("GET / HTTP/1.1\r\r\n\r\n");
    assert_req_error("\rGET / HTTP/1.1\r\n\r\n");
    /* errors show up as soon as the bad byte arrives, before the head is complete */
    struct http1_request req;
    assert_int_equal(http1_parse_request("GET / HTTP/1.1\r\nA : b", 21, &req), HTTP1_ERROR);
    assert_int_equal(http1_parse_request("GE(", 3, &req), HTTP1_ERROR);
}

static void test_header_count_bound(void **state)
{
    char buf[2048];
    size_t at = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP1_MAX_HEADERS; i++)
        at += (size_t)sprintf(buf + at, "X-%d: v\r\n", i);
    strcpy(buf + at, "\r\n");
    struct http1_request req;
    assert_int_equal(parse_req(buf, &req), (int)strlen(buf));
    assert_int_equal(req.head.nheaders, HTTP1_MAX_HEADERS);
    sprintf(buf + at, "X-Last: v\r\n\r\n");
    assert_int_equal(parse_req(buf, &req), HTTP1_ERROR);
}

static void test_connection_semantics(void **state)
{
    struct http1_request req;
    assert_true(parse_req("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_true(req.head.conn_close);
    assert_true(parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req) > 0);
    assert_false(req.head.conn_close);
    assert_true(parse_req("GET / HTTP/1.1\r\n\r\n", &req) > 0);
    assert_false(req.head.conn_close);
    assert_true(parse_req("GET / HTTP/1.1\r\nConnection: upgrade, CLOSE\r\n\r\n", &req) > 0);
    assert_true(req.head.conn_close);
    assert_true(parse_req("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", &req) > 0);
    assert_false(req.head.conn_close);
    /* close wins over keep-alive */
    assert_true(parse_req("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                          &req) > 0);
    assert_true(req.head.conn_close);
}

static void test_expect_continue(void **state)
{
    struct http1_request req;
    assert_true(parse_req("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
                          &req) > 0);
    assert_true(req.head.expect_continue);
    assert_true(parse_req("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                          &req) > 0);
    assert_false(req.head.expect_continue);
    assert_true(parse_req("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &req) > 0);
    assert_false(req.head.expect_continue);
}

static void test_value_has_token(void **state)
{
    struct http1_str v = {"keep-alive , Upgrade,close", 26};
    assert_true(http1_value_has_token(v, "close"));
    assert_true(http1_value_has_token(v, "upgrade"));
    assert_true(http1_value_has_token(v, "Keep-Alive"));
    assert_false(http1_value_has_token(v, "keep"));
    assert_false(http1_value_has_token(v, "alive"));
    struct http1_str params = {"chunked;x=1", 11};
    assert_false(http1_value_has_token(params, "chunked"));
    struct http1_str empty = {"", 0};
    assert_false(http1_value_has_token(empty, "close"));
    struct http1_str commas = {",,", 2};
    assert_false(http1_value_has_token(commas, ""));
}

static void test_response_basic(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Content-Length: 2\r\n\r\nhi";
    struct http1_response resp;
    int n = parse_resp(s, &resp);
    assert_int_equal(n, (int)strlen(s) - 2);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.head.minor_version, 1);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_LENGTH);
    assert_int_equal(resp.head.content_length, 2);

    const char *t = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n";
    assert_int_equal(http1_parse_response(t, strlen(t), &resp), (int)strlen(t));
    assert_int_equal(resp.status, 429);
    assert_true(str_is(resp.reason, "Too Many Requests"));
    assert_true(str_is(*http1_find_header(&resp.head, "retry-after"), "3"));
    /* no length, not chunked: read until the upstream closes */
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_UNTIL_CLOSE);

    /* empty reason, with and without the SP */
    assert_true(parse_resp("HTTP/1.1 503 \r\n\r\n", &resp) > 0);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.reason.len, 0);
    assert_true(parse_resp("HTTP/1.1 503\r\n\r\n", &resp) > 0);
    assert_int_equal(resp.reason.len, 0);
    assert_true(parse_resp("HTTP/1.0 200 OK\n\n", &resp) > 0);
    assert_true(resp.head.conn_close);
}

static void test_response_byte_by_byte(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: abc\r\n\r\n";
    size_t n = strlen(s);
    struct http1_response resp;
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1);
        memcpy(copy, s, i);
        int rc = http1_parse_response(copy, i, &resp);
        free(copy);
        if (rc != HTTP1_NEED_MORE) fail_msg("prefix %zu: got %d", i, rc);
    }
    assert_int_equal(parse_resp(s, &resp), (int)n);
    assert_true(resp.head.chunked);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_CHUNKED);
}

static void test_response_no_body_statuses(void **state)
{
    /* 1xx heads come first and are skipped; the final head follows */
    const char *s =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    struct http1_response resp;
    int n = http1_parse_response(s, strlen(s), &resp);
    assert_int_equal(n, 25);
    assert_int_equal(resp.status, 100);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_NONE);
    int n2 = http1_parse_response(s + n, strlen(s) - (size_t)n, &resp);
    assert_int_equal(n2, (int)strlen(s) - n);
    assert_int_equal(resp.status, 204);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_NONE);

    /* 304 and HEAD answers carry a Content-Length that frames nothing */
    assert_true(parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", &resp) > 0);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_NONE);
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &resp) > 0);
    assert_int_equal(http1_response_body_mode(&resp, true), HTTP1_BODY_NONE);
    assert_int_equal(http1_response_body_mode(&resp, false), HTTP1_BODY_LENGTH);

    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_NONE, 0);
    char x[] = "HTTP/1.1";
    size_t len = 8, consumed;
    assert_int_equal(http1_body_feed(&body, x, &len, &consumed), 1);
    assert_int_equal(len, 0);
    assert_int_equal(consumed, 0);
}

static void test_response_until_close(void **state)
{
    struct http1_body body;
    http1_body_init(&body, HTTP1_BODY_UNTIL_CLOSE, 0);
    char data[] = "anything at all";
    size_t len = 15, consumed;
    assert_int_equal(http1_body_feed(&body, data, &len, &consumed), 0);
    assert_int_equal(len, 15);
    assert_int_equal(consumed, 15);
    assert_int_equal(http1_body_eof(&body), 1);
    assert_true(body.done);
}

static void test_response_rejections(void **state)
{
    assert_resp_error("HTTP/1.1 20 OK\r\n\r\n");
    assert_resp_error("HTTP/1.1 2000 OK\r\n\r\n");
    assert_resp_error("HTTP/1.1 abc OK\r\n\r\n");
    assert_resp_error("HTTP/1.1 099 Low\r\n\r\n");
    assert_resp_error("HTTP/1.1  200 OK\r\n\r\n");
    assert_resp_error("HTTP/2 200 OK\r\n\r\n");
    assert_resp_error("ICY 200 OK\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 O\001K\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n");
    assert_resp_error("HTTP/1.1 200 OK\r\nX : a\r\n\r\n");

    /* an HTTP/1.0 chunked response is read, but the connection is not reused */
    struct http1_response resp;
    assert_true(parse_resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
                           "Connection: keep-alive\r\n\r\n",
                           &resp) > 0);
    assert_true(resp.head.chunked);
    assert_true(resp.head.conn_close);
    assert_false(resp.head.expect_continue);
}

static void test_reason(void **state)
{
    assert_string_equal(http1_reason(200), "OK");
    assert_string_equal(http1_reason(429), "Too Many Requests");
    assert_string_equal(http1_reason(503), "Service Unavailable");
    assert_string_equal(http1_reason(413), "Content Too Large");
    assert_string_equal(http1_reason(599), "Unknown");
    assert_string_equal(http1_reason(-1), "Unknown");
}

/* Retry-After: seconds or an IMF-fixdate, never more than a day; a huge value must not
   wrap into a short wait once it is turned into milliseconds. */
static void test_retry_after(void **state)
{
#define RA(s, now) http1_retry_after_s(s, strlen(s), now)
    assert_int_equal(RA("0", 0), 0);
    assert_int_equal(RA("120", 0), 120);
    assert_int_equal(RA(" 30 ", 0), 30);
    assert_int_equal(RA("86400", 0), 86400);
    assert_int_equal(RA("86401", 0), HTTP1_RETRY_AFTER_MAX_S);
    /* 4294968 s is 4294968000 ms: 704 ms once wrapped to 32 bits */
    assert_int_equal(RA("4294968", 0), HTTP1_RETRY_AFTER_MAX_S);
    assert_int_equal(RA("999999999999999999999999999999", 0), HTTP1_RETRY_AFTER_MAX_S);
    assert_true((uint32_t)RA("4294968", 0) * 1000u >= 86400000u);
    assert_int_equal(RA("", 0), -1);
    assert_int_equal(RA("-5", 0), -1);
    assert_int_equal(RA("12s", 0), -1);
    assert_int_equal(RA("1.5", 0), -1);
    /* 1994-11-06 08:49:37 UTC is 784111777 */
    assert_int_equal(RA("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 90), 90);
    assert_int_equal(RA("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 5), 0); /* in the past */
    assert_int_equal(RA("Sun, 06 Nov 1994 08:49:37 GMT", 0), HTTP1_RETRY_AFTER_MAX_S);
    assert_int_equal(RA("Sun, 06 Nov 1994 08:49:37 UTC", 784111777), -1);
    assert_int_equal(RA("Sun, 06 Foo 1994 08:49:37 GMT", 784111777), -1);
    assert_int_equal(RA("Sunday, 06-Nov-94 08:49:37 GMT", 784111777), -1); /* RFC 850: not taken */
#undef RA
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_with_length),
        cmocka_unit_test(test_bare_lf_and_leading_empty_lines),
        cmocka_unit_test(test_request_byte_by_byte),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_length_body_split),
        cmocka_unit_test(test_chunked_whole),
        cmocka_unit_test(test_chunked_byte_by_byte),
        cmocka_unit_test(test_chunked_all_splits),
        cmocka_unit_test(test_chunked_huge_size),
        cmocka_unit_test(test_chunked_rejections),
        cmocka_unit_test(test_chunked_bare_lf),
        cmocka_unit_test(test_head_scan),
        cmocka_unit_test(test_head_scan_linear),
        cmocka_unit_test(test_head_scan_leaves_ended_heads_to_parser),
        cmocka_unit_test(test_header_bytes),
        cmocka_unit_test(test_chunked_request_head),
        cmocka_unit_test(test_framing_rejections),
        cmocka_unit_test(test_syntax_rejections),
        cmocka_unit_test(test_header_count_bound),
        cmocka_unit_test(test_connection_semantics),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_value_has_token),
        cmocka_unit_test(test_response_basic),
        cmocka_unit_test(test_response_byte_by_byte),
        cmocka_unit_test(test_response_no_body_statuses),
        cmocka_unit_test(test_response_until_close),
        cmocka_unit_test(test_response_rejections),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
