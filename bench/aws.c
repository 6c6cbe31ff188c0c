/*
 * aws — the cost of the AWS wire formats' own work, per request and per byte:
 *
 *   sign      aws_sign_at on a ConverseStream request (a 2 KB body): the payload hash, the
 *             canonical request, the string to sign and the signature, the signing key
 *             from the per-thread cache (as every request but the first of a day)
 *   sign-cold the same with the key derived every time (sigv4_signing_key + the rest)
 *   parse     evs_parser_feed over a ConverseStream of 20,000 contentBlockDelta messages
 *             (about 3.8 MB), in 16 KB reads (what a TLS read hands the parser), CRCs
 *             checked; MB/s of stream
 *   convert   the same stream through the Bedrock feed: each message parsed and written as
 *             an OpenAI chunk (cJSON per event), MB/s
 *
 * Built by bench/Makefile (make all first); run: build/bench/aws [seconds per case, default 2].
 * Prints one line per case: ns per operation and MB/s where it applies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider/aws_sign.h"
#include "provider/sigv4.h"
#include "proto/eventstream.h"
#include "provider/provider.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct cfg_aws aws = {
    .region = "us-east-1",
    .service = "bedrock",
    .credentials = CFG_AWS_CRED_STATIC,
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    .session_token = "IQoJb3JpZ2luX2VjEXAMPLETOKENwJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLE"};

static void bench_sign(double secs, int cold)
{
    struct cfg_provider pv;
    memset(&pv, 0, sizeof pv);
    pv.aws = &aws;
    char body[2048];
    memset(body, 'x', sizeof body);
    struct provider_request r;
    memset(&r, 0, sizeof r);
    buf_init(&r.head, 0);
    buf_init(&r.body, 0);
    buf_append(&r.body, body, sizeof body);
    const char *head =
        "POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream HTTP/1.1\r\n"
        "Host: bedrock-runtime.us-east-1.amazonaws.com\r\nUser-Agent: unbusy/0.1\r\n"
        "Content-Type: application/json\r\nAccept: application/vnd.amazon.eventstream\r\n"
        "x-request-id: 0123456789abcdef\r\nContent-Length: 2048\r\n";
    long n = 0;
    double t0 = now_s(), t;
    unsigned char key[32];
    do {
        for (int i = 0; i < 1000; i++) {
            buf_reset(&r.head);
            buf_append_str(&r.head, head);
            if (cold)
                sigv4_signing_key(aws.secret_access_key, "20260101", "us-east-1", "bedrock", key);
            if (aws_sign_at(&pv, &r, 1767225600 + n) < 0) abort();
            n++;
        }
        t = now_s() - t0;
    } while (t < secs);
    printf("%-10s %8.0f ns/request  (%ld requests)\n", cold ? "sign-cold" : "sign",
           t * 1e9 / (double)n, n);
    buf_free(&r.head);
    buf_free(&r.body);
}

static int on_msg(void *ud, const struct evs_message *m)
{
    *(size_t *)ud += m->payload_len;
    return 0;
}

static int on_event(void *ud, const struct provider_event *ev)
{
    *(size_t *)ud += ev->len;
    return 0;
}

static void stream(struct buf *b)
{
    struct evs_header h[3] = {
        {.name = ":event-type",
         .name_len = 11,
         .type = EVS_STRING,
         .bytes = "contentBlockDelta",
         .bytes_len = 17},
        {.name = ":content-type",
         .name_len = 13,
         .type = EVS_STRING,
         .bytes = "application/json",
         .bytes_len = 16},
        {.name = ":message-type",
         .name_len = 13,
         .type = EVS_STRING,
         .bytes = "event",
         .bytes_len = 5},
    };
    const char *p = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\" "
                    "token\"},\"p\":\"abcdefghijklmnopqrstuvwxyzABCD\"}";
    for (int i = 0; i < 20000; i++)
        if (evs_encode(b, h, 3, p, strlen(p)) < 0) abort();
}

static void bench_parse(double secs, int convert)
{
    struct buf b;
    buf_init(&b, 64u << 20);
    stream(&b);
    long rounds = 0;
    size_t sink = 0;
    double t0 = now_s(), t;
    struct evs_parser p;
    struct provider_stream s;
    evs_parser_init(&p, 0);
    provider_stream_init(&s, 0);
    do {
        evs_parser_reset(&p);
        provider_stream_reset(&s);
        for (size_t off = 0; off < b.len; off += 16384) {
            size_t n = b.len - off < 16384 ? b.len - off : 16384;
            int rc = convert ? provider_bedrock_ops.feed(&s, b.data + off, n, on_event, &sink)
                             : evs_parser_feed(&p, b.data + off, n, on_msg, &sink, NULL);
            if (rc != 0) abort();
        }
        rounds++;
        t = now_s() - t0;
    } while (t < secs);
    double mb = (double)b.len * (double)rounds / 1e6;
    printf("%-10s %8.1f MB/s  %8.0f ns/message  (%.1f MB stream x %ld)\n",
           convert ? "convert" : "parse", mb / t, t * 1e9 / (20000.0 * (double)rounds),
           (double)b.len / 1e6, rounds);
    evs_parser_free(&p);
    provider_stream_free(&s);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    bench_sign(secs, 0);
    bench_sign(secs, 1);
    bench_parse(secs, 0);
    bench_parse(secs, 1);
    return 0;
}
