/*
 * admission — who starts now, who waits, who is told to come back, per model.
 *
 * A model's capacity is the sum of its deployments' concurrency limits: the
 * declared max_concurrency, or where none is declared the limit learnt from the
 * deployment's behaviour (route/limit.h); the runtime keeps it up to date
 * (admission_set_capacity) as the limits move. Class 0 may use all of
 * it; the other classes only 1 - reserve_ratio of it, so the highest class
 * always finds room. Above that a request waits in a bounded priority queue
 * (FIFO within a class, alternating between keys so one key cannot starve
 * another) until capacity frees, its deadline passes, or its client leaves.
 * When the queue is full the lowest class goes first: a newcomer of a higher
 * class evicts the newest waiter of the lowest class, otherwise the newcomer
 * is shed. Retry-After comes from the measured drain rate.
 *
 * The queue is shared by the workers (a mutex; taken once per request and
 * once per completion). A waiter belongs to one worker; when it may start,
 * it is put on that worker's ready list and the worker is woken
 * (admission_ready_fn), so every request runs on its own loop only.
 */
#ifndef UNBUSY_ADMISSION_H
#define UNBUSY_ADMISSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

#define ADMISSION_CLASSES 4

struct admission_waiter {
    struct admission_waiter *next, *prev;
    int cls;
    int64_t key;          /* fairness between keys within a class */
    uint64_t enqueued_ms;
    void *owner;          /* the worker to wake */
    void *ud;             /* the request */
    bool queued;
    bool evicted;         /* taken out to make room for a higher class: shed it */
    bool gone;            /* with evicted: its model left the config (admission_close) */
};

/* Called with a waiter that may start now (or was evicted); from any thread. */
typedef void (*admission_ready_fn)(void *owner, struct admission_waiter *w);

struct admission {
    pthread_mutex_t lock;
    const struct cfg_queue *cfg;  /* &own: a copy, so no config snapshot must outlive it */
    struct cfg_queue own;
    uint32_t capacity;    /* 0: unknown (unlimited); admission_set_capacity */
    admission_ready_fn ready;
    struct admission_waiter *head[ADMISSION_CLASSES], *tail[ADMISSION_CLASSES];
    int64_t last_key[ADMISSION_CLASSES];
    uint32_t queued;
    uint32_t admitted_inflight; /* started through admission and not finished */
    bool closed;          /* admission_close: its model left the config; nobody queues */
    double drain_per_s;   /* EWMA of completions per second */
    uint64_t drain_stamp;
    uint64_t shed, timeouts, queued_total, evictions;
    /* degradation */
    bool degraded;
    uint64_t degraded_total;
    uint64_t degrade_counter;
};

enum admission_verdict {
    ADMISSION_START, /* a slot was taken: call admission_done when the request ends */
    ADMISSION_QUEUE, /* over what the class may use: wait (admission_enqueue) */
};

void admission_init(struct admission *a, const struct cfg_queue *cfg, uint32_t capacity,
                    admission_ready_fn ready);
void admission_destroy(struct admission *a);
/* A config reload: the queue follows the new snapshot's settings (copied). */
void admission_set_config(struct admission *a, const struct cfg_queue *cfg);
/* The model left the config: every waiter is handed to the ready callback marked
   evicted and gone (answered with an error). Returns how many. */
unsigned admission_close(struct admission *a);

/* The capacity is now this (the deployments' limits moved); waiters that now fit start. */
void admission_set_capacity(struct admission *a, uint32_t capacity);
uint32_t admission_capacity(struct admission *a);

/* May a request of class cls start now? Takes a slot when it may. */
enum admission_verdict admission_try(struct admission *a, int cls);
/* The request that held a slot has ended; wakes waiters that may now start. */
void admission_done(struct admission *a, uint64_t now_ms);

/*
 * Queue w. Returns 0, or -ENOSPC when the queue is full and nothing of a
 * lower class could make room (shed w), or -ESHUTDOWN when the queue was
 * closed (its model left the config). A waiter evicted to make room is
 * marked evicted and handed to the ready callback.
 */
int admission_enqueue(struct admission *a, struct admission_waiter *w, uint64_t now_ms);
/* Takes w out (deadline, client gone). False if it was no longer queued (already handed on). */
bool admission_remove(struct admission *a, struct admission_waiter *w);

/* Seconds until the queue has likely drained (at least 1), from the measured drain rate. */
uint32_t admission_retry_after_s(struct admission *a);
/* Load in [0, ..): slots in use / capacity (0 with unknown capacity). */
double admission_load(struct admission *a);
uint32_t admission_queued(struct admission *a);

/*
 * Should this request be sent to the degraded (fallback) model? Applies the
 * threshold with hysteresis and the configured share and classes; counts.
 */
bool admission_degrade(struct admission *a, const struct cfg_degrade *d, int cls);

#endif
