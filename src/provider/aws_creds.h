/*
 * aws_creds — the credentials an AWS provider signs with.
 *
 * Static keys (from the file, or the environment copied at load) live in the
 * config (struct cfg_aws). Keys from the container credentials endpoint
 * (ECS, EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI, or
 * _RELATIVE_URI under http://169.254.170.2, with the token of
 * AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE) are fetched by one
 * background thread, never by an event loop: it fetches at start, then again
 * five minutes before the keys expire (half their life when they are shorter),
 * and retries a failed fetch after 1 s, doubling to a minute. The process holds
 * one set of them, as the endpoint serves one role; sign steps copy it under a
 * mutex. Until the first fetch has answered, signing fails, and the attempt
 * moves to the next deployment. Nothing here logs a key.
 *
 * Who calls it: provider/aws_sign.c (aws_creds_get), main.c (start and stop),
 * the unit test (the endpoint's JSON).
 */
#ifndef UNBUSY_AWS_CREDS_H
#define UNBUSY_AWS_CREDS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct aws_creds {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096]; /* "" when none */
};

/* pv's credentials now: 0, or -1 (the container's are not fetched yet, or expired). */
int aws_creds_get(const struct cfg_provider *pv, struct aws_creds *out);

/* Starts the refresher when a provider of cfg takes its credentials from the container
   endpoint (once per process; later calls do nothing). 0, or -1 (the thread could not start). */
int aws_creds_start(const struct config *cfg);
/* Stops and joins the refresher, if it runs. */
void aws_creds_stop(void);

/* The endpoint's answer (AccessKeyId, SecretAccessKey, Token, Expiration) into out and
 *expires (Unix seconds; 0 when the answer has none). 0, or -1 when it is not such JSON. */
int aws_creds_parse(const char *json, size_t len, struct aws_creds *out, int64_t *expires);

/* Seconds until the next fetch, given the keys' expiry (0: none) and the time now. */
int64_t aws_creds_refresh_in(int64_t expires, int64_t now);

/* How many fetches have answered with keys (for tests and the log). */
uint64_t aws_creds_fetches(void);

#endif
