#include "admit/admission.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void admission_init(struct admission *a, const struct cfg_queue *cfg, uint32_t capacity,
                    admission_ready_fn ready)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->own = *cfg;
    a->cfg = &a->own;
    a->capacity = capacity;
    a->ready = ready;
    for (int i = 0; i < ADMISSION_CLASSES; i++)
        a->last_key[i] = -1;
}

void admission_destroy(struct admission *a)
{
    pthread_mutex_destroy(&a->lock);
}

void admission_set_config(struct admission *a, const struct cfg_queue *cfg)
{
    pthread_mutex_lock(&a->lock);
    a->own = *cfg;
    pthread_mutex_unlock(&a->lock);
}

static void unlink_waiter(struct admission *a, struct admission_waiter *w);

unsigned admission_close(struct admission *a)
{
    unsigned n = 0;
    pthread_mutex_lock(&a->lock);
    a->closed = true;
    for (int c = 0; c < ADMISSION_CLASSES; c++) {
        while (a->head[c]) {
            struct admission_waiter *w = a->head[c];
            unlink_waiter(a, w);
            w->evicted = true;
            w->gone = true;
            n++;
            if (a->ready)
                a->ready(w->owner, w);
        }
    }
    pthread_mutex_unlock(&a->lock);
    return n;
}

static int clamp_cls(int cls)
{
    return cls < 0 ? 0 : cls >= ADMISSION_CLASSES ? ADMISSION_CLASSES - 1 : cls;
}

/* The slots class cls may use. */
static uint32_t class_limit(const struct admission *a, int cls)
{
    if (cls == 0)
        return a->capacity;
    uint32_t reserved = (uint32_t)ceil(a->capacity * a->cfg->reserve_ratio);
    return a->capacity > reserved ? a->capacity - reserved : 1;
}

static bool waiting_at_or_above(const struct admission *a, int cls)
{
    for (int c = 0; c <= cls; c++)
        if (a->head[c])
            return true;
    return false;
}

enum admission_verdict admission_try(struct admission *a, int cls)
{
    cls = clamp_cls(cls);
    enum admission_verdict v = ADMISSION_START;
    pthread_mutex_lock(&a->lock);
    if (a->capacity > 0) {
        /* No overtaking: while someone of this class or a higher one waits, queue behind. */
        if (a->admitted_inflight >= class_limit(a, cls) || waiting_at_or_above(a, cls))
            v = ADMISSION_QUEUE;
    }
    if (v == ADMISSION_START)
        a->admitted_inflight++;
    pthread_mutex_unlock(&a->lock);
    return v;
}

static void unlink_waiter(struct admission *a, struct admission_waiter *w)
{
    int c = w->cls;
    if (w->prev)
        w->prev->next = w->next;
    else
        a->head[c] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        a->tail[c] = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
    a->queued--;
}

/* The next waiter to start: the highest class first; within it the oldest waiter of a key
   other than the one served last, when there is one. */
static struct admission_waiter *next_waiter(struct admission *a, int *cls_out)
{
    for (int c = 0; c < ADMISSION_CLASSES; c++) {
        struct admission_waiter *w = a->head[c];
        if (!w)
            continue;
        struct admission_waiter *pick = w;
        for (int i = 0; w && i < 64; w = w->next, i++) {
            if (w->key != a->last_key[c]) {
                pick = w;
                break;
            }
        }
        *cls_out = c;
        return pick;
    }
    return NULL;
}

/* Hands on every waiter that may start now. Called with the lock held; the callbacks only
   queue work for the waiter's own loop. */
static void wake_locked(struct admission *a)
{
    if (!a->ready)
        return;
    for (;;) {
        int c = 0;
        struct admission_waiter *w = next_waiter(a, &c);
        if (!w || (a->capacity > 0 && a->admitted_inflight >= class_limit(a, c)))
            return;
        unlink_waiter(a, w);
        a->last_key[c] = w->key;
        a->admitted_inflight++;
        a->ready(w->owner, w);
    }
}

void admission_set_capacity(struct admission *a, uint32_t capacity)
{
    pthread_mutex_lock(&a->lock);
    bool grew = a->capacity && (capacity == 0 || capacity > a->capacity);
    a->capacity = capacity;
    if (grew)
        wake_locked(a);
    pthread_mutex_unlock(&a->lock);
}

uint32_t admission_capacity(struct admission *a)
{
    pthread_mutex_lock(&a->lock);
    uint32_t c = a->capacity;
    pthread_mutex_unlock(&a->lock);
    return c;
}

void admission_done(struct admission *a, uint64_t now_ms)
{
    pthread_mutex_lock(&a->lock);
    if (a->admitted_inflight > 0)
        a->admitted_inflight--;
    /* Drain rate: an EWMA of completions per second (tau 10 s). */
    if (a->drain_stamp == 0) {
        a->drain_stamp = now_ms;
    } else if (now_ms > a->drain_stamp) {
        double dt = (double)(now_ms - a->drain_stamp) / 1000.0;
        double inst = 1.0 / dt;
        double w = 1.0 - exp(-dt / 10.0);
        a->drain_per_s = a->drain_per_s + w * (inst - a->drain_per_s);
        a->drain_stamp = now_ms;
    }
    wake_locked(a);
    pthread_mutex_unlock(&a->lock);
}

int admission_enqueue(struct admission *a, struct admission_waiter *w, uint64_t now_ms)
{
    w->cls = clamp_cls(w->cls);
    w->enqueued_ms = now_ms;
    w->evicted = false;
    w->gone = false;
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    if (a->closed) {
        pthread_mutex_unlock(&a->lock);
        return -ESHUTDOWN;
    }
    if (a->queued >= a->cfg->max) {
        /* Full: make room by evicting the newest waiter of a lower class, if any. */
        struct admission_waiter *victim = NULL;
        for (int c = ADMISSION_CLASSES - 1; c > w->cls && !victim; c--)
            victim = a->tail[c];
        if (!victim) {
            a->shed++;
            pthread_mutex_unlock(&a->lock);
            return -ENOSPC;
        }
        unlink_waiter(a, victim);
        victim->evicted = true;
        a->shed++;
        a->evictions++;
        a->ready(victim->owner, victim);
    }
    int c = w->cls;
    w->next = NULL;
    w->prev = a->tail[c];
    if (a->tail[c])
        a->tail[c]->next = w;
    else
        a->head[c] = w;
    a->tail[c] = w;
    w->queued = true;
    a->queued++;
    a->queued_total++;
    /* Capacity may have freed between admission_try and now. */
    wake_locked(a);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

bool admission_remove(struct admission *a, struct admission_waiter *w)
{
    pthread_mutex_lock(&a->lock);
    bool was = w->queued;
    if (was)
        unlink_waiter(a, w);
    pthread_mutex_unlock(&a->lock);
    return was;
}

uint32_t admission_retry_after_s(struct admission *a)
{
    pthread_mutex_lock(&a->lock);
    double rate = a->drain_per_s;
    uint32_t q = a->queued + 1;
    pthread_mutex_unlock(&a->lock);
    if (rate < 0.01)
        return 60;
    double s = ceil(q / rate);
    return s < 1 ? 1 : s > 3600 ? 3600 : (uint32_t)s;
}

double admission_load(struct admission *a)
{
    pthread_mutex_lock(&a->lock);
    double load = a->capacity ? (double)(a->admitted_inflight + a->queued) / a->capacity : 0;
    pthread_mutex_unlock(&a->lock);
    return load;
}

uint32_t admission_queued(struct admission *a)
{
    pthread_mutex_lock(&a->lock);
    uint32_t q = a->queued;
    pthread_mutex_unlock(&a->lock);
    return q;
}

bool admission_degrade(struct admission *a, const struct cfg_degrade *d, int cls)
{
    if (!d->enabled || !d->to || a->capacity == 0)
        return false;
    pthread_mutex_lock(&a->lock);
    double load = (double)(a->admitted_inflight + a->queued) / a->capacity;
    if (!a->degraded && load >= d->threshold)
        a->degraded = true;
    else if (a->degraded && load < d->threshold - d->hysteresis)
        a->degraded = false;
    bool yes = false;
    if (a->degraded && (d->classes & (1u << clamp_cls(cls)))) {
        /* share: a deterministic spread, e.g. 0.25 sends every fourth request */
        uint64_t n = a->degrade_counter++;
        yes = floor((n + 1) * d->share) > floor(n * d->share);
    }
    if (yes)
        a->degraded_total++;
    pthread_mutex_unlock(&a->lock);
    return yes;
}
