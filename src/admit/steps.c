/* steps — the order of the admission steps (see steps.h). A new limit: its step_X.c and
   one line here. */
#include "admit/steps.h"

const struct admit_step *const admit_steps[] = {
    &admit_step_key,       &admit_step_budget, &admit_step_degrade,
    &admit_step_ratelimit, &admit_step_shared, &admit_step_queue,
};
const size_t admit_nsteps = sizeof admit_steps / sizeof admit_steps[0];
