/*
 * proxy_wait — waiting for a deployment instead of answering 503 at once.
 *
 * When no deployment of the model can take the request (every one cooling down
 * after a Retry-After, its breaker open, at its concurrency limit), the request
 * waits for the earliest one to come back (runtime_model_returns_at) and tries
 * again then, as a request waits in the admission queue: within the model's
 * queue timeout (a client's x-unbusy-queue-timeout may shorten it) and the
 * request's total deadline, with the response head and ": queued" comments
 * for a stream client. It does not wait when nothing comes back in time (all
 * disabled, credentials refused, the earliest return after the deadline) or
 * when the model has no queue (queue.max or queue.timeout 0): then, and at
 * the deadline, the answer is the 503 of before, with a Retry-After saying when
 * the earliest deployment returns.
 *
 *   no deployment ──▶ earliest return ≤ deadline? ──no──▶ answer (503, Retry-After)
 *                        │ yes
 *                        ▼
 *                     WAITING (queue_timer at the return, keep-alives on hedge_timer)
 *                        │ timer
 *                        ▼
 *                     proxy_try_start: started ─▶ the attempt goes on
 *                                      none ────▶ back to the top
 *
 * Owned by the request (struct preq: wait_since_ms); proxy.c calls it from
 * where it would have answered "none could be tried".
 */
#include <stdio.h>

#include "proxy/proxy_int.h"

#define WAIT_MIN_MS 20 /* a deployment "back now" that still refused: look again after this */

static void stop(struct preq *p)
{
    uv_timer_stop(&p->queue_timer);
    uv_timer_stop(&p->hedge_timer);
}

static void on_wake(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (p->finished)
        return;
    stop(p);
    proxy_try_start(p);
}

static void on_keepalive(uv_timer_t *t)
{
    struct preq *p = t->data;
    if (!p->finished && p->head_sent)
        server_stream_write(p->conn, ": queued\n\n", 10);
}

/* The longest this request may wait for a deployment, from when it began to. */
static uint64_t wait_budget_ms(struct preq *p)
{
    const struct cfg_queue *q = &p->model->queue;
    uint64_t budget = q->max == 0 ? 0 : q->timeout_ms;
    if (p->adm.asked_queue_timeout_ms >= 0 && (uint64_t)p->adm.asked_queue_timeout_ms < budget)
        budget = (uint64_t)p->adm.asked_queue_timeout_ms; /* a client may only shorten it */
    return budget;
}

bool proxy_wait_for_deployment(struct preq *p)
{
    uint64_t now = runtime_now_ms();
    bool skip[PROXY_MAX_DEPS];
    proxy_excluded_mask(p, skip);
    uint64_t back = runtime_model_returns_at(p->rm, skip, now);
    if (back != UINT64_MAX && back > now) {
        /* The honest Retry-After, whether it waits or not. */
        uint64_t s = (back - now + 999) / 1000;
        if (p->retry_after_s < 0 || (uint64_t)p->retry_after_s > s)
            p->retry_after_s = (int)(s > 3600 ? 3600 : s);
    }
    if (back == UINT64_MAX)
        return false;
    if (!p->wait_since_ms)
        p->wait_since_ms = now;
    uint64_t budget = wait_budget_ms(p);
    uint64_t waited = now - p->wait_since_ms;
    uint64_t left = waited >= budget ? 0 : budget - waited;
    uint64_t remaining = proxy_remaining_ms(p);
    if (remaining < left)
        left = remaining;
    uint64_t delay = back > now ? back - now : 0;
    if (delay < WAIT_MIN_MS)
        delay = WAIT_MIN_MS;
    if (delay > left)
        return false; /* nothing returns before the deadline: say so now */
    if (p->client_stream) {
        /* As in the admission queue: the head now and comments while waiting, so the
           client's SDK does not time out; nothing sent yet stops a failover later. */
        if (!p->head_sent) {
            proxy_waiting_head(p);
            server_stream_write(p->conn, ": queued\n\n", 10);
        }
        uint32_t ka = p->model->queue.keepalive_ms;
        if (ka)
            uv_timer_start(&p->hedge_timer, on_keepalive, ka, ka);
    }
    uv_timer_start(&p->queue_timer, on_wake, delay, 0);
    return true;
}
