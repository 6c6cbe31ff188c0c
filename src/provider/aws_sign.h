/*
 * aws_sign — the SigV4 sign step of the AWS wire formats (Bedrock, SageMaker).
 *
 * It reads the finished request head (request line and headers) and body,
 * adds X-Amz-Date, X-Amz-Content-Sha256 and, for session credentials,
 * X-Amz-Security-Token, and signs host, content-type and every x-amz-*
 * header with the provider's region and service (cfg_aws) and its
 * credentials (aws_creds.h), appending the Authorization header.
 *
 * Who calls it: provider/bedrock.c and provider/sagemaker.c (their .sign and .head),
 * the unit test.
 */
#ifndef UNBUSY_AWS_SIGN_H
#define UNBUSY_AWS_SIGN_H

#include <stdint.h>

#include "provider/provider.h"

/* Signs r for pv at now_unix_s. 0, or -1 (no credentials yet, a head it cannot read). */
int aws_sign_at(const struct cfg_provider *pv, struct provider_request *r, int64_t now_unix_s);

/* The same at the current time. */
int aws_sign(const struct cfg_provider *pv, struct provider_request *r);

/* The .head step of the AWS formats: an error unless 200; a stream when asked for one and
   the answer is application/vnd.amazon.eventstream, else a whole answer. */
enum provider_head aws_head(const struct http1_response *resp, bool asked_stream);

/* A model id or endpoint name as one path segment (RFC 3986 unreserved kept, the rest %XX:
   "anthropic.claude-3-haiku-20240307-v1:0" → "...-v1%3A0"). 0 or -1. */
int aws_path_segment(struct buf *out, const char *s);

#endif
