/*
 * Fuzz target for http1: the input is raw bytes off the wire. It is parsed as
 * a chain of pipelined requests (each head followed by its body), as a chain
 * of responses, and as a bare chunked body. Besides memory errors it checks
 * the properties callers rely on:
 *   - a head's result is the same however much of the stream has arrived:
 *     every prefix of a valid head needs more, never fails;
 *   - the resumable head scan finds the same end as the parser, whatever the
 *     pieces, and refuses nothing the parser accepts;
 *   - parsed pointers stay inside the head; framing facts are consistent;
 *   - the body framer gives the same payload, result and consumed count
 *     whether the bytes come at once or split at points derived from the
 *     input, and never touches bytes it did not consume.
 * A broken property aborts, which the fuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http1.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

/* Pipelined messages followed per input; enough to cover "next message" paths. */
#define FUZZ_MAX_MESSAGES 8
/* Random prefixes re-parsed per head, on top of the one just short of the end. */
#define FUZZ_PREFIXES 6

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    /* splitmix64: deterministic per input, so a crash reproduces */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rng_below(struct rng *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

static bool within(const char *p, size_t len, const char *base, size_t head_len)
{
    if (len == 0) return true;
    return p >= base && p + len <= base + head_len;
}

static void check_head(const struct http1_head *h, const char *base, int n)
{
    CHECK(h->minor_version == 0 || h->minor_version == 1);
    CHECK(h->nheaders <= HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < h->nheaders; i++) {
        CHECK(h->headers[i].name.len > 0);
        CHECK(within(h->headers[i].name.p, h->headers[i].name.len, base, (size_t)n));
        CHECK(within(h->headers[i].value.p, h->headers[i].value.len, base, (size_t)n));
    }
    CHECK(!(h->chunked && h->has_content_length));
}

typedef int (*parse_fn)(const char *buf, size_t len, void *out);

static int parse_req_any(const char *buf, size_t len, void *out)
{
    return http1_parse_request(buf, len, out);
}

static int parse_resp_any(const char *buf, size_t len, void *out)
{
    return http1_parse_response(buf, len, out);
}

/* The head at buf[0..len) reparsed from exactly sized prefixes must agree with full_rc. */
static void check_prefixes(parse_fn parse, const char *buf, size_t len, int full_rc, void *scratch,
                           struct rng *r)
{
    for (int i = 0; i <= FUZZ_PREFIXES; i++) {
        size_t plen;
        if (i == 0)
            plen = full_rc > 0 ? (size_t)full_rc - 1 : (len ? len - 1 : 0);
        else
            plen = rng_below(r, len + 1);
        char *copy = malloc(plen ? plen : 1);
        memcpy(copy, buf, plen);
        int rc = parse(copy, plen, scratch);
        free(copy);
        if (full_rc > 0)
            CHECK(plen < (size_t)full_rc ? rc == HTTP1_NEED_MORE : rc == full_rc);
        else if (full_rc == HTTP1_NEED_MORE)
            CHECK(rc == HTTP1_NEED_MORE);
        else
            CHECK(rc == HTTP1_NEED_MORE || rc == HTTP1_ERROR);
    }
}

struct body_result {
    int rc;
    size_t consumed;
    size_t payload_len;
};

/*
 * Frames a body from in[0..len) twice, at once and in pieces, and checks both
 * agree. Returns the one-shot result; the payload is left in out.
 */
static struct body_result frame_body(enum http1_body_mode mode, uint64_t content_length,
                                     const char *in, size_t len, struct rng *r)
{
    struct body_result whole, split = {0, 0, 0};
    struct http1_body b;
    char *one = malloc(len ? len : 1);
    char *pieces = malloc(len ? len : 1);
    char *payload = malloc(len ? len : 1);
    memcpy(one, in, len);
    memcpy(pieces, in, len);

    /* a bare LF ending a framing line taken or not, the same for both framers */
    bool bare_lf_ok = rng_next(r) & 1;
    http1_body_init(&b, mode, content_length);
    b.bare_lf_ok = bare_lf_ok;
    size_t plen = len, consumed = 0;
    whole.rc = http1_body_feed(&b, one, &plen, &consumed);
    whole.consumed = consumed;
    whole.payload_len = plen;
    CHECK(whole.rc == 0 || whole.rc == 1 || whole.rc == HTTP1_ERROR);
    CHECK(plen <= consumed && consumed <= len);
    if (whole.rc == 0) CHECK(consumed == len);
    /* bytes past what was consumed belong to the next message: untouched */
    CHECK(memcmp(one + consumed, in + consumed, len - consumed) == 0);
    if (mode == HTTP1_BODY_LENGTH || mode == HTTP1_BODY_UNTIL_CLOSE)
        CHECK(memcmp(one, in, plen) == 0);
    /* a finished or failed framer stays so and eats nothing more */
    if (whole.rc != 0) {
        size_t again = len - consumed, c2 = 99;
        char *rest = malloc(again ? again : 1);
        memcpy(rest, in + consumed, again);
        CHECK(http1_body_feed(&b, rest, &again, &c2) == whole.rc);
        CHECK(c2 == 0 && again == 0);
        free(rest);
    }

    /* one byte at a time now and then, else random piece sizes */
    bool bytewise = (rng_next(r) & 7) == 0;
    http1_body_init(&b, mode, content_length);
    b.bare_lf_ok = bare_lf_ok;
    size_t off = 0;
    do {
        size_t piece = bytewise ? (len - off ? 1 : 0) : 1 + rng_below(r, len - off);
        if (piece > len - off) piece = len - off;
        plen = piece;
        split.rc = http1_body_feed(&b, pieces + off, &plen, &consumed);
        CHECK(plen <= consumed && consumed <= piece);
        memcpy(payload + split.payload_len, pieces + off, plen);
        split.payload_len += plen;
        split.consumed += consumed;
        if (split.rc != 0) break;
        CHECK(consumed == piece);
        off += piece;
    } while (off < len);

    CHECK(split.rc == whole.rc);
    CHECK(split.consumed == whole.consumed);
    CHECK(split.payload_len == whole.payload_len);
    CHECK(memcmp(payload, one, whole.payload_len) == 0);

    if (whole.rc == 0) {
        int eof = http1_body_eof(&b);
        CHECK(mode == HTTP1_BODY_UNTIL_CLOSE ? eof == 1 : eof == HTTP1_ERROR);
    }
    free(one);
    free(pieces);
    free(payload);
    return whole;
}

/*
 * The resumable head scan, fed the stream in random pieces, agrees with the
 * parser: the same head length when the parser finds one, never an error
 * where the parser has none, and what the scan calls a head the parser
 * reads to the same length (or refuses for its framing).
 */
static void check_scan(const char *buf, size_t len, int parsed, void *scratch, struct rng *r)
{
    struct http1_head_scan scan;
    http1_head_scan_init(&scan);
    int rc = HTTP1_NEED_MORE;
    size_t have = 0;
    while (rc == HTTP1_NEED_MORE && have < len) {
        have += 1 + rng_below(r, (rng_next(r) & 3) ? 8 : len - have);
        if (have > len) have = len;
        char *part = malloc(have);
        memcpy(part, buf, have);
        rc = http1_head_scan_request(&scan, part, have);
        free(part);
    }
    CHECK(rc == HTTP1_NEED_MORE || rc == HTTP1_ERROR || (rc > 0 && (size_t)rc <= len));
    if (parsed > 0) CHECK(rc == parsed);
    if (parsed == HTTP1_NEED_MORE) CHECK(rc == HTTP1_NEED_MORE);
    if (rc == HTTP1_ERROR) CHECK(parsed == HTTP1_ERROR);
    if (rc > 0) {
        int again = http1_parse_request(buf, (size_t)rc, scratch);
        CHECK(again == rc || again == HTTP1_ERROR);
    }
    /* each byte examined once, each line checked once */
    CHECK(scan.work <= 2 * scan.pos);
}

static void fuzz_requests(const char *data, size_t size, struct rng *r)
{
    struct http1_request *req = malloc(sizeof *req);
    struct http1_request *scratch = malloc(sizeof *scratch);
    size_t off = 0;
    for (int m = 0; m < FUZZ_MAX_MESSAGES && off < size; m++) {
        const char *buf = data + off;
        size_t len = size - off;
        int n = http1_parse_request(buf, len, req);
        CHECK(n == HTTP1_NEED_MORE || n == HTTP1_ERROR || (n > 0 && (size_t)n <= len));
        check_prefixes(parse_req_any, buf, len, n, scratch, r);
        check_scan(buf, len, n, scratch, r);
        if (n <= 0) break;
        check_head(&req->head, buf, n);
        CHECK(req->method.len > 0 && req->target.len > 0);
        CHECK(within(req->method.p, req->method.len, buf, (size_t)n));
        CHECK(within(req->target.p, req->target.len, buf, (size_t)n));
        if (req->head.chunked) CHECK(req->head.minor_version == 1);
        if (req->head.expect_continue) CHECK(req->head.minor_version == 1);
        (void)http1_find_header(&req->head, "host");
        off += (size_t)n;

        enum http1_body_mode mode = http1_request_body_mode(req);
        CHECK(mode != HTTP1_BODY_UNTIL_CLOSE);
        struct body_result br =
            frame_body(mode, req->head.content_length, data + off, size - off, r);
        if (br.rc != 1) break;
        off += br.consumed;
    }
    free(req);
    free(scratch);
}

static void fuzz_responses(const char *data, size_t size, struct rng *r)
{
    struct http1_response *resp = malloc(sizeof *resp);
    struct http1_response *scratch = malloc(sizeof *scratch);
    size_t off = 0;
    for (int m = 0; m < FUZZ_MAX_MESSAGES && off < size; m++) {
        const char *buf = data + off;
        size_t len = size - off;
        int n = http1_parse_response(buf, len, resp);
        CHECK(n == HTTP1_NEED_MORE || n == HTTP1_ERROR || (n > 0 && (size_t)n <= len));
        check_prefixes(parse_resp_any, buf, len, n, scratch, r);
        if (n <= 0) break;
        check_head(&resp->head, buf, n);
        CHECK(resp->status >= 100 && resp->status <= 999);
        CHECK(within(resp->reason.p, resp->reason.len, buf, (size_t)n));
        CHECK(!resp->head.expect_continue);
        (void)http1_reason(resp->status);
        off += (size_t)n;

        /* an answer to HEAD never has a body; follow the chain as for GET */
        CHECK(http1_response_body_mode(resp, true) == HTTP1_BODY_NONE);
        enum http1_body_mode mode = http1_response_body_mode(resp, false);
        struct body_result br =
            frame_body(mode, resp->head.content_length, data + off, size - off, r);
        if (br.rc != 1) break;
        off += br.consumed;
    }
    free(resp);
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* split points come from the input itself, so seeds stay plain HTTP text */
    struct rng r = {0xcbf29ce484222325ull};
    for (size_t i = 0; i < size; i++)
        r.s = (r.s ^ data[i]) * 0x100000001b3ull;

    const char *text = (const char *)data;
    fuzz_requests(text, size, &r);
    fuzz_responses(text, size, &r);
    frame_body(HTTP1_BODY_CHUNKED, 0, text, size, &r);
    frame_body(HTTP1_BODY_LENGTH, rng_below(&r, size + 2), text, size, &r);

    struct http1_str value = {text, size};
    (void)http1_value_has_token(value, "chunked");
    return 0;
}
