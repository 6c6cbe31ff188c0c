/*
 * step_shared — the key's and the model's RPM/TPM buckets shared by every
 * replica (shared_limits.h), after the local ones (step_ratelimit.c).
 *
 *   no redis:, or no limits (rpm, tpm, the key's max_concurrency) ▶ GO
 *   Redis down ─────────────────────────────────────────────────▶ GO (local decided)
 *   a lease on every bucket covers it (no max_concurrency) ──────▶ GO (no round trip)
 *   otherwise: one take (EVALSHA) ─▶ WAIT ─┬─ taken ─────────────▶ GO (extras leased)
 *                                          ├─ refused ───────────▶ 429 + Retry-After
 *                                          ├─ too many in flight ▶ 429
 *                                          │                       (the local take undone)
 *                                          └─ no reply within redis.timeout, an error,
 *                                             the connection lost ▶ GO (local decided)
 *
 * A key with max_concurrency puts each request in its in-flight set in Redis
 * with the same take (no lease then) and takes it out at settle.
 * A reply that comes after the request went on (or ended) still counts: its
 * extras go to the lease. Settle gives back to (or charges) the lease what
 * the request used less (or more) than its estimate. Everything runs on the
 * request's loop, with that loop's Redis client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit/keys.h"
#include "admit/ratelimit.h"
#include "admit/shared_limits.h"
#include "admit/steps.h"
#include "config/config.h"
#include "net/redis.h"
#include "proto/jsonx.h"

#define COMMAND_LIMIT (16u << 10)

struct shared_state;

/* One take in flight; owned by the Redis callback, which always comes. */
struct shared_pending {
    struct admit_run *run; /* NULL: the request went on without it, or ended */
    struct shared_state *state;
    struct shared_limits *sl;
    struct redis *redis;
    struct shared_bucket b[2];
    size_t n;
    uint64_t estimate;
    bool evalled;
    bool with_cc;
    struct shared_inflight cc;
};

struct shared_state {
    struct shared_pending *pending;
    uint64_t estimate;
    bool taken;   /* from Redis or a lease: settle adjusts the estimate */
    bool counted; /* in the key's in-flight set: settle takes it out */
    struct shared_inflight cc;
};

/* The request's shared buckets: its key's and its model's (those with a limit). */
static size_t buckets_of(const struct admit_req *r, struct shared_bucket *b)
{
    size_t n = 0;
    if (r->key && r->limit_key && (r->key->rpm || r->key->tpm) &&
        strlen(r->limit_key) < SHARED_MAX_NAME) {
        b[n] = (struct shared_bucket){.scope = 'k', .rpm = r->key->rpm, .tpm = r->key->tpm};
        snprintf(b[n].name, sizeof b[n].name, "%s", r->limit_key);
        n++;
    }
    if ((r->model->rpm || r->model->tpm) && strlen(r->model->name) < SHARED_MAX_NAME) {
        b[n] = (struct shared_bucket){.scope = 'm', .rpm = r->model->rpm, .tpm = r->model->tpm};
        snprintf(b[n].name, sizeof b[n].name, "%s", r->model->name);
        n++;
    }
    return n;
}

static uint64_t estimate_of(const struct admit_req *r)
{
    return shared_limits_estimate(r->scan->prompt_chars, r->scan->has_max_tokens,
                                  r->scan->max_tokens);
}

static void on_reply(void *ud, const struct resp_reply *reply, int err);

static int send_take(struct shared_pending *p)
{
    struct buf cmd;
    buf_init(&cmd, COMMAND_LIMIT);
    int rc = shared_limits_command(p->sl, &cmd, p->b, p->n, p->estimate, p->evalled,
                                   p->with_cc ? &p->cc : NULL);
    if (rc == 0) rc = redis_send(p->redis, cmd.data, cmd.len, on_reply, p, NULL);
    buf_free(&cmd);
    return rc;
}

/* The request goes on with the local decision. */
static void go_local(struct admit_run *run, struct shared_state *s, enum shared_fallback why,
                     struct shared_limits *sl)
{
    struct admit_req *r = run->req;
    s->pending = NULL;
    r->ops->arm(r, ADMIT_TIMER_DEADLINE, 0, 0);
    shared_limits_count(sl, why);
    admit_resume(run, ADMIT_GO);
}

static void on_reply(void *ud, const struct resp_reply *reply, int err)
{
    struct shared_pending *p = ud;
    struct shared_take take;
    int bad = err ? -1 : shared_limits_read_take(reply, &take);
    if (bad == 0 && take.noscript && !p->evalled) {
        p->evalled = true; /* Redis restarted or was flushed: the script once more, whole */
        if (send_take(p) == 0) return;
        bad = -1;
    }
    if (bad == 0 && take.noscript) bad = -1;
    struct admit_run *run = p->run;
    struct shared_state *s = p->state;
    struct shared_limits *sl = p->sl;
    if (bad == 0 && take.admitted) {
        struct admit_req *r = run ? run->req : NULL;
        shared_limits_credit(sl, p->b, p->n, take.extra, take.extra_tokens,
                             r ? r->ops->now_ms(r) : 0);
    }
    if (!run) { /* the request went on locally (timeout) or ended: the extras are all that count */
        free(p);
        return;
    }
    uint64_t estimate = p->estimate;
    free(p);
    if (bad) {
        go_local(run, s, SHARED_FALLBACK_ERROR, sl);
        return;
    }
    struct admit_req *r = run->req;
    s->pending = NULL;
    r->ops->arm(r, ADMIT_TIMER_DEADLINE, 0, 0);
    shared_limits_count_round_trip(sl, !take.admitted);
    if (take.admitted) {
        s->taken = true;
        s->estimate = estimate;
        admit_resume(run, ADMIT_GO);
        return;
    }
    /* Refused across the replicas: the local buckets give back what step_ratelimit took. */
    if (take.too_many) {
        if (r->rl)
            ratelimit_undo(r->rl, r->limit_key,
                           (r->model->rpm || r->model->tpm) ? r->model->name : NULL, estimate,
                           r->ops->now_ms(r));
        r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED,
                       "too many requests in flight for this key (counted across every replica)", 1,
                       OUTCOME_RATE_LIMITED);
        admit_resume(run, ADMIT_ANSWERED);
        return;
    }
    if (r->rl)
        ratelimit_undo(r->rl, r->limit_key,
                       (r->model->rpm || r->model->tpm) ? r->model->name : NULL, estimate,
                       r->ops->now_ms(r));
    char msg[200];
    snprintf(msg, sizeof msg, "rate limit reached (shared by every replica); try again in %llu ms",
             (unsigned long long)take.wait_ms);
    r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED, msg,
                   (int)ratelimit_retry_after_seconds(take.wait_ms), OUTCOME_RATE_LIMITED);
    admit_resume(run, ADMIT_ANSWERED);
}

static enum admit_verdict check(struct admit_run *run, void *state)
{
    struct shared_state *s = state;
    struct admit_req *r = run->req;
    if (!r->shared || !r->redis) return ADMIT_GO;
    struct shared_bucket b[2];
    size_t n = buckets_of(r, b);
    bool cc =
        r->key && r->limit_key && r->key->max_concurrency && strlen(r->limit_key) < SHARED_MAX_NAME;
    if (!n && !cc) return ADMIT_GO;
    if (!redis_is_up(r->redis)) {
        shared_limits_count(r->shared, SHARED_FALLBACK_DOWN);
        return ADMIT_GO;
    }
    uint64_t estimate = estimate_of(r);
    if (!cc && shared_limits_lease_take(r->shared, b, n, estimate, r->ops->now_ms(r))) {
        s->taken = true;
        s->estimate = estimate;
        return ADMIT_GO;
    }
    if (cc) {
        snprintf(s->cc.name, sizeof s->cc.name, "%s", r->limit_key);
        s->cc.max = r->key->max_concurrency;
        /* the table full: this request is bounded by its replica alone */
        cc = s->counted = shared_limits_inflight_add(r->shared, &s->cc);
        if (!cc && !n) return ADMIT_GO;
    }
    struct shared_pending *p = calloc(1, sizeof *p);
    if (!p) {
        if (s->counted) shared_limits_inflight_remove(r->shared, &s->cc);
        s->counted = false;
        return ADMIT_GO;
    }
    *p = (struct shared_pending){.run = run,
                                 .state = s,
                                 .sl = r->shared,
                                 .redis = r->redis,
                                 .n = n,
                                 .estimate = estimate,
                                 .with_cc = cc,
                                 .cc = s->cc};
    memcpy(p->b, b, sizeof b);
    if (send_take(p) < 0) {
        free(p);
        if (s->counted) shared_limits_inflight_remove(r->shared, &s->cc);
        s->counted = false;
        shared_limits_count(r->shared, SHARED_FALLBACK_DOWN);
        return ADMIT_GO;
    }
    s->pending = p;
    r->ops->arm(r, ADMIT_TIMER_DEADLINE, shared_limits_config(r->shared)->timeout_ms, 0);
    return ADMIT_WAIT;
}

static void timer(struct admit_run *run, void *state, enum admit_timer which)
{
    struct shared_state *s = state;
    if (which != ADMIT_TIMER_DEADLINE || !s->pending) return;
    s->pending->run = NULL; /* its reply, when it comes, only leases */
    go_local(run, s, SHARED_FALLBACK_TIMEOUT, run->req->shared);
}

static void settle(struct admit_run *run, void *state)
{
    struct shared_state *s = state;
    struct admit_req *r = run->req;
    if (s->pending) { /* the request ended while waiting for Redis */
        s->pending->run = NULL;
        s->pending = NULL;
        r->ops->arm(r, ADMIT_TIMER_DEADLINE, 0, 0);
    }
    if (s->counted) { /* out of the key's in-flight set (after its take, on the same connection) */
        shared_limits_inflight_remove(r->shared, &s->cc);
        struct buf cmd;
        buf_init(&cmd, 1024);
        if (shared_limits_leave_command(r->shared, &cmd, &s->cc) == 0)
            redis_send_batch(r->redis, cmd.data, cmd.len, 1); /* down: it expires unrefreshed */
        buf_free(&cmd);
        s->counted = false;
    }
    if (!s->taken) return;
    struct shared_bucket b[2];
    size_t n = buckets_of(r, b);
    struct ratelimit_usage used;
    r->ops->usage(r, &used);
    shared_limits_adjust(r->shared, b, n, s->estimate, ratelimit_usage_tokens(&used),
                         r->ops->now_ms(r));
}

const struct admit_step admit_step_shared = {.name = "shared",
                                             .state_size = sizeof(struct shared_state),
                                             .check = check,
                                             .settle = settle,
                                             .timer = timer};
