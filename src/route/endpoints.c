#include "route/endpoints.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An endpoint has no concurrency limit of its own: the deployment's max_concurrency and
   learnt limit bound the whole set, and a learnt limit per replica would start each new
   address saturated at its initial value. */
#define ENDPOINT_NO_LIMIT 1000000000u

const char *endpoint_source_name(enum endpoint_source s)
{
    switch (s) {
    case ENDPOINT_SRC_A:
        return "a";
    case ENDPOINT_SRC_AAAA:
        return "aaaa";
    case ENDPOINT_SRC_SRV:
        return "srv";
    }
    return "?";
}

void endpoint_format(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    } else {
        snprintf(out, cap, "?");
    }
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

struct endpoint_set *endpoint_set_new(const struct health_params *hp, uint32_t max_endpoints)
{
    struct endpoint_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    if (hp)
        s->hp = *hp;
    else
        health_params_default(&s->hp);
    s->hp.max_concurrency = ENDPOINT_NO_LIMIT;
    s->hp.rpm = 0;
    s->hp.limit.slow_start_ms = 0; /* a new address takes its share at once */
    s->max_endpoints =
        max_endpoints == 0 || max_endpoints > ENDPOINTS_MAX ? ENDPOINTS_MAX : max_endpoints;
    s->next_id = 1;
    return s;
}

static void endpoint_free(struct endpoint *e)
{
    health_destroy(&e->health);
    free(e);
}

void endpoint_set_free(struct endpoint_set *s)
{
    if (!s) return;
    struct endpoint *e = s->list;
    while (e) {
        struct endpoint *next = e->next;
        endpoint_free(e);
        e = next;
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Unlinks and frees e (the caller holds the lock; e is draining with no reference). */
static void unlink_free(struct endpoint_set *s, struct endpoint *e)
{
    for (struct endpoint **pp = &s->list; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    s->ndraining--;
    endpoint_free(e);
}

unsigned endpoint_set_merge(struct endpoint_set *s, const struct endpoint_addr *addrs, size_t n,
                            uint64_t now_ms)
{
    unsigned added = 0;
    pthread_mutex_lock(&s->lock);
    /* Keep (and update) what the answer names, drain what it dropped, bring back what it
       names again. */
    for (struct endpoint **pp = &s->list; *pp;) {
        struct endpoint *e = *pp;
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++) {
            if (!same_addr(&e->sa, &addrs[i].sa)) continue;
            keep = true;
            e->priority = addrs[i].priority;
            e->weight = addrs[i].weight;
            e->ttl_s = addrs[i].ttl_s;
            e->source = addrs[i].source;
        }
        if (keep && e->draining && s->nactive < s->max_endpoints) {
            e->draining = false;
            s->ndraining--;
            s->nactive++;
        } else if (!keep && !e->draining) {
            e->draining = true;
            s->nactive--;
            s->ndraining++;
            atomic_fetch_add(&s->removed, 1);
        }
        if (e->draining && e->refs == 0) {
            *pp = e->next;
            s->ndraining--;
            endpoint_free(e);
            continue;
        }
        pp = &e->next;
    }
    /* Add the new ones, at the end (a stable order for the admin API). */
    struct endpoint **tail = &s->list;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; i < n && s->nactive < s->max_endpoints; i++) {
        bool known = false;
        for (struct endpoint *e = s->list; e && !known; e = e->next)
            known = same_addr(&e->sa, &addrs[i].sa);
        if (known) continue;
        struct endpoint *e = calloc(1, sizeof *e);
        if (!e) break;
        e->id = s->next_id++;
        e->sa = addrs[i].sa;
        endpoint_format(&e->sa, e->name, sizeof e->name);
        e->priority = addrs[i].priority;
        e->weight = addrs[i].weight;
        e->ttl_s = addrs[i].ttl_s;
        e->source = addrs[i].source;
        e->added_ms = now_ms;
        health_init(&e->health, &s->hp);
        *tail = e;
        tail = &e->next;
        s->nactive++;
        added++;
    }
    atomic_fetch_add(&s->added, added);
    s->answered = true;
    s->stale = false;
    s->last_error[0] = '\0';
    s->resolved_ms = now_ms;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->resolutions_ok, 1);
    return added;
}

void endpoint_set_failed(struct endpoint_set *s, const char *why)
{
    pthread_mutex_lock(&s->lock);
    /* With no set yet, the deployment now has no address rather than a pending one. */
    s->stale = s->answered && s->nactive > 0;
    s->answered = true;
    snprintf(s->last_error, sizeof s->last_error, "%s", why ? why : "failed");
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->resolutions_failed, 1);
}

bool endpoint_set_answered(struct endpoint_set *s)
{
    pthread_mutex_lock(&s->lock);
    bool a = s->answered;
    pthread_mutex_unlock(&s->lock);
    return a;
}

/* Eligible active endpoints; the caller holds the lock. */
static unsigned count_eligible(struct endpoint_set *s, uint64_t now_ms, const struct endpoint *but)
{
    unsigned k = 0;
    for (struct endpoint *e = s->list; e; e = e->next)
        if (!e->draining && e != but && health_eligible(&e->health, now_ms, NULL)) k++;
    return k;
}

bool endpoint_set_eligible(struct endpoint_set *s, uint64_t now_ms, const char **why)
{
    pthread_mutex_lock(&s->lock);
    bool ok = !s->answered || count_eligible(s, now_ms, NULL) > 0;
    if (!ok && why) *why = s->nactive == 0 ? "no_addresses" : "endpoints_out";
    pthread_mutex_unlock(&s->lock);
    return ok;
}

unsigned endpoint_set_healthy(struct endpoint_set *s, uint64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    unsigned k = s->answered ? count_eligible(s, now_ms, NULL) : 0;
    pthread_mutex_unlock(&s->lock);
    return k;
}

uint64_t endpoint_set_returns_at(struct endpoint_set *s, uint64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    uint64_t at = s->answered ? UINT64_MAX : now_ms;
    for (struct endpoint *e = s->list; e && at > now_ms; e = e->next) {
        if (e->draining) continue;
        uint64_t t = health_returns_at(&e->health, now_ms);
        if (t < at) at = t;
    }
    pthread_mutex_unlock(&s->lock);
    return at;
}

static bool was_tried(uint64_t id, const uint64_t *tried, size_t ntried)
{
    for (size_t i = 0; i < ntried; i++)
        if (tried[i] == id) return true;
    return false;
}

/* The candidate pass: untried (when avoid) eligible active endpoints of the lowest
   priority that has one; the least in flight per weight, ties by rand. */
static struct endpoint *choose(struct endpoint_set *s, uint64_t now_ms, const uint64_t *tried,
                               size_t ntried, bool avoid, uint64_t rand)
{
    struct endpoint *best = NULL;
    double best_load = 0;
    unsigned ties = 0;
    for (struct endpoint *e = s->list; e; e = e->next) {
        if (e->draining || (avoid && was_tried(e->id, tried, ntried)) ||
            !health_eligible(&e->health, now_ms, NULL))
            continue;
        /* SRV weight 0 is "very small chance" (RFC 2782): a tenth of weight 1. */
        double w = e->weight ? (double)e->weight : 0.1;
        double load = (health_inflight(&e->health) + 1) / w;
        if (best && e->priority > best->priority) continue;
        if (!best || e->priority < best->priority || load < best_load) {
            best = e;
            best_load = load;
            ties = 1;
        } else if (load == best_load) {
            /* reservoir sampling among equals: each tie has the same chance */
            ties++;
            uint64_t r = rand * 0x9E3779B97F4A7C15ULL + ties;
            r ^= r >> 29;
            if (r % ties == 0) best = e;
        }
    }
    return best;
}

struct endpoint *endpoint_pick(struct endpoint_set *s, uint64_t now_ms, const uint64_t *tried,
                               size_t ntried, uint64_t rand, struct health_ticket *ticket)
{
    pthread_mutex_lock(&s->lock);
    struct endpoint *e = NULL;
    for (int pass = 0; pass < 2 && !e; pass++) {
        /* At most as many tries as endpoints: each lost race for a slot excludes one. */
        for (unsigned guard = 0; guard <= s->nactive; guard++) {
            e = choose(s, now_ms, tried, ntried, pass == 0, rand + guard);
            if (!e || health_acquire(&e->health, now_ms, ticket)) break;
            e = NULL;
        }
    }
    if (e) e->refs++;
    pthread_mutex_unlock(&s->lock);
    return e;
}

static void put_locked(struct endpoint_set *s, struct endpoint *e)
{
    if (--e->refs == 0 && e->draining) unlink_free(s, e);
}

unsigned endpoint_release(struct endpoint_set *s, struct endpoint *e, struct health_ticket *ticket,
                          uint64_t now_ms, enum health_class cls, uint32_t ttft_ms,
                          uint32_t penalty_ms, uint64_t rand, bool *deployment_verdict)
{
    pthread_mutex_lock(&s->lock);
    unsigned ev = health_release(&e->health, ticket, now_ms, cls, ttft_ms, penalty_ms, rand);
    if (deployment_verdict)
        *deployment_verdict = cls == HEALTH_OK || count_eligible(s, now_ms, e) == 0;
    put_locked(s, e);
    pthread_mutex_unlock(&s->lock);
    return ev;
}

void endpoint_abandon(struct endpoint_set *s, struct endpoint *e, struct health_ticket *ticket,
                      uint32_t waited_ms)
{
    pthread_mutex_lock(&s->lock);
    if (waited_ms)
        health_abandon_after(&e->health, ticket, waited_ms);
    else
        health_abandon(&e->health, ticket);
    put_locked(s, e);
    pthread_mutex_unlock(&s->lock);
}

void endpoint_cooldown(struct endpoint_set *s, struct endpoint *e, uint64_t now_ms, uint32_t ms)
{
    health_cooldown(&e->health, now_ms, ms);
}

size_t endpoint_set_view(struct endpoint_set *s, uint64_t now_ms, struct endpoint_view *out,
                         size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (int draining = 0; draining < 2; draining++) {
        for (struct endpoint *e = s->list; e && k < max; e = e->next) {
            if (e->draining != (draining == 1)) continue;
            struct endpoint_view *v = &out[k++];
            memcpy(v->name, e->name, sizeof v->name);
            v->source = endpoint_source_name(e->source);
            v->state = e->draining ? "draining" : "active";
            v->priority = e->priority;
            v->weight = e->weight;
            v->ttl_s = e->ttl_s;
            health_snapshot(&e->health, now_ms, &v->health);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return k;
}

void endpoint_set_stats(struct endpoint_set *s, uint64_t now_ms, struct endpoint_set_stats *out)
{
    pthread_mutex_lock(&s->lock);
    out->active = s->nactive;
    out->draining = s->ndraining;
    out->healthy = count_eligible(s, now_ms, NULL);
    out->answered = s->answered;
    out->stale = s->stale;
    out->resolved_ms = s->resolved_ms;
    memcpy(out->last_error, s->last_error, sizeof out->last_error);
    pthread_mutex_unlock(&s->lock);
}
