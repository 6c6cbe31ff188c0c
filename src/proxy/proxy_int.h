/*
 * proxy_int — what proxy.c (the request: choosing deployments, failover,
 * hedging, answering the client, finalize) and attempt.c (one exchange with
 * one deployment: the upstream's events, deadlines, SSE, assembling) share.
 * Internal to those two files.
 */
#ifndef UNBUSY_PROXY_INT_H
#define UNBUSY_PROXY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "admit/admission.h"
#include "admit/admit.h"
#include "proto/assemble.h"
#include "base/buf.h"
#include "http/server.h"
#include "http/errors.h"
#include "route/health.h"
#include "proto/jsonx.h"
#include "acct/ledger.h"
#include "acct/outcome.h"
#include "config/prices.h"
#include "proxy/proxy.h"
#include "route/runtime.h"
#include "proto/sse.h"
#include "provider/provider.h"
#include "net/uphttp.h"

#define PROXY_MAX_DEPS 64

struct admission_waiter;
/* A queued request may start now (or was evicted from the queue); on its own loop
   (proxy_env.c's ready list calls it). */
void proxy_admitted(struct admission_waiter *w);
#define PROXY_MAX_HELD (256u * 1024)      /* events held before the first content event */
#define PROXY_MAX_ERROR_BODY (64u * 1024) /* an upstream error body, kept for its message */
#define PROXY_MAX_SSE_EVENT (8u << 20)

struct preq;

#define PROXY_MAX_CONTINUATIONS 2 /* a stream is continued at most this often */

/* A stream continued after cuts: what the client has been sent, and what the cut attempts
   cost. proxy_continue.c owns it. */
struct proxy_cont {
    struct buf partial;          /* the answer's content relayed so far, as escaped JSON string text */
    struct buf text;             /* partial decoded, at the latest cut */
    bool overflow;               /* past PROXY_MAX_PARTIAL: cannot be continued */
    bool many_choices;           /* content for more than one choice: cannot be continued */
    bool tool_call_relayed;      /* a tool-call delta went out: cannot be continued */
    bool continued;              /* the attempts now continue partial */
    unsigned n;                  /* continuations asked for */
    unsigned attempts_base;      /* p->attempts when the latest continuation began */
    size_t prompt_chars;         /* the client's prompt, before partial was added to it */
    size_t partial_at_cut;       /* partial.len at the latest cut */
    bool meta;                   /* id, model, created of the first attempt's chunks known */
    char id[128], model[128];
    double created;
    bool has_created;
    struct prices_usage earlier; /* the cut attempts' usage, summed */
    bool earlier_estimated;      /* some of it guessed from characters */
    struct {
        const struct cfg_deployment *dep;
        struct prices_usage usage;
    } cut[PROXY_MAX_CONTINUATIONS]; /* each cut attempt, priced at its own deployment */
};

/* What an SSE item handler asks to be done once the parser has returned. */
enum attempt_action { ACT_NONE, ACT_FAIL, ACT_MID_STREAM, ACT_PROVIDER_ERROR_EVENT };

struct attempt {
    struct preq *p;
    int slot;
    bool active;
    bool hedge;
    struct runtime_dep *rd;
    const struct cfg_deployment *dep;
    struct health_ticket ticket;
    struct endpoint *ep;            /* its address, on a discovered deployment (proxy_endpoint.c) */
    struct health_ticket ep_ticket; /* the address's slot */
    char ep_name[ENDPOINT_NAME_MAX]; /* its "ip:port" for the access log; "" by name */
    struct uphttp *up;
    bool up_stream; /* we asked for a stream */
    bool up_sse;    /* and got one */
    int status;
    int retry_after_s;
    struct buf body; /* a whole-body answer or error */
    const struct provider_ops *ops; /* the deployment's wire format */
    const char *refusal;            /* why the format cannot say the client's request (static) */
    struct provider_stream stream;
    struct buf held; /* events before the first content, for a stream client */
    struct assemble *asmb;
    bool got_first, saw_done, saw_finish, usage_seen;
    struct jsonx_chunk usage;
    size_t content_chars; /* generated text received (jsonx_chunk.content_chars) */
    uint64_t t_start;
    uint32_t ttft_ms;
    uint64_t first_ns; /* uv_hrtime at the first content */
    uint64_t read_us;  /* uv_hrtime / 1000 of the upstream read being fed (one clock read each) */
    enum attempt_action action;
    enum health_class action_class;
    char action_detail[256];
    char provider_said[256]; /* the provider's own error message, secrets redacted: for the log only */
    uv_timer_t timer; /* first-token deadline, then the stall timer */
    bool stall_lazy;  /* the timer is the stall timer: content moves last_content, not the timer */
    uint64_t last_content; /* loop time (uv_now) of the latest content event */
};

struct preq {
    struct server_conn *conn;
    struct proxy_env *env;
    struct config *cfg;
    struct runtime *rt;            /* the generation it started on (one reference held) */
    struct runtime_model *rm;
    const struct cfg_model *model;
    const char *auto_model;  /* a name a models: auto provider lists (model is the catch-all,
                                config/presets.h): sent as the deployment's model; else NULL */
    enum proxy_api api;
    char *body;
    size_t body_len;
    struct jsonx_request scan;
    bool client_stream;
    bool client_usage;

    struct attempt at[2]; /* at[1] is only used by a hedge */
    struct attempt *winner;
    bool tried[PROXY_MAX_DEPS];
    uint64_t tried_eps[ENDPOINTS_TRIED_MAX]; /* addresses of discovered deployments tried */
    unsigned ntried_eps;
    int last_tried;
    unsigned attempts;
    int retry_after_s; /* smallest Retry-After seen, -1 none */
    struct buf why;    /* "provider/model: reason (detail); ...": for the client */
    struct buf why_log; /* the same with what each provider said (redacted): for the log */
    unsigned n_timeout, n_busy, n_other;
    bool committed;
    bool paused;
    enum runtime_hedge_reason hedge_reason; /* what set the armed hedge timer's delay */
    uv_timer_t total_timer;
    uv_timer_t hedge_timer; /* while queued: the keep-alive ticks of a stream client */
    uv_timer_t queue_timer; /* the queue deadline */
    int handles_open;

    /* admission (proxy_admit.c; each step's own state is in run, admit/steps.h) */
    const struct key_info *key; /* NULL when the gateway is open */
    const char *limit_key;      /* key->limit_id, or NULL */
    int route_tier;             /* a rule limited it to this tier; -1 any */
    const char *degraded_from;  /* the model asked for, when sent to its fallback */
    bool head_sent;             /* a stream client has the response head (queued or committed) */
    struct admit_req adm;       /* what the steps see of the request */
    struct admit_run run;

    struct proxy_cont cont;     /* continue_on_cut (proxy_continue.c) */
    uint64_t t_start;
    bool finished;

    /* waiting for a deployment to come back (proxy_wait.c) */
    uint64_t wait_since_ms;     /* when it began to wait; 0: never */
    bool overload_retry;        /* one attempt more than max_attempts: a deployment without a
                                   declared limit refused for load (our learnt limit was high) */
    unsigned endpoint_retries;  /* attempts more than max_attempts: failures of one address of a
                                   discovered deployment while others serve (proxy_endpoint.c) */

    /* usage when the provider reports none (estimated from characters, see prices.h) */
    uint64_t content_chars;  /* generated text from the winning attempts: streamed, or assembled */
    bool chunk_meta;         /* chunk_id, chunk_model and chunk_created are known */
    char chunk_id[128], chunk_model[128]; /* of the stream, for an estimated usage chunk */
    int64_t chunk_created;
};

/* attempt.c */
void attempt_init(struct attempt *a, struct preq *p, int slot, uv_loop_t *loop);
/* Starts an exchange with rd (whose health ticket is already in a->ticket). 0, -1 (could not
   start), or ATTEMPT_REFUSED (a->refusal says why: the client's fault). */
enum { ATTEMPT_REFUSED = -2 };
int attempt_start(struct attempt *a, struct runtime_dep *rd, bool hedge);
/* Cancels the exchange and clears per-attempt state; the attempt becomes inactive. */
void attempt_reset(struct attempt *a);
void attempt_free_buffers(struct attempt *a);
/* Arms the attempt's timer for ms, bounded by the request's remaining time. */
void attempt_arm(struct attempt *a, uint32_t ms);
/* Content arrived: the stall timer counts from now (without restarting the timer per event). */
void attempt_progress(struct attempt *a);
void attempt_pause(struct attempt *a, bool paused);

/* proxy_admit.c, called by proxy.c */
/* Keys, rules, limits, degradation, queueing; returns true when the request may go on now
   (false: it was answered, or it waits in the queue and proxy_admitted continues it). */
bool proxy_admit(struct preq *p);
struct key_info;
/* The client's virtual key: NULL when the config opened the gateway (auth.open), or when
   refused (*msg set). */
const struct key_info *proxy_authenticate(struct server_conn *c, enum gw_err *err, const char **msg);
const struct cfg_rule *proxy_match_rule(const struct config *cfg, const struct jsonx_request *scan,
                                        const struct key_info *ki, const struct http1_head *h);
void proxy_admit_finish(struct preq *p);
void proxy_admit_settle(struct preq *p);
void proxy_limit_headers(struct preq *p, struct buf *h);

/* proxy_continue.c */
bool proxy_continue_enabled(const struct preq *p);
/* An event about to be relayed: keeps its content (when the option is on) and, for a
   continuation's chunk, rewrites it into the first attempt's stream (its id, created and
   model; usage summed over the attempts): then returns the new chunk (malloc'd, the
   caller frees it) and points *data, *len at it; else NULL. */
char *proxy_continue_relay(struct preq *p, const struct jsonx_chunk *ch, const char **data, size_t *len);
/* After a cut of the winner a: turns the request into its continuation. True when the
   caller should now start another attempt; false when it cannot be continued. */
bool proxy_continue_try(struct preq *p, const struct attempt *a);
/* The continuation's text for an attempt's request (NULL: none) and its token estimate. */
const char *proxy_continue_text(const struct preq *p, size_t *len, int64_t *tokens);
/* The request is answered (attempt a done): the log's usage is the sum over the cut
   attempts and a. */
void proxy_continue_usage(struct preq *p, const struct attempt *a, struct accesslog_entry *log);
/* The ledger row: each attempt's tokens priced at its own deployment, summed. */
void proxy_continue_price(const struct preq *p, struct ledger_record *r);
/* The request ends: counts the continuation's result; frees the state. */
void proxy_continue_finish(struct preq *p, enum outcome outcome);

/* proxy_endpoint.c: the address of a discovered deployment an attempt goes to */
/* Attempts a request may make beyond max_attempts, each after a failure that was one
   address's while others serve (proxy.c: endpoint_retries). */
#define PROXY_ENDPOINT_RETRIES 2
/* Chooses slot's address on rd (its deployment slot taken); true when one was taken or rd is
   used by name (no discovery, or no answer yet); false when no address is eligible. */
bool proxy_endpoint_take(struct preq *p, struct attempt *slot, struct runtime_dep *rd,
                         uint64_t now_ms, uint64_t rand);
/* The attempt's outcome at its address (a->rd still set; before the deployment's release);
   true when the deployment's own health should count it too. */
bool proxy_endpoint_release(struct attempt *a, enum health_class c, uint32_t penalty_ms,
                            uint64_t now_ms, uint64_t rand);
/* Gives the address's slot on rd back with no verdict (waited_ms > 0: a hedge that lost). */
void proxy_endpoint_abandon(struct attempt *a, struct runtime_dep *rd, uint32_t waited_ms);
/* The deployment's balancer weight: its weight × its healthy addresses. */
uint32_t proxy_endpoint_weight(struct runtime_dep *rd, uint64_t now_ms);

/* proxy_wait.c */
/* No deployment could be chosen: waits for the earliest to come back (true; proxy_try_start
   follows) or says it should be answered now (false; p->retry_after_s set from the earliest
   return when one is known). */
bool proxy_wait_for_deployment(struct preq *p);

/* proxy_admit.c, called by proxy_wait.c */
/* A stream client that starts waiting gets the response head now. */
void proxy_waiting_head(struct preq *p);

/* proxy.c, called by proxy_wait.c */
/* Starts an attempt on a deployment pick may choose; waits or answers when none can. */
void proxy_try_start(struct preq *p);
/* skip[i]: deployment i cannot be this request's next attempt (tried, the rival's, another
   tier), whatever its health. */
void proxy_excluded_mask(struct preq *p, bool skip[PROXY_MAX_DEPS]);

/* proxy.c, called by proxy_admit.c */
void proxy_go(struct preq *p);
void proxy_fail_request(struct preq *p, enum gw_err e, const char *msg, int retry_after_s);
void proxy_finalize(struct preq *p, enum outcome outcome);

/* proxy.c, called by attempt.c and proxy_admit.c */
/* Tokens guessed from characters (prices_estimate_tokens, as the ledger does): the prompt,
   and completion_chars of generated text. */
void proxy_estimate_usage(const struct preq *p, uint64_t completion_chars, int64_t *prompt_tokens,
                          int64_t *completion_tokens);
/* Keeps the id, model and created of the winner's stream (once), for an estimated usage chunk. */
void proxy_note_chunk_meta(struct preq *p, const char *data, const struct jsonx_chunk *ch);

/* proxy.c, called by attempt.c */
void proxy_first_content(struct attempt *a);
void proxy_attempt_failed(struct attempt *a, enum health_class c, const char *detail);
void proxy_attempt_done(struct attempt *a, const char *json, size_t len);
void proxy_attempt_client_error(struct attempt *a, int status, const char *body, size_t len);
void proxy_mid_stream_error(struct preq *p, enum health_class c, const char *why);
void proxy_provider_error_event(struct preq *p, const char *data, size_t len, const char *msg);
/* ch: the chunk scan of an upstream's chunk, NULL for an error event; framed: data lies
   between "data: " and "\n\n" (provider_event.framed), sent on as one piece unless rewritten. */
void proxy_relay_event(struct preq *p, const char *data, size_t len, const struct jsonx_chunk *ch,
                       bool framed);
void proxy_relay_comment(struct preq *p);
uint64_t proxy_remaining_ms(struct preq *p);
void proxy_timer_fired(struct attempt *a);

/* proxy_usage.c: the estimated usage chunk before [DONE] for a stream client that asked for
   usage when the provider sent none; the request's ledger row (at finalize). */
void proxy_estimated_usage_chunk(struct preq *p);
void proxy_record_ledger(struct preq *p, const struct accesslog_entry *log);

/* The request's affinity key for the balancer; 0: none (proxy_affinity.c). */
uint64_t proxy_affinity_key(struct preq *p);

#endif
