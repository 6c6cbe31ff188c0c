/*
 * read_budget — how much upstream reading one loop iteration does.
 *
 * Without a bound, a burst of upstream data (the next events of hundreds of
 * streams arriving together) is relayed in one loop iteration: each event a
 * read, its processing and its write to the client, 15–20 µs, up to a
 * thousand per epoll_wait — and a health probe or a new request that became
 * readable in the same iteration waits tens of milliseconds behind them.
 *
 * The budget: an iteration serves as many upstream reads as fit in
 * READ_BUDGET_NS, counted from what the last iterations cost per read (the
 * read, its processing, the client writes it caused; read_budget.c). A
 * connection about to read past that does not (its bytes stay in the
 * kernel, its reading stops) and waits in one FIFO; after each poll as many
 * waiting connections as an iteration may serve resume from the FIFO's
 * head. While the FIFO is not empty, a connection that was not resumed from
 * it waits behind it too, so every stream advances in turn and none starves
 * behind new arrivals. Work is only postponed by iterations, never dropped:
 * the bytes sit in the socket's receive buffer, whose window holds the
 * sender back.
 *
 * One per worker loop, owned by the transport pool (transport.h); a
 * transport's connection embeds a struct read_budget_entry. A uv_check
 * resumes waiting connections after each poll, a uv_prepare measures each
 * iteration before the next poll, and a uv_idle keeps the loop from
 * blocking while connections wait. Nothing is shared between threads.
 */
#ifndef UNBUSY_READ_BUDGET_H
#define UNBUSY_READ_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A loop iteration's time with upstream reads in it: about what a probe or a new request
   waits behind a burst of upstream data, per iteration it needs. At 1 ms, 64 busy keep-alive
   clients on one worker (an iteration of 3-4 ms unbounded) lost about 9 % of their
   requests/s to the smaller batches; at 2 ms nothing measurable (bench/README.md). */
#define READ_BUDGET_NS 2000000u
/* Reads an iteration serves however costly the last ones were. */
#define READ_BUDGET_MIN_READS 16u
/* Waiting connections that stay armed in epoll (each reported again per iteration, for a
   few hundred nanoseconds); past them, reading stops (two epoll_ctl calls, a few µs). */
#define READ_BUDGET_ARMED 64u

struct read_budget;

struct read_budget_entry {
    struct read_budget_entry *next, *prev;
    /* Called from the loop when the entry leaves the FIFO: start reading again. */
    void (*resume)(struct read_budget_entry *e);
    bool waiting; /* in the FIFO */
    bool stopped; /* waiting with its reading stopped: resume() starts it again */
    bool resumed; /* taken from the FIFO: its next read goes ahead of the FIFO */
};

/* NULL when out of memory. The handles are unreferenced: they never keep a loop alive. */
struct read_budget *read_budget_new(uv_loop_t *loop);
/* Closes the handles; done(ud) from the loop once they are closed, then the budget is freed.
   Entries still waiting are dropped from the FIFO without a resume. */
void read_budget_close(struct read_budget *b, void (*done)(void *ud), void *ud);

/* Before a read: true to read now (counted as served); false to leave the bytes in the kernel
   and call read_budget_wait. */
bool read_budget_may_read(struct read_budget *b, struct read_budget_entry *e);
/* Queues e at the FIFO's tail (once). true: the caller stops reading (e->stopped), and
   e->resume follows from a later iteration; false: it stays armed, is reported again and asks
   again (may_read says yes once its turn came). */
bool read_budget_wait(struct read_budget *b, struct read_budget_entry *e);
/* Takes e out of the FIFO (the connection closes or is released); no resume follows. */
void read_budget_leave(struct read_budget *b, struct read_budget_entry *e);

/* Connections waiting now, and reads postponed since the start. */
unsigned read_budget_waiting(const struct read_budget *b);
unsigned long read_budget_postponed(const struct read_budget *b);
/* Reads postponed by every budget of the process since the start (any thread). */
unsigned long read_budget_postponed_total(void);
/* Reads the next iteration may serve. */
unsigned read_budget_allowance(const struct read_budget *b);

#endif
