#include "obs/metrics.h"

#include "admit/budget.h"
#include "acct/ledger.h"
#include "net/read_budget.h"
#include "obs/reload_stats.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>


/* ---- fixed label sets ------------------------------------------------------------ */

enum status_class { SC_2XX, SC_3XX, SC_4XX, SC_5XX, SC__COUNT };
static const char *const status_class_names[SC__COUNT] = {"2xx", "3xx", "4xx", "5xx"};

/* Outcomes are enum outcome (outcome.h), counted by their value; OUTCOME_NONE is counted
   as ok or rejected (outcome_or_status), so its slot stays empty. */

static const char *const token_kind_names[METRICS_TOKENS__COUNT] = {"prompt", "completion",
                                                                    "reasoning", "cached"};

/* ---- histograms ------------------------------------------------------------------- */

#define HIST_MAX_BUCKETS 16 /* finite bounds; one more slot counts the rest (+Inf) */

struct hist_spec {
    const char *name;
    const char *help;
    size_t n;
    uint64_t bound_us[HIST_MAX_BUCKETS];
    const char *le[HIST_MAX_BUCKETS];
};

/* TTFT and whole requests: 50 ms .. 10 min on a ×2-2.5 scale, with an edge at
   exactly 1 s, where the latency alert draws its line. */
#define LONG_BOUNDS                                                                                \
    13, {50000,    100000,   250000,   500000,    1000000,   2500000,  5000000,                    \
         10000000, 25000000, 50000000, 100000000, 250000000, 600000000},                           \
    {                                                                                              \
        "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "25", "50", "100", "250", "600"       \
    }

enum hist_kind { H_TTFT, H_DURATION, H_INTER_TOKEN, H_QUEUE_WAIT, H__COUNT };

static const struct hist_spec hist_specs[H__COUNT] = {
    [H_TTFT] =
        {"unbusy_ttft_seconds",
         "Time from the request's arrival to the first content sent to the client, failed attempts "
         "included.",
         LONG_BOUNDS},
    [H_DURATION] = {"unbusy_request_duration_seconds",
                    "Time from a proxied request's arrival to its end.", LONG_BOUNDS},
    [H_INTER_TOKEN] = {"unbusy_inter_token_seconds",
                       "Gap between consecutive content events of an upstream stream.",
                       13,
                       {1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
                        2500000, 5000000, 10000000},
                       {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                        "1", "2.5", "5", "10"}},
    [H_QUEUE_WAIT] = {"unbusy_queue_wait_seconds",
                      "Time a request waited in the admission queue.",
                      15,
                      {1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
                       2500000, 5000000, 10000000, 25000000, 60000000},
                      {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                       "1", "2.5", "5", "10", "25", "60"}},
};

struct hist {
    uint64_t
        buckets[HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative; [n] is past the last bound */
    uint64_t sum_us;
};

/* ---- shards ----------------------------------------------------------------------- */

/* Single-writer counters: only the owning worker writes, so a relaxed load and
   store is an exact increment, and a reader on another thread sees either the
   old or the new value, never a torn one. */
static inline void bump(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t rd64(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

struct model_slot {
    struct hist h[H__COUNT];
    uint64_t attempts, shed, degraded;
    uint64_t continuations[METRICS_CONTINUATION__COUNT];
    uint64_t queue_depth;                  /* a gauge, set by the worker */
    uint64_t no_dep[SC__COUNT][OUTCOME__COUNT]; /* requests no deployment answered */
};

struct dep_slot {
    uint64_t requests[SC__COUNT][OUTCOME__COUNT];
    uint64_t tokens[METRICS_TOKENS__COUNT];
    uint64_t errors[HEALTH__COUNT];
};

/* The last content event per stream, for inter-token gaps: a direct-mapped
   table keyed by the attempt's address. A collision costs a sample, never a
   wrong one: the first content event of an attempt always resets its slot. */
#define ITL_SLOTS 1024
struct itl_slot {
    const void *key;
    uint64_t last_us;
};

struct metrics_shard {
    struct metrics *reg;
    const unsigned *nconns, *inflight;
    struct model_slot *models;
    struct dep_slot *deps; /* reg->dep_base[model] + deployment index */
    struct itl_slot itl[ITL_SLOTS];
};

struct metrics {
    struct runtime *rt;
    const struct config *cfg;
    size_t *dep_base;
    size_t ndeps;
    unsigned nshards;
    struct metrics_shard **shards;
    struct incidents incidents;
    struct ledger *ledger;   /* read at scrape time; NULL: none */
    struct budgets *budgets;
    struct {
        void (*render)(void *ud, struct buf *out);
        void *ud;
    } renderers[METRICS_MAX_RENDERERS];
    size_t nrenderers;
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void shard_free(struct metrics_shard *s)
{
    if (!s) return;
    free(s->models);
    free(s->deps);
    free(s);
}

struct metrics *metrics_new(struct runtime *rt, unsigned nshards)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->rt = rt;
    m->cfg = rt->cfg;
    m->nshards = nshards;
    incidents_init(&m->incidents);
    size_t nm = m->cfg->nmodels;
    m->dep_base = calloc(nm ? nm : 1, sizeof *m->dep_base);
    m->shards = calloc(nshards ? nshards : 1, sizeof *m->shards);
    if (!m->dep_base || !m->shards) {
        metrics_free(m);
        return NULL;
    }
    for (size_t i = 0; i < nm; i++) {
        m->dep_base[i] = m->ndeps;
        m->ndeps += m->cfg->models[i].ndeployments;
    }
    for (unsigned i = 0; i < nshards; i++) {
        /* Each shard in its own cache lines, so workers never share one. */
        struct metrics_shard *s = aligned_alloc(64, (sizeof *s + 63) / 64 * 64);
        if (!s) {
            metrics_free(m);
            return NULL;
        }
        memset(s, 0, sizeof *s);
        m->shards[i] = s;
        s->reg = m;
        s->models = aligned_alloc(64, ((nm ? nm : 1) * sizeof *s->models + 63) / 64 * 64);
        s->deps = aligned_alloc(64, ((m->ndeps ? m->ndeps : 1) * sizeof *s->deps + 63) / 64 * 64);
        if (!s->models || !s->deps) {
            metrics_free(m);
            return NULL;
        }
        memset(s->models, 0, (nm ? nm : 1) * sizeof *s->models);
        memset(s->deps, 0, (m->ndeps ? m->ndeps : 1) * sizeof *s->deps);
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m) return;
    for (unsigned i = 0; m->shards && i < m->nshards; i++)
        shard_free(m->shards[i]);
    free(m->shards);
    free(m->dep_base);
    incidents_destroy(&m->incidents);
    free(m);
}

struct metrics_shard *metrics_shard(struct metrics *m, unsigned i, const unsigned *nconns,
                                    const unsigned *inflight)
{
    if (!m || i >= m->nshards) return NULL;
    m->shards[i]->nconns = nconns;
    m->shards[i]->inflight = inflight;
    return m->shards[i];
}

struct metrics *metrics_of(struct metrics_shard *s)
{
    return s ? s->reg : NULL;
}

struct incidents *metrics_incidents(struct metrics *m)
{
    return m ? &m->incidents : NULL;
}

struct runtime *metrics_runtime(struct metrics *m)
{
    return m ? m->rt : NULL;
}

/* ---- hooks -------------------------------------------------------------------------- */

/* The model's index in the registry's config, or -1 (another snapshot's model). A
   model of another snapshot counts under its name (a request that began before a
   reload and ends after it), unless the registry's config has no model of that name. */
static long model_index(const struct metrics *m, const struct cfg_model *cm)
{
    uintptr_t p = (uintptr_t)cm, base = (uintptr_t)m->cfg->models;
    if (cm && p >= base && p < base + m->cfg->nmodels * sizeof *cm) return (long)((p - base) / sizeof *cm);
    const struct cfg_model *same = cm && cm->name ? config_find_model(m->cfg, cm->name) : NULL;
    return same ? (long)(same - m->cfg->models) : -1;
}

static struct dep_slot *dep_slot(struct metrics_shard *s, long mi, const struct cfg_deployment *d)
{
    const struct cfg_model *cm = &s->reg->cfg->models[mi];
    uintptr_t p = (uintptr_t)d, base = (uintptr_t)cm->deployments;
    if (!d) return NULL;
    if (p >= base && p < base + cm->ndeployments * sizeof *d)
        return &s->deps[s->reg->dep_base[mi] + (p - base) / sizeof *d];
    for (size_t j = 0; j < cm->ndeployments; j++) /* another snapshot's: by provider and model */
        if (strcmp(cm->deployments[j].provider->name, d->provider->name) == 0 &&
            strcmp(cm->deployments[j].model, d->model) == 0)
            return &s->deps[s->reg->dep_base[mi] + j];
    return NULL;
}

_Static_assert(sizeof(struct model_slot) % sizeof(uint64_t) == 0 &&
                   sizeof(struct dep_slot) % sizeof(uint64_t) == 0,
               "slots are copied as uint64_t words");

/* Words read and written as the counters are (relaxed atomics): the old shard's writer
   may be counting, and a scrape may read the new one. */
static void copy_words(void *dst, const void *src, size_t bytes)
{
    uint64_t *d = dst;
    const uint64_t *s = src;
    for (size_t k = 0; k < bytes / sizeof(uint64_t); k++)
        __atomic_store_n(&d[k], rd64(&s[k]), __ATOMIC_RELAXED);
}

static void add_words(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t k = 0; k < n; k++)
        __atomic_store_n(&dst[k], rd64(&dst[k]) + rd64(&src[k]), __ATOMIC_RELAXED);
}

/* The first deployment of cm on provider name, or -1. */
static long dep_on_provider(const struct cfg_model *cm, const char *name)
{
    for (size_t j = 0; j < cm->ndeployments; j++)
        if (strcmp(cm->deployments[j].provider->name, name) == 0) return (long)j;
    return -1;
}

/*
 * next's slots rebuilt from old's (idempotent: called at the reload, then again by the
 * worker as it switches), by model name and deployment (provider + model). A removed
 * deployment's requests and tokens go to another deployment of the same provider in
 * the model, if there is one, so the per-provider series never go down; its
 * per-deployment error series end with it.
 */
static void copy_shard(struct metrics_shard *next, struct metrics_shard *old)
{
    const struct metrics *nr = next->reg, *or = old->reg;
    static const struct dep_slot zero;
    for (size_t mi = 0; mi < nr->cfg->nmodels; mi++) {
        const struct cfg_model *cm = &nr->cfg->models[mi];
        long oi = model_index(or, cm);
        if (oi < 0) continue;
        copy_words(&next->models[mi], &old->models[oi], sizeof(struct model_slot));
        for (size_t j = 0; j < cm->ndeployments; j++) {
            struct dep_slot *od = dep_slot(old, oi, &cm->deployments[j]);
            copy_words(&next->deps[nr->dep_base[mi] + j], od ? od : &zero, sizeof zero);
        }
        const struct cfg_model *om = &or->cfg->models[oi];
        for (size_t j = 0; j < om->ndeployments; j++) {
            if (dep_slot(next, (long)mi, &om->deployments[j])) continue; /* kept: copied */
            long k = dep_on_provider(cm, om->deployments[j].provider->name);
            if (k < 0) continue;
            struct dep_slot *to = &next->deps[nr->dep_base[mi] + (size_t)k];
            const struct dep_slot *from = &old->deps[or->dep_base[oi] + j];
            add_words(&to->requests[0][0], &from->requests[0][0], SC__COUNT * OUTCOME__COUNT);
            add_words(to->tokens, from->tokens, METRICS_TOKENS__COUNT);
        }
    }
}

void metrics_carry(struct metrics *next, struct metrics *old)
{
    if (!next || !old) return;
    pthread_mutex_lock(&old->incidents.lock);
    pthread_mutex_lock(&next->incidents.lock);
    memcpy(next->incidents.ring, old->incidents.ring, sizeof next->incidents.ring);
    next->incidents.next = old->incidents.next;
    next->incidents.n = old->incidents.n;
    next->incidents.total = old->incidents.total;
    pthread_mutex_unlock(&next->incidents.lock);
    pthread_mutex_unlock(&old->incidents.lock);
    next->ledger = old->ledger;
    next->budgets = old->budgets;
    /* A first copy of every shard now, so that a scrape on a worker that has switched
       already never sees another worker's counters lower than before (a false reset);
       each worker copies its own again, exactly, as it switches. */
    unsigned n = next->nshards < old->nshards ? next->nshards : old->nshards;
    for (unsigned i = 0; i < n; i++)
        copy_shard(next->shards[i], old->shards[i]);
}

void metrics_shard_carry(struct metrics_shard *next, struct metrics_shard *old)
{
    if (next && old && next != old) copy_shard(next, old);
}

static void hist_observe(struct hist *h, enum hist_kind k, uint64_t us)
{
    const struct hist_spec *spec = &hist_specs[k];
    size_t i = 0;
    while (i < spec->n && us > spec->bound_us[i])
        i++;
    bump(&h->buckets[i], 1);
    bump(&h->sum_us, us);
}

static enum status_class status_class_of(int status)
{
    if (status < 300) return SC_2XX;
    if (status < 400) return SC_3XX;
    if (status < 500) return SC_4XX;
    return SC_5XX;
}

void metrics_request_done(struct metrics_shard *s, const struct cfg_model *m,
                          const struct cfg_deployment *d, const struct accesslog_entry *log,
                          uint64_t start_ms)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi < 0 || !log) return;
    struct model_slot *ms = &s->models[mi];
    struct dep_slot *ds = dep_slot(s, mi, d);
    enum status_class sc = status_class_of(log->status);
    enum outcome oc = outcome_or_status(log->outcome, log->status);
    bump(ds ? &ds->requests[sc][oc] : &ms->no_dep[sc][oc], 1);
    uint64_t now = runtime_now_ms();
    hist_observe(&ms->h[H_DURATION], H_DURATION, now > start_ms ? (now - start_ms) * 1000u : 0);
    if (log->ttft_ms >= 0) hist_observe(&ms->h[H_TTFT], H_TTFT, (uint64_t)log->ttft_ms * 1000u);
    bump(&ms->attempts, log->attempts);
    if (ds) {
        const int64_t t[METRICS_TOKENS__COUNT] = {log->prompt_tokens, log->completion_tokens,
                                                  log->reasoning_tokens, log->cached_tokens};
        for (int k = 0; k < METRICS_TOKENS__COUNT; k++)
            if (t[k] > 0) bump(&ds->tokens[k], (uint64_t)t[k]);
    }
    if (oc == OUTCOME_UPSTREAM_FAILED)
        incidents_add(&s->reg->incidents, INCIDENT_REQUEST_FAILED, m->name, NULL, HEALTH_OK,
                      log->status, wall_ms());
}

void metrics_attempt_end(struct metrics_shard *s, const struct cfg_model *m,
                         const struct cfg_deployment *d, enum health_class c,
                         unsigned health_events, int status, enum incident_kind failed_as)
{
    long mi = s ? model_index(s->reg, m) : -1;
    struct dep_slot *ds = mi >= 0 ? dep_slot(s, mi, d) : NULL;
    bool failed = c != HEALTH_OK && (unsigned)c < HEALTH__COUNT;
    if (!ds || (!failed && !health_events)) return; /* the usual answer: nothing to record */
    char key[192];
    snprintf(key, sizeof key, "%s/%s", d->provider->name, d->model);
    uint64_t now = 0;
    if (failed) {
        bump(&ds->errors[c], 1);
        now = wall_ms();
        incidents_add(&s->reg->incidents, failed_as, m->name, key, c, status, now);
    }
    if (!health_events) return;
    if (!now) now = wall_ms();
    if (health_events & HEALTH_EVENT_TRIPPED)
        incidents_add(&s->reg->incidents, INCIDENT_BREAKER_OPENED, m->name, key, c, 0, now);
    if (health_events & HEALTH_EVENT_CLOSED)
        incidents_add(&s->reg->incidents, INCIDENT_BREAKER_CLOSED, m->name, key, HEALTH_OK, 0, now);
    if (health_events & HEALTH_EVENT_AUTH_FIRST)
        incidents_add(&s->reg->incidents, INCIDENT_AUTH_REFUSED, m->name, key, HEALTH_AUTH, status,
                      now);
}

void metrics_hedged(struct metrics_shard *s, const struct cfg_model *m, const struct cfg_deployment *d)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi < 0 || !dep_slot(s, mi, d)) return;
    char key[192];
    snprintf(key, sizeof key, "%s/%s", d->provider->name, d->model);
    incidents_add(&s->reg->incidents, INCIDENT_HEDGED, m->name, key, HEALTH_OK, 0, wall_ms());
}

void metrics_continuation(struct metrics_shard *s, const struct cfg_model *m, enum metrics_continuation r)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi >= 0 && (unsigned)r < METRICS_CONTINUATION__COUNT) bump(&s->models[mi].continuations[r], 1);
}

void metrics_content_event(struct metrics_shard *s, const struct cfg_model *m, const void *stream,
                           bool had_content)
{
    metrics_content_event_at(s, m, stream, had_content, mono_us());
}

void metrics_content_event_at(struct metrics_shard *s, const struct cfg_model *m,
                              const void *stream, bool had_content, uint64_t now)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi < 0) return;
    struct itl_slot *slot = &s->itl[((uintptr_t)stream * 0x9E3779B97F4A7C15ULL) >> (64 - 10)];
    if (had_content && slot->key == stream && now >= slot->last_us)
        hist_observe(&s->models[mi].h[H_INTER_TOKEN], H_INTER_TOKEN, now - slot->last_us);
    slot->key = stream;
    slot->last_us = now;
}

void metrics_queue_depth_set(struct metrics_shard *s, const struct cfg_model *m, uint32_t depth)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi >= 0) __atomic_store_n(&s->models[mi].queue_depth, depth, __ATOMIC_RELAXED);
}

void metrics_queue_wait(struct metrics_shard *s, const struct cfg_model *m, uint64_t wait_us)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi >= 0) hist_observe(&s->models[mi].h[H_QUEUE_WAIT], H_QUEUE_WAIT, wait_us);
}

void metrics_shed(struct metrics_shard *s, const struct cfg_model *m)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi >= 0) bump(&s->models[mi].shed, 1);
}

void metrics_degraded(struct metrics_shard *s, const struct cfg_model *m)
{
    long mi = s ? model_index(s->reg, m) : -1;
    if (mi >= 0) bump(&s->models[mi].degraded, 1);
}

/* ---- summing the shards ------------------------------------------------------------ */

/* Adds the shards' dep slot di into *out (which the caller zeroed). */
static void sum_dep(const struct metrics *m, size_t di, struct dep_slot *out)
{
    for (unsigned w = 0; w < m->nshards; w++) {
        const struct dep_slot *d = &m->shards[w]->deps[di];
        for (int a = 0; a < SC__COUNT; a++)
            for (int b = 0; b < OUTCOME__COUNT; b++)
                out->requests[a][b] += rd64(&d->requests[a][b]);
        for (int k = 0; k < METRICS_TOKENS__COUNT; k++)
            out->tokens[k] += rd64(&d->tokens[k]);
        for (int c = 0; c < HEALTH__COUNT; c++)
            out->errors[c] += rd64(&d->errors[c]);
    }
}

static void sum_hist(const struct metrics *m, size_t mi, enum hist_kind k, struct hist *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned w = 0; w < m->nshards; w++) {
        const struct hist *h = &m->shards[w]->models[mi].h[k];
        for (size_t i = 0; i <= hist_specs[k].n; i++)
            out->buckets[i] += rd64(&h->buckets[i]);
        out->sum_us += rd64(&h->sum_us);
    }
}

static uint64_t sum_model_field(const struct metrics *m, size_t mi, size_t offset)
{
    uint64_t v = 0;
    for (unsigned w = 0; w < m->nshards; w++)
        v += rd64((const uint64_t *)((const char *)&m->shards[w]->models[mi] + offset));
    return v;
}

int metrics_dep_totals(struct metrics *m, size_t model, size_t dep, struct metrics_dep_totals *out)
{
    memset(out, 0, sizeof *out);
    if (!m || model >= m->cfg->nmodels || dep >= m->cfg->models[model].ndeployments) return -1;
    struct dep_slot d;
    memset(&d, 0, sizeof d);
    sum_dep(m, m->dep_base[model] + dep, &d);
    for (int a = 0; a < SC__COUNT; a++)
        for (int b = 0; b < OUTCOME__COUNT; b++) {
            out->requests += d.requests[a][b];
            if (b == OUTCOME_UPSTREAM_FAILED || b == OUTCOME_MID_STREAM_ERROR)
                out->failed += d.requests[a][b];
        }
    for (int c = 1; c < HEALTH__COUNT; c++)
        out->errors += d.errors[c];
    memcpy(out->tokens, d.tokens, sizeof out->tokens);
    return 0;
}

/* ---- rendering ---------------------------------------------------------------------- */

struct label {
    const char *name;
    const char *value;
};

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed escaped, as the format asks. */
static void label_value(struct buf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (!esc) continue;
        buf_append(b, run, (size_t)(s - run));
        buf_append_str(b, esc);
        run = s + 1;
    }
    buf_append(b, run, (size_t)(s - run));
}

static void series(struct buf *b, const char *name, const char *suffix, const struct label *l,
                   size_t n)
{
    buf_append_str(b, name);
    if (suffix) buf_append_str(b, suffix);
    if (n == 0) return;
    buf_append_str(b, "{");
    for (size_t i = 0; i < n; i++) {
        buf_printf(b, "%s%s=\"", i ? "," : "", l[i].name);
        label_value(b, l[i].value ? l[i].value : "");
        buf_append_str(b, "\"");
    }
    buf_append_str(b, "}");
}

static void sample_u(struct buf *b, const char *name, const struct label *l, size_t n, uint64_t v)
{
    series(b, name, NULL, l, n);
    buf_printf(b, " %llu\n", (unsigned long long)v);
}

static void sample_f(struct buf *b, const char *name, const struct label *l, size_t n, double v)
{
    series(b, name, NULL, l, n);
    buf_printf(b, " %.9g\n", v);
}

static void render_hist(struct buf *b, const struct metrics *m, enum hist_kind k)
{
    const struct hist_spec *spec = &hist_specs[k];
    family(b, spec->name, "histogram", spec->help);
    for (size_t mi = 0; mi < m->cfg->nmodels; mi++) {
        struct hist h;
        sum_hist(m, mi, k, &h);
        struct label l[2] = {{"model", m->cfg->models[mi].name}, {"le", NULL}};
        uint64_t cum = 0;
        for (size_t i = 0; i <= spec->n; i++) {
            cum += h.buckets[i];
            l[1].value = i < spec->n ? spec->le[i] : "+Inf";
            series(b, spec->name, "_bucket", l, 2);
            buf_printf(b, " %llu\n", (unsigned long long)cum);
        }
        series(b, spec->name, "_sum", l, 1);
        buf_printf(b, " %.6f\n", (double)h.sum_us / 1e6);
        series(b, spec->name, "_count", l, 1);
        buf_printf(b, " %llu\n", (unsigned long long)cum);
    }
}

/* Deployments of a model that share a provider are one requests/tokens series. */
static bool provider_seen_before(const struct cfg_model *cm, size_t j)
{
    for (size_t k = 0; k < j; k++)
        if (cm->deployments[k].provider == cm->deployments[j].provider) return true;
    return false;
}

/* The slots of every deployment of model mi on deployment j's provider, summed. */
static void sum_provider(const struct metrics *m, size_t mi, size_t j, struct dep_slot *out)
{
    const struct cfg_model *cm = &m->cfg->models[mi];
    memset(out, 0, sizeof *out);
    for (size_t k = j; k < cm->ndeployments; k++)
        if (cm->deployments[k].provider == cm->deployments[j].provider)
            sum_dep(m, m->dep_base[mi] + k, out);
}

static void render_requests(struct buf *b, const struct metrics *m)
{
    family(b, "unbusy_requests_total", "counter",
           "Proxied requests by the provider that answered (or was tried last; \"none\" when none "
           "could "
           "be), status class and outcome.");
    for (size_t mi = 0; mi < m->cfg->nmodels; mi++) {
        const struct cfg_model *cm = &m->cfg->models[mi];
        struct label l[4] = {
            {"model", cm->name}, {"provider", NULL}, {"status_class", NULL}, {"outcome", NULL}};
        for (size_t j = 0; j <= cm->ndeployments; j++) {
            struct dep_slot d;
            if (j < cm->ndeployments) {
                if (provider_seen_before(cm, j)) continue;
                sum_provider(m, mi, j, &d);
                l[1].value = cm->deployments[j].provider->name;
            } else {
                memset(&d, 0, sizeof d);
                for (unsigned w = 0; w < m->nshards; w++)
                    for (int a = 0; a < SC__COUNT; a++)
                        for (int o = 0; o < OUTCOME__COUNT; o++)
                            d.requests[a][o] += rd64(&m->shards[w]->models[mi].no_dep[a][o]);
                l[1].value = "none";
            }
            for (int a = 0; a < SC__COUNT; a++) {
                for (int o = 0; o < OUTCOME__COUNT; o++) {
                    /* The two series an error ratio divides always exist (rate() needs a
                       start); the others appear when they first count. */
                    bool always =
                        j < cm->ndeployments &&
                        ((a == SC_2XX && o == OUTCOME_OK) || (a == SC_5XX && o == OUTCOME_UPSTREAM_FAILED));
                    if (!always && d.requests[a][o] == 0) continue;
                    l[2].value = status_class_names[a];
                    l[3].value = outcome_name((enum outcome)o);
                    sample_u(b, "unbusy_requests_total", l, 4, d.requests[a][o]);
                }
            }
        }
    }
}

static void render_tokens(struct buf *b, const struct metrics *m)
{
    family(b, "unbusy_tokens_total", "counter",
           "Tokens of finished requests as the provider reported them in usage, by kind (reasoning "
           "and "
           "cached are parts of completion and prompt).");
    for (size_t mi = 0; mi < m->cfg->nmodels; mi++) {
        const struct cfg_model *cm = &m->cfg->models[mi];
        for (size_t j = 0; j < cm->ndeployments; j++) {
            if (provider_seen_before(cm, j)) continue;
            struct dep_slot d;
            sum_provider(m, mi, j, &d);
            for (int k = 0; k < METRICS_TOKENS__COUNT; k++) {
                struct label l[3] = {{"model", cm->name},
                                     {"provider", cm->deployments[j].provider->name},
                                     {"kind", token_kind_names[k]}};
                sample_u(b, "unbusy_tokens_total", l, 3, d.tokens[k]);
            }
        }
    }
}

static void render_model_counters(struct buf *b, const struct metrics *m)
{
    const struct config *cfg = m->cfg;
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } per_model[] = {
        {"unbusy_attempts_total", "counter",
         "Attempts started (deployments tried, hedges included).",
         offsetof(struct model_slot, attempts)},
        {"unbusy_shed_total", "counter", "Requests refused by admission (429 with Retry-After).",
         offsetof(struct model_slot, shed)},
        {"unbusy_degraded_total", "counter",
         "Requests served by a degraded (smaller) deployment under load.",
         offsetof(struct model_slot, degraded)},
        {"unbusy_queue_depth", "gauge", "Requests waiting in the admission queue.",
         offsetof(struct model_slot, queue_depth)},
    };
    for (size_t f = 0; f < sizeof per_model / sizeof per_model[0]; f++) {
        family(b, per_model[f].name, per_model[f].type, per_model[f].help);
        for (size_t mi = 0; mi < cfg->nmodels; mi++) {
            struct label l = {"model", cfg->models[mi].name};
            sample_u(b, per_model[f].name, &l, 1, sum_model_field(m, mi, per_model[f].offset));
        }
    }
    family(b, "unbusy_failovers_total", "counter",
           "Times a request moved on to another deployment after a failed attempt.");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        struct label l = {"model", cfg->models[mi].name};
        sample_u(b, "unbusy_failovers_total", &l, 1, atomic_load(&m->rt->models[mi].failovers));
    }
    family(b, "unbusy_hedges_total", "counter",
           "Hedged attempts: started, won (the hedge answered first), wasted (the first attempt "
           "won).");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        struct runtime_model *rm = &m->rt->models[mi];
        const uint64_t v[3] = {atomic_load(&rm->hedges_started), atomic_load(&rm->hedges_won),
                               atomic_load(&rm->hedges_wasted)};
        static const char *const results[3] = {"started", "won", "wasted"};
        for (int i = 0; i < 3; i++) {
            struct label l[2] = {{"model", cfg->models[mi].name}, {"result", results[i]}};
            sample_u(b, "unbusy_hedges_total", l, 2, v[i]);
        }
    }
    family(b, "unbusy_hedges_started_total", "counter",
           "Hedged attempts started, by what set the delay: the first-token budget learnt from "
           "the deployment (learnt), from its siblings, from its shorter prompts, the cold "
           "default, or hedge.after (configured).");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        struct runtime_model *rm = &m->rt->models[mi];
        for (int r = 0; r < RUNTIME_HEDGE__REASONS; r++) {
            struct label l[2] = {{"model", cfg->models[mi].name},
                                 {"reason", runtime_hedge_reason_name((enum runtime_hedge_reason)r)}};
            sample_u(b, "unbusy_hedges_started_total", l, 2, atomic_load(&rm->hedges_by_reason[r]));
        }
    }
    family(b, "unbusy_hedges_skipped_total", "counter",
           "First-token budgets that passed without a hedge: the hedge budget was spent (budget) "
           "or no other deployment was eligible (no_deployment).");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        struct runtime_model *rm = &m->rt->models[mi];
        struct label l[2] = {{"model", cfg->models[mi].name}, {"reason", "budget"}};
        sample_u(b, "unbusy_hedges_skipped_total", l, 2, atomic_load(&rm->hedges_denied));
        l[1].value = "no_deployment";
        sample_u(b, "unbusy_hedges_skipped_total", l, 2, atomic_load(&rm->hedges_no_deployment));
    }
    family(b, "unbusy_continuations_total", "counter",
           "Streams cut after their first byte: continued to a complete answer (ok), continued but "
           "failed all the same (failed), not continued because it was unsafe (unsafe).");
    static const char *const cont_results[METRICS_CONTINUATION__COUNT] = {"ok", "failed", "unsafe"};
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        for (int r = 0; r < METRICS_CONTINUATION__COUNT; r++) {
            struct label l[2] = {{"model", cfg->models[mi].name}, {"result", cont_results[r]}};
            sample_u(b, "unbusy_continuations_total", l, 2,
                     sum_model_field(m, mi, offsetof(struct model_slot, continuations) +
                                                       (size_t)r * sizeof(uint64_t)));
        }
    }
    family(b, "unbusy_retry_budget_exhausted_total", "counter",
           "Requests that could not fail over because the model's retry budget was spent.");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        struct label l = {"model", cfg->models[mi].name};
        sample_u(b, "unbusy_retry_budget_exhausted_total", &l, 1,
                 atomic_load(&m->rt->models[mi].budget_exhausted));
    }
}

static int breaker_value(const char *name)
{
    return strcmp(name, "open") == 0 ? 2 : strcmp(name, "half_open") == 0 ? 1 : 0;
}

static void render_deployments(struct buf *b, const struct metrics *m)
{
    const struct config *cfg = m->cfg;
    uint64_t now = runtime_now_ms();
    size_t ndeps = m->ndeps ? m->ndeps : 1;
    struct health_snapshot *snap = calloc(ndeps, sizeof *snap);
    bool *up = calloc(ndeps, sizeof *up);
    if (!snap || !up) {
        free(snap);
        free(up);
        return;
    }
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        for (size_t j = 0; j < m->rt->models[mi].ndeps; j++) {
            struct runtime_dep *rd = &m->rt->models[mi].deps[j];
            size_t di = m->dep_base[mi] + j;
            health_snapshot(rd->health, now, &snap[di]);
            const char *why = NULL;
            bool eligible = runtime_dep_eligible(rd, now, &why);
            /* Up: the breaker is closed and nothing but load keeps requests away. */
            up[di] =
                strcmp(snap[di].breaker, "closed") == 0 &&
                (eligible || (why && (strcmp(why, "saturated") == 0 || strcmp(why, "rpm") == 0)));
        }
    }
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"unbusy_deployment_breaker_state", "gauge",
         "Circuit breaker: 0 closed, 1 half-open, 2 open."},
        {"unbusy_deployment_up", "gauge",
         "1 when the deployment takes requests (breaker closed, enabled, probes passing; at most "
         "at its "
         "concurrency or RPM cap), else 0."},
        {"unbusy_deployment_inflight", "gauge", "Attempts in flight on the deployment."},
        {"unbusy_deployment_ttft_ewma_seconds", "gauge",
         "Peak-EWMA of the deployment's time to first token."},
        {"unbusy_deployment_breaker_trips_total", "counter",
         "Times the deployment's breaker opened."},
        {"unbusy_deployment_concurrency_limit", "gauge",
         "Requests the deployment may have in flight now: max_concurrency, or the learnt limit "
         "(scaled by slow start)."},
        {"unbusy_deployment_slow_start_factor", "gauge",
         "Share of its weight a recovering deployment gets now (1 outside slow start)."},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t mi = 0; mi < cfg->nmodels; mi++) {
            const struct cfg_model *cm = &cfg->models[mi];
            for (size_t j = 0; j < cm->ndeployments; j++) {
                size_t di = m->dep_base[mi] + j;
                struct label l[3] = {{"model", cm->name},
                                     {"provider", cm->deployments[j].provider->name},
                                     {"deployment_model", cm->deployments[j].model}};
                switch (f) {
                case 0:
                    sample_u(b, fams[f].name, l, 3, (uint64_t)breaker_value(snap[di].breaker));
                    break;
                case 1:
                    sample_u(b, fams[f].name, l, 3, up[di] ? 1 : 0);
                    break;
                case 2:
                    sample_u(b, fams[f].name, l, 3, snap[di].inflight);
                    break;
                case 3:
                    sample_f(b, fams[f].name, l, 3, snap[di].ewma_ttft_ms / 1000.0);
                    break;
                case 4:
                    sample_u(b, fams[f].name, l, 3, snap[di].trips);
                    break;
                case 5:
                    sample_u(b, fams[f].name, l, 3, snap[di].concurrency_limit);
                    break;
                default:
                    sample_f(b, fams[f].name, l, 3, snap[di].slow_start_factor);
                    break;
                }
            }
        }
    }
    family(b, "unbusy_deployment_first_token_budget_seconds", "gauge",
           "The first-token budget in use (after it a request is hedged), for a short (200 tokens) "
           "and a long (20,000 tokens) prompt.");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        const struct cfg_model *cm = &cfg->models[mi];
        struct runtime_model *rm = &m->rt->models[mi];
        for (size_t j = 0; j < cm->ndeployments; j++) {
            static const struct {
                const char *name;
                uint32_t tokens;
            } sizes[2] = {{"short", TTFT_BUDGET_SHORT_TOKENS}, {"long", TTFT_BUDGET_LONG_TOKENS}};
            for (int k = 0; k < 2; k++) {
                struct label l[4] = {{"model", cm->name},
                                     {"provider", cm->deployments[j].provider->name},
                                     {"deployment_model", cm->deployments[j].model},
                                     {"prompt", sizes[k].name}};
                uint32_t ms = runtime_dep_first_token_budget(rm, &rm->deps[j], sizes[k].tokens, NULL);
                sample_f(b, "unbusy_deployment_first_token_budget_seconds", l, 4, ms / 1000.0);
            }
        }
    }
    family(b, "unbusy_upstream_errors_total", "counter",
           "Failed attempts by deployment and error class (before or after the first byte).");
    for (size_t mi = 0; mi < cfg->nmodels; mi++) {
        const struct cfg_model *cm = &cfg->models[mi];
        for (size_t j = 0; j < cm->ndeployments; j++) {
            struct dep_slot d;
            memset(&d, 0, sizeof d);
            sum_dep(m, m->dep_base[mi] + j, &d);
            for (int c = 1; c < HEALTH__COUNT; c++) {
                if (!d.errors[c]) continue;
                struct label l[4] = {{"model", cm->name},
                                     {"provider", cm->deployments[j].provider->name},
                                     {"deployment_model", cm->deployments[j].model},
                                     {"class", health_class_name((enum health_class)c)}};
                sample_u(b, "unbusy_upstream_errors_total", l, 4, d.errors[c]);
            }
        }
    }
    free(snap);
    free(up);
}

static void render_probes(struct buf *b, const struct metrics *m)
{
    family(b, "unbusy_probe_up", "gauge",
           "Active probes: 1 when the provider is up, 0 when they marked it down (providers with "
           "probes on).");
    for (size_t i = 0; i < m->cfg->nproviders; i++) {
        const struct runtime_provider *p = &m->rt->providers[i];
        if (!p->cfg->probe.enabled) continue;
        struct label l = {"provider", p->cfg->name};
        sample_u(b, "unbusy_probe_up", &l, 1, atomic_load(&p->probe_down) ? 0 : 1);
    }
}

static void render_workers(struct buf *b, const struct metrics *m)
{
    uint64_t conns = 0, inflight = 0;
    for (unsigned w = 0; w < m->nshards; w++) {
        const struct metrics_shard *s = m->shards[w];
        if (s->nconns) conns += __atomic_load_n(s->nconns, __ATOMIC_RELAXED);
        if (s->inflight) inflight += __atomic_load_n(s->inflight, __ATOMIC_RELAXED);
    }
    family(b, "unbusy_open_connections", "gauge", "Open client connections.");
    sample_u(b, "unbusy_open_connections", NULL, 0, conns);
    family(b, "unbusy_inflight_requests", "gauge", "Proxied requests being answered.");
    sample_u(b, "unbusy_inflight_requests", NULL, 0, inflight);
    family(b, "unbusy_upstream_reads_postponed_total", "counter",
           "Upstream reads a loop iteration left to a later one, its time budget spent.");
    sample_u(b, "unbusy_upstream_reads_postponed_total", NULL, 0, read_budget_postponed_total());
}

/* Process metrics from /proc/self, named as every Prometheus client library names them. */
static void render_process(struct buf *b)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char text[1024];
    size_t n = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    if (f) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    unsigned long utime = 0, stime = 0, vsize = 0;
    unsigned long long start_ticks = 0;
    long rss = 0;
    const char *p = strrchr(text, ')'); /* the command name may hold spaces and parentheses */
    bool stat_ok =
        p && tick > 0 &&
        sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%llu %lu %ld",
               &utime, &stime, &start_ticks, &vsize, &rss) == 5;
    if (stat_ok) {
        family(b, "process_cpu_seconds_total", "counter",
               "User and system CPU time spent, in seconds.");
        sample_f(b, "process_cpu_seconds_total", NULL, 0, (double)(utime + stime) / (double)tick);
        family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        sample_u(b, "process_resident_memory_bytes", NULL, 0,
                 (uint64_t)(rss > 0 ? rss : 0) * (uint64_t)page);
        family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        sample_u(b, "process_virtual_memory_bytes", NULL, 0, vsize);
        unsigned long long btime = 0;
        FILE *s = fopen("/proc/stat", "re");
        char line[256];
        while (s && fgets(line, sizeof line, s))
            if (sscanf(line, "btime %llu", &btime) == 1) break;
        if (s) fclose(s);
        if (btime) {
            family(b, "process_start_time_seconds", "gauge",
                   "Start time of the process since the epoch, in seconds.");
            buf_printf(b, "process_start_time_seconds %.2f\n",
                       (double)btime + (double)start_ticks / (double)tick);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t fds = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        family(b, "process_open_fds", "gauge", "Open file descriptors.");
        sample_u(b, "process_open_fds", NULL, 0,
                 fds ? fds - 1 : 0); /* not the one reading the directory */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sample_u(b, "process_max_fds", NULL, 0, (uint64_t)rl.rlim_cur);
    }
}

void metrics_set_sources(struct metrics *m, struct ledger *l, struct budgets *b)
{
    if (!m) return;
    m->ledger = l;
    m->budgets = b;
}

/* The ledger's and the budgets' own counters: a loss is never silent. */
static void render_ledger_budgets(struct buf *b, struct metrics *m)
{
    struct ledger_stats ls;
    ledger_stats(m->ledger, &ls);
    family(b, "unbusy_ledger_records_total", "counter",
           "Usage records by what became of them: written, dropped because the queue was full, lost to a "
           "database error.");
    static const char *const results[] = {"written", "dropped_full", "dropped_error"};
    const uint64_t vals[] = {ls.written, ls.dropped_full, ls.dropped_error};
    for (size_t i = 0; i < 3; i++) {
        struct label l = {"result", results[i]};
        sample_u(b, "unbusy_ledger_records_total", &l, 1, vals[i]);
    }
    family(b, "unbusy_ledger_queue_depth", "gauge", "Usage records waiting for the ledger's writer.");
    sample_u(b, "unbusy_ledger_queue_depth", NULL, 0, ls.depth);
    family(b, "unbusy_ledger_up", "gauge", "1 while the ledger's database is open.");
    sample_u(b, "unbusy_ledger_up", NULL, 0, ls.open ? 1 : 0);
    if (!m->budgets) return;
    struct budgets_stats bs;
    budgets_stats(m->budgets, &bs);
    family(b, "unbusy_budget_alerts_total", "counter",
           "Budget alerts: fired, delivered to the webhook, failed after every retry, dropped (queue full).");
    static const char *const bres[] = {"fired", "delivered", "failed", "dropped"};
    const uint64_t bvals[] = {bs.fired, bs.delivered, bs.failed, bs.dropped};
    for (size_t i = 0; i < 4; i++) {
        struct label l = {"result", bres[i]};
        sample_u(b, "unbusy_budget_alerts_total", &l, 1, bvals[i]);
    }
}

void metrics_render(struct metrics *m, struct buf *out)
{
    if (!m) return;
    render_ledger_budgets(out, m);
    render_requests(out, m);
    render_hist(out, m, H_DURATION);
    render_hist(out, m, H_TTFT);
    render_hist(out, m, H_INTER_TOKEN);
    render_tokens(out, m);
    render_model_counters(out, m);
    render_hist(out, m, H_QUEUE_WAIT);
    render_deployments(out, m);
    render_probes(out, m);
    render_workers(out, m);
    render_process(out);
    reload_stats_render(out, m->rt->generation);
    for (size_t i = 0; i < m->nrenderers; i++)
        m->renderers[i].render(m->renderers[i].ud, out);
}

void metrics_add_renderer(struct metrics *m, void (*render)(void *ud, struct buf *out), void *ud)
{
    if (!m || !render || m->nrenderers == METRICS_MAX_RENDERERS) return;
    m->renderers[m->nrenderers].render = render;
    m->renderers[m->nrenderers].ud = ud;
    m->nrenderers++;
}
