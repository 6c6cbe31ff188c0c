/*
 * step_ratelimit — the key's and the model's limits (ratelimit.h): a concurrency slot,
 * then one request and the token estimate from the RPM/TPM buckets; 429 with
 * Retry-After when they are spent. Its settle gives the slot back and settles the
 * estimate with what the request used: the reported usage, or the prompt and what was
 * streamed (an aborted stream is charged what it streamed, not its max_tokens).
 */
#include <stdio.h>

#include "admit/ratelimit.h"
#include "admit/shared_limits.h"
#include "admit/steps.h"
#include "config/config.h"
#include "proto/jsonx.h"


struct rl_state {
    const char *model_limit; /* the model's name when it has limits */
    uint64_t estimate;       /* tokens charged up front */
};

static enum admit_verdict check(struct admit_run *run, void *state)
{
    struct rl_state *s = state;
    struct admit_req *r = run->req;
    if (!r->rl || (!r->limit_key && !r->model->rpm && !r->model->tpm))
        return ADMIT_GO;
    s->model_limit = (r->model->rpm || r->model->tpm) ? r->model->name : NULL;
    if (!ratelimit_enter(r->rl, r->limit_key, s->model_limit)) {
        r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED, "too many requests in flight for this key", 1,
                       OUTCOME_RATE_LIMITED);
        return ADMIT_ANSWERED;
    }
    const struct jsonx_request *scan = r->scan;
    /* the same estimate step_shared takes from the shared buckets */
    uint64_t estimate =
        shared_limits_estimate(scan->prompt_chars, scan->has_max_tokens, scan->max_tokens);
    uint64_t wait_ms = 0;
    enum ratelimit_verdict v =
        ratelimit_try(r->rl, r->limit_key, s->model_limit, estimate, r->ops->now_ms(r), &wait_ms);
    if (v != RATELIMIT_OK) {
        /* Not GO, so not settled: the slot goes back here. */
        ratelimit_leave(r->rl, r->limit_key, s->model_limit);
        char msg[200];
        if (v == RATELIMIT_TOO_LARGE)
            snprintf(msg, sizeof msg, "the request's token estimate (%llu) is more than a minute's "
                                      "token limit allows", (unsigned long long)estimate);
        else
            snprintf(msg, sizeof msg, "rate limit reached; try again in %llu ms", (unsigned long long)wait_ms);
        r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED, msg,
                       v == RATELIMIT_TOO_LARGE ? -1 : (int)ratelimit_retry_after_seconds(wait_ms),
                       OUTCOME_RATE_LIMITED);
        return ADMIT_ANSWERED;
    }
    s->estimate = estimate;
    return ADMIT_GO;
}

static void settle(struct admit_run *run, void *state)
{
    struct rl_state *s = state;
    struct admit_req *r = run->req;
    if (!s->estimate)
        return; /* nothing was taken (no limits) */
    struct ratelimit_usage used;
    r->ops->usage(r, &used);
    uint64_t now = r->ops->now_ms(r);
    ratelimit_settle(r->rl, r->limit_key, s->model_limit, s->estimate, &used, now);
    ratelimit_leave(r->rl, r->limit_key, s->model_limit);
}

const struct admit_step admit_step_ratelimit = {
    .name = "ratelimit", .state_size = sizeof(struct rl_state), .check = check, .settle = settle};
