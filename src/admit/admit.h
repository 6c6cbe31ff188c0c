/*
 * admit — admission as an ordered list of steps, and the runner that walks a
 * request through them.
 *
 * A step is {name, state_size, check, settle, timer}. check looks at the
 * request (through struct admit_req, a small view the request fills in) and
 * says
 *
 *   ADMIT_GO        — passed; whatever it took (a slot, tokens) is given back
 *                     by its settle when the request ends;
 *   ADMIT_WAIT      — not now: the request is parked at this step until the
 *                     step calls admit_resume (a slot freed, a deadline
 *                     passed); while parked the step may arm the request's
 *                     two timers (admit_arm), which fire into its timer hook;
 *   ADMIT_ANSWERED  — the step has answered the client itself (a 429, a
 *                     403, ...) through admit_req.ops->answer.
 *
 * Each step's state lives in its own slot of the run (state_size bytes,
 * zeroed when the run starts, aligned for any type), not in the request:
 * a new limit is one file (the step) and one line (admit_steps in
 * steps.c). The runner calls settle exactly once per step that said GO,
 * in reverse order, when the request ends (admit_finish, also run on an early
 * answer); a step parked in WAIT at that moment is settled too, so it can
 * leave its queue.
 *
 * Like nginx's PREACCESS phase: a limit registers itself as a handler, may
 * answer "later" with a timer and resumes the request from where it stopped.
 * Everything runs on the request's own loop; nothing here locks.
 */
#ifndef UNBUSY_ADMIT_H
#define UNBUSY_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acct/outcome.h"

#define ADMIT_MAX_STEPS 12
#define ADMIT_STATE_MAX 512 /* bytes for all the steps' slots together */

enum admit_verdict { ADMIT_GO, ADMIT_WAIT, ADMIT_ANSWERED };

/* What a step refuses with (the request maps it onto its error kinds). */
enum admit_refusal {
    ADMIT_REFUSE_RATE_LIMITED, /* 429 rate_limit_exceeded */
    ADMIT_REFUSE_QUOTA,        /* 429 insufficient_quota */
    ADMIT_REFUSE_GONE,         /* 404 model_not_found: a reload removed the model it waited for */
};

/* The request's timers a parked step may use. */
enum admit_timer { ADMIT_TIMER_DEADLINE, ADMIT_TIMER_TICK };

struct admit_run;
struct admit_req;
struct config;
struct cfg_model;
struct admission;
struct key_info;
struct jsonx_request;
struct ratelimit;
struct ratelimit_usage;
struct budgets;
struct shared_limits;
struct redis;

/* What a step reports for the gateway's metrics (the request counts it). */
enum admit_event {
    ADMIT_EVENT_DEGRADED,   /* sent to a fallback model under load */
    ADMIT_EVENT_SHED,       /* refused by the queue (full, no queue, evicted, deadline) */
    ADMIT_EVENT_QUEUE_WAIT, /* left the queue to start; value: the wait in microseconds */
};

struct admit_step {
    const char *name;
    size_t state_size; /* its slot in the run; 0: none */
    enum admit_verdict (*check)(struct admit_run *run, void *state);
    /* May be NULL. Runs once: after GO, or while parked, when the request ends. */
    void (*settle)(struct admit_run *run, void *state);
    /* May be NULL. A timer the step armed while parked has fired. */
    void (*timer)(struct admit_run *run, void *state, enum admit_timer which);
};

/* What the request does for the steps (the client connection is its business). */
struct admit_ops {
    /* Answers the client with the refusal and ends the request (which settles the run). */
    void (*answer)(struct admit_req *r, enum admit_refusal why, const char *msg, int retry_after_s,
                   enum outcome outcome);
    /* The request goes to another model (a budget's cheaper one, a fallback under load):
       the request updates r->model and r->adm. */
    void (*set_model)(struct admit_req *r, const struct cfg_model *m);
    /* What the ended request used, for settling token estimates. */
    void (*usage)(struct admit_req *r, struct ratelimit_usage *out);
    /* A stream client starts waiting: send it the response head now (keep-alives follow). */
    void (*waiting_head)(struct admit_req *r);
    /* A keep-alive to a waiting stream client (only after waiting_head). */
    void (*keepalive)(struct admit_req *r);
    /* Arms (ms > 0) or stops (ms == 0) one of the request's timers; repeat in ms, 0 once. */
    void (*arm)(struct admit_req *r, enum admit_timer which, uint64_t ms, uint64_t repeat);
    /* Keep the request's memory alive after it ended (a wake-up is still on its way), and
       let it go when it has arrived. */
    void (*hold)(struct admit_req *r);
    void (*release)(struct admit_req *r);
    /* A monotonic clock in ms (injected, for the tests). */
    uint64_t (*now_ms)(struct admit_req *r);
    /* Every step said GO after a wait: start the request. */
    void (*go)(struct admit_req *r);
    /* A step's event, for the metrics (model: r->model at the time). */
    void (*counted)(struct admit_req *r, enum admit_event ev, uint64_t value);
};

/* The request as the steps see it. The request fills it before admit_start; steps read it
   and change model/adm only through ops->set_model, cls and degraded themselves. */
struct admit_req {
    const struct admit_ops *ops;
    struct config *cfg;
    const struct cfg_model *model;
    struct admission *adm;         /* the model's admission queue */
    const struct key_info *key;    /* NULL: the gateway is open */
    const char *limit_key;         /* the key's rate-limit name, or NULL */
    const struct jsonx_request *scan;
    bool client_stream;
    long asked_priority;           /* from the client's headers; -1: not asked */
    long asked_queue_timeout_ms;
    int cls;                       /* priority class, 0 highest (the key step sets it) */
    bool degraded;                 /* sent to another model already */
    struct ratelimit *rl;          /* NULL: no rate limits */
    struct budgets *budgets;       /* NULL: no budgets */
    struct shared_limits *shared;  /* limits shared across replicas; NULL: no redis: */
    struct redis *redis;           /* this loop's Redis client (with shared) */
    void *owner;                   /* the worker a queued request is woken on */
};

struct admit_run {
    struct admit_req *req;
    const struct admit_step *const *steps;
    size_t n;
    size_t next;    /* steps [0, next) said GO; steps[next] runs next, or is parked */
    bool parked;
    bool finished;  /* settled: nothing runs any more */
    size_t off[ADMIT_MAX_STEPS];
    _Alignas(max_align_t) unsigned char state[ADMIT_STATE_MAX];
};

/* ops->counted, when the request has one. */
static inline void admit_count(struct admit_req *r, enum admit_event ev, uint64_t value)
{
    if (r->ops->counted)
        r->ops->counted(r, ev, value);
}

/* The gateway's steps, in order (steps.c). */
extern const struct admit_step *const admit_steps[];
extern const size_t admit_nsteps;

/* Lays out the steps' slots (zeroed). -1 when there are too many steps or their states do
   not fit ADMIT_STATE_MAX (a build-time mistake: the unit tests catch it). */
int admit_init(struct admit_run *run, const struct admit_step *const *steps, size_t n,
               struct admit_req *req);
/* Runs the steps from where the run stopped. GO: every step passed, the caller goes on.
   WAIT: parked (ops->go continues it). ANSWERED: refused, the run is settled. */
enum admit_verdict admit_run(struct admit_run *run);
/* Called by the parked step: GO continues with the next steps (ops->go when all passed);
   ANSWERED: the step answered the client (the run is settled); WAIT: stays parked. */
void admit_resume(struct admit_run *run, enum admit_verdict v);
/* A request timer fired: to the parked step's timer hook. */
void admit_timer(struct admit_run *run, enum admit_timer which);
/* The request has ended (or is about to): settle once, in reverse. Idempotent. */
void admit_finish(struct admit_run *run);
/* The parked step's name, NULL when not parked (logs, tests). */
const char *admit_parked_at(const struct admit_run *run);

#endif
