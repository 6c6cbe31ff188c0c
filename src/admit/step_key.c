/* step_key — the request's priority class: its key's priority (the default one when the
   gateway is open), or a lower one the client asked for; a key may lower its own
   priority, never raise it. Takes nothing, so nothing to settle. */
#include "admit/keys.h"
#include "admit/steps.h"

static enum admit_verdict check(struct admit_run *run, void *state)
{
    (void)state;
    struct admit_req *r = run->req;
    r->cls = r->key ? r->key->priority : KEYS_PRIORITY_DEFAULT;
    long asked = r->asked_priority;
    if (asked >= 0 && asked <= KEYS_PRIORITY_MAX && asked >= (r->key ? r->key->priority : 0))
        r->cls = (int)asked;
    return ADMIT_GO;
}

const struct admit_step admit_step_key = {.name = "key", .check = check};
