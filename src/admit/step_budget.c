/* step_budget — the key's budget (budget.h): refused when spent, or sent to the cheaper
   model the budget names. Reads the ledger's totals only, so nothing to settle (the
   ledger records what the request cost when it ends). */
#include <time.h>

#include "admit/budget.h"
#include "admit/keys.h"
#include "admit/steps.h"
#include "config/config.h"

static enum admit_verdict check(struct admit_run *run, void *state)
{
    (void)state;
    struct admit_req *r = run->req;
    if (!r->budgets || !r->key)
        return ADMIT_GO;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* budgets are per UTC day and month */
    const char *to = NULL;
    char why[256];
    enum budget_verdict bv = budgets_check(r->budgets, r->key->name,
                                           (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &to, why,
                                           sizeof why);
    if (bv == BUDGET_REFUSE) {
        r->ops->answer(r, ADMIT_REFUSE_QUOTA, why, -1, OUTCOME_BUDGET_EXHAUSTED);
        return ADMIT_ANSWERED;
    }
    const struct cfg_model *cheaper = bv == BUDGET_DEGRADE && to ? config_find_model(r->cfg, to) : NULL;
    if (cheaper && cheaper != r->model) {
        r->ops->set_model(r, cheaper);
        r->degraded = true;
    }
    return ADMIT_GO;
}

const struct admit_step admit_step_budget = {.name = "budget", .check = check};
