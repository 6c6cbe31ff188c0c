/*
 * Unit tests for read_budget: the per-iteration bound on upstream reads, on a real libuv loop
 * (its check and prepare handles do the resuming and the measuring).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "net/read_budget.h"

struct ent {
    struct read_budget_entry e;
    int resumes;
    int order; /* when it was resumed, counting from 1 */
};

static int resume_count;

static void on_resume(struct read_budget_entry *e)
{
    struct ent *x = (struct ent *)e;
    x->resumes++;
    x->order = ++resume_count;
}

struct fx {
    uv_loop_t loop;
    uv_idle_t keep; /* the budget's handles are unreferenced: this keeps uv_run iterating */
    struct read_budget *b;
    bool closed;
};

static void closed_cb(void *ud)
{
    *(bool *)ud = true;
}

static void keep_cb(uv_idle_t *h)
{
    (void)h;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_idle_init(&f->loop, &f->keep);
    uv_idle_start(&f->keep, keep_cb);
    f->b = read_budget_new(&f->loop);
    assert_non_null(f->b);
    resume_count = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    read_budget_close(f->b, closed_cb, &f->closed);
    uv_close((uv_handle_t *)&f->keep, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void spin_us(unsigned us)
{
    uint64_t until = uv_hrtime() + us * 1000ull;
    while (uv_hrtime() < until) {
    }
}

/* One loop iteration: the prepare (measure) before the poll, the check (resume) after it. */
static void iterate(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Iterations of reads that each cost us µs, until an iteration may serve only the minimum;
   then that minimum read in one iteration, which spends its reads. */
static void spend_on_costly_reads(struct fx *f, struct ent *x, unsigned us)
{
    for (int i = 0; i < 10; i++) {
        iterate(f);
        for (unsigned j = 0; j < READ_BUDGET_MIN_READS; j++) {
            assert_true(read_budget_may_read(f->b, &x->e));
            spin_us(us);
        }
    }
    iterate(f);
    assert_int_equal(read_budget_allowance(f->b), READ_BUDGET_MIN_READS);
    for (unsigned i = 0; i < READ_BUDGET_MIN_READS; i++)
        assert_true(read_budget_may_read(f->b, &x->e));
}

static void test_allowance_follows_the_cost(void **state)
{
    struct fx *f = *state;
    struct ent a = {.e.resume = on_resume};
    /* Nothing measured yet: a burst is read whole. */
    for (int i = 0; i < 100; i++)
        assert_true(read_budget_may_read(f->b, &a.e));
    assert_int_equal(read_budget_allowance(f->b), 4096);
    /* Reads of 200 µs each: 10 fit in the budget, fewer than the minimum. */
    spend_on_costly_reads(f, &a, 200);
    assert_false(read_budget_may_read(f->b, &a.e)); /* the iteration's reads are spent */
    /* Cheap reads again: the allowance grows back (a moving average: within some iterations,
       however long one of them was kept from the CPU). */
    for (int i = 0; i < 300 && read_budget_allowance(f->b) <= 4 * READ_BUDGET_MIN_READS; i++) {
        iterate(f);
        for (unsigned j = 0; j < READ_BUDGET_MIN_READS; j++)
            assert_true(read_budget_may_read(f->b, &a.e));
        iterate(f);
    }
    assert_true(read_budget_allowance(f->b) > 4 * READ_BUDGET_MIN_READS);
    assert_int_equal(read_budget_postponed(f->b), 0); /* nothing was queued */
}

static void test_fifo_order_and_fairness(void **state)
{
    struct fx *f = *state;
    enum { N = 100 };
    struct ent e[N];
    struct ent newcomer = {.e.resume = on_resume};
    for (int i = 0; i < N; i++)
        e[i] = (struct ent){.e.resume = on_resume};
    spend_on_costly_reads(f, &newcomer, 300);
    /* The first 64 to wait stay armed; the rest stop reading. */
    unsigned long total = read_budget_postponed_total();
    for (int i = 0; i < N; i++) {
        assert_false(read_budget_may_read(f->b, &e[i].e));
        assert_int_equal(read_budget_wait(f->b, &e[i].e), i >= (int)READ_BUDGET_ARMED);
    }
    assert_false(read_budget_wait(f->b, &e[0].e)); /* twice: still one place */
    assert_true(read_budget_wait(f->b, &e[N - 1].e));
    assert_int_equal(read_budget_waiting(f->b), N);
    assert_int_equal(read_budget_postponed(f->b), N);
    assert_int_equal(read_budget_postponed_total() - total, N); /* /metrics' count */
    /* An armed one reported again before its turn waits on. */
    assert_false(read_budget_may_read(f->b, &e[20].e));
    /* A connection that was not waiting goes behind the FIFO, even with budget left. */
    iterate(f);
    assert_false(read_budget_may_read(f->b, &newcomer.e));
    /* The check took the first 16, in order; each reads ahead of the FIFO, armed ones with
       no call (their reading never stopped). */
    for (int i = 0; i < N; i++) {
        assert_int_equal(e[i].e.resumed, i < (int)READ_BUDGET_MIN_READS);
        assert_int_equal(e[i].resumes, 0);
    }
    assert_true(read_budget_may_read(f->b, &e[0].e));
    assert_false(e[0].e.resumed); /* one read ahead, then like any other */
    assert_int_equal(read_budget_waiting(f->b), N - READ_BUDGET_MIN_READS);
    /* One that leaves while waiting is never resumed. */
    read_budget_leave(f->b, &e[30].e);
    assert_false(e[30].e.waiting);
    read_budget_leave(f->b, &e[80].e);
    assert_false(e[80].e.stopped);
    for (int k = 0; k < 10; k++)
        iterate(f);
    assert_int_equal(read_budget_waiting(f->b), 0);
    /* The stopped ones were started again once each, in the order they came. */
    int order = 0;
    for (int i = 0; i < N; i++) {
        if (i < (int)READ_BUDGET_ARMED || i == 80) {
            assert_int_equal(e[i].resumes, 0);
            continue;
        }
        assert_int_equal(e[i].resumes, 1);
        assert_true(e[i].order > order);
        order = e[i].order;
        assert_false(e[i].e.stopped);
    }
    assert_false(e[30].e.resumed);
    assert_true(e[31].e.resumed);
    /* The FIFO empty: anyone reads again. */
    assert_true(read_budget_may_read(f->b, &newcomer.e));
}

/* Closing with entries waiting drops them: no resume from a closed budget. */
static void test_close_with_waiters(void **state)
{
    struct fx *f = *state;
    struct ent e = {.e.resume = on_resume};
    read_budget_wait(f->b, &e.e);
    assert_int_equal(read_budget_waiting(f->b), 1);
    read_budget_close(f->b, closed_cb, &f->closed);
    assert_false(e.e.waiting);
    for (int i = 0; i < 3; i++)
        iterate(f);
    assert_true(f->closed);
    assert_int_equal(e.resumes, 0);
    f->b = read_budget_new(&f->loop); /* for the teardown */
    f->closed = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allowance_follows_the_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_order_and_fairness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_waiters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
