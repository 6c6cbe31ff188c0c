/* redis — a non-blocking Redis client on one loop (see redis.h). */
#include "net/redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "net/transport.h"

#define TICK_MS 50
#define READ_LIMIT (RESP_MAX_BULK + (64u << 10))
#define MAX_RING 65536

const uint64_t redis_latency_bounds_us[REDIS_LATENCY_BUCKETS - 1] = {100,  250,   500,  1000,
                                                                     2500, 10000, 50000};

enum redis_state { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_UP, ST_CLOSING };

struct pending {
    redis_reply_fn cb; /* NULL: forgotten */
    void *ud;
    uint64_t sent_us;
    uint64_t sent_ms; /* loop time, for the overdue check */
};

struct redis {
    uv_loop_t *loop;
    struct redis_options o;
    struct cfg_provider target; /* host, port, TLS for the transport */
    struct transport_pool *pool;
    struct transport_conn *conn;
    enum redis_state st;
    uint32_t conn_gen; /* bumped when a connection ends: stops a reply loop in progress */
    uv_timer_t tick;
    uint64_t retry_at_ms;
    uint32_t backoff_ms;
    bool logged_down; /* the current outage has been logged */
    char last_why[160]; /* and why, so a new reason is logged once too */
    bool ever_up;
    struct pending *ring;
    uint32_t cap, count;
    uint64_t head_seq; /* the oldest outstanding command's ticket */
    struct buf rbuf;
    unsigned handshake_left;
    void (*done)(void *ud);
    void *done_ud;
};

static void noop_done(void *ud)
{
    (void)ud;
}

static struct pending *slot(struct redis *r, uint64_t seq)
{
    return &r->ring[seq % r->cap];
}

static void stat_add(struct redis *r, size_t off, uint64_t n)
{
    if (r->o.stats)
        atomic_fetch_add_explicit((atomic_ullong *)((char *)r->o.stats + off), n,
                                  memory_order_relaxed);
}
#define ADD(r, field, n) stat_add((r), offsetof(struct redis_stats, field), (n))

static void set_up(struct redis *r, bool up)
{
    if (r->o.stats) {
        if (up)
            atomic_fetch_add(&r->o.stats->clients_up, 1);
        else
            atomic_fetch_sub(&r->o.stats->clients_up, 1);
    }
    if (r->o.on_state) r->o.on_state(r->o.ud, up);
}

/* Every outstanding command gets err, oldest first. */
static void fail_pending(struct redis *r, int err)
{
    while (r->count) {
        struct pending p = *slot(r, r->head_seq);
        r->head_seq++;
        r->count--;
        if (err == REDIS_ERR_LOST) ADD(r, lost, 1);
        if (p.cb) p.cb(p.ud, NULL, err);
    }
}

static void connection_lost(struct redis *r, const char *why)
{
    if (r->st == ST_CLOSING || r->st == ST_DOWN) return;
    bool was_up = r->st == ST_UP;
    if (r->conn) {
        transport_release(r->conn, false);
        r->conn = NULL;
    }
    r->conn_gen++;
    buf_reset(&r->rbuf);
    r->st = ST_DOWN;
    ADD(r, failures, 1);
    if (was_up) {
        log_warn("redis (%s): connection to %s lost: %s; limits and breakers are per replica until "
                 "it returns",
                 r->o.name, r->o.cfg->url_shown, why);
        r->logged_down = true;
        r->backoff_ms = REDIS_BACKOFF_MIN_MS;
        set_up(r, false);
    } else if (!r->logged_down || strcmp(why, r->last_why) != 0) { /* once per outage and reason */
        log_warn("redis (%s): cannot connect to %s: %s; limits and breakers are per replica until "
                 "it answers (retrying with backoff)",
                 r->o.name, r->o.cfg->url_shown, why);
        r->logged_down = true;
    }
    snprintf(r->last_why, sizeof r->last_why, "%s", why);
    r->retry_at_ms = uv_now(r->loop) + r->backoff_ms;
    r->backoff_ms =
        r->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
    fail_pending(r, REDIS_ERR_LOST);
}

static int push(struct redis *r, const char *cmd, size_t len, redis_reply_fn cb, void *ud,
                uint64_t *ticket)
{
    if (r->count == r->cap) return -ENOBUFS;
    int rc = transport_write(r->conn, cmd, len);
    if (rc < 0) return rc == -ENOBUFS ? -ENOBUFS : -ENOTCONN;
    uint64_t seq = r->head_seq + r->count;
    *slot(r, seq) = (struct pending){
        .cb = cb, .ud = ud, .sent_us = uv_hrtime() / 1000, .sent_ms = uv_now(r->loop)};
    r->count++;
    if (ticket) *ticket = seq;
    ADD(r, sent, 1);
    return 0;
}

static void handshake_reply(void *ud, const struct resp_reply *reply, int err)
{
    struct redis *r = ud;
    if (err) return; /* the connection is gone already */
    if (reply->items[0].type == RESP_ERROR) {
        char why[160];
        const struct resp_item *it = &reply->items[0];
        /* Redis's own message ("WRONGPASS invalid username-password pair"): no secret in it */
        snprintf(why, sizeof why, "the handshake was refused: %.*s",
                 (int)(it->len > 120 ? 120 : it->len), it->str);
        connection_lost(r, why);
        return;
    }
    if (--r->handshake_left) return;
    r->st = ST_UP;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    r->ever_up = true;
    r->logged_down = false;
    ADD(r, connects, 1);
    log_info("redis (%s): up (%s)", r->o.name, r->o.cfg->url_shown);
    set_up(r, true);
}

static void on_connect(void *ud, bool reused)
{
    struct redis *r = ud;
    r->st = ST_HANDSHAKE;
    struct buf cmd;
    buf_init(&cmd, 4096);
    int rc = 0;
    r->handshake_left = 0;
    const struct cfg_redis *c = r->o.cfg;
    if (c->password) {
        const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
        rc |= resp_command(&cmd, c->user ? 3 : 2, argv, NULL);
        r->handshake_left++;
    }
    if (c->db) {
        char db[12];
        snprintf(db, sizeof db, "%u", c->db);
        const char *argv[2] = {"SELECT", db};
        rc |= resp_command(&cmd, 2, argv, NULL);
        r->handshake_left++;
    }
    const char *ping[1] = {"PING"};
    rc |= resp_command(&cmd, 1, ping, NULL);
    r->handshake_left++;
    /* one write, one ring slot per command: the replies come back in this order */
    if (rc == 0 && r->cap - r->count >= r->handshake_left) {
        rc = transport_write(r->conn, cmd.data, cmd.len);
        for (unsigned i = 0; rc == 0 && i < r->handshake_left; i++) {
            *slot(r, r->head_seq + r->count) = (struct pending){.cb = handshake_reply,
                                                                .ud = r,
                                                                .sent_us = uv_hrtime() / 1000,
                                                                .sent_ms = uv_now(r->loop)};
            r->count++;
        }
        if (rc == 0) ADD(r, sent, r->handshake_left);
    } else {
        rc = -ENOMEM;
    }
    if (cmd.len) memset(cmd.data, 0, cmd.len); /* it held the password */
    buf_free(&cmd);
    if (rc < 0) connection_lost(r, "cannot write the handshake");
}

static void deliver(struct redis *r, const struct resp_reply *reply)
{
    struct pending p = *slot(r, r->head_seq);
    r->head_seq++;
    r->count--;
    ADD(r, replies, 1);
    if (reply->items[0].type == RESP_ERROR) ADD(r, error_replies, 1);
    if (r->o.stats) {
        uint64_t us = uv_hrtime() / 1000 - p.sent_us;
        size_t b = 0;
        while (b < REDIS_LATENCY_BUCKETS - 1 && us > redis_latency_bounds_us[b])
            b++;
        ADD(r, latency_buckets[b], 1);
        ADD(r, latency_sum_us, us);
    }
    if (p.cb) p.cb(p.ud, reply, 0);
}

static void on_data(void *ud, char *data, size_t len)
{
    struct redis *r = ud;
    if (buf_append(&r->rbuf, data, len) < 0) {
        connection_lost(r, "a reply is too large");
        return;
    }
    uint32_t gen = r->conn_gen;
    static _Thread_local struct resp_reply reply; /* large: not on the stack */
    size_t off = 0;
    while (off < r->rbuf.len) {
        long n = resp_parse(r->rbuf.data + off, r->rbuf.len - off, &reply);
        if (n == RESP_NEED_MORE) break;
        if (n < 0) {
            connection_lost(r, n == RESP_ERR_LIMIT ? "a reply is too large" : "a malformed reply");
            return;
        }
        if (r->count == 0) {
            connection_lost(r, "a reply nobody asked for");
            return;
        }
        off += (size_t)n;
        deliver(r, &reply);
        if (r->conn_gen != gen) return; /* the callback ended the connection (or the client) */
    }
    buf_consume(&r->rbuf, off);
}

static void on_error(void *ud, enum transport_err err)
{
    struct redis *r = ud;
    char why[64];
    snprintf(why, sizeof why, "%s",
             err == TRANSPORT_ERR_EOF ? "closed by the server" : transport_err_name(err));
    connection_lost(r, why);
}

static const struct transport_events events = {
    .on_connect = on_connect, .on_data = on_data, .on_error = on_error};

static void start_connect(struct redis *r)
{
    r->st = ST_CONNECTING;
    int rc =
        transport_open(r->pool, &r->target, r->o.cfg->connect_timeout_ms, &events, r, &r->conn);
    if (rc < 0) {
        r->conn = NULL;
        r->st = ST_CONNECTING; /* so connection_lost records it */
        connection_lost(r, strerror(-rc));
    }
}

static void on_tick(uv_timer_t *t)
{
    struct redis *r = t->data;
    uint64_t now = uv_now(r->loop);
    if (r->st == ST_DOWN && now >= r->retry_at_ms) {
        start_connect(r);
        return;
    }
    /* Replies come in order: when the oldest is overdue, the connection is stuck. */
    if ((r->st == ST_UP || r->st == ST_HANDSHAKE) && r->count &&
        now - slot(r, r->head_seq)->sent_ms > r->o.cfg->connect_timeout_ms)
        connection_lost(r, "a reply is overdue");
}

struct redis *redis_new(uv_loop_t *loop, const struct redis_options *o)
{
    struct redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->loop = loop;
    r->o = *o;
    if (!r->o.name) r->o.name = "redis";
    r->cap = o->max_pending ? o->max_pending : REDIS_DEFAULT_MAX_PENDING;
    if (r->cap > MAX_RING) r->cap = MAX_RING;
    r->ring = calloc(r->cap, sizeof *r->ring);
    r->pool = transport_pool_new(loop);
    if (!r->ring || !r->pool) {
        free(r->ring);
        if (r->pool) transport_pool_close(r->pool, noop_done, NULL);
        free(r);
        return NULL;
    }
    const struct cfg_redis *c = o->cfg;
    r->target.kind = CFG_PROVIDER_OPENAI;
    r->target.name = "redis";
    r->target.host = c->host;
    r->target.port = c->port;
    r->target.tls = c->tls;
    r->target.ca_file = c->ca_file;
    r->target.tls_verify = c->tls_verify;
    r->target.connect_timeout_ms = c->connect_timeout_ms;
    r->target.max_idle_conns = 0; /* never pooled: one long-lived connection */
    buf_init(&r->rbuf, READ_LIMIT);
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    r->st = ST_DOWN;
    r->retry_at_ms = 0; /* the first tick connects */
    if (c->tls) transport_pool_warm(r->pool, &r->target);
    uv_timer_init(loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
    if (r->o.stats) atomic_fetch_add(&r->o.stats->clients, 1);
    return r;
}

bool redis_is_up(const struct redis *r)
{
    return r && r->st == ST_UP;
}

uint32_t redis_outstanding(const struct redis *r)
{
    return r ? r->count : 0;
}

int redis_send(struct redis *r, const char *cmd, size_t len, redis_reply_fn cb, void *ud,
               uint64_t *ticket)
{
    if (!r || r->st != ST_UP) {
        if (r) ADD(r, refused, 1);
        return -ENOTCONN;
    }
    int rc = push(r, cmd, len, cb, ud, ticket);
    if (rc < 0) ADD(r, refused, 1);
    return rc;
}

int redis_send_batch(struct redis *r, const char *cmds, size_t len, uint32_t ncmds)
{
    if (!r || r->st != ST_UP) {
        if (r) ADD(r, refused, ncmds);
        return -ENOTCONN;
    }
    if (ncmds == 0) return 0;
    if (r->cap - r->count < ncmds) {
        ADD(r, refused, ncmds);
        return -ENOBUFS;
    }
    int rc = transport_write(r->conn, cmds, len);
    if (rc < 0) {
        ADD(r, refused, ncmds);
        return rc == -ENOBUFS ? -ENOBUFS : -ENOTCONN;
    }
    for (uint32_t i = 0; i < ncmds; i++) {
        *slot(r, r->head_seq + r->count) =
            (struct pending){.cb = NULL, .sent_us = uv_hrtime() / 1000, .sent_ms = uv_now(r->loop)};
        r->count++;
    }
    ADD(r, sent, ncmds);
    return 0;
}

void redis_forget(struct redis *r, uint64_t ticket)
{
    if (r && ticket >= r->head_seq && ticket < r->head_seq + r->count) slot(r, ticket)->cb = NULL;
}

static void pool_closed(void *ud)
{
    struct redis *r = ud;
    void (*done)(void *) = r->done;
    void *done_ud = r->done_ud;
    buf_free(&r->rbuf);
    free(r->ring);
    free(r);
    if (done) done(done_ud);
}

static void tick_closed(uv_handle_t *h)
{
    struct redis *r = h->data;
    transport_pool_close(r->pool, pool_closed, r);
}

static void finish_close(uv_timer_t *t)
{
    struct redis *r = t->data;
    fail_pending(r, REDIS_ERR_CLOSED);
    uv_close((uv_handle_t *)&r->tick, tick_closed);
}

void redis_close(struct redis *r, void (*done)(void *ud), void *ud)
{
    if (!r || r->st == ST_CLOSING) return;
    if (r->st == ST_UP) set_up(r, false);
    if (r->o.stats) atomic_fetch_sub(&r->o.stats->clients, 1);
    r->st = ST_CLOSING;
    r->conn_gen++;
    if (r->conn) {
        transport_release(r->conn, false);
        r->conn = NULL;
    }
    r->done = done;
    r->done_ud = ud;
    uv_timer_stop(&r->tick);
    uv_timer_start(&r->tick, finish_close, 0, 0); /* the callbacks from the loop, not from here */
}
