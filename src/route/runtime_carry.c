/*
 * runtime_carry — matching generations by name and key (runtime_carry.h).
 * Everything here runs on the thread that builds the next generation; the old
 * one is only read (its shared states are reference-counted and locked).
 */
#include "route/runtime_carry.h"

#include <stdio.h>
#include <string.h>

/* The report's JSON stays small whatever the config: names beyond this are summarised. */
#define CARRY_REPORT_MAX_BYTES (64 * 1024)

static bool str_same(const char *a, const char *b)
{
    return (a ? a : "")[0] == (b ? b : "")[0] && strcmp(a ? a : "", b ? b : "") == 0;
}

bool runtime_carry_same_dep(const struct cfg_deployment *a, const struct cfg_deployment *b)
{
    return str_same(a->provider->name, b->provider->name) && str_same(a->model, b->model) &&
           str_same(a->provider->base_url, b->provider->base_url);
}

struct runtime_model *runtime_carry_find_model(struct runtime *old, const char *name)
{
    for (size_t i = 0; old && i < old->cfg->nmodels; i++)
        if (strcmp(old->models[i].cfg->name, name) == 0) return &old->models[i];
    return NULL;
}

/* Has a deployment of the generation being built already taken this state? */
static bool taken(struct runtime *built, const struct runtime_dep_state *st)
{
    for (size_t i = 0; i < built->cfg->nmodels; i++) {
        const struct runtime_model *rm = &built->models[i];
        for (size_t j = 0; rm->deps && j < rm->ndeps; j++)
            if (rm->deps[j].state == st) return true;
    }
    return false;
}

struct runtime_dep *runtime_carry_find_dep(struct runtime *old, struct runtime *built,
                                           const char *model_name, const struct cfg_deployment *d)
{
    struct runtime_model *om = runtime_carry_find_model(old, model_name);
    for (size_t j = 0; om && j < om->ndeps; j++)
        if (runtime_carry_same_dep(om->deps[j].cfg, d) && !taken(built, om->deps[j].state))
            return &om->deps[j];
    for (size_t i = 0; old && i < old->cfg->nmodels; i++) {
        struct runtime_model *rm = &old->models[i];
        for (size_t j = 0; j < rm->ndeps; j++)
            if (runtime_carry_same_dep(rm->deps[j].cfg, d) && !taken(built, rm->deps[j].state))
                return &rm->deps[j];
    }
    return NULL;
}

void runtime_carry_provider(struct runtime_provider *rp, struct runtime *old)
{
    for (size_t i = 0; old && i < old->cfg->nproviders; i++) {
        struct runtime_provider *op = &old->providers[i];
        if (strcmp(op->cfg->name, rp->cfg->name) != 0) continue;
        if (!str_same(op->cfg->base_url, rp->cfg->base_url))
            return; /* moved: what the probes found was about the old address */
        atomic_store(&rp->probe_down, atomic_load(&op->probe_down));
        atomic_store(&rp->probe_ok_streak, atomic_load(&op->probe_ok_streak));
        atomic_store(&rp->probe_fail_streak, atomic_load(&op->probe_fail_streak));
        atomic_store(&rp->probes_ok, atomic_load(&op->probes_ok));
        atomic_store(&rp->probes_failed, atomic_load(&op->probes_failed));
        atomic_store(&rp->probe_last_ms, atomic_load(&op->probe_last_ms));
        /* the old probes are stopped before the new generation is built: no writer */
        memcpy(rp->probe_last_error, op->probe_last_error, sizeof rp->probe_last_error);
        rp->probe_last_error[sizeof rp->probe_last_error - 1] = 0;
        if (rp->engine.enabled && op->engine.enabled) { /* what the engine's metrics said */
#define COPY_ENGINE(f) atomic_store(&rp->engine.f, atomic_load(&op->engine.f))
            COPY_ENGINE(waiting);
            COPY_ENGINE(running);
            COPY_ENGINE(kv_permille);
            COPY_ENGINE(own_at_scrape);
            COPY_ENGINE(scraped_at_ms);
            COPY_ENGINE(seq);
            COPY_ENGINE(fail_streak);
            COPY_ENGINE(scrapes_ok);
            COPY_ENGINE(scrapes_failed);
            COPY_ENGINE(marked_down);
#undef COPY_ENGINE
        }
        return;
    }
}

void runtime_carry_model_counters(struct runtime_model *rm, struct runtime_model *om)
{
#define COPY(f) atomic_store(&rm->f, atomic_load(&om->f))
    COPY(requests);
    COPY(failovers);
    COPY(budget_exhausted);
    COPY(hedges_started);
    COPY(hedges_won);
    COPY(hedges_wasted);
    COPY(hedges_denied);
    COPY(hedges_no_deployment);
    for (int k = 0; k < RUNTIME_HEDGE__REASONS; k++)
        COPY(hedges_by_reason[k]);
#undef COPY
}

/* ---- the report ----------------------------------------------------------------- */

static bool dep_in(const struct runtime_model *m, const struct cfg_deployment *d)
{
    for (size_t j = 0; m && j < m->ndeps; j++)
        if (runtime_carry_same_dep(m->deps[j].cfg, d)) return true;
    return false;
}

/* Appends "name" to a JSON list being written, unless the buffer is near its bound. */
static void put_name(struct buf *b, bool *first, const char *a, const char *sep, const char *c)
{
    if (b->len > CARRY_REPORT_MAX_BYTES - 512) return;
    if (!*first) buf_append_str(b, ",");
    *first = false;
    char name[400];
    snprintf(name, sizeof name, "%s%s%s", a, sep ? sep : "", c ? c : "");
    buf_append_json_str(b, name, strlen(name));
}

enum which { ADDED, REMOVED, KEPT };

static void models_list(struct buf *b, struct runtime *old, struct runtime *next, enum which w,
                        unsigned *count)
{
    bool first = true;
    struct runtime *from = w == REMOVED ? old : next, *other = w == REMOVED ? next : old;
    for (size_t i = 0; i < from->cfg->nmodels; i++) {
        const char *name = from->models[i].cfg->name;
        bool there = runtime_carry_find_model(other, name) != NULL;
        if ((w == KEPT) != there) continue;
        (*count)++;
        put_name(b, &first, name, NULL, NULL);
    }
}

static void deps_list(struct buf *b, struct runtime *old, struct runtime *next, enum which w,
                      unsigned *count)
{
    bool first = true;
    struct runtime *from = w == REMOVED ? old : next, *other = w == REMOVED ? next : old;
    for (size_t i = 0; i < from->cfg->nmodels; i++) {
        const struct runtime_model *m = &from->models[i];
        const struct runtime_model *om = runtime_carry_find_model(other, m->cfg->name);
        for (size_t j = 0; j < m->ndeps; j++) {
            bool there = dep_in(om, m->deps[j].cfg);
            if ((w == KEPT) != there) continue;
            (*count)++;
            char label[300];
            snprintf(label, sizeof label, "%s: %s", m->cfg->name, m->deps[j].key);
            put_name(b, &first, label, NULL, NULL);
        }
    }
}

void runtime_carry_diff(struct runtime *old, struct runtime *next, struct runtime_carry_report *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->json, CARRY_REPORT_MAX_BYTES);
    struct buf *b = &r->json;
    buf_append_str(b, "{\"models\":{\"added\":[");
    models_list(b, old, next, ADDED, &r->models_added);
    buf_append_str(b, "],\"removed\":[");
    models_list(b, old, next, REMOVED, &r->models_removed);
    buf_append_str(b, "],\"kept\":[");
    models_list(b, old, next, KEPT, &r->models_kept);
    buf_append_str(b, "]},\"deployments\":{\"added\":[");
    deps_list(b, old, next, ADDED, &r->deps_added);
    buf_append_str(b, "],\"removed\":[");
    deps_list(b, old, next, REMOVED, &r->deps_removed);
    buf_append_str(b, "],\"kept\":[");
    deps_list(b, old, next, KEPT, &r->deps_kept);
    buf_append_str(b, "]}}");
}

void runtime_carry_report_free(struct runtime_carry_report *r)
{
    buf_free(&r->json);
}

unsigned runtime_carry_commit(struct runtime *old, struct runtime *next)
{
    unsigned answered = 0;
    for (size_t i = 0; i < next->cfg->nmodels; i++)
        admission_set_config(next->models[i].admission, &next->cfg->models[i].queue);
    for (size_t i = 0; old && i < old->cfg->nmodels; i++)
        if (!runtime_carry_find_model(next, old->models[i].cfg->name))
            answered += admission_close(old->models[i].admission);
    if (old) atomic_store(&old->retired, true);
    for (size_t i = 0; i < next->cfg->nmodels; i++)
        runtime_model_refresh_capacity(&next->models[i], runtime_now_ms());
    return answered;
}
