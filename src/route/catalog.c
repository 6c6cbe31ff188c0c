/*
 * catalog.c — the imported model lists: parse, replace, look up.
 */
#include "route/catalog.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

struct catalog *catalog_new(const struct config *cfg)
{
    struct catalog *cat = calloc(1, sizeof *cat);
    if (!cat) return NULL;
    cat->cfg = cfg;
    cat->lists = calloc(cfg->nproviders ? cfg->nproviders : 1, sizeof *cat->lists);
    if (!cat->lists || pthread_rwlock_init(&cat->lock, NULL) != 0) {
        free(cat->lists);
        free(cat);
        return NULL;
    }
    return cat;
}

void catalog_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void catalog_free(struct catalog *cat)
{
    if (!cat) return;
    for (size_t i = 0; i < cat->cfg->nproviders; i++)
        catalog_names_free(cat->lists[i].names, cat->lists[i].n);
    pthread_rwlock_destroy(&cat->lock);
    free(cat->lists);
    free(cat);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int catalog_parse(const char *body, size_t len, char ***names_out, size_t *n_out)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *data = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(j);
        return -1;
    }
    size_t cap = (size_t)cJSON_GetArraySize(data);
    if (cap > CATALOG_MAX_NAMES) cap = CATALOG_MAX_NAMES;
    char **names = calloc(cap ? cap : 1, sizeof *names);
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, data)
    {
        if (!names || n == cap) break;
        const cJSON *id =
            cJSON_IsString(item) ? item : cJSON_GetObjectItemCaseSensitive(item, "id");
        if (!cJSON_IsString(id) || !id->valuestring[0] ||
            strlen(id->valuestring) >= CATALOG_MAX_NAME)
            continue;
        if (!(names[n] = strdup(id->valuestring))) break;
        n++;
    }
    cJSON_Delete(j);
    if (!names) return -1;
    qsort(names, n, sizeof *names, cmp_names);
    size_t w = 0; /* drop repeats */
    for (size_t i = 0; i < n; i++) {
        if (w && strcmp(names[w - 1], names[i]) == 0)
            free(names[i]);
        else
            names[w++] = names[i];
    }
    *names_out = names;
    *n_out = w;
    return 0;
}

void catalog_set(struct catalog *cat, size_t provider_index, char **names, size_t n,
                 uint64_t now_ms)
{
    if (provider_index >= cat->cfg->nproviders) {
        catalog_names_free(names, n);
        return;
    }
    pthread_rwlock_wrlock(&cat->lock);
    struct catalog_list *l = &cat->lists[provider_index];
    char **old = l->names;
    size_t old_n = l->n;
    l->names = names;
    l->n = n;
    l->fetched = true;
    l->fetched_ms = now_ms;
    pthread_rwlock_unlock(&cat->lock);
    catalog_names_free(old, old_n);
}

static bool list_has(const struct catalog_list *l, const char *name)
{
    return l->n && bsearch(&name, l->names, l->n, sizeof *l->names, cmp_names) != NULL;
}

bool catalog_has(struct catalog *cat, size_t provider_index, const char *name)
{
    if (provider_index >= cat->cfg->nproviders) return false;
    pthread_rwlock_rdlock(&cat->lock);
    bool has = list_has(&cat->lists[provider_index], name);
    pthread_rwlock_unlock(&cat->lock);
    return has;
}

bool catalog_any(struct catalog *cat, const char *name)
{
    bool has = false;
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->cfg->nproviders && !has; i++)
        has = list_has(&cat->lists[i], name);
    pthread_rwlock_unlock(&cat->lock);
    return has;
}

void catalog_foreach(struct catalog *cat, void (*fn)(void *ud, const char *name), void *ud)
{
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->cfg->nproviders; i++) {
        const struct catalog_list *l = &cat->lists[i];
        for (size_t k = 0; k < l->n; k++) {
            const char *name = l->names[k];
            const struct cfg_model *m = config_find_model(cat->cfg, name);
            if (m && !m->auto_import) continue; /* the config's own model: listed already */
            bool earlier = false;               /* the providers' lists are few and bounded */
            for (size_t e = 0; e < i && !earlier; e++)
                earlier = list_has(&cat->lists[e], name);
            if (!earlier) fn(ud, name);
        }
    }
    pthread_rwlock_unlock(&cat->lock);
}

void catalog_carry(struct catalog *next, struct catalog *old)
{
    if (!next || !old) return;
    pthread_rwlock_rdlock(&old->lock);
    for (size_t i = 0; i < next->cfg->nproviders; i++) {
        const struct cfg_provider *p = &next->cfg->providers[i];
        for (size_t j = 0; j < old->cfg->nproviders; j++) {
            const struct catalog_list *ol = &old->lists[j];
            if (!ol->fetched || strcmp(old->cfg->providers[j].name, p->name) != 0) continue;
            char **names = calloc(ol->n ? ol->n : 1, sizeof *names);
            size_t n = 0;
            for (; names && n < ol->n; n++)
                if (!(names[n] = strdup(ol->names[n]))) break;
            if (names) catalog_set(next, i, names, n, ol->fetched_ms);
            break;
        }
    }
    pthread_rwlock_unlock(&old->lock);
}
