/*
 * catalog — the models providers list themselves (models: auto on a provider).
 *
 * For every provider with models: auto, the names its model list endpoint
 * gave last (route/model_fetch.c fetches them in the background and calls
 * catalog_set). The proxy asks catalog_has whether a provider serves a name
 * the config does not define, and /v1/models lists the union with
 * catalog_foreach. Shared by all workers: a read-write lock guards the
 * lists; a reader never sees a list half replaced. Bounded: at most
 * CATALOG_MAX_NAMES names per provider, each at most CATALOG_MAX_NAME bytes
 * (longer ones are left out).
 *
 * Owned by struct runtime (runtime_new / runtime_free); catalog_parse is
 * pure, for the fetcher and the unit tests.
 */
#ifndef UNBUSY_CATALOG_H
#define UNBUSY_CATALOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define CATALOG_MAX_NAMES 1024
#define CATALOG_MAX_NAME 256

struct catalog_list {
    char **names; /* sorted, no duplicates */
    size_t n;
    bool fetched;        /* a list was received at least once */
    uint64_t fetched_ms; /* monotonic ms of the last list received */
};

struct catalog {
    pthread_rwlock_t lock;
    const struct config *cfg;
    struct catalog_list *lists; /* one per cfg->providers[i]; empty for the others */
};

/* NULL when out of memory. cfg must outlive it. */
struct catalog *catalog_new(const struct config *cfg);
void catalog_free(struct catalog *cat);

/*
 * The ids of an OpenAI-style model list ({"data":[{"id":...},...]}, or a bare
 * array of such objects or of strings) into a sorted, deduplicated array
 * (*names, *n; free with catalog_names_free). Returns 0, or -1 when body is
 * not such a list.
 */
int catalog_parse(const char *body, size_t len, char ***names, size_t *n);
void catalog_names_free(char **names, size_t n);

/* Replaces provider_index's list with names, sorted and without repeats as catalog_parse
   gives them (taken over, whatever the result). */
void catalog_set(struct catalog *cat, size_t provider_index, char **names, size_t n,
                 uint64_t now_ms);

/* A config reload: next's providers start with the lists old's providers of the same
   name last received (the fetches of the next generation refresh them). */
void catalog_carry(struct catalog *next, struct catalog *old);

/* Does the provider at provider_index list name now? */
bool catalog_has(struct catalog *cat, size_t provider_index, const char *name);
/* Does any models: auto provider list name now? */
bool catalog_any(struct catalog *cat, const char *name);

/* Calls fn for every name some provider lists and the config does not define as a
   model, each once (under the read lock: fn must not call back into the catalog). */
void catalog_foreach(struct catalog *cat, void (*fn)(void *ud, const char *name), void *ud);

#endif
