/* Unit tests for the admission step runner (admit.h) with fake steps: order, GO, WAIT
   and resume, ANSWERED, settle in reverse exactly once for the steps that went (and the
   parked one), settle on an early answer, timers to the parked step, the state slots,
   and the gateway's own steps fitting the run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "admit/admit.h"
#include "admit/steps.h"

/* What happened, in order: "c:A" a check, "s:A" a settle, "t:A" a timer, "go", "answer". */
static char trail[512];
static int go_calls, answer_calls;

static void note(const char *what, const char *name)
{
    size_t n = strlen(trail);
    snprintf(trail + n, sizeof trail - n, "%s%s%s", n ? " " : "", what, name ? name : "");
}

/* A fake step's slot: the verdict it gives and what it saw. */
struct fake_state {
    int settled;
    int checks;
    long canary;
};

static enum admit_verdict verdict_of(const char *name);

static enum admit_verdict fake_check(struct admit_run *run, void *state, const char *name)
{
    struct fake_state *s = state;
    assert_int_equal(s->canary, 0); /* zeroed, and no other step writes into it */
    s->checks++;
    note("c:", name);
    enum admit_verdict v = verdict_of(name);
    if (v == ADMIT_ANSWERED) {
        /* as the request does: answer, which ends the request (and settles the run) */
        run->req->ops->answer(run->req, ADMIT_REFUSE_RATE_LIMITED, "no", 1, OUTCOME_RATE_LIMITED);
    }
    return v;
}

static void fake_settle(struct admit_run *run, void *state, const char *name)
{
    (void)run;
    struct fake_state *s = state;
    s->settled++;
    note("s:", name);
}

static struct admit_run *the_run;

static void fake_answer(struct admit_req *r, enum admit_refusal why, const char *msg, int ra, enum outcome o)
{
    (void)r, (void)why, (void)msg, (void)ra, (void)o;
    answer_calls++;
    note("answer", NULL);
    admit_finish(the_run); /* the request's end */
}

static void fake_go(struct admit_req *r)
{
    (void)r;
    go_calls++;
    note("go", NULL);
}

static const struct admit_ops fake_ops = {.answer = fake_answer, .go = fake_go};

/* Verdicts per step name, set by each test. */
static enum admit_verdict v_a, v_b, v_c;
static enum admit_verdict verdict_of(const char *name)
{
    return name[0] == 'A' ? v_a : name[0] == 'B' ? v_b : v_c;
}

#define FAKE(N)                                                                                    \
    static enum admit_verdict check_##N(struct admit_run *run, void *st)                          \
    {                                                                                              \
        return fake_check(run, st, #N);                                                            \
    }                                                                                              \
    static void settle_##N(struct admit_run *run, void *st)                                        \
    {                                                                                              \
        fake_settle(run, st, #N);                                                                  \
    }
FAKE(A)
FAKE(B)
FAKE(C)

static void timer_B(struct admit_run *run, void *st, enum admit_timer which)
{
    (void)run, (void)st;
    note(which == ADMIT_TIMER_TICK ? "tick:" : "deadline:", "B");
}

static const struct admit_step step_a = {"A", sizeof(struct fake_state), check_A, settle_A, NULL};
static const struct admit_step step_b = {"B", sizeof(struct fake_state), check_B, settle_B, timer_B};
static const struct admit_step step_c = {"C", sizeof(struct fake_state), check_C, settle_C, NULL};
static const struct admit_step *const abc[] = {&step_a, &step_b, &step_c};

static struct admit_req req;
static struct admit_run run;

static int setup(void **state)
{
    (void)state;
    trail[0] = '\0';
    go_calls = answer_calls = 0;
    v_a = v_b = v_c = ADMIT_GO;
    req = (struct admit_req){.ops = &fake_ops};
    assert_int_equal(admit_init(&run, abc, 3, &req), 0);
    the_run = &run;
    return 0;
}

static struct fake_state *slot_of(size_t i)
{
    return (struct fake_state *)(run.state + run.off[i]);
}

static void test_all_go_in_order_settle_reverse_once(void **state)
{
    (void)state;
    assert_int_equal(admit_run(&run), ADMIT_GO);
    assert_string_equal(trail, "c:A c:B c:C");
    assert_null(admit_parked_at(&run));
    admit_finish(&run);
    admit_finish(&run); /* the request's end after an early settle: nothing more */
    assert_string_equal(trail, "c:A c:B c:C s:C s:B s:A");
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(slot_of(i)->checks, 1);
        assert_int_equal(slot_of(i)->settled, 1);
    }
    assert_int_equal(go_calls, 0); /* a GO without a wait: the caller goes on itself */
}

static void test_answered_settles_only_those_that_went(void **state)
{
    (void)state;
    v_b = ADMIT_ANSWERED;
    assert_int_equal(admit_run(&run), ADMIT_ANSWERED);
    assert_string_equal(trail, "c:A c:B answer s:A");
    admit_finish(&run);
    assert_string_equal(trail, "c:A c:B answer s:A");
    assert_int_equal(slot_of(1)->settled, 0);
    assert_int_equal(slot_of(2)->checks, 0);
}

static void test_answered_first_step_settles_nothing(void **state)
{
    (void)state;
    v_a = ADMIT_ANSWERED;
    assert_int_equal(admit_run(&run), ADMIT_ANSWERED);
    assert_string_equal(trail, "c:A answer");
}

static void test_wait_then_resume_go(void **state)
{
    (void)state;
    v_b = ADMIT_WAIT;
    assert_int_equal(admit_run(&run), ADMIT_WAIT);
    assert_string_equal(trail, "c:A c:B");
    assert_string_equal(admit_parked_at(&run), "B");
    admit_timer(&run, ADMIT_TIMER_TICK);
    admit_resume(&run, ADMIT_WAIT); /* still waiting: nothing moves */
    assert_string_equal(trail, "c:A c:B tick:B");
    /* B's slot freed: the run goes on from the step after B, not from the start */
    admit_resume(&run, ADMIT_GO);
    assert_string_equal(trail, "c:A c:B tick:B c:C go");
    assert_int_equal(go_calls, 1);
    assert_int_equal(slot_of(0)->checks, 1);
    assert_int_equal(slot_of(1)->checks, 1);
    assert_null(admit_parked_at(&run));
    admit_resume(&run, ADMIT_GO); /* a stray second wake-up */
    admit_timer(&run, ADMIT_TIMER_DEADLINE);
    assert_int_equal(go_calls, 1);
    admit_finish(&run);
    assert_string_equal(trail, "c:A c:B tick:B c:C go s:C s:B s:A");
}

static void test_wait_then_resume_answered(void **state)
{
    (void)state;
    v_b = ADMIT_WAIT;
    assert_int_equal(admit_run(&run), ADMIT_WAIT);
    admit_timer(&run, ADMIT_TIMER_DEADLINE);
    /* B's deadline: it answers (ending the request: B is settled, parked, so it can leave
       its queue) and resumes with ANSWERED */
    fake_answer(&req, ADMIT_REFUSE_RATE_LIMITED, "late", 1, OUTCOME_QUEUE_TIMEOUT);
    admit_resume(&run, ADMIT_ANSWERED);
    assert_string_equal(trail, "c:A c:B deadline:B answer s:B s:A");
    assert_int_equal(slot_of(2)->checks, 0);
    assert_int_equal(go_calls, 0);
    admit_resume(&run, ADMIT_GO); /* after the end: ignored */
    assert_int_equal(go_calls, 0);
    assert_int_equal(slot_of(2)->checks, 0);
}

static void test_request_ends_while_parked(void **state)
{
    (void)state;
    v_b = ADMIT_WAIT;
    assert_int_equal(admit_run(&run), ADMIT_WAIT);
    admit_finish(&run); /* the client went away */
    assert_string_equal(trail, "c:A c:B s:B s:A");
    admit_timer(&run, ADMIT_TIMER_DEADLINE);
    admit_resume(&run, ADMIT_GO);
    assert_string_equal(trail, "c:A c:B s:B s:A");
    assert_int_equal(go_calls, 0);
}

static void test_wait_resume_then_later_answer(void **state)
{
    (void)state;
    v_a = ADMIT_WAIT;
    v_c = ADMIT_ANSWERED;
    assert_int_equal(admit_run(&run), ADMIT_WAIT);
    admit_resume(&run, ADMIT_GO);
    assert_string_equal(trail, "c:A c:B c:C answer s:B s:A");
    assert_int_equal(go_calls, 0);
}

static void test_slots_laid_out_apart_and_bounded(void **state)
{
    (void)state;
    for (size_t i = 1; i < 3; i++)
        assert_true(run.off[i] >= run.off[i - 1] + sizeof(struct fake_state));
    static const struct admit_step big = {"big", ADMIT_STATE_MAX + 1, check_A, NULL, NULL};
    static const struct admit_step *const too_big[] = {&big};
    struct admit_run r2;
    assert_int_equal(admit_init(&r2, too_big, 1, &req), -1);
    const struct admit_step *many[ADMIT_MAX_STEPS + 1];
    for (size_t i = 0; i < ADMIT_MAX_STEPS + 1; i++)
        many[i] = &step_a;
    assert_int_equal(admit_init(&r2, many, ADMIT_MAX_STEPS + 1, &req), -1);
    assert_int_equal(admit_init(&r2, many, 0, &req), 0);
    assert_int_equal(admit_run(&r2), ADMIT_GO);
    admit_finish(&r2);
}

static void test_gateway_steps_fit_in_order(void **state)
{
    (void)state;
    struct admit_run r2;
    assert_int_equal(admit_init(&r2, admit_steps, admit_nsteps, &req), 0);
    const char *want[] = {"key", "budget", "degrade", "ratelimit", "shared", "queue"};
    assert_int_equal(admit_nsteps, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < admit_nsteps; i++)
        assert_string_equal(admit_steps[i]->name, want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_all_go_in_order_settle_reverse_once, setup),
        cmocka_unit_test_setup(test_answered_settles_only_those_that_went, setup),
        cmocka_unit_test_setup(test_answered_first_step_settles_nothing, setup),
        cmocka_unit_test_setup(test_wait_then_resume_go, setup),
        cmocka_unit_test_setup(test_wait_then_resume_answered, setup),
        cmocka_unit_test_setup(test_request_ends_while_parked, setup),
        cmocka_unit_test_setup(test_wait_resume_then_later_answer, setup),
        cmocka_unit_test_setup(test_slots_laid_out_apart_and_bounded, setup),
        cmocka_unit_test_setup(test_gateway_steps_fit_in_order, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
