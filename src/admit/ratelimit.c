#include "admit/ratelimit.h"
#include "admit/bucket.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole requests and tokens as bucket units (bucket.h). */
#define UNITS BUCKET_UNITS

struct rl_entry {
    char *name;
    enum ratelimit_scope scope;
    uint32_t hash;
    struct bucket requests, tokens;
    uint32_t max_concurrency, inflight;
};

struct ratelimit {
    pthread_mutex_t lock;
    size_t max_entries;
    struct rl_entry *entries; /* n of them */
    size_t n;
    uint32_t *slots; /* open addressing: entry index + 1, 0 empty */
    size_t nslots;   /* a power of two, at least twice max_entries */
};

static uint32_t name_hash(enum ratelimit_scope scope, const char *s)
{
    uint32_t h = (2166136261u ^ (uint32_t)scope) * 16777619u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct rl_entry *find(struct rl_entry *entries, const uint32_t *slots, size_t nslots,
                             enum ratelimit_scope scope, const char *name, uint32_t h)
{
    size_t mask = nslots - 1;
    for (size_t s = h & mask; slots[s]; s = (s + 1) & mask) {
        struct rl_entry *e = &entries[slots[s] - 1];
        if (e->hash == h && e->scope == scope && strcmp(e->name, name) == 0) return e;
    }
    return NULL;
}

static struct rl_entry *lookup(struct ratelimit *rl, enum ratelimit_scope scope, const char *name)
{
    if (!name || rl->n == 0) return NULL;
    return find(rl->entries, rl->slots, rl->nslots, scope, name, name_hash(scope, name));
}

/* Tokens as units, saturating: a count past any limit is as good as infinite. */
static int64_t token_units(uint64_t tokens)
{
    const uint64_t max_tokens = (uint64_t)INT64_MAX / UNITS / 4;
    return (int64_t)(tokens > max_tokens ? max_tokens : tokens) * UNITS;
}

struct ratelimit *ratelimit_new(size_t max_entries)
{
    if (max_entries == 0) max_entries = 1;
    if (max_entries > (SIZE_MAX / 4) / sizeof(struct rl_entry)) return NULL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->max_entries = max_entries;
    rl->nslots = 8;
    while (rl->nslots < 2 * max_entries)
        rl->nslots *= 2;
    rl->slots = calloc(rl->nslots, sizeof *rl->slots);
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl) return;
    for (size_t i = 0; i < rl->n; i++)
        free(rl->entries[i].name);
    free(rl->entries);
    free(rl->slots);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

static void insert_slot(uint32_t *slots, size_t nslots, uint32_t h, size_t index)
{
    size_t mask = nslots - 1, s = h & mask;
    while (slots[s])
        s = (s + 1) & mask;
    slots[s] = (uint32_t)index + 1;
}

/*
 * Builds the whole table anew (a sync is rare; the request path only reads
 * it) and swaps it in under the lock, so lookups never see a half-built one.
 */
int ratelimit_sync(struct ratelimit *rl, enum ratelimit_scope scope,
                   const struct ratelimit_def *defs, size_t n, uint64_t now_ms)
{
    struct rl_entry *entries = calloc(rl->max_entries, sizeof *entries);
    uint32_t *slots = calloc(rl->nslots, sizeof *slots);
    char **names = calloc(n ? n : 1, sizeof *names);
    if (!entries || !slots || !names) {
        free(entries);
        free(slots);
        free(names);
        return -ENOMEM;
    }
    /* Copy the names before taking the lock: no allocation while holding it. */
    for (size_t i = 0; i < n; i++) {
        const struct ratelimit_def *d = &defs[i];
        if (d->name && (d->rpm || d->tpm || d->max_concurrency) && !(names[i] = strdup(d->name))) {
            for (size_t j = 0; j < i; j++)
                free(names[j]);
            free(entries);
            free(slots);
            free(names);
            return -ENOMEM;
        }
    }

    pthread_mutex_lock(&rl->lock);
    size_t count = 0;
    int rc = 0;
    /* The other scope's entries stay as they are. */
    for (size_t i = 0; i < rl->n; i++) {
        struct rl_entry *e = &rl->entries[i];
        if (e->scope == scope) continue;
        entries[count] = *e;
        e->name = NULL; /* moved */
        insert_slot(slots, rl->nslots, e->hash, count++);
    }
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        uint32_t h = name_hash(scope, names[i]);
        if (find(entries, slots, rl->nslots, scope, names[i], h)) continue; /* repeated */
        if (count == rl->max_entries) {
            rc = -ENOSPC;
            continue;
        }
        struct rl_entry *e = &entries[count];
        struct rl_entry *old = lookup(rl, scope, names[i]);
        if (old) { /* keep what it has used */
            e->requests = old->requests;
            e->tokens = old->tokens;
            e->inflight = old->inflight;
        }
        e->name = names[i];
        names[i] = NULL;
        e->scope = scope;
        e->hash = h;
        bucket_set_limit(&e->requests, defs[i].rpm, now_ms);
        bucket_set_limit(&e->tokens, defs[i].tpm, now_ms);
        e->max_concurrency = defs[i].max_concurrency;
        insert_slot(slots, rl->nslots, h, count++);
    }
    struct rl_entry *old_entries = rl->entries;
    size_t old_n = rl->n;
    uint32_t *old_slots = rl->slots;
    rl->entries = entries;
    rl->n = count;
    rl->slots = slots;
    pthread_mutex_unlock(&rl->lock);

    for (size_t i = 0; i < old_n; i++)
        free(old_entries[i].name); /* NULL for those moved */
    free(old_entries);
    free(old_slots);
    for (size_t i = 0; i < n; i++)
        free(names[i]); /* repeats and those that did not fit */
    free(names);
    return rc;
}

enum ratelimit_verdict ratelimit_try(struct ratelimit *rl, const char *key, const char *model,
                                     uint64_t tokens_estimate, uint64_t now_ms,
                                     uint64_t *retry_after_ms)
{
    enum ratelimit_verdict verdict = RATELIMIT_OK;
    uint64_t wait = 0;
    int64_t tokens = token_units(tokens_estimate);
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        bucket_refill(&e[i]->requests, now_ms);
        bucket_refill(&e[i]->tokens, now_ms);
        if (e[i]->tokens.limit && tokens > bucket_capacity(&e[i]->tokens)) verdict = RATELIMIT_TOO_LARGE;
        uint64_t w = bucket_wait(&e[i]->requests, UNITS);
        if (w > wait) wait = w;
        if (verdict != RATELIMIT_TOO_LARGE && (w = bucket_wait(&e[i]->tokens, tokens)) > wait)
            wait = w;
    }
    if (verdict == RATELIMIT_TOO_LARGE) {
        wait = 0;
    } else if (wait) {
        verdict = RATELIMIT_LIMITED;
    } else {
        for (int i = 0; i < 2; i++) {
            if (!e[i]) continue;
            bucket_take(&e[i]->requests, UNITS);
            bucket_take(&e[i]->tokens, tokens);
        }
    }
    pthread_mutex_unlock(&rl->lock);
    if (retry_after_ms) *retry_after_ms = wait;
    return verdict;
}

void ratelimit_reconcile(struct ratelimit *rl, const char *key, const char *model,
                         uint64_t estimated, uint64_t actual, uint64_t now_ms)
{
    if (estimated == actual) return;
    bool charge = actual > estimated;
    int64_t delta = token_units(charge ? actual - estimated : estimated - actual);
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        bucket_refill(&e[i]->tokens, now_ms);
        if (charge)
            bucket_take(&e[i]->tokens, delta);
        else
            bucket_give(&e[i]->tokens, delta);
    }
    pthread_mutex_unlock(&rl->lock);
}

void ratelimit_undo(struct ratelimit *rl, const char *key, const char *model,
                    uint64_t tokens_estimate, uint64_t now_ms)
{
    int64_t tokens = token_units(tokens_estimate);
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        bucket_refill(&e[i]->requests, now_ms);
        bucket_refill(&e[i]->tokens, now_ms);
        bucket_give(&e[i]->requests, UNITS);
        bucket_give(&e[i]->tokens, tokens);
    }
    pthread_mutex_unlock(&rl->lock);
}

bool ratelimit_enter(struct ratelimit *rl, const char *key, const char *model)
{
    bool ok = true;
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++)
        if (e[i] && e[i]->max_concurrency && e[i]->inflight >= e[i]->max_concurrency) ok = false;
    for (int i = 0; ok && i < 2; i++)
        if (e[i]) e[i]->inflight++;
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

void ratelimit_leave(struct ratelimit *rl, const char *key, const char *model)
{
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++)
        /* An entry dropped and defined again while the request ran starts from 0. */
        if (e[i] && e[i]->inflight) e[i]->inflight--;
    pthread_mutex_unlock(&rl->lock);
}

uint32_t ratelimit_inflight(struct ratelimit *rl, enum ratelimit_scope scope, const char *name)
{
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e = lookup(rl, scope, name);
    uint32_t n = e ? e->inflight : 0;
    pthread_mutex_unlock(&rl->lock);
    return n;
}

/* Fills one kind (requests or tokens) of the status from the tighter bucket. */
static void status_of(const struct bucket *const b[2], bool *limited, uint32_t *limit,
                      uint32_t *remaining, uint64_t *reset_ms)
{
    *limited = false;
    *limit = *remaining = 0;
    *reset_ms = 0;
    for (int i = 0; i < 2; i++) {
        if (!b[i] || !b[i]->limit) continue;
        uint32_t left = bucket_remaining(b[i]);
        if (*limited && left >= *remaining) continue;
        *limited = true;
        *limit = b[i]->limit;
        *remaining = left;
        *reset_ms = bucket_wait(b[i], bucket_capacity(b[i]));
    }
}

void ratelimit_status(struct ratelimit *rl, const char *key, const char *model, uint64_t now_ms,
                      struct ratelimit_status *out)
{
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e[2] = {lookup(rl, RATELIMIT_KEY, key), lookup(rl, RATELIMIT_MODEL, model)};
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        bucket_refill(&e[i]->requests, now_ms);
        bucket_refill(&e[i]->tokens, now_ms);
    }
    const struct bucket *req[2] = {e[0] ? &e[0]->requests : NULL, e[1] ? &e[1]->requests : NULL};
    const struct bucket *tok[2] = {e[0] ? &e[0]->tokens : NULL, e[1] ? &e[1]->tokens : NULL};
    status_of(req, &out->requests_limited, &out->limit_requests, &out->remaining_requests,
              &out->reset_requests_ms);
    status_of(tok, &out->tokens_limited, &out->limit_tokens, &out->remaining_tokens,
              &out->reset_tokens_ms);
    pthread_mutex_unlock(&rl->lock);
}

/* As Go's time.Duration prints (which OpenAI's headers use), to the millisecond. */
void ratelimit_format_duration(uint64_t ms, char *out, size_t cap)
{
    if (ms == 0) {
        snprintf(out, cap, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, cap, "%" PRIu64 "ms", ms);
        return;
    }
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char secs[16];
    if (frac) {
        int n = snprintf(secs, sizeof secs, "%" PRIu64 ".%03" PRIu64, s, frac);
        while (n > 0 && secs[n - 1] == '0')
            secs[--n] = '\0';
    } else {
        snprintf(secs, sizeof secs, "%" PRIu64, s);
    }
    if (h)
        snprintf(out, cap, "%" PRIu64 "h%" PRIu64 "m%ss", h, m, secs);
    else if (m)
        snprintf(out, cap, "%" PRIu64 "m%ss", m, secs);
    else
        snprintf(out, cap, "%ss", secs);
}

size_t ratelimit_format_headers(const struct ratelimit_status *st, char *out, size_t cap)
{
    size_t used = 0;
    const struct {
        bool on;
        const char *kind;
        uint32_t limit, remaining;
        uint64_t reset_ms;
    } kinds[2] = {
        {st->requests_limited, "requests", st->limit_requests, st->remaining_requests,
         st->reset_requests_ms},
        {st->tokens_limited, "tokens", st->limit_tokens, st->remaining_tokens, st->reset_tokens_ms},
    };
    if (cap) out[0] = '\0';
    for (int i = 0; i < 2; i++) {
        if (!kinds[i].on) continue;
        char reset[32];
        ratelimit_format_duration(kinds[i].reset_ms, reset, sizeof reset);
        int n = snprintf(out + used, cap - used,
                         "x-ratelimit-limit-%s: %" PRIu32 "\r\n"
                         "x-ratelimit-remaining-%s: %" PRIu32 "\r\n"
                         "x-ratelimit-reset-%s: %s\r\n",
                         kinds[i].kind, kinds[i].limit, kinds[i].kind, kinds[i].remaining,
                         kinds[i].kind, reset);
        if (n < 0 || (size_t)n >= cap - used) {
            if (cap) out[0] = '\0';
            return 0;
        }
        used += (size_t)n;
    }
    return used;
}

uint64_t ratelimit_usage_tokens(const struct ratelimit_usage *u)
{
    if (u->reported_tokens >= 0) return (uint64_t)u->reported_tokens;
    if (!u->sent) return 0;
    uint64_t sum = u->prompt_tokens + u->streamed_tokens;
    return sum < u->prompt_tokens ? UINT64_MAX : sum;
}

void ratelimit_settle(struct ratelimit *rl, const char *key, const char *model, uint64_t estimated,
                      const struct ratelimit_usage *used, uint64_t now_ms)
{
    ratelimit_reconcile(rl, key, model, estimated, ratelimit_usage_tokens(used), now_ms);
}

uint64_t ratelimit_retry_after_seconds(uint64_t retry_after_ms)
{
    uint64_t s = retry_after_ms / 1000 + (retry_after_ms % 1000 != 0);
    return s ? s : 1;
}
