/*
 * sim — the sim transport: simulated providers inside the binary.
 *
 * A provider with base_url sim://PROFILE gets connections that never touch
 * the network: the HTTP client writes its request into the connection as it
 * would into a socket, the request is parsed (http1) and answered by the
 * fakegen engine, and the answer's bytes come back through on_data on uv
 * timers with the delays fakegen asks for. So the demo goes through the same
 * HTTP parsing, deadlines, failover and relay as a real provider would.
 *
 * One struct sim_conn per connection, alive from open to the close callback
 * of its timer. States:
 *
 *   CONNECTING --tick--> READING --request complete--> RESPONDING
 *   RESPONDING --end: keep-alive--> READING (another request may follow;
 *                                    release(keep) parks it in the pool)
 *   RESPONDING --end: close/cut/reset--> FAILING --tick--> DEAD (on_error EOF)
 *   RESPONDING --end: hang--> DEAD (silent)
 *   READING --bad request--> FAILING
 *
 * The timer is the only source of callbacks: on_connect, each segment when
 * its delay is up, and on_error. Every release bumps `gen`; code that calls
 * into the user checks it afterwards, because the user may let go of the
 * connection (and a new user may even take it from the pool) inside the call.
 *
 * The request counters that pick among a profile's alternatives are shared
 * by every worker thread (fakegen_counters is atomic), so "20%status=503"
 * holds for the process as a whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sim/fakegen.h"
#include "proto/http1.h"
#include "net/transport.h"

/* Bound on request bytes buffered per connection (head + body). */
#define SIM_MAX_REQUEST (64u << 20)
/* Zero-delay segments delivered in one timer tick before yielding to the loop. */
#define SIM_TICK_BUDGET 64

enum sim_state { SIM_CONNECTING, SIM_READING, SIM_RESPONDING, SIM_FAILING, SIM_DEAD };

struct sim_conn {
    struct transport_conn base;
    uv_timer_t timer;
    struct transport_bucket *bucket; /* one reference, dropped at free */
    enum sim_state state;

    const struct transport_events *ev;
    void *ud;
    unsigned gen;
    bool attached;
    bool reused;

    char *behavior;
    bool paused;
    bool due; /* the pending step's time came while paused */
    bool closing;
    bool hung; /* ended with "hang": bytes are still accepted */
    enum transport_err fail_err;

    struct buf in; /* request bytes not yet answered */
    struct fakegen *gen_resp;
    struct fakegen_seg pending; /* the next step, pulled from gen_resp */
    bool pending_end;
    uint32_t extra_ms; /* slowread: added to the first segment's delay */
};

static struct fakegen_counters sim_counters;

static void sim_tick(uv_timer_t *t);

static void sim_arm(struct sim_conn *c, uint32_t delay_ms)
{
    c->due = false;
    uv_timer_start(&c->timer, sim_tick, delay_ms, 0);
}

static void sim_fail(struct sim_conn *c, enum transport_err err)
{
    fakegen_free(c->gen_resp);
    c->gen_resp = NULL;
    c->state = SIM_FAILING;
    c->fail_err = err;
    sim_arm(c, 0);
}

/* Pulls the next step of the response and arms the timer for it. */
static void sim_pull(struct sim_conn *c)
{
    c->pending_end = fakegen_next(c->gen_resp, &c->pending) == 0;
    uint32_t delay = c->pending.delay_ms;
    if (c->extra_ms) {
        delay = delay + c->extra_ms < delay ? UINT32_MAX : delay + c->extra_ms;
        c->extra_ms = 0;
    }
    sim_arm(c, delay);
}

/* Starts answering once the buffered bytes hold a whole request. */
static void sim_try_request(struct sim_conn *c)
{
    if (c->state != SIM_READING || c->in.len == 0) return;
    struct http1_request req;
    int head = http1_parse_request(c->in.data, c->in.len, &req);
    if (head == HTTP1_NEED_MORE) return;
    if (head < 0 || req.head.chunked) {
        /* The gateway always frames with Content-Length; anything else is a bug to surface. */
        sim_fail(c, TRANSPORT_ERR_IO);
        return;
    }
    uint64_t body_len = req.head.has_content_length ? req.head.content_length : 0;
    if (body_len > SIM_MAX_REQUEST) {
        sim_fail(c, TRANSPORT_ERR_IO);
        return;
    }
    if (c->in.len - (size_t)head < body_len) return;
    struct fakegen_request fr = {
        .method = req.method.p,
        .method_len = req.method.len,
        .path = req.target.p,
        .path_len = req.target.len,
        .body = c->in.data + head,
        .body_len = (size_t)body_len,
        .client_close = req.head.conn_close,
    };
    /* fakegen copies what it needs, so the request bytes can go right after. */
    if (fakegen_new(&fr, c->behavior, &sim_counters, &c->gen_resp)) {
        sim_fail(c, TRANSPORT_ERR_IO);
        return;
    }
    buf_consume(&c->in, (size_t)head + (size_t)body_len);
    c->extra_ms = fakegen_get_opts(c->gen_resp)->slowread_ms;
    c->state = SIM_RESPONDING;
    sim_pull(c);
}

/* The pending step is due: deliver it and any zero-delay steps after it. */
static void sim_deliver(struct sim_conn *c)
{
    for (int budget = SIM_TICK_BUDGET; budget > 0; budget--) {
        if (c->paused) {
            c->due = true;
            return;
        }
        if (c->pending_end) {
            enum fakegen_end end = c->pending.end;
            fakegen_free(c->gen_resp);
            c->gen_resp = NULL;
            switch (end) {
            case FAKEGEN_END_KEEP_ALIVE:
                c->state = SIM_READING;
                sim_try_request(c); /* a request written during the answer */
                return;
            case FAKEGEN_END_HANG:
                c->state = SIM_DEAD;
                c->hung = true;
                return;
            case FAKEGEN_END_CLOSE:
            case FAKEGEN_END_RESET:
                c->state = SIM_DEAD;
                c->ev->on_error(c->ud, TRANSPORT_ERR_EOF);
                return;
            }
            return;
        }
        unsigned gen = c->gen;
        c->ev->on_data(c->ud, c->pending.data, c->pending.len);
        if (gen != c->gen || c->state != SIM_RESPONDING) return;
        c->pending_end = fakegen_next(c->gen_resp, &c->pending) == 0;
        if (c->pending.delay_ms) {
            sim_arm(c, c->pending.delay_ms);
            return;
        }
    }
    sim_arm(c, 0); /* let the loop breathe between bursts */
}

static void sim_tick(uv_timer_t *t)
{
    struct sim_conn *c = t->data;
    if (!c->attached || c->closing) return;
    switch (c->state) {
    case SIM_CONNECTING:
        c->state = SIM_READING;
        if (!c->reused) transport_pool_count_open(transport_bucket_pool(c->bucket), true);
        c->ev->on_connect(c->ud, c->reused);
        return;
    case SIM_FAILING:
        c->state = SIM_DEAD;
        c->ev->on_error(c->ud, c->fail_err);
        return;
    case SIM_RESPONDING:
        sim_deliver(c);
        return;
    case SIM_READING:
    case SIM_DEAD:
        return;
    }
}

static int sim_set_behavior(struct sim_conn *c, const struct cfg_provider *p)
{
    const char *b = p->sim_profile ? p->sim_profile : "";
    if (c->behavior && strcmp(c->behavior, b) == 0) return 0;
    char *copy = strdup(b);
    if (!copy) return -ENOMEM;
    free(c->behavior);
    c->behavior = copy;
    return 0;
}

static void sim_attach(struct sim_conn *c, const struct transport_events *ev, void *ud, bool reused)
{
    c->ev = ev;
    c->ud = ud;
    c->attached = true;
    c->reused = reused;
    c->paused = false;
    c->state = SIM_CONNECTING;
    sim_arm(c, 0);
}

static void sim_closed(uv_handle_t *h)
{
    struct sim_conn *c = h->data;
    fakegen_free(c->gen_resp);
    buf_free(&c->in);
    free(c->behavior);
    transport_bucket_unref(c->bucket);
    free(c);
}

static void sim_close(struct sim_conn *c)
{
    c->closing = true;
    c->attached = false;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, sim_closed);
}

static int sim_open(struct transport_pool *pool, const struct cfg_provider *p,
                    const struct sockaddr *addr, uint32_t connect_timeout_ms,
                    const struct transport_events *ev, void *ud, struct transport_conn **out)
{
    int err = 0;
    struct transport_bucket *b = transport_pool_bucket(pool, &transport_sim_ops, p, &err);
    if (!b) return err;
    /* Every sim provider shares one bucket: a simulated connection has no peer,
       so any idle one can serve any profile once its behaviour is updated. */
    struct transport_conn *idle = transport_bucket_take(b);
    if (idle) {
        transport_bucket_unref(b); /* the idle connection holds its own reference */
        struct sim_conn *c = (struct sim_conn *)idle;
        if (sim_set_behavior(c, p)) {
            sim_close(c);
            return -ENOMEM;
        }
        sim_attach(c, ev, ud, true);
        *out = &c->base;
        return 0;
    }
    struct sim_conn *c = calloc(1, sizeof *c);
    if (!c || sim_set_behavior(c, p)) {
        free(c);
        transport_pool_count_open(pool, false);
        transport_bucket_unref(b);
        return -ENOMEM;
    }
    c->base.ops = &transport_sim_ops;
    c->bucket = b;
    buf_init(&c->in, SIM_MAX_REQUEST);
    uv_timer_init(transport_pool_loop(pool), &c->timer);
    c->timer.data = c;
    sim_attach(c, ev, ud, false);
    *out = &c->base;
    return 0;
}

static int sim_write(struct transport_conn *base, const char *data, size_t len)
{
    struct sim_conn *c = (struct sim_conn *)base;
    switch (c->state) {
    case SIM_CONNECTING:
        return -ENOTCONN;
    case SIM_FAILING:
        return -EPIPE;
    case SIM_DEAD:
        /* After a hang the peer still "accepts" bytes; after an error it does not. */
        return c->hung ? 0 : -EPIPE;
    case SIM_READING:
    case SIM_RESPONDING:
        break;
    }
    if (buf_append(&c->in, data, len)) return -ENOBUFS;
    sim_try_request(c);
    return 0;
}

static void sim_pause(struct transport_conn *base, bool paused)
{
    struct sim_conn *c = (struct sim_conn *)base;
    c->paused = paused;
    if (!paused && c->due && c->state == SIM_RESPONDING) sim_arm(c, 0);
}

static void sim_release(struct transport_conn *base, bool keep_alive)
{
    struct sim_conn *c = (struct sim_conn *)base;
    c->gen++;
    if (c->closing) return;
    c->attached = false;
    c->ev = NULL;
    c->ud = NULL;
    uv_timer_stop(&c->timer);
    if (keep_alive && c->state == SIM_READING && c->in.len == 0 && !c->gen_resp &&
        transport_bucket_park(c->bucket, base))
        return;
    sim_close(c);
}

const struct transport_ops transport_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .write = sim_write,
    .pause = sim_pause,
    .release = sim_release,
};
