/* step_degrade — graceful degradation: above the model's load threshold (admission.h,
   admission_degrade: hysteresis, share, classes) the request goes to the model's fallback.
   Not twice: a request the budget already sent elsewhere stays there. */
#include "admit/steps.h"
#include "config/config.h"

static enum admit_verdict check(struct admit_run *run, void *state)
{
    (void)state;
    struct admit_req *r = run->req;
    const struct cfg_model *m = r->model, *fb;
    if (!r->degraded && m->degrade.enabled && m->degrade.to &&
        admission_degrade(r->adm, &m->degrade, r->cls) && (fb = config_find_model(r->cfg, m->degrade.to))) {
        r->degraded = true;
        admit_count(r, ADMIT_EVENT_DEGRADED, 0);
        r->ops->set_model(r, fb);
    }
    return ADMIT_GO;
}

const struct admit_step admit_step_degrade = {.name = "degrade", .check = check};
