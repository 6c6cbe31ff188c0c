/*
 * server_deadline.c — the listener's deadlines: the header, idle and linger
 * timeouts and the "process pipelined input now" kick, for every connection
 * of one server, on one uv_timer. Private to the listener (server_int.h).
 */
#include <stdint.h>

#include "http/server_int.h"

/*
 * A connection waits for at most one thing at a time (a head, the next
 * request, the end of a linger, its turn to process pipelined input), and
 * every kind of wait has one duration for the whole listener. So each kind is
 * a FIFO list that is also ordered by deadline: a connection is appended when
 * it starts waiting, unlinked in O(1) when it stops, and one uv_timer per
 * server, due at the earliest head, expires what has passed. This costs a
 * connection three words instead of a uv_timer_t (152 bytes) and keeps the
 * loop's timer heap at one entry per server.
 */
#define SERVER_LINGER_MS 2000
/* A draining listener keeps a connection with no request in progress this long: a request
   already on its way is answered (with Connection: close) instead of meeting a closed socket. */
#define SERVER_DRAIN_GRACE_MS 1000
_Static_assert(CT_KICKING + 1 == SERVER_DEADLINE_LISTS, "one list per kind of wait");

static uint64_t deadline_duration(const struct server *s, int kind)
{
    switch (kind) {
    case CT_HEAD:
        return s->cfg->header_timeout_ms;
    case CT_IDLE:
        return s->cfg->idle_timeout_ms;
    case CT_LINGER:
        return SERVER_LINGER_MS;
    case CT_DRAINED:
        return SERVER_DRAIN_GRACE_MS;
    default:
        return 0;
    }
}

static void deadline_arm(struct server *s, uint64_t due)
{
    uint64_t now = uv_now(s->loop);
    s->timer_due = due;
    uv_timer_start(&s->timer, server_on_deadline_timer, due > now ? due - now : 0, 0);
}

void server_timer_unlink(struct server_conn *c)
{
    if (c->tkind == CT_NONE)
        return;
    struct server *s = c->srv;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        s->timer_head[c->tkind] = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        s->timer_tail[c->tkind] = c->tprev;
    c->tnext = c->tprev = NULL;
    c->tkind = CT_NONE;
}

/* c now waits for `kind` (CT_NONE: for nothing), from now. */
void server_timer_set(struct server_conn *c, int kind)
{
    server_timer_unlink(c);
    if (kind == CT_NONE)
        return;
    struct server *s = c->srv;
    c->deadline_ms = uv_now(s->loop) + deadline_duration(s, kind);
    c->tkind = (signed char)kind;
    c->tprev = s->timer_tail[kind];
    if (c->tprev)
        c->tprev->tnext = c;
    else
        s->timer_head[kind] = c;
    s->timer_tail[kind] = c;
    if (c->deadline_ms < s->timer_due)
        deadline_arm(s, c->deadline_ms);
}

void server_on_deadline_timer(uv_timer_t *t)
{
    struct server *s = t->data;
    uint64_t now = uv_now(s->loop);
    s->timer_due = UINT64_MAX;
    /* The kicks queued so far, and not those their processing queues (one pass each). */
    if (s->timer_head[CT_KICK]) {
        s->timer_head[CT_KICKING] = s->timer_head[CT_KICK];
        s->timer_tail[CT_KICKING] = s->timer_tail[CT_KICK];
        s->timer_head[CT_KICK] = s->timer_tail[CT_KICK] = NULL;
        for (struct server_conn *c = s->timer_head[CT_KICKING]; c; c = c->tnext)
            c->tkind = CT_KICKING;
    }
    for (int kind = 0; kind < SERVER_DEADLINE_LISTS; kind++) {
        if (kind == CT_KICK)
            continue;
        /* what is appended while this runs is due later (durations are at least 1 ms) */
        struct server_conn *c;
        while ((c = s->timer_head[kind]) && c->deadline_ms <= now) {
            server_timer_unlink(c);
            server_conn_deadline(c, kind);
        }
    }
    uint64_t due = UINT64_MAX;
    for (int kind = 0; kind < SERVER_DEADLINE_LISTS; kind++)
        if (s->timer_head[kind] && s->timer_head[kind]->deadline_ms < due)
            due = s->timer_head[kind]->deadline_ms;
    if (due != UINT64_MAX)
        deadline_arm(s, due);
    else
        uv_timer_stop(&s->timer);
}
