/*
 * outcome — how a request ended, as one enum shared by the access log, the
 * metrics and the ledger. The name is looked up only where it is written
 * out (a log line, a metric label, a ledger row), so a new outcome is one
 * row in the table below and one in outcome.c, and no consumer can count it
 * as something else by a misspelt string.
 */
#ifndef UNBUSY_OUTCOME_H
#define UNBUSY_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

enum outcome {
    OUTCOME_NONE = 0,          /* not set: the access log derives ok or rejected from the status */
    OUTCOME_OK,                /* answered */
    OUTCOME_CLIENT_ERROR,      /* the provider refused the request as malformed (400, 413, 422) */
    OUTCOME_REJECTED,          /* the gateway refused it before any deployment (auth, model, JSON) */
    OUTCOME_UPSTREAM_FAILED,   /* every deployment failed (502, 503, 504) */
    OUTCOME_MID_STREAM_ERROR,  /* the stream broke after it had started */
    OUTCOME_CLIENT_CLOSED,     /* the client went away */
    OUTCOME_SHED,              /* refused by admission: the queue was full */
    OUTCOME_QUEUE_TIMEOUT,     /* waited in the admission queue past its deadline */
    OUTCOME_RATE_LIMITED,      /* a key's or model's rate or concurrency limit */
    OUTCOME_BUDGET_EXHAUSTED,  /* a key's budget was spent */
    OUTCOME__COUNT
};

/* The name written out ("ok", "upstream_failed", ...); "none" for OUTCOME_NONE and for a
   value out of range. Static storage. */
const char *outcome_name(enum outcome o);
/* The outcome a name stands for; false when len bytes at s name none (OUTCOME_NONE's
   "none" is not a name). */
bool outcome_from_name(const char *s, size_t len, enum outcome *out);
/* What an entry that never set one reports: OUTCOME_NONE becomes ok below status 400 and
   rejected from it; any other outcome is itself. */
enum outcome outcome_or_status(enum outcome o, int status);

#endif
