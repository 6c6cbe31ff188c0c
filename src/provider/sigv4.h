/*
 * sigv4 — AWS Signature Version 4 (HMAC-SHA256), pure: no I/O, the time is passed in.
 *
 * The steps of the published algorithm, each a function so the unit test can
 * check them one by one against AWS's signing test suite: the canonical
 * request (method, normalised and URI-encoded path, sorted query, lower-cased
 * sorted headers with trimmed values, the payload's SHA-256), the string to
 * sign (algorithm, date, credential scope, hash of the canonical request), the
 * signing key (HMAC chain over date, region, service, "aws4_request") and the
 * Authorization header value.
 *
 * The derived signing key depends on the secret, the day, the region and the
 * service only: sigv4_authorization caches it per thread (a few entries, the
 * secret known by its SHA-256), so a request costs two SHA-256 and one HMAC
 * instead of five HMACs.
 *
 * Who calls it: provider/aws_sign.c (the Bedrock and SageMaker sign step), the
 * unit test and bench/. It owns nothing but the per-thread key cache.
 */
#ifndef UNBUSY_SIGV4_H
#define UNBUSY_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct sigv4_header {
    const char *name; /* any case; the canonical form lower-cases it */
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct sigv4_input {
    const char *method;
    const char *path; /* the path as sent (before '?'), percent-encoded as on the wire */
    size_t path_len;
    const char *query; /* after '?' (without it); NULL or "" for none */
    size_t query_len;
    const struct sigv4_header *headers; /* the headers to sign, in any order (at most 32) */
    size_t nheaders;
    const char *payload_hash; /* 64 lower-case hex digits: SHA-256 of the body */
    const char *amz_date;     /* "YYYYMMDDTHHMMSSZ" (sigv4_amz_date) */
    const char *region;
    const char *service;
};

enum { SIGV4_MAX_HEADERS = 32 };

/* The canonical request into creq and the signed header list ("host;x-amz-date") into
   signed_headers (either may be NULL). 0, or -1 (too many headers, out of memory). */
int sigv4_canonical_request(const struct sigv4_input *in, struct buf *creq,
                            struct buf *signed_headers);

/* The string to sign of a canonical request. 0 or -1. */
int sigv4_string_to_sign(const struct sigv4_input *in, const char *creq, size_t creq_len,
                         struct buf *out);

/* The signing key (not cached): HMAC("AWS4"+secret, date8) → region → service → "aws4_request". */
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32]);

/* The Authorization header's value ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
   Signature=...") appended to out; the signing key comes from this thread's cache. 0 or -1. */
int sigv4_authorization(const struct sigv4_input *in, const char *access_key_id, const char *secret,
                        struct buf *out);

/* Lower-case hex SHA-256 of data, NUL-terminated. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* "YYYYMMDDTHHMMSSZ" of a Unix time (UTC), NUL-terminated. */
void sigv4_amz_date(int64_t unix_s, char out[17]);

/* How many derivations this thread's cache has done (for the unit test). */
uint64_t sigv4_key_derivations(void);

#endif
