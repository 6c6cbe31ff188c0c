#include "route/affinity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t affinity_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h =
        0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull); /* not in the low byte only */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int by_point(const void *x, const void *y)
{
    const struct affinity_point *a = x, *b = y;
    if (a->at != b->at) return a->at < b->at ? -1 : 1;
    return a->cand < b->cand ? -1 : a->cand > b->cand;
}

struct affinity *affinity_new(const char *const *names, size_t n, double load_factor)
{
    if (n > 64) n = 64;
    struct affinity *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->points = calloc(n * AFFINITY_VNODES + 1, sizeof *a->points);
    if (!a->points) {
        free(a);
        return NULL;
    }
    a->ncand = n;
    a->load_factor = load_factor > 1.0 ? load_factor : 1.0;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i] ? names[i] : "";
        for (unsigned v = 0; v < AFFINITY_VNODES; v++) {
            char point[256];
            int len = snprintf(point, sizeof point, "%s#%u", name, v);
            size_t used = len < 0 ? 0 : (size_t)len < sizeof point ? (size_t)len : sizeof point - 1;
            /* the same name twice (one provider/model listed twice) still gets its own points */
            a->points[a->npoints++] =
                (struct affinity_point){affinity_hash(point, used, i), (uint16_t)i};
        }
    }
    qsort(a->points, a->npoints, sizeof *a->points, by_point);
    return a;
}

void affinity_free(struct affinity *a)
{
    if (!a) return;
    free(a->points);
    free(a);
}

size_t affinity_choose(struct affinity *a, uint64_t key, const uint16_t *set, const double *load,
                       size_t m)
{
    if (m == 0 || a->npoints == 0) return m;
    /* where each candidate sits in set, and the bound */
    int pos[64];
    memset(pos, -1, sizeof pos);
    double total = 0;
    for (size_t k = 0; k < m; k++) {
        if (set[k] < 64) pos[set[k]] = (int)k;
        total += load[k];
    }
    /* plus one request: a small pool is not held to fractions of one (with loads of 1 and 2
       the mean alone would send every second request away from its cache) */
    double bound = a->load_factor * total / (double)m + 1.0;
    /* the first point at or after key */
    size_t lo = 0, hi = a->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->points[mid].at < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool seen[64] = {false};
    bool first = true;
    for (size_t step = 0; step < a->npoints; step++) {
        const struct affinity_point *pt = &a->points[(lo + step) % a->npoints];
        int k = pt->cand < 64 ? pos[pt->cand] : -1;
        if (k < 0 || seen[pt->cand]) continue;
        seen[pt->cand] = true;
        if (load[k] <= bound) {
            atomic_fetch_add_explicit(first ? &a->home : &a->spill, 1, memory_order_relaxed);
            return (size_t)k;
        }
        first = false;
    }
    /* not reachable (the least loaded is at most the mean), but rounding: any */
    atomic_fetch_add_explicit(&a->spill, 1, memory_order_relaxed);
    return 0;
}
