/*
 * read_budget — the per-iteration bound on upstream reading (see the header).
 *
 * What an iteration costs is measured, not guessed: from its first upstream read to the
 * uv_prepare before the next poll, so the reads' processing, the writes to clients they
 * caused (flushed after the poll) and whatever else ran are all in it. That time over
 * the reads served is the cost of a read (moving averages of both), and READ_BUDGET_NS
 * over it the reads the next iteration may serve. Two clock readings per iteration, none per
 * read.
 */
#include "net/read_budget.h"

#include <stdlib.h>

/* Bounds on the reads one iteration may serve, whatever the measured cost says. */
#define READ_BUDGET_MAX_READS 4096u

/* Reads postponed by every budget of the process (relaxed: a count for /metrics). */
static unsigned long postponed_all;

struct read_budget {
    uv_check_t check;
    uv_prepare_t prepare;
    uv_idle_t idle;
    uint64_t iter_start;  /* uv_hrtime of this iteration's first read */
    /* moving averages over the iterations that read (weight 1/4 to the newest): their time
       and their reads, so that one iteration of one read and much other work weighs as one
       read, not as an iteration */
    uint64_t avg_ns, avg_reads; /* both scaled by 16 */
    unsigned served;      /* reads this iteration */
    unsigned allowance;   /* reads an iteration may serve */
    struct read_budget_entry *head, *tail;
    unsigned waiting;
    unsigned long postponed;
    unsigned open_handles;
    void (*done)(void *ud);
    void *done_ud;
};

static void fifo_remove(struct read_budget *b, struct read_budget_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        b->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        b->tail = e->prev;
    e->next = e->prev = NULL;
    e->waiting = e->stopped = false;
    b->waiting--;
    if (!b->head) uv_idle_stop(&b->idle);
}

/* After the poll: the FIFO's head resumes, as many as an iteration may serve. */
static void on_check(uv_check_t *h)
{
    struct read_budget *b = h->data;
    unsigned n = b->allowance;
    while (n-- > 0 && b->head) {
        struct read_budget_entry *e = b->head;
        bool stopped = e->stopped;
        fifo_remove(b, e);
        e->resumed = true;
        if (stopped) e->resume(e);
    }
}

/* Before the next poll: what the iteration's reads cost, and so what the next may serve. */
static void on_prepare(uv_prepare_t *h)
{
    struct read_budget *b = h->data;
    if (b->served == 0) return;
    uint64_t ns = (uv_hrtime() - b->iter_start) * 16, reads = (uint64_t)b->served * 16;
    b->avg_ns = b->avg_reads ? (3 * b->avg_ns + ns) / 4 : ns;
    b->avg_reads = b->avg_reads ? (3 * b->avg_reads + reads) / 4 : reads;
    uint64_t n = b->avg_ns ? READ_BUDGET_NS * b->avg_reads / b->avg_ns : READ_BUDGET_MAX_READS;
    b->allowance = n < READ_BUDGET_MIN_READS   ? READ_BUDGET_MIN_READS
                   : n > READ_BUDGET_MAX_READS ? READ_BUDGET_MAX_READS
                                               : (unsigned)n;
    b->served = 0;
}

/* Waiting connections are work: the loop must not block on them. */
static void on_idle(uv_idle_t *h)
{
    (void)h;
}

struct read_budget *read_budget_new(uv_loop_t *loop)
{
    struct read_budget *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    uv_check_init(loop, &b->check);
    uv_prepare_init(loop, &b->prepare);
    uv_idle_init(loop, &b->idle);
    b->check.data = b->prepare.data = b->idle.data = b;
    b->open_handles = 3;
    b->allowance = READ_BUDGET_MAX_READS;
    uv_check_start(&b->check, on_check);
    uv_prepare_start(&b->prepare, on_prepare);
    uv_unref((uv_handle_t *)&b->check);
    uv_unref((uv_handle_t *)&b->prepare);
    uv_unref((uv_handle_t *)&b->idle);
    return b;
}

static void on_closed(uv_handle_t *h)
{
    struct read_budget *b = h->data;
    if (--b->open_handles > 0) return;
    void (*done)(void *) = b->done;
    void *ud = b->done_ud;
    free(b);
    if (done) done(ud);
}

void read_budget_close(struct read_budget *b, void (*done)(void *ud), void *ud)
{
    while (b->head)
        fifo_remove(b, b->head);
    b->done = done;
    b->done_ud = ud;
    uv_close((uv_handle_t *)&b->check, on_closed);
    uv_close((uv_handle_t *)&b->prepare, on_closed);
    uv_close((uv_handle_t *)&b->idle, on_closed);
}

bool read_budget_may_read(struct read_budget *b, struct read_budget_entry *e)
{
    if (b->head && !e->resumed) return false; /* behind the ones already waiting */
    if (b->served >= b->allowance) return false;
    if (b->served++ == 0) b->iter_start = uv_hrtime();
    e->resumed = false;
    return true;
}

bool read_budget_wait(struct read_budget *b, struct read_budget_entry *e)
{
    if (e->waiting) return e->stopped;
    e->waiting = true;
    e->stopped = b->waiting >= READ_BUDGET_ARMED;
    e->resumed = false;
    e->next = NULL;
    e->prev = b->tail;
    if (b->tail)
        b->tail->next = e;
    else
        b->head = e;
    b->tail = e;
    if (b->waiting++ == 0) uv_idle_start(&b->idle, on_idle);
    b->postponed++;
    __atomic_fetch_add(&postponed_all, 1, __ATOMIC_RELAXED);
    return e->stopped;
}

void read_budget_leave(struct read_budget *b, struct read_budget_entry *e)
{
    if (e->waiting) fifo_remove(b, e);
    e->resumed = false;
}

unsigned read_budget_waiting(const struct read_budget *b)
{
    return b->waiting;
}

unsigned long read_budget_postponed(const struct read_budget *b)
{
    return b->postponed;
}

unsigned long read_budget_postponed_total(void)
{
    return __atomic_load_n(&postponed_all, __ATOMIC_RELAXED);
}

unsigned read_budget_allowance(const struct read_budget *b)
{
    return b->allowance;
}
