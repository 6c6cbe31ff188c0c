/*
 * step_queue — the model's admission queue (admission.h): start now (GO, holding a
 * slot), or WAIT in the queue until a slot frees (admit_queue_woken, on the request's
 * own worker), its deadline passes (429, queue_timeout) or its client leaves; shed
 * (429 + Retry-After from the drain rate) when there is no queue or it is full. A
 * waiting stream client gets its head at once and keep-alive comments on the tick.
 * Its settle leaves the queue or gives the slot back.
 */
#include <errno.h>
#include <stdio.h>

#include "admit/keys.h"
#include "admit/steps.h"
#include "config/config.h"

struct queue_state {
    struct admit_run *run;
    struct admission *adm; /* where the slot or the place in the queue is */
    struct admission_waiter waiter;
    bool slot;             /* holds an admission slot */
    bool waiting;          /* in the queue */
    bool handed;           /* ended while being handed on: the wake-up frees the request */
    uint64_t queued_ms;
};

static void shed(struct admit_req *r, struct admission *adm, const char *why)
{
    uint32_t ra = admission_retry_after_s(adm);
    char msg[200];
    snprintf(msg, sizeof msg, "model '%s' is overloaded and the request was shed (%s)", r->model->name, why);
    admit_count(r, ADMIT_EVENT_SHED, 0);
    r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED, msg, (int)ra, OUTCOME_SHED);
}

/* A config reload removed the model while the request was on its way to the queue. */
static void gone(struct admit_req *r)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "the model '%s' was removed from the configuration while this request waited",
             r->model->name);
    r->ops->answer(r, ADMIT_REFUSE_GONE, msg, -1, OUTCOME_REJECTED);
}

static void stop_timers(struct admit_req *r)
{
    r->ops->arm(r, ADMIT_TIMER_DEADLINE, 0, 0);
    r->ops->arm(r, ADMIT_TIMER_TICK, 0, 0);
}

static enum admit_verdict check(struct admit_run *run, void *state)
{
    struct queue_state *s = state;
    struct admit_req *r = run->req;
    s->run = run;
    s->adm = r->adm;
    if (admission_try(s->adm, r->cls) == ADMISSION_START) {
        s->slot = true;
        return ADMIT_GO;
    }
    const struct cfg_queue *q = &r->model->queue;
    uint64_t now = r->ops->now_ms(r);
    long timeout = q->timeout_ms;
    if (r->asked_queue_timeout_ms >= 0 && r->asked_queue_timeout_ms < timeout)
        timeout = r->asked_queue_timeout_ms; /* a client may only shorten it */
    if (q->max == 0 || timeout == 0) {
        shed(r, s->adm, "no queue");
        return ADMIT_ANSWERED;
    }
    s->waiter.cls = r->cls;
    s->waiter.key = r->key ? r->key->id : -1;
    s->waiter.owner = r->owner;
    s->waiter.ud = s;
    int rc = admission_enqueue(s->adm, &s->waiter, now);
    if (rc == -ESHUTDOWN) {
        gone(r);
        return ADMIT_ANSWERED;
    }
    if (rc < 0) {
        shed(r, s->adm, "the queue is full");
        return ADMIT_ANSWERED;
    }
    s->waiting = true;
    s->queued_ms = now;
    r->ops->arm(r, ADMIT_TIMER_DEADLINE, (uint64_t)timeout, 0);
    if (r->client_stream && q->keepalive_ms) {
        /* The head now and comments while waiting, so the client's SDK does not time out;
           nothing that would stop a failover later has been sent. */
        r->ops->waiting_head(r);
        r->ops->arm(r, ADMIT_TIMER_TICK, q->keepalive_ms, q->keepalive_ms);
    }
    return ADMIT_WAIT;
}

static void timer(struct admit_run *run, void *state, enum admit_timer which)
{
    struct queue_state *s = state;
    struct admit_req *r = run->req;
    if (!s->waiting)
        return;
    if (which == ADMIT_TIMER_TICK) {
        r->ops->keepalive(r);
        return;
    }
    if (!admission_remove(s->adm, &s->waiter))
        return; /* handed on a moment ago: admit_queue_woken continues it */
    s->waiting = false;
    stop_timers(r);
    pthread_mutex_lock(&s->adm->lock);
    s->adm->timeouts++;
    pthread_mutex_unlock(&s->adm->lock);
    uint32_t ra = admission_retry_after_s(s->adm);
    char msg[200];
    snprintf(msg, sizeof msg, "model '%s' is at capacity: waited %llu ms in the queue without a free slot",
             r->model->name, (unsigned long long)(r->ops->now_ms(r) - s->queued_ms));
    r->ops->answer(r, ADMIT_REFUSE_RATE_LIMITED, msg, (int)ra, OUTCOME_QUEUE_TIMEOUT);
    admit_resume(run, ADMIT_ANSWERED);
}

void admit_queue_woken(struct admission_waiter *aw)
{
    struct queue_state *s = aw->ud;
    struct admit_run *run = s->run;
    struct admit_req *r = run->req;
    if (s->handed) {
        /* it ended while being handed on: give the slot back and let it go */
        if (!aw->evicted)
            admission_done(s->adm, r->ops->now_ms(r));
        s->handed = false;
        r->ops->release(r);
        return;
    }
    if (run->finished)
        return;
    s->waiting = false;
    stop_timers(r);
    if (aw->evicted && aw->gone) {
        gone(r);
        admit_resume(run, ADMIT_ANSWERED);
        return;
    }
    if (aw->evicted) {
        shed(r, s->adm, "made room for a higher priority");
        admit_resume(run, ADMIT_ANSWERED);
        return;
    }
    s->slot = true;
    admit_count(r, ADMIT_EVENT_QUEUE_WAIT, (r->ops->now_ms(r) - s->queued_ms) * 1000);
    admit_resume(run, ADMIT_GO);
}

static void settle(struct admit_run *run, void *state)
{
    struct queue_state *s = state;
    struct admit_req *r = run->req;
    if (s->waiting) {
        s->waiting = false;
        stop_timers(r);
        if (!admission_remove(s->adm, &s->waiter)) {
            /* already handed to this worker's ready list: keep the request until it arrives */
            s->handed = true;
            r->ops->hold(r);
        }
    }
    if (s->slot) {
        s->slot = false;
        admission_done(s->adm, r->ops->now_ms(r));
    }
}

const struct admit_step admit_step_queue = {.name = "queue",
                                            .state_size = sizeof(struct queue_state),
                                            .check = check,
                                            .settle = settle,
                                            .timer = timer};
