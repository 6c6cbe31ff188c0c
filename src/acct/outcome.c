#include "acct/outcome.h"

#include <string.h>

static const char *const outcome_names[OUTCOME__COUNT] = {
    [OUTCOME_NONE] = "none",
    [OUTCOME_OK] = "ok",
    [OUTCOME_CLIENT_ERROR] = "client_error",
    [OUTCOME_REJECTED] = "rejected",
    [OUTCOME_UPSTREAM_FAILED] = "upstream_failed",
    [OUTCOME_MID_STREAM_ERROR] = "mid_stream_error",
    [OUTCOME_CLIENT_CLOSED] = "client_closed",
    [OUTCOME_SHED] = "shed",
    [OUTCOME_QUEUE_TIMEOUT] = "queue_timeout",
    [OUTCOME_RATE_LIMITED] = "rate_limited",
    [OUTCOME_BUDGET_EXHAUSTED] = "budget_exhausted",
};

const char *outcome_name(enum outcome o)
{
    return (unsigned)o < OUTCOME__COUNT ? outcome_names[o] : outcome_names[OUTCOME_NONE];
}

bool outcome_from_name(const char *s, size_t len, enum outcome *out)
{
    for (int i = OUTCOME_NONE + 1; s && i < OUTCOME__COUNT; i++) {
        if (strlen(outcome_names[i]) == len && memcmp(s, outcome_names[i], len) == 0) {
            *out = (enum outcome)i;
            return true;
        }
    }
    return false;
}

enum outcome outcome_or_status(enum outcome o, int status)
{
    if (o != OUTCOME_NONE && (unsigned)o < OUTCOME__COUNT)
        return o;
    return status < 400 ? OUTCOME_OK : OUTCOME_REJECTED;
}
