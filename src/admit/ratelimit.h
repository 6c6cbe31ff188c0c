/*
 * ratelimit — requests-per-minute and tokens-per-minute token buckets, and
 * in-flight counts, per API key and per model, shared by every worker.
 *
 * Each limited name (a key's limit id, a model name) has an entry with up to
 * three limits: a request bucket (rpm), a token bucket (tpm) and a
 * concurrency bound. The buckets are bucket.h's (the same one a deployment's
 * rpm uses): one minute's allowance, starting full, refilling continuously at
 * limit/60 s in exact integers, so "60 rpm" admits the 61st request exactly
 * 1000 ms after the bucket ran dry, not roughly.
 *
 * Who calls it: the rate-limit admission step (step_ratelimit.c) —
 *
 *     if (!ratelimit_enter(rl, key, model)) ... 429, too many in flight
 *     if (ratelimit_try(rl, key, model, estimate, now, &retry_ms) != RATELIMIT_OK) {
 *         ratelimit_leave(rl, key, model);
 *         ... 429 with Retry-After (none for RATELIMIT_TOO_LARGE)
 *     }
 *     ... the request ...
 *     ratelimit_settle(rl, key, model, estimate, &what_it_used, now);
 *     ratelimit_leave(rl, key, model);
 *
 * (ratelimit_undo gives a taken request and its tokens back when the request
 * is refused after ratelimit_try, before anything went upstream), and
 * ratelimit_status for the x-ratelimit-* headers. Whoever owns the key and
 * model definitions calls ratelimit_sync when they change.
 *
 * It owns the table and the names in it. The table's size is fixed at
 * creation and entries come only from ratelimit_sync, never from client
 * input: a name the table does not know is simply not limited. One mutex
 * guards everything (a few hash probes and integer operations per call).
 * It never reads the clock: every call takes now_ms from any monotonic
 * millisecond clock; a now_ms older than one already seen counts as no time
 * passing, so workers racing to the lock with slightly stale clocks are safe.
 */
#ifndef UNBUSY_RATELIMIT_H
#define UNBUSY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys and models are separate namespaces: a model and a key may share a name. */
enum ratelimit_scope {
    RATELIMIT_KEY,
    RATELIMIT_MODEL,
};

struct ratelimit_def {
    const char *name;         /* copied */
    uint32_t rpm;             /* requests per minute; 0: unlimited */
    uint32_t tpm;             /* tokens per minute; 0: unlimited */
    uint32_t max_concurrency; /* in flight at once; 0: unlimited */
};

enum ratelimit_verdict {
    RATELIMIT_OK,        /* one request and the estimated tokens were taken */
    RATELIMIT_LIMITED,   /* nothing taken; *retry_after_ms says when both would fit */
    RATELIMIT_TOO_LARGE, /* nothing taken; the estimate alone is more than a whole minute's
                            tokens (tpm) and can never fit: not worth retrying as it is */
};

/* What the x-ratelimit-* headers report: for requests and for tokens, the
   tighter of the key's and the model's bucket (the one with fewer left). */
struct ratelimit_status {
    bool requests_limited; /* false: neither has an rpm; the fields below are 0 */
    uint32_t limit_requests;
    uint32_t remaining_requests; /* whole requests that would be admitted now */
    uint64_t reset_requests_ms;  /* until the bucket is full again */
    bool tokens_limited;
    uint32_t limit_tokens;
    uint32_t remaining_tokens;
    uint64_t reset_tokens_ms;
};

struct ratelimit;

/* A table for at most max_entries names (keys and models together). NULL when
   out of memory. */
struct ratelimit *ratelimit_new(size_t max_entries);
void ratelimit_free(struct ratelimit *rl);

/*
 * Makes the scope's entries exactly defs: new names start with full buckets,
 * names still present keep their buckets (clamped to a lowered limit) and
 * in-flight counts, names gone are dropped. A def with no limit at all takes
 * no entry; a repeated name keeps its first def. Returns 0, or -ENOSPC when
 * not all fit (those that fit are in force; the others are unlimited), or
 * -ENOMEM (the old entries stay in force).
 */
int ratelimit_sync(struct ratelimit *rl, enum ratelimit_scope scope,
                   const struct ratelimit_def *defs, size_t n, uint64_t now_ms);

/*
 * Takes one request and tokens_estimate tokens from the key's and the model's
 * buckets (either name may be NULL: not limited there), all or nothing. On
 * RATELIMIT_LIMITED, *retry_after_ms (may be NULL) is the exact time until
 * every bucket involved would have room, if nothing else takes from them
 * meanwhile; otherwise it is set to 0. A bucket in debt (see reconcile)
 * refuses even an estimate of 0 until it is out of it.
 */
enum ratelimit_verdict ratelimit_try(struct ratelimit *rl, const char *key, const char *model,
                                     uint64_t tokens_estimate, uint64_t now_ms,
                                     uint64_t *retry_after_ms);

/*
 * The request's real usage is known: gives back estimated - actual tokens, or
 * charges the excess. The excess may take a bucket below empty (a debt, that
 * later requests wait out), at most one whole minute's tokens below.
 */
void ratelimit_reconcile(struct ratelimit *rl, const char *key, const char *model,
                         uint64_t estimated, uint64_t actual, uint64_t now_ms);

/* What a request that has ended used, as far as the gateway knows. */
struct ratelimit_usage {
    int64_t reported_tokens;  /* prompt + completion as the provider reported them; -1: none came */
    bool sent;                /* the prompt reached a deployment */
    uint64_t prompt_tokens;   /* the prompt, estimated */
    uint64_t streamed_tokens; /* the completion generated before the end (a finish, a cut, the
                                 client going away), estimated from its characters */
};

/* The tokens a request is settled with: the reported usage when any came; otherwise the
   prompt and what was streamed, when the prompt was sent; otherwise none. Never the
   up-front estimate: an aborted stream is charged what it streamed, not its max_tokens. */
uint64_t ratelimit_usage_tokens(const struct ratelimit_usage *u);

/* A request has ended: ratelimit_reconcile with ratelimit_usage_tokens(used). */
void ratelimit_settle(struct ratelimit *rl, const char *key, const char *model, uint64_t estimated,
                      const struct ratelimit_usage *used, uint64_t now_ms);

/* Gives back what a successful ratelimit_try took: the request and the estimate. */
void ratelimit_undo(struct ratelimit *rl, const char *key, const char *model,
                    uint64_t tokens_estimate, uint64_t now_ms);

/*
 * Takes an in-flight slot from the key and from the model, both or neither.
 * False when either is at its max_concurrency. Each true is matched by one
 * ratelimit_leave with the same names.
 */
bool ratelimit_enter(struct ratelimit *rl, const char *key, const char *model);
void ratelimit_leave(struct ratelimit *rl, const char *key, const char *model);
/* Requests in flight for a name (0 when it has no entry). */
uint32_t ratelimit_inflight(struct ratelimit *rl, enum ratelimit_scope scope, const char *name);

void ratelimit_status(struct ratelimit *rl, const char *key, const char *model, uint64_t now_ms,
                      struct ratelimit_status *out);

/*
 * Writes the OpenAI-style headers for st as "Name: value\r\n" lines
 * (x-ratelimit-limit-requests, -remaining-requests, -reset-requests and the
 * same for tokens; only the kinds that are limited), NUL-terminated, for
 * server_respond's extra_headers. Reset values read like "20ms", "1s",
 * "8.64s", "6m0s". Returns the length, or 0 with out = "" when cap is too
 * small (RATELIMIT_HEADERS_MAX always suffices).
 */
#define RATELIMIT_HEADERS_MAX 320
size_t ratelimit_format_headers(const struct ratelimit_status *st, char *out, size_t cap);

/* A duration as in those headers: "0s", "20ms", "1s", "1.5s", "6m0s", "1h0m0s".
   out needs 32 bytes. */
void ratelimit_format_duration(uint64_t ms, char *out, size_t cap);

/* Retry-After seconds for a wait: rounded up, at least 1. */
uint64_t ratelimit_retry_after_seconds(uint64_t retry_after_ms);

#endif
