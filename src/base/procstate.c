#include "base/procstate.h"

#include <stdatomic.h>

static _Atomic int phase = PROCSTATE_STARTING;

void procstate_set(enum procstate s)
{
    atomic_store(&phase, (int)s);
}

enum procstate procstate_get(void)
{
    return (enum procstate)atomic_load(&phase);
}

const char *procstate_name(enum procstate s)
{
    switch (s) {
    case PROCSTATE_STARTING:
        return "starting";
    case PROCSTATE_SERVING:
        return "serving";
    case PROCSTATE_UPGRADING:
        return "upgrading";
    case PROCSTATE_STOPPING:
        return "stopping";
    case PROCSTATE_DRAINING:
        return "draining";
    }
    return "unknown";
}

bool procstate_ready(enum procstate s)
{
    return s == PROCSTATE_SERVING || s == PROCSTATE_UPGRADING;
}
