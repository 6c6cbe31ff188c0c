/*
 * incidents — a small bounded ring of recent notable events (a deployment's
 * attempt failed and the request moved on, a stream broke after it had
 * started, a cut stream was continued on another deployment, a slow first
 * token was hedged, a breaker opened or closed, a provider refused our
 * credentials, a request found every deployment failing), for the public
 * status page.
 *
 * One ring per process, shared by every worker behind a mutex: incidents are
 * rare next to requests, and a repeat of a held incident (same kind, model,
 * deployment, class and status within INCIDENTS_COALESCE_MS of its last
 * occurrence) bumps its count and moves it to the front, so an outage fills
 * a few rows, not fifty, and the ring stays ordered by last occurrence.
 *
 * Everything stored comes from config names and fixed enums (never a request
 * id, a client string or a provider's error text, which may quote a key), so
 * the ring can be shown without authentication.
 *
 * metrics.c owns the instance (struct metrics) and feeds it from the proxy's
 * hooks; status_page.c renders it (incidents_write_json).
 */
#ifndef UNBUSY_INCIDENTS_H
#define UNBUSY_INCIDENTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "route/health.h"

#define INCIDENTS_MAX 50
#define INCIDENTS_COALESCE_MS 60000u

enum incident_kind {
    INCIDENT_ATTEMPT_FAILED, /* before the client saw a byte: the request moved on */
    INCIDENT_STREAM_FAILED,  /* after the first byte: the client saw an error event */
    INCIDENT_BREAKER_OPENED,
    INCIDENT_BREAKER_CLOSED,
    INCIDENT_AUTH_REFUSED,   /* 401/402/403: the deployment is out until enabled */
    INCIDENT_REQUEST_FAILED, /* every deployment of the model failed */
    INCIDENT_CONTINUED,      /* after the first byte the stream broke; another deployment
                                continued it, the client saw no error */
    INCIDENT_HEDGED,         /* the first token was slow: a second attempt was started */
    INCIDENT__COUNT
};

struct incident {
    uint64_t first_ms, last_ms; /* wall-clock ms (CLOCK_REALTIME) */
    uint32_t count;             /* occurrences coalesced into this entry */
    enum incident_kind kind;
    enum health_class cls; /* HEALTH_OK when not about one failure */
    int status;            /* the upstream's HTTP status when >= 400, else 0 */
    char model[64];        /* the model clients ask for */
    char deployment[128];  /* "provider/model", "" when about the model as a whole */
};

struct incidents {
    pthread_mutex_t lock;
    struct incident ring[INCIDENTS_MAX];
    size_t next;    /* where the next new entry goes */
    size_t n;       /* entries held, at most INCIDENTS_MAX */
    uint64_t total; /* entries ever added (coalesced repeats not counted) */
};

void incidents_init(struct incidents *in);
void incidents_destroy(struct incidents *in);

/* "attempt_failed", "stream_failed", "breaker_opened", "breaker_closed",
   "auth_refused", "request_failed", "continued", "hedged"; "?" out of range. */
const char *incidents_kind_name(enum incident_kind k);

/* Records one event at wall-clock now_ms. model/deployment may be NULL; longer
   names are cut. Thread-safe. */
void incidents_add(struct incidents *in, enum incident_kind kind, const char *model,
                   const char *deployment, enum health_class cls, int status, uint64_t now_ms);

/* Copies up to max entries, newest first; returns how many. Thread-safe. */
size_t incidents_snapshot(struct incidents *in, struct incident *out, size_t max);

/* Appends a JSON array of the entries, newest first:
   [{"kind","model","deployment","class","status","count","first_ms","last_ms"}, ...] */
void incidents_write_json(struct incidents *in, struct buf *out);

#endif
