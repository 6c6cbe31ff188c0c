/* admit — the step runner (see admit.h). */
#include "admit/admit.h"

#include <string.h>

static void *slot(struct admit_run *run, size_t i)
{
    return run->steps[i]->state_size ? run->state + run->off[i] : NULL;
}

int admit_init(struct admit_run *run, const struct admit_step *const *steps, size_t n,
               struct admit_req *req)
{
    memset(run, 0, sizeof *run);
    if (n > ADMIT_MAX_STEPS)
        return -1;
    const size_t align = _Alignof(max_align_t);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        run->off[i] = used;
        used += (steps[i]->state_size + align - 1) / align * align;
        if (used > ADMIT_STATE_MAX)
            return -1;
    }
    run->req = req;
    run->steps = steps;
    run->n = n;
    return 0;
}

enum admit_verdict admit_run(struct admit_run *run)
{
    while (!run->finished && run->next < run->n) {
        size_t i = run->next;
        enum admit_verdict v = run->steps[i]->check(run, slot(run, i));
        if (v == ADMIT_WAIT) {
            run->parked = true;
            return ADMIT_WAIT;
        }
        if (v == ADMIT_ANSWERED) {
            admit_finish(run); /* the answer usually ended the request already */
            return ADMIT_ANSWERED;
        }
        run->next++;
    }
    return run->finished ? ADMIT_ANSWERED : ADMIT_GO;
}

void admit_resume(struct admit_run *run, enum admit_verdict v)
{
    if (run->finished || !run->parked || v == ADMIT_WAIT)
        return;
    run->parked = false;
    if (v == ADMIT_ANSWERED) {
        admit_finish(run);
        return;
    }
    run->next++;
    if (admit_run(run) == ADMIT_GO)
        run->req->ops->go(run->req);
}

void admit_timer(struct admit_run *run, enum admit_timer which)
{
    if (run->finished || !run->parked)
        return;
    const struct admit_step *s = run->steps[run->next];
    if (s->timer)
        s->timer(run, slot(run, run->next), which);
}

void admit_finish(struct admit_run *run)
{
    if (run->finished || !run->steps)
        return;
    run->finished = true;
    /* The parked step first (it took the latest), then the ones that went, newest first. */
    size_t i = run->parked ? run->next + 1 : run->next;
    run->parked = false;
    while (i-- > 0)
        if (run->steps[i]->settle)
            run->steps[i]->settle(run, slot(run, i));
}

const char *admit_parked_at(const struct admit_run *run)
{
    return run->parked && !run->finished ? run->steps[run->next]->name : NULL;
}
